//! `show`, `connect`, `disconnect`, `reload`: the recorded world and the imperative calls a
//! container engine makes.

use std::fmt::Write as _;

use netctl_state::StateRead as _;
use serde_json::json;

use crate::Outcome;
use crate::cli::{ConnectArgs, DisconnectArgs, ReloadArgs};
use crate::cmd::ctx::Ctx;
use crate::output::{Reporter, counted};
use crate::progress::Progress;
use crate::settings::Settings;

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

pub fn show(settings: &Settings, reporter: &Reporter) -> anyhow::Result<Outcome> {
    let ctx = Ctx::open_read(settings)?;
    let engine = ctx.engine();
    let rec = engine.recorded()?;
    let drift = engine.drift(&rec)?;
    let leases = ctx.store.read()?.all_leases()?;
    let mut text = String::new();
    text.push_str("NETWORKS\n");
    for net in rec.networks.values() {
        let subnets: Vec<String> = net
            .subnets
            .iter()
            .map(|s| match s.gateway {
                Some(gw) => format!("{} (gw {gw})", s.subnet),
                None => s.subnet.to_string(),
            })
            .collect();
        let _ = writeln!(
            text,
            "  {:<16} {}  {} {:<12} {}{}{}",
            net.name,
            short(&net.id),
            // The bridge, or the macvlan parent.
            net.driver,
            net.network_interface,
            subnets.join(", "),
            if net.internal { "  internal" } else { "" },
            // A borrowed bridge: netctl only adds and removes its containers' veths.
            if net.unmanaged() {
                "  unmanaged (bridge not netctl's)"
            } else {
                ""
            }
        );
    }
    text.push_str("CONTAINERS\n");
    for ctr in rec.containers.values() {
        let _ = writeln!(
            text,
            "  {:<16} {}  {:<11} {}{}",
            ctr.name,
            short(&ctr.id),
            ctr.mode.to_string(),
            ctr.netns.path.display(),
            if ctr.netns.managed { " (managed)" } else { "" }
        );
        for att in rec.attachments_of(&ctr.name) {
            let addrs: Vec<String> = att.addresses.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                text,
                "      {} on {}: {} mac {} aliases {}",
                att.interface,
                att.network,
                addrs.join(", "),
                att.mac,
                att.aliases.join(",")
            );
        }
    }
    let _ = writeln!(
        text,
        "LEASES\n  {} leased",
        counted(leases.len(), "address", "addresses")
    );
    if !rec.helpers.is_empty() {
        text.push_str("PROCESSES\n");
        for h in rec.helpers.values() {
            let _ = writeln!(
                text,
                "  {:<16} pid {} {}",
                h.container,
                h.pid,
                h.argv.join(" ")
            );
        }
    }
    if drift.is_empty() {
        text.push_str("OBSERVED\n  matches the records\n");
    } else {
        text.push_str("DRIFT (netctl apply repairs it)\n");
        for d in &drift {
            let _ = writeln!(text, "  ! {}: {}", d.resource, d.what);
        }
    }
    let value = json!({
        "networks": rec.networks.values().collect::<Vec<_>>(),
        "containers": rec.containers.values().collect::<Vec<_>>(),
        "attachments": rec.attachments.values().collect::<Vec<_>>(),
        "leases": leases,
        "helpers": rec.helpers.values().collect::<Vec<_>>(),
        "drift": drift,
    });
    reporter.result(&text, &value);
    Ok(Outcome::Success)
}

pub fn connect(
    settings: &Settings,
    args: &ConnectArgs,
    reporter: &Reporter,
) -> anyhow::Result<Outcome> {
    let ctx = Ctx::open(settings)?;
    let opts = netctl_engine::ConnectOptions {
        ip: args.ip,
        ip6: args.ip6,
        mac: args.mac,
        aliases: args.alias.clone(),
        interface: args.interface.clone(),
    };
    let changed = ctx
        .engine()
        .connect(&args.network, &args.container, &opts)?;
    let text = if changed {
        format!("connected {} to {}\n", args.container, args.network)
    } else {
        format!(
            "{} is already connected to {}\n",
            args.container, args.network
        )
    };
    reporter.result(&text, &json!({ "changed": changed }));
    Ok(Outcome::Success)
}

pub fn disconnect(
    settings: &Settings,
    args: &DisconnectArgs,
    reporter: &Reporter,
) -> anyhow::Result<Outcome> {
    let ctx = Ctx::open(settings)?;
    ctx.engine().disconnect(&args.network, &args.container)?;
    reporter.result(
        &format!("disconnected {} from {}\n", args.container, args.network),
        &json!({ "changed": true }),
    );
    Ok(Outcome::Success)
}

pub fn reload(
    settings: &Settings,
    args: &ReloadArgs,
    reporter: &Reporter,
) -> anyhow::Result<Outcome> {
    let ctx = Ctx::open(settings)?;
    let which = if args.all {
        None
    } else {
        Some(args.containers.as_slice())
    };
    let progress = Progress::new(reporter);
    let reloaded = ctx
        .engine()
        .with_progress(&progress.callback())
        .reload(which)?;
    progress.finish();
    let text = if reloaded.is_empty() {
        "Nothing to reload: no bridge-mode containers are recorded.\n".to_owned()
    } else {
        let mut text = String::new();
        for (name, id) in &reloaded {
            let _ = writeln!(text, "reloaded {name} ({})", &id[..id.len().min(12)]);
        }
        text
    };
    let value: Vec<_> = reloaded
        .iter()
        .map(|(name, id)| json!({ "name": name, "id": id }))
        .collect();
    reporter.result(&text, &value);
    Ok(Outcome::Success)
}

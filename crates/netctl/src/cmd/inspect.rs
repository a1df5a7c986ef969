//! `inspect CONTAINER`, `network ls`, `network inspect NET`: podman-shaped views of the records.

use anyhow::Context as _;
use netctl_state::{NetworkMode, StateRead as _};
use netctl_sys::NsRef;

use crate::Outcome;
use crate::cli::{InspectArgs, NetworkCommand};
use crate::cmd::ctx::Ctx;
use crate::output::Reporter;
use crate::settings::Settings;

pub fn inspect(
    settings: &Settings,
    args: &InspectArgs,
    reporter: &Reporter,
) -> anyhow::Result<Outcome> {
    let ctx = Ctx::open_read(settings)?;
    let read = ctx.store.read()?;
    let ctr = read.find_container(&args.container)?;
    if matches!(ctr.mode, NetworkMode::Pasta | NetworkMode::Slirp4netns) {
        // No networks of netctl's: read the addresses, MAC and routes the helper gave the
        // namespace (podman shows nothing here for pasta).
        let live = netctl_pasta::live::observe(&ctx.sys, &NsRef::path(ctr.netns.path.clone()))
            .with_context(|| format!("cannot read the network of {}", ctr.netns.path.display()))?;
        let settings_json = netctl_inspect::container_inspect_status(&ctr, &live.status_block())?;
        reporter.result(
            &netctl_inspect::render_container_text(&settings_json),
            &settings_json,
        );
        return Ok(Outcome::Success);
    }
    let atts = read.container_attachments(&ctr.name)?;
    let nets = atts
        .iter()
        .map(|a| {
            read.network(&a.network)
                .map(|n| n.expect("an attachment's network is recorded"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pairs: Vec<_> = nets.iter().zip(&atts).collect();
    let settings_json = netctl_inspect::container_inspect(&ctr, &pairs, &settings.default_network)?;
    reporter.result(
        &netctl_inspect::render_container_text(&settings_json),
        &settings_json,
    );
    Ok(Outcome::Success)
}

pub fn network(
    settings: &Settings,
    cmd: &NetworkCommand,
    reporter: &Reporter,
) -> anyhow::Result<Outcome> {
    let ctx = Ctx::open_read(settings)?;
    let read = ctx.store.read()?;
    match cmd {
        NetworkCommand::Ls => {
            let nets = read.networks()?;
            let rows: Vec<_> = nets.iter().map(netctl_inspect::network_ls_row).collect();
            let json: Vec<_> = nets.iter().map(netctl_inspect::network_inspect).collect();
            reporter.result(&netctl_inspect::render_network_table(&rows), &json);
        }
        NetworkCommand::Inspect { networks } => {
            let mut out = Vec::new();
            for q in networks {
                out.push(netctl_inspect::network_inspect(&read.find_network(q)?));
            }
            // podman prints a JSON array whatever the output format.
            let text = serde_json::to_string_pretty(&out)? + "\n";
            reporter.result(&text, &out);
        }
    }
    Ok(Outcome::Success)
}

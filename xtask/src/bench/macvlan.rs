//! The macvlan part of `cargo xtask bench cni`: netctl's macvlan attach and detach (netavark
//! mode, podman's protocol, one process per container) next to the reference CNI `macvlan` +
//! `host-local` plugins, on the same namespaces, in the same sandboxed run.
//!
//! Work per container: a macvlan on the parent `mvpar0` (a veth whose peer is up in the
//! sandbox) in bridge mode as `eth0` of `/run/netns/cN`, one IPv4 address, the default route.
//! No firewall for either. Printed figures only; nothing asserts a time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use super::report::{Raw, RawWriter, Stats};
use super::run::{Invocation, Runner};
use super::sandbox::SCRATCH;

const PARENT: &str = "mvpar0";
/// Debian's reference plugins.
const PLUGINS: &str = "/usr/lib/cni";
const TIMEOUT: Duration = Duration::from_secs(120);
const NETWORK_ID: &str = "6d61637666616e0000000000000000000000000000000000000000000000beef";

/// netctl's container `i` address (netctl takes podman's addresses as static ones).
fn netctl_ip(i: usize) -> String {
    format!("10.90.{}.{}", i / 250, i % 250 + 2)
}

/// podman's request for container `i` on a macvlan network.
fn network_options(i: usize) -> String {
    let id = format!("{i:08x}").repeat(8);
    let ip = netctl_ip(i);
    format!(
        r#"{{"container_id":"{id}","container_name":"mv{i}","networks":{{"benchmv":{{"interface_name":"eth0","static_ips":["{ip}"],"aliases":[]}}}},"network_info":{{"benchmv":{{"name":"benchmv","id":"{NETWORK_ID}","driver":"macvlan","network_interface":"{PARENT}","subnets":[{{"subnet":"10.90.0.0/16","gateway":"10.90.0.1"}}],"ipv6_enabled":false,"internal":false,"dns_enabled":false,"options":{{"mode":"bridge"}},"ipam_options":{{"driver":"host-local"}}}}}}}}"#
    )
}

fn reference_conf(prev: Option<&str>) -> serde_json::Value {
    let mut conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "benchmvref",
        "type": "macvlan",
        "master": PARENT,
        "mode": "bridge",
        "ipam": {
            "type": "host-local",
            "ranges": [[{ "subnet": "10.91.0.0/16", "gateway": "10.91.0.1" }]],
            "routes": [{ "dst": "0.0.0.0/0" }],
            "dataDir": format!("{SCRATCH}/host-local-macvlan"),
        },
    });
    if let Some(prev) = prev {
        conf["prevResult"] = serde_json::from_str(prev).expect("a result is JSON");
    }
    conf
}

fn reference_call(command: &str, i: usize, prev: Option<&str>) -> Invocation {
    Invocation::new(Path::new(PLUGINS).join("macvlan"), &[])
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &format!("mv{i}"))
        .env("CNI_NETNS", &format!("/run/netns/c{i}"))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", PLUGINS)
        .stdin(reference_conf(prev).to_string())
}

fn netctl_call(netctl: &Path, command: &str, i: usize) -> Invocation {
    Invocation::new(
        netctl,
        &[
            "netavark",
            "--config",
            &format!("{SCRATCH}/netavark-macvlan"),
            command,
            &format!("/run/netns/c{i}"),
        ],
    )
    .env("NETCTL_CONFIG", "/nonexistent")
    .stdin(network_options(i))
}

/// Whether container `i`'s `eth0` is a macvlan (each series checks its last container).
fn is_macvlan(i: usize) -> bool {
    std::process::Command::new("ip")
        .args(["-n", &format!("c{i}"), "-d", "link", "show", "eth0"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("macvlan mode bridge"))
}

/// Inside the sandbox, after the CNI series (the namespaces `c1..=count` exist): the two
/// macvlan series, each ADD 1..=count then DEL in reverse.
pub fn macvlan_series(netctl: &Path, count: usize, raw: &mut RawWriter) -> anyhow::Result<()> {
    super::run::setup(
        "ip",
        &[
            "link", "add", PARENT, "type", "veth", "peer", "name", "mvpeer0",
        ],
    )?;
    super::run::setup("ip", &["link", "set", PARENT, "up"])?;
    super::run::setup("ip", &["link", "set", "mvpeer0", "up"])?;
    std::fs::create_dir_all(format!("{SCRATCH}/netavark-macvlan"))
        .context("cannot create the netavark dir")?;
    let runner = Runner::new(Path::new(SCRATCH));
    let run = |inv: &Invocation| runner.run_output(inv, false, TIMEOUT);
    let netctl: PathBuf = netctl.to_owned();

    for i in 1..=count {
        let (m, _) = run(&netctl_call(&netctl, "setup", i))
            .with_context(|| format!("netctl macvlan setup of c{i}"))?;
        raw.sample("netctl-macvlan-add", i, &m)?;
    }
    raw.meta("netctl-macvlan-verified", &is_macvlan(count).to_string())?;
    for i in (1..=count).rev() {
        let (m, _) = run(&netctl_call(&netctl, "teardown", i))
            .with_context(|| format!("netctl macvlan teardown of c{i}"))?;
        raw.sample("netctl-macvlan-del", i, &m)?;
    }

    let mut results = Vec::with_capacity(count);
    for i in 1..=count {
        let (m, result) = run(&reference_call("ADD", i, None))
            .with_context(|| format!("reference macvlan ADD of c{i}"))?;
        raw.sample("reference-macvlan-add", i, &m)?;
        results.push(result);
    }
    raw.meta("reference-macvlan-verified", &is_macvlan(count).to_string())?;
    for i in (1..=count).rev() {
        let (m, _) = run(&reference_call("DEL", i, Some(&results[i - 1])))
            .with_context(|| format!("reference macvlan DEL of c{i}"))?;
        raw.sample("reference-macvlan-del", i, &m)?;
    }
    Ok(())
}

/// The macvlan rows of the CNI table.
pub fn table(out: &mut String, buckets: &[usize], window: usize, raw: &Raw) {
    let median =
        |phase: &str, n: usize| Stats::of(raw.latencies(phase, n..n + window)).map(|s| s.median);
    let cell = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |ms| format!("{ms:.1}"));
    let _ = writeln!(
        out,
        "\nmacvlan (no firewall, one IPv4 address and the default route each)\n"
    );
    let _ = write!(out, "| case |");
    for n in buckets {
        let _ = write!(out, " N={n} |");
    }
    let _ = writeln!(out, "\n| --- |{}", " ---: |".repeat(buckets.len()));
    for (label, phase) in [
        ("netctl macvlan setup (netavark mode)", "netctl-macvlan-add"),
        (
            "reference ADD (macvlan+host-local)",
            "reference-macvlan-add",
        ),
        (
            "netctl macvlan teardown (netavark mode)",
            "netctl-macvlan-del",
        ),
        (
            "reference DEL (macvlan+host-local)",
            "reference-macvlan-del",
        ),
    ] {
        let _ = write!(out, "| {label} |");
        for &n in buckets {
            let _ = write!(out, " {} |", cell(median(phase, n)));
        }
        let _ = writeln!(out);
    }
    let ratio = |a: &str, b: &str, n: usize| match (median(a, n), median(b, n)) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".to_owned(),
    };
    let ratios: Vec<String> = buckets
        .iter()
        .map(|&n| {
            format!(
                "N={n}: ADD {} DEL {}",
                ratio("netctl-macvlan-add", "reference-macvlan-add", n),
                ratio("netctl-macvlan-del", "reference-macvlan-del", n)
            )
        })
        .collect();
    let get = |k: &str| raw.meta.get(k).cloned().unwrap_or_default();
    let _ = writeln!(
        out,
        "\nnetctl / reference (aim: ADD within 1.2, DEL no slower): {}. Last container's eth0 a macvlan: netctl {}, reference {}.",
        ratios.join("; "),
        get("netctl-macvlan-verified"),
        get("reference-macvlan-verified"),
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_is_netavark_json() {
        let json: serde_json::Value = serde_json::from_str(&super::network_options(3)).unwrap();
        assert_eq!(json["networks"]["benchmv"]["static_ips"][0], "10.90.0.5");
        assert_eq!(json["network_info"]["benchmv"]["driver"], "macvlan");
        assert_eq!(super::NETWORK_ID.len(), 64);
    }
}

//! The bulk pass: one desired-state file with `bulk` containers on one bridge network, each
//! with `ports` published TCP ports, converged by `netctl apply` from an empty state; then the
//! same file again (the no-op re-apply, which must change nothing); then the firewall is lost
//! (`nft flush ruleset`) and `netctl reload --all` restores it; finally `destroy --all`.
//!
//! Samples: the apply from empty once (under GNU time for its peak memory: the wrapper's fork
//! is nothing next to seconds); the no-op and the reload (each after its own flush) first as a
//! memory probe, then up to REPEATS plain runs while the case has taken less than
//! REPEAT_BUDGET in all, so a slow case is measured once rather than stretching the run.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::Options;
use super::report::RawWriter;
use super::run::{Invocation, Runner};
use super::sandbox::{self, SCRATCH};
use super::series::{BRIDGE, NETWORK, container_port, host_port};

/// Plain runs of the no-op and of the reload, at most.
const REPEATS: usize = 5;
/// A repeated case stops repeating once it has taken this long in all.
const REPEAT_BUDGET: Duration = Duration::from_secs(20);
/// Converging a thousand containers may take a while; a hang may not.
const BULK_TIMEOUT: Duration = Duration::from_secs(900);

pub fn bulk_pass(opts: &Options, raw: &mut RawWriter) -> anyhow::Result<()> {
    let netctl = opts.netctl_bin.clone().context("no netctl binary")?;
    let file = format!("{SCRATCH}/bulk.toml");
    std::fs::write(&file, bulk_toml(opts.bulk, opts.ports))
        .with_context(|| format!("cannot write {file}"))?;
    let runner = Runner::new(Path::new(SCRATCH));
    let netctl_run = |args: &[&str], probe: bool| {
        let inv = Invocation::new(&netctl, args).env("NETCTL_CONFIG", "/nonexistent");
        runner.run_output(&inv, probe, BULK_TIMEOUT)
    };
    let last = format!("c{}", opts.bulk);
    let check = |what: &str, raw: &mut RawWriter| -> anyhow::Result<()> {
        let ok = sandbox::port_forward_works(
            &last,
            host_port(opts.bulk, 0, opts.ports),
            container_port(0),
        );
        raw.meta(&format!("verified_{what}"), &ok.to_string())?;
        if !ok {
            eprintln!("  bulk: after {what}, the port forward of {last} did NOT answer");
        }
        Ok(())
    };

    let (m, _) = netctl_run(&["apply", "-f", &file], true)
        .with_context(|| format!("netctl apply of {} containers from empty", opts.bulk))?;
    raw.sample("apply", opts.bulk, &m)?;
    eprintln!("  bulk apply from empty: {:.0} ms", ms(m.elapsed));
    check("apply", raw)?;

    // Right away, with the new interfaces' IPv6 start-up traffic still flowing: what a user
    // who re-applies at once gets. Then, settled, what netctl itself costs.
    let (m, _) = netctl_run(&["apply", "-f", &file], false)
        .context("netctl apply (no-op re-apply right after the apply)")?;
    raw.sample("noop_unsettled", opts.bulk, &m)?;
    eprintln!(
        "  bulk no-op re-apply right after the apply (unsettled): {:.1} ms",
        ms(m.elapsed)
    );
    if opts.settle {
        let waited = sandbox::wait_until_quiet(BRIDGE);
        raw.meta("quiet_wait_ms", &format!("{:.0}", ms(waited)))?;
        eprintln!(
            "  bulk: waited {:.1} s for the bridge to fall quiet",
            waited.as_secs_f64()
        );
    }
    let mut spent = Duration::ZERO;
    for run in 0..=REPEATS {
        if run > 0 && spent > REPEAT_BUDGET {
            break;
        }
        let (m, out) = netctl_run(&["apply", "-f", &file], run == 0)
            .context("netctl apply (no-op re-apply)")?;
        raw.sample("noop", opts.bulk, &m)?;
        spent += m.elapsed;
        if run == 0 {
            eprintln!("  bulk no-op re-apply: {:.1} ms", ms(m.elapsed));
            raw.meta("noop_output", out.lines().next().unwrap_or(""))?;
        }
    }
    // The no-op must really be one: a plan of the same file reports nothing to do (exit 0;
    // pending changes exit 2, which the runner reports as a failure).
    let in_sync = netctl_run(&["plan", "--detailed-exitcode", "-f", &file], false);
    if let Err(e) = &in_sync {
        eprintln!("  bulk: plan after the re-apply is not in sync: {e:#}");
    }
    raw.meta("noop_in_sync", &in_sync.is_ok().to_string())?;

    let mut spent = Duration::ZERO;
    for run in 0..=REPEATS {
        if run > 0 && spent > REPEAT_BUDGET {
            break;
        }
        super::run::setup("nft", &["flush", "ruleset"])?;
        let (m, _) = netctl_run(&["reload", "--all"], run == 0)
            .context("netctl reload --all after flush")?;
        raw.sample("reload", opts.bulk, &m)?;
        spent += m.elapsed;
        if run == 0 {
            eprintln!(
                "  bulk reload --all after nft flush: {:.0} ms",
                ms(m.elapsed)
            );
        }
    }
    check("reload", raw)?;

    let (m, _) = netctl_run(&["destroy", "--all"], true).context("netctl destroy --all")?;
    raw.sample("destroy", opts.bulk, &m)?;
    eprintln!("  bulk destroy --all: {:.0} ms", ms(m.elapsed));
    if sandbox::exists(&format!("/run/netns/{last}")) {
        bail!("netctl destroy --all left /run/netns/{last} behind");
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The desired-state file: network `bench` on bridge `ncbench0` (a /16, so a thousand
/// containers fit) and containers c1..=cN, each in a namespace netctl creates, with `ports`
/// forwards whose host ports are unique across containers.
pub fn bulk_toml(containers: usize, ports: usize) -> String {
    let mut toml = format!(
        "# netctl benchmark: {containers} containers x {ports} published tcp ports\n\
         [networks.{NETWORK}]\n\
         bridge = \"{BRIDGE}\"\n\
         subnets = [{{ subnet = \"10.89.0.0/16\", gateway = \"10.89.0.1\" }}]\n"
    );
    for i in 1..=containers {
        let list = (0..ports)
            .map(|k| {
                format!(
                    "{{ host_port = {}, container_port = {} }}",
                    host_port(i, k, ports),
                    container_port(k)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            toml,
            "\n[containers.c{i}]\nnetns = \"managed\"\nnetworks.{NETWORK} = {{}}\nports = [{list}]\n"
        );
    }
    toml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_file_has_unique_host_ports() {
        let toml = bulk_toml(3, 2);
        assert!(toml.contains("[containers.c3]"));
        let ports: Vec<&str> = toml.matches("host_port = ").collect();
        assert_eq!(ports.len(), 6);
        for port in ["10002", "10003", "10004", "10005", "10006", "10007"] {
            assert_eq!(
                toml.matches(&format!("host_port = {port},")).count(),
                1,
                "{port}"
            );
        }
    }
}

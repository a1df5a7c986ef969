//! The attach/detach series: containers 1..=count attached one process each, then detached in
//! reverse order, so container k is attached while k-1 others are and detached while k
//! containers (itself included) are attached.
//!
//! All three tools do the same work per container: a veth from the bridge `ncbench0`
//! (10.89.0.1/16) into the container's namespace as `eth0`, its address, the default route,
//! links up, and `ports` TCP port forwards. netctl and netavark get the same NetworkOptions JSON
//! on stdin; the floor does it with one `ip -batch` on the host, one `ip -n cN -batch` in the
//! container namespace (ip cannot change namespace within one batch) and one `nft -f` that adds
//! the forwards as elements of a map.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::Options;
use super::report::RawWriter;
use super::run::{Invocation, Measured, Runner};
use super::sandbox::{self, SCRATCH};

pub const BRIDGE: &str = "ncbench0";
pub const NETWORK: &str = "bench";
const SUBNET: &str = "10.89.0.0/16";
const GATEWAY: &str = "10.89.0.1";
pub const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 1);
/// 64 hex digits, like a podman network id ("netctl-bench" in ASCII, padded).
const NETWORK_ID: &str = "6e657463746c2d62656e63680000000000000000000000000000000000000001";
/// Where netctl and netavark keep their `--config` state in the sandbox.
const NETAVARK_CONFIG: &str = "/run/netctl-bench/netavark";
/// The N whose latency the table reports (those up to `--max`, plus `--max` itself).
const BUCKETS: [usize; 5] = [1, 10, 100, 500, 1000];
/// A single attach or detach taking longer than this is a hang.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Which containers a series attaches, which of them are measured for a bucket and which are
/// memory probes. Probes sit just after a bucket's window, never inside one.
#[derive(Debug, Clone)]
pub struct SeriesPlan {
    pub buckets: Vec<usize>,
    pub window: usize,
    /// (bucket, probe container index)
    pub probes: Vec<(usize, usize)>,
    pub count: usize,
}

impl SeriesPlan {
    pub fn new(max: usize, window: usize, with_probes: bool) -> SeriesPlan {
        let mut buckets: Vec<usize> = BUCKETS.into_iter().filter(|&n| n <= max).collect();
        if buckets.last() != Some(&max) {
            buckets.push(max);
        }
        let measured: BTreeSet<usize> = buckets.iter().flat_map(|&n| n..n + window).collect();
        let mut probes = Vec::new();
        if with_probes {
            let mut taken = measured.clone();
            for &n in &buckets {
                // Pigeonhole: this range is longer than `taken`, so it has a free index.
                let probe = (n + window..=n + window + taken.len())
                    .find(|i| !taken.contains(i))
                    .expect("a range longer than the taken set has a free index");
                taken.insert(probe);
                probes.push((n, probe));
            }
        }
        let count = measured
            .iter()
            .chain(probes.iter().map(|(_, p)| p))
            .copied()
            .max()
            .unwrap_or(0);
        SeriesPlan {
            buckets,
            window,
            probes,
            count,
        }
    }

    pub fn is_probe(&self, i: usize) -> bool {
        self.probes.iter().any(|&(_, p)| p == i)
    }
}

/// The one doing the attaching.
#[derive(Debug, Clone)]
pub enum Tool {
    Netctl(PathBuf),
    Netavark(PathBuf),
    Floor,
    /// The floor's kernel work from this process (`inproc.rs`).
    InProcess,
}

impl Tool {
    pub fn name(&self) -> &'static str {
        match self {
            Tool::Netctl(_) => "netctl",
            Tool::Netavark(_) => "netavark",
            Tool::Floor => "floor",
            Tool::InProcess => "inproc",
        }
    }

    /// The largest N this tool's series goes to.
    pub fn max(&self, opts: &Options) -> usize {
        match self {
            Tool::Netavark(_) => opts.netavark_max.min(opts.max),
            Tool::Netctl(_) | Tool::Floor | Tool::InProcess => opts.max,
        }
    }

    /// Memory probes for the backends; the floors are three short-lived standard tools, or
    /// no process at all.
    pub fn probes(&self) -> bool {
        !matches!(self, Tool::Floor | Tool::InProcess)
    }

    /// What is set up once, before the series, and not measured.
    fn prepare(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(NETAVARK_CONFIG)
            .with_context(|| format!("cannot create {NETAVARK_CONFIG}"))?;
        if let Tool::Floor | Tool::InProcess = self {
            let ip = |args: &[&str]| super::run::setup("ip", args);
            ip(&["link", "add", BRIDGE, "type", "bridge"])?;
            ip(&["addr", "add", &format!("{GATEWAY}/16"), "dev", BRIDGE])?;
            ip(&["link", "set", BRIDGE, "up"])?;
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
                .context("cannot enable ip_forward in the sandbox")?;
            super::run::setup_stdin("nft", &["-f", "-"], &floor_table(&[]))?;
        }
        Ok(())
    }

    /// podman's call of a network backend (`setup` or `teardown` with NetworkOptions on
    /// stdin) for container `i`; `None` for the floor, which is no backend.
    fn podman_call(&self, verb: &str, i: usize, opts: &Options) -> Option<Invocation> {
        let netns = format!("/run/netns/c{i}");
        let call = match self {
            Tool::Netctl(bin) => Invocation::new(
                bin,
                &["netavark", "--config", NETAVARK_CONFIG, verb, &netns],
            )
            .env("NETCTL_CONFIG", "/nonexistent"),
            Tool::Netavark(bin) => {
                Invocation::new(bin, &["--config", NETAVARK_CONFIG, verb, &netns])
            }
            Tool::Floor | Tool::InProcess => return None,
        };
        Some(call.stdin(network_options(i, opts.ports)))
    }

    fn attach(
        &self,
        i: usize,
        opts: &Options,
        runner: &Runner,
        probe: bool,
    ) -> anyhow::Result<Measured> {
        if let Some(call) = self.podman_call("setup", i, opts) {
            return runner.run(&call, probe, COMMAND_TIMEOUT);
        }
        if let Tool::InProcess = self {
            return super::inproc::attach(i, opts.ports);
        }
        // The floor: standard tools doing the same kernel work.
        let host = Invocation::new("ip", &["-batch", "-"]).stdin(format!(
            "link add vf{i} type veth peer name eth0 netns c{i}\n\
             link set vf{i} master {BRIDGE} up\n"
        ));
        let ctr_ns = format!("c{i}");
        let container = Invocation::new("ip", &["-n", &ctr_ns, "-batch", "-"]).stdin(format!(
            "link set lo up\n\
             addr add {}/16 dev eth0\n\
             link set eth0 up\n\
             route add default via {GATEWAY}\n",
            container_ip(i)
        ));
        let elements = (0..opts.ports)
            .map(|k| {
                format!(
                    "{} : {} . {}",
                    host_port(i, k, opts.ports),
                    container_ip(i),
                    container_port(k)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let nft = Invocation::new("nft", &["-f", "-"])
            .stdin(format!("add element ip floor ports {{ {elements} }}\n"));
        let a = runner.run(&host, false, COMMAND_TIMEOUT)?;
        let b = runner.run(&container, false, COMMAND_TIMEOUT)?;
        let c = runner.run(&nft, false, COMMAND_TIMEOUT)?;
        Ok(a.add(b).add(c))
    }

    fn detach(
        &self,
        i: usize,
        opts: &Options,
        runner: &Runner,
        probe: bool,
    ) -> anyhow::Result<Measured> {
        if let Some(call) = self.podman_call("teardown", i, opts) {
            return runner.run(&call, probe, COMMAND_TIMEOUT);
        }
        if let Tool::InProcess = self {
            return super::inproc::detach(i, opts.ports);
        }
        // The floor: standard tools doing the same kernel work.
        let keys = (0..opts.ports)
            .map(|k| host_port(i, k, opts.ports).to_string())
            .collect::<Vec<_>>()
            .join(", ");
        // Deleting the host end takes the container end, its address and route along.
        let host = Invocation::new("ip", &["-batch", "-"]).stdin(format!("link del vf{i}\n"));
        let nft = Invocation::new("nft", &["-f", "-"])
            .stdin(format!("delete element ip floor ports {{ {keys} }}\n"));
        let a = runner.run(&host, false, COMMAND_TIMEOUT)?;
        let b = runner.run(&nft, false, COMMAND_TIMEOUT)?;
        Ok(a.add(b))
    }
}

/// Attach containers 1..=count one by one, check the last one's port forward, detach them all
/// in reverse order. Each half stops early (and says so) when it exceeds the budget.
pub fn series_pass(tool: &Tool, opts: &Options, raw: &mut RawWriter) -> anyhow::Result<()> {
    let plan = SeriesPlan::new(tool.max(opts), opts.window, tool.probes());
    tool.prepare()?;
    let runner = Runner::new(std::path::Path::new(SCRATCH));
    let name = tool.name();
    raw.meta("planned", &plan.count.to_string())?;

    // Waiting for quiet is not the series' work: it does not count against the budget.
    let settle = |raw: &mut RawWriter, what: &str| -> anyhow::Result<Duration> {
        if !opts.settle {
            return Ok(Duration::ZERO);
        }
        let took = sandbox::wait_until_quiet(BRIDGE);
        raw.meta(
            &format!("quiet_wait_ms_{what}"),
            &took.as_millis().to_string(),
        )?;
        Ok(took)
    };
    let mut waited = Duration::ZERO;
    let start = Instant::now();
    let mut attached = 0;
    for i in 1..=plan.count {
        if i > 1 && plan.buckets.contains(&i) {
            waited += settle(raw, &format!("attach_{i}"))?;
        }
        if start.elapsed().saturating_sub(waited) > opts.budget {
            let note = format!("attach budget {:?} spent after {attached}", opts.budget);
            eprintln!("  {name}: {note}");
            raw.meta("attach_stopped", &note)?;
            break;
        }
        sandbox::add_netns(&format!("c{i}"))?;
        let m = tool
            .attach(i, opts, &runner, plan.is_probe(i))
            .with_context(|| format!("{name}: attach of container {i}"))?;
        raw.sample("attach", i, &m)?;
        attached = i;
        progress(name, "attach", i, &m);
    }
    raw.meta("attached", &attached.to_string())?;

    let verified = attached > 0
        && sandbox::port_forward_works(
            &format!("c{attached}"),
            host_port(attached, 0, opts.ports),
            container_port(0),
        );
    raw.meta("verified", &verified.to_string())?;
    if !verified {
        eprintln!("  {name}: the port forward of container {attached} did NOT answer");
    }

    settle(raw, "detach")?;
    let start = Instant::now();
    let mut detached = 0;
    for i in (1..=attached).rev() {
        if start.elapsed() > opts.budget {
            let note = format!("detach budget {:?} spent after {detached}", opts.budget);
            eprintln!("  {name}: {note}");
            raw.meta("detach_stopped", &note)?;
            break;
        }
        let m = tool
            .detach(i, opts, &runner, plan.is_probe(i))
            .with_context(|| format!("{name}: detach of container {i}"))?;
        raw.sample("detach", i, &m)?;
        detached += 1;
        progress(name, "detach", i, &m);
    }
    raw.meta("detached", &detached.to_string())?;

    if let Tool::Floor = tool {
        floor_reload(opts, &runner, raw)?;
    }
    Ok(())
}

fn progress(tool: &str, phase: &str, i: usize, m: &Measured) {
    if i == 1 || i.is_multiple_of(100) {
        eprintln!(
            "  {tool} {phase} container {i}: {:.2} ms",
            m.elapsed.as_secs_f64() * 1e3
        );
    }
}

/// The floor of `reload --all`: the whole forward map of `opts.bulk` containers restored with
/// one `nft -f` after a flush. Three runs.
fn floor_reload(opts: &Options, runner: &Runner, raw: &mut RawWriter) -> anyhow::Result<()> {
    let containers: Vec<usize> = (1..=opts.bulk).collect();
    let path = format!("{SCRATCH}/floor-full.nft");
    std::fs::write(
        &path,
        floor_table(&containers_ports(&containers, opts.ports)),
    )
    .with_context(|| format!("cannot write {path}"))?;
    for _ in 0..3 {
        super::run::setup("nft", &["flush", "ruleset"])?;
        let m = runner.run(
            &Invocation::new("nft", &["-f", &path]),
            false,
            COMMAND_TIMEOUT,
        )?;
        raw.sample("reload", opts.bulk, &m)?;
    }
    Ok(())
}

/// (host port, container ip, container port) of every forward of `containers`.
fn containers_ports(containers: &[usize], ports: usize) -> Vec<(u16, Ipv4Addr, u16)> {
    containers
        .iter()
        .flat_map(|&i| {
            (0..ports).map(move |k| (host_port(i, k, ports), container_ip(i), container_port(k)))
        })
        .collect()
}

/// The floor's table: DNAT through one map (local destinations, from outside and from the host
/// itself) and masquerade of the subnet, with `elements` in the map.
fn floor_table(elements: &[(u16, Ipv4Addr, u16)]) -> String {
    let elements = if elements.is_empty() {
        String::new()
    } else {
        let list = elements
            .iter()
            .map(|(hp, ip, cp)| format!("{hp} : {ip} . {cp}"))
            .collect::<Vec<_>>()
            .join(",\n    ");
        format!("    elements = {{ {list} }}\n")
    };
    format!(
        "table ip floor {{\n\
         \x20 map ports {{\n\
         \x20   type inet_service : ipv4_addr . inet_service\n\
         {elements}\
         \x20 }}\n\
         \x20 chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; \
         fib daddr type local dnat ip to tcp dport map @ports; }}\n\
         \x20 chain output {{ type nat hook output priority -100; policy accept; \
         fib daddr type local dnat ip to tcp dport map @ports; }}\n\
         \x20 chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; \
         ip saddr {SUBNET} ip daddr != {SUBNET} masquerade; }}\n\
         }}\n"
    )
}

/// Container i's address: 10.89.0.(i+1) onwards, after the gateway.
pub fn container_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 89, 0, 1)) + i as u32)
}

/// Host port k of container i; unique across containers.
pub fn host_port(i: usize, k: usize, ports: usize) -> u16 {
    u16::try_from(10_000 + ports * i + k).expect("Options::check keeps host ports below 65536")
}

/// Container port k (the same in every container).
pub fn container_port(k: usize) -> u16 {
    8000 + k as u16
}

/// The NetworkOptions podman would send netavark for container i on the bench network.
pub(super) fn network_options(i: usize, ports: usize) -> String {
    let id = format!("{i:08x}").repeat(8);
    let ip = container_ip(i);
    let mappings = (0..ports)
        .map(|k| {
            format!(
                r#"{{"host_ip":"","container_port":{},"host_port":{},"range":1,"protocol":"tcp"}}"#,
                container_port(k),
                host_port(i, k, ports)
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    format!(
        r#"{{"container_id":"{id}","container_name":"c{i}","port_mappings":[{mappings}],"networks":{{"{NETWORK}":{{"interface_name":"eth0","static_ips":["{ip}"],"aliases":[]}}}},"network_info":{{"{NETWORK}":{{"name":"{NETWORK}","id":"{NETWORK_ID}","driver":"bridge","network_interface":"{BRIDGE}","subnets":[{{"subnet":"{SUBNET}","gateway":"{GATEWAY}"}}],"ipv6_enabled":false,"internal":false,"dns_enabled":false,"ipam_options":{{"driver":"host-local"}}}}}}}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_places_windows_and_probes() {
        let plan = SeriesPlan::new(1000, 5, true);
        assert_eq!(plan.buckets, [1, 10, 100, 500, 1000]);
        assert_eq!(
            plan.probes,
            [(1, 6), (10, 15), (100, 105), (500, 505), (1000, 1005)]
        );
        assert_eq!(plan.count, 1005);
        let small = SeriesPlan::new(12, 5, false);
        assert_eq!(small.buckets, [1, 10, 12]);
        assert!(small.probes.is_empty());
        assert_eq!(small.count, 16);
        // Overlapping windows push probes past every measured container.
        let dense = SeriesPlan::new(10, 10, true);
        assert_eq!(dense.probes, [(1, 20), (10, 21)]);
    }

    #[test]
    fn options_are_netavark_json() {
        let json = network_options(3, 2);
        assert!(json.contains(r#""static_ips":["10.89.0.4"]"#), "{json}");
        assert!(json.contains(r#""host_port":10006"#) && json.contains(r#""host_port":10007"#));
        assert_eq!(NETWORK_ID.len(), 64);
        assert!(NETWORK_ID.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}

//! `cargo xtask bench cni`: netctl as a CNI plugin next to its own netavark mode and the
//! reference chain (bridge + host-local + portmap from Debian's containernetworking-plugins),
//! on identical work, in one sandboxed pass.
//!
//! Work per container: a veth from a bridge holding 10.89.0.1/16 into `/run/netns/cN` as
//! `eth0`, an address, the default route, masquerade, and `--ports` published TCP ports. Each
//! plugin call is one process, as libcni makes it: netctl's ADD is one `netctl` process; the
//! reference ADD is `bridge` (which execs `host-local`) then `portmap` with the bridge's result
//! as `prevResult`; DEL runs the chain in reverse with the cached result; CHECK runs each
//! plugin's CHECK with it. Containers 1..=N+window-1 are added one by one (CHECK of each right
//! after its ADD), the last one's port forward is checked from outside, then all are deleted in
//! reverse. The table gives the median of containers N..N+window-1 for N = 1, 10, 50, 100.
//! Then, on the same namespaces, the macvlan series (`macvlan.rs`).
//!
//! Printed figures only; nothing asserts a time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::report::{Raw, RawWriter, Stats};
use super::run::{Invocation, Measured, Runner};
use super::sandbox::{self, SCRATCH};
use super::series::{container_port, host_port};
use super::{OUT_DIR, Options, Pass};

const BUCKETS: [usize; 4] = [1, 10, 50, 100];
const SUBNET: &str = "10.89.0.0/16";
const GATEWAY: &str = "10.89.0.1";
/// Debian's reference plugins.
const PLUGINS: &str = "/usr/lib/cni";
const TIMEOUT: Duration = Duration::from_secs(120);

/// Who attaches, in the order the pass runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// `netctl netavark setup|teardown`, podman's protocol: the baseline CNI mode is held to.
    NetavarkMode,
    /// `netctl` exec'd as a CNI plugin.
    Cni,
    /// bridge + host-local + portmap.
    Reference,
}

impl Who {
    const ALL: [Who; 3] = [Who::NetavarkMode, Who::Cni, Who::Reference];

    fn name(self) -> &'static str {
        match self {
            Who::NetavarkMode => "netctl-netavark",
            Who::Cni => "netctl-cni",
            Who::Reference => "reference",
        }
    }
}

/// The largest N measured and how many containers that takes.
fn count(opts: &Options) -> usize {
    opts.max + opts.window - 1
}

fn port_mappings(i: usize, ports: usize) -> serde_json::Value {
    serde_json::Value::Array(
        (0..ports)
            .map(|k| {
                serde_json::json!({
                    "hostPort": host_port(i, k, ports),
                    "containerPort": container_port(k),
                    "protocol": "tcp",
                })
            })
            .collect(),
    )
}

fn cni_call(program: &Path, command: &str, i: usize, conf: &serde_json::Value) -> Invocation {
    Invocation::new(program, &[])
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &format!("c{i}"))
        .env("CNI_NETNS", &format!("/run/netns/c{i}"))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", PLUGINS)
        .env("NETCTL_CONFIG", "/nonexistent")
        .stdin(conf.to_string())
}

fn netctl_conf(i: usize, ports: usize, prev: Option<&str>) -> serde_json::Value {
    let mut conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "benchcni",
        "type": "netctl",
        "network": { "subnets": [{ "subnet": SUBNET, "gateway": GATEWAY }], "bridge": "ncbench0" },
        "capabilities": { "portMappings": true },
        "runtimeConfig": { "portMappings": port_mappings(i, ports) },
    });
    if let Some(prev) = prev {
        conf["prevResult"] = serde_json::from_str(prev).expect("a result is JSON");
    }
    conf
}

fn bridge_conf(prev: Option<&str>) -> serde_json::Value {
    let mut conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "benchref",
        "type": "bridge",
        "bridge": "ncref0",
        "isGateway": true,
        "ipMasq": true,
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{ "subnet": SUBNET, "gateway": GATEWAY }]],
            "dataDir": format!("{SCRATCH}/host-local"),
        },
    });
    if let Some(prev) = prev {
        conf["prevResult"] = serde_json::from_str(prev).expect("a result is JSON");
    }
    conf
}

fn portmap_conf(i: usize, ports: usize, prev: &str) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "benchref",
        "type": "portmap",
        "snat": true,
        "capabilities": { "portMappings": true },
        "runtimeConfig": { "portMappings": port_mappings(i, ports) },
        "prevResult": serde_json::from_str::<serde_json::Value>(prev).expect("a result is JSON"),
    })
}

struct Bench<'a> {
    opts: &'a Options,
    runner: Runner,
    netctl: PathBuf,
}

impl Bench<'_> {
    fn run(&self, inv: &Invocation) -> anyhow::Result<(Measured, String)> {
        self.runner.run_output(inv, false, TIMEOUT)
    }

    /// `netctl netavark VERB` for container `i`, with podman's request on stdin.
    fn netavark_call(&self, verb: &str, i: usize) -> Invocation {
        Invocation::new(
            &self.netctl,
            &[
                "netavark",
                "--config",
                &format!("{SCRATCH}/netavark"),
                verb,
                &format!("/run/netns/c{i}"),
            ],
        )
        .env("NETCTL_CONFIG", "/nonexistent")
        .stdin(super::series::network_options(i, self.opts.ports))
    }

    /// ADD of container `i`; the result a runtime would cache.
    fn add(&self, who: Who, i: usize) -> anyhow::Result<(Measured, String)> {
        let ports = self.opts.ports;
        match who {
            Who::NetavarkMode => {
                let inv = self.netavark_call("setup", i);
                self.run(&inv)
            }
            Who::Cni => self.run(&cni_call(
                &self.netctl,
                "ADD",
                i,
                &netctl_conf(i, ports, None),
            )),
            Who::Reference => {
                let bridge = Path::new(PLUGINS).join("bridge");
                let portmap = Path::new(PLUGINS).join("portmap");
                let (a, result) = self.run(&cni_call(&bridge, "ADD", i, &bridge_conf(None)))?;
                let (b, result) = self.run(&cni_call(
                    &portmap,
                    "ADD",
                    i,
                    &portmap_conf(i, ports, &result),
                ))?;
                Ok((a.add(b), result))
            }
        }
    }

    /// CHECK of container `i` against its cached result; an error is a failed CHECK (the
    /// reference portmap fails on IPv4-only containers, plugins#819).
    fn check(&self, who: Who, i: usize, result: &str) -> (Duration, anyhow::Result<()>) {
        let started = Instant::now();
        let outcome = match who {
            Who::NetavarkMode => Ok(()),
            Who::Cni => self
                .run(&cni_call(
                    &self.netctl,
                    "CHECK",
                    i,
                    &netctl_conf(i, self.opts.ports, Some(result)),
                ))
                .map(drop),
            Who::Reference => {
                let bridge = Path::new(PLUGINS).join("bridge");
                let portmap = Path::new(PLUGINS).join("portmap");
                self.run(&cni_call(&bridge, "CHECK", i, &bridge_conf(Some(result))))
                    .and_then(|_| {
                        self.run(&cni_call(
                            &portmap,
                            "CHECK",
                            i,
                            &portmap_conf(i, self.opts.ports, result),
                        ))
                    })
                    .map(drop)
            }
        };
        (started.elapsed(), outcome)
    }

    fn del(&self, who: Who, i: usize, result: &str) -> anyhow::Result<Measured> {
        let ports = self.opts.ports;
        match who {
            Who::NetavarkMode => {
                let inv = self.netavark_call("teardown", i);
                self.run(&inv).map(|(m, _)| m)
            }
            Who::Cni => {
                // containerd's DEL: no namespace, the cached result.
                let inv = cni_call(&self.netctl, "DEL", i, &netctl_conf(i, ports, Some(result)))
                    .env("CNI_NETNS", "");
                self.run(&inv).map(|(m, _)| m)
            }
            Who::Reference => {
                let bridge = Path::new(PLUGINS).join("bridge");
                let portmap = Path::new(PLUGINS).join("portmap");
                let (a, _) = self.run(&cni_call(
                    &portmap,
                    "DEL",
                    i,
                    &portmap_conf(i, ports, result),
                ))?;
                let (b, _) = self.run(&cni_call(&bridge, "DEL", i, &bridge_conf(Some(result))))?;
                Ok(a.add(b))
            }
        }
    }
}

/// Inside the sandbox: the three series, one after the other, on the same namespaces.
pub fn cni_pass(opts: &Options, raw: &mut RawWriter) -> anyhow::Result<()> {
    let netctl = opts.netctl_bin.clone().context("no netctl binary")?;
    std::fs::create_dir_all(format!("{SCRATCH}/netavark"))
        .context("cannot create the netavark dir")?;
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").context("cannot enable ip_forward")?;
    let count = count(opts);
    for i in 1..=count {
        sandbox::add_netns(&format!("c{i}"))?;
    }
    let bench = Bench {
        opts,
        runner: Runner::new(Path::new(SCRATCH)),
        netctl: netctl.clone(),
    };
    for who in Who::ALL {
        let name = who.name();
        let mut results = Vec::with_capacity(count);
        let mut check_failures = 0;
        for i in 1..=count {
            let (m, result) = bench
                .add(who, i)
                .with_context(|| format!("{name}: ADD of c{i}"))?;
            raw.sample(&format!("{name}-add"), i, &m)?;
            if who != Who::NetavarkMode {
                let (took, outcome) = bench.check(who, i, &result);
                raw.sample(
                    &format!("{name}-check"),
                    i,
                    &Measured {
                        elapsed: took,
                        rss_kib: None,
                    },
                )?;
                if let Err(e) = outcome {
                    if check_failures == 0 {
                        raw.meta(&format!("{name}-check-error"), &format!("{e:#}"))?;
                    }
                    check_failures += 1;
                }
            }
            results.push(result);
            if i == 1 || i.is_multiple_of(50) {
                eprintln!("  {name} ADD c{i}: {:.1} ms", m.elapsed.as_secs_f64() * 1e3);
            }
        }
        raw.meta(
            &format!("{name}-check-failures"),
            &check_failures.to_string(),
        )?;
        let verified = sandbox::port_forward_works(
            &format!("c{count}"),
            host_port(count, 0, opts.ports),
            container_port(0),
        );
        raw.meta(&format!("{name}-verified"), &verified.to_string())?;
        for i in (1..=count).rev() {
            let m = bench
                .del(who, i, &results[i - 1])
                .with_context(|| format!("{name}: DEL of c{i}"))?;
            raw.sample(&format!("{name}-del"), i, &m)?;
        }
        if who == Who::Cni {
            // The CNI network stays recorded after its last container: remove it, so the
            // reference bridge can take the subnet.
            let destroy = Invocation::new(&netctl, &["destroy", "--all"])
                .env("NETCTL_CONFIG", "/nonexistent");
            bench
                .run(&destroy)
                .context("netctl destroy --all after the CNI series")?;
        }
    }
    super::macvlan::macvlan_series(&netctl, count, raw)
}

/// The outer process's table from the pass's raw file, for docs/PERFORMANCE.md.
pub fn table(opts: &Options, raw: &Raw) -> String {
    let median = |phase: &str, n: usize| {
        Stats::of(raw.latencies(phase, n..n + opts.window)).map(|s| s.median)
    };
    let cell = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |ms| format!("{ms:.1}"));
    let buckets: Vec<usize> = BUCKETS.into_iter().filter(|&n| n <= opts.max).collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ms per container, median of containers N..N+{} ({} published TCP ports each)\n",
        opts.window - 1,
        opts.ports
    );
    let _ = write!(out, "| case |");
    for n in &buckets {
        let _ = write!(out, " N={n} |");
    }
    let _ = writeln!(out, "\n| --- |{}", " ---: |".repeat(buckets.len()));
    for (label, phase) in [
        ("netctl netavark-mode setup", "netctl-netavark-add"),
        ("netctl CNI ADD", "netctl-cni-add"),
        ("reference ADD (bridge+host-local+portmap)", "reference-add"),
        ("netctl netavark-mode teardown", "netctl-netavark-del"),
        ("netctl CNI DEL", "netctl-cni-del"),
        ("reference DEL", "reference-del"),
        ("netctl CNI CHECK", "netctl-cni-check"),
        ("reference CHECK", "reference-check"),
    ] {
        let _ = write!(out, "| {label} |");
        for &n in &buckets {
            let _ = write!(out, " {} |", cell(median(phase, n)));
        }
        let _ = writeln!(out);
    }
    let last = buckets.last().copied().unwrap_or(1);
    let ratio = |a: &str, b: &str| match (median(a, last), median(b, last)) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".to_owned(),
    };
    let _ = writeln!(
        out,
        "\nAt N={last}: CNI ADD / netavark-mode setup = {}; reference ADD / CNI ADD = {}; \
         CNI DEL / netavark-mode teardown = {}.",
        ratio("netctl-cni-add", "netctl-netavark-add"),
        ratio("reference-add", "netctl-cni-add"),
        ratio("netctl-cni-del", "netctl-netavark-del"),
    );
    for who in Who::ALL {
        let name = who.name();
        let get = |k: &str| {
            raw.meta
                .get(&format!("{name}-{k}"))
                .cloned()
                .unwrap_or_default()
        };
        let _ = write!(
            out,
            "{name}: port forward of the last container answered: {}",
            get("verified")
        );
        if who != Who::NetavarkMode {
            let _ = write!(out, "; failed CHECKs: {}", get("check-failures"));
            let err = get("check-error");
            if !err.is_empty() {
                let _ = write!(
                    out,
                    " (first: {})",
                    err.chars().take(200).collect::<String>()
                );
            }
        }
        let _ = writeln!(out, ".");
    }
    super::macvlan::table(&mut out, &buckets, opts.window, raw);
    out
}

/// `cargo xtask bench cni [--max N] [--window W] [--ports P]`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut opts = Options::parse(args)?;
    if !args.iter().any(|a| a == "--max") {
        opts.max = 100;
    }
    if !crate::is_root() {
        anyhow::bail!("the benchmark creates namespaces, links and firewall rules: run it as root");
    }
    for (pkg, cmd) in [
        ("containernetworking-plugins", "/usr/lib/cni/bridge"),
        ("iptables", "iptables"),
        ("socat", "socat"),
    ] {
        if !crate::command_exists(cmd) {
            anyhow::bail!("{pkg} is missing (`cargo xtask deps` installs it)");
        }
    }
    opts.netctl_bin = Some(super::netctl_binary()?);
    std::fs::create_dir_all(OUT_DIR).with_context(|| format!("cannot create {OUT_DIR}"))?;
    let path = Pass::Cni.raw_path();
    let _ = std::fs::remove_file(&path);
    sandbox::settle();
    println!(
        "xtask bench cni: one pass in a private sandbox (N up to {})",
        opts.max
    );
    let outcome = sandbox::run_pass(Pass::Cni, &opts);
    let raw = Raw::read(Pass::Cni, &path)?;
    let table = table(&opts, &raw);
    println!("\n{table}");
    std::fs::write(Path::new(OUT_DIR).join("cni.md"), &table)
        .context("cannot write target/bench/cni.md")?;
    println!(
        "xtask bench cni: raw samples in {}, table in {OUT_DIR}/cni.md",
        path.display()
    );
    outcome
}

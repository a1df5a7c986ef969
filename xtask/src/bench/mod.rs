//! `cargo xtask bench`: the benchmark that shows how fast netctl attaches, detaches and converges
//! containers, next to netavark (podman's backend) and the kernel floor, on the same machine in
//! one run. Benchmarks print figures; nothing here asserts a time.
//!
//! Suites (`cargo xtask bench [all|attach|bulk|ipam|dns] [OPTIONS]`, default `all`; `dns` is
//! `dns.rs`, on its own):
//! * attach/detach series — one process per container, the way a container engine calls its
//!   network backend: netctl (`netctl netavark setup|teardown`, netavark's JSON protocol),
//!   netavark itself with the very same JSON, and the floor (one `ip -batch` per namespace plus
//!   one `nft -f` doing the same kernel work). Latency of the N-th container, for buckets N = 1,
//!   10, 100, 500, 1000, as median and p95 of the containers N..N+window-1.
//! * bulk — `netctl apply` of one file with 1000 containers from empty, the no-op re-apply, and
//!   `netctl reload --all` after `nft flush ruleset`.
//! * cni (`cargo xtask bench cni`, on its own) — netctl as a CNI plugin against its netavark
//!   mode and the reference plugins (see `cni.rs`), then netctl's macvlan attach/detach against
//!   the reference `macvlan` + `host-local` plugins (see `macvlan.rs`).
//! * peak memory — `ru_maxrss` of the child (GNU time's `%M`) on separate probe runs, so the
//!   wrapper never sits inside a latency sample.
//!
//! Every pass runs in its own private sandbox: the xtask binary re-executes itself under
//! `unshare --net --mount --pid --fork --mount-proc --propagation private`, mounts tmpfs over
//! /run, /etc/netns and /var/lib/netctl, and wires a fake uplink to an "outside" namespace. The
//! machine's own interfaces, rules and state are never touched, and all traffic (the
//! port-forward check after each series) stays inside the sandbox.
//!
//! Invariants: everything is bounded — each series has a wall-time budget, each command a
//! timeout enforced by a watchdog that kills it by pid, each sandbox a timeout; results are
//! written line by line to `target/bench/raw-<pass>.tsv` as they are measured, and the outer
//! process turns them into the table and `target/bench/bench-<time>.json`.

mod bulk;
mod cni;
mod dns;
mod hot;
mod inproc;
mod macvlan;
mod report;
mod run;
mod sandbox;
mod series;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};

use self::report::Raw;
use self::series::Tool;

/// Where the raw samples, the JSON and the table go (under the workspace root).
const OUT_DIR: &str = "target/bench";
/// netavark as Debian's package installs it.
const DEBIAN_NETAVARK: &str = "/usr/lib/podman/netavark";
/// GNU time, for the peak-memory probes.
const GNU_TIME: &str = "/usr/bin/time";

/// Which measurements to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    All,
    Attach,
    Bulk,
}

/// The benchmark's knobs; the inner (sandboxed) process gets them back as arguments.
#[derive(Debug, Clone)]
pub struct Options {
    pub suite: Suite,
    /// The largest N of the attach/detach series (buckets 1, 10, 100, 500, 1000 up to it).
    pub max: usize,
    /// Containers measured per bucket: N..N+window-1.
    pub window: usize,
    /// The largest N for netavark, whose latency grows with N (it is far slower).
    pub netavark_max: usize,
    pub netavark: bool,
    pub floor: bool,
    /// Containers in the bulk file.
    pub bulk: usize,
    /// Published TCP ports per container.
    pub ports: usize,
    /// Wall-time budget of one attach (and, separately, one detach) series.
    pub budget: Duration,
    /// Let the bridge fall quiet before each measured window and each bulk case (see
    /// `sandbox::wait_until_quiet`); off, containers are attached back to back throughout.
    pub settle: bool,
    /// Binaries, filled in by the outer process for the inner one.
    pub netctl_bin: Option<PathBuf>,
    pub netavark_bin: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            suite: Suite::All,
            max: 1000,
            window: 5,
            netavark_max: 100,
            netavark: true,
            floor: true,
            bulk: 1000,
            ports: 10,
            budget: Duration::from_secs(300),
            settle: true,
            netctl_bin: None,
            netavark_bin: None,
        }
    }
}

const USAGE: &str =
    "usage: cargo xtask bench [all|attach|bulk|ipam|dns|cni] [--max N] [--window W] \
[--netavark-max N] [--no-netavark] [--no-floor] [--bulk N] [--ports P] [--budget SECS] \
[--no-settle]
  env NETCTL=PATH     benchmark this netctl binary instead of building target/release/netctl
  env NETAVARK=PATH   compare with this netavark instead of /usr/lib/podman/netavark";

impl Options {
    pub fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut opts = Options::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| -> anyhow::Result<&String> {
                it.next()
                    .with_context(|| format!("{name} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "all" => opts.suite = Suite::All,
                "attach" => opts.suite = Suite::Attach,
                "bulk" => opts.suite = Suite::Bulk,
                "--max" => opts.max = number("--max", value("--max")?)?,
                "--window" => opts.window = number("--window", value("--window")?)?,
                "--netavark-max" => {
                    opts.netavark_max = number("--netavark-max", value("--netavark-max")?)?;
                }
                "--no-netavark" => opts.netavark = false,
                "--no-floor" => opts.floor = false,
                "--no-settle" => opts.settle = false,
                "--bulk" => opts.bulk = number("--bulk", value("--bulk")?)?,
                "--ports" => opts.ports = number("--ports", value("--ports")?)?,
                "--budget" => {
                    opts.budget =
                        Duration::from_secs(number("--budget", value("--budget")?)? as u64);
                }
                "--netctl-bin" => opts.netctl_bin = Some(value("--netctl-bin")?.into()),
                "--netavark-bin" => opts.netavark_bin = Some(value("--netavark-bin")?.into()),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown bench argument `{other}`\n{USAGE}"),
            }
        }
        opts.check()?;
        Ok(opts)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.max == 0 || self.window == 0 || self.bulk == 0 || self.ports == 0 {
            bail!("--max, --window, --bulk and --ports must be at least 1");
        }
        // Host ports are 10000 + ports*i + k: they must stay below 65536 for every container.
        let containers = self.max.max(self.bulk) + 4 * self.window + 2;
        if 10_000 + self.ports * (containers + 1) > 65_535 {
            bail!(
                "{containers} containers x {} ports do not fit in host ports 10000..65535",
                self.ports
            );
        }
        if containers > 60_000 {
            bail!("at most 60000 containers fit in the benchmark's /16");
        }
        Ok(())
    }

    /// The options again as arguments, for the sandboxed inner process.
    fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            match self.suite {
                Suite::All => "all",
                Suite::Attach => "attach",
                Suite::Bulk => "bulk",
            }
            .to_string(),
        ];
        for (flag, value) in [
            ("--max", self.max),
            ("--window", self.window),
            ("--netavark-max", self.netavark_max),
            ("--bulk", self.bulk),
            ("--ports", self.ports),
            ("--budget", self.budget.as_secs() as usize),
        ] {
            args.push(flag.into());
            args.push(value.to_string());
        }
        if !self.netavark {
            args.push("--no-netavark".into());
        }
        if !self.floor {
            args.push("--no-floor".into());
        }
        if !self.settle {
            args.push("--no-settle".into());
        }
        for (flag, path) in [
            ("--netctl-bin", &self.netctl_bin),
            ("--netavark-bin", &self.netavark_bin),
        ] {
            if let Some(path) = path {
                args.push(flag.into());
                args.push(path.display().to_string());
            }
        }
        args
    }

    fn runs_series(&self) -> bool {
        matches!(self.suite, Suite::All | Suite::Attach)
    }

    fn runs_bulk(&self) -> bool {
        matches!(self.suite, Suite::All | Suite::Bulk)
    }
}

fn number(flag: &str, text: &str) -> anyhow::Result<usize> {
    text.parse()
        .with_context(|| format!("{flag} expects a whole number, got {text:?}"))
}

/// One sandboxed measurement pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Floor,
    /// The floor's kernel work from the benchmark's own process (`inproc.rs`).
    InProcess,
    Netctl,
    Bulk,
    Netavark,
    /// `cargo xtask bench cni` only (see `cni.rs`).
    Cni,
}

impl Pass {
    const ALL: [Pass; 6] = [
        Pass::Floor,
        Pass::InProcess,
        Pass::Netctl,
        Pass::Bulk,
        Pass::Netavark,
        Pass::Cni,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Pass::Floor => "floor",
            Pass::InProcess => "inproc",
            Pass::Netctl => "netctl",
            Pass::Bulk => "bulk",
            Pass::Netavark => "netavark",
            Pass::Cni => "cni",
        }
    }

    fn from_name(name: &str) -> anyhow::Result<Pass> {
        Pass::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .with_context(|| format!("unknown bench pass {name:?}"))
    }

    fn wanted(self, opts: &Options) -> bool {
        match self {
            Pass::Floor | Pass::InProcess => opts.runs_series() && opts.floor,
            Pass::Netctl => opts.runs_series(),
            Pass::Bulk => opts.runs_bulk(),
            Pass::Netavark => opts.runs_series() && opts.netavark,
            Pass::Cni => false,
        }
    }

    pub fn raw_path(self) -> PathBuf {
        Path::new(OUT_DIR).join(format!("raw-{}.tsv", self.name()))
    }
}

/// `cargo xtask bench ...` (everything but `ipam`), and the hidden `bench __inside PASS ...`
/// that the sandbox runs.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    if args.first().map(String::as_str) == Some("__dns_inside") {
        let opts = Options::parse(&args[1..])?;
        sandbox::prepare()?;
        return dns::dns_pass(&opts);
    }
    if args.first().map(String::as_str) == Some("dns") {
        let mut opts = Options::parse(&args[1..])?;
        if !crate::is_root() {
            bail!("the benchmark creates namespaces, links and nftables rules: run it as root");
        }
        opts.netctl_bin = Some(netctl_binary()?);
        println!("xtask bench: dns (private sandbox, aardvark-dns from the settings' default)");
        return sandbox::run_inner(&["__dns_inside"], &opts);
    }
    if args.first().map(String::as_str) == Some("__hot_inside") {
        let profiles = Path::new(args.get(1).context("__hot_inside needs a directory")?);
        let opts = Options::parse(&args[2..])?;
        return hot::inside(profiles, &opts);
    }
    if args.first().map(String::as_str) == Some("hot") {
        let mut opts = Options::parse(&args[1..])?;
        if !crate::is_root() {
            bail!("the workloads create namespaces, links and nftables rules: run it as root");
        }
        for tool in ["valgrind", "nm"] {
            if !crate::command_exists(tool) {
                bail!("`{tool}` is missing (apt-get install valgrind binutils)");
            }
        }
        // Laid out as the linker would without the list: valgrind names only the functions
        // of a program's `.text` section, and the list's own section is another one.
        let mut build = crate::cargo(&["build", "--release", "--quiet", "-p", "netctl"]);
        build.env("NETCTL_HOT_TEXT", "0");
        crate::step(
            "build netctl (release, without the hot-text section)",
            build,
        )?;
        opts.netctl_bin = Some(std::path::absolute("target/release/netctl")?);
        return hot::run(&opts);
    }
    if args.first().map(String::as_str) == Some("cni") {
        return cni::run(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("__inside") {
        let pass = Pass::from_name(args.get(1).context("__inside needs a pass")?)?;
        let opts = Options::parse(&args[2..])?;
        return sandbox::inside(pass, &opts);
    }
    let mut opts = Options::parse(args)?;
    if !crate::is_root() {
        bail!("the benchmark creates namespaces, links and nftables rules: run it as root");
    }
    ensure_tools(&opts)?;
    opts.netctl_bin = Some(netctl_binary()?);
    if opts.runs_series() && opts.netavark {
        opts.netavark_bin = Some(netavark_binary()?);
    }
    std::fs::create_dir_all(OUT_DIR).with_context(|| format!("cannot create {OUT_DIR}"))?;
    let started = std::time::SystemTime::now();
    let env = report::Environment::collect(&opts);
    println!("{}", env.summary());

    let mut raws = Vec::new();
    for pass in Pass::ALL.into_iter().filter(|p| p.wanted(&opts)) {
        let path = pass.raw_path();
        // A stale file from an earlier run must never be mistaken for this run's results.
        let _ = std::fs::remove_file(&path);
        sandbox::settle();
        println!("\nxtask bench: {} pass (private sandbox)", pass.name());
        let outcome = sandbox::run_pass(pass, &opts);
        // Keep what the pass measured even when it failed part-way; say so in the report.
        let raw = Raw::read(pass, &path)?;
        if let Err(err) = outcome {
            eprintln!("xtask bench: {} pass failed: {err:#}", pass.name());
            raws.push(raw.failed(format!("{err:#}")));
        } else {
            raws.push(raw);
        }
    }
    let report = report::Report::new(&opts, env, raws);
    let table = report.table();
    println!("\n{table}");
    println!("{}", report.aims_text());
    let json_path = report.write_json(started)?;
    std::fs::write(Path::new(OUT_DIR).join("table.md"), &table)
        .context("cannot write target/bench/table.md")?;
    println!(
        "xtask bench: raw samples in {}, table in {OUT_DIR}/table.md",
        json_path.display()
    );
    if let Some(failure) = report.first_failure() {
        bail!("a benchmark pass failed: {failure}");
    }
    Ok(())
}

/// The system tools the passes run; installed with apt-get (Debian) when missing.
fn ensure_tools(opts: &Options) -> anyhow::Result<()> {
    let mut wanted: Vec<(&str, &str)> = vec![
        ("iproute2", "ip"),
        ("nftables", "nft"),
        ("util-linux", "unshare"),
        ("socat", "socat"),
    ];
    if !Path::new(GNU_TIME).is_file() {
        wanted.push(("time", "time"));
    }
    let netavark_from_env = std::env::var_os("NETAVARK").is_some();
    if opts.runs_series() && opts.netavark {
        // netavark 1.4 (Debian 12) drives the firewall through the iptables command.
        wanted.push(("iptables", "iptables"));
        if !netavark_from_env && !Path::new(DEBIAN_NETAVARK).is_file() {
            wanted.push(("netavark", "netavark"));
        }
    }
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(pkg, cmd)| match *pkg {
            "time" => !Path::new(GNU_TIME).is_file(),
            "netavark" => !Path::new(DEBIAN_NETAVARK).is_file(),
            _ => !crate::command_exists(cmd),
        })
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("xtask bench: installing {missing:?}");
    let mut update = std::process::Command::new("apt-get");
    update.args(["update", "-qq"]);
    crate::step("apt-get update", update)?;
    let mut install = std::process::Command::new("apt-get");
    install
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    crate::step("apt-get install", install)
}

/// `NETCTL` names a prebuilt binary; otherwise the release build of the workspace.
fn netctl_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("NETCTL") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("NETCTL={} is not a file", path.display());
        }
        return Ok(std::path::absolute(path)?);
    }
    crate::step(
        "build netctl (release)",
        crate::cargo(&["build", "--release", "--quiet", "-p", "netctl"]),
    )?;
    Ok(std::path::absolute("target/release/netctl")?)
}

fn netavark_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("NETAVARK").map_or_else(|| DEBIAN_NETAVARK.into(), PathBuf::from);
    if !path.is_file() {
        bail!(
            "netavark not found at {} (set NETAVARK, or use --no-netavark)",
            path.display()
        );
    }
    Ok(std::path::absolute(path)?)
}

impl Tool {
    /// The tool a series pass measures.
    fn for_pass(pass: Pass, opts: &Options) -> anyhow::Result<Tool> {
        Ok(match pass {
            Pass::Floor => Tool::Floor,
            Pass::InProcess => Tool::InProcess,
            Pass::Netctl => Tool::Netctl(opts.netctl_bin.clone().context("no netctl binary")?),
            Pass::Netavark => {
                Tool::Netavark(opts.netavark_bin.clone().context("no netavark binary")?)
            }
            Pass::Bulk | Pass::Cni => bail!("the {} pass is not a series", pass.name()),
        })
    }
}

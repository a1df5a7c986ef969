//! The private sandbox every pass runs in, and what the passes share inside it.
//!
//! The outer process re-executes itself as `xtask bench __inside PASS ...` under `unshare
//! --net --mount --pid --fork --mount-proc --propagation private --kill-child`. Inside, tmpfs
//! hides the host's /run (its netns, netctl and xtables lock files, and the D-Bus socket, so a
//! netavark that looks for firewalld cannot reach the host's), /etc/netns and /var/lib/netctl;
//! loopback comes up, and a veth `uplink0` (192.0.2.10/24, default route) leads to a namespace
//! `outside` (192.0.2.1) that plays the internet for the port-forward checks.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::report::RawWriter;
use super::series::Tool;
use super::{Options, Pass, bulk, series};

/// Scratch space inside the sandbox (on the tmpfs over /run).
pub const SCRATCH: &str = "/run/netctl-bench";
/// The host side of the fake uplink.
pub const UPLINK_ADDR: &str = "192.0.2.10";
const OUTSIDE_NS: &str = "outside";

/// The last resort: a pass that is still running after this long is killed with its sandbox.
const PASS_TIMEOUT: Duration = Duration::from_secs(3600);

/// Runs one pass in a fresh sandbox, with its output on the terminal.
pub fn run_pass(pass: Pass, opts: &Options) -> anyhow::Result<()> {
    run_inner(&["__inside", pass.name()], opts)
}

/// Runs `xtask bench INNER... OPTIONS` in a fresh sandbox, with its output on the terminal.
pub fn run_inner(inner: &[&str], opts: &Options) -> anyhow::Result<()> {
    let me = std::env::current_exe().context("cannot find the xtask binary")?;
    let mut cmd = Command::new("unshare");
    cmd.args(crate::SANDBOX_UNSHARE)
        .args(["--kill-child", "--"])
        .arg(me)
        .arg("bench")
        .args(inner)
        .args(opts.to_args())
        .stdin(Stdio::null());
    let mut child = cmd.spawn().context("cannot start unshare")?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("the sandbox exited with {status}");
            }
            return Ok(());
        }
        if start.elapsed() > PASS_TIMEOUT {
            // --kill-child takes the sandbox's init, and with it every process inside, along.
            let _ = child.kill();
            let _ = child.wait();
            bail!("the pass ran longer than {PASS_TIMEOUT:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Inside the sandbox: prepare it and run the pass.
pub fn inside(pass: Pass, opts: &Options) -> anyhow::Result<()> {
    prepare()?;
    let mut raw = RawWriter::create(&pass.raw_path())?;
    raw.meta("load_before", &loadavg())?;
    match pass {
        Pass::Bulk => bulk::bulk_pass(opts, &mut raw)?,
        Pass::Cni => super::cni::cni_pass(opts, &mut raw)?,
        Pass::Floor | Pass::InProcess | Pass::Netctl | Pass::Netavark => {
            let tool = Tool::for_pass(pass, opts)?;
            series::series_pass(&tool, opts, &mut raw)?;
        }
    }
    raw.meta("load_after", &loadavg())?;
    Ok(())
}

pub fn prepare() -> anyhow::Result<()> {
    if std::process::id() != 1 {
        // Only the sandbox's init may mount over /run: refuse to run on the real host.
        bail!(
            "bench __inside must run as pid 1 of a private pid namespace (use cargo xtask bench)"
        );
    }
    for dir in ["/run", "/etc/netns", "/var/lib/netctl"] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {dir}"))?;
        super::run::setup("mount", &["-t", "tmpfs", "tmpfs", dir])?;
    }
    for dir in ["/run/netns", "/run/netctl", SCRATCH] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {dir}"))?;
    }
    let ip = |args: &[&str]| super::run::setup("ip", args);
    ip(&["link", "set", "lo", "up"])?;
    ip(&["netns", "add", OUTSIDE_NS])?;
    ip(&[
        "link", "add", "uplink0", "type", "veth", "peer", "name", "outside0", "netns", OUTSIDE_NS,
    ])?;
    ip(&[
        "addr",
        "add",
        &format!("{UPLINK_ADDR}/24"),
        "dev",
        "uplink0",
    ])?;
    ip(&["link", "set", "uplink0", "up"])?;
    ip(&["route", "add", "default", "via", "192.0.2.1"])?;
    ip(&["-n", OUTSIDE_NS, "link", "set", "lo", "up"])?;
    ip(&[
        "-n",
        OUTSIDE_NS,
        "addr",
        "add",
        "192.0.2.1/24",
        "dev",
        "outside0",
    ])?;
    ip(&["-n", OUTSIDE_NS, "link", "set", "outside0", "up"])?;
    Ok(())
}

/// Checks that a published port works end to end: a listener in namespace `netns` on
/// `container_port`, reached from the outside namespace at the uplink address and
/// `host_port`. Returns whether the marker came back. Bounded by socat's timeouts.
pub fn port_forward_works(netns: &str, host_port: u16, container_port: u16) -> bool {
    const MARKER: &str = "netctl-bench-ok";
    let Ok(mut listener) = Command::new("ip")
        .args(["netns", "exec", netns, "socat", "-T5"])
        .arg(format!("TCP-LISTEN:{container_port},reuseaddr"))
        .arg(format!("SYSTEM:echo {MARKER}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let mut ok = false;
    // The listener needs a moment to bind; retry rather than guess how long.
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let out = Command::new("ip")
            .args(["netns", "exec", OUTSIDE_NS, "socat", "-T2", "-"])
            .arg(format!("TCP:{UPLINK_ADDR}:{host_port},connect-timeout=2"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(MARKER)) {
            ok = true;
            break;
        }
    }
    let _ = listener.kill();
    let _ = listener.wait();
    ok
}

/// The 1-, 5- and 15-minute load averages, to judge how quiet the machine was.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Waits (at most 30 s) until the CPUs are mostly idle, so the kernel's asynchronous cleanup
/// of the previous sandbox's namespaces does not land in the next pass's samples.
pub fn settle() {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Some(before) = cpu_times() else { return };
        std::thread::sleep(Duration::from_millis(500));
        let Some(after) = cpu_times() else { return };
        let total = after.0.saturating_sub(before.0).max(1);
        let idle = after.1.saturating_sub(before.1);
        if idle * 100 / total >= 85 {
            return;
        }
    }
    eprintln!(
        "xtask bench: the machine is busy (load {}); figures will be noisy",
        loadavg()
    );
}

/// Waits (at most 60 s) until `link` has received nothing for 2 s, then for idle CPUs; returns
/// how long that took. A thousand new container interfaces each start IPv6 on their own (a
/// duplicate-address probe, router solicitations, multicast reports, as under podman), and
/// the bridge floods every one of those packets to every port: for about half a minute after a
/// bulk apply the kernel is busy delivering ~10 million of them, whoever measures what.
pub fn wait_until_quiet(link: &str) -> Duration {
    let start = Instant::now();
    let mut last = rx_packets(link);
    let mut quiet_since = Instant::now();
    while start.elapsed() < Duration::from_secs(60)
        && quiet_since.elapsed() < Duration::from_secs(2)
    {
        std::thread::sleep(Duration::from_millis(250));
        let now = rx_packets(link);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
    settle();
    start.elapsed()
}

/// Packets `link` has received (from /proc/net/dev, which shows the reader's namespace).
fn rx_packets(link: &str) -> Option<u64> {
    let dev = std::fs::read_to_string("/proc/self/net/dev").ok()?;
    dev.lines().find_map(|line| {
        let (name, counters) = line.split_once(':')?;
        (name.trim() == link)
            .then(|| counters.split_whitespace().nth(1)?.parse().ok())
            .flatten()
    })
}

/// (total, idle+iowait) jiffies over all CPUs.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total = fields.iter().sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total, idle))
}

/// Creates a named network namespace for a container (not measured).
pub fn add_netns(name: &str) -> anyhow::Result<()> {
    super::run::setup("ip", &["netns", "add", name])
}

/// True when `path` exists (used for the bulk file's managed namespaces).
pub fn exists(path: &str) -> bool {
    Path::new(path).exists()
}

//! `cargo xtask bench dns`: what serving names costs, in one private sandbox (the same one the
//! other passes use, see `sandbox`), with Debian's aardvark-dns. Prints figures; asserts none.
//!
//! * attach: `netctl connect` of the N-th container to a DNS network and to a network without
//!   DNS, as the containers come; N = 1 on the DNS network starts the server (one sample), the
//!   other rows are medians of containers N..N+window-1 (N = 10, 100).
//! * visible: from `connect` returning to the new name being answered at the gateway (a UDP
//!   query from the sandbox's host namespace, sent in a loop), same samples.
//! * no-op re-apply of a file with `--bulk` containers on a DNS network.

use std::fmt::Write as _;
use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::Options;
use super::report::Stats;

const PICKS: [usize; 3] = [1, 10, 100];

fn netctl(bin: &Path, args: &[&str]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .env("NETCTL_CONFIG", "/nonexistent")
        .output()
        .with_context(|| format!("run netctl {args:?}"))?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!(
            "netctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

/// One A query for `name`; whether an answer came back.
fn answered(sock: &UdpSocket, name: &str) -> bool {
    let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(u8::try_from(label.len()).expect("short label"));
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    if sock.send(&q).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(sock.recv(&mut buf), Ok(n) if n >= 12 && buf[7] > 0)
}

fn file(containers: usize, extra: &str) -> String {
    let mut out = String::from(
        "[networks.base]\nbridge = \"nb-base\"\nsubnets = [{ subnet = \"10.90.0.0/16\" }]\ndns = false\n\
         [networks.dnsnet]\nbridge = \"nb-dns\"\nsubnets = [{ subnet = \"10.91.0.0/16\" }]\n\
         [networks.plain]\nbridge = \"nb-plain\"\nsubnets = [{ subnet = \"10.92.0.0/16\" }]\ndns = false\n",
    );
    for i in 0..containers {
        let _ = write!(out, "[containers.c{i}]\nnetworks.base = {{}}\n{extra}");
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Inside the sandbox.
pub fn dns_pass(opts: &Options) -> anyhow::Result<()> {
    let bin = opts.netctl_bin.clone().context("no netctl binary")?;
    let scratch = Path::new(super::sandbox::SCRATCH);
    let window = opts.window.max(1);
    let max = *PICKS.last().expect("picks") + window - 1;
    let path = scratch.join("dns.toml");
    std::fs::write(&path, file(max, ""))?;
    let path = path.to_string_lossy().into_owned();
    netctl(&bin, &["apply", "-f", &path])?;
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.set_read_timeout(Some(Duration::from_millis(20)))?;
    sock.connect("10.91.0.1:53")?;
    // (connect without DNS, connect with DNS, return → answered), in ms, per container.
    let mut samples: Vec<(f64, f64, Option<f64>)> = Vec::with_capacity(max);
    for n in 1..=max {
        let c = format!("c{}", n - 1);
        let plain = netctl(&bin, &["connect", "plain", &c])?;
        let dns = netctl(&bin, &["connect", "dnsnet", &c])?;
        let returned = Instant::now();
        let mut visible = None;
        while returned.elapsed() < Duration::from_secs(2) {
            if answered(&sock, &c) {
                visible = Some(ms(returned.elapsed()));
                break;
            }
        }
        samples.push((ms(plain), ms(dns), visible));
    }
    println!(
        "| N | connect, no DNS (ms) | connect, DNS (ms) | DNS − no DNS (ms) | return → answered (ms) |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for n in PICKS {
        // The first DNS attach starts the server: its own row, one sample.
        let (label, range) = if n == 1 {
            ("1 (starts aardvark-dns, one sample)".to_owned(), 0..1)
        } else {
            (
                format!("{n}..{} (median)", n + window - 1),
                n - 1..n - 1 + window,
            )
        };
        let rows = &samples[range];
        let median = |values: Vec<f64>| Stats::of(values).map_or(f64::NAN, |s| s.median);
        let plain = median(rows.iter().map(|r| r.0).collect());
        let dns = median(rows.iter().map(|r| r.1).collect());
        let diff = median(rows.iter().map(|r| r.1 - r.0).collect());
        let unanswered = rows.iter().filter(|r| r.2.is_none()).count();
        let visible = if unanswered > 0 {
            format!("{unanswered} not answered in 2 s")
        } else {
            format!("{:.2}", median(rows.iter().filter_map(|r| r.2).collect()))
        };
        println!("| {label} | {plain:.1} | {dns:.1} | {diff:+.1} | {visible} |");
    }
    netctl(&bin, &["destroy", "--all"])?;

    // The no-op re-apply of many containers on a DNS network.
    let bulk = scratch.join("dns-bulk.toml");
    let text = file(opts.bulk, "networks.dnsnet = {}\n");
    std::fs::write(&bulk, text)?;
    let bulk = bulk.to_string_lossy().into_owned();
    let first = netctl(&bin, &["apply", "-f", &bulk])?;
    let mut noop: Vec<f64> = (0..5)
        .map(|_| netctl(&bin, &["apply", "-f", &bulk]).map(ms))
        .collect::<anyhow::Result<_>>()?;
    noop.sort_by(f64::total_cmp);
    println!(
        "\napply of {} containers on a DNS network: {:.0} ms; no-op re-apply: median {:.1} ms (5 runs)",
        opts.bulk,
        ms(first),
        noop[2]
    );
    netctl(&bin, &["destroy", "--all"])?;
    Ok(())
}

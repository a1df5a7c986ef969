//! `cargo xtask bench dns`: what serving names costs, in one private sandbox (the same one the
//! other passes use, see `sandbox`), with Debian's aardvark-dns. Prints figures; asserts none.
//!
//! * attach: `netctl connect` of the N-th container to a DNS network and to a network without
//!   DNS (N = 1, 10, 100, as the containers come); N = 1 on the DNS network starts the server.
//! * visible: from `connect` returning to the new name being answered at the gateway (a UDP
//!   query from the sandbox's host namespace, sent in a loop).
//! * no-op re-apply of a file with `--bulk` containers on a DNS network.

use std::fmt::Write as _;
use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::Options;

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
    let max = *PICKS.last().expect("picks");
    let path = scratch.join("dns.toml");
    std::fs::write(&path, file(max, ""))?;
    let path = path.to_string_lossy().into_owned();
    netctl(&bin, &["apply", "-f", &path])?;
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.set_read_timeout(Some(Duration::from_millis(20)))?;
    sock.connect("10.91.0.1:53")?;
    println!(
        "| N | connect, no DNS (ms) | connect, DNS (ms) | DNS − no DNS (ms) | return → answered (ms) |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for n in 1..=max {
        let c = format!("c{}", n - 1);
        let plain = netctl(&bin, &["connect", "plain", &c])?;
        let dns = netctl(&bin, &["connect", "dnsnet", &c])?;
        let returned = Instant::now();
        let mut visible = None;
        while returned.elapsed() < Duration::from_secs(2) {
            if answered(&sock, &c) {
                visible = Some(returned.elapsed());
                break;
            }
        }
        if PICKS.contains(&n) {
            println!(
                "| {n} | {:.1} | {:.1} | {:+.1} | {} |",
                ms(plain),
                ms(dns),
                ms(dns) - ms(plain),
                visible.map_or("not answered in 2 s".to_owned(), |v| format!(
                    "{:.2}",
                    ms(v)
                ))
            );
        }
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

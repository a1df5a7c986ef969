//! Crash safety: netctl killed with SIGKILL at a random moment of an apply or a destroy, over
//! and over. After each kill the next apply must succeed, `plan` must then be in sync, and a
//! `destroy --all` must leave nothing: no link, namespace, file, nft table, record or lease.
//!
//! The moments are random but reproducible: the seed is printed, and `NETCTL_CRASH_SEED=N`
//! replays a run.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netctl_testkit::{Sandbox, sandbox_test};
use netctl_tests::netctl_bin;
use netctl_tests::sandboxed::{ok, plan_code};

/// ~40 containers over two networks (one dual-stack), some on both, some publishing ports.
fn big_file() -> String {
    let mut text = String::from(
        "[networks.n1]\nbridge = \"nc-n1\"\nsubnets = [{ subnet = \"10.89.101.0/24\" }]\n\n\
         [networks.n2]\nbridge = \"nc-n2\"\nsubnets = [{ subnet = \"10.89.102.0/24\" }, { subnet = \"fd10:89:102::/64\" }]\n",
    );
    for i in 0..40 {
        let _ = write!(text, "\n[containers.k{i:02}]\n");
        match i % 3 {
            0 => text.push_str("networks.n1 = {}\n"),
            1 => text.push_str("networks.n2 = {}\n"),
            _ => text.push_str("networks.n1 = {}\nnetworks.n2 = {}\n"),
        }
        if i % 4 == 0 {
            let _ = writeln!(text, "ports = [\"{}:80\"]", 20000 + i);
        }
    }
    text
}

/// xorshift64*: enough randomness for kill moments, and reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let micros = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX).max(1);
        Duration::from_micros(r % micros)
    }
}

/// Starts netctl with `args`, kills it with SIGKILL after `after` (if it is still running), and
/// reaps it. Returns whether it was killed (rather than done already).
fn kill_during(args: &[&str], after: Duration) -> bool {
    let mut child = Command::new(netctl_bin())
        .args(args)
        .env("NETCTL_CONFIG", "/nonexistent/netctl.toml")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start netctl");
    std::thread::sleep(after);
    let killed = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    killed
}

/// Apply succeeds, and then plan says the machine is in sync.
fn converges(file: &str, after: &str) {
    let out = netctl_tests::sandboxed::netctl(&["apply", "-f", file]);
    assert!(
        out.status.success(),
        "the apply after {after} failed: {}",
        netctl_tests::describe(&out)
    );
    let (code, text) = plan_code(file);
    assert_eq!(code, 0, "not in sync after {after}:\n{text}");
}

/// Everything netctl could leave behind, as text: host links, named namespaces, files under
/// its directories, its nft table, its records and leases, a pending marker.
fn leftovers(sb: &Sandbox) -> String {
    let mut out = String::new();
    let links: BTreeSet<String> = sb
        .run(&["ip", "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect();
    let _ = writeln!(out, "links: {links:?}");
    for dir in ["/run/netns", "/etc/netns", "/run/netctl"] {
        let mut entries: Vec<String> = walk(Path::new(dir));
        entries.sort();
        let _ = writeln!(out, "{dir}: {entries:?}");
    }
    let _ = writeln!(
        out,
        "pending marker: {}",
        Path::new("/var/lib/netctl/pending.json").exists()
    );
    let tables = sb.run(&["nft", "list", "tables"]);
    let _ = writeln!(out, "nft: {}", tables.trim());
    let show: serde_json::Value = serde_json::from_str(&ok(&["-o", "json", "show"])).unwrap();
    for key in ["networks", "containers", "attachments", "leases", "helpers"] {
        let _ = writeln!(out, "{key}: {}", show[key]);
    }
    out
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        out.push(path.display().to_string());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&path));
        }
    }
    out
}

sandbox_test! {
    fn sigkill_at_any_moment_converges(sb) {
        sb.enable_forwarding();
        let file = sb.write_file("big.toml", &big_file()).display().to_string();
        let clean = leftovers(sb);
        assert!(clean.contains("/run/netns: [\"/run/netns/outside\"]"), "{clean}");
        let seed = std::env::var("NETCTL_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
        println!("crash seed: {seed} (NETCTL_CRASH_SEED={seed} replays it)");
        let mut rng = Rng(seed);

        // How long the whole operations take here, so kills fall inside them.
        let started = Instant::now();
        ok(&["apply", "-f", &file]);
        let apply_time = started.elapsed();
        let started = Instant::now();
        ok(&["destroy", "--all"]);
        let destroy_time = started.elapsed();
        println!("apply {apply_time:?}, destroy {destroy_time:?}");

        let mut kills = 0;
        for round in 0..20 {
            // From empty in even rounds, from a partly applied state in odd ones.
            if round % 2 == 1 {
                kill_during(&["apply", "-f", &file], rng.below(apply_time));
            }
            let at = rng.below(apply_time);
            kills += usize::from(kill_during(&["apply", "-f", &file], at));
            converges(&file, &format!("round {round}: apply killed at {at:?}"));

            let at = rng.below(destroy_time);
            kills += usize::from(kill_during(&["destroy", "--all"], at));
            converges(&file, &format!("round {round}: destroy killed at {at:?}"));

            ok(&["destroy", "--all"]);
            assert_eq!(clean, leftovers(sb), "round {round}: destroy --all left something behind");
        }
        println!("{kills} of 40 runs were killed part-way");
        assert!(kills >= 20, "most kills must land inside a run ({kills} of 40 did)");
    }
}

sandbox_test! {
    /// SIGTERM (systemd stopping a unit, a Ctrl-C) while netctl changes the machine waits for
    /// the change to finish: the process then ends by the signal, having left nothing
    /// half-done (no pending marker, plan in sync without any repair).
    fn sigterm_waits_for_the_change_to_finish(sb) {
        let file = sb.write_file("big.toml", &big_file()).display().to_string();
        let mut child = Command::new(netctl_bin())
            .args(["apply", "-f", &file])
            .env("NETCTL_CONFIG", "/nonexistent/netctl.toml")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start netctl");
        // Once it has started changing things (namespaces appear), ask it to stop.
        let started = sb.wait_for(Duration::from_secs(10), || {
            std::fs::read_dir("/run/netns").map_or(0, Iterator::count) > 3
        });
        assert!(started, "the apply never got going");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(status.signal(), Some(15), "it ends by SIGTERM, after the change: {status}");
        assert!(!Path::new("/var/lib/netctl/pending.json").exists(), "nothing was left half-done");
        let (code, text) = plan_code(&file);
        assert_eq!(code, 0, "the apply finished before the signal took effect:\n{text}");
    }
}

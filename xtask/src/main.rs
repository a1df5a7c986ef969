//! netctl's task runner: the one entry point for CI, system dependencies and benchmarks.
//!
//! * `cargo xtask ci`: everything CI checks — system packages, fmt, clippy (warnings denied),
//!   the whole test suite including privileged sandbox tests, and no pending snapshots.
//! * `cargo xtask deps`: installs the system packages the tests need (Debian, as root).
//! * `cargo xtask bench [all|attach|bulk|ipam]`: benchmarks (see `bench`); they print figures,
//!   nothing asserts times.
//! * `cargo xtask man [DIR]`: netctl's man pages (default `target/man`).
//! * `cargo xtask units`: `systemd-analyze verify` on config/systemd/ (see `units`).
//! * `cargo xtask deb [--check]`: the Debian package `target/debian/netctl_<version>_<arch>.deb`
//!   and, with `--check`, its contents, lintian and a run of the extracted binary (see `deb`).

mod bench;
mod deb;
mod units;

/// `unshare` options for a private sandbox: its own network, mount and pid namespaces (with
/// its own /proc), mounts not propagated back to the machine.
const SANDBOX_UNSHARE: [&str; 7] = [
    "--net",
    "--mount",
    "--pid",
    "--fork",
    "--mount-proc",
    "--propagation",
    "private",
];

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// Debian packages the test suite needs, with a command each provides (to check presence).
const SYSTEM_PACKAGES: &[(&str, &str)] = &[
    ("iproute2", "ip"),
    ("nftables", "nft"),
    ("passt", "pasta"),
    ("slirp4netns", "slirp4netns"),
    ("socat", "socat"),
    ("util-linux", "unshare"),
    ("procps", "sysctl"),
    ("podman", "podman"),
    ("runc", "runc"),
    ("busybox-static", "busybox"),
    // DNS by name: the server netctl drives, and `dig` for the tests (an absolute path works:
    // joining it to a PATH entry gives itself).
    ("aardvark-dns", "/usr/lib/podman/aardvark-dns"),
    ("bind9-dnsutils", "dig"),
    // The CNI tests: real containerd 1.6 with ctr, an OCI image built offline, and the
    // reference plugins the CNI bench compares with (`/usr/lib/cni/bridge`).
    ("containerd", "containerd"),
    ("umoci", "umoci"),
    ("containernetworking-plugins", "/usr/lib/cni/bridge"),
    // Packaging and its checks (`cargo xtask deb`, `cargo xtask units`).
    ("dpkg-dev", "dpkg-shlibdeps"),
    ("binutils", "strip"),
    ("lintian", "lintian"),
    ("systemd", "systemd-analyze"),
];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("deps") => deps(),
        Some("bench") => bench(&args[1..]),
        Some("demo") => demo(),
        Some("man") => man(args.get(1).map_or("target/man", String::as_str)),
        Some("units") => {
            step("build netctl", cargo(&["build", "--quiet", "-p", "netctl"]))?;
            units::verify(&root, &root.join("target/debug/netctl"))
        }
        Some("deb") => {
            let deb = deb::build(&root)?;
            if args.get(1).is_some_and(|a| a == "--check") {
                deb::check(&root, &deb)?;
            }
            Ok(())
        }
        Some("demo-inside") => {
            demo_inside(args.get(1).context("demo-inside needs the netctl path")?)
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <ci|deps|demo|bench [all|attach|bulk|ipam|dns|cni|hot]|man [DIR]|units|deb [--check]>"
            );
            bail!("unknown or missing task")
        }
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn ci() -> anyhow::Result<()> {
    deps()?;
    step("cargo fmt --check", cargo(&["fmt", "--all", "--check"]))?;
    step(
        "cargo clippy",
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    // Privileged tests need root; they fail loudly rather than skip, so say so up front.
    if !is_root() {
        bail!("`cargo xtask ci` runs the privileged sandbox tests and must run as root");
    }
    // Integration tests run the real `netctl` binary (target/debug/netctl): build it first,
    // test runners only build test targets.
    step("build netctl", cargo(&["build", "-p", "netctl"]))?;
    let mut test = if has_nextest() {
        cargo(&[
            "nextest",
            "run",
            "--workspace",
            "--all-features",
            "--no-fail-fast",
        ])
    } else {
        cargo(&["test", "--workspace", "--all-features", "--no-fail-fast"])
    };
    // Snapshots must already be up to date: never write new ones in CI.
    test.env("INSTA_UPDATE", "no").env("CI", "true");
    step("tests (including privileged sandbox tests)", test)?;
    check_no_pending_snapshots()?;
    let root = project_root();
    units::verify(&root, &root.join("target/debug/netctl"))?;
    let deb = deb::build(&root)?;
    deb::check(&root, &deb)?;
    println!("xtask ci: all checks passed");
    Ok(())
}

fn deps() -> anyhow::Result<()> {
    let missing: Vec<&str> = SYSTEM_PACKAGES
        .iter()
        .filter(|(_, cmd)| !command_exists(cmd))
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        println!("xtask deps: system packages present");
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing system packages {missing:?}; install them as root (apt-get install {})",
            missing.join(" ")
        );
    }
    println!("xtask deps: installing {missing:?}");
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    step("apt-get update", update)?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    step("apt-get install", install)?;
    for (pkg, cmd) in SYSTEM_PACKAGES {
        if !command_exists(cmd) {
            bail!("package {pkg} was installed but `{cmd}` is still missing");
        }
    }
    Ok(())
}

/// The quickstart, for real, in a private sandbox: a fresh network namespace (so the machine's
/// own interfaces are never touched) with private /run/netns, /etc/netns and state dirs.
fn demo() -> anyhow::Result<()> {
    deps()?;
    if !is_root() {
        bail!("the demo creates namespaces, bridges and nftables rules: run it as root");
    }
    step("build netctl", cargo(&["build", "--quiet", "-p", "netctl"]))?;
    let netctl = project_root().join("target/debug/netctl");
    let me = std::env::current_exe()?;
    let mut sandbox = Command::new("unshare");
    sandbox
        .args(SANDBOX_UNSHARE)
        .arg("--")
        .arg(me)
        .arg("demo-inside")
        .arg(netctl);
    step("quickstart in a private sandbox", sandbox)
}

fn demo_inside(netctl: &str) -> anyhow::Result<()> {
    for dir in ["/run/netns", "/etc/netns", "/run/netctl", "/var/lib/netctl"] {
        std::fs::create_dir_all(dir)?;
        run_quiet("mount", &["-t", "tmpfs", "-o", "mode=0755", "tmpfs", dir])?;
    }
    run_quiet("ip", &["link", "set", "lo", "up"])?;
    let example = "config/examples/quickstart.toml";
    let client = "config/examples/quickstart-client.toml";
    let show = |args: &[&str]| -> anyhow::Result<()> {
        println!("\n$ netctl {}", args.join(" "));
        let mut cmd = Command::new(netctl);
        cmd.args(args).env("NETCTL_CONFIG", "/nonexistent");
        let status = cmd.status()?;
        if !status.success() {
            bail!("netctl {} failed ({status})", args.join(" "));
        }
        Ok(())
    };
    // Two projects: quickstart owns the network and `web`; quickstart-client joins the network
    // as an external one with `client`.
    show(&["apply", "-f", example])?;
    show(&["apply", "-f", client])?;
    show(&["show"])?;
    show(&["inspect", "web"])?;
    // A web server in the `web` container, reached through the published port and by `client`.
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            "web",
            "socat",
            "TCP-LISTEN:80,reuseaddr,fork",
            "SYSTEM:echo hello from web",
        ])
        .spawn()?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let fetch = |what: &str, netns: Option<&str>, target: &str| -> anyhow::Result<bool> {
        println!("\n$ {what}");
        let mut cmd = match netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, "socat"]);
                cmd
            }
            None => Command::new("socat"),
        };
        let out = cmd
            .args(["-T2", "-", target])
            .stdin(std::process::Stdio::null())
            .output()?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        Ok(String::from_utf8_lossy(&out.stdout).contains("hello from web"))
    };
    let published = fetch(
        "socat - TCP:127.0.0.1:8080   # the published port",
        None,
        "TCP:127.0.0.1:8080",
    )?;
    let shared = fetch(
        "ip netns exec client socat - TCP:10.89.10.10:80   # client, on the shared network",
        Some("client"),
        "TCP:10.89.10.10:80",
    )?;
    let _ = server.kill();
    let _ = server.wait();
    show(&["apply", "-f", example])?;
    show(&["destroy", "-f", client])?;
    show(&["destroy", "--all"])?;
    if !published {
        bail!("the published port did not answer");
    }
    if !shared {
        bail!("client did not reach web on the shared network");
    }
    println!(
        "\nquickstart ok: two projects applied, web answered on 127.0.0.1:8080 and to client on the shared network, re-applied with no changes, destroyed"
    );
    Ok(())
}

/// `netctl man DIR` with the debug build.
fn man(dir: &str) -> anyhow::Result<()> {
    step("build netctl", cargo(&["build", "--quiet", "-p", "netctl"]))?;
    let mut man = Command::new(project_root().join("target/debug/netctl"));
    man.arg("man").arg(dir);
    step(&format!("man pages into {dir}"), man)
}

fn run_quiet(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(program).args(args).status()?;
    if !status.success() {
        bail!("{program} {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn bench(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("ipam") => step(
            "IPAM benchmark",
            cargo(&[
                "run",
                "--release",
                "--quiet",
                "-p",
                "netctl-state",
                "--example",
                "ipam_bench",
            ]),
        ),
        _ => bench::run(args),
    }
}

fn check_no_pending_snapshots() -> anyhow::Result<()> {
    let mut pending = Vec::new();
    find_pending_snapshots(Path::new("."), &mut pending);
    if !pending.is_empty() {
        bail!("pending insta snapshots (review, accept and commit them): {pending:?}");
    }
    let untracked = Command::new("git")
        .args(["ls-files", "--others", "--exclude-standard", "--", "*.snap"])
        .output()
        .context("run git ls-files")?;
    let untracked = String::from_utf8_lossy(&untracked.stdout);
    if !untracked.trim().is_empty() {
        bail!("snapshots written but not committed:\n{untracked}");
    }
    Ok(())
}

fn find_pending_snapshots(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if name != "target" && name != ".git" {
                find_pending_snapshots(&path, found);
            }
        } else if name.ends_with(".snap.new") || name.ends_with(".pending-snap") {
            found.push(path);
        }
    }
}

fn cargo(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args);
    cmd
}

fn step(what: &str, mut cmd: Command) -> anyhow::Result<()> {
    println!("xtask: {what}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn has_nextest() -> bool {
    cargo(&["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn command_exists(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(cmd).is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

//! Helpers shared by netctl's integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace root")
        .to_path_buf()
}

/// The `netctl` binary built alongside this test (cargo builds workspace binaries before
/// running tests: `target/<profile>/netctl`, next to the `deps/` directory of test executables).
///
/// `NETCTL_TEST_BIN` names another binary instead: how a test is shown to fail on an older
/// netctl (build it from that commit, point this at it, run the test).
pub fn netctl_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NETCTL_TEST_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps");
    let bin = profile_dir.join("netctl");
    assert!(
        bin.is_file(),
        "netctl binary not found at {} (build it: cargo build -p netctl)",
        bin.display()
    );
    bin
}

/// A `netctl` command whose settings all point into `root` and which ignores any host config.
pub fn netctl(root: &Path) -> Command {
    let mut cmd = Command::new(netctl_bin());
    cmd.current_dir(workspace_root())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NETCTL_CONFIG", root.join("netctl.toml"))
        .env("NETCTL_STATE_DIR", root.join("state"))
        .env("NETCTL_RUN_DIR", root.join("run"))
        .env("NETCTL_NETNS_DIR", root.join("netns"))
        .env("NETCTL_ETC_NETNS_DIR", root.join("etc-netns"));
    cmd
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// netctl inside a privileged test's sandbox, whose private mounts are netctl's default paths
/// (`/var/lib/netctl`, `/run/netctl`, `/run/netns`, `/etc/netns`); no settings file is read.
pub mod sandboxed {
    use std::process::{Command, Output, Stdio};

    use super::{describe, netctl_bin};

    /// Runs netctl with `args`.
    pub fn netctl(args: &[&str]) -> Output {
        Command::new(netctl_bin())
            .args(args)
            .env("NETCTL_CONFIG", "/nonexistent/netctl.toml")
            .stdin(Stdio::null())
            .output()
            .expect("run netctl")
    }

    /// Runs netctl with `args` and returns its stdout; fails the test unless it succeeds.
    pub fn ok(args: &[&str]) -> String {
        let out = netctl(args);
        assert!(out.status.success(), "netctl {args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs netctl with `args`, expecting it to fail; returns stdout and stderr together.
    pub fn fails(args: &[&str]) -> String {
        let out = netctl(args);
        assert!(
            !out.status.success(),
            "netctl {args:?} should have failed: {}",
            describe(&out)
        );
        assert_ne!(out.status.code(), Some(2), "a failure never exits 2");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// The names of the containers netctl has records of (`show -o json`).
    pub fn recorded_containers() -> std::collections::BTreeSet<String> {
        let text = ok(&["-o", "json", "show"]);
        let show: serde_json::Value = serde_json::from_str(&text).expect("show JSON");
        show["containers"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|c| c["name"].as_str().map(ToOwned::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The host-side veths netctl made for containers (`nc` + 13 hex digits) in `sb`.
    pub fn host_veths(sb: &netctl_testkit::Sandbox) -> Vec<String> {
        sb.run(&["ip", "-o", "link", "show", "type", "veth"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_owned())
            .filter(|n| n.starts_with("nc") && n.len() == 15)
            .collect()
    }

    /// `plan --detailed-exitcode`: 0 in sync, 2 pending; anything else fails the test.
    pub fn plan_code(file: &str) -> (i32, String) {
        let out = netctl(&["plan", "-f", file, "--detailed-exitcode"]);
        let code = out.status.code().expect("exit code");
        assert!(code == 0 || code == 2, "plan failed: {}", describe(&out));
        (code, String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

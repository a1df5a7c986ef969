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
pub fn netctl_bin() -> PathBuf {
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

//! The `netctl` command line as users and scripts meet it: exit codes, JSON errors, validate.

use netctl_tests::{describe, netctl, workspace_root};

#[test]
fn examples_validate_clean() {
    let tmp = tempfile::tempdir().unwrap();
    for example in [
        "config/examples/quickstart.toml",
        "config/examples/multi-network.toml",
    ] {
        let out = netctl(tmp.path())
            .args(["validate", "-f", example])
            .output()
            .unwrap();
        assert!(out.status.success(), "{example}: {}", describe(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("valid"), "{example}: {stdout}");
    }
}

#[test]
fn invalid_file_fails_with_located_diagnostics_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.toml");
    std::fs::write(
        &file,
        "[networks.web]\nsubnets = [{ subnet = \"10.89.0.0/24\", gateway = \"10.99.0.1\" }]\n\n[containers.api]\nnetworks.nope = {}\n",
    )
    .unwrap();
    let out = netctl(tmp.path())
        .arg("validate")
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("{}:", file.display());
    let located: Vec<&str> = stderr.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert!(
        located.len() >= 2,
        "both errors reported at once:\n{stderr}"
    );
    for line in located {
        let rest = &line[prefix.len()..];
        let mut parts = rest.splitn(3, ':');
        let line_no: u32 = parts.next().unwrap().parse().expect("line number");
        let col: u32 = parts.next().unwrap().parse().expect("column number");
        assert!(line_no > 0 && col > 0, "{line}");
    }
    // validate never creates state.
    assert!(!tmp.path().join("state").exists());
}

#[test]
fn json_failure_is_one_object_on_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.toml");
    std::fs::write(&file, "[networks.\"bad name\"]\n").unwrap();
    let out = netctl(tmp.path())
        .args(["-o", "json", "validate", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let value: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    assert!(
        value["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{value}"
    );
    assert!(
        value["diagnostics"]
            .as_array()
            .is_some_and(|d| !d.is_empty()),
        "{value}"
    );
}

#[test]
fn missing_file_is_a_clear_error_not_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = netctl(tmp.path())
        .args(["validate", "-f", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.toml"));
}

#[test]
fn settings_errors_name_the_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let out = netctl(tmp.path())
        .env("NETCTL_FIREWALL_DRIVER", "iptables")
        .args(["validate", "-f", "config/examples/quickstart.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(stderr.contains("firewall_driver"), "{}", describe(&out));
}

#[test]
fn config_file_layer_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("netctl.toml"), "no_such_setting = 1\n").unwrap();
    let out = netctl(tmp.path())
        .args(["validate", "-f"])
        .arg(workspace_root().join("config/examples/quickstart.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
}

/// apply and plan check the file while they take the lock and look at the system, but a bad
/// file is still reported first, and without waiting for a lock another operation holds; a good
/// file waits for the lock as before (and here gives up, naming the lock).
#[test]
fn a_bad_file_is_reported_without_waiting_for_a_busy_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let _held = netctl_state::OperationLock::acquire(&state, std::time::Duration::from_secs(1))
        .expect("take the state lock");
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[networks.web]\nmtu = \"big\"\n").unwrap();
    let good = tmp.path().join("good.toml");
    std::fs::write(&good, "[networks.web]\n").unwrap();
    for command in ["apply", "plan"] {
        let out = netctl(tmp.path())
            .env("NETCTL_LOCK_TIMEOUT", "1")
            .args([command, "-f"])
            .arg(&bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("nothing was changed"),
            "{command}: {stderr}"
        );
        assert!(stderr.contains("networks.web.mtu"), "{command}: {stderr}");
        assert!(!stderr.contains("gave up"), "{command}: {stderr}");

        let out = netctl(tmp.path())
            .env("NETCTL_LOCK_TIMEOUT", "1")
            .args([command, "-f"])
            .arg(&good)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("gave up"), "{command}: {stderr}");
        assert!(stderr.contains("netctl.lock"), "{command}: {stderr}");
    }
}

/// `--version` names the commit the binary was built from.
#[test]
fn version_names_the_git_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let out = netctl(tmp.path()).arg("--version").output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let version = String::from_utf8_lossy(&out.stdout);
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(head.status.success(), "the tests run in a git checkout");
    let head = String::from_utf8_lossy(&head.stdout);
    assert!(
        version.starts_with("netctl ") && version.contains(&format!("(git {}", head.trim())),
        "{version}"
    );
}

/// Completion scripts go to stdout, need no settings (a broken settings file does not matter)
/// and are in the shell's own language.
#[test]
fn completions_for_each_shell() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("netctl.toml"), "no_such_setting = 1\n").unwrap();
    for (shell, marker) in [
        ("bash", "complete -F _netctl"),
        ("zsh", "#compdef netctl"),
        ("fish", "complete -c netctl"),
    ] {
        let out = netctl(tmp.path())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {}", describe(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("apply"), "{shell}");
        assert!(out.stderr.is_empty(), "{shell}: {}", describe(&out));
    }
    let out = netctl(tmp.path())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
}

/// `netavark` after a netctl option is refused with a message saying where it goes; podman
/// always puts it first (or calls the binary `netavark`).
#[test]
fn netavark_must_come_first() {
    let tmp = tempfile::tempdir().unwrap();
    let out = netctl(tmp.path())
        .args(["-o", "json", "netavark", "version"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        value["error"]
            .as_str()
            .is_some_and(|e| e.contains("first argument")),
        "{value}"
    );
    let out = netctl(tmp.path())
        .args(["netavark", "version"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["program"], "netctl", "{value}");
}

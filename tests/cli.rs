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

/// Usage errors exit 64, never 2 (what `plan --detailed-exitcode` means by "changes
/// pending"), and with `-o json` they are one JSON object on stdout; help still succeeds.
#[test]
fn usage_errors_exit_64_and_speak_json_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| netctl(tmp.path()).args(args).output().unwrap();
    for args in [
        &["version"][..],
        &["plan", "--bogus"],
        &["plan", "--detailed-exitcode"],
        &["apply", "-f"],
        &["-o", "yaml", "show"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", describe(&out));
        assert!(out.stdout.is_empty(), "{args:?}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
    for args in [
        &["-o", "json", "plan", "--bogus"][..],
        &["plan", "--output=json", "--detailed-exitcode"],
        &["-ojson", "version"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", describe(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", describe(&out)));
        let error = json["error"].as_str().unwrap();
        assert!(error.starts_with("usage: "), "{error}");
    }
    let out = run(&["version"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand 'version'"),
        "{}",
        describe(&out)
    );
    for args in [&["--help"][..], &["plan", "-h"], &["--version"]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", describe(&out));
        assert!(!out.stdout.is_empty());
    }
}

#[test]
fn settings_errors_name_the_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let out = netctl(tmp.path())
        .env("NETCTL_FIREWALL_DRIVER", "iptables")
        .arg("settings")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "NETCTL_FIREWALL_DRIVER: error: invalid firewall_driver: `iptables` is not one of `nftables`, `none`"
        ),
        "{}",
        describe(&out)
    );
}

/// Every mistake in the settings file at once, each at its line and column; a file named by
/// `--config` must exist; `validate` reads no settings, so a broken file does not stop it.
#[test]
fn settings_files_are_checked_like_desired_state_files() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("netctl.toml");
    std::fs::write(
        &file,
        "stat_dir = \"/x\"\nlock_timeout = -1\nport_in_use = \"maybe\"\n",
    )
    .unwrap();
    let out = netctl(tmp.path()).arg("settings").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = file.display();
    for expected in [
        format!("{at}:1:1: error: unknown setting `stat_dir`; did you mean `state_dir`?"),
        format!(
            "{at}:2:16: error: invalid lock_timeout: `-1` is not a whole number of zero or more"
        ),
        format!("{at}:3:15: error: invalid port_in_use: `maybe` is not one of `refuse`, `warn`"),
        "invalid settings: 3 errors".to_owned(),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    let out = netctl(tmp.path())
        .args(["validate", "-f", "config/examples/quickstart.toml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));

    let out = netctl(tmp.path())
        .args(["--config", "/nonexistent/netctl.toml", "settings"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read the settings file /nonexistent/netctl.toml"),
        "{}",
        describe(&out)
    );
}

#[test]
fn config_file_layer_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("netctl.toml"), "lock_timeout = 7\n").unwrap();
    let out = netctl(tmp.path()).arg("settings").output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("lock_timeout = 7\n"));
    std::fs::write(tmp.path().join("netctl.toml"), "no_such_setting = 1\n").unwrap();
    let out = netctl(tmp.path()).arg("settings").output().unwrap();
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
    assert_eq!(out.status.code(), Some(64), "a usage error");
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

/// A user without root is told so, not just "Permission denied"; a mistake in the input is
/// reported as such, without the hint. (Runs as `nobody` when the tests run as root.)
#[test]
fn users_without_root_get_a_hint() {
    use std::os::unix::process::CommandExt as _;
    if !nix::unistd::geteuid().is_root() {
        return; // Needs root to become another user; CI runs as root.
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = netctl(tmp.path())
        .env("NETCTL_STATE_DIR", "/var/lib/netctl-hint-test")
        .arg("show")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("hint: netctl manages the host's network"),
        "{stderr}"
    );
    let file = tmp.path().join("bad.toml");
    std::fs::write(&file, "[networks.web]\nmtu = 1\n").unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = netctl(tmp.path())
        .args(["validate", "-f"])
        .arg(&file)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("hint:"),
        "{}",
        describe(&out)
    );
}

/// Logs and diagnostics written to a pipe carry no colour codes.
#[test]
fn redirected_output_has_no_colour() {
    let tmp = tempfile::tempdir().unwrap();
    if !nix::unistd::geteuid().is_root() {
        return; // `show` needs root to look at the host; CI runs as root.
    }
    let out = netctl(tmp.path())
        .env("NETCTL_LOG", "debug")
        .arg("show")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!out.stderr.is_empty(), "debug logs were written");
    assert!(
        !out.stderr.contains(&0x1b) && !out.stdout.contains(&0x1b),
        "{}",
        describe(&out)
    );
}

/// Reads do not wait for a running operation: with the lock held and the store open for
/// writing in another process (here, this test), `show` and `network ls` answer at once from
/// the last committed state, while `plan` waits for the lock and gives up.
#[test]
fn reads_do_not_wait_for_the_lock() {
    if !nix::unistd::geteuid().is_root() {
        return; // `show` looks at the host's links; CI runs as root.
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let _held = netctl_state::OperationLock::acquire(&state, std::time::Duration::from_secs(1))
        .expect("take the state lock");
    let _writer = netctl_state::Store::open(&state).expect("open the store to write");
    for args in [&["show"][..], &["network", "ls"]] {
        let out = netctl(tmp.path())
            .env("NETCTL_LOCK_TIMEOUT", "1")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", describe(&out));
    }
    let out = netctl(tmp.path())
        .env("NETCTL_LOCK_TIMEOUT", "1")
        .args(["plan", "-f", "config/examples/quickstart.toml"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("gave up"),
        "{}",
        describe(&out)
    );
}

/// The CNI entry: exec'd with no arguments and CNI_COMMAND set (as runtimes do) or as
/// `netctl cni`; answers VERSION and refuses a bad environment with the spec's JSON, before
/// reading settings or state.
#[test]
fn cni_entry_answers_version_and_refuses_bad_input() {
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)], stdin: &str| {
        let mut child = netctl(tmp.path())
            .args(args)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // netctl may refuse (a bad environment) and exit before it reads its input.
        match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.unwrap(),
        }
        let out = child.wait_with_output().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(&out)));
        (out.status.code(), json)
    };
    let (code, json) = run(
        &[],
        &[("CNI_COMMAND", "VERSION")],
        r#"{"cniVersion":"0.4.0"}"#,
    );
    assert_eq!(code, Some(0));
    assert_eq!(
        json,
        serde_json::json!({"cniVersion": "0.4.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]})
    );
    let (code, json) = run(&["cni"], &[], "{}");
    assert_eq!((code, json["code"].as_u64()), (Some(1), Some(4)), "{json}");
    let add = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_NETNS", "/run/netns/c1"),
    ];
    let (code, json) = run(&[], &add, r#"{"cniVersion":"0.2.0","name":"web"}"#);
    assert_eq!((code, json["code"].as_u64()), (Some(1), Some(1)), "{json}");
    let (_, json) = run(&[], &add, "not json");
    assert_eq!(json["code"].as_u64(), Some(6), "{json}");
    let (_, json) = run(&[], &add[..3], r#"{"cniVersion":"1.0.0","name":"web"}"#);
    assert_eq!(json["code"].as_u64(), Some(4), "{json}");
    assert!(
        json["msg"].as_str().unwrap().contains("CNI_NETNS"),
        "{json}"
    );
}

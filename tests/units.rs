//! The systemd units in config/systemd/ (the package installs them; `cargo xtask units` runs
//! `systemd-analyze verify` on them): what each one promises, directive by directive.

use std::collections::BTreeMap;

use netctl_tests::{describe, netctl, workspace_root};

/// A unit file as `(section, key) -> values`, comments and blank lines left out.
type Unit = BTreeMap<(String, String), Vec<String>>;

fn parse(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            name.clone_into(&mut section);
            continue;
        }
        let (key, value) = line.split_once('=').expect("key=value");
        unit.entry((section.clone(), key.trim().to_owned()))
            .or_default()
            .push(value.trim().to_owned());
    }
    unit
}

fn unit(name: &str) -> Unit {
    let path = workspace_root().join("config/systemd").join(name);
    parse(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Every value of a key, split into words (`After=a b` and two `After=` lines alike).
fn words(unit: &Unit, section: &str, key: &str) -> Vec<String> {
    unit.get(&(section.to_owned(), key.to_owned()))
        .into_iter()
        .flatten()
        .flat_map(|v| v.split_whitespace().map(str::to_owned))
        .collect()
}

/// The units' directives as the package ships them.
#[test]
fn units_snapshot() {
    for name in ["netctl-apply.service", "netctl-firewall-reload.service"] {
        insta::assert_debug_snapshot!(name, unit(name));
    }
}

/// Boot: apply the desired state once the network is up and after the firewall services have
/// loaded their rulesets (which flush netctl's table), only when there is a file to apply.
#[test]
fn apply_unit_applies_the_desired_state_at_boot() {
    let u = unit("netctl-apply.service");
    assert_eq!(words(&u, "Service", "Type"), ["oneshot"]);
    assert_eq!(words(&u, "Service", "RemainAfterExit"), ["yes"]);
    assert_eq!(
        words(&u, "Unit", "ConditionPathExists"),
        ["/etc/netctl/desired.toml"]
    );
    let after = words(&u, "Unit", "After");
    for needed in [
        "network-online.target",
        "nftables.service",
        "firewalld.service",
    ] {
        assert!(after.iter().any(|a| a == needed), "After= lacks {needed}");
    }
    assert!(words(&u, "Unit", "Wants").contains(&"network-online.target".to_owned()));
    assert_eq!(
        words(&u, "Service", "ExecStart"),
        ["/usr/bin/netctl", "apply", "-f", "/etc/netctl/desired.toml"]
    );
    assert_eq!(words(&u, "Install", "WantedBy"), ["multi-user.target"]);
}

/// A restart of a firewall service restarts the hook (PartOf=, which only reaches an active
/// unit, hence RemainAfterExit=), a reload reloads it (ReloadPropagatedFrom=), and starting a
/// firewall service starts it (WantedBy=); each runs `netctl reload --all` after the firewall.
#[test]
fn firewall_hook_follows_both_firewall_services() {
    let u = unit("netctl-firewall-reload.service");
    let firewalls = ["nftables.service", "firewalld.service"];
    for key in ["PartOf", "ReloadPropagatedFrom"] {
        assert_eq!(words(&u, "Unit", key), firewalls, "{key}");
    }
    assert_eq!(words(&u, "Install", "WantedBy"), firewalls);
    let after = words(&u, "Unit", "After");
    for needed in firewalls.iter().chain(&["netctl-apply.service"]) {
        assert!(after.iter().any(|a| a == needed), "After= lacks {needed}");
    }
    assert_eq!(words(&u, "Service", "Type"), ["oneshot"]);
    assert_eq!(words(&u, "Service", "RemainAfterExit"), ["yes"]);
    for key in ["ExecStart", "ExecReload"] {
        assert_eq!(
            words(&u, "Service", key),
            ["/usr/bin/netctl", "reload", "--all"],
            "{key}"
        );
    }
}

/// The command lines the units run are ones netctl's parser accepts.
#[test]
fn unit_command_lines_parse() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["netctl-apply.service", "netctl-firewall-reload.service"] {
        let u = unit(name);
        for key in ["ExecStart", "ExecReload"] {
            let argv = words(&u, "Service", key);
            assert_eq!(argv[0], "/usr/bin/netctl", "{name} {key}");
            // `--help` after the arguments: clap parses them all, then prints help.
            let out = netctl(tmp.path())
                .args(&argv[1..])
                .arg("--help")
                .output()
                .unwrap();
            assert!(out.status.success(), "{name} {key}: {}", describe(&out));
        }
    }
}

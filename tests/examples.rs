//! Every file under `config/examples` is applied for real, in a sandbox of its own: it applies,
//! a second apply changes nothing, traffic flows the way the file says (every published TCP
//! port answers from the host; containers sharing a network reach each other on it), and
//! destroy leaves the sandbox as it was. What the traffic checks expect is read from the file
//! itself, so an example added later is covered without a new test. A file that joins another
//! project's network (`external = true`) is applied after the example that declares it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use netctl_testkit::{Proto, Sandbox, sandbox_test};
use netctl_tests::sandboxed::{ok, plan_code};
use netctl_tests::workspace_root;
use netctl_types::{ContainerMode, NetnsSpec};

fn examples() -> Vec<PathBuf> {
    let dir = workspace_root().join("config/examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples in {}", dir.display());
    files
}

/// The container's IPv4 address on each of its networks, as netctl reports it.
fn addresses(container: &str) -> BTreeMap<String, String> {
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&["-o", "json", "inspect", container])).unwrap();
    inspect["Networks"]
        .as_object()
        .map(|nets| {
            nets.iter()
                .filter_map(|(net, v)| {
                    let ip = v["IPAddress"].as_str()?;
                    (!ip.is_empty()).then(|| (net.clone(), ip.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The port containers listen on for the container-to-container checks.
const PEER_PORT: u16 = 7777;

/// The examples `file` needs applied first: those declaring the networks it uses as external.
fn needs(file: &Path, all: &[PathBuf]) -> Vec<String> {
    let desired = |f: &Path| {
        let text = std::fs::read_to_string(f).unwrap();
        netctl_validate::validate(&f.display().to_string(), &text)
            .state
            .unwrap_or_else(|| panic!("{} does not validate", f.display()))
            .desired
    };
    let mine = desired(file);
    let mut out = Vec::new();
    for (name, _) in mine.networks.iter().filter(|(_, n)| n.external) {
        let owner = all
            .iter()
            .filter(|f| f.as_path() != file)
            .find(|f| desired(f).networks.get(name).is_some_and(|n| !n.external))
            .unwrap_or_else(|| panic!("{}: no example declares network {name}", file.display()));
        out.push(owner.display().to_string());
    }
    out
}

fn check_example(sb: &Sandbox, files: &[String]) {
    let file = files.last().expect("a file").as_str();
    let before = sb.dump();
    // Every container of every file applied, with its published ports.
    let mut containers = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        let valid = netctl_validate::validate(f, &text)
            .state
            .unwrap_or_else(|| panic!("{f} does not validate"));
        ok(&["apply", "-f", f]);
        for (name, spec) in &valid.desired.containers {
            containers.push((name.clone(), spec.clone(), valid.ports_of(name).to_vec()));
        }
    }
    for f in files {
        assert!(
            ok(&["apply", "-f", f]).contains("No changes"),
            "{f}: a second apply changed something"
        );
        assert_eq!(plan_code(f).0, 0, "{f}: not in sync after apply");
    }

    let mut listeners = Vec::new();
    let mut on_network: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (name, spec, ports) in &containers {
        assert_eq!(
            spec.netns,
            NetnsSpec::Managed,
            "{file}: the check expects managed namespaces"
        );
        for port in ports.iter().filter(|p| p.protocol == "tcp") {
            listeners.push(sb.listen(Some(name), Proto::Tcp, "0.0.0.0", port.container_port));
            let host = if port.host_ip.is_empty() {
                "127.0.0.1"
            } else {
                port.host_ip.as_str()
            };
            assert!(
                sb.probe(None, Proto::Tcp, host, port.host_port).is_some(),
                "{file}: {host}:{} does not reach {name}:{}",
                port.host_port,
                port.container_port
            );
        }
        if spec.mode == ContainerMode::Bridge {
            listeners.push(sb.listen(Some(name), Proto::Tcp, "0.0.0.0", PEER_PORT));
            for (net, ip) in addresses(name) {
                on_network.entry(net).or_default().push((name.clone(), ip));
            }
        }
    }
    for (net, members) in &on_network {
        for (from, _) in members {
            for (to, ip) in members.iter().filter(|(to, _)| to != from) {
                assert!(
                    sb.probe(Some(from), Proto::Tcp, ip, PEER_PORT).is_some(),
                    "{file}: {from} does not reach {to} at {ip} on {net}"
                );
            }
        }
    }
    drop(listeners);
    ok(&["destroy", "--all"]);
    assert_eq!(before, sb.dump(), "{file}: destroy left something behind");
}

sandbox_test! {
    fn every_example_applies_and_carries_traffic(sb) {
        sb.enable_forwarding();
        let all = examples();
        for file in &all {
            let mut files = needs(file, &all);
            files.push(file.display().to_string());
            check_example(sb, &files);
        }
    }
}

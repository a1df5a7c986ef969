//! macvlan networks against the real kernel. Each test runs in its own sandbox (see
//! `netctl-testkit`) with a "LAN": a veth `lanp` whose peer lives in a namespace `lan` holding
//! the LAN's gateway 192.168.77.1, so the containers' macvlans sit on `lanp` as they would on
//! a host's Ethernet port. Only built with `--features privileged`.

use netctl_testkit::{Proto, Sandbox, sandbox_test};
use netctl_tests::sandboxed::{fails, ok, plan_code};

const GATEWAY: &str = "192.168.77.1";

/// The LAN: `lanp` in the sandbox ("the host's NIC"), `lan0` with the gateway in namespace
/// `lan`. The host has an address of its own on the NIC, as a real host would.
fn lan(sb: &Sandbox) {
    sb.add_netns("lan");
    lan_link(sb);
}

fn file(sb: &Sandbox, mode: &str, host_address: Option<&str>) -> String {
    let host = host_address.map_or(String::new(), |h| format!("host_address = \"{h}\"\n"));
    let text = format!(
        r#"
[networks.lan]
driver = "macvlan"
parent = "lanp"
mode = "{mode}"
subnets = [{{ subnet = "192.168.77.0/24", gateway = "192.168.77.1" }}]
{host}
[containers.mva]
networks.lan = {{ ip = "192.168.77.10" }}

[containers.mvb]
networks.lan = {{ ip = "192.168.77.11", mac = "02:42:c0:a8:4d:0b" }}
"#
    );
    sb.write_file("lan.toml", &text).display().to_string()
}

/// The MAC of `eth0` in namespace `ns`.
fn mac(sb: &Sandbox, ns: &str) -> String {
    let link = sb.ns_run(ns, &["ip", "-o", "link", "show", "eth0"]);
    let rest = link
        .split("link/ether ")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC in {link}"));
    rest[..17].to_owned()
}

fn addrs(sb: &Sandbox, ns: &str) -> String {
    sb.ns_run(ns, &["ip", "-o", "-4", "addr", "show", "eth0"])
        .split_whitespace()
        .nth(3)
        .unwrap_or_default()
        .to_owned()
}

sandbox_test! {
    /// Bridge mode: the containers reach each other and the LAN's gateway with their own
    /// addresses; the host cannot reach them (the kernel keeps a parent and its macvlans
    /// apart) until `host_address` gives it a host-side macvlan. The container's interface is a
    /// macvlan in bridge mode with the recorded MAC and a metric-99 default route; inspect
    /// shows it; nothing of the network is in nftables; destroy leaves no link behind.
    fn macvlan_bridge_mode_reaches_lan_and_host_only_with_host_address(sb) {
        lan(sb);
        let before = sb.dump();
        let path = file(sb, "bridge", None);
        let out = ok(&["apply", "-f", &path]);
        assert!(out.contains("Apply complete"), "{out}");
        assert!(ok(&["apply", "-f", &path]).contains("No changes"));

        let link = sb.ns_run("mva", &["ip", "-d", "link", "show", "eth0"]);
        assert!(link.contains("macvlan mode bridge"), "{link}");
        assert_eq!(mac(sb, "mvb"), "02:42:c0:a8:4d:0b");
        let routes = sb.ns_run("mva", &["ip", "route"]);
        assert!(routes.contains("default via 192.168.77.1 dev eth0 proto static metric 99"), "{routes}");

        let _b = sb.listen(Some("mvb"), Proto::Tcp, "0.0.0.0", 80);
        let _gw = sb.listen(Some("lan"), Proto::Tcp, "0.0.0.0", 81);
        assert_eq!(sb.probe(Some("mva"), Proto::Tcp, "192.168.77.11", 80).as_deref(), Some("192.168.77.10"), "container to container");
        assert_eq!(sb.probe(Some("mva"), Proto::Tcp, GATEWAY, 81).as_deref(), Some("192.168.77.10"), "container to the LAN gateway");
        assert_eq!(sb.probe(None, Proto::Tcp, "192.168.77.11", 80), None, "the host cannot reach a macvlan of its own NIC");

        let inspect: serde_json::Value = serde_json::from_str(&ok(&["inspect", "mvb", "-o", "json"])).expect("inspect JSON");
        // podman's rule: the top level describes the default network only.
        let on_lan = &inspect["Networks"]["lan"];
        assert_eq!(on_lan["IPAddress"], "192.168.77.11", "{inspect}");
        assert_eq!(on_lan["Gateway"], GATEWAY, "{inspect}");
        assert_eq!(on_lan["MacAddress"], "02:42:c0:a8:4d:0b", "{inspect}");
        assert_eq!(on_lan["IPPrefixLen"], 24, "{inspect}");
        let network: serde_json::Value = serde_json::from_str(&ok(&["network", "inspect", "lan", "-o", "json"])).expect("network inspect JSON");
        let network = if network.is_array() { network[0].clone() } else { network };
        assert_eq!(network["driver"], "macvlan", "{network}");
        assert_eq!(network["network_interface"], "lanp", "{network}");

        let show = ok(&["show"]);
        assert!(show.contains("macvlan lanp"), "{show}");
        let ruleset = sb.run(&["nft", "list", "ruleset"]);
        assert!(!ruleset.contains("192.168.77"), "no firewall elements for a macvlan network:\n{ruleset}");

        // With host_address: a host-side macvlan, and the host reaches the containers from it.
        let path = file(sb, "bridge", Some("192.168.77.254"));
        ok(&["apply", "-f", &path]);
        assert_eq!(plan_code(&path).0, 0);
        assert_eq!(sb.probe(None, Proto::Tcp, "192.168.77.11", 80).as_deref(), Some("192.168.77.254"), "host to container through host_address");
        let _host = sb.listen(None, Proto::Tcp, "192.168.77.254", 82);
        assert_eq!(sb.probe(Some("mva"), Proto::Tcp, "192.168.77.254", 82).as_deref(), Some("192.168.77.10"), "container to host_address");
        assert_eq!(mac(sb, "mvb"), "02:42:c0:a8:4d:0b", "the MAC survives the network's replace");

        ok(&["destroy", "--all"]);
        let links = sb.run(&["ip", "-o", "link"]);
        assert!(!links.contains("ncm"), "the host-side macvlan is gone:\n{links}");
        assert_eq!(before, sb.dump(), "destroy leaves links, addresses, routes and rules as before");
    }
}

sandbox_test! {
    /// Private mode: the containers reach the LAN but never each other; disconnect and connect
    /// keep the network as it is.
    fn macvlan_private_mode_keeps_containers_apart(sb) {
        lan(sb);
        let path = file(sb, "private", None);
        ok(&["apply", "-f", &path]);
        let link = sb.ns_run("mva", &["ip", "-d", "link", "show", "eth0"]);
        assert!(link.contains("macvlan mode private"), "{link}");
        let _b = sb.listen(Some("mvb"), Proto::Tcp, "0.0.0.0", 80);
        let _gw = sb.listen(Some("lan"), Proto::Tcp, "0.0.0.0", 81);
        assert_eq!(sb.probe(Some("mva"), Proto::Tcp, GATEWAY, 81).as_deref(), Some("192.168.77.10"), "container to the LAN gateway");
        assert_eq!(sb.probe(Some("mva"), Proto::Tcp, "192.168.77.11", 80), None, "private containers do not reach each other");

        // connect and disconnect plan from the records: the network stays a private macvlan.
        ok(&["disconnect", "lan", "mvb"]);
        ok(&["connect", "--ip", "192.168.77.11", "--mac", "02:42:c0:a8:4d:0b", "lan", "mvb"]);
        let link = sb.ns_run("mvb", &["ip", "-d", "link", "show", "eth0"]);
        assert!(link.contains("macvlan mode private"), "{link}");
        assert_eq!(plan_code(&path).0, 0, "the file still matches");
        assert_eq!(sb.probe(Some("mvb"), Proto::Tcp, GATEWAY, 81).as_deref(), Some("192.168.77.11"));
    }
}

sandbox_test! {
    /// Drift: a deleted container interface comes back with the same MAC and address; a
    /// deleted host-side macvlan comes back; a parent that is gone is named by plan, apply fails
    /// naming it until it is back, then restores every container.
    fn macvlan_drift_is_repaired_keeping_mac_and_address(sb) {
        lan(sb);
        let path = file(sb, "bridge", Some("192.168.77.254"));
        ok(&["apply", "-f", &path]);
        let (mac_a, addr_a) = (mac(sb, "mva"), addrs(sb, "mva"));
        assert_eq!(addr_a, "192.168.77.10/24");

        sb.ns_run("mva", &["ip", "link", "del", "eth0"]);
        let (code, text) = plan_code(&path);
        assert_eq!(code, 2, "{text}");
        assert!(text.contains("interface eth0 is missing"), "{text}");
        ok(&["apply", "-f", &path]);
        assert_eq!(plan_code(&path).0, 0);
        assert_eq!((mac(sb, "mva"), addrs(sb, "mva")), (mac_a.clone(), addr_a.clone()), "same MAC and address after the repair");

        let shim = sb.run(&["ip", "-o", "link", "show", "type", "macvlan"]);
        let shim = shim.split(": ").nth(1).and_then(|s| s.split('@').next()).expect("a host-side macvlan").to_owned();
        sb.run(&["ip", "link", "del", &shim]);
        let (code, text) = plan_code(&path);
        assert_eq!(code, 2, "{text}");
        assert!(text.contains(&format!("host-side macvlan {shim} is missing")), "{text}");
        ok(&["apply", "-f", &path]);
        assert_eq!(plan_code(&path).0, 0);
        let _a = sb.listen(Some("mva"), Proto::Tcp, "0.0.0.0", 80);
        assert_eq!(sb.probe(None, Proto::Tcp, "192.168.77.10", 80).as_deref(), Some("192.168.77.254"), "host route back after the repair");

        sb.run(&["ip", "link", "del", "lanp"]);
        let (code, text) = plan_code(&path);
        assert_eq!(code, 2, "{text}");
        assert!(text.contains("parent lanp is gone"), "{text}");
        let err = fails(&["apply", "-f", &path]);
        assert!(err.contains("lanp"), "the failure names the parent: {err}");
        lan_link(sb);
        ok(&["apply", "-f", &path]);
        assert_eq!(plan_code(&path).0, 0);
        assert_eq!((mac(sb, "mva"), addrs(sb, "mva")), (mac_a, addr_a), "same MAC and address once the parent is back");
        let _gw = sb.listen(Some("lan"), Proto::Tcp, "0.0.0.0", 81);
        assert_eq!(sb.probe(Some("mvb"), Proto::Tcp, GATEWAY, 81).as_deref(), Some("192.168.77.11"));
    }
}

/// The LAN's veth (made again after its deletion: the `lan` namespace is still there).
fn lan_link(sb: &Sandbox) {
    sb.run(&[
        "ip", "link", "add", "lanp", "type", "veth", "peer", "name", "lan0", "netns", "lan",
    ]);
    sb.run(&["ip", "addr", "add", "192.168.77.2/24", "dev", "lanp"]);
    sb.run(&["ip", "link", "set", "lanp", "up"]);
    sb.ns_run(
        "lan",
        &["ip", "addr", "add", "192.168.77.1/24", "dev", "lan0"],
    );
    sb.ns_run("lan", &["ip", "link", "set", "lan0", "up"]);
}

sandbox_test! {
    /// A parent that does not exist fails the apply naming it, and nothing is left: no
    /// record, no namespace, no link. An MTU above the parent's is refused the same way.
    fn macvlan_missing_parent_fails_and_leaves_nothing(sb) {
        lan(sb);
        let before = sb.dump();
        let text = r#"
[networks.lan]
driver = "macvlan"
parent = "nope0"
subnets = [{ subnet = "192.168.77.0/24" }]

[containers.mva]
networks.lan = {}
"#;
        let path = sb.write_file("missing.toml", text).display().to_string();
        let err = fails(&["apply", "-f", &path]);
        assert!(err.contains("parent interface nope0 does not exist"), "{err}");
        assert_eq!(before, sb.dump());
        assert!(!std::path::Path::new("/run/netns/mva").exists());
        assert!(!ok(&["network", "ls"]).contains("lan"));

        let text = text.replace("nope0", "lanp").replace("[containers", "mtu = 9000\n\n[containers");
        let path = sb.write_file("mtu.toml", &text).display().to_string();
        let err = fails(&["apply", "-f", &path]);
        assert!(err.contains("mtu 9000 is above the MTU of parent lanp (1500)"), "{err}");
        assert_eq!(before, sb.dump());
    }
}

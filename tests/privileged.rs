//! Tests that need root. Each runs in its own private network, mount and pid namespace (see
//! `netctl-testkit`); this binary is only built with `--features privileged`.
//!
//! They drive the real `netctl` binary with its default paths (private to the sandbox) and
//! check observable effects: packets crossing, rules and links existing, files changing.

use netctl_testkit::{Proto, Sandbox, sandbox_test, uplink};
use netctl_tests::sandboxed::{fails, netctl, ok, plan_code};
use netctl_tests::{describe, netctl_bin};

/// Everything a user can see of netctl's work: kernel state plus the container files.
fn full_dump(sb: &Sandbox) -> String {
    let mut out = sb.dump();
    for ns in ["web", "client"] {
        if std::path::Path::new(&format!("/run/netns/{ns}")).exists() {
            out.push_str(&sb.ns_run(ns, &["ip", "-o", "addr"]));
            out.push_str(&sb.ns_run(ns, &["ip", "route"]));
            out.push_str(&sb.ns_run(ns, &["ip", "-6", "route"]));
        }
        for file in ["hosts", "resolv.conf"] {
            out.push_str(
                &std::fs::read_to_string(format!("/etc/netns/{ns}/{file}")).unwrap_or_default(),
            );
        }
    }
    out
}

const TWO: &str = r#"
[networks.demo]
bridge = "nc-demo"
subnets = [{ subnet = "10.89.10.0/24" }, { subnet = "fd10:89:10::/64" }]

[containers.web]
networks.demo = { ip = "10.89.10.10", ip6 = "fd10:89:10::10", aliases = ["www"] }
ports = [
  { host_port = 8080, container_port = 80 },
  { host_ip = "127.0.0.1", host_port = 9000, container_port = 9000 },
  { host_port = 7000, container_port = 7000, range = 3, protocol = "udp" },
]

[containers.client]
networks.demo = {}
"#;

fn write(sb: &Sandbox, name: &str, text: &str) -> String {
    sb.write_file(name, text).display().to_string()
}

sandbox_test! {
    /// The harness itself: two namespaces joined by a veth pass a TCP and a UDP packet, the fake
    /// uplink carries traffic out of the sandbox namespace, and nothing leaks onto the machine.
    fn harness_veth_pair_passes_packets(sb) {
        sb.add_netns("a");
        sb.add_netns("b");
        sb.run(&["ip", "link", "add", "name", "va", "netns", "a", "type", "veth", "peer", "name", "vb", "netns", "b"]);
        sb.ns_run("a", &["ip", "addr", "add", "10.200.0.1/24", "dev", "va"]);
        sb.ns_run("b", &["ip", "addr", "add", "10.200.0.2/24", "dev", "vb"]);
        sb.ns_run("a", &["ip", "link", "set", "va", "up"]);
        sb.ns_run("b", &["ip", "link", "set", "vb", "up"]);

        let _tcp = sb.listen(Some("b"), Proto::Tcp, "10.200.0.2", 7000);
        assert_eq!(sb.probe(Some("a"), Proto::Tcp, "10.200.0.2", 7000).as_deref(), Some("10.200.0.1"));
        let _udp = sb.listen(Some("b"), Proto::Udp, "10.200.0.2", 7001);
        assert_eq!(sb.probe(Some("a"), Proto::Udp, "10.200.0.2", 7001).as_deref(), Some("10.200.0.1"));
        // Nothing listens on this port: the probe must fail, so the checks above can fail too.
        assert_eq!(sb.probe(Some("a"), Proto::Tcp, "10.200.0.2", 7002), None);

        let _out = sb.listen(Some(uplink::OUTSIDE_NS), Proto::Tcp, "::", 7100);
        assert_eq!(sb.probe(None, Proto::Tcp, uplink::OUTSIDE_V4, 7100).as_deref(), Some(uplink::HOST_V4));
        assert_eq!(sb.probe(None, Proto::Tcp, uplink::OUTSIDE_V6, 7100).as_deref(), Some(uplink::HOST_V6));

        sb.run(&["ip", "netns", "del", "a"]);
        sb.run(&["ip", "netns", "del", "b"]);
    }
}

sandbox_test! {
    /// Apply twice: the second run reports no changes and the machine is byte-for-byte the same;
    /// containers talk over IPv4 and IPv6; published ports, ranges, udp and the loopback-only
    /// binding behave; the container reaches the outside through masquerade; destroy leaves the
    /// machine as it found it.
    fn apply_is_idempotent_and_carries_traffic(sb) {
        // Start from a host that forwards already, so the before/after comparison is about
        // what netctl owns (see `enable_forwarding`).
        sb.enable_forwarding();
        let before = sb.dump();
        let file = write(sb, "two.toml", TWO);
        let first = ok(&["apply", "-f", &file]);
        assert!(first.contains("Apply complete"), "{first}");
        let dump1 = full_dump(sb);
        let second = ok(&["apply", "-f", &file]);
        assert!(second.contains("No changes"), "{second}");
        assert_eq!(dump1, full_dump(sb), "a second apply changed the machine");
        assert_eq!(plan_code(&file).0, 0);

        // Container to container, both families.
        let _web4 = sb.listen(Some("web"), Proto::Tcp, "::", 80);
        let client = sb.ns_run("client", &["ip", "-o", "-4", "addr", "show", "eth0"]);
        let client_ip = client.split_whitespace().nth(3).unwrap().split('/').next().unwrap().to_owned();
        assert_eq!(sb.probe(Some("client"), Proto::Tcp, "10.89.10.10", 80).as_deref(), Some(client_ip.as_str()));
        assert!(sb.probe(Some("client"), Proto::Tcp, "fd10:89:10::10", 80).is_some());

        // Published port from the host on loopback and on the uplink address, and from outside.
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8080).is_some(), "127.0.0.1:8080");
        assert!(sb.probe(None, Proto::Tcp, uplink::HOST_V4, 8080).is_some(), "uplink:8080");
        assert!(sb.probe(Some(uplink::OUTSIDE_NS), Proto::Tcp, uplink::HOST_V4, 8080).is_some(), "outside -> uplink:8080");
        assert!(sb.probe(Some(uplink::OUTSIDE_NS), Proto::Tcp, uplink::HOST_V6, 8080).is_some(), "outside -> [uplink]:8080");
        // Hairpin: a container reaches its own published port, and a neighbour's, through the
        // host's address.
        assert!(sb.probe(Some("web"), Proto::Tcp, uplink::HOST_V4, 8080).is_some(), "hairpin to itself");
        assert!(sb.probe(Some("client"), Proto::Tcp, uplink::HOST_V4, 8080).is_some(), "hairpin from a neighbour");
        // Bound to 127.0.0.1 only.
        let _admin = sb.listen(Some("web"), Proto::Tcp, "0.0.0.0", 9000);
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 9000).is_some());
        assert_eq!(sb.probe(Some(uplink::OUTSIDE_NS), Proto::Tcp, uplink::HOST_V4, 9000), None);
        // A udp range.
        let _u = sb.listen(Some("web"), Proto::Udp, "0.0.0.0", 7002);
        assert!(sb.probe(Some(uplink::OUTSIDE_NS), Proto::Udp, uplink::HOST_V4, 7002).is_some(), "udp range");

        // Out through the uplink: the outside sees the uplink address (masquerade).
        let _o = sb.listen(Some(uplink::OUTSIDE_NS), Proto::Tcp, "0.0.0.0", 7100);
        assert_eq!(sb.probe(Some("client"), Proto::Tcp, uplink::OUTSIDE_V4, 7100).as_deref(), Some(uplink::HOST_V4));

        let out = ok(&["destroy", "--all"]);
        assert!(out.contains("Destroy complete"), "{out}");
        assert_eq!(before, sb.dump(), "destroy leaves links, addresses, routes and rules as before");
        assert!(std::fs::read_dir("/etc/netns").unwrap().next().is_none(), "container files removed");
    }
}

/// Applies TWO, breaks something with `breakage`, and checks plan shows drift mentioning
/// `expect` and apply repairs it with the same addresses and MACs.
fn drift_case(sb: &Sandbox, breakage: &[&[&str]], expect: &str) {
    let file = write(sb, "two.toml", TWO);
    ok(&["apply", "-f", &file]);
    let web_before = sb.ns_run("web", &["ip", "-o", "link", "show", "eth0"]);
    let addrs_before = sb.ns_run("web", &["ip", "-o", "addr", "show", "eth0"]);
    for argv in breakage {
        sb.run(argv);
    }
    let (code, text) = plan_code(&file);
    assert_eq!(code, 2, "drift not detected:\n{text}");
    assert!(
        text.contains(expect),
        "plan does not mention {expect:?}:\n{text}"
    );
    ok(&["apply", "-f", &file]);
    let (code, text) = plan_code(&file);
    assert_eq!(code, 0, "not repaired:\n{text}");
    let mac = |s: &str| s.split("link/ether ").nth(1).map(|r| r[..17].to_owned());
    assert_eq!(
        mac(&web_before),
        mac(&sb.ns_run("web", &["ip", "-o", "link", "show", "eth0"])),
        "same MAC"
    );
    let addrs = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.contains("fe80"))
            .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
            .collect()
    };
    assert_eq!(
        addrs(&addrs_before),
        addrs(&sb.ns_run("web", &["ip", "-o", "addr", "show", "eth0"])),
        "same addresses"
    );
    let _l = sb.listen(Some("web"), Proto::Tcp, "0.0.0.0", 80);
    assert!(
        sb.probe(None, Proto::Tcp, "127.0.0.1", 8080).is_some(),
        "port forward works after repair"
    );
}

sandbox_test! {
    fn drift_deleted_veth_is_repaired(sb) {
        let file = write(sb, "two.toml", TWO);
        ok(&["apply", "-f", &file]);
        let veth = sb.ns_run("web", &["ip", "-o", "link", "show", "eth0"]);
        // eth0@ifN: the peer's ifindex names the host veth.
        let idx: String = veth.split("@if").nth(1).unwrap().chars().take_while(char::is_ascii_digit).collect();
        let host = sb.run(&["ip", "-o", "link", "show"]);
        let name = host.lines().find(|l| l.starts_with(&format!("{idx}: "))).unwrap().split(": ").nth(1).unwrap().split('@').next().unwrap().to_owned();
        drift_case(sb, &[&["ip", "link", "del", &name]], "veth");
    }
}

sandbox_test! {
    fn drift_deleted_bridge_is_repaired(sb) {
        drift_case(sb, &[&["ip", "link", "del", "nc-demo"]], "bridge nc-demo is missing");
    }
}

sandbox_test! {
    fn drift_removed_address_is_repaired(sb) {
        drift_case(sb, &[&["ip", "netns", "exec", "web", "ip", "addr", "del", "10.89.10.10/24", "dev", "eth0"]], "address 10.89.10.10/24 is missing");
    }
}

sandbox_test! {
    fn drift_flushed_ruleset_is_repaired(sb) {
        drift_case(sb, &[&["nft", "flush", "ruleset"]], "nftables table inet netctl");
    }
}

sandbox_test! {
    fn drift_flushed_table_is_repaired(sb) {
        drift_case(sb, &[&["nft", "flush", "table", "inet", "netctl"]], "nftables table inet netctl");
    }
}

sandbox_test! {
    fn drift_deleted_table_is_repaired(sb) {
        drift_case(sb, &[&["nft", "delete", "table", "inet", "netctl"]], "nftables table inet netctl");
    }
}

sandbox_test! {
    fn drift_deleted_namespace_is_repaired(sb) {
        drift_case(sb, &[&["ip", "netns", "del", "web"]], "network namespace /run/netns/web is missing");
    }
}

sandbox_test! {
    fn drift_edited_hosts_file_is_repaired(sb) {
        drift_case(sb, &[&["sh", "-c", "echo '10.1.2.3 intruder' >> /etc/netns/web/hosts"]], "hosts or resolv.conf");
        assert!(!std::fs::read_to_string("/etc/netns/web/hosts").unwrap().contains("intruder"));
    }
}

sandbox_test! {
    /// connect adds an interface with the lowest free ethN and traffic flows; a second connect
    /// is a no-op; disconnect removes it and leaves user lines in hosts alone; reload keeps IP,
    /// MAC and interface names and brings back rules after a flush.
    fn connect_disconnect_reload(sb) {
        let file = write(sb, "two.toml", TWO);
        ok(&["apply", "-f", &file]);
        let back = write(sb, "back.toml", "[networks.back]\nbridge = \"nc-back\"\nsubnets = [{ subnet = \"10.89.30.0/24\" }]\n");
        ok(&["apply", "-f", &back]);
        sb.add_netns("peer");
        // A second container on `back` made by netctl too, to talk to.
        // Another project's container joins `back`, which `back.toml`'s project owns.
        let peer_file = write(sb, "peer.toml", "[networks.back]\nexternal = true\n[containers.peer]\nnetns = \"/run/netns/peer\"\nnetworks.back = { ip = \"10.89.30.50\" }\n");
        ok(&["apply", "-f", &peer_file]);

        std::fs::OpenOptions::new().append(true).open("/etc/netns/web/hosts").map(|mut f| {
            use std::io::Write as _;
            writeln!(f, "10.9.9.9\tuser-line").unwrap();
        }).unwrap();
        let out = ok(&["connect", "--alias", "db", "back", "web"]);
        assert!(out.contains("connected"), "{out}");
        let links = sb.ns_run("web", &["ip", "-o", "-4", "addr", "show", "eth1"]);
        assert!(links.contains("10.89.30."), "{links}");
        let hosts = std::fs::read_to_string("/etc/netns/web/hosts").unwrap();
        assert!(hosts.contains("user-line"), "user lines kept on connect:\n{hosts}");
        let _l = sb.listen(Some("peer"), Proto::Tcp, "10.89.30.50", 5432);
        assert!(sb.probe(Some("web"), Proto::Tcp, "10.89.30.50", 5432).is_some(), "web reaches peer over the new network");
        assert!(ok(&["connect", "back", "web"]).contains("already"), "re-connect is a no-op");
        assert!(ok(&["connect", "--alias", "db", "back", "web"]).contains("already"), "so is the same alias");
        // An option the attachment does not have is refused, not dropped.
        let err = fails(&["connect", "--alias", "cache", "back", "web"]);
        assert!(err.contains("already connected to network back with a different alias list"), "{err}");

        // reload keeps everything and survives a flushed ruleset.
        // Interface names with their MACs, and addresses, sorted (ifindexes change on reload).
        let links = || -> Vec<String> {
            let mut v: Vec<String> = sb.ns_run("web", &["ip", "-br", "link"]).lines().map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!("{} {}", f[0].split('@').next().unwrap(), f[2])
            }).collect();
            v.sort();
            v
        };
        let addrs = || -> Vec<String> {
            let mut v: Vec<String> = sb.ns_run("web", &["ip", "-br", "addr"]).lines().map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!("{} {}", f[0].split('@').next().unwrap(), f[2..].join(" "))
            }).collect();
            v.sort();
            v
        };
        let (link_before, addr_before) = (links(), addrs());
        sb.run(&["nft", "flush", "ruleset"]);
        let reloaded = ok(&["reload", "--all"]);
        assert!(reloaded.lines().any(|l| l.starts_with("reloaded web (")), "names, not bare ids: {reloaded}");
        assert_eq!(link_before, links(), "same interfaces and MACs");
        assert_eq!(addr_before.iter().filter(|l| !l.contains("fe80")).count(), addrs().iter().filter(|l| !l.contains("fe80")).count());
        let v4 = |v: Vec<String>| -> Vec<String> { v.into_iter().map(|l| l.split_whitespace().filter(|w| !w.starts_with("fe80")).collect::<Vec<_>>().join(" ")).collect() };
        assert_eq!(v4(addr_before), v4(addrs()), "same addresses");
        let _w = sb.listen(Some("web"), Proto::Tcp, "0.0.0.0", 80);
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8080).is_some(), "port forward back after reload");

        ok(&["disconnect", "back", "web"]);
        assert!(!sb.ns_run("web", &["ip", "-o", "link"]).contains("eth1"));
        let hosts = std::fs::read_to_string("/etc/netns/web/hosts").unwrap();
        assert!(hosts.contains("user-line") && !hosts.contains("10.89.30."), "disconnect edits only its lines:\n{hosts}");
        let err = netctl(&["disconnect", "back", "web"]);
        assert_eq!(err.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&err.stderr).contains("is not connected"), "{}", describe(&err));
        // The file is the truth again: plan shows only the user's edit of hosts as drift (the
        // connect/disconnect themselves left nothing behind), and apply takes it back.
        let (code, text) = plan_code(&file);
        assert_eq!(code, 2, "{text}");
        assert!(text.contains("Plan: 0 to create, 0 to update, 0 to replace, 1 to repair, 0 to delete."), "{text}");
        assert!(text.contains("hosts or resolv.conf"), "{text}");
        ok(&["apply", "-f", &file]);
        assert_eq!(plan_code(&file).0, 0);
    }
}

sandbox_test! {
    /// A failure part-way rolls back: the host and store are as they were before.
    fn failed_apply_rolls_back(sb) {
        let file = write(sb, "two.toml", TWO);
        ok(&["apply", "-f", &file]);
        let before = full_dump(sb);
        let show_before = ok(&["-o", "json", "show"]);
        // The new container's hosts file is a link netctl will not write through: the files
        // phase fails after the network, namespace, veth and lease for it were made.
        std::fs::create_dir_all("/etc/netns/third").unwrap();
        std::os::unix::fs::symlink(sb.write_file("victim", "x\n"), "/etc/netns/third/hosts").unwrap();
        let more = "project = \"two\"\n".to_owned() + TWO + "\n[networks.extra]\nbridge = \"nc-extra\"\nsubnets = [{ subnet = \"10.89.40.0/24\" }]\n[containers.third]\nnetworks.extra = {}\n";
        let more_file = write(sb, "more.toml", &more);
        let out = netctl(&["apply", "-f", &more_file]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("rolled back"), "{}", describe(&out));
        assert_eq!(before, full_dump(sb), "host as before");
        assert_eq!(show_before, ok(&["-o", "json", "show"]), "store as before");
        assert!(!std::path::Path::new("/run/netns/third").exists());
    }
}

sandbox_test! {
    /// Isolation: `isolate = true` networks cannot reach each other, `strict` reaches and is
    /// reached by no other bridge, a plain network is not isolated; an internal network has no
    /// way out.
    fn isolation_matrix_and_internal(sb) {
        let text = r#"
[networks.open]
bridge = "nc-open"
subnets = [{ subnet = "10.89.50.0/24" }]
[networks.iso1]
bridge = "nc-iso1"
subnets = [{ subnet = "10.89.51.0/24" }]
isolate = true
[networks.iso2]
bridge = "nc-iso2"
subnets = [{ subnet = "10.89.52.0/24" }]
isolate = true
[networks.strict]
bridge = "nc-strict"
subnets = [{ subnet = "10.89.53.0/24" }]
isolate = "strict"
[networks.int]
bridge = "nc-int"
subnets = [{ subnet = "10.89.54.0/24" }]
internal = true
[containers.o]
networks.open = { ip = "10.89.50.2" }
[containers.i1]
networks.iso1 = { ip = "10.89.51.2" }
[containers.i2]
networks.iso2 = { ip = "10.89.52.2" }
[containers.s]
networks.strict = { ip = "10.89.53.2" }
[containers.n]
networks.int = { ip = "10.89.54.2" }
"#;
        let file = write(sb, "iso.toml", text);
        ok(&["apply", "-f", &file]);
        let ips = [("o", "10.89.50.2"), ("i1", "10.89.51.2"), ("i2", "10.89.52.2"), ("s", "10.89.53.2")];
        let _listeners: Vec<_> = ips.iter().map(|(ns, ip)| sb.listen(Some(ns), Proto::Tcp, ip, 6000)).collect();
        let reach = |from: &str, to: &str| sb.probe(Some(from), Proto::Tcp, to, 6000).is_some();
        assert!(reach("o", "10.89.51.2"), "open -> isolated is allowed (netavark: isolation is between isolated networks)");
        assert!(!reach("i1", "10.89.52.2"), "isolated -> isolated is blocked");
        assert!(!reach("i2", "10.89.51.2"), "isolated -> isolated is blocked");
        assert!(!reach("s", "10.89.50.2"), "strict -> any other bridge is blocked");
        assert!(!reach("o", "10.89.53.2"), "any bridge -> strict is blocked");
        // Outward: the open network gets out, the internal one does not.
        let _out = sb.listen(Some(uplink::OUTSIDE_NS), Proto::Tcp, "0.0.0.0", 7100);
        assert!(sb.probe(Some("o"), Proto::Tcp, uplink::OUTSIDE_V4, 7100).is_some());
        assert_eq!(sb.probe(Some("n"), Proto::Tcp, uplink::OUTSIDE_V4, 7100), None, "internal network has no way out");
        assert!(!sb.ns_run("n", &["ip", "route"]).contains("default"));
    }
}

const NETAVARK_SETUP: &str = r#"{"container_id":"6ce776ea58b5aaaabbbbccccddddeeeeffff0000111122223333444455556666","container_name":"web",
 "port_mappings":[{"host_ip":"","container_port":80,"host_port":8080,"range":1,"protocol":"tcp"}],
 "networks":{"podman":{"interface_name":"eth0","static_ips":["10.88.0.2"],"aliases":["web"]}},
 "network_info":{"podman":{"name":"podman","id":"2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
   "driver":"bridge","network_interface":"podman0","subnets":[{"subnet":"10.88.0.0/16","gateway":"10.88.0.1"}],
   "ipv6_enabled":false,"internal":false,"dns_enabled":false,"ipam_options":{"driver":"host-local"}}}}"#;

sandbox_test! {
    /// netavark's protocol, as podman speaks it: setup prints the status block, the container
    /// has podman's address, the published port answers, `netctl show` lists it, and teardown
    /// leaves nothing behind; errors are one JSON object on stdout with exit code 1.
    fn netavark_protocol_setup_and_teardown(sb) {
        sb.enable_forwarding();
        let before = sb.dump();
        sb.add_netns("c1");
        let input = sb.write_file("nv.json", NETAVARK_SETUP).display().to_string();
        let out = ok(&["netavark", "--config", "/run/netctl-sandbox/nv", "-f", &input, "setup", "/run/netns/c1"]);
        let status: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
        assert_eq!(status["podman"]["interfaces"]["eth0"]["subnets"][0]["ipnet"], "10.88.0.2/16", "{status}");
        assert_eq!(status["podman"]["interfaces"]["eth0"]["subnets"][0]["gateway"], "10.88.0.1", "{status}");
        let _l = sb.listen(Some("c1"), Proto::Tcp, "0.0.0.0", 80);
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8080).is_some(), "published port");
        assert!(ok(&["show"]).contains("6ce776ea58b5"));
        let inspect: serde_json::Value = serde_json::from_str(&ok(&["-o", "json", "inspect", "web"])).unwrap();
        assert_eq!(inspect["IPAddress"], "10.88.0.2", "default network fills the top level: {inspect}");

        // Invoked under the name `netavark`, as podman does.
        let link = sb.path("netavark");
        std::os::unix::fs::symlink(netctl_bin(), &link).unwrap();
        let version = sb.run(&[link.to_str().unwrap(), "version"]);
        assert!(version.contains("\"version\""), "{version}");
        let teardown = std::process::Command::new(&link)
            .args(["-f", &input, "teardown", "/run/netns/c1"])
            .env("NETCTL_CONFIG", "/nonexistent")
            .output()
            .unwrap();
        assert!(teardown.status.success(), "{}", describe(&teardown));
        assert!(!ok(&["show"]).contains("6ce776ea58b5"));
        sb.run(&["ip", "netns", "del", "c1"]);
        assert_eq!(before, sb.dump(), "teardown leaves links, addresses, routes and rules as before");

        let bad = netctl(&["netavark", "setup", "/nonexistent/ns"]);
        assert_eq!(bad.status.code(), Some(1));
        let err: serde_json::Value = serde_json::from_slice(&bad.stdout).expect("error JSON on stdout");
        assert!(err["error"].as_str().unwrap().contains("/nonexistent/ns"), "{err}");
    }
}

const USER_MODE: &str = r#"
[containers.worker]
mode = "pasta"
ports = ["127.0.0.1:7000-7002:7000-7002/tcp", "127.0.0.1:7100:7100/udp"]
pasta = ["--mtu", "1500"]

[containers.runner]
mode = "slirp4netns"
ports = [
  { host_ip = "127.0.0.1", host_port = 5000, container_port = 80, range = 2 },
  { host_ip = "127.0.0.1", host_port = 5100, container_port = 5100, protocol = "udp" },
]
slirp4netns = { cidr = "10.0.3.0/24", mtu = 1400, enable_ipv6 = false, allow_host_loopback = true }
"#;

/// Pids of running `name` helpers, by command line (pasta runs as `passt.avx2` and the like).
fn helper_pids(name: &str) -> Vec<String> {
    let out = std::process::Command::new("pgrep")
        .args(["-f", &format!("^{name} ")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

sandbox_test! {
    /// pasta and slirp4netns containers: ports (tcp, udp, a range) reach listeners inside, the
    /// namespace looks as the options say, a killed helper is drift that apply repairs, and
    /// destroy leaves no helper running.
    fn pasta_and_slirp4netns_containers(sb) {
        let file = write(sb, "user.toml", USER_MODE);
        ok(&["apply", "-f", &file]);
        assert!(ok(&["apply", "-f", &file]).contains("No changes"));

        // pasta copies the uplink's address and routes; the MTU is the one asked for.
        let addr = sb.ns_run("worker", &["ip", "-o", "-4", "addr", "show", "uplink0"]);
        assert!(addr.contains("192.0.2.10/24"), "{addr}");
        assert!(sb.ns_run("worker", &["ip", "route"]).contains("default via 192.0.2.1"));
        assert!(sb.ns_run("worker", &["ip", "-o", "link", "show", "uplink0"]).contains("mtu 1500"));
        // slirp4netns: cidr+100, gateway cidr+2, its MTU; resolv.conf points at cidr+3.
        assert!(sb.ns_run("runner", &["ip", "-o", "-4", "addr", "show", "tap0"]).contains("10.0.3.100/24"));
        assert!(sb.ns_run("runner", &["ip", "route"]).contains("default via 10.0.3.2"));
        assert!(sb.ns_run("runner", &["ip", "-o", "link", "show", "tap0"]).contains("mtu 1400"));
        assert!(std::fs::read_to_string("/etc/netns/runner/resolv.conf").unwrap().contains("nameserver 10.0.3.3"));
        let inspect: serde_json::Value = serde_json::from_str(&ok(&["-o", "json", "inspect", "runner"])).unwrap();
        assert_eq!(inspect["IPAddress"], "10.0.3.100", "{inspect}");
        assert_eq!(inspect["Ports"]["81/tcp"][0]["HostPort"], "5001", "{inspect}");

        let _p = sb.listen(Some("worker"), Proto::Tcp, "0.0.0.0", 7002);
        let _pu = sb.listen(Some("worker"), Proto::Udp, "0.0.0.0", 7100);
        let _s = sb.listen(Some("runner"), Proto::Tcp, "0.0.0.0", 81);
        let _su = sb.listen(Some("runner"), Proto::Udp, "0.0.0.0", 5100);
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 7002).is_some(), "pasta tcp range");
        assert!(sb.probe(None, Proto::Udp, "127.0.0.1", 7100).is_some(), "pasta udp");
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 5001).is_some(), "slirp tcp range");
        assert!(sb.probe(None, Proto::Udp, "127.0.0.1", 5100).is_some(), "slirp udp");

        // Kill pasta: plan shows it, apply brings the ports back.
        sb.run(&["pkill", "-f", "^pasta "]);
        // A dying process lingers a moment (state D) after its command line is gone.
        assert!(
            sb.wait_for(std::time::Duration::from_secs(5), || plan_code(&file).0 == 2),
            "a killed helper shows as drift"
        );
        let (_, text) = plan_code(&file);
        assert!(text.contains("helper process is not running"), "{text}");
        ok(&["apply", "-f", &file]);
        assert_eq!(plan_code(&file).0, 0);
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 7002).is_some(), "pasta ports back after repair");

        ok(&["destroy", "--all"]);
        assert!(helper_pids("pasta").is_empty() && helper_pids("slirp4netns").is_empty(), "no helper left");
        assert!(!std::path::Path::new("/run/netns/worker").exists());
        // Nothing of the helpers stays under run_dir: no pid file, socket, log or directory.
        let left: Vec<_> = std::fs::read_dir("/run/netctl/containers")
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "destroy left {left:?}");
    }
}

sandbox_test! {
    /// A helper that refuses its options fails the apply with its own message, and nothing is
    /// left: no process, no namespace, no record.
    fn failing_helper_leaves_nothing(sb) {
        let file = write(sb, "bad.toml", "[containers.w]\nmode = \"pasta\"\npasta = [\"--no-such-pasta-option\"]\n");
        let out = netctl(&["apply", "-f", &file]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-pasta-option"), "{}", describe(&out));
        assert!(helper_pids("pasta").is_empty());
        assert!(!std::path::Path::new("/run/netns/w").exists());
        assert!(!ok(&["show"]).contains(" w "), "no record left");
    }
}

sandbox_test! {
    /// Several netctl processes at once (as a container engine starting containers in
    /// parallel): the state lock serialises them, every container gets its own address, and
    /// the store agrees with the kernel.
    fn concurrent_netctl_processes_hand_out_distinct_addresses(sb) {
        let n = 6;
        let mut children = Vec::new();
        for i in 0..n {
            let name = format!("par{i}");
            sb.add_netns(&name);
            let input = NETAVARK_SETUP
                .replace("6ce776ea58b5", &format!("{i:012x}"))
                .replace("\"container_name\":\"web\"", &format!("\"container_name\":\"{name}\""))
                .replace("\"static_ips\":[\"10.88.0.2\"],", "")
                .replace("\"port_mappings\":[{\"host_ip\":\"\",\"container_port\":80,\"host_port\":8080,\"range\":1,\"protocol\":\"tcp\"}],", "");
            let file = sb.write_file(&format!("{name}.json"), &input);
            children.push(
                std::process::Command::new(netctl_bin())
                    .args(["netavark", "-f"])
                    .arg(&file)
                    .args(["setup", &format!("/run/netns/{name}")])
                    .env("NETCTL_CONFIG", "/nonexistent")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
        }
        let mut addrs = std::collections::BTreeSet::new();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", describe(&out));
            let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let addr = status["podman"]["interfaces"]["eth0"]["subnets"][0]["ipnet"].as_str().unwrap().to_owned();
            assert!(addrs.insert(addr.clone()), "address {addr} handed out twice");
        }
        assert_eq!(addrs.len(), n);
        // The store agrees: one lease per container, no drift.
        let show: serde_json::Value = serde_json::from_str(&ok(&["-o", "json", "show"])).unwrap();
        assert_eq!(show["leases"].as_array().unwrap().len(), n, "{show}");
        assert!(show["drift"].as_array().unwrap().is_empty(), "{show}");
        for i in 0..n {
            let inside = sb.ns_run(&format!("par{i}"), &["ip", "-o", "-4", "addr", "show", "eth0"]);
            assert!(addrs.iter().any(|a| inside.contains(a.as_str())), "{inside}");
        }
    }
}

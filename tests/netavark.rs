//! netctl as podman's network backend, driven directly through netavark's protocol with the
//! JSON podman and netavark's users send, and checked in the kernel: what a crash or a reboot
//! leaves behind, the network options netavark knows, MTU, container ids, the subcommands and
//! the error wording. Root only (`--features privileged`), each test in its own sandbox.

use serde_json::{Value, json};

use netctl_testkit::{Proto, Sandbox, sandbox_test, uplink};
use netctl_tests::describe;
use netctl_tests::sandboxed::{netctl, ok, plan_code};

/// podman's default network, `podman` on `podman0`, with `options` and `extra` merged in.
fn network(
    name: &str,
    id: &str,
    bridge: &str,
    subnet: &str,
    gateway: &str,
    extra: &Value,
) -> Value {
    let mut net = json!({
        "name": name, "id": id, "driver": "bridge", "network_interface": bridge,
        "subnets": [{"subnet": subnet, "gateway": gateway}],
        "ipv6_enabled": false, "internal": false, "dns_enabled": false,
        "ipam_options": {"driver": "host-local"}
    });
    for (k, v) in extra.as_object().expect("an object") {
        net[k] = v.clone();
    }
    net
}

const NET_ID: &str = "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9";
const CTR_ID: &str = "6ce776ea58b5aaaabbbbccccddddeeeeffff0000111122223333444455556666";

/// A setup request: the container `name` (`id`) on each `(network, static ip, per-network
/// options)`, in that order, with `ports`. Text, not a `Value`: serde_json's maps sort their
/// keys, and the order of `networks` is podman's order of the container's networks.
fn request(id: &str, name: &str, nets: &[(&Value, &str, Value)], ports: &Value) -> Request {
    let mut networks = Vec::new();
    let mut info = serde_json::Map::new();
    for (i, (net, ip, per)) in nets.iter().enumerate() {
        let net_name = net["name"].as_str().unwrap().to_owned();
        let mut per_net = json!({"interface_name": format!("eth{i}"), "static_ips": [ip]});
        for (k, v) in per.as_object().expect("an object") {
            per_net[k] = v.clone();
        }
        networks.push(format!("{}:{per_net}", Value::from(net_name.clone())));
        info.insert(net_name, (*net).clone());
    }
    let head = json!({"container_id": id, "container_name": name, "port_mappings": ports, "network_info": info});
    let head = head.to_string();
    Request(format!(
        "{},\"networks\":{{{}}}}}",
        &head[..head.len() - 1],
        networks.join(",")
    ))
}

/// A request's JSON text.
struct Request(String);

impl Request {
    /// Adds `per` as network `name`'s options, after the others (`name` has no network info).
    fn with_network(&self, name: &str, per: &Value) -> Request {
        Request(format!(
            "{},{}:{per}}}}}",
            &self.0[..self.0.len() - 2],
            Value::from(name)
        ))
    }
}

/// `netctl netavark ... setup|teardown NS` with `req`; the output whatever the status.
fn netavark(sb: &Sandbox, verb: &str, ns: &str, req: &Request) -> std::process::Output {
    let input = sb.write_file("req.json", &req.0).display().to_string();
    let path = format!("/run/netns/{ns}");
    netctl(&[
        "netavark",
        "--config",
        "/run/netctl-sandbox/nv",
        "-f",
        &input,
        verb,
        &path,
    ])
}

/// Sets `req` up in `ns`; returns the status JSON, failing the test unless it succeeds.
fn setup(sb: &Sandbox, ns: &str, req: &Request) -> Value {
    let out = netavark(sb, "setup", ns, req);
    assert!(out.status.success(), "setup: {}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
}

/// The one `{"error": ...}` a refused request prints, with exit code 1.
fn refused(sb: &Sandbox, ns: &str, req: &Request) -> String {
    let out = netavark(sb, "setup", ns, req);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    err["error"].as_str().expect("an error string").to_owned()
}

/// The IPv4 addresses (with prefix) on `dev` in namespace `ns`.
/// (`""`: the sandbox's own namespace, the "host").
fn addrs(sb: &Sandbox, ns: &str, dev: &str) -> Vec<String> {
    let argv = ["ip", "-o", "-4", "addr", "show", "dev", dev];
    let text = if ns.is_empty() {
        sb.run(&argv)
    } else {
        sb.ns_run(ns, &argv)
    };
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
        .collect()
}

/// netctl's records as `show -o json` prints them.
fn records() -> Value {
    serde_json::from_str(&ok(&["-o", "json", "show"])).expect("show JSON")
}

/// The recorded containers' `(name, id)`.
fn recorded_containers() -> Vec<(String, String)> {
    records()["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

sandbox_test! {
    /// After a power cut (namespaces, links, rules and /run gone, records kept, a new boot id),
    /// podman's next setups converge to what podman sends: the same container set up again gets
    /// its interface, bridge and port back; a new container under the old name (`run
    /// --replace`) replaces the stale record; a stale record holding an address podman now gives
    /// to another container is dropped; a network created again with a new id and subnet takes
    /// its new definition.
    fn netavark_setup_after_a_reboot_converges(sb) {
        sb.enable_forwarding();
        let podman = network("podman", NET_ID, "podman0", "10.88.0.0/16", "10.88.0.1", &json!({}));
        let port = json!([{"host_ip": "", "container_port": 80, "host_port": 8080, "range": 1, "protocol": "tcp"}]);
        let web = request(CTR_ID, "web", &[(&podman, "10.88.0.2", json!({}))], &port);
        sb.add_netns("c1");
        setup(sb, "c1", &web);

        // 1. The same container, set up again in a namespace at the same path.
        sb.simulate_reboot(1);
        sb.add_netns("c1");
        let status = setup(sb, "c1", &web);
        assert_eq!(status["podman"]["interfaces"]["eth0"]["subnets"][0]["ipnet"], "10.88.0.2/16", "{status}");
        assert_eq!(addrs(sb, "c1", "eth0"), ["10.88.0.2/16"], "eth0 is back");
        assert_eq!(addrs(sb, "", "podman0"), ["10.88.0.1/16"], "the bridge is back");
        let listener = sb.listen(Some("c1"), Proto::Tcp, "0.0.0.0", 80);
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8080).is_some(), "the published port is back");
        drop(listener);

        // 2. `podman run --replace`: the same name, a new id and a new namespace.
        sb.simulate_reboot(2);
        sb.add_netns("c2");
        let new_id = "77".repeat(32);
        let replaced = request(&new_id, "web", &[(&podman, "10.88.0.3", json!({}))], &json!([]));
        setup(sb, "c2", &replaced);
        assert_eq!(addrs(sb, "c2", "eth0"), ["10.88.0.3/16"]);
        assert_eq!(recorded_containers(), [("web".to_owned(), new_id.clone())], "the stale record is gone");

        // 3. Another container gets the address the stale record of `web` holds.
        sb.simulate_reboot(3);
        sb.add_netns("c3");
        let other = request(&"88".repeat(32), "other", &[(&podman, "10.88.0.3", json!({}))], &json!([]));
        setup(sb, "c3", &other);
        assert_eq!(addrs(sb, "c3", "eth0"), ["10.88.0.3/16"]);
        assert_eq!(recorded_containers(), [("other".to_owned(), "88".repeat(32))]);

        // 4. `podman network rm` + `create` under the same name: a new id and a new subnet.
        sb.simulate_reboot(4);
        sb.add_netns("c4");
        let new_net_id = "99".repeat(32);
        let podman2 = network("podman", &new_net_id, "podman0", "10.99.0.0/24", "10.99.0.1", &json!({}));
        let again = request(&"88".repeat(32), "other", &[(&podman2, "10.99.0.7", json!({}))], &json!([]));
        setup(sb, "c4", &again);
        assert_eq!(addrs(sb, "c4", "eth0"), ["10.99.0.7/24"]);
        assert_eq!(addrs(sb, "", "podman0"), ["10.99.0.1/24"]);
        let nets = records()["networks"].clone();
        assert_eq!(nets[0]["id"], new_net_id.as_str(), "{nets}");

        // Teardown leaves nothing recorded.
        let out = netavark(sb, "teardown", "c4", &again);
        assert!(out.status.success(), "{}", describe(&out));
        assert!(recorded_containers().is_empty());
    }
}

const DECLARED: &str = r#"
[networks.boot]
bridge = "nc-boot"
subnets = [{ subnet = "10.89.40.0/24" }]

[containers.bweb]
networks.boot = { ip = "10.89.40.10" }
ports = [{ host_port = 8090, container_port = 80 }]

[containers.bclient]
networks.boot = {}
"#;

sandbox_test! {
    /// Declarative mode after a reboot: `plan` shows every container as drift from an earlier
    /// boot, and `apply` re-creates everything with the recorded addresses and MACs.
    fn apply_after_a_reboot_recreates_with_recorded_addresses_and_macs(sb) {
        sb.enable_forwarding();
        let file = sb.write_file("boot.toml", DECLARED).display().to_string();
        ok(&["apply", "-f", &file]);
        let look = |ns: &str| {
            let link = sb.ns_run(ns, &["ip", "-o", "link", "show", "eth0"]);
            let mac = link.split("link/ether ").nth(1).unwrap()[..17].to_owned();
            (mac, addrs(sb, ns, "eth0"))
        };
        let before = (look("bweb"), look("bclient"));
        sb.simulate_reboot(1);
        let (code, text) = plan_code(&file);
        assert_eq!(code, 2, "{text}");
        for ctr in ["bweb", "bclient"] {
            assert!(
                text.contains(&format!("container {ctr}")) && text.contains("recorded in an earlier boot"),
                "{ctr}: {text}"
            );
        }
        ok(&["apply", "-f", &file]);
        assert_eq!(plan_code(&file).0, 0, "in sync after the apply");
        assert_eq!(before, (look("bweb"), look("bclient")), "same MACs and addresses");
        let _l = sb.listen(Some("bweb"), Proto::Tcp, "0.0.0.0", 80);
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8090).is_some(), "ports work again");
    }
}

sandbox_test! {
    /// Every network option, route, IPAM driver and per-network option netctl does not carry
    /// out is refused with one JSON error naming it, before anything changes; none is accepted
    /// and ignored.
    fn netavark_options_netctl_cannot_honour_are_refused_by_name(sb) {
        sb.add_netns("c1");
        let before = sb.dump();
        let cases: Vec<(Value, Value, &str)> = vec![
            (json!({"options": {"outbound_addr4": "2001:db8::10"}}), json!({}), "outbound_addr4 must be an IPv4 address"),
            (json!({"options": {"outbound_addr6": "nowhere"}}), json!({}), "invalid outbound_addr6 option \"nowhere\""),
            (json!({"options": {"vrf": "blue"}}), json!({}), "no vrf module"),
            (json!({"options": {"vlan": "10"}}), json!({}), "no bridge VLAN filtering"),
            (json!({"options": {"mode": "unmanaged", "isolate": "true"}}), json!({}), "option isolate cannot be honoured in unmanaged mode"),
            (json!({"options": {"mode": "unmanaged", "outbound_addr4": "192.0.2.1"}}), json!({}), "cannot be honoured in unmanaged mode"),
            (json!({"options": {"mode": "unmanaged"}, "dns_enabled": true}), json!({}), "dns_enabled cannot be honoured in unmanaged mode"),
            (json!({"options": {"mode": "sideways"}}), json!({}), "invalid bridge mode \"sideways\""),
            (json!({"options": {"frobnicate": "1"}}), json!({}), "unsupported bridge network option: frobnicate"),
            (json!({"options": {"isolate": "maybe"}}), json!({}), "invalid isolate option \"maybe\""),
            (json!({"options": {"metric": "-1"}}), json!({}), "invalid metric option \"-1\""),
            (json!({"options": {"no_default_route": "perhaps"}}), json!({}), "invalid no_default_route option \"perhaps\""),
            (json!({"routes": [{"destination": "10.10.0.0/16", "gateway": "fd00::1"}]}), json!({}), "different families"),
            (json!({"routes": [{"destination": "10.10.0.0/16", "gateway": "10.88.0.9", "route_type": "blackhole"}]}), json!({}), "a blackhole route has no gateway"),
            (json!({"ipam_options": {"driver": "dhcp"}}), json!({}), "unsupported ipam driver dhcp"),
            (json!({"ipam_options": {"driver": "infoblox"}}), json!({}), "unsupported ipam driver infoblox"),
            (json!({}), json!({"options": {"colour": "red"}}), "unsupported per-network option: colour"),
        ];
        for (extra, per, expect) in cases {
            let net = network("podman", NET_ID, "podman0", "10.88.0.0/16", "10.88.0.1", &extra);
            let req = request(CTR_ID, "web", &[(&net, "10.88.0.2", per)], &json!([]));
            let err = refused(sb, "c1", &req);
            assert!(err.contains(expect), "{expect:?} not in {err:?}");
            assert!(err.contains("network podman") || err.contains("networks.podman"), "the network is named: {err}");
        }
        assert_eq!(before, sb.dump(), "nothing changed");
        assert!(recorded_containers().is_empty());
    }
}

/// The MTU of `dev` in namespace `ns` (`""`: the sandbox's own).
fn mtu(sb: &Sandbox, ns: &str, dev: &str) -> String {
    let argv = ["ip", "-o", "link", "show", "dev", dev];
    let text = if ns.is_empty() {
        sb.run(&argv)
    } else {
        sb.ns_run(ns, &argv)
    };
    text.split(" mtu ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("an mtu")
        .to_owned()
}

sandbox_test! {
    /// No `mtu` option: a new bridge takes the MTU of the default route's interface (as
    /// netavark does), and a container joining an existing bridge takes the bridge's; TOML
    /// mode follows the same rule.
    fn mtu_follows_the_uplink_and_an_existing_bridge(sb) {
        sb.run(&["ip", "link", "set", "uplink0", "mtu", "1400"]);
        let podman = network("podman", NET_ID, "podman0", "10.88.0.0/16", "10.88.0.1", &json!({}));
        sb.add_netns("c1");
        setup(sb, "c1", &request(CTR_ID, "web", &[(&podman, "10.88.0.2", json!({}))], &json!([])));
        assert_eq!(mtu(sb, "", "podman0"), "1400", "the bridge has the uplink's MTU");
        assert_eq!(mtu(sb, "c1", "eth0"), "1400", "so has the container");

        // The uplink changes; a container joining the existing bridge keeps to the bridge.
        sb.run(&["ip", "link", "set", "uplink0", "mtu", "1300"]);
        sb.add_netns("c2");
        setup(sb, "c2", &request(&"22".repeat(32), "second", &[(&podman, "10.88.0.3", json!({}))], &json!([])));
        assert_eq!(mtu(sb, "c2", "eth0"), "1400", "the joining container has the bridge's MTU");

        // An explicit mtu still wins.
        let small = network("small", &"33".repeat(32), "podman9", "10.77.0.0/24", "10.77.0.1", &json!({"options": {"mtu": "1280"}}));
        sb.add_netns("c3");
        setup(sb, "c3", &request(&"44".repeat(32), "third", &[(&small, "10.77.0.2", json!({}))], &json!([])));
        assert_eq!(mtu(sb, "c3", "eth0"), "1280");

        // TOML mode: the same rule.
        let file = sb.write_file("mtu.toml", "[networks.t]\nbridge = \"nc-mtu\"\nsubnets = [{ subnet = \"10.89.41.0/24\" }]\n[containers.tm]\nnetworks.t = {}\n");
        ok(&["apply", "-f", file.to_str().unwrap()]);
        assert_eq!(mtu(sb, "", "nc-mtu"), "1300");
        assert_eq!(mtu(sb, "tm", "eth0"), "1300");
        assert_eq!(plan_code(file.to_str().unwrap()).0, 0, "an inherited MTU is no drift");
    }
}

sandbox_test! {
    /// Any container id that is safe as a file-name component works (netavark takes the short
    /// ids and names podman-like tools send); an empty one, `/`, `..` and control characters
    /// are refused. Validation errors podman users see use netavark's phrasing.
    fn netavark_takes_any_safe_container_id_and_speaks_netavarks_errors(sb) {
        let podman = network("podman", NET_ID, "podman0", "10.88.0.0/16", "10.88.0.1", &json!({}));
        for (i, id) in ["web1", "6ce776ea58b5", "My.Container_1"].into_iter().enumerate() {
            let ns = format!("id{i}");
            sb.add_netns(&ns);
            let ip = format!("10.88.0.{}", i + 10);
            let req = request(id, "", &[(&podman, &ip, json!({}))], &json!([]));
            setup(sb, &ns, &req);
            assert_eq!(addrs(sb, &ns, "eth0"), [format!("{ip}/16")], "{id}");
            assert!(recorded_containers().iter().any(|(_, rid)| rid == id), "{id} is recorded");
            let out = netavark(sb, "teardown", &ns, &req);
            assert!(out.status.success(), "{}", describe(&out));
        }
        assert!(recorded_containers().is_empty());

        sb.add_netns("c1");
        let before = sb.dump();
        for (id, why) in [("", "is empty"), ("a/b", "contains `/`"), ("..", "is `.` or `..`"), ("a\u{1}b", "control character")] {
            let err = refused(sb, "c1", &request(id, "web", &[(&podman, "10.88.0.2", json!({}))], &json!([])));
            assert!(err.contains("invalid container id") && err.contains(why), "{id:?}: {err}");
        }

        // netavark's wording.
        let bad_ip = json!([{"host_ip": "300.1.1.1", "container_port": 80, "host_port": 8080, "range": 1, "protocol": "tcp"}]);
        let err = refused(sb, "c1", &request(CTR_ID, "web", &[(&podman, "10.88.0.2", json!({}))], &bad_ip));
        assert!(err.contains("invalid host ip \"300.1.1.1\" provided for port 8080"), "{err}");
        let unknown = request(CTR_ID, "web", &[(&podman, "10.88.0.2", json!({}))], &json!([]))
            .with_network("ghost", &json!({"interface_name": "eth1"}));
        let err = refused(sb, "c1", &unknown);
        assert!(err.contains("network info for network ghost not found"), "{err}");
        let bad_route = network("podman", NET_ID, "podman0", "10.88.0.0/16", "10.88.0.1",
            &json!({"routes": [{"destination": "10.10.0.0/16", "route_type": "sideways"}]}));
        let err = refused(sb, "c1", &request(CTR_ID, "web", &[(&bad_route, "10.88.0.2", json!({}))], &json!([])));
        assert!(err.contains("invalid route type \"sideways\""), "{err}");
        assert_eq!(before, sb.dump(), "nothing changed");
    }
}

sandbox_test! {
    /// `firewall-reload` (what netavark's reload services run after nftables.service or
    /// firewalld flushed the ruleset) restores every recorded container's rules; `version`
    /// reports netctl's own version, commit, build time and the protocol version it speaks.
    fn netavark_firewall_reload_and_version(sb) {
        sb.enable_forwarding();
        let podman = network("podman", NET_ID, "podman0", "10.88.0.0/16", "10.88.0.1", &json!({}));
        let port = json!([{"host_ip": "", "container_port": 80, "host_port": 8080, "range": 1, "protocol": "tcp"}]);
        sb.add_netns("c1");
        setup(sb, "c1", &request(CTR_ID, "web", &[(&podman, "10.88.0.2", json!({}))], &port));
        let _l = sb.listen(Some("c1"), Proto::Tcp, "0.0.0.0", 80);
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8080).is_some());
        sb.run(&["nft", "flush", "ruleset"]);
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8080).is_none(), "the flush took the forward");
        let out = ok(&["netavark", "firewall-reload"]);
        assert!(out.trim().is_empty(), "{out}");
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8080).is_some(), "firewall-reload restored it");

        let version: Value = serde_json::from_str(&ok(&["netavark", "version"])).expect("version JSON");
        let own = ok(&["--version"]);
        let own_version = own.split_whitespace().nth(1).expect("netctl VERSION (git COMMIT)");
        assert_eq!(version["version"], own_version, "{version} vs {own}");
        let commit = version["commit"].as_str().unwrap();
        assert!(own.contains(commit) && commit != "netctl", "{version} vs {own}");
        let built = version["build_time"].as_str().unwrap();
        assert!(built.len() == 20 && built.ends_with('Z'), "RFC 3339 build time: {version}");
        assert_eq!(version["netavark_protocol"], "1.4.0", "{version}");
    }
}

/// The default routes in namespace `ns`, as `GATEWAY dev DEV metric N` lines, sorted.
fn default_routes(sb: &Sandbox, ns: &str) -> Vec<String> {
    let mut out: Vec<String> = sb
        .ns_run(ns, &["ip", "-4", "route", "show", "default"])
        .lines()
        .map(|l| l.trim().trim_start_matches("default via ").to_owned())
        .collect();
    out.sort();
    out
}

sandbox_test! {
    /// Interfaces and default-route metrics follow the order of the networks podman sends (not
    /// their names); `metric` overrides the order, `no_default_route` leaves the route out and
    /// `routes` (unicast with or without a gateway, blackhole, unreachable, prohibit) are added,
    /// in podman's JSON and in a TOML file alike.
    fn netavark_route_options_and_network_order(sb) {
        let zeta = network("zeta", &"a1".repeat(32), "podman1", "10.91.0.0/24", "10.91.0.1", &json!({}));
        let alpha = network("alpha", &"a2".repeat(32), "podman2", "10.92.0.0/24", "10.92.0.1", &json!({}));
        sb.add_netns("c1");
        setup(sb, "c1", &request(CTR_ID, "web", &[(&zeta, "10.91.0.2", json!({})), (&alpha, "10.92.0.2", json!({}))], &json!([])));
        assert_eq!(addrs(sb, "c1", "eth0"), ["10.91.0.2/24"], "eth0 is the first network sent");
        assert_eq!(default_routes(sb, "c1"), ["10.91.0.1 dev eth0 proto static metric 100", "10.92.0.1 dev eth1 proto static metric 101"]);

        let metric = network("metric", &"a3".repeat(32), "podman3", "10.93.0.0/24", "10.93.0.1", &json!({
            "options": {"metric": "50"},
            "routes": [
                {"destination": "10.10.0.0/16", "route_type": "blackhole"},
                {"destination": "10.11.0.0/16", "route_type": "unreachable"},
                {"destination": "10.12.0.0/16", "route_type": "prohibit"},
                {"destination": "10.13.0.0/16", "gateway": "10.93.0.254", "metric": 7},
                {"destination": "10.14.0.0/16"}
            ]
        }));
        let quiet = network("quiet", &"a4".repeat(32), "podman4", "10.94.0.0/24", "10.94.0.1", &json!({"options": {"no_default_route": "true"}}));
        sb.add_netns("c2");
        setup(sb, "c2", &request(&"b1".repeat(32), "api", &[(&quiet, "10.94.0.2", json!({})), (&metric, "10.93.0.2", json!({}))], &json!([])));
        assert_eq!(default_routes(sb, "c2"), ["10.93.0.1 dev eth1 proto static metric 50"], "no default route through quiet");
        let subnet_route = sb.ns_run("c2", &["ip", "-4", "route", "show", "dev", "eth0"]);
        assert!(subnet_route.contains("10.94.0.0/24"), "the subnet route stays: {subnet_route}");
        let routes = sb.ns_run("c2", &["ip", "-4", "route", "show"]);
        for want in [
            "blackhole 10.10.0.0/16 proto static",
            "unreachable 10.11.0.0/16 proto static",
            "prohibit 10.12.0.0/16 proto static",
            "10.13.0.0/16 via 10.93.0.254 dev eth1 proto static metric 7",
            "10.14.0.0/16 dev eth1 proto static scope link",
        ] {
            assert!(routes.lines().any(|l| l.trim() == want), "{want:?} not in:\n{routes}");
        }
        let probe = sb.ns_output("c2", &["ping", "-c", "1", "-W", "1", "10.11.0.1"]);
        assert!(!probe.status.success(), "unreachable is unreachable");

        let file = sb.write_file("routes.toml", r#"
[networks.tquiet]
bridge = "nc-tquiet"
subnets = [{ subnet = "10.89.42.0/24" }]
no_default_route = true

[networks.tmetric]
bridge = "nc-tmetric"
subnets = [{ subnet = "10.89.43.0/24" }]
metric = 42
routes = [{ destination = "10.15.0.0/16", route_type = "blackhole" },
          { destination = "10.16.0.0/16", gateway = "10.89.43.254", metric = 9 }]

[containers.tr]
networks.tquiet = {}
networks.tmetric = {}
"#).display().to_string();
        ok(&["apply", "-f", &file]);
        assert_eq!(default_routes(sb, "tr"), ["10.89.43.1 dev eth1 proto static metric 42"]);
        let routes = sb.ns_run("tr", &["ip", "-4", "route", "show"]);
        assert!(routes.contains("blackhole 10.15.0.0/16"), "{routes}");
        assert!(routes.contains("10.16.0.0/16 via 10.89.43.254 dev eth1 proto static metric 9"), "{routes}");
        assert_eq!(plan_code(&file).0, 0, "in sync");
    }
}

/// `netctl netavark create` with `req`; the output whatever the status.
fn create(sb: &Sandbox, req: &Value) -> std::process::Output {
    let input = sb
        .write_file("create.json", &req.to_string())
        .display()
        .to_string();
    netctl(&["netavark", "-f", &input, "create"])
}

sandbox_test! {
    /// `create` (podman 5) completes a new network as netavark does: a free bridge name, a free
    /// subnet from podman's pools (skipping other networks' and, when asked, the host's), a
    /// ULA /64 for IPv6, gateways, host-local IPAM; what setup would refuse, and names or
    /// bridges in use, are refused with netavark's wording. Nothing on the host changes.
    fn netavark_create_completes_and_checks_new_networks(sb) {
        // A host address in 10.89.1.0/24: taken when check_used_subnets is on.
        sb.run(&["ip", "link", "add", "hostdummy", "type", "bridge"]);
        sb.run(&["ip", "addr", "add", "10.89.1.5/24", "dev", "hostdummy"]);
        let before = sb.dump();
        let base = |extra: Value| {
            let mut net = json!({"name": "fresh", "id": "c0".repeat(32), "driver": "bridge",
                "ipv6_enabled": false, "internal": false, "dns_enabled": false});
            for (k, v) in extra.as_object().unwrap() {
                net[k] = v.clone();
            }
            json!({
                "network": net,
                "used": {"interfaces": ["podman0", "podman1"], "names": {"podman": "2f".repeat(32)},
                         "subnets": ["10.88.0.0/16", "10.89.0.0/24"]},
                "options": {"subnet_pools": [{"base": "10.89.0.0/16", "size": 24}],
                            "default_interface_name": "podman", "check_used_subnets": true}
            })
        };
        let out = create(sb, &base(json!({"ipv6_enabled": true})));
        assert!(out.status.success(), "{}", describe(&out));
        let net: Value = serde_json::from_slice(&out.stdout).expect("network JSON");
        assert_eq!(net["network_interface"], "podman2", "{net}");
        assert_eq!(net["subnets"][0]["subnet"], "10.89.2.0/24", "skips used and host subnets: {net}");
        assert_eq!(net["subnets"][0]["gateway"], "10.89.2.1", "{net}");
        let v6 = net["subnets"][1]["subnet"].as_str().unwrap();
        assert!(v6.starts_with("fd") && v6.ends_with("::/64"), "{net}");
        assert_eq!(net["ipam_options"]["driver"], "host-local");

        let mut unchecked = base(json!({}));
        unchecked["options"]["check_used_subnets"] = json!(false);
        let net: Value = serde_json::from_slice(&create(sb, &unchecked).stdout).unwrap();
        assert_eq!(net["subnets"][0]["subnet"], "10.89.1.0/24", "host subnets only when asked: {net}");

        for (extra, expect) in [
            (json!({"name": "podman"}), "network already exists podman"),
            (json!({"network_interface": "podman1"}), "bridge name podman1 already in use"),
            (json!({"subnets": [{"subnet": "10.89.0.0/24"}]}), "subnet 10.89.0.0/24 is already used"),
            (json!({"options": {"vlan": "5"}}), "unsupported bridge network option: vlan"),
            (json!({"ipam_options": {"driver": "dhcp"}}), "unsupported ipam driver dhcp"),
            (json!({"driver": "macvlan"}), "driver \"macvlan\" is not supported"),
            (json!({"id": "xyz"}), "Network id must be a hexadecimal string"),
            (json!({"name": "a/b"}), "Invalid characters in network name"),
        ] {
            let out = create(sb, &base(extra));
            assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
            let err: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
            let err = err["error"].as_str().unwrap();
            assert!(err.contains(expect), "{expect:?} not in {err:?}");
        }
        // mode=unmanaged, as netavark: a bridge name in use may be shared, the host's subnets
        // are not avoided (the borrowed bridge may hold one), and the bridge must be named.
        let mut borrowed = base(json!({"network_interface": "podman1", "options": {"mode": "unmanaged"}}));
        let out = create(sb, &borrowed);
        assert!(out.status.success(), "{}", describe(&out));
        let net: Value = serde_json::from_slice(&out.stdout).expect("network JSON");
        assert_eq!(net["network_interface"], "podman1", "{net}");
        assert_eq!(net["subnets"][0]["subnet"], "10.89.1.0/24", "{net}");
        borrowed["network"].as_object_mut().unwrap().remove("network_interface");
        let out = create(sb, &borrowed);
        assert!(String::from_utf8_lossy(&out.stdout).contains("in unmanaged mode, the bridge must already exist on the host: name it"), "{}", describe(&out));
        assert_eq!(before, sb.dump(), "create changes nothing");
    }
}

sandbox_test! {
    /// `outbound_addr4` SNATs a network's outbound traffic to that address instead of
    /// masquerading it: the uplink's far end sees that source, while a network without it is
    /// still masqueraded to the uplink's own address; in podman's JSON and in TOML alike.
    fn netavark_outbound_addr_snats_to_that_address(sb) {
        sb.enable_forwarding();
        sb.run(&["ip", "addr", "add", "192.0.2.11/24", "dev", uplink::HOST_IF]);
        let _far = sb.listen(Some(uplink::OUTSIDE_NS), Proto::Tcp, "0.0.0.0", 7300);
        let fixed = network("fixed", &"d1".repeat(32), "podman5", "10.95.0.0/24", "10.95.0.1",
            &json!({"options": {"outbound_addr4": "192.0.2.11"}}));
        let plain = network("plain", &"d2".repeat(32), "podman6", "10.96.0.0/24", "10.96.0.1", &json!({}));
        sb.add_netns("c1");
        sb.add_netns("c2");
        setup(sb, "c1", &request(CTR_ID, "web", &[(&fixed, "10.95.0.2", json!({}))], &json!([])));
        setup(sb, "c2", &request(&"e2".repeat(32), "api", &[(&plain, "10.96.0.2", json!({}))], &json!([])));
        assert_eq!(sb.probe(Some("c1"), Proto::Tcp, uplink::OUTSIDE_V4, 7300).as_deref(), Some("192.0.2.11"), "SNAT to outbound_addr4");
        assert_eq!(sb.probe(Some("c2"), Proto::Tcp, uplink::OUTSIDE_V4, 7300).as_deref(), Some(uplink::HOST_V4), "masquerade");

        let file = sb.write_file("snat.toml", r#"
[networks.tsnat]
bridge = "nc-tsnat"
subnets = [{ subnet = "10.89.46.0/24" }]
outbound_addr4 = "192.0.2.11"

[containers.ts]
networks.tsnat = {}
"#).display().to_string();
        ok(&["apply", "-f", &file]);
        assert_eq!(sb.probe(Some("ts"), Proto::Tcp, uplink::OUTSIDE_V4, 7300).as_deref(), Some("192.0.2.11"));
        assert_eq!(plan_code(&file).0, 0, "in sync");
    }
}

sandbox_test! {
    /// IPAM driver `none` (podman's `--ipam-driver none`): the container gets its interface on
    /// the bridge but no address and no default route, in podman's JSON and in TOML alike;
    /// `create` leaves such a network without subnets.
    fn netavark_ipam_none_assigns_no_address(sb) {
        let bare = json!({"name": "bare", "id": "f1".repeat(32), "driver": "bridge", "network_interface": "podman7",
            "ipv6_enabled": false, "internal": false, "dns_enabled": false, "ipam_options": {"driver": "none"}});
        sb.add_netns("c1");
        let input = format!(
            r#"{{"container_id":"{CTR_ID}","container_name":"web","networks":{{"bare":{{"interface_name":"eth0"}}}},"network_info":{{"bare":{bare}}}}}"#
        );
        let status = setup(sb, "c1", &Request(input));
        assert_eq!(status["bare"]["interfaces"]["eth0"]["subnets"], json!([]), "{status}");
        assert!(addrs(sb, "c1", "eth0").is_empty(), "no address");
        assert!(default_routes(sb, "c1").is_empty(), "no default route");
        let link = sb.ns_run("c1", &["ip", "-o", "link", "show", "eth0"]);
        assert!(link.contains("state UP") || link.contains(",UP"), "{link}");
        assert!(addrs(sb, "", "podman7").is_empty(), "the bridge has no gateway address");

        let mut req = json!({"network": bare.clone(), "used": {"interfaces": [], "names": {}, "subnets": []},
            "options": {"subnet_pools": [{"base": "10.89.0.0/16", "size": 24}], "check_used_subnets": false}});
        let created: Value = serde_json::from_slice(&create(sb, &req).stdout).unwrap();
        assert!(created["subnets"].is_null() || created["subnets"] == json!([]), "{created}");
        assert_eq!(created["ipam_options"]["driver"], "none");
        req["network"]["subnets"] = json!([{"subnet": "10.89.9.0/24"}]);
        let out = create(sb, &req);
        assert!(String::from_utf8_lossy(&out.stdout).contains("None ipam driver is set but subnets are given"), "{}", describe(&out));

        let file = sb.write_file("none.toml", "[networks.tnone]\nbridge = \"nc-tnone\"\nipam_driver = \"none\"\n[containers.tn]\nnetworks.tnone = {}\n").display().to_string();
        ok(&["apply", "-f", &file]);
        assert!(addrs(sb, "tn", "eth0").is_empty());
        assert!(default_routes(sb, "tn").is_empty());
        assert_eq!(plan_code(&file).0, 0, "in sync");
    }
}

sandbox_test! {
    /// `host_interface_name` names the host end of the veth; a name already in use on the host
    /// (another container's) is refused before anything changes; teardown removes it; in TOML
    /// (`host_interface`) two containers may not claim one name.
    fn netavark_host_interface_name_and_duplicates(sb) {
        let podman = network("podman", NET_ID, "podman0", "10.88.0.0/16", "10.88.0.1", &json!({}));
        sb.add_netns("c1");
        sb.add_netns("c2");
        let web = request(CTR_ID, "web", &[(&podman, "10.88.0.2", json!({"options": {"host_interface_name": "vethweb"}}))], &json!([]));
        setup(sb, "c1", &web);
        let link = sb.run(&["ip", "-o", "link", "show", "vethweb"]);
        assert!(link.contains("master podman0"), "{link}");

        let before = sb.dump();
        let api = request(&"f2".repeat(32), "api", &[(&podman, "10.88.0.3", json!({"options": {"host_interface_name": "vethweb"}}))], &json!([]));
        let err = refused(sb, "c2", &api);
        assert!(err.contains("host interface name vethweb is already in use"), "{err}");
        assert_eq!(before, sb.dump(), "nothing changed");
        assert_eq!(recorded_containers().len(), 1);

        let out = netavark(sb, "teardown", "c1", &web);
        assert!(out.status.success(), "{}", describe(&out));
        assert!(!sb.output(&["ip", "link", "show", "vethweb"]).status.success(), "teardown removed vethweb");

        let hostif = |hb: &str| format!(
            "[networks.th]\nbridge = \"nc-th\"\nsubnets = [{{ subnet = \"10.89.47.0/24\" }}]\n\
             [containers.ha]\nnetworks.th = {{ host_interface = \"veth-ha\" }}\n\
             [containers.hb]\nnetworks.th = {hb}\n"
        );
        let file = sb.write_file("hostif.toml", &hostif("{ host_interface = \"veth-ha\" }")).display().to_string();
        let out = netctl(&["validate", "-f", &file]);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success() && text.contains("host interface name `veth-ha` is already used by container `ha`"), "{text}");
        let file = sb.write_file("hostif.toml", &hostif("{}")).display().to_string();
        ok(&["apply", "-f", &file]);
        assert!(sb.run(&["ip", "-o", "link", "show", "veth-ha"]).contains("master nc-th"));
        assert_eq!(plan_code(&file).0, 0, "in sync");
    }
}

/// What the owner of a bridge set on it: `ip -d link` (flags, MTU, MAC, alias, bridge
/// settings), its addresses, and the sysctls netctl sets on bridges of its own. Left out is
/// what the kernel changes by itself: the bridge's ticking timers, the offload sizes it
/// derives from the ports, and the IPv6 link-local address (whose DAD ends in its own time).
fn bridge_facts(sb: &Sandbox, dev: &str) -> String {
    let link = sb.run(&["ip", "-o", "-d", "link", "show", "dev", dev]);
    let mut words = link.split_whitespace().skip(1);
    let mut kept = Vec::new();
    let offloads = [
        "gso_max_size",
        "gso_max_segs",
        "tso_max_size",
        "tso_max_segs",
        "gro_max_size",
    ];
    let kernels = |w: &str| w.ends_with("_timer") || offloads.contains(&w);
    while let Some(word) = words.next() {
        if kernels(word) {
            words.next();
        } else {
            kept.push(word);
        }
    }
    let addrs = sb.run(&["ip", "-o", "addr", "show", "dev", dev]);
    let addrs: Vec<&str> = addrs
        .lines()
        .filter(|l| !l.contains("fe80:"))
        .filter_map(|l| l.split_once(": ").map(|(_, rest)| rest))
        .collect();
    let sysctls: Vec<String> = [
        format!("ipv4/conf/{dev}/rp_filter"),
        format!("ipv4/conf/{dev}/route_localnet"),
        format!("ipv4/conf/{dev}/forwarding"),
        format!("ipv6/conf/{dev}/accept_ra"),
        "ipv4/ip_forward".to_owned(),
    ]
    .iter()
    .map(|key| {
        format!(
            "{key}={}",
            sb.run(&["cat", &format!("/proc/sys/net/{key}")]).trim()
        )
    })
    .collect();
    format!(
        "{}\n{}\n{}",
        kept.join(" "),
        addrs.join("\n"),
        sysctls.join(" ")
    )
}

/// The host links enslaved to `bridge`.
fn ports_of(sb: &Sandbox, bridge: &str) -> Vec<String> {
    sb.run(&["ip", "-o", "link", "show", "master", bridge])
        .lines()
        .filter_map(|l| {
            l.split(": ")
                .nth(1)
                .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        })
        .collect()
}

sandbox_test! {
    /// podman's `mode=unmanaged`: the bridge is someone else's. Containers get veths on it with
    /// their addresses and a default route via the gateway, and reach each other and the
    /// bridge's own address; netctl never changes the bridge (addresses, MTU, MAC, sysctls),
    /// writes no firewall rules for it, does not count its owner's changes as drift, and leaves
    /// it in place through reload, teardown and destroy. A missing bridge, or one that is no
    /// bridge, is refused before anything changes; so are published ports it could not forward.
    fn netavark_unmanaged_bridge_is_borrowed_never_changed(sb) {
        sb.run(&["ip", "link", "add", "brext0", "type", "bridge"]);
        sb.run(&["ip", "link", "set", "brext0", "mtu", "1400", "address", "02:00:00:90:00:01"]);
        sb.run(&["ip", "addr", "add", "10.90.0.1/24", "dev", "brext0"]);
        sb.run(&["ip", "link", "set", "brext0", "up"]);
        let before = bridge_facts(sb, "brext0");
        let ext = network("ext", &"e1".repeat(32), "brext0", "10.90.0.0/24", "10.90.0.1", &json!({"options": {"mode": "unmanaged"}}));
        sb.add_netns("c1");
        sb.add_netns("c2");
        let web = request(CTR_ID, "web", &[(&ext, "10.90.0.2", json!({}))], &json!([]));
        let api = request(&"e2".repeat(32), "api", &[(&ext, "10.90.0.3", json!({}))], &json!([]));
        let status = setup(sb, "c1", &web);
        assert_eq!(status["ext"]["interfaces"]["eth0"]["subnets"][0]["ipnet"], "10.90.0.2/24", "{status}");
        assert_eq!(status["ext"]["interfaces"]["eth0"]["subnets"][0]["gateway"], "10.90.0.1", "{status}");
        assert_eq!(status["ext"]["dns_server_ips"], json!([]), "{status}");
        setup(sb, "c2", &api);

        assert_eq!(ports_of(sb, "brext0").len(), 2, "both veths are on the bridge");
        for (ns, ip) in [("c1", "10.90.0.2/24"), ("c2", "10.90.0.3/24")] {
            assert_eq!(addrs(sb, ns, "eth0"), [ip]);
            assert_eq!(default_routes(sb, ns), ["10.90.0.1 dev eth0 proto static metric 100"], "{ns}");
            assert_eq!(mtu(sb, ns, "eth0"), "1400", "{ns}: the bridge's MTU");
        }
        // As netavark on an unmanaged bridge: none of its sysctls in the container either.
        let arp_notify = sb.ns_run("c1", &["cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify"]);
        assert_eq!(arp_notify.trim(), "0");
        let _l2 = sb.listen(Some("c2"), Proto::Tcp, "10.90.0.3", 7400);
        assert_eq!(sb.probe(Some("c1"), Proto::Tcp, "10.90.0.3", 7400).as_deref(), Some("10.90.0.2"), "container to container");
        let _lh = sb.listen(None, Proto::Tcp, "10.90.0.1", 7401);
        assert_eq!(sb.probe(Some("c2"), Proto::Tcp, "10.90.0.1", 7401).as_deref(), Some("10.90.0.3"), "container to the bridge's address");

        let ruleset = sb.run(&["nft", "list", "ruleset"]);
        assert!(!ruleset.contains("brext0") && !ruleset.contains("10.90.0."), "no rules for the network:\n{ruleset}");
        let text = ok(&["show"]);
        assert!(text.contains("unmanaged"), "{text}");
        let inspect: Value = serde_json::from_str(&ok(&["-o", "json", "network", "inspect", "ext"])).expect("inspect JSON");
        assert_eq!(inspect[0]["options"]["mode"], "unmanaged", "{inspect}");
        assert_eq!(inspect[0]["network_interface"], "brext0", "{inspect}");

        // The owner changes its bridge: not netctl's business, so no drift.
        sb.run(&["ip", "addr", "del", "10.90.0.1/24", "dev", "brext0"]);
        assert_eq!(records()["drift"], json!([]), "a borrowed bridge's addresses are no drift");
        sb.run(&["ip", "addr", "add", "10.90.0.1/24", "dev", "brext0"]);

        // Reloads re-create attachments and rules, never the bridge.
        ok(&["reload", "--all"]);
        ok(&["netavark", "firewall-reload"]);
        assert_eq!(ports_of(sb, "brext0").len(), 2);
        let ruleset = sb.run(&["nft", "list", "ruleset"]);
        assert!(!ruleset.contains("brext0") && !ruleset.contains("10.90.0."), "{ruleset}");

        // What netctl cannot do on it is refused before anything changes.
        sb.run(&["ip", "link", "add", "vx0", "type", "veth", "peer", "name", "vx1"]);
        sb.add_netns("c3");
        let dump = sb.dump();
        let port = json!([{"host_ip": "", "container_port": 80, "host_port": 8080, "range": 1, "protocol": "tcp"}]);
        let err = refused(sb, "c3", &request(&"e3".repeat(32), "pub", &[(&ext, "10.90.0.4", json!({}))], &port));
        assert!(err.contains("network ext: port mappings cannot be honoured in unmanaged mode"), "{err}");
        for (bridge, problem) in [("brnone", "brnone does not exist"), ("vx0", "vx0 is a veth link, not a bridge")] {
            let ghost = network("ghost", &"e4".repeat(32), bridge, "10.90.9.0/24", "10.90.9.1", &json!({"options": {"mode": "unmanaged"}}));
            let err = refused(sb, "c3", &request(&"e3".repeat(32), "lost", &[(&ghost, "10.90.9.2", json!({}))], &json!([])));
            assert!(err.contains("in unmanaged mode, the bridge must already exist on the host") && err.contains(problem), "{err}");
        }
        assert_eq!(dump, sb.dump(), "nothing changed");
        assert_eq!(recorded_containers().len(), 2);

        // Teardown takes the veths and leaves the bridge as its owner made it.
        for (ns, req) in [("c1", &web), ("c2", &api)] {
            let out = netavark(sb, "teardown", ns, req);
            assert!(out.status.success(), "{}", describe(&out));
        }
        assert!(ports_of(sb, "brext0").is_empty());
        assert!(recorded_containers().is_empty());
        assert_eq!(bridge_facts(sb, "brext0"), before, "the bridge is unchanged");

        // So does `destroy --all`.
        setup(sb, "c1", &web);
        ok(&["destroy", "--all"]);
        assert!(ports_of(sb, "brext0").is_empty());
        assert_eq!(bridge_facts(sb, "brext0"), before, "the bridge is unchanged");
    }
}

sandbox_test! {
    /// The container interface's IPv6 settings as netavark makes them (src/network/bridge.rs,
    /// sysctl.rs): autoconfiguration off on every managed attachment, IPv4-only networks
    /// included (a router advertisement from another container adds no address); on an IPv6
    /// network also no duplicate address detection, inside and on the host end.
    fn netavark_ipv6_sysctls_of_an_attachment(sb) {
        let v4 = network("podman", NET_ID, "podman0", "10.88.0.0/16", "10.88.0.1", &json!({}));
        sb.add_netns("c1");
        setup(sb, "c1", &request(CTR_ID, "web", &[(&v4, "10.88.0.2", json!({}))], &json!([])));
        let conf = |ns: &str, dev: &str, key: &str| {
            let path = format!("/proc/sys/net/ipv6/conf/{dev}/{key}");
            let text = if ns.is_empty() { sb.run(&["cat", &path]) } else { sb.ns_run(ns, &["cat", &path]) };
            text.trim().to_owned()
        };
        assert_eq!(conf("c1", "eth0", "autoconf"), "0", "IPv4-only network: autoconf off");
        assert_eq!(conf("c1", "eth0", "accept_dad"), "1", "no IPv6 address: DAD left alone");

        let mut v6 = network("dual", &"d6".repeat(32), "podman6", "10.66.0.0/24", "10.66.0.1", &json!({}));
        v6["ipv6_enabled"] = json!(true);
        v6["subnets"].as_array_mut().unwrap().push(json!({"subnet": "fd66::/64", "gateway": "fd66::1"}));
        sb.add_netns("c2");
        let status = setup(sb, "c2", &Request(format!(
            r#"{{"container_id":"{}","container_name":"db","networks":{{"dual":{{"interface_name":"eth0","static_ips":["10.66.0.2","fd66::2"]}}}},"network_info":{{"dual":{v6}}}}}"#,
            "e2".repeat(32)
        )));
        assert!(status["dual"]["interfaces"]["eth0"].is_object(), "{status}");
        assert_eq!(conf("c2", "eth0", "autoconf"), "0");
        assert_eq!(conf("c2", "eth0", "accept_dad"), "0");
        let host_end = sb
            .run(&["ip", "-o", "link", "show", "master", "podman6"])
            .split(':')
            .nth(1)
            .map(|name| name.trim().split('@').next().unwrap_or_default().to_owned())
            .unwrap_or_default();
        assert!(!host_end.is_empty(), "a host end on podman6");
        assert_eq!(conf("", &host_end, "accept_dad"), "0", "host end {host_end}");
    }
}

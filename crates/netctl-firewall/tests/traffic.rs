//! Real packets through the generated rules, in a private sandbox each: published ports from
//! the host, from `outside` and from containers (hairpin), localhost-only ports, ranges, UDP,
//! IPv6, masquerade, the isolation matrix and internal networks.
//!
//! The test builds bridges, veths and addresses itself with `ip` (netctl's bridge backend does
//! that for real) and sets `ip_forward` and the bridge's `route_localnet` as that backend does.

mod common;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::NftCli;
use netctl_firewall::{
    FirewallDriver, FirewallState, FwContainer, FwNetwork, FwPort, HostIp, Isolate, NftablesDriver,
    Outbound, Protocol,
};
use netctl_testkit::{Proto, Sandbox, sandbox_test, uplink};

/// The host side: forwarding on, as the bridge backend leaves it.
fn enable_forwarding(sb: &Sandbox) {
    sb.sysctl("net.ipv4.ip_forward", "1");
    sb.sysctl("net.ipv6.conf.all.forwarding", "1");
}

/// A bridge with its gateway addresses (`10.x.y.1/24`, optionally `fd..::1/64`).
fn bridge(sb: &Sandbox, name: &str, gw4: &str, gw6: Option<&str>) {
    sb.run(&["ip", "link", "add", "name", name, "type", "bridge"]);
    sb.sysctl(&format!("net.ipv6.conf.{name}.accept_dad"), "0");
    sb.run(&["ip", "addr", "add", &format!("{gw4}/24"), "dev", name]);
    if let Some(gw6) = gw6 {
        sb.run(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{gw6}/64"),
            "dev",
            name,
            "nodad",
        ]);
    }
    sb.run(&["ip", "link", "set", name, "up"]);
    // Set by netctl's bridge backend; needed to forward connections made to 127.0.0.1.
    sb.sysctl(&format!("net.ipv4.conf.{name}.route_localnet"), "1");
}

/// A "container": a namespace with `eth0` on `bridge`, its addresses and default routes.
fn container(sb: &Sandbox, ns: &str, bridge: &str, v4: (&str, &str), v6: Option<(&str, &str)>) {
    sb.add_netns(ns);
    let host_if = format!("v-{ns}");
    sb.run(&[
        "ip", "link", "add", "name", &host_if, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ]);
    sb.run(&["ip", "link", "set", &host_if, "master", bridge]);
    // With br_netfilter loaded (as on this machine), a flow DNAT'd back into the bridge it
    // came from is bridged, not routed: a container reaching its own published port needs
    // its bridge port to send frames back out where they came in. The firewall cannot do
    // that; the bridge backend has to turn hairpin mode on for its veths as well.
    sb.run(&[
        "ip",
        "link",
        "set",
        &host_if,
        "type",
        "bridge_slave",
        "hairpin",
        "on",
    ]);
    sb.run(&["ip", "link", "set", &host_if, "up"]);
    sb.ns_run(ns, &["sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0"]);
    sb.ns_run(
        ns,
        &["ip", "addr", "add", &format!("{}/24", v4.0), "dev", "eth0"],
    );
    if let Some((addr, _)) = v6 {
        sb.ns_run(
            ns,
            &[
                "ip",
                "-6",
                "addr",
                "add",
                &format!("{addr}/64"),
                "dev",
                "eth0",
                "nodad",
            ],
        );
    }
    sb.ns_run(ns, &["ip", "link", "set", "eth0", "up"]);
    sb.ns_run(ns, &["ip", "route", "add", "default", "via", v4.1]);
    if let Some((_, gw)) = v6 {
        sb.ns_run(ns, &["ip", "-6", "route", "add", "default", "via", gw]);
    }
}

fn net(name: &str, bridge: &str, subnets: &[&str], isolate: Isolate, internal: bool) -> FwNetwork {
    FwNetwork {
        name: name.into(),
        bridge: bridge.into(),
        subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
        internal,
        isolate,
        outbound: Outbound::default(),
        dns: Vec::new(),
    }
}

const OUTSIDE: Option<&str> = Some(uplink::OUTSIDE_NS);

sandbox_test! {
    fn published_ports_answer_where_they_should(sb) {
        enable_forwarding(sb);
        bridge(sb, "nc-web", "10.91.0.1", Some("fd10:91::1"));
        let gw6 = "fd10:91::1";
        container(sb, "c1", "nc-web", ("10.91.0.2", "10.91.0.1"), Some(("fd10:91::2", gw6)));
        container(sb, "c2", "nc-web", ("10.91.0.3", "10.91.0.1"), Some(("fd10:91::3", gw6)));

        let web = net("web", "nc-web", &["10.91.0.0/24", "fd10:91::/64"], Isolate::Disabled, false);
        let c1 = FwContainer {
            id: "c1".repeat(32),
            network: "web".into(),
            ipv4: Some(Ipv4Addr::new(10, 91, 0, 2)),
            ipv6: Some("fd10:91::2".parse::<Ipv6Addr>().unwrap()),
            ports: vec![
                FwPort::new(Protocol::Tcp, 8080, 80),
                FwPort { range: 3, ..FwPort::new(Protocol::Tcp, 9100, 9000) },
                FwPort::new(Protocol::Udp, 5353, 53),
                FwPort {
                    host_ip: HostIp::Addr(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                    ..FwPort::new(Protocol::Tcp, 8081, 81)
                },
                FwPort { host_ip: HostIp::AllV6, ..FwPort::new(Protocol::Tcp, 8443, 443) },
            ],
        };
        let driver = NftablesDriver::new(NftCli);
        driver
            .full_rebuild(&FirewallState { networks: vec![web], containers: Vec::new() })
            .unwrap();
        driver.add_container(&c1).unwrap();

        let _l80 = common::listen(sb, Some("c1"), Proto::Tcp, "::", 80);
        let _l81 = common::listen(sb, Some("c1"), Proto::Tcp, "0.0.0.0", 81);
        let _l443 = common::listen(sb, Some("c1"), Proto::Tcp, "::", 443);
        let _l9000 = common::listen(sb, Some("c1"), Proto::Tcp, "0.0.0.0", 9000);
        let _l9002 = common::listen(sb, Some("c1"), Proto::Tcp, "0.0.0.0", 9002);
        let _l53 = common::listen(sb, Some("c1"), Proto::Udp, "::", 53);
        let _out = common::listen(sb, OUTSIDE, Proto::Tcp, "::", 7000);
        let host4 = uplink::HOST_V4;
        let host6 = uplink::HOST_V6;
        let probe = |ns: Option<&str>, proto, addr: &str, port| sb.probe(ns, proto, addr, port);

        // From the host itself: localhost is masqueraded to the bridge address (the reply must
        // come back through the host), the uplink address is seen as it is.
        assert_eq!(probe(None, Proto::Tcp, "127.0.0.1", 8080).as_deref(), Some("10.91.0.1"));
        assert_eq!(probe(None, Proto::Tcp, host4, 8080).as_deref(), Some(host4));
        // From outside, over both families: the client's own address reaches the container.
        assert_eq!(probe(OUTSIDE, Proto::Tcp, host4, 8080).as_deref(), Some(uplink::OUTSIDE_V4));
        assert_eq!(probe(OUTSIDE, Proto::Tcp, host6, 8080).as_deref(), Some(uplink::OUTSIDE_V6));
        // A range maps port by port.
        assert_eq!(probe(OUTSIDE, Proto::Tcp, host4, 9100).as_deref(), Some(uplink::OUTSIDE_V4));
        assert_eq!(probe(OUTSIDE, Proto::Tcp, host4, 9102).as_deref(), Some(uplink::OUTSIDE_V4));
        assert_eq!(probe(OUTSIDE, Proto::Tcp, host4, 9103), None);
        // UDP.
        assert_eq!(probe(OUTSIDE, Proto::Udp, host4, 5353).as_deref(), Some(uplink::OUTSIDE_V4));
        assert_eq!(probe(OUTSIDE, Proto::Udp, host6, 5353).as_deref(), Some(uplink::OUTSIDE_V6));
        // "::" publishes on IPv6 only.
        assert_eq!(probe(OUTSIDE, Proto::Tcp, host6, 8443).as_deref(), Some(uplink::OUTSIDE_V6));
        assert_eq!(probe(OUTSIDE, Proto::Tcp, host4, 8443), None);
        // Published on 127.0.0.1 only: answers there, not on the uplink address.
        assert_eq!(probe(None, Proto::Tcp, "127.0.0.1", 8081).as_deref(), Some("10.91.0.1"));
        assert_eq!(probe(None, Proto::Tcp, host4, 8081), None);
        assert_eq!(probe(OUTSIDE, Proto::Tcp, host4, 8081), None);

        // Hairpin: a container reaching its own published port, and a neighbour reaching it,
        // through the host's address; both are masqueraded to the gateway.
        assert_eq!(probe(Some("c1"), Proto::Tcp, host4, 8080).as_deref(), Some("10.91.0.1"));
        assert_eq!(probe(Some("c2"), Proto::Tcp, host4, 8080).as_deref(), Some("10.91.0.1"));
        assert_eq!(probe(Some("c2"), Proto::Tcp, host6, 8080).as_deref(), Some("fd10:91::1"));
        // Neighbours on the bridge talk directly, unmasqueraded.
        assert_eq!(probe(Some("c2"), Proto::Tcp, "10.91.0.2", 80).as_deref(), Some("10.91.0.3"));

        // Outbound: masqueraded to the uplink address, both families.
        assert_eq!(probe(Some("c1"), Proto::Tcp, uplink::OUTSIDE_V4, 7000).as_deref(), Some(host4));
        assert_eq!(probe(Some("c1"), Proto::Tcp, uplink::OUTSIDE_V6, 7000).as_deref(), Some(host6));

        // Unpublished: nothing answers any more, from anywhere.
        driver.remove_container(&c1).unwrap();
        assert_eq!(probe(None, Proto::Tcp, "127.0.0.1", 8080), None);
        assert_eq!(probe(OUTSIDE, Proto::Tcp, host4, 8080), None);
        assert_eq!(probe(OUTSIDE, Proto::Tcp, host6, 8080), None);
        assert_eq!(probe(None, Proto::Tcp, "127.0.0.1", 8081), None);
        // ... while the container itself is still there and reachable directly from the host.
        assert_eq!(probe(None, Proto::Tcp, "10.91.0.2", 80).as_deref(), Some("10.91.0.1"));
    }
}

fn isolated(isolate: Isolate) -> bool {
    matches!(isolate, Isolate::Enabled | Isolate::Strict)
}

sandbox_test! {
    fn isolation_matrix(sb) {
        enable_forwarding(sb);
        bridge(sb, "nc-a", "10.92.1.1", None);
        bridge(sb, "nc-b", "10.92.2.1", None);
        container(sb, "a", "nc-a", ("10.92.1.2", "10.92.1.1"), None);
        container(sb, "b", "nc-b", ("10.92.2.2", "10.92.2.1"), None);
        let _la = common::listen(sb, Some("a"), Proto::Tcp, "0.0.0.0", 7000);
        let _lb = common::listen(sb, Some("b"), Proto::Tcp, "0.0.0.0", 7000);
        // b publishes its listener; isolation never hides a published port (netavark 2.1).
        let b = FwContainer {
            id: "b".repeat(64),
            network: "b".into(),
            ipv4: Some(Ipv4Addr::new(10, 92, 2, 2)),
            ipv6: None,
            ports: vec![FwPort::new(Protocol::Tcp, 8700, 7000)],
        };
        let driver = NftablesDriver::new(NftCli);
        let modes = [Isolate::Disabled, Isolate::Enabled, Isolate::Strict];
        let mut table = String::new();
        for mode_a in modes {
            for mode_b in modes {
                let state = FirewallState {
                    networks: vec![
                        net("a", "nc-a", &["10.92.1.0/24"], mode_a, false),
                        net("b", "nc-b", &["10.92.2.0/24"], mode_b, false),
                    ],
                    containers: vec![b.clone()],
                };
                driver.full_rebuild(&state).unwrap();
                let a_to_b = sb.probe(Some("a"), Proto::Tcp, "10.92.2.2", 7000).is_some();
                let b_to_a = sb.probe(Some("b"), Proto::Tcp, "10.92.1.2", 7000).is_some();
                let published = sb.probe(Some("a"), Proto::Tcp, uplink::HOST_V4, 8700).is_some();
                let open = !(isolated(mode_a) && isolated(mode_b))
                    && mode_a != Isolate::Strict
                    && mode_b != Isolate::Strict;
                let seen = (a_to_b, b_to_a, published);
                assert_eq!(seen, (open, open, true), "a={mode_a:?} b={mode_b:?}");
                writeln!(
                    table,
                    "a={:<6} b={:<6} a->b={a_to_b} b->a={b_to_a} a->published(b)={published}",
                    mode_a.option_value(),
                    mode_b.option_value()
                )
                .unwrap();
            }
        }
        insta::assert_snapshot!(table);
    }
}

sandbox_test! {
    fn internal_networks_do_not_forward(sb) {
        enable_forwarding(sb);
        bridge(sb, "nc-int", "10.93.0.1", None);
        // A default route the bridge backend would not give an internal container, and a route
        // back from outside: without the firewall, traffic would flow both ways.
        container(sb, "c", "nc-int", ("10.93.0.2", "10.93.0.1"), None);
        let route_back = ["ip", "route", "add", "10.93.0.0/24", "via", uplink::HOST_V4];
        sb.ns_run(uplink::OUTSIDE_NS, &route_back);
        let _out = common::listen(sb, OUTSIDE, Proto::Tcp, "0.0.0.0", 7000);
        let _in = common::listen(sb, Some("c"), Proto::Tcp, "0.0.0.0", 7000);
        let out = sb.probe(Some("c"), Proto::Tcp, uplink::OUTSIDE_V4, 7000);
        assert_eq!(out.as_deref(), Some("10.93.0.2"));
        let back_in = sb.probe(OUTSIDE, Proto::Tcp, "10.93.0.2", 7000);
        assert_eq!(back_in.as_deref(), Some(uplink::OUTSIDE_V4));

        let driver = NftablesDriver::new(NftCli);
        let internal = net("int", "nc-int", &["10.93.0.0/24"], Isolate::Disabled, true);
        driver
            .full_rebuild(&FirewallState { networks: vec![internal], containers: Vec::new() })
            .unwrap();
        assert_eq!(sb.probe(Some("c"), Proto::Tcp, uplink::OUTSIDE_V4, 7000), None);
        assert_eq!(sb.probe(OUTSIDE, Proto::Tcp, "10.93.0.2", 7000), None);
        // The host itself still talks to the container (that is not forwarding).
        assert_eq!(sb.probe(None, Proto::Tcp, "10.93.0.2", 7000).as_deref(), Some("10.93.0.1"));
    }
}

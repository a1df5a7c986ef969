//! The bridge backend against the real kernel, inside a private sandbox per test.

use netctl_bridge::{
    BridgeAttachment, BridgeError, BridgeNetwork, BridgeSubnet, ensure_network, remove_network,
    setup, teardown,
};
use netctl_sys::{LinuxSys, Namespaces, Sys};
use netctl_testkit::{Proto, Sandbox, sandbox_test};

fn network(internal: bool) -> BridgeNetwork {
    BridgeNetwork {
        name: "web".into(),
        id: "a".repeat(64),
        bridge: "nc-web".into(),
        subnets: vec![
            BridgeSubnet {
                subnet: "10.89.0.0/24".parse().unwrap(),
                gateway: Some("10.89.0.1".parse().unwrap()),
            },
            BridgeSubnet {
                subnet: "fd10:89::/64".parse().unwrap(),
                gateway: Some("fd10:89::1".parse().unwrap()),
            },
        ],
        mtu: Some(1400),
        internal,
        unmanaged: false,
    }
}

fn attachment(sys: &dyn Sys, sb: &Sandbox, name: &str, n: u8) -> BridgeAttachment {
    let netns = sys.create_named(&sb.netns_dir, name).expect("create netns");
    BridgeAttachment {
        container: name.into(),
        netns,
        host_veth: format!("ncv{name}"),
        interface: "eth0".into(),
        mac: netctl_types::MacAddr::from([0x02, 0, 0, 0, 0, n]),
        metric: 100,
        default_route: true,
        routes: Vec::new(),
        addresses: vec![
            format!("10.89.0.{n}/24").parse().unwrap(),
            format!("fd10:89::{n}/64").parse().unwrap(),
        ],
    }
}

sandbox_test! {
    fn two_containers_reach_each_other_v4_and_v6(sb) {
        let sys = LinuxSys::new();
        let net = network(false);
        sb.enable_forwarding();
        let before = sb.dump();
        ensure_network(&sys, &net).unwrap();
        let a = attachment(&sys, sb, "a", 10);
        let b = attachment(&sys, sb, "b", 11);
        let status = setup(&sys, &net, &a).unwrap();
        setup(&sys, &net, &b).unwrap();
        let eth0 = &status.interfaces["eth0"];
        assert_eq!(eth0.mac_address.to_string(), "02:00:00:00:00:0a");
        assert_eq!(eth0.subnets[0].gateway.unwrap().to_string(), "10.89.0.1");

        let _l4 = sb.listen(Some("b"), Proto::Tcp, "10.89.0.11", 8000);
        assert_eq!(sb.probe(Some("a"), Proto::Tcp, "10.89.0.11", 8000).as_deref(), Some("10.89.0.10"));
        let _l6 = sb.listen(Some("b"), Proto::Tcp, "fd10:89::11", 8001);
        assert_eq!(sb.probe(Some("a"), Proto::Tcp, "fd10:89::11", 8001).as_deref(), Some("fd10:89::10"));

        // Routes and MTU as asked.
        let routes = sb.ns_run("a", &["ip", "route"]);
        assert!(routes.contains("default via 10.89.0.1 dev eth0"), "{routes}");
        let link = sb.ns_run("a", &["ip", "-o", "link", "show", "eth0"]);
        assert!(link.contains("mtu 1400"), "{link}");
        assert_eq!(sb.run(&["sysctl", "-n", "net.ipv4.conf.nc-web.route_localnet"]).trim(), "1");

        // Idempotent: a second ensure changes nothing visible.
        let mid = sb.dump();
        ensure_network(&sys, &net).unwrap();
        assert_eq!(mid, sb.dump());

        teardown(&sys, &net, &a).unwrap();
        teardown(&sys, &net, &b).unwrap();
        remove_network(&sys, &net).unwrap();
        sys.delete_named(&a.netns).unwrap();
        sys.delete_named(&b.netns).unwrap();
        assert_eq!(before, sb.dump(), "teardown restores links, addresses, routes");
    }
}

sandbox_test! {
    fn internal_network_has_no_default_route(sb) {
        let sys = LinuxSys::new();
        let net = network(true);
        ensure_network(&sys, &net).unwrap();
        let a = attachment(&sys, sb, "a", 10);
        setup(&sys, &net, &a).unwrap();
        let routes = sb.ns_run("a", &["ip", "route"]);
        assert!(!routes.contains("default"), "{routes}");
        assert_eq!(sb.run(&["sysctl", "-n", "net.ipv4.conf.nc-web.forwarding"]).trim(), "0");
    }
}

sandbox_test! {
    fn teardown_finishes_when_the_namespace_is_gone(sb) {
        let sys = LinuxSys::new();
        let net = network(false);
        ensure_network(&sys, &net).unwrap();
        let a = attachment(&sys, sb, "a", 10);
        setup(&sys, &net, &a).unwrap();
        sys.delete_named(&a.netns).unwrap();
        // The kernel removes the veth with the namespace; teardown must still succeed.
        teardown(&sys, &net, &a).unwrap();
        assert!(sb.output(&["ip", "link", "show", "ncva"]).status.code() != Some(0));
    }
}

sandbox_test! {
    fn failed_setup_leaves_no_veth(sb) {
        let sys = LinuxSys::new();
        let net = network(false);
        ensure_network(&sys, &net).unwrap();
        let mut a = attachment(&sys, sb, "a", 10);
        // An address outside every subnet's family mix is fine for the kernel; a duplicate one
        // is not: the second add fails after the veth exists.
        a.addresses.push(a.addresses[0]);
        assert!(setup(&sys, &net, &a).is_err());
        assert!(sb.output(&["ip", "link", "show", "ncva"]).status.code() != Some(0), "veth was undone");
        assert!(!sb.ns_run("a", &["ip", "-o", "link"]).contains("eth0"));
    }
}

sandbox_test! {
    /// netctl deletes only links it made: a namespace's own interface named like an
    /// attachment's survives a failed setup and a teardown; a foreign bridge under the network's
    /// bridge name is refused and never deleted; a bridge netctl made but did not get to mark
    /// (killed between creating and marking it) is recognised by the MAC netctl gave it.
    fn only_links_netctl_made_are_changed_or_deleted(sb) {
        let sys = LinuxSys::new();
        let net = network(false);
        let a = attachment(&sys, sb, "a", 10);
        sb.run(&["ip", "link", "add", "own-a", "type", "veth", "peer", "name", "eth0", "netns", "a"]);
        let own = || sb.ns_run("a", &["ip", "-br", "link", "show", "eth0"]);
        let before = own();
        ensure_network(&sys, &net).unwrap();
        assert!(setup(&sys, &net, &a).is_err(), "eth0 is taken in the namespace");
        teardown(&sys, &net, &a).unwrap();
        assert_eq!(before, own(), "the namespace's own eth0 is untouched");

        remove_network(&sys, &net).unwrap();
        sb.run(&["ip", "link", "add", "nc-web", "type", "bridge"]);
        let err = ensure_network(&sys, &net).unwrap_err();
        assert!(matches!(err, BridgeError::Foreign { .. }), "{err}");
        remove_network(&sys, &net).unwrap();
        assert!(sb.run(&["ip", "-br", "link", "show", "nc-web"]).contains("nc-web"), "left alone");
        sb.run(&["ip", "link", "del", "nc-web"]);

        let mac = net.bridge_mac().to_string();
        sb.run(&["ip", "link", "add", "nc-web", "address", &mac, "type", "bridge"]);
        ensure_network(&sys, &net).unwrap();
        let detail = sb.run(&["ip", "-d", "link", "show", "nc-web"]);
        assert!(detail.contains("alias netctl network web"), "marked now: {detail}");
        remove_network(&sys, &net).unwrap();
        assert!(!sb.output(&["ip", "link", "show", "nc-web"]).status.success(), "deleted");
        sys.delete_named(&a.netns).unwrap();
    }
}

//! Tests that need root. Each runs in its own private network, mount and pid namespace (see
//! `netctl-testkit`); this binary is only built with `--features privileged`.

use netctl_testkit::{Proto, sandbox_test, uplink};

sandbox_test! {
    /// Proves the harness itself: two namespaces joined by a veth pass a TCP and a UDP packet,
    /// and the fake uplink carries traffic out of the sandbox namespace.
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

        // The fake uplink: the sandbox reaches the "outside" namespace over IPv4 and IPv6.
        let _out = sb.listen(Some(uplink::OUTSIDE_NS), Proto::Tcp, "::", 7100);
        assert_eq!(sb.probe(None, Proto::Tcp, uplink::OUTSIDE_V4, 7100).as_deref(), Some(uplink::HOST_V4));
        assert_eq!(sb.probe(None, Proto::Tcp, uplink::OUTSIDE_V6, 7100).as_deref(), Some(uplink::HOST_V6));

        sb.run(&["ip", "netns", "del", "a"]);
        sb.run(&["ip", "netns", "del", "b"]);
    }
}

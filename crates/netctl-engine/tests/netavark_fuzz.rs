//! Hostile input for podman's front door: netavark setup requests whose names, ports,
//! addresses and options come from a hostile generator, and random bytes. Decoding and
//! checking a request ([`netctl_engine::check_netavark_request`], what `setup` runs before it
//! reads or changes anything) must never panic, and every refusal must say why. What is
//! accepted must be what the TOML front door accepts (names, ports, ranges).

use std::path::Path;

use netctl_types::{NetworkOptions, check_name};
use proptest::prelude::*;
use serde_json::json;

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,20}",
        Just("../../x".to_owned()),
        Just("a/b".to_owned()),
        Just(String::new()),
        Just(".".to_owned()),
        Just("lo".to_owned()),
        (1usize..70_000).prop_map(|n| "x".repeat(n)),
        "\\PC{0,40}",
        "[\\x00-\\x1f]{1,5}",
    ]
}

fn request() -> impl Strategy<Value = serde_json::Value> {
    (
        hostile_string(),
        hostile_string(),
        hostile_string(),
        hostile_string(),
        (any::<u16>(), any::<u16>(), any::<u16>(), hostile_string()),
        hostile_string(),
        prop_oneof![Just("10.88.0.0/16".to_owned()), Just("fd00::/64".to_owned()), hostile_string()],
        prop_oneof![Just("10.88.0.2".to_owned()), hostile_string()],
    )
        .prop_map(|(ctr, net, bridge, iface, (c, h, r, proto), host_ip, subnet, ip)| {
            json!({
                "container_id": "6ce776ea58b5aaaabbbbccccddddeeeeffff0000111122223333444455556666",
                "container_name": ctr,
                "port_mappings": [{"host_ip": host_ip, "container_port": c, "host_port": h, "range": r, "protocol": proto}],
                "networks": {net.clone(): {"interface_name": iface, "static_ips": [ip], "aliases": [ctr]}},
                "network_info": {net.clone(): {
                    "name": net, "id": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
                    "driver": "bridge", "network_interface": bridge,
                    "subnets": [{"subnet": subnet}],
                    "ipv6_enabled": false, "internal": false, "dns_enabled": false
                }}
            })
        })
}

/// Decodes and checks one request text; returns whether it was accepted.
fn check(text: &str) -> bool {
    let Ok(opts) = serde_json::from_str::<NetworkOptions>(text) else {
        return false;
    };
    match netctl_engine::check_netavark_request(Path::new("/run/netns/c1"), &opts) {
        Ok(state) => {
            for name in state.networks.keys().chain(state.containers.keys()) {
                assert!(check_name(name).is_ok(), "accepted a bad name {name:?}");
            }
            for p in opts.port_mappings.iter().flatten() {
                assert!(
                    p.container_port > 0 && p.host_port > 0,
                    "accepted port 0: {p:?}"
                );
                let last =
                    u32::from(p.host_port.max(p.container_port)) + u32::from(p.range.max(1)) - 1;
                assert!(last <= 65535, "accepted a range past 65535: {p:?}");
            }
            true
        }
        Err(e) => {
            assert!(
                !e.to_string().trim().is_empty(),
                "a refusal without a reason"
            );
            false
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn hostile_requests_are_refused_with_a_reason_never_a_panic(req in request()) {
        check(&req.to_string());
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        check(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn a_plain_request_is_accepted() {
    let req = json!({
        "container_id": "6ce776ea58b5aaaabbbbccccddddeeeeffff0000111122223333444455556666",
        "container_name": "web",
        "port_mappings": [{"host_ip": "", "container_port": 80, "host_port": 8080, "range": 1, "protocol": "tcp"}],
        "networks": {"podman": {"interface_name": "eth0", "static_ips": ["10.88.0.2"]}},
        "network_info": {"podman": {"name": "podman", "id": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
            "driver": "bridge", "network_interface": "podman0",
            "subnets": [{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}],
            "ipv6_enabled": false, "internal": false, "dns_enabled": false}}
    });
    assert!(check(&req.to_string()), "podman's own request must pass");
}

/// podman's macvlan request: accepted as a macvlan network on the parent with the mode;
/// DHCP, an unknown mode and `isolate` refused with one reason each.
#[test]
fn macvlan_requests() {
    let request = |options: serde_json::Value, ipam: serde_json::Value| {
        json!({
            "container_id": "6ce776ea58b5aaaabbbbccccddddeeeeffff0000111122223333444455556666",
            "container_name": "nas",
            "networks": {"lan": {"interface_name": "eth0", "static_ips": ["192.168.77.50"]}},
            "network_info": {"lan": {"name": "lan", "id": "9fed245e92c3888e32bbd3c9c0e705a21a9fbd9ac9bd6cb0e2c414122758175c",
                "driver": "macvlan", "network_interface": "lanp",
                "subnets": [{"subnet": "192.168.77.0/24", "gateway": "192.168.77.1"}],
                "ipv6_enabled": false, "internal": false, "dns_enabled": false,
                "options": options, "ipam_options": ipam}}
        })
        .to_string()
    };
    let decide = |text: String| {
        let opts: NetworkOptions = serde_json::from_str(&text).unwrap();
        netctl_engine::check_netavark_request(Path::new("/run/netns/c1"), &opts)
            .map_err(|e| e.to_string())
    };
    let state = decide(request(
        json!({"mode": "private", "mtu": "1400"}),
        json!({"driver": "host-local"}),
    ))
    .unwrap();
    let lan = &state.networks["lan"];
    assert_eq!(lan.driver, netctl_types::NetworkDriver::Macvlan);
    assert_eq!(lan.parent.as_deref(), Some("lanp"));
    assert_eq!(lan.mode, Some(netctl_types::MacvlanMode::Private));
    assert_eq!(lan.mtu, Some(1400));
    assert_eq!(lan.bridge, None);
    let err = decide(request(json!({}), json!({"driver": "dhcp"}))).unwrap_err();
    assert!(
        err.contains("dhcp ipam driver is not supported by netctl"),
        "{err}"
    );
    let err = decide(request(json!({"mode": "bogus"}), json!({}))).unwrap_err();
    assert!(err.contains("invalid macvlan mode \"bogus\""), "{err}");
    let err = decide(request(json!({"isolate": "true"}), json!({}))).unwrap_err();
    assert!(err.contains("isolate"), "{err}");
}

/// One case of [`bridge_mode_requests`]: network options, DNS on, the container's first
/// network, ports, and the mode recorded or (part of) the refusal.
type ModeCase = (
    serde_json::Value,
    bool,
    bool,
    serde_json::Value,
    Result<netctl_types::BridgeMode, &'static str>,
);

/// podman's bridge `mode` (netavark's `managed`/`unmanaged`): each case is the options of
/// network `ext` (on `brext0`), whether `ext` has DNS, whether it is the container's first
/// network (`eth0`, where published ports go) and the ports; accepted with the mode it
/// records, or refused with the reason. Nothing netctl cannot do on a borrowed bridge is
/// accepted and ignored.
#[test]
fn bridge_mode_requests() {
    use netctl_types::BridgeMode::{Managed, Unmanaged};
    let port = json!([{"host_ip": "", "container_port": 80, "host_port": 8080, "range": 1, "protocol": "tcp"}]);
    let cases: Vec<ModeCase> = vec![
        (json!({}), false, true, json!([]), Ok(Managed)),
        (json!({"mode": ""}), false, true, json!([]), Ok(Managed)),
        (
            json!({"mode": "managed"}),
            false,
            true,
            port.clone(),
            Ok(Managed),
        ),
        (
            json!({"mode": "unmanaged"}),
            false,
            true,
            json!([]),
            Ok(Unmanaged),
        ),
        (
            json!({"mode": "unmanaged", "mtu": "1280", "metric": "50", "no_default_route": "true", "isolate": "false"}),
            false,
            true,
            json!([]),
            Ok(Unmanaged),
        ),
        // Ports go to eth0, on a managed network: they are forwarded there.
        (
            json!({"mode": "unmanaged"}),
            false,
            false,
            port.clone(),
            Ok(Unmanaged),
        ),
        (
            json!({"mode": "sideways"}),
            false,
            true,
            json!([]),
            Err("network ext: invalid bridge mode \"sideways\""),
        ),
        (
            json!({"mode": "unmanaged", "isolate": "strict"}),
            false,
            true,
            json!([]),
            Err("network ext: option isolate cannot be honoured in unmanaged mode"),
        ),
        (
            json!({"mode": "unmanaged", "outbound_addr4": "192.0.2.1"}),
            false,
            true,
            json!([]),
            Err(
                "network ext: options outbound_addr4/outbound_addr6 cannot be honoured in unmanaged mode",
            ),
        ),
        (
            json!({"mode": "unmanaged"}),
            true,
            true,
            json!([]),
            Err("network ext: dns_enabled cannot be honoured in unmanaged mode"),
        ),
        (
            json!({"mode": "unmanaged"}),
            false,
            true,
            port.clone(),
            Err("network ext: port mappings cannot be honoured in unmanaged mode"),
        ),
    ];
    for (options, dns, first, ports, expect) in cases {
        let (ext_if, other_if) = if first {
            ("eth0", "eth1")
        } else {
            ("eth1", "eth0")
        };
        let req = json!({
            "container_id": "6ce776ea58b5aaaabbbbccccddddeeeeffff0000111122223333444455556666",
            "container_name": "web",
            "port_mappings": ports,
            "networks": {
                "ext": {"interface_name": ext_if, "static_ips": ["10.90.0.2"]},
                "podman": {"interface_name": other_if, "static_ips": ["10.88.0.2"]}
            },
            "network_info": {
                "ext": {"name": "ext", "id": "e1".repeat(32), "driver": "bridge", "network_interface": "brext0",
                    "subnets": [{"subnet": "10.90.0.0/24", "gateway": "10.90.0.1"}],
                    "ipv6_enabled": false, "internal": false, "dns_enabled": dns, "options": options},
                "podman": {"name": "podman", "id": "2f".repeat(32), "driver": "bridge", "network_interface": "podman0",
                    "subnets": [{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}],
                    "ipv6_enabled": false, "internal": false, "dns_enabled": false}
            }
        });
        let opts: NetworkOptions = serde_json::from_value(req.clone()).unwrap();
        let got = netctl_engine::check_netavark_request(Path::new("/run/netns/c1"), &opts)
            .map(|state| {
                let ext = &state.networks["ext"];
                assert_eq!(ext.bridge.as_deref(), Some("brext0"), "{req}");
                ext.bridge_mode
            })
            .map_err(|e| e.to_string());
        match (got, expect) {
            (Ok(mode), Ok(want)) => assert_eq!(mode, want, "{req}"),
            (Err(err), Err(want)) => assert!(err.contains(want), "{want:?} not in {err:?}"),
            (got, want) => panic!("{req}: got {got:?}, want {want:?}"),
        }
    }
}

//! Snapshot tests of everything `netctl inspect`, `netctl network inspect` and `netctl network
//! ls` print, from records built in code. Every container case goes through [`check`].

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use netctl_inspect::{
    BasicNetworkConfig, NetworkSettings, container_inspect, network_inspect, network_ls_row,
    render_container_text, render_network_table,
};
use netctl_state::{
    AttachmentRecord, ContainerRecord, Isolate, LeaseRange, MacAddr, NetnsRecord, NetworkDriver,
    NetworkMode, NetworkRecord, Opaque, SubnetRecord,
};
use netctl_types::PortMapping;

const DEFAULT_NETWORK: &str = "podman";

fn at(secs: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, nanos)
}

/// A 64-hex ID made of one repeated pair, so snapshots show which record it is.
fn id(pair: &str) -> String {
    pair.repeat(32)
}

/// A bridge network; each subnet is `(cidr, gateway)`.
fn net(name: &str, id_pair: &str, subnets: &[(&str, Option<&str>)]) -> NetworkRecord {
    NetworkRecord {
        name: name.to_owned(),
        id: id(id_pair),
        driver: NetworkDriver::Bridge,
        network_interface: format!("nc-{name}"),
        subnets: subnets
            .iter()
            .map(|(subnet, gateway)| SubnetRecord {
                subnet: subnet.parse().unwrap(),
                gateway: gateway.map(|g| g.parse().unwrap()),
                lease_range: None,
            })
            .collect(),
        ipv6: subnets.iter().any(|(s, _)| s.contains(':')),
        internal: false,
        dns_enabled: true,
        dns_servers: Vec::new(),
        mtu: None,
        isolate: Isolate::Off,
        labels: BTreeMap::new(),
        options: BTreeMap::new(),
        routes: Vec::new(),
        created: at(1_700_000_000, 0),
        project: None,
    }
}

fn podman_net() -> NetworkRecord {
    NetworkRecord {
        dns_enabled: false,
        network_interface: "podman0".to_owned(),
        ..net(
            DEFAULT_NETWORK,
            "2f",
            &[("10.88.0.0/16", Some("10.88.0.1"))],
        )
    }
}

fn ctr(name: &str, mode: NetworkMode, ports: &[PortMapping]) -> ContainerRecord {
    ContainerRecord {
        name: name.to_owned(),
        id: id("c0"),
        netns: NetnsRecord {
            path: format!("/run/netns/{name}").into(),
            managed: true,
        },
        mode,
        hostname: name.to_owned(),
        spec: Opaque::null(),
        ports: if ports.is_empty() {
            Opaque::null()
        } else {
            Opaque::of(ports).unwrap()
        },
        created: at(1_700_000_100, 0),
        project: None,
        boot_id: None,
    }
}

fn att(
    ctr: &ContainerRecord,
    net: &NetworkRecord,
    interface: &str,
    mac: &str,
    addresses: &[&str],
    aliases: &[&str],
) -> AttachmentRecord {
    AttachmentRecord {
        container: ctr.name.clone(),
        network: net.name.clone(),
        interface: interface.to_owned(),
        mac: mac.parse::<MacAddr>().unwrap(),
        aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        metric: None,
        host_interface: None,
    }
}

fn port(
    host_ip: &str,
    host_port: u16,
    container_port: u16,
    range: u16,
    protocol: &str,
) -> PortMapping {
    PortMapping {
        host_ip: host_ip.to_owned(),
        container_port,
        host_port,
        range,
        protocol: protocol.to_owned(),
    }
}

/// Inspects `ctr` on `attachments` (default network `podman`), snapshots the JSON as
/// `NAME` and the text as `NAME_text`, and checks the JSON reads back to the same settings.
fn check(
    name: &str,
    ctr: &ContainerRecord,
    attachments: &[(NetworkRecord, AttachmentRecord)],
) -> NetworkSettings {
    let pairs: Vec<(&NetworkRecord, &AttachmentRecord)> =
        attachments.iter().map(|(n, a)| (n, a)).collect();
    let settings = container_inspect(ctr, &pairs, DEFAULT_NETWORK).unwrap();
    insta::assert_json_snapshot!(name, settings);
    insta::assert_snapshot!(format!("{name}_text"), render_container_text(&settings));

    let json = serde_json::to_string(&settings).unwrap();
    let mut back: NetworkSettings = serde_json::from_str(&json).unwrap();
    // Interface names are not part of podman's JSON; everything else must survive.
    for (name, network) in &mut back.networks {
        network
            .interfaces
            .clone_from(&settings.networks[name].interfaces);
    }
    assert_eq!(back, settings, "{name}: JSON does not read back");
    settings
}

#[test]
fn sole_default_network_fills_the_top_level() {
    let podman = podman_net();
    let c = ctr("api", NetworkMode::Bridge, &[port("", 8080, 80, 1, "tcp")]);
    let a = att(
        &c,
        &podman,
        "eth0",
        "3e:aa:03:b8:5f:29",
        &["10.88.0.2/16"],
        &["c0c0c0c0c0c0"],
    );
    let settings = check("sole_default_network", &c, &[(podman, a)]);
    assert_eq!(settings.basic.ip_address, "10.88.0.2");
    assert_eq!(settings.basic, settings.networks[DEFAULT_NETWORK].basic);
}

#[test]
fn sole_other_network_leaves_the_top_level_empty() {
    let web = net("web", "ab", &[("10.89.0.0/24", Some("10.89.0.1"))]);
    let c = ctr("api", NetworkMode::Bridge, &[]);
    let a = att(
        &c,
        &web,
        "eth0",
        "02:00:00:00:00:01",
        &["10.89.0.5/24"],
        &["backend", "c0c0c0c0c0c0"],
    );
    let settings = check("sole_other_network", &c, &[(web, a)]);
    assert_eq!(settings.basic, BasicNetworkConfig::default());
    assert_eq!(settings.networks["web"].basic.ip_address, "10.89.0.5");
}

#[test]
fn default_plus_another_network_leaves_the_top_level_empty() {
    let podman = podman_net();
    let web = net("web", "ab", &[("10.89.0.0/24", Some("10.89.0.1"))]);
    let c = ctr("api", NetworkMode::Bridge, &[]);
    let a0 = att(
        &c,
        &podman,
        "eth0",
        "02:00:00:00:00:01",
        &["10.88.0.2/16"],
        &[],
    );
    let a1 = att(
        &c,
        &web,
        "eth1",
        "02:00:00:00:00:02",
        &["10.89.0.5/24"],
        &[],
    );
    let settings = check("default_plus_other", &c, &[(web, a1), (podman, a0)]);
    assert_eq!(settings.basic, BasicNetworkConfig::default());
}

#[test]
fn two_dual_stack_networks_with_secondary_addresses() {
    // `front` has two IPv4 subnets and two IPv6 subnets: the second of each family is secondary.
    let front = net(
        "front",
        "f0",
        &[
            ("10.89.0.0/24", Some("10.89.0.1")),
            ("fd10:89::/64", Some("fd10:89::1")),
            ("10.89.1.0/24", Some("10.89.1.1")),
            ("fd10:90::/64", Some("fd10:90::1")),
        ],
    );
    let back = net(
        "back",
        "b0",
        &[
            ("10.90.0.0/24", Some("10.90.0.1")),
            ("fd10:91::/64", Some("fd10:91::1")),
        ],
    );
    let c = ctr("api", NetworkMode::Bridge, &[]);
    let a_front = att(
        &c,
        &front,
        "eth1",
        "02:00:00:00:00:0f",
        &[
            "10.89.0.5/24",
            "fd10:89::5/64",
            "10.89.1.5/24",
            "fd10:90::5/64",
        ],
        &["web"],
    );
    let a_back = att(
        &c,
        &back,
        "eth0",
        "02:00:00:00:00:0b",
        &["10.90.0.7/24", "fd10:91::7/64"],
        &["db"],
    );
    let settings = check(
        "two_dual_stack_networks",
        &c,
        &[(front, a_front), (back, a_back)],
    );
    let front = &settings.networks["front"].basic;
    assert_eq!(front.secondary_ip_addresses.len(), 1);
    assert_eq!(front.secondary_ipv6_addresses.len(), 1);
    assert!(
        settings.networks["back"]
            .basic
            .secondary_ip_addresses
            .is_empty()
    );
}

#[test]
fn several_interfaces_on_the_default_network_follow_podman_order() {
    // Interfaces walk in string order (eth10 before eth2): the first interface's MAC and first
    // address of each family are primary, the rest secondary and additional.
    let podman = NetworkRecord {
        subnets: vec![
            SubnetRecord {
                subnet: "10.88.0.0/16".parse().unwrap(),
                gateway: Some("10.88.0.1".parse().unwrap()),
                lease_range: None,
            },
            SubnetRecord {
                subnet: "fd00:88::/64".parse().unwrap(),
                gateway: Some("fd00:88::1".parse().unwrap()),
                lease_range: None,
            },
        ],
        ipv6: true,
        ..podman_net()
    };
    let c = ctr("multi", NetworkMode::Bridge, &[]);
    let eth2 = att(
        &c,
        &podman,
        "eth2",
        "02:00:00:00:00:02",
        &["10.88.0.12/16", "fd00:88::12/64"],
        &["b", "a"],
    );
    let eth10 = att(
        &c,
        &podman,
        "eth10",
        "02:00:00:00:00:10",
        &["10.88.0.10/16", "fd00:88::10/64"],
        &["a"],
    );
    let settings = check(
        "default_network_two_interfaces",
        &c,
        &[(podman.clone(), eth2), (podman, eth10)],
    );
    assert_eq!(settings.basic.mac_address, "02:00:00:00:00:10");
    assert_eq!(
        settings.basic.additional_mac_addresses,
        ["02:00:00:00:00:02"]
    );
    assert_eq!(settings.basic.ip_address, "10.88.0.10");
}

#[test]
fn missing_gateways_are_empty_strings() {
    // An internal network without DNS has no gateways at all.
    let mut hidden = net(
        "hidden",
        "d0",
        &[("10.91.0.0/24", None), ("fd10:92::/64", None)],
    );
    hidden.internal = true;
    hidden.dns_enabled = false;
    let c = ctr("api", NetworkMode::Bridge, &[]);
    let a = att(
        &c,
        &hidden,
        "eth0",
        "02:00:00:00:00:01",
        &["10.91.0.2/24", "fd10:92::2/64"],
        &[],
    );
    let settings = check("no_gateway", &c, &[(hidden, a)]);
    let json = serde_json::to_string(&settings).unwrap();
    assert!(!json.contains("<nil>"), "{json}");
    assert_eq!(settings.networks["hidden"].basic.gateway, "");
}

#[test]
fn ports_expand_ranges_and_list_every_binding() {
    let podman = podman_net();
    let ports = [
        port("", 8000, 9000, 3, "tcp"),
        port("", 8080, 80, 1, "tcp"),
        port("127.0.0.1", 8081, 80, 1, "tcp"),
        port("::1", 5353, 53, 1, "udp"),
        port("127.0.0.1", 5353, 53, 1, "udp"),
        port("", 10000, 10000, 1, "sctp"),
        port("", 443, 443, 1, "udp"),
    ];
    let c = ctr("api", NetworkMode::Bridge, &ports);
    let a = att(
        &c,
        &podman,
        "eth0",
        "02:00:00:00:00:01",
        &["10.88.0.2/16"],
        &[],
    );
    let settings = check("ports", &c, &[(podman, a)]);
    let keys: Vec<String> = settings.ports.keys().map(ToString::to_string).collect();
    assert_eq!(
        keys,
        [
            "53/udp",
            "80/tcp",
            "443/udp",
            "9000/tcp",
            "9001/tcp",
            "9002/tcp",
            "10000/sctp"
        ]
    );
}

#[test]
fn pasta_container_has_ports_but_no_networks() {
    let c = ctr(
        "rootless",
        NetworkMode::Pasta,
        &[port("", 8080, 80, 1, "tcp")],
    );
    let settings = check("pasta_no_networks", &c, &[]);
    let json = serde_json::to_value(&settings).unwrap();
    assert!(json.get("Networks").is_none(), "{json}");
}

#[test]
fn container_without_ports_has_an_empty_ports_object() {
    let c = ctr("quiet", NetworkMode::None, &[]);
    let json = serde_json::to_value(container_inspect(&c, &[], DEFAULT_NETWORK).unwrap()).unwrap();
    assert_eq!(json["Ports"], serde_json::json!({}));
    assert_eq!(json["IPAddress"], "");
    assert_eq!(json["IPPrefixLen"], 0);
}

/// The error and each of its causes, one per line, as the binary prints them.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str("\ncaused by: ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[test]
fn inconsistent_input_is_an_error_with_context() {
    let web = net("web", "ab", &[("10.89.0.0/24", Some("10.89.0.1"))]);
    let other = net("other", "cd", &[("10.90.0.0/24", Some("10.90.0.1"))]);
    let c = ctr("api", NetworkMode::Bridge, &[]);
    let stranger = ctr("stranger", NetworkMode::Bridge, &[]);
    let mine = att(
        &c,
        &web,
        "eth0",
        "02:00:00:00:00:01",
        &["10.89.0.5/24"],
        &[],
    );
    let theirs = att(
        &stranger,
        &web,
        "eth0",
        "02:00:00:00:00:02",
        &["10.89.0.6/24"],
        &[],
    );
    let web_again = NetworkRecord {
        id: id("ef"),
        ..web.clone()
    };

    let mut bad_ports = c.clone();
    bad_ports.ports = Opaque::of(&serde_json::json!([{"host_port": "eighty"}])).unwrap();

    let errors = [
        container_inspect(&bad_ports, &[], DEFAULT_NETWORK).unwrap_err(),
        container_inspect(&c, &[(&web, &theirs)], DEFAULT_NETWORK).unwrap_err(),
        container_inspect(&c, &[(&other, &mine)], DEFAULT_NETWORK).unwrap_err(),
        container_inspect(&c, &[(&web, &mine), (&web_again, &mine)], DEFAULT_NETWORK).unwrap_err(),
    ];
    let text: Vec<String> = errors.iter().map(|e| chain(e)).collect();
    insta::assert_snapshot!("errors", text.join("\n\n"));
}

fn full_network() -> NetworkRecord {
    let mut web = net(
        "web",
        "ab",
        &[
            ("10.89.0.0/24", Some("10.89.0.1")),
            ("fd10:89::/64", Some("fd10:89::1")),
        ],
    );
    web.subnets[1].lease_range = Some(LeaseRange {
        start: Some("fd10:89::10".parse().unwrap()),
        end: Some("fd10:89::ff".parse().unwrap()),
    });
    web.subnets[0].lease_range = Some(LeaseRange {
        start: None,
        end: None,
    });
    web.mtu = Some(1400);
    web.isolate = Isolate::Strict;
    web.labels = BTreeMap::from([("team".to_owned(), "a".to_owned())]);
    web.options = BTreeMap::from([
        ("vlan".to_owned(), "10".to_owned()),
        ("mtu".to_owned(), "9000".to_owned()),
    ]);
    web.created = at(1_674_724_476, 287_624_627);
    web
}

#[test]
fn network_inspect_json() {
    insta::assert_json_snapshot!("network_inspect_full", network_inspect(&full_network()));

    let mut hidden = net("hidden", "d0", &[("10.91.0.0/24", None)]);
    hidden.internal = true;
    hidden.dns_enabled = false;
    hidden.network_interface = String::new();
    hidden.isolate = Isolate::On;
    insta::assert_json_snapshot!("network_inspect_internal", network_inspect(&hidden));

    let plain = network_inspect(&podman_net());
    let json = serde_json::to_value(&plain).unwrap();
    assert!(
        json.get("options").is_none(),
        "isolate off and no mtu leave options out: {json}"
    );
}

#[test]
fn network_ls_table() {
    let mut mac = net("lan", "9e", &[("192.168.1.0/24", Some("192.168.1.1"))]);
    mac.driver = NetworkDriver::Macvlan;
    let rows: Vec<_> = [
        full_network(),
        podman_net(),
        mac,
        net("a-very-long-network-name", "01", &[]),
    ]
    .iter()
    .map(network_ls_row)
    .collect();
    insta::assert_snapshot!("network_ls", render_network_table(&rows));
    assert_eq!(rows[0].id, "abababababab");
}

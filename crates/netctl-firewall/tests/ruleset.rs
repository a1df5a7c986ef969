//! The generated batches against real nft, in a private network namespace each: they apply,
//! they list as the snapshots say, element batches round-trip, a lost table is detected and
//! rebuilt, and adding the 1000th container costs what adding the 1st did.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use common::{NftCli, element_count, list_table, table_exists};
use netctl_firewall::{
    Applied, Change, FirewallDriver, FirewallState, FwContainer, FwNetwork, FwPort, HostIp,
    Isolate, NftRunner, NftablesDriver, Outbound, Protocol, base_table, batch_len, full_rebuild,
    to_json,
};
use netctl_testkit::sandbox_test;

fn network(name: &str, third: u8, isolate: Isolate, internal: bool) -> FwNetwork {
    FwNetwork {
        name: name.into(),
        bridge: format!("nc-{name}"),
        subnets: vec![format!("10.89.{third}.0/24").parse().unwrap()],
        internal,
        isolate,
        outbound: Outbound::default(),
        dns: Vec::new(),
    }
}

/// Four networks covering every kind, two containers covering every kind of port.
fn representative() -> FirewallState {
    let mut web = network("web", 0, Isolate::Enabled, false);
    web.subnets.push("fd10:89::/64".parse().unwrap());
    // DNS on another port (DNATed from 53) on both gateways; `db` on 53 itself; the internal
    // `secret` serves names too; `lan` has no DNS.
    web.dns = vec![
        "10.89.0.1:5353".parse().unwrap(),
        "[fd10:89::1]:5353".parse().unwrap(),
    ];
    let mut db = network("db", 1, Isolate::Strict, false);
    db.dns = vec!["10.89.1.1:53".parse().unwrap()];
    let mut secret = network("secret", 3, Isolate::Disabled, true);
    secret.dns = vec!["10.89.3.1:5353".parse().unwrap()];
    let web1 = FwContainer {
        id: "a".repeat(64),
        network: "web".into(),
        ipv4: Some(Ipv4Addr::new(10, 89, 0, 2)),
        ipv6: Some("fd10:89::2".parse().unwrap()),
        ports: vec![
            FwPort::new(Protocol::Tcp, 8080, 80),
            FwPort {
                range: 2,
                ..FwPort::new(Protocol::Udp, 5353, 53)
            },
            FwPort {
                host_ip: HostIp::Addr(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                ..FwPort::new(Protocol::Tcp, 8081, 81)
            },
            FwPort {
                host_ip: HostIp::AllV6,
                ..FwPort::new(Protocol::Tcp, 8443, 443)
            },
            FwPort {
                host_ip: HostIp::AllV4,
                ..FwPort::new(Protocol::Sctp, 9000, 9000)
            },
            FwPort {
                host_ip: HostIp::Addr("2001:db8::10".parse().unwrap()),
                ..FwPort::new(Protocol::Tcp, 8444, 443)
            },
        ],
    };
    let db1 = FwContainer {
        id: "b".repeat(64),
        network: "db".into(),
        ipv4: Some(Ipv4Addr::new(10, 89, 1, 2)),
        ipv6: None,
        ports: vec![FwPort {
            host_ip: HostIp::Addr(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))),
            ..FwPort::new(Protocol::Tcp, 5432, 5432)
        }],
    };
    FirewallState {
        networks: vec![web, db, network("lan", 2, Isolate::Disabled, false), secret],
        containers: vec![web1, db1],
    }
}

sandbox_test! {
    fn full_rebuild_lists_as_expected(_sb) {
        let driver = NftablesDriver::new(NftCli);
        driver.full_rebuild(&representative()).unwrap();
        let listing = list_table();
        insta::assert_snapshot!("representative_ruleset", listing);

        // Rebuilding over an existing table replaces it: same listing, no duplicated rules.
        driver.full_rebuild(&representative()).unwrap();
        assert_eq!(list_table(), listing);

        // The base table alone is the rebuild of an empty state.
        driver.remove_all().unwrap();
        assert!(!table_exists());
        NftCli.apply(&to_json(&base_table())).unwrap();
        let base = list_table();
        driver.full_rebuild(&FirewallState::default()).unwrap();
        assert_eq!(list_table(), base);
    }
}

sandbox_test! {
    fn element_batches_round_trip(_sb) {
        let driver = NftablesDriver::new(NftCli);
        let mut state = representative();
        let extra_container = state.containers.pop().unwrap();
        let extra_network = state.networks.remove(1);
        let mut without = state.clone();
        without.containers.clear();
        driver.full_rebuild(&without).unwrap();
        let before = list_table();

        driver.add_network(&extra_network).unwrap();
        driver.add_container(&state.containers[0]).unwrap();
        driver.add_container(&extra_container).unwrap();
        // Adding again is harmless.
        driver.add_container(&extra_container).unwrap();
        driver.add_network(&extra_network).unwrap();
        let mut everything = representative();
        everything.containers.reverse();
        driver.full_rebuild(&everything).unwrap();
        let all = list_table();
        assert_ne!(all, before);

        // Removing brings back exactly the table we started with, and removing twice is fine.
        for _ in 0..2 {
            driver.remove_container(&extra_container).unwrap();
            driver.remove_container(&state.containers[0]).unwrap();
            driver.remove_network(&extra_network).unwrap();
        }
        assert_eq!(list_table(), before);
    }
}

sandbox_test! {
    fn a_lost_table_is_reported_and_rebuilt(sb) {
        let driver = NftablesDriver::new(NftCli);
        let state = representative();
        driver.full_rebuild(&state).unwrap();
        let expected = list_table();
        assert!(driver.table_present());

        sb.run(&["nft", "flush", "ruleset"]);
        assert!(!driver.table_present());
        let err = driver.add_container(&state.containers[0]).unwrap_err();
        assert!(err.is_table_missing(), "{err}");
        let err = driver.remove_network(&state.networks[0]).unwrap_err();
        assert!(err.is_table_missing(), "{err}");

        let applied = driver
            .apply_change(Change::AddContainer(&state.containers[0]), &state)
            .unwrap();
        assert_eq!(applied, Applied::Rebuilt);
        assert_eq!(list_table(), expected);

        // With the table in place, a host port already forwarded elsewhere is a plain rejection,
        // and nothing changes.
        let thief = FwContainer {
            id: "c".repeat(64),
            ipv4: Some(Ipv4Addr::new(10, 89, 0, 99)),
            ..state.containers[0].clone()
        };
        let err = driver.add_container(&thief).unwrap_err();
        assert!(!err.is_table_missing(), "{err}");
        let err = driver.remove_container(&thief).unwrap_err();
        assert!(!err.is_table_missing(), "{err}");
        assert_eq!(list_table(), expected);

        driver.remove_all().unwrap();
        assert!(!table_exists());
        driver.remove_all().unwrap();
    }
}

/// Container `n` of the scaling test: its own address and three host ports of its own.
fn numbered(n: u16) -> FwContainer {
    let [hi, lo] = n.to_be_bytes();
    let base = 10_000 + 3 * n;
    FwContainer {
        id: format!("{n:064x}"),
        network: "big".into(),
        ipv4: Some(Ipv4Addr::new(10, 90, hi, lo)),
        ipv6: Some(Ipv6Addr::new(0xfd10, 0x90, 0, 0, 0, 0, 0, n)),
        ports: vec![
            FwPort::new(Protocol::Tcp, base, 80),
            FwPort::new(Protocol::Udp, base + 1, 53),
            FwPort {
                host_ip: HostIp::Addr(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                ..FwPort::new(Protocol::Tcp, base + 2, 8080)
            },
        ],
    }
}

sandbox_test! {
    fn the_thousandth_container_costs_what_the_first_did(_sb) {
        let driver = NftablesDriver::new(NftCli);
        let big = FwNetwork {
            name: "big".into(),
            bridge: "nc-big".into(),
            subnets: vec!["10.90.0.0/16".parse().unwrap(), "fd10:90::/64".parse().unwrap()],
            internal: false,
            isolate: Isolate::Strict,
            outbound: Outbound::default(),
            dns: Vec::new(),
        };
        let state = FirewallState { networks: vec![big], containers: Vec::new() };
        driver.full_rebuild(&state).unwrap();

        let first_len = batch_len(&netctl_firewall::add_container(&numbered(1)));
        let started = Instant::now();
        let (mut first_ms, mut last_ms) = (0, 0);
        for n in 1..=1000 {
            let container = numbered(n);
            let len = batch_len(&netctl_firewall::add_container(&container));
            assert_eq!(len, first_len, "container {n}");
            let t = Instant::now();
            driver
                .add_container(&container)
                .unwrap_or_else(|e| panic!("container {n}: {e}"));
            if n == 1 {
                first_ms = t.elapsed().as_millis();
            } else if n == 1000 {
                last_ms = t.elapsed().as_millis();
            }
        }
        let last = numbered(1000);
        let t = Instant::now();
        driver.remove_container(&last).unwrap();
        let remove_ms = t.elapsed().as_millis();
        eprintln!(
            "1000 adds in {} ms (1st {first_ms} ms, 1000th {last_ms} ms); \
             removing the 1000th: {remove_ms} ms",
            started.elapsed().as_millis()
        );
        assert_eq!(
            batch_len(&netctl_firewall::remove_container(&last)),
            batch_len(&netctl_firewall::remove_container(&numbered(1)))
        );
        // 999 containers left, two wildcard ports each in both families, one localhost port.
        assert_eq!(element_count("dnat4_any_addr"), 999 * 2);
        assert_eq!(element_count("dnat6_any_port"), 999 * 2);
        assert_eq!(element_count("dnat4_ip_addr"), 999);

        // And a rebuild of all of it is still one transaction that nft takes.
        let state = FirewallState {
            networks: vec![FwNetwork {
                name: "big".into(),
                bridge: "nc-big".into(),
                subnets: vec!["10.90.0.0/16".parse().unwrap(), "fd10:90::/64".parse().unwrap()],
                internal: false,
                isolate: Isolate::Strict,
                outbound: Outbound::default(),
                dns: Vec::new(),
            }],
            containers: (1..1000).map(numbered).collect(),
        };
        let rebuild = full_rebuild(&state);
        driver.full_rebuild(&state).unwrap();
        assert_eq!(element_count("dnat4_any_addr"), 999 * 2);
        // Same command count as the rebuild of one container: elements grow, commands do not.
        let one = FirewallState { containers: vec![numbered(1)], ..state.clone() };
        assert_eq!(batch_len(&rebuild), batch_len(&full_rebuild(&one)));
    }
}

sandbox_test! {
    /// A container's port forwards sent as nf_tables bytes over netlink read back exactly as
    /// the same elements written by `nft` from JSON; removing them (twice) restores the table;
    /// a host port already forwarded elsewhere is refused and changes nothing.
    fn netlink_element_batches_match_nft(_sb) {
        let netlink = NftablesDriver::new(common::Netlink::default());
        let state = representative();
        let mut without = state.clone();
        without.containers.clear();
        netlink.full_rebuild(&without).unwrap();
        let before = list_table();

        for container in &state.containers {
            let batch = netctl_firewall::batch::container_elements(container, false)
                .expect("port forwards go over netlink");
            assert!(!batch.ops.is_empty());
            netlink.add_container(container).unwrap();
            // Adding again is harmless, as with nft.
            netlink.add_container(container).unwrap();
        }
        let by_netlink = list_table();
        NftablesDriver::new(NftCli).full_rebuild(&state).unwrap();
        assert_eq!(by_netlink, list_table(), "netlink and nft wrote different elements");

        let mut taken = state.containers[0].clone();
        taken.id = "c".repeat(64);
        taken.ipv4 = Some(Ipv4Addr::new(10, 89, 0, 99));
        let err = netlink.add_container(&taken).unwrap_err();
        assert!(!err.is_table_missing(), "{err}");
        assert_eq!(list_table(), by_netlink, "a refused batch changes nothing");

        for _ in 0..2 {
            for container in &state.containers {
                netlink.remove_container(container).unwrap();
            }
        }
        assert_eq!(list_table(), before);
    }
}

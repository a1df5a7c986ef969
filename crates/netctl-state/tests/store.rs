//! The store through its public API: records, IPAM, attachments, generations, schema and files.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{container, id, network, subnet, with_lease_range};
use ipnet::IpNet;
use netctl_state::{
    AllocRequest, AttachRequest, HelperKind, HelperRecord, IpamError, MacAddr, OperationLock,
    StateError, StateRead, Store,
};

fn open(dir: &Path) -> Store {
    Store::open(dir).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn ips(list: &[IpNet]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

fn attach(store: &Store, container: &str, network: &str) -> Result<Vec<String>, StateError> {
    store.write(|tx| {
        tx.attach(&request(container, network))
            .map(|a| ips(&a.addresses))
    })
}

fn request(container: &str, network: &str) -> AttachRequest {
    AttachRequest {
        container: container.to_owned(),
        network: network.to_owned(),
        static_ips: vec![],
        mac: None,
        aliases: vec![],
        interface: None,
        metric: None,
    }
}

/// A store with network `web` (10.89.0.0/24, gateway .1) and containers c0..c{n-1}.
fn store_with(dir: &Path, subnets: &[&str], containers: u64) -> Store {
    let store = open(dir);
    store
        .write(|tx| {
            tx.put_network(&network("web", subnets))?;
            for n in 0..containers {
                tx.put_container(&container(&format!("c{n}"), n + 1))?;
            }
            Ok::<_, StateError>(())
        })
        .unwrap();
    store
}

fn assert_consistent(store: &Store) {
    let problems = store.read().unwrap().consistency_problems().unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn open_makes_a_private_directory_and_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("var/lib/netctl");
    let store = open(&dir);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(store.path()), 0o600);
    assert_eq!(store.path(), dir.join("state.redb"));
    drop(store);
    let lock = OperationLock::acquire(&dir, Duration::ZERO).unwrap();
    assert_eq!(mode(lock.path()), 0o600);
}

#[test]
fn open_tightens_loose_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    drop(open(&dir));
    std::fs::set_permissions(
        dir.join("state.redb"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let store = open(&dir);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(store.path()), 0o600);
}

#[test]
fn schema_version_is_recorded_and_a_newer_one_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    assert_eq!(
        store.read().unwrap().schema_version().unwrap(),
        netctl_state::SCHEMA_VERSION
    );
    let path = store.path().to_owned();
    drop(store);

    // What a future netctl would leave behind.
    {
        let db = redb::Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<'_, &str, &str> = redb::TableDefinition::new("meta");
            let mut t = tx.open_table(meta).unwrap();
            t.insert("schema_version", "7").unwrap();
            t.insert("schema_written_by", "9.9.9").unwrap();
        }
        tx.commit().unwrap();
    }
    let err = Store::open(tmp.path()).unwrap_err();
    assert!(
        matches!(
            err,
            StateError::SchemaTooNew {
                found: 7,
                supported: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("by netctl 9.9.9"), "{err}");
}

#[test]
fn a_second_open_is_refused_while_the_store_is_open() {
    let tmp = tempfile::tempdir().unwrap();
    let _store = open(tmp.path());
    let err = Store::open(tmp.path()).unwrap_err();
    assert!(matches!(err, StateError::StoreInUse { .. }), "{err:?}");
}

#[test]
fn records_survive_reopening() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with(tmp.path(), &["10.89.0.0/24", "fd10:89::/64"], 1);
    let attached = store.write(|tx| tx.attach(&request("c0", "web"))).unwrap();
    drop(store);
    let store = open(tmp.path());
    let r = store.read().unwrap();
    assert_eq!(
        r.network("web").unwrap().unwrap(),
        network("web", &["10.89.0.0/24", "fd10:89::/64"])
    );
    assert_eq!(r.container("c0").unwrap().unwrap(), container("c0", 1));
    // the MAC (and everything else) is the one recorded: stable across runs
    assert_eq!(r.attachment("c0", "web").unwrap().unwrap(), attached);
    assert_eq!(
        r.container_attachments("c0").unwrap(),
        vec![attached.clone()]
    );
    assert_eq!(r.network_attachments("web").unwrap(), vec![attached]);
}

#[test]
fn a_failed_write_keeps_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let result: Result<(), StateError> = store.write(|tx| {
        tx.put_network(&network("web", &["10.89.0.0/24"]))?;
        Err(StateError::NetworkNotFound {
            query: "other".into(),
        })
    });
    assert!(result.is_err());
    assert_eq!(store.read().unwrap().networks().unwrap(), vec![]);
}

#[test]
fn a_reader_sees_the_state_before_or_after_a_write() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with(tmp.path(), &["10.89.0.0/24"], 2);
    let before = store.read().unwrap();
    attach(&store, "c0", "web").unwrap();
    attach(&store, "c1", "web").unwrap();
    assert_eq!(before.leases("web").unwrap(), vec![]);
    assert_eq!(before.attachments().unwrap(), vec![]);
    let after = store.read().unwrap();
    assert_eq!(after.leases("web").unwrap().len(), 2);
    assert_eq!(after.attachments().unwrap().len(), 2);
}

#[test]
fn allocation_is_sequential_and_skips_the_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with(tmp.path(), &["10.89.0.0/24"], 3);
    assert_eq!(attach(&store, "c0", "web").unwrap(), ["10.89.0.2/24"]);
    assert_eq!(attach(&store, "c1", "web").unwrap(), ["10.89.0.3/24"]);
    // a freed address is not handed out again before the range wraps (podman's bats rely on
    // a new address after disconnect/connect)
    store.write(|tx| tx.detach("c0", "web")).unwrap();
    assert_eq!(attach(&store, "c2", "web").unwrap(), ["10.89.0.4/24"]);
    assert_eq!(attach(&store, "c0", "web").unwrap(), ["10.89.0.5/24"]);
    let r = store.read().unwrap();
    assert_eq!(
        r.last_allocated("web", &"10.89.0.0/24".parse().unwrap())
            .unwrap(),
        Some("10.89.0.5".parse().unwrap())
    );
    let leases: Vec<(String, String)> = r
        .leases("web")
        .unwrap()
        .into_iter()
        .map(|l| (l.address.to_string(), l.container))
        .collect();
    assert_eq!(
        leases,
        [
            ("10.89.0.3", "c1"),
            ("10.89.0.4", "c2"),
            ("10.89.0.5", "c0")
        ]
        .map(|(a, c)| (a.to_owned(), c.to_owned()))
    );
    assert_consistent(&store);
}

#[test]
fn dual_stack_gets_one_address_per_family() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with(tmp.path(), &["10.89.0.0/24", "fd10:89::/64"], 2);
    assert_eq!(
        attach(&store, "c0", "web").unwrap(),
        ["10.89.0.2/24", "fd10:89::2/64"]
    );
    // a static address in one subnet, the next free one in the other
    let got = store
        .write(|tx| {
            tx.attach(&AttachRequest {
                static_ips: vec!["fd10:89::99".parse().unwrap()],
                ..request("c1", "web")
            })
        })
        .unwrap();
    assert_eq!(ips(&got.addresses), ["10.89.0.3/24", "fd10:89::99/64"]);
    assert_consistent(&store);
}

#[test]
fn lease_ranges_bound_automatic_allocation_and_exhaust() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let mut net = network("web", &[]);
    net.subnets = vec![with_lease_range(
        subnet("10.89.0.0/24"),
        "10.89.0.100",
        "10.89.0.101",
    )];
    store
        .write(|tx| {
            tx.put_network(&net)?;
            for n in 0..3 {
                tx.put_container(&container(&format!("c{n}"), n + 1))?;
            }
            Ok::<_, StateError>(())
        })
        .unwrap();
    assert_eq!(attach(&store, "c0", "web").unwrap(), ["10.89.0.100/24"]);
    assert_eq!(attach(&store, "c1", "web").unwrap(), ["10.89.0.101/24"]);
    let err = attach(&store, "c2", "web").unwrap_err();
    assert_eq!(
        err.to_string(),
        "allocating addresses on network web for container c2"
    );
    let StateError::Allocate { source, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(
        source.to_string(),
        "failed to find free IP in range: 10.89.0.100 - 10.89.0.101"
    );
    // a static address outside the lease range is still accepted
    let got = store
        .write(|tx| {
            tx.attach(&AttachRequest {
                static_ips: vec!["10.89.0.7".parse().unwrap()],
                ..request("c2", "web")
            })
        })
        .unwrap();
    assert_eq!(ips(&got.addresses), ["10.89.0.7/24"]);
}

#[test]
fn static_addresses_do_not_move_the_pointer() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with(tmp.path(), &["10.89.0.0/24"], 3);
    store
        .write(|tx| {
            tx.allocate(
                "web",
                "c0",
                &AllocRequest {
                    static_ips: vec!["10.89.0.3".parse().unwrap()],
                },
            )
        })
        .unwrap();
    let r = store.read().unwrap();
    assert_eq!(
        r.last_allocated("web", &"10.89.0.0/24".parse().unwrap())
            .unwrap(),
        None
    );
    drop(r);
    let next = |c: &str| {
        store
            .write(|tx| tx.allocate("web", c, &AllocRequest::default()))
            .map(|a| ips(&a))
            .unwrap()
    };
    assert_eq!(next("c1"), ["10.89.0.2/24"]);
    // .3 is taken by the static address and skipped
    assert_eq!(next("c2"), ["10.89.0.4/24"]);
    assert_consistent(&store);
}

#[test]
fn a_failed_allocation_changes_nothing_even_if_the_transaction_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with(tmp.path(), &["10.89.0.0/24", "fd10:89::/64"], 2);
    attach(&store, "c0", "web").unwrap();
    store
        .write(|tx| {
            // the IPv4 subnet would get an address, the IPv6 static one is taken: all or nothing
            let err = tx
                .attach(&AttachRequest {
                    static_ips: vec!["fd10:89::2".parse().unwrap()],
                    ..request("c1", "web")
                })
                .unwrap_err();
            assert!(matches!(err, StateError::Allocate { .. }), "{err:?}");
            Ok::<_, StateError>(())
        })
        .unwrap();
    let r = store.read().unwrap();
    assert_eq!(r.attachment("c1", "web").unwrap(), None);
    assert_eq!(r.allocation("web", "c1").unwrap(), None);
    assert!(r.leases("web").unwrap().iter().all(|l| l.container == "c0"));
    drop(r);
    assert_consistent(&store);
    // and the pointer did not move either
    assert_eq!(
        attach(&store, "c1", "web").unwrap(),
        ["10.89.0.3/24", "fd10:89::3/64"]
    );
}

#[test]
fn attachments_get_interfaces_and_stable_macs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let declared: MacAddr = "02:00:00:aa:bb:cc".parse().unwrap();
    let (a, b, c) = store
        .write(|tx| {
            tx.put_network(&network("web", &["10.89.0.0/24"]))?;
            tx.put_network(&network("db", &["10.89.1.0/24"]))?;
            tx.put_network(&network("mgmt", &["10.89.2.0/24"]))?;
            tx.put_container(&container("api", 1))?;
            let a = tx.attach(&request("api", "web"))?;
            let b = tx.attach(&AttachRequest {
                mac: Some(declared),
                aliases: vec!["backend".into()],
                ..request("api", "db")
            })?;
            tx.detach("api", "web")?;
            // eth0 is free again: the lowest free name is taken
            let c = tx.attach(&request("api", "mgmt"))?;
            Ok::<_, StateError>((a, b, c))
        })
        .unwrap();
    assert_eq!(a.interface, "eth0");
    assert!(a.mac.is_locally_administered() && a.mac.is_unicast());
    assert_eq!(b.interface, "eth1");
    assert_eq!(b.mac, declared);
    assert_eq!(b.aliases, ["backend"]);
    assert_eq!(c.interface, "eth0");
    assert_ne!(a.mac, c.mac);

    let err = store
        .write(|tx| {
            tx.attach(&AttachRequest {
                interface: Some("eth1".into()),
                ..request("api", "web")
            })
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "interface eth1 of container api is already used for network db"
    );
    let updated = store
        .write(|tx| tx.set_aliases("api", "db", vec!["x".into()]))
        .unwrap();
    assert_eq!(updated.aliases, ["x"]);
    assert_eq!(updated.mac, declared);
    assert_consistent(&store);
}

#[test]
fn removal_refuses_while_in_use_and_then_clears_ipam_state() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with(tmp.path(), &["10.89.0.0/24"], 1);
    attach(&store, "c0", "web").unwrap();
    let err = store.write(|tx| tx.remove_network("web")).unwrap_err();
    assert_eq!(err.to_string(), "network web is in use by containers: c0");
    let err = store.write(|tx| tx.remove_container("c0")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "container c0 is still attached to networks: web"
    );
    store
        .write(|tx| {
            tx.put_helper(&HelperRecord {
                container: "c0".into(),
                kind: HelperKind::Pasta,
                pid: 1234,
                start_time: 99,
                argv: vec!["pasta".into(), "--config-net".into()],
            })
        })
        .unwrap();
    store
        .write(|tx| {
            tx.detach("c0", "web")?;
            tx.remove_network("web")?;
            tx.remove_container("c0")
        })
        .unwrap();
    let r = store.read().unwrap();
    assert_eq!(r.all_leases().unwrap(), vec![]);
    assert_eq!(r.allocations().unwrap(), vec![]);
    assert_eq!(r.helpers().unwrap(), vec![]);
    assert_eq!(
        r.last_allocated("web", &"10.89.0.0/24".parse().unwrap())
            .unwrap(),
        None
    );
    drop(r);
    // a network of the same name starts afresh
    let store = {
        drop(store);
        store_with(tmp.path(), &["10.89.0.0/24"], 1)
    };
    assert_eq!(attach(&store, "c0", "web").unwrap(), ["10.89.0.2/24"]);
}

#[test]
fn network_records_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with(tmp.path(), &["10.89.0.0/24"], 1);
    attach(&store, "c0", "web").unwrap();
    let put = |net: netctl_state::NetworkRecord| {
        store
            .write(|tx| tx.put_network(&net))
            .unwrap_err()
            .to_string()
    };
    let mut bad_id = network("x", &["10.1.0.0/24"]);
    bad_id.id = "abc".into();
    let mut not_canonical = network("x", &[]);
    not_canonical.subnets = vec![subnet("10.1.0.0/24")];
    not_canonical.subnets[0].subnet = "10.1.0.5/24".parse().unwrap();
    let mut bad_gateway = network("x", &["10.1.0.0/24"]);
    bad_gateway.subnets[0].gateway = Some("10.2.0.1".parse().unwrap());
    let overlapping = network("x", &["10.1.0.0/16", "10.1.2.0/24"]);
    let dropped = network("web", &["10.89.1.0/24"]);
    let mut out = String::new();
    for text in [
        put(bad_id),
        put(not_canonical),
        put(bad_gateway),
        put(overlapping),
        put(dropped),
    ] {
        writeln!(out, "{text}").unwrap();
    }
    insta::assert_snapshot!(out);
}

#[test]
fn lookups_by_name_and_id_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let mut a = network("alpha", &["10.89.0.0/24"]);
    a.id = format!("ab{}", &id(1)[2..]);
    let mut b = network("beta", &["10.89.1.0/24"]);
    b.id = format!("ac{}", &id(2)[2..]);
    store
        .write(|tx| {
            tx.put_network(&a)?;
            tx.put_network(&b)?;
            tx.put_container(&container("api", 0xabc))
        })
        .unwrap();
    let r = store.read().unwrap();
    assert_eq!(r.find_network("beta").unwrap().name, "beta");
    assert_eq!(r.find_network("ab").unwrap().name, "alpha");
    assert_eq!(
        r.find_network("a").unwrap_err().to_string(),
        "more than one result for network ID a"
    );
    assert_eq!(
        r.find_network("zz").unwrap_err().to_string(),
        "unable to find network with name or ID zz: network not found"
    );
    assert_eq!(r.find_container("api").unwrap().id, id(0xabc));
    assert_eq!(r.find_container(&id(0xabc)[..5]).unwrap().name, "api");
    assert_eq!(
        r.find_container("nope").unwrap_err().to_string(),
        "no container with name or ID \"nope\" found: no such container"
    );
    assert_eq!(r.bridge_names().unwrap(), ["nc-alpha", "nc-beta"]);
    assert_eq!(
        ips(&r.used_subnets().unwrap()),
        ["10.89.0.0/24", "10.89.1.0/24"]
    );
}

#[test]
fn generations_are_numbered_hashed_and_pruned() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let g1 = store
        .write(|tx| tx.record_generation("abc", Some(Path::new("/etc/netctl/x.toml"))))
        .unwrap();
    assert_eq!(g1.number, 1);
    assert_eq!(
        g1.sha256,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(g1.source.as_deref(), Some(Path::new("/etc/netctl/x.toml")));
    store
        .write(|tx| {
            for n in 0..101 {
                tx.record_generation(&format!("n = {n}\n"), None)?;
            }
            Ok::<_, StateError>(())
        })
        .unwrap();
    let r = store.read().unwrap();
    let all = r.generations().unwrap();
    assert_eq!(all.len() as u64, netctl_state::GENERATIONS_KEPT);
    assert_eq!(all.first().unwrap().number, 3);
    let latest = r.latest_generation().unwrap().unwrap();
    assert_eq!(latest.number, 102);
    assert_eq!(latest.content, "n = 100\n");
    assert_eq!(r.generation(1).unwrap(), None);
    assert_eq!(r.generation(102).unwrap(), Some(latest));
}

#[test]
fn helpers_need_a_recorded_container() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with(tmp.path(), &[], 1);
    let helper = HelperRecord {
        container: "c0".into(),
        kind: HelperKind::Slirp4netns,
        pid: 4321,
        start_time: 12345,
        argv: vec!["slirp4netns".into(), "--configure".into()],
    };
    store.write(|tx| tx.put_helper(&helper)).unwrap();
    assert_eq!(
        store.read().unwrap().helper("c0").unwrap(),
        Some(helper.clone())
    );
    let err = store
        .write(|tx| {
            tx.put_helper(&HelperRecord {
                container: "ghost".into(),
                ..helper.clone()
            })
        })
        .unwrap_err();
    assert!(
        matches!(err, StateError::ContainerNotFound { .. }),
        "{err:?}"
    );
    assert_eq!(
        store.write(|tx| tx.remove_helper("c0")).unwrap(),
        Some(helper)
    );
    assert_eq!(store.read().unwrap().helpers().unwrap(), vec![]);
}

#[test]
fn networks_without_subnets_allocate_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with(tmp.path(), &[], 1);
    assert_eq!(attach(&store, "c0", "web").unwrap(), Vec::<String>::new());
    assert_consistent(&store);
}

/// The texts users read when IPAM or the store says no, in one place.
#[test]
fn error_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with(tmp.path(), &["10.89.0.0/29", "fd10:89::/64"], 3);
    attach(&store, "c0", "web").unwrap();
    let mut out = String::new();
    let mut try_static = |container: &str, addrs: &[&str]| {
        let req = AttachRequest {
            static_ips: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            ..request(container, "web")
        };
        let err = store.write(|tx| tx.attach(&req)).unwrap_err();
        let mut chain = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            write!(chain, ": {s}").unwrap();
            source = s.source();
        }
        writeln!(out, "{}: {chain}", addrs.join(" ")).unwrap();
    };
    try_static("c1", &["10.89.0.2"]);
    try_static("c1", &["10.89.0.0"]);
    try_static("c1", &["10.89.0.1"]);
    try_static("c1", &["10.89.0.7"]);
    try_static("c1", &["fd10:89::"]);
    try_static("c1", &["fd10:89::1"]);
    try_static("c1", &["10.89.1.1"]);
    try_static("c1", &["10.89.0.3", "10.89.0.4"]);
    // fill the IPv4 subnet: .3 .4 .5 .6 remain, c0 has .2
    store
        .write(|tx| {
            for n in 10..14 {
                tx.put_container(&container(&format!("f{n}"), n))?;
                tx.attach(&request(&format!("f{n}"), "web"))?;
            }
            Ok::<_, StateError>(())
        })
        .unwrap();
    try_static("c1", &["fd10:89::77"]);
    let errs = [
        store
            .write(|tx| tx.attach(&request("c0", "web")))
            .unwrap_err(),
        store
            .write(|tx| tx.attach(&request("ghost", "web")))
            .unwrap_err(),
        store
            .write(|tx| tx.attach(&request("c1", "nonet")))
            .unwrap_err(),
        store
            .write(|tx| tx.allocate("web", "c0", &AllocRequest::default()))
            .unwrap_err(),
        store
            .write(|tx| tx.set_aliases("c1", "web", vec![]))
            .unwrap_err(),
    ];
    for e in errs {
        let source = std::error::Error::source(&e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        writeln!(out, "{e}{source}").unwrap();
    }
    insta::assert_snapshot!(out);
}

/// The property tests again, this time against the real store: random attach/detach streams on
/// a small network, one write transaction each, checking every invariant after every step.
/// Failed attaches are swallowed inside a committed transaction, so this also checks that a
/// failed method leaves nothing behind.
mod store_properties {
    use netctl_state::{AttachmentRecord, ReadTxn};
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Attach(u8),
        AttachStatic(u8, u8),
        Detach(u8),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                4 => (0u8..12).prop_map(Op::Attach),
                1 => (0u8..12, 0u8..16).prop_map(|(c, a)| Op::AttachStatic(c, a)),
                2 => (0u8..12).prop_map(Op::Detach),
            ],
            1..40,
        )
    }

    fn last_octet(ip: IpAddr) -> u8 {
        match ip {
            IpAddr::V4(v4) => v4.octets()[3],
            IpAddr::V6(_) => unreachable!("the test network is IPv4"),
        }
    }

    fn check_invariants(r: &ReadTxn) -> Result<(), TestCaseError> {
        let leases = r.leases("web").unwrap();
        let addrs: BTreeSet<IpAddr> = leases.iter().map(|l| l.address).collect();
        prop_assert_eq!(addrs.len(), leases.len(), "an address leased twice");
        for l in &leases {
            let last = last_octet(l.address);
            prop_assert!(
                last != 0 && last != 1 && last != 15,
                "reserved {} leased",
                l.address
            );
        }
        let problems = r.consistency_problems().unwrap();
        prop_assert!(problems.is_empty(), "{:?}", problems);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn store_allocator_properties(ops in ops(), ranged in any::<bool>()) {
            let tmp = tempfile::tempdir().unwrap();
            let store = open(tmp.path());
            let mut net = network("web", &["10.89.0.0/28"]);
            // .0 network, .1 gateway, .15 broadcast; a lease range .4-.9 when ranged
            let (lo, hi) = if ranged { (4u8, 9u8) } else { (2, 14) };
            if ranged {
                net.subnets[0] = with_lease_range(subnet("10.89.0.0/28"), "10.89.0.4", "10.89.0.9");
            }
            store.write(|tx| {
                tx.put_network(&net)?;
                for n in 0u64..12 {
                    tx.put_container(&container(&format!("c{n}"), n + 1))?;
                }
                Ok::<_, StateError>(())
            }).unwrap();
            for op in ops {
                let before = store.read().unwrap();
                match op {
                    Op::Attach(c) | Op::AttachStatic(c, _) => {
                        let name = format!("c{c}");
                        let statics = match op {
                            Op::AttachStatic(_, a) => vec![IpAddr::from([10, 89, 0, a])],
                            _ => vec![],
                        };
                        let held: BTreeSet<u8> =
                            before.leases("web").unwrap().iter().map(|l| last_octet(l.address)).collect();
                        let already = before.attachment(&name, "web").unwrap().is_some();
                        let req = AttachRequest { static_ips: statics.clone(), ..request(&name, "web") };
                        let result: Result<AttachmentRecord, StateError> =
                            store.write(|tx| Ok::<_, StateError>(tx.attach(&req))).unwrap();
                        match result {
                            Ok(a) => {
                                prop_assert!(!already);
                                let last = last_octet(a.addresses[0].addr());
                                prop_assert!(!held.contains(&last), "{} handed out twice", last);
                                if statics.is_empty() {
                                    prop_assert!(last >= lo && last <= hi, "{} outside range", last);
                                }
                            }
                            Err(StateError::AlreadyAttached { .. }) => prop_assert!(already),
                            Err(StateError::Allocate { source: IpamError::Exhausted { .. }, .. }) => {
                                prop_assert!((lo..=hi).all(|o| held.contains(&o)), "exhausted with free addresses: {:?}", held);
                            }
                            Err(StateError::Allocate { source: IpamError::AddressInUse { ip, .. }, .. }) => {
                                prop_assert!(held.contains(&last_octet(ip)));
                            }
                            Err(StateError::Allocate { source: IpamError::Reserved { .. } | IpamError::NotInSubnet { .. }, .. }) => {
                                prop_assert!(!statics.is_empty());
                            }
                            Err(e) => prop_assert!(false, "unexpected error {}", e),
                        }
                    }
                    Op::Detach(c) => {
                        store.write(|tx| tx.detach(&format!("c{c}"), "web")).unwrap();
                    }
                }
                drop(before);
                check_invariants(&store.read().unwrap())?;
            }
        }
    }
}

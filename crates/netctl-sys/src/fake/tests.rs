use std::path::Path;

use super::*;
use crate::Sys;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn container(sys: &FakeSys) -> NsRef {
    NsRef::Path(sys.create_named(Path::new("/run/netns"), "c1").unwrap())
}

fn veth(peer_ns: &NsRef) -> VethSpec {
    VethSpec {
        name: "veth0".into(),
        mtu: Some(1400),
        mac: None,
        alias: Some("netctl".into()),
        peer_name: "eth0".into(),
        peer_ns: peer_ns.clone(),
        peer_mac: Some("02:42:ac:11:00:02".parse().unwrap()),
    }
}

fn bridge() -> BridgeSpec {
    BridgeSpec {
        name: "br0".into(),
        mtu: None,
        mac: Some("02:00:00:00:00:01".parse().unwrap()),
        alias: Some("netctl".into()),
    }
}

type Undo = Box<dyn Fn(&dyn Sys)>;

/// A bridge network attachment the way a backend would do it, undoing its own steps when one
/// fails, so it can stand in for a planner in the tests below.
fn attach(sys: &dyn Sys, ctr: &NsRef) -> SysResult<()> {
    let mut undo: Vec<Undo> = Vec::new();
    let result = (|| {
        if sys.link(&NsRef::Host, "br0")?.is_none() {
            sys.add_bridge(&NsRef::Host, &bridge())?;
            undo.push(Box::new(|s| drop(s.del_link(&NsRef::Host, "br0"))));
        }
        let has_gateway = sys
            .addrs(&NsRef::Host)?
            .iter()
            .any(|a| a.net == net("10.89.0.1/24"));
        if !has_gateway {
            sys.add_addr(&NsRef::Host, "br0", net("10.89.0.1/24"))?;
            undo.push(Box::new(|s| {
                drop(s.del_addr(&NsRef::Host, "br0", net("10.89.0.1/24")));
            }));
        }
        if !sys.link(&NsRef::Host, "br0")?.is_some_and(|l| l.up) {
            sys.set_link(&NsRef::Host, "br0", &LinkChange::up())?;
        }
        if sys.link(&NsRef::Host, "veth0")?.is_none() {
            sys.add_veth(&NsRef::Host, &veth(ctr))?;
            undo.push(Box::new(|s| drop(s.del_link(&NsRef::Host, "veth0"))));
        }
        let port = sys.link(&NsRef::Host, "veth0")?.expect("veth0 exists");
        if !port.up || port.master.is_none() {
            let change = LinkChange {
                up: Some(true),
                master: Some(Some("br0".into())),
                ..LinkChange::default()
            };
            sys.set_link(&NsRef::Host, "veth0", &change)?;
        }
        if !sys.link(ctr, "eth0")?.is_some_and(|l| l.up) {
            sys.set_link(ctr, "eth0", &LinkChange::up())?;
        }
        if sys.addrs(ctr)?.iter().all(|a| a.net != net("10.89.0.2/24")) {
            sys.add_addr(ctr, "eth0", net("10.89.0.2/24"))?;
        }
        let default = Route::default_via(ip("10.89.0.1")).dev("eth0").metric(100);
        if !sys
            .routes(ctr)?
            .iter()
            .any(|r| r.dst == default.dst && r.gateway == default.gateway)
        {
            sys.add_route(ctr, &default)?;
        }
        let key = ["net", "ipv4", "conf", "br0", "route_localnet"];
        if sys.sysctl_get(&NsRef::Host, &key)? != "1" {
            sys.sysctl_set(&NsRef::Host, &key, "1")?;
        }
        Ok(())
    })();
    if result.is_err() {
        for step in undo.iter().rev() {
            step(sys);
        }
    }
    result
}

#[test]
fn a_fresh_machine_has_host_lo_up_and_new_namespaces_have_lo_down() {
    let sys = FakeSys::new();
    let lo = sys.link(&NsRef::Host, "lo").unwrap().unwrap();
    assert!(lo.up);
    assert_eq!(
        (lo.index, lo.kind.clone(), lo.mtu),
        (1, LinkKind::Device, 65536)
    );
    let ctr = container(&sys);
    assert_eq!(ctr, NsRef::path("/run/netns/c1"));
    assert!(sys.is_netns(Path::new("/run/netns/c1")).unwrap());
    assert!(!sys.is_netns(Path::new("/run/netns/nope")).unwrap());
    let links = sys.links(&ctr).unwrap();
    assert_eq!(links.len(), 1);
    assert!(!links[0].up && links[0].name == "lo");

    let again = sys.create_named(Path::new("/run/netns"), "c1").unwrap_err();
    assert!(again.is_exists(), "{again}");
    let missing = sys.links(&NsRef::path("/run/netns/nope")).unwrap_err();
    assert!(missing.is_not_found());
    assert_eq!(
        missing.to_string(),
        "cannot open network namespace /run/netns/nope"
    );
}

#[test]
fn a_veth_pair_spans_namespaces_and_dies_as_a_pair() {
    let sys = FakeSys::new();
    let ctr = container(&sys);
    sys.add_bridge(&NsRef::Host, &bridge()).unwrap();
    sys.add_veth(&NsRef::Host, &veth(&ctr)).unwrap();

    let host_end = sys.link(&NsRef::Host, "veth0").unwrap().unwrap();
    let ctr_end = sys.link(&ctr, "eth0").unwrap().unwrap();
    assert_eq!(host_end.kind, LinkKind::Veth);
    assert_eq!((host_end.mtu, ctr_end.mtu), (1400, 1400));
    assert_eq!(host_end.alias.as_deref(), Some("netctl"));
    assert_eq!(ctr_end.alias, None);
    assert_eq!(ctr_end.mac, Some("02:42:ac:11:00:02".parse().unwrap()));
    assert!(
        host_end
            .mac
            .is_some_and(|m| m.is_locally_administered() && m.is_unicast())
    );
    assert_eq!(
        host_end.peer,
        Some(VethPeer {
            index: ctr_end.index,
            other_namespace: true
        })
    );
    assert_eq!(
        ctr_end.peer,
        Some(VethPeer {
            index: host_end.index,
            other_namespace: true
        })
    );
    assert!(
        sys.link(&NsRef::Host, "eth0").unwrap().is_none(),
        "the peer is born in ctr"
    );

    let clash = sys.add_veth(&NsRef::Host, &veth(&ctr)).unwrap_err();
    assert!(clash.is_exists());

    sys.del_link(&ctr, "eth0").unwrap();
    assert!(
        sys.link(&NsRef::Host, "veth0").unwrap().is_none(),
        "deleting one end deletes both"
    );

    sys.add_veth(&NsRef::Host, &veth(&ctr)).unwrap();
    sys.delete_named(Path::new("/run/netns/c1")).unwrap();
    assert!(
        sys.link(&NsRef::Host, "veth0").unwrap().is_none(),
        "the namespace took its veth along"
    );
    sys.delete_named(Path::new("/run/netns/c1")).unwrap();
}

#[test]
fn routes_need_a_reachable_gateway_on_an_up_link() {
    let sys = FakeSys::new();
    let ctr = container(&sys);
    sys.add_veth(&NsRef::Host, &veth(&ctr)).unwrap();
    sys.add_addr(&ctr, "eth0", net("10.89.0.2/24")).unwrap();
    sys.add_addr(&ctr, "eth0", net("fd00::2/64")).unwrap();
    let default = Route::default_via(ip("10.89.0.1")).dev("eth0").metric(100);

    let down = sys.add_route(&ctr, &default).unwrap_err();
    assert_eq!(down.errno(), Some(Errno::ENETDOWN), "{down}");
    assert!(
        sys.routes(&ctr).unwrap().is_empty(),
        "no connected routes on a down link"
    );

    sys.set_link(&ctr, "eth0", &LinkChange::up()).unwrap();
    let far = Route::default_via(ip("192.0.2.1"));
    assert_eq!(
        sys.add_route(&ctr, &far).unwrap_err().errno(),
        Some(Errno::ENETUNREACH)
    );
    sys.add_route(&ctr, &default).unwrap();
    sys.add_route(&ctr, &Route::default_via(ip("fd00::1")))
        .unwrap();
    assert!(sys.add_route(&ctr, &default).unwrap_err().is_exists());

    let shown: Vec<String> = sys
        .routes(&ctr)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        shown,
        [
            "default via 10.89.0.1 dev eth0 metric 100",
            "10.89.0.0/24 dev eth0 proto kernel",
            "default (ipv6) via fd00::1 dev eth0 metric 1024",
            "fd00::/64 dev eth0 metric 256 proto kernel",
        ]
    );

    // Down: IPv6 addresses and all routes through the link go, IPv4 addresses stay.
    sys.set_link(&ctr, "eth0", &LinkChange::down()).unwrap();
    let addrs: Vec<IpNet> = sys.addrs(&ctr).unwrap().iter().map(|a| a.net).collect();
    assert_eq!(addrs, [net("10.89.0.2/24")]);
    assert!(sys.routes(&ctr).unwrap().is_empty());

    sys.set_link(&ctr, "eth0", &LinkChange::up()).unwrap();
    sys.add_route(&ctr, &default).unwrap();
    sys.del_route(&ctr, &Route::default_via(ip("10.89.0.1")))
        .unwrap();
    let gone = sys.del_route(&ctr, &default).unwrap_err();
    assert!(gone.is_not_found());
    assert_eq!(gone.errno(), Some(Errno::ESRCH));
}

#[test]
fn addresses_are_listed_by_family_and_deleted_exactly() {
    let sys = FakeSys::new();
    sys.add_bridge(&NsRef::Host, &bridge()).unwrap();
    sys.add_addr(&NsRef::Host, "br0", net("fd10::1/64"))
        .unwrap();
    sys.add_addr(&NsRef::Host, "br0", net("10.89.0.1/24"))
        .unwrap();
    assert!(
        sys.add_addr(&NsRef::Host, "br0", net("fd10::1/80"))
            .unwrap_err()
            .is_exists()
    );
    let addrs = sys.addrs(&NsRef::Host).unwrap();
    assert_eq!(
        addrs
            .iter()
            .map(|a| (a.link_name.as_str(), a.net))
            .collect::<Vec<_>>(),
        [("br0", net("10.89.0.1/24")), ("br0", net("fd10::1/64"))]
    );
    let missing = sys
        .del_addr(&NsRef::Host, "br0", net("10.89.0.1/16"))
        .unwrap_err();
    assert_eq!(missing.errno(), Some(Errno::EADDRNOTAVAIL));
    assert!(missing.is_not_found());
    let no_link = sys
        .add_addr(&NsRef::Host, "nope", net("10.0.0.1/8"))
        .unwrap_err();
    assert_eq!(no_link.errno(), Some(Errno::ENODEV));
    assert_eq!(
        no_link.to_string(),
        "netlink: cannot add address 10.0.0.1/8 to nope in the host namespace"
    );
    sys.del_addr(&NsRef::Host, "br0", net("10.89.0.1/24"))
        .unwrap();
}

#[test]
fn set_link_refuses_what_the_kernel_refuses_and_changes_nothing_then() {
    let sys = FakeSys::new();
    let ctr = container(&sys);
    sys.add_bridge(&NsRef::Host, &bridge()).unwrap();
    sys.add_veth(&NsRef::Host, &veth(&ctr)).unwrap();
    sys.sysctl_set(
        &NsRef::Host,
        &["net", "ipv4", "conf", "veth0", "rp_filter"],
        "2",
    )
    .unwrap();

    let enslave_to_veth = LinkChange {
        master: Some(Some("lo".into())),
        ..LinkChange::default()
    };
    let err = sys
        .set_link(&NsRef::Host, "veth0", &enslave_to_veth)
        .unwrap_err();
    assert_eq!(err.errno(), Some(Errno::EOPNOTSUPP));
    let bad_mtu = LinkChange {
        mtu: Some(20),
        up: Some(true),
        ..LinkChange::default()
    };
    assert_eq!(
        sys.set_link(&NsRef::Host, "veth0", &bad_mtu)
            .unwrap_err()
            .errno(),
        Some(Errno::EINVAL)
    );
    assert!(
        !sys.link(&NsRef::Host, "veth0").unwrap().unwrap().up,
        "refused change applied nothing"
    );

    let port = LinkChange {
        up: Some(true),
        master: Some(Some("br0".into())),
        ..LinkChange::default()
    };
    sys.set_link(&NsRef::Host, "veth0", &port).unwrap();
    let br0 = sys.link(&NsRef::Host, "br0").unwrap().unwrap();
    assert_eq!(
        sys.link(&NsRef::Host, "veth0").unwrap().unwrap().master,
        Some(br0.index)
    );

    let rename = LinkChange {
        new_name: Some("vethA".into()),
        ..LinkChange::default()
    };
    let busy = sys.set_link(&NsRef::Host, "veth0", &rename).unwrap_err();
    assert_eq!(busy.errno(), Some(Errno::EBUSY));
    sys.set_link(&NsRef::Host, "veth0", &LinkChange::down())
        .unwrap();
    sys.set_link(&NsRef::Host, "veth0", &rename).unwrap();
    assert_eq!(
        sys.sysctl_get(&NsRef::Host, &["net", "ipv4", "conf", "vethA", "rp_filter"])
            .unwrap(),
        "2",
        "per-interface sysctls follow a rename"
    );

    // Deleting the bridge releases its ports.
    sys.del_link(&NsRef::Host, "br0").unwrap();
    assert_eq!(
        sys.link(&NsRef::Host, "vethA").unwrap().unwrap().master,
        None
    );
    let gone = sys.del_link(&NsRef::Host, "br0").unwrap_err();
    assert!(matches!(
        gone,
        SysError::Netlink {
            op: NetlinkOp::DelLink,
            ..
        }
    ));
    assert!(gone.is_not_found());
}

#[test]
fn sysctls_exist_per_interface_and_fall_back_to_default() {
    let sys = FakeSys::new();
    let ctr = container(&sys);
    let forward = ["net", "ipv4", "ip_forward"];
    assert_eq!(sys.sysctl_get(&ctr, &forward).unwrap(), "0");
    sys.sysctl_set(&ctr, &forward, "1").unwrap();
    assert_eq!(sys.sysctl_get(&ctr, &forward).unwrap(), "1");
    assert_eq!(
        sys.sysctl_get(&NsRef::Host, &forward).unwrap(),
        "0",
        "per namespace"
    );

    let vlan_if = ["net", "ipv4", "conf", "eth0.10", "rp_filter"];
    let err = sys.sysctl_get(&ctr, &vlan_if).unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(
        err.to_string(),
        "cannot read sysctl net.ipv4.conf.eth0/10.rp_filter in namespace /run/netns/c1"
    );
    sys.sysctl_set(&ctr, &["net", "ipv6", "conf", "default", "accept_dad"], "1")
        .unwrap();
    sys.add_veth(
        &ctr,
        &VethSpec {
            peer_ns: ctr.clone(),
            ..veth(&ctr)
        },
    )
    .unwrap();
    assert_eq!(
        sys.sysctl_get(&ctr, &["net", "ipv6", "conf", "eth0", "accept_dad"])
            .unwrap(),
        "1"
    );
    assert!(sys.sysctl_get(&ctr, &["net", "..", "x"]).is_err());
}

#[test]
fn calls_are_recorded_in_order_and_reads_are_not_mutations() {
    let sys = FakeSys::new();
    let ctr = container(&sys);
    sys.clear_calls();
    attach(&sys, &ctr).unwrap();
    assert_eq!(
        sys.calls(),
        [
            "link host br0",
            "add_bridge host br0 mac=02:00:00:00:00:01 alias=\"netctl\"",
            "addrs host",
            "add_addr host br0 10.89.0.1/24",
            "link host br0",
            "set_link host br0 up=true",
            "link host veth0",
            "add_veth host veth0 peer=eth0@/run/netns/c1 mtu=1400 alias=\"netctl\" \
             peer_mac=02:42:ac:11:00:02",
            "link host veth0",
            "set_link host veth0 up=true master=br0",
            "link /run/netns/c1 eth0",
            "set_link /run/netns/c1 eth0 up=true",
            "addrs /run/netns/c1",
            "add_addr /run/netns/c1 eth0 10.89.0.2/24",
            "routes /run/netns/c1",
            "add_route /run/netns/c1 default via 10.89.0.1 dev eth0 metric 100",
            "sysctl_get host net.ipv4.conf.br0.route_localnet",
            "sysctl_set host net.ipv4.conf.br0.route_localnet=1",
        ]
    );
    assert_eq!(sys.mutating_calls().len(), 9);
}

#[test]
fn a_second_apply_makes_zero_mutating_calls() {
    let sys = FakeSys::new();
    let ctr = container(&sys);
    attach(&sys, &ctr).unwrap();
    let converged = sys.state();
    sys.clear_calls();
    attach(&sys, &ctr).unwrap();
    assert_eq!(sys.mutating_calls(), Vec::<String>::new());
    assert!(!sys.calls().is_empty(), "it did look");
    assert_eq!(sys.state(), converged);
}

#[test]
fn a_failure_at_every_step_rolls_back() {
    let clean = {
        let sys = FakeSys::new();
        container(&sys);
        sys.state()
    };
    let steps = {
        let sys = FakeSys::new();
        let ctr = container(&sys);
        sys.clear_calls();
        attach(&sys, &ctr).unwrap();
        sys.mutating_calls().len()
    };
    assert_eq!(steps, 9);
    for n in 1..=steps {
        let sys = FakeSys::new();
        let ctr = container(&sys);
        sys.fail_at(n);
        let err = attach(&sys, &ctr).expect_err("the planned failure surfaces");
        assert_eq!(err.errno(), Some(Errno::EIO), "step {n}: {err}");
        // The rollback deletes the bridge, address and veth attach() created; what is left
        // must be the clean machine again.
        assert_eq!(
            sys.state(),
            clean,
            "step {n} ({}) left something behind",
            sys.mutating_calls()[n - 1]
        );
    }
}

#[test]
fn a_planned_failure_is_the_error_the_real_call_gives_and_changes_nothing() {
    let sys = FakeSys::new();
    sys.fail_at_with(2, Errno::EPERM);
    sys.add_bridge(&NsRef::Host, &bridge()).unwrap();
    let before = sys.state();
    let err = sys
        .add_addr(&NsRef::Host, "br0", net("10.0.0.1/24"))
        .unwrap_err();
    assert!(matches!(
        &err,
        SysError::Netlink { op: NetlinkOp::AddAddr, link: Some(l), .. } if l == "br0"
    ));
    assert_eq!(err.errno(), Some(Errno::EPERM));
    assert_eq!(sys.state(), before);
    // Only that one call fails.
    sys.add_addr(&NsRef::Host, "br0", net("10.0.0.1/24"))
        .unwrap();

    sys.fail_at(1);
    let err = sys.nft_apply(r#"{"nftables":[]}"#).unwrap_err();
    assert!(matches!(err, SysError::Nft { .. }), "{err:?}");
    sys.fail_at(1);
    let err = sys
        .sysctl_set(&NsRef::Host, &["net", "ipv4", "ip_forward"], "1")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot write sysctl net.ipv4.ip_forward=1 in the host namespace"
    );
}

#[test]
fn nft_tables_are_applied_atomically_and_listed() {
    let sys = FakeSys::new();
    assert_eq!(sys.nft_list_table(NftFamily::Inet, "netctl").unwrap(), None);
    let doc = r#"{"nftables": [
        {"add": {"table": {"family": "inet", "name": "netctl"}}},
        {"add": {"chain": {"family": "inet", "table": "netctl", "name": "FORWARD",
                           "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}}
    ]}"#;
    sys.nft_apply(doc).unwrap();
    let listed = sys
        .nft_list_table(NftFamily::Inet, "netctl")
        .unwrap()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["nftables"][2]["chain"]["name"], "FORWARD");
    let bad = r#"{"nftables": [{"delete": {"table": {"family": "ip", "name": "absent"}}}]}"#;
    let err = sys.nft_apply(bad).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(sys.nft_applied(), [doc]);
    assert!(
        sys.calls()[1].starts_with(r#"nft_apply {"nftables":[{"add""#),
        "{}",
        sys.calls()[1]
    );
}

#[test]
fn processes_live_until_a_terminating_signal() {
    let sys = FakeSys::new();
    let spec = SpawnSpec {
        mode: SpawnMode::Daemon {
            pid_file: "/run/netctl/c1/pasta.pid".into(),
            timeout: std::time::Duration::from_secs(5),
        },
        ..SpawnSpec::new(["pasta", "--config-net", "/run/netns/c1"])
    };
    let first = sys.spawn(&spec).unwrap();
    let second = sys.spawn(&SpawnSpec::new(["slirp4netns", "x"])).unwrap();
    assert_ne!(first.pid, second.pid);
    assert_eq!(sys.process_start_time(first.pid), Some(first.start_time));
    assert!(sys.is_alive(first.pid, first.start_time));
    assert!(
        !sys.is_alive(first.pid, first.start_time + 1),
        "a recycled pid is not ours"
    );

    sys.kill(first.pid, Signal::SIGHUP).unwrap();
    assert!(sys.is_alive(first.pid, first.start_time));
    sys.kill(first.pid, Signal::SIGTERM).unwrap();
    assert!(!sys.is_alive(first.pid, first.start_time));
    let err = sys.kill(first.pid, Signal::SIGTERM).unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.to_string(), "cannot send SIGTERM to process 1000");

    sys.exit_process(second.pid);
    assert_eq!(sys.process_start_time(second.pid), None);
    assert_eq!(
        sys.mutating_calls(),
        [
            "spawn pasta --config-net /run/netns/c1 (daemon, pid file /run/netctl/c1/pasta.pid)",
            "spawn slirp4netns x",
            "kill 1000 SIGHUP",
            "kill 1000 SIGTERM",
            "kill 1000 SIGTERM",
        ]
    );
}

#[test]
fn state_is_sorted_text_without_ifindexes() {
    let sys = FakeSys::new();
    let ctr = container(&sys);
    attach(&sys, &ctr).unwrap();
    sys.spawn(&SpawnSpec::new([
        "aardvark-dns",
        "--config",
        "/run/netctl/dns",
        "run",
    ]))
    .unwrap();
    assert_eq!(
        sys.state(),
        "namespace host
  link br0 bridge mtu=1500 mac=02:00:00:00:00:01 up alias=\"netctl\"
  link lo device mtu=65536 mac=00:00:00:00:00:00 up
  link veth0 veth mtu=1400 mac=02:fa:ce:00:00:01 up master=br0 peer=eth0@/run/netns/c1 alias=\"netctl\"
  addr br0 10.89.0.1/24
  sysctl net.ipv4.conf.br0.route_localnet=1
namespace /run/netns/c1
  link eth0 veth mtu=1400 mac=02:42:ac:11:00:02 up peer=veth0@host
  link lo device mtu=65536 mac=00:00:00:00:00:00 down
  addr eth0 10.89.0.2/24
  route default via 10.89.0.1 dev eth0 metric 100
process 1000 aardvark-dns --config /run/netctl/dns run
"
    );
}

#[test]
fn run_returns_the_scripted_output_and_a_missing_program_is_not_found() {
    let sys = FakeSys::new();
    let help = RunOutput {
        success: true,
        status: "exit status: 0".into(),
        stdout: "--enable-ipv6\n".into(),
        stderr: String::new(),
    };
    sys.set_run_output("slirp4netns", help.clone());
    let timeout = std::time::Duration::from_secs(1);
    let out = sys
        .run(&SpawnSpec::new(["slirp4netns", "--help"]), timeout)
        .unwrap();
    assert_eq!(out, help);
    let err = sys
        .run(&SpawnSpec::new(["pasta", "--help"]), timeout)
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.to_string(), "cannot start `pasta`");

    sys.fail_at(1);
    let err = sys
        .run(&SpawnSpec::new(["slirp4netns", "--help"]), timeout)
        .unwrap_err();
    assert_eq!(err.errno(), Some(Errno::EIO));
    assert_eq!(
        sys.mutating_calls(),
        [
            "run slirp4netns --help",
            "run pasta --help",
            "run slirp4netns --help"
        ]
    );
}

#[test]
fn ready_pipe_spawns_are_recorded_as_such() {
    let sys = FakeSys::new();
    let spec = SpawnSpec {
        mode: SpawnMode::ReadyPipe {
            timeout: std::time::Duration::from_secs(5),
        },
        ..SpawnSpec::new(["slirp4netns", "-r", "0", "/run/netns/c1", "tap0"])
    };
    let child = sys.spawn(&spec).unwrap();
    assert!(sys.is_alive(child.pid, child.start_time));
    assert_eq!(
        sys.mutating_calls(),
        ["spawn slirp4netns -r 0 /run/netns/c1 tap0 (ready pipe)"]
    );
}

#[test]
fn terminate_signals_only_a_live_process_and_reports_how_it_ended() {
    let sys = FakeSys::new();
    let grace = std::time::Duration::from_secs(1);
    let child = sys.spawn(&SpawnSpec::new(["pasta"])).unwrap();
    assert_eq!(
        crate::terminate(&sys, child.pid, child.start_time + 1, grace).unwrap(),
        crate::Termination::AlreadyGone,
        "another start time is another process: left alone"
    );
    assert!(sys.is_alive(child.pid, child.start_time));
    assert_eq!(
        crate::terminate(&sys, child.pid, child.start_time, grace).unwrap(),
        crate::Termination::Terminated
    );
    assert!(!sys.is_alive(child.pid, child.start_time));
    assert_eq!(
        crate::terminate(&sys, child.pid, child.start_time, grace).unwrap(),
        crate::Termination::AlreadyGone
    );
    assert_eq!(
        sys.mutating_calls(),
        ["spawn pasta", "kill 1000 SIGTERM"],
        "one SIGTERM, no signal to a process that is gone"
    );

    // A signal that fails for another reason than "gone" is an error.
    let other = sys.spawn(&SpawnSpec::new(["slirp4netns"])).unwrap();
    sys.fail_at_with(1, Errno::EPERM);
    let err = crate::terminate(&sys, other.pid, other.start_time, grace).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::EPERM));
    assert!(sys.is_alive(other.pid, other.start_time));
}

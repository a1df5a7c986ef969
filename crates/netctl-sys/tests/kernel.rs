//! `LinuxSys` against the real kernel. Each test runs in its own private network, mount and pid
//! namespace (`netctl-testkit`); this binary is only built with `--features privileged`.
//! Effects are checked with independent tools (`ip -j`, `sysctl`, `nft`) where that helps.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netctl_sys::{
    BridgeSpec, Ipv4Conf, LinkChange, LinkKind, LinuxSys, MacAddr, Namespaces, Netlink, NetlinkOp,
    Nft, NftFamily, NsRef, Processes, Route, RouteProto, Signal, SpawnMode, SpawnSpec, StdioSpec,
    SysError, Sysctl, Termination, VethSpec, terminate,
};
use netctl_testkit::{Sandbox, sandbox_test};
use nix::errno::Errno;
use serde_json::Value;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

/// `ip -j ARGS` in the sandbox namespace or in named namespace `ns`, parsed.
fn ip_json(sb: &Sandbox, ns: Option<&str>, args: &[&str]) -> Value {
    let mut argv = vec!["ip", "-j"];
    argv.extend_from_slice(args);
    let out = match ns {
        Some(ns) => sb.ns_run(ns, &argv),
        None => sb.run(&argv),
    };
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {out}"))
}

/// A container namespace made by `LinuxSys`, with `lo` up.
fn container(sys: &LinuxSys, sb: &Sandbox, name: &str) -> NsRef {
    let path = sys.create_named(&sb.netns_dir, name).unwrap();
    let ns = NsRef::Path(path);
    sys.set_link(&ns, "lo", &LinkChange::up()).unwrap();
    ns
}

/// A veth `host_if` in the sandbox namespace with `eth0` in `ctr`, both up.
fn wire(sys: &LinuxSys, ctr: &NsRef, host_if: &str) {
    sys.add_veth(
        &NsRef::Host,
        &VethSpec {
            name: host_if.into(),
            mtu: None,
            mac: None,
            alias: None,
            peer_name: "eth0".into(),
            peer_ns: ctr.clone(),
            peer_mac: None,
        },
    )
    .unwrap();
    sys.set_link(&NsRef::Host, host_if, &LinkChange::up())
        .unwrap();
    sys.set_link(ctr, "eth0", &LinkChange::up()).unwrap();
}

fn own_netns() -> PathBuf {
    std::fs::read_link("/proc/thread-self/ns/net").unwrap()
}

sandbox_test! {
    fn named_namespaces_are_created_and_deleted(sb) {
        let sys = LinuxSys::new();
        let before = own_netns();
        let path = sys.create_named(&sb.netns_dir, "t1").unwrap();
        assert_eq!(path, sb.netns_dir.join("t1"));
        assert!(sys.is_netns(&path).unwrap());
        assert!(sb.run(&["ip", "netns", "list"]).contains("t1"));
        // A new namespace holds only lo, down; ip sees the same.
        let links = sys.links(&NsRef::Path(path.clone())).unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!((links[0].name.as_str(), links[0].up), ("lo", false));
        let ip_links = ip_json(sb, Some("t1"), &["link", "show"]);
        assert_eq!(ip_links.as_array().unwrap().len(), 1);
        assert_eq!(own_netns(), before, "the calling thread never moved");

        let again = sys.create_named(&sb.netns_dir, "t1").unwrap_err();
        assert!(again.is_exists(), "{again}");

        sys.delete_named(&path).unwrap();
        assert!(!path.exists());
        assert!(!sys.is_netns(&path).unwrap());
        sys.delete_named(&path).unwrap();
        let gone = sys.links(&NsRef::Path(path)).unwrap_err();
        assert!(gone.is_not_found(), "{gone}");

        // A directory that is not a mount point yet becomes one (bind-mounted onto itself).
        let dir = sb.path("elsewhere/netns");
        let other = sys.create_named(&dir, "t2").unwrap();
        assert!(sys.is_netns(&other).unwrap());
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let dir_line = mountinfo
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(dir.to_str().unwrap()))
            .expect("the namespace directory is a mount point");
        assert!(dir_line.contains("shared:"), "{dir_line}");
        sys.delete_named(&other).unwrap();

        assert!(sys.is_netns(Path::new("/proc/self/ns/net")).unwrap());
        assert!(!sys.is_netns(Path::new("/proc/self/ns/mnt")).unwrap(), "nsfs, but not net");
        assert!(!sys.is_netns(&sb.write_file("plain", "x")).unwrap());
        assert!(!sys.is_netns(Path::new("/nonexistent")).unwrap());
    }
}

sandbox_test! {
    fn bridge_and_veth_with_the_peer_born_in_the_container(sb) {
        let sys = LinuxSys::new();
        let before = own_netns();
        let ctr = container(&sys, sb, "c1");
        sys.add_bridge(&NsRef::Host, &BridgeSpec {
            name: "nc-test".into(),
            mtu: Some(1400),
            mac: Some(mac("02:00:00:aa:00:01")),
            alias: Some("netctl:test".into()),
        }).unwrap();
        sys.add_veth(&NsRef::Host, &VethSpec {
            name: "veth-t".into(),
            mtu: Some(1400),
            mac: Some(mac("02:00:00:aa:00:02")),
            alias: Some("netctl:veth".into()),
            peer_name: "eth0".into(),
            peer_ns: ctr.clone(),
            peer_mac: Some(mac("02:42:0a:59:00:02")),
        }).unwrap();
        assert_eq!(own_netns(), before);

        let bridge = sys.link(&NsRef::Host, "nc-test").unwrap().unwrap();
        assert_eq!(bridge.kind, LinkKind::Bridge);
        assert_eq!(bridge.mtu, 1400);
        assert_eq!(bridge.mac, Some(mac("02:00:00:aa:00:01")));
        assert_eq!(bridge.alias.as_deref(), Some("netctl:test"));
        let host_end = sys.link(&NsRef::Host, "veth-t").unwrap().unwrap();
        let ctr_end = sys.link(&ctr, "eth0").unwrap().unwrap();
        assert_eq!(host_end.kind, LinkKind::Veth);
        assert_eq!((host_end.mtu, ctr_end.mtu), (1400, 1400));
        assert_eq!(ctr_end.mac, Some(mac("02:42:0a:59:00:02")));
        assert_eq!(host_end.alias.as_deref(), Some("netctl:veth"));
        let peer = host_end.peer.expect("a veth knows its peer");
        assert_eq!(peer.index, ctr_end.index);
        assert!(peer.other_namespace);
        assert!(sys.link(&NsRef::Host, "eth0").unwrap().is_none(), "the peer never was in the host");

        // Independent view.
        let shown = &ip_json(sb, Some("c1"), &["-d", "link", "show", "eth0"])[0];
        assert_eq!(shown["address"], "02:42:0a:59:00:02");
        assert_eq!(shown["mtu"], 1400);
        assert_eq!(shown["linkinfo"]["info_kind"], "veth");
        let shown = &ip_json(sb, None, &["link", "show", "nc-test"])[0];
        assert_eq!(shown["ifalias"], "netctl:test");

        // Port of the bridge, up, then released and renamed.
        sys.set_link(&NsRef::Host, "veth-t", &LinkChange {
            up: Some(true),
            master: Some(Some("nc-test".into())),
            ..LinkChange::default()
        }).unwrap();
        let host_end = sys.link(&NsRef::Host, "veth-t").unwrap().unwrap();
        assert!(host_end.up);
        assert_eq!(host_end.master, Some(bridge.index));
        assert_eq!(ip_json(sb, None, &["link", "show", "veth-t"])[0]["master"], "nc-test");

        sys.set_link(&NsRef::Host, "veth-t", &LinkChange {
            up: Some(false),
            master: Some(None),
            alias: Some(String::new()),
            mac: Some(mac("02:00:00:aa:00:03")),
            mtu: Some(1300),
            ..LinkChange::default()
        }).unwrap();
        sys.set_link(&NsRef::Host, "veth-t", &LinkChange {
            new_name: Some("veth-u".into()),
            ..LinkChange::default()
        }).unwrap();
        let renamed = sys.link(&NsRef::Host, "veth-u").unwrap().unwrap();
        assert_eq!(renamed.index, host_end.index);
        assert_eq!((renamed.master, renamed.alias.as_deref(), renamed.up), (None, None, false));
        assert_eq!((renamed.mac, renamed.mtu), (Some(mac("02:00:00:aa:00:03")), 1300));

        // Errors carry the operation, the link and the errno.
        let exists = sys.add_bridge(&NsRef::Host, &BridgeSpec {
            name: "nc-test".into(), mtu: None, mac: None, alias: None,
        }).unwrap_err();
        assert!(exists.is_exists());
        assert_eq!(
            exists.to_string(),
            "netlink: cannot add bridge nc-test in the host namespace"
        );
        let no_master = sys.set_link(&NsRef::Host, "veth-u", &LinkChange {
            master: Some(Some("absent0".into())),
            ..LinkChange::default()
        }).unwrap_err();
        assert!(no_master.is_not_found(), "{no_master}");

        // Deleting one end deletes the pair.
        sys.del_link(&ctr, "eth0").unwrap();
        assert!(sys.link(&NsRef::Host, "veth-u").unwrap().is_none());
        let missing = sys.del_link(&NsRef::Host, "veth-u").unwrap_err();
        assert!(matches!(missing, SysError::Netlink { op: NetlinkOp::DelLink, .. }));
        assert!(missing.is_not_found());
        sys.del_link(&NsRef::Host, "nc-test").unwrap();
        assert!(sys.link(&NsRef::Host, "nc-test").unwrap().is_none());
    }
}

sandbox_test! {
    fn addresses_are_added_listed_and_deleted(sb) {
        let sys = LinuxSys::new();
        let ctr = container(&sys, sb, "c1");
        wire(&sys, &ctr, "veth-a");
        sys.add_addr(&ctr, "eth0", net("10.89.0.2/24")).unwrap();
        sys.add_addr(&ctr, "eth0", net("fd10:89::2/64")).unwrap();

        let ours: Vec<(String, IpNet)> = sys
            .addrs(&ctr)
            .unwrap()
            .into_iter()
            .filter(|a| a.link_name == "eth0")
            .map(|a| (a.link_name, a.net))
            .filter(|(_, n)| !matches!(n, IpNet::V6(v6) if v6.addr().is_unicast_link_local()))
            .collect();
        assert_eq!(
            ours,
            [("eth0".to_owned(), net("10.89.0.2/24")), ("eth0".to_owned(), net("fd10:89::2/64"))]
        );
        let lo = sys.addrs(&ctr).unwrap();
        assert!(lo.iter().any(|a| a.link_name == "lo" && a.net == net("127.0.0.1/8")));

        let shown = &ip_json(sb, Some("c1"), &["addr", "show", "eth0"])[0]["addr_info"];
        let v4 = shown.as_array().unwrap().iter().find(|a| a["family"] == "inet").unwrap();
        assert_eq!(v4["broadcast"], "10.89.0.255");
        let v6 = shown.as_array().unwrap().iter().find(|a| a["local"] == "fd10:89::2").unwrap();
        assert_eq!(v6["prefixlen"], 64);
        assert!(v6.get("tentative").is_none(), "NODAD: usable at once: {v6}");

        let twice = sys.add_addr(&ctr, "eth0", net("10.89.0.2/24")).unwrap_err();
        assert!(twice.is_exists());
        // The kernel's extended ack is part of the message.
        assert_eq!(
            twice.to_string(),
            "netlink: cannot add address 10.89.0.2/24 to eth0 in namespace /run/netns/c1 \
             (kernel says: ipv4: Address already assigned)"
        );
        let no_link = sys.add_addr(&ctr, "eth9", net("10.0.0.1/8")).unwrap_err();
        assert!(no_link.is_not_found());

        sys.del_addr(&ctr, "eth0", net("10.89.0.2/24")).unwrap();
        sys.del_addr(&ctr, "eth0", net("fd10:89::2/64")).unwrap();
        let left = sys.addrs(&ctr).unwrap();
        assert!(left.iter().all(|a| a.net != net("10.89.0.2/24") && a.net != net("fd10:89::2/64")));
        let again = sys.del_addr(&ctr, "eth0", net("10.89.0.2/24")).unwrap_err();
        assert!(again.is_not_found(), "{again}");
    }
}

sandbox_test! {
    fn routes_including_defaults_in_the_container(sb) {
        let sys = LinuxSys::new();
        let ctr = container(&sys, sb, "c1");
        wire(&sys, &ctr, "veth-r");
        sys.add_addr(&ctr, "eth0", net("10.89.0.2/24")).unwrap();
        sys.add_addr(&ctr, "eth0", net("fd10:89::2/64")).unwrap();

        let v4_default = Route::default_via("10.89.0.1".parse().unwrap()).dev("eth0").metric(100);
        let v6_default = Route::default_via("fd10:89::1".parse().unwrap()).dev("eth0");
        let device_route = Route::new(net("10.99.0.0/16")).dev("eth0");
        sys.add_route(&ctr, &v4_default).unwrap();
        sys.add_route(&ctr, &v6_default).unwrap();
        sys.add_route(&ctr, &device_route).unwrap();

        let routes = sys.routes(&ctr).unwrap();
        let find = |dst: &str| routes.iter().find(|r| r.dst == net(dst)).cloned();
        let got = find("0.0.0.0/0").expect("v4 default");
        assert_eq!(got, v4_default);
        let got = find("::/0").expect("v6 default");
        assert_eq!((got.gateway, got.metric, got.proto), (v6_default.gateway, 1024, RouteProto::Static));
        assert_eq!(find("10.99.0.0/16"), Some(device_route.clone()));
        let connected = find("10.89.0.0/24").expect("the kernel's connected route");
        assert_eq!((connected.proto, connected.dev.as_deref()), (RouteProto::Kernel, Some("eth0")));

        let shown = ip_json(sb, Some("c1"), &["route", "show", "default"]);
        assert_eq!(shown[0]["gateway"], "10.89.0.1");
        assert_eq!(shown[0]["metric"], 100);
        assert_eq!(shown[0]["protocol"], "static");

        let twice = sys.add_route(&ctr, &v4_default).unwrap_err();
        assert!(twice.is_exists(), "{twice}");
        let unreachable = Route::new(net("10.50.0.0/16")).metric(5);
        let unreachable = Route { gateway: Some("192.0.2.77".parse().unwrap()), ..unreachable };
        let err = sys.add_route(&ctr, &unreachable).unwrap_err();
        assert_eq!(err.errno(), Some(Errno::ENETUNREACH), "{err}");
        assert!(err.to_string().starts_with(
            "netlink: cannot add route 10.50.0.0/16 via 192.0.2.77 metric 5 in namespace /run/netns/c1"
        ), "{err}");

        sys.del_route(&ctr, &v4_default).unwrap();
        sys.del_route(&ctr, &v6_default).unwrap();
        sys.del_route(&ctr, &device_route).unwrap();
        let gone = sys.del_route(&ctr, &v4_default).unwrap_err();
        assert_eq!(gone.errno(), Some(Errno::ESRCH));
        assert!(gone.is_not_found());
        assert!(ip_json(sb, Some("c1"), &["route", "show", "default"]).as_array().unwrap().is_empty());
    }
}

sandbox_test! {
    fn sysctls_are_read_and_written_inside_a_namespace(sb) {
        let sys = LinuxSys::new();
        let ctr = container(&sys, sb, "c1");
        let forward = ["net", "ipv4", "ip_forward"];
        let host_before = sys.sysctl_get(&NsRef::Host, &forward).unwrap();
        assert_eq!(sys.sysctl_get(&ctr, &forward).unwrap(), "0");
        sys.sysctl_set(&ctr, &forward, "1").unwrap();
        assert_eq!(sys.sysctl_get(&ctr, &forward).unwrap(), "1");
        assert_eq!(sb.ns_run("c1", &["sysctl", "-n", "net.ipv4.ip_forward"]).trim(), "1");
        assert_eq!(sys.sysctl_get(&NsRef::Host, &forward).unwrap(), host_before, "host untouched");
        assert_eq!(sb.run(&["sysctl", "-n", "net.ipv4.ip_forward"]).trim(), host_before);

        // An interface name with a dot.
        sys.add_veth(&ctr, &VethSpec {
            name: "v.10".into(), mtu: None, mac: None, alias: None,
            peer_name: "v.11".into(), peer_ns: ctr.clone(), peer_mac: None,
        }).unwrap();
        let key = ["net", "ipv4", "conf", "v.10", "rp_filter"];
        sys.sysctl_set(&ctr, &key, "2").unwrap();
        assert_eq!(sys.sysctl_get(&ctr, &key).unwrap(), "2");
        assert_eq!(sb.ns_run("c1", &["sysctl", "-n", "net.ipv4.conf.v/10.rp_filter"]).trim(), "2");

        let missing = sys.sysctl_get(&ctr, &["net", "ipv4", "conf", "eth9", "rp_filter"]).unwrap_err();
        assert!(missing.is_not_found());
        assert_eq!(
            missing.to_string(),
            "cannot read sysctl net.ipv4.conf.eth9.rp_filter in namespace /run/netns/c1"
        );
    }
}

sandbox_test! {
    fn nft_applies_a_table_atomically_and_lists_it(sb) {
        let sys = LinuxSys::new();
        assert_eq!(sys.nft_list_table(NftFamily::Inet, "netctl_t").unwrap(), None);
        let doc = r#"{"nftables": [
            {"add": {"table": {"family": "inet", "name": "netctl_t"}}},
            {"add": {"chain": {"family": "inet", "table": "netctl_t", "name": "FORWARD",
                               "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}},
            {"add": {"rule": {"family": "inet", "table": "netctl_t", "chain": "FORWARD",
                              "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}},
                                                  "right": ["established", "related"]}},
                                       {"accept": null}]}}}
        ]}"#;
        sys.nft_apply(doc).unwrap();
        let listed: Value = serde_json::from_str(
            &sys.nft_list_table(NftFamily::Inet, "netctl_t").unwrap().expect("table exists"),
        ).unwrap();
        let items = listed["nftables"].as_array().unwrap();
        assert!(items.iter().any(|i| i["chain"]["name"] == "FORWARD"));
        assert_eq!(items.iter().filter(|i| i.get("rule").is_some()).count(), 1);
        assert!(sb.run(&["nft", "list", "table", "inet", "netctl_t"]).contains("ct state established,related accept"));

        // A transaction whose last command fails leaves nothing of its first.
        let bad = r#"{"nftables": [
            {"add": {"chain": {"family": "inet", "table": "netctl_t", "name": "EXTRA"}}},
            {"delete": {"chain": {"family": "inet", "table": "netctl_t", "name": "ABSENT"}}}
        ]}"#;
        let err = sys.nft_apply(bad).unwrap_err();
        assert!(matches!(err, SysError::Nft { .. }), "{err:?}");
        assert!(err.is_not_found(), "{err}");
        assert!(!sb.run(&["nft", "list", "table", "inet", "netctl_t"]).contains("EXTRA"));

        sys.nft_apply(r#"{"nftables": [{"delete": {"table": {"family": "inet", "name": "netctl_t"}}}]}"#).unwrap();
        assert_eq!(sys.nft_list_table(NftFamily::Inet, "netctl_t").unwrap(), None);
    }
}

sandbox_test! {
    fn processes_are_spawned_identified_and_killed(sb) {
        let sys = LinuxSys::new();
        let child = sys.spawn(&SpawnSpec::new(["sleep", "30"])).unwrap();
        assert_eq!(sys.process_start_time(child.pid), Some(child.start_time));
        assert!(sys.is_alive(child.pid, child.start_time));
        assert!(!sys.is_alive(child.pid, child.start_time + 1), "another start time is another process");
        sys.kill(child.pid, Signal::SIGTERM).unwrap();
        assert!(sb.wait_for(Duration::from_secs(5), || !sys.is_alive(child.pid, child.start_time)));

        // A daemonizing program: the launcher exits, the daemon's pid comes from its pid file.
        let pid_file = sb.path("daemon.pid");
        let script = format!("sleep 30 & echo $! > {}", pid_file.display());
        let daemon = sys.spawn(&SpawnSpec {
            mode: SpawnMode::Daemon { pid_file: pid_file.clone(), timeout: Duration::from_secs(5) },
            ..SpawnSpec::new(["sh", "-c", &script])
        }).unwrap();
        assert!(sys.is_alive(daemon.pid, daemon.start_time));
        // The forked child is `sh` until its exec of sleep completes: give it a moment.
        let comm = || std::fs::read_to_string(format!("/proc/{}/comm", daemon.pid)).unwrap_or_default();
        assert!(sb.wait_for(Duration::from_secs(5), || comm().trim() == "sleep"), "{}", comm());
        sys.kill(daemon.pid, Signal::SIGKILL).unwrap();

        // A launcher that fails: its stderr becomes the message.
        let err = sys.spawn(&SpawnSpec {
            mode: SpawnMode::Daemon { pid_file: sb.path("never.pid"), timeout: Duration::from_secs(5) },
            ..SpawnSpec::new(["sh", "-c", "echo 'bad option --frob' >&2; exit 3"])
        }).unwrap_err();
        assert_eq!(err.to_string(), "`sh` failed to start (exit status: 3): bad option --frob");
        let err = sys.spawn(&SpawnSpec {
            mode: SpawnMode::Daemon { pid_file: sb.path("slow.pid"), timeout: Duration::from_millis(200) },
            ..SpawnSpec::new(["sleep", "5"])
        }).unwrap_err();
        assert!(matches!(err, SysError::SpawnTimeout { .. }), "{err:?}");

        let err = sys.spawn(&SpawnSpec::new(["/nonexistent/helper"])).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert_eq!(err.to_string(), "cannot start `/nonexistent/helper`");
        let err = sys.kill(child.pid, Signal::SIGTERM).unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }
}

sandbox_test! {
    fn namespaces_by_proc_path_and_recreated_names_get_the_right_socket(sb) {
        let sys = LinuxSys::new();
        let ctr = container(&sys, sb, "c1");
        wire(&sys, &ctr, "veth-p");
        let sleeper = sb.spawn(Some("c1"), &["sleep", "30"]);
        // The same namespace through /proc/PID/ns/net.
        let pid = sb.wait_for(Duration::from_secs(5), || find_sleeper().is_some());
        assert!(pid, "sleep in c1 did not start");
        let proc_ns = NsRef::path(format!("/proc/{}/ns/net", find_sleeper().unwrap()));
        let names = |ns: &NsRef| -> Vec<String> {
            sys.links(ns).unwrap().into_iter().map(|l| l.name).collect()
        };
        assert_eq!(names(&proc_ns), names(&ctr));
        assert_eq!(names(&ctr), ["lo", "eth0"]);

        // Deleted and re-created under the same name: a fresh namespace, not the cached one.
        drop(sleeper);
        sys.delete_named(ctr.as_path().unwrap()).unwrap();
        let again = container(&sys, sb, "c1");
        assert_eq!(again, ctr);
        assert_eq!(names(&again), ["lo"]);
    }
}

/// The pid of a `sleep 30` started by the sandbox (the only one there).
fn find_sleeper() -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            (cmdline == b"sleep\x0030\x00").then_some(pid)
        })
}

sandbox_test! {
    fn ready_pipe_programs_start_when_they_say_so_and_leave_nothing_when_they_fail(sb) {
        let sys = LinuxSys::new();
        let ready = |script: &str, timeout: Duration, log: &Path| SpawnSpec {
            mode: SpawnMode::ReadyPipe { timeout },
            stdout: StdioSpec::File(log.to_owned()),
            stderr: StdioSpec::File(log.to_owned()),
            ..SpawnSpec::new(["sh", "-c", script])
        };
        // Ready: the byte on stdin (the pipe) returns the running program.
        let log = sb.path("ok.log");
        let started = Instant::now();
        let child = sys
            .spawn(&ready("echo starting; sleep 0.2; printf 1 >&0; exec sleep 30", Duration::from_secs(5), &log))
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200), "returned before the byte");
        assert!(sys.is_alive(child.pid, child.start_time));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "starting\n");
        assert_eq!(terminate(&sys, child.pid, child.start_time, Duration::from_secs(2)).unwrap(), Termination::Terminated);

        // Exits before saying it is ready: its status, and its log stays for the caller.
        let log = sb.path("fail.log");
        let err = sys.spawn(&ready("echo 'bad option' >&2; exit 4", Duration::from_secs(5), &log)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`sh` failed to start (exit status: 4): it stopped before reporting that it was ready"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "bad option\n");

        // Never ready: killed at the timeout, nothing left running.
        let err = sys
            .spawn(&ready("echo $$ > /run/netctl-sandbox/slow.pid; exec sleep 30", Duration::from_millis(300), &sb.path("slow.log")))
            .unwrap_err();
        assert!(matches!(err, SysError::SpawnTimeout { .. }), "{err:?}");
        let pid: u32 = std::fs::read_to_string(sb.path("slow.pid")).unwrap().trim().parse().unwrap();
        assert_eq!(sys.process_start_time(pid), None, "the slow program was reaped");
    }
}

sandbox_test! {
    fn run_captures_output_and_status_and_is_bounded(sb) {
        let sys = LinuxSys::new();
        let out = sys
            .run(&SpawnSpec::new(["sh", "-c", "echo out; echo err >&2; exit 3"]), Duration::from_secs(5))
            .unwrap();
        assert!(!out.success);
        assert_eq!(out.status, "exit status: 3");
        assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("out\n", "err\n"));
        let help = sys.run(&SpawnSpec::new(["slirp4netns", "--help"]), Duration::from_secs(5)).unwrap();
        assert!(help.success && help.stdout.contains("--api-socket"), "{help:?}");

        let started = Instant::now();
        let err = sys.run(&SpawnSpec::new(["sleep", "30"]), Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, SysError::SpawnTimeout { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(sb.wait_for(Duration::from_secs(2), || find_sleeper().is_none()), "the timed-out program was killed");

        let err = sys.run(&SpawnSpec::new(["/nonexistent/probe"]), Duration::from_secs(1)).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        let daemon = SpawnSpec {
            mode: SpawnMode::Daemon { pid_file: sb.path("x.pid"), timeout: Duration::from_secs(1) },
            ..SpawnSpec::new(["true"])
        };
        assert!(matches!(sys.run(&daemon, Duration::from_secs(1)), Err(SysError::InvalidInput { .. })));
    }
}

sandbox_test! {
    fn terminate_escalates_to_sigkill_and_never_signals_a_stranger(sb) {
        let sys = LinuxSys::new();
        // Ignores SIGTERM: killed after the grace period.
        let stubborn = sys.spawn(&SpawnSpec {
            mode: SpawnMode::ReadyPipe { timeout: Duration::from_secs(5) },
            ..SpawnSpec::new(["sh", "-c", "trap '' TERM; printf 1 >&0; while :; do sleep 0.05; done"])
        }).unwrap();
        let started = Instant::now();
        assert_eq!(
            terminate(&sys, stubborn.pid, stubborn.start_time, Duration::from_millis(300)).unwrap(),
            Termination::Killed
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(!sys.is_alive(stubborn.pid, stubborn.start_time));

        // A recorded start time that is not the process's: it is somebody else, left alone.
        let other = sb.spawn(None, &["sleep", "30"]);
        let real_start = sys.process_start_time(other.pid()).unwrap();
        assert_eq!(
            terminate(&sys, other.pid(), real_start + 1, Duration::from_millis(100)).unwrap(),
            Termination::AlreadyGone
        );
        assert!(sys.is_alive(other.pid(), real_start));
    }
}

sandbox_test! {
    fn observation_helpers_answer_like_ip_and_never_move_the_caller(sb) {
        let sys = LinuxSys::new();
        let before = own_netns();
        let ctr = container(&sys, sb, "obs1");
        // One namespace: prepare must still open its socket off the calling thread.
        sys.prepare(std::slice::from_ref(&ctr));
        assert_eq!(own_netns(), before, "prepare never moves the calling thread");

        wire(&sys, &ctr, "vobs1");
        sys.add_addr(&ctr, "eth0", net("10.70.0.2/24")).unwrap();
        sys.add_addr(&NsRef::Host, "vobs1", net("10.70.0.1/24")).unwrap();
        sys.add_addr(&NsRef::Host, "uplink0", net("10.71.0.1/24")).unwrap();

        // The cheap index lookup agrees with ip, and says None for a missing link.
        let ip_index = ip_json(sb, None, &["link", "show", "vobs1"])[0]["ifindex"]
            .as_u64()
            .unwrap();
        let index = sys.link_index(&NsRef::Host, "vobs1").unwrap().unwrap();
        assert_eq!(u64::from(index), ip_index);
        assert_eq!(sys.link_index(&NsRef::Host, "nosuchlink").unwrap(), None);
        assert_eq!(sys.link_index(&NsRef::Host, "name/with/slash").unwrap(), None);
        assert!(sys.link_index(&ctr, "eth0").unwrap().is_some());

        // The filtered address dump holds that link's addresses only (plus its link-local).
        let addrs = sys.link_addrs(&NsRef::Host, index).unwrap();
        assert!(addrs.contains(&net("10.70.0.1/24")), "{addrs:?}");
        assert!(!addrs.contains(&net("10.71.0.1/24")), "{addrs:?}");

        // links and addresses together, as the separate calls give them.
        let (links, addrs) = sys.links_and_addrs(&ctr).unwrap();
        assert_eq!(links, sys.links(&ctr).unwrap());
        assert_eq!(addrs, sys.addrs(&ctr).unwrap());
        assert!(addrs.iter().any(|a| a.link_name == "eth0" && a.net == net("10.70.0.2/24")));

        // IPv4 interface settings over netlink show up in /proc/sys, as `sysctl` reads them.
        sys.set_ipv4_conf(
            &ctr,
            "eth0",
            &[(Ipv4Conf::RpFilter, 2), (Ipv4Conf::ArpNotify, 1)],
        )
        .unwrap();
        assert_eq!(
            sb.ns_run("obs1", &["sysctl", "-n", "net.ipv4.conf.eth0.rp_filter"]).trim(),
            "2"
        );
        assert_eq!(
            sb.ns_run("obs1", &["sysctl", "-n", "net.ipv4.conf.eth0.arp_notify"]).trim(),
            "1"
        );
        let zero = sys
            .set_ipv4_conf(&ctr, "eth0", &[(Ipv4Conf::RpFilter, 0)])
            .unwrap_err();
        assert!(zero.to_string().contains("rp_filter"), "{zero}");
        let missing = sys
            .set_ipv4_conf(&ctr, "nope0", &[(Ipv4Conf::ArpNotify, 1)])
            .unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
        assert_eq!(own_netns(), before, "the calling thread never moved");
    }
}

/// Every address `ip` shows on `dev` in named namespace `ns`, as `addr/prefix`.
fn ip_addrs(sb: &Sandbox, ns: &str, dev: &str) -> BTreeSet<IpNet> {
    ip_json(sb, Some(ns), &["addr", "show", "dev", dev])[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            net(&format!(
                "{}/{}",
                a["local"].as_str().unwrap(),
                a["prefixlen"]
            ))
        })
        .collect()
}

sandbox_test! {
    fn peeking_from_the_host_sees_what_ip_sees(sb) {
        let sys = LinuxSys::new();
        let before = own_netns();
        let ctr = container(&sys, sb, "peek1");
        wire(&sys, &ctr, "vpeek1");
        sys.add_addr(&ctr, "eth0", net("10.72.0.2/24")).unwrap();
        sys.add_addr(&ctr, "eth0", net("fd72::2/64")).unwrap();
        // A link with IPv6 addresses only has no IPv4 label to be found by.
        sys.add_veth(
            &NsRef::Host,
            &VethSpec {
                name: "vpeek1b".into(),
                mtu: None,
                mac: None,
                alias: None,
                peer_name: "eth1".into(),
                peer_ns: ctr.clone(),
                peer_mac: None,
            },
        )
        .unwrap();
        sys.set_link(&ctr, "eth1", &LinkChange::up()).unwrap();
        sys.add_addr(&ctr, "eth1", net("fd73::2/64")).unwrap();
        // No veth: the host has no id for this namespace, so it is asked from inside (and
        // still has none afterwards: looking changes nothing).
        let lone = container(&sys, sb, "peek2");
        let missing = NsRef::Path(sb.netns_dir.join("nosuchns"));
        let not_a_namespace = sb.path("plain-file");
        std::fs::write(&not_a_namespace, "x").unwrap();
        let not_a_namespace = NsRef::Path(not_a_namespace);

        let names = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let answers = sys.peek_links(&[
            (ctr.clone(), names(&["eth0", "eth1", "nope0"])),
            (missing, names(&["eth0"])),
            (lone.clone(), names(&["lo"])),
            (not_a_namespace, names(&[])),
            (lone.clone(), names(&[])),
        ]);
        assert_eq!(answers.len(), 5);
        let found = answers[0].as_ref().unwrap();
        let as_set = |addrs: &Option<Vec<IpNet>>| -> BTreeSet<IpNet> {
            addrs.clone().unwrap().into_iter().collect()
        };
        assert_eq!(as_set(&found[0]), ip_addrs(sb, "peek1", "eth0"));
        assert!(found[0].as_ref().unwrap().contains(&net("10.72.0.2/24")));
        assert!(found[0].as_ref().unwrap().contains(&net("fd72::2/64")));
        assert_eq!(as_set(&found[1]), ip_addrs(sb, "peek1", "eth1"));
        assert!(found[1].as_ref().unwrap().contains(&net("fd73::2/64")));
        assert_eq!(found[2], None, "no such link");
        assert_eq!(answers[1].as_ref().unwrap_err().errno(), Some(Errno::ENOENT));
        assert_eq!(
            as_set(&answers[2].as_ref().unwrap()[0]),
            ip_addrs(sb, "peek2", "lo")
        );
        assert_eq!(answers[3].as_ref().unwrap_err().errno(), Some(Errno::EINVAL));
        assert_eq!(answers[4].as_ref().unwrap(), &Vec::<Option<Vec<IpNet>>>::new());
        let listed = sb.run(&["ip", "netns", "list"]);
        let peek2 = listed.lines().find(|l| l.starts_with("peek2")).unwrap();
        assert!(!peek2.contains("id:"), "peeking assigned an id: {listed}");
        let peek1 = listed.lines().find(|l| l.starts_with("peek1")).unwrap();
        assert!(peek1.contains("id:"), "a veth gives the namespace an id: {listed}");

        // The label follows a renamed link: the old name is gone, the new one has the address.
        sys.set_link(
            &ctr,
            "eth0",
            &LinkChange {
                up: Some(false),
                ..LinkChange::default()
            },
        )
        .unwrap();
        sys.set_link(
            &ctr,
            "eth0",
            &LinkChange {
                new_name: Some("eth5".into()),
                ..LinkChange::default()
            },
        )
        .unwrap();
        let renamed = sys.peek_links(&[(ctr.clone(), names(&["eth0", "eth5"]))]);
        let renamed = renamed[0].as_ref().unwrap();
        assert_eq!(renamed[0], None);
        assert!(renamed[1].as_ref().unwrap().contains(&net("10.72.0.2/24")));
        assert_eq!(own_netns(), before, "peeking never moves the calling thread");
    }
}

sandbox_test! {
    fn rule_count_over_netlink_matches_nft(sb) {
        let sys = LinuxSys::new();
        assert_eq!(sys.nft_rule_count(NftFamily::Inet, "netctl_rc").unwrap(), 0);
        sb.run(&["nft", "add", "table", "inet", "netctl_rc"]);
        sb.run(&[
            "nft", "add", "chain", "inet", "netctl_rc", "c",
            "{ type filter hook forward priority 0; }",
        ]);
        sb.run(&["nft", "add", "chain", "inet", "netctl_rc", "d"]);
        for port in 1..=3 {
            let port = port.to_string();
            sb.run(&["nft", "add", "rule", "inet", "netctl_rc", "c", "tcp", "dport", &port, "accept"]);
        }
        sb.run(&["nft", "add", "rule", "inet", "netctl_rc", "d", "counter"]);
        // Another table's rules are not counted.
        sb.run(&["nft", "add", "table", "ip", "netctl_rc"]);
        sb.run(&["nft", "add", "chain", "ip", "netctl_rc", "c"]);
        sb.run(&["nft", "add", "rule", "ip", "netctl_rc", "c", "counter"]);
        assert_eq!(sys.nft_rule_count(NftFamily::Inet, "netctl_rc").unwrap(), 4);
        assert_eq!(sys.nft_rule_count(NftFamily::Ip, "netctl_rc").unwrap(), 1);
        sb.run(&["nft", "flush", "table", "inet", "netctl_rc"]);
        assert_eq!(sys.nft_rule_count(NftFamily::Inet, "netctl_rc").unwrap(), 0);
        sb.run(&["nft", "delete", "table", "inet", "netctl_rc"]);
        sb.run(&["nft", "delete", "table", "ip", "netctl_rc"]);
    }
}

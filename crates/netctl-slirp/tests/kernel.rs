//! The slirp4netns backend against the real kernel and the real slirp4netns, each test in its
//! own private network, mount and pid namespace (`netctl-testkit`). Traffic goes only to
//! 127.0.0.1 inside the sandbox and to the test's own namespaces.
//! Built only with `--features privileged`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use netctl_slirp::{
    SlirpConfig, SlirpError, Started, TAP_NAME, add_ports, container_addresses, is_running,
    list_forwards, live, remove_ports, start, stop,
};
use netctl_sys::{LinuxSys, NsRef, Processes, Signal, Sysctl, Termination};
use netctl_testkit::{Background, Proto, Sandbox, sandbox_test, uplink};
use netctl_types::{PortHandler, PortMapping, Protocol, SlirpOptions};

fn mapping(host_port: u16, container_port: u16, range: u16, protocol: Protocol) -> PortMapping {
    PortMapping {
        host_ip: "127.0.0.1".to_owned(),
        range,
        ..PortMapping::new(host_port, container_port, protocol)
    }
}

fn config(sb: &Sandbox, ns: &str, options: SlirpOptions, ports: Vec<PortMapping>) -> SlirpConfig {
    sb.add_netns(ns);
    SlirpConfig {
        options,
        ports,
        ..SlirpConfig::new(
            sb.netns_dir.join(ns),
            netctl_slirp::files_dir(&sb.run_dir, ns),
        )
    }
}

/// Live slirp4netns processes in the sandbox (zombies waiting for the sandbox's pid 1 do not
/// count).
fn slirp_processes() -> Vec<u32> {
    netctl_testkit::live_processes(&["slirp4netns"])
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// Options for publishing UDP on 127.0.0.1: with slirp4netns's `--disable-host-loopback`
/// (podman's default) the replies to loopback UDP are dropped, and netctl refuses such ports.
fn loopback_udp_ok() -> SlirpOptions {
    SlirpOptions {
        allow_host_loopback: Some(true),
        ..SlirpOptions::default()
    }
}

/// A translated TCP range and a translated UDP range, all on 127.0.0.1.
fn published() -> Vec<PortMapping> {
    vec![
        mapping(18080, 80, 2, Protocol::Tcp),
        mapping(15353, 53, 2, Protocol::Udp),
    ]
}

/// Listeners inside `ns` for the ports of [`published`].
fn listeners(sb: &Sandbox, ns: &str) -> Vec<Background> {
    vec![
        sb.listen(Some(ns), Proto::Tcp, "0.0.0.0", 80),
        sb.listen(Some(ns), Proto::Tcp, "0.0.0.0", 81),
        sb.listen(Some(ns), Proto::Udp, "0.0.0.0", 53),
        sb.listen(Some(ns), Proto::Udp, "0.0.0.0", 54),
    ]
}

/// Every published port answers on 127.0.0.1; returns the peers the listeners saw.
fn assert_ports_answer(sb: &Sandbox) -> Vec<String> {
    let mut peers = Vec::new();
    for (proto, port) in [
        (Proto::Tcp, 18080),
        (Proto::Tcp, 18081),
        (Proto::Udp, 15353),
        (Proto::Udp, 15354),
    ] {
        let peer = sb.probe(None, proto, "127.0.0.1", port);
        peers.push(peer.unwrap_or_else(|| panic!("{proto:?} {port} through slirp4netns")));
    }
    peers
}

sandbox_test! {
    fn published_tcp_and_udp_ports_and_ranges_reach_the_container(sb) {
        let sys = LinuxSys::new();
        // podman's default port handler (rootlesskit) is forwarded through the API socket too.
        let cfg = config(sb, "c1", loopback_udp_ok(), published());
        assert_eq!(cfg.options.port_handler(), PortHandler::Rootlesskit);
        let _listeners = listeners(sb, "c1");
        let started = start(&sys, &cfg).unwrap();
        assert_eq!(slirp_processes(), [started.pid]);
        assert_eq!(started.forwards.len(), 4);
        let peers = assert_ports_answer(sb);
        // slirp4netns connects from its gateway address, cidr + 2.
        assert!(peers.iter().all(|p| p == "10.0.2.2"), "{peers:?}");

        // The namespace as the options say: tap0 with cidr + 100, MTU 65520, default via +2.
        let addresses = container_addresses(SlirpOptions::DEFAULT_CIDR);
        let live = live::observe(&sys, &NsRef::path(&cfg.netns)).unwrap();
        let tap = live.interface(TAP_NAME).unwrap_or_else(|| panic!("{live:#?}"));
        assert!(tap.addresses.contains(&IpNet::V4(addresses.container)), "{tap:?}");
        assert_eq!(tap.mtu, 65520);
        assert!(tap.up);
        assert_eq!(live.gateway(false), Some(IpAddr::V4(addresses.gateway)));
        let status = live.status_block();
        let block = &status.interfaces[TAP_NAME];
        assert_eq!(Some(block.mac_address), tap.mac);
        let v4 = block.subnets.iter().find(|s| s.ipnet == IpNet::V4(addresses.container)).unwrap();
        assert_eq!(v4.gateway, Some(IpAddr::V4(addresses.gateway)));
        let lo = sb.ns_run("c1", &["ip", "-o", "link", "show", "lo"]);
        assert!(lo.contains("UP"), "lo is up: {lo}");

        // IPv6 is on by default: slirp4netns's router advertisement gives tap0 an fd00::/64
        // address (usable at once: accept_dad was off while tap0 was made), and accept_dad is
        // back to what it was.
        let ns = NsRef::path(&cfg.netns);
        let has_v6 = sb.wait_for(Duration::from_secs(10), || {
            live::observe(&sys, &ns).unwrap().interface(TAP_NAME).unwrap().addresses.iter()
                .any(|a| net("fd00::/64").contains(a))
        });
        assert!(has_v6, "{:#?}", live::observe(&sys, &ns).unwrap());
        assert_eq!(sys.sysctl_get(&ns, &["net", "ipv6", "conf", "default", "accept_dad"]).unwrap(), "1");
        assert_eq!(sys.sysctl_get(&ns, &["net", "ipv6", "conf", TAP_NAME, "accept_dad"]).unwrap(), "0");

        assert_eq!(stop(&sys, started.pid, started.start_time, &cfg.api_socket).unwrap(), Termination::Terminated);
    }
}

sandbox_test! {
    fn options_shape_the_namespace(sb) {
        let sys = LinuxSys::new();
        let options = SlirpOptions {
            cidr: Some("10.9.8.0/24".parse().unwrap()),
            mtu: Some(1500),
            enable_ipv6: Some(false),
            port_handler: Some(PortHandler::Slirp4netns),
            ..SlirpOptions::default()
        };
        // Host loopback blocked (the default): TCP on 127.0.0.1 works, UDP on every address
        // answers clients that are not on the host's loopback.
        let every_address = PortMapping { host_ip: String::new(), ..mapping(15360, 60, 1, Protocol::Udp) };
        let cfg = config(sb, "c2", options, vec![mapping(18090, 90, 1, Protocol::Tcp), every_address]);
        let _tcp = sb.listen(Some("c2"), Proto::Tcp, "0.0.0.0", 90);
        let _udp = sb.listen(Some("c2"), Proto::Udp, "0.0.0.0", 60);
        let started = start(&sys, &cfg).unwrap();
        assert_eq!(sb.probe(None, Proto::Tcp, "127.0.0.1", 18090).as_deref(), Some("10.9.8.2"));
        assert!(sb.probe(Some(uplink::OUTSIDE_NS), Proto::Udp, uplink::HOST_V4, 15360).is_some());

        let addresses = container_addresses("10.9.8.0/24".parse().unwrap());
        assert_eq!(addresses.container.to_string(), "10.9.8.100/24");
        let live = live::observe(&sys, &NsRef::path(&cfg.netns)).unwrap();
        let tap = live.interface(TAP_NAME).unwrap();
        assert_eq!(tap.addresses, [IpNet::V4(addresses.container)], "no IPv6: {tap:?}");
        assert_eq!(tap.mtu, 1500);
        assert_eq!(live.gateway(false), Some(IpAddr::V4(addresses.gateway)));
        assert_eq!(live.gateway(true), None);
        stop(&sys, started.pid, started.start_time, &cfg.api_socket).unwrap();
    }
}

sandbox_test! {
    fn ports_are_added_and_removed_while_it_runs(sb) {
        let sys = LinuxSys::new();
        let cfg = config(sb, "c3", loopback_udp_ok(), vec![]);
        let _listeners = listeners(sb, "c3");
        let started = start(&sys, &cfg).unwrap();
        assert!(started.forwards.is_empty());
        let socket = started.api_socket.clone().unwrap();
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 18080).is_none());

        let added = add_ports(&socket, &cfg.options, &published()).unwrap();
        assert_eq!(added.len(), 4);
        assert_eq!(add_ports(&socket, &cfg.options, &published()).unwrap(), added, "adding again changes nothing");
        assert_ports_answer(sb);

        assert_eq!(remove_ports(&socket, &published()[..1]).unwrap(), 2);
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 18080).is_none(), "removed");
        assert!(sb.probe(None, Proto::Udp, "127.0.0.1", 15353).is_some(), "kept");
        assert_eq!(list_forwards(&socket).unwrap().len(), 2);
        stop(&sys, started.pid, started.start_time, &cfg.api_socket).unwrap();
    }
}

sandbox_test! {
    fn a_killed_helper_is_detected_and_a_restart_brings_the_ports_back(sb) {
        let sys = LinuxSys::new();
        let cfg = config(sb, "c4", loopback_udp_ok(), published());
        let _listeners = listeners(sb, "c4");
        let first = start(&sys, &cfg).unwrap();
        assert_ports_answer(sb);

        sys.kill(first.pid, Signal::SIGKILL).unwrap();
        assert!(sb.wait_for(Duration::from_secs(5), || !is_running(&sys, first.pid, first.start_time)));
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 18080).is_none(), "ports died with it");
        // Its tap0 went with it.
        let ns = NsRef::path(&cfg.netns);
        assert!(sb.wait_for(Duration::from_secs(5), || live::observe(&sys, &ns).unwrap().interface(TAP_NAME).is_none()));

        // The restart is the same start (the stale API socket is replaced).
        let second: Started = start(&sys, &cfg).unwrap();
        assert_ne!((second.pid, second.start_time), (first.pid, first.start_time));
        assert_eq!(second.argv, first.argv);
        assert_eq!(second.forwards.len(), first.forwards.len());
        assert_ports_answer(sb);

        // Stopping leaves no helper, no socket, no tap0.
        assert_eq!(stop(&sys, second.pid, second.start_time, &cfg.api_socket).unwrap(), Termination::Terminated);
        assert_eq!(stop(&sys, second.pid, second.start_time, &cfg.api_socket).unwrap(), Termination::AlreadyGone);
        assert!(slirp_processes().is_empty(), "{:?}", slirp_processes());
        assert!(!cfg.api_socket.exists());
        assert!(sb.wait_for(Duration::from_secs(5), || live::observe(&sys, &ns).unwrap().interface(TAP_NAME).is_none()));
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 18080).is_none());
    }
}

/// A stand-in for slirp4netns that knows its `--help` but never becomes ready.
fn never_ready(sb: &Sandbox) -> PathBuf {
    let help = std::process::Command::new("slirp4netns")
        .arg("--help")
        .output()
        .unwrap()
        .stdout;
    let help_file = sb.write_file("help.txt", &String::from_utf8(help).unwrap());
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = --help ]; then cat {}; exit 0; fi\necho 'starting, slowly'\nexec sleep 60\n",
        help_file.display()
    );
    let path = sb.write_file("slow-slirp4netns", &script);
    sb.run(&["chmod", "+x", path.to_str().unwrap()]);
    path
}

sandbox_test! {
    fn failures_carry_the_log_and_leave_no_process(sb) {
        let sys = LinuxSys::new();
        // Refused before anything runs.
        let bad = SlirpOptions { mtu: Some(70000), ..SlirpOptions::default() };
        let err = start(&sys, &config(sb, "c5", bad, vec![])).unwrap_err();
        assert_eq!(err.to_string(), "invalid slirp4netns option mtu = 70000: must be 68-65521");
        let sctp = vec![mapping(9000, 9000, 1, Protocol::Sctp)];
        let err = start(&sys, &config(sb, "c6", SlirpOptions::default(), sctp)).unwrap_err();
        assert!(matches!(err, SlirpError::Port { .. }), "{err}");
        let loopback_udp = vec![mapping(15353, 53, 1, Protocol::Udp)];
        let err = start(&sys, &config(sb, "c6b", SlirpOptions::default(), loopback_udp)).unwrap_err();
        assert!(err.to_string().contains("set allow_host_loopback = true"), "{err}");

        // slirp4netns itself fails (tap0 is taken): its log is in the error.
        let cfg = config(sb, "c7", loopback_udp_ok(), published());
        sb.ns_run("c7", &["ip", "link", "add", TAP_NAME, "type", "veth", "peer", "name", "tap0-peer"]);
        let err = start(&sys, &cfg).unwrap_err();
        let SlirpError::Start { log, reason, .. } = &err else { panic!("{err:?}") };
        assert!(reason.starts_with("exit status: 1"), "{reason}");
        assert!(log.contains("ioctl(TUNSETIFF)"), "{log}");
        assert!(err.to_string().contains("its log: "), "{err}");
        let ns = NsRef::path(&cfg.netns);
        assert_eq!(sys.sysctl_get(&ns, &["net", "ipv6", "conf", "default", "accept_dad"]).unwrap(), "1");

        // Never ready: killed at the timeout, with what it wrote.
        let cfg = SlirpConfig {
            program: never_ready(sb).display().to_string(),
            ready_timeout: Duration::from_millis(500),
            ..config(sb, "c8", SlirpOptions::default(), vec![])
        };
        let err = start(&sys, &cfg).unwrap_err();
        let SlirpError::Start { log, reason, .. } = &err else { panic!("{err:?}") };
        assert_eq!(reason, "not ready within 500ms, killed");
        assert_eq!(log, "starting, slowly");

        assert!(slirp_processes().is_empty(), "{:?}", slirp_processes());
        let sleepers = std::fs::read_dir("/proc").unwrap().filter_map(Result::ok).filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x0060\x00")
        }).count();
        assert_eq!(sleepers, 0, "the stand-in was killed");
    }
}

//! Tests of the whole start/stop path against `FakeSys`, and the scripted API server the
//! port tests share.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use netctl_sys::{FakeSys, Namespaces, Netlink, RunOutput, Sysctl, VethSpec};
use netctl_types::Protocol;
use serde_json::{Value, json};

use super::*;

/// A scripted slirp4netns API: keeps forwards like slirp4netns does, refuses a host port
/// twice (as the kernel would), records every request.
pub(crate) struct FakeApi {
    pub socket: PathBuf,
    requests: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl FakeApi {
    /// Serves at a fresh temporary path; refuses to add `refuse_port`.
    pub fn start(refuse_port: Option<u16>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        std::thread::spawn(move || {
            let mut forwards: Vec<Value> = Vec::new();
            let mut next_id = 1;
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut text = String::new();
                stream.read_to_string(&mut text).unwrap();
                log.lock().unwrap().push(text.trim().to_owned());
                let req: Value = serde_json::from_str(&text).unwrap();
                let args = &req["arguments"];
                let reply = match req["execute"].as_str().unwrap() {
                    "add_hostfwd" => {
                        let port = args["host_port"].as_u64().unwrap();
                        let taken = forwards.iter().any(|f| {
                            f["host_port"] == args["host_port"] && f["proto"] == args["proto"]
                        });
                        if taken || refuse_port.is_some_and(|p| u64::from(p) == port) {
                            json!({"error": {"desc": "bad request: add_hostfwd: slirp_add_hostfwd failed"}})
                        } else {
                            forwards.push(json!({
                                "id": next_id, "proto": args["proto"],
                                "host_addr": args["host_addr"], "host_port": args["host_port"],
                                "guest_addr": "10.0.2.100", "guest_port": args["guest_port"],
                            }));
                            next_id += 1;
                            json!({"return": {"id": next_id - 1}})
                        }
                    }
                    // As slirp4netns 1.2.0 does: no `return` wrapper for this one.
                    "list_hostfwd" => json!({"entries": forwards}),
                    "remove_hostfwd" => {
                        let before = forwards.len();
                        forwards.retain(|f| f["id"] != args["id"]);
                        if forwards.len() == before {
                            json!({"error": {"desc": "bad request: remove_hostfwd: bad arguments.id"}})
                        } else {
                            json!({"return": {}})
                        }
                    }
                    _ => json!({"error": {"desc": "bad request: unknown execute"}}),
                };
                stream.write_all(reply.to_string().as_bytes()).unwrap();
            }
        });
        Self {
            socket,
            requests,
            _dir: dir,
        }
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

const HELP: &str = include_str!("testdata/slirp4netns-1.2.0-help.txt");

/// A fake machine with slirp4netns 1.2.0 installed, a container namespace at
/// /run/netns/c1 and an uplink with addresses; and a config whose files go to a temp dir.
fn scene() -> (FakeSys, SlirpConfig, tempfile::TempDir) {
    let sys = FakeSys::new();
    sys.set_run_output(
        PROGRAM,
        RunOutput {
            success: true,
            status: "exit status: 0".into(),
            stdout: HELP.into(),
            stderr: String::new(),
        },
    );
    let ns = sys.create_named(Path::new("/run/netns"), "c1").unwrap();
    let outside = sys
        .create_named(Path::new("/run/netns"), "outside")
        .unwrap();
    sys.add_veth(
        &NsRef::Host,
        &VethSpec {
            name: "uplink0".into(),
            mtu: None,
            mac: None,
            alias: None,
            peer_name: "eth0".into(),
            peer_ns: NsRef::Path(outside),
            peer_mac: None,
        },
    )
    .unwrap();
    for addr in ["192.0.2.10/24", "fe80::10/64", "2001:db8::10/64"] {
        sys.add_addr(&NsRef::Host, "uplink0", addr.parse().unwrap())
            .unwrap();
    }
    // The kernel's default for new interfaces.
    sys.sysctl_set(&NsRef::Path(ns.clone()), &ACCEPT_DAD, "1")
        .unwrap();
    sys.clear_calls();
    let dir = tempfile::tempdir().unwrap();
    let cfg = SlirpConfig::new(ns, dir.path().join("c1"));
    (sys, cfg, dir)
}

fn processes(sys: &FakeSys) -> Vec<String> {
    sys.state()
        .lines()
        .filter(|l| l.starts_with("process"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn start_probes_turns_dad_off_around_the_spawn_and_stop_cleans_up() {
    let (sys, cfg, dir) = scene();
    let started = start(&sys, &cfg).unwrap();
    assert!(is_running(&sys, started.pid, started.start_time));
    assert_eq!(
        started.api_socket.as_deref(),
        Some(cfg.api_socket.as_path())
    );
    assert!(started.forwards.is_empty());
    let calls = sys
        .mutating_calls()
        .join("\n")
        .replace(&dir.path().display().to_string(), "$DIR");
    insta::assert_snapshot!(calls, @"
    run slirp4netns --help
    sysctl_set /run/netns/c1 net.ipv6.conf.default.accept_dad=0
    spawn slirp4netns --disable-host-loopback --mtu=65520 --enable-seccomp --enable-ipv6 -c -r 0 --api-socket $DIR/c1/slirp4netns.sock --netns-type=path /run/netns/c1 tap0 (ready pipe)
    sysctl_set /run/netns/c1 net.ipv6.conf.default.accept_dad=1
    ");
    assert_eq!(std::fs::read_to_string(&cfg.log_file).unwrap(), "");

    // A socket file as slirp4netns leaves it: stop removes it, and stopping twice is fine.
    std::fs::write(&cfg.api_socket, "").unwrap();
    let ended = stop(&sys, started.pid, started.start_time, &cfg.api_socket).unwrap();
    assert_eq!(ended, Termination::Terminated);
    assert!(!cfg.api_socket.exists());
    let again = stop(&sys, started.pid, started.start_time, &cfg.api_socket).unwrap();
    assert_eq!(again, Termination::AlreadyGone);
    assert!(processes(&sys).is_empty());
}

#[test]
fn outbound_interfaces_are_resolved_to_their_addresses() {
    let (sys, mut cfg, _dir) = scene();
    cfg.options.outbound_addr = Some("uplink0".into());
    cfg.options.outbound_addr6 = Some("uplink0".into());
    let started = start(&sys, &cfg).unwrap();
    let flags: Vec<&str> = started
        .argv
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("--outbound"))
        .collect();
    assert_eq!(
        flags,
        [
            "--outbound-addr=192.0.2.10",
            "--outbound-addr6=2001:db8::10"
        ],
        "link-local skipped"
    );

    for (interface, expected) in [
        (
            "nope0",
            "invalid slirp4netns option outbound_addr = nope0: no such interface on the host",
        ),
        (
            "lo",
            "invalid slirp4netns option outbound_addr = lo: the interface has no IPv4 address",
        ),
    ] {
        let (sys, mut cfg, _dir) = scene();
        cfg.options.outbound_addr = Some(interface.into());
        let err = start(&sys, &cfg).unwrap_err();
        assert_eq!(err.to_string(), expected);
        assert!(processes(&sys).is_empty());
    }
}

#[test]
fn bad_options_and_ports_fail_before_anything_runs() {
    let mut bad: Vec<SlirpConfig> = Vec::new();
    let (_, base, _dir) = scene();
    let mut cfg = base.clone();
    cfg.options.mtu = Some(65522);
    bad.push(cfg);
    let mut cfg = base.clone();
    cfg.options.cidr = Some("10.0.2.5/24".parse().unwrap());
    bad.push(cfg);
    let mut cfg = base.clone();
    cfg.ports = vec![PortMapping::new(9000, 9000, Protocol::Sctp)];
    bad.push(cfg);
    let mut cfg = base.clone();
    cfg.netns = "/run/netns/missing".into();
    bad.push(cfg);
    let mut cfg = base;
    cfg.api_socket = PathBuf::from(format!("/run/{}/s.sock", "x".repeat(120)));
    bad.push(cfg);
    let mut messages = Vec::new();
    for cfg in bad {
        let (sys, _, _dir) = scene();
        messages.push(start(&sys, &cfg).unwrap_err().to_string());
        assert!(
            sys.mutating_calls().iter().all(|c| !c.starts_with("spawn")),
            "{:?}",
            sys.mutating_calls()
        );
    }
    insta::assert_snapshot!(messages.join("\n"), @r#"
    invalid slirp4netns option mtu = 65522: must be 68-65521
    invalid slirp4netns option cidr = 10.0.2.5/24: not a network address; did you mean 10.0.2.0/24?
    port mapping 9000:9000/sctp: slirp4netns cannot forward sctp; publish sctp ports with mode = "bridge"
    /run/netns/missing is not a network namespace
    invalid slirp4netns option api_socket = /run/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx/s.sock: a Unix socket path is at most 107 bytes
    "#);
}

#[test]
fn a_failed_spawn_carries_the_log_and_puts_dad_back() {
    let (sys, cfg, _dir) = scene();
    // The spawn is the third mutating call (after the probe and the accept_dad write).
    sys.fail_at(3);
    let err = start(&sys, &cfg).unwrap_err();
    let SlirpError::Start { reason, log, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(reason, "cannot start `slirp4netns`");
    assert_eq!(log, "");
    assert!(
        sys.state().contains("accept_dad=1"),
        "accept_dad put back: {}",
        sys.state()
    );
    assert!(processes(&sys).is_empty());
}

#[test]
fn ports_that_cannot_be_forwarded_stop_the_helper_again() {
    let (sys, mut cfg, _dir) = scene();
    // The fake spawns nothing that would serve the API socket.
    cfg.ports = vec![PortMapping::new(8080, 80, Protocol::Tcp)];
    let err = start(&sys, &cfg).unwrap_err();
    assert!(matches!(err, SlirpError::Api { .. }), "{err}");
    assert!(processes(&sys).is_empty(), "{}", sys.state());
}

#[test]
fn an_unsupported_option_names_the_flag() {
    let (sys, mut cfg, _dir) = scene();
    sys.set_run_output(
        PROGRAM,
        RunOutput {
            success: true,
            status: "exit status: 0".into(),
            stdout: "--netns-type=TYPE\n--disable-host-loopback\n".into(),
            stderr: String::new(),
        },
    );
    cfg.options.enable_ipv6 = Some(false);
    cfg.options.cidr = Some("10.9.0.0/24".parse().unwrap());
    let err = start(&sys, &cfg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the installed slirp4netns (slirp4netns) does not support --cidr, which the cidr option needs"
    );
}

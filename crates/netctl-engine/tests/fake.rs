//! The engine against the recording fake: a converged apply makes no mutating call, and a
//! failure injected at every kernel call of an apply leaves the machine and the store as they
//! were.

use std::path::{Path, PathBuf};

use netctl_engine::{Config, Engine, FirewallMode};
use netctl_plan::Defaults;
use netctl_state::{StateRead as _, Store};
use netctl_sys::{FakeSys, Netlink as _};
use netctl_types::DesiredState;

const FILE: &str = r#"
[networks.demo]
bridge = "nc-demo"
subnets = [{ subnet = "10.89.10.0/24" }, { subnet = "fd10:89:10::/64" }]

[networks.back]
subnets = [{ subnet = "10.89.20.0/24" }]
isolate = true

[containers.web]
networks.demo = { ip = "10.89.10.10", aliases = ["www"] }
networks.back = {}
ports = ["8080:80/tcp", "127.0.0.1:9000-9001:9000-9001/udp"]

[containers.client]
networks.demo = {}
ports = ["80"] # host port chosen at apply, then kept

[containers.quiet]
mode = "none"
"#;

struct World {
    dir: tempfile::TempDir,
    sys: FakeSys,
    store: Store,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts"), "127.0.0.1\tlocalhost\n").unwrap();
        std::fs::write(dir.path().join("resolv.conf"), "nameserver 192.0.2.53\n").unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        World {
            sys: FakeSys::new(),
            store,
            dir,
        }
    }

    fn config(&self) -> Config {
        let root = self.dir.path();
        Config {
            netns_dir: PathBuf::from("/run/netns"),
            etc_netns_dir: root.join("etc-netns"),
            run_dir: root.join("run"),
            firewall: FirewallMode::Nftables,
            defaults: Defaults {
                default_network: "podman".into(),
                default_bridge: "podman0".into(),
                default_subnet: "10.88.0.0/16".parse().unwrap(),
                netns_dir: PathBuf::from("/run/netns"),
                dns_available: false,
            },
            host_hosts: root.join("hosts"),
            host_resolv: root.join("resolv.conf"),
            port_in_use: netctl_engine::PortInUse::Refuse,
            aardvark_binary: None,
            dns_port: 53,
            dns_dir: root.join("run/aardvark-dns"),
            dns_scope: netctl_engine::DnsScope::Declared,
        }
    }

    /// The fake machine's state, less the host-wide forwarding switches: netctl turns those on
    /// and, like netavark, never turns them off (other software may rely on them).
    fn machine(&self) -> String {
        self.sys
            .state()
            .lines()
            .filter(|l| {
                !l.contains("net.ipv4.ip_forward") && !l.contains("net.ipv6.conf.all.forwarding")
            })
            .flat_map(|l| [l, "\n"])
            .collect()
    }

    fn engine(&self) -> Engine<'_> {
        Engine::new(&self.sys, &self.store, self.config())
    }

    /// Everything the store holds, as text (ids and times vary between runs, counts do not).
    fn store_dump(&self) -> String {
        let r = self.store.read().unwrap();
        format!(
            "networks={:?} containers={:?} attachments={} leases={:?}",
            r.networks()
                .unwrap()
                .iter()
                .map(|n| n.name.clone())
                .collect::<Vec<_>>(),
            r.containers()
                .unwrap()
                .iter()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>(),
            r.attachments().unwrap().len(),
            r.all_leases()
                .unwrap()
                .iter()
                .map(|l| l.address)
                .collect::<Vec<_>>(),
        )
    }

    fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    walk(&e.path(), out);
                }
                out.push(e.path());
            }
        }
        let mut out = Vec::new();
        walk(&self.dir.path().join("etc-netns"), &mut out);
        out.sort();
        out
    }
}

fn desired() -> DesiredState {
    toml::from_str(FILE).unwrap()
}

#[test]
fn second_apply_makes_no_mutating_call() {
    let w = World::new();
    let first = w.engine().apply(&desired(), None, false).unwrap();
    assert!(!first.plan.is_empty());
    assert!(!w.sys.mutating_calls().is_empty());
    w.sys.clear_calls();
    let second = w.engine().apply(&desired(), None, false).unwrap();
    assert!(
        second.plan.is_empty(),
        "{}",
        netctl_plan::render_text(&second.plan)
    );
    assert_eq!(w.sys.mutating_calls(), Vec::<String>::new());
    // The first apply wrote files for every container with files.
    assert!(w.files().iter().any(|p| p.ends_with("web/hosts")));
}

#[test]
fn failure_at_every_mutating_call_rolls_back_everything() {
    // Count the mutating calls of a clean apply.
    let probe = World::new();
    probe.engine().apply(&desired(), None, false).unwrap();
    let total = probe.sys.mutating_calls().len();
    assert!(
        total > 20,
        "an apply of this file makes many calls ({total})"
    );

    for n in 1..=total {
        let w = World::new();
        let machine_before = w.machine();
        let store_before = w.store_dump();
        w.sys.fail_at(n);
        let result = w.engine().apply(&desired(), None, false);
        // The Nth call may be one whose failure the engine tolerates (a probe that finds the
        // table missing, say); then the apply succeeded and the machine must be whole.
        let Err(err) = result else {
            let again = w.engine().apply(&desired(), None, false).unwrap();
            assert!(
                again.plan.is_empty(),
                "call {n}: apply succeeded but did not converge"
            );
            continue;
        };
        let text = format!("{err}");
        assert!(text.contains("rolled back"), "call {n}: {text}");
        assert_eq!(
            w.machine(),
            machine_before,
            "call {n}: machine not restored after: {text}"
        );
        assert_eq!(
            w.store_dump(),
            store_before,
            "call {n}: store not restored after: {text}"
        );
        assert!(
            w.files().is_empty(),
            "call {n}: files left behind: {:?}",
            w.files()
        );
        // And the next apply succeeds from there.
        w.engine().apply(&desired(), None, false).unwrap();
    }
}

#[test]
fn destroy_all_leaves_nothing() {
    let w = World::new();
    let machine_before = w.machine();
    w.engine().apply(&desired(), None, false).unwrap();
    w.engine().destroy(None).unwrap();
    assert_eq!(w.machine(), machine_before);
    assert_eq!(w.store_dump(), World::new().store_dump());
    assert!(w.files().iter().all(|p| p.is_dir()), "{:?}", w.files());
}

#[test]
fn connect_touches_only_its_container_and_rolls_back_whole() {
    let probe = World::new();
    probe.engine().apply(&desired(), None, false).unwrap();
    probe.sys.clear_calls();
    let opts = netctl_engine::ConnectOptions::default();
    assert!(probe.engine().connect("back", "client", &opts).unwrap());
    let calls = probe.sys.mutating_calls();
    assert!(
        calls.iter().all(|c| !c.contains("/run/netns/web")),
        "connect of client touched web: {calls:#?}"
    );
    let total = calls.len();
    assert!(
        !probe.engine().connect("back", "client", &opts).unwrap(),
        "re-connect is a no-op"
    );

    for n in 1..=total {
        let w = World::new();
        w.engine().apply(&desired(), None, false).unwrap();
        let machine_before = w.machine();
        let store_before = w.store_dump();
        w.sys.fail_at(n);
        let Err(err) = w.engine().connect("back", "client", &opts) else {
            continue;
        };
        assert!(format!("{err}").contains("rolled back"), "call {n}: {err}");
        assert_eq!(
            w.machine(),
            machine_before,
            "call {n}: machine not restored after: {err}"
        );
        assert_eq!(
            w.store_dump(),
            store_before,
            "call {n}: store not restored after: {err}"
        );
    }
}

/// The progress callback hears of every step, in order, before it runs; a converged apply
/// reports nothing.
#[test]
fn progress_reports_each_step_once() {
    let w = World::new();
    let seen = std::sync::Mutex::new(Vec::new());
    let progress = |done: usize, total: usize, step: &str| {
        seen.lock().unwrap().push((done, total, step.to_owned()));
    };
    let report = w
        .engine()
        .with_progress(&progress)
        .apply(&desired(), None, false)
        .unwrap();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let total = report.plan.steps.len();
    let expected: Vec<_> = report
        .plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (i, total, format!("{} {}", s.action, s.resource)))
        .collect();
    assert_eq!(seen, expected);
    let again = w
        .engine()
        .with_progress(&|_, _, step: &str| panic!("no step expected, got {step}"))
        .apply(&desired(), None, false)
        .unwrap();
    assert!(again.plan.is_empty());
}

/// With aardvark-dns available every declared network serves DNS: the first apply starts one
/// server (through the sys seam, recorded) and writes its files; a converged apply sends no
/// signal and writes nothing; a connect signals the same server (`SIGHUP`) and starts none; a
/// destroy stops it.
#[test]
fn dns_server_lifecycle_through_the_sys_seam() {
    let w = World::new();
    let mut cfg = w.config();
    cfg.aardvark_binary = Some("/usr/lib/podman/aardvark-dns".into());
    cfg.defaults.dns_available = true;
    let dns_dir = cfg.dns_dir.clone();
    for addr in ["10.89.10.1:53", "[fd10:89:10::1]:53", "10.89.20.1:53"] {
        w.sys.add_listening(netctl_sys::Listening {
            protocol: "udp".into(),
            addr: addr.parse().unwrap(),
            inode: 1,
        });
    }
    let engine = || Engine::new(&w.sys, &w.store, cfg.clone());
    engine().apply(&desired(), None, false).unwrap();
    let calls = w.sys.mutating_calls();
    let spawns: Vec<&String> = calls
        .iter()
        .filter(|c| c.starts_with("spawn") && c.contains("aardvark-dns"))
        .collect();
    // The new server's port reaches the firewall: DNS from each DNS network is accepted there.
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("nft_apply") && c.contains("\"dns_accept_v4\",\"table\"")),
        "{calls:?}"
    );
    assert_eq!(spawns.len(), 1, "{spawns:?}");
    assert!(
        spawns[0].contains(&format!("--config {} -p 53 run (daemon", dns_dir.display())),
        "{spawns:?}"
    );
    let demo = std::fs::read_to_string(dns_dir.join("demo")).unwrap();
    assert!(demo.starts_with("10.89.10.1,fd10:89:10::1\n"), "{demo}");
    assert!(
        demo.contains(" 10.89.10.10 ") && demo.contains(" web,www"),
        "{demo}"
    );
    let servers = w.store.read().unwrap().dns_servers().unwrap();
    assert_eq!(servers.len(), 1);
    let pid = servers[0].pid;

    w.sys.clear_calls();
    let again = engine().apply(&desired(), None, false).unwrap();
    assert!(
        again.plan.is_empty(),
        "{}",
        netctl_plan::render_text(&again.plan)
    );
    assert_eq!(w.sys.mutating_calls(), Vec::<String>::new());

    w.sys.clear_calls();
    engine()
        .connect(
            "back",
            "client",
            &netctl_engine::ConnectOptions {
                aliases: vec!["late".into()],
                ..Default::default()
            },
        )
        .unwrap();
    let calls = w.sys.mutating_calls();
    assert!(calls.contains(&format!("kill {pid} SIGHUP")), "{calls:?}");
    assert!(!calls.iter().any(|c| c.starts_with("spawn")), "{calls:?}");
    // The short way: the new name is asked for at the gateway after the reload.
    let all = w.sys.calls();
    assert!(
        all.iter()
            .any(|c| c.starts_with("dns_answers 10.89.20.1:53 client A")),
        "{all:?}"
    );
    assert!(
        std::fs::read_to_string(dns_dir.join("back"))
            .unwrap()
            .contains("client,late")
    );

    w.sys.clear_calls();
    engine().destroy(None).unwrap();
    let calls = w.sys.mutating_calls();
    assert!(calls.contains(&format!("kill {pid} SIGTERM")), "{calls:?}");
    assert!(w.store.read().unwrap().dns_servers().unwrap().is_empty());
    assert!(!dns_dir.join("demo").exists() && !dns_dir.join("back").exists());
}

const MACVLAN: &str = r#"
[networks.lan]
driver = "macvlan"
parent = "lanp"
subnets = [{ subnet = "192.168.77.0/24", gateway = "192.168.77.1" }]
host_address = "192.168.77.254"

[containers.nas]
networks.lan = { ip = "192.168.77.10" }

[containers.media]
networks.lan = {}
"#;

/// A world whose host has the LAN interface `lanp` for macvlan networks to sit on.
fn lan_world() -> World {
    let w = World::new();
    w.sys
        .add_bridge(
            &netctl_sys::NsRef::Host,
            &netctl_sys::BridgeSpec {
                name: "lanp".into(),
                mtu: None,
                mac: None,
                alias: None,
            },
        )
        .unwrap();
    w.sys.clear_calls();
    w
}

#[test]
fn macvlan_apply_uses_no_firewall_and_converges() {
    let w = lan_world();
    let desired: DesiredState = toml::from_str(MACVLAN).unwrap();
    w.engine().apply(&desired, None, false).unwrap();
    let calls = w.sys.mutating_calls();
    assert!(
        calls.iter().any(|c| c.starts_with("add_macvlan")),
        "{calls:#?}"
    );
    assert!(!calls.iter().any(|c| c.contains("veth")), "{calls:#?}");
    assert!(!calls.iter().any(|c| c.contains("nft")), "{calls:#?}");
    assert!(w.sys.nft_applied().is_empty());
    w.sys.clear_calls();
    let second = w.engine().apply(&desired, None, false).unwrap();
    assert!(
        second.plan.is_empty(),
        "{}",
        netctl_plan::render_text(&second.plan)
    );
    assert_eq!(w.sys.mutating_calls(), Vec::<String>::new());
}

#[test]
fn macvlan_failure_at_every_mutating_call_rolls_back_and_destroy_leaves_nothing() {
    let desired: DesiredState = toml::from_str(MACVLAN).unwrap();
    let probe = lan_world();
    probe.engine().apply(&desired, None, false).unwrap();
    let total = probe.sys.mutating_calls().len();
    for n in 1..=total {
        let w = lan_world();
        let machine_before = w.machine();
        let store_before = w.store_dump();
        w.sys.fail_at(n);
        let Err(err) = w.engine().apply(&desired, None, false) else {
            let again = w.engine().apply(&desired, None, false).unwrap();
            assert!(again.plan.is_empty(), "call {n}: did not converge");
            continue;
        };
        let text = format!("{err}");
        assert_eq!(w.machine(), machine_before, "call {n}: {text}");
        assert_eq!(w.store_dump(), store_before, "call {n}: {text}");
        w.engine().apply(&desired, None, false).unwrap();
    }
    let machine_before = lan_world().machine();
    probe.engine().destroy(None).unwrap();
    assert_eq!(probe.machine(), machine_before);
}

#[test]
fn macvlan_host_address_is_never_leased() {
    let w = lan_world();
    let file = MACVLAN.replace(
        "gateway = \"192.168.77.1\" }",
        "gateway = \"192.168.77.1\", lease_range = { start = \"192.168.77.253\", end = \"192.168.77.254\" } }",
    );
    let desired: DesiredState = toml::from_str(&file).unwrap();
    w.engine().apply(&desired, None, false).unwrap();
    let leases: Vec<String> = w
        .store
        .read()
        .unwrap()
        .all_leases()
        .unwrap()
        .iter()
        .map(|l| l.address.to_string())
        .collect();
    assert_eq!(leases, ["192.168.77.10", "192.168.77.253"]);
    let more = file.replace(
        "[containers.media]",
        "[containers.third]\nnetworks.lan = {}\n\n[containers.media]",
    );
    let err = w
        .engine()
        .apply(&toml::from_str(&more).unwrap(), None, false)
        .unwrap_err();
    let chain = netctl_types::error_chain(&err);
    assert!(chain.contains("failed to find free IP in range"), "{chain}");
}

/// A world whose host has `brext0`, a bridge someone else made (no netctl mark, an address
/// of its own, up), and the container namespace `/run/netns/c1` with `lo` up.
fn borrowed_bridge_world() -> World {
    use netctl_sys::Namespaces as _;
    let w = World::new();
    let host = netctl_sys::NsRef::Host;
    w.sys
        .add_bridge(
            &host,
            &netctl_sys::BridgeSpec {
                name: "brext0".into(),
                mtu: Some(1400),
                mac: None,
                alias: None,
            },
        )
        .unwrap();
    w.sys
        .add_addr(&host, "brext0", "10.90.0.1/24".parse().unwrap())
        .unwrap();
    w.sys
        .set_link(&host, "brext0", &netctl_sys::LinkChange::up())
        .unwrap();
    let ns = w.sys.create_named(Path::new("/run/netns"), "c1").unwrap();
    // As a container's `lo` is once the first setup has run.
    w.sys
        .set_link(
            &netctl_sys::NsRef::path(ns),
            "lo",
            &netctl_sys::LinkChange::up(),
        )
        .unwrap();
    w.sys.clear_calls();
    w
}

/// podman's request for container `web` on the network `ext` over `brext0`, unmanaged.
fn unmanaged_request() -> netctl_types::NetworkOptions {
    serde_json::from_value(serde_json::json!({
        "container_id": "6ce776ea58b5aaaabbbbccccddddeeeeffff0000111122223333444455556666",
        "container_name": "web",
        "networks": {"ext": {"interface_name": "eth0", "static_ips": ["10.90.0.2"]}},
        "network_info": {"ext": {"name": "ext", "id": "e1".repeat(32), "driver": "bridge",
            "network_interface": "brext0", "subnets": [{"subnet": "10.90.0.0/24", "gateway": "10.90.0.1"}],
            "ipv6_enabled": false, "internal": false, "dns_enabled": false,
            "options": {"mode": "unmanaged"}}}
    }))
    .unwrap()
}

/// podman's `mode=unmanaged` against the recording fake: the only change that names the
/// borrowed bridge is enslaving the container's veth to it; no sysctl and no firewall call is
/// made; a failure at any mutating call of the setup leaves machine and store as they were;
/// teardown and `destroy` leave the bridge exactly as its owner made it.
#[test]
fn unmanaged_bridge_is_only_borrowed() {
    let ns = Path::new("/run/netns/c1");
    let w = borrowed_bridge_world();
    let machine_before = w.sys.state();
    w.engine().netavark_setup(ns, &unmanaged_request()).unwrap();
    let calls = w.sys.mutating_calls();
    let on_bridge: Vec<&String> = calls.iter().filter(|c| c.contains("brext0")).collect();
    assert_eq!(on_bridge.len(), 1, "{calls:#?}");
    assert!(
        on_bridge[0].starts_with("set_link host nc") && on_bridge[0].ends_with("master=brext0"),
        "{calls:#?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.contains("sysctl") || c.contains("nft")),
        "{calls:#?}"
    );
    w.engine().netavark_teardown(&unmanaged_request()).unwrap();
    assert_eq!(w.sys.state(), machine_before, "teardown leaves the bridge");
    w.engine().netavark_setup(ns, &unmanaged_request()).unwrap();
    w.engine().destroy(None).unwrap();
    assert_eq!(w.sys.state(), machine_before, "destroy leaves the bridge");

    let probe = borrowed_bridge_world();
    probe
        .engine()
        .netavark_setup(ns, &unmanaged_request())
        .unwrap();
    let total = probe.sys.mutating_calls().len();
    for n in 1..=total {
        let w = borrowed_bridge_world();
        let machine_before = w.sys.state();
        let store_before = w.store_dump();
        w.sys.fail_at(n);
        let Err(err) = w.engine().netavark_setup(ns, &unmanaged_request()) else {
            continue;
        };
        let text = netctl_types::error_chain(&err);
        assert_eq!(w.sys.state(), machine_before, "call {n}: {text}");
        assert_eq!(w.store_dump(), store_before, "call {n}: {text}");
    }
}

/// The borrowed-bridge world with podman's container `web` on its unmanaged network `ext`.
fn world_with_podman_on_ext() -> World {
    let w = borrowed_bridge_world();
    w.engine()
        .netavark_setup(Path::new("/run/netns/c1"), &unmanaged_request())
        .unwrap();
    w
}

/// Asserts that `err` refuses container x's ports, forwarded through `ext`, its first interface.
fn assert_ports_refused_through_ext(err: &netctl_engine::EngineError) {
    let chain = netctl_types::error_chain(err);
    assert!(
        chain.contains("its ports cannot be published: its first interface eth0 is on network ext"),
        "{chain}"
    );
}

/// A file's container may join podman's unmanaged network as `external`, but not publish ports
/// through it: there is no firewall to forward them, so the apply is refused before anything
/// changes rather than the ports accepted and ignored.
#[test]
fn ports_through_an_external_unmanaged_network_are_refused() {
    let w = world_with_podman_on_ext();
    let file =
        "project = \"p\"\n\n[networks.ext]\nexternal = true\n\n[containers.x]\nnetworks.ext = {}\n";
    let machine_before = w.sys.state();
    let published = format!("{file}ports = [\"8080:80\"]\n");
    let err = w
        .engine()
        .apply(&toml::from_str(&published).unwrap(), None, false)
        .unwrap_err();
    assert_ports_refused_through_ext(&err);
    assert_eq!(w.sys.state(), machine_before, "nothing changed");
    w.engine()
        .apply(&toml::from_str(file).unwrap(), None, false)
        .unwrap();
}

/// `connect` checks what apply checks: a container whose ports would be forwarded through an
/// unmanaged bridge (no firewall) once it is its first interface is refused, nothing changed.
#[test]
fn connect_refuses_ports_that_would_go_through_an_unmanaged_first_network() {
    let w = world_with_podman_on_ext();
    let file = "project = \"p\"\n\n[networks.n]\nbridge = \"nc-n\"\n\n\
                [containers.x]\nnetworks.n = {}\nports = [\"8080:80\"]\n";
    w.engine()
        .apply(&toml::from_str(file).unwrap(), None, false)
        .unwrap();
    w.engine().disconnect("n", "x").unwrap();
    let machine_before = w.sys.state();
    let store_before = w.store_dump();
    let err = w
        .engine()
        .connect("ext", "x", &netctl_engine::ConnectOptions::default())
        .unwrap_err();
    assert_ports_refused_through_ext(&err);
    assert_eq!(w.sys.state(), machine_before, "nothing changed");
    assert_eq!(w.store_dump(), store_before, "no record changed");
}

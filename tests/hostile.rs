//! Crash safety and hostile input: each test sets up what a killed netctl, a careless user or a
//! local attacker leaves in netctl's way, and checks that netctl neither wedges nor touches
//! anything it did not make. Privileged: each runs in its own sandbox (see `netctl-testkit`).

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink};
use std::path::Path;

use netctl_testkit::{Proto, Sandbox, sandbox_test, uplink};
use netctl_tests::describe;
use netctl_tests::sandboxed::{fails, netctl, ok, plan_code};

fn write(sb: &Sandbox, name: &str, text: &str) -> String {
    sb.write_file(name, text).display().to_string()
}

/// One network, one container.
fn one(net: &str, subnet: &str, ctr: &str, extra: &str) -> String {
    format!(
        "[networks.{net}]\nbridge = \"nc-{net}\"\nsubnets = [{{ subnet = \"{subnet}\" }}]\n\n[containers.{ctr}]\nnetworks.{net} = {{}}\n{extra}"
    )
}

fn mode(path: &str) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

sandbox_test! {
    /// A SIGKILL between creating a namespace's mount point and mounting the namespace leaves
    /// an empty mode-0 file in /run/netns. The next apply must use it, not fail with "File
    /// exists" forever, and destroy must remove it.
    fn a_leftover_namespace_mount_point_does_not_wedge_apply(sb) {
        let file = write(sb, "k.toml", &one("k", "10.89.13.0/24", "k13", ""));
        let placeholder = Path::new("/run/netns/k13");
        std::fs::File::create(placeholder).unwrap();
        std::fs::set_permissions(placeholder, std::fs::Permissions::from_mode(0o000)).unwrap();
        ok(&["apply", "-f", &file]);
        let addr = sb.ns_run("k13", &["ip", "-o", "-4", "addr", "show", "eth0"]);
        assert!(addr.contains("10.89.13."), "{addr}");
        assert_eq!(plan_code(&file).0, 0);
        ok(&["destroy", "--all"]);
        assert!(!placeholder.exists(), "destroy removes the namespace file");
    }
}

sandbox_test! {
    /// A namespace (or any file) netctl did not make, where a managed namespace would go, is a
    /// plan-time conflict: nothing is created, adopted or deleted.
    fn a_foreign_namespace_is_a_conflict_not_adopted(sb) {
        sb.add_netns("mine");
        let file = write(sb, "mine.toml", &one("m", "10.89.14.0/24", "mine", ""));
        let before = sb.dump();
        let plan = fails(&["plan", "-f", &file]);
        assert!(plan.contains("/run/netns/mine is already a network namespace that netctl did not make"), "{plan}");
        let apply = fails(&["apply", "-f", &file]);
        assert!(apply.contains("nothing was changed"), "{apply}");
        assert_eq!(before, sb.dump());
        ok(&["destroy", "--all"]);
        assert_eq!(sb.ns_run("mine", &["ip", "-o", "link"]).lines().count(), 1, "only lo, untouched");
        // A file that is not an empty mount point is in the way too.
        std::fs::write("/run/netns/other", "data").unwrap();
        let file = write(sb, "other.toml", &one("o", "10.89.15.0/24", "other", ""));
        let plan = fails(&["plan", "-f", &file]);
        assert!(plan.contains("/run/netns/other is taken by a file that is not a network namespace"), "{plan}");
        assert_eq!(std::fs::read_to_string("/run/netns/other").unwrap(), "data");
    }
}

sandbox_test! {
    /// A destroy killed after it forgot a container but before the firewall table was rebuilt
    /// leaves that container's port forward in netctl's maps. The next apply must succeed the
    /// first time (the records are the truth), and the port must lead to the new container.
    fn apply_after_a_killed_destroy_succeeds_the_first_time(sb) {
        let text = "[networks.f]\nbridge = \"nc-f\"\nsubnets = [{ subnet = \"10.89.16.0/24\" }]\n\n\
                    [containers.a]\nnetworks.f = {}\nports = [\"8080:80\"]\n\n\
                    [containers.b]\nnetworks.f = {}\nports = [\"8081:80\"]\n";
        let file = write(sb, "f.toml", text);
        ok(&["apply", "-f", &file]);
        // What the killed destroy left: a's records and namespace gone, its elements still in
        // the table (destroy rebuilds the table once at the end).
        {
            let _lock = netctl_state::OperationLock::acquire(Path::new("/var/lib/netctl"), std::time::Duration::from_secs(5)).unwrap();
            let store = netctl_state::Store::open(Path::new("/var/lib/netctl")).unwrap();
            store.write(|tx| { tx.detach("a", "f")?; tx.remove_container("a").map(drop) }).unwrap();
        }
        sb.run(&["ip", "netns", "del", "a"]);
        let out = netctl(&["apply", "-f", &file]);
        assert!(out.status.success(), "the first apply after a killed destroy: {}", describe(&out));
        let _l = sb.listen(Some("a"), Proto::Tcp, "0.0.0.0", 80);
        let addr = sb.ns_run("a", &["ip", "-o", "-4", "addr", "show", "eth0"]);
        let ip = addr.split_whitespace().nth(3).unwrap().split('/').next().unwrap().to_owned();
        assert!(sb.probe(Some(uplink::OUTSIDE_NS), Proto::Tcp, uplink::HOST_V4, 8080).is_some(), "8080 reaches the new a at {ip}");
        let (code, text) = plan_code(&file);
        assert_eq!(code, 0, "{text}");
    }
}

/// A netavark request as podman sends it, with `name` and `extra` spliced in.
fn netavark_request(container: &str, network: &str, ports: &str) -> String {
    format!(
        r#"{{"container_id":"6ce776ea58b5aaaabbbbccccddddeeeeffff0000111122223333444455556666","container_name":{container},
"port_mappings":[{ports}],
"networks":{{{network}:{{"interface_name":"eth0","static_ips":["10.88.0.2"]}}}},
"network_info":{{{network}:{{"name":{network},"id":"2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
"driver":"bridge","network_interface":"podman0","subnets":[{{"subnet":"10.88.0.0/16","gateway":"10.88.0.1"}}],
"ipv6_enabled":false,"internal":false,"dns_enabled":false,"ipam_options":{{"driver":"host-local"}}}}}}}}"#
    )
}

/// Runs netavark setup with `request` for namespace `c1`; returns the error text of the one
/// JSON object netctl must print, failing the test if it succeeded or printed anything else.
fn netavark_refusal(sb: &Sandbox, request: &str) -> String {
    let input = sb.write_file("req.json", request).display().to_string();
    let out = netctl(&[
        "netavark",
        "--config",
        "/run/netctl-sandbox/nv",
        "-f",
        &input,
        "setup",
        "/run/netns/c1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().count(),
        1,
        "exactly one line: {}",
        describe(&out)
    );
    let err: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    err["error"].as_str().expect("an error string").to_owned()
}

sandbox_test! {
    /// podman's front door refuses what the TOML front door refuses, with one JSON error and
    /// before anything changes: no panic on a huge name, no write outside run_dir, no port 0,
    /// no range cut short, no record left.
    fn netavark_requests_are_validated_like_files(sb) {
        sb.add_netns("c1");
        let before = sb.dump();
        let port = |c: u32, h: u32, r: u32| format!(r#"{{"host_ip":"","container_port":{c},"host_port":{h},"range":{r},"protocol":"tcp"}}"#);
        let long = format!("\"{}\"", "x".repeat(70_000));
        let cases: Vec<(String, String, String, &str)> = vec![
            (long.clone(), "\"podman\"".into(), String::new(), "at most 253"),
            (format!("\"{}\"", "y".repeat(300)), "\"podman\"".into(), String::new(), "at most 253"),
            ("\"web\"".into(), "\"podman\"".into(), port(0, 8080, 1), "container_port must be from 1 to 65535"),
            ("\"web\"".into(), "\"podman\"".into(), port(80, 65000, 1000), "run past 65535"),
            ("\"../../../netctl-sandbox/escape\"".into(), "\"podman\"".into(), String::new(), "invalid container name"),
            ("\"a/b\"".into(), "\"podman\"".into(), String::new(), "invalid container name"),
            ("\"web\"".into(), "\"../../x\"".into(), String::new(), "invalid network name"),
        ];
        for (name, network, ports, expect) in cases {
            let err = netavark_refusal(sb, &netavark_request(&name, &network, &ports));
            assert!(err.contains(expect), "{expect:?} not in {}", netctl_types::Shown(&err));
            assert!(err.len() < 2000, "the error stays readable: {} bytes", err.len());
        }
        assert_eq!(before, sb.dump(), "nothing changed");
        assert!(!Path::new("/run/netctl-sandbox/escape").exists());
        assert!(!Path::new("/run/netctl/containers").exists(), "no container files written");
        let show: serde_json::Value = serde_json::from_str(&ok(&["-o", "json", "show"])).unwrap();
        assert!(show["containers"].as_array().unwrap().is_empty(), "{show}");
        assert!(show["networks"].as_array().unwrap().is_empty(), "{show}");
    }
}

sandbox_test! {
    /// Links planted where netctl writes a container's files are never written through: before
    /// the first apply, after it (a repair), and as the container's directory itself.
    fn files_are_never_written_through_links(sb) {
        let victim = sb.write_file("victim", "precious\n");
        let victim_dir = sb.path("victim-dir");
        std::fs::create_dir_all(&victim_dir).unwrap();
        std::fs::write(victim_dir.join("hosts"), "their hosts\n").unwrap();

        // hosts planted as a link before the first apply.
        std::fs::create_dir_all("/etc/netns/p1").unwrap();
        symlink(&victim, "/etc/netns/p1/hosts").unwrap();
        let file = write(sb, "p1.toml", &one("p", "10.89.17.0/24", "p1", ""));
        let err = fails(&["apply", "-f", &file]);
        assert!(err.contains("/etc/netns/p1/hosts") && err.contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        std::fs::remove_file("/etc/netns/p1/hosts").unwrap();
        ok(&["apply", "-f", &file]);

        // resolv.conf swapped for a link after the apply: the repair refuses, the target stays.
        std::fs::remove_file("/etc/netns/p1/resolv.conf").unwrap();
        symlink(&victim, "/etc/netns/p1/resolv.conf").unwrap();
        let (code, text) = plan_code(&file);
        assert_eq!(code, 2, "plan sees the file is not netctl's: {text}");
        let err = fails(&["apply", "-f", &file]);
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        // Once the link is gone, the next apply repairs the file.
        std::fs::remove_file("/etc/netns/p1/resolv.conf").unwrap();
        ok(&["apply", "-f", &file]);
        assert_eq!(plan_code(&file).0, 0);

        // The container's directory a link to another directory: nothing written, nothing
        // removed there.
        symlink(&victim_dir, "/etc/netns/p2").unwrap();
        let file2 = write(sb, "p2.toml", &one("q", "10.89.18.0/24", "p2", ""));
        let err = fails(&["apply", "-f", &file2]);
        assert!(err.contains("/etc/netns/p2") && err.contains("link"), "{err}");
        ok(&["destroy", "--all"]);
        assert_eq!(std::fs::read_to_string(victim_dir.join("hosts")).unwrap(), "their hosts\n");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(Path::new("/etc/netns/p2").is_symlink(), "a link netctl did not make stays");
    }
}

sandbox_test! {
    /// A state directory of another user is refused, not adopted (its mode stays as it was);
    /// a lock file planted as a link is refused and its target neither truncated nor chmod'ed.
    fn state_dir_and_lock_are_not_adopted_or_followed(sb) {
        let file = write(sb, "s.toml", &one("s", "10.89.19.0/24", "s1", ""));
        let foreign = sb.path("foreign-state");
        std::fs::create_dir_all(&foreign).unwrap();
        nix::unistd::chown(&foreign, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = fails(&["--state-dir", foreign.to_str().unwrap(), "apply", "-f", &file]);
        assert!(err.contains("belongs to uid 65534"), "{err}");
        assert_eq!(mode(foreign.to_str().unwrap()), 0o777, "left as it was");
        assert_eq!(std::fs::read_dir(&foreign).unwrap().count(), 0, "nothing written there");

        let victim = sb.write_file("victim", "precious\n");
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        let state = sb.path("state");
        std::fs::create_dir_all(&state).unwrap();
        symlink(&victim, state.join("netctl.lock")).unwrap();
        let err = fails(&["--state-dir", state.to_str().unwrap(), "apply", "-f", &file]);
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(mode(victim.to_str().unwrap()), 0o644);
        assert!(!Path::new("/run/netns/s1").exists(), "nothing was applied");
    }
}

sandbox_test! {
    /// A bridge name held by a link netctl did not make is a plan-time conflict, in TOML and in
    /// podman's protocol; such a link is never adopted, changed or deleted.
    fn foreign_links_are_conflicts_never_adopted(sb) {
        sb.run(&["ip", "link", "add", "br-foreign", "type", "bridge"]);
        sb.run(&["ip", "addr", "add", "10.1.1.1/24", "dev", "br-foreign"]);
        let before = sb.dump();
        let file = write(sb, "f.toml", "[networks.f]\nbridge = \"br-foreign\"\nsubnets = [{ subnet = \"10.89.20.0/24\" }]\n\n[containers.c]\nnetworks.f = {}\n");
        let plan = fails(&["plan", "-f", &file]);
        assert!(plan.contains("bridge name br-foreign is taken by a bridge link that netctl did not make"), "{plan}");
        fails(&["apply", "-f", &file]);
        assert_eq!(before, sb.dump());
        // The host's uplink as a network's bridge, with no container yet.
        let up = write(sb, "up.toml", &format!("[networks.u]\nbridge = \"{}\"\nsubnets = [{{ subnet = \"10.89.21.0/24\" }}]\n", uplink::HOST_IF));
        let plan = fails(&["plan", "-f", &up]);
        assert!(plan.contains("is taken by a veth link"), "{plan}");
        ok(&["destroy", "--all"]);
        assert_eq!(before, sb.dump(), "destroy leaves the foreign bridge and the uplink");

        // podman's protocol: the same bridge as network_interface.
        sb.add_netns("c1");
        let request = netavark_request("\"web\"", "\"podman\"", "").replace("\"podman0\"", "\"br-foreign\"");
        let err = netavark_refusal(sb, &request);
        assert!(err.contains("br-foreign"), "{err}");
        let input = sb.write_file("req.json", &request).display().to_string();
        ok(&["netavark", "--config", "/run/netctl-sandbox/nv", "-f", &input, "teardown", "/run/netns/c1"]);
        sb.run(&["ip", "netns", "del", "c1"]);
        assert_eq!(before, sb.dump(), "teardown leaves the foreign bridge");
    }
}

sandbox_test! {
    /// A namespace's own interface is never deleted: an interface name it already has is a
    /// conflict before anything is made, and `lo` is refused outright.
    fn a_namespaces_own_interfaces_are_never_touched(sb) {
        sb.add_netns("ext");
        sb.run(&["ip", "link", "add", "hostpeer", "type", "veth", "peer", "name", "eth0", "netns", "ext"]);
        let own = sb.ns_run("ext", &["ip", "-o", "link", "show", "eth0"]);
        let file = write(sb, "ext.toml", "[networks.e]\nbridge = \"nc-e\"\nsubnets = [{ subnet = \"10.89.22.0/24\" }]\n\n[containers.ext]\nnetns = \"/run/netns/ext\"\nnetworks.e = { interface = \"eth0\" }\n");
        let err = fails(&["apply", "-f", &file]);
        assert!(err.contains("interface eth0 already exists in /run/netns/ext"), "{err}");
        assert_eq!(own, sb.ns_run("ext", &["ip", "-o", "link", "show", "eth0"]), "eth0 untouched");
        let lo = write(sb, "lo.toml", "[networks.e]\nbridge = \"lo\"\n\n[containers.ext]\nnetns = \"/run/netns/ext\"\nnetworks.e = { interface = \"lo\" }\n");
        let err = fails(&["validate", "-f", &lo]);
        assert_eq!(err.matches("loopback").count(), 2, "{err}");
        // With a free name it works, and destroy removes only what netctl made.
        let ok_file = write(sb, "ext2.toml", "[networks.e]\nbridge = \"nc-e\"\nsubnets = [{ subnet = \"10.89.22.0/24\" }]\n\n[containers.ext]\nnetns = \"/run/netns/ext\"\nnetworks.e = { interface = \"eth1\" }\n");
        ok(&["apply", "-f", &ok_file]);
        ok(&["destroy", "--all"]);
        assert_eq!(own, sb.ns_run("ext", &["ip", "-o", "link", "show", "eth0"]), "eth0 untouched");
    }
}

sandbox_test! {
    /// A world-writable run_dir is tightened before netctl writes there; a world-writable
    /// etc_netns_dir is warned about (netctl writes only into its own subdirectories there).
    fn world_writable_directories_are_tightened_or_warned_about(sb) {
        std::fs::set_permissions("/run/netctl", std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::fs::set_permissions("/etc/netns", std::fs::Permissions::from_mode(0o1777)).unwrap();
        let file = write(sb, "w.toml", &one("w", "10.89.23.0/24", "w1", ""));
        let out = netctl(&["apply", "-f", &file]);
        assert!(out.status.success(), "{}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("run_dir /run/netctl was writable by others"), "{stderr}");
        assert!(stderr.contains("etc_netns_dir /etc/netns is writable by everyone"), "{stderr}");
        assert_eq!(mode("/run/netctl"), 0o755);
        let dir = std::fs::metadata("/etc/netns/w1").unwrap();
        assert_eq!(dir.mode() & 0o7777, 0o755, "netctl's own directory is 0755");
    }
}

//! Real-client tests: podman 4 (Debian's `podman`, `runc`, `busybox-static`; `cargo xtask deps`
//! installs them) drives netctl as its network backend, inside the privileged test sandbox.
//!
//! podman finds netctl as `netavark` in its `helper_binaries_dir` and speaks netavark's protocol
//! to it; nothing here calls netctl's netavark mode directly. Each test checks what a podman user
//! sees (addresses, traffic between containers, published ports) and that netctl's records agree
//! with podman's, then removes everything through podman and checks that the sandbox is back to
//! how it was: no link, address, route, rule or lease left.
//!
//! Isolation from the machine's own podman: every piece of podman state lives in the sandbox's
//! scratch tmpfs (storage, runroot, tmpdir, network definitions, runc's state, XDG dirs), the
//! configuration comes only from files written here, and the two paths podman hard-codes for root
//! (`/run/containers/networks`, its IPAM database, and the lock segment in `/dev/shm`) get private
//! tmpfs mounts. No image is pulled: containers run from a busybox root filesystem (`--rootfs`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use netctl_testkit::{Proto, Sandbox, sandbox_test};
use netctl_tests::{describe, netctl_bin};

/// How long a container-to-container connection may take to start working after a change.
/// A peer that tried the address before it existed keeps a FAILED neighbour entry for a moment
/// (the kernel answers "No route to host" until it resolves again), so positive checks retry.
const SETTLE: Duration = Duration::from_secs(10);

/// The port of the containers' service, which answers every TCP connection with the container's
/// name.
const PORT: u16 = 80;

/// Runs netctl in the sandbox (its default paths are the sandbox's private mounts).
fn netctl(args: &[&str]) -> String {
    let out = Command::new(netctl_bin())
        .args(args)
        .env("NETCTL_CONFIG", "/nonexistent/netctl.toml")
        .stdin(Stdio::null())
        .output()
        .expect("run netctl");
    assert!(out.status.success(), "netctl {args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// netctl's records, as `netctl -o json show` prints them.
fn records() -> serde_json::Value {
    let text = netctl(&["-o", "json", "show"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("show JSON: {e}\n{text}"))
}

/// A podman whose state and configuration all live in the sandbox.
struct Podman {
    /// Global flags given before every subcommand.
    global: Vec<String>,
    env: Vec<(&'static str, PathBuf)>,
    /// A busybox root filesystem for `--rootfs`.
    rootfs: PathBuf,
}

impl Podman {
    fn new(sb: &Sandbox) -> Podman {
        // Paths podman uses as root whatever its flags say; private mounts keep them off the
        // machine. The mount points are created if missing and never removed: removing a
        // directory that is a mount point in a concurrently running test's namespace would
        // detach that test's mount.
        private_tmpfs(sb, "/run/containers", "0755");
        private_tmpfs(sb, "/dev/shm", "1777");

        let dir = sb.path("podman");
        let helpers = dir.join("helpers");
        std::fs::create_dir_all(&helpers).expect("create helper_binaries_dir");
        std::os::unix::fs::symlink(netctl_bin(), helpers.join("netavark"))
            .expect("link netctl as netavark");
        let containers_conf = sb.write_file(
            "podman/containers.conf",
            &format!(
                "[containers]\n\
                 # podman's default ulimits exceed what the sandbox may raise them to.\n\
                 default_ulimits = []\n\
                 [network]\n\
                 network_backend = \"netavark\"\n\
                 [engine]\n\
                 helper_binaries_dir = [\"{}\"]\n",
                helpers.display()
            ),
        );
        let registries_conf = sb.write_file("podman/registries.conf", "");
        let rootfs = busybox_rootfs(sb, &dir.join("rootfs"));
        let sub = |name: &str| {
            let path = dir.join(name);
            std::fs::create_dir_all(&path)
                .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
            path
        };
        let storage_conf = sb.write_file(
            "podman/storage.conf",
            &format!(
                "[storage]\n\
                 driver = \"vfs\"\n\
                 graphroot = \"{}\"\n\
                 runroot = \"{}\"\n",
                sub("storage").display(),
                sub("runroot").display()
            ),
        );
        let global = vec![
            format!("--tmpdir={}", sub("libpod-tmp").display()),
            format!("--network-config-dir={}", sub("networks").display()),
            // runc keeps container state in /run/runc unless told otherwise.
            format!("--runtime-flag=root={}", sub("runc").display()),
            "--runtime=runc".to_owned(),
            "--cgroup-manager=cgroupfs".to_owned(),
            "--events-backend=file".to_owned(),
        ];
        let env = vec![
            ("CONTAINERS_CONF", containers_conf),
            ("CONTAINERS_STORAGE_CONF", storage_conf),
            ("CONTAINERS_REGISTRIES_CONF", registries_conf),
            ("XDG_RUNTIME_DIR", sub("xdg-runtime")),
            ("XDG_CONFIG_HOME", sub("xdg-config")),
            ("XDG_DATA_HOME", sub("xdg-data")),
            ("HOME", sub("home")),
            ("TMPDIR", sub("tmp")),
            // podman passes its environment on to netavark, i.e. netctl: no host config.
            ("NETCTL_CONFIG", PathBuf::from("/nonexistent/netctl.toml")),
        ];
        Podman {
            global,
            env,
            rootfs,
        }
    }

    fn output(&self, args: &[&str]) -> Output {
        Command::new("podman")
            .args(&self.global)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run podman (install it with `cargo xtask deps`): {e}")
            })
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(out.status.success(), "podman {args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `podman run -d` of a container named `name` that serves its name on [`PORT`]. `opts` go
    /// before `--rootfs` (podman takes everything after the root filesystem as the command).
    fn serve(&self, name: &str, opts: &[&str]) {
        let rootfs = self.rootfs.display().to_string();
        let port = PORT.to_string();
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["--rootfs", &rootfs]);
        // busybox nc: -ll keeps listening, -e runs the program for each connection.
        args.extend_from_slice(&["/bin/nc", "-ll", "-p", &port, "-e", "/bin/echo", name]);
        self.ok(&args);
    }

    fn inspect(&self, name: &str) -> serde_json::Value {
        let text = self.ok(&["inspect", "--type", "container", name]);
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("inspect JSON: {e}\n{text}"));
        value[0].clone()
    }

    /// The address podman reports for `name` on `network`, as `ADDR/PREFIX`.
    fn address_on(&self, name: &str, network: &str) -> String {
        let ctr = self.inspect(name);
        let net = &ctr["NetworkSettings"]["Networks"][network];
        let addr = net["IPAddress"].as_str().unwrap_or_default();
        assert!(
            !addr.is_empty(),
            "podman reports no address for {name} on {network}: {net}"
        );
        format!("{addr}/{}", net["IPPrefixLen"])
    }

    /// The bridge podman named for `network`.
    fn bridge_of(&self, network: &str) -> String {
        let text = self.ok(&["network", "inspect", network]);
        let value: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("network inspect JSON: {e}\n{text}"));
        value[0]["network_interface"]
            .as_str()
            .unwrap_or_else(|| panic!("no network_interface for {network}: {value}"))
            .to_owned()
    }

    /// The IPv4 addresses configured inside the container, per interface, as `ip` lists them.
    fn inside_addresses(&self, name: &str) -> BTreeSet<(String, String)> {
        self.ok(&["exec", name, "ip", "-4", "-o", "addr", "show"])
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.get(2) == Some(&"inet") && fields[1] != "lo")
                    .then(|| (fields[1].to_owned(), fields[3].to_owned()))
            })
            .collect()
    }

    /// What the server at `addr` answers to a connection from container `from`, if anything.
    fn reply(&self, from: &str, addr: &str) -> Option<String> {
        let script = format!("echo ping | nc -w 2 {addr} {PORT}");
        let out = self.output(&["exec", from, "sh", "-c", &script]);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    }

    /// Asserts that container `from` reaches the server `expected` at `addr` (retrying while
    /// neighbour entries settle).
    fn assert_reaches(&self, sb: &Sandbox, from: &str, addr: &str, expected: &str) {
        let mut last = None;
        let reached = sb.wait_for(SETTLE, || {
            last = self.reply(from, addr);
            last.as_deref() == Some(expected)
        });
        assert!(
            reached,
            "{from} should reach {expected} at {addr}:{PORT}; last answer {last:?}"
        );
    }

    /// Asserts that nothing answers `from`'s connection to `addr`.
    fn assert_unreachable(&self, from: &str, addr: &str) {
        let reply = self.reply(from, addr);
        assert_eq!(reply, None, "{from} should not reach {addr}:{PORT}");
    }
}

/// A power cut and a reboot with podman's containers running: every process but the test's
/// own dies at once (conmon, the containers), and what lives in tmpfs on a real host goes with
/// the namespaces, links and rules (`Sandbox::simulate_reboot`): podman's runroot, tmpdir (whose
/// missing `alive` file tells podman it rebooted), runc's state, its IPAM database under
/// `/run/containers`, its lock segment in `/dev/shm`. podman's storage and netctl's records stay.
fn power_cut(sb: &Sandbox, boot: u8) {
    // From pid 1 of the sandbox's pid namespace: every other process in it.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(-1),
        nix::sys::signal::Signal::SIGKILL,
    );
    // Reap what was reparented to us, so nothing lingers in the pid namespace.
    while nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(-1), None).is_ok() {}
    let dir = sb.path("podman");
    // Mounts vanish with the kernel too (each container's `userdata/shm`).
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let mut under: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(dir.to_str().expect("UTF-8 path")))
        .collect();
    under.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in under {
        sb.run(&["umount", "-l", mount]);
    }
    for tmpfs in ["runroot", "libpod-tmp", "runc", "xdg-runtime", "tmp"] {
        let path = dir.join(tmpfs);
        std::fs::remove_dir_all(&path).unwrap_or_else(|e| panic!("clear {}: {e}", path.display()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    }
    for entry in std::fs::read_dir("/dev/shm")
        .expect("read /dev/shm")
        .flatten()
    {
        let _ = std::fs::remove_file(entry.path());
    }
    sb.simulate_reboot(boot);
}

/// Mounts a private tmpfs on `dir` (in the sandbox's own mount namespace).
fn private_tmpfs(sb: &Sandbox, dir: &str, mode: &str) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {dir}: {e}"));
    sb.run(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        &format!("mode={mode}"),
        "tmpfs",
        dir,
    ]);
}

/// A root filesystem holding the static busybox and a link per applet.
fn busybox_rootfs(sb: &Sandbox, root: &std::path::Path) -> PathBuf {
    let busybox = sb.run(&["sh", "-c", "command -v busybox"]);
    let busybox = busybox.trim();
    assert!(
        !busybox.is_empty(),
        "busybox not found (install busybox-static with `cargo xtask deps`)"
    );
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).expect("create rootfs/bin");
    std::fs::copy(busybox, bin.join("busybox")).expect("copy busybox into the rootfs");
    for applet in sb.run(&["busybox", "--list"]).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet))
                .unwrap_or_else(|e| panic!("link applet {applet}: {e}"));
        }
    }
    root.to_path_buf()
}

/// Asserts that netctl's records say what podman says: the same containers (name and id), each
/// attached to the same networks with the same addresses, one lease per address, and no drift
/// between the records and the kernel.
fn assert_records_match(podman: &Podman, containers: &[&str]) {
    let mut want = BTreeSet::new();
    for name in containers {
        let ctr = podman.inspect(name);
        let id = ctr["Id"].as_str().expect("container id").to_owned();
        let networks = ctr["NetworkSettings"]["Networks"]
            .as_object()
            .expect("networks")
            .keys()
            .cloned()
            .collect::<Vec<_>>();
        for net in networks {
            let addr = podman.address_on(name, &net);
            want.insert(((*name).to_owned(), id.clone(), net, addr));
        }
    }
    let rec = records();
    let ids: std::collections::BTreeMap<&str, &str> = rec["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["id"].as_str().unwrap()))
        .collect();
    let got: BTreeSet<_> = rec["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .flat_map(|a| {
            let ctr = a["container"].as_str().unwrap().to_owned();
            let id = ids.get(ctr.as_str()).copied().unwrap_or("?").to_owned();
            let net = a["network"].as_str().unwrap().to_owned();
            a["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|addr| {
                    (
                        ctr.clone(),
                        id.clone(),
                        net.clone(),
                        addr.as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(got, want, "netctl's records vs podman inspect:\n{rec:#}");
    let leases: BTreeSet<_> = rec["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .map(|l| {
            (
                l["container"].as_str().unwrap().to_owned(),
                l["network"].as_str().unwrap().to_owned(),
                l["address"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want_leases: BTreeSet<_> = want
        .iter()
        .map(|(c, _, n, a)| {
            let addr = a.split_once('/').map_or(a.as_str(), |(ip, _)| ip);
            (c.clone(), n.clone(), addr.to_owned())
        })
        .collect();
    assert_eq!(
        leases, want_leases,
        "one lease per podman address:\n{rec:#}"
    );
    assert_eq!(rec["drift"], serde_json::json!([]), "no drift:\n{rec:#}");
    let text = netctl(&["show"]);
    for name in containers {
        assert!(text.contains(name), "`netctl show` lists {name}:\n{text}");
    }
}

/// Removes every container and the given networks through podman, then checks that the sandbox
/// is as it was in `before` and that netctl keeps no record of any of it.
fn remove_all_and_check_clean(sb: &Sandbox, podman: &Podman, before: &str, networks: &[&str]) {
    podman.ok(&["rm", "--force", "--time", "0", "--all"]);
    let mut args = vec!["network", "rm"];
    args.extend_from_slice(networks);
    podman.ok(&args);
    assert_eq!(podman.ok(&["ps", "--all", "--quiet"]).trim(), "");
    assert_eq!(
        before,
        sb.dump(),
        "links, addresses, routes and rules are as before podman ran"
    );
    let rec = records();
    for key in ["networks", "containers", "attachments", "leases", "helpers"] {
        assert_eq!(
            rec[key],
            serde_json::json!([]),
            "{key} left in netctl's records:\n{rec:#}"
        );
    }
    let netns: BTreeSet<String> = std::fs::read_dir(&sb.netns_dir)
        .expect("read /run/netns")
        .map(|e| {
            e.expect("netns entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        netns,
        BTreeSet::from([netctl_testkit::uplink::OUTSIDE_NS.to_owned()]),
        "podman's namespaces are gone"
    );
}

sandbox_test! {
    /// `podman network create` + `podman run`: containers get the address asked for (or the one
    /// podman's IPAM picked), reach each other by IP, a published port answers on 127.0.0.1,
    /// `netctl show` lists both; `podman rm -f` leaves nothing behind.
    fn podman_run_on_a_network_created_by_podman(sb) {
        sb.enable_forwarding();
        let podman = Podman::new(sb);
        let before = sb.dump();

        podman.ok(&["network", "create", "--subnet", "10.89.7.0/24", "pn1"]);
        podman.serve("web", &["--network", "pn1", "--ip", "10.89.7.10", "-p", "127.0.0.1:8081:80"]);
        podman.serve("client", &["--network", "pn1"]);

        assert_eq!(podman.address_on("web", "pn1"), "10.89.7.10/24");
        assert_eq!(
            podman.inside_addresses("web"),
            BTreeSet::from([("eth0".to_owned(), "10.89.7.10/24".to_owned())])
        );
        let client = podman.address_on("client", "pn1");
        assert!(client.starts_with("10.89.7.") && client != "10.89.7.1/24", "{client}");
        assert_eq!(podman.inside_addresses("client"), BTreeSet::from([("eth0".to_owned(), client.clone())]));
        let route = podman.ok(&["exec", "web", "ip", "route"]);
        assert!(route.contains("default via 10.89.7.1 dev eth0"), "{route}");

        let client_ip = client.split_once('/').unwrap().0;
        podman.assert_reaches(sb, "client", "10.89.7.10", "web");
        podman.assert_reaches(sb, "web", client_ip, "client");
        assert_eq!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8081).as_deref(), Some("web"), "published port");

        assert_records_match(&podman, &["web", "client"]);

        remove_all_and_check_clean(sb, &podman, &before, &["pn1"]);
    }
}

sandbox_test! {
    /// `podman network connect` / `reload` / `disconnect` on running containers, with traffic
    /// checks after each; `podman rm -f` leaves nothing behind.
    fn podman_network_connect_disconnect_and_reload(sb) {
        sb.enable_forwarding();
        let podman = Podman::new(sb);
        let before = sb.dump();

        podman.ok(&["network", "create", "--subnet", "10.89.7.0/24", "pn1"]);
        podman.ok(&["network", "create", "--subnet", "10.89.8.0/24", "pn2"]);
        podman.serve("web", &["--network", "pn1", "--ip", "10.89.7.10", "-p", "127.0.0.1:8081:80"]);
        podman.serve("other", &["--network", "pn2", "--ip", "10.89.8.11"]);
        assert_records_match(&podman, &["web", "other"]);

        // connect: a second interface on pn2, reachable both ways, the published port unchanged.
        podman.ok(&["network", "connect", "--ip", "10.89.8.10", "pn2", "web"]);
        assert_eq!(podman.address_on("web", "pn2"), "10.89.8.10/24");
        assert_eq!(
            podman.inside_addresses("web"),
            BTreeSet::from([
                ("eth0".to_owned(), "10.89.7.10/24".to_owned()),
                ("eth1".to_owned(), "10.89.8.10/24".to_owned()),
            ])
        );
        podman.assert_reaches(sb, "other", "10.89.8.10", "web");
        podman.assert_reaches(sb, "web", "10.89.8.11", "other");
        assert_eq!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8081).as_deref(), Some("web"));
        assert_records_match(&podman, &["web", "other"]);

        // reload: after the firewall lost netctl's rules (as after a firewall restart), podman
        // network reload sets both networks up again, keeping every address.
        sb.run(&["nft", "delete", "table", "inet", "netctl"]);
        assert_eq!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8081), None, "rules are gone");
        podman.ok(&["network", "reload", "--all"]);
        assert_eq!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8081).as_deref(), Some("web"), "rules are back");
        assert_eq!(
            podman.inside_addresses("web"),
            BTreeSet::from([
                ("eth0".to_owned(), "10.89.7.10/24".to_owned()),
                ("eth1".to_owned(), "10.89.8.10/24".to_owned()),
            ])
        );
        assert_eq!(podman.address_on("other", "pn2"), "10.89.8.11/24");
        podman.assert_reaches(sb, "other", "10.89.8.10", "web");
        assert_records_match(&podman, &["web", "other"]);

        // disconnect: the pn2 interface goes, pn1 and the published port stay.
        podman.ok(&["network", "disconnect", "pn2", "web"]);
        assert_eq!(
            podman.inside_addresses("web"),
            BTreeSet::from([("eth0".to_owned(), "10.89.7.10/24".to_owned())])
        );
        podman.assert_unreachable("other", "10.89.8.10");
        assert_eq!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8081).as_deref(), Some("web"));
        let bridge = podman.bridge_of("pn2");
        let ports = sb.run(&["ip", "-o", "link", "show", "master", &bridge]);
        assert_eq!(ports.lines().count(), 1, "only other's veth is left on {bridge}:\n{ports}");
        assert_records_match(&podman, &["web", "other"]);

        remove_all_and_check_clean(sb, &podman, &before, &["pn1", "pn2"]);
    }
}

sandbox_test! {
    /// DNS by name with aardvark-dns in `helper_binaries_dir`, as podman users have it:
    /// `podman network create` (DNS on by default) + two `podman run --network NET:alias=...`;
    /// each container finds the other by name and by alias through the gateway podman wrote
    /// into its resolv.conf; `podman rm -f` of both leaves no aardvark-dns and no file.
    fn podman_containers_find_each_other_by_name(sb) {
        sb.enable_forwarding();
        // The "host's" resolver: nothing answers there, so no query can leave the sandbox.
        let resolv = sb.write_file("host-resolv.conf", "nameserver 127.0.0.2\n");
        sb.run(&["mount", "--bind", resolv.to_str().unwrap(), "/etc/resolv.conf"]);
        let podman = Podman::new(sb);
        let aardvark = ["/usr/libexec/podman/aardvark-dns", "/usr/lib/podman/aardvark-dns"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .expect("aardvark-dns is installed (cargo xtask deps)");
        std::os::unix::fs::symlink(aardvark, sb.path("podman/helpers/aardvark-dns"))
            .expect("link aardvark-dns into helper_binaries_dir");
        let before = sb.dump();

        podman.ok(&["network", "create", "--subnet", "10.89.9.0/24", "pdn"]);
        podman.serve("web", &["--network", "pdn:alias=www", "--ip", "10.89.9.10"]);
        podman.serve("client", &["--network", "pdn:alias=cli", "--ip", "10.89.9.11"]);

        let resolv = podman.ok(&["exec", "client", "cat", "/etc/resolv.conf"]);
        assert!(resolv.contains("nameserver 10.89.9.1"), "{resolv}");
        assert!(resolv.contains("dns.podman"), "{resolv}");
        let lookup = |from: &str, name: &str| {
            let out = podman.output(&["exec", from, "nslookup", name, "10.89.9.1"]);
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        for name in ["web", "www", "www.dns.podman"] {
            let out = lookup("client", name);
            assert!(out.contains("Address: 10.89.9.10"), "client looks up {name}:\n{out}");
        }
        for name in ["client", "cli"] {
            let out = lookup("web", name);
            assert!(out.contains("Address: 10.89.9.11"), "web looks up {name}:\n{out}");
        }
        assert_eq!(netctl_testkit::live_processes(&["aardvark-dns"]).len(), 1, "one aardvark-dns");
        let files: BTreeSet<String> = std::fs::read_dir("/run/containers/networks/aardvark-dns")
            .expect("netavark's aardvark-dns directory")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(files.contains("pdn"), "{files:?}");
        assert_records_match(&podman, &["web", "client"]);

        podman.ok(&["rm", "--force", "--time", "0", "web", "client"]);
        assert!(netctl_testkit::live_processes(&["aardvark-dns"]).is_empty(), "podman rm -f leaves no aardvark-dns");
        let left: Vec<_> = std::fs::read_dir("/run/containers/networks/aardvark-dns")
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
        remove_all_and_check_clean(sb, &podman, &before, &["pdn"]);
    }
}

sandbox_test! {
    /// A power cut with containers running: namespaces, podman's /run state and the kernel's
    /// objects vanish without a teardown, netctl's records stay. `podman start` and `podman run
    /// --replace` then work (a restarted container may get the address a stale record held),
    /// `netctl show` lists exactly podman's containers with no drift, and `podman network rm` +
    /// `create` under the same name with a new subnet works.
    fn podman_after_a_power_cut(sb) {
        sb.enable_forwarding();
        let podman = Podman::new(sb);
        podman.ok(&["network", "create", "--subnet", "10.89.9.0/24", "rb"]);
        podman.serve("web", &["--network", "rb", "-p", "127.0.0.1:8082:80"]);
        podman.serve("api", &["--network", "rb"]);
        let web_before = podman.address_on("web", "rb");
        assert_records_match(&podman, &["web", "api"]);

        power_cut(sb, 1);
        // api first: podman's IPAM starts afresh and may hand it the address web's stale
        // record still holds.
        podman.ok(&["start", "api"]);
        podman.serve("web", &["--replace", "--network", "rb", "-p", "127.0.0.1:8082:80"]);
        let api = podman.address_on("api", "rb");
        let web = podman.address_on("web", "rb");
        assert_ne!(api, web);
        eprintln!("web was {web_before}, is {web}; api is {api}");
        podman.assert_reaches(sb, "api", web.split_once('/').unwrap().0, "web");
        assert_eq!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8082).as_deref(), Some("web"), "published port");
        assert_records_match(&podman, &["web", "api"]);
        let rec = records();
        assert_eq!(rec["containers"].as_array().unwrap().len(), 2, "no stale records:\n{rec:#}");

        // The network removed and created again under its name, with a new subnet.
        podman.ok(&["rm", "--force", "--time", "0", "--all"]);
        podman.ok(&["network", "rm", "rb"]);
        podman.ok(&["network", "create", "--subnet", "10.89.19.0/24", "rb"]);
        podman.serve("web", &["--network", "rb", "--ip", "10.89.19.5"]);
        assert_eq!(podman.address_on("web", "rb"), "10.89.19.5/24");
        assert_eq!(podman.inside_addresses("web"), BTreeSet::from([("eth0".to_owned(), "10.89.19.5/24".to_owned())]));
        assert_records_match(&podman, &["web"]);

        // And once more after a power cut, with the container started again as it was.
        power_cut(sb, 2);
        podman.ok(&["start", "web"]);
        assert_eq!(podman.inside_addresses("web"), BTreeSet::from([("eth0".to_owned(), "10.89.19.5/24".to_owned())]));
        assert_records_match(&podman, &["web"]);
        podman.ok(&["rm", "--force", "--time", "0", "--all"]);
        podman.ok(&["network", "rm", "rb"]);
        let rec = records();
        for key in ["networks", "containers", "attachments", "leases"] {
            assert_eq!(rec[key], serde_json::json!([]), "{key} left in netctl's records:\n{rec:#}");
        }
    }
}

sandbox_test! {
    /// `podman network create -d macvlan -o parent=...` + `podman run --ip`: the container sits
    /// on the LAN (a veth `lanp` whose peer is in namespace `lan`, holding the gateway), reaches
    /// the gateway and is reached from the LAN with its own address, and a second container from
    /// the first; `podman rm` leaves no
    /// link. (podman 4.3 refuses a DHCP macvlan network itself; netctl's refusal of one is
    /// tested on the request, in netctl-engine's `netavark_fuzz.rs`.)
    fn podman_macvlan_network(sb) {
        let podman = Podman::new(sb);
        sb.add_netns("lan");
        sb.run(&["ip", "link", "add", "lanp", "type", "veth", "peer", "name", "lan0", "netns", "lan"]);
        sb.run(&["ip", "link", "set", "lanp", "up"]);
        sb.ns_run("lan", &["ip", "addr", "add", "192.168.77.1/24", "dev", "lan0"]);
        sb.ns_run("lan", &["ip", "link", "set", "lan0", "up"]);
        let before = sb.dump();

        podman.ok(&["network", "create", "-d", "macvlan", "-o", "parent=lanp", "--subnet", "192.168.77.0/24", "--gateway", "192.168.77.1", "pmv"]);
        podman.serve("mv1", &["--network", "pmv", "--ip", "192.168.77.50"]);
        assert_eq!(podman.inside_addresses("mv1"), BTreeSet::from([("eth0".to_owned(), "192.168.77.50/24".to_owned())]));
        let sandbox_key = podman.inspect("mv1")["NetworkSettings"]["SandboxKey"].as_str().expect("SandboxKey").to_owned();
        let link = sb.run(&["nsenter", &format!("--net={sandbox_key}"), "ip", "-d", "link", "show", "eth0"]);
        assert!(link.contains("macvlan mode bridge"), "{link}");
        let route = podman.ok(&["exec", "mv1", "ip", "route"]);
        assert!(route.contains("default via 192.168.77.1 dev eth0"), "{route}");

        let _gw = sb.listen(Some("lan"), Proto::Tcp, "0.0.0.0", 81);
        let out = podman.output(&["exec", "mv1", "sh", "-c", "echo ping | nc -w 2 192.168.77.1 81"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "192.168.77.50", "container to gateway: {}", describe(&out));
        assert_eq!(sb.probe(Some("lan"), Proto::Tcp, "192.168.77.50", PORT).as_deref(), Some("mv1"), "LAN to container");
        // A second container joins the recorded network as it is (not as a bridge of that name).
        podman.serve("mv2", &["--network", "pmv", "--ip", "192.168.77.51"]);
        podman.assert_reaches(sb, "mv1", "192.168.77.51", "mv2");

        podman.ok(&["rm", "--force", "--time", "0", "--all"]);
        podman.ok(&["network", "rm", "pmv"]);
        assert_eq!(before, sb.dump(), "no link, address, route or rule left");
        assert_eq!(records()["attachments"], serde_json::json!([]));

    }
}

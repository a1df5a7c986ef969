//! A private sandbox for tests that need root.
//!
//! Each privileged test re-executes its own test binary under
//! `unshare --net --mount --pid --fork --mount-proc --propagation private`, running only that
//! one test. Inside, the sandbox gets:
//!
//! * a fresh network namespace (only `lo`, brought up here),
//! * private tmpfs mounts over `/run/netns`, `/etc/netns`, `/run/netctl` and `/var/lib/netctl`,
//!   so `ip netns`, netctl's default paths and `ip netns exec`'s `/etc/netns` convention are all
//!   private to the test,
//! * a fake uplink: veth `uplink0` (192.0.2.10/24, 2001:db8::10/64, default routes via .1 / ::1)
//!   whose peer `eth0` lives in the named namespace `outside` (192.0.2.1/24, 2001:db8::1/64).
//!
//! Invariants:
//! * Nothing inside can reach the machine's real interfaces: the network namespace is new.
//! * Nothing outlives the test: the pid namespace kills every process the test started (pasta,
//!   slirp4netns, listeners) when the test's pid 1 exits, and the mount namespace takes the netns
//!   bind mounts and tmpfs with it.
//! * A privileged test never skips: without root it fails with a message saying why.
//!
//! The parent side also checks that the machine's `/run/netns` entries and link names are the same
//! before and after the child ran, so a test that leaks onto the host fails.
//!
//! Test harness code may run `ip`/`nft` commands; netctl itself never does.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Environment variable that tells a re-executed test binary it is the sandboxed child, and which
/// test it is meant to run.
pub const CHILD_ENV: &str = "NETCTL_SANDBOX_CHILD";

/// Addresses of the fake uplink, inside the sandbox only (documentation ranges, never routed).
pub mod uplink {
    /// Sandbox ("host") side of the uplink veth.
    pub const HOST_IF: &str = "uplink0";
    /// Named namespace at the far end of the uplink.
    pub const OUTSIDE_NS: &str = "outside";
    pub const HOST_V4: &str = "192.0.2.10";
    pub const OUTSIDE_V4: &str = "192.0.2.1";
    pub const HOST_V6: &str = "2001:db8::10";
    pub const OUTSIDE_V6: &str = "2001:db8::1";
}

/// Declares a test that runs inside a private sandbox.
///
/// ```ignore
/// netctl_testkit::sandbox_test! {
///     fn veth_passes_packets(sb) {
///         sb.run(&["ip", "link"]);
///     }
/// }
/// ```
#[macro_export]
macro_rules! sandbox_test {
    ($(#[$meta:meta])* fn $name:ident($sb:ident) $body:block) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            $crate::run_sandboxed(
                concat!(module_path!(), "::", stringify!($name)),
                |$sb: &$crate::Sandbox| $body,
            );
        }
    };
}

/// Live processes of this pid namespace whose program (argv[0]) contains one of `names`, sorted
/// (zombies waiting for the sandbox's pid 1 have no command line and do not count).
pub fn live_processes(names: &[&str]) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv0 = String::from_utf8_lossy(cmdline.split(|b| *b == 0).next()?).into_owned();
            names.iter().any(|n| argv0.contains(n)).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Entry point used by [`sandbox_test!`]: in the parent, re-executes the test in a sandbox; in the
/// sandboxed child, sets the sandbox up and runs `body`.
pub fn run_sandboxed(full_path: &str, body: impl FnOnce(&Sandbox)) {
    // libtest names tests without the crate name that `module_path!` starts with.
    let test_name = full_path
        .split_once("::")
        .map_or(full_path, |(_, rest)| rest);
    match std::env::var(CHILD_ENV) {
        Ok(name) if name == test_name => {
            let sandbox = Sandbox::set_up(test_name);
            body(&sandbox);
        }
        _ => run_parent(test_name),
    }
}

fn run_parent(test_name: &str) {
    require_privileges();
    let before = host_fingerprint();
    let exe = std::env::current_exe().expect("current test executable");
    let status = Command::new("unshare")
        .args([
            "--net",
            "--mount",
            "--pid",
            "--fork",
            "--mount-proc",
            "--propagation",
            "private",
            "--",
        ])
        .arg(&exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test_name)
        .stdin(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run unshare for sandboxed test {test_name}: {e}"));
    assert!(
        status.success(),
        "sandboxed test {test_name} failed inside its sandbox ({status})"
    );
    let after = host_fingerprint();
    assert_eq!(
        before, after,
        "sandboxed test {test_name} left something behind on the machine (netns entries or links)"
    );
}

/// Fails loudly (never skips) when privileged tests cannot run here.
fn require_privileges() {
    let euid = nix::unistd::geteuid();
    assert!(
        euid.is_root(),
        "privileged tests were requested but this process is not root (euid {euid}); \
         run them as root (CI does) or build without the `privileged` feature"
    );
    let probe = Command::new("unshare")
        .args(["--net", "--mount", "true"])
        .stdin(Stdio::null())
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "privileged tests were requested but namespaces cannot be created here \
             (no CAP_SYS_ADMIN/CAP_NET_ADMIN?): unshare said: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("privileged tests were requested but `unshare` cannot run: {e}"),
    }
}

/// What the machine's own network looks like from the outside: named netns entries and link
/// names. Compared before and after each sandboxed test.
fn host_fingerprint() -> (BTreeSet<String>, BTreeSet<String>) {
    let netns = std::fs::read_dir("/run/netns")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let links = std::fs::read_dir("/sys/class/net")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    (netns, links)
}

/// The sandbox a privileged test runs in. Paths point into private tmpfs mounts.
#[derive(Debug)]
pub struct Sandbox {
    /// The test's name (unique per test binary), handy for naming things.
    pub name: String,
    /// A private scratch directory (tmpfs), removed with the mount namespace.
    pub root: PathBuf,
    /// netctl settings pointing into the sandbox.
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    pub netns_dir: PathBuf,
    pub etc_netns_dir: PathBuf,
}

const PRIVATE_DIRS: [&str; 5] = [
    "/run/netns",
    "/etc/netns",
    "/run/netctl",
    "/var/lib/netctl",
    "/run/netctl-sandbox",
];

impl Sandbox {
    fn set_up(name: &str) -> Sandbox {
        assert_eq!(
            std::process::id(),
            1,
            "the sandbox child must be pid 1 of its own pid namespace"
        );
        for dir in PRIVATE_DIRS {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {dir}: {e}"));
            nix::mount::mount(
                Some("tmpfs"),
                dir,
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                Some("mode=0755"),
            )
            .unwrap_or_else(|e| panic!("mount tmpfs on {dir}: {e}"));
        }
        let sb = Sandbox {
            name: name.to_owned(),
            root: PathBuf::from("/run/netctl-sandbox"),
            state_dir: PathBuf::from("/var/lib/netctl"),
            run_dir: PathBuf::from("/run/netctl"),
            netns_dir: PathBuf::from("/run/netns"),
            etc_netns_dir: PathBuf::from("/etc/netns"),
        };
        sb.run(&["ip", "link", "set", "lo", "up"]);
        sb.set_up_uplink();
        sb
    }

    fn set_up_uplink(&self) {
        use uplink::{HOST_IF, HOST_V4, HOST_V6, OUTSIDE_NS, OUTSIDE_V4, OUTSIDE_V6};
        self.run(&["ip", "netns", "add", OUTSIDE_NS]);
        self.run(&[
            "ip", "link", "add", "name", HOST_IF, "type", "veth", "peer", "name", "eth0", "netns",
            OUTSIDE_NS,
        ]);
        // No DAD: the addresses must be usable at once, tests do not wait for it.
        self.sysctl(&format!("net.ipv6.conf.{HOST_IF}.accept_dad"), "0");
        self.ns_run(
            OUTSIDE_NS,
            &["sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0"],
        );
        self.run(&[
            "ip",
            "addr",
            "add",
            &format!("{HOST_V4}/24"),
            "dev",
            HOST_IF,
        ]);
        self.run(&[
            "ip",
            "addr",
            "add",
            &format!("{HOST_V6}/64"),
            "dev",
            HOST_IF,
            "nodad",
        ]);
        self.run(&["ip", "link", "set", HOST_IF, "up"]);
        self.run(&["ip", "route", "add", "default", "via", OUTSIDE_V4]);
        self.ns_run(OUTSIDE_NS, &["ip", "link", "set", "lo", "up"]);
        self.ns_run(
            OUTSIDE_NS,
            &[
                "ip",
                "addr",
                "add",
                &format!("{OUTSIDE_V4}/24"),
                "dev",
                "eth0",
            ],
        );
        self.ns_run(
            OUTSIDE_NS,
            &[
                "ip",
                "addr",
                "add",
                &format!("{OUTSIDE_V6}/64"),
                "dev",
                "eth0",
                "nodad",
            ],
        );
        self.ns_run(OUTSIDE_NS, &["ip", "link", "set", "eth0", "up"]);
        self.run(&["ip", "-6", "route", "add", "default", "via", OUTSIDE_V6]);
        // The kernel adds the address's local route a moment after the link comes up; a test
        // whose "before" dump missed it would see it appear as a change.
        let local = format!("local {HOST_V6} ");
        let settled = self.wait_for(Duration::from_secs(5), || {
            self.run(&["ip", "-6", "route", "show", "table", "local"])
                .contains(&local)
        });
        assert!(settled, "the uplink's IPv6 local route did not appear");
    }

    /// Turns on IPv4 and IPv6 forwarding in the sandbox, as on a container host. netctl turns it
    /// on and (like netavark) leaves it on; IPv6 forwarding also makes the kernel add anycast
    /// routes. Call this before taking a "before" dump that is compared after a teardown.
    pub fn enable_forwarding(&self) {
        self.sysctl("net.ipv4.ip_forward", "1");
        self.sysctl("net.ipv6.conf.all.forwarding", "1");
    }

    /// Writes a sysctl in the sandbox's own network namespace.
    pub fn sysctl(&self, key: &str, value: &str) {
        self.run(&["sysctl", "-qw", &format!("{key}={value}")]);
    }

    /// Runs a command in the sandbox namespace; panics with its output unless it succeeds.
    pub fn run<S: AsRef<OsStr>>(&self, argv: &[S]) -> String {
        let out = self.output(argv);
        assert!(
            out.status.success(),
            "`{}` failed ({}):\n{}{}",
            show_argv(argv),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command in the sandbox namespace and returns its output, whatever its status.
    pub fn output<S: AsRef<OsStr>>(&self, argv: &[S]) -> Output {
        let (prog, args) = argv.split_first().expect("argv must not be empty");
        Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", show_argv(argv)))
    }

    /// Runs a command inside the named namespace `ns` (`ip netns exec`); panics unless it succeeds.
    pub fn ns_run<S: AsRef<OsStr>>(&self, ns: &str, argv: &[S]) -> String {
        self.run(&ns_argv(ns, argv))
    }

    /// Like [`Sandbox::ns_run`] but returns the output whatever the status.
    pub fn ns_output<S: AsRef<OsStr>>(&self, ns: &str, argv: &[S]) -> Output {
        self.output(&ns_argv(ns, argv))
    }

    /// Starts a long-running command (a listener, say) in namespace `ns` (or the sandbox itself
    /// for `None`). It is killed when the returned guard drops, and in any case when the sandbox
    /// ends.
    pub fn spawn<S: AsRef<OsStr>>(&self, ns: Option<&str>, argv: &[S]) -> Background {
        let full: Vec<std::ffi::OsString> = match ns {
            Some(ns) => ns_argv(ns, argv),
            None => argv.iter().map(|a| a.as_ref().to_owned()).collect(),
        };
        let (prog, args) = full.split_first().expect("argv must not be empty");
        let child = Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", show_argv(&full)));
        Background { child }
    }

    /// A power cut and a reboot, as far as the sandbox can show one: every namespace but the
    /// uplink's is gone, every link but `lo` and the uplink, the whole nftables ruleset, and
    /// everything under `/run/netctl` and `/run/containers` (tmpfs on a real host); the
    /// kernel's boot id is a new one (a private bind mount over
    /// `/proc/sys/kernel/random/boot_id`). Nothing is torn down: records in `/var/lib/netctl`
    /// survive, as on disk. `boot` makes each simulated boot's id distinct.
    pub fn simulate_reboot(&self, boot: u8) {
        let names = self.run(&["ip", "netns", "list"]);
        for ns in names.lines().filter_map(|l| l.split_whitespace().next()) {
            if ns != uplink::OUTSIDE_NS {
                self.run(&["ip", "netns", "del", ns]);
            }
        }
        let links = self.run(&["ip", "-o", "link", "show"]);
        for link in links.lines().filter_map(|l| l.split(": ").nth(1)) {
            let name = link.split('@').next().unwrap_or(link);
            if name != "lo" && name != uplink::HOST_IF {
                // A veth's peer may have gone with an earlier one.
                let _ = self.output(&["ip", "link", "del", name]);
            }
        }
        self.run(&["nft", "flush", "ruleset"]);
        for dir in ["/run/netctl", "/run/containers"] {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
                }
            }
        }
        let id = self.write_file(
            &format!("boot-id-{boot}"),
            &format!("00000000-0000-4000-8000-{boot:012x}\n"),
        );
        self.run(&[
            "mount",
            "--bind",
            id.to_str().expect("UTF-8 path"),
            "/proc/sys/kernel/random/boot_id",
        ]);
    }

    /// Creates a named namespace with `lo` up (a test's own "container", made without netctl).
    pub fn add_netns(&self, ns: &str) {
        self.run(&["ip", "netns", "add", ns]);
        self.ns_run(ns, &["ip", "link", "set", "lo", "up"]);
    }

    /// A text dump of links, addresses, routes and the nftables ruleset of the sandbox namespace,
    /// with volatile parts (ifindexes, counters) left out, for before/after comparisons.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for argv in [
            &["ip", "-o", "link", "show"][..],
            &["ip", "-o", "addr", "show"][..],
            &["ip", "route", "show", "table", "all"][..],
            &["ip", "-6", "route", "show", "table", "all"][..],
            &["nft", "list", "ruleset"][..],
        ] {
            let text = self.run(argv);
            let _ = writeln!(out, "## {}", argv.join(" "));
            for line in text.lines() {
                // IPv6 link-local addresses and their routes are the kernel's own, and they
                // change on their own: duplicate address detection ends (dropping `tentative`,
                // adding the local route) up to a few seconds after a link comes up, between
                // two dumps as often as not.
                if line.contains("fe80:") {
                    continue;
                }
                // `ip -o` lines start with "<ifindex>: "; ifindexes are not stable across runs.
                let line = match line.split_once(": ") {
                    Some((idx, rest)) if idx.chars().all(|c| c.is_ascii_digit()) => rest,
                    _ => line,
                };
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }

    /// Waits until `check` returns true or `timeout` passes; returns whether it became true.
    pub fn wait_for(&self, timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        loop {
            if check() {
                return true;
            }
            if start.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a TCP or UDP echo-peer listener in `ns` (`None`: the sandbox itself) on
    /// `bind:port` that answers every connection or datagram with the address it came from.
    pub fn listen(&self, ns: Option<&str>, proto: Proto, bind: &str, port: u16) -> Background {
        let addr = bracket(bind);
        // An IPv6 wildcard listens on both families.
        let (fam, extra) = if bind.contains(':') {
            ("6", ",ipv6only=0")
        } else {
            ("4", "")
        };
        let listen = match proto {
            Proto::Tcp => format!("TCP{fam}-LISTEN:{port},bind={addr},reuseaddr,fork{extra}"),
            Proto::Udp => format!("UDP{fam}-RECVFROM:{port},bind={addr},fork{extra}"),
        };
        // socat passes the peer's address to the replying child in SOCAT_PEERADDR.
        // Read the request before answering: a reply written before socat has passed the
        // request on makes socat fail on the closed pipe and sometimes drop the reply.
        let bg = self.spawn(
            ns,
            &["socat", &listen, "SYSTEM:read -r _; echo $SOCAT_PEERADDR"],
        );
        let probe_port = port.to_string();
        let ready = self.wait_for(Duration::from_secs(5), || {
            let ss = match ns {
                Some(ns) => {
                    self.ns_output(ns, &["ss", "-lnH", "sport", "=", &format!(":{probe_port}")])
                }
                None => self.output(&["ss", "-lnH", "sport", "=", &format!(":{probe_port}")]),
            };
            !String::from_utf8_lossy(&ss.stdout).trim().is_empty()
        });
        assert!(ready, "listener {proto:?} {bind}:{port} did not come up");
        bg
    }

    /// Connects from `ns` (`None`: the sandbox itself) to `addr:port` and returns the peer
    /// address the listener reported, or `None` when nothing answered within a short timeout.
    pub fn probe(&self, ns: Option<&str>, proto: Proto, addr: &str, port: u16) -> Option<String> {
        // A lone datagram can be lost while neighbours resolve; UDP gets a few tries.
        let tries = if proto == Proto::Udp { 3 } else { 1 };
        (0..tries).find_map(|_| self.probe_once(ns, proto, addr, port))
    }

    #[allow(clippy::unused_self)] // a method so callers read `sb.probe(..)` like the rest
    fn probe_once(&self, ns: Option<&str>, proto: Proto, addr: &str, port: u16) -> Option<String> {
        let fam = if addr.contains(':') { "6" } else { "4" };
        let target = match proto {
            Proto::Tcp => format!("TCP{fam}:{}:{port},connect-timeout=2", bracket(addr)),
            Proto::Udp => format!("UDP{fam}:{}:{port}", bracket(addr)),
        };
        let socat: [&str; 4] = ["socat", "-T2", "-", &target];
        let full: Vec<std::ffi::OsString> = match ns {
            Some(ns) => ns_argv(ns, &socat),
            None => socat.iter().map(Into::into).collect(),
        };
        let mut child = Command::new(&full[0])
            .args(&full[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start socat client");
        // Keep stdin open until the reply arrives (socat -T2 ends the session when idle).
        let mut stdin = child.stdin.take().expect("socat stdin");
        let _ = stdin.write_all(b"ping\n");
        let out = child.wait_with_output().expect("socat client output");
        drop(stdin);
        // Normalise socat's spelling: "[2001:db8::10]" and IPv4-mapped "::ffff:192.0.2.10".
        let text = String::from_utf8_lossy(&out.stdout);
        let text = text.trim().trim_start_matches('[').trim_end_matches(']');
        let text = match text.parse::<std::net::Ipv6Addr>() {
            Ok(v6) => v6
                .to_ipv4_mapped()
                .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
            Err(_) => text.to_owned(),
        };
        (!text.is_empty()).then_some(text)
    }

    /// A file path inside the sandbox's scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Writes a file in the scratch directory and returns its path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create scratch subdirectory");
        }
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

/// Transport protocol for [`Sandbox::listen`] and [`Sandbox::probe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// socat wants IPv6 literals in brackets.
fn bracket(addr: &str) -> String {
    if addr.contains(':') && !addr.starts_with('[') {
        format!("[{addr}]")
    } else {
        addr.to_owned()
    }
}

fn ns_argv<S: AsRef<OsStr>>(ns: &str, argv: &[S]) -> Vec<std::ffi::OsString> {
    let mut full: Vec<std::ffi::OsString> =
        vec!["ip".into(), "netns".into(), "exec".into(), ns.into()];
    full.extend(argv.iter().map(|a| a.as_ref().to_owned()));
    full
}

fn show_argv<S: AsRef<OsStr>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A background process owned by a test; killed and reaped on drop.
#[derive(Debug)]
pub struct Background {
    child: Child,
}

impl Background {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

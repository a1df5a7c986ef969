//! Real-runtime test: containerd 1.6 (Debian's `containerd`, with `ctr`) runs containers with
//! `ctr run --cni`, and netctl is its CNI plugin (a link `/opt/cni/bin/netctl`, a conflist with
//! `"type": "netctl"`). Nothing here calls netctl's CNI mode directly except GC, which
//! containerd 1.6 does not send.
//!
//! Isolation from the machine: containerd runs inside the privileged sandbox with a private
//! config (CRI off; root, state and socket in the sandbox's scratch tmpfs) and private tmpfs
//! mounts over the paths CNI hard-codes (`/etc/cni/net.d`, `/opt`, `/var/lib` for libcni's result
//! cache) and over `/run/containerd` (the shim's sockets). The image is a busybox OCI layout
//! built offline with umoci and imported with `ctr images import`; nothing is pulled.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use netctl_testkit::{Background, Sandbox, sandbox_test};
use netctl_tests::sandboxed::{host_veths, ok, recorded_containers};
use netctl_tests::{describe, netctl_bin};
use serde_json::{Value, json};

const CONFLIST: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "ctrnet",
  "plugins": [
    {
      "type": "netctl",
      "network": { "subnets": [{ "subnet": "10.97.0.0/24" }], "bridge": "nc-ctr" },
      "capabilities": { "portMappings": true }
    }
  ]
}"#;

fn private_tmpfs(sb: &Sandbox, dir: &str) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {dir}: {e}"));
    sb.run(&["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", dir]);
}

/// A containerd of the test's own, and `ctr` talking to it.
struct Containerd {
    socket: PathBuf,
    runc_root: PathBuf,
    _daemon: Background,
}

impl Containerd {
    fn start(sb: &Sandbox) -> Containerd {
        for dir in ["/etc/cni/net.d", "/opt", "/var/lib", "/run/containerd"] {
            private_tmpfs(sb, dir);
        }
        let dir = sb.path("containerd");
        let socket = dir.join("c.sock");
        let config = sb.write_file(
            "containerd/config.toml",
            &format!(
                "version = 2\n\
                 root = \"{root}\"\n\
                 state = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n\
                 address = \"{sock}\"\n\
                 [ttrpc]\n\
                 address = \"{sock}.ttrpc\"\n\
                 [debug]\n\
                 address = \"\"\n\
                 [metrics]\n\
                 address = \"\"\n",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                sock = socket.display(),
            ),
        );
        let daemon = sb.spawn(
            None,
            &[
                "containerd",
                "--config",
                config.to_str().unwrap(),
                "--log-level",
                "warn",
            ],
        );
        let ctr = Containerd {
            socket,
            runc_root: dir.join("runc"),
            _daemon: daemon,
        };
        assert!(
            sb.wait_for(Duration::from_secs(20), || ctr
                .output(&["version"])
                .status
                .success()),
            "containerd did not come up: {}",
            describe(&ctr.output(&["version"]))
        );
        ctr
    }

    fn output(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(args)
            // ctr calls the CNI plugins itself: netctl inherits this and ignores host config.
            .env("NETCTL_CONFIG", "/nonexistent/netctl.toml")
            .stdin(Stdio::null())
            .output()
            .expect("run ctr")
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(out.status.success(), "ctr {args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ctr run` flags every container here gets: CNI, runc's state in the scratch dir, no
    /// cgroup of its own (nothing left in the machine's cgroup tree).
    fn run_flags(&self) -> Vec<String> {
        vec![
            "run".into(),
            "--cni".into(),
            format!("--runc-root={}", self.runc_root.display()),
            "--cgroup=".into(),
        ]
    }
}

/// A busybox OCI image, built offline with umoci, as a tar `ctr images import` takes.
fn busybox_image(sb: &Sandbox) -> PathBuf {
    let layout = sb.path("image/layout");
    let bundle = sb.path("image/bundle");
    let l = layout.to_str().unwrap();
    let tagged = format!("{l}:latest");
    sb.run(&["umoci", "init", "--layout", l]);
    sb.run(&["umoci", "new", "--image", &tagged]);
    sb.run(&[
        "umoci",
        "unpack",
        "--image",
        &tagged,
        bundle.to_str().unwrap(),
    ]);
    let rootfs = bundle.join("rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    let busybox = sb.run(&["sh", "-c", "command -v busybox"]);
    std::fs::copy(busybox.trim(), rootfs.join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "ip", "ping", "sleep", "cat", "grep"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    sb.run(&[
        "umoci",
        "repack",
        "--image",
        &tagged,
        bundle.to_str().unwrap(),
    ]);
    sb.run(&[
        "umoci",
        "config",
        "--image",
        &tagged,
        "--config.cmd",
        "/bin/sh",
        "--config.env",
        "PATH=/bin",
    ]);
    let tar = sb.path("image/bb-oci.tar");
    sb.run(&["tar", "-C", l, "-cf", tar.to_str().unwrap(), "."]);
    tar
}

/// How many addresses netctl has leased.
fn leases() -> usize {
    let show: Value = serde_json::from_str(&ok(&["-o", "json", "show"])).expect("show JSON");
    show["leases"].as_array().map_or(0, Vec::len)
}

sandbox_test! {
    /// `ctr run --cni --rm`: the container sees eth0 with an address of netctl's network and
    /// pings its gateway; afterwards no veth, lease, element or record is left. `ctr run -d`
    /// then kill + rm sends no DEL: the record stays until GC releases it.
    fn containerd_runs_containers_on_netctl(sb) {
        let bin_dir = Path::new("/opt/cni/bin");
        let ctr = Containerd::start(sb);
        std::fs::create_dir_all(bin_dir).unwrap();
        std::os::unix::fs::symlink(netctl_bin(), bin_dir.join("netctl")).expect("link the plugin");
        std::fs::write("/etc/cni/net.d/10-netctl.conflist", CONFLIST).unwrap();
        let tar = busybox_image(sb);
        ctr.run(&["images", "import", "--base-name", "localhost/bb", tar.to_str().unwrap()]);

        let mut args = ctr.run_flags();
        args.extend(["--rm".into(), "localhost/bb:latest".into(), "t1".into(), "sh".into(), "-c".into(),
            "ip -o -4 addr show dev eth0 && ping -c1 -W3 10.97.0.1".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let out = ctr.run(&args);
        eprintln!("ctr run --cni --rm took {:?}", started.elapsed());
        assert!(out.contains("eth0") && out.contains("inet 10.97.0."), "{out}");
        assert!(out.contains("1 packets received"), "the gateway did not answer: {out}");
        assert!(recorded_containers().is_empty(), "records left: {:?}", recorded_containers());
        assert!(host_veths(sb).is_empty(), "veths left: {:?}", host_veths(sb));
        assert_eq!(leases(), 0, "leases left");

        // Detached, then killed and removed: containerd 1.6 sends no DEL.
        let mut args = ctr.run_flags();
        args.extend(["-d".into(), "localhost/bb:latest".into(), "t2".into(), "sleep".into(), "1000".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ctr.run(&args);
        assert_eq!(recorded_containers(), BTreeSet::from(["default-t2".to_owned()]), "ctr's CNI_CONTAINERID is NAMESPACE-ID");
        assert_eq!(host_veths(sb).len(), 1);
        assert_eq!(leases(), 1);
        ctr.run(&["task", "kill", "-s", "SIGKILL", "t2"]);
        assert!(sb.wait_for(Duration::from_secs(10), || {
            ctr.run(&["task", "ls"]).lines().any(|l| l.starts_with("t2") && l.contains("STOPPED"))
        }));
        ctr.run(&["task", "rm", "t2"]);
        ctr.run(&["containers", "rm", "t2"]);
        assert_eq!(recorded_containers(), BTreeSet::from(["default-t2".to_owned()]), "no DEL came, so the record stays");

        // GC, as a 1.1 runtime would send it, with no valid attachments left.
        let mut gc = Command::new(netctl_bin())
            .env("NETCTL_CONFIG", "/nonexistent/netctl.toml")
            .env("CNI_COMMAND", "GC")
            .env("CNI_PATH", "/opt/cni/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run netctl");
        {
            use std::io::Write as _;
            let mut conf: Value = serde_json::from_str(CONFLIST).unwrap();
            let mut plugin = conf["plugins"][0].take();
            plugin["cniVersion"] = json!("1.1.0");
            plugin["name"] = conf["name"].take();
            plugin["cni.dev/valid-attachments"] = json!([]);
            gc.stdin.take().unwrap().write_all(plugin.to_string().as_bytes()).unwrap();
        }
        let out = gc.wait_with_output().unwrap();
        assert!(out.status.success(), "GC: {}", describe(&out));
        assert!(recorded_containers().is_empty());
        assert!(host_veths(sb).is_empty());
        assert_eq!(leases(), 0, "leases left");
    }
}

//! Container names by DNS with Debian's real aardvark-dns, driven by netctl, observed with
//! `dig` from inside container namespaces. Upstream resolvers are fakes inside the sandbox
//! (loopback addresses of the sandbox's own namespace, each answering every A query with its
//! own address in 192.0.2.0/24), so forwarding order is visible and nothing leaves the machine.
//! Only built with `--features privileged`.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use netctl_testkit::{Sandbox, live_processes, sandbox_test};
use netctl_tests::sandboxed::{fails, ok, plan_code};

const DNS: &str = r#"
[networks.dnsa]
bridge = "nc-dnsa"
subnets = [{ subnet = "10.89.31.0/24" }]
dns_servers = ["127.0.0.3"]

[networks.dnsb]
bridge = "nc-dnsb"
subnets = [{ subnet = "10.89.32.0/24" }]

[networks.plain]
bridge = "nc-plain"
subnets = [{ subnet = "10.89.33.0/24" }]
dns = false

[containers.web]
networks.dnsa = { ip = "10.89.31.10", aliases = ["www", "Api"] }

[containers.db]
networks.dnsb = { ip = "10.89.32.10", aliases = ["database"] }

[containers.both]
networks.dnsa = { ip = "10.89.31.20" }
networks.dnsb = { ip = "10.89.32.20" }
dns_servers = ["127.0.0.4"]

[containers.lone]
networks.plain = { ip = "10.89.33.10" }
"#;

const DIR: &str = "/run/netctl/aardvark-dns";

/// A fake upstream on `127.0.0.N:53`: every A question gets `192.0.2.N`.
fn fake_upstream(n: u8) {
    let sock =
        UdpSocket::bind(("127.0.0.".to_owned() + &n.to_string(), 53)).expect("bind fake upstream");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        loop {
            let Ok((len, from)) = sock.recv_from(&mut buf) else {
                return;
            };
            let q = &buf[..len];
            if len < 12 {
                continue;
            }
            // The question ends after its name (a zero byte) and type + class.
            let Some(end) = q[12..].iter().position(|b| *b == 0).map(|p| 12 + p + 5) else {
                continue;
            };
            let qtype = u16::from_be_bytes([q[end - 4], q[end - 3]]);
            let mut r = Vec::from(&q[..end]);
            r[2] = 0x81;
            r[3] = 0x80;
            r[6] = 0;
            r[7] = u8::from(qtype == 1);
            r[8..12].fill(0);
            if qtype == 1 {
                r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, n]);
            }
            let _ = sock.send_to(&r, from);
        }
    });
}

/// A sandbox with the fake upstreams and a resolv.conf naming the "host's" one (127.0.0.2).
fn set_up(sb: &Sandbox) -> String {
    for n in [2, 3, 4] {
        sb.run(&["ip", "addr", "add", &format!("127.0.0.{n}/8"), "dev", "lo"]);
        fake_upstream(n);
    }
    let resolv = sb.write_file(
        "host-resolv.conf",
        "nameserver 127.0.0.2\nsearch example.test\n",
    );
    sb.run(&[
        "mount",
        "--bind",
        resolv.to_str().unwrap(),
        "/etc/resolv.conf",
    ]);
    sb.write_file("dns.toml", DNS).display().to_string()
}

/// `dig` from container `ns` at `server`: (status, answers).
fn dig(sb: &Sandbox, ns: &str, server: &str, args: &[&str]) -> (String, Vec<String>) {
    let mut argv = vec![
        "dig",
        "+time=1",
        "+tries=1",
        "+nocookie",
        &format!("@{server}"),
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    // No reply at all is an answer here too (dig then exits 9).
    let out = String::from_utf8_lossy(&sb.ns_output(ns, &argv).stdout).into_owned();
    let status = out
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO ANSWER")
        .to_owned();
    let answers = out
        .split(";; ANSWER SECTION:\n")
        .nth(1)
        .map(|s| {
            s.lines()
                .take_while(|l| !l.is_empty())
                .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (status, answers)
}

fn a(sb: &Sandbox, ns: &str, server: &str, name: &str) -> Vec<String> {
    dig(sb, ns, server, &[name, "A"]).1
}

fn aardvark_pid() -> u32 {
    let pids = live_processes(&["aardvark-dns"]);
    assert_eq!(pids.len(), 1, "one aardvark-dns: {pids:?}");
    pids[0]
}

sandbox_test! {
    /// Names, aliases and `.dns.podman`, case-insensitive; scoping by network; forwarding
    /// (container > network > host); PTR; resolv.conf; a converged re-apply touches nothing.
    fn names_resolve_within_their_networks(sb) {
        let file = set_up(sb);
        let out = ok(&["apply", "-f", &file]);
        assert!(out.contains("Apply complete"), "{out}");
        let pid = aardvark_pid();
        let (gwa, gwb) = ("10.89.31.1", "10.89.32.1");

        assert_eq!(a(sb, "web", gwa, "web"), ["10.89.31.10"]);
        assert_eq!(a(sb, "web", gwa, "www"), ["10.89.31.10"]);
        assert_eq!(a(sb, "web", gwa, "API"), ["10.89.31.10"]);
        assert_eq!(a(sb, "web", gwa, "api.dns.podman"), ["10.89.31.10"]);
        assert_eq!(a(sb, "web", gwa, "both"), ["10.89.31.20"]);
        assert_eq!(a(sb, "db", gwb, "database.dns.podman"), ["10.89.32.10"]);
        // Scoping: web is not on dnsb, so db is unknown to it, through either gateway.
        assert_eq!(dig(sb, "web", gwa, &["db.dns.podman", "A"]).0, "NXDOMAIN");
        // A container on both networks sees both.
        assert_eq!(a(sb, "both", gwa, "db"), ["10.89.32.10"]);
        assert_eq!(a(sb, "both", gwb, "web"), ["10.89.31.10"]);
        // Forwarding: container servers, else the network's, else the host's.
        assert_eq!(a(sb, "both", gwa, "example.test"), ["192.0.2.4"]);
        assert_eq!(a(sb, "web", gwa, "example.test"), ["192.0.2.3"]);
        assert_eq!(a(sb, "db", gwb, "example.test"), ["192.0.2.2"]);
        // PTR for container addresses.
        let ptr = dig(sb, "web", gwa, &["-x", "10.89.31.10"]).1;
        assert!(ptr.iter().any(|n| n.starts_with("web")), "{ptr:?}");
        // resolv.conf: the DNS gateways first, dns.podman searched; none on the plain network.
        let resolv = std::fs::read_to_string("/etc/netns/both/resolv.conf").unwrap();
        assert!(resolv.contains("search dns.podman"), "{resolv}");
        let servers: Vec<&str> = resolv.lines().filter_map(|l| l.strip_prefix("nameserver ")).collect();
        assert_eq!(servers[..3], [gwa, gwb, "127.0.0.4"], "{resolv}");
        let lone = std::fs::read_to_string("/etc/netns/lone/resolv.conf").unwrap();
        assert!(!lone.contains("10.89.33.1") && !lone.contains("dns.podman"), "{lone}");
        assert!(!std::path::Path::new(&format!("{DIR}/plain")).exists());
        // The plain network has no listener.
        assert_eq!(dig(sb, "lone", "10.89.33.1", &["lone", "A"]).0, "NO ANSWER");

        // Converged: no write, no signal, same process.
        let meta = std::fs::metadata(format!("{DIR}/dnsa")).unwrap().modified().unwrap();
        let again = ok(&["apply", "-f", &file]);
        assert!(again.contains("No changes"), "{again}");
        assert_eq!(plan_code(&file).0, 0);
        assert_eq!(aardvark_pid(), pid);
        assert_eq!(std::fs::metadata(format!("{DIR}/dnsa")).unwrap().modified().unwrap(), meta);

        let out = ok(&["destroy", "--all"]);
        assert!(out.contains("Destroy complete"), "{out}");
        assert!(live_processes(&["aardvark-dns"]).is_empty(), "destroy stops aardvark-dns");
        let left: Vec<_> = std::fs::read_dir(DIR).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
    }
}

sandbox_test! {
    /// connect and disconnect change names at once, without a new aardvark-dns.
    fn connect_and_disconnect_without_restart(sb) {
        let file = set_up(sb);
        ok(&["apply", "-f", &file]);
        let pid = aardvark_pid();
        assert_eq!(dig(sb, "web", "10.89.31.1", &["db.dns.podman", "A"]).0, "NXDOMAIN");
        ok(&["connect", "--alias", "late", "dnsb", "web"]);
        let returned = Instant::now();
        // Answered by the first query after the command returns.
        assert_eq!(a(sb, "web", "10.89.31.1", "db"), ["10.89.32.10"]);
        // db now sees web by its name and the alias given at connect.
        let web_b = a(sb, "db", "10.89.32.1", "web");
        assert_eq!(web_b.len(), 1, "{web_b:?}");
        assert!(web_b[0].starts_with("10.89.32."), "{web_b:?}");
        assert_eq!(a(sb, "db", "10.89.32.1", "late"), web_b);
        assert!(returned.elapsed() < Duration::from_secs(2));
        assert_eq!(aardvark_pid(), pid, "connect reloads, never restarts");
        ok(&["disconnect", "dnsb", "web"]);
        assert_eq!(dig(sb, "db", "10.89.32.1", &["late.dns.podman", "A"]).0, "NXDOMAIN");
        assert_eq!(dig(sb, "web", "10.89.31.1", &["db.dns.podman", "A"]).0, "NXDOMAIN");
        assert_eq!(aardvark_pid(), pid);
        ok(&["destroy", "--all"]);
        assert!(live_processes(&["aardvark-dns"]).is_empty());
    }
}

sandbox_test! {
    /// aardvark-dns killed, a network file edited: plan names it (exit 2), apply repairs it.
    fn drift_is_planned_and_repaired(sb) {
        let file = set_up(sb);
        ok(&["apply", "-f", &file]);
        let pid = aardvark_pid();
        sb.run(&["kill", "-9", &pid.to_string()]);
        assert!(sb.wait_for(Duration::from_secs(2), || live_processes(&["aardvark-dns"]).is_empty()));
        let (code, plan) = plan_code(&file);
        assert_eq!(code, 2, "{plan}");
        assert!(plan.contains("aardvark-dns is not running"), "{plan}");
        ok(&["apply", "-f", &file]);
        assert_ne!(aardvark_pid(), pid);
        assert_eq!(a(sb, "web", "10.89.31.1", "www"), ["10.89.31.10"]);

        std::fs::write(format!("{DIR}/dnsb"), "10.89.32.1\n").unwrap();
        let (code, plan) = plan_code(&file);
        assert_eq!(code, 2, "{plan}");
        assert!(plan.contains("aardvark-dns/dnsb is missing or differs"), "{plan}");
        ok(&["apply", "-f", &file]);
        assert_eq!(plan_code(&file).0, 0);
        assert_eq!(a(sb, "db", "10.89.32.1", "db"), ["10.89.32.10"]);
        ok(&["destroy", "--all"]);
        assert!(live_processes(&["aardvark-dns"]).is_empty());
    }
}

sandbox_test! {
    /// Names that are not DNS names and DNS loops are refused, all at once, before anything.
    fn bad_dns_input_is_refused(sb) {
        let file = sb.write_file("bad.toml", r#"
[networks.n]
subnets = [{ subnet = "10.89.34.0/24" }]
dns_servers = ["10.89.34.1", "nope"]

[containers.c]
networks.n = { aliases = ["ok", "a..b"] }
dns_servers = ["10.89.34.1"]
"#).display().to_string();
        let out = fails(&["apply", "-f", &file]);
        assert!(out.contains("bad.toml:4:16") && out.contains("DNS loop"), "{out}");
        assert!(out.contains("bad.toml:4:30"), "{out}");
        assert!(out.contains("a..b"), "{out}");
        assert!(out.contains("bad.toml:8:16"), "container upstream loop: {out}");
        assert!(live_processes(&["aardvark-dns"]).is_empty());
        assert!(!std::path::Path::new("/run/netns/c").exists());
    }
}

sandbox_test! {
    /// Without aardvark-dns: an explicit `dns = true` fails before anything changes; a network
    /// that only defaults to DNS gets a warning and no DNS.
    fn missing_aardvark_binary(sb) {
        let explicit = sb.write_file("explicit.toml", r#"
[networks.on]
bridge = "nc-on"
subnets = [{ subnet = "10.89.35.0/24" }]
dns = true

[containers.x]
networks.on = {}
"#).display().to_string();
        let out = fails(&["--aardvark-binary", "", "apply", "-f", &explicit]);
        assert!(out.contains("dns = true") && out.contains("no aardvark-dns"), "{out}");
        assert!(!std::path::Path::new("/run/netns/x").exists(), "nothing was changed");
        assert!(!sb.run(&["ip", "-o", "link"]).contains("nc-on"));

        let default = sb.write_file("default.toml", r#"
[networks.def]
bridge = "nc-def"
subnets = [{ subnet = "10.89.36.0/24" }]

[containers.y]
networks.def = {}
"#).display().to_string();
        let out = netctl_tests::sandboxed::netctl(&["--aardvark-binary", "", "apply", "-f", &default]);
        assert!(out.status.success(), "{}", netctl_tests::describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("serves no DNS"), "{stderr}");
        assert!(live_processes(&["aardvark-dns"]).is_empty());
        let resolv = std::fs::read_to_string("/etc/netns/y/resolv.conf").unwrap();
        assert!(!resolv.contains("10.89.36.1") && !resolv.contains("dns.podman"), "{resolv}");
        ok(&["--aardvark-binary", "", "destroy", "--all"]);
    }
}

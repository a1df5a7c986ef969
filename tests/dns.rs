//! Container names by DNS with Debian's real aardvark-dns, driven by netctl, observed with
//! `dig` from inside container namespaces. Upstream resolvers are fakes inside the sandbox
//! (loopback addresses of the sandbox's own namespace, each answering every A query with its
//! own address in 192.0.2.0/24), so forwarding order is visible and nothing leaves the machine.
//! Only built with `--features privileged`.

use std::net::UdpSocket;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use netctl_testkit::{Sandbox, live_processes, sandbox_test};
use netctl_tests::sandboxed::{fails, ok, plan_code};
use netctl_tests::{describe, netctl_bin};

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

/// netavark's config directory in the netavark-mode tests, and aardvark-dns's under it.
const NV: &str = "/run/netctl-sandbox/nvdns";
const NV_DIR: &str = "/run/netctl-sandbox/nvdns/aardvark-dns";

/// Debian's aardvark-dns, where podman's package puts it.
fn aardvark_binary() -> &'static str {
    [
        "/usr/libexec/podman/aardvark-dns",
        "/usr/lib/podman/aardvark-dns",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).is_file())
    .expect("aardvark-dns is installed (cargo xtask deps)")
}

/// A podman network definition as podman 4.3 sends it.
fn podman_network(name: &str, id: char, bridge: &str, subnet: &str, dns: bool) -> Value {
    let gateway = subnet.replace(".0/24", ".1");
    json!({
        "name": name, "id": id.to_string().repeat(64), "driver": "bridge",
        "network_interface": bridge, "subnets": [{"subnet": subnet, "gateway": gateway}],
        "ipv6_enabled": false, "internal": false, "dns_enabled": dns,
        "ipam_options": {"driver": "host-local"}
    })
}

/// podman's NetworkOptions for container `name` (id: 64 × `id`) on `(network, ip, aliases)`;
/// podman appends the short id to the aliases.
fn podman_request(
    id: char,
    name: &str,
    nets: &[(&Value, &str, &[&str])],
    servers: &[&str],
) -> String {
    let id = id.to_string().repeat(64);
    let mut networks = serde_json::Map::new();
    let mut info = serde_json::Map::new();
    for (i, (net, ip, aliases)) in nets.iter().enumerate() {
        let net_name = net["name"].as_str().unwrap().to_owned();
        let mut aliases: Vec<String> = aliases.iter().map(|a| (*a).to_owned()).collect();
        aliases.push(id[..12].to_owned());
        networks.insert(
            net_name.clone(),
            json!({
                "interface_name": format!("eth{i}"), "static_ips": [ip], "aliases": aliases
            }),
        );
        info.insert(net_name, (*net).clone());
    }
    let mut req = json!({"container_id": id, "container_name": name, "networks": networks, "network_info": info});
    if !servers.is_empty() {
        req["dns_servers"] = json!(servers);
    }
    req.to_string()
}

/// `netctl netavark --config NV [global...] -f REQ VERB /run/netns/NS`, with `env`.
fn nv(
    sb: &Sandbox,
    global: &[&str],
    env: &[(&str, &str)],
    verb: &str,
    ns: &str,
    req: &str,
) -> Output {
    let input = sb
        .write_file(&format!("{ns}-{verb}.json"), req)
        .display()
        .to_string();
    let path = format!("/run/netns/{ns}");
    let mut args = vec!["netavark", "--config", NV];
    args.extend_from_slice(global);
    args.extend_from_slice(&["-f", &input, verb, &path]);
    Command::new(netctl_bin())
        .args(&args)
        .env("NETCTL_CONFIG", "/nonexistent/netctl.toml")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run netctl")
}

/// A setup that must succeed: its `{network: StatusBlock}`.
fn nv_setup(sb: &Sandbox, global: &[&str], ns: &str, req: &str) -> Value {
    let out = nv(sb, global, &[], "setup", ns, req);
    assert!(out.status.success(), "setup: {}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
}

/// `netavark --config NV update NET --network-dns-servers SERVERS...`.
fn nv_update(net: &str, servers: &[&str]) -> Output {
    let mut args = vec![
        "netavark",
        "--config",
        NV,
        "--aardvark-binary",
        aardvark_binary(),
        "update",
        net,
        "--network-dns-servers",
    ];
    args.extend_from_slice(servers);
    netctl_tests::sandboxed::netctl(&args)
}

/// The `error` of netavark's one `{"error": ...}` answer (exit 1).
fn nv_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", describe(out));
    let err: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(out)));
    err["error"].as_str().expect("an error string").to_owned()
}

sandbox_test! {
    /// netavark mode, as podman 4.3 drives it: `dns_enabled` networks served by one aardvark-dns
    /// from netavark's `<--config>/aardvark-dns/` (netavark's file format), names = container
    /// name + aliases + short id, StatusBlock with the gateway and `dns.podman`, upstreams
    /// (container > network > host), `update --network-dns-servers` without a restart, and
    /// teardown taking the names away and finally the server and its files.
    fn netavark_dns_enabled_networks_serve_names(sb) {
        set_up(sb);
        let aardvark = ["--aardvark-binary", aardvark_binary()];
        let pdns = podman_network("pdns", 'a', "nc-pdns", "10.89.41.0/24", true);
        let pplain = podman_network("pplain", 'b', "nc-pplain", "10.89.42.0/24", false);
        let mut pdns_servers = pdns.clone();
        pdns_servers["network_dns_servers"] = json!(["127.0.0.3"]);
        sb.add_netns("c-web");
        sb.add_netns("c-db");
        let web = podman_request('e', "web", &[(&pdns_servers, "10.89.41.10", &["www"])], &[]);
        let db = podman_request('9', "db", &[(&pdns_servers, "10.89.41.11", &[]), (&pplain, "10.89.42.11", &[])], &["127.0.0.4"]);

        let status = nv_setup(sb, &aardvark, "c-web", &web);
        assert_eq!(status["pdns"]["dns_server_ips"], json!(["10.89.41.1"]), "{status}");
        assert_eq!(status["pdns"]["dns_search_domains"], json!(["dns.podman"]), "{status}");
        let pid = aardvark_pid();
        let status = nv_setup(sb, &aardvark, "c-db", &db);
        assert_eq!(status["pdns"]["dns_server_ips"], json!(["10.89.41.1"]), "{status}");
        assert_eq!(status["pplain"]["dns_server_ips"], json!([]), "no DNS on pplain: {status}");
        assert_eq!(aardvark_pid(), pid, "the second container reloads the same server");

        // netavark's files: one per DNS network, sorted by container id (the name, then the
        // aliases as recorded: sorted); its lock beside them.
        let (w, d) = ("e".repeat(64), "9".repeat(64));
        assert_eq!(
            std::fs::read_to_string(format!("{NV_DIR}/pdns")).unwrap(),
            format!("10.89.41.1 127.0.0.3\n{d} 10.89.41.11  db,{} 127.0.0.4\n{w} 10.89.41.10  web,{},www\n", &d[..12], &w[..12])
        );
        assert!(!std::path::Path::new(&format!("{NV_DIR}/pplain")).exists());
        assert!(std::path::Path::new(&format!("{NV}/aardvark.lock")).exists());
        assert!(!std::path::Path::new(DIR).join("pdns").exists(), "not in netctl's own directory");

        let gw = "10.89.41.1";
        for name in ["web", "www", "WWW", "www.dns.podman", &w[..12]] {
            assert_eq!(a(sb, "c-db", gw, name), ["10.89.41.10"], "{name}");
        }
        assert_eq!(a(sb, "c-web", gw, "db"), ["10.89.41.11"]);
        assert_eq!(a(sb, "c-web", gw, &d[..12]), ["10.89.41.11"]);
        // Upstreams: the container's own (db), else the network's (web).
        assert_eq!(a(sb, "c-db", gw, "example.test"), ["192.0.2.4"]);
        assert_eq!(a(sb, "c-web", gw, "example.test"), ["192.0.2.3"]);
        // pplain has no server.
        assert_eq!(dig(sb, "c-db", "10.89.42.1", &["web", "A"]).0, "NO ANSWER");

        // update: the network's upstreams change at once, same server.
        let out = nv_update("pdns", &["127.0.0.2"]);
        assert!(out.status.success(), "{}", describe(&out));
        assert_eq!(a(sb, "c-web", gw, "example.test"), ["192.0.2.2"]);
        assert_eq!(aardvark_pid(), pid);
        assert!(std::fs::read_to_string(format!("{NV_DIR}/pdns")).unwrap().starts_with("10.89.41.1 127.0.0.2\n"));
        // A loop and a non-address are refused, changing nothing.
        assert!(nv_error(&nv_update("pdns", &["10.89.41.1"])).contains("DNS loop"));
        assert!(nv_error(&nv_update("pdns", &["nope"])).contains("nope"));
        // "" clears them: the host's servers again.
        let out = nv_update("pdns", &[""]);
        assert!(out.status.success(), "{}", describe(&out));
        assert!(std::fs::read_to_string(format!("{NV_DIR}/pdns")).unwrap().starts_with("10.89.41.1\n"));

        // teardown: web's names go at once; the last container takes the server and files.
        let out = nv(sb, &aardvark, &[], "teardown", "c-web", &web);
        assert!(out.status.success(), "teardown: {}", describe(&out));
        assert_eq!(dig(sb, "c-db", gw, &["web.dns.podman", "A"]).0, "NXDOMAIN");
        assert_eq!(dig(sb, "c-db", gw, &["www.dns.podman", "A"]).0, "NXDOMAIN");
        assert_eq!(a(sb, "c-db", gw, "db"), ["10.89.41.11"]);
        assert_eq!(aardvark_pid(), pid);
        let out = nv(sb, &aardvark, &[], "teardown", "c-db", &db);
        assert!(out.status.success(), "teardown: {}", describe(&out));
        assert!(live_processes(&["aardvark-dns"]).is_empty(), "the last teardown stops aardvark-dns");
        let left: Vec<_> = std::fs::read_dir(NV_DIR).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
    }
}

sandbox_test! {
    /// Without aardvark-dns (podman's empty `--aardvark-binary=`, or a path to nothing) a DNS
    /// network is set up without DNS: a warning, no server, and a StatusBlock without servers,
    /// so podman gives the container the host's servers rather than a dead gateway. What cannot
    /// be served (a name that is no DNS name) is refused first.
    fn netavark_dns_refusals_and_missing_aardvark(sb) {
        set_up(sb);
        let pdns = podman_network("pnoaa", 'c', "nc-pnoaa", "10.89.43.0/24", true);
        sb.add_netns("c-x");
        let req = podman_request('d', "x", &[(&pdns, "10.89.43.10", &["ex"])], &[]);

        let bad = podman_request('d', "x", &[(&pdns, "10.89.43.10", &["bad,alias"])], &[]);
        let out = nv(sb, &["--aardvark-binary", aardvark_binary()], &[], "setup", "c-x", &bad);
        assert!(nv_error(&out).contains("bad,alias"), "{}", describe(&out));
        assert!(!sb.run(&["ip", "-o", "link"]).contains("nc-pnoaa"), "nothing was changed");
        assert!(live_processes(&["aardvark-dns"]).is_empty());

        for binary in ["--aardvark-binary=", "--aardvark-binary=/nonexistent/aardvark-dns"] {
            let out = nv(sb, &[binary], &[], "setup", "c-x", &req);
            assert!(out.status.success(), "{binary}: {}", describe(&out));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("serves no DNS"), "{binary}: {stderr}");
            let status: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(status["pnoaa"]["dns_server_ips"], json!([]), "{binary}: {status}");
            assert_eq!(status["pnoaa"]["dns_search_domains"], json!([]), "{binary}: {status}");
            assert!(live_processes(&["aardvark-dns"]).is_empty(), "{binary}");
            assert!(!std::path::Path::new(&format!("{NV_DIR}/pnoaa")).exists(), "{binary}");
            let out = nv(sb, &[binary], &[], "teardown", "c-x", &req);
            assert!(out.status.success(), "{binary}: {}", describe(&out));
        }
    }
}

/// The UDP addresses bound in the sandbox (`ss`), as `ADDR:PORT`.
fn udp_bound(sb: &Sandbox) -> Vec<String> {
    sb.run(&["ss", "-Hnlu"])
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
        .collect()
}

/// `nft list ruleset`.
fn ruleset(sb: &Sandbox) -> String {
    sb.run(&["nft", "list", "ruleset"])
}

sandbox_test! {
    /// `dns_port = 5353`: aardvark-dns listens on the gateways at 5353, containers still ask
    /// the gateway at 53 (resolv.conf) and netctl's table DNATs it; the DNAT comes back with
    /// `reload --all` after the ruleset was flushed, and names a `connect` adds are answered.
    fn dns_port_other_than_53_is_dnated_from_53(sb) {
        let file = set_up(sb);
        let port = ["--dns-port", "5353"];
        // First on 53; then dns_port changes: plan names it, apply moves the server and the
        // firewall follows.
        ok(&["apply", "-f", &file]);
        let gwa = "10.89.31.1";
        assert!(udp_bound(sb).contains(&format!("{gwa}:53")));
        assert!(!ruleset(sb).contains(" . udp . 53 : "), "no DNAT on port 53");
        let moved = netctl_tests::sandboxed::netctl(&[&port[..], &["plan", "--detailed-exitcode", "-f", &file]].concat());
        assert_eq!(moved.status.code(), Some(2), "{}", describe(&moved));
        assert!(String::from_utf8_lossy(&moved.stdout).contains("aardvark-dns listens on port 53, not dns_port 5353"), "{}", describe(&moved));
        let out = ok(&[&port[..], &["apply", "-f", &file]].concat());
        assert!(out.contains("Apply complete"), "{out}");
        assert_eq!(a(sb, "web", gwa, "www"), ["10.89.31.10"]);
        assert_eq!(a(sb, "web", gwa, "both"), ["10.89.31.20"]);
        let bound = udp_bound(sb);
        assert!(bound.contains(&format!("{gwa}:5353")), "{bound:?}");
        assert!(!bound.contains(&format!("{gwa}:53")), "{bound:?}");
        let resolv = std::fs::read_to_string("/etc/netns/web/resolv.conf").unwrap();
        assert!(resolv.contains(&format!("nameserver {gwa}\n")), "{resolv}");
        let rules = ruleset(sb);
        assert!(rules.contains("10.89.31.1 . udp . 53 : 5353"), "{rules}");
        assert!(rules.contains("10.89.31.1 . tcp . 53 : 5353"), "{rules}");
        assert!(rules.contains("10.89.32.1 . udp . 53 : 5353"), "{rules}");
        assert!(!rules.contains("10.89.33.1 . udp"), "no DNS on plain: {rules}");
        // TCP reaches it too (aardvark-dns 1.4 has no TCP listener: the DNAT is what is
        // checked, not an answer).
        assert!(rules.contains("dnat ip to ip daddr . meta l4proto . th dport map @dns4_addr"), "{rules}");
        let plan = |args: &[&str]| {
            netctl_tests::sandboxed::netctl(&[&port[..], &["plan", "--detailed-exitcode", "-f", &file], args].concat())
        };
        assert_eq!(plan(&[]).status.code(), Some(0), "converged");

        // A name added by connect is answered through the DNAT at once.
        ok(&[&port[..], &["connect", "--alias", "late", "dnsb", "web"]].concat());
        assert_eq!(a(sb, "db", "10.89.32.1", "late").len(), 1);

        sb.run(&["nft", "flush", "ruleset"]);
        assert_eq!(dig(sb, "web", gwa, &["www", "A"]).0, "NO ANSWER");
        let drift = plan(&[]);
        assert_eq!(drift.status.code(), Some(2), "the lost DNAT is drift: {}", describe(&drift));
        ok(&[&port[..], &["reload", "--all"]].concat());
        assert_eq!(a(sb, "web", gwa, "www"), ["10.89.31.10"]);
        assert!(ruleset(sb).contains("10.89.31.1 . udp . 53 : 5353"));
        ok(&[&port[..], &["destroy", "--all"]].concat());
        assert!(live_processes(&["aardvark-dns"]).is_empty());
    }
}

sandbox_test! {
    /// DNS from each DNS network's subnet to its gateway is accepted in netctl's input chain
    /// (netavark's `INPUT` rule); a network without DNS gets none.
    fn dns_networks_get_input_accepts(sb) {
        let file = set_up(sb);
        ok(&["apply", "-f", &file]);
        let set = sb.run(&["nft", "list", "set", "inet", "netctl", "dns_accept_v4"]);
        for net in ["31", "32"] {
            for proto in ["udp", "tcp"] {
                let element = format!("10.89.{net}.0/24 . 10.89.{net}.1 . {proto} . 53");
                assert!(set.contains(&element), "{element}: {set}");
            }
        }
        assert!(!set.contains("10.89.33."), "plain has no DNS: {set}");
        let input = sb.run(&["nft", "list", "chain", "inet", "netctl", "input"]);
        assert!(input.contains("hook input") && input.contains("policy accept"), "{input}");
        assert!(input.contains("@dns_accept_v4 accept"), "{input}");
        // Names still answer with the accepts there, and the DNAT map stays empty on port 53.
        assert_eq!(a(sb, "web", "10.89.31.1", "www"), ["10.89.31.10"]);
        let dnat = sb.run(&["nft", "list", "map", "inet", "netctl", "dns4_port"]);
        assert!(!dnat.contains("elements"), "{dnat}");
        ok(&["destroy", "--all"]);
    }
}

sandbox_test! {
    /// netavark mode with `NETAVARK_DNS_PORT=5353`, as podman's `dns_bind_port` sends it:
    /// aardvark-dns on 5353, containers answered at the gateway's port 53 through the DNAT,
    /// which `firewall-reload` restores after a flush.
    fn netavark_dns_port_is_dnated_from_53(sb) {
        set_up(sb);
        let aardvark = ["--aardvark-binary", aardvark_binary()];
        let env = [("NETAVARK_DNS_PORT", "5353")];
        let pdns = podman_network("pport", 'a', "nc-pport", "10.89.44.0/24", true);
        sb.add_netns("c-web");
        sb.add_netns("c-db");
        let web = podman_request('e', "web", &[(&pdns, "10.89.44.10", &["www"])], &[]);
        let db = podman_request('9', "db", &[(&pdns, "10.89.44.11", &[])], &[]);
        for (ns, req) in [("c-web", &web), ("c-db", &db)] {
            let out = nv(sb, &aardvark, &env, "setup", ns, req);
            assert!(out.status.success(), "setup: {}", describe(&out));
            let status: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(status["pport"]["dns_server_ips"], json!(["10.89.44.1"]), "{status}");
        }
        let gw = "10.89.44.1";
        assert_eq!(a(sb, "c-db", gw, "www"), ["10.89.44.10"]);
        assert_eq!(a(sb, "c-web", gw, "db"), ["10.89.44.11"]);
        let bound = udp_bound(sb);
        assert!(bound.contains(&format!("{gw}:5353")) && !bound.contains(&format!("{gw}:53")), "{bound:?}");
        assert!(ruleset(sb).contains("10.89.44.1 . udp . 53 : 5353"));

        sb.run(&["nft", "flush", "ruleset"]);
        assert_eq!(dig(sb, "c-web", gw, &["db", "A"]).0, "NO ANSWER");
        let mut args = vec!["netavark", "--config", NV];
        args.extend_from_slice(&aardvark);
        args.push("firewall-reload");
        let out = Command::new(netctl_bin())
            .args(&args)
            .env("NETCTL_CONFIG", "/nonexistent/netctl.toml")
            .envs(env)
            .output()
            .expect("run netctl");
        assert!(out.status.success(), "firewall-reload: {}", describe(&out));
        assert_eq!(a(sb, "c-web", gw, "db"), ["10.89.44.11"]);
        for (ns, req) in [("c-web", &web), ("c-db", &db)] {
            let out = nv(sb, &aardvark, &env, "teardown", ns, req);
            assert!(out.status.success(), "teardown: {}", describe(&out));
        }
        assert!(live_processes(&["aardvark-dns"]).is_empty());
        assert!(!ruleset(sb).contains(" . udp . 53 : 5353"), "the DNAT goes with the server");
    }
}

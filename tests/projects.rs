//! What a new user hits first with more than one file: interface order, conflicts found at plan
//! time (with the host, with other projects, with listening sockets) and projects that keep
//! their hands off each other's networks and containers. Privileged: each test runs in its own
//! sandbox (see `netctl-testkit`), whose uplink holds 192.0.2.10/24.

use netctl_testkit::{Proto, Sandbox, sandbox_test};
use netctl_tests::describe;
use netctl_tests::sandboxed::{fails, netctl, ok, plan_code};

fn write(sb: &Sandbox, name: &str, text: &str) -> String {
    sb.write_file(name, text).display().to_string()
}

/// The container's default routes, as `(device, metric)`, lowest metric first.
fn default_routes(sb: &Sandbox, ns: &str) -> Vec<(String, u32)> {
    let text = sb.ns_run(ns, &["ip", "-4", "route", "show", "default"]);
    let mut routes: Vec<(String, u32)> = text
        .lines()
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let after = |key: &str| {
                let i = words.iter().position(|w| *w == key).expect(key);
                words[i + 1].to_owned()
            };
            (after("dev"), after("metric").parse().unwrap())
        })
        .collect();
    routes.sort_by_key(|(_, metric)| *metric);
    routes
}

fn ipv4_of(sb: &Sandbox, ns: &str, dev: &str) -> String {
    sb.ns_run(ns, &["ip", "-o", "-4", "addr", "show", "dev", dev])
}

sandbox_test! {
    /// Networks join in the order the file gives them, not alphabetically: the first is eth0
    /// with the lowest default-route metric, a custom interface name takes the next metric (it
    /// used to clash with eth0's "File exists"), and adding a network later keeps what exists.
    fn interfaces_and_metrics_follow_the_files_order(sb) {
        let two = "[networks.front]\nbridge = \"nc-front\"\nsubnets = [{ subnet = \"10.90.1.0/24\" }]\n\n\
                   [networks.data]\nbridge = \"nc-data\"\nsubnets = [{ subnet = \"10.90.2.0/24\" }]\n\n\
                   [containers.ord]\nnetworks.front = {}\nnetworks.data = { interface = \"back0\" }\n";
        let file = write(sb, "ord.toml", two);
        ok(&["apply", "-f", &file]);
        assert!(ipv4_of(sb, "ord", "eth0").contains("10.90.1."), "front is eth0");
        assert!(ipv4_of(sb, "ord", "back0").contains("10.90.2."));
        assert_eq!(
            default_routes(sb, "ord"),
            vec![("eth0".to_owned(), 100), ("back0".to_owned(), 101)]
        );
        assert_eq!(plan_code(&file).0, 0, "stable on re-plan");

        // A third network listed first joins as the lowest free ethN with the next metric; the
        // existing interfaces and routes stay as they are.
        let three = two.replace(
            "[containers.ord]\n",
            "[networks.aaa]\nbridge = \"nc-aaa\"\nsubnets = [{ subnet = \"10.90.3.0/24\" }]\n\n[containers.ord]\nnetworks.aaa = {}\n",
        );
        let file = write(sb, "ord.toml", &three);
        ok(&["apply", "-f", &file]);
        assert!(ipv4_of(sb, "ord", "eth0").contains("10.90.1."), "eth0 kept");
        assert!(ipv4_of(sb, "ord", "eth1").contains("10.90.3."));
        assert_eq!(
            default_routes(sb, "ord"),
            vec![
                ("eth0".to_owned(), 100),
                ("back0".to_owned(), 101),
                ("eth1".to_owned(), 102)
            ]
        );
        assert_eq!(plan_code(&file).0, 0);
        ok(&["destroy", "--all"]);
    }
}

sandbox_test! {
    /// A subnet the host already uses (the uplink's 192.0.2.0/24) is refused at plan time,
    /// naming the address; nothing is created, and the host keeps its uplink address.
    fn a_subnet_used_on_the_host_is_refused_at_plan_time(sb) {
        let file = write(
            sb,
            "clash.toml",
            "[networks.clash]\nbridge = \"nc-clash\"\nsubnets = [{ subnet = \"192.0.2.0/24\" }]\n\n[containers.c1]\nnetworks.clash = {}\n",
        );
        let before = sb.dump();
        let plan = fails(&["plan", "-f", &file]);
        assert!(
            plan.contains("subnet 192.0.2.0/24 is already used on the host (address 192.0.2.10/24 on uplink0)"),
            "{plan}"
        );
        let apply = fails(&["apply", "-f", &file]);
        assert!(apply.contains("nothing was changed"), "{apply}");
        assert_eq!(before, sb.dump());
    }
}

sandbox_test! {
    /// Two files are two projects: each plans, prunes and destroys only its own; names, subnets
    /// and host ports another project holds are plan-time conflicts naming it; a network shared
    /// with `external = true` is used, never changed or deleted, by the project that borrows it.
    fn projects_keep_to_their_own(sb) {
        let infra = write(
            sb,
            "infra.toml",
            "[networks.shared]\nbridge = \"nc-shared\"\nsubnets = [{ subnet = \"10.90.10.0/24\" }]\n\n\
             [containers.proxy]\nnetworks.shared = {}\nports = [\"127.0.0.1:9601:80\"]\n",
        );
        ok(&["apply", "-f", &infra]);

        // Project "app" (from the file name) joins infra's network.
        let app_text = "[networks.shared]\nexternal = true\n\n[containers.app]\nnetworks.shared = {}\n";
        let app = write(sb, "app.toml", app_text);
        let plan = ok(&["plan", "-f", &app]);
        assert!(!plan.contains("proxy"), "another project's container is no orphan: {plan}");
        ok(&["apply", "-f", &app, "--prune"]);
        assert!(sb.ns_run("proxy", &["ip", "-o", "link"]).contains("eth0"), "prune left infra alone");
        let _server = sb.listen(Some("proxy"), Proto::Tcp, "0.0.0.0", 80);
        assert!(
            sb.probe(Some("app"), Proto::Tcp, "10.90.10.2", 80).is_some(),
            "app reaches proxy on the shared network"
        );
        assert_eq!(plan_code(&infra).0, 0, "infra sees no drift from app");

        // Conflicts with infra, each named, found by plan before anything changes.
        let clash = write(
            sb,
            "clash.toml",
            "[networks.shared]\nsubnets = [{ subnet = \"10.90.11.0/24\" }]\n\n\
             [networks.near]\nbridge = \"nc-near\"\nsubnets = [{ subnet = \"10.90.10.128/25\" }]\n\n\
             [containers.proxy]\nnetworks.near = {}\n\n\
             [containers.other]\nnetworks.near = {}\nports = [\"9601:8080\"]\n",
        );
        let before = sb.dump();
        let plan = fails(&["plan", "-f", &clash]);
        for expected in [
            "network shared: it belongs to project infra; to use it here, declare it with `external = true`",
            "container proxy: the name belongs to a container of project infra",
            "network near: subnet 10.90.10.128/25 overlaps subnet 10.90.10.0/24 of network shared (project infra)",
            "container other: host port 9601/tcp on all addresses is already published by container proxy (project infra) (9601/tcp on 127.0.0.1)",
        ] {
            assert!(plan.contains(expected), "missing {expected:?} in:\n{plan}");
        }
        fails(&["apply", "-f", &clash]);
        assert_eq!(before, sb.dump(), "a refused apply changes nothing");

        // An external network that does not exist is an error, not a new network.
        let lonely = write(sb, "lonely.toml", "[networks.nowhere]\nexternal = true\n\n[containers.l1]\nnetworks.nowhere = {}\n");
        let plan = fails(&["plan", "-f", &lonely]);
        assert!(plan.contains("network nowhere: it is declared external but does not exist"), "{plan}");

        // destroy -f app removes app's container only; the borrowed network stays.
        ok(&["destroy", "-f", &app]);
        assert!(!std::path::Path::new("/run/netns/app").exists());
        assert!(sb.run(&["ip", "-o", "link", "show", "nc-shared"]).contains("nc-shared"));
        assert_eq!(plan_code(&infra).0, 0);
        // --project overrides the file name's stem: the same file as project "infra" owns both.
        let renamed = write(sb, "renamed.toml", &std::fs::read_to_string(&infra).unwrap());
        assert_eq!(
            netctl(&["plan", "-f", &renamed, "--project", "infra", "--detailed-exitcode"]).status.code(),
            Some(0)
        );
        ok(&["destroy", "-f", &infra]);
        let links = sb.run(&["ip", "-o", "link"]);
        assert!(!links.contains("nc-shared"), "{links}");
    }
}

sandbox_test! {
    /// A host port a host process already listens on is refused by default, naming the socket;
    /// `port_in_use = "warn"` applies with a warning. Before, the DNAT silently took the port
    /// over.
    fn a_host_port_in_use_is_refused(sb) {
        let mut listener = sb.listen(None, Proto::Tcp, "127.0.0.1", 9600);
        let file = write(
            sb,
            "busy.toml",
            "[networks.busy]\nbridge = \"nc-busy\"\nsubnets = [{ subnet = \"10.90.20.0/24\" }]\n\n\
             [containers.b1]\nnetworks.busy = {}\nports = [\"9600:80\"]\n",
        );
        let plan = fails(&["plan", "-f", &file]);
        assert!(
            plan.contains("host port 9600/tcp on all addresses is in use on the host: a tcp socket listens on 127.0.0.1:9600"),
            "{plan}"
        );
        assert!(plan.contains("port_in_use"), "the error names the way out: {plan}");
        fails(&["apply", "-f", &file]);
        assert!(!std::path::Path::new("/run/netns/b1").exists());

        let out = std::process::Command::new(netctl_tests::netctl_bin())
            .args(["apply", "-f", &file])
            .env("NETCTL_CONFIG", "/nonexistent/netctl.toml")
            .env("NETCTL_PORT_IN_USE", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("is in use on the host"), "{stderr}");
        assert!(listener.is_running());
        ok(&["destroy", "--all"]);
    }
}

sandbox_test! {
    /// Names as long as validate allows work in the kernel too: the links' ownership marks
    /// (aliases) built from them are cut to what a new link's request may carry. A 250-byte
    /// network name used to fail creating the bridge ("Attribute failed policy validation").
    fn the_longest_names_validate_accepts_apply(sb) {
        let net = "n".repeat(250);
        let ctr = "c".repeat(250);
        let file = write(
            sb,
            "long.toml",
            // No DNS: a 250-byte label is no DNS name.
            &format!("[networks.{net}]\nbridge = \"nc-long\"\ndns = false\nsubnets = [{{ subnet = \"10.90.40.0/24\" }}]\n\n[containers.{ctr}]\nnetworks.{net} = {{}}\n"),
        );
        ok(&["validate", "-f", &file]);
        ok(&["apply", "-f", &file]);
        assert!(sb.run(&["ip", "-o", "link", "show", "nc-long"]).contains("alias netctl network nnn"));
        assert_eq!(plan_code(&file).0, 0);
        ok(&["destroy", "--all"]);
        assert!(!sb.run(&["ip", "-o", "link"]).contains("nc-long"));
    }
}

sandbox_test! {
    /// A port published on every address of a container without IPv6 is refused at once on the
    /// host's IPv6 addresses (no DNAT, nothing listening), not left hanging, even while another
    /// network has IPv6 forwards.
    fn ipv6_to_an_ipv4_only_container_is_refused(sb) {
        let file = write(
            sb,
            "v4.toml",
            "[networks.only4]\nbridge = \"nc-only4\"\nsubnets = [{ subnet = \"10.90.50.0/24\" }]\n\n\
             [networks.dual]\nbridge = \"nc-dual\"\nsubnets = [{ subnet = \"10.90.51.0/24\" }, { subnet = \"fd90:51::/64\" }]\n\n\
             [containers.w4]\nnetworks.only4 = {}\nports = [\"8080:80\"]\n\n\
             [containers.w6]\nnetworks.dual = {}\nports = [\"8090:80\"]\n",
        );
        ok(&["apply", "-f", &file]);
        let _server = sb.listen(Some("w4"), Proto::Tcp, "0.0.0.0", 80);
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8080).is_some(), "IPv4 answers");
        for addr in ["[::1]:8080", "[2001:db8::10]:8080"] {
            let err = std::net::TcpStream::connect_timeout(
                &addr.parse().unwrap(),
                std::time::Duration::from_secs(3),
            )
            .expect_err("nothing answers on IPv6");
            assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{addr}: {err}");
        }
        ok(&["destroy", "--all"]);
    }
}

sandbox_test! {
    /// An apply that would delete or re-create something asks on a terminal: "n" (or no
    /// answer) changes nothing, `--yes` goes ahead without asking. Without a terminal nothing
    /// is asked (every other test relies on that).
    fn destructive_applies_ask_on_a_terminal(sb) {
        let v1 = "[networks.ask]\nbridge = \"nc-ask\"\nsubnets = [{ subnet = \"10.90.60.0/24\" }]\n\n[containers.a1]\nnetworks.ask = {}\n";
        let file = write(sb, "ask.toml", v1);
        ok(&["apply", "-f", &file]);
        write(sb, "ask.toml", &v1.replace("10.90.60.0/24", "10.90.61.0/24"));
        // `script` gives netctl a terminal; the answer comes through it.
        let on_a_terminal = |args: &str, answer: &str| {
            let command = format!("{} {args}", netctl_tests::netctl_bin().display());
            let mut child = std::process::Command::new("script")
                .args(["-qec", &command, "/dev/null"])
                .env("NETCTL_CONFIG", "/nonexistent/netctl.toml")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(child.stdin.as_mut().unwrap(), answer.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let (code, text) = on_a_terminal(&format!("apply -f {file}"), "n\n");
        assert!(text.contains("This deletes or re-creates"), "{text}");
        assert_ne!(code, Some(0), "{text}");
        assert!(sb.ns_run("a1", &["ip", "-o", "-4", "addr"]).contains("10.90.60."), "unchanged");
        let (code, text) = on_a_terminal(&format!("apply -f {file} --yes"), "");
        assert_eq!(code, Some(0), "{text}");
        assert!(!text.contains("Apply? [y/N]"), "{text}");
        assert!(sb.ns_run("a1", &["ip", "-o", "-4", "addr"]).contains("10.90.61."), "applied");
        ok(&["destroy", "--all"]);
    }
}

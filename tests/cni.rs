//! netctl as a CNI plugin, driven through the protocol directly (what a runtime does: env +
//! stdin in, JSON out), inside the privileged sandbox. Covers what `ctr` cannot send: every
//! error code, DEL twice and without a namespace, CHECK after out-of-band damage, port
//! mappings, static addresses, concurrency, GC and STATUS, conflists at each version. The real
//! containerd test is `tests/containerd.rs`.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use netctl_testkit::{Proto, Sandbox, sandbox_test, uplink};
use netctl_tests::sandboxed::{host_veths, ok, recorded_containers};
use netctl_tests::{describe, netctl_bin, workspace_root};
use serde_json::{Value, json};

/// One plugin invocation: exit code and the JSON printed on stdout (`Null` when nothing).
#[derive(Debug)]
struct Answer {
    code: i32,
    out: Value,
}

impl Answer {
    /// The spec's error code; fails the test when the call succeeded.
    fn error_code(&self) -> u64 {
        assert_ne!(self.code, 0, "expected a failure: {:#}", self.out);
        self.out["code"]
            .as_u64()
            .unwrap_or_else(|| panic!("no code in {:#}", self.out))
    }

    fn msg(&self) -> String {
        format!(
            "{} {}",
            self.out["msg"].as_str().unwrap_or(""),
            self.out["details"].as_str().unwrap_or("")
        )
    }

    fn ok(self) -> Value {
        assert_eq!(self.code, 0, "the call failed: {:#}", self.out);
        self.out
    }
}

/// Runs the plugin the way runtimes exec it: no arguments, `CNI_*` in the environment.
fn call(
    command: &str,
    container: &str,
    netns: Option<&str>,
    extra: &[(&str, &str)],
    conf: &Value,
) -> Answer {
    let mut cmd = Command::new(netctl_bin());
    cmd.env("NETCTL_CONFIG", "/nonexistent/netctl.toml")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/opt/cni/bin")
        .env("CNI_NETNS", netns.unwrap_or(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run netctl");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(conf.to_string().as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("netctl output");
    let text = String::from_utf8_lossy(&out.stdout);
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", describe(&out)))
    };
    Answer {
        code: out.status.code().expect("exit code"),
        out: value,
    }
}

fn add(container: &str, conf: &Value) -> Answer {
    call(
        "ADD",
        container,
        Some(&format!("/run/netns/{container}")),
        &[],
        conf,
    )
}

fn del(container: &str, conf: &Value) -> Answer {
    call("DEL", container, None, &[], conf)
}

sandbox_test! {
    /// A macvlan network declared in a netctl file serves CNI by name, and ADD's result lists
    /// what the reference `macvlan` plugin lists: the container's interface only (no bridge,
    /// no host veth), with the addresses pointing at it; the container reaches the LAN's
    /// gateway through it.
    fn declared_macvlan_network_serves_cni_with_its_own_result(sb) {
        sb.add_netns("lan");
        sb.run(&["ip", "link", "add", "lanp", "type", "veth", "peer", "name", "lan0", "netns", "lan"]);
        sb.run(&["ip", "link", "set", "lanp", "up"]);
        sb.ns_run("lan", &["ip", "addr", "add", "192.168.78.1/24", "dev", "lan0"]);
        sb.ns_run("lan", &["ip", "link", "set", "lan0", "up"]);
        let file = sb.write_file(
            "lan.toml",
            "[networks.lan]\ndriver = \"macvlan\"\nparent = \"lanp\"\n\
             subnets = [{ subnet = \"192.168.78.0/24\", gateway = \"192.168.78.1\" }]\n",
        );
        ok(&["apply", "-f", file.to_str().unwrap()]);
        sb.add_netns("cnimv");
        let named = plugin_conf(&json!({"cniVersion": "1.1.0", "name": "conflist", "plugins": [{"type": "netctl", "network": "lan"}]}));
        let result = add("cnimv", &named).ok();
        let ifaces = result["interfaces"].as_array().unwrap();
        assert_eq!(ifaces.len(), 1, "only the container's interface: {result:#}");
        assert_eq!(ifaces[0]["name"], "eth0");
        assert_eq!(ifaces[0]["sandbox"], "/run/netns/cnimv");
        assert_eq!(result["ips"][0]["interface"], 0, "{result:#}");
        let link = sb.ns_run("cnimv", &["ip", "-d", "link", "show", "eth0"]);
        assert!(link.contains("macvlan"), "{link}");
        let mac = ifaces[0]["mac"].as_str().unwrap().to_ascii_lowercase();
        assert!(link.contains(&mac), "the result's MAC {mac} is eth0's: {link}");
        let addr = result["ips"][0]["address"].as_str().unwrap();
        assert_eq!(eth0_v4(sb, "cnimv").as_deref(), Some(addr));
        // The LAN's gateway answers with the address it saw the connection come from.
        let _gw = sb.listen(Some("lan"), Proto::Tcp, "0.0.0.0", 81);
        let seen = sb.probe(Some("cnimv"), Proto::Tcp, "192.168.78.1", 81);
        assert_eq!(seen.as_deref(), addr.split_once('/').map(|(a, _)| a), "container to gateway");

        // CHECK agrees with the result ADD gave.
        let mut check = named.clone();
        check["prevResult"] = result.clone();
        call("CHECK", "cnimv", Some("/run/netns/cnimv"), &[], &check).ok();
        assert_eq!(del("cnimv", &named).ok(), Value::Null);
        assert_eq!(recorded_containers(), BTreeSet::new());
        ok(&["destroy", "--all"]);
    }
}

/// What a runtime hands the first plugin of a conflist: the plugin object with the list's
/// `cniVersion` and `name` (libcni's rule).
fn plugin_conf(conflist: &Value) -> Value {
    let mut conf = conflist["plugins"][0].clone();
    conf["cniVersion"] = conflist["cniVersion"].clone();
    conf["name"] = conflist["name"].clone();
    conf
}

/// A network `name` of its own: bridge `nc-<name>`, subnet `10.<octet>.0.0/24`.
fn inline(version: &str, name: &str, octet: u8) -> Value {
    plugin_conf(&json!({
        "cniVersion": version,
        "name": name,
        "plugins": [{
            "type": "netctl",
            "network": { "subnets": [{ "subnet": format!("10.{octet}.0.0/24") }], "bridge": format!("nc-{name}") },
            "capabilities": { "portMappings": true, "ips": true, "mac": true, "aliases": true }
        }]
    }))
}

fn with_runtime(mut conf: Value, runtime: Value) -> Value {
    conf["runtimeConfig"] = runtime;
    conf
}

/// The IPv4 address (with prefix) on eth0 of namespace `ns`, or `None`.
fn eth0_v4(sb: &Sandbox, ns: &str) -> Option<String> {
    let out = sb.ns_output(ns, &["ip", "-o", "-4", "addr", "show", "dev", "eth0"]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(3).map(ToOwned::to_owned)
}

sandbox_test! {
    /// ADD gives the container eth0 with an address of the network and a default route via the
    /// gateway, records it like any container, CHECK agrees, and DEL, twice and without a
    /// namespace or prevResult, leaves no veth, lease or record behind.
    fn add_check_del_leave_nothing_behind(sb) {
        sb.add_netns("c1");
        let conf = inline("1.0.0", "web", 89);
        let result = add("c1", &conf).ok();
        assert_eq!(result["cniVersion"], "1.0.0");
        let ifaces = result["interfaces"].as_array().unwrap();
        assert_eq!(ifaces.len(), 3, "{result:#}");
        assert_eq!(ifaces[0]["name"], "nc-web");
        assert_eq!(ifaces[2]["name"], "eth0");
        assert_eq!(ifaces[2]["sandbox"], "/run/netns/c1");
        let ip = &result["ips"][0];
        assert_eq!(ip["interface"], 2);
        assert_eq!(ip["gateway"], "10.89.0.1");
        assert_eq!(ip["version"], Value::Null, "no ips[].version from 1.0.0 on");
        let addr = ip["address"].as_str().unwrap().to_owned();
        assert_eq!(eth0_v4(sb, "c1").as_deref(), Some(addr.as_str()));
        assert!(sb.ns_run("c1", &["ip", "route"]).contains("default via 10.89.0.1"));
        let _host = sb.listen(None, Proto::Tcp, "10.89.0.1", 7000);
        let own = addr.split('/').next().unwrap();
        assert_eq!(sb.probe(Some("c1"), Proto::Tcp, "10.89.0.1", 7000).as_deref(), Some(own), "the gateway answers");
        assert!(recorded_containers().contains("c1"), "the container is a record");
        assert!(ok(&["inspect", "c1"]).contains(addr.split('/').next().unwrap()));
        assert!(
            netctl_testkit::live_processes(&["aardvark-dns"]).is_empty(),
            "a CNI network serves no DNS, so no aardvark-dns runs for it"
        );
        let veth = ifaces[1]["name"].as_str().unwrap().to_owned();
        assert_eq!(host_veths(sb), vec![veth]);

        let mut check = conf.clone();
        check["prevResult"] = result.clone();
        assert_eq!(call("CHECK", "c1", Some("/run/netns/c1"), &[], &check).ok(), Value::Null);

        // containerd's DEL: empty CNI_NETNS, the cached result as prevResult.
        let mut del_conf = conf.clone();
        del_conf["prevResult"] = result;
        assert_eq!(del("c1", &del_conf).ok(), Value::Null);
        assert_eq!(del("c1", &conf).ok(), Value::Null, "DEL twice");
        assert_eq!(call("DEL", "c1", Some("/run/netns/c1"), &[], &conf).ok(), Value::Null, "DEL with the netns");
        assert!(!recorded_containers().contains("c1"));
        assert!(host_veths(sb).is_empty(), "host veth left: {:?}", host_veths(sb));
        assert_eq!(eth0_v4(sb, "c1"), None, "eth0 left in the container");
        // The lease went with it: another container may ask for the address.
        sb.add_netns("c2");
        let again = add("c2", &with_runtime(conf.clone(), json!({"ips": [addr]}))).ok();
        assert_eq!(again["ips"][0]["address"].as_str(), Some(addr.as_str()));
        del("c2", &conf).ok();
    }
}

sandbox_test! {
    /// DEL after the namespace is gone (the runtime's process exited) releases everything.
    fn del_succeeds_after_the_namespace_is_gone(sb) {
        sb.add_netns("gone");
        let conf = inline("1.0.0", "gone", 90);
        add("gone", &conf).ok();
        sb.run(&["ip", "netns", "del", "gone"]);
        assert_eq!(del("gone", &conf).ok(), Value::Null);
        assert!(!recorded_containers().contains("gone"));
        assert!(host_veths(sb).is_empty());
        assert_eq!(del("gone", &conf).ok(), Value::Null, "and again");
    }
}

sandbox_test! {
    /// CHECK compares the result, the records and the kernel: a host veth deleted behind
    /// netctl's back, or a result that names another address, is code 110 with each difference.
    fn check_lists_what_differs(sb) {
        sb.add_netns("chk");
        let conf = inline("1.0.0", "chk", 91);
        let result = add("chk", &conf).ok();
        let mut check = conf.clone();
        check["prevResult"] = result.clone();
        call("CHECK", "chk", Some("/run/netns/chk"), &[], &check).ok();

        let mut wrong = check.clone();
        wrong["prevResult"]["ips"][0]["address"] = json!("10.91.0.200/24");
        let answer = call("CHECK", "chk", Some("/run/netns/chk"), &[], &wrong);
        assert_eq!(answer.error_code(), 110);
        assert!(answer.msg().contains("10.91.0.200/24 is in the result but not recorded"), "{}", answer.msg());

        // The firewall is part of what ADD set up: a flushed ruleset fails CHECK until reload.
        sb.run(&["nft", "flush", "ruleset"]);
        let answer = call("CHECK", "chk", Some("/run/netns/chk"), &[], &check);
        assert_eq!(answer.error_code(), 110);
        assert!(answer.msg().contains("firewall"), "{}", answer.msg());
        ok(&["reload", "--all"]);
        call("CHECK", "chk", Some("/run/netns/chk"), &[], &check).ok();

        let veth = result["interfaces"][1]["name"].as_str().unwrap().to_owned();
        sb.run(&["ip", "link", "del", &veth]);
        let answer = call("CHECK", "chk", Some("/run/netns/chk"), &[], &check);
        assert_eq!(answer.error_code(), 110);
        assert!(answer.msg().contains(&format!("host veth {veth} is missing")), "{}", answer.msg());
        // CHECK of a container netctl never saw: code 3.
        assert_eq!(call("CHECK", "nobody", Some("/run/netns/chk"), &[], &check).error_code(), 3);
        del("chk", &conf).ok();
        assert!(!recorded_containers().contains("chk"));
    }
}

sandbox_test! {
    /// Every refusal carries the spec's code and changes nothing.
    fn errors_carry_the_specs_codes(sb) {
        sb.add_netns("e1");
        sb.add_netns("e2");
        sb.add_netns("e3");
        let conf = inline("1.0.0", "err", 92);
        let before = sb.dump();
        // Configuration errors, before anything is recorded.
        let named = plugin_conf(&json!({"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "netctl", "network": "nowhere"}]}));
        let answer = add("e1", &named);
        assert_eq!(answer.error_code(), 7);
        assert!(answer.msg().contains("network nowhere is not recorded"), "{}", answer.msg());
        let mut prev = conf.clone();
        prev["prevResult"] = json!({"cniVersion": "1.0.0", "interfaces": [], "ips": []});
        assert_eq!(add("e1", &prev).error_code(), 2);
        let mut old = conf.clone();
        old["cniVersion"] = json!("0.3.1");
        assert_eq!(add("e1", &old).error_code(), 1);
        assert_eq!(call("ADD", "e1", None, &[], &conf).error_code(), 4, "no CNI_NETNS");
        assert_eq!(call("ADD", "e1", Some("/run/netns/missing"), &[], &conf).error_code(), 4, "CNI_NETNS missing");
        let mut bad_subnet = conf.clone();
        bad_subnet["network"]["subnets"][0]["gateway"] = json!("10.1.2.3");
        let answer = add("e1", &bad_subnet);
        assert_eq!(answer.error_code(), 7, "validated like a TOML file");
        assert!(answer.msg().contains("gateway"), "{}", answer.msg());
        assert_eq!(before, sb.dump(), "a refused request changed the machine");
        assert!(recorded_containers().is_empty());

        // The first ADD records the network; a different definition later names the key.
        add("e1", &conf).ok();
        let mut other = conf.clone();
        other["network"]["bridge"] = json!("nc-other");
        let answer = add("e2", &other);
        assert_eq!(answer.error_code(), 7);
        assert!(answer.msg().contains("bridge (recorded \"nc-err\", requested \"nc-other\")"), "{}", answer.msg());

        // ADD on an existing (container, ifname) fails and leaves the first intact.
        let first = eth0_v4(sb, "e1").expect("e1 has an address");
        assert_eq!(add("e1", &conf).error_code(), 102);
        assert_eq!(eth0_v4(sb, "e1").as_deref(), Some(first.as_str()));
        assert!(recorded_containers().contains("e1"));

        // A static address someone holds: code 100 naming the holder.
        let taken = first.split('/').next().unwrap();
        let answer = add("e2", &with_runtime(conf.clone(), json!({"ips": [format!("{taken}/24")]})));
        assert_eq!(answer.error_code(), 100);
        assert!(answer.msg().contains("e1"), "{}", answer.msg());
        assert!(!recorded_containers().contains("e2"), "the failed ADD was rolled back");
        assert_eq!(eth0_v4(sb, "e2"), None);

        // A lock held past the bound: code 11.
        // `-o`: flock itself holds the lock, so killing it releases it.
        let lock = sb.spawn(None, &["flock", "-o", "/var/lib/netctl/netctl.lock", "sleep", "30"]);
        assert!(sb.wait_for(std::time::Duration::from_secs(5), || {
            !sb.output(&["flock", "-n", "/var/lib/netctl/netctl.lock", "true"]).status.success()
        }));
        let answer = call("ADD", "e2", Some("/run/netns/e2"), &[("NETCTL_LOCK_TIMEOUT", "1")], &conf);
        assert_eq!(answer.error_code(), 11, "{:#}", answer.out);
        drop(lock);

        del("e1", &conf).ok();
        // An exhausted subnet: code 101.
        let tiny = plugin_conf(&json!({"cniVersion": "1.0.0", "name": "tiny", "plugins": [{"type": "netctl",
            "network": {"subnets": [{"subnet": "10.93.0.0/30"}], "bridge": "nc-tiny"}}]}));
        add("e2", &tiny).ok();
        let answer = add("e3", &tiny);
        assert_eq!(answer.error_code(), 101, "{:#}", answer.out);
        del("e2", &tiny).ok();
        assert!(recorded_containers().is_empty());
    }
}

sandbox_test! {
    /// portMappings are published through netctl's nft maps: the container answers on
    /// 127.0.0.1 and on the uplink address, and stops answering after DEL.
    fn port_mappings_answer_on_loopback_and_the_uplink(sb) {
        sb.enable_forwarding();
        sb.add_netns("pm");
        let conf = with_runtime(
            inline("1.0.0", "pm", 94),
            json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
                   "mac": "c2:11:22:33:44:55", "aliases": ["www"]}),
        );
        let result = add("pm", &conf).ok();
        assert_eq!(result["interfaces"][2]["mac"], "c2:11:22:33:44:55");
        let _web = sb.listen(Some("pm"), Proto::Tcp, "0.0.0.0", 80);
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8080).is_some(), "127.0.0.1:8080");
        assert!(sb.probe(None, Proto::Tcp, uplink::HOST_V4, 8080).is_some(), "uplink:8080");
        assert!(sb.probe(Some(uplink::OUTSIDE_NS), Proto::Tcp, uplink::HOST_V4, 8080).is_some(), "outside -> uplink:8080");
        // A CNI container is an ordinary record: reload restores its forwards after a flush.
        sb.run(&["nft", "flush", "ruleset"]);
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8080).is_none(), "forwarded without rules");
        ok(&["reload", "--all"]);
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8080).is_some(), "127.0.0.1:8080 after reload");
        del("pm", &conf).ok();
        assert!(sb.probe(None, Proto::Tcp, "127.0.0.1", 8080).is_none(), "published after DEL");
    }
}

sandbox_test! {
    /// 20 ADDs at once (different containers, as runtimes may) each get an address of their
    /// own; GC then releases every attachment not listed as valid, and only those.
    fn parallel_adds_get_distinct_addresses_and_gc_releases_the_rest(sb) {
        let names: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
        for n in &names {
            sb.add_netns(n);
        }
        let conf = inline("1.1.0", "par", 95);
        let results: Vec<Answer> = std::thread::scope(|s| {
            let handles: Vec<_> = names.iter().map(|n| s.spawn(|| add(n, &conf))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut addrs = BTreeSet::new();
        for (n, answer) in names.iter().zip(results) {
            let out = answer.ok();
            let addr = out["ips"][0]["address"].as_str().unwrap().to_owned();
            assert_eq!(eth0_v4(sb, n).as_deref(), Some(addr.as_str()), "{n}");
            addrs.insert(addr);
        }
        assert_eq!(addrs.len(), 20, "{addrs:?}");
        assert_eq!(host_veths(sb).len(), 20);

        let mut gc = plugin_conf(&json!({"cniVersion": "1.1.0", "name": "par", "plugins": [{"type": "netctl", "network": "par"}]}));
        gc["cni.dev/valid-attachments"] = json!(names[..10].iter().map(|n| json!({"containerID": n, "ifname": "eth0"})).collect::<Vec<_>>());
        assert_eq!(call("GC", "", None, &[], &gc).ok(), Value::Null);
        let left = recorded_containers();
        assert_eq!(left, names[..10].iter().cloned().collect::<BTreeSet<_>>());
        assert_eq!(host_veths(sb).len(), 10);
        assert_eq!(eth0_v4(sb, "p15"), None, "GC took the interface down");
        assert_eq!(call("STATUS", "", None, &[], &gc).ok(), Value::Null);
        // GC with nothing valid releases the rest.
        gc["cni.dev/valid-attachments"] = json!([]);
        call("GC", "", None, &[], &gc).ok();
        assert!(recorded_containers().is_empty());
        assert!(host_veths(sb).is_empty());
    }
}

sandbox_test! {
    /// The same conflist at 0.4.0, 1.0.0 and 1.1.0: results in the asked version (0.4.0 with
    /// ips[].version), VERSION lists all three; `destroy --all` covers CNI containers.
    fn conflists_at_each_version(sb) {
        for (i, version) in ["0.4.0", "1.0.0", "1.1.0"].into_iter().enumerate() {
            let ns = format!("v{i}");
            sb.add_netns(&ns);
            let conf = inline(version, "ver", 96);
            let result = add(&ns, &conf).ok();
            assert_eq!(result["cniVersion"], version);
            let family = &result["ips"][0]["version"];
            if version == "0.4.0" {
                assert_eq!(family, "4");
            } else {
                assert_eq!(family, &Value::Null);
            }
            assert!(eth0_v4(sb, &ns).is_some());
            let answer = call("VERSION", "", None, &[], &json!({"cniVersion": version})).ok();
            assert_eq!(answer, json!({"cniVersion": version, "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]}));
        }
        assert_eq!(recorded_containers().len(), 3);
        ok(&["destroy", "--all"]);
        assert!(recorded_containers().is_empty());
        assert!(host_veths(sb).is_empty());
    }
}

sandbox_test! {
    /// The conflist docs/cni.md shows works as printed (through `netctl cni`, the test entry).
    fn the_documented_conflist_works(sb) {
        let text = std::fs::read_to_string(workspace_root().join("docs/cni.md")).expect("docs/cni.md");
        let start = text.find("```json conflist\n").expect("a ```json conflist block in docs/cni.md") + "```json conflist\n".len();
        let end = start + text[start..].find("```").expect("the block ends");
        let conflist: Value = serde_json::from_str(&text[start..end]).expect("the documented conflist is JSON");
        assert_eq!(conflist["plugins"][0]["type"], "netctl");
        sb.add_netns("doc");
        let out = Command::new(netctl_bin())
            .arg("cni")
            .env("NETCTL_CONFIG", "/nonexistent/netctl.toml")
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", "default-doc")
            .env("CNI_IFNAME", "eth0")
            .env("CNI_NETNS", "/run/netns/doc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child.stdin.take().unwrap().write_all(plugin_conf(&conflist).to_string().as_bytes())?;
                child.wait_with_output()
            })
            .expect("run netctl cni");
        assert!(out.status.success(), "{}", describe(&out));
        assert!(eth0_v4(sb, "doc").is_some());
        assert_eq!(del("default-doc", &plugin_conf(&conflist)).ok(), Value::Null);
        assert!(recorded_containers().is_empty());
    }
}

sandbox_test! {
    /// A network declared in a netctl file serves CNI by name; GC and DEL take down CNI
    /// attachments only, never a container the file declared, and ADD refuses its name.
    fn declared_networks_serve_cni_and_declared_containers_are_left_alone(sb) {
        let file = sb.write_file(
            "shared.toml",
            "[networks.shared]\nbridge = \"nc-shared\"\nsubnets = [{ subnet = \"10.98.0.0/24\" }]\n\n\
             [containers.decl]\nnetworks.shared = {}\n",
        );
        ok(&["apply", "-f", file.to_str().unwrap()]);
        let decl_addr = sb.ns_run("decl", &["ip", "-o", "-4", "addr", "show", "dev", "eth0"]);
        sb.add_netns("cni1");
        let named = plugin_conf(&json!({"cniVersion": "1.1.0", "name": "conflist", "plugins": [{"type": "netctl", "network": "shared"}]}));
        let result = add("cni1", &named).ok();
        assert_eq!(result["interfaces"][0]["name"], "nc-shared");
        assert!(result["ips"][0]["address"].as_str().unwrap().starts_with("10.98.0."));
        assert_eq!(recorded_containers(), BTreeSet::from(["cni1".to_owned(), "decl".to_owned()]));

        // The declared container's name is not the CNI runtime's to use or remove.
        sb.add_netns("other");
        let answer = call("ADD", "decl", Some("/run/netns/other"), &[], &named);
        assert_eq!(answer.error_code(), 7);
        assert!(answer.msg().contains("not attached through CNI"), "{}", answer.msg());
        assert_eq!(del("decl", &named).ok(), Value::Null);
        let mut gc = named.clone();
        gc["cni.dev/valid-attachments"] = json!([]);
        call("GC", "", None, &[], &gc).ok();
        assert_eq!(recorded_containers(), BTreeSet::from(["decl".to_owned()]), "GC released cni1 only");
        assert_eq!(sb.ns_run("decl", &["ip", "-o", "-4", "addr", "show", "dev", "eth0"]), decl_addr);
        assert_eq!(netctl_tests::sandboxed::plan_code(file.to_str().unwrap()).0, 0, "the file's plan is in sync");
        ok(&["destroy", "--all"]);
    }
}

//! Data-driven tests: one invocation (environment and stdin) in, what netctl would answer out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use insta::assert_snapshot;

use crate::{AddResult, Command, Dns, Interface, IpConfig, Route, Version, parse, render_error};

/// The environment a runtime sets for ADD of container `c1`, eth0, in `/run/netns/c1`.
fn env_add() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "default-c1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_NETNS", "/run/netns/c1"),
        ("CNI_PATH", "/opt/cni/bin"),
    ])
}

/// Parses `stdin` under `env` and shows the request, or the error as the plugin prints it.
fn check(env: &BTreeMap<&str, &str>, stdin: &str) -> String {
    let get = |k: &str| env.get(k).map(|v| (*v).to_owned());
    let command = match Command::from_env(&get) {
        Ok(c) => c,
        Err(e) => return pretty(&render_error(Version::LATEST.as_str(), &e)),
    };
    match parse(command, &get, stdin.as_bytes()) {
        Ok(req) => format!("{req:#?}"),
        Err(refused) => pretty(&render_error(&refused.cni_version, &refused.error)),
    }
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON")
}

fn with(
    mut env: BTreeMap<&'static str, &'static str>,
    k: &'static str,
    v: &'static str,
) -> BTreeMap<&'static str, &'static str> {
    env.insert(k, v);
    env
}

fn without(
    mut env: BTreeMap<&'static str, &'static str>,
    k: &str,
) -> BTreeMap<&'static str, &'static str> {
    env.remove(k);
    env
}

const INLINE: &str = r#"{"cniVersion":"1.0.0","name":"web","type":"netctl",
  "network":{"subnets":[{"subnet":"10.89.0.0/24"}],"bridge":"nc-web","isolate":true,"mtu":1400},
  "capabilities":{"portMappings":true,"ips":true,"mac":true,"aliases":true},
  "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},
                                   {"hostPort":5353,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"}],
                   "ips":["10.89.0.42/24"],"mac":"c2:11:22:33:44:55","aliases":["web1"]}}"#;

#[test]
fn add_with_an_inline_network_and_every_capability() {
    assert_snapshot!(check(&env_add(), INLINE));
}

#[test]
fn a_network_by_name_and_cni_args() {
    let env = with(
        env_add(),
        "CNI_ARGS",
        "IgnoreUnknown=1;K8S_POD_NAME=web-0;IP=10.89.0.7;FOO=bar",
    );
    assert_snapshot!(check(
        &env,
        r#"{"cniVersion":"0.4.0","name":"conflist","type":"netctl","network":"web"}"#
    ));
}

#[test]
fn the_conflist_name_is_the_network_when_none_is_given() {
    let req = check(
        &env_add(),
        r#"{"cniVersion":"1.1.0","name":"web","type":"netctl"}"#,
    );
    assert!(
        req.contains(
            r#"Named(
        "web",
    )"#
        ),
        "{req}"
    );
}

#[test]
fn errors_carry_the_specs_codes() {
    let plain = r#"{"cniVersion":"1.0.0","name":"web","type":"netctl","network":"web"}"#;
    let cases: Vec<(&str, BTreeMap<&str, &str>, &str)> = vec![
        ("no command", without(env_add(), "CNI_COMMAND"), plain),
        (
            "unknown command",
            with(env_add(), "CNI_COMMAND", "FROB"),
            plain,
        ),
        (
            "no container id",
            without(env_add(), "CNI_CONTAINERID"),
            plain,
        ),
        (
            "bad container id",
            with(env_add(), "CNI_CONTAINERID", "-x/y"),
            plain,
        ),
        ("no ifname", without(env_add(), "CNI_IFNAME"), plain),
        (
            "bad ifname",
            with(env_add(), "CNI_IFNAME", "a-very-long-interface-name"),
            plain,
        ),
        ("no netns on ADD", without(env_add(), "CNI_NETNS"), plain),
        (
            "relative netns",
            with(env_add(), "CNI_NETNS", "netns/c1"),
            plain,
        ),
        (
            "malformed CNI_ARGS",
            with(env_add(), "CNI_ARGS", "IP"),
            plain,
        ),
        (
            "unknown CNI_ARGS key",
            with(env_add(), "CNI_ARGS", "FOO=bar"),
            plain,
        ),
        ("not JSON", env_add(), "{"),
        (
            "unsupported version",
            env_add(),
            r#"{"cniVersion":"0.3.1","name":"web"}"#,
        ),
        ("no version", env_add(), r#"{"name":"web"}"#),
        ("no name", env_add(), r#"{"cniVersion":"1.0.0"}"#),
        (
            "GC before 1.1.0",
            with(env_add(), "CNI_COMMAND", "GC"),
            plain,
        ),
        (
            "prevResult on ADD",
            env_add(),
            r#"{"cniVersion":"1.0.0","name":"web","prevResult":{"ips":[]}}"#,
        ),
        (
            "CHECK without prevResult",
            with(env_add(), "CNI_COMMAND", "CHECK"),
            plain,
        ),
        (
            "ipam",
            env_add(),
            r#"{"cniVersion":"1.0.0","name":"web","ipam":{"type":"host-local"}}"#,
        ),
        (
            "unknown key",
            env_add(),
            r#"{"cniVersion":"1.0.0","name":"web","hairpinMode":true}"#,
        ),
        (
            "args",
            env_add(),
            r#"{"cniVersion":"1.0.0","name":"web","args":{"cni":{"ips":["10.0.0.1"]}}}"#,
        ),
        (
            "unknown capability",
            env_add(),
            r#"{"cniVersion":"1.0.0","name":"web","runtimeConfig":{"bandwidth":{"ingressRate":1}}}"#,
        ),
        (
            "bad port",
            env_add(),
            r#"{"cniVersion":"1.0.0","name":"web","runtimeConfig":{"portMappings":[{"hostPort":0,"containerPort":80}]}}"#,
        ),
        (
            "bad protocol",
            env_add(),
            r#"{"cniVersion":"1.0.0","name":"web","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"protocol":"icmp"}]}}"#,
        ),
        (
            "bad mac",
            env_add(),
            r#"{"cniVersion":"1.0.0","name":"web","runtimeConfig":{"mac":"zz"}}"#,
        ),
        (
            "bad ip",
            env_add(),
            r#"{"cniVersion":"1.0.0","name":"web","runtimeConfig":{"ips":["10.0.0.300"]}}"#,
        ),
        (
            "unknown network key",
            env_add(),
            r#"{"cniVersion":"1.0.0","name":"web","network":{"subnet":"10.0.0.0/24"}}"#,
        ),
        (
            "network dns",
            env_add(),
            r#"{"cniVersion":"1.0.0","name":"web","network":{"dns":true}}"#,
        ),
        (
            "network of a wrong type",
            env_add(),
            r#"{"cniVersion":"1.0.0","name":"web","network":{"mtu":"big"}}"#,
        ),
        (
            "network a number",
            env_add(),
            r#"{"cniVersion":"1.0.0","name":"web","network":7}"#,
        ),
    ];
    let mut out = String::new();
    for (what, env, stdin) in cases {
        let _ = writeln!(out, "## {what}\n{}", check(&env, stdin));
    }
    assert_snapshot!(out);
}

#[test]
fn del_needs_no_netns_and_ignores_prev_result() {
    let env = without(with(env_add(), "CNI_COMMAND", "DEL"), "CNI_NETNS");
    let req = check(
        &env,
        r#"{"cniVersion":"1.0.0","name":"web","prevResult":{"garbage":1}}"#,
    );
    assert!(req.contains("netns: None"), "{req}");
    let env = with(with(env_add(), "CNI_COMMAND", "DEL"), "CNI_NETNS", "");
    let req = check(&env, r#"{"cniVersion":"1.0.0","name":"web"}"#);
    assert!(req.contains("netns: None"), "{req}");
}

#[test]
fn gc_reads_valid_attachments_and_needs_no_container() {
    let env = BTreeMap::from([("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")]);
    assert_snapshot!(check(
        &env,
        r#"{"cniVersion":"1.1.0","name":"web","network":"web",
            "cni.dev/valid-attachments":[{"containerID":"default-c1","ifname":"eth0"}]}"#
    ));
}

#[test]
fn check_decodes_a_prev_result_of_any_version() {
    let env = with(env_add(), "CNI_COMMAND", "CHECK");
    let prev = r#"{"cniVersion":"0.4.0","name":"web","prevResult":{"cniVersion":"0.4.0",
        "interfaces":[{"name":"eth0","mac":"c2:11:22:33:44:55","sandbox":"/run/netns/c1"}],
        "ips":[{"version":"4","address":"10.89.0.2/24","gateway":"10.89.0.1","interface":0}],
        "routes":[{"dst":"0.0.0.0/0"}],"dns":{}}}"#;
    assert_snapshot!(check(&env, prev));
}

fn result() -> AddResult {
    AddResult {
        interfaces: vec![
            Interface {
                name: "nc-web".into(),
                mac: Some("aa:bb:cc:dd:ee:01".into()),
                mtu: None,
                sandbox: None,
            },
            Interface {
                name: "vethdeadbeef".into(),
                mac: None,
                mtu: None,
                sandbox: None,
            },
            Interface {
                name: "eth0".into(),
                mac: Some("c2:11:22:33:44:55".into()),
                mtu: Some(1400),
                sandbox: Some("/run/netns/c1".into()),
            },
        ],
        ips: vec![
            IpConfig {
                address: "10.89.0.2/24".parse().unwrap(),
                gateway: Some("10.89.0.1".parse().unwrap()),
                interface: Some(2),
            },
            IpConfig {
                address: "fd00::2/64".parse().unwrap(),
                gateway: Some("fd00::1".parse().unwrap()),
                interface: Some(2),
            },
        ],
        routes: vec![
            Route {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: Some("10.89.0.1".parse().unwrap()),
            },
            Route {
                dst: "::/0".parse().unwrap(),
                gw: Some("fd00::1".parse().unwrap()),
            },
        ],
        dns: Dns::default(),
    }
}

#[test]
fn results_per_version() {
    let mut out = String::new();
    for version in Version::ALL {
        let _ = writeln!(out, "## {version}\n{}", pretty(&result().render(version)));
    }
    assert_snapshot!(out);
}

#[test]
fn a_rendered_result_reads_back_as_prev_result() {
    for version in Version::ALL {
        let back: AddResult = serde_json::from_value(result().render(version)).unwrap();
        assert_eq!(back, result(), "{version}");
    }
}

#[test]
fn version_answers_with_the_asked_version() {
    assert_snapshot!(format!(
        "{}\n{}\n{}",
        crate::render_version(br#"{"cniVersion":"1.0.0"}"#),
        crate::render_version(br#"{"cniVersion":"0.3.1"}"#),
        crate::render_version(b""),
    ));
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    /// JSON-ish text built from the keys and values netctl reads, so the fuzzer reaches past
    /// the decoder.
    fn conf_text() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec![
            "cniVersion",
            "name",
            "type",
            "network",
            "runtimeConfig",
            "prevResult",
            "args",
            "ipam",
            "cni.dev/valid-attachments",
            "portMappings",
            "ips",
            "mac",
            "aliases",
            "subnets",
            "subnet",
            "bridge",
            "mtu",
            "dns",
            "hostPort",
            "containerPort",
        ]);
        let leaf = prop_oneof![
            Just("\"1.0.0\"".to_owned()),
            Just("\"0.4.0\"".to_owned()),
            Just("\"10.89.0.0/24\"".to_owned()),
            Just("null".to_owned()),
            Just("true".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            "[a-z0-9:./-]{0,12}".prop_map(|s| format!("{s:?}")),
        ];
        let value = leaf.prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((key.clone(), inner), 0..5).prop_map(|kv| {
                    let fields: Vec<String> =
                        kv.into_iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        });
        prop_oneof![value, ".{0,40}"]
    }

    proptest! {
        /// Whatever arrives, the plugin answers: a request, or an error with a code and a
        /// message, never a panic.
        #[test]
        fn every_input_gets_an_answer(
            command in prop::sample::select(vec!["ADD", "DEL", "CHECK", "GC", "STATUS"]),
            stdin in conf_text(),
            ifname in "[a-z0-9@]{0,17}",
            args in "[A-Za-z0-9=;,._]{0,30}",
        ) {
            let env = BTreeMap::from([
                ("CNI_COMMAND", command),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_IFNAME", ifname.as_str()),
                ("CNI_NETNS", "/run/netns/c1"),
                ("CNI_ARGS", args.as_str()),
            ]);
            let get = |k: &str| env.get(k).map(|v| (*v).to_owned());
            let command = Command::from_env(&get).expect("a known command");
            if let Err(refused) = parse(command, &get, stdin.as_bytes()) {
                prop_assert!(refused.error.code > 0 && !refused.error.msg.is_empty());
            }
        }
    }
}

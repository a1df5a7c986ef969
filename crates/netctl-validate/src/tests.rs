//! Data-driven checks of the whole pipeline: each case is TOML in, rendered diagnostics out.

use crate::{Severity, ValidState, validate};

/// Validates `input` as `t.toml` and compares the rendered diagnostics with `expect`
/// (surrounding whitespace of `expect` is ignored, so cases can be indented raw strings).
fn check(input: &str, expect: &str) {
    let got = validate("t.toml", input).render();
    let expect: Vec<&str> = expect.trim().lines().map(str::trim).collect();
    let got_lines: Vec<&str> = got.lines().collect();
    assert_eq!(got_lines, expect, "\n--- got ---\n{got}");
}

/// Validates `input`, requires no error and no warning, and returns the state.
fn check_valid(input: &str) -> ValidState {
    let validated = validate("t.toml", input);
    assert_eq!(
        validated.count(Severity::Error),
        0,
        "{}",
        validated.render()
    );
    assert_eq!(
        validated.count(Severity::Warning),
        0,
        "{}",
        validated.render()
    );
    validated.state.expect("no errors, so a state")
}

#[test]
fn empty_and_comment_only_files_are_valid() {
    check("", "");
    check("# nothing yet\n", "");
    assert!(check_valid("").desired.networks.is_empty());
}

#[test]
fn columns_count_characters_and_crlf_is_fine() {
    check(
        "# café ☕\r\n[networks.web]\r\nlabels = { \"é\" = \"x\" }\r\nmtu = 1\r\n",
        "t.toml:4:7: error: mtu must be from 68 to 65535, not 1 [field: networks.web.mtu]",
    );
    check(
        "[containers.c]\nhostname = \"ü\"\n",
        "t.toml:2:12: error: invalid hostname: label `ü` must be letters, digits and hyphens, not starting or ending with a hyphen [field: containers.c.hostname]",
    );
}

#[test]
fn every_error_is_reported_sorted_by_position() {
    // The overlap (found after decoding) sits between two decoding errors and is sorted there.
    check(
        r#"
        [networks.a]
        mtu = 1
        subnets = [{ subnet = "10.0.0.0/8" }]
        [networks.b]
        subnets = [{ subnet = "10.1.0.0/16" }]
        internal = "no"
        "#,
        r"
        t.toml:3:15: error: mtu must be from 68 to 65535, not 1 [field: networks.a.mtu]
        t.toml:6:31: error: subnet 10.1.0.0/16 overlaps subnet 10.0.0.0/8 of network `a` (networks.a.subnets[0].subnet) [field: networks.b.subnets[0].subnet]
        t.toml:7:20: error: expected a boolean (true or false), found a string [field: networks.b.internal]
        ",
    );
}

#[test]
fn syntax_errors_stop_before_meaning() {
    // The bad mtu is not reported: after a syntax error the tree is not trusted.
    check(
        "[networks.a]\nmtu = 1\nbridge = \n",
        "t.toml:3:10: error: TOML syntax error: string values must be quoted, expected literal string",
    );
}

#[test]
fn warnings_do_not_block_the_state() {
    let input = r#"
        [networks.web]
        subnets = [{ subnet = "10.89.0.0/24" }, { subnet = "fd10::/64" }]
        ipv6 = false
        [networks.v4]
        [containers.c]
        networks.v4 = {}
        ports = ["[::1]:8080:80", "[fd00::5]:8081:81"]
    "#;
    check(
        input,
        r"
        t.toml:4:16: warning: ipv6 = false has no effect: subnet fd10::/64 is IPv6, so the network has IPv6 [field: networks.web.ipv6]
        t.toml:8:18: warning: ::1 cannot be forwarded into a bridge network (the kernel has no route_localnet for IPv6); the mapping will not work [field: containers.c.ports[0]]
        t.toml:8:35: warning: host address fd00::5 is IPv6 but none of the container's networks has IPv6, so nothing can be forwarded [field: containers.c.ports[1]]
        ",
    );
    let validated = validate("t.toml", input);
    assert!(!validated.has_errors());
    assert!(validated.state.is_some());
}

#[test]
fn ipv6_networks_silence_the_family_warning() {
    check_valid(
        r#"
        [networks.auto]
        ipv6 = true
        [containers.c]
        networks.auto = {}
        ports = ["[fd00::5]:8081:81"]
        "#,
    );
}

#[test]
fn pasta_options_with_values_are_caught_too() {
    check(
        r#"
        [containers.p]
        mode = "pasta"
        pasta = ["--netns=/run/netns/x", "--pid", "x.pid", "-t", "8080", "--netns-only", "-fq"]
        "#,
        r"
        t.toml:4:18: error: pasta option `--netns` is set by netctl itself and cannot be given [field: containers.p.pasta[0]]
        t.toml:4:42: error: pasta option `--pid` is set by netctl itself and cannot be given [field: containers.p.pasta[1]]
        ",
    );
}

#[test]
fn normalised_state() {
    let state = check_valid(
        r#"
        [networks.web]
        subnets = [{ subnet = "10.89.0.77/24" }]
        [containers.c]
        networks.web = { ip = "10.89.0.5", mac = "02:AA:00:00:00:01" }
        ports = [
          "8081:81",
          { host_ip = "", host_port = 8080, container_port = 80 },
          { host_ip = "0.0.0.0", host_port = 8082, container_port = 82 },
        ]
        "#,
    );
    assert_eq!(
        state.desired.networks["web"].subnets[0].subnet.to_string(),
        "10.89.0.0/24"
    );
    let ports = state.ports_of("c");
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(
        (
            ports[0].host_ip.as_str(),
            ports[0].host_port,
            ports[0].container_port,
            ports[0].range
        ),
        ("", 8080, 80, 3)
    );
    let mac = state.desired.containers["c"].networks["web"].mac.unwrap();
    assert_eq!(mac.to_string(), "02:aa:00:00:00:01");
    assert!(state.ports_of("nobody").is_empty());
}

#[test]
fn default_gateway_is_the_first_host() {
    check(
        r#"
        [networks.web]
        subnets = [{ subnet = "10.89.0.0/24" }, { subnet = "fd10::/64" }]
        [containers.c]
        networks.web = { ip = "10.89.0.1", ip6 = "fd10::1" }
        "#,
        r"
        t.toml:5:31: error: address 10.89.0.1 is the gateway of subnet 10.89.0.0/24 [field: containers.c.networks.web.ip]
        t.toml:5:50: error: address fd10::1 is the gateway of subnet fd10::/64 [field: containers.c.networks.web.ip6]
        ",
    );
}

#[test]
fn claims_are_first_come_in_file_order_not_name_order() {
    // `b` comes first in the file, so `a` is the one told about the clash.
    check(
        r#"
        [containers.b]
        ports = ["8080:80"]
        [containers.a]
        ports = ["8080:80/tcp"]
        "#,
        "t.toml:5:18: error: host port 8080/tcp on all addresses conflicts with 8080/tcp on all addresses published by container `b` (containers.b.ports[0]) [field: containers.a.ports[0]]",
    );
}

#[test]
fn chosen_host_ports_never_conflict() {
    let state = check_valid(
        r#"
        [containers.a]
        ports = ["80", "80", { container_port = 80 }]
        [containers.b]
        ports = ["80"]
        "#,
    );
    assert!(state.ports_of("a").iter().all(|p| p.host_port == 0));
    assert_eq!(state.ports_of("a").len(), 3);
}

#[test]
fn dropped_array_elements_keep_file_indices_in_fields() {
    // The first subnet fails to decode, so the second is element 0 of the decoded state, but
    // diagnostics about it still say subnets[1].
    check(
        r#"
        [networks.web]
        subnets = [{ subnet = "bad" }, { subnet = "10.89.0.0/24", gateway = "10.89.1.1" }]
        "#,
        r"
        t.toml:3:31: error: invalid subnet `bad`: expected CIDR notation like 10.89.0.0/24 [field: networks.web.subnets[0].subnet]
        t.toml:3:77: error: gateway 10.89.1.1 is not in subnet 10.89.0.0/24 [field: networks.web.subnets[1].gateway]
        ",
    );
}

#[test]
fn quoted_names_render_as_toml_keys() {
    check(
        r#"
        [networks."a.b"]
        mtu = 1
        "#,
        r#"t.toml:3:15: error: mtu must be from 68 to 65535, not 1 [field: networks."a.b".mtu]"#,
    );
}

#[test]
fn diagnostics_serialise_for_json_output() {
    let validated = validate("t.toml", "[networks.host]\n");
    let json = serde_json::to_value(&validated.diagnostics).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{
            "severity": "error",
            "file": "t.toml",
            "line": 1,
            "column": 11,
            "field": "networks.host",
            "message": "network name `host` is reserved (reserved names: none, host, bridge, private, slirp4netns, pasta, container, ns)"
        }])
    );
    assert_eq!(
        serde_json::to_value(&validated).unwrap()["state"],
        serde_json::Value::Null
    );
}

/// The fast pass (places not remembered) may find more than the exact pass, never less: when
/// it finds nothing, the exact pass must find nothing too, and both must decode the same state.
/// Checked on every file of the corpora and on a case where the fast pass over-reports.
#[test]
fn the_unrecorded_pass_never_hides_a_finding() {
    use crate::diagnostic::Sink;
    use crate::path::Spans;

    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus");
    let mut texts = vec![
        // No `ipv6` key: the fast pass cannot tell, warns, and the exact pass clears it.
        "[networks.web]\nsubnets = [{ subnet = \"fd10::/64\" }]\n".to_owned(),
    ];
    for kind in ["valid", "invalid"] {
        for entry in std::fs::read_dir(corpus.join(kind)).unwrap() {
            texts.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
        }
    }
    assert!(texts.len() > 20, "the corpora are missing");
    for text in &texts {
        let (root, errors) = toml::de::DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            continue;
        }
        let mut fast = Sink::default();
        let fast_state = crate::decode_and_check(root.get_ref(), &mut fast, Spans::unrecorded());
        let mut exact = Sink::default();
        let exact_state = crate::decode_and_check(root.get_ref(), &mut exact, Spans::recorded());
        if fast.is_empty() {
            assert!(exact.is_empty(), "the fast pass hid a finding in:\n{text}");
            assert_eq!(fast_state, exact_state);
        }
    }
    assert_eq!(validate("t.toml", &texts[0]).diagnostics, vec![]);
}

#[test]
fn bytes_that_are_not_utf8_are_located() {
    let bytes = b"[networks.web]\nbridge = \"nc-\xc3\xa9-\xff\"\n";
    let validated = crate::validate_bytes("t.toml", bytes);
    assert!(validated.state.is_none());
    assert_eq!(
        validated.render(),
        "t.toml:2:16: error: the file is not valid UTF-8: byte 0xff at offset 31; TOML files are UTF-8\n"
    );
    let ok = crate::validate_bytes("t.toml", b"[networks.web]\n");
    assert!(ok.state.is_some());
}

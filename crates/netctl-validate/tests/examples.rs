//! The shipped examples (`config/examples/*.toml`) must validate with no error and no warning.

use std::path::Path;

use netctl_validate::{Severity, validate};

fn check_example(name: &str) -> netctl_validate::ValidState {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/examples")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let validated = validate(&format!("config/examples/{name}"), &text);
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
fn quickstart_is_valid() {
    let state = check_example("quickstart.toml");
    let demo = &state.desired.networks["demo"];
    assert_eq!(demo.subnets[0].subnet.to_string(), "10.89.10.0/24");
    let names: Vec<_> = state
        .desired
        .containers
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["web"]);
    let web = state.ports_of("web");
    assert_eq!(web.len(), 1);
    assert_eq!(
        (
            web[0].host_ip.as_str(),
            web[0].host_port,
            web[0].container_port,
            web[0].protocol.as_str()
        ),
        ("127.0.0.1", 8080, 80, "tcp")
    );
    // Part 2 joins part 1's network without owning it.
    let client = check_example("quickstart-client.toml");
    assert!(client.desired.networks["demo"].external);
    assert!(
        client.desired.containers["client"]
            .networks
            .contains_key("demo")
    );
    assert!(client.ports_of("client").is_empty());
}

#[test]
fn multi_network_is_valid() {
    let state = check_example("multi-network.toml");
    insta::assert_json_snapshot!(state);
}

#[test]
fn every_example_is_covered() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/examples");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in &names {
        check_example(name);
    }
    assert!(names.len() >= 2);
}

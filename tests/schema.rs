//! `netctl schema` against the files netctl reads and against the validator: every shipped
//! example (and the valid corpus) passes the schema, the schema names exactly the keys the
//! validator accepts, and its enums are exactly the values the validator accepts.

use std::collections::BTreeMap;
use std::path::Path;

use netctl_tests::{describe, netctl, workspace_root};
use serde_json::Value;

/// The schema as `netctl schema` prints it.
fn schema() -> Value {
    let tmp = tempfile::tempdir().unwrap();
    let out = netctl(tmp.path()).arg("schema").output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
}

/// A TOML document as the JSON value editors check against the schema.
fn toml_to_json(text: &str) -> Value {
    toml::from_str(text).expect("valid TOML")
}

/// The schema's complaints about `instance`, one per line (empty: valid).
fn schema_errors(validator: &jsonschema::Validator, instance: &Value) -> String {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn toml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn schema_is_a_stable_document() {
    insta::assert_json_snapshot!(schema());
}

#[test]
fn examples_and_valid_corpus_pass_the_schema() {
    let validator = jsonschema::validator_for(&schema()).expect("the schema is a JSON Schema");
    let root = workspace_root();
    let files: Vec<_> = toml_files(&root.join("config/examples"))
        .into_iter()
        .chain(toml_files(&root.join("tests/corpus/valid")))
        .collect();
    assert!(files.len() >= 4, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let errors = schema_errors(&validator, &toml_to_json(&text));
        assert!(errors.is_empty(), "{}:\n{errors}", file.display());
    }
}

/// The schema refuses what the validator refuses key by key: unknown keys, wrong types and
/// values outside an enum.
#[test]
fn schema_refuses_what_the_decoder_refuses() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    for text in [
        "[networks.a]\nsubnet = \"10.0.0.0/24\"\n",
        "[containers.c]\nmode = \"host\"\n",
        "[containers.c]\nports = [{ host_port = 80 }]\n",
        "[containers.c]\nnetworks.n = { ip = 5 }\n",
        "[networks.a]\nisolate = \"yes\"\n",
        "unknown = 1\n",
    ] {
        let verdict = netctl_validate::validate("t.toml", text);
        assert!(verdict.has_errors(), "{text}");
        let errors = schema_errors(&validator, &toml_to_json(text));
        assert!(!errors.is_empty(), "the schema accepts:\n{text}");
    }
}

/// What the schema says about each table and enum, by path (`*` any name, `[]` any element).
#[derive(Debug, Default)]
struct Shape {
    tables: BTreeMap<String, Vec<String>>,
    enums: BTreeMap<String, Vec<Value>>,
}

fn shape(schema: &Value) -> Shape {
    let mut out = Shape::default();
    walk(schema, schema, "", &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(root: &Value, node: &Value, path: &str, out: &mut Shape) {
    if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let target = root
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling {reference}"));
        walk(root, target, path, out);
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        let keys = out.tables.entry(path.to_owned()).or_default();
        keys.extend(properties.keys().cloned());
        keys.sort();
        for (key, sub) in properties {
            walk(root, sub, &join(path, key), out);
        }
    }
    if let Some(sub) = node.get("additionalProperties").filter(|s| s.is_object()) {
        walk(root, sub, &join(path, "*"), out);
    }
    if let Some(sub) = node.get("items") {
        walk(root, sub, &format!("{path}[]"), out);
    }
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        out.enums
            .entry(path.to_owned())
            .or_default()
            .extend(values.iter().cloned());
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        let Some(alternatives) = node.get(combinator).and_then(Value::as_array) else {
            continue;
        };
        let consts: Option<Vec<Value>> = alternatives
            .iter()
            .map(|a| a.get("const").cloned())
            .collect();
        match consts {
            Some(values) => out.enums.entry(path.to_owned()).or_default().extend(values),
            None => {
                for alternative in alternatives {
                    walk(root, alternative, path, out);
                }
            }
        }
    }
}

#[test]
fn schema_keys_are_the_validators_keys() {
    let from_schema = shape(&schema()).tables;
    let from_validator: BTreeMap<String, Vec<String>> = netctl_validate::known_keys()
        .iter()
        .map(|(path, keys)| {
            let mut keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
            keys.sort();
            ((*path).to_owned(), keys)
        })
        .collect();
    assert_eq!(from_schema, from_validator);
}

/// A small file that puts `value` at the enum `path`, and anything else it needs.
fn enum_fixture(path: &str, value: &Value) -> String {
    let value = serde_json::to_string(value).unwrap();
    match path {
        // A macvlan network needs its subnets.
        "networks.*.driver" => {
            format!(
                "[networks.n]\ndriver = {value}\nsubnets = [{{ subnet = \"192.168.77.0/24\" }}]\n"
            )
        }
        "networks.*.mode" => format!(
            "[networks.n]\ndriver = \"macvlan\"\nmode = {value}\nsubnets = [{{ subnet = \"192.168.77.0/24\" }}]\n"
        ),
        "networks.*.isolate" => format!("[networks.n]\nisolate = {value}\n"),
        "networks.*.ipam_driver" => format!("[networks.n]\nipam_driver = {value}\n"),
        "networks.*.routes[].route_type" => format!(
            "[networks.n]\nroutes = [{{ destination = \"10.20.0.0/16\", route_type = {value} }}]\n"
        ),
        "containers.*.mode" => format!("[containers.c]\nmode = {value}\n"),
        "containers.*.ports[].protocol" => format!(
            "[containers.c]\nports = [{{ host_port = 8080, container_port = 80, protocol = {value} }}]\n"
        ),
        "containers.*.slirp4netns.port_handler" => format!(
            "[containers.c]\nmode = \"slirp4netns\"\nslirp4netns = {{ port_handler = {value} }}\n"
        ),
        other => panic!("the schema has a new enum at {other}: add a fixture for it here"),
    }
}

/// Every value of every enum in the schema is accepted by the validator, a value outside it is
/// refused, and the enums of the types are the schema's.
#[test]
fn schema_enums_are_the_validators_values() {
    let enums = shape(&schema()).enums;
    for (path, values) in &enums {
        for value in values {
            let text = enum_fixture(path, value);
            let verdict = netctl_validate::validate("t.toml", &text);
            assert!(!verdict.has_errors(), "{text}{}", verdict.render());
        }
        let text = enum_fixture(path, &Value::from("bogus"));
        assert!(
            netctl_validate::validate("t.toml", &text).has_errors(),
            "{text}"
        );
    }
    let strings =
        |path: &str| -> Vec<&str> { enums[path].iter().map(|v| v.as_str().unwrap()).collect() };
    let modes: Vec<&str> = netctl_types::ContainerMode::ALL
        .iter()
        .map(|m| m.as_str())
        .collect();
    assert_eq!(strings("containers.*.mode"), modes);
    let protocols: Vec<&str> = netctl_types::Protocol::ALL
        .iter()
        .map(|p| p.as_str())
        .collect();
    assert_eq!(strings("containers.*.ports[].protocol"), protocols);
    assert_eq!(
        strings("networks.*.driver"),
        [
            netctl_types::NetworkDriver::Bridge.as_str(),
            netctl_types::NetworkDriver::Macvlan.as_str()
        ]
    );
    let macvlan_modes: Vec<&str> = netctl_types::MacvlanMode::ALL
        .iter()
        .map(|m| m.as_str())
        .collect();
    assert_eq!(strings("networks.*.mode"), macvlan_modes);
    assert_eq!(
        enums["networks.*.isolate"],
        [Value::from(false), Value::from(true), Value::from("strict")]
    );
}

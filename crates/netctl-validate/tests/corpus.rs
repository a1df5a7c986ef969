//! The invalid-input corpus (`tests/corpus/invalid`) and valid edge cases (`tests/corpus/valid`).
//!
//! Every invalid file must produce at least one error, every diagnostic must have a position,
//! and the rendered diagnostics are snapshotted, one snapshot per file. Every valid file must
//! produce no error and no warning; its normalised state is snapshotted as JSON and must equal
//! what plain serde makes of the same text (so the schema and the validator cannot drift).

use std::path::{Path, PathBuf};

use netctl_types::DesiredState;
use netctl_validate::{Severity, validate};

fn corpus_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus")
        .join(kind)
}

/// Sorted `*.toml` files of a corpus directory.
fn corpus_files(kind: &str) -> Vec<PathBuf> {
    let dir = corpus_dir(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// The name diagnostics carry: relative to the repository root.
fn display_name(kind: &str, path: &Path) -> String {
    format!(
        "tests/corpus/{kind}/{}",
        path.file_name().unwrap().to_string_lossy()
    )
}

#[test]
fn invalid_corpus_is_large_and_well_named() {
    let files = corpus_files("invalid");
    assert!(files.len() >= 35, "only {} invalid files", files.len());
    let mut numbers = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (number, rest) = name.split_once('-').expect("NN-short-name.toml");
        assert!(
            number.len() == 2 && number.bytes().all(|b| b.is_ascii_digit()),
            "{name}: expected a two-digit prefix"
        );
        assert!(rest.len() > ".toml".len(), "{name}: expected a short name");
        numbers.push(number.to_owned());
    }
    let before = numbers.len();
    numbers.dedup();
    assert_eq!(numbers.len(), before, "two corpus files share a number");
}

#[test]
fn invalid() {
    insta::glob!("../../../tests/corpus/invalid", "*.toml", |path| {
        let name = display_name("invalid", path);
        let text = std::fs::read_to_string(path).unwrap();
        let validated = validate(&name, &text);
        assert!(validated.has_errors(), "{name} produced no error");
        assert!(validated.state.is_none(), "{name} produced a state");
        for d in &validated.diagnostics {
            assert!(d.line > 0 && d.column > 0, "{name}: no position in {d}");
            assert_eq!(d.file, name);
        }
        let positions: Vec<_> = validated
            .diagnostics
            .iter()
            .map(|d| (d.line, d.column))
            .collect();
        assert!(positions.is_sorted(), "{name}: diagnostics not sorted");
        insta::assert_snapshot!(validated.render());
    });
}

#[test]
fn valid() {
    insta::glob!("../../../tests/corpus/valid", "*.toml", |path| {
        let name = display_name("valid", path);
        let text = std::fs::read_to_string(path).unwrap();
        let validated = validate(&name, &text);
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
        let state = validated.state.as_ref().expect("a valid file has a state");

        // serde alone reads the same state (before subnet normalisation).
        let mut plain: DesiredState = toml::from_str(&text).unwrap();
        for network in plain.networks.values_mut() {
            for subnet in &mut network.subnets {
                subnet.subnet = subnet.subnet.trunc();
            }
        }
        assert_eq!(plain, state.desired, "{name}: serde and validator disagree");
        assert_eq!(state.ports.len(), state.desired.containers.len());

        insta::assert_json_snapshot!(validated);
    });
}

#[test]
fn corpora_are_not_empty() {
    assert!(!corpus_files("valid").is_empty());
}

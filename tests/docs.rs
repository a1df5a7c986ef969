//! The user docs (README.md, docs/*.md) against the code: every TOML example in them is what
//! it claims to be (a valid desired-state file, a valid settings file, the shipped podman
//! drop-in), every key the validator accepts and every setting is documented, every command
//! has its section, and every link stays inside the repository and points at a file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use netctl_tests::{describe, netctl, workspace_root};

/// README.md and every docs/*.md, sorted.
fn doc_files() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fenced code block: its info string, its text, and where it starts.
#[derive(Debug)]
struct Block {
    info: String,
    text: String,
    line: usize,
}

fn code_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (n, line) in markdown.lines().enumerate() {
        match (&mut open, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_owned(),
                    text: String::new(),
                    line: n + 1,
                });
            }
            (Some(_), Some(_)) => blocks.push(open.take().expect("open")),
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a code block is not closed");
    blocks
}

/// Every TOML block is checked by what its info string says it is:
/// `toml` a desired-state file (no error, no warning), `toml settings` a settings file netctl
/// accepts, `toml containers.conf` the podman drop-in netctl ships.
#[test]
fn toml_examples_are_what_they_claim() {
    let root = workspace_root();
    let tmp = tempfile::tempdir().unwrap();
    let dropin: toml::Table =
        toml::from_str(&read(&root.join("config/podman/50-netctl.conf"))).unwrap();
    let mut checked = 0;
    for file in doc_files() {
        for block in code_blocks(&read(&file)) {
            let at = format!("{}:{}", file.display(), block.line);
            match block.info.as_str() {
                "toml" => {
                    let verdict = netctl_validate::validate(&at, &block.text);
                    assert!(
                        verdict.diagnostics.is_empty(),
                        "{at}:\n{}",
                        verdict.render()
                    );
                }
                "toml settings" => {
                    let settings = tmp.path().join("netctl.toml");
                    std::fs::write(&settings, &block.text).unwrap();
                    let out = netctl(tmp.path()).arg("settings").output().unwrap();
                    assert!(out.status.success(), "{at}: {}", describe(&out));
                }
                "toml containers.conf" => {
                    let shown: toml::Table =
                        toml::from_str(&block.text).unwrap_or_else(|e| panic!("{at}: {e}"));
                    assert_eq!(shown, dropin, "{at}: not the shipped drop-in");
                }
                info if info.starts_with("toml") => panic!("{at}: unknown block kind `{info}`"),
                _ => continue,
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} TOML examples found");
}

/// docs/toml.md has a table row for every key the validator accepts, and no row for a key it
/// does not.
#[test]
fn every_key_is_documented() {
    let text = read(&workspace_root().join("docs/toml.md"));
    let rows: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(key, _)| key))
        .collect();
    let keys: BTreeSet<&str> = netctl_validate::known_keys()
        .iter()
        .flat_map(|(_, keys)| keys.iter().copied())
        .collect();
    let undocumented: Vec<_> = keys.difference(&rows).collect();
    let unknown: Vec<_> = rows.difference(&keys).collect();
    assert!(
        undocumented.is_empty(),
        "keys missing from docs/toml.md: {undocumented:?}"
    );
    assert!(
        unknown.is_empty(),
        "docs/toml.md documents keys netctl refuses: {unknown:?}"
    );
}

/// The settings docs, the shipped settings file and netctl agree: every setting has a row in
/// docs/settings.md, config/netctl.toml shows each at its default (commented out), and
/// uncommenting all of them gives a file netctl accepts.
#[test]
fn every_setting_is_documented_and_shipped() {
    let root = workspace_root();
    let documented: BTreeSet<String> = read(&root.join("docs/settings.md"))
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(key, _)| key.to_owned()))
        .collect();
    let shipped = read(&root.join("config/netctl.toml"));
    let uncommented: String = shipped
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| l.contains(" = "))
        .flat_map(|l| [l, "\n"])
        .collect();
    let keys: BTreeSet<String> = uncommented
        .lines()
        .map(|l| l.split(" = ").next().unwrap().to_owned())
        .collect();
    assert_eq!(keys, documented);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("netctl.toml"), &uncommented).unwrap();
    let out = netctl(tmp.path()).arg("settings").output().unwrap();
    assert!(out.status.success(), "{uncommented}{}", describe(&out));
    // The shipped file shows every setting at its default.
    let shown: toml::Table = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let shipped: toml::Table = toml::from_str(&uncommented).unwrap();
    for (key, value) in &shipped {
        // Paths differ (the test's own tree); aardvark's default is looked up when used.
        if !key.ends_with("_dir") && key != "aardvark_binary" {
            assert_eq!(shown.get(key), Some(value), "{key}");
        }
    }
}

/// Every command `netctl --help` lists has a section in docs/commands.md.
#[test]
fn every_command_has_a_section() {
    let tmp = tempfile::tempdir().unwrap();
    let out = netctl(tmp.path()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let commands: Vec<&str> = help
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands section")
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 10, "{commands:?}");
    let text = read(&workspace_root().join("docs/commands.md"));
    let headed: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .flat_map(|h| h.split([',', ' ']))
        .collect();
    for command in commands {
        assert!(
            headed.contains(command),
            "docs/commands.md has no section for {command}"
        );
    }
}

/// Links are relative, stay inside the repository and name files that exist (a clone has
/// nothing beside it).
#[test]
fn links_stay_inside_the_repository() {
    let root = workspace_root().canonicalize().unwrap();
    for file in doc_files() {
        let text = read(&file);
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let target = &rest[..rest.find(')').expect("a closed link")];
            assert!(
                !target.contains("://"),
                "{}: link to {target} leaves the repository",
                file.display()
            );
            let path = target.split('#').next().unwrap();
            if path.is_empty() {
                continue;
            }
            let resolved = file.parent().unwrap().join(path);
            let resolved = resolved
                .canonicalize()
                .unwrap_or_else(|e| panic!("{}: link to {target}: {e}", file.display()));
            assert!(
                resolved.starts_with(&root),
                "{}: link to {target} leaves the repository",
                file.display()
            );
        }
    }
}

//! Hostile input for the TOML front door: random bytes and random edits of every valid file
//! (the valid corpus and `config/examples`). Whatever comes in, `validate` must not panic, every
//! diagnostic must point somewhere with a message, and a file is either refused with an error
//! or accepted with a state, never both and never neither.

use std::path::{Path, PathBuf};

use netctl_validate::{Severity, validate};
use proptest::prelude::*;

fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [
        "tests/corpus/valid",
        "tests/corpus/invalid",
        "config/examples",
    ] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "toml") {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// Fragments that tend to break parsers and validators.
const FRAGMENTS: &[&str] = &[
    "\"",
    "'",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    ",",
    ".",
    "\n",
    "#",
    "\\",
    "\\u0000",
    "\u{0}",
    "\u{1b}[31m",
    "é",
    "😀",
    "..",
    "../../x",
    "/",
    "lo",
    "0",
    "-1",
    "65535",
    "65536",
    "4294967296",
    "99999999999999999999",
    "1e400",
    "nan",
    "inf",
    "true",
    "[]",
    "{}",
    "\"\"",
    "networks",
    "containers",
    "subnets",
    "ports",
    "host_port",
    "container_port",
    "range",
    "protocol",
    "netns",
    "mode",
    "interface",
    "bridge",
    "ip",
    "ip6",
    "mac",
    "aliases",
    "id",
    "10.89.0.0/24",
    "fd00::/64",
    "::",
    "0.0.0.0",
    "255.255.255.255",
    "10.89.0.0/33",
    "ff:ff:ff:ff:ff:ff",
    "managed",
    "/proc/1/ns/net",
    "pasta",
    "slirp4netns",
    "strict",
];

fn check(text: &str) {
    let validated = validate("fuzz.toml", text);
    for d in &validated.diagnostics {
        assert!(d.line >= 1 && d.column >= 1, "{d} has no place");
        assert!(!d.message.trim().is_empty(), "{d} has no message");
    }
    let errors = validated.count(Severity::Error) > 0;
    assert_eq!(
        errors,
        validated.state.is_none(),
        "refused exactly when there is an error"
    );
}

/// One edit: cut a range out, or put a fragment (or a long run of one) in.
#[derive(Debug, Clone)]
enum Edit {
    Cut(usize, usize),
    Insert(usize, usize, usize),
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for edit in edits {
        match *edit {
            Edit::Cut(at, len) => {
                let at = at % (bytes.len() + 1);
                let end = (at + len % 32).min(bytes.len());
                bytes.drain(at..end);
            }
            Edit::Insert(at, which, repeat) => {
                let at = at % (bytes.len() + 1);
                let piece =
                    FRAGMENTS[which % FRAGMENTS.len()].repeat(1 + repeat % 3 * (repeat % 500));
                bytes.splice(at..at, piece.into_bytes());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(a, l)| Edit::Cut(a, l)),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(a, w, r)| Edit::Insert(a, w, r)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn edited_files_never_panic(seed in any::<usize>(), edits in proptest::collection::vec(edit(), 1..8)) {
        let seeds = seeds();
        let text = apply(&seeds[seed % seeds.len()], &edits);
        check(&text);
    }

    #[test]
    fn random_text_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(&String::from_utf8_lossy(&bytes));
    }
}

//! Parse and validate netctl desired-state TOML, reporting every error with its place.
//!
//! [`validate`] takes a file name and its text and returns a [`Validated`]: all diagnostics,
//! sorted by position, and — only when none of them is an error — the [`ValidState`] to plan
//! from. It works in three passes:
//!
//! 1. parse with `toml`'s span-preserving parser (syntax errors stop here, all of them reported);
//! 2. `decode`: walk the tree into [`netctl_types::DesiredState`], checking keys, types and
//!    single values, remembering where each field sits;
//! 3. `check`: relations between fields (subnets, addresses, uniqueness, modes, ports).
//!
//! Passes 2 and 3 first run without remembering where fields sit, and again with it only when
//! they found something (see `path::Spans`).
//!
//! Architecture invariant: this crate is pure. Text in, diagnostics out; it never reads files,
//! asks the kernel, or looks at the host (so host-dependent facts, like which subnets are free,
//! are the planner's to check).

mod check;
mod decode;
mod diagnostic;
mod path;
mod settings;
mod suggest;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use netctl_types::{DesiredState, PortMapping};
use serde::Serialize;
use toml::de::DeTable;

pub use diagnostic::{Diagnostic, Severity};
pub use settings::{Expect, check_setting_text, check_settings_file};

use diagnostic::Sink;
use path::Spans;

/// Every table of a desired-state file that is read key by key, as a path (`*` for any name,
/// `[]` for any array element, "" for the top level), with the keys accepted there; any other
/// key is an error. For tools that must agree with the validator (the JSON Schema, the docs).
pub fn known_keys() -> &'static [(&'static str, &'static [&'static str])] {
    decode::TABLE_KEYS
}

/// A desired state that passed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidState {
    /// The state as written, with every subnet normalised to its network address.
    pub desired: DesiredState,
    /// Each container's published ports as podman port mappings, normalised (sorted and folded
    /// into ranges by [`netctl_types::normalize_ports`]). Every container has an entry.
    pub ports: BTreeMap<String, Vec<PortMapping>>,
}

impl ValidState {
    /// The normalised port mappings of `container` (empty for an unknown name).
    pub fn ports_of(&self, container: &str) -> &[PortMapping] {
        self.ports.get(container).map_or(&[], Vec::as_slice)
    }
}

/// The outcome of [`validate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Validated {
    /// `Some` exactly when no diagnostic is an error.
    pub state: Option<ValidState>,
    /// Every finding, sorted by line and column.
    pub diagnostics: Vec<Diagnostic>,
}

impl Validated {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.count(Severity::Error) > 0
    }

    /// How many diagnostics have `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    }

    /// All diagnostics in their text form, one per line (each line ends with `\n`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for diagnostic in &self.diagnostics {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{diagnostic}");
        }
        out
    }
}

/// Validates the desired-state TOML `text`; `file` is only used to label diagnostics.
pub fn validate(file: &str, text: &str) -> Validated {
    let mut sink = Sink::default();
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for error in errors {
            let span = error.span().unwrap_or(0..0);
            let mut message = format!("TOML syntax error: {}", error.message().trim_end());
            // toml names neither the duplicated key nor the table; the span holds it.
            if message.ends_with("duplicate key")
                && let Some(key) = text.get(span.clone()).filter(|k| !k.is_empty())
            {
                message = format!("{message} `{key}`");
            }
            sink.push(Severity::Error, span, String::new(), message);
        }
        return Validated {
            state: None,
            diagnostics: sink.finish(file, text),
        };
    }
    // A file without findings (the common case, and the one that must be fast) needs no
    // places: decode and check without remembering them, and only when that finds something,
    // run again with places remembered, so every finding points at its field.
    let (desired, ports) = decode_and_check(root.get_ref(), &mut sink, Spans::unrecorded());
    if sink.is_empty() {
        return Validated {
            state: Some(ValidState { desired, ports }),
            diagnostics: Vec::new(),
        };
    }
    let mut sink = Sink::default();
    let (desired, ports) = decode_and_check(root.get_ref(), &mut sink, Spans::recorded());
    let state = (!sink.has_errors()).then_some(ValidState { desired, ports });
    Validated {
        state,
        diagnostics: sink.finish(file, text),
    }
}

/// Validates a file's raw bytes: text that is not UTF-8 is one error at the first bad byte
/// (line and column counted in the valid text before it), anything else as [`validate`].
pub fn validate_bytes(file: &str, bytes: &[u8]) -> Validated {
    match std::str::from_utf8(bytes) {
        Ok(text) => validate(file, text),
        Err(err) => {
            let valid = err.valid_up_to();
            // The valid prefix, so the position is counted in characters the user sees.
            let text = String::from_utf8_lossy(&bytes[..valid]).into_owned();
            let mut sink = Sink::default();
            sink.push(
                Severity::Error,
                valid..valid,
                String::new(),
                format!(
                    "the file is not valid UTF-8: byte 0x{:02x} at offset {valid}; TOML files are UTF-8",
                    bytes[valid]
                ),
            );
            Validated {
                state: None,
                diagnostics: sink.finish(file, &text),
            }
        }
    }
}

/// Validates a desired state that came from a request rather than a file (podman's netavark
/// JSON, a CNI configuration): it is written out as TOML and checked exactly as a file would
/// be, so every front door runs the same rules on names, ports and addresses. `origin` labels
/// the diagnostics; their lines and columns point into that TOML text, so a front door shows
/// each one as [`Diagnostic::field`] and [`Diagnostic::message`] (see [`Validated::summary`]).
pub fn validate_state(origin: &str, state: &DesiredState) -> Validated {
    match toml::to_string(state) {
        Ok(text) => validate(origin, &text),
        // Only a netns path that is not UTF-8 cannot be written as TOML.
        Err(err) => Validated {
            state: None,
            diagnostics: vec![Diagnostic {
                severity: Severity::Error,
                file: origin.to_owned(),
                line: 0,
                column: 0,
                field: String::new(),
                message: format!("cannot be checked: {err}"),
            }],
        },
    }
}

impl Validated {
    /// The errors alone, as `field: message` joined by `; ` (for a front door that has no
    /// file to point into).
    pub fn summary(&self) -> String {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| {
                if d.field.is_empty() {
                    d.message.clone()
                } else {
                    format!("{}: {}", netctl_types::Shown(&d.field), d.message)
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn decode_and_check(
    root: &DeTable<'_>,
    sink: &mut Sink,
    spans: Spans,
) -> (DesiredState, BTreeMap<String, Vec<PortMapping>>) {
    let (mut desired, spans) = decode::decode(root, sink, spans);
    let ports = check::check(&mut desired, &spans, sink);
    (desired, ports)
}

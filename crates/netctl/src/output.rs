//! Printing results and failures in the chosen output format.
//!
//! Text goes to stdout for results and stderr for diagnostics; JSON is always exactly one object
//! on stdout, for results and for failures alike (`{"error": "..."}`), so scripts can parse it.

use std::io::Write as _;

use serde::Serialize;

use crate::cli::OutputFormat;

#[derive(Debug)]
pub struct Reporter {
    format: OutputFormat,
}

/// A failure whose details are a list of diagnostics (invalid input). Printed in full.
#[derive(Debug, thiserror::Error)]
#[error("{summary}")]
pub struct InvalidInput {
    pub summary: String,
    /// Rendered `FILE:LINE:COL: ...` lines.
    pub lines: Vec<String>,
    /// The same diagnostics as JSON values.
    pub json: Vec<serde_json::Value>,
}

impl Reporter {
    pub fn new(format: OutputFormat) -> Reporter {
        Reporter { format }
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// Prints a result: `text` in text mode, `json` in JSON mode.
    pub fn result<T: Serialize>(&self, text: &str, json: &T) {
        let mut out = std::io::stdout().lock();
        let written = match self.format {
            OutputFormat::Text => out.write_all(text.as_bytes()),
            OutputFormat::Json => serde_json::to_writer_pretty(&mut out, json)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n")),
        };
        // A closed pipe (`netctl show | head`) is not an error worth a message.
        drop(written);
    }

    /// Prints a line on stderr in text mode (notes, warnings); nothing in JSON mode.
    pub fn note(&self, line: &str) {
        if self.format == OutputFormat::Text {
            eprintln!("{line}");
        }
    }

    /// Prints a failure with its whole cause chain.
    pub fn failure(&self, err: &anyhow::Error) {
        let chain = err
            .chain()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": ");
        let invalid = err.downcast_ref::<InvalidInput>();
        let hint = root_hint(err);
        match self.format {
            OutputFormat::Text => {
                if let Some(invalid) = invalid {
                    for line in &invalid.lines {
                        eprintln!("{line}");
                    }
                }
                eprintln!("Error: {chain}");
                if let Some(hint) = hint {
                    eprintln!("hint: {hint}");
                }
            }
            OutputFormat::Json => {
                let mut obj = serde_json::json!({ "error": chain });
                if let Some(invalid) = invalid {
                    obj["diagnostics"] = serde_json::Value::Array(invalid.json.clone());
                }
                if let Some(hint) = hint {
                    obj["hint"] = hint.into();
                }
                println!("{obj}");
            }
        }
    }
}

/// `1 network`, `2 networks`: a count with its noun, singular or plural (`plural` spelled
/// out: "address" / "addresses").
pub fn counted(n: usize, singular: &str, plural: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else {
        format!("{n} {plural}")
    }
}

/// A hint for a failure a user without root gets: netctl's state, namespaces and links are
/// root's, and "Permission denied" or a refused state directory alone does not say so. Mistakes
/// in the input are the input's, whoever runs netctl.
fn root_hint(err: &anyhow::Error) -> Option<&'static str> {
    let input = err.downcast_ref::<InvalidInput>().is_some();
    (!input && !nix::unistd::geteuid().is_root()).then_some(
        "netctl manages the host's network and keeps its state where only root may write: run it as root (sudo netctl ...); `netctl validate` needs no root",
    )
}

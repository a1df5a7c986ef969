//! `netctl validate -f FILE`: syntax and meaning, all errors at once; touches nothing.

use std::path::Path;

use anyhow::Context as _;
use netctl_validate::{Severity, Validated};
use serde_json::json;

use crate::Outcome;
use crate::cli::FileArg;
use crate::output::{InvalidInput, Reporter, counted};

pub fn run(args: &FileArg, reporter: &Reporter) -> anyhow::Result<Outcome> {
    let (validated, _) = load(&args.file)?;
    let state = validated.state.as_ref().expect("no errors means a state");
    for diag in &validated.diagnostics {
        reporter.note(&diag.to_string());
    }
    let text = format!(
        "{}: valid ({}, {})\n",
        args.file.display(),
        counted(state.desired.networks.len(), "network", "networks"),
        counted(state.desired.containers.len(), "container", "containers")
    );
    reporter.result(
        &text,
        &json!({
            "file": args.file.display().to_string(),
            "valid": true,
            "networks": state.desired.networks.len(),
            "containers": state.desired.containers.len(),
            "diagnostics": validated.diagnostics,
        }),
    );
    Ok(Outcome::Success)
}

/// Reads and validates a desired-state file; any error-severity diagnostic is a failure that
/// carries every diagnostic. Returns the file's text too.
pub fn load(path: &Path) -> anyhow::Result<(Validated, String)> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read desired-state file {}", path.display()))?;
    let validated = netctl_validate::validate_bytes(&path.display().to_string(), &bytes);
    let errors = validated
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    if errors > 0 || validated.state.is_none() {
        return Err(InvalidInput {
            summary: format!(
                "{}: {errors} error{} in desired state; nothing was changed",
                path.display(),
                if errors == 1 { "" } else { "s" }
            ),
            lines: validated
                .diagnostics
                .iter()
                .map(ToString::to_string)
                .collect(),
            json: validated
                .diagnostics
                .iter()
                .map(|d| serde_json::to_value(d).expect("diagnostics serialize"))
                .collect(),
        }
        .into());
    }
    // No errors: the bytes were UTF-8.
    let text = String::from_utf8(bytes).expect("validated text is UTF-8");
    Ok((validated, text))
}

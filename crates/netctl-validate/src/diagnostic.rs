//! Diagnostics: what the validator tells the user, with a stable text form and a JSON form.
//!
//! The text form is `FILE:LINE:COL: SEVERITY: MESSAGE [field: PATH]` (the bracket is left out
//! when no field applies, as for a TOML syntax error). Lines and columns are 1-based; columns
//! count characters, not bytes, so they match what an editor shows.

use std::fmt;
use std::ops::Range;

use serde::Serialize;

/// How bad a diagnostic is. Only errors make the file invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file is invalid; nothing may be applied.
    Error,
    /// The file is valid but probably not what was meant.
    Warning,
    /// Information, e.g. how a value was normalised.
    Note,
}

impl Severity {
    /// The word shown in the text form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding, pointing at the exact key or value it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error, warning or note.
    pub severity: Severity,
    /// The file name as given to [`crate::validate`].
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Dotted path of the field, like `networks.web.subnets[0].gateway`; empty for syntax errors.
    pub field: String,
    /// What is wrong, in one sentence.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.severity, self.message
        )?;
        if !self.field.is_empty() {
            write!(f, " [field: {}]", self.field)?;
        }
        Ok(())
    }
}

/// A diagnostic before its byte span is turned into a line and column.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub severity: Severity,
    pub span: Range<usize>,
    pub field: String,
    pub message: String,
}

/// Collects diagnostics while checking.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pending: Vec<Pending>,
}

impl Sink {
    pub fn push(&mut self, severity: Severity, span: Range<usize>, field: String, message: String) {
        self.pending.push(Pending {
            severity,
            span,
            field,
            message,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn has_errors(&self) -> bool {
        self.pending.iter().any(|p| p.severity == Severity::Error)
    }

    /// Resolves positions and sorts by place; findings at the same place keep the order in
    /// which they were made, so output is stable.
    pub fn finish(self, file: &str, text: &str) -> Vec<Diagnostic> {
        let index = LineIndex::new(text);
        let mut out: Vec<Diagnostic> = self
            .pending
            .into_iter()
            .map(|p| {
                let (line, column) = index.position(text, p.span.start);
                Diagnostic {
                    severity: p.severity,
                    file: file.to_owned(),
                    line,
                    column,
                    field: p.field,
                    message: p.message,
                }
            })
            .collect();
        out.sort_by_key(|d| (d.line, d.column));
        out
    }
}

/// Byte offset → 1-based line and character column.
struct LineIndex {
    /// Byte offset where each line starts.
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { starts }
    }

    fn position(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|&start| start <= offset);
        let line_start = self.starts[line - 1];
        let column = text
            .get(line_start..offset)
            .map_or(offset - line_start, |s| s.chars().count());
        (line, column + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_characters() {
        let text = "a = 1\nb = \"ä\" x\n\nlast";
        let index = LineIndex::new(text);
        assert_eq!(index.position(text, 0), (1, 1));
        assert_eq!(index.position(text, 4), (1, 5));
        assert_eq!(index.position(text, 5), (1, 6));
        assert_eq!(index.position(text, 6), (2, 1));
        // "ä" is two bytes but one column.
        let x = text.find('x').unwrap();
        assert_eq!(index.position(text, x), (2, 9));
        assert_eq!(index.position(text, text.len()), (4, 5));
        assert_eq!(index.position("", 0), (1, 1));
    }

    #[test]
    fn display_form_is_stable() {
        let mut d = Diagnostic {
            severity: Severity::Error,
            file: "f.toml".into(),
            line: 3,
            column: 7,
            field: "networks.web.mtu".into(),
            message: "mtu must be from 68 to 65535, not 10".into(),
        };
        assert_eq!(
            d.to_string(),
            "f.toml:3:7: error: mtu must be from 68 to 65535, not 10 [field: networks.web.mtu]"
        );
        d.field.clear();
        d.severity = Severity::Note;
        assert_eq!(
            d.to_string(),
            "f.toml:3:7: note: mtu must be from 68 to 65535, not 10"
        );
    }
}

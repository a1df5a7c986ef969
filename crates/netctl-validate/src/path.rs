//! Field paths and where each field sits in the source text.
//!
//! Decoding drops array elements that cannot be decoded, so an element's index in the decoded
//! [`netctl_types::DesiredState`] can differ from its index in the file. [`Spans`] therefore maps
//! the *decoded* path to the *file* path and the key/value spans; checks that run on decoded
//! values ask it where to point and which field name to show.

use std::fmt;
use std::ops::Range;
use std::rc::Rc;

use rustc_hash::FxHashMap;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Segment {
    /// Shared: paths are cloned for every field a file writes (tens of thousands in a large
    /// file), and a clone should not copy every key.
    Key(Rc<str>),
    Index(usize),
}

/// A dotted path like `networks.web.subnets[0].gateway`; keys that are not bare TOML keys are
/// quoted (`networks."a.b"`), so the path is unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// A path of keys only.
    pub fn keys(keys: &[&str]) -> Self {
        Self(keys.iter().map(|k| Segment::Key(Rc::from(*k))).collect())
    }

    pub fn key(&self, key: &str) -> Self {
        self.push(Segment::Key(Rc::from(key)))
    }

    fn push(&self, segment: Segment) -> Self {
        let mut out = Vec::with_capacity(self.0.len() + 1);
        out.extend(self.0.iter().cloned());
        out.push(segment);
        Self(out)
    }

    pub fn index(&self, index: usize) -> Self {
        self.push(Segment::Index(index))
    }

    fn parent(&self) -> Option<Self> {
        let mut out = self.clone();
        out.0.pop().map(|_| out)
    }

    fn starts_with(&self, prefix: &Self) -> bool {
        self.0.starts_with(&prefix.0)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn join_tail(&self, other: &Self, from: usize) -> Self {
        let mut out = self.clone();
        out.0.extend(other.0[from..].iter().cloned());
        out
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !key.is_empty()
                        && key
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if bare {
                        f.write_str(key)?;
                    } else {
                        // TOML's own quoting: only quotes, backslashes and control characters
                        // are escaped, so `networks."réseau"` reads as the user wrote it.
                        f.write_str("\"")?;
                        for ch in key.chars() {
                            match ch {
                                '"' => f.write_str("\\\"")?,
                                '\\' => f.write_str("\\\\")?,
                                c if c.is_control() => write!(f, "\\u{:04X}", u32::from(c))?,
                                c => write!(f, "{c}")?,
                            }
                        }
                        f.write_str("\"")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A decoded path and its counterpart in the file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Here {
    /// Path in the decoded state.
    pub state: FieldPath,
    /// Path in the file.
    pub file: FieldPath,
}

impl Here {
    pub fn key(&self, key: &str) -> Self {
        let key = Segment::Key(Rc::from(key));
        Self {
            state: self.state.push(key.clone()),
            file: self.file.push(key),
        }
    }

    /// Element `file` of an array, which is element `state` once decoded.
    pub fn index(&self, state: usize, file: usize) -> Self {
        Self {
            state: self.state.index(state),
            file: self.file.index(file),
        }
    }
}

/// Which part of a `key = value` pair a diagnostic points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The key (for names and unexpected keys).
    Key,
    /// The value (for everything about the value).
    Value,
}

#[derive(Debug, Clone)]
struct Location {
    /// The path in the file, when it differs from the decoded path (an earlier array element
    /// was dropped); almost always `None`.
    file: Option<FieldPath>,
    key: Option<Range<usize>>,
    value: Range<usize>,
}

/// Where every decoded field came from.
///
/// Remembering every field's place costs as much as decoding (a map entry per field: tens of
/// thousands in a large file), and it is only needed to point at findings. So a first pass runs
/// with [`Spans::unrecorded`], which remembers nothing and answers conservatively: it may
/// produce findings a recorded pass would not, never fewer. Only when that pass finds something
/// does validation run again with [`Spans::recorded`] to place every finding exactly.
#[derive(Debug, Default)]
pub(crate) struct Spans {
    by_state: FxHashMap<FieldPath, Location>,
    recording: bool,
}

impl Spans {
    /// Spans that remember every field.
    pub fn recorded() -> Self {
        Self {
            by_state: FxHashMap::default(),
            recording: true,
        }
    }

    /// Spans that remember nothing (see the type's documentation).
    pub fn unrecorded() -> Self {
        Self::default()
    }

    pub fn record(&mut self, here: &Here, key: Option<Range<usize>>, value: Range<usize>) {
        if !self.recording {
            return;
        }
        self.by_state.insert(
            here.state.clone(),
            Location {
                file: (here.file != here.state).then(|| here.file.clone()),
                key,
                value,
            },
        );
    }

    /// The field name to show and the span to point at for a decoded path. A path that was not
    /// written (a default) falls back to its nearest written ancestor.
    pub fn locate(&self, state: &FieldPath, target: Target) -> (String, Range<usize>) {
        match self.nearest(state) {
            Some((path, loc)) => {
                let field = match &loc.file {
                    Some(file) => file.join_tail(state, path.len()),
                    None => state.clone(),
                };
                let span = match target {
                    Target::Key => loc.key.clone().unwrap_or_else(|| loc.value.clone()),
                    Target::Value => loc.value.clone(),
                };
                (field.to_string(), span)
            }
            None => (state.to_string(), 0..0),
        }
    }

    /// The nearest written ancestor of a decoded path (the path itself when it was written).
    fn nearest(&self, state: &FieldPath) -> Option<(FieldPath, &Location)> {
        let mut probe = Some(state.clone());
        while let Some(path) = probe {
            if let Some(loc) = self.by_state.get(&path) {
                return Some((path, loc));
            }
            probe = path.parent();
        }
        None
    }

    /// Forgets a decoded path and everything under it: used when an array element is dropped,
    /// so the next element, which takes its decoded index, inherits none of its fields.
    pub fn forget_under(&mut self, state: &FieldPath) {
        if !self.recording {
            return;
        }
        self.by_state.retain(|path, _| !path.starts_with(state));
    }

    /// Whether the file wrote this field (rather than leaving it at its default). Unrecorded
    /// spans say yes: a check that depends on it may then report more, never less.
    pub fn is_written(&self, state: &FieldPath) -> bool {
        !self.recording || self.by_state.contains_key(state)
    }

    /// Where a decoded path starts in the file, for ordering "first" and "later" occurrences.
    pub fn position(&self, state: &FieldPath) -> usize {
        if !self.recording {
            return 0;
        }
        self.nearest(state)
            .map_or(0, |(_, loc)| loc.key.as_ref().unwrap_or(&loc.value).start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_dotted_with_quotes_when_needed() {
        let p = FieldPath::keys(&["networks", "web"])
            .key("subnets")
            .index(0)
            .key("gateway");
        assert_eq!(p.to_string(), "networks.web.subnets[0].gateway");
        assert_eq!(
            FieldPath::keys(&["networks", "a.b"]).to_string(),
            "networks.\"a.b\""
        );
        assert_eq!(FieldPath::default().to_string(), "");
    }

    #[test]
    fn locate_maps_state_indices_to_file_indices_and_falls_back() {
        let mut spans = Spans::recorded();
        let ports = Here::default().key("containers").key("c").key("ports");
        spans.record(&ports, Some(0..5), 8..30);
        spans.record(&ports.index(0, 2), None, 20..29);
        let (field, span) = spans.locate(&ports.state.index(0), Target::Value);
        assert_eq!((field.as_str(), span), ("containers.c.ports[2]", 20..29));
        let (field, span) = spans.locate(&ports.state.index(0).key("protocol"), Target::Value);
        assert_eq!(
            (field.as_str(), span),
            ("containers.c.ports[2].protocol", 20..29)
        );
        let (field, span) = spans.locate(&ports.state, Target::Key);
        assert_eq!((field.as_str(), span), ("containers.c.ports", 0..5));
        spans.forget_under(&ports.state.index(0));
        assert!(!spans.is_written(&ports.state.index(0)));
        assert!(spans.is_written(&ports.state));
    }
}

//! Field paths and where each field sits in the source text.
//!
//! Decoding drops array elements that cannot be decoded, so an element's index in the decoded
//! [`netctl_types::DesiredState`] can differ from its index in the file. [`Spans`] therefore maps
//! the *decoded* path to the *file* path and the key/value spans; checks that run on decoded
//! values ask it where to point and which field name to show.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A dotted path like `networks.web.subnets[0].gateway`; keys that are not bare TOML keys are
/// quoted (`networks."a.b"`), so the path is unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// A path of keys only.
    pub fn keys(keys: &[&str]) -> Self {
        Self(keys.iter().map(|k| Segment::Key((*k).to_owned())).collect())
    }

    pub fn key(&self, key: &str) -> Self {
        let mut out = self.clone();
        out.0.push(Segment::Key(key.to_owned()));
        out
    }

    pub fn index(&self, index: usize) -> Self {
        let mut out = self.clone();
        out.0.push(Segment::Index(index));
        out
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
                        write!(f, "\"{}\"", key.escape_default())?;
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
        Self {
            state: self.state.key(key),
            file: self.file.key(key),
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
    file: FieldPath,
    key: Option<Range<usize>>,
    value: Range<usize>,
}

/// Where every decoded field came from.
#[derive(Debug, Default)]
pub(crate) struct Spans {
    by_state: HashMap<FieldPath, Location>,
}

impl Spans {
    pub fn record(&mut self, here: &Here, key: Option<Range<usize>>, value: Range<usize>) {
        self.by_state.insert(
            here.state.clone(),
            Location {
                file: here.file.clone(),
                key,
                value,
            },
        );
    }

    /// The field name to show and the span to point at for a decoded path. A path that was not
    /// written (a default) falls back to its nearest written ancestor.
    pub fn locate(&self, state: &FieldPath, target: Target) -> (String, Range<usize>) {
        let mut probe = Some(state.clone());
        while let Some(path) = probe {
            if let Some(loc) = self.by_state.get(&path) {
                let field = loc.file.join_tail(state, path.len());
                let span = match target {
                    Target::Key => loc.key.clone().unwrap_or_else(|| loc.value.clone()),
                    Target::Value => loc.value.clone(),
                };
                return (field.to_string(), span);
            }
            probe = path.parent();
        }
        (state.to_string(), 0..0)
    }

    /// Forgets a decoded path and everything under it: used when an array element is dropped,
    /// so the next element, which takes its decoded index, inherits none of its fields.
    pub fn forget_under(&mut self, state: &FieldPath) {
        self.by_state.retain(|path, _| !path.starts_with(state));
    }

    /// Whether the file wrote this field (rather than leaving it at its default).
    pub fn is_written(&self, state: &FieldPath) -> bool {
        self.by_state.contains_key(state)
    }

    /// Where a decoded path starts in the file, for ordering "first" and "later" occurrences.
    pub fn position(&self, state: &FieldPath) -> usize {
        self.locate(state, Target::Key).1.start
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
        let mut spans = Spans::default();
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

//! Which network namespace an operation targets.

use std::fmt;
use std::path::{Path, PathBuf};

/// The network namespace an operation works in.
///
/// `Host` is the namespace netctl itself runs in. Every other namespace is named by a file that
/// opens as a network namespace: a bind mount such as `/run/netns/web`, or `/proc/PID/ns/net`.
/// Two different paths may name the same namespace; the real implementation notices that (it
/// keys its sockets by the namespace's inode), the fake does not need to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NsRef {
    /// The namespace netctl runs in.
    Host,
    /// A namespace named by a file (`/run/netns/x`, `/proc/PID/ns/net`).
    Path(PathBuf),
}

impl NsRef {
    /// A namespace named by a file.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        Self::Path(path.into())
    }

    /// The namespace file, or `None` for the host namespace.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Self::Host => None,
            Self::Path(path) => Some(path),
        }
    }

    /// Short form used in recorded calls and diagnostics: `host` or the path.
    pub fn short(&self) -> String {
        match self {
            Self::Host => "host".to_owned(),
            Self::Path(path) => path.display().to_string(),
        }
    }
}

impl fmt::Display for NsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host => f.write_str("the host namespace"),
            Self::Path(path) => write!(f, "namespace {}", path.display()),
        }
    }
}

impl From<PathBuf> for NsRef {
    fn from(path: PathBuf) -> Self {
        Self::Path(path)
    }
}

impl From<&Path> for NsRef {
    fn from(path: &Path) -> Self {
        Self::Path(path.to_owned())
    }
}

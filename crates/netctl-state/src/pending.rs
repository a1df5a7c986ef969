//! The record of an operation in progress: what it is about to change.
//!
//! An operation records in the store before it changes the kernel, so a killed netctl leaves
//! records the next run can act on. But some of what it changes leaves no trace the next run
//! would notice (a default route not yet added, a firewall element not yet in its map, a file
//! half rewritten). So before its first change an operation writes `<state_dir>/pending.json`,
//! naming the containers and networks it will touch and whether it touches the firewall, and
//! takes its names out again when it has finished them. A file still there when the next
//! operation starts (under the same lock) means its writer died part-way: the planner treats
//! every name in it as needing repair.
//!
//! The file is written without `fsync`: a process being killed loses nothing of it, and a host
//! that crashed loses its kernel state anyway, which the records' boot id tells the next run.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dir::open_private_file;
use crate::error::StateError;

/// The marker's file name in the state directory.
pub const PENDING_FILE: &str = "pending.json";

/// What an operation in progress may have left half-done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOperation {
    /// Who wrote it last, for messages: `pid 123 (netctl apply -f x.toml)`.
    pub by: String,
    pub containers: BTreeSet<String>,
    pub networks: BTreeSet<String>,
    /// Whether the firewall table may be out of step with the records.
    pub firewall: bool,
}

impl PendingOperation {
    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && !self.firewall
    }

    /// Adds everything `other` names.
    pub fn merge(&mut self, other: &PendingOperation) {
        self.containers.extend(other.containers.iter().cloned());
        self.networks.extend(other.networks.iter().cloned());
        self.firewall |= other.firewall;
    }

    /// Takes away everything `done` names.
    pub fn remove(&mut self, done: &PendingOperation) {
        self.containers.retain(|c| !done.containers.contains(c));
        self.networks.retain(|n| !done.networks.contains(n));
        self.firewall &= !done.firewall;
    }
}

/// Reads and writes the marker of one state directory. The caller holds the operation lock.
#[derive(Debug, Clone)]
pub struct PendingFile {
    path: PathBuf,
}

impl PendingFile {
    pub fn new(state_dir: &Path) -> PendingFile {
        PendingFile {
            path: state_dir.join(PENDING_FILE),
        }
    }

    /// The marker a killed operation left, if any.
    pub fn read(&self) -> Result<Option<PendingOperation>, StateError> {
        let err = |source| StateError::PendingFile {
            what: "reading",
            path: self.path.clone(),
            source,
        };
        let mut text = String::new();
        match std::fs::symlink_metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(e)),
            Ok(_) => {}
        }
        open_private_file(&self.path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map_err(err)?;
        // A marker cut short (killed while writing it) still means "something was pending":
        // without its list, everything is.
        Ok(Some(serde_json::from_str(&text).unwrap_or_else(|_| {
            PendingOperation {
                by: "an operation killed while writing its marker".into(),
                firewall: true,
                ..PendingOperation::default()
            }
        })))
    }

    /// Records `op` (merged with whatever an earlier, killed operation left) before the first
    /// change; returns what is now recorded.
    pub fn begin(&self, op: &PendingOperation) -> Result<PendingOperation, StateError> {
        let mut all = self.read()?.unwrap_or_default();
        all.merge(op);
        all.by.clone_from(&op.by);
        self.write(&all)?;
        Ok(all)
    }

    /// Takes what `done` names out of the marker (removing the file when nothing is left).
    pub fn finish(&self, done: &PendingOperation) -> Result<(), StateError> {
        let Some(mut all) = self.read()? else {
            return Ok(());
        };
        all.remove(done);
        if all.is_empty() {
            return std::fs::remove_file(&self.path).map_err(|source| StateError::PendingFile {
                what: "removing",
                path: self.path.clone(),
                source,
            });
        }
        self.write(&all)
    }

    fn write(&self, op: &PendingOperation) -> Result<(), StateError> {
        let text = serde_json::to_string(op).expect("a pending operation serialises");
        open_private_file(&self.path)
            .and_then(|mut f| {
                f.set_len(0)?;
                f.write_all(text.as_bytes())
            })
            .map_err(|source| StateError::PendingFile {
                what: "writing",
                path: self.path.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(containers: &[&str], networks: &[&str], firewall: bool) -> PendingOperation {
        PendingOperation {
            by: "test".into(),
            containers: containers.iter().map(ToString::to_string).collect(),
            networks: networks.iter().map(ToString::to_string).collect(),
            firewall,
        }
    }

    #[test]
    fn begin_merges_and_finish_takes_away_only_what_was_done() {
        let dir = tempfile::tempdir().unwrap();
        let file = PendingFile::new(dir.path());
        assert_eq!(file.read().unwrap(), None);
        // A killed run left a and n1.
        file.begin(&op(&["a"], &["n1"], true)).unwrap();
        // The next run touches b only: a stays pending after it finishes.
        let all = file.begin(&op(&["b"], &[], false)).unwrap();
        assert_eq!(all.containers.len(), 2);
        file.finish(&op(&["b"], &[], false)).unwrap();
        assert_eq!(file.read().unwrap(), Some(op(&["a"], &["n1"], true)));
        file.finish(&op(&["a"], &["n1"], true)).unwrap();
        assert_eq!(file.read().unwrap(), None);
        assert!(!dir.path().join(PENDING_FILE).exists());
    }

    #[test]
    fn a_marker_cut_short_means_everything_is_pending() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PENDING_FILE), "{\"by\":\"x\",\"contai").unwrap();
        let read = PendingFile::new(dir.path()).read().unwrap().unwrap();
        assert!(read.firewall);
    }

    #[test]
    fn a_link_in_its_place_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(PENDING_FILE)).unwrap();
        let file = PendingFile::new(dir.path());
        assert!(file.begin(&op(&["a"], &[], false)).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    }
}

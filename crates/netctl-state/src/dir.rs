//! The state directory and the private files in it.
//!
//! Invariant: the directory is mode 0700 and every file netctl keeps in it is 0600, whatever the
//! umask, and a looser mode found on an existing directory or file is tightened: the store holds
//! container names, namespace paths and the applied desired state, which are root's business.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::StateError;

/// The redb store inside the state directory.
pub const STORE_FILE: &str = "state.redb";
/// The operation lock file inside the state directory.
pub const LOCK_FILE: &str = "netctl.lock";

pub(crate) const DIR_MODE: u32 = 0o700;
pub(crate) const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) with mode 0700, or tightens an existing one to 0700.
pub(crate) fn ensure_state_dir(dir: &Path) -> Result<(), StateError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| StateError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    ensure_mode(dir, DIR_MODE)
}

/// Opens (creating if needed) a file that must be 0600, read-write, without truncating it.
pub(crate) fn open_private_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
}

/// Sets the permission bits of `path` to `mode` when they differ.
pub(crate) fn ensure_mode(path: &Path, mode: u32) -> Result<(), StateError> {
    let set_err = |source| StateError::SetPermissions {
        path: path.to_owned(),
        mode,
        source,
    };
    let current = fs::metadata(path).map_err(set_err)?.permissions().mode() & 0o7777;
    if current != mode {
        fs::set_permissions(path, Permissions::from_mode(mode)).map_err(set_err)?;
    }
    Ok(())
}

//! The state directory and the private files in it.
//!
//! Invariants:
//! * The directory is mode 0700 and every file netctl keeps in it is 0600, whatever the umask,
//!   and a looser mode found on an existing directory or file is tightened: the store holds
//!   container names, namespace paths and the applied desired state, which are root's business.
//! * The directory belongs to netctl's user (root, or the invoking user when rootless); one of
//!   anybody else's is refused, not adopted: whoever owns it could swap the files in it.
//! * Files in it are opened without following links (`O_NOFOLLOW`) and must be regular files of
//!   netctl's user: a lock file or store planted as a link to another file is refused, never
//!   truncated or chmod'ed through.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::error::StateError;

/// The redb store inside the state directory.
pub const STORE_FILE: &str = "state.redb";
/// The operation lock file inside the state directory.
pub const LOCK_FILE: &str = "netctl.lock";

pub(crate) const DIR_MODE: u32 = 0o700;
pub(crate) const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) with mode 0700, or tightens an existing one to 0700;
/// refuses one that belongs to another user.
pub(crate) fn ensure_state_dir(dir: &Path) -> Result<(), StateError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| StateError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    let meta = fs::metadata(dir).map_err(|source| StateError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(StateError::Untrusted {
            path: dir.to_owned(),
            reason: format!(
                "it belongs to uid {}, not to netctl's user (uid {me}); netctl keeps its state only in a directory of its own",
                meta.uid()
            ),
        });
    }
    ensure_mode(dir, DIR_MODE)
}

/// Whether an existing state directory may be read: netctl's user's. A missing one is not
/// (there is nothing to read); any other failure is an error.
pub(crate) fn is_trusted_state_dir(dir: &Path) -> Result<bool, StateError> {
    match fs::metadata(dir) {
        Ok(meta) => Ok(meta.is_dir() && meta.uid() == nix::unistd::geteuid().as_raw()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StateError::CreateDir {
            path: dir.to_owned(),
            source,
        }),
    }
}

/// Opens an existing store file to read, without following a link in its place; only a
/// regular file of netctl's user is accepted.
pub(crate) fn open_existing_private_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "not a regular file of netctl's user",
        ));
    }
    Ok(file)
}

/// Opens (creating if needed) a file that must be 0600, read-write, without truncating it and
/// without following a link in its place; only a regular file of netctl's user is accepted.
pub(crate) fn open_private_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(Errno::ELOOP as i32) {
                io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "it is a symbolic link; netctl never follows links for its state files",
                )
            } else {
                e
            }
        })?;
    let meta = file.metadata()?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_file() || meta.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "it is not a regular file of netctl's user (uid {me}) but a {} of uid {}",
                if meta.is_file() {
                    "file"
                } else {
                    "special file or directory"
                },
                meta.uid()
            ),
        ));
    }
    Ok(file)
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

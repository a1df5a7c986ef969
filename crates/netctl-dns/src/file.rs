//! Locked, inode-preserving read-modify-write of a container's hosts and resolv.conf files.
//!
//! Invariants:
//! * A file that exists is never replaced: its new content is written into the same inode
//!   (write at offset 0, then cut to length), because the file may be bind-mounted into a
//!   container (`ip netns exec` bind-mounts `<etc_netns_dir>/<name>/hosts` over `/etc/hosts`,
//!   podman bind-mounts its own copies) and a rename would leave those mounts on the old inode.
//! * Every read-modify-write runs under an exclusive `flock(2)` held on the target file itself,
//!   from before the read until after the write. Containers sharing a network namespace share
//!   one hosts file, so several netctl processes (or threads) can edit it at once.
//! * A file or directory netctl creates gets mode 0644 / 0755 whatever the umask is.
//! * An edit that would not change the content writes nothing, so a re-apply makes no mutation.
//!
//! Why the lock is on the file and not on a `<file>.lock` next to it (as podman does): the
//! files live in `<etc_netns_dir>/<name>/`, and `ip netns exec` bind-mounts *every* entry of that
//! directory over `/etc/<entry>`; a `hosts.lock` there makes every `ip netns exec` print
//! "Bind … -> /etc/hosts.lock failed". Since the inode never changes, locking the file itself
//! serialises exactly the same writers and leaves nothing behind.

use std::fmt;
use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Mode of a hosts or resolv.conf file netctl creates.
pub const FILE_MODE: u32 = 0o644;
/// Mode of a directory netctl creates on the way to such a file.
pub const DIR_MODE: u32 = 0o755;

/// What was being done to a file when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOp {
    CreateDir,
    Open,
    Create,
    SetPermissions,
    Lock,
    Read,
    Write,
}

impl fmt::Display for FileOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CreateDir => "create directory",
            Self::Open => "open",
            Self::Create => "create",
            Self::SetPermissions => "set permissions of",
            Self::Lock => "lock",
            Self::Read => "read",
            Self::Write => "write",
        })
    }
}

/// A hosts or resolv.conf file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {}", path.display())]
pub struct FileError {
    /// What was being done.
    pub op: FileOp,
    /// The file (or, for [`FileOp::CreateDir`], the directory) concerned.
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl FileError {
    fn new(op: FileOp, path: &Path, source: io::Error) -> Self {
        Self {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// True when the file (or a directory above it) does not exist. Edits of an existing file
    /// ([`crate::hosts::add`], [`crate::resolv::remove_nameservers`], …) fail this way when the
    /// container's files were never written; a best-effort teardown may treat it as done.
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }
}

/// Writes `content` to `path`, creating missing parent directories (0755) and the file (0644)
/// if needed, or overwriting an existing file in place (same inode, mode untouched).
///
/// Returns whether anything changed (`false` when the file already held exactly `content`).
pub fn write_file(path: &Path, content: &str) -> Result<bool, FileError> {
    if let Some(parent) = path.parent() {
        create_dirs(parent)?;
    }
    let (file, created) = open_or_create(path)?;
    let file = lock(file, path)?;
    let current = read_all(&file, path)?;
    if current == content {
        return Ok(created);
    }
    write_in_place(&file, path, content)?;
    Ok(true)
}

/// Locked read-modify-write of an existing file: `change` gets the current content and returns
/// the new one (or `None` for "leave it"). Returns whether the file changed.
pub(crate) fn edit(
    path: &Path,
    change: impl FnOnce(&str) -> Option<String>,
) -> Result<bool, FileError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| FileError::new(FileOp::Open, path, e))?;
    let file = lock(file, path)?;
    let current = read_all(&file, path)?;
    match change(&current) {
        Some(new) if new != current => {
            write_in_place(&file, path, &new)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Creates `dir` and its missing ancestors with [`DIR_MODE`].
fn create_dirs(dir: &Path) -> Result<(), FileError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent)?;
    }
    match DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {
            // DirBuilder's mode is filtered by the umask; the documented mode is what we promise.
            std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
                .map_err(|e| FileError::new(FileOp::SetPermissions, dir, e))
        }
        // Another writer created it between our check and our mkdir.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(FileError::new(FileOp::CreateDir, dir, e)),
    }
}

/// Opens `path` read-write, creating it with [`FILE_MODE`] if it does not exist. The flag says
/// whether this call created it.
fn open_or_create(path: &Path) -> Result<(File, bool), FileError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    match options.clone().create_new(true).open(path) {
        Ok(file) => {
            // The umask may have narrowed the mode at creation.
            file.set_permissions(Permissions::from_mode(FILE_MODE))
                .map_err(|e| FileError::new(FileOp::SetPermissions, path, e))?;
            Ok((file, true))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => options
            .open(path)
            .map(|file| (file, false))
            .map_err(|e| FileError::new(FileOp::Open, path, e)),
        Err(e) => Err(FileError::new(FileOp::Create, path, e)),
    }
}

/// Takes the exclusive flock, waiting for other writers. The lock is released when the returned
/// guard (and with it the file) is dropped.
fn lock(mut file: File, path: &Path) -> Result<Flock<File>, FileError> {
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(locked) => return Ok(locked),
            // A signal interrupted the wait; waiting again is the only sensible thing.
            Err((f, Errno::EINTR)) => file = f,
            Err((_, errno)) => {
                return Err(FileError::new(FileOp::Lock, path, io::Error::from(errno)));
            }
        }
    }
}

fn read_all(mut file: &File, path: &Path) -> Result<String, FileError> {
    let mut content = String::new();
    file.read_to_string(&mut content)
        .map_err(|e| FileError::new(FileOp::Read, path, e))?;
    Ok(content)
}

/// Replaces the file's content without replacing the file.
///
/// Writing first and cutting to length second means a reader that does not take the lock (a
/// resolver inside the container) never sees an empty file, and for the common append-only
/// edits it sees either the old or the new content.
fn write_in_place(file: &File, path: &Path, content: &str) -> Result<(), FileError> {
    file.write_all_at(content.as_bytes(), 0)
        .and_then(|()| file.set_len(content.len() as u64))
        .map_err(|e| FileError::new(FileOp::Write, path, e))
}

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
//! * Nothing is written, read or removed through a symbolic link, and nothing is written into
//!   a directory someone else could have prepared: the directory holding a file (the
//!   container's own, `<etc_netns_dir>/<name>/`) is opened with `O_NOFOLLOW` and must belong to
//!   netctl's user and be writable by no one else; the file is opened relative to that
//!   directory with `O_NOFOLLOW` and must be a regular file with one link. Anything else is
//!   refused with an error that says what was found, and nothing is written. (The directories
//!   above, like `/etc/netns` itself, are settings and followed as configured.)
//!
//! Why the lock is on the file and not on a `<file>.lock` next to it (as podman does): the
//! files live in `<etc_netns_dir>/<name>/`, and `ip netns exec` bind-mounts *every* entry of that
//! directory over `/etc/<entry>`; a `hosts.lock` there makes every `ip netns exec` print
//! "Bind … -> /etc/hosts.lock failed". Since the inode never changes, locking the file itself
//! serialises exactly the same writers and leaves nothing behind.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{DirBuilder, File, Permissions};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag, open, openat};
use nix::sys::stat::{Mode, SFlag, fchmod, fstat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

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
    Remove,
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
            Self::Remove => "remove",
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
    let (dir, name) = split(path)?;
    let dir = open_dir(dir, true)?;
    let (file, created) = open_file(&dir, name, path, true)?;
    let file = lock(file, path)?;
    let current = read_all(&file, path)?;
    if current == content {
        return Ok(created);
    }
    write_in_place(&file, path, content)?;
    Ok(true)
}

/// Takes an exclusive `flock(2)` on the lock file `path` (created, with its directory, if
/// missing), held until the returned guard is dropped: for lock files other programs take
/// too, such as netavark's `aardvark.lock` beside aardvark-dns's config directory.
pub fn lock_file(path: &Path) -> Result<Flock<File>, FileError> {
    let (dir, name) = split(path)?;
    let dir = open_dir(dir, true)?;
    let (file, _) = open_file(&dir, name, path, true)?;
    lock(file, path)
}

/// Locked read-modify-write of an existing file: `change` gets the current content and returns
/// the new one (or `None` for "leave it"). Returns whether the file changed.
pub(crate) fn edit(
    path: &Path,
    change: impl FnOnce(&str) -> Option<String>,
) -> Result<bool, FileError> {
    let (dir, name) = split(path)?;
    let dir = open_dir(dir, false).map_err(|e| {
        // No directory, no file: the edit is of a file that is not there.
        if e.is_not_found() {
            FileError::new(FileOp::Open, path, e.source)
        } else {
            e
        }
    })?;
    let (file, _) = open_file(&dir, name, path, false)?;
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

/// The content of a file netctl would write to, read under the same rules as a write (no link
/// followed, a trusted directory); `None` when it is missing or not such a file.
pub fn read_file(path: &Path) -> Option<String> {
    let (dir, name) = split(path).ok()?;
    let dir = open_dir(dir, false).ok()?;
    read_in(&dir, name, path).ok()
}

/// Whether each of the files `(name, text)` in `dir` holds exactly its text, read as
/// [`read_file`] reads (a missing file or one netctl would not write to does not): the
/// directory is opened and checked once for all of them, and the first mismatch ends it.
pub fn files_are(dir: &Path, expected: &[(&str, &str)]) -> bool {
    let Ok(fd) = open_dir(dir, false) else {
        return false;
    };
    expected.iter().all(|(name, text)| {
        read_in(&fd, OsStr::new(name), &dir.join(name)).is_ok_and(|current| current == *text)
    })
}

/// The content of file `name` (at `path`) in the opened directory `dir`, opened as a write
/// would open it (no link followed, a regular file).
fn read_in(dir: &OwnedFd, name: &OsStr, path: &Path) -> Result<String, FileError> {
    let (file, _) = open_file(dir, name, path, false)?;
    read_all(&file, path)
}

/// Removes the files `names` from directory `dir`, then `dir` itself if it is empty. A missing
/// file or directory is fine; a `dir` that is a symbolic link (or not netctl's, see the module
/// notes) is left alone, and nothing is removed through it.
pub fn remove_files(dir: &Path, names: &[&str]) -> Result<(), FileError> {
    let fd = match open_dir(dir, false) {
        Ok(fd) => fd,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    for name in names {
        match unlinkat(&fd, *name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(FileError::new(FileOp::Remove, &dir.join(name), e.into())),
        }
    }
    drop(fd);
    let (parent, name) = split(dir)?;
    let parent = open_plain_dir(parent)?;
    // Not empty (someone else's files): it stays. A link in its place was never followed.
    match unlinkat(&parent, name, UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(Errno::ENOENT | Errno::ENOTEMPTY | Errno::EEXIST | Errno::ENOTDIR) => Ok(()),
        Err(e) => Err(FileError::new(FileOp::Remove, dir, e.into())),
    }
}

/// Replaces `dir/name` whole with `content` by a rename (for files a daemon re-reads as a
/// whole, aardvark-dns's network files, which no container bind-mounts): the new content is
/// written to a temporary file in `dir`'s *parent*, then renamed into `dir`, so a reader of
/// `dir` never sees a half file or a temporary name. `dir` is created (0700) if missing and
/// must be netctl's; the file gets mode 0600. Writes nothing and returns `false` when the file
/// already holds `content`.
pub fn replace_file(dir: &Path, name: &str, content: &str) -> Result<bool, FileError> {
    let path = dir.join(name);
    if read_file(&path).as_deref() == Some(content) {
        return Ok(false);
    }
    let dir_fd = open_dir(dir, true)?;
    let (parent, dir_name) = split(dir)?;
    let parent_fd = open_plain_dir(parent)?;
    let tmp = format!(".{}.{name}.tmp", dir_name.to_string_lossy());
    let tmp_path = parent.join(&tmp);
    // A leftover of a killed run is ours to replace (O_EXCL below refuses anything else).
    match unlinkat(&parent_fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(FileError::new(FileOp::Remove, &tmp_path, e.into())),
    }
    let fd = openat(
        &parent_fd,
        tmp.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| FileError::new(FileOp::Create, &tmp_path, e.into()))?;
    let file = File::from(fd);
    let written = file
        .set_permissions(Permissions::from_mode(0o600))
        .and_then(|()| file.write_all_at(content.as_bytes(), 0))
        .and_then(|()| file.sync_data());
    if let Err(e) = written {
        let _ = unlinkat(&parent_fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        return Err(FileError::new(FileOp::Write, &tmp_path, e));
    }
    nix::fcntl::renameat(&parent_fd, tmp.as_str(), &dir_fd, name).map_err(|e| {
        let _ = unlinkat(&parent_fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        FileError::new(FileOp::Write, &path, e.into())
    })?;
    Ok(true)
}

/// `path` as its directory and file name.
fn split(path: &Path) -> Result<(&Path, &OsStr), FileError> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if !dir.as_os_str().is_empty() => Ok((dir, name)),
        _ => Err(FileError::new(
            FileOp::Open,
            path,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "needs a directory and a file name",
            ),
        )),
    }
}

/// Opens a directory the settings name (its path is followed as configured).
fn open_plain_dir(dir: &Path) -> Result<OwnedFd, FileError> {
    open(
        dir,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| FileError::new(FileOp::Open, dir, e.into()))
}

/// Opens the directory that holds netctl's files (creating it 0755 if asked), without
/// following a link in its place, and checks that only netctl's user can change it.
fn open_dir(dir: &Path, create: bool) -> Result<OwnedFd, FileError> {
    let (parent, name) = split(dir)?;
    if create {
        create_dirs(parent)?;
    }
    let parent_fd = open_plain_dir(parent)?;
    let mut created = false;
    if create {
        match mkdirat(&parent_fd, name, Mode::from_bits_truncate(DIR_MODE)) {
            Ok(()) => created = true,
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(FileError::new(FileOp::CreateDir, dir, e.into())),
        }
    }
    let fd = openat(
        &parent_fd,
        name,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::ELOOP | Errno::ENOTDIR => untrusted(
            FileOp::Open,
            dir,
            "it is not a directory but a symbolic link or a file; netctl does not follow links it did not make",
        ),
        e => FileError::new(FileOp::Open, dir, e.into()),
    })?;
    if created {
        // mkdir's mode is filtered by the umask; the documented mode is what we promise.
        fchmod(&fd, Mode::from_bits_truncate(DIR_MODE))
            .map_err(|e| FileError::new(FileOp::SetPermissions, dir, e.into()))?;
    }
    let stat = fstat(&fd).map_err(|e| FileError::new(FileOp::Open, dir, e.into()))?;
    let me = nix::unistd::geteuid().as_raw();
    if stat.st_uid != me {
        return Err(untrusted(
            FileOp::Open,
            dir,
            &format!(
                "it belongs to uid {}, not to netctl's user (uid {me}); netctl writes only into directories of its own",
                stat.st_uid
            ),
        ));
    }
    if stat.st_mode & 0o022 != 0 {
        return Err(untrusted(
            FileOp::Open,
            dir,
            &format!(
                "its mode {:o} lets others change it; netctl writes only into directories no one else can change",
                stat.st_mode & 0o7777
            ),
        ));
    }
    Ok(fd)
}

/// Opens `name` in `dir` read-write without following a link, creating it with [`FILE_MODE`]
/// if asked and missing; the flag says whether this call created it. Only a regular file with
/// a single link is accepted (a hard link could make it someone else's file).
fn open_file(
    dir: &OwnedFd,
    name: &OsStr,
    path: &Path,
    create: bool,
) -> Result<(File, bool), FileError> {
    let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let refused = |e: Errno| match e {
        Errno::ELOOP => untrusted(
            FileOp::Open,
            path,
            "it is a symbolic link, which netctl does not write through; remove it and apply again",
        ),
        e => FileError::new(FileOp::Open, path, e.into()),
    };
    let (fd, created) = if create {
        match openat(
            dir,
            name,
            flags | OFlag::O_CREAT | OFlag::O_EXCL,
            Mode::from_bits_truncate(FILE_MODE),
        ) {
            Ok(fd) => (fd, true),
            Err(Errno::EEXIST) => (
                openat(dir, name, flags, Mode::empty()).map_err(refused)?,
                false,
            ),
            Err(e) => return Err(FileError::new(FileOp::Create, path, e.into())),
        }
    } else {
        (
            openat(dir, name, flags, Mode::empty()).map_err(refused)?,
            false,
        )
    };
    let stat = fstat(&fd).map_err(|e| FileError::new(FileOp::Open, path, e.into()))?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(untrusted(
            FileOp::Open,
            path,
            "it is not a regular file; netctl only writes regular files",
        ));
    }
    if stat.st_nlink > 1 {
        return Err(untrusted(
            FileOp::Open,
            path,
            "it has more than one hard link, so it may be another file's; netctl leaves it alone",
        ));
    }
    let file = File::from(fd);
    if created {
        // The umask may have narrowed the mode at creation.
        file.set_permissions(Permissions::from_mode(FILE_MODE))
            .map_err(|e| FileError::new(FileOp::SetPermissions, path, e))?;
    }
    Ok((file, created))
}

/// A refusal: something is in the way that netctl did not make.
fn untrusted(op: FileOp, path: &Path, why: &str) -> FileError {
    FileError::new(
        op,
        path,
        io::Error::new(io::ErrorKind::PermissionDenied, why),
    )
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

fn read_all(file: &File, path: &Path) -> Result<String, FileError> {
    // The files are small: room for a typical one up front, and reading through `take`
    // spares the size probe (a stat and a seek) `File`'s own `read_to_string` makes first.
    let mut content = String::with_capacity(4096);
    file.take(u64::MAX)
        .read_to_string(&mut content)
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

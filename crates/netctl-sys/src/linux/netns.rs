//! Network namespaces: opening them, running work inside them on a helper thread, and creating
//! or deleting named ones the way iproute2's `ip netns add/del` does.
//!
//! Invariant: the calling thread never changes namespace. Work that must happen inside another
//! namespace runs on a scoped helper thread that `setns`es first and exits afterwards, so a
//! panic or early return can never leave netctl stranded in a container's namespace.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::error::os_error;
use crate::{NamespaceOp, NsRef, SysError, SysResult};

/// The calling thread's own network namespace, for passing as a netns fd.
const THREAD_SELF_NETNS: &str = "/proc/thread-self/ns/net";

/// Identity of a namespace: the nsfs inode its file refers to. Two paths to the same namespace
/// share a key; a path that was deleted and re-created as a new namespace does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum NsKey {
    Host,
    Inode { dev: u64, ino: u64 },
}

/// An opened namespace, ready to run work in.
#[derive(Debug)]
pub(crate) enum NsHandle {
    Host,
    File {
        path: PathBuf,
        fd: OwnedFd,
        key: NsKey,
    },
}

/// Opens the namespace `ns` names.
pub(crate) fn open(ns: &NsRef) -> SysResult<NsHandle> {
    match ns {
        NsRef::Host => Ok(NsHandle::Host),
        NsRef::Path(path) => {
            let file =
                File::open(path).map_err(|e| SysError::namespace(NamespaceOp::Open, path, e))?;
            let meta = file
                .metadata()
                .map_err(|e| SysError::namespace(NamespaceOp::Open, path, e))?;
            Ok(NsHandle::File {
                path: path.clone(),
                key: NsKey::Inode {
                    dev: meta.dev(),
                    ino: meta.ino(),
                },
                fd: file.into(),
            })
        }
    }
}

/// The key of the namespace mounted at `path`, if it can be stat'ed.
pub(crate) fn key_of(path: &Path) -> Option<NsKey> {
    fs::metadata(path).ok().map(|meta| NsKey::Inode {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

impl NsHandle {
    pub(crate) fn key(&self) -> NsKey {
        match self {
            Self::Host => NsKey::Host,
            Self::File { key, .. } => *key,
        }
    }

    /// Runs `work` inside this namespace: directly for the host, else on a helper thread that
    /// enters the namespace first. A panic in `work` is passed on to the caller.
    pub(crate) fn run<T: Send>(&self, work: impl FnOnce() -> SysResult<T> + Send) -> SysResult<T> {
        match self {
            Self::Host => work(),
            Self::File { path, fd, .. } => std::thread::scope(|scope| {
                let helper = scope.spawn(|| {
                    nix::sched::setns(fd.as_fd(), CloneFlags::CLONE_NEWNET)
                        .map_err(|e| SysError::namespace(NamespaceOp::Enter, path, os_error(e)))?;
                    work()
                });
                helper
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }),
        }
    }

    /// Moves the calling thread into this namespace. Only for threads made for that purpose
    /// (see `LinuxSys::prepare_conns`); everything else uses [`NsHandle::run`].
    pub(crate) fn enter_here(&self) -> SysResult<()> {
        match self {
            Self::Host => Ok(()),
            Self::File { path, fd, .. } => nix::sched::setns(fd.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(|e| SysError::namespace(NamespaceOp::Enter, path, os_error(e))),
        }
    }

    /// A file descriptor of this namespace to hand to the kernel (`IFLA_NET_NS_FD`).
    pub(crate) fn netns_fd(&self) -> SysResult<OwnedFd> {
        match self {
            // The calling thread never leaves the host namespace, so its own is the host's.
            Self::Host => File::open(THREAD_SELF_NETNS)
                .map(Into::into)
                .map_err(|e| SysError::namespace(NamespaceOp::Open, THREAD_SELF_NETNS, e)),
            Self::File { path, fd, .. } => fd
                .try_clone()
                .map_err(|e| SysError::namespace(NamespaceOp::Open, path, e)),
        }
    }
}

/// Creates a named namespace like `ip netns add`: `netns_dir` becomes a shared mount point (so
/// namespaces mounted later show up in other mount namespaces that share it), an empty file is
/// created, and a helper thread unshares a new network namespace and bind-mounts it there.
///
/// Creating the file and mounting onto it are two steps, so a process killed between them
/// leaves an empty, unmounted file behind (iproute2 has the same window). Such a placeholder
/// (empty, mode 0, netctl's user's, no namespace on it) is taken as the mount point instead of
/// failing with "File exists" forever. The mount goes onto the file through its descriptor
/// (`/proc/self/fd/N` of an `O_PATH | O_NOFOLLOW` open), so it lands on exactly the file that
/// was checked, never through a link put in its place.
pub(crate) fn create_named(netns_dir: &Path, name: &str) -> SysResult<PathBuf> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(SysError::InvalidInput {
            what: "namespace name",
            value: name.to_owned(),
            reason: "must be a single non-empty path component",
        });
    }
    let path = netns_dir.join(name);
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(netns_dir)
        .map_err(|e| SysError::namespace(NamespaceOp::PrepareDir, &path, e))?;
    make_shared_mount(netns_dir)
        .map_err(|e| SysError::namespace(NamespaceOp::PrepareDir, &path, e))?;

    // Mode 0 like iproute2: the file is only a mount point.
    let (target, fresh) = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o000)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(file) => (file, true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => (open_placeholder(&path)?, false),
        Err(e) => return Err(SysError::namespace(NamespaceOp::CreateFile, &path, e)),
    };
    let mount_point = format!("/proc/self/fd/{}", target.as_raw_fd());

    let mounted = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(|e| SysError::namespace(NamespaceOp::Unshare, &path, os_error(e)))?;
                nix::mount::mount(
                    Some(THREAD_SELF_NETNS),
                    mount_point.as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| SysError::namespace(NamespaceOp::Mount, &path, os_error(e)))
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    drop(target);
    if let Err(err) = mounted {
        // Leave nothing behind: the file is ours, we just created it.
        if fresh {
            let _ = fs::remove_file(&path);
        }
        return Err(err);
    }
    Ok(path)
}

/// Opens the file at `path` (not following a link) if it is the mount point an interrupted
/// namespace creation left: a regular, empty, mode-0 file of netctl's user, with no namespace
/// mounted on it. Anything else there is someone else's, and an error says so.
fn open_placeholder(path: &Path) -> SysResult<File> {
    let taken = |why: String| {
        SysError::namespace(
            NamespaceOp::CreateFile,
            path,
            io::Error::new(io::ErrorKind::AlreadyExists, why),
        )
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| SysError::namespace(NamespaceOp::CreateFile, path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| SysError::namespace(NamespaceOp::CreateFile, path, e))?;
    let mounted = nix::sys::statfs::fstatfs(&file)
        .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .map_err(|e| SysError::namespace(NamespaceOp::CreateFile, path, os_error(e)))?;
    if mounted {
        return Err(taken(
            "a network namespace is already mounted there, and netctl did not record making it"
                .into(),
        ));
    }
    let ours = meta.file_type().is_file()
        && meta.len() == 0
        && permission_bits(meta.mode()) == 0
        && meta.uid() == nix::unistd::geteuid().as_raw();
    if !ours {
        return Err(taken(format!(
            "something else is there ({}), not a namespace mount point netctl left",
            describe_file(&meta)
        )));
    }
    Ok(file)
}

fn describe_file(meta: &fs::Metadata) -> String {
    let kind = if meta.file_type().is_symlink() {
        "a symbolic link"
    } else if meta.is_dir() {
        "a directory"
    } else if meta.is_file() {
        "a file"
    } else {
        "a special file"
    };
    format!(
        "{kind}, mode {:o}, uid {}, {} bytes",
        meta.mode() & 0o7777,
        meta.uid(),
        meta.len()
    )
}

/// Makes `dir` a mount point with shared propagation, bind-mounting it onto itself first when
/// it is not a mount point yet (what iproute2 does for `/run/netns`).
fn make_shared_mount(dir: &Path) -> io::Result<()> {
    let share = || {
        nix::mount::mount(
            None::<&str>,
            dir,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match share() {
        Ok(()) => Ok(()),
        // EINVAL: not a mount point.
        Err(Errno::EINVAL) => {
            nix::mount::mount(
                Some(dir),
                dir,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(os_error)?;
            share().map_err(os_error)
        }
        Err(e) => Err(os_error(e)),
    }
}

/// Unmounts (lazily, so a process still inside keeps working) and removes a namespace file. A
/// file that is not mounted or not there is fine.
pub(crate) fn delete_named(path: &Path) -> SysResult<()> {
    // UMOUNT_NOFOLLOW: a link in the namespace's place is not followed to another mount.
    match nix::mount::umount2(path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
        // EINVAL: not a mount point (a leftover file); ENOENT: nothing there.
        Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => {}
        Err(e) => return Err(SysError::namespace(NamespaceOp::Unmount, path, os_error(e))),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SysError::namespace(NamespaceOp::RemoveFile, path, e)),
    }
}

/// `path` opened, when it lives on nsfs (it is some kind of namespace); `None` when it does
/// not, or does not exist. Which kind it is, the caller asks the kernel (see
/// `LinuxSys::is_netns`): the file's name does not tell, since a bind-mounted namespace reads
/// back as its mount path, not `net:[...]`.
pub(crate) fn open_nsfs(path: &Path) -> SysResult<Option<File>> {
    let inspect = |e| SysError::namespace(NamespaceOp::Inspect, path, e);
    match nix::sys::statfs::statfs(path) {
        Ok(stat) if stat.filesystem_type() == nix::sys::statfs::NSFS_MAGIC => {}
        Ok(_) | Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(inspect(os_error(e))),
    }
    File::open(path).map(Some).map_err(inspect)
}

/// The permission bits of a file mode (what `chmod` sets).
fn permission_bits(mode: u32) -> u32 {
    mode & 0o7777
}

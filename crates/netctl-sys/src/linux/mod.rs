//! The real implementation of the sys traits, for Linux.
//!
//! Netlink sockets are cached per namespace inside one [`LinuxSys`] value (keyed by the
//! namespace's nsfs inode, so a deleted and re-created named namespace gets a fresh socket);
//! `/proc/sys` work in another namespace runs on a helper thread each time.

mod netlink;
mod netns;
mod nfnl;
mod nft;
mod peek;
mod process;
mod rtnl;
mod sockets;
mod sysctl;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::{Namespaces, NetlinkOp, NsRef, SysError, SysResult};
use netns::NsKey;
use rtnl::Conn;

/// The sys seam backed by the running kernel.
pub struct LinuxSys {
    /// One rtnetlink socket per namespace used so far. The map's lock is held only to find a
    /// socket; each socket has its own, so requests in different namespaces run in parallel.
    conns: Mutex<HashMap<NsKey, Arc<Mutex<Conn>>>>,
    /// The `nft` program (looked up in `PATH` unless it has a `/`).
    nft: PathBuf,
}

impl LinuxSys {
    pub fn new() -> Self {
        Self {
            conns: Mutex::new(HashMap::new()),
            nft: PathBuf::from("nft"),
        }
    }

    /// Uses `nft` at `path` instead of the one in `PATH`.
    #[must_use]
    pub fn with_nft_program(mut self, path: impl Into<PathBuf>) -> Self {
        self.nft = path.into();
        self
    }

    /// Opens and caches the sockets of `namespaces` not cached yet, from a few helper threads
    /// that each enter their share of the namespaces in turn (instead of one thread per
    /// namespace).
    fn prepare_conns(&self, namespaces: &[NsRef]) {
        let handles: Vec<netns::NsHandle> = {
            let conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
            namespaces
                .iter()
                .filter(|ns| **ns != NsRef::Host)
                .filter_map(|ns| netns::open(ns).ok())
                .filter(|h| !conns.contains_key(&h.key()))
                .collect()
        };
        if handles.is_empty() {
            return;
        }
        // Entering a namespace moves the thread: never the caller's.
        let opened: Vec<(NsKey, Conn)> = crate::par::map_chunks_off_thread(&handles, |chunk| {
            chunk
                .iter()
                .filter_map(|h| {
                    h.enter_here().ok()?;
                    Conn::open().ok().map(|conn| (h.key(), conn))
                })
                .collect()
        });
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, conn) in opened {
            conns
                .entry(key)
                .or_insert_with(|| Arc::new(Mutex::new(conn)));
        }
    }

    /// Runs `work` with the netlink socket of `ns`, opening (and caching) it first if needed.
    /// A socket whose request failed at the socket level is dropped, not reused.
    fn with_conn<T>(
        &self,
        ns: &NsRef,
        work: impl FnOnce(&mut Conn) -> Result<T, ConnError>,
    ) -> SysResult<T> {
        let handle = netns::open(ns)?;
        let key = handle.key();
        let conn = {
            let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
            match conns.entry(key) {
                Entry::Occupied(cached) => Arc::clone(cached.get()),
                Entry::Vacant(slot) => {
                    Arc::clone(slot.insert(Arc::new(Mutex::new(handle.run(|| {
                        Conn::open().map_err(|e| {
                            SysError::netlink(
                                NetlinkOp::OpenSocket,
                                None,
                                NetlinkOp::OpenSocket.to_string(),
                                ns,
                                e,
                            )
                        })
                    })?))))
                }
            }
        };
        let result = work(&mut conn.lock().unwrap_or_else(PoisonError::into_inner));
        match result {
            Ok(value) => Ok(value),
            Err(ConnError::Sys(err)) => Err(err),
            Err(ConnError::Failed { context, failure }) => {
                if failure.broken {
                    let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
                    if conns.get(&key).is_some_and(|c| Arc::ptr_eq(c, &conn)) {
                        conns.remove(&key);
                    }
                }
                Err(SysError::Netlink {
                    op: context.op,
                    link: context.link,
                    what: context.what,
                    ns: ns.clone(),
                    kernel_message: failure.kernel_message,
                    source: failure.source,
                })
            }
        }
    }

    fn forget_namespace(&self, path: &Path) {
        if let Some(key) = netns::key_of(path) {
            self.conns
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
        }
    }
}

/// What a netlink request was about, for its error.
#[derive(Debug)]
struct OpContext {
    op: NetlinkOp,
    link: Option<String>,
    what: String,
}

/// An error inside [`LinuxSys::with_conn`]: either already a [`SysError`], or a request failure
/// still to be dressed with its namespace.
#[derive(Debug)]
enum ConnError {
    Sys(SysError),
    Failed {
        context: OpContext,
        failure: rtnl::Failure,
    },
}

impl From<SysError> for ConnError {
    fn from(err: SysError) -> Self {
        Self::Sys(err)
    }
}

impl Default for LinuxSys {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LinuxSys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sockets = self
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("LinuxSys")
            .field("netlink_sockets", &sockets)
            .field("nft", &self.nft)
            .finish()
    }
}

impl Namespaces for LinuxSys {
    fn create_named(&self, netns_dir: &Path, name: &str) -> SysResult<PathBuf> {
        netns::create_named(netns_dir, name)
    }

    fn delete_named(&self, path: &Path) -> SysResult<()> {
        // Our cached socket would keep the namespace alive after its file is gone.
        self.forget_namespace(path);
        netns::delete_named(path)
    }

    /// A namespace file on nsfs is a network namespace when the kernel answers `RTM_GETNSID`
    /// for its descriptor (with an id or "none assigned"; asking assigns none): any other kind
    /// is refused with `EINVAL`. One request on the host's socket, no thread entering it.
    fn is_netns(&self, path: &Path) -> SysResult<bool> {
        let Some(file) = netns::open_nsfs(path)? else {
            return Ok(false);
        };
        let fd = u32::try_from(std::os::fd::AsRawFd::as_raw_fd(&file))
            .expect("descriptors are not negative");
        let asked = self.with_conn(&NsRef::Host, |conn| {
            Ok(peek::get_nsid(conn, fd).map_err(|failure| failure.source))
        })?;
        match asked {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(false),
            Err(e) => Err(SysError::namespace(crate::NamespaceOp::Inspect, path, e)),
        }
    }
}

impl crate::Sockets for LinuxSys {
    fn listening(&self, protocol: Option<&str>) -> SysResult<Vec<crate::Listening>> {
        sockets::listening(protocol)
    }

    fn socket_owner(&self, inode: u64) -> Option<String> {
        sockets::socket_owner(inode)
    }

    fn dns_answers(
        &self,
        server: std::net::SocketAddr,
        name: &str,
        ipv6: bool,
        timeout: std::time::Duration,
    ) -> SysResult<bool> {
        sockets::dns_answers(server, name, ipv6, timeout)
    }
}

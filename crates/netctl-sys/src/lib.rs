//! The only door to the kernel: netlink, network namespaces, sysctls, nftables, processes.
//!
//! Everything netctl does to the machine goes through the narrow traits here ([`Netlink`],
//! [`Namespaces`], [`Sysctl`], [`Nft`], [`Processes`], bundled as [`Sys`]). Two implementations:
//!
//! * [`LinuxSys`]: the real one. Netlink is spoken directly over `NETLINK_ROUTE` sockets (no
//!   `ip`, no subprocess); `nft` and helper daemons are run with an argv, never a shell.
//! * [`FakeSys`]: an in-memory model of namespaces, links, addresses, routes, sysctls, nft tables
//!   and processes that records every call and can fail the Nth mutating one, so planners can
//!   prove "a second apply changes nothing" and "a failure at any step rolls back".
//!
//! Architecture invariants:
//! * No other netctl crate touches the kernel or spawns processes; they take `&dyn Sys`.
//! * Work inside another network namespace never moves the calling thread or the process: a
//!   short-lived helper thread `setns`es, opens what it needs (a netlink socket stays bound to
//!   the namespace it was created in) or does its `/proc/sys` I/O, and exits.
//! * Calls are synchronous and each mutating call is one kernel change (or, where the kernel
//!   needs two steps, undoes its first step when the second fails).

mod error;
pub mod fake;
pub mod linux;
mod model;
mod ns;
pub mod par;
mod terminate;

use std::path::{Path, PathBuf};

use ipnet::IpNet;

pub use error::{NamespaceOp, NetlinkOp, SysError, SysctlOp};
pub use fake::FakeSys;
pub use linux::LinuxSys;
pub use model::{
    Addr, BridgeSpec, IPV6_DEFAULT_METRIC, Ipv4Conf, Link, LinkChange, LinkKind, Listening,
    MAIN_TABLE, MAX_IFNAME_LEN, MacvlanSpec, NftFamily, Route, RouteKind, RouteProto, RunOutput,
    SpawnMode, SpawnSpec, Spawned, StdioSpec, VethPeer, VethSpec, sysctl_key_display, valid_ifname,
};
pub use netctl_types::MacAddr;
pub use nix::sys::signal::Signal;
pub use ns::NsRef;
pub use terminate::{DeferredTermination, KILL_WAIT, Termination, defer_termination, terminate};

/// Result of every sys call.
pub type SysResult<T> = Result<T, SysError>;

/// Links, addresses and routes (rtnetlink).
pub trait Netlink {
    /// All links of `ns`, by ifindex.
    fn links(&self, ns: &NsRef) -> SysResult<Vec<Link>>;
    /// The link called `name`, or `None`.
    fn link(&self, ns: &NsRef, name: &str) -> SysResult<Option<Link>>;
    /// The index of the link called `name`, or `None`: existence without a description. In
    /// netctl's own namespace this is a hash lookup, where describing a veth (`link`, `links`)
    /// costs time that grows with the number of namespaces (the kernel searches for the
    /// peer's namespace id).
    fn link_index(&self, ns: &NsRef, name: &str) -> SysResult<Option<u32>>;
    /// Creates a bridge (down).
    fn add_bridge(&self, ns: &NsRef, spec: &BridgeSpec) -> SysResult<()>;
    /// Creates a veth pair, `spec.name` in `ns` and `spec.peer_name` directly in `spec.peer_ns`
    /// (both down).
    fn add_veth(&self, ns: &NsRef, spec: &VethSpec) -> SysResult<()>;
    /// Creates a macvlan on `spec.parent` (a link of `ns`) directly in `spec.link_ns`.
    fn add_macvlan(&self, ns: &NsRef, spec: &MacvlanSpec) -> SysResult<()>;
    /// Deletes a link (a veth takes its peer with it).
    fn del_link(&self, ns: &NsRef, name: &str) -> SysResult<()>;
    /// Changes a link in one request.
    fn set_link(&self, ns: &NsRef, name: &str, change: &LinkChange) -> SysResult<()>;
    /// Sets per-interface IPv4 settings (what `net.ipv4.conf.LINK.*` shows) in one netlink
    /// request, instead of a `/proc/sys` write each from a thread inside the namespace (and a
    /// path lookup that grows with the number of namespaces holding a link of that name).
    /// Values must be non-zero: netlink's request form cannot carry a zero.
    fn set_ipv4_conf(&self, ns: &NsRef, link: &str, conf: &[(Ipv4Conf, u32)]) -> SysResult<()>;
    /// All addresses of `ns` (including the kernel's IPv6 link-local ones).
    fn addrs(&self, ns: &NsRef) -> SysResult<Vec<Addr>>;
    /// The addresses of the link with index `index` only, filtered by the kernel (cost
    /// independent of the other links).
    fn link_addrs(&self, ns: &NsRef, index: u32) -> SysResult<Vec<IpNet>>;
    /// For each `(namespace, link names)`, each named link's addresses (`None`: no such link),
    /// or the namespace's error (`ENOENT` / `EINVAL` when it is gone or not a namespace). A
    /// name list may be empty, to ask only whether the namespace is there. Read from the host
    /// without entering the namespaces, several at a time: what observing many containers
    /// needs, at a cost that does not include a socket per namespace.
    fn peek_links(
        &self,
        queries: &[(NsRef, Vec<String>)],
    ) -> Vec<SysResult<Vec<Option<Vec<IpNet>>>>>;
    /// `links` and `addrs` together, in two requests instead of three.
    fn links_and_addrs(&self, ns: &NsRef) -> SysResult<(Vec<Link>, Vec<Addr>)>;
    /// Adds an address; IPv6 ones skip duplicate address detection so they work at once.
    fn add_addr(&self, ns: &NsRef, link: &str, net: IpNet) -> SysResult<()>;
    fn del_addr(&self, ns: &NsRef, link: &str, net: IpNet) -> SysResult<()>;
    /// The unicast routes of the main table, both families, including the kernel's own.
    fn routes(&self, ns: &NsRef) -> SysResult<Vec<Route>>;
    fn add_route(&self, ns: &NsRef, route: &Route) -> SysResult<()>;
    fn del_route(&self, ns: &NsRef, route: &Route) -> SysResult<()>;
    /// Gets ready for calls in many namespaces at once: the real implementation opens their
    /// sockets from one thread that enters each namespace in turn, instead of a thread per
    /// namespace. Purely an optimisation; errors are left for the calls themselves to report.
    fn prepare(&self, _namespaces: &[NsRef]) {}
}

/// Named network namespaces, the way `ip netns` keeps them.
pub trait Namespaces {
    /// Creates a new network namespace mounted on `netns_dir/name` (made a shared mount point
    /// first if it is not one, like `ip netns add`) and returns that path. Its `lo` is down.
    fn create_named(&self, netns_dir: &Path, name: &str) -> SysResult<PathBuf>;
    /// Unmounts and removes a namespace file; a missing one is fine.
    fn delete_named(&self, path: &Path) -> SysResult<()>;
    /// Whether `path` is a network namespace (a missing path is not).
    fn is_netns(&self, path: &Path) -> SysResult<bool>;
}

/// `/proc/sys` inside a namespace. Keys are path components below `/proc/sys`, so interface
/// names containing dots stay unambiguous: `&["net", "ipv4", "conf", "eth0.10", "rp_filter"]`.
pub trait Sysctl {
    /// The value, without the trailing newline.
    fn sysctl_get(&self, ns: &NsRef, key: &[&str]) -> SysResult<String>;
    fn sysctl_set(&self, ns: &NsRef, key: &[&str], value: &str) -> SysResult<()>;
}

/// nftables, in netctl's own namespace.
pub trait Nft {
    /// Applies a libnftables JSON document as one atomic transaction (`nft -j -f -`).
    fn nft_apply(&self, json: &str) -> SysResult<()>;
    /// `nft -j -t list table FAMILY NAME` (terse: sets and maps without elements), or `None`
    /// when the table does not exist.
    fn nft_list_table(&self, family: NftFamily, name: &str) -> SysResult<Option<String>>;
    /// How many rules table `name` holds (0 when it does not exist). Asked over netlink, not
    /// through `nft`: a health check that stays cheap however many set elements there are.
    fn nft_rule_count(&self, family: NftFamily, name: &str) -> SysResult<usize>;
    /// Applies a batch of set-element changes as one transaction, straight over
    /// `NETLINK_NETFILTER` (no `nft` process).
    fn nft_apply_elements(&self, batch: &netctl_types::nft::ElementBatch) -> SysResult<()>;
}

/// Helper processes (pasta, slirp4netns, DNS servers).
pub trait Processes {
    fn spawn(&self, spec: &SpawnSpec) -> SysResult<Spawned>;
    /// Runs a short-lived program to completion and returns how it ended and what it printed
    /// (a feature probe such as `slirp4netns --help`). The spec's stdout and stderr are
    /// captured; its mode must be [`SpawnMode::Foreground`]. After `timeout` the program is
    /// killed and the call fails with [`SysError::SpawnTimeout`]. A non-zero exit is not an
    /// error here: the caller reads [`RunOutput::success`].
    fn run(&self, spec: &SpawnSpec, timeout: std::time::Duration) -> SysResult<RunOutput>;
    /// Field 22 of `/proc/PID/stat`, or `None` when there is no such process.
    fn process_start_time(&self, pid: u32) -> Option<u64>;
    fn kill(&self, pid: u32, signal: Signal) -> SysResult<()>;
    /// Whether `pid` is still the process that started at `start_time` and has not exited.
    fn is_alive(&self, pid: u32, start_time: u64) -> bool;
}

/// The sockets of netctl's own namespace (the host's, for a netctl run on the host).
pub trait Sockets {
    /// Every TCP socket listening and every UDP socket bound, both families; only those of
    /// `protocol` (`"tcp"`, `"udp"`) when one is named (the TCP tables are the costly ones to
    /// read: the kernel walks its whole connection hash for them).
    fn listening(&self, protocol: Option<&str>) -> SysResult<Vec<Listening>>;
    /// The process holding socket `inode`, as `pid N (command)`, if it can be found.
    fn socket_owner(&self, inode: u64) -> Option<String>;
    /// Asks the DNS server at `server` (UDP) for `name` (an A question, or AAAA when `ipv6`)
    /// until an answer with at least one record comes back, or `timeout` passes: whether one
    /// came. A refused or unanswered question is asked again.
    fn dns_answers(
        &self,
        server: std::net::SocketAddr,
        name: &str,
        ipv6: bool,
        timeout: std::time::Duration,
    ) -> SysResult<bool>;
}

/// Everything at once; what backends take (`&dyn Sys`). Shareable across threads, so work on
/// many namespaces (observing a thousand containers) can be spread over the CPUs.
pub trait Sys: Netlink + Namespaces + Sysctl + Nft + Processes + Sockets + Send + Sync {}

impl<T: Netlink + Namespaces + Sysctl + Nft + Processes + Sockets + Send + Sync + ?Sized> Sys
    for T
{
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Backends hold `&dyn Sys` and may share it across threads.
    #[test]
    fn both_implementations_are_thread_safe_trait_objects() {
        fn shareable<T: Send + Sync>(_: &T) {}
        let real = LinuxSys::new();
        let fake = FakeSys::new();
        shareable(&real);
        shareable(&fake);
        let all: [&dyn Sys; 2] = [&real, &fake];
        assert_eq!(all.len(), 2);
    }
}

//! The one error type of the sys seam.
//!
//! Every variant says which operation failed, on which interface / namespace / file, and keeps
//! the cause (`errno` as an [`io::Error`]) as its `#[source]` without repeating its text, so a
//! caller printing the whole chain reads e.g.
//! `netlink: cannot add veth pair veth0 (peer eth0 in namespace /run/netns/c) in the host
//! namespace: File exists (os error 17)`.
//! The real implementation and the fake build the same variants, so callers can match on them
//! (or on [`SysError::is_not_found`] / [`SysError::is_exists`]) without caring which one ran.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use thiserror::Error;

use crate::NsRef;

/// A netlink operation, for error messages and matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetlinkOp {
    OpenSocket,
    ListLinks,
    GetLink,
    AddBridge,
    AddVeth,
    AddMacvlan,
    DelLink,
    SetLink,
    ListAddrs,
    AddAddr,
    DelAddr,
    ListRoutes,
    AddRoute,
    DelRoute,
}

impl fmt::Display for NetlinkOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OpenSocket => "open a netlink socket",
            Self::ListLinks => "list links",
            Self::GetLink => "look up link",
            Self::AddBridge => "add bridge",
            Self::AddVeth => "add veth pair",
            Self::AddMacvlan => "add macvlan",
            Self::DelLink => "delete link",
            Self::SetLink => "change link",
            Self::ListAddrs => "list addresses",
            Self::AddAddr => "add address",
            Self::DelAddr => "delete address",
            Self::ListRoutes => "list routes",
            Self::AddRoute => "add route",
            Self::DelRoute => "delete route",
        })
    }
}

/// A network-namespace operation, for error messages and matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamespaceOp {
    /// Open the namespace file.
    Open,
    /// `setns` a helper thread into it.
    Enter,
    /// Make the namespace directory a shared mount point.
    PrepareDir,
    /// Create the (empty) file a new namespace is mounted on.
    CreateFile,
    /// `unshare(CLONE_NEWNET)` in a helper thread.
    Unshare,
    /// Bind-mount the new namespace onto its file.
    Mount,
    Unmount,
    RemoveFile,
    /// Find out whether a file is a network namespace.
    Inspect,
}

impl fmt::Display for NamespaceOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Open => "open",
            Self::Enter => "enter",
            Self::PrepareDir => "prepare the directory of",
            Self::CreateFile => "create the file of",
            Self::Unshare => "create",
            Self::Mount => "mount",
            Self::Unmount => "unmount",
            Self::RemoveFile => "remove the file of",
            Self::Inspect => "inspect",
        })
    }
}

/// Reading or writing a sysctl.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SysctlOp {
    Read,
    Write,
}

impl fmt::Display for SysctlOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Write => "write",
        })
    }
}

/// Everything that can go wrong at the sys seam.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SysError {
    /// Reading something the kernel shows as a file (`/proc/net/tcp`) failed.
    #[error("cannot {what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A netlink request failed; `source` carries the kernel's errno.
    #[error("netlink: cannot {what} in {ns}{}", kernel_suffix(.kernel_message.as_deref()))]
    Netlink {
        op: NetlinkOp,
        /// The interface the operation was about, if any.
        link: Option<String>,
        /// The whole operation in words (`add address 10.89.0.2/24 to eth0`).
        what: String,
        ns: NsRef,
        /// The kernel's extended-ack message, when it sent one.
        kernel_message: Option<String>,
        #[source]
        source: io::Error,
    },

    #[error("cannot {op} network namespace {}", .path.display())]
    Namespace {
        op: NamespaceOp,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// `key` is in `sysctl.d` form (`net.ipv4.conf.eth0/10.rp_filter`).
    #[error("cannot {op} sysctl {key}{} in {ns}", value_suffix(.value.as_deref()))]
    Sysctl {
        op: SysctlOp,
        key: String,
        /// The value being written.
        value: Option<String>,
        ns: NsRef,
        #[source]
        source: io::Error,
    },

    /// `nft` could not be run at all.
    #[error("cannot run nft to {op}")]
    NftRun {
        op: String,
        #[source]
        source: io::Error,
    },

    /// A request to nf_tables over netlink (`NETLINK_NETFILTER`) failed.
    #[error("cannot {op} (nf_tables netlink)")]
    NfNetlink {
        op: String,
        #[source]
        source: io::Error,
    },

    /// `nft` ran and refused; `stderr` is what it said.
    #[error("nft could not {op} ({status}): {stderr}")]
    Nft {
        op: String,
        status: String,
        stderr: String,
    },

    #[error("cannot start `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },

    /// A daemonizing program's launcher exited unsuccessfully; `output` is its stderr (and stdout).
    #[error("`{program}` failed to start ({status}): {output}")]
    SpawnFailed {
        program: String,
        status: String,
        output: String,
    },

    #[error("`{program}` did not finish starting within {timeout:?}")]
    SpawnTimeout { program: String, timeout: Duration },

    #[error("cannot read the pid file {} of `{program}`", .path.display())]
    PidFile {
        program: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot send {signal} to process {pid}")]
    Signal {
        pid: u32,
        signal: Signal,
        #[source]
        source: io::Error,
    },

    /// A process outlived `SIGKILL` for `waited` (it is stuck in the kernel, typically).
    #[error("process {pid} is still running {waited:?} after SIGKILL")]
    StillRunning { pid: u32, waited: Duration },

    /// The caller passed something the kernel would refuse anyway (checked before any change).
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidInput {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
}

fn kernel_suffix(message: Option<&str>) -> String {
    message.map_or_else(String::new, |m| format!(" (kernel says: {m})"))
}

fn value_suffix(value: Option<&str>) -> String {
    value.map_or_else(String::new, |v| format!("={v}"))
}

/// nft prints `strerror` texts; these are the ones callers branch on.
const NFT_NOT_FOUND: &str = "No such file or directory";
const NFT_EXISTS: &str = "File exists";

impl SysError {
    /// The errno behind this error, if it came from a system call or the kernel.
    pub fn errno(&self) -> Option<Errno> {
        let io = match self {
            Self::Netlink { source, .. }
            | Self::Namespace { source, .. }
            | Self::Sysctl { source, .. }
            | Self::NftRun { source, .. }
            | Self::NfNetlink { source, .. }
            | Self::Spawn { source, .. }
            | Self::PidFile { source, .. }
            | Self::Io { source, .. }
            | Self::Signal { source, .. } => source,
            Self::Nft { stderr, .. } => {
                return if stderr.contains(NFT_NOT_FOUND) {
                    Some(Errno::ENOENT)
                } else if stderr.contains(NFT_EXISTS) {
                    Some(Errno::EEXIST)
                } else {
                    None
                };
            }
            Self::SpawnFailed { .. }
            | Self::SpawnTimeout { .. }
            | Self::StillRunning { .. }
            | Self::InvalidInput { .. } => {
                return None;
            }
        };
        // An error made here with a kind and an explanation stands for its errno.
        io.raw_os_error().map(Errno::from_raw).or(match io.kind() {
            io::ErrorKind::AlreadyExists => Some(Errno::EEXIST),
            io::ErrorKind::NotFound => Some(Errno::ENOENT),
            _ => None,
        })
    }

    /// The thing is not there: a missing link (`ENODEV`), address (`EADDRNOTAVAIL`), route or
    /// process (`ESRCH`), file, namespace or nft object (`ENOENT`).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(Errno::ENOENT | Errno::ENODEV | Errno::ESRCH | Errno::EADDRNOTAVAIL)
        )
    }

    /// The thing already exists (`EEXIST`).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(Errno::EEXIST)
    }

    pub(crate) fn netlink(
        op: NetlinkOp,
        link: Option<&str>,
        what: String,
        ns: &NsRef,
        source: io::Error,
    ) -> Self {
        Self::Netlink {
            op,
            link: link.map(str::to_owned),
            what,
            ns: ns.clone(),
            kernel_message: None,
            source,
        }
    }

    /// A spawn or run asked with no program at all.
    pub(crate) fn empty_argv() -> Self {
        Self::InvalidInput {
            what: "command line",
            value: String::new(),
            reason: "argv must name a program",
        }
    }

    pub(crate) fn namespace(op: NamespaceOp, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Namespace {
            op,
            path: path.into(),
            source,
        }
    }
}

/// The words for a veth creation in errors: `add veth pair veth0 (peer eth0 in namespace X)`.
pub(crate) fn describe_add_veth(ns: &NsRef, spec: &crate::VethSpec) -> String {
    let place = if spec.peer_ns == *ns {
        "in the same namespace".to_owned()
    } else {
        format!("in {}", spec.peer_ns)
    };
    format!(
        "add veth pair {} (peer {} {place})",
        spec.name, spec.peer_name
    )
}

pub(crate) fn describe_add_macvlan(ns: &NsRef, spec: &crate::MacvlanSpec) -> String {
    let place = if spec.link_ns == *ns {
        String::new()
    } else {
        format!(" in {}", spec.link_ns)
    };
    format!(
        "add macvlan {} on {} (mode {}){place}",
        spec.name, spec.parent, spec.mode
    )
}

/// The words for an address change in errors: `add address 10.0.0.1/24 to eth0`.
pub(crate) fn describe_addr(adding: bool, link: &str, net: ipnet::IpNet) -> String {
    if adding {
        format!("add address {net} to {link}")
    } else {
        format!("delete address {net} from {link}")
    }
}

/// The settings of an IPv4 interface-settings request: `rp_filter=2 arp_notify=1`.
pub(crate) fn describe_ipv4_conf(conf: &[(crate::Ipv4Conf, u32)]) -> String {
    conf.iter()
        .map(|(key, value)| format!("{}={value}", key.sysctl_name()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The words for a route change in errors: `add route default via 10.0.0.1 dev eth0`.
pub(crate) fn describe_route(adding: bool, route: &crate::Route) -> String {
    format!("{} route {route}", if adding { "add" } else { "delete" })
}

/// An `io::Error` for an errno value.
pub(crate) fn os_error(errno: Errno) -> io::Error {
    io::Error::from_raw_os_error(errno as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn messages_name_operation_subject_and_namespace_but_not_the_cause() {
        let err = SysError::netlink(
            NetlinkOp::AddVeth,
            Some("veth0"),
            "add veth pair veth0 (peer eth0 in namespace /run/netns/c)".into(),
            &NsRef::Host,
            os_error(Errno::EEXIST),
        );
        assert_eq!(
            err.to_string(),
            "netlink: cannot add veth pair veth0 (peer eth0 in namespace /run/netns/c) in the \
             host namespace"
        );
        assert_eq!(
            err.source().unwrap().to_string(),
            "File exists (os error 17)"
        );
        assert!(err.is_exists());
        assert!(!err.is_not_found());
    }

    #[test]
    fn kernel_message_and_sysctl_value_are_shown() {
        let err = SysError::Netlink {
            op: NetlinkOp::AddRoute,
            link: Some("eth0".into()),
            what: "add route default via 10.0.0.1 dev eth0".into(),
            ns: NsRef::path("/run/netns/c"),
            kernel_message: Some("Nexthop has invalid gateway".into()),
            source: os_error(Errno::ENETUNREACH),
        };
        assert_eq!(
            err.to_string(),
            "netlink: cannot add route default via 10.0.0.1 dev eth0 in namespace \
             /run/netns/c (kernel says: Nexthop has invalid gateway)"
        );
        let err = SysError::Sysctl {
            op: SysctlOp::Write,
            key: "net.ipv4.ip_forward".into(),
            value: Some("1".into()),
            ns: NsRef::Host,
            source: os_error(Errno::EACCES),
        };
        assert_eq!(
            err.to_string(),
            "cannot write sysctl net.ipv4.ip_forward=1 in the host namespace"
        );
    }

    #[test]
    fn not_found_covers_the_errnos_of_each_object_kind() {
        for errno in [
            Errno::ENOENT,
            Errno::ENODEV,
            Errno::ESRCH,
            Errno::EADDRNOTAVAIL,
        ] {
            let err = SysError::namespace(NamespaceOp::Open, "/run/netns/x", os_error(errno));
            assert!(err.is_not_found(), "{errno}");
        }
        let nft = SysError::Nft {
            op: "list table inet netctl".into(),
            status: "exit status: 1".into(),
            stderr: "Error: No such file or directory\nlist table inet netctl".into(),
        };
        assert!(nft.is_not_found());
        assert_eq!(nft.errno(), Some(Errno::ENOENT));
        let busy = SysError::namespace(NamespaceOp::Unmount, "/x", os_error(Errno::EBUSY));
        assert!(!busy.is_not_found() && !busy.is_exists());
    }
}

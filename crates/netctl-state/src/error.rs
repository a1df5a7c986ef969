//! Errors of the state crate.
//!
//! Each variant names what was being done and to which object; the cause, when there is one, is
//! the `#[source]` and is not repeated in the message, so a printed chain reads once.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

/// Everything that can go wrong with the store, its records and IPAM.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the store was opened only to read")]
    ReadOnly,
    #[error("creating state directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("setting the mode of {path} to {mode:04o}")]
    SetPermissions {
        path: PathBuf,
        mode: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing state directory {path}: {reason}")]
    Untrusted { path: PathBuf, reason: String },
    #[error("creating state store {path}")]
    CreateStore {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening state store {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error(
        "state store {path} is open in another process; every netctl process takes the operation \
         lock before opening it"
    )]
    StoreInUse { path: PathBuf },
    #[error(
        "state store {path} was written with schema version {found} (by netctl {written_by}), \
         newer than version {supported} that this netctl understands; use that netctl or a newer one"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: u64,
        supported: u64,
        written_by: String,
    },
    #[error("state store {path} has an invalid schema version {found:?}")]
    SchemaInvalid { path: PathBuf, found: String },
    #[error("state store: {op}")]
    Storage {
        op: String,
        #[source]
        source: redb::Error,
    },
    #[error("state store: decoding {what}")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("state store: encoding {what}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} {path}")]
    PendingFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state store: {what} is corrupt: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("refusing to record {what}: {reason}")]
    InvalidRecord { what: String, reason: String },
    #[error("unable to find network with name or ID {query}: network not found")]
    NetworkNotFound { query: String },
    #[error("more than one result for network ID {query}")]
    AmbiguousNetworkId { query: String },
    #[error("no container with name or ID {query:?} found: no such container")]
    ContainerNotFound { query: String },
    #[error("more than one result for container ID {query}")]
    AmbiguousContainerId { query: String },
    #[error("network {network} is in use by containers: {}", .containers.join(", "))]
    NetworkInUse {
        network: String,
        containers: Vec<String>,
    },
    #[error("container {container} is still attached to networks: {}", .networks.join(", "))]
    ContainerAttached {
        container: String,
        networks: Vec<String>,
    },
    #[error("container {container} is already attached to network {network}")]
    AlreadyAttached { container: String, network: String },
    #[error("container {container} is not attached to network {network}")]
    NotAttached { container: String, network: String },
    #[error("interface {interface} of container {container} is already used for network {network}")]
    InterfaceInUse {
        container: String,
        interface: String,
        network: String,
    },
    #[error("allocating addresses on network {network} for container {container}")]
    Allocate {
        network: String,
        container: String,
        #[source]
        source: IpamError,
    },
}

/// Why IPAM could not hand out (or accept) an address. The texts follow podman's where podman
/// has one, so scripts and users recognise them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("failed to find free IP in range: {start} - {end}")]
    Exhausted {
        subnet: IpNet,
        start: IpAddr,
        end: IpAddr,
    },
    #[error("requested ip address {ip} is already allocated to container {}", holder_text(.container, .container_id.as_deref()))]
    AddressInUse {
        ip: IpAddr,
        container: String,
        container_id: Option<String>,
    },
    #[error("requested ip address {ip} is not in any subnet of network {network}")]
    NotInSubnet { ip: IpAddr, network: String },
    #[error("requested ip address {ip} is the {what} of subnet {subnet}")]
    Reserved {
        ip: IpAddr,
        subnet: IpNet,
        what: ReservedKind,
    },
    #[error(
        "requested ip addresses {first} and {second} are both in subnet {subnet}; an attachment \
         gets one address per subnet"
    )]
    TwoInSubnet {
        subnet: IpNet,
        first: IpAddr,
        second: IpAddr,
    },
    #[error("container {container} already has addresses on network {network}")]
    AlreadyAllocated { network: String, container: String },
}

fn holder_text(name: &str, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("{name} (ID {})", &id[..id.len().min(12)]),
        None => name.to_owned(),
    }
}

/// Which reserved address of a subnet a static address collided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservedKind {
    Network,
    Gateway,
    Broadcast,
    /// A macvlan network's `host_address`: the host-side macvlan's.
    HostAddress,
}

impl std::fmt::Display for ReservedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReservedKind::Network => "network address",
            ReservedKind::Gateway => "gateway",
            ReservedKind::Broadcast => "broadcast address",
            ReservedKind::HostAddress => "host address of the network",
        })
    }
}

/// No free subnet or name could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    #[error("could not find free subnet from subnet pools")]
    PoolsExhausted,
    #[error("failed to find a free random IPv6 ULA subnet after {tries} tries")]
    UlaExhausted { tries: u32 },
}

/// The operation lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("opening lock file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("locking {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("recording this process as the holder of {path}")]
    RecordHolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}; gave up after {} waiting for {path}", holder_text_lock(.holder.as_ref()), format_duration(*.waited))]
    Timeout {
        path: PathBuf,
        waited: Duration,
        holder: Option<crate::lock::LockHolder>,
    },
    #[error(transparent)]
    StateDir(#[from] StateError),
}

fn holder_text_lock(holder: Option<&crate::lock::LockHolder>) -> String {
    match holder {
        Some(h) if h.command.is_empty() => format!("state is locked by pid {}", h.pid),
        Some(h) => format!("state is locked by pid {} ({})", h.pid, h.command),
        None => "state is locked by another process".to_owned(),
    }
}

fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Attaches the operation being done to a redb error.
pub(crate) trait StorageContext<T> {
    fn ctx(self, op: impl FnOnce() -> String) -> Result<T, StateError>;
}

impl<T, E: Into<redb::Error>> StorageContext<T> for Result<T, E> {
    fn ctx(self, op: impl FnOnce() -> String) -> Result<T, StateError> {
        self.map_err(|e| StateError::Storage {
            op: op(),
            source: e.into(),
        })
    }
}

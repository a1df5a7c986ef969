//! netctl's memory: a redb store of what netctl made, the lock that serialises netctl
//! processes, and IPAM that hands out addresses the way podman does.
//!
//! * [`Store`] (`<state_dir>/state.redb`, 0600, in a 0700 directory): networks, containers,
//!   attachments, leases, helper processes and applied generations. One operation is one durable
//!   write transaction ([`Store::write`]); reads are snapshots ([`Store::read`]). Reading goes
//!   through [`StateRead`], implemented by both [`ReadTxn`] and [`WriteTxn`].
//! * [`OperationLock`] (`<state_dir>/netctl.lock`): held from observing the system to recording
//!   the result, so two netctl processes never interleave. Take it before opening the store.
//! * IPAM ([`WriteTxn::allocate`], [`WriteTxn::release`], [`WriteTxn::attach`]): sequential per
//!   subnet from the last address handed out, wrapping once, honouring lease ranges, never the
//!   network, gateway or broadcast address.
//! * Automatic choices ([`choose_ipv4_subnet`], [`random_ula`], [`choose_bridge_name`]): pure
//!   functions over what is recorded and what the caller observed on the host.
//!
//! Architecture invariant: this crate depends on no other netctl crate and never talks to the
//! kernel beyond its own files (the store, the lock file).
//!
//! Typical use in one operation:
//! ```no_run
//! # use std::time::Duration;
//! # use netctl_state::*;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::path::Path::new("/var/lib/netctl");
//! let _lock = OperationLock::acquire(dir, Duration::from_secs(30))?;
//! let store = Store::open(dir)?;
//! let addresses = store.write(|tx| tx.allocate("web", "api", &AllocRequest::default()))?;
//! # let _ = addresses;
//! # Ok(())
//! # }
//! ```

mod dir;
mod error;
mod ipam;
mod lock;
mod pending;
mod records;
mod store;
mod subnet;

pub use dir::{LOCK_FILE, STORE_FILE};
pub use error::{IpamError, LockError, ReservedKind, StateError, SubnetError};
pub use ipam::{SubnetRange, TakenAddrs, ip_to_u128, u128_to_ip};
pub use lock::{LockHolder, OperationLock, read_holder};
pub use pending::{PENDING_FILE, PendingFile, PendingOperation};
pub use records::{
    AttachmentRecord, BRIDGE_MODE_UNMANAGED, ContainerRecord, DnsServerRecord, Generation,
    HOST_ADDRESS_OPTION, HelperKind, HelperRecord, Isolate, Lease, LeaseRange, MacAddr,
    NetnsRecord, NetworkDriver, NetworkMode, NetworkRecord, OPTION_IPAM_DRIVER, OPTION_MODE,
    Opaque, ParseMacError, RouteRecord, SubnetRecord, generate_id, is_valid_id,
};
pub use store::{
    AllocRequest, Allocation, AttachRequest, GENERATIONS_KEPT, ReadTxn, SCHEMA_VERSION, StateRead,
    Store, WriteTxn, sha256_hex,
};
pub use subnet::{
    IPV4_POOLS, POOL_SUBNET_PREFIX, ULA_TRIES, choose_bridge_name, choose_ipv4_subnet, overlaps,
    random_ula,
};

//! nftables rule generation for netctl's one table, `table inet netctl`.
//!
//! netctl reproduces netavark's firewall behaviour (masquerade, port forwarding with localhost
//! and hairpin support, `isolate` true/strict, internal networks) but built to scale: the rules
//! are a fixed set written once ([`base_table`]), and everything per network and per container
//! lives in nftables sets and maps that those rules consult.
//!
//! * [`model`] — the input: [`FwNetwork`], [`FwContainer`], [`FwPort`], [`FirewallState`];
//! * `layout` — the table's fixed chains, sets, maps and rules (see its docs for the rules);
//! * `elements` — networks and containers as set/map elements;
//! * [`batch`] — the JSON documents: [`full_rebuild`], [`add_network`], [`add_container`], ...;
//! * [`driver`] — [`FirewallDriver`] with [`NftablesDriver`] (over an [`NftRunner`]) and
//!   [`NoneDriver`].
//!
//! Architecture invariants:
//! * Building batches is pure; the crate runs no program and reads nothing from the kernel.
//!   Batches are applied through [`NftRunner`] (`nft -j -f -`, one atomic transaction each).
//! * Adding or removing a network or a container is a batch of element commands whose size
//!   depends only on that network or container, never on how many others exist.
//! * netctl touches only `table inet netctl`, and rebuilds it whole from recorded state when
//!   it was lost (see [`driver`] for how a lost table is detected).
//! * The forward chain has policy accept and only drops traffic of netctl bridges, so the
//!   host's other traffic is never broken.

pub mod batch;
pub mod driver;
mod elements;
mod expr;
mod layout;
pub mod model;

pub use batch::{
    add_container, add_network, base_table, batch_len, delete_table, full_rebuild, is_empty,
    presence_probe, remove_container, remove_network, to_json,
};
pub use driver::{
    Applied, Change, FirewallDriver, FirewallError, NftRunner, NftablesDriver, NoneDriver,
    Operation, RunnerError,
};
pub use layout::{MASQUERADE_MARK, TABLE_FAMILY, TABLE_NAME};
pub use model::{
    DNS_PORT, FirewallState, FwContainer, FwNetwork, FwPort, HostIp, HostIpError, Isolate,
    Outbound, Protocol,
};
/// The nft JSON document type every builder returns.
pub use nftables::schema::Nftables;

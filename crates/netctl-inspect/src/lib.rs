//! What `netctl inspect`, `netctl network inspect` and `netctl network ls` print: netctl's
//! records turned into the JSON podman users know, plus short text summaries.
//!
//! * [`container`] — [`container_inspect`]: a container's podman `NetworkSettings`;
//! * [`network`] — [`network_inspect`]: a network as podman's `Network` JSON; [`network_ls_row`]
//!   and [`render_network_table`] for `network ls`;
//! * [`text`] — [`render_container_text`]: the human summary of `NetworkSettings`.
//!
//! Architecture invariants: pure functions of records, no I/O and no clock (times come from the
//! records); depends only on `netctl-state` (the records) and `netctl-types` (podman's wire
//! types). Output is ordered deterministically (networks by name, ports by port then protocol),
//! so it can be snapshot-tested and diffed.

pub mod container;
pub mod network;
pub mod text;

pub use container::{
    AdditionalNetwork, Address, BasicNetworkConfig, ContainerPort, ContainerPortParseError,
    HostPort, InspectError, NetworkSettings, container_inspect, container_inspect_status,
    port_bindings, recorded_ports,
};
pub use network::{
    IPAM_DRIVER, NetworkRow, format_rfc3339, network_inspect, network_ls_row, render_network_table,
};
pub use text::render_container_text;

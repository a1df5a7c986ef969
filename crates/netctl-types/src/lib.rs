//! netctl's desired-state schema and podman's network wire types.
//!
//! Pure data and pure functions: nothing here touches the system, so every other netctl crate
//! can depend on it.
//!
//! * [`desired`] — the TOML schema users write ([`DesiredState`] and its parts);
//! * [`wire`] — podman/netavark JSON types ([`Network`], [`NetworkOptions`], [`StatusBlock`]);
//! * [`ports`] — [`PortMapping`], the podman `-p` parser and range folding;
//! * [`names`] — name, interface-name, hostname and id rules;
//! * [`mac`] — [`MacAddr`].
//!
//! Architecture invariant: this crate depends on no other netctl crate and does no I/O.

pub use indexmap::IndexMap;

pub mod desired;
pub mod mac;
pub mod names;
pub mod nft;
pub mod ports;
#[cfg(feature = "schemars")]
mod schema;
pub mod wire;

pub use desired::{
    AttachmentSpec, BridgeMode, ContainerMode, ContainerSpec, DesiredState, IpamDriver, Isolate,
    LeaseRangeSpec, MANAGED_NETNS, MacvlanMode, NetnsSpec, NetworkDriver, NetworkSpec, PortHandler,
    PortSpec, PortTable, RouteSpec, RouteType, SlirpOptions, SubnetSpec, first_host,
};
pub use mac::{MacAddr, MacParseError};
pub use names::{
    CONTAINER_ID_LEN, DnsNameError, HostnameError, InterfaceNameError, LOOPBACK, MAX_HOSTNAME_LEN,
    MAX_INTERFACE_NAME_LEN, MAX_LINK_ALIAS_LEN, MAX_NAME_LEN, NAME_PATTERN, NameError,
    RESERVED_NAMES, SHORT_ID_LEN, Shown, check_container_id, check_created_interface_name,
    check_dns_name, check_hostname, check_interface_name, check_name, is_reserved_name,
    is_valid_container_id, is_valid_hostname, is_valid_interface_name, is_valid_name, link_alias,
    short_id,
};
pub use ports::{
    CHOOSE_HOST_PORT, HostSide, PortMapping, PortSpecError, Protocol, ProtocolParseError,
    canonical_host_ip, expand_ports, host_ips_overlap, normalize_ports, parse_port_spec,
};
/// An error and all its causes on one line, `outer: cause: root cause`, as netctl prints them.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

pub use wire::{
    CreateOptions, LeaseRange, NetAddress, NetInterface, Network, NetworkAttachments,
    NetworkCreateConfig, NetworkOptions, PerNetworkOptions, Route, StatusBlock, Subnet, SubnetPool,
    UsedByNetworks,
};

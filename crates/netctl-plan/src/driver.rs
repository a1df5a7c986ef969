//! What each network driver puts on the host, as the observer looks for it and the planner
//! judges it: the one place outside the engine's drivers (`netctl-engine/src/driver.rs`) that
//! knows the drivers apart. Pure, like the rest of the planner.
//!
//! * bridge: the bridge (made when the first container joins, so its absence without
//!   attachments is no drift) with its gateway addresses; a host veth per attachment.
//! * bridge with `mode=unmanaged`: a borrowed bridge, someone else's, so its addresses, MTU
//!   and settings are never drift; only its absence while containers are on it is (apply
//!   cannot make it). A host veth per attachment, as for netctl's own bridges.
//! * macvlan: the parent, which netctl does not make (its absence is always drift, and apply
//!   fails until it is back); with `host_address`, a host-side macvlan carrying that address
//!   (made with the first container, like a bridge); nothing on the host per attachment.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use netctl_state::{ContainerRecord, NetworkDriver, NetworkRecord};
use netctl_types::{BridgeMode, MacvlanMode};

use crate::{Drift, LinkFacts, Resource};

/// The record's `options` key for a macvlan network's mode (podman's name).
pub const OPTION_MODE: &str = netctl_state::OPTION_MODE;
/// The record's `options` key for a macvlan network's host-side address.
pub const OPTION_HOST_ADDRESS: &str = netctl_state::HOST_ADDRESS_OPTION;

/// A macvlan network's mode as recorded (`bridge` when none is).
pub fn macvlan_mode(net: &NetworkRecord) -> MacvlanMode {
    net.options
        .get(OPTION_MODE)
        .and_then(|m| MacvlanMode::parse(m))
        .unwrap_or_default()
}

/// A bridge network's management mode as recorded (`managed` for every record written
/// before the option existed).
pub fn bridge_mode(net: &NetworkRecord) -> BridgeMode {
    if net.unmanaged() {
        BridgeMode::Unmanaged
    } else {
        BridgeMode::Managed
    }
}

/// A macvlan network's host-side address as recorded.
pub fn host_address(net: &NetworkRecord) -> Option<IpAddr> {
    net.host_address()
}

/// Name of a macvlan network's host-side link: derived from the network id, at most 15 bytes.
pub fn host_side_name(network_id: &str) -> String {
    let id: String = network_id.chars().take(12).collect();
    format!("ncm{id}")
}

/// The host-side macvlan's address: `host_address` as a host route (/32, /128), so the host
/// does not take the LAN's subnet away from the parent.
pub fn host_side_addr(host: IpAddr) -> IpNet {
    IpNet::from(host)
}

/// The host links a network's records call for, by name: what observation looks up.
pub fn network_host_links(net: &NetworkRecord) -> Vec<String> {
    let mut names = vec![net.network_interface.clone()];
    if net.driver == NetworkDriver::Macvlan && host_address(net).is_some() {
        names.push(host_side_name(&net.id));
    }
    names
}

/// The host link one attachment has of its own, if its driver makes one (bridge: the veth).
pub fn attachment_host_link(
    ctr: &ContainerRecord,
    net: &NetworkRecord,
    att: &netctl_state::AttachmentRecord,
) -> Option<String> {
    match net.driver {
        NetworkDriver::Bridge => Some(crate::host_veth(ctr, net, att)),
        NetworkDriver::Macvlan => None,
    }
}

/// How a network's host links differ from its records.
pub(crate) fn network_drift(
    net: &NetworkRecord,
    has_attachments: bool,
    host_links: &BTreeMap<String, LinkFacts>,
) -> Vec<Drift> {
    let resource = Resource::Network {
        name: net.name.clone(),
    };
    let mut drift = Vec::new();
    match net.driver {
        NetworkDriver::Bridge if net.unmanaged() => {
            if has_attachments && !host_links.contains_key(&net.network_interface) {
                drift.push(Drift::severe(
                    resource,
                    format!(
                        "bridge {} (mode=unmanaged, not netctl's) is gone; netctl cannot make it: once its owner re-creates it, a repair re-attaches its containers",
                        net.network_interface
                    ),
                ));
            }
        }
        NetworkDriver::Bridge => match host_links.get(&net.network_interface) {
            // A bridge with no attachments is created lazily; its absence is not drift.
            None if has_attachments => drift.push(Drift::severe(
                resource,
                format!("bridge {} is missing", net.network_interface),
            )),
            None => {}
            Some(link) => {
                for sub in &net.subnets {
                    if let Some(gw) = sub.gateway {
                        let want =
                            IpNet::new(gw, sub.subnet.prefix_len()).expect("prefix from a subnet");
                        if !link.addrs.contains(&want) {
                            drift.push(Drift::new(
                                resource.clone(),
                                format!(
                                    "gateway address {want} is missing on {}",
                                    net.network_interface
                                ),
                            ));
                        }
                    }
                }
            }
        },
        NetworkDriver::Macvlan => {
            if !host_links.contains_key(&net.network_interface) {
                drift.push(Drift::severe(
                    resource.clone(),
                    format!(
                        "parent {} is gone (its macvlans went with it); apply restores them once it is back",
                        net.network_interface
                    ),
                ));
                return drift;
            }
            if let Some(host) = host_address(net)
                && has_attachments
            {
                let name = host_side_name(&net.id);
                match host_links.get(&name) {
                    None => drift.push(Drift::severe(
                        resource,
                        format!("host-side macvlan {name} is missing"),
                    )),
                    Some(link) if !link.addrs.contains(&host_side_addr(host)) => {
                        drift.push(Drift::severe(
                            resource,
                            format!("host address {host} is missing on {name}"),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
    }
    drift
}

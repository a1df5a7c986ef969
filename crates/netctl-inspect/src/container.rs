//! `netctl inspect CONTAINER`: podman's `NetworkSettings` built from netctl's records.
//!
//! The types here serialise key for key like libpod's `InspectNetworkSettings`,
//! `InspectBasicNetworkConfig`, `InspectAdditionalNetwork`, `InspectHostPort` and `Address`
//! (including the docker-compat fields podman always prints empty, and podman's `omitempty`
//! choices), so scripts written against `podman inspect --format '{{.NetworkSettings...}}'`
//! read netctl's output unchanged.
//!
//! The rules are podman's `getContainerNetworkInfo` and `resultToBasicNetworkConfig`:
//! * each network's entry is built from that network's interfaces, walked in interface-name order
//!   (plain string order, as Go's `sort.Strings`): the first IPv4 address gives
//!   `IPAddress`/`IPPrefixLen`/`Gateway`, later IPv4 addresses go to `SecondaryIPAddresses`; the
//!   same for IPv6; the first interface's MAC is `MacAddress`, later ones
//!   `AdditionalMACAddresses`;
//! * the top-level addresses are filled only when the container's sole network is the default
//!   network (docker compatibility); otherwise they stay `""`/0;
//! * `Ports` has one key per container port and protocol (ranges expanded), each listing every
//!   host binding of that port.
//!
//! Deliberate differences from podman: a missing gateway is `""` (podman printed `<nil>`);
//! `NetworkID` is the network's full ID (as current podman does; podman 4.4 printed the name);
//! `Ports` keys are ordered by port number, then protocol (Go orders them as strings, which puts
//! `10000/tcp` before `80/tcp`) — JSON object order carries no meaning, so readers are unaffected.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use netctl_state::{AttachmentRecord, ContainerRecord, NetworkRecord};
use netctl_types::{PortMapping, short_id};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Addresses, gateways and MACs of one network (or, at the top level, of the default network).
///
/// libpod's `InspectBasicNetworkConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasicNetworkConfig {
    /// Unused; always `""`, kept for docker compatibility.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Gateway of the first IPv4 address's subnet; `""` when there is none.
    #[serde(rename = "Gateway")]
    pub gateway: String,
    /// First IPv4 address (without prefix); `""` when there is none.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// Prefix length of [`Self::ip_address`]; 0 when there is none.
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    /// IPv4 addresses after the first; left out of the JSON when empty.
    #[serde(
        rename = "SecondaryIPAddresses",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub secondary_ip_addresses: Vec<Address>,
    /// Gateway of the first IPv6 address's subnet; `""` when there is none.
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    /// First IPv6 address (without prefix); `""` when there is none.
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    /// Prefix length of [`Self::global_ipv6_address`]; 0 when there is none.
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    /// IPv6 addresses after the first; left out of the JSON when empty.
    #[serde(
        rename = "SecondaryIPv6Addresses",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub secondary_ipv6_addresses: Vec<Address>,
    /// MAC of the first interface; `""` when there is none.
    #[serde(rename = "MacAddress")]
    pub mac_address: String,
    /// MACs of the interfaces after the first; left out of the JSON when empty.
    #[serde(
        rename = "AdditionalMACAddresses",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub additional_mac_addresses: Vec<String>,
}

/// One secondary address: libpod's `Address` (no JSON tags, so Go's field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// The address, without prefix.
    #[serde(rename = "Addr")]
    pub addr: String,
    /// Its subnet's prefix length.
    #[serde(rename = "PrefixLength")]
    pub prefix_length: u8,
}

/// A container's entry for one network: libpod's `InspectAdditionalNetwork`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdditionalNetwork {
    /// This network's addresses, gateways and MACs.
    #[serde(flatten)]
    pub basic: BasicNetworkConfig,
    /// The network's full ID; left out of the JSON when empty.
    #[serde(
        rename = "NetworkID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub network_id: String,
    /// Unused; always `null`, kept for docker compatibility.
    #[serde(rename = "DriverOpts")]
    pub driver_opts: Option<BTreeMap<String, String>>,
    /// Unused; always `null`, kept for docker compatibility.
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<BTreeMap<String, String>>,
    /// Unused; always `null`, kept for docker compatibility.
    #[serde(rename = "Links")]
    pub links: Option<Vec<String>>,
    /// DNS aliases on this network, as recorded; left out of the JSON when empty.
    #[serde(rename = "Aliases", default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The container's interface names on this network, sorted. Not part of podman's JSON (so
    /// not serialised); kept for the text rendering.
    #[serde(skip)]
    pub interfaces: Vec<String>,
}

/// A container's network settings: libpod's `InspectNetworkSettings`, the
/// `NetworkSettings` object of `podman inspect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSettings {
    /// Filled only when the sole network is the default network; otherwise empty.
    #[serde(flatten)]
    pub basic: BasicNetworkConfig,
    /// Unused; always `""`, kept for docker compatibility.
    #[serde(rename = "Bridge")]
    pub bridge: String,
    /// Unused; always `""`, kept for docker compatibility.
    #[serde(rename = "SandboxID")]
    pub sandbox_id: String,
    /// Unused; always false, kept for docker compatibility.
    #[serde(rename = "HairpinMode")]
    pub hairpin_mode: bool,
    /// Unused; always `""`, kept for docker compatibility.
    #[serde(rename = "LinkLocalIPv6Address")]
    pub link_local_ipv6_address: String,
    /// Unused; always 0, kept for docker compatibility.
    #[serde(rename = "LinkLocalIPv6PrefixLen")]
    pub link_local_ipv6_prefix_len: u8,
    /// Published ports: container port → host bindings. Always present (`{}` when none).
    #[serde(rename = "Ports")]
    pub ports: BTreeMap<ContainerPort, Vec<HostPort>>,
    /// The network namespace path.
    #[serde(rename = "SandboxKey")]
    pub sandbox_key: String,
    /// Network name → the container's entry on it; left out of the JSON when the container is
    /// on no network (pasta, slirp4netns, none).
    #[serde(
        rename = "Networks",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub networks: BTreeMap<String, AdditionalNetwork>,
}

/// A `Ports` key: one container port and protocol, written `80/tcp`.
///
/// Ordered by port number, then protocol name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerPort {
    /// The container port.
    pub port: u16,
    /// The protocol as recorded (`tcp`, `udp`, `sctp`).
    pub protocol: String,
}

impl fmt::Display for ContainerPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}

/// Text that is not a `PORT/PROTOCOL` key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid port key `{text}`: expected PORT/PROTOCOL like 80/tcp")]
pub struct ContainerPortParseError {
    /// The text given.
    pub text: String,
}

impl FromStr for ContainerPort {
    type Err = ContainerPortParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ContainerPortParseError { text: s.to_owned() };
        let (port, protocol) = s.split_once('/').ok_or_else(err)?;
        if protocol.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        Ok(ContainerPort {
            port: port.parse().map_err(|_| err())?,
            protocol: protocol.to_owned(),
        })
    }
}

impl Serialize for ContainerPort {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ContainerPort {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One host binding of a container port: libpod's `InspectHostPort`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPort {
    /// The host address as recorded; `""` = every address.
    #[serde(rename = "HostIp")]
    pub host_ip: String,
    /// The host port in decimal (a string, as podman and docker print it). `"0"` only for a
    /// mapping whose host port has not been chosen yet.
    #[serde(rename = "HostPort")]
    pub host_port: String,
}

/// Why [`container_inspect`] could not describe a container.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// `ContainerRecord.ports` is neither null nor a list of podman port mappings.
    #[error(
        "container `{container}`: the recorded published ports are not a list of port mappings"
    )]
    Ports {
        container: String,
        #[source]
        source: serde_json::Error,
    },
    /// An attachment of another container was passed in.
    #[error(
        "container `{container}`: got the attachment of container `{owner}` to network `{network}`"
    )]
    ForeignAttachment {
        container: String,
        owner: String,
        network: String,
    },
    /// An attachment was paired with the record of a different network.
    #[error(
        "container `{container}`: its attachment to network `{attachment_network}` was paired with network `{network}`"
    )]
    NetworkMismatch {
        container: String,
        attachment_network: String,
        network: String,
    },
    /// Two different records of one network name were passed in.
    #[error(
        "container `{container}`: two different records of network `{network}` (IDs {first} and {second})"
    )]
    ConflictingNetworks {
        container: String,
        network: String,
        first: String,
        second: String,
    },
}

/// Builds `NetworkSettings` for `ctr` from its attachments, each paired with its network's
/// record.
///
/// `default_network` is the name of the default network (podman's `podman`): only when it is the
/// container's sole network are the top-level addresses filled. Several attachments to one
/// network are read as several interfaces of that network, as podman reads a status block.
/// An attachment's gateways come from the subnets of its network that contain its addresses.
pub fn container_inspect(
    ctr: &ContainerRecord,
    attachments: &[(&NetworkRecord, &AttachmentRecord)],
    default_network: &str,
) -> Result<NetworkSettings, InspectError> {
    let ports = recorded_ports(ctr)?;
    let mut settings = NetworkSettings {
        ports: port_bindings(&ports),
        sandbox_key: ctr.netns.path.display().to_string(),
        ..NetworkSettings::default()
    };

    let mut by_network: BTreeMap<&str, (&NetworkRecord, Vec<&AttachmentRecord>)> = BTreeMap::new();
    for &(net, att) in attachments {
        if att.container != ctr.name {
            return Err(InspectError::ForeignAttachment {
                container: ctr.name.clone(),
                owner: att.container.clone(),
                network: att.network.clone(),
            });
        }
        if att.network != net.name {
            return Err(InspectError::NetworkMismatch {
                container: ctr.name.clone(),
                attachment_network: att.network.clone(),
                network: net.name.clone(),
            });
        }
        match by_network.entry(net.name.as_str()) {
            Entry::Vacant(slot) => {
                slot.insert((net, vec![att]));
            }
            Entry::Occupied(mut slot) => {
                let (known, atts) = slot.get_mut();
                if known.id != net.id {
                    return Err(InspectError::ConflictingNetworks {
                        container: ctr.name.clone(),
                        network: net.name.clone(),
                        first: short_id(&known.id).to_owned(),
                        second: short_id(&net.id).to_owned(),
                    });
                }
                atts.push(att);
            }
        }
    }

    for (name, (net, mut atts)) in by_network {
        // Go's sort.Strings: byte order, so eth10 sorts before eth2.
        atts.sort_by(|a, b| a.interface.cmp(&b.interface));
        let mut aliases: Vec<String> = Vec::new();
        for alias in atts.iter().flat_map(|a| &a.aliases) {
            if !aliases.contains(alias) {
                aliases.push(alias.clone());
            }
        }
        settings.networks.insert(
            name.to_owned(),
            AdditionalNetwork {
                basic: basic_config(net, &atts),
                network_id: net.id.clone(),
                aliases,
                interfaces: atts.iter().map(|a| a.interface.clone()).collect(),
                ..AdditionalNetwork::default()
            },
        );
    }

    // Docker compatibility: the top level describes the default network, and only when it is
    // the only one; with any other network it would be ambiguous, so it stays empty.
    if settings.networks.len() == 1
        && let Some(default) = settings.networks.get(default_network)
    {
        settings.basic = default.basic.clone();
    }
    Ok(settings)
}

/// `inspect` for a container without networks whose interfaces were read from its live
/// namespace (pasta, slirp4netns): podman's rule for a status with no networks, one status
/// block copied to the top level. podman shows no addresses at all for these modes; netctl
/// shows what the namespace has.
pub fn container_inspect_status(
    ctr: &ContainerRecord,
    status: &netctl_types::StatusBlock,
) -> Result<NetworkSettings, InspectError> {
    let mut config = BasicNetworkConfig::default();
    // BTreeMap: interfaces in name order, as podman sorts them.
    for iface in status.interfaces.values() {
        for address in &iface.subnets {
            let ip = address.ipnet.addr();
            let gateway = gateway_text(address.gateway);
            match address.ipnet {
                IpNet::V4(_) if config.ip_address.is_empty() => {
                    config.ip_address = ip.to_string();
                    config.ip_prefix_len = address.ipnet.prefix_len();
                    config.gateway = gateway;
                }
                IpNet::V4(_) => config.secondary_ip_addresses.push(secondary(address.ipnet)),
                IpNet::V6(_) if config.global_ipv6_address.is_empty() => {
                    config.global_ipv6_address = ip.to_string();
                    config.global_ipv6_prefix_len = address.ipnet.prefix_len();
                    config.ipv6_gateway = gateway;
                }
                IpNet::V6(_) => config
                    .secondary_ipv6_addresses
                    .push(secondary(address.ipnet)),
            }
        }
        if config.mac_address.is_empty() {
            config.mac_address = iface.mac_address.to_string();
        } else {
            config
                .additional_mac_addresses
                .push(iface.mac_address.to_string());
        }
    }
    Ok(NetworkSettings {
        basic: config,
        ports: port_bindings(&recorded_ports(ctr)?),
        sandbox_key: ctr.netns.path.display().to_string(),
        ..NetworkSettings::default()
    })
}

/// The container's published ports as recorded; a null (never set) value means none.
pub fn recorded_ports(ctr: &ContainerRecord) -> Result<Vec<PortMapping>, InspectError> {
    if ctr.ports.is_null() {
        return Ok(Vec::new());
    }
    ctr.ports
        .decode::<Vec<PortMapping>>()
        .map_err(|source| InspectError::Ports {
            container: ctr.name.clone(),
            source,
        })
}

/// podman's `makeInspectPortBindings`: every mapping expanded to single ports, keyed
/// `PORT/PROTOCOL`; a port published several times lists every binding, in mapping order.
/// A comma-separated protocol (podman accepts `tcp,udp` in a mapping) gives one key per protocol.
pub fn port_bindings(ports: &[PortMapping]) -> BTreeMap<ContainerPort, Vec<HostPort>> {
    let mut out: BTreeMap<ContainerPort, Vec<HostPort>> = BTreeMap::new();
    for mapping in ports {
        for protocol in mapping.protocol.split(',') {
            for (host_port, container_port) in mapping.expand() {
                out.entry(ContainerPort {
                    port: container_port,
                    protocol: protocol.to_owned(),
                })
                .or_default()
                .push(HostPort {
                    host_ip: mapping.host_ip.clone(),
                    host_port: host_port.to_string(),
                });
            }
        }
    }
    out
}

/// podman's `resultToBasicNetworkConfig` over one network's interfaces, already sorted by name.
fn basic_config(net: &NetworkRecord, interfaces: &[&AttachmentRecord]) -> BasicNetworkConfig {
    let mut config = BasicNetworkConfig::default();
    for att in interfaces {
        for address in &att.addresses {
            let ip = address.addr();
            let gateway = gateway_text(net.subnet_of(ip).and_then(|s| s.gateway));
            match address {
                IpNet::V4(_) if config.ip_address.is_empty() => {
                    config.ip_address = ip.to_string();
                    config.ip_prefix_len = address.prefix_len();
                    config.gateway = gateway;
                }
                IpNet::V4(_) => config.secondary_ip_addresses.push(secondary(*address)),
                IpNet::V6(_) if config.global_ipv6_address.is_empty() => {
                    config.global_ipv6_address = ip.to_string();
                    config.global_ipv6_prefix_len = address.prefix_len();
                    config.ipv6_gateway = gateway;
                }
                IpNet::V6(_) => config.secondary_ipv6_addresses.push(secondary(*address)),
            }
        }
        if config.mac_address.is_empty() {
            config.mac_address = att.mac.to_string();
        } else {
            config.additional_mac_addresses.push(att.mac.to_string());
        }
    }
    config
}

fn secondary(address: IpNet) -> Address {
    Address {
        addr: address.addr().to_string(),
        prefix_length: address.prefix_len(),
    }
}

/// An absent gateway is `""`: podman stringified a nil IP as `<nil>`, which no reader wants.
fn gateway_text(gateway: Option<IpAddr>) -> String {
    gateway.map(|g| g.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_port_keys_round_trip_and_sort_numerically() {
        let keys: Vec<ContainerPort> = ["8080/tcp", "80/udp", "80/tcp", "10000/sctp"]
            .iter()
            .map(|k| k.parse().unwrap())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        let shown: Vec<String> = sorted.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["80/tcp", "80/udp", "8080/tcp", "10000/sctp"]);
        for bad in ["80", "/tcp", "80/", "+80/tcp", "65536/tcp", "x/tcp"] {
            assert!(bad.parse::<ContainerPort>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn gateway_absent_is_empty_text() {
        assert_eq!(gateway_text(None), "");
        assert_eq!(
            gateway_text(Some("10.89.0.1".parse().unwrap())),
            "10.89.0.1"
        );
    }

    #[test]
    fn port_bindings_split_comma_protocols_and_keep_duplicates() {
        let mapping = PortMapping {
            host_ip: String::new(),
            container_port: 53,
            host_port: 5353,
            range: 1,
            protocol: "tcp,udp".to_owned(),
        };
        let bindings = port_bindings(&[mapping.clone(), mapping]);
        let keys: Vec<String> = bindings.keys().map(ToString::to_string).collect();
        assert_eq!(keys, ["53/tcp", "53/udp"]);
        assert_eq!(bindings.values().map(Vec::len).collect::<Vec<_>>(), [2, 2]);
    }
}

//! The desired-state schema: what a user writes in the TOML file given with `-f`.
//!
//! These types are plain data. serde reads and writes them (the plan and the state record store
//! them), with unknown keys refused. Reading a user's file goes through `netctl-validate`, which
//! builds the same values while reporting every mistake with its position; a direct
//! `toml::from_str::<DesiredState>` gives the same value for a valid file but stops at the first
//! error. Defaults that depend on the environment (a chosen subnet, bridge name, container id)
//! stay `None` here and are decided and recorded when applying.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use indexmap::IndexMap;
use ipnet::{IpNet, Ipv4Net};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::mac::MacAddr;
use crate::ports::{PortMapping, PortSpecError, Protocol, canonical_host_ip, parse_port_spec};

/// The whole desired state: networks and containers, each keyed by name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DesiredState {
    /// The project the file belongs to (`project = "..."`); the flag `--project` or the file
    /// name's stem when absent. A project owns the networks and containers it declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// `[networks.NAME]` tables.
    #[serde(default)]
    pub networks: BTreeMap<String, NetworkSpec>,
    /// `[containers.NAME]` tables.
    #[serde(default)]
    pub containers: BTreeMap<String, ContainerSpec>,
}

/// A network driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum NetworkDriver {
    /// A Linux bridge with veth pairs into the containers (podman's default).
    #[default]
    Bridge,
    /// Containers straight on a host interface's LAN, each with a MAC of its own.
    Macvlan,
}

impl NetworkDriver {
    /// The name podman and netavark use.
    pub const fn as_str(self) -> &'static str {
        match self {
            NetworkDriver::Bridge => "bridge",
            NetworkDriver::Macvlan => "macvlan",
        }
    }
}

/// Who gives a network's containers their addresses (netavark's IPAM drivers netctl serves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub enum IpamDriver {
    /// netctl (or podman) picks each container's addresses from the subnets.
    #[default]
    #[serde(rename = "host-local")]
    HostLocal,
    /// No addresses at all: the network has no subnets, its containers an interface without
    /// an address (and no default route).
    #[serde(rename = "none")]
    None,
}

impl IpamDriver {
    /// netavark's name for it.
    pub const fn as_str(self) -> &'static str {
        match self {
            IpamDriver::HostLocal => "host-local",
            IpamDriver::None => "none",
        }
    }

    /// Whether this is the default, `host-local`.
    pub fn is_host_local(&self) -> bool {
        *self == IpamDriver::HostLocal
    }
}

/// How a macvlan network's containers share their parent (the kernel's macvlan modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum MacvlanMode {
    /// Containers on one parent reach each other directly (podman's default).
    #[default]
    Bridge,
    /// Containers on one parent never reach each other.
    Private,
    /// Container to container traffic goes out to the switch (which must hairpin it).
    Vepa,
    /// The one container takes over the parent.
    Passthru,
}

impl MacvlanMode {
    /// Every mode, as written in the file.
    pub const ALL: [MacvlanMode; 4] = [
        MacvlanMode::Bridge,
        MacvlanMode::Private,
        MacvlanMode::Vepa,
        MacvlanMode::Passthru,
    ];

    /// The name as written in the file and in podman's `options.mode`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Private => "private",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Passthru => "passthru",
        }
    }

    /// The mode of that name.
    pub fn parse(name: &str) -> Option<MacvlanMode> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl fmt::Display for MacvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who owns a bridge network's bridge: netavark's bridge option `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BridgeMode {
    /// netctl makes the bridge (gateway addresses, sysctls, firewall) and deletes it when the
    /// network's last container leaves.
    #[default]
    Managed,
    /// The bridge exists already and is someone else's: netctl only adds and removes its
    /// containers' veths and never changes or deletes the bridge; no firewall, sysctls or DNS.
    Unmanaged,
}

impl BridgeMode {
    /// netavark's name for it (`options.mode`).
    pub const fn as_str(self) -> &'static str {
        match self {
            BridgeMode::Managed => "managed",
            BridgeMode::Unmanaged => "unmanaged",
        }
    }

    /// The mode of netavark's name; `""` is managed, as in netavark.
    pub fn parse(name: &str) -> Option<BridgeMode> {
        match name {
            "" | "managed" => Some(BridgeMode::Managed),
            "unmanaged" => Some(BridgeMode::Unmanaged),
            _ => None,
        }
    }
}

impl fmt::Display for BridgeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One network, `[networks.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// The driver; `bridge` if absent.
    #[serde(default)]
    pub driver: NetworkDriver,
    /// Bridge interface name (at most 15 bytes); chosen when applying if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// bridge: whether `bridge` is netctl's or an existing one it only attaches veths to
    /// (podman's `mode=unmanaged`). Only podman's protocol sets it; not a file key.
    #[serde(skip)]
    pub bridge_mode: BridgeMode,
    /// macvlan: the host interface the containers' macvlans sit on; the interface of the
    /// default route if absent (recorded when applying).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// macvlan: the kernel mode; `bridge` if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<MacvlanMode>,
    /// macvlan: an address for a host-side macvlan (bridge mode) with routes to the
    /// containers, so the host and the containers reach each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_address: Option<IpAddr>,
    /// Subnets; none at all means a free IPv4 /24 is chosen when applying.
    #[serde(default)]
    pub subnets: Vec<SubnetSpec>,
    /// With no IPv6 subnet given, `true` asks for a random ULA /64.
    #[serde(default)]
    pub ipv6: bool,
    /// No masquerade, no default route, no forwarding out.
    #[serde(default)]
    pub internal: bool,
    /// Bridge and veth MTU; the kernel's default if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// netavark's `isolate` option.
    #[serde(default)]
    pub isolate: Isolate,
    /// Metric of the default routes of the network's containers (netavark's `metric`); absent:
    /// chosen by the order of each container's networks, 100 for the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// `true`: containers get no default route through this network (netavark's
    /// `no_default_route`); their subnet route only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_default_route: bool,
    /// Outbound IPv4 traffic is SNATed to this address instead of masqueraded (netavark's
    /// `outbound_addr4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_addr4: Option<Ipv4Addr>,
    /// Outbound IPv6 traffic is SNATed to this address (netavark's `outbound_addr6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_addr6: Option<Ipv6Addr>,
    /// `"none"`: no subnets and no addresses (netavark's IPAM driver `none`).
    #[serde(default, skip_serializing_if = "IpamDriver::is_host_local")]
    pub ipam_driver: IpamDriver,
    /// Routes added in each container besides the default route (netavark's `routes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSpec>,
    /// Free-form labels, kept for the user.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// 64 lowercase hex; generated and recorded if absent (podman passes its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `external = true`: an existing network (another project's, or podman's) that this
    /// file's containers join; the file neither defines nor owns it (compose's meaning).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// Container names and aliases served by aardvark-dns on the gateway (podman's
    /// `dns_enabled`); absent: on for a declared bridge network, off for the default network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<bool>,
    /// Upstream servers for names this network cannot answer (podman's
    /// `network_dns_servers`); the host's resolv.conf servers if empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<IpAddr>,
}

/// One subnet of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SubnetSpec {
    /// The subnet. The validator normalises it to its network address.
    pub subnet: IpNet,
    /// The gateway (the bridge's address); the first host address if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Where dynamic addresses come from; the whole subnet if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_range: Option<LeaseRangeSpec>,
}

impl SubnetSpec {
    /// The gateway in effect: the given one, else the subnet's first host address.
    pub fn effective_gateway(&self) -> IpAddr {
        self.gateway.unwrap_or_else(|| first_host(self.subnet))
    }
}

/// The first address after the network address (podman's default gateway).
pub fn first_host(subnet: IpNet) -> IpAddr {
    match subnet.network() {
        IpAddr::V4(net) => IpAddr::V4(Ipv4Addr::from(u32::from(net).wrapping_add(1))),
        IpAddr::V6(net) => IpAddr::V6(Ipv6Addr::from(u128::from(net).wrapping_add(1))),
    }
}

/// A route the network's containers get (netavark's route: `destination`, `gateway`,
/// `metric`, `route_type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Where the route leads, a CIDR (host bits cleared).
    pub destination: IpNet,
    /// The next hop, of the destination's family; absent: straight out of the container's
    /// interface on this network. Only for `unicast` routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The route's metric; the kernel's default if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// `unicast` (default), or `blackhole`, `unreachable`, `prohibit`: packets to the
    /// destination are dropped, silently or with that ICMP error.
    #[serde(default)]
    pub route_type: RouteType,
}

/// What a [`RouteSpec`] does with packets (netavark's `route_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RouteType {
    #[default]
    Unicast,
    Blackhole,
    Unreachable,
    Prohibit,
}

impl RouteType {
    /// netavark's name for it.
    pub const fn as_str(self) -> &'static str {
        match self {
            RouteType::Unicast => "unicast",
            RouteType::Blackhole => "blackhole",
            RouteType::Unreachable => "unreachable",
            RouteType::Prohibit => "prohibit",
        }
    }

    /// The type named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<RouteType> {
        [
            RouteType::Unicast,
            RouteType::Blackhole,
            RouteType::Unreachable,
            RouteType::Prohibit,
        ]
        .into_iter()
        .find(|t| t.as_str() == name)
    }
}

/// A dynamic address range inside a subnet; either end may be left open.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LeaseRangeSpec {
    /// First address handed out; the subnet's first host if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<IpAddr>,
    /// Last address handed out; the subnet's last host if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<IpAddr>,
}

/// netavark's bridge `isolate` option, written `false`, `true` or `"strict"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Isolate {
    /// `false`: no isolation.
    #[default]
    Disabled,
    /// `true`: no traffic to other isolated networks.
    Enabled,
    /// `"strict"`: no traffic to any other network.
    Strict,
}

impl Isolate {
    /// The value of netavark's `isolate` network option.
    pub const fn option_value(self) -> &'static str {
        match self {
            Isolate::Disabled => "false",
            Isolate::Enabled => "true",
            Isolate::Strict => "strict",
        }
    }
}

impl Serialize for Isolate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Isolate::Disabled => serializer.serialize_bool(false),
            Isolate::Enabled => serializer.serialize_bool(true),
            Isolate::Strict => serializer.serialize_str("strict"),
        }
    }
}

impl<'de> Deserialize<'de> for Isolate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IsolateVisitor;

        impl Visitor<'_> for IsolateVisitor {
            type Value = Isolate;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"true, false or "strict""#)
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Isolate, E> {
                Ok(if v {
                    Isolate::Enabled
                } else {
                    Isolate::Disabled
                })
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Isolate, E> {
                if v == "strict" {
                    Ok(Isolate::Strict)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }

        deserializer.deserialize_any(IsolateVisitor)
    }
}

/// Which network namespace a container is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum NetnsSpec {
    /// `"managed"`: netctl creates `<netns_dir>/<name>` and removes it on destroy.
    #[default]
    Managed,
    /// An absolute path to an existing namespace (`/run/netns/x`, `/proc/PID/ns/net`); netctl
    /// configures it but never creates or deletes it.
    Path(PathBuf),
}

/// The spelling of [`NetnsSpec::Managed`].
pub const MANAGED_NETNS: &str = "managed";

impl Serialize for NetnsSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            NetnsSpec::Managed => serializer.serialize_str(MANAGED_NETNS),
            NetnsSpec::Path(path) => match path.to_str() {
                Some(text) => serializer.serialize_str(text),
                None => Err(serde::ser::Error::custom(format!(
                    "netns path {} is not UTF-8",
                    path.display()
                ))),
            },
        }
    }
}

impl<'de> Deserialize<'de> for NetnsSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        NetnsSpec::parse(&text).ok_or_else(|| {
            de::Error::custom(format!(
                r#"netns `{text}` must be "managed" or an absolute path"#
            ))
        })
    }
}

impl NetnsSpec {
    /// `"managed"` or an absolute path; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        if text == MANAGED_NETNS {
            Some(NetnsSpec::Managed)
        } else if text.starts_with('/') {
            Some(NetnsSpec::Path(PathBuf::from(text)))
        } else {
            None
        }
    }
}

/// How a container gets its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ContainerMode {
    /// veth pairs into bridge networks (podman's rootful default).
    #[default]
    Bridge,
    /// User-mode networking by `pasta`.
    Pasta,
    /// User-mode networking by `slirp4netns`.
    Slirp4netns,
    /// Only loopback.
    None,
}

impl ContainerMode {
    /// Every mode, in the order messages list them.
    pub const ALL: [ContainerMode; 4] = [
        ContainerMode::Bridge,
        ContainerMode::Pasta,
        ContainerMode::Slirp4netns,
        ContainerMode::None,
    ];

    /// The spelling in the TOML file.
    pub const fn as_str(self) -> &'static str {
        match self {
            ContainerMode::Bridge => "bridge",
            ContainerMode::Pasta => "pasta",
            ContainerMode::Slirp4netns => "slirp4netns",
            ContainerMode::None => "none",
        }
    }

    /// The mode spelled `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

impl fmt::Display for ContainerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One container, `[containers.NAME]`: a network namespace plus its files.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    /// The namespace: managed by netctl (default) or an existing path.
    #[serde(default)]
    pub netns: NetnsSpec,
    /// How the namespace is connected; `bridge` if absent.
    #[serde(default)]
    pub mode: ContainerMode,
    /// Hostname for /etc/hosts; the container's name if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Any safe file-name component (podman's are 64 lowercase hex digits); generated (64 hex)
    /// and recorded if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Bridge networks to join, by name, in the order given: the first is the primary one
    /// (`eth0`, the lowest default-route metric), as with podman. Empty in bridge mode: the
    /// default network.
    #[serde(default)]
    pub networks: IndexMap<String, AttachmentSpec>,
    /// Published ports, as tables or podman `-p` strings.
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// Nameservers for resolv.conf, replacing the host's; on DNS networks also this
    /// container's upstreams in aardvark-dns.
    #[serde(default)]
    pub dns_servers: Vec<IpAddr>,
    /// Search domains for resolv.conf.
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// Extra /etc/hosts entries, `name:ip` (podman's `--add-host`).
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    /// Extra pasta arguments (mode `pasta` only).
    #[serde(default)]
    pub pasta: Vec<String>,
    /// slirp4netns options (mode `slirp4netns` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slirp4netns: Option<SlirpOptions>,
}

impl ContainerSpec {
    /// The hostname in effect: the given one, else the container's name.
    pub fn hostname_or<'a>(&'a self, name: &'a str) -> &'a str {
        self.hostname.as_deref().unwrap_or(name)
    }
}

/// One container's membership of one network (`networks.NAME = { ... }`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AttachmentSpec {
    /// Static IPv4 address; allocated if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// Static IPv6 address; allocated if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    /// Static MAC address; random if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// Interface name inside the container; the lowest free `ethN` if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Name of the host end of the veth (netavark's `host_interface_name`); derived from the
    /// container and network ids if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_interface: Option<String>,
    /// Extra DNS names on this network.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// One entry of `ports`: a table or a podman `-p` string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum PortSpec {
    /// `{ host_ip, host_port, container_port, range, protocol }`.
    Table(PortTable),
    /// `"[[hostIP:]hostPort[-end]:]ctrPort[-end][/proto]"`.
    Podman(String),
}

impl PortSpec {
    /// The wire mappings this entry stands for (a `-p` string with `tcp,udp` gives two).
    pub fn to_mappings(&self) -> Result<Vec<PortMapping>, PortSpecError> {
        match self {
            PortSpec::Table(table) => Ok(vec![table.to_mapping()]),
            PortSpec::Podman(spec) => parse_port_spec(spec),
        }
    }
}

/// The table form of a published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PortTable {
    /// Host address; every address if absent (`""` and `0.0.0.0` mean the same, as in podman).
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub host_ip: Option<IpAddr>,
    /// First host port; chosen when applying if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// First container port.
    pub container_port: u16,
    /// Number of consecutive ports.
    #[serde(default = "one")]
    pub range: u16,
    /// Protocol; tcp if absent.
    #[serde(default)]
    pub protocol: Protocol,
}

fn one() -> u16 {
    1
}

/// `host_ip = ""` is podman's spelling of "every address"; read it as absent.
fn empty_as_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<IpAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        Ok(None)
    } else {
        text.parse().map(Some).map_err(de::Error::custom)
    }
}

impl PortTable {
    /// The wire mapping for this table.
    pub fn to_mapping(&self) -> PortMapping {
        PortMapping {
            host_ip: self.host_ip.map(canonical_host_ip).unwrap_or_default(),
            container_port: self.container_port,
            host_port: self.host_port.unwrap_or(crate::ports::CHOOSE_HOST_PORT),
            range: self.range,
            protocol: self.protocol.as_str().to_owned(),
        }
    }
}

/// Who forwards published ports for a slirp4netns container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum PortHandler {
    /// rootlesskit's port driver (podman's default).
    #[default]
    Rootlesskit,
    /// slirp4netns's own `add_hostfwd` API.
    Slirp4netns,
}

impl PortHandler {
    /// The spelling in the TOML file.
    pub const fn as_str(self) -> &'static str {
        match self {
            PortHandler::Rootlesskit => "rootlesskit",
            PortHandler::Slirp4netns => "slirp4netns",
        }
    }
}

/// slirp4netns options, podman's `slirp4netns:k=v,...`. Absent values take podman's defaults,
/// which the accessor methods of the same names return.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SlirpOptions {
    /// The user-mode subnet (IPv4 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<Ipv4Net>,
    /// MTU of tap0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Give the container IPv6 too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    /// Let the container reach the host's loopback through the gateway address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_host_loopback: Option<bool>,
    /// IPv4 address or interface name for outgoing connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_addr: Option<String>,
    /// IPv6 address or interface name for outgoing connections (needs `enable_ipv6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_addr6: Option<String>,
    /// Who forwards published ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_handler: Option<PortHandler>,
}

impl SlirpOptions {
    /// podman's default slirp4netns MTU.
    pub const DEFAULT_MTU: u32 = 65520;
    /// slirp4netns's default subnet.
    pub const DEFAULT_CIDR: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(10, 0, 2, 0), 24) {
        Ok(net) => net,
        Err(_) => panic!("10.0.2.0/24 is a valid network"),
    };

    /// The subnet in effect.
    pub fn cidr(&self) -> Ipv4Net {
        self.cidr.unwrap_or(Self::DEFAULT_CIDR)
    }

    /// The MTU in effect.
    pub fn mtu(&self) -> u32 {
        self.mtu.unwrap_or(Self::DEFAULT_MTU)
    }

    /// Whether IPv6 is enabled (podman's default is yes).
    pub fn enable_ipv6(&self) -> bool {
        self.enable_ipv6.unwrap_or(true)
    }

    /// Whether the host's loopback is reachable (default no).
    pub fn allow_host_loopback(&self) -> bool {
        self.allow_host_loopback.unwrap_or(false)
    }

    /// The port handler in effect.
    pub fn port_handler(&self) -> PortHandler {
        self.port_handler.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from CONTRACT.md, verbatim apart from the placeholder id.
    const CONTRACT_EXAMPLE: &str = r#"
[networks.web]
driver = "bridge"
bridge = "nc-web"
subnets = [ { subnet = "10.89.0.0/24", gateway = "10.89.0.1" },
            { subnet = "fd10:89::/64", lease_range = { start = "fd10:89::10", end = "fd10:89::ff" } } ]
ipv6 = false
internal = false
mtu = 1500
isolate = false
labels = { team = "a" }

[containers.api]
netns = "managed"
mode = "bridge"
hostname = "api"
id = "6ce776ea58b5aaaabbbbccccddddeeeeffff0000111122223333444455556666"
networks.web = { ip = "10.89.0.10", aliases = ["backend"] }
ports = [ { host_port = 8080, container_port = 80 },
          { host_ip = "127.0.0.1", host_port = 9000, container_port = 9000, range = 3, protocol = "udp" },
          "127.0.0.1:7000:70/tcp" ]
dns_servers = []
dns_search = []
extra_hosts = ["db:10.89.0.20"]
pasta = ["--mtu", "1500"]
slirp4netns = { cidr = "10.0.2.0/24", mtu = 65520, enable_ipv6 = true, allow_host_loopback = false }
"#;

    #[test]
    fn contract_example_deserializes() {
        let state: DesiredState = toml::from_str(CONTRACT_EXAMPLE).unwrap();
        insta::assert_json_snapshot!(state);
        let api = &state.containers["api"];
        let ports: Vec<PortMapping> = api
            .ports
            .iter()
            .flat_map(|p| p.to_mappings().unwrap())
            .collect();
        assert_eq!(ports.len(), 3);
        assert_eq!(ports[1].host_ip, "127.0.0.1");
        assert_eq!(ports[2].host_port, 7000);
    }

    #[test]
    fn serde_round_trips_through_toml_and_json() {
        let state: DesiredState = toml::from_str(CONTRACT_EXAMPLE).unwrap();
        let text = toml::to_string(&state).unwrap();
        assert_eq!(toml::from_str::<DesiredState>(&text).unwrap(), state);
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<DesiredState>(&json).unwrap(), state);
    }

    #[test]
    fn isolate_forms() {
        #[derive(Deserialize, Serialize)]
        struct T {
            isolate: Isolate,
        }
        let read = |text: &str| toml::from_str::<T>(text).map(|t| t.isolate);
        assert_eq!(read("isolate = true").unwrap(), Isolate::Enabled);
        assert_eq!(read("isolate = false").unwrap(), Isolate::Disabled);
        assert_eq!(read(r#"isolate = "strict""#).unwrap(), Isolate::Strict);
        assert!(read(r#"isolate = "yes""#).is_err());
        assert!(read("isolate = 1").is_err());
        let json = |i| serde_json::to_string(&T { isolate: i }).unwrap();
        assert_eq!(json(Isolate::Strict), r#"{"isolate":"strict"}"#);
        assert_eq!(json(Isolate::Enabled), r#"{"isolate":true}"#);
        assert_eq!(Isolate::Disabled.option_value(), "false");
    }

    #[test]
    fn netns_forms() {
        assert_eq!(NetnsSpec::parse("managed"), Some(NetnsSpec::Managed));
        assert_eq!(
            NetnsSpec::parse("/proc/1/ns/net"),
            Some(NetnsSpec::Path("/proc/1/ns/net".into()))
        );
        assert_eq!(NetnsSpec::parse("run/netns/x"), None);
        assert!(serde_json::from_str::<NetnsSpec>("\"x\"").is_err());
        assert_eq!(
            serde_json::to_string(&NetnsSpec::Path("/run/netns/a".into())).unwrap(),
            "\"/run/netns/a\""
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err =
            toml::from_str::<DesiredState>("[networks.a]\nsubnet = \"10.0.0.0/24\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `subnet`"), "{err}");
    }

    #[test]
    fn defaults() {
        let state: DesiredState = toml::from_str("[networks.n]\n[containers.c]\n").unwrap();
        assert_eq!(state.networks["n"], NetworkSpec::default());
        let c = &state.containers["c"];
        assert_eq!(c, &ContainerSpec::default());
        assert_eq!(c.hostname_or("c"), "c");
        let slirp = SlirpOptions::default();
        assert_eq!(slirp.cidr().to_string(), "10.0.2.0/24");
        assert!(slirp.enable_ipv6());
        assert_eq!(slirp.mtu(), 65520);
        assert_eq!(slirp.port_handler(), PortHandler::Rootlesskit);
    }

    #[test]
    fn gateways_default_to_first_host() {
        let v4 = SubnetSpec {
            subnet: "10.89.0.0/24".parse().unwrap(),
            gateway: None,
            lease_range: None,
        };
        assert_eq!(v4.effective_gateway().to_string(), "10.89.0.1");
        let v6 = SubnetSpec {
            subnet: "fd10:89::/64".parse().unwrap(),
            gateway: None,
            lease_range: None,
        };
        assert_eq!(v6.effective_gateway().to_string(), "fd10:89::1");
    }

    #[test]
    fn port_table_host_ip_forms() {
        let read = |text: &str| toml::from_str::<PortTable>(text).map(|t| t.host_ip);
        assert_eq!(read("container_port = 1").unwrap(), None);
        assert_eq!(read("container_port = 1\nhost_ip = \"\"").unwrap(), None);
        assert_eq!(
            read("container_port = 1\nhost_ip = \"::1\"").unwrap(),
            Some("::1".parse().unwrap())
        );
        assert!(read("container_port = 1\nhost_ip = \"x\"").is_err());
    }

    #[test]
    fn port_table_to_mapping() {
        let table = PortTable {
            host_ip: Some("0.0.0.0".parse().unwrap()),
            host_port: None,
            container_port: 80,
            range: 2,
            protocol: Protocol::Udp,
        };
        let m = table.to_mapping();
        assert_eq!(m.host_ip, "");
        assert_eq!(m.host_port, 0);
        assert_eq!(m.range, 2);
        assert_eq!(m.protocol, "udp");
    }
}

//! podman's and netavark's JSON wire types (c/common `libnetwork/types`, netavark's
//! `NetworkOptions` and `StatusBlock`).
//!
//! JSON keys are exactly podman's. Optional fields are left out when `None`, as netavark does, so
//! what netctl writes reads back the same in podman tooling and vice versa. Addresses in a
//! [`NetAddress`] keep their host bits (`10.88.0.2/16`): that is the interface address, not the
//! network, and must never be normalised.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::mac::MacAddr;
use crate::ports::PortMapping;

/// A network as podman stores it (`/etc/containers/networks/<name>.json`) and netavark receives
/// it in `network_info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Network name.
    pub name: String,
    /// 64 hex digits.
    pub id: String,
    /// `bridge`, `macvlan`, `ipvlan` or a plugin name.
    pub driver: String,
    /// Bridge name, or the macvlan/ipvlan parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface: Option<String>,
    /// Creation time, RFC 3339 (kept as text: netctl only passes it through).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Subnets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<Subnet>,
    /// Extra routes (netavark 1.7+).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// Whether IPv6 is enabled (any v6 subnet sets it).
    #[serde(default)]
    pub ipv6_enabled: bool,
    /// No external connectivity.
    #[serde(default)]
    pub internal: bool,
    /// aardvark-dns serves this network.
    #[serde(default)]
    pub dns_enabled: bool,
    /// Upstream servers for aardvark on this network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_dns_servers: Vec<IpAddr>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Driver options (`mtu`, `isolate`, `vlan`, `metric`, ...), all strings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// IPAM options; `driver` is `host-local`, `dhcp` or `none`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ipam_options: BTreeMap<String, String>,
}

/// What podman 5 sends to netavark's `create`: a new network to check and complete (a subnet
/// and bridge name chosen when absent), with what is in use already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkCreateConfig {
    pub network: Network,
    pub used: UsedByNetworks,
    pub options: CreateOptions,
}

/// What other networks and the host use already.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedByNetworks {
    /// Bridge (and other) interface names of existing networks.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Existing networks, name to id.
    #[serde(default)]
    pub names: BTreeMap<String, String>,
    /// Subnets of existing networks.
    #[serde(default)]
    pub subnets: Vec<IpNet>,
}

/// How `create` chooses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOptions {
    /// Where free IPv4 subnets come from: each pool's `base` cut into subnets of `size` bits.
    #[serde(default)]
    pub subnet_pools: Vec<SubnetPool>,
    /// The stem of chosen bridge names (`podman` gives `podman1`, ...).
    #[serde(default)]
    pub default_interface_name: Option<String>,
    /// Also avoid subnets in use on the host's interfaces.
    #[serde(default)]
    pub check_used_subnets: bool,
}

/// One pool of [`CreateOptions::subnet_pools`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetPool {
    pub base: IpNet,
    pub size: u8,
}

/// One subnet of a [`Network`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    /// The subnet (network address and prefix).
    pub subnet: IpNet,
    /// Gateway address; none on internal networks without DNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Range for dynamic addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_range: Option<LeaseRange>,
}

/// A dynamic address range; either end may be open.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LeaseRange {
    /// First address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ip: Option<IpAddr>,
    /// Last address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ip: Option<IpAddr>,
}

/// A route netavark adds in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination network.
    pub destination: IpNet,
    /// Next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Route metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// `unicast`, `blackhole`, `unreachable` or `prohibit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_type: Option<String>,
}

/// One container's options for one network.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PerNetworkOptions {
    /// Interface name inside the container (required).
    pub interface_name: String,
    /// Addresses to assign (podman's IPAM has already chosen them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_ips: Option<Vec<IpAddr>>,
    /// DNS aliases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    /// MAC address of the container interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_mac: Option<MacAddr>,
    /// Driver options, e.g. `host_interface_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
}

/// The networks of a setup request, in setup order.
///
/// podman sends a JSON object (name → options); netavark also accepts an array of
/// `{name, ...options}`. Both forms are read, keeping document order; a name given twice is an
/// error. It is written back as an object in the same order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkAttachments(Vec<(String, PerNetworkOptions)>);

impl NetworkAttachments {
    /// No networks.
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Appends a network; returns false (and changes nothing) if the name is already present.
    pub fn push(&mut self, name: String, options: PerNetworkOptions) -> bool {
        if self.get(&name).is_some() {
            return false;
        }
        self.0.push((name, options));
        true
    }

    /// The options for `name`.
    pub fn get(&self, name: &str) -> Option<&PerNetworkOptions> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, o)| o)
    }

    /// The networks in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PerNetworkOptions)> {
        self.0.iter().map(|(n, o)| (n.as_str(), o))
    }

    /// The network names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    /// Number of networks.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, PerNetworkOptions)> for NetworkAttachments {
    /// Later duplicates are dropped (the first occurrence wins).
    fn from_iter<I: IntoIterator<Item = (String, PerNetworkOptions)>>(iter: I) -> Self {
        let mut out = Self::new();
        for (name, options) in iter {
            out.push(name, options);
        }
        out
    }
}

impl Serialize for NetworkAttachments {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, options) in &self.0 {
            map.serialize_entry(name, options)?;
        }
        map.end()
    }
}

/// The array form's element: a name next to the options.
#[derive(Deserialize)]
struct NamedOptions {
    name: String,
    #[serde(flatten)]
    options: PerNetworkOptions,
}

impl<'de> Deserialize<'de> for NetworkAttachments {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AttachmentsVisitor;

        fn add<E: de::Error>(
            out: &mut NetworkAttachments,
            name: String,
            options: PerNetworkOptions,
        ) -> Result<(), E> {
            if out.get(&name).is_some() {
                return Err(E::custom(format!("network `{name}` is given twice")));
            }
            out.0.push((name, options));
            Ok(())
        }

        impl<'de> Visitor<'de> for AttachmentsVisitor {
            type Value = NetworkAttachments;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of network name to options, or an array of {name, ...options}")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = NetworkAttachments::new();
                while let Some((name, options)) = map.next_entry::<String, PerNetworkOptions>()? {
                    add(&mut out, name, options)?;
                }
                Ok(out)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = NetworkAttachments::new();
                while let Some(named) = seq.next_element::<NamedOptions>()? {
                    add(&mut out, named.name, named.options)?;
                }
                Ok(out)
            }
        }

        deserializer.deserialize_any(AttachmentsVisitor)
    }
}

/// netavark's `setup`/`teardown` input (c/common's `NetworkOptions` plus `network_info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkOptions {
    /// Full container id.
    pub container_id: String,
    /// Container name (the DNS name registered).
    pub container_name: String,
    /// Hostname sent in DHCP requests (netavark 1.14+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_hostname: Option<String>,
    /// Published ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_mappings: Option<Vec<PortMapping>>,
    /// Networks to set up, in order.
    pub networks: NetworkAttachments,
    /// The full definition of every network in `networks`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub network_info: BTreeMap<String, Network>,
    /// Per-container upstream DNS servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_servers: Option<Vec<IpAddr>>,
}

/// What setting up one network produced (netavark's stdout is name → `StatusBlock`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusBlock {
    /// Interfaces configured in the container, by name.
    #[serde(default)]
    pub interfaces: BTreeMap<String, NetInterface>,
    /// Nameservers the container should use on this network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_server_ips: Option<Vec<IpAddr>>,
    /// Search domains for this network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_search_domains: Option<Vec<String>>,
}

/// One interface in a [`StatusBlock`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetInterface {
    /// Its addresses.
    #[serde(default)]
    pub subnets: Vec<NetAddress>,
    /// Its MAC address.
    pub mac_address: MacAddr,
}

/// One address of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetAddress {
    /// The interface address with its prefix length (host bits kept).
    pub ipnet: IpNet,
    /// The gateway of that subnet, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// netavark.md §2.4, the `setup` input.
    const SETUP_INPUT: &str = r#"{"container_id":"6ce776ea58b5aaaabbbbccccddddeeeeffff0000111122223333444455556666","container_name":"web",
 "port_mappings":[{"host_ip":"","container_port":80,"host_port":8080,"range":1,"protocol":"tcp"}],
 "networks":{"podman":{"interface_name":"eth0","static_ips":["10.88.0.2"],"aliases":["web"]}},
 "network_info":{"podman":{"name":"podman","id":"2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
   "driver":"bridge","network_interface":"podman0","subnets":[{"subnet":"10.88.0.0/16","gateway":"10.88.0.1"}],
   "ipv6_enabled":false,"internal":false,"dns_enabled":false,"ipam_options":{"driver":"host-local"}}}}"#;

    /// netavark.md §2.4, the `setup` output.
    const SETUP_OUTPUT: &str = r#"{"podman":{"dns_search_domains":[],"dns_server_ips":[],"interfaces":{"eth0":{"mac_address":"3e:aa:03:b8:5f:29",
 "subnets":[{"gateway":"10.88.0.1","ipnet":"10.88.0.2/16"}]}}}}"#;

    fn round_trip<T: Serialize + for<'de> Deserialize<'de>>(text: &str) -> T {
        let value: T = serde_json::from_str(text).unwrap();
        let original: Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_value(&value).unwrap(), original);
        value
    }

    #[test]
    fn setup_input_round_trips() {
        let opts: NetworkOptions = round_trip(SETUP_INPUT);
        assert_eq!(opts.container_name, "web");
        let podman = opts.networks.get("podman").unwrap();
        assert_eq!(podman.interface_name, "eth0");
        assert_eq!(
            podman.static_ips.as_deref(),
            Some(&["10.88.0.2".parse().unwrap()][..])
        );
        let net = &opts.network_info["podman"];
        assert_eq!(net.subnets[0].subnet.to_string(), "10.88.0.0/16");
        assert_eq!(net.ipam_options["driver"], "host-local");
        assert_eq!(opts.port_mappings.unwrap()[0].host_port, 8080);
    }

    #[test]
    fn setup_output_round_trips_and_keeps_host_bits() {
        let out: BTreeMap<String, StatusBlock> = round_trip(SETUP_OUTPUT);
        let eth0 = &out["podman"].interfaces["eth0"];
        assert_eq!(eth0.mac_address.to_string(), "3e:aa:03:b8:5f:29");
        assert_eq!(eth0.subnets[0].ipnet.to_string(), "10.88.0.2/16");
        assert_eq!(eth0.subnets[0].gateway, Some("10.88.0.1".parse().unwrap()));
    }

    #[test]
    fn dual_stack_status_round_trips() {
        let text = r#"{"dns_server_ips":["10.89.0.1","fd10:89::1"],"dns_search_domains":["dns.podman"],
            "interfaces":{"eth0":{"mac_address":"02:00:00:00:00:01","subnets":[
              {"ipnet":"10.89.0.5/24","gateway":"10.89.0.1"},{"ipnet":"fd10:89::5/64"}]}}}"#;
        let status: StatusBlock = round_trip(text);
        assert_eq!(status.interfaces["eth0"].subnets[1].gateway, None);
    }

    #[test]
    fn networks_accept_array_form_in_order() {
        let text = json!({
            "container_id": "c", "container_name": "n",
            "networks": [
                {"name": "zeta", "interface_name": "eth0"},
                {"name": "alpha", "interface_name": "eth1", "static_mac": [2, 0, 0, 0, 0, 1]}
            ]
        });
        let opts: NetworkOptions = serde_json::from_value(text).unwrap();
        assert_eq!(opts.networks.names().collect::<Vec<_>>(), ["zeta", "alpha"]);
        assert_eq!(
            opts.networks
                .get("alpha")
                .unwrap()
                .static_mac
                .unwrap()
                .to_string(),
            "02:00:00:00:00:01"
        );
        // Written back as a map, in the same order.
        let back = serde_json::to_string(&opts.networks).unwrap();
        assert_eq!(
            back,
            r#"{"zeta":{"interface_name":"eth0"},"alpha":{"interface_name":"eth1","static_mac":"02:00:00:00:00:01"}}"#
        );
    }

    #[test]
    fn networks_map_form_keeps_document_order() {
        let opts: NetworkAttachments = serde_json::from_str(
            r#"{"b":{"interface_name":"eth0"},"a":{"interface_name":"eth1"}}"#,
        )
        .unwrap();
        assert_eq!(opts.names().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(opts.len(), 2);
    }

    #[test]
    fn networks_refuse_duplicates_and_missing_interface() {
        let dup = serde_json::from_str::<NetworkAttachments>(
            r#"[{"name":"a","interface_name":"eth0"},{"name":"a","interface_name":"eth1"}]"#,
        );
        assert!(dup.unwrap_err().to_string().contains("`a` is given twice"));
        let missing = serde_json::from_str::<NetworkAttachments>(r#"{"a":{}}"#);
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("missing field `interface_name`")
        );
        let mut list = NetworkAttachments::new();
        assert!(list.push("a".into(), PerNetworkOptions::default()));
        assert!(!list.push("a".into(), PerNetworkOptions::default()));
    }

    #[test]
    fn missing_container_id_is_an_error() {
        let err = serde_json::from_str::<NetworkOptions>(r#"{"container_name":"x","networks":{}}"#)
            .unwrap_err();
        assert!(
            err.to_string().contains("missing field `container_id`"),
            "{err}"
        );
    }

    #[test]
    fn full_network_json_shape() {
        let net = Network {
            name: "web".into(),
            id: "a".repeat(64),
            driver: "bridge".into(),
            network_interface: Some("nc-web".into()),
            created: Some("2024-01-02T03:04:05.000000006Z".into()),
            subnets: vec![Subnet {
                subnet: "10.89.0.0/24".parse().unwrap(),
                gateway: Some("10.89.0.1".parse().unwrap()),
                lease_range: Some(LeaseRange {
                    start_ip: Some("10.89.0.10".parse().unwrap()),
                    end_ip: None,
                }),
            }],
            routes: vec![Route {
                destination: "192.0.2.0/24".parse().unwrap(),
                gateway: Some("10.89.0.254".parse().unwrap()),
                metric: Some(100),
                route_type: None,
            }],
            ipv6_enabled: false,
            internal: false,
            dns_enabled: true,
            network_dns_servers: vec!["192.0.2.53".parse().unwrap()],
            labels: BTreeMap::from([("team".into(), "a".into())]),
            options: BTreeMap::from([("isolate".into(), "strict".into())]),
            ipam_options: BTreeMap::from([("driver".into(), "host-local".into())]),
        };
        insta::assert_json_snapshot!(net);
        let text = serde_json::to_string(&net).unwrap();
        assert_eq!(serde_json::from_str::<Network>(&text).unwrap(), net);
    }
}

//! The records netctl keeps in its store.
//!
//! These are netctl's own memory of what it made, not the user's desired state: every field is a
//! concrete choice (a chosen subnet, a generated MAC, a resolved netns path), so that a later run
//! reproduces the same objects. The store keeps them as JSON, which keeps the file inspectable and
//! lets a newer netctl add optional fields without a schema bump (`#[serde(default)]`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::SystemTime;

use ipnet::IpNet;
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

/// A recorded network: what netctl created and the choices it made for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// The network's name, the key of `[networks.NAME]`.
    pub name: String,
    /// 64 lowercase hex characters; generated once and kept.
    pub id: String,
    pub driver: NetworkDriver,
    /// The bridge interface (bridge driver) or the parent interface (macvlan), as podman's
    /// `network_interface`.
    pub network_interface: String,
    /// Chosen or declared subnets, each with its gateway and lease range, in declaration order.
    #[serde(default)]
    pub subnets: Vec<SubnetRecord>,
    #[serde(default)]
    pub ipv6: bool,
    #[serde(default)]
    pub internal: bool,
    /// aardvark-dns serves this network's containers by name (podman's `dns_enabled`).
    #[serde(default)]
    pub dns_enabled: bool,
    /// Upstream DNS servers for this network (podman's `network_dns_servers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<IpAddr>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub isolate: Isolate,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Driver options not covered by a field above (podman's `options`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Routes the network's containers get besides the default routes (netavark's `routes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteRecord>,
    pub created: SystemTime,
    /// The project (desired-state file) that owns it; `None` for what podman or a CNI runtime
    /// brought, the default network, and records written before projects existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// The `options` key of a macvlan network's host-side address (netctl's own; podman has none).
pub const HOST_ADDRESS_OPTION: &str = "host_address";

/// The `options` key of a network's default-route metric (netavark's option name).
pub const OPTION_METRIC: &str = "metric";
/// The `options` key that says the network gives no default route (netavark's option name).
pub const OPTION_NO_DEFAULT_ROUTE: &str = "no_default_route";
/// The `options` key that records a network without IPAM (`"none"`).
pub const OPTION_IPAM_DRIVER: &str = "ipam_driver";
/// The `options` key of a bridge network's management mode (netavark's option name; macvlan
/// networks keep their kernel mode under the same key, as netavark does).
pub const OPTION_MODE: &str = "mode";
/// The bridge `mode` of a network whose bridge netctl did not make and never changes or
/// deletes (netavark's `unmanaged`).
pub const BRIDGE_MODE_UNMANAGED: &str = "unmanaged";
/// The `options` keys of the fixed outbound source addresses (netavark's option names).
pub const OPTION_OUTBOUND_ADDR4: &str = "outbound_addr4";
pub const OPTION_OUTBOUND_ADDR6: &str = "outbound_addr6";

impl NetworkRecord {
    /// The declared metric of the network's default routes, if any.
    pub fn metric(&self) -> Option<u32> {
        self.options.get(OPTION_METRIC).and_then(|m| m.parse().ok())
    }

    /// Whether the network's containers get a default route through it.
    pub fn no_default_route(&self) -> bool {
        self.options
            .get(OPTION_NO_DEFAULT_ROUTE)
            .map(String::as_str)
            == Some("true")
    }

    /// Whether the network's bridge is borrowed: it existed before, netctl did not make it
    /// and never changes or deletes it (netavark's bridge `mode=unmanaged`). Old records,
    /// without the option, are netctl's own bridges.
    pub fn unmanaged(&self) -> bool {
        self.driver == NetworkDriver::Bridge
            && self.options.get(OPTION_MODE).map(String::as_str) == Some(BRIDGE_MODE_UNMANAGED)
    }

    /// Whether the network gives no addresses (IPAM driver `none`).
    pub fn ipam_none(&self) -> bool {
        self.options.get(OPTION_IPAM_DRIVER).map(String::as_str) == Some("none")
    }

    /// Records whether the network gives no addresses.
    pub fn set_ipam_none(&mut self, none: bool) {
        if none {
            self.options
                .insert(OPTION_IPAM_DRIVER.to_owned(), "none".to_owned());
        } else {
            self.options.remove(OPTION_IPAM_DRIVER);
        }
    }

    /// The fixed outbound source address of a family (`outbound_addr4`/`outbound_addr6`).
    pub fn outbound_addr(&self, v6: bool) -> Option<IpAddr> {
        let key = if v6 {
            OPTION_OUTBOUND_ADDR6
        } else {
            OPTION_OUTBOUND_ADDR4
        };
        self.options
            .get(key)
            .and_then(|a| a.parse::<IpAddr>().ok())
            .filter(|a| a.is_ipv6() == v6)
    }

    /// Records the fixed outbound source addresses in `options`, as netavark names them.
    pub fn set_outbound_addrs(&mut self, v4: Option<IpAddr>, v6: Option<IpAddr>) {
        for (key, addr) in [(OPTION_OUTBOUND_ADDR4, v4), (OPTION_OUTBOUND_ADDR6, v6)] {
            match addr {
                Some(a) => self.options.insert(key.to_owned(), a.to_string()),
                None => self.options.remove(key),
            };
        }
    }

    /// Records `metric` and `no_default_route` in `options`, as netavark names them.
    pub fn set_route_options(&mut self, metric: Option<u32>, no_default_route: bool) {
        match metric {
            Some(m) => self.options.insert(OPTION_METRIC.to_owned(), m.to_string()),
            None => self.options.remove(OPTION_METRIC),
        };
        if no_default_route {
            self.options
                .insert(OPTION_NO_DEFAULT_ROUTE.to_owned(), "true".to_owned());
        } else {
            self.options.remove(OPTION_NO_DEFAULT_ROUTE);
        }
    }

    /// The address the host side of the network holds (macvlan `host_address`): never handed
    /// to a container.
    pub fn host_address(&self) -> Option<IpAddr> {
        self.options.get(HOST_ADDRESS_OPTION)?.parse().ok()
    }

    /// The subnet record that contains `ip`, if any.
    pub fn subnet_of(&self, ip: IpAddr) -> Option<&SubnetRecord> {
        self.subnets.iter().find(|s| s.subnet.contains(&ip))
    }
}

/// A route of a network, as netavark writes one (`route_type`: `unicast`, `blackhole`,
/// `unreachable` or `prohibit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRecord {
    pub destination: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    pub route_type: String,
}

/// Network drivers netctl knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkDriver {
    Bridge,
    Macvlan,
}

impl fmt::Display for NetworkDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetworkDriver::Bridge => "bridge",
            NetworkDriver::Macvlan => "macvlan",
        })
    }
}

/// netavark's `isolate` option.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Isolate {
    #[default]
    #[serde(rename = "false")]
    Off,
    #[serde(rename = "true")]
    On,
    #[serde(rename = "strict")]
    Strict,
}

/// One subnet of a network, as chosen and recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetRecord {
    /// Always the network address form (`10.89.0.0/24`, never `10.89.0.5/24`).
    pub subnet: IpNet,
    /// `None` for an internal network without DNS, as podman does.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    #[serde(default)]
    pub lease_range: Option<LeaseRange>,
}

/// Bounds, inclusive, for automatically assigned addresses. A missing bound means the subnet's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRange {
    #[serde(default)]
    pub start: Option<IpAddr>,
    #[serde(default)]
    pub end: Option<IpAddr>,
}

/// A recorded container: a network namespace and what netctl keeps about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub name: String,
    /// Declared (podman's: 64 lowercase hex characters; any safe file-name component) or
    /// generated (64 hex), then kept.
    pub id: String,
    pub netns: NetnsRecord,
    pub mode: NetworkMode,
    pub hostname: String,
    /// The container's declared spec as the binary understood it. Opaque here: the store keeps it
    /// so that `connect`/`disconnect` can edit it and the planner can compare against it.
    #[serde(default)]
    pub spec: Opaque,
    /// Published ports, opaque here for the same reason.
    #[serde(default)]
    pub ports: Opaque,
    pub created: SystemTime,
    /// The project that owns it (see [`NetworkRecord::project`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`) when netctl last made or
    /// repaired the container's network: a record of an earlier boot describes kernel objects
    /// that are gone, whatever now sits at its namespace path. `None` in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

/// JSON the store keeps without knowing its shape (a type of the crates above it), as the text it
/// was given. Reading a record copies the text rather than building a JSON tree, and the user
/// decodes it straight into its own type, once: for a thousand containers that is a tenth of
/// what a `serde_json::Value` round trip costs.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Opaque(Box<serde_json::value::RawValue>);

impl Opaque {
    /// JSON `null`: nothing kept.
    pub fn null() -> Self {
        Self(serde_json::value::RawValue::from_string("null".to_owned()).expect("null is JSON"))
    }

    /// `value` serialised.
    pub fn of<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Self> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// The text decoded as a `T`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.0.get())
    }

    pub fn is_null(&self) -> bool {
        self.0.get() == "null"
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

impl Default for Opaque {
    fn default() -> Self {
        Self::null()
    }
}

/// Equal when the texts are: netctl always writes them with `serde_json`, so one value has one
/// text.
impl PartialEq for Opaque {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a container's network namespace lives and who owns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsRecord {
    pub path: PathBuf,
    /// True when netctl created the namespace (and so removes it); false for a namespace the user
    /// pointed at, which netctl never deletes.
    pub managed: bool,
}

/// How a container gets its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Bridge,
    Pasta,
    Slirp4netns,
    None,
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetworkMode::Bridge => "bridge",
            NetworkMode::Pasta => "pasta",
            NetworkMode::Slirp4netns => "slirp4netns",
            NetworkMode::None => "none",
        })
    }
}

/// A container's interface on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    pub container: String,
    pub network: String,
    /// Interface name inside the container (`eth0`, ...).
    pub interface: String,
    /// Generated once (or declared) and kept, so reloads keep the MAC.
    pub mac: MacAddr,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// One address per subnet of the network, with the subnet's prefix length
    /// (`10.89.0.5/24`), in the network's subnet order.
    #[serde(default)]
    pub addresses: Vec<IpNet>,
    /// Metric of the attachment's default routes, chosen once (by the order of the
    /// container's networks) and kept. `None` in records written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// The host end's name when declared (netavark's `host_interface_name`); `None`: derived
    /// from the container and network ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_interface: Option<String>,
}

/// One IPAM lease: an address of a network's subnet held by a container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Lease {
    pub network: String,
    pub subnet: IpNet,
    pub address: IpAddr,
    pub container: String,
}

/// A helper process netctl started for a container (pasta or slirp4netns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperRecord {
    pub container: String,
    pub kind: HelperKind,
    pub pid: u32,
    /// The process start time (field 22 of `/proc/PID/stat`, clock ticks since boot), so a reused
    /// pid is never mistaken for the helper.
    pub start_time: u64,
    pub argv: Vec<String>,
}

/// An aardvark-dns netctl started for one config directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsServerRecord {
    /// The config directory (`<run_dir>/aardvark-dns`, or netavark's `<config>/aardvark-dns`).
    pub dir: PathBuf,
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat`, so a reused pid is never taken for the server.
    pub start_time: u64,
    /// The port it listens on.
    pub port: u16,
    pub argv: Vec<String>,
    /// It serves podman's networks (netavark's directory) rather than netctl's own: the
    /// firewall sends each network's DNS to the port of its own scope's server.
    #[serde(default)]
    pub podman: bool,
    /// Every gateway it serves was seen bound since it started (listeners are added only by
    /// a sync that checks them again).
    #[serde(default)]
    pub bound: bool,
}

/// Which helper program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HelperKind {
    Pasta,
    Slirp4netns,
}

impl fmt::Display for HelperKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HelperKind::Pasta => "pasta",
            HelperKind::Slirp4netns => "slirp4netns",
        })
    }
}

/// One applied desired-state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    /// 1 for the first apply, counting up; never reused.
    pub number: u64,
    /// The file the content came from, when there was one.
    #[serde(default)]
    pub source: Option<PathBuf>,
    /// The file's content, byte for byte as applied.
    pub content: String,
    /// Lowercase hex SHA-256 of `content`, comparable with `sha256sum`.
    pub sha256: String,
    pub applied_at: SystemTime,
}

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A random locally administered unicast address: bit 1 of the first octet set (local), bit 0
    /// clear (unicast), as the kernel's `eth_random_addr` does.
    pub fn random(rng: &mut impl Rng) -> MacAddr {
        let mut bytes: [u8; 6] = rng.random();
        bytes[0] = (bytes[0] & 0xfe) | 0x02;
        MacAddr(bytes)
    }

    pub fn octets(self) -> [u8; 6] {
        self.0
    }

    pub fn is_locally_administered(self) -> bool {
        self.0[0] & 0x02 != 0
    }

    pub fn is_unicast(self) -> bool {
        self.0[0] & 0x01 == 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, octet) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{octet:02x}")?;
        }
        Ok(())
    }
}

/// The text given was not a MAC address in `aa:bb:cc:dd:ee:ff` form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {text:?}: expected six hex octets separated by ':'")]
pub struct ParseMacError {
    pub text: String,
}

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseMacError { text: s.to_owned() };
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A new random 64-hex-character ID, as podman's network and container IDs.
pub fn generate_id(rng: &mut impl Rng) -> String {
    use fmt::Write as _;
    let bytes: [u8; 32] = rng.random();
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Whether `id` is a full ID: exactly 64 lowercase hex characters.
pub fn is_valid_id(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_through_text_and_json() {
        let mac: MacAddr = "02:42:ac:11:00:02".parse().unwrap();
        assert_eq!(mac.0, [0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);
        assert_eq!(mac.to_string(), "02:42:ac:11:00:02");
        let json = serde_json::to_string(&mac).unwrap();
        assert_eq!(json, "\"02:42:ac:11:00:02\"");
        assert_eq!(serde_json::from_str::<MacAddr>(&json).unwrap(), mac);
    }

    #[test]
    fn mac_parse_rejects_malformed_text() {
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "02:42:ac:11:00:zz",
            "002:42:ac:11:00:02",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn random_macs_are_local_unicast() {
        let mut rng = rand::rng();
        for _ in 0..1000 {
            let mac = MacAddr::random(&mut rng);
            assert!(mac.is_locally_administered(), "{mac}");
            assert!(mac.is_unicast(), "{mac}");
        }
    }

    #[test]
    fn generated_ids_are_valid() {
        let mut rng = rand::rng();
        let id = generate_id(&mut rng);
        assert!(is_valid_id(&id), "{id}");
        assert_ne!(id, generate_id(&mut rng));
        assert!(!is_valid_id(&id[..63]));
        assert!(!is_valid_id(&id.to_uppercase()));
    }

    /// A record written before the bridge mode existed (no `options.mode`) is netctl's own
    /// bridge; `mode = "unmanaged"` borrows one; a macvlan's `mode` is its kernel mode.
    #[test]
    fn bridge_mode_is_read_from_options_and_old_records_are_managed() {
        let record = |driver: &str, options: &str| -> NetworkRecord {
            serde_json::from_str(&format!(
                r#"{{"name": "n", "id": "{}", "driver": "{driver}", "network_interface": "br0",
                    "options": {options}, "created": {{"secs_since_epoch": 0, "nanos_since_epoch": 0}}}}"#,
                "a".repeat(64)
            ))
            .unwrap()
        };
        assert!(!record("bridge", "{}").unmanaged());
        assert!(!record("bridge", r#"{"mode": "managed"}"#).unmanaged());
        assert!(record("bridge", r#"{"mode": "unmanaged"}"#).unmanaged());
        assert!(!record("macvlan", r#"{"mode": "unmanaged"}"#).unmanaged());
    }

    #[test]
    fn isolate_serialises_as_netavark_strings() {
        assert_eq!(serde_json::to_string(&Isolate::Off).unwrap(), "\"false\"");
        assert_eq!(serde_json::to_string(&Isolate::On).unwrap(), "\"true\"");
        assert_eq!(
            serde_json::to_string(&Isolate::Strict).unwrap(),
            "\"strict\""
        );
    }
}

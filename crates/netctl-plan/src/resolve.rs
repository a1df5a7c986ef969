//! Resolution: the validated file plus what was recorded gives the complete target — defaults
//! filled in, recorded choices (ids, interface names, bridge names) kept, the default network
//! added where a bridge container declares no network.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use netctl_state::{ContainerRecord, Isolate as RecIsolate, NetworkMode};
use netctl_types::{
    BridgeMode, CHOOSE_HOST_PORT, ContainerMode, ContainerSpec, DesiredState, IndexMap, IpamDriver,
    Isolate, MacAddr, MacvlanMode, NetnsSpec, NetworkDriver, PortMapping, SubnetSpec,
    normalize_ports,
};

use crate::{Defaults, Recorded};

/// Everything the file asks for, completed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetState {
    pub networks: BTreeMap<String, TargetNetwork>,
    pub containers: BTreeMap<String, TargetContainer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetNetwork {
    pub name: String,
    /// Declared id (podman passes its own); `None`: generated at apply, or kept as recorded.
    pub id: Option<String>,
    pub driver: NetworkDriver,
    /// Declared bridge name (macvlan: parent), or the recorded one; `None`: chosen at apply
    /// (macvlan: the interface of the default route).
    pub bridge: Option<String>,
    /// bridge: netctl's own bridge, or an existing one it only attaches veths to (podman's
    /// `mode=unmanaged`).
    pub bridge_mode: BridgeMode,
    /// macvlan: the kernel mode.
    pub mode: MacvlanMode,
    /// macvlan: the address of the host-side macvlan, if any.
    pub host_address: Option<IpAddr>,
    /// Declared subnets; `None`: chosen at apply (or kept as recorded).
    pub subnets: Option<Vec<SubnetSpec>>,
    pub ipv6: bool,
    pub internal: bool,
    pub mtu: Option<u32>,
    pub isolate: RecIsolate,
    /// Declared metric of the default routes through it.
    pub metric: Option<u32>,
    /// No default route through it.
    pub no_default_route: bool,
    /// Other routes its containers get.
    pub routes: Vec<netctl_types::RouteSpec>,
    /// IPAM driver `none`: no subnets, no addresses.
    pub ipam_none: bool,
    /// Fixed outbound source addresses (SNAT instead of masquerade).
    pub outbound_addr4: Option<std::net::Ipv4Addr>,
    pub outbound_addr6: Option<std::net::Ipv6Addr>,
    pub labels: BTreeMap<String, String>,
    /// The implicit default network (`podman`), not declared in the file.
    pub is_default: bool,
    /// `external = true`: used as it exists, never created, changed or deleted by this file.
    pub external: bool,
    /// The project that owns it (`None` for the default network and imperative calls).
    pub project: Option<String>,
    /// aardvark-dns serves it: as declared, else on when a binary was found (never for the
    /// default network).
    pub dns: bool,
    pub dns_servers: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetContainer {
    pub name: String,
    /// Declared, else recorded; a new container without one gets a generated id at apply, shown
    /// as the empty string until then.
    pub id: String,
    pub netns: PathBuf,
    pub managed: bool,
    pub mode: NetworkMode,
    pub hostname: String,
    /// The declared spec, kept verbatim in the store for later comparison and `connect`.
    pub spec: ContainerSpec,
    /// Normalised published ports.
    pub ports: Vec<PortMapping>,
    pub attachments: BTreeMap<String, TargetAttachment>,
    /// The project that owns it (`None` for imperative calls).
    pub project: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetAttachment {
    pub ip: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Addr>,
    pub mac: Option<MacAddr>,
    pub interface: String,
    /// Declared aliases plus the container's short id (podman always adds it), sorted.
    pub aliases: Vec<String>,
    /// Metric of the attachment's default routes (see [`assign_metrics`]).
    pub metric: u32,
    /// Declared name of the host end of the veth.
    pub host_interface: Option<String>,
}

impl TargetAttachment {
    /// Static addresses asked for.
    pub fn static_ips(&self) -> Vec<IpAddr> {
        self.ip
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.ip6.map(IpAddr::V6))
            .collect()
    }
}

/// The records a project's file is planned against: its own networks and containers, and
/// whatever the file names (so a name another project owns is seen, and reported as a
/// conflict, rather than created twice), and the implicit default network when the file's
/// containers use it. Everything else belongs to someone else: it is neither an orphan nor
/// pruned nor repaired by this project's apply. Without a project (imperative calls), all.
pub fn project_view(recorded: &Recorded, desired: &DesiredState, defaults: &Defaults) -> Recorded {
    let Some(project) = desired.project.as_deref() else {
        return recorded.clone();
    };
    let uses_default = desired.containers.values().any(|c| {
        (c.mode == ContainerMode::Bridge && c.networks.is_empty())
            || c.networks.contains_key(&defaults.default_network)
    });
    let mut view = Recorded {
        // The servers are the host's, whichever project's networks they serve.
        dns_servers: recorded.dns_servers.clone(),
        ..Recorded::default()
    };
    for (name, net) in &recorded.networks {
        if net.project.as_deref() == Some(project)
            || desired.networks.contains_key(name)
            || (uses_default && *name == defaults.default_network)
        {
            view.networks.insert(name.clone(), net.clone());
        }
    }
    for (name, ctr) in &recorded.containers {
        if ctr.project.as_deref() == Some(project) || desired.containers.contains_key(name) {
            view.containers.insert(name.clone(), ctr.clone());
            for att in recorded.attachments_of(name) {
                view.attachments
                    .insert((name.clone(), att.network.clone()), att.clone());
            }
            if let Some(helper) = recorded.helpers.get(name) {
                view.helpers.insert(name.clone(), helper.clone());
            }
        }
    }
    view
}

/// Resolves the file against what was recorded.
pub fn resolve(desired: &DesiredState, recorded: &Recorded, defaults: &Defaults) -> TargetState {
    let mut networks: BTreeMap<String, TargetNetwork> = desired
        .networks
        .iter()
        .map(|(name, spec)| {
            let rec = recorded.networks.get(name);
            let net = TargetNetwork {
                name: name.clone(),
                id: spec.id.clone(),
                driver: spec.driver,
                bridge: match spec.driver {
                    NetworkDriver::Bridge => spec.bridge.clone(),
                    NetworkDriver::Macvlan => spec.parent.clone(),
                }
                .or_else(|| rec.map(|r| r.network_interface.clone())),
                bridge_mode: spec.bridge_mode,
                mode: spec.mode.unwrap_or_default(),
                host_address: spec.host_address,
                subnets: (!spec.subnets.is_empty() || spec.ipam_driver == IpamDriver::None)
                    .then(|| spec.subnets.clone()),
                ipv6: spec.ipv6 || spec.subnets.iter().any(|s| s.subnet.addr().is_ipv6()),
                internal: spec.internal,
                mtu: spec.mtu,
                isolate: match spec.isolate {
                    Isolate::Disabled => RecIsolate::Off,
                    Isolate::Enabled => RecIsolate::On,
                    Isolate::Strict => RecIsolate::Strict,
                },
                metric: spec.metric,
                no_default_route: spec.no_default_route,
                routes: spec.routes.clone(),
                ipam_none: spec.ipam_driver == IpamDriver::None,
                outbound_addr4: spec.outbound_addr4,
                outbound_addr6: spec.outbound_addr6,
                labels: spec.labels.clone(),
                is_default: false,
                external: spec.external,
                project: desired.project.clone(),
                // aardvark-dns serves bridge networks only.
                dns: spec.driver == NetworkDriver::Bridge
                    && spec.dns.unwrap_or(defaults.dns_available),
                dns_servers: spec.dns_servers.clone(),
            };
            (name.clone(), net)
        })
        .collect();

    let mut containers = BTreeMap::new();
    let declared_metrics: BTreeMap<String, u32> = networks
        .iter()
        .filter_map(|(name, net)| Some((name.clone(), net.metric?)))
        .collect();
    // Their default routes win over bridges' (netavark 2.0's macvlan metric).
    let macvlans: BTreeSet<&str> = desired
        .networks
        .iter()
        .filter(|(_, n)| n.driver == NetworkDriver::Macvlan)
        .map(|(name, _)| name.as_str())
        .chain(
            recorded
                .networks
                .values()
                .filter(|n| n.driver == netctl_state::NetworkDriver::Macvlan)
                .map(|n| n.name.as_str()),
        )
        .collect();
    for (name, spec) in &desired.containers {
        let mut ctr =
            resolve_container(name, spec, recorded, defaults, &declared_metrics, &macvlans);
        ctr.project.clone_from(&desired.project);
        if ctr.attachments.contains_key(&defaults.default_network)
            && !networks.contains_key(&defaults.default_network)
        {
            networks.insert(defaults.default_network.clone(), default_network(defaults));
        }
        containers.insert(name.clone(), ctr);
    }
    TargetState {
        networks,
        containers,
    }
}

fn default_network(defaults: &Defaults) -> TargetNetwork {
    TargetNetwork {
        name: defaults.default_network.clone(),
        id: None,
        driver: NetworkDriver::Bridge,
        bridge: Some(defaults.default_bridge.clone()),
        bridge_mode: BridgeMode::Managed,
        mode: MacvlanMode::Bridge,
        host_address: None,
        subnets: Some(vec![SubnetSpec {
            subnet: defaults.default_subnet,
            gateway: None,
            lease_range: None,
        }]),
        ipv6: false,
        internal: false,
        mtu: None,
        isolate: RecIsolate::Off,
        metric: None,
        no_default_route: false,
        routes: Vec::new(),
        ipam_none: false,
        outbound_addr4: None,
        outbound_addr6: None,
        labels: BTreeMap::new(),
        is_default: true,
        external: false,
        project: None,
        dns: false,
        dns_servers: Vec::new(),
    }
}

fn resolve_container(
    name: &str,
    spec: &ContainerSpec,
    recorded: &Recorded,
    defaults: &Defaults,
    declared_metrics: &BTreeMap<String, u32>,
    macvlans: &BTreeSet<&str>,
) -> TargetContainer {
    let rec = recorded.containers.get(name);
    let id = spec
        .id
        .clone()
        .or_else(|| rec.map(|r| r.id.clone()))
        .unwrap_or_default();
    let (netns, managed) = match &spec.netns {
        NetnsSpec::Managed => (defaults.netns_dir.join(name), true),
        NetnsSpec::Path(path) => (path.clone(), false),
    };
    let mode = match spec.mode {
        ContainerMode::Bridge => NetworkMode::Bridge,
        ContainerMode::Pasta => NetworkMode::Pasta,
        ContainerMode::Slirp4netns => NetworkMode::Slirp4netns,
        ContainerMode::None => NetworkMode::None,
    };
    let mut declared = spec.networks.clone();
    if mode == NetworkMode::Bridge && declared.is_empty() {
        declared.insert(
            defaults.default_network.clone(),
            netctl_types::AttachmentSpec::default(),
        );
    }
    if mode != NetworkMode::Bridge {
        declared.clear();
    }
    let interfaces = assign_interfaces(name, &declared, recorded);
    let metrics = assign_metrics(
        name,
        &declared,
        &interfaces,
        recorded,
        declared_metrics,
        macvlans,
    );
    let short_id: String = id.chars().take(12).collect();
    let attachments = declared
        .iter()
        .map(|(net, att)| {
            let mut aliases: BTreeSet<String> = att.aliases.iter().cloned().collect();
            if !short_id.is_empty() {
                aliases.insert(short_id.clone());
            }
            let target = TargetAttachment {
                ip: att.ip,
                ip6: att.ip6,
                mac: att.mac,
                interface: interfaces[net].clone(),
                aliases: aliases.into_iter().collect(),
                metric: metrics[net],
                host_interface: att.host_interface.clone(),
            };
            (net.clone(), target)
        })
        .collect();
    let mut ports = normalize_ports(
        spec.ports
            .iter()
            .flat_map(|p| p.to_mappings().unwrap_or_default())
            .collect(),
    );
    // A host port left to netctl keeps the one chosen when it was first applied.
    if let Some(rec) = rec {
        let chosen = recorded_ports(rec);
        for port in ports.iter_mut().filter(|p| p.host_port == CHOOSE_HOST_PORT) {
            if let Some(was) = chosen.iter().find(|c| {
                c.host_ip == port.host_ip
                    && c.protocol == port.protocol
                    && c.container_port == port.container_port
                    && c.range == port.range
            }) {
                port.host_port = was.host_port;
            }
        }
    }
    TargetContainer {
        name: name.to_owned(),
        id,
        netns,
        managed,
        mode,
        hostname: spec.hostname_or(name).to_owned(),
        spec: spec.clone(),
        ports,
        attachments,
        project: None,
    }
}

/// Interface names: declared ones first, then those recorded for the attachment (if still
/// free), then the lowest free `ethN`, walking networks in the order the container lists them
/// (podman's order; podman itself walks a Go map here), so the first network is `eth0`.
fn assign_interfaces(
    container: &str,
    declared: &IndexMap<String, netctl_types::AttachmentSpec>,
    recorded: &Recorded,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut used = BTreeSet::new();
    for (net, att) in declared {
        if let Some(ifname) = &att.interface {
            used.insert(ifname.clone());
            out.insert(net.clone(), ifname.clone());
        }
    }
    for net in declared.keys() {
        if out.contains_key(net) {
            continue;
        }
        if let Some(rec) = recorded
            .attachments
            .get(&(container.to_owned(), net.clone()))
            && used.insert(rec.interface.clone())
        {
            out.insert(net.clone(), rec.interface.clone());
        }
    }
    for net in declared.keys() {
        if out.contains_key(net) {
            continue;
        }
        // At most `declared.len()` names are taken, so one of the first len+1 is free.
        let ifname = (0..=declared.len())
            .map(|n| format!("eth{n}"))
            .find(|n| !used.contains(n))
            .expect("some ethN is free");
        used.insert(ifname.clone());
        out.insert(net.clone(), ifname);
    }
    out
}

/// Metric of the default routes of a container's first network; each further network gets
/// the next free one, so two networks' default routes never collide (netavark's default is
/// 100).
pub const DEFAULT_ROUTE_METRIC: u32 = 100;

/// Metric of a macvlan network's default routes: below a bridge's, so the LAN is the way out
/// (netavark 2.0's default).
pub const MACVLAN_ROUTE_METRIC: u32 = 99;

/// The metric an attachment recorded before metrics were recorded used: derived from an
/// `ethN` name (any other name counted as `eth0`).
pub fn legacy_metric(interface: &str) -> u32 {
    let index: u32 = interface
        .strip_prefix("eth")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    DEFAULT_ROUTE_METRIC.saturating_add(index)
}

/// Default-route metrics: the recorded one for an attachment that has one (stable across
/// re-applies, whatever the file's order becomes), else the lowest free metric from
/// [`DEFAULT_ROUTE_METRIC`] up, walking networks in the order the container lists them, so the
/// first network's routes win. (Deriving it from an `ethN` name gave `back0` and `eth0` the
/// same metric, and the second default route failed with "File exists".) A network's declared
/// `metric` overrides both.
fn assign_metrics(
    container: &str,
    declared: &IndexMap<String, netctl_types::AttachmentSpec>,
    interfaces: &BTreeMap<String, String>,
    recorded: &Recorded,
    declared_metrics: &BTreeMap<String, u32>,
    macvlans: &BTreeSet<&str>,
) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let mut used = BTreeSet::new();
    for net in declared.keys() {
        if let Some(&metric) = declared_metrics.get(net) {
            used.insert(metric);
            out.insert(net.clone(), metric);
        }
    }
    for net in declared.keys() {
        if out.contains_key(net) {
            continue;
        }
        if let Some(rec) = recorded
            .attachments
            .get(&(container.to_owned(), net.clone()))
            && rec.interface == interfaces[net]
        {
            let metric = rec.metric.unwrap_or_else(|| legacy_metric(&rec.interface));
            if used.insert(metric) {
                out.insert(net.clone(), metric);
            }
        }
    }
    for net in declared.keys() {
        if out.contains_key(net) {
            continue;
        }
        let first = if macvlans.contains(net.as_str()) {
            MACVLAN_ROUTE_METRIC
        } else {
            DEFAULT_ROUTE_METRIC
        };
        // At most `used.len()` metrics are taken, so one of the next len+1 is free.
        let metric = (first..=first + used.len() as u32)
            .find(|m| !used.contains(m))
            .expect("some metric is free");
        used.insert(metric);
        out.insert(net.clone(), metric);
    }
    out
}

/// The parts of a container's recorded spec that are not record fields of their own: what the
/// planner compares field by field and the DNS configuration serves. Decoding only these skips
/// the ports, which a recorded spec carries in the user's own forms (tables, podman strings)
/// and which cost most of a full decode; they are compared as the record's normalised ports.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct RecordedSettings {
    pub dns_servers: Vec<IpAddr>,
    pub dns_search: Vec<String>,
    pub extra_hosts: Vec<String>,
    pub pasta: Vec<String>,
    pub slirp4netns: Option<netctl_types::SlirpOptions>,
}

/// The settings a container was recorded with (none if the record has none).
pub fn recorded_settings(rec: &ContainerRecord) -> RecordedSettings {
    rec.spec.decode().unwrap_or_default()
}

/// The normalised ports a container was recorded with.
pub(crate) fn recorded_ports(rec: &ContainerRecord) -> Vec<PortMapping> {
    rec.ports.decode().unwrap_or_default()
}

/// Name of the host side of a container's veth on a network: stable, unique per (container,
/// network), at most 15 bytes, so netctl can find it again without asking the kernel for peers.
/// The host end of an attachment's veth: the declared name, else [`veth_name`].
pub fn host_veth(
    ctr: &netctl_state::ContainerRecord,
    net: &netctl_state::NetworkRecord,
    att: &netctl_state::AttachmentRecord,
) -> String {
    att.host_interface
        .clone()
        .unwrap_or_else(|| veth_name(&ctr.id, &net.id))
}

pub fn veth_name(container_id: &str, network_id: &str) -> String {
    // FNV-1a, 64 bit: no dependency, stable across versions and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in container_id.bytes().chain([0]).chain(network_id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("nc{:013x}", hash & 0x000f_ffff_ffff_ffff)
}

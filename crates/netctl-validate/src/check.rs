//! Cross-field checks on the decoded state: everything that relates two or more values.
//!
//! Subnets against their gateways, lease ranges and each other; static addresses against the
//! subnets of their network and against each other; MACs, ids, namespaces, interface and bridge
//! names for uniqueness; container modes against the fields they allow; published ports against
//! each other across all containers. Where two things clash, the one later in the file gets the
//! error and the message names the earlier one, so each clash is reported once.
//!
//! Subnets are normalised here (host bits cleared, with a note), and each container's ports are
//! turned into normalised podman [`PortMapping`]s.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::IpAddr;

use ipnet::IpNet;
use netctl_types::{
    ContainerMode, ContainerSpec, DesiredState, Isolate, MacvlanMode, NetnsSpec, NetworkDriver,
    NetworkSpec, PortHandler, PortMapping, Protocol, SubnetSpec, host_ips_overlap, normalize_ports,
};

use crate::diagnostic::{Severity, Sink};
use crate::path::{FieldPath, Spans, Target};
use crate::suggest::hint;

/// Runs every cross-field check; returns each container's normalised ports.
pub(crate) fn check(
    state: &mut DesiredState,
    spans: &Spans,
    sink: &mut Sink,
) -> BTreeMap<String, Vec<PortMapping>> {
    let mut ctx = Ctx { spans, sink };
    ctx.networks(state);
    ctx.macvlan_attachments(state);
    let ports = ctx.containers(state);
    ctx.capacity(state);
    ports
}

/// An address as a number, for counting the addresses between two of one family.
fn as_number(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(ip) => u128::from(u32::from(ip)),
        IpAddr::V6(ip) => u128::from(ip),
    }
}

/// How many containers a subnet can hand addresses to: its lease range (the hosts of the
/// subnet by default: no network or broadcast address) without the gateway.
fn dynamic_room(spec: &SubnetSpec) -> (u128, u128, u128) {
    let subnet = spec.subnet;
    let network = as_number(subnet.network());
    let last = as_number(subnet.broadcast());
    let last_host = match subnet {
        IpNet::V4(_) => last.saturating_sub(1),
        IpNet::V6(_) => last,
    };
    let range = spec.lease_range.as_ref();
    let start = range.and_then(|r| r.start).map_or(network + 1, as_number);
    let end = range.and_then(|r| r.end).map_or(last_host, as_number);
    let size = (end + 1).saturating_sub(start);
    let gateway = as_number(spec.effective_gateway());
    let in_range = u128::from((start..=end).contains(&gateway));
    (start, end, size.saturating_sub(in_range))
}

struct Ctx<'a> {
    spans: &'a Spans,
    sink: &'a mut Sink,
}

/// Something that must be unique, and where it was claimed.
struct Claim<K> {
    key: K,
    owner: String,
    path: FieldPath,
}

/// A published host port range, and where it was published.
struct PortClaim {
    container: String,
    path: FieldPath,
    mapping: PortMapping,
}

/// How an address sits in a subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    Usable,
    WrongFamily,
    Outside,
    NetworkAddress,
    Broadcast,
}

fn placement(subnet: IpNet, ip: IpAddr) -> Placement {
    if subnet.network().is_ipv4() != ip.is_ipv4() {
        Placement::WrongFamily
    } else if !subnet.contains(&ip) {
        Placement::Outside
    } else if ip == subnet.network() {
        Placement::NetworkAddress
    } else if matches!(subnet, IpNet::V4(_)) && ip == subnet.broadcast() {
        Placement::Broadcast
    } else {
        Placement::Usable
    }
}

/// "is not in subnet 10.89.0.0/24" and the like; empty for a usable address.
fn describe(placement: Placement, subnet: IpNet, ip: IpAddr) -> String {
    let family = |v4: bool| if v4 { "IPv4" } else { "IPv6" };
    match placement {
        Placement::Usable => String::new(),
        Placement::WrongFamily => format!(
            "is {} but subnet {subnet} is {}",
            family(ip.is_ipv4()),
            family(subnet.network().is_ipv4())
        ),
        Placement::Outside => format!("is not in subnet {subnet}"),
        Placement::NetworkAddress => format!("is the network address of subnet {subnet}"),
        Placement::Broadcast => format!("is the broadcast address of subnet {subnet}"),
    }
}

fn family_name(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

impl Ctx<'_> {
    fn emit(&mut self, severity: Severity, path: &FieldPath, target: Target, message: String) {
        let (field, span) = self.spans.locate(path, target);
        self.sink.push(severity, span, field, message);
    }

    fn error(&mut self, path: &FieldPath, target: Target, message: String) {
        self.emit(Severity::Error, path, target, message);
    }

    /// The field name as shown to the user, for naming the other side of a clash.
    fn field(&self, path: &FieldPath) -> String {
        self.spans.locate(path, Target::Value).0
    }

    /// Reports every claim whose key an earlier claim (in file order) already has.
    fn first_wins<K: Eq + Hash>(
        &mut self,
        mut claims: Vec<Claim<K>>,
        message: impl Fn(&K, &str, &str) -> String,
    ) {
        claims.sort_by_cached_key(|c| self.spans.position(&c.path));
        let mut seen: HashMap<&K, &Claim<K>> = HashMap::new();
        for claim in &claims {
            if let Some(first) = seen.get(&claim.key) {
                let text = message(&claim.key, &first.owner, &self.field(&first.path));
                self.error(&claim.path, Target::Value, text);
            } else {
                seen.insert(&claim.key, claim);
            }
        }
    }

    // ---- networks -------------------------------------------------------------------------

    fn networks(&mut self, state: &mut DesiredState) {
        for (name, network) in &mut state.networks {
            self.dns_loop(name, network);
            let base = FieldPath::keys(&["networks", name]);
            for (i, subnet) in network.subnets.iter_mut().enumerate() {
                self.subnet(subnet, &base.key("subnets").index(i));
            }
            let ipv6_path = base.key("ipv6");
            if !network.ipv6
                && self.spans.is_written(&ipv6_path)
                && let Some(v6) = network
                    .subnets
                    .iter()
                    .find(|s| matches!(s.subnet, IpNet::V6(_)))
            {
                let message = format!(
                    "ipv6 = false has no effect: subnet {} is IPv6, so the network has IPv6",
                    v6.subnet
                );
                self.emit(Severity::Warning, &ipv6_path, Target::Value, message);
            }
        }
        for (name, network) in &state.networks {
            self.driver_keys(name, network);
        }
        self.bridge_names(&state.networks);
        self.subnet_overlaps(&state.networks);
    }

    /// Keys that belong to one driver only, and what a macvlan network must have.
    fn driver_keys(&mut self, name: &str, network: &NetworkSpec) {
        let base = FieldPath::keys(&["networks", name]);
        if network.external {
            return;
        }
        if network.driver != NetworkDriver::Macvlan {
            let set = [
                ("parent", network.parent.is_some()),
                ("mode", network.mode.is_some()),
                ("host_address", network.host_address.is_some()),
            ];
            for (key, is_set) in set {
                if is_set {
                    self.error(
                        &base.key(key),
                        Target::Key,
                        format!(
                            "`{key}` is a macvlan setting; set driver = \"macvlan\" or remove it"
                        ),
                    );
                }
            }
            return;
        }
        if network.subnets.is_empty() {
            self.error(
                &base,
                Target::Key,
                format!(
                    "macvlan network `{name}` needs `subnets`: its containers sit on the parent's LAN, whose subnet netctl cannot choose"
                ),
            );
        }
        let refused: [(&str, bool, &str); 4] = [
            (
                "bridge",
                network.bridge.is_some(),
                "a macvlan network has no bridge; name its host interface with `parent`",
            ),
            (
                "isolate",
                network.isolate != Isolate::Disabled,
                "a macvlan network has no firewall rules, so `isolate` cannot be honoured",
            ),
            (
                "dns",
                network.dns == Some(true),
                "a macvlan network has no DNS server: aardvark-dns serves bridge networks only",
            ),
            (
                "dns_servers",
                !network.dns_servers.is_empty(),
                "a macvlan network has no DNS server to forward for; set `dns_servers` on its containers",
            ),
        ];
        for (key, set, why) in refused {
            if set {
                self.error(
                    &base.key(key),
                    Target::Key,
                    format!("`{key}` on macvlan network `{name}`: {why}"),
                );
            }
        }
        if let Some(host) = network.host_address
            && !network.subnets.is_empty()
        {
            let problem = match network.subnets.iter().find(|s| s.subnet.contains(&host)) {
                None => Some(format!(
                    "host_address {host} is not in any subnet of network `{name}`"
                )),
                Some(spec) if placement(spec.subnet, host) != Placement::Usable => Some(format!(
                    "host_address {host} {}",
                    describe(placement(spec.subnet, host), spec.subnet, host)
                )),
                Some(spec) if host == spec.effective_gateway() => Some(format!(
                    "host_address {host} is the gateway of subnet {}; the host needs an address of its own on the LAN",
                    spec.subnet
                )),
                Some(_) => None,
            };
            if let Some(problem) = problem {
                self.error(&base.key("host_address"), Target::Value, problem);
            }
        }
    }

    /// What a container cannot have on a macvlan network: published ports (there is no
    /// firewall to forward them), its address taken by the host side, a second container on a
    /// passthru parent.
    fn macvlan_attachments(&mut self, state: &DesiredState) {
        let mut passthru: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, container) in &state.containers {
            let base = FieldPath::keys(&["containers", name]);
            for (network_name, attachment) in &container.networks {
                let Some(network) = state.networks.get(network_name) else {
                    continue;
                };
                if network.driver != NetworkDriver::Macvlan || network.external {
                    continue;
                }
                if !container.ports.is_empty() {
                    self.error(
                        &base.key("ports"),
                        Target::Key,
                        format!(
                            "container `{name}` is on macvlan network `{network_name}`, which has no firewall to publish ports through; reach it at its own address instead"
                        ),
                    );
                }
                let at = base.key("networks").key(network_name);
                if let Some(host) = network.host_address {
                    let statics = [
                        attachment.ip.map(|ip| (IpAddr::V4(ip), "ip")),
                        attachment.ip6.map(|ip| (IpAddr::V6(ip), "ip6")),
                    ];
                    for (ip, key) in statics.into_iter().flatten() {
                        if ip == host {
                            self.error(
                                &at.key(key),
                                Target::Value,
                                format!("address {ip} is network `{network_name}`'s host_address"),
                            );
                        }
                    }
                }
                if network.mode == Some(MacvlanMode::Passthru) {
                    passthru.entry(network_name).or_default().push(name);
                }
            }
        }
        for (network_name, containers) in passthru {
            if containers.len() > 1 {
                for name in &containers[1..] {
                    self.error(
                        &FieldPath::keys(&["containers", name, "networks", network_name]),
                        Target::Key,
                        format!(
                            "macvlan network `{network_name}` is in passthru mode, which allows one container; `{}` is on it already",
                            containers[0],
                        ),
                    );
                }
            }
        }
    }

    /// A network's own gateway as its upstream would make aardvark-dns ask itself forever.
    fn dns_loop(&mut self, name: &str, network: &NetworkSpec) {
        let base = FieldPath::keys(&["networks", name]);
        for (i, server) in network.dns_servers.iter().enumerate() {
            if network
                .subnets
                .iter()
                .any(|s| s.effective_gateway() == *server)
            {
                self.error(
                    &base.key("dns_servers").index(i),
                    Target::Value,
                    format!(
                        "DNS server {server} is this network's own gateway, where its DNS server listens: a DNS loop"
                    ),
                );
            }
        }
    }

    /// A container on a network that serves DNS is known there by its name, which must then
    /// be a DNS name.
    fn dns_name(
        &mut self,
        name: &str,
        container: &ContainerSpec,
        state: &DesiredState,
        base: &FieldPath,
    ) {
        let on_dns = container.networks.keys().any(|n| {
            state.networks.get(n).is_some_and(|net| {
                net.external || (net.dns != Some(false) && net.driver == NetworkDriver::Bridge)
            })
        });
        // A container's servers are its upstreams in aardvark-dns: a gateway it listens on
        // would be a loop.
        for (i, server) in container.dns_servers.iter().enumerate() {
            let looped = container.networks.keys().find(|n| {
                state.networks.get(*n).is_some_and(|net| {
                    net.dns != Some(false)
                        && net.driver == NetworkDriver::Bridge
                        && net.subnets.iter().any(|s| s.effective_gateway() == *server)
                })
            });
            if let Some(net) = looped {
                self.error(
                    &base.key("dns_servers").index(i),
                    Target::Value,
                    format!(
                        "DNS server {server} is the gateway of DNS network {net}, where aardvark-dns answers this container: a DNS loop"
                    ),
                );
            }
        }
        // A name that is no name at all is reported once, by the name rules.
        if on_dns
            && netctl_types::check_name(name).is_ok()
            && let Err(e) = netctl_types::check_dns_name(name)
        {
            self.error(
                base,
                Target::Key,
                format!(
                    "container `{name}` is on a DNS network, so its name must be a DNS name: {e}"
                ),
            );
        }
    }

    fn subnet(&mut self, spec: &mut SubnetSpec, at: &FieldPath) {
        let subnet_path = at.key("subnet");
        let normalised = spec.subnet.trunc();
        if normalised != spec.subnet {
            let message = format!(
                "subnet {} has host bits set; using {normalised}",
                spec.subnet
            );
            self.emit(Severity::Note, &subnet_path, Target::Value, message);
            spec.subnet = normalised;
        }
        let subnet = spec.subnet;
        let too_small = match subnet {
            IpNet::V4(net) => net.prefix_len() > 30,
            IpNet::V6(net) => net.prefix_len() > 126,
        };
        if too_small {
            self.error(
                &subnet_path,
                Target::Value,
                format!(
                    "subnet {subnet} is too small: it leaves no room for a gateway and a container (use at most /30 for IPv4, /126 for IPv6)"
                ),
            );
        }
        if let Some(gateway) = spec.gateway {
            let place = placement(subnet, gateway);
            if place != Placement::Usable {
                let text = format!("gateway {gateway} {}", describe(place, subnet, gateway));
                self.error(&at.key("gateway"), Target::Value, text);
            }
        }
        if let Some(range) = &spec.lease_range {
            let range_path = at.key("lease_range");
            let mut usable = true;
            for (key, ip) in [("start", range.start), ("end", range.end)] {
                let Some(ip) = ip else { continue };
                let place = placement(subnet, ip);
                if place != Placement::Usable {
                    usable = false;
                    let text = format!("lease_range {key} {ip} {}", describe(place, subnet, ip));
                    self.error(&range_path.key(key), Target::Value, text);
                }
            }
            if let (true, Some(start), Some(end)) = (usable, range.start, range.end)
                && start > end
            {
                self.error(
                    &range_path.key("start"),
                    Target::Value,
                    format!("lease_range start {start} is after its end {end}"),
                );
            }
        }
    }

    /// A subnet too small for the containers that join its network: each container takes
    /// one address of every subnet, a static one or one from the lease range. (Before, the
    /// apply failed half-way with "failed to find free IP in range" and rolled back.)
    fn capacity(&mut self, state: &DesiredState) {
        for (name, network) in &state.networks {
            let members: Vec<_> = state
                .containers
                .values()
                .filter_map(|c| c.networks.get(name))
                .collect();
            for (i, spec) in network.subnets.iter().enumerate() {
                let (start, end, room) = dynamic_room(spec);
                let is_static = |ip: IpAddr| {
                    spec.subnet.contains(&ip) && !(start..=end).contains(&as_number(ip))
                };
                let dynamic = members
                    .iter()
                    .filter(|a| {
                        let ip = match spec.subnet {
                            IpNet::V4(_) => a.ip.map(IpAddr::V4),
                            IpNet::V6(_) => a.ip6.map(IpAddr::V6),
                        };
                        !ip.is_some_and(is_static)
                    })
                    .count() as u128;
                if dynamic > room {
                    let path = FieldPath::keys(&["networks", name])
                        .key("subnets")
                        .index(i)
                        .key("subnet");
                    let what = if spec.lease_range.is_some() {
                        "its lease range"
                    } else {
                        "it"
                    };
                    let s = if room == 1 { "" } else { "es" };
                    let gateway = spec.effective_gateway();
                    let note = if (start..=end).contains(&as_number(gateway)) {
                        format!(" (besides the gateway {gateway})")
                    } else {
                        String::new()
                    };
                    self.error(
                        &path,
                        Target::Value,
                        format!(
                            "subnet {} is too small for network {name}: {dynamic} containers join it, but {what} has {room} address{s} to hand out{note}",
                            spec.subnet,
                        ),
                    );
                }
            }
        }
    }

    fn bridge_names(&mut self, networks: &BTreeMap<String, NetworkSpec>) {
        let claims = networks
            .iter()
            .filter_map(|(name, network)| {
                Some(Claim {
                    key: network.bridge.clone()?,
                    owner: name.clone(),
                    path: FieldPath::keys(&["networks", name, "bridge"]),
                })
            })
            .collect();
        self.first_wins(claims, |bridge, owner, field| {
            format!("bridge name `{bridge}` is already used by network `{owner}` ({field})")
        });
    }

    fn subnet_overlaps(&mut self, networks: &BTreeMap<String, NetworkSpec>) {
        let mut all: Vec<(String, FieldPath, IpNet)> = networks
            .iter()
            .flat_map(|(name, network)| {
                network.subnets.iter().enumerate().map(move |(i, s)| {
                    let path = FieldPath::keys(&["networks", name, "subnets"])
                        .index(i)
                        .key("subnet");
                    (name.clone(), path, s.subnet)
                })
            })
            .collect();
        all.sort_by_cached_key(|(_, path, _)| self.spans.position(path));
        for (j, (name, path, subnet)) in all.iter().enumerate() {
            for (other_name, other_path, other) in &all[..j] {
                let overlap =
                    subnet.contains(&other.network()) || other.contains(&subnet.network());
                if overlap {
                    let owner = if other_name == name {
                        "this network".to_owned()
                    } else {
                        format!("network `{other_name}`")
                    };
                    let message = format!(
                        "subnet {subnet} overlaps subnet {other} of {owner} ({})",
                        self.field(other_path)
                    );
                    self.error(path, Target::Value, message);
                }
            }
        }
    }

    // ---- containers -----------------------------------------------------------------------

    fn containers(&mut self, state: &DesiredState) -> BTreeMap<String, Vec<PortMapping>> {
        let mut ports = BTreeMap::new();
        let mut ids = Vec::new();
        let mut namespaces = Vec::new();
        let mut addresses = Vec::new();
        let mut macs = Vec::new();
        let mut interfaces = Vec::new();
        let mut host_interfaces = Vec::new();
        let mut published = Vec::new();

        for (name, container) in &state.containers {
            let base = FieldPath::keys(&["containers", name]);
            self.mode_rules(container, &base);
            self.dns_name(name, container, state, &base);
            if let Some(id) = &container.id {
                ids.push(Claim {
                    key: id.clone(),
                    owner: name.clone(),
                    path: base.key("id"),
                });
            }
            if let NetnsSpec::Path(path) = &container.netns {
                namespaces.push(Claim {
                    key: path.clone(),
                    owner: name.clone(),
                    path: base.key("netns"),
                });
            }
            for (network_name, attachment) in &container.networks {
                let at = base.key("networks").key(network_name);
                // An external network's subnets are its own project's: a static address on
                // it is checked when applying.
                if let Some(network) = state.networks.get(network_name) {
                    let statics = [
                        attachment.ip.map(|ip| (IpAddr::V4(ip), "ip")),
                        attachment.ip6.map(|ip| (IpAddr::V6(ip), "ip6")),
                    ];
                    for (ip, key) in statics.into_iter().flatten() {
                        if network.external
                            || self.static_address(ip, network_name, network, &at.key(key))
                        {
                            addresses.push(Claim {
                                key: ip,
                                owner: name.clone(),
                                path: at.key(key),
                            });
                        }
                    }
                } else {
                    let suggestion = hint(network_name, state.networks.keys().map(String::as_str));
                    self.error(
                        &at,
                        Target::Key,
                        format!(
                            "network `{network_name}` is not declared; add a [networks.{network_name}] table{suggestion}"
                        ),
                    );
                }
                if let Some(mac) = attachment.mac {
                    macs.push(Claim {
                        key: mac,
                        owner: name.clone(),
                        path: at.key("mac"),
                    });
                }
                if let Some(interface) = &attachment.interface {
                    interfaces.push(Claim {
                        key: (name.clone(), interface.clone()),
                        owner: network_name.clone(),
                        path: at.key("interface"),
                    });
                }
                if let Some(host) = &attachment.host_interface {
                    host_interfaces.push(Claim {
                        key: host.clone(),
                        owner: name.clone(),
                        path: at.key("host_interface"),
                    });
                }
            }
            let mappings = self.ports(state, name, container, &base, &mut published);
            ports.insert(name.clone(), normalize_ports(mappings));
        }

        self.first_wins(ids, |_, owner, field| {
            format!("container id is already used by container `{owner}` ({field})")
        });
        self.first_wins(namespaces, |path, owner, field| {
            format!(
                "netns {} is already used by container `{owner}` ({field}); each container needs a namespace of its own",
                path.display()
            )
        });
        self.first_wins(addresses, |ip, owner, field| {
            format!("address {ip} is already assigned to container `{owner}` ({field})")
        });
        self.first_wins(host_interfaces, |host, owner, field| {
            format!("host interface name `{host}` is already used by container `{owner}` ({field})")
        });
        self.first_wins(macs, |mac, owner, field| {
            format!("MAC address {mac} is already used by container `{owner}` ({field})")
        });
        self.first_wins(interfaces, |(_, interface), network, field| {
            format!(
                "interface name `{interface}` is already used for network `{network}` in this container ({field})"
            )
        });
        self.port_conflicts(published);
        ports
    }

    /// Which fields each mode allows.
    fn mode_rules(&mut self, container: &ContainerSpec, base: &FieldPath) {
        let mode = container.mode;
        match mode {
            ContainerMode::None => {
                if !container.ports.is_empty() {
                    self.error(
                        &base.key("ports"),
                        Target::Key,
                        r#"mode "none" has no network, so it cannot publish ports"#.to_owned(),
                    );
                }
                if !container.networks.is_empty() {
                    self.error(
                        &base.key("networks"),
                        Target::Key,
                        r#"mode "none" cannot join networks"#.to_owned(),
                    );
                }
            }
            ContainerMode::Pasta | ContainerMode::Slirp4netns => {
                if !container.networks.is_empty() {
                    self.error(
                        &base.key("networks"),
                        Target::Key,
                        format!(
                            r#"networks can only be joined in mode "bridge"; mode "{mode}" gives the container a user-mode network of its own"#
                        ),
                    );
                }
            }
            ContainerMode::Bridge => {}
        }
        if !container.pasta.is_empty() && mode != ContainerMode::Pasta {
            self.error(
                &base.key("pasta"),
                Target::Key,
                format!(r#"pasta options need mode = "pasta", but the mode is "{mode}""#),
            );
        }
        if let Some(slirp) = &container.slirp4netns {
            if mode != ContainerMode::Slirp4netns {
                self.error(
                    &base.key("slirp4netns"),
                    Target::Key,
                    format!(
                        r#"slirp4netns options need mode = "slirp4netns", but the mode is "{mode}""#
                    ),
                );
            }
            if slirp.outbound_addr6.is_some() && !slirp.enable_ipv6() {
                self.error(
                    &base.key("slirp4netns").key("outbound_addr6"),
                    Target::Key,
                    "outbound_addr6 needs enable_ipv6 = true".to_owned(),
                );
            }
        }
    }

    /// Checks a static address against its network; true if it is usable (so worth checking
    /// for duplicates).
    fn static_address(
        &mut self,
        ip: IpAddr,
        network_name: &str,
        network: &NetworkSpec,
        path: &FieldPath,
    ) -> bool {
        let family = family_name(ip);
        let candidates: Vec<&SubnetSpec> = network
            .subnets
            .iter()
            .filter(|s| s.subnet.network().is_ipv4() == ip.is_ipv4())
            .collect();
        let problem = if candidates.is_empty() {
            if network.subnets.is_empty() {
                format!(
                    "static address {ip} needs network `{network_name}` to declare an {family} subnet (a subnet chosen when applying is not known in advance)"
                )
            } else {
                format!("network `{network_name}` has no {family} subnet for static address {ip}")
            }
        } else if let Some(spec) = candidates.iter().find(|s| s.subnet.contains(&ip)) {
            let place = placement(spec.subnet, ip);
            if place != Placement::Usable {
                format!("address {ip} {}", describe(place, spec.subnet, ip))
            } else if ip == spec.effective_gateway() {
                format!("address {ip} is the gateway of subnet {}", spec.subnet)
            } else {
                return true;
            }
        } else {
            let list: Vec<String> = candidates.iter().map(|s| s.subnet.to_string()).collect();
            format!(
                "address {ip} is not in any {family} subnet of network `{network_name}` ({})",
                list.join(", ")
            )
        };
        self.error(path, Target::Value, problem);
        false
    }

    /// Converts a container's ports, checks each, and collects the host ports they claim.
    fn ports(
        &mut self,
        state: &DesiredState,
        name: &str,
        container: &ContainerSpec,
        base: &FieldPath,
        published: &mut Vec<PortClaim>,
    ) -> Vec<PortMapping> {
        let mut all = Vec::new();
        for (i, spec) in container.ports.iter().enumerate() {
            let at = base.key("ports").index(i);
            let mappings = match spec.to_mappings() {
                Ok(mappings) => mappings,
                Err(err) => {
                    self.error(&at, Target::Value, format!("invalid port mapping: {err}"));
                    continue;
                }
            };
            for mapping in mappings {
                if self.port_mapping(state, container, &mapping, &at) {
                    if !mapping.chooses_host_port() {
                        published.push(PortClaim {
                            container: name.to_owned(),
                            path: at.clone(),
                            mapping: mapping.clone(),
                        });
                    }
                    all.push(mapping);
                }
            }
        }
        all
    }

    /// One mapping on its own; false if it is unusable.
    fn port_mapping(
        &mut self,
        state: &DesiredState,
        container: &ContainerSpec,
        mapping: &PortMapping,
        at: &FieldPath,
    ) -> bool {
        let count = u32::from(mapping.port_count());
        let mut ok = true;
        let mut sides = vec![("container", mapping.container_port)];
        if !mapping.chooses_host_port() {
            sides.push(("host", mapping.host_port));
        }
        for (side, first) in sides {
            let last = u32::from(first) + count - 1;
            if last > 65535 {
                ok = false;
                self.error(
                    &at.key("range"),
                    Target::Value,
                    format!("{side} ports {first}-{last} run past 65535"),
                );
            }
        }
        let protocol = mapping.protocol().unwrap_or_default();
        if protocol == Protocol::Sctp {
            let slirp_handler = container
                .slirp4netns
                .as_ref()
                .map(netctl_types::SlirpOptions::port_handler)
                .unwrap_or_default();
            if container.mode == ContainerMode::Pasta {
                ok = false;
                self.error(
                    at,
                    Target::Value,
                    "pasta cannot forward sctp ports; use mode = \"bridge\"".to_owned(),
                );
            } else if container.mode == ContainerMode::Slirp4netns
                && slirp_handler == PortHandler::Slirp4netns
            {
                ok = false;
                self.error(
                    at,
                    Target::Value,
                    "slirp4netns's port handler cannot forward sctp ports; use port_handler = \"rootlesskit\"".to_owned(),
                );
            }
        }
        if container.mode == ContainerMode::Bridge {
            self.host_ip_family(state, container, mapping, at);
        }
        ok
    }

    /// Warns about bridge mappings on a host address the container cannot be reached from.
    fn host_ip_family(
        &mut self,
        state: &DesiredState,
        container: &ContainerSpec,
        mapping: &PortMapping,
        at: &FieldPath,
    ) {
        let Ok(host_ip) = mapping.host_ip.parse::<IpAddr>() else {
            return;
        };
        if host_ip == IpAddr::from(std::net::Ipv6Addr::LOCALHOST) {
            self.emit(
                Severity::Warning,
                at,
                Target::Value,
                "::1 cannot be forwarded into a bridge network (the kernel has no route_localnet for IPv6); the mapping will not work".to_owned(),
            );
            return;
        }
        // Without declared networks the container joins the default network, whose
        // families are settings, not known here.
        if container.networks.is_empty() || host_ip.is_ipv4() {
            return;
        }
        let has_v6 = container.networks.keys().any(|n| {
            state.networks.get(n).is_some_and(|network| {
                network.ipv6
                    || network
                        .subnets
                        .iter()
                        .any(|s| matches!(s.subnet, IpNet::V6(_)))
            })
        });
        if !has_v6 {
            self.emit(
                Severity::Warning,
                at,
                Target::Value,
                format!(
                    "host address {host_ip} is IPv6 but none of the container's networks has IPv6, so nothing can be forwarded"
                ),
            );
        }
    }

    /// Two mappings may not bind the same host address, port and protocol, across all
    /// containers (the host has one port space).
    fn port_conflicts(&mut self, mut claims: Vec<PortClaim>) {
        claims.sort_by_cached_key(|c| self.spans.position(&c.path));
        // Earlier claims by (protocol, host port), so each claim looks only at those sharing
        // one of its ports: linear in the number of ports, not quadratic (a file with
        // thousands of published ports is validated on every apply).
        let mut by_port: HashMap<(&str, u32), Vec<usize>> = HashMap::new();
        for (j, claim) in claims.iter().enumerate() {
            let a = &claim.mapping;
            let a_first = u32::from(a.host_port);
            let a_last = a_first + u32::from(a.port_count()) - 1;
            let clash = (a_first..=a_last)
                .filter_map(|port| by_port.get(&(a.protocol.as_str(), port)))
                .flatten()
                .copied()
                .filter(|&i| host_ips_overlap(&a.host_ip, &claims[i].mapping.host_ip))
                .min()
                .map(|i| &claims[i]);
            for port in a_first..=a_last {
                by_port
                    .entry((a.protocol.as_str(), port))
                    .or_default()
                    .push(j);
            }
            if let Some(other) = clash {
                let by = if other.path == claim.path {
                    "the same entry".to_owned()
                } else {
                    format!(
                        "container `{}` ({})",
                        other.container,
                        self.field(&other.path)
                    )
                };
                let message = format!(
                    "host port {} conflicts with {} published by {by}",
                    a.host_side(),
                    other.mapping.host_side()
                );
                self.error(&claim.path, Target::Value, message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements() {
        let v4: IpNet = "10.0.0.0/24".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(placement(v4, ip("10.0.0.5")), Placement::Usable);
        assert_eq!(placement(v4, ip("10.0.0.0")), Placement::NetworkAddress);
        assert_eq!(placement(v4, ip("10.0.0.255")), Placement::Broadcast);
        assert_eq!(placement(v4, ip("10.0.1.1")), Placement::Outside);
        assert_eq!(placement(v4, ip("fd00::1")), Placement::WrongFamily);
        let v6: IpNet = "fd00::/64".parse().unwrap();
        assert_eq!(
            placement(v6, ip("fd00::ffff:ffff:ffff:ffff")),
            Placement::Usable
        );
        assert_eq!(placement(v6, ip("fd00::")), Placement::NetworkAddress);
    }
}

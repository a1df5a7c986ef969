//! Bridge backend: what netavark's bridge driver does to links, addresses, routes and sysctls,
//! done through the `netctl-sys` seam.
//!
//! * [`ensure_network`] makes a network's bridge exist as recorded (gateway addresses, MTU, a
//!   pinned MAC, up, sysctls). It is idempotent: it only changes what differs.
//! * [`setup`] attaches one container: a veth whose peer is created directly inside the
//!   container's namespace under its interface name, MAC, addresses, default routes (none for
//!   internal networks), `lo` up, and the per-interface sysctls. It returns podman's
//!   [`StatusBlock`]. A failure part-way undoes what this call did.
//! * [`teardown`] detaches one container and always runs to the end: it works when the
//!   container's namespace is already gone and reports every error it met.
//! * [`remove_network`] deletes the bridge (when its last attachment has left).
//! * [`check_borrowed`] is all a network with a borrowed bridge (netavark's `mode=unmanaged`)
//!   does instead of [`ensure_network`]: the bridge must exist and be a bridge; netctl never
//!   changes it (addresses, MTU, sysctls) nor deletes it. Its containers' veths are made as
//!   for any bridge, but without netavark's sysctls and hairpin mode, as netavark does there.
//!
//! Firewall rules are not made here: the caller drives `netctl-firewall` around these calls, so
//! port forwards are removed before routes and bridge on teardown.
//!
//! Invariant: this crate never talks to the kernel except through `&dyn Sys`.

use nix::errno::Errno;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use netctl_sys::{
    BridgeSpec, Ipv4Conf, Link, LinkChange, LinkKind, NsRef, Route, Sys, SysError, VethSpec,
};
use netctl_types::{MacAddr, NetAddress, NetInterface, StatusBlock, error_chain, link_alias};

/// A bridge network as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeNetwork {
    pub name: String,
    /// 64-hex network id; the bridge MAC is derived from it so it never changes.
    pub id: String,
    pub bridge: String,
    pub subnets: Vec<BridgeSubnet>,
    pub mtu: Option<u32>,
    pub internal: bool,
    /// The bridge is borrowed (netavark's `mode=unmanaged`): someone else made it and owns
    /// it; only the containers' veths are netctl's.
    pub unmanaged: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeSubnet {
    pub subnet: IpNet,
    pub gateway: Option<IpAddr>,
}

impl BridgeNetwork {
    fn gateway_addrs(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.subnets.iter().filter_map(|s| {
            s.gateway
                .map(|gw| IpNet::new(gw, s.subnet.prefix_len()).expect("prefix of a subnet"))
        })
    }

    fn has_v6(&self) -> bool {
        self.subnets.iter().any(|s| s.subnet.addr().is_ipv6())
    }

    /// The mark on the bridge: its alias.
    fn alias(&self) -> String {
        link_alias(&["netctl", "network", &self.name])
    }

    /// Whether `link` is this network's bridge as netctl made it: a bridge carrying the
    /// network's alias, or (when a run was stopped between creating it and setting its alias)
    /// none but the MAC netctl derives from the network id, which it sets at creation.
    pub fn owns(&self, link: &Link) -> bool {
        link.kind == LinkKind::Bridge
            && match link.alias.as_deref() {
                Some(alias) => alias == self.alias(),
                None => link.mac == Some(self.bridge_mac()),
            }
    }

    /// A locally administered unicast MAC derived from the network id.
    pub fn bridge_mac(&self) -> MacAddr {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.id.bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        let b = hash.to_be_bytes();
        MacAddr::from([(b[0] & 0xfe) | 0x02, b[1], b[2], b[3], b[4], b[5]])
    }
}

/// One container's attachment to a bridge network, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeAttachment {
    pub container: String,
    /// The container's network namespace.
    pub netns: PathBuf,
    /// Host side of the veth (stable, recorded).
    pub host_veth: String,
    /// Interface name inside the container (`eth0`, ...).
    pub interface: String,
    pub mac: MacAddr,
    /// One address per subnet, with the subnet's prefix length.
    pub addresses: Vec<IpNet>,
    /// Metric of the default routes (chosen by the planner, recorded).
    pub metric: u32,
    /// Whether to add default routes at all (`false`: netavark's `no_default_route`).
    pub default_route: bool,
    /// The network's other routes, added in the container after the default routes.
    pub routes: Vec<Route>,
}

impl BridgeAttachment {
    fn ns(&self) -> NsRef {
        NsRef::path(self.netns.clone())
    }

    /// The mark on the host veth.
    fn alias(&self, net: &BridgeNetwork) -> String {
        link_alias(&["netctl", &self.container, &net.name])
    }

    /// Whether `link` is this attachment's host veth as netctl made it: a veth with netctl's
    /// mark, or without any alias (a run stopped between creating it and marking it) under the
    /// name netctl derives from the container and network ids.
    fn owns_host_veth(&self, link: &Link) -> bool {
        link.kind == LinkKind::Veth
            && link.name == self.host_veth
            && link
                .alias
                .as_deref()
                .is_none_or(|a| a.starts_with("netctl "))
    }

    /// Whether `link`, inside the container, is this attachment's interface: the veth end
    /// netctl created with the recorded MAC. Anything else of that name belongs to whoever
    /// made the namespace.
    fn owns_interface(&self, link: &Link) -> bool {
        link.kind == LinkKind::Veth && link.name == self.interface && link.mac == Some(self.mac)
    }
}

/// A bridge backend failure, naming what was being done.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("network {network}: {what}")]
    Network {
        network: String,
        what: String,
        #[source]
        source: Box<SysError>,
    },
    #[error("attach {container} to {network} ({interface}): {what}")]
    Attach {
        container: String,
        network: String,
        interface: String,
        what: String,
        #[source]
        source: Box<SysError>,
    },
    #[error("{} is taken by a link netctl did not make (alias {alias:?})", name)]
    Foreign { name: String, alias: Option<String> },
    /// A borrowed bridge (`mode=unmanaged`) that is not there to borrow; netavark's wording.
    #[error(
        "network {network}: in unmanaged mode, the bridge must already exist on the host: {problem}"
    )]
    NotBorrowable { network: String, problem: String },
}

/// Every error a teardown met; it still did all it could.
#[derive(Debug, thiserror::Error)]
#[error("teardown met {} error(s): {}", .0.len(), .0.iter().map(|e| error_chain(e)).collect::<Vec<_>>().join("; "))]
pub struct TeardownErrors(pub Vec<BridgeError>);

/// The MTU of the interface the host's default route leaves through (IPv4's, else IPv6's);
/// `None` without a default route.
pub fn uplink_mtu(sys: &dyn Sys) -> Result<Option<u32>, SysError> {
    let host = NsRef::Host;
    let routes = sys.routes(&host)?;
    let mut defaults: Vec<_> = routes
        .iter()
        .filter(|r| r.dst.prefix_len() == 0 && r.table == netctl_sys::MAIN_TABLE)
        .filter_map(|r| Some((r.dst.addr().is_ipv6(), r.metric, r.dev.as_ref()?)))
        .collect();
    defaults.sort();
    match defaults.first() {
        Some((_, _, dev)) => Ok(sys.link(&host, dev)?.map(|l| l.mtu)),
        None => Ok(None),
    }
}

/// Makes the network's bridge exist as recorded; only changes what differs.
pub fn ensure_network(sys: &dyn Sys, net: &BridgeNetwork) -> Result<(), BridgeError> {
    let host = NsRef::Host;
    let err = |what: &str| {
        let what = what.to_owned();
        let network = net.name.clone();
        move |source| BridgeError::Network {
            network,
            what,
            source: Box::new(source),
        }
    };
    let existing = sys
        .link(&host, &net.bridge)
        .map_err(err("look up bridge"))?;
    let want_mac = net.bridge_mac();
    match &existing {
        None => {
            // No MTU declared: the uplink's, as netavark does, so a host on a smaller-MTU
            // network does not hand its containers packets that cannot leave it.
            let mtu = match net.mtu {
                Some(mtu) => Some(mtu),
                None => uplink_mtu(sys).map_err(err("find the default route's interface"))?,
            };
            sys.add_bridge(
                &host,
                &BridgeSpec {
                    name: net.bridge.clone(),
                    mtu,
                    mac: Some(want_mac),
                    alias: Some(net.alias()),
                },
            )
            .map_err(err(&format!("create bridge {}", net.bridge)))?;
        }
        Some(link) => {
            if !net.owns(link) {
                return Err(BridgeError::Foreign {
                    name: net.bridge.clone(),
                    alias: link.alias.clone(),
                });
            }
            let mut change = LinkChange::default();
            if link.alias.is_none() {
                change.alias = Some(net.alias());
            }
            if let Some(mtu) = net.mtu
                && link.mtu != mtu
            {
                change.mtu = Some(mtu);
            }
            if link.mac != Some(want_mac) {
                change.mac = Some(want_mac);
            }
            if !change.is_empty() {
                sys.set_link(&host, &net.bridge, &change)
                    .map_err(err(&format!("update bridge {} ({change})", net.bridge)))?;
            }
        }
    }
    // The bridge's own addresses only: a dump of every host address would list each
    // container's host veth too. (A bridge gone again by now makes add_addr below fail.)
    let have: Vec<IpNet> = match sys
        .link_index(&host, &net.bridge)
        .map_err(err("look up bridge"))?
    {
        Some(index) => sys
            .link_addrs(&host, index)
            .map_err(err("list the bridge's addresses"))?,
        None => Vec::new(),
    };
    for gw in net.gateway_addrs() {
        if !have.contains(&gw) {
            sys.add_addr(&host, &net.bridge, gw)
                .map_err(err(&format!("add gateway address {gw} to {}", net.bridge)))?;
        }
    }
    network_sysctls(sys, net)?;
    if !existing.as_ref().is_some_and(|l| l.up) {
        sys.set_link(&host, &net.bridge, &LinkChange::up())
            .map_err(err(&format!("set {} up", net.bridge)))?;
    }
    Ok(())
}

/// Why `link` (the host's link named `bridge`, if any) cannot be borrowed by an unmanaged
/// network, if it cannot: it is missing, is no bridge, or is one netctl made for a network of
/// its own (which netctl deletes with that network's last container).
pub fn borrow_problem(bridge: &str, link: Option<&Link>) -> Option<String> {
    let Some(link) = link else {
        return Some(format!("{bridge} does not exist"));
    };
    if link.kind != LinkKind::Bridge {
        return Some(format!("{bridge} is a {} link, not a bridge", link.kind));
    }
    let ours = link_alias(&["netctl", "network", ""]);
    if let Some(alias) = link.alias.as_deref().filter(|a| a.starts_with(&ours)) {
        return Some(format!(
            "{bridge} is a bridge netctl made for a network of its own (alias {alias:?}); give the unmanaged network a bridge made outside netctl"
        ));
    }
    None
}

/// What a network with a borrowed bridge (`mode=unmanaged`) checks where [`ensure_network`]
/// would make the bridge: that it is there to borrow (see [`borrow_problem`]). Changes
/// nothing.
pub fn check_borrowed(sys: &dyn Sys, net: &BridgeNetwork) -> Result<(), BridgeError> {
    let link = sys
        .link(&NsRef::Host, &net.bridge)
        .map_err(|source| BridgeError::Network {
            network: net.name.clone(),
            what: format!("look up bridge {}", net.bridge),
            source: Box::new(source),
        })?;
    match borrow_problem(&net.bridge, link.as_ref()) {
        None => Ok(()),
        Some(problem) => Err(BridgeError::NotBorrowable {
            network: net.name.clone(),
            problem,
        }),
    }
}

/// Sets a sysctl unless it already has the value (so a converged host sees no writes).
fn ensure_sysctl(sys: &dyn Sys, ns: &NsRef, key: &[&str], value: &str) -> Result<(), SysError> {
    if sys.sysctl_get(ns, key).is_ok_and(|v| v == value) {
        return Ok(());
    }
    sys.sysctl_set(ns, key, value)
}

fn network_sysctls(sys: &dyn Sys, net: &BridgeNetwork) -> Result<(), BridgeError> {
    let host = NsRef::Host;
    let br = net.bridge.as_str();
    let mut keys: Vec<(Vec<&str>, &str)> = vec![
        // Published ports on 127.0.0.1 are DNATed to the bridge; the kernel drops such
        // packets unless the bridge accepts local sources.
        (vec!["net", "ipv4", "conf", br, "route_localnet"], "1"),
        // netavark 1.11: loose reverse-path filtering, so asymmetric routes keep working.
        (vec!["net", "ipv4", "conf", br, "rp_filter"], "2"),
    ];
    if net.internal {
        keys.push((vec!["net", "ipv4", "conf", br, "forwarding"], "0"));
    } else {
        keys.push((vec!["net", "ipv4", "ip_forward"], "1"));
    }
    if net.has_v6() {
        keys.push((vec!["net", "ipv6", "conf", br, "accept_dad"], "0"));
        keys.push((vec!["net", "ipv6", "conf", br, "accept_ra"], "0"));
        if net.internal {
            keys.push((vec!["net", "ipv6", "conf", br, "forwarding"], "0"));
        } else {
            keys.push((vec!["net", "ipv6", "conf", "all", "forwarding"], "1"));
        }
    }
    for (key, value) in keys {
        ensure_sysctl(sys, &host, &key, value).map_err(|source| BridgeError::Network {
            network: net.name.clone(),
            what: format!("set sysctl {}={value}", key.join(".")),
            source: Box::new(source),
        })?;
    }
    Ok(())
}

/// Deletes the network's bridge; a missing bridge is fine, and a link of that name netctl did
/// not make (see [`BridgeNetwork::owns`]) is left alone.
pub fn remove_network(sys: &dyn Sys, net: &BridgeNetwork) -> Result<(), BridgeError> {
    let err = |what: String| {
        let network = net.name.clone();
        move |source| BridgeError::Network {
            network,
            what,
            source: Box::new(source),
        }
    };
    let Some(link) = sys
        .link(&NsRef::Host, &net.bridge)
        .map_err(err(format!("look up bridge {}", net.bridge)))?
    else {
        return Ok(());
    };
    if !net.owns(&link) {
        tracing::warn!(
            "network {}: {} is not a bridge netctl made (alias {:?}); leaving it alone",
            net.name,
            net.bridge,
            link.alias
        );
        return Ok(());
    }
    match sys.del_link(&NsRef::Host, &net.bridge) {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(source) => Err(BridgeError::Network {
            network: net.name.clone(),
            what: format!("delete bridge {}", net.bridge),
            source: Box::new(source),
        }),
    }
}

/// What a setup did so far, undone in reverse on failure.
enum Undo {
    Veth(String),
}

/// Attaches a container to a bridge network (which [`ensure_network`] has made).
pub fn setup(
    sys: &dyn Sys,
    net: &BridgeNetwork,
    att: &BridgeAttachment,
) -> Result<StatusBlock, BridgeError> {
    let mut undo = Vec::new();
    let result = setup_steps(sys, net, att, &mut undo);
    if result.is_err() {
        for step in undo.into_iter().rev() {
            match step {
                Undo::Veth(name) => {
                    if let Err(e) = sys.del_link(&NsRef::Host, &name) {
                        tracing::warn!("undo: delete veth {name}: {e}");
                    }
                }
            }
        }
    }
    result
}

fn setup_steps(
    sys: &dyn Sys,
    net: &BridgeNetwork,
    att: &BridgeAttachment,
    undo: &mut Vec<Undo>,
) -> Result<StatusBlock, BridgeError> {
    let host = NsRef::Host;
    let ctr = att.ns();
    let err = |what: String| {
        let container = att.container.clone();
        let network = net.name.clone();
        let interface = att.interface.clone();
        move |source| BridgeError::Attach {
            container,
            network,
            interface,
            what,
            source: Box::new(source),
        }
    };

    // lo up first: podman leaves it to the network backend.
    let lo = sys.link(&ctr, "lo").map_err(err("look up lo".into()))?;
    if !lo.is_some_and(|l| l.up) {
        sys.set_link(&ctr, "lo", &LinkChange::up())
            .map_err(err("set lo up".into()))?;
    }

    // A leftover host veth with our name (a half-done earlier run) is ours to replace.
    if let Some(old) = sys
        .link(&host, &att.host_veth)
        .map_err(err("look up host veth".into()))?
    {
        if !att.owns_host_veth(&old) {
            return Err(BridgeError::Foreign {
                name: att.host_veth.clone(),
                alias: old.alias,
            });
        }
        sys.del_link(&host, &att.host_veth)
            .map_err(err(format!("delete stale veth {}", att.host_veth)))?;
    }
    // No MTU declared: the bridge's, whoever set it (netavark joins a bridge the same way).
    let mtu = match net.mtu {
        Some(mtu) => Some(mtu),
        None => sys
            .link(&host, &net.bridge)
            .map_err(err(format!("look up bridge {}", net.bridge)))?
            .map(|l| l.mtu),
    };
    sys.add_veth(
        &host,
        &VethSpec {
            name: att.host_veth.clone(),
            mtu,
            mac: None,
            alias: Some(att.alias(net)),
            peer_name: att.interface.clone(),
            peer_ns: ctr.clone(),
            peer_mac: Some(att.mac),
        },
    )
    .map_err(err(format!(
        "create veth {} <-> {}",
        att.host_veth, att.interface
    )))?;
    undo.push(Undo::Veth(att.host_veth.clone()));

    // Sysctls inside the container before addresses, as netavark does. The IPv4 ones in one
    // netlink request; IPv6's per-interface settings are only writable through /proc.
    // netavark leaves them out on a borrowed bridge (its LAN may want DAD and autoconf).
    let ifname = att.interface.as_str();
    if !net.unmanaged {
        sys.set_ipv4_conf(
            &ctr,
            ifname,
            &[(Ipv4Conf::RpFilter, 2), (Ipv4Conf::ArpNotify, 1)],
        )
        .map_err(err("set sysctls rp_filter=2 arp_notify=1".into()))?;
        interface_ipv6_sysctls(sys, &ctr, ifname, &att.addresses)
            .map_err(|e| err(e.what)(*e.source))?;
        // netavark: no duplicate address detection on the host end either, on IPv6 networks.
        if net.has_v6() {
            let key = ["net", "ipv6", "conf", att.host_veth.as_str(), "accept_dad"];
            ensure_sysctl(sys, &host, &key, "0").map_err(err(format!(
                "set sysctl net.ipv6.conf.{}.accept_dad=0",
                att.host_veth
            )))?;
        }
    }

    sys.set_link(
        &host,
        &att.host_veth,
        &LinkChange {
            master: Some(Some(net.bridge.clone())),
            up: Some(true),
            // With br_netfilter loaded, a container reaching its own published port (hairpin
            // NAT) needs its bridge port to send frames back where they came from. A borrowed
            // bridge publishes no ports, and hairpin would echo the container's own broadcasts
            // (and DAD probes) back to it.
            hairpin: (!net.unmanaged).then_some(true),
            ..LinkChange::default()
        },
    )
    .map_err(err(format!(
        "enslave {} to {} and set it up",
        att.host_veth, net.bridge
    )))?;
    let gateways = |ip: IpAddr| {
        net.subnets
            .iter()
            .find(|s| s.subnet.contains(&ip))
            .and_then(|s| s.gateway)
    };
    let subnets = address_interface(
        sys,
        &ctr,
        ifname,
        &att.addresses,
        gateways,
        (!net.internal && att.default_route).then_some(att.metric),
    )
    .map_err(|e| err(e.what)(*e.source))?;
    for route in &att.routes {
        sys.add_route(&ctr, route)
            .map_err(err(format!("add route {route}")))?;
    }
    let mut interfaces = BTreeMap::new();
    interfaces.insert(
        att.interface.clone(),
        NetInterface {
            subnets,
            mac_address: att.mac,
        },
    );
    Ok(StatusBlock {
        interfaces,
        dns_server_ips: None,
        dns_search_domains: None,
    })
}

/// What failed while configuring a container interface, for the caller to wrap in its own
/// error (which names the container and network).
#[derive(Debug)]
pub struct InterfaceError {
    pub what: String,
    pub source: Box<SysError>,
}

impl InterfaceError {
    fn doing(what: String) -> impl FnOnce(SysError) -> InterfaceError {
        move |source| InterfaceError {
            what,
            source: Box::new(source),
        }
    }
}

/// IPv6 settings of a container interface, as netavark makes them: no autoconfiguration on
/// any (its addresses are netctl's to hand out, IPv6 or not: a router advertisement from
/// another container must not add one), and no duplicate address detection on one that gets
/// IPv6 addresses. A kernel or namespace without IPv6 has no autoconf key and a read-only
/// /proc cannot take it; both are left as they are, as netavark leaves them.
pub fn interface_ipv6_sysctls(
    sys: &dyn Sys,
    ns: &NsRef,
    ifname: &str,
    addresses: &[IpNet],
) -> Result<(), InterfaceError> {
    let set = |key: &str| {
        ensure_sysctl(sys, ns, &["net", "ipv6", "conf", ifname, key], "0").map_err(
            InterfaceError::doing(format!("set sysctl net.ipv6.conf.{ifname}.{key}=0")),
        )
    };
    match set("autoconf") {
        Err(e) if matches!(e.source.errno(), Some(Errno::ENOENT | Errno::EROFS)) => {}
        result => result?,
    }
    if addresses.iter().any(|a| a.addr().is_ipv6()) {
        set("accept_dad")?;
    }
    Ok(())
}

/// A container interface's addresses, the interface up, and a default route via each
/// address's gateway (`gateway_of`) with `metric` (none when `None`: an internal network).
/// Returns the addresses with their gateways, as podman's status block lists them. Shared by every driver that makes a container interface.
pub fn address_interface(
    sys: &dyn Sys,
    ns: &NsRef,
    ifname: &str,
    addresses: &[IpNet],
    gateway_of: impl Fn(IpAddr) -> Option<IpAddr>,
    metric: Option<u32>,
) -> Result<Vec<NetAddress>, InterfaceError> {
    for addr in addresses {
        sys.add_addr(ns, ifname, *addr)
            .map_err(InterfaceError::doing(format!("add address {addr}")))?;
    }
    sys.set_link(ns, ifname, &LinkChange::up())
        .map_err(InterfaceError::doing(format!("set {ifname} up")))?;
    let mut subnets = Vec::new();
    for addr in addresses {
        let gateway = gateway_of(addr.addr());
        if let (Some(metric), Some(gw)) = (metric, gateway) {
            let route = Route::default_via(gw).dev(ifname).metric(metric);
            sys.add_route(ns, &route)
                .map_err(InterfaceError::doing(format!("add route {route}")))?;
        }
        subnets.push(NetAddress {
            ipnet: *addr,
            gateway,
        });
    }
    Ok(subnets)
}

/// Deletes the container-side interface of an attachment whose host side is gone, if it is the
/// one netctl made (see [`BridgeAttachment::owns_interface`]); a namespace's own interface of
/// the same name (an `eth0` it came with) is never touched.
fn delete_own_interface(sys: &dyn Sys, att: &BridgeAttachment) -> Result<(), SysError> {
    let ns = att.ns();
    match sys.link(&ns, &att.interface)? {
        Some(link) if att.owns_interface(&link) => match sys.del_link(&ns, &att.interface) {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        },
        Some(link) => {
            tracing::warn!(
                "{}: {} in {} is not the interface netctl made (kind {:?}, MAC {:?}); leaving it alone",
                att.container,
                att.interface,
                att.netns.display(),
                link.kind,
                link.mac
            );
            Ok(())
        }
        None => Ok(()),
    }
}

/// Detaches a container; runs to the end whatever fails, and reports every error.
pub fn teardown(
    sys: &dyn Sys,
    net: &BridgeNetwork,
    att: &BridgeAttachment,
) -> Result<(), TeardownErrors> {
    let mut errors = Vec::new();
    // Deleting the host side takes the container side (and its addresses and routes) with it,
    // whether or not the container namespace still exists.
    match sys.del_link(&NsRef::Host, &att.host_veth) {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {
            // The veth may have been renamed or moved; try the container side.
            match sys.is_netns(&att.netns) {
                Ok(true) => {
                    if let Err(source) = delete_own_interface(sys, att) {
                        errors.push(BridgeError::Attach {
                            container: att.container.clone(),
                            network: net.name.clone(),
                            interface: att.interface.clone(),
                            what: "delete container interface".into(),
                            source: Box::new(source),
                        });
                    }
                }
                Ok(false) => {}
                Err(source) => errors.push(BridgeError::Attach {
                    container: att.container.clone(),
                    network: net.name.clone(),
                    interface: att.interface.clone(),
                    what: format!("check namespace {}", att.netns.display()),
                    source: Box::new(source),
                }),
            }
        }
        Err(source) => errors.push(BridgeError::Attach {
            container: att.container.clone(),
            network: net.name.clone(),
            interface: att.interface.clone(),
            what: format!("delete veth {}", att.host_veth),
            source: Box::new(source),
        }),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(TeardownErrors(errors))
    }
}

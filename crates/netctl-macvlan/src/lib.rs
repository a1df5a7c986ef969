//! macvlan backend: containers straight on a host interface's LAN, through the `netctl-sys`
//! seam.
//!
//! * [`check_parent`] finds the parent and holds the network's MTU to it.
//! * [`ensure_network`] makes the network's host objects exist as recorded: with
//!   `host_address`, a host-side macvlan in bridge mode carrying that address as a host route
//!   (the kernel keeps a parent and its macvlans apart, so without it the host cannot reach the
//!   containers). Idempotent: it only changes what differs.
//! * [`setup`] attaches one container: a macvlan created on the parent directly inside the
//!   container's namespace (`IFLA_LINK` the parent in the host, `IFLA_NET_NS_FD` the
//!   container's), under its interface name and recorded MAC, so nothing is renamed or moved;
//!   `arp_notify` so the LAN learns the MAC at once; addresses; default routes via the gateway;
//!   on the host, a route to each address through the host-side macvlan. A failure part-way
//!   undoes what this call did.
//! * [`teardown`] detaches one container and always runs to the end.
//! * [`remove_network`] deletes the host-side macvlan.
//!
//! No firewall rules and no DNS: a macvlan container is a host on the LAN.
//!
//! Invariant: this crate never talks to the kernel except through `&dyn Sys`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use netctl_bridge::BridgeError;
use netctl_sys::{Ipv4Conf, Link, LinkChange, LinkKind, MacvlanSpec, NsRef, Route, Sys, SysError};
use netctl_types::{MacAddr, MacvlanMode, NetInterface, StatusBlock, error_chain, link_alias};

/// A macvlan network as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacvlanNetwork {
    pub name: String,
    pub parent: String,
    pub mode: MacvlanMode,
    pub subnets: Vec<MacvlanSubnet>,
    pub mtu: Option<u32>,
    /// No default route (podman's `internal`).
    pub internal: bool,
    /// The host-side macvlan: its name and address, when the network has `host_address`.
    pub host_side: Option<(String, IpNet)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacvlanSubnet {
    pub subnet: IpNet,
    pub gateway: Option<IpAddr>,
}

impl MacvlanNetwork {
    /// The mark on the host-side macvlan.
    fn alias(&self) -> String {
        link_alias(&["netctl", "network", &self.name])
    }

    /// Whether `link` is this network's host-side macvlan as netctl made it.
    fn owns_host_side(&self, link: &Link) -> bool {
        link.kind == LinkKind::Other("macvlan".into())
            && link.alias.as_deref().is_none_or(|a| a == self.alias())
    }
}

/// One container's attachment to a macvlan network, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacvlanAttachment {
    pub container: String,
    pub netns: PathBuf,
    /// Interface name inside the container (`eth0`, ...).
    pub interface: String,
    /// Generated once and recorded: the LAN's ARP caches and DHCP reservations know it.
    pub mac: MacAddr,
    /// One address per subnet, with the subnet's prefix length.
    pub addresses: Vec<IpNet>,
    /// Metric of the default routes.
    pub metric: u32,
}

impl MacvlanAttachment {
    fn ns(&self) -> NsRef {
        NsRef::path(self.netns.clone())
    }

    /// Whether `link`, inside the container, is the macvlan netctl made: anything else of
    /// that name belongs to whoever made the namespace.
    fn owns_interface(&self, link: &Link) -> bool {
        link.kind == LinkKind::Other("macvlan".into())
            && link.name == self.interface
            && link.mac == Some(self.mac)
    }

    /// The host routes to this container through the host-side macvlan.
    fn host_routes(&self, host_side: &str) -> Vec<Route> {
        self.addresses
            .iter()
            .map(|a| Route::new(IpNet::from(a.addr())).dev(host_side))
            .collect()
    }
}

/// A macvlan backend failure, naming what was being done.
#[derive(Debug, thiserror::Error)]
pub enum MacvlanError {
    #[error("network {network}: parent interface {parent} does not exist")]
    ParentMissing { network: String, parent: String },
    #[error("network {network}: mtu {mtu} is above the MTU of parent {parent} ({parent_mtu})")]
    MtuAboveParent {
        network: String,
        mtu: u32,
        parent: String,
        parent_mtu: u32,
    },
    /// A step on the network or an attachment failed, or a name is a foreign link's: the
    /// failures the bridge backend has too, worded the same.
    #[error(transparent)]
    Step(#[from] BridgeError),
}

/// Every error a teardown met; it still did all it could.
#[derive(Debug, thiserror::Error)]
#[error("teardown met {} error(s): {}", .0.len(), .0.iter().map(|e| error_chain(e)).collect::<Vec<_>>().join("; "))]
pub struct TeardownErrors(pub Vec<MacvlanError>);

fn attach_err(
    net: &MacvlanNetwork,
    att: &MacvlanAttachment,
    what: String,
) -> impl FnOnce(SysError) -> MacvlanError {
    let container = att.container.clone();
    let network = net.name.clone();
    let interface = att.interface.clone();
    move |source| {
        MacvlanError::Step(BridgeError::Attach {
            container,
            network,
            interface,
            what,
            source: Box::new(source),
        })
    }
}

fn network_err(net: &MacvlanNetwork, what: String) -> impl FnOnce(SysError) -> MacvlanError {
    let network = net.name.clone();
    move |source| {
        MacvlanError::Step(BridgeError::Network {
            network,
            what,
            source: Box::new(source),
        })
    }
}

/// The parent as it is now; an error naming it when it is missing or its MTU is below the
/// network's.
pub fn check_parent(sys: &dyn Sys, net: &MacvlanNetwork) -> Result<Link, MacvlanError> {
    let parent = sys
        .link(&NsRef::Host, &net.parent)
        .map_err(network_err(net, format!("look up parent {}", net.parent)))?
        .ok_or_else(|| MacvlanError::ParentMissing {
            network: net.name.clone(),
            parent: net.parent.clone(),
        })?;
    if let Some(mtu) = net.mtu
        && mtu > parent.mtu
    {
        return Err(MacvlanError::MtuAboveParent {
            network: net.name.clone(),
            mtu,
            parent: net.parent.clone(),
            parent_mtu: parent.mtu,
        });
    }
    Ok(parent)
}

/// Makes the network's host objects exist as recorded; only changes what differs.
pub fn ensure_network(sys: &dyn Sys, net: &MacvlanNetwork) -> Result<(), MacvlanError> {
    check_parent(sys, net)?;
    let Some((name, addr)) = &net.host_side else {
        return Ok(());
    };
    let host = NsRef::Host;
    let existing = sys
        .link(&host, name)
        .map_err(network_err(net, format!("look up {name}")))?;
    match &existing {
        Some(link) if !net.owns_host_side(link) => {
            return Err(BridgeError::Foreign {
                name: name.clone(),
                alias: link.alias.clone(),
            }
            .into());
        }
        Some(_) => {}
        None => sys
            .add_macvlan(
                &host,
                &MacvlanSpec {
                    name: name.clone(),
                    parent: net.parent.clone(),
                    // The host side must see the containers (a bridge-mode container sees
                    // it too; a private one sees nothing but the LAN).
                    mode: MacvlanMode::Bridge,
                    mtu: net.mtu,
                    mac: None,
                    alias: Some(net.alias()),
                    link_ns: host.clone(),
                },
            )
            .map_err(network_err(
                net,
                format!("create host-side macvlan {name} on {}", net.parent),
            ))?,
    }
    let index = sys
        .link_index(&host, name)
        .map_err(network_err(net, format!("look up {name}")))?;
    let have = match index {
        Some(index) => sys
            .link_addrs(&host, index)
            .map_err(network_err(net, format!("list the addresses of {name}")))?,
        None => Vec::new(),
    };
    if !have.contains(addr) {
        sys.add_addr(&host, name, *addr)
            .map_err(network_err(net, format!("add address {addr} to {name}")))?;
    }
    if !existing.as_ref().is_some_and(|l| l.up) {
        sys.set_link(&host, name, &LinkChange::up())
            .map_err(network_err(net, format!("set {name} up")))?;
    }
    Ok(())
}

/// Deletes the host-side macvlan, if the network has one and it is netctl's.
pub fn remove_network(sys: &dyn Sys, net: &MacvlanNetwork) -> Result<(), MacvlanError> {
    let Some((name, _)) = &net.host_side else {
        return Ok(());
    };
    let Some(link) = sys
        .link(&NsRef::Host, name)
        .map_err(network_err(net, format!("look up {name}")))?
    else {
        return Ok(());
    };
    if !net.owns_host_side(&link) {
        tracing::warn!(
            "network {}: {name} is not a macvlan netctl made (alias {:?}); leaving it alone",
            net.name,
            link.alias
        );
        return Ok(());
    }
    match sys.del_link(&NsRef::Host, name) {
        Err(e) if !e.is_not_found() => Err(network_err(net, format!("delete {name}"))(e)),
        _ => Ok(()),
    }
}

/// Attaches a container to a macvlan network (whose host objects [`ensure_network`] made).
pub fn setup(
    sys: &dyn Sys,
    net: &MacvlanNetwork,
    att: &MacvlanAttachment,
) -> Result<StatusBlock, MacvlanError> {
    let mut created = false;
    let result = setup_steps(sys, net, att, &mut created);
    if result.is_err() {
        if created && let Err(e) = sys.del_link(&att.ns(), &att.interface) {
            tracing::warn!("undo: delete macvlan {}: {e}", att.interface);
        }
        if let Some((name, _)) = &net.host_side {
            for route in att.host_routes(name) {
                let _ = sys.del_route(&NsRef::Host, &route);
            }
        }
    }
    result
}

fn setup_steps(
    sys: &dyn Sys,
    net: &MacvlanNetwork,
    att: &MacvlanAttachment,
    created: &mut bool,
) -> Result<StatusBlock, MacvlanError> {
    let host = NsRef::Host;
    let ctr = att.ns();
    let err = |what: String| attach_err(net, att, what);
    let lo = sys.link(&ctr, "lo").map_err(err("look up lo".into()))?;
    if !lo.is_some_and(|l| l.up) {
        sys.set_link(&ctr, "lo", &LinkChange::up())
            .map_err(err("set lo up".into()))?;
    }
    // A leftover of an earlier run under our name and MAC is ours to replace; anything else
    // of that name is the namespace's own.
    if let Some(old) = sys
        .link(&ctr, &att.interface)
        .map_err(err("look up the interface".into()))?
    {
        if !att.owns_interface(&old) {
            return Err(BridgeError::Foreign {
                name: format!("{} in {}", att.interface, att.netns.display()),
                alias: old.alias,
            }
            .into());
        }
        sys.del_link(&ctr, &att.interface)
            .map_err(err(format!("delete stale {}", att.interface)))?;
    }
    let spec = MacvlanSpec {
        name: att.interface.clone(),
        parent: net.parent.clone(),
        mode: net.mode,
        mtu: net.mtu,
        mac: Some(att.mac),
        alias: None,
        link_ns: ctr.clone(),
    };
    sys.add_macvlan(&host, &spec).map_err(|source| {
        if source.is_not_found() {
            MacvlanError::ParentMissing {
                network: net.name.clone(),
                parent: net.parent.clone(),
            }
        } else {
            err(format!(
                "create macvlan {} on {} (mode {})",
                att.interface, net.parent, net.mode
            ))(source)
        }
    })?;
    *created = true;
    let ifname = att.interface.as_str();
    // Gratuitous ARP when the interface comes up, so the LAN's caches learn the MAC at once.
    sys.set_ipv4_conf(&ctr, ifname, &[(Ipv4Conf::ArpNotify, 1)])
        .map_err(err("set sysctl arp_notify=1".into()))?;
    netctl_bridge::interface_ipv6_sysctls(sys, &ctr, ifname, &att.addresses)
        .map_err(|e| err(e.what)(*e.source))?;
    let gateway_of = |ip: IpAddr| {
        net.subnets
            .iter()
            .find(|s| s.subnet.contains(&ip))
            .and_then(|s| s.gateway)
    };
    let subnets = netctl_bridge::address_interface(
        sys,
        &ctr,
        ifname,
        &att.addresses,
        gateway_of,
        (!net.internal).then_some(att.metric),
    )
    .map_err(|e| err(e.what)(*e.source))?;
    if let Some((name, _)) = &net.host_side {
        for route in att.host_routes(name) {
            match sys.add_route(&host, &route) {
                Err(e) if !e.is_exists() => {
                    return Err(err(format!("add host route {route}"))(e));
                }
                _ => {}
            }
        }
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

/// Detaches a container: its host routes, and its macvlan (when the namespace is still there
/// and the interface is the one netctl made). Runs to the end whatever fails.
pub fn teardown(
    sys: &dyn Sys,
    net: &MacvlanNetwork,
    att: &MacvlanAttachment,
) -> Result<(), TeardownErrors> {
    let mut errors = Vec::new();
    let fail = |what: String| attach_err(net, att, what);
    teardown_host_routes(sys, net, att, &mut errors);
    match sys.is_netns(&att.netns) {
        Ok(true) => {
            let ns = att.ns();
            match sys.link(&ns, &att.interface) {
                Ok(Some(link)) if att.owns_interface(&link) => {
                    if let Err(e) = sys.del_link(&ns, &att.interface)
                        && !e.is_not_found()
                    {
                        errors.push(fail(format!("delete macvlan {}", att.interface))(e));
                    }
                }
                Ok(Some(link)) => tracing::warn!(
                    "{}: {} in {} is not the macvlan netctl made (kind {:?}, MAC {:?}); leaving it alone",
                    att.container,
                    att.interface,
                    att.netns.display(),
                    link.kind,
                    link.mac
                ),
                Ok(None) => {}
                Err(e) => errors.push(fail(format!("look up {}", att.interface))(e)),
            }
        }
        Ok(false) => {}
        Err(e) => errors.push(fail(format!("check namespace {}", att.netns.display()))(e)),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(TeardownErrors(errors))
    }
}

/// What a teardown does when the container's namespace is deleted right after (and takes the
/// macvlan with it): only the host routes.
pub fn teardown_host_side(
    sys: &dyn Sys,
    net: &MacvlanNetwork,
    att: &MacvlanAttachment,
) -> Result<(), TeardownErrors> {
    let mut errors = Vec::new();
    teardown_host_routes(sys, net, att, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(TeardownErrors(errors))
    }
}

fn teardown_host_routes(
    sys: &dyn Sys,
    net: &MacvlanNetwork,
    att: &MacvlanAttachment,
    errors: &mut Vec<MacvlanError>,
) {
    let Some((name, _)) = &net.host_side else {
        return;
    };
    for route in att.host_routes(name) {
        match sys.del_route(&NsRef::Host, &route) {
            // Gone already: with the host-side link, or never added.
            Err(e) if !e.is_not_found() => {
                errors.push(network_err(net, format!("delete host route {route}"))(e));
            }
            _ => {}
        }
    }
}

//! The network-driver seam: what a network driver owns, and the one place the engine learns
//! which driver a network has ([`of`], [`for_target`]). Everything else in the engine asks the
//! driver it got and never matches on the kind.
//!
//! A driver owns:
//! * the network's objects on the host ([`NetworkDriver::ensure_network`], the cheap
//!   [`NetworkDriver::network_ready`] before an attach, [`NetworkDriver::remove_network`]
//!   when the last container leaves), and what must hold on the host before a plan creates
//!   the network ([`NetworkDriver::host_conflict`]);
//! * one container's attachment ([`NetworkDriver::setup`], [`NetworkDriver::teardown`], and
//!   [`NetworkDriver::teardown_before_netns_delete`] when the container's namespace goes in the
//!   same run and takes the container side with it);
//! * what it observes for drift: its host links by name, per network and per attachment
//!   (`netctl_plan::driver`, the planner's pure half of this seam, judges them);
//! * whether the firewall and aardvark-dns serve its networks.
//!
//! Drivers: `bridge` (`netctl-bridge`), the same with a borrowed bridge (podman's
//! `mode=unmanaged`: someone else's bridge that netctl never changes or deletes, with no
//! firewall and no DNS) and `macvlan` (`netctl-macvlan`).

use std::collections::BTreeMap;

use netctl_bridge::{BridgeAttachment, BridgeNetwork, BridgeSubnet};
use netctl_macvlan::{MacvlanAttachment, MacvlanNetwork, MacvlanSubnet};
use netctl_plan::{LinkFacts, Plan, Recorded, TargetNetwork, driver as facts};
use netctl_state::{AttachmentRecord, ContainerRecord, NetworkRecord};
use netctl_sys::{NsRef, Route, RouteKind, Sys};
use netctl_types::{BridgeMode, NetworkSpec, StatusBlock};

use crate::exec::sys_err;
use crate::{Engine, Result};

/// What the network's host objects look like before a container joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostObjects {
    /// In place: nothing to do (the cheap path, constant in the number of containers).
    Ready,
    /// Not there at all: [`NetworkDriver::ensure_network`] makes them, and a rollback takes
    /// them away again.
    Absent,
    /// Partly there: [`NetworkDriver::ensure_network`] completes them.
    Incomplete,
}

/// One network driver. Implementations are stateless; records carry everything.
pub(crate) trait NetworkDriver: Sync {
    /// Makes the network's host objects exist as recorded (the full check; idempotent).
    fn ensure_network(&self, sys: &dyn Sys, net: &NetworkRecord) -> Result<()>;
    /// A cheap look at the network's host objects before an attach.
    fn network_ready(&self, sys: &dyn Sys, net: &NetworkRecord) -> Result<HostObjects>;
    /// Deletes the network's host objects (those netctl made; a missing one is fine).
    fn remove_network(&self, sys: &dyn Sys, net: &NetworkRecord) -> Result<()>;
    /// What stands in the way, on the host, of the plan creating network `name`.
    fn host_conflict(
        &self,
        engine: &Engine<'_>,
        plan: &Plan,
        rec: &Recorded,
        name: &str,
    ) -> Result<Option<String>>;
    /// Whether the network's subnets may overlap the host's own (macvlan: sharing the LAN's
    /// subnet is the point).
    fn shares_host_subnets(&self) -> bool;
    /// The interface a new network records as `network_interface` when the file names none.
    fn choose_interface(&self, sys: &dyn Sys, recorded: &Recorded) -> Result<String>;

    fn setup(
        &self,
        sys: &dyn Sys,
        net: &NetworkRecord,
        ctr: &ContainerRecord,
        att: &AttachmentRecord,
    ) -> Result<StatusBlock>;
    /// Detaches one container; runs to the end and reports every error.
    fn teardown(
        &self,
        sys: &dyn Sys,
        net: &NetworkRecord,
        ctr: &ContainerRecord,
        att: &AttachmentRecord,
    ) -> Result<()>;
    /// Detaches one container whose namespace this run deletes (which takes the container
    /// side with it): removes only what the namespace does not take, and returns the host link
    /// left to the kernel's namespace cleanup, for the run to wait for.
    fn teardown_before_netns_delete(
        &self,
        sys: &dyn Sys,
        net: &NetworkRecord,
        ctr: &ContainerRecord,
        att: &AttachmentRecord,
    ) -> Result<Option<String>>;

    /// The host links the network's records call for, by name (observed for drift).
    fn host_links(&self, net: &NetworkRecord) -> Vec<String> {
        facts::network_host_links(net)
    }
    /// The host link one attachment has of its own, if any.
    fn attachment_host_link(
        &self,
        ctr: &ContainerRecord,
        net: &NetworkRecord,
        att: &netctl_state::AttachmentRecord,
    ) -> Option<String> {
        facts::attachment_host_link(ctr, net, att)
    }
    /// The network's host links as they would be if they matched the records.
    fn assumed_host_links(&self, net: &NetworkRecord) -> Vec<(String, LinkFacts)>;

    /// The driver's settings a new network's record keeps in `options` (podman's names).
    fn record_options(&self, target: &TargetNetwork) -> BTreeMap<String, String>;
    /// The driver's part of the network as a desired spec (driver, its interface and
    /// options), as recorded: what imperative calls plan with.
    fn spec_of(&self, net: &NetworkRecord) -> NetworkSpec;

    /// Whether netctl's nftables table serves the network (masquerade, forwarding, ports).
    fn uses_firewall(&self) -> bool;
    /// Whether aardvark-dns may serve the network.
    fn uses_dns(&self) -> bool;
}

/// The driver of a recorded network.
pub(crate) fn of(net: &NetworkRecord) -> &'static dyn NetworkDriver {
    match net.driver {
        netctl_state::NetworkDriver::Bridge if net.unmanaged() => &UnmanagedBridge,
        netctl_state::NetworkDriver::Bridge => &Bridge,
        netctl_state::NetworkDriver::Macvlan => &Macvlan,
    }
}

/// The driver of a network of the desired state.
pub(crate) fn for_target(target: &TargetNetwork) -> &'static dyn NetworkDriver {
    match (target.driver, target.bridge_mode) {
        (netctl_types::NetworkDriver::Bridge, BridgeMode::Unmanaged) => &UnmanagedBridge,
        (netctl_types::NetworkDriver::Bridge, BridgeMode::Managed) => &Bridge,
        (netctl_types::NetworkDriver::Macvlan, _) => &Macvlan,
    }
}

/// The record's driver kind for a driver of the file.
pub(crate) fn record_kind(kind: netctl_types::NetworkDriver) -> netctl_state::NetworkDriver {
    match kind {
        netctl_types::NetworkDriver::Bridge => netctl_state::NetworkDriver::Bridge,
        netctl_types::NetworkDriver::Macvlan => netctl_state::NetworkDriver::Macvlan,
    }
}

/// The networks of `rec` that the firewall serves.
pub(crate) fn firewalled(rec: &Recorded) -> impl Iterator<Item = &NetworkRecord> {
    rec.networks.values().filter(|n| of(n).uses_firewall())
}

fn metric_of(att: &AttachmentRecord) -> u32 {
    att.metric
        .unwrap_or_else(|| netctl_plan::legacy_metric(&att.interface))
}

// ---- bridge ------------------------------------------------------------------------------

/// The host's link under the network's bridge name, if any.
fn host_bridge(sys: &dyn Sys, net: &NetworkRecord) -> Result<Option<netctl_sys::Link>> {
    sys.link(&NsRef::Host, &net.network_interface)
        .map_err(sys_err(format!("look up bridge {}", net.network_interface)))
}

/// A Linux bridge with a veth pair per container (`netctl-bridge`).
struct Bridge;

pub(crate) fn bridge_network(net: &NetworkRecord) -> BridgeNetwork {
    BridgeNetwork {
        name: net.name.clone(),
        id: net.id.clone(),
        bridge: net.network_interface.clone(),
        subnets: net
            .subnets
            .iter()
            .map(|s| BridgeSubnet {
                subnet: s.subnet,
                gateway: s.gateway,
            })
            .collect(),
        mtu: net.mtu,
        internal: net.internal,
        unmanaged: net.unmanaged(),
    }
}

fn bridge_attachment(
    ctr: &ContainerRecord,
    net: &NetworkRecord,
    att: &AttachmentRecord,
) -> BridgeAttachment {
    BridgeAttachment {
        container: ctr.name.clone(),
        netns: ctr.netns.path.clone(),
        host_veth: netctl_plan::host_veth(ctr, net, att),
        interface: att.interface.clone(),
        mac: netctl_types::MacAddr::from(att.mac.octets()),
        addresses: att.addresses.clone(),
        metric: metric_of(att),
        default_route: !net.no_default_route(),
        routes: net
            .routes
            .iter()
            .map(|r| {
                let kind = match r.route_type.as_str() {
                    "blackhole" => RouteKind::Blackhole,
                    "unreachable" => RouteKind::Unreachable,
                    "prohibit" => RouteKind::Prohibit,
                    _ => RouteKind::Unicast,
                };
                let mut route = Route::of_kind(kind, r.destination).metric(r.metric.unwrap_or(0));
                if kind == RouteKind::Unicast {
                    route.gateway = r.gateway;
                    route = route.dev(att.interface.clone());
                }
                route
            })
            .collect(),
    }
}

impl NetworkDriver for Bridge {
    fn ensure_network(&self, sys: &dyn Sys, net: &NetworkRecord) -> Result<()> {
        netctl_bridge::ensure_network(sys, &bridge_network(net))?;
        Ok(())
    }

    fn network_ready(&self, sys: &dyn Sys, net: &NetworkRecord) -> Result<HostObjects> {
        let link = host_bridge(sys, net)?;
        Ok(match link {
            Some(l) if l.up => HostObjects::Ready,
            Some(_) => HostObjects::Incomplete,
            None => HostObjects::Absent,
        })
    }

    fn remove_network(&self, sys: &dyn Sys, net: &NetworkRecord) -> Result<()> {
        netctl_bridge::remove_network(sys, &bridge_network(net))?;
        Ok(())
    }

    fn host_conflict(
        &self,
        engine: &Engine<'_>,
        plan: &Plan,
        rec: &Recorded,
        name: &str,
    ) -> Result<Option<String>> {
        crate::conflicts::bridge_taken(engine, plan, rec, name)
    }

    fn shares_host_subnets(&self) -> bool {
        false
    }

    fn choose_interface(&self, sys: &dyn Sys, recorded: &Recorded) -> Result<String> {
        let recorded: Vec<String> = recorded
            .networks
            .values()
            .map(|n| n.network_interface.clone())
            .collect();
        let links: Vec<String> = sys
            .links(&NsRef::Host)
            .map_err(sys_err("list host links"))?
            .into_iter()
            .map(|l| l.name)
            .collect();
        Ok(netctl_state::choose_bridge_name(&recorded, &links))
    }

    fn setup(
        &self,
        sys: &dyn Sys,
        net: &NetworkRecord,
        ctr: &ContainerRecord,
        att: &AttachmentRecord,
    ) -> Result<StatusBlock> {
        Ok(netctl_bridge::setup(
            sys,
            &bridge_network(net),
            &bridge_attachment(ctr, net, att),
        )?)
    }

    fn teardown(
        &self,
        sys: &dyn Sys,
        net: &NetworkRecord,
        ctr: &ContainerRecord,
        att: &AttachmentRecord,
    ) -> Result<()> {
        netctl_bridge::teardown(sys, &bridge_network(net), &bridge_attachment(ctr, net, att))?;
        Ok(())
    }

    fn teardown_before_netns_delete(
        &self,
        _sys: &dyn Sys,
        net: &NetworkRecord,
        ctr: &ContainerRecord,
        _att: &AttachmentRecord,
    ) -> Result<Option<String>> {
        // Deleting veths one by one waits for an RCU grace period each; the namespace's
        // deletion takes every pair in one batched cleanup.
        Ok(Some(netctl_plan::veth_name(&ctr.id, &net.id)))
    }

    fn assumed_host_links(&self, net: &NetworkRecord) -> Vec<(String, LinkFacts)> {
        let mut facts = LinkFacts {
            up: true,
            ..LinkFacts::default()
        };
        for s in &net.subnets {
            if let Some(gw) = s.gateway {
                facts.addrs.insert(
                    ipnet::IpNet::new(gw, s.subnet.prefix_len()).expect("prefix of a subnet"),
                );
            }
        }
        vec![(net.network_interface.clone(), facts)]
    }

    fn record_options(&self, _target: &TargetNetwork) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn spec_of(&self, net: &NetworkRecord) -> NetworkSpec {
        NetworkSpec {
            driver: netctl_types::NetworkDriver::Bridge,
            bridge: Some(net.network_interface.clone()),
            ..NetworkSpec::default()
        }
    }

    fn uses_firewall(&self) -> bool {
        true
    }

    fn uses_dns(&self) -> bool {
        true
    }
}

// ---- bridge, borrowed ----------------------------------------------------------------------

/// An existing bridge that is not netctl's (podman's `mode=unmanaged`), with a veth pair per
/// container, as netavark does it: the bridge must be there; netctl never gives it addresses,
/// sysctls or an MTU, never deletes it, and sets up no firewall (so no masquerade, isolation or
/// published ports) and no DNS for the network. The containers' side is [`Bridge`]'s.
struct UnmanagedBridge;

impl NetworkDriver for UnmanagedBridge {
    fn ensure_network(&self, sys: &dyn Sys, net: &NetworkRecord) -> Result<()> {
        netctl_bridge::check_borrowed(sys, &bridge_network(net))?;
        Ok(())
    }

    fn network_ready(&self, sys: &dyn Sys, net: &NetworkRecord) -> Result<HostObjects> {
        let link = host_bridge(sys, net)?;
        // Anything amiss is for `ensure_network` to name; it never makes the bridge, so a
        // rollback never has one to take away.
        Ok(
            match netctl_bridge::borrow_problem(&net.network_interface, link.as_ref()) {
                None => HostObjects::Ready,
                Some(_) => HostObjects::Incomplete,
            },
        )
    }

    fn remove_network(&self, _sys: &dyn Sys, _net: &NetworkRecord) -> Result<()> {
        // Borrowed: the bridge stays, as its owner left it.
        Ok(())
    }

    fn host_conflict(
        &self,
        engine: &Engine<'_>,
        plan: &Plan,
        _rec: &Recorded,
        name: &str,
    ) -> Result<Option<String>> {
        crate::conflicts::bridge_not_borrowable(engine, plan, name)
    }

    fn shares_host_subnets(&self) -> bool {
        // The bridge is a host interface, often with an address in the network's subnet.
        true
    }

    fn choose_interface(&self, _sys: &dyn Sys, _recorded: &Recorded) -> Result<String> {
        Err(crate::EngineError::Invalid(
            "in unmanaged mode, the bridge must already exist on the host: name it (podman's network_interface)".into(),
        ))
    }

    fn setup(
        &self,
        sys: &dyn Sys,
        net: &NetworkRecord,
        ctr: &ContainerRecord,
        att: &AttachmentRecord,
    ) -> Result<StatusBlock> {
        Bridge.setup(sys, net, ctr, att)
    }

    fn teardown(
        &self,
        sys: &dyn Sys,
        net: &NetworkRecord,
        ctr: &ContainerRecord,
        att: &AttachmentRecord,
    ) -> Result<()> {
        Bridge.teardown(sys, net, ctr, att)
    }

    fn teardown_before_netns_delete(
        &self,
        sys: &dyn Sys,
        net: &NetworkRecord,
        ctr: &ContainerRecord,
        att: &AttachmentRecord,
    ) -> Result<Option<String>> {
        Bridge.teardown_before_netns_delete(sys, net, ctr, att)
    }

    fn assumed_host_links(&self, net: &NetworkRecord) -> Vec<(String, LinkFacts)> {
        // Whatever its owner gave it (addresses, state) is not netctl's to expect.
        vec![(net.network_interface.clone(), LinkFacts::default())]
    }

    fn record_options(&self, _target: &TargetNetwork) -> BTreeMap<String, String> {
        BTreeMap::from([(
            facts::OPTION_MODE.to_owned(),
            netctl_state::BRIDGE_MODE_UNMANAGED.to_owned(),
        )])
    }

    fn spec_of(&self, net: &NetworkRecord) -> NetworkSpec {
        NetworkSpec {
            bridge_mode: BridgeMode::Unmanaged,
            ..Bridge.spec_of(net)
        }
    }

    fn uses_firewall(&self) -> bool {
        false
    }

    fn uses_dns(&self) -> bool {
        false
    }
}

// ---- macvlan -----------------------------------------------------------------------------

/// Containers on a parent's LAN, each with a macvlan and a MAC of its own (`netctl-macvlan`).
struct Macvlan;

fn macvlan_network(net: &NetworkRecord) -> MacvlanNetwork {
    MacvlanNetwork {
        name: net.name.clone(),
        parent: net.network_interface.clone(),
        mode: facts::macvlan_mode(net),
        subnets: net
            .subnets
            .iter()
            .map(|s| MacvlanSubnet {
                subnet: s.subnet,
                gateway: s.gateway,
            })
            .collect(),
        mtu: net.mtu,
        internal: net.internal,
        host_side: facts::host_address(net)
            .map(|host| (facts::host_side_name(&net.id), facts::host_side_addr(host))),
    }
}

fn macvlan_attachment(ctr: &ContainerRecord, att: &AttachmentRecord) -> MacvlanAttachment {
    MacvlanAttachment {
        container: ctr.name.clone(),
        netns: ctr.netns.path.clone(),
        interface: att.interface.clone(),
        mac: netctl_types::MacAddr::from(att.mac.octets()),
        addresses: att.addresses.clone(),
        metric: metric_of(att),
    }
}

impl NetworkDriver for Macvlan {
    fn ensure_network(&self, sys: &dyn Sys, net: &NetworkRecord) -> Result<()> {
        netctl_macvlan::ensure_network(sys, &macvlan_network(net))?;
        Ok(())
    }

    fn network_ready(&self, sys: &dyn Sys, net: &NetworkRecord) -> Result<HostObjects> {
        let Some(host) = facts::host_address(net) else {
            // Nothing of the network's own on the host; the parent is checked by the
            // kernel when the container's macvlan is made.
            return Ok(HostObjects::Ready);
        };
        let name = facts::host_side_name(&net.id);
        let link = sys
            .link(&NsRef::Host, &name)
            .map_err(sys_err(format!("look up {name}")))?;
        Ok(match link {
            None => HostObjects::Absent,
            Some(l) if !l.up => HostObjects::Incomplete,
            Some(l) => {
                let addrs = sys
                    .link_addrs(&NsRef::Host, l.index)
                    .map_err(sys_err(format!("list the addresses of {name}")))?;
                if addrs.contains(&facts::host_side_addr(host)) {
                    HostObjects::Ready
                } else {
                    HostObjects::Incomplete
                }
            }
        })
    }

    fn remove_network(&self, sys: &dyn Sys, net: &NetworkRecord) -> Result<()> {
        netctl_macvlan::remove_network(sys, &macvlan_network(net))?;
        Ok(())
    }

    fn host_conflict(
        &self,
        engine: &Engine<'_>,
        plan: &Plan,
        _rec: &Recorded,
        name: &str,
    ) -> Result<Option<String>> {
        let Some(target) = plan.target.networks.get(name) else {
            return Ok(None);
        };
        // No parent named: the default route's interface, found (or missed) when applying.
        let Some(parent) = &target.bridge else {
            return Ok(None);
        };
        Ok(match check_parent(engine.sys, target, parent) {
            Ok(()) => None,
            Err(netctl_macvlan::MacvlanError::ParentMissing { .. }) => Some(format!(
                "parent interface {parent} does not exist; name an existing interface in `parent`"
            )),
            Err(e @ netctl_macvlan::MacvlanError::MtuAboveParent { .. }) => Some(e.to_string()),
            Err(e) => return Err(e.into()),
        })
    }

    fn shares_host_subnets(&self) -> bool {
        true
    }

    fn choose_interface(&self, sys: &dyn Sys, _recorded: &Recorded) -> Result<String> {
        let routes = sys
            .routes(&NsRef::Host)
            .map_err(sys_err("list host routes"))?;
        routes
            .into_iter()
            .filter(|r| r.dst.prefix_len() == 0 && r.dst.addr().is_ipv4())
            .min_by_key(|r| r.metric)
            .and_then(|r| r.dev)
            .ok_or_else(|| {
                crate::EngineError::Invalid(
                    "a macvlan network without `parent` sits on the interface of the default route, and the host has no IPv4 default route; name the interface in `parent`".into(),
                )
            })
    }

    fn setup(
        &self,
        sys: &dyn Sys,
        net: &NetworkRecord,
        ctr: &ContainerRecord,
        att: &AttachmentRecord,
    ) -> Result<StatusBlock> {
        Ok(netctl_macvlan::setup(
            sys,
            &macvlan_network(net),
            &macvlan_attachment(ctr, att),
        )?)
    }

    fn teardown(
        &self,
        sys: &dyn Sys,
        net: &NetworkRecord,
        ctr: &ContainerRecord,
        att: &AttachmentRecord,
    ) -> Result<()> {
        netctl_macvlan::teardown(sys, &macvlan_network(net), &macvlan_attachment(ctr, att))?;
        Ok(())
    }

    fn teardown_before_netns_delete(
        &self,
        sys: &dyn Sys,
        net: &NetworkRecord,
        ctr: &ContainerRecord,
        att: &AttachmentRecord,
    ) -> Result<Option<String>> {
        netctl_macvlan::teardown_host_side(
            sys,
            &macvlan_network(net),
            &macvlan_attachment(ctr, att),
        )?;
        Ok(None)
    }

    fn assumed_host_links(&self, net: &NetworkRecord) -> Vec<(String, LinkFacts)> {
        let mut out = vec![(net.network_interface.clone(), LinkFacts::default())];
        if let Some(host) = facts::host_address(net) {
            out.push((
                facts::host_side_name(&net.id),
                LinkFacts {
                    up: true,
                    addrs: [facts::host_side_addr(host)].into_iter().collect(),
                },
            ));
        }
        out
    }

    fn record_options(&self, target: &TargetNetwork) -> BTreeMap<String, String> {
        let mut options = BTreeMap::new();
        options.insert(facts::OPTION_MODE.to_owned(), target.mode.to_string());
        if let Some(host) = target.host_address {
            options.insert(facts::OPTION_HOST_ADDRESS.to_owned(), host.to_string());
        }
        options
    }

    fn spec_of(&self, net: &NetworkRecord) -> NetworkSpec {
        NetworkSpec {
            driver: netctl_types::NetworkDriver::Macvlan,
            parent: Some(net.network_interface.clone()),
            mode: Some(facts::macvlan_mode(net)),
            host_address: facts::host_address(net),
            ..NetworkSpec::default()
        }
    }

    fn uses_firewall(&self) -> bool {
        false
    }

    fn uses_dns(&self) -> bool {
        false
    }
}

/// The parent of a network the plan creates, held to the target's MTU.
fn check_parent(
    sys: &dyn Sys,
    target: &TargetNetwork,
    parent: &str,
) -> std::result::Result<(), netctl_macvlan::MacvlanError> {
    let probe = MacvlanNetwork {
        name: target.name.clone(),
        parent: parent.to_owned(),
        mode: target.mode,
        subnets: Vec::new(),
        mtu: target.mtu,
        internal: target.internal,
        host_side: None,
    };
    netctl_macvlan::check_parent(sys, &probe).map(drop)
}

//! From records to the firewall's inputs, and the firewall health check.
//!
//! A container's published ports go to its primary attachment: the one whose interface sorts
//! first (`eth0`), as with podman where ports follow the first network.

use std::net::{IpAddr, SocketAddr};

use netctl_firewall::{FirewallState, FwContainer, FwNetwork, FwPort, HostIp};
use netctl_plan::Recorded;
use netctl_state::{AttachmentRecord, ContainerRecord, Isolate as RecIsolate, NetworkRecord};
use netctl_sys::NftFamily;
use netctl_types::{Isolate, PortMapping};

use crate::{Engine, EngineError, FirewallMode, Result};

/// Where aardvark-dns answers `net`'s containers: its gateways at the port of the server of
/// its front door (podman's networks are served by the server netavark mode started), when
/// that server runs and the network has DNS on.
fn dns_listen(rec: &Recorded, net: &NetworkRecord) -> Vec<SocketAddr> {
    if !net.dns_enabled {
        return Vec::new();
    }
    let podman = net.labels.contains_key(crate::podman::PODMAN_LABEL);
    let Some(server) = rec.dns_servers.iter().find(|s| s.podman == podman) else {
        return Vec::new();
    };
    crate::dns::gateways(net)
        .map(|gw| SocketAddr::new(gw, server.port))
        .collect()
}

pub(crate) fn fw_network(rec: &Recorded, net: &NetworkRecord) -> FwNetwork {
    FwNetwork {
        dns: dns_listen(rec, net),
        name: net.name.clone(),
        bridge: net.network_interface.clone(),
        subnets: net.subnets.iter().map(|s| s.subnet).collect(),
        internal: net.internal,
        isolate: match net.isolate {
            RecIsolate::Off => Isolate::Disabled,
            RecIsolate::On => Isolate::Enabled,
            RecIsolate::Strict => Isolate::Strict,
        },
        outbound: netctl_firewall::Outbound {
            v4: match net.outbound_addr(false) {
                Some(IpAddr::V4(a)) => Some(a),
                _ => None,
            },
            v6: match net.outbound_addr(true) {
                Some(IpAddr::V6(a)) => Some(a),
                _ => None,
            },
        },
    }
}

/// The recorded, normalised port mappings of a container.
pub(crate) fn ports_of(ctr: &ContainerRecord) -> Vec<PortMapping> {
    ctr.ports.decode().unwrap_or_default()
}

fn fw_port(p: &PortMapping) -> Option<FwPort> {
    let host_ip = if p.host_ip.is_empty() {
        HostIp::All
    } else {
        HostIp::from_addr(Some(p.host_ip.parse::<IpAddr>().ok()?))
    };
    Some(FwPort {
        host_ip,
        host_port: p.host_port,
        container_port: p.container_port,
        range: p.range.max(1),
        protocol: p.protocol.parse().ok()?,
    })
}

/// The primary attachment of a container: lowest interface name, ethN compared numerically.
pub(crate) fn primary<'r>(rec: &'r Recorded, container: &str) -> Option<&'r AttachmentRecord> {
    rec.attachments_of(container)
        .min_by_key(|a| interface_order(&a.interface))
}

/// Sort key for interface names: `ethN` by number, then anything else by name.
pub(crate) fn interface_order(name: &str) -> (u64, String) {
    let n = name
        .strip_prefix("eth")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    (n, name.to_owned())
}

/// The firewall elements of one container (its port forwards), if it publishes any.
pub(crate) fn fw_container(rec: &Recorded, ctr: &ContainerRecord) -> Option<FwContainer> {
    let ports: Vec<FwPort> = ports_of(ctr).iter().filter_map(fw_port).collect();
    if ports.is_empty() {
        return None;
    }
    let att = primary(rec, &ctr.name)?;
    // Ports are forwarded on firewalled networks only (validation refuses them elsewhere).
    if !rec
        .networks
        .get(&att.network)
        .is_some_and(|n| crate::driver::of(n).uses_firewall())
    {
        return None;
    }
    let ipv4 = att.addresses.iter().find_map(|a| match a.addr() {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    });
    let ipv6 = att.addresses.iter().find_map(|a| match a.addr() {
        IpAddr::V6(v6) => Some(v6),
        IpAddr::V4(_) => None,
    });
    Some(FwContainer {
        id: ctr.id.clone(),
        network: att.network.clone(),
        ipv4,
        ipv6,
        ports,
    })
}

/// The whole firewall state the records call for.
pub(crate) fn fw_state(rec: &Recorded) -> FirewallState {
    FirewallState {
        networks: crate::driver::firewalled(rec)
            .map(|net| fw_network(rec, net))
            .collect(),
        containers: rec
            .containers
            .values()
            .filter(|c| c.mode == netctl_state::NetworkMode::Bridge)
            .filter_map(|c| fw_container(rec, c))
            .collect(),
    }
}

/// Whether netctl's table is there with all its rules (a flushed table keeps its chains but
/// loses rules; a flushed ruleset loses the table). The rules are counted by the kernel: no
/// listing, so the check costs the same however many ports are published.
pub(crate) fn firewall_ok(engine: &Engine<'_>, rec: &Recorded) -> Result<bool> {
    if engine.cfg.firewall == FirewallMode::None || crate::driver::firewalled(rec).next().is_none()
    {
        return Ok(true);
    }
    let rules = engine
        .sys
        .nft_rule_count(NftFamily::Inet, netctl_firewall::TABLE_NAME)
        .map_err(|source| EngineError::Sys {
            what: "count the rules of nftables table inet netctl".into(),
            source: Box::new(source),
        })?;
    Ok(rules >= netctl_firewall::batch::base_rule_count())
}

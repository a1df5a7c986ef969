//! netavark's `setup` and `teardown`, for podman: the networks and per-network options podman
//! sends become records (podman's network ids, podman's addresses as static ones), so
//! `netctl show`, `inspect`, `plan` and `reload` know podman's containers too.
//!
//! Like `connect`, these act only on the container and networks named in the request, plan
//! against the records (no full observation) and verify only what they touched, so their cost
//! does not grow with the number of containers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use netctl_plan::Resource;
use netctl_state::StateRead as _;
use netctl_types::{
    AttachmentSpec, ContainerMode, ContainerSpec, DesiredState, IndexMap, Isolate, LeaseRangeSpec,
    MacAddr, NetAddress, NetInterface, NetnsSpec, Network, NetworkOptions, NetworkSpec, PortSpec,
    PortTable, Shown, StatusBlock, SubnetSpec,
};

use crate::exec::{Verify, desired_from_recorded, execute};
use crate::{Engine, EngineError, Result};

/// Marks a network netctl recorded because podman asked for it: like netavark, netctl removes
/// such a network's bridge and rules when its last container leaves (podman keeps the network
/// definition itself).
pub const PODMAN_LABEL: &str = "netctl.podman";

/// A podman network definition as a desired network.
fn network_spec(net: &Network) -> Result<NetworkSpec> {
    if net.driver == "macvlan" {
        return macvlan_spec(net);
    }
    if net.driver != "bridge" {
        return Err(EngineError::Invalid(format!(
            "network {}: driver {:?} is not supported (only bridge and macvlan)",
            net.name, net.driver
        )));
    }
    let bridge = net.network_interface.clone().ok_or_else(|| {
        EngineError::Invalid(format!(
            "network {}: no network_interface (bridge name)",
            net.name
        ))
    })?;
    let mtu = match net.options.get("mtu") {
        Some(m) if !m.is_empty() && m != "0" => Some(m.parse::<u32>().map_err(|_| {
            EngineError::Invalid(format!(
                "network {}: mtu option {m:?} is not a number",
                net.name
            ))
        })?),
        _ => None,
    };
    let isolate = match net.options.get("isolate").map(String::as_str) {
        None | Some("" | "false") => Isolate::Disabled,
        Some("true") => Isolate::Enabled,
        Some("strict") => Isolate::Strict,
        Some(other) => {
            return Err(EngineError::Invalid(format!(
                "network {}: isolate option {other:?} is not true, false or strict",
                net.name
            )));
        }
    };
    Ok(NetworkSpec {
        bridge: Some(bridge),
        subnets: net
            .subnets
            .iter()
            .map(|s| SubnetSpec {
                subnet: s.subnet.trunc(),
                gateway: s.gateway,
                lease_range: s.lease_range.as_ref().map(|r| LeaseRangeSpec {
                    start: r.start_ip,
                    end: r.end_ip,
                }),
            })
            .collect(),
        ipv6: net.ipv6_enabled,
        internal: net.internal,
        mtu,
        isolate,
        labels: {
            let mut labels = net.labels.clone();
            labels.insert(PODMAN_LABEL.to_owned(), "true".to_owned());
            labels
        },
        id: Some(net.id.clone()),
        // netavark mode does not drive aardvark-dns yet (podman's `dns_enabled` is recorded
        // as off, so podman's containers keep the host's servers).
        dns: Some(false),
        ..NetworkSpec::default()
    })
}

/// A podman macvlan network (`podman network create -d macvlan -o parent=... -o mode=...`) as
/// a desired network: `network_interface` is the parent (none: the default route's
/// interface), `options.mode` and `options.mtu` podman's; addresses come from podman (its
/// host-local IPAM) as static ones. DHCP needs a resident client netctl does not have.
fn macvlan_spec(net: &Network) -> Result<NetworkSpec> {
    if let Some(driver) = net.ipam_options.get("driver")
        && driver == "dhcp"
    {
        return Err(EngineError::Invalid(format!(
            "network {}: dhcp ipam driver is not supported by netctl; give the network a subnet so podman assigns addresses",
            net.name
        )));
    }
    let mode = match net.options.get("mode").map(String::as_str) {
        None | Some("") => None,
        Some(mode) => Some(
            netctl_types::MacvlanMode::parse(mode)
                .ok_or_else(|| EngineError::Invalid(format!("invalid macvlan mode {mode:?}")))?,
        ),
    };
    let bridge_only = ["isolate"];
    if let Some(key) = bridge_only.iter().find(|k| net.options.contains_key(**k)) {
        return Err(EngineError::Invalid(format!(
            "network {}: option {key} is not supported on a macvlan network",
            net.name
        )));
    }
    let mut bridge_like = Network {
        driver: "bridge".into(),
        network_interface: Some(String::new()),
        ..net.clone()
    };
    bridge_like.options.remove("mode");
    let base = network_spec(&bridge_like)?;
    Ok(NetworkSpec {
        driver: netctl_types::NetworkDriver::Macvlan,
        bridge: None,
        parent: net.network_interface.clone().filter(|p| !p.is_empty()),
        mode,
        ..base
    })
}

fn keep_step(resource: &Resource, container: &str, networks: &BTreeSet<String>) -> bool {
    match resource {
        Resource::Network { name } => networks.contains(name),
        Resource::Container { name } => name == container,
        Resource::Attachment {
            container: c,
            network,
        } => c == container && networks.contains(network),
        Resource::Firewall => false,
    }
}

/// The name a request's container is recorded under: podman's name, else its short id.
fn container_name(opts: &NetworkOptions) -> String {
    if opts.container_name.is_empty() {
        opts.container_id.chars().take(12).collect()
    } else {
        opts.container_name.clone()
    }
}

/// Checks a netavark setup request the way [`setup`] does before it reads or changes
/// anything; returns the request as a desired state. Pure: what fuzzing drives.
pub fn check_request(netns: &Path, opts: &NetworkOptions) -> Result<DesiredState> {
    requested_state(netns, opts, &container_name(opts)).map(|(state, _)| state)
}

/// What a netavark request asks for, as a desired state of its own: the requested networks
/// (podman's definitions) and the one container with its attachments and ports. Checked by the
/// same validator as a TOML file before anything is read or changed.
fn requested_state(
    netns: &Path,
    opts: &NetworkOptions,
    name: &str,
) -> Result<(DesiredState, BTreeSet<String>)> {
    if opts.networks.is_empty() {
        return Err(EngineError::Invalid("no networks given to set up".into()));
    }
    let mut state = DesiredState::default();
    let mut attachments = IndexMap::new();
    for (net_name, per) in opts.networks.iter() {
        let info = opts.network_info.get(net_name).ok_or_else(|| {
            EngineError::Invalid(format!(
                "network {} is missing from network_info",
                Shown(net_name)
            ))
        })?;
        state
            .networks
            .insert(net_name.to_owned(), network_spec(info)?);
        let mut ip = None;
        let mut ip6 = None;
        for addr in per.static_ips.iter().flatten() {
            match addr {
                IpAddr::V4(v4) => ip = Some(*v4),
                IpAddr::V6(v6) => ip6 = Some(*v6),
            }
        }
        attachments.insert(
            net_name.to_owned(),
            AttachmentSpec {
                ip,
                ip6,
                mac: per.static_mac,
                interface: Some(per.interface_name.clone()),
                aliases: per.aliases.clone().unwrap_or_default(),
            },
        );
    }
    let mut ports = Vec::new();
    for p in opts.port_mappings.iter().flatten() {
        let host_ip = if p.host_ip.is_empty() {
            None
        } else {
            Some(p.host_ip.parse().map_err(|_| {
                EngineError::Invalid(format!(
                    "port mapping host_ip {:?} is not an address",
                    p.host_ip
                ))
            })?)
        };
        // c/common may send a comma list of protocols; one mapping each.
        for proto in p.protocol.split(',').filter(|s| !s.is_empty()) {
            ports.push(PortSpec::Table(PortTable {
                host_ip,
                host_port: Some(p.host_port),
                container_port: p.container_port,
                range: p.range.max(1),
                protocol: proto
                    .parse()
                    .map_err(|_| EngineError::Invalid(format!("unknown protocol {proto:?}")))?,
            }));
        }
    }
    state.containers.insert(
        name.to_owned(),
        ContainerSpec {
            netns: NetnsSpec::Path(netns.to_path_buf()),
            mode: ContainerMode::Bridge,
            hostname: opts.container_hostname.clone(),
            id: Some(opts.container_id.clone()),
            networks: attachments,
            ports,
            ..ContainerSpec::default()
        },
    );
    let checked = netctl_validate::validate_state("netavark request", &state);
    if checked.has_errors() {
        return Err(EngineError::Invalid(format!(
            "invalid request: {}",
            checked.summary()
        )));
    }
    let wanted = state.networks.keys().cloned().collect();
    let valid = checked.state.expect("no errors, so a state").desired;
    Ok((valid, wanted))
}

/// netavark `setup NSPATH`: attaches the container to the requested networks and returns one
/// status block per network.
pub(crate) fn setup(
    engine: &Engine<'_>,
    netns: &Path,
    opts: &NetworkOptions,
) -> Result<BTreeMap<String, StatusBlock>> {
    let name = container_name(opts);
    let (mut request, wanted) = requested_state(netns, opts, &name)?;
    let started = std::time::Instant::now();
    let rec = crate::observe::recorded_for(engine.store, [&name])?;
    tracing::debug!(elapsed = ?started.elapsed(), "setup: records read");
    let desired = desired_from_recorded(&rec, &BTreeSet::new());
    attach_requested(engine, rec, desired, &mut request, &name, &wanted)?;
    tracing::debug!(elapsed = ?started.elapsed(), "setup: executed and verified");
    status_blocks(engine, &name, &wanted)
}

/// Adds a request (its networks, and its one container `name` with the attachments and ports
/// it asks for) to the recorded desired state, then plans and executes only the steps of that
/// container and the `wanted` networks: what netavark's setup and CNI's ADD share.
pub(crate) fn attach_requested(
    engine: &Engine<'_>,
    rec: netctl_plan::Recorded,
    mut desired: DesiredState,
    request: &mut DesiredState,
    name: &str,
    wanted: &BTreeSet<String>,
) -> Result<()> {
    for (net_name, spec) in std::mem::take(&mut request.networks) {
        // A recorded network keeps its record (podman does not change a network in place).
        desired.networks.entry(net_name).or_insert(spec);
    }
    let requested = request
        .containers
        .remove(name)
        .expect("the request holds its container");
    let spec = desired
        .containers
        .entry(name.to_owned())
        .or_insert_with(|| ContainerSpec {
            networks: IndexMap::new(),
            ports: Vec::new(),
            ..requested.clone()
        });
    spec.networks.extend(requested.networks);
    spec.ports = requested.ports;
    let observed = crate::observe::assumed(engine, &rec)?;
    let mut plan = netctl_plan::plan(&desired, &rec, &observed, &engine.cfg.defaults, false);
    plan.steps.retain(|s| keep_step(&s.resource, name, wanted));
    plan.drift.clear();
    execute(engine, plan, rec, None, Verify::Touched)?;
    Ok(())
}

/// The status podman expects, from the records.
fn status_blocks(
    engine: &Engine<'_>,
    container: &str,
    networks: &BTreeSet<String>,
) -> Result<BTreeMap<String, StatusBlock>> {
    let read = engine.store.read()?;
    let mut out = BTreeMap::new();
    for net_name in networks {
        let net = read
            .network(net_name)?
            .ok_or_else(|| EngineError::Invalid(format!("network {net_name} is not recorded")))?;
        let att = read.attachment(container, net_name)?.ok_or_else(|| {
            EngineError::Invalid(format!("{container} is not attached to {net_name}"))
        })?;
        let subnets = att
            .addresses
            .iter()
            .map(|a| NetAddress {
                ipnet: *a,
                gateway: net
                    .subnets
                    .iter()
                    .find(|s| s.subnet.contains(&a.addr()))
                    .and_then(|s| s.gateway),
            })
            .collect();
        let mut interfaces = BTreeMap::new();
        interfaces.insert(
            att.interface.clone(),
            NetInterface {
                subnets,
                mac_address: MacAddr::from(att.mac.octets()),
            },
        );
        out.insert(
            net_name.clone(),
            StatusBlock {
                interfaces,
                dns_server_ips: Some(Vec::new()),
                dns_search_domains: Some(Vec::new()),
            },
        );
    }
    Ok(out)
}

/// netavark `teardown NSPATH`: detaches the container from the requested networks; when none
/// is left, the container is forgotten. Works when the namespace is already gone.
pub(crate) fn teardown(engine: &Engine<'_>, opts: &NetworkOptions) -> Result<()> {
    // By name first (a keyed lookup), by id only if that fails (a scan).
    let read = engine.store.read()?;
    let by_name = read
        .container(&opts.container_name)?
        .filter(|c| c.id == opts.container_id);
    let found = match by_name {
        Some(ctr) => Some(ctr),
        None => read.find_container(&opts.container_id).ok(),
    };
    drop(read);
    let Some(ctr) = found else {
        // Nothing recorded: nothing of ours to take down (podman may retry a teardown).
        return Ok(());
    };
    let rec = crate::observe::recorded_for(engine.store, [&ctr.name])?;
    let wanted: BTreeSet<String> = opts.networks.names().map(ToOwned::to_owned).collect();
    let mut desired = desired_from_recorded(&rec, &BTreeSet::new());
    let spec = desired
        .containers
        .get_mut(&ctr.name)
        .expect("recorded container is desired");
    spec.networks.retain(|n, _| !wanted.contains(n));
    if spec.networks.is_empty() {
        desired.containers.remove(&ctr.name);
    }
    // Networks podman brought that are left without containers go too (netavark's "complete
    // teardown" of a network when its last container leaves).
    let mut dropped = BTreeSet::new();
    for name in &wanted {
        let podman_made = rec
            .networks
            .get(name)
            .is_some_and(|n| n.labels.contains_key(PODMAN_LABEL));
        // Other containers are not in this call's scope: ask the store who is attached.
        let in_use = desired
            .containers
            .values()
            .any(|c| c.networks.contains_key(name))
            || engine
                .store
                .read()?
                .network_attachments(name)?
                .iter()
                .any(|a| a.container != ctr.name);
        if podman_made && !in_use {
            desired.networks.remove(name);
            dropped.insert(name.clone());
        }
    }
    let observed = crate::observe::assumed(engine, &rec)?;
    let mut plan = netctl_plan::plan(&desired, &rec, &observed, &engine.cfg.defaults, true);
    plan.steps.retain(|s| match &s.resource {
        Resource::Container { name } => *name == ctr.name,
        Resource::Attachment { container, network } => {
            *container == ctr.name && wanted.contains(network)
        }
        Resource::Network { name } => dropped.contains(name),
        Resource::Firewall => false,
    });
    plan.drift.clear();
    execute(engine, plan, rec, None, Verify::Touched)?;
    Ok(())
}

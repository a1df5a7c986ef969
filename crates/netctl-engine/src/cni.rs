//! The CNI plugin's operations on the engine: ADD, DEL, CHECK, GC and STATUS.
//!
//! A CNI container is an ordinary record, named by `CNI_CONTAINERID`, its namespace given by
//! path, one attachment per `(network, CNI_IFNAME)`; `show`, `inspect`, `reload`, drift and
//! `destroy` cover it. Like netavark's setup/teardown (`podman.rs`), each call plans against the
//! records of its one container and verifies only what it touched, so its cost does not grow
//! with the number of containers.
//!
//! Ownership is recorded, not guessed: a CNI container's id is derived from its
//! `CNI_CONTAINERID` ([`cni_container_id`]), so DEL and GC never take down a container that a
//! file or podman declared under the same name.

use std::collections::BTreeSet;
use std::net::IpAddr;

use netctl_cni::{AddResult, CniError, Dns, Interface, IpConfig, NetworkRef, Request, Route, code};
use netctl_plan::Resource;
use netctl_state::{AttachmentRecord, StateRead as _};
use netctl_types::{
    AttachmentSpec, ContainerMode, ContainerSpec, DesiredState, IndexMap, NetnsSpec, NetworkSpec,
    PortSpec,
};

use crate::exec::{Verify, desired_from_recorded, execute};
use crate::{Engine, EngineError, Result};

/// Marks a network netctl recorded from a CNI plugin config's inline definition.
pub const CNI_LABEL: &str = "netctl.cni";

/// The id netctl records for the CNI container `container_id`: derived, so a record is known
/// to be a CNI runtime's without a field of its own.
pub fn cni_container_id(container_id: &str) -> String {
    netctl_state::sha256_hex(format!("netctl cni container {container_id}").as_bytes())
}

fn refused(code: u32, msg: String) -> EngineError {
    EngineError::Cni(CniError::new(code, msg))
}

/// The netctl network a request names: the `network` string, else the conflist's `name`.
fn network_name(req: &Request) -> &str {
    match &req.network {
        NetworkRef::Named(name) => name,
        NetworkRef::Inline { .. } => &req.name,
    }
}

/// The keys of an inline definition whose values differ from the recorded network's.
fn differing_keys(
    given: &NetworkSpec,
    keys: &BTreeSet<String>,
    recorded: &NetworkSpec,
) -> Vec<String> {
    let g = serde_json::to_value(given).expect("a network spec serialises");
    let r = serde_json::to_value(recorded).expect("a network spec serialises");
    let mut out = Vec::new();
    for key in keys {
        let same = if key == "subnets" {
            // Only what was given counts: a gateway or lease range left out was chosen.
            given.subnets.len() == recorded.subnets.len()
                && given.subnets.iter().zip(&recorded.subnets).all(|(g, r)| {
                    g.subnet.trunc() == r.subnet
                        && g.gateway.is_none_or(|gw| r.gateway == Some(gw))
                        && (g.lease_range.is_none() || g.lease_range == r.lease_range)
                })
        } else {
            g.get(key) == r.get(key)
        };
        if !same {
            out.push(format!(
                "{key} (recorded {}, requested {})",
                r.get(key)
                    .map_or_else(|| "none".to_owned(), ToString::to_string),
                g.get(key)
                    .map_or_else(|| "none".to_owned(), ToString::to_string)
            ));
        }
    }
    out
}

/// A hostname for the container: the pod's name when it is one, else the container id cut to
/// a DNS label.
fn hostname(req: &Request) -> String {
    if let Some(pod) = &req.args.pod_name
        && netctl_types::is_valid_hostname(pod)
    {
        return pod.clone();
    }
    let label: String = req
        .container_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(netctl_types::MAX_HOSTNAME_LEN.min(63))
        .collect();
    let label = label.trim_matches('-');
    if label.is_empty() {
        "cni".to_owned()
    } else {
        label.to_owned()
    }
}

/// CNI ADD: attaches the container to the network and returns the result.
pub(crate) fn add(engine: &Engine<'_>, req: &Request) -> Result<AddResult> {
    let name = &req.container_id;
    let net_name = network_name(req).to_owned();
    let netns = req
        .netns
        .clone()
        .expect("ADD has a namespace (checked when parsing)");
    if !netns.exists() {
        return Err(refused(
            code::INVALID_ENV,
            format!("CNI_NETNS {} does not exist", netns.display()),
        ));
    }
    let rec = crate::observe::recorded_for(engine.store, [name])?;
    let desired = desired_from_recorded(&rec, &BTreeSet::new());
    let net_spec = match (&req.network, desired.networks.get(&net_name)) {
        (NetworkRef::Named(n), None) => {
            return Err(refused(
                code::INVALID_CONFIG,
                format!(
                    "network {n} is not recorded: declare it in a netctl file and apply it, or \
                     give an inline definition (\"network\": {{\"subnets\": ...}})"
                ),
            ));
        }
        (NetworkRef::Inline { spec, keys }, Some(recorded)) => {
            let differ = differing_keys(spec, keys, recorded);
            if !differ.is_empty() {
                return Err(refused(
                    code::INVALID_CONFIG,
                    format!(
                        "network {net_name} is recorded with a different definition: {}",
                        differ.join(", ")
                    ),
                ));
            }
            recorded.clone()
        }
        (NetworkRef::Inline { spec, .. }, None) => {
            let mut spec = spec.clone();
            spec.labels.insert(CNI_LABEL.to_owned(), "true".to_owned());
            spec
        }
        (NetworkRef::Named(_), Some(recorded)) => recorded.clone(),
    };
    if let Some(ctr) = rec.containers.get(name) {
        if ctr.id != cni_container_id(name) {
            return Err(refused(
                code::INVALID_CONFIG,
                format!(
                    "container {name} is recorded by netctl but was not attached through CNI \
                     (a file or podman declared it)"
                ),
            ));
        }
        if let Some(att) = rec
            .attachments_of(name)
            .find(|a| a.interface == req.ifname || a.network == net_name)
        {
            return Err(refused(
                code::ALREADY_ATTACHED,
                format!(
                    "container {name} already has interface {} on network {}",
                    att.interface, att.network
                ),
            ));
        }
        if ctr.netns.path != netns {
            return Err(refused(
                code::INVALID_CONFIG,
                format!(
                    "container {name} is recorded in namespace {}, not {}",
                    ctr.netns.path.display(),
                    netns.display()
                ),
            ));
        }
    }
    let (mut ip, mut ip6) = (None, None);
    for addr in req.static_ips() {
        let slot_taken = match addr {
            IpAddr::V4(v4) => ip.replace(v4).is_some(),
            IpAddr::V6(v6) => ip6.replace(v6).is_some(),
        };
        if slot_taken {
            return Err(refused(
                code::INVALID_CONFIG,
                format!("more than one static address of {addr}'s family was requested"),
            ));
        }
    }
    let requested = ContainerSpec {
        netns: NetnsSpec::Path(netns.clone()),
        mode: ContainerMode::Bridge,
        hostname: Some(hostname(req)),
        id: Some(cni_container_id(name)),
        networks: IndexMap::from([(
            net_name.clone(),
            AttachmentSpec {
                ip,
                ip6,
                mac: req.runtime.mac,
                interface: Some(req.ifname.clone()),
                aliases: req.runtime.aliases.clone(),
                host_interface: None,
            },
        )]),
        ports: req
            .runtime
            .ports
            .iter()
            .cloned()
            .map(PortSpec::Table)
            .collect(),
        ..ContainerSpec::default()
    };
    // The same rules as a TOML file, before anything is changed.
    let mut check = DesiredState::default();
    check.networks.insert(net_name.clone(), net_spec);
    check.containers.insert(name.clone(), requested);
    let checked = netctl_validate::validate_state("CNI request", &check);
    if checked.has_errors() {
        return Err(refused(
            code::INVALID_CONFIG,
            format!("invalid request: {}", checked.summary()),
        ));
    }
    let mut request = checked.state.expect("no errors, so a state").desired;
    // Ports belong to the container: those of its other attachments stay.
    if let (Some(recorded), Some(requested)) = (
        desired.containers.get(name),
        request.containers.get_mut(name),
    ) {
        let added = std::mem::take(&mut requested.ports);
        requested.ports = recorded.ports.iter().cloned().chain(added).collect();
    }
    let wanted = BTreeSet::from([net_name.clone()]);
    crate::podman::attach_requested(engine, rec, desired, &mut request, name, &wanted)?;
    result(engine, name, &net_name, &netns.display().to_string())
}

/// The ADD result from the records: the interfaces (for a bridge network the bridge and the
/// host veth before the container's), the container's addresses with their gateways and,
/// unless the network is internal, default routes.
fn result(
    engine: &Engine<'_>,
    container: &str,
    net_name: &str,
    sandbox: &str,
) -> Result<AddResult> {
    let read = engine.store.read()?;
    let missing = |what: &str| EngineError::Invalid(format!("{what} is not recorded after ADD"));
    let net = read
        .network(net_name)?
        .ok_or_else(|| missing("the network"))?;
    let ctr = read
        .container(container)?
        .ok_or_else(|| missing("the container"))?;
    let att = read
        .attachment(container, net_name)?
        .ok_or_else(|| missing("the attachment"))?;
    drop(read);
    let container_iface = Interface {
        name: att.interface.clone(),
        mac: Some(att.mac.to_string()),
        mtu: net.mtu,
        sandbox: Some(sandbox.to_owned()),
    };
    // A bridge network has two host-side interfaces before the container's (the bridge and
    // the host veth, as the reference `bridge` plugin lists them); a macvlan network has none
    // (as the reference `macvlan` plugin: its parent is not the plugin's to report).
    let interfaces = match net.driver {
        netctl_state::NetworkDriver::Bridge => {
            let bridge_mac = engine
                .sys
                .link(&netctl_sys::NsRef::Host, &net.network_interface)
                .ok()
                .flatten()
                .and_then(|l| l.mac)
                .map(|m| m.to_string());
            vec![
                Interface {
                    name: net.network_interface.clone(),
                    mac: bridge_mac,
                    mtu: None,
                    sandbox: None,
                },
                Interface {
                    name: netctl_plan::veth_name(&ctr.id, &net.id),
                    mac: None,
                    mtu: None,
                    sandbox: None,
                },
                container_iface,
            ]
        }
        netctl_state::NetworkDriver::Macvlan => vec![container_iface],
    };
    let container_index = interfaces.len() - 1;
    let mut out = AddResult {
        interfaces,
        dns: Dns::default(),
        ..AddResult::default()
    };
    for addr in &att.addresses {
        let gateway = net.subnet_of(addr.addr()).and_then(|s| s.gateway);
        out.ips.push(IpConfig {
            address: *addr,
            gateway,
            interface: Some(container_index),
        });
        if let Some(gw) = gateway
            && !net.internal
        {
            let dst = if gw.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
            out.routes.push(Route {
                dst: dst.parse().expect("a default route"),
                gw: Some(gw),
            });
        }
    }
    Ok(out)
}

/// The container's attachment with interface `ifname`, if the container is a CNI one.
fn cni_attachment(
    engine: &Engine<'_>,
    container: &str,
    ifname: &str,
) -> Result<Option<AttachmentRecord>> {
    let read = engine.store.read()?;
    let Some(ctr) = read.container(container)? else {
        return Ok(None);
    };
    if ctr.id != cni_container_id(container) {
        tracing::warn!(
            "container {container} was not attached through CNI; a CNI call leaves it alone"
        );
        return Ok(None);
    }
    Ok(read
        .container_attachments(container)?
        .into_iter()
        .find(|a| a.interface == ifname))
}

/// Takes one attachment down (host veth, firewall elements, lease, records); the container's
/// record goes with its last attachment. Works when the namespace is gone.
fn detach(engine: &Engine<'_>, container: &str, network: &str) -> Result<()> {
    let name = container.to_owned();
    let rec = crate::observe::recorded_for(engine.store, [&name])?;
    let mut desired = desired_from_recorded(&rec, &BTreeSet::new());
    if let Some(spec) = desired.containers.get_mut(container) {
        spec.networks.shift_remove(network);
        if spec.networks.is_empty() {
            desired.containers.remove(container);
        }
    }
    let observed = crate::observe::assumed(engine, &rec)?;
    let mut plan = netctl_plan::plan(&desired, &rec, &observed, &engine.cfg.defaults, true);
    plan.steps.retain(|s| match &s.resource {
        Resource::Container { name } => name == container,
        Resource::Attachment {
            container: c,
            network: n,
        } => c == container && n == network,
        Resource::Network { .. } | Resource::Firewall => false,
    });
    plan.drift.clear();
    execute(engine, plan, rec, None, Verify::Touched)?;
    Ok(())
}

/// CNI DEL: idempotent; succeeds whatever is already gone (namespace, interface, records).
pub(crate) fn del(engine: &Engine<'_>, req: &Request) -> Result<()> {
    match cni_attachment(engine, &req.container_id, &req.ifname)? {
        Some(att) => detach(engine, &req.container_id, &att.network),
        None => Ok(()),
    }
}

/// CNI CHECK: the result of ADD, netctl's records and the kernel must agree; every difference is
/// listed.
pub(crate) fn check(engine: &Engine<'_>, req: &Request) -> Result<()> {
    let name = &req.container_id;
    let att = cni_attachment(engine, name, &req.ifname)?.ok_or_else(|| {
        refused(
            code::UNKNOWN_CONTAINER,
            format!(
                "container {name} has no interface {} recorded by netctl",
                req.ifname
            ),
        )
    })?;
    let mut problems = Vec::new();
    if att.network != network_name(req) {
        problems.push(format!(
            "{} is on network {}, not {}",
            att.interface,
            att.network,
            network_name(req)
        ));
    }
    if let Some(prev) = &req.prev_result {
        let index = prev
            .interfaces
            .iter()
            .position(|i| i.name == att.interface && i.sandbox.is_some());
        match index.map(|i| &prev.interfaces[i]) {
            None => problems.push(format!("the result lists no interface {}", att.interface)),
            Some(iface) => {
                let recorded = att.mac.to_string();
                if !iface
                    .mac
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(&recorded))
                {
                    problems.push(format!(
                        "the result gives {} MAC {}, netctl recorded {recorded}",
                        att.interface,
                        iface.mac.as_deref().unwrap_or("none")
                    ));
                }
            }
        }
        let given: BTreeSet<_> = prev
            .ips
            .iter()
            .filter(|ip| ip.interface.is_none() || ip.interface == index)
            .map(|ip| ip.address)
            .collect();
        let recorded: BTreeSet<_> = att.addresses.iter().copied().collect();
        for addr in given.difference(&recorded) {
            problems.push(format!(
                "{addr} is in the result but not recorded for {}",
                att.interface
            ));
        }
        for addr in recorded.difference(&given) {
            problems.push(format!(
                "{addr} is recorded for {} but not in the result",
                att.interface
            ));
        }
    }
    let rec = crate::observe::recorded_for(engine.store, [name])?;
    let observed = crate::observe::observe(engine, &rec)?;
    let desired = desired_from_recorded(&rec, &BTreeSet::new());
    let plan = netctl_plan::plan(&desired, &rec, &observed, &engine.cfg.defaults, false);
    for drift in plan.drift {
        let ours = match &drift.resource {
            Resource::Container { name: c } => c == name,
            Resource::Attachment { container, network } => {
                container == name && *network == att.network
            }
            Resource::Network { name: n } => *n == att.network,
            // Table-level (rules present), so another container's state cannot show here.
            Resource::Firewall => true,
        };
        if ours {
            problems.push(format!("{}: {}", drift.resource, drift.what));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Cni(
            CniError::new(
                code::CHECK_FAILED,
                format!("container {name} is not as ADD left it"),
            )
            .with_details(problems.join("; ")),
        ))
    }
}

/// CNI GC: every CNI attachment of the network that is not in `cni.dev/valid-attachments` is
/// taken down; failures do not stop the others and are all reported.
pub(crate) fn gc(engine: &Engine<'_>, req: &Request) -> Result<Vec<String>> {
    let net_name = network_name(req);
    let valid: BTreeSet<(&str, &str)> = req
        .valid_attachments
        .iter()
        .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
        .collect();
    let read = engine.store.read()?;
    let mut stale = Vec::new();
    for att in read.network_attachments(net_name)? {
        let is_cni = read
            .container(&att.container)?
            .is_some_and(|c| c.id == cni_container_id(&att.container));
        if is_cni && !valid.contains(&(att.container.as_str(), att.interface.as_str())) {
            stale.push(att);
        }
    }
    drop(read);
    let mut errors = Vec::new();
    let mut released = Vec::new();
    for att in stale {
        match detach(engine, &att.container, &att.network) {
            Ok(()) => released.push(format!("{} {}", att.container, att.interface)),
            Err(e) => errors.push(format!(
                "{} {}: {}",
                att.container,
                att.interface,
                netctl_types::error_chain(&e)
            )),
        }
    }
    if errors.is_empty() {
        Ok(released)
    } else {
        Err(EngineError::Cni(
            CniError::new(
                code::GC_FAILED,
                format!(
                    "GC released {} attachments of network {net_name}; {} failed",
                    released.len(),
                    errors.len()
                ),
            )
            .with_details(errors.join("; ")),
        ))
    }
}

/// CNI STATUS: the store is open (the caller holds the lock) and the firewall can be asked.
pub(crate) fn status(engine: &Engine<'_>) -> Result<()> {
    engine.store.read()?;
    if engine.cfg.firewall == crate::FirewallMode::Nftables {
        engine
            .sys
            .nft_rule_count(netctl_sys::NftFamily::Inet, netctl_firewall::TABLE_NAME)
            .map_err(|e| {
                refused(
                    code::NOT_AVAILABLE,
                    format!("nftables is not usable: {}", netctl_types::error_chain(&e)),
                )
            })?;
    }
    Ok(())
}

//! Plan-time checks against the host: what a plan would create must not already be taken by
//! something netctl did not make. Only what the plan creates is looked at (a converged apply
//! asks nothing), each by name: a bridge name on the host, a managed namespace's file, an
//! interface name inside a namespace that already exists.
//!
//! Ownership is read from netctl's marks, never guessed: a bridge is netctl's when it carries
//! its alias (or, right after creation, its derived MAC, see `BridgeNetwork::owns`); a
//! namespace file is netctl's when its container is recorded, or when it is the empty mount
//! point an interrupted creation left (see `netctl_sys::Namespaces::create_named`).

use std::fmt::Write as _;

use ipnet::IpNet;
use netctl_plan::{Action, Conflict, Plan, Recorded, Resource};
use netctl_sys::{Link, Listening, NsRef};
use netctl_types::PortMapping;

use crate::exec::sys_err;
use crate::{Engine, PortInUse, Result};

/// Everything in `plan`'s way, as conflicts (empty when nothing is).
pub(crate) fn find(engine: &Engine<'_>, plan: &Plan, rec: &Recorded) -> Result<Vec<Conflict>> {
    let mut out = Vec::new();
    for step in &plan.steps {
        if !matches!(step.action, Action::Create | Action::Replace) {
            continue;
        }
        let what = match &step.resource {
            Resource::Network { name } => match plan.target.networks.get(name) {
                Some(net) if !net.external => {
                    crate::driver::for_target(net).host_conflict(engine, plan, rec, name)?
                }
                _ => None,
            },
            Resource::Container { name } => netns_taken(engine, plan, rec, name)?,
            Resource::Attachment { container, network } => {
                match interface_taken(engine, plan, rec, container, network)? {
                    None => match host_interface_taken(engine, plan, rec, container, network)? {
                        // `connect` may make the attachment the container's first interface.
                        None => ports_unforwardable(plan, rec, container),
                        taken => taken,
                    },
                    taken => taken,
                }
            }
            Resource::Firewall => None,
        };
        if let Some(what) = what {
            out.push(Conflict {
                resource: step.resource.clone(),
                what,
            });
        }
    }
    Ok(out)
}

fn describe_link(link: &Link) -> String {
    match &link.alias {
        Some(alias) => format!("a {} link with alias {alias:?}", link.kind),
        None => format!("a {} link", link.kind),
    }
}

/// The bridge name the plan gives network `name`, if it names one.
fn target_bridge(plan: &Plan, name: &str) -> Option<String> {
    plan.target.networks.get(name)?.bridge.clone()
}

/// The host's link called `name`, if any.
fn host_link(engine: &Engine<'_>, name: &str) -> Result<Option<Link>> {
    engine
        .sys
        .link(&NsRef::Host, name)
        .map_err(sys_err(format!("look up {name}")))
}

/// A network's bridge name held by a link that is not this network's bridge.
pub(crate) fn bridge_taken(
    engine: &Engine<'_>,
    plan: &Plan,
    rec: &Recorded,
    name: &str,
) -> Result<Option<String>> {
    let Some(bridge) = target_bridge(plan, name) else {
        return Ok(None);
    };
    // Still this network's recorded bridge (a replace for other reasons): it is ours.
    if rec
        .networks
        .get(name)
        .is_some_and(|r| r.network_interface == bridge)
    {
        return Ok(None);
    }
    let Some(link) = host_link(engine, &bridge)? else {
        return Ok(None);
    };
    // netctl's bridge for a network of this name (left by an earlier store, or made by this
    // network before a replace) carries its mark.
    let probe = netctl_bridge::BridgeNetwork {
        name: name.to_owned(),
        id: plan.target.networks[name].id.clone().unwrap_or_default(),
        bridge: bridge.clone(),
        subnets: Vec::new(),
        mtu: None,
        internal: false,
        unmanaged: false,
    };
    if probe.owns(&link) {
        return Ok(None);
    }
    Ok(Some(format!(
        "bridge name {bridge} is taken by {} that netctl did not make; choose another `bridge`, or remove that link if it is a leftover (ip link del {bridge})",
        describe_link(&link)
    )))
}

/// A borrowed bridge (`mode=unmanaged`) that is not there to borrow: missing, no bridge, or
/// one netctl made for a network of its own.
pub(crate) fn bridge_not_borrowable(
    engine: &Engine<'_>,
    plan: &Plan,
    name: &str,
) -> Result<Option<String>> {
    let Some(bridge) = target_bridge(plan, name) else {
        return Ok(None);
    };
    let link = host_link(engine, &bridge)?;
    Ok(
        netctl_bridge::borrow_problem(&bridge, link.as_ref()).map(|problem| {
            format!("in unmanaged mode, the bridge must already exist on the host: {problem}")
        }),
    )
}

/// A managed namespace's file already there and not netctl's.
fn netns_taken(
    engine: &Engine<'_>,
    plan: &Plan,
    rec: &Recorded,
    name: &str,
) -> Result<Option<String>> {
    let Some(target) = plan.target.containers.get(name) else {
        return Ok(None);
    };
    if !target.managed
        || rec
            .containers
            .get(name)
            .is_some_and(|r| r.netns.path == target.netns)
    {
        return Ok(None);
    }
    let path = &target.netns;
    let Ok(meta) = path.symlink_metadata() else {
        return Ok(None);
    };
    let is_ns = engine
        .sys
        .is_netns(path)
        .map_err(sys_err(format!("check namespace {}", path.display())))?;
    let what = if is_ns {
        format!(
            "{} is already a network namespace that netctl did not make; to configure it, give its path (netns = \"{}\"), or remove it (ip netns del {name})",
            path.display(),
            path.display()
        )
    } else if is_leftover_mount_point(&meta) {
        return Ok(None);
    } else {
        format!(
            "{} is taken by a file that is not a network namespace; remove it",
            path.display()
        )
    };
    Ok(Some(what))
}

/// The empty, mode-0 file an interrupted namespace creation leaves (netctl reuses it).
fn is_leftover_mount_point(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    meta.file_type().is_file()
        && meta.len() == 0
        && permission_bits(meta.mode()) == 0
        && meta.uid() == nix::unistd::geteuid().as_raw()
}

/// An interface name taken inside a namespace that already exists (an external namespace's
/// own `eth0`, say): netctl would fail to create its veth there, and must never delete that
/// link on the way back.
fn interface_taken(
    engine: &Engine<'_>,
    plan: &Plan,
    rec: &Recorded,
    container: &str,
    network: &str,
) -> Result<Option<String>> {
    let Some(target) = plan.target.containers.get(container) else {
        return Ok(None);
    };
    let Some(att) = target.attachments.get(network) else {
        return Ok(None);
    };
    // A namespace this run creates is empty.
    let recorded_ns = rec
        .containers
        .get(container)
        .is_some_and(|r| r.netns.path == target.netns);
    if target.managed && !recorded_ns {
        return Ok(None);
    }
    // Not (or no longer) a namespace, say the empty mount point a killed run left: nothing
    // can be in the way inside it.
    let is_ns = engine.sys.is_netns(&target.netns).map_err(sys_err(format!(
        "check namespace {}",
        target.netns.display()
    )))?;
    if !is_ns {
        return Ok(None);
    }
    let ns = NsRef::path(target.netns.clone());
    let taken = engine
        .sys
        .link_index(&ns, &att.interface)
        .map_err(sys_err(format!(
            "look up {} in {}",
            att.interface,
            target.netns.display()
        )))?
        .is_some();
    // An interface of one of the container's recorded attachments is netctl's own.
    let ours = rec
        .attachments_of(container)
        .any(|a| a.interface == att.interface);
    Ok((taken && !ours).then(|| {
        format!(
            "interface {} already exists in {}, and netctl did not make it; choose another `interface`",
            att.interface,
            target.netns.display()
        )
    }))
}

/// A declared host veth name (`host_interface`, netavark's `host_interface_name`) held by a
/// link on the host that is not this attachment's: another container's veth, or anything else.
fn host_interface_taken(
    engine: &Engine<'_>,
    plan: &Plan,
    rec: &Recorded,
    container: &str,
    network: &str,
) -> Result<Option<String>> {
    let Some(name) = plan
        .target
        .containers
        .get(container)
        .and_then(|c| c.attachments.get(network))
        .and_then(|a| a.host_interface.as_ref())
    else {
        return Ok(None);
    };
    let ours = rec
        .attachments
        .get(&(container.to_owned(), network.to_owned()))
        .is_some_and(|a| a.host_interface.as_ref() == Some(name));
    let taken = host_link(engine, name)?;
    Ok(taken.filter(|_| !ours).map(|link| {
        format!(
            "host interface name {name} is already in use ({}); choose another `host_interface`",
            describe_link(&link)
        )
    }))
}

/// The permission bits of a file mode (what `chmod` sets).
fn permission_bits(mode: u32) -> u32 {
    mode & 0o7777
}

/// The checks a declarative apply adds (podman and CNI do their own): names other projects
/// own, external networks that do not exist, subnets already used on the host or by another
/// project's network, host ports another project's container publishes or a host socket
/// listens on, ports published through an external network without a firewall. `rec` is
/// every record, whatever the project.
pub(crate) fn find_declarative(
    engine: &Engine<'_>,
    plan: &Plan,
    rec: &Recorded,
) -> Result<Vec<Conflict>> {
    let mut out = Vec::new();
    let mut conflict = |resource: Resource, what: String| out.push(Conflict { resource, what });
    for (name, net) in &plan.target.networks {
        let resource = Resource::Network { name: name.clone() };
        let recorded = rec.networks.get(name);
        if net.external {
            if recorded.is_none() {
                conflict(
                    resource,
                    "it is declared external but does not exist; apply the project that declares it first"
                        .to_owned(),
                );
            }
            continue;
        }
        if let Some(theirs) = recorded.and_then(|r| r.project.as_ref())
            && net.project.as_ref().is_some_and(|p| p != theirs)
            && !net.is_default
        {
            conflict(
                resource,
                format!(
                    "it belongs to project {theirs}; to use it here, declare it with `external = true`"
                ),
            );
        }
    }
    for (name, ctr) in &plan.target.containers {
        if let Some(theirs) = rec.containers.get(name).and_then(|r| r.project.as_ref())
            && ctr.project.as_ref().is_some_and(|p| p != theirs)
        {
            conflict(
                Resource::Container { name: name.clone() },
                format!("the name belongs to a container of project {theirs}"),
            );
        }
    }
    let host = host_networks(engine, plan, rec)?;
    let mut listening: Option<Vec<Listening>> = None;
    for step in &plan.steps {
        match (&step.resource, step.action) {
            (Resource::Network { name }, Action::Create | Action::Replace) => {
                for what in subnet_conflicts(plan, rec, &host, name) {
                    conflict(step.resource.clone(), what);
                }
            }
            (Resource::Container { name }, Action::Create | Action::Update | Action::Replace) => {
                if let Some(what) = ports_unforwardable(plan, rec, name) {
                    conflict(step.resource.clone(), what);
                }
                for what in port_conflicts(engine, plan, rec, name, &mut listening)? {
                    conflict(step.resource.clone(), what);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// What the host's own interfaces use: each address with the link it is on, and each route
/// (but the default ones) with its device. netctl's bridges are left out: their subnets are
/// recorded networks, checked as such.
fn host_networks(engine: &Engine<'_>, plan: &Plan, rec: &Recorded) -> Result<Vec<(IpNet, String)>> {
    let creates_subnets = plan.steps.iter().any(|s| {
        matches!((&s.resource, s.action), (Resource::Network { name }, Action::Create | Action::Replace)
            if plan.target.networks.get(name).is_some_and(|n| n.subnets.is_some()))
    });
    if !creates_subnets {
        return Ok(Vec::new());
    }
    // A macvlan network's parent is the host's own: its addresses count.
    let ours: std::collections::BTreeSet<&str> = crate::driver::firewalled(rec)
        .map(|n| n.network_interface.as_str())
        .collect();
    let host = NsRef::Host;
    let mut out: Vec<(IpNet, String)> = engine
        .sys
        .addrs(&host)
        .map_err(sys_err("list host addresses"))?
        .into_iter()
        .filter(|a| !ours.contains(a.link_name.as_str()))
        .map(|a| (a.net, format!("address {} on {}", a.net, a.link_name)))
        .collect();
    for route in engine
        .sys
        .routes(&host)
        .map_err(sys_err("list host routes"))?
    {
        if route.dst.prefix_len() == 0 || route.dev.as_deref().is_some_and(|d| ours.contains(d)) {
            continue;
        }
        out.push((route.dst, format!("route {route}")));
    }
    Ok(out)
}

fn overlap(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// A new network's declared subnets against other networks (any project) and the host.
fn subnet_conflicts(
    plan: &Plan,
    rec: &Recorded,
    host: &[(IpNet, String)],
    name: &str,
) -> Vec<String> {
    let Some(subnets) = plan
        .target
        .networks
        .get(name)
        .and_then(|n| n.subnets.clone())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for subnet in subnets.iter().map(|s| s.subnet) {
        for other in rec.networks.values().filter(|n| n.name != name) {
            for theirs in other.subnets.iter().map(|s| s.subnet) {
                if overlap(subnet, theirs) {
                    out.push(format!(
                        "subnet {subnet} overlaps subnet {theirs} of network {}{}",
                        other.name,
                        of_project(other.project.as_deref())
                    ));
                }
            }
        }
        let shares_host = plan
            .target
            .networks
            .get(name)
            .is_some_and(|n| crate::driver::for_target(n).shares_host_subnets());
        if !shares_host
            && let Some((_, what)) = host.iter().find(|(net, _)| overlap(subnet, net.trunc()))
        {
            out.push(format!(
                "subnet {subnet} is already used on the host ({what})"
            ));
        }
    }
    out
}

fn of_project(project: Option<&str>) -> String {
    match project {
        Some(p) => format!(" (project {p})"),
        None => " (made by podman or before projects)".to_owned(),
    }
}

/// A container's newly published host ports against other recorded containers and the
/// host's listening sockets.
/// Published ports of a container whose first interface (where they are forwarded) is on a
/// network without netctl's firewall: a macvlan network, or a bridge in unmanaged mode. The
/// validator refuses these for networks the file defines; this catches the `external` ones,
/// whose driver only their records know.
fn ports_unforwardable(plan: &Plan, rec: &Recorded, name: &str) -> Option<String> {
    let target = plan.target.containers.get(name)?;
    if target.ports.is_empty() || target.mode != netctl_state::NetworkMode::Bridge {
        return None;
    }
    let (network, att) = target
        .attachments
        .iter()
        .min_by_key(|(_, a)| crate::fwmap::interface_order(&a.interface))?;
    let firewalled = match plan.target.networks.get(network) {
        Some(net) if !net.external => crate::driver::for_target(net).uses_firewall(),
        _ => rec
            .networks
            .get(network)
            .is_none_or(|net| crate::driver::of(net).uses_firewall()),
    };
    (!firewalled).then(|| {
        format!(
            "its ports cannot be published: its first interface {} is on network {network}, which has no firewall (a macvlan network, or a bridge in unmanaged mode); publish them through another network as its first, or reach it at its own address",
            att.interface
        )
    })
}

fn port_conflicts(
    engine: &Engine<'_>,
    plan: &Plan,
    rec: &Recorded,
    name: &str,
    listening: &mut Option<Vec<Listening>>,
) -> Result<Vec<String>> {
    let Some(target) = plan.target.containers.get(name) else {
        return Ok(Vec::new());
    };
    let recorded_ports: Vec<PortMapping> = rec
        .containers
        .get(name)
        .map(crate::fwmap::ports_of)
        .unwrap_or_default();
    let new: Vec<&PortMapping> = target
        .ports
        .iter()
        .filter(|p| !p.chooses_host_port() && !recorded_ports.contains(p))
        .collect();
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    // Every recorded container but this file's own (the plan handles those): another
    // project's container of the same name is itself a conflict, and still holds its ports.
    let ours = |c: &&netctl_state::ContainerRecord| {
        plan.target
            .containers
            .get(&c.name)
            .is_some_and(|t| t.project == c.project)
    };
    for other in rec.containers.values().filter(|c| !ours(c)) {
        for theirs in crate::fwmap::ports_of(other) {
            if let Some(mine) = new.iter().find(|m| m.host_overlaps(&theirs)) {
                out.push(format!(
                    "host port {} is already published by container {}{} ({})",
                    mine.host_side(),
                    other.name,
                    of_project(other.project.as_deref()),
                    theirs.host_side()
                ));
            }
        }
    }
    let sockets = match listening {
        Some(sockets) => sockets,
        None => listening.insert(
            engine
                .sys
                .listening(None)
                .map_err(sys_err("list the host's listening sockets"))?,
        ),
    };
    for mine in &new {
        for socket in sockets.iter().filter(|s| listener_takes(s, mine)) {
            let mut what = format!(
                "host port {} is in use on the host: a {} socket listens on {}",
                mine.host_side(),
                socket.protocol,
                socket.addr
            );
            if let Some(owner) = engine.sys.socket_owner(socket.inode) {
                let _ = write!(what, " ({owner})");
            }
            match engine.cfg.port_in_use {
                PortInUse::Refuse => {
                    what.push_str(
                        "; stop it, choose another host port, or set port_in_use = \"warn\"",
                    );
                    out.push(what);
                }
                PortInUse::Warn => tracing::warn!("{what}; netctl's forward will take it over"),
            }
        }
    }
    Ok(out)
}

/// Whether a socket listening on `socket` gets traffic meant for `mapping`'s host side: same
/// protocol and port, and addresses that meet (a `::` socket takes IPv4 too, unless it is
/// IPv6-only, which /proc does not tell).
fn listener_takes(socket: &Listening, mapping: &PortMapping) -> bool {
    let first = u32::from(mapping.host_port);
    let last = first + u32::from(mapping.port_count()) - 1;
    let port = u32::from(socket.addr.port());
    if socket.protocol != mapping.protocol || port < first || port > last {
        return false;
    }
    let ip = socket.addr.ip();
    if mapping.host_ip.is_empty() || ip.is_unspecified() && ip.is_ipv6() {
        return true;
    }
    netctl_types::host_ips_overlap(&mapping.host_ip, &ip.to_string())
}

//! Plan-time checks against the host: what a plan would create must not already be taken by
//! something netctl did not make. Only what the plan creates is looked at (a converged apply
//! asks nothing), each by name: a bridge name on the host, a managed namespace's file, an
//! interface name inside a namespace that already exists.
//!
//! Ownership is read from netctl's marks, never guessed: a bridge is netctl's when it carries
//! its alias (or, right after creation, its derived MAC, see `BridgeNetwork::owns`); a
//! namespace file is netctl's when its container is recorded, or when it is the empty mount
//! point an interrupted creation left (see `netctl_sys::Namespaces::create_named`).

use netctl_plan::{Action, Conflict, Plan, Recorded, Resource};
use netctl_sys::{Link, NsRef};

use crate::exec::sys_err;
use crate::{Engine, Result};

/// Everything in `plan`'s way, as conflicts (empty when nothing is).
pub(crate) fn find(engine: &Engine<'_>, plan: &Plan, rec: &Recorded) -> Result<Vec<Conflict>> {
    let mut out = Vec::new();
    for step in &plan.steps {
        if !matches!(step.action, Action::Create | Action::Replace) {
            continue;
        }
        let what = match &step.resource {
            Resource::Network { name } => bridge_taken(engine, plan, rec, name)?,
            Resource::Container { name } => netns_taken(engine, plan, rec, name)?,
            Resource::Attachment { container, network } => {
                interface_taken(engine, plan, rec, container, network)?
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

/// A network's bridge name held by a link that is not this network's bridge.
fn bridge_taken(
    engine: &Engine<'_>,
    plan: &Plan,
    rec: &Recorded,
    name: &str,
) -> Result<Option<String>> {
    let Some(bridge) = plan
        .target
        .networks
        .get(name)
        .and_then(|n| n.bridge.clone())
    else {
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
    let Some(link) = engine
        .sys
        .link(&NsRef::Host, &bridge)
        .map_err(sys_err(format!("look up {bridge}")))?
    else {
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
    };
    if probe.owns(&link) {
        return Ok(None);
    }
    Ok(Some(format!(
        "bridge name {bridge} is taken by {} that netctl did not make; choose another `bridge`, or remove that link if it is a leftover (ip link del {bridge})",
        describe_link(&link)
    )))
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

/// The permission bits of a file mode (what `chmod` sets).
fn permission_bits(mode: u32) -> u32 {
    mode & 0o7777
}

//! Gathering: the store's records in one read transaction, and the kernel's and file system's
//! view of the objects those records name.

use std::collections::BTreeMap;

use netctl_plan::{LinkFacts, Observed, Recorded};
use netctl_state::{ContainerRecord, StateRead as _, Store};
use netctl_sys::{NsRef, Sys};
use nix::errno::Errno;

use crate::exec::sys_err;
use crate::{Engine, Result, driver, files};

pub(crate) fn recorded(store: &Store) -> Result<Recorded> {
    let tx = store.read()?;
    let mut rec = Recorded::default();
    for net in tx.networks()? {
        rec.networks.insert(net.name.clone(), net);
    }
    for ctr in tx.containers()? {
        rec.containers.insert(ctr.name.clone(), ctr);
    }
    for att in tx.attachments()? {
        rec.attachments
            .insert((att.container.clone(), att.network.clone()), att);
    }
    for helper in tx.helpers()? {
        rec.helpers.insert(helper.container.clone(), helper);
    }
    rec.dns_servers = tx.dns_servers()?;
    Ok(rec)
}

/// The records of a few containers (their attachments and helpers) and of every network: what
/// an imperative call on those containers needs, read in time that does not grow with the
/// number of other containers.
pub(crate) fn recorded_for<'a>(
    store: &Store,
    containers: impl IntoIterator<Item = &'a String>,
) -> Result<Recorded> {
    let tx = store.read()?;
    let mut rec = Recorded::default();
    for net in tx.networks()? {
        rec.networks.insert(net.name.clone(), net);
    }
    for name in containers {
        if let Some(ctr) = tx.container(name)? {
            rec.containers.insert(ctr.name.clone(), ctr);
        }
        for att in tx.container_attachments(name)? {
            rec.attachments
                .insert((att.container.clone(), att.network.clone()), att);
        }
        if let Some(helper) = tx.helper(name)? {
            rec.helpers.insert(helper.container.clone(), helper);
        }
    }
    rec.dns_servers = tx.dns_servers()?;
    Ok(rec)
}

/// Links of a namespace with their addresses, by name.
pub(crate) fn links_of(sys: &dyn Sys, ns: &NsRef) -> Result<BTreeMap<String, LinkFacts>> {
    let (links, addrs) = sys
        .links_and_addrs(ns)
        .map_err(sys_err(format!("list links and addresses in {ns}")))?;
    let mut out: BTreeMap<String, LinkFacts> = links
        .into_iter()
        .map(|l| {
            (
                l.name,
                LinkFacts {
                    up: l.up,
                    ..LinkFacts::default()
                },
            )
        })
        .collect();
    for addr in addrs {
        if let Some(link) = out.get_mut(&addr.link_name) {
            link.addrs.insert(addr.net);
        }
    }
    Ok(out)
}

/// The host links the records name: each network's bridge (with its addresses) and each
/// attachment's host-side veth (existence only, which is all the planner asks of it). Looked
/// up one by one rather than dumped: describing a host veth makes the kernel search for its
/// peer's namespace id, so a dump of the host's links grows quadratically with containers.
fn host_links(sys: &dyn Sys, rec: &Recorded) -> Result<BTreeMap<String, LinkFacts>> {
    let host = NsRef::Host;
    let mut out = BTreeMap::new();
    for net in rec.networks.values() {
        for name in &driver::of(net).host_links(net) {
            let link = sys
                .link(&host, name)
                .map_err(sys_err(format!("look up {name}")))?;
            if let Some(link) = link {
                let addrs = sys
                    .link_addrs(&host, link.index)
                    .map_err(sys_err(format!("list the addresses of {name}")))?;
                out.insert(
                    name.clone(),
                    LinkFacts {
                        up: link.up,
                        addrs: addrs.into_iter().collect(),
                    },
                );
            }
        }
    }
    for ((container, network), att) in &rec.attachments {
        let (Some(ctr), Some(net)) = (rec.containers.get(container), rec.networks.get(network))
        else {
            continue;
        };
        let Some(veth) = driver::of(net).attachment_host_link(ctr, net, att) else {
            continue;
        };
        let index = sys
            .link_index(&host, &veth)
            .map_err(sys_err(format!("look up host veth {veth}")))?;
        if index.is_some() {
            out.insert(veth, LinkFacts::default());
        }
    }
    Ok(out)
}

/// The names of the container's links its attachments name (what the planner compares with
/// the records).
fn attachment_names(rec: &Recorded, ctr: &ContainerRecord) -> Vec<String> {
    rec.attachments_of(&ctr.name)
        .map(|att| att.interface.clone())
        .collect()
}

/// Each container's attachment links with their addresses, `None` for a namespace that is
/// gone: asked from the host by namespace id (nothing enters the namespaces), each link looked
/// up by name and only its addresses dumped.
fn container_links(
    sys: &dyn Sys,
    rec: &Recorded,
    containers: &[&ContainerRecord],
) -> Result<Vec<Option<BTreeMap<String, LinkFacts>>>> {
    let queries: Vec<(NsRef, Vec<String>)> = containers
        .iter()
        .map(|ctr| {
            (
                NsRef::path(ctr.netns.path.clone()),
                attachment_names(rec, ctr),
            )
        })
        .collect();
    let answers = sys.peek_links(&queries);
    queries
        .into_iter()
        .zip(answers)
        .map(|((ns, names), answer)| match answer {
            Ok(found) => Ok(Some(
                names
                    .into_iter()
                    .zip(found)
                    .filter_map(|(name, addrs)| {
                        let facts = LinkFacts {
                            // Not asked: the planner judges a container's links by their
                            // addresses.
                            up: false,
                            addrs: addrs?.into_iter().collect(),
                        };
                        Some((name, facts))
                    })
                    .collect(),
            )),
            // A missing file (ENOENT) or one that is not a network namespace (EINVAL): the
            // namespace is gone.
            Err(e) if matches!(e.errno(), Some(Errno::ENOENT | Errno::EINVAL)) => Ok(None),
            Err(e) => Err(sys_err(format!("look at the links of {ns}"))(e)),
        })
        .collect()
}

pub(crate) fn observe(engine: &Engine<'_>, rec: &Recorded) -> Result<Observed> {
    let sys = engine.sys;
    let started = std::time::Instant::now();
    let mut obs = Observed {
        host_links: host_links(sys, rec)?,
        ..Observed::default()
    };
    tracing::debug!(elapsed = ?started.elapsed(), "observe: host links");
    obs.dns_drift = crate::dns::observe(engine, rec)?;
    let containers: Vec<&ContainerRecord> = rec.containers.values().collect();
    let links = container_links(sys, rec, &containers)?;
    tracing::debug!(elapsed = ?started.elapsed(), "observe: container links");
    let host_files = files::HostFiles::read(&engine.cfg);
    let cfg = &engine.cfg;
    // Each container's files and helper are independent questions to the file system: spread
    // them over the CPUs.
    let present: Vec<(&ContainerRecord, bool)> = containers
        .iter()
        .zip(&links)
        .map(|(ctr, links)| (*ctr, links.is_some()))
        .collect();
    let seen = netctl_sys::par::map(&present, |&(ctr, exists)| {
        let files_ok = exists.then(|| files::files_match(cfg, &host_files, rec, ctr));
        let helper_alive = rec
            .helpers
            .get(&ctr.name)
            .is_some_and(|helper| sys.is_alive(helper.pid, helper.start_time));
        (files_ok, helper_alive)
    });
    for ((ctr, links), (files_ok, helper_alive)) in containers.iter().zip(links).zip(seen) {
        if let Some(links) = links {
            obs.namespaces.insert(ctr.netns.path.clone(), links);
        }
        if let Some(ok) = files_ok {
            obs.files_ok.insert(ctr.name.clone(), ok);
        }
        if helper_alive {
            obs.helpers_alive.insert(ctr.name.clone());
        }
    }
    tracing::debug!(elapsed = ?started.elapsed(), "observe: namespaces");
    obs.earlier_boot = earlier_boot(engine, rec);
    obs.firewall_ok = crate::fwmap::firewall_ok(engine, rec)?;
    tracing::debug!(elapsed = ?started.elapsed(), "observe: firewall");
    obs.interrupted = engine.pending().read()?;
    Ok(obs)
}

/// What the system would look like if it matched the records exactly, without asking it
/// (but with an interrupted operation's marker, which says where the records cannot be
/// trusted). Imperative calls (connect, disconnect) plan against this: they act on one
/// attachment and must not pay for observing every container (their own result is verified
/// directly).
pub(crate) fn assumed(engine: &Engine<'_>, rec: &Recorded) -> Result<Observed> {
    let mut obs = Observed {
        firewall_ok: true,
        interrupted: engine.pending().read()?,
        ..Observed::default()
    };
    for net in rec.networks.values() {
        obs.host_links
            .extend(driver::of(net).assumed_host_links(net));
    }
    for ctr in rec.containers.values() {
        let mut links = BTreeMap::new();
        for att in rec.attachments_of(&ctr.name) {
            links.insert(
                att.interface.clone(),
                LinkFacts {
                    up: true,
                    addrs: att.addresses.iter().copied().collect(),
                },
            );
            if let Some(net) = rec.networks.get(&att.network)
                && let Some(link) = driver::of(net).attachment_host_link(ctr, net, att)
            {
                obs.host_links.insert(link, LinkFacts::default());
            }
        }
        obs.namespaces.insert(ctr.netns.path.clone(), links);
        obs.files_ok.insert(ctr.name.clone(), true);
        if rec.helpers.contains_key(&ctr.name) {
            obs.helpers_alive.insert(ctr.name.clone());
        }
    }
    obs.earlier_boot = earlier_boot(engine, rec);
    Ok(obs)
}

/// The recorded containers whose records are of an earlier boot.
fn earlier_boot(engine: &Engine<'_>, rec: &Recorded) -> std::collections::BTreeSet<String> {
    rec.containers
        .values()
        .filter(|ctr| engine.of_earlier_boot(ctr))
        .map(|ctr| ctr.name.clone())
        .collect()
}

/// Like [`assumed`], but the given containers and networks as they really are: their
/// namespaces' links, their host veths and the networks' bridges, and whether netctl's table
/// is whole. What podman's setup plans
/// against: podman is the source of truth for the container it names, and the records of it
/// may describe kernel objects a crash or a reboot took away; every other container is still
/// taken on trust, so the cost stays that of one container.
pub(crate) fn touched(
    engine: &Engine<'_>,
    rec: &Recorded,
    containers: &[&str],
    networks: &std::collections::BTreeSet<String>,
) -> Result<Observed> {
    let mut obs = assumed(engine, rec)?;
    // The table as a whole (a constant-cost rule count): a reboot or a flush takes it away
    // even when none of this container's own elements would notice.
    obs.firewall_ok = crate::fwmap::firewall_ok(engine, rec)?;
    let mut sub = Recorded::default();
    for name in containers {
        let Some(ctr) = rec.containers.get(*name) else {
            continue;
        };
        sub.containers.insert(ctr.name.clone(), ctr.clone());
        for att in rec.attachments_of(name) {
            sub.attachments
                .insert((att.container.clone(), att.network.clone()), att.clone());
            if let Some(net) = rec.networks.get(&att.network) {
                sub.networks.insert(net.name.clone(), net.clone());
            }
        }
    }
    for name in networks {
        if let Some(net) = rec.networks.get(name) {
            sub.networks.insert(net.name.clone(), net.clone());
        }
    }
    // Forget what was assumed of them, then say what is there.
    for net in sub.networks.values() {
        obs.host_links.remove(&net.network_interface);
    }
    for ((container, network), att) in &sub.attachments {
        if let (Some(ctr), Some(net)) = (sub.containers.get(container), sub.networks.get(network)) {
            obs.host_links
                .remove(&netctl_plan::host_veth(ctr, net, att));
        }
    }
    obs.host_links.extend(host_links(engine.sys, &sub)?);
    let ctrs: Vec<&ContainerRecord> = sub.containers.values().collect();
    for (ctr, links) in ctrs.iter().zip(container_links(engine.sys, &sub, &ctrs)?) {
        obs.namespaces.remove(&ctr.netns.path);
        if let Some(links) = links {
            obs.namespaces.insert(ctr.netns.path.clone(), links);
        }
    }
    Ok(obs)
}

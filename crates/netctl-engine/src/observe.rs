//! Gathering: the store's records in one read transaction, and the kernel's and file system's
//! view of the objects those records name.

use std::collections::BTreeMap;

use netctl_plan::{LinkFacts, Observed, Recorded};
use netctl_state::{StateRead as _, Store};
use netctl_sys::{NsRef, Sys};
use nix::errno::Errno;

use crate::{Engine, EngineError, Result, files};

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
    Ok(rec)
}

/// Links of a namespace with their addresses, by name.
pub(crate) fn links_of(sys: &dyn Sys, ns: &NsRef) -> Result<BTreeMap<String, LinkFacts>> {
    let ctx = |what: &str| {
        let what = format!("{what} in {ns}");
        move |source| EngineError::Sys {
            what,
            source: Box::new(source),
        }
    };
    let mut out: BTreeMap<String, LinkFacts> = sys
        .links(ns)
        .map_err(ctx("list links"))?
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
    for addr in sys.addrs(ns).map_err(ctx("list addresses"))? {
        if let Some(link) = out.get_mut(&addr.link_name) {
            link.addrs.insert(addr.net);
        }
    }
    Ok(out)
}

pub(crate) fn observe(engine: &Engine<'_>, rec: &Recorded) -> Result<Observed> {
    let sys = engine.sys;
    let mut obs = Observed {
        host_links: links_of(sys, &NsRef::Host)?,
        ..Observed::default()
    };
    let namespaces: Vec<NsRef> = rec
        .containers
        .values()
        .map(|c| NsRef::path(c.netns.path.clone()))
        .collect();
    sys.prepare(&namespaces);
    let host_files = files::HostFiles::read(&engine.cfg);
    for ctr in rec.containers.values() {
        let path = &ctr.netns.path;
        // Listing the links enters the namespace, which fails for a missing file (ENOENT) or
        // one that is not a network namespace (EINVAL): both mean the namespace is gone. One
        // entry per namespace instead of a separate check.
        match links_of(sys, &NsRef::path(path.clone())) {
            Ok(links) => {
                obs.namespaces.insert(path.clone(), links);
                obs.files_ok.insert(
                    ctr.name.clone(),
                    files::files_match(&engine.cfg, &host_files, rec, ctr),
                );
            }
            Err(EngineError::Sys { source, .. })
                if matches!(source.errno(), Some(Errno::ENOENT | Errno::EINVAL)) => {}
            Err(e) => return Err(e),
        }
        if let Some(helper) = rec.helpers.get(&ctr.name)
            && sys.is_alive(helper.pid, helper.start_time)
        {
            obs.helpers_alive.insert(ctr.name.clone());
        }
    }
    obs.firewall_ok = crate::fwmap::firewall_ok(engine, rec)?;
    Ok(obs)
}

/// What the system would look like if it matched the records exactly, without asking it.
/// Imperative calls (connect, disconnect) plan against this: they act on one attachment and
/// must not pay for observing every container (their own result is verified directly).
pub(crate) fn assumed(rec: &Recorded) -> Observed {
    let mut obs = Observed {
        firewall_ok: true,
        ..Observed::default()
    };
    for net in rec.networks.values() {
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
        obs.host_links.insert(net.network_interface.clone(), facts);
    }
    for ctr in rec.containers.values() {
        let mut links = BTreeMap::new();
        for ((_, n), att) in rec
            .attachments
            .range((ctr.name.clone(), String::new())..)
            .take_while(|((c, _), _)| *c == ctr.name)
        {
            links.insert(
                att.interface.clone(),
                LinkFacts {
                    up: true,
                    addrs: att.addresses.iter().copied().collect(),
                },
            );
            if let Some(net) = rec.networks.get(n) {
                obs.host_links.insert(
                    netctl_plan::veth_name(&ctr.id, &net.id),
                    LinkFacts::default(),
                );
            }
        }
        obs.namespaces.insert(ctr.netns.path.clone(), links);
        obs.files_ok.insert(ctr.name.clone(), true);
        if rec.helpers.contains_key(&ctr.name) {
            obs.helpers_alive.insert(ctr.name.clone());
        }
    }
    obs
}

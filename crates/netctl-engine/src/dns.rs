//! Container names by DNS: one aardvark-dns per config directory, driven from the records.
//!
//! The files aardvark reads are derived from the records alone (DNS networks, their
//! attachments and aliases): [`served`] computes them, [`observe`] compares them, the server
//! and its listeners with what is there, and [`sync`] (run at the end of every execution that
//! changed something) writes what differs by rename, sends one `SIGHUP` when a file changed,
//! starts the server when it is not running, stops it when nothing is left to serve, and
//! checks that every gateway really is bound (aardvark-dns 1.4 reports ready before it binds).
//!
//! Each front door has its own server and directory ([`crate::DnsScope`]): a run serves, and
//! changes files of, only the networks of its scope (podman's networks in netavark's
//! `<--config>/aardvark-dns`, the others in `<run_dir>/aardvark-dns`).
//!
//! Imperative runs (connect, disconnect, podman's setup and teardown) use [`sync_touched`]:
//! only the files of the networks their containers were or are on are changed, each patched
//! from the file itself (line 1 and the touched containers' lines), so the cost does not grow
//! with the number of other containers; and a server known to be bound on every gateway since
//! it started (same pid and start time) is not checked again through the socket table: one
//! name each network gained is asked for instead, so it is answered when the command returns.
//! Anything else (a file missing, a network changed, no server running) takes the full way.
//!
//! The firewall sends each DNS network's queries to the port its server listens on
//! ([`crate::fwmap`] reads the server records): a first server adds its networks' DNS
//! elements to netctl's table, and moving a server to another port or stopping it rebuilds
//! the table.
//!
//! Invariant: a converged system gets no signal and no write ([`sync`] compares first, and a
//! converged apply never runs it). A patched file is byte for byte the file a full render
//! gives (`netctl_dns::aardvark::patch`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use netctl_dns::aardvark::{self, DnsEntry, DnsNetwork};
use netctl_plan::Recorded;
use netctl_state::{
    AttachmentRecord, ContainerRecord, DnsServerRecord, NetworkRecord, StateRead as _,
};
use netctl_sys::{Signal, SpawnMode, SpawnSpec};

use crate::exec::sys_err;
use crate::{DnsScope, Engine, EngineError, Result};

/// How long aardvark-dns's launcher may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a listener may take to appear after a start or a `SIGHUP`.
const BIND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a gateway aardvark-dns should listen on may be unbound while it reloads before
/// observation calls it drift.
const RELOAD_GRACE: Duration = Duration::from_millis(250);
/// How long aardvark-dns has to exit on `SIGTERM`.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Whether a network serves DNS in this configuration: it has DNS on, is of this run's scope,
/// there is a server, and it has a gateway to listen on (a network without addresses, IPAM
/// driver `none`, has none).
pub(crate) fn serves(engine: &Engine<'_>, net: &NetworkRecord) -> bool {
    net.dns_enabled
        && in_scope(engine, net)
        && engine.cfg.aardvark_binary.is_some()
        && gateways(net).next().is_some()
}

/// Whether `net`'s names are served from this run's config directory.
fn in_scope(engine: &Engine<'_>, net: &NetworkRecord) -> bool {
    let podman = net.labels.contains_key(crate::podman::PODMAN_LABEL);
    podman == (engine.cfg.dns_scope == DnsScope::Podman)
}

/// The DNS gateways a container's resolv.conf names first (its DNS networks' gateways).
pub(crate) fn gateways(net: &NetworkRecord) -> impl Iterator<Item = IpAddr> + '_ {
    net.subnets.iter().filter_map(|s| s.gateway)
}

/// A DNS network as aardvark-dns serves it, without its containers.
fn dns_network(net: &NetworkRecord) -> DnsNetwork {
    DnsNetwork {
        name: net.name.clone(),
        internal: net.internal,
        listen: gateways(net).collect(),
        servers: net.dns_servers.clone(),
        entries: Vec::new(),
    }
}

/// A container's line in a DNS network's file.
fn entry(net: &NetworkRecord, ctr: &ContainerRecord, att: &AttachmentRecord) -> DnsEntry {
    let settings = netctl_plan::recorded_settings(ctr);
    // podman sends the short id as an alias and serves it; a file's container is known
    // by its name and declared aliases only.
    let short: String = ctr.id.chars().take(12).collect();
    let podman = net.labels.contains_key(crate::podman::PODMAN_LABEL);
    let mut names = vec![ctr.name.clone()];
    names.extend(
        att.aliases
            .iter()
            .filter(|a| podman || **a != short)
            .filter(|a| **a != ctr.name)
            .cloned(),
    );
    let mut e = DnsEntry {
        id: ctr.id.clone(),
        names,
        servers: settings.dns_servers,
        ..DnsEntry::default()
    };
    for a in &att.addresses {
        match a.addr() {
            IpAddr::V4(v4) => e.ipv4.push(v4),
            IpAddr::V6(v6) => e.ipv6.push(v6),
        }
    }
    e
}

/// What aardvark-dns should serve: every DNS network with at least one container.
pub(crate) fn served(engine: &Engine<'_>, rec: &Recorded) -> Vec<DnsNetwork> {
    let mut nets: BTreeMap<&str, DnsNetwork> = BTreeMap::new();
    for ((container, network), att) in &rec.attachments {
        let (Some(net), Some(ctr)) = (rec.networks.get(network), rec.containers.get(container))
        else {
            continue;
        };
        if !serves(engine, net) {
            continue;
        }
        nets.entry(network)
            .or_insert_with(|| dns_network(net))
            .entries
            .push(entry(net, ctr, att));
    }
    nets.into_values().collect()
}

/// The files aardvark-dns should read, by file name.
fn rendered(engine: &Engine<'_>, rec: &Recorded) -> Result<BTreeMap<String, (String, String)>> {
    let mut out = BTreeMap::new();
    for net in served(engine, rec) {
        let text = aardvark::render(&net).map_err(|e| EngineError::Invalid(e.to_string()))?;
        out.insert(net.file_name(), (net.name, text));
    }
    Ok(out)
}

/// Network files present in the config directory (not the pid file, not hidden files).
fn present_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != aardvark::PID_FILE && !n.starts_with('.'))
        .collect()
}

fn server_record(engine: &Engine<'_>) -> Result<Option<DnsServerRecord>> {
    let dir = &engine.cfg.dns_dir;
    Ok(engine
        .store
        .read()?
        .dns_servers()?
        .into_iter()
        .find(|s| s.dir == *dir))
}

/// The UDP sockets bound in netctl's namespace.
fn bound(engine: &Engine<'_>) -> Result<BTreeSet<SocketAddr>> {
    Ok(engine
        .sys
        .listening(Some("udp"))
        .map_err(sys_err("list bound sockets"))?
        .into_iter()
        .map(|l| l.addr)
        .collect())
}

/// The recorded server of this run's config directory when it is running on the configured
/// port.
fn running(engine: &Engine<'_>) -> Result<Option<DnsServerRecord>> {
    Ok(server_record(engine)?
        .filter(|s| engine.sys.is_alive(s.pid, s.start_time) && s.port == engine.cfg.dns_port))
}

/// The gateways of `net` on which something listens at `dns_port` (aardvark-dns, after
/// [`sync`] checked it). A running server that [`sync`] saw bound on every gateway is not
/// looked up in the socket table again.
pub(crate) fn bound_gateways(engine: &Engine<'_>, net: &NetworkRecord) -> Result<Vec<IpAddr>> {
    if running(engine)?.is_some_and(|s| s.bound) {
        return Ok(gateways(net).collect());
    }
    let bound = bound(engine)?;
    Ok(gateways(net)
        .filter(|gw| bound.contains(&SocketAddr::new(*gw, engine.cfg.dns_port)))
        .collect())
}

/// How DNS differs from the records, by network.
pub(crate) fn observe(
    engine: &Engine<'_>,
    rec: &Recorded,
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut drift: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let want = rendered(engine, rec)?;
    let dir = &engine.cfg.dns_dir;
    for (file, (net, text)) in &want {
        if netctl_dns::read_file(&dir.join(file)).as_deref() != Some(text.as_str()) {
            drift.entry(net.clone()).or_default().push(format!(
                "{}/{file} is missing or differs from the records",
                aardvark::DIR_NAME
            ));
        }
    }
    for file in present_files(dir) {
        let net = file.trim_end_matches("%int");
        if !want.contains_key(&file) && rec.networks.contains_key(net) {
            drift
                .entry(net.to_owned())
                .or_default()
                .push(format!("{}/{file} should not be there", aardvark::DIR_NAME));
        }
    }
    if want.is_empty() {
        return Ok(drift);
    }
    let alive = server_record(engine)?.filter(|s| engine.sys.is_alive(s.pid, s.start_time));
    match alive {
        None => {
            for (net, _) in want.values() {
                drift
                    .entry(net.clone())
                    .or_default()
                    .push("aardvark-dns is not running".into());
            }
        }
        Some(server) if server.port != engine.cfg.dns_port => {
            for (net, _) in want.values() {
                drift.entry(net.clone()).or_default().push(format!(
                    "aardvark-dns listens on port {}, not dns_port {}",
                    server.port, engine.cfg.dns_port
                ));
            }
        }
        Some(server) => {
            let listen: Vec<(&String, SocketAddr)> = want
                .values()
                .flat_map(|(net, _)| {
                    gateways(&rec.networks[net])
                        .map(move |gw| (net, SocketAddr::new(gw, server.port)))
                })
                .collect();
            let addrs: Vec<SocketAddr> = listen.iter().map(|(_, addr)| *addr).collect();
            // aardvark-dns closes and binds its sockets again when it reloads (a SIGHUP from
            // any netctl or netavark run): a gateway unbound for a moment is looked at again
            // before it counts as drift.
            let missing = unbound_after(engine, &addrs, RELOAD_GRACE)?;
            for (net, addr) in listen {
                if missing.contains(&addr) {
                    drift
                        .entry(net.clone())
                        .or_default()
                        .push(format!("nothing listens on {addr}"));
                }
            }
        }
    }
    Ok(drift)
}

/// netavark commits its entries under `<config>/aardvark.lock`; so does netctl in its place,
/// so netavark's tooling never reads a directory half-way through a change.
fn lock(engine: &Engine<'_>) -> Result<Option<impl Drop>> {
    Ok(match (engine.cfg.dns_scope, engine.cfg.dns_dir.parent()) {
        (DnsScope::Podman, Some(config)) => {
            Some(netctl_dns::lock_file(&config.join(aardvark::LOCK_FILE))?)
        }
        _ => None,
    })
}

/// Brings aardvark-dns in line with the records: files, then one signal or a start (or a
/// stop), then a check that every gateway is bound.
pub(crate) fn sync(engine: &Engine<'_>) -> Result<()> {
    let _lock = lock(engine)?;
    sync_all(engine)
}

/// [`sync`] after a run that touched only `containers` (no network): `before` and `now` hold
/// at least those containers with their attachments, and every network.
pub(crate) fn sync_touched(
    engine: &Engine<'_>,
    before: &Recorded,
    now: &Recorded,
    containers: &BTreeSet<String>,
) -> Result<()> {
    let _lock = lock(engine)?;
    if !patch_touched(engine, before, now, containers)? {
        sync_all(engine)?;
    }
    Ok(())
}

/// The incremental way of [`sync_touched`]; `false` when it cannot be taken (then nothing
/// was changed, or only files the full way rewrites the same).
fn patch_touched(
    engine: &Engine<'_>,
    before: &Recorded,
    now: &Recorded,
    containers: &BTreeSet<String>,
) -> Result<bool> {
    let started = Instant::now();
    let networks: BTreeSet<&str> = [before, now]
        .into_iter()
        .flat_map(|rec| containers.iter().flat_map(|c| rec.attachments_of(c)))
        .map(|att| att.network.as_str())
        .collect();
    // None of the run's networks serves DNS, before or now: nothing of DNS changes (what
    // other networks' files hold is taken on trust, as every other container is).
    let dns_touched = networks.iter().any(|name| {
        [before, now]
            .into_iter()
            .filter_map(|rec| rec.networks.get(*name))
            .any(|net| serves(engine, net))
    });
    if !dns_touched {
        return Ok(true);
    }
    let Some(server) = running(engine)? else {
        return Ok(false);
    };
    let dir = &engine.cfg.dns_dir;
    let gone: BTreeSet<&str> = [before, now]
        .into_iter()
        .flat_map(|rec| containers.iter().filter_map(|c| rec.containers.get(c)))
        .map(|ctr| ctr.id.as_str())
        .collect();
    let gone: Vec<&str> = gone.into_iter().collect();
    let mut changed = false;
    // One name each network gained, asked for after the reload: (server, name, AAAA).
    let mut probes: Vec<(SocketAddr, String, bool)> = Vec::new();
    for name in networks {
        let (Some(was), Some(net)) = (before.networks.get(name), now.networks.get(name)) else {
            return Ok(false);
        };
        let serving = serves(engine, net);
        if serving != serves(engine, was) || (serving && dns_network(was) != dns_network(net)) {
            return Ok(false);
        }
        if !serving {
            continue;
        }
        let mut served = dns_network(net);
        let file = served.file_name();
        // A network whose first container this is has no file yet: its new listener needs
        // the full way (and the bind check).
        let Some(current) = netctl_dns::read_file(&dir.join(&file)) else {
            return Ok(false);
        };
        served.entries = containers
            .iter()
            .filter_map(|c| {
                let att = now.attachments.get(&(c.clone(), name.to_owned()))?;
                Some(entry(net, now.containers.get(c)?, att))
            })
            .collect();
        if let (Some(gw), Some(e)) = (served.listen.first(), served.entries.first()) {
            let addr = SocketAddr::new(*gw, engine.cfg.dns_port);
            probes.push((addr, e.names[0].clone(), e.ipv4.is_empty()));
        }
        let text = aardvark::patch(&current, &served, &gone)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        if let Some(text) = text {
            changed |= netctl_dns::replace_file(dir, &file, &text)?;
        } else {
            netctl_dns::remove_files(dir, &[file.as_str()])?;
            changed = true;
        }
    }
    if !changed {
        return Ok(true);
    }
    if present_files(dir).is_empty() {
        // Nothing left to serve: the full way stops the server.
        return Ok(false);
    }
    engine
        .sys
        .kill(server.pid, Signal::SIGHUP)
        .map_err(sys_err("signal aardvark-dns to reload"))?;
    tracing::debug!(elapsed = ?started.elapsed(), "dns: files patched, aardvark-dns signalled");
    if !server.bound {
        let listen = listen_addrs(engine, now);
        wait_bound(engine, server.pid, &listen)?;
        mark_bound(engine, &server)?;
    }
    // aardvark-dns reloads at its own pace after the signal: a new name is answered before
    // the command returns, asked for as a container would.
    let asked = probes.len();
    for (addr, name, ipv6) in probes {
        let answered = engine
            .sys
            .dns_answers(addr, &name, ipv6, BIND_TIMEOUT)
            .map_err(sys_err(format!("ask aardvark-dns at {addr} for {name}")))?;
        if !answered {
            return Err(EngineError::Invalid(format!(
                "aardvark-dns (pid {}) does not answer {name} at {addr} after {BIND_TIMEOUT:?}",
                server.pid
            )));
        }
    }
    tracing::debug!(elapsed = ?started.elapsed(), asked, "dns: new names answered");
    Ok(true)
}

/// Every address the server should listen on: the gateways of the networks that have a file.
fn listen_addrs(engine: &Engine<'_>, rec: &Recorded) -> Vec<SocketAddr> {
    present_files(&engine.cfg.dns_dir)
        .iter()
        .filter_map(|f| rec.networks.get(f.trim_end_matches("%int")))
        .flat_map(gateways)
        .map(|gw| SocketAddr::new(gw, engine.cfg.dns_port))
        .collect()
}

/// Records that the server was seen bound on every gateway it serves.
fn mark_bound(engine: &Engine<'_>, server: &DnsServerRecord) -> Result<()> {
    if server.bound {
        return Ok(());
    }
    let record = DnsServerRecord {
        bound: true,
        ..server.clone()
    };
    engine.store.write(|tx| tx.put_dns_server(&record))?;
    Ok(())
}

fn sync_all(engine: &Engine<'_>) -> Result<()> {
    let started = Instant::now();
    let dir = &engine.cfg.dns_dir;
    let mut rec = crate::observe::recorded(engine.store)?;
    let want = rendered(engine, &rec)?;
    let server = server_record(engine)?;
    let alive = server
        .as_ref()
        .filter(|s| engine.sys.is_alive(s.pid, s.start_time) && s.port == engine.cfg.dns_port);
    let mut changed = false;
    for (file, (_, text)) in &want {
        changed |= netctl_dns::replace_file(dir, file, text)?;
    }
    // aardvark-dns serves every file in its directory, so anything the records do not ask for
    // goes (in netavark's directory too: netctl serves podman in netavark's place).
    let stale: Vec<String> = present_files(dir)
        .into_iter()
        .filter(|f| !want.contains_key(f))
        .collect();
    if !stale.is_empty() {
        let names: Vec<&str> = stale.iter().map(String::as_str).collect();
        netctl_dns::remove_files(dir, &names)?;
        changed = true;
    }
    if want.is_empty() {
        if let Some(server) = &server {
            stop(engine, server)?;
            engine.rebuild_firewall()?;
        }
        return Ok(());
    }
    let running = match alive {
        Some(server) if changed => {
            engine
                .sys
                .kill(server.pid, Signal::SIGHUP)
                .map_err(sys_err("signal aardvark-dns to reload"))?;
            server.clone()
        }
        Some(server) => server.clone(),
        None => {
            if let Some(server) = &server {
                // Dead, or on another port: a new one replaces it.
                stop(engine, server)?;
            }
            start(engine)?
        }
    };
    tracing::debug!(elapsed = ?started.elapsed(), "dns: files written, server signalled or started");
    // Queries reach the server at its port through the firewall; done while a new server
    // binds, before the bind check.
    match server.as_ref().map(|s| s.port) {
        Some(port) if port == running.port => {}
        None => {
            rec.dns_servers.retain(|s| s.podman != running.podman);
            rec.dns_servers.push(running.clone());
            add_dns_elements(engine, &rec)?;
        }
        // Another port: every DNS network's elements change.
        Some(_) => {
            engine.rebuild_firewall()?;
        }
    }
    tracing::debug!(elapsed = ?started.elapsed(), "dns: firewall up to date");
    let listen: Vec<SocketAddr> = want
        .values()
        .flat_map(|(net, _)| gateways(&rec.networks[net]).collect::<Vec<_>>())
        .map(|gw| SocketAddr::new(gw, engine.cfg.dns_port))
        .collect();
    wait_bound(engine, running.pid, &listen)?;
    mark_bound(engine, &running)?;
    tracing::debug!(elapsed = ?started.elapsed(), "dns: every gateway bound");
    Ok(())
}

/// A first server: the DNS elements of its networks are added to the table (the rest of each
/// network's elements are there already; adding them again changes nothing). Past a few
/// networks, or when the table is not as the records say, one rebuild does it instead.
fn add_dns_elements(engine: &Engine<'_>, rec: &Recorded) -> Result<()> {
    let networks: Vec<&NetworkRecord> = crate::driver::firewalled(rec)
        .filter(|net| serves(engine, net))
        .collect();
    if networks.len() <= crate::exec::INCREMENTAL_LIMIT {
        let added = networks
            .iter()
            .try_for_each(|net| engine.fw.add_network(&crate::fwmap::fw_network(rec, net)));
        match added {
            Ok(()) => return Ok(()),
            Err(e) => tracing::debug!("firewall: {e}; rebuilding the table from the records"),
        }
    }
    engine.rebuild_firewall().map(drop)
}

/// Starts aardvark-dns for the config directory and records it.
fn start(engine: &Engine<'_>) -> Result<DnsServerRecord> {
    let binary =
        engine.cfg.aardvark_binary.as_ref().ok_or_else(|| {
            EngineError::Invalid("no aardvark-dns binary: cannot serve DNS".into())
        })?;
    let dir = &engine.cfg.dns_dir;
    let pid_file = dir.join(aardvark::PID_FILE);
    // A dead server's pid file must not be taken for the new one's.
    netctl_dns::remove_files(dir, &[aardvark::PID_FILE])?;
    let argv = aardvark::argv(
        &binary.to_string_lossy(),
        &dir.to_string_lossy(),
        engine.cfg.dns_port,
    );
    let spec = SpawnSpec {
        mode: SpawnMode::Daemon {
            pid_file,
            timeout: START_TIMEOUT,
        },
        ..SpawnSpec::new(&argv)
    };
    let spawned = engine
        .sys
        .spawn(&spec)
        .map_err(sys_err(format!("start {}", argv.join(" "))))?;
    let record = DnsServerRecord {
        dir: dir.clone(),
        pid: spawned.pid,
        start_time: spawned.start_time,
        port: engine.cfg.dns_port,
        argv,
        podman: engine.cfg.dns_scope == DnsScope::Podman,
        bound: false,
    };
    engine.store.write(|tx| tx.put_dns_server(&record))?;
    Ok(record)
}

/// Stops the recorded aardvark-dns (if it still runs) and forgets it.
fn stop(engine: &Engine<'_>, server: &DnsServerRecord) -> Result<()> {
    netctl_sys::terminate(engine.sys, server.pid, server.start_time, STOP_GRACE)
        .map_err(sys_err(format!("stop aardvark-dns (pid {})", server.pid)))?;
    engine.store.write(|tx| tx.remove_dns_server(&server.dir))?;
    netctl_dns::remove_files(&server.dir, &[aardvark::PID_FILE])?;
    Ok(())
}

/// Waits until every address is bound: aardvark-dns 1.4 says it is ready before it binds, and
/// binds after a `SIGHUP` at its own pace.
fn wait_bound(engine: &Engine<'_>, pid: u32, listen: &[SocketAddr]) -> Result<()> {
    let missing = unbound_after(engine, listen, BIND_TIMEOUT)?;
    if missing.is_empty() {
        return Ok(());
    }
    Err(EngineError::Invalid(format!(
        "aardvark-dns (pid {pid}) does not listen on {} after {BIND_TIMEOUT:?}",
        missing
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// The addresses of `listen` still unbound after waiting up to `patience` for them (none
/// when all are bound at the first look, which costs one read of the UDP socket tables).
fn unbound_after(
    engine: &Engine<'_>,
    listen: &[SocketAddr],
    patience: Duration,
) -> Result<Vec<SocketAddr>> {
    let started = Instant::now();
    loop {
        let bound = bound(engine)?;
        let missing: Vec<SocketAddr> = listen
            .iter()
            .filter(|a| !bound.contains(a))
            .copied()
            .collect();
        if missing.is_empty() || started.elapsed() > patience {
            return Ok(missing);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

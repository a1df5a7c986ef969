//! [`FakeSys`]: an in-memory machine that records every call.
//!
//! It models what planners and backends depend on: namespaces (each new one has `lo`, down),
//! links (bridges, veth pairs spanning namespaces, masters, aliases, renames), addresses,
//! routes (the kernel's connected routes are derived from addresses on up links), sysctls,
//! nftables tables ([`nft`]), and processes (programs run to completion return what
//! [`FakeSys::set_run_output`] scripted). It behaves like the kernel where a planner could
//! get the order wrong: a gateway must be reachable through an up link (`ENETUNREACH`), a link
//! that is up cannot be renamed (`EBUSY`, as on kernels before live renames), setting a link down drops its IPv6 addresses and its
//! routes, deleting one end of a veth pair or its namespace deletes the other end.
//!
//! Every call is recorded as one readable line (`add_addr /run/netns/c eth0 10.89.0.2/24`) in
//! order; [`FakeSys::mutating_calls`] leaves out the read-only ones, so "a second apply makes
//! zero mutating calls" is one assertion. [`FakeSys::fail_at`] makes the Nth mutating call from
//! then on fail, without effect, with the error the real implementation would give.
//!
//! Known differences from a kernel: no IPv6 link-local addresses are invented, no carrier
//! state, sysctls default to the `conf.default` value or `"0"`, and only routes added through
//! the fake can be deleted.

mod nft;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use ipnet::IpNet;
use nix::errno::Errno;

use crate::error::{
    describe_add_macvlan, describe_add_veth, describe_addr, describe_ipv4_conf, describe_route,
    os_error,
};
use crate::model::{check_alias, check_ifname, check_route, check_sysctl_key};
use crate::{
    Addr, BridgeSpec, Ipv4Conf, Link, LinkChange, LinkKind, MAIN_TABLE, MacAddr, MacvlanSpec,
    NamespaceOp, Namespaces, Netlink, NetlinkOp, Nft, NftFamily, NsRef, Processes, Route,
    RouteKind, RouteProto, RunOutput, Signal, SpawnMode, SpawnSpec, Spawned, SysError, SysResult,
    Sysctl, SysctlOp, VethPeer, VethSpec, sysctl_key_display,
};
use nft::NftModel;

/// MTU bounds of bridges and veths.
const MIN_MTU: u32 = 68;
const MAX_MTU: u32 = 65535;
const DEFAULT_MTU: u32 = 1500;
/// The metric the kernel gives IPv6 connected routes.
const IPV6_KERNEL_METRIC: u32 = 256;
/// First pid and start time handed out, so they look like real ones and never clash with 0/1.
const FIRST_PID: u32 = 1000;
const FIRST_START_TIME: u64 = 5000;

/// The recording fake. Cheap to create; one per test.
pub struct FakeSys {
    world: Mutex<World>,
}

#[derive(Debug, Clone)]
struct Call {
    line: String,
    mutating: bool,
}

#[derive(Debug, Clone, Copy)]
struct PlannedFailure {
    /// Mutating calls still to let through before the one that fails.
    remaining: usize,
    errno: Errno,
}

#[derive(Debug, Clone)]
struct FakeLink {
    index: u32,
    name: String,
    kind: LinkKind,
    mac: MacAddr,
    mtu: u32,
    up: bool,
    master: Option<u32>,
    alias: Option<String>,
    /// The other end of a veth: its namespace and ifindex there.
    peer: Option<(NsRef, u32)>,
}

#[derive(Debug, Clone, PartialEq)]
struct StoredRoute {
    dst: IpNet,
    gateway: Option<IpAddr>,
    oif: u32,
    /// As the kernel stores it (IPv6 0 became 1024).
    metric: u32,
    table: u32,
    proto: RouteProto,
    kind: RouteKind,
}

impl StoredRoute {
    /// The route as `routes` reports it (no device for the kinds that go nowhere).
    fn to_route(&self, netns: &Netns) -> Route {
        Route {
            dst: self.dst,
            gateway: self.gateway,
            dev: (self.kind == RouteKind::Unicast).then(|| netns.name_of(self.oif)),
            metric: self.metric,
            table: self.table,
            proto: self.proto,
            kind: self.kind,
        }
    }
}

#[derive(Debug, Clone)]
struct Netns {
    links: BTreeMap<u32, FakeLink>,
    next_index: u32,
    /// (ifindex, address) in the order they were added.
    addrs: Vec<(u32, IpNet)>,
    routes: Vec<StoredRoute>,
    sysctls: BTreeMap<Vec<String>, String>,
}

#[derive(Debug, Clone)]
struct FakeProcess {
    command_line: String,
    start_time: u64,
}

#[derive(Debug)]
struct World {
    calls: Vec<Call>,
    failure: Option<PlannedFailure>,
    namespaces: BTreeMap<NsRef, Netns>,
    nft: NftModel,
    nft_applied: Vec<String>,
    processes: BTreeMap<u32, FakeProcess>,
    /// What [`Processes::run`] returns, by program (`argv[0]`).
    run_outputs: BTreeMap<String, RunOutput>,
    next_pid: u32,
    next_start_time: u64,
    next_mac: u32,
    /// What [`crate::Sockets::listening`] returns.
    listening: Vec<crate::Listening>,
}

impl Netns {
    /// A fresh namespace: only `lo`, down, like the kernel makes it.
    fn new() -> Self {
        let mut netns = Self {
            links: BTreeMap::new(),
            next_index: 1,
            addrs: Vec::new(),
            routes: Vec::new(),
            sysctls: BTreeMap::new(),
        };
        netns.insert_link(FakeLink {
            index: 0,
            name: "lo".to_owned(),
            kind: LinkKind::Device,
            mac: MacAddr([0; 6]),
            mtu: 65536,
            up: false,
            master: None,
            alias: None,
            peer: None,
        });
        netns
    }

    /// Inserts a link under the next ifindex and returns that index.
    fn insert_link(&mut self, mut link: FakeLink) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        link.index = index;
        self.links.insert(index, link);
        index
    }

    fn find(&self, name: &str) -> Option<&FakeLink> {
        self.links.values().find(|link| link.name == name)
    }

    fn index_of(&self, name: &str) -> Option<u32> {
        self.find(name).map(|link| link.index)
    }

    /// The addresses on link `index`, IPv4 first (the kernel dumps IPv4 before IPv6).
    fn addrs_on(&self, index: u32) -> Vec<IpNet> {
        let mut addrs: Vec<IpNet> = self
            .addrs
            .iter()
            .filter(|(link, _)| *link == index)
            .map(|(_, net)| *net)
            .collect();
        addrs.sort_by_key(|net| net.addr().is_ipv6());
        addrs
    }

    fn name_of(&self, index: u32) -> String {
        self.links
            .get(&index)
            .map_or_else(|| format!("if{index}"), |link| link.name.clone())
    }

    /// The up link whose connected prefix holds `gateway` (only `only` if given).
    fn link_reaching(&self, gateway: IpAddr, only: Option<u32>) -> Option<u32> {
        self.addrs
            .iter()
            .filter(|(index, _)| only.is_none_or(|only| only == *index))
            .filter(|(index, _)| self.links.get(index).is_some_and(|link| link.up))
            .find(|(_, net)| net.trunc().contains(&gateway))
            .map(|(index, _)| *index)
    }

    /// The kernel's connected routes: one per address prefix on an up link.
    fn kernel_routes(&self) -> Vec<StoredRoute> {
        self.addrs
            .iter()
            .filter(|(index, _)| self.links.get(index).is_some_and(|link| link.up))
            .filter(|(_, net)| net.prefix_len() < net.max_prefix_len())
            .map(|(index, net)| StoredRoute {
                dst: net.trunc(),
                gateway: None,
                oif: *index,
                metric: if net.addr().is_ipv6() {
                    IPV6_KERNEL_METRIC
                } else {
                    0
                },
                table: MAIN_TABLE,
                proto: RouteProto::Kernel,
                kind: RouteKind::Unicast,
            })
            .collect()
    }

    /// What happens to a link's configuration when it goes down (`keep_addr_on_down=0`).
    fn link_went_down(&mut self, index: u32) {
        self.addrs
            .retain(|(i, net)| !(*i == index && net.addr().is_ipv6()));
        self.routes.retain(|route| route.oif != index);
    }

    /// Removes one link and everything hanging off it (not its veth peer).
    fn remove_link(&mut self, index: u32) -> Option<FakeLink> {
        let link = self.links.remove(&index)?;
        self.addrs.retain(|(i, _)| *i != index);
        self.routes.retain(|route| route.oif != index);
        for port in self.links.values_mut() {
            if port.master == Some(index) {
                port.master = None;
            }
        }
        self.sysctls
            .retain(|key, _| per_link_sysctl(key) != Some(link.name.as_str()));
        Some(link)
    }
}

/// The interface a per-interface sysctl key is about: `net.ipv4.conf.<if>.*`,
/// `net.ipv6.neigh.<if>.*`, ...
fn per_link_sysctl<S: AsRef<str>>(key: &[S]) -> Option<&str> {
    match key {
        [net, family, section, link, _, ..]
            if net.as_ref() == "net"
                && matches!(family.as_ref(), "ipv4" | "ipv6")
                && matches!(section.as_ref(), "conf" | "neigh") =>
        {
            Some(link.as_ref())
        }
        _ => None,
    }
}

/// Signals whose default action does not end a process, or that daemons handle (SIGHUP is how
/// DNS servers are told to reload).
fn survives(signal: Signal) -> bool {
    matches!(
        signal,
        Signal::SIGHUP
            | Signal::SIGUSR1
            | Signal::SIGUSR2
            | Signal::SIGCHLD
            | Signal::SIGCONT
            | Signal::SIGWINCH
            | Signal::SIGURG
    )
}

fn namespace_missing(ns: &NsRef) -> SysError {
    SysError::namespace(
        NamespaceOp::Open,
        ns.as_path().unwrap_or(Path::new("/proc/self/ns/net")),
        os_error(Errno::ENOENT),
    )
}

impl World {
    fn new() -> Self {
        let mut host = Netns::new();
        if let Some(lo) = host.links.get_mut(&1) {
            lo.up = true;
        }
        Self {
            calls: Vec::new(),
            failure: None,
            namespaces: BTreeMap::from([(NsRef::Host, host)]),
            nft: NftModel::default(),
            nft_applied: Vec::new(),
            processes: BTreeMap::new(),
            run_outputs: BTreeMap::new(),
            next_pid: FIRST_PID,
            next_start_time: FIRST_START_TIME,
            next_mac: 1,
            listening: Vec::new(),
        }
    }

    fn read(&mut self, line: String) {
        self.calls.push(Call {
            line,
            mutating: false,
        });
    }

    /// Records a mutating call; returns the errno to fail it with, if it is the planned one.
    fn write(&mut self, line: String) -> Option<Errno> {
        self.calls.push(Call {
            line,
            mutating: true,
        });
        let failure = self.failure.as_mut()?;
        if failure.remaining == 0 {
            let errno = failure.errno;
            self.failure = None;
            Some(errno)
        } else {
            failure.remaining -= 1;
            None
        }
    }

    fn ns(&self, ns: &NsRef) -> SysResult<&Netns> {
        self.namespaces.get(ns).ok_or_else(|| namespace_missing(ns))
    }

    fn ns_mut(&mut self, ns: &NsRef) -> SysResult<&mut Netns> {
        self.namespaces
            .get_mut(ns)
            .ok_or_else(|| namespace_missing(ns))
    }

    /// A locally administered unicast MAC, different each time, stable across runs.
    fn generate_mac(&mut self) -> MacAddr {
        let n = self.next_mac;
        self.next_mac += 1;
        let [_, hi, mid, lo] = n.to_be_bytes();
        MacAddr([0x02, 0xfa, 0xce, hi, mid, lo])
    }

    /// Removes a link; a veth takes its peer (wherever it lives) with it.
    fn remove_link(&mut self, ns: &NsRef, index: u32) {
        let Some(link) = self
            .namespaces
            .get_mut(ns)
            .and_then(|netns| netns.remove_link(index))
        else {
            return;
        };
        if let Some((peer_ns, peer_index)) = link.peer
            && let Some(netns) = self.namespaces.get_mut(&peer_ns)
        {
            netns.remove_link(peer_index);
        }
    }
}

/// The observed form of a modelled link, seen from `ns`.
fn link_of(ns: &NsRef, link: &FakeLink) -> Link {
    Link {
        index: link.index,
        name: link.name.clone(),
        kind: link.kind.clone(),
        mac: Some(link.mac),
        mtu: link.mtu,
        up: link.up,
        master: link.master,
        alias: link.alias.clone(),
        peer: link.peer.as_ref().map(|(peer_ns, index)| VethPeer {
            index: *index,
            other_namespace: peer_ns != ns,
        }),
    }
}

fn option_words(mtu: Option<u32>, mac: Option<MacAddr>, alias: Option<&str>) -> String {
    let mut words = String::new();
    if let Some(mtu) = mtu {
        let _ = write!(words, " mtu={mtu}");
    }
    if let Some(mac) = mac {
        let _ = write!(words, " mac={mac}");
    }
    if let Some(alias) = alias {
        let _ = write!(words, " alias={alias:?}");
    }
    words
}

fn check_mtu(mtu: Option<u32>) -> Result<u32, Errno> {
    match mtu {
        None => Ok(DEFAULT_MTU),
        Some(mtu) if (MIN_MTU..=MAX_MTU).contains(&mtu) => Ok(mtu),
        Some(_) => Err(Errno::EINVAL),
    }
}

impl FakeSys {
    /// A machine with only a host namespace holding `lo` (up).
    pub fn new() -> Self {
        Self {
            world: Mutex::new(World::new()),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every call so far, in order, one line each.
    pub fn calls(&self) -> Vec<String> {
        self.world().calls.iter().map(|c| c.line.clone()).collect()
    }

    /// The calls that change (or tried to change) something, in order.
    pub fn mutating_calls(&self) -> Vec<String> {
        self.world()
            .calls
            .iter()
            .filter(|c| c.mutating)
            .map(|c| c.line.clone())
            .collect()
    }

    /// Forgets the calls recorded so far (after setting a scene up, say).
    pub fn clear_calls(&self) {
        self.world().calls.clear();
    }

    /// Makes the `n`th mutating call from now on (1-based) fail with `EIO`, changing nothing.
    pub fn fail_at(&self, n: usize) {
        self.fail_at_with(n, Errno::EIO);
    }

    /// Like [`FakeSys::fail_at`] with a chosen errno.
    pub fn fail_at_with(&self, n: usize, errno: Errno) {
        assert!(n >= 1, "fail_at counts from 1");
        self.world().failure = Some(PlannedFailure {
            remaining: n - 1,
            errno,
        });
    }

    /// Makes a network namespace exist at `path` without recording a call, as if something
    /// else (a container runtime) had made it: `/proc/1234/ns/net`, say.
    pub fn add_namespace(&self, path: impl Into<PathBuf>) {
        self.world()
            .namespaces
            .insert(NsRef::Path(path.into()), Netns::new());
    }

    /// Scripts what [`Processes::run`] returns for `program` (`argv[0]`). A program with no
    /// scripted output does not exist (`ENOENT`), as on a machine without it.
    /// Makes a socket listen (what [`crate::Sockets::listening`] reports).
    pub fn add_listening(&self, listening: crate::Listening) {
        self.world().listening.push(listening);
    }

    pub fn set_run_output(&self, program: &str, output: RunOutput) {
        self.world().run_outputs.insert(program.to_owned(), output);
    }

    /// Ends a process as if it had exited by itself.
    pub fn exit_process(&self, pid: u32) {
        self.world().processes.remove(&pid);
    }

    /// The nft documents applied successfully, in order.
    pub fn nft_applied(&self) -> Vec<String> {
        self.world().nft_applied.clone()
    }

    /// The whole machine as sorted, readable text, without ifindexes (which depend on
    /// history): compare it before and after to prove a rollback left nothing behind.
    pub fn state(&self) -> String {
        let world = self.world();
        let mut out = String::new();
        for (ns, netns) in &world.namespaces {
            let _ = writeln!(out, "namespace {}", ns.short());
            let mut links: Vec<&FakeLink> = netns.links.values().collect();
            links.sort_by(|a, b| a.name.cmp(&b.name));
            for link in links {
                let _ = write!(
                    out,
                    "  link {} {} mtu={} mac={} {}",
                    link.name,
                    link.kind,
                    link.mtu,
                    link.mac,
                    if link.up { "up" } else { "down" }
                );
                if let Some(master) = link.master {
                    let _ = write!(out, " master={}", netns.name_of(master));
                }
                if let Some((peer_ns, index)) = &link.peer {
                    let peer_name = world
                        .namespaces
                        .get(peer_ns)
                        .map_or_else(|| format!("if{index}"), |n| n.name_of(*index));
                    let _ = write!(out, " peer={peer_name}@{}", peer_ns.short());
                }
                if let Some(alias) = &link.alias {
                    let _ = write!(out, " alias={alias:?}");
                }
                out.push('\n');
            }
            let mut addrs: Vec<String> = netns
                .addrs
                .iter()
                .map(|(index, net)| format!("  addr {} {net}", netns.name_of(*index)))
                .collect();
            addrs.sort();
            let mut routes: Vec<String> = netns
                .routes
                .iter()
                .map(|r| {
                    let route = r.to_route(netns);
                    format!("  route {route}")
                })
                .collect();
            routes.sort();
            let sysctls = netns.sysctls.iter().map(|(key, value)| {
                let key: Vec<&str> = key.iter().map(String::as_str).collect();
                format!("  sysctl {}={value}", sysctl_key_display(&key))
            });
            for line in addrs.into_iter().chain(routes).chain(sysctls) {
                let _ = writeln!(out, "{line}");
            }
        }
        for table in world.nft.table_names() {
            let _ = writeln!(out, "nft table {table}");
        }
        for (pid, process) in &world.processes {
            let _ = writeln!(out, "process {pid} {}", process.command_line);
        }
        out
    }
}

impl Default for FakeSys {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for FakeSys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let world = self.world();
        f.debug_struct("FakeSys")
            .field("namespaces", &world.namespaces.len())
            .field("calls", &world.calls.len())
            .finish_non_exhaustive()
    }
}

impl Netlink for FakeSys {
    fn links(&self, ns: &NsRef) -> SysResult<Vec<Link>> {
        let mut world = self.world();
        world.read(format!("links {}", ns.short()));
        let netns = world.ns(ns)?;
        Ok(netns.links.values().map(|link| link_of(ns, link)).collect())
    }

    fn link(&self, ns: &NsRef, name: &str) -> SysResult<Option<Link>> {
        let mut world = self.world();
        world.read(format!("link {} {name}", ns.short()));
        let netns = world.ns(ns)?;
        Ok(netns.find(name).map(|link| link_of(ns, link)))
    }

    fn link_index(&self, ns: &NsRef, name: &str) -> SysResult<Option<u32>> {
        let mut world = self.world();
        world.read(format!("link_index {} {name}", ns.short()));
        Ok(world.ns(ns)?.index_of(name))
    }

    fn add_bridge(&self, ns: &NsRef, spec: &BridgeSpec) -> SysResult<()> {
        let err = |errno| {
            SysError::netlink(
                NetlinkOp::AddBridge,
                Some(&spec.name),
                format!("add bridge {}", spec.name),
                ns,
                os_error(errno),
            )
        };
        let mut world = self.world();
        let line = format!(
            "add_bridge {} {}{}",
            ns.short(),
            spec.name,
            option_words(spec.mtu, spec.mac, spec.alias.as_deref())
        );
        if let Some(errno) = world.write(line) {
            return Err(err(errno));
        }
        check_ifname(&spec.name)?;
        check_alias(spec.alias.as_deref())?;
        let mtu = check_mtu(spec.mtu).map_err(err)?;
        let mac = match spec.mac {
            Some(mac) => mac,
            None => world.generate_mac(),
        };
        let netns = world.ns_mut(ns)?;
        if netns.find(&spec.name).is_some() {
            return Err(err(Errno::EEXIST));
        }
        netns.insert_link(FakeLink {
            index: 0,
            name: spec.name.clone(),
            kind: LinkKind::Bridge,
            mac,
            mtu,
            up: false,
            master: None,
            alias: spec.alias.clone().filter(|a| !a.is_empty()),
            peer: None,
        });
        Ok(())
    }

    fn add_macvlan(&self, ns: &NsRef, spec: &MacvlanSpec) -> SysResult<()> {
        let err = |errno| {
            SysError::netlink(
                NetlinkOp::AddMacvlan,
                Some(&spec.name),
                describe_add_macvlan(ns, spec),
                ns,
                os_error(errno),
            )
        };
        let mut world = self.world();
        let line = format!(
            "add_macvlan {} {} parent={} mode={}@{}{}",
            ns.short(),
            spec.name,
            spec.parent,
            spec.mode,
            spec.link_ns.short(),
            option_words(spec.mtu, spec.mac, spec.alias.as_deref())
        );
        if let Some(errno) = world.write(line) {
            return Err(err(errno));
        }
        check_ifname(&spec.name)?;
        check_alias(spec.alias.as_deref())?;
        let parent_mtu = match world.ns(ns)?.find(&spec.parent) {
            Some(parent) => parent.mtu,
            None => return Err(err(Errno::ENODEV)),
        };
        let mtu = match spec.mtu {
            Some(mtu) if mtu > parent_mtu => return Err(err(Errno::EINVAL)),
            Some(mtu) => mtu,
            None => parent_mtu,
        };
        if world.ns(&spec.link_ns)?.find(&spec.name).is_some() {
            return Err(err(Errno::EEXIST));
        }
        let mac = match spec.mac {
            Some(mac) => mac,
            None => world.generate_mac(),
        };
        world.ns_mut(&spec.link_ns)?.insert_link(FakeLink {
            index: 0,
            name: spec.name.clone(),
            kind: LinkKind::Other("macvlan".into()),
            mac,
            mtu,
            up: false,
            master: None,
            alias: spec.alias.clone().filter(|a| !a.is_empty()),
            peer: None,
        });
        Ok(())
    }

    fn add_veth(&self, ns: &NsRef, spec: &VethSpec) -> SysResult<()> {
        let err = |errno| {
            SysError::netlink(
                NetlinkOp::AddVeth,
                Some(&spec.name),
                describe_add_veth(ns, spec),
                ns,
                os_error(errno),
            )
        };
        let mut world = self.world();
        let mut line = format!(
            "add_veth {} {} peer={}@{}{}",
            ns.short(),
            spec.name,
            spec.peer_name,
            spec.peer_ns.short(),
            option_words(spec.mtu, spec.mac, spec.alias.as_deref())
        );
        if let Some(mac) = spec.peer_mac {
            let _ = write!(line, " peer_mac={mac}");
        }
        if let Some(errno) = world.write(line) {
            return Err(err(errno));
        }
        check_ifname(&spec.name)?;
        check_ifname(&spec.peer_name)?;
        check_alias(spec.alias.as_deref())?;
        let mtu = check_mtu(spec.mtu).map_err(err)?;
        world.ns(&spec.peer_ns)?;
        let netns = world.ns(ns)?;
        let peer_netns = world.ns(&spec.peer_ns)?;
        if netns.find(&spec.name).is_some()
            || peer_netns.find(&spec.peer_name).is_some()
            || (spec.peer_ns == *ns && spec.name == spec.peer_name)
        {
            return Err(err(Errno::EEXIST));
        }
        let mac = match spec.mac {
            Some(mac) => mac,
            None => world.generate_mac(),
        };
        let peer_mac = match spec.peer_mac {
            Some(mac) => mac,
            None => world.generate_mac(),
        };
        let end = |name: &str, mac, alias: Option<String>| FakeLink {
            index: 0,
            name: name.to_owned(),
            kind: LinkKind::Veth,
            mac,
            mtu,
            up: false,
            master: None,
            alias,
            peer: None,
        };
        let alias = spec.alias.clone().filter(|a| !a.is_empty());
        let index = world.ns_mut(ns)?.insert_link(end(&spec.name, mac, alias));
        let peer_index =
            world
                .ns_mut(&spec.peer_ns)?
                .insert_link(end(&spec.peer_name, peer_mac, None));
        if let Some(link) = world.ns_mut(ns)?.links.get_mut(&index) {
            link.peer = Some((spec.peer_ns.clone(), peer_index));
        }
        if let Some(link) = world.ns_mut(&spec.peer_ns)?.links.get_mut(&peer_index) {
            link.peer = Some((ns.clone(), index));
        }
        Ok(())
    }

    fn del_link(&self, ns: &NsRef, name: &str) -> SysResult<()> {
        let err = |errno| {
            SysError::netlink(
                NetlinkOp::DelLink,
                Some(name),
                format!("delete link {name}"),
                ns,
                os_error(errno),
            )
        };
        let mut world = self.world();
        if let Some(errno) = world.write(format!("del_link {} {name}", ns.short())) {
            return Err(err(errno));
        }
        let index = world
            .ns(ns)?
            .index_of(name)
            .ok_or_else(|| err(Errno::ENODEV))?;
        world.remove_link(ns, index);
        Ok(())
    }

    fn set_link(&self, ns: &NsRef, name: &str, change: &LinkChange) -> SysResult<()> {
        let err = |errno| {
            SysError::netlink(
                NetlinkOp::SetLink,
                Some(name),
                format!("change link {name} ({change})"),
                ns,
                os_error(errno),
            )
        };
        let mut world = self.world();
        if let Some(errno) = world.write(format!("set_link {} {name} {change}", ns.short())) {
            return Err(err(errno));
        }
        if let Some(new_name) = &change.new_name {
            check_ifname(new_name)?;
        }
        check_alias(change.alias.as_deref())?;
        let netns = world.ns_mut(ns)?;
        let link = netns.find(name).ok_or_else(|| err(Errno::ENODEV))?.clone();
        // Check everything first so a refused change changes nothing.
        let mtu = match change.mtu {
            Some(mtu) => check_mtu(Some(mtu)).map_err(err)?,
            None => link.mtu,
        };
        let master = match &change.master {
            Some(Some(master)) => {
                let bridge = netns.find(master).ok_or_else(|| err(Errno::ENODEV))?;
                if bridge.kind != LinkKind::Bridge {
                    return Err(err(Errno::EOPNOTSUPP));
                }
                if link.kind == LinkKind::Bridge {
                    return Err(err(Errno::ELOOP));
                }
                Some(bridge.index)
            }
            Some(None) => None,
            None => link.master,
        };
        if let Some(new_name) = &change.new_name
            && *new_name != link.name
        {
            if netns.find(new_name).is_some() {
                return Err(err(Errno::EEXIST));
            }
            // The kernel renames before it applies flags, so `up=false` in the same change
            // does not help.
            if link.up {
                return Err(err(Errno::EBUSY));
            }
        }
        if change.hairpin.is_some() && master.is_none() {
            // Only a bridge port has a hairpin mode.
            return Err(err(Errno::EOPNOTSUPP));
        }
        let went_down = link.up && change.up == Some(false);
        let entry = netns.links.get_mut(&link.index).expect("link was found");
        entry.mtu = mtu;
        entry.master = master;
        if let Some(mac) = change.mac {
            entry.mac = mac;
        }
        if let Some(alias) = &change.alias {
            entry.alias = Some(alias.clone()).filter(|a| !a.is_empty());
        }
        if let Some(up) = change.up {
            entry.up = up;
        }
        if let Some(new_name) = &change.new_name {
            entry.name.clone_from(new_name);
            // Per-interface sysctls follow the interface.
            let renamed: Vec<(Vec<String>, String)> = netns
                .sysctls
                .iter()
                .filter(|(key, _)| per_link_sysctl(key) == Some(link.name.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            for (mut key, value) in renamed {
                netns.sysctls.remove(&key);
                key[3].clone_from(new_name);
                netns.sysctls.insert(key, value);
            }
        }
        if went_down {
            netns.link_went_down(link.index);
        }
        Ok(())
    }

    fn set_ipv4_conf(&self, ns: &NsRef, link: &str, conf: &[(Ipv4Conf, u32)]) -> SysResult<()> {
        let shown = describe_ipv4_conf(conf);
        let err = |errno| {
            SysError::netlink(
                NetlinkOp::SetLink,
                Some(link),
                format!("set {shown} on {link}"),
                ns,
                os_error(errno),
            )
        };
        let mut world = self.world();
        let line = format!("set_ipv4_conf {} {link} {shown}", ns.short());
        if let Some(errno) = world.write(line) {
            return Err(err(errno));
        }
        if conf.iter().any(|(_, value)| *value == 0) {
            return Err(err(Errno::EINVAL));
        }
        let netns = world.ns_mut(ns)?;
        if netns.find(link).is_none() {
            return Err(err(Errno::ENODEV));
        }
        for (key, value) in conf {
            netns.sysctls.insert(
                ["net", "ipv4", "conf", link, key.sysctl_name()]
                    .iter()
                    .map(|part| (*part).to_owned())
                    .collect(),
                value.to_string(),
            );
        }
        Ok(())
    }

    fn link_addrs(&self, ns: &NsRef, index: u32) -> SysResult<Vec<IpNet>> {
        let mut world = self.world();
        world.read(format!("link_addrs {} {index}", ns.short()));
        Ok(world.ns(ns)?.addrs_on(index))
    }

    fn peek_links(
        &self,
        queries: &[(NsRef, Vec<String>)],
    ) -> Vec<SysResult<Vec<Option<Vec<IpNet>>>>> {
        queries
            .iter()
            .map(|(ns, names)| {
                let mut world = self.world();
                world.read(format!("peek_links {} {}", ns.short(), names.join(",")));
                let netns = world.ns(ns)?;
                Ok(names
                    .iter()
                    .map(|name| netns.index_of(name).map(|index| netns.addrs_on(index)))
                    .collect())
            })
            .collect()
    }

    fn links_and_addrs(&self, ns: &NsRef) -> SysResult<(Vec<Link>, Vec<Addr>)> {
        Ok((self.links(ns)?, self.addrs(ns)?))
    }

    fn addrs(&self, ns: &NsRef) -> SysResult<Vec<Addr>> {
        let mut world = self.world();
        world.read(format!("addrs {}", ns.short()));
        let netns = world.ns(ns)?;
        // The kernel dumps IPv4 before IPv6.
        let mut addrs: Vec<Addr> = netns
            .addrs
            .iter()
            .map(|(index, net)| Addr {
                link_index: *index,
                link_name: netns.name_of(*index),
                net: *net,
            })
            .collect();
        addrs.sort_by_key(|addr| addr.net.addr().is_ipv6());
        Ok(addrs)
    }

    fn add_addr(&self, ns: &NsRef, link: &str, net: IpNet) -> SysResult<()> {
        let err = |errno| {
            SysError::netlink(
                NetlinkOp::AddAddr,
                Some(link),
                describe_addr(true, link, net),
                ns,
                os_error(errno),
            )
        };
        let mut world = self.world();
        if let Some(errno) = world.write(format!("add_addr {} {link} {net}", ns.short())) {
            return Err(err(errno));
        }
        let netns = world.ns_mut(ns)?;
        let index = netns.index_of(link).ok_or_else(|| err(Errno::ENODEV))?;
        // IPv4 allows one address under two prefix lengths; IPv6 keys on the address alone.
        let duplicate = netns.addrs.iter().any(|(i, existing)| {
            *i == index
                && existing.addr() == net.addr()
                && (net.addr().is_ipv6() || existing.prefix_len() == net.prefix_len())
        });
        if duplicate {
            return Err(err(Errno::EEXIST));
        }
        netns.addrs.push((index, net));
        Ok(())
    }

    fn del_addr(&self, ns: &NsRef, link: &str, net: IpNet) -> SysResult<()> {
        let err = |errno| {
            SysError::netlink(
                NetlinkOp::DelAddr,
                Some(link),
                describe_addr(false, link, net),
                ns,
                os_error(errno),
            )
        };
        let mut world = self.world();
        if let Some(errno) = world.write(format!("del_addr {} {link} {net}", ns.short())) {
            return Err(err(errno));
        }
        let netns = world.ns_mut(ns)?;
        let index = netns.index_of(link).ok_or_else(|| err(Errno::ENODEV))?;
        let position = netns
            .addrs
            .iter()
            .position(|(i, existing)| *i == index && *existing == net)
            .ok_or_else(|| err(Errno::EADDRNOTAVAIL))?;
        netns.addrs.remove(position);
        // The last IPv4 address gone takes the link's IPv4 routes with it.
        let ipv4_left = netns
            .addrs
            .iter()
            .any(|(i, a)| *i == index && a.addr().is_ipv4());
        if net.addr().is_ipv4() && !ipv4_left {
            netns
                .routes
                .retain(|route| !(route.oif == index && route.dst.addr().is_ipv4()));
        }
        Ok(())
    }

    fn routes(&self, ns: &NsRef) -> SysResult<Vec<Route>> {
        let mut world = self.world();
        world.read(format!("routes {}", ns.short()));
        let netns = world.ns(ns)?;
        let mut routes: Vec<Route> = netns
            .kernel_routes()
            .iter()
            .chain(netns.routes.iter().filter(|r| r.table == MAIN_TABLE))
            .map(|r| r.to_route(netns))
            .collect();
        routes.sort_by(|a, b| {
            (a.dst.addr().is_ipv6(), a.dst, a.metric).cmp(&(
                b.dst.addr().is_ipv6(),
                b.dst,
                b.metric,
            ))
        });
        Ok(routes)
    }

    fn add_route(&self, ns: &NsRef, route: &Route) -> SysResult<()> {
        let err = |errno| {
            SysError::netlink(
                NetlinkOp::AddRoute,
                route.dev.as_deref(),
                describe_route(true, route),
                ns,
                os_error(errno),
            )
        };
        let mut world = self.world();
        if let Some(errno) = world.write(format!("add_route {} {route}", ns.short())) {
            return Err(err(errno));
        }
        check_route(route, true)?;
        let netns = world.ns_mut(ns)?;
        let dev = match &route.dev {
            Some(dev) => {
                let link = netns.find(dev).ok_or_else(|| err(Errno::ENODEV))?;
                if !link.up {
                    return Err(err(Errno::ENETDOWN));
                }
                Some(link.index)
            }
            None => None,
        };
        let oif = match route.gateway {
            _ if route.kind != RouteKind::Unicast => 0,
            Some(gateway) => netns
                .link_reaching(gateway, dev)
                .ok_or_else(|| err(Errno::ENETUNREACH))?,
            None => dev.expect("check_route demands a device when there is no gateway"),
        };
        let metric = route.effective_metric();
        let clash = netns
            .kernel_routes()
            .iter()
            .chain(&netns.routes)
            .any(|r| r.dst == route.dst && r.table == route.table && r.metric == metric);
        if clash {
            return Err(err(Errno::EEXIST));
        }
        netns.routes.push(StoredRoute {
            dst: route.dst,
            gateway: route.gateway,
            oif,
            metric,
            table: route.table,
            proto: route.proto,
            kind: route.kind,
        });
        Ok(())
    }

    fn del_route(&self, ns: &NsRef, route: &Route) -> SysResult<()> {
        let err = |errno| {
            SysError::netlink(
                NetlinkOp::DelRoute,
                route.dev.as_deref(),
                describe_route(false, route),
                ns,
                os_error(errno),
            )
        };
        let mut world = self.world();
        if let Some(errno) = world.write(format!("del_route {} {route}", ns.short())) {
            return Err(err(errno));
        }
        check_route(route, false)?;
        let netns = world.ns_mut(ns)?;
        let dev = match &route.dev {
            Some(dev) => Some(netns.index_of(dev).ok_or_else(|| err(Errno::ENODEV))?),
            None => None,
        };
        // Like the kernel: unset gateway, device and metric match anything.
        let position = netns
            .routes
            .iter()
            .position(|r| {
                r.dst == route.dst
                    && r.table == route.table
                    && route
                        .gateway
                        .is_none_or(|gateway| r.gateway == Some(gateway))
                    && dev.is_none_or(|dev| r.oif == dev)
                    && (route.metric == 0 || r.metric == route.metric)
            })
            .ok_or_else(|| err(Errno::ESRCH))?;
        netns.routes.remove(position);
        Ok(())
    }
}

impl Namespaces for FakeSys {
    fn create_named(&self, netns_dir: &Path, name: &str) -> SysResult<PathBuf> {
        let path = netns_dir.join(name);
        let mut world = self.world();
        if let Some(errno) = world.write(format!("create_named {} {name}", netns_dir.display())) {
            return Err(SysError::namespace(
                NamespaceOp::Mount,
                &path,
                os_error(errno),
            ));
        }
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(SysError::InvalidInput {
                what: "namespace name",
                value: name.to_owned(),
                reason: "must be a single non-empty path component",
            });
        }
        let ns = NsRef::Path(path.clone());
        if world.namespaces.contains_key(&ns) {
            return Err(SysError::namespace(
                NamespaceOp::CreateFile,
                &path,
                os_error(Errno::EEXIST),
            ));
        }
        world.namespaces.insert(ns, Netns::new());
        Ok(path)
    }

    fn delete_named(&self, path: &Path) -> SysResult<()> {
        let mut world = self.world();
        if let Some(errno) = world.write(format!("delete_named {}", path.display())) {
            return Err(SysError::namespace(
                NamespaceOp::Unmount,
                path,
                os_error(errno),
            ));
        }
        let ns = NsRef::Path(path.to_owned());
        let indexes: Vec<u32> = match world.namespaces.get(&ns) {
            Some(netns) => netns.links.keys().copied().collect(),
            None => return Ok(()),
        };
        // Virtual links die with their namespace, veth peers elsewhere with them.
        for index in indexes {
            world.remove_link(&ns, index);
        }
        world.namespaces.remove(&ns);
        Ok(())
    }

    fn is_netns(&self, path: &Path) -> SysResult<bool> {
        let mut world = self.world();
        world.read(format!("is_netns {}", path.display()));
        Ok(world.namespaces.contains_key(&NsRef::Path(path.to_owned())))
    }
}

impl FakeSys {
    /// Checks a sysctl key the way `/proc/sys` would: per-interface keys exist only for
    /// interfaces that exist (and `all` / `default`).
    fn sysctl_exists(netns: &Netns, key: &[&str]) -> bool {
        per_link_sysctl(key)
            .is_none_or(|link| matches!(link, "all" | "default") || netns.find(link).is_some())
    }
}

impl Sysctl for FakeSys {
    fn sysctl_get(&self, ns: &NsRef, key: &[&str]) -> SysResult<String> {
        let shown = sysctl_key_display(key);
        let mut world = self.world();
        world.read(format!("sysctl_get {} {shown}", ns.short()));
        check_sysctl_key(key)?;
        let netns = world.ns(ns)?;
        if !Self::sysctl_exists(netns, key) {
            return Err(SysError::Sysctl {
                op: SysctlOp::Read,
                key: shown,
                value: None,
                ns: ns.clone(),
                source: os_error(Errno::ENOENT),
            });
        }
        let owned: Vec<String> = key.iter().map(|part| (*part).to_owned()).collect();
        let default_key = per_link_sysctl(key).map(|_| {
            let mut default_key = owned.clone();
            "default".clone_into(&mut default_key[3]);
            default_key
        });
        Ok(netns
            .sysctls
            .get(&owned)
            .or_else(|| default_key.and_then(|k| netns.sysctls.get(&k)))
            .cloned()
            .unwrap_or_else(|| "0".to_owned()))
    }

    fn sysctl_set(&self, ns: &NsRef, key: &[&str], value: &str) -> SysResult<()> {
        let shown = sysctl_key_display(key);
        let err = |errno| SysError::Sysctl {
            op: SysctlOp::Write,
            key: shown.clone(),
            value: Some(value.to_owned()),
            ns: ns.clone(),
            source: os_error(errno),
        };
        let mut world = self.world();
        if let Some(errno) = world.write(format!("sysctl_set {} {shown}={value}", ns.short())) {
            return Err(err(errno));
        }
        check_sysctl_key(key)?;
        let netns = world.ns_mut(ns)?;
        if !Self::sysctl_exists(netns, key) {
            return Err(err(Errno::ENOENT));
        }
        netns.sysctls.insert(
            key.iter().map(|part| (*part).to_owned()).collect(),
            value.trim_end_matches('\n').to_owned(),
        );
        Ok(())
    }
}

impl Nft for FakeSys {
    fn nft_apply(&self, json: &str) -> SysResult<()> {
        let op = "apply a ruleset";
        // One line per call, however the document was formatted.
        let shown = serde_json::from_str::<serde_json::Value>(json)
            .map_or_else(|_| json.replace('\n', " "), |value| value.to_string());
        let mut world = self.world();
        if let Some(errno) = world.write(format!("nft_apply {shown}")) {
            return Err(SysError::Nft {
                op: op.to_owned(),
                status: "exit status: 1".to_owned(),
                stderr: format!("Error: Could not process rule: {}", errno.desc()),
            });
        }
        world.nft.apply(json).map_err(|refusal| SysError::Nft {
            op: op.to_owned(),
            status: "exit status: 1".to_owned(),
            stderr: refusal.message,
        })?;
        world.nft_applied.push(json.to_owned());
        Ok(())
    }

    fn nft_list_table(&self, family: NftFamily, name: &str) -> SysResult<Option<String>> {
        let mut world = self.world();
        world.read(format!("nft_list_table {family} {name}"));
        Ok(world.nft.list_table(family, name))
    }

    /// The fake keeps elements as nft's JSON shows them: it applies the batch's document (and
    /// records the call as an `nft_apply`, as the batch was applied before it had bytes).
    fn nft_apply_elements(&self, batch: &netctl_types::nft::ElementBatch) -> SysResult<()> {
        self.nft_apply(&batch.json)
    }

    fn nft_rule_count(&self, family: NftFamily, name: &str) -> SysResult<usize> {
        let mut world = self.world();
        world.read(format!("nft_rule_count {family} {name}"));
        Ok(world.nft.rule_count(family, name))
    }
}

impl crate::Sockets for FakeSys {
    fn listening(&self, protocol: Option<&str>) -> SysResult<Vec<crate::Listening>> {
        let mut sockets = self.world().listening.clone();
        sockets.retain(|s| protocol.is_none_or(|p| s.protocol == p));
        Ok(sockets)
    }

    fn socket_owner(&self, inode: u64) -> Option<String> {
        Some(format!("fake socket {inode}"))
    }

    /// Every name is answered at once (the fake has no DNS server); the question is recorded.
    fn dns_answers(
        &self,
        server: std::net::SocketAddr,
        name: &str,
        ipv6: bool,
        _timeout: std::time::Duration,
    ) -> SysResult<bool> {
        let kind = if ipv6 { "AAAA" } else { "A" };
        self.world()
            .read(format!("dns_answers {server} {name} {kind}"));
        Ok(true)
    }
}

impl Processes for FakeSys {
    fn spawn(&self, spec: &SpawnSpec) -> SysResult<Spawned> {
        let program = spec.program();
        let mut line = format!("spawn {}", spec.command_line());
        match &spec.mode {
            SpawnMode::Foreground => {}
            SpawnMode::Daemon { pid_file, .. } => {
                let _ = write!(line, " (daemon, pid file {})", pid_file.display());
            }
            SpawnMode::ReadyPipe { .. } => line.push_str(" (ready pipe)"),
        }
        let mut world = self.world();
        if let Some(errno) = world.write(line) {
            return Err(SysError::Spawn {
                program,
                source: os_error(errno),
            });
        }
        if spec.argv.is_empty() {
            return Err(SysError::empty_argv());
        }
        let pid = world.next_pid;
        world.next_pid += 1;
        let start_time = world.next_start_time;
        world.next_start_time += 1;
        world.processes.insert(
            pid,
            FakeProcess {
                command_line: spec.command_line(),
                start_time,
            },
        );
        Ok(Spawned { pid, start_time })
    }

    fn run(&self, spec: &SpawnSpec, _timeout: std::time::Duration) -> SysResult<RunOutput> {
        let program = spec.program();
        let mut world = self.world();
        // Recorded as mutating: in general a program run can change anything.
        if let Some(errno) = world.write(format!("run {}", spec.command_line())) {
            return Err(SysError::Spawn {
                program,
                source: os_error(errno),
            });
        }
        if spec.argv.is_empty() {
            return Err(SysError::empty_argv());
        }
        world
            .run_outputs
            .get(&program)
            .cloned()
            .ok_or_else(|| SysError::Spawn {
                program,
                source: os_error(Errno::ENOENT),
            })
    }

    fn process_start_time(&self, pid: u32) -> Option<u64> {
        let mut world = self.world();
        world.read(format!("process_start_time {pid}"));
        world.processes.get(&pid).map(|p| p.start_time)
    }

    fn kill(&self, pid: u32, signal: Signal) -> SysResult<()> {
        let err = |errno| SysError::Signal {
            pid,
            signal,
            source: os_error(errno),
        };
        let mut world = self.world();
        if let Some(errno) = world.write(format!("kill {pid} {signal}")) {
            return Err(err(errno));
        }
        if !world.processes.contains_key(&pid) {
            return Err(err(Errno::ESRCH));
        }
        if !survives(signal) {
            world.processes.remove(&pid);
        }
        Ok(())
    }

    fn is_alive(&self, pid: u32, start_time: u64) -> bool {
        let mut world = self.world();
        world.read(format!("is_alive {pid} {start_time}"));
        world
            .processes
            .get(&pid)
            .is_some_and(|p| p.start_time == start_time)
    }
}

#[cfg(test)]
mod tests;

//! Executing a plan: one handler per (resource, action), an undo journal for what a run
//! creates, and the firewall and file phases around the kernel steps.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use netctl_plan::{Action, Plan, Recorded, Resource, TargetState};
use netctl_state::{
    AttachRequest, AttachmentRecord, ContainerRecord, HelperKind, HelperRecord, LeaseRange,
    MacAddr as RecMac, NetnsRecord, NetworkMode, NetworkRecord, Opaque, PendingOperation,
    StateRead as _, SubnetRecord, choose_ipv4_subnet, generate_id, random_ula,
};
use netctl_sys::{LinkChange, NsRef};
use netctl_types::{ContainerSpec, DesiredState, NetworkSpec, SubnetSpec, error_chain};
use serde::Serialize;

use crate::driver::{self, HostObjects};
use crate::{Engine, EngineError, Result, Survey, files, fwmap, observe};

/// Up to this many touched containers and networks, firewall changes are incremental element
/// batches; beyond it the table is rebuilt in one transaction.
pub(crate) const INCREMENTAL_LIMIT: usize = 8;

/// The id podman gives its default network `podman`.
const PODMAN_DEFAULT_NETWORK_ID: &str =
    "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9";

/// What an apply (or destroy) did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub plan: Plan,
    /// The generation recorded for the applied file, if one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
}

/// Something this run created, and how to take it away again.
#[derive(Debug)]
enum Undo {
    NetworkRecorded(String),
    /// A network's host objects (a bridge, a host-side macvlan).
    NetworkMade(Box<NetworkRecord>),
    ContainerRecorded(String),
    NetnsCreated(PathBuf),
    Attached(Box<(NetworkRecord, ContainerRecord, AttachmentRecord)>),
    FilesWritten(ContainerRecord),
    HelperStarted(HelperRecord),
}

struct Run<'e, 'a> {
    engine: &'e Engine<'a>,
    target: &'e TargetState,
    before: Recorded,
    journal: Vec<Undo>,
    touched_containers: BTreeSet<String>,
    touched_networks: BTreeSet<String>,
    /// Containers whose files are rewritten whole (a repair), not edited.
    full_files: BTreeSet<String>,
    /// For imperative calls: the only containers this run may read and touch, so its cost does
    /// not grow with the number of other containers. `None`: everything (apply, destroy).
    scope: Option<BTreeSet<String>>,
    /// Containers whose hosts file kept user edits (so it differs from the template on purpose).
    edited_files: BTreeSet<String>,
    fw_rebuild: bool,
    /// Containers this run deletes whose namespace is netctl's: their veth pairs are left to
    /// the kernel, which tears every device of a deleted namespace down in one batched cleanup
    /// (deleting veths one by one waits for an RCU grace period each: ~25 ms a container).
    netns_goes: BTreeSet<String>,
    /// Host-side veths left to that cleanup, with their container; [`Run::settle_vanishing`]
    /// waits for them once, and deletes any a still-pinned namespace kept, or whose namespace
    /// this run did not get to delete (a failed step).
    vanishing: Vec<(String, String)>,
    /// Containers whose namespace this run deleted.
    netns_deleted: BTreeSet<String>,
    /// Attachments whose records go with their container's (in one transaction, after its
    /// namespace is deleted), so a run killed before that leaves records matching the kernel.
    deferred_detach: BTreeMap<String, Vec<String>>,
}

pub(crate) fn sys_err(what: impl Into<String>) -> impl FnOnce(netctl_sys::SysError) -> EngineError {
    let what = what.into();
    move |source| EngineError::Sys {
        what,
        source: Box::new(source),
    }
}

impl<'e, 'a> Run<'e, 'a> {
    fn new(engine: &'e Engine<'a>, target: &'e TargetState, before: Recorded) -> Self {
        Run {
            engine,
            target,
            before,
            journal: Vec::new(),
            touched_containers: BTreeSet::new(),
            touched_networks: BTreeSet::new(),
            full_files: BTreeSet::new(),
            scope: None,
            edited_files: BTreeSet::new(),
            fw_rebuild: false,
            netns_goes: BTreeSet::new(),
            vanishing: Vec::new(),
            netns_deleted: BTreeSet::new(),
            deferred_detach: BTreeMap::new(),
        }
    }

    /// Waits (once, for all of them) until the host-side veths left to the kernel's namespace
    /// cleanup are gone; one a namespace pinned by some process keeps alive past the wait is
    /// deleted here, so nothing is left behind either way.
    fn settle_vanishing(&mut self) -> Result<()> {
        if self.vanishing.is_empty() {
            return Ok(());
        }
        let sys = self.engine.sys;
        let wait = std::time::Duration::from_millis(2000 + 2 * self.vanishing.len() as u64);
        let started = std::time::Instant::now();
        let (mut left, mut kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.vanishing)
            .into_iter()
            .partition(|(container, _)| self.netns_deleted.contains(container));
        let mut left: Vec<String> = left.drain(..).map(|(_, veth)| veth).collect();
        loop {
            // By name (an index lookup the kernel answers without the rtnl lock), not a dump of
            // every host link: nothing is decoded or kept beyond the names still waited for.
            let mut still = Vec::with_capacity(left.len());
            for name in left {
                if sys
                    .link_index(&NsRef::Host, &name)
                    .map_err(sys_err(format!("look up {name}")))?
                    .is_some()
                {
                    still.push(name);
                }
            }
            left = still;
            if left.is_empty() || started.elapsed() > wait {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        tracing::debug!(elapsed = ?started.elapsed(), pinned = left.len(), "veths of deleted namespaces gone");
        for name in left.into_iter().chain(kept.drain(..).map(|(_, veth)| veth)) {
            match sys.del_link(&NsRef::Host, &name) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(sys_err(format!("delete veth {name}"))(e)),
            }
        }
        Ok(())
    }

    /// The records as they are now: all of them, or those of the run's scope.
    fn now(&self) -> Result<Recorded> {
        match &self.scope {
            Some(scope) => observe::recorded_for(self.engine.store, scope),
            None => observe::recorded(self.engine.store),
        }
    }

    fn network_record(&self, name: &str) -> Result<NetworkRecord> {
        self.engine
            .store
            .read()?
            .network(name)?
            .ok_or_else(|| EngineError::Invalid(format!("network {name} is not recorded")))
    }

    fn container_record(&self, name: &str) -> Result<ContainerRecord> {
        self.engine
            .store
            .read()?
            .container(name)?
            .ok_or_else(|| EngineError::Invalid(format!("container {name} is not recorded")))
    }

    /// Which containers and networks the plan touches, for the firewall and file phases.
    fn mark_touched(&mut self, plan: &Plan) {
        for step in &plan.steps {
            match &step.resource {
                Resource::Firewall => self.fw_rebuild = true,
                Resource::Network { name } => {
                    if step.action != Action::Repair {
                        self.touched_networks.insert(name.clone());
                    }
                }
                Resource::Container { name } => {
                    self.touched_containers.insert(name.clone());
                    // A repair rewrites the files whole, and so does a container made now:
                    // files left by an earlier container of that name are not the user's.
                    if matches!(
                        step.action,
                        Action::Repair | Action::Create | Action::Replace
                    ) {
                        self.full_files.insert(name.clone());
                    }
                }
                Resource::Attachment { container, .. } => {
                    self.touched_containers.insert(container.clone());
                }
            }
        }
    }

    /// Removes the firewall elements of everything touched, from the state before the run, so
    /// port forwards go before routes and bridges.
    fn firewall_remove_phase(&mut self) {
        // Each incremental change is one `nft` run; past a handful, one rebuild of the whole
        // table (one transaction) is cheaper than many small ones.
        if self.touched_containers.len() + self.touched_networks.len() > INCREMENTAL_LIMIT {
            self.fw_rebuild = true;
        }
        if self.fw_rebuild {
            self.firewall_remove_rebuild();
            return;
        }
        let fw = &self.engine.fw;
        for name in &self.touched_containers {
            if let Some(ctr) = self.before.containers.get(name)
                && let Some(fwc) = fwmap::fw_container(&self.before, ctr)
                && let Err(e) = fw.remove_container(&fwc)
            {
                tracing::debug!("firewall: {e}; the table is rebuilt at the end");
                self.fw_rebuild = true;
            }
        }
        for name in &self.touched_networks {
            if let Some(net) = self.before.networks.get(name)
                && driver::of(net).uses_firewall()
                && let Err(e) = fw.remove_network(&fwmap::fw_network(&self.before, net))
            {
                tracing::debug!("firewall: {e}; the table is rebuilt at the end");
                self.fw_rebuild = true;
            }
        }
    }

    /// The remove phase when the table is rebuilt rather than edited: the table is rebuilt
    /// now without what this run touches, so their port forwards still go before their
    /// routes and bridges (and a run killed half-way leaves no forward to a container it had
    /// already taken down). Best effort: the add phase rebuilds the table whole anyway.
    fn firewall_remove_rebuild(&self) {
        let touches_recorded = self
            .touched_containers
            .iter()
            .any(|c| self.before.containers.contains_key(c))
            || self
                .touched_networks
                .iter()
                .any(|n| self.before.networks.contains_key(n));
        if !touches_recorded {
            return;
        }
        let mut keep = self.before.clone();
        keep.containers
            .retain(|name, _| !self.touched_containers.contains(name));
        keep.networks
            .retain(|name, _| !self.touched_networks.contains(name));
        keep.attachments.retain(|(c, n), _| {
            !self.touched_containers.contains(c) && !self.touched_networks.contains(n)
        });
        let fw = &self.engine.fw;
        let done = if driver::firewalled(&keep).next().is_none() {
            fw.remove_all()
        } else {
            fw.full_rebuild(&fwmap::fw_state(&keep))
        };
        if let Err(e) = done {
            tracing::debug!("firewall: {e}; the table is rebuilt at the end");
        }
    }

    /// Brings aardvark-dns up to date: only the touched containers' lines when the run is an
    /// imperative one that changed no network, everything otherwise.
    fn dns_phase(&self) -> Result<()> {
        if self.scope.is_none() || !self.touched_networks.is_empty() {
            return crate::dns::sync(self.engine);
        }
        crate::dns::sync_touched(
            self.engine,
            &self.before,
            &self.now()?,
            &self.touched_containers,
        )
    }

    /// Adds the firewall elements of everything touched from the records as they are now.
    fn firewall_add_phase(&mut self) -> Result<()> {
        let now = self.now()?;
        let fw = &self.engine.fw;
        if driver::firewalled(&now).next().is_none() {
            // Nothing left to filter for: the table goes, as it came (a run that only touched
            // networks without a firewall never made one).
            let had_firewall = self.touched_networks.iter().any(|n| {
                self.before
                    .networks
                    .get(n)
                    .is_some_and(|net| driver::of(net).uses_firewall())
            });
            if had_firewall || self.fw_rebuild {
                fw.remove_all()?;
            }
            return Ok(());
        }
        if !self.fw_rebuild {
            // Element batches assume the table matches the records. When it does not (its sets
            // are gone after a flush, or a killed run left an element of a container that is
            // no longer recorded in a map), the records are the truth: rebuild from them. Only
            // a rebuild that fails too is an error (say, two records claiming one host port).
            match self.firewall_add_incremental(&now) {
                Ok(()) => return Ok(()),
                Err(e) => tracing::info!("firewall: {e}; rebuilding the table from the records"),
            }
        }
        // A rebuild needs every record, whatever the run's scope.
        self.engine.rebuild_firewall().map(drop)
    }

    /// The touched networks' and containers' elements, one constant-size batch each.
    fn firewall_add_incremental(
        &self,
        now: &Recorded,
    ) -> std::result::Result<(), netctl_firewall::FirewallError> {
        let fw = &self.engine.fw;
        for name in &self.touched_networks {
            if let Some(net) = now.networks.get(name)
                && driver::of(net).uses_firewall()
            {
                fw.add_network(&fwmap::fw_network(now, net))?;
            }
        }
        for name in &self.touched_containers {
            if let Some(ctr) = now.containers.get(name)
                && ctr.mode == NetworkMode::Bridge
                && let Some(fwc) = fwmap::fw_container(now, ctr)
            {
                fw.add_container(&fwc)?;
            }
        }
        Ok(())
    }

    /// Checks, directly, that what the run touched is in place: each touched container's
    /// namespace, its host veths, and its interfaces with their addresses.
    fn verify_touched(&self) -> Result<()> {
        let now = self.now()?;
        let sys = self.engine.sys;
        let mut problems = Vec::new();
        for name in &self.touched_containers {
            let Some(ctr) = now.containers.get(name) else {
                continue;
            };
            let ns = NsRef::path(ctr.netns.path.clone());
            let links = observe::links_of(sys, &ns)?;
            for att in now.attachments_of(name) {
                let n = &att.network;
                let Some(net) = now.networks.get(n) else {
                    continue;
                };
                if let Some(veth) = driver::of(net).attachment_host_link(ctr, net, att)
                    && sys
                        .link(&NsRef::Host, &veth)
                        .map_err(sys_err("look up veth"))?
                        .is_none()
                {
                    problems.push(format!("{name} -> {n}: host veth {veth} is missing"));
                }
                match links.get(&att.interface) {
                    None => problems.push(format!(
                        "{name} -> {n}: interface {} is missing",
                        att.interface
                    )),
                    Some(link) => {
                        for addr in att.addresses.iter().filter(|a| !link.addrs.contains(a)) {
                            problems.push(format!("{name} -> {n}: address {addr} is missing"));
                        }
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Verify(problems.join("; ")))
        }
    }

    /// After a rollback: the whole table rebuilt from the records (or gone, if nothing is
    /// recorded any more).
    fn restore_firewall(&self) -> Result<()> {
        // Every record, whatever the run's scope: the table is rebuilt whole.
        self.engine.rebuild_firewall().map(drop)
    }

    fn files_phase(&mut self) -> Result<()> {
        let now = self.now()?;
        let host = files::HostFiles::read(&self.engine.cfg);
        for name in &self.touched_containers {
            if let Some(ctr) = now.containers.get(name) {
                let dir = files::container_files_dir(&self.engine.cfg, ctr);
                let existed = dir.join("hosts").symlink_metadata().is_ok();
                let full = self.full_files.contains(name);
                if files::sync(&self.engine.cfg, &host, &self.before, &now, ctr, full)?
                    == files::Sync::Edited
                {
                    self.edited_files.insert(name.clone());
                }
                if !existed {
                    self.journal.push(Undo::FilesWritten(ctr.clone()));
                }
            }
        }
        Ok(())
    }

    fn step(&mut self, resource: &Resource, action: Action) -> Result<()> {
        match (resource, action) {
            (Resource::Firewall, _) => {
                self.fw_rebuild = true;
                Ok(())
            }
            (Resource::Network { name }, Action::Create) => self.network_create(name),
            (Resource::Network { name }, Action::Update) => self.network_update(name),
            (Resource::Network { name }, Action::Replace) => {
                self.network_remove(name)?;
                self.network_create(name)
            }
            (Resource::Network { name }, Action::Repair) => self.network_repair(name),
            (Resource::Network { name }, Action::Delete) => self.network_remove(name),
            (Resource::Container { name }, Action::Create) => self.container_create(name),
            (Resource::Container { name }, Action::Update) => self.container_update(name),
            (Resource::Container { name }, Action::Replace) => {
                self.container_remove(name)?;
                self.container_create(name)
            }
            (Resource::Container { name }, Action::Repair) => self.container_repair(name),
            (Resource::Container { name }, Action::Delete) => self.container_remove(name),
            (Resource::Attachment { container, network }, Action::Create) => {
                self.attach(container, network)
            }
            (Resource::Attachment { container, network }, Action::Replace) => {
                self.detach(container, network)?;
                self.attach(container, network)
            }
            (Resource::Attachment { container, network }, Action::Update) => {
                self.attachment_update(container, network)
            }
            (Resource::Attachment { container, network }, Action::Repair) => {
                self.attachment_repair(container, network)
            }
            (Resource::Attachment { container, network }, Action::Delete) => {
                self.detach(container, network)
            }
        }
    }

    // ---- networks -------------------------------------------------------------------------

    fn network_create(&mut self, name: &str) -> Result<()> {
        let target = self.target.networks.get(name).ok_or_else(|| {
            EngineError::Invalid(format!("network {name} is not in the desired state"))
        })?;
        let engine = self.engine;
        let now = self.now()?;
        let mut used: Vec<ipnet::IpNet> = now
            .networks
            .values()
            .flat_map(|n| n.subnets.iter().map(|s| s.subnet))
            .collect();
        used.extend(
            self.target
                .networks
                .values()
                .flat_map(|n| n.subnets.iter().flatten().map(|s| s.subnet)),
        );
        let drv = driver::for_target(target);
        let mut subnets: Vec<SubnetRecord> = if let Some(subnets) = &target.subnets {
            subnets.iter().map(subnet_record).collect()
        } else {
            {
                let host_addrs: Vec<ipnet::IpNet> = engine
                    .sys
                    .addrs(&NsRef::Host)
                    .map_err(sys_err("list host addresses"))?
                    .into_iter()
                    .map(|a| a.net)
                    .collect();
                let v4 = choose_ipv4_subnet(&used, &host_addrs)
                    .map_err(|e| EngineError::Invalid(format!("network {name}: {e}")))?;
                used.push(ipnet::IpNet::V4(v4));
                vec![subnet_record(&SubnetSpec {
                    subnet: ipnet::IpNet::V4(v4),
                    gateway: None,
                    lease_range: None,
                })]
            }
        };
        if target.ipv6 && !subnets.iter().any(|s| s.subnet.addr().is_ipv6()) {
            let v6 = random_ula(&used, &mut rand::rng())
                .map_err(|e| EngineError::Invalid(format!("network {name}: {e}")))?;
            subnets.push(subnet_record(&SubnetSpec {
                subnet: ipnet::IpNet::V6(v6),
                gateway: None,
                lease_range: None,
            }));
        }
        let interface = match &target.bridge {
            Some(b) => b.clone(),
            None => drv.choose_interface(engine.sys, &now)?,
        };
        let options = drv.record_options(target);
        let record = NetworkRecord {
            name: name.to_owned(),
            // podman's default network has a fixed id; keep it, so tools that know it agree.
            id: match &target.id {
                Some(id) => id.clone(),
                None if target.is_default => PODMAN_DEFAULT_NETWORK_ID.to_owned(),
                None => generate_id(&mut rand::rng()),
            },
            driver: driver::record_kind(target.driver),
            network_interface: interface,
            ipv6: target.ipv6 || subnets.iter().any(|s| s.subnet.addr().is_ipv6()),
            subnets,
            internal: target.internal,
            dns_enabled: target.dns && drv.uses_dns(),
            dns_servers: target.dns_servers.clone(),
            mtu: target.mtu,
            isolate: target.isolate,
            labels: target.labels.clone(),
            options,
            routes: Vec::new(),
            created: SystemTime::now(),
            project: target.project.clone(),
        };
        let mut record = record;
        record.set_route_options(target.metric, target.no_default_route);
        record.routes = target.routes.iter().map(route_record).collect();
        record.set_ipam_none(target.ipam_none);
        record.set_outbound_addrs(
            target.outbound_addr4.map(Into::into),
            target.outbound_addr6.map(Into::into),
        );
        engine.store.write(|tx| tx.put_network(&record))?;
        self.journal.push(Undo::NetworkRecorded(name.to_owned()));
        Ok(())
    }

    fn network_update(&mut self, name: &str) -> Result<()> {
        let target = &self.target.networks[name];
        let mut record = self.network_record(name)?;
        record.mtu = target.mtu;
        record.isolate = target.isolate;
        record.set_outbound_addrs(
            target.outbound_addr4.map(Into::into),
            target.outbound_addr6.map(Into::into),
        );
        record.labels.clone_from(&target.labels);
        let drv = driver::of(&record);
        record.dns_enabled = target.dns && drv.uses_dns();
        record.dns_servers.clone_from(&target.dns_servers);
        if target.project.is_some() {
            record.project.clone_from(&target.project);
        }
        self.engine.store.write(|tx| tx.put_network(&record))?;
        if drv.network_ready(self.engine.sys, &record)? != HostObjects::Absent {
            drv.ensure_network(self.engine.sys, &record)?;
        }
        Ok(())
    }

    fn network_repair(&mut self, name: &str) -> Result<()> {
        let record = self.network_record(name)?;
        driver::of(&record).ensure_network(self.engine.sys, &record)?;
        Ok(())
    }

    fn network_remove(&mut self, name: &str) -> Result<()> {
        let attached: Vec<String> = self
            .engine
            .store
            .read()?
            .network_attachments(name)?
            .into_iter()
            .map(|a| a.container)
            .collect();
        for container in attached {
            self.touched_containers.insert(container.clone());
            self.detach(&container, name)?;
        }
        if let Some(record) = self.engine.store.read()?.network(name)? {
            driver::of(&record).remove_network(self.engine.sys, &record)?;
            self.engine.store.write(|tx| tx.remove_network(name))?;
        }
        Ok(())
    }

    /// Makes sure the network's host objects (its bridge) exist before a container joins it.
    /// Objects in place are taken as they are (the cheap path, constant in the number of
    /// containers); repairs do the full check.
    fn ensure_network_objects(&mut self, net: &NetworkRecord) -> Result<()> {
        let drv = driver::of(net);
        match drv.network_ready(self.engine.sys, net)? {
            HostObjects::Ready => return Ok(()),
            // Journal first: a failure half-way through ensure_network leaves objects too.
            HostObjects::Absent => self.journal.push(Undo::NetworkMade(Box::new(net.clone()))),
            HostObjects::Incomplete => {}
        }
        drv.ensure_network(self.engine.sys, net)
    }

    // ---- containers -----------------------------------------------------------------------

    fn container_create(&mut self, name: &str) -> Result<()> {
        let target = self.target.containers.get(name).ok_or_else(|| {
            EngineError::Invalid(format!("container {name} is not in the desired state"))
        })?;
        let sys = self.engine.sys;
        let id = if target.id.is_empty() {
            generate_id(&mut rand::rng())
        } else {
            target.id.clone()
        };
        // Recorded before the namespace is made: whatever happens next (a failure, a SIGKILL),
        // the namespace netctl creates is one it has a record of, so the next run repairs or
        // removes it instead of finding an unknown namespace in its way.
        let record = ContainerRecord {
            name: name.to_owned(),
            id,
            netns: NetnsRecord {
                path: target.netns.clone(),
                managed: target.managed,
            },
            mode: target.mode,
            hostname: target.hostname.clone(),
            spec: Opaque::of(&target.spec).expect("specs serialise"),
            ports: Opaque::of(&self.resolve_host_ports(&target.ports, name)?)
                .expect("ports serialise"),
            created: SystemTime::now(),
            project: target.project.clone(),
            boot_id: self.engine.boot_id().map(ToOwned::to_owned),
        };
        self.engine.store.write(|tx| tx.put_container(&record))?;
        self.journal.push(Undo::ContainerRecorded(name.to_owned()));
        let is_ns = sys.is_netns(&target.netns).map_err(sys_err(format!(
            "check namespace {}",
            target.netns.display()
        )))?;
        if target.managed {
            if is_ns {
                return Err(EngineError::Invalid(format!(
                    "container {name}: {} is already a network namespace, and netctl did not make it",
                    target.netns.display()
                )));
            }
            let path = sys
                .create_named(&self.engine.cfg.netns_dir, name)
                .map_err(sys_err(format!("create network namespace {name}")))?;
            self.journal.push(Undo::NetnsCreated(path));
        } else if !is_ns {
            return Err(EngineError::Invalid(format!(
                "container {name}: {} is not a network namespace",
                target.netns.display()
            )));
        }
        let ns = NsRef::path(target.netns.clone());
        let lo = sys.link(&ns, "lo").map_err(sys_err("look up lo"))?;
        if !lo.is_some_and(|l| l.up) {
            sys.set_link(&ns, "lo", &LinkChange::up())
                .map_err(sys_err(format!("set lo up in {}", target.netns.display())))?;
        }
        self.start_helper(&record)
    }

    /// The container's ports with host ports left to netctl chosen (which needs every
    /// container's ports; skipped when none is left to choose).
    fn resolve_host_ports(
        &self,
        ports: &[netctl_types::PortMapping],
        name: &str,
    ) -> Result<Vec<netctl_types::PortMapping>> {
        if ports
            .iter()
            .all(|p| p.host_port != netctl_types::CHOOSE_HOST_PORT)
        {
            return Ok(ports.to_vec());
        }
        choose_host_ports(ports, &observe::recorded(self.engine.store)?, name)
    }

    /// Starts the container's pasta or slirp4netns (nothing for other modes) and records it.
    fn start_helper(&mut self, ctr: &ContainerRecord) -> Result<()> {
        let sys = self.engine.sys;
        let run_dir = &self.engine.cfg.run_dir;
        let spec: ContainerSpec = ctr.spec.decode().unwrap_or_default();
        let ports = fwmap::ports_of(ctr);
        let (kind, pid, start_time, argv) = match ctr.mode {
            NetworkMode::Pasta => {
                let mut cfg = netctl_pasta::PastaConfig::new(
                    &ctr.netns.path,
                    netctl_pasta::pid_file(run_dir, &ctr.name),
                );
                cfg.ports = ports;
                cfg.options.clone_from(&spec.pasta);
                let started = netctl_pasta::start(sys, &cfg)?;
                (
                    HelperKind::Pasta,
                    started.pid,
                    started.start_time,
                    started.argv,
                )
            }
            NetworkMode::Slirp4netns => {
                let mut cfg = netctl_slirp::SlirpConfig::new(
                    &ctr.netns.path,
                    netctl_slirp::files_dir(run_dir, &ctr.name),
                );
                cfg.options = spec.slirp4netns.clone().unwrap_or_default();
                cfg.ports = ports;
                let started = netctl_slirp::start(sys, &cfg)?;
                (
                    HelperKind::Slirp4netns,
                    started.pid,
                    started.start_time,
                    started.argv,
                )
            }
            NetworkMode::Bridge | NetworkMode::None => return Ok(()),
        };
        let helper = HelperRecord {
            container: ctr.name.clone(),
            kind,
            pid,
            start_time,
            argv,
        };
        // Journal before recording: a failed record must not leave the process running.
        self.journal.push(Undo::HelperStarted(helper.clone()));
        self.engine.store.write(|tx| tx.put_helper(&helper))?;
        Ok(())
    }

    /// Stops the container's recorded helper, if any, and forgets it.
    fn stop_helper(&mut self, name: &str) -> Result<()> {
        if let Some(helper) = self.engine.store.read()?.helper(name)? {
            stop_helper_process(self.engine, &helper)?;
            self.engine.store.write(|tx| tx.remove_helper(name))?;
        }
        Ok(())
    }

    fn container_update(&mut self, name: &str) -> Result<()> {
        let target = &self.target.containers[name];
        let mut record = self.container_record(name)?;
        record.hostname.clone_from(&target.hostname);
        if target.project.is_some() {
            record.project.clone_from(&target.project);
        }
        record.spec = Opaque::of(&target.spec).expect("specs serialise");
        record.ports =
            Opaque::of(&self.resolve_host_ports(&target.ports, name)?).expect("ports serialise");
        self.engine.store.write(|tx| tx.put_container(&record))?;
        if matches!(record.mode, NetworkMode::Pasta | NetworkMode::Slirp4netns) {
            // pasta takes its ports on the command line: a change means a new helper.
            self.stop_helper(name)?;
            self.start_helper(&record)?;
        }
        Ok(())
    }

    fn container_repair(&mut self, name: &str) -> Result<()> {
        let mut record = self.container_record(name)?;
        let boot_id = self.engine.boot_id().map(ToOwned::to_owned);
        if record.boot_id != boot_id {
            // Repaired in this boot: what it names is the kernel's again.
            record.boot_id = boot_id;
            self.engine.store.write(|tx| tx.put_container(&record))?;
        }
        let sys = self.engine.sys;
        let path = &record.netns.path;
        if !sys
            .is_netns(path)
            .map_err(sys_err(format!("check namespace {}", path.display())))?
        {
            if !record.netns.managed {
                return Err(EngineError::Invalid(format!(
                    "container {name}: namespace {} is gone, and netctl does not create namespaces it does not manage",
                    path.display()
                )));
            }
            sys.create_named(&self.engine.cfg.netns_dir, name)
                .map_err(sys_err(format!("re-create network namespace {name}")))?;
            sys.set_link(&NsRef::path(path.clone()), "lo", &LinkChange::up())
                .map_err(sys_err("set lo up"))?;
        }
        if matches!(record.mode, NetworkMode::Pasta | NetworkMode::Slirp4netns) {
            let alive = self
                .engine
                .store
                .read()?
                .helper(name)?
                .is_some_and(|h| sys.is_alive(h.pid, h.start_time));
            if !alive {
                self.stop_helper(name)?;
                self.start_helper(&record)?;
            }
        }
        // Files are rewritten in the files phase (the container is touched).
        Ok(())
    }

    fn container_remove(&mut self, name: &str) -> Result<()> {
        let Some(record) = self.engine.store.read()?.container(name)? else {
            return Ok(());
        };
        let networks: Vec<String> = self
            .engine
            .store
            .read()?
            .container_attachments(name)?
            .into_iter()
            .map(|a| a.network)
            .collect();
        for network in networks {
            self.detach(name, &network)?;
        }
        self.stop_helper(name)?;
        if record.netns.managed {
            self.engine
                .sys
                .delete_named(&record.netns.path)
                .map_err(sys_err(format!(
                    "delete network namespace {}",
                    record.netns.path.display()
                )))?;
            self.netns_deleted.insert(name.to_owned());
        }
        files::remove(&self.engine.cfg, &record)?;
        let deferred = self.deferred_detach.remove(name).unwrap_or_default();
        self.engine.store.write(|tx| {
            for network in &deferred {
                tx.detach(name, network)?;
            }
            tx.remove_container(name)
        })?;
        // netavark's rule, for the attachments that went with the namespace.
        for network in deferred {
            if !self.engine.store.read()?.network_in_use(&network)? {
                let net = self.network_record(&network)?;
                driver::of(&net).remove_network(self.engine.sys, &net)?;
            }
        }
        Ok(())
    }

    // ---- attachments ----------------------------------------------------------------------

    fn attach(&mut self, container: &str, network: &str) -> Result<()> {
        let target = self
            .target
            .containers
            .get(container)
            .and_then(|c| c.attachments.get(network))
            .ok_or_else(|| {
                EngineError::Invalid(format!("{container} -> {network} is not desired"))
            })?;
        let ctr = self.container_record(container)?;
        let net = self.network_record(network)?;
        let aliases = recorded_aliases(&target.aliases, &ctr);
        let request = AttachRequest {
            container: container.to_owned(),
            network: network.to_owned(),
            static_ips: target.static_ips(),
            mac: target.mac.map(|m| RecMac(m.octets())),
            aliases: aliases.into_iter().collect(),
            interface: Some(target.interface.clone()),
            metric: Some(target.metric),
        };
        let att = self.engine.store.write(|tx| {
            let att = tx.attach(&request)?;
            match &target.host_interface {
                Some(name) => tx.set_host_interface(container, network, Some(name.clone())),
                None => Ok(att),
            }
        })?;
        self.journal.push(Undo::Attached(Box::new((
            net.clone(),
            ctr.clone(),
            att.clone(),
        ))));
        self.ensure_network_objects(&net)?;
        driver::of(&net).setup(self.engine.sys, &net, &ctr, &att)?;
        Ok(())
    }

    /// An attachment with its container and network, as recorded (all three, or `None`).
    fn attachment_parts(
        &self,
        container: &str,
        network: &str,
    ) -> Result<
        Option<(
            netctl_state::AttachmentRecord,
            ContainerRecord,
            NetworkRecord,
        )>,
    > {
        let read = self.engine.store.read()?;
        Ok(
            match (
                read.attachment(container, network)?,
                read.container(container)?,
                read.network(network)?,
            ) {
                (Some(att), Some(ctr), Some(net)) => Some((att, ctr, net)),
                _ => None,
            },
        )
    }

    fn detach(&mut self, container: &str, network: &str) -> Result<()> {
        if self
            .deferred_detach
            .get(container)
            .is_some_and(|nets| nets.iter().any(|n| n == network))
        {
            return Ok(());
        }
        let Some((att, ctr, net)) = self.attachment_parts(container, network)? else {
            return Ok(());
        };
        let drv = driver::of(&net);
        if self.netns_goes.contains(container) && ctr.netns.managed {
            // The namespace is deleted later in this run and takes the container side (a
            // bridge's whole veth pair) with it; the records go then too (`container_remove`).
            if let Some(link) =
                drv.teardown_before_netns_delete(self.engine.sys, &net, &ctr, &att)?
            {
                self.vanishing.push((container.to_owned(), link));
            }
            self.deferred_detach
                .entry(container.to_owned())
                .or_default()
                .push(network.to_owned());
            return Ok(());
        }
        drv.teardown(self.engine.sys, &net, &ctr, &att)?;
        self.engine
            .store
            .write(|tx| tx.detach(container, network))?;
        // netavark's rule: the bridge goes when its last container leaves.
        if !self.engine.store.read()?.network_in_use(network)? {
            drv.remove_network(self.engine.sys, &net)?;
        }
        Ok(())
    }

    fn attachment_update(&mut self, container: &str, network: &str) -> Result<()> {
        let target = &self.target.containers[container].attachments[network];
        let ctr = self.container_record(container)?;
        let aliases = recorded_aliases(&target.aliases, &ctr);
        self.engine
            .store
            .write(|tx| tx.set_aliases(container, network, aliases.into_iter().collect()))?;
        Ok(())
    }

    /// Re-creates an attachment with its recorded addresses, MAC and interface name.
    fn attachment_repair(&mut self, container: &str, network: &str) -> Result<()> {
        let Some((att, ctr, net)) = self.attachment_parts(container, network)? else {
            return Err(EngineError::Invalid(format!(
                "attachment {container} -> {network} is not recorded"
            )));
        };
        let drv = driver::of(&net);
        drv.ensure_network(self.engine.sys, &net)?;
        if let Err(e) = drv.teardown(self.engine.sys, &net, &ctr, &att) {
            tracing::debug!("repair {container} -> {network}: {e}");
        }
        drv.setup(self.engine.sys, &net, &ctr, &att)?;
        Ok(())
    }

    // ---- rollback -------------------------------------------------------------------------

    /// Takes away what this run created, newest first; returns how many entries it undid and
    /// the errors it met (undo is best effort and never stops half-way).
    fn rollback(&mut self) -> (usize, Vec<String>) {
        let mut errors = Vec::new();
        let count = self.journal.len();
        let sys = self.engine.sys;
        let store = self.engine.store;
        while let Some(entry) = self.journal.pop() {
            let result: Result<()> = match entry {
                Undo::NetworkRecorded(name) => store
                    .write(|tx| tx.remove_network(&name))
                    .map(drop)
                    .map_err(Into::into),
                Undo::NetworkMade(net) => driver::of(&net).remove_network(sys, &net),
                Undo::ContainerRecorded(name) => store
                    .write(|tx| tx.remove_container(&name))
                    .map(drop)
                    .map_err(Into::into),
                Undo::NetnsCreated(path) => sys
                    .delete_named(&path)
                    .map_err(sys_err(format!("delete {}", path.display()))),
                Undo::Attached(attached) => {
                    let (net, ctr, att) = *attached;
                    let torn = driver::of(&net).teardown(sys, &net, &ctr, &att);
                    let released = store
                        .write(|tx| tx.detach(&att.container, &net.name))
                        .map(drop)
                        .map_err(EngineError::from);
                    torn.and(released)
                }
                Undo::FilesWritten(ctr) => files::remove(&self.engine.cfg, &ctr),
                Undo::HelperStarted(helper) => {
                    let stopped = stop_helper_process(self.engine, &helper);
                    let forgotten = store
                        .write(|tx| tx.remove_helper(&helper.container))
                        .map(drop)
                        .map_err(EngineError::from);
                    stopped.and(forgotten)
                }
            };
            if let Err(e) = result {
                errors.push(error_chain(&e));
            }
        }
        (count, errors)
    }
}

/// First host port of the range podman (and Linux) use for ephemeral ports.
const EPHEMERAL_PORTS: std::ops::RangeInclusive<u32> = 32768..=60999;

/// Gives every mapping whose host port is left to netctl (`0`) a free run of host ports: the
/// lowest in the ephemeral range that no other recorded container publishes with that
/// protocol. (netctl does not probe sockets: only ports it publishes itself are known.)
fn choose_host_ports(
    ports: &[netctl_types::PortMapping],
    now: &Recorded,
    container: &str,
) -> Result<Vec<netctl_types::PortMapping>> {
    let mut used: BTreeSet<(String, u32)> = now
        .containers
        .values()
        .filter(|c| c.name != container)
        .flat_map(fwmap::ports_of)
        .chain(ports.iter().filter(|p| p.host_port != 0).cloned())
        .flat_map(|p| {
            (0..u32::from(p.range.max(1)))
                .map(move |i| (p.protocol.clone(), u32::from(p.host_port) + i))
        })
        .collect();
    let mut out = Vec::with_capacity(ports.len());
    for port in ports {
        let mut port = port.clone();
        if port.host_port == netctl_types::CHOOSE_HOST_PORT {
            let len = u32::from(port.range.max(1));
            let start = EPHEMERAL_PORTS
                .clone()
                .find(|&p| {
                    p + len - 1 <= *EPHEMERAL_PORTS.end()
                        && (p..p + len).all(|q| !used.contains(&(port.protocol.clone(), q)))
                })
                .ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "container {container}: no free host port for {}/{}",
                        port.container_port, port.protocol
                    ))
                })?;
            port.host_port = u16::try_from(start).expect("ephemeral ports fit in u16");
            used.extend((start..start + len).map(|q| (port.protocol.clone(), q)));
        }
        out.push(port);
    }
    Ok(out)
}

/// An attachment's aliases as recorded: the declared ones plus the container's short id, which
/// podman always adds; sorted, without repeats.
fn recorded_aliases(declared: &[String], ctr: &ContainerRecord) -> BTreeSet<String> {
    let mut aliases: BTreeSet<String> = declared.iter().cloned().collect();
    aliases.insert(netctl_types::short_id(&ctr.id).to_owned());
    aliases
}

/// Stops a recorded helper process (gone already is fine).
fn stop_helper_process(engine: &Engine<'_>, helper: &HelperRecord) -> Result<()> {
    match helper.kind {
        HelperKind::Pasta => {
            netctl_pasta::stop(engine.sys, helper.pid, helper.start_time)?;
        }
        HelperKind::Slirp4netns => {
            let socket = netctl_slirp::SlirpConfig::new(
                "",
                netctl_slirp::files_dir(&engine.cfg.run_dir, &helper.container),
            )
            .api_socket;
            netctl_slirp::stop(engine.sys, helper.pid, helper.start_time, &socket)?;
        }
    }
    Ok(())
}

fn subnet_record(spec: &SubnetSpec) -> SubnetRecord {
    SubnetRecord {
        subnet: spec.subnet,
        gateway: Some(spec.effective_gateway()),
        lease_range: spec.lease_range.as_ref().map(|r| LeaseRange {
            start: r.start,
            end: r.end,
        }),
    }
}

/// Execute a plan made against the survey, record, verify.
pub(crate) fn apply(
    engine: &Engine<'_>,
    survey: Survey,
    plan: Plan,
    source: Option<(&Path, &str)>,
) -> Result<ApplyReport> {
    let started = std::time::Instant::now();
    let before = survey.recorded;
    tracing::debug!(elapsed = ?started.elapsed(), steps = plan.steps.len(), "apply: planned");
    let report = execute(engine, plan, before, source, Verify::All);
    tracing::debug!(elapsed = ?started.elapsed(), "apply: executed");
    report
}

/// How much of the system an execution checks afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verify {
    /// Observe everything and re-plan (apply, destroy).
    All,
    /// Only the containers and networks the run touched (connect, disconnect): constant cost
    /// however many containers exist.
    Touched,
}

pub(crate) fn execute(
    engine: &Engine<'_>,
    plan: Plan,
    before: Recorded,
    source: Option<(&Path, &str)>,
    verify: Verify,
) -> Result<ApplyReport> {
    let mut generation = None;
    if plan.is_empty() {
        return Ok(ApplyReport { plan, generation });
    }
    let checking = std::time::Instant::now();
    // What the plan creates must not be in anyone else's way (apply found these already;
    // imperative calls and podman's setup are checked here).
    let mut plan = plan;
    if !plan.conflicts_checked {
        plan.conflicts = crate::conflicts::find(engine, &plan, &before)?;
    }
    let plan = crate::PlanExt::refuse_conflicts(plan)?;
    tracing::debug!(elapsed = ?checking.elapsed(), "execute: conflicts checked");
    files::check_dirs(&engine.cfg)?;
    tracing::debug!(elapsed = ?checking.elapsed(), "execute: directories checked");
    let started = std::time::Instant::now();
    let mut run = Run::new(engine, &plan.target, before);
    if verify == Verify::Touched {
        run.scope = Some(
            plan.steps
                .iter()
                .filter_map(|s| match &s.resource {
                    Resource::Container { name }
                    | Resource::Attachment {
                        container: name, ..
                    } => Some(name.clone()),
                    Resource::Network { .. } | Resource::Firewall => None,
                })
                .collect(),
        );
    }
    run.mark_touched(&plan);
    run.netns_goes = plan
        .steps
        .iter()
        .filter_map(|s| match (&s.resource, s.action) {
            (Resource::Container { name }, Action::Delete) => Some(name.clone()),
            _ => None,
        })
        .collect();
    // Before the first change: say what this run may leave half-done if it dies.
    let pending = pending_of(&plan, &run);
    engine.pending().begin(&pending)?;
    run.firewall_remove_phase();
    tracing::debug!(elapsed = ?started.elapsed(), "execute: firewall remove phase done");
    let mut failed = None;
    for (done, step) in plan.steps.iter().enumerate() {
        engine.report_step(done, plan.steps.len(), step);
        let step_started = std::time::Instant::now();
        let result = run.step(&step.resource, step.action);
        tracing::trace!(elapsed = ?step_started.elapsed(), "step {} {}", step.action, step.resource);
        if let Err(e) = result {
            failed = Some((format!("{} {}", step.action, step.resource), e));
            break;
        }
    }
    // Whether or not a step failed: the veths left to deleted namespaces go before anything
    // else looks at the host (rollback, the files, the firewall, the verification).
    if let Err(e) = run.settle_vanishing()
        && failed.is_none()
    {
        failed = Some(("delete the veths of deleted namespaces".to_owned(), e));
    }
    tracing::debug!(elapsed = ?started.elapsed(), "execute: steps done");
    if failed.is_none()
        && let Err(e) = run.files_phase()
    {
        failed = Some(("write hosts and resolv.conf".to_owned(), e));
    }
    tracing::debug!(elapsed = ?started.elapsed(), "execute: files written");
    if failed.is_none()
        && let Err(e) = run.dns_phase()
    {
        failed = Some(("bring aardvark-dns up to date".to_owned(), e));
    }
    if failed.is_none()
        && let Err(e) = run.firewall_add_phase()
    {
        failed = Some(("add firewall rules".to_owned(), e));
    }
    if let Some((step, err)) = failed {
        let (count, errors) = run.rollback();
        // Put the firewall back as the records now say, in one transaction.
        let fw = run.restore_firewall().err().map(|e| error_chain(&e));
        // DNS serves what the records say after the rollback.
        let fw = fw.or_else(|| crate::dns::sync(engine).err().map(|e| error_chain(&e)));
        let s = if count == 1 { "" } else { "s" };
        let mut undone = format!("rolled back {count} change{s} this run made");
        if errors.is_empty() && fw.is_none() {
            // A clean rollback leaves nothing half-done: the records and the kernel agree
            // again (what was changed in place, the next plan sees as drift).
            if let Err(e) = finish_pending(engine, &pending) {
                tracing::warn!("after the rollback: {e}");
            }
        } else {
            let _ = write!(
                undone,
                "; rollback met errors (the next apply repairs them): {}",
                errors.into_iter().chain(fw).collect::<Vec<_>>().join("; ")
            );
        }
        return Err(EngineError::Step {
            step,
            undone,
            source: Box::new(err),
        });
    }
    tracing::debug!(elapsed = ?started.elapsed(), "execute: firewall add phase done");
    if let Some((path, text)) = source {
        let g = engine
            .store
            .write(|tx| tx.record_generation(text, Some(path)))?;
        generation = Some(g.number);
    }
    if let Verify::Touched = verify {
        run.verify_touched()?;
        finish_pending(engine, &pending)?;
        return Ok(ApplyReport { plan, generation });
    }
    // Verify: the system now matches the records.
    let after = engine.recorded()?;
    let mut observed = engine.observe(&after)?;
    // This run's own marker is still there (it goes once the check passes).
    observed.interrupted = None;
    let check = netctl_plan::plan(
        &desired_from_recorded(&after, &BTreeSet::new()),
        &after,
        &observed,
        &engine.cfg.defaults,
        false,
    );
    let problems: Vec<String> = check
        .drift
        .iter()
        .filter(|d| {
            // Files are checked only where this run wrote them whole: a user's edit kept on
            // purpose, or one this run was not asked to touch (reload), is not a failure.
            !matches!(&d.resource, Resource::Container { name }
                if d.what == netctl_plan::FILES_DRIFT
                    && (run.edited_files.contains(name) || !run.touched_containers.contains(name)))
        })
        .map(|d| format!("{}: {}", d.resource, d.what))
        .collect();
    if !problems.is_empty() {
        return Err(EngineError::Verify(problems.join("; ")));
    }
    finish_pending(engine, &pending)?;
    Ok(ApplyReport { plan, generation })
}

/// What a run may leave half-done: every container and network its steps name, and the
/// firewall.
fn pending_of(plan: &Plan, run: &Run<'_, '_>) -> PendingOperation {
    let mut op = PendingOperation {
        by: netctl_state::LockHolder::current().to_string(),
        containers: run.touched_containers.clone(),
        networks: run.touched_networks.clone(),
        firewall: true,
    };
    for step in &plan.steps {
        if let Resource::Network { name } = &step.resource {
            op.networks.insert(name.clone());
        }
    }
    op
}

/// After a run that finished and verified: its names leave the marker, and so do names of an
/// earlier run that are no longer recorded (nothing is left of them to repair).
fn finish_pending(engine: &Engine<'_>, done: &PendingOperation) -> Result<()> {
    let file = engine.pending();
    let Some(left) = file.read()? else {
        return Ok(());
    };
    let read = engine.store.read()?;
    let mut gone = done.clone();
    for name in &left.containers {
        if read.container(name)?.is_none() {
            gone.containers.insert(name.clone());
        }
    }
    for name in &left.networks {
        if read.network(name)?.is_none() {
            gone.networks.insert(name.clone());
        }
    }
    drop(read);
    file.finish(&gone)?;
    Ok(())
}

/// A desired state that keeps everything recorded except the named containers and networks
/// (and attachments to those networks).
/// A declared route as the store keeps it.
fn route_record(spec: &netctl_types::RouteSpec) -> netctl_state::RouteRecord {
    netctl_state::RouteRecord {
        destination: spec.destination,
        gateway: spec.gateway,
        metric: spec.metric,
        route_type: spec.route_type.as_str().to_owned(),
    }
}

/// A recorded route as declared.
fn route_spec(rec: &netctl_state::RouteRecord) -> netctl_types::RouteSpec {
    netctl_types::RouteSpec {
        destination: rec.destination,
        gateway: rec.gateway,
        metric: rec.metric,
        route_type: netctl_types::RouteType::from_name(&rec.route_type).unwrap_or_default(),
    }
}

pub(crate) fn desired_from_recorded(rec: &Recorded, except: &BTreeSet<String>) -> DesiredState {
    let mut desired = DesiredState::default();
    for (name, net) in &rec.networks {
        if except.contains(name) {
            continue;
        }
        desired.networks.insert(
            name.clone(),
            NetworkSpec {
                subnets: net
                    .subnets
                    .iter()
                    .map(|s| SubnetSpec {
                        subnet: s.subnet,
                        gateway: s.gateway,
                        lease_range: s.lease_range.map(|r| netctl_types::LeaseRangeSpec {
                            start: r.start,
                            end: r.end,
                        }),
                    })
                    .collect(),
                ipv6: net.ipv6,
                internal: net.internal,
                mtu: net.mtu,
                isolate: match net.isolate {
                    netctl_state::Isolate::Off => netctl_types::Isolate::Disabled,
                    netctl_state::Isolate::On => netctl_types::Isolate::Enabled,
                    netctl_state::Isolate::Strict => netctl_types::Isolate::Strict,
                },
                metric: net.metric(),
                no_default_route: net.no_default_route(),
                routes: net.routes.iter().map(route_spec).collect(),
                ipam_driver: if net.ipam_none() {
                    netctl_types::IpamDriver::None
                } else {
                    netctl_types::IpamDriver::HostLocal
                },
                outbound_addr4: match net.outbound_addr(false) {
                    Some(std::net::IpAddr::V4(a)) => Some(a),
                    _ => None,
                },
                outbound_addr6: match net.outbound_addr(true) {
                    Some(std::net::IpAddr::V6(a)) => Some(a),
                    _ => None,
                },
                labels: net.labels.clone(),
                id: Some(net.id.clone()),
                dns: Some(net.dns_enabled),
                dns_servers: net.dns_servers.clone(),
                ..driver::of(net).spec_of(net)
            },
        );
    }
    for (name, ctr) in &rec.containers {
        if except.contains(name) {
            continue;
        }
        let mut spec: ContainerSpec = ctr.spec.decode().unwrap_or_default();
        spec.id = Some(ctr.id.clone());
        // The recorded attachments are the truth (connect/disconnect edit them).
        spec.networks
            .retain(|n, _| rec.attachments.contains_key(&(name.clone(), n.clone())));
        for att in rec.attachments_of(name) {
            let n = &att.network;
            if except.contains(n) {
                spec.networks.shift_remove(n);
                continue;
            }
            let short: String = ctr.id.chars().take(12).collect();
            let entry = spec.networks.entry(n.clone()).or_default();
            entry.interface = Some(att.interface.clone());
            entry.aliases = att
                .aliases
                .iter()
                .filter(|a| **a != short)
                .cloned()
                .collect();
        }
        desired.containers.insert(name.clone(), spec);
    }
    desired
}

/// Removes what netctl made for `only` (all when `None`).
pub(crate) fn destroy(engine: &Engine<'_>, only: Option<&BTreeSet<String>>) -> Result<ApplyReport> {
    let before = engine.recorded()?;
    let desired = match only {
        None => DesiredState::default(),
        Some(names) => desired_from_recorded(&before, names),
    };
    let observed = engine.observe(&before)?;
    let plan = netctl_plan::plan(&desired, &before, &observed, &engine.cfg.defaults, true);
    // Only deletions: a destroy never repairs or changes what it keeps.
    let mut plan = plan;
    plan.steps.retain(|s| s.action == Action::Delete);
    for step in &mut plan.steps {
        step.reason = None;
    }
    plan.drift.clear();
    execute(engine, plan, before, None, Verify::All)
}

/// Re-creates firewall rules and attachments, keeping addresses, MACs and interface names.
pub(crate) fn reload(
    engine: &Engine<'_>,
    containers: Option<&[String]>,
) -> Result<Vec<(String, String)>> {
    let rec = engine.recorded()?;
    let names: Vec<String> = match containers {
        None => rec
            .containers
            .values()
            .filter(|c| c.mode == netctl_state::NetworkMode::Bridge)
            .map(|c| c.name.clone())
            .collect(),
        Some(list) => {
            let read = engine.store.read()?;
            let mut out = Vec::new();
            for q in list {
                let ctr = read.find_container(q)?;
                if ctr.mode != netctl_state::NetworkMode::Bridge {
                    return Err(EngineError::Invalid(format!(
                        "\"{}\" is not supported: invalid network mode",
                        ctr.mode
                    )));
                }
                out.push(ctr.name);
            }
            out
        }
    };
    // The firewall is rebuilt whole, in one transaction (that is what a reload is for: rules
    // lost to a firewall restart or `nft flush ruleset`); of the attachments, those that are
    // not intact are re-created with their recorded addresses, MACs and interface names, and
    // intact ones are left alone (re-creating a working veth only interrupts traffic).
    let reloaded = names
        .iter()
        .map(|n| (n.clone(), rec.containers[n].id.clone()))
        .collect();
    let selected: BTreeSet<String> = names.into_iter().collect();
    let observed = engine.observe(&rec)?;
    let desired = desired_from_recorded(&rec, &BTreeSet::new());
    let mut plan = netctl_plan::plan(&desired, &rec, &observed, &engine.cfg.defaults, false);
    plan.steps.retain(|s| {
        s.action == Action::Repair
            && match &s.resource {
                Resource::Firewall | Resource::Network { .. } => true,
                // A user's edit of hosts is apply's business, not reload's.
                Resource::Container { name } => {
                    selected.contains(name) && s.reason.as_deref() != Some(netctl_plan::FILES_DRIFT)
                }
                Resource::Attachment { container, .. } => selected.contains(container),
            }
    });
    if !plan.steps.iter().any(|s| s.resource == Resource::Firewall) {
        plan.steps.insert(
            0,
            netctl_plan::Step {
                action: Action::Repair,
                resource: Resource::Firewall,
                changes: Vec::new(),
                reason: Some("reload".into()),
                recreates_dependents: false,
            },
        );
    }
    plan.drift.clear();
    // What reload changed is checked directly (the repaired attachments; the table is one
    // transaction that either applied or failed): a second full observation would double its
    // cost for nothing.
    execute(engine, plan, rec, None, Verify::Touched)?;
    Ok(reloaded)
}

/// Options of `connect`, as podman's `network connect` takes them.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub ip: Option<std::net::Ipv4Addr>,
    pub ip6: Option<std::net::Ipv6Addr>,
    pub mac: Option<netctl_types::MacAddr>,
    pub aliases: Vec<String>,
    pub interface: Option<String>,
}

fn bridge_gate(ctr: &ContainerRecord) -> Result<()> {
    if ctr.mode == netctl_state::NetworkMode::Bridge {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "\"{}\" is not supported: invalid network mode",
            ctr.mode
        )))
    }
}

/// Attaches a recorded container to a network and converges. Re-connecting an attached network
/// is a no-op (docker compatibility). Returns whether anything changed.
pub(crate) fn connect(
    engine: &Engine<'_>,
    network: &str,
    container: &str,
    opts: &ConnectOptions,
) -> Result<bool> {
    let (ctr, net) = {
        let read = engine.store.read()?;
        (read.find_container(container)?, read.find_network(network)?)
    };
    bridge_gate(&ctr)?;
    let rec = observe::recorded_for(engine.store, [&ctr.name])?;
    if let Some(att) = rec.attachments.get(&(ctr.name.clone(), net.name.clone())) {
        // Connecting again is a no-op when it asks for nothing new; options that would change
        // the attachment are refused rather than dropped (podman refuses a second connect).
        let differs = differing_connect_options(att, opts);
        if differs.is_empty() {
            return Ok(false);
        }
        return Err(EngineError::Invalid(format!(
            "container {} is already connected to network {} with a different {}; disconnect \
             it first, or change the attachment in the desired-state file",
            ctr.name,
            net.name,
            differs.join(", ")
        )));
    }
    let mut desired = desired_from_recorded(&rec, &BTreeSet::new());
    let spec = desired
        .containers
        .get_mut(&ctr.name)
        .expect("recorded container is desired");
    let used: BTreeSet<String> = spec
        .networks
        .values()
        .filter_map(|a| a.interface.clone())
        .collect();
    // podman: the lowest free ethN when none is given.
    let interface = opts.interface.clone().unwrap_or_else(|| {
        (0..=used.len())
            .map(|n| format!("eth{n}"))
            .find(|n| !used.contains(n))
            .expect("a free ethN")
    });
    spec.networks.insert(
        net.name.clone(),
        netctl_types::AttachmentSpec {
            ip: opts.ip,
            ip6: opts.ip6,
            mac: opts.mac,
            interface: Some(interface),
            aliases: opts.aliases.clone(),
            ..netctl_types::AttachmentSpec::default()
        },
    );
    let observed = crate::observe::assumed(engine, &rec)?;
    let mut plan = netctl_plan::plan(&desired, &rec, &observed, &engine.cfg.defaults, false);
    // An imperative call changes what it was asked to change, nothing else.
    plan.steps.retain(|s| matches!(&s.resource, Resource::Attachment { container: c, network: n } if *c == ctr.name && *n == net.name));
    plan.drift.clear();
    execute(engine, plan, rec, None, Verify::Touched)?;
    Ok(true)
}

/// What `opts` asks of an existing attachment that it does not have.
fn differing_connect_options(
    att: &netctl_state::AttachmentRecord,
    opts: &ConnectOptions,
) -> Vec<&'static str> {
    let has = |ip: std::net::IpAddr| att.addresses.iter().any(|a| a.addr() == ip);
    let mut out = Vec::new();
    if opts.ip.is_some_and(|ip| !has(ip.into())) {
        out.push("IPv4 address");
    }
    if opts.ip6.is_some_and(|ip| !has(ip.into())) {
        out.push("IPv6 address");
    }
    if opts
        .mac
        .is_some_and(|mac| mac != netctl_types::MacAddr::from(att.mac.octets()))
    {
        out.push("MAC address");
    }
    if opts.interface.as_ref().is_some_and(|i| *i != att.interface) {
        out.push("interface name");
    }
    if opts.aliases.iter().any(|a| !att.aliases.contains(a)) {
        out.push("alias list");
    }
    out
}

/// Detaches a recorded container from a network and converges.
pub(crate) fn disconnect(engine: &Engine<'_>, network: &str, container: &str) -> Result<()> {
    let (ctr, net) = {
        let read = engine.store.read()?;
        (read.find_container(container)?, read.find_network(network)?)
    };
    bridge_gate(&ctr)?;
    let rec = observe::recorded_for(engine.store, [&ctr.name])?;
    if !rec
        .attachments
        .contains_key(&(ctr.name.clone(), net.name.clone()))
    {
        return Err(EngineError::Invalid(format!(
            "container {} is not connected to network {}",
            ctr.name, net.name
        )));
    }
    let mut desired = desired_from_recorded(&rec, &BTreeSet::new());
    desired
        .containers
        .get_mut(&ctr.name)
        .expect("recorded container is desired")
        .networks
        .shift_remove(&net.name);
    let observed = crate::observe::assumed(engine, &rec)?;
    let mut plan = netctl_plan::plan(&desired, &rec, &observed, &engine.cfg.defaults, false);
    plan.steps.retain(|s| matches!(&s.resource, Resource::Attachment { container: c, network: n } if *c == ctr.name && *n == net.name));
    plan.drift.clear();
    execute(engine, plan, rec, None, Verify::Touched)?;
    Ok(())
}

//! The planner: desired state (the validated file) × recorded state (the redb store) × observed
//! state (what the kernel and the file system show) → drift and an ordered list of steps.
//!
//! Architecture invariant: this crate is pure. It performs no I/O and holds no executor; `plan`
//! and `apply --dry-run` are this crate plus printing. The binary gathers [`Recorded`] and
//! [`Observed`], calls [`plan`], and `apply` executes the steps in order.
//!
//! Ordering: firewall repair first (later steps add elements to its sets and maps), then
//! everything that removes (attachments, containers, networks), then networks, containers and
//! attachments that are created, replaced, updated or repaired. Within a phase steps are sorted by
//! resource, so output is stable.

pub mod driver;
mod render;
mod resolve;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use ipnet::IpNet;
use netctl_state::{
    AttachmentRecord, ContainerRecord, DnsServerRecord, HelperRecord, NetworkRecord,
    PendingOperation,
};
use netctl_types::DesiredState;
use serde::Serialize;

pub use render::render_text;
pub use resolve::{
    DEFAULT_ROUTE_METRIC, MACVLAN_ROUTE_METRIC, RecordedSettings, TargetAttachment,
    TargetContainer, TargetNetwork, TargetState, host_veth, legacy_metric, project_view,
    recorded_settings, resolve, veth_name,
};

/// Settings the planner needs to fill in what the file leaves out.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// The network a bridge container without `networks` joins.
    pub default_network: String,
    pub default_bridge: String,
    pub default_subnet: IpNet,
    /// Where managed namespaces live (`<netns_dir>/<container>`).
    pub netns_dir: PathBuf,
    /// An aardvark-dns binary was found: a declared bridge network without `dns` serves DNS.
    pub dns_available: bool,
}

/// Everything the store holds that the planner compares against.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub networks: BTreeMap<String, NetworkRecord>,
    pub containers: BTreeMap<String, ContainerRecord>,
    /// Keyed by (container, network).
    pub attachments: BTreeMap<(String, String), AttachmentRecord>,
    /// Keyed by container.
    pub helpers: BTreeMap<String, HelperRecord>,
    /// The aardvark-dns servers netctl started (one per front door at most).
    pub dns_servers: Vec<DnsServerRecord>,
}

impl Recorded {
    /// A container's attachments in network-name order, found without looking at any other
    /// container's (the map is keyed by container first).
    pub fn attachments_of<'a>(
        &'a self,
        container: &str,
    ) -> impl Iterator<Item = &'a AttachmentRecord> + use<'a> {
        let container = container.to_owned();
        self.attachments
            .range((container.clone(), String::new())..)
            .take_while(move |((c, _), _)| *c == container)
            .map(|(_, att)| att)
    }
}

/// Facts about one link, as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkFacts {
    pub up: bool,
    pub addrs: BTreeSet<IpNet>,
}

/// What the kernel and the file system show, for the objects netctl recorded.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Links of the host namespace, by name.
    pub host_links: BTreeMap<String, LinkFacts>,
    /// Container namespaces that exist, with their links. A recorded namespace that is absent
    /// here is missing.
    pub namespaces: BTreeMap<PathBuf, BTreeMap<String, LinkFacts>>,
    /// Whether netctl's nftables table is present and complete.
    pub firewall_ok: bool,
    /// Containers whose helper process (pasta, slirp4netns) is alive.
    pub helpers_alive: BTreeSet<String>,
    /// Files netctl writes, by container: `false` when missing or not what netctl wrote.
    pub files_ok: BTreeMap<String, bool>,
    /// What an earlier operation was changing when it died (its marker is still there): each
    /// of those containers and networks, and the firewall, may be half-done.
    pub interrupted: Option<PendingOperation>,
    /// How DNS differs from the records, by network (aardvark-dns not running, its file for
    /// the network not what the records say, a gateway listener missing).
    pub dns_drift: BTreeMap<String, Vec<String>>,
    /// Containers whose records are of an earlier boot: whatever sits at their namespace path
    /// now, the kernel objects they describe are gone (a reboot or power cut skipped every
    /// teardown), so they are re-created like a missing namespace.
    pub earlier_boot: BTreeSet<String>,
}

/// The drift of a container's hosts or resolv.conf (missing, or not what netctl wrote).
pub const FILES_DRIFT: &str = "hosts or resolv.conf is missing or was edited";

/// What a step does to its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Replace,
    Repair,
    Delete,
}

/// The thing a step or a drift is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Resource {
    Firewall,
    Network { name: String },
    Container { name: String },
    Attachment { container: String, network: String },
}

/// One field that changes, rendered as text for people and JSON alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl Change {
    fn new(field: &str, from: Option<String>, to: Option<String>) -> Change {
        Change {
            field: field.to_owned(),
            from,
            to,
        }
    }
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub action: Action,
    pub resource: Resource,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// Why, in a few words, for replaces and repairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether executing this step re-creates what dependent attachments hang off.
    #[serde(skip)]
    pub recreates_dependents: bool,
}

impl Step {
    fn create(resource: Resource, changes: Vec<Change>) -> Step {
        Step {
            action: Action::Create,
            resource,
            changes,
            reason: None,
            recreates_dependents: false,
        }
    }

    /// A removal; `pruned` for a resource the file no longer declares (its dependents go too,
    /// see [`cascade`]).
    fn delete(resource: Resource, pruned: bool) -> Step {
        Step {
            action: Action::Delete,
            resource,
            changes: Vec::new(),
            reason: pruned.then(|| "not in the file; --prune removes it".to_owned()),
            recreates_dependents: pruned,
        }
    }

    /// An update, or a replace (which re-creates what hangs off the resource) with its reason;
    /// nothing when nothing changes.
    fn changed(
        resource: Resource,
        changes: Vec<Change>,
        replace: bool,
        why_replace: &str,
    ) -> Option<Step> {
        (!changes.is_empty()).then(|| Step {
            action: if replace {
                Action::Replace
            } else {
                Action::Update
            },
            resource,
            changes,
            reason: replace.then(|| why_replace.to_owned()),
            recreates_dependents: replace,
        })
    }
}

/// A difference between what netctl recorded and what the system shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub resource: Resource,
    pub what: String,
    /// The repair re-creates the object everything below it hangs off (a bridge, a namespace),
    /// so the dependent attachments are re-created too.
    #[serde(skip)]
    pub recreates_dependents: bool,
}

impl Drift {
    fn new(resource: Resource, what: String) -> Drift {
        Drift {
            resource,
            what,
            recreates_dependents: false,
        }
    }

    fn severe(resource: Resource, what: String) -> Drift {
        Drift {
            resource,
            what,
            recreates_dependents: true,
        }
    }
}

/// Something in the plan's way that netctl does not own (a link, a namespace, an address, a
/// port someone else holds): found before anything changes, and nothing is applied while any
/// is left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub resource: Resource,
    pub what: String,
}

/// The outcome of planning.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// What stands in the way (see [`Conflict`]); filled by the caller, which can look at the
    /// host, after planning.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Conflict>,
    /// Whether the host was checked for conflicts yet.
    #[serde(skip)]
    pub conflicts_checked: bool,
    pub drift: Vec<Drift>,
    pub steps: Vec<Step>,
    /// Recorded resources the file no longer declares; deleted only with `--prune`.
    pub orphans: Vec<Resource>,
    pub summary: Summary,
    /// The resolved target, for the executor.
    #[serde(skip)]
    pub target: TargetState,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub repair: usize,
    pub delete: usize,
    pub orphans: usize,
}

impl Plan {
    /// True when applying would change nothing.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Plans the convergence of `recorded`/`observed` to `desired`.
pub fn plan(
    desired: &DesiredState,
    recorded: &Recorded,
    observed: &Observed,
    defaults: &Defaults,
    prune: bool,
) -> Plan {
    let target = resolve(desired, recorded, defaults);
    let mut steps = Vec::new();
    let mut drift = Vec::new();
    let mut orphans = Vec::new();

    diff_networks(&target, recorded, prune, &mut steps, &mut orphans);
    diff_containers(&target, recorded, prune, &mut steps, &mut orphans);
    observe_drift(recorded, observed, &mut drift);
    add_repairs(&drift, &mut steps);

    // A replaced or deleted network takes its attachments with it; a replaced container too.
    cascade(&target, recorded, &mut steps);

    steps.sort_by(|a, b| {
        phase(a)
            .cmp(&phase(b))
            .then_with(|| a.resource.cmp(&b.resource))
    });
    steps.dedup_by(|b, a| a.resource == b.resource && a.action == b.action);
    drift.sort_by(|a, b| {
        a.resource
            .cmp(&b.resource)
            .then_with(|| a.what.cmp(&b.what))
    });
    orphans.sort();

    let mut summary = Summary {
        orphans: orphans.len(),
        ..Summary::default()
    };
    for step in &steps {
        match step.action {
            Action::Create => summary.create += 1,
            Action::Update => summary.update += 1,
            Action::Replace => summary.replace += 1,
            Action::Repair => summary.repair += 1,
            Action::Delete => summary.delete += 1,
        }
    }
    Plan {
        conflicts: Vec::new(),
        conflicts_checked: false,
        drift,
        steps,
        orphans,
        summary,
        target,
    }
}

/// Execution phase of a step: lower runs first.
fn phase(step: &Step) -> u8 {
    match (&step.resource, step.action) {
        (Resource::Firewall, _) => 0,
        (Resource::Attachment { .. }, Action::Delete) => 1,
        (Resource::Container { .. }, Action::Delete) => 2,
        (Resource::Network { .. }, Action::Delete) => 3,
        (Resource::Network { .. }, _) => 4,
        (Resource::Container { .. }, _) => 5,
        (Resource::Attachment { .. }, _) => 6,
    }
}

fn network_changes(target: &TargetNetwork, rec: &NetworkRecord) -> (Vec<Change>, bool) {
    let mut changes = Vec::new();
    let mut replace = false;
    let rec_driver = match rec.driver {
        netctl_state::NetworkDriver::Bridge => netctl_types::NetworkDriver::Bridge,
        netctl_state::NetworkDriver::Macvlan => netctl_types::NetworkDriver::Macvlan,
    };
    if target.driver != rec_driver {
        changes.push(Change::new(
            "driver",
            Some(rec_driver.as_str().to_owned()),
            Some(target.driver.as_str().to_owned()),
        ));
        replace = true;
    }
    if target.driver == netctl_types::NetworkDriver::Macvlan {
        let mode = driver::macvlan_mode(rec);
        if target.mode != mode {
            changes.push(Change::new(
                "mode",
                Some(mode.to_string()),
                Some(target.mode.to_string()),
            ));
            replace = true;
        }
        let host = driver::host_address(rec);
        if target.host_address != host {
            changes.push(Change::new(
                "host_address",
                host.map(|h| h.to_string()),
                target.host_address.map(|h| h.to_string()),
            ));
            replace = true;
        }
    }
    if target.driver == netctl_types::NetworkDriver::Bridge {
        let mode = driver::bridge_mode(rec);
        if target.bridge_mode != mode {
            changes.push(Change::new(
                "mode",
                Some(mode.to_string()),
                Some(target.bridge_mode.to_string()),
            ));
            replace = true;
        }
    }
    if let Some(bridge) = &target.bridge
        && *bridge != rec.network_interface
    {
        changes.push(Change::new(
            match target.driver {
                netctl_types::NetworkDriver::Bridge => "bridge",
                netctl_types::NetworkDriver::Macvlan => "parent",
            },
            Some(rec.network_interface.clone()),
            Some(bridge.clone()),
        ));
        replace = true;
    }
    if let Some(id) = &target.id
        && *id != rec.id
    {
        changes.push(Change::new("id", Some(rec.id.clone()), Some(id.clone())));
        replace = true;
    }
    let rec_subnets = render::subnets_of_record(rec);
    if let Some(subnets) = &target.subnets {
        let want = render::subnets_of_target(subnets);
        if want != rec_subnets {
            changes.push(Change::new("subnets", Some(rec_subnets), Some(want)));
            replace = true;
        }
    } else if target.ipv6 && !rec.subnets.iter().any(|s| s.subnet.addr().is_ipv6()) {
        changes.push(Change::new(
            "subnets",
            Some(rec_subnets),
            Some("+ IPv6 ULA /64 (chosen at apply)".into()),
        ));
        replace = true;
    }
    if target.internal != rec.internal {
        changes.push(Change::new(
            "internal",
            Some(rec.internal.to_string()),
            Some(target.internal.to_string()),
        ));
        replace = true;
    }
    if target.mtu != rec.mtu {
        changes.push(Change::new(
            "mtu",
            rec.mtu.map(|m| m.to_string()),
            target.mtu.map(|m| m.to_string()),
        ));
    }
    if target.isolate != rec.isolate {
        changes.push(Change::new(
            "isolate",
            Some(render::isolate_str(rec.isolate).into()),
            Some(render::isolate_str(target.isolate).into()),
        ));
    }
    if target.dns != rec.dns_enabled {
        changes.push(Change::new(
            "dns",
            Some(rec.dns_enabled.to_string()),
            Some(target.dns.to_string()),
        ));
    }
    if target.dns_servers != rec.dns_servers {
        changes.push(Change::new(
            "dns_servers",
            Some(render::list_str(&rec.dns_servers)),
            Some(render::list_str(&target.dns_servers)),
        ));
    }
    // The default routes are made with the attachments: a change re-creates them.
    if target.metric != rec.metric() {
        changes.push(Change::new(
            "metric",
            rec.metric().map(|m| m.to_string()),
            target.metric.map(|m| m.to_string()),
        ));
        replace = true;
    }
    if target.no_default_route != rec.no_default_route() {
        changes.push(Change::new(
            "no_default_route",
            Some(rec.no_default_route().to_string()),
            Some(target.no_default_route.to_string()),
        ));
        replace = true;
    }
    let outbound = |v4: Option<std::net::IpAddr>, v6: Option<std::net::IpAddr>| {
        [v4, v6]
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if target.ipam_none != rec.ipam_none() {
        let name = |none: bool| if none { "none" } else { "host-local" }.to_owned();
        changes.push(Change::new(
            "ipam_driver",
            Some(name(rec.ipam_none())),
            Some(name(target.ipam_none)),
        ));
        replace = true;
    }
    let was = outbound(rec.outbound_addr(false), rec.outbound_addr(true));
    let want = outbound(
        target.outbound_addr4.map(Into::into),
        target.outbound_addr6.map(Into::into),
    );
    if was != want {
        changes.push(Change::new("outbound_addr", Some(was), Some(want)));
    }
    let routes = render::routes_of_record(rec);
    let want = render::routes_of_target(&target.routes);
    if want != routes {
        changes.push(Change::new("routes", Some(routes), Some(want)));
        replace = true;
    }
    if target.labels != rec.labels {
        changes.push(Change::new(
            "labels",
            Some(render::labels_str(&rec.labels)),
            Some(render::labels_str(&target.labels)),
        ));
    }
    project_change(target.project.as_ref(), rec.project.as_ref(), &mut changes);
    (changes, replace)
}

/// A record of no project (written before projects, or by podman) that a project's file names
/// is taken over by that project. (A record of another project never gets here: that is a
/// conflict.)
fn project_change(target: Option<&String>, rec: Option<&String>, changes: &mut Vec<Change>) {
    if let Some(project) = target
        && rec != Some(project)
    {
        changes.push(Change::new("project", rec.cloned(), Some(project.clone())));
    }
}

fn diff_networks(
    target: &TargetState,
    recorded: &Recorded,
    prune: bool,
    steps: &mut Vec<Step>,
    orphans: &mut Vec<Resource>,
) {
    for (name, net) in &target.networks {
        // An external network is someone else's: used as it is, never created or changed.
        if net.external {
            continue;
        }
        let resource = Resource::Network { name: name.clone() };
        match recorded.networks.get(name) {
            None => steps.push(Step::create(resource, render::network_summary(net))),
            Some(rec) => {
                let (changes, replace) = network_changes(net, rec);
                steps.extend(Step::changed(
                    resource,
                    changes,
                    replace,
                    "changes addressing; attachments are re-created",
                ));
            }
        }
    }
    for name in recorded.networks.keys() {
        if !target.networks.contains_key(name) {
            let resource = Resource::Network { name: name.clone() };
            if prune {
                steps.push(Step::delete(resource, true));
            } else {
                orphans.push(resource);
            }
        }
    }
}

fn container_changes(target: &TargetContainer, rec: &ContainerRecord) -> (Vec<Change>, bool) {
    let mut changes = Vec::new();
    let mut replace = false;
    if target.netns != rec.netns.path || target.managed != rec.netns.managed {
        changes.push(Change::new(
            "netns",
            Some(rec.netns.path.display().to_string()),
            Some(target.netns.display().to_string()),
        ));
        replace = true;
    }
    if target.mode != rec.mode {
        changes.push(Change::new(
            "mode",
            Some(rec.mode.to_string()),
            Some(target.mode.to_string()),
        ));
        replace = true;
    }
    if target.id != rec.id {
        changes.push(Change::new(
            "id",
            Some(rec.id.clone()),
            Some(target.id.clone()),
        ));
        replace = true;
    }
    if target.hostname != rec.hostname {
        changes.push(Change::new(
            "hostname",
            Some(rec.hostname.clone()),
            Some(target.hostname.clone()),
        ));
    }
    let rec_spec = resolve::recorded_settings(rec);
    let spec = &target.spec;
    let fields: [(&str, String, String); 5] = [
        (
            "ports",
            render::ports_str(&resolve::recorded_ports(rec)),
            render::ports_str(&target.ports),
        ),
        (
            "dns_servers",
            render::list_str(&rec_spec.dns_servers),
            render::list_str(&spec.dns_servers),
        ),
        (
            "dns_search",
            render::list_str(&rec_spec.dns_search),
            render::list_str(&spec.dns_search),
        ),
        (
            "extra_hosts",
            render::list_str(&rec_spec.extra_hosts),
            render::list_str(&spec.extra_hosts),
        ),
        (
            "pasta",
            render::list_str(&rec_spec.pasta),
            render::list_str(&spec.pasta),
        ),
    ];
    for (field, from, to) in fields {
        if from != to {
            changes.push(Change::new(field, Some(from), Some(to)));
        }
    }
    if rec_spec.slirp4netns != spec.slirp4netns {
        changes.push(Change::new(
            "slirp4netns",
            Some(format!("{:?}", rec_spec.slirp4netns)),
            Some(format!("{:?}", spec.slirp4netns)),
        ));
    }
    project_change(target.project.as_ref(), rec.project.as_ref(), &mut changes);
    (changes, replace)
}

fn diff_containers(
    target: &TargetState,
    recorded: &Recorded,
    prune: bool,
    steps: &mut Vec<Step>,
    orphans: &mut Vec<Resource>,
) {
    for (name, ctr) in &target.containers {
        let resource = Resource::Container { name: name.clone() };
        match recorded.containers.get(name) {
            None => steps.push(Step::create(resource, render::container_summary(ctr))),
            Some(rec) => {
                let (changes, replace) = container_changes(ctr, rec);
                steps.extend(Step::changed(
                    resource,
                    changes,
                    replace,
                    "namespace, mode or id changes",
                ));
            }
        }
        diff_attachments(name, ctr, recorded, steps);
    }
    for (name, rec) in &recorded.containers {
        if target.containers.contains_key(name) {
            continue;
        }
        let resource = Resource::Container { name: name.clone() };
        if prune {
            steps.push(Step::delete(resource, true));
            steps.extend(recorded.attachments_of(&rec.name).map(|att| {
                Step::delete(
                    Resource::Attachment {
                        container: att.container.clone(),
                        network: att.network.clone(),
                    },
                    false,
                )
            }));
        } else {
            orphans.push(resource);
        }
    }
}

fn diff_attachments(name: &str, ctr: &TargetContainer, recorded: &Recorded, steps: &mut Vec<Step>) {
    for (net, att) in &ctr.attachments {
        let resource = Resource::Attachment {
            container: name.to_owned(),
            network: net.clone(),
        };
        match recorded.attachments.get(&(name.to_owned(), net.clone())) {
            None => steps.push(Step::create(resource, render::attachment_summary(att))),
            Some(rec) => {
                let mut changes = Vec::new();
                let mut replace = false;
                for ip in att.static_ips() {
                    if !rec.addresses.iter().any(|a| a.addr() == ip) {
                        // The address of the same family it replaces, so a new IPv6 address
                        // does not read as if the IPv4 one went away.
                        let old = rec
                            .addresses
                            .iter()
                            .find(|a| a.addr().is_ipv4() == ip.is_ipv4())
                            .map(|a| a.addr().to_string());
                        let field = if ip.is_ipv4() { "ip" } else { "ip6" };
                        changes.push(Change::new(field, old, Some(ip.to_string())));
                        replace = true;
                    }
                }
                if let Some(mac) = &att.mac
                    && mac.to_string() != rec.mac.to_string()
                {
                    changes.push(Change::new(
                        "mac",
                        Some(rec.mac.to_string()),
                        Some(mac.to_string()),
                    ));
                    replace = true;
                }
                if att.interface != rec.interface {
                    changes.push(Change::new(
                        "interface",
                        Some(rec.interface.clone()),
                        Some(att.interface.clone()),
                    ));
                    replace = true;
                }
                if att.host_interface.is_some() && att.host_interface != rec.host_interface {
                    changes.push(Change::new(
                        "host_interface",
                        rec.host_interface.clone(),
                        att.host_interface.clone(),
                    ));
                    replace = true;
                }
                if att.aliases != rec.aliases {
                    changes.push(Change::new(
                        "aliases",
                        Some(rec.aliases.join(",")),
                        Some(att.aliases.join(",")),
                    ));
                }
                if !changes.is_empty() {
                    steps.push(Step {
                        action: if replace {
                            Action::Replace
                        } else {
                            Action::Update
                        },
                        resource,
                        changes,
                        reason: None,
                        recreates_dependents: false,
                    });
                }
            }
        }
    }
    for att in recorded.attachments_of(name) {
        if !ctr.attachments.contains_key(&att.network) {
            steps.push(Step::delete(
                Resource::Attachment {
                    container: att.container.clone(),
                    network: att.network.clone(),
                },
                false,
            ));
        }
    }
}

/// What an interrupted operation's marker says, as drift: everything it names that is still
/// recorded is repaired (a container with its attachments re-created, keeping addresses and
/// MACs), because nothing else tells what it had done to them when it died.
fn interrupted_drift(recorded: &Recorded, observed: &Observed, drift: &mut Vec<Drift>) {
    let Some(pending) = &observed.interrupted else {
        return;
    };
    let what = || {
        format!(
            "an earlier netctl run ({}) stopped part-way through changing it",
            pending.by
        )
    };
    if pending.firewall && !recorded.networks.is_empty() {
        drift.push(Drift::new(Resource::Firewall, what()));
    }
    for name in pending
        .networks
        .iter()
        .filter(|n| recorded.networks.contains_key(*n))
    {
        drift.push(Drift::new(Resource::Network { name: name.clone() }, what()));
    }
    for name in pending
        .containers
        .iter()
        .filter(|c| recorded.containers.contains_key(*c))
    {
        drift.push(Drift::severe(
            Resource::Container { name: name.clone() },
            what(),
        ));
    }
}

fn observe_drift(recorded: &Recorded, observed: &Observed, drift: &mut Vec<Drift>) {
    interrupted_drift(recorded, observed, drift);
    if !recorded.networks.is_empty() && !observed.firewall_ok {
        drift.push(Drift::new(
            Resource::Firewall,
            "nftables table inet netctl is missing or incomplete".into(),
        ));
    }
    for (name, net) in &recorded.networks {
        let has_attachments = recorded.attachments.keys().any(|(_, n)| n == name);
        drift.extend(driver::network_drift(
            net,
            has_attachments,
            &observed.host_links,
        ));
    }
    for (name, whats) in &observed.dns_drift {
        for what in whats {
            drift.push(Drift::new(
                Resource::Network { name: name.clone() },
                format!("dns: {what}"),
            ));
        }
    }
    for (name, ctr) in &recorded.containers {
        let resource = Resource::Container { name: name.clone() };
        if observed.earlier_boot.contains(name) {
            drift.push(Drift::severe(
                resource,
                format!(
                    "recorded in an earlier boot: network namespace {} and its interfaces are gone",
                    ctr.netns.path.display()
                ),
            ));
            continue;
        }
        let Some(links) = observed.namespaces.get(&ctr.netns.path) else {
            drift.push(Drift::severe(
                resource,
                format!("network namespace {} is missing", ctr.netns.path.display()),
            ));
            continue;
        };
        if recorded.helpers.contains_key(name) && !observed.helpers_alive.contains(name) {
            drift.push(Drift::new(
                resource.clone(),
                "helper process is not running".into(),
            ));
        }
        if observed.files_ok.get(name) == Some(&false) {
            drift.push(Drift::new(resource.clone(), FILES_DRIFT.into()));
        }
        for att in recorded.attachments_of(name) {
            let resource = Resource::Attachment {
                container: att.container.clone(),
                network: att.network.clone(),
            };
            let Some(net) = recorded.networks.get(&att.network) else {
                continue;
            };
            if let Some(host_veth) = driver::attachment_host_link(ctr, net, att)
                && !observed.host_links.contains_key(&host_veth)
            {
                drift.push(Drift::new(
                    resource.clone(),
                    format!("host veth {host_veth} is missing"),
                ));
            }
            match links.get(&att.interface) {
                None => drift.push(Drift::new(
                    resource,
                    format!("interface {} is missing in the container", att.interface),
                )),
                Some(link) => {
                    for addr in &att.addresses {
                        if !link.addrs.contains(addr) {
                            drift.push(Drift::new(
                                resource.clone(),
                                format!("address {addr} is missing on {}", att.interface),
                            ));
                        }
                    }
                }
            }
        }
    }
}

fn add_repairs(drift: &[Drift], steps: &mut Vec<Step>) {
    // What is deleted anyway is not repaired first (a stale record that is dropped).
    let mut seen: BTreeSet<Resource> = steps
        .iter()
        .filter(|s| s.action == Action::Delete)
        .map(|s| s.resource.clone())
        .collect();
    for d in drift {
        if seen.insert(d.resource.clone()) {
            steps.push(Step {
                action: Action::Repair,
                resource: d.resource.clone(),
                changes: vec![],
                reason: Some(d.what.clone()),
                recreates_dependents: d.recreates_dependents,
            });
        } else if d.recreates_dependents
            && let Some(step) = steps
                .iter_mut()
                .find(|s| s.resource == d.resource && s.action == Action::Repair)
        {
            step.recreates_dependents = true;
        }
    }
}

/// Adds the attachment steps implied by network and container replaces and deletes, and drops
/// steps made redundant by them (an update of something that is re-created anyway).
fn cascade(target: &TargetState, recorded: &Recorded, steps: &mut Vec<Step>) {
    // (container, network) -> whether every cause is a repair (same addresses and MAC) rather
    // than a replace (addresses chosen again).
    let mut recreate: BTreeMap<(String, String), bool> = BTreeMap::new();
    for step in steps.iter() {
        if !step.recreates_dependents {
            continue;
        }
        let repair = step.action == Action::Repair;
        let keys: Vec<&(String, String)> = match &step.resource {
            Resource::Network { name } => recorded
                .attachments
                .keys()
                .filter(|(_, n)| n == name)
                .collect(),
            Resource::Container { name } => recorded
                .attachments
                .keys()
                .filter(|(c, _)| c == name)
                .collect(),
            Resource::Firewall | Resource::Attachment { .. } => Vec::new(),
        };
        for key in keys {
            *recreate.entry(key.clone()).or_insert(repair) &= repair;
        }
    }
    for ((container, network), repair) in recreate {
        let desired = target
            .containers
            .get(&container)
            .is_some_and(|c| c.attachments.contains_key(&network));
        let resource = Resource::Attachment { container, network };
        let already = steps.iter().any(|s| {
            s.resource == resource && matches!(s.action, Action::Delete | Action::Replace)
        });
        if already {
            continue;
        }
        steps.retain(|s| s.resource != resource);
        // A repair keeps the attachment as recorded, whether or not the file names its
        // container (an orphan is repaired like any recorded container, never dropped by it).
        let action = match (desired, repair) {
            (_, true) => Action::Repair,
            (false, false) => Action::Delete,
            (true, false) => Action::Replace,
        };
        steps.push(Step {
            action,
            resource,
            changes: vec![],
            reason: Some(if repair {
                "its bridge or namespace is re-created; same addresses and MAC".into()
            } else {
                "its network or container is re-created".into()
            }),
            recreates_dependents: false,
        });
    }
}

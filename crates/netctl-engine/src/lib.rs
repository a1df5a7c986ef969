//! The engine: gathers recorded and observed state, asks the pure planner for steps, and
//! executes them through the backends, recording every result in the store.
//!
//! `apply` is "plan, then execute each step". Execution keeps an undo journal: when a step fails,
//! what this run created is removed again (links, addresses, leases, namespaces, files, rules),
//! so the host and the store are as they were; what a run changed in place is left in a state
//! the next apply repairs (plan shows it as drift).
//!
//! Firewall work is done around the kernel steps rather than inside them: the rules of every
//! container and network a run touches are removed first (so port forwards go before routes and
//! bridges) and added back from the final records at the end. Each of those is a constant-size
//! element batch; a missing table is rebuilt whole from the records.
//!
//! Invariant: everything that touches the machine goes through `&dyn Sys`; the caller holds the
//! state lock for the whole operation.

mod cni;
mod conflicts;
mod dns;
mod driver;
mod exec;
mod files;
mod fwmap;
mod observe;
mod podman;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use netctl_firewall::{FirewallDriver, NftRunner, NftablesDriver, NoneDriver};
use netctl_plan::{Defaults, Plan, Recorded};
use netctl_state::{StateError, Store};
use netctl_sys::{Sys, SysError};
use netctl_types::DesiredState;

pub use cni::{CNI_LABEL, cni_container_id};
pub use exec::{ApplyReport, ConnectOptions};
pub use files::container_files_dir;
pub use netctl_dns::aardvark::DIR_NAME as DNS_DIR_NAME;
pub use podman::check_request as check_netavark_request;

/// Which firewall driver the engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirewallMode {
    Nftables,
    None,
}

/// Paths and defaults the engine works with (from netctl's settings).
#[derive(Debug, Clone)]
pub struct Config {
    pub netns_dir: PathBuf,
    pub etc_netns_dir: PathBuf,
    pub run_dir: PathBuf,
    pub firewall: FirewallMode,
    pub defaults: Defaults,
    /// The host's hosts file, the base of every container's (podman's `base_hosts_file`).
    pub host_hosts: PathBuf,
    /// The host's resolv.conf.
    pub host_resolv: PathBuf,
    /// What a host port someone on the host already listens on means for an apply.
    pub port_in_use: PortInUse,
    /// The aardvark-dns for DNS networks; `None`: none found, no network serves DNS.
    pub aardvark_binary: Option<PathBuf>,
    /// The port aardvark-dns listens on (53 is DNATed to it when different).
    pub dns_port: u16,
    /// aardvark-dns's config directory (`<run_dir>/aardvark-dns`; netavark's
    /// `<config>/aardvark-dns` for podman).
    pub dns_dir: PathBuf,
    /// Whose networks the aardvark-dns of `dns_dir` serves.
    pub dns_scope: DnsScope,
}

/// Whose networks a run's aardvark-dns serves. Each front door keeps its own server and
/// config directory, as podman and netavark expect theirs: netctl's (TOML files, CNI) in
/// `<run_dir>/aardvark-dns`, podman's in netavark's `<--config>/aardvark-dns`. A run only
/// writes, signals, starts and stops the server of its own scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsScope {
    /// Networks declared to netctl (TOML files, CNI).
    #[default]
    Declared,
    /// Networks podman sent through netavark's protocol.
    Podman,
}

/// What `apply` does when a port it would publish is already in use on the host (a socket
/// listens there): podman binds its ports and fails; netctl's DNAT would silently take the
/// port over, so by default it refuses the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortInUse {
    /// A plan-time conflict naming the port and the listener.
    #[default]
    Refuse,
    /// A warning, and the port is published anyway.
    Warn,
}

/// An engine failure, with the context of what was being done. Causes are boxed so the
/// `Result`s that carry this stay small.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    State(Box<StateError>),
    #[error("{what}")]
    Sys {
        what: String,
        #[source]
        source: Box<SysError>,
    },
    #[error(transparent)]
    Bridge(Box<netctl_bridge::BridgeError>),
    #[error(transparent)]
    Teardown(Box<netctl_bridge::TeardownErrors>),
    #[error(transparent)]
    Macvlan(Box<netctl_macvlan::MacvlanError>),
    #[error(transparent)]
    MacvlanTeardown(Box<netctl_macvlan::TeardownErrors>),
    #[error(transparent)]
    Firewall(Box<netctl_firewall::FirewallError>),
    #[error(transparent)]
    File(Box<netctl_dns::FileError>),
    #[error(transparent)]
    Pasta(Box<netctl_pasta::PastaError>),
    #[error(transparent)]
    Slirp(Box<netctl_slirp::SlirpError>),
    #[error("{0}")]
    Invalid(String),
    #[error("step `{step}` failed; {undone}")]
    Step {
        step: String,
        undone: String,
        #[source]
        source: Box<EngineError>,
    },
    #[error("applied, but the system does not match afterwards: {0}")]
    Verify(String),
    #[error("nothing was changed; in the way:{}", conflict_lines(.0))]
    Conflicts(Vec<netctl_plan::Conflict>),
    /// A CNI request refused or failed with one of the spec's (or netctl's CNI) error codes.
    #[error(transparent)]
    Cni(netctl_cni::CniError),
}

/// Each conflict on a line of its own, indented under the error's first line.
fn conflict_lines(conflicts: &[netctl_plan::Conflict]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for c in conflicts {
        let _ = write!(out, "\n  {}: {}", c.resource, c.what);
    }
    out
}

macro_rules! boxed_from {
    ($($ty:ty => $variant:ident),* $(,)?) => {
        $(impl From<$ty> for EngineError {
            fn from(err: $ty) -> Self {
                EngineError::$variant(Box::new(err))
            }
        })*
    };
}

boxed_from! {
    StateError => State,
    netctl_bridge::BridgeError => Bridge,
    netctl_bridge::TeardownErrors => Teardown,
    netctl_macvlan::MacvlanError => Macvlan,
    netctl_macvlan::TeardownErrors => MacvlanTeardown,
    netctl_firewall::FirewallError => Firewall,
    netctl_dns::FileError => File,
    netctl_pasta::PastaError => Pasta,
    netctl_slirp::SlirpError => Slirp,
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Runs `nft` through the sys seam.
struct SysNft<'a>(&'a dyn Sys);

impl std::fmt::Debug for SysNft<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SysNft")
    }
}

impl NftRunner for SysNft<'_> {
    type Error = SysError;

    fn apply(&self, json: &str) -> Result<(), SysError> {
        self.0.nft_apply(json)
    }

    fn apply_elements(&self, batch: &netctl_types::nft::ElementBatch) -> Result<(), SysError> {
        self.0.nft_apply_elements(batch)
    }
}

/// A plan with conflicts cannot be applied: callers that show or apply plans turn them into
/// the error that lists them all.
pub trait PlanExt: Sized {
    fn refuse_conflicts(self) -> Result<Self>;
}

impl PlanExt for Plan {
    fn refuse_conflicts(self) -> Result<Plan> {
        if self.conflicts.is_empty() {
            Ok(self)
        } else {
            Err(EngineError::Conflicts(self.conflicts))
        }
    }
}

/// What [`Engine::survey`] gathered: the records and the system's state for them.
#[derive(Debug)]
pub struct Survey {
    recorded: Recorded,
    observed: netctl_plan::Observed,
}

/// One netctl operation's view of the machine and the store.
pub struct Engine<'a> {
    sys: &'a dyn Sys,
    store: &'a Store,
    cfg: Config,
    fw: Box<dyn FirewallDriver + 'a>,
    progress: Option<&'a Progress<'a>>,
    /// The kernel's boot id, read once per operation (see [`Engine::boot_id`]).
    boot_id: std::sync::OnceLock<Option<String>>,
}

/// Told before each executed step runs: (steps done, steps in all, the step, as plans print
/// it). The binary draws a progress bar with it on a terminal.
pub type Progress<'a> = dyn Fn(usize, usize, &str) + Sync + 'a;

impl std::fmt::Debug for Engine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl<'a> Engine<'a> {
    pub fn new(sys: &'a dyn Sys, store: &'a Store, cfg: Config) -> Engine<'a> {
        let fw: Box<dyn FirewallDriver + 'a> = match cfg.firewall {
            FirewallMode::Nftables => Box::new(NftablesDriver::new(SysNft(sys))),
            FirewallMode::None => Box::new(NoneDriver),
        };
        Engine {
            sys,
            store,
            cfg,
            fw,
            progress: None,
            boot_id: std::sync::OnceLock::new(),
        }
    }

    /// The running kernel's boot id, recorded with each container so that records of an
    /// earlier boot (a reboot or power cut that skipped every teardown) are known as stale.
    /// `None` where the kernel does not say (a fake system).
    pub(crate) fn boot_id(&self) -> Option<&str> {
        self.boot_id
            .get_or_init(|| {
                self.sys
                    .sysctl_get(&netctl_sys::NsRef::Host, &["kernel", "random", "boot_id"])
                    .ok()
                    .filter(|id| !id.is_empty())
            })
            .as_deref()
    }

    /// Whether `ctr`'s record is of an earlier boot than the running kernel's.
    pub(crate) fn of_earlier_boot(&self, ctr: &netctl_state::ContainerRecord) -> bool {
        match (ctr.boot_id.as_deref(), self.boot_id()) {
            (Some(recorded), Some(now)) => recorded != now,
            _ => false,
        }
    }

    /// Reports every step this engine executes to `progress`, before the step runs.
    #[must_use]
    pub fn with_progress(mut self, progress: &'a Progress<'a>) -> Engine<'a> {
        self.progress = Some(progress);
        self
    }

    /// Tells the progress callback, if any, that `step` (the `done`-th of `total`) runs next.
    pub(crate) fn report_step(&self, done: usize, total: usize, step: &netctl_plan::Step) {
        if let Some(progress) = self.progress {
            progress(done, total, &format!("{} {}", step.action, step.resource));
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The marker of an operation in progress, next to the store.
    pub(crate) fn pending(&self) -> netctl_state::PendingFile {
        netctl_state::PendingFile::new(
            self.store
                .path()
                .parent()
                .expect("the store lives in the state directory"),
        )
    }

    /// Everything recorded, in one read transaction.
    pub fn recorded(&self) -> Result<Recorded> {
        observe::recorded(self.store)
    }

    /// The system as it is, for the recorded objects.
    pub fn observe(&self, recorded: &Recorded) -> Result<netctl_plan::Observed> {
        observe::observe(self, recorded)
    }

    /// How the system differs from the records, whatever file was applied.
    pub fn drift(&self, recorded: &Recorded) -> Result<Vec<netctl_plan::Drift>> {
        let observed = self.observe(recorded)?;
        let desired = exec::desired_from_recorded(recorded, &BTreeSet::new());
        Ok(netctl_plan::plan(&desired, recorded, &observed, &self.cfg.defaults, false).drift)
    }

    /// The records and what the system shows for them: what `plan` and `apply` compare a
    /// desired state with. Reading it changes nothing and does not depend on the desired state,
    /// so a caller can gather it while the desired state is still being parsed and validated.
    pub fn survey(&self) -> Result<Survey> {
        let started = std::time::Instant::now();
        let recorded = self.recorded()?;
        tracing::debug!(elapsed = ?started.elapsed(), "survey: records read");
        let observed = self.observe(&recorded)?;
        Ok(Survey { recorded, observed })
    }

    /// What `apply` would do; changes nothing.
    pub fn plan(&self, desired: &DesiredState, prune: bool) -> Result<Plan> {
        self.plan_surveyed(&self.survey()?, desired, prune)
    }

    /// What `apply` would do against a survey, with whatever on the host stands in its way
    /// ([`Plan::conflicts`]); changes nothing.
    pub fn plan_surveyed(
        &self,
        survey: &Survey,
        desired: &DesiredState,
        prune: bool,
    ) -> Result<Plan> {
        // A project's file is planned against that project's records only: other projects'
        // networks and containers are neither orphans nor repaired here.
        self.check_dns(desired)?;
        let view = netctl_plan::project_view(&survey.recorded, desired, &self.cfg.defaults);
        let mut plan =
            netctl_plan::plan(desired, &view, &survey.observed, &self.cfg.defaults, prune);
        plan.conflicts = conflicts::find(self, &plan, &survey.recorded)?;
        if desired.project.is_some() {
            plan.conflicts
                .extend(conflicts::find_declarative(self, &plan, &survey.recorded)?);
        }
        plan.conflicts_checked = true;
        Ok(plan)
    }

    /// `dns = true` needs aardvark-dns: without it the file is refused before anything
    /// changes. A network that only defaults to DNS gets a warning and no DNS (as podman).
    fn check_dns(&self, desired: &DesiredState) -> Result<()> {
        if self.cfg.aardvark_binary.is_some() {
            return Ok(());
        }
        let declared: Vec<&String> = desired
            .networks
            .iter()
            .filter(|(_, n)| !n.external && n.dns == Some(true))
            .map(|(name, _)| name)
            .collect();
        if !declared.is_empty() {
            return Err(EngineError::Invalid(format!(
                "network(s) {} set dns = true, but no aardvark-dns binary was found (setting aardvark_binary, or {}); nothing was changed",
                declared
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                "/usr/libexec/podman/aardvark-dns, /usr/lib/podman/aardvark-dns"
            )));
        }
        for (name, _) in desired
            .networks
            .iter()
            .filter(|(_, n)| !n.external && n.dns.is_none())
        {
            tracing::warn!(
                "network {name}: no aardvark-dns binary found, so it serves no DNS (install aardvark-dns, or set dns = false)"
            );
        }
        Ok(())
    }

    /// Converges the machine to `desired`. `source` is the file and its text, recorded as the
    /// applied generation.
    pub fn apply(
        &self,
        desired: &DesiredState,
        source: Option<(&Path, &str)>,
        prune: bool,
    ) -> Result<ApplyReport> {
        self.apply_surveyed(self.survey()?, desired, source, prune)
    }

    /// `apply` against a survey taken under this operation's lock (see [`Engine::survey`]).
    pub fn apply_surveyed(
        &self,
        survey: Survey,
        desired: &DesiredState,
        source: Option<(&Path, &str)>,
        prune: bool,
    ) -> Result<ApplyReport> {
        let plan = self.plan_surveyed(&survey, desired, prune)?;
        self.apply_plan(survey, plan, source)
    }

    /// Executes a plan made by [`Engine::plan_surveyed`] from `survey` (so a caller can show
    /// it, or ask, in between).
    pub fn apply_plan(
        &self,
        survey: Survey,
        plan: Plan,
        source: Option<(&Path, &str)>,
    ) -> Result<ApplyReport> {
        exec::apply(self, survey, plan, source)
    }

    /// Removes everything netctl made for the named containers and networks (all when `None`).
    pub fn destroy(&self, only: Option<&BTreeSet<String>>) -> Result<ApplyReport> {
        exec::destroy(self, only)
    }

    /// Attaches a container to a network (podman `network connect`); `false` when it already
    /// was attached.
    pub fn connect(&self, network: &str, container: &str, opts: &ConnectOptions) -> Result<bool> {
        exec::connect(self, network, container, opts)
    }

    /// Detaches a container from a network (podman `network disconnect`).
    pub fn disconnect(&self, network: &str, container: &str) -> Result<()> {
        exec::disconnect(self, network, container)
    }

    /// netavark's `setup`: attaches a podman container (addresses chosen by podman) and returns
    /// podman's status blocks.
    pub fn netavark_setup(
        &self,
        netns: &Path,
        opts: &netctl_types::NetworkOptions,
    ) -> Result<std::collections::BTreeMap<String, netctl_types::StatusBlock>> {
        podman::setup(self, netns, opts)
    }

    /// netavark's `create`: the network checked and completed (see `podman::create`).
    pub fn netavark_create(
        &self,
        req: &netctl_types::NetworkCreateConfig,
    ) -> Result<netctl_types::Network> {
        podman::create(self, req)
    }

    /// netavark's `update NETWORK --network-dns-servers ...`: a podman network's upstreams.
    pub fn netavark_update(&self, network: &str, servers: &[std::net::IpAddr]) -> Result<()> {
        podman::update(self, network, servers)
    }

    /// netavark's `teardown`.
    pub fn netavark_teardown(&self, opts: &netctl_types::NetworkOptions) -> Result<()> {
        podman::teardown(self, opts)
    }

    /// CNI ADD: attaches `CNI_CONTAINERID`'s namespace to the request's network; the result
    /// for the runtime.
    pub fn cni_add(&self, req: &netctl_cni::Request) -> Result<netctl_cni::AddResult> {
        cni::add(self, req)
    }

    /// CNI DEL: idempotent, works without the namespace.
    pub fn cni_del(&self, req: &netctl_cni::Request) -> Result<()> {
        cni::del(self, req)
    }

    /// CNI CHECK: `prevResult` ⇄ records ⇄ kernel.
    pub fn cni_check(&self, req: &netctl_cni::Request) -> Result<()> {
        cni::check(self, req)
    }

    /// CNI GC: releases the network's CNI attachments not in `cni.dev/valid-attachments`;
    /// returns what it released.
    pub fn cni_gc(&self, req: &netctl_cni::Request) -> Result<Vec<String>> {
        cni::gc(self, req)
    }

    /// CNI STATUS: whether the store and the firewall are usable.
    pub fn cni_status(&self) -> Result<()> {
        cni::status(self)
    }

    /// netctl's nftables table rebuilt whole from the records, in one transaction: what
    /// netavark's `firewall-reload` does after nftables.service or firewalld flushed the
    /// ruleset. Containers recorded in an earlier boot are left out (their addresses may be
    /// another container's now; a setup or apply brings them back). Returns how many
    /// containers' rules were restored.
    pub fn rebuild_firewall(&self) -> Result<usize> {
        let mut rec = observe::recorded(self.store)?;
        let stale: BTreeSet<String> = rec
            .containers
            .values()
            .filter(|c| self.of_earlier_boot(c))
            .map(|c| c.name.clone())
            .collect();
        rec.containers.retain(|name, _| !stale.contains(name));
        rec.attachments.retain(|(c, _), _| !stale.contains(c));
        if crate::driver::firewalled(&rec).next().is_none() {
            self.fw.remove_all()?;
        } else {
            self.fw.full_rebuild(&fwmap::fw_state(&rec))?;
        }
        Ok(rec.containers.len())
    }

    /// Re-creates firewall rules and attachments of `containers` (all when `None`), keeping
    /// addresses, MACs and interface names. Returns each reloaded container's name and id.
    pub fn reload(&self, containers: Option<&[String]>) -> Result<Vec<(String, String)>> {
        exec::reload(self, containers)
    }
}

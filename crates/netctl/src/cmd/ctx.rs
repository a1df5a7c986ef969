//! What the state-changing commands share: the lock, the store, the system seam, the engine's
//! configuration, and loading a desired-state file.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use netctl_engine::Survey;
use netctl_engine::{Config, FirewallMode};
use netctl_plan::Defaults;
use netctl_state::{LockError, OperationLock, Store};
use netctl_sys::LinuxSys;
use netctl_types::DesiredState;

use crate::settings::{FirewallDriver, Settings};

/// An open operation: the state lock (held until drop), the store and the kernel seam.
pub struct Ctx {
    // Field order: the store closes before the lock is released, and termination signals
    // that came during the operation take effect only after both.
    pub store: Store,
    pub sys: LinuxSys,
    pub config: Config,
    _lock: Option<OperationLock>,
    _deferred: Option<netctl_sys::DeferredTermination>,
}

impl Ctx {
    /// Takes the state lock (bounded wait) and opens the store.
    pub fn open(settings: &Settings) -> anyhow::Result<Ctx> {
        let lock = OperationLock::acquire(
            &settings.state_dir,
            Duration::from_secs(settings.lock_timeout),
        )?;
        Self::locked(settings, lock)
    }

    /// For commands that only read (`show`, `inspect`, `network ls`): the store opened
    /// read-only beside whatever operation runs, without waiting for its lock. What is shown
    /// is the last committed state (a running apply's progress is not half-visible). Falls
    /// back to [`Ctx::open`] when the store cannot be read that way (not made yet, or left
    /// needing recovery by a killed writer).
    pub fn open_read(settings: &Settings) -> anyhow::Result<Ctx> {
        match Store::open_read_only(&settings.state_dir)? {
            Some(store) => Ok(Ctx {
                store,
                sys: LinuxSys::new(),
                config: engine_config(settings)?,
                _lock: None,
                _deferred: None,
            }),
            None => Self::open(settings),
        }
    }

    /// `open`, unless another operation holds the lock: then `None` at once, without waiting.
    fn try_open(settings: &Settings) -> anyhow::Result<Option<Ctx>> {
        match OperationLock::acquire(&settings.state_dir, Duration::ZERO) {
            Ok(lock) => Self::locked(settings, lock).map(Some),
            Err(LockError::Timeout { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn locked(settings: &Settings, lock: OperationLock) -> anyhow::Result<Ctx> {
        let store = Store::open(&settings.state_dir)?;
        Ok(Ctx {
            store,
            sys: LinuxSys::new(),
            config: engine_config(settings)?,
            _lock: Some(lock),
            // Taken once the lock is held: waiting for the lock stays interruptible.
            _deferred: Some(netctl_sys::defer_termination()),
        })
    }

    pub fn engine(&self) -> netctl_engine::Engine<'_> {
        netctl_engine::Engine::new(&self.sys, &self.store, self.config.clone())
    }
}

pub fn engine_config(settings: &Settings) -> anyhow::Result<Config> {
    let aardvark = settings.aardvark().map_err(anyhow::Error::msg)?;
    Ok(Config {
        netns_dir: settings.netns_dir.clone(),
        etc_netns_dir: settings.etc_netns_dir.clone(),
        run_dir: settings.run_dir.clone(),
        firewall: match settings.firewall_driver {
            FirewallDriver::Nftables => FirewallMode::Nftables,
            FirewallDriver::None => FirewallMode::None,
        },
        defaults: Defaults {
            default_network: settings.default_network.clone(),
            default_bridge: settings.default_bridge.clone(),
            default_subnet: settings.default_subnet.parse().with_context(|| {
                format!(
                    "setting default_subnet {:?} is not a subnet",
                    settings.default_subnet
                )
            })?,
            netns_dir: settings.netns_dir.clone(),
            dns_available: aardvark.is_some(),
        },
        host_hosts: "/etc/hosts".into(),
        host_resolv: "/etc/resolv.conf".into(),
        port_in_use: match settings.port_in_use {
            crate::settings::PortInUse::Refuse => netctl_engine::PortInUse::Refuse,
            crate::settings::PortInUse::Warn => netctl_engine::PortInUse::Warn,
        },
        dns_dir: settings.run_dir.join(netctl_engine::DNS_DIR_NAME),
        dns_scope: netctl_engine::DnsScope::Declared,
        aardvark_binary: aardvark,
        dns_port: settings.dns_port,
    })
}

/// Reads and validates a desired-state file; returns the state (with its project settled,
/// see [`project_of`]) and the file's text.
pub fn load_desired(path: &Path, project: Option<&str>) -> anyhow::Result<(DesiredState, String)> {
    let (validated, text) = super::validate::load(path)?;
    let mut desired = validated.state.expect("validated without errors").desired;
    desired.project = Some(project_of(&desired, project, path)?);
    Ok((desired, text))
}

/// A file's project: its own `project` key, else the `--project` flag, else the file name's
/// stem (`web.toml` is project `web`).
pub fn project_of(
    desired: &DesiredState,
    flag: Option<&str>,
    path: &Path,
) -> anyhow::Result<String> {
    if let Some(project) = &desired.project {
        return Ok(project.clone());
    }
    let (name, source) = match flag {
        Some(flag) => (flag.to_owned(), "--project".to_owned()),
        None => (
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            format!("the file name of {}", path.display()),
        ),
    };
    netctl_types::check_name(&name).map_err(|err| {
        anyhow::anyhow!(
            "project name `{}` (from {source}) is not valid: {err}; set `project = \"...\"` in the file or pass --project",
            netctl_types::Shown(&name)
        )
    })?;
    Ok(name)
}

/// A desired-state file, validated, and the operation to apply or plan it in.
pub struct Surveyed {
    pub ctx: Ctx,
    pub desired: DesiredState,
    /// The file's text, recorded as the applied generation.
    pub text: String,
    /// The records and the system's state, taken under `ctx`'s lock.
    pub survey: Survey,
}

/// Validates the desired-state file on another thread while this one takes the lock, opens the
/// store and surveys the system: work that does not depend on the file, done side by side with
/// checking it (nothing is changed before the file has passed). A bad file is reported rather
/// than any other failure, and before waiting for a lock another operation holds, as if it had
/// been checked first.
pub fn load_and_survey(
    settings: &Settings,
    file: &Path,
    project: Option<&str>,
) -> anyhow::Result<Surveyed> {
    std::thread::scope(|scope| {
        let loading = scope.spawn(|| load_desired(file, project));
        let loaded = move || {
            loading
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        };
        let (ctx, survey, (desired, text)) = match Ctx::try_open(settings) {
            Ok(Some(ctx)) => {
                let survey = ctx.engine().survey();
                let loaded = loaded()?;
                (ctx, survey?, loaded)
            }
            Ok(None) => {
                let loaded = loaded()?;
                let ctx = Ctx::open(settings)?;
                let survey = ctx.engine().survey()?;
                (ctx, survey, loaded)
            }
            Err(e) => {
                loaded()?;
                return Err(e);
            }
        };
        Ok(Surveyed {
            ctx,
            desired,
            text,
            survey,
        })
    })
}

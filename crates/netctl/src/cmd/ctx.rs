//! What the state-changing commands share: the lock, the store, the system seam, the engine's
//! configuration, and loading a desired-state file.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use netctl_engine::{Config, FirewallMode};
use netctl_plan::Defaults;
use netctl_state::{OperationLock, Store};
use netctl_sys::LinuxSys;
use netctl_types::DesiredState;

use crate::settings::{FirewallDriver, Settings};

/// An open operation: the state lock (held until drop), the store and the kernel seam.
pub struct Ctx {
    // Field order: the store closes before the lock is released.
    pub store: Store,
    pub sys: LinuxSys,
    pub config: Config,
    _lock: OperationLock,
}

impl Ctx {
    /// Takes the state lock (bounded wait) and opens the store.
    pub fn open(settings: &Settings) -> anyhow::Result<Ctx> {
        let lock = OperationLock::acquire(
            &settings.state_dir,
            Duration::from_secs(settings.lock_timeout),
        )?;
        let store = Store::open(&settings.state_dir)?;
        Ok(Ctx {
            store,
            sys: LinuxSys::new(),
            config: engine_config(settings)?,
            _lock: lock,
        })
    }

    pub fn engine(&self) -> netctl_engine::Engine<'_> {
        netctl_engine::Engine::new(&self.sys, &self.store, self.config.clone())
    }
}

pub fn engine_config(settings: &Settings) -> anyhow::Result<Config> {
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
        },
        host_hosts: "/etc/hosts".into(),
        host_resolv: "/etc/resolv.conf".into(),
    })
}

/// Reads and validates a desired-state file; returns the state and the file's text.
pub fn load_desired(path: &Path) -> anyhow::Result<(DesiredState, String)> {
    let validated = super::validate::load(path)?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read desired-state file {}", path.display()))?;
    let state = validated.state.expect("validated without errors");
    Ok((state.desired, text))
}

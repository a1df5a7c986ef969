//! Settings, layered weakest first: built-in defaults < the config file
//! (`/etc/netctl/netctl.toml`) < `NETCTL_*` environment variables < command-line flags.
//!
//! Everything netctl keeps lives under these paths, so a test can point them at a temporary tree.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use netctl_validate::{Expect, check_setting_text, check_settings_file};
use serde::{Deserialize, Serialize};

use crate::output::InvalidInput;

/// The config file read when `--config` / `NETCTL_CONFIG` does not name another.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/netctl/netctl.toml";

/// Which firewall backend manages netctl's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FirewallDriver {
    /// Rules in netctl's own `inet netctl` table.
    Nftables,
    /// No rules at all: for hosts that manage their own firewall.
    None,
}

/// What `apply` does about a host port a socket on the host already listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortInUse {
    /// Refuse, naming the port and the listener (podman fails the same way).
    Refuse,
    /// Warn and publish anyway (netctl's forward takes the port over).
    Warn,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Holds the redb store `state.redb` and the operation lock.
    pub state_dir: PathBuf,
    /// Pid files, sockets, per-container runtime files.
    pub run_dir: PathBuf,
    /// Named network namespaces netctl creates.
    pub netns_dir: PathBuf,
    /// Per-namespace hosts/resolv.conf (the `ip netns exec` convention).
    pub etc_netns_dir: PathBuf,
    pub firewall_driver: FirewallDriver,
    /// How long to wait for another netctl holding the state lock, in seconds.
    pub lock_timeout: u64,
    /// The network a bridge container without `networks` joins (podman's default network).
    pub default_network: String,
    /// Bridge name of the default network.
    pub default_bridge: String,
    /// Subnet of the default network.
    pub default_subnet: String,
    /// A published host port someone on the host listens on already: refuse or warn.
    pub port_in_use: PortInUse,
    /// The aardvark-dns binary serving `dns` networks; absent: the first of
    /// [`AARDVARK_CANDIDATES`] that exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aardvark_binary: Option<PathBuf>,
    /// The port aardvark-dns listens on; 53 is DNATed to it when different.
    pub dns_port: u16,
}

/// Where podman's packages put aardvark-dns, searched in this order.
pub const AARDVARK_CANDIDATES: [&str; 2] = [
    "/usr/libexec/podman/aardvark-dns",
    "/usr/lib/podman/aardvark-dns",
];

impl Settings {
    /// The aardvark-dns binary in effect: the setting (`None` if that file does not exist,
    /// with the reason), else the first candidate found.
    pub fn aardvark(&self) -> Result<Option<PathBuf>, String> {
        match &self.aardvark_binary {
            Some(path) if path.as_os_str().is_empty() => Ok(None),
            Some(path) if path.is_file() => Ok(Some(path.clone())),
            Some(path) => Err(format!(
                "setting aardvark_binary {} is not a file",
                path.display()
            )),
            None => Ok(AARDVARK_CANDIDATES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            state_dir: "/var/lib/netctl".into(),
            run_dir: "/run/netctl".into(),
            netns_dir: "/run/netns".into(),
            etc_netns_dir: "/etc/netns".into(),
            firewall_driver: FirewallDriver::Nftables,
            lock_timeout: 30,
            default_network: "podman".into(),
            default_bridge: "podman0".into(),
            default_subnet: "10.88.0.0/16".into(),
            port_in_use: PortInUse::Refuse,
            aardvark_binary: None,
            dns_port: 53,
        }
    }
}

/// Settings given on the command line; only those present override the weaker layers.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FlagSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etc_netns_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firewall_driver: Option<FirewallDriver>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aardvark_binary: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_port: Option<u16>,
}

/// What each setting's value must be, for checking the file and the environment before
/// figment merges them (figment stops at the first mistake and names it by its internal key).
const SETTING_KINDS: [(&str, Expect); 12] = [
    ("state_dir", Expect::Path),
    ("run_dir", Expect::Path),
    ("netns_dir", Expect::Path),
    ("etc_netns_dir", Expect::Path),
    ("firewall_driver", Expect::OneOf(&["nftables", "none"])),
    ("lock_timeout", Expect::Count),
    ("default_network", Expect::Text),
    ("default_bridge", Expect::Text),
    ("default_subnet", Expect::Subnet),
    ("port_in_use", Expect::OneOf(&["refuse", "warn"])),
    ("aardvark_binary", Expect::PathOrNone),
    ("dns_port", Expect::Port),
];

/// Where the settings file's name came from: a file named on the command line must exist; the
/// default one (or one named by `NETCTL_CONFIG`) may be absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config FILE`.
    Flag,
    /// The default path or `NETCTL_CONFIG`.
    Default,
}

impl Settings {
    /// Loads the layered settings. `config` is the settings file; a missing file is fine
    /// unless `--config` named it. Every mistake in the file and in `NETCTL_*` variables is
    /// reported at once, the file's at their line and column.
    pub fn load(
        config: &Path,
        source: ConfigSource,
        flags: &FlagSettings,
    ) -> anyhow::Result<Settings> {
        let mut lines = Vec::new();
        let mut json = Vec::new();
        match std::fs::read(config) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                for d in check_settings_file(&config.display().to_string(), &text, &SETTING_KINDS) {
                    lines.push(d.to_string());
                    json.push(serde_json::to_value(&d).expect("diagnostics serialize"));
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && source == ConfigSource::Default => {}
            Err(e) => {
                return Err(anyhow::anyhow!(e).context(format!(
                    "cannot read the settings file {}",
                    config.display()
                )));
            }
        }
        for (key, expect) in SETTING_KINDS {
            let var = format!("NETCTL_{}", key.to_ascii_uppercase());
            if let Some(value) = std::env::var_os(&var)
                && let Err(why) = check_setting_text(&value.to_string_lossy(), expect)
            {
                let line = format!("{var}: error: invalid {key}: {why}");
                json.push(serde_json::json!({ "variable": var, "message": format!("invalid {key}: {why}") }));
                lines.push(line);
            }
        }
        if !lines.is_empty() {
            let n = lines.len();
            return Err(InvalidInput {
                summary: format!(
                    "invalid settings: {n} error{} (defaults < {} < NETCTL_* < flags); nothing was changed",
                    if n == 1 { "" } else { "s" },
                    config.display()
                ),
                lines,
                json,
            }
            .into());
        }
        Self::figment(config, flags).extract().map_err(|e| {
            anyhow::anyhow!(e).context(format!(
                "invalid settings (defaults < {} < NETCTL_* < flags)",
                config.display()
            ))
        })
    }

    fn figment(config: &Path, flags: &FlagSettings) -> Figment {
        Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file(config))
            // Only the settings themselves: NETCTL_CONFIG names the file, NETCTL_LOG the log
            // filter, and other NETCTL_* variables belong to other tools.
            .merge(Env::prefixed("NETCTL_").only(&SETTING_KINDS.map(|(key, _)| key)))
            .merge(Serialized::defaults(flags))
    }
}

#[cfg(test)]
// figment's Jail fixes the closure's error type; its size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn layers_apply_weakest_first() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "netctl.toml",
                "state_dir = \"/from/file\"\nrun_dir = \"/from/file/run\"\nnetns_dir = \"/from/file/ns\"\n",
            )?;
            jail.set_env("NETCTL_RUN_DIR", "/from/env/run");
            jail.set_env("NETCTL_NETNS_DIR", "/from/env/ns");
            let flags = FlagSettings {
                netns_dir: Some("/from/flag/ns".into()),
                ..FlagSettings::default()
            };
            let s = Settings::load(Path::new("netctl.toml"), ConfigSource::Default, &flags)
                .expect("settings load");
            assert_eq!(s.state_dir, Path::new("/from/file"));
            assert_eq!(s.run_dir, Path::new("/from/env/run"));
            assert_eq!(s.netns_dir, Path::new("/from/flag/ns"));
            assert_eq!(s.etc_netns_dir, Path::new("/etc/netns"));
            assert_eq!(s.firewall_driver, FirewallDriver::Nftables);
            Ok(())
        });
    }

    #[test]
    fn other_netctl_variables_are_not_settings() {
        Jail::expect_with(|jail| {
            jail.set_env("NETCTL_LOG", "debug");
            jail.set_env("NETCTL_SOMETHING_ELSE", "x");
            let s = Settings::load(
                Path::new("absent.toml"),
                ConfigSource::Default,
                &FlagSettings::default(),
            )
            .unwrap();
            assert_eq!(s, Settings::default());
            Ok(())
        });
    }

    #[test]
    fn missing_config_file_gives_defaults() {
        Jail::expect_with(|_| {
            let s = Settings::load(
                Path::new("absent.toml"),
                ConfigSource::Default,
                &FlagSettings::default(),
            )
            .unwrap();
            assert_eq!(s, Settings::default());
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_errors_naming_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("NETCTL_FIREWALL_DRIVER", "iptables");
            let err = Settings::load(
                Path::new("absent.toml"),
                ConfigSource::Default,
                &FlagSettings::default(),
            )
            .unwrap_err();
            let invalid = err.downcast_ref::<InvalidInput>().expect("invalid input");
            let chain = invalid.lines.join("\n");
            assert!(chain.to_lowercase().contains("firewall_driver"), "{chain}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_in_the_config_file_are_errors() {
        Jail::expect_with(|jail| {
            jail.create_file("netctl.toml", "stat_dir = \"/x\"\n")?;
            assert!(
                Settings::load(
                    Path::new("netctl.toml"),
                    ConfigSource::Default,
                    &FlagSettings::default()
                )
                .is_err()
            );
            Ok(())
        });
    }
}

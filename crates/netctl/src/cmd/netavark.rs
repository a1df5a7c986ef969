//! netavark's command line and JSON protocol, so podman can use netctl as its network backend:
//! run as `netavark` (a link named so, in podman's `helper_binaries_dir`) or as
//! `netctl netavark ...`.
//!
//! Protocol (netavark 1.x): `setup NSPATH` and `teardown NSPATH` read NetworkOptions from
//! `--file` or stdin; setup prints `{NETWORK: StatusBlock}` on stdout. Errors are
//! `{"error": "..."}` on stdout with exit code 1; logs go to stderr.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::cmd::ctx::Ctx;
use crate::settings::{FirewallDriver, FlagSettings, Settings};

/// The version of netavark's protocol netctl speaks: what `--version` reports as netavark's.
pub const PROTOCOL_VERSION: &str = "1.4.0";

#[derive(Debug, Parser)]
#[command(
    name = "netavark",
    version = PROTOCOL_VERSION,
    about = "netctl speaking netavark's protocol"
)]
pub struct NetavarkCli {
    /// Read NetworkOptions from this file instead of stdin.
    #[arg(short = 'f', long = "file", global = true)]
    file: Option<PathBuf>,
    /// netavark's state directory: aardvark-dns's files go to `DIR/aardvark-dns` (default
    /// `/run/containers/networks`, podman's); netctl keeps its own state (see its settings).
    #[arg(short = 'c', long = "config", global = true)]
    config: Option<PathBuf>,
    /// Accepted for compatibility; netctl runs as root.
    #[arg(short = 'r', long = "rootless", global = true)]
    rootless: Option<String>,
    /// The aardvark-dns serving `dns_enabled` networks (default
    /// `/usr/libexec/podman/aardvark-dns`); empty or missing: no DNS, with a warning. An OS
    /// string, not a path: podman sends `--aardvark-binary=` (empty) when it found no
    /// aardvark-dns, and clap's path parser rejects empty values.
    #[arg(short = 'a', long = "aardvark-binary", global = true)]
    aardvark_binary: Option<std::ffi::OsString>,
    /// nftables (iptables and firewalld are served by nftables too) or none.
    #[arg(long = "firewall-driver", env = "NETAVARK_FW", global = true)]
    firewall_driver: Option<String>,
    /// Accepted for compatibility.
    #[arg(long = "plugin-directory", global = true)]
    plugin_directory: Vec<PathBuf>,
    #[command(subcommand)]
    command: NetavarkCommand,
}

#[derive(Debug, Subcommand)]
enum NetavarkCommand {
    /// Configure the networks of a container's namespace.
    Setup { netns: PathBuf },
    /// Undo setup.
    Teardown { netns: PathBuf },
    /// Print version information as JSON: netctl's version, commit, build time and target,
    /// and the netavark protocol version it speaks.
    Version,
    /// Check a new network and complete it (subnet, bridge name, gateways), as podman 5 asks;
    /// reads `{network, used, options}` from `--file` or stdin, prints the network.
    Create,
    /// Restore every recorded container's firewall rules (after nftables.service or firewalld
    /// flushed the ruleset), as netavark's `firewall-reload` does.
    FirewallReload,
    /// Update a network's DNS servers (aardvark-dns's upstreams for it; `""` clears them).
    Update {
        network: String,
        #[arg(long = "network-dns-servers", num_args = 0.., required = true)]
        network_dns_servers: Vec<String>,
    },
}

/// podman's (rootful) netavark state directory, when `--config` is not given.
const DEFAULT_CONFIG_DIR: &str = "/run/containers/networks";
/// Where netavark looks for aardvark-dns when `--aardvark-binary` is not given.
const DEFAULT_AARDVARK: &str = "/usr/libexec/podman/aardvark-dns";

/// Opens an operation with aardvark-dns configured as netavark's command line and environment
/// say: netavark's config directory, `--aardvark-binary`, `NETAVARK_DNS_PORT`; the server
/// serves podman's networks only.
fn open(cli: &NetavarkCli, settings: &Settings) -> anyhow::Result<Ctx> {
    let binary = cli
        .aardvark_binary
        .clone()
        .unwrap_or_else(|| DEFAULT_AARDVARK.into());
    let binary = PathBuf::from(binary);
    let aardvark = if binary.as_os_str().is_empty() {
        tracing::debug!("--aardvark-binary is empty: no DNS for podman's networks");
        None
    } else if binary.is_file() {
        Some(binary)
    } else {
        tracing::warn!(
            "aardvark-dns {} does not exist: no DNS for podman's networks",
            binary.display()
        );
        None
    };
    let port = match std::env::var("NETAVARK_DNS_PORT") {
        Ok(p) if !p.is_empty() => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .with_context(|| format!("invalid NETAVARK_DNS_PORT {p:?} (a port number)"))?,
        _ => 53,
    };
    let config = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_DIR));
    let mut ctx = Ctx::open(settings)?;
    ctx.config.aardvark_binary = aardvark;
    ctx.config.dns_port = port;
    ctx.config.dns_dir = config.join(netctl_engine::DNS_DIR_NAME);
    ctx.config.dns_scope = netctl_engine::DnsScope::Podman;
    Ok(ctx)
}

/// Runs the netavark personality with `args` (argv, with argv[0] first).
pub fn main(args: Vec<std::ffi::OsString>) -> ExitCode {
    let cli = match NetavarkCli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    answer_panics_with(print_error);
    // With `panic = "unwind"` the hook has answered already; with `abort` the process ends in
    // the hook. Either way podman gets exactly one `{"error": ...}`.
    let Ok(outcome) = std::panic::catch_unwind(|| run(&cli)) else {
        return ExitCode::FAILURE;
    };
    match outcome {
        Ok(Some(out)) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(err) => {
            let chain = err
                .chain()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(": ");
            print_error(&chain);
            ExitCode::FAILURE
        }
    }
}

/// netavark's error shape: one JSON object on stdout (podman decodes it strictly).
fn print_error(message: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", serde_json::json!({ "error": message }));
    let _ = out.flush();
}

/// A panic is a bug, but podman (or a CNI runtime) must still get an answer it can read,
/// whatever the panic strategy: the hook prints the error object with `print` (and the usual
/// report to stderr). What the run changed before it panicked is recorded as interrupted, so
/// the next call repairs it.
pub(crate) fn answer_panics_with(print: fn(&str)) {
    static ANSWERED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Several threads may panic (work spread over namespaces); podman reads one answer.
        if ANSWERED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            default(info);
            return;
        }
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        print(&format!(
            "internal error (a bug in netctl, please report it): {what}{place}"
        ));
        default(info);
    }));
}

fn run(cli: &NetavarkCli) -> anyhow::Result<Option<String>> {
    let firewall_driver = match cli.firewall_driver.as_deref() {
        None | Some("") => None,
        Some("nftables" | "iptables" | "firewalld") => Some(FirewallDriver::Nftables),
        Some("none") => Some(FirewallDriver::None),
        Some(other) => anyhow::bail!("unknown firewall driver {other:?}"),
    };
    let flags = FlagSettings {
        firewall_driver,
        ..FlagSettings::default()
    };
    let config = std::env::var_os("NETCTL_CONFIG").map_or_else(
        || PathBuf::from(crate::settings::DEFAULT_CONFIG_FILE),
        PathBuf::from,
    );
    let settings = Settings::load(&config, crate::settings::ConfigSource::Default, &flags)?;
    match &cli.command {
        NetavarkCommand::Version => Ok(Some(
            serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "commit": env!("NETCTL_GIT_COMMIT"),
                "build_time": env!("NETCTL_BUILD_TIME"),
                "target": env!("NETCTL_TARGET"),
                "default_fw_driver": "nftables",
                "program": "netctl",
                "netavark_protocol": PROTOCOL_VERSION,
            })
            .to_string(),
        )),
        NetavarkCommand::Create => {
            let req: netctl_types::NetworkCreateConfig =
                serde_json::from_str(&read_input(cli)?).context("failed to load network create")?;
            let ctx = open(cli, &settings)?;
            let network = ctx.engine().netavark_create(&req)?;
            Ok(Some(serde_json::to_string(&network)?))
        }
        NetavarkCommand::FirewallReload => {
            let ctx = open(cli, &settings)?;
            let restored = ctx.engine().rebuild_firewall()?;
            tracing::info!(
                containers = restored,
                "firewall rules restored from the records"
            );
            Ok(None)
        }
        NetavarkCommand::Update {
            network,
            network_dns_servers,
        } => {
            // podman clears the servers with one empty value.
            let servers = network_dns_servers
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<std::net::IpAddr>()
                        .with_context(|| format!("invalid DNS server {s:?} (an IP address)"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let ctx = open(cli, &settings)?;
            ctx.engine().netavark_update(network, &servers)?;
            Ok(None)
        }
        NetavarkCommand::Setup { netns } => {
            std::fs::metadata(netns)
                .with_context(|| format!("invalid namespace path {}", netns.display()))?;
            let opts = read_options(cli)?;
            let ctx = open(cli, &settings)?;
            let status = ctx.engine().netavark_setup(netns, &opts)?;
            Ok(Some(serde_json::to_string(&status)?))
        }
        NetavarkCommand::Teardown { .. } => {
            let opts = read_options(cli)?;
            let ctx = open(cli, &settings)?;
            ctx.engine().netavark_teardown(&opts)?;
            Ok(None)
        }
    }
}

fn read_options(cli: &NetavarkCli) -> anyhow::Result<netctl_types::NetworkOptions> {
    serde_json::from_str(&read_input(cli)?).context("failed to load network options")
}

/// The JSON podman sends: from `--file`, else stdin.
fn read_input(cli: &NetavarkCli) -> anyhow::Result<String> {
    if let Some(path) = &cli.file {
        std::fs::read_to_string(path)
            .with_context(|| format!("failed to load network options from {}", path.display()))
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("failed to read network options from stdin")?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// podman 4 (c/common) passes `--aardvark-binary=` empty when it found no aardvark-dns.
    #[test]
    fn parses_podmans_global_options_with_an_empty_aardvark_binary() {
        let cli = NetavarkCli::try_parse_from([
            "netavark",
            "--config",
            "/run/containers/networks",
            "--rootless=false",
            "--aardvark-binary=",
            "setup",
            "/run/netns/netns-1",
        ])
        .expect("podman's command line parses");
        assert_eq!(cli.aardvark_binary, Some(std::ffi::OsString::new()));
        assert!(
            matches!(&cli.command, NetavarkCommand::Setup { netns } if netns.to_str() == Some("/run/netns/netns-1"))
        );
    }
}

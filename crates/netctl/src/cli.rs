//! The command line: global flags from CONTRACT.md and one subcommand per verb.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::settings::{DEFAULT_CONFIG_FILE, FirewallDriver, FlagSettings};

#[derive(Debug, Parser)]
#[command(
    name = "netctl",
    version,
    about = "Declarative container networking for Linux"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Settings file (defaults < this file < NETCTL_* < flags).
    #[arg(long, global = true, env = "NETCTL_CONFIG", default_value = DEFAULT_CONFIG_FILE)]
    pub config: PathBuf,
    /// Directory of the state store and lock [default: /var/lib/netctl].
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    /// Directory for pid files, sockets and runtime files [default: /run/netctl].
    #[arg(long, global = true)]
    pub run_dir: Option<PathBuf>,
    /// Directory of named network namespaces [default: /run/netns].
    #[arg(long, global = true)]
    pub netns_dir: Option<PathBuf>,
    /// Directory of per-namespace hosts/resolv.conf [default: /etc/netns].
    #[arg(long, global = true)]
    pub etc_netns_dir: Option<PathBuf>,
    /// Firewall backend [default: nftables].
    #[arg(long, global = true, value_enum)]
    pub firewall_driver: Option<FirewallDriver>,
    /// Seconds to wait for another netctl holding the state lock [default: 30].
    #[arg(long, global = true)]
    pub lock_timeout: Option<u64>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

impl GlobalArgs {
    pub fn flag_settings(&self) -> FlagSettings {
        FlagSettings {
            state_dir: self.state_dir.clone(),
            run_dir: self.run_dir.clone(),
            netns_dir: self.netns_dir.clone(),
            etc_netns_dir: self.etc_netns_dir.clone(),
            firewall_driver: self.firewall_driver,
            lock_timeout: self.lock_timeout,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a desired-state file's syntax and meaning; touches nothing, needs no root.
    Validate(FileArg),
    /// Show what `apply` would change (drift first); changes nothing.
    Plan(PlanArgs),
    /// Converge the machine to a desired-state file.
    Apply(ApplyArgs),
    /// Remove everything netctl made for a file's resources, or for all (--all).
    Destroy(DestroyArgs),
    /// Networks, containers, leases and processes as recorded, and any drift observed.
    Show,
    /// Attach a container to a network (podman `network connect`).
    Connect(ConnectArgs),
    /// Detach a container from a network (podman `network disconnect`).
    Disconnect(DisconnectArgs),
    /// Re-create firewall rules and attachments, keeping addresses, MACs and interface names.
    Reload(ReloadArgs),
    /// A container's network settings, shaped like podman's `NetworkSettings`.
    Inspect(InspectArgs),
    /// Networks.
    #[command(subcommand)]
    Network(NetworkCommand),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Container name or unique id prefix.
    pub container: String,
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// List networks (podman's NETWORK ID, NAME, DRIVER).
    Ls,
    /// Networks as podman's JSON; NET is a name or a unique id prefix.
    Inspect {
        #[arg(required = true)]
        networks: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Static IPv4 address on the network.
    #[arg(long)]
    pub ip: Option<std::net::Ipv4Addr>,
    /// Static IPv6 address on the network.
    #[arg(long)]
    pub ip6: Option<std::net::Ipv6Addr>,
    /// Static MAC address.
    #[arg(long)]
    pub mac: Option<netctl_types::MacAddr>,
    /// Network-scoped alias (repeatable).
    #[arg(long)]
    pub alias: Vec<String>,
    /// Interface name in the container (default: the lowest free ethN).
    #[arg(long)]
    pub interface: Option<String>,
    /// Network name or unique id prefix.
    pub network: String,
    /// Container name or unique id prefix.
    pub container: String,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Network name or unique id prefix.
    pub network: String,
    /// Container name or unique id prefix.
    pub container: String,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["containers", "all"])))]
pub struct ReloadArgs {
    /// Containers to reload (names or id prefixes).
    pub containers: Vec<String>,
    /// Reload every bridge container.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The desired-state TOML file.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Exit 2 when changes are pending, 0 when in sync.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Plan the removal of recorded resources the file no longer declares.
    #[arg(long)]
    pub prune: bool,
    /// The file's project, when it sets none itself [default: the file name's stem].
    #[arg(long)]
    pub project: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The desired-state TOML file.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Also remove recorded resources the file no longer declares.
    #[arg(long)]
    pub prune: bool,
    /// Show the plan and stop; nothing is executed.
    #[arg(long)]
    pub dry_run: bool,
    /// The file's project, when it sets none itself [default: the file name's stem].
    #[arg(long)]
    pub project: Option<String>,
    /// Do not ask before deleting or re-creating anything (asked only on a terminal).
    #[arg(long, visible_alias = "auto-approve", short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["file", "all"])))]
pub struct DestroyArgs {
    /// Destroy everything of this file's project (its networks and containers).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Destroy everything netctl recorded.
    #[arg(long)]
    pub all: bool,
    /// The file's project, when it sets none itself [default: the file name's stem].
    #[arg(long, requires = "file")]
    pub project: Option<String>,
}

#[derive(Debug, Args)]
pub struct FileArg {
    /// The desired-state TOML file.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}

//! The command line: global flags (docs/settings.md) and one subcommand per verb.
//!
//! Everything `--help`, the man pages (`netctl man`) and the shell completions say comes from
//! these definitions, so the three never disagree.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::settings::{DEFAULT_CONFIG_FILE, FirewallDriver, FlagSettings};

/// `netctl --version`: the crate version and the git commit it was built from (build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("NETCTL_GIT_COMMIT"),
    ")"
);

/// What `--help` adds after the options, and the man page's closing sections: (heading, text).
pub const HELP_SECTIONS: &[(&str, &str)] = &[
    (
        "Exit status",
        "0 success (for `plan`: in sync); 2 only from `plan --detailed-exitcode` when changes \
         are pending; 1 for any failure. With `-o json` a failure prints one \
         {\"error\": \"...\"} object on stdout.",
    ),
    (
        "Settings",
        "Weakest first: built-in defaults < the settings file (/etc/netctl/netctl.toml, or \
         --config / NETCTL_CONFIG) < NETCTL_<SETTING> variables (NETCTL_STATE_DIR, \
         NETCTL_RUN_DIR, NETCTL_NETNS_DIR, NETCTL_ETC_NETNS_DIR, NETCTL_FIREWALL_DRIVER, \
         NETCTL_LOCK_TIMEOUT, ...) < the global options.",
    ),
    (
        "Environment",
        "NETCTL_LOG sets the log filter (`warn` by default; e.g. NETCTL_LOG=debug); logs go to \
         stderr. NETCTL_CONFIG names the settings file. NO_COLOR turns colours off; progress \
         and colours are shown only on a terminal.",
    ),
    (
        "podman",
        "Run under the name `netavark` (a link in podman's helper_binaries_dir) or as \
         `netctl netavark ...`, netctl speaks netavark's protocol and is podman's network \
         backend; see netctl-netavark(1).",
    ),
];

/// `--help`'s closing text: [`HELP_SECTIONS`] as paragraphs.
fn after_long_help() -> String {
    HELP_SECTIONS
        .iter()
        .map(|(heading, text)| format!("{heading}:\n  {text}"))
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[derive(Debug, Parser)]
#[command(
    name = "netctl",
    version = VERSION,
    about = "Declarative container networking for Linux",
    long_about = "Declarative container networking for Linux.\n\n\
        Describe networks and containers (network namespaces) in a TOML file; netctl makes the \
        kernel match (bridges, veth pairs, addresses, routes, nftables NAT and port forwarding, \
        the container's hosts and resolv.conf, pasta and slirp4netns helpers) and records what \
        it made, so it can show, diff, reload and remove exactly that.",
    after_help = "Exit status: 0 success, 2 changes pending (plan --detailed-exitcode), 1 failure. \
        More with --help.",
    after_long_help = after_long_help(),
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Settings file (defaults < this file < NETCTL_* < flags).
    #[arg(
        long,
        global = true,
        env = "NETCTL_CONFIG",
        hide_env_values = true,
        default_value = DEFAULT_CONFIG_FILE
    )]
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
    /// aardvark-dns binary for `dns` networks [default: /usr/libexec/podman/aardvark-dns or
    /// /usr/lib/podman/aardvark-dns].
    // An OS string, not a path: `--aardvark-binary ""` means none, and clap's path parser
    // refuses empty values.
    #[arg(long, global = true)]
    pub aardvark_binary: Option<std::ffi::OsString>,
    /// Port aardvark-dns listens on; only 53 for now [default: 53].
    #[arg(long, global = true)]
    pub dns_port: Option<u16>,
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
            aardvark_binary: self.aardvark_binary.clone().map(PathBuf::from),
            dns_port: self.dns_port,
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
    /// Print the settings in effect (defaults < settings file < NETCTL_* < flags), as TOML.
    Settings,
    /// Print a shell completion script on stdout.
    #[command(after_help = COMPLETIONS_HELP)]
    Completions(CompletionsArgs),
    /// Print the JSON Schema of the desired-state TOML on stdout (for editors).
    #[command(after_help = SCHEMA_HELP)]
    Schema,
    /// Speak netavark's protocol, so podman can use netctl as its network backend.
    #[command(
        long_about = NETAVARK_ABOUT,
        disable_help_flag = true,
    )]
    Netavark(NetavarkArgs),
    /// Be a CNI plugin (what a runtime does by exec'ing netctl with CNI_COMMAND set).
    #[command(long_about = CNI_ABOUT)]
    Cni,
    /// Write netctl's man pages (one per command) into a directory.
    #[command(hide = true)]
    Man(ManArgs),
}

const COMPLETIONS_HELP: &str = "Install, for example:
  netctl completions bash > /etc/bash_completion.d/netctl
  netctl completions zsh > /usr/local/share/zsh/site-functions/_netctl
  netctl completions fish > ~/.config/fish/completions/netctl.fish";

const SCHEMA_HELP: &str = "Editors with a TOML language server (taplo, Even Better TOML) \
validate and complete a file that starts with:
  #:schema ./netctl.schema.json
after `netctl schema > netctl.schema.json`.";

const NETAVARK_ABOUT: &str = "Speak netavark's protocol, so podman can use netctl as its \
network backend.

`netctl netavark [OPTIONS] setup|teardown NSPATH`, `version` and `update` take netavark's \
options and NetworkOptions JSON (from --file or stdin), print StatusBlocks on stdout and, on \
failure, one {\"error\": \"...\"} object with exit status 1. netctl does the same when it \
runs under the name `netavark`, which is how podman calls it: a link named `netavark` in a \
directory of podman's helper_binaries_dir. `netavark` must be the first argument; netctl's \
settings come from NETCTL_* variables and the settings file. Every container podman starts \
is then recorded by netctl. See `netctl netavark --help` and netctl-netavark(1).";

const CNI_ABOUT: &str = "Be a CNI plugin, so containerd, CRI-O and other CNI runtimes can use \
netctl.

The CNI_* environment variables and the network configuration on stdin are the request (spec \
0.4.0, 1.0.0 and 1.1.0: ADD, DEL, CHECK, GC, STATUS, VERSION); results and the spec's error \
objects are printed on stdout. Runtimes exec plugins with no arguments: netctl does the same \
when run so with CNI_COMMAND set, which is how a link /opt/cni/bin/netctl works (plugin type \
\"netctl\"). `cni` must be the first argument; netctl's settings come from NETCTL_* variables \
and the settings file. See docs/cni.md.";

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct NetavarkArgs {
    /// netavark's options and command (see `netctl netavark --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory the pages (netctl.1, netctl-apply.1, ...) are written to; created if missing.
    pub dir: PathBuf,
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
    use std::fmt::Write as _;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// What `netctl --help` and `-h` print (global options under their own heading, the exit
    /// status, settings, environment and podman sections).
    #[test]
    fn help_text() {
        insta::assert_snapshot!("long_help", Cli::command().render_long_help().to_string());
        insta::assert_snapshot!("short_help", Cli::command().render_help().to_string());
    }

    /// Every subcommand's `--help`, one snapshot.
    #[test]
    fn subcommand_help_text() {
        fn collect(cmd: &mut clap::Command, out: &mut String) {
            cmd.build();
            for sub in cmd.get_subcommands_mut() {
                if sub.get_name() == "help" {
                    continue;
                }
                let name = sub.get_display_name().unwrap_or_default();
                let _ = writeln!(out, "===== {name}");
                out.push_str(&sub.render_long_help().to_string());
                collect(sub, out);
            }
        }
        let mut out = String::new();
        collect(&mut Cli::command(), &mut out);
        insta::assert_snapshot!(out);
    }

    #[test]
    fn version_names_the_commit() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")), "{VERSION}");
        assert!(VERSION.contains("(git "), "{VERSION}");
    }
}

//! `netctl`: declarative container networking for Linux.
//!
//! This binary composes the library crates: it parses the command line (clap), loads settings
//! (figment), runs one command, and turns the outcome into output and an exit code:
//! 0 success (for `plan`: in sync), 2 only from `plan --detailed-exitcode` with changes pending,
//! 1 for every failure. With `-o json` a failure prints one `{"error": "..."}` object on stdout.

mod cli;
mod cmd;
mod output;
mod progress;
mod settings;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _};

use crate::cli::{Cli, Command};
use crate::output::Reporter;
use crate::settings::{ConfigSource, Settings};

/// mimalloc rather than glibc's allocator: netctl builds and drops many small values per
/// container (paths, records, netlink messages), and mimalloc makes that cheaper (validating a
/// 1000-container file: 50 ms with glibc, 42 ms with mimalloc; parsing alone 19 ms against
/// 10 ms). Built without transparent huge pages (`no_thp`): a short-lived process gains nothing
/// from them, and a huge-page fault that has to compact memory first stalled some runs by
/// 100 ms.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What a command asks the process to exit with, when it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// `plan --detailed-exitcode` found pending changes.
    ChangesPending,
}

fn main() -> ExitCode {
    // Called as `netavark` (podman's helper_binaries_dir link) or `netctl netavark ...`.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .map(std::path::Path::new)
        .and_then(std::path::Path::file_name);
    if argv0.is_some_and(|n| n == "netavark") {
        init_logging();
        return cmd::netavark::main(args);
    }
    if args.get(1).is_some_and(|a| a == "netavark") {
        init_logging();
        return cmd::netavark::main(args[1..].to_vec());
    }
    // Called by a CNI runtime: no arguments and CNI_COMMAND set; or `netctl cni` (with
    // anything after it, such as `--help`, clap answers).
    if (args.len() == 1 && std::env::var_os("CNI_COMMAND").is_some())
        || (args.len() == 2 && args[1] == "cni")
    {
        init_logging();
        return cmd::cni::main();
    }
    let parsed = Cli::command()
        .try_get_matches_from(&args)
        .and_then(|m| Ok((Cli::from_arg_matches(&m)?, m)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return usage_error(&err, &args),
    };
    // A settings file named on the command line must exist; the default one may not.
    let config_source = match matches.value_source("config") {
        Some(clap::parser::ValueSource::CommandLine) => ConfigSource::Flag,
        _ => ConfigSource::Default,
    };
    init_logging();
    let reporter = Reporter::new(cli.global.output);
    match run(&cli, config_source, &reporter) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::ChangesPending) => ExitCode::from(2),
        Err(err) => {
            reporter.failure(&err);
            ExitCode::FAILURE
        }
    }
}

/// The exit status of a command line netctl cannot parse (sysexits' `EX_USAGE`): neither 1,
/// which a failed command exits with, nor 2, which `plan --detailed-exitcode` means "changes
/// pending" by.
const EXIT_USAGE: u8 = 64;

/// Help and `--version` print and succeed; any other parse error is a usage error, printed
/// by clap (text) or as `{"error": ...}` when the command line asks for JSON output.
fn usage_error(err: &clap::Error, args: &[std::ffi::OsString]) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(EXIT_USAGE)
        } else {
            ExitCode::SUCCESS
        };
    }
    if wants_json(args) {
        let text = err.render().to_string();
        let message = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .trim_start_matches("error: ");
        println!(
            "{}",
            serde_json::json!({ "error": format!("usage: {message}") })
        );
    } else {
        let _ = err.print();
    }
    ExitCode::from(EXIT_USAGE)
}

/// Whether a command line that failed to parse asked for `-o json` (in any spelling clap
/// accepts), so its usage error is JSON too.
fn wants_json(args: &[std::ffi::OsString]) -> bool {
    let args: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    args.windows(2)
        .any(|w| matches!(w[0], "-o" | "--output") && w[1] == "json")
        || args
            .iter()
            .any(|a| matches!(*a, "-ojson" | "--output=json" | "-o=json"))
}

fn run(cli: &Cli, config_source: ConfigSource, reporter: &Reporter) -> anyhow::Result<Outcome> {
    let settings = || {
        Settings::load(
            &cli.global.config,
            config_source,
            &cli.global.flag_settings(),
        )
    };
    match &cli.command {
        // Reads only the file: no settings, no state, no root.
        Command::Validate(args) => cmd::validate::run(args, reporter),
        Command::Plan(args) => cmd::apply::plan(&settings()?, args, reporter),
        Command::Apply(args) => cmd::apply::apply(&settings()?, args, reporter),
        Command::Destroy(args) => cmd::apply::destroy(&settings()?, args, reporter),
        Command::Show => cmd::show::show(&settings()?, reporter),
        Command::Connect(args) => cmd::show::connect(&settings()?, args, reporter),
        Command::Disconnect(args) => cmd::show::disconnect(&settings()?, args, reporter),
        Command::Reload(args) => cmd::show::reload(&settings()?, args, reporter),
        Command::Inspect(args) => cmd::inspect::inspect(&settings()?, args, reporter),
        Command::Network(cmd) => cmd::inspect::network(&settings()?, cmd, reporter),
        Command::Settings => {
            let settings = settings()?;
            let text = toml::to_string(&settings).context("render the settings")?;
            reporter.result(&text, &settings);
            Ok(Outcome::Success)
        }
        // About netctl itself: no settings are read, so these work wherever it is installed.
        Command::Completions(args) => Ok(cmd::completions::completions(args)),
        Command::Man(args) => cmd::man::man(args),
        Command::Schema => cmd::schema::schema(),
        // `netctl netavark ...` is dispatched before clap; here something came before it.
        Command::Cni => anyhow::bail!(
            "`cni` must be the first argument (`netctl cni`): the CNI protocol takes no netctl \
             options; its settings come from NETCTL_* variables and the settings file"
        ),
        Command::Netavark(_) => anyhow::bail!(
            "`netavark` must be the first argument (`netctl netavark ...`): podman's protocol \
             takes no netctl options; its settings come from NETCTL_* variables and the \
             settings file"
        ),
    }
}

/// Logs go to stderr, filtered by `NETCTL_LOG` (e.g. `NETCTL_LOG=debug`); warnings by default.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NETCTL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only on a terminal, and never with NO_COLOR: redirected logs stay plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .init();
}

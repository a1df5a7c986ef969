//! The CNI plugin: how containerd, CRI-O and other CNI runtimes drive netctl.
//!
//! A runtime execs the plugin with no arguments, `CNI_COMMAND` and the other `CNI_*` variables
//! set, and the network configuration on stdin; netctl does that when it is run with no
//! arguments and `CNI_COMMAND` set (a link `/opt/cni/bin/netctl`), or as `netctl cni`. The
//! protocol is `netctl-cni`'s; the work is the engine's. Results go to stdout; errors are the
//! spec's JSON object on stdout with a non-zero exit; logs go to stderr. Settings come from
//! `NETCTL_*` variables and the settings file, as in netavark mode.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use netctl_cni::{CniError, Command, Version, code};
use netctl_engine::EngineError;
use netctl_state::{IpamError, LockError};

use crate::cmd::ctx::Ctx;
use crate::settings::{ConfigSource, FlagSettings, Settings};

/// Runs one CNI invocation and answers the runtime.
pub fn main() -> ExitCode {
    crate::cmd::netavark::answer_panics_with(|message| {
        print(&netctl_cni::render_error(
            Version::LATEST.as_str(),
            &CniError::new(code::FAILED, message),
        ));
    });
    let env = |name: &str| std::env::var(name).ok();
    let command = match Command::from_env(&env) {
        Ok(command) => command,
        Err(error) => return refuse(Version::LATEST.as_str(), &error),
    };
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        let error = CniError::new(code::DECODE, format!("cannot read stdin: {e}"));
        return refuse(Version::LATEST.as_str(), &error);
    }
    if command == Command::Version {
        print(&netctl_cni::render_version(&stdin));
        return ExitCode::SUCCESS;
    }
    let req = match netctl_cni::parse(command, &env, &stdin) {
        Ok(req) => req,
        Err(refused) => return refuse(&refused.cni_version, &refused.error),
    };
    match run(&req) {
        Ok(Some(answer)) => {
            print(&answer);
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(err) => refuse(req.version.as_str(), &cni_error(&err)),
    }
}

fn print(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn refuse(cni_version: &str, error: &CniError) -> ExitCode {
    print(&netctl_cni::render_error(cni_version, error));
    ExitCode::FAILURE
}

fn run(req: &netctl_cni::Request) -> anyhow::Result<Option<serde_json::Value>> {
    let config = std::env::var_os("NETCTL_CONFIG").map_or_else(
        || PathBuf::from(crate::settings::DEFAULT_CONFIG_FILE),
        PathBuf::from,
    );
    let settings = Settings::load(&config, ConfigSource::Default, &FlagSettings::default())?;
    let ctx = Ctx::open(&settings)?;
    let engine = ctx.engine();
    Ok(match req.command {
        Command::Add => Some(engine.cni_add(req)?.render(req.version)),
        Command::Del => {
            engine.cni_del(req)?;
            None
        }
        Command::Check => {
            engine.cni_check(req)?;
            None
        }
        Command::Gc => {
            for released in engine.cni_gc(req)? {
                tracing::info!("GC released {released}");
            }
            None
        }
        Command::Status => {
            engine.cni_status()?;
            None
        }
        Command::Version => unreachable!("VERSION is answered before a request is read"),
    })
}

/// The spec's error for a failure: the code the engine chose, or the one the cause implies;
/// the message is the whole chain.
fn cni_error(err: &anyhow::Error) -> CniError {
    let mut chain = err
        .chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ");
    // Invalid settings: the message names each mistake, not just how many there were.
    if let Some(invalid) = err.downcast_ref::<crate::output::InvalidInput>() {
        chain = format!("{chain}: {}", invalid.lines.join("; "));
        return CniError::new(code::INVALID_CONFIG, chain);
    }
    for cause in err.chain() {
        if let Some(EngineError::Cni(e)) = cause.downcast_ref::<EngineError>() {
            return e.clone();
        }
        if let Some(LockError::Timeout { .. }) = cause.downcast_ref::<LockError>() {
            return CniError::new(code::TRY_AGAIN_LATER, chain);
        }
        if let Some(ipam) = cause.downcast_ref::<IpamError>() {
            let code = match ipam {
                IpamError::AddressInUse { .. } => code::ADDRESS_IN_USE,
                IpamError::Exhausted { .. } => code::SUBNET_EXHAUSTED,
                _ => code::INVALID_CONFIG,
            };
            return CniError::new(code, chain);
        }
    }
    CniError::new(code::FAILED, chain)
}

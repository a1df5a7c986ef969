//! pasta backend: connects a container's network namespace to the host's network through
//! pasta, as podman does for rootless containers, with netctl as a first-class mode
//! (`mode = "pasta"`).
//!
//! * [`argv`] builds pasta's command line exactly as podman 4.4 does, with podman's bugs fixed
//!   (see the module docs of `argv`): pure, snapshot-tested.
//! * [`start`] runs pasta through the `netctl-sys` seam. pasta configures the namespace (an
//!   interface named after the host's uplink, the uplink's addresses and default routes, MTU
//!   65520, `lo` up), forks to the background and exits; its pid comes from `--pid FILE`.
//!   What pasta says on failure becomes the error. The returned [`Started`] is what the
//!   caller records: pid, start time (so a recycled pid is never taken for pasta), argv.
//! * [`stop`] ends it (`SIGTERM`, a bounded wait, `SIGKILL`) and is safe to repeat.
//! * [`live`] reads the configured namespace back (addresses, MAC, routes) for `inspect`.
//!
//! Lifecycle: netctl is not a daemon. pasta runs detached and exits by itself when the
//! namespace disappears; netctl records (pid, start time), a dead pasta shows as drift, and
//! restarting it is [`start`] again with the same [`PastaConfig`] (the dead pasta's tap
//! interface went with it). pasta cannot change its ports while running: a port change is a
//! restart.
//!
//! Invariants: this crate never touches the kernel or spawns anything except through
//! `&dyn Sys`, never builds a shell command line, and the only root-only assumption
//! (`--runas 0`) lives in one constant in `argv`.

mod argv;
mod error;
pub mod live;
mod options;

use std::path::{Path, PathBuf};
use std::time::Duration;

use netctl_sys::{SpawnMode, SpawnSpec, Sys, SysError, Termination};
use netctl_types::PortMapping;

pub use argv::{argv, mapping_text};
pub use error::PastaError;

/// The program run by default (looked up in `PATH`).
pub const PROGRAM: &str = "pasta";

/// How long pasta gets to configure the namespace and fork to the background.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long pasta gets to exit after `SIGTERM` before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// What to start pasta with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastaConfig {
    /// The pasta program: a path, or a name looked up in `PATH`.
    pub program: String,
    /// The container's network namespace (`/run/netns/web`, `/proc/PID/ns/net`).
    pub netns: PathBuf,
    /// Published ports: normalised podman mappings whose host ports are chosen already.
    pub ports: Vec<PortMapping>,
    /// The user's extra pasta arguments (`pasta = [...]`), one argument each, verbatim.
    pub options: Vec<String>,
    /// Where pasta writes its pid (its directory is created if missing).
    pub pid_file: PathBuf,
}

impl PastaConfig {
    /// No ports, no options, [`PROGRAM`].
    pub fn new(netns: impl Into<PathBuf>, pid_file: impl Into<PathBuf>) -> Self {
        Self {
            program: PROGRAM.to_owned(),
            netns: netns.into(),
            ports: Vec::new(),
            options: Vec::new(),
            pid_file: pid_file.into(),
        }
    }
}

/// A running pasta, as the caller records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat`: with the pid, identifies this pasta for good.
    pub start_time: u64,
    /// The command line it was started with, program first.
    pub argv: Vec<String>,
}

/// Lines pasta writes that say nothing about the failure: its syslog fallback complaining
/// when there is no `/dev/log`, and the usage text after an unknown option.
fn pasta_message(output: &str) -> String {
    let mut lines = Vec::new();
    for line in output.lines() {
        if line.starts_with("Usage:") {
            break;
        }
        let noise = line
            .strip_prefix("Failed to send ")
            .is_some_and(|rest| rest.ends_with(" bytes to syslog"));
        if !noise && !line.trim().is_empty() {
            lines.push(line.trim_end());
        }
    }
    if lines.is_empty() {
        "pasta printed nothing".to_owned()
    } else {
        lines.join("\n")
    }
}

/// Starts pasta for `cfg.netns` and returns it once the namespace is configured and pasta
/// runs in the background. On any failure nothing is left running.
pub fn start(sys: &dyn Sys, cfg: &PastaConfig) -> Result<Started, PastaError> {
    let argv = argv(cfg)?;
    let is_netns = sys
        .is_netns(&cfg.netns)
        .map_err(|source| PastaError::Namespace {
            netns: cfg.netns.clone(),
            source: Box::new(source),
        })?;
    if !is_netns {
        return Err(PastaError::NotANamespace {
            netns: cfg.netns.clone(),
        });
    }
    if let Some(dir) = cfg.pid_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PastaError::PidFileDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    let spec = SpawnSpec {
        mode: SpawnMode::Daemon {
            pid_file: cfg.pid_file.clone(),
            timeout: START_TIMEOUT,
        },
        ..SpawnSpec::new(&argv)
    };
    match sys.spawn(&spec) {
        Ok(spawned) => Ok(Started {
            pid: spawned.pid,
            start_time: spawned.start_time,
            argv,
        }),
        Err(SysError::SpawnFailed { status, output, .. }) => Err(PastaError::Failed {
            netns: cfg.netns.clone(),
            status,
            message: pasta_message(&output),
        }),
        Err(source) => Err(PastaError::Start {
            netns: cfg.netns.clone(),
            source: Box::new(source),
        }),
    }
}

/// Stops the pasta recorded as (`pid`, `start_time`); one that is already gone is fine.
pub fn stop(sys: &dyn Sys, pid: u32, start_time: u64) -> Result<Termination, PastaError> {
    netctl_sys::terminate(sys, pid, start_time, STOP_GRACE).map_err(|source| PastaError::Stop {
        pid,
        source: Box::new(source),
    })
}

/// Whether the pasta recorded as (`pid`, `start_time`) still runs.
pub fn is_running(sys: &dyn Sys, pid: u32, start_time: u64) -> bool {
    sys.is_alive(pid, start_time)
}

/// The name of pasta's pid file in a container's directory under `run_dir`.
pub const PID_FILE: &str = "pasta.pid";

/// The pid file netctl uses for a container's pasta under `run_dir`.
pub fn pid_file(run_dir: &Path, container: &str) -> PathBuf {
    run_dir.join("containers").join(container).join(PID_FILE)
}

#[cfg(test)]
mod tests {
    use netctl_sys::{FakeSys, Namespaces};
    use netctl_types::Protocol;

    use super::*;

    fn config(dir: &Path) -> PastaConfig {
        PastaConfig {
            ports: vec![PortMapping::new(8080, 80, Protocol::Tcp)],
            ..PastaConfig::new("/run/netns/c1", dir.join("c1/pasta.pid"))
        }
    }

    #[test]
    fn start_spawns_the_daemon_with_the_built_argv_and_stop_ends_it() {
        let sys = FakeSys::new();
        let dir = tempfile::tempdir().unwrap();
        sys.create_named(Path::new("/run/netns"), "c1").unwrap();
        sys.clear_calls();
        let cfg = config(dir.path());
        let started = start(&sys, &cfg).unwrap();
        assert_eq!(started.argv, argv(&cfg).unwrap());
        assert!(dir.path().join("c1").is_dir(), "pid file directory made");
        assert!(is_running(&sys, started.pid, started.start_time));
        let pid_file = dir.path().join("c1/pasta.pid");
        assert_eq!(
            sys.mutating_calls(),
            [format!(
                "spawn {} (daemon, pid file {})",
                started.argv.join(" "),
                pid_file.display()
            )]
        );
        assert_eq!(
            stop(&sys, started.pid, started.start_time).unwrap(),
            Termination::Terminated
        );
        assert!(!is_running(&sys, started.pid, started.start_time));
        assert_eq!(
            stop(&sys, started.pid, started.start_time).unwrap(),
            Termination::AlreadyGone
        );
    }

    #[test]
    fn nothing_is_spawned_for_bad_options_or_a_missing_namespace() {
        let sys = FakeSys::new();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        let err = start(&sys, &cfg).unwrap_err();
        assert_eq!(err.to_string(), "/run/netns/c1 is not a network namespace");
        sys.create_named(Path::new("/run/netns"), "c1").unwrap();
        cfg.ports[0].protocol = "sctp".into();
        let err = start(&sys, &cfg).unwrap_err();
        assert!(matches!(err, PastaError::Sctp { .. }), "{err}");
        assert!(sys.state().lines().all(|l| !l.starts_with("process")));
        assert!(
            sys.mutating_calls().iter().all(|c| !c.starts_with("spawn")),
            "{:?}",
            sys.mutating_calls()
        );
    }

    #[test]
    fn a_spawn_failure_is_a_start_error_naming_the_namespace() {
        let sys = FakeSys::new();
        let dir = tempfile::tempdir().unwrap();
        sys.create_named(Path::new("/run/netns"), "c1").unwrap();
        sys.fail_at(1);
        let err = start(&sys, &config(dir.path())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot start pasta for the network namespace /run/netns/c1"
        );
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn pasta_output_loses_syslog_noise_and_usage() {
        let output = "Failed to send 63 bytes to syslog\n\
                      Port forwarding mode 'none' conflicts with previous mode\n";
        assert_eq!(
            pasta_message(output),
            "Port forwarding mode 'none' conflicts with previous mode"
        );
        let output = "pasta: unrecognized option '--sctp'\n\
                      Failed to send 51 bytes to syslog\n\
                      Usage: pasta [OPTION]... [COMMAND] [ARGS]...\n\
                      \x20      pasta [OPTION]... PID\n";
        assert_eq!(pasta_message(output), "pasta: unrecognized option '--sctp'");
        assert_eq!(pasta_message(""), "pasta printed nothing");
    }
}

//! slirp4netns backend: connects a container's network namespace to the host through
//! slirp4netns (user-mode networking), as podman does, as a first-class netctl mode
//! (`mode = "slirp4netns"`).
//!
//! * [`validate`] checks the options (`cidr`, `mtu`, `enable_ipv6`, `allow_host_loopback`,
//!   `outbound_addr`, `outbound_addr6`, `port_handler`) with podman's defaults; pure.
//! * [`Features::probe`] reads `slirp4netns --help` for the flags this binary has.
//! * [`argv`] builds the command line in podman's order (see the `argv` module docs for each
//!   deliberate difference: no exit pipe, the ready pipe on stdin, no `--enable-sandbox`);
//!   pure, snapshot-tested.
//! * [`start`] runs slirp4netns through the `netctl-sys` seam and waits on its ready pipe with
//!   a bounded timeout; on failure the error carries slirp4netns's log and nothing is left
//!   running. Published ports are then forwarded through its API socket ([`add_ports`],
//!   [`remove_ports`]; both port handlers, see `settings`).
//! * [`stop`] ends it (`SIGTERM`, a bounded wait, `SIGKILL`) and removes its API socket.
//! * [`container_addresses`], [`hosts_entries`], [`resolv_params`]: podman's fixed addresses
//!   (cidr+100 container, +2 gateway, +3 DNS) and files for this mode.
//! * [`live`] (shared with netctl-pasta) reads the namespace back for `inspect`.
//!
//! Lifecycle: netctl is not a daemon. slirp4netns keeps running after netctl exits (no exit
//! pipe); its tap device keeps the namespace alive, so it never ends by itself and netctl
//! must stop it on `destroy` and container removal. A dead slirp4netns shows as drift (the
//! recorded pid and start time no longer match); restarting is [`start`] again with the same
//! [`SlirpConfig`] (its tap device went with it), which re-adds the ports.
//!
//! Root-only assumptions (netctl runs as root for now), all here: the namespace is joined by
//! path (`--netns-type=path`, no `--userns-path`), and podman's `rootlesskit` port handler
//! (rootlessport) is replaced by the API socket.
//!
//! Invariant: the kernel and processes are reached only through `&dyn Sys`; the API socket is
//! the helper's own protocol, spoken directly.

mod api;
mod argv;
mod dns;
mod error;
mod features;
mod settings;

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netctl_sys::{NsRef, SpawnMode, SpawnSpec, StdioSpec, Sys, SysError, Termination};
use netctl_types::{PortMapping, SlirpOptions};

pub use api::{Forward, add_ports, list_forwards, remove_ports};
pub use argv::argv;
pub use dns::{Addresses, container_addresses, hosts_entries, resolv_params};
pub use error::SlirpError;
pub use features::{Features, PROBE_TIMEOUT};
/// Reading a helper-configured namespace back; shared with the pasta backend.
pub use netctl_pasta::live;
pub use settings::{
    HostFwd, MAX_MTU, MAX_PREFIX, MIN_MTU, Outbound, Settings, host_forwards, validate,
};

/// The program run by default (looked up in `PATH`).
pub const PROGRAM: &str = "slirp4netns";

/// The interface slirp4netns creates in the namespace.
pub const TAP_NAME: &str = "tap0";

/// How long slirp4netns gets to create and configure tap0 and say it is ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long slirp4netns gets to exit after `SIGTERM` before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// The longest Unix socket path (`sun_path` is 108 bytes with its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The most of slirp4netns's log an error carries (its end, where the failure is).
const MAX_LOG_IN_ERROR: usize = 4096;

/// What to start slirp4netns with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlirpConfig {
    /// The slirp4netns program: a path, or a name looked up in `PATH`.
    pub program: String,
    /// The container's network namespace (`/run/netns/web`, `/proc/PID/ns/net`).
    pub netns: PathBuf,
    pub options: SlirpOptions,
    /// Published ports: normalised podman mappings whose host ports are chosen already.
    pub ports: Vec<PortMapping>,
    /// slirp4netns's API socket (at most 107 bytes long).
    pub api_socket: PathBuf,
    /// Where slirp4netns's stdout and stderr go (emptied at each start).
    pub log_file: PathBuf,
    /// How long slirp4netns gets to say it is ready before it is killed.
    pub ready_timeout: Duration,
}

impl SlirpConfig {
    /// Default options, no ports, [`PROGRAM`], the API socket and log in `dir`.
    pub fn new(netns: impl Into<PathBuf>, dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        Self {
            program: PROGRAM.to_owned(),
            netns: netns.into(),
            options: SlirpOptions::default(),
            ports: Vec::new(),
            api_socket: dir.join(FILES[0]),
            log_file: dir.join(FILES[1]),
            ready_timeout: READY_TIMEOUT,
        }
    }
}

/// The files a slirp4netns leaves in its directory: the API socket and the log.
pub const FILES: [&str; 2] = ["slirp4netns.sock", "slirp4netns.log"];

/// The directory netctl keeps a container's slirp4netns files in under `run_dir`.
pub fn files_dir(run_dir: &Path, container: &str) -> PathBuf {
    run_dir.join("containers").join(container)
}

/// A running slirp4netns, as the caller records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat`: with the pid, identifies this slirp4netns for good.
    pub start_time: u64,
    /// The command line it was started with, program first.
    pub argv: Vec<String>,
    /// Its API socket, when the binary has one.
    pub api_socket: Option<PathBuf>,
    /// The published ports' forwards, one per port and protocol.
    pub forwards: Vec<Forward>,
}

/// Resolves an outbound option to an address: an interface's first address of the family
/// (link-local ones skipped), from the host namespace.
fn resolve_outbound(
    sys: &dyn Sys,
    option: &'static str,
    outbound: Option<&Outbound>,
    v6: bool,
) -> Result<Option<IpAddr>, SlirpError> {
    let name = match outbound {
        None => return Ok(None),
        Some(Outbound::Address(ip)) => return Ok(Some(*ip)),
        Some(Outbound::Interface(name)) => name,
    };
    let invalid = |reason: &str| SlirpError::Option {
        option,
        value: name.clone(),
        reason: reason.to_owned(),
    };
    let link = sys
        .link(&NsRef::Host, name)
        .map_err(|e| SlirpError::sys(format!("look up the {option} interface {name}"), e))?;
    if link.is_none() {
        return Err(invalid("no such interface on the host"));
    }
    let addrs = sys
        .addrs(&NsRef::Host)
        .map_err(|e| SlirpError::sys("list the host's addresses", e))?;
    addrs
        .iter()
        .filter(|a| a.link_name == *name && a.net.addr().is_ipv6() == v6)
        .map(|a| a.net.addr())
        .find(|ip| match ip {
            IpAddr::V4(v4) => !v4.is_link_local(),
            IpAddr::V6(v6) => !v6.is_unicast_link_local(),
        })
        .map(Some)
        .ok_or_else(|| {
            invalid(if v6 {
                "the interface has no IPv6 address"
            } else {
                "the interface has no IPv4 address"
            })
        })
}

fn file_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SlirpError {
    let path = path.to_owned();
    move |source| SlirpError::File { what, path, source }
}

fn create_parent(path: &Path) -> Result<(), SlirpError> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(file_error("create the directory", dir)),
        None => Ok(()),
    }
}

/// Removes a file; one that is not there is fine.
fn remove_if_present(path: &Path, what: &'static str) -> Result<(), SlirpError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(file_error(what, path)(e)),
        _ => Ok(()),
    }
}

/// The end of slirp4netns's log, for an error.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let text = text.trim();
    let start = text
        .char_indices()
        .map(|(i, _)| i)
        .find(|i| text.len() - i <= MAX_LOG_IN_ERROR)
        .unwrap_or(text.len());
    text[start..].to_owned()
}

/// `net.ipv6.conf.default.accept_dad`, turned off in the namespace while slirp4netns creates
/// tap0 (as podman does) so its IPv6 address is usable at once, and put back afterwards.
const ACCEPT_DAD: [&str; 5] = ["net", "ipv6", "conf", "default", "accept_dad"];

/// Starts slirp4netns for `cfg.netns`, waits until it is ready, forwards the ports. On any
/// failure nothing is left running.
pub fn start(sys: &dyn Sys, cfg: &SlirpConfig) -> Result<Started, SlirpError> {
    let settings = validate(&cfg.options)?;
    host_forwards(&cfg.ports, settings.allow_host_loopback)?;
    let ns = NsRef::path(&cfg.netns);
    let is_netns = sys
        .is_netns(&cfg.netns)
        .map_err(|e| SlirpError::sys(format!("check the namespace {}", cfg.netns.display()), e))?;
    if !is_netns {
        return Err(SlirpError::NotANamespace {
            netns: cfg.netns.clone(),
        });
    }
    let outbound = (
        resolve_outbound(sys, "outbound_addr", settings.outbound_addr.as_ref(), false)?,
        resolve_outbound(
            sys,
            "outbound_addr6",
            settings.outbound_addr6.as_ref(),
            true,
        )?,
    );
    let features = Features::probe(sys, &cfg.program)?;
    let argv = argv(cfg, &settings, &features, outbound)?;
    if features.api_socket && cfg.api_socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(SlirpError::Option {
            option: "api_socket",
            value: cfg.api_socket.display().to_string(),
            reason: format!("a Unix socket path is at most {MAX_SOCKET_PATH} bytes"),
        });
    }
    create_parent(&cfg.api_socket)?;
    create_parent(&cfg.log_file)?;
    // A socket left by an earlier slirp4netns would make bind fail.
    remove_if_present(&cfg.api_socket, "remove the stale API socket")?;
    std::fs::write(&cfg.log_file, "").map_err(file_error("empty the log", &cfg.log_file))?;

    let dad = if settings.enable_ipv6 {
        let old = sys
            .sysctl_get(&ns, &ACCEPT_DAD)
            .map_err(|e| SlirpError::sys("read accept_dad in the container", e))?;
        sys.sysctl_set(&ns, &ACCEPT_DAD, "0")
            .map_err(|e| SlirpError::sys("turn accept_dad off while slirp4netns starts", e))?;
        Some(old)
    } else {
        None
    };
    let spec = SpawnSpec {
        stdout: StdioSpec::File(cfg.log_file.clone()),
        stderr: StdioSpec::File(cfg.log_file.clone()),
        mode: SpawnMode::ReadyPipe {
            timeout: cfg.ready_timeout,
        },
        ..SpawnSpec::new(&argv)
    };
    let spawned = sys.spawn(&spec);
    let restored = match &dad {
        Some(old) => sys
            .sysctl_set(&ns, &ACCEPT_DAD, old)
            .map_err(|e| SlirpError::sys("put accept_dad back after slirp4netns started", e)),
        None => Ok(()),
    };
    let spawned = match spawned {
        Ok(spawned) => spawned,
        Err(err) => {
            let reason = match &err {
                SysError::SpawnFailed { status, output, .. } => format!("{status}: {output}"),
                SysError::SpawnTimeout { timeout, .. } => {
                    format!("not ready within {timeout:?}, killed")
                }
                other => other.to_string(),
            };
            return Err(SlirpError::Start {
                netns: cfg.netns.clone(),
                reason,
                log: log_tail(&cfg.log_file),
            });
        }
    };
    let abandon = |err: SlirpError| {
        let _ = stop(sys, spawned.pid, spawned.start_time, &cfg.api_socket);
        err
    };
    restored.map_err(abandon)?;
    let forwards = if cfg.ports.is_empty() {
        Vec::new()
    } else {
        add_ports(&cfg.api_socket, &cfg.options, &cfg.ports).map_err(abandon)?
    };
    Ok(Started {
        pid: spawned.pid,
        start_time: spawned.start_time,
        argv,
        api_socket: features.api_socket.then(|| cfg.api_socket.clone()),
        forwards,
    })
}

/// Stops the slirp4netns recorded as (`pid`, `start_time`) and removes its API socket; one
/// that is already gone is fine.
pub fn stop(
    sys: &dyn Sys,
    pid: u32,
    start_time: u64,
    api_socket: &Path,
) -> Result<Termination, SlirpError> {
    let ended = netctl_sys::terminate(sys, pid, start_time, STOP_GRACE).map_err(|source| {
        SlirpError::Stop {
            pid,
            source: Box::new(source),
        }
    })?;
    remove_if_present(api_socket, "remove the API socket")?;
    Ok(ended)
}

/// Whether the slirp4netns recorded as (`pid`, `start_time`) still runs.
pub fn is_running(sys: &dyn Sys, pid: u32, start_time: u64) -> bool {
    sys.is_alive(pid, start_time)
}

#[cfg(test)]
mod tests;

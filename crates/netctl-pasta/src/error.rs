//! The one error type of the pasta backend.

use std::io;
use std::path::PathBuf;

use netctl_sys::SysError;
use thiserror::Error;

/// Everything that can go wrong building pasta's command line, starting or stopping it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PastaError {
    /// pasta forwards TCP and UDP only (podman 4.4 passed sctp mappings on without `-t`/`-u`,
    /// so pasta read them as a command to run).
    #[error(
        "pasta cannot forward sctp (port mapping {mapping}); publish sctp ports with mode = \"bridge\""
    )]
    Sctp { mapping: String },

    #[error("unknown protocol `{protocol}` in port mapping {mapping}: expected tcp or udp")]
    UnknownProtocol { protocol: String, mapping: String },

    /// Host port 0 means "choose one"; the caller chooses before starting pasta.
    #[error("port mapping {mapping} has no host port yet; one must be chosen before pasta starts")]
    HostPortNotChosen { mapping: String },

    #[error("port mapping {mapping} runs past port 65535")]
    PortRange { mapping: String },

    #[error("host IP `{host_ip}` of port mapping {mapping} is not an IP address")]
    HostIp { host_ip: String, mapping: String },

    /// The user's options contain one netctl sets itself.
    #[error("pasta option `{spelled}` (--{option}) is set by netctl itself and cannot be given")]
    OwnedOption {
        spelled: String,
        option: &'static str,
    },

    /// pasta reads a non-option argument as a command (or PID) to attach to, which the
    /// namespace netctl names makes wrong.
    #[error(
        "pasta argument `{argument}` is not an option; netctl runs pasta on the container's namespace, not on a command"
    )]
    Positional { argument: String },

    #[error("pasta options `--map-gw` and `{spelled}` contradict each other")]
    MapGwConflict { spelled: String },

    #[error("{} is not a network namespace", .netns.display())]
    NotANamespace { netns: PathBuf },

    #[error("cannot check the network namespace {}", .netns.display())]
    Namespace {
        netns: PathBuf,
        #[source]
        source: Box<SysError>,
    },

    #[error("cannot create the directory {} for pasta's pid file", .path.display())]
    PidFileDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// pasta ran and refused; `message` is what it said (syslog noise and the usage text
    /// removed).
    #[error("pasta failed to set up the network namespace {} ({status}): {message}", .netns.display())]
    Failed {
        netns: PathBuf,
        status: String,
        message: String,
    },

    /// pasta could not be run at all, did not finish in time, or left no usable pid file.
    #[error("cannot start pasta for the network namespace {}", .netns.display())]
    Start {
        netns: PathBuf,
        #[source]
        source: Box<SysError>,
    },

    #[error("cannot stop pasta (pid {pid})")]
    Stop {
        pid: u32,
        #[source]
        source: Box<SysError>,
    },
}

//! The one error type of the slirp4netns backend.

use std::io;
use std::path::PathBuf;

use netctl_sys::SysError;
use thiserror::Error;

/// Everything that can go wrong validating options, starting or stopping slirp4netns, or
/// forwarding ports through its API socket.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SlirpError {
    /// An option value slirp4netns (or podman) would refuse.
    #[error("invalid slirp4netns option {option} = {value}: {reason}")]
    Option {
        option: &'static str,
        value: String,
        reason: String,
    },

    /// The installed slirp4netns lacks a flag the options need (found by `--help`).
    #[error(
        "the installed slirp4netns ({program}) does not support {flag}, which {needed_for} needs"
    )]
    Unsupported {
        program: String,
        flag: &'static str,
        needed_for: String,
    },

    #[error("port mapping {mapping}: {reason}")]
    Port { mapping: String, reason: String },

    #[error("{} is not a network namespace", .netns.display())]
    NotANamespace { netns: PathBuf },

    /// A system call around the start (namespace check, sysctl, interface lookup) failed.
    #[error("cannot {what}")]
    Sys {
        what: String,
        #[source]
        source: Box<SysError>,
    },

    #[error("cannot {what} {}", .path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot probe the features of {program} (`{program} --help`)")]
    Probe {
        program: String,
        #[source]
        source: Box<SysError>,
    },

    #[error("`{program} --help` failed ({status}): {stderr}")]
    ProbeFailed {
        program: String,
        status: String,
        stderr: String,
    },

    /// slirp4netns did not become ready; `log` is what it wrote (stdout and stderr).
    #[error("slirp4netns failed for the network namespace {} ({reason}); its log: {log:?}", .netns.display())]
    Start {
        netns: PathBuf,
        reason: String,
        log: String,
    },

    #[error("cannot reach the slirp4netns API socket {} to {request}", .socket.display())]
    Api {
        socket: PathBuf,
        request: String,
        #[source]
        source: io::Error,
    },

    /// slirp4netns answered with an error (or something that is not its protocol).
    #[error("slirp4netns refused to {request} (API socket {}): {reply}", .socket.display())]
    ApiRefused {
        socket: PathBuf,
        request: String,
        reply: String,
    },

    #[error("cannot stop slirp4netns (pid {pid})")]
    Stop {
        pid: u32,
        #[source]
        source: Box<SysError>,
    },
}

impl SlirpError {
    pub(crate) fn sys(what: impl Into<String>, source: SysError) -> Self {
        Self::Sys {
            what: what.into(),
            source: Box::new(source),
        }
    }
}

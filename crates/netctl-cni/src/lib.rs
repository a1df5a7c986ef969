//! The CNI plugin protocol, as netctl speaks it: the runtime's environment and stdin become a
//! [`Request`]; results, errors and version answers are rendered for the version the runtime
//! asked for (spec 0.4.0, 1.0.0 and 1.1.0).
//!
//! Pure: no I/O. [`parse`] reads the environment through a closure, so tests hand it a map.
//! Every input netctl cannot honour is refused here with the spec's error code (1 version,
//! 2 unsupported field, 4 environment variable, 6 decoding, 7 configuration), naming the key or
//! the variable, before the engine is asked to do anything.
//!
//! What is netctl's own (not the spec's): the plugin key `network` (a recorded network's name,
//! or an inline object with netctl's network keys) and the error codes from 100 ([`code`]).

mod render;
mod request;

pub use render::{AddResult, Dns, Interface, IpConfig, Route, render_error, render_version};
pub use request::{
    Attachment, CniArgs, Command, NetworkRef, Refused, Request, RuntimeConfig, parse,
};

/// The error codes netctl answers with: the spec's well-known ones (below 100) and netctl's.
pub mod code {
    /// The requested `cniVersion` is not one netctl speaks.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// A key or value netctl does not support (the message names it).
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// CHECK on a container netctl has no record of.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// A required environment variable is missing or invalid (the message names it).
    pub const INVALID_ENV: u32 = 4;
    /// The network configuration on stdin is not JSON of the expected shape.
    pub const DECODE: u32 = 6;
    /// The network configuration is invalid (the message names the key).
    pub const INVALID_CONFIG: u32 = 7;
    /// Another netctl operation held the state lock past the bound: try again later.
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin cannot serve ADD now (store or firewall unusable).
    pub const NOT_AVAILABLE: u32 = 50;
    /// A requested static address is held by another container (the message names it).
    pub const ADDRESS_IN_USE: u32 = 100;
    /// No free address is left in a subnet.
    pub const SUBNET_EXHAUSTED: u32 = 101;
    /// ADD for an interface (container id, ifname) or network the container already has.
    pub const ALREADY_ATTACHED: u32 = 102;
    /// CHECK found differences between the result, netctl's records and the kernel.
    pub const CHECK_FAILED: u32 = 110;
    /// GC could not release every stale attachment (each failure is listed).
    pub const GC_FAILED: u32 = 111;
    /// Any other failure of the operation (netctl's error chain in `msg`); what the operation
    /// changed was rolled back.
    pub const FAILED: u32 = 120;
}

/// A CNI version netctl speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl Version {
    /// Every version netctl speaks, oldest first: what VERSION answers.
    pub const ALL: [Version; 3] = [Version::V0_4_0, Version::V1_0_0, Version::V1_1_0];
    /// The newest, used for answers to requests that named no usable version.
    pub const LATEST: Version = Version::V1_1_0;

    pub const fn as_str(self) -> &'static str {
        match self {
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    pub fn parse(text: &str) -> Option<Version> {
        Self::ALL.into_iter().find(|v| v.as_str() == text)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CNI error: what the plugin prints on stdout (with `cniVersion`) and exits non-zero with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}{}", if .details.is_empty() { String::new() } else { format!("; {}", .details) })]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    #[must_use]
    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }
}

#[cfg(test)]
mod tests;

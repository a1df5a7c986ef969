//! A container's `/etc/hosts` and `/etc/resolv.conf`, generated and edited with podman's
//! semantics (containers/common `etchosts` and `resolvconf`).
//!
//! Layout: [`hosts`] and [`resolv`] each have a pure part (parse, render, compose a new file
//! from parameters — no I/O, so callers decide what to read) and file edits for connect and
//! disconnect; [`write_file`] writes a newly composed file.
//!
//! Architecture invariants:
//! * This crate takes paths and contents, never settings: the caller decides where the files
//!   live (for a managed namespace `<etc_netns_dir>/<name>/hosts` and `.../resolv.conf`) and
//!   reads the host's files itself.
//! * It depends on no other netctl crate.
//! * Every write keeps the file's inode and runs under an exclusive lock on the file (see
//!   [`mod@file`]), because the files are bind-mounted into containers and shared by containers
//!   that share a network namespace.

pub mod aardvark;
pub mod file;
pub mod hosts;
pub mod resolv;

pub use file::{
    FileError, FileOp, files_are, lock_file, read_file, remove_files, replace_file, write_file,
};
pub use hosts::{HostEntry, HostsParams};
pub use resolv::{ResolvConf, ResolvParams};

//! [`Sysctl`] for [`LinuxSys`]: `/proc/sys` files, read or written from inside the namespace.
//!
//! `/proc/sys/net` shows the network namespace of the task that opens the file, so work for
//! another namespace is done by a helper thread that has entered it (see [`super::netns`]).

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;

use super::{LinuxSys, netns};
use crate::model::check_sysctl_key;
use crate::{NsRef, SysError, SysResult, Sysctl, SysctlOp, sysctl_key_display};

/// `/proc/sys/<key components>`, refusing components that would walk elsewhere.
fn sysctl_path(key: &[&str]) -> SysResult<PathBuf> {
    check_sysctl_key(key)?;
    let mut path = PathBuf::from("/proc/sys");
    path.extend(key);
    Ok(path)
}

impl Sysctl for LinuxSys {
    fn sysctl_get(&self, ns: &NsRef, key: &[&str]) -> SysResult<String> {
        let path = sysctl_path(key)?;
        netns::open(ns)?.run(|| {
            fs::read_to_string(&path)
                .map(|value| value.trim_end_matches('\n').to_owned())
                .map_err(|source| SysError::Sysctl {
                    op: SysctlOp::Read,
                    key: sysctl_key_display(key),
                    value: None,
                    ns: ns.clone(),
                    source,
                })
        })
    }

    fn sysctl_set(&self, ns: &NsRef, key: &[&str], value: &str) -> SysResult<()> {
        let path = sysctl_path(key)?;
        netns::open(ns)?.run(|| {
            // No create, no truncate: a /proc/sys file either exists or the key is wrong.
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|mut file| file.write_all(value.as_bytes()))
                .map_err(|source| SysError::Sysctl {
                    op: SysctlOp::Write,
                    key: sysctl_key_display(key),
                    value: Some(value.to_owned()),
                    ns: ns.clone(),
                    source,
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_proc_sys_paths_and_never_escape() {
        assert_eq!(
            sysctl_path(&["net", "ipv4", "conf", "eth0.10", "rp_filter"]).unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.10/rp_filter")
        );
        for bad in [&[][..], &["net", ".."], &["net/ipv4"], &["net", ""]] {
            assert!(sysctl_path(bad).is_err(), "{bad:?}");
        }
    }
}

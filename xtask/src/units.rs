//! `cargo xtask units`: `systemd-analyze verify` on the units in config/systemd/.
//!
//! CI runs as root on a machine where systemd need not be PID 1 and netctl is not installed,
//! and verify insists that every ExecStart= program exists. So the units are checked as copies
//! whose `/usr/bin/netctl` is the binary just built (the package installs it at
//! `/usr/bin/netctl`, which `tests/units.rs` holds the units to). verify reports some mistakes
//! (an unknown key, a bad value) as warnings with exit status 0: any output is a failure here.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// Where the units live in the source tree.
pub const UNITS_DIR: &str = "config/systemd";

/// The program the units run, as installed by the package.
pub const INSTALLED_NETCTL: &str = "/usr/bin/netctl";

/// The unit files, sorted.
pub fn unit_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = root.join(UNITS_DIR);
    let mut units: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    units.retain(|p| p.extension().is_some_and(|e| e == "service"));
    units.sort();
    if units.is_empty() {
        bail!("no units in {}", dir.display());
    }
    Ok(units)
}

/// Verifies every unit, with `netctl` standing for the installed binary.
pub fn verify(root: &Path, netctl: &Path) -> anyhow::Result<()> {
    let netctl = netctl
        .canonicalize()
        .with_context(|| format!("{} (build netctl first)", netctl.display()))?;
    let scratch = root.join("target/xtask-units");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    std::fs::create_dir_all(&scratch)?;
    let mut copies = Vec::new();
    for unit in unit_files(root)? {
        let text = std::fs::read_to_string(&unit)?;
        if !text.contains(INSTALLED_NETCTL) {
            bail!("{} does not run {INSTALLED_NETCTL}", unit.display());
        }
        let copy = scratch.join(unit.file_name().expect("a unit file has a name"));
        let netctl = netctl.to_str().context("the netctl path is not UTF-8")?;
        std::fs::write(&copy, text.replace(INSTALLED_NETCTL, netctl))?;
        copies.push(copy);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&copies)
        .output()
        .context("cannot run systemd-analyze (package systemd)")?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || !said.trim().is_empty() {
        bail!("systemd-analyze verify ({}):\n{said}", out.status);
    }
    println!("xtask units: {} units verified", copies.len());
    Ok(())
}

//! Puts the git commit netctl is built from into `netctl --version` (`NETCTL_GIT_COMMIT`), and
//! the build time and target into `netavark version` (`NETCTL_BUILD_TIME`, `NETCTL_TARGET`).
//!
//! Without git or outside a checkout (a source tarball) the commit is "unknown", unless the
//! builder names it in the `NETCTL_GIT_COMMIT` environment variable.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=NETCTL_GIT_COMMIT");
    let commit = std::env::var("NETCTL_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=NETCTL_GIT_COMMIT={commit}");
    // When this build was made, for `netavark version` (as netavark reports it): the time
    // SOURCE_DATE_EPOCH names for a reproducible build, else now.
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let when = std::env::var("SOURCE_DATE_EPOCH")
        .map_or_else(|_| "now".to_owned(), |epoch| format!("@{epoch}"));
    let built = Command::new("date")
        .args(["-u", "-d", &when, "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=NETCTL_BUILD_TIME={built}");
    println!(
        "cargo:rustc-env=NETCTL_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
    // Build again when HEAD moves: HEAD itself names the branch (or a detached commit), the
    // branch's ref file or packed-refs its commit, and the reflog grows with every commit (a
    // ref that was packed when this first ran becomes a loose file nobody watched). Only files
    // that exist: cargo would rerun this script on every build for a missing one.
    let mut watched = vec![
        "HEAD".to_owned(),
        "packed-refs".to_owned(),
        "logs/HEAD".to_owned(),
    ];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name])
            && Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// One line of git's output, or `None` when git is missing or fails (no checkout).
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

//! Puts the git commit netctl is built from into `netctl --version` (`NETCTL_GIT_COMMIT`), and
//! the build time and target into `netavark version` (`NETCTL_BUILD_TIME`, `NETCTL_TARGET`).
//!
//! Without git or outside a checkout (a source tarball) the commit is "unknown", unless the
//! builder names it in the `NETCTL_GIT_COMMIT` environment variable.
//!
//! Release builds for Linux also get a linker script that gathers the functions netctl's
//! everyday commands run (`hot-functions.txt`, written by `cargo xtask bench hot`) into one
//! output section, `.text.hot`, ahead of the rest of the text: a command then maps ~3 MB of
//! code instead of most of the 9 MB (see xtask/src/bench/hot.rs). `NETCTL_HOT_TEXT=0` turns
//! it off. The script only adds a section (`INSERT BEFORE .text`), so GNU ld and lld take it.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

fn main() {
    hot_text();
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

/// The linker script for the release binary's hot functions (see the module notes).
fn hot_text() {
    println!("cargo:rerun-if-changed=hot-functions.txt");
    println!("cargo:rerun-if-env-changed=NETCTL_HOT_TEXT");
    let env = |key: &str| std::env::var(key).unwrap_or_default();
    if env("PROFILE") != "release"
        || env("CARGO_CFG_TARGET_OS") != "linux"
        || env("NETCTL_HOT_TEXT") == "0"
    {
        return;
    }
    let Ok(list) = std::fs::read_to_string("hot-functions.txt") else {
        return;
    };
    let mut script = String::from("SECTIONS\n{\n  .text.hot :\n  {\n");
    for pattern in list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        // A symbol's name, `*` where the hash or LLVM's suffix may differ: nothing the
        // linker script language would read as anything else.
        .filter(|l| {
            l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_$.*".contains(&b))
        })
    {
        // Functions LLVM judges cold (`#[cold]`) sit in `.text.unlikely.NAME`.
        let _ = writeln!(script, "    *(.text.{pattern} .text.unlikely.{pattern})");
    }
    script.push_str("  }\n}\nINSERT BEFORE .text;\n");
    let path = Path::new(&env("OUT_DIR")).join("hot-text.ld");
    std::fs::write(&path, script).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-arg-bin=netctl=-Wl,-T,{}", path.display());
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

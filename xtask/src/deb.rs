//! `cargo xtask deb`: the Debian package `target/debian/netctl_<version>_<arch>.deb`, and its
//! checks for CI.
//!
//! The package is assembled by hand and built with `dpkg-deb` (no debian/ source tree, no
//! debhelper): the stripped release binary; what the binary generates from its own definitions
//! (man pages, completions, the JSON Schema); config/ (systemd units, the settings example as a
//! conffile, the podman drop-in as an opt-in example); the docs. [`LAYOUT`] is the one list of
//! what goes where: the build follows it, and the check compares `dpkg-deb --contents` with it.
//!
//! The check (`cargo xtask deb --check`, part of `cargo xtask ci`): the contents are exactly
//! the layout, `/etc/netctl/netctl.toml` is a conffile, lintian reports no error, and the
//! binary extracted with `dpkg -x` into a temporary root runs from there (`--version`,
//! `validate` of the shipped example with the shipped settings, the `netavark` link).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// Where a file of the package comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The release binary, stripped.
    Binary,
    /// A file of the source tree, as it is.
    Copy(&'static str),
    /// A symbolic link with this (relative) target.
    Link(&'static str),
    /// `netctl completions SHELL`.
    Completion(&'static str),
    /// `netctl schema`.
    Schema,
    /// Every page of `netctl man`, gzipped, into this directory.
    ManPages,
    /// Every file of a source directory with this extension, into this directory.
    Tree {
        dir: &'static str,
        extension: &'static str,
    },
    /// The Debian changelog entry of this build, gzipped.
    Changelog,
}

/// Every file of the package (paths without the leading `/`), and where it comes from. Man
/// pages, the docs and the examples are one entry for their directory.
pub const LAYOUT: &[(&str, Source)] = &[
    ("usr/bin/netctl", Source::Binary),
    // podman looks for `netavark` in its helper_binaries_dir; docs/podman.md says how.
    ("usr/lib/netctl/netavark", Source::Link("../../bin/netctl")),
    (
        "usr/lib/systemd/system",
        Source::Tree {
            dir: "config/systemd",
            extension: "service",
        },
    ),
    ("etc/netctl/netctl.toml", Source::Copy("config/netctl.toml")),
    (
        "usr/share/bash-completion/completions/netctl",
        Source::Completion("bash"),
    ),
    (
        "usr/share/zsh/vendor-completions/_netctl",
        Source::Completion("zsh"),
    ),
    (
        "usr/share/fish/vendor_completions.d/netctl.fish",
        Source::Completion("fish"),
    ),
    ("usr/share/man/man1", Source::ManPages),
    ("usr/share/netctl/netctl.schema.json", Source::Schema),
    (
        "usr/share/doc/netctl/copyright",
        Source::Copy("config/debian/copyright"),
    ),
    ("usr/share/doc/netctl/changelog.gz", Source::Changelog),
    (
        "usr/share/lintian/overrides/netctl",
        Source::Copy("config/debian/lintian-overrides"),
    ),
    ("usr/share/doc/netctl/README.md", Source::Copy("README.md")),
    (
        "usr/share/doc/netctl/docs",
        Source::Tree {
            dir: "docs",
            extension: "md",
        },
    ),
    (
        "usr/share/doc/netctl/examples",
        Source::Tree {
            dir: "config/examples",
            extension: "toml",
        },
    ),
    (
        "usr/share/doc/netctl/examples/containers.conf.d/50-netctl.conf",
        Source::Copy("config/podman/50-netctl.conf"),
    ),
];

/// Files dpkg must not overwrite once the admin changed them.
pub const CONFFILES: &[&str] = &["/etc/netctl/netctl.toml"];

/// Package metadata that is not computed.
const SUMMARY: &str = "declarative container-network manager";
/// The long description, one line each ("." is an empty line).
const DESCRIPTION: &[&str] = &[
    "netctl makes the kernel match a TOML description of networks and containers",
    "(network namespaces): bridges, veth pairs, addresses, routes, sysctls, nftables",
    "NAT, port forwarding and isolation, the container's hosts and resolv.conf, and",
    "pasta or slirp4netns helpers. It records everything it made, so it can show,",
    "diff, reload and remove exactly that.",
    ".",
    "It reproduces podman's network behaviour and can serve as podman's network",
    "backend (it speaks netavark's protocol).",
];
/// Who the package names as its maintainer unless `DEBFULLNAME` / `DEBEMAIL` say otherwise.
const MAINTAINER_NAME: &str = "netctl developers";
const MAINTAINER_EMAIL: &str = "netctl@lists.example.net";

/// The package version: the workspace's.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The package's path for `arch`.
pub fn deb_path(root: &Path, arch: &str) -> PathBuf {
    root.join("target/debian")
        .join(format!("netctl_{}_{arch}.deb", version()))
}

/// dpkg's name for this machine's architecture (amd64, arm64, ...).
pub fn architecture() -> anyhow::Result<String> {
    Ok(capture(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_owned())
}

/// Builds the package; returns its path.
pub fn build(root: &Path) -> anyhow::Result<PathBuf> {
    crate::step(
        "build netctl (release)",
        crate::cargo(&["build", "--release", "--quiet", "-p", "netctl"]),
    )?;
    let arch = architecture()?;
    let work = root.join("target/debian/build");
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("cannot remove {}", work.display()))?;
    }
    // dpkg-shlibdeps wants the tree at debian/<package> beside a debian/control.
    let pkg = work.join("debian/netctl");
    std::fs::create_dir_all(&pkg)?;
    for (path, source) in LAYOUT {
        place(root, &pkg, path, *source)?;
    }
    let depends = shlib_depends(&work)?;
    let debian = pkg.join("DEBIAN");
    std::fs::create_dir_all(&debian)?;
    let installed_kib = installed_size_kib(&pkg)?;
    let (name, email) = maintainer();
    write(
        &debian.join("control"),
        control(&arch, &depends, installed_kib, &name, &email).as_bytes(),
    )?;
    write(
        &debian.join("conffiles"),
        (CONFFILES.join("\n") + "\n").as_bytes(),
    )?;
    write(&debian.join("md5sums"), &md5sums(&pkg)?)?;
    normalise_permissions(&pkg)?;
    let deb = deb_path(root, &arch);
    let mut dpkg = Command::new("dpkg-deb");
    dpkg.args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&pkg)
        .arg(&deb)
        .env("SOURCE_DATE_EPOCH", source_date_epoch()?);
    capture(&mut dpkg)?;
    println!("xtask deb: {}", deb.display());
    Ok(deb)
}

/// Puts one layout entry into the package tree at `pkg`.
fn place(root: &Path, pkg: &Path, path: &str, source: Source) -> anyhow::Result<()> {
    let dest = pkg.join(path);
    std::fs::create_dir_all(dest.parent().expect("layout paths have a directory"))?;
    let netctl = root.join("target/release/netctl");
    match source {
        Source::Binary => {
            std::fs::copy(&netctl, &dest)
                .with_context(|| format!("cannot copy {}", netctl.display()))?;
            // What dh_strip does for an executable.
            capture(
                Command::new("strip")
                    .args([
                        "--remove-section=.comment",
                        "--remove-section=.note",
                        "--strip-unneeded",
                    ])
                    .arg(&dest),
            )?;
        }
        Source::Copy(from) => {
            std::fs::copy(root.join(from), &dest).with_context(|| format!("cannot copy {from}"))?;
        }
        Source::Link(target) => std::os::unix::fs::symlink(target, &dest)?,
        Source::Completion(shell) => {
            write(
                &dest,
                capture(Command::new(&netctl).args(["completions", shell]))?.as_bytes(),
            )?;
        }
        Source::Schema => write(
            &dest,
            capture(Command::new(&netctl).arg("schema"))?.as_bytes(),
        )?,
        Source::ManPages => {
            let raw = pkg.parent().expect("pkg has a parent").join("man");
            capture(Command::new(&netctl).arg("man").arg(&raw))?;
            std::fs::create_dir_all(&dest)?;
            for page in man_pages(&raw)? {
                let name = page
                    .file_name()
                    .expect("a page has a name")
                    .to_string_lossy();
                write(
                    &dest.join(format!("{name}.gz")),
                    &gzip(&std::fs::read(&page)?)?,
                )?;
            }
        }
        Source::Changelog => write(&dest, &gzip(changelog()?.as_bytes())?)?,
        Source::Tree { dir, extension } => {
            std::fs::create_dir_all(&dest)?;
            for name in tree_files(root, dir, extension)? {
                let from = root.join(dir).join(&name);
                std::fs::copy(&from, dest.join(&name))
                    .with_context(|| format!("cannot copy {}", from.display()))?;
            }
        }
    }
    Ok(())
}

/// The names of the files in `root/dir` that end in `.extension`, sorted.
fn tree_files(root: &Path, dir: &str, extension: &str) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root.join(dir)).with_context(|| format!("cannot read {dir}"))? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == extension) {
            names.push(
                path.file_name()
                    .expect("named")
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    names.sort();
    Ok(names)
}

fn man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    pages.sort();
    Ok(pages)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// `gzip -9n`: best compression, no name or time stamp in the header (reproducible).
fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut child = Command::new("gzip")
        .args(["-9n", "--stdout"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run gzip")?;
    child.stdin.take().expect("piped stdin").write_all(bytes)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("gzip failed ({})", out.status);
    }
    Ok(out.stdout)
}

/// The shared-library dependencies of the binary, as dpkg-shlibdeps finds them.
fn shlib_depends(work: &Path) -> anyhow::Result<String> {
    write(
        &work.join("debian/control"),
        b"Source: netctl\n\nPackage: netctl\nArchitecture: any\n",
    )?;
    let out = capture(
        Command::new("dpkg-shlibdeps")
            .args(["-O", "-edebian/netctl/usr/bin/netctl"])
            .current_dir(work),
    )?;
    out.lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .map(str::to_owned)
        .context("dpkg-shlibdeps printed no shlibs:Depends")
}

fn maintainer() -> (String, String) {
    let var = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    (
        var("DEBFULLNAME", MAINTAINER_NAME),
        var("DEBEMAIL", MAINTAINER_EMAIL),
    )
}

/// DEBIAN/control.
fn control(arch: &str, shlib_depends: &str, installed_kib: u64, name: &str, email: &str) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "Package: netctl");
    let _ = writeln!(text, "Version: {}", version());
    let _ = writeln!(text, "Architecture: {arch}");
    let _ = writeln!(text, "Maintainer: {name} <{email}>");
    let _ = writeln!(text, "Installed-Size: {installed_kib}");
    // nft applies the rulesets; pasta and slirp4netns only for containers in those modes.
    let _ = writeln!(text, "Depends: {shlib_depends}, nftables");
    let _ = writeln!(text, "Recommends: iproute2");
    let _ = writeln!(text, "Suggests: passt, slirp4netns, podman");
    let _ = writeln!(text, "Section: net");
    let _ = writeln!(text, "Priority: optional");
    let _ = writeln!(text, "Description: {SUMMARY}");
    for line in DESCRIPTION {
        let _ = writeln!(text, " {line}");
    }
    text
}

/// Sum of the file sizes in KiB, each rounded up, as dpkg-gencontrol counts.
fn installed_size_kib(pkg: &Path) -> anyhow::Result<u64> {
    let mut kib = 0;
    for file in files_under(pkg)? {
        let meta = std::fs::symlink_metadata(&file)?;
        kib += meta.len().div_ceil(1024).max(1);
    }
    Ok(kib)
}

/// Every file and link below `dir`, sorted.
fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// DEBIAN/md5sums: every regular file but the conffiles (dpkg records those itself).
fn md5sums(pkg: &Path) -> anyhow::Result<Vec<u8>> {
    let mut relative = Vec::new();
    for file in files_under(pkg)? {
        let rel = file.strip_prefix(pkg)?.to_path_buf();
        let absolute = format!("/{}", rel.display());
        if rel.starts_with("DEBIAN")
            || CONFFILES.contains(&absolute.as_str())
            || std::fs::symlink_metadata(&file)?.file_type().is_symlink()
        {
            continue;
        }
        relative.push(rel);
    }
    let out = Command::new("md5sum")
        .args(&relative)
        .current_dir(pkg)
        .output()
        .context("cannot run md5sum")?;
    if !out.status.success() {
        bail!("md5sum failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// 0755 for directories and the binary, 0644 for the rest (whatever the umask was).
fn normalise_permissions(pkg: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut pending = vec![pkg.to_path_buf()];
    while let Some(dir) = pending.pop() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                let executable = entry.path() == pkg.join("usr/bin/netctl");
                let mode = if executable { 0o755 } else { 0o644 };
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
            }
        }
    }
    Ok(())
}

/// The commit this is built from and its date (RFC 2822), from git; "unknown" and now without.
pub(crate) fn commit_and_date() -> (String, Option<String>) {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    (
        git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned()),
        git(&["log", "-1", "--format=%aD"]),
    )
}

/// Seconds since the epoch of the commit (or now): the files' times in the package.
fn source_date_epoch() -> anyhow::Result<String> {
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        return Ok(epoch);
    }
    let out = Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .output()
        .ok()
        .filter(|o| o.status.success());
    Ok(match out {
        Some(out) => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        None => capture(Command::new("date").arg("+%s"))?.trim().to_owned(),
    })
}

/// The Debian changelog: one entry for this build.
fn changelog() -> anyhow::Result<String> {
    let (commit, date) = commit_and_date();
    let date = match date {
        Some(date) => date,
        None => capture(Command::new("date").arg("-R"))?.trim().to_owned(),
    };
    let (name, email) = maintainer();
    Ok(format!(
        "netctl ({}) unstable; urgency=medium\n\n  * Built from git commit {commit}.\n    \
         The repository's history lists the changes.\n\n -- {name} <{email}>  {date}\n",
        version()
    ))
}

/// Runs a command; its stdout, or an error with its stderr.
fn capture(cmd: &mut Command) -> anyhow::Result<String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("{program} printed non-UTF-8"))
}

/// The paths the package must hold: the layout, with the files of its directory entries.
fn expected_paths(root: &Path, man_pages: &[String]) -> anyhow::Result<BTreeSet<String>> {
    let mut paths = BTreeSet::new();
    for (path, source) in LAYOUT {
        match source {
            Source::ManPages => paths.extend(man_pages.iter().map(|p| format!("/{path}/{p}"))),
            Source::Tree { dir, extension } => paths.extend(
                tree_files(root, dir, extension)?
                    .iter()
                    .map(|name| format!("/{path}/{name}")),
            ),
            _ => {
                paths.insert(format!("/{path}"));
            }
        }
    }
    Ok(paths)
}

/// The files and links of `dpkg-deb --contents` (directories left out), as absolute paths;
/// a link as `PATH -> TARGET`.
fn listed_paths(contents: &str) -> BTreeSet<String> {
    contents
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_once("./"))
        .map(|(_, path)| format!("/{}", path.split(" -> ").next().unwrap_or(path)))
        .collect()
}

/// The man pages `netctl man` writes, gzipped names.
fn expected_man_pages(root: &Path) -> anyhow::Result<Vec<String>> {
    let dir = root.join("target/debian/build/check-man");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    capture(
        Command::new(root.join("target/release/netctl"))
            .arg("man")
            .arg(&dir),
    )?;
    Ok(man_pages(&dir)?
        .iter()
        .map(|p| format!("{}.gz", p.file_name().expect("named").to_string_lossy()))
        .collect())
}

/// The CI checks of a built package.
pub fn check(root: &Path, deb: &Path) -> anyhow::Result<()> {
    let contents = capture(Command::new("dpkg-deb").arg("--contents").arg(deb))?;
    let listed = listed_paths(&contents);
    let expected = expected_paths(root, &expected_man_pages(root)?)?;
    let missing: Vec<_> = expected.difference(&listed).collect();
    let unexpected: Vec<_> = listed.difference(&expected).collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        bail!(
            "package contents differ from the layout: missing {missing:?}, unexpected {unexpected:?}"
        );
    }
    if !contents.contains("./usr/lib/netctl/netavark -> ../../bin/netctl") {
        bail!("the netavark link is missing or points elsewhere:\n{contents}");
    }
    let conffiles = capture(
        Command::new("dpkg-deb")
            .arg("--info")
            .arg(deb)
            .arg("conffiles"),
    )?;
    for conffile in CONFFILES {
        if !conffiles.lines().any(|l| l == *conffile) {
            bail!("{conffile} is not a conffile: {conffiles:?}");
        }
    }
    println!(
        "xtask deb: contents match the layout ({} files)",
        listed.len()
    );
    lintian(deb)?;
    run_extracted(root, deb)?;
    Ok(())
}

/// lintian, errors fatal; warnings and the rest are printed.
fn lintian(deb: &Path) -> anyhow::Result<()> {
    let out = Command::new("lintian")
        .args([
            "--fail-on",
            "error",
            "--display-info",
            "--no-tag-display-limit",
        ])
        .arg(deb)
        .output()
        .context("cannot run lintian (package lintian)")?;
    let said = String::from_utf8_lossy(&out.stdout);
    print!("{said}");
    if !out.status.success() || said.lines().any(|l| l.starts_with("E: ")) {
        bail!(
            "lintian found errors ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    println!("xtask deb: lintian reports no error");
    Ok(())
}

/// `dpkg -x` into a temporary root and run what was installed from there.
fn run_extracted(root: &Path, deb: &Path) -> anyhow::Result<()> {
    let tree = root.join("target/debian/extracted");
    if tree.exists() {
        std::fs::remove_dir_all(&tree)?;
    }
    capture(Command::new("dpkg").arg("-x").arg(deb).arg(&tree))?;
    let netctl = tree.join("usr/bin/netctl");
    let printed = capture(Command::new(&netctl).arg("--version"))?;
    let (commit, _) = commit_and_date();
    if !printed.starts_with(&format!("netctl {}", version())) || !printed.contains(&commit) {
        bail!("unexpected --version from the package: {printed}");
    }
    let example = tree.join("usr/share/doc/netctl/examples/quickstart.toml");
    let validated = capture(
        Command::new(&netctl)
            .arg("validate")
            .arg("-f")
            .arg(&example)
            .env("NETCTL_CONFIG", tree.join("etc/netctl/netctl.toml")),
    )?;
    if !validated.contains("valid") {
        bail!("validate of the shipped example: {validated}");
    }
    let netavark = capture(Command::new(tree.join("usr/lib/netctl/netavark")).arg("version"))?;
    if !netavark.contains("\"program\":\"netctl\"") {
        bail!("the netavark link does not reach netctl: {netavark}");
    }
    println!("xtask deb: the extracted binary runs ({})", printed.trim());
    let hot = hot_text_bytes(&netctl)?;
    if hot < MIN_HOT_TEXT {
        bail!(
            "the packaged binary's .text.hot holds {hot} bytes (at least {MIN_HOT_TEXT} expected): \
             crates/netctl/build.rs did not apply crates/netctl/hot-functions.txt, or the list \
             is stale (regenerate it with cargo xtask bench hot)"
        );
    }
    println!("xtask deb: the everyday commands' functions sit together (.text.hot, {hot} bytes)");
    Ok(())
}

/// Below this, the hot-text list matched too little to matter (it takes ~3.7 MB when fresh).
const MIN_HOT_TEXT: u64 = 1 << 20;

/// The size of the binary's `.text.hot` section (0 without one).
fn hot_text_bytes(binary: &Path) -> anyhow::Result<u64> {
    let sections = capture(Command::new("readelf").args(["-S", "-W"]).arg(binary))?;
    Ok(sections
        .lines()
        .find_map(|line| {
            // `[16] .text.hot PROGBITS addr offset size ...`
            let fields: Vec<&str> = line.split(']').nth(1)?.split_whitespace().collect();
            (fields.first() == Some(&".text.hot"))
                .then(|| u64::from_str_radix(fields.get(4)?, 16).ok())
                .flatten()
        })
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_holds_what_users_and_tests_rely_on() {
        let root = crate::project_root();
        let man = ["netctl.1.gz".to_owned(), "netctl-apply.1.gz".to_owned()];
        let paths = expected_paths(&root, &man).unwrap();
        for path in [
            "/usr/bin/netctl",
            "/usr/share/man/man1/netctl.1.gz",
            "/usr/share/man/man1/netctl-apply.1.gz",
            "/usr/share/bash-completion/completions/netctl",
            "/usr/lib/systemd/system/netctl-apply.service",
            "/etc/netctl/netctl.toml",
            "/usr/share/doc/netctl/copyright",
            "/usr/share/doc/netctl/docs/toml.md",
            "/usr/share/doc/netctl/examples/quickstart.toml",
        ] {
            assert!(paths.contains(path), "{path}");
        }
        for conffile in CONFFILES {
            assert!(paths.contains(*conffile), "{conffile}");
        }
    }

    /// Every file the layout copies from the source tree exists.
    #[test]
    fn layout_sources_exist() {
        let root = crate::project_root();
        for (path, source) in LAYOUT {
            if let Source::Copy(from) = source {
                assert!(root.join(from).is_file(), "{path}: {from}");
            }
        }
    }

    #[test]
    fn contents_listing_is_read() {
        let listing = "\
drwxr-xr-x root/root         0 2026-12-05 14:57 ./
drwxr-xr-x root/root         0 2026-12-05 14:57 ./usr/bin/
-rwxr-xr-x root/root   4000000 2026-12-05 14:57 ./usr/bin/netctl
lrwxrwxrwx root/root         0 2026-12-05 14:57 ./usr/lib/netctl/netavark -> ../../bin/netctl
-rw-r--r-- root/root       100 2026-12-05 14:57 ./etc/netctl/netctl.toml
";
        let paths: Vec<_> = listed_paths(listing).into_iter().collect();
        assert_eq!(
            paths,
            [
                "/etc/netctl/netctl.toml",
                "/usr/bin/netctl",
                "/usr/lib/netctl/netavark"
            ]
        );
    }

    #[test]
    fn control_fields() {
        let text = control("amd64", "libc6 (>= 2.34)", 4242, "N", "n@example.net");
        assert!(text.starts_with("Package: netctl\nVersion: "), "{text}");
        assert!(text.contains("\nArchitecture: amd64\n"), "{text}");
        assert!(
            text.contains("\nDepends: libc6 (>= 2.34), nftables\n"),
            "{text}"
        );
        assert!(text.contains("\nInstalled-Size: 4242\n"), "{text}");
        assert!(text.ends_with("speaks netavark's protocol).\n"), "{text}");
        // lintian: extended-description-line-too-long.
        assert!(text.lines().all(|l| l.len() <= 80), "{text}");
        // Every continuation line of the description starts with a space.
        let description = text.split("Description: ").nth(1).unwrap();
        assert!(
            description.lines().skip(1).all(|l| l.starts_with(' ')),
            "{text}"
        );
    }
}

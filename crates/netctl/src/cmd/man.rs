//! `netctl man DIR` (hidden; `cargo xtask man` and `cargo xtask deb` call it): one man page per
//! command, rendered by clap_mangen from the clap definitions, so the pages say what `--help`
//! says. netctl(1) closes with the exit status, settings, environment and podman sections of
//! `--help`; the `netavark` personality gets its own pages from its own definition.

use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, roman};

use crate::Outcome;
use crate::cli::{Cli, HELP_SECTIONS, ManArgs, VERSION};
use crate::cmd::netavark::NetavarkCli;

pub fn man(args: &ManArgs) -> anyhow::Result<Outcome> {
    write_pages(&args.dir)?;
    Ok(Outcome::Success)
}

fn write_pages(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, page) in pages()? {
        let path = dir.join(&name);
        std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Every page: (file name, roff source), netctl.1 first.
pub fn pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut top = Cli::command().disable_help_subcommand(true);
    top.build();
    let mut out = vec![("netctl.1".to_owned(), top_page(&top)?)];
    for sub in visible_subcommands(&top) {
        if sub.get_name() == "netavark" {
            let netavark = NetavarkCli::command()
                .name("netctl-netavark")
                .display_name("netctl-netavark")
                .bin_name("netctl netavark")
                .version(VERSION)
                .about(sub.get_about().cloned().unwrap_or_default())
                .long_about(sub.get_long_about().cloned().unwrap_or_default())
                .disable_help_subcommand(true);
            subcommand_pages(netavark, &mut out)?;
        } else {
            subcommand_pages(sub.clone(), &mut out)?;
        }
    }
    Ok(out)
}

fn visible_subcommands(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// The page of `cmd` and, recursively, of its subcommands.
fn subcommand_pages(
    mut cmd: clap::Command,
    out: &mut Vec<(String, Vec<u8>)>,
) -> anyhow::Result<()> {
    cmd.build();
    let man = Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render(&mut page).context("cannot render a man page")?;
    out.push((man.get_filename(), page));
    for sub in visible_subcommands(&cmd) {
        subcommand_pages(sub.clone(), out)?;
    }
    Ok(())
}

/// netctl(1): clap_mangen's sections, then `--help`'s closing sections under their own
/// headings, the files netctl reads and writes, and the other pages.
fn top_page(cmd: &clap::Command) -> anyhow::Result<Vec<u8>> {
    let man = Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    let mut roff = Roff::new();
    for (heading, text) in HELP_SECTIONS {
        roff.control("SH", [heading.to_uppercase().as_str()]);
        roff.text([roman(*text)]);
    }
    roff.control("SH", ["FILES"]);
    for (path, what) in FILES {
        roff.control("TP", []);
        roff.text([roman(*path)]);
        roff.text([roman(*what)]);
    }
    roff.control("SH", ["SEE ALSO"]);
    let pages: Vec<String> = visible_subcommands(cmd)
        .map(|sub| format!("netctl-{}(1)", sub.get_name()))
        .collect();
    roff.text([roman(format!(
        "{}; the reference in /usr/share/doc/netctl/ (docs/ in the source tree).",
        pages.join(", ")
    ))]);
    roff.to_writer(&mut page)?;
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// The files and directories of a default installation.
const FILES: &[(&str, &str)] = &[
    (
        "/etc/netctl/netctl.toml",
        "Settings (state_dir, run_dir, netns_dir, etc_netns_dir, firewall_driver, lock_timeout, default network).",
    ),
    (
        "/etc/netctl/desired.toml",
        "The desired state netctl-apply.service applies at boot.",
    ),
    (
        "/var/lib/netctl/",
        "state_dir: the record of everything netctl made (state.redb) and the operation lock.",
    ),
    (
        "/run/netctl/",
        "run_dir: pid files, sockets and runtime files of helper processes.",
    ),
    (
        "/run/netns/",
        "netns_dir: the named network namespaces of managed containers.",
    ),
    (
        "/etc/netns/NAME/",
        "etc_netns_dir: a managed container's hosts and resolv.conf (seen by `ip netns exec NAME`).",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_per_command() {
        let names: Vec<String> = pages().unwrap().into_iter().map(|(n, _)| n).collect();
        insta::assert_debug_snapshot!(names);
    }

    /// netctl(1) is what `--help` says, with its closing sections as man sections.
    #[test]
    fn top_page() {
        let pages = pages().unwrap();
        let top = String::from_utf8(pages[0].1.clone()).unwrap();
        let top = top.replace(VERSION, "VERSION");
        insta::assert_snapshot!(top);
    }

    #[test]
    fn pages_are_written() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("man1");
        write_pages(&dir).unwrap();
        let page = std::fs::read_to_string(dir.join("netctl-netavark-setup.1")).unwrap();
        assert!(page.contains("NETNS"), "{page}");
    }
}

//! aardvark-dns's configuration: one file per DNS network in its config directory, in the
//! format netavark writes (so podman's and netavark's tooling read what they expect).
//!
//! ```text
//! <listen ip>[,<listen ip>...][ <upstream>[,<upstream>...]]                  (line 1)
//! <64-hex id> <ipv4,...> <ipv6,...> <name,alias,...>[ <upstream>,...]      (one per container)
//! ```
//!
//! Invariants: rendering is pure and deterministic (entries sorted by container id, names in
//! the order given, addresses sorted), so a file is rewritten only when the records changed;
//! a network with no containers has no file. Names reaching here were validated as DNS names
//! (aardvark 1.4 exits on a malformed line), and [`render`] refuses any that is not, rather
//! than write a file that would stop DNS for every network.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The config directory's name under `run_dir` (TOML mode) or netavark's `--config` directory.
pub const DIR_NAME: &str = "aardvark-dns";

/// The lock file netavark holds, beside the config directory, while it changes the files.
pub const LOCK_FILE: &str = "aardvark.lock";

/// The pid file aardvark-dns writes into its config directory.
pub const PID_FILE: &str = "aardvark.pid";

/// The search domain aardvark-dns answers for (`NAME.dns.podman`).
pub const SEARCH_DOMAIN: &str = "dns.podman";

/// One DNS network as aardvark-dns serves it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsNetwork {
    /// The network's name (the file's name).
    pub name: String,
    /// An internal network: names answered, nothing forwarded (aardvark >= 1.11 reads the
    /// `%int` suffix; older versions take it as part of the name, which changes nothing else).
    pub internal: bool,
    /// Addresses aardvark listens on: the network's gateways.
    pub listen: Vec<IpAddr>,
    /// The network's upstream servers.
    pub servers: Vec<IpAddr>,
    pub entries: Vec<DnsEntry>,
}

/// One container on a DNS network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsEntry {
    /// The container id (64 hex).
    pub id: String,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
    /// The container's name first, then its aliases.
    pub names: Vec<String>,
    /// The container's own upstream servers.
    pub servers: Vec<IpAddr>,
}

impl DnsNetwork {
    /// The file name in the config directory.
    pub fn file_name(&self) -> String {
        if self.internal {
            format!("{}%int", self.name)
        } else {
            self.name.clone()
        }
    }
}

/// A name or field that would make a malformed line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("network {network}: `{name}` cannot be written for aardvark-dns (not a DNS name)")]
pub struct RenderError {
    pub network: String,
    pub name: String,
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn safe(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The file aardvark-dns reads for `net`.
pub fn render(net: &DnsNetwork) -> Result<String, RenderError> {
    let mut out = header(net);
    let mut entries: Vec<&DnsEntry> = net.entries.iter().collect();
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    for e in entries {
        out.push_str(&entry_line(&net.name, e)?);
    }
    Ok(out)
}

/// Line 1: where aardvark-dns listens for `net`, and the network's upstream servers.
fn header(net: &DnsNetwork) -> String {
    let mut out = join(&net.listen);
    if !net.servers.is_empty() {
        let _ = write!(out, " {}", join(&net.servers));
    }
    out.push('\n');
    out
}

/// One container's line, newline included.
fn entry_line(network: &str, e: &DnsEntry) -> Result<String, RenderError> {
    if let Some(bad) = std::iter::once(&e.id).chain(&e.names).find(|n| !safe(n)) {
        return Err(RenderError {
            network: network.to_owned(),
            name: bad.clone(),
        });
    }
    let mut v4 = e.ipv4.clone();
    v4.sort();
    let mut v6 = e.ipv6.clone();
    v6.sort();
    let mut out = format!("{} {} {} {}", e.id, join(v4), join(v6), e.names.join(","));
    if !e.servers.is_empty() {
        let _ = write!(out, " {}", join(&e.servers));
    }
    out.push('\n');
    Ok(out)
}

/// `current` (a file [`render`] wrote) with line 1 taken from `net`, the lines of the
/// containers `gone` dropped and `net.entries` put in their place: what [`render`] would give
/// for the network with those changes, byte for byte, read from the file rather than from
/// every container's records. `None` when the network is left with no container (it then has
/// no file).
pub fn patch(
    current: &str,
    net: &DnsNetwork,
    gone: &[&str],
) -> Result<Option<String>, RenderError> {
    let mut lines: Vec<(String, String)> = current
        .lines()
        .skip(1)
        .filter_map(|line| {
            let id = line.split(' ').next().unwrap_or_default();
            (!gone.contains(&id)).then(|| (id.to_owned(), format!("{line}\n")))
        })
        .collect();
    for e in &net.entries {
        lines.push((e.id.clone(), entry_line(&net.name, e)?));
    }
    if lines.is_empty() {
        return Ok(None);
    }
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = header(net);
    out.extend(lines.into_iter().map(|(_, line)| line));
    Ok(Some(out))
}

/// The argv that runs aardvark-dns for `dir` on `port` (it forks; the launcher exits once
/// the daemon wrote [`PID_FILE`]).
pub fn argv(binary: &str, dir: &str, port: u16) -> Vec<String> {
    vec![
        binary.to_owned(),
        "--config".to_owned(),
        dir.to_owned(),
        "-p".to_owned(),
        port.to_string(),
        "run".to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(net: &DnsNetwork, expect: &str) {
        assert_eq!(render(net).unwrap(), expect);
    }

    fn entry(id: char, v4: &str, names: &[&str]) -> DnsEntry {
        DnsEntry {
            id: id.to_string().repeat(64),
            ipv4: vec![v4.parse().unwrap()],
            ipv6: Vec::new(),
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            servers: Vec::new(),
        }
    }

    #[test]
    fn files_are_netavarks_format_sorted_by_id() {
        let mut net = DnsNetwork {
            name: "app".into(),
            listen: vec!["10.89.7.1".parse().unwrap()],
            entries: vec![
                entry('e', "10.89.7.3", &["web"]),
                entry('9', "10.89.7.2", &["db", "database"]),
            ],
            ..DnsNetwork::default()
        };
        insta::assert_snapshot!(render(&net).unwrap());
        net.servers = vec!["192.0.2.53".parse().unwrap(), "192.0.2.54".parse().unwrap()];
        net.listen.push("fd10:89::1".parse().unwrap());
        net.entries[0].ipv6 = vec!["fd10:89::3".parse().unwrap()];
        net.entries[0].servers = vec!["198.51.100.53".parse().unwrap()];
        insta::assert_snapshot!(render(&net).unwrap());
    }

    #[test]
    fn empty_ipv4_column_stays_a_column() {
        let mut e = entry('a', "10.0.0.2", &["x"]);
        e.ipv4.clear();
        e.ipv6 = vec!["fd00::2".parse().unwrap()];
        let net = DnsNetwork {
            name: "v6".into(),
            listen: vec!["fd00::1".parse().unwrap()],
            entries: vec![e],
            ..DnsNetwork::default()
        };
        check(&net, &format!("fd00::1\n{}  fd00::2 x\n", "a".repeat(64)));
    }

    #[test]
    fn a_name_that_would_break_the_file_is_refused() {
        for bad in ["bad name", "a,b", "", "a\nb"] {
            let net = DnsNetwork {
                name: "n".into(),
                listen: vec!["10.0.0.1".parse().unwrap()],
                entries: vec![entry('a', "10.0.0.2", &[bad])],
                ..DnsNetwork::default()
            };
            assert_eq!(
                render(&net),
                Err(RenderError {
                    network: "n".into(),
                    name: bad.into()
                })
            );
        }
    }

    /// A patched file is the file rendered whole from the same entries.
    #[test]
    fn patching_a_file_gives_what_rendering_it_whole_does() {
        let web = entry('e', "10.89.7.3", &["web"]);
        let db = entry('9', "10.89.7.2", &["db", "database"]);
        let mut api = entry('a', "10.89.7.4", &["api"]);
        api.servers = vec!["198.51.100.53".parse().unwrap()];
        let net = |entries: Vec<DnsEntry>| DnsNetwork {
            name: "app".into(),
            listen: vec!["10.89.7.1".parse().unwrap()],
            servers: vec!["192.0.2.53".parse().unwrap()],
            entries,
            ..DnsNetwork::default()
        };
        let before = render(&net(vec![web.clone(), db.clone()])).unwrap();
        // api joins, web gets a new address (its line replaced), db stays as it was.
        let mut moved = web.clone();
        moved.ipv4 = vec!["10.89.7.9".parse().unwrap()];
        let patched = patch(&before, &net(vec![api.clone(), moved.clone()]), &[&web.id]).unwrap();
        assert_eq!(
            patched.unwrap(),
            render(&net(vec![db.clone(), api, moved])).unwrap()
        );
        // db leaves; then the last one leaves and the file goes.
        let one = patch(&before, &net(Vec::new()), &[&db.id])
            .unwrap()
            .unwrap();
        assert_eq!(one, render(&net(vec![web.clone()])).unwrap());
        assert_eq!(patch(&one, &net(Vec::new()), &[&web.id]), Ok(None));
    }

    #[test]
    fn internal_networks_are_marked_in_the_file_name() {
        let mut net = DnsNetwork {
            name: "n".into(),
            ..DnsNetwork::default()
        };
        assert_eq!(net.file_name(), "n");
        net.internal = true;
        assert_eq!(net.file_name(), "n%int");
    }
}

//! A container's `/etc/hosts`: generating a new file and editing it on connect/disconnect,
//! with podman's (containers/common `etchosts`) semantics.
//!
//! Format: one entry per line, `IP<TAB>name1 name2\n`. Parsing drops `#` comments and lines that
//! have an address but no name, and normalises whitespace.
//!
//! Invariants:
//! * Entries netctl generates (localhost, `host.containers.internal`, the container's own
//!   addresses) never take a name the user already maps (through `extra_hosts`, the base file or
//!   a line in the current file): user entries win.
//! * Ownership is recognised the way podman does, without markers: a line belongs to a container
//!   when it has one of the container's addresses **and** shares a name with it
//!   (`[hostname, container name]`). [`remove`] drops only such lines and leaves every other line
//!   byte for byte (comments included); [`add_if_exists`] appends only when such a line is present,
//!   so a file the user rewrote is left alone.
//! * Unlike podman, no `(address, name)` pair is ever written twice (`10.0.2.100 c1 c1` becomes
//!   `10.0.2.100 c1`, and repeating a connect appends nothing), so every edit is idempotent.
//!   One name on several addresses (a container on two networks) is kept: that is intended.
//! * Lines whose address is not an IP address (e.g. `fe80::1%eth0`) are carried through unchanged
//!   and their names count as taken, but they never match a [`HostEntry`].

use std::collections::HashSet;
use std::fmt;
use std::net::{AddrParseError, IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::file::{self, FileError};

/// The name podman gives the host as seen from a container.
pub const HOST_CONTAINERS_INTERNAL: &str = "host.containers.internal";
/// Added for both loopback addresses unless the user maps it already.
pub const LOCALHOST: &str = "localhost";

/// One hosts line: an address and the names it resolves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostEntry {
    pub ip: IpAddr,
    pub names: Vec<String>,
}

impl HostEntry {
    pub fn new(ip: IpAddr, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            ip,
            names: names.into_iter().map(Into::into).collect(),
        }
    }
}

impl fmt::Display for HostEntry {
    /// The line without its newline: `IP<TAB>name1 name2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\t{}", self.ip, self.names.join(" "))
    }
}

/// One hosts line with its newline; the one place the line format is written.
fn format_line(addr: impl fmt::Display, names: &[impl AsRef<str>]) -> String {
    let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
    format!("{addr}\t{}\n", names.join(" "))
}

/// A container's own entries: each address with the names `[hostname, container name]`
/// (one name when both are equal). The same list is what [`add_if_exists`] looks for and what
/// [`remove`] removes, so build all three from this function.
pub fn container_entries(
    ips: impl IntoIterator<Item = IpAddr>,
    hostname: &str,
    container_name: &str,
) -> Vec<HostEntry> {
    let names: Vec<&str> = if hostname == container_name {
        vec![hostname]
    } else {
        vec![hostname, container_name]
    };
    ips.into_iter()
        .map(|ip| HostEntry::new(ip, names.iter().copied()))
        .collect()
}

/// An `extra_hosts` / `--add-host` entry that is not `name:ip`.
#[derive(Debug, thiserror::Error)]
pub enum ExtraHostError {
    #[error("extra host {entry:?} is not in the form name:ip")]
    MissingColon { entry: String },
    #[error("extra host {entry:?} has an empty name")]
    EmptyName { entry: String },
    #[error("extra host {entry:?} has an empty address")]
    EmptyAddress { entry: String },
    #[error("extra host {entry:?} has an invalid address")]
    InvalidAddress {
        entry: String,
        #[source]
        source: AddrParseError,
    },
}

/// Parses `name:ip` (split at the first `:`, so `db:fd00::1` works) into an entry.
pub fn parse_extra_host(entry: &str) -> Result<HostEntry, ExtraHostError> {
    let owned = || entry.to_owned();
    let (name, ip) = entry
        .split_once(':')
        .ok_or_else(|| ExtraHostError::MissingColon { entry: owned() })?;
    if name.is_empty() {
        return Err(ExtraHostError::EmptyName { entry: owned() });
    }
    if ip.is_empty() {
        return Err(ExtraHostError::EmptyAddress { entry: owned() });
    }
    let ip = ip
        .parse()
        .map_err(|source| ExtraHostError::InvalidAddress {
            entry: owned(),
            source,
        })?;
    Ok(HostEntry::new(ip, [name]))
}

/// Everything a new hosts file is made of, in output order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsParams {
    /// `extra_hosts` entries (see [`parse_extra_host`]); written first.
    pub extra_hosts: Vec<HostEntry>,
    /// Content of the base hosts file (normally the host's `/etc/hosts`; the caller reads it and
    /// passes `None` when there is none or it should not be used). Written after `extra_hosts`.
    pub base: Option<String>,
    /// Address for `host.containers.internal`, if the container should have one.
    pub host_containers_internal: Option<IpAddr>,
    /// The container's own entries, normally from [`container_entries`].
    pub container_entries: Vec<HostEntry>,
}

/// Parses hosts content into entries. Comments, address-only lines and lines whose address is
/// not an IP address are left out.
pub fn parse(content: &str) -> Vec<HostEntry> {
    lines(content)
        .filter_map(|line| match line.addr {
            Addr::Ip(ip) => Some(HostEntry::new(ip, line.names)),
            Addr::Other(_) => None,
        })
        .collect()
}

/// Renders entries one per line (`IP<TAB>names\n`). Entries without names are skipped: the
/// line would mean nothing and [`parse`] would drop it.
pub fn render(entries: &[HostEntry]) -> String {
    entries
        .iter()
        .filter(|e| !e.names.is_empty())
        .map(|e| format_line(e.ip, &e.names))
        .collect()
}

/// Builds a new hosts file: `extra_hosts`, then the base file, then — each only with the names
/// not already taken by those — `127.0.0.1 localhost`, `::1 localhost`,
/// `host.containers.internal` and the container's entries.
pub fn new_hosts(params: &HostsParams) -> String {
    let user: Vec<Line<'_>> = params
        .extra_hosts
        .iter()
        .map(Line::from_entry)
        .chain(params.base.as_deref().into_iter().flat_map(lines))
        .collect();
    let taken: HashSet<&str> = user.iter().flat_map(|l| l.names.iter().copied()).collect();

    let mut out = Output::default();
    for line in &user {
        out.push(line.addr, line.names.iter().copied());
    }
    let loopback = [
        Addr::Ip(Ipv4Addr::LOCALHOST.into()),
        Addr::Ip(Ipv6Addr::LOCALHOST.into()),
    ];
    for addr in loopback {
        out.push_free(addr, &[LOCALHOST], &taken);
    }
    if let Some(ip) = params.host_containers_internal {
        out.push_free(Addr::Ip(ip), &[HOST_CONTAINERS_INTERNAL], &taken);
    }
    for entry in &params.container_entries {
        out.push_entry_free(entry, &taken);
    }
    out.text
}

/// Appends `entries` to the hosts file at `path`, each with only the names the file does not
/// contain yet (podman `Add`). Used for a container joining another's namespace
/// (`127.0.0.1 <hostname> <name>`). Returns whether the file changed.
pub fn add(path: &Path, entries: &[HostEntry]) -> Result<bool, FileError> {
    file::edit(path, |current| add_to(current, entries))
}

/// Appends `new` to the hosts file only if it has a line matching one of `old` (same address and
/// at least one shared name): the file still holds the entries netctl wrote, so the user has not
/// taken it over. With `old` empty this is [`add`]. Used on connect, with `old` = the container's
/// entries before and `new` = those of the newly connected network. Returns whether the file
/// changed.
pub fn add_if_exists(path: &Path, old: &[HostEntry], new: &[HostEntry]) -> Result<bool, FileError> {
    file::edit(path, |current| add_if_exists_to(current, old, new))
}

/// Removes every line that matches one of `entries` (same address and at least one shared name);
/// all other lines stay byte for byte. Used on disconnect. Returns whether the file changed.
pub fn remove(path: &Path, entries: &[HostEntry]) -> Result<bool, FileError> {
    file::edit(path, |current| Some(remove_from(current, entries)))
}

fn add_to(current: &str, entries: &[HostEntry]) -> Option<String> {
    let taken: HashSet<&str> = lines(current).flat_map(|l| l.names).collect();
    let mut out = Output::default();
    for entry in entries {
        out.push_entry_free(entry, &taken);
    }
    append(current, &out.text)
}

fn add_if_exists_to(current: &str, old: &[HostEntry], new: &[HostEntry]) -> Option<String> {
    if old.is_empty() {
        return add_to(current, new);
    }
    if !lines(current).any(|line| line.matches_any(old)) {
        return None;
    }
    // Podman appends `new` verbatim here: a name may point at several addresses. We only skip
    // the (address, name) pairs already present, so a repeated connect adds nothing.
    let mut out = Output::default();
    for line in lines(current) {
        out.pairs
            .extend(line.names.iter().map(|&name| (line.addr, name)));
    }
    for entry in new {
        out.push(Addr::Ip(entry.ip), entry.names.iter().map(String::as_str));
    }
    append(current, &out.text)
}

fn remove_from(current: &str, entries: &[HostEntry]) -> String {
    current
        .split_inclusive('\n')
        .filter(|raw| parse_line(raw).is_none_or(|line| !line.matches_any(entries)))
        .collect()
}

/// `current` followed by `addition`, or `None` when there is nothing to add.
fn append(current: &str, addition: &str) -> Option<String> {
    if addition.is_empty() {
        return None;
    }
    let mut text = current.to_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(addition);
    Some(text)
}

/// A line's address: an IP, or the raw text when it is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Addr<'a> {
    Ip(IpAddr),
    Other(&'a str),
}

impl fmt::Display for Addr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => ip.fmt(f),
            Self::Other(text) => f.write_str(text),
        }
    }
}

/// A parsed hosts line, borrowing from the text or entry it came from.
#[derive(Debug)]
struct Line<'a> {
    addr: Addr<'a>,
    names: Vec<&'a str>,
}

impl<'a> Line<'a> {
    fn from_entry(entry: &'a HostEntry) -> Self {
        Self {
            addr: Addr::Ip(entry.ip),
            names: entry.names.iter().map(String::as_str).collect(),
        }
    }

    /// Podman's ownership test: same address and at least one shared name.
    fn matches_any(&self, entries: &[HostEntry]) -> bool {
        entries.iter().any(|e| {
            self.addr == Addr::Ip(e.ip) && self.names.iter().any(|n| e.names.iter().any(|m| m == n))
        })
    }
}

fn parse_line(raw: &str) -> Option<Line<'_>> {
    let data = raw.split_once('#').map_or(raw, |(data, _comment)| data);
    let mut fields = data.split_whitespace();
    let addr = fields.next()?;
    let names: Vec<&str> = fields.collect();
    if names.is_empty() {
        return None;
    }
    let addr = addr.parse().map_or(Addr::Other(addr), Addr::Ip);
    Some(Line { addr, names })
}

fn lines(content: &str) -> impl Iterator<Item = Line<'_>> {
    content.lines().filter_map(parse_line)
}

/// Lines being written, remembering every (address, name) pair so none is written twice.
#[derive(Debug, Default)]
struct Output<'a> {
    text: String,
    pairs: HashSet<(Addr<'a>, &'a str)>,
}

impl<'a> Output<'a> {
    /// Like [`Self::push`], leaving out the names in `taken` (names the user maps already).
    fn push_free(&mut self, addr: Addr<'a>, names: &[&'a str], taken: &HashSet<&str>) {
        self.push(addr, names.iter().copied().filter(|n| !taken.contains(n)));
    }

    /// [`Self::push_free`] for an entry.
    fn push_entry_free(&mut self, entry: &'a HostEntry, taken: &HashSet<&str>) {
        let names = entry
            .names
            .iter()
            .map(String::as_str)
            .filter(|n| !taken.contains(n));
        self.push(Addr::Ip(entry.ip), names);
    }

    /// Writes `addr` with those of `names` not yet written for it; nothing if none is left.
    fn push(&mut self, addr: Addr<'a>, names: impl IntoIterator<Item = &'a str>) {
        let fresh: Vec<&str> = names
            .into_iter()
            .filter(|&name| self.pairs.insert((addr, name)))
            .collect();
        if !fresh.is_empty() {
            self.text.push_str(&format_line(addr, &fresh));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn entries(list: &[(&str, &[&str])]) -> Vec<HostEntry> {
        list.iter()
            .map(|(addr, names)| HostEntry::new(ip(addr), names.iter().copied()))
            .collect()
    }

    /// Snapshots the generated file, with the parameters as the snapshot's description.
    fn check(name: &str, params: &HostsParams) {
        insta::with_settings!({ description => format!("{params:#?}"), omit_expression => true }, {
            insta::assert_snapshot!(name, new_hosts(params));
        });
    }

    const DEBIAN_HOSTS: &str = "\
127.0.0.1\tlocalhost
127.0.1.1   buildhost.example.org   buildhost   # the machine

# The following lines are desirable for IPv6 capable hosts
::1     localhost ip6-localhost ip6-loopback
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
192.0.2.9
fe80::1%eth0 router-ll
";

    #[test]
    fn new_hosts_cases() {
        let c1 = container_entries([ip("10.89.0.10")], "c1", "c1");
        check("new_minimal", &HostsParams::default());
        check(
            "new_bridge_one_network",
            &HostsParams {
                host_containers_internal: Some(ip("10.89.0.1")),
                container_entries: container_entries([ip("10.89.0.10")], "api", "api-ctr"),
                ..HostsParams::default()
            },
        );
        check(
            "new_hostname_equals_name",
            &HostsParams {
                container_entries: c1.clone(),
                ..HostsParams::default()
            },
        );
        check(
            "new_two_networks_dual_stack",
            &HostsParams {
                host_containers_internal: Some(ip("10.89.0.1")),
                container_entries: container_entries(
                    [ip("10.89.0.10"), ip("fd10:89::10"), ip("10.90.0.5")],
                    "web",
                    "web-1",
                ),
                ..HostsParams::default()
            },
        );
        check(
            "new_with_host_file",
            &HostsParams {
                base: Some(DEBIAN_HOSTS.to_owned()),
                host_containers_internal: Some(ip("10.89.0.1")),
                container_entries: c1.clone(),
                ..HostsParams::default()
            },
        );
        check(
            "new_extra_hosts_take_names",
            &HostsParams {
                extra_hosts: vec![
                    parse_extra_host("db:10.89.0.20").unwrap(),
                    parse_extra_host("c1:192.0.2.1").unwrap(),
                    parse_extra_host("host.containers.internal:192.0.2.2").unwrap(),
                    parse_extra_host("v6:fd00::1").unwrap(),
                ],
                host_containers_internal: Some(ip("10.89.0.1")),
                container_entries: container_entries([ip("10.89.0.10")], "c1", "c1-name"),
                ..HostsParams::default()
            },
        );
        check(
            "new_duplicates_collapse",
            &HostsParams {
                extra_hosts: vec![parse_extra_host("db:10.89.0.20").unwrap()],
                base: Some("10.89.0.20 db db other\n10.89.0.20\tdb\n".to_owned()),
                container_entries: entries(&[
                    ("10.89.0.10", &["c1", "c1"]),
                    ("10.89.0.10", &["c1", "alias"]),
                ]),
                ..HostsParams::default()
            },
        );
        check(
            "new_network_none_loopback",
            &HostsParams {
                container_entries: container_entries([ip("127.0.0.1")], "solo", "solo"),
                ..HostsParams::default()
            },
        );
    }

    #[test]
    fn parse_normalises_and_drops() {
        let parsed = parse(DEBIAN_HOSTS);
        insta::assert_snapshot!(render(&parsed), @r"
        127.0.0.1	localhost
        127.0.1.1	buildhost.example.org buildhost
        ::1	localhost ip6-localhost ip6-loopback
        ff02::1	ip6-allnodes
        ff02::2	ip6-allrouters
        ");
    }

    #[test]
    fn render_skips_nameless_entries() {
        let list = vec![HostEntry::new(ip("10.0.0.1"), Vec::<String>::new())];
        assert_eq!(render(&list), "");
    }

    #[test]
    fn extra_host_errors() {
        assert_eq!(
            parse_extra_host("db:fd00::1").unwrap(),
            HostEntry::new(ip("fd00::1"), ["db"])
        );
        let errors: Vec<String> = ["db", ":10.0.0.1", "db:", "db:nope"]
            .into_iter()
            .map(|e| parse_extra_host(e).unwrap_err().to_string())
            .collect();
        insta::assert_snapshot!(errors.join("\n"), @r#"
        extra host "db" is not in the form name:ip
        extra host ":10.0.0.1" has an empty name
        extra host "db:" has an empty address
        extra host "db:nope" has an invalid address
        "#);
    }

    const USER_FILE: &str = "\
# managed by hand
127.0.0.1\tlocalhost
10.89.0.10\tc1 c1-name
10.89.0.10   unrelated    # same address, other name
192.0.2.1 c1
";

    #[test]
    fn add_skips_taken_names() {
        let new = entries(&[
            ("127.0.0.1", &["c1", "joiner"]),
            ("10.1.1.1", &["fresh", "fresh"]),
        ]);
        let got = add_to(USER_FILE, &new).unwrap();
        assert_eq!(
            got,
            format!("{USER_FILE}127.0.0.1\tjoiner\n10.1.1.1\tfresh\n")
        );
        assert_eq!(add_to(&got, &new), None, "second add is a no-op");
    }

    #[test]
    fn add_to_unterminated_file() {
        let got = add_to("10.0.0.1 a", &entries(&[("10.0.0.2", &["b"])])).unwrap();
        assert_eq!(got, "10.0.0.1 a\n10.0.0.2\tb\n");
    }

    #[test]
    fn add_if_exists_appends_when_owned() {
        let old = container_entries([ip("10.89.0.10")], "c1", "c1-name");
        let new = container_entries([ip("10.90.0.7"), ip("10.89.0.10")], "c1", "c1-name");
        let got = add_if_exists_to(USER_FILE, &old, &new).unwrap();
        // The name c1 is already mapped elsewhere: unlike `add`, that does not stop it.
        assert_eq!(got, format!("{USER_FILE}10.90.0.7\tc1 c1-name\n"));
        assert_eq!(
            add_if_exists_to(&got, &old, &new),
            None,
            "repeated connect adds nothing"
        );
    }

    #[test]
    fn add_if_exists_leaves_user_file_alone() {
        // The user replaced netctl's line: old entries are gone, so nothing is appended.
        let user = "10.89.0.99\tc1\n";
        let old = container_entries([ip("10.89.0.10")], "c1", "c1-name");
        let new = container_entries([ip("10.90.0.7")], "c1", "c1-name");
        assert_eq!(add_if_exists_to(user, &old, &new), None);
        // Same address but no shared name is not a match either.
        let user = "10.89.0.10\tsomeone-else\n";
        assert_eq!(add_if_exists_to(user, &old, &new), None);
    }

    #[test]
    fn add_if_exists_without_old_is_add() {
        let new = container_entries([ip("10.90.0.7")], "c1", "c2");
        let got = add_if_exists_to(USER_FILE, &[], &new).unwrap();
        assert_eq!(
            got,
            format!("{USER_FILE}10.90.0.7\tc2\n"),
            "c1 is taken, so only c2 is added"
        );
    }

    #[test]
    fn remove_drops_only_owned_lines() {
        let old = container_entries([ip("10.89.0.10"), ip("10.90.0.7")], "c1", "c1-name");
        let file = format!("{USER_FILE}10.90.0.7\tc1-name\nfe80::1%eth0 c1\n");
        let got = remove_from(&file, &old);
        assert_eq!(
            got,
            "\
# managed by hand
127.0.0.1\tlocalhost
10.89.0.10   unrelated    # same address, other name
192.0.2.1 c1
fe80::1%eth0 c1
"
        );
        assert_eq!(remove_from(&got, &old), got, "nothing left to remove");
    }

    #[test]
    fn remove_keeps_crlf_and_unterminated_lines() {
        let file = "10.0.0.1 keep\r\n10.0.0.2 gone\r\n10.0.0.3 last";
        let got = remove_from(file, &entries(&[("10.0.0.2", &["gone"])]));
        assert_eq!(got, "10.0.0.1 keep\r\n10.0.0.3 last");
    }
}

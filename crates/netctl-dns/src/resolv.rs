//! A container's `/etc/resolv.conf`: composing a new file from the host's and the container's
//! settings and editing its nameservers on connect/disconnect, with podman's (containers/common
//! `resolvconf`) semantics.
//!
//! Invariants:
//! * Pure: composing never reads a file. The caller reads the host's resolv.conf (following
//!   [`upstream_source`] when it is a local stub resolver) and passes its content in
//!   [`ResolvParams::host_content`]; [`ResolvParams::needs_host_content`] tells when it can skip
//!   that read.
//! * Containers always have their own network namespace, so the host's nameservers are always
//!   filtered ([`ResolvConf::filter_for_netns`]): a loopback resolver on the host is unreachable
//!   from the container.
//! * Output order is `search`, one `nameserver` line each, `options` — with, unlike podman, no
//!   nameserver, search domain or option written twice.
//! * Edits ([`add_nameservers`], [`remove_nameservers`]) touch only `nameserver` lines and leave
//!   every other line (search, options, comments, anything the user added) byte for byte.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::file::{self, FileError};

/// Where systemd-resolved keeps the real upstream servers behind its 127.0.0.53 stub.
pub const SYSTEMD_RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";
/// Where NetworkManager keeps the real upstream servers when it runs a local 127.0.0.1 resolver.
pub const NETWORK_MANAGER_NO_STUB: &str = "/run/NetworkManager/no-stub-resolv.conf";

/// Used when the host has no nameserver the container can reach.
pub const DEFAULT_NAMESERVERS_V4: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
    IpAddr::V4(Ipv4Addr::new(8, 8, 4, 4)),
];
/// Added to [`DEFAULT_NAMESERVERS_V4`] when the container has IPv6.
pub const DEFAULT_NAMESERVERS_V6: [IpAddr; 2] = [
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8844)),
];

/// The parts of a resolv.conf netctl reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// In file order. `nameserver` lines whose value is not a plain IP address (zone-scoped
    /// `fe80::1%eth0`) are not included: the zone can never name an interface of the container.
    pub nameservers: Vec<IpAddr>,
    /// From the last `search` line (a later one replaces an earlier one, as in glibc).
    pub search: Vec<String>,
    /// From all `options` lines, in order (glibc applies every one of them).
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Nameservers as a container in its own namespace may use them: loopback servers
    /// (127.0.0.0/8, ::1) dropped, IPv6 servers dropped unless `ipv6`; if none is left, Google's
    /// public servers ([`DEFAULT_NAMESERVERS_V4`], plus [`DEFAULT_NAMESERVERS_V6`] with `ipv6`).
    #[must_use]
    pub fn filter_for_netns(mut self, ipv6: bool) -> Self {
        self.nameservers
            .retain(|ip| !ip.is_loopback() && (ipv6 || ip.is_ipv4()));
        if self.nameservers.is_empty() {
            self.nameservers.extend(DEFAULT_NAMESERVERS_V4);
            if ipv6 {
                self.nameservers.extend(DEFAULT_NAMESERVERS_V6);
            }
        }
        self
    }
}

/// Parses resolv.conf content. Comments (`#` anywhere, `;` at the start of a line) and
/// directives other than `nameserver`, `search` and `options` are ignored.
pub fn parse(content: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for raw in content.lines() {
        match directive(raw) {
            Directive::Nameserver(value) => conf.nameservers.extend(value.parse::<IpAddr>()),
            Directive::Search(domains) => conf.search = owned(domains),
            Directive::Options(options) => conf.options.extend(owned(options)),
            Directive::Other => {}
        }
    }
    conf
}

/// Renders `search …`, one `nameserver …` line each, then `options …`; empty lists and
/// repeated values are left out (the first of repeated nameservers and search domains is kept,
/// the last of repeated options).
pub fn render(conf: &ResolvConf) -> String {
    let mut text = String::new();
    let search = unique(&conf.search);
    if !search.is_empty() {
        text.push_str(&list_line("search", &search));
    }
    text.extend(unique(&conf.nameservers).iter().map(nameserver_line));
    // For options the last occurrence counts (glibc applies them in order, a later `ndots:`
    // overrides an earlier one), so repeats are dropped from the front.
    let mut options = conf.options.clone();
    options.reverse();
    let mut options = unique(&options);
    options.reverse();
    if !options.is_empty() {
        text.push_str(&list_line("options", &options));
    }
    text
}

fn nameserver_line(ip: &IpAddr) -> String {
    format!("nameserver {ip}\n")
}

fn list_line(keyword: &str, values: &[String]) -> String {
    format!("{keyword} {}\n", values.join(" "))
}

/// The file to read instead of the host's resolv.conf when that only points at a local stub
/// resolver (exactly one nameserver): 127.0.0.53 is systemd-resolved
/// ([`SYSTEMD_RESOLVED_UPSTREAM`]), 127.0.0.1 is NetworkManager's dnsmasq
/// ([`NETWORK_MANAGER_NO_STUB`]). `None`: use `host_content` as it is. The caller does the
/// reading; a missing upstream file means "use `host_content` after all" (the detection is a
/// guess).
pub fn upstream_source(host_content: &str) -> Option<&'static Path> {
    let mut nameservers = host_content.lines().filter_map(|raw| match directive(raw) {
        Directive::Nameserver(value) => Some(value),
        _ => None,
    });
    let only = nameservers.next()?;
    if nameservers.next().is_some() {
        return None;
    }
    match only.parse::<IpAddr>().ok()? {
        IpAddr::V4(ip) if ip == Ipv4Addr::new(127, 0, 0, 53) => {
            Some(Path::new(SYSTEMD_RESOLVED_UPSTREAM))
        }
        IpAddr::V4(ip) if ip == Ipv4Addr::LOCALHOST => Some(Path::new(NETWORK_MANAGER_NO_STUB)),
        _ => None,
    }
}

/// What a container's new resolv.conf is composed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvParams {
    /// The host's resolv.conf content (`None` when it does not exist or was not read).
    pub host_content: Option<String>,
    /// The container's own nameservers: user-given ones, or those of its networks' DNS.
    pub nameservers: Vec<IpAddr>,
    /// Search domains; one `.` among them means "no search domains at all".
    pub searches: Vec<String>,
    pub options: Vec<String>,
    /// Also use the host's nameservers (and search domains and options) after the given ones;
    /// podman sets it when the nameservers come from the networks rather than from the user.
    pub keep_host_servers: bool,
    /// The container has IPv6: the host's IPv6 nameservers are kept.
    pub ipv6: bool,
}

impl ResolvParams {
    /// False when the host's file would not contribute anything (nameservers, searches and
    /// options all given, host servers not kept), so the caller need not read it.
    pub fn needs_host_content(&self) -> bool {
        self.keep_host_servers
            || self.nameservers.is_empty()
            || self.searches.is_empty()
            || self.options.is_empty()
    }
}

/// Composes a new resolv.conf (podman `resolvconf.New`):
/// * nameservers: the given ones, followed by the host's (filtered for the container's
///   namespace) when none are given or `keep_host_servers`;
/// * search domains: none at all if any given one is `.`; else the given ones, followed by the
///   host's when none are given or `keep_host_servers`;
/// * options: the given ones, followed by the host's when none are given or `keep_host_servers`.
pub fn new_resolv_conf(params: &ResolvParams) -> String {
    let host = if params.needs_host_content() {
        parse(params.host_content.as_deref().unwrap_or_default()).filter_for_netns(params.ipv6)
    } else {
        ResolvConf::default()
    };
    let keep = params.keep_host_servers;

    let mut nameservers = params.nameservers.clone();
    if nameservers.is_empty() || keep {
        nameservers.extend(host.nameservers);
    }

    let unset = params.searches.iter().any(|s| s == ".");
    let mut search = if unset {
        Vec::new()
    } else {
        params.searches.clone()
    };
    if params.searches.is_empty() || (keep && !search.is_empty()) {
        search.extend(host.search);
    }
    // The host's own `search .` (or one inherited with it) unsets too.
    if search.iter().any(|s| s == ".") {
        search.clear();
    }

    let mut options = params.options.clone();
    if options.is_empty() || keep {
        options.extend(host.options);
    }

    render(&ResolvConf {
        nameservers,
        search,
        options,
    })
}

/// Puts `ips` in front of the file's nameservers, in the given order (a server already listed
/// moves to the front instead of appearing twice). The connect path passes the new network's
/// DNS servers, without IPv6 ones unless the container has IPv6. Returns whether the file changed.
pub fn add_nameservers(path: &Path, ips: &[IpAddr]) -> Result<bool, FileError> {
    file::edit(path, |current| prepend_nameservers(current, ips))
}

/// Drops every `nameserver` line naming one of `ips`. Returns whether the file changed.
pub fn remove_nameservers(path: &Path, ips: &[IpAddr]) -> Result<bool, FileError> {
    file::edit(path, |current| Some(drop_nameservers(current, ips)))
}

fn prepend_nameservers(current: &str, ips: &[IpAddr]) -> Option<String> {
    let ips = unique(ips);
    if ips.is_empty() {
        return None;
    }
    let new_lines: String = ips.iter().map(nameserver_line).collect();
    let raws: Vec<&str> = current.split_inclusive('\n').collect();
    // Where the nameservers are, or where podman's order puts them: before the options.
    let at = raws
        .iter()
        .position(|raw| matches!(directive(raw), Directive::Nameserver(_)))
        .or_else(|| {
            raws.iter()
                .position(|raw| matches!(directive(raw), Directive::Options(_)))
        })
        .unwrap_or(raws.len());

    let mut text = String::with_capacity(current.len() + new_lines.len());
    for (i, raw) in raws.iter().enumerate() {
        if i == at {
            text.push_str(&new_lines);
        }
        if !names_one_of(raw, &ips) {
            text.push_str(raw);
        }
    }
    if at == raws.len() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&new_lines);
    }
    Some(text)
}

fn drop_nameservers(current: &str, ips: &[IpAddr]) -> String {
    current
        .split_inclusive('\n')
        .filter(|raw| !names_one_of(raw, ips))
        .collect()
}

/// Whether `raw` is a `nameserver` line for one of `ips`.
fn names_one_of(raw: &str, ips: &[IpAddr]) -> bool {
    match directive(raw) {
        Directive::Nameserver(value) => value.parse().is_ok_and(|ip: IpAddr| ips.contains(&ip)),
        _ => false,
    }
}

/// One resolv.conf line, as far as netctl cares.
#[derive(Debug)]
enum Directive<'a> {
    Nameserver(&'a str),
    Search(Vec<&'a str>),
    Options(Vec<&'a str>),
    Other,
}

fn directive(raw: &str) -> Directive<'_> {
    if raw.trim_start().starts_with(';') {
        return Directive::Other;
    }
    let data = raw.split_once('#').map_or(raw, |(data, _comment)| data);
    let mut fields = data.split_whitespace();
    match fields.next() {
        Some("nameserver") => fields
            .next()
            .map_or(Directive::Other, Directive::Nameserver),
        Some("search") => Directive::Search(fields.collect()),
        Some("options") => Directive::Options(fields.collect()),
        _ => Directive::Other,
    }
}

fn owned(values: Vec<&str>) -> Vec<String> {
    values.into_iter().map(str::to_owned).collect()
}

/// `values` without repeats, first occurrence kept.
fn unique<T: PartialEq + Clone>(values: &[T]) -> Vec<T> {
    let mut seen = Vec::with_capacity(values.len());
    for value in values {
        if !seen.contains(value) {
            seen.push(value.clone());
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|&s| s.to_owned()).collect()
    }

    /// Snapshots the composed file, with the parameters as the snapshot's description.
    fn check(name: &str, params: &ResolvParams) {
        insta::with_settings!({ description => format!("{params:#?}"), omit_expression => true }, {
            insta::assert_snapshot!(name, new_resolv_conf(params));
        });
    }

    const STUB: &str = "\
# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).
nameserver 127.0.0.53
options edns0 trust-ad
search example.org
";

    const UPSTREAM: &str = "\
# upstream servers
nameserver 192.0.2.53
nameserver 2001:db8::53
nameserver fe80::1%eth0
nameserver 192.0.2.53
search corp.example lab.example
options timeout:2
";

    const MESSY: &str = "\
; old-style comment
domain ignored.example
search first.example
nameserver 198.51.100.1 # primary
sortlist 130.155.160.0/255.255.240.0
search second.example third.example
options ndots:2
options attempts:3 ndots:2
nameserver ::1
nameserver 127.0.1.1
";

    #[test]
    fn new_resolv_conf_cases() {
        check(
            "stub_only_falls_back_to_public",
            &ResolvParams {
                host_content: Some(STUB.to_owned()),
                ..ResolvParams::default()
            },
        );
        check(
            "stub_only_falls_back_to_public_ipv6",
            &ResolvParams {
                host_content: Some(STUB.to_owned()),
                ipv6: true,
                ..ResolvParams::default()
            },
        );
        check("no_host_file", &ResolvParams::default());
        check(
            "upstream_ipv4_only",
            &ResolvParams {
                host_content: Some(UPSTREAM.to_owned()),
                ..ResolvParams::default()
            },
        );
        check(
            "upstream_ipv6",
            &ResolvParams {
                host_content: Some(UPSTREAM.to_owned()),
                ipv6: true,
                ..ResolvParams::default()
            },
        );
        check(
            "messy_host_file",
            &ResolvParams {
                host_content: Some(MESSY.to_owned()),
                ..ResolvParams::default()
            },
        );
        check(
            "network_dns_keeps_host",
            &ResolvParams {
                host_content: Some(UPSTREAM.to_owned()),
                nameservers: ips(&["10.89.0.1"]),
                searches: strings(&["dns.podman"]),
                keep_host_servers: true,
                ..ResolvParams::default()
            },
        );
        check(
            "network_dns_duplicates_collapse",
            &ResolvParams {
                host_content: Some(
                    "nameserver 10.89.0.1\nsearch dns.podman\noptions ndots:1\n".to_owned(),
                ),
                nameservers: ips(&["10.89.0.1", "10.90.0.1", "10.89.0.1"]),
                searches: strings(&["dns.podman", "dns.podman"]),
                options: strings(&["ndots:1"]),
                keep_host_servers: true,
                ..ResolvParams::default()
            },
        );
        check(
            "user_servers_replace_host",
            &ResolvParams {
                host_content: Some(UPSTREAM.to_owned()),
                nameservers: ips(&["1.1.1.1", "2606:4700:4700::1111"]),
                ..ResolvParams::default()
            },
        );
        check(
            "everything_given_host_unused",
            &ResolvParams {
                host_content: Some(UPSTREAM.to_owned()),
                nameservers: ips(&["1.1.1.1"]),
                searches: strings(&["a.example"]),
                options: strings(&["rotate"]),
                ..ResolvParams::default()
            },
        );
        check(
            "dot_search_unsets_all",
            &ResolvParams {
                host_content: Some(UPSTREAM.to_owned()),
                searches: strings(&["a.example", "."]),
                keep_host_servers: true,
                ..ResolvParams::default()
            },
        );
        check(
            "host_dot_search",
            &ResolvParams {
                host_content: Some("nameserver 192.0.2.53\nsearch .\n".to_owned()),
                ..ResolvParams::default()
            },
        );
        check(
            "given_search_without_keep_ignores_host",
            &ResolvParams {
                host_content: Some(UPSTREAM.to_owned()),
                searches: strings(&["mine.example"]),
                ..ResolvParams::default()
            },
        );
    }

    #[test]
    fn needs_host_content_only_on_fast_path() {
        let all = ResolvParams {
            nameservers: ips(&["1.1.1.1"]),
            searches: strings(&["a"]),
            options: strings(&["rotate"]),
            ..ResolvParams::default()
        };
        assert!(!all.needs_host_content());
        assert!(
            ResolvParams {
                keep_host_servers: true,
                ..all.clone()
            }
            .needs_host_content()
        );
        assert!(
            ResolvParams {
                options: Vec::new(),
                ..all
            }
            .needs_host_content()
        );
    }

    #[test]
    fn parse_follows_glibc_precedence() {
        let conf = parse(MESSY);
        assert_eq!(conf.nameservers, ips(&["198.51.100.1", "::1", "127.0.1.1"]));
        assert_eq!(conf.search, strings(&["second.example", "third.example"]));
        assert_eq!(conf.options, strings(&["ndots:2", "attempts:3", "ndots:2"]));
    }

    #[test]
    fn render_keeps_the_option_that_wins() {
        let conf = ResolvConf {
            nameservers: ips(&["10.0.0.1", "10.0.0.2", "10.0.0.1"]),
            search: strings(&["a", "b", "a"]),
            options: strings(&["ndots:1", "ndots:5", "ndots:1"]),
        };
        insta::assert_snapshot!(render(&conf), @r"
        search a b
        nameserver 10.0.0.1
        nameserver 10.0.0.2
        options ndots:5 ndots:1
        ");
    }

    #[test]
    fn upstream_source_detects_stubs() {
        assert_eq!(
            upstream_source(STUB),
            Some(Path::new(SYSTEMD_RESOLVED_UPSTREAM))
        );
        assert_eq!(
            upstream_source("nameserver 127.0.0.1\n"),
            Some(Path::new(NETWORK_MANAGER_NO_STUB))
        );
        assert_eq!(
            upstream_source("nameserver 127.0.0.53\nnameserver 192.0.2.1\n"),
            None
        );
        assert_eq!(upstream_source(UPSTREAM), None);
        assert_eq!(
            upstream_source("# nameserver 127.0.0.53\nnameserver 192.0.2.1\n"),
            None
        );
        assert_eq!(upstream_source(""), None);
    }

    const OURS: &str = "\
search dns.podman corp.example
nameserver 10.89.0.1
nameserver 192.0.2.53
# user note
options ndots:2
";

    #[test]
    fn prepend_puts_new_servers_first() {
        let got =
            prepend_nameservers(OURS, &ips(&["10.90.0.1", "192.0.2.53", "10.90.0.1"])).unwrap();
        assert_eq!(
            got,
            "\
search dns.podman corp.example
nameserver 10.90.0.1
nameserver 192.0.2.53
nameserver 10.89.0.1
# user note
options ndots:2
"
        );
        assert_eq!(
            prepend_nameservers(&got, &ips(&["10.90.0.1"])).unwrap(),
            got,
            "already first"
        );
        assert_eq!(prepend_nameservers(OURS, &[]), None);
    }

    #[test]
    fn prepend_without_nameservers_goes_before_options() {
        let got = prepend_nameservers("search a\noptions rotate\n", &ips(&["10.0.0.1"])).unwrap();
        assert_eq!(got, "search a\nnameserver 10.0.0.1\noptions rotate\n");
        let got = prepend_nameservers("search a", &ips(&["10.0.0.1"])).unwrap();
        assert_eq!(got, "search a\nnameserver 10.0.0.1\n");
        let got = prepend_nameservers("", &ips(&["10.0.0.1"])).unwrap();
        assert_eq!(got, "nameserver 10.0.0.1\n");
    }

    #[test]
    fn drop_removes_every_match_only() {
        let file = format!("{OURS}nameserver 10.89.0.1\nnameserver fe80::1%eth0\n");
        let got = drop_nameservers(&file, &ips(&["10.89.0.1", "10.1.1.1"]));
        assert_eq!(
            got,
            "\
search dns.podman corp.example
nameserver 192.0.2.53
# user note
options ndots:2
nameserver fe80::1%eth0
"
        );
    }
}

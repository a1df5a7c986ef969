//! Published ports: podman's `PortMapping`, the `-p` syntax, and range folding.
//!
//! A [`PortMapping`] is the wire form netavark receives: one protocol, a host IP string (`""` =
//! every address), a first host and container port and a `range` (1 = a single port). A host
//! port of [`CHOOSE_HOST_PORT`] (0) means "pick a free host port when applying", which is what
//! podman's `-p 80` means too.
//!
//! [`normalize_ports`] reproduces podman's `ocicniPortsToNetTypesPorts`: expand to single ports,
//! sort by host IP, protocol, host port, container port (plain string/integer order), then fold
//! consecutive entries into ranges. Entries are never dropped, so a duplicate stays a duplicate
//! (and breaks the run) — finding conflicts is the validator's job, not this module's.

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Host port 0: no host port was given, one is chosen when the mapping is applied.
/// A mapping with this host port and `range` N asks for N host ports (not necessarily
/// consecutive: [`normalize_ports`] splits it into N single ports).
pub const CHOOSE_HOST_PORT: u16 = 0;

/// A transport protocol podman can publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Protocol {
    /// TCP, the default.
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP (bridge mode only: pasta cannot forward it).
    Sctp,
}

impl Protocol {
    /// Every protocol, in the order messages list them.
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    /// The IP protocol number (`IPPROTO_*`).
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// The lowercase name used on the wire and in `-p` strings.
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol name that is not tcp, udp or sctp.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown protocol `{protocol}`: expected tcp, udp or sctp")]
pub struct ProtocolParseError {
    /// The text that was given.
    pub protocol: String,
}

impl FromStr for Protocol {
    type Err = ProtocolParseError;

    /// Case-insensitive, as podman's `-p` parser is.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ProtocolParseError {
                protocol: s.to_owned(),
            })
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One published port range, exactly as podman sends it to netavark.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// Host address to bind: `""` = every address of both families; otherwise one IP.
    pub host_ip: String,
    /// First container port.
    pub container_port: u16,
    /// First host port; [`CHOOSE_HOST_PORT`] (0) = chosen when applying.
    pub host_port: u16,
    /// Number of consecutive ports, 1 for a single port (0 is read as 1, as podman does).
    pub range: u16,
    /// `tcp`, `udp` or `sctp`; one protocol per mapping.
    pub protocol: String,
}

impl PortMapping {
    /// A single-port mapping on every host address.
    pub fn new(host_port: u16, container_port: u16, protocol: Protocol) -> Self {
        Self {
            host_ip: String::new(),
            container_port,
            host_port,
            range: 1,
            protocol: protocol.as_str().to_owned(),
        }
    }

    /// The effective number of ports (`range`, with 0 read as 1).
    pub fn port_count(&self) -> u16 {
        self.range.max(1)
    }

    /// Whether the host port is left for apply time to choose.
    pub fn chooses_host_port(&self) -> bool {
        self.host_port == CHOOSE_HOST_PORT
    }

    /// The protocol, if it is one netctl knows.
    pub fn protocol(&self) -> Option<Protocol> {
        self.protocol.parse().ok()
    }

    /// The individual `(host_port, container_port)` pairs this mapping covers. With
    /// [`CHOOSE_HOST_PORT`] every host port in the pairs is 0. Pairs that would run past 65535
    /// are left out (the validator rejects such mappings before anyone expands them).
    pub fn expand(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        (0..self.port_count()).map_while(|i| {
            let host = if self.chooses_host_port() {
                CHOOSE_HOST_PORT
            } else {
                self.host_port.checked_add(i)?
            };
            Some((host, self.container_port.checked_add(i)?))
        })
    }

    /// podman's order: host IP, protocol, host port, container port (plain comparisons).
    fn podman_order(&self, other: &Self) -> Ordering {
        self.host_ip
            .cmp(&other.host_ip)
            .then_with(|| self.protocol.cmp(&other.protocol))
            .then_with(|| self.host_port.cmp(&other.host_port))
            .then_with(|| self.container_port.cmp(&other.container_port))
    }

    /// Whether `next` (a single port) continues this mapping's run on both sides.
    fn continued_by(&self, next: &Self) -> bool {
        let end = u32::from(self.port_count());
        !self.chooses_host_port()
            && self.range < u16::MAX
            && next.host_ip == self.host_ip
            && next.protocol == self.protocol
            && u32::from(next.host_port) == u32::from(self.host_port) + end
            && u32::from(next.container_port) == u32::from(self.container_port) + end
    }
}

impl PortMapping {
    /// Whether this mapping and `other` bind a host port in common (same protocol, crossing
    /// port ranges, host addresses that can be the same socket address).
    pub fn host_overlaps(&self, other: &PortMapping) -> bool {
        let first = |m: &PortMapping| u32::from(m.host_port);
        let last = |m: &PortMapping| first(m) + u32::from(m.port_count()) - 1;
        self.protocol == other.protocol
            && first(self) <= last(other)
            && first(other) <= last(self)
            && host_ips_overlap(&self.host_ip, &other.host_ip)
    }

    /// The host side for messages: `8080/tcp on all addresses`, `8080-8082/udp on 127.0.0.1`.
    pub fn host_side(&self) -> HostSide<'_> {
        HostSide(self)
    }
}

/// Whether two host IP strings of port mappings can be the same socket address. `""` is
/// every address of both families; `0.0.0.0` and `::` every address of theirs.
pub fn host_ips_overlap(a: &str, b: &str) -> bool {
    if a.is_empty() || b.is_empty() {
        return true;
    }
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => {
            x.is_ipv4() == y.is_ipv4() && (x == y || x.is_unspecified() || y.is_unspecified())
        }
        _ => a == b,
    }
}

/// See [`PortMapping::host_side`].
#[derive(Debug, Clone, Copy)]
pub struct HostSide<'a>(&'a PortMapping);

impl fmt::Display for HostSide<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        let first = u32::from(m.host_port);
        let last = first + u32::from(m.port_count()) - 1;
        if first == last {
            write!(f, "{first}/{}", m.protocol)?;
        } else {
            write!(f, "{first}-{last}/{}", m.protocol)?;
        }
        match m.host_ip.as_str() {
            "" => f.write_str(" on all addresses"),
            "0.0.0.0" => f.write_str(" on all IPv4 addresses"),
            "::" => f.write_str(" on all IPv6 addresses"),
            ip => write!(f, " on {ip}"),
        }
    }
}

/// Every mapping split into single-port mappings (`range` 1), in input order.
pub fn expand_ports(ports: &[PortMapping]) -> Vec<PortMapping> {
    let mut out = Vec::with_capacity(ports.len());
    for port in ports {
        push_single_ports(port.clone(), &mut out);
    }
    out
}

/// One mapping as single-port mappings.
fn push_single_ports(mut mapping: PortMapping, out: &mut Vec<PortMapping>) {
    if mapping.port_count() == 1 {
        // The common case needs no copies; range 0 is stored as the 1 it means.
        mapping.range = 1;
        out.push(mapping);
        return;
    }
    out.extend(
        mapping
            .expand()
            .map(|(host_port, container_port)| PortMapping {
                host_ip: mapping.host_ip.clone(),
                container_port,
                host_port,
                range: 1,
                protocol: mapping.protocol.clone(),
            }),
    );
}

/// podman's `ocicniPortsToNetTypesPorts`: sort and fold into the fewest ranges.
///
/// Consecutive single ports fold when host IP and protocol match and both the host and the
/// container port continue the current run. Mappings that choose their host port never fold
/// (their host ports are not known yet), so they come out as single ports, each choosing its
/// own host port. The result covers exactly the same
/// `(host_ip, protocol, host_port, container_port)` multiset as the input.
pub fn normalize_ports(ports: Vec<PortMapping>) -> Vec<PortMapping> {
    let mut singles = Vec::with_capacity(ports.len());
    for port in ports {
        push_single_ports(port, &mut singles);
    }
    // Ports are usually listed in order already: checking is cheaper than sorting.
    if !singles.is_sorted_by(|a, b| a.podman_order(b) != Ordering::Greater) {
        singles.sort_by(PortMapping::podman_order);
    }
    let mut out: Vec<PortMapping> = Vec::with_capacity(singles.len());
    for port in singles {
        match out.last_mut() {
            Some(current) if current.continued_by(&port) => current.range += 1,
            _ => out.push(port),
        }
    }
    out
}

/// Why a podman `-p` string could not be parsed. Messages name the offending piece.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PortSpecError {
    /// Nothing was given.
    #[error("empty port specification")]
    Empty,
    /// Too many or too few `:`-separated parts.
    #[error(
        "invalid port format `{spec}`: expected [[hostIP:]hostPort[-end]:]ctrPort[-end][/proto] (an IPv6 host IP goes in brackets: [::1]:8080:80)"
    )]
    Format {
        /// The whole specification.
        spec: String,
    },
    /// A `[` without its `]`.
    #[error("unclosed `[` in `{spec}`")]
    UnclosedBracket {
        /// The whole specification.
        spec: String,
    },
    /// `hostIP:` was given but empty.
    #[error("host IP in `{spec}` is empty; leave it out to publish on every address")]
    EmptyHostIp {
        /// The whole specification.
        spec: String,
    },
    /// The host IP does not parse.
    #[error("cannot parse `{ip}` as an IP address")]
    HostIp {
        /// The offending text.
        ip: String,
    },
    /// The container port is missing.
    #[error("no container port in `{spec}`")]
    EmptyContainerPort {
        /// The whole specification.
        spec: String,
    },
    /// A port is not a number in 1..=65535.
    #[error("invalid port `{port}`: must be a number from 1 to 65535")]
    Port {
        /// The offending text.
        port: String,
    },
    /// A range whose end is below its start.
    #[error("invalid port range `{range}`: the end is below the start")]
    Range {
        /// The offending text.
        range: String,
    },
    /// Host and container ranges differ in length.
    #[error("host and container port ranges have different lengths: {host} vs {container}")]
    RangeLength {
        /// Host range length.
        host: u16,
        /// Container range length.
        container: u16,
    },
    /// A protocol other than tcp, udp, sctp.
    #[error(transparent)]
    Protocol(#[from] ProtocolParseError),
}

/// Parses one podman `-p` value: `[[hostIP:]hostPort[-end]:]ctrPort[-end][/proto[,proto...]]`.
///
/// * an IPv6 host IP is written in brackets: `[::1]:8080:80`;
/// * `0.0.0.0` becomes `""` (every address), as podman stores it; other IPs are canonicalised;
/// * an omitted or empty host port becomes [`CHOOSE_HOST_PORT`];
/// * the protocol defaults to tcp, is case-insensitive, and a comma list gives one mapping each.
pub fn parse_port_spec(spec: &str) -> Result<Vec<PortMapping>, PortSpecError> {
    if spec.is_empty() {
        return Err(PortSpecError::Empty);
    }
    let (addr_ports, protocols) = match spec.rsplit_once('/') {
        Some((addr_ports, protos)) => (
            addr_ports,
            protos
                .split(',')
                .map(str::parse)
                .collect::<Result<Vec<Protocol>, _>>()?,
        ),
        None => (spec, vec![Protocol::Tcp]),
    };
    let format_err = || PortSpecError::Format {
        spec: spec.to_owned(),
    };

    let (host_ip, host_port, container_port) = if let Some(bracketed) = addr_ports.strip_prefix('[')
    {
        let (ip, rest) =
            bracketed
                .split_once(']')
                .ok_or_else(|| PortSpecError::UnclosedBracket {
                    spec: spec.to_owned(),
                })?;
        let rest = rest.strip_prefix(':').ok_or_else(format_err)?;
        let (host_port, container_port) = rest.split_once(':').ok_or_else(format_err)?;
        if container_port.contains(':') {
            return Err(format_err());
        }
        (Some(ip), Some(host_port), container_port)
    } else {
        let parts: Vec<&str> = addr_ports.split(':').collect();
        match parts.as_slice() {
            [c] => (None, None, *c),
            [h, c] => (None, Some(*h), *c),
            [ip, h, c] => (Some(*ip), Some(*h), *c),
            _ => return Err(format_err()),
        }
    };

    if container_port.is_empty() {
        return Err(PortSpecError::EmptyContainerPort {
            spec: spec.to_owned(),
        });
    }
    let (container_start, container_len) = parse_range(container_port)?;

    let host_ip = match host_ip {
        None => String::new(),
        Some("") => {
            return Err(PortSpecError::EmptyHostIp {
                spec: spec.to_owned(),
            });
        }
        Some(ip) => {
            let parsed: IpAddr = ip
                .parse()
                .map_err(|_| PortSpecError::HostIp { ip: ip.to_owned() })?;
            canonical_host_ip(parsed)
        }
    };

    let host_start = match host_port {
        None | Some("") => CHOOSE_HOST_PORT,
        Some(text) => {
            let (start, len) = parse_range(text)?;
            if len != container_len {
                return Err(PortSpecError::RangeLength {
                    host: len,
                    container: container_len,
                });
            }
            start
        }
    };

    Ok(protocols
        .into_iter()
        .map(|protocol| PortMapping {
            host_ip: host_ip.clone(),
            container_port: container_start,
            host_port: host_start,
            range: container_len,
            protocol: protocol.as_str().to_owned(),
        })
        .collect())
}

/// The host IP string podman stores: `0.0.0.0` becomes `""` (every address), anything else its
/// canonical text.
pub fn canonical_host_ip(ip: IpAddr) -> String {
    if ip == IpAddr::from([0, 0, 0, 0]) {
        String::new()
    } else {
        ip.to_string()
    }
}

/// `start[-end]` → (start, length).
fn parse_range(text: &str) -> Result<(u16, u16), PortSpecError> {
    match text.split_once('-') {
        None => Ok((parse_port(text)?, 1)),
        Some((start, end)) => {
            let (start_port, end_port) = (parse_port(start)?, parse_port(end)?);
            if end_port < start_port {
                return Err(PortSpecError::Range {
                    range: text.to_owned(),
                });
            }
            Ok((start_port, end_port - start_port + 1))
        }
    }
}

/// A port number 1..=65535, digits only (`u16::from_str` would also take a leading `+`).
fn parse_port(text: &str) -> Result<u16, PortSpecError> {
    let err = || PortSpecError::Port {
        port: text.to_owned(),
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(err()),
        Ok(port) => Ok(port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_overlap_rules() {
        assert!(host_ips_overlap("", "127.0.0.1"));
        assert!(host_ips_overlap("::1", ""));
        assert!(host_ips_overlap("127.0.0.1", "127.0.0.1"));
        assert!(!host_ips_overlap("127.0.0.1", "127.0.0.2"));
        assert!(host_ips_overlap("::", "::1"));
        assert!(!host_ips_overlap("::", "127.0.0.1"));
        assert!(!host_ips_overlap("::1", "127.0.0.1"));
        let mut a = PortMapping::new(8080, 80, Protocol::Tcp);
        a.range = 3;
        let b = PortMapping::new(8082, 90, Protocol::Tcp);
        assert!(a.host_overlaps(&b) && b.host_overlaps(&a));
        assert!(!a.host_overlaps(&PortMapping::new(8083, 80, Protocol::Tcp)));
        assert!(!a.host_overlaps(&PortMapping::new(8081, 80, Protocol::Udp)));
    }

    #[test]
    fn host_side_display() {
        let mut m = PortMapping::new(8080, 80, Protocol::Tcp);
        assert_eq!(m.host_side().to_string(), "8080/tcp on all addresses");
        m.range = 3;
        m.host_ip = "127.0.0.1".into();
        assert_eq!(m.host_side().to_string(), "8080-8082/tcp on 127.0.0.1");
        m.host_ip = "::".into();
        assert_eq!(
            m.host_side().to_string(),
            "8080-8082/tcp on all IPv6 addresses"
        );
    }
    use proptest::prelude::*;

    fn pm(
        host_ip: &str,
        host_port: u16,
        container_port: u16,
        range: u16,
        proto: &str,
    ) -> PortMapping {
        PortMapping {
            host_ip: host_ip.to_owned(),
            container_port,
            host_port,
            range,
            protocol: proto.to_owned(),
        }
    }

    /// Renders mappings compactly so expectations read like podman's own notation.
    fn show(ports: &[PortMapping]) -> String {
        ports
            .iter()
            .map(|p| {
                let host = if p.host_ip.contains(':') {
                    format!("[{}]", p.host_ip)
                } else {
                    p.host_ip.clone()
                };
                format!(
                    "{host}:{}+{}->{}/{}",
                    p.host_port, p.range, p.container_port, p.protocol
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn check_parse(spec: &str, expect: &str) {
        let got = match parse_port_spec(spec) {
            Ok(ports) => show(&ports),
            Err(err) => format!("error: {err}"),
        };
        assert_eq!(got, expect, "spec {spec:?}");
    }

    #[test]
    fn parse_accepted_forms() {
        check_parse("80", ":0+1->80/tcp");
        check_parse("8080:80", ":8080+1->80/tcp");
        check_parse("127.0.0.1:8080:80", "127.0.0.1:8080+1->80/tcp");
        check_parse("0.0.0.0:8080:80", ":8080+1->80/tcp");
        check_parse("127.0.0.1::80", "127.0.0.1:0+1->80/tcp");
        check_parse(":80", ":0+1->80/tcp");
        check_parse("[::1]:8080:80", "[::1]:8080+1->80/tcp");
        check_parse("[0:0::1]:8080:80/udp", "[::1]:8080+1->80/udp");
        check_parse("[::]:8080:80", "[::]:8080+1->80/tcp");
        check_parse("[fd00::1]::80", "[fd00::1]:0+1->80/tcp");
        check_parse("8000-8002:9000-9002", ":8000+3->9000/tcp");
        check_parse("9000-9002", ":0+3->9000/tcp");
        check_parse("53:53/UDP", ":53+1->53/udp");
        check_parse("53:53/tcp,udp", ":53+1->53/tcp :53+1->53/udp");
        check_parse("7000:70/Sctp", ":7000+1->70/sctp");
        check_parse("65535:65535", ":65535+1->65535/tcp");
        check_parse("1-65535:1-65535", ":1+65535->1/tcp");
    }

    #[test]
    fn parse_rejected_forms() {
        check_parse("", "error: empty port specification");
        check_parse(
            "0",
            "error: invalid port `0`: must be a number from 1 to 65535",
        );
        check_parse(
            "65536",
            "error: invalid port `65536`: must be a number from 1 to 65535",
        );
        check_parse(
            "+80",
            "error: invalid port `+80`: must be a number from 1 to 65535",
        );
        check_parse(
            "http",
            "error: invalid port `http`: must be a number from 1 to 65535",
        );
        check_parse("8080:", "error: no container port in `8080:`");
        check_parse(
            ":8080:80",
            "error: host IP in `:8080:80` is empty; leave it out to publish on every address",
        );
        check_parse(
            "1.2.3:80:80",
            "error: cannot parse `1.2.3` as an IP address",
        );
        check_parse(
            "::1:8080:80",
            "error: invalid port format `::1:8080:80`: expected [[hostIP:]hostPort[-end]:]ctrPort[-end][/proto] (an IPv6 host IP goes in brackets: [::1]:8080:80)",
        );
        check_parse("[::1:8080:80", "error: unclosed `[` in `[::1:8080:80`");
        check_parse(
            "[::1]8080:80",
            "error: invalid port format `[::1]8080:80`: expected [[hostIP:]hostPort[-end]:]ctrPort[-end][/proto] (an IPv6 host IP goes in brackets: [::1]:8080:80)",
        );
        check_parse(
            "8080-8081:80",
            "error: host and container port ranges have different lengths: 2 vs 1",
        );
        check_parse(
            "8080:80-81",
            "error: host and container port ranges have different lengths: 1 vs 2",
        );
        check_parse(
            "90-80",
            "error: invalid port range `90-80`: the end is below the start",
        );
        check_parse(
            "80/icmp",
            "error: unknown protocol `icmp`: expected tcp, udp or sctp",
        );
        check_parse(
            "80/",
            "error: unknown protocol ``: expected tcp, udp or sctp",
        );
        check_parse(
            "80/tcp,",
            "error: unknown protocol ``: expected tcp, udp or sctp",
        );
    }

    fn check_normalize(input: &[PortMapping], expect: &str) {
        assert_eq!(show(&normalize_ports(input.to_vec())), expect);
    }

    #[test]
    fn normalize_folds_runs_like_podman() {
        check_normalize(&[], "");
        // Consecutive on both sides fold; input order does not matter.
        check_normalize(
            &[
                pm("", 8082, 82, 1, "tcp"),
                pm("", 8080, 80, 1, "tcp"),
                pm("", 8081, 81, 1, "tcp"),
            ],
            ":8080+3->80/tcp",
        );
        // Host continues but container does not: no fold.
        check_normalize(
            &[pm("", 8080, 80, 1, "tcp"), pm("", 8081, 90, 1, "tcp")],
            ":8080+1->80/tcp :8081+1->90/tcp",
        );
        // Different protocols and host IPs never fold; sort is host IP, protocol, host port.
        check_normalize(
            &[
                pm("127.0.0.1", 8081, 81, 1, "tcp"),
                pm("", 8081, 81, 1, "udp"),
                pm("", 8080, 80, 1, "tcp"),
                pm("", 8081, 81, 1, "tcp"),
            ],
            ":8080+2->80/tcp :8081+1->81/udp 127.0.0.1:8081+1->81/tcp",
        );
        // Existing ranges are expanded first and can join neighbours.
        check_normalize(
            &[pm("", 9000, 9000, 3, "tcp"), pm("", 9003, 9003, 2, "tcp")],
            ":9000+5->9000/tcp",
        );
        // A duplicate breaks the run rather than being merged away.
        check_normalize(
            &[
                pm("", 8080, 80, 1, "tcp"),
                pm("", 8080, 80, 1, "tcp"),
                pm("", 8081, 81, 1, "tcp"),
            ],
            ":8080+1->80/tcp :8080+2->80/tcp",
        );
        // Chosen host ports never fold, not even with a following host port 1.
        check_normalize(
            &[pm("", 0, 80, 2, "tcp"), pm("", 1, 82, 1, "tcp")],
            ":0+1->80/tcp :0+1->81/tcp :1+1->82/tcp",
        );
        // Range 0 is read as 1.
        check_normalize(&[pm("", 53, 53, 0, "udp")], ":53+1->53/udp");
        // The top of the port space.
        check_normalize(
            &[
                pm("", 65534, 65534, 1, "tcp"),
                pm("", 65535, 65535, 1, "tcp"),
            ],
            ":65534+2->65534/tcp",
        );
    }

    #[test]
    fn expand_lists_pairs() {
        let pairs: Vec<_> = pm("", 8080, 80, 3, "tcp").expand().collect();
        assert_eq!(pairs, vec![(8080, 80), (8081, 81), (8082, 82)]);
        let chosen: Vec<_> = pm("", 0, 80, 2, "tcp").expand().collect();
        assert_eq!(chosen, vec![(0, 80), (0, 81)]);
        let clipped: Vec<_> = pm("", 65535, 1, 3, "tcp").expand().collect();
        assert_eq!(clipped, vec![(65535, 1)]);
        assert_eq!(expand_ports(&[pm("", 1, 2, 2, "udp")]).len(), 2);
    }

    #[test]
    fn protocol_names() {
        assert_eq!("TCP".parse::<Protocol>(), Ok(Protocol::Tcp));
        assert_eq!("sctp".parse::<Protocol>(), Ok(Protocol::Sctp));
        assert!("icmp".parse::<Protocol>().is_err());
        assert_eq!(pm("", 1, 1, 1, "udp").protocol(), Some(Protocol::Udp));
        assert_eq!(serde_json::to_string(&Protocol::Udp).unwrap(), "\"udp\"");
        assert_eq!(
            serde_json::from_str::<Protocol>("\"Udp\"").unwrap(),
            Protocol::Udp
        );
    }

    fn arb_mapping() -> impl Strategy<Value = PortMapping> {
        (
            prop::sample::select(vec!["", "127.0.0.1", "::1"]),
            prop::sample::select(vec!["tcp", "udp"]),
            0u16..40,
            1u16..40,
            1u16..5,
        )
            .prop_map(|(ip, proto, host, container, range)| pm(ip, host, container, range, proto))
    }

    fn tuples(ports: &[PortMapping]) -> Vec<(String, String, u16, u16)> {
        let mut out: Vec<_> = ports
            .iter()
            .flat_map(|p| {
                p.expand()
                    .map(|(h, c)| (p.host_ip.clone(), p.protocol.clone(), h, c))
            })
            .collect();
        out.sort();
        out
    }

    proptest! {
        #[test]
        fn normalize_preserves_expanded_tuples(ports in prop::collection::vec(arb_mapping(), 0..12)) {
            let normalized = normalize_ports(ports.clone());
            prop_assert_eq!(tuples(&normalized), tuples(&ports));
            prop_assert!(normalized.len() <= expand_ports(&ports).len());
        }

        #[test]
        fn normalize_is_idempotent(ports in prop::collection::vec(arb_mapping(), 0..12)) {
            let once = normalize_ports(ports);
            prop_assert_eq!(normalize_ports(once.clone()), once);
        }

        #[test]
        fn normalized_output_is_sorted_and_maximal(ports in prop::collection::vec(arb_mapping(), 0..12)) {
            let normalized = normalize_ports(ports);
            for pair in normalized.windows(2) {
                prop_assert_ne!(pair[0].podman_order(&pair[1]), Ordering::Greater);
                // A neighbour that continues the run would have been folded in.
                let first_of_next = PortMapping { range: 1, ..pair[1].clone() };
                prop_assert!(!pair[0].continued_by(&first_of_next));
            }
        }
    }
}

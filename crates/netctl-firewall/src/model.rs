//! What the firewall needs to know: networks, container attachments with their published ports.
//!
//! These are the crate's input types; the binary maps its records to them. They carry only what
//! changes the rules, so two records that differ elsewhere (labels, MACs, DNS names) give the
//! same rules.

use std::net::{AddrParseError, IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
pub use netctl_types::{Isolate, Protocol};
use thiserror::Error;

/// One bridge network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwNetwork {
    /// The network's name (only used in error context).
    pub name: String,
    /// The bridge interface; a valid Linux interface name.
    pub bridge: String,
    /// The network's subnets, both families. Host bits are ignored.
    pub subnets: Vec<IpNet>,
    /// Internal networks get no masquerade and no forwarding in or out of their bridge.
    pub internal: bool,
    /// netavark's `isolate` option.
    pub isolate: Isolate,
    /// netavark's `outbound_addr4`/`outbound_addr6`: outbound traffic of the network's
    /// subnets of that family is SNATed to this address instead of masqueraded.
    pub outbound: Outbound,
    /// Where aardvark-dns answers this network's containers: each gateway at the server's
    /// port; empty when no server serves the network. Queries from the network's subnets to
    /// these addresses are accepted on input, and when the port is not 53, queries to the
    /// gateway's port 53 are DNATed to it (netavark's `NETAVARK_DNS_PORT` behaviour).
    pub dns: Vec<SocketAddr>,
}

/// The port containers send DNS queries to (resolv.conf cannot name another).
pub const DNS_PORT: u16 = 53;

/// Fixed source addresses for a network's outbound traffic, per family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outbound {
    pub v4: Option<std::net::Ipv4Addr>,
    pub v6: Option<std::net::Ipv6Addr>,
}

/// One container's attachment to one network, with the ports published through it.
///
/// A container on several networks publishes its ports through one attachment only (podman's
/// choice: the first network); giving the same host ports on a second attachment is a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwContainer {
    /// The container's id (only used in error context).
    pub id: String,
    /// The network this attachment belongs to (only used in error context).
    pub network: String,
    /// The container's IPv4 address on that network, if it has one.
    pub ipv4: Option<Ipv4Addr>,
    /// The container's IPv6 address on that network, if it has one.
    pub ipv6: Option<Ipv6Addr>,
    /// Published ports. Host ports must already be chosen (no `0`).
    pub ports: Vec<FwPort>,
}

/// One published port or range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FwPort {
    /// Which host addresses the port is published on.
    pub host_ip: HostIp,
    /// First host port.
    pub host_port: u16,
    /// First container port.
    pub container_port: u16,
    /// Number of consecutive ports; 0 is read as 1, as podman does.
    pub range: u16,
    /// Transport protocol.
    pub protocol: Protocol,
}

impl FwPort {
    /// A single port on every host address.
    pub fn new(protocol: Protocol, host_port: u16, container_port: u16) -> Self {
        FwPort {
            host_ip: HostIp::All,
            host_port,
            container_port,
            range: 1,
            protocol,
        }
    }

    /// The `(host_port, container_port)` pairs this mapping covers. Pairs that would run past
    /// 65535 are left out (the validator rejects such mappings first).
    pub fn pairs(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        (0..self.range.max(1)).map_while(|i| {
            Some((
                self.host_port.checked_add(i)?,
                self.container_port.checked_add(i)?,
            ))
        })
    }
}

/// The host addresses a port is published on, with podman's wire spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostIp {
    /// `""`: every address of both families (the container's families, that is).
    All,
    /// `"0.0.0.0"`: every IPv4 address.
    AllV4,
    /// `"::"`: every IPv6 address.
    AllV6,
    /// One host address; only containers with an address of the same family get the forward.
    /// `127.0.0.1` works (with `route_localnet` on the bridge); `::1` cannot, as IPv6 has no
    /// `route_localnet` (netavark has the same limit).
    Addr(IpAddr),
}

impl HostIp {
    /// `None` is every address; an unspecified address is that family's wildcard.
    pub fn from_addr(addr: Option<IpAddr>) -> Self {
        match addr {
            None => HostIp::All,
            Some(IpAddr::V4(v4)) if v4.is_unspecified() => HostIp::AllV4,
            Some(IpAddr::V6(v6)) if v6.is_unspecified() => HostIp::AllV6,
            Some(addr) => HostIp::Addr(addr),
        }
    }

    /// Whether IPv4 traffic to the host can match this (given the container has IPv4).
    pub(crate) fn covers_v4(self) -> bool {
        matches!(
            self,
            HostIp::All | HostIp::AllV4 | HostIp::Addr(IpAddr::V4(_))
        )
    }

    /// Whether IPv6 traffic to the host can match this (given the container has IPv6).
    pub(crate) fn covers_v6(self) -> bool {
        matches!(
            self,
            HostIp::All | HostIp::AllV6 | HostIp::Addr(IpAddr::V6(_))
        )
    }
}

/// A `host_ip` that is neither empty nor an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid host IP `{text}`: expected an IP address or nothing")]
pub struct HostIpError {
    /// The text that was given.
    pub text: String,
    #[source]
    pub source: AddrParseError,
}

impl FromStr for HostIp {
    type Err = HostIpError;

    /// podman's wire form: `""` (all), `"0.0.0.0"`, `"::"` or one address.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Ok(HostIp::All);
        }
        text.parse::<IpAddr>()
            .map(|addr| HostIp::from_addr(Some(addr)))
            .map_err(|source| HostIpError {
                text: text.to_owned(),
                source,
            })
    }
}

/// Everything the firewall holds: the input of a full rebuild.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallState {
    pub networks: Vec<FwNetwork>,
    pub containers: Vec<FwContainer>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ip_wire_spellings() {
        let check = |text: &str, want: HostIp| assert_eq!(text.parse::<HostIp>(), Ok(want));
        check("", HostIp::All);
        check("0.0.0.0", HostIp::AllV4);
        check("::", HostIp::AllV6);
        check("127.0.0.1", HostIp::Addr(IpAddr::from([127, 0, 0, 1])));
        check(
            "2001:db8::10",
            HostIp::Addr("2001:db8::10".parse().unwrap()),
        );
        let err = "localhost".parse::<HostIp>().unwrap_err();
        assert_eq!(err.text, "localhost");
    }

    #[test]
    fn host_ip_families() {
        assert!(HostIp::All.covers_v4() && HostIp::All.covers_v6());
        assert!(HostIp::AllV4.covers_v4() && !HostIp::AllV4.covers_v6());
        assert!(!HostIp::AllV6.covers_v4() && HostIp::AllV6.covers_v6());
        let v4 = HostIp::Addr(IpAddr::from([127, 0, 0, 1]));
        assert!(v4.covers_v4() && !v4.covers_v6());
    }

    #[test]
    fn port_pairs_expand_ranges_and_stop_at_the_top() {
        let mut port = FwPort::new(Protocol::Tcp, 8080, 80);
        assert_eq!(port.pairs().collect::<Vec<_>>(), [(8080, 80)]);
        port.range = 0;
        assert_eq!(port.pairs().collect::<Vec<_>>(), [(8080, 80)]);
        port.range = 3;
        assert_eq!(
            port.pairs().collect::<Vec<_>>(),
            [(8080, 80), (8081, 81), (8082, 82)]
        );
        let top = FwPort {
            range: 3,
            ..FwPort::new(Protocol::Udp, 65534, 10)
        };
        assert_eq!(top.pairs().collect::<Vec<_>>(), [(65534, 10), (65535, 11)]);
    }
}

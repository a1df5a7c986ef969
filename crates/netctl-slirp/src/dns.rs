//! slirp4netns's fixed addresses, and the hosts and resolv.conf podman writes for a
//! slirp4netns container. Pure.
//!
//! slirp4netns numbers its subnet (10.0.2.0/24 or `cidr`) from the network address: the host
//! side (gateway) is +2, its DNS forwarder +3, and the address it recommends for the container
//! (which `-c` configures on tap0) +100.
//!
//! podman's files for this mode: hosts gets `cidr+100  HOSTNAME NAME` as the container's own
//! entry; resolv.conf gets the DNS forwarder `cidr+3` first and then the host's nameservers
//! (loopback ones dropped, IPv6 ones only with `enable_ipv6`), unless the user gave
//! nameservers, which then replace both. `host.containers.internal` is the caller's choice (as
//! root podman uses the host's address for this mode).

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use netctl_dns::hosts::{self, HostEntry};
use netctl_dns::resolv::ResolvParams;
use netctl_types::SlirpOptions;

/// Offsets from the network address (slirp4netns `DEFAULT_*_OFFSET`).
const GATEWAY_OFFSET: u32 = 2;
const DNS_OFFSET: u32 = 3;
const CONTAINER_OFFSET: u32 = 100;

/// The addresses slirp4netns uses in a subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// The container's address with the subnet's prefix length (tap0's address).
    pub container: Ipv4Net,
    /// The host side, the container's default gateway.
    pub gateway: Ipv4Addr,
    /// slirp4netns's DNS forwarder.
    pub dns: Ipv4Addr,
}

/// The addresses for `cidr` (a validated one: prefix at most 25, so +100 fits).
pub fn container_addresses(cidr: Ipv4Net) -> Addresses {
    let base = u32::from(cidr.network());
    let at = |offset: u32| Ipv4Addr::from(base.wrapping_add(offset));
    Addresses {
        container: Ipv4Net::new(at(CONTAINER_OFFSET), cidr.prefix_len())
            .expect("the prefix of a valid network"),
        gateway: at(GATEWAY_OFFSET),
        dns: at(DNS_OFFSET),
    }
}

/// The container's own hosts entries: its slirp4netns address with `[hostname, name]`.
pub fn hosts_entries(opts: &SlirpOptions, hostname: &str, name: &str) -> Vec<HostEntry> {
    let ip = container_addresses(opts.cidr()).container.addr();
    hosts::container_entries([IpAddr::V4(ip)], hostname, name)
}

/// What the container's resolv.conf is made of. `dns_servers` and `dns_search` are the
/// container's own settings; `host_content` is the host's resolv.conf.
pub fn resolv_params(
    opts: &SlirpOptions,
    dns_servers: &[IpAddr],
    dns_search: &[String],
    host_content: Option<String>,
) -> ResolvParams {
    let user_servers = !dns_servers.is_empty();
    let nameservers = if user_servers {
        dns_servers.to_vec()
    } else {
        vec![IpAddr::V4(container_addresses(opts.cidr()).dns)]
    };
    ResolvParams {
        host_content,
        nameservers,
        searches: dns_search.to_vec(),
        options: Vec::new(),
        keep_host_servers: !user_servers,
        ipv6: opts.enable_ipv6(),
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use netctl_dns::hosts::{HostsParams, new_hosts};
    use netctl_dns::resolv::new_resolv_conf;

    use super::*;

    const HOST_RESOLV: &str = "search example.com\nnameserver 127.0.0.53\nnameserver 192.0.2.53\n\
                               nameserver 2001:db8::53\noptions edns0\n";

    #[test]
    fn addresses_follow_slirp4netns_offsets() {
        let default = container_addresses(SlirpOptions::DEFAULT_CIDR);
        assert_eq!(default.container.to_string(), "10.0.2.100/24");
        assert_eq!(default.gateway.to_string(), "10.0.2.2");
        assert_eq!(default.dns.to_string(), "10.0.2.3");
        let wide = container_addresses("10.9.0.0/16".parse().unwrap());
        assert_eq!(wide.container.to_string(), "10.9.0.100/16");
        let narrow = container_addresses("172.16.5.128/25".parse().unwrap());
        assert_eq!(narrow.container.to_string(), "172.16.5.228/25");
        assert_eq!(narrow.gateway.to_string(), "172.16.5.130");
    }

    /// The files podman writes for slirp4netns containers, for a few option sets.
    #[test]
    fn files_for_slirp4netns_containers() {
        let custom = SlirpOptions {
            cidr: Some("10.9.8.0/24".parse().unwrap()),
            enable_ipv6: Some(false),
            ..SlirpOptions::default()
        };
        let cases: [(&str, SlirpOptions, Vec<IpAddr>, Vec<String>); 3] = [
            ("defaults", SlirpOptions::default(), vec![], vec![]),
            (
                "cidr and no ipv6",
                custom,
                vec![],
                vec!["corp.example".into()],
            ),
            (
                "user nameservers replace the forwarder and the host's",
                SlirpOptions::default(),
                vec!["9.9.9.9".parse().unwrap()],
                vec![],
            ),
        ];
        let mut out = String::new();
        for (name, opts, servers, search) in cases {
            let hosts = new_hosts(&HostsParams {
                extra_hosts: Vec::new(),
                base: None,
                host_containers_internal: Some("192.0.2.10".parse().unwrap()),
                container_entries: hosts_entries(&opts, "web", "web-ctr"),
            });
            let resolv = new_resolv_conf(&resolv_params(
                &opts,
                &servers,
                &search,
                Some(HOST_RESOLV.to_owned()),
            ));
            let _ = write!(out, "## {name}\n# hosts\n{hosts}# resolv.conf\n{resolv}\n");
        }
        insta::assert_snapshot!(out);
    }
}

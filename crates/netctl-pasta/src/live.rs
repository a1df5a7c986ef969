//! What a namespace configured by a helper (pasta, slirp4netns) looks like, read live.
//!
//! pasta and slirp4netns configure the namespace themselves and report nothing back, so podman
//! shows no addresses for them at all. netctl reads the namespace instead, with the rules of
//! podman's `inspectJoinedNetworkNS`: loopback and interfaces without addresses are left out,
//! link-local addresses are dropped, an address gets a gateway only when its subnet contains
//! it. One podman quirk is fixed: podman took the gateway from the *last* default route of a
//! family-agnostic dump (so with both families one of the gateways was lost); here each family
//! has its own, the default route with the lowest metric.
//!
//! Used by netctl-slirp too: nothing here is specific to pasta.

use std::net::IpAddr;

use ipnet::IpNet;
use netctl_sys::{MacAddr, NsRef, Route, Sys, SysError};
use netctl_types::{NetAddress, NetInterface, StatusBlock};

/// One interface of the namespace (never `lo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveInterface {
    pub name: String,
    pub mac: Option<MacAddr>,
    pub mtu: u32,
    pub up: bool,
    /// Its addresses with prefix lengths, link-local ones left out, sorted.
    pub addresses: Vec<IpNet>,
}

/// Interfaces and routes of a namespace as they are right now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveNetwork {
    /// Sorted by name; `lo` is left out.
    pub interfaces: Vec<LiveInterface>,
    /// The main table's unicast routes, both families, sorted (kernel routes included).
    pub routes: Vec<Route>,
}

fn is_link_local(net: &IpNet) -> bool {
    match net.addr() {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

impl LiveNetwork {
    /// The interface called `name`.
    pub fn interface(&self, name: &str) -> Option<&LiveInterface> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    /// The gateway of the default route of `v6`'s family with the lowest metric (the first
    /// one listed among equals).
    pub fn gateway(&self, v6: bool) -> Option<IpAddr> {
        self.routes
            .iter()
            .filter(|r| r.is_default() && r.dst.addr().is_ipv6() == v6)
            .filter_map(|r| r.gateway.map(|gw| (r.effective_metric(), gw)))
            .min_by_key(|(metric, _)| *metric)
            .map(|(_, gw)| gw)
    }

    /// podman's status block for this namespace: every interface that has an address, each
    /// address with its family's gateway when the subnet contains it.
    pub fn status_block(&self) -> StatusBlock {
        let gateways = [self.gateway(false), self.gateway(true)];
        let interfaces = self
            .interfaces
            .iter()
            .filter(|i| !i.addresses.is_empty())
            .map(|i| {
                let subnets = i
                    .addresses
                    .iter()
                    .map(|net| NetAddress {
                        ipnet: *net,
                        gateway: gateways
                            .into_iter()
                            .flatten()
                            .find(|gw| net.trunc().contains(gw)),
                    })
                    .collect();
                let iface = NetInterface {
                    subnets,
                    // A link without a hardware address (a tun device) shows as all zeros.
                    mac_address: i.mac.unwrap_or(MacAddr([0; 6])),
                };
                (i.name.clone(), iface)
            })
            .collect();
        StatusBlock {
            interfaces,
            dns_server_ips: None,
            dns_search_domains: None,
        }
    }
}

/// Reads the namespace `ns` as it is now.
pub fn observe(sys: &dyn Sys, ns: &NsRef) -> Result<LiveNetwork, SysError> {
    let links = sys.links(ns)?;
    let addrs = sys.addrs(ns)?;
    let mut interfaces: Vec<LiveInterface> = links
        .into_iter()
        .filter(|l| l.name != "lo")
        .map(|l| {
            let mut addresses: Vec<IpNet> = addrs
                .iter()
                .filter(|a| a.link_index == l.index && !is_link_local(&a.net))
                .map(|a| a.net)
                .collect();
            addresses.sort();
            LiveInterface {
                name: l.name,
                mac: l.mac,
                mtu: l.mtu,
                up: l.up,
                addresses,
            }
        })
        .collect();
    interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    let mut routes = sys.routes(ns)?;
    routes.sort();
    Ok(LiveNetwork { interfaces, routes })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use netctl_sys::{FakeSys, LinkChange, Namespaces, Netlink, VethSpec};

    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    /// A namespace set up the way pasta leaves it (an interface named after the uplink, the
    /// uplink's addresses and both default routes), read back.
    #[test]
    fn a_pasta_like_namespace_reads_as_one_interface_with_both_gateways() {
        let sys = FakeSys::new();
        let ns = NsRef::Path(sys.create_named(Path::new("/run/netns"), "c1").unwrap());
        sys.add_veth(
            &NsRef::Host,
            &VethSpec {
                name: "outside0".into(),
                mtu: Some(65520),
                mac: None,
                alias: None,
                peer_name: "uplink0".into(),
                peer_ns: ns.clone(),
                peer_mac: Some("02:42:ac:11:00:02".parse().unwrap()),
            },
        )
        .unwrap();
        sys.set_link(&ns, "uplink0", &LinkChange::up()).unwrap();
        sys.set_link(&ns, "lo", &LinkChange::up()).unwrap();
        for addr in ["192.0.2.10/24", "2001:db8::10/64", "fe80::1/64"] {
            sys.add_addr(&ns, "uplink0", net(addr)).unwrap();
        }
        sys.add_route(&ns, &Route::default_via("192.0.2.1".parse().unwrap()))
            .unwrap();
        sys.add_route(&ns, &Route::default_via("2001:db8::1".parse().unwrap()))
            .unwrap();
        // A second, worse IPv4 default: the lower metric wins (podman took the last one).
        sys.add_route(
            &ns,
            &Route::default_via("192.0.2.254".parse().unwrap()).metric(500),
        )
        .unwrap();

        let live = observe(&sys, &ns).unwrap();
        let uplink = live.interface("uplink0").unwrap();
        assert_eq!(uplink.mtu, 65520);
        assert_eq!(
            uplink.addresses,
            [net("192.0.2.10/24"), net("2001:db8::10/64")],
            "link-local left out"
        );
        assert!(live.interface("lo").is_none());
        assert_eq!(live.gateway(false), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(live.gateway(true), Some("2001:db8::1".parse().unwrap()));

        let status = live.status_block();
        insta::assert_json_snapshot!(status, @r#"
        {
          "interfaces": {
            "uplink0": {
              "subnets": [
                {
                  "ipnet": "192.0.2.10/24",
                  "gateway": "192.0.2.1"
                },
                {
                  "ipnet": "2001:db8::10/64",
                  "gateway": "2001:db8::1"
                }
              ],
              "mac_address": "02:42:ac:11:00:02"
            }
          }
        }
        "#);
    }

    #[test]
    fn a_gateway_outside_the_subnet_and_an_interface_without_addresses_are_left_out() {
        let live = LiveNetwork {
            interfaces: vec![
                LiveInterface {
                    name: "tap0".into(),
                    mac: None,
                    mtu: 1500,
                    up: true,
                    addresses: vec![net("10.0.2.100/24")],
                },
                LiveInterface {
                    name: "dummy0".into(),
                    mac: None,
                    mtu: 1500,
                    up: false,
                    addresses: vec![],
                },
            ],
            routes: vec![Route::default_via("10.9.9.9".parse().unwrap()).dev("tap0")],
        };
        let status = live.status_block();
        assert_eq!(status.interfaces.len(), 1);
        let tap = &status.interfaces["tap0"];
        assert_eq!(tap.subnets[0].gateway, None);
        assert_eq!(tap.mac_address, MacAddr([0; 6]));
    }
}

//! Per-network and per-container data, as elements of the table's sets and maps.
//!
//! Invariants:
//! * A network or a container turns into elements of a fixed list of sets/maps, so the number of
//!   commands to add or remove it never depends on what else is in the table.
//! * Elements are kept sorted per set, so batches (and their snapshots) are stable.
//! * The first value given for a map key wins, as the first matching rule did in netavark; a
//!   conflicting later one is dropped here (a rebuild still succeeds) and is rejected by nft
//!   when it comes alone through the fast path.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use netctl_types::nft::{SetElement, SetElements};
use nftables::expr::Expression;
use nftables::schema::{Element, NfCmd, NfListObject, SetType};

use crate::expr::{Expr, concat, number, prefix, string};
use crate::layout::{Store, TABLE_FAMILY, TABLE_NAME};
use crate::model::{DNS_PORT, FwContainer, FwNetwork, HostIp, Isolate, Protocol};

/// One part of an element key or value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Atom {
    Ifname(String),
    Net(IpNet),
    Addr(IpAddr),
    Proto(Protocol),
    /// A raw number: only the presence probe uses it (protocol 0, which no mapping has).
    Number(u32),
    Port(u16),
}

/// `IFNAMSIZ`: an interface name in an nf_tables register, NUL-padded.
const IFNAMSIZ: usize = 16;

impl Atom {
    /// The bytes nf_tables keeps for this atom in a field of type `ty`; `None` for what only
    /// `nft` itself can express (prefixes of interval sets).
    fn to_bytes(&self, ty: SetType) -> Option<Vec<u8>> {
        Some(match (self, ty) {
            (Atom::Ifname(name), SetType::Ifname) if name.len() < IFNAMSIZ => {
                let mut out = name.as_bytes().to_vec();
                out.resize(IFNAMSIZ, 0);
                out
            }
            (Atom::Addr(IpAddr::V4(a)), SetType::Ipv4Addr) => a.octets().to_vec(),
            (Atom::Addr(IpAddr::V6(a)), SetType::Ipv6Addr) => a.octets().to_vec(),
            (Atom::Proto(p), SetType::InetProto) => vec![p.number()],
            (Atom::Number(n), SetType::InetProto) => vec![u8::try_from(*n).ok()?],
            (Atom::Port(port), SetType::InetService) => port.to_be_bytes().to_vec(),
            _ => return None,
        })
    }

    fn to_expr(&self) -> Expr {
        match self {
            Atom::Ifname(name) => string(name.clone()),
            Atom::Net(net) => prefix(net.network().to_string(), net.prefix_len()),
            Atom::Addr(addr) => string(addr.to_string()),
            Atom::Proto(proto) => string(proto.as_str()),
            Atom::Number(n) => number(*n),
            Atom::Port(port) => number(u32::from(*port)),
        }
    }
}

type Key = Vec<Atom>;

/// Elements grouped by the set or map they belong to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Elements {
    stores: BTreeMap<Store, BTreeMap<Key, Option<Atom>>>,
}

/// What to do with a group of elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElementOp {
    /// `add element`: succeeds when an identical element is already there.
    Add,
    /// `add element` then `delete element`: removes the elements whether or not they are
    /// there (the add makes the delete safe), and fails when a key holds a different value,
    /// so another container's port is never removed by mistake.
    Remove,
}

impl Elements {
    fn insert(&mut self, store: Store, key: Key, value: Option<Atom>) {
        self.stores
            .entry(store)
            .or_default()
            .entry(key)
            .or_insert(value);
    }

    fn insert_pair(&mut self, stores: (Store, Store), key: Key, addr: IpAddr, port: u16) {
        self.insert(stores.0, key.clone(), Some(Atom::Addr(addr)));
        self.insert(stores.1, key, Some(Atom::Port(port)));
    }

    /// The elements one network contributes.
    pub(crate) fn add_network(&mut self, network: &FwNetwork) {
        let bridge = || Atom::Ifname(network.bridge.clone());
        self.insert(Store::Bridges, vec![bridge()], None);
        self.insert(Store::BridgePairs, vec![bridge(), bridge()], None);
        if matches!(network.isolate, Isolate::Enabled | Isolate::Strict) {
            self.insert(Store::IsolatedBridges, vec![bridge()], None);
        }
        if network.isolate == Isolate::Strict {
            self.insert(Store::StrictBridges, vec![bridge()], None);
        }
        self.add_dns(network);
        if network.internal {
            self.insert(Store::InternalBridges, vec![bridge()], None);
            return;
        }
        for subnet in &network.subnets {
            let subnet = subnet.trunc();
            let (nat, same) = match subnet {
                IpNet::V4(_) => (Store::NatSubnetsV4, Store::SameSubnetV4),
                IpNet::V6(_) => (Store::NatSubnetsV6, Store::SameSubnetV6),
            };
            self.insert(nat, vec![Atom::Net(subnet)], None);
            self.insert(same, vec![Atom::Net(subnet), Atom::Net(subnet)], None);
            let snat = match subnet {
                IpNet::V4(_) => network.outbound.v4.map(|a| (Store::SnatV4, IpAddr::V4(a))),
                IpNet::V6(_) => network.outbound.v6.map(|a| (Store::SnatV6, IpAddr::V6(a))),
            };
            if let Some((store, addr)) = snat {
                self.insert(store, vec![Atom::Net(subnet)], Some(Atom::Addr(addr)));
            }
        }
    }

    /// A DNS network's elements: queries from its subnets to each gateway accepted at the
    /// server's port, and the DNAT from the gateway's port 53 when the server listens elsewhere.
    fn add_dns(&mut self, network: &FwNetwork) {
        for listen in &network.dns {
            let gateway = listen.ip();
            let (accept, dnat) = match gateway {
                IpAddr::V4(_) => (Store::DnsAcceptV4, (Store::Dns4Addr, Store::Dns4Port)),
                IpAddr::V6(_) => (Store::DnsAcceptV6, (Store::Dns6Addr, Store::Dns6Port)),
            };
            for proto in [Protocol::Udp, Protocol::Tcp] {
                for subnet in &network.subnets {
                    if subnet.addr().is_ipv4() != gateway.is_ipv4() {
                        continue;
                    }
                    let key = vec![
                        Atom::Net(subnet.trunc()),
                        Atom::Addr(gateway),
                        Atom::Proto(proto),
                        Atom::Port(listen.port()),
                    ];
                    self.insert(accept, key, None);
                }
                if listen.port() != DNS_PORT {
                    let key = vec![
                        Atom::Addr(gateway),
                        Atom::Proto(proto),
                        Atom::Port(DNS_PORT),
                    ];
                    self.insert_pair(dnat, key, gateway, listen.port());
                }
            }
        }
    }

    /// The elements one container attachment contributes: its port forwards.
    ///
    /// Like netavark, a port published on one host address of a family the container has no
    /// address in is left out, and so is every family the container lacks.
    pub(crate) fn add_container(&mut self, container: &FwContainer) {
        for port in &container.ports {
            let proto = Atom::Proto(port.protocol);
            for (host_port, container_port) in port.pairs() {
                if let Some(v4) = container.ipv4
                    && port.host_ip.covers_v4()
                {
                    let (stores, key) = match port.host_ip {
                        HostIp::Addr(ip) => (
                            (Store::Dnat4IpAddr, Store::Dnat4IpPort),
                            vec![Atom::Addr(ip), proto.clone(), Atom::Port(host_port)],
                        ),
                        _ => (
                            (Store::Dnat4AnyAddr, Store::Dnat4AnyPort),
                            vec![proto.clone(), Atom::Port(host_port)],
                        ),
                    };
                    self.insert_pair(stores, key, IpAddr::V4(v4), container_port);
                }
                if let Some(v6) = container.ipv6
                    && port.host_ip.covers_v6()
                {
                    let (stores, key) = match port.host_ip {
                        HostIp::Addr(ip) => (
                            (Store::Dnat6IpAddr, Store::Dnat6IpPort),
                            vec![Atom::Addr(ip), proto.clone(), Atom::Port(host_port)],
                        ),
                        _ => (
                            (Store::Dnat6AnyAddr, Store::Dnat6AnyPort),
                            vec![proto.clone(), Atom::Port(host_port)],
                        ),
                    };
                    self.insert_pair(stores, key, IpAddr::V6(v6), container_port);
                }
            }
        }
    }

    /// One element per set and map that no real network or container can produce: an
    /// interface name with a `/`, the limited-broadcast and a reserved multicast prefix, and
    /// protocol number 0.
    pub(crate) fn sentinels() -> Self {
        let mut elements = Elements::default();
        let ifname = || Atom::Ifname("netctl/probe".to_owned());
        let net4 = || Atom::Net(IpNet::from(IpAddr::V4(Ipv4Addr::BROADCAST)));
        let net6 = || {
            Atom::Net(IpNet::from(IpAddr::V6(Ipv6Addr::new(
                0xff00, 0, 0, 0, 0, 0, 0, 0,
            ))))
        };
        let v4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let v6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        let any_key = || vec![Atom::Number(0), Atom::Port(0)];
        for store in Store::ALL {
            let (key, value) = match store {
                Store::Bridges
                | Store::IsolatedBridges
                | Store::StrictBridges
                | Store::InternalBridges => (vec![ifname()], None),
                Store::BridgePairs => (vec![ifname(), ifname()], None),
                Store::NatSubnetsV4 => (vec![net4()], None),
                Store::NatSubnetsV6 => (vec![net6()], None),
                Store::SameSubnetV4 => (vec![net4(), net4()], None),
                Store::SameSubnetV6 => (vec![net6(), net6()], None),
                Store::SnatV4 => (vec![net4()], Some(Atom::Addr(v4))),
                Store::SnatV6 => (vec![net6()], Some(Atom::Addr(v6))),
                Store::Dnat4AnyAddr => (any_key(), Some(Atom::Addr(v4))),
                Store::Dnat6AnyAddr => (any_key(), Some(Atom::Addr(v6))),
                Store::Dnat4AnyPort | Store::Dnat6AnyPort => (any_key(), Some(Atom::Port(0))),
                Store::Dnat4IpAddr | Store::Dns4Addr => (
                    vec![Atom::Addr(v4), Atom::Number(0), Atom::Port(0)],
                    Some(Atom::Addr(v4)),
                ),
                Store::Dnat4IpPort | Store::Dns4Port => (
                    vec![Atom::Addr(v4), Atom::Number(0), Atom::Port(0)],
                    Some(Atom::Port(0)),
                ),
                Store::Dnat6IpAddr | Store::Dns6Addr => (
                    vec![Atom::Addr(v6), Atom::Number(0), Atom::Port(0)],
                    Some(Atom::Addr(v6)),
                ),
                Store::Dnat6IpPort | Store::Dns6Port => (
                    vec![Atom::Addr(v6), Atom::Number(0), Atom::Port(0)],
                    Some(Atom::Port(0)),
                ),
                Store::DnsAcceptV4 => (
                    vec![net4(), Atom::Addr(v4), Atom::Number(0), Atom::Port(0)],
                    None,
                ),
                Store::DnsAcceptV6 => (
                    vec![net6(), Atom::Addr(v6), Atom::Number(0), Atom::Port(0)],
                    None,
                ),
            };
            elements.insert(store, key, value);
        }
        elements
    }

    /// The commands for these elements: per set or map, in table order, one `add element`
    /// (or an add and a delete for [`ElementOp::Remove`]). Empty sets give no command, since
    /// nft rejects an empty element list.
    pub(crate) fn commands(&self, op: ElementOp) -> Vec<NfCmd<'static>> {
        let mut commands = Vec::new();
        for (store, elements) in &self.stores {
            if elements.is_empty() {
                continue;
            }
            let elem: Vec<Expr> = elements
                .iter()
                .map(|(key, value)| {
                    let key = concat(key.iter().map(Atom::to_expr).collect());
                    match value {
                        None => key,
                        Some(value) => Expression::List(vec![key, value.to_expr()]),
                    }
                })
                .collect();
            let element = || {
                NfListObject::Element(Element {
                    family: TABLE_FAMILY,
                    table: Cow::Borrowed(TABLE_NAME),
                    name: Cow::Borrowed(store.name()),
                    elem: Cow::Owned(elem.clone()),
                })
            };
            commands.push(NfCmd::Add(element()));
            if op == ElementOp::Remove {
                commands.push(NfCmd::Delete(element()));
            }
        }
        commands
    }

    /// The same changes as [`Elements::commands`], with keys and values in nf_tables' own
    /// bytes, for the kernel seam to send over netlink. `None` when a set needs what only
    /// `nft` computes (the intervals of subnet sets): such batches go through `nft`.
    pub(crate) fn netlink_ops(&self, op: ElementOp) -> Option<Vec<SetElements>> {
        let mut ops = Vec::new();
        for (store, elements) in &self.stores {
            if elements.is_empty() {
                continue;
            }
            if store.interval() {
                return None;
            }
            let types = store.key_type();
            let mut encoded = Vec::with_capacity(elements.len());
            for (key, value) in elements {
                let mut bytes = Vec::new();
                for (atom, ty) in key.iter().zip(types) {
                    let mut field = atom.to_bytes(*ty)?;
                    // A concatenation's fields each take whole 32-bit registers.
                    if types.len() > 1 {
                        field.resize(field.len().next_multiple_of(4), 0);
                    }
                    bytes.extend(field);
                }
                let data = match (value, store.value_type()) {
                    (None, None) => None,
                    (Some(value), Some(ty)) => Some(value.to_bytes(ty)?),
                    _ => return None,
                };
                encoded.push(SetElement { key: bytes, data });
            }
            let set = store.name().to_owned();
            ops.push(SetElements {
                delete: false,
                set: set.clone(),
                elements: encoded.clone(),
            });
            if op == ElementOp::Remove {
                ops.push(SetElements {
                    delete: true,
                    set,
                    elements: encoded,
                });
            }
        }
        Some(ops)
    }

    /// How many elements there are in all.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.stores.values().map(BTreeMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::FwPort;

    /// An element as `nft --debug=netlink` prints it: 32-bit words in host order (x86), the
    /// value padded to a whole word.
    fn debug_line(element: &SetElement) -> String {
        let words = |bytes: &[u8]| {
            let mut bytes = bytes.to_vec();
            bytes.resize(bytes.len().next_multiple_of(4), 0);
            bytes
                .chunks(4)
                .map(|w| format!("{:08x}", u32::from_le_bytes(w.try_into().unwrap())))
                .collect::<Vec<_>>()
                .join(" ")
        };
        match &element.data {
            Some(data) => format!("element {}  : {} 0 [end]", words(&element.key), words(data)),
            None => format!("element {}  : 0 [end]", words(&element.key)),
        }
    }

    /// The bytes are what nft itself sends: the expected lines were printed by
    /// `nft --debug=netlink add element inet netctl dnat4_any_port { tcp . 8080 : 80 }` (and
    /// `dnat4_any_addr { tcp . 8080 : 10.89.0.2 }`, `dnat4_ip_addr { 127.0.0.1 . udp . 53 :
    /// 10.89.0.2 }`) on this kernel.
    #[test]
    fn netlink_bytes_are_nfts() {
        let mut elements = Elements::default();
        elements.add_container(&FwContainer {
            id: "a".repeat(64),
            network: "web".into(),
            ipv4: Some(Ipv4Addr::new(10, 89, 0, 2)),
            ipv6: None,
            ports: vec![
                FwPort::new(Protocol::Tcp, 8080, 80),
                FwPort {
                    host_ip: HostIp::Addr(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                    ..FwPort::new(Protocol::Udp, 53, 53)
                },
            ],
        });
        let ops = elements.netlink_ops(ElementOp::Add).unwrap();
        let lines: Vec<String> = ops
            .iter()
            .map(|op| format!("{} {}", op.set, debug_line(&op.elements[0])))
            .collect();
        assert_eq!(
            lines,
            [
                "dnat4_any_addr element 00000006 0000901f  : 0200590a 0 [end]",
                "dnat4_any_port element 00000006 0000901f  : 00005000 0 [end]",
                "dnat4_ip_addr element 0100007f 00000011 00003500  : 0200590a 0 [end]",
                "dnat4_ip_port element 0100007f 00000011 00003500  : 00003500 0 [end]",
            ]
        );
        // Remove: the same elements added, then deleted.
        let remove = elements.netlink_ops(ElementOp::Remove).unwrap();
        assert_eq!(remove.len(), 8);
        assert!(remove[1].delete && remove[1].elements == remove[0].elements);
        // Subnet intervals are nft's to compute.
        let mut network = Elements::default();
        network.add_network(&crate::model::FwNetwork {
            name: "web".into(),
            bridge: "nc-web".into(),
            subnets: vec!["10.89.0.0/24".parse().unwrap()],
            internal: false,
            isolate: crate::model::Isolate::Disabled,
            outbound: crate::model::Outbound::default(),
            dns: Vec::new(),
        });
        assert!(network.netlink_ops(ElementOp::Add).is_none());
    }
}

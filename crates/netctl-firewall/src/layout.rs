//! The fixed shape of `table inet netctl`: its chains, sets, maps and rules.
//!
//! Invariant: nothing here depends on how many networks or containers exist. Per-network and
//! per-container data only ever goes into the sets and maps listed in [`Store`], so the rules
//! below are written once, when the table is created, and never touched again.
//!
//! Chains:
//! * `input` (filter, input hook, priority 0, policy accept): accepts DNS queries from each DNS
//!   network's subnets to its gateway at aardvark-dns's port, as netavark's `INPUT` chain does.
//!   It drops nothing. As with netavark's, an accept here ends only this chain: every table's
//!   base chain on the hook still sees the packet and a drop in any is final, so a host
//!   firewall whose own table drops input must allow DNS from container subnets itself.
//! * `forward` (filter, forward hook, priority 0, policy accept): invalid-state drop for netctl
//!   bridges, routed-within-one-bridge accept, internal-bridge drops, accept for DNAT'd flows
//!   (published ports stay reachable across isolation, as in netavark 2.1) and for
//!   established/related flows, then the isolation drops.
//! * `prerouting` / `output` (nat, priority dstnat): `fib daddr type local jump hostport-dnat`.
//! * `hostport-dnat`: first DNATs DNS queries to a gateway's port 53 to the gateway at
//!   aardvark-dns's port when that is not 53 (netavark's `NETAVARK_DNS_PORT` rule); then marks flows from localhost or from container subnets that are about to be
//!   DNAT'd (so postrouting masquerades them: localhost needs `route_localnet`, hairpin needs the
//!   reply to come back through the host), then DNATs through the port-forward maps, specific
//!   host addresses before wildcards.
//! * `postrouting` (nat, priority srcnat): masquerade marked flows; masquerade traffic from
//!   non-internal subnets unless it goes to multicast or stays in its own subnet.
//!
//! Internal bridges drop forwarded traffic before DNAT'd flows are accepted, so a port
//! published by a container on an internal network answers only the host itself.

use std::borrow::Cow;
use std::collections::HashSet;

use nftables::expr::MetaKey;
use nftables::schema::{Chain, NfListObject, Rule, Set, SetFlag, SetType, SetTypeValue, Table};
use nftables::stmt::{JumpTarget, NATFamily, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::expr::{
    Expr, Stmt, concat, ct, dnat, eq, fib_daddr_type, has_flags, map_lookup, mark_has, meta, ne,
    payload, prefix, set_mark_bit, set_ref, string,
};

/// The table netctl owns, whole: `table inet netctl`.
pub const TABLE_NAME: &str = "netctl";
/// Its family.
pub const TABLE_FAMILY: NfFamily = NfFamily::INet;
/// Packet mark bit for "masquerade this DNAT'd flow" (netavark uses the same bit).
pub const MASQUERADE_MARK: u32 = 0x2000;

const INPUT: &str = "input";
const FORWARD: &str = "forward";
const PREROUTING: &str = "prerouting";
const OUTPUT: &str = "output";
const POSTROUTING: &str = "postrouting";
const HOSTPORT_DNAT: &str = "hostport-dnat";

const DSTNAT_PRIORITY: i32 = -100;
const SRCNAT_PRIORITY: i32 = 100;
const FILTER_PRIORITY: i32 = 0;

/// Every named set and map in the table. The order is the order they are created and filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Store {
    /// `ifname`: every netctl bridge.
    Bridges,
    /// `ifname`: bridges with `isolate = true` or `"strict"`.
    IsolatedBridges,
    /// `ifname`: bridges with `isolate = "strict"`.
    StrictBridges,
    /// `ifname`: bridges of internal networks.
    InternalBridges,
    /// `ifname . ifname`: `bridge . bridge` for every bridge, to accept traffic routed back out
    /// the bridge it came from (and bridged traffic when br_netfilter is loaded).
    BridgePairs,
    /// `ipv4_addr` intervals: subnets of non-internal networks (masquerade sources).
    NatSubnetsV4,
    NatSubnetsV6,
    /// `ipv4_addr . ipv4_addr` intervals: `subnet . subnet`, traffic that stays in its subnet.
    SameSubnetV4,
    SameSubnetV6,
    /// `ipv4_addr` intervals `: ipv4_addr`: subnets whose outbound traffic is SNATed to a fixed
    /// address (netavark's `outbound_addr4`) rather than masqueraded.
    SnatV4,
    SnatV6,
    /// `inet_proto . inet_service : ipv4_addr`: published on every host IPv4 address.
    Dnat4AnyAddr,
    /// `inet_proto . inet_service : inet_service`: the container port for the same keys.
    Dnat4AnyPort,
    /// `ipv4_addr . inet_proto . inet_service : ipv4_addr`: published on one host address.
    Dnat4IpAddr,
    Dnat4IpPort,
    Dnat6AnyAddr,
    Dnat6AnyPort,
    Dnat6IpAddr,
    Dnat6IpPort,
    /// `ipv4_addr . ipv4_addr . inet_proto . inet_service` intervals: `subnet . gateway .
    /// udp|tcp . port`, DNS queries from a network to its aardvark-dns (input accept).
    DnsAcceptV4,
    DnsAcceptV6,
    /// `ipv4_addr . inet_proto . inet_service : ipv4_addr`: `gateway . udp|tcp . 53` to the
    /// gateway, when aardvark-dns listens on another port.
    Dns4Addr,
    /// The same keys to aardvark-dns's port.
    Dns4Port,
    Dns6Addr,
    Dns6Port,
}

impl Store {
    pub(crate) const ALL: [Store; 25] = [
        Store::Bridges,
        Store::IsolatedBridges,
        Store::StrictBridges,
        Store::InternalBridges,
        Store::BridgePairs,
        Store::NatSubnetsV4,
        Store::NatSubnetsV6,
        Store::SameSubnetV4,
        Store::SameSubnetV6,
        Store::SnatV4,
        Store::SnatV6,
        Store::Dnat4AnyAddr,
        Store::Dnat4AnyPort,
        Store::Dnat4IpAddr,
        Store::Dnat4IpPort,
        Store::Dnat6AnyAddr,
        Store::Dnat6AnyPort,
        Store::Dnat6IpAddr,
        Store::Dnat6IpPort,
        Store::DnsAcceptV4,
        Store::DnsAcceptV6,
        Store::Dns4Addr,
        Store::Dns4Port,
        Store::Dns6Addr,
        Store::Dns6Port,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Store::Bridges => "bridges",
            Store::IsolatedBridges => "isolated_bridges",
            Store::StrictBridges => "strict_bridges",
            Store::InternalBridges => "internal_bridges",
            Store::BridgePairs => "bridge_pairs",
            Store::NatSubnetsV4 => "nat_subnets_v4",
            Store::NatSubnetsV6 => "nat_subnets_v6",
            Store::SameSubnetV4 => "same_subnet_v4",
            Store::SameSubnetV6 => "same_subnet_v6",
            Store::SnatV4 => "snat_v4",
            Store::SnatV6 => "snat_v6",
            Store::Dnat4AnyAddr => "dnat4_any_addr",
            Store::Dnat4AnyPort => "dnat4_any_port",
            Store::Dnat4IpAddr => "dnat4_ip_addr",
            Store::Dnat4IpPort => "dnat4_ip_port",
            Store::Dnat6AnyAddr => "dnat6_any_addr",
            Store::Dnat6AnyPort => "dnat6_any_port",
            Store::Dnat6IpAddr => "dnat6_ip_addr",
            Store::Dnat6IpPort => "dnat6_ip_port",
            Store::DnsAcceptV4 => "dns_accept_v4",
            Store::DnsAcceptV6 => "dns_accept_v6",
            Store::Dns4Addr => "dns4_addr",
            Store::Dns4Port => "dns4_port",
            Store::Dns6Addr => "dns6_addr",
            Store::Dns6Port => "dns6_port",
        }
    }

    pub(crate) fn key_type(self) -> &'static [SetType] {
        use SetType::{Ifname, InetProto, InetService, Ipv4Addr, Ipv6Addr};
        match self {
            Store::Bridges
            | Store::IsolatedBridges
            | Store::StrictBridges
            | Store::InternalBridges => &[Ifname],
            Store::BridgePairs => &[Ifname, Ifname],
            Store::NatSubnetsV4 | Store::SnatV4 => &[Ipv4Addr],
            Store::NatSubnetsV6 | Store::SnatV6 => &[Ipv6Addr],
            Store::SameSubnetV4 => &[Ipv4Addr, Ipv4Addr],
            Store::SameSubnetV6 => &[Ipv6Addr, Ipv6Addr],
            Store::Dnat4AnyAddr
            | Store::Dnat4AnyPort
            | Store::Dnat6AnyAddr
            | Store::Dnat6AnyPort => &[InetProto, InetService],
            Store::Dnat4IpAddr | Store::Dnat4IpPort | Store::Dns4Addr | Store::Dns4Port => {
                &[Ipv4Addr, InetProto, InetService]
            }
            Store::Dnat6IpAddr | Store::Dnat6IpPort | Store::Dns6Addr | Store::Dns6Port => {
                &[Ipv6Addr, InetProto, InetService]
            }
            Store::DnsAcceptV4 => &[Ipv4Addr, Ipv4Addr, InetProto, InetService],
            Store::DnsAcceptV6 => &[Ipv6Addr, Ipv6Addr, InetProto, InetService],
        }
    }

    /// The value type for maps, `None` for plain sets.
    ///
    /// Address and port live in two maps with the same keys rather than one map with a
    /// concatenated value: nft 1.0.6 (Debian 12) cannot read concatenated map values from JSON.
    pub(crate) fn value_type(self) -> Option<SetType> {
        match self {
            Store::Dnat4AnyAddr | Store::Dnat4IpAddr | Store::SnatV4 | Store::Dns4Addr => {
                Some(SetType::Ipv4Addr)
            }
            Store::Dnat6AnyAddr | Store::Dnat6IpAddr | Store::SnatV6 | Store::Dns6Addr => {
                Some(SetType::Ipv6Addr)
            }
            Store::Dnat4AnyPort
            | Store::Dnat4IpPort
            | Store::Dnat6AnyPort
            | Store::Dnat6IpPort
            | Store::Dns4Port
            | Store::Dns6Port => Some(SetType::InetService),
            _ => None,
        }
    }

    pub(crate) fn interval(self) -> bool {
        matches!(
            self,
            Store::NatSubnetsV4
                | Store::NatSubnetsV6
                | Store::SameSubnetV4
                | Store::SameSubnetV6
                | Store::SnatV4
                | Store::SnatV6
                | Store::DnsAcceptV4
                | Store::DnsAcceptV6
        )
    }

    fn declaration(self) -> NfListObject<'static> {
        let key = match self.key_type() {
            [one] => SetTypeValue::Single(*one),
            many => SetTypeValue::Concatenated(Cow::Owned(many.to_vec())),
        };
        let flags = self.interval().then(|| HashSet::from([SetFlag::Interval]));
        match self.value_type() {
            None => NfListObject::Set(Box::new(Set {
                family: TABLE_FAMILY,
                table: Cow::Borrowed(TABLE_NAME),
                name: Cow::Borrowed(self.name()),
                set_type: key,
                flags,
                ..Set::default()
            })),
            Some(value) => NfListObject::Map(Box::new(nftables::schema::Map {
                family: TABLE_FAMILY,
                table: Cow::Borrowed(TABLE_NAME),
                name: Cow::Borrowed(self.name()),
                set_type: key,
                map: SetTypeValue::Single(value),
                flags,
                ..nftables::schema::Map::default()
            })),
        }
    }
}

/// An address family of the port-forward machinery.
#[derive(Debug, Clone, Copy)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn ip(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    fn nfproto(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    fn nat(self) -> NATFamily {
        match self {
            Family::V4 => NATFamily::IP,
            Family::V6 => NATFamily::IP6,
        }
    }

    /// (wildcard addr, wildcard port, specific addr, specific port) maps.
    fn dnat_maps(self) -> [Store; 4] {
        match self {
            Family::V4 => [
                Store::Dnat4AnyAddr,
                Store::Dnat4AnyPort,
                Store::Dnat4IpAddr,
                Store::Dnat4IpPort,
            ],
            Family::V6 => [
                Store::Dnat6AnyAddr,
                Store::Dnat6AnyPort,
                Store::Dnat6IpAddr,
                Store::Dnat6IpPort,
            ],
        }
    }

    fn nat_subnets(self) -> Store {
        match self {
            Family::V4 => Store::NatSubnetsV4,
            Family::V6 => Store::NatSubnetsV6,
        }
    }

    fn snat(self) -> Store {
        match self {
            Family::V4 => Store::SnatV4,
            Family::V6 => Store::SnatV6,
        }
    }

    /// (gateway, port) maps of the DNS DNAT.
    fn dns_maps(self) -> (Store, Store) {
        match self {
            Family::V4 => (Store::Dns4Addr, Store::Dns4Port),
            Family::V6 => (Store::Dns6Addr, Store::Dns6Port),
        }
    }

    fn dns_accept(self) -> Store {
        match self {
            Family::V4 => Store::DnsAcceptV4,
            Family::V6 => Store::DnsAcceptV6,
        }
    }

    fn same_subnet(self) -> Store {
        match self {
            Family::V4 => Store::SameSubnetV4,
            Family::V6 => Store::SameSubnetV6,
        }
    }

    fn multicast(self) -> Expr {
        match self {
            Family::V4 => prefix("224.0.0.0".into(), 4),
            Family::V6 => prefix("ff00::".into(), 8),
        }
    }

    /// `meta l4proto . th dport`: the key of the wildcard maps.
    fn any_key() -> Expr {
        concat(vec![meta(MetaKey::L4proto), payload("th", "dport")])
    }

    /// `ip daddr . meta l4proto . th dport`: the key of the specific-address maps.
    fn ip_key(self) -> Expr {
        concat(vec![
            payload(self.ip(), "daddr"),
            meta(MetaKey::L4proto),
            payload("th", "dport"),
        ])
    }
}

pub(crate) fn table() -> NfListObject<'static> {
    NfListObject::Table(Table {
        family: TABLE_FAMILY,
        name: Cow::Borrowed(TABLE_NAME),
        handle: None,
    })
}

fn base_chain(name: &'static str, kind: NfChainType, hook: NfHook, prio: i32) -> Chain<'static> {
    Chain {
        family: TABLE_FAMILY,
        table: Cow::Borrowed(TABLE_NAME),
        name: Cow::Borrowed(name),
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    }
}

fn chains() -> Vec<NfListObject<'static>> {
    [
        base_chain(INPUT, NfChainType::Filter, NfHook::Input, FILTER_PRIORITY),
        base_chain(
            FORWARD,
            NfChainType::Filter,
            NfHook::Forward,
            FILTER_PRIORITY,
        ),
        base_chain(
            PREROUTING,
            NfChainType::NAT,
            NfHook::Prerouting,
            DSTNAT_PRIORITY,
        ),
        base_chain(OUTPUT, NfChainType::NAT, NfHook::Output, DSTNAT_PRIORITY),
        base_chain(
            POSTROUTING,
            NfChainType::NAT,
            NfHook::Postrouting,
            SRCNAT_PRIORITY,
        ),
        Chain {
            family: TABLE_FAMILY,
            table: Cow::Borrowed(TABLE_NAME),
            name: Cow::Borrowed(HOSTPORT_DNAT),
            ..Chain::default()
        },
    ]
    .into_iter()
    .map(NfListObject::Chain)
    .collect()
}

fn rule(chain: &'static str, comment: &'static str, expr: Vec<Stmt>) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family: TABLE_FAMILY,
        table: Cow::Borrowed(TABLE_NAME),
        chain: Cow::Borrowed(chain),
        expr: Cow::Owned(expr),
        handle: None,
        index: None,
        comment: Some(Cow::Borrowed(comment)),
    })
}

fn in_set(left: Expr, store: Store) -> Stmt {
    eq(left, set_ref(store.name()))
}

fn iifname() -> Expr {
    meta(MetaKey::Iifname)
}

fn oifname() -> Expr {
    meta(MetaKey::Oifname)
}

fn accept() -> Stmt {
    Statement::Accept(None)
}

fn drop() -> Stmt {
    Statement::Drop(None)
}

fn forward_rules() -> Vec<NfListObject<'static>> {
    let invalid = || has_flags(ct("state"), &["invalid"]);
    vec![
        // netavark drops invalid-state packets (un-NATed leaks, #774); only for our bridges here,
        // so the host's other forwarding is left alone.
        rule(
            FORWARD,
            "netctl: drop invalid packets from netctl bridges",
            vec![in_set(iifname(), Store::Bridges), invalid(), drop()],
        ),
        rule(
            FORWARD,
            "netctl: drop invalid packets to netctl bridges",
            vec![in_set(oifname(), Store::Bridges), invalid(), drop()],
        ),
        rule(
            FORWARD,
            "netctl: traffic that stays on its bridge",
            vec![
                in_set(concat(vec![iifname(), oifname()]), Store::BridgePairs),
                accept(),
            ],
        ),
        rule(
            FORWARD,
            "netctl: internal networks do not forward out",
            vec![in_set(iifname(), Store::InternalBridges), drop()],
        ),
        rule(
            FORWARD,
            "netctl: internal networks do not forward in",
            vec![in_set(oifname(), Store::InternalBridges), drop()],
        ),
        rule(
            FORWARD,
            "netctl: published ports are reachable across isolation",
            vec![has_flags(ct("status"), &["dnat"]), accept()],
        ),
        rule(
            FORWARD,
            "netctl: replies",
            vec![
                has_flags(ct("state"), &["established", "related"]),
                accept(),
            ],
        ),
        rule(
            FORWARD,
            "netctl: strict isolation, outbound",
            vec![
                in_set(iifname(), Store::StrictBridges),
                in_set(oifname(), Store::Bridges),
                drop(),
            ],
        ),
        rule(
            FORWARD,
            "netctl: strict isolation, inbound",
            vec![
                in_set(iifname(), Store::Bridges),
                in_set(oifname(), Store::StrictBridges),
                drop(),
            ],
        ),
        rule(
            FORWARD,
            "netctl: isolated networks do not reach each other",
            vec![
                in_set(iifname(), Store::IsolatedBridges),
                in_set(oifname(), Store::IsolatedBridges),
                drop(),
            ],
        ),
    ]
}

fn jump_to_dnat(chain: &'static str) -> NfListObject<'static> {
    rule(
        chain,
        "netctl: published ports",
        vec![
            eq(fib_daddr_type(), string("local")),
            Statement::Jump(JumpTarget {
                target: Cow::Borrowed(HOSTPORT_DNAT),
            }),
        ],
    )
}

/// DNS from a network to its gateway's aardvark-dns, accepted (after any DNAT, so at the
/// server's own port).
fn input_rules() -> Vec<NfListObject<'static>> {
    [Family::V4, Family::V6]
        .into_iter()
        .map(|family| {
            let key = concat(vec![
                payload(family.ip(), "saddr"),
                payload(family.ip(), "daddr"),
                meta(MetaKey::L4proto),
                payload("th", "dport"),
            ]);
            rule(
                INPUT,
                "netctl: DNS from a network to its aardvark-dns",
                vec![in_set(key, family.dns_accept()), accept()],
            )
        })
        .collect()
}

/// DNAT through an (address, port) pair of maps keyed `daddr . l4proto . dport`.
fn dnat_by_address(
    family: Family,
    (addr, port): (Store, Store),
    comment: &'static str,
) -> NfListObject<'static> {
    rule(
        HOSTPORT_DNAT,
        comment,
        vec![dnat(
            family.nat(),
            map_lookup(family.ip_key(), addr.name()),
            map_lookup(family.ip_key(), port.name()),
        )],
    )
}

fn hostport_rules() -> Vec<NfListObject<'static>> {
    // DNS first: a gateway's port 53 is aardvark-dns's, whatever is published on the host's
    // other addresses (netavark inserts this rule at the top of its DNAT chain too). Not
    // marked: aardvark-dns tells containers apart by their source address.
    let mut rules: Vec<NfListObject<'static>> = [Family::V4, Family::V6]
        .into_iter()
        .map(|family| {
            dnat_by_address(
                family,
                family.dns_maps(),
                "netctl: DNS to a gateway, to aardvark-dns's port",
            )
        })
        .collect();
    // Marks first: the dnat statement ends evaluation of the chain.
    for family in [Family::V4, Family::V6] {
        let [any_addr, _, ip_addr, _] = family.dnat_maps();
        let mut sources = vec![(
            in_set(payload(family.ip(), "saddr"), family.nat_subnets()),
            "netctl: hairpin",
        )];
        // IPv6 has no route_localnet, so `::1` cannot be forwarded; only IPv4 localhost is marked.
        if let Family::V4 = family {
            sources.push((
                eq(payload("ip", "saddr"), prefix("127.0.0.0".into(), 8)),
                "netctl: from localhost",
            ));
        }
        for (source, comment) in sources {
            rules.push(rule(
                HOSTPORT_DNAT,
                comment,
                vec![
                    source.clone(),
                    in_set(family.ip_key(), ip_addr),
                    set_mark_bit(MASQUERADE_MARK),
                ],
            ));
            rules.push(rule(
                HOSTPORT_DNAT,
                comment,
                vec![
                    source,
                    in_set(Family::any_key(), any_addr),
                    set_mark_bit(MASQUERADE_MARK),
                ],
            ));
        }
    }
    for family in [Family::V4, Family::V6] {
        let [any_addr, any_port, ip_addr, ip_port] = family.dnat_maps();
        rules.push(dnat_by_address(
            family,
            (ip_addr, ip_port),
            "netctl: published on one host address",
        ));
        rules.push(rule(
            HOSTPORT_DNAT,
            "netctl: published on every host address",
            vec![
                eq(meta(MetaKey::Nfproto), string(family.nfproto())),
                dnat(
                    family.nat(),
                    map_lookup(Family::any_key(), any_addr.name()),
                    map_lookup(Family::any_key(), any_port.name()),
                ),
            ],
        ));
    }
    rules
}

fn postrouting_rules() -> Vec<NfListObject<'static>> {
    let mut rules = vec![rule(
        POSTROUTING,
        "netctl: DNAT'd flows from localhost and containers",
        vec![mark_has(MASQUERADE_MARK), Statement::Masquerade(None)],
    )];
    for family in [Family::V4, Family::V6] {
        let saddr = || payload(family.ip(), "saddr");
        let daddr = || payload(family.ip(), "daddr");
        let outbound = || {
            vec![
                in_set(saddr(), family.nat_subnets()),
                ne(daddr(), family.multicast()),
                ne(
                    concat(vec![saddr(), daddr()]),
                    set_ref(family.same_subnet().name()),
                ),
            ]
        };
        // A subnet with a fixed outbound address: SNAT to it (a source the map lacks ends
        // the rule, and the masquerade below takes the flow).
        let mut snat = outbound();
        snat.push(crate::expr::snat(
            family.nat(),
            map_lookup(saddr(), family.snat().name()),
        ));
        rules.push(rule(
            POSTROUTING,
            "netctl: outbound traffic of networks with a fixed source address",
            snat,
        ));
        let mut masquerade = outbound();
        masquerade.push(Statement::Masquerade(None));
        rules.push(rule(
            POSTROUTING,
            "netctl: outbound traffic of non-internal networks",
            masquerade,
        ));
    }
    rules
}

/// The table and everything fixed in it, in dependency order: chains and sets before the rules
/// that use them.
pub(crate) fn base_objects() -> Vec<NfListObject<'static>> {
    let mut objects = vec![table()];
    objects.extend(chains());
    objects.extend(Store::ALL.iter().map(|store| store.declaration()));
    objects.extend(input_rules());
    objects.extend(forward_rules());
    objects.push(jump_to_dnat(PREROUTING));
    objects.push(jump_to_dnat(OUTPUT));
    objects.extend(hostport_rules());
    objects.extend(postrouting_rules());
    objects
}

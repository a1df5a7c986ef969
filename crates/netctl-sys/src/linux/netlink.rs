//! [`Netlink`] for [`LinuxSys`]: building rtnetlink requests from netctl's values and turning
//! the kernel's replies back into them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    AfSpecInet, AfSpecUnspec, InetDevConf, InfoBridgePort, InfoData, InfoKind, InfoMacVlan,
    InfoPortData, InfoPortKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    MacVlanMode,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use nix::errno::Errno;

use super::rtnl::{Conn, Failure};
use super::{ConnError, LinuxSys, OpContext, netns};
use crate::error::{
    describe_add_macvlan, describe_add_veth, describe_addr, describe_ipv4_conf, describe_route,
    os_error,
};
use crate::model::{MAIN_TABLE, check_alias, check_ifname, check_route, valid_ifname};
use crate::{
    Addr, BridgeSpec, Ipv4Conf, Link, LinkChange, LinkKind, MacAddr, MacvlanSpec, Netlink,
    NetlinkOp, NsRef, Route, RouteKind, RouteProto, SysResult, VethPeer, VethSpec,
};

fn context(op: NetlinkOp, link: Option<&str>, what: String) -> OpContext {
    OpContext {
        op,
        link: link.map(str::to_owned),
        what,
    }
}

/// Turns a request failure into an error about `ctx`.
fn failed(ctx: &OpContext) -> impl FnOnce(Failure) -> ConnError + '_ {
    move |failure| ConnError::Failed {
        context: context(ctx.op, ctx.link.as_deref(), ctx.what.clone()),
        failure,
    }
}

fn kernel_said(errno: Errno) -> Failure {
    Failure {
        source: os_error(errno),
        kernel_message: None,
        broken: false,
    }
}

/// Name, MTU and MAC: what a new link and a veth peer are created with.
fn new_link_attributes(name: &str, mtu: Option<u32>, mac: Option<MacAddr>) -> Vec<LinkAttribute> {
    let mut attributes = vec![LinkAttribute::IfName(name.to_owned())];
    if let Some(mtu) = mtu {
        attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = mac {
        attributes.push(LinkAttribute::Address(mac.octets().to_vec()));
    }
    attributes
}

/// A link message that names its link (ifindex 0: the kernel looks the name up).
fn by_name(name: &str) -> LinkMessage {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName(name.to_owned()));
    message
}

fn parse_link(message: LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        kind: LinkKind::Device,
        mac: None,
        mtu: 0,
        up: message.header.flags.contains(LinkFlags::Up),
        master: None,
        alias: None,
        peer: None,
    };
    let mut lower = None;
    let mut other_namespace = false;
    for attribute in message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name,
            LinkAttribute::Mtu(mtu) => link.mtu = mtu,
            LinkAttribute::Address(bytes) => {
                link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr);
            }
            LinkAttribute::Controller(index) if index != 0 => link.master = Some(index),
            LinkAttribute::IfAlias(alias) if !alias.is_empty() => link.alias = Some(alias),
            LinkAttribute::Link(index) => lower = Some(index),
            LinkAttribute::LinkNetNsId(_) => other_namespace = true,
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = match kind {
                            InfoKind::Bridge => LinkKind::Bridge,
                            InfoKind::Veth => LinkKind::Veth,
                            other => LinkKind::Other(other.to_string()),
                        };
                    }
                }
            }
            _ => {}
        }
    }
    if link.kind == LinkKind::Veth {
        link.peer = lower.map(|index| VethPeer {
            index,
            other_namespace,
        });
    }
    link
}

fn dump_links(conn: &mut Conn) -> Result<Vec<Link>, ConnError> {
    let ctx = context(NetlinkOp::ListLinks, None, "list links".to_owned());
    let replies = conn
        .dump(&RouteNetlinkMessage::GetLink(LinkMessage::default()))
        .map_err(failed(&ctx))?;
    let mut links: Vec<Link> = replies
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewLink(message) => Some(parse_link(message)),
            _ => None,
        })
        .collect();
    links.sort_by_key(|link| link.index);
    Ok(links)
}

/// Every address of the namespace; `names` gives their links' names.
fn dump_addrs(conn: &mut Conn, names: &HashMap<u32, String>) -> Result<Vec<Addr>, ConnError> {
    let ctx = context(NetlinkOp::ListAddrs, None, "list addresses".to_owned());
    let replies = conn
        .dump(&RouteNetlinkMessage::GetAddress(AddressMessage::default()))
        .map_err(failed(&ctx))?;
    Ok(replies
        .iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewAddress(message) => parse_addr(message, names),
            _ => None,
        })
        .collect())
}

fn link_names(conn: &mut Conn) -> Result<HashMap<u32, String>, ConnError> {
    Ok(dump_links(conn)?
        .into_iter()
        .map(|link| (link.index, link.name))
        .collect())
}

fn get_link(conn: &mut Conn, name: &str) -> Result<Option<Link>, ConnError> {
    if !valid_ifname(name) {
        return Ok(None);
    }
    let ctx = context(
        NetlinkOp::GetLink,
        Some(name),
        format!("look up link {name}"),
    );
    match conn.request(RouteNetlinkMessage::GetLink(by_name(name)), 0) {
        Ok(replies) => Ok(replies.into_iter().find_map(|reply| match reply {
            RouteNetlinkMessage::NewLink(message) => Some(parse_link(message)),
            _ => None,
        })),
        Err(failure) if failure.errno() == Some(libc::ENODEV) => Ok(None),
        Err(failure) => Err(failed(&ctx)(failure)),
    }
}

/// Bridge port options (IFLA_INFO_SLAVE_DATA), which RTM_SETLINK does not take: sent as an
/// RTM_NEWLINK without NLM_F_CREATE, as `ip link set DEV type bridge_slave ...` does.
fn set_bridge_port(
    conn: &mut Conn,
    index: u32,
    change: &LinkChange,
    ctx: &OpContext,
) -> Result<(), ConnError> {
    let Some(hairpin) = change.hairpin else {
        return Ok(());
    };
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::PortKind(InfoPortKind::Bridge),
        LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
            hairpin,
        )])),
    ]));
    conn.request(RouteNetlinkMessage::NewLink(message), 0)
        .map_err(failed(ctx))?;
    Ok(())
}

/// The index of link `name`, or `None`. In netctl's own namespace the kernel is asked the
/// cheap way (`SIOCGIFINDEX`, a hash lookup by name): `RTM_GETLINK` describes the whole link,
/// and describing a veth makes the kernel search its namespace-id table for the peer's
/// namespace, a cost that grows with the number of container namespaces. In a container's
/// namespace (a handful of links) `RTM_GETLINK` is as cheap.
fn index_of(conn: &mut Conn, name: &str) -> Result<Option<u32>, ConnError> {
    if !valid_ifname(name) {
        return Ok(None);
    }
    // An ioctl on the namespace's own socket: no netlink round trip, no rtnl lock.
    conn.name_to_index(name).map_err(|source| {
        failed(&context(
            NetlinkOp::GetLink,
            Some(name),
            format!("look up link {name}"),
        ))(Failure {
            source,
            kernel_message: None,
            broken: false,
        })
    })
}

/// The index of link `name`, or an `ENODEV` error about `ctx`.
fn require_index(conn: &mut Conn, name: &str, ctx: &OpContext) -> Result<u32, ConnError> {
    index_of(conn, name)?.ok_or_else(|| failed(ctx)(kernel_said(Errno::ENODEV)))
}

/// Sets the alias of a link just created; deletes the link again when that fails, so creating
/// a link with an alias is all or nothing. (The kernel ignores `IFLA_IFALIAS` on creation.)
fn set_alias_or_undo(
    conn: &mut Conn,
    name: &str,
    alias: Option<&str>,
    ctx: &OpContext,
) -> Result<(), ConnError> {
    let Some(alias) = alias else {
        return Ok(());
    };
    let mut message = by_name(name);
    message
        .attributes
        .push(LinkAttribute::IfAlias(alias.to_owned()));
    if let Err(failure) = conn.request(RouteNetlinkMessage::SetLink(message), 0) {
        let _ = conn.request(RouteNetlinkMessage::DelLink(by_name(name)), 0);
        return Err(failed(ctx)(failure));
    }
    Ok(())
}

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn address_message(index: u32, net: IpNet, adding: bool) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.family = family_of(net.addr());
    message.header.prefix_len = net.prefix_len();
    message.header.index = index;
    match net {
        IpNet::V4(v4) => {
            let ip = v4.addr();
            message.header.scope = if ip.is_loopback() {
                AddressScope::Host
            } else {
                AddressScope::Universe
            };
            message.attributes.push(AddressAttribute::Local(ip.into()));
            message
                .attributes
                .push(AddressAttribute::Address(ip.into()));
            // Like `ip addr add ... brd +`, which podman's addresses also get.
            if adding && v4.prefix_len() < 31 {
                message
                    .attributes
                    .push(AddressAttribute::Broadcast(v4.broadcast()));
            }
        }
        IpNet::V6(v6) => {
            let ip = v6.addr();
            message.header.scope = if ip.is_loopback() {
                AddressScope::Host
            } else if ip.is_unicast_link_local() {
                AddressScope::Link
            } else {
                AddressScope::Universe
            };
            message
                .attributes
                .push(AddressAttribute::Address(ip.into()));
            if adding {
                // No duplicate address detection: usable at once, never "tentative".
                message.header.flags = AddressHeaderFlags::Nodad;
                message
                    .attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
        }
    }
    message
}

/// Address dump requests, one per family, for link `index` (0: every link) of the socket's
/// namespace or of the one the host knows by `nsid`. One per family because the kernel reads
/// IPv4 and IPv6 addresses under RCU, but an all-families dump goes through a generic handler
/// that takes the rtnl lock, which parallel observers (and the kernel's own work) queue on.
/// The filters only apply with strict checking on.
pub(super) fn addr_dumps(index: u32, nsid: Option<i32>) -> [RouteNetlinkMessage; 2] {
    [AddressFamily::Inet, AddressFamily::Inet6].map(|family| {
        let mut request = AddressMessage::default();
        request.header.family = family;
        request.header.index = index;
        request
            .attributes
            .extend(nsid.map(AddressAttribute::TargetNetNsId));
        RouteNetlinkMessage::GetAddress(request)
    })
}

/// The address (with its prefix) an address message describes.
pub(super) fn addr_net(message: &AddressMessage) -> Option<IpNet> {
    let mut local = None;
    let mut address = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    // IPv4 point-to-point links carry the peer in IFA_ADDRESS; IFA_LOCAL is ours.
    let ip = local.or(address)?;
    IpNet::new(ip, message.header.prefix_len).ok()
}

fn parse_addr(message: &AddressMessage, names: &HashMap<u32, String>) -> Option<Addr> {
    let net = addr_net(message)?;
    Some(Addr {
        link_index: message.header.index,
        link_name: names
            .get(&message.header.index)
            .cloned()
            .unwrap_or_default(),
        net,
    })
}

fn route_address(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

fn parse_route(message: &RouteMessage, names: &HashMap<u32, String>) -> Option<Route> {
    let header = &message.header;
    let kind = match header.kind {
        RouteType::Unicast => RouteKind::Unicast,
        RouteType::BlackHole => RouteKind::Blackhole,
        RouteType::Unreachable => RouteKind::Unreachable,
        RouteType::Prohibit => RouteKind::Prohibit,
        _ => return None,
    };
    if header.flags.contains(RouteFlags::Cloned) {
        return None;
    }
    let unspecified: IpAddr = match header.address_family {
        AddressFamily::Inet => std::net::Ipv4Addr::UNSPECIFIED.into(),
        AddressFamily::Inet6 => std::net::Ipv6Addr::UNSPECIFIED.into(),
        _ => return None,
    };
    let mut table = u32::from(header.table);
    let mut dst = unspecified;
    let mut gateway = None;
    let mut dev = None;
    let mut metric = 0;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Table(id) => table = *id,
            RouteAttribute::Destination(address) => dst = route_address(address)?,
            RouteAttribute::Gateway(address) => gateway = route_address(address),
            RouteAttribute::Oif(index) => dev = names.get(index).cloned(),
            RouteAttribute::Priority(priority) => metric = *priority,
            _ => {}
        }
    }
    if table != MAIN_TABLE {
        return None;
    }
    Some(Route {
        dst: IpNet::new(dst, header.destination_prefix_length).ok()?,
        gateway,
        dev,
        metric,
        table,
        proto: RouteProto::from_number(header.protocol.into()),
        kind,
    })
}

fn route_message(route: &Route, oif: Option<u32>, adding: bool) -> RouteMessage {
    let mut message = RouteMessage::default();
    let header = &mut message.header;
    header.address_family = family_of(route.dst.addr());
    header.destination_prefix_length = route.dst.prefix_len();
    if let Ok(table) = u8::try_from(route.table) {
        header.table = table;
    } else {
        header.table = RouteHeader::RT_TABLE_UNSPEC;
        message.attributes.push(RouteAttribute::Table(route.table));
    }
    if adding {
        header.protocol = RouteProtocol::from(route.proto.number());
        header.scope = if route.gateway.is_some() || route.kind != RouteKind::Unicast {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        header.kind = match route.kind {
            RouteKind::Unicast => RouteType::Unicast,
            RouteKind::Blackhole => RouteType::BlackHole,
            RouteKind::Unreachable => RouteType::Unreachable,
            RouteKind::Prohibit => RouteType::Prohibit,
        };
    } else {
        // What `ip route del` sends: match any scope, protocol and type.
        header.scope = RouteScope::NoWhere;
    }
    if route.dst.prefix_len() > 0 {
        message
            .attributes
            .push(RouteAttribute::Destination(route.dst.addr().into()));
    }
    if let Some(gateway) = route.gateway {
        message
            .attributes
            .push(RouteAttribute::Gateway(gateway.into()));
    }
    if let Some(oif) = oif {
        message.attributes.push(RouteAttribute::Oif(oif));
    }
    if route.metric != 0 {
        message
            .attributes
            .push(RouteAttribute::Priority(route.metric));
    }
    message
}

impl LinuxSys {
    fn change_route(&self, ns: &NsRef, route: &Route, adding: bool) -> SysResult<()> {
        check_route(route, adding)?;
        let op = if adding {
            NetlinkOp::AddRoute
        } else {
            NetlinkOp::DelRoute
        };
        let ctx = context(op, route.dev.as_deref(), describe_route(adding, route));
        self.with_conn(ns, |conn| {
            let oif = match &route.dev {
                Some(dev) => Some(require_index(conn, dev, &ctx)?),
                None => None,
            };
            let message = route_message(route, oif, adding);
            let request = if adding {
                conn.request(
                    RouteNetlinkMessage::NewRoute(message),
                    NLM_F_CREATE | NLM_F_EXCL,
                )
            } else {
                conn.request(RouteNetlinkMessage::DelRoute(message), 0)
            };
            request.map_err(failed(&ctx))?;
            Ok(())
        })
    }

    fn change_addr(&self, ns: &NsRef, link: &str, net: IpNet, adding: bool) -> SysResult<()> {
        let op = if adding {
            NetlinkOp::AddAddr
        } else {
            NetlinkOp::DelAddr
        };
        let ctx = context(op, Some(link), describe_addr(adding, link, net));
        self.with_conn(ns, |conn| {
            let index = require_index(conn, link, &ctx)?;
            let message = address_message(index, net, adding);
            let request = if adding {
                conn.request(
                    RouteNetlinkMessage::NewAddress(message),
                    NLM_F_CREATE | NLM_F_EXCL,
                )
            } else {
                conn.request(RouteNetlinkMessage::DelAddress(message), 0)
            };
            request.map_err(failed(&ctx))?;
            Ok(())
        })
    }
}

impl Netlink for LinuxSys {
    fn prepare(&self, namespaces: &[NsRef]) {
        self.prepare_conns(namespaces);
    }

    fn peek_links(
        &self,
        queries: &[(NsRef, Vec<String>)],
    ) -> Vec<SysResult<Vec<Option<Vec<IpNet>>>>> {
        let peeked = super::peek::peek_links(queries);
        // Namespaces the host has no id for are asked from inside, which assigns none.
        let unnamed: Vec<NsRef> = peeked
            .iter()
            .zip(queries)
            .filter(|(answer, _)| answer.is_none())
            .map(|(_, (ns, _))| ns.clone())
            .collect();
        if !unnamed.is_empty() {
            self.prepare(&unnamed);
        }
        peeked
            .into_iter()
            .zip(queries)
            .map(|(answer, (ns, names))| {
                answer.unwrap_or_else(|| {
                    names
                        .iter()
                        .map(|name| match self.link_index(ns, name)? {
                            Some(index) => self.link_addrs(ns, index).map(Some),
                            None => Ok(None),
                        })
                        .collect()
                })
            })
            .collect()
    }

    fn links(&self, ns: &NsRef) -> SysResult<Vec<Link>> {
        self.with_conn(ns, dump_links)
    }

    fn link(&self, ns: &NsRef, name: &str) -> SysResult<Option<Link>> {
        self.with_conn(ns, |conn| get_link(conn, name))
    }

    fn add_bridge(&self, ns: &NsRef, spec: &BridgeSpec) -> SysResult<()> {
        check_ifname(&spec.name)?;
        check_alias(spec.alias.as_deref())?;
        let ctx = context(
            NetlinkOp::AddBridge,
            Some(&spec.name),
            format!("add bridge {}", spec.name),
        );
        self.with_conn(ns, |conn| {
            let mut message = LinkMessage::default();
            message.attributes = new_link_attributes(&spec.name, spec.mtu, spec.mac);
            message
                .attributes
                .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                    InfoKind::Bridge,
                )]));
            conn.request(
                RouteNetlinkMessage::NewLink(message),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .map_err(failed(&ctx))?;
            set_alias_or_undo(conn, &spec.name, spec.alias.as_deref(), &ctx)
        })
    }

    fn add_veth(&self, ns: &NsRef, spec: &VethSpec) -> SysResult<()> {
        check_ifname(&spec.name)?;
        check_ifname(&spec.peer_name)?;
        check_alias(spec.alias.as_deref())?;
        let same_ns = spec.peer_ns == *ns;
        let ctx = context(
            NetlinkOp::AddVeth,
            Some(&spec.name),
            describe_add_veth(ns, spec),
        );
        // Opened before the request and kept open until it is answered.
        let peer_ns_fd = if same_ns {
            None
        } else {
            Some(netns::open(&spec.peer_ns)?.netns_fd()?)
        };
        self.with_conn(ns, |conn| {
            let mut peer = LinkMessage::default();
            peer.attributes = new_link_attributes(&spec.peer_name, spec.mtu, spec.peer_mac);
            if let Some(fd) = &peer_ns_fd {
                peer.attributes.push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
            }
            let mut message = LinkMessage::default();
            message.attributes = new_link_attributes(&spec.name, spec.mtu, spec.mac);
            message.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ]));
            conn.request(
                RouteNetlinkMessage::NewLink(message),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .map_err(failed(&ctx))?;
            set_alias_or_undo(conn, &spec.name, spec.alias.as_deref(), &ctx)
        })
    }

    fn add_macvlan(&self, ns: &NsRef, spec: &MacvlanSpec) -> SysResult<()> {
        check_ifname(&spec.name)?;
        check_alias(spec.alias.as_deref())?;
        let ctx = context(
            NetlinkOp::AddMacvlan,
            Some(&spec.name),
            describe_add_macvlan(ns, spec),
        );
        // Opened before the request and kept open until it is answered.
        let link_ns_fd = if spec.link_ns == *ns {
            None
        } else {
            Some(netns::open(&spec.link_ns)?.netns_fd()?)
        };
        let mode = match spec.mode {
            netctl_types::MacvlanMode::Bridge => MacVlanMode::Bridge,
            netctl_types::MacvlanMode::Private => MacVlanMode::Private,
            netctl_types::MacvlanMode::Vepa => MacVlanMode::Vepa,
            netctl_types::MacvlanMode::Passthru => MacVlanMode::Passthrough,
        };
        self.with_conn(ns, |conn| {
            let parent = require_index(conn, &spec.parent, &ctx)?;
            let mut message = LinkMessage::default();
            message.attributes = new_link_attributes(&spec.name, spec.mtu, spec.mac);
            message.attributes.push(LinkAttribute::Link(parent));
            if let Some(fd) = &link_ns_fd {
                message
                    .attributes
                    .push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
            }
            message.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::MacVlan),
                LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(mode)])),
            ]));
            conn.request(
                RouteNetlinkMessage::NewLink(message),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .map_err(failed(&ctx))?;
            if link_ns_fd.is_none() {
                set_alias_or_undo(conn, &spec.name, spec.alias.as_deref(), &ctx)?;
            }
            Ok(())
        })
    }

    fn del_link(&self, ns: &NsRef, name: &str) -> SysResult<()> {
        let ctx = context(
            NetlinkOp::DelLink,
            Some(name),
            format!("delete link {name}"),
        );
        self.with_conn(ns, |conn| {
            if !valid_ifname(name) {
                return Err(failed(&ctx)(kernel_said(Errno::ENODEV)));
            }
            conn.request(RouteNetlinkMessage::DelLink(by_name(name)), 0)
                .map_err(failed(&ctx))?;
            Ok(())
        })
    }

    fn set_link(&self, ns: &NsRef, name: &str, change: &LinkChange) -> SysResult<()> {
        if let Some(new_name) = &change.new_name {
            check_ifname(new_name)?;
        }
        check_alias(change.alias.as_deref())?;
        let ctx = context(
            NetlinkOp::SetLink,
            Some(name),
            format!("change link {name} ({change})"),
        );
        self.with_conn(ns, |conn| {
            let index = require_index(conn, name, &ctx)?;
            if change.is_empty() {
                return Ok(());
            }
            let port_only = LinkChange {
                hairpin: None,
                ..change.clone()
            }
            .is_empty();
            if port_only {
                return set_bridge_port(conn, index, change, &ctx);
            }
            let mut message = LinkMessage::default();
            message.header.index = index;
            if let Some(up) = change.up {
                message.header.change_mask = LinkFlags::Up;
                if up {
                    message.header.flags = LinkFlags::Up;
                }
            }
            if let Some(mtu) = change.mtu {
                message.attributes.push(LinkAttribute::Mtu(mtu));
            }
            if let Some(mac) = change.mac {
                message
                    .attributes
                    .push(LinkAttribute::Address(mac.octets().to_vec()));
            }
            match &change.master {
                Some(Some(master)) => {
                    let master_ctx = context(
                        NetlinkOp::SetLink,
                        Some(master),
                        format!("change link {name} ({change}): no bridge {master}"),
                    );
                    let master = require_index(conn, master, &master_ctx)?;
                    message.attributes.push(LinkAttribute::Controller(master));
                }
                Some(None) => message.attributes.push(LinkAttribute::Controller(0)),
                None => {}
            }
            if let Some(alias) = &change.alias {
                message
                    .attributes
                    .push(LinkAttribute::IfAlias(alias.clone()));
            }
            if let Some(new_name) = &change.new_name {
                message
                    .attributes
                    .push(LinkAttribute::IfName(new_name.clone()));
            }
            conn.request(RouteNetlinkMessage::SetLink(message), 0)
                .map_err(failed(&ctx))?;
            set_bridge_port(conn, index, change, &ctx)
        })
    }

    fn set_ipv4_conf(&self, ns: &NsRef, link: &str, conf: &[(Ipv4Conf, u32)]) -> SysResult<()> {
        if let Some((key, _)) = conf.iter().find(|(_, value)| *value == 0) {
            return Err(crate::SysError::InvalidInput {
                what: "IPv4 interface setting",
                value: key.sysctl_name().to_owned(),
                reason: "netlink cannot set a zero; write the sysctl instead",
            });
        }
        let ctx = context(
            NetlinkOp::SetLink,
            Some(link),
            format!("set {} on {link}", describe_ipv4_conf(conf)),
        );
        let mut devconf = InetDevConf::default();
        for (key, value) in conf {
            let value = i32::try_from(*value).unwrap_or(i32::MAX);
            match key {
                Ipv4Conf::RpFilter => devconf.rp_filter = value,
                Ipv4Conf::ArpNotify => devconf.arp_notify = value,
                Ipv4Conf::RouteLocalnet => devconf.route_localnet = value,
            }
        }
        self.with_conn(ns, |conn| {
            let mut message = LinkMessage::default();
            message.header.index = require_index(conn, link, &ctx)?;
            message
                .attributes
                .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                    AfSpecInet::DevConfRequest(devconf),
                ])]));
            conn.request(RouteNetlinkMessage::SetLink(message), 0)
                .map_err(failed(&ctx))?;
            Ok(())
        })
    }

    fn addrs(&self, ns: &NsRef) -> SysResult<Vec<Addr>> {
        self.with_conn(ns, |conn| {
            let names = link_names(conn)?;
            dump_addrs(conn, &names)
        })
    }

    fn links_and_addrs(&self, ns: &NsRef) -> SysResult<(Vec<Link>, Vec<Addr>)> {
        self.with_conn(ns, |conn| {
            let links = dump_links(conn)?;
            let names = links
                .iter()
                .map(|link| (link.index, link.name.clone()))
                .collect();
            let addrs = dump_addrs(conn, &names)?;
            Ok((links, addrs))
        })
    }

    fn link_index(&self, ns: &NsRef, name: &str) -> SysResult<Option<u32>> {
        self.with_conn(ns, |conn| index_of(conn, name))
    }

    fn link_addrs(&self, ns: &NsRef, index: u32) -> SysResult<Vec<IpNet>> {
        let ctx = context(
            NetlinkOp::ListAddrs,
            None,
            format!("list addresses of link {index}"),
        );
        self.with_conn(ns, |conn| {
            let replies = conn
                .dump_filtered(&addr_dumps(index, None))
                .map_err(failed(&ctx))?;
            Ok(replies
                .iter()
                .filter_map(|reply| match reply {
                    // The filter is the kernel's; checked again in case it ignored it.
                    RouteNetlinkMessage::NewAddress(message) if message.header.index == index => {
                        addr_net(message)
                    }
                    _ => None,
                })
                .collect())
        })
    }

    fn add_addr(&self, ns: &NsRef, link: &str, net: IpNet) -> SysResult<()> {
        self.change_addr(ns, link, net, true)
    }

    fn del_addr(&self, ns: &NsRef, link: &str, net: IpNet) -> SysResult<()> {
        self.change_addr(ns, link, net, false)
    }

    fn routes(&self, ns: &NsRef) -> SysResult<Vec<Route>> {
        let ctx = context(NetlinkOp::ListRoutes, None, "list routes".to_owned());
        self.with_conn(ns, |conn| {
            let names = link_names(conn)?;
            let replies = conn
                .dump(&RouteNetlinkMessage::GetRoute(RouteMessage::default()))
                .map_err(failed(&ctx))?;
            Ok(replies
                .iter()
                .filter_map(|reply| match reply {
                    RouteNetlinkMessage::NewRoute(message) => parse_route(message, &names),
                    _ => None,
                })
                .collect())
        })
    }

    fn add_route(&self, ns: &NsRef, route: &Route) -> SysResult<()> {
        self.change_route(ns, route, true)
    }

    fn del_route(&self, ns: &NsRef, route: &Route) -> SysResult<()> {
        self.change_route(ns, route, false)
    }
}

//! Looking into other namespaces from the host, without entering them.
//!
//! rtnetlink answers a `GET` about another namespace when the request names it by its
//! namespace id (`IFLA_TARGET_NETNSID`, `IFA_TARGET_NETNSID`): the id the host knows that
//! namespace by (`RTM_GETNSID` on its file). The kernel gives a namespace an id as soon as a
//! veth joins it to the host, so every bridge container has one. Observing a thousand
//! containers then needs neither a socket in each (a thread entering it, a socket bound there,
//! closed again at exit) nor any per-namespace state: a handful of host sockets, one per worker
//! thread, ask everything. A namespace without an id (pasta, slirp4netns) is left to the
//! caller, which asks from inside: reading never assigns one, so looking changes nothing.
//!
//! Only reading works this way; changes still go through a socket inside the namespace.

use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::path::Path;

use ipnet::IpNet;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};

use super::rtnl::{Conn, Failure};
use crate::{NamespaceOp, NetlinkOp, NsRef, SysError, SysResult};

/// `NETNSA_NSID_NOT_ASSIGNED`.
const NOT_ASSIGNED: i32 = -1;

/// What [`crate::Netlink::peek_links`] returns for one namespace.
pub(crate) type Peeked = SysResult<Vec<Option<Vec<IpNet>>>>;

/// Answers `queries` in order, spread over a few threads with a host socket each; `None` for
/// a namespace the host has no id for (to be asked from inside). Must be called from a thread
/// in the host namespace (every thread of netctl's except its helpers).
pub(crate) fn peek_links(queries: &[(NsRef, Vec<String>)]) -> Vec<Option<Peeked>> {
    crate::par::map_chunks(queries, |chunk| {
        let conn = Conn::open().and_then(|mut conn| {
            conn.set_strict(true)?;
            Ok(conn)
        });
        match conn {
            Ok(mut conn) => chunk
                .iter()
                .map(|(ns, names)| peek_one(&mut conn, ns, names))
                .collect(),
            Err(e) => chunk
                .iter()
                .map(|(ns, _)| {
                    Some(Err(SysError::netlink(
                        NetlinkOp::OpenSocket,
                        None,
                        NetlinkOp::OpenSocket.to_string(),
                        ns,
                        copy_error(&e),
                    )))
                })
                .collect(),
        }
    })
}

fn copy_error(e: &std::io::Error) -> std::io::Error {
    e.raw_os_error().map_or_else(
        || std::io::Error::other(e.to_string()),
        std::io::Error::from_raw_os_error,
    )
}

/// One namespace: for each name, the link's addresses, or `None` when it has no such link.
/// `None` altogether when the host has no id for the namespace.
fn peek_one(conn: &mut Conn, ns: &NsRef, names: &[String]) -> Option<Peeked> {
    let nsid = match ns {
        NsRef::Host => None,
        NsRef::Path(path) => match nsid_of(conn, path) {
            Ok(Some(id)) => Some(id),
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        },
    };
    Some(peek_in(conn, ns, nsid, names))
}

fn peek_in(conn: &mut Conn, ns: &NsRef, nsid: Option<i32>, names: &[String]) -> Peeked {
    let failed = |op: NetlinkOp, link: Option<&str>, what: String| {
        let link = link.map(str::to_owned);
        move |failure: Failure| SysError::Netlink {
            op,
            link,
            what,
            ns: ns.clone(),
            kernel_message: failure.kernel_message,
            source: failure.source,
        }
    };
    // Every address of the namespace, one dump per family. An IPv4 address carries its link's
    // name (its label, which the kernel renames with the link), so a link with one is found
    // without a link lookup: describing a link to a host socket makes the kernel search the
    // host's namespace ids one by one, a cost that grows with the number of containers.
    let all = addrs(conn, nsid).map_err(failed(
        NetlinkOp::ListAddrs,
        None,
        "list addresses".to_owned(),
    ))?;
    names
        .iter()
        .map(|name| {
            let index = match all
                .iter()
                .find(|a| a.label.as_deref() == Some(name.as_str()))
            {
                Some(addr) => Some(addr.index),
                None => link_index(conn, nsid, name).map_err(failed(
                    NetlinkOp::GetLink,
                    Some(name),
                    format!("look up link {name}"),
                ))?,
            };
            Ok(index.map(|index| {
                all.iter()
                    .filter(|a| a.index == index)
                    .map(|a| a.net)
                    .collect()
            }))
        })
        .collect()
}

/// The id the host knows the namespace at `path` by, `None` if it has none. A missing file
/// fails with `ENOENT`, a file that is not a network namespace with `EINVAL` (as entering it
/// would).
fn nsid_of(conn: &mut Conn, path: &Path) -> SysResult<Option<i32>> {
    let file = File::open(path).map_err(|e| SysError::namespace(NamespaceOp::Open, path, e))?;
    let fd = u32::try_from(file.as_raw_fd()).expect("descriptors are not negative");
    let id = get_nsid(conn, fd)
        .map_err(|failure| SysError::namespace(NamespaceOp::Inspect, path, failure.source))?;
    Ok((id != NOT_ASSIGNED).then_some(id))
}

pub(super) fn get_nsid(conn: &mut Conn, fd: u32) -> Result<i32, Failure> {
    let mut request = NsidMessage::default();
    request.attributes = vec![NsidAttribute::Fd(fd)];
    let replies = conn.request(RouteNetlinkMessage::GetNsId(request), 0)?;
    Ok(replies
        .iter()
        .find_map(|reply| match reply {
            RouteNetlinkMessage::NewNsId(message) => {
                message.attributes.iter().find_map(|a| match a {
                    NsidAttribute::Id(id) => Some(*id),
                    _ => None,
                })
            }
            _ => None,
        })
        .unwrap_or(NOT_ASSIGNED))
}

fn link_index(conn: &mut Conn, nsid: Option<i32>, name: &str) -> Result<Option<u32>, Failure> {
    let mut request = LinkMessage::default();
    request
        .attributes
        .extend(nsid.map(LinkAttribute::IfNetnsId));
    request
        .attributes
        .push(LinkAttribute::IfName(name.to_owned()));
    match conn.request(RouteNetlinkMessage::GetLink(request), 0) {
        Ok(replies) => Ok(replies.iter().find_map(|reply| match reply {
            RouteNetlinkMessage::NewLink(message) => Some(message.header.index),
            _ => None,
        })),
        Err(failure) if failure.errno() == Some(libc::ENODEV) => Ok(None),
        Err(failure) => Err(failure),
    }
}

/// An address as dumped: its link's index, its label (IPv4 only) and the address.
struct Dumped {
    index: u32,
    label: Option<String>,
    net: IpNet,
}

/// Every address of the namespace, IPv4 first (see `netlink::addr_dumps`).
fn addrs(conn: &mut Conn, nsid: Option<i32>) -> Result<Vec<Dumped>, Failure> {
    let mut out = Vec::new();
    for request in super::netlink::addr_dumps(0, nsid) {
        for reply in conn.dump(&request)? {
            if let RouteNetlinkMessage::NewAddress(message) = reply
                && let Some(net) = super::netlink::addr_net(&message)
            {
                let label = message.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Label(label) => Some(label.clone()),
                    _ => None,
                });
                out.push(Dumped {
                    index: message.header.index,
                    label,
                    net,
                });
            }
        }
    }
    Ok(out)
}

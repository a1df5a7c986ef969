//! Read-only questions to nf_tables over `NETLINK_NETFILTER`, asked from the process itself.
//!
//! `nft` is still what changes the ruleset (its JSON batches are atomic transactions), but a
//! health check does not need a forked `nft` that first fetches its whole cache, set elements
//! included: with thousands of published ports that alone costs a hundred milliseconds. The
//! kernel answers "which rules does table T hold" directly, filtered by table.
//!
//! The messages are small and fixed, so they are written by hand: a netlink header, nf_tables'
//! `struct nfgenmsg`, and one string attribute.

use std::io;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkBuffer};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use crate::NftFamily;

/// `NFNL_SUBSYS_NFTABLES`, the high byte of every nf_tables message type.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_NEWRULE` / `NFT_MSG_GETRULE`.
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
/// `NFTA_RULE_TABLE`: the table a rule dump is restricted to.
const NFTA_RULE_TABLE: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
/// How often a dump the kernel marks as interrupted (the ruleset changed meanwhile) is retried.
const DUMP_ATTEMPTS: usize = 5;

/// The `NFPROTO_*` number of a family.
fn nfproto(family: NftFamily) -> u8 {
    match family {
        NftFamily::Inet => 1,
        NftFamily::Ip => 2,
        NftFamily::Arp => 3,
        NftFamily::Netdev => 5,
        NftFamily::Bridge => 7,
        NftFamily::Ip6 => 10,
    }
}

/// A `GETRULE` dump request for the rules of `table` in `family`.
fn rule_dump_request(family: NftFamily, table: &str, seq: u32) -> Vec<u8> {
    let mut name = table.as_bytes().to_vec();
    name.push(0);
    let attr_len = 4 + name.len();
    let len = NLMSG_HDRLEN + 4 + attr_len.next_multiple_of(4);
    let mut buf = Vec::with_capacity(len);
    buf.extend_from_slice(&u32::try_from(len).expect("short message").to_ne_bytes());
    buf.extend_from_slice(&(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETRULE).to_ne_bytes());
    buf.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    // struct nfgenmsg: family, version (NFNETLINK_V0), resource id (big endian).
    buf.extend_from_slice(&[nfproto(family), 0, 0, 0]);
    buf.extend_from_slice(&u16::try_from(attr_len).expect("short name").to_ne_bytes());
    buf.extend_from_slice(&NFTA_RULE_TABLE.to_ne_bytes());
    buf.extend_from_slice(&name);
    buf.resize(len, 0);
    buf
}

/// What one dump said.
enum Dump {
    Rules(usize),
    Interrupted,
}

/// The number of rules in `family` table `table` (0 when there is no such table).
pub(crate) fn rule_count(family: NftFamily, table: &str) -> io::Result<usize> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    for attempt in 1..=DUMP_ATTEMPTS {
        let seq = u32::try_from(attempt).expect("few attempts");
        socket.send(&rule_dump_request(family, table, seq), 0)?;
        if let Dump::Rules(count) = read_dump(&mut socket, seq)? {
            return Ok(count);
        }
    }
    Err(io::Error::from_raw_os_error(libc::EINTR))
}

fn read_dump(socket: &mut Socket, seq: u32) -> io::Result<Dump> {
    let invalid = |e| io::Error::new(io::ErrorKind::InvalidData, e);
    let mut rules = 0;
    let mut interrupted = false;
    loop {
        let (datagram, _) = socket.recv_from_full()?;
        let mut offset = 0;
        while offset < datagram.len() {
            let message = NetlinkBuffer::new_checked(&datagram[offset..]).map_err(invalid)?;
            let length = message.length() as usize;
            offset += length.next_multiple_of(4);
            if message.sequence_number() != seq {
                continue;
            }
            interrupted |= message.flags() & NLM_F_DUMP_INTR != 0;
            match message.message_type() {
                NLMSG_DONE => {
                    return Ok(if interrupted {
                        Dump::Interrupted
                    } else {
                        Dump::Rules(rules)
                    });
                }
                NLMSG_ERROR => {
                    let payload = message.payload();
                    let code = payload
                        .get(..4)
                        .map(|b| i32::from_ne_bytes(b.try_into().expect("four bytes")))
                        .ok_or_else(|| invalid("short netlink error message".into()))?;
                    if code < 0 {
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                }
                t if t == NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWRULE => rules += 1,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_dump_request_layout() {
        let buf = rule_dump_request(NftFamily::Inet, "netctl", 7);
        // header 16 + nfgenmsg 4 + attribute 4 + "netctl\0" (7) padded to 8
        assert_eq!(buf.len(), 32);
        assert_eq!(u32::from_ne_bytes(buf[..4].try_into().unwrap()), 32);
        assert_eq!(u16::from_ne_bytes(buf[4..6].try_into().unwrap()), 0x0a07);
        assert_eq!(u32::from_ne_bytes(buf[8..12].try_into().unwrap()), 7);
        assert_eq!(&buf[16..20], &[1, 0, 0, 0]);
        assert_eq!(u16::from_ne_bytes(buf[20..22].try_into().unwrap()), 11);
        assert_eq!(u16::from_ne_bytes(buf[22..24].try_into().unwrap()), 1);
        assert_eq!(&buf[24..31], b"netctl\0");
    }
}

//! nf_tables over `NETLINK_NETFILTER`, from the process itself: read-only questions, and
//! batches of set-element changes.
//!
//! `nft` is still what builds and replaces the ruleset (its JSON batches are atomic
//! transactions), but a health check does not need a forked `nft` that first fetches its whole
//! cache, set elements included (with thousands of published ports that alone costs a hundred
//! milliseconds), and a container's port forwards are a few set elements whose bytes the
//! firewall already computed: sending them as one nfnetlink batch (begin, `NEWSETELEM` /
//! `DELSETELEM` per set, end) is one transaction like nft's, without a process.
//!
//! The messages are small and regular, so they are written by hand: a netlink header,
//! nf_tables' `struct nfgenmsg`, and attributes.

use std::io;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkBuffer};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use netctl_types::nft::ElementBatch;
#[cfg(test)]
use netctl_types::nft::{SetElement, SetElements};

use crate::NftFamily;

/// `NFNL_SUBSYS_NFTABLES`, the high byte of every nf_tables message type.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_NEWRULE` / `NFT_MSG_GETRULE`.
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
/// `NFT_MSG_NEWSETELEM` / `NFT_MSG_DELSETELEM`.
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
/// `NFNL_MSG_BATCH_BEGIN` / `_END`: the transaction's brackets.
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
/// `NFTA_SET_ELEM_LIST_*`, `NFTA_LIST_ELEM`, `NFTA_SET_ELEM_*`, `NFTA_DATA_VALUE`.
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
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

/// A netlink message under construction: header, `nfgenmsg`, attributes.
struct Message {
    buf: Vec<u8>,
    /// Offsets of nested attributes still open.
    open: Vec<usize>,
}

impl Message {
    fn new(message_type: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> Message {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `finish`
        buf.extend_from_slice(&message_type.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&[family, 0]);
        buf.extend_from_slice(&res_id.to_be_bytes());
        Message {
            buf,
            open: Vec::new(),
        }
    }

    fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.buf
            .extend_from_slice(&u16::try_from(len).expect("short attribute").to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.buf.resize(self.buf.len().next_multiple_of(4), 0);
    }

    fn string(&mut self, kind: u16, value: &str) {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        self.attr(kind, &bytes);
    }

    fn begin_nested(&mut self, kind: u16) {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    fn end_nested(&mut self) {
        let start = self.open.pop().expect("a nested attribute is open");
        let len = u16::try_from(self.buf.len() - start).expect("short nested attribute");
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        assert!(self.open.is_empty(), "nested attributes left open");
        let len = u32::try_from(self.buf.len()).expect("short message");
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// The whole batch as one buffer: begin, one message per set, end. Messages are numbered from
/// `seq`; each asks for an acknowledgement, so every failure is reported by its own number.
fn element_batch(batch: &ElementBatch, seq: u32) -> Vec<u8> {
    let res_id = NFNL_SUBSYS_NFTABLES;
    let mut out = Message::new(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 0, res_id).finish();
    for (i, op) in batch.ops.iter().enumerate() {
        let (kind, flags) = if op.delete {
            (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK)
        } else {
            (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)
        };
        let number = seq + 1 + u32::try_from(i).expect("few sets");
        let mut m = Message::new(
            NFNL_SUBSYS_NFTABLES << 8 | kind,
            flags,
            number,
            batch.family,
            0,
        );
        m.string(NFTA_SET_ELEM_LIST_TABLE, &batch.table);
        m.string(NFTA_SET_ELEM_LIST_SET, &op.set);
        m.begin_nested(NFTA_SET_ELEM_LIST_ELEMENTS);
        for element in &op.elements {
            m.begin_nested(NFTA_LIST_ELEM);
            m.begin_nested(NFTA_SET_ELEM_KEY);
            m.attr(NFTA_DATA_VALUE, &element.key);
            m.end_nested();
            if let Some(data) = &element.data {
                m.begin_nested(NFTA_SET_ELEM_DATA);
                m.attr(NFTA_DATA_VALUE, data);
                m.end_nested();
            }
            m.end_nested();
        }
        m.end_nested();
        out.extend(m.finish());
    }
    let end = seq + 1 + u32::try_from(batch.ops.len()).expect("few sets");
    out.extend(Message::new(NFNL_MSG_BATCH_END, NLM_F_REQUEST, end, 0, res_id).finish());
    out
}

/// Applies `batch` as one nf_tables transaction. The kernel handles a batch while it is being
/// sent, so every answer is queued when `send` returns: the acknowledgements are read without
/// waiting, and the first error (with the set it concerns) fails the call.
pub(crate) fn apply_elements(batch: &ElementBatch) -> io::Result<()> {
    if batch.ops.is_empty() {
        return Ok(());
    }
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let seq = 1;
    let buf = element_batch(batch, seq);
    let sent = socket.send(&buf, 0)?;
    if sent != buf.len() {
        return Err(io::Error::other("the element batch was sent in part"));
    }
    socket.set_non_blocking(true)?;
    let invalid = |e| io::Error::new(io::ErrorKind::InvalidData, e);
    let mut answered = 0;
    let mut failure: Option<io::Error> = None;
    while answered < batch.ops.len() {
        let datagram = match socket.recv_from_full() {
            Ok((datagram, _)) => datagram,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        };
        let mut offset = 0;
        while offset < datagram.len() {
            let message = NetlinkBuffer::new_checked(&datagram[offset..]).map_err(invalid)?;
            offset += (message.length() as usize).next_multiple_of(4);
            if message.message_type() != NLMSG_ERROR {
                continue;
            }
            answered += 1;
            let code = message
                .payload()
                .get(..4)
                .map(|b| i32::from_ne_bytes(b.try_into().expect("four bytes")))
                .ok_or_else(|| invalid("short netlink error message".into()))?;
            if code < 0 && failure.is_none() {
                let index = message.sequence_number().wrapping_sub(seq + 1) as usize;
                let set = batch.ops.get(index).map_or("?", |op| op.set.as_str());
                let e = io::Error::from_raw_os_error(-code);
                failure = Some(io::Error::new(e.kind(), format!("set {set}: {e}")));
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None if answered < batch.ops.len() => Err(io::Error::other(format!(
            "nf_tables acknowledged {answered} of {} element messages",
            batch.ops.len()
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The batch's bytes, as a readable dump: one line per message, attributes nested.
    #[test]
    fn element_batch_layout() {
        use std::fmt::Write as _;
        let batch = ElementBatch {
            family: 1,
            table: "netctl".into(),
            ops: vec![
                SetElements {
                    delete: false,
                    set: "dnat4_any_port".into(),
                    elements: vec![SetElement {
                        key: vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0],
                        data: Some(vec![0, 80]),
                    }],
                },
                SetElements {
                    delete: true,
                    set: "dnat4_any_port".into(),
                    elements: vec![SetElement {
                        key: vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0],
                        data: Some(vec![0, 80]),
                    }],
                },
            ],
            json: String::new(),
        };
        let buf = element_batch(&batch, 1);
        let mut lines = Vec::new();
        let mut offset = 0;
        while offset < buf.len() {
            let m = NetlinkBuffer::new_checked(&buf[offset..]).unwrap();
            let len = m.length() as usize;
            let mut line = format!(
                "type {:#06x} flags {:#06x} seq {} | ",
                m.message_type(),
                m.flags(),
                m.sequence_number(),
            );
            for b in &buf[offset + 16..offset + len] {
                let _ = write!(line, "{b:02x}");
            }
            lines.push(line);
            offset += len.next_multiple_of(4);
        }
        insta::assert_snapshot!(lines.join("\n"));
    }

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

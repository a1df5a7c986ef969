//! A thin synchronous rtnetlink client: one request, then read until its ack, error or (for
//! dumps) `NLMSG_DONE`.
//!
//! Invariants:
//! * Every request carries a fresh sequence number and replies are matched on it, so stray
//!   messages left over from an earlier request are skipped, never mistaken for an answer.
//! * Non-dump requests always ask for an ack (`NLM_F_ACK`), so success is confirmed, not
//!   assumed.
//! * A dump the kernel marks as interrupted (`NLM_F_DUMP_INTR`: the table changed while it was
//!   being read) is repeated, so callers never see a torn listing.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader,
    NetlinkMessage, NetlinkPayload, NlasIterator,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// `NLM_F_CAPPED` / `NLM_F_ACK_TLVS` on an error message (set by the kernel on acks).
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSGERR_ATTR_MSG`: the extended ack's human-readable message.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;
/// How often an interrupted dump is retried before giving up.
const DUMP_ATTEMPTS: usize = 5;
/// Receive buffer size. The kernel sizes dump datagrams to the reader's buffer but never above
/// 32 KiB, and netctl's other replies are small, so one read of this size takes a whole
/// datagram (instead of a peek for its size, then a read).
const RECV_BUFFER: usize = 64 * 1024;

std::thread_local! {
    /// One receive buffer per thread, shared by the sockets it uses (a thread talks to one
    /// socket at a time; there can be a socket per container, and a buffer each would cost
    /// 64 KiB per container).
    static RECV: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(RECV_BUFFER));
}

/// Why a request failed.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The kernel's errno, or a socket / decoding problem.
    pub(crate) source: io::Error,
    /// The extended-ack text, when the kernel sent one.
    pub(crate) kernel_message: Option<String>,
    /// The socket may be out of step (I/O or decode error): drop it rather than reuse it.
    pub(crate) broken: bool,
}

impl Failure {
    fn broken(source: io::Error) -> Self {
        Self {
            source,
            kernel_message: None,
            broken: true,
        }
    }

    /// The kernel's answer was this errno.
    pub(crate) fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// A `NETLINK_ROUTE` socket bound to the namespace it was opened in.
#[derive(Debug)]
pub(crate) struct Conn {
    socket: Socket,
    seq: u32,
}

impl Conn {
    /// Opens a socket in the calling thread's network namespace.
    pub(crate) fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Both are optional comfort: short acks, and the kernel's reason text with errors.
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_ext_ack(true);
        Ok(Self { socket, seq: 0 })
    }

    /// The index of link `name` in the socket's namespace (`SIOCGIFINDEX`, which the kernel
    /// answers from a hash table without the rtnl lock), or `None` when there is none.
    pub(crate) fn name_to_index(&self, name: &str) -> io::Result<Option<u32>> {
        match rustix::net::netdevice::name_to_index(&self.socket, name) {
            Ok(index) => Ok(Some(index)),
            Err(rustix::io::Errno::NODEV) => Ok(None),
            Err(errno) => Err(errno.into()),
        }
    }

    /// Sends a request that changes something (or gets one object) and waits for its ack.
    /// Returns the messages that came before the ack (the object for a `GET`).
    pub(crate) fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        self.exchange(message, flags | NLM_F_REQUEST | NLM_F_ACK)
    }

    /// Dumps a whole table.
    pub(crate) fn dump(
        &mut self,
        message: &RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        let mut last = None;
        for _ in 0..DUMP_ATTEMPTS {
            match self.exchange(message.clone(), NLM_F_REQUEST | NLM_F_DUMP) {
                Err(failure) if failure.errno() == Some(libc::EINTR) => last = Some(failure),
                other => return other,
            }
        }
        Err(last.expect("at least one dump attempt ran"))
    }

    /// Dumps with strict checking (`NETLINK_GET_STRICT_CHK`) on, so the kernel applies the
    /// filters in the requests' headers (an address dump for one link index, say) instead of
    /// returning everything. Only for these requests: the other dumps' headers are not written
    /// for strict checking. The replies of all requests, in order.
    pub(crate) fn dump_filtered(
        &mut self,
        messages: &[RouteNetlinkMessage],
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        self.set_strict(true).map_err(Failure::broken)?;
        let result = messages.iter().try_fold(Vec::new(), |mut all, message| {
            all.extend(self.dump(message)?);
            Ok(all)
        });
        self.set_strict(false).map_err(Failure::broken)?;
        result
    }

    /// Turns strict checking (`NETLINK_GET_STRICT_CHK`) on or off for every request after.
    pub(crate) fn set_strict(&mut self, on: bool) -> io::Result<()> {
        self.socket.set_netlink_get_strict_chk(on)
    }

    fn exchange(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(Failure::broken)?;

        RECV.with_borrow_mut(|buf| self.receive(buf, seq, flags & NLM_F_DUMP == NLM_F_DUMP))
    }

    /// Reads datagrams into `buf` until the answer to request `seq` is complete.
    fn receive(
        &self,
        buf: &mut Vec<u8>,
        seq: u32,
        dump: bool,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            buf.clear();
            buf.reserve(RECV_BUFFER);
            let length = self
                .socket
                .recv(buf, libc::MSG_TRUNC)
                .map_err(Failure::broken)?;
            if length > buf.len() {
                return Err(Failure::broken(io::Error::other(format!(
                    "netlink datagram of {length} bytes does not fit the {} byte buffer",
                    buf.len()
                ))));
            }
            let datagram = &buf[..];
            let mut offset = 0;
            while offset < datagram.len() {
                let bytes = &datagram[offset..];
                let length = NetlinkBuffer::new_checked(bytes)
                    .map_err(|e| Failure::broken(io::Error::new(io::ErrorKind::InvalidData, e)))?
                    .length() as usize;
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[..length])
                    .map_err(|e| Failure::broken(io::Error::new(io::ErrorKind::InvalidData, e)))?;
                offset += length.next_multiple_of(4);
                if reply.header.sequence_number != seq {
                    continue;
                }
                interrupted |= reply.header.flags & NLM_F_DUMP_INTR != 0;
                match reply.payload {
                    NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                    NetlinkPayload::Error(error) => {
                        return match error.code {
                            None => Ok(replies),
                            Some(code) => Err(Failure {
                                source: io::Error::from_raw_os_error(-code.get()),
                                kernel_message: extended_ack_message(
                                    reply.header.flags,
                                    &error.header,
                                ),
                                broken: false,
                            }),
                        };
                    }
                    NetlinkPayload::Done(done) if dump => {
                        return if done.code != 0 {
                            Err(Failure {
                                source: io::Error::from_raw_os_error(-done.code),
                                kernel_message: None,
                                broken: false,
                            })
                        } else if interrupted {
                            Err(Failure {
                                source: io::Error::from_raw_os_error(libc::EINTR),
                                kernel_message: None,
                                broken: false,
                            })
                        } else {
                            Ok(replies)
                        };
                    }
                    NetlinkPayload::Overrun(_) => {
                        return Err(Failure::broken(io::Error::other(
                            "netlink receive buffer overrun",
                        )));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Pulls the `NLMSGERR_ATTR_MSG` text out of an error message's payload (after the errno):
/// the original request header (whole request unless capped), then attributes.
fn extended_ack_message(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let request_len = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let len = u32::from_ne_bytes(payload.get(..4)?.try_into().ok()?) as usize;
        len.next_multiple_of(4)
    };
    for nla in NlasIterator::new(payload.get(request_len..)?) {
        let nla = nla.ok()?;
        if nla.kind() == NLMSGERR_ATTR_MSG {
            let text = String::from_utf8_lossy(nla.value());
            let text = text.trim_end_matches('\0').trim();
            return (!text.is_empty()).then(|| text.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_ack_text_is_found_after_a_capped_header() {
        let mut payload = vec![0u8; NLMSG_HDRLEN];
        let text = b"Nexthop has invalid gateway\0";
        let nla_len = 4 + text.len();
        payload.extend_from_slice(&(nla_len as u16).to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        payload.resize(payload.len().next_multiple_of(4), 0);
        assert_eq!(
            extended_ack_message(NLM_F_CAPPED | NLM_F_ACK_TLVS, &payload).as_deref(),
            Some("Nexthop has invalid gateway")
        );
        assert_eq!(extended_ack_message(NLM_F_CAPPED, &payload), None);
    }
}

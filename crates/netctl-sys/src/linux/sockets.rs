//! The host's listening sockets, from `/proc/net/{tcp,tcp6,udp,udp6}` (which show the network
//! namespace of the reading thread: netctl's own), and who holds one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::model::Listening;
use crate::{SysError, SysResult};

/// TCP's LISTEN state in `/proc/net/tcp`.
const TCP_LISTEN: &str = "0A";
/// UDP's "closed" state: a bound, unconnected socket, the kind that receives datagrams.
const UDP_UNCONNECTED: &str = "07";

pub(crate) fn listening(only: Option<&str>) -> SysResult<Vec<Listening>> {
    let mut out = Vec::new();
    for (file, protocol, state, v6) in [
        ("/proc/net/tcp", "tcp", TCP_LISTEN, false),
        ("/proc/net/tcp6", "tcp", TCP_LISTEN, true),
        ("/proc/net/udp", "udp", UDP_UNCONNECTED, false),
        ("/proc/net/udp6", "udp", UDP_UNCONNECTED, true),
    ] {
        if only.is_some_and(|p| p != protocol) {
            continue;
        }
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            // A kernel without IPv6 has no tcp6/udp6.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(SysError::Io {
                    what: format!("read {file}"),
                    source,
                });
            }
        };
        out.extend(parse_table(&text, protocol, state, v6));
    }
    Ok(out)
}

/// The sockets of one table in `state`.
fn parse_table(text: &str, protocol: &str, state: &str, v6: bool) -> Vec<Listening> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&state) {
                return None;
            }
            let addr = parse_addr(fields.get(1)?, v6)?;
            let inode = fields.get(9)?.parse().ok()?;
            Some(Listening {
                protocol: protocol.to_owned(),
                addr,
                inode,
            })
        })
        .collect()
}

/// `0100007F:1F90` (IPv4) or 32 hex digits (IPv6), each 32-bit word in the host's byte order.
fn parse_addr(text: &str, v6: bool) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let ip = if v6 {
        let mut bytes = [0u8; 16];
        for (i, word) in words.iter().enumerate().take(4) {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        IpAddr::V4(Ipv4Addr::from(words.first()?.to_ne_bytes()))
    };
    Some(SocketAddr::new(ip, port))
}

/// The process holding socket `inode`, as `pid N (command)`, found by looking through every
/// process's open files (only done to name a conflict).
pub(crate) fn socket_owner(inode: u64) -> Option<String> {
    let target = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str())
        });
        if holds {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            return Some(format!("pid {pid} ({})", comm.trim()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tables_parse() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 0100007F:2580 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0 100 0 0 10 0\n   \
            1: 0100007F:2581 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 12346 1 0 100 0 0 10 0\n";
        let got = parse_table(tcp, "tcp", TCP_LISTEN, false);
        assert_eq!(got.len(), 1, "only the listening one");
        assert_eq!(got[0].addr, "127.0.0.1:9600".parse().unwrap());
        assert_eq!(got[0].inode, 12345);
        let tcp6 = "  sl  local_address                         remote_address                        st\n   \
            0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1\n   \
            1: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 778 1\n";
        let got = parse_table(tcp6, "tcp", TCP_LISTEN, true);
        assert_eq!(got[0].addr, "[::]:8080".parse().unwrap());
        assert_eq!(got[1].addr, "[::1]:8081".parse().unwrap());
    }
}

/// One DNS question for `name` (recursion desired), with id `id`.
fn dns_question(id: u16, name: &str, ipv6: bool) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        // Names reaching here are validated DNS names: labels of at most 63 bytes.
        q.push(u8::try_from(label.len()).unwrap_or(63));
        q.extend(label.bytes().take(63));
    }
    let qtype: u16 = if ipv6 { 28 } else { 1 };
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

pub(crate) fn dns_answers(
    server: SocketAddr,
    name: &str,
    ipv6: bool,
    timeout: Duration,
) -> SysResult<bool> {
    let io = |what: &str| {
        let what = format!("{what} (DNS question to {server})");
        move |source| SysError::Io { what, source }
    };
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local).map_err(io("bind a UDP socket"))?;
    sock.connect(server).map_err(io("connect a UDP socket"))?;
    let started = Instant::now();
    let mut buf = [0u8; 512];
    for id in 1u16.. {
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        // A refused question (nothing bound this instant) fails the send or the receive; one
        // sent while aardvark-dns swaps its sockets on a reload is lost, so each question gets
        // a millisecond before the next one.
        if sock.send(&dns_question(id, name, ipv6)).is_ok() {
            sock.set_read_timeout(Some(left.min(Duration::from_millis(1))))
                .map_err(io("set a read timeout"))?;
            while let Ok(len) = sock.recv(&mut buf) {
                // A reply to this question (same id) with at least one answer record.
                if len >= 12 && buf[..2] == id.to_be_bytes() {
                    if u16::from_be_bytes([buf[6], buf[7]]) > 0 {
                        return Ok(true);
                    }
                    break;
                }
            }
        }
        std::thread::sleep(
            Duration::from_micros(200).min(timeout.saturating_sub(started.elapsed())),
        );
    }
    Ok(false)
}

#[cfg(test)]
mod dns_tests {
    use super::*;

    #[test]
    fn a_question_is_dns_wire_format() {
        assert_eq!(
            dns_question(0x1234, "web.dns.podman", false),
            [
                &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0][..],
                b"\x03web\x03dns\x06podman\x00",
                &[0, 1, 0, 1],
            ]
            .concat()
        );
        assert_eq!(dns_question(1, "x", true)[14..], [0, 0, 28, 0, 1]);
    }
}

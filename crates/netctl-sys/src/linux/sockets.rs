//! The host's listening sockets, from `/proc/net/{tcp,tcp6,udp,udp6}` (which show the network
//! namespace of the reading thread: netctl's own), and who holds one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::model::Listening;
use crate::{SysError, SysResult};

/// TCP's LISTEN state in `/proc/net/tcp`.
const TCP_LISTEN: &str = "0A";
/// UDP's "closed" state: a bound, unconnected socket, the kind that receives datagrams.
const UDP_UNCONNECTED: &str = "07";

pub(crate) fn listening() -> SysResult<Vec<Listening>> {
    let mut out = Vec::new();
    for (file, protocol, state, v6) in [
        ("/proc/net/tcp", "tcp", TCP_LISTEN, false),
        ("/proc/net/tcp6", "tcp", TCP_LISTEN, true),
        ("/proc/net/udp", "udp", UDP_UNCONNECTED, false),
        ("/proc/net/udp6", "udp", UDP_UNCONNECTED, true),
    ] {
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

//! The in-process floor: the floor's kernel work for one container sent as netlink and
//! nf_tables requests from the benchmark's own process, through netctl's kernel seam
//! (`netctl-sys`), with nothing else: no process started, no settings, no store, no planning,
//! no verification. It is what an attach would cost if a backend did nothing but the kernel
//! work, over the same sockets netctl uses; the forked floor (`ip` and `nft`) pays for three
//! processes on top.
//!
//! Each operation opens its sockets afresh (one `LinuxSys` per container), as a process per
//! container would.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use ipnet::{IpNet, Ipv4Net};
use netctl_sys::{LinkChange, LinuxSys, Netlink as _, Nft as _, NsRef, Route, VethSpec};
use netctl_types::nft::{ElementBatch, SetElement, SetElements};

use super::run::Measured;
use super::series::{BRIDGE, GATEWAY_IP, container_ip, container_port, host_port};

/// `NFPROTO_IPV4`: the floor's table is `table ip floor`.
const NFPROTO_IPV4: u8 = 2;

fn netns(i: usize) -> NsRef {
    NsRef::Path(PathBuf::from(format!("/run/netns/c{i}")))
}

/// A port as part of a concatenation: big-endian, padded to four bytes.
fn port_bytes(port: u16) -> [u8; 4] {
    let [hi, lo] = port.to_be_bytes();
    [hi, lo, 0, 0]
}

/// Container `i`'s forwards as elements of the floor's map `ports`
/// (`inet_service : ipv4_addr . inet_service`).
fn forwards(i: usize, ports: usize, delete: bool) -> ElementBatch {
    let elements = (0..ports)
        .map(|k| SetElement {
            // A lone key is as long as its type; only a concatenation's parts are padded.
            key: host_port(i, k, ports).to_be_bytes().to_vec(),
            data: (!delete).then(|| {
                let mut data = container_ip(i).octets().to_vec();
                data.extend_from_slice(&port_bytes(container_port(k)));
                data
            }),
        })
        .collect();
    ElementBatch {
        family: NFPROTO_IPV4,
        table: "floor".to_owned(),
        ops: vec![SetElements {
            delete,
            set: "ports".to_owned(),
            elements,
        }],
        json: String::new(),
    }
}

/// Attaches container `i` (its namespace exists): the veth with its peer made directly in the
/// namespace as `eth0`, enslaved and up; loopback up, the address, `eth0` up, the default
/// route; the forwards as one nf_tables batch.
pub fn attach(i: usize, ports: usize) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let sys = LinuxSys::new();
    let host = format!("vf{i}");
    sys.add_veth(
        &NsRef::Host,
        &VethSpec {
            name: host.clone(),
            mtu: None,
            mac: None,
            alias: None,
            peer_name: "eth0".to_owned(),
            peer_ns: netns(i),
            peer_mac: None,
        },
    )
    .with_context(|| format!("add veth {host}"))?;
    sys.set_link(
        &NsRef::Host,
        &host,
        &LinkChange {
            up: Some(true),
            master: Some(Some(BRIDGE.to_owned())),
            ..LinkChange::default()
        },
    )
    .with_context(|| format!("enslave {host}"))?;
    let ns = netns(i);
    sys.set_link(&ns, "lo", &LinkChange::up())
        .context("loopback up")?;
    let addr = Ipv4Net::new(container_ip(i), 16).expect("a /16 is a valid prefix");
    sys.add_addr(&ns, "eth0", IpNet::V4(addr))
        .context("container address")?;
    sys.set_link(&ns, "eth0", &LinkChange::up())
        .context("eth0 up")?;
    let mut default = Route::new(IpNet::V4(Ipv4Net::default()));
    default.gateway = Some(IpAddr::V4(GATEWAY_IP));
    sys.add_route(&ns, &default).context("default route")?;
    sys.nft_apply_elements(&forwards(i, ports, false))
        .context("add the forwards")?;
    Ok(Measured {
        elapsed: started.elapsed(),
        rss_kib: None,
    })
}

/// Detaches container `i`: the host end deleted (the container end, its address and route go
/// with it), the forwards' elements deleted in one batch.
pub fn detach(i: usize, ports: usize) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let sys = LinuxSys::new();
    sys.del_link(&NsRef::Host, &format!("vf{i}"))
        .with_context(|| format!("delete vf{i}"))?;
    sys.nft_apply_elements(&forwards(i, ports, true))
        .context("delete the forwards")?;
    Ok(Measured {
        elapsed: started.elapsed(),
        rss_kib: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_padded_big_endian() {
        let batch = forwards(1, 2, false);
        let first = &batch.ops[0].elements[0];
        assert_eq!(first.key, host_port(1, 0, 2).to_be_bytes());
        let data = first.data.as_ref().expect("a map element has data");
        assert_eq!(&data[..4], &container_ip(1).octets());
        let [hi, lo] = container_port(0).to_be_bytes();
        assert_eq!(&data[4..], &[hi, lo, 0, 0]);
        assert!(
            forwards(1, 2, true).ops[0]
                .elements
                .iter()
                .all(|e| e.data.is_none())
        );
    }
}

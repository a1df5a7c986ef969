//! Builders shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use netctl_state::{
    ContainerRecord, Isolate, LeaseRange, NetnsRecord, NetworkDriver, NetworkMode, NetworkRecord,
    Opaque, SubnetRecord, ip_to_u128, u128_to_ip,
};

/// A deterministic 64-hex ID from a number, so snapshots are stable; different numbers give
/// different short (12-character) IDs.
pub fn id(n: u64) -> String {
    format!("{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15)).repeat(4)
}

pub fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// A bridge network with the given subnets, gateway network+1 unless `gateway` says otherwise.
pub fn network(name: &str, subnets: &[&str]) -> NetworkRecord {
    NetworkRecord {
        name: name.to_owned(),
        id: id(name.bytes().map(u64::from).sum()),
        driver: NetworkDriver::Bridge,
        network_interface: format!("nc-{name}"),
        subnets: subnets.iter().map(|s| subnet(s)).collect(),
        ipv6: subnets.iter().any(|s| s.contains(':')),
        internal: false,
        dns_enabled: false,
        dns_servers: Vec::new(),
        mtu: None,
        isolate: Isolate::Off,
        labels: BTreeMap::new(),
        options: BTreeMap::new(),
        routes: Vec::new(),
        created: epoch(),
        project: None,
    }
}

/// A subnet with gateway network+1.
pub fn subnet(cidr: &str) -> SubnetRecord {
    let subnet: ipnet::IpNet = cidr.parse().unwrap();
    let v6 = matches!(subnet, ipnet::IpNet::V6(_));
    SubnetRecord {
        subnet,
        gateway: Some(u128_to_ip(ip_to_u128(subnet.network()) + 1, v6)),
        lease_range: None,
    }
}

pub fn with_lease_range(mut s: SubnetRecord, start: &str, end: &str) -> SubnetRecord {
    s.lease_range = Some(LeaseRange {
        start: Some(start.parse().unwrap()),
        end: Some(end.parse().unwrap()),
    });
    s
}

pub fn container(name: &str, n: u64) -> ContainerRecord {
    ContainerRecord {
        name: name.to_owned(),
        id: id(n),
        netns: NetnsRecord {
            path: format!("/run/netns/{name}").into(),
            managed: true,
        },
        mode: NetworkMode::Bridge,
        hostname: name.to_owned(),
        spec: Opaque::of(&serde_json::json!({ "networks": { "web": {} } })).unwrap(),
        ports: Opaque::null(),
        created: epoch(),
        project: None,
        boot_id: None,
    }
}

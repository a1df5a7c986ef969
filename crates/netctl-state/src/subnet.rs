//! Automatic choices for networks declared without them: an IPv4 subnet from podman's pools, a
//! random IPv6 ULA /64, a bridge name.
//!
//! These are pure functions: the caller passes what is recorded and what the host has (the
//! addresses on its interfaces, its link names), because this crate never talks to the kernel.
//! The caller records the result, so the choice is made once and stays the same on every apply.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rand::{Rng, RngExt};

use crate::error::SubnetError;

/// podman's `default_subnet_pools`, each carved into /24s and walked in this order.
pub const IPV4_POOLS: [(Ipv4Addr, u8); 5] = [
    (Ipv4Addr::new(10, 89, 0, 0), 16),
    (Ipv4Addr::new(10, 90, 0, 0), 15),
    (Ipv4Addr::new(10, 92, 0, 0), 14),
    (Ipv4Addr::new(10, 96, 0, 0), 11),
    (Ipv4Addr::new(10, 128, 0, 0), 9),
];

/// The prefix length each pool is carved into.
pub const POOL_SUBNET_PREFIX: u8 = 24;

/// How many random ULA prefixes are tried before giving up, as podman.
pub const ULA_TRIES: u32 = 10_000;

/// Whether two networks share any address: one contains the other's network address. This is
/// podman's test, and it is symmetric.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    let (a, b) = (a.trunc(), b.trunc());
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first /24 of the pools that overlaps neither a recorded subnet (`used`) nor the network of
/// an address on a host interface (`host_addrs`, e.g. `192.168.1.5/24`).
pub fn choose_ipv4_subnet(used: &[IpNet], host_addrs: &[IpNet]) -> Result<Ipv4Net, SubnetError> {
    let taken: Vec<IpNet> = used
        .iter()
        .chain(host_addrs)
        .filter(|n| matches!(n, IpNet::V4(_)))
        .map(IpNet::trunc)
        .collect();
    IPV4_POOLS
        .iter()
        .flat_map(|&(addr, prefix)| {
            let pool = Ipv4Net::new(addr, prefix).expect("pool prefixes are valid");
            pool.subnets(POOL_SUBNET_PREFIX)
                .expect("pools are no longer than their carve size")
        })
        .find(|candidate| {
            let candidate = IpNet::V4(*candidate);
            !taken.iter().any(|t| overlaps(&candidate, t))
        })
        .ok_or(SubnetError::PoolsExhausted)
}

/// A random unique local /64: `fd` followed by 7 random bytes, the rest zero, that overlaps no
/// subnet in `used`.
pub fn random_ula(used: &[IpNet], rng: &mut impl Rng) -> Result<Ipv6Net, SubnetError> {
    for _ in 0..ULA_TRIES {
        let random: [u8; 7] = rng.random();
        let mut octets = [0u8; 16];
        octets[0] = 0xfd;
        octets[1..8].copy_from_slice(&random);
        let candidate = Ipv6Net::new(Ipv6Addr::from(octets), 64).expect("64 is a valid prefix");
        let net = IpNet::V6(candidate);
        if !used.iter().any(|u| overlaps(&net, u)) {
            return Ok(candidate);
        }
    }
    Err(SubnetError::UlaExhausted { tries: ULA_TRIES })
}

/// The first `netctlN` (N from 0) that is neither a recorded bridge name nor an existing link.
pub fn choose_bridge_name(recorded: &[String], existing_links: &[String]) -> String {
    // n taken names leave one of netctl0..=netctln free
    (0..=recorded.len() + existing_links.len())
        .map(|n| format!("netctl{n}"))
        .find(|name| !recorded.contains(name) && !existing_links.contains(name))
        .expect("one of n+1 names is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn first_subnet_is_10_89_0_0() {
        assert_eq!(
            choose_ipv4_subnet(&[], &[]).unwrap().to_string(),
            "10.89.0.0/24"
        );
    }

    #[test]
    fn skips_recorded_and_host_subnets() {
        let used = nets(&["10.89.0.0/24", "10.89.1.0/24"]);
        let host = nets(&["10.89.2.17/24", "192.168.1.5/24", "fd00::1/64"]);
        assert_eq!(
            choose_ipv4_subnet(&used, &host).unwrap().to_string(),
            "10.89.3.0/24"
        );
    }

    #[test]
    fn a_larger_used_subnet_covers_many_candidates() {
        // 10.89.0.0/16 is taken as a whole: the walk continues in the next pool
        let used = nets(&["10.89.0.0/16"]);
        assert_eq!(
            choose_ipv4_subnet(&used, &[]).unwrap().to_string(),
            "10.90.0.0/24"
        );
        // a smaller used subnet inside a candidate also rules the candidate out
        let used = nets(&["10.89.0.128/25"]);
        assert_eq!(
            choose_ipv4_subnet(&used, &[]).unwrap().to_string(),
            "10.89.1.0/24"
        );
    }

    #[test]
    fn pools_walk_in_order_across_boundaries() {
        let used = nets(&[
            "10.89.0.0/16",
            "10.90.0.0/15",
            "10.92.0.0/14",
            "10.96.0.0/11",
        ]);
        assert_eq!(
            choose_ipv4_subnet(&used, &[]).unwrap().to_string(),
            "10.128.0.0/24"
        );
        let used = nets(&["10.0.0.0/8"]);
        assert_eq!(
            choose_ipv4_subnet(&used, &[]),
            Err(SubnetError::PoolsExhausted)
        );
        assert_eq!(
            SubnetError::PoolsExhausted.to_string(),
            "could not find free subnet from subnet pools"
        );
    }

    #[test]
    fn host_route_addresses_block_their_subnet() {
        let host = nets(&["10.89.0.1/32"]);
        assert_eq!(
            choose_ipv4_subnet(&[], &host).unwrap().to_string(),
            "10.89.1.0/24"
        );
    }

    #[test]
    fn ula_is_fd_prefixed_64_and_avoids_used() {
        let mut rng = rand::rng();
        for _ in 0..100 {
            let ula = random_ula(&[], &mut rng).unwrap();
            assert_eq!(ula.prefix_len(), 64);
            assert_eq!(ula.network().octets()[0], 0xfd);
            assert_eq!(ula.network(), ula.addr());
        }
        // everything in fd00::/8 is used: no candidate can be found
        let used = nets(&["fd00::/8"]);
        assert_eq!(
            random_ula(&used, &mut rng),
            Err(SubnetError::UlaExhausted { tries: ULA_TRIES })
        );
    }

    #[test]
    fn bridge_name_is_first_free() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(choose_bridge_name(&[], &[]), "netctl0");
        assert_eq!(
            choose_bridge_name(&s(&["netctl0", "netctl2"]), &s(&["netctl1", "eth0"])),
            "netctl3"
        );
    }

    #[test]
    fn overlap_is_symmetric() {
        let a: IpNet = "10.0.0.0/8".parse().unwrap();
        let b: IpNet = "10.1.2.0/24".parse().unwrap();
        let c: IpNet = "11.0.0.0/8".parse().unwrap();
        assert!(overlaps(&a, &b) && overlaps(&b, &a));
        assert!(!overlaps(&a, &c) && !overlaps(&c, &a));
    }
}

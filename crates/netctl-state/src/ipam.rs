//! The IPAM core: which address of a subnet to hand out next. No storage here.
//!
//! Behaviour follows podman's host-local IPAM (containers/common `libnetwork/internal/util`
//! and `netavark/ipam.go`), with its known gaps fixed:
//! * per subnet, a pointer to the last automatically assigned address; the next allocation
//!   scans upward from the address after it to the end of the range, then wraps once to the
//!   start of the range. So a freed address is not handed out again until the scan wraps.
//! * the range is the lease range when one is declared, else the subnet from network+1 to the
//!   last address, minus the broadcast address for IPv4.
//! * the network address, the gateway and the IPv4 broadcast address are never handed out,
//!   neither automatically nor as a static address (podman accepts them as static addresses).
//! * exhaustion reads "failed to find free IP in range: A - B", A and B being the range bounds.
//!
//! Invariant: every function here is pure over a view of the taken addresses, so the same code
//! is property-tested against a `BTreeSet` and run against the redb lease table.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::error::{IpamError, ReservedKind};
use crate::records::{NetworkRecord, SubnetRecord};

/// The numeric form of an address, as used in lease keys: IPv4 in the low 32 bits.
pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The inverse of [`ip_to_u128`] for the family given.
pub fn u128_to_ip(value: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(value))
    } else {
        // Lease keys of an IPv4 subnet only ever hold 32-bit values.
        IpAddr::V4(Ipv4Addr::from(value as u32))
    }
}

/// One subnet's allocation range and reserved addresses, in numeric form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetRange {
    subnet: IpNet,
    /// First and last address automatic allocation may use, inclusive. `start > end` means
    /// the range is empty.
    start: u128,
    end: u128,
    network: u128,
    gateway: Option<u128>,
    broadcast: Option<u128>,
    /// The network's host address (macvlan `host_address`), if it lies in this subnet.
    host: Option<u128>,
}

impl SubnetRange {
    /// The range of a recorded subnet. Lease range bounds outside the subnet are clamped to it.
    pub fn new(record: &SubnetRecord) -> SubnetRange {
        let subnet = record.subnet.trunc();
        let network = ip_to_u128(subnet.network());
        let last = ip_to_u128(subnet.broadcast());
        let v4 = matches!(subnet, IpNet::V4(_));
        let broadcast = v4.then_some(last);
        let lease = record.lease_range.unwrap_or_default();
        let start = lease
            .start
            .filter(|ip| subnet.contains(ip))
            .map_or(network.saturating_add(1), ip_to_u128);
        let default_end = if v4 { last.saturating_sub(1) } else { last };
        let end = lease
            .end
            .filter(|ip| subnet.contains(ip))
            .map_or(default_end, ip_to_u128);
        SubnetRange {
            subnet,
            start,
            end,
            network,
            gateway: record.gateway.map(ip_to_u128),
            broadcast,
            host: None,
        }
    }

    /// The range of a subnet of `net`, with the network's host address reserved too.
    pub fn of_network(net: &NetworkRecord, record: &SubnetRecord) -> SubnetRange {
        let mut range = SubnetRange::new(record);
        range.host = net
            .host_address()
            .filter(|ip| range.subnet.contains(ip))
            .map(ip_to_u128);
        range
    }

    pub fn subnet(&self) -> IpNet {
        self.subnet
    }

    pub fn start(&self) -> u128 {
        self.start
    }

    pub fn end(&self) -> u128 {
        self.end
    }

    /// The address for a numeric value in this subnet's family.
    pub fn addr(&self, value: u128) -> IpAddr {
        u128_to_ip(value, matches!(self.subnet, IpNet::V6(_)))
    }

    /// Why `value` may never be handed out, if it is reserved.
    pub fn reserved(&self, value: u128) -> Option<ReservedKind> {
        if value == self.network {
            Some(ReservedKind::Network)
        } else if Some(value) == self.gateway {
            Some(ReservedKind::Gateway)
        } else if Some(value) == self.broadcast {
            Some(ReservedKind::Broadcast)
        } else if Some(value) == self.host {
            Some(ReservedKind::HostAddress)
        } else {
            None
        }
    }

    /// The error for a range with no free address.
    pub fn exhausted(&self) -> IpamError {
        IpamError::Exhausted {
            subnet: self.subnet,
            start: self.addr(self.start),
            end: self.addr(self.end),
        }
    }

    /// Checks a requested static address against the subnet and its reserved addresses. Static
    /// addresses may lie outside the lease range, as in podman: the range only steers automatic
    /// allocation.
    pub fn check_static(&self, ip: IpAddr, network: &str) -> Result<u128, IpamError> {
        if !self.subnet.contains(&ip) {
            return Err(IpamError::NotInSubnet {
                ip,
                network: network.to_owned(),
            });
        }
        let value = ip_to_u128(ip);
        match self.reserved(value) {
            Some(what) => Err(IpamError::Reserved {
                ip,
                subnet: self.subnet,
                what,
            }),
            None => Ok(value),
        }
    }

    /// The next free address after `last` (the pointer of the previous automatic allocation), or
    /// `None` when the whole range is taken or reserved.
    pub fn next_free<T: TakenAddrs>(
        &self,
        last: Option<u128>,
        taken: &T,
    ) -> Result<Option<u128>, T::Error> {
        if self.start > self.end {
            return Ok(None);
        }
        // A pointer outside the range (the lease range was changed) restarts at the start, so
        // the scan below never leaves the range.
        let first = match last {
            Some(l) if l >= self.start && l < self.end => l + 1,
            _ => self.start,
        };
        if let Some(found) = self.first_free_in(first, self.end, taken)? {
            return Ok(Some(found));
        }
        if first > self.start {
            return self.first_free_in(self.start, first - 1, taken);
        }
        Ok(None)
    }

    /// The lowest free, unreserved address in `lo..=hi`. One ordered walk over the taken
    /// addresses in the window, so a dense run of leases costs one range scan, not one lookup
    /// per address.
    fn first_free_in<T: TakenAddrs>(
        &self,
        lo: u128,
        hi: u128,
        taken: &T,
    ) -> Result<Option<u128>, T::Error> {
        let mut iter = taken.taken_in(lo, hi)?;
        let mut next_taken = iter.next().transpose()?;
        let mut candidate = lo;
        loop {
            if candidate > hi {
                return Ok(None);
            }
            if self.reserved(candidate).is_none() {
                while let Some(t) = next_taken {
                    if t >= candidate {
                        break;
                    }
                    next_taken = iter.next().transpose()?;
                }
                if next_taken != Some(candidate) {
                    return Ok(Some(candidate));
                }
            }
            match candidate.checked_add(1) {
                Some(next) => candidate = next,
                None => return Ok(None),
            }
        }
    }
}

/// A view of the addresses already leased in one subnet.
pub trait TakenAddrs {
    type Error;

    /// The taken addresses in `lo..=hi`, ascending.
    fn taken_in(
        &self,
        lo: u128,
        hi: u128,
    ) -> Result<impl Iterator<Item = Result<u128, Self::Error>> + '_, Self::Error>;
}

impl TakenAddrs for std::collections::BTreeSet<u128> {
    type Error = std::convert::Infallible;

    fn taken_in(
        &self,
        lo: u128,
        hi: u128,
    ) -> Result<impl Iterator<Item = Result<u128, Self::Error>> + '_, Self::Error> {
        Ok(self.range(lo..=hi).map(|v| Ok(*v)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::records::LeaseRange;

    fn range(subnet: &str, gateway: Option<&str>, lease: Option<(&str, &str)>) -> SubnetRange {
        SubnetRange::new(&SubnetRecord {
            subnet: subnet.parse().unwrap(),
            gateway: gateway.map(|g| g.parse().unwrap()),
            lease_range: lease.map(|(s, e)| LeaseRange {
                start: Some(s.parse().unwrap()),
                end: Some(e.parse().unwrap()),
            }),
        })
    }

    fn ip(text: &str) -> u128 {
        ip_to_u128(text.parse().unwrap())
    }

    /// Allocates like the store does: take the next free address and move the pointer.
    fn alloc(r: &SubnetRange, last: &mut Option<u128>, taken: &mut BTreeSet<u128>) -> Option<u128> {
        let found = r.next_free(*last, taken).unwrap()?;
        taken.insert(found);
        *last = Some(found);
        Some(found)
    }

    #[test]
    fn first_allocation_skips_network_and_gateway() {
        let r = range("10.89.0.0/24", Some("10.89.0.1"), None);
        let mut taken = BTreeSet::new();
        let mut last = None;
        assert_eq!(alloc(&r, &mut last, &mut taken), Some(ip("10.89.0.2")));
        assert_eq!(alloc(&r, &mut last, &mut taken), Some(ip("10.89.0.3")));
    }

    #[test]
    fn gateway_in_the_middle_is_skipped() {
        let r = range("10.89.0.0/29", Some("10.89.0.3"), None);
        let mut taken = BTreeSet::new();
        let mut last = None;
        let got: Vec<_> = std::iter::from_fn(|| alloc(&r, &mut last, &mut taken)).collect();
        let want: Vec<_> = [
            "10.89.0.1",
            "10.89.0.2",
            "10.89.0.4",
            "10.89.0.5",
            "10.89.0.6",
        ]
        .iter()
        .map(|a| ip(a))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn freed_address_is_reused_only_after_wrap() {
        let r = range("10.89.0.0/29", Some("10.89.0.1"), None);
        let mut taken = BTreeSet::new();
        let mut last = None;
        let a = alloc(&r, &mut last, &mut taken).unwrap(); // .2
        alloc(&r, &mut last, &mut taken).unwrap(); // .3
        taken.remove(&a);
        assert_eq!(alloc(&r, &mut last, &mut taken), Some(ip("10.89.0.4")));
        assert_eq!(alloc(&r, &mut last, &mut taken), Some(ip("10.89.0.5")));
        assert_eq!(alloc(&r, &mut last, &mut taken), Some(ip("10.89.0.6")));
        // the end is reached: wrap to the start and find the freed .2
        assert_eq!(alloc(&r, &mut last, &mut taken), Some(a));
        assert_eq!(alloc(&r, &mut last, &mut taken), None);
    }

    #[test]
    fn ipv6_range_includes_last_address_but_not_network() {
        let r = range("fd00::/126", None, None);
        let mut taken = BTreeSet::new();
        let mut last = None;
        let got: Vec<_> = std::iter::from_fn(|| alloc(&r, &mut last, &mut taken)).collect();
        assert_eq!(got, vec![ip("fd00::1"), ip("fd00::2"), ip("fd00::3")]);
    }

    #[test]
    fn lease_range_bounds_allocation() {
        let r = range(
            "10.89.0.0/24",
            Some("10.89.0.1"),
            Some(("10.89.0.100", "10.89.0.102")),
        );
        let mut taken = BTreeSet::new();
        let mut last = None;
        let got: Vec<_> = std::iter::from_fn(|| alloc(&r, &mut last, &mut taken)).collect();
        assert_eq!(
            got,
            vec![ip("10.89.0.100"), ip("10.89.0.101"), ip("10.89.0.102")]
        );
        assert_eq!(
            r.exhausted().to_string(),
            "failed to find free IP in range: 10.89.0.100 - 10.89.0.102"
        );
    }

    #[test]
    fn pointer_outside_a_changed_lease_range_restarts_at_its_start() {
        let r = range("10.89.0.0/24", None, Some(("10.89.0.10", "10.89.0.20")));
        let taken = BTreeSet::new();
        assert_eq!(
            r.next_free(Some(ip("10.89.0.200")), &taken).unwrap(),
            Some(ip("10.89.0.10"))
        );
    }

    #[test]
    fn exhaustion_message_matches_podman() {
        let r = range("10.89.0.0/30", Some("10.89.0.1"), None);
        let mut taken = BTreeSet::new();
        let mut last = None;
        assert_eq!(alloc(&r, &mut last, &mut taken), Some(ip("10.89.0.2")));
        assert_eq!(alloc(&r, &mut last, &mut taken), None);
        assert_eq!(
            r.exhausted().to_string(),
            "failed to find free IP in range: 10.89.0.1 - 10.89.0.2"
        );
    }

    #[test]
    fn tiny_subnets_have_no_addresses() {
        for subnet in ["10.1.2.3/32", "10.1.2.2/31"] {
            let r = range(subnet, None, None);
            assert_eq!(
                r.next_free(None, &BTreeSet::new()).unwrap(),
                None,
                "{subnet}"
            );
        }
    }

    #[test]
    fn static_addresses_are_checked() {
        let r = range("10.89.0.0/24", Some("10.89.0.1"), None);
        let check = |a: &str| {
            r.check_static(a.parse().unwrap(), "web")
                .map_err(|e| e.to_string())
        };
        assert_eq!(check("10.89.0.7"), Ok(ip("10.89.0.7")));
        assert_eq!(
            check("10.89.0.0"),
            Err(
                "requested ip address 10.89.0.0 is the network address of subnet 10.89.0.0/24"
                    .into()
            )
        );
        assert_eq!(
            check("10.89.0.1"),
            Err("requested ip address 10.89.0.1 is the gateway of subnet 10.89.0.0/24".into())
        );
        assert_eq!(
            check("10.89.0.255"),
            Err(
                "requested ip address 10.89.0.255 is the broadcast address of subnet 10.89.0.0/24"
                    .into()
            )
        );
        assert_eq!(
            check("10.90.0.1"),
            Err("requested ip address 10.90.0.1 is not in any subnet of network web".into())
        );
    }

    #[test]
    fn full_ipv6_space_does_not_overflow() {
        let r = range("::/0", None, None);
        let taken: BTreeSet<u128> = [u128::MAX].into_iter().collect();
        assert_eq!(r.next_free(Some(u128::MAX - 1), &taken).unwrap(), Some(1));
    }

    /// A random case: the range under test, and the test's own idea of what is reserved and
    /// where automatic allocation may go, worked out without `SubnetRange`.
    #[derive(Debug, Clone)]
    struct Case {
        range: SubnetRange,
        net: u128,
        broadcast: u128,
        gateway: Option<u128>,
        lo: u128,
        hi: u128,
    }

    impl Case {
        fn reserved(&self, v: u128) -> bool {
            v == self.net || v == self.broadcast || Some(v) == self.gateway
        }

        fn usable(&self, v: u128) -> bool {
            v >= self.lo && v <= self.hi && !self.reserved(v)
        }
    }

    /// A subnet between /22 and /30 with an optional gateway and lease range (which may include
    /// the reserved addresses), for the properties.
    fn arb_case() -> impl Strategy<Value = Case> {
        (
            22u8..=30,
            any::<u32>(),
            any::<bool>(),
            any::<(u16, u16)>(),
            any::<bool>(),
            any::<u16>(),
        )
            .prop_map(|(prefix, base, with_range, (a, b), with_gw, gw)| {
                let subnet = ipnet::Ipv4Net::new(Ipv4Addr::from(base), prefix)
                    .unwrap()
                    .trunc();
                let size = 1u32 << (32 - prefix);
                let net = u32::from(subnet.network());
                let at = |off: u16| net + u32::from(off) % size;
                let (a, b) = if a <= b { (a, b) } else { (b, a) };
                let gateway = with_gw.then(|| at(gw));
                let (lo, hi) = if with_range {
                    (at(a), at(b))
                } else {
                    (net + 1, net + size - 2)
                };
                let v4 = |v: u32| IpAddr::V4(Ipv4Addr::from(v));
                let range = SubnetRange::new(&SubnetRecord {
                    subnet: IpNet::V4(subnet),
                    gateway: gateway.map(v4),
                    lease_range: with_range.then(|| LeaseRange {
                        start: Some(v4(lo)),
                        end: Some(v4(hi)),
                    }),
                });
                Case {
                    range,
                    net: u128::from(net),
                    broadcast: u128::from(net + size - 1),
                    gateway: gateway.map(u128::from),
                    lo: u128::from(lo),
                    hi: u128::from(hi),
                }
            })
    }

    /// One step of a random workload: allocate, or release the n-th held address.
    #[derive(Debug, Clone)]
    enum Step {
        Allocate,
        Release(usize),
    }

    fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
        prop::collection::vec(
            prop_oneof![3 => Just(Step::Allocate), 1 => any::<usize>().prop_map(Step::Release)],
            0..400,
        )
    }

    proptest! {
        #[test]
        fn allocator_properties(c in arb_case(), steps in arb_steps()) {
            let mut taken = BTreeSet::new();
            let mut last = None;
            for step in steps {
                match step {
                    Step::Allocate => {
                        if let Some(a) = c.range.next_free(last, &taken).unwrap() {
                            prop_assert!(!taken.contains(&a), "handed out {a} twice");
                            prop_assert!(!c.reserved(a), "handed out reserved {a}");
                            prop_assert!(a >= c.lo && a <= c.hi, "{a} outside the lease range");
                            taken.insert(a);
                            last = Some(a);
                        } else {
                            // exhaustion is reported only when every usable address is taken
                            let full = (c.lo..=c.hi).filter(|v| c.usable(*v)).all(|v| taken.contains(&v));
                            prop_assert!(full, "reported exhaustion with a free address");
                        }
                    }
                    Step::Release(n) => {
                        if !taken.is_empty() {
                            let v = *taken.iter().nth(n % taken.len()).unwrap();
                            taken.remove(&v);
                        }
                    }
                }
            }
        }

        #[test]
        fn allocation_follows_the_pointer(c in arb_case(), prefill in prop::collection::btree_set(any::<u16>(), 0..64), ptr in any::<u16>()) {
            // Whatever is taken, the answer is the first free usable address after the pointer,
            // wrapping once: compare against a naive walk.
            let size = c.broadcast - c.net + 1;
            let taken: BTreeSet<u128> = prefill.iter().map(|o| c.net + u128::from(*o) % size).collect();
            let last = c.net + u128::from(ptr) % size;
            let got = c.range.next_free(Some(last), &taken).unwrap();
            let first = if last >= c.lo && last < c.hi { last + 1 } else { c.lo };
            let naive = (first..=c.hi)
                .chain(c.lo..first)
                .find(|v| c.usable(*v) && !taken.contains(v));
            prop_assert_eq!(got, naive);
        }
    }
}

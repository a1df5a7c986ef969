//! Batches: the nft JSON documents netctl applies, each one atomic transaction.
//!
//! Invariants:
//! * Pure: building a batch reads nothing from the kernel, so nothing on the hot path ever
//!   lists or parses the live table.
//! * A network or container change is only element commands, whose count depends on that one
//!   network or container ([`batch_len`] of adding the 1000th container equals that of the 1st).
//! * A full rebuild starts with `add table` + `delete table`, so it replaces whatever is there
//!   (or nothing) in the same transaction that writes the new table.

use std::borrow::Cow;

use netctl_types::nft::ElementBatch;
use nftables::schema::{NfCmd, NfListObject, NfObject, Nftables};

use crate::elements::{ElementOp, Elements};
use crate::layout::{self, TABLE_NAME};
use crate::model::{FirewallState, FwContainer, FwNetwork};

fn document(commands: Vec<NfCmd<'static>>) -> Nftables<'static> {
    Nftables {
        objects: Cow::Owned(commands.into_iter().map(NfObject::CmdObject).collect()),
    }
}

fn add_all(objects: Vec<NfListObject<'static>>) -> Vec<NfCmd<'static>> {
    objects.into_iter().map(NfCmd::Add).collect()
}

/// The table with its chains, sets, maps and fixed rules, and no elements. Only apply this when
/// the table is absent: rules are appended, so a second application would duplicate them. Use
/// [`full_rebuild`] to replace a table that may exist.
pub fn base_table() -> Nftables<'static> {
    document(add_all(layout::base_objects()))
}

/// How many rules netctl's fixed table holds (every per-container part is a set element), for
/// telling an intact table from a flushed one by the kernel's rule count.
pub fn base_rule_count() -> usize {
    layout::base_objects()
        .iter()
        .filter(|object| matches!(object, NfListObject::Rule(_)))
        .count()
}

/// Replaces the whole table with one built from `state`, in one transaction.
pub fn full_rebuild(state: &FirewallState) -> Nftables<'static> {
    let mut elements = Elements::default();
    for network in &state.networks {
        elements.add_network(network);
    }
    for container in &state.containers {
        elements.add_container(container);
    }
    let mut commands = vec![NfCmd::Add(layout::table()), NfCmd::Delete(layout::table())];
    commands.extend(add_all(layout::base_objects()));
    commands.extend(elements.commands(ElementOp::Add));
    document(commands)
}

/// Removes the table, whether or not it exists.
pub fn delete_table() -> Nftables<'static> {
    document(vec![
        NfCmd::Add(layout::table()),
        NfCmd::Delete(layout::table()),
    ])
}

fn elements_of(fill: impl FnOnce(&mut Elements), op: ElementOp) -> Nftables<'static> {
    let mut elements = Elements::default();
    fill(&mut elements);
    document(elements.commands(op))
}

/// Adds one network's bridge and subnets to the sets. Idempotent.
pub fn add_network(network: &FwNetwork) -> Nftables<'static> {
    elements_of(|e| e.add_network(network), ElementOp::Add)
}

/// Removes one network's bridge and subnets from the sets; succeeds when they are already gone.
/// Remove the network's containers first.
pub fn remove_network(network: &FwNetwork) -> Nftables<'static> {
    elements_of(|e| e.add_network(network), ElementOp::Remove)
}

/// Adds one container's port forwards to the maps. Idempotent; fails (in nft) when a host port
/// is already forwarded to somewhere else. Empty when the container publishes nothing.
pub fn add_container(container: &FwContainer) -> Nftables<'static> {
    elements_of(|e| e.add_container(container), ElementOp::Add)
}

/// Removes one container's port forwards; succeeds when they are already gone.
pub fn remove_container(container: &FwContainer) -> Nftables<'static> {
    elements_of(|e| e.add_container(container), ElementOp::Remove)
}

/// A container's port forwards, added (`remove: false`) or removed, as an element batch the
/// kernel seam can send over netlink without forking `nft`; `None` when nothing changes.
pub fn container_elements(container: &FwContainer, remove: bool) -> Option<ElementBatch> {
    let mut elements = Elements::default();
    elements.add_container(container);
    let op = if remove {
        ElementOp::Remove
    } else {
        ElementOp::Add
    };
    let json = to_json(&document(elements.commands(op)));
    let ops = elements.netlink_ops(op)?;
    (!ops.is_empty()).then(|| ElementBatch {
        family: NFPROTO_INET,
        table: TABLE_NAME.to_owned(),
        ops,
        json,
    })
}

/// `NFPROTO_INET`: the family of netctl's `inet` table.
const NFPROTO_INET: u8 = 1;

/// A batch that changes nothing and fails exactly when one of the table's sets or maps is
/// missing: it adds and deletes an element no real network or container can produce in each.
/// Used after a failed fast-path batch to tell "the table is gone" from other errors.
pub fn presence_probe() -> Nftables<'static> {
    document(Elements::sentinels().commands(ElementOp::Remove))
}

/// The JSON text `nft -j -f -` reads.
pub fn to_json(batch: &Nftables<'_>) -> String {
    serde_json::to_string(batch).expect("nftables schema types always serialize")
}

/// The number of commands in a batch.
pub fn batch_len(batch: &Nftables<'_>) -> usize {
    batch.objects.len()
}

/// Whether a batch has nothing to do.
pub fn is_empty(batch: &Nftables<'_>) -> bool {
    batch.objects.is_empty()
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::model::{FwPort, HostIp, Isolate, Protocol};

    #[test]
    fn base_rule_count_counts_the_rules_the_base_table_adds() {
        let json = to_json(&base_table());
        assert_eq!(
            base_rule_count(),
            json.matches("{\"add\":{\"rule\"").count()
        );
        assert!(base_rule_count() > 0);
    }

    fn web() -> FwNetwork {
        FwNetwork {
            name: "web".into(),
            bridge: "nc-web".into(),
            subnets: vec![
                "10.89.0.0/24".parse().unwrap(),
                "fd10:89::/64".parse().unwrap(),
            ],
            internal: false,
            isolate: Isolate::Enabled,
            outbound: crate::model::Outbound::default(),
            dns: Vec::new(),
        }
    }

    fn container(n: u32, ports: Vec<FwPort>) -> FwContainer {
        let [_, _, hi, lo] = n.to_be_bytes();
        FwContainer {
            id: format!("{n:064x}"),
            network: "web".into(),
            ipv4: Some(Ipv4Addr::new(10, 89, hi, lo)),
            ipv6: Some(Ipv6Addr::new(0xfd10, 0x89, 0, 0, 0, 0, 0, n as u16)),
            ports,
        }
    }

    /// The published ports of container `n`: distinct host ports per container.
    fn ports_of(n: u32) -> Vec<FwPort> {
        let base = 10_000 + (n * 4) as u16;
        vec![
            FwPort::new(Protocol::Tcp, base, 80),
            FwPort {
                range: 2,
                ..FwPort::new(Protocol::Udp, base + 1, 5000)
            },
            FwPort {
                host_ip: HostIp::Addr(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                ..FwPort::new(Protocol::Sctp, base + 3, 9000)
            },
        ]
    }

    #[test]
    fn add_container_batch() {
        insta::assert_json_snapshot!(add_container(&container(2, ports_of(2))));
    }

    #[test]
    fn remove_container_batch() {
        insta::assert_json_snapshot!(remove_container(&container(2, ports_of(2))));
    }

    #[test]
    fn add_and_remove_network_batches() {
        insta::assert_json_snapshot!("add_network", add_network(&web()));
        insta::assert_json_snapshot!("remove_network", remove_network(&web()));
    }

    #[test]
    fn container_batches_do_not_grow_with_the_table() {
        // Build the state of 999 containers first, as the binary would hold it; the batch for
        // the 1000th must still only be about that container.
        let mut state = FirewallState {
            networks: vec![web()],
            containers: Vec::new(),
        };
        for n in 1..1000 {
            state.containers.push(container(n, ports_of(n)));
        }
        let first = add_container(&container(1, ports_of(1)));
        let thousandth = add_container(&container(1000, ports_of(1000)));
        assert_eq!(batch_len(&first), batch_len(&thousandth));
        assert_eq!(
            batch_len(&remove_container(&container(1000, ports_of(1000)))),
            batch_len(&remove_container(&container(1, ports_of(1))))
        );
        // ... while the rebuild holds them all, still one command per set or map.
        let rebuild = full_rebuild(&state);
        assert_eq!(batch_len(&rebuild), batch_len(&full_rebuild(&state)));
        assert!(to_json(&rebuild).contains("\"10.89.3.231\""));
    }

    #[test]
    fn a_container_without_ports_needs_no_batch() {
        assert!(is_empty(&add_container(&container(3, Vec::new()))));
        assert!(is_empty(&remove_container(&container(3, Vec::new()))));
    }

    /// Which maps a port lands in, depending on its host IP and the container's families.
    #[test]
    fn host_ip_family_matching() {
        let check = |host_ip: HostIp, v4: bool, v6: bool, want: &[&str]| {
            let mut c = container(
                7,
                vec![FwPort {
                    host_ip,
                    ..FwPort::new(Protocol::Tcp, 8080, 80)
                }],
            );
            if !v4 {
                c.ipv4 = None;
            }
            if !v6 {
                c.ipv6 = None;
            }
            let json: serde_json::Value =
                serde_json::from_str(&to_json(&add_container(&c))).unwrap();
            let maps: Vec<&str> = json["nftables"]
                .as_array()
                .unwrap()
                .iter()
                .map(|cmd| cmd["add"]["element"]["name"].as_str().unwrap())
                .collect();
            assert_eq!(maps, want, "{host_ip:?} v4={v4} v6={v6}");
        };
        let lo4 = HostIp::Addr(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let v6 = HostIp::Addr("2001:db8::10".parse().unwrap());
        let both_any = [
            "dnat4_any_addr",
            "dnat4_any_port",
            "dnat6_any_addr",
            "dnat6_any_port",
        ];
        check(HostIp::All, true, true, &both_any);
        check(HostIp::All, true, false, &both_any[..2]);
        check(HostIp::All, false, true, &both_any[2..]);
        check(HostIp::AllV4, true, true, &both_any[..2]);
        check(HostIp::AllV6, true, true, &both_any[2..]);
        check(HostIp::AllV6, true, false, &[]);
        check(lo4, true, true, &["dnat4_ip_addr", "dnat4_ip_port"]);
        check(lo4, false, true, &[]);
        check(v6, true, true, &["dnat6_ip_addr", "dnat6_ip_port"]);
    }

    #[test]
    fn internal_networks_get_no_nat() {
        let internal = FwNetwork {
            internal: true,
            isolate: Isolate::Strict,
            outbound: crate::model::Outbound::default(),
            dns: Vec::new(),
            ..web()
        };
        let json = to_json(&add_network(&internal));
        for set in [
            "bridges",
            "bridge_pairs",
            "isolated_bridges",
            "strict_bridges",
            "internal_bridges",
        ] {
            assert!(
                json.contains(&format!("\"name\":\"{set}\"")),
                "{set} missing: {json}"
            );
        }
        assert!(!json.contains("nat_subnets"), "{json}");
        assert!(!json.contains("same_subnet"), "{json}");
    }

    #[test]
    fn first_mapping_of_a_host_port_wins_in_a_rebuild() {
        let mut elements = Elements::default();
        elements.add_container(&container(1, vec![FwPort::new(Protocol::Tcp, 8080, 80)]));
        elements.add_container(&container(2, vec![FwPort::new(Protocol::Tcp, 8080, 81)]));
        // One key in each of four maps: the second container's mapping was dropped.
        assert_eq!(elements.len(), 4);
        let json = to_json(&document(elements.commands(ElementOp::Add)));
        assert!(
            json.contains("\"10.89.0.1\"") && !json.contains("\"10.89.0.2\""),
            "{json}"
        );
    }

    #[test]
    fn subnets_are_truncated_to_their_network() {
        let network = FwNetwork {
            subnets: vec!["10.89.0.7/24".parse().unwrap()],
            ..web()
        };
        let json = to_json(&add_network(&network));
        assert!(
            json.contains("{\"prefix\":{\"addr\":\"10.89.0.0\",\"len\":24}}"),
            "{json}"
        );
    }

    #[test]
    fn probe_adds_and_deletes_one_element_per_store() {
        let probe = presence_probe();
        assert_eq!(batch_len(&probe), 2 * crate::layout::Store::ALL.len());
        insta::assert_json_snapshot!(probe);
    }
}

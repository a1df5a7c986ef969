//! Plan cases: (recorded, observed, desired) → plan text and JSON, snapshotted.
//!
//! `converged(file)` builds the recorded and observed state a perfect apply of `file` would leave,
//! so each case states only what differs from it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use ipnet::IpNet;
use netctl_plan::{Defaults, LinkFacts, Observed, Plan, Recorded, plan, render_text, veth_name};
use netctl_state::{
    AttachmentRecord, ContainerRecord, MacAddr, NetnsRecord, NetworkDriver, NetworkRecord, Opaque,
    SubnetRecord,
};
use netctl_types::DesiredState;

const QUICKSTART: &str = r#"
[networks.demo]
subnets = [{ subnet = "10.89.10.0/24" }]

[containers.web]
networks.demo = { ip = "10.89.10.10", aliases = ["www"] }
ports = ["127.0.0.1:8080:80/tcp"]

[containers.client]
networks.demo = {}
"#;

fn defaults() -> Defaults {
    Defaults {
        default_network: "podman".into(),
        default_bridge: "podman0".into(),
        default_subnet: "10.88.0.0/16".parse().unwrap(),
        netns_dir: PathBuf::from("/run/netns"),
        dns_available: false,
    }
}

fn desired(text: &str) -> DesiredState {
    toml::from_str(text).expect("test input parses")
}

fn id_for(name: &str) -> String {
    let hex: String = name.bytes().fold(String::new(), |mut acc, b| {
        use std::fmt::Write as _;
        let _ = write!(acc, "{b:02x}");
        acc
    });
    format!("{hex:0<64}")
}

/// Recorded and observed state after a perfect apply of `text`.
fn converged(text: &str) -> (Recorded, Observed) {
    let desired = desired(text);
    let target = netctl_plan::resolve(&desired, &Recorded::default(), &defaults());
    let mut rec = Recorded::default();
    let mut obs = Observed {
        firewall_ok: true,
        ..Observed::default()
    };
    for (i, (name, net)) in target.networks.iter().enumerate() {
        let subnets: Vec<SubnetRecord> = net
            .subnets
            .clone()
            .unwrap_or_else(|| {
                vec![netctl_types::SubnetSpec {
                    subnet: format!("10.89.{i}.0/24").parse().unwrap(),
                    gateway: None,
                    lease_range: None,
                }]
            })
            .iter()
            .map(|s| SubnetRecord {
                subnet: s.subnet,
                gateway: Some(s.effective_gateway()),
                lease_range: None,
            })
            .collect();
        let bridge = net.bridge.clone().unwrap_or_else(|| format!("netctl{i}"));
        let mut facts = LinkFacts {
            up: true,
            ..LinkFacts::default()
        };
        for s in &subnets {
            facts
                .addrs
                .insert(IpNet::new(s.gateway.unwrap(), s.subnet.prefix_len()).unwrap());
        }
        obs.host_links.insert(bridge.clone(), facts);
        rec.networks.insert(
            name.clone(),
            NetworkRecord {
                name: name.clone(),
                id: id_for(name),
                driver: NetworkDriver::Bridge,
                network_interface: bridge,
                subnets,
                ipv6: net.ipv6,
                internal: net.internal,
                dns_enabled: false,
                dns_servers: Vec::new(),
                mtu: net.mtu,
                isolate: net.isolate,
                labels: net.labels.clone(),
                options: BTreeMap::new(),
                routes: Vec::new(),
                created: SystemTime::UNIX_EPOCH,
                project: None,
            },
        );
    }
    let mut next_host: BTreeMap<String, u8> = BTreeMap::new();
    for (name, ctr) in &target.containers {
        let id = if ctr.id.is_empty() {
            id_for(name)
        } else {
            ctr.id.clone()
        };
        rec.containers.insert(
            name.clone(),
            ContainerRecord {
                name: name.clone(),
                id: id.clone(),
                netns: NetnsRecord {
                    path: ctr.netns.clone(),
                    managed: ctr.managed,
                },
                mode: ctr.mode,
                hostname: ctr.hostname.clone(),
                spec: Opaque::of(&ctr.spec).unwrap(),
                ports: Opaque::of(&ctr.ports).unwrap(),
                created: SystemTime::UNIX_EPOCH,
                project: None,
                boot_id: None,
            },
        );
        obs.files_ok.insert(name.clone(), true);
        let mut links = BTreeMap::new();
        links.insert(
            "lo".to_owned(),
            LinkFacts {
                up: true,
                ..LinkFacts::default()
            },
        );
        for (net, att) in &ctr.attachments {
            let netrec = &rec.networks[net];
            let addresses: Vec<IpNet> = netrec
                .subnets
                .iter()
                .map(|s| {
                    let ip = att
                        .static_ips()
                        .into_iter()
                        .find(|ip| s.subnet.contains(ip))
                        .unwrap_or_else(|| {
                            let n = next_host.entry(net.clone()).or_insert(100);
                            *n += 1;
                            match s.subnet {
                                IpNet::V4(v4) => std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                                    u32::from(v4.network()) + u32::from(*n),
                                )),
                                IpNet::V6(v6) => std::net::IpAddr::V6(std::net::Ipv6Addr::from(
                                    u128::from(v6.network()) + u128::from(*n),
                                )),
                            }
                        });
                    IpNet::new(ip, s.subnet.prefix_len()).unwrap()
                })
                .collect();
            let mut aliases = att.aliases.clone();
            let short: String = id.chars().take(12).collect();
            if !aliases.contains(&short) {
                aliases.push(short);
                aliases.sort();
            }
            links.insert(
                att.interface.clone(),
                LinkFacts {
                    up: true,
                    addrs: addresses.iter().copied().collect(),
                },
            );
            obs.host_links.insert(
                veth_name(&id, &netrec.id),
                LinkFacts {
                    up: true,
                    ..LinkFacts::default()
                },
            );
            rec.attachments.insert(
                (name.clone(), net.clone()),
                AttachmentRecord {
                    container: name.clone(),
                    network: net.clone(),
                    interface: att.interface.clone(),
                    mac: att
                        .mac
                        .map_or(MacAddr([0x0a, 0x58, 0, 0, 0, 1]), |m| MacAddr(m.octets())),
                    aliases,
                    addresses,
                    metric: Some(att.metric),
                    host_interface: att.host_interface.clone(),
                },
            );
        }
        obs.namespaces.insert(ctr.netns.clone(), links);
    }
    (rec, obs)
}

fn show(plan: &Plan) -> String {
    format!(
        "{}\n--- json\n{}",
        render_text(plan),
        serde_json::to_string_pretty(plan).unwrap()
    )
}

fn check(name: &str, rec: &Recorded, obs: &Observed, text: &str, prune: bool) -> Plan {
    let p = plan(&desired(text), rec, obs, &defaults(), prune);
    insta::assert_snapshot!(name, show(&p));
    p
}

#[test]
fn from_empty_everything_is_created() {
    let p = check(
        "from_empty",
        &Recorded::default(),
        &Observed::default(),
        QUICKSTART,
        false,
    );
    assert_eq!(p.summary.create, 5);
}

#[test]
fn converged_state_has_no_changes() {
    let (rec, obs) = converged(QUICKSTART);
    let p = check("in_sync", &rec, &obs, QUICKSTART, false);
    assert!(p.is_empty(), "{}", render_text(&p));
    assert!(p.drift.is_empty());
}

#[test]
fn port_change_updates_the_container_only() {
    let (rec, obs) = converged(QUICKSTART);
    let p = check(
        "port_change",
        &rec,
        &obs,
        &QUICKSTART.replace("8080:80", "8081:80"),
        false,
    );
    assert_eq!((p.summary.update, p.steps.len()), (1, 1));
}

#[test]
fn subnet_change_replaces_network_and_its_attachments() {
    let (rec, obs) = converged(QUICKSTART);
    let text = QUICKSTART
        .replace("10.89.10.0/24", "10.89.20.0/24")
        .replace("10.89.10.10", "10.89.20.10");
    let p = check("subnet_change", &rec, &obs, &text, false);
    assert_eq!(p.summary.replace, 3);
}

#[test]
fn removed_container_is_an_orphan_unless_pruned() {
    let (rec, obs) = converged(QUICKSTART);
    let text = QUICKSTART.replace("[containers.client]\nnetworks.demo = {}\n", "");
    let kept = check("orphan_kept", &rec, &obs, &text, false);
    assert!(kept.is_empty());
    assert_eq!(kept.orphans.len(), 1);
    let pruned = check("orphan_pruned", &rec, &obs, &text, true);
    assert_eq!(pruned.summary.delete, 2);
}

#[test]
fn container_without_networks_joins_the_default_network() {
    let p = check(
        "default_network",
        &Recorded::default(),
        &Observed::default(),
        "[containers.solo]\n",
        false,
    );
    assert!(p.target.networks["podman"].is_default);
}

#[test]
fn interfaces_are_lowest_free_in_network_order_and_kept() {
    let text = r#"
[networks.b]
subnets = [{ subnet = "10.89.2.0/24" }]
[networks.a]
subnets = [{ subnet = "10.89.1.0/24" }]
[networks.c]
subnets = [{ subnet = "10.89.3.0/24" }]
[containers.x]
networks.a = {}
networks.b = { interface = "eth0" }
networks.c = {}
"#;
    let p = plan(
        &desired(text),
        &Recorded::default(),
        &Observed::default(),
        &defaults(),
        false,
    );
    let atts = &p.target.containers["x"].attachments;
    assert_eq!(
        (
            atts["a"].interface.as_str(),
            atts["b"].interface.as_str(),
            atts["c"].interface.as_str()
        ),
        ("eth1", "eth0", "eth2")
    );
}

#[test]
fn drift_is_shown_and_repaired() {
    let (rec, mut obs) = converged(QUICKSTART);
    let bridge = rec.networks["demo"].network_interface.clone();
    let web_veth = veth_name(&rec.containers["web"].id, &rec.networks["demo"].id);
    obs.host_links.get_mut(&bridge).unwrap().addrs.clear();
    obs.host_links.remove(&web_veth);
    obs.firewall_ok = false;
    obs.files_ok.insert("client".into(), false);
    obs.namespaces
        .get_mut(&PathBuf::from("/run/netns/client"))
        .unwrap()
        .get_mut("eth0")
        .unwrap()
        .addrs
        .clear();
    let p = check("drift", &rec, &obs, QUICKSTART, false);
    assert_eq!(p.drift.len(), 5);
    assert!(p.summary.repair >= 4);
}

#[test]
fn missing_bridge_repairs_every_attachment_on_it() {
    let (rec, mut obs) = converged(QUICKSTART);
    let bridge = rec.networks["demo"].network_interface.clone();
    obs.host_links.remove(&bridge);
    let p = check("bridge_missing", &rec, &obs, QUICKSTART, false);
    assert_eq!(p.summary.repair, 3, "{}", render_text(&p));
}

#[test]
fn missing_namespace_recreates_the_container() {
    let (rec, mut obs) = converged(QUICKSTART);
    obs.namespaces.remove(&PathBuf::from("/run/netns/web"));
    let p = check("netns_missing", &rec, &obs, QUICKSTART, false);
    assert!(
        p.steps
            .iter()
            .any(|s| s.resource == netctl_plan::Resource::Container { name: "web".into() })
    );
}

#[test]
fn veth_names_fit_and_differ() {
    let a = veth_name(&id_for("a"), &id_for("n1"));
    let b = veth_name(&id_for("a"), &id_for("n2"));
    assert!(a.len() <= 15 && b.len() <= 15);
    assert_ne!(a, b);
    assert_eq!(a, veth_name(&id_for("a"), &id_for("n1")));
}

/// A borrowed bridge (podman's `mode=unmanaged`) is judged as its owner's: its addresses are
/// no drift, its absence while a container is on it is; a network recorded with netctl's own
/// bridge that is now asked for as unmanaged is replaced.
#[test]
fn unmanaged_bridge_is_judged_as_borrowed() {
    let file = "[networks.ext]\nbridge = \"brext0\"\nsubnets = [{ subnet = \"10.90.0.0/24\" }]\n\n[containers.web]\nnetworks.ext = {}\n";
    let (mut rec, mut obs) = converged(file);
    let mut want = desired(file);
    want.networks.get_mut("ext").unwrap().bridge_mode = netctl_types::BridgeMode::Unmanaged;
    let p = plan(&want, &rec, &obs, &defaults(), false);
    assert_eq!(p.summary.replace, 2, "{}", render_text(&p));
    assert!(render_text(&p).contains("mode"), "{}", render_text(&p));

    rec.networks
        .get_mut("ext")
        .unwrap()
        .options
        .insert("mode".into(), "unmanaged".into());
    obs.host_links.get_mut("brext0").unwrap().addrs.clear();
    let p = plan(&want, &rec, &obs, &defaults(), false);
    assert!(p.is_empty() && p.drift.is_empty(), "{}", render_text(&p));

    obs.host_links.remove("brext0");
    let p = plan(&want, &rec, &obs, &defaults(), false);
    insta::assert_snapshot!("unmanaged_bridge_missing", show(&p));
}

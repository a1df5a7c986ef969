//! How a plan reads: one line per drift, step and orphan, then a summary line. The same values
//! serialise to JSON for `-o json`.

use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};
use std::net::IpAddr;

use ipnet::IpNet;
use netctl_state::{Isolate, NetworkRecord};
use netctl_types::{PortMapping, SubnetSpec};

use crate::{Action, Change, Plan, Resource, TargetAttachment, TargetContainer, TargetNetwork};

impl Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Firewall => f.write_str("firewall"),
            Resource::Network { name } => write!(f, "network {name}"),
            Resource::Container { name } => write!(f, "container {name}"),
            Resource::Attachment { container, network } => {
                write!(f, "attachment {container} -> {network}")
            }
        }
    }
}

impl Action {
    fn sigil(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Repair => "!",
            Action::Delete => "-",
        }
    }
}

/// The plan as text: drift first, then steps, then orphans, then the summary line.
pub fn render_text(plan: &Plan) -> String {
    let mut out = String::new();
    if !plan.conflicts.is_empty() {
        out.push_str("Conflicts (nothing is applied until they are resolved):\n");
        for c in &plan.conflicts {
            let _ = writeln!(out, "  x {}: {}", c.resource, c.what);
        }
        out.push('\n');
    }
    if !plan.drift.is_empty() {
        out.push_str("Drift (the system differs from what netctl recorded):\n");
        for d in &plan.drift {
            let _ = writeln!(out, "  ! {}: {}", d.resource, d.what);
        }
        out.push('\n');
    }
    if !plan.steps.is_empty() {
        out.push_str("Steps:\n");
        for step in &plan.steps {
            let _ = write!(
                out,
                "  {} {} {}",
                step.action.sigil(),
                action_word(step.action),
                step.resource
            );
            if let Some(reason) = &step.reason {
                let _ = write!(out, " ({reason})");
            }
            out.push('\n');
            for change in &step.changes {
                let _ = writeln!(out, "      {}", change_line(change));
            }
        }
        out.push('\n');
    }
    if !plan.orphans.is_empty() {
        out.push_str("Orphans (recorded, not in the file; removed only with --prune):\n");
        for o in &plan.orphans {
            let _ = writeln!(out, "  ? {o}");
        }
        out.push('\n');
    }
    let s = plan.summary;
    if plan.steps.is_empty() {
        out.push_str("No changes. The system matches the file.\n");
    } else {
        let _ = writeln!(
            out,
            "Plan: {} to create, {} to update, {} to replace, {} to repair, {} to delete.",
            s.create, s.update, s.replace, s.repair, s.delete
        );
    }
    out
}

impl Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(action_word(*self))
    }
}

fn action_word(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Repair => "repair",
        Action::Delete => "delete",
    }
}

fn change_line(change: &Change) -> String {
    match (&change.from, &change.to) {
        (Some(from), Some(to)) => format!("{}: {from} => {to}", change.field),
        (None, Some(to)) => format!("{}: {to}", change.field),
        (Some(from), None) => format!("{}: {from} => (none)", change.field),
        (None, None) => change.field.clone(),
    }
}

pub(crate) fn isolate_str(isolate: Isolate) -> &'static str {
    match isolate {
        Isolate::Off => "false",
        Isolate::On => "true",
        Isolate::Strict => "strict",
    }
}

pub(crate) fn labels_str(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn list_str<T: Display>(items: &[T]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn subnet_line(subnet: IpNet, gateway: Option<std::net::IpAddr>, range: Option<String>) -> String {
    let mut s = subnet.to_string();
    if let Some(gw) = gateway {
        let _ = write!(s, " gw {gw}");
    }
    if let Some(r) = range {
        let _ = write!(s, " range {r}");
    }
    s
}

pub(crate) fn subnets_of_record(rec: &NetworkRecord) -> String {
    rec.subnets
        .iter()
        .map(|s| {
            let range = s.lease_range.map(|r| {
                format!(
                    "{}-{}",
                    r.start.map(|a| a.to_string()).unwrap_or_default(),
                    r.end.map(|a| a.to_string()).unwrap_or_default()
                )
            });
            subnet_line(s.subnet, s.gateway, range)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A network's routes as plans show them: `DEST [via GW] [metric N] [TYPE]`, `; `-separated.
fn route_line(dst: IpNet, gateway: Option<IpAddr>, metric: Option<u32>, kind: &str) -> String {
    let mut out = dst.to_string();
    if let Some(gw) = gateway {
        let _ = write!(out, " via {gw}");
    }
    if let Some(m) = metric {
        let _ = write!(out, " metric {m}");
    }
    if kind != "unicast" {
        let _ = write!(out, " {kind}");
    }
    out
}

pub(crate) fn routes_of_record(rec: &NetworkRecord) -> String {
    rec.routes
        .iter()
        .map(|r| route_line(r.destination, r.gateway, r.metric, &r.route_type))
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn routes_of_target(routes: &[netctl_types::RouteSpec]) -> String {
    routes
        .iter()
        .map(|r| route_line(r.destination, r.gateway, r.metric, r.route_type.as_str()))
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn subnets_of_target(subnets: &[SubnetSpec]) -> String {
    subnets
        .iter()
        .map(|s| {
            let range = s.lease_range.as_ref().map(|r| {
                format!(
                    "{}-{}",
                    r.start.map(|a| a.to_string()).unwrap_or_default(),
                    r.end.map(|a| a.to_string()).unwrap_or_default()
                )
            });
            subnet_line(s.subnet, Some(s.effective_gateway()), range)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn ports_str(ports: &[PortMapping]) -> String {
    let items: Vec<String> = ports
        .iter()
        .map(|p| {
            let host_ip = if p.host_ip.is_empty() {
                String::new()
            } else if p.host_ip.contains(':') {
                format!("[{}]:", p.host_ip)
            } else {
                format!("{}:", p.host_ip)
            };
            let range = p.range.max(1);
            if p.host_port == 0 {
                // Chosen at apply (podman's `-p 80`).
                let ctr = if range == 1 {
                    p.container_port.to_string()
                } else {
                    format!("{}-{}", p.container_port, p.container_port + range - 1)
                };
                return format!("{host_ip}(auto):{ctr}/{}", p.protocol);
            }
            if range == 1 {
                format!(
                    "{host_ip}{}:{}/{}",
                    p.host_port, p.container_port, p.protocol
                )
            } else {
                format!(
                    "{host_ip}{}-{}:{}-{}/{}",
                    p.host_port,
                    p.host_port + range - 1,
                    p.container_port,
                    p.container_port + range - 1,
                    p.protocol
                )
            }
        })
        .collect();
    list_str(&items)
}

/// A value to show for something that may only be chosen when applying.
#[allow(clippy::unnecessary_wraps)] // feeds `Change::to`, which is optional
fn known(value: Option<String>) -> Option<String> {
    Some(value.unwrap_or_else(|| "(chosen at apply)".into()))
}

pub(crate) fn network_summary(net: &TargetNetwork) -> Vec<Change> {
    let mut out = match net.driver {
        netctl_types::NetworkDriver::Bridge => {
            let mut out = vec![Change::new("bridge", None, known(net.bridge.clone()))];
            if net.bridge_mode == netctl_types::BridgeMode::Unmanaged {
                out.push(Change::new("mode", None, Some(net.bridge_mode.to_string())));
            }
            out
        }
        netctl_types::NetworkDriver::Macvlan => vec![
            Change::new("driver", None, Some("macvlan".into())),
            Change::new(
                "parent",
                None,
                Some(
                    net.bridge
                        .clone()
                        .unwrap_or_else(|| "(the default route's interface)".into()),
                ),
            ),
            Change::new("mode", None, Some(net.mode.to_string())),
        ],
    };
    out.push(Change::new(
        "subnets",
        None,
        known(net.subnets.as_deref().map(subnets_of_target)),
    ));
    if let Some(host) = net.host_address {
        out.push(Change::new("host_address", None, Some(host.to_string())));
    }
    if net.ipv6 {
        out.push(Change::new("ipv6", None, Some("true".into())));
    }
    if net.internal {
        out.push(Change::new("internal", None, Some("true".into())));
    }
    if let Some(mtu) = net.mtu {
        out.push(Change::new("mtu", None, Some(mtu.to_string())));
    }
    if net.isolate != Isolate::Off {
        out.push(Change::new(
            "isolate",
            None,
            Some(isolate_str(net.isolate).into()),
        ));
    }
    out
}

pub(crate) fn container_summary(ctr: &TargetContainer) -> Vec<Change> {
    let mut out = vec![
        Change::new("netns", None, Some(ctr.netns.display().to_string())),
        Change::new("mode", None, Some(ctr.mode.to_string())),
    ];
    if !ctr.ports.is_empty() {
        out.push(Change::new("ports", None, Some(ports_str(&ctr.ports))));
    }
    out
}

pub(crate) fn attachment_summary(att: &TargetAttachment) -> Vec<Change> {
    let ips: Vec<String> = att.static_ips().iter().map(ToString::to_string).collect();
    vec![
        Change::new("interface", None, Some(att.interface.clone())),
        Change::new(
            "ip",
            None,
            Some(if ips.is_empty() {
                "(chosen at apply)".into()
            } else {
                ips.join(",")
            }),
        ),
        Change::new("mac", None, known(att.mac.map(|m| m.to_string()))),
    ]
}

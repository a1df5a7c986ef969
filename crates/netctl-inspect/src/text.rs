//! `netctl inspect CONTAINER -o text`: a short summary of [`NetworkSettings`] for people.
//!
//! Layout (stable: networks by name, ports by container port, protocol, host address):
//! ```text
//! sandbox key     /run/netns/api
//! network web
//!   network id    0123456789ab
//!   interface     eth0
//!   mac address   02:00:00:00:00:01
//!   ipv4 address  10.89.0.5/24
//!   ipv4 gateway  10.89.0.1
//!   aliases       backend
//! ports
//!   0.0.0.0:8080->80/tcp
//! ```
//! Empty facts are left out, except a missing gateway next to an address (`none`), a container
//! on no network (`networks none`) and no published ports (`ports none`). Ports are folded back
//! into ranges the way `podman ps` prints them, so a published range is one line.

use std::fmt::Write as _;

use netctl_types::short_id;

use crate::container::{AdditionalNetwork, BasicNetworkConfig, NetworkSettings};

/// Width of the label column, so values line up.
const LABEL_WIDTH: usize = 14;

/// The human summary of `settings`. Every line ends with a newline.
pub fn render_container_text(settings: &NetworkSettings) -> String {
    let mut out = String::new();
    field(&mut out, "", "sandbox key", &settings.sandbox_key);
    if settings.networks.is_empty() {
        field(&mut out, "", "networks", "none");
        // pasta and slirp4netns: what the helper gave the namespace, at the top level.
        if !settings.basic.mac_address.is_empty() {
            field(&mut out, "", "mac address", &settings.basic.mac_address);
        }
        family(&mut out, &settings.basic, Family::V4);
        family(&mut out, &settings.basic, Family::V6);
    }
    for (name, network) in &settings.networks {
        let _ = writeln!(out, "network {name}");
        render_network(&mut out, network);
    }
    let ports = port_lines(settings);
    if ports.is_empty() {
        field(&mut out, "", "ports", "none");
    } else {
        out.push_str("ports\n");
        for line in ports {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

fn render_network(out: &mut String, network: &AdditionalNetwork) {
    const INDENT: &str = "  ";
    let basic = &network.basic;
    if !network.network_id.is_empty() {
        field(out, INDENT, "network id", short_id(&network.network_id));
    }
    if !network.interfaces.is_empty() {
        field(out, INDENT, "interface", &network.interfaces.join(", "));
    }
    let macs: Vec<&str> = std::iter::once(basic.mac_address.as_str())
        .filter(|m| !m.is_empty())
        .chain(basic.additional_mac_addresses.iter().map(String::as_str))
        .collect();
    if !macs.is_empty() {
        field(out, INDENT, "mac address", &macs.join(", "));
    }
    family(out, basic, Family::V4);
    family(out, basic, Family::V6);
    if !network.aliases.is_empty() {
        field(out, INDENT, "aliases", &network.aliases.join(", "));
    }
}

#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
}

/// One family's addresses (first, then secondaries) and gateway.
fn family(out: &mut String, basic: &BasicNetworkConfig, family: Family) {
    let (name, first, prefix, secondaries, gateway) = match family {
        Family::V4 => (
            "ipv4",
            &basic.ip_address,
            basic.ip_prefix_len,
            &basic.secondary_ip_addresses,
            &basic.gateway,
        ),
        Family::V6 => (
            "ipv6",
            &basic.global_ipv6_address,
            basic.global_ipv6_prefix_len,
            &basic.secondary_ipv6_addresses,
            &basic.ipv6_gateway,
        ),
    };
    if first.is_empty() {
        return;
    }
    let addresses: Vec<String> = std::iter::once(format!("{first}/{prefix}"))
        .chain(
            secondaries
                .iter()
                .map(|a| format!("{}/{}", a.addr, a.prefix_length)),
        )
        .collect();
    field(out, "  ", &format!("{name} address"), &addresses.join(", "));
    let gateway = if gateway.is_empty() { "none" } else { gateway };
    field(out, "  ", &format!("{name} gateway"), gateway);
}

fn field(out: &mut String, indent: &str, label: &str, value: &str) {
    let width = LABEL_WIDTH.saturating_sub(indent.len());
    let _ = writeln!(out, "{indent}{label:<width$}  {value}");
}

/// A run of bindings that `podman ps` prints as one range.
struct Run<'a> {
    host_ip: &'a str,
    protocol: &'a str,
    container_start: u16,
    container_end: u16,
    /// `None` when the host port is not a number (only from hand-edited input) or not yet chosen
    /// (0): such bindings never join a run.
    host_start: Option<u16>,
    host_end: u16,
    host_text: &'a str,
}

impl Run<'_> {
    fn extends_to(&self, next: &Run<'_>) -> bool {
        self.host_ip == next.host_ip
            && self.protocol == next.protocol
            && u32::from(next.container_start) == u32::from(self.container_end) + 1
            && self.host_start.is_some()
            && next
                .host_start
                .is_some_and(|h| u32::from(h) == u32::from(self.host_end) + 1)
    }

    fn render(&self) -> String {
        let host_ip = match self.host_ip {
            // podman ps shows "every address" as the IPv4 wildcard.
            "" => "0.0.0.0".to_owned(),
            ip if ip.contains(':') => format!("[{ip}]"),
            ip => ip.to_owned(),
        };
        let host = match self.host_start {
            Some(start) if start != self.host_end => format!("{start}-{}", self.host_end),
            _ => self.host_text.to_owned(),
        };
        let container = if self.container_start == self.container_end {
            self.container_start.to_string()
        } else {
            format!("{}-{}", self.container_start, self.container_end)
        };
        format!("{host_ip}:{host}->{container}/{}", self.protocol)
    }
}

/// `HOSTIP:HOSTPORT->PORT/PROTO` lines, consecutive ports folded into ranges.
fn port_lines(settings: &NetworkSettings) -> Vec<String> {
    let mut singles: Vec<Run<'_>> = settings
        .ports
        .iter()
        .flat_map(|(key, bindings)| {
            bindings.iter().map(move |b| {
                let host_start = b.host_port.parse::<u16>().ok().filter(|&p| p != 0);
                Run {
                    host_ip: &b.host_ip,
                    protocol: &key.protocol,
                    container_start: key.port,
                    container_end: key.port,
                    host_start,
                    host_end: host_start.unwrap_or(0),
                    host_text: &b.host_port,
                }
            })
        })
        .collect();
    // Group what can fold next to each other; the stable sort keeps mapping order for ties.
    singles.sort_by(|a, b| {
        (a.host_ip, a.protocol, a.container_start, a.host_start).cmp(&(
            b.host_ip,
            b.protocol,
            b.container_start,
            b.host_start,
        ))
    });
    let mut runs: Vec<Run<'_>> = Vec::new();
    for single in singles {
        match runs.last_mut() {
            Some(run) if run.extends_to(&single) => {
                run.container_end = single.container_end;
                run.host_end = single.host_end;
            }
            _ => runs.push(single),
        }
    }
    runs.sort_by(|a, b| {
        (a.container_start, a.protocol, a.host_ip, a.host_start).cmp(&(
            b.container_start,
            b.protocol,
            b.host_ip,
            b.host_start,
        ))
    });
    runs.iter().map(Run::render).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::port_bindings;
    use netctl_types::PortMapping;

    fn check_ports(ports: &[PortMapping], expect: &[&str]) {
        let settings = NetworkSettings {
            ports: port_bindings(ports),
            ..NetworkSettings::default()
        };
        assert_eq!(port_lines(&settings), expect);
    }

    fn pm(host_ip: &str, host_port: u16, container_port: u16, range: u16) -> PortMapping {
        PortMapping {
            host_ip: host_ip.to_owned(),
            container_port,
            host_port,
            range,
            protocol: "tcp".to_owned(),
        }
    }

    #[test]
    fn ports_fold_only_when_both_sides_continue() {
        check_ports(
            &[pm("", 8000, 9000, 3)],
            &["0.0.0.0:8000-8002->9000-9002/tcp"],
        );
        // Separately published neighbours fold too, as podman ps shows them.
        check_ports(
            &[pm("", 8081, 81, 1), pm("", 8080, 80, 1)],
            &["0.0.0.0:8080-8081->80-81/tcp"],
        );
        // Container side continues, host side does not.
        check_ports(
            &[pm("", 8080, 80, 1), pm("", 9090, 81, 1)],
            &["0.0.0.0:8080->80/tcp", "0.0.0.0:9090->81/tcp"],
        );
        // Different host addresses never fold.
        check_ports(
            &[pm("", 8080, 80, 1), pm("::1", 8081, 81, 1)],
            &["0.0.0.0:8080->80/tcp", "[::1]:8081->81/tcp"],
        );
        // Host ports not chosen yet never fold.
        check_ports(
            &[pm("", 0, 80, 2)],
            &["0.0.0.0:0->80/tcp", "0.0.0.0:0->81/tcp"],
        );
    }
}

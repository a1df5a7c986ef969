//! slirp4netns options checked and resolved to what is actually run, and the published ports
//! checked against what slirp4netns can forward. Pure: no I/O.
//!
//! The rules are podman's (`slirp4netns:k=v` parsing) plus slirp4netns's own, checked up front
//! so a bad option is a clear error instead of a dead helper:
//! * `cidr`: IPv4, a network address (slirp4netns refuses `10.0.2.5/24`), prefix 1–25 (the
//!   container's `+100` address must fit).
//! * `mtu`: 68–65521 (podman's minimum, slirp4netns's maximum); default 65520.
//! * `enable_ipv6`: default true (podman's default).
//! * `outbound_addr`: an IPv4 address or an interface name; `outbound_addr6`: an IPv6 address
//!   or an interface name, and only with `enable_ipv6`.
//! * `port_handler`: `slirp4netns` forwards through slirp4netns's API socket. podman's default
//!   `rootlesskit` runs `rootlessport`, which exists for rootless podman only; netctl runs as
//!   root without it and forwards `rootlesskit` ports through the API socket as well. A
//!   container sees the same published ports either way; what differs is only who listens on
//!   the host (slirp4netns instead of rootlessport).
//! * ports: TCP and UDP only, host addresses IPv4 only (slirp4netns's `add_hostfwd` takes an
//!   IPv4 `host_addr`; `""` means 0.0.0.0), host ports chosen; UDP on a loopback address only
//!   with `allow_host_loopback` (see [`host_forwards`]).

use std::net::IpAddr;

use ipnet::Ipv4Net;
use netctl_types::{PortHandler, PortMapping, SlirpOptions, check_interface_name};

use crate::SlirpError;

/// slirp4netns's MTU limit (`--mtu`, "max=65521").
pub const MAX_MTU: u32 = 65521;
/// podman's minimum MTU.
pub const MIN_MTU: u32 = 68;
/// slirp4netns's longest prefix (`prefix length needs to be 1-25`).
pub const MAX_PREFIX: u8 = 25;

/// Where outgoing connections are bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    Address(IpAddr),
    /// An interface of the host; resolved to its address when slirp4netns starts.
    Interface(String),
}

/// Validated slirp4netns settings: the options with podman's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The user-mode subnet, when given (absent: slirp4netns's 10.0.2.0/24, flag not passed).
    pub cidr: Option<Ipv4Net>,
    pub mtu: u32,
    /// Whether `mtu` was given (an unsupported `--mtu` is then an error, not a skip).
    pub mtu_given: bool,
    pub enable_ipv6: bool,
    pub allow_host_loopback: bool,
    pub outbound_addr: Option<Outbound>,
    pub outbound_addr6: Option<Outbound>,
    pub port_handler: PortHandler,
}

impl Settings {
    /// The subnet in effect.
    pub fn cidr(&self) -> Ipv4Net {
        self.cidr.unwrap_or(SlirpOptions::DEFAULT_CIDR)
    }
}

fn invalid(option: &'static str, value: &impl ToString, reason: impl Into<String>) -> SlirpError {
    SlirpError::Option {
        option,
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn outbound(option: &'static str, text: &str, v6: bool) -> Result<Outbound, SlirpError> {
    let family = if v6 { "IPv6" } else { "IPv4" };
    match text.parse::<IpAddr>() {
        Ok(ip) if ip.is_ipv6() == v6 => Ok(Outbound::Address(ip)),
        Ok(_) => Err(invalid(option, &text, format!("not an {family} address"))),
        Err(_) => check_interface_name(text)
            .map(|()| Outbound::Interface(text.to_owned()))
            .map_err(|err| {
                invalid(
                    option,
                    &text,
                    format!("neither an {family} address nor an interface name ({err})"),
                )
            }),
    }
}

/// Checks `opts` and applies podman's defaults.
pub fn validate(opts: &SlirpOptions) -> Result<Settings, SlirpError> {
    if let Some(cidr) = opts.cidr {
        if cidr.prefix_len() == 0 || cidr.prefix_len() > MAX_PREFIX {
            return Err(invalid(
                "cidr",
                &cidr,
                format!(
                    "the prefix length must be 1-{MAX_PREFIX} (the container gets the network's address + 100)"
                ),
            ));
        }
        if cidr != cidr.trunc() {
            return Err(invalid(
                "cidr",
                &cidr,
                format!("not a network address; did you mean {}?", cidr.trunc()),
            ));
        }
    }
    let mtu = opts.mtu();
    if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
        return Err(invalid("mtu", &mtu, format!("must be {MIN_MTU}-{MAX_MTU}")));
    }
    let enable_ipv6 = opts.enable_ipv6();
    let outbound_addr = opts
        .outbound_addr
        .as_deref()
        .map(|text| outbound("outbound_addr", text, false))
        .transpose()?;
    let outbound_addr6 = opts
        .outbound_addr6
        .as_deref()
        .map(|text| outbound("outbound_addr6", text, true))
        .transpose()?;
    if let (Some(text), false) = (&opts.outbound_addr6, enable_ipv6) {
        return Err(invalid("outbound_addr6", text, "needs enable_ipv6 = true"));
    }
    Ok(Settings {
        cidr: opts.cidr,
        mtu,
        mtu_given: opts.mtu.is_some(),
        enable_ipv6,
        allow_host_loopback: opts.allow_host_loopback(),
        outbound_addr,
        outbound_addr6,
        port_handler: opts.port_handler(),
    })
}

/// One port slirp4netns forwards (`add_hostfwd`'s arguments).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostFwd {
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// The host address as slirp4netns lists it (`0.0.0.0` for every address).
    pub host_addr: String,
    pub host_port: u16,
    pub guest_port: u16,
}

/// The single-port forwards for `ports`, in order; refuses what slirp4netns cannot forward.
///
/// `allow_host_loopback` is the container's option: while it is off (slirp4netns
/// `--disable-host-loopback`, the default), slirp4netns drops every packet the container sends
/// to the gateway address, and the reply to a UDP datagram that came from the host's loopback
/// is such a packet (the datagram arrives from the gateway). A UDP port published on a loopback
/// address can then never answer, so it is refused with the way out; on other addresses only
/// clients on the host itself are affected (documented, not refused). TCP is unaffected.
pub fn host_forwards(
    ports: &[PortMapping],
    allow_host_loopback: bool,
) -> Result<Vec<HostFwd>, SlirpError> {
    let mut out = Vec::new();
    for mapping in ports {
        let refuse = |reason: &str| SlirpError::Port {
            mapping: netctl_pasta::mapping_text(mapping),
            reason: reason.to_owned(),
        };
        if mapping.chooses_host_port() {
            return Err(refuse(
                "no host port yet; one must be chosen before slirp4netns forwards it",
            ));
        }
        let mut loopback = false;
        let host_addr = match mapping.host_ip.as_str() {
            "" => "0.0.0.0".to_owned(),
            text => match text.parse::<IpAddr>() {
                Ok(IpAddr::V4(v4)) => {
                    loopback = v4.is_loopback();
                    v4.to_string()
                }
                Ok(IpAddr::V6(_)) => {
                    return Err(refuse("slirp4netns forwards from IPv4 host addresses only"));
                }
                Err(_) => return Err(refuse("the host IP is not an IP address")),
            },
        };
        let protocols = mapping
            .protocol
            .split(',')
            .map(|p| match p.trim().to_ascii_lowercase().as_str() {
                "tcp" => Ok("tcp"),
                "udp" => Ok("udp"),
                "sctp" => Err(refuse(
                    "slirp4netns cannot forward sctp; publish sctp ports with mode = \"bridge\"",
                )),
                _ => Err(refuse("unknown protocol: expected tcp or udp")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let last = mapping.port_count() - 1;
        if mapping.host_port.checked_add(last).is_none()
            || mapping.container_port.checked_add(last).is_none()
        {
            return Err(refuse("the range runs past port 65535"));
        }
        if loopback && !allow_host_loopback && protocols.contains(&"udp") {
            return Err(refuse(
                "slirp4netns drops the replies to UDP from the host's loopback while \
                 allow_host_loopback = false; set allow_host_loopback = true or publish on \
                 another address",
            ));
        }
        for proto in protocols {
            out.extend(mapping.expand().map(|(host_port, guest_port)| HostFwd {
                proto,
                host_addr: host_addr.clone(),
                host_port,
                guest_port,
            }));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use netctl_types::Protocol;

    use super::*;

    fn opts(edit: impl FnOnce(&mut SlirpOptions)) -> SlirpOptions {
        let mut opts = SlirpOptions::default();
        edit(&mut opts);
        opts
    }

    /// Every rule, one line each, as a user reads it.
    #[test]
    fn validation_table() {
        let cases: Vec<(&str, SlirpOptions)> = vec![
            ("defaults", SlirpOptions::default()),
            (
                "cidr /16",
                opts(|o| o.cidr = Some("10.9.0.0/16".parse().unwrap())),
            ),
            (
                "cidr /25",
                opts(|o| o.cidr = Some("10.9.0.128/25".parse().unwrap())),
            ),
            (
                "cidr /26",
                opts(|o| o.cidr = Some("10.9.0.0/26".parse().unwrap())),
            ),
            (
                "cidr /0",
                opts(|o| o.cidr = Some("0.0.0.0/0".parse().unwrap())),
            ),
            (
                "cidr with host bits",
                opts(|o| o.cidr = Some("10.0.2.100/24".parse().unwrap())),
            ),
            ("mtu 67", opts(|o| o.mtu = Some(67))),
            ("mtu 65522", opts(|o| o.mtu = Some(65522))),
            ("mtu 1500", opts(|o| o.mtu = Some(1500))),
            (
                "outbound_addr v4",
                opts(|o| o.outbound_addr = Some("192.0.2.10".into())),
            ),
            (
                "outbound_addr interface",
                opts(|o| o.outbound_addr = Some("uplink0".into())),
            ),
            (
                "outbound_addr v6",
                opts(|o| o.outbound_addr = Some("2001:db8::10".into())),
            ),
            (
                "outbound_addr junk",
                opts(|o| o.outbound_addr = Some("a b".into())),
            ),
            (
                "outbound_addr6 v4",
                opts(|o| o.outbound_addr6 = Some("192.0.2.10".into())),
            ),
            (
                "outbound_addr6 without ipv6",
                opts(|o| {
                    o.outbound_addr6 = Some("2001:db8::10".into());
                    o.enable_ipv6 = Some(false);
                }),
            ),
            (
                "port_handler slirp4netns",
                opts(|o| o.port_handler = Some(PortHandler::Slirp4netns)),
            ),
        ];
        let mut out = String::new();
        for (name, opts) in cases {
            let result = match validate(&opts) {
                Ok(settings) => format!("{settings:?}"),
                Err(err) => format!("error: {err}"),
            };
            let _ = writeln!(out, "{name}: {result}");
        }
        insta::assert_snapshot!(out);
    }

    fn port(host_ip: &str, host: u16, ctr: u16, range: u16, protocol: &str) -> PortMapping {
        PortMapping {
            host_ip: host_ip.into(),
            range,
            protocol: protocol.into(),
            ..PortMapping::new(host, ctr, Protocol::Tcp)
        }
    }

    #[test]
    fn ports_expand_to_single_forwards_and_unforwardable_ones_are_refused() {
        let fwds = host_forwards(
            &[
                port("127.0.0.1", 8080, 80, 2, "tcp"),
                port("", 5353, 53, 1, "udp"),
                port("", 9000, 9000, 1, "tcp,udp"),
            ],
            false,
        )
        .unwrap();
        let text: Vec<String> = fwds
            .iter()
            .map(|f| {
                format!(
                    "{} {}:{}->{}",
                    f.proto, f.host_addr, f.host_port, f.guest_port
                )
            })
            .collect();
        assert_eq!(
            text,
            [
                "tcp 127.0.0.1:8080->80",
                "tcp 127.0.0.1:8081->81",
                "udp 0.0.0.0:5353->53",
                "tcp 0.0.0.0:9000->9000",
                "udp 0.0.0.0:9000->9000",
            ]
        );
        let errors: Vec<String> = [
            port("", 9000, 9000, 1, "sctp"),
            port("", 9000, 9000, 1, "icmp"),
            port("::1", 9000, 9000, 1, "tcp"),
            port("", 0, 80, 1, "tcp"),
            port("", 65535, 80, 2, "tcp"),
            port("127.0.0.1", 5353, 53, 1, "udp"),
        ]
        .iter()
        .map(|p| {
            host_forwards(std::slice::from_ref(p), false)
                .unwrap_err()
                .to_string()
        })
        .collect();
        let loopback_udp = port("127.0.0.1", 5353, 53, 1, "udp");
        assert!(host_forwards(&[loopback_udp], true).is_ok());
        insta::assert_snapshot!(errors.join("\n"), @r#"
        port mapping 9000:9000/sctp: slirp4netns cannot forward sctp; publish sctp ports with mode = "bridge"
        port mapping 9000:9000/icmp: unknown protocol: expected tcp or udp
        port mapping [::1]:9000:9000/tcp: slirp4netns forwards from IPv4 host addresses only
        port mapping 0:80/tcp: no host port yet; one must be chosen before slirp4netns forwards it
        port mapping 65535-65536:80-81/tcp: the range runs past port 65535
        port mapping 127.0.0.1:5353:53/udp: slirp4netns drops the replies to UDP from the host's loopback while allow_host_loopback = false; set allow_host_loopback = true or publish on another address
        "#);
    }
}

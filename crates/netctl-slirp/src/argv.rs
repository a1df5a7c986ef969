//! slirp4netns's command line, in podman's order, from validated settings. Pure: no I/O.
//!
//! podman: `[--disable-host-loopback] --mtu=N [--enable-sandbox] [--enable-seccomp] [--cidr=C]
//! [--enable-ipv6] [--outbound-addr=X] [--outbound-addr6=Y] -c -e 3 -r 4 [--api-socket PATH]
//! --netns-type=path NSPATH tap0`. netctl's differences, each deliberate:
//! * no `-e FD` (exit pipe). podman hands the pipe's write end to conmon, which lives as long as
//!   the container; netctl exits right after `apply`, so any pipe it held would end slirp4netns
//!   with it. slirp4netns runs until netctl stops it by pid (`SIGTERM`), which is what
//!   `destroy` and container removal do; its tap device keeps the namespace alive, so it does
//!   not end by itself.
//! * `-r 0` instead of `-r 4`: the ready pipe is slirp4netns's standard input, the one
//!   descriptor netctl-sys can hand a child without unsafe code.
//! * no `--enable-sandbox`: its `pivot_root` and `umount` of the old root propagate back
//!   through shared mounts when `/run` is not a mount point of its own (seen in the test
//!   sandbox: every `/run/netns` bind mount vanished from the caller's namespace), which would
//!   take every named namespace on the machine down with it. `--enable-seccomp` is kept.
//! * `--api-socket` always (when supported): ports are forwarded through it for either
//!   `port_handler`, and a later port change needs no restart.
//! * an interface name given as `outbound_addr(6)` is resolved by the caller to the
//!   interface's address first (slirp4netns 1.2.0 looks up `outbound_addr6` interfaces with
//!   the IPv4 option's value), so only addresses reach here.
//! * a requested option the binary does not support is an error (podman silently dropped
//!   `--disable-host-loopback` and `--mtu`).

use std::net::IpAddr;

use crate::features::Features;
use crate::settings::Settings;
use crate::{SlirpConfig, SlirpError, TAP_NAME};

/// The ready pipe's descriptor in slirp4netns: its standard input.
const READY_FD: &str = "0";

/// slirp4netns's command line for `cfg`, program first.
///
/// `outbound` holds the resolved `outbound_addr` and `outbound_addr6` (an interface replaced by
/// its address). The API socket is passed when the binary supports it and required when there
/// are ports to forward.
pub fn argv(
    cfg: &SlirpConfig,
    settings: &Settings,
    features: &Features,
    outbound: (Option<IpAddr>, Option<IpAddr>),
) -> Result<Vec<String>, SlirpError> {
    let program = cfg.program.as_str();
    let needs_api = !cfg.ports.is_empty();
    let unsupported = |flag: &'static str, needed_for: &str| SlirpError::Unsupported {
        program: program.to_owned(),
        flag,
        needed_for: needed_for.to_owned(),
    };
    if !features.netns_type {
        return Err(unsupported("--netns-type", "joining a namespace by path"));
    }
    let mut argv = vec![program.to_owned()];
    if !settings.allow_host_loopback {
        if !features.disable_host_loopback {
            return Err(unsupported(
                "--disable-host-loopback",
                "allow_host_loopback = false (the default)",
            ));
        }
        argv.push("--disable-host-loopback".to_owned());
    }
    if features.mtu {
        argv.push(format!("--mtu={}", settings.mtu));
    } else if settings.mtu_given {
        return Err(unsupported("--mtu", "the mtu option"));
    }
    if features.enable_seccomp {
        argv.push("--enable-seccomp".to_owned());
    }
    if let Some(cidr) = settings.cidr {
        if !features.cidr {
            return Err(unsupported("--cidr", "the cidr option"));
        }
        argv.push(format!("--cidr={cidr}"));
    }
    if settings.enable_ipv6 {
        if !features.enable_ipv6 {
            return Err(unsupported(
                "--enable-ipv6",
                "enable_ipv6 = true (the default)",
            ));
        }
        argv.push("--enable-ipv6".to_owned());
    }
    let (outbound4, outbound6) = outbound;
    if let Some(ip) = outbound4 {
        if !features.outbound_addr {
            return Err(unsupported("--outbound-addr", "the outbound_addr option"));
        }
        argv.push(format!("--outbound-addr={ip}"));
    }
    if let Some(ip) = outbound6 {
        if !features.outbound_addr6 {
            return Err(unsupported("--outbound-addr6", "the outbound_addr6 option"));
        }
        argv.push(format!("--outbound-addr6={ip}"));
    }
    argv.extend(["-c", "-r", READY_FD].map(str::to_owned));
    if features.api_socket {
        argv.push("--api-socket".to_owned());
        argv.push(cfg.api_socket.display().to_string());
    } else if needs_api {
        return Err(unsupported("--api-socket", "publishing ports"));
    }
    argv.push("--netns-type=path".to_owned());
    argv.push(cfg.netns.display().to_string());
    argv.push(TAP_NAME.to_owned());
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use netctl_types::{PortHandler, PortMapping, Protocol, SlirpOptions};

    use super::*;
    use crate::settings::validate;

    fn settings(edit: impl FnOnce(&mut SlirpOptions)) -> Settings {
        let mut opts = SlirpOptions::default();
        edit(&mut opts);
        validate(&opts).unwrap()
    }

    /// name, settings, binary features, resolved outbound addresses, ports to forward.
    type Case = (
        &'static str,
        Settings,
        Features,
        (Option<IpAddr>, Option<IpAddr>),
        bool,
    );

    /// One snapshot of the whole table: each case's options and the argv (or the error).
    #[test]
    fn argv_table() {
        let all = Features::all();
        let old = Features {
            enable_ipv6: false,
            mtu: false,
            outbound_addr: false,
            outbound_addr6: false,
            enable_seccomp: false,
            ..Features::all()
        };
        let no_api = Features {
            api_socket: false,
            ..Features::all()
        };
        let none = (None, None);
        let cases: Vec<Case> = vec![
            ("podman defaults", settings(|_| {}), all, none, false),
            (
                "cidr, mtu, no ipv6, host loopback allowed",
                settings(|o| {
                    o.cidr = Some("10.9.8.0/24".parse().unwrap());
                    o.mtu = Some(1500);
                    o.enable_ipv6 = Some(false);
                    o.allow_host_loopback = Some(true);
                }),
                all,
                none,
                false,
            ),
            (
                "outbound addresses (interfaces resolved by the caller)",
                settings(|o| {
                    o.outbound_addr = Some("uplink0".into());
                    o.outbound_addr6 = Some("2001:db8::10".into());
                }),
                all,
                (
                    Some("192.0.2.10".parse().unwrap()),
                    Some("2001:db8::10".parse().unwrap()),
                ),
                false,
            ),
            (
                "port_handler slirp4netns with ports",
                settings(|o| o.port_handler = Some(PortHandler::Slirp4netns)),
                all,
                none,
                true,
            ),
            (
                "old binary, ipv6 by default",
                settings(|_| {}),
                old,
                none,
                false,
            ),
            (
                "old binary, ipv6 off, mtu not given",
                settings(|o| o.enable_ipv6 = Some(false)),
                old,
                none,
                false,
            ),
            (
                "old binary, mtu given",
                settings(|o| {
                    o.enable_ipv6 = Some(false);
                    o.mtu = Some(9000);
                }),
                old,
                none,
                false,
            ),
            (
                "no API socket, no ports",
                settings(|_| {}),
                no_api,
                none,
                false,
            ),
            ("no API socket, ports", settings(|_| {}), no_api, none, true),
        ];
        let mut out = String::new();
        for (name, settings, features, outbound, needs_api) in cases {
            let _ = writeln!(out, "## {name}");
            let mut cfg = SlirpConfig::new("/run/netns/c1", "/run/netctl/containers/c1");
            if needs_api {
                cfg.ports = vec![PortMapping::new(8080, 80, Protocol::Tcp)];
            }
            let result = argv(&cfg, &settings, &features, outbound);
            match result {
                Ok(argv) => {
                    let _ = writeln!(out, "argv:  {}", argv.join(" "));
                }
                Err(err) => {
                    let _ = writeln!(out, "error: {err}");
                }
            }
            out.push('\n');
        }
        insta::assert_snapshot!(out);
    }
}

//! pasta's command line, built as podman 4.4 builds it, with podman's bugs fixed.
//!
//! Order (podman's): `--config-net`; one `-t`/`-u` spec per port mapping and protocol, always in
//! range form `[HOSTIP/]H-Hend:C-Cend`; the user's arguments; the defaults `-t none`, `-u none`,
//! `-T none`, `-U none`, `--no-map-gw`, each only when the user did not set that option;
//! netctl's own `--runas 0` (root only), `--pid FILE`, `--quiet`; `--netns PATH` last.
//!
//! Fixed podman bugs: an sctp mapping is refused (podman appended its spec with no `-t`/`-u`);
//! `--tcp-ports=80`, `-t80` and option clusters count as the user setting that option (podman
//! only saw exact tokens and then added a conflicting `-t none`); `--map-gw` is removed
//! wherever it stands without hiding the token after it, and contradicting `--no-map-gw` is an
//! error. Also refused: options netctl sets itself, host port 0 (not chosen yet).
//!
//! Pure: no I/O.

use std::net::IpAddr;

use netctl_types::PortMapping;

use crate::options::{self, MAP_GW};
use crate::{PastaConfig, PastaError};

/// ROOT-ONLY: the one place of this crate that assumes netctl runs as root. pasta started by
/// root drops to `nobody` unless told otherwise, and then cannot join the namespace ("Couldn't
/// switch to pasta namespaces"); as root it must stay root. Rootless netctl would leave this out.
const ROOT_ONLY_ARGS: [&str; 2] = ["--runas", "0"];

/// Options netctl sets itself (by long name); a user's copy is refused.
const OWNED: [&str; 6] = ["netns", "config-net", "runas", "pid", "foreground", "quiet"];

/// Each default and the user option that suppresses it.
const DEFAULTS: [(&str, [&str; 2]); 4] = [
    ("tcp-ports", ["-t", "none"]),
    ("udp-ports", ["-u", "none"]),
    ("tcp-ns", ["-T", "none"]),
    ("udp-ns", ["-U", "none"]),
];

/// A port mapping in podman's `-p` form, for messages: `[127.0.0.1]:8080-8081:80-81/tcp`.
pub fn mapping_text(mapping: &PortMapping) -> String {
    let count = u32::from(mapping.port_count());
    let span = |first: u16| {
        if count == 1 {
            first.to_string()
        } else {
            format!("{first}-{}", u32::from(first) + count - 1)
        }
    };
    let host = if mapping.host_ip.is_empty() {
        String::new()
    } else if mapping.host_ip.contains(':') {
        format!("[{}]:", mapping.host_ip)
    } else {
        format!("{}:", mapping.host_ip)
    };
    format!(
        "{host}{}:{}/{}",
        span(mapping.host_port),
        span(mapping.container_port),
        mapping.protocol
    )
}

/// The `-t`/`-u` arguments for the port mappings, in order.
fn port_args(ports: &[PortMapping]) -> Result<Vec<String>, PastaError> {
    let mut out = Vec::new();
    for mapping in ports {
        let text = || mapping_text(mapping);
        if mapping.chooses_host_port() {
            return Err(PastaError::HostPortNotChosen { mapping: text() });
        }
        let last = mapping.port_count() - 1;
        let (Some(host_end), Some(ctr_end)) = (
            mapping.host_port.checked_add(last),
            mapping.container_port.checked_add(last),
        ) else {
            return Err(PastaError::PortRange { mapping: text() });
        };
        let address = if mapping.host_ip.is_empty() {
            String::new()
        } else {
            // pasta wants an IPv6 address unbracketed before the '/'.
            let ip: IpAddr = mapping.host_ip.parse().map_err(|_| PastaError::HostIp {
                host_ip: mapping.host_ip.clone(),
                mapping: text(),
            })?;
            format!("{ip}/")
        };
        // A normalised mapping has one protocol; podman's comma lists are read too.
        for protocol in mapping.protocol.split(',') {
            let flag = match protocol.trim().to_ascii_lowercase().as_str() {
                "tcp" => "-t",
                "udp" => "-u",
                "sctp" => return Err(PastaError::Sctp { mapping: text() }),
                _ => {
                    return Err(PastaError::UnknownProtocol {
                        protocol: protocol.to_owned(),
                        mapping: text(),
                    });
                }
            };
            out.push(flag.to_owned());
            out.push(format!(
                "{address}{}-{host_end}:{}-{ctr_end}",
                mapping.host_port, mapping.container_port
            ));
        }
    }
    Ok(out)
}

/// pasta's whole command line for `cfg`, program first.
pub fn argv(cfg: &PastaConfig) -> Result<Vec<String>, PastaError> {
    let user = options::scan(&cfg.options);
    if let Some(found) = user.found.iter().find(|f| OWNED.contains(&f.option.long)) {
        return Err(PastaError::OwnedOption {
            spelled: found.spelled.clone(),
            option: found.option.long,
        });
    }
    if let Some(argument) = user.positional.first() {
        return Err(PastaError::Positional {
            argument: argument.clone(),
        });
    }
    if user.map_gw
        && let Some(found) = user.found.iter().find(|f| f.option.long == "no-map-gw")
    {
        return Err(PastaError::MapGwConflict {
            spelled: found.spelled.clone(),
        });
    }
    let ports = port_args(&cfg.ports)?;
    let mut argv = vec![cfg.program.clone(), "--config-net".to_owned()];
    argv.extend(ports);
    argv.extend(user.kept.iter().cloned());
    // Our own -t/-u specs count like the user's: with published TCP ports there is no `-t none`.
    let ours = options::scan(&argv[1..]);
    for (long, default) in DEFAULTS {
        if !ours.has(long) {
            argv.extend(default.map(str::to_owned));
        }
    }
    if !user.map_gw && !ours.has("no-map-gw") {
        argv.push("--no-map-gw".to_owned());
    }
    argv.extend(ROOT_ONLY_ARGS.map(str::to_owned));
    argv.push("--pid".to_owned());
    argv.push(cfg.pid_file.display().to_string());
    argv.push("--quiet".to_owned());
    argv.push("--netns".to_owned());
    argv.push(cfg.netns.display().to_string());
    debug_assert!(!argv.iter().any(|a| a == MAP_GW));
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use netctl_types::Protocol;

    use super::*;

    fn tcp(host: u16, ctr: u16) -> PortMapping {
        PortMapping::new(host, ctr, Protocol::Tcp)
    }

    fn udp(host: u16, ctr: u16) -> PortMapping {
        PortMapping::new(host, ctr, Protocol::Udp)
    }

    fn with(mut mapping: PortMapping, host_ip: &str, range: u16) -> PortMapping {
        mapping.host_ip = host_ip.to_owned();
        mapping.range = range;
        mapping
    }

    fn config(ports: Vec<PortMapping>, options: &[&str]) -> PastaConfig {
        PastaConfig {
            ports,
            options: options.iter().map(|s| (*s).to_owned()).collect(),
            ..PastaConfig::new("/run/netns/c1", "/run/netctl/c1/pasta.pid")
        }
    }

    /// One snapshot of the whole table: each case's inputs and the argv (or the error).
    #[test]
    fn argv_table() {
        let cases: Vec<(&str, PastaConfig)> = vec![
            ("no ports, no options", config(vec![], &[])),
            (
                "one tcp port on every address",
                config(vec![tcp(8080, 80)], &[]),
            ),
            (
                "tcp range on 127.0.0.1 and a udp port",
                config(
                    vec![with(tcp(18080, 80), "127.0.0.1", 2), udp(5353, 53)],
                    &[],
                ),
            ),
            (
                "IPv6 host address, unbracketed",
                config(vec![with(tcp(8443, 443), "::1", 1)], &[]),
            ),
            ("podman comma list of protocols", {
                let mut both = tcp(9000, 9000);
                both.protocol = "tcp,udp".into();
                config(vec![both], &[])
            }),
            ("user mtu, split tokens", config(vec![], &["--mtu", "1500"])),
            (
                "user -t with a separate value",
                config(vec![], &["-t", "8080"]),
            ),
            (
                "user --tcp-ports=SPEC (podman missed it)",
                config(vec![], &["--tcp-ports=80"]),
            ),
            ("user -t80 (podman missed it)", config(vec![], &["-t80"])),
            (
                "user cluster -4u53 (podman missed it)",
                config(vec![], &["-4u53"]),
            ),
            (
                "user -T and -U",
                config(vec![], &["-T", "auto", "-U", "auto"]),
            ),
            (
                "user --map-gw, then a token podman skipped",
                config(vec![], &["--map-gw", "-u", "53"]),
            ),
            (
                "user --no-map-gw is not doubled",
                config(vec![], &["--no-map-gw"]),
            ),
            (
                "user ports plus published ports",
                config(vec![tcp(8080, 80)], &["-t", "9090"]),
            ),
            ("sctp refused", {
                let mut sctp = tcp(9000, 9000);
                sctp.protocol = "sctp".into();
                config(vec![sctp], &[])
            }),
            ("unknown protocol refused", {
                let mut other = tcp(9000, 9000);
                other.protocol = "icmp".into();
                config(vec![other], &[])
            }),
            ("host port not chosen", config(vec![tcp(0, 80)], &[])),
            (
                "range past 65535",
                config(vec![with(tcp(65535, 80), "", 2)], &[]),
            ),
            (
                "bad host IP",
                config(vec![with(tcp(8080, 80), "localhost", 1)], &[]),
            ),
            (
                "netns set by netctl",
                config(vec![], &["--netns=/run/netns/other"]),
            ),
            ("pid in a cluster", config(vec![], &["-4P/tmp/x.pid"])),
            ("foreground by prefix", config(vec![], &["--fore"])),
            (
                "--map-gw with --no-map-gw",
                config(vec![], &["--map-gw", "--no-map-gw"]),
            ),
            ("a command is not an option", config(vec![], &["--", "sh"])),
            ("a stray value", config(vec![], &["--mtu", "1500", "9000"])),
        ];
        let mut out = String::new();
        for (name, cfg) in cases {
            let _ = writeln!(out, "## {name}");
            let ports: Vec<String> = cfg.ports.iter().map(mapping_text).collect();
            let _ = writeln!(out, "ports:   {}", ports.join(" "));
            let _ = writeln!(out, "options: {}", cfg.options.join(" "));
            match argv(&cfg) {
                Ok(argv) => {
                    let _ = writeln!(out, "argv:    {}", argv.join(" "));
                }
                Err(err) => {
                    let _ = writeln!(out, "error:   {err}");
                }
            }
            out.push('\n');
        }
        insta::assert_snapshot!(out);
    }

    #[test]
    fn published_ports_never_come_with_their_none_default() {
        // Whatever mix of mappings: a family with specs never also gets "none".
        let cfg = config(vec![tcp(1, 1), udp(2, 2)], &[]);
        let argv = argv(&cfg).unwrap();
        let pairs: Vec<(&str, &str)> = argv
            .windows(2)
            .map(|w| (w[0].as_str(), w[1].as_str()))
            .collect();
        assert!(!pairs.contains(&("-t", "none")) && !pairs.contains(&("-u", "none")));
        assert!(pairs.contains(&("-T", "none")) && pairs.contains(&("-U", "none")));
        assert_eq!(argv.last().unwrap(), "/run/netns/c1");
    }

    #[test]
    fn mapping_text_reads_like_podman_p() {
        assert_eq!(mapping_text(&tcp(8080, 80)), "8080:80/tcp");
        assert_eq!(
            mapping_text(&with(udp(9000, 90), "127.0.0.1", 3)),
            "127.0.0.1:9000-9002:90-92/udp"
        );
        assert_eq!(mapping_text(&with(tcp(1, 2), "::1", 1)), "[::1]:1:2/tcp");
    }
}

//! Reading the user's pasta options the way pasta's own `getopt_long` will.
//!
//! podman decides whether to add its `-t none`-style defaults by looking for exact tokens
//! (`-t`, `--tcp-ports`, ...), so `--tcp-ports=80`, `-t80` or a cluster like `-4t80` slip
//! through, podman adds `-t none` as well and pasta dies ("Port forwarding mode 'none' conflicts
//! with previous mode"). Here each token is read as getopt does: long options with `=VALUE` or
//! a separate value, unique prefixes of long options, clusters of short options where the first
//! one taking a value swallows the rest of the token (or the next token), and values are never
//! mistaken for options. Everything after `--` is a command, not an option.
//!
//! The table is pasta's option list as of the Debian 12 package (passt 0.0~git20230309); an
//! option this table does not know is passed through untouched and left for pasta to judge.

/// One pasta option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PastaOption {
    /// The long name, without `--`.
    pub long: &'static str,
    /// The short letter, if it has one.
    pub short: Option<char>,
    /// Whether it takes a value.
    pub takes_value: bool,
}

const fn opt(long: &'static str, short: Option<char>, takes_value: bool) -> PastaOption {
    PastaOption {
        long,
        short,
        takes_value,
    }
}

/// pasta's options (passt 0.0~git20230309, `pasta --help`).
const OPTIONS: &[PastaOption] = &[
    opt("debug", Some('d'), false),
    opt("trace", None, false),
    opt("quiet", Some('q'), false),
    opt("foreground", Some('f'), false),
    opt("stderr", Some('e'), false),
    opt("log-file", Some('l'), true),
    opt("log-size", None, true),
    opt("runas", None, true),
    opt("help", Some('h'), false),
    opt("version", None, false),
    opt("ns-ifname", Some('I'), true),
    opt("fd", Some('F'), true),
    opt("pcap", Some('p'), true),
    opt("pid", Some('P'), true),
    opt("mtu", Some('m'), true),
    opt("address", Some('a'), true),
    opt("netmask", Some('n'), true),
    opt("mac-addr", Some('M'), true),
    opt("gateway", Some('g'), true),
    opt("interface", Some('i'), true),
    opt("outbound", Some('o'), true),
    opt("outbound-if4", None, true),
    opt("outbound-if6", None, true),
    opt("dns", Some('D'), true),
    opt("search", Some('S'), true),
    opt("dhcp-dns", None, false),
    opt("dhcp-search", None, false),
    opt("dns-forward", None, true),
    opt("no-tcp", None, false),
    opt("no-udp", None, false),
    opt("no-icmp", None, false),
    opt("no-dhcp", None, false),
    opt("no-ndp", None, false),
    opt("no-dhcpv6", None, false),
    opt("no-ra", None, false),
    opt("no-map-gw", None, false),
    opt("ipv4-only", Some('4'), false),
    opt("ipv6-only", Some('6'), false),
    opt("tcp-ports", Some('t'), true),
    opt("udp-ports", Some('u'), true),
    opt("tcp-ns", Some('T'), true),
    opt("udp-ns", Some('U'), true),
    opt("userns", None, true),
    opt("netns", None, true),
    opt("netns-only", None, false),
    opt("no-netns-quit", None, false),
    opt("config-net", None, false),
    opt("ns-mac-addr", None, true),
];

/// podman's own pseudo-option: "map the gateway to the host", the opposite of `--no-map-gw`. It
/// is not a pasta option, so it is taken out of the command line.
pub(crate) const MAP_GW: &str = "--map-gw";

/// A long option by exact name, else by unique prefix (as `getopt_long` resolves them).
fn long_option(name: &str) -> Option<&'static PastaOption> {
    if let Some(exact) = OPTIONS.iter().find(|o| o.long == name) {
        return Some(exact);
    }
    let mut matches = OPTIONS.iter().filter(|o| o.long.starts_with(name));
    match (matches.next(), matches.next()) {
        (Some(only), None) if !name.is_empty() => Some(only),
        _ => None,
    }
}

fn short_option(letter: char) -> Option<&'static PastaOption> {
    OPTIONS.iter().find(|o| o.short == Some(letter))
}

/// An option found in the user's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// The option as pasta will understand it.
    pub option: &'static PastaOption,
    /// How the user spelled it (`-t`, `--tcp-p=80`, the `t` of `-4t80` shown as `-t`).
    pub spelled: String,
}

/// The user's arguments, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Scanned {
    /// The arguments to pass on: everything but podman's `--map-gw`.
    pub kept: Vec<String>,
    /// Every pasta option recognised, in order.
    pub found: Vec<Found>,
    /// Whether podman's `--map-gw` was given.
    pub map_gw: bool,
    /// Arguments that are neither options nor their values (everything after `--` too): pasta
    /// reads them as a command or PID.
    pub positional: Vec<String>,
}

impl Scanned {
    /// Whether the option with this long name was given.
    pub fn has(&self, long: &str) -> bool {
        self.found.iter().any(|f| f.option.long == long)
    }
}

/// Reads the user's pasta arguments.
pub(crate) fn scan(args: &[String]) -> Scanned {
    let mut out = Scanned::default();
    let mut tokens = args.iter();
    while let Some(token) = tokens.next() {
        if token == "--" {
            // The rest is a command and its arguments: nothing there is a pasta option.
            out.kept.push(token.clone());
            out.positional.extend(tokens.by_ref().cloned());
            out.kept.extend(out.positional.iter().cloned());
            break;
        }
        if token == MAP_GW {
            out.map_gw = true;
            continue;
        }
        out.kept.push(token.clone());
        let needs_value = if let Some(body) = token.strip_prefix("--") {
            let (name, inline_value) = match body.split_once('=') {
                Some((name, _)) => (name, true),
                None => (body, false),
            };
            match long_option(name) {
                Some(option) => {
                    out.found.push(Found {
                        option,
                        spelled: token.clone(),
                    });
                    option.takes_value && !inline_value
                }
                None => false,
            }
        } else if let Some(cluster) = token.strip_prefix('-').filter(|c| !c.is_empty()) {
            scan_cluster(cluster, &mut out.found)
        } else {
            out.positional.push(token.clone());
            false
        };
        if needs_value && let Some(value) = tokens.next() {
            out.kept.push(value.clone());
        }
    }
    out
}

/// Reads a cluster of short options (`4t80`, `fq`); returns whether its last option still
/// needs the next token as its value.
fn scan_cluster(cluster: &str, found: &mut Vec<Found>) -> bool {
    for (at, letter) in cluster.char_indices() {
        let Some(option) = short_option(letter) else {
            continue;
        };
        found.push(Found {
            option,
            spelled: format!("-{letter}"),
        });
        if option.takes_value {
            // The rest of the token is its value; without a rest, the next token is.
            return cluster[at + letter.len_utf8()..].is_empty();
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn positional_arguments_are_noted() {
        assert_eq!(
            scan(&args(&["-m", "1500", "sh", "--", "-t"])).positional,
            args(&["sh", "-t"])
        );
        assert!(
            scan(&args(&["-m1500", "--dns", "1.1.1.1"]))
                .positional
                .is_empty()
        );
    }

    /// `(long names found, kept arguments, --map-gw given)`.
    fn check(input: &[&str], found: &[&str], kept: &[&str], map_gw: bool) {
        let scanned = scan(&args(input));
        let names: Vec<&str> = scanned.found.iter().map(|f| f.option.long).collect();
        assert_eq!(names, found, "options found in {input:?}");
        assert_eq!(scanned.kept, args(kept), "arguments kept from {input:?}");
        assert_eq!(scanned.map_gw, map_gw, "--map-gw in {input:?}");
    }

    #[test]
    fn every_spelling_of_an_option_is_found() {
        check(&["-t", "80"], &["tcp-ports"], &["-t", "80"], false);
        check(&["-t80"], &["tcp-ports"], &["-t80"], false);
        check(
            &["--tcp-ports=80"],
            &["tcp-ports"],
            &["--tcp-ports=80"],
            false,
        );
        check(
            &["--tcp-ports", "80"],
            &["tcp-ports"],
            &["--tcp-ports", "80"],
            false,
        );
        check(
            &["--tcp-p", "80"],
            &["tcp-ports"],
            &["--tcp-p", "80"],
            false,
        );
        check(
            &["-4t80", "-uauto"],
            &["ipv4-only", "tcp-ports", "udp-ports"],
            &["-4t80", "-uauto"],
            false,
        );
        check(
            &["-4", "-T", "none"],
            &["ipv4-only", "tcp-ns"],
            &["-4", "-T", "none"],
            false,
        );
        check(&["-fq"], &["foreground", "quiet"], &["-fq"], false);
    }

    #[test]
    fn values_are_not_options() {
        // `-D -t`: "-t" is the value of -D (a silly one), not a port option.
        check(
            &["-D", "-t", "--mtu", "--tcp-ns"],
            &["dns", "mtu"],
            &["-D", "-t", "--mtu", "--tcp-ns"],
            false,
        );
        check(
            &["-m1500", "-u", "53"],
            &["mtu", "udp-ports"],
            &["-m1500", "-u", "53"],
            false,
        );
    }

    #[test]
    fn map_gw_is_taken_out_and_the_next_token_is_still_read() {
        // podman's in-loop deletion skipped the token right after --map-gw.
        check(
            &["--map-gw", "-t", "80"],
            &["tcp-ports"],
            &["-t", "80"],
            true,
        );
        check(&["--map-gw", "--map-gw"], &[], &[], true);
        check(&["--no-map-gw"], &["no-map-gw"], &["--no-map-gw"], false);
    }

    #[test]
    fn ambiguous_and_unknown_options_are_left_for_pasta() {
        // --tcp could be --tcp-ports or --tcp-ns; --netn could be --netns or --netns-only.
        check(
            &["--tcp", "80", "--netn", "--frob"],
            &[],
            &["--tcp", "80", "--netn", "--frob"],
            false,
        );
        check(&["--netns-only"], &["netns-only"], &["--netns-only"], false);
        check(&["-z"], &[], &["-z"], false);
    }

    #[test]
    fn nothing_after_a_double_dash_is_an_option() {
        check(
            &["--", "-t", "--map-gw"],
            &[],
            &["--", "-t", "--map-gw"],
            false,
        );
        check(&["-"], &[], &["-"], false);
    }
}

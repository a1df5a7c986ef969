//! Name rules shared by the schema, the validator and the command line.
//!
//! Network and container names follow podman's `^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`. The pattern is
//! simple enough to check byte by byte, which keeps this crate free of a regex engine. Interface
//! names follow the kernel's `dev_valid_name`, hostnames RFC 1123.

use thiserror::Error;

/// The pattern every network and container name must match (podman's, shown in messages).
pub const NAME_PATTERN: &str = "^[a-zA-Z0-9][a-zA-Z0-9_.-]*$";

/// Names podman's CLI refuses for networks because `--network` gives them another meaning.
/// netctl adds `pasta`, which podman accepts but then shadows the pasta mode.
pub const RESERVED_NAMES: [&str; 8] = [
    "none",
    "host",
    "bridge",
    "private",
    "slirp4netns",
    "pasta",
    "container",
    "ns",
];

/// Length of a full container id: 64 lowercase hex digits.
pub const CONTAINER_ID_LEN: usize = 64;

/// Length of a short id (the first characters of the full id), as podman shows and aliases it.
pub const SHORT_ID_LEN: usize = 12;

/// Longest interface name the kernel accepts (`IFNAMSIZ` minus the terminating NUL).
pub const MAX_INTERFACE_NAME_LEN: usize = 15;

/// Longest hostname `sethostname(2)` and DNS accept.
pub const MAX_HOSTNAME_LEN: usize = 253;

/// Longest network or container name. A name becomes a file name (`<netns_dir>/NAME`,
/// `<etc_netns_dir>/NAME/`), a default hostname and part of link aliases; 253 bytes keeps each
/// of those inside what the kernel and DNS accept (a file name is at most 255 bytes).
pub const MAX_NAME_LEN: usize = 253;

/// The loopback interface every namespace has; netctl never creates, renames or deletes it, so
/// it is never a bridge or a container interface name.
pub const LOOPBACK: &str = "lo";

/// Longest link alias netctl sets. The kernel stores `IFALIASZ - 1` = 255 bytes, but refuses a
/// 255-byte alias in a new link's request once netlink's terminating NUL is counted ("Attribute
/// failed policy validation", measured here), so one byte less.
pub const MAX_LINK_ALIAS_LEN: usize = 254;

/// Why a string is not a usable network or container name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// The name does not match [`NAME_PATTERN`].
    #[error("names must match {NAME_PATTERN}")]
    Pattern,
    /// The name is longer than [`MAX_NAME_LEN`].
    #[error("the name is {len} bytes long; at most 253 are allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
}

/// Checks a network or container name: podman's pattern and netctl's length limit.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if !is_valid_name(name) {
        return Err(NameError::Pattern);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: name.len() });
    }
    Ok(())
}

/// A link alias from its parts joined by spaces, cut to what the kernel stores (on a character
/// boundary). Marks are compared through this function too, so a cut alias still matches.
pub fn link_alias(parts: &[&str]) -> String {
    let mut alias = parts.join(" ");
    if alias.len() > MAX_LINK_ALIAS_LEN {
        let mut end = MAX_LINK_ALIAS_LEN;
        while !alias.is_char_boundary(end) {
            end -= 1;
        }
        alias.truncate(end);
    }
    alias
}

/// A user-given string as messages show it: control characters escaped (so a message stays on
/// one line and the terminal safe), everything else as written, and a very long value cut with
/// its length noted, so an error about a 70 000-byte name is still readable.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a>(pub &'a str);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const KEEP: usize = 64;
        let text = self.0;
        for (i, ch) in text.chars().enumerate() {
            if i == KEEP {
                return write!(f, "… ({} bytes in all)", text.len());
            }
            if ch.is_control() {
                write!(f, "{}", ch.escape_default())?;
            } else {
                f.write_fmt(format_args!("{ch}"))?;
            }
        }
        Ok(())
    }
}

/// Whether `name` matches [`NAME_PATTERN`] (length aside: see [`check_name`]).
pub fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(first) if first.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether `name` is one of [`RESERVED_NAMES`] (compared exactly, as podman does).
pub fn is_reserved_name(name: &str) -> bool {
    RESERVED_NAMES.contains(&name)
}

/// The longest container id accepted, in bytes (as for names).
pub const MAX_CONTAINER_ID_LEN: usize = 253;

/// Checks a container id. podman's are 64 lowercase hex digits (and netctl generates such),
/// but netavark takes any id podman-like tools send (short ids, names), so any id is accepted
/// that is safe as one file-name component and as one field of a line: not empty, not `.` or
/// `..`, no `/`, no whitespace or control characters, at most [`MAX_CONTAINER_ID_LEN`] bytes.
/// The error says what is wrong.
pub fn check_container_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        Err("is empty")
    } else if id == "." || id == ".." {
        Err("is `.` or `..`")
    } else if id.contains('/') {
        Err("contains `/`")
    } else if id.chars().any(char::is_control) {
        Err("contains a control character")
    } else if id.chars().any(char::is_whitespace) {
        Err("contains whitespace")
    } else if id.len() > MAX_CONTAINER_ID_LEN {
        Err("is longer than 253 bytes")
    } else {
        Ok(())
    }
}

/// Whether `id` is an acceptable container id (see [`check_container_id`]).
pub fn is_valid_container_id(id: &str) -> bool {
    check_container_id(id).is_ok()
}

/// The short form of an id: its first [`SHORT_ID_LEN`] characters (all of it when shorter).
pub fn short_id(id: &str) -> &str {
    match id.char_indices().nth(SHORT_ID_LEN) {
        Some((end, _)) => &id[..end],
        None => id,
    }
}

/// Why a string is not a usable interface name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InterfaceNameError {
    /// The name is empty.
    #[error("interface name is empty")]
    Empty,
    /// The name is longer than the kernel allows.
    #[error("interface name `{name}` is {len} bytes long; the kernel allows at most 15")]
    TooLong {
        /// The offending name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// `.` and `..` would clash with sysfs/procfs directory entries.
    #[error("interface name `{name}` is not allowed")]
    Dot {
        /// The offending name.
        name: String,
    },
    /// `lo` is the namespace's loopback interface, which netctl never creates or deletes.
    #[error("interface name `lo` is the loopback interface, which netctl never creates or deletes")]
    Loopback,
    /// The kernel refuses `/`, `:` and whitespace in interface names.
    #[error("interface name `{name}` contains {ch:?}, which the kernel does not allow")]
    BadChar {
        /// The offending name.
        name: String,
        /// The first character that is not allowed.
        ch: char,
    },
}

/// Checks `name` against the kernel's rules for interface names (`dev_valid_name`).
pub fn check_interface_name(name: &str) -> Result<(), InterfaceNameError> {
    if name.is_empty() {
        return Err(InterfaceNameError::Empty);
    }
    if name.len() > MAX_INTERFACE_NAME_LEN {
        return Err(InterfaceNameError::TooLong {
            name: name.to_owned(),
            len: name.len(),
        });
    }
    if name == "." || name == ".." {
        return Err(InterfaceNameError::Dot {
            name: name.to_owned(),
        });
    }
    if let Some(ch) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace())
    {
        return Err(InterfaceNameError::BadChar {
            name: name.to_owned(),
            ch,
        });
    }
    Ok(())
}

/// Checks the name of an interface netctl creates (a bridge, a container's interface): the
/// kernel's rules, and not `lo`, which every namespace has and netctl never creates or deletes.
pub fn check_created_interface_name(name: &str) -> Result<(), InterfaceNameError> {
    check_interface_name(name)?;
    if name == LOOPBACK {
        return Err(InterfaceNameError::Loopback);
    }
    Ok(())
}

/// Whether `name` is a usable interface name (see [`check_interface_name`]).
pub fn is_valid_interface_name(name: &str) -> bool {
    check_interface_name(name).is_ok()
}

/// Why a string is not a valid hostname.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HostnameError {
    /// The hostname is empty.
    #[error("hostname is empty")]
    Empty,
    /// The hostname is longer than 253 bytes.
    #[error("hostname is {len} bytes long; at most 253 are allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A dot-separated label is empty (leading, trailing or doubled dot).
    #[error("hostname `{name}` has an empty label")]
    EmptyLabel {
        /// The offending hostname.
        name: String,
    },
    /// A label is longer than 63 bytes.
    #[error("label `{label}` is longer than 63 bytes")]
    LabelTooLong {
        /// The offending label.
        label: String,
    },
    /// A label holds something other than letters, digits and inner hyphens.
    #[error(
        "label `{label}` must be letters, digits and hyphens, not starting or ending with a hyphen"
    )]
    BadLabel {
        /// The offending label.
        label: String,
    },
}

/// Checks `name` as an RFC 1123 hostname: at most 253 bytes, dot-separated labels of 1–63
/// letters, digits and hyphens, no label starting or ending with a hyphen.
pub fn check_hostname(name: &str) -> Result<(), HostnameError> {
    if name.is_empty() {
        return Err(HostnameError::Empty);
    }
    if name.len() > MAX_HOSTNAME_LEN {
        return Err(HostnameError::TooLong { len: name.len() });
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostnameError::EmptyLabel {
                name: name.to_owned(),
            });
        }
        if label.len() > 63 {
            return Err(HostnameError::LabelTooLong {
                label: label.to_owned(),
            });
        }
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok_chars || label.starts_with('-') || label.ends_with('-') {
            return Err(HostnameError::BadLabel {
                label: label.to_owned(),
            });
        }
    }
    Ok(())
}

/// Whether `name` is a valid hostname (see [`check_hostname`]).
pub fn is_valid_hostname(name: &str) -> bool {
    check_hostname(name).is_ok()
}

/// Why a container name or alias cannot be served by DNS.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DnsNameError {
    /// Empty name.
    #[error("a DNS name cannot be empty")]
    Empty,
    /// Something other than letters, digits, `_`, `-` and `.` (aardvark-dns reads a space or
    /// comma as the end of the name and drops the whole file).
    #[error("a DNS name holds only letters, digits, `_`, `-` and `.`")]
    BadChar,
    /// Longer than 253 bytes.
    #[error("a DNS name is at most 253 bytes; this one is {len}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A label (between dots) empty or over 63 bytes.
    #[error("DNS label {label:?} must be 1 to 63 bytes (between dots)")]
    BadLabel {
        /// The offending label.
        label: String,
    },
}

/// Checks a name that aardvark-dns serves (a container name or alias on a DNS network):
/// letters, digits, `_`, `-`, `.`; dot-separated labels of 1-63 bytes; at most 253 bytes.
pub fn check_dns_name(name: &str) -> Result<(), DnsNameError> {
    if name.is_empty() {
        return Err(DnsNameError::Empty);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(DnsNameError::BadChar);
    }
    if name.len() > MAX_HOSTNAME_LEN {
        return Err(DnsNameError::TooLong { len: name.len() });
    }
    if let Some(label) = name.split('.').find(|l| l.is_empty() || l.len() > 63) {
        return Err(DnsNameError::BadLabel {
            label: label.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_label_sequences() {
        for good in ["db", "web_1", "a.b-c", &"a".repeat(63)] {
            assert_eq!(check_dns_name(good), Ok(()), "{good}");
        }
        let long = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(63)
        );
        for (bad, want) in [
            ("", DnsNameError::Empty),
            ("bad name", DnsNameError::BadChar),
            ("a,b", DnsNameError::BadChar),
            (
                "a..b",
                DnsNameError::BadLabel {
                    label: String::new(),
                },
            ),
            (long.as_str(), DnsNameError::TooLong { len: 255 }),
        ] {
            assert_eq!(check_dns_name(bad), Err(want), "{bad:?}");
        }
        assert!(matches!(
            check_dns_name(&"x".repeat(64)),
            Err(DnsNameError::BadLabel { .. })
        ));
    }

    #[test]
    fn names_follow_podmans_pattern() {
        for good in [
            "a", "A1", "web", "my-net", "my_net", "net.1", "0", "a--", "a..",
        ] {
            assert!(is_valid_name(good), "{good} should be valid");
        }
        for bad in ["", "-a", "_a", ".a", "a b", "a/b", "a:b", "ä", "a\n", "a@b"] {
            assert!(!is_valid_name(bad), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn name_lengths() {
        assert_eq!(check_name(&"a".repeat(253)), Ok(()));
        assert_eq!(
            check_name(&"a".repeat(254)),
            Err(NameError::TooLong { len: 254 })
        );
        assert_eq!(check_name("a/b"), Err(NameError::Pattern));
        assert_eq!(check_name(""), Err(NameError::Pattern));
    }

    #[test]
    fn aliases_are_cut_to_what_the_kernel_keeps() {
        assert_eq!(link_alias(&["netctl", "web", "net"]), "netctl web net");
        let long = link_alias(&["netctl", &"a".repeat(300)]);
        assert_eq!(long.len(), 254);
        assert!(long.starts_with("netctl aaa"));
        // A multi-byte character across the limit is left out whole.
        let wide = link_alias(&["netctl", &format!("{}é", "a".repeat(246))]);
        assert_eq!(wide.len(), 253);
    }

    #[test]
    fn shown_values_stay_readable() {
        assert_eq!(Shown("réseau").to_string(), "réseau");
        assert_eq!(Shown("a\nb\u{1b}").to_string(), "a\\nb\\u{1b}");
        let long = "x".repeat(70_000);
        assert_eq!(
            Shown(&long).to_string(),
            format!("{}… (70000 bytes in all)", "x".repeat(64))
        );
    }

    #[test]
    fn reserved_names_are_exact() {
        for name in RESERVED_NAMES {
            assert!(is_reserved_name(name));
        }
        assert!(!is_reserved_name("Host"));
        assert!(!is_reserved_name("default"));
        assert!(!is_reserved_name("podman"));
    }

    #[test]
    fn container_ids() {
        let id = "6ce776ea58b5aaaabbbbccccddddeeeeffff0000111122223333444455556666";
        for good in [id, &id.to_uppercase(), &id[..12], "web", "my-ctr_1.2", "ÿ"] {
            assert_eq!(check_container_id(good), Ok(()), "{good:?}");
        }
        let long = "a".repeat(254);
        for (bad, why) in [
            ("", "is empty"),
            (".", "is `.` or `..`"),
            ("..", "is `.` or `..`"),
            ("a/b", "contains `/`"),
            ("a\nb", "contains a control character"),
            ("a\u{7f}", "contains a control character"),
            ("a b", "contains whitespace"),
            (long.as_str(), "is longer than 253 bytes"),
        ] {
            assert_eq!(check_container_id(bad), Err(why), "{bad:?}");
        }
        assert_eq!(short_id(id), "6ce776ea58b5");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(short_id(""), "");
    }

    #[test]
    fn interface_names() {
        assert_eq!(check_interface_name("eth0"), Ok(()));
        assert_eq!(check_interface_name("a23456789012345"), Ok(()));
        assert_eq!(
            check_interface_name("a234567890123456"),
            Err(InterfaceNameError::TooLong {
                name: "a234567890123456".into(),
                len: 16
            })
        );
        assert_eq!(check_interface_name(""), Err(InterfaceNameError::Empty));
        assert!(matches!(
            check_interface_name(".."),
            Err(InterfaceNameError::Dot { .. })
        ));
        assert!(matches!(
            check_interface_name("a b"),
            Err(InterfaceNameError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            check_interface_name("a/b"),
            Err(InterfaceNameError::BadChar { ch: '/', .. })
        ));
        assert!(!is_valid_interface_name("eth0:1"));
        assert_eq!(
            check_interface_name("lo"),
            Ok(()),
            "lo is a name an option may refer to"
        );
        assert_eq!(
            check_created_interface_name("lo"),
            Err(InterfaceNameError::Loopback)
        );
        assert_eq!(check_created_interface_name("lo0"), Ok(()));
    }

    #[test]
    fn hostnames() {
        for good in ["api", "a.b.c", "x-1", "A1", &"a".repeat(63)] {
            assert!(is_valid_hostname(good), "{good}");
        }
        assert_eq!(check_hostname(""), Err(HostnameError::Empty));
        assert!(matches!(
            check_hostname("a..b"),
            Err(HostnameError::EmptyLabel { .. })
        ));
        assert!(matches!(
            check_hostname("-a"),
            Err(HostnameError::BadLabel { .. })
        ));
        assert!(matches!(
            check_hostname("a_b"),
            Err(HostnameError::BadLabel { .. })
        ));
        assert!(matches!(
            check_hostname(&"a".repeat(64)),
            Err(HostnameError::LabelTooLong { .. })
        ));
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(matches!(
            check_hostname(&long),
            Err(HostnameError::TooLong { len: 259 })
        ));
    }
}

//! Settings files and `NETCTL_*` values, checked like desired-state files: every mistake at
//! once, each at its line and column, with "did you mean" for a misspelt key. The settings
//! themselves (names, kinds) belong to the binary; this module knows how to check a table of
//! them.

use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Diagnostic, Severity, Sink};
use crate::suggest::hint;

/// What a setting's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A non-empty path.
    Path,
    /// A non-empty string.
    Text,
    /// A subnet in CIDR notation.
    Subnet,
    /// A whole number, zero or more.
    Count,
    /// A path, or `""` for none.
    PathOrNone,
    /// A port number, 1 to 65535.
    Port,
    /// One of these words.
    OneOf(&'static [&'static str]),
}

/// Checks one value given as text (an environment variable's): `Err` says what is wrong.
pub fn check_setting_text(value: &str, expect: Expect) -> Result<(), String> {
    match expect {
        Expect::Path | Expect::Text if value.is_empty() => Err("must not be empty".to_owned()),
        Expect::Path | Expect::Text | Expect::PathOrNone => Ok(()),
        Expect::Port => match value.parse::<u16>() {
            Ok(port) if port > 0 => Ok(()),
            _ => Err(format!("`{value}` is not a port number from 1 to 65535")),
        },
        Expect::Subnet => value
            .parse::<ipnet::IpNet>()
            .map(drop)
            .map_err(|_| format!("`{value}` is not a subnet like 10.88.0.0/16")),
        Expect::Count => value
            .parse::<u64>()
            .map(drop)
            .map_err(|_| format!("`{value}` is not a whole number of zero or more")),
        Expect::OneOf(words) if words.contains(&value) => Ok(()),
        Expect::OneOf(words) => Err(format!(
            "`{value}` is not one of {}",
            words
                .iter()
                .map(|w| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Checks a settings file's `text` against `keys`: syntax, unknown keys, each value's kind.
/// Returns every finding (none: the file is good).
pub fn check_settings_file(file: &str, text: &str, keys: &[(&str, Expect)]) -> Vec<Diagnostic> {
    let mut sink = Sink::default();
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(error) => {
            let span = error.span().unwrap_or(0..0);
            let message = format!("TOML syntax error: {}", error.message().trim_end());
            sink.push(Severity::Error, span, String::new(), message);
            return sink.finish(file, text);
        }
    };
    for (key, value) in root.get_ref() {
        let name = key.get_ref().as_ref();
        let Some((_, expect)) = keys.iter().find(|(k, _)| *k == name) else {
            let message = format!(
                "unknown setting `{name}`{}",
                hint(name, keys.iter().map(|(k, _)| *k))
            );
            sink.push(Severity::Error, key.span(), name.to_owned(), message);
            continue;
        };
        let found = match (value.get_ref(), expect) {
            (
                DeValue::String(s),
                Expect::Path
                | Expect::Text
                | Expect::Subnet
                | Expect::OneOf(_)
                | Expect::PathOrNone,
            ) => check_setting_text(s, *expect).err(),
            (DeValue::Integer(int), Expect::Port) => {
                check_setting_text(int.as_str(), *expect).err()
            }
            (other, Expect::Port) => Some(format!(
                "expected a port number, found {}",
                other.type_str()
            )),
            (DeValue::Integer(int), Expect::Count) => check_setting_text(int.as_str(), *expect)
                .err()
                .map(|_| format!("`{int}` is not a whole number of zero or more")),
            (other, Expect::Count) => Some(format!(
                "expected a whole number, found {}",
                other.type_str()
            )),
            (other, _) => Some(format!("expected a string, found {}", other.type_str())),
        };
        if let Some(message) = found {
            sink.push(
                Severity::Error,
                value.span(),
                name.to_owned(),
                format!("invalid {name}: {message}"),
            );
        }
    }
    sink.finish(file, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[(&str, Expect)] = &[
        ("state_dir", Expect::Path),
        ("lock_timeout", Expect::Count),
        ("firewall_driver", Expect::OneOf(&["nftables", "none"])),
        ("default_subnet", Expect::Subnet),
    ];

    #[test]
    fn every_mistake_is_located() {
        let text = "stat_dir = \"/x\"\nlock_timeout = \"5\"\nfirewall_driver = \"iptables\"\ndefault_subnet = \"10.88.0.0\"\nstate_dir = \"\"\n";
        let found: Vec<String> = check_settings_file("s.toml", text, KEYS)
            .iter()
            .map(ToString::to_string)
            .collect();
        insta::assert_snapshot!(found.join("\n"), @r"
        s.toml:1:1: error: unknown setting `stat_dir`; did you mean `state_dir`? [field: stat_dir]
        s.toml:2:16: error: invalid lock_timeout: expected a whole number, found string [field: lock_timeout]
        s.toml:3:19: error: invalid firewall_driver: `iptables` is not one of `nftables`, `none` [field: firewall_driver]
        s.toml:4:18: error: invalid default_subnet: `10.88.0.0` is not a subnet like 10.88.0.0/16 [field: default_subnet]
        s.toml:5:13: error: invalid state_dir: must not be empty [field: state_dir]
        ");
        assert!(check_settings_file("s.toml", "lock_timeout = 5\n", KEYS).is_empty());
        let syntax = check_settings_file("s.toml", "lock_timeout = \n", KEYS);
        assert_eq!(syntax.len(), 1);
        assert!(syntax[0].message.starts_with("TOML syntax error"));
    }
}

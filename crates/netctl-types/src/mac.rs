//! Ethernet MAC addresses as podman stores them.
//!
//! Shown and serialised in the lowercase colon form (`02:42:ac:11:00:02`). Deserialisation also
//! accepts a JSON array of six bytes, because c/common's `HardwareAddr` unmarshals that form too.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// A 48-bit Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

/// A string that is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid MAC address `{input}`: expected six hex octets like 02:42:ac:11:00:02")]
pub struct MacParseError {
    /// The text that failed to parse.
    pub input: String,
}

impl MacAddr {
    /// The address's six octets.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Group (multicast or broadcast) address: the I/G bit of the first octet is set.
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Individual (unicast) address: the only kind an interface may carry.
    pub const fn is_unicast(self) -> bool {
        !self.is_multicast()
    }

    /// Locally administered (the U/L bit is set), as randomly generated addresses are.
    pub const fn is_locally_administered(self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// The all-zero address, which the kernel refuses for an interface.
    pub fn is_zero(self) -> bool {
        self.0 == [0; 6]
    }
}

impl FromStr for MacAddr {
    type Err = MacParseError;

    /// Parses six two-digit hex octets separated by `:` or `-` (one separator throughout),
    /// in either case, like Go's `net.ParseMAC` does for 48-bit addresses.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError {
            input: s.to_owned(),
        };
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut octets = [0u8; 6];
        let mut parts = s.split(sep);
        for octet in &mut octets {
            let part = parts.next().ok_or_else(err)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Self(octets))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, octet) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{octet:02x}")?;
        }
        Ok(())
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        Self(octets)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MacVisitor;

        impl<'de> Visitor<'de> for MacVisitor {
            type Value = MacAddr;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a MAC address string or an array of six bytes")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<MacAddr, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<MacAddr, A::Error> {
                let mut octets = [0u8; 6];
                for (i, octet) in octets.iter_mut().enumerate() {
                    *octet = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(7, &self));
                }
                Ok(MacAddr(octets))
            }
        }

        deserializer.deserialize_any(MacVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_lowercase_colon_form() {
        let mac: MacAddr = "02:42:AC:11:00:02".parse().unwrap();
        assert_eq!(mac, MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]));
        assert_eq!(mac.to_string(), "02:42:ac:11:00:02");
        assert_eq!("02-42-ac-11-00-02".parse::<MacAddr>().unwrap(), mac);
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "2:42:ac:11:00:02",
            "02:42:ac:11:00:0g",
            "02-42:ac:11:00:02",
            "0242.ac11.0002",
            "02:42:ac:11:00:002",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn address_kinds() {
        let unicast: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        assert!(unicast.is_unicast() && unicast.is_locally_administered());
        let multicast: MacAddr = "01:00:5e:00:00:01".parse().unwrap();
        assert!(multicast.is_multicast() && !multicast.is_unicast());
        assert!(
            "ff:ff:ff:ff:ff:ff"
                .parse::<MacAddr>()
                .unwrap()
                .is_multicast()
        );
        assert!(MacAddr([0; 6]).is_zero());
    }

    #[test]
    fn serde_string_and_byte_array() {
        let mac = MacAddr([0x3e, 0xaa, 0x03, 0xb8, 0x5f, 0x29]);
        assert_eq!(
            serde_json::to_string(&mac).unwrap(),
            "\"3e:aa:03:b8:5f:29\""
        );
        let from_str: MacAddr = serde_json::from_str("\"3e:aa:03:b8:5f:29\"").unwrap();
        let from_bytes: MacAddr = serde_json::from_str("[62,170,3,184,95,41]").unwrap();
        assert_eq!(from_str, mac);
        assert_eq!(from_bytes, mac);
        assert!(serde_json::from_str::<MacAddr>("[1,2,3]").is_err());
        assert!(serde_json::from_str::<MacAddr>("[1,2,3,4,5,6,7]").is_err());
        assert!(serde_json::from_str::<MacAddr>("\"nope\"").is_err());
    }
}

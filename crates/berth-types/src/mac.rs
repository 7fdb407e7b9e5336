//! Ethernet (MAC) addresses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A 48-bit Ethernet address, shown, parsed and serialised as `02:42:ac:11:00:02`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `00:00:00:00:00:00`: the destination of the flood entries a VXLAN device needs (one per
    /// remote VTEP, added with berth-netlink's `Handle::fdb_append`).
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The six octets.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// True for `00:00:00:00:00:00`.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// True for group (multicast or broadcast) addresses: the lowest bit of the first octet is set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// True if the address is usable as an interface's own address (not zero, not a group address).
    pub fn is_valid_unicast(&self) -> bool {
        !self.is_zero() && !self.is_multicast()
    }

    /// Reads an address from raw bytes (a netlink attribute); `None` unless exactly six long.
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(b).ok().map(MacAddr)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    /// Parses six hexadecimal octets separated by `:` or `-`.
    fn from_str(s: &str) -> Result<MacAddr> {
        let bad = || Error::InvalidMac {
            given: s.chars().take(200).collect(),
        };
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for slot in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.is_empty() || part.len() > 2 {
                return Err(bad());
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> Self {
        MacAddr(b)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<MacAddr, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde helpers that keep an `Option<MacAddr>` as its text form (`"02:42:ac:11:00:02"`) or
/// `null`: the form records have always had (`#[serde(with = "mac_serde")]`); the same as
/// `Option<MacAddr>`'s own serde form.
pub mod mac_serde {
    use super::MacAddr;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises `Option<MacAddr>` as an optional string.
    pub fn serialize<S: Serializer>(mac: &Option<MacAddr>, s: S) -> Result<S::Ok, S::Error> {
        match mac {
            Some(m) => s.collect_str(m),
            None => s.serialize_none(),
        }
    }

    /// Deserialises an optional string into `Option<MacAddr>`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MacAddr>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let m: MacAddr = "02:42:AC:11:00:02".parse().unwrap();
        assert_eq!(m.to_string(), "02:42:ac:11:00:02");
        assert_eq!("02-42-ac-11-00-02".parse::<MacAddr>().unwrap(), m);
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "0g:00:00:00:00:00",
            "123:0:0:0:0:0",
            "::::::",
        ] {
            assert_eq!(
                bad.parse::<MacAddr>(),
                Err(Error::InvalidMac { given: bad.into() }),
                "{bad}"
            );
        }
        assert!(MacAddr::ZERO.is_zero());
        assert!(!MacAddr::ZERO.is_valid_unicast());
        assert!(
            !"ff:ff:ff:ff:ff:ff"
                .parse::<MacAddr>()
                .unwrap()
                .is_valid_unicast()
        );
        assert!(
            !"01:00:5e:00:00:01"
                .parse::<MacAddr>()
                .unwrap()
                .is_valid_unicast()
        );
        assert!(m.is_valid_unicast());
        assert_eq!(
            MacAddr::from_slice(&[2, 0, 0, 0, 0, 1]),
            Some(MacAddr([2, 0, 0, 0, 0, 1]))
        );
        assert_eq!(MacAddr::from_slice(&[2, 0, 0, 0, 0]), None);
    }

    #[test]
    fn the_message_names_the_address() {
        let e = "02:42".parse::<MacAddr>().unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid argument for MAC address \"02:42\": expected six hexadecimal octets \
             separated by ':', e.g. 02:42:ac:11:00:02"
        );
    }

    #[test]
    fn serde_is_the_text_form_records_have() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Old {
            #[serde(with = "mac_serde")]
            mac: Option<MacAddr>,
        }
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct New {
            mac: Option<MacAddr>,
        }
        let m: MacAddr = "02:42:ac:11:00:02".parse().unwrap();
        let old = serde_json::to_string(&Old { mac: Some(m) }).unwrap();
        assert_eq!(old, r#"{"mac":"02:42:ac:11:00:02"}"#);
        assert_eq!(serde_json::to_string(&New { mac: Some(m) }).unwrap(), old);
        assert_eq!(
            serde_json::from_str::<New>(&old).unwrap(),
            New { mac: Some(m) }
        );
        assert_eq!(
            serde_json::to_string(&New { mac: None }).unwrap(),
            r#"{"mac":null}"#
        );
        assert_eq!(
            serde_json::from_str::<Old>(r#"{"mac":null}"#).unwrap(),
            Old { mac: None }
        );
        let err = serde_json::from_str::<MacAddr>(r#""02:42""#).unwrap_err();
        assert!(err.to_string().contains("MAC address \"02:42\""), "{err}");
    }
}

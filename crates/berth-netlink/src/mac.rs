//! Ethernet (MAC) addresses.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A 48-bit Ethernet address, shown and parsed as `02:42:ac:11:00:02`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `00:00:00:00:00:00`: the destination of the flood entries a VXLAN device needs (one per
    /// remote VTEP, added with [`crate::Handle::fdb_append`]).
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

    /// Reads an address from a netlink attribute; `None` unless it is exactly six bytes long.
    pub(crate) fn from_slice(b: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(b).ok().map(MacAddr)
    }

    /// Checks that the address can be given to an interface.
    pub(crate) fn check_unicast(&self, object: impl FnOnce() -> String) -> Result<()> {
        if self.is_valid_unicast() {
            Ok(())
        } else {
            Err(Error::InvalidArgument {
                object: object(),
                message: format!(
                    "MAC address {self} cannot be an interface address (it is zero or a \
                     multicast/broadcast address); use a unicast address such as 02:xx:xx:xx:xx:xx"
                ),
            })
        }
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
        let bad = || Error::InvalidArgument {
            object: format!("MAC address {s:?}"),
            message: "expected six hexadecimal octets separated by ':', e.g. 02:42:ac:11:00:02"
                .into(),
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

#[cfg(test)]
mod tests {
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
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
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
    }
}

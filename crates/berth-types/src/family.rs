//! The IP family: IPv4 or IPv6.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// An IP family. Shown as `IPv4` / `IPv6`; serialised as `"v4"` / `"v6"` (berth-ipam's form),
/// and `"V4"` / `"V6"` (berth-firewall's former form) are read as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    /// IPv4 (`iptables`, nft `ip`).
    #[serde(alias = "V4")]
    V4,
    /// IPv6 (`ip6tables`, nft `ip6`).
    #[serde(alias = "V6")]
    V6,
}

impl IpFamily {
    /// The family of an address.
    #[must_use]
    pub fn of(addr: IpAddr) -> IpFamily {
        match addr {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// The family of a network.
    #[must_use]
    pub fn of_net(net: IpNet) -> IpFamily {
        match net {
            IpNet::V4(_) => IpFamily::V4,
            IpNet::V6(_) => IpFamily::V6,
        }
    }

    /// Number of bits in an address of the family, the longest prefix length (32 or 128).
    #[must_use]
    pub fn bits(self) -> u8 {
        match self {
            IpFamily::V4 => 32,
            IpFamily::V6 => 128,
        }
    }

    /// `IPv4` or `IPv6`, for messages (the [`fmt::Display`] form).
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn of_bits_and_display() {
        assert_eq!(IpFamily::of("10.0.0.1".parse().unwrap()), IpFamily::V4);
        assert_eq!(IpFamily::of("fe80::1".parse().unwrap()), IpFamily::V6);
        assert_eq!(
            IpFamily::of_net("10.0.0.0/8".parse().unwrap()),
            IpFamily::V4
        );
        assert_eq!(IpFamily::of_net("fd00::/8".parse().unwrap()), IpFamily::V6);
        assert_eq!((IpFamily::V4.bits(), IpFamily::V6.bits()), (32, 128));
        assert_eq!(IpFamily::V6.to_string(), "IPv6");
        assert_eq!(IpFamily::V4.label(), "IPv4");
        assert!(IpFamily::V4 < IpFamily::V6);
    }

    #[test]
    fn serde_writes_lowercase_and_reads_both_old_forms() {
        assert_eq!(serde_json::to_string(&IpFamily::V4).unwrap(), r#""v4""#);
        assert_eq!(serde_json::to_string(&IpFamily::V6).unwrap(), r#""v6""#);
        // berth-ipam's form.
        assert_eq!(
            serde_json::from_str::<IpFamily>(r#""v6""#).unwrap(),
            IpFamily::V6
        );
        // berth-firewall's form (serde's default for its former `Family`).
        assert_eq!(
            serde_json::from_str::<IpFamily>(r#""V4""#).unwrap(),
            IpFamily::V4
        );
        assert_eq!(
            serde_json::from_str::<IpFamily>(r#""V6""#).unwrap(),
            IpFamily::V6
        );
        assert!(serde_json::from_str::<IpFamily>(r#""ipv4""#).is_err());
    }
}

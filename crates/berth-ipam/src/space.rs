//! Address spaces and their default pools.

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::addr::IpFamily;
use crate::error::{Error, Result};

/// An address space: pools may overlap across spaces but never inside one.
///
/// Serialised, displayed and parsed with libnetwork's names, `LocalDefault` and `GlobalDefault`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AddressSpace {
    /// Local-scope networks (bridge, macvlan on one host). Docker's `LocalDefault`.
    #[serde(rename = "LocalDefault")]
    Local,
    /// Global-scope networks (overlay across hosts). Docker's `GlobalDefault`.
    #[serde(rename = "GlobalDefault")]
    Global,
}

impl AddressSpace {
    /// libnetwork's name of the space.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "LocalDefault",
            Self::Global => "GlobalDefault",
        }
    }
}

impl fmt::Display for AddressSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AddressSpace {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "LocalDefault" => Ok(Self::Local),
            "GlobalDefault" => Ok(Self::Global),
            _ => Err(Error::InvalidPoolId {
                input: s.to_owned(),
                reason: format!(
                    "unknown address space {s:?} (expected LocalDefault or GlobalDefault)"
                ),
            }),
        }
    }
}

/// One `default-address-pools` entry: `base` is cut into consecutive subnets of prefix length
/// `size`, handed out in order to networks created without a subnet.
///
/// Always valid: `size` lies between the base's prefix length and 32 (IPv4) or 128 (IPv6), and `base`
/// is a network address (no host bits). Deserialisation (`{"base": "10.10.0.0/16", "size": 24}`, the
/// shape of dockerd's `daemon.json`) checks the same rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "DefaultPoolRepr")]
pub struct DefaultPool {
    base: IpNet,
    size: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultPoolRepr {
    base: IpNet,
    size: u8,
}

impl TryFrom<DefaultPoolRepr> for DefaultPool {
    type Error = Error;

    fn try_from(r: DefaultPoolRepr) -> Result<Self> {
        Self::new(r.base, r.size)
    }
}

impl DefaultPool {
    /// A validated default pool.
    ///
    /// # Errors
    /// [`Error::DefaultPoolSizeTooSmall`] if `size` is shorter than the base's prefix,
    /// [`Error::DefaultPoolSizeTooLarge`] if it is longer than an address (32 or 128), and
    /// [`Error::DefaultPoolBaseNotNetwork`] if `base` has host bits set.
    pub fn new(base: IpNet, size: u8) -> Result<Self> {
        if size < base.prefix_len() {
            return Err(Error::DefaultPoolSizeTooSmall { base, size });
        }
        if size > base.max_prefix_len() {
            return Err(Error::DefaultPoolSizeTooLarge { base, size });
        }
        if base.trunc() != base {
            return Err(Error::DefaultPoolBaseNotNetwork { base });
        }
        Ok(Self { base, size })
    }

    /// The network the pools are cut from.
    #[must_use]
    pub fn base(&self) -> IpNet {
        self.base
    }

    /// The prefix length of each pool cut from the base.
    #[must_use]
    pub fn size(&self) -> u8 {
        self.size
    }

    /// The address family of the base.
    #[must_use]
    pub fn family(&self) -> IpFamily {
        IpFamily::of_net(self.base)
    }

    /// Docker's local default pools: 172.17.0.0/16 through 172.31.0.0/16 as /16s, then
    /// 192.168.0.0/16 as /20s (written as libnetwork writes them; the subnets come out in the same
    /// order).
    #[must_use]
    pub fn docker_local_defaults() -> Vec<Self> {
        [
            ("172.17.0.0/16", 16),
            ("172.18.0.0/16", 16),
            ("172.19.0.0/16", 16),
            ("172.20.0.0/14", 16),
            ("172.24.0.0/14", 16),
            ("172.28.0.0/14", 16),
            ("192.168.0.0/16", 20),
        ]
        .iter()
        .filter_map(|&(b, s)| Self::known(b, s))
        .collect()
    }

    /// Docker's global default pools: 10.0.0.0/8 as /24s.
    #[must_use]
    pub fn docker_global_defaults() -> Vec<Self> {
        Self::known("10.0.0.0/8", 24).into_iter().collect()
    }

    /// A compile-time-known valid entry (never `None` for the constants above; checked by tests).
    fn known(base: &str, size: u8) -> Option<Self> {
        let base = base.parse().ok()?;
        Self::new(base, size).ok()
    }
}

impl fmt::Display for DefaultPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "base={},size={}", self.base, self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn docker_defaults_are_complete() {
        let l = DefaultPool::docker_local_defaults();
        assert_eq!(l.len(), 7);
        let total: u32 = l
            .iter()
            .map(|p| 1u32 << (p.size() - p.base().prefix_len()))
            .sum();
        // 15 /16s (172.17..=172.31) and 16 /20s.
        assert_eq!(total, 15 + 16);
        let g = DefaultPool::docker_global_defaults();
        assert_eq!(g, vec![DefaultPool::new(net("10.0.0.0/8"), 24).unwrap()]);
    }

    #[test]
    fn validation() {
        assert_eq!(
            DefaultPool::new(net("10.0.0.0/16"), 8),
            Err(Error::DefaultPoolSizeTooSmall {
                base: net("10.0.0.0/16"),
                size: 8
            })
        );
        assert_eq!(
            DefaultPool::new(net("10.0.0.0/16"), 33),
            Err(Error::DefaultPoolSizeTooLarge {
                base: net("10.0.0.0/16"),
                size: 33
            })
        );
        assert!(DefaultPool::new(net("2001:db8::/48"), 128).is_ok());
        assert!(matches!(
            DefaultPool::new(net("2001:db8::/48"), 129),
            Err(Error::DefaultPoolSizeTooLarge { .. })
        ));
        let e = DefaultPool::new(net("10.1.2.3/16"), 24).unwrap_err();
        assert_eq!(
            e,
            Error::DefaultPoolBaseNotNetwork {
                base: net("10.1.2.3/16")
            }
        );
        assert!(e.to_string().contains("use 10.1.0.0/16"), "{e}");
        assert!(DefaultPool::new(net("10.0.0.0/16"), 16).is_ok());
        assert!(DefaultPool::new(net("0.0.0.0/0"), 0).is_ok());
    }

    #[test]
    fn serde_validates() {
        let ok: DefaultPool = serde_json::from_str(r#"{"base":"10.10.0.0/16","size":24}"#).unwrap();
        assert_eq!(ok, DefaultPool::new(net("10.10.0.0/16"), 24).unwrap());
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"base":"10.10.0.0/16","size":24}"#
        );
        assert!(
            serde_json::from_str::<DefaultPool>(r#"{"base":"10.10.0.0/16","size":8}"#).is_err()
        );
        assert!(
            serde_json::from_str::<DefaultPool>(r#"{"base":"10.10.0.1/16","size":24}"#).is_err()
        );
        assert!(serde_json::from_str::<DefaultPool>(r#"{"base":"10.10.0.0/16"}"#).is_err());
    }

    #[test]
    fn space_names() {
        assert_eq!(AddressSpace::Local.to_string(), "LocalDefault");
        assert_eq!(
            "GlobalDefault".parse::<AddressSpace>().unwrap(),
            AddressSpace::Global
        );
        assert!("global".parse::<AddressSpace>().is_err());
        assert_eq!(
            serde_json::to_string(&AddressSpace::Global).unwrap(),
            "\"GlobalDefault\""
        );
    }
}

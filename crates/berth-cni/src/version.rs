//! CNI specification versions: the ones berth-cni speaks, what each allows, and the VERSION
//! command's answer.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::{CniError, ErrorCode};

/// A CNI specification version (`MAJOR.MINOR.PATCH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CniVersion {
    major: u16,
    minor: u16,
    patch: u16,
}

impl CniVersion {
    /// 0.3.0: the rich result type (interfaces, ips with a `version` field).
    pub const V0_3_0: CniVersion = CniVersion::new(0, 3, 0);
    /// 0.3.1.
    pub const V0_3_1: CniVersion = CniVersion::new(0, 3, 1);
    /// 0.4.0: CHECK and `prevResult` on DEL.
    pub const V0_4_0: CniVersion = CniVersion::new(0, 4, 0);
    /// 1.0.0: no `version` field in `ips`.
    pub const V1_0_0: CniVersion = CniVersion::new(1, 0, 0);
    /// 1.1.0: GC, STATUS, interface `mtu`, route attributes.
    pub const V1_1_0: CniVersion = CniVersion::new(1, 1, 0);
    /// The latest version berth-cni speaks (used for errors before a configuration was read).
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    const fn new(major: u16, minor: u16, patch: u16) -> CniVersion {
        CniVersion {
            major,
            minor,
            patch,
        }
    }

    /// Whether berth-cni speaks it.
    pub fn is_supported(self) -> bool {
        SUPPORTED.contains(&self)
    }

    /// Whether results carry `ips[].version` (before 1.0.0).
    pub fn has_ip_version_field(self) -> bool {
        self < CniVersion::V1_0_0
    }

    /// Whether results may carry 1.1.0's fields (interface `mtu`, `socketPath`, `pciID`; route
    /// `mtu`, `advmss`, `priority`, `table`, `scope`).
    pub fn has_1_1_fields(self) -> bool {
        self >= CniVersion::V1_1_0
    }
}

/// The versions berth-cni speaks, oldest first (VERSION's `supportedVersions`).
pub const SUPPORTED: [CniVersion; 5] = [
    CniVersion::V0_3_0,
    CniVersion::V0_3_1,
    CniVersion::V0_4_0,
    CniVersion::V1_0_0,
    CniVersion::V1_1_0,
];

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for CniVersion {
    type Err = CniError;

    /// Parses `MAJOR.MINOR.PATCH` (numbers only); any version, supported or not.
    fn from_str(s: &str) -> Result<CniVersion, CniError> {
        let bad = || {
            CniError::new(
                ErrorCode::IncompatibleVersion,
                format!(
                    "cniVersion {:?} is not a version (MAJOR.MINOR.PATCH)",
                    s.chars().take(64).collect::<String>()
                ),
                supported_hint(),
            )
        };
        let mut parts = s.split('.');
        let mut next = || -> Result<u16, CniError> {
            let p = parts.next().ok_or_else(bad)?;
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        let v = CniVersion::new(next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(v)
    }
}

/// "berth-cni speaks 0.3.0, 0.3.1, ...".
fn supported_hint() -> String {
    let list: Vec<String> = SUPPORTED.iter().map(ToString::to_string).collect();
    format!("berth-cni speaks {}", list.join(", "))
}

/// Parses a configuration's `cniVersion` and checks berth-cni speaks it (error code 1
/// otherwise, naming the versions it does speak).
pub fn negotiate(given: &str) -> Result<CniVersion, CniError> {
    let v: CniVersion = given.parse()?;
    if v.is_supported() {
        Ok(v)
    } else {
        Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!("incompatible CNI version {v}"),
            supported_hint(),
        ))
    }
}

/// The VERSION command's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    /// The version of this answer's format.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Every version berth-cni speaks.
    #[serde(rename = "supportedVersions")]
    pub supported_versions: Vec<String>,
}

impl VersionInfo {
    /// The answer in `cni_version`'s format (the version the runtime asked with, when berth-cni
    /// speaks it, else the latest).
    pub fn new(cni_version: CniVersion) -> VersionInfo {
        VersionInfo {
            cni_version: cni_version.to_string(),
            supported_versions: SUPPORTED.iter().map(ToString::to_string).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let v: CniVersion = "1.1.0".parse().unwrap_or(CniVersion::V0_3_0);
        assert_eq!(v, CniVersion::V1_1_0);
        assert!(CniVersion::V0_4_0 < CniVersion::V1_0_0);
        assert!(CniVersion::V0_3_1.has_ip_version_field());
        assert!(!CniVersion::V1_0_0.has_ip_version_field());
        assert!(CniVersion::V1_1_0.has_1_1_fields());
        for bad in [
            "",
            "1",
            "1.0",
            "1.0.0.0",
            "a.b.c",
            "1..0",
            "-1.0.0",
            "1.0.999999",
        ] {
            assert!(bad.parse::<CniVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn negotiation_refuses_unknown_versions_with_code_1() {
        assert_eq!(negotiate("0.4.0").ok(), Some(CniVersion::V0_4_0));
        for v in ["0.1.0", "0.2.0", "1.2.0", "2.0.0", "one"] {
            let e = negotiate(v).err().map(|e| e.code);
            assert_eq!(e, Some(ErrorCode::IncompatibleVersion), "{v}");
        }
    }

    #[test]
    fn version_info_lists_every_supported_version() {
        let json = serde_json::to_value(VersionInfo::new(CniVersion::V1_0_0)).unwrap_or_default();
        assert_eq!(json["cniVersion"], "1.0.0");
        let list = json["supportedVersions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for v in ["0.4.0", "1.0.0", "1.1.0"] {
            assert!(list.iter().any(|x| x == v), "{v} in {list:?}");
        }
    }
}

//! The overlay driver's typed options, parsed from Docker's keys.

use berth_driver::{DriverError, OptionReader, RawOptions, Result};

/// `com.docker.network.driver.overlay.vxlanid_list`: the network's VXLAN id (Docker's key, a
/// comma-separated list with one id per subnet; berth carries all of a network's subnets on one
/// id, so the list has one). Chosen from [`FIRST_VNI`] up when not given, and shown in inspect.
pub const VXLANID_LIST: &str = "com.docker.network.driver.overlay.vxlanid_list";
/// `com.docker.network.driver.mtu`: the MTU of the network's interfaces (default: the
/// underlay's MTU minus [`VXLAN_OVERHEAD`]).
pub const MTU: &str = "com.docker.network.driver.mtu";

/// The first VXLAN id the driver hands out (Docker's overlay: 4096; lower ids are left for
/// hand-made VXLANs).
pub const FIRST_VNI: u32 = 4096;
/// The largest VXLAN id (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;
/// What VXLAN encapsulation adds to a frame over IPv4: outer IPv4 (20), UDP (8), VXLAN (8) and
/// the inner Ethernet header (14).
pub const VXLAN_OVERHEAD: u32 = 50;
/// The smallest MTU accepted (IPv4's minimum).
pub const MIN_MTU: u32 = 68;
/// The largest MTU accepted.
pub const MAX_MTU: u32 = 65_535;

/// An overlay network's options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OverlayOptions {
    /// The VXLAN id asked for (or allocated, once the network has one).
    pub vni: Option<u32>,
    /// The MTU asked for.
    pub mtu: Option<u32>,
}

impl OverlayOptions {
    /// Parses Docker's keys; an unknown key or a bad value is an error that names it.
    pub fn parse(raw: &RawOptions) -> Result<OverlayOptions> {
        let mut r = OptionReader::new("overlay", raw);
        let vni = match r.string(VXLANID_LIST) {
            None => None,
            Some(list) => Some(parse_vni_list(list)?),
        };
        let mtu = r.parse::<u32>(MTU, "an MTU (a number)")?;
        if let Some(m) = mtu {
            if !(MIN_MTU..=MAX_MTU).contains(&m) {
                return Err(DriverError::InvalidOption {
                    key: MTU.into(),
                    value: m.to_string(),
                    reason: format!("an MTU is {MIN_MTU} to {MAX_MTU}"),
                });
            }
        }
        r.finish()?;
        Ok(OverlayOptions { vni, mtu })
    }
}

fn parse_vni_list(list: &str) -> Result<u32> {
    let bad = |reason: String| DriverError::InvalidOption {
        key: VXLANID_LIST.into(),
        value: list.into(),
        reason,
    };
    let ids: Vec<&str> = list.split(',').map(str::trim).collect();
    if ids.len() != 1 {
        return Err(bad(
            "berth carries all of a network's subnets on one VXLAN id: give one".into(),
        ));
    }
    let vni: u32 = ids[0]
        .parse()
        .map_err(|_| bad("expected a VXLAN id (a number)".into()))?;
    if !(1..=MAX_VNI).contains(&vni) {
        return Err(bad(format!("a VXLAN id is 1 to {MAX_VNI}")));
    }
    Ok(vni)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawOptions {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn docker_keys_parse() {
        let o = OverlayOptions::parse(&raw(&[(VXLANID_LIST, "4097"), (MTU, "1400")])).unwrap();
        assert_eq!(
            o,
            OverlayOptions {
                vni: Some(4097),
                mtu: Some(1400)
            }
        );
        assert_eq!(
            OverlayOptions::parse(&RawOptions::new()).unwrap(),
            OverlayOptions::default()
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        for (k, v, want) in [
            (VXLANID_LIST, "4097,4098", "one"),
            (VXLANID_LIST, "x", "a number"),
            (VXLANID_LIST, "0", "1 to"),
            (VXLANID_LIST, "16777216", "1 to"),
            (MTU, "9", "68 to"),
            (MTU, "big", "an MTU"),
        ] {
            let e = OverlayOptions::parse(&raw(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(k) && e.contains(want), "{k}={v}: {e}");
        }
        let e =
            OverlayOptions::parse(&raw(&[("com.docker.network.bridge.name", "x")])).unwrap_err();
        assert!(matches!(e, DriverError::UnknownOption { .. }), "{e}");
    }
}

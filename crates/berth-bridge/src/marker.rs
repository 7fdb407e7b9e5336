//! The mark berth puts on the links it makes, so that a restart removes only its own leftovers.
//!
//! A name proves nothing: `br-<12 hex digits>` is also Docker's naming for user-defined bridges,
//! and a second berth (another data root) names its bridges and veths the same way. So every
//! bridge and host-side veth the driver makes carries a link alias (`IFLA_IFALIAS`, shown by
//! `ip link` as `alias ...`):
//!
//! ```text
//! berth:<instance>:<full network id>     on a bridge
//! berth:<instance>:<full endpoint id>    on the host end of a veth
//! ```
//!
//! The kernel ignores an alias in the request that creates a link, so a mark is set by a second
//! request: a crash between the two leaves a bridge without one. A bridge berth makes therefore
//! also gets a MAC address derived from its instance and network id
//! ([`Marker::bridge_mac`]), which the creating request does carry: an unmarked bridge with the
//! MAC of the network that names it is berth's, made just before a crash, and is marked then.
//!
//! `<instance>` names one berth installation (the controller passes an id it keeps in its store,
//! one per data root; see [`BridgeDriver::with_instance`](crate::BridgeDriver::with_instance)).
//! A driver on which it is not set is instance [`DEFAULT_INSTANCE`]. On start,
//! [`remove_orphans`](berth_driver::NetworkDriver::remove_orphans) deletes only links that
//! carry this instance's mark and belong to no record; links of other instances, Docker's and
//! unmarked ones are left alone.

use std::hash::Hasher;

use berth_driver::{DriverError, EndpointId, MacAddr, NetworkId, Result, local_mac_from_bytes};

/// The instance of a driver on which [`BridgeDriver::with_instance`](crate::BridgeDriver::with_instance)
/// was not called. Two drivers working in one host namespace must not both use it.
pub const DEFAULT_INSTANCE: &str = "default";

/// Every mark starts with this.
pub const MARKER_PREFIX: &str = "berth:";

/// Longest instance id: the mark (`berth:` + instance + `:` + 64 hex digits) stays well under
/// the kernel's 254-byte alias limit.
pub const MAX_INSTANCE_LEN: usize = 64;

/// Who a link's alias says made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner<'a> {
    /// This instance.
    Us,
    /// Another berth instance, by its id.
    OtherInstance(&'a str),
    /// No berth mark: made by someone else, or by berth before links were marked.
    Unmarked,
}

/// The marks of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    /// `berth:<instance>:`
    prefix: String,
}

impl Marker {
    /// The marks of `instance`: 1 to [`MAX_INSTANCE_LEN`] ASCII letters, digits, `.`, `_`, `-`.
    pub(crate) fn new(instance: &str) -> std::result::Result<Marker, String> {
        let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        if instance.is_empty() || instance.len() > MAX_INSTANCE_LEN || !instance.bytes().all(valid)
        {
            return Err(format!(
                "invalid berth instance id {instance:?} for the bridge driver: use 1 to \
                 {MAX_INSTANCE_LEN} ASCII letters, digits, '.', '_' or '-'"
            ));
        }
        Ok(Marker {
            prefix: format!("{MARKER_PREFIX}{instance}:"),
        })
    }

    /// The instance id.
    pub(crate) fn instance(&self) -> &str {
        &self.prefix[MARKER_PREFIX.len()..self.prefix.len() - 1]
    }

    /// The mark of a network's bridge.
    pub(crate) fn network(&self, id: &NetworkId) -> String {
        format!("{}{}", self.prefix, id.as_str())
    }

    /// The MAC address of a network's bridge: a locally administered unicast address taken from
    /// the FNV-1a hash (a fixed algorithm: the same in every build) of the network's mark. Made
    /// with the bridge in one request, it proves the bridge berth's where the mark is missing;
    /// a bridge made by anyone else has it by chance with a probability of 2^-46.
    pub(crate) fn bridge_mac(&self, id: &NetworkId) -> MacAddr {
        let mut h = fnv::FnvHasher::default();
        h.write(self.network(id).as_bytes());
        let b = h.finish().to_be_bytes();
        local_mac_from_bytes([b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    /// The mark of an endpoint's host-side veth.
    pub(crate) fn endpoint(&self, id: &EndpointId) -> String {
        format!("{}{}", self.prefix, id.as_str())
    }

    /// Who made a link with this alias. The object id is the part after the last `:`.
    pub(crate) fn owner<'a>(&self, alias: Option<&'a str>) -> Owner<'a> {
        let Some(rest) = alias.and_then(|a| a.strip_prefix(MARKER_PREFIX)) else {
            return Owner::Unmarked;
        };
        match rest.rsplit_once(':') {
            Some((instance, id)) if !instance.is_empty() && !id.is_empty() => {
                if instance == self.instance() {
                    Owner::Us
                } else {
                    Owner::OtherInstance(instance)
                }
            }
            _ => Owner::Unmarked,
        }
    }
}

/// The driver's marker, or the error of an instance id that was refused.
pub(crate) fn checked(marker: &std::result::Result<Marker, String>) -> Result<&Marker> {
    marker
        .as_ref()
        .map_err(|e| DriverError::InvalidConfig(e.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_name_the_instance_and_the_object() {
        let m = Marker::new("a1b2-c3").unwrap();
        assert_eq!(m.instance(), "a1b2-c3");
        let net = NetworkId::from_bytes([0x3a; 32]);
        let mark = m.network(&net);
        assert_eq!(mark, format!("berth:a1b2-c3:{}", "3a".repeat(32)));
        assert!(mark.len() <= 254);
        assert_eq!(m.owner(Some(&mark)), Owner::Us);
        let ep = EndpointId::from_bytes([0xc5; 32]);
        assert_eq!(m.owner(Some(&m.endpoint(&ep))), Owner::Us);

        let other = Marker::new("other").unwrap();
        assert_eq!(
            m.owner(Some(&other.network(&net))),
            Owner::OtherInstance("other")
        );
        for foreign in [
            None,
            Some("uplink"),
            Some("berth:"),
            Some("berth:x"),
            Some("berth::id"),
        ] {
            assert_eq!(m.owner(foreign), Owner::Unmarked, "{foreign:?}");
        }
        // A bridge's MAC: the same for the same network and instance, in every build; another
        // for another network or instance; unicast and locally administered.
        let mac = m.bridge_mac(&net);
        assert_eq!(mac, Marker::new("a1b2-c3").unwrap().bridge_mac(&net));
        assert_eq!(
            mac.to_string(),
            "1a:69:6a:fb:d2:07",
            "FNV-1a 64 of the mark"
        );
        assert_ne!(mac, m.bridge_mac(&NetworkId::from_bytes([0x3b; 32])));
        assert_ne!(mac, other.bridge_mac(&net));
        assert_eq!(mac.0[0] & 0x03, 0x02);
        // The longest instance still fits the kernel's alias limit.
        let long = Marker::new(&"i".repeat(MAX_INSTANCE_LEN)).unwrap();
        assert!(long.network(&net).len() <= 254);
    }

    #[test]
    fn bad_instance_ids_are_refused_by_name() {
        for bad in [
            "",
            "has:colon",
            "sp ace",
            "nul\0",
            &"x".repeat(MAX_INSTANCE_LEN + 1),
        ] {
            let e = Marker::new(bad).unwrap_err();
            assert!(e.contains("instance id"), "{bad:?}: {e}");
        }
        assert!(Marker::new(DEFAULT_INSTANCE).is_ok());
    }
}

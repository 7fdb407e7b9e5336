//! The mark on the links the drivers make, so that a restart proves which are its own.
//!
//! A name proves nothing (`dm-<12 hex digits>` and `eth0.10` are Docker's names too), so every
//! link a driver makes carries a link alias naming the berth instance, the driver and the
//! network (the VLAN sub-interface, both ends of an internal network's veth pair) or the
//! endpoint (its macvlan or ipvlan interface, which keeps the alias when it moves into the
//! sandbox):
//!
//! ```text
//! berth:<instance>:macvlan:<full network or endpoint id>
//! berth:<instance>:ipvlan:<full network or endpoint id>
//! ```
//!
//! The driver's name sits between the instance and the id, so the bridge driver of the same
//! instance (whose marks are `berth:<instance>:<id>`, parsed at the last `:`) reads these as
//! another instance's and never removes them, and this driver never reads the bridge's as its
//! own.

use crate::error::MacvlanError;

/// Every mark starts with this.
const PREFIX: &str = "berth:";
/// Longest instance id.
const MAX_INSTANCE_LEN: usize = 64;

/// The marks of one instance and driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    /// `berth:<instance>:<driver>:`
    prefix: String,
}

impl Marker {
    /// The marks of `instance` (1 to 64 ASCII letters, digits, `.`, `_`, `-`) for `driver`.
    pub(crate) fn new(instance: &str, driver: &str) -> Result<Marker, MacvlanError> {
        let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        if instance.is_empty() || instance.len() > MAX_INSTANCE_LEN || !instance.bytes().all(valid)
        {
            return Err(MacvlanError::InvalidInstance(instance.to_owned()));
        }
        Ok(Marker {
            prefix: format!("{PREFIX}{instance}:{driver}:"),
        })
    }

    /// The mark of an object (a network or an endpoint) by its id.
    pub(crate) fn mark(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }

    /// The id an alias marks, when it is this instance's and driver's mark.
    pub(crate) fn marked_id<'a>(&self, alias: Option<&'a str>) -> Option<&'a str> {
        alias
            .and_then(|a| a.strip_prefix(self.prefix.as_str()))
            .filter(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn marks_name_instance_driver_and_object() {
        let m = Marker::new("a1b2-c3", "macvlan").unwrap();
        let id = "3a".repeat(32);
        let mark = m.mark(&id);
        assert_eq!(mark, format!("berth:a1b2-c3:macvlan:{id}"));
        assert!(mark.len() <= 254);
        assert_eq!(m.marked_id(Some(&mark)), Some(id.as_str()));
        // Another driver, another instance, the bridge's marks, and foreign aliases are not
        // this driver's.
        let ipvlan = Marker::new("a1b2-c3", "ipvlan").unwrap();
        assert_eq!(m.marked_id(Some(&ipvlan.mark(&id))), None);
        let other = Marker::new("other", "macvlan").unwrap();
        assert_eq!(m.marked_id(Some(&other.mark(&id))), None);
        for foreign in [
            None,
            Some("uplink".to_owned()),
            Some(format!("berth:a1b2-c3:{id}")),
            Some("berth:a1b2-c3:macvlan:short".to_owned()),
        ] {
            assert_eq!(m.marked_id(foreign.as_deref()), None, "{foreign:?}");
        }
        let long = Marker::new(&"i".repeat(64), "macvlan").unwrap();
        assert!(long.mark(&id).len() <= 254);
    }

    #[test]
    fn bad_instance_ids_are_refused() {
        for bad in ["", "has:colon", "sp ace", &"x".repeat(65)] {
            assert!(matches!(
                Marker::new(bad, "macvlan"),
                Err(MacvlanError::InvalidInstance(_))
            ));
        }
    }
}

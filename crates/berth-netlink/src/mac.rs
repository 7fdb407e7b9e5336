//! Ethernet (MAC) addresses: berth-types' [`MacAddr`], and the check before one goes on an
//! interface.
//!
//! [`MacAddr`] is re-exported, so `berth_netlink::MacAddr` stays what it was.

pub use berth_types::MacAddr;

use crate::error::{Error, Result};

/// Checks that `mac` can be given to an interface (not zero, not a group address);
/// `object` names the request in the error.
pub(crate) fn check_unicast(mac: &MacAddr, object: impl FnOnce() -> String) -> Result<()> {
    if mac.is_valid_unicast() {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            object: object(),
            message: format!(
                "MAC address {mac} cannot be an interface address (it is zero or a \
                 multicast/broadcast address); use a unicast address such as 02:xx:xx:xx:xx:xx"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_unicast_addresses_go_on_interfaces() {
        let ok: MacAddr = "02:42:ac:11:00:02".parse().unwrap();
        assert!(check_unicast(&ok, || "link x".into()).is_ok());
        for bad in [
            MacAddr::ZERO,
            MacAddr([0xff; 6]),
            MacAddr([1, 0, 0x5e, 0, 0, 1]),
        ] {
            match check_unicast(&bad, || "link x".into()) {
                Err(Error::InvalidArgument { object, message }) => {
                    assert_eq!(object, "link x");
                    assert!(message.contains(&bad.to_string()), "{message}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}

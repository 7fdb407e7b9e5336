//! After a restart: removing the links this instance made that no record names any more.

use berth_driver::{DriverError, Result};
use berth_netlink::LinkKind;

use crate::marker::{self, Owner};
use crate::{BRIDGE_PREFIX, BridgeDriver, VETH_PREFIX};

impl BridgeDriver {
    /// Deletes every bridge and veth that carries this instance's mark and belongs to no
    /// network or endpoint the driver knows (nor to a network being created). Links of other
    /// instances, Docker's, and unmarked ones are never touched; unmarked ones under berth's
    /// naming (left by berth before links were marked, or Docker's) are logged.
    pub(crate) fn remove_unrecorded_links(&self) -> Result<Vec<String>> {
        let marker = marker::checked(&self.marker)?;
        let links = self
            .netlink
            .link_list()
            .map_err(|e| DriverError::kernel("listing host links", e))?;
        // Read after the listing: a link in it was made after its network claimed the bridge
        // or its endpoint was recorded, so the claim or record is in these snapshots.
        let claimed: Vec<String> = self.bridges().keys().cloned().collect();
        let (bridges, veths): (Vec<String>, Vec<String>) = {
            let nets = self.read();
            let bridges = nets.values().map(|n| n.bridge.clone()).collect();
            let veths = nets
                .values()
                .flat_map(|n| {
                    n.endpoints
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .values()
                        .map(|e| e.host_if.clone())
                        .collect::<Vec<_>>()
                })
                .collect();
            (bridges, veths)
        };
        let mut removed = Vec::new();
        let mut unmarked = Vec::new();
        for link in links {
            let (recorded, berth_named) = match link.kind {
                Some(LinkKind::Bridge) => (
                    bridges.contains(&link.name) || claimed.contains(&link.name),
                    is_berth_bridge_name(&link.name),
                ),
                Some(LinkKind::Veth) => {
                    (veths.contains(&link.name), is_berth_veth_name(&link.name))
                }
                _ => continue,
            };
            if recorded {
                continue;
            }
            match marker.owner(link.alias.as_deref()) {
                Owner::Us => {}
                Owner::OtherInstance(_) => continue,
                Owner::Unmarked => {
                    if berth_named {
                        unmarked.push(link.name);
                    }
                    continue;
                }
            }
            match self.netlink.link_delete(link.index) {
                Ok(()) => removed.push(link.name),
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    return Err(DriverError::kernel(
                        format!("deleting orphan {}", link.name),
                        e,
                    ));
                }
            }
        }
        if !unmarked.is_empty() {
            tracing::info!(
                links = ?unmarked,
                "left alone: unmarked links under berth's naming that no record names (Docker's, \
                 or left by berth before it marked its links; delete them by hand if they are \
                 berth's)"
            );
        }
        Ok(removed)
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `br-` + 12 lowercase hex digits.
fn is_berth_bridge_name(name: &str) -> bool {
    name.strip_prefix(BRIDGE_PREFIX)
        .is_some_and(|rest| rest.len() == 12 && is_hex(rest))
}

/// `berth` + 10 lowercase hex digits.
fn is_berth_veth_name(name: &str) -> bool {
    name.strip_prefix(VETH_PREFIX)
        .is_some_and(|rest| rest.len() == 10 && is_hex(rest))
}

#[cfg(test)]
mod tests {
    use berth_driver::{EndpointId, NetworkId};

    use super::*;
    use crate::{default_bridge_name, host_veth_name};

    #[test]
    fn names_are_traceable_and_recognised() {
        let net = NetworkId::from_bytes([0x3a; 32]);
        let ep = EndpointId::from_bytes([0xc5; 32]);
        assert_eq!(default_bridge_name(&net), "br-3a3a3a3a3a3a");
        assert_eq!(host_veth_name(&ep), "berthc5c5c5c5c5");
        assert!(host_veth_name(&ep).len() <= 15);
        assert!(is_berth_bridge_name("br-3a3a3a3a3a3a"));
        assert!(!is_berth_bridge_name("br-lan"));
        assert!(!is_berth_bridge_name("docker0"));
        assert!(is_berth_veth_name("berthc5c5c5c5c5"));
        assert!(!is_berth_veth_name("veth1234567"));
        assert!(!is_berth_veth_name("berthXYZ"));
    }
}

//! After a restart: removing the links this instance's driver made that no record names.

use std::collections::HashSet;

use berth_driver::{DriverError, Result};

use crate::network::Core;
use crate::probe;

impl Core {
    /// Deletes every host link carrying this instance's and driver's mark whose network or
    /// endpoint the driver does not know (nor is creating): the sub-interface or internal
    /// parent of a network whose record is gone, an endpoint interface a crashed join left in
    /// the host. Links of other instances or drivers, Docker's and unmarked ones are never
    /// touched. Also removes link-kind probes a crashed process left.
    pub(crate) fn remove_unrecorded_links(&self) -> Result<Vec<String>> {
        let links = self
            .nl
            .link_list()
            .map_err(|e| DriverError::kernel("listing host links", e))?;
        // Read after the listing: a link in it was made after its network claimed its parent
        // or its endpoint was recorded, so the claim or the record is in these sets.
        let mut known: HashSet<String> = self
            .parents()
            .values()
            .map(|id| id.as_str().to_owned())
            .collect();
        for (id, net) in self.read().iter() {
            known.insert(id.as_str().to_owned());
            known.extend(net.endpoints().keys().map(|e| e.as_str().to_owned()));
        }
        let mut removed = Vec::new();
        for link in &links {
            let Some(id) = self.marker.marked_id(link.alias.as_deref()) else {
                continue;
            };
            if known.contains(id) {
                continue;
            }
            match self.nl.link_delete(link.index) {
                Ok(()) => removed.push(link.name.clone()),
                // The other end of a veth pair deleted just before.
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    return Err(DriverError::kernel(
                        format!("deleting orphan {}", link.name),
                        e,
                    ));
                }
            }
        }
        removed.extend(probe::remove_stale_probes(&self.nl, &links));
        Ok(removed)
    }
}

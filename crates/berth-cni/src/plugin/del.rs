//! DEL (idempotent: a missing attachment, state or namespace is success) and GC (every
//! attachment of the network that is not in `cni.dev/valid-attachments` removed). An attachment
//! is the container's endpoint on the network; the container's sandbox goes with its last one.

use std::collections::BTreeSet;

use berth::{Controller, SandboxInspect};

use super::Plugin;
use crate::error::{CniError, ErrorCode, chain};
use crate::naming;

impl Plugin {
    pub(super) fn del(&mut self) -> Result<(), CniError> {
        let Ok(name) = naming::sandbox_name(self.inv.container_id()) else {
            // A name ADD could not have made: nothing of it exists.
            return Ok(());
        };
        let _held = self.lock()?;
        if !self.has_state() {
            return Ok(());
        }
        let ctl = self.open()?;
        // A namespace that is gone took the interfaces with it; opening the controller then
        // found the sandbox gone and removed it, and its rules and addresses.
        let sb = match ctl.inspect_sandbox(&name) {
            Ok(sb) => Some(sb),
            Err(berth::Error::SandboxNotFound(_)) => None,
            Err(e) => return Err(CniError::library(format!("inspecting sandbox {name}"), &e)),
        };
        let network = self.conf.network.name.clone();
        if let Some(sb) = sb {
            // Only the endpoint this attachment made: the same network and interface name.
            if sb
                .networks
                .get(&network)
                .is_some_and(|ep| ep.interface == self.inv.ifname())
            {
                detach(&ctl, &sb, &network).map_err(|e| {
                    CniError::library(
                        format!(
                            "removing {} of container {} from network {network}",
                            self.inv.ifname(),
                            self.inv.container_id()
                        ),
                        &e,
                    )
                })?;
            }
        }
        self.timer.lap("detach");
        self.release_unused(ctl)
    }

    pub(super) fn gc(&mut self) -> Result<(), CniError> {
        // Without the list, every attachment would look stale: refuse rather than remove them.
        let listed = self.conf.valid_attachments.as_ref().ok_or_else(|| {
            CniError::config(
                "GC needs cni.dev/valid-attachments (the attachments the runtime still has)",
            )
        })?;
        let valid: BTreeSet<(String, String)> = listed
            .iter()
            .map(|a| (a.container_id.clone(), a.ifname.clone()))
            .collect();
        let _held = self.lock()?;
        if !self.has_state() {
            return Ok(());
        }
        let ctl = self.open()?;
        let network = self.conf.network.name.clone();
        let mut failures = Vec::new();
        for sb in ctl.sandboxes() {
            let Some(cid) = naming::container_id(&sb.name) else {
                continue;
            };
            let Some(ep) = sb.networks.get(&network) else {
                continue;
            };
            if valid.contains(&(cid.clone(), ep.interface.clone())) {
                continue;
            }
            if let Err(e) = detach(&ctl, &sb, &network) {
                failures.push(format!(
                    "container {cid} interface {}: {}",
                    ep.interface,
                    chain(&e)
                ));
            }
        }
        self.timer.lap("collect");
        let released = self.release_unused(ctl);
        if !failures.is_empty() {
            return Err(CniError::new(
                ErrorCode::Library,
                format!("GC could not remove {} attachments", failures.len()),
                failures.join("; "),
            ));
        }
        released
    }
}

/// Takes the sandbox `sb` off `network`: the whole sandbox when that is its last network (the
/// container's namespace stays, it is the runtime's), else that endpoint. Gone already is no
/// error.
fn detach(ctl: &Controller, sb: &SandboxInspect, network: &str) -> Result<(), berth::Error> {
    let done = if sb.networks.len() <= 1 {
        ctl.remove_sandbox(&sb.name)
    } else {
        ctl.disconnect(&sb.name, network)
    };
    match done {
        Ok(()) | Err(berth::Error::SandboxNotFound(_) | berth::Error::NotConnected { .. }) => {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

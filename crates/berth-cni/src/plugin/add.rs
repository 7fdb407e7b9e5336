//! ADD: the container's berth sandbox (made on its first attachment, adopting the container's
//! namespace) connected to the network with the runtime's capabilities and its interface named
//! `CNI_IFNAME`; the result read back from berth.

use std::path::Path;

use berth::{Controller, SandboxCreate, SandboxInspect, SandboxNetns};

use super::{Plugin, kernel, path_text};
use crate::error::{CniError, ErrorCode};
use crate::naming;
use crate::plan::{self, NetworkFacts};

impl Plugin {
    pub(super) fn add(&mut self) -> Result<serde_json::Value, CniError> {
        let (cid, ifname) = (
            self.inv.container_id().to_owned(),
            self.inv.ifname().to_owned(),
        );
        let name = naming::sandbox_name(&cid)?;
        plan::container_ifname(&ifname)?;
        let netns = self.inv.netns.clone().unwrap_or_default();
        let _held = self.lock()?;
        // A name the container has already (another attachment's, another plugin's): refused
        // before anything is made.
        if kernel::has_link(&netns, &ifname)? {
            return Err(CniError::new(
                ErrorCode::Conflict,
                format!("container {cid} already has an interface named {ifname}"),
                format!(
                    "{} has it; ask for another CNI_IFNAME, or DEL the attachment that made it",
                    netns.display()
                ),
            ));
        }
        self.timer.lap("ifname");
        let ctl = self.open()?;
        let outcome = self.attach(&ctl, &name, &netns);
        if outcome.is_err() {
            // Nothing half-made: a network this ADD created goes again with its rules.
            if let Err(e) = self.release_unused(ctl) {
                eprintln!("berth-cni: cleaning up after a failed ADD: {e}");
            }
        } else {
            drop(ctl);
            self.timer.lap("close");
        }
        outcome
    }

    fn attach(
        &mut self,
        ctl: &Controller,
        name: &str,
        netns: &Path,
    ) -> Result<serde_json::Value, CniError> {
        let (net, _) = self.ensure_network(ctl)?;
        let opts = plan::endpoint_options(
            &self.conf,
            self.inv.ifname(),
            &self.inv.args,
            &NetworkFacts::of(&net),
        )?;
        let existing = match ctl.inspect_sandbox(name) {
            Ok(sb) => Some(sb),
            Err(berth::Error::SandboxNotFound(_)) => None,
            Err(e) => return Err(CniError::library(format!("inspecting sandbox {name}"), &e)),
        };
        let attaching = || {
            format!(
                "attaching container {} to network {}",
                self.inv.container_id(),
                net.name
            )
        };
        match &existing {
            Some(sb) => {
                self.refuse_second_attachment(sb, &net.name, netns)?;
                ctl.connect(name, &net.name, opts)
                    .map_err(|e| CniError::library(attaching(), &e))?;
            }
            None => {
                let mut req = SandboxCreate::new(name);
                req.netns = SandboxNetns::Adopt(netns.to_path_buf());
                req.network = Some(net.name.clone());
                req.endpoint = opts;
                ctl.create_sandbox(req)
                    .map_err(|e| CniError::library(attaching(), &e))?;
            }
        }
        self.timer.lap("attach");
        let answer = ctl
            .inspect_sandbox(name)
            .map_err(|e| CniError::library(format!("inspecting sandbox {name}"), &e))
            .and_then(|sb| {
                let ep = sb.networks.get(&net.name).ok_or_else(|| {
                    CniError::new(
                        ErrorCode::Library,
                        format!(
                            "sandbox {name} is not on network {} after its connect",
                            net.name
                        ),
                        "",
                    )
                })?;
                // berth chose the container's default route among its networks: the result
                // lists it only when it goes through this attachment.
                let default_route =
                    kernel::default_route_via(netns, &ep.interface).unwrap_or_else(|e| {
                        eprintln!(
                            "berth-cni: reading the default route of {}: {e}",
                            netns.display()
                        );
                        !ep.gateway.is_empty()
                    });
                plan::add_result(&self.conf, &path_text(netns), ep, default_route)
            });
        self.timer.lap("result");
        match answer {
            Ok(result) => Ok(result.to_json(self.conf.cni_version)),
            Err(e) => {
                // Undo this attachment only: the container's others stay.
                let undone = if existing.is_some() {
                    ctl.disconnect(name, &net.name)
                } else {
                    ctl.remove_sandbox(name)
                };
                if let Err(u) = undone {
                    eprintln!("berth-cni: undoing a failed ADD: {u}");
                }
                Err(e)
            }
        }
    }

    /// The container has a sandbox already (another attachment): this one must be in the same
    /// namespace, and on a network the container is not on yet (berth gives a container one
    /// endpoint per network, as Docker does).
    fn refuse_second_attachment(
        &self,
        sb: &SandboxInspect,
        network: &str,
        netns: &Path,
    ) -> Result<(), CniError> {
        let cid = self.inv.container_id();
        if !kernel::same_namespace(Path::new(&sb.sandbox_key), netns) {
            return Err(CniError::new(
                ErrorCode::Conflict,
                format!(
                    "container {cid} is attached in another namespace ({})",
                    sb.sandbox_key
                ),
                format!(
                    "its attachments ({}) must be removed with DEL before it is added in {}",
                    sb.networks
                        .values()
                        .map(|ep| ep.interface.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    netns.display()
                ),
            ));
        }
        if let Some(ep) = sb.networks.get(network) {
            let (msg, details) = if ep.interface == self.inv.ifname() {
                (
                    format!(
                        "container {cid} already has {} on network {}",
                        ep.interface, self.conf.name
                    ),
                    "an ADD without a DEL for the same container id and interface name".to_owned(),
                )
            } else {
                (
                    format!(
                        "container {cid} is on network {} already, with {}",
                        self.conf.name, ep.interface
                    ),
                    format!(
                        "berth gives a container one interface per network: {} cannot be a second",
                        self.inv.ifname()
                    ),
                )
            };
            return Err(CniError::new(ErrorCode::Conflict, msg, details));
        }
        Ok(())
    }
}

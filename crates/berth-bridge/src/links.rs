//! Legacy-link holes: on a network with inter-container communication off, the firewall rules
//! that let a linking endpoint reach the linked one's exposed ports (and the answers back).

use std::net::IpAddr;

use berth_driver::{DriverError, LinkHole, NetworkId, Result};
use berth_firewall::{LinkPort, LinkRule};

use crate::BridgeDriver;

impl BridgeDriver {
    /// See [`berth_driver::NetworkDriver::open_link_holes`]: firewall link rules on the
    /// network's bridge, when its icc is off (with icc on, nothing is closed to open).
    pub(crate) fn open_holes(&self, network: &NetworkId, holes: &[LinkHole]) -> Result<()> {
        let Some(fw) = &self.firewall else {
            return Ok(());
        };
        let net = self.network(network)?;
        if net.options.enable_icc {
            return Ok(());
        }
        let open = fw.links();
        for hole in holes {
            let rule = LinkRule {
                bridge: net.bridge.clone(),
                parent_ip: hole.parent,
                child_ip: hole.child,
                ports: hole
                    .ports
                    .iter()
                    .map(|&(proto, port)| LinkPort { proto, port })
                    .collect(),
            };
            if !open.contains(&rule) {
                fw.add_link(rule).map_err(|e| {
                    DriverError::firewall(
                        format!("opening a link from {} to {}", hole.parent, hole.child),
                        e,
                    )
                })?;
            }
        }
        Ok(())
    }

    /// See [`berth_driver::NetworkDriver::close_link_holes`].
    pub(crate) fn close_holes(&self, network: &NetworkId, addrs: &[IpAddr]) -> Result<()> {
        let Some(fw) = &self.firewall else {
            return Ok(());
        };
        let touching: Vec<LinkRule> = fw
            .links()
            .into_iter()
            .filter(|l| addrs.contains(&l.parent_ip) || addrs.contains(&l.child_ip))
            .collect();
        // Most disconnects involve no link: the network is looked up only when one does.
        if touching.is_empty() {
            return Ok(());
        }
        let net = self.network(network)?;
        for rule in touching.iter().filter(|l| l.bridge == net.bridge) {
            fw.remove_link(rule).map_err(|e| {
                DriverError::firewall(
                    format!(
                        "closing the link from {} to {}",
                        rule.parent_ip, rule.child_ip
                    ),
                    e,
                )
            })?;
        }
        Ok(())
    }
}

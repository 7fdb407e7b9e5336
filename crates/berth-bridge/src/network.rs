//! A network's kernel side: the bridge (made or adopted, and marked), its gateway addresses,
//! the bridge netfilter sysctls and the firewall rules; and the rollback of a failed setup.

use berth_driver::{DriverError, NetworkSpec, Result};
use berth_netlink::{AddrSpec, Link, LinkKind, LinkSpec, sysctl_set};
use ipnet::IpNet;

use crate::marker::{self, Owner};
use crate::netfilter::{self, BRIDGE_NF_CALL_IP6TABLES, BRIDGE_NF_CALL_IPTABLES};
use crate::{BridgeDriver, BridgeError, BridgeOptions};

impl BridgeDriver {
    /// Creates (or adopts, after a restart) the bridge, addresses and rules; undoes its own work
    /// on failure. A bridge that exists and is not berth's is refused under the default
    /// bridge's name ([`BridgeError::ForeignBridge`]) before anything is changed on it, unless
    /// the options name it as the user's ([`crate::EXISTING_BRIDGE`]).
    pub(crate) fn set_up_network(
        &self,
        spec: &NetworkSpec,
        o: &BridgeOptions,
        bridge: &str,
        undo: &mut Vec<Undo>,
    ) -> Result<SetUp> {
        let nl = &self.netlink;
        let marker = marker::checked(&self.marker)?;
        let mark = marker.network(&spec.id);
        let mac = marker.bridge_mac(&spec.id);
        let looking_up = || format!("looking up bridge {bridge}");
        let existing = nl
            .link_get(bridge)
            .map_err(|e| DriverError::kernel(looking_up(), e))?;
        let setting_up = || format!("setting up network {}", spec.name);
        // Whose the bridge is, decided before anything is changed (on it or anywhere).
        let adopted = match &existing {
            Some(link) if link.kind != Some(LinkKind::Bridge) => {
                return Err(DriverError::InvalidConfig(format!(
                    "cannot use {bridge} as the bridge of network {}: it exists and is not a bridge",
                    spec.name
                )));
            }
            Some(link) => Some(match self.marker_owner(link)? {
                Owner::OtherInstance(other) => {
                    return Err(DriverError::Exists(format!(
                        "bridge {bridge} (made by berth instance {other}; network {} cannot \
                         share it: choose another bridge name, or delete the bridge if that \
                         instance is gone)",
                        spec.name
                    )));
                }
                // The user's bridge, used on purpose: never berth's to change or delete.
                _ if o.existing_bridge => false,
                // Made by this instance in an earlier run.
                Owner::Us => true,
                // Made by this instance, which stopped before it could mark it (see
                // `Marker::bridge_mac`): marked below.
                Owner::Unmarked if link.mac == Some(mac) => {
                    tracing::info!(
                        %bridge, network = %spec.name,
                        "bridge carries this network's MAC but no mark: made by berth just before \
                         a crash, marked now"
                    );
                    true
                }
                // The default bridge's name proves nothing (Docker's docker0 has it too): an
                // unmarked bridge under it is not taken over.
                Owner::Unmarked if o.default_bridge => {
                    return Err(DriverError::kernel(
                        setting_up(),
                        BridgeError::ForeignBridge {
                            bridge: bridge.to_owned(),
                            network: spec.name.clone(),
                        },
                    ));
                }
                // Berth's naming (made by berth before links were marked: the record that
                // names it proves it), or an existing bridge the user named and keeps.
                Owner::Unmarked => o.bridge_name.is_none(),
            }),
            None if o.existing_bridge => {
                return Err(DriverError::kernel(
                    setting_up(),
                    BridgeError::ExistingBridgeMissing {
                        bridge: bridge.to_owned(),
                        network: spec.name.clone(),
                    },
                ));
            }
            None => None,
        };
        if let Some(fw) = &self.firewall {
            // Before anything is made: a network whose isolation cannot be enforced is refused.
            let mut keys = Vec::new();
            if !spec.ipv4.is_empty() {
                keys.push(BRIDGE_NF_CALL_IPTABLES);
            }
            if !spec.ipv6.is_empty() && fw.config().ipv6 {
                keys.push(BRIDGE_NF_CALL_IP6TABLES);
            }
            netfilter::ensure(&self.host, &spec.name, &keys, !o.enable_icc)?;
        }
        let owned = match adopted {
            Some(owned) => owned,
            None => {
                // A MAC of its own, as Docker gives its bridges: without one, the bridge takes the
                // lowest MAC of its ports, compares every port's on each join (a pass over all
                // ports) and changes address whenever a port with a lower one joins or leaves.
                // Derived from the mark, it also proves the bridge berth's if the mark cannot
                // be set before a crash.
                let mut link = LinkSpec::bridge(bridge)
                    .mac(mac)
                    .mcast_snooping(o.mcast_snooping)
                    .alias(mark.as_str());
                if let Some(mtu) = o.mtu {
                    link = link.mtu(mtu);
                }
                nl.link_add(&link)
                    .map_err(|e| DriverError::kernel(format!("creating bridge {bridge}"), e))?;
                undo.push(Undo::DeleteLink(bridge.to_owned()));
                true
            }
        };
        let link = match existing {
            Some(link) => link,
            None => nl
                .link(bridge)
                .map_err(|e| DriverError::kernel(looking_up(), e))?,
        };
        if owned && link.alias.as_deref() != Some(mark.as_str()) {
            // Adopted: marked as this network's from now on.
            nl.link_set_alias(link.index, &mark)
                .map_err(|e| DriverError::kernel(format!("marking bridge {bridge}"), e))?;
        }
        // A bridge berth owns converges to the option (one made by an earlier berth may have
        // the kernel's default); a bridge the user named and made is left as it is.
        let snooping = link.bridge.as_ref().and_then(|b| b.mcast_snooping);
        if owned && snooping.is_some_and(|on| on != o.mcast_snooping) {
            nl.link_set_mcast_snooping(link.index, o.mcast_snooping)
                .map_err(|e| {
                    DriverError::kernel(format!("multicast snooping on bridge {bridge}"), e)
                })?;
        }
        let mut gateways = Vec::new();
        let mut added = Vec::new();
        let v4 = spec.ipv4.iter().filter(|_| !o.inhibit_ipv4);
        for gw in v4.chain(spec.ipv6.iter()).filter_map(|p| p.gateway) {
            let mut addr = AddrSpec::new(gw);
            if gw.addr().is_ipv6() {
                addr = addr.nodad();
            }
            match nl.addr_add(bridge, &addr) {
                Ok(()) => {
                    undo.push(Undo::DeleteAddr(bridge.to_owned(), gw));
                    added.push(gw);
                }
                // Put there by berth in an earlier run, or the user's own (the address of a
                // bridge the user made): kept either way on a bridge berth does not own.
                Err(e) if e.is_exists() => {}
                Err(e) => {
                    return Err(DriverError::kernel(
                        format!("adding gateway {gw} to bridge {bridge}"),
                        e,
                    ));
                }
            }
            gateways.push(gw);
        }
        if !spec.ipv6.is_empty() {
            // The gateway address is berth's by IPAM: no duplicate address detection delay.
            let _ = sysctl_set(
                &self.host,
                &format!("net.ipv6.conf.{bridge}.accept_dad"),
                "0",
            );
        }
        nl.link_set_up(bridge)
            .map_err(|e| DriverError::kernel(format!("bringing bridge {bridge} up"), e))?;
        if self.firewall.is_some() && !spec.ipv4.is_empty() {
            // 127.0.0.1:PORT on the host reaches published ports: the DNATed packets keep their
            // loopback source and must be routable out of the bridge.
            sysctl_set(
                &self.host,
                &format!("net.ipv4.conf.{bridge}.route_localnet"),
                "1",
            )
            .map_err(|e| DriverError::kernel(format!("route_localnet on {bridge}"), e))?;
        }
        if let Some(fw) = &self.firewall {
            let rules = Self::rules_for(spec, o, bridge);
            let present = fw.state().network(bridge).cloned();
            if present.as_ref() != Some(&rules) {
                if present.is_some() {
                    fw.remove_network(bridge).map_err(|e| {
                        DriverError::firewall(format!("replacing the rules of {bridge}"), e)
                    })?;
                }
                fw.add_network(rules).map_err(|e| {
                    DriverError::firewall(format!("adding the rules of network {}", spec.name), e)
                })?;
                undo.push(Undo::RemoveRules(bridge.to_owned()));
            }
        }
        Ok(SetUp {
            owned,
            link,
            gateways,
            added,
        })
    }

    pub(crate) fn run_undo(&self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            let result = match &step {
                Undo::DeleteLink(name) => self
                    .netlink
                    .link_delete(name.as_str())
                    .map_err(|e| e.to_string()),
                Undo::DeleteAddr(link, net) => self
                    .netlink
                    .addr_delete(link.as_str(), *net)
                    .map_err(|e| e.to_string()),
                Undo::RemoveRules(bridge) => match &self.firewall {
                    Some(fw) => fw
                        .remove_network(bridge)
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    None => Ok(()),
                },
            };
            if let Err(e) = result {
                tracing::warn!(?step, error = %e, "bridge driver: rollback step failed");
            }
        }
    }
}

/// What [`BridgeDriver::set_up_network`] found and made.
#[derive(Debug)]
pub(crate) struct SetUp {
    /// berth made the bridge (or adopted its own): it goes with the network.
    pub(crate) owned: bool,
    /// The bridge.
    pub(crate) link: Link,
    /// The gateway addresses on the bridge.
    pub(crate) gateways: Vec<IpNet>,
    /// The gateway addresses this set-up added (the rest were there already).
    pub(crate) added: Vec<IpNet>,
}

#[derive(Debug)]
pub(crate) enum Undo {
    DeleteLink(String),
    DeleteAddr(String, IpNet),
    RemoveRules(String),
}

//! [`DesiredState`]: everything berth's rules must express, built by checked inserts (each new
//! network, port or link against the configuration and what is already there) and removes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{FirewallConfig, LinkRule, NetworkRules, PortRule};
use crate::error::{Error, Result};
use crate::model::Family;

/// Everything berth's rules must express: the networks, published ports and links. The full
/// desired state renders to berth's whole ruleset; reconcile converges the kernel onto it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    networks: BTreeMap<String, NetworkRules>,
    ports: Vec<PortRule>,
    links: Vec<LinkRule>,
}

impl DesiredState {
    /// An empty state.
    pub fn new() -> DesiredState {
        DesiredState::default()
    }

    /// The networks, by bridge name.
    pub fn networks(&self) -> &BTreeMap<String, NetworkRules> {
        &self.networks
    }

    /// The published ports, in the order they were added.
    pub fn ports(&self) -> &[PortRule] {
        &self.ports
    }

    /// The links, in the order they were added.
    pub fn links(&self) -> &[LinkRule] {
        &self.links
    }

    /// The network on `bridge`.
    pub fn network(&self, bridge: &str) -> Option<&NetworkRules> {
        self.networks.get(bridge)
    }

    /// Builds a state from parts, validating each piece as the add operations would.
    pub fn from_parts(
        config: &FirewallConfig,
        networks: impl IntoIterator<Item = NetworkRules>,
        ports: impl IntoIterator<Item = PortRule>,
        links: impl IntoIterator<Item = LinkRule>,
    ) -> Result<DesiredState> {
        let mut s = DesiredState::new();
        for n in networks {
            s.insert_network(config, n)?;
        }
        for p in ports {
            s.insert_port(config, p)?;
        }
        for l in links {
            s.insert_link(config, l)?;
        }
        Ok(s)
    }

    /// Checks a new network against the configuration and the networks present.
    pub fn check_network(&self, config: &FirewallConfig, net: &NetworkRules) -> Result<()> {
        net.validate(config)?;
        if self.networks.contains_key(&net.bridge) {
            return Err(Error::NetworkExists {
                bridge: net.bridge.clone(),
            });
        }
        for f in [Family::V4, Family::V6] {
            let Some(mine) = net.subnet(f) else { continue };
            for other in self.networks.values() {
                if let Some(theirs) = other.subnet(f) {
                    if mine.contains(&theirs.network()) || theirs.contains(&mine.network()) {
                        return Err(Error::SubnetOverlap {
                            bridge: net.bridge.clone(),
                            subnet: mine.to_string(),
                            other: other.bridge.clone(),
                            other_subnet: theirs.to_string(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds a network after [`DesiredState::check_network`].
    pub fn insert_network(&mut self, config: &FirewallConfig, net: NetworkRules) -> Result<()> {
        self.check_network(config, &net)?;
        self.networks.insert(net.bridge.clone(), net);
        Ok(())
    }

    /// Checks that the network on `bridge` exists and nothing refers to it any more.
    pub fn check_remove_network(&self, bridge: &str) -> Result<&NetworkRules> {
        let net = self
            .networks
            .get(bridge)
            .ok_or_else(|| Error::UnknownNetwork {
                bridge: bridge.to_owned(),
            })?;
        let ports = self.ports.iter().filter(|p| p.bridge == bridge).count();
        let links = self.links.iter().filter(|l| l.bridge == bridge).count();
        if ports + links > 0 {
            return Err(Error::NetworkInUse {
                bridge: bridge.to_owned(),
                ports,
                links,
            });
        }
        Ok(net)
    }

    /// Removes the network on `bridge` after [`DesiredState::check_remove_network`].
    pub fn remove_network(&mut self, bridge: &str) -> Result<NetworkRules> {
        self.check_remove_network(bridge)?;
        self.networks
            .remove(bridge)
            .ok_or_else(|| Error::UnknownNetwork {
                bridge: bridge.to_owned(),
            })
    }

    /// Checks a new published port: valid on its own, its network present with a subnet holding
    /// the container address, no host port collision with what is published or with `pending`
    /// (other ports added in the same transaction).
    pub fn check_port(
        &self,
        config: &FirewallConfig,
        port: &PortRule,
        pending: &[PortRule],
    ) -> Result<()> {
        port.validate()?;
        let f = port.family();
        if !config.has(f) {
            return Err(Error::FamilyDisabled {
                object: format!("published port {port}"),
                family: f.label(),
            });
        }
        let net = self
            .networks
            .get(&port.bridge)
            .ok_or_else(|| Error::UnknownNetwork {
                bridge: port.bridge.clone(),
            })?;
        if net.internal {
            return Err(Error::InvalidRule {
                object: format!("published port {port}"),
                reason: format!(
                    "network on {:?} is internal; internal networks publish no ports",
                    net.bridge
                ),
            });
        }
        match net.subnet(f) {
            Some(s) if s.contains(&port.container_ip) => {}
            Some(s) => {
                return Err(Error::AddressMismatch {
                    object: format!("published port {port}"),
                    reason: format!(
                        "container address {} is outside the network's subnet {s}",
                        port.container_ip
                    ),
                });
            }
            None => {
                return Err(Error::AddressMismatch {
                    object: format!("published port {port}"),
                    reason: format!(
                        "the network on {:?} has no {} subnet",
                        port.bridge,
                        f.label()
                    ),
                });
            }
        }
        if let Some(existing) = self
            .ports
            .iter()
            .chain(pending)
            .find(|e| e.conflicts_with(port))
        {
            return Err(Error::PortConflict {
                port: port.to_string(),
                existing: existing.to_string(),
            });
        }
        Ok(())
    }

    /// Adds a published port after [`DesiredState::check_port`].
    pub fn insert_port(&mut self, config: &FirewallConfig, port: PortRule) -> Result<()> {
        self.check_port(config, &port, &[])?;
        self.ports.push(port);
        Ok(())
    }

    /// Removes a published port; returns it.
    pub fn remove_port(&mut self, port: &PortRule) -> Result<PortRule> {
        let i = self
            .ports
            .iter()
            .position(|p| p == port)
            .ok_or_else(|| Error::PortNotFound {
                port: port.to_string(),
            })?;
        Ok(self.ports.remove(i))
    }

    /// True if this exact published port is present.
    pub fn has_port(&self, port: &PortRule) -> bool {
        self.ports.contains(port)
    }

    /// Checks a new link.
    pub fn check_link(&self, config: &FirewallConfig, link: &LinkRule) -> Result<()> {
        link.validate()?;
        let f = link.family();
        if !config.has(f) {
            return Err(Error::FamilyDisabled {
                object: format!("link {link}"),
                family: f.label(),
            });
        }
        let net = self
            .networks
            .get(&link.bridge)
            .ok_or_else(|| Error::UnknownNetwork {
                bridge: link.bridge.clone(),
            })?;
        match net.subnet(f) {
            Some(s) if s.contains(&link.parent_ip) && s.contains(&link.child_ip) => {}
            _ => {
                return Err(Error::AddressMismatch {
                    object: format!("link {link}"),
                    reason: format!(
                        "both addresses must lie in the network's {} subnet ({})",
                        f.label(),
                        net.subnet(f)
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "none".into())
                    ),
                });
            }
        }
        if self
            .links
            .iter()
            .any(|l| l.parent_ip == link.parent_ip && l.child_ip == link.child_ip)
        {
            return Err(Error::LinkExists {
                link: link.to_string(),
            });
        }
        Ok(())
    }

    /// Adds a link after [`DesiredState::check_link`].
    pub fn insert_link(&mut self, config: &FirewallConfig, link: LinkRule) -> Result<()> {
        self.check_link(config, &link)?;
        self.links.push(link);
        Ok(())
    }

    /// Removes a link; returns it.
    pub fn remove_link(&mut self, link: &LinkRule) -> Result<LinkRule> {
        let i = self
            .links
            .iter()
            .position(|l| l == link)
            .ok_or_else(|| Error::LinkNotFound {
                link: link.to_string(),
            })?;
        Ok(self.links.remove(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PortRange, Protocol};
    use crate::spec::{Backend, LinkPort, PortMapping};

    fn cfg() -> FirewallConfig {
        let mut c = FirewallConfig::new(Backend::Iptables);
        c.ipv6 = true;
        c
    }

    fn net(br: &str, v4: &str) -> NetworkRules {
        NetworkRules::new(br, Some(v4.parse().unwrap()), None)
    }

    fn port(host: (u16, u16), ctr: (u16, u16)) -> PortRule {
        PortRule {
            proto: Protocol::Tcp,
            host_ip: None,
            host_ports: PortRange::new(host.0, host.1).unwrap(),
            container_ip: "172.18.0.3".parse().unwrap(),
            container_ports: PortRange::new(ctr.0, ctr.1).unwrap(),
            bridge: "br-a".into(),
        }
    }

    #[test]
    fn networks_are_checked() {
        let c = cfg();
        let mut s = DesiredState::new();
        s.insert_network(&c, net("br-a", "172.18.0.0/16")).unwrap();
        assert!(matches!(
            s.insert_network(&c, net("br-a", "172.19.0.0/16")),
            Err(Error::NetworkExists { .. })
        ));
        assert!(matches!(
            s.insert_network(&c, net("br-b", "172.18.5.0/24")),
            Err(Error::SubnetOverlap { .. })
        ));
        assert!(matches!(
            s.insert_network(&c, net("bad/name", "10.0.0.0/8")),
            Err(Error::InvalidInterface { .. })
        ));
        let mut v4only = FirewallConfig::new(Backend::Iptables);
        v4only.ipv6 = false;
        let n6 = NetworkRules::new("br-6", None, Some("fd00::/64".parse().unwrap()));
        assert!(matches!(
            DesiredState::new().insert_network(&v4only, n6),
            Err(Error::FamilyDisabled { .. })
        ));
        let mut bad = net("br-c", "10.0.0.0/8");
        bad.host_ipv6 = Some("fd00::1".parse().unwrap());
        assert!(matches!(
            s.insert_network(&c, bad),
            Err(Error::AddressMismatch { .. })
        ));
    }

    #[test]
    fn ports_are_checked() {
        let c = cfg();
        let mut s = DesiredState::new();
        s.insert_network(&c, net("br-a", "172.18.0.0/16")).unwrap();
        s.insert_port(&c, port((8080, 8080), (80, 80))).unwrap();
        assert!(matches!(
            s.insert_port(&c, port((8080, 8080), (81, 81))),
            Err(Error::PortConflict { .. })
        ));
        let mut specific = port((8080, 8080), (80, 80));
        specific.host_ip = Some("192.0.2.1".parse().unwrap());
        assert!(matches!(
            s.insert_port(&c, specific.clone()),
            Err(Error::PortConflict { .. })
        ));
        assert!(matches!(
            s.insert_port(&c, port((9000, 9010), (80, 81))),
            Err(Error::PortRangeMismatch { .. })
        ));
        s.insert_port(&c, port((9000, 9010), (80, 80))).unwrap();
        s.insert_port(&c, port((10000, 10999), (20000, 20999)))
            .unwrap();
        let mut v6host = port((1, 1), (1, 1));
        v6host.host_ip = Some("::1".parse().unwrap());
        assert!(matches!(
            s.insert_port(&c, v6host),
            Err(Error::AddressMismatch { .. })
        ));
        let mut outside = port((2, 2), (2, 2));
        outside.container_ip = "10.0.0.1".parse().unwrap();
        assert!(matches!(
            s.insert_port(&c, outside),
            Err(Error::AddressMismatch { .. })
        ));
        let mut nonet = port((3, 3), (3, 3));
        nonet.bridge = "br-zz".into();
        assert!(matches!(
            s.insert_port(&c, nonet),
            Err(Error::UnknownNetwork { .. })
        ));
        assert!(matches!(
            s.remove_network("br-a"),
            Err(Error::NetworkInUse { ports: 3, .. })
        ));
        assert_eq!(
            port((9000, 9999), (9000, 9999)).mapping(),
            PortMapping::Same
        );
        assert_eq!(port((9000, 9999), (80, 80)).mapping(), PortMapping::ToOne);
        assert_eq!(
            port((8000, 8999), (9000, 9999)).mapping(),
            PortMapping::Shifted
        );
    }

    #[test]
    fn links_are_checked() {
        let c = cfg();
        let mut s = DesiredState::new();
        s.insert_network(&c, net("br-a", "172.18.0.0/16")).unwrap();
        let l = LinkRule {
            bridge: "br-a".into(),
            parent_ip: "172.18.0.2".parse().unwrap(),
            child_ip: "172.18.0.3".parse().unwrap(),
            ports: vec![LinkPort {
                proto: Protocol::Tcp,
                port: 80,
            }],
        };
        s.insert_link(&c, l.clone()).unwrap();
        assert!(matches!(
            s.insert_link(&c, l.clone()),
            Err(Error::LinkExists { .. })
        ));
        let mut zero = l.clone();
        zero.child_ip = "172.18.0.4".parse().unwrap();
        zero.ports = vec![LinkPort {
            proto: Protocol::Udp,
            port: 0,
        }];
        assert!(matches!(
            s.insert_link(&c, zero),
            Err(Error::InvalidPortRange { .. })
        ));
        let mut mixed = l.clone();
        mixed.child_ip = "fd00::3".parse().unwrap();
        assert!(matches!(
            s.insert_link(&c, mixed),
            Err(Error::AddressMismatch { .. })
        ));
        s.remove_link(&l).unwrap();
        assert!(matches!(s.remove_link(&l), Err(Error::LinkNotFound { .. })));
    }
}

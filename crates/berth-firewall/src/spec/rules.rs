//! The objects berth programs: a bridge network ([`NetworkRules`]), a published port
//! ([`PortRule`], with how its ports map, [`PortMapping`]) and a legacy link ([`LinkRule`]), each
//! with the checks it can make on its own.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::FirewallConfig;
use crate::error::{Error, Result};
use crate::model::{Family, PortRange, Protocol, validate_interface};

/// The firewall side of one bridge network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRules {
    /// The bridge interface (`br-0123456789ab`, `docker0`).
    pub bridge: String,
    /// The IPv4 subnet, if the network has IPv4.
    pub subnet_v4: Option<Ipv4Net>,
    /// The IPv6 subnet, if the network has IPv6.
    pub subnet_v6: Option<Ipv6Net>,
    /// Inter-container communication within the network (`enable_icc`).
    pub icc: bool,
    /// No traffic leaves or enters the network's bridge (`--internal`). Internal networks are
    /// never masqueraded and cannot publish ports.
    pub internal: bool,
    /// Rewrite the source of outbound traffic (`enable_ip_masquerade`).
    pub masquerade: bool,
    /// With `masquerade`: SNAT outbound IPv4 traffic to this host address instead of the outgoing
    /// interface's address (`com.docker.network.host_ipv4`).
    pub host_ipv4: Option<Ipv4Addr>,
    /// Same for IPv6 (`com.docker.network.host_ipv6`).
    pub host_ipv6: Option<Ipv6Addr>,
}

impl NetworkRules {
    /// A network with icc on, not internal, masqueraded, no SNAT address.
    pub fn new(
        bridge: &str,
        subnet_v4: Option<Ipv4Net>,
        subnet_v6: Option<Ipv6Net>,
    ) -> NetworkRules {
        NetworkRules {
            bridge: bridge.to_owned(),
            subnet_v4,
            subnet_v6,
            icc: true,
            internal: false,
            masquerade: true,
            host_ipv4: None,
            host_ipv6: None,
        }
    }

    /// The subnet of `family`, normalised (host bits cleared).
    pub fn subnet(&self, family: Family) -> Option<IpNet> {
        match family {
            Family::V4 => self.subnet_v4.map(|n| IpNet::V4(n.trunc())),
            Family::V6 => self.subnet_v6.map(|n| IpNet::V6(n.trunc())),
        }
    }

    /// The SNAT address of `family`, if outbound traffic is SNATed rather than masqueraded.
    pub fn snat(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::V4 => self.host_ipv4.map(IpAddr::V4),
            Family::V6 => self.host_ipv6.map(IpAddr::V6),
        }
    }

    /// True if outbound traffic of `family` is NATed (masquerade or SNAT).
    pub fn nat_outbound(&self, family: Family) -> bool {
        self.masquerade && !self.internal && self.subnet(family).is_some()
    }

    pub(super) fn validate(&self, config: &FirewallConfig) -> Result<()> {
        validate_interface(&self.bridge, "network bridge")?;
        let object = || format!("network on bridge {:?}", self.bridge);
        for f in [Family::V4, Family::V6] {
            if self.subnet(f).is_some() && !config.has(f) {
                return Err(Error::FamilyDisabled {
                    object: object(),
                    family: f.label(),
                });
            }
            if self.snat(f).is_some() && self.subnet(f).is_none() {
                return Err(Error::AddressMismatch {
                    object: object(),
                    reason: format!(
                        "an {} SNAT address (host_ip) is set but the network has no {} subnet",
                        f.label(),
                        f.label()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// One published port mapping: host ports (on one host address or all) to container ports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortRule {
    /// The protocol.
    pub proto: Protocol,
    /// The host address; `None` (or an unspecified address) publishes on every local address of
    /// the container address's family, including the loopback address.
    pub host_ip: Option<IpAddr>,
    /// Host ports.
    pub host_ports: PortRange,
    /// The container's address.
    pub container_ip: IpAddr,
    /// Container ports: as long as `host_ports` (port N maps to the Nth container port), or a
    /// single port all host ports map to.
    pub container_ports: PortRange,
    /// The bridge of the container's network.
    pub bridge: String,
}

impl PortRule {
    /// The address family.
    pub fn family(&self) -> Family {
        Family::of(self.container_ip)
    }

    /// The host address, with an unspecified address (`0.0.0.0`, `::`) read as "every address".
    pub fn host_addr(&self) -> Option<IpAddr> {
        self.host_ip.filter(|a| !a.is_unspecified())
    }

    /// How host ports map to container ports.
    pub fn mapping(&self) -> PortMapping {
        if self.host_ports == self.container_ports {
            PortMapping::Same
        } else if self.container_ports.is_single() {
            PortMapping::ToOne
        } else {
            PortMapping::Shifted
        }
    }

    /// Checks the rule on its own (not against other rules).
    pub fn validate(&self) -> Result<()> {
        validate_interface(&self.bridge, "published port bridge")?;
        if self.host_ports.len() != self.container_ports.len() && !self.container_ports.is_single()
        {
            return Err(Error::PortRangeMismatch {
                host: self.host_ports.to_string(),
                container: self.container_ports.to_string(),
                host_len: self.host_ports.len(),
                container_len: self.container_ports.len(),
            });
        }
        if let Some(h) = self.host_ip {
            if Family::of(h) != self.family() {
                return Err(Error::AddressMismatch {
                    object: format!("published port {self}"),
                    reason: format!(
                        "host address {h} is {} but container address {} is {}; publish each family separately",
                        Family::of(h).label(),
                        self.container_ip,
                        self.family().label()
                    ),
                });
            }
        }
        if self.container_ip.is_unspecified()
            || self.container_ip.is_loopback()
            || self.container_ip.is_multicast()
        {
            return Err(Error::AddressMismatch {
                object: format!("published port {self}"),
                reason: format!("{} is not a container address", self.container_ip),
            });
        }
        Ok(())
    }

    /// True if both rules claim a common host port (same protocol, overlapping addresses).
    pub fn conflicts_with(&self, other: &PortRule) -> bool {
        self.proto == other.proto
            && self.family() == other.family()
            && self.host_ports.overlaps(other.host_ports)
            && match (self.host_addr(), other.host_addr()) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for PortRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match self.host_addr() {
            Some(IpAddr::V6(a)) => format!("[{a}]:"),
            Some(a) => format!("{a}:"),
            None => String::new(),
        };
        let ctr = match self.container_ip {
            IpAddr::V6(a) => format!("[{a}]"),
            a => a.to_string(),
        };
        write!(
            f,
            "{host}{}->{ctr}:{}/{} on {}",
            self.host_ports, self.container_ports, self.proto, self.bridge
        )
    }
}

/// How a [`PortRule`]'s host ports map onto its container ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortMapping {
    /// Host and container ports are the same (one port, or the same range): the port is kept.
    Same,
    /// Every host port maps to the one container port.
    ToOne,
    /// Ranges of equal length at different offsets.
    Shifted,
}

/// A port of a legacy link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LinkPort {
    /// The protocol.
    pub proto: Protocol,
    /// The child's exposed port (never 0).
    pub port: u16,
}

/// A legacy link (`--link`) on a network with icc disabled: the parent may open connections to
/// the child's exposed ports, and the child answers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LinkRule {
    /// The network's bridge.
    pub bridge: String,
    /// The parent (the container that links), which opens connections.
    pub parent_ip: IpAddr,
    /// The child (the linked container), which exposes the ports.
    pub child_ip: IpAddr,
    /// The child's exposed ports.
    pub ports: Vec<LinkPort>,
}

impl LinkRule {
    /// The address family.
    pub fn family(&self) -> Family {
        Family::of(self.parent_ip)
    }

    pub(super) fn validate(&self) -> Result<()> {
        validate_interface(&self.bridge, "link bridge")?;
        if Family::of(self.child_ip) != self.family() {
            return Err(Error::AddressMismatch {
                object: format!("link {self}"),
                reason: "parent and child addresses are of different families".into(),
            });
        }
        if self.parent_ip == self.child_ip {
            return Err(Error::InvalidRule {
                object: format!("link {self}"),
                reason: "a container cannot be linked to itself".into(),
            });
        }
        if self.ports.is_empty() {
            return Err(Error::InvalidRule {
                object: format!("link {self}"),
                reason: "no ports given; a link opens at least one exposed port".into(),
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.ports {
            PortRange::single(p.port)?;
            if !seen.insert(*p) {
                return Err(Error::InvalidRule {
                    object: format!("link {self}"),
                    reason: format!("port {}/{} is listed twice", p.port, p.proto),
                });
            }
        }
        Ok(())
    }
}

impl fmt::Display for LinkRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} on {}",
            self.parent_ip, self.child_ip, self.bridge
        )
    }
}

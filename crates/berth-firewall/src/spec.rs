//! What the caller asks for: configuration, networks, published ports, links, and the desired
//! state that holds them all. Validation happens here, before anything is rendered.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Family, PortRange, Protocol, validate_interface};

/// Which firewall programming interface berth uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Backend {
    /// `iptables-restore` / `ip6tables-restore` batches (the layout Docker users know, with the
    /// `DOCKER-USER` chain).
    #[default]
    Iptables,
    /// One `nft -f` transaction per change, on berth's own `inet berth` table, with sets and
    /// verdict maps.
    Nftables,
}

/// Which `iptables` binaries the iptables backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum IptablesVariant {
    /// `iptables-restore`, `ip6tables-restore`, `iptables-save` as found on `PATH` (whatever the
    /// distribution's alternatives point to).
    #[default]
    Auto,
    /// The `iptables-nft-*` binaries (nf_tables kernel API).
    Nft,
    /// The `iptables-legacy-*` binaries (x_tables kernel API).
    Legacy,
}

impl IptablesVariant {
    /// The restore program for `family`.
    pub fn restore(self, family: Family) -> &'static str {
        match (self, family) {
            (IptablesVariant::Auto, Family::V4) => "iptables-restore",
            (IptablesVariant::Auto, Family::V6) => "ip6tables-restore",
            (IptablesVariant::Nft, Family::V4) => "iptables-nft-restore",
            (IptablesVariant::Nft, Family::V6) => "ip6tables-nft-restore",
            (IptablesVariant::Legacy, Family::V4) => "iptables-legacy-restore",
            (IptablesVariant::Legacy, Family::V6) => "ip6tables-legacy-restore",
        }
    }

    /// The save program for `family`.
    pub fn save(self, family: Family) -> &'static str {
        match (self, family) {
            (IptablesVariant::Auto, Family::V4) => "iptables-save",
            (IptablesVariant::Auto, Family::V6) => "ip6tables-save",
            (IptablesVariant::Nft, Family::V4) => "iptables-nft-save",
            (IptablesVariant::Nft, Family::V6) => "ip6tables-nft-save",
            (IptablesVariant::Legacy, Family::V4) => "iptables-legacy-save",
            (IptablesVariant::Legacy, Family::V6) => "ip6tables-legacy-save",
        }
    }
}

/// How the firewall is set up. Build it with [`FirewallConfig::new`] and adjust the fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FirewallConfig {
    /// The backend.
    pub backend: Backend,
    /// The iptables binaries (iptables backend, and the sandbox DNS rules with it).
    pub iptables_variant: IptablesVariant,
    /// Program IPv4 rules.
    pub ipv4: bool,
    /// Program IPv6 rules.
    pub ipv6: bool,
    /// Interfaces from which packets may reach any container address directly (routed, without a
    /// published port). Everything else that enters a berth bridge from outside must have been
    /// DNATed by a published port.
    pub trusted_interfaces: Vec<String>,
    /// Set the IPv4 FORWARD policy to DROP. Set this only when the caller itself switched
    /// `net.ipv4.ip_forward` on (as Docker does); then berth's accept rules are the only way
    /// through. berth never sets the policy back to ACCEPT.
    pub forward_policy_drop: bool,
    /// Same for IPv6 (`net.ipv6.conf.all.forwarding`).
    pub forward_policy_drop_v6: bool,
    /// Directory holding the tools (`iptables-restore`, `nft`, ...); `None` searches `PATH`.
    pub tools_dir: Option<std::path::PathBuf>,
    /// iptables backend with the nf_tables binaries: append and delete rules over netlink,
    /// encoded as `iptables-nft` encodes them, instead of running `iptables-restore` (which costs
    /// 3 to 6 ms per family per change). The encoding is checked against the installed tool once
    /// per namespace; if it differs, the tool is used. Reconcile always uses the tool.
    #[serde(default = "default_true")]
    pub iptables_netlink: bool,
}

fn default_true() -> bool {
    true
}

impl FirewallConfig {
    /// IPv4 only, no trusted interfaces, FORWARD policy left alone.
    pub fn new(backend: Backend) -> FirewallConfig {
        FirewallConfig {
            backend,
            iptables_variant: IptablesVariant::Auto,
            ipv4: true,
            ipv6: false,
            trusted_interfaces: Vec::new(),
            forward_policy_drop: false,
            forward_policy_drop_v6: false,
            tools_dir: None,
            iptables_netlink: true,
        }
    }

    /// The families enabled, IPv4 first.
    pub fn families(&self) -> Vec<Family> {
        let mut v = Vec::new();
        if self.ipv4 {
            v.push(Family::V4);
        }
        if self.ipv6 {
            v.push(Family::V6);
        }
        v
    }

    /// True if `family` is enabled.
    pub fn has(&self, family: Family) -> bool {
        match family {
            Family::V4 => self.ipv4,
            Family::V6 => self.ipv6,
        }
    }

    /// Whether berth sets the FORWARD policy of `family` to DROP.
    pub fn drops_forward(&self, family: Family) -> bool {
        match family {
            Family::V4 => self.forward_policy_drop,
            Family::V6 => self.forward_policy_drop_v6,
        }
    }

    /// Checks the trusted interface names.
    pub fn validate(&self) -> Result<()> {
        for t in &self.trusted_interfaces {
            validate_interface(t, "trusted interface")?;
        }
        Ok(())
    }
}

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

    fn validate(&self, config: &FirewallConfig) -> Result<()> {
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

    fn validate(&self) -> Result<()> {
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

//! What the caller asks for: configuration, networks, published ports, links, and the desired
//! state that holds them all. Validation happens here, before anything is rendered.
//!
//! This file holds the configuration ([`FirewallConfig`], [`Backend`], [`IptablesVariant`]);
//! `rules` the objects berth programs (networks, published ports, links) and their own checks;
//! `state` the [`DesiredState`] that holds them and checks each against the others.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::{Family, validate_interface};

mod rules;
mod state;

pub use rules::{LinkPort, LinkRule, NetworkRules, PortMapping, PortRule};
pub use state::DesiredState;

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

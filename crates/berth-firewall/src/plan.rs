//! The pure planner: from a desired state and a change, the transaction that applies it. No I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::iptables::{self, Dump, IptBatch};
use crate::model::{Family, Rule};
use crate::nftables::{self, Listing, NftBatch};
use crate::report::DriftReport;
use crate::spec::{Backend, DesiredState, FirewallConfig, LinkRule, NetworkRules, PortRule};

/// What one operation sends to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transaction {
    /// One `iptables-restore --noflush` batch per address family (IPv4 first).
    Iptables(Vec<IptBatch>),
    /// One nftables transaction: `nft -f`, or one netlink batch for element-only changes.
    Nftables(NftBatch),
}

impl Transaction {
    /// True if nothing needs to run.
    pub fn is_empty(&self) -> bool {
        match self {
            Transaction::Iptables(b) => b.iter().all(IptBatch::is_empty),
            Transaction::Nftables(b) => b.is_empty(),
        }
    }

    /// Number of kernel transactions this costs: tool runs, or the one netlink batch of an
    /// nftables change that only adds and deletes set elements.
    pub fn processes(&self) -> usize {
        match self {
            Transaction::Iptables(b) => b.iter().filter(|b| !b.is_empty()).count(),
            Transaction::Nftables(b) => usize::from(!b.is_empty()),
        }
    }

    /// Every script, each headed by a `# <program>` comment line (for logs and golden files).
    pub fn render(&self) -> String {
        let mut out = String::new();
        match self {
            Transaction::Iptables(batches) => {
                for b in batches.iter().filter(|b| !b.is_empty()) {
                    let prog = match b.family {
                        Family::V4 => "iptables-restore --noflush --wait",
                        Family::V6 => "ip6tables-restore --noflush --wait",
                    };
                    let _ = writeln!(out, "# {prog}");
                    out.push_str(&b.script());
                }
            }
            Transaction::Nftables(b) => {
                if !b.is_empty() {
                    out.push_str("# nft -f -\n");
                    out.push_str(&b.script());
                }
            }
        }
        out
    }
}

/// What reconcile reads from the kernel before planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// `iptables-save` of each enabled family.
    Iptables(BTreeMap<Family, Dump>),
    /// `nft list table inet berth` (`None`: the table does not exist).
    Nftables(Option<Listing>),
}

/// Plans transactions for one configuration. Every method validates its input against the
/// state first and returns a typed error before anything is rendered.
///
/// ```
/// use berth_firewall::{Backend, DesiredState, FirewallConfig, NetworkRules, Planner};
/// let planner = Planner::new(FirewallConfig::new(Backend::Nftables)).unwrap();
/// let net = NetworkRules::new("br-0123", Some("172.18.0.0/16".parse().unwrap()), None);
/// let tx = planner.add_network(&DesiredState::new(), &net).unwrap();
/// assert!(tx.render().contains("add element inet berth bridges { \"br-0123\" }"));
/// ```
#[derive(Debug, Clone)]
pub struct Planner {
    config: FirewallConfig,
}

impl Planner {
    /// A planner for `config` (checked).
    pub fn new(config: FirewallConfig) -> Result<Planner> {
        config.validate()?;
        Ok(Planner { config })
    }

    /// The configuration.
    pub fn config(&self) -> &FirewallConfig {
        &self.config
    }

    fn ipt_rules(&self, f: impl Fn(Family) -> Vec<Rule>) -> Vec<(Family, Rule)> {
        self.config
            .families()
            .into_iter()
            .flat_map(|fam| f(fam).into_iter().map(move |r| (fam, r)))
            .collect()
    }

    /// Adds a network.
    pub fn add_network(&self, state: &DesiredState, net: &NetworkRules) -> Result<Transaction> {
        state.check_network(&self.config, net)?;
        Ok(self.network_delta(net, true))
    }

    /// Removes the network on `bridge` (which must have no ports or links left).
    pub fn remove_network(&self, state: &DesiredState, bridge: &str) -> Result<Transaction> {
        let net = state.check_remove_network(bridge)?;
        Ok(self.network_delta(net, false))
    }

    fn network_delta(&self, net: &NetworkRules, add: bool) -> Transaction {
        match self.config.backend {
            Backend::Iptables => {
                let rules = self.ipt_rules(|fam| iptables::network_rules(&self.config, net, fam));
                let (a, r) = if add {
                    (rules, vec![])
                } else {
                    (vec![], rules)
                };
                Transaction::Iptables(iptables::delta(&self.config, &a, &r))
            }
            Backend::Nftables => {
                let e = nftables::network_elems(net);
                let (a, r) = if add { (e, vec![]) } else { (vec![], e) };
                Transaction::Nftables(nftables::delta(&a, &r))
            }
        }
    }

    /// Publishes ports (typically all of one container) in one transaction.
    pub fn add_ports(&self, state: &DesiredState, ports: &[PortRule]) -> Result<Transaction> {
        for (i, p) in ports.iter().enumerate() {
            state.check_port(&self.config, p, &ports[..i])?;
        }
        Ok(self.ports_delta(state, ports, true))
    }

    /// Unpublishes ports in one transaction.
    pub fn remove_ports(&self, state: &DesiredState, ports: &[PortRule]) -> Result<Transaction> {
        for (i, p) in ports.iter().enumerate() {
            if !state.has_port(p) || ports[..i].contains(p) {
                return Err(Error::PortNotFound {
                    port: p.to_string(),
                });
            }
        }
        Ok(self.ports_delta(state, ports, false))
    }

    fn ports_delta(&self, state: &DesiredState, ports: &[PortRule], add: bool) -> Transaction {
        let (adds, removes): (&[PortRule], &[PortRule]) =
            if add { (ports, &[]) } else { (&[], ports) };
        match self.config.backend {
            Backend::Iptables => Transaction::Iptables(iptables::ports_delta(
                &self.config,
                state.ports(),
                adds,
                removes,
            )),
            Backend::Nftables => {
                let a: Vec<_> = adds.iter().flat_map(nftables::port_dnat_elems).collect();
                let r: Vec<_> = removes.iter().flat_map(nftables::port_dnat_elems).collect();
                Transaction::Nftables(nftables::delta(&a, &r))
            }
        }
    }

    /// Adds a legacy link.
    pub fn add_link(&self, state: &DesiredState, link: &LinkRule) -> Result<Transaction> {
        state.check_link(&self.config, link)?;
        Ok(self.link_delta(link, true))
    }

    /// Removes a legacy link.
    pub fn remove_link(&self, state: &DesiredState, link: &LinkRule) -> Result<Transaction> {
        if !state.links().contains(link) {
            return Err(Error::LinkNotFound {
                link: link.to_string(),
            });
        }
        Ok(self.link_delta(link, false))
    }

    fn link_delta(&self, link: &LinkRule, add: bool) -> Transaction {
        match self.config.backend {
            Backend::Iptables => {
                let rules: Vec<(Family, Rule)> = iptables::link_rules(link)
                    .into_iter()
                    .map(|r| (link.family(), r))
                    .collect();
                let (a, r) = if add {
                    (rules, vec![])
                } else {
                    (vec![], rules)
                };
                Transaction::Iptables(iptables::delta(&self.config, &a, &r))
            }
            Backend::Nftables => {
                let e = nftables::link_elems(link);
                let (a, r) = if add { (e, vec![]) } else { (vec![], e) };
                Transaction::Nftables(nftables::delta(&a, &r))
            }
        }
    }

    /// The transaction that converges `observed` onto `state`, and what differed.
    pub fn converge(
        &self,
        state: &DesiredState,
        observed: &Observed,
    ) -> Result<(Transaction, DriftReport)> {
        match (self.config.backend, observed) {
            (Backend::Iptables, Observed::Iptables(dumps)) => {
                let mut report = DriftReport::default();
                let mut batches = Vec::new();
                for family in self.config.families() {
                    let empty = Dump::default();
                    let dump = dumps.get(&family).unwrap_or(&empty);
                    let layout = iptables::host_layout(&self.config, state, family);
                    let (sections, r) = iptables::converge(&layout, family, dump);
                    report.merge(r);
                    batches.push(IptBatch { family, sections });
                }
                Ok((Transaction::Iptables(batches), report))
            }
            (Backend::Nftables, Observed::Nftables(listing)) => {
                let (b, r) = nftables::converge(&self.config, state, listing.as_ref());
                Ok((Transaction::Nftables(b), r))
            }
            _ => Err(Error::InvalidRule {
                object: "reconcile".into(),
                reason: "the observed ruleset belongs to the other backend".into(),
            }),
        }
    }

    /// The transaction that sets up `state` in a namespace with no rules at all: berth's whole
    /// ruleset (used for golden tests and to show what berth installs).
    pub fn full(&self, state: &DesiredState) -> Result<Transaction> {
        let observed = match self.config.backend {
            Backend::Iptables => {
                let empty = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n\
                             *nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n";
                let dump = Dump::parse(empty)?;
                Observed::Iptables(
                    self.config
                        .families()
                        .into_iter()
                        .map(|f| (f, dump.clone()))
                        .collect(),
                )
            }
            Backend::Nftables => Observed::Nftables(None),
        };
        Ok(self.converge(state, &observed)?.0)
    }
}

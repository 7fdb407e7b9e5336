//! The iptables backend, pure part: berth's chain layout, the rules of each object, the
//! `iptables-restore --noflush` batches of a change (with their undo), and reconcile against what
//! `iptables-save` reports.
//!
//! # Layout (per address family)
//!
//! ```text
//! filter FORWARD   1: -j DOCKER-USER          (the user's chain, never flushed)
//!                  2: -j BERTH-FORWARD
//! BERTH-FORWARD    -j BERTH-ISOLATION   drops only: traffic between two berth bridges, in/out of internal ones
//!                  -j BERTH-LINKS       accepts only: legacy links
//!                  -j BERTH-ACCEPT      accepts only: replies and DNATed (published) flows into a
//!                                       bridge, icc on, trusted interfaces, outbound
//!                  -j BERTH-DROP        drops only: icc off, anything else entering a bridge
//! nat PREROUTING   -m addrtype --dst-type LOCAL -j BERTH-DNAT
//! nat OUTPUT       -m addrtype --dst-type LOCAL -j BERTH-DNAT   (127.0.0.1:PORT and host addresses)
//! BERTH-DNAT       host port ranges that span 256-port blocks, and one jump per used block:
//!                  -p tcp -m tcp --dport 8192:8447 -j BERTH-DNAT-TCP-32
//! BERTH-DNAT-TCP-32  the DNAT rules whose host ports lie in that block
//! nat POSTROUTING  -j BERTH-POSTROUTING  (hairpin, localhost and outbound masquerade / SNAT)
//! raw PREROUTING   1: -j BERTH-RAW        (IPv4 only)
//! BERTH-RAW        -d 127.0.0.0/8 ! -i lo -j DROP   (loopback destinations from outside: see
//!                                       [`crate::model::loopback_from_outside_drop`])
//! ```
//!
//! Every berth chain except BERTH-FORWARD holds rules of a single verdict (or disjoint DNATs), so
//! the order of its rules never matters: a change appends or deletes exactly its own rules, and
//! drift is a multiset comparison.
//!
//! DNAT rules are spread over per-block chains because `iptables -D` compares the rule with every
//! rule of its chain: with 10,000 published ports in one chain, one delete took 70-80 ms here; in
//! a block chain it searches at most 256 rules. The blocks also keep the per-packet walk short.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::model::{
    AddrType, CtState, Family, PortRange, Rule, Table, Target, ipv4_loopback,
    loopback_from_outside_drop,
};
use crate::report::DriftReport;
use crate::spec::{DesiredState, FirewallConfig, LinkRule, NetworkRules, PortMapping, PortRule};

mod dump;
pub use dump::*;

/// The user's chain: created if missing (with `-j RETURN` only then), jumped to first from
/// FORWARD, never flushed or rewritten.
pub const USER_CHAIN: &str = "DOCKER-USER";
/// berth's entry chain in filter FORWARD.
pub const FORWARD: &str = "BERTH-FORWARD";
/// Isolation between networks, stage 1 (per source bridge).
pub const ISOLATION: &str = "BERTH-ISOLATION";
/// Isolation between networks, stage 2 (per destination bridge).
pub const ISOLATION_2: &str = "BERTH-ISOLATION-2";
/// Accepts for legacy links.
pub const LINKS: &str = "BERTH-LINKS";
/// Per-network accepts.
pub const ACCEPT: &str = "BERTH-ACCEPT";
/// Per-network drops.
pub const DROP: &str = "BERTH-DROP";
/// DNAT of published ports.
pub const DNAT: &str = "BERTH-DNAT";
/// Masquerade and SNAT.
pub const POSTROUTING: &str = "BERTH-POSTROUTING";
/// Drops before conntrack, jumped to first from raw PREROUTING (IPv4): packets addressed to
/// 127.0.0.0/8 that did not come in on `lo`.
pub const RAW: &str = "BERTH-RAW";
/// Prefix of the sandbox-side DNS chains (owned by [`crate::dns`], never by host reconcile).
pub const DNS_PREFIX: &str = "BERTH-DNS-";

const FILTER_CHAINS: [&str; 6] = [FORWARD, ISOLATION, ISOLATION_2, LINKS, ACCEPT, DROP];
/// Ports per DNAT block chain.
pub const DNAT_BLOCK: u16 = 256;
const NAT_CHAINS: [&str; 2] = [DNAT, POSTROUTING];

/// One line of an `iptables-restore` table section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IptOp {
    /// `:CHAIN - [0:0]`: creates a chain, or flushes it if it exists.
    Declare(String),
    /// `:CHAIN POLICY [0:0]` on a built-in chain: sets its policy (does not flush it).
    Policy(String, String),
    /// `-A CHAIN SPEC`.
    Append(String, String),
    /// `-A CHAIN SPEC` of a rule berth built (so the fast path can encode it for netlink).
    AppendRule(Rule),
    /// `-I CHAIN N SPEC` (1-based position).
    Insert(String, usize, String),
    /// `-D CHAIN SPEC`.
    Delete(String, String),
    /// `-D CHAIN SPEC` of a rule berth built (so the fast path can find it over netlink).
    DeleteRule(Rule),
    /// `-X CHAIN`.
    DeleteChain(String),
}

impl IptOp {
    /// The operation with a built rule written out as text (`AppendRule` as `Append`,
    /// `DeleteRule` as `Delete`): what the tool and the simulators see.
    pub fn text(&self) -> std::borrow::Cow<'_, IptOp> {
        use std::borrow::Cow;
        match self {
            IptOp::AppendRule(r) => Cow::Owned(IptOp::Append(r.chain.clone(), r.iptables_spec())),
            IptOp::DeleteRule(r) => Cow::Owned(IptOp::Delete(r.chain.clone(), r.iptables_spec())),
            other => Cow::Borrowed(other),
        }
    }

    /// The restore line.
    pub fn line(&self) -> String {
        match self {
            IptOp::Declare(c) => format!(":{c} - [0:0]"),
            IptOp::Policy(c, p) => format!(":{c} {p} [0:0]"),
            IptOp::Append(c, s) => format!("-A {c} {s}"),
            IptOp::AppendRule(_) | IptOp::DeleteRule(_) => self.text().line(),
            IptOp::Insert(c, n, s) => format!("-I {c} {n} {s}"),
            IptOp::Delete(c, s) => format!("-D {c} {s}"),
            IptOp::DeleteChain(c) => format!("-X {c}"),
        }
    }
}

/// The part of a batch for one table, with the operations that undo it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IptSection {
    /// The table.
    pub table: Table,
    /// What to do.
    pub ops: Vec<IptOp>,
    /// What undoes `ops` once they are committed.
    pub undo: Vec<IptOp>,
}

/// One `iptables-restore` (or `ip6tables-restore`) run: sections in order, each ending in COMMIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IptBatch {
    /// The address family (which program runs it).
    pub family: Family,
    /// The table sections.
    pub sections: Vec<IptSection>,
}

impl IptBatch {
    /// True if there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.sections.iter().all(|s| s.ops.is_empty())
    }

    /// The restore input.
    pub fn script(&self) -> String {
        render_sections(self.sections.iter().map(|s| (s.table, s.ops.as_slice())))
    }

    /// The 1-based line number of each section's COMMIT in [`IptBatch::script`].
    pub fn commit_lines(&self) -> Vec<usize> {
        let mut line = 0;
        let mut out = Vec::new();
        for s in self.sections.iter().filter(|s| !s.ops.is_empty()) {
            line += 1 + s.ops.len() + 1;
            out.push(line);
        }
        out
    }

    /// The restore input that undoes the first `n` non-empty sections (in reverse order).
    pub fn undo_script(&self, n: usize) -> String {
        let done: Vec<&IptSection> = self
            .sections
            .iter()
            .filter(|s| !s.ops.is_empty())
            .take(n)
            .collect();
        render_sections(done.into_iter().rev().map(|s| (s.table, s.undo.as_slice())))
    }
}

fn render_sections<'a>(sections: impl Iterator<Item = (Table, &'a [IptOp])>) -> String {
    let mut out = String::new();
    for (table, ops) in sections {
        if ops.is_empty() {
            continue;
        }
        out.push('*');
        out.push_str(table.name());
        out.push('\n');
        for op in ops {
            out.push_str(&op.line());
            out.push('\n');
        }
        out.push_str("COMMIT\n");
    }
    out
}

fn host(addr: IpAddr) -> IpNet {
    IpNet::from(addr)
}

/// The rules of BERTH-FORWARD (fixed, in this order).
pub fn base_rules() -> Vec<Rule> {
    [ISOLATION, LINKS, ACCEPT, DROP]
        .into_iter()
        .map(|c| Rule::new(Table::Filter, FORWARD, Target::Jump(c.into())))
        .collect()
}

/// The rules of BERTH-RAW in `family` (fixed): the drop of loopback destinations from outside,
/// for IPv4; none for IPv6, whose loopback address the kernel never accepts from outside.
pub fn raw_rules(family: Family) -> Vec<Rule> {
    match family {
        Family::V4 => vec![loopback_from_outside_drop(Table::Raw, RAW)],
        Family::V6 => Vec::new(),
    }
}

/// The rules a network owns in `family` (none if it has no subnet of that family).
pub fn network_rules(config: &FirewallConfig, net: &NetworkRules, family: Family) -> Vec<Rule> {
    let Some(subnet) = net.subnet(family) else {
        return Vec::new();
    };
    let br = net.bridge.as_str();
    let f = Table::Filter;
    let mut r = Vec::new();
    if net.internal {
        r.push(
            Rule::new(f, ISOLATION, Target::Drop)
                .in_if(br)
                .not_out_if(br),
        );
        r.push(
            Rule::new(f, ISOLATION, Target::Drop)
                .not_in_if(br)
                .out_if(br),
        );
        if net.icc {
            r.push(Rule::new(f, ACCEPT, Target::Accept).in_if(br).out_if(br));
        } else {
            r.push(Rule::new(f, DROP, Target::Drop).in_if(br).out_if(br));
        }
        return r;
    }
    r.push(
        Rule::new(f, ISOLATION, Target::Jump(ISOLATION_2.into()))
            .in_if(br)
            .not_out_if(br),
    );
    r.push(Rule::new(f, ISOLATION_2, Target::Drop).out_if(br));
    // Replies, and flows a published port (or any DNAT the admin wrote) sent into the bridge.
    r.push(Rule::new(f, ACCEPT, Target::Accept).out_if(br).ct(&[
        CtState::Related,
        CtState::Established,
        CtState::Dnat,
    ]));
    if net.icc {
        r.push(Rule::new(f, ACCEPT, Target::Accept).in_if(br).out_if(br));
    } else {
        r.push(Rule::new(f, DROP, Target::Drop).in_if(br).out_if(br));
    }
    for t in &config.trusted_interfaces {
        r.push(Rule::new(f, ACCEPT, Target::Accept).in_if(t).out_if(br));
    }
    r.push(Rule::new(f, DROP, Target::Drop).out_if(br));
    r.push(
        Rule::new(f, ACCEPT, Target::Accept)
            .in_if(br)
            .not_out_if(br),
    );

    let n = Table::Nat;
    r.push(
        Rule::new(n, POSTROUTING, Target::Masquerade)
            .src(subnet)
            .out_if(br)
            .ct(&[CtState::Dnat]),
    );
    if family == Family::V4 {
        r.push(
            Rule::new(n, POSTROUTING, Target::Masquerade)
                .src(ipv4_loopback())
                .out_if(br),
        );
    }
    if net.nat_outbound(family) {
        let target = match net.snat(family) {
            Some(a) => Target::Snat {
                to: Some(a),
                ports: None,
            },
            None => Target::Masquerade,
        };
        r.push(Rule::new(n, POSTROUTING, target).src(subnet).not_out_if(br));
    }
    r
}

/// The DNAT block chain of a host port range, if the range lies within one block.
pub fn dnat_chain(proto: crate::model::Protocol, host_ports: PortRange) -> Option<String> {
    let block = host_ports.start() / DNAT_BLOCK;
    (host_ports.end() / DNAT_BLOCK == block)
        .then(|| format!("{DNAT}-{}-{block}", proto.name().to_uppercase()))
}

/// The block of a port whose host ports lie within one block: (family, protocol, block).
type BlockKey = (Family, crate::model::Protocol, u16);

fn block_key(port: &PortRule) -> Option<BlockKey> {
    let block = port.host_ports.start() / DNAT_BLOCK;
    (port.host_ports.end() / DNAT_BLOCK == block).then_some((port.family(), port.proto, block))
}

/// The jump from BERTH-DNAT into the block chain holding `port`'s rule.
fn dnat_jump(port: &PortRule) -> Option<(String, Rule)> {
    let chain = dnat_chain(port.proto, port.host_ports)?;
    let block = port.host_ports.start() / DNAT_BLOCK;
    let first = (block * DNAT_BLOCK).max(1);
    let last = block
        .saturating_mul(DNAT_BLOCK)
        .saturating_add(DNAT_BLOCK - 1);
    let range = PortRange::new(first, last).ok()?;
    let jump =
        Rule::new(Table::Nat, DNAT, Target::Jump(chain.clone())).proto_dport(port.proto, range);
    Some((chain, jump))
}

/// The DNAT rule of a published port (in its block chain, or in BERTH-DNAT for a range that
/// spans blocks). The accept of the DNATed flow is the network's.
pub fn port_rules(port: &PortRule) -> Vec<Rule> {
    let base = match port.mapping() {
        PortMapping::Shifted => Some(port.host_ports.start()),
        _ => None,
    };
    let chain = dnat_chain(port.proto, port.host_ports).unwrap_or_else(|| DNAT.to_owned());
    let mut dnat = Rule::new(
        Table::Nat,
        &chain,
        Target::Dnat {
            to: port.container_ip,
            ports: Some(port.container_ports),
            base,
        },
    )
    .proto_dport(port.proto, port.host_ports);
    if let Some(h) = port.host_addr() {
        dnat = dnat.dst(host(h));
    }
    vec![dnat]
}

/// Block chains in use (with their jumps) by the ports of `family`.
fn dnat_blocks<'a>(
    ports: impl Iterator<Item = &'a PortRule>,
    family: Family,
) -> BTreeMap<String, Rule> {
    ports
        .filter(|p| p.family() == family)
        .filter_map(dnat_jump)
        .collect()
}

/// The batches that publish `adds` and unpublish `removes` given the ports published `before`:
/// DNAT rules, plus the block chains (and their jumps) that come into use or fall empty.
pub fn ports_delta(
    config: &FirewallConfig,
    before: &[PortRule],
    adds: &[PortRule],
    removes: &[PortRule],
) -> Vec<IptBatch> {
    let mut after: Vec<&PortRule> = before.iter().collect();
    for r in removes {
        if let Some(i) = after.iter().position(|p| *p == r) {
            after.remove(i);
        }
    }
    after.extend(adds);
    // Only the blocks this change touches can come into use or fall empty; a scan without
    // allocation tells whether other ports still use them.
    let touched: BTreeMap<BlockKey, &PortRule> = adds
        .iter()
        .chain(removes)
        .filter_map(|p| Some((block_key(p)?, p)))
        .collect();
    let mut out = Vec::new();
    for family in config.families() {
        let mut created: Vec<(String, Rule)> = Vec::new();
        let mut emptied: Vec<(String, Rule)> = Vec::new();
        for (key, port) in touched.iter().filter(|(k, _)| k.0 == family) {
            let used_before = before.iter().any(|p| block_key(p) == Some(*key));
            let used_after = after.iter().any(|p| block_key(p) == Some(*key));
            match (used_before, used_after, dnat_jump(port)) {
                (false, true, Some(j)) => created.push(j),
                (true, false, Some(j)) => emptied.push(j),
                _ => {}
            }
        }
        let rules = |ports: &[PortRule]| -> Vec<Rule> {
            ports
                .iter()
                .filter(|p| p.family() == family)
                .flat_map(port_rules)
                .collect()
        };
        let (added, removed) = (rules(adds), rules(removes));
        let mut ops = Vec::new();
        ops.extend(removed.iter().rev().cloned().map(IptOp::DeleteRule));
        ops.extend(emptied.iter().map(|(_, j)| IptOp::DeleteRule(j.clone())));
        ops.extend(
            emptied
                .iter()
                .map(|(c, _)| IptOp::DeleteChain((*c).clone())),
        );
        ops.extend(created.iter().map(|(c, _)| IptOp::Declare((*c).clone())));
        ops.extend(added.iter().cloned().map(IptOp::AppendRule));
        ops.extend(created.iter().map(|(_, j)| IptOp::AppendRule(j.clone())));
        let mut undo = Vec::new();
        undo.extend(
            added
                .iter()
                .rev()
                .map(|r| IptOp::Delete(r.chain.clone(), r.iptables_spec())),
        );
        undo.extend(
            created
                .iter()
                .map(|(_, j)| IptOp::Delete(DNAT.into(), j.iptables_spec())),
        );
        undo.extend(
            created
                .iter()
                .map(|(c, _)| IptOp::DeleteChain((*c).clone())),
        );
        undo.extend(emptied.iter().map(|(c, _)| IptOp::Declare((*c).clone())));
        undo.extend(
            emptied
                .iter()
                .map(|(_, j)| IptOp::Append(DNAT.into(), j.iptables_spec())),
        );
        undo.extend(
            removed
                .iter()
                .map(|r| IptOp::Append(r.chain.clone(), r.iptables_spec())),
        );
        if !ops.is_empty() {
            out.push(IptBatch {
                family,
                sections: vec![IptSection {
                    table: Table::Nat,
                    ops,
                    undo,
                }],
            });
        }
    }
    out
}

/// The rules of a legacy link: parent to child's port, and the child's answers.
pub fn link_rules(link: &LinkRule) -> Vec<Rule> {
    let mut r = Vec::new();
    for p in &link.ports {
        let Ok(port) = PortRange::single(p.port) else {
            continue;
        };
        r.push(
            Rule::new(Table::Filter, LINKS, Target::Accept)
                .src(host(link.parent_ip))
                .dst(host(link.child_ip))
                .in_if(&link.bridge)
                .out_if(&link.bridge)
                .proto_dport(p.proto, port),
        );
        r.push(
            Rule::new(Table::Filter, LINKS, Target::Accept)
                .src(host(link.child_ip))
                .dst(host(link.parent_ip))
                .in_if(&link.bridge)
                .out_if(&link.bridge)
                .proto_sport(p.proto, port),
        );
    }
    r
}

/// Builds the batches that append `adds` and delete `removes` (one batch per family, filter
/// section before nat), with the undo of each section.
pub fn delta(
    config: &FirewallConfig,
    adds: &[(Family, Rule)],
    removes: &[(Family, Rule)],
) -> Vec<IptBatch> {
    let mut out = Vec::new();
    for family in config.families() {
        let mut sections = Vec::new();
        for table in [Table::Filter, Table::Nat] {
            let mut ops = Vec::new();
            let mut undo = Vec::new();
            for (_, r) in removes
                .iter()
                .rev()
                .filter(|(f, r)| *f == family && r.table == table)
            {
                ops.push(IptOp::DeleteRule(r.clone()));
            }
            for (_, r) in adds
                .iter()
                .filter(|(f, r)| *f == family && r.table == table)
            {
                ops.push(IptOp::AppendRule(r.clone()));
            }
            for (_, r) in adds
                .iter()
                .rev()
                .filter(|(f, r)| *f == family && r.table == table)
            {
                undo.push(IptOp::Delete(r.chain.clone(), r.iptables_spec()));
            }
            for (_, r) in removes
                .iter()
                .filter(|(f, r)| *f == family && r.table == table)
            {
                undo.push(IptOp::Append(r.chain.clone(), r.iptables_spec()));
            }
            if !ops.is_empty() {
                sections.push(IptSection { table, ops, undo });
            }
        }
        let batch = IptBatch { family, sections };
        if !batch.is_empty() {
            out.push(batch);
        }
    }
    out
}

/// Every rule of the desired state in `family`, grouped by object, base first.
pub fn all_rules(config: &FirewallConfig, state: &DesiredState, family: Family) -> Vec<Rule> {
    let mut r = base_rules();
    r.extend(raw_rules(family));
    for net in state.networks().values() {
        r.extend(network_rules(config, net, family));
    }
    for p in state.ports().iter().filter(|p| p.family() == family) {
        r.extend(port_rules(p));
    }
    r.extend(dnat_blocks(state.ports().iter(), family).into_values());
    for l in state.links().iter().filter(|l| l.family() == family) {
        r.extend(link_rules(l));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;
    use crate::spec::{Backend, LinkPort};

    fn cfg() -> FirewallConfig {
        let mut c = FirewallConfig::new(Backend::Iptables);
        c.ipv6 = true;
        c.trusted_interfaces = vec!["eth9".into()];
        c
    }

    fn state() -> DesiredState {
        let c = cfg();
        let mut s = DesiredState::new();
        let mut n = NetworkRules::new(
            "br-a",
            Some("172.18.0.0/16".parse().unwrap()),
            Some("fd00:a::/64".parse().unwrap()),
        );
        n.host_ipv4 = Some("192.0.2.1".parse().unwrap());
        s.insert_network(&c, n).unwrap();
        s.insert_port(
            &c,
            PortRule {
                proto: Protocol::Tcp,
                host_ip: None,
                host_ports: PortRange::single(8080).unwrap(),
                container_ip: "172.18.0.3".parse().unwrap(),
                container_ports: PortRange::single(80).unwrap(),
                bridge: "br-a".into(),
            },
        )
        .unwrap();
        s.insert_link(
            &c,
            LinkRule {
                bridge: "br-a".into(),
                parent_ip: "172.18.0.2".parse().unwrap(),
                child_ip: "172.18.0.3".parse().unwrap(),
                ports: vec![LinkPort {
                    proto: Protocol::Tcp,
                    port: 5432,
                }],
            },
        )
        .unwrap();
        s
    }

    #[test]
    fn delta_batches_have_exact_undo_and_commit_lines() {
        let c = cfg();
        let mut net = NetworkRules::new("br-b", Some("10.9.0.0/24".parse().unwrap()), None);
        net.icc = false;
        let adds: Vec<(Family, Rule)> = network_rules(&c, &net, Family::V4)
            .into_iter()
            .map(|r| (Family::V4, r))
            .collect();
        let b = delta(&c, &adds, &[]);
        assert_eq!(b.len(), 1, "only IPv4 is touched");
        let script = b[0].script();
        assert!(
            script.starts_with(
                "*filter\n-A BERTH-ISOLATION -i br-b ! -o br-b -j BERTH-ISOLATION-2\n"
            ),
            "{script}"
        );
        assert!(script.contains("COMMIT\n*nat\n-A BERTH-POSTROUTING -s 10.9.0.0/24 -o br-b -m conntrack --ctstate DNAT -j MASQUERADE\n"));
        let filter = adds
            .iter()
            .filter(|(_, r)| r.table == Table::Filter)
            .count();
        let nat = adds.len() - filter;
        assert_eq!(b[0].commit_lines(), vec![filter + 2, filter + 2 + nat + 2]);
        let undo_all = b[0].undo_script(2);
        assert!(
            undo_all
                .starts_with("*nat\n-D BERTH-POSTROUTING -s 10.9.0.0/24 ! -o br-b -j MASQUERADE\n"),
            "{undo_all}"
        );
        assert_eq!(
            undo_all.lines().filter(|l| l.starts_with("-D ")).count(),
            adds.len()
        );
        assert_eq!(b[0].undo_script(1).lines().count(), filter + 2);
    }

    #[test]
    fn ports_share_block_chains_that_come_and_go() {
        let c = cfg();
        let s = state();
        let p = |host: u16| PortRule {
            proto: Protocol::Tcp,
            host_ip: None,
            host_ports: PortRange::single(host).unwrap(),
            container_ip: "172.18.0.3".parse().unwrap(),
            container_ports: PortRange::single(80).unwrap(),
            bridge: "br-a".into(),
        };
        // 8081 shares 8080's block (31): no new chain.
        let b = ports_delta(&c, s.ports(), &[p(8081)], &[]);
        assert_eq!(
            b[0].script(),
            "*nat\n-A BERTH-DNAT-TCP-31 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 172.18.0.3:80\nCOMMIT\n"
        );
        // 9000 opens block 35.
        let b = ports_delta(&c, s.ports(), &[p(9000)], &[]);
        assert_eq!(
            b[0].script(),
            "*nat\n:BERTH-DNAT-TCP-35 - [0:0]\n-A BERTH-DNAT-TCP-35 -p tcp -m tcp --dport 9000 -j DNAT --to-destination 172.18.0.3:80\n\
             -A BERTH-DNAT -p tcp -m tcp --dport 8960:9215 -j BERTH-DNAT-TCP-35\nCOMMIT\n"
        );
        // Removing the last port of block 31 removes the chain and its jump; undo restores both.
        let b = ports_delta(&c, s.ports(), &[], &[s.ports()[0].clone()]);
        assert_eq!(
            b[0].script(),
            "*nat\n-D BERTH-DNAT-TCP-31 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.3:80\n\
             -D BERTH-DNAT -p tcp -m tcp --dport 7936:8191 -j BERTH-DNAT-TCP-31\n-X BERTH-DNAT-TCP-31\nCOMMIT\n"
        );
        assert_eq!(
            b[0].undo_script(1),
            "*nat\n:BERTH-DNAT-TCP-31 - [0:0]\n-A BERTH-DNAT -p tcp -m tcp --dport 7936:8191 -j BERTH-DNAT-TCP-31\n\
             -A BERTH-DNAT-TCP-31 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.3:80\nCOMMIT\n"
        );
        // A range across blocks stays in BERTH-DNAT, as one rule.
        let range = PortRule {
            host_ports: PortRange::new(9000, 9999).unwrap(),
            container_ports: PortRange::new(9000, 9999).unwrap(),
            ..p(1)
        };
        let b = ports_delta(&c, s.ports(), &[range], &[]);
        assert_eq!(
            b[0].script(),
            "*nat\n-A BERTH-DNAT -p tcp -m tcp --dport 9000:9999 -j DNAT --to-destination 172.18.0.3:9000-9999\nCOMMIT\n"
        );
        // Block 0 starts at port 1.
        assert_eq!(
            dnat_chain(Protocol::Udp, PortRange::single(53).unwrap()).unwrap(),
            "BERTH-DNAT-UDP-0"
        );
        assert_eq!(
            dnat_jump(&p(53)).unwrap().1.iptables_spec(),
            "-p tcp -m tcp --dport 1:255 -j BERTH-DNAT-TCP-0"
        );
        assert_eq!(
            dnat_jump(&p(65535)).unwrap().1.iptables_spec(),
            "-p tcp -m tcp --dport 65280:65535 -j BERTH-DNAT-TCP-255"
        );
    }

    #[test]
    fn converge_on_empty_then_on_itself() {
        let c = cfg();
        let s = state();
        let layout = host_layout(&c, &s, Family::V4);
        let empty = Dump::parse(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
        )
        .unwrap();
        let (sections, report) = converge(&layout, Family::V4, &empty);
        assert!(!report.is_clean());
        // Simulate: the sections applied give a dump equal to the layout.
        let mut after = empty.clone();
        for s in &sections {
            simulate(&mut after, s.table, &s.ops);
        }
        let (again, report) = converge(&layout, Family::V4, &after);
        assert!(again.is_empty(), "{again:?}");
        assert!(report.is_clean(), "{report}");
        // And the undo gives back the empty ruleset.
        let mut undone = after.clone();
        for s in sections.iter().rev() {
            simulate(&mut undone, s.table, &s.undo);
        }
        assert_eq!(normalised(&undone), normalised(&empty));
    }

    #[test]
    fn raw_chain_is_ipv4_only_and_jumped_to_first() {
        let c = cfg();
        let s = state();
        let v4 = host_layout(&c, &s, Family::V4);
        assert_eq!(
            v4.chains[&(Table::Raw, RAW.to_owned())],
            vec!["-d 127.0.0.0/8 ! -i lo -j DROP"]
        );
        let v6 = host_layout(&c, &s, Family::V6);
        assert!(!v6.chains.keys().any(|(t, _)| *t == Table::Raw));
        // A user's raw rule stays; berth's jump goes (back) in front of it.
        let dump = Dump::parse(
            "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -s 10.0.0.1/32 -j ACCEPT\nCOMMIT\n",
        )
        .unwrap();
        let (sections, report) = converge(&v4, Family::V4, &dump);
        assert!(
            report.structure.iter().any(|s| s.contains("BERTH-RAW")),
            "{report}"
        );
        let mut after = dump.clone();
        for s in &sections {
            simulate(&mut after, s.table, &s.ops);
        }
        assert_eq!(
            after.chain(Table::Raw, "PREROUTING").unwrap().rules,
            vec!["-j BERTH-RAW", "-s 10.0.0.1/32 -j ACCEPT"]
        );
        let (again, report) = converge(&v4, Family::V4, &after);
        assert!(again.is_empty() && report.is_clean(), "{report}");
    }

    #[test]
    fn converge_keeps_user_rules_and_fixes_jump_order() {
        let c = cfg();
        let s = DesiredState::new();
        let layout = host_layout(&c, &s, Family::V4);
        let dump = Dump::parse(
            "*filter\n:FORWARD ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n:BERTH-OLD - [0:0]\n-A FORWARD -i eth0 -j ACCEPT\n-A FORWARD -j DOCKER-USER\n-A DOCKER-USER -s 10.0.0.1/32 -j DROP\n-A BERTH-OLD -j DROP\nCOMMIT\n",
        )
        .unwrap();
        let (sections, _) = converge(&layout, Family::V4, &dump);
        let mut after = dump.clone();
        for s in &sections {
            simulate(&mut after, s.table, &s.ops);
        }
        let fwd = after.chain(Table::Filter, "FORWARD").unwrap();
        assert_eq!(
            fwd.rules,
            vec!["-j DOCKER-USER", "-j BERTH-FORWARD", "-i eth0 -j ACCEPT"]
        );
        assert_eq!(
            after.chain(Table::Filter, USER_CHAIN).unwrap().rules,
            vec!["-s 10.0.0.1/32 -j DROP"]
        );
        assert!(after.chain(Table::Filter, "BERTH-OLD").is_none());
        let mut undone = after.clone();
        for s in sections.iter().rev() {
            simulate(&mut undone, s.table, &s.undo);
        }
        assert_eq!(normalised(&undone), normalised(&dump));
    }

    /// Drops empty built-in chains with the default policy, and empty tables.
    fn normalised(d: &Dump) -> Dump {
        let mut d = d.clone();
        for chains in d.tables.values_mut() {
            chains.retain(|name, c| {
                let builtin = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]
                    .contains(&name.as_str());
                !(builtin && c.rules.is_empty() && (c.policy.is_empty() || c.policy == "ACCEPT"))
            });
        }
        d.tables.retain(|_, c| !c.is_empty());
        d
    }

    /// A tiny model of iptables-restore --noflush, for tests.
    pub(crate) fn simulate(dump: &mut Dump, table: Table, ops: &[IptOp]) {
        let chains = dump.tables.entry(table).or_default();
        for op in ops {
            match &*op.text() {
                IptOp::Declare(c) => {
                    let e = chains.entry(c.clone()).or_insert_with(|| ChainDump {
                        policy: "-".into(),
                        rules: vec![],
                    });
                    e.rules.clear();
                }
                IptOp::Policy(c, p) => chains.entry(c.clone()).or_default().policy = p.clone(),
                IptOp::Append(c, s) => chains
                    .get_mut(c)
                    .expect("chain exists")
                    .rules
                    .push(s.clone()),

                IptOp::Insert(c, n, s) => chains
                    .entry(c.clone())
                    .or_default()
                    .rules
                    .insert(n - 1, s.clone()),
                IptOp::Delete(c, s) => {
                    let r = &mut chains.get_mut(c).expect("chain exists").rules;
                    let i = r.iter().position(|x| x == s).expect("rule exists");
                    r.remove(i);
                }
                IptOp::AppendRule(_) | IptOp::DeleteRule(_) => {
                    unreachable!("written out as text above")
                }
                IptOp::DeleteChain(c) => {
                    assert!(
                        chains.get(c).expect("chain exists").rules.is_empty(),
                        "{c} not empty"
                    );
                    chains.remove(c);
                }
            }
        }
    }
}

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

// This file holds the chain names; `batch` the restore batches (`IptOp`, `IptBatch`) and the
// delta of rule adds and removes; `rules` the rules of the base chains, networks and links and
// of a whole desired state; `ports` the DNAT rules of published ports and their block chains;
// `dump` reading `iptables-save` back, the layouts and their convergence.
mod batch;
mod dump;
mod ports;
mod rules;
pub use batch::*;
pub use dump::*;
pub use ports::*;
pub use rules::*;

#[cfg(test)]
mod tests;

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

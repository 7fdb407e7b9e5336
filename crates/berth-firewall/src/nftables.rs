//! The nftables backend, pure part: berth's `inet berth` table, the set and map elements of
//! each object, the `nft -f` transaction of a change, and reconcile against `nft list table`.
//!
//! # Layout
//!
//! One table, `table inet berth`, for both families. Chains hold a fixed list of rules that look
//! packets up in sets and verdict maps; networks, published ports and links are set elements.
//! Adding a network or a port is `add element` (one transaction), removing it is
//! `delete element` of exactly those elements.
//!
//! ```text
//! chain user_forward   the user's chain (like DOCKER-USER): jumped to first, never flushed
//! chain forward        hook forward: isolation (sets bridges, same, internal), links (links4/6),
//!                      replies and DNATed flows into a bridge (ct status dnat), icc (vmap icc),
//!                      trusted interfaces, drop of anything else entering a bridge, outbound accept
//! chain prerouting     hook prerouting (dstnat): fib daddr type local jump published
//! chain output         hook output (-100): fib daddr type local jump published
//! chain published      DNAT through maps: dnat4 / dnat4_all (hash maps: one host port, on one
//!                      host address or all), dnat4_range / dnat4_all_range (interval maps: a host
//!                      range to one container port), dnat4_range_keep / dnat4_all_range_keep (a
//!                      range kept as is), and the same for IPv6
//! chain postrouting    hook postrouting (srcnat): hairpin and localhost masquerade, SNAT (snat4/6
//!                      maps), masquerade (masq4/6 sets)
//! chain prerouting_raw hook prerouting (raw, before conntrack): drop of packets addressed to
//!                      127.0.0.0/8 that did not come in on lo (see
//!                      [`crate::model::loopback_from_outside_drop`]), with IPv4 on
//! ```
//!
//! # Elements
//!
//! Elements are typed: an [`Element`] is made of [`Part`]s (an interface name, an address or
//! prefix, a protocol, a port or port range, a verdict) and belongs to one of the [`Set`]s, each
//! of whose [`SetType`] is declared once ([`Set::ty`]). The `nft` text of scripts and drift
//! reports is rendered from that form, the netlink fast path encodes it without text, and
//! `nft list table` output is read back into it, so reconcile compares typed elements.
//!
//! Users add their own forward rules with e.g.
//! `nft add rule inet berth user_forward ip saddr 192.0.2.9 drop`; berth never flushes that chain.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use berth_netlink::nftables::{
    Batch as NlBatch, Data as NlData, Family as NlFamily, SetElement, Verdict as NlVerdict,
};

use crate::error::{Error, Result};
use crate::model::{Family, FamilyExt, Table, loopback_from_outside_drop};
use crate::report::DriftReport;
use crate::spec::{DesiredState, FirewallConfig, LinkRule, NetworkRules, PortMapping, PortRule};

mod element;
use element::Parts;
pub use element::{Element, Field, Part, SetType, Verdict};

mod sets;
pub use sets::Set;

mod listing;
pub use listing::*;

mod encode;

/// The table berth owns (family and name).
pub const TABLE: &str = "inet berth";
/// The name of [`TABLE`] (its family is `inet`).
pub(crate) const TABLE_NAME: &str = "berth";
/// The user's chain in berth's table (the counterpart of DOCKER-USER).
pub const USER_CHAIN: &str = "user_forward";
/// berth's chain at prerouting's raw priority (drops before conntrack and NAT).
pub const RAW_CHAIN: &str = "prerouting_raw";

fn n(f: Family) -> &'static str {
    match f {
        Family::V4 => "4",
        Family::V6 => "6",
    }
}

/// A chain declaration with its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainDef {
    /// The name.
    pub name: String,
    /// The base-chain line (`type filter hook forward priority filter; policy accept;`).
    pub hook: Option<String>,
    /// The rules, as `nft list` prints them.
    pub rules: Vec<String>,
}

/// berth's chains (without the user's chain) for a configuration.
pub fn chain_defs(config: &FirewallConfig) -> Vec<ChainDef> {
    let mut forward = vec![format!("jump {USER_CHAIN}")];
    if !config.ipv4 {
        forward.push("meta nfproto ipv4 return".into());
    }
    if !config.ipv6 {
        forward.push("meta nfproto ipv6 return".into());
    }
    forward.extend(
        [
            "iifname . oifname != @same iifname @bridges oifname @bridges drop",
            "iifname . oifname != @same iifname @internal drop",
            "iifname . oifname != @same oifname @internal drop",
            "ip saddr . ip daddr . meta l4proto . th dport @links4 accept",
            "ip daddr . ip saddr . meta l4proto . th sport @links4 accept",
            "ip6 saddr . ip6 daddr . meta l4proto . th dport @links6 accept",
            "ip6 daddr . ip6 saddr . meta l4proto . th sport @links6 accept",
            "oifname @bridges ct state established,related accept",
            "oifname @bridges ct status dnat accept",
            "iifname . oifname vmap @icc",
            "iifname @trusted oifname @bridges accept",
            "oifname @bridges drop",
            "iifname @bridges accept",
        ]
        .map(String::from),
    );
    if config.ipv4 && config.forward_policy_drop {
        forward.push("meta nfproto ipv4 drop".into());
    }
    if config.ipv6 && config.forward_policy_drop_v6 {
        forward.push("meta nfproto ipv6 drop".into());
    }
    let mut published = Vec::new();
    for f in [Family::V4, Family::V6] {
        let (p, k) = (f.nft(), n(f));
        let l4 = "meta l4proto { tcp, udp, sctp }";
        let addr = format!("{p} daddr . meta l4proto . th dport");
        let any = "meta l4proto . th dport";
        published.push(format!("{l4} dnat {p} to {addr} map @dnat{k}"));
        published.push(format!("{l4} dnat {p} to {any} map @dnat{k}_all"));
        published.push(format!("{l4} dnat {p} to {addr} map @dnat{k}_range"));
        published.push(format!("{l4} dnat {p} to {addr} map @dnat{k}_range_keep"));
        published.push(format!("{l4} dnat {p} to {any} map @dnat{k}_all_range"));
        published.push(format!(
            "{l4} dnat {p} to {any} map @dnat{k}_all_range_keep"
        ));
    }
    let postrouting = vec![
        "ct status dnat ip saddr . oifname @hairpin4 masquerade".into(),
        "ct status dnat ip6 saddr . oifname @hairpin6 masquerade".into(),
        "ip saddr 127.0.0.0/8 oifname @bridges masquerade".into(),
        "ip saddr . oifname @hairpin4 return".into(),
        "ip6 saddr . oifname @hairpin6 return".into(),
        "snat ip to ip saddr map @snat4".into(),
        "snat ip6 to ip6 saddr map @snat6".into(),
        "ip saddr @masq4 masquerade".into(),
        "ip6 saddr @masq6 masquerade".into(),
    ];
    let local = "fib daddr type local jump published".to_owned();
    let mut raw = Vec::new();
    if config.ipv4 {
        raw.push(loopback_from_outside_drop(Table::Raw, RAW_CHAIN).nft());
    }
    vec![
        ChainDef {
            name: "forward".into(),
            hook: Some("type filter hook forward priority filter; policy accept;".into()),
            rules: forward,
        },
        ChainDef {
            name: "published".into(),
            hook: None,
            rules: published,
        },
        ChainDef {
            name: "prerouting".into(),
            hook: Some("type nat hook prerouting priority dstnat; policy accept;".into()),
            rules: vec![local.clone()],
        },
        ChainDef {
            name: "output".into(),
            hook: Some("type nat hook output priority -100; policy accept;".into()),
            rules: vec![local],
        },
        ChainDef {
            name: "postrouting".into(),
            hook: Some("type nat hook postrouting priority srcnat; policy accept;".into()),
            rules: postrouting,
        },
        ChainDef {
            name: RAW_CHAIN.into(),
            hook: Some("type filter hook prerouting priority raw; policy accept;".into()),
            rules: raw,
        },
    ]
}

/// One element of one of berth's sets or maps: the set, and the typed element.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Elem {
    /// The set or map.
    pub set: Set,
    /// The element.
    pub element: Element,
}

impl Elem {
    fn new(set: Set, key: Vec<Part>) -> Elem {
        Elem {
            set,
            element: Element::set(key),
        }
    }

    fn with_value(set: Set, key: Vec<Part>, value: Vec<Part>) -> Elem {
        Elem {
            set,
            element: Element::map(key, value),
        }
    }

    /// `key` or `key : value`, as `nft` writes it.
    pub fn text(&self) -> String {
        self.element.to_string()
    }
}

/// The elements a network owns.
pub fn network_elems(net: &NetworkRules) -> Vec<Elem> {
    let br = || Part::ifname(&net.bridge);
    let verdict = if net.icc {
        Verdict::Accept
    } else {
        Verdict::Drop
    };
    let mut v = vec![
        Elem::new(Set::Bridges, vec![br()]),
        Elem::new(Set::Same, vec![br(), br()]),
        Elem::with_value(Set::Icc, vec![br(), br()], vec![Part::Verdict(verdict)]),
    ];
    if net.internal {
        v.push(Elem::new(Set::Internal, vec![br()]));
        return v;
    }
    for f in [Family::V4, Family::V6] {
        let Some(subnet) = net.subnet(f) else {
            continue;
        };
        let subnet = Part::prefix(subnet);
        v.push(Elem::new(Set::Hairpin(f), vec![subnet.clone(), br()]));
        if net.nat_outbound(f) {
            match net.snat(f) {
                Some(a) => v.push(Elem::with_value(
                    Set::Snat(f),
                    vec![subnet],
                    vec![Part::Addr(a)],
                )),
                None => v.push(Elem::new(Set::Masq(f), vec![subnet])),
            }
        }
    }
    v
}

/// The DNAT map elements of a published port: one element for a single host port or a range,
/// one per port for a shifted range (nftables 1.0 cannot offset a port range).
pub fn port_dnat_elems(port: &PortRule) -> Vec<Elem> {
    let f = port.family();
    let proto = Part::Proto(port.proto);
    let c = Part::Addr(port.container_ip);
    let host = port.host_addr().map(Part::Addr);
    // The key: [host address .] protocol . host port(s).
    let key =
        |ports: Part| -> Vec<Part> { host.iter().cloned().chain([proto.clone(), ports]).collect() };
    let (single, range, range_keep) = match host {
        Some(_) => (Set::Dnat(f), Set::DnatRange(f), Set::DnatRangeKeep(f)),
        None => (
            Set::DnatAll(f),
            Set::DnatAllRange(f),
            Set::DnatAllRangeKeep(f),
        ),
    };
    let one = |hp: u16, cp: u16| {
        Elem::with_value(
            single,
            key(Part::Service(hp)),
            vec![c.clone(), Part::Service(cp)],
        )
    };
    let (hs, cs) = (port.host_ports.start(), port.container_ports.start());
    if port.host_ports.is_single() {
        return vec![one(hs, cs)];
    }
    let hosts = key(Part::ports(port.host_ports));
    match port.mapping() {
        PortMapping::Same => vec![Elem::with_value(range_keep, hosts, vec![c])],
        PortMapping::ToOne => vec![Elem::with_value(range, hosts, vec![c, Part::Service(cs)])],
        PortMapping::Shifted => (hs..=port.host_ports.end())
            .zip(cs..=port.container_ports.end())
            .map(|(hp, cp)| one(hp, cp))
            .collect(),
    }
}

/// The elements of a link.
pub fn link_elems(link: &LinkRule) -> Vec<Elem> {
    let set = Set::Links(link.family());
    link.ports
        .iter()
        .map(|p| {
            let key = vec![
                Part::Addr(link.parent_ip),
                Part::Addr(link.child_ip),
                Part::Proto(p.proto),
                Part::Service(p.port),
            ];
            Elem::new(set, key)
        })
        .collect()
}

/// Every element of a desired state (the same element may come twice, e.g. a trusted interface
/// named twice).
pub fn all_elems(config: &FirewallConfig, state: &DesiredState) -> Vec<Elem> {
    let mut v: Vec<Elem> = config
        .trusted_interfaces
        .iter()
        .map(|t| Elem::new(Set::Trusted, vec![Part::ifname(t)]))
        .collect();
    for net in state.networks().values() {
        v.extend(network_elems(net));
    }
    for p in state.ports() {
        v.extend(port_dnat_elems(p));
    }
    for l in state.links() {
        v.extend(link_elems(l));
    }
    v
}

/// One nftables transaction: an `nft -f` script, and for a change that only adds and deletes
/// set elements (a network, a port, a link) the same change typed, which berth sends as one
/// nf_tables netlink batch instead of running `nft`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftBatch {
    /// The commands, one per line.
    pub commands: Vec<String>,
    /// The typed element changes, when the commands are exactly those (made by [`delta`]).
    pub(crate) element_delta: Option<ElementDelta>,
}

impl NftBatch {
    /// True if there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// The `nft -f -` input.
    pub fn script(&self) -> String {
        let mut s = self.commands.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }

    /// `verb element` commands for elements given as (set name, element text), grouped by set
    /// (sets by name, elements in the order given), at most 512 elements per command. Each
    /// element is written straight into its command.
    fn elements<'a, T: fmt::Display>(
        &mut self,
        verb: &str,
        elems: impl IntoIterator<Item = (&'a str, T)>,
    ) {
        let mut by_set: BTreeMap<&str, Vec<T>> = BTreeMap::new();
        for (set, text) in elems {
            by_set.entry(set).or_default().push(text);
        }
        for (set, items) in by_set {
            for chunk in items.chunks(512) {
                let mut command = String::with_capacity(40 + 48 * chunk.len());
                // Writing into a String cannot fail.
                let _ = write!(command, "{verb} element {TABLE} {set} {{ ");
                for (i, item) in chunk.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    let _ = write!(command, "{sep}{item}");
                }
                command.push_str(" }");
                self.commands.push(command);
            }
        }
    }
}

/// A transaction that deletes `dels`, then adds `adds`.
pub fn delta(adds: &[Elem], dels: &[Elem]) -> NftBatch {
    let mut b = NftBatch::default();
    // A deletion names the key alone.
    b.elements(
        "delete",
        dels.iter().map(|e| (e.set.name(), Parts(&e.element.key))),
    );
    b.elements("add", adds.iter().map(|e| (e.set.name(), &e.element)));
    b.element_delta = Some(ElementDelta {
        dels: dels.to_vec(),
        adds: adds.to_vec(),
    });
    b
}

// ---- element changes over netlink ---------------------------------------------------------------

/// The element changes of a [`delta`] transaction, kept typed so that they can be sent as one
/// nf_tables netlink batch instead of an `nft -f` script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ElementDelta {
    /// Elements deleted (first).
    pub dels: Vec<Elem>,
    /// Elements added (after the deletions).
    pub adds: Vec<Elem>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PortRange, Protocol};
    use crate::spec::{Backend, LinkPort};

    fn cfg() -> FirewallConfig {
        let mut c = FirewallConfig::new(Backend::Nftables);
        c.ipv6 = true;
        c
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
    fn dnat_elements_by_mapping() {
        let e = port_dnat_elems(&port((9000, 9999), (9000, 9999)));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].set, Set::DnatAllRangeKeep(Family::V4));
        assert_eq!(e[0].text(), "tcp . 9000-9999 : 172.18.0.3");
        let e = port_dnat_elems(&port((80, 80), (80, 80)));
        assert_eq!(e[0].set.name(), "dnat4_all");
        assert_eq!(e[0].text(), "tcp . 80 : 172.18.0.3 . 80");
        let mut p = port((8000, 8010), (80, 80));
        p.host_ip = Some("192.0.2.1".parse().unwrap());
        let e = port_dnat_elems(&p);
        assert_eq!(e[0].set.name(), "dnat4_range");
        assert_eq!(e[0].text(), "192.0.2.1 . tcp . 8000-8010 : 172.18.0.3 . 80");
        let e = port_dnat_elems(&port((8000, 8002), (9000, 9002)));
        assert_eq!(e.len(), 3);
        assert_eq!(e[2].set.name(), "dnat4_all");
        assert_eq!(e[2].text(), "tcp . 8002 : 172.18.0.3 . 9002");
    }

    /// The `nft` text rendered from the typed elements and set types, pinned to what berth
    /// wrote when elements were built as text (captured from that code before the typed model
    /// replaced it).
    #[test]
    fn renders_the_same_nft_text_as_before() {
        let decls: Vec<String> = Set::ALL.into_iter().map(Set::add_command).collect();
        let expected = [
            "add set inet berth bridges { type ifname; }",
            "add set inet berth internal { type ifname; }",
            "add set inet berth same { type ifname . ifname; }",
            "add map inet berth icc { type ifname . ifname : verdict; }",
            "add set inet berth trusted { type ifname; }",
            "add set inet berth links4 { type ipv4_addr . ipv4_addr . inet_proto . inet_service; }",
            "add map inet berth dnat4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }",
            "add map inet berth dnat4_all { type inet_proto . inet_service : ipv4_addr . inet_service; }",
            "add map inet berth dnat4_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }",
            "add map inet berth dnat4_range_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }",
            "add map inet berth dnat4_all_range { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }",
            "add map inet berth dnat4_all_range_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }",
            "add set inet berth hairpin4 { type ipv4_addr . ifname; flags interval; }",
            "add set inet berth masq4 { type ipv4_addr; flags interval; }",
            "add map inet berth snat4 { type ipv4_addr : ipv4_addr; flags interval; }",
            "add set inet berth links6 { type ipv6_addr . ipv6_addr . inet_proto . inet_service; }",
            "add map inet berth dnat6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }",
            "add map inet berth dnat6_all { type inet_proto . inet_service : ipv6_addr . inet_service; }",
            "add map inet berth dnat6_range { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }",
            "add map inet berth dnat6_range_keep { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }",
            "add map inet berth dnat6_all_range { type inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }",
            "add map inet berth dnat6_all_range_keep { type inet_proto . inet_service : ipv6_addr; flags interval; }",
            "add set inet berth hairpin6 { type ipv6_addr . ifname; flags interval; }",
            "add set inet berth masq6 { type ipv6_addr; flags interval; }",
            "add map inet berth snat6 { type ipv6_addr : ipv6_addr; flags interval; }",
        ];
        assert_eq!(decls, expected);

        let net = |br: &str, v4: &str, v6: Option<&str>| {
            NetworkRules::new(
                br,
                Some(v4.parse().unwrap()),
                v6.map(|s| s.parse().unwrap()),
            )
        };
        let mut snat = net("br-b", "172.19.0.0/24", None);
        snat.icc = false;
        snat.host_ipv4 = Some("192.0.2.7".parse().unwrap());
        let mut snat6 = net("br,x", "10.10.0.0/24", Some("fd00:5::/64"));
        snat6.host_ipv6 = Some("2001:db8::5".parse().unwrap());
        let mut internal = net("br-int", "10.9.0.0/16", None);
        internal.internal = true;
        let pr = |proto, host_ip: Option<&str>, h: (u16, u16), c: &str, cp: (u16, u16)| {
            port_dnat_elems(&PortRule {
                proto,
                host_ip: host_ip.map(|a| a.parse().unwrap()),
                host_ports: PortRange::new(h.0, h.1).unwrap(),
                container_ip: c.parse().unwrap(),
                container_ports: PortRange::new(cp.0, cp.1).unwrap(),
                bridge: "br-a".into(),
            })
        };
        let link = |parent: &str, child: &str, ports: &[(Protocol, u16)]| {
            link_elems(&LinkRule {
                bridge: "br-a".into(),
                parent_ip: parent.parse().unwrap(),
                child_ip: child.parse().unwrap(),
                ports: ports
                    .iter()
                    .map(|&(proto, port)| LinkPort { proto, port })
                    .collect(),
            })
        };
        use Protocol::{Sctp, Tcp, Udp};
        let v6 = Some("2001:db8::1");
        let cases: [(Vec<Elem>, bool, &[&str]); 15] = [
            (
                network_elems(&snat),
                true,
                &[
                    "add element inet berth bridges { \"br-b\" }",
                    "add element inet berth hairpin4 { 172.19.0.0/24 . \"br-b\" }",
                    "add element inet berth icc { \"br-b\" . \"br-b\" : drop }",
                    "add element inet berth same { \"br-b\" . \"br-b\" }",
                    "add element inet berth snat4 { 172.19.0.0/24 : 192.0.2.7 }",
                ],
            ),
            (
                network_elems(&snat),
                false,
                &[
                    "delete element inet berth bridges { \"br-b\" }",
                    "delete element inet berth hairpin4 { 172.19.0.0/24 . \"br-b\" }",
                    "delete element inet berth icc { \"br-b\" . \"br-b\" }",
                    "delete element inet berth same { \"br-b\" . \"br-b\" }",
                    "delete element inet berth snat4 { 172.19.0.0/24 }",
                ],
            ),
            (
                network_elems(&snat6),
                true,
                &[
                    "add element inet berth bridges { \"br,x\" }",
                    "add element inet berth hairpin4 { 10.10.0.0/24 . \"br,x\" }",
                    "add element inet berth hairpin6 { fd00:5::/64 . \"br,x\" }",
                    "add element inet berth icc { \"br,x\" . \"br,x\" : accept }",
                    "add element inet berth masq4 { 10.10.0.0/24 }",
                    "add element inet berth same { \"br,x\" . \"br,x\" }",
                    "add element inet berth snat6 { fd00:5::/64 : 2001:db8::5 }",
                ],
            ),
            (
                network_elems(&internal),
                true,
                &[
                    "add element inet berth bridges { \"br-int\" }",
                    "add element inet berth icc { \"br-int\" . \"br-int\" : accept }",
                    "add element inet berth internal { \"br-int\" }",
                    "add element inet berth same { \"br-int\" . \"br-int\" }",
                ],
            ),
            (
                pr(Tcp, None, (7000, 7002), "172.19.0.3", (9000, 9002)),
                true,
                &[
                    "add element inet berth dnat4_all { tcp . 7000 : 172.19.0.3 . 9000, \
                 tcp . 7001 : 172.19.0.3 . 9001, tcp . 7002 : 172.19.0.3 . 9002 }",
                ],
            ),
            (
                pr(Tcp, None, (7000, 7002), "172.19.0.3", (9000, 9002)),
                false,
                &["delete element inet berth dnat4_all { tcp . 7000, tcp . 7001, tcp . 7002 }"],
            ),
            (
                pr(Udp, v6, (4000, 4010), "fd00:1::3", (53, 53)),
                true,
                &[
                    "add element inet berth dnat6_range { 2001:db8::1 . udp . 4000-4010 : fd00:1::3 . 53 }",
                ],
            ),
            (
                pr(Tcp, Some("::"), (5000, 5010), "fd00:1::3", (5000, 5010)),
                true,
                &["add element inet berth dnat6_all_range_keep { tcp . 5000-5010 : fd00:1::3 }"],
            ),
            (
                pr(Tcp, Some("::"), (5000, 5010), "fd00:1::3", (5000, 5010)),
                false,
                &["delete element inet berth dnat6_all_range_keep { tcp . 5000-5010 }"],
            ),
            (
                pr(Tcp, v6, (3100, 3101), "fd00:5::3", (3200, 3201)),
                true,
                &[
                    "add element inet berth dnat6 { 2001:db8::1 . tcp . 3100 : fd00:5::3 . 3200, \
                 2001:db8::1 . tcp . 3101 : fd00:5::3 . 3201 }",
                ],
            ),
            (
                pr(Tcp, None, (1, 1), "10.10.0.2", (65535, 65535)),
                true,
                &["add element inet berth dnat4_all { tcp . 1 : 10.10.0.2 . 65535 }"],
            ),
            (
                pr(Sctp, None, (3000, 3010), "fd00:5::3", (3000, 3000)),
                true,
                &["add element inet berth dnat6_all_range { sctp . 3000-3010 : fd00:5::3 . 3000 }"],
            ),
            (
                pr(Udp, Some("192.0.2.1"), (53, 53), "172.18.0.3", (5353, 5353)),
                true,
                &["add element inet berth dnat4 { 192.0.2.1 . udp . 53 : 172.18.0.3 . 5353 }"],
            ),
            (
                link("172.19.0.2", "172.19.0.3", &[(Tcp, 5432), (Udp, 53)]),
                true,
                &[
                    "add element inet berth links4 { 172.19.0.2 . 172.19.0.3 . tcp . 5432, \
                 172.19.0.2 . 172.19.0.3 . udp . 53 }",
                ],
            ),
            (
                link("fd00:1::2", "fd00:1::3", &[(Sctp, 9)]),
                true,
                &["add element inet berth links6 { fd00:1::2 . fd00:1::3 . sctp . 9 }"],
            ),
        ];
        for (elems, add, lines) in cases {
            let b = if add {
                delta(&elems, &[])
            } else {
                delta(&[], &elems)
            };
            assert_eq!(b.commands, lines);
        }
    }

    #[test]
    fn parses_a_listing_and_converges_to_nothing_on_itself() {
        let c = cfg();
        let mut s = DesiredState::new();
        s.insert_network(
            &c,
            NetworkRules::new("br,x", Some("172.18.0.0/16".parse().unwrap()), None),
        )
        .unwrap();
        s.insert_port(&c, port((8080, 8080), (80, 80)).with_bridge("br,x"))
            .unwrap();
        let listing = render_listing(&c, &s);
        let parsed = Listing::parse(&listing).unwrap();
        // Every element berth makes reads back typed, as the element it was rendered from.
        for e in all_elems(&c, &s) {
            let got = &parsed.sets[e.set.name()].elements[&e.text()];
            assert_eq!(got.as_ref(), Some(&e.element), "{}", e.text());
        }
        let (batch, report) = converge(&c, &s, Some(&parsed));
        assert!(batch.is_empty(), "{}", batch.script());
        assert!(report.is_clean(), "{report}");
        let (batch, report) = converge(&c, &s, None);
        assert!(!report.is_clean());
        assert!(batch.commands[0].starts_with("add table"));
    }

    impl PortRule {
        fn with_bridge(mut self, br: &str) -> PortRule {
            self.bridge = br.into();
            self
        }
    }

    /// Renders a listing like nft does, for parser tests.
    fn render_listing(c: &FirewallConfig, s: &DesiredState) -> String {
        let want = all_elems(c, s);
        let mut out = format!("table {TABLE} {{\n");
        for set in Set::ALL {
            out.push_str(&format!(
                "\t{} {} {{\n\t\ttype {}\n",
                set.kind(),
                set.name(),
                set.ty()
            ));
            if let Some(f) = set.flags() {
                out.push_str(&format!("\t\tflags {f}\n"));
            }
            let els: Vec<String> = want
                .iter()
                .filter(|e| e.set == set)
                .map(Elem::text)
                .collect();
            if !els.is_empty() {
                out.push_str(&format!(
                    "\t\telements = {{ {} }}\n",
                    els.join(",\n\t\t\t     ")
                ));
            }
            out.push_str("\t}\n\n");
        }
        out.push_str(&format!("\tchain {USER_CHAIN} {{\n\t}}\n\n"));
        for ch in chain_defs(c) {
            out.push_str(&format!("\tchain {} {{\n", ch.name));
            if let Some(h) = &ch.hook {
                out.push_str(&format!("\t\t{h}\n"));
            }
            for r in &ch.rules {
                out.push_str(&format!("\t\t{r}\n"));
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        out
    }

    /// Element-only transactions have a netlink form (deletions first, one message per set and
    /// 128 elements, nft's zero interval end before additions to plain interval sets);
    /// reconcile's does not.
    #[test]
    fn only_element_deltas_go_over_netlink() {
        let net = NetworkRules::new("br-1", Some("172.18.0.0/16".parse().unwrap()), None);
        let adds = network_elems(&net);
        let b = delta(&adds, &[]);
        let nl = b.netlink().unwrap().unwrap();
        // bridges, same, icc, hairpin4, masq4: one message each.
        assert_eq!(nl.len(), 5);
        let b = delta(&[], &adds);
        assert_eq!(b.netlink().unwrap().unwrap().len(), 5);
        let many: Vec<Elem> = (0..300u16)
            .flat_map(|i| port_dnat_elems(&port((1000 + i, 1000 + i), (80, 80))))
            .collect();
        assert_eq!(many.len(), 300);
        assert_eq!(delta(&many, &many).netlink().unwrap().unwrap().len(), 6);
        let (full, _) = converge(&cfg(), &DesiredState::new(), None);
        assert!(full.netlink().is_none());
    }
}

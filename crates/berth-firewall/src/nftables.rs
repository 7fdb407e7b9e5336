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
//! Users add their own forward rules with e.g.
//! `nft add rule inet berth user_forward ip saddr 192.0.2.9 drop`; berth never flushes that chain.

use std::collections::{BTreeMap, BTreeSet};

use berth_netlink::nftables::{
    Batch as NlBatch, Data as NlData, Family as NlFamily, SetElement, Verdict as NlVerdict,
};

use crate::error::{Error, Result};
use crate::model::{Family, FamilyExt, Table, loopback_from_outside_drop};
use crate::report::DriftReport;
use crate::spec::{DesiredState, FirewallConfig, LinkRule, NetworkRules, PortMapping, PortRule};

mod listing;
pub use listing::*;

mod encode;

/// The table berth owns (family and name).
pub const TABLE: &str = "inet berth";
/// The name of [`TABLE`] (its family is `inet`).
const TABLE_NAME: &str = "berth";
/// The user's chain in berth's table (the counterpart of DOCKER-USER).
pub const USER_CHAIN: &str = "user_forward";
/// berth's chain at prerouting's raw priority (drops before conntrack and NAT).
pub const RAW_CHAIN: &str = "prerouting_raw";

/// A set or map declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDef {
    /// The name.
    pub name: String,
    /// True for a map (elements have values).
    pub map: bool,
    /// The `type ...` text as `nft list` prints it.
    pub ty: String,
    /// The `flags ...` text, if any.
    pub flags: Option<String>,
}

impl SetDef {
    fn new(name: &str, map: bool, ty: &str, interval: bool) -> SetDef {
        SetDef {
            name: name.to_owned(),
            map,
            ty: ty.to_owned(),
            flags: interval.then(|| "interval".to_owned()),
        }
    }

    fn add_command(&self) -> String {
        let kind = if self.map { "map" } else { "set" };
        match &self.flags {
            Some(f) => format!(
                "add {kind} {TABLE} {} {{ type {}; flags {f}; }}",
                self.name, self.ty
            ),
            None => format!("add {kind} {TABLE} {} {{ type {}; }}", self.name, self.ty),
        }
    }
}

fn addr_type(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4_addr",
        Family::V6 => "ipv6_addr",
    }
}

fn n(f: Family) -> &'static str {
    match f {
        Family::V4 => "4",
        Family::V6 => "6",
    }
}

/// Every set and map of the layout.
pub fn set_defs() -> Vec<SetDef> {
    let mut v = vec![
        SetDef::new("bridges", false, "ifname", false),
        SetDef::new("internal", false, "ifname", false),
        SetDef::new("same", false, "ifname . ifname", false),
        SetDef::new("icc", true, "ifname . ifname : verdict", false),
        SetDef::new("trusted", false, "ifname", false),
    ];
    for f in [Family::V4, Family::V6] {
        let a = addr_type(f);
        let k = n(f);
        let key = format!("{a} . inet_proto . inet_service");
        let to = format!("{a} . inet_service");
        v.push(SetDef::new(
            &format!("links{k}"),
            false,
            &format!("{a} . {a} . inet_proto . inet_service"),
            false,
        ));
        // Single host ports (the common case) live in hash maps; only ranges need interval maps,
        // whose updates cost in proportion to their size.
        v.push(SetDef::new(
            &format!("dnat{k}"),
            true,
            &format!("{key} : {to}"),
            false,
        ));
        v.push(SetDef::new(
            &format!("dnat{k}_all"),
            true,
            &format!("inet_proto . inet_service : {to}"),
            false,
        ));
        v.push(SetDef::new(
            &format!("dnat{k}_range"),
            true,
            &format!("{key} : {to}"),
            true,
        ));
        v.push(SetDef::new(
            &format!("dnat{k}_range_keep"),
            true,
            &format!("{key} : {a}"),
            true,
        ));
        v.push(SetDef::new(
            &format!("dnat{k}_all_range"),
            true,
            &format!("inet_proto . inet_service : {to}"),
            true,
        ));
        v.push(SetDef::new(
            &format!("dnat{k}_all_range_keep"),
            true,
            &format!("inet_proto . inet_service : {a}"),
            true,
        ));
        v.push(SetDef::new(
            &format!("hairpin{k}"),
            false,
            &format!("{a} . ifname"),
            true,
        ));
        v.push(SetDef::new(&format!("masq{k}"), false, a, true));
        v.push(SetDef::new(
            &format!("snat{k}"),
            true,
            &format!("{a} : {a}"),
            true,
        ));
    }
    v
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

/// One set or map element: `key` or `key : value`, as `nft list` prints it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Elem {
    /// The set or map.
    pub set: String,
    /// The key.
    pub key: String,
    /// The value, for maps.
    pub value: Option<String>,
}

impl Elem {
    fn new(set: String, key: String, value: Option<String>) -> Elem {
        Elem { set, key, value }
    }

    /// `key` or `key : value`.
    pub fn text(&self) -> String {
        match &self.value {
            Some(v) => format!("{} : {v}", self.key),
            None => self.key.clone(),
        }
    }
}

fn q(ifname: &str) -> String {
    format!("\"{ifname}\"")
}

/// The elements a network owns.
pub fn network_elems(net: &NetworkRules) -> Vec<Elem> {
    let br = q(&net.bridge);
    let mut v = vec![
        Elem::new("bridges".into(), br.clone(), None),
        Elem::new("same".into(), format!("{br} . {br}"), None),
        Elem::new(
            "icc".into(),
            format!("{br} . {br}"),
            Some(if net.icc { "accept" } else { "drop" }.into()),
        ),
    ];
    if net.internal {
        v.push(Elem::new("internal".into(), br, None));
        return v;
    }
    for f in [Family::V4, Family::V6] {
        let Some(subnet) = net.subnet(f) else {
            continue;
        };
        let k = n(f);
        v.push(Elem::new(
            format!("hairpin{k}"),
            format!("{subnet} . {br}"),
            None,
        ));
        if net.nat_outbound(f) {
            match net.snat(f) {
                Some(a) => v.push(Elem::new(
                    format!("snat{k}"),
                    subnet.to_string(),
                    Some(a.to_string()),
                )),
                None => v.push(Elem::new(format!("masq{k}"), subnet.to_string(), None)),
            }
        }
    }
    v
}

/// The DNAT map elements of a published port: one element for a single host port or a range,
/// one per port for a shifted range (nftables 1.0 cannot offset a port range).
pub fn port_dnat_elems(port: &PortRule) -> Vec<Elem> {
    let k = n(port.family());
    let proto = port.proto;
    let c = port.container_ip;
    let (map, prefix) = match port.host_addr() {
        Some(h) => (format!("dnat{k}"), format!("{h} . {proto} . ")),
        None => (format!("dnat{k}_all"), format!("{proto} . ")),
    };
    let single = |hp: u32, cp: u32| {
        Elem::new(
            map.clone(),
            format!("{prefix}{hp}"),
            Some(format!("{c} . {cp}")),
        )
    };
    let (hs, cs) = (
        u32::from(port.host_ports.start()),
        u32::from(port.container_ports.start()),
    );
    if port.host_ports.is_single() {
        return vec![single(hs, cs)];
    }
    match port.mapping() {
        PortMapping::Same => vec![Elem::new(
            format!("{map}_range_keep"),
            format!("{prefix}{}", port.host_ports),
            Some(c.to_string()),
        )],
        PortMapping::ToOne => vec![Elem::new(
            format!("{map}_range"),
            format!("{prefix}{}", port.host_ports),
            Some(format!("{c} . {cs}")),
        )],
        PortMapping::Shifted => (0..port.host_ports.len())
            .map(|i| single(hs + i, cs + i))
            .collect(),
    }
}

/// The elements of a link.
pub fn link_elems(link: &LinkRule) -> Vec<Elem> {
    let k = n(link.family());
    link.ports
        .iter()
        .map(|p| {
            Elem::new(
                format!("links{k}"),
                format!(
                    "{} . {} . {} . {}",
                    link.parent_ip, link.child_ip, p.proto, p.port
                ),
                None,
            )
        })
        .collect()
}

/// Every element of a desired state.
pub fn all_elems(config: &FirewallConfig, state: &DesiredState) -> BTreeSet<Elem> {
    let mut v: BTreeSet<Elem> = BTreeSet::new();
    for t in &config.trusted_interfaces {
        v.insert(Elem::new("trusted".into(), q(t), None));
    }
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

    fn elements(&mut self, verb: &str, elems: &[Elem]) {
        let mut by_set: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for e in elems {
            let text = if verb == "delete" {
                e.key.clone()
            } else {
                e.text()
            };
            by_set.entry(&e.set).or_default().push(text);
        }
        for (set, items) in by_set {
            for chunk in items.chunks(512) {
                self.commands.push(format!(
                    "{verb} element {TABLE} {set} {{ {} }}",
                    chunk.join(", ")
                ));
            }
        }
    }
}

/// A transaction that deletes `dels`, then adds `adds`.
pub fn delta(adds: &[Elem], dels: &[Elem]) -> NftBatch {
    let mut b = NftBatch::default();
    b.elements("delete", dels);
    b.elements("add", adds);
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
    use super::encode::*;
    use super::*;
    use crate::model::{PortRange, Protocol};
    use crate::spec::Backend;

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
        assert_eq!(e[0].set, "dnat4_all_range_keep");
        assert_eq!(e[0].text(), "tcp . 9000-9999 : 172.18.0.3");
        let e = port_dnat_elems(&port((80, 80), (80, 80)));
        assert_eq!(e[0].set, "dnat4_all");
        assert_eq!(e[0].text(), "tcp . 80 : 172.18.0.3 . 80");
        let mut p = port((8000, 8010), (80, 80));
        p.host_ip = Some("192.0.2.1".parse().unwrap());
        let e = port_dnat_elems(&p);
        assert_eq!(e[0].set, "dnat4_range");
        assert_eq!(e[0].text(), "192.0.2.1 . tcp . 8000-8010 : 172.18.0.3 . 80");
        let e = port_dnat_elems(&port((8000, 8002), (9000, 9002)));
        assert_eq!(e.len(), 3);
        assert_eq!(e[2].set, "dnat4_all");
        assert_eq!(e[2].text(), "tcp . 8002 : 172.18.0.3 . 9002");
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
        for d in set_defs() {
            out.push_str(&format!(
                "\t{} {} {{\n\t\ttype {}\n",
                if d.map { "map" } else { "set" },
                d.name,
                d.ty
            ));
            if let Some(f) = &d.flags {
                out.push_str(&format!("\t\tflags {f}\n"));
            }
            let els: Vec<String> = want
                .iter()
                .filter(|e| e.set == d.name)
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

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn def(name: &str) -> SetDef {
        set_defs().into_iter().find(|d| d.name == name).unwrap()
    }

    fn elem(set: &str, key: &str, value: Option<&str>) -> Elem {
        Elem::new(set.into(), key.into(), value.map(String::from))
    }

    fn ifname(name: &str) -> Vec<u8> {
        let mut v = vec![0u8; 16];
        v[..name.len()].copy_from_slice(name.as_bytes());
        v
    }

    /// The bytes nft 1.0.6 sends for each kind of element of berth's layout (read off
    /// `nft --debug=mnl`): concatenations padded to 4-byte registers, concatenated intervals as
    /// key and key end, plain intervals as a start and the first key past the end.
    #[test]
    fn elements_encode_like_nft() {
        let enc = |set: &str, key: &str, value: Option<&str>, delete: bool| {
            netlink_elements(&def(set), &elem(set, key, value), delete).unwrap()
        };
        let mut key = hex("ac120000");
        key.extend(ifname("br-x"));
        let mut end = hex("ac12ffff");
        end.extend(ifname("br-x"));
        assert_eq!(
            enc("hairpin4", "172.18.0.0/16 . \"br-x\"", None, false),
            vec![SetElement::range(key, end)]
        );
        assert_eq!(
            enc(
                "dnat4_range",
                "192.0.2.1 . tcp . 8000-8010",
                Some("172.18.0.2 . 80"),
                false
            ),
            vec![
                SetElement::range(
                    hex("c0000201 06000000 1f400000"),
                    hex("c0000201 06000000 1f4a0000")
                )
                .with_data(NlData::Value(hex("ac120002 00500000")))
            ]
        );
        assert_eq!(
            enc("snat4", "172.18.0.0/16", Some("192.0.2.1"), false),
            vec![
                SetElement::key(hex("ac120000")).with_data(NlData::Value(hex("c0000201"))),
                SetElement::interval_end(hex("ac130000")),
            ]
        );
        assert_eq!(
            enc("masq6", "fd00::/64", None, true),
            vec![
                SetElement::key(hex("fd000000 00000000 00000000 00000000")),
                SetElement::interval_end(hex("fd000000 00000001 00000000 00000000")),
            ]
        );
        // The whole address space has no end element.
        assert_eq!(
            enc("masq4", "0.0.0.0/0", None, false),
            vec![SetElement::key(hex("00000000"))]
        );
        let mut icc = ifname("br-a");
        icc.extend(ifname("br-a"));
        assert_eq!(
            enc("icc", "\"br-a\" . \"br-a\"", Some("drop"), false),
            vec![SetElement::key(icc.clone()).with_data(NlData::Verdict(NlVerdict::Drop))]
        );
        assert_eq!(
            enc("icc", "\"br-a\" . \"br-a\"", Some("accept"), true),
            vec![SetElement::key(icc)]
        );
        assert_eq!(
            enc(
                "dnat4",
                "192.0.2.1 . tcp . 8080",
                Some("172.17.0.2 . 80"),
                false
            ),
            vec![
                SetElement::key(hex("c0000201 06000000 1f900000"))
                    .with_data(NlData::Value(hex("ac110002 00500000")))
            ]
        );
        assert_eq!(
            enc("dnat6_all", "udp . 53", Some("fd00::2 . 5353"), false),
            vec![
                SetElement::key(hex("11000000 00350000")).with_data(NlData::Value(hex(
                    "fd000000 00000000 00000000 00000002 14e90000"
                )))
            ]
        );
        assert_eq!(
            enc(
                "dnat4_range_keep",
                "192.0.2.1 . sctp . 10-20",
                Some("10.0.0.2"),
                false
            ),
            vec![
                SetElement::range(
                    hex("c0000201 84000000 000a0000"),
                    hex("c0000201 84000000 00140000")
                )
                .with_data(NlData::Value(hex("0a000002")))
            ]
        );
        assert_eq!(
            enc("links4", "10.0.0.2 . 10.0.0.3 . tcp . 5432", None, false),
            vec![SetElement::key(hex("0a000002 0a000003 06000000 15380000"))]
        );
        assert_eq!(
            enc("bridges", "\"br-0\"", None, false),
            vec![SetElement::key(ifname("br-0"))]
        );
    }

    #[test]
    fn malformed_elements_are_refused_with_the_reason() {
        let bad = |set: &str, key: &str, value: Option<&str>| {
            netlink_elements(&def(set), &elem(set, key, value), false).unwrap_err()
        };
        assert!(bad("bridges", "\"much-too-long-name\"", None).contains("1 to 15"));
        assert!(bad("dnat4", "192.0.2.1 . tcp", Some("10.0.0.2 . 80")).contains("parts"));
        assert!(bad("dnat4", "fd00::1 . tcp . 80", Some("10.0.0.2 . 80")).contains("family"));
        assert!(bad("dnat4", "192.0.2.1 . gre . 80", Some("10.0.0.2 . 80")).contains("protocol"));
        assert!(bad("dnat4", "192.0.2.1 . tcp . 80-90", Some("10.0.0.2 . 80")).contains("range"));
        assert!(bad("dnat4", "192.0.2.1 . tcp . 80", None).contains("does not fit"));
        assert!(bad("icc", "\"a\" . \"b\"", Some("maybe")).contains("verdict"));
        assert!(bad("masq4", "10.0.0.0/33", None).contains("address or prefix"));
        let b = NftBatch {
            element_delta: Some(ElementDelta {
                dels: vec![],
                adds: vec![elem("nonexistent", "x", None)],
            }),
            ..NftBatch::default()
        };
        assert!(
            b.netlink()
                .unwrap()
                .unwrap_err()
                .contains("not in berth's layout")
        );
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
        let many: Vec<Elem> = (0..300u32)
            .map(|i| {
                elem(
                    "dnat4_all",
                    &format!("tcp . {}", 1000 + i),
                    Some("10.0.0.2 . 80"),
                )
            })
            .collect();
        assert_eq!(delta(&many, &many).netlink().unwrap().unwrap().len(), 6);
        let (full, _) = converge(&cfg(), &DesiredState::new(), None);
        assert!(full.netlink().is_none());
    }

    #[test]
    fn successor_carries_and_ends() {
        assert_eq!(successor(&[0, 255]), Some(vec![1, 0]));
        assert_eq!(successor(&[255, 255]), None);
        assert_eq!(successor(&[10, 0, 0, 255]), Some(vec![10, 0, 1, 0]));
    }
}

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
//! ```
//!
//! Users add their own forward rules with e.g.
//! `nft add rule inet berth user_forward ip saddr 192.0.2.9 drop`; berth never flushes that chain.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::model::Family;
use crate::report::DriftReport;
use crate::spec::{DesiredState, FirewallConfig, LinkRule, NetworkRules, PortMapping, PortRule};

/// The table berth owns (family and name).
pub const TABLE: &str = "inet berth";
/// The user's chain in berth's table (the counterpart of DOCKER-USER).
pub const USER_CHAIN: &str = "user_forward";

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

/// One `nft -f` transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftBatch {
    /// The commands, one per line.
    pub commands: Vec<String>,
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
    b
}

/// A set as `nft list` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetListing {
    /// True for a map.
    pub map: bool,
    /// The `type` text.
    pub ty: String,
    /// The `flags` text.
    pub flags: Option<String>,
    /// The elements (`key` or `key : value`).
    pub elements: BTreeSet<String>,
}

/// A chain as `nft list` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainListing {
    /// The base-chain line, if any.
    pub hook: Option<String>,
    /// The rules.
    pub rules: Vec<String>,
}

/// berth's table as `nft list table inet berth` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Sets and maps by name.
    pub sets: BTreeMap<String, SetListing>,
    /// Chains by name.
    pub chains: BTreeMap<String, ChainListing>,
}

/// Splits `a, "b,c" . d, e` at commas outside quotes.
pub(crate) fn split_elements(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in s.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                cur.push(ch);
            }
            ',' if !quoted => {
                out.push(cur.trim().to_owned());
                cur.clear();
            }
            _ => cur.push(ch),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out.into_iter().filter(|e| !e.is_empty()).collect()
}

impl Listing {
    /// Parses the output of `nft list table inet berth`.
    pub fn parse(text: &str) -> Result<Listing> {
        let bad = |detail: String| Error::Unparsable {
            tool: "nft list table".into(),
            detail,
        };
        let mut listing = Listing::default();
        enum Block {
            None,
            Set(String),
            Chain(String),
        }
        let mut block = Block::None;
        let mut elements: Option<String> = None;
        for raw in text.lines() {
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(acc) = elements.as_mut() {
                acc.push(' ');
                acc.push_str(line);
                if line.ends_with('}') {
                    let Block::Set(name) = &block else {
                        return Err(bad("elements outside a set".into()));
                    };
                    let body = acc
                        .trim()
                        .trim_start_matches('{')
                        .trim_end_matches('}')
                        .to_owned();
                    if let Some(s) = listing.sets.get_mut(name) {
                        s.elements.extend(split_elements(&body));
                    }
                    elements = None;
                }
                continue;
            }
            if line.starts_with("table ") {
                continue;
            }
            match &block {
                Block::None => {
                    let mut words = line.split_whitespace();
                    let kind = words.next().unwrap_or("");
                    let name = words.next().unwrap_or("").to_owned();
                    match kind {
                        "set" | "map" => {
                            listing.sets.insert(
                                name.clone(),
                                SetListing {
                                    map: kind == "map",
                                    ..SetListing::default()
                                },
                            );
                            block = Block::Set(name);
                        }
                        "chain" => {
                            listing.chains.insert(name.clone(), ChainListing::default());
                            block = Block::Chain(name);
                        }
                        "}" => {}
                        _ => return Err(bad(format!("unexpected line {line:?}"))),
                    }
                }
                Block::Set(name) => {
                    if line == "}" {
                        block = Block::None;
                        continue;
                    }
                    let name = name.clone();
                    let Some(set) = listing.sets.get_mut(&name) else {
                        continue;
                    };
                    if let Some(t) = line.strip_prefix("type ") {
                        set.ty = t.to_owned();
                    } else if let Some(f) = line.strip_prefix("flags ") {
                        set.flags = Some(f.to_owned());
                    } else if let Some(rest) = line.strip_prefix("elements = ") {
                        if rest.ends_with('}') {
                            let body = rest.trim().trim_start_matches('{').trim_end_matches('}');
                            set.elements.extend(split_elements(body));
                        } else {
                            elements = Some(rest.to_owned());
                        }
                    }
                }
                Block::Chain(name) => {
                    if line == "}" {
                        block = Block::None;
                        continue;
                    }
                    let Some(chain) = listing.chains.get_mut(name) else {
                        continue;
                    };
                    if line.starts_with("type ") && chain.hook.is_none() && chain.rules.is_empty() {
                        chain.hook = Some(line.to_owned());
                    } else {
                        chain.rules.push(line.to_owned());
                    }
                }
            }
        }
        Ok(listing)
    }
}

/// Compares what the kernel has (`None`: no table) with the desired state; returns one
/// transaction that converges it, and the differences. Never touches [`USER_CHAIN`]'s rules.
pub fn converge(
    config: &FirewallConfig,
    state: &DesiredState,
    actual: Option<&Listing>,
) -> (NftBatch, DriftReport) {
    let mut report = DriftReport::default();
    let sets = set_defs();
    let chains = chain_defs(config);
    let want = all_elems(config, state);
    let mut b = NftBatch::default();
    let empty = Listing::default();
    let have = match actual {
        Some(l) => l,
        None => {
            report.structure.push(format!("table {TABLE} missing"));
            b.commands.push(format!("add table {TABLE}"));
            &empty
        }
    };

    // 1. Chains that must exist (the user's chain first, created empty if missing).
    if !have.chains.contains_key(USER_CHAIN) {
        if actual.is_some() {
            report.structure.push(format!("chain {USER_CHAIN} missing"));
        }
        b.commands.push(format!("add chain {TABLE} {USER_CHAIN}"));
    }
    let mut rewrite: BTreeSet<&str> = BTreeSet::new();
    for c in &chains {
        match have.chains.get(&c.name) {
            None => {
                if actual.is_some() {
                    report.structure.push(format!("chain {} missing", c.name));
                }
                b.commands.push(chain_command("add", c));
                rewrite.insert(&c.name);
            }
            Some(got) => {
                if got.hook != c.hook {
                    report.structure.push(format!(
                        "chain {}: {:?}, expected {:?}",
                        c.name, got.hook, c.hook
                    ));
                    b.commands.push(chain_command("add", c));
                    rewrite.insert(&c.name);
                }
                if got.rules != c.rules {
                    for r in c.rules.iter().filter(|r| !got.rules.contains(r)) {
                        report.missing.push(format!("chain {}: {r}", c.name));
                    }
                    for r in got.rules.iter().filter(|r| !c.rules.contains(r)) {
                        report.unexpected.push(format!("chain {}: {r}", c.name));
                    }
                    rewrite.insert(&c.name);
                }
            }
        }
    }
    // 2. A set whose declaration changed is recreated, which needs every reference gone first.
    let bad_sets: BTreeSet<&str> = sets
        .iter()
        .filter(|s| {
            have.sets
                .get(&s.name)
                .is_some_and(|g| g.map != s.map || g.ty != s.ty || g.flags != s.flags)
        })
        .map(|s| s.name.as_str())
        .collect();
    let stale_chains: Vec<&String> = have
        .chains
        .keys()
        .filter(|k| k.as_str() != USER_CHAIN && !chains.iter().any(|c| &c.name == *k))
        .collect();
    if !bad_sets.is_empty() || !stale_chains.is_empty() {
        rewrite.extend(chains.iter().map(|c| c.name.as_str()));
    }
    for c in &rewrite {
        if have.chains.contains_key(*c) {
            b.commands.push(format!("flush chain {TABLE} {c}"));
        }
    }
    for c in &stale_chains {
        report.structure.push(format!("stale chain {c}"));
        b.commands.push(format!("flush chain {TABLE} {c}"));
    }
    for c in &stale_chains {
        b.commands.push(format!("delete chain {TABLE} {c}"));
    }
    // 3. Sets: stale ones go, wrong ones are recreated, missing ones made.
    for (name, got) in &have.sets {
        let keep = sets.iter().any(|s| &s.name == name) && !bad_sets.contains(name.as_str());
        if !keep {
            report.structure.push(format!(
                "{} set {name}",
                if bad_sets.contains(name.as_str()) {
                    "wrongly declared"
                } else {
                    "stale"
                }
            ));
            let kind = if got.map { "map" } else { "set" };
            b.commands.push(format!("delete {kind} {TABLE} {name}"));
        }
    }
    let mut adds = Vec::new();
    let mut dels = Vec::new();
    for s in &sets {
        let got = have
            .sets
            .get(&s.name)
            .filter(|_| !bad_sets.contains(s.name.as_str()));
        if got.is_none() {
            if actual.is_some() && !bad_sets.contains(s.name.as_str()) {
                report.structure.push(format!("set {} missing", s.name));
            }
            b.commands.push(s.add_command());
        }
        let wanted: BTreeSet<String> = want
            .iter()
            .filter(|e| e.set == s.name)
            .map(Elem::text)
            .collect();
        let empty = BTreeSet::new();
        let present = got.map(|g| &g.elements).unwrap_or(&empty);
        for e in want.iter().filter(|e| e.set == s.name) {
            if !present.contains(&e.text()) {
                if got.is_some() {
                    report.missing.push(format!("set {}: {}", s.name, e.text()));
                }
                adds.push(e.clone());
            }
        }
        for text in present.iter().filter(|t| !wanted.contains(*t)) {
            report.unexpected.push(format!("set {}: {text}", s.name));
            let key = match text.split_once(" : ") {
                Some((k, _)) if s.map => k.to_owned(),
                _ => text.clone(),
            };
            dels.push(Elem::new(s.name.clone(), key, None));
        }
    }
    b.elements("delete", &dels);
    b.elements("add", &adds);
    // 4. Rules of the chains that were made or rewritten.
    for c in &chains {
        if rewrite.contains(c.name.as_str()) {
            for r in &c.rules {
                b.commands.push(format!("add rule {TABLE} {} {r}", c.name));
            }
        }
    }
    (b, report)
}

fn chain_command(verb: &str, c: &ChainDef) -> String {
    match &c.hook {
        Some(h) => format!("{verb} chain {TABLE} {} {{ {h} }}", c.name),
        None => format!("{verb} chain {TABLE} {}", c.name),
    }
}

#[cfg(test)]
mod tests {
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
}

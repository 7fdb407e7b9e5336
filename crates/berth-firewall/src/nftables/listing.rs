//! Reading berth's table back (`nft list table inet berth` parsed into sets, maps and chains) and
//! converging it to the desired state: the report of what was missing or foreign, and the batch
//! that repairs it.

use std::collections::HashSet;

use super::*;

/// A set as `nft list` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetListing {
    /// True for a map.
    pub map: bool,
    /// The `type` text.
    pub ty: String,
    /// The `type`, typed; `None` if it names a field berth's layout does not use.
    pub set_type: Option<SetType>,
    /// The `flags` text.
    pub flags: Option<String>,
    /// The elements as `nft` prints them (`key` or `key : value`), each with its typed form:
    /// `None` for an element that is not of the set's type or holds a value berth never makes
    /// (an address range, another protocol, a `jump` verdict, ...).
    pub elements: BTreeMap<String, Option<Element>>,
}

impl SetListing {
    fn add_elements(&mut self, body: &str) {
        for text in split_elements(body) {
            self.elements.entry(text).or_insert(None);
        }
    }

    /// Types the elements by the set's listed type (once the whole set is read).
    fn type_elements(&mut self) {
        self.set_type = SetType::parse(&self.ty);
        if let Some(ty) = &self.set_type {
            for (text, typed) in &mut self.elements {
                *typed = Element::parse(ty, text);
            }
        }
    }
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
                        s.add_elements(&body);
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
                            set.add_elements(body);
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
        for set in listing.sets.values_mut() {
            set.type_elements();
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
    let chains = chain_defs(config);
    // The wanted elements of each set by their text: sorted as the script lists them, each once.
    let mut want: BTreeMap<Set, BTreeMap<String, Element>> = BTreeMap::new();
    for e in all_elems(config, state) {
        want.entry(e.set)
            .or_default()
            .entry(e.element.to_string())
            .or_insert(e.element);
    }
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
    let bad_sets: BTreeSet<Set> = Set::ALL
        .into_iter()
        .filter(|s| {
            have.sets.get(s.name()).is_some_and(|g| {
                let ty = s.ty();
                g.map != ty.is_map()
                    || g.set_type.as_ref() != Some(&ty)
                    || g.flags.as_deref() != s.flags()
            })
        })
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
    // 3. Sets: stale ones go, wrong ones are recreated, missing ones made. Elements compare
    //    typed; an unexpected one is deleted by the key nft printed.
    for (name, got) in &have.sets {
        let layout = Set::named(name);
        let bad = layout.is_some_and(|s| bad_sets.contains(&s));
        if layout.is_none() || bad {
            report.structure.push(format!(
                "{} set {name}",
                if bad { "wrongly declared" } else { "stale" }
            ));
            let kind = if got.map { "map" } else { "set" };
            b.commands.push(format!("delete {kind} {TABLE} {name}"));
        }
    }
    let mut adds: Vec<(&str, &String)> = Vec::new();
    let mut dels: Vec<(&str, String)> = Vec::new();
    let (no_elements, nothing_wanted) = (BTreeMap::new(), BTreeMap::new());
    for s in Set::ALL {
        let (name, is_map) = (s.name(), s.ty().is_map());
        let got = have.sets.get(name).filter(|_| !bad_sets.contains(&s));
        if got.is_none() {
            if actual.is_some() && !bad_sets.contains(&s) {
                report.structure.push(format!("set {name} missing"));
            }
            b.commands.push(s.add_command());
        }
        let wanted = want.get(&s).unwrap_or(&nothing_wanted);
        let present = got.map_or(&no_elements, |g| &g.elements);
        let present_typed: HashSet<&Element> = present.values().flatten().collect();
        for (text, e) in wanted {
            if !present_typed.contains(e) {
                if got.is_some() {
                    report.missing.push(format!("set {name}: {text}"));
                }
                adds.push((name, text));
            }
        }
        let wanted_typed: HashSet<&Element> = wanted.values().collect();
        for (text, typed) in present {
            if typed.as_ref().is_some_and(|t| wanted_typed.contains(t)) {
                continue;
            }
            report.unexpected.push(format!("set {name}: {text}"));
            let key = match text.split_once(" : ") {
                Some((k, _)) if is_map => k.to_owned(),
                _ => text.clone(),
            };
            dels.push((name, key));
        }
    }
    b.elements("delete", dels);
    b.elements("add", adds);
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

pub(super) fn chain_command(verb: &str, c: &ChainDef) -> String {
    match &c.hook {
        Some(h) => format!("{verb} chain {TABLE} {} {{ {h} }}", c.name),
        None => format!("{verb} chain {TABLE} {}", c.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Backend;

    /// Part of what nft 1.0.6 listed after an outside change (`nft add element ...`) to berth's
    /// elements for one network: a foreign bridge, a changed icc verdict and SNAT address, a
    /// `jump` verdict, an address range and a protocol berth never uses.
    const LISTED: &str = r#"table inet berth {
	set bridges {
		type ifname
		elements = { "br-b",
			     "br-zzz" }
	}

	set same {
		type ifname . ifname
		elements = { "br-b" . "br-b" }
	}

	map icc {
		type ifname . ifname : verdict
		elements = { "br-b" . "br-b" : accept,
			     "br-q" . "br-q" : jump user_forward }
	}

	set links4 {
		type ipv4_addr . ipv4_addr . inet_proto . inet_service
		elements = { 10.0.0.1 . 10.0.0.2 . tcp . 80,
			     10.0.0.1 . 10.0.0.2 . gre . 80 }
	}

	set hairpin4 {
		type ipv4_addr . ifname
		flags interval
		elements = { 172.19.0.0/24 . "br-b" }
	}

	set masq4 {
		type ipv4_addr
		flags interval
		elements = { 10.20.0.1-10.20.0.5,
			     10.30.0.7 }
	}

	map snat4 {
		type ipv4_addr : ipv4_addr
		flags interval
		elements = { 172.19.0.0/24 : 192.0.2.8 }
	}
}
"#;

    #[test]
    fn listed_elements_are_typed_and_compared_typed() {
        let l = Listing::parse(LISTED).unwrap();
        let typed = |set: &str, text: &str| l.sets[set].elements[text].clone();
        assert_eq!(
            typed("masq4", "10.30.0.7"),
            Some(Element::set(vec![Part::Addr("10.30.0.7".parse().unwrap())]))
        );
        assert_eq!(
            typed("snat4", "172.19.0.0/24 : 192.0.2.8"),
            Some(Element::map(
                vec![Part::Prefix("172.19.0.0/24".parse().unwrap())],
                vec![Part::Addr("192.0.2.8".parse().unwrap())]
            ))
        );
        // Values berth never makes stay text only.
        assert_eq!(typed("masq4", "10.20.0.1-10.20.0.5"), None);
        assert_eq!(typed("links4", "10.0.0.1 . 10.0.0.2 . gre . 80"), None);
        assert_eq!(
            typed("icc", "\"br-q\" . \"br-q\" : jump user_forward"),
            None
        );
        assert_eq!(
            l.sets["icc"].set_type,
            Some(SetType::map(
                &[Field::Ifname, Field::Ifname],
                &[Field::Verdict]
            ))
        );

        let config = FirewallConfig::new(Backend::Nftables);
        let mut net = NetworkRules::new("br-b", Some("172.19.0.0/24".parse().unwrap()), None);
        net.icc = false;
        net.host_ipv4 = Some("192.0.2.7".parse().unwrap());
        let mut state = DesiredState::new();
        state.insert_network(&config, net).unwrap();
        let (b, report) = converge(&config, &state, Some(&l));
        assert_eq!(
            report
                .missing
                .iter()
                .filter(|m| m.starts_with("set "))
                .collect::<Vec<_>>(),
            [
                "set icc: \"br-b\" . \"br-b\" : drop",
                "set snat4: 172.19.0.0/24 : 192.0.2.7"
            ]
        );
        assert_eq!(
            report.unexpected,
            [
                "set bridges: \"br-zzz\"",
                "set icc: \"br-b\" . \"br-b\" : accept",
                "set icc: \"br-q\" . \"br-q\" : jump user_forward",
                "set links4: 10.0.0.1 . 10.0.0.2 . gre . 80",
                "set links4: 10.0.0.1 . 10.0.0.2 . tcp . 80",
                "set masq4: 10.20.0.1-10.20.0.5",
                "set masq4: 10.30.0.7",
                "set snat4: 172.19.0.0/24 : 192.0.2.8",
            ]
        );
        // Deleted by the keys nft printed, then the wanted elements added.
        let elements: Vec<&str> = b
            .commands
            .iter()
            .map(String::as_str)
            .filter(|c| c.contains(" element "))
            .collect();
        assert_eq!(
            elements,
            [
                "delete element inet berth bridges { \"br-zzz\" }",
                "delete element inet berth icc { \"br-b\" . \"br-b\", \"br-q\" . \"br-q\" }",
                "delete element inet berth links4 { 10.0.0.1 . 10.0.0.2 . gre . 80, \
                 10.0.0.1 . 10.0.0.2 . tcp . 80 }",
                "delete element inet berth masq4 { 10.20.0.1-10.20.0.5, 10.30.0.7 }",
                "delete element inet berth snat4 { 172.19.0.0/24 }",
                "add element inet berth icc { \"br-b\" . \"br-b\" : drop }",
                "add element inet berth snat4 { 172.19.0.0/24 : 192.0.2.7 }",
            ]
        );
    }
}

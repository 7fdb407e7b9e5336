//! Reading berth's table back (`nft list table inet berth` parsed into sets, maps and chains) and
//! converging it to the desired state: the report of what was missing or foreign, and the batch
//! that repairs it.

use super::*;

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

pub(super) fn chain_command(verb: &str, c: &ChainDef) -> String {
    match &c.hook {
        Some(h) => format!("{verb} chain {TABLE} {} {{ {h} }}", c.name),
        None => format!("{verb} chain {TABLE} {}", c.name),
    }
}

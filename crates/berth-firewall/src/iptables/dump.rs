//! Reading berth's chains back (`iptables-save` parsed into chains and rules), the layout the host
//! and each sandbox should have, and converging to it: the report of what was missing or foreign,
//! and the batch that repairs it (never touching the user's chain).

use super::*;

/// One chain as `iptables-save` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainDump {
    /// The policy of a built-in chain (`ACCEPT`, `DROP`); `-` for user chains.
    pub policy: String,
    /// Rule specifications (what follows `-A CHAIN `), in order.
    pub rules: Vec<String>,
}

/// One family's ruleset as `iptables-save` shows it: table, chain name, chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dump {
    /// The tables.
    pub tables: BTreeMap<Table, BTreeMap<String, ChainDump>>,
}

impl Dump {
    /// Parses `iptables-save` output. Tables berth does not know (security, ...) are skipped.
    pub fn parse(text: &str) -> Result<Dump> {
        let mut dump = Dump::default();
        let mut table: Option<Table> = None;
        let mut skip = false;
        for (i, line) in text.lines().enumerate() {
            let bad = |what: &str| Error::Unparsable {
                tool: "iptables-save".into(),
                detail: format!("line {}: {what}: {line:?}", i + 1),
            };
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('*') {
                table = Table::from_name(name);
                skip = table.is_none();
                if let Some(t) = table {
                    dump.tables.entry(t).or_default();
                }
                continue;
            }
            if line == "COMMIT" {
                table = None;
                skip = false;
                continue;
            }
            if skip {
                continue;
            }
            let t = table.ok_or_else(|| bad("rule outside a table"))?;
            let chains = dump.tables.entry(t).or_default();
            if let Some(decl) = line.strip_prefix(':') {
                let mut parts = decl.split_whitespace();
                let name = parts.next().ok_or_else(|| bad("chain without a name"))?;
                let policy = parts.next().unwrap_or("-");
                chains.entry(name.to_owned()).or_default().policy = policy.to_owned();
            } else if let Some(rest) = line.strip_prefix("-A ") {
                let (chain, spec) = rest.split_once(' ').unwrap_or((rest, ""));
                chains
                    .entry(chain.to_owned())
                    .or_default()
                    .rules
                    .push(spec.to_owned());
            } else {
                return Err(bad("unexpected line"));
            }
        }
        Ok(dump)
    }

    /// A chain, if present.
    pub fn chain(&self, table: Table, name: &str) -> Option<&ChainDump> {
        self.tables.get(&table).and_then(|t| t.get(name))
    }
}

/// A jump from a built-in chain into berth's chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Jump {
    table: Table,
    chain: &'static str,
    /// Specs that must be present, in order; with `strict` at positions 1, 2, ...
    specs: Vec<String>,
    strict: bool,
}

/// What berth owns in one namespace and family, in the form reconcile compares.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// Owned chains and their content.
    pub chains: BTreeMap<(Table, String), Vec<String>>,
    /// Owned chains whose rule order matters.
    pub ordered: BTreeSet<String>,
    jumps: Vec<Jump>,
    /// Create DOCKER-USER if missing.
    pub user_chain: bool,
    /// Policies to enforce on built-in chains.
    pub policies: Vec<(Table, &'static str, &'static str)>,
    /// Which user chains this layout owns (stale ones are removed).
    pub owns: fn(&str) -> bool,
}

pub(super) fn host_owned(name: &str) -> bool {
    name.starts_with("BERTH-") && !name.starts_with(DNS_PREFIX)
}

pub(crate) fn dns_owned(name: &str) -> bool {
    name.starts_with(DNS_PREFIX)
}

/// berth's host layout in `family` for a desired state.
pub(crate) fn host_layout(config: &FirewallConfig, state: &DesiredState, family: Family) -> Layout {
    let mut chains: BTreeMap<(Table, String), Vec<String>> = BTreeMap::new();
    for c in FILTER_CHAINS {
        chains.insert((Table::Filter, c.to_owned()), Vec::new());
    }
    for c in NAT_CHAINS {
        chains.insert((Table::Nat, c.to_owned()), Vec::new());
    }
    for r in all_rules(config, state, family) {
        chains
            .entry((r.table, r.chain.clone()))
            .or_default()
            .push(r.iptables_spec());
    }
    let local = Rule::new(Table::Nat, "PREROUTING", Target::Jump(DNAT.into()))
        .dst_type(AddrType::Local)
        .iptables_spec();
    let mut jumps = vec![
        Jump {
            table: Table::Filter,
            chain: "FORWARD",
            specs: vec![format!("-j {USER_CHAIN}"), format!("-j {FORWARD}")],
            strict: true,
        },
        Jump {
            table: Table::Nat,
            chain: "PREROUTING",
            specs: vec![local.clone()],
            strict: false,
        },
        Jump {
            table: Table::Nat,
            chain: "OUTPUT",
            specs: vec![local],
            strict: false,
        },
        Jump {
            table: Table::Nat,
            chain: "POSTROUTING",
            specs: vec![format!("-j {POSTROUTING}")],
            strict: false,
        },
    ];
    if !raw_rules(family).is_empty() {
        chains.entry((Table::Raw, RAW.to_owned())).or_default();
        // First, so that no ACCEPT someone puts in raw PREROUTING lets such a packet past.
        jumps.push(Jump {
            table: Table::Raw,
            chain: "PREROUTING",
            specs: vec![format!("-j {RAW}")],
            strict: true,
        });
    }
    let policies = if config.drops_forward(family) {
        vec![(Table::Filter, "FORWARD", "DROP")]
    } else {
        Vec::new()
    };
    Layout {
        chains,
        ordered: [FORWARD.to_owned()].into_iter().collect(),
        jumps,
        user_chain: true,
        policies,
        owns: host_owned,
    }
}

/// The sandbox DNS layout: owned nat chains plus jumps from OUTPUT and POSTROUTING.
pub(crate) fn dns_layout(
    chains: Vec<(String, Vec<String>)>,
    jumps: Vec<(&'static str, String)>,
) -> Layout {
    Layout {
        chains: chains
            .into_iter()
            .map(|(c, r)| ((Table::Nat, c), r))
            .collect(),
        ordered: BTreeSet::new(),
        jumps: jumps
            .into_iter()
            .map(|(chain, spec)| Jump {
                table: Table::Nat,
                chain,
                specs: vec![spec],
                strict: false,
            })
            .collect(),
        user_chain: false,
        policies: Vec::new(),
        owns: dns_owned,
    }
}

pub(super) fn target_of(spec: &str) -> Option<&str> {
    let i = spec.rfind("-j ")?;
    spec[i + 3..].split_whitespace().next()
}

pub(super) fn same_rules(ordered: bool, a: &[String], b: &[String]) -> bool {
    if ordered {
        return a == b;
    }
    if a.len() != b.len() {
        return false;
    }
    let mut x: Vec<&String> = a.iter().collect();
    let mut y: Vec<&String> = b.iter().collect();
    x.sort();
    y.sort();
    x == y
}

/// Multiset difference `a - b`.
pub(super) fn minus<'a>(a: &'a [String], b: &[String]) -> Vec<&'a String> {
    let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
    for s in b {
        *counts.entry(s).or_default() += 1;
    }
    let mut out = Vec::new();
    for s in a {
        match counts.get_mut(s) {
            Some(n) if *n > 0 => *n -= 1,
            _ => out.push(s),
        }
    }
    out
}

/// Compares what the kernel has with a layout; returns the sections that converge it (with
/// their undo) and a report of the differences. Touches nothing berth does not own: DOCKER-USER
/// is only created, built-in chains only get berth's jumps deleted or inserted.
pub(crate) fn converge(
    layout: &Layout,
    family: Family,
    actual: &Dump,
) -> (Vec<IptSection>, DriftReport) {
    let mut report = DriftReport::default();
    let fam = family.label();
    let mut sections = Vec::new();
    let tables: BTreeSet<Table> = layout
        .chains
        .keys()
        .map(|(t, _)| *t)
        .chain(layout.jumps.iter().map(|j| j.table))
        .collect();
    for table in tables {
        let empty = BTreeMap::new();
        let have = actual.tables.get(&table).unwrap_or(&empty);
        let place = |c: &str| format!("{fam} {} {c}", table.name());
        // Forward: declare (create or flush) every chain first, then fill, then jumps, then
        // policies, then delete stale chains. Undo: recreate and refill old chains, put the old
        // jumps and policies back, then flush and delete the chains this created.
        let mut declares = Vec::new();
        let mut appends = Vec::new();
        let mut stale_deletes = Vec::new();
        let mut u_declares = Vec::new();
        let mut u_appends = Vec::new();
        let mut u_created = Vec::new();

        for ((_, name), want) in layout.chains.iter().filter(|((t, _), _)| *t == table) {
            let ordered = layout.ordered.contains(name);
            let got = have.get(name);
            if let Some(got) = got {
                if same_rules(ordered, &got.rules, want) {
                    continue;
                }
                let missing = minus(want, &got.rules);
                let extra = minus(&got.rules, want);
                if missing.is_empty() && extra.is_empty() {
                    report
                        .structure
                        .push(format!("{}: rules out of order", place(name)));
                }
                report
                    .missing
                    .extend(missing.iter().map(|s| format!("{}: {s}", place(name))));
                report
                    .unexpected
                    .extend(extra.iter().map(|s| format!("{}: {s}", place(name))));
                u_declares.push(IptOp::Declare(name.clone()));
                u_appends.extend(
                    got.rules
                        .iter()
                        .map(|s| IptOp::Append(name.clone(), s.clone())),
                );
            } else {
                report
                    .structure
                    .push(format!("{}: chain missing", place(name)));
                u_created.push(name.clone());
            }
            declares.push(IptOp::Declare(name.clone()));
            appends.extend(want.iter().map(|s| IptOp::Append(name.clone(), s.clone())));
        }
        if table == Table::Filter && layout.user_chain && !have.contains_key(USER_CHAIN) {
            report
                .structure
                .push(format!("{}: chain missing", place(USER_CHAIN)));
            declares.push(IptOp::Declare(USER_CHAIN.into()));
            appends.push(IptOp::Append(USER_CHAIN.into(), "-j RETURN".into()));
            u_created.push(USER_CHAIN.into());
        }
        for (name, got) in have.iter() {
            if (layout.owns)(name) && !layout.chains.contains_key(&(table, name.clone())) {
                report
                    .structure
                    .push(format!("{}: stale chain", place(name)));
                declares.push(IptOp::Declare(name.clone()));
                stale_deletes.push(IptOp::DeleteChain(name.clone()));
                u_declares.push(IptOp::Declare(name.clone()));
                u_appends.extend(
                    got.rules
                        .iter()
                        .map(|s| IptOp::Append(name.clone(), s.clone())),
                );
            }
        }

        let mut jump_ops = Vec::new();
        let mut jump_undo = Vec::new();
        for jump in layout.jumps.iter().filter(|j| j.table == table) {
            let rules = have
                .get(jump.chain)
                .map(|c| c.rules.as_slice())
                .unwrap_or(&[]);
            let is_ours = |spec: &str| {
                jump.specs.iter().any(|s| s == spec)
                    || target_of(spec)
                        .is_some_and(|t| (layout.owns)(t) || (layout.user_chain && t == USER_CHAIN))
            };
            let ours: Vec<(usize, &String)> = rules
                .iter()
                .enumerate()
                .filter(|(_, s)| is_ours(s))
                .map(|(i, s)| (i + 1, s))
                .collect();
            let ok = ours.len() == jump.specs.len()
                && if jump.strict {
                    ours.iter()
                        .zip(&jump.specs)
                        .enumerate()
                        .all(|(k, ((pos, s), want))| *pos == k + 1 && *s == want)
                } else {
                    jump.specs.iter().all(|w| ours.iter().any(|(_, s)| *s == w))
                };
            if ok {
                continue;
            }
            report.structure.push(format!(
                "{}: berth's jumps are {:?}, expected {:?}{}",
                place(jump.chain),
                ours.iter()
                    .map(|(p, s)| format!("{p}: {s}"))
                    .collect::<Vec<_>>(),
                jump.specs,
                if jump.strict { " first" } else { "" }
            ));
            for (_, s) in &ours {
                jump_ops.push(IptOp::Delete(jump.chain.into(), (*s).clone()));
            }
            for (k, s) in jump.specs.iter().enumerate() {
                jump_ops.push(IptOp::Insert(jump.chain.into(), k + 1, s.clone()));
            }
            for s in jump.specs.iter() {
                jump_undo.push(IptOp::Delete(jump.chain.into(), s.clone()));
            }
            for (pos, s) in &ours {
                jump_undo.push(IptOp::Insert(jump.chain.into(), *pos, (*s).clone()));
            }
        }

        let mut policy_ops = Vec::new();
        let mut policy_undo = Vec::new();
        for (_, chain, policy) in layout.policies.iter().filter(|(t, _, _)| *t == table) {
            let current = have
                .get(*chain)
                .map(|c| c.policy.as_str())
                .unwrap_or("ACCEPT");
            if current != *policy {
                report.structure.push(format!(
                    "{}: policy {current}, expected {policy}",
                    place(chain)
                ));
                policy_ops.push(IptOp::Policy((*chain).into(), (*policy).into()));
                policy_undo.push(IptOp::Policy((*chain).into(), current.into()));
            }
        }

        let mut ops = declares;
        ops.extend(appends);
        ops.extend(jump_ops);
        ops.extend(policy_ops);
        ops.extend(stale_deletes);
        if ops.is_empty() {
            continue;
        }
        let mut undo = u_declares;
        undo.extend(u_appends);
        undo.extend(jump_undo);
        undo.extend(policy_undo);
        undo.extend(u_created.iter().map(|c| IptOp::Declare(c.clone())));
        undo.extend(u_created.iter().map(|c| IptOp::DeleteChain(c.clone())));
        sections.push(IptSection { table, ops, undo });
    }
    (sections, report)
}

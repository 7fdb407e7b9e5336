//! A pure model of what berth's rules look like in the kernel, to check transactions without
//! root: apply a change's [`Transaction`] to the model of the previous state and compare with
//! the model of the full ruleset of the new state. Used by the property tests and the fuzz
//! target; handy for a dry run.

use std::collections::BTreeMap;

use crate::iptables::IptOp;
use crate::plan::{Planner, Transaction};
use crate::spec::DesiredState;

/// berth's chains (iptables: `family/table/chain` to its rules, order ignored) and set elements
/// (nftables: set to key to value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleModel {
    /// Chain contents, sorted.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Set and map elements (empty sets left out).
    pub elements: BTreeMap<String, BTreeMap<String, Option<String>>>,
}

impl RuleModel {
    /// The model of `state`'s full ruleset.
    pub fn full(planner: &Planner, state: &DesiredState) -> Result<RuleModel, String> {
        let tx = planner.full(state).map_err(|e| e.to_string())?;
        let mut m = RuleModel::default();
        m.apply(&tx)?;
        Ok(m)
    }

    /// Applies a transaction; fails where the kernel would (a missing chain, rule or element, a
    /// chain deleted while it holds rules, an element re-added with another value).
    pub fn apply(&mut self, tx: &Transaction) -> Result<(), String> {
        match tx {
            Transaction::Iptables(batches) => {
                for b in batches {
                    for s in &b.sections {
                        for op in &s.ops {
                            let key = |c: &str| format!("{:?}/{}/{c}", b.family, s.table.name());
                            match &*op.text() {
                                IptOp::Declare(c) => {
                                    self.chains.insert(key(c), Vec::new());
                                }
                                IptOp::Append(c, spec) => self
                                    .chains
                                    .get_mut(&key(c))
                                    .ok_or_else(|| format!("append to missing chain {c}"))?
                                    .push(spec.clone()),
                                IptOp::Delete(c, spec) => {
                                    let rules = self
                                        .chains
                                        .get_mut(&key(c))
                                        .ok_or_else(|| format!("delete from missing chain {c}"))?;
                                    let i =
                                        rules.iter().position(|r| r == spec).ok_or_else(|| {
                                            format!("delete of missing rule {c} {spec}")
                                        })?;
                                    rules.remove(i);
                                }
                                IptOp::DeleteChain(c) => {
                                    let rules = self
                                        .chains
                                        .remove(&key(c))
                                        .ok_or_else(|| format!("-X of missing chain {c}"))?;
                                    if !rules.is_empty() {
                                        return Err(format!(
                                            "-X of chain {c} that still has rules"
                                        ));
                                    }
                                }
                                // Built-in chains (jumps, policies) are not modelled.
                                IptOp::Insert(..) | IptOp::Policy(..) => {}
                                IptOp::AppendRule(_) | IptOp::DeleteRule(_) => {
                                    unreachable!("written out as text above")
                                }
                            }
                        }
                    }
                }
                for v in self.chains.values_mut() {
                    v.sort();
                }
            }
            Transaction::Nftables(b) => {
                for cmd in &b.commands {
                    let (add, rest) = if let Some(r) = cmd.strip_prefix("add element inet berth ") {
                        (true, r)
                    } else if let Some(r) = cmd.strip_prefix("delete element inet berth ") {
                        (false, r)
                    } else {
                        continue;
                    };
                    let (set, body) = rest
                        .split_once(' ')
                        .ok_or_else(|| format!("bad command {cmd}"))?;
                    let body = body.trim().trim_start_matches('{').trim_end_matches('}');
                    let elements = self.elements.entry(set.to_owned()).or_default();
                    for e in crate::nftables::split_elements(body) {
                        let (k, v) = match e.split_once(" : ") {
                            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                            None => (e, None),
                        };
                        if add {
                            if let Some(old) = elements.get(&k) {
                                if old != &v {
                                    return Err(format!(
                                        "element {k} of {set} re-added with another value"
                                    ));
                                }
                            }
                            elements.insert(k, v);
                        } else if elements.remove(&k).is_none() {
                            return Err(format!("delete of missing element {k} of {set}"));
                        }
                    }
                }
                self.elements.retain(|_, v| !v.is_empty());
            }
        }
        Ok(())
    }
}

//! The host namespace at one moment (its links, and its rules as `iptables-save`,
//! `ip6tables-save` and `nft list ruleset` print them), to prove that removing everything leaves
//! the host as it was.

use std::collections::{BTreeMap, BTreeSet};

use berth_testhost::berth_netlink::{Handle, Netns};

use super::firewall::run_in;

/// The host namespace's links (by name and kind) and firewall ruleset (iptables and ip6tables
/// `-save` output, and `nft list ruleset`, without counters and comments) at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostBaseline {
    links: BTreeSet<String>,
    rules: BTreeMap<&'static str, Vec<String>>,
}

impl HostBaseline {
    /// Reads the host namespace now.
    pub(crate) fn take(host: &Netns) -> Result<HostBaseline, String> {
        let nl = Handle::open(host).map_err(|e| format!("netlink in the host namespace: {e}"))?;
        let links = nl
            .link_list()
            .map_err(|e| format!("listing the host's links: {e}"))?
            .into_iter()
            .map(|l| format!("{} ({:?})", l.name, l.kind))
            .collect();
        let mut rules = BTreeMap::new();
        for (tool, args) in [
            ("iptables-save", &[][..]),
            ("ip6tables-save", &[][..]),
            ("nft", &["list", "ruleset"][..]),
        ] {
            let text = run_in(host, tool, args)?;
            let mut lines: Vec<String> = text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(|l| match l.split_once(" [") {
                    // `:CHAIN POLICY [packets:bytes]`
                    Some((head, _)) if l.starts_with(':') => head.to_owned(),
                    _ => without_counters(l),
                })
                .collect();
            lines.sort();
            rules.insert(tool, lines);
        }
        Ok(HostBaseline { links, rules })
    }

    /// What differs in `now` from this baseline: links and rule lines added or gone.
    pub(crate) fn diff(&self, now: &HostBaseline) -> Vec<String> {
        let mut out = Vec::new();
        for l in now.links.difference(&self.links) {
            out.push(format!("host link {l} was added"));
        }
        for l in self.links.difference(&now.links) {
            out.push(format!("host link {l} is gone"));
        }
        for (tool, before) in &self.rules {
            let after = now.rules.get(tool).cloned().unwrap_or_default();
            let (added, gone) = multiset_diff(before, &after);
            for l in added {
                out.push(format!("{tool}: added {l:?}"));
            }
            for l in gone {
                out.push(format!("{tool}: gone {l:?}"));
            }
        }
        out
    }
}

/// An `nft list` line without its `counter packets N bytes M` values (iptables-nft's rules
/// count).
fn without_counters(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if words[i] == "packets" || words[i] == "bytes" {
            i += 2;
            continue;
        }
        out.push(words[i]);
        i += 1;
    }
    out.join(" ")
}

/// Lines of `after` not in `before`, and lines of `before` not in `after` (with multiplicity).
fn multiset_diff(before: &[String], after: &[String]) -> (Vec<String>, Vec<String>) {
    let mut count: BTreeMap<&str, i64> = BTreeMap::new();
    for l in before {
        *count.entry(l).or_default() -= 1;
    }
    for l in after {
        *count.entry(l).or_default() += 1;
    }
    let mut added = Vec::new();
    let mut gone = Vec::new();
    for (l, n) in count {
        for _ in 0..n.max(0) {
            added.push(l.to_owned());
        }
        for _ in 0..(-n).max(0) {
            gone.push(l.to_owned());
        }
    }
    (added, gone)
}

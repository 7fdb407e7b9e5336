//! The `iptables-restore --noflush` batches: one operation ([`IptOp`]), the section of a table
//! with its undo ([`IptSection`]), a whole run ([`IptBatch`]) and its script; and [`delta`],
//! the batches that append and delete given rules.

use super::*;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iptables::tests::cfg;

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
}

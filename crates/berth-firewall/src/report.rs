//! What reconcile found.

use std::fmt;

/// The differences between berth's desired rules and what the kernel holds. Empty means in sync.
///
/// Entries are human-readable and name the place (`IPv4 filter BERTH-DROP: -o br-x -j DROP`,
/// `set dnat4_all: tcp . 8080 : 172.18.0.3 . 80`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriftReport {
    /// Rules or elements berth wants that the kernel lacks.
    pub missing: Vec<String>,
    /// Rules or elements in berth's chains and sets that berth does not want.
    pub unexpected: Vec<String>,
    /// Chains, sets, jumps or policies that are missing, stale, misplaced or wrong.
    pub structure: Vec<String>,
}

impl DriftReport {
    /// True if nothing differs.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.structure.is_empty()
    }

    pub(crate) fn merge(&mut self, other: DriftReport) {
        self.missing.extend(other.missing);
        self.unexpected.extend(other.unexpected);
        self.structure.extend(other.structure);
    }
}

impl fmt::Display for DriftReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return f.write_str("no drift");
        }
        for s in &self.structure {
            writeln!(f, "structure: {s}")?;
        }
        for s in &self.missing {
            writeln!(f, "missing: {s}")?;
        }
        for s in &self.unexpected {
            writeln!(f, "unexpected: {s}")?;
        }
        Ok(())
    }
}

//! A set of `u128` numbers stored as merged, inclusive runs: memory grows with the number of runs,
//! not with how many numbers they cover, and every query is one or two B-tree lookups.

use std::collections::BTreeMap;

/// Sorted, disjoint, non-adjacent inclusive runs `start -> end`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct IntervalSet {
    runs: BTreeMap<u128, u128>,
    /// How many numbers the runs cover (saturating; only a crafted IPv6 /0 could reach the limit).
    count: u128,
}

impl IntervalSet {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// How many numbers are in the set.
    pub(crate) fn count(&self) -> u128 {
        self.count
    }

    /// Number of runs.
    #[cfg(test)]
    pub(crate) fn run_count(&self) -> usize {
        self.runs.len()
    }

    /// The runs in ascending order.
    pub(crate) fn runs(&self) -> impl Iterator<Item = (u128, u128)> + '_ {
        self.runs.iter().map(|(&s, &e)| (s, e))
    }

    /// The run containing `x`, if any.
    fn run_of(&self, x: u128) -> Option<(u128, u128)> {
        match self.runs.range(..=x).next_back() {
            Some((&s, &e)) if e >= x => Some((s, e)),
            _ => None,
        }
    }

    pub(crate) fn contains(&self, x: u128) -> bool {
        self.run_of(x).is_some()
    }

    /// Some run that intersects `[lo, hi]` (the lowest such run).
    pub(crate) fn overlapping(&self, lo: u128, hi: u128) -> Option<(u128, u128)> {
        if let Some(run) = self.run_of(lo) {
            return Some(run);
        }
        match self.runs.range(lo..).next() {
            Some((&s, &e)) if s <= hi => Some((s, e)),
            _ => None,
        }
    }

    /// The lowest number in `[lo, hi]` that is not in the set.
    pub(crate) fn first_free(&self, lo: u128, hi: u128) -> Option<u128> {
        if lo > hi {
            return None;
        }
        match self.run_of(lo) {
            // Runs are merged, so the number after a run's end is free.
            Some((_, e)) if e >= hi => None,
            Some((_, e)) => Some(e + 1),
            None => Some(lo),
        }
    }

    /// Adds `x`; false if it was already there.
    pub(crate) fn insert(&mut self, x: u128) -> bool {
        // Does a run start right after x?
        let next = x.checked_add(1).and_then(|n| self.runs.get(&n).copied());
        // Does the run before x end right before it (or contain it)?
        let extend_prev = match self.runs.range_mut(..=x).next_back() {
            Some((_, e)) if *e >= x => return false,
            Some((_, e)) if *e + 1 == x => {
                *e = next.unwrap_or(x);
                true
            }
            _ => false,
        };
        if let Some(end) = next {
            self.runs.remove(&(x + 1));
            if !extend_prev {
                self.runs.insert(x, end);
            }
        } else if !extend_prev {
            self.runs.insert(x, x);
        }
        self.count = self.count.saturating_add(1);
        true
    }

    /// Removes `x`; false if it was not there.
    pub(crate) fn remove(&mut self, x: u128) -> bool {
        let Some((s, e)) = self.run_of(x) else {
            return false;
        };
        if s == x {
            self.runs.remove(&s);
        } else if let Some(end) = self.runs.get_mut(&s) {
            *end = x - 1;
        }
        if e > x {
            self.runs.insert(x + 1, e);
        }
        self.count = self.count.saturating_sub(1);
        true
    }

    /// Adds every number of `[lo, hi]`, merging with neighbouring runs.
    pub(crate) fn insert_range(&mut self, lo: u128, hi: u128) {
        if lo > hi {
            return;
        }
        let mut start = lo;
        let mut end = hi;
        // Absorb every run that overlaps or touches [lo, hi].
        let from = lo.saturating_sub(1);
        let touching: Vec<(u128, u128)> = {
            let mut v = Vec::new();
            if let Some((&s, &e)) = self.runs.range(..from).next_back() {
                if e >= from {
                    v.push((s, e));
                }
            }
            let upto = hi.saturating_add(1);
            v.extend(self.runs.range(from..=upto).map(|(&s, &e)| (s, e)));
            v
        };
        for (s, e) in touching {
            self.runs.remove(&s);
            self.count = self.count.saturating_sub(len(s, e));
            start = start.min(s);
            end = end.max(e);
        }
        self.runs.insert(start, end);
        self.count = self.count.saturating_add(len(start, end));
    }
}

/// Number of values in `[s, e]`, saturating at `u128::MAX`.
fn len(s: u128, e: u128) -> u128 {
    (e - s).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn insert_merges_and_remove_splits() {
        let mut s = IntervalSet::new();
        assert!(s.insert(5));
        assert!(s.insert(7));
        assert_eq!(s.run_count(), 2);
        assert!(s.insert(6));
        assert_eq!(s.runs().collect::<Vec<_>>(), vec![(5, 7)]);
        assert!(!s.insert(6));
        assert_eq!(s.count(), 3);
        assert!(s.remove(6));
        assert_eq!(s.runs().collect::<Vec<_>>(), vec![(5, 5), (7, 7)]);
        assert!(!s.remove(6));
        assert!(s.remove(5));
        assert!(s.remove(7));
        assert_eq!(s.run_count(), 0);
        assert_eq!(s.count(), 0);
    }

    #[test]
    fn first_free_and_extremes() {
        let mut s = IntervalSet::new();
        assert_eq!(s.first_free(3, 2), None);
        assert_eq!(s.first_free(0, u128::MAX), Some(0));
        assert!(s.insert(u128::MAX));
        assert!(s.insert(u128::MAX - 1));
        assert_eq!(s.first_free(u128::MAX - 1, u128::MAX), None);
        assert!(s.insert(0));
        assert_eq!(s.first_free(0, u128::MAX), Some(1));
        s.insert_range(0, u128::MAX);
        assert_eq!(s.first_free(0, u128::MAX), None);
        assert_eq!(s.count(), u128::MAX);
        assert!(s.remove(u128::MAX));
        assert!(s.remove(0));
        assert_eq!(s.runs().collect::<Vec<_>>(), vec![(1, u128::MAX - 1)]);
    }

    #[test]
    fn overlapping_finds_runs() {
        let mut s = IntervalSet::new();
        s.insert_range(10, 20);
        s.insert_range(30, 40);
        assert_eq!(s.overlapping(0, 9), None);
        assert_eq!(s.overlapping(0, 10), Some((10, 20)));
        assert_eq!(s.overlapping(15, 35), Some((10, 20)));
        assert_eq!(s.overlapping(21, 29), None);
        assert_eq!(s.overlapping(21, 30), Some((30, 40)));
        s.insert_range(21, 29);
        assert_eq!(s.runs().collect::<Vec<_>>(), vec![(10, 40)]);
        assert_eq!(s.count(), 31);
    }

    proptest! {
        #[test]
        fn matches_a_btreeset(ops in proptest::collection::vec((0u8..4, 0u128..64, 0u128..8), 1..200)) {
            let mut s = IntervalSet::new();
            let mut m = BTreeSet::new();
            for (op, x, w) in ops {
                match op {
                    0 => prop_assert_eq!(s.insert(x), m.insert(x)),
                    1 => prop_assert_eq!(s.remove(x), m.remove(&x)),
                    2 => {
                        s.insert_range(x, x + w);
                        for v in x..=x + w { m.insert(v); }
                    }
                    _ => {
                        let want = (x..=x + w).find(|v| !m.contains(v));
                        prop_assert_eq!(s.first_free(x, x + w), want);
                        let any = (x..=x + w).any(|v| m.contains(&v));
                        prop_assert_eq!(s.overlapping(x, x + w).is_some(), any);
                    }
                }
                prop_assert_eq!(s.count(), m.len() as u128);
                // Runs are sorted, disjoint and never adjacent.
                let runs: Vec<_> = s.runs().collect();
                for w in runs.windows(2) {
                    prop_assert!(w[0].1 + 1 < w[1].0);
                }
                let flat: BTreeSet<u128> = runs.iter().flat_map(|&(a, b)| a..=b).collect();
                prop_assert_eq!(&flat, &m);
            }
        }
    }
}

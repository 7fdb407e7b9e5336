//! The kill matrix's parts: a seeded random source, the schedule of (fail point, pass) kills, the
//! API snapshot model ([`model`]), the kernel checks ([`check`]) and the workload ([`workload`]).

pub(crate) mod check;
pub(crate) mod model;
pub(crate) mod workload;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A small seeded generator (splitmix64): the same seed gives the same schedule and workload.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / ((1u64 << 53) as f64) < p
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }

    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// The controller's crash points (the `restore.*` hooks inject errors, they are not crash points).
pub(crate) fn crash_points() -> Vec<&'static str> {
    berth::failpoint::POINTS
        .iter()
        .copied()
        .filter(|p| !p.starts_with("restore."))
        .collect()
}

/// Points the matrix must kill at least once: every step of connect, disconnect and removal.
fn must_cover(point: &str) -> bool {
    point.starts_with("connect.") || point.starts_with("disconnect.") || point.contains(".remove.")
}

/// One kill: SIGKILL at the `nth` pass of `point` since the daemon started.
pub(crate) type Target = (&'static str, u32);

/// Which (point, pass) pairs to kill at, all distinct: every point at least once when there are
/// kills enough (the connect, disconnect and remove points first), the rest drawn at random.
#[derive(Debug)]
pub(crate) struct Schedule {
    queue: VecDeque<Target>,
    used: BTreeSet<Target>,
    /// Pairs tried and not reached, per point.
    misses: BTreeMap<&'static str, u32>,
    max_n: u32,
}

/// Tries of one point with no kill before it counts as unreachable.
pub(crate) const MAX_MISSES: u32 = 3;

impl Schedule {
    pub(crate) fn new(rng: &mut Rng, kills: usize, max_n: u32) -> Schedule {
        let points = crash_points();
        assert!(
            kills <= points.len() * max_n as usize,
            "{kills} distinct kills need KILL_MATRIX_MAX_N >= {}",
            kills.div_ceil(points.len())
        );
        let (mut first, mut rest): (Vec<_>, Vec<_>) =
            points.iter().copied().partition(|p| must_cover(p));
        rng.shuffle(&mut first);
        rng.shuffle(&mut rest);
        let mut used = BTreeSet::new();
        let mut list = Vec::new();
        for p in first.into_iter().chain(rest).take(kills) {
            // Early passes for the coverage kills: they are reached in any op mix.
            let n = 1 + rng.below(max_n.min(3) as usize) as u32;
            used.insert((p, n));
            list.push((p, n));
        }
        while list.len() < kills {
            let p = points[rng.below(points.len())];
            let n = 1 + rng.below(max_n as usize) as u32;
            if used.insert((p, n)) {
                list.push((p, n));
            }
        }
        rng.shuffle(&mut list);
        Schedule {
            queue: list.into(),
            used,
            misses: BTreeMap::new(),
            max_n,
        }
    }

    pub(crate) fn next(&mut self) -> Option<Target> {
        self.queue.pop_front()
    }

    /// `target` was not reached: the replacement to try next (the same point at the earliest
    /// unused pass, or, after [`MAX_MISSES`] misses of that point, another unused pair).
    pub(crate) fn missed(&mut self, rng: &mut Rng, target: Target) -> Target {
        let misses = self.misses.entry(target.0).or_default();
        *misses += 1;
        let replacement = if *misses < MAX_MISSES {
            (1..)
                .map(|n| (target.0, n))
                .find(|t| !self.used.contains(t))
        } else {
            None
        };
        let replacement = replacement.unwrap_or_else(|| {
            let points = crash_points();
            loop {
                let p = points[rng.below(points.len())];
                let n = 1 + rng.below(self.max_n as usize) as u32;
                if !self.used.contains(&(p, n))
                    && self.misses.get(p).copied().unwrap_or(0) < MAX_MISSES
                {
                    break (p, n);
                }
            }
        });
        self.used.insert(replacement);
        self.queue.push_front(replacement);
        replacement
    }

    /// Points given up on: missed [`MAX_MISSES`] times.
    pub(crate) fn unreachable(&self) -> Vec<&'static str> {
        self.misses
            .iter()
            .filter(|(_, m)| **m >= MAX_MISSES)
            .map(|(p, _)| *p)
            .collect()
    }
}

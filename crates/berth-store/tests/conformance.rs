//! The conformance suite ([`berth_store::conformance`]) on both local backends, one test per
//! check and backend.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_store::{DEFAULT_HISTORY, KvStore, MemoryStore, RedbStore, conformance};

/// New redb stores, each in its own file of one temporary directory.
struct RedbFiles {
    dir: tempfile::TempDir,
    made: AtomicUsize,
}

impl RedbFiles {
    fn new() -> Self {
        RedbFiles {
            dir: tempfile::tempdir().unwrap(),
            made: AtomicUsize::new(0),
        }
    }

    fn make(&self, history: usize) -> Arc<dyn KvStore> {
        let n = self.made.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("store-{n}.redb"));
        Arc::new(RedbStore::open_with_history(path, history).unwrap())
    }
}

fn memory() -> Arc<dyn KvStore> {
    Arc::new(MemoryStore::new())
}

macro_rules! suite {
    ($($check:ident),* $(,)?) => {
        /// The checks this file runs, to compare with the suite's list.
        const RUN: &[&str] = &[$(stringify!($check)),*];

        mod memory_store {
            $(
                #[test]
                fn $check() {
                    berth_store::conformance::$check(&super::memory);
                }
            )*
        }

        mod redb_store {
            $(
                #[test]
                fn $check() {
                    let files = super::RedbFiles::new();
                    berth_store::conformance::$check(&|| files.make(berth_store::DEFAULT_HISTORY));
                }
            )*
        }
    };
}

suite!(
    get_put_delete_and_revisions,
    compare_and_swap,
    transactions_are_all_or_nothing,
    invalid_keys_are_refused,
    list_is_ordered_and_consistent,
    concurrent_cas_has_one_winner,
    watch_delivers_live_changes,
    watch_replays_from_a_revision,
    watch_has_no_gap_or_duplicate,
    lease_expiry_deletes_keys,
    revoke_deletes_the_lease_keys,
    bad_leases_are_refused,
);

#[test]
fn every_check_of_the_suite_runs_here() {
    let listed: Vec<&str> = conformance::CHECKS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        listed, RUN,
        "conformance::CHECKS and this file's list differ"
    );
}

#[test]
fn memory_compaction() {
    conformance::check_compaction(&|n| Arc::new(MemoryStore::with_history(n)) as Arc<dyn KvStore>);
}

#[test]
fn redb_compaction() {
    let files = RedbFiles::new();
    conformance::check_compaction(&|n| files.make(n));
}

#[test]
fn check_store_runs_the_whole_suite_on_memory() {
    conformance::check_store(&memory);
}

#[test]
fn a_new_memory_store_keeps_the_default_history() {
    let s = MemoryStore::new();
    for i in 0..DEFAULT_HISTORY {
        s.put(&format!("k/{i}"), b"x").unwrap();
    }
    assert_eq!(s.compact_revision().unwrap(), 0);
    s.put("k/one-more", b"x").unwrap();
    assert_eq!(s.compact_revision().unwrap(), 1);
}

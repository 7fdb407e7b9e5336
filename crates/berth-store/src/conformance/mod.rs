//! The behaviour every [`KvStore`] owes, as a suite a backend runs in its own tests: both local
//! backends run it, and a backend outside this crate (etcd) proves with it that the controller can
//! use it.
//!
//! Each check takes a factory of new, empty stores that nothing else writes to, and panics with a
//! message naming the property that failed. [`check_store`] runs them all (a few seconds: the
//! lease checks wait for a 200 ms lease to expire); [`CHECKS`] lists them, for a test per check.
//! [`check_compaction`] needs stores with a small watch history and is run separately.
//!
//! ```no_run
//! use std::sync::Arc;
//! use berth_store::{KvStore, MemoryStore, conformance};
//!
//! conformance::check_store(&|| Arc::new(MemoryStore::new()) as Arc<dyn KvStore>);
//! conformance::check_compaction(&|events| Arc::new(MemoryStore::with_history(events)) as Arc<dyn KvStore>);
//! ```

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use crate::{Entry, Error, Event, Expect, KvStore, LeaseId, MAX_LEASE_TTL, Result, Txn, Watch};

mod kv;
mod leases;
mod watch;

pub use kv::*;
pub use leases::*;
pub use watch::*;

/// A factory of new, empty stores of the backend under test, that nothing else writes to.
pub type MakeStore<'a> = &'a dyn Fn() -> Arc<dyn KvStore>;

/// One check of the suite.
pub type Check = fn(MakeStore<'_>);

/// Every check of [`check_store`], by name.
pub const CHECKS: &[(&str, Check)] = &[
    ("get_put_delete_and_revisions", get_put_delete_and_revisions),
    ("compare_and_swap", compare_and_swap),
    (
        "transactions_are_all_or_nothing",
        transactions_are_all_or_nothing,
    ),
    ("invalid_keys_are_refused", invalid_keys_are_refused),
    (
        "list_is_ordered_and_consistent",
        list_is_ordered_and_consistent,
    ),
    (
        "concurrent_cas_has_one_winner",
        concurrent_cas_has_one_winner,
    ),
    ("watch_delivers_live_changes", watch_delivers_live_changes),
    (
        "watch_replays_from_a_revision",
        watch_replays_from_a_revision,
    ),
    (
        "watch_has_no_gap_or_duplicate",
        watch_has_no_gap_or_duplicate,
    ),
    ("lease_expiry_deletes_keys", lease_expiry_deletes_keys),
    (
        "revoke_deletes_the_lease_keys",
        revoke_deletes_the_lease_keys,
    ),
    ("bad_leases_are_refused", bad_leases_are_refused),
];

/// Runs every check of [`CHECKS`] on stores made by `make`.
pub fn check_store(make: MakeStore<'_>) {
    for (_, check) in CHECKS {
        check(make);
    }
}

/// How long a watch event may take to arrive.
const EVENT_WAIT: Duration = Duration::from_secs(5);
/// The lease time to live the lease checks ask for.
const LEASE_TTL: Duration = Duration::from_millis(200);
/// How late after its time to live a lease's keys may be deleted.
const EXPIRY_SLACK: Duration = Duration::from_secs(1);

/// Unwraps a store result, or panics naming the step.
fn must<T>(r: Result<T>, step: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{step}: unexpected store error: {e}"),
    }
}

/// The next event within [`EVENT_WAIT`], or a panic naming the property.
fn next(w: &Watch, property: &str) -> Event {
    match w.recv_timeout(EVENT_WAIT) {
        Some(e) => e,
        None => panic!("{property}: no event within {EVENT_WAIT:?}"),
    }
}

/// Asserts that no further event arrives within a short wait.
fn assert_quiet(w: &Watch, property: &str) {
    if let Some(e) = w.recv_timeout(Duration::from_millis(100)) {
        panic!("{property}: unexpected event {e:?}");
    }
}

fn keys(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.key.as_str()).collect()
}

/// (key, revision, is a put) of a `Put` or `Delete`.
fn change(e: &Event, property: &str) -> (String, u64, bool) {
    match e {
        Event::Put(entry) => (entry.key.clone(), entry.mod_revision, true),
        Event::Delete { key, revision } => (key.clone(), *revision, false),
        other => panic!("{property}: expected a Put or Delete, got {other:?}"),
    }
}

fn expect_err<T: Debug>(r: Result<T>, step: &str, ok: impl Fn(&Error) -> bool) -> Error {
    match r {
        Err(e) if ok(&e) => e,
        other => panic!("{step}: got {other:?}"),
    }
}

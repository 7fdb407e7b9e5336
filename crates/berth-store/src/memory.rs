//! An in-memory [`KvStore`]: for tests, ephemeral controllers, and as the reference model the redb
//! backend is checked against.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::leases::{Leases, Reaper};
use crate::{
    DEFAULT_HISTORY, Entry, Event, KvStore, LeaseId, Listing, Op, Result, Txn, Watch, WatchHub,
    check_key, check_txn,
};

/// A [`KvStore`] held in memory; nothing survives the process. Its watch history starts at
/// revision 0 and keeps the last [`DEFAULT_HISTORY`] events (see [`MemoryStore::with_history`]).
/// Leases expire on time without other calls (a thread started with the first lease and
/// stopped when the store is dropped).
#[derive(Debug)]
pub struct MemoryStore {
    // Declared first so that it is dropped (its thread stopped) first.
    reaper: Mutex<Option<Reaper>>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Fed under the `state` lock, so in commit order.
    hub: WatchHub,
}

#[derive(Debug, Default)]
struct State {
    revision: u64,
    entries: BTreeMap<String, Entry>,
    leases: Leases,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store at revision 0.
    pub fn new() -> Self {
        Self::with_history(DEFAULT_HISTORY)
    }

    /// An empty store at revision 0 whose watch history keeps the last `events` events (a watch
    /// from an older revision gets [`crate::Event::Compacted`]).
    pub fn with_history(events: usize) -> Self {
        MemoryStore {
            reaper: Mutex::new(None),
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                hub: WatchHub::new(events, 0),
            }),
        }
    }

    /// The state, with the leases that expired by now ended.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.expire(&mut state);
        state
    }

    /// Ends every lease past its deadline: one commit per lease deleting its keys.
    fn expire(&self, state: &mut State) {
        let now = Instant::now();
        if !state.leases.any_expired(now) {
            return;
        }
        for (_, keys) in state.leases.take_expired(now) {
            self.apply(state, keys.into_iter().map(Op::Delete).collect());
        }
    }

    /// Applies checked ops at the next revision and publishes their events; returns the revision
    /// after them.
    fn apply(&self, state: &mut State, ops: Vec<Op>) -> u64 {
        if ops.is_empty() {
            return state.revision;
        }
        let revision = state.revision + 1;
        let mut events = Vec::with_capacity(ops.len());
        for op in ops {
            let (key, value, lease) = match op {
                Op::Delete(key) => {
                    if let Some(old) = state.entries.remove(&key) {
                        if let Some(l) = old.lease {
                            state.leases.detach(&key, l);
                        }
                        events.push(Event::Delete { key, revision });
                    }
                    continue;
                }
                Op::Put(key, value) => (key, value, None),
                Op::PutWithLease(key, value, lease) => (key, value, Some(lease)),
            };
            let old = state.entries.get(&key);
            let create_revision = old.map_or(revision, |e| e.create_revision);
            if let Some(l) = old.and_then(|e| e.lease) {
                state.leases.detach(&key, l);
            }
            if let Some(l) = lease {
                state.leases.attach(&key, l);
            }
            let entry = Entry {
                key: key.clone(),
                value,
                create_revision,
                mod_revision: revision,
                lease,
            };
            events.push(Event::Put(entry.clone()));
            state.entries.insert(key, entry);
        }
        state.revision = revision;
        self.hub.publish(&events);
        revision
    }

    fn reap(&self) {
        drop(self.lock());
    }
}

impl KvStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Entry>> {
        check_key(key)?;
        Ok(self.lock().entries.get(key).cloned())
    }

    fn list(&self, prefix: &str) -> Result<Listing> {
        let state = self.lock();
        Ok(Listing {
            entries: state
                .entries
                .range(prefix.to_owned()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, e)| e.clone())
                .collect(),
            revision: state.revision,
        })
    }

    fn commit(&self, txn: Txn) -> Result<u64> {
        let mut state = self.lock();
        let now = Instant::now();
        check_txn(
            &txn,
            |k| Ok(state.entries.get(k).map(|e| e.mod_revision)),
            |l| state.leases.is_live(l, now),
        )?;
        Ok(self.shared.apply(&mut state, txn.ops))
    }

    fn watch(&self, prefix: &str, after_revision: u64) -> Result<Watch> {
        Ok(self.shared.hub.subscribe(prefix, after_revision))
    }

    fn revision(&self) -> Result<u64> {
        Ok(self.lock().revision)
    }

    fn compact_revision(&self) -> Result<u64> {
        Ok(self.shared.hub.compact_revision())
    }

    fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        Reaper::ensure(
            &self.reaper,
            Arc::downgrade(&self.shared),
            Shared::reap,
            || "memory".to_owned(),
        )?;
        self.lock().leases.grant(ttl, Instant::now())
    }

    fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        self.lock().leases.keep_alive(lease, Instant::now())
    }

    fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let mut state = self.lock();
        let keys = state.leases.revoke(lease, Instant::now())?;
        self.shared
            .apply(&mut state, keys.into_iter().map(Op::Delete).collect());
        Ok(())
    }
}

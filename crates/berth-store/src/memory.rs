//! An in-memory [`KvStore`]: for tests, ephemeral controllers, and as the reference model the redb
//! backend is checked against.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::watch::Watchers;
use crate::{Entry, Event, KvStore, Op, Result, Txn, Watch, check_conditions, check_key};

#[derive(Debug, Default)]
struct State {
    revision: u64,
    entries: BTreeMap<String, Entry>,
}

/// A [`KvStore`] held in memory; nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    watchers: Watchers,
}

impl MemoryStore {
    /// An empty store at revision 0.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KvStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Entry>> {
        check_key(key)?;
        Ok(self.lock().entries.get(key).cloned())
    }

    fn list(&self, prefix: &str) -> Result<Vec<Entry>> {
        let state = self.lock();
        Ok(state
            .entries
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e.clone())
            .collect())
    }

    fn commit(&self, txn: Txn) -> Result<u64> {
        let mut state = self.lock();
        check_conditions(&txn, |k| Ok(state.entries.get(k).map(|e| e.mod_revision)))?;
        if txn.ops.is_empty() {
            return Ok(state.revision);
        }
        let revision = state.revision + 1;
        let mut events = Vec::with_capacity(txn.ops.len());
        for op in txn.ops {
            match op {
                Op::Put(key, value) => {
                    let create_revision = state
                        .entries
                        .get(&key)
                        .map_or(revision, |e| e.create_revision);
                    let entry = Entry {
                        key: key.clone(),
                        value,
                        create_revision,
                        mod_revision: revision,
                    };
                    events.push(Event::Put(entry.clone()));
                    state.entries.insert(key, entry);
                }
                Op::Delete(key) => {
                    if state.entries.remove(&key).is_some() {
                        events.push(Event::Delete { key, revision });
                    }
                }
            }
        }
        state.revision = revision;
        self.watchers.publish(&events);
        Ok(revision)
    }

    fn watch(&self, prefix: &str) -> Result<Watch> {
        let _state = self.lock();
        Ok(self.watchers.subscribe(prefix))
    }

    fn revision(&self) -> Result<u64> {
        Ok(self.lock().revision)
    }
}

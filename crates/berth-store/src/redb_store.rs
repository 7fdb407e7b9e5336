//! The embedded backend: one redb file, every commit durable when it returns.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::leases::{Leases, Reaper};
use crate::{
    DEFAULT_HISTORY, Entry, Error, Event, KvStore, LeaseId, Listing, Op, Result, Txn, Watch,
    WatchHub, check_key, check_txn,
};

/// key -> (create_revision, mod_revision, value)
const KV: TableDefinition<&str, (u64, u64, &[u8])> = TableDefinition::new("kv");
/// "revision" -> the store revision
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";
/// key -> the lease it is attached to, for every key of [`KV`] attached to one. Leases live in
/// the memory of the process that granted them; a key left here by a previous process is deleted
/// when the file is opened. (Added after `kv` and `meta`: a file without it is read as one with
/// no leased key.)
const LEASED: TableDefinition<&str, u64> = TableDefinition::new("leased");

/// A [`KvStore`] in a redb database file. Each commit is on disk (fsync) when it returns, so a
/// crash or `kill -9` at any point leaves the last committed state. The file is locked: a second
/// process opening it gets [`Error::Locked`].
///
/// Leases belong to the process: they are kept in memory and expire on time without other calls
/// (a thread started with the first lease and stopped when the store is dropped). The keys
/// attached to a lease are recorded in the file too, and opening it deletes those of the
/// previous process (its leases ended with it) in one commit. The watch history starts at the
/// revision the file was opened at: a watch from an older revision gets
/// [`crate::Event::Compacted`].
#[derive(Debug)]
pub struct RedbStore {
    // Declared first so that it is dropped (its thread stopped) first; the file is closed when
    // `drop` returns.
    reaper: Mutex<Option<Reaper>>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    db: Database,
    path: PathBuf,
    /// Serialises commits and their publication, so watchers see events in commit order.
    /// Taken before `leases`.
    writer: Mutex<()>,
    /// Changed only under `writer`, after the commit that changed the file.
    leases: Mutex<Leases>,
    hub: WatchHub,
}

/// How a commit changes the lease table in memory once it is durable.
enum LeaseChange {
    Attach(String, LeaseId),
    Detach(String, LeaseId),
}

impl RedbStore {
    /// Opens the store at `path`, creating the file (not its directory) if missing, with a watch
    /// history of [`DEFAULT_HISTORY`] events.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore> {
        Self::open_with_history(path, DEFAULT_HISTORY)
    }

    /// Opens the store at `path` (see [`RedbStore::open`]) with a watch history of the last
    /// `events` events.
    pub fn open_with_history(path: impl AsRef<Path>, events: usize) -> Result<RedbStore> {
        let path = path.as_ref().to_path_buf();
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::Locked { path: path.clone() },
            other => backend(&path, other),
        })?;
        // Make sure every table exists so that readers never see "table does not exist", and
        // delete the keys of the previous process's leases.
        let txn = db.begin_write().map_err(|e| backend(&path, e))?;
        let (revision, orphans) = {
            let mut kv = txn.open_table(KV).map_err(|e| backend(&path, e))?;
            let mut meta = txn.open_table(META).map_err(|e| backend(&path, e))?;
            let mut leased = txn.open_table(LEASED).map_err(|e| backend(&path, e))?;
            let mut revision = read_revision(&meta).map_err(|e| backend(&path, e))?;
            let mut orphans = 0usize;
            while let Some((key, _)) = leased.pop_first().map_err(|e| backend(&path, e))? {
                if kv
                    .remove(key.value())
                    .map_err(|e| backend(&path, e))?
                    .is_some()
                {
                    orphans += 1;
                }
            }
            if orphans > 0 {
                revision += 1;
                meta.insert(REVISION, revision)
                    .map_err(|e| backend(&path, e))?;
            }
            (revision, orphans)
        };
        txn.commit().map_err(|e| backend(&path, e))?;
        if orphans > 0 {
            tracing::info!(
                store = %path.display(),
                keys = orphans,
                revision,
                "deleted the keys of the leases of the process that had the store open before"
            );
        }
        Ok(RedbStore {
            reaper: Mutex::new(None),
            shared: Arc::new(Shared {
                db,
                path,
                writer: Mutex::new(()),
                leases: Mutex::new(Leases::default()),
                hub: WatchHub::new(events, revision),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }
}

fn backend(path: &Path, e: impl Into<redb::Error>) -> Error {
    Error::Backend {
        store: format!("redb {}", path.display()),
        message: e.into().to_string(),
    }
}

/// A transaction deleting `keys`.
fn deletes(keys: BTreeSet<String>) -> Txn {
    Txn {
        conditions: Vec::new(),
        ops: keys.into_iter().map(Op::Delete).collect(),
    }
}

fn read_revision(meta: &impl ReadableTable<&'static str, u64>) -> Result<u64, redb::Error> {
    Ok(meta.get(REVISION)?.map_or(0, |g| g.value()))
}

impl Shared {
    fn err(&self, e: impl Into<redb::Error>) -> Error {
        backend(&self.path, e)
    }

    fn lock_leases(&self) -> MutexGuard<'_, Leases> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the leases past their deadline, if any. Called by the reaper and before each call.
    fn reap(&self) {
        if !self.lock_leases().any_expired(Instant::now()) {
            return;
        }
        let _writer = self.lock_writer();
        if let Err(e) = self.expire_locked() {
            tracing::error!(error = %e, "cannot delete the keys of expired leases; they are deleted when the store is next opened");
        }
    }

    /// Ends the leases past their deadline: one commit per lease deleting its keys. The caller
    /// holds `writer`.
    fn expire_locked(&self) -> Result<()> {
        let expired = self.lock_leases().take_expired(Instant::now());
        for (_, keys) in expired {
            self.write_locked(deletes(keys))?;
        }
        Ok(())
    }

    /// Checks `txn` and applies it in one durable write transaction, then updates the leases in
    /// memory and publishes the events; returns the revision after. The caller holds `writer`.
    fn write_locked(&self, txn: Txn) -> Result<u64> {
        let empty = txn.ops.is_empty();
        let wtxn = self.db.begin_write().map_err(|e| self.err(e))?;
        let (revision, events, changes) = self.apply(&wtxn, txn)?;
        if empty {
            // Nothing to write: dropping the transaction aborts it.
            return Ok(revision);
        }
        wtxn.commit().map_err(|e| self.err(e))?;
        let mut leases = self.lock_leases();
        for change in changes {
            match change {
                LeaseChange::Attach(key, l) => leases.attach(&key, l),
                LeaseChange::Detach(key, l) => leases.detach(&key, l),
            }
        }
        drop(leases);
        self.hub.publish(&events);
        Ok(revision)
    }

    /// Checks `txn` and applies it inside `wtxn` (not yet committed).
    fn apply(
        &self,
        wtxn: &WriteTransaction,
        txn: Txn,
    ) -> Result<(u64, Vec<Event>, Vec<LeaseChange>)> {
        let mut kv = wtxn.open_table(KV).map_err(|e| self.err(e))?;
        let mut meta = wtxn.open_table(META).map_err(|e| self.err(e))?;
        let mut leased = wtxn.open_table(LEASED).map_err(|e| self.err(e))?;
        let current = read_revision(&meta).map_err(|e| self.err(e))?;
        {
            let leases = self.lock_leases();
            let now = Instant::now();
            check_txn(
                &txn,
                |k| Ok(kv.get(k).map_err(|e| self.err(e))?.map(|g| g.value().1)),
                |l| leases.is_live(l, now),
            )?;
        }
        if txn.ops.is_empty() {
            return Ok((current, Vec::new(), Vec::new()));
        }
        let revision = current + 1;
        let mut events = Vec::with_capacity(txn.ops.len());
        let mut changes = Vec::new();
        for op in txn.ops {
            let (key, value, lease) = match op {
                Op::Delete(key) => {
                    let existed = kv.remove(key.as_str()).map_err(|e| self.err(e))?.is_some();
                    if let Some(l) = leased.remove(key.as_str()).map_err(|e| self.err(e))? {
                        changes.push(LeaseChange::Detach(key.clone(), LeaseId(l.value())));
                    }
                    if existed {
                        events.push(Event::Delete { key, revision });
                    }
                    continue;
                }
                Op::Put(key, value) => (key, value, None),
                Op::PutWithLease(key, value, lease) => (key, value, Some(lease)),
            };
            let create_revision = kv
                .get(key.as_str())
                .map_err(|e| self.err(e))?
                .map_or(revision, |g| g.value().0);
            kv.insert(key.as_str(), (create_revision, revision, value.as_slice()))
                .map_err(|e| self.err(e))?;
            let old_lease = match lease {
                Some(l) => leased.insert(key.as_str(), l.0),
                None => leased.remove(key.as_str()),
            }
            .map_err(|e| self.err(e))?
            .map(|g| LeaseId(g.value()));
            if let Some(old) = old_lease {
                changes.push(LeaseChange::Detach(key.clone(), old));
            }
            if let Some(l) = lease {
                changes.push(LeaseChange::Attach(key.clone(), l));
            }
            events.push(Event::Put(Entry {
                key,
                value,
                create_revision,
                mod_revision: revision,
                lease,
            }));
        }
        meta.insert(REVISION, revision).map_err(|e| self.err(e))?;
        Ok((revision, events, changes))
    }
}

impl KvStore for RedbStore {
    fn get(&self, key: &str) -> Result<Option<Entry>> {
        check_key(key)?;
        let s = &self.shared;
        s.reap();
        let txn = s.db.begin_read().map_err(|e| s.err(e))?;
        let table = txn.open_table(KV).map_err(|e| s.err(e))?;
        let leased = txn.open_table(LEASED).map_err(|e| s.err(e))?;
        let Some(found) = table.get(key).map_err(|e| s.err(e))? else {
            return Ok(None);
        };
        let (create_revision, mod_revision, value) = found.value();
        let lease = leased
            .get(key)
            .map_err(|e| s.err(e))?
            .map(|g| LeaseId(g.value()));
        Ok(Some(Entry {
            key: key.to_owned(),
            value: value.to_vec(),
            create_revision,
            mod_revision,
            lease,
        }))
    }

    fn list(&self, prefix: &str) -> Result<Listing> {
        let s = &self.shared;
        s.reap();
        let txn = s.db.begin_read().map_err(|e| s.err(e))?;
        let table = txn.open_table(KV).map_err(|e| s.err(e))?;
        let meta = txn.open_table(META).map_err(|e| s.err(e))?;
        let leased_table = txn.open_table(LEASED).map_err(|e| s.err(e))?;
        // The leased keys under the prefix, merged with the entries below (both in key order).
        let mut leased = Vec::new();
        for item in leased_table.range(prefix..).map_err(|e| s.err(e))? {
            let (k, v) = item.map_err(|e| s.err(e))?;
            if !k.value().starts_with(prefix) {
                break;
            }
            leased.push((k.value().to_owned(), LeaseId(v.value())));
        }
        let mut leased = leased.into_iter().peekable();
        let mut entries = Vec::new();
        for item in table.range(prefix..).map_err(|e| s.err(e))? {
            let (k, v) = item.map_err(|e| s.err(e))?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            while leased.next_if(|(lk, _)| lk.as_str() < key).is_some() {}
            let lease = leased.next_if(|(lk, _)| lk == key).map(|(_, l)| l);
            let (create_revision, mod_revision, value) = v.value();
            entries.push(Entry {
                key: key.to_owned(),
                value: value.to_vec(),
                create_revision,
                mod_revision,
                lease,
            });
        }
        let revision = read_revision(&meta).map_err(|e| s.err(e))?;
        Ok(Listing { entries, revision })
    }

    fn commit(&self, txn: Txn) -> Result<u64> {
        let s = &self.shared;
        let _writer = s.lock_writer();
        s.expire_locked()?;
        s.write_locked(txn)
    }

    fn watch(&self, prefix: &str, after_revision: u64) -> Result<Watch> {
        Ok(self.shared.hub.subscribe(prefix, after_revision))
    }

    fn revision(&self) -> Result<u64> {
        let s = &self.shared;
        s.reap();
        let txn = s.db.begin_read().map_err(|e| s.err(e))?;
        let meta = txn.open_table(META).map_err(|e| s.err(e))?;
        read_revision(&meta).map_err(|e| s.err(e))
    }

    fn compact_revision(&self) -> Result<u64> {
        Ok(self.shared.hub.compact_revision())
    }

    fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        Reaper::ensure(
            &self.reaper,
            Arc::downgrade(&self.shared),
            Shared::reap,
            || format!("redb {}", self.shared.path.display()),
        )?;
        self.shared.lock_leases().grant(ttl, Instant::now())
    }

    fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        self.shared.lock_leases().keep_alive(lease, Instant::now())
    }

    fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let s = &self.shared;
        let _writer = s.lock_writer();
        let keys: BTreeSet<String> = s.lock_leases().revoke(lease, Instant::now())?;
        s.write_locked(deletes(keys))?;
        Ok(())
    }
}

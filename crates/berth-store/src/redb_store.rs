//! The embedded backend: one redb file, every commit durable when it returns.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::watch::Watchers;
use crate::{Entry, Error, Event, KvStore, Op, Result, Txn, Watch, check_conditions, check_key};

/// key -> (create_revision, mod_revision, value)
const KV: TableDefinition<&str, (u64, u64, &[u8])> = TableDefinition::new("kv");
/// "revision" -> the store revision
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";

/// A [`KvStore`] in a redb database file. Each commit is on disk (fsync) when it returns, so a
/// crash or `kill -9` at any point leaves the last committed state. The file is locked: a second
/// process opening it gets [`Error::Locked`].
#[derive(Debug)]
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    /// Serialises commit + publish so watchers see events in commit order.
    writer: Mutex<()>,
    watchers: Watchers,
}

impl RedbStore {
    /// Opens the store at `path`, creating the file (not its directory) if missing.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore> {
        let path = path.as_ref().to_path_buf();
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::Locked { path: path.clone() },
            other => backend(&path, other),
        })?;
        let store = RedbStore {
            db,
            path,
            writer: Mutex::new(()),
            watchers: Watchers::default(),
        };
        // Make sure both tables exist so that readers never see "table does not exist".
        let txn = store.db.begin_write().map_err(|e| store.err(e))?;
        {
            txn.open_table(KV).map_err(|e| store.err(e))?;
            txn.open_table(META).map_err(|e| store.err(e))?;
        }
        txn.commit().map_err(|e| store.err(e))?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl Into<redb::Error>) -> Error {
        backend(&self.path, e)
    }
}

fn backend(path: &Path, e: impl Into<redb::Error>) -> Error {
    Error::Backend {
        path: path.to_path_buf(),
        message: e.into().to_string(),
    }
}

impl KvStore for RedbStore {
    fn get(&self, key: &str) -> Result<Option<Entry>> {
        check_key(key)?;
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(KV).map_err(|e| self.err(e))?;
        let found = table.get(key).map_err(|e| self.err(e))?;
        Ok(found.map(|g| {
            let (create_revision, mod_revision, value) = g.value();
            Entry {
                key: key.to_owned(),
                value: value.to_vec(),
                create_revision,
                mod_revision,
            }
        }))
    }

    fn list(&self, prefix: &str) -> Result<Vec<Entry>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(KV).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in table.range(prefix..).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            let (create_revision, mod_revision, value) = v.value();
            out.push(Entry {
                key: key.to_owned(),
                value: value.to_vec(),
                create_revision,
                mod_revision,
            });
        }
        Ok(out)
    }

    fn commit(&self, txn: Txn) -> Result<u64> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let wtxn = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut events = Vec::with_capacity(txn.ops.len());
        let revision;
        {
            let mut kv = wtxn.open_table(KV).map_err(|e| self.err(e))?;
            let mut meta = wtxn.open_table(META).map_err(|e| self.err(e))?;
            let current = meta
                .get(REVISION)
                .map_err(|e| self.err(e))?
                .map_or(0, |g| g.value());
            check_conditions(&txn, |k| {
                Ok(kv.get(k).map_err(|e| self.err(e))?.map(|g| g.value().1))
            })?;
            if txn.ops.is_empty() {
                return Ok(current);
            }
            revision = current + 1;
            for op in txn.ops {
                match op {
                    Op::Put(key, value) => {
                        let create_revision = kv
                            .get(key.as_str())
                            .map_err(|e| self.err(e))?
                            .map_or(revision, |g| g.value().0);
                        kv.insert(key.as_str(), (create_revision, revision, value.as_slice()))
                            .map_err(|e| self.err(e))?;
                        events.push(Event::Put(Entry {
                            key,
                            value,
                            create_revision,
                            mod_revision: revision,
                        }));
                    }
                    Op::Delete(key) => {
                        let existed = kv.remove(key.as_str()).map_err(|e| self.err(e))?.is_some();
                        if existed {
                            events.push(Event::Delete { key, revision });
                        }
                    }
                }
            }
            meta.insert(REVISION, revision).map_err(|e| self.err(e))?;
        }
        wtxn.commit().map_err(|e| self.err(e))?;
        self.watchers.publish(&events);
        Ok(revision)
    }

    fn watch(&self, prefix: &str) -> Result<Watch> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self.watchers.subscribe(prefix))
    }

    fn revision(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let meta = txn.open_table(META).map_err(|e| self.err(e))?;
        Ok(meta
            .get(REVISION)
            .map_err(|e| self.err(e))?
            .map_or(0, |g| g.value()))
    }
}

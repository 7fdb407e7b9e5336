//! berth's persistent state: a small key-value interface and its backends.
//!
//! The controller keeps networks, endpoints and sandboxes as values under string keys
//! (`networks/<id>`, `endpoints/<network>/<id>`, ...). [`KvStore`] is the whole interface it needs:
//! get, list by prefix, put, delete, compare-and-swap and multi-key transactions ([`Txn`]), watch by
//! prefix, and store-wide revisions (every committed change gets the next revision, as in etcd), so
//! that an etcd backend for global-scope networks fits the same trait.
//!
//! Backends: [`RedbStore`], the embedded default (one redb file in the data directory, each commit
//! durable on disk when it returns; a second process opening the same file is refused), and
//! [`MemoryStore`] (for tests and ephemeral controllers).
//!
//! ```
//! use berth_store::{KvStore, MemoryStore, Expect};
//!
//! let store = MemoryStore::new();
//! let watch = store.watch("networks/")?;
//! let rev = store.put("networks/abc", b"{\"name\":\"isolated_nw\"}")?;
//! assert_eq!(store.get("networks/abc")?.unwrap().mod_revision, rev);
//! // Only one writer wins a compare-and-swap on the same revision.
//! store.compare_and_swap("networks/abc", Expect::Revision(rev), Some(b"{}"))?;
//! assert!(store.compare_and_swap("networks/abc", Expect::Revision(rev), None).is_err());
//! assert!(matches!(watch.try_recv(), Some(berth_store::Event::Put(_))));
//! # Ok::<(), berth_store::Error>(())
//! ```

mod memory;
mod redb_store;
mod watch;

use std::path::PathBuf;

pub use memory::MemoryStore;
pub use redb_store::RedbStore;
pub use watch::Watch;

/// One stored key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value bytes.
    pub value: Vec<u8>,
    /// The store revision at which the key was created (last time it went from absent to present).
    pub create_revision: u64,
    /// The store revision of the last change to the key.
    pub mod_revision: u64,
}

/// A change seen by a [`Watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The key was created or its value replaced.
    Put(Entry),
    /// The key was deleted at `revision`.
    Delete {
        /// The deleted key.
        key: String,
        /// The store revision of the deletion.
        revision: u64,
    },
}

impl Event {
    /// The key the event is about.
    pub fn key(&self) -> &str {
        match self {
            Event::Put(e) => &e.key,
            Event::Delete { key, .. } => key,
        }
    }
}

/// What a compare-and-swap or a transaction condition expects of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The key must not exist.
    Absent,
    /// The key must exist, with any revision.
    Present,
    /// The key must exist with exactly this `mod_revision`.
    Revision(u64),
}

/// A write inside a [`Txn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create or replace the key's value.
    Put(String, Vec<u8>),
    /// Delete the key (no-op if absent).
    Delete(String),
}

/// An atomic transaction: if every condition holds, every op is applied at one new revision;
/// otherwise nothing is applied and [`Error::Conflict`] names the first condition that failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// Conditions checked against the state before the ops.
    pub conditions: Vec<(String, Expect)>,
    /// Writes applied in order.
    pub ops: Vec<Op>,
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a condition.
    pub fn when(mut self, key: impl Into<String>, expect: Expect) -> Self {
        self.conditions.push((key.into(), expect));
        self
    }

    /// Adds a put.
    pub fn put(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.ops.push(Op::Put(key.into(), value.into()));
        self
    }

    /// Adds a delete.
    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.ops.push(Op::Delete(key.into()));
        self
    }
}

/// Errors of berth-store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key was empty, too long or contained NUL.
    #[error("invalid store key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A compare-and-swap or transaction condition did not hold; nothing was written.
    #[error("store conflict on {key:?}: expected {expected:?}, found {found}")]
    Conflict {
        /// The key whose condition failed.
        key: String,
        /// What was expected.
        expected: Expect,
        /// What was found (`absent` or `revision N`).
        found: String,
    },
    /// Another process (usually a second berth daemon) holds the store file open.
    #[error(
        "the store {path} is in use by another process: is another berth daemon running on the same data root?"
    )]
    Locked {
        /// The store file.
        path: PathBuf,
    },
    /// The backend failed (I/O, corruption, ...).
    #[error("store backend {path}: {message}")]
    Backend {
        /// The store file (empty for the in-memory store).
        path: PathBuf,
        /// The backend's description.
        message: String,
    },
}

/// Result alias of berth-store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 4096;

pub(crate) fn check_key(key: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidKey {
            key: key.chars().take(200).collect(),
            reason,
        })
    };
    if key.is_empty() {
        return bad("a key cannot be empty");
    }
    if key.len() > MAX_KEY_LEN {
        return bad("a key is at most 4096 bytes");
    }
    if key.contains('\0') {
        return bad("a key cannot contain NUL");
    }
    Ok(())
}

/// The key-value interface berth keeps its state in. Implementations are `Send + Sync`; every method
/// is atomic on its own.
pub trait KvStore: Send + Sync {
    /// The value of `key`, if present.
    fn get(&self, key: &str) -> Result<Option<Entry>>;

    /// Every entry whose key starts with `prefix`, in key order (`""` lists everything).
    fn list(&self, prefix: &str) -> Result<Vec<Entry>>;

    /// Applies a transaction atomically; returns the store revision after it (unchanged when it has
    /// no ops).
    fn commit(&self, txn: Txn) -> Result<u64>;

    /// Watches every change to keys under `prefix` made after this call.
    fn watch(&self, prefix: &str) -> Result<Watch>;

    /// The current store revision (0 for a new store).
    fn revision(&self) -> Result<u64>;

    /// Creates or replaces `key`; returns the new revision.
    fn put(&self, key: &str, value: &[u8]) -> Result<u64> {
        self.commit(Txn::new().put(key, value))
    }

    /// Deletes `key`; returns whether it existed.
    fn delete(&self, key: &str) -> Result<bool> {
        match self.commit(Txn::new().when(key, Expect::Present).delete(key)) {
            Ok(_) => Ok(true),
            Err(Error::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes `value` (or deletes, with `None`) only if `key` is as `expect` says; returns the new
    /// revision, or [`Error::Conflict`] with nothing written.
    fn compare_and_swap(&self, key: &str, expect: Expect, value: Option<&[u8]>) -> Result<u64> {
        let txn = Txn::new().when(key, expect);
        let txn = match value {
            Some(v) => txn.put(key, v),
            None => txn.delete(key),
        };
        self.commit(txn)
    }
}

/// Checks a transaction's conditions against a lookup of current mod revisions.
pub(crate) fn check_conditions(
    txn: &Txn,
    mut current: impl FnMut(&str) -> Result<Option<u64>>,
) -> Result<()> {
    for (key, expect) in &txn.conditions {
        check_key(key)?;
        let found = current(key)?;
        let ok = match (expect, found) {
            (Expect::Absent, None) => true,
            (Expect::Present, Some(_)) => true,
            (Expect::Revision(r), Some(f)) => *r == f,
            _ => false,
        };
        if !ok {
            return Err(Error::Conflict {
                key: key.clone(),
                expected: *expect,
                found: found.map_or_else(|| "absent".to_owned(), |r| format!("revision {r}")),
            });
        }
    }
    for op in &txn.ops {
        match op {
            Op::Put(k, _) | Op::Delete(k) => check_key(k)?,
        }
    }
    Ok(())
}

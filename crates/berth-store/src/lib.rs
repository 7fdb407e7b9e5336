//! berth's persistent state: a small key-value interface modelled on etcd v3, and its backends.
//!
//! The controller keeps networks, endpoints and sandboxes as values under string keys
//! (`networks/<id>`, `endpoints/<network>/<id>`, ...). [`KvStore`] is the whole interface it needs,
//! shaped so that a store shared by a cluster (etcd) fits it as well as the embedded one:
//!
//! - **Revisions.** Every committed change gets the next store-wide revision; each [`Entry`]
//!   carries the revision that created it and the one that last changed it.
//! - **Reads.** [`KvStore::get`] one key; [`KvStore::list`] a prefix, with the revision the
//!   [`Listing`] was read at.
//! - **Writes.** [`KvStore::commit`] applies a [`Txn`] (conditions on keys' revisions, then puts
//!   and deletes) atomically at one revision, or nothing with [`Error::Conflict`];
//!   [`KvStore::put`], [`KvStore::delete`] and [`KvStore::compare_and_swap`] are shorthands.
//! - **Watches.** [`KvStore::watch`] streams every change under a prefix after a given revision:
//!   first the changes already made (so a caller resumes where it stopped: list, then watch from
//!   the listing's revision, with no gap and no duplicate), then live ones. If the store's
//!   history no longer reaches back that far, the watch says [`Event::Compacted`] and ends: list
//!   again and watch from the new listing.
//! - **Leases.** [`KvStore::grant_lease`] gives a lease with a time to live; keys put with it
//!   ([`Txn::put_with_lease`]) are deleted, in one commit, when it expires or is revoked. A holder
//!   keeps its keys alive with [`KvStore::keep_alive`]: a host that dies takes its keys with it.
//!
//! Backends: [`RedbStore`], the embedded default (one redb file in the data directory, each commit
//! durable on disk when it returns; a second process opening the same file is refused; leases
//! belong to the process, so opening the file deletes the keys of the previous process's
//! leases), and [`MemoryStore`] (for tests and ephemeral controllers). A backend outside this
//! crate implements [`KvStore`] with the public types alone ([`Watch::new`] makes a watch from a
//! channel, [`WatchHub`] keeps a bounded history for a local backend) and checks itself with
//! [`conformance`], the behavioural suite both local backends pass.
//!
//! With the cargo feature `etcd`, `EtcdStore` keeps the store in an etcd v3 cluster shared by
//! hosts (global-scope state: overlay networks): every key under a root prefix, etcd's own
//! revisions, transactions, watches and leases, a synchronous API over etcd's gRPC client that
//! runs on a thread of its own (optionally inside another network namespace), each request
//! bounded by a timeout after which it fails with [`Error::Unavailable`]. It passes the same
//! [`conformance`] suite against a real etcd.
//!
//! ```
//! use berth_store::{Event, Expect, KvStore, MemoryStore, Txn};
//! use std::time::Duration;
//!
//! let store = MemoryStore::new();
//! let listing = store.list("networks/")?;
//! // Every change after what the listing saw, in commit order.
//! let watch = store.watch("networks/", listing.revision)?;
//! let rev = store.put("networks/abc", b"{\"name\":\"isolated_nw\"}")?;
//! assert_eq!(store.get("networks/abc")?.unwrap().mod_revision, rev);
//! // Only one writer wins a compare-and-swap on the same revision.
//! store.compare_and_swap("networks/abc", Expect::Revision(rev), Some(b"{}"))?;
//! assert!(store.compare_and_swap("networks/abc", Expect::Revision(rev), None).is_err());
//! assert!(matches!(watch.try_recv(), Some(Event::Put(e)) if e.mod_revision == rev));
//!
//! // A key that lives as long as its holder keeps the lease alive.
//! let lease = store.grant_lease(Duration::from_secs(10))?;
//! store.commit(Txn::new().put_with_lease("peers/host1", b"10.0.0.1".to_vec(), lease))?;
//! store.keep_alive(lease)?;
//! store.revoke_lease(lease)?;
//! assert_eq!(store.get("peers/host1")?, None);
//! # Ok::<(), berth_store::Error>(())
//! ```

pub mod conformance;
#[cfg(feature = "etcd")]
mod etcd;
mod host_lease;
mod leases;
mod memory;
mod redb_store;
mod watch;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use host_lease::{DEFAULT_HOST_LEASE_TTL, HostLease};
pub use memory::MemoryStore;
pub use redb_store::RedbStore;
pub use watch::{Poll, Watch, WatchHub};

#[cfg(feature = "etcd")]
pub use etcd::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, DEFAULT_ROOT, EtcdConfig, EtcdStore, EtcdTls,
};

/// How many events the local backends keep for watches that start in the past, unless told
/// otherwise ([`MemoryStore::with_history`], [`RedbStore::open_with_history`]).
pub const DEFAULT_HISTORY: usize = 10_000;

/// The longest lease time to live accepted (etcd's limit: 9 000 000 000 seconds).
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(9_000_000_000);

/// The identity of a lease, given by [`KvStore::grant_lease`]. Unique within the store that
/// granted it while the lease lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub u64);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lease {:x}", self.0)
    }
}

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
    /// The lease the key is attached to (deleted when the lease ends), if any.
    pub lease: Option<LeaseId>,
}

/// What [`KvStore::list`] read: the entries under a prefix and the store revision they were
/// read at (no entry has a later `mod_revision`; a watch from `revision` continues the listing
/// with no gap and no duplicate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The entries, in key order.
    pub entries: Vec<Entry>,
    /// The store revision the entries were read at.
    pub revision: u64,
}

/// What a [`Watch`] delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The key was created or its value replaced.
    Put(Entry),
    /// The key was deleted at `revision` (by a delete, or by the end of its lease).
    Delete {
        /// The deleted key.
        key: String,
        /// The store revision of the deletion.
        revision: u64,
    },
    /// The store no longer has the changes the watch asked for (they are older than its
    /// history); the watch ends after this event. List again and watch from the listing's
    /// revision.
    Compacted {
        /// The oldest revision a watch can start after now (see [`KvStore::compact_revision`]).
        compact_revision: u64,
    },
    /// The watch broke (a backend that lost its server, for example); it ends after this event.
    /// List again and watch from the listing's revision. The local backends never send it.
    Error {
        /// What went wrong.
        message: String,
    },
}

impl Event {
    /// The key a `Put` or `Delete` is about.
    pub fn key(&self) -> Option<&str> {
        match self {
            Event::Put(e) => Some(&e.key),
            Event::Delete { key, .. } => Some(key),
            Event::Compacted { .. } | Event::Error { .. } => None,
        }
    }

    /// The store revision of a `Put` or `Delete`.
    pub fn revision(&self) -> Option<u64> {
        match self {
            Event::Put(e) => Some(e.mod_revision),
            Event::Delete { revision, .. } => Some(*revision),
            Event::Compacted { .. } | Event::Error { .. } => None,
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

/// A write inside a [`Txn`]. (Deliberately exhaustive: a backend must handle every write, so a
/// new kind of write is a compile error for it, not an op it silently drops.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create or replace the key's value; the key is no longer attached to a lease.
    Put(String, Vec<u8>),
    /// Create or replace the key's value and attach the key to a live lease (instead of any
    /// lease it had). An unknown or expired lease fails the transaction with
    /// [`Error::LeaseNotFound`].
    PutWithLease(String, Vec<u8>, LeaseId),
    /// Delete the key (no-op if absent).
    Delete(String),
}

impl Op {
    /// The key the op writes.
    pub fn key(&self) -> &str {
        match self {
            Op::Put(k, _) | Op::PutWithLease(k, _, _) | Op::Delete(k) => k,
        }
    }
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

    /// Adds a put (which detaches the key from any lease).
    pub fn put(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.ops.push(Op::Put(key.into(), value.into()));
        self
    }

    /// Adds a put that attaches the key to `lease`.
    pub fn put_with_lease(
        mut self,
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
        lease: LeaseId,
    ) -> Self {
        self.ops
            .push(Op::PutWithLease(key.into(), value.into(), lease));
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
        /// The key as given (at most its first 200 characters).
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
    /// The lease is unknown to the store: it expired, was revoked, or was never granted by it.
    /// A transaction that named it wrote nothing.
    #[error(
        "{lease} not found: it expired or was revoked; grant a new lease and put its keys again"
    )]
    LeaseNotFound {
        /// The lease.
        lease: LeaseId,
    },
    /// A lease time to live was refused.
    #[error("invalid lease time to live {ttl:?}: {reason}")]
    InvalidLeaseTtl {
        /// The time to live as given.
        ttl: Duration,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Another process (usually a second berth daemon) holds the store file open.
    #[error(
        "the store {path} is in use by another process: is another berth daemon running on the same data root?"
    )]
    Locked {
        /// The store file.
        path: PathBuf,
    },
    /// The backend failed (I/O, corruption, a refused request, ...).
    #[error("store {store}: {message}")]
    Backend {
        /// The backend and where it keeps its data (`redb /var/lib/berth/berth.redb`, `memory`,
        /// `etcd https://10.0.0.1:2379`).
        store: String,
        /// The backend's description of the failure.
        message: String,
    },
    /// The backend cannot reach its server; nothing is known to have been written. Retry later.
    /// The local backends never return it.
    #[error("store {store} is unavailable: {message}")]
    Unavailable {
        /// The backend and the server it tried.
        store: String,
        /// Why it could not reach it.
        message: String,
    },
}

/// Result alias of berth-store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 4096;

/// Checks that `key` is one a store accepts (not empty, at most [`MAX_KEY_LEN`] bytes, no NUL);
/// every backend refuses the same keys.
pub fn check_key(key: &str) -> Result<()> {
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

/// Checks that `ttl` is one a store accepts for a lease (more than zero, at most
/// [`MAX_LEASE_TTL`]); a backend with a coarser clock (etcd: whole seconds) rounds it up.
pub fn check_lease_ttl(ttl: Duration) -> Result<()> {
    let bad = |reason| Err(Error::InvalidLeaseTtl { ttl, reason });
    if ttl.is_zero() {
        return bad("a lease must live for more than zero");
    }
    if ttl > MAX_LEASE_TTL {
        return bad("a lease lives at most 9000000000 seconds");
    }
    Ok(())
}

/// The key-value interface berth keeps its state in. Implementations are `Send + Sync`; every method
/// is atomic on its own.
///
/// [`conformance::check_store`] is the behaviour every implementation owes; a backend outside this
/// crate runs it in its tests.
pub trait KvStore: Send + Sync {
    /// The value of `key`, if present.
    fn get(&self, key: &str) -> Result<Option<Entry>>;

    /// Every entry whose key starts with `prefix`, in key order (`""` lists everything), and the
    /// store revision they were read at.
    fn list(&self, prefix: &str) -> Result<Listing>;

    /// Applies a transaction atomically; returns the store revision after it (unchanged when it has
    /// no ops). Keys are checked first ([`Error::InvalidKey`]), then conditions
    /// ([`Error::Conflict`]), then leases ([`Error::LeaseNotFound`]); on any error nothing is
    /// written.
    fn commit(&self, txn: Txn) -> Result<u64>;

    /// Watches the changes to keys under `prefix` made at revisions after `after_revision`, in
    /// commit order, each once: first those already made (replayed from the store's history),
    /// then live ones as they are committed. `after_revision` may be in the future (the watch
    /// then starts with the first change after it). If the history no longer reaches back to
    /// `after_revision + 1` (it is below [`KvStore::compact_revision`]), the watch delivers
    /// [`Event::Compacted`] and ends. Dropping the [`Watch`] ends it.
    fn watch(&self, prefix: &str, after_revision: u64) -> Result<Watch>;

    /// The current store revision (0 for a new local store).
    fn revision(&self) -> Result<u64>;

    /// The oldest revision a watch can start after: [`KvStore::watch`] replays the changes made
    /// after any `after_revision >= compact_revision()`. (For etcd, whose compact revision is the
    /// oldest revision still readable, this is that revision minus one.)
    fn compact_revision(&self) -> Result<u64>;

    /// Grants a lease that lives `ttl` from now unless kept alive. A backend with a coarser
    /// clock rounds `ttl` up ([`KvStore::keep_alive`] tells the ttl granted). A zero or
    /// too long `ttl` is refused with [`Error::InvalidLeaseTtl`].
    fn grant_lease(&self, ttl: Duration) -> Result<LeaseId>;

    /// Makes `lease` live its full time to live again from now; returns that time to live.
    /// [`Error::LeaseNotFound`] if it expired, was revoked or is unknown.
    fn keep_alive(&self, lease: LeaseId) -> Result<Duration>;

    /// Ends `lease` now: its keys are deleted at one revision (watchers see a `Delete` for
    /// each). [`Error::LeaseNotFound`] if it already ended or is unknown.
    fn revoke_lease(&self, lease: LeaseId) -> Result<()>;

    /// Creates or replaces `key` (detaching it from any lease); returns the new revision.
    fn put(&self, key: &str, value: &[u8]) -> Result<u64> {
        self.commit(Txn::new().put(key, value))
    }

    /// Creates or replaces `key` and attaches it to `lease`; returns the new revision.
    fn put_with_lease(&self, key: &str, value: &[u8], lease: LeaseId) -> Result<u64> {
        self.commit(Txn::new().put_with_lease(key, value, lease))
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

/// Checks a transaction before it is applied, in the order [`KvStore::commit`] documents:
/// every key, then the conditions against a lookup of current mod revisions, then that every
/// lease named is live.
pub(crate) fn check_txn(
    txn: &Txn,
    mut current: impl FnMut(&str) -> Result<Option<u64>>,
    lease_live: impl Fn(LeaseId) -> bool,
) -> Result<()> {
    for (key, _) in &txn.conditions {
        check_key(key)?;
    }
    for op in &txn.ops {
        check_key(op.key())?;
    }
    for (key, expect) in &txn.conditions {
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
        if let Op::PutWithLease(_, _, lease) = op {
            if !lease_live(*lease) {
                return Err(Error::LeaseNotFound { lease: *lease });
            }
        }
    }
    Ok(())
}

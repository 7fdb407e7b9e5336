//! One lease per host (or per process) in a shared store: the keys a host publishes for the
//! others (its endpoints, their names) live under it, so that they go when the host dies, and
//! are put again under a new lease when the old one was lost (the host was cut off for longer
//! than the time to live).
//!
//! Several publishers of one host share one lease (the controller and the overlay driver): each
//! keeps it alive from its own thread, and [`HostLease::renew`] asks the store only when nobody
//! did for most of a renewal period, so two sharers cost the store what one does. Each sharer
//! notices a lost lease by its [`HostLease::generation`], whoever found the loss.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Error, KvStore, LeaseId, Result};

/// How long a host's published keys outlive its last word to the store, unless told otherwise.
pub const DEFAULT_HOST_LEASE_TTL: Duration = Duration::from_secs(10);

/// A host's lease: granted on first use, kept alive by [`HostLease::renew`] (call it every third
/// of the time to live), and granted anew after it was lost.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use berth_store::{HostLease, KvStore, MemoryStore, Txn};
///
/// let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
/// let lease = HostLease::new(store.clone(), Duration::from_secs(10));
/// let id = lease.current()?;
/// store.commit(Txn::new().put_with_lease("peers/host1", b"10.0.0.1".to_vec(), id))?;
/// assert!(lease.renew()?, "still alive: nothing to put again");
/// # Ok::<(), berth_store::Error>(())
/// ```
pub struct HostLease {
    store: Arc<dyn KvStore>,
    ttl: Duration,
    id: Mutex<Option<LeaseId>>,
    /// When the store last confirmed the lease alive (see [`HostLease::renew`]).
    renewed: Mutex<Option<Instant>>,
    /// Leases granted and lost so far (see [`HostLease::generation`]).
    generation: AtomicU64,
}

impl std::fmt::Debug for HostLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostLease")
            .field("ttl", &self.ttl)
            .field("id", &*self.id.lock().unwrap_or_else(|p| p.into_inner()))
            .finish_non_exhaustive()
    }
}

impl HostLease {
    /// A lease of `ttl` in `store`, not granted yet.
    pub fn new(store: Arc<dyn KvStore>, ttl: Duration) -> HostLease {
        HostLease {
            store,
            ttl,
            id: Mutex::new(None),
            renewed: Mutex::new(None),
            generation: AtomicU64::new(0),
        }
    }

    /// Its time to live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The live lease, granted if there is none.
    pub fn current(&self) -> Result<LeaseId> {
        let mut id = self.id.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = *id {
            return Ok(l);
        }
        let l = self.store.grant_lease(self.ttl)?;
        *id = Some(l);
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(l)
    }

    /// How many times a lease was granted or found lost so far (0: never granted). It changes
    /// whenever keys put under the lease are gone, whichever sharer found the loss, and again
    /// when a new lease is granted. A publisher remembers the generation it put its keys under
    /// and puts them again when it changed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The renewal period sharers keep to: a third of the time to live.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// Keeps the lease alive; call it every [`HostLease::renew_every`]. `Ok(false)` when it was
    /// lost (it expired): the next [`HostLease::current`] grants a new one, and the caller puts
    /// its keys again. When the store confirmed the lease less than 90% of a renewal period ago
    /// (a sharer renewed it), the store is not asked again: with sharers renewing on their own
    /// schedules, the lease is still renewed at least every 1.9 periods (well within its time
    /// to live), and about once per period in all.
    pub fn renew(&self) -> Result<bool> {
        let Some(l) = *self.id.lock().unwrap_or_else(|p| p.into_inner()) else {
            return Ok(true);
        };
        let recent = self.renew_every().mul_f64(0.9);
        let fresh = self
            .renewed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < recent);
        if fresh {
            return Ok(true);
        }
        match self.store.keep_alive(l) {
            Ok(_) => {
                *self.renewed.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                Ok(true)
            }
            Err(Error::LeaseNotFound { .. }) => {
                self.forget(l);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// One turn of a sharer's keeper, every [`HostLease::renew_every`]: renews the lease, and
    /// when the keys this sharer put under generation `*put_under` are gone (a loss that any
    /// sharer found), calls `put_again`; when that succeeds (returns true), `*put_under` becomes
    /// the generation read before it, so that a lease granted while putting makes the next turn
    /// put once more, never miss a key. A failed `put_again` is called again next turn. Start
    /// with the generation the keys were first put under (0: none yet; the first grant is then
    /// no loss). Returns the renewal's error, if any.
    pub fn keep(&self, put_under: &mut u64, put_again: impl FnOnce() -> bool) -> Result<()> {
        let renewed = self.renew();
        let now = self.generation();
        if *put_under == 0 && now == 1 {
            *put_under = now;
        }
        if now != *put_under && put_again() {
            *put_under = now;
        }
        renewed.map(|_| ())
    }

    /// Forgets lease `l` when the store said it is gone (a transaction that attached a key to it
    /// failed with [`Error::LeaseNotFound`]): the next [`HostLease::current`] grants a new one.
    pub fn forget(&self, l: LeaseId) {
        let mut id = self.id.lock().unwrap_or_else(|p| p.into_inner());
        if *id == Some(l) {
            *id = None;
            *self.renewed.lock().unwrap_or_else(|p| p.into_inner()) = None;
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Revokes the lease now (its keys go at once), if one was granted.
    pub fn revoke(&self) -> Result<()> {
        let l = self.id.lock().unwrap_or_else(|p| p.into_inner()).take();
        match l {
            Some(l) => match self.store.revoke_lease(l) {
                Ok(()) | Err(Error::LeaseNotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            },
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{MemoryStore, Txn};

    #[test]
    fn a_lost_lease_is_granted_anew_and_its_keys_go() {
        let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let lease = HostLease::new(store.clone(), Duration::from_secs(1));
        assert!(lease.renew().unwrap(), "nothing granted: nothing lost");
        let first = lease.current().unwrap();
        assert_eq!(lease.current().unwrap(), first, "one lease while it lives");
        store
            .commit(Txn::new().put_with_lease("k", b"v".to_vec(), first))
            .unwrap();
        store.revoke_lease(first).unwrap();
        assert!(store.get("k").unwrap().is_none());
        assert!(!lease.renew().unwrap(), "lost");
        let second = lease.current().unwrap();
        assert_ne!(second, first);
        lease.forget(first);
        assert_eq!(
            lease.current().unwrap(),
            second,
            "forgetting another is a no-op"
        );
        store
            .commit(Txn::new().put_with_lease("k", b"v".to_vec(), second))
            .unwrap();
        lease.revoke().unwrap();
        assert!(store.get("k").unwrap().is_none(), "revoked with its keys");
        lease.revoke().unwrap();
    }

    /// A store that counts keep-alives.
    struct Counting {
        inner: MemoryStore,
        keep_alives: std::sync::atomic::AtomicUsize,
    }

    impl KvStore for Counting {
        fn get(&self, key: &str) -> Result<Option<crate::Entry>> {
            self.inner.get(key)
        }
        fn list(&self, prefix: &str) -> Result<crate::Listing> {
            self.inner.list(prefix)
        }
        fn commit(&self, txn: Txn) -> Result<u64> {
            self.inner.commit(txn)
        }
        fn watch(&self, prefix: &str, after: u64) -> Result<crate::Watch> {
            self.inner.watch(prefix, after)
        }
        fn revision(&self) -> Result<u64> {
            self.inner.revision()
        }
        fn compact_revision(&self) -> Result<u64> {
            self.inner.compact_revision()
        }
        fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
            self.inner.grant_lease(ttl)
        }
        fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
            self.keep_alives.fetch_add(1, Ordering::SeqCst);
            self.inner.keep_alive(lease)
        }
        fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
            self.inner.revoke_lease(lease)
        }
    }

    #[test]
    fn sharers_renew_once_per_period_and_see_a_loss_by_the_generation() {
        let counting = Arc::new(Counting {
            inner: MemoryStore::new(),
            keep_alives: Default::default(),
        });
        let store: Arc<dyn KvStore> = counting.clone();
        let lease = HostLease::new(store.clone(), Duration::from_secs(30));
        assert_eq!(lease.generation(), 0);
        let first = lease.current().unwrap();
        assert_eq!(lease.generation(), 1);
        // Two sharers renewing one after the other: the store is asked once.
        assert!(lease.renew().unwrap());
        assert!(lease.renew().unwrap());
        assert_eq!(counting.keep_alives.load(Ordering::SeqCst), 1);
        // Lost: the sharer that finds out forgets it, and the generation changes at once, so a
        // sharer with nothing to put (no new grant) still tells the others.
        store.revoke_lease(first).unwrap();
        lease.forget(first);
        assert_eq!(
            lease.generation(),
            2,
            "a sharer that published under 1 puts again"
        );
        let second = lease.current().unwrap();
        assert_ne!(second, first);
        assert_eq!(
            lease.generation(),
            3,
            "and a new lease is another generation"
        );
        // A new lease is confirmed by the store at its first renewal.
        assert!(lease.renew().unwrap());
        assert_eq!(counting.keep_alives.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_keeper_puts_again_once_per_loss_and_not_after_the_first_grant() {
        let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let lease = HostLease::new(store.clone(), Duration::from_secs(30));
        let mut put_under = 0;
        let mut puts = 0;
        let mut turn = |put_under: &mut u64, ok: bool| {
            lease
                .keep(put_under, || {
                    puts += 1;
                    ok
                })
                .unwrap();
        };
        turn(&mut put_under, true);
        assert_eq!(put_under, 0, "nothing granted, nothing to put");
        let first = lease.current().unwrap();
        turn(&mut put_under, true);
        assert_eq!(put_under, 1, "the first grant is no loss");
        // Lost (a sharer found it): put again; a failed put is tried again next turn.
        store.revoke_lease(first).unwrap();
        lease.forget(first);
        turn(&mut put_under, false);
        assert_eq!(put_under, 1);
        turn(&mut put_under, true);
        assert_eq!(put_under, 2);
        turn(&mut put_under, true);
        assert_eq!(puts, 2, "once per loss, once more for the failure");
    }
}

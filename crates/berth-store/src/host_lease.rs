//! One lease per host (or per process) in a shared store: the keys a host publishes for the
//! others (its endpoints, their names) live under it, so that they go when the host dies, and
//! are put again under a new lease when the old one was lost (the host was cut off for longer
//! than the time to live).

use std::sync::{Arc, Mutex};
use std::time::Duration;

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
        Ok(l)
    }

    /// Keeps the lease alive. `Ok(false)` when it was lost (it expired): the next
    /// [`HostLease::current`] grants a new one, and the caller puts its keys again.
    pub fn renew(&self) -> Result<bool> {
        let Some(l) = *self.id.lock().unwrap_or_else(|p| p.into_inner()) else {
            return Ok(true);
        };
        match self.store.keep_alive(l) {
            Ok(_) => Ok(true),
            Err(Error::LeaseNotFound { .. }) => {
                self.forget(l);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Forgets lease `l` when the store said it is gone (a transaction that attached a key to it
    /// failed with [`Error::LeaseNotFound`]): the next [`HostLease::current`] grants a new one.
    pub fn forget(&self, l: LeaseId) {
        let mut id = self.id.lock().unwrap_or_else(|p| p.into_inner());
        if *id == Some(l) {
            *id = None;
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
}

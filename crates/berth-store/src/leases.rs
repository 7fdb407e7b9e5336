//! Leases of the local backends, held in memory (they belong to the process), and the thread
//! that ends them on time.

use std::collections::{BTreeSet, HashMap};
use std::sync::Weak;
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{Error, LeaseId, Result, check_lease_ttl};

/// How often the reaper looks for expired leases.
const REAP_TICK: Duration = Duration::from_millis(50);

#[derive(Debug)]
struct Lease {
    ttl: Duration,
    deadline: Instant,
    keys: BTreeSet<String>,
}

/// The live leases of one store and the keys attached to each.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    last_id: u64,
    leases: HashMap<LeaseId, Lease>,
}

impl Leases {
    /// A new lease living `ttl` from `now`.
    pub(crate) fn grant(&mut self, ttl: Duration, now: Instant) -> Result<LeaseId> {
        check_lease_ttl(ttl)?;
        let deadline = now.checked_add(ttl).ok_or(Error::InvalidLeaseTtl {
            ttl,
            reason: "the lease would end after the end of this system's clock",
        })?;
        self.last_id += 1;
        let id = LeaseId(self.last_id);
        self.leases.insert(
            id,
            Lease {
                ttl,
                deadline,
                keys: BTreeSet::new(),
            },
        );
        Ok(id)
    }

    /// Whether `lease` is known and has not passed its deadline at `now`.
    pub(crate) fn is_live(&self, lease: LeaseId, now: Instant) -> bool {
        self.leases.get(&lease).is_some_and(|l| now < l.deadline)
    }

    /// Renews a live lease from `now`; returns its ttl.
    pub(crate) fn keep_alive(&mut self, lease: LeaseId, now: Instant) -> Result<Duration> {
        match self.leases.get_mut(&lease) {
            Some(l) if now < l.deadline => {
                // `grant` checked that `now + ttl` fits for an earlier `now`; a later one that
                // does not keeps the old deadline (centuries away).
                if let Some(deadline) = now.checked_add(l.ttl) {
                    l.deadline = deadline;
                }
                Ok(l.ttl)
            }
            _ => Err(Error::LeaseNotFound { lease }),
        }
    }

    /// Removes a live lease; returns its keys.
    pub(crate) fn revoke(&mut self, lease: LeaseId, now: Instant) -> Result<BTreeSet<String>> {
        if !self.is_live(lease, now) {
            return Err(Error::LeaseNotFound { lease });
        }
        Ok(self
            .leases
            .remove(&lease)
            .map(|l| l.keys)
            .unwrap_or_default())
    }

    /// Whether some lease passed its deadline at `now`.
    pub(crate) fn any_expired(&self, now: Instant) -> bool {
        self.leases.values().any(|l| now >= l.deadline)
    }

    /// Removes the leases that passed their deadline at `now`; returns each with its keys.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Vec<(LeaseId, BTreeSet<String>)> {
        let expired: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, l)| now >= l.deadline)
            .map(|(id, _)| *id)
            .collect();
        let mut out: Vec<_> = expired
            .into_iter()
            .filter_map(|id| self.leases.remove(&id).map(|l| (id, l.keys)))
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Records that `key` is attached to `lease` (no-op for a lease that is gone).
    pub(crate) fn attach(&mut self, key: &str, lease: LeaseId) {
        if let Some(l) = self.leases.get_mut(&lease) {
            l.keys.insert(key.to_owned());
        }
    }

    /// Records that `key` is no longer attached to `lease`.
    pub(crate) fn detach(&mut self, key: &str, lease: LeaseId) {
        if let Some(l) = self.leases.get_mut(&lease) {
            l.keys.remove(key);
        }
    }
}

/// A thread that calls `reap` on a store's shared state every [`REAP_TICK`] while the state
/// lives, so that leases expire without other calls. Dropping the reaper stops and joins the
/// thread (it holds only a weak reference, upgraded for the length of one `reap`), so when the
/// store's drop returns, its state is gone too (a redb file is closed).
#[derive(Debug)]
pub(crate) struct Reaper {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    /// Starts the reaper in `slot` unless one runs there already (a store starts it with its
    /// first lease); `store` names the backend in the error if it cannot be started.
    pub(crate) fn ensure<T: Send + Sync + 'static>(
        slot: &std::sync::Mutex<Option<Reaper>>,
        state: Weak<T>,
        reap: fn(&T),
        store: impl FnOnce() -> String,
    ) -> Result<()> {
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(Reaper::spawn(state, reap, store())?);
        }
        Ok(())
    }

    /// Starts the thread; `store` names the backend in the error if it cannot be started.
    pub(crate) fn spawn<T: Send + Sync + 'static>(
        state: Weak<T>,
        reap: fn(&T),
        store: String,
    ) -> Result<Reaper> {
        let (stop, stopped) = channel::<()>();
        let thread = std::thread::Builder::new()
            .name("berth-store-leases".to_owned())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(REAP_TICK) {
                    let Some(state) = state.upgrade() else { break };
                    reap(&state);
                }
            })
            .map_err(|e| Error::Backend {
                store,
                message: format!("cannot start the lease expiry thread: {e}"),
            })?;
        Ok(Reaper {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A panic in the thread was already reported by the panic hook.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_lease_lives_until_its_deadline_and_keep_alive_moves_it() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut leases = Leases::default();
        let id = leases.grant(ttl, t0).unwrap();
        leases.attach("a", id);
        assert!(leases.is_live(id, t0 + Duration::from_secs(9)));
        assert!(!leases.is_live(id, t0 + ttl));
        assert_eq!(
            leases.keep_alive(id, t0 + Duration::from_secs(9)).unwrap(),
            ttl
        );
        assert!(!leases.any_expired(t0 + Duration::from_secs(18)));
        assert!(leases.any_expired(t0 + Duration::from_secs(19)));
        assert!(matches!(
            leases.keep_alive(id, t0 + Duration::from_secs(19)),
            Err(Error::LeaseNotFound { lease }) if lease == id
        ));
        let expired = leases.take_expired(t0 + Duration::from_secs(19));
        assert_eq!(expired, [(id, BTreeSet::from(["a".to_owned()]))]);
        assert!(matches!(
            leases.revoke(id, t0),
            Err(Error::LeaseNotFound { .. })
        ));
    }

    #[test]
    fn the_reaper_ticks_while_the_state_lives_and_stops_when_dropped() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        fn count(n: &AtomicUsize) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        let state = Arc::new(AtomicUsize::new(0));
        let reaper = Reaper::spawn(Arc::downgrade(&state), count, "test".into()).unwrap();
        let t = Instant::now();
        while state.load(Ordering::Relaxed) < 2 {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "the reaper does not tick"
            );
            std::thread::sleep(REAP_TICK);
        }
        // Dropping it stops the thread (woken, not left to its next tick) and joins it.
        let t = Instant::now();
        drop(reaper);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(Arc::strong_count(&state), 1);

        // Without its state the thread ends by itself.
        let state = Arc::new(AtomicUsize::new(0));
        let mut reaper = Reaper::spawn(Arc::downgrade(&state), count, "test".into()).unwrap();
        drop(state);
        let thread = reaper.thread.take().unwrap();
        let t = Instant::now();
        while !thread.is_finished() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "the reaper outlives its state"
            );
            std::thread::sleep(REAP_TICK);
        }
    }

    #[test]
    fn bad_ttls_are_refused() {
        let mut leases = Leases::default();
        let now = Instant::now();
        assert!(matches!(
            leases.grant(Duration::ZERO, now),
            Err(Error::InvalidLeaseTtl { .. })
        ));
        assert!(matches!(
            leases.grant(Duration::MAX, now),
            Err(Error::InvalidLeaseTtl { .. })
        ));
    }
}

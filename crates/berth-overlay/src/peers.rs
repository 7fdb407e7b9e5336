//! The driver's two threads: the peer table's watcher (the store's `overlay/peer/` entries,
//! programmed into the data path of each network that has one on this host) and the lease
//! keeper (keeps this host's lease alive, puts its entries again when the lease was lost, and
//! retries removals the store refused). And the clean-up after a restart.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use berth_driver::{DriverError, EndpointId, NetworkId, Result};
use berth_store::{Entry, Event, Poll};

use crate::cluster::{PEER_PREFIX, PeerRecord, parse_peer_key, peer_key};
use crate::datapath::{DataPath, NETNS_PREFIX};
use crate::{Inner, PeerStats, lock};

/// How long the threads wait between tries while the store cannot be reached.
const RETRY: Duration = Duration::from_millis(500);
/// How long a watch is polled before the thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(200);

/// What the kernel calls that program and remove remote endpoints cost on this host, summed
/// (read by [`crate::OverlayDriver::peer_stats`]). Four relaxed atomics and two clock reads per
/// endpoint programmed or removed: cheap next to the netlink round trips they measure.
#[derive(Debug, Default)]
pub(crate) struct PeerCounters {
    programmed: AtomicU64,
    program_ns: AtomicU64,
    unprogrammed: AtomicU64,
    unprogram_ns: AtomicU64,
}

impl PeerCounters {
    pub(crate) fn snapshot(&self) -> PeerStats {
        let ns = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed));
        PeerStats {
            programmed: self.programmed.load(Ordering::Relaxed),
            program_time: ns(&self.program_ns),
            unprogrammed: self.unprogrammed.load(Ordering::Relaxed),
            unprogram_time: ns(&self.unprogram_ns),
        }
    }

    fn add(count: &AtomicU64, total: &AtomicU64, since: Instant) {
        let spent = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        count.fetch_add(1, Ordering::Relaxed);
        total.fetch_add(spent, Ordering::Relaxed);
    }
}

pub(crate) fn start_threads(inner: &Arc<Inner>) -> Result<()> {
    let spawn = |name: &str, f: fn(Weak<Inner>)| {
        let weak = Arc::downgrade(inner);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || f(weak))
            .map(|_| ())
            .map_err(|e| DriverError::Internal {
                driver: crate::DRIVER_NAME,
                message: format!("starting the {name} thread: {e}"),
            })
    };
    spawn("overlay-peers", watch_peers)?;
    spawn("overlay-lease", keep_lease)
}

/// Sleeps `d`, in steps, unless the driver is gone or stopped; false then.
fn pause(weak: &Weak<Inner>, d: Duration) -> bool {
    let step = Duration::from_millis(100).min(d);
    let mut slept = Duration::ZERO;
    while slept < d {
        std::thread::sleep(step);
        slept += step;
        match weak.upgrade() {
            Some(i) if !i.stop.load(Ordering::Relaxed) => {}
            _ => return false,
        }
    }
    true
}

fn live(weak: &Weak<Inner>) -> Option<Arc<Inner>> {
    weak.upgrade().filter(|i| !i.stop.load(Ordering::Relaxed))
}

/// Lists the peer table, then follows it: from the listing's revision, resuming from the last
/// revision seen when the watch breaks (the store restarted, the connection dropped), and
/// listing again only when the store compacted what the watch would need.
fn watch_peers(weak: Weak<Inner>) {
    'list: loop {
        let Some(inner) = live(&weak) else { return };
        let listing = match inner.store.list(PEER_PREFIX) {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "listing the overlay peer table; retrying");
                drop(inner);
                if !pause(&weak, RETRY) {
                    return;
                }
                continue;
            }
        };
        inner.resync(&listing.entries);
        let mut seen = listing.revision;
        drop(inner);
        loop {
            let Some(inner) = live(&weak) else { return };
            let watch = match inner.store.watch(PEER_PREFIX, seen) {
                Ok(w) => w,
                Err(e) => {
                    tracing::debug!(error = %e, "watching the overlay peer table; retrying");
                    drop(inner);
                    if !pause(&weak, RETRY) {
                        return;
                    }
                    continue;
                }
            };
            drop(inner);
            loop {
                let polled = watch.poll(POLL);
                let Some(inner) = live(&weak) else { return };
                match polled {
                    Poll::Idle => {}
                    Poll::Event(Event::Compacted { .. }) => continue 'list,
                    Poll::Event(Event::Error { message }) => {
                        tracing::warn!(%message, "the overlay peer watch broke; resuming from revision {seen}");
                        break;
                    }
                    Poll::Event(e) => {
                        if let Some(r) = e.revision() {
                            seen = seen.max(r);
                        }
                        inner.apply(&e);
                    }
                    Poll::Ended => break,
                }
            }
            if !pause(&weak, Duration::from_millis(50)) {
                return;
            }
        }
    }
}

/// Keeps the host's lease alive (three renewals per time to live), puts this host's entries
/// again after a loss, whichever sharer of the lease found it ([`berth_store::HostLease::keep`]), and retries
/// removals.
fn keep_lease(weak: Weak<Inner>) {
    let (period, mut put_under) = match live(&weak) {
        Some(i) => (
            i.lease.renew_every().max(Duration::from_millis(100)),
            i.lease.generation(),
        ),
        None => return,
    };
    while pause(&weak, period) {
        let Some(inner) = live(&weak) else { return };
        let kept = inner.lease.keep(&mut put_under, || {
            let mine: Vec<_> = lock(&inner.published)
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            tracing::warn!(
                entries = mine.len(),
                "the overlay lease was lost; publishing again"
            );
            let mut all = true;
            for ((net, ep), rec) in mine {
                if let Err(e) = inner.publish(&net, &ep, &rec) {
                    tracing::warn!(endpoint = %ep.short(), error = %e, "publishing again");
                    all = false;
                }
            }
            all
        });
        if let Err(e) = kept {
            tracing::debug!(error = %e, "renewing the overlay lease");
        }
        let pending = std::mem::take(&mut *lock(&inner.unpublish));
        for (net, ep) in pending {
            if lock(&inner.published).contains_key(&(net.clone(), ep.clone())) {
                continue;
            }
            if inner.store.delete(&peer_key(&net, &ep)).is_err() {
                lock(&inner.unpublish).push((net, ep));
            }
        }
    }
}

impl Inner {
    /// One change of the peer table: recorded, then programmed where the network has a data
    /// path on this host (this host's own endpoints need nothing: they are on its bridge).
    fn apply(&self, event: &Event) {
        match event {
            Event::Put(entry) => {
                let Some((net, ep, rec)) = decode(entry) else {
                    return;
                };
                lock(&self.peers)
                    .entry(net.clone())
                    .or_default()
                    .insert(ep.clone(), rec.clone());
                if rec.vtep != self.config.advertise {
                    self.with_datapath(&net, |dp| self.program_peer(dp, &ep, &rec));
                }
            }
            Event::Delete { key, .. } => {
                let Some((net, ep)) = parse_peer_key(key) else {
                    return;
                };
                if let Some(eps) = lock(&self.peers).get_mut(&net) {
                    eps.remove(&ep);
                }
                self.with_datapath(&net, |dp| self.forget_peer(dp, &ep));
            }
            _ => {}
        }
    }

    /// The whole table again (after a start or a compaction): every data path is brought to it.
    fn resync(&self, entries: &[Entry]) {
        let mut table: HashMap<NetworkId, HashMap<EndpointId, PeerRecord>> = HashMap::new();
        for e in entries {
            if let Some((net, ep, rec)) = decode(e) {
                table.entry(net).or_default().insert(ep, rec);
            }
        }
        *lock(&self.peers) = table.clone();
        let nets: Vec<NetworkId> = self
            .networks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for net in nets {
            let want = table.remove(&net).unwrap_or_default();
            self.with_datapath(&net, |dp| {
                let stale: Vec<EndpointId> = dp
                    .programmed
                    .keys()
                    .filter(|ep| !want.contains_key(*ep))
                    .cloned()
                    .collect();
                for ep in stale {
                    self.forget_peer(dp, &ep);
                }
                for (ep, rec) in &want {
                    if rec.vtep != self.config.advertise {
                        self.program_peer(dp, ep, rec);
                    }
                }
            });
        }
    }

    /// Programs a remote endpoint into a data path (nothing when it is programmed as it is
    /// already), timed in the peer counters; a failure is logged.
    pub(crate) fn program_peer(&self, dp: &mut DataPath, ep: &EndpointId, rec: &PeerRecord) {
        if dp.programmed.get(ep) == Some(rec) {
            return;
        }
        let c = &self.peer_counters;
        let start = Instant::now();
        let done = dp.program(ep, rec);
        PeerCounters::add(&c.programmed, &c.program_ns, start);
        if let Err(e) = done {
            tracing::warn!(endpoint = %ep.short(), error = %e, "programming a remote endpoint");
        }
    }

    /// Removes a remote endpoint's entries from a data path (nothing when it has none), timed
    /// in the peer counters.
    fn forget_peer(&self, dp: &mut DataPath, ep: &EndpointId) {
        if !dp.programmed.contains_key(ep) {
            return;
        }
        let c = &self.peer_counters;
        let start = Instant::now();
        dp.forget(ep);
        PeerCounters::add(&c.unprogrammed, &c.unprogram_ns, start);
    }

    fn with_datapath(&self, net: &NetworkId, f: impl FnOnce(&mut DataPath)) {
        let Ok(n) = self.network(net) else {
            return;
        };
        if let Some(dp) = lock(&n.datapath).as_mut() {
            f(dp);
        }
    }
}

fn decode(entry: &Entry) -> Option<(NetworkId, EndpointId, PeerRecord)> {
    let (net, ep) = parse_peer_key(&entry.key)?;
    match PeerRecord::decode(&entry.value) {
        Some(rec) => Some((net, ep, rec)),
        None => {
            tracing::warn!(key = %entry.key, "ignoring an unreadable overlay peer entry");
            None
        }
    }
}

/// After a restart, once every stored network and endpoint was handed to the driver again:
/// removes the namespaces of networks it no longer has, and this host's entries in the peer
/// table for endpoints it no longer has (a previous run's, whose lease may still live).
pub(crate) fn remove_orphans(inner: &Inner) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let known: HashSet<String> = inner
        .networks
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .map(crate::datapath::netns_name)
        .collect();
    if let Ok(dir) = std::fs::read_dir(&inner.config.netns_dir) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(NETNS_PREFIX) || known.contains(&name) {
                continue;
            }
            let path = entry.path();
            if let Ok(ns) = berth_netlink::Netns::open(&path) {
                if let Ok(nl) = berth_netlink::Handle::open(&ns) {
                    let _ = nl.link_delete(crate::datapath::VXLAN);
                }
            }
            match berth_netlink::Netns::delete_named_in(&inner.config.netns_dir, &name) {
                Ok(_) => removed.push(format!("overlay namespace {name}")),
                Err(e) => {
                    tracing::warn!(%name, error = %e, "removing a leftover overlay namespace")
                }
            }
        }
    }
    let listing = inner
        .store
        .list(PEER_PREFIX)
        .map_err(|e| DriverError::store("listing the overlay peer table", e))?;
    let published = lock(&inner.published);
    let stale: Vec<String> = listing
        .entries
        .iter()
        .filter_map(|e| decode(e).map(|d| (e.key.clone(), d)))
        .filter(|(_, (net, ep, rec))| {
            rec.vtep == inner.config.advertise
                && !published.contains_key(&(net.clone(), ep.clone()))
        })
        .map(|(k, _)| k)
        .collect();
    drop(published);
    for key in stale {
        match inner.store.delete(&key) {
            Ok(_) => removed.push(format!("peer entry {key}")),
            Err(e) => tracing::warn!(%key, error = %e, "removing a stale peer entry"),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_counters_add_up() {
        let c = PeerCounters::default();
        assert_eq!(c.snapshot(), PeerStats::default());
        let long_ago = Instant::now() - Duration::from_millis(2);
        PeerCounters::add(&c.programmed, &c.program_ns, long_ago);
        PeerCounters::add(&c.programmed, &c.program_ns, Instant::now());
        PeerCounters::add(&c.unprogrammed, &c.unprogram_ns, Instant::now());
        let s = c.snapshot();
        assert_eq!((s.programmed, s.unprogrammed), (2, 1));
        assert!(s.program_time >= Duration::from_millis(2), "{s:?}");
        assert!(s.unprogram_time < s.program_time, "{s:?}");
    }
}

//! Global-scope networks: their records in the cluster store, learned from it at start and by
//! watching it while running (created or removed on another host), the fence between a removal
//! on one host and a connect on another, and the marks of which hosts have endpoints on them.

use std::sync::Weak;
use std::time::Duration;

use berth_driver::Scope;
use berth_store::{Entry, Event, Poll};

use super::*;

/// Removes a global network's id from [`Cluster::creating`] when its creation ends, whichever
/// way.
pub(super) struct Creating<'a> {
    cluster: Option<&'a Cluster>,
    id: NetworkId,
}

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.cluster {
            lock(&c.creating).remove(&self.id);
        }
    }
}

/// How a global network comes to this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// It was in the cluster store when this controller started.
    Restored,
    /// Another host created it while this controller ran.
    Learned,
}

impl Controller {
    /// Marks a global network as being created here until the guard drops, so that this
    /// controller's own watch does not take it for one created elsewhere.
    pub(super) fn creating(&self, id: &NetworkId, scope: Scope) -> Creating<'_> {
        let cluster = match scope {
            Scope::Global => self.inner.cluster.as_ref(),
            Scope::Local => None,
        };
        if let Some(c) = cluster {
            lock(&c.creating).insert(id.clone());
        }
        Creating {
            cluster,
            id: id.clone(),
        }
    }

    /// Holds a global network for its removal (one store key, taken only while the network's
    /// record is there and no other removal holds it), then checks that no host has an endpoint
    /// on it. A connect on any host checks the hold is absent in the same transaction that marks
    /// its endpoint, so a removal and a connect never both succeed. Taken again by the same
    /// instance, the hold is kept (a removal asked again after a failure).
    pub(super) fn hold_global_removal(&self, net: &Network) -> Result<()> {
        let cs = &self.cluster()?.store;
        let id = &net.record.id;
        let hold = network_removal_key(id);
        let txn = Txn::new()
            .when(network_key(id), Expect::Present)
            .when(hold.clone(), Expect::Absent)
            .put(hold.clone(), self.inner.instance.as_bytes().to_vec());
        match cs.commit(txn) {
            Ok(_) => {}
            Err(berth_store::Error::Conflict { key, .. }) if key == hold => {
                let mine = cs
                    .get(&hold)?
                    .is_some_and(|e| e.value == self.inner.instance.as_bytes());
                if !mine {
                    return Err(Error::InvalidRequest(format!(
                        "network {} is being removed by another host",
                        net.record.name
                    )));
                }
            }
            Err(berth_store::Error::Conflict { .. }) => {
                return Err(Error::NetworkNotFound(net.record.name.clone()));
            }
            Err(e) => return Err(e.into()),
        }
        let endpoints = cs.list(&network_endpoints_prefix(id))?.entries;
        if !endpoints.is_empty() {
            let _ = cs.delete(&hold);
            return Err(Error::ActiveEndpoints {
                name: net.record.name.clone(),
                id: id.short().to_owned(),
            });
        }
        Ok(())
    }

    /// Marks endpoint `ep` of this host on a global network in the cluster store, unless the
    /// network is gone or held for removal (then it is not found, as Docker says of a network
    /// removed under a connect).
    pub(super) fn mark_global_endpoint(&self, net: &Network, ep: &EndpointId) -> Result<()> {
        if net.record.scope != Scope::Global {
            return Ok(());
        }
        let id = &net.record.id;
        // Under this host's lease: a host that dies does not hold the network forever.
        let txn = |lease| {
            Txn::new()
                .when(network_key(id), Expect::Present)
                .when(network_removal_key(id), Expect::Absent)
                .put_with_lease(
                    network_endpoint_key(id, ep),
                    self.inner.instance.as_bytes().to_vec(),
                    lease,
                )
        };
        match self.commit_leased(txn) {
            Ok(()) => Ok(()),
            Err(Error::Store(berth_store::Error::Conflict { .. })) => {
                Err(Error::NetworkNotFound(net.record.name.clone()))
            }
            Err(e) => Err(e),
        }
    }

    /// Takes the mark of [`Controller::mark_global_endpoint`] away.
    pub(super) fn unmark_global_endpoint(&self, net: &Network, ep: &EndpointId) -> Result<()> {
        if net.record.scope != Scope::Global {
            return Ok(());
        }
        self.cluster()?.store.commit(
            Txn::new()
                .delete(network_endpoint_key(&net.record.id, ep))
                .delete(network_dns_key(&net.record.id, ep)),
        )?;
        Ok(())
    }

    /// At start: this instance's endpoint marks that no endpoint record stands behind any more
    /// (a crash between the mark and the record, or between the record's removal and the
    /// mark's) are taken away, so they do not keep the network from being removed forever.
    pub(super) fn prune_global_endpoint_marks(&self) -> Result<()> {
        let Some(cluster) = &self.inner.cluster else {
            return Ok(());
        };
        for e in cluster.store.list("network-endpoint/")?.entries {
            if e.value != self.inner.instance.as_bytes() {
                continue;
            }
            let Some(ep) = e.key.rsplit('/').next() else {
                continue;
            };
            let alive = ep
                .parse::<EndpointId>()
                .ok()
                .map(|id| self.inner.store.get(&endpoint_key(&id)))
                .transpose()?
                .flatten()
                .is_some();
            if !alive {
                tracing::info!(key = %e.key, "removing a stale endpoint mark from the cluster store");
                cluster.store.delete(&e.key)?;
            }
        }
        Ok(())
    }

    /// Brings a global network from the cluster store to this host: its driver makes its data
    /// path here (`restore_network` for one that existed before this start, `create_network`
    /// for one created elsewhere since), its pools are the ones recorded (the cluster's IPAM
    /// keeps them), and it is registered.
    fn arrive_global(&self, rec: NetworkRecord, how: Arrival) -> Result<()> {
        let driver = self.driver(&rec.driver)?;
        let (options, _) = self.parse_network_options(&*driver, &rec.options, false)?;
        let ipam = self.ipam_for(&rec.ipam_driver, Scope::Global)?;
        let pools = self.restore_pools(&rec, &ipam)?;
        match how {
            Arrival::Restored => driver.restore_network(&spec_of(&rec), &options)?,
            Arrival::Learned => driver.create_network(&spec_of(&rec), &options)?,
        }
        let policy = match self.add_host_policy(&*driver, &rec, &options) {
            Ok(p) => p,
            Err(e) => {
                let _ = driver.delete_network(&rec.id);
                return Err(e);
            }
        };
        if let Err(e) = self.dns_network(&rec) {
            self.remove_host_policy(policy.as_deref());
            let _ = driver.delete_network(&rec.id);
            return Err(e);
        }
        tracing::info!(network = %rec.name, id = %rec.id.short(), ?how, "global network here");
        let id = rec.id.clone();
        self.register_network(Network {
            record: rec,
            driver,
            ipam,
            policy,
            pools,
            members: Mutex::new(Members::default()),
        });
        // Names its endpoints on other hosts published before it was known here.
        self.load_remote_names(&id);
        Ok(())
    }

    /// Restores a global network listed at start (see [`Controller::arrive_global`]). One
    /// whose removal this instance holds (a crash cut the removal short) is removed; one
    /// another host removes is left to it.
    pub(super) fn restore_global(&self, rec: NetworkRecord) -> Result<()> {
        if !rec.removing {
            return self.arrive_global(rec, Arrival::Restored);
        }
        let cs = &self.cluster()?.store;
        let mine = cs
            .get(&network_removal_key(&rec.id))?
            .is_some_and(|e| e.value == self.inner.instance.as_bytes());
        if !mine {
            return Ok(());
        }
        tracing::info!(network = %rec.name, "finishing an interrupted global network removal");
        let driver = self.driver(&rec.driver)?;
        let (options, _) = self.parse_network_options(&*driver, &rec.options, false)?;
        if driver.restore_network(&spec_of(&rec), &options).is_ok() {
            let _ = driver.delete_network(&rec.id);
        }
        let ipam = self.ipam_for(&rec.ipam_driver, Scope::Global)?;
        for p in self.restore_pools(&rec, &ipam)? {
            let _ = ipam.release_pool(&p.id);
        }
        cs.commit(
            Txn::new()
                .delete(network_name_key(&rec.name))
                .delete(network_key(&rec.id))
                .delete(network_removal_key(&rec.id)),
        )?;
        self.free_network(&*driver, &rec);
        Ok(())
    }

    /// A global network's record appeared or changed in the cluster store.
    fn global_put(&self, entry: &Entry) {
        let Some(cluster) = &self.inner.cluster else {
            return;
        };
        // A network known here (or being created here: its creator registers it, and checked
        // in this order it is always in one of the two) needs no decoding: the key names it.
        if let Some(Ok(id)) = entry
            .key
            .strip_prefix("network/")
            .map(str::parse::<NetworkId>)
            && (lock(&cluster.creating).contains(&id)
                || self.read_networks().get(id.as_str()).is_some())
        {
            return;
        }
        let Ok(rec) = decode::<NetworkRecord>(&entry.key, &entry.value) else {
            tracing::error!(key = %entry.key, "unreadable global network record left alone");
            return;
        };
        if rec.removing || rec.scope != Scope::Global {
            return;
        }
        if self.read_networks().named(&rec.name).is_some() {
            tracing::warn!(network = %rec.name, "a global network has the name of a local one here: not added");
            return;
        }
        let name = rec.name.clone();
        if let Err(e) = self.arrive_global(rec, Arrival::Learned) {
            tracing::warn!(network = %name, error = %e, "could not add a global network created elsewhere");
        }
    }

    /// A global network's record was deleted from the cluster store: removed on another host.
    fn global_delete(&self, id: &str) {
        let Some(net) = self.read_networks().get(id).cloned() else {
            return;
        };
        if net.record.scope != Scope::Global {
            return;
        }
        {
            let mut members = lock(&net.members);
            if members.removed {
                // Being removed here: the removal finishes it.
                return;
            }
            if !members.endpoints.is_empty() {
                tracing::error!(network = %net.record.name, "a global network was removed elsewhere while it has endpoints here; they stay until disconnected");
                return;
            }
            members.removed = true;
        }
        match net.driver.delete_network(&net.record.id) {
            Ok(()) | Err(berth_driver::DriverError::NetworkNotFound(_)) => {}
            Err(e) => {
                tracing::warn!(network = %net.record.name, error = %e, "removing a global network's data path here failed")
            }
        }
        self.remove_host_policy(net.policy.as_deref());
        self.write_networks()
            .remove(net.record.id.as_str(), &net.record.name);
        if let Some(dns) = self.dns() {
            let _ = dns.remove_network(net.record.id.as_str());
        }
        tracing::info!(network = %net.record.name, "global network removed elsewhere");
    }

    /// Makes the registry's global networks match a listing of the cluster store (after the
    /// watch lost history: a compaction).
    fn global_resync(&self, entries: &[Entry]) {
        let listed: BTreeSet<&str> = entries
            .iter()
            .filter_map(|e| e.key.strip_prefix("network/"))
            .collect();
        let gone: Vec<String> = self
            .read_networks()
            .values()
            .filter(|n| n.record.scope == Scope::Global)
            .filter(|n| !listed.contains(n.record.id.as_str()))
            .map(|n| n.record.id.to_string())
            .collect();
        for id in gone {
            self.global_delete(&id);
        }
        for e in entries {
            self.global_put(e);
        }
    }

    /// Starts the threads that follow the cluster store for as long as the controller lives:
    /// its global networks, and the names of their endpoints on other hosts.
    pub(super) fn watch_cluster(&self) -> Result<()> {
        let Some(cluster) = &self.inner.cluster else {
            return Ok(());
        };
        for follower in [NETWORKS, NAMES] {
            let listing = cluster.store.list(follower.prefix)?;
            (follower.resync)(self, &listing.entries);
            let watch = cluster.store.watch(follower.prefix, listing.revision)?;
            let weak = Arc::downgrade(&self.inner);
            std::thread::Builder::new()
                .name(follower.thread.into())
                .spawn(move || follow(weak, follower, watch, listing.revision))
                .map_err(|e| {
                    Error::kernel(
                        "starting the cluster watch",
                        berth_netlink::Error::io("spawn", e),
                    )
                })?;
        }
        Ok(())
    }

    /// A change of a global network's record.
    fn global_apply(&self, event: &Event) {
        match event {
            Event::Put(e) => self.global_put(e),
            Event::Delete { key, .. } => {
                if let Some(id) = key.strip_prefix("network/") {
                    self.global_delete(id);
                }
            }
            _ => {}
        }
    }
}

/// What a watch thread follows: a prefix of the cluster store, each change applied, and the
/// whole prefix applied again after a compaction.
#[derive(Clone, Copy)]
struct Follower {
    prefix: &'static str,
    thread: &'static str,
    apply: fn(&Controller, &Event),
    resync: fn(&Controller, &[Entry]),
}

/// Global networks made and removed on other hosts.
const NETWORKS: Follower = Follower {
    prefix: "network/",
    thread: "berth-cluster-watch",
    apply: Controller::global_apply,
    resync: Controller::global_resync,
};

/// The names of endpoints on other hosts (see `cluster_names`).
const NAMES: Follower = Follower {
    prefix: NETWORK_DNS_PREFIX,
    thread: "berth-names-watch",
    apply: Controller::names_apply,
    resync: Controller::names_resync,
};

/// The watch loop: each event applied in order; a compaction answered by a listing and a new
/// watch from its revision; an error or an ended watch by a new watch from the last revision
/// seen, after a pause that grows to 5 s while it keeps failing.
fn follow(weak: Weak<Inner>, f: Follower, mut watch: berth_store::Watch, mut seen: u64) {
    let mut pause = Duration::from_millis(100);
    loop {
        let polled = watch.poll(Duration::from_millis(500));
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let ctl = Controller { inner };
        let Some(cluster) = &ctl.inner.cluster else {
            return;
        };
        let restart_from = match polled {
            Poll::Idle => continue,
            Poll::Event(Event::Compacted { .. }) => match cluster.store.list(f.prefix) {
                Ok(listing) => {
                    (f.resync)(&ctl, &listing.entries);
                    listing.revision
                }
                Err(e) => {
                    tracing::warn!(error = %e, prefix = f.prefix, "listing the cluster store failed");
                    seen
                }
            },
            Poll::Event(Event::Error { message }) => {
                tracing::warn!(%message, prefix = f.prefix, "the cluster store's watch failed; watching again");
                seen
            }
            Poll::Event(e) => {
                if let Some(r) = e.revision() {
                    seen = seen.max(r);
                }
                (f.apply)(&ctl, &e);
                pause = Duration::from_millis(100);
                continue;
            }
            Poll::Ended => {
                tracing::warn!(
                    prefix = f.prefix,
                    "the cluster store's watch ended; watching again"
                );
                seen
            }
        };
        drop(ctl);
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(5));
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let Some(cluster) = &inner.cluster else {
            return;
        };
        match cluster.store.watch(f.prefix, restart_from) {
            Ok(w) => {
                watch = w;
                seen = restart_from;
            }
            Err(e) => {
                tracing::warn!(error = %e, prefix = f.prefix, "watching the cluster store failed; trying again")
            }
        }
    }
}

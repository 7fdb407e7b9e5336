//! This host's lease in the cluster store: the marks of its endpoints on global networks and
//! their published names live under it, so that a host that dies (killed, its namespace gone,
//! cut off) disappears from the others when the lease expires instead of holding its networks
//! and names forever. A keeper thread renews it every third of its time to live; when it was
//! lost (the host was cut off for longer), and at every start, this host puts its keys again
//! under the current lease.

use std::sync::Weak;
use std::time::{Duration, Instant};

use berth_driver::Scope;
use berth_store::LeaseId;

use super::*;

/// Most operations in one transaction when putting everything again (etcd refuses more than
/// 128 by default).
const REPUBLISH_BATCH: usize = 64;

impl Controller {
    /// Commits the transaction `txn` makes with this host's current lease; when the store says
    /// the lease is gone (it expired since the last renewal), once more with a new one.
    pub(super) fn commit_leased(&self, txn: impl Fn(LeaseId) -> Txn) -> Result<()> {
        let cluster = self.cluster()?;
        let lease = cluster.lease.current()?;
        match cluster.store.commit(txn(lease)) {
            Err(berth_store::Error::LeaseNotFound { .. }) => {
                cluster.lease.forget(lease);
                cluster.store.commit(txn(cluster.lease.current()?))?;
                Ok(())
            }
            r => r.map(|_| ()).map_err(Into::into),
        }
    }

    /// Puts the mark and the names of every endpoint of this host on a global network again,
    /// under the current lease: at start (the keys were under the lease of the previous run),
    /// and after the lease was lost.
    pub(super) fn republish_global_endpoints(&self) -> Result<()> {
        let Some(cluster) = &self.inner.cluster else {
            return Ok(());
        };
        let sandboxes: Vec<Arc<Sandbox>> = self.read_sandboxes().values().cloned().collect();
        let mut puts: Vec<(String, Vec<u8>)> = Vec::new();
        for sb in sandboxes {
            let st = lock(&sb.state);
            for a in st.endpoints.values() {
                let net = &a.network.record;
                if net.scope != Scope::Global {
                    continue;
                }
                puts.push((
                    network_endpoint_key(&net.id, &a.record.id),
                    self.inner.instance.as_bytes().to_vec(),
                ));
                if let Some(names) = self.endpoint_names(&sb, &a.record) {
                    puts.push((network_dns_key(&net.id, &a.record.id), encode(&names)));
                }
            }
        }
        let count = puts.len();
        for batch in puts.chunks(REPUBLISH_BATCH) {
            self.commit_leased(|lease| {
                batch.iter().fold(Txn::new(), |txn, (k, v)| {
                    txn.put_with_lease(k.clone(), v.clone(), lease)
                })
            })?;
        }
        if count > 0 {
            tracing::info!(
                keys = count,
                ttl = ?cluster.lease.ttl(),
                "this host's endpoints and names are in the cluster store under its lease"
            );
        }
        Ok(())
    }

    /// Starts the thread that keeps this host's lease alive for as long as the controller lives,
    /// and puts this host's keys again whenever the lease was lost.
    pub(super) fn keep_cluster_lease(&self) -> Result<()> {
        let Some(cluster) = &self.inner.cluster else {
            return Ok(());
        };
        let every = cluster.lease.renew_every();
        // This start put its keys under the lease of this generation (see
        // `republish_global_endpoints`).
        let generation = cluster.lease.generation();
        let weak = Arc::downgrade(&self.inner);
        std::thread::Builder::new()
            .name("berth-cluster-lease".into())
            .spawn(move || keep(weak, every, generation))
            .map(|_| ())
            .map_err(|e| {
                Error::kernel(
                    "starting the cluster lease keeper",
                    berth_netlink::Error::io("spawn", e),
                )
            })
    }
}

/// The keeper: renews every `every` (in short sleeps, so that it ends soon after the
/// controller); after a loss, whichever sharer of the lease found it (the overlay driver shares
/// it in the daemon), puts this host's keys again until that succeeds ([`berth_store::HostLease::keep`]).
fn keep(weak: Weak<Inner>, every: Duration, mut put_under: u64) {
    let step = every.min(Duration::from_millis(200));
    let mut due = Instant::now() + every;
    loop {
        std::thread::sleep(step);
        let Some(inner) = weak.upgrade() else {
            return;
        };
        if Instant::now() < due {
            continue;
        }
        due = Instant::now() + every;
        let ctl = Controller { inner };
        let Some(cluster) = &ctl.inner.cluster else {
            return;
        };
        let kept = cluster.lease.keep(&mut put_under, || {
            tracing::warn!(
                "this host's lease in the cluster store was lost (cut off for longer than its time to live); putting its endpoints and names again"
            );
            ctl.republish_global_endpoints()
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "putting this host's endpoints in the cluster store failed; trying again")
                })
                .is_ok()
        });
        if let Err(e) = kept {
            tracing::warn!(error = %e, "renewing this host's lease in the cluster store failed");
        }
    }
}

//! Start-up: restoring networks, sandboxes and endpoints from the store, finishing removals a
//! crash cut short, and the records and marks start-up reads (the instance id, the host
//! namespace's key, quarantine of unreadable records).

use super::degraded::Opened;
use super::*;

impl Controller {
    pub(super) fn restore(
        &self,
        networks: Vec<NetworkRecord>,
        sandboxes: Vec<SandboxRecord>,
    ) -> Result<()> {
        for rec in networks {
            if rec.scope == berth_driver::Scope::Global {
                self.restore_global(rec)?;
                continue;
            }
            let driver = self.driver(&rec.driver)?;
            let (options, _) = self.parse_network_options(&*driver, &rec.options, false)?;
            // The default bridge made for another `Config::default_bridge`: removed as below,
            // and made anew as configured by `ensure_predefined`.
            let replaced = !rec.removing && self.default_bridge_replaced(&rec)?;
            if rec.removing || replaced {
                // A removal that a crash cut short: the driver takes the network back (its
                // kernel objects may be half gone) and removes it; then the records go.
                if !replaced {
                    tracing::info!(network = %rec.name, "finishing an interrupted network removal");
                }
                if driver.restore_network(&spec_of(&rec), &options).is_ok() {
                    let _ = driver.delete_network(&rec.id);
                }
                self.inner.store.commit(
                    Txn::new()
                        .delete(network_name_key(&rec.name))
                        .delete(network_key(&rec.id)),
                )?;
                self.free_network(&*driver, &rec);
                continue;
            }
            let ipam = self.ipam_for(&rec.ipam_driver, rec.scope)?;
            let pools = self.restore_pools(&rec, &ipam)?;
            driver.restore_network(&spec_of(&rec), &options)?;
            let policy = self.add_host_policy(&*driver, &rec, &options)?;
            self.dns_network(&rec)?;
            self.register_network(Network {
                record: rec,
                driver,
                ipam,
                policy,
                pools,
                members: Mutex::new(Members::default()),
            });
        }

        // Sandboxes are independent of each other: their namespaces, endpoints, files and routes
        // are restored on a few threads at once (most of the time is spent waiting on the kernel).
        let outcome = Mutex::new(RestoreOutcome::default());
        in_parallel(sandboxes, |rec| self.restore_sandbox(rec, &outcome))?;
        let outcome = outcome.into_inner().unwrap_or_else(|p| p.into_inner());

        let endpoints: Vec<EndpointRecord> = load(&*self.inner.store, "endpoint/")?;
        // Every stored address is taken again before anything else is handed out.
        for ep in &endpoints {
            let Ok(net) = self.lookup_network(ep.network.as_str()) else {
                continue;
            };
            if net.ipam.keeps_state() {
                continue;
            }
            for addr in ep.addresses() {
                if let Some(pool) = net.pools.iter().find(|p| p.subnet.contains(&addr)) {
                    let got = net
                        .ipam
                        .request_address(&pool.id, AddressRequest::Preferred(addr));
                    if let Err(e) = got {
                        tracing::warn!(endpoint = %ep.id.short(), error = %e, "stored address not reservable");
                    }
                }
            }
        }
        let mut by_sandbox: BTreeMap<SandboxId, Vec<EndpointRecord>> = BTreeMap::new();
        for ep in endpoints {
            by_sandbox.entry(ep.sandbox.clone()).or_default().push(ep);
        }
        in_parallel(by_sandbox.into_values().collect(), |eps| {
            eps.into_iter()
                .try_for_each(|ep| self.restore_endpoint(ep, &outcome))
        })?;
        let sandboxes: Vec<Arc<Sandbox>> = self.read_sandboxes().values().cloned().collect();
        in_parallel(sandboxes, |sb| {
            self.finish_restored(&sb, &mut lock(&sb.state));
            Ok(())
        })?;
        for (name, driver) in &self.inner.drivers {
            let removed = driver.remove_orphans()?;
            if !removed.is_empty() {
                tracing::info!(driver = %name, ?removed, "removed orphaned kernel objects");
            }
        }
        self.remove_orphan_namespaces();
        self.restore_links()?;
        // The firewall was staged (see `Controller::start`): its state now holds what the
        // restores brought back; one reconcile makes the kernel say exactly that.
        if let Some(fw) = &self.inner.firewall {
            if self.inner.trusted {
                // The previous opener left the kernel as the state says (see `trust`).
                fw.trust_kernel();
            } else {
                let report = fw.reconcile()?;
                tracing::info!(%report, "firewall reconciled on start");
            }
            if self.inner.config.heal_firewall {
                let healer = fw.start_healing(berth_firewall::HealOptions::default())?;
                *lock(&self.inner.healer) = Some(healer);
            }
        }
        Ok(())
    }

    /// A stored network's pools: as recorded when its IPAM driver keeps its own state, else
    /// requested again (with the recorded gateways).
    pub(super) fn restore_pools(
        &self,
        rec: &NetworkRecord,
        ipam: &Arc<dyn IpamDriver>,
    ) -> Result<Vec<Pool>> {
        let recorded = rec.pools_v4.iter().chain(rec.pools_v6.iter());
        if ipam.keeps_state() {
            return Ok(recorded
                .map(|p| Pool {
                    id: p.pool_id.clone().unwrap_or_default(),
                    subnet: p.subnet,
                    ip_range: p.ip_range,
                })
                .collect());
        }
        let space = match rec.scope {
            berth_driver::Scope::Local => AddressSpace::Local,
            berth_driver::Scope::Global => AddressSpace::Global,
        };
        let mut pools = Vec::new();
        for p in recorded {
            let mut pr = PoolRequest::subnet(space, p.subnet);
            pr.ip_range = p.ip_range;
            pr.aux_addresses = p.aux_addresses.clone();
            pr.options = rec.ipam_options.clone();
            let pool = ipam
                .request_pool(&pr)
                .map_err(|e| Controller::ipam_err(&**ipam, e))?;
            if let Some(gw) = p.gateway {
                ipam.request_address(&pool.id, AddressRequest::Gateway(Some(gw.addr())))
                    .map_err(|e| Controller::ipam_err(&**ipam, e))?;
            }
            pools.push(pool);
        }
        Ok(pools)
    }

    /// Opens a stored sandbox's namespace and registers it again. A sandbox whose namespace is
    /// really gone (it does not exist, or the path is no namespace), or whose removal a crash
    /// cut short, is removed from the store and noted as dead. A sandbox that cannot be opened
    /// for any other reason (too many open files, out of memory, ...) is kept aside as
    /// degraded, as it is in the store and in the kernel, and retried (see
    /// [`Controller::retry_degraded`]): it is never destroyed for a transient error.
    fn restore_sandbox(&self, rec: SandboxRecord, outcome: &Mutex<RestoreOutcome>) -> Result<()> {
        let forget = |c: &Controller, rec: &SandboxRecord| {
            lock(outcome).dead.insert(rec.id.clone());
            c.inner.store.commit(
                Txn::new()
                    .delete(sandbox_name_key(&rec.name))
                    .delete(sandbox_key(&rec.id)),
            )
        };
        if rec.removing {
            tracing::info!(sandbox = %rec.name, "finishing an interrupted sandbox removal");
            if rec.owned {
                if let Some(dir) = rec.netns.parent() {
                    let _ = Netns::delete_named_in(dir, rec.id.as_str());
                }
            }
            let _ = std::fs::remove_dir_all(
                self.inner
                    .config
                    .exec_root
                    .join("sandboxes")
                    .join(rec.id.as_str()),
            );
            forget(self, &rec)?;
            return Ok(());
        }
        match self.open_sandbox(&rec) {
            Opened::Live(sb) => {
                let (id, name) = (sb.record.id.to_string(), sb.name());
                self.write_sandboxes().insert(&id, &name, Arc::from(sb));
            }
            Opened::Gone(reason) => {
                tracing::warn!(sandbox = %rec.name, %reason, "sandbox namespace is gone; removing the sandbox");
                forget(self, &rec)?;
            }
            Opened::Trouble(reason) => self.degrade_sandbox(rec, reason),
        }
        Ok(())
    }

    /// Restores one stored endpoint. An active endpoint of a live sandbox is joined again (what
    /// cannot be is kept as a degraded endpoint and retried); one of a sandbox kept aside stays
    /// with it; an unfinished connect or disconnect, or an endpoint of a dead sandbox, is
    /// rolled back.
    fn restore_endpoint(&self, ep: EndpointRecord, outcome: &RestoreOutcome) -> Result<()> {
        let net = self.lookup_network(ep.network.as_str()).ok();
        let active = ep.state == EndpointState::Active && !outcome.dead.contains(&ep.sandbox);
        if active && self.degrade_endpoint(&ep, net.as_deref()) {
            return Ok(());
        }
        let sb = self.read_sandboxes().get(ep.sandbox.as_str()).cloned();
        if let (true, Some(net), Some(sb)) = (active, &net, &sb) {
            let mut st = lock(&sb.state);
            self.attach_restored(sb, &mut st, net, ep, None, false);
            return Ok(());
        }
        // A connect that never completed, a disconnect that did not finish, or a sandbox that
        // is gone: undo what may exist.
        self.roll_back_endpoint(net.as_deref(), &ep)
    }

    /// Deletes namespaces under the exec root that no live or degraded sandbox names: one whose
    /// removal a crash cut short, or the empty mount point of a create a crash cut short (its
    /// record was forgotten as gone).
    fn remove_orphan_namespaces(&self) {
        let dir = self.inner.config.netns_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let known: BTreeSet<String> = self
            .read_sandboxes()
            .values()
            .filter(|s| s.record.owned)
            .map(|s| s.record.id.to_string())
            .chain(lock(&self.inner.degraded).keys().map(ToString::to_string))
            .chain(std::iter::once(HOST_KEY.to_owned()))
            .collect();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                match Netns::delete_named_in(&dir, &name) {
                    Ok(_) => {
                        tracing::info!(namespace = %name, "removed orphaned sandbox namespace")
                    }
                    Err(e) => {
                        tracing::warn!(namespace = %name, error = %e, "cannot remove orphaned namespace")
                    }
                }
            }
        }
    }
}

/// What restoring the sandboxes found (see [`Controller::restore_sandbox`]; the sandboxes
/// kept aside are in [`Inner::degraded`]).
#[derive(Default)]
struct RestoreOutcome {
    /// Sandboxes that are gone (or whose removal was finished): their endpoints are rolled back.
    dead: BTreeSet<SandboxId>,
}

/// Every record under `prefix`. A record that cannot be read is moved to `quarantine/<key>`
/// (logged with the reason) instead of stopping start-up: one bad record must not take every
/// other network and sandbox down with it.
pub(super) fn load<T: DeserializeOwned>(store: &dyn KvStore, prefix: &str) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for e in store.list(prefix)?.entries {
        match decode(&e.key, &e.value) {
            Ok(v) => out.push(v),
            Err(err) => {
                tracing::error!(key = %e.key, error = %err, "unreadable record moved to quarantine");
                store.commit(
                    Txn::new()
                        .put(quarantine_key(&e.key), e.value.clone())
                        .delete(e.key.clone()),
                )?;
            }
        }
    }
    Ok(out)
}

/// This state's instance id (kept in the store; made on first start): the mark the bridge
/// driver puts on every link it makes, so that only berth's own links are ever removed.
pub(super) fn instance_id(store: &dyn KvStore) -> Result<String> {
    if let Some(e) = store.get(INSTANCE_KEY)? {
        if let Ok(id) = String::from_utf8(e.value) {
            return Ok(id);
        }
    }
    let id: String = random_id()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match store.commit(
        Txn::new()
            .when(INSTANCE_KEY, Expect::Absent)
            .put(INSTANCE_KEY, id.as_bytes().to_vec()),
    ) {
        Ok(_) => Ok(id),
        Err(berth_store::Error::Conflict { .. }) => instance_id(store),
        Err(e) => Err(e.into()),
    }
}

/// Bind-mounts the host namespace at `netns_dir/default` (as Docker does under its exec root),
/// replacing a leftover that names another namespace; returns the path.
pub(super) fn bind_host_key(
    host: &Netns,
    netns_dir: &std::path::Path,
) -> Result<std::path::PathBuf> {
    let path = netns_dir.join(HOST_KEY);
    if let Ok(existing) = Netns::open(&path) {
        if existing.same_as(host).unwrap_or(false) {
            return Ok(path);
        }
    }
    let _ = Netns::delete_named_in(netns_dir, HOST_KEY);
    host.bind_at(netns_dir, HOST_KEY)
        .map_err(|e| Error::kernel("naming the host namespace under the exec root", e))?;
    Ok(path)
}

/// The name of the host namespace's bind mount in the namespace directory.
pub(super) const HOST_KEY: &str = "default";

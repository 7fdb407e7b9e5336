//! Start-up: restoring networks, sandboxes and endpoints from the store, finishing removals a
//! crash cut short, and the records and marks start-up reads (the instance id, the host
//! namespace's key, quarantine of unreadable records).

use super::*;

impl Controller {
    pub(super) fn restore(
        &self,
        networks: Vec<NetworkRecord>,
        sandboxes: Vec<SandboxRecord>,
    ) -> Result<()> {
        for rec in networks {
            let driver = self.driver(&rec.driver)?;
            let options = driver.parse_options(&rec.options)?;
            if rec.removing {
                // A removal that a crash cut short: the driver takes the network back (its
                // kernel objects may be half gone) and removes it; then the records go.
                tracing::info!(network = %rec.name, "finishing an interrupted network removal");
                if driver.create_network(&spec_of(&rec), &options).is_ok() {
                    let _ = driver.delete_network(&rec.id);
                }
                self.inner.store.commit(
                    Txn::new()
                        .delete(network_name_key(&rec.name))
                        .delete(network_key(&rec.id)),
                )?;
                continue;
            }
            let mut pools = Vec::new();
            {
                let mut ipam = lock(&self.inner.ipam);
                for p in rec.pools_v4.iter().chain(rec.pools_v6.iter()) {
                    let mut pr = PoolRequest::new(AddressSpace::Local, p.subnet);
                    if let Some(r) = p.ip_range {
                        pr = pr.with_ip_range(r);
                    }
                    for (name, addr) in &p.aux_addresses {
                        pr = pr.with_aux_address(name.clone(), *addr);
                    }
                    let id = ipam.request_pool(&pr)?;
                    if let Some(gw) = p.gateway {
                        ipam.request_address(&id, AddressRequest::Gateway(Some(gw.addr())))?;
                    }
                    pools.push(id);
                }
            }
            driver.create_network(&spec_of(&rec), &options)?;
            self.dns_network(&rec)?;
            let net = Arc::new(Network {
                record: rec,
                driver,
                pools,
                members: Mutex::new(Members::default()),
            });
            self.write_networks()
                .insert(net.record.id.as_str(), &net.record.name, net.clone());
        }

        // Sandboxes are independent of each other: their namespaces, endpoints, files and routes
        // are restored on a few threads at once (most of the time is spent waiting on the kernel).
        let outcome = Mutex::new(RestoreOutcome::default());
        in_parallel(sandboxes, |rec| self.restore_sandbox(rec, &outcome))?;
        let outcome = outcome.into_inner().unwrap_or_else(|p| p.into_inner());

        let endpoints: Vec<EndpointRecord> = load(&self.inner.store, "endpoint/")?;
        // Every stored address is taken again before anything else is handed out.
        for ep in &endpoints {
            let Ok(net) = self.lookup_network(ep.network.as_str()) else {
                continue;
            };
            let mut ipam = lock(&self.inner.ipam);
            for addr in ep
                .ipv4
                .map(|a| IpAddr::V4(a.addr()))
                .into_iter()
                .chain(ep.ipv6.map(|a| IpAddr::V6(a.addr())))
            {
                if let Some(pool) = net.pools.iter().find(|p| p.subnet().contains(&addr)) {
                    if let Err(e) = ipam.request_address(pool, AddressRequest::Preferred(addr)) {
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
            let mut st = lock(&sb.state);
            self.publish(&sb, &st);
            self.write_sandbox_files(&sb, &st);
            if let Err(e) = self.update_default_routes(&sb, &mut st) {
                tracing::warn!(sandbox = %sb.name(), error = %e, "restoring default routes");
            }
            Ok(())
        })?;
        for (name, driver) in &self.inner.drivers {
            let removed = driver.remove_orphans()?;
            if !removed.is_empty() {
                tracing::info!(driver = name, ?removed, "removed orphaned kernel objects");
            }
        }
        self.remove_orphan_namespaces(&outcome.kept);
        Ok(())
    }

    /// Opens a stored sandbox's namespace and registers it again. A sandbox whose namespace is
    /// really gone (it does not exist), or whose removal a crash cut short, is removed from the
    /// store and noted as dead. A sandbox that cannot be opened for any other reason (too many
    /// open files, out of memory, ...) is left as it is in the store and in the kernel, noted as
    /// kept, and logged: it is never destroyed for a transient error.
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
        let opened = hit("restore.netns_open")
            .map_err(|e| berth_netlink::Error::io("injected", std::io::Error::other(e.to_string())))
            .and_then(|()| {
                if rec.host_mode {
                    self.inner.host.try_clone()
                } else {
                    Netns::open(&rec.netns)
                }
            })
            .and_then(|ns| Handle::open(&ns).map(|h| (ns, h)));
        let (netns, netlink) = match opened {
            Ok(p) => p,
            Err(e) if e.is_not_found() => {
                tracing::warn!(sandbox = %rec.name, error = %e, "sandbox namespace is gone; removing the sandbox");
                forget(self, &rec)?;
                return Ok(());
            }
            Err(e) => {
                tracing::error!(sandbox = %rec.name, error = %e, "sandbox not restored (kept as it is for the next start)");
                lock(outcome).kept.insert(rec.id.clone());
                return Ok(());
            }
        };
        if rec.owned {
            // A crash between making the namespace and bringing loopback up leaves it down.
            if let Err(e) = netlink.link_set_up("lo") {
                tracing::warn!(sandbox = %rec.name, error = %e, "loopback of a restored sandbox");
            }
        }
        let files = match self.register_sandbox_dns(&rec, &netns) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(sandbox = %rec.name, error = %e, "sandbox not restored (kept as it is for the next start)");
                lock(outcome).kept.insert(rec.id.clone());
                return Ok(());
            }
        };
        let sb = Sandbox {
            name: RwLock::new(rec.name.clone()),
            record: rec,
            netns,
            netlink,
            files,
            state: Mutex::new(SandboxState::default()),
            view: Mutex::default(),
        };
        let (id, name) = (sb.record.id.to_string(), sb.name());
        self.write_sandboxes().insert(&id, &name, Arc::new(sb));
        Ok(())
    }

    /// Restores one stored endpoint. An active endpoint of a live sandbox is joined again; one
    /// whose restore fails is rolled back and logged (the rest of the start goes on); an
    /// unfinished connect or disconnect, or an endpoint of a dead sandbox, is rolled back; an
    /// endpoint of a kept sandbox is left as it is.
    fn restore_endpoint(&self, ep: EndpointRecord, outcome: &RestoreOutcome) -> Result<()> {
        let net = self.lookup_network(ep.network.as_str()).ok();
        if outcome.kept.contains(&ep.sandbox) {
            if let Some(net) = net {
                lock(&net.members)
                    .endpoints
                    .insert(ep.id.clone(), ep.sandbox.clone());
            }
            return Ok(());
        }
        let sb = self.read_sandboxes().get(ep.sandbox.as_str()).cloned();
        let spec = EndpointSpec {
            network: ep.network.clone(),
            endpoint: ep.id.clone(),
            ipv4: ep.ipv4,
            ipv6: ep.ipv6,
            mac: ep.mac,
        };
        let dead = outcome.dead.contains(&ep.sandbox);
        if let (Some(net), Some(sb)) = (&net, &sb) {
            if ep.state == EndpointState::Active && !dead {
                match self.rejoin(net, sb, &ep, &spec) {
                    Ok(join) => {
                        lock(&net.members)
                            .endpoints
                            .insert(ep.id.clone(), sb.record.id.clone());
                        lock(&sb.state).endpoints.insert(
                            net.record.id.clone(),
                            Attachment {
                                record: ep,
                                join,
                                network: net.clone(),
                            },
                        );
                        return Ok(());
                    }
                    Err(e) => {
                        tracing::error!(sandbox = %sb.name(), network = %net.record.name, error = %e, "endpoint not restored; rolled back");
                        let _ = self
                            .inner
                            .dns
                            .disconnect(sb.record.id.as_str(), net.record.id.as_str());
                        let _ = net
                            .driver
                            .revoke_external_connectivity(&net.record.id, &ep.id);
                        self.remove_port_rules(net, &ep);
                        let addrs: Vec<IpAddr> = ep
                            .ipv4
                            .map(|a| IpAddr::V4(a.addr()))
                            .into_iter()
                            .chain(ep.ipv6.map(|a| IpAddr::V6(a.addr())))
                            .collect();
                        let _ = self.remove_link_rules(&net.record, &addrs);
                    }
                }
            }
        }
        // A connect that never completed, a disconnect that did not finish, a sandbox that is
        // gone or an endpoint that could not be restored: undo what may exist.
        tracing::info!(endpoint = %ep.id.short(), state = ?ep.state, "rolling back an unfinished or orphaned endpoint");
        if let Some(net) = net {
            if net.driver.create_endpoint(&spec).is_ok() {
                let _ = net.driver.leave(&ep.network, &ep.id);
                let _ = net.driver.delete_endpoint(&ep.network, &ep.id);
            }
            let mut ipam = lock(&self.inner.ipam);
            for addr in ep
                .ipv4
                .map(|a| IpAddr::V4(a.addr()))
                .into_iter()
                .chain(ep.ipv6.map(|a| IpAddr::V6(a.addr())))
            {
                if let Some(pool) = net.pools.iter().find(|p| p.subnet().contains(&addr)) {
                    let _ = ipam.release_address(pool, addr);
                }
            }
        }
        self.inner.store.delete(&endpoint_key(&ep.id))?;
        Ok(())
    }

    /// The kernel half of restoring an endpoint: the driver's endpoint, the join, the published
    /// ports and the DNS names. On failure what it did is undone by the caller.
    fn rejoin(
        &self,
        net: &Network,
        sb: &Sandbox,
        ep: &EndpointRecord,
        spec: &EndpointSpec,
    ) -> Result<JoinInfo> {
        hit("restore.endpoint")?;
        net.driver.create_endpoint(spec)?;
        let joined = net.driver.join(&JoinRequest {
            network: &net.record.id,
            endpoint: &ep.id,
            sandbox: SandboxRef {
                id: &sb.record.id,
                netns: &sb.netns,
                netlink: &sb.netlink,
            },
            ifname: ep.ifname.as_deref().unwrap_or(""),
        });
        let join = match joined {
            Ok(j) => j,
            Err(e) => {
                let _ = net.driver.delete_endpoint(&net.record.id, &ep.id);
                return Err(e.into());
            }
        };
        let rest = net
            .driver
            .restore_external_connectivity(&net.record.id, &ep.id, &ep.ports)
            .map_err(Error::from)
            .and_then(|()| self.dns_connect(sb, net, ep));
        if let Err(e) = rest {
            let _ = net.driver.leave(&net.record.id, &ep.id);
            let _ = net.driver.delete_endpoint(&net.record.id, &ep.id);
            return Err(e);
        }
        Ok(join)
    }

    /// Removes the NAT rules a stored endpoint's published ports would have (start-up puts them
    /// in place before restoring endpoints; one that is not restored must not keep them).
    fn remove_port_rules(&self, net: &Network, ep: &EndpointRecord) {
        let Some(fw) = &self.inner.firewall else {
            return;
        };
        let Ok(Some((_, bridge))) = self.bridge_of(&net.record) else {
            return;
        };
        let have = fw.state();
        let rules: Vec<_> = PortMapper::rules_for(
            &ep.ports,
            ep.ipv4.map(|a| a.addr()),
            ep.ipv6.map(|a| a.addr()),
            &bridge,
        )
        .into_iter()
        .filter(|r| have.has_port(r))
        .collect();
        if !rules.is_empty() {
            if let Err(e) = fw.remove_ports(&rules) {
                tracing::warn!(endpoint = %ep.id.short(), error = %e, "removing the rules of an endpoint not restored");
            }
        }
    }

    /// Deletes namespaces under the exec root that no sandbox record names (a crash between
    /// creating one and recording it cannot happen, since the record comes first, but a crash
    /// during removal can leave one).
    fn remove_orphan_namespaces(&self, kept: &BTreeSet<SandboxId>) {
        let dir = self.inner.config.netns_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let known: BTreeSet<String> = self
            .read_sandboxes()
            .values()
            .filter(|s| s.record.owned)
            .map(|s| s.record.id.to_string())
            .chain(kept.iter().map(ToString::to_string))
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

/// What restoring the sandboxes found (see [`Controller::restore_sandbox`]).
#[derive(Default)]
struct RestoreOutcome {
    /// Sandboxes that are gone (or whose removal was finished): their endpoints are rolled back.
    dead: BTreeSet<SandboxId>,
    /// Sandboxes that could not be opened for a transient reason: left as they are.
    kept: BTreeSet<SandboxId>,
}

/// Every record under `prefix`. A record that cannot be read is moved to `quarantine/<key>`
/// (logged with the reason) instead of stopping start-up: one bad record must not take every
/// other network and sandbox down with it.
pub(super) fn load<T: DeserializeOwned>(store: &RedbStore, prefix: &str) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for e in store.list(prefix)? {
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
pub(super) fn instance_id(store: &RedbStore) -> Result<String> {
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

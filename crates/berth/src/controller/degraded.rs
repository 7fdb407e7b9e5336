//! Degraded sandboxes: what a start could not restore, kept (never destroyed for a transient
//! error), shown in inspect and the log with the reason, and retried by
//! [`Controller::retry_degraded`] until it comes back or is removed.
//!
//! Two kinds. A sandbox whose namespace could not be opened (too many open files, out of
//! memory, ...) is kept aside whole in [`Inner::degraded`]: its records, its addresses and its
//! kernel objects stay, and its published ports are held again (the kernel still carries its
//! traffic; only berth cannot reach into it). An endpoint that could not be joined again, or
//! whose published ports could not be taken again (another process bound one while berth was
//! down), is attached to its live sandbox with what did come back and a [`Trouble`] naming what
//! did not: the sandbox keeps working on its other networks, and on that one as far as it can.

use super::inspect::{networks_of, ports_of};
use super::*;

/// A sandbox kept aside by a start (see the module's documentation).
pub(super) struct DegradedSandbox {
    pub(super) record: SandboxRecord,
    /// Its active endpoints, and whether their published ports are held again.
    pub(super) endpoints: Vec<(EndpointRecord, bool)>,
    /// Why it could not be restored (the last attempt's error).
    pub(super) reason: String,
    /// Serialises a retry and a removal of this sandbox (taken before the map's lock).
    pub(super) op: Arc<Mutex<()>>,
}

/// What a start could not restore of one endpoint of a live sandbox.
pub(super) struct Trouble {
    /// What failed, for inspect and the log.
    pub(super) reason: String,
    /// Whether the endpoint is joined (its interface is in the sandbox); if so only its
    /// published ports are missing.
    pub(super) joined: bool,
}

/// What [`Controller::open_sandbox`] found.
pub(super) enum Opened {
    /// Open and registered with the DNS server; not yet in the registry.
    Live(Box<Sandbox>),
    /// Its namespace is gone for good: it does not exist, or is no namespace.
    Gone(String),
    /// A failure that may pass (kept, retried).
    Trouble(String),
}

impl Controller {
    /// Tries again what a start could not restore: sandboxes whose namespace could not be
    /// opened, and endpoints that could not be joined again or whose published ports could not
    /// be taken again. What comes back works as if the start had restored it; what does not
    /// keeps its reason (in [`Controller::inspect_sandbox`]'s `Degraded` and the log) for the
    /// next try. A sandbox whose namespace turned out gone is removed with its endpoints.
    ///
    /// The library never retries on its own (it starts no threads): an engine calls this when
    /// it likes; berth's daemon calls it with a back-off while anything is degraded. Returns how
    /// many sandboxes are still degraded, whole or in part.
    pub fn retry_degraded(&self) -> usize {
        let span = tracing::info_span!("retry_degraded");
        let _enter = span.enter();
        let waiting: Vec<SandboxId> = lock(&self.inner.degraded).keys().cloned().collect();
        for id in waiting {
            self.retry_sandbox(&id);
        }
        let live: Vec<Arc<Sandbox>> = self.read_sandboxes().values().cloned().collect();
        let mut troubled = 0;
        for sb in live {
            let mut st = lock(&sb.state);
            if st.removed || st.troubles.is_empty() {
                continue;
            }
            self.retry_troubles(&sb, &mut st);
            if !st.troubles.is_empty() {
                troubled += 1;
            }
        }
        troubled + lock(&self.inner.degraded).len()
    }

    /// Opens a stored sandbox's namespace and registers it with the DNS server.
    pub(super) fn open_sandbox(&self, rec: &SandboxRecord) -> Opened {
        let opened = hit("restore.netns_open")
            .map_err(|e| berth_netlink::Error::io("injected", std::io::Error::other(e.to_string())))
            .and_then(|()| {
                if rec.host_mode {
                    self.inner.host.try_clone()
                } else {
                    Netns::open(&rec.netns)
                }
            })
            // Loopback of a sandbox berth made: a crash between making the namespace and
            // bringing it up leaves it down (a trusted start follows a clean stop, not a crash).
            .and_then(|ns| {
                if rec.owned && !self.trusted_restore() {
                    Handle::open(&ns).map(|h| (ns, Some(h)))
                } else {
                    Ok((ns, None))
                }
            });
        let (netns, netlink) = match opened {
            Ok(p) => p,
            // Absent, or no namespace (the empty mount point a crash during create leaves).
            Err(e) if e.is_gone() => return Opened::Gone(e.to_string()),
            Err(e) => return Opened::Trouble(format!("opening its namespace: {e}")),
        };
        if let Some(netlink) = &netlink {
            if let Err(e) = netlink.link_set_up("lo") {
                tracing::warn!(sandbox = %rec.name, error = %e, "loopback of a restored sandbox");
            }
        }
        let files = match self.register_sandbox_dns(rec, &netns) {
            Ok(f) => f,
            Err(e) => return Opened::Trouble(format!("its DNS and files: {e}")),
        };
        Opened::Live(Box::new(Sandbox {
            name: RwLock::new(rec.name.clone()),
            record: rec.clone(),
            netns,
            netlink: netlink.map(std::sync::OnceLock::from).unwrap_or_default(),
            files,
            state: Mutex::new(SandboxState::default()),
            view: Mutex::default(),
        }))
    }

    /// Keeps a sandbox aside (see the module's documentation).
    pub(super) fn degrade_sandbox(&self, record: SandboxRecord, reason: String) {
        tracing::error!(sandbox = %record.name, %reason, "sandbox degraded: kept as it is and retried");
        lock(&self.inner.degraded).insert(
            record.id.clone(),
            DegradedSandbox {
                record,
                endpoints: Vec::new(),
                reason,
                op: Arc::default(),
            },
        );
    }

    /// Adds an active endpoint to a sandbox kept aside: its addresses stay taken and its
    /// published ports are held again (the kernel still forwards them). False when the
    /// sandbox is not kept aside.
    pub(super) fn degrade_endpoint(&self, ep: &EndpointRecord, net: Option<&Network>) -> bool {
        if !lock(&self.inner.degraded).contains_key(&ep.sandbox) {
            return false;
        }
        let mut held = false;
        if let Some(net) = net {
            lock(&net.members)
                .endpoints
                .insert(ep.id.clone(), ep.sandbox.clone());
            let _ = net.driver.create_endpoint(&ep.spec());
            match net
                .driver
                .restore_external_connectivity(&net.record.id, &ep.id, &ep.ports)
            {
                Ok(()) => held = true,
                Err(e) => {
                    tracing::error!(endpoint = %ep.id.short(), error = %e, "published ports of a degraded sandbox not held");
                }
            }
        }
        if let Some(d) = lock(&self.inner.degraded).get_mut(&ep.sandbox) {
            d.endpoints.push((ep.clone(), held));
        }
        true
    }

    /// One more try at a sandbox kept aside.
    fn retry_sandbox(&self, id: &SandboxId) {
        let Some(op) = lock(&self.inner.degraded).get(id).map(|d| d.op.clone()) else {
            return;
        };
        let _op = lock(&op);
        let Some(record) = lock(&self.inner.degraded).get(id).map(|d| d.record.clone()) else {
            return; // removed meanwhile
        };
        match self.open_sandbox(&record) {
            Opened::Trouble(reason) => {
                tracing::warn!(sandbox = %record.name, %reason, "degraded sandbox: still not restorable");
                if let Some(d) = lock(&self.inner.degraded).get_mut(id) {
                    d.reason = reason;
                }
            }
            Opened::Gone(reason) => {
                tracing::warn!(sandbox = %record.name, %reason, "degraded sandbox: its namespace is gone; removing it");
                if let Err(e) = self.remove_degraded_locked(id) {
                    tracing::error!(sandbox = %record.name, error = %e, "removing a degraded sandbox whose namespace is gone");
                }
            }
            Opened::Live(sb) => {
                let sb: Arc<Sandbox> = Arc::from(sb);
                let endpoints = lock(&self.inner.degraded)
                    .get(id)
                    .map(|d| d.endpoints.clone())
                    .unwrap_or_default();
                let mut st = lock(&sb.state);
                for (ep, held) in endpoints {
                    match self.lookup_network(ep.network.as_str()) {
                        Ok(net) => self.attach_restored(&sb, &mut st, &net, ep, None, held),
                        Err(_) => {
                            let _ = self.roll_back_endpoint(None, &ep);
                        }
                    }
                }
                self.finish_restored(&sb, &mut st);
                drop(st);
                self.write_sandboxes()
                    .insert(id.as_str(), &record.name, sb.clone());
                lock(&self.inner.degraded).remove(id);
                tracing::info!(sandbox = %record.name, "degraded sandbox restored");
            }
        }
    }

    /// One more try at the troubled endpoints of a live sandbox (its state lock held).
    fn retry_troubles(&self, sb: &Sandbox, st: &mut SandboxState) {
        let troubled: Vec<(NetworkId, bool)> = st
            .troubles
            .iter()
            .map(|(n, t)| (n.clone(), t.joined))
            .collect();
        for (net_id, joined) in troubled {
            st.troubles.remove(&net_id);
            let Some(att) = st.endpoints.remove(&net_id) else {
                continue;
            };
            let joined = joined.then_some(att.join);
            let net = att.network;
            self.attach_restored(sb, st, &net, att.record, joined, false);
            if !st.troubles.contains_key(&net_id) {
                tracing::info!(sandbox = %sb.name(), network = %net.record.name, "degraded endpoint restored");
            }
        }
        self.finish_restored(sb, st);
    }

    /// Joins a stored active endpoint again (unless `joined` says it is) and takes its
    /// published ports again (unless `ports_held`), then attaches it to the sandbox: fully, or
    /// with a [`Trouble`] naming what failed. Nothing it could restore is undone for what it
    /// could not. The ports it could not take get no rules (they would send another process's
    /// traffic to the sandbox): taking them is all or nothing, and at start the firewall is
    /// staged, so the old rules go with the start's reconcile.
    pub(super) fn attach_restored(
        &self,
        sb: &Sandbox,
        st: &mut SandboxState,
        net: &Arc<Network>,
        ep: EndpointRecord,
        joined: Option<JoinInfo>,
        ports_held: bool,
    ) {
        lock(&net.members)
            .endpoints
            .insert(ep.id.clone(), sb.record.id.clone());
        let network = &net.record.name;
        let (join, trouble) = match joined.map_or_else(|| self.rejoin(net, sb, &ep), Ok) {
            Err(e) => {
                let unjoined = JoinInfo {
                    ifname: ep.ifname.clone().unwrap_or_default(),
                    ..JoinInfo::default()
                };
                let reason = format!("network {network}: joining again: {e}");
                (unjoined, Some((reason, false)))
            }
            Ok(join) if ports_held => (join, None),
            Ok(join) => {
                match net
                    .driver
                    .restore_external_connectivity(&net.record.id, &ep.id, &ep.ports)
                {
                    Ok(()) => (join, None),
                    Err(e) => {
                        let reason =
                            format!("network {network}: taking its published ports again: {e}");
                        (join, Some((reason, true)))
                    }
                }
            }
        };
        if let Some((reason, joined)) = trouble {
            tracing::error!(sandbox = %sb.name(), %reason, "endpoint degraded: kept and retried");
            st.troubles
                .insert(net.record.id.clone(), Trouble { reason, joined });
        }
        st.endpoints.insert(
            net.record.id.clone(),
            Attachment {
                record: ep,
                join,
                network: net.clone(),
            },
        );
    }

    /// A start that trusts the kernel (see `trust`) is restoring: drivers answer the restored
    /// endpoints' joins from memory and restored sandboxes' default routes are taken as they
    /// were left. Never after the start (a degraded sandbox or endpoint retried later converges
    /// with the kernel), and never for a new connect (which joins and routes as usual).
    pub(super) fn trusted_restore(&self) -> bool {
        self.inner.trusted && !self.inner.trust_ready.load(Ordering::Relaxed)
    }

    /// After endpoints came back: default routes, files and the published view.
    pub(super) fn finish_restored(&self, sb: &Sandbox, st: &mut SandboxState) {
        if self.trusted_restore() {
            self.take_default_routes_as_left(sb, st);
        } else if let Err(e) = self.update_default_routes(sb, st) {
            tracing::warn!(sandbox = %sb.name(), error = %e, "restoring default routes");
        }
        self.write_sandbox_files(sb, st);
        self.publish(sb, st);
    }

    /// The kernel half of joining a stored endpoint again: the driver's endpoint, the join and
    /// the DNS names. On failure what it did is undone.
    fn rejoin(&self, net: &Network, sb: &Sandbox, ep: &EndpointRecord) -> Result<JoinInfo> {
        hit("restore.endpoint")?;
        // A sandbox kept aside had its driver endpoint made to hold its ports.
        let made = match net.driver.create_endpoint(&ep.spec()) {
            Ok(_) => true,
            Err(berth_driver::DriverError::Exists(_)) => false,
            Err(e) => return Err(e.into()),
        };
        let joined = net
            .driver
            .restore_join(
                &JoinRequest {
                    network: &net.record.id,
                    endpoint: &ep.id,
                    sandbox: SandboxRef {
                        id: &sb.record.id,
                        netns: berth_driver::NetnsRef {
                            path: &sb.record.netns,
                            fd: Some(std::os::fd::AsFd::as_fd(&sb.netns)),
                        },
                    },
                    ifname: ep.ifname.as_deref().unwrap_or(""),
                },
                self.trusted_restore(),
            )
            .map_err(Error::from)
            .and_then(|join| {
                self.dns_connect(sb, net, ep)
                    .map(|()| join)
                    .inspect_err(|_| {
                        let _ = net.driver.leave(&net.record.id, &ep.id);
                    })
            });
        if joined.is_err() && made {
            let _ = net.driver.delete_endpoint(&net.record.id, &ep.id);
        }
        joined
    }

    /// Undoes whatever may exist of a stored endpoint that is not coming back (a connect that
    /// never finished, a disconnect a crash cut short, the endpoint of a sandbox that is gone
    /// or removed while degraded): its DNS names, ports, link rules, interface, addresses and
    /// record. Every step is idempotent.
    pub(super) fn roll_back_endpoint(
        &self,
        net: Option<&Network>,
        ep: &EndpointRecord,
    ) -> Result<()> {
        tracing::info!(endpoint = %ep.id.short(), state = ?ep.state, "rolling back an endpoint");
        if let Some(net) = net {
            if let Some(dns) = self.dns() {
                let _ = dns.disconnect(ep.sandbox.as_str(), net.record.id.as_str());
            }
            let _ = net
                .driver
                .revoke_external_connectivity(&net.record.id, &ep.id);
            let addrs = ep.addresses();
            if let Err(e) = net.driver.close_link_holes(&net.record.id, &addrs) {
                tracing::warn!(endpoint = %ep.id.short(), error = %e, "removing the link rules of an endpoint rolled back");
            }
            let _ = net.driver.create_endpoint(&ep.spec());
            let _ = net.driver.leave(&ep.network, &ep.id);
            let _ = net.driver.delete_endpoint(&ep.network, &ep.id);
            for addr in addrs {
                if let Some(pool) = net.pools.iter().find(|p| p.subnet.contains(&addr)) {
                    let _ = net.ipam.release_address(&pool.id, addr);
                }
            }
            lock(&net.members).endpoints.remove(&ep.id);
        }
        self.inner.store.delete(&endpoint_key(&ep.id))?;
        if let Some(net) = net {
            let _ = self.unmark_global_endpoint(net, &ep.id);
        }
        Ok(())
    }

    /// Removes a sandbox kept aside, if `key` names one (by name, id or unique id prefix).
    pub(super) fn remove_degraded(&self, key: &str) -> Option<Result<()>> {
        let (id, op) = {
            let map = lock(&self.inner.degraded);
            let (id, d) = find_in(&map, key)?;
            (id.clone(), d.op.clone())
        };
        let _op = lock(&op);
        Some(self.remove_degraded_locked(&id))
    }

    /// The removal of a sandbox kept aside, its `op` lock held: intent first, then its
    /// endpoints, files, namespace (berth's own) and records.
    fn remove_degraded_locked(&self, id: &SandboxId) -> Result<()> {
        let Some((mut record, endpoints)) = lock(&self.inner.degraded)
            .get(id)
            .map(|d| (d.record.clone(), d.endpoints.clone()))
        else {
            return Err(Error::SandboxNotFound(id.to_string()));
        };
        record.removing = true;
        self.inner.store.put(&sandbox_key(id), &encode(&record))?;
        for (ep, _) in &endpoints {
            let net = self.lookup_network(ep.network.as_str()).ok();
            self.roll_back_endpoint(net.as_deref(), ep)?;
        }
        let _ = std::fs::remove_dir_all(
            self.inner
                .config
                .exec_root
                .join("sandboxes")
                .join(id.as_str()),
        );
        if record.owned {
            if let Some(dir) = record.netns.parent() {
                Netns::delete_named_in(dir, id.as_str()).map_err(|e| {
                    Error::kernel(format!("deleting the namespace of {}", record.name), e)
                })?;
            }
        }
        self.inner.store.commit(
            Txn::new()
                .delete(sandbox_name_key(&record.name))
                .delete(sandbox_key(id)),
        )?;
        lock(&self.inner.degraded).remove(id);
        Ok(())
    }

    /// The name and reason of the sandbox kept aside that `key` names (`exact`: by name or
    /// id only, not by id prefix).
    pub(super) fn find_degraded(&self, key: &str, exact: bool) -> Option<(String, String)> {
        let map = lock(&self.inner.degraded);
        let found = if exact {
            map.iter()
                .find(|(id, d)| d.record.name == key || id.as_str() == key)
        } else {
            find_in(&map, key)
        };
        found.map(|(_, d)| (d.record.name.clone(), d.reason.clone()))
    }

    /// Inspect of the sandboxes kept aside (`key` limits it to the one it names).
    pub(super) fn inspect_degraded(&self, key: Option<&str>) -> Vec<SandboxInspect> {
        // Copied out: the map's lock is let go before the networks' registry is read.
        let picked: Vec<(SandboxRecord, Vec<EndpointRecord>, String)> = {
            let map = lock(&self.inner.degraded);
            let found: Vec<&DegradedSandbox> = match key {
                Some(k) => find_in(&map, k).map(|(_, d)| d).into_iter().collect(),
                None => map.values().collect(),
            };
            found
                .into_iter()
                .map(|d| {
                    let eps = d.endpoints.iter().map(|(ep, _)| ep.clone()).collect();
                    (d.record.clone(), eps, d.reason.clone())
                })
                .collect()
        };
        picked
            .into_iter()
            .map(|(record, endpoints, reason)| {
                let views: BTreeMap<NetworkId, EndpointView> = endpoints
                    .iter()
                    .map(|ep| {
                        let network_name = self
                            .lookup_network(ep.network.as_str())
                            .map(|n| n.record.name.clone())
                            .unwrap_or_else(|_| ep.network.to_string());
                        let view = EndpointView {
                            record: ep.clone(),
                            join: JoinInfo {
                                ifname: ep.ifname.clone().unwrap_or_default(),
                                ..JoinInfo::default()
                            },
                            network_name,
                        };
                        (ep.network.clone(), view)
                    })
                    .collect();
                let view = SandboxView {
                    endpoints: views,
                    troubles: vec![reason],
                };
                SandboxInspect {
                    name: record.name.clone(),
                    id: record.id.to_string(),
                    created: crate::time::go_rfc3339(&record.created),
                    sandbox_key: record.netns.display().to_string(),
                    hosts_path: None,
                    resolv_conf_path: None,
                    networks: networks_of(&view),
                    ports: ports_of(&view),
                    env: record.env.clone(),
                    link_env: Vec::new(),
                    degraded: view.troubles,
                }
            })
            .collect()
    }
}

/// The sandbox kept aside that `key` names: its name, id, or a unique id prefix.
fn find_in<'a>(
    map: &'a BTreeMap<SandboxId, DegradedSandbox>,
    key: &str,
) -> Option<(&'a SandboxId, &'a DegradedSandbox)> {
    if let Some(hit) = map
        .iter()
        .find(|(id, d)| d.record.name == key || id.as_str() == key)
    {
        return Some(hit);
    }
    let mut prefixed = map.iter().filter(|(id, _)| id.as_str().starts_with(key));
    match (prefixed.next(), prefixed.next()) {
        (Some(hit), None) if !key.is_empty() => Some(hit),
        _ => None,
    }
}

//! Sandboxes: create (record, then the namespace), remove (intent first), rename, and the
//! refusal to adopt the host's namespace.

use super::*;

impl Controller {
    /// Creates a sandbox; returns its id.
    pub fn create_sandbox(&self, req: SandboxCreate) -> Result<SandboxId> {
        let span = tracing::info_span!("create_sandbox", name = %req.name);
        let _enter = span.enter();
        validate_name("sandbox", &req.name)?;
        validate_sandbox_dns(&req)?;
        let id = SandboxId::from_bytes(random_id());
        let (path, owned, host_mode) = match &req.netns {
            SandboxNetns::Create => (self.inner.config.netns_dir().join(id.as_str()), true, false),
            SandboxNetns::Adopt(p) => (p.clone(), false, false),
            SandboxNetns::Host => (self.inner.host_key.clone(), false, true),
        };
        let record = SandboxRecord {
            id: id.clone(),
            name: req.name.clone(),
            created: now_rfc3339(),
            netns: path.clone(),
            owned,
            host_mode,
            hostname: req.hostname.clone(),
            domainname: req.domainname.clone(),
            dns_servers: req.dns.servers.clone(),
            dns_search: req.dns.search.clone(),
            dns_options: req.dns.options.clone(),
            extra_hosts: req
                .extra_hosts
                .iter()
                .map(|h| (h.names.clone(), h.addr))
                .collect(),
            removing: false,
            env: req.env.clone(),
        };
        let claim = Txn::new()
            .when(sandbox_name_key(&req.name), Expect::Absent)
            .put(sandbox_name_key(&req.name), id.as_str().as_bytes().to_vec())
            .put(sandbox_key(&id), encode(&record));
        if let Err(e) = self.inner.store.commit(claim) {
            return Err(self.sandbox_claim_error(e, &req.name));
        }
        hit("sandbox.create.recorded")?;
        let unclaim = |c: &Controller| {
            let _ = c.inner.store.commit(
                Txn::new()
                    .delete(sandbox_name_key(&record.name))
                    .delete(sandbox_key(&record.id)),
            );
        };
        let opened = match &req.netns {
            SandboxNetns::Create => Netns::create_in(&self.inner.config.netns_dir(), id.as_str()),
            SandboxNetns::Adopt(p) => Netns::open(p),
            SandboxNetns::Host => self.inner.host.try_clone(),
        };
        let netns = match opened {
            Ok(ns) => ns,
            Err(e) => {
                unclaim(self);
                if matches!(req.netns, SandboxNetns::Adopt(_)) && e.is_gone() {
                    // The caller named a path that is no namespace: their mistake, not the kernel's.
                    return Err(Error::InvalidRequest(format!(
                        "cannot adopt the namespace of sandbox {}: {e}",
                        req.name
                    )));
                }
                return Err(Error::kernel(
                    format!("namespace of sandbox {}", req.name),
                    e,
                ));
            }
        };
        if let SandboxNetns::Adopt(p) = &req.netns {
            if let Err(e) = self.refuse_host_namespace(&netns, p) {
                unclaim(self);
                return Err(e);
            }
        }
        if !host_mode {
            self.give_nsid(&netns);
        }
        hit("sandbox.create.netns")?;
        let setup = || -> berth_netlink::Result<Handle> {
            let nl = Handle::open(&netns)?;
            // Loopback up, also in an adopted namespace (the embedded DNS server listens on
            // 127.0.0.11 there); one the engine brought up already stays as it is.
            if !host_mode {
                nl.link_set_up("lo")?;
            }
            if owned {
                // Interfaces berth puts here get addresses nobody else has (IPAM says so):
                // skip duplicate address detection, so IPv6 works the moment a connect returns.
                for key in [
                    "net.ipv6.conf.all.accept_dad",
                    "net.ipv6.conf.default.accept_dad",
                ] {
                    if let Err(e) = sysctl_set(&netns, key, "0") {
                        tracing::debug!(key, error = %e, "IPv6 sysctl not set (IPv6 disabled?)");
                    }
                }
            }
            Ok(nl)
        };
        let prepared = setup()
            .map_err(|e| Error::kernel(format!("setting up sandbox {}", req.name), e))
            .and_then(|nl| Ok((nl, self.register_sandbox_dns(&record, &netns)?)));
        let (netlink, files) = match prepared {
            Ok(p) => p,
            Err(e) => {
                if owned {
                    let _ = netns.delete();
                }
                unclaim(self);
                return Err(e);
            }
        };
        let sb = Arc::new(Sandbox {
            name: RwLock::new(record.name.clone()),
            record,
            netns,
            netlink: std::sync::OnceLock::from(netlink),
            files,
            state: Mutex::new(SandboxState::default()),
            view: Mutex::default(),
        });
        // The first connect happens under the sandbox's lock, taken before the sandbox is
        // visible: another caller's connect by name waits for it (and then finds it connected)
        // instead of taking the network first and failing this create.
        let first = match &req.network {
            Some(network) => {
                let network = match network.as_str() {
                    "default" if self.read_networks().named("default").is_none() => {
                        if self.read_networks().named("bridge").is_some() {
                            "bridge"
                        } else {
                            "none"
                        }
                    }
                    other => other,
                };
                let net = match self.lookup_network(network) {
                    Ok(n) => n,
                    Err(e) => return self.abandon_created(sb, e),
                };
                match self.resolve_legacy_links(&sb, &net, &req.endpoint) {
                    Ok(links) => Some((net, links)),
                    Err(e) => return self.abandon_created(sb, e),
                }
            }
            None => None,
        };
        let mut st = lock(&sb.state);
        self.write_sandbox_files(&sb, &st);
        self.write_sandboxes()
            .insert(id.as_str(), &sb.name(), sb.clone());
        if let Some((net, links)) = first {
            let span =
                tracing::info_span!("connect", sandbox = %sb.name(), network = %net.record.name);
            let _enter = span.enter();
            if let Err(e) = self.connect_settled(&sb, &mut st, &net, req.endpoint.clone(), links) {
                drop(st);
                let _ = self.remove_sandbox(id.as_str());
                return Err(e);
            }
        }
        Ok(id)
    }

    /// A sandbox made but not yet visible whose first connect cannot even start: registered
    /// and removed as any sandbox, so nothing of it is left, and `e` returned.
    fn abandon_created(&self, sb: Arc<Sandbox>, e: Error) -> Result<SandboxId> {
        let id = sb.record.id.clone();
        self.write_sandboxes()
            .insert(id.as_str(), &sb.name(), sb.clone());
        let _ = self.remove_sandbox(id.as_str());
        Err(e)
    }

    /// Refuses to adopt a namespace that is the host's: the controller's host namespace, the
    /// process's own, or init's (compared by namespace inode; all namespaces share nsfs's
    /// device). Adopting one would let connect replace the host's default route and remove
    /// delete it.
    pub(super) fn refuse_host_namespace(
        &self,
        netns: &Netns,
        path: &std::path::Path,
    ) -> Result<()> {
        let own = Netns::open("/proc/self/ns/net").ok();
        let init = Netns::open("/proc/1/ns/net").ok();
        let hosts = std::iter::once(Some(&self.inner.host))
            .chain([own.as_ref(), init.as_ref()])
            .flatten();
        for host in hosts {
            if netns.same_as(host).unwrap_or(true) {
                return Err(Error::InvalidRequest(format!(
                    "{} is the host's network namespace: berth never adopts it as a sandbox (use the host network for a sandbox in the host's namespace)",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// The error of a failed claim of sandbox name `name`: [`Error::SandboxExists`] naming the
    /// holder when another sandbox has it, else the store's error.
    pub(super) fn sandbox_claim_error(&self, e: berth_store::Error, name: &str) -> Error {
        match e {
            berth_store::Error::Conflict { .. } => Error::SandboxExists {
                name: name.to_owned(),
                id: self
                    .inner
                    .store
                    .get(&sandbox_name_key(name))
                    .ok()
                    .flatten()
                    .map(|e| String::from_utf8_lossy(&e.value).into_owned())
                    .unwrap_or_default(),
            },
            other => other.into(),
        }
    }

    /// Removes a sandbox: leaves every network, then deletes its namespace if berth made it.
    /// A degraded sandbox (see [`Controller::retry_degraded`]) is removed too.
    pub fn remove_sandbox(&self, name_or_id: &str) -> Result<()> {
        let sb = match self.lookup_sandbox(name_or_id) {
            Ok(sb) => sb,
            Err(Error::Degraded { name, .. }) => {
                let span = tracing::info_span!("remove_sandbox", name = %name, degraded = true);
                let _enter = span.enter();
                return self
                    .remove_degraded(&name)
                    .unwrap_or(Err(Error::SandboxNotFound(name)));
            }
            Err(e) => return Err(e),
        };
        let span = tracing::info_span!("remove_sandbox", name = %sb.name());
        let _enter = span.enter();
        let mut st = lock(&sb.state);
        if st.removed {
            return Err(Error::SandboxNotFound(name_or_id.to_owned()));
        }
        // Intent first: a restart finishes a removal that a crash or a failure cut short.
        let mut intent = sb.record.clone();
        intent.name = sb.name();
        intent.removing = true;
        self.inner
            .store
            .put(&sandbox_key(&intent.id), &encode(&intent))?;
        hit("sandbox.remove.intent")?;
        let nets: Vec<NetworkId> = st.endpoints.keys().cloned().collect();
        let left = nets
            .iter()
            .try_for_each(|net| self.disconnect_locked(&sb, &mut st, net));
        self.publish(&sb, &st);
        left?;
        hit("sandbox.remove.endpoints")?;
        st.removed = true;
        drop(st);
        if let Some(files) = &sb.files {
            if let Some(dns) = self.dns() {
                let _ = dns.remove_sandbox(sb.record.id.as_str());
            }
            if let Err(e) = std::fs::remove_dir_all(files.dir()) {
                tracing::warn!(sandbox = %sb.name(), error = %e, "removing hosts/resolv.conf");
            }
        }
        self.write_sandboxes()
            .remove(sb.record.id.as_str(), &sb.name());
        if sb.record.owned {
            if let Some(p) = sb.netns.path() {
                let dir = p
                    .parent()
                    .map(std::path::Path::to_path_buf)
                    .unwrap_or_default();
                Netns::delete_named_in(&dir, sb.record.id.as_str()).map_err(|e| {
                    Error::kernel(format!("deleting the namespace of {}", sb.name()), e)
                })?;
            }
        }
        hit("sandbox.remove.netns")?;
        self.inner.store.commit(
            Txn::new()
                .delete(sandbox_name_key(&sb.name()))
                .delete(sandbox_key(&sb.record.id)),
        )?;
        Ok(())
    }

    /// Renames a sandbox (`docker rename`): the new name answers in the embedded DNS at once and
    /// the old one stops; its hostname, addresses and aliases stay. The new name must be free.
    pub fn rename_sandbox(&self, name_or_id: &str, new_name: &str) -> Result<()> {
        let sb = self.lookup_sandbox(name_or_id)?;
        validate_name("sandbox", new_name)?;
        let span = tracing::info_span!("rename_sandbox", name = %sb.name(), new_name);
        let _enter = span.enter();
        // Serialised with connect, disconnect and remove of this sandbox.
        let st = lock(&sb.state);
        if st.removed {
            return Err(Error::SandboxNotFound(name_or_id.to_owned()));
        }
        let old = sb.name();
        // A rename that lost a race to another rename of the same sandbox: the name it was
        // asked by is gone.
        if old == new_name && name_or_id != new_name && name_or_id != sb.record.id.as_str() {
            return Err(Error::SandboxNotFound(name_or_id.to_owned()));
        }
        if old == new_name {
            return Err(Error::InvalidRequest(format!(
                "renaming sandbox {old} to the name it already has"
            )));
        }
        let mut record = sb.record.clone();
        record.name = new_name.to_owned();
        let id = &sb.record.id;
        let txn = Txn::new()
            .when(sandbox_name_key(new_name), Expect::Absent)
            .put(sandbox_name_key(new_name), id.as_str().as_bytes().to_vec())
            .delete(sandbox_name_key(&old))
            .put(sandbox_key(id), encode(&record));
        if let Err(e) = self.inner.store.commit(txn) {
            return Err(self.sandbox_claim_error(e, new_name));
        }
        hit("sandbox.rename.recorded")?;
        {
            let mut reg = self.write_sandboxes();
            reg.remove(id.as_str(), &old);
            reg.insert(id.as_str(), new_name, sb.clone());
        }
        *write(&sb.name) = new_name.to_owned();
        if sb.files.is_some()
            && let Some(dns) = self.dns()
        {
            dns.rename_sandbox(id.as_str(), new_name).map_err(|e| {
                Error::InvalidRequest(format!("embedded DNS for sandbox {new_name}: {e}"))
            })?;
        }
        // The other hosts learn the new name on the sandbox's global networks. The rename
        // stands if the cluster store cannot be reached: the names are put again with the
        // next lease renewal that finds the lease lost, or at the next start.
        for a in st.endpoints.values() {
            if let Err(e) = self.publish_names(&sb, &a.network, &a.record) {
                tracing::warn!(network = %a.network.record.name, error = %e, "the new name is not published in the cluster store");
            }
        }
        drop(st);
        Ok(())
    }

    /// A sandbox's namespace handle (duplicated), e.g. to run a process inside it.
    pub fn sandbox_netns(&self, name_or_id: &str) -> Result<Netns> {
        let sb = self.lookup_sandbox(name_or_id)?;
        sb.netns
            .try_clone()
            .map_err(|e| Error::kernel("duplicating a namespace handle", e))
    }
}

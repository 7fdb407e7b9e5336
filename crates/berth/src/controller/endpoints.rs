//! Connect and disconnect, with the undo of a failed connect and the intent-first steps of a
//! disconnect; the sandbox's default routes.

use berth_driver::Egress;

use super::*;

impl Controller {
    /// Connects a sandbox to a network, live; returns the endpoint id.
    pub fn connect(
        &self,
        sandbox: &str,
        network: &str,
        opts: EndpointOptions,
    ) -> Result<EndpointId> {
        let sb = self.lookup_sandbox(sandbox)?;
        let net = self.lookup_network(network)?;
        let span = tracing::info_span!("connect", sandbox = %sb.name(), network = %net.record.name);
        let _enter = span.enter();
        // Linked sandboxes are read before this sandbox's lock is taken: two sandboxes linking
        // each other at once never wait on each other's lock.
        let legacy_links = self.resolve_legacy_links(&sb, &net, &opts)?;
        let mut st = lock(&sb.state);
        if st.removed {
            return Err(Error::SandboxNotFound(sandbox.to_owned()));
        }
        self.connect_settled(&sb, &mut st, &net, opts, legacy_links)
    }

    /// A connect with the sandbox's lock held (and its legacy links resolved before it was
    /// taken): checks, the steps, their undo on failure, and the published view.
    pub(super) fn connect_locked(
        &self,
        sb: &Sandbox,
        st: &mut SandboxState,
        net: &Arc<Network>,
        opts: EndpointOptions,
        legacy_links: Vec<LegacyLink>,
        for_egress: bool,
    ) -> Result<EndpointId> {
        self.check_connect(sb, st, net, &opts)?;
        let id = EndpointId::from_bytes(random_id());
        {
            let mut members = lock(&net.members);
            if members.removed {
                return Err(Error::NetworkNotFound(net.record.name.clone()));
            }
            members.endpoints.insert(id.clone(), sb.record.id.clone());
        }
        let mut undo = Undo::default();
        let req = ConnectRequest {
            opts,
            legacy_links,
            for_egress,
        };
        let result = match self.connect_steps(sb, st, net, &id, req, &mut undo) {
            Ok(()) => Ok(id),
            Err(e) => {
                self.rollback_connect(sb, st, net, &id, undo);
                Err(e)
            }
        };
        self.publish(sb, st);
        result
    }

    pub(super) fn check_connect(
        &self,
        sb: &Sandbox,
        st: &SandboxState,
        net: &Network,
        opts: &EndpointOptions,
    ) -> Result<()> {
        let name = &sb.name();
        if st.endpoints.contains_key(&net.record.id) {
            return Err(Error::AlreadyConnected {
                sandbox: name.clone(),
                network: net.record.name.clone(),
            });
        }
        if let Some(ifname) = &opts.ifname {
            berth_netlink::validate_ifname(ifname).map_err(|e| {
                Error::InvalidRequest(format!("interface name {ifname:?} for sandbox {name}: {e}"))
            })?;
            let taken = ifname == "lo"
                || st
                    .endpoints
                    .values()
                    .any(|a| a.record.ifname.as_deref() == Some(ifname.as_str()));
            if taken {
                return Err(Error::InvalidRequest(format!(
                    "interface name {ifname:?} is already used in sandbox {name}"
                )));
            }
        }
        let caps = net.driver.capabilities();
        if sb.record.host_mode != (caps.data_path == DataPath::HostNamespace) {
            return Err(Error::InvalidRequest(format!(
                "sandbox {name}: the host network is only for sandboxes created in the host's namespace, and those cannot join other networks"
            )));
        }
        let has_null = st
            .endpoints
            .values()
            .any(|a| a.network.driver.capabilities().data_path == DataPath::Isolated);
        if (caps.data_path == DataPath::Isolated && !st.endpoints.is_empty()) || has_null {
            return Err(Error::InvalidRequest(format!(
                "sandbox {name} cannot be connected to multiple networks with one of the networks in private (none) mode"
            )));
        }
        let user_defined = !PREDEFINED_NETWORKS.contains(&net.record.name.as_str());
        if (opts.ipv4.is_some() || opts.ipv6.is_some()) && !user_defined {
            return Err(Error::InvalidRequest(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        if !opts.aliases.is_empty() && !user_defined {
            return Err(Error::InvalidRequest(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
        let user_subnet = |pools: &[PoolRecord]| pools.iter().any(|p| p.user_subnet);
        if (opts.ipv4.is_some() && !user_subnet(&net.record.pools_v4))
            || (opts.ipv6.is_some() && net.record.enable_ipv6 && !user_subnet(&net.record.pools_v6))
        {
            return Err(Error::InvalidRequest(
                "user specified IP address is supported only when connecting to networks with user configured subnets".into(),
            ));
        }
        if opts.ipv6.is_some() && !net.record.enable_ipv6 {
            return Err(Error::InvalidRequest(format!(
                "network {} has no IPv6 subnet for --ip6",
                net.record.name
            )));
        }
        let publishing = !opts.ports.is_empty() || (opts.publish_all && !opts.exposed.is_empty());
        if publishing && caps.creates_interfaces() && !caps.publishes_ports && !caps.ignores_ports {
            // The gateway bridge publishes them for a driver that leaves the way out to it
            // (as Docker's overlay); an internal network has no way out to publish them on.
            if caps.egress == Egress::GatewayBridge && net.record.internal {
                return Err(Error::InvalidRequest(format!(
                    "ports cannot be published on network {}: it is internal (no way out)",
                    net.record.name
                )));
            }
            if caps.egress != Egress::GatewayBridge {
                return Err(Error::InvalidRequest(format!(
                    "ports cannot be published on network {}: its driver {} does not publish ports",
                    net.record.name, net.record.driver
                )));
            }
        }
        Ok(())
    }

    pub(super) fn connect_steps(
        &self,
        sb: &Sandbox,
        st: &mut SandboxState,
        net: &Arc<Network>,
        id: &EndpointId,
        req: ConnectRequest,
        undo: &mut Undo,
    ) -> Result<()> {
        let ConnectRequest {
            opts,
            legacy_links,
            for_egress,
        } = req;
        let creates = net.driver.capabilities().creates_interfaces();
        // On a global network, the cluster store learns of the endpoint first: a removal on
        // another host then waits for it (and one under way refuses this connect).
        self.mark_global_endpoint(net, id)?;
        undo.marked = true;
        let (ipv4, ipv6) = if creates {
            self.allocate_addresses(net, &opts, undo)?
        } else {
            (None, None)
        };
        let ifname = creates.then(|| {
            opts.ifname
                .clone()
                .unwrap_or_else(|| next_ifname(st, Controller::iface_prefix(&net.record)))
        });
        let caps = net.driver.capabilities();
        let mut specs = opts.ports.clone();
        if opts.publish_all {
            specs.extend(opts.exposed.iter().map(|e| PortSpec {
                host_ip: None,
                host_ports: None,
                container_ports: e.ports,
                proto: e.proto,
            }));
        }
        if caps.ignores_ports {
            // Docker's macvlan and ipvlan accept -p and --expose and ignore them, with these
            // warnings.
            if !specs.is_empty() {
                tracing::warn!(
                    network = %net.record.name,
                    "{} driver does not support port mappings",
                    net.record.driver
                );
                specs.clear();
            }
            if !opts.exposed.is_empty() {
                tracing::warn!(
                    network = %net.record.name,
                    "{} driver does not support port exposures",
                    net.record.driver
                );
            }
        }
        let mut record = EndpointRecord {
            id: id.clone(),
            network: net.record.id.clone(),
            sandbox: sb.record.id.clone(),
            ifname: ifname.clone(),
            ipv4,
            ipv6,
            mac: opts.mac,
            aliases: opts.aliases.clone(),
            links: opts.links.clone(),
            user_ipv4: opts.ipv4.is_some(),
            user_ipv6: opts.ipv6.is_some(),
            ports: Vec::new(),
            exposed: opts.exposed.clone(),
            legacy_links,
            driver_opts: opts.driver_opts.clone(),
            state: EndpointState::Pending,
            for_egress,
            requested_ports: specs.clone(),
        };
        // Intent first: the addresses are taken in the store before the kernel is touched.
        self.inner.store.put(&endpoint_key(id), &encode(&record))?;
        undo.record = true;
        hit("connect.pending")?;
        let info = net.driver.create_endpoint(&record.spec())?;
        undo.driver_endpoint = true;
        hit("connect.endpoint")?;
        record.mac = info.mac;
        let join = net.driver.join(&JoinRequest {
            network: &net.record.id,
            endpoint: id,
            sandbox: SandboxRef {
                id: &sb.record.id,
                netns: berth_driver::NetnsRef {
                    path: &sb.record.netns,
                    fd: Some(std::os::fd::AsFd::as_fd(&sb.netns)),
                },
            },
            ifname: ifname.as_deref().unwrap_or(""),
        })?;
        undo.joined = true;
        hit("connect.joined")?;
        st.endpoints.insert(
            net.record.id.clone(),
            Attachment {
                record: record.clone(),
                join,
                network: net.clone(),
            },
        );
        undo.attached = true;
        self.update_default_routes(sb, st)?;
        hit("connect.routes")?;
        // A driver that publishes no ports and leaves the way out to the gateway bridge keeps
        // them in the record: the sandbox's gateway bridge endpoint publishes them.
        let via_gateway_bridge = caps.egress == Egress::GatewayBridge && !caps.publishes_ports;
        if !specs.is_empty() && !via_gateway_bridge {
            undo.ports = true;
            record.ports = net
                .driver
                .program_external_connectivity(&net.record.id, id, &specs)?;
        }
        hit("connect.ports")?;
        self.dns_connect(sb, net, &record)?;
        undo.dns = true;
        hit("connect.dns")?;
        let holes = holes_of(&record);
        if !holes.is_empty() {
            undo.holes = true;
            net.driver.open_link_holes(&net.record.id, &holes)?;
        }
        hit("connect.links")?;
        record.state = EndpointState::Active;
        self.inner.store.put(&endpoint_key(id), &encode(&record))?;
        hit("connect.active")?;
        if let Some(a) = st.endpoints.get_mut(&net.record.id) {
            a.record = record;
        }
        self.write_sandbox_files(sb, st);
        Ok(())
    }

    pub(super) fn allocate_addresses(
        &self,
        net: &Network,
        opts: &EndpointOptions,
        undo: &mut Undo,
    ) -> Result<(Option<ipnet::Ipv4Net>, Option<ipnet::Ipv6Net>)> {
        let mut v4 = None;
        let mut v6 = None;
        for pool in &net.pools {
            let family = family_of(&pool.subnet);
            let (taken, preferred) = match family {
                IpFamily::V4 => (v4.is_some(), opts.ipv4.map(IpAddr::V4)),
                IpFamily::V6 => (v6.is_some(), opts.ipv6.map(IpAddr::V6)),
            };
            if taken {
                continue;
            }
            let req = preferred.map_or(AddressRequest::Next, AddressRequest::Preferred);
            let got = net
                .ipam
                .request_address(&pool.id, req)
                .map_err(|e| Controller::ipam_err(&*net.ipam, e))?;
            undo.addresses.push((pool.id.clone(), got.addr()));
            match got {
                IpNet::V4(a) => v4 = Some(a),
                IpNet::V6(a) => v6 = Some(a),
            }
        }
        Ok((v4, v6))
    }

    pub(super) fn rollback_connect(
        &self,
        sb: &Sandbox,
        st: &mut SandboxState,
        net: &Network,
        id: &EndpointId,
        undo: Undo,
    ) {
        if undo.holes {
            let addrs: Vec<IpAddr> = undo.addresses.iter().map(|(_, a)| *a).collect();
            let _ = net.driver.close_link_holes(&net.record.id, &addrs);
        }
        if undo.dns
            && let Some(dns) = self.dns()
        {
            let _ = dns.disconnect(sb.record.id.as_str(), net.record.id.as_str());
        }
        if undo.ports {
            let _ = net.driver.revoke_external_connectivity(&net.record.id, id);
        }
        if undo.attached {
            st.endpoints.remove(&net.record.id);
            let _ = self.update_default_routes(sb, st);
        }
        if undo.joined {
            let _ = net.driver.leave(&net.record.id, id);
        }
        if undo.driver_endpoint {
            let _ = net.driver.delete_endpoint(&net.record.id, id);
        }
        for (pool, addr) in &undo.addresses {
            let _ = net.ipam.release_address(pool, *addr);
        }
        if undo.record {
            let _ = self.inner.store.delete(&endpoint_key(id));
        }
        if undo.marked {
            let _ = self.unmark_global_endpoint(net, id);
        }
        lock(&net.members).endpoints.remove(id);
    }

    /// Disconnects a sandbox from a network, live.
    pub fn disconnect(&self, sandbox: &str, network: &str) -> Result<()> {
        let sb = self.lookup_sandbox(sandbox)?;
        let net = self.lookup_network(network)?;
        let span =
            tracing::info_span!("disconnect", sandbox = %sb.name(), network = %net.record.name);
        let _enter = span.enter();
        let mut st = lock(&sb.state);
        if !st.endpoints.contains_key(&net.record.id) {
            return Err(Error::NotConnected {
                sandbox: sb.name(),
                network: net.record.name.clone(),
            });
        }
        let result = self.disconnect_locked(&sb, &mut st, &net.record.id);
        if result.is_ok() {
            // The disconnect stands whatever the gateway bridge does; a failure here is tried
            // again by the sandbox's next change.
            if let Err(e) = self.settle_gateway_bridge(&sb, &mut st) {
                tracing::warn!(sandbox = %sb.name(), error = %e, "the gateway bridge after a disconnect");
            }
        }
        self.publish(&sb, &st);
        result
    }

    /// Disconnects one endpoint. The intent is recorded first (the endpoint's record turns
    /// `Removing`), then every step is idempotent, so a failed disconnect can be asked again
    /// and a restart finishes one that a crash cut short (it never restores a `Removing`
    /// endpoint).
    pub(super) fn disconnect_locked(
        &self,
        sb: &Sandbox,
        st: &mut SandboxState,
        network: &NetworkId,
    ) -> Result<()> {
        let Some(att) = st.endpoints.get_mut(network) else {
            return Ok(());
        };
        if att.record.state != EndpointState::Removing {
            let mut intent = att.record.clone();
            intent.state = EndpointState::Removing;
            self.inner
                .store
                .put(&endpoint_key(&intent.id), &encode(&intent))?;
            att.record = intent;
        }
        hit("disconnect.intent")?;
        let net = att.network.clone();
        let id = att.record.id.clone();
        let addrs = att.record.addresses();
        if sb.files.is_some()
            && let Some(dns) = self.dns()
        {
            let _ = dns.disconnect(sb.record.id.as_str(), network.as_str());
        }
        hit("disconnect.dns")?;
        net.driver.close_link_holes(network, &addrs)?;
        net.driver.revoke_external_connectivity(network, &id)?;
        hit("disconnect.ports")?;
        match net.driver.leave(network, &id) {
            Ok(()) | Err(berth_driver::DriverError::EndpointNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let _ = net.driver.delete_endpoint(network, &id);
        hit("disconnect.leave")?;
        st.endpoints.remove(network);
        st.troubles.remove(network);
        self.write_sandbox_files(sb, st);
        // The interface is gone, and its routes with it: a failure to point the default route
        // elsewhere does not undo the disconnect (the next change of the sandbox tries again).
        if let Err(e) = self.update_default_routes(sb, st) {
            tracing::warn!(sandbox = %sb.name(), error = %e, "default route after a disconnect");
        }
        hit("disconnect.routes")?;
        for addr in addrs {
            for pool in &net.pools {
                if pool.subnet.contains(&addr) {
                    let _ = net.ipam.release_address(&pool.id, addr);
                }
            }
        }
        lock(&net.members).endpoints.remove(&id);
        hit("disconnect.released")?;
        self.inner.store.delete(&endpoint_key(&id))?;
        // A mark left by a failure here is taken away by the next start.
        if let Err(e) = self.unmark_global_endpoint(&net, &id) {
            tracing::warn!(endpoint = %id.short(), error = %e, "removing the endpoint's mark from the cluster store");
        }
        Ok(())
    }

    /// Points the sandbox's default routes at the first non-internal network, in lexical order of
    /// network name, that offers a gateway; removes them when there is none.
    pub(super) fn update_default_routes(&self, sb: &Sandbox, st: &mut SandboxState) -> Result<()> {
        self.default_routes(sb, st, false)
    }

    /// After a trusted start's restore (see `trusted_restore`): the routes
    /// [`Controller::update_default_routes`] would set are taken to be there, as the previous
    /// opener left them; the kernel is not asked.
    pub(super) fn take_default_routes_as_left(&self, sb: &Sandbox, st: &mut SandboxState) {
        // Cannot fail: nothing is asked of the kernel.
        let _ = self.default_routes(sb, st, true);
    }

    fn default_routes(&self, sb: &Sandbox, st: &mut SandboxState, as_left: bool) -> Result<()> {
        let pick = |v6: bool| -> Option<(NetworkId, String, IpAddr)> {
            let candidates = st.endpoints.values().map(|a| RouteCandidate {
                network: &a.record.network,
                name: &a.network.record.name,
                internal: a.network.record.internal,
                ifname: &a.join.ifname,
                gateway: if a.network.driver.capabilities().egress == berth_driver::Egress::Isolated
                {
                    None
                } else if v6 {
                    a.join.gateway_v6.map(IpAddr::V6)
                } else {
                    a.join.gateway_v4.map(IpAddr::V4)
                },
            });
            choose_default_route(candidates)
                .and_then(|c| Some((c.network.clone(), c.ifname.to_owned(), c.gateway?)))
        };
        for v6 in [false, true] {
            let want = pick(v6);
            let current = if v6 { &st.gateway_v6 } else { &st.gateway_v4 };
            let want_id = want.as_ref().map(|w| w.0.clone());
            if *current == want_id {
                continue;
            }
            if as_left {
                if v6 {
                    st.gateway_v6 = want_id;
                } else {
                    st.gateway_v4 = want_id;
                }
                continue;
            }
            let base = if v6 {
                RouteSpec::default_v6()
            } else {
                RouteSpec::default_v4()
            };
            let netlink = sb
                .netlink()
                .map_err(|e| Error::kernel(format!("netlink in sandbox {}", sb.name()), e))?;
            match want {
                Some((_, ifname, gw)) => netlink
                    .route_replace(&base.via(gw).dev(ifname.as_str()))
                    .map_err(|e| {
                        Error::kernel(format!("default route of sandbox {}", sb.name()), e)
                    })?,
                None => match netlink.route_delete(&base) {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        return Err(Error::kernel(
                            format!("removing the default route of sandbox {}", sb.name()),
                            e,
                        ));
                    }
                },
            }
            if v6 {
                st.gateway_v6 = want_id;
            } else {
                st.gateway_v4 = want_id;
            }
        }
        Ok(())
    }
}

/// One endpoint of a sandbox as the choice of its default route (one family) sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RouteCandidate<'a> {
    pub(super) network: &'a NetworkId,
    /// The network's name (the choice goes by it).
    pub(super) name: &'a str,
    pub(super) internal: bool,
    /// The endpoint's interface in the sandbox.
    pub(super) ifname: &'a str,
    /// The gateway of this family its join offered.
    pub(super) gateway: Option<IpAddr>,
}

/// Docker's choice of a sandbox's default route for one family: the endpoint on the first
/// network, in lexical order of network name, that is not internal and offers a gateway of the
/// family; none when no endpoint does.
pub(super) fn choose_default_route<'a>(
    candidates: impl IntoIterator<Item = RouteCandidate<'a>>,
) -> Option<RouteCandidate<'a>> {
    candidates
        .into_iter()
        .filter(|c| !c.internal && c.gateway.is_some())
        .min_by(|a, b| a.name.cmp(b.name))
}

/// A connect's options with its legacy links resolved.
pub(super) struct ConnectRequest {
    opts: EndpointOptions,
    legacy_links: Vec<LegacyLink>,
    /// The controller connects the sandbox to the gateway bridge for its way out.
    for_egress: bool,
}

/// What a failed connect must undo, in reverse order.
#[derive(Default)]
pub(super) struct Undo {
    /// Addresses taken, by pool id.
    addresses: Vec<(String, IpAddr)>,
    record: bool,
    driver_endpoint: bool,
    joined: bool,
    attached: bool,
    ports: bool,
    dns: bool,
    /// Legacy-link holes were asked for (closed by the endpoint's addresses).
    holes: bool,
    /// The endpoint is marked in the cluster store (a global network).
    marked: bool,
}

/// The lowest free name `<prefix><n>` in the sandbox (`eth0`, `eth1`, ...; Docker counts per
/// prefix too).
pub(super) fn next_ifname(st: &SandboxState, prefix: &str) -> String {
    let used: BTreeSet<&str> = st
        .endpoints
        .values()
        .filter_map(|a| a.record.ifname.as_deref())
        .collect();
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|n| !used.contains(n.as_str()))
        .unwrap_or_else(|| format!("{prefix}0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<NetworkId> {
        (1..=4u8).map(|i| NetworkId::from_bytes([i; 32])).collect()
    }

    fn cand<'a>(
        id: &'a NetworkId,
        name: &'a str,
        internal: bool,
        gw: Option<&str>,
    ) -> RouteCandidate<'a> {
        RouteCandidate {
            network: id,
            name,
            internal,
            ifname: "eth0",
            gateway: gw.map(|g| {
                g.parse()
                    .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
            }),
        }
    }

    #[test]
    fn the_default_route_goes_to_the_first_network_by_name_that_can_carry_it() {
        let ids = ids();
        // Lexical order of names, not the order of connects.
        let picked = choose_default_route([
            cand(&ids[0], "zeta", false, Some("10.0.0.1")),
            cand(&ids[1], "alpha", false, Some("10.1.0.1")),
            cand(&ids[2], "mid", false, Some("10.2.0.1")),
        ]);
        assert_eq!(picked.map(|c| c.name), Some("alpha"));
        // Internal networks and networks without a gateway of the family are passed over.
        let picked = choose_default_route([
            cand(&ids[0], "alpha", true, Some("10.0.0.1")),
            cand(&ids[1], "beta", false, None),
            cand(&ids[2], "gamma", false, Some("10.2.0.1")),
        ]);
        assert_eq!(picked.map(|c| c.network), Some(&ids[2]));
        // None that can: no default route.
        assert_eq!(
            choose_default_route([
                cand(&ids[0], "alpha", true, Some("10.0.0.1")),
                cand(&ids[1], "beta", false, None),
            ]),
            None
        );
        assert_eq!(choose_default_route([]), None);
    }
}

//! Networks: create (pools first, then the record, then the driver), remove (intent first),
//! prune, and the predefined `bridge`, `host` and `none`.

use super::*;
use crate::config::DefaultBridge;

/// The network option that names the interfaces its endpoints get in sandboxes (`eth` by
/// default: `eth0`, `eth1`, ...); Docker's generic option, the controller's rather than the
/// driver's.
pub const IFACE_PREFIX_OPTION: &str = "com.docker.network.container_iface_prefix";

impl Controller {
    /// Creates a network; returns its id. Warnings (options kept without effect) are logged; see
    /// [`Controller::create_network_with_warnings`].
    pub fn create_network(&self, req: NetworkCreate) -> Result<NetworkId> {
        let (id, warnings) = self.create_network_with_warnings(req)?;
        for w in warnings {
            tracing::warn!(network = %id.short(), "{w}");
        }
        Ok(id)
    }

    /// Creates a network; returns its id and the warnings of the create (Docker's `Warning` of
    /// the create response): each option the driver does not know, kept as Docker keeps it
    /// (unless [`Config::strict_options`] refuses it).
    pub fn create_network_with_warnings(
        &self,
        req: NetworkCreate,
    ) -> Result<(NetworkId, Vec<String>)> {
        let span = tracing::info_span!("create_network", name = %req.name, driver = %req.driver);
        let _enter = span.enter();
        validate_name("network", &req.name)?;
        let driver = self.driver(&req.driver)?;
        if !driver.capabilities().user_creatable {
            return Err(Error::InvalidRequest(format!(
                "only one instance of \"{}\" network is allowed",
                req.driver
            )));
        }
        // Only an existing *name* conflicts: a new name may well be a prefix of some network's id.
        if self.read_networks().named(&req.name).is_some() {
            return Err(Error::NetworkExists(req.name));
        }
        // `bridge` is absent when `Config::default_bridge` is None: the name stays reserved.
        if PREDEFINED_NETWORKS.contains(&req.name.as_str()) {
            return Err(Error::InvalidRequest(format!(
                "{} is a pre-defined network and cannot be created",
                req.name
            )));
        }
        let (options, unknown) =
            self.parse_network_options(&*driver, &req.options, self.inner.config.strict_options)?;
        let id = self.create_network_parsed(req, driver, options)?;
        let warnings = unknown
            .into_iter()
            .map(|k| format!("option {k:?} is not known to the network's driver: it is kept and shown in inspect, and has no effect"))
            .collect();
        Ok((id, warnings))
    }

    /// Parses a network's options for its driver: the controller's own
    /// ([`IFACE_PREFIX_OPTION`]) are checked and taken out first; a key the driver refuses as
    /// unknown is left out of its parse and returned, unless `strict`.
    pub(super) fn parse_network_options(
        &self,
        driver: &dyn Driver,
        raw: &RawOptions,
        strict: bool,
    ) -> Result<(berth_driver::ParsedOptions, Vec<String>)> {
        let mut for_driver = raw.clone();
        if let Some(prefix) = for_driver.remove(IFACE_PREFIX_OPTION) {
            iface_prefix_checked(&prefix)?;
        }
        Ok(berth_driver::parse_known(&for_driver, strict, |raw| {
            driver.parse_options(raw)
        })?)
    }

    pub(super) fn create_network_inner(
        &self,
        req: NetworkCreate,
        driver: Arc<dyn Driver>,
    ) -> Result<NetworkId> {
        let (options, _) = self.parse_network_options(&*driver, &req.options, true)?;
        self.create_network_parsed(req, driver, options)
    }

    fn create_network_parsed(
        &self,
        req: NetworkCreate,
        driver: Arc<dyn Driver>,
        options: berth_driver::ParsedOptions,
    ) -> Result<NetworkId> {
        if req.enable_ipv6 {
            self.ensure_ipv6_forwarding(&req.name)?;
        }
        let caps = driver.capabilities();
        let scope = caps.scope;
        let store = self.store_for(scope)?.clone();
        let ipam = self.ipam_for(&req.ipam_driver, scope)?;
        let id = NetworkId::from_bytes(random_id());
        // A global network's own watch leaves it to this creation (see `cluster`).
        let _creating = self.creating(&id, scope);
        let (pools_v4, pools_v6, pool_ids) = if caps.creates_interfaces() {
            self.allocate_pools(&req, &ipam, scope)?
        } else {
            (Vec::new(), Vec::new(), Vec::new())
        };
        let record = NetworkRecord {
            id: id.clone(),
            name: req.name.clone(),
            driver: driver.name().to_owned(),
            created: now_rfc3339(),
            internal: req.internal,
            attachable: req.attachable,
            enable_ipv6: req.enable_ipv6,
            options: req.options.clone(),
            labels: req.labels.clone(),
            pools_v4,
            pools_v6,
            removing: false,
            scope,
            ipam_driver: req.ipam_driver.clone(),
            ipam_options: req.ipam_options.clone(),
        };
        let release_pools = || {
            for p in &pool_ids {
                let _ = ipam.release_pool(&p.id);
            }
        };
        // What the driver reserves across hosts (the overlay's VXLAN id) is stored with the
        // network's options, for every host's driver and for inspect.
        let (record, options) = match self.allocate_network(&*driver, record, options) {
            Ok(r) => r,
            Err(e) => {
                release_pools();
                return Err(e);
            }
        };
        let release_pools = || {
            release_pools();
            self.free_network(&*driver, &record);
        };
        let txn = Txn::new()
            .when(network_name_key(&req.name), Expect::Absent)
            .put(network_name_key(&req.name), id.as_str().as_bytes().to_vec())
            .put(network_key(&id), encode(&record));
        if let Err(e) = store.commit(txn) {
            release_pools();
            return Err(match e {
                berth_store::Error::Conflict { .. } => Error::NetworkExists(req.name),
                other => other.into(),
            });
        }
        hit("network.create.recorded")?;
        let forget = || {
            release_pools();
            let _ = store.commit(
                Txn::new()
                    .delete(network_name_key(&req.name))
                    .delete(network_key(&id)),
            );
        };
        if let Err(e) = driver.create_network(&spec_of(&record), &options) {
            forget();
            return Err(e.into());
        }
        hit("network.create.driver")?;
        let policy = match self.add_host_policy(&*driver, &record, &options) {
            Ok(p) => p,
            Err(e) => {
                let _ = driver.delete_network(&id);
                forget();
                return Err(e);
            }
        };
        if let Err(e) = self.dns_network(&record) {
            self.remove_host_policy(policy.as_deref());
            let _ = driver.delete_network(&id);
            forget();
            return Err(e);
        }
        self.register_network(Network {
            record,
            driver,
            ipam,
            policy,
            pools: pool_ids,
            members: Mutex::new(Members::default()),
        });
        tracing::info!(id = %id.short(), %scope, "network created");
        Ok(id)
    }

    /// Asks the driver to reserve what the new network needs across hosts; the options it
    /// returns are added to the record's (replacing a key given by the user) and the whole
    /// set parsed again for the driver.
    fn allocate_network(
        &self,
        driver: &dyn Driver,
        mut record: NetworkRecord,
        options: berth_driver::ParsedOptions,
    ) -> Result<(NetworkRecord, berth_driver::ParsedOptions)> {
        let allocated = driver.allocate_network(&spec_of(&record), &record.options)?;
        if allocated.is_empty() {
            return Ok((record, options));
        }
        record.options.extend(allocated);
        match self.parse_network_options(driver, &record.options, false) {
            Ok((options, _)) => Ok((record, options)),
            Err(e) => {
                self.free_network(driver, &record);
                Err(e)
            }
        }
    }

    /// Releases what the driver reserved for a network that is gone (or was never made); a
    /// failure is logged (what stays reserved is the driver's to reuse or report).
    pub(super) fn free_network(&self, driver: &dyn Driver, record: &NetworkRecord) {
        if let Err(e) = driver.free_network(&record.id, &record.options) {
            tracing::warn!(network = %record.name, error = %e, "releasing the network's driver reservations");
        }
    }

    /// Requests the network's pools and gateways from IPAM; all or nothing.
    pub(super) fn allocate_pools(
        &self,
        req: &NetworkCreate,
        ipam: &Arc<dyn IpamDriver>,
        scope: berth_driver::Scope,
    ) -> Result<(Vec<PoolRecord>, Vec<PoolRecord>, Vec<Pool>)> {
        let space = match scope {
            berth_driver::Scope::Local => AddressSpace::Local,
            berth_driver::Scope::Global => AddressSpace::Global,
        };
        let mut wanted: Vec<(IpFamily, IpamPoolConfig)> = Vec::new();
        for p in &req.ipam {
            let family = match (p.subnet, p.gateway, p.ip_range) {
                (Some(s), _, _) => family_of(&s),
                (None, Some(g), _) => family_of_addr(g),
                (None, None, Some(r)) => family_of(&r),
                (None, None, None) => IpFamily::V4,
            };
            if family == IpFamily::V6 && !req.enable_ipv6 {
                return Err(Error::InvalidRequest(format!(
                    "network {}: an IPv6 subnet needs --ipv6",
                    req.name
                )));
            }
            wanted.push((family, p.clone()));
        }
        if !wanted.iter().any(|(f, _)| *f == IpFamily::V4) {
            wanted.insert(0, (IpFamily::V4, IpamPoolConfig::default()));
        }
        if req.enable_ipv6 && !wanted.iter().any(|(f, _)| *f == IpFamily::V6) {
            wanted.push((IpFamily::V6, IpamPoolConfig::default()));
        }
        let exclude = self.host_exclusions();
        let ipam_err = |e| Controller::ipam_err(&**ipam, e);
        let mut ids: Vec<Pool> = Vec::new();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (_, p) in &wanted {
            if let Some(IpNet::V4(net)) = p.subnet
                && net.prefix_len() >= 31
            {
                // Docker's allocator keeps the network and broadcast addresses of every IPv4
                // subnet: a /31 or /32 has none left for the gateway.
                let gw = p.gateway.map(|g| g.to_string()).unwrap_or_default();
                return Err(Error::InvalidRequest(format!(
                    "failed to allocate gateway ({gw}): No available addresses on this pool: subnet {net} leaves no address for a gateway and endpoints; use a /30 or a larger subnet"
                )));
            }
        }
        let result = (|| -> Result<()> {
            for (family, p) in &wanted {
                let mut pr = match p.subnet {
                    Some(s) => PoolRequest::subnet(space, s),
                    None => PoolRequest {
                        exclude: exclude.clone(),
                        ..PoolRequest::next(space, *family)
                    },
                };
                pr.ip_range = p.ip_range;
                pr.aux_addresses = p.aux_addresses.clone();
                pr.options = req.ipam_options.clone();
                let pool = ipam.request_pool(&pr).map_err(ipam_err)?;
                ids.push(pool.clone());
                let gateway = ipam
                    .request_address(&pool.id, AddressRequest::Gateway(p.gateway))
                    .map_err(ipam_err)?;
                let rec = PoolRecord {
                    subnet: pool.subnet,
                    ip_range: pool.ip_range,
                    gateway: Some(gateway),
                    aux_addresses: p.aux_addresses.clone(),
                    user_subnet: p.subnet.is_some(),
                    user_gateway: p.gateway.is_some(),
                    given: p.subnet.filter(|s| *s != s.trunc()),
                    pool_id: Some(pool.id.clone()),
                };
                match family {
                    IpFamily::V4 => v4.push(rec),
                    IpFamily::V6 => v6.push(rec),
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok((v4, v6, ids)),
            Err(e) => {
                for pool in &ids {
                    let _ = ipam.release_pool(&pool.id);
                }
                Err(e)
            }
        }
    }

    /// Makes a network made, restored or learned here visible.
    pub(super) fn register_network(&self, net: Network) {
        let net = Arc::new(net);
        self.write_networks()
            .insert(net.record.id.as_str(), &net.record.name, net.clone());
    }

    /// The interface-name prefix of the network's endpoints in sandboxes.
    pub(super) fn iface_prefix(rec: &NetworkRecord) -> &str {
        rec.options
            .get(IFACE_PREFIX_OPTION)
            .map_or("eth", String::as_str)
    }

    /// Adds the driver's host policy for the network (see
    /// [`berth_driver::NetworkDriver::host_policy`]) to berth's firewall, if berth runs one;
    /// returns the interface it holds it under.
    pub(super) fn add_host_policy(
        &self,
        driver: &dyn Driver,
        rec: &NetworkRecord,
        options: &berth_driver::ParsedOptions,
    ) -> Result<Option<String>> {
        let Some(fw) = &self.inner.firewall else {
            return Ok(None);
        };
        let Some(p) = driver.host_policy(&spec_of(rec), options)? else {
            return Ok(None);
        };
        let mut rules = berth_firewall::NetworkRules::new(&p.interface, p.subnet_v4, p.subnet_v6);
        rules.icc = p.icc;
        rules.internal = p.internal;
        rules.masquerade = p.masquerade;
        fw.add_network(rules)?;
        Ok(Some(p.interface))
    }

    /// Takes a host policy added by [`Controller::add_host_policy`] away (a failure is logged:
    /// the next start's reconcile removes what is left).
    pub(super) fn remove_host_policy(&self, interface: Option<&str>) {
        if let (Some(fw), Some(iface)) = (&self.inner.firewall, interface) {
            if let Err(e) = fw.remove_network(iface) {
                tracing::warn!(interface = iface, error = %e, "removing a driver's host policy");
            }
        }
    }

    /// The host's routes and nameservers, which default pools must not overlap.
    pub(super) fn host_exclusions(&self) -> Vec<IpNet> {
        // A namespace whose routes cannot be read excludes nothing but its nameservers.
        let routes = self
            .inner
            .host_netlink
            .route_destinations()
            .unwrap_or_default();
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        berth_ipam::host_exclusions(routes, &resolv)
    }

    /// Removes a network (by name, id or unique id prefix).
    pub fn remove_network(&self, name_or_id: &str) -> Result<()> {
        let net = self.lookup_network(name_or_id)?;
        let span = tracing::info_span!("remove_network", name = %net.record.name);
        let _enter = span.enter();
        if PREDEFINED_NETWORKS.contains(&net.record.name.as_str()) {
            return Err(Error::PredefinedNetwork(net.record.name.clone()));
        }
        self.remove_network_found(&net, name_or_id)
    }

    /// [`Controller::remove_network`] of a network found (a predefined one too: the teardown
    /// removes them).
    pub(super) fn remove_network_found(&self, net: &Arc<Network>, name_or_id: &str) -> Result<()> {
        {
            let mut members = lock(&net.members);
            if members.removed {
                return Err(Error::NetworkNotFound(name_or_id.to_owned()));
            }
            if !members.endpoints.is_empty() {
                return Err(Error::ActiveEndpoints {
                    name: net.record.name.clone(),
                    id: net.record.id.short().to_owned(),
                });
            }
            members.removed = true;
        }
        let store = self.store_for(net.record.scope)?.clone();
        if net.record.scope == berth_driver::Scope::Global {
            if let Err(e) = self.hold_global_removal(net) {
                lock(&net.members).removed = false;
                return Err(e);
            }
        }
        // Intent first: a restart finishes a removal that a crash cut short.
        let mut intent = net.record.clone();
        intent.removing = true;
        if let Err(e) = store.put(&network_key(&intent.id), &encode(&intent)) {
            lock(&net.members).removed = false;
            return Err(e.into());
        }
        hit("network.remove.intent")?;
        match net.driver.delete_network(&net.record.id) {
            Ok(()) | Err(berth_driver::DriverError::NetworkNotFound(_)) => {}
            Err(e) => {
                // Asking again finishes it (the driver's removal is idempotent), and so does
                // a restart.
                lock(&net.members).removed = false;
                return Err(e.into());
            }
        }
        hit("network.remove.driver")?;
        self.remove_host_policy(net.policy.as_deref());
        for p in &net.pools {
            let _ = net.ipam.release_pool(&p.id);
        }
        store.commit(
            Txn::new()
                .delete(network_name_key(&net.record.name))
                .delete(network_key(&net.record.id))
                .delete(network_removal_key(&net.record.id)),
        )?;
        self.free_network(&*net.driver, &net.record);
        self.write_networks()
            .remove(net.record.id.as_str(), &net.record.name);
        if let Some(dns) = self.dns() {
            let _ = dns.remove_network(net.record.id.as_str());
        }
        Ok(())
    }

    /// Removes every user-defined network without endpoints; returns their names.
    pub fn prune_networks(&self) -> Result<Vec<String>> {
        let candidates: Vec<String> = self
            .read_networks()
            .values()
            .filter(|n| !PREDEFINED_NETWORKS.contains(&n.record.name.as_str()))
            .filter(|n| lock(&n.members).endpoints.is_empty())
            .map(|n| n.record.id.to_string())
            .collect();
        let mut removed = Vec::new();
        for id in candidates {
            let name = match self.lookup_network(&id) {
                Ok(n) => n.record.name.clone(),
                Err(_) => continue,
            };
            match self.remove_network(&id) {
                Ok(()) => removed.push(name),
                Err(Error::ActiveEndpoints { .. } | Error::NetworkNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        removed.sort();
        Ok(removed)
    }

    /// Creates the predefined networks that do not exist: `bridge` as
    /// [`Config::default_bridge`] says (none for [`DefaultBridge::None`]), `host` and `none`.
    pub(super) fn ensure_predefined(&self) -> Result<()> {
        if self.read_networks().named("bridge").is_none() {
            if let Some(req) = self.default_bridge_request()? {
                self.create_network_inner(req, self.driver("bridge")?)?;
            }
        }
        for (name, driver) in [("host", "host"), ("none", "null")] {
            if self.read_networks().named(name).is_none() {
                let mut req = NetworkCreate::new(name);
                req.driver = driver.into();
                self.create_network_inner(req, self.driver(driver)?)?;
            }
        }
        Ok(())
    }

    /// The request of the predefined `bridge` network ([`Config::default_bridge`]); None when
    /// there is to be none.
    fn default_bridge_request(&self) -> Result<Option<NetworkCreate>> {
        let cfg = &self.inner.config;
        let (bridge, existing) = match &cfg.default_bridge {
            DefaultBridge::None => return Ok(None),
            DefaultBridge::Create(name) => (name, false),
            DefaultBridge::Existing(name) => (name, true),
        };
        berth_netlink::validate_ifname(bridge).map_err(|e| {
            Error::InvalidRequest(format!(
                "invalid default bridge name {bridge:?} (Config::default_bridge, the daemon's \
                 --bridge): {e}"
            ))
        })?;
        let mut opts = RawOptions::new();
        let mut set = |k: &str, v: String| {
            opts.insert(k.to_owned(), v);
        };
        set(berth_bridge::DEFAULT_BRIDGE, "true".into());
        set(berth_bridge::ENABLE_ICC, cfg.icc.to_string());
        set(berth_bridge::ENABLE_IP_MASQUERADE, cfg.ip_masq.to_string());
        set(
            berth_bridge::HOST_BINDING_IPV4,
            cfg.default_bind_ip.to_string(),
        );
        set(berth_bridge::BRIDGE_NAME, bridge.clone());
        if existing {
            set(berth_bridge::EXISTING_BRIDGE, "true".into());
        }
        set(berth_bridge::MTU, cfg.mtu.unwrap_or(1500).to_string());
        let mut req = NetworkCreate::new("bridge");
        req.options = opts;
        let v4 = match cfg.bip {
            Some(bip) => IpamPoolConfig {
                subnet: Some(IpNet::V4(bip.trunc())),
                gateway: Some(IpAddr::V4(bip.addr())),
                ..Default::default()
            },
            None if existing => self.existing_bridge_pool(bridge)?,
            None => IpamPoolConfig::default(),
        };
        req.ipam.push(v4);
        if cfg.ipv6 {
            if let Some(v6) = cfg.fixed_cidr_v6 {
                req.enable_ipv6 = true;
                req.ipam.push(IpamPoolConfig {
                    subnet: Some(IpNet::V6(v6)),
                    ..Default::default()
                });
            }
        }
        Ok(Some(req))
    }

    /// The subnet and gateway of an existing bridge, from its first IPv4 address, as dockerd
    /// takes them with `-b` (the gateway only when the address is not the subnet's network or
    /// broadcast address). Without a bridge or an address: the next free default pool (a
    /// missing bridge is the driver's to report).
    fn existing_bridge_pool(&self, bridge: &str) -> Result<IpamPoolConfig> {
        let nl = &self.inner.host_netlink;
        let looking = |e| Error::kernel(format!("looking up the existing bridge {bridge}"), e);
        let Some(link) = nl.link_get(bridge).map_err(looking)? else {
            return Ok(IpamPoolConfig::default());
        };
        let addrs = nl.addr_list(link.index).map_err(looking)?;
        let Some(net) = addrs.iter().find_map(|a| match a.net {
            IpNet::V4(v4) => Some(v4),
            IpNet::V6(_) => None,
        }) else {
            return Ok(IpamPoolConfig::default());
        };
        let host_part = net.addr() != net.network() && net.addr() != net.broadcast();
        tracing::info!(
            bridge,
            address = %net,
            "the default bridge uses the existing bridge's address (set bip to choose another)"
        );
        Ok(IpamPoolConfig {
            subnet: Some(IpNet::V4(net.trunc())),
            gateway: host_part.then_some(IpAddr::V4(net.addr())),
            ..Default::default()
        })
    }

    /// True when `rec` is the predefined `bridge` network as made for another
    /// [`Config::default_bridge`] than this start's, and no endpoint is on it: the restore then
    /// removes it (its bridge goes only if berth owns it) and [`Controller::ensure_predefined`]
    /// makes the one asked for. With endpoints on it, it is kept and the change waits for a
    /// start without them (as dockerd keeps its networks for running containers under
    /// live-restore), with a warning.
    pub(super) fn default_bridge_replaced(&self, rec: &NetworkRecord) -> Result<bool> {
        let opt = |k: &str| rec.options.get(k).map(String::as_str);
        if rec.name != "bridge"
            || rec.driver != "bridge"
            || rec.scope != berth_driver::Scope::Local
            || opt(berth_bridge::DEFAULT_BRIDGE) != Some("true")
        {
            return Ok(false);
        }
        let existing = opt(berth_bridge::EXISTING_BRIDGE) == Some("true");
        let stored = match opt(berth_bridge::BRIDGE_NAME) {
            Some(name) if existing => DefaultBridge::Existing(name.to_owned()),
            Some(name) => DefaultBridge::Create(name.to_owned()),
            None => DefaultBridge::None,
        };
        let wanted = &self.inner.config.default_bridge;
        if stored == *wanted {
            return Ok(false);
        }
        let endpoints = self.inner.store.list("endpoint/")?.entries;
        let in_use = endpoints
            .iter()
            .filter_map(|e| decode::<EndpointRecord>(&e.key, &e.value).ok())
            .filter(|e| e.network == rec.id)
            .count();
        if in_use > 0 {
            tracing::warn!(
                stored = %describe(&stored),
                configured = %describe(wanted),
                endpoints = in_use,
                "the default bridge network is kept as it was made: sandboxes are connected to \
                 it; the configured default bridge takes effect on a start without them"
            );
            return Ok(false);
        }
        tracing::info!(
            stored = %describe(&stored),
            configured = %describe(wanted),
            "replacing the default bridge network: the configuration changed"
        );
        Ok(true)
    }
}

/// A default bridge choice, for logs.
fn describe(choice: &DefaultBridge) -> String {
    match choice {
        DefaultBridge::Create(name) => format!("berth's bridge {name}"),
        DefaultBridge::Existing(name) => format!("the existing bridge {name}"),
        DefaultBridge::None => "no default bridge".into(),
    }
}

/// A container interface prefix must leave room for the index within an interface name (15
/// bytes) and use only the characters interface names take.
fn iface_prefix_checked(prefix: &str) -> Result<()> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 12
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "invalid {IFACE_PREFIX_OPTION} {prefix:?}: 1 to 12 letters, digits, '-', '_' or '.'"
        )))
    }
}

impl Controller {
    /// Switches IPv6 forwarding on in the host namespace for an IPv6 network (as Docker's
    /// bridge driver does), when berth manages forwarding (`Config::ip_forward`) and it is off;
    /// recorded as berth's change, so that the IPv6 FORWARD policy is DROP from the next start
    /// (berth's own chains keep the bridges isolated meanwhile) and a teardown knows to undo it.
    fn ensure_ipv6_forwarding(&self, network: &str) -> Result<()> {
        if !self.inner.config.ip_forward {
            return Ok(());
        }
        const KEY: &str = "net.ipv6.conf.all.forwarding";
        let cur = sysctl_get(&self.inner.host, KEY)
            .map_err(|e| Error::kernel("reading IPv6 forwarding", e))?;
        if cur.trim() == "1" {
            return Ok(());
        }
        sysctl_set(&self.inner.host, KEY, "1")
            .map_err(|e| Error::kernel("enabling IPv6 forwarding", e))?;
        let mut forwarding = forwarding_record(&*self.inner.store)?;
        forwarding.ipv6 = true;
        self.inner.store.put(FORWARDING_KEY, &encode(&forwarding))?;
        tracing::info!(
            network,
            "IPv6 forwarding switched on for the first IPv6 network"
        );
        Ok(())
    }
}

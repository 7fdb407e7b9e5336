//! The controller: networks, sandboxes and the endpoints between them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use berth_bridge::{BridgeDefaults, BridgeDriver, BridgeOptions};
use berth_dns::{
    DnsSettings, EndpointDns, ExposedPort as DnsExposedPort, HostEntry, HostsFile, Link, LinkHost,
    NetworkDns, PortProto, ResolvMode, Resolver, ResolverConfig, SandboxFiles, plan_resolv_conf,
};
use berth_driver::{
    Driver, EndpointId, EndpointSpec, IpamInfo, JoinInfo, JoinRequest, NetworkId, NetworkSpec,
    RawOptions, SandboxId, SandboxRef, Scope,
};
use berth_firewall::{DesiredState, Firewall, FirewallConfig, LinkPort, LinkRule, Protocol};
use berth_ipam::{AddressRequest, AddressSpace, IpFamily, Ipam, PoolId, PoolRequest};
use berth_netlink::{Handle, IpFamily as NlFamily, Netns, RouteSpec, sysctl_get, sysctl_set};
use berth_portmap::{PortMapper, PortSpec};
use berth_store::{Expect, KvStore, RedbStore, Txn};
use ipnet::IpNet;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::drivers::{HostDriver, NullDriver};
use crate::error::{Error, Result};
use crate::failpoint::hit;
use crate::inspect::{
    ConfigFrom, ContainerInspect, IpamConfigInspect, IpamInspect, NetworkInspect,
    PortBindingInspect, SandboxInspect, SandboxNetworkInspect,
};
use crate::records::{
    EndpointRecord, EndpointState, FORWARDING_KEY, ForwardingRecord, INSTANCE_KEY, LegacyLink,
    NetworkRecord, PoolRecord, SandboxRecord, endpoint_key, network_key, network_name_key,
    quarantine_key, sandbox_key, sandbox_name_key,
};
use crate::registry::{Miss, Registry};
use crate::requests::{
    EndpointOptions, IpamPoolConfig, NetworkCreate, SandboxCreate, SandboxNetns,
};
use crate::time::now_rfc3339;

mod restore;
use restore::{bind_host_key, instance_id, load};

/// The built-in networks, which exist from the start and cannot be removed.
pub const PREDEFINED_NETWORKS: [&str; 3] = ["bridge", "host", "none"];

/// berth's controller. Cheap to clone; `Send + Sync`. Operations on different sandboxes and
/// networks run concurrently: the kernel work of a connect holds only its sandbox's lock.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("data_root", &self.inner.config.data_root)
            .finish_non_exhaustive()
    }
}

/// Lock order: a sandbox's `state`, then (briefly) a registry, a network's `members` or IPAM.
/// Nothing takes a sandbox's `state` while it holds a registry lock, so listings and renames
/// never wait on each other in a cycle.
struct Inner {
    config: Config,
    host: Netns,
    /// `<exec_root>/netns/default`: the host namespace bind-mounted, the `SandboxKey` of
    /// host-mode sandboxes (a path that means the same namespace to every process).
    host_key: std::path::PathBuf,
    host_netlink: Handle,
    store: RedbStore,
    firewall: Option<Arc<Firewall>>,
    drivers: BTreeMap<&'static str, Arc<dyn Driver>>,
    dns: Resolver,
    bridge_defaults: BridgeDefaults,
    ipam: Mutex<Ipam>,
    networks: RwLock<Registry<Network>>,
    sandboxes: RwLock<Registry<Sandbox>>,
    /// The next namespace id to give a sandbox in the host namespace (see [`NSID_TOP`]).
    next_nsid: AtomicI32,
}

/// The namespace ids berth gives sandboxes in the host namespace count down from here to
/// [`NSID_FLOOR`], so the newest sandbox has the lowest id. The kernel looks a peer namespace's
/// id up by walking the ids in ascending order, every time it describes a host veth (each
/// notification of its creation, bridge port, link state): with ids given in creation order, that
/// walk passed over every older sandbox on each step of a connect.
const NSID_TOP: i32 = i32::MAX;
/// The lowest id of berth's range; ids below it are left to the kernel and other tools.
const NSID_FLOOR: i32 = 1 << 30;

struct Network {
    record: NetworkRecord,
    driver: Arc<dyn Driver>,
    pools: Vec<PoolId>,
    /// Endpoints on the network, and whether the network is being removed.
    members: Mutex<Members>,
}

#[derive(Default)]
struct Members {
    /// Each endpoint on the network (from the start of its connect) and its sandbox.
    endpoints: BTreeMap<EndpointId, SandboxId>,
    removed: bool,
}

struct Sandbox {
    /// The record as created; its `name` is the creation name (see [`Sandbox::name`]).
    record: SandboxRecord,
    /// The current name (a rename changes it).
    name: RwLock<String>,
    netns: Netns,
    netlink: Handle,
    /// `/etc/hosts` and `/etc/resolv.conf` for the sandbox (none in host mode).
    files: Option<SandboxFiles>,
    /// Serialises connect, disconnect, rename and remove of this sandbox; held over kernel work.
    state: Mutex<SandboxState>,
    /// What listings, inspect and links read: the sandbox's endpoints as of its last finished
    /// change, published by [`Controller::publish`], so they never wait behind kernel work.
    view: Mutex<Arc<SandboxView>>,
}

/// A sandbox's endpoints as listings see them (see [`Sandbox::view`]).
#[derive(Default)]
struct SandboxView {
    endpoints: BTreeMap<NetworkId, EndpointView>,
}

/// One endpoint as listings see it.
struct EndpointView {
    record: EndpointRecord,
    join: JoinInfo,
    network_name: String,
}

impl Sandbox {
    fn name(&self) -> String {
        read(&self.name).clone()
    }

    /// The last published view (see [`Sandbox::view`]).
    fn view(&self) -> Arc<SandboxView> {
        lock(&self.view).clone()
    }
}

#[derive(Default)]
struct SandboxState {
    endpoints: BTreeMap<NetworkId, Attachment>,
    gateway_v4: Option<NetworkId>,
    gateway_v6: Option<NetworkId>,
    removed: bool,
}

struct Attachment {
    record: EndpointRecord,
    join: JoinInfo,
    network: Arc<Network>,
}

/// Lock helpers: a panic elsewhere never makes the controller unusable (the data is plain maps
/// whose every update is a single insert or remove).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn random_id() -> [u8; 32] {
    let mut out = [0u8; 32];
    match File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut out)) {
        Ok(()) => out,
        Err(_) => {
            // Never expected on Linux; fall back to time and a counter rather than fail.
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos(),
            );
            let v = h.finish().to_le_bytes();
            for (i, b) in out.iter_mut().enumerate() {
                *b = v[i % 8] ^ (i as u8);
            }
            out
        }
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain records cannot fail (string keys, no custom serialisers that err).
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::CorruptRecord {
        key: key.to_owned(),
        message: e.to_string(),
    })
}

/// Docker's rule for object names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn validate_name(kind: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= 255;
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "invalid {kind} name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

/// A hostname or domain name as Docker accepts them (RFC 1123 labels separated by dots), so
/// nothing but a name can reach `/etc/hosts`.
fn validate_host_name(what: &str, name: &str) -> Result<()> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "invalid {what} {name:?}: expected dot-separated labels of letters, digits and '-' (at most 63 characters each, 253 in all)"
        )))
    }
}

/// Checks a sandbox's hostname, domain name, `--add-host` names and DNS settings before anything
/// is made: the same rules `/etc/hosts` and `/etc/resolv.conf` planning apply later.
fn validate_sandbox_dns(req: &SandboxCreate) -> Result<()> {
    if let Some(h) = &req.hostname {
        validate_host_name("hostname", h)?;
    }
    if let Some(d) = &req.domainname {
        validate_host_name("domainname", d)?;
    }
    for h in &req.extra_hosts {
        // Docker takes any name here (underscores included); only what would break the file's
        // line structure is refused.
        if h.names.trim().is_empty() || h.names.chars().any(|c| c.is_control() || c == '#') {
            return Err(Error::InvalidRequest(format!(
                "invalid --add-host names {:?}: expected names without control characters or '#'",
                h.names
            )));
        }
    }
    for d in &req.dns.search {
        if d != "." {
            validate_host_name("--dns-search domain", d.strip_suffix('.').unwrap_or(d))?;
        }
    }
    for o in &req.dns.options {
        if o.is_empty() || o.chars().any(|c| c.is_whitespace() || c == '#') {
            return Err(Error::InvalidRequest(format!(
                "invalid --dns-option {o:?}: expected one word such as ndots:2 or rotate"
            )));
        }
    }
    for mode in [ResolvMode::Embedded, ResolvMode::Direct { ipv6: true }] {
        plan_resolv_conf("", &req.dns, mode)
            .map_err(|e| Error::InvalidRequest(format!("sandbox {}: {e}", req.name)))?;
    }
    Ok(())
}

impl Controller {
    /// Opens (or creates) the state in `config.data_root`, restores every network, sandbox and
    /// endpoint it holds, reconciles the kernel with it, and makes sure the built-in networks
    /// `bridge`, `host` and `none` exist.
    ///
    /// A second controller on the same data root fails with [`berth_store::Error::Locked`].
    pub fn new(config: Config) -> Result<Controller> {
        let span = tracing::info_span!("controller_new", data_root = %config.data_root.display());
        let _enter = span.enter();
        std::fs::create_dir_all(&config.data_root).map_err(|e| {
            Error::kernel(
                format!("creating {}", config.data_root.display()),
                berth_netlink::Error::io("mkdir", e),
            )
        })?;
        let store = RedbStore::open(config.store_path())?;
        let host = match &config.host_netns {
            Some(p) => Netns::open(p),
            None => Netns::current(),
        }
        .map_err(|e| Error::kernel("opening the host namespace", e))?;
        let host_netlink =
            Handle::open(&host).map_err(|e| Error::kernel("netlink in the host namespace", e))?;
        let host_key = bind_host_key(&host, &config.netns_dir())?;
        let instance = instance_id(&store)?;

        // Docker sets the forward policy to DROP when it switched forwarding on. berth keeps what
        // it switched on in the store, so the policy stays after a restart finds forwarding on.
        let mut forwarding: ForwardingRecord = match store.get(FORWARDING_KEY)? {
            Some(e) => decode(FORWARDING_KEY, &e.value).unwrap_or_default(),
            None => ForwardingRecord::default(),
        };
        let before = forwarding;
        if config.ip_forward {
            let cur = sysctl_get(&host, "net.ipv4.ip_forward")
                .map_err(|e| Error::kernel("reading ip_forward", e))?;
            if cur.trim() != "1" {
                sysctl_set(&host, "net.ipv4.ip_forward", "1")
                    .map_err(|e| Error::kernel("enabling ip_forward", e))?;
                forwarding.ipv4 = true;
            }
            if config.ipv6 {
                let cur = sysctl_get(&host, "net.ipv6.conf.all.forwarding")
                    .map_err(|e| Error::kernel("reading IPv6 forwarding", e))?;
                if cur.trim() != "1" {
                    sysctl_set(&host, "net.ipv6.conf.all.forwarding", "1")
                        .map_err(|e| Error::kernel("enabling IPv6 forwarding", e))?;
                    forwarding.ipv6 = true;
                }
            }
        }
        if forwarding != before {
            store.put(FORWARDING_KEY, &encode(&forwarding))?;
        }

        let networks: Vec<NetworkRecord> = load(&store, "network/")?;
        let sandbox_records: Vec<SandboxRecord> = load(&store, "sandbox/")?;
        // Sandboxes whose endpoints the firewall keeps: not being removed, and with a namespace
        // that still exists (after a reboot /run is empty: their ports must not come back).
        let live_sandboxes: BTreeSet<SandboxId> = sandbox_records
            .iter()
            .filter(|r| !r.removing && (r.host_mode || r.netns.exists()))
            .map(|r| r.id.clone())
            .collect();
        // dockerd's --icc, --ip-masq and --mtu shape the default bridge only (they become its
        // explicit options); user-defined networks keep Docker's defaults unless their own
        // options say otherwise. --ip is the default host address of every network.
        let bridge_defaults = BridgeDefaults {
            host_binding_ipv4: config.default_bind_ip,
            ..BridgeDefaults::default()
        };

        let firewall = match config.firewall {
            None => None,
            Some(backend) => {
                let mut fw_config = FirewallConfig::new(backend);
                fw_config.ipv6 = config.ipv6;
                fw_config.trusted_interfaces = config.trusted_interfaces.clone();
                fw_config.forward_policy_drop = forwarding.ipv4;
                fw_config.forward_policy_drop_v6 = forwarding.ipv6;
                let mut desired = DesiredState::new();
                let endpoints: Vec<EndpointRecord> = load(&store, "endpoint/")?
                    .into_iter()
                    .filter(|e: &EndpointRecord| live_sandboxes.contains(&e.sandbox))
                    .collect();
                for rec in networks
                    .iter()
                    .filter(|r| r.driver == "bridge" && !r.removing)
                {
                    let opts = BridgeOptions::parse(&rec.options, &bridge_defaults)?;
                    let rules = BridgeDriver::network_rules(&spec_of(rec), &opts);
                    let bridge = rules.bridge.clone();
                    desired.insert_network(&fw_config, rules)?;
                    let published = endpoints
                        .iter()
                        .filter(|e| e.network == rec.id && e.state == EndpointState::Active);
                    for ep in published {
                        let rules = PortMapper::rules_for(
                            &ep.ports,
                            ep.ipv4.map(|a| a.addr()),
                            ep.ipv6.map(|a| a.addr()),
                            &bridge,
                        );
                        for rule in rules {
                            desired.insert_port(&fw_config, rule)?;
                        }
                    }
                    if !opts.enable_icc {
                        let active: Vec<&EndpointRecord> = endpoints
                            .iter()
                            .filter(|e| e.network == rec.id && e.state == EndpointState::Active)
                            .collect();
                        let addrs: BTreeSet<IpAddr> = active
                            .iter()
                            .flat_map(|e| {
                                e.ipv4
                                    .map(|a| IpAddr::V4(a.addr()))
                                    .into_iter()
                                    .chain(e.ipv6.map(|a| IpAddr::V6(a.addr())))
                            })
                            .collect();
                        for ep in &active {
                            for rule in link_rules(&bridge, ep) {
                                if addrs.contains(&rule.child_ip) {
                                    desired.insert_link(&fw_config, rule)?;
                                }
                            }
                        }
                    }
                }
                let fw = Firewall::with_state(&host, fw_config, desired)?;
                let report = fw.reconcile()?;
                tracing::info!(%report, "firewall reconciled on start");
                Some(Arc::new(fw))
            }
        };

        let bridge = Arc::new(
            BridgeDriver::with_proxy_limits(
                &host,
                firewall.clone(),
                bridge_defaults.clone(),
                config.userland_proxy,
                config.userland_proxy_limits,
            )?
            .with_instance(instance),
        );
        let mut drivers: BTreeMap<&'static str, Arc<dyn Driver>> = BTreeMap::new();
        drivers.insert("bridge", bridge);
        drivers.insert("null", Arc::new(NullDriver));
        drivers.insert("host", Arc::new(HostDriver));

        let dns = Resolver::new(ResolverConfig::default())
            .map_err(|e| Error::InvalidRequest(format!("starting the embedded DNS server: {e}")))?;
        let inner = Inner {
            config,
            host,
            host_key,
            host_netlink,
            store,
            firewall,
            drivers,
            dns,
            bridge_defaults,
            ipam: Mutex::new(Ipam::new()),
            networks: RwLock::new(Registry::default()),
            sandboxes: RwLock::new(Registry::default()),
            next_nsid: AtomicI32::new(NSID_TOP),
        };
        // Below every id of berth's range already given (sandboxes from before a restart).
        if let Ok(ids) = inner.host_netlink.nsid_list()
            && let Some(lowest) = ids.into_iter().filter(|id| *id >= NSID_FLOOR).min()
        {
            inner.next_nsid.store(lowest - 1, Ordering::Relaxed);
        }
        if let Some(pools) = &inner.config.default_address_pools {
            *lock(&inner.ipam) = Ipam::with_default_pools(
                pools.clone(),
                berth_ipam::DefaultPool::docker_global_defaults(),
            );
        }
        let controller = Controller {
            inner: Arc::new(inner),
        };
        controller.restore(networks, sandbox_records)?;
        controller.ensure_predefined()?;
        Ok(controller)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The namespace the controller treats as the host.
    pub fn host_netns(&self) -> &Netns {
        &self.inner.host
    }

    /// The firewall, when berth manages the packet filter.
    pub fn firewall(&self) -> Option<&Arc<Firewall>> {
        self.inner.firewall.as_ref()
    }

    // ----- networks -----

    /// Creates a network; returns its id.
    pub fn create_network(&self, req: NetworkCreate) -> Result<NetworkId> {
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
        self.create_network_inner(req, driver)
    }

    fn create_network_inner(
        &self,
        req: NetworkCreate,
        driver: Arc<dyn Driver>,
    ) -> Result<NetworkId> {
        let options = driver.parse_options(&req.options)?;
        if req.enable_ipv6 && !self.inner.config.ipv6 && self.inner.firewall.is_some() {
            return Err(Error::InvalidRequest(format!(
                "network {}: IPv6 networks need the daemon's ipv6 setting (berth programs ip6tables only then)",
                req.name
            )));
        }
        let creates_interfaces = driver.capabilities().creates_interfaces;
        let (pools_v4, pools_v6, pool_ids) = if creates_interfaces {
            self.allocate_pools(&req)?
        } else {
            (Vec::new(), Vec::new(), Vec::new())
        };
        let id = NetworkId::from_bytes(random_id());
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
        };
        let release_pools = |c: &Controller| {
            let mut ipam = lock(&c.inner.ipam);
            for p in &pool_ids {
                let _ = ipam.release_pool(p);
            }
        };
        let txn = Txn::new()
            .when(network_name_key(&req.name), Expect::Absent)
            .put(network_name_key(&req.name), id.as_str().as_bytes().to_vec())
            .put(network_key(&id), encode(&record));
        if let Err(e) = self.inner.store.commit(txn) {
            release_pools(self);
            return Err(match e {
                berth_store::Error::Conflict { .. } => Error::NetworkExists(req.name),
                other => other.into(),
            });
        }
        hit("network.create.recorded")?;
        if let Err(e) = driver.create_network(&spec_of(&record), &options) {
            release_pools(self);
            let _ = self.inner.store.commit(
                Txn::new()
                    .delete(network_name_key(&req.name))
                    .delete(network_key(&id)),
            );
            return Err(e.into());
        }
        hit("network.create.driver")?;
        if let Err(e) = self.dns_network(&record) {
            let _ = driver.delete_network(&id);
            release_pools(self);
            let _ = self.inner.store.commit(
                Txn::new()
                    .delete(network_name_key(&req.name))
                    .delete(network_key(&id)),
            );
            return Err(e);
        }
        let net = Arc::new(Network {
            record,
            driver,
            pools: pool_ids,
            members: Mutex::new(Members::default()),
        });
        self.write_networks()
            .insert(id.as_str(), &net.record.name, net.clone());
        tracing::info!(id = %id.short(), "network created");
        Ok(id)
    }

    /// Requests the network's pools and gateways from IPAM; all or nothing.
    fn allocate_pools(
        &self,
        req: &NetworkCreate,
    ) -> Result<(Vec<PoolRecord>, Vec<PoolRecord>, Vec<PoolId>)> {
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
        let mut ipam = lock(&self.inner.ipam);
        let mut ids = Vec::new();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let result = (|| -> Result<()> {
            for (family, p) in &wanted {
                let mut pr = match p.subnet {
                    Some(s) => PoolRequest::new(AddressSpace::Local, s),
                    None => PoolRequest::from_defaults(AddressSpace::Local, *family)
                        .with_exclude(exclude.clone()),
                };
                if let Some(r) = p.ip_range {
                    pr = pr.with_ip_range(r);
                }
                for (name, addr) in &p.aux_addresses {
                    pr = pr.with_aux_address(name.clone(), *addr);
                }
                let id = ipam.request_pool(&pr)?;
                ids.push(id);
                let gateway = ipam.request_address(&id, AddressRequest::Gateway(p.gateway))?;
                let rec = PoolRecord {
                    subnet: id.subnet(),
                    ip_range: id.range(),
                    gateway: Some(gateway),
                    aux_addresses: p.aux_addresses.clone(),
                    user_subnet: p.subnet.is_some(),
                    user_gateway: p.gateway.is_some(),
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
                for id in &ids {
                    let _ = ipam.release_pool(id);
                }
                Err(e)
            }
        }
    }

    /// The host's routes (and IPv4 nameservers), which default pools must not overlap.
    fn host_exclusions(&self) -> Vec<IpNet> {
        let mut out = Vec::new();
        for family in [NlFamily::V4, NlFamily::V6] {
            if let Ok(routes) = self.inner.host_netlink.route_list(family, None) {
                out.extend(
                    routes
                        .into_iter()
                        .map(|r| r.dst)
                        .filter(|d| d.prefix_len() > 0),
                );
            }
        }
        if let Ok(resolv) = std::fs::read_to_string("/etc/resolv.conf") {
            for line in resolv.lines() {
                let mut words = line.split_whitespace();
                if words.next() == Some("nameserver") {
                    if let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) {
                        out.push(IpNet::from(ip));
                    }
                }
            }
        }
        out
    }

    /// Removes a network (by name, id or unique id prefix).
    pub fn remove_network(&self, name_or_id: &str) -> Result<()> {
        let net = self.lookup_network(name_or_id)?;
        let span = tracing::info_span!("remove_network", name = %net.record.name);
        let _enter = span.enter();
        if PREDEFINED_NETWORKS.contains(&net.record.name.as_str()) {
            return Err(Error::PredefinedNetwork(net.record.name.clone()));
        }
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
        // Intent first: a restart finishes a removal that a crash cut short.
        let mut intent = net.record.clone();
        intent.removing = true;
        if let Err(e) = self
            .inner
            .store
            .put(&network_key(&intent.id), &encode(&intent))
        {
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
        {
            let mut ipam = lock(&self.inner.ipam);
            for p in &net.pools {
                let _ = ipam.release_pool(p);
            }
        }
        self.inner.store.commit(
            Txn::new()
                .delete(network_name_key(&net.record.name))
                .delete(network_key(&net.record.id)),
        )?;
        self.write_networks()
            .remove(net.record.id.as_str(), &net.record.name);
        let _ = self.inner.dns.remove_network(net.record.id.as_str());
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

    /// Every network, in name order.
    pub fn networks(&self) -> Vec<NetworkInspect> {
        let nets: Vec<Arc<Network>> = self.read_networks().values().cloned().collect();
        let mut out: Vec<NetworkInspect> = nets.iter().map(|n| self.inspect(n)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One network, by name, id or unique id prefix.
    pub fn inspect_network(&self, name_or_id: &str) -> Result<NetworkInspect> {
        let net = self.lookup_network(name_or_id)?;
        Ok(self.inspect(&net))
    }

    fn inspect(&self, net: &Network) -> NetworkInspect {
        let r = &net.record;
        let config = r
            .pools_v4
            .iter()
            .chain(r.pools_v6.iter())
            .map(|p| IpamConfigInspect {
                subnet: p.subnet.to_string(),
                ip_range: p.ip_range.map(|x| x.to_string()),
                gateway: p.gateway.map(|g| g.addr().to_string()),
                aux_addresses: p
                    .aux_addresses
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect(),
            })
            .collect();
        let members: Vec<(EndpointId, SandboxId)> = lock(&net.members)
            .endpoints
            .iter()
            .map(|(e, s)| (e.clone(), s.clone()))
            .collect();
        // The registry's lock is let go before any sandbox's view is read.
        let sandboxes: Vec<(EndpointId, Arc<Sandbox>)> = {
            let reg = self.read_sandboxes();
            members
                .into_iter()
                .filter_map(|(e, s)| reg.get(s.as_str()).map(|sb| (e, sb.clone())))
                .collect()
        };
        let mut containers = BTreeMap::new();
        for (endpoint, sb) in sandboxes {
            let st = sb.view();
            let Some(att) = st.endpoints.get(&r.id) else {
                continue;
            };
            if att.record.id != endpoint {
                continue;
            }
            containers.insert(
                sb.record.id.to_string(),
                ContainerInspect {
                    name: sb.name(),
                    endpoint_id: att.record.id.to_string(),
                    mac_address: att.record.mac.map(|m| m.to_string()).unwrap_or_default(),
                    ipv4_address: att.record.ipv4.map(|a| a.to_string()).unwrap_or_default(),
                    ipv6_address: att.record.ipv6.map(|a| a.to_string()).unwrap_or_default(),
                },
            );
        }
        NetworkInspect {
            name: r.name.clone(),
            id: r.id.to_string(),
            created: r.created.clone(),
            scope: Scope::Local.to_string(),
            driver: r.driver.clone(),
            enable_ipv6: r.enable_ipv6,
            ipam: IpamInspect {
                driver: "default".into(),
                options: BTreeMap::new(),
                config,
            },
            internal: r.internal,
            attachable: r.attachable,
            ingress: false,
            config_from: ConfigFrom::default(),
            config_only: false,
            containers,
            options: r.options.clone(),
            labels: r.labels.clone(),
        }
    }

    // ----- sandboxes -----

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
            if owned {
                nl.link_set_up("lo")?;
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
            netlink,
            files,
            state: Mutex::new(SandboxState::default()),
            view: Mutex::default(),
        });
        self.write_sandbox_files(&sb, &lock(&sb.state));
        self.write_sandboxes()
            .insert(id.as_str(), &sb.name(), sb.clone());
        if let Some(network) = &req.network {
            if let Err(e) = self.connect(id.as_str(), network, req.endpoint.clone()) {
                let _ = self.remove_sandbox(id.as_str());
                return Err(e);
            }
        }
        Ok(id)
    }

    /// Refuses to adopt a namespace that is the host's: the controller's host namespace, the
    /// process's own, or init's (compared by namespace inode; all namespaces share nsfs's
    /// device). Adopting one would let connect replace the host's default route and remove
    /// delete it.
    fn refuse_host_namespace(&self, netns: &Netns, path: &std::path::Path) -> Result<()> {
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
    fn sandbox_claim_error(&self, e: berth_store::Error, name: &str) -> Error {
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
    pub fn remove_sandbox(&self, name_or_id: &str) -> Result<()> {
        let sb = self.lookup_sandbox(name_or_id)?;
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
            let _ = self.inner.dns.remove_sandbox(sb.record.id.as_str());
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
        if sb.files.is_some() {
            self.inner
                .dns
                .rename_sandbox(id.as_str(), new_name)
                .map_err(|e| {
                    Error::InvalidRequest(format!("embedded DNS for sandbox {new_name}: {e}"))
                })?;
        }
        drop(st);
        Ok(())
    }

    /// Every sandbox, in name order.
    pub fn sandboxes(&self) -> Vec<SandboxInspect> {
        let sbs: Vec<Arc<Sandbox>> = self.read_sandboxes().values().cloned().collect();
        let mut out: Vec<SandboxInspect> = sbs.iter().map(|s| self.inspect_sb(s)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One sandbox, by name, id or unique id prefix.
    pub fn inspect_sandbox(&self, name_or_id: &str) -> Result<SandboxInspect> {
        let sb = self.lookup_sandbox(name_or_id)?;
        Ok(self.inspect_sb(&sb))
    }

    /// A sandbox's namespace handle (duplicated), e.g. to run a process inside it.
    pub fn sandbox_netns(&self, name_or_id: &str) -> Result<Netns> {
        let sb = self.lookup_sandbox(name_or_id)?;
        sb.netns
            .try_clone()
            .map_err(|e| Error::kernel("duplicating a namespace handle", e))
    }

    fn inspect_sb(&self, sb: &Sandbox) -> SandboxInspect {
        let st = sb.view();
        let mut ports: BTreeMap<String, Vec<PortBindingInspect>> = BTreeMap::new();
        for a in st.endpoints.values() {
            for e in &a.record.exposed {
                for p in e.ports.start()..=e.ports.end() {
                    ports.entry(format!("{p}/{}", e.proto)).or_default();
                }
            }
            for b in &a.record.ports {
                for (i, p) in (b.container_ports.start()..=b.container_ports.end()).enumerate() {
                    let host = if b.host_ports.len() == b.container_ports.len() {
                        b.host_ports.start() + i as u16
                    } else {
                        b.host_ports.start()
                    };
                    ports
                        .entry(format!("{p}/{}", b.proto))
                        .or_default()
                        .push(PortBindingInspect {
                            host_ip: b.host_ip.to_string(),
                            host_port: host.to_string(),
                        });
                }
            }
        }
        let networks = st
            .endpoints
            .values()
            .map(|a| {
                let r = &a.record;
                (
                    a.network_name.clone(),
                    SandboxNetworkInspect {
                        network_id: r.network.to_string(),
                        endpoint_id: r.id.to_string(),
                        ip_address: r.ipv4.map(|n| n.addr().to_string()).unwrap_or_default(),
                        ip_prefix_len: r.ipv4.map_or(0, |n| n.prefix_len()),
                        gateway: a.join.gateway_v4.map(|g| g.to_string()).unwrap_or_default(),
                        ipv6_address: r.ipv6.map(|n| n.addr().to_string()).unwrap_or_default(),
                        ipv6_prefix_len: r.ipv6.map_or(0, |n| n.prefix_len()),
                        ipv6_gateway: a.join.gateway_v6.map(|g| g.to_string()).unwrap_or_default(),
                        mac_address: r.mac.map(|m| m.to_string()).unwrap_or_default(),
                        aliases: r.aliases.clone(),
                        links: r.links.iter().map(|(n, a)| format!("{n}:{a}")).collect(),
                        interface: r.ifname.clone().unwrap_or_default(),
                    },
                )
            })
            .collect();
        let path = |p: std::path::PathBuf| p.display().to_string();
        SandboxInspect {
            hosts_path: sb.files.as_ref().map(|f| path(f.hosts_path())),
            resolv_conf_path: sb.files.as_ref().map(|f| path(f.resolv_conf_path())),
            name: sb.name(),
            id: sb.record.id.to_string(),
            created: sb.record.created.clone(),
            sandbox_key: if sb.record.host_mode {
                self.inner.host_key.display().to_string()
            } else {
                sb.record.netns.display().to_string()
            },
            networks,
            ports,
            link_env: link_env_of(&sb.name(), &st),
        }
    }

    /// Publishes the sandbox's endpoints for listings (called with its state lock held, after
    /// every change and on every way out of one).
    fn publish(&self, sb: &Sandbox, st: &SandboxState) {
        let view = SandboxView {
            endpoints: st
                .endpoints
                .iter()
                .map(|(id, a)| {
                    let v = EndpointView {
                        record: a.record.clone(),
                        join: a.join.clone(),
                        network_name: a.network.record.name.clone(),
                    };
                    (id.clone(), v)
                })
                .collect(),
        };
        *lock(&sb.view) = Arc::new(view);
    }

    // ----- DNS and the sandbox's files -----

    /// Registers a sandbox with the embedded DNS server and creates its hosts/resolv.conf
    /// directory (`<exec_root>/sandboxes/<id>`). Host-mode sandboxes use the host's files.
    fn register_sandbox_dns(
        &self,
        rec: &SandboxRecord,
        netns: &Netns,
    ) -> Result<Option<SandboxFiles>> {
        if rec.host_mode {
            return Ok(None);
        }
        let dns_err = |e: berth_dns::Error| {
            Error::InvalidRequest(format!("embedded DNS for sandbox {}: {e}", rec.name))
        };
        let id = rec.id.as_str();
        // A restart registers again; a leftover registration is replaced.
        let _ = self.inner.dns.remove_sandbox(id);
        self.inner
            .dns
            .add_sandbox(id, &rec.name, netns, &[])
            .map_err(dns_err)?;
        let dir = self.inner.config.exec_root.join("sandboxes").join(id);
        match SandboxFiles::create(dir) {
            Ok(files) => Ok(Some(files)),
            Err(e) => {
                let _ = self.inner.dns.remove_sandbox(id);
                Err(dns_err(e))
            }
        }
    }

    /// Rewrites the sandbox's `/etc/hosts` and `/etc/resolv.conf` from its current endpoints and
    /// points its embedded server at the right upstreams. Failures are logged: name files are not
    /// worth failing a connect for, and the next change rewrites them.
    fn write_sandbox_files(&self, sb: &Sandbox, st: &SandboxState) {
        let Some(files) = &sb.files else {
            return;
        };
        let hostname = sb
            .record
            .hostname
            .clone()
            .unwrap_or_else(|| sb.record.id.short().to_owned());
        let rec = &sb.record;
        let mut hosts = HostsFile::new(hostname);
        hosts.domainname = rec.domainname.clone();
        hosts.extra_hosts = rec
            .extra_hosts
            .iter()
            .map(|(names, addr)| HostEntry {
                names: names.clone(),
                addr: *addr,
            })
            .collect();
        let mut attached: Vec<&Attachment> = st.endpoints.values().collect();
        attached.sort_by(|a, b| a.record.ifname.cmp(&b.record.ifname));
        for a in &attached {
            let addr = a
                .record
                .ipv4
                .map(|n| IpAddr::V4(n.addr()))
                .or(a.record.ipv6.map(|n| IpAddr::V6(n.addr())));
            hosts.addresses.extend(addr);
            hosts
                .links
                .extend(a.record.legacy_links.iter().map(|l| LinkHost {
                    addr: l.addr,
                    alias: l.alias.clone(),
                    hostname: l.hostname.clone(),
                    name: l.name.clone(),
                }));
        }
        let embedded = attached
            .iter()
            .any(|a| !PREDEFINED_NETWORKS.contains(&a.network.record.name.as_str()));
        let mode = if embedded {
            ResolvMode::Embedded
        } else {
            ResolvMode::Direct {
                ipv6: attached.iter().any(|a| a.record.ipv6.is_some()),
            }
        };
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let result = files.write_hosts(&hosts).and_then(|()| {
            let settings = DnsSettings {
                servers: if rec.dns_servers.is_empty() {
                    self.inner.config.dns.clone()
                } else {
                    rec.dns_servers.clone()
                },
                search: rec.dns_search.clone(),
                options: rec.dns_options.clone(),
            };
            let plan = plan_resolv_conf(&host_resolv, &settings, mode)?;
            self.inner
                .dns
                .set_upstreams(sb.record.id.as_str(), &plan.upstreams)?;
            files.write_resolv_conf(&plan.content)
        });
        if let Err(e) = result {
            tracing::warn!(sandbox = %sb.name(), error = %e, "writing hosts/resolv.conf");
        }
    }

    /// Gives a sandbox's namespace the next id of berth's range in the host namespace (see
    /// [`NSID_TOP`]). Best effort: a namespace that has an id already (an adopted one) keeps it,
    /// and on any failure the kernel numbers it itself as before.
    fn give_nsid(&self, netns: &Netns) {
        let nl = &self.inner.host_netlink;
        for _ in 0..8 {
            let id = self.inner.next_nsid.fetch_sub(1, Ordering::Relaxed);
            if id < NSID_FLOOR {
                self.inner.next_nsid.store(NSID_TOP, Ordering::Relaxed);
                continue;
            }
            match nl.nsid_set(netns, id) {
                Ok(()) => return,
                // Taken by another namespace (try the next id), or this one has an id already.
                Err(e) if e.is_exists() => {
                    if !matches!(nl.nsid_get(netns), Ok(None)) {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "namespace id not given; the kernel numbers the sandbox");
                    return;
                }
            }
        }
    }

    fn dns_connect(&self, sb: &Sandbox, net: &Network, record: &EndpointRecord) -> Result<()> {
        if sb.files.is_none() {
            return Ok(());
        }
        let mut aliases = record.aliases.clone();
        aliases.push(sb.record.id.short().to_owned());
        if let Some(h) = &sb.record.hostname {
            aliases.push(h.clone());
        }
        let user_defined = !PREDEFINED_NETWORKS.contains(&net.record.name.as_str());
        self.inner
            .dns
            .connect(
                sb.record.id.as_str(),
                net.record.id.as_str(),
                &EndpointDns {
                    endpoint_id: record.id.to_string(),
                    aliases,
                    ipv4: record.ipv4.map(|n| n.addr()),
                    ipv6: record.ipv6.map(|n| n.addr()),
                    links: if user_defined {
                        record.links.clone()
                    } else {
                        Vec::new()
                    },
                },
            )
            .map(|_| ())
            .map_err(|e| {
                Error::InvalidRequest(format!("embedded DNS for sandbox {}: {e}", sb.name()))
            })
    }

    fn dns_network(&self, rec: &NetworkRecord) -> Result<()> {
        self.inner
            .dns
            .add_network(&NetworkDns {
                id: rec.id.to_string(),
                name: rec.name.clone(),
                internal: rec.internal,
                embedded_dns: !PREDEFINED_NETWORKS.contains(&rec.name.as_str()),
            })
            .map_err(|e| {
                Error::InvalidRequest(format!("embedded DNS for network {}: {e}", rec.name))
            })
    }

    // ----- legacy links -----

    /// Resolves `--link name:alias` on the default bridge into what the linking sandbox needs.
    /// On user-defined networks links are DNS aliases only (nothing to resolve).
    fn resolve_legacy_links(
        &self,
        sb: &Sandbox,
        net: &Network,
        opts: &EndpointOptions,
    ) -> Result<Vec<LegacyLink>> {
        if opts.links.is_empty() || !PREDEFINED_NETWORKS.contains(&net.record.name.as_str()) {
            return Ok(Vec::new());
        }
        if net.record.driver != "bridge" {
            return Err(Error::InvalidRequest(format!(
                "conflicting options: links cannot be used with the {} network",
                net.record.name
            )));
        }
        let mut out: Vec<LegacyLink> = Vec::new();
        for (name, alias) in &opts.links {
            let child = self
                .lookup_sandbox(name)
                .map_err(|_| Error::InvalidRequest(format!("could not get sandbox for {name}")))?;
            if child.record.id == sb.record.id {
                return Err(Error::InvalidRequest(format!(
                    "sandbox {name} cannot be linked to itself"
                )));
            }
            if out.iter().any(|l| &l.alias == alias) {
                return Err(Error::InvalidRequest(format!(
                    "conflicting link alias {alias}: given twice"
                )));
            }
            let st = child.view();
            let Some(att) = st.endpoints.get(&net.record.id) else {
                return Err(Error::InvalidRequest(format!(
                    "cannot link to /{name}, as it does not belong to the default network"
                )));
            };
            let Some(addr) = att
                .record
                .ipv4
                .map(|a| IpAddr::V4(a.addr()))
                .or(att.record.ipv6.map(|a| IpAddr::V6(a.addr())))
            else {
                return Err(Error::InvalidRequest(format!(
                    "cannot link to /{name}: it has no address on the default network"
                )));
            };
            out.push(LegacyLink {
                name: child.name(),
                alias: alias.clone(),
                child: child.record.id.clone(),
                hostname: child
                    .record
                    .hostname
                    .clone()
                    .unwrap_or_else(|| child.record.id.short().to_owned()),
                addr,
                ports: exposed_link_ports(&att.record),
            });
        }
        Ok(out)
    }

    /// The bridge of a bridge network whose icc is off (where links need firewall rules).
    fn icc_off_bridge(&self, rec: &NetworkRecord) -> Result<Option<String>> {
        Ok(self
            .bridge_of(rec)?
            .filter(|(opts, _)| !opts.enable_icc)
            .map(|(_, bridge)| bridge))
    }

    /// The options and bridge device of a bridge network (`None` for other drivers).
    fn bridge_of(&self, rec: &NetworkRecord) -> Result<Option<(BridgeOptions, String)>> {
        if rec.driver != "bridge" {
            return Ok(None);
        }
        let opts = BridgeOptions::parse(&rec.options, &self.inner.bridge_defaults)
            .map_err(Error::Driver)?;
        let bridge = BridgeDriver::network_rules(&spec_of(rec), &opts).bridge;
        Ok(Some((opts, bridge)))
    }

    /// Removes the link rules on `net`'s bridge in which any of `addrs` takes part (as the linking
    /// or the linked sandbox): an address that leaves must not keep a hole in the firewall for
    /// the next sandbox that gets it.
    fn remove_link_rules(&self, net: &NetworkRecord, addrs: &[IpAddr]) -> Result<()> {
        let Some(fw) = &self.inner.firewall else {
            return Ok(());
        };
        let touching: Vec<LinkRule> = fw
            .links()
            .into_iter()
            .filter(|l| addrs.contains(&l.parent_ip) || addrs.contains(&l.child_ip))
            .collect();
        // Most disconnects involve no link: the network's options are read only when one does.
        if touching.is_empty() {
            return Ok(());
        }
        let Some(bridge) = self.icc_off_bridge(net)? else {
            return Ok(());
        };
        let stale: Vec<&LinkRule> = touching.iter().filter(|l| l.bridge == bridge).collect();
        for rule in &stale {
            fw.remove_link(rule)?;
        }
        Ok(())
    }

    /// The environment variables of a sandbox's legacy links, in Docker's format
    /// (`DB_PORT_5432_TCP=tcp://172.17.0.2:5432`, `DB_NAME=/web/db`, ...), for the engine to put
    /// into the processes it starts in the sandbox. Empty when it has no links on the default
    /// bridge.
    pub fn link_env(&self, sandbox: &str) -> Result<Vec<String>> {
        let sb = self.lookup_sandbox(sandbox)?;
        let name = sb.name();
        Ok(link_env_of(&name, &sb.view()))
    }

    // ----- endpoints -----

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
        self.check_connect(&sb, &st, &net, &opts)?;
        let id = EndpointId::from_bytes(random_id());
        {
            let mut members = lock(&net.members);
            if members.removed {
                return Err(Error::NetworkNotFound(network.to_owned()));
            }
            members.endpoints.insert(id.clone(), sb.record.id.clone());
        }
        let mut undo = Undo::default();
        let req = ConnectRequest { opts, legacy_links };
        let result = match self.connect_steps(&sb, &mut st, &net, &id, req, &mut undo) {
            Ok(()) => Ok(id),
            Err(e) => {
                self.rollback_connect(&sb, &mut st, &net, &id, undo);
                Err(e)
            }
        };
        self.publish(&sb, &st);
        result
    }

    fn check_connect(
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
        let driver = net.record.driver.as_str();
        if sb.record.host_mode != (driver == "host") {
            return Err(Error::InvalidRequest(format!(
                "sandbox {name}: the host network is only for sandboxes created in the host's namespace, and those cannot join other networks"
            )));
        }
        let has_null = st
            .endpoints
            .values()
            .any(|a| a.network.record.driver == "null");
        if (driver == "null" && !st.endpoints.is_empty()) || has_null {
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
        Ok(())
    }

    fn connect_steps(
        &self,
        sb: &Sandbox,
        st: &mut SandboxState,
        net: &Arc<Network>,
        id: &EndpointId,
        req: ConnectRequest,
        undo: &mut Undo,
    ) -> Result<()> {
        let ConnectRequest { opts, legacy_links } = req;
        let creates = net.driver.capabilities().creates_interfaces;
        let (ipv4, ipv6) = if creates {
            self.allocate_addresses(net, &opts, undo)?
        } else {
            (None, None)
        };
        let ifname = creates.then(|| next_ifname(st));
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
            state: EndpointState::Pending,
        };
        // Intent first: the addresses are taken in the store before the kernel is touched.
        self.inner.store.put(&endpoint_key(id), &encode(&record))?;
        undo.record = true;
        hit("connect.pending")?;
        let info = net.driver.create_endpoint(&EndpointSpec {
            network: net.record.id.clone(),
            endpoint: id.clone(),
            ipv4,
            ipv6,
            mac: opts.mac,
        })?;
        undo.driver_endpoint = true;
        hit("connect.endpoint")?;
        record.mac = info.mac;
        let join = net.driver.join(&JoinRequest {
            network: &net.record.id,
            endpoint: id,
            sandbox: SandboxRef {
                id: &sb.record.id,
                netns: &sb.netns,
                netlink: &sb.netlink,
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
        let mut specs = opts.ports.clone();
        if opts.publish_all {
            specs.extend(opts.exposed.iter().map(|e| PortSpec {
                host_ip: None,
                host_ports: None,
                container_ports: e.ports,
                proto: e.proto,
            }));
        }
        if !specs.is_empty() {
            undo.ports = true;
            record.ports = net
                .driver
                .program_external_connectivity(&net.record.id, id, &specs)?;
        }
        hit("connect.ports")?;
        self.dns_connect(sb, net, &record)?;
        undo.dns = true;
        hit("connect.dns")?;
        if !record.legacy_links.is_empty()
            && let Some(fw) = &self.inner.firewall
            && let Some(bridge) = self.icc_off_bridge(&net.record)?
        {
            for rule in link_rules(&bridge, &record) {
                fw.add_link(rule.clone())?;
                undo.links.push(rule);
            }
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

    fn allocate_addresses(
        &self,
        net: &Network,
        opts: &EndpointOptions,
        undo: &mut Undo,
    ) -> Result<(Option<ipnet::Ipv4Net>, Option<ipnet::Ipv6Net>)> {
        let mut ipam = lock(&self.inner.ipam);
        let mut v4 = None;
        let mut v6 = None;
        for pool in &net.pools {
            let family = family_of(&pool.subnet());
            let (taken, preferred) = match family {
                IpFamily::V4 => (v4.is_some(), opts.ipv4.map(IpAddr::V4)),
                IpFamily::V6 => (v6.is_some(), opts.ipv6.map(IpAddr::V6)),
            };
            if taken {
                continue;
            }
            let req = preferred.map_or(AddressRequest::Next, AddressRequest::Preferred);
            let got = ipam.request_address(pool, req)?;
            undo.addresses.push((*pool, got.addr()));
            match got {
                IpNet::V4(a) => v4 = Some(a),
                IpNet::V6(a) => v6 = Some(a),
            }
        }
        Ok((v4, v6))
    }

    fn rollback_connect(
        &self,
        sb: &Sandbox,
        st: &mut SandboxState,
        net: &Network,
        id: &EndpointId,
        undo: Undo,
    ) {
        if let Some(fw) = &self.inner.firewall {
            for rule in undo.links.iter().rev() {
                let _ = fw.remove_link(rule);
            }
        }
        if undo.dns {
            let _ = self
                .inner
                .dns
                .disconnect(sb.record.id.as_str(), net.record.id.as_str());
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
        {
            let mut ipam = lock(&self.inner.ipam);
            for (pool, addr) in &undo.addresses {
                let _ = ipam.release_address(pool, *addr);
            }
        }
        if undo.record {
            let _ = self.inner.store.delete(&endpoint_key(id));
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
        self.publish(&sb, &st);
        result
    }

    /// Disconnects one endpoint. The intent is recorded first (the endpoint's record turns
    /// `Removing`), then every step is idempotent, so a failed disconnect can be asked again
    /// and a restart finishes one that a crash cut short (it never restores a `Removing`
    /// endpoint).
    fn disconnect_locked(
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
        let addrs: Vec<IpAddr> = att
            .record
            .ipv4
            .map(|a| IpAddr::V4(a.addr()))
            .into_iter()
            .chain(att.record.ipv6.map(|a| IpAddr::V6(a.addr())))
            .collect();
        if sb.files.is_some() {
            let _ = self
                .inner
                .dns
                .disconnect(sb.record.id.as_str(), network.as_str());
        }
        hit("disconnect.dns")?;
        self.remove_link_rules(&net.record, &addrs)?;
        net.driver.revoke_external_connectivity(network, &id)?;
        hit("disconnect.ports")?;
        match net.driver.leave(network, &id) {
            Ok(()) | Err(berth_driver::DriverError::EndpointNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let _ = net.driver.delete_endpoint(network, &id);
        hit("disconnect.leave")?;
        st.endpoints.remove(network);
        self.write_sandbox_files(sb, st);
        // The interface is gone, and its routes with it: a failure to point the default route
        // elsewhere does not undo the disconnect (the next change of the sandbox tries again).
        if let Err(e) = self.update_default_routes(sb, st) {
            tracing::warn!(sandbox = %sb.name(), error = %e, "default route after a disconnect");
        }
        hit("disconnect.routes")?;
        {
            let mut ipam = lock(&self.inner.ipam);
            for addr in addrs {
                for pool in &net.pools {
                    if pool.subnet().contains(&addr) {
                        let _ = ipam.release_address(pool, addr);
                    }
                }
            }
        }
        lock(&net.members).endpoints.remove(&id);
        hit("disconnect.released")?;
        self.inner.store.delete(&endpoint_key(&id))?;
        Ok(())
    }

    /// Points the sandbox's default routes at the first non-internal network, in lexical order of
    /// network name, that offers a gateway; removes them when there is none.
    fn update_default_routes(&self, sb: &Sandbox, st: &mut SandboxState) -> Result<()> {
        let pick = |v6: bool| -> Option<(NetworkId, String, IpAddr)> {
            let mut candidates: Vec<&Attachment> = st
                .endpoints
                .values()
                .filter(|a| !a.network.record.internal)
                .filter(|a| {
                    if v6 {
                        a.join.gateway_v6.is_some()
                    } else {
                        a.join.gateway_v4.is_some()
                    }
                })
                .collect();
            candidates.sort_by(|a, b| a.network.record.name.cmp(&b.network.record.name));
            candidates.first().map(|a| {
                let gw = if v6 {
                    a.join.gateway_v6.map(IpAddr::V6)
                } else {
                    a.join.gateway_v4.map(IpAddr::V4)
                };
                (
                    a.record.network.clone(),
                    a.join.ifname.clone(),
                    gw.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
                )
            })
        };
        for v6 in [false, true] {
            let want = pick(v6);
            let current = if v6 { &st.gateway_v6 } else { &st.gateway_v4 };
            let want_id = want.as_ref().map(|w| w.0.clone());
            if *current == want_id {
                continue;
            }
            let base = if v6 {
                RouteSpec::default_v6()
            } else {
                RouteSpec::default_v4()
            };
            match want {
                Some((_, ifname, gw)) => sb
                    .netlink
                    .route_replace(&base.via(gw).dev(ifname.as_str()))
                    .map_err(|e| {
                        Error::kernel(format!("default route of sandbox {}", sb.name()), e)
                    })?,
                None => match sb.netlink.route_delete(&base) {
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

    fn ensure_predefined(&self) -> Result<()> {
        let cfg = &self.inner.config;
        if self.read_networks().named("bridge").is_none() {
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
            set(berth_bridge::BRIDGE_NAME, "docker0".into());
            set(berth_bridge::MTU, cfg.mtu.unwrap_or(1500).to_string());
            let mut req = NetworkCreate::new("bridge");
            req.options = opts;
            req.ipam.push(IpamPoolConfig {
                subnet: cfg.bip.map(|b| IpNet::V4(b.trunc())),
                gateway: cfg.bip.map(|b| IpAddr::V4(b.addr())),
                ..Default::default()
            });
            if cfg.ipv6 {
                if let Some(v6) = cfg.fixed_cidr_v6 {
                    req.enable_ipv6 = true;
                    req.ipam.push(IpamPoolConfig {
                        subnet: Some(IpNet::V6(v6)),
                        ..Default::default()
                    });
                }
            }
            self.create_network_inner(req, self.driver("bridge")?)?;
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

    // ----- lookups -----

    fn driver(&self, name: &str) -> Result<Arc<dyn Driver>> {
        self.inner
            .drivers
            .get(name)
            .cloned()
            .ok_or_else(|| Error::DriverNotFound(name.to_owned()))
    }

    fn read_networks(&self) -> RwLockReadGuard<'_, Registry<Network>> {
        read(&self.inner.networks)
    }

    fn write_networks(&self) -> RwLockWriteGuard<'_, Registry<Network>> {
        write(&self.inner.networks)
    }

    fn read_sandboxes(&self) -> RwLockReadGuard<'_, Registry<Sandbox>> {
        read(&self.inner.sandboxes)
    }

    fn write_sandboxes(&self) -> RwLockWriteGuard<'_, Registry<Sandbox>> {
        write(&self.inner.sandboxes)
    }

    fn lookup_network(&self, key: &str) -> Result<Arc<Network>> {
        self.read_networks().find(key).map_err(|miss| match miss {
            Miss::Ambiguous => Error::NetworkAmbiguous(key.to_owned()),
            Miss::None => Error::NetworkNotFound(key.to_owned()),
        })
    }

    fn lookup_sandbox(&self, key: &str) -> Result<Arc<Sandbox>> {
        self.read_sandboxes()
            .find(key)
            .map_err(|_| Error::SandboxNotFound(key.to_owned()))
    }
}

/// Runs `f` on every item on up to as many threads as the machine has cores (at most 4), and
/// returns the first error (items not started yet are then skipped). The restore of a restart
/// uses it: sandboxes are independent, and most of the time goes to waiting on the kernel.
fn in_parallel<T, F>(items: Vec<T>, f: F) -> Result<()>
where
    T: Send,
    F: Fn(T) -> Result<()> + Sync,
{
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, 4)
        .min(items.len());
    if threads <= 1 {
        return items.into_iter().try_for_each(f);
    }
    let queue = Mutex::new(items.into_iter());
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    if lock(&failed).is_some() {
                        break;
                    }
                    let Some(item) = lock(&queue).next() else {
                        break;
                    };
                    if let Err(e) = f(item) {
                        lock(&failed).get_or_insert(e);
                        break;
                    }
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A connect's options with its legacy links resolved.
struct ConnectRequest {
    opts: EndpointOptions,
    legacy_links: Vec<LegacyLink>,
}

/// What a failed connect must undo, in reverse order.
#[derive(Default)]
struct Undo {
    addresses: Vec<(PoolId, IpAddr)>,
    record: bool,
    driver_endpoint: bool,
    joined: bool,
    attached: bool,
    ports: bool,
    dns: bool,
    links: Vec<LinkRule>,
}

/// The environment of a sandbox's legacy links (see [`Controller::link_env`]).
fn link_env_of(name: &str, st: &SandboxView) -> Vec<String> {
    let mut attached: Vec<&EndpointView> = st.endpoints.values().collect();
    attached.sort_by(|a, b| a.record.ifname.cmp(&b.record.ifname));
    let mut env = Vec::new();

    for a in attached {
        for l in &a.record.legacy_links {
            let ports: Vec<DnsExposedPort> = l
                .ports
                .iter()
                .map(|p| DnsExposedPort {
                    port: p.port,
                    proto: match p.proto {
                        Protocol::Tcp => PortProto::Tcp,
                        Protocol::Udp => PortProto::Udp,
                        Protocol::Sctp => PortProto::Sctp,
                    },
                })
                .collect();
            env.extend(berth_dns::link_env(&Link {
                parent: name,
                alias: &l.alias,
                child_addr: l.addr,
                ports: &ports,
                child_env: &[],
            }));
        }
    }
    env
}

/// The ports a linked sandbox exposes on an endpoint: `--expose`d ports and the container side
/// of published ones, one entry per port, sorted.
fn exposed_link_ports(rec: &EndpointRecord) -> Vec<LinkPort> {
    let mut ports = BTreeSet::new();
    for e in &rec.exposed {
        for p in e.ports.start()..=e.ports.end() {
            ports.insert((e.proto, p));
        }
    }
    for b in &rec.ports {
        for p in b.container_ports.start()..=b.container_ports.end() {
            ports.insert((b.proto, p));
        }
    }
    ports
        .into_iter()
        .map(|(proto, port)| LinkPort { proto, port })
        .collect()
}

/// The icc-off firewall rules of an endpoint's legacy links (links to sandboxes without exposed
/// ports open nothing, as in Docker).
fn link_rules(bridge: &str, rec: &EndpointRecord) -> Vec<LinkRule> {
    let parent = rec
        .ipv4
        .map(|a| IpAddr::V4(a.addr()))
        .or(rec.ipv6.map(|a| IpAddr::V6(a.addr())));
    let Some(parent_ip) = parent else {
        return Vec::new();
    };
    // Two aliases for one linked sandbox open its ports once.
    let mut seen = BTreeSet::new();
    rec.legacy_links
        .iter()
        .filter(|l| !l.ports.is_empty() && l.addr.is_ipv4() == parent_ip.is_ipv4())
        .filter(|l| seen.insert(l.addr))
        .map(|l| LinkRule {
            bridge: bridge.to_owned(),
            parent_ip,
            child_ip: l.addr,
            ports: l.ports.clone(),
        })
        .collect()
}

fn next_ifname(st: &SandboxState) -> String {
    let used: BTreeSet<&str> = st
        .endpoints
        .values()
        .filter_map(|a| a.record.ifname.as_deref())
        .collect();
    (0..)
        .map(|i| format!("eth{i}"))
        .find(|n| !used.contains(n.as_str()))
        .unwrap_or_else(|| "eth0".into())
}

fn family_of(net: &IpNet) -> IpFamily {
    match net {
        IpNet::V4(_) => IpFamily::V4,
        IpNet::V6(_) => IpFamily::V6,
    }
}

fn family_of_addr(a: IpAddr) -> IpFamily {
    match a {
        IpAddr::V4(_) => IpFamily::V4,
        IpAddr::V6(_) => IpFamily::V6,
    }
}

fn spec_of(rec: &NetworkRecord) -> NetworkSpec {
    let info = |p: &PoolRecord| IpamInfo {
        pool: p.subnet,
        gateway: p.gateway,
        aux_addresses: p.aux_addresses.clone(),
    };
    NetworkSpec {
        id: rec.id.clone(),
        name: rec.name.clone(),
        ipv4: rec.pools_v4.iter().map(info).collect(),
        ipv6: rec.pools_v6.iter().map(info).collect(),
        internal: rec.internal,
        enable_ipv6: rec.enable_ipv6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["isolated_nw", "a", "web.1", "x-y_z", "0abc"] {
            assert!(validate_name("network", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "_a", ".a", "a b", "a/b", "a:b", "é"] {
            assert!(validate_name("network", bad).is_err(), "{bad:?}");
        }
    }
}

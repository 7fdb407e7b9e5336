//! The controller: networks, sandboxes and the endpoints between them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use admission::{check_privileges, claim_host};
use berth_bridge::{BridgeDefaults, BridgeDriver};
use berth_dns::{
    DnsSettings, EndpointDns, ExposedPort as DnsExposedPort, HostEntry, HostsFile, Link, LinkHost,
    NetworkDns, ResolvMode, Resolver, SandboxFiles, plan_resolv_conf,
};
use berth_driver::{AddressRequest, AddressSpace, IpFamily, IpamDriver, Pool, PoolRequest};
use berth_driver::{
    DataPath, Driver, EndpointId, IpamInfo, JoinInfo, JoinRequest, LinkHole, NetworkId,
    NetworkSpec, RawOptions, SandboxId, SandboxRef,
};
use berth_firewall::{DesiredState, Firewall, FirewallConfig, LinkPort, NamespaceClaim};
use berth_netlink::{Handle, Netns, RouteSpec, sysctl_get, sysctl_set};
use berth_portmap::PortSpec;
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
    EndpointNames, EndpointRecord, EndpointState, FORWARDING_KEY, ForwardingRecord, INSTANCE_KEY,
    LegacyLink, NETWORK_DNS_PREFIX, NetworkRecord, PoolRecord, SandboxRecord, endpoint_key,
    network_dns_key, network_endpoint_key, network_endpoints_prefix, network_key, network_name_key,
    network_removal_key, quarantine_key, sandbox_key, sandbox_name_key,
};
use crate::registry::{Miss, Registry};
use crate::requests::{
    EndpointOptions, IpamPoolConfig, NetworkCreate, SandboxCreate, SandboxNetns,
};
use crate::time::now_rfc3339;

mod admission;
mod builder;
mod cluster;
mod cluster_lease;
mod cluster_names;
mod degraded;
mod endpoints;
mod files;
mod gwbridge;
mod inspect;
mod links;
mod networks;
mod restore;
mod sandboxes;
mod teardown;
mod trust;
mod validate;
use builder::BUILT_IN_DRIVERS;
pub use builder::ControllerBuilder;
use degraded::{DegradedSandbox, Trouble};
pub use gwbridge::GATEWAY_BRIDGE;
use links::*;
pub use networks::IFACE_PREFIX_OPTION;
use restore::{bind_host_key, instance_id, load};
pub use teardown::TeardownReport;
use validate::*;

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

/// Lock order: a degraded sandbox's `op`, then a sandbox's `state`, then (briefly) a registry,
/// a network's `members`, IPAM or the `degraded` map. Nothing takes a sandbox's `state` while
/// it holds a registry lock, so listings and renames never wait on each other in a cycle; the
/// `degraded` map is held only to copy from or update it.
struct Inner {
    config: Config,
    host: Netns,
    /// `<exec_root>/netns/default`: the host namespace bind-mounted, the `SandboxKey` of
    /// host-mode sandboxes (a path that means the same namespace to every process).
    host_key: std::path::PathBuf,
    host_netlink: Handle,
    /// Local state: the redb file under the data root, or the store the engine gave
    /// ([`ControllerBuilder::store`]).
    store: Arc<dyn KvStore>,
    firewall: Option<Arc<Firewall>>,
    /// By name: the built-in ones and those registered through [`ControllerBuilder`].
    drivers: BTreeMap<String, Arc<dyn Driver>>,
    /// The embedded DNS server (None when [`Config::embedded_dns`] switches it off).
    dns: Option<Resolver>,
    /// IPAM drivers by name: `default` (the built-in allocator, or the one given to the
    /// builder under that name) and those registered through [`ControllerBuilder::ipam`].
    ipams: BTreeMap<String, Arc<dyn IpamDriver>>,
    /// The store shared with other hosts, for global-scope networks
    /// ([`ControllerBuilder::cluster_store`]).
    cluster: Option<Cluster>,
    /// This state's instance id (see [`INSTANCE_KEY`]).
    instance: String,
    networks: RwLock<Registry<Network>>,
    sandboxes: RwLock<Registry<Sandbox>>,
    /// The next namespace id to give a sandbox in the host namespace (see [`NSID_TOP`]).
    next_nsid: AtomicI32,
    /// Sandboxes a start could not open again (a transient error on their namespace), with
    /// their endpoints, waiting for [`Controller::retry_degraded`]. Not in `sandboxes`.
    degraded: Mutex<BTreeMap<SandboxId, DegradedSandbox>>,
    /// The firewall's healing thread (`Config::heal_firewall`), stopped with the controller.
    healer: Mutex<Option<berth_firewall::Healer>>,
    /// The firewall was started trusting the kernel (see `trust`): the start does not
    /// reconcile it.
    trusted: bool,
    /// The start completed and no teardown happened: with `Config::trust_kernel`, going away
    /// leaves the marker for the next start (see `trust`).
    trust_ready: AtomicBool,
    /// The host namespace's berth firewall is this controller's (with a firewall); the last
    /// field, so released after everything else has gone.
    _claim: Option<NamespaceClaim>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.config.trust_kernel
            && self.trust_ready.load(Ordering::Relaxed)
            && !std::thread::panicking()
            && let Some(fw) = &self.firewall
        {
            trust::leave(&self.config.exec_root, &self.host, fw.tools_verdict());
        }
    }
}

/// The namespace ids berth gives sandboxes in the host namespace count down from here to
/// [`NSID_FLOOR`], so the newest sandbox has the lowest id. The kernel looks a peer namespace's
/// id up by walking the ids in ascending order, every time it describes a host veth (each
/// notification of its creation, bridge port, link state): with ids given in creation order, that
/// walk passed over every older sandbox on each step of a connect.
const NSID_TOP: i32 = i32::MAX;
/// The lowest id of berth's range; ids below it are left to the kernel and other tools.
const NSID_FLOOR: i32 = 1 << 30;

/// The cluster side of a controller: the shared store and what lives in it.
struct Cluster {
    store: Arc<dyn KvStore>,
    /// The global address space, in `store`.
    ipam: Arc<dyn IpamDriver>,
    /// Global networks this controller is creating: its watch leaves them to the creator.
    creating: Mutex<BTreeSet<NetworkId>>,
    /// Endpoints of other hosts whose names this host's embedded DNS answers.
    remote_names: Mutex<BTreeSet<(NetworkId, EndpointId)>>,
    /// The lease this host's endpoint marks and names live under (see `cluster_lease`).
    lease: Arc<berth_store::HostLease>,
}

struct Network {
    record: NetworkRecord,
    driver: Arc<dyn Driver>,
    /// Where its pools and addresses come from.
    ipam: Arc<dyn IpamDriver>,
    pools: Vec<Pool>,
    /// The interface whose host policy berth's firewall holds for the driver (see
    /// [`berth_driver::NetworkDriver::host_policy`]).
    policy: Option<String>,
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
    /// A netlink socket in the namespace, opened on first use ([`Sandbox::netlink`]): a start
    /// restores every sandbox, and most are never asked anything afterwards by a short-lived
    /// opener (a CNI plugin's call).
    netlink: std::sync::OnceLock<Handle>,
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
    /// Why some of its endpoints are not fully restored (see [`SandboxState::troubles`]).
    troubles: Vec<String>,
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

    /// The sandbox's netlink socket, opened now if it was not yet.
    fn netlink(&self) -> berth_netlink::Result<&Handle> {
        if let Some(h) = self.netlink.get() {
            return Ok(h);
        }
        let opened = Handle::open(&self.netns)?;
        // Two first uses at once: one socket is kept, the other dropped.
        Ok(self.netlink.get_or_init(|| opened))
    }
}

#[derive(Default)]
struct SandboxState {
    endpoints: BTreeMap<NetworkId, Attachment>,
    /// Endpoints a start could not fully restore (their attachment is in `endpoints`, with
    /// what did come back), waiting for [`Controller::retry_degraded`].
    troubles: BTreeMap<NetworkId, Trouble>,
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

/// A fresh 256-bit id (network, sandbox, endpoint), from the thread's CSPRNG (seeded by the OS).
fn random_id() -> [u8; 32] {
    rand::random()
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

impl Controller {
    /// Opens (or creates) the state in `config.data_root`, restores every network, sandbox and
    /// endpoint it holds, reconciles the kernel with it, and makes sure the built-in networks
    /// `host`, `none` and (unless `Config::default_bridge` is `None`) `bridge` exist. A bridge
    /// of the default bridge's name that berth did not make is refused
    /// ([`berth_bridge::BridgeError::ForeignBridge`], also re-exported as `berth::BridgeError`).
    ///
    /// A second controller on the same data root fails with [`berth_store::Error::Locked`].
    /// With drivers of its own, an engine uses [`Controller::builder`] instead.
    pub fn new(config: Config) -> Result<Controller> {
        Self::builder(config).build()
    }

    /// A controller with network drivers registered from outside, besides the built-in
    /// `bridge`, `null` and `host`:
    /// `Controller::builder(config).driver(MyDriver::new()).build()`.
    pub fn builder(config: Config) -> ControllerBuilder {
        ControllerBuilder::new(config)
    }

    /// The names of the registered network drivers, built-in ones included, in name order.
    pub fn drivers(&self) -> Vec<String> {
        self.inner.drivers.keys().cloned().collect()
    }

    fn start(
        config: Config,
        registered: Vec<Arc<dyn Driver>>,
        store: Option<Arc<dyn KvStore>>,
        ipams: Vec<Arc<dyn IpamDriver>>,
        cluster_store: Option<(Arc<dyn KvStore>, Arc<berth_store::HostLease>)>,
    ) -> Result<Controller> {
        let span = tracing::info_span!("controller_new", data_root = %config.data_root.display());
        let _enter = span.enter();
        check_privileges()?;
        let host = match &config.host_netns {
            Some(p) => Netns::open(p),
            None => Netns::current(),
        }
        .map_err(|e| Error::kernel("opening the host namespace", e))?;
        let claim = claim_host(&config, &host, store.is_some())?;
        std::fs::create_dir_all(&config.data_root).map_err(|e| {
            Error::kernel(
                format!("creating {}", config.data_root.display()),
                berth_netlink::Error::io("mkdir", e),
            )
        })?;
        let store: Arc<dyn KvStore> = match store {
            Some(s) => s,
            None => Arc::new(RedbStore::open(config.store_path())?),
        };
        let host_netlink =
            Handle::open(&host).map_err(|e| Error::kernel("netlink in the host namespace", e))?;
        let host_key = bind_host_key(&host, &config.netns_dir())?;
        let instance = instance_id(&*store)?;

        let mut networks: Vec<NetworkRecord> = load(&*store, "network/")?;
        if let Some((cs, _)) = &cluster_store {
            networks.extend(load::<NetworkRecord>(&**cs, "network/")?);
        }

        // Docker sets the forward policy to DROP when it switched forwarding on. berth keeps what
        // it switched on in the store, so the policy stays after a restart finds forwarding on.
        let mut forwarding = forwarding_record(&*store)?;
        let before = forwarding;
        if config.ip_forward {
            let cur = sysctl_get(&host, "net.ipv4.ip_forward")
                .map_err(|e| Error::kernel("reading ip_forward", e))?;
            if cur.trim() != "1" {
                sysctl_set(&host, "net.ipv4.ip_forward", "1")
                    .map_err(|e| Error::kernel("enabling ip_forward", e))?;
                forwarding.ipv4 = true;
            }
            // With the daemon's --ipv6, or when an IPv6 network exists (one was created under a
            // previous run, which switched forwarding on then).
            if config.ipv6 || networks.iter().any(|n| n.enable_ipv6) {
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

        let sandbox_records: Vec<SandboxRecord> = load(&*store, "sandbox/")?;
        // dockerd's --icc, --ip-masq and --mtu shape the default bridge only (they become its
        // explicit options); user-defined networks keep Docker's defaults unless their own
        // options say otherwise. --ip is the default host address of every network.
        let bridge_defaults = BridgeDefaults {
            host_binding_ipv4: config.default_bind_ip,
            ..BridgeDefaults::default()
        };

        // The firewall starts staged: the drivers' restores (networks, published ports) and the
        // legacy links add their rules to its state as they come back, and one reconcile at the
        // end of the restore converges the kernel on exactly that (see `restore`). What a
        // restore does not bring back (a sandbox gone after a reboot, an endpoint that failed)
        // is never applied and its old rules are removed by that reconcile.
        // Taken away by every start, trusting or not: a marker must never outlive a start that
        // may change the kernel without leaving a new one.
        let mut trusted_tools =
            trust::take(&config.exec_root, &host).filter(|_| config.trust_kernel);
        let mut trusted = false;
        let firewall = match config.firewall {
            None => None,
            Some(backend) => {
                let mut fw_config = FirewallConfig::new(backend);
                // IPv6 rules for every network that has IPv6, with or without --ipv6.
                fw_config.ipv6 = true;
                fw_config.trusted_interfaces = config.trusted_interfaces.clone();
                fw_config.forward_policy_drop = forwarding.ipv4;
                fw_config.forward_policy_drop_v6 = forwarding.ipv6;
                // A trusted start (`Config::trust_kernel`) takes the probes' verdicts from the
                // marker the previous opener left, and skips the start reconcile.
                let known = match trusted_tools.take() {
                    Some(tools) => Firewall::with_known_tools(
                        &host,
                        fw_config.clone(),
                        DesiredState::new(),
                        &tools,
                    )?,
                    None => None,
                };
                trusted = known.is_some();
                Some(Arc::new(match known {
                    Some(fw) => fw,
                    None => Firewall::with_state(&host, fw_config, DesiredState::new())?,
                }))
            }
        };

        let bridge = Arc::new(
            BridgeDriver::with_proxy_limits(
                &host,
                firewall.clone(),
                bridge_defaults,
                config.userland_proxy,
                config.userland_proxy_limits,
            )?
            .with_instance(instance.clone()),
        );
        let macvlan = Arc::new(berth_macvlan::MacvlanDriver::new(&host, &instance)?);
        let ipvlan = Arc::new(berth_macvlan::IpvlanDriver::new(&host, &instance)?);
        let mut drivers: BTreeMap<String, Arc<dyn Driver>> = BTreeMap::new();
        let built_in: [Arc<dyn Driver>; 5] = [
            bridge,
            macvlan,
            ipvlan,
            Arc::new(NullDriver),
            Arc::new(HostDriver),
        ];
        debug_assert!(built_in.iter().map(|d| d.name()).eq(BUILT_IN_DRIVERS));
        for d in built_in.into_iter().chain(registered) {
            drivers.insert(d.name().to_owned(), d);
        }

        let builtin: Arc<dyn IpamDriver> = match &config.default_address_pools {
            Some(pools) => Arc::new(crate::BuiltinIpam::with_default_pools(pools.clone())),
            None => Arc::new(crate::BuiltinIpam::new()),
        };
        let mut ipam_drivers: BTreeMap<String, Arc<dyn IpamDriver>> = BTreeMap::new();
        for i in std::iter::once(builtin).chain(ipams) {
            ipam_drivers.insert(i.name().to_owned(), i);
        }
        let cluster = cluster_store.map(|(store, lease)| Cluster {
            ipam: Arc::new(crate::ClusterIpam::new(store.clone())),
            lease,
            store,
            creating: Mutex::default(),
            remote_names: Mutex::default(),
        });
        let dns = match &config.embedded_dns {
            Some(dns) => Some(Resolver::new(dns.clone()).map_err(|e| {
                Error::InvalidRequest(format!("starting the embedded DNS server: {e}"))
            })?),
            None => None,
        };
        let inner = Inner {
            config,
            host,
            host_key,
            host_netlink,
            store,
            firewall,
            drivers,
            dns,
            ipams: ipam_drivers,
            cluster,
            instance,
            networks: RwLock::new(Registry::default()),
            sandboxes: RwLock::new(Registry::default()),
            next_nsid: AtomicI32::new(NSID_TOP),
            degraded: Mutex::default(),
            healer: Mutex::default(),
            trusted,
            trust_ready: AtomicBool::new(false),
            _claim: claim,
        };
        // Below every id of berth's range already given (sandboxes from before a restart).
        if let Ok(ids) = inner.host_netlink.nsid_list()
            && let Some(lowest) = ids.into_iter().filter(|id| *id >= NSID_FLOOR).min()
        {
            inner.next_nsid.store(lowest - 1, Ordering::Relaxed);
        }
        let controller = Controller {
            inner: Arc::new(inner),
        };
        controller.restore(networks, sandbox_records)?;
        controller.ensure_predefined()?;
        controller.prune_global_endpoint_marks()?;
        controller.republish_global_endpoints()?;
        controller.keep_cluster_lease()?;
        controller.watch_cluster()?;
        controller.inner.trust_ready.store(true, Ordering::Relaxed);
        Ok(controller)
    }

    /// Compares berth's firewall rules in the host namespace with what they must be and fixes
    /// what differs (`berth firewall reconcile`): missing rules, chains, jumps and elements are
    /// put back, stale ones removed; the user's chain (`DOCKER-USER`) is never touched. Returns
    /// what was found (clean when nothing had to change). Fails with
    /// [`Error::InvalidRequest`] when berth manages no firewall (`Config::firewall` is None).
    pub fn reconcile_firewall(&self) -> Result<berth_firewall::DriftReport> {
        let fw = self.inner.firewall.as_ref().ok_or_else(|| {
            Error::InvalidRequest("berth manages no firewall here (iptables=false)".into())
        })?;
        let report = fw.reconcile()?;
        if !report.is_clean() {
            tracing::warn!(found = %report, "firewall reconciled on demand: repaired");
        }
        Ok(report)
    }

    /// The firewall's healing thread's counters and last repair, when it runs
    /// (`Config::heal_firewall`).
    pub fn firewall_healing(&self) -> Option<berth_firewall::HealStats> {
        lock(&self.inner.healer).as_ref().map(|h| h.stats())
    }

    /// This state's instance id: made on the first start and kept in the store (the mark on
    /// berth's kernel objects; the `ID` of `docker info`).
    pub fn instance_id(&self) -> &str {
        &self.inner.instance
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

    // ----- lookups -----

    /// The embedded DNS server, unless [`Config::embedded_dns`] switched it off.
    fn dns(&self) -> Option<&Resolver> {
        self.inner.dns.as_ref()
    }

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
        if !self.inner.config.id_prefixes {
            return self
                .read_networks()
                .exact(key)
                .cloned()
                .ok_or_else(|| Error::NetworkNotFound(key.to_owned()));
        }
        self.read_networks().find(key).map_err(|miss| match miss {
            Miss::Ambiguous => Error::NetworkAmbiguous(key.to_owned()),
            Miss::None => Error::NetworkNotFound(key.to_owned()),
        })
    }

    /// A live sandbox by name or id (or unique id prefix, with `Config::id_prefixes`). A degraded one (see
    /// [`Controller::retry_degraded`]) is [`Error::Degraded`], naming why.
    fn lookup_sandbox(&self, key: &str) -> Result<Arc<Sandbox>> {
        // A degraded sandbox's own name or id wins over a live one's id prefix.
        let exact = {
            let reg = self.read_sandboxes();
            reg.exact(key).cloned()
        };
        if let Some(sb) = exact {
            return Ok(sb);
        }
        let degraded = |exact: bool| {
            self.find_degraded(key, exact)
                .map(|(name, reason)| Error::Degraded { name, reason })
        };
        if let Some(e) = degraded(true) {
            return Err(e);
        }
        if !self.inner.config.id_prefixes {
            return Err(Error::SandboxNotFound(key.to_owned()));
        }
        let found = self.read_sandboxes().find(key);
        found.map_err(|_| degraded(false).unwrap_or_else(|| Error::SandboxNotFound(key.to_owned())))
    }
}

/// What berth switched on in the host namespace (kept under [`FORWARDING_KEY`]); an unreadable
/// record counts as nothing switched on.
fn forwarding_record(store: &dyn KvStore) -> Result<ForwardingRecord> {
    Ok(match store.get(FORWARDING_KEY)? {
        Some(e) => decode(FORWARDING_KEY, &e.value).unwrap_or_default(),
        None => ForwardingRecord::default(),
    })
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

impl Controller {
    /// An IPAM driver's error as the controller's: the built-in allocator's typed error as
    /// [`Error::Ipam`], any other as [`Error::IpamDriver`].
    fn ipam_err(ipam: &dyn IpamDriver, e: berth_driver::BoxError) -> Error {
        let e = match e.downcast::<berth_ipam::Error>() {
            Ok(ie) => return Error::Ipam(*ie),
            Err(e) => e,
        };
        match e.downcast::<berth_store::Error>() {
            Ok(se) => Error::Store(*se),
            Err(source) => Error::IpamDriver {
                driver: ipam.name().to_owned(),
                source,
            },
        }
    }

    /// The IPAM driver a network asks: the one named, and for a global network with the
    /// `default` one, the cluster's global address space.
    fn ipam_for(&self, name: &str, scope: berth_driver::Scope) -> Result<Arc<dyn IpamDriver>> {
        if scope == berth_driver::Scope::Global && name == "default" {
            return Ok(self.cluster()?.ipam.clone());
        }
        self.inner
            .ipams
            .get(name)
            .cloned()
            .ok_or_else(|| Error::DriverNotFound(name.to_owned()))
    }

    /// The store a network's records live in: the cluster store for a global network.
    fn store_for(&self, scope: berth_driver::Scope) -> Result<&Arc<dyn KvStore>> {
        match scope {
            berth_driver::Scope::Local => Ok(&self.inner.store),
            berth_driver::Scope::Global => Ok(&self.cluster()?.store),
        }
    }

    fn cluster(&self) -> Result<&Cluster> {
        self.inner.cluster.as_ref().ok_or(Error::NoClusterStore)
    }
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

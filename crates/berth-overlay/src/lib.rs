//! berth's overlay driver: global-scope networks that span the hosts sharing a cluster store,
//! on VXLAN, with peers learned from the store instead of flooded.
//!
//! A network gets a VXLAN id cluster-wide (claimed in the store with compare-and-swap, from
//! 4096 up unless `com.docker.network.driver.overlay.vxlanid_list` names one; see
//! [`NetworkDriver::allocate_network`]). On each host, its data path is made when the first
//! local sandbox joins and removed when the last one goes: a namespace with a bridge and the
//! VXLAN device ([`datapath`]). Every endpoint publishes its address, MAC and its host's
//! underlay address in the store under the host's lease ([`cluster`]); each host watches the
//! peer table and programs a static neighbour and forwarding entry per remote endpoint, so
//! the first packet to a remote sandbox needs no ARP broadcast across hosts and adding or
//! removing one endpoint is one change on each host. A host that dies stops renewing its
//! lease, and its entries go from the store, and then from the other hosts, when it expires.
//!
//! The driver has no way out of its own ([`Egress::GatewayBridge`]): the controller gives a
//! sandbox whose networks are all overlay an interface on `docker_gwbridge` for that.
//!
//! ```no_run
//! use std::sync::Arc;
//! use berth_overlay::{OverlayConfig, OverlayDriver};
//! use berth_store::{KvStore, MemoryStore};
//! use berth_netlink::Netns;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster: Arc<dyn KvStore> = Arc::new(MemoryStore::new()); // etcd in a real cluster
//! let config = OverlayConfig::new("192.0.2.10".parse()?, "/run/berth/netns");
//! let overlay = OverlayDriver::new(&Netns::current()?, cluster.clone(), config)?;
//! // berth::Controller::builder(..).driver(overlay).cluster_store(cluster).build()?
//! # let _ = overlay; Ok(()) }
//! ```

pub mod cluster;
pub mod datapath;
pub mod options;
mod peers;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use berth_driver::{
    Capabilities, DataPath as DriverDataPath, DriverError, Egress, EndpointId, EndpointOperInfo,
    EndpointSpec, InterfaceInfo, JoinInfo, JoinRequest, MacAddr, NetworkDriver, NetworkId,
    NetworkSpec, OptionReader, RawOptions, Result, Scope, local_mac_from_bytes, mac_from_ipv4,
};
use berth_netlink::{AddrSpec, Handle, LinkSpec, Netns, VethPeer};
use berth_store::KvStore;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use cluster::{HostLease, PeerRecord, peer_key};
use datapath::{BRIDGE, DataPath, Layout, netns_name, port_name};

pub use cluster::{PEER_PREFIX, VNI_PREFIX};
pub use options::{FIRST_VNI, MTU, OverlayOptions, VXLAN_OVERHEAD, VXLANID_LIST};

/// The driver's name (`docker network create -d overlay`).
pub const DRIVER_NAME: &str = "overlay";

/// The default time to live of a host's lease: a dead host's endpoints disappear from the
/// other hosts at most this long after it died.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// How the overlay driver of one host is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OverlayConfig {
    /// This host's underlay address (dockerd's `--cluster-advertise`): the other hosts send
    /// its endpoints' frames there, and its VXLAN devices send from it. Unique per host.
    pub advertise: IpAddr,
    /// Where the driver bind-mounts its network namespaces (berth's `<exec_root>/netns`).
    pub netns_dir: PathBuf,
    /// The time to live of the host's lease in the cluster store.
    pub lease_ttl: Duration,
}

impl OverlayConfig {
    /// A host advertising `advertise`, with its namespaces under `netns_dir` and a lease of
    /// [`DEFAULT_LEASE_TTL`].
    pub fn new(advertise: IpAddr, netns_dir: impl Into<PathBuf>) -> OverlayConfig {
        OverlayConfig {
            advertise,
            netns_dir: netns_dir.into(),
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }

    /// With this lease time to live.
    pub fn lease_ttl(mut self, ttl: Duration) -> OverlayConfig {
        self.lease_ttl = ttl;
        self
    }
}

/// The kernel work a host's driver did for remote endpoints ([`OverlayDriver::peer_stats`]):
/// totals since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerStats {
    /// Remote endpoints programmed (or reprogrammed with a changed record); failed attempts
    /// count too.
    pub programmed: u64,
    /// The time spent in the kernel calls that programmed them.
    pub program_time: Duration,
    /// Remote endpoints whose entries were removed.
    pub unprogrammed: u64,
    /// The time spent in the kernel calls that removed them.
    pub unprogram_time: Duration,
}

/// One overlay network as this host knows it.
#[derive(Debug)]
struct OverlayNetwork {
    name: String,
    vni: u32,
    mtu: u32,
    gateways: Vec<IpNet>,
    endpoints: Mutex<HashMap<EndpointId, OverlayEndpoint>>,
    /// The data path, while a local sandbox is on the network. Lock order: a network's data
    /// path before the peer table.
    datapath: Mutex<Option<DataPath>>,
}

#[derive(Debug, Clone)]
struct OverlayEndpoint {
    mac: MacAddr,
    ipv4: Option<Ipv4Net>,
    ipv6: Option<Ipv6Net>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The driver's state, shared with its watch and lease threads.
struct Inner {
    host_nl: Handle,
    store: Arc<dyn KvStore>,
    config: OverlayConfig,
    underlay_mtu: u32,
    lease: Arc<HostLease>,
    networks: RwLock<HashMap<NetworkId, Arc<OverlayNetwork>>>,
    /// Every endpoint of every overlay network, as the store's peer table says.
    peers: Mutex<HashMap<NetworkId, HashMap<EndpointId, PeerRecord>>>,
    /// This host's entries in the peer table (put again under a new lease if it was lost).
    published: Mutex<HashMap<(NetworkId, EndpointId), PeerRecord>>,
    /// This host's entries whose removal from the store failed, retried by the lease thread.
    unpublish: Mutex<Vec<(NetworkId, EndpointId)>>,
    /// What programming remote endpoints into the kernel cost ([`OverlayDriver::peer_stats`]).
    peer_counters: peers::PeerCounters,
    stop: AtomicBool,
}

/// The overlay driver of one host. `Send + Sync`; register it with the controller, which must
/// share the same cluster store.
pub struct OverlayDriver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OverlayDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlayDriver")
            .field("config", &self.inner.config)
            .field("underlay_mtu", &self.inner.underlay_mtu)
            .finish_non_exhaustive()
    }
}

impl Drop for OverlayDriver {
    fn drop(&mut self) {
        // The threads end at their next turn. The lease is left to expire: a restarted daemon
        // puts its endpoints again under a new one, and until then the other hosts keep
        // reaching them.
        self.inner.stop.store(true, Ordering::Relaxed);
    }
}

impl OverlayDriver {
    /// A driver working from `host` (the namespace of the underlay), keeping its shared state
    /// in `store` (the controller's cluster store). Fails when `config.advertise` is on no
    /// interface of `host` (its MTU gives the networks' default MTU).
    pub fn new(
        host: &Netns,
        store: Arc<dyn KvStore>,
        config: OverlayConfig,
    ) -> Result<OverlayDriver> {
        let host_nl = Handle::open(host)
            .map_err(|e| DriverError::kernel("opening netlink in the host namespace", e))?;
        let addrs = host_nl
            .addr_list_all()
            .map_err(|e| DriverError::kernel("listing the host's addresses", e))?;
        let Some(index) = addrs
            .iter()
            .find(|a| a.net.addr() == config.advertise)
            .map(|a| a.index)
        else {
            return Err(DriverError::InvalidConfig(format!(
                "the overlay's advertise address {} is on no interface of the host",
                config.advertise
            )));
        };
        let underlay_mtu = host_nl
            .link(index)
            .map_err(|e| DriverError::kernel("looking up the underlay interface", e))?
            .mtu;
        if config.lease_ttl.is_zero() {
            return Err(DriverError::InvalidConfig(
                "the overlay's lease time to live must be more than zero".into(),
            ));
        }
        let inner = Arc::new(Inner {
            host_nl,
            lease: Arc::new(HostLease::new(store.clone(), config.lease_ttl)),
            store,
            config,
            underlay_mtu,
            networks: RwLock::new(HashMap::new()),
            peers: Mutex::new(HashMap::new()),
            published: Mutex::new(HashMap::new()),
            unpublish: Mutex::new(Vec::new()),
            peer_counters: peers::PeerCounters::default(),
            stop: AtomicBool::new(false),
        });
        peers::start_threads(&inner)?;
        Ok(OverlayDriver { inner })
    }

    /// The lease this host's peer entries live under, for the controller to share
    /// (`ControllerBuilder::cluster_lease`): one lease per host, kept alive once per renewal
    /// period, instead of one each.
    pub fn host_lease(&self) -> Arc<berth_store::HostLease> {
        self.inner.lease.clone()
    }

    /// The VXLAN id of a network this host knows.
    pub fn vni_of(&self, network: &NetworkId) -> Option<u32> {
        self.inner.network(network).ok().map(|n| n.vni)
    }

    /// The MTU of a network this host knows.
    pub fn mtu_of(&self, network: &NetworkId) -> Option<u32> {
        self.inner.network(network).ok().map(|n| n.mtu)
    }

    /// The path of a network's namespace on this host (it exists while a local sandbox is on
    /// the network).
    pub fn netns_path(&self, network: &NetworkId) -> PathBuf {
        self.inner.config.netns_dir.join(netns_name(network))
    }

    /// What programming remote endpoints into this host's kernel has cost since the driver
    /// started, over every network: how many endpoints were programmed (a forwarding entry and
    /// a neighbour entry per address on `vxlan0`) and removed, and the time spent in those
    /// kernel calls alone (not the wait for the store's watch). For benchmarks and operators:
    /// one endpoint more should cost the same whatever the size of the network.
    pub fn peer_stats(&self) -> PeerStats {
        self.inner.peer_counters.snapshot()
    }

    /// How many remote endpoints of `network` are programmed on this host.
    pub fn programmed_peers(&self, network: &NetworkId) -> usize {
        self.inner.network(network).map_or(0, |n| {
            lock(&n.datapath)
                .as_ref()
                .map_or(0, |dp| dp.programmed.len())
        })
    }
}

impl Inner {
    fn network(&self, id: &NetworkId) -> Result<Arc<OverlayNetwork>> {
        self.networks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| DriverError::NetworkNotFound(id.to_string()))
    }

    /// Makes the network's data path if it has none, and programs every remote endpoint the
    /// peer table knows.
    fn ensure_datapath<'a>(
        &self,
        id: &NetworkId,
        net: &'a OverlayNetwork,
    ) -> Result<MutexGuard<'a, Option<DataPath>>> {
        let mut dp = lock(&net.datapath);
        if dp.is_none() {
            let layout = Layout {
                dir: &self.config.netns_dir,
                name: netns_name(id),
                vni: net.vni,
                mtu: net.mtu,
                local: self.config.advertise,
                gateways: &net.gateways,
            };
            let mut made = DataPath::build(&self.host_nl, &layout)?;
            let remote: Vec<(EndpointId, PeerRecord)> = lock(&self.peers)
                .get(id)
                .map(|eps| {
                    eps.iter()
                        .filter(|(_, p)| p.vtep != self.config.advertise)
                        .map(|(e, p)| (e.clone(), p.clone()))
                        .collect()
                })
                .unwrap_or_default();
            for (ep, peer) in &remote {
                self.program_peer(&mut made, ep, peer);
            }
            tracing::info!(network = %net.name, vni = net.vni, peers = remote.len(), "overlay data path made");
            *dp = Some(made);
        }
        Ok(dp)
    }

    /// Puts this host's entry for an endpoint in the store, under the host's lease.
    fn publish(&self, network: &NetworkId, endpoint: &EndpointId, rec: &PeerRecord) -> Result<()> {
        let key = peer_key(network, endpoint);
        let value = rec.encode();
        let err = |e| DriverError::store(format!("publishing endpoint {}", endpoint.short()), e);
        let mut tries = 0;
        loop {
            let lease = self.lease.current().map_err(err)?;
            match self.store.put_with_lease(&key, &value, lease) {
                Ok(_) => break,
                // Expired under us: forgotten, so that the next `current` grants a new one (the
                // keepers see the new generation and put their keys again).
                Err(berth_store::Error::LeaseNotFound { .. }) if tries == 0 => {
                    tries += 1;
                    self.lease.forget(lease);
                }
                Err(e) => return Err(err(e)),
            }
        }
        lock(&self.published).insert((network.clone(), endpoint.clone()), rec.clone());
        lock(&self.unpublish).retain(|k| k != &(network.clone(), endpoint.clone()));
        Ok(())
    }

    /// Takes this host's entry for an endpoint out of the store (retried later if the store
    /// cannot be reached now).
    fn unpublish(&self, network: &NetworkId, endpoint: &EndpointId) {
        lock(&self.published).remove(&(network.clone(), endpoint.clone()));
        if let Err(e) = self.store.delete(&peer_key(network, endpoint)) {
            tracing::warn!(endpoint = %endpoint.short(), error = %e, "removing an endpoint from the peer table; retrying later");
            lock(&self.unpublish).push((network.clone(), endpoint.clone()));
        }
    }
}

impl NetworkDriver for OverlayDriver {
    type Options = OverlayOptions;

    fn name(&self) -> &'static str {
        DRIVER_NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(DriverDataPath::Interfaces)
            .scope(Scope::Global)
            .egress(Egress::GatewayBridge)
    }

    fn parse_options(&self, raw: &RawOptions) -> Result<OverlayOptions> {
        OverlayOptions::parse(raw)
    }

    fn allocate_network(&self, spec: &NetworkSpec, options: &RawOptions) -> Result<RawOptions> {
        let wanted = OverlayOptions::parse(options)?.vni;
        let vni = cluster::claim_vni(&*self.inner.store, &spec.id, wanted)?;
        Ok(RawOptions::from([(
            VXLANID_LIST.to_owned(),
            vni.to_string(),
        )]))
    }

    fn free_network(&self, network: &NetworkId, options: &RawOptions) -> Result<()> {
        match OverlayOptions::parse(options).ok().and_then(|o| o.vni) {
            Some(vni) => cluster::release_vni(&*self.inner.store, network, vni),
            None => Ok(()),
        }
    }

    fn create_network(&self, spec: &NetworkSpec, options: &OverlayOptions) -> Result<()> {
        // The id was claimed by `allocate_network` on the host that made the network; a network
        // stored without one (made before the driver claimed ids) claims it here, once.
        let vni = match options.vni {
            Some(v) => v,
            None => cluster::claim_vni(&*self.inner.store, &spec.id, None)?,
        };
        let mtu = options.mtu.unwrap_or_else(|| {
            self.inner
                .underlay_mtu
                .saturating_sub(VXLAN_OVERHEAD)
                .max(options::MIN_MTU)
        });
        let gateways = spec
            .ipv4
            .iter()
            .chain(&spec.ipv6)
            .filter_map(|p| p.gateway)
            .collect();
        let net = Arc::new(OverlayNetwork {
            name: spec.name.clone(),
            vni,
            mtu,
            gateways,
            endpoints: Mutex::new(HashMap::new()),
            datapath: Mutex::new(None),
        });
        let mut nets = self
            .inner
            .networks
            .write()
            .unwrap_or_else(|p| p.into_inner());
        // Created again (a restore): keep the endpoints and data path already known.
        nets.entry(spec.id.clone()).or_insert(net);
        Ok(())
    }

    fn delete_network(&self, network: &NetworkId) -> Result<()> {
        let net = self
            .inner
            .networks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(network);
        let Some(net) = net else {
            return Ok(());
        };
        if let Some(dp) = lock(&net.datapath).take() {
            dp.destroy();
        }
        Ok(())
    }

    fn create_endpoint(&self, spec: &EndpointSpec) -> Result<InterfaceInfo> {
        OptionReader::new(DRIVER_NAME, &spec.options).finish()?;
        let net = self.inner.network(&spec.network)?;
        let mac = spec.mac.unwrap_or_else(|| match spec.ipv4 {
            Some(v4) => mac_from_ipv4(v4.addr()),
            // IPv6 only: locally administered, from the endpoint id (random already).
            None => {
                let n = u64::from_str_radix(&spec.endpoint.as_str()[..12], 16).unwrap_or(0);
                let b = n.to_be_bytes();
                local_mac_from_bytes([b[2], b[3], b[4], b[5], b[6], b[7]])
            }
        });
        let mut eps = lock(&net.endpoints);
        if eps.contains_key(&spec.endpoint) {
            return Err(DriverError::Exists(format!(
                "endpoint {}",
                spec.endpoint.short()
            )));
        }
        eps.insert(
            spec.endpoint.clone(),
            OverlayEndpoint {
                mac,
                ipv4: spec.ipv4,
                ipv6: spec.ipv6,
            },
        );
        Ok(InterfaceInfo {
            mac: Some(mac),
            ipv4: spec.ipv4,
            ipv6: spec.ipv6,
        })
    }

    fn delete_endpoint(&self, network: &NetworkId, endpoint: &EndpointId) -> Result<()> {
        let net = self.inner.network(network)?;
        let last = {
            let mut eps = lock(&net.endpoints);
            eps.remove(endpoint)
                .ok_or_else(|| DriverError::EndpointNotFound(endpoint.to_string()))?;
            eps.is_empty()
        };
        if last {
            if let Some(dp) = lock(&net.datapath).take() {
                dp.destroy();
                tracing::info!(network = %net.name, "overlay data path removed (no local endpoint left)");
            }
        }
        Ok(())
    }

    fn endpoint_info(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
    ) -> Result<EndpointOperInfo> {
        let net = self.inner.network(network)?;
        let eps = lock(&net.endpoints);
        let ep = eps
            .get(endpoint)
            .ok_or_else(|| DriverError::EndpointNotFound(endpoint.to_string()))?;
        let mut info = EndpointOperInfo::default();
        info.extra.insert("mac".into(), ep.mac.to_string());
        info.extra.insert("vxlan_id".into(), net.vni.to_string());
        Ok(info)
    }

    fn join(&self, req: &JoinRequest<'_>) -> Result<JoinInfo> {
        let inner = &self.inner;
        let net = inner.network(req.network)?;
        let ep = lock(&net.endpoints)
            .get(req.endpoint)
            .cloned()
            .ok_or_else(|| DriverError::EndpointNotFound(req.endpoint.to_string()))?;
        let mut guard = inner.ensure_datapath(req.network, &net)?;
        let Some(dp) = guard.as_mut() else {
            return Err(DriverError::Internal {
                driver: DRIVER_NAME,
                message: "no data path after making it".into(),
            });
        };
        let (sb_ns, sb) = Handle::open_namespace(req.sandbox.netns.fd, req.sandbox.netns.path)
            .map_err(|e| DriverError::kernel(format!("opening {}", req.sandbox), e))?;
        let port = port_name(req.endpoint);
        let peer = VethPeer::new(req.ifname)
            .netns(&sb_ns)
            .mac(ep.mac)
            .mtu(net.mtu);
        let pair = LinkSpec::veth(port.as_str(), peer)
            .mtu(net.mtu)
            .master(BRIDGE);
        match dp.nl.link_add(&pair) {
            Ok(()) => {}
            // After a restart the pair may exist already: converge.
            Err(e) if e.is_exists() && matches!(dp.nl.link_get(port.as_str()), Ok(Some(_))) => {}
            Err(e) => {
                return Err(DriverError::kernel(
                    format!("creating veth {port} with {} in the sandbox", req.ifname),
                    e,
                ));
            }
        }
        let configure = || -> Result<()> {
            let addrs = ep
                .ipv4
                .map(|a| AddrSpec::new(IpNet::V4(a)))
                .into_iter()
                .chain(ep.ipv6.map(|a| AddrSpec::new(IpNet::V6(a)).nodad()));
            for addr in addrs {
                match sb.addr_add(req.ifname, &addr) {
                    Ok(()) => {}
                    Err(e) if e.is_exists() => {}
                    Err(e) => {
                        return Err(DriverError::kernel(
                            format!("adding {} to {} in the sandbox", addr.net(), req.ifname),
                            e,
                        ));
                    }
                }
            }
            sb.link_set_up(req.ifname).map_err(|e| {
                DriverError::kernel(format!("bringing {} up in the sandbox", req.ifname), e)
            })?;
            dp.nl
                .link_set_up(port.as_str())
                .map_err(|e| DriverError::kernel(format!("bringing {port} up"), e))
        };
        let rec = PeerRecord {
            ipv4: ep.ipv4.map(|a| a.addr()),
            ipv6: ep.ipv6.map(|a| a.addr()),
            mac: ep.mac,
            vtep: inner.config.advertise,
        };
        let done = configure().and_then(|()| inner.publish(req.network, req.endpoint, &rec));
        if let Err(e) = done {
            let _ = dp.nl.link_delete(port.as_str());
            return Err(e);
        }
        Ok(JoinInfo {
            ifname: req.ifname.to_owned(),
            ..JoinInfo::default()
        })
    }

    fn leave(&self, network: &NetworkId, endpoint: &EndpointId) -> Result<()> {
        let net = self.inner.network(network)?;
        if !lock(&net.endpoints).contains_key(endpoint) {
            return Err(DriverError::EndpointNotFound(endpoint.to_string()));
        }
        // The other hosts stop sending to it first.
        self.inner.unpublish(network, endpoint);
        let port = port_name(endpoint);
        if let Some(dp) = lock(&net.datapath).as_ref() {
            match dp.nl.link_delete(port.as_str()) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(DriverError::kernel(format!("deleting veth {port}"), e)),
            }
        }
        Ok(())
    }

    fn remove_orphans(&self) -> Result<Vec<String>> {
        peers::remove_orphans(&self.inner)
    }
}

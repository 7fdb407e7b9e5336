//! berth's Linux bridge driver: the default `bridge` network on `docker0` and user-defined bridge
//! networks on `br-<first 12 hex digits of the network id>`.
//!
//! A network is a Linux bridge in the host namespace carrying the gateway addresses, plus the
//! firewall rules of [`berth_firewall::NetworkRules`] (forwarding, isolation from every other
//! bridge, icc, internal, masquerade or SNAT). An endpoint is a veth pair created in one netlink
//! request: the host end (`berth` + 10 hex digits of the endpoint id, so every veth is traceable to
//! its endpoint record) is a port of the bridge, the other end is created directly inside the
//! sandbox under its final name (`eth0`, `eth1`, ...), with the endpoint's addresses and MAC.
//!
//! The host end of every veth takes the bridge's own MAC address. The bridge keeps one local
//! forwarding entry per distinct port address and walks all of them each time a port joins;
//! sharing the bridge's address keeps that table at one entry whatever the number of ports. The
//! host end never sends a frame of its own (it has no addresses, IPv6 is off on it), so the
//! shared address is never seen on the wire, and as an address set by berth (not random)
//! udev's `MACAddressPolicy` leaves it alone. Bridges berth makes have multicast snooping off
//! (see [`BridgeOptions::mcast_snooping`]).
//!
//! Every bridge and host-side veth the driver makes carries a link alias naming the berth
//! instance and the network or endpoint (see [`BridgeDriver::with_instance`]); a restart removes
//! only unrecorded links with this instance's mark, never Docker's, another berth's or
//! unmarked ones. With a firewall, bridged traffic is sent through it
//! (`net.bridge.bridge-nf-call-iptables`, see [`BridgeError`]).
//!
//! MAC addresses follow Docker's derivation (`02:42` + the IPv4 address), not random addresses
//! with a gratuitous ARP: when an address is reused by another endpoint, neighbours' ARP caches
//! already hold the right MAC, and no extra packet is needed on join. IPv6-only endpoints get a
//! random locally administered MAC.
//!
//! ```no_run
//! use std::sync::Arc;
//! use berth_bridge::{BridgeDriver, BridgeDefaults};
//! use berth_driver::Driver;
//! use berth_netlink::Netns;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let host = Netns::current()?;
//! let driver: Arc<dyn Driver> = Arc::new(
//!     BridgeDriver::new(&host, None, BridgeDefaults::default())?.with_instance("3f2a9c"),
//! );
//! # Ok(()) }
//! ```

mod links;
mod marker;
mod netfilter;
mod network;
mod options;
mod orphans;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use berth_driver::{
    Capabilities, DataPath, DriverError, EndpointId, EndpointOperInfo, EndpointSpec, InterfaceInfo,
    JoinInfo, JoinRequest, LinkHole, MacAddr, NetworkDriver, NetworkId, NetworkSpec, OptionReader,
    RawOptions, Result, local_mac_from_bytes, mac_from_ipv4,
};
use berth_firewall::{Firewall, NetworkRules};
use berth_netlink::{
    AddrSpec, Handle, Link, LinkKind, LinkSpec, LinkUpdate, Netns, VethPeer, sysctl_set,
};
use berth_portmap::{MapRequest, PortBinding, PortMapper, PortSpec};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use marker::{Marker, Owner};

pub use marker::{DEFAULT_INSTANCE, MARKER_PREFIX, MAX_INSTANCE_LEN};
pub use netfilter::{BRIDGE_NF_CALL_IP6TABLES, BRIDGE_NF_CALL_IPTABLES, BridgeError};
pub use options::{
    BRIDGE_NAME, BridgeDefaults, BridgeOptions, DEFAULT_BRIDGE, ENABLE_ICC, ENABLE_IP_MASQUERADE,
    EXISTING_BRIDGE, HOST_BINDING_IPV4, HOST_IPV4, HOST_IPV6, INHIBIT_IPV4, MCAST_SNOOPING, MTU,
};

/// Prefix of the host end of every endpoint veth.
pub const VETH_PREFIX: &str = "berth";
/// Prefix of user-defined bridges.
pub const BRIDGE_PREFIX: &str = "br-";

/// The host-side veth name of an endpoint: `berth` + the first 10 hex digits of its id.
pub fn host_veth_name(endpoint: &EndpointId) -> String {
    format!("{VETH_PREFIX}{}", &endpoint.as_str()[..10])
}

/// The bridge device of a network without `com.docker.network.bridge.name`.
pub fn default_bridge_name(network: &NetworkId) -> String {
    format!("{BRIDGE_PREFIX}{}", network.short())
}

#[derive(Debug)]
struct BridgeNetwork {
    bridge: String,
    /// The bridge's interface index, so that a join names its master without a lookup; looked
    /// up again when the kernel refuses it (the bridge was made anew under its name).
    index: AtomicU32,
    /// The bridge's MAC address, which the host end of every veth takes (see the crate docs).
    mac: Option<MacAddr>,
    /// berth made the bridge (it carries this instance's mark, or berth's naming and no mark):
    /// delete it with the network.
    owned: bool,
    options: BridgeOptions,
    gateways: Vec<IpNet>,
    /// The gateway addresses this driver put on a bridge it does not own: the only ones taken
    /// off again when the network goes (an address found there is left, it may be the user's).
    added: Vec<IpNet>,
    internal: bool,
    endpoints: Mutex<HashMap<EndpointId, BridgeEndpoint>>,
}

#[derive(Debug, Clone)]
struct BridgeEndpoint {
    host_if: String,
    mac: MacAddr,
    ipv4: Option<Ipv4Net>,
    ipv6: Option<Ipv6Net>,
}

/// The bridge driver. One per host namespace and berth instance; `Send + Sync`.
///
/// Locks: `bridges` may be held while `networks` is taken, never the other way round; neither
/// is held over kernel work.
#[derive(Debug)]
pub struct BridgeDriver {
    host: Netns,
    netlink: Handle,
    firewall: Option<Arc<Firewall>>,
    ports: PortMapper,
    defaults: BridgeDefaults,
    /// The mark of this instance's links, or why the instance id was refused.
    marker: std::result::Result<Marker, String>,
    networks: RwLock<HashMap<NetworkId, Arc<BridgeNetwork>>>,
    /// Bridge names claimed by a network: from before the kernel work of its creation until it
    /// is deleted (or its creation failed). Two networks never share a bridge.
    bridges: Mutex<HashMap<String, NetworkId>>,
}

impl BridgeDriver {
    /// A driver working in `host`, programming `firewall` (None: berth leaves the packet filter
    /// alone, like dockerd's `--iptables=false`), with daemon-wide option defaults.
    pub fn new(
        host: &Netns,
        firewall: Option<Arc<Firewall>>,
        defaults: BridgeDefaults,
    ) -> Result<BridgeDriver> {
        Self::with_userland_proxy(host, firewall, defaults, false)
    }

    /// Like [`BridgeDriver::new`]; with `userland_proxy`, published ports NAT cannot carry (an
    /// IPv6 host address for an IPv4-only container) are relayed in-process (dockerd's
    /// `--userland-proxy`, without a process per port).
    pub fn with_userland_proxy(
        host: &Netns,
        firewall: Option<Arc<Firewall>>,
        defaults: BridgeDefaults,
        userland_proxy: bool,
    ) -> Result<BridgeDriver> {
        Self::with_proxy_limits(
            host,
            firewall,
            defaults,
            userland_proxy,
            berth_portmap::ProxyLimits::default(),
        )
    }

    /// Like [`BridgeDriver::with_userland_proxy`], with the proxy's limits (connections and
    /// flows per port, idle timeouts, accept back-off) given.
    pub fn with_proxy_limits(
        host: &Netns,
        firewall: Option<Arc<Firewall>>,
        defaults: BridgeDefaults,
        userland_proxy: bool,
        limits: berth_portmap::ProxyLimits,
    ) -> Result<BridgeDriver> {
        let netlink = Handle::open(host)
            .map_err(|e| DriverError::kernel("opening netlink in the host namespace", e))?;
        let ports = PortMapper::with_proxy_limits(host, firewall.clone(), userland_proxy, limits)
            .map_err(|e| DriverError::kernel("setting up the port mapper", e))?;
        let host = host
            .try_clone()
            .map_err(|e| DriverError::kernel("duplicating the host namespace handle", e))?;
        Ok(BridgeDriver {
            host,
            netlink,
            firewall,
            ports,
            defaults,
            marker: Marker::new(DEFAULT_INSTANCE),
            networks: RwLock::new(HashMap::new()),
            bridges: Mutex::new(HashMap::new()),
        })
    }

    /// Names the berth installation this driver belongs to (the controller passes an id it
    /// keeps in its store, one per data root): 1 to [`MAX_INSTANCE_LEN`] ASCII letters, digits,
    /// `.`, `_` or `-`. Every bridge and host-side veth the driver makes carries the link alias
    /// `berth:<instance>:<network or endpoint id>`, and
    /// [`remove_orphans`](NetworkDriver::remove_orphans) removes only unrecorded links with this
    /// instance's mark. Without this call the instance is [`DEFAULT_INSTANCE`]; drivers of two
    /// berth installations in one host namespace must be given different instances. A refused
    /// id is reported by the first operation that marks or removes links.
    ///
    /// Bridges made by berth before links were marked carry no mark: a network record that
    /// names one under berth's `br-<id>` naming adopts and marks it when the network is
    /// restored; unmarked bridges and veths no record names are never deleted (they may be
    /// Docker's), only logged by `remove_orphans`. The default bridge's name proves nothing
    /// (Docker's `docker0` has it too): an unmarked bridge under it is refused with
    /// [`BridgeError::ForeignBridge`] unless the network names it as the user's
    /// ([`EXISTING_BRIDGE`]), which berth then uses without marking, changing or deleting it.
    /// A bridge with another instance's mark is not shared: creating a network on it fails
    /// with [`DriverError::Exists`].
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.marker = Marker::new(&instance.into());
        self
    }

    /// The bridge device of a network the driver knows.
    pub fn bridge_of(&self, network: &NetworkId) -> Option<String> {
        self.read().get(network).map(|n| n.bridge.clone())
    }

    /// The parsed options of a network the driver knows.
    pub fn options_of(&self, network: &NetworkId) -> Option<BridgeOptions> {
        self.read().get(network).map(|n| n.options.clone())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<NetworkId, Arc<BridgeNetwork>>> {
        self.networks.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<NetworkId, Arc<BridgeNetwork>>> {
        self.networks.write().unwrap_or_else(|p| p.into_inner())
    }

    fn bridges(&self) -> std::sync::MutexGuard<'_, HashMap<String, NetworkId>> {
        self.bridges.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives up `network`'s claim on `bridge` (if it still holds it).
    fn release_bridge(&self, bridge: &str, network: &NetworkId) {
        let mut claims = self.bridges();
        if claims.get(bridge) == Some(network) {
            claims.remove(bridge);
        }
    }

    /// Who made `link`, by its alias.
    fn marker_owner<'a>(&self, link: &'a Link) -> Result<Owner<'a>> {
        Ok(marker::checked(&self.marker)?.owner(link.alias.as_deref()))
    }

    fn network(&self, id: &NetworkId) -> Result<Arc<BridgeNetwork>> {
        self.read()
            .get(id)
            .cloned()
            .ok_or_else(|| DriverError::NetworkNotFound(id.to_string()))
    }

    /// The firewall rules a network with these options needs (pure: used by the controller to
    /// rebuild the firewall's desired state after a restart).
    pub fn network_rules(spec: &NetworkSpec, o: &BridgeOptions) -> NetworkRules {
        let bridge = o
            .bridge_name
            .clone()
            .unwrap_or_else(|| default_bridge_name(&spec.id));
        Self::rules_for(spec, o, &bridge)
    }

    fn rules_for(spec: &NetworkSpec, o: &BridgeOptions, bridge: &str) -> NetworkRules {
        let v4 = spec.ipv4.first().and_then(|p| match p.pool {
            IpNet::V4(n) => Some(n),
            IpNet::V6(_) => None,
        });
        let v6 = spec.ipv6.first().and_then(|p| match p.pool {
            IpNet::V6(n) => Some(n),
            IpNet::V4(_) => None,
        });
        let mut rules = NetworkRules::new(bridge, v4, v6);
        rules.icc = o.enable_icc;
        rules.internal = spec.internal;
        rules.masquerade = o.enable_ip_masquerade;
        rules.host_ipv4 = o.host_ipv4.filter(|_| v4.is_some());
        rules.host_ipv6 = o.host_ipv6.filter(|_| v6.is_some());
        rules
    }

    fn endpoint(&self, net: &BridgeNetwork, id: &EndpointId) -> Result<BridgeEndpoint> {
        net.endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| DriverError::EndpointNotFound(id.to_string()))
    }

    /// Switches IPv6 off on `ifname` in `ns` (`disable_ipv6`; `place` names `ns` in errors);
    /// nothing to do where the kernel or the namespace has no IPv6.
    fn ipv6_off(&self, ns: &Netns, place: &str, ifname: &str) -> Result<()> {
        let key = format!("net.ipv6.conf.{ifname}.disable_ipv6");
        match sysctl_set(ns, &key, "1") {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(DriverError::kernel(
                format!("switching IPv6 off on {ifname} in the {place}"),
                e,
            )),
        }
    }

    /// Hairpin mode on the bridge port of an endpoint that publishes ports: with br_netfilter, a
    /// sandbox reaching its own published port through the host is DNATed at the bridge and
    /// its frame must go back out of the port it came in on. Other ports do without it.
    fn hairpin_on(&self, ep: &BridgeEndpoint) -> Result<()> {
        self.netlink
            .link_set_hairpin(ep.host_if.as_str(), true)
            .map_err(|e| DriverError::kernel(format!("hairpin mode on {}", ep.host_if), e))
    }
}

/// What a join tells the controller: the interface's name and the network's gateways for the
/// endpoint's families (none on an internal network).
fn join_info(net: &BridgeNetwork, ep: &BridgeEndpoint, ifname: &str) -> JoinInfo {
    let gw4 = net.gateways.iter().find_map(|g| match g.addr() {
        IpAddr::V4(a) if ep.ipv4.is_some() && !net.options.inhibit_ipv4 => Some(a),
        _ => None,
    });
    let gw6 = net.gateways.iter().find_map(|g| match g.addr() {
        IpAddr::V6(a) if ep.ipv6.is_some() => Some(a),
        _ => None,
    });
    JoinInfo {
        ifname: ifname.to_owned(),
        gateway_v4: gw4.filter(|_| !net.internal),
        gateway_v6: gw6.filter(|_| !net.internal),
        static_routes: Vec::new(),
    }
}

/// Random bytes from the thread's CSPRNG (seeded by the OS). Was a read of `/dev/urandom` that
/// gave zeros, silently, when the read failed.
fn random_bytes<const N: usize>() -> [u8; N] {
    rand::random()
}

impl NetworkDriver for BridgeDriver {
    type Options = BridgeOptions;

    fn name(&self) -> &'static str {
        "bridge"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(DataPath::Interfaces).publishes_ports(true)
    }

    fn parse_options(&self, raw: &RawOptions) -> Result<BridgeOptions> {
        BridgeOptions::parse(raw, &self.defaults)
    }

    fn create_network(&self, spec: &NetworkSpec, o: &BridgeOptions) -> Result<()> {
        let bridge = o
            .bridge_name
            .clone()
            .unwrap_or_else(|| default_bridge_name(&spec.id));
        if spec.ipv4.len() > 1 || spec.ipv6.len() > 1 {
            return Err(DriverError::InvalidConfig(format!(
                "network {}: the bridge driver takes one IPv4 and one IPv6 subnet at most",
                spec.name
            )));
        }
        {
            // The check and the claim are one step; the kernel work runs after, without the
            // lock, so creates of different bridges proceed in parallel.
            let mut claims = self.bridges();
            if self
                .read()
                .get(&spec.id)
                .is_some_and(|n| n.bridge == bridge)
            {
                return Ok(());
            }
            match claims.get(&bridge) {
                Some(other) if *other != spec.id => {
                    return Err(DriverError::Exists(format!(
                        "bridge {bridge} (used by network {})",
                        other.short()
                    )));
                }
                Some(_) => {
                    return Err(DriverError::Exists(format!(
                        "network {} (being created on bridge {bridge})",
                        spec.id.short()
                    )));
                }
                None => {
                    claims.insert(bridge.clone(), spec.id.clone());
                }
            }
        }
        let mut undo = Vec::new();
        match self.set_up_network(spec, o, &bridge, &mut undo) {
            Ok(set_up) => {
                let net = BridgeNetwork {
                    bridge: bridge.clone(),
                    index: AtomicU32::new(set_up.link.index),
                    mac: set_up.link.mac,
                    owned: set_up.owned,
                    options: o.clone(),
                    gateways: set_up.gateways,
                    added: set_up.added,
                    internal: spec.internal,
                    endpoints: Mutex::new(HashMap::new()),
                };
                let replaced = self.write().insert(spec.id.clone(), Arc::new(net));
                if let Some(old) = replaced.filter(|old| old.bridge != bridge) {
                    self.release_bridge(&old.bridge, &spec.id);
                }
                Ok(())
            }
            Err(e) => {
                self.run_undo(undo);
                self.release_bridge(&bridge, &spec.id);
                Err(e)
            }
        }
    }

    fn delete_network(&self, id: &NetworkId) -> Result<()> {
        let net = self.network(id)?;
        if let Some(fw) = &self.firewall {
            if fw.state().network(&net.bridge).is_some() {
                fw.remove_network(&net.bridge).map_err(|e| {
                    DriverError::firewall(format!("removing the rules of {}", net.bridge), e)
                })?;
            }
        }
        let result = if net.owned {
            match self.netlink.link_delete(net.bridge.as_str()) {
                Ok(()) => Ok(()),
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(DriverError::kernel(
                    format!("deleting bridge {}", net.bridge),
                    e,
                )),
            }
        } else {
            // A bridge berth does not own stays, with the addresses it had.
            for gw in &net.added {
                let _ = self.netlink.addr_delete(net.bridge.as_str(), *gw);
            }
            Ok(())
        };
        self.write().remove(id);
        self.release_bridge(&net.bridge, id);
        result
    }

    fn create_endpoint(&self, spec: &EndpointSpec) -> Result<InterfaceInfo> {
        // The bridge driver takes no endpoint options (as Docker 20.10's): any is refused, named.
        OptionReader::new("bridge", &spec.options).finish()?;
        let net = self.network(&spec.network)?;
        let mac = spec.mac.unwrap_or_else(|| match spec.ipv4 {
            Some(v4) => mac_from_ipv4(v4.addr()),
            None => local_mac_from_bytes(random_bytes()),
        });
        let ep = BridgeEndpoint {
            host_if: host_veth_name(&spec.endpoint),
            mac,
            ipv4: spec.ipv4,
            ipv6: spec.ipv6,
        };
        let mut eps = net.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        if eps.contains_key(&spec.endpoint) {
            return Err(DriverError::Exists(format!(
                "endpoint {}",
                spec.endpoint.short()
            )));
        }
        eps.insert(spec.endpoint.clone(), ep);
        Ok(InterfaceInfo {
            mac: Some(mac),
            ipv4: spec.ipv4,
            ipv6: spec.ipv6,
        })
    }

    fn delete_endpoint(&self, network: &NetworkId, endpoint: &EndpointId) -> Result<()> {
        let net = self.network(network)?;
        let mut eps = net.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        eps.remove(endpoint)
            .map(|_| ())
            .ok_or_else(|| DriverError::EndpointNotFound(endpoint.to_string()))
    }

    fn endpoint_info(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
    ) -> Result<EndpointOperInfo> {
        let net = self.network(network)?;
        let eps = net.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let ep = eps
            .get(endpoint)
            .ok_or_else(|| DriverError::EndpointNotFound(endpoint.to_string()))?;
        let mut info = EndpointOperInfo {
            host_interface: Some(ep.host_if.clone()),
            ..Default::default()
        };
        info.extra.insert("bridge".into(), net.bridge.clone());
        info.extra.insert("mac".into(), ep.mac.to_string());
        Ok(info)
    }

    fn join(&self, req: &JoinRequest<'_>) -> Result<JoinInfo> {
        let net = self.network(req.network)?;
        let ep = {
            let eps = net.endpoints.lock().unwrap_or_else(|p| p.into_inner());
            eps.get(req.endpoint)
                .cloned()
                .ok_or_else(|| DriverError::EndpointNotFound(req.endpoint.to_string()))?
        };
        let nl = &self.netlink;
        let (sb_ns, sb) = Handle::open_namespace(req.sandbox.netns.fd, req.sandbox.netns.path)
            .map_err(|e| DriverError::kernel(format!("opening {}", req.sandbox), e))?;
        let sb = &sb;
        let host_if = ep.host_if.as_str();
        let mark = marker::checked(&self.marker)?.endpoint(req.endpoint);
        let mut peer = VethPeer::new(req.ifname).netns(&sb_ns).mac(ep.mac);
        if let Some(mtu) = net.options.mtu {
            peer = peer.mtu(mtu);
        }
        // The host end stays down until the sandbox end is configured and up: brought up
        // first, the port would be enabled at once (the bridge re-selects the state of every
        // port), disabled again when the kernel sees it has no carrier, and enabled once more
        // when the sandbox end comes up, each time in a pass over all ports of the bridge.
        let pair = |master: u32| {
            let mut link = LinkSpec::veth(host_if, peer.clone()).master(master);
            if let Some(mac) = net.mac {
                link = link.mac(mac);
            }
            if let Some(mtu) = net.options.mtu {
                link = link.mtu(mtu);
            }
            link
        };
        let creating = || format!("creating veth {host_if} with {} in the sandbox", req.ifname);
        let master = net.index.load(Ordering::Relaxed);
        let mut added = nl.link_add(&pair(master));
        if added.as_ref().is_err_and(|e| !e.is_exists()) {
            // Refused: the bridge may have been made anew under its name (a new index), or be
            // gone, which then is the error to report.
            match nl.link(net.bridge.as_str()) {
                Ok(now) if now.index != master && now.kind == Some(LinkKind::Bridge) => {
                    net.index.store(now.index, Ordering::Relaxed);
                    added = nl.link_add(&pair(now.index));
                }
                Err(e) if e.is_not_found() => added = Err(e),
                _ => {}
            }
        }
        // Created directly; only when the name is taken (after a restart the pair may exist
        // already) is it looked up, to converge instead of failing. A lookup of a veth costs in
        // proportion to the number of namespaces (the kernel searches the peer's namespace id).
        let (exists, host_up, marked) = match added {
            Ok(()) => {
                // The host end is a bridge port and needs no IPv6 of its own (the bridge
                // forwards the sandbox's IPv6 frames all the same). Off before the sandbox end
                // comes up, it never gets a link-local address and routes: otherwise each
                // carrier change of each port makes the kernel walk the host's whole IPv6
                // routing table, which holds routes of every other port, under the lock every
                // netlink request waits for.
                if let Err(e) = self.ipv6_off(&self.host, "host namespace", host_if) {
                    let _ = nl.link_delete(host_if);
                    return Err(e);
                }
                (false, false, false)
            }
            Err(e) if e.is_exists() => match nl.link_get(host_if) {
                Ok(Some(l)) => (true, l.up, l.alias.as_deref() == Some(mark.as_str())),
                // The name taken is the sandbox end's: nothing of ours to converge with.
                Ok(None) => return Err(DriverError::kernel(creating(), e)),
                Err(e) => return Err(DriverError::kernel(format!("looking up {host_if}"), e)),
            },
            Err(e) => return Err(DriverError::kernel(creating(), e)),
        };
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
            if ep.ipv6.is_none() && !exists {
                // As Docker does: an interface without an IPv6 address has IPv6 off, so it never
                // makes a link-local address or sends router solicitations and MLD reports,
                // which the bridge would flood to every other port (a cost that grows with the
                // number of sandboxes on the network). Set when the pair is made; a restart
                // finds it so.
                self.ipv6_off(&sb_ns, "sandbox", req.ifname)?;
            }
            sb.link_set_up(req.ifname).map_err(|e| {
                DriverError::kernel(format!("bringing {} up in the sandbox", req.ifname), e)
            })
        };
        // The mark rides in the request that brings the host end up: the kernel ignores an
        // alias in the request that creates the pair, and a request of its own would cost
        // every join one more. Until then the host end is unmarked, so a restart never
        // deletes it as an orphan; a crash in between leaves it for the sandbox's namespace
        // to take with it, or for the restored endpoint's join to mark.
        let host_end_up = || -> Result<()> {
            if host_up && marked {
                return Ok(());
            }
            nl.link_update(host_if, &LinkUpdate::new().up().alias(mark.as_str()))
                .map_err(|e| {
                    DriverError::kernel(format!("bringing {host_if} up and marking it"), e)
                })
        };
        if let Err(e) = configure().and_then(|()| host_end_up()) {
            let _ = nl.link_delete(host_if);
            return Err(e);
        }
        Ok(join_info(&net, &ep, req.ifname))
    }

    /// Trusted (see [`NetworkDriver::restore_join`]): the pair, its addresses and its mark are
    /// as the previous opener left them, so the answer comes from memory, with no netlink
    /// request (a join's requests are most of a restart's cost per endpoint).
    fn restore_join(&self, req: &JoinRequest<'_>, trusted: bool) -> Result<JoinInfo> {
        if !trusted {
            return self.join(req);
        }
        let net = self.network(req.network)?;
        let eps = net.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let ep = eps
            .get(req.endpoint)
            .ok_or_else(|| DriverError::EndpointNotFound(req.endpoint.to_string()))?;
        Ok(join_info(&net, ep, req.ifname))
    }

    fn leave(&self, network: &NetworkId, endpoint: &EndpointId) -> Result<()> {
        let net = self.network(network)?;
        let host_if = {
            let eps = net.endpoints.lock().unwrap_or_else(|p| p.into_inner());
            eps.get(endpoint)
                .map(|e| e.host_if.clone())
                .ok_or_else(|| DriverError::EndpointNotFound(endpoint.to_string()))?
        };
        match self.netlink.link_delete(host_if.as_str()) {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(DriverError::kernel(format!("deleting veth {host_if}"), e)),
        }
    }

    fn open_link_holes(&self, network: &NetworkId, holes: &[LinkHole]) -> Result<()> {
        self.open_holes(network, holes)
    }

    fn close_link_holes(&self, network: &NetworkId, addrs: &[IpAddr]) -> Result<()> {
        self.close_holes(network, addrs)
    }

    fn program_external_connectivity(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
        ports: &[PortSpec],
    ) -> Result<Vec<PortBinding>> {
        if ports.is_empty() {
            return Ok(Vec::new());
        }
        let net = self.network(network)?;
        if net.internal {
            return Err(DriverError::InvalidConfig(
                "ports cannot be published on an internal network".into(),
            ));
        }
        let ep = self.endpoint(&net, endpoint)?;
        self.hairpin_on(&ep)?;
        self.ports
            .map(
                endpoint.as_str(),
                &MapRequest {
                    specs: ports,
                    container_v4: ep.ipv4.map(|a| a.addr()),
                    container_v6: ep.ipv6.map(|a| a.addr()),
                    bridge: &net.bridge,
                    default_host_ip: net.options.host_binding_ipv4,
                    ipv6: self.firewall.as_ref().is_some_and(|f| f.config().ipv6),
                },
            )
            .map_err(|e| DriverError::PortMapping(Box::new(e)))
    }

    fn restore_external_connectivity(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
        bindings: &[PortBinding],
    ) -> Result<()> {
        if bindings.is_empty() {
            return Ok(());
        }
        let net = self.network(network)?;
        let ep = self.endpoint(&net, endpoint)?;
        // Set again: the port may have been made anew by this restore.
        self.hairpin_on(&ep)?;
        self.ports
            .restore(
                endpoint.as_str(),
                bindings,
                ep.ipv4.map(|a| a.addr()),
                ep.ipv6.map(|a| a.addr()),
                &net.bridge,
            )
            .map_err(|e| DriverError::PortMapping(Box::new(e)))
    }

    fn revoke_external_connectivity(&self, _: &NetworkId, endpoint: &EndpointId) -> Result<()> {
        self.ports
            .unmap(endpoint.as_str())
            .map_err(|e| DriverError::PortMapping(Box::new(e)))
    }

    fn remove_orphans(&self) -> Result<Vec<String>> {
        self.remove_unrecorded_links()
    }
}

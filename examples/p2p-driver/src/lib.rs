//! An example network driver that lives outside berth's crates: **p2p**, routed point-to-point.
//! Each endpoint is a veth pair; the sandbox end gets the endpoint's address, the host end the
//! network's gateway address (/32) and a host route to the endpoint's address. No bridge: the
//! host routes. It publishes no ports and keeps no state across restarts but what the controller
//! hands back (`restore_network`, `create_endpoint`, `join` again). One endpoint option:
//! [`MTU_OPTION`].
//!
//! An engine registers it next to the built-in drivers:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let host = berth_netlink::Netns::current()?;
//! let p2p = berth_example_p2p::P2pDriver::new(&host)?;
//! // berth::Controller::builder(config).driver(p2p).build()?;
//! # let _ = p2p;
//! # Ok(()) }
//! ```
//!
//! Sandbox-to-sandbox traffic is forwarded by the host, which berth's firewall allows only for
//! networks whose driver gives it a firewall part: drivers cannot yet (see ARCHITECTURE.md).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_driver::{
    Capabilities, DataPath, DriverError, EndpointId, EndpointSpec, InterfaceInfo, JoinInfo,
    JoinRequest, NetworkDriver, NetworkId, NetworkSpec, OptionReader, RawOptions, Result,
};
use berth_netlink::{AddrSpec, Attach, Handle, LinkSpec, Netns, RouteSpec, VethPeer, attach};
use ipnet::{IpNet, Ipv4Net};

/// The routed point-to-point driver (see the crate's documentation). Like a remote plugin, it
/// refuses a second create of one network: a restart takes networks back with
/// `restore_network`, which it counts ([`P2pDriver::restores`]).
pub struct P2pDriver {
    host: Handle,
    restores: AtomicUsize,
    /// Each network's IPv4 gateway.
    gateways: Mutex<HashMap<NetworkId, Ipv4Net>>,
    /// Each endpoint's network and address.
    endpoints: Mutex<HashMap<EndpointId, Endpoint>>,
}

/// The endpoint option that sets the MTU of both ends of an endpoint's pair
/// (`--driver-opt p2p.mtu=1400`).
pub const MTU_OPTION: &str = "p2p.mtu";

/// One endpoint: its network, its address, and the MTU asked for.
#[derive(Debug, Clone)]
struct Endpoint {
    network: NetworkId,
    addr: Ipv4Net,
    mtu: Option<u32>,
}

impl P2pDriver {
    /// A driver whose host ends live in `host` (the controller's host namespace).
    pub fn new(host: &Netns) -> berth_netlink::Result<P2pDriver> {
        Ok(P2pDriver {
            host: Handle::open(host)?,
            restores: AtomicUsize::new(0),
            gateways: Mutex::default(),
            endpoints: Mutex::default(),
        })
    }

    /// How many networks were taken back after a restart.
    pub fn restores(&self) -> usize {
        self.restores.load(Ordering::Relaxed)
    }

    fn gateways(&self) -> std::sync::MutexGuard<'_, HashMap<NetworkId, Ipv4Net>> {
        self.gateways.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn endpoints(&self) -> std::sync::MutexGuard<'_, HashMap<EndpointId, Endpoint>> {
        self.endpoints.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn host_if(endpoint: &EndpointId) -> String {
        format!("p2p{}", &endpoint.as_str()[..10])
    }
}

fn kernel(what: &str, e: berth_netlink::Error) -> DriverError {
    DriverError::InvalidConfig(format!("{what}: {e}"))
}

impl NetworkDriver for P2pDriver {
    type Options = ();

    fn name(&self) -> &'static str {
        "p2p"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(DataPath::Interfaces)
    }

    fn parse_options(&self, raw: &RawOptions) -> Result<()> {
        OptionReader::new("p2p", raw).finish()
    }

    fn create_network(&self, spec: &NetworkSpec, _: &()) -> Result<()> {
        let gw = spec
            .ipv4
            .first()
            .and_then(|p| p.gateway)
            .and_then(|g| match g {
                IpNet::V4(g) => Some(g),
                IpNet::V6(_) => None,
            })
            .ok_or_else(|| DriverError::InvalidConfig("p2p needs an IPv4 gateway".into()))?;
        let mut gateways = self.gateways();
        if gateways.contains_key(&spec.id) {
            return Err(DriverError::Exists(format!("network {}", spec.name)));
        }
        gateways.insert(spec.id.clone(), gw);
        Ok(())
    }

    fn restore_network(&self, spec: &NetworkSpec, options: &()) -> Result<()> {
        self.restores.fetch_add(1, Ordering::Relaxed);
        self.gateways().remove(&spec.id);
        self.create_network(spec, options)
    }

    fn delete_network(&self, network: &NetworkId) -> Result<()> {
        self.gateways().remove(network);
        Ok(())
    }

    fn create_endpoint(&self, spec: &EndpointSpec) -> Result<InterfaceInfo> {
        let addr = spec
            .ipv4
            .ok_or_else(|| DriverError::InvalidConfig("p2p needs an IPv4 address".into()))?;
        let mut options = OptionReader::new("p2p", &spec.options);
        let mtu = options.parse::<u32>(MTU_OPTION, "an MTU in bytes")?;
        options.finish()?;
        let mut eps = self.endpoints();
        if eps.contains_key(&spec.endpoint) {
            return Err(DriverError::Exists(spec.endpoint.to_string()));
        }
        let ep = Endpoint {
            network: spec.network.clone(),
            addr,
            mtu,
        };
        eps.insert(spec.endpoint.clone(), ep);
        Ok(InterfaceInfo {
            mac: None,
            ipv4: spec.ipv4,
            ipv6: None,
        })
    }

    fn delete_endpoint(&self, _: &NetworkId, endpoint: &EndpointId) -> Result<()> {
        self.endpoints().remove(endpoint);
        Ok(())
    }

    fn join(&self, req: &JoinRequest<'_>) -> Result<JoinInfo> {
        let Endpoint {
            network: net,
            addr,
            mtu,
        } = self
            .endpoints()
            .get(req.endpoint)
            .cloned()
            .ok_or_else(|| DriverError::EndpointNotFound(req.endpoint.to_string()))?;
        let gw = *self
            .gateways()
            .get(&net)
            .ok_or_else(|| DriverError::NetworkNotFound(net.to_string()))?;
        let host_if = Self::host_if(req.endpoint);
        // The pair is made in the host, then its sandbox end is put into the sandbox by
        // berth-netlink's shared attach step (moved, renamed, MTU, address, up). After a
        // restart the pair is there already and only the host side is checked again.
        if self
            .host
            .link_get(host_if.as_str())
            .map_err(|e| kernel("looking up", e))?
            .is_none()
        {
            // The sandbox is named by its namespace (the controller's descriptor, else its
            // path): a handle of the driver's own is opened in it for the attach.
            let sb_ns = Netns::from_fd_or_path(req.sandbox.netns.fd, req.sandbox.netns.path)
                .map_err(|e| kernel("opening the sandbox's namespace", e))?;
            let sb = Handle::open(&sb_ns).map_err(|e| kernel("netlink in the sandbox", e))?;
            let peer_tmp = format!("p2t{}", &req.endpoint.as_str()[..10]);
            let mut link = LinkSpec::veth(&host_if, VethPeer::new(&peer_tmp));
            if let Some(mtu) = mtu {
                link = link.mtu(mtu);
            }
            self.host
                .link_add(&link)
                .map_err(|e| kernel("creating the veth pair", e))?;
            let mut into = Attach::new(&peer_tmp, req.ifname).addr(AddrSpec::new(IpNet::V4(addr)));
            if let Some(mtu) = mtu {
                into = into.mtu(mtu);
            }
            // (A failed attach deletes the pair.)
            attach(&self.host, &sb_ns, &sb, &into)
                .map_err(|e| kernel("putting the pair's end into the sandbox", e))?;
        }
        let host_addr = AddrSpec::new(IpNet::V4(Ipv4Net::from(gw.addr())));
        let steps = || -> berth_netlink::Result<()> {
            match self.host.addr_add(host_if.as_str(), &host_addr) {
                Ok(()) => {}
                Err(e) if e.is_exists() => {}
                Err(e) => return Err(e),
            }
            self.host.link_set_up(host_if.as_str())?;
            let to_sandbox =
                RouteSpec::new(IpNet::V4(Ipv4Net::from(addr.addr()))).dev(host_if.as_str());
            self.host.route_replace(&to_sandbox)
        };
        if let Err(e) = steps() {
            let _ = self.host.link_delete(host_if.as_str());
            return Err(kernel("configuring the pair", e));
        }
        Ok(JoinInfo {
            ifname: req.ifname.to_owned(),
            gateway_v4: Some(gw.addr()),
            ..JoinInfo::default()
        })
    }

    fn leave(&self, _: &NetworkId, endpoint: &EndpointId) -> Result<()> {
        match self.host.link_delete(Self::host_if(endpoint).as_str()) {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(kernel("deleting the veth pair", e)),
        }
    }
}

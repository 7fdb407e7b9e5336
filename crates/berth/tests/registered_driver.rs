//! A network driver written outside the controller's crate, registered through
//! `Controller::builder`, as root in throwaway namespaces: `create -d p2p` finds it, its networks
//! carry real traffic, they come back after a restart, and the controller's decisions follow its
//! capabilities (it publishes no ports: `-p` is refused before anything is made). Unknown
//! drivers get Docker's "plugin not found"; a name registered twice is refused.
//!
//! The driver, `p2p`, is routed point-to-point (no bridge): each endpoint is a veth pair whose
//! host end holds the network's gateway address and a host route to the endpoint's address.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use berth::{Controller, EndpointOptions, Error, IpamPoolConfig, NetworkCreate, SandboxCreate};
use berth_driver::{
    Capabilities, DataPath, DriverError, EndpointId, EndpointSpec, InterfaceInfo, JoinInfo,
    JoinRequest, NetworkDriver, NetworkId, NetworkSpec, OptionReader, RawOptions, Result,
};
use berth_netlink::{AddrSpec, Handle, LinkSpec, RouteSpec, VethPeer};
use berth_testhost::TestHost;
use common::*;
use ipnet::IpNet;

/// The routed point-to-point driver (see the module's documentation). Like a remote plugin,
/// it refuses a second create of one network: a restart must take networks back with
/// `restore_network`, which it counts.
struct P2p {
    host: Handle,
    restores: Arc<AtomicUsize>,
    /// Each network's IPv4 gateway.
    gateways: Mutex<HashMap<NetworkId, ipnet::Ipv4Net>>,
    /// Each endpoint's network and address.
    endpoints: Mutex<HashMap<EndpointId, (NetworkId, ipnet::Ipv4Net)>>,
}

impl P2p {
    fn new(host: &TestHost, restores: Arc<AtomicUsize>) -> P2p {
        P2p {
            host: Handle::open(host.netns()).unwrap(),
            restores,
            gateways: Mutex::default(),
            endpoints: Mutex::default(),
        }
    }

    fn host_if(endpoint: &EndpointId) -> String {
        format!("p2p{}", &endpoint.as_str()[..10])
    }
}

fn kernel(what: &str, e: berth_netlink::Error) -> DriverError {
    DriverError::InvalidConfig(format!("{what}: {e}"))
}

impl NetworkDriver for P2p {
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
        let mut gateways = self.gateways.lock().unwrap();
        if gateways.contains_key(&spec.id) {
            return Err(DriverError::Exists(format!("network {}", spec.name)));
        }
        gateways.insert(spec.id.clone(), gw);
        Ok(())
    }

    fn restore_network(&self, spec: &NetworkSpec, options: &()) -> Result<()> {
        self.restores.fetch_add(1, Ordering::Relaxed);
        self.gateways.lock().unwrap().remove(&spec.id);
        self.create_network(spec, options)
    }

    fn delete_network(&self, network: &NetworkId) -> Result<()> {
        self.gateways.lock().unwrap().remove(network);
        Ok(())
    }

    fn create_endpoint(&self, spec: &EndpointSpec) -> Result<InterfaceInfo> {
        let addr = spec
            .ipv4
            .ok_or_else(|| DriverError::InvalidConfig("p2p needs an IPv4 address".into()))?;
        let mut eps = self.endpoints.lock().unwrap();
        if eps.contains_key(&spec.endpoint) {
            return Err(DriverError::Exists(spec.endpoint.to_string()));
        }
        eps.insert(spec.endpoint.clone(), (spec.network.clone(), addr));
        Ok(InterfaceInfo {
            mac: None,
            ipv4: spec.ipv4,
            ipv6: None,
        })
    }

    fn delete_endpoint(&self, _: &NetworkId, endpoint: &EndpointId) -> Result<()> {
        self.endpoints.lock().unwrap().remove(endpoint);
        Ok(())
    }

    fn join(&self, req: &JoinRequest<'_>) -> Result<JoinInfo> {
        let (net, addr) = self
            .endpoints
            .lock()
            .unwrap()
            .get(req.endpoint)
            .cloned()
            .ok_or_else(|| DriverError::EndpointNotFound(req.endpoint.to_string()))?;
        let gw = *self
            .gateways
            .lock()
            .unwrap()
            .get(&net)
            .ok_or_else(|| DriverError::NetworkNotFound(net.to_string()))?;
        let host_if = Self::host_if(req.endpoint);
        let peer = VethPeer::new(req.ifname).netns(req.sandbox.netns);
        match self.host.link_add(&LinkSpec::veth(&host_if, peer)) {
            Ok(()) => {}
            Err(e) if e.is_exists() => {} // a restart: the pair is there
            Err(e) => return Err(kernel("creating the veth pair", e)),
        }
        let sb = req.sandbox.netlink;
        let host_addr = AddrSpec::new(IpNet::V4(ipnet::Ipv4Net::new(gw.addr(), 32).unwrap()));
        let steps = || -> berth_netlink::Result<()> {
            for r in [
                self.host.addr_add(host_if.as_str(), &host_addr),
                sb.addr_add(req.ifname, &AddrSpec::new(IpNet::V4(addr))),
            ] {
                r.or_else(|e| if e.is_exists() { Ok(()) } else { Err(e) })?;
            }
            self.host.link_set_up(host_if.as_str())?;
            sb.link_set_up(req.ifname)?;
            let to_sandbox =
                RouteSpec::new(IpNet::V4(ipnet::Ipv4Net::new(addr.addr(), 32).unwrap()))
                    .dev(host_if.as_str());
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

fn p2p_network(ctl: &Controller, name: &str, subnet: &str) {
    let mut req = NetworkCreate::new(name);
    req.driver = "p2p".into();
    req.ipam.push(IpamPoolConfig {
        subnet: Some(subnet.parse().unwrap()),
        ..Default::default()
    });
    ctl.create_network(req).unwrap();
}

fn build(host: &TestHost, dir: &StateDir, restores: &Arc<AtomicUsize>) -> Controller {
    Controller::builder(Fixture::config_for(host, dir))
        .driver(P2p::new(host, restores.clone()))
        .build()
        .unwrap()
}

#[test]
fn a_driver_registered_from_outside_carries_traffic_and_survives_a_restart() {
    let host = TestHost::new().unwrap();
    let dir = StateDir::new();
    let restores = Arc::new(AtomicUsize::new(0));
    let ctl = build(&host, &dir, &restores);
    assert_eq!(ctl.drivers(), ["bridge", "host", "null", "p2p"]);
    p2p_network(&ctl, "routed", "10.98.0.0/24");
    let insp = ctl.inspect_network("routed").unwrap();
    assert_eq!(
        (insp.driver.as_str(), insp.scope.as_str()),
        ("p2p", "local")
    );
    for name in ["one", "two"] {
        let mut req = SandboxCreate::new(name);
        req.network = Some("routed".into());
        ctl.create_sandbox(req).unwrap();
    }
    let ip = |ctl: &Controller, n: &str| {
        ctl.inspect_sandbox(n).unwrap().networks["routed"]
            .ip_address
            .clone()
    };
    let ns = |ctl: &Controller, n: &str| ctl.sandbox_netns(n).unwrap();
    let two = ip(&ctl, "two");
    // Real traffic over the driver's data path (no bridge anywhere): from a sandbox to its
    // gateway on the host end, and from the host to a sandbox by the driver's host route.
    // (Sandbox to sandbox would be forwarded by the host, which the firewall's forward policy
    // allows only for drivers whose firewall part says so: not yet part of the contract.)
    assert!(berth_testhost::ping_in(&ns(&ctl, "one"), "10.98.0.1"));
    assert!(host.ping(&two));
    let bridges = host.ip(&["-o", "link", "show", "type", "bridge"]).unwrap();
    assert_eq!(
        bridges.lines().count(),
        1,
        "only the default bridge's docker0, no bridge for p2p:\n{bridges}"
    );

    // Its capabilities decide: it publishes no ports, so `-p` is refused before anything is
    // made; a connect to the bridge network as well works (interfaces data path).
    let mut req = SandboxCreate::new("web");
    req.network = Some("routed".into());
    req.endpoint = EndpointOptions {
        ports: vec!["8080:80".parse().unwrap()],
        ..Default::default()
    };
    let e = ctl.create_sandbox(req).unwrap_err();
    assert!(
        e.to_string()
            .contains("its driver p2p does not publish ports"),
        "{e}"
    );
    assert!(ctl.inspect_sandbox("web").unwrap_err().is_not_found());
    ctl.connect("one", "bridge", EndpointOptions::default())
        .unwrap();

    // A restart with the driver registered restores its networks (by restore_network: its
    // create_network refuses a network it has) and endpoints.
    assert_eq!(restores.load(Ordering::Relaxed), 0);
    drop(ctl);
    let ctl = build(&host, &dir, &restores);
    assert_eq!(restores.load(Ordering::Relaxed), 1);
    assert_eq!(ip(&ctl, "two"), two);
    assert!(host.ping(&two));
    assert!(berth_testhost::ping_in(&ns(&ctl, "two"), "10.98.0.1"));
    for n in ["one", "two"] {
        ctl.remove_sandbox(n).unwrap();
    }
    ctl.remove_network("routed").unwrap();
    let left = host.ip(&["-o", "link"]).unwrap();
    assert!(!left.contains("p2p"), "{left}");
}

#[test]
fn unknown_and_twice_registered_drivers_are_refused() {
    let host = TestHost::new().unwrap();
    let dir = StateDir::new();
    let restores = Arc::new(AtomicUsize::new(0));
    let ctl = build(&host, &dir, &restores);
    let mut req = NetworkCreate::new("nope_nw");
    req.driver = "nope".into();
    let e = ctl.create_network(req).unwrap_err();
    assert!(matches!(e, Error::DriverNotFound(_)), "{e:?}");
    assert_eq!(e.to_string(), "plugin \"nope\" not found");
    p2p_network(&ctl, "routed", "10.99.0.0/24");
    drop(ctl);

    // Twice: by name among the registered ones, or over a built-in one.
    let e = Controller::builder(Fixture::config_for(&host, &dir))
        .driver(P2p::new(&host, restores.clone()))
        .driver(P2p::new(&host, restores.clone()))
        .build()
        .unwrap_err();
    assert!(
        e.to_string().contains("driver p2p is registered twice"),
        "{e}"
    );
    let e = Controller::builder(Fixture::config_for(&host, &dir))
        .driver(berth::NullDriver)
        .build()
        .unwrap_err();
    assert!(
        e.to_string().contains("driver null is registered twice"),
        "{e}"
    );

    // A start without the driver of a stored network fails, naming it, and leaves its records.
    let e = Controller::new(Fixture::config_for(&host, &dir)).unwrap_err();
    assert_eq!(e.to_string(), "plugin \"p2p\" not found");
    let ctl = build(&host, &dir, &restores);
    assert!(ctl.inspect_network("routed").is_ok());
    ctl.remove_network("routed").unwrap();
}

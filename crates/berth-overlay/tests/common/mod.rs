//! A test cluster: an underlay switch, berth hosts on it (each a namespace with its own
//! controller, local state and overlay driver) sharing one cluster store.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::{Config, Controller, EndpointOptions, FirewallBackend, NetworkCreate, SandboxCreate};
use berth_driver::Driver;
use berth_overlay::{OverlayConfig, OverlayDriver};
use berth_store::KvStore;
use berth_testhost::StateDir;
use berth_testhost::berth_netlink::Netns;
use berth_testhost::cluster::{Underlay, UnderlayHost};

/// The lease time to live of the test hosts (short, so that fault tests are quick).
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(2);

/// One berth host of the cluster.
pub(crate) struct Node {
    pub(crate) ctl: Option<Controller>,
    pub(crate) overlay: Arc<OverlayDriver>,
    pub(crate) ul: UnderlayHost,
    pub(crate) dir: StateDir,
    pub(crate) cluster: Arc<dyn KvStore>,
}

impl Node {
    /// A host on `underlay` whose cluster store is `cluster`.
    pub(crate) fn new(underlay: &Underlay, cluster: &Arc<dyn KvStore>) -> Node {
        let ul = underlay.add_host().expect("an underlay host (run as root)");
        let dir = StateDir::new().unwrap();
        let (ctl, overlay) = start(&ul, &dir, cluster);
        Node {
            ctl: Some(ctl),
            overlay,
            ul,
            dir,
            cluster: cluster.clone(),
        }
    }

    pub(crate) fn ctl(&self) -> &Controller {
        self.ctl.as_ref().expect("a running controller")
    }

    /// Stops the controller and its driver (the kernel keeps what they made) and starts them
    /// again on the same state.
    pub(crate) fn restart(&mut self) {
        self.ctl = None;
        let (ctl, overlay) = start(&self.ul, &self.dir, &self.cluster);
        self.ctl = Some(ctl);
        self.overlay = overlay;
    }

    pub(crate) fn sandbox_ns(&self, name: &str) -> Netns {
        self.ctl().sandbox_netns(name).unwrap()
    }

    /// Creates sandbox `name` and connects it to `network`; returns its address there.
    pub(crate) fn sandbox_on(&self, name: &str, network: &str) -> String {
        self.ctl().create_sandbox(SandboxCreate::new(name)).unwrap();
        self.ctl()
            .connect(name, network, EndpointOptions::default())
            .unwrap();
        self.ip_of(name, network)
    }

    pub(crate) fn ip_of(&self, sandbox: &str, network: &str) -> String {
        self.ctl().inspect_sandbox(sandbox).unwrap().networks[network]
            .ip_address
            .clone()
    }

    /// Pings `to` from inside sandbox `from` (one echo).
    pub(crate) fn ping(&self, from: &str, to: &str) -> bool {
        berth_testhost::ping_in(&self.sandbox_ns(from), to)
    }
}

fn start(
    ul: &UnderlayHost,
    dir: &StateDir,
    cluster: &Arc<dyn KvStore>,
) -> (Controller, Arc<OverlayDriver>) {
    let mut config = Config::new(dir.path().join("data"), dir.path().join("run"));
    config.host_netns = Some(ul.host.path());
    config.firewall = Some(FirewallBackend::Iptables);
    let overlay = Arc::new(
        OverlayDriver::new(
            ul.host.netns(),
            cluster.clone(),
            OverlayConfig::new(ul.addr, config.netns_dir()).lease_ttl(LEASE_TTL),
        )
        .unwrap(),
    );
    let ctl = Controller::builder(config)
        .driver_arc(overlay.clone() as Arc<dyn Driver>)
        .cluster_store(cluster.clone())
        .cluster_lease_ttl(LEASE_TTL)
        .build()
        .unwrap();
    (ctl, overlay)
}

impl Drop for Node {
    fn drop(&mut self) {
        // The controller first; the state directory then removes the sandboxes' namespaces.
        self.ctl = None;
    }
}

/// `docker network create -d overlay NAME`.
pub(crate) fn overlay(name: &str) -> NetworkCreate {
    let mut req = NetworkCreate::new(name);
    req.driver = "overlay".into();
    req
}

/// Waits up to `secs` for `cond`.
pub(crate) fn eventually(what: &str, secs: u64, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Node {
    /// The addresses `dig +short NAME` gets from the embedded DNS server, from inside sandbox
    /// `from` (empty when the name is not known there: forwarded upstream, which test hosts
    /// cannot reach).
    pub(crate) fn dig(&self, from: &str, name: &str) -> String {
        let out = self
            .sandbox_ns(from)
            .command("dig")
            .args(["+short", "+time=1", "+tries=1", "@127.0.0.11", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.parse::<std::net::IpAddr>().is_ok())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

//! An IPAM driver registered through `ControllerBuilder::ipam`, as root in throwaway
//! namespaces: every pool and address of a network created with `--ipam-driver` naming it
//! comes from it (counted), its own errors reach the caller naming it and leave nothing behind,
//! and a restart asks it for the same pools and addresses again, with traffic before and after.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use berth::{BuiltinIpam, Controller, Error, IpamPoolConfig, NetworkCreate, SandboxCreate};
use berth_driver::{AddressRequest, BoxError, IpamDriver, Pool, PoolRequest};
use berth_testhost::TestHost;
use common::*;
use ipnet::IpNet;

/// The built-in allocator behind a driver of its own that counts what it is asked and refuses
/// one subnet (as a site's IPAM would refuse a range it reserves).
#[derive(Default)]
struct LabIpam {
    inner: BuiltinIpam,
    pools: AtomicUsize,
    addresses: AtomicUsize,
}

impl IpamDriver for LabIpam {
    fn name(&self) -> &'static str {
        "lab"
    }

    fn request_pool(&self, req: &PoolRequest) -> Result<Pool, BoxError> {
        if req.subnet == Some("10.66.0.0/24".parse().unwrap()) {
            return Err("10.66.0.0/24 is reserved by the lab".into());
        }
        self.pools.fetch_add(1, Ordering::Relaxed);
        self.inner.request_pool(req)
    }

    fn release_pool(&self, pool: &str) -> Result<(), BoxError> {
        self.inner.release_pool(pool)
    }

    fn request_address(&self, pool: &str, req: AddressRequest) -> Result<IpNet, BoxError> {
        self.addresses.fetch_add(1, Ordering::Relaxed);
        self.inner.request_address(pool, req)
    }

    fn release_address(&self, pool: &str, addr: IpAddr) -> Result<(), BoxError> {
        self.inner.release_address(pool, addr)
    }
}

fn start(host: &TestHost, dir: &StateDir, ipam: &Arc<LabIpam>) -> Controller {
    Controller::builder(Fixture::config_for(host, dir))
        .ipam(ipam.clone())
        .build()
        .unwrap()
}

fn network(name: &str, subnet: &str) -> NetworkCreate {
    let mut req = NetworkCreate::new(name);
    req.ipam_driver = "lab".into();
    req.ipam.push(IpamPoolConfig {
        subnet: Some(subnet.parse().unwrap()),
        ..Default::default()
    });
    req
}

#[test]
fn a_registered_ipam_driver_gives_every_pool_and_address() {
    let host = TestHost::new().unwrap();
    let dir = StateDir::new().unwrap();
    let lab = Arc::new(LabIpam::default());
    let ctl = start(&host, &dir, &lab);
    // The predefined bridge's pool came from the built-in allocator: it names no other.
    assert_eq!(lab.pools.load(Ordering::Relaxed), 0);
    assert_eq!(
        ctl.inspect_network("bridge").unwrap().ipam.driver,
        "default"
    );

    // Its own refusal reaches the caller, naming it; nothing is made.
    let e = ctl
        .create_network(network("reserved_nw", "10.66.0.0/24"))
        .unwrap_err();
    assert!(matches!(e, Error::IpamDriver { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "IPAM driver lab: 10.66.0.0/24 is reserved by the lab"
    );
    assert!(
        ctl.inspect_network("reserved_nw")
            .unwrap_err()
            .is_not_found()
    );

    ctl.create_network(network("lab_nw", "10.67.0.0/24"))
        .unwrap();
    assert_eq!(ctl.inspect_network("lab_nw").unwrap().ipam.driver, "lab");
    let mut req = SandboxCreate::new("one");
    req.network = Some("lab_nw".into());
    ctl.create_sandbox(req).unwrap();
    let ip = ctl.inspect_sandbox("one").unwrap().networks["lab_nw"]
        .ip_address
        .clone();
    assert_eq!(ip, "10.67.0.2");
    assert_eq!(
        lab.addresses.load(Ordering::Relaxed),
        2,
        "lab_nw's gateway and the endpoint's address"
    );
    assert!(berth_testhost::ping_in(
        &ctl.sandbox_netns("one").unwrap(),
        "10.67.0.1"
    ));

    // A restart asks the (new) driver for the same pools and addresses again.
    drop(ctl);
    let lab = Arc::new(LabIpam::default());
    let ctl = start(&host, &dir, &lab);
    assert_eq!(lab.pools.load(Ordering::Relaxed), 1, "lab_nw taken back");
    assert_eq!(
        ctl.inspect_sandbox("one").unwrap().networks["lab_nw"].ip_address,
        ip
    );
    assert!(berth_testhost::ping_in(
        &ctl.sandbox_netns("one").unwrap(),
        "10.67.0.1"
    ));
    // Its address is held: the next one is another.
    let mut req = SandboxCreate::new("two");
    req.network = Some("lab_nw".into());
    ctl.create_sandbox(req).unwrap();
    assert_eq!(
        ctl.inspect_sandbox("two").unwrap().networks["lab_nw"].ip_address,
        "10.67.0.3"
    );
    for n in ["one", "two"] {
        ctl.remove_sandbox(n).unwrap();
    }
    ctl.remove_network("lab_nw").unwrap();
}

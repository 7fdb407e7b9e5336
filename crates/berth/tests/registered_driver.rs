//! A network driver written outside berth's crates (`examples/p2p-driver`), registered through
//! `Controller::builder`, as root in throwaway namespaces: `create -d p2p` finds it, its networks
//! carry real traffic, they come back after a restart, and the controller's decisions follow its
//! capabilities (it publishes no ports: `-p` is refused before anything is made). Unknown
//! drivers get Docker's "plugin not found"; a name registered twice is refused.
//!
//! The driver, `p2p`, is routed point-to-point (no bridge): each endpoint is a veth pair whose
//! host end holds the network's gateway address and a host route to the endpoint's address.
//! Like a remote plugin it refuses a second create of a network it has.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use berth::{Controller, EndpointOptions, Error, IpamPoolConfig, NetworkCreate, SandboxCreate};
use berth_example_p2p::{MTU_OPTION as P2P_MTU, P2pDriver};
use berth_testhost::TestHost;
use common::*;

fn p2p_network(ctl: &Controller, name: &str, subnet: &str) {
    let mut req = NetworkCreate::new(name);
    req.driver = "p2p".into();
    req.ipam.push(IpamPoolConfig {
        subnet: Some(subnet.parse().unwrap()),
        ..Default::default()
    });
    ctl.create_network(req).unwrap();
}

/// A controller with the p2p driver registered (shared, so the test can read its counters).
fn build(host: &TestHost, dir: &StateDir, p2p: &Arc<P2pDriver>) -> Controller {
    Controller::builder(Fixture::config_for(host, dir))
        .driver_arc(p2p.clone())
        .build()
        .unwrap()
}

fn p2p(host: &TestHost) -> Arc<P2pDriver> {
    Arc::new(P2pDriver::new(host.netns()).unwrap())
}

#[test]
fn a_driver_registered_from_outside_carries_traffic_and_survives_a_restart() {
    let host = TestHost::new().unwrap();
    let dir = StateDir::new().unwrap();
    let driver = p2p(&host);
    let ctl = build(&host, &dir, &driver);
    assert_eq!(
        ctl.drivers(),
        ["bridge", "host", "ipvlan", "macvlan", "null", "p2p"]
    );
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

    // Endpoint driver options reach the driver: p2p.mtu sets both ends' MTU; an option it does
    // not know is refused, named, and leaves nothing (the bridge driver knows none).
    ctl.create_sandbox(SandboxCreate::new("three")).unwrap();
    let with = |k: &str, v: &str| EndpointOptions {
        driver_opts: [(k.to_owned(), v.to_owned())].into(),
        ..Default::default()
    };
    for (net, key, driver) in [
        ("routed", "p2p.bogus", "p2p"),
        ("bridge", "p2p.mtu", "bridge"),
    ] {
        let e = ctl.connect("three", net, with(key, "1")).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!("unknown option \"{key}\" for the {driver} driver")),
            "{text}"
        );
        assert!(ctl.inspect_sandbox("three").unwrap().networks.is_empty());
    }
    ctl.connect("three", "routed", with(P2P_MTU, "1400"))
        .unwrap();
    let mtu_of_three = |ctl: &Controller| {
        let out = ns(ctl, "three")
            .command("ip")
            .args(["-o", "link", "show", "eth0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        mtu_of_three(&ctl).contains("mtu 1400"),
        "{}",
        mtu_of_three(&ctl)
    );
    let three_id = ctl.inspect_sandbox("three").unwrap().networks["routed"]
        .endpoint_id
        .clone();

    // A restart with the driver registered restores its networks (by restore_network: its
    // create_network refuses a network it has) and endpoints, with their driver options: the
    // pair of "three", deleted while berth was down, is made again with its MTU.
    assert_eq!(driver.restores(), 0);
    drop(ctl);
    host.ip(&["link", "del", &format!("p2p{}", &three_id[..10])])
        .unwrap();
    // (A new driver, as a restarted engine has: it knows no network until it is handed back.)
    let driver = p2p(&host);
    let ctl = build(&host, &dir, &driver);
    assert_eq!(driver.restores(), 1);
    assert_eq!(ip(&ctl, "two"), two);
    assert!(host.ping(&two));
    assert!(berth_testhost::ping_in(&ns(&ctl, "two"), "10.98.0.1"));
    assert!(
        mtu_of_three(&ctl).contains("mtu 1400"),
        "{}",
        mtu_of_three(&ctl)
    );
    assert!(berth_testhost::ping_in(&ns(&ctl, "three"), "10.98.0.1"));
    for n in ["one", "two", "three"] {
        ctl.remove_sandbox(n).unwrap();
    }
    ctl.remove_network("routed").unwrap();
    let left = host.ip(&["-o", "link"]).unwrap();
    assert!(!left.contains("p2p"), "{left}");
}

#[test]
fn unknown_and_twice_registered_drivers_are_refused() {
    let host = TestHost::new().unwrap();
    let dir = StateDir::new().unwrap();
    let driver = p2p(&host);
    let ctl = build(&host, &dir, &driver);
    let mut req = NetworkCreate::new("nope_nw");
    req.driver = "nope".into();
    let e = ctl.create_network(req).unwrap_err();
    assert!(matches!(e, Error::DriverNotFound(_)), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("no driver named \"nope\" is registered"),
        "{e}"
    );
    p2p_network(&ctl, "routed", "10.99.0.0/24");
    drop(ctl);

    // Twice: by name among the registered ones, or over a built-in one.
    let e = Controller::builder(Fixture::config_for(&host, &dir))
        .driver_arc(p2p(&host))
        .driver_arc(p2p(&host))
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
    assert!(
        e.to_string()
            .starts_with("no driver named \"p2p\" is registered"),
        "{e}"
    );
    let ctl = build(&host, &dir, &p2p(&host));
    assert!(ctl.inspect_network("routed").is_ok());
    ctl.remove_network("routed").unwrap();
}

//! The network driver behaviour tests: what the controller relies on from any
//! [`berth_driver::Driver`], checked against the kernel with real traffic. A driver crate (in
//! this workspace or outside it) runs [`check_driver`] from one of its tests.
//!
//! Checked, in a throwaway host namespace and a throwaway sandbox namespace: unknown network and
//! endpoint options are refused, naming the key; a network is created, and taken back by
//! `restore_network` (a restart); an endpoint is created once (a second create of its id is
//! refused); its join puts an interface into the sandbox, named as asked, up, with its address,
//! and the gateway the join reports answers a ping from the sandbox; a join repeated after a
//! new driver took the network back converges; `leave` removes the interface and is idempotent;
//! deleting the endpoint and the network leaves no link behind in either namespace.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::Arc;

use berth_driver::{
    DriverError, EndpointId, EndpointSpec, IpamInfo, JoinRequest, NetnsRef, NetworkId, NetworkSpec,
    RawOptions, SandboxId, SandboxRef,
};
use berth_netlink::Handle;
use ipnet::IpNet;

use crate::TestHost;

/// Makes the driver under test for a host namespace (called again to act as a restart).
pub type MakeDriver<'a> = &'a dyn Fn(&TestHost) -> Arc<dyn berth_driver::Driver>;

/// Runs the behaviour tests against the driver `make` builds, with `options` as the network's
/// options (the driver's defaults when empty). Panics, naming the step, on the first failure.
pub fn check_driver(make: MakeDriver<'_>, options: &RawOptions) {
    let host = TestHost::new().expect("a test host (run as root)");
    let sandbox = TestHost::new().expect("a sandbox namespace");
    let nl = Handle::open(host.netns()).expect("netlink in the host");
    let sb = Handle::open(sandbox.netns()).expect("netlink in the sandbox");
    let links = |h: &Handle| -> Vec<String> {
        h.link_list()
            .expect("listing links")
            .into_iter()
            .map(|l| l.name)
            .collect()
    };
    let (host_before, sandbox_before) = (links(&nl), links(&sb));
    let driver = make(&host);
    let name = driver.name();

    // Options it does not know are refused, naming the key.
    let bogus: RawOptions = [("suite.bogus".to_owned(), "1".to_owned())].into();
    match driver.parse_options(&bogus) {
        Err(DriverError::UnknownOption { key, .. }) => assert_eq!(key, "suite.bogus"),
        other => panic!("{name}: an unknown network option must be refused, got {other:?}"),
    }
    let parsed = driver
        .parse_options(options)
        .unwrap_or_else(|e| panic!("{name}: parsing the suite's options: {e}"));

    let gateway: IpNet = "10.123.0.1/24".parse().expect("literal");
    let spec = NetworkSpec {
        id: NetworkId::from_bytes([0x5a; 32]),
        name: "suite_nw".into(),
        ipv4: vec![IpamInfo {
            pool: "10.123.0.0/24".parse().expect("literal"),
            gateway: Some(gateway),
            aux_addresses: Default::default(),
        }],
        ipv6: Vec::new(),
        internal: false,
        enable_ipv6: false,
    };
    driver
        .create_network(&spec, &parsed)
        .unwrap_or_else(|e| panic!("{name}: create_network: {e}"));

    let endpoint = EndpointId::from_bytes([0x5b; 32]);
    let addr = "10.123.0.2/24".parse().expect("literal");
    let ep_spec = |options: RawOptions| EndpointSpec {
        network: spec.id.clone(),
        endpoint: endpoint.clone(),
        ipv4: Some(addr),
        ipv6: None,
        mac: None,
        options,
    };
    match driver.create_endpoint(&ep_spec(bogus.clone())) {
        Err(DriverError::UnknownOption { key, .. }) => assert_eq!(key, "suite.bogus"),
        other => panic!("{name}: an unknown endpoint option must be refused, got {other:?}"),
    }
    let info = driver
        .create_endpoint(&ep_spec(RawOptions::new()))
        .unwrap_or_else(|e| panic!("{name}: create_endpoint: {e}"));
    assert_eq!(
        info.ipv4,
        Some(addr),
        "{name}: the endpoint keeps its address"
    );
    assert!(
        driver.create_endpoint(&ep_spec(RawOptions::new())).is_err(),
        "{name}: a second create of one endpoint must be refused"
    );

    let sandbox_id = SandboxId::from_bytes([0x5c; 32]);
    let sandbox_path = sandbox.path();
    let join = |driver: &Arc<dyn berth_driver::Driver>| {
        driver
            .join(&JoinRequest {
                network: &spec.id,
                endpoint: &endpoint,
                sandbox: SandboxRef {
                    id: &sandbox_id,
                    netns: NetnsRef {
                        path: &sandbox_path,
                        fd: Some(sandbox.netns().as_fd()),
                    },
                },
                ifname: "eth0",
            })
            .unwrap_or_else(|e| panic!("{name}: join: {e}"))
    };
    let joined = join(&driver);
    assert_eq!(joined.ifname, "eth0");
    let eth0 = sb
        .link("eth0")
        .unwrap_or_else(|e| panic!("{name}: eth0 in the sandbox: {e}"));
    assert!(eth0.up, "{name}: the interface is up");
    let has_addr = sb
        .addr_list("eth0")
        .expect("addresses")
        .iter()
        .any(|a| a.net == IpNet::V4(addr));
    assert!(has_addr, "{name}: the interface has its address");
    // The network is not internal and has a gateway: the join must report it (else the
    // controller could point no default route anywhere), and it must answer.
    let gw = joined
        .gateway_v4
        .unwrap_or_else(|| panic!("{name}: the join of a network with a gateway reports none"));
    assert!(
        sandbox.ping(&IpAddr::V4(gw).to_string()),
        "{name}: the gateway the join reports answers from the sandbox"
    );

    // A restart: a new driver takes the network and the endpoint back and joins again.
    let again = make(&host);
    again
        .restore_network(&spec, &parsed)
        .unwrap_or_else(|e| panic!("{name}: restore_network after a restart: {e}"));
    again
        .create_endpoint(&ep_spec(RawOptions::new()))
        .unwrap_or_else(|e| panic!("{name}: create_endpoint after a restart: {e}"));
    let rejoined = join(&again);
    assert_eq!(rejoined.gateway_v4, joined.gateway_v4);
    assert!(
        sandbox.ping(&IpAddr::V4(gw).to_string()),
        "{name}: traffic after the restart"
    );

    again
        .leave(&spec.id, &endpoint)
        .unwrap_or_else(|e| panic!("{name}: leave: {e}"));
    assert!(
        !links(&sb).contains(&"eth0".to_owned()),
        "{name}: leave removes the interface"
    );
    again
        .leave(&spec.id, &endpoint)
        .unwrap_or_else(|e| panic!("{name}: a second leave must be no error: {e}"));
    again
        .delete_endpoint(&spec.id, &endpoint)
        .unwrap_or_else(|e| panic!("{name}: delete_endpoint: {e}"));
    again
        .delete_network(&spec.id)
        .unwrap_or_else(|e| panic!("{name}: delete_network: {e}"));
    drop(driver);
    assert_eq!(
        links(&nl),
        host_before,
        "{name}: no link left in the host namespace"
    );
    assert_eq!(
        links(&sb),
        sandbox_before,
        "{name}: no link left in the sandbox"
    );
}

//! The gateway bridge (`docker_gwbridge`), as root in throwaway namespaces: a driver whose
//! networks have no way out of their own (egress `GatewayBridge`, as Docker's overlay) gets its
//! sandboxes connected to `docker_gwbridge`, made on demand with Docker's options, for their
//! default route; the connect follows what the sandbox's other networks give, and real traffic
//! reaches a LAN peer through it (masqueraded as the host).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use berth::{Controller, EndpointOptions, GATEWAY_BRIDGE, IpamPoolConfig, NetworkCreate};
use berth_driver::{Capabilities, Egress};
use berth_testhost::TestHost;
use berth_testhost::traffic::{TcpBanner, tcp_fetch};
use common::bridge_like::BridgeLike;
use common::*;

fn fixture() -> Fixture {
    let host = TestHost::new().expect("a test host (run as root)");
    let dir = StateDir::new().unwrap();
    let ctl = start(&host, &dir);
    Fixture {
        ctl: Some(ctl),
        host,
        dir,
    }
}

fn start(host: &TestHost, dir: &StateDir) -> Controller {
    // A bridge whose joins give no gateway: the sandbox's way out must come from elsewhere.
    let driver = BridgeLike::new(host, "nogw", |c: Capabilities| {
        c.egress(Egress::GatewayBridge)
    })
    .without_gateway()
    .without_host_policy();
    Controller::builder(Fixture::config_for(host, dir))
        .driver(driver)
        .build()
        .unwrap()
}

fn networks_of(f: &Fixture, sandbox: &str) -> Vec<String> {
    f.ctl()
        .inspect_sandbox(sandbox)
        .unwrap()
        .networks
        .keys()
        .cloned()
        .collect()
}

fn nogw(name: &str) -> NetworkCreate {
    let mut req = NetworkCreate::new(name);
    req.driver = "nogw".into();
    req
}

const TIMEOUT: Duration = Duration::from_secs(3);

#[test]
fn a_sandbox_without_a_way_out_gets_the_gateway_bridge_and_reaches_the_lan() {
    let f = fixture();
    let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    let server = TcpBanner::start(peer.netns(), "192.0.2.2:8080".parse().unwrap(), "lan").unwrap();
    assert!(
        f.ctl().inspect_network(GATEWAY_BRIDGE).is_err(),
        "made up front"
    );
    f.ctl().create_network(nogw("over")).unwrap();

    // On the no-gateway network alone: the gateway bridge is made and joined.
    f.sandbox_on("s", "over");
    assert_eq!(networks_of(&f, "s"), [GATEWAY_BRIDGE, "over"]);
    let gw = f.ctl().inspect_network(GATEWAY_BRIDGE).unwrap();
    assert_eq!(gw.driver, "bridge");
    assert_eq!(gw.options["com.docker.network.bridge.name"], GATEWAY_BRIDGE);
    assert_eq!(gw.options["com.docker.network.bridge.enable_icc"], "false");
    assert_eq!(
        gw.options["com.docker.network.bridge.enable_ip_masquerade"],
        "true"
    );
    let got = tcp_fetch(&f.sandbox_ns("s"), server.addr(), TIMEOUT).unwrap();
    assert_eq!(
        got, "lan from 192.0.2.1",
        "out through the gateway bridge, masqueraded"
    );

    // A network with a gateway of its own takes over: the gateway bridge is left ...
    f.ctl().create_network(NetworkCreate::new("plain")).unwrap();
    f.ctl()
        .connect("s", "plain", EndpointOptions::default())
        .unwrap();
    assert_eq!(networks_of(&f, "s"), ["over", "plain"]);
    let got = tcp_fetch(&f.sandbox_ns("s"), server.addr(), TIMEOUT).unwrap();
    assert_eq!(got, "lan from 192.0.2.1", "out through plain");
    // ... and joined again when it goes.
    f.ctl().disconnect("s", "plain").unwrap();
    assert_eq!(networks_of(&f, "s"), [GATEWAY_BRIDGE, "over"]);
    assert!(tcp_fetch(&f.sandbox_ns("s"), server.addr(), TIMEOUT).is_ok());
    // Leaving the no-gateway network leaves the gateway bridge too.
    f.ctl().disconnect("s", "over").unwrap();
    assert!(networks_of(&f, "s").is_empty());
    assert!(
        f.ctl()
            .inspect_network(GATEWAY_BRIDGE)
            .unwrap()
            .containers
            .is_empty(),
        "an endpoint stayed on the gateway bridge"
    );

    // A connect to the gateway bridge the user asked for is theirs: it serves as the way out
    // and stays when the sandbox's other networks change.
    f.sandbox_on("u", "plain");
    f.ctl()
        .connect("u", GATEWAY_BRIDGE, EndpointOptions::default())
        .unwrap();
    f.ctl()
        .connect("u", "over", EndpointOptions::default())
        .unwrap();
    f.ctl().disconnect("u", "over").unwrap();
    assert_eq!(networks_of(&f, "u"), [GATEWAY_BRIDGE, "plain"]);
    f.ctl().disconnect("u", "plain").unwrap();
    assert_eq!(networks_of(&f, "u"), [GATEWAY_BRIDGE]);

    // An internal no-gateway network needs no way out.
    f.ctl().create_network(nogw("closed").internal()).unwrap();
    f.sandbox_on("t", "closed");
    assert_eq!(networks_of(&f, "t"), ["closed"]);
}

#[test]
fn a_gateway_bridge_the_user_made_is_used_and_kept_across_a_restart() {
    let mut f = fixture();
    let mut own = NetworkCreate::new(GATEWAY_BRIDGE);
    own.ipam.push(IpamPoolConfig {
        subnet: Some("10.77.0.0/24".parse().unwrap()),
        ..Default::default()
    });
    f.ctl().create_network(own).unwrap();
    f.ctl().create_network(nogw("over")).unwrap();
    f.sandbox_on("s", "over");
    let via = f.ip_of("s", GATEWAY_BRIDGE);
    assert!(via.starts_with("10.77.0."), "{via}");
    // A restart keeps the sandbox on both, with its way out.
    f.stop();
    f.start_with(start);
    assert_eq!(networks_of(&f, "s"), [GATEWAY_BRIDGE, "over"]);
    assert_eq!(f.ip_of("s", GATEWAY_BRIDGE), via);
    assert!(f.ping("s", "10.77.0.1"), "the gateway bridge's gateway");
    f.ctl().remove_sandbox("s").unwrap();
}

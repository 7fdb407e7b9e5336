//! The shared attach step, as root in throwaway namespaces: an interface made in the host is
//! moved into a sandbox, renamed, given its MAC, MTU, address and route, and carries real
//! traffic; a failed attach leaves nothing in either namespace; detach gives it back to the
//! host under the name asked for, even when the host has an interface of the sandbox name.

#![allow(clippy::unwrap_used)]

use berth_netlink::{AddrSpec, Attach, Handle, LinkSpec, MacAddr, RouteSpec, attach, detach};
use berth_testhost::TestHost;

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

fn links(h: &Handle) -> Vec<String> {
    h.link_list().unwrap().into_iter().map(|l| l.name).collect()
}

#[test]
fn attach_moves_configures_and_gives_back() {
    let host = TestHost::new().unwrap();
    let sandbox = TestHost::new().unwrap();
    let nl = Handle::open(host.netns()).unwrap();
    let sb = Handle::open(sandbox.netns()).unwrap();
    // An eth0 in the host too: the sandbox's eth0 must never meet it on the way back.
    nl.link_add(&LinkSpec::veth(
        "eth0",
        berth_netlink::VethPeer::new("eth0peer"),
    ))
    .unwrap();
    nl.link_add(&LinkSpec::veth(
        "hst-a",
        berth_netlink::VethPeer::new("src-a"),
    ))
    .unwrap();
    nl.addr_add("hst-a", &AddrSpec::new(net("10.77.0.1/24")))
        .unwrap();
    nl.link_set_up("hst-a").unwrap();
    let mac: MacAddr = "02:42:0a:4d:00:02".parse().unwrap();
    let spec = Attach::new("src-a", "eth0")
        .mac(mac)
        .mtu(1400)
        .addr(AddrSpec::new(net("10.77.0.2/24")).nodad())
        .route(RouteSpec::new(net("10.78.0.0/24")).via("10.77.0.1".parse().unwrap()));
    attach(&nl, sandbox.netns(), &sb, &spec).unwrap();

    assert!(
        !links(&nl).contains(&"src-a".to_owned()),
        "moved out of the host"
    );
    let inside = sb.link("eth0").unwrap();
    assert_eq!((inside.mac, inside.mtu, inside.up), (Some(mac), 1400, true));
    // The first echo can go before the kernel's link watch has turned the new carrier on (it
    // runs up to a second after the bring-up under load): three tries.
    assert!(
        (0..3).any(|_| sandbox.ping("10.77.0.1")),
        "real traffic over the attached interface"
    );
    let routes = sandbox.ip(&["route", "show", "10.78.0.0/24"]).unwrap();
    assert!(routes.contains("via 10.77.0.1 dev eth0"), "{routes}");

    // Given back: renamed in the sandbox first, so the host's own eth0 is no obstacle.
    detach(&sb, "eth0", host.netns(), "src-a").unwrap();
    assert!(!links(&sb).contains(&"eth0".to_owned()));
    assert!(links(&nl).contains(&"src-a".to_owned()));
    assert!(
        links(&nl).contains(&"eth0".to_owned()),
        "the host's eth0 untouched"
    );
    // Again: nothing to give back is no error.
    detach(&sb, "eth0", host.netns(), "src-a").unwrap();
}

#[test]
fn a_failed_attach_leaves_nothing() {
    let host = TestHost::new().unwrap();
    let sandbox = TestHost::new().unwrap();
    let nl = Handle::open(host.netns()).unwrap();
    let sb = Handle::open(sandbox.netns()).unwrap();
    let before = (links(&nl), links(&sb));
    // Missing interface: refused before anything moves.
    let e = attach(&nl, sandbox.netns(), &sb, &Attach::new("nosuch", "eth0")).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    // A route whose gateway is not reachable through the address: the kernel refuses it after
    // the move; the interface (a veth: its peer with it) is deleted, nothing is left.
    nl.link_add(&LinkSpec::veth(
        "hst-b",
        berth_netlink::VethPeer::new("src-b"),
    ))
    .unwrap();
    let spec = Attach::new("src-b", "eth0")
        .addr(AddrSpec::new(net("10.79.0.2/24")).nodad())
        .route(RouteSpec::new(net("10.80.0.0/24")).via("192.0.2.99".parse().unwrap()));
    assert!(attach(&nl, sandbox.netns(), &sb, &spec).is_err());
    assert_eq!(
        (links(&nl), links(&sb)),
        before,
        "nothing left in either namespace"
    );
}

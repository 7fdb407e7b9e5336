//! Published ports: DNAT of single ports, ranges and shifted ranges, UDP, a host address,
//! hairpin and localhost, direct routing, unpublishing; also with the legacy binaries.

use berth_firewall::{Backend, IptablesVariant, Protocol};

use crate::common::*;
use crate::{assert_no_drift, net, port};

/// Published ports: single, range, shifted range, UDP, host address, hairpin, localhost, and
/// direct routing to published and unpublished container ports.
fn published_ports(backend: Backend) {
    let lab = Lab::new();
    lab.bridge("br-p", "172.22.0.1/16", None);
    lab.host
        .run("sysctl", &["-qw", "net.ipv4.conf.br-p.route_localnet=1"])
        .expect("route_localnet");
    let c1 = lab.container("br-p", "172.22.0.2/16", "172.22.0.1");
    let c2 = lab.container("br-p", "172.22.0.3/16", "172.22.0.1");
    let _s = [
        serve(c1.netns(), "172.22.0.2:80", "c1-80"),
        serve(c1.netns(), "172.22.0.2:22", "c1-22"),
        serve(c1.netns(), "172.22.0.2:9005", "c1-9005"),
    ];
    let _u = serve_udp(c1.netns(), "172.22.0.2:53", "c1-dns");
    lab.peer_routes("172.22.0.0/16");
    let fw = lab.firewall(config(backend));
    fw.add_network(net("br-p", "172.22.0.0/16"))
        .expect("network");
    let mut on_addr = port(Protocol::Tcp, (6000, 6000), "172.22.0.2", (80, 80), "br-p");
    on_addr.host_ip = Some("192.0.2.1".parse().expect("addr"));
    let ports = vec![
        port(Protocol::Tcp, (8080, 8080), "172.22.0.2", (80, 80), "br-p"),
        port(
            Protocol::Tcp,
            (9000, 9010),
            "172.22.0.2",
            (9000, 9010),
            "br-p",
        ),
        port(
            Protocol::Tcp,
            (7000, 7010),
            "172.22.0.2",
            (9000, 9010),
            "br-p",
        ),
        port(Protocol::Udp, (5353, 5353), "172.22.0.2", (53, 53), "br-p"),
        on_addr,
    ];
    fw.add_ports(&ports).expect("publish");
    assert_no_drift(&fw);

    let peer = lab.peer.netns();
    assert_eq!(fetch(peer, "192.0.2.1:8080"), "c1-80 from 192.0.2.2");
    assert_eq!(
        fetch(peer, "192.0.2.1:9005"),
        "c1-9005 from 192.0.2.2",
        "range"
    );
    assert_eq!(
        fetch(peer, "192.0.2.1:7005"),
        "c1-9005 from 192.0.2.2",
        "shifted range"
    );
    assert_eq!(
        fetch_udp(peer, "192.0.2.1:5353"),
        "c1-dns from 192.0.2.2",
        "udp"
    );
    assert_eq!(
        fetch(peer, "192.0.2.1:6000"),
        "c1-80 from 192.0.2.2",
        "host address"
    );
    assert_eq!(
        fetch(c1.netns(), "192.0.2.1:8080"),
        "c1-80 from 172.22.0.1",
        "hairpin to itself"
    );
    assert_eq!(
        fetch(c2.netns(), "192.0.2.1:8080"),
        "c1-80 from 172.22.0.1",
        "hairpin from a neighbour"
    );
    assert_eq!(
        fetch(lab.host.netns(), "127.0.0.1:8080"),
        "c1-80 from 172.22.0.1",
        "localhost"
    );
    assert!(
        blocked(lab.host.netns(), "127.0.0.1:6000"),
        "published on 192.0.2.1 only"
    );
    assert!(
        blocked(peer, "172.22.0.2:22"),
        "direct routing to an unpublished port"
    );
    assert!(
        blocked(peer, "172.22.0.2:80"),
        "direct routing to a published container port"
    );

    fw.remove_ports(&ports).expect("unpublish");
    assert_no_drift(&fw);
    assert!(fw.state().ports().is_empty());
    assert!(blocked(peer, "192.0.2.1:8080"));
    assert!(blocked(peer, "192.0.2.1:9005"));
}

/// The published-port and network behaviour with the legacy binaries too.
#[test]
fn published_ports_legacy() {
    let lab = Lab::new();
    lab.bridge("br-p", "172.22.0.1/16", None);
    let c1 = lab.container("br-p", "172.22.0.2/16", "172.22.0.1");
    let _s = serve(c1.netns(), "172.22.0.2:80", "c1-80");
    let mut cfg = config(Backend::Iptables);
    cfg.iptables_variant = IptablesVariant::Legacy;
    let fw = lab.firewall(cfg);
    fw.add_network(net("br-p", "172.22.0.0/16"))
        .expect("network");
    fw.add_ports(&[port(
        Protocol::Tcp,
        (8080, 8080),
        "172.22.0.2",
        (80, 80),
        "br-p",
    )])
    .expect("publish");
    assert_no_drift(&fw);
    assert_eq!(
        fetch(lab.peer.netns(), "192.0.2.1:8080"),
        "c1-80 from 192.0.2.2"
    );
}

crate::both_backends!(published_ports);

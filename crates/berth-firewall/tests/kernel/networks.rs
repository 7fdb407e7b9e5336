//! Networks: isolation between bridges, icc, internal networks, masquerade and SNAT, trusted
//! interfaces, legacy links, IPv6, the FORWARD policy, and single-address subnets.

use berth_firewall::{Backend, LinkPort, LinkRule, NetworkRules, Protocol};

use crate::common::*;
use crate::{assert_no_drift, net, port};

/// Isolation between networks, icc off, internal networks, masquerade, and that forwarding
/// works where allowed (also before berth has rules for the bridges).
fn networks_isolate_and_forward(backend: Backend) {
    let lab = Lab::new();
    lab.bridge("br-a", "172.18.0.1/16", None);
    lab.bridge("br-b", "172.19.0.1/16", None);
    lab.bridge("br-i", "172.20.0.1/16", None);
    let a1 = lab.container("br-a", "172.18.0.2/16", "172.18.0.1");
    let a2 = lab.container("br-a", "172.18.0.3/16", "172.18.0.1");
    let b1 = lab.container("br-b", "172.19.0.2/16", "172.19.0.1");
    let b2 = lab.container("br-b", "172.19.0.3/16", "172.19.0.1");
    let i1 = lab.container("br-i", "172.20.0.2/16", "172.20.0.1");
    let i2 = lab.container("br-i", "172.20.0.3/16", "172.20.0.1");
    let _s = [
        serve(a1.netns(), "172.18.0.2:80", "a1"),
        serve(a2.netns(), "172.18.0.3:80", "a2"),
        serve(b1.netns(), "172.19.0.2:80", "b1"),
        serve(b2.netns(), "172.19.0.3:80", "b2"),
        serve(i1.netns(), "172.20.0.2:80", "i1"),
        serve(i2.netns(), "172.20.0.3:80", "i2"),
        serve(lab.peer.netns(), "192.0.2.2:80", "peer"),
    ];
    lab.peer_routes("172.16.0.0/12");

    let fw = lab.firewall(config(backend));
    assert_no_drift(&fw);
    // Without berth's network rules the host forwards between bridges.
    assert_eq!(fetch(a1.netns(), "172.19.0.2:80"), "b1 from 172.18.0.2");

    fw.add_network(net("br-a", "172.18.0.0/16"))
        .expect("network a");
    let mut b = net("br-b", "172.19.0.0/16");
    b.icc = false;
    fw.add_network(b).expect("network b");
    let mut i = net("br-i", "172.20.0.0/16");
    i.internal = true;
    fw.add_network(i).expect("network i");
    assert_no_drift(&fw);

    assert_eq!(
        fetch(a1.netns(), "172.18.0.3:80"),
        "a2 from 172.18.0.2",
        "icc on"
    );
    assert!(blocked(a1.netns(), "172.19.0.2:80"), "isolation a -> b");
    assert!(blocked(b1.netns(), "172.18.0.2:80"), "isolation b -> a");
    assert!(blocked(b1.netns(), "172.19.0.3:80"), "icc off within b");
    assert_eq!(
        fetch(i1.netns(), "172.20.0.3:80"),
        "i2 from 172.20.0.2",
        "icc within internal"
    );
    assert!(
        blocked(i1.netns(), "192.0.2.2:80"),
        "internal cannot reach the LAN"
    );
    assert!(
        blocked(lab.peer.netns(), "172.20.0.2:80"),
        "the LAN cannot reach internal"
    );
    assert!(
        blocked(a1.netns(), "172.20.0.2:80"),
        "isolation a -> internal"
    );
    assert_eq!(
        fetch(a1.netns(), "192.0.2.2:80"),
        "peer from 192.0.2.1",
        "masquerade to the LAN"
    );
    assert_eq!(
        fetch(b1.netns(), "192.0.2.2:80"),
        "peer from 192.0.2.1",
        "icc off still goes out"
    );
    assert!(
        blocked(lab.peer.netns(), "172.18.0.2:80"),
        "direct routing to a container"
    );

    // Removing a network removes exactly its rules.
    fw.remove_network("br-b").expect("remove b");
    assert_no_drift(&fw);
    assert_eq!(
        fetch(b1.netns(), "172.19.0.3:80"),
        "b2 from 172.19.0.2",
        "no icc rule left for b"
    );
    assert!(blocked(b1.netns(), "172.18.0.2:80"), "a still protected");
    assert_eq!(fetch(a1.netns(), "172.18.0.3:80"), "a2 from 172.18.0.2");
}

/// SNAT to the network's host_ipv4 instead of masquerade.
fn snat_to_host_address(backend: Backend) {
    let lab = Lab::new();
    lab.host
        .ip(&[
            "addr",
            "add",
            "192.0.2.100/24",
            "dev",
            lab.peer.host_interface(),
        ])
        .expect("second host address");
    lab.bridge("br-s", "172.21.0.1/16", None);
    let c = lab.container("br-s", "172.21.0.2/16", "172.21.0.1");
    let _peer = serve(lab.peer.netns(), "192.0.2.2:80", "peer");
    let fw = lab.firewall(config(backend));
    let mut n = net("br-s", "172.21.0.0/16");
    n.host_ipv4 = Some("192.0.2.100".parse().expect("addr"));
    fw.add_network(n).expect("network");
    assert_no_drift(&fw);
    assert_eq!(fetch(c.netns(), "192.0.2.2:80"), "peer from 192.0.2.100");
}

/// Trusted interfaces may route straight to containers; others may not.
fn trusted_interfaces(backend: Backend) {
    let lab = Lab::new();
    let other = lab.second_peer();
    other.route_via("172.23.0.0/16", "198.51.100.1").ok();
    lab.bridge("br-t", "172.23.0.1/16", None);
    let c = lab.container("br-t", "172.23.0.2/16", "172.23.0.1");
    let _s = serve(c.netns(), "172.23.0.2:22", "ssh");
    lab.peer_routes("172.23.0.0/16");
    let mut cfg = config(backend);
    cfg.trusted_interfaces = vec![lab.peer.host_interface().to_owned()];
    let fw = lab.firewall(cfg);
    fw.add_network(net("br-t", "172.23.0.0/16"))
        .expect("network");
    assert_no_drift(&fw);
    assert_eq!(
        fetch(lab.peer.netns(), "172.23.0.2:22"),
        "ssh from 192.0.2.2",
        "trusted"
    );
    assert!(blocked(other.netns(), "172.23.0.2:22"), "not trusted");
}

/// Links on a network with icc off open exactly the linked port, one way.
fn links_with_icc_off(backend: Backend) {
    let lab = Lab::new();
    lab.bridge("br-l", "172.27.0.1/16", None);
    let parent = lab.container("br-l", "172.27.0.2/16", "172.27.0.1");
    let child = lab.container("br-l", "172.27.0.3/16", "172.27.0.1");
    let _s = [
        serve(child.netns(), "172.27.0.3:5432", "db"),
        serve(child.netns(), "172.27.0.3:80", "web"),
        serve(parent.netns(), "172.27.0.2:5432", "parent-db"),
    ];
    let fw = lab.firewall(config(backend));
    let mut n = net("br-l", "172.27.0.0/16");
    n.icc = false;
    fw.add_network(n).expect("network");
    assert!(blocked(parent.netns(), "172.27.0.3:5432"), "icc off");
    let link = LinkRule {
        bridge: "br-l".into(),
        parent_ip: "172.27.0.2".parse().expect("ip"),
        child_ip: "172.27.0.3".parse().expect("ip"),
        ports: vec![LinkPort {
            proto: Protocol::Tcp,
            port: 5432,
        }],
    };
    fw.add_link(link.clone()).expect("link");
    assert_no_drift(&fw);
    assert_eq!(
        fetch(parent.netns(), "172.27.0.3:5432"),
        "db from 172.27.0.2"
    );
    assert!(
        blocked(parent.netns(), "172.27.0.3:80"),
        "other ports stay closed"
    );
    assert!(
        blocked(child.netns(), "172.27.0.2:5432"),
        "the child cannot open the parent"
    );
    fw.remove_link(&link).expect("unlink");
    assert_no_drift(&fw);
    assert!(blocked(parent.netns(), "172.27.0.3:5432"), "link removed");
}

/// IPv6: forwarding with masquerade, a published port, isolation.
fn ipv6(backend: Backend) {
    let lab = Lab::new();
    lab.bridge("br-6", "172.28.0.1/16", Some("fd00:6::1/64"));
    lab.bridge("br-7", "172.29.0.1/16", Some("fd00:7::1/64"));
    let c = lab.container6(
        "br-6",
        "172.28.0.2/16",
        "172.28.0.1",
        Some(("fd00:6::2/64", "fd00:6::1")),
    );
    let d = lab.container6(
        "br-7",
        "172.29.0.2/16",
        "172.29.0.1",
        Some(("fd00:7::2/64", "fd00:7::1")),
    );
    let _s = [
        serve(c.netns(), "[fd00:6::2]:80", "c6"),
        serve(d.netns(), "[fd00:7::2]:80", "d6"),
        serve(lab.peer.netns(), "[2001:db8::2]:80", "peer6"),
    ];
    let mut cfg = config(backend);
    cfg.ipv6 = true;
    let fw = lab.firewall(cfg);
    for (br, v4, v6) in [
        ("br-6", "172.28.0.0/16", "fd00:6::/64"),
        ("br-7", "172.29.0.0/16", "fd00:7::/64"),
    ] {
        fw.add_network(NetworkRules::new(
            br,
            Some(v4.parse().expect("v4")),
            Some(v6.parse().expect("v6")),
        ))
        .expect("network");
    }
    let p = port(Protocol::Tcp, (8080, 8080), "fd00:6::2", (80, 80), "br-6");
    fw.add_ports(&[p]).expect("publish v6");
    assert_no_drift(&fw);
    assert_eq!(
        fetch(c.netns(), "[2001:db8::2]:80"),
        "peer6 from 2001:db8::1",
        "v6 masquerade"
    );
    assert_eq!(
        fetch(lab.peer.netns(), "[2001:db8::1]:8080"),
        "c6 from 2001:db8::2",
        "v6 DNAT"
    );
    assert!(blocked(c.netns(), "[fd00:7::2]:80"), "v6 isolation");
    assert!(blocked(d.netns(), "[fd00:6::2]:80"), "v6 isolation back");
}

/// FORWARD policy DROP when configured; berth's accepts still let its traffic through.
fn forward_policy_drop(backend: Backend) {
    let lab = Lab::new();
    lab.bridge("br-d", "172.16.7.1/24", None);
    let c = lab.container("br-d", "172.16.7.2/24", "172.16.7.1");
    let _p = serve(lab.peer.netns(), "192.0.2.2:80", "peer");
    let mut cfg = config(backend);
    cfg.forward_policy_drop = true;
    let fw = lab.firewall(cfg);
    // A bridge berth does not know about is not forwarded any more.
    lab.bridge("br-other", "172.16.8.1/24", None);
    let o = lab.container("br-other", "172.16.8.2/24", "172.16.8.1");
    assert!(blocked(o.netns(), "192.0.2.2:80"), "policy drop");
    fw.add_network(net("br-d", "172.16.7.0/24"))
        .expect("network");
    assert_no_drift(&fw);
    assert_eq!(fetch(c.netns(), "192.0.2.2:80"), "peer from 192.0.2.1");
    if backend == Backend::Iptables {
        let save = lab
            .host
            .run("iptables-save", &["-t", "filter"])
            .expect("save");
        assert!(save.contains(":FORWARD DROP"), "{save}");
    }
}

/// A network whose subnet is a single address (a /32, a /128) lists in nft as a plain address:
/// reconcile reads it back as what berth made, not as drift on every run.
#[test]
fn full_length_subnets_are_no_drift_nftables() {
    let lab = Lab::new();
    let mut cfg = config(Backend::Nftables);
    cfg.ipv6 = true;
    let fw = lab.firewall(cfg);
    fw.add_network(NetworkRules::new(
        "br-one",
        Some("10.30.0.7/32".parse().expect("v4")),
        Some("fd00:30::7/128".parse().expect("v6")),
    ))
    .expect("network");
    assert_no_drift(&fw);
}

crate::both_backends!(
    networks_isolate_and_forward,
    snat_to_host_address,
    trusted_interfaces,
    links_with_icc_off,
    ipv6,
    forward_policy_drop,
);

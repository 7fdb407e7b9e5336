//! Kernel tests (as root, in test-host namespaces) of the drop of loopback destinations from
//! outside, for both backends, with real TCP and UDP:
//!
//! (a) a container on a bridge with `route_localnet=1` sends to 127.0.0.1 through its gateway: the
//!     host's loopback-only services get nothing, nor do ports published on 127.0.0.1;
//! (b) a LAN peer that routes 127.0.0.1 to the host cannot reach a port published on 127.0.0.1
//!     (berth's DNAT would rewrite the packet before the kernel's martian check);
//!
//! also with `route_localnet=1` on every interface of the host, and again after an outside
//! actor removed the rule and reconcile put it back; while `127.0.0.1:PORT` from the host, the
//! container's way out and ports published on every address keep working.

mod common;

use berth_firewall::{Backend, Firewall, NetworkRules, PortRange, PortRule, Protocol};
use common::*;

const BRIDGE: &str = "br-lo";

fn published(proto: Protocol, host_ip: &str, host: u16, ctr: u16) -> PortRule {
    PortRule {
        proto,
        host_ip: Some(host_ip.parse().expect("host ip")),
        host_ports: PortRange::single(host).expect("host port"),
        container_ip: "172.16.11.2".parse().expect("container ip"),
        container_ports: PortRange::single(ctr).expect("container port"),
        bridge: BRIDGE.into(),
    }
}

/// Everything the attackers try is refused, and the host's loopback listener counts nothing.
/// Every attempt is made; the failure lists all that got through.
fn assert_loopback_closed(lab: &Lab, c: &Container, secret: &Catch, when: &str) {
    let before = secret.hits();
    let peer = lab.peer.netns();
    let attempts = [
        (
            blocked(c.netns(), "127.0.0.1:2222"),
            "(a) tcp to the host's 127.0.0.1 from the container",
        ),
        (
            udp_blocked(c.netns(), "127.0.0.1:2223"),
            "(a) udp to the host's 127.0.0.1 from the container",
        ),
        (
            blocked(c.netns(), "127.0.0.1:8080"),
            "(a) a port published on 127.0.0.1, from the container through 127.0.0.1",
        ),
        (
            blocked(peer, "127.0.0.1:8080"),
            "(b) tcp port published on 127.0.0.1, from the LAN",
        ),
        (
            udp_blocked(peer, "127.0.0.1:5353"),
            "(b) udp port published on 127.0.0.1, from the LAN",
        ),
        (
            blocked(peer, "127.0.0.1:2222"),
            "tcp to the host's 127.0.0.1 from the LAN",
        ),
    ];
    let leaks: Vec<&str> = attempts
        .iter()
        .filter(|(closed, _)| !closed)
        .map(|(_, what)| *what)
        .collect();
    assert!(leaks.is_empty(), "reached {when}: {leaks:#?}");
    assert_eq!(
        secret.hits(),
        before,
        "the host's 127.0.0.1 listener was reached {when}"
    );
}

/// What must keep working.
fn assert_legitimate_paths(lab: &Lab, c: &Container, secret: &Catch, when: &str) {
    let host = lab.host.netns();
    assert_eq!(
        fetch(host, "127.0.0.1:8080"),
        "web from 172.16.11.1",
        "127.0.0.1:PORT from the host {when}"
    );
    assert_eq!(
        fetch_udp(host, "127.0.0.1:5353"),
        "dns from 172.16.11.1",
        "127.0.0.1:PORT/udp from the host {when}"
    );
    assert_eq!(
        fetch(lab.peer.netns(), "192.0.2.1:8081"),
        "web from 192.0.2.2",
        "a port published on every address, from the LAN {when}"
    );
    assert_eq!(
        fetch(c.netns(), "192.0.2.2:80"),
        "peer from 192.0.2.1",
        "the container reaches the LAN {when}"
    );
    let before = secret.hits();
    assert_eq!(
        fetch(host, "127.0.0.1:2222"),
        "secret from 127.0.0.1",
        "the host's own loopback service {when}"
    );
    assert_eq!(secret.hits().0, before.0 + 1);
}

fn remove_rule_from_outside(lab: &Lab, backend: Backend) {
    match backend {
        Backend::Iptables => {
            lab.sh("iptables -t raw -D PREROUTING -j BERTH-RAW && iptables -t raw -F BERTH-RAW")
        }
        Backend::Nftables => lab.sh("nft flush chain inet berth prerouting_raw"),
    }
}

fn loopback_stays_local(backend: Backend) {
    let lab = Lab::new();
    lab.bridge(BRIDGE, "172.16.11.1/24", None);
    // What berth's bridge driver sets on its bridges, for 127.0.0.1:PORT.
    lab.host
        .run("sysctl", &["-qw", "net.ipv4.conf.br-lo.route_localnet=1"])
        .expect("route_localnet on the bridge");
    let c = lab.container(BRIDGE, "172.16.11.2/24", "172.16.11.1");
    let _web = serve(c.netns(), "172.16.11.2:80", "web");
    let _dns = serve_udp(c.netns(), "172.16.11.2:53", "dns");
    let _peer = serve(lab.peer.netns(), "192.0.2.2:80", "peer");
    let secret = Catch::start(
        lab.host.netns(),
        "127.0.0.1:2222",
        "127.0.0.1:2223",
        "secret",
    );
    berth_testhost::route_loopback_via(c.netns(), "eth0", "172.16.11.1")
        .expect("routing 127.0.0.1 to the gateway");
    berth_testhost::route_loopback_via(lab.peer.netns(), "eth0", "192.0.2.1")
        .expect("routing 127.0.0.1 to the gateway");

    let fw = lab.firewall(config(backend));
    fw.add_network(NetworkRules::new(
        BRIDGE,
        Some("172.16.11.0/24".parse().expect("subnet")),
        None,
    ))
    .expect("network");
    fw.add_ports(&[
        published(Protocol::Tcp, "127.0.0.1", 8080, 80),
        published(Protocol::Udp, "127.0.0.1", 5353, 53),
        published(Protocol::Tcp, "0.0.0.0", 8081, 80),
    ])
    .expect("publish");
    assert_clean(&fw);

    assert_legitimate_paths(&lab, &c, &secret, "");
    assert_loopback_closed(&lab, &c, &secret, "");

    // Any host configuration: route_localnet on every interface.
    for key in [
        "net.ipv4.conf.all.route_localnet=1",
        "net.ipv4.conf.default.route_localnet=1",
    ] {
        lab.host.run("sysctl", &["-qw", key]).expect("sysctl");
    }
    lab.host
        .run(
            "sysctl",
            &[
                "-qw",
                &format!(
                    "net.ipv4.conf.{}.route_localnet=1",
                    lab.peer.host_interface()
                ),
            ],
        )
        .expect("route_localnet on the LAN side");
    assert_loopback_closed(&lab, &c, &secret, "with route_localnet=1 everywhere");
    assert_legitimate_paths(&lab, &c, &secret, "with route_localnet=1 everywhere");

    // Part of the base rules: an outside removal is drift, and reconcile puts it back.
    remove_rule_from_outside(&lab, backend);
    let drift = fw.check_drift().expect("drift");
    assert!(!drift.is_clean(), "the removal is seen");
    fw.reconcile().expect("reconcile");
    assert_clean(&fw);
    assert_loopback_closed(&lab, &c, &secret, "after reconcile");

    // Removing the network and its ports leaves the base rule (and the loopback closed).
    fw.remove_ports(fw.state().ports()).expect("unpublish");
    fw.remove_network(BRIDGE).expect("remove network");
    assert_clean(&fw);
    let before = secret.hits();
    assert!(
        blocked(c.netns(), "127.0.0.1:2222"),
        "after the network went"
    );
    assert!(udp_blocked(c.netns(), "127.0.0.1:2223"));
    assert_eq!(secret.hits(), before);
}

fn assert_clean(fw: &Firewall) {
    let d = fw.check_drift().expect("check drift");
    assert!(d.is_clean(), "unexpected drift:\n{d}");
}

both_backends!(loopback_stays_local);

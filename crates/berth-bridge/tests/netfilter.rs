//! icc=false isolates even when the host namespace had `net.bridge.bridge-nf-call-iptables` at
//! 0, as root in throwaway namespaces, proved with ping and TCP between two sandboxes: a driver
//! with a firewall sets the sysctl to 1 when it creates a network, so bridged traffic reaches
//! the forward rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_bridge::{BRIDGE_NF_CALL_IPTABLES, BridgeDefaults, BridgeDriver, ENABLE_ICC};
use berth_firewall::{Backend, Firewall, FirewallConfig};
use berth_testhost::TestHost;
use berth_testhost::traffic::{TcpBanner, tcp_fetch};
use common::*;

/// `sysctl -n KEY` inside the test host, read with procps, not with berth.
fn sysctl(host: &TestHost, key: &str) -> String {
    host.run("sysctl", &["-n", key])
        .expect("sysctl -n")
        .trim()
        .to_owned()
}

/// Whether `from` gets the banner of a TCP server on `addr` port 7000 inside `to`.
fn tcp_reaches(from: &TestHost, to: &TestHost, addr: &str) -> bool {
    let target: SocketAddr = format!("{addr}:7000").parse().unwrap();
    let _server = TcpBanner::start(to.netns(), target, "hello").unwrap();
    tcp_fetch(from.netns(), target, Duration::from_millis(800))
        .is_ok_and(|answer| answer.starts_with("hello"))
}

#[test]
fn icc_off_isolates_when_the_host_had_bridge_netfilter_off() {
    let host = host();
    host.run("sysctl", &["-w", &format!("{BRIDGE_NF_CALL_IPTABLES}=0")])
        .unwrap();
    assert_eq!(sysctl(&host, BRIDGE_NF_CALL_IPTABLES), "0");
    let firewall =
        Arc::new(Firewall::new(host.netns(), FirewallConfig::new(Backend::Iptables)).unwrap());
    let driver =
        BridgeDriver::new(host.netns(), Some(firewall), BridgeDefaults::default()).unwrap();

    let isolated = network(0x51, 51);
    create(&driver, &isolated, &[(ENABLE_ICC, "false")]);
    assert_eq!(sysctl(&host, BRIDGE_NF_CALL_IPTABLES), "1");
    let (a, ep_a) = join(&driver, &isolated, 1);
    let (b, ep_b) = join(&driver, &isolated, 2);
    // Both reach the host through their gateway: the pair and the bridge work.
    assert!(berth_testhost::ping_in(a.netns(), &gateway_of(&isolated)));
    assert!(berth_testhost::ping_in(b.netns(), &gateway_of(&isolated)));
    // But not each other.
    assert!(
        !a.ping(&addr_of(&isolated, 2)),
        "ping crossed an icc=false bridge"
    );
    assert!(
        !b.ping(&addr_of(&isolated, 1)),
        "ping crossed an icc=false bridge"
    );
    assert!(
        !tcp_reaches(&a, &b, &addr_of(&isolated, 2)),
        "TCP crossed an icc=false bridge"
    );

    // With icc on, neighbours do reach each other through the same firewall.
    let open = network(0x52, 52);
    create(&driver, &open, &[]);
    let (c, ep_c) = join(&driver, &open, 3);
    let (d, ep_d) = join(&driver, &open, 4);
    assert!(c.ping(&addr_of(&open, 4)));
    assert!(tcp_reaches(&c, &d, &addr_of(&open, 4)));

    tear_down(&driver, &isolated, &[&ep_a, &ep_b]);
    tear_down(&driver, &open, &[&ep_c, &ep_d]);
}

//! `berth daemon` repairs its firewall rules while running, and `berth firewall reconcile`
//! repairs on demand, as root on test hosts: a published port from a LAN peer, its DNAT chain
//! flushed from outside.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use berth_testhost::LanPeer;
use berth_testhost::traffic::{TcpBanner, tcp_fetch};
use common::*;

fn published(f: &Fixture) -> (LanPeer, TcpBanner) {
    let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    f.ok(&["network", "create", "n"]);
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "web",
        "--network",
        "n",
        "-p",
        "8080:80",
    ]);
    let banner =
        TcpBanner::start(&f.sandbox_ns("web"), "0.0.0.0:80".parse().unwrap(), "web").unwrap();
    assert!(fetch(&peer).is_ok(), "published");
    (peer, banner)
}

fn fetch(peer: &LanPeer) -> std::io::Result<String> {
    let to: SocketAddr = "192.0.2.1:8080".parse().unwrap();
    tcp_fetch(peer.netns(), to, Duration::from_millis(300))
}

#[test]
fn the_daemon_repairs_a_flushed_chain_and_names_the_tool() {
    let f = Fixture::new();
    let (peer, _b) = published(&f);
    f.host
        .run("iptables", &["-t", "nat", "-F", "BERTH-DNAT"])
        .unwrap();
    let flushed = Instant::now();
    while fetch(&peer).is_err() {
        assert!(
            flushed.elapsed() < Duration::from_secs(2),
            "not repaired: {}",
            f.log()
        );
    }
    eprintln!(
        "the port works again {:?} after the flush",
        flushed.elapsed()
    );
    let log = f.log();
    let repair = log
        .lines()
        .find(|l| l.contains("repaired berth's firewall rules"))
        .unwrap_or_else(|| panic!("no repair logged: {log}"));
    assert!(
        repair.contains("iptables") && repair.contains("BERTH-DNAT"),
        "{repair}"
    );
    assert_eq!(
        f.ok(&["firewall", "reconcile"]),
        "no drift: berth's rules are as they must be\n"
    );
}

#[test]
fn reconcile_on_demand_prints_what_it_found_and_fixes_it() {
    let f = Fixture::with_args(&["--firewall-heal=false"]);
    let (peer, _b) = published(&f);
    f.host
        .run("iptables", &["-t", "nat", "-F", "BERTH-DNAT"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(fetch(&peer).is_err(), "no healing: the port stays broken");
    let out = f.ok(&["firewall", "reconcile"]);
    assert!(out.contains("missing: IPv4 nat BERTH-DNAT: "), "{out}");
    assert!(out.ends_with("repaired\n"), "{out}");
    assert!(fetch(&peer).is_ok(), "repaired");
}

//! `Config::trust_kernel`: a start after a clean stop on the same boot and host namespace skips
//! the firewall's probes and its start reconcile, and takes joins and default routes from
//! memory (what a CNI plugin's short calls need); any other start reconciles and joins. Proven
//! with drift made while the controller is down: a trusted start leaves it (traffic stays
//! broken until `reconcile_firewall`, or the next untrusted start for interfaces and routes),
//! an untrusted one repairs it.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use berth::NetworkCreate;
use berth_testhost::traffic::{TcpBanner, tcp_fetch};
use common::Fixture;

const TIMEOUT: Duration = Duration::from_secs(2);

fn trusting(f: &mut Fixture, trust: bool) {
    f.restart_with(|c| c.trust_kernel = trust);
}

#[test]
fn a_trusted_start_skips_the_reconcile_and_others_do_not() {
    let mut f = Fixture::with(|c| c.trust_kernel = true);
    let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    f.ctl()
        .create_network(NetworkCreate::new("web_nw"))
        .unwrap();
    let ip = f.publish("web", "web_nw", &["18100:80/tcp"]);
    let addr: SocketAddr = format!("{ip}:80").parse().unwrap();
    let _web = TcpBanner::start(&f.sandbox_ns("web"), addr, "web").unwrap();
    let front: SocketAddr = "192.0.2.1:18100".parse().unwrap();
    let fetch = || tcp_fetch(peer.netns(), front, TIMEOUT).unwrap_or_else(|e| e.to_string());
    assert!(fetch().starts_with("web "));
    let marker = f.dir.path().join("run").join("firewall-trust.json");
    let drift = |f: &Fixture| {
        f.host
            .run("iptables", &["-t", "nat", "-F", "BERTH-DNAT"])
            .unwrap();
    };

    // A clean stop leaves the marker; the next start takes it and trusts the kernel: the
    // drift made meanwhile stays, until a reconcile on demand repairs it.
    assert!(!marker.exists(), "no marker while a controller runs");
    f.stop();
    assert!(marker.exists(), "a clean stop leaves the marker");
    drift(&f);
    trusting(&mut f, true);
    assert!(!marker.exists(), "the start took it");
    assert!(
        !fetch().starts_with("web "),
        "trusted: no reconcile at start"
    );
    let report = f.ctl().reconcile_firewall().unwrap();
    assert!(!report.is_clean(), "the drift was there: {report}");
    assert!(fetch().starts_with("web "));
    // Changes after a trusted start are applied at once.
    let ip2 = f.publish("web2", "web_nw", &["18101:80/tcp"]);
    let _web2 = TcpBanner::start(
        &f.sandbox_ns("web2"),
        format!("{ip2}:80").parse().unwrap(),
        "web2",
    )
    .unwrap();
    let front2: SocketAddr = "192.0.2.1:18101".parse().unwrap();
    let got = tcp_fetch(peer.netns(), front2, TIMEOUT).unwrap_or_else(|e| e.to_string());
    assert!(got.starts_with("web2 "), "{got}");

    // A marker that is not this boot's and namespace's (here: unreadable) is not trusted.
    f.stop();
    drift(&f);
    std::fs::write(&marker, "{not json").unwrap();
    trusting(&mut f, true);
    assert!(fetch().starts_with("web "), "reconciled at start");
    assert!(!marker.exists());

    // A start that does not trust still takes the marker away (it may change the kernel).
    f.stop();
    assert!(marker.exists());
    trusting(&mut f, false);
    assert!(!marker.exists());
    f.stop();
    assert!(!marker.exists(), "only trust_kernel leaves one");

    // Nor does a teardown: the next start must build the rules again.
    trusting(&mut f, true);
    f.ctl.take().unwrap().teardown().unwrap();
    assert!(!marker.exists(), "a teardown leaves no marker");
}

/// `ip ...` in a namespace; its output.
fn ip_in(ns: &berth::Netns, args: &[&str]) -> String {
    let out = ns.command("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_trusted_start_takes_joins_and_routes_from_memory_and_others_converge() {
    let mut f = Fixture::with(|c| c.trust_kernel = true);
    f.ctl().create_network(NetworkCreate::new("n")).unwrap();
    let a = f.sandbox_on("a", "n");
    let b = f.sandbox_on("b", "n");
    assert!(f.ping("b", &a));
    let (ns_a, ns_b) = (f.sandbox_ns("a"), f.sandbox_ns("b"));
    assert!(ip_in(&ns_a, &["route", "show", "default"]).contains("via"));

    // Drift made while berth is down: b's interface (the pair goes with it) and a's default
    // route. A join or a route update at start would repair both.
    f.stop();
    ip_in(&ns_b, &["link", "del", "eth0"]);
    ip_in(&ns_a, &["route", "del", "default"]);

    // Trusted: the restore asks the bridge driver for joins from memory and takes routes as
    // they were left, so the drift stays (the trade `trust_kernel` makes for short calls)...
    trusting(&mut f, true);
    assert!(
        !ip_in(&ns_b, &["-o", "link"]).contains("eth0"),
        "no join at start"
    );
    assert_eq!(ip_in(&ns_a, &["route", "show", "default"]).trim(), "");
    assert!(!f.ping("a", &b));
    // ...while everything after the start works with the kernel: a new sandbox joins.
    let c = f.sandbox_on("c", "n");
    assert!(f.ping("c", &a));

    // Not trusted (no marker after a start that trusted nothing, or trust off): every endpoint
    // is joined again and every route set, and the drift is repaired.
    trusting(&mut f, false);
    assert!(
        ip_in(&ns_b, &["-o", "link"]).contains("eth0"),
        "joined again"
    );
    assert!(ip_in(&ns_a, &["route", "show", "default"]).contains("via"));
    assert!(f.ping("a", &b));
    assert!(f.ping("b", &c));
}

#[test]
fn a_marker_that_cannot_be_left_makes_the_next_start_reconcile() {
    let mut f = Fixture::with(|c| c.trust_kernel = true);
    let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    f.ctl().create_network(NetworkCreate::new("n")).unwrap();
    let ip = f.publish("web", "n", &["18102:80/tcp"]);
    let _web = TcpBanner::start(
        &f.sandbox_ns("web"),
        format!("{ip}:80").parse().unwrap(),
        "web",
    )
    .unwrap();
    let front: SocketAddr = "192.0.2.1:18102".parse().unwrap();
    let fetch = || tcp_fetch(peer.netns(), front, TIMEOUT).unwrap_or_else(|e| e.to_string());
    assert!(fetch().starts_with("web "));

    // The marker's place is taken (a directory: the rename onto it fails). The stop says so in
    // its log, leaves no temporary file, and does not panic.
    let run = f.dir.path().join("run");
    std::fs::create_dir(run.join("firewall-trust.json")).unwrap();
    f.stop();
    let leftovers: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".firewall-trust"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // No marker to trust: the start reconciles, and the drift made meanwhile is repaired.
    f.host
        .run("iptables", &["-t", "nat", "-F", "BERTH-DNAT"])
        .unwrap();
    assert!(!fetch().starts_with("web "));
    trusting(&mut f, true);
    assert!(fetch().starts_with("web "), "reconciled at start");
}

//! Kernel tests of the userland proxy's limits (hardening issue #14): the cap on TCP connections
//! and on UDP flows per published port, idle timeouts, and the proxy coming back with a restored
//! mapping after a restart. Real namespaces, real TCP and UDP between an IPv6 client and an
//! IPv4-only container, relayed by the proxy in the host namespace (no firewall: nothing else
//! could carry the traffic). Run as root; every namespace is a throwaway one, deleted on panic.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use berth_portmap::ProxyLimits;
use berth_testhost::traffic::{TcpBanner, UdpEcho, tcp_fetch, udp_exchange};
use common::{
    CONTAINER_V4, HOST_V4, OWNER, TIMEOUT, TcpEcho, UdpWho, World, capture_logs, closed_by_peer,
    echo, eventually, logs_with, published, refused, sa, udp_ask,
};

/// With a cap of 2, the third concurrent connection is closed at once while the first two
/// keep carrying data; once one of them ends, a new connection is relayed again. The refusals
/// are logged once, not per connection.
#[test]
fn tcp_connections_beyond_the_cap_are_refused_and_the_others_go_on() {
    capture_logs();
    let w = World::new();
    let mut limits = ProxyLimits::default();
    limits.max_tcp_connections = 2;
    let mapper = w.mapper(limits);
    w.publish(&mapper, &["[::]:8101:80"]);
    let server = TcpEcho::start(&w.container, 80);

    let mut first = w.connect(8101);
    let mut second = w.connect(8101);
    assert_eq!(echo(&mut first, "one").unwrap(), "one");
    assert_eq!(echo(&mut second, "two").unwrap(), "two");
    assert_eq!(server.accepted(), 2);

    for i in 0..4 {
        let t0 = Instant::now();
        assert!(
            refused(&w, 8101),
            "connection {} beyond the cap of 2 is closed by the proxy",
            i + 3
        );
        assert!(t0.elapsed() < TIMEOUT, "closed at once, not left hanging");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        server.accepted(),
        2,
        "no connection beyond the cap reached the container"
    );
    assert_eq!(echo(&mut first, "still one").unwrap(), "still one");
    assert_eq!(echo(&mut second, "still two").unwrap(), "still two");

    drop(first);
    assert!(
        eventually(TIMEOUT, || {
            w.try_connect(8101)
                .and_then(|mut again| echo(&mut again, "three"))
                .is_ok_and(|e| e == "three")
        }),
        "a slot freed by a closed connection is used again"
    );
    assert_eq!(echo(&mut second, "two again").unwrap(), "two again");
    let warned = logs_with(&["WARN", "connection limit reached", "[::]:8101"]);
    assert_eq!(warned.len(), 1, "one warning per log interval: {warned:?}");
}

/// With a cap of one flow and a short idle timeout: a second client is dropped while the first
/// one's flow is in use (also past the timeout, as long as datagrams flow); once the first
/// client falls silent for longer than the timeout, its flow is gone and the second client's
/// datagrams are relayed.
#[test]
fn udp_flows_are_capped_and_idle_flows_expire() {
    capture_logs();
    let w = World::new();
    let mut limits = ProxyLimits::default();
    limits.max_udp_flows = 1;
    limits.udp_idle_timeout = Duration::from_millis(600);
    let mapper = w.mapper(limits);
    w.publish(&mapper, &["[::]:5301:53/udp"]);
    let _server = UdpWho::start(&w.container, 53);
    let (a, b) = (w.udp_client(), w.udp_client());

    let first = udp_ask(&a, 5301, "a").expect("the first flow is relayed");
    assert!(first.starts_with(&format!("a from {HOST_V4}:")), "{first}");
    assert_eq!(
        udp_ask(&b, 5301, "b"),
        None,
        "a second flow is over the cap"
    );

    // Active for three timeouts: the flow stays (same upstream socket), the cap holds.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(1800) {
        std::thread::sleep(Duration::from_millis(150));
        let again = udp_ask(&a, 5301, "a").expect("an active flow stays");
        assert_eq!(
            again, first,
            "the same upstream socket carries an active flow"
        );
    }
    assert_eq!(udp_ask(&b, 5301, "b"), None, "still over the cap");

    // Silent past the timeout: gone; the second client gets the slot.
    std::thread::sleep(Duration::from_millis(1200));
    let got = udp_ask(&b, 5301, "b").expect("a new flow works once the idle one expired");
    assert!(got.starts_with(&format!("b from {HOST_V4}:")), "{got}");
    assert_eq!(
        udp_ask(&a, 5301, "a"),
        None,
        "the first client's flow is gone: it is a new flow now, over the cap"
    );
    let warned = logs_with(&["WARN", "UDP flow limit reached", "[::]:5301"]);
    assert_eq!(
        warned.len(),
        1,
        "drops are logged once per log interval: {warned:?}"
    );
}

/// With a TCP idle timeout, a connection without data for longer is closed; one that keeps
/// talking stays.
#[test]
fn idle_tcp_connections_are_closed_when_asked() {
    let w = World::new();
    let mut limits = ProxyLimits::default();
    limits.tcp_idle_timeout = Some(Duration::from_millis(500));
    let mapper = w.mapper(limits);
    w.publish(&mapper, &["[::]:8102:80"]);
    let _server = TcpEcho::start(&w.container, 80);

    let mut quiet = w.connect(8102);
    let mut busy = w.connect(8102);
    assert_eq!(echo(&mut quiet, "q").unwrap(), "q");
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(1500) {
        assert_eq!(
            echo(&mut busy, "b").unwrap(),
            "b",
            "a busy connection stays"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(closed_by_peer(&mut quiet), "the idle connection was closed");
    assert_eq!(echo(&mut busy, "b").unwrap(), "b");
}

/// Without a TCP idle timeout (the default), a quiet connection stays open.
#[test]
fn idle_tcp_connections_stay_by_default() {
    let w = World::new();
    let mapper = w.mapper(ProxyLimits::default());
    w.publish(&mapper, &["[::]:8103:80"]);
    let _server = TcpEcho::start(&w.container, 80);
    let mut quiet = w.connect(8103);
    assert_eq!(echo(&mut quiet, "q").unwrap(), "q");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(echo(&mut quiet, "q").unwrap(), "q");
}

/// Ports served by the userland proxy come back with the proxy: a mapper publishes through the
/// proxy, goes away (a restart), a new mapper restores the bindings, and real traffic flows
/// again on TCP and UDP; unmapping then lets the ports go.
#[test]
fn restored_proxied_ports_are_served_again() {
    let w = World::new();
    let _tcp =
        TcpBanner::start(w.container.netns(), sa(&format!("{CONTAINER_V4}:80")), "v4").unwrap();
    let _udp =
        UdpEcho::start(w.container.netns(), sa(&format!("{CONTAINER_V4}:53")), "u4").unwrap();
    let bindings = {
        let before = w.mapper(ProxyLimits::default());
        w.publish(&before, &["[::]:8104:80", "[::]:5304:53/udp"]);
        let got = tcp_fetch(w.client.netns(), published(8104), TIMEOUT).unwrap();
        assert_eq!(got, format!("v4 from {HOST_V4}"));
        let got = udp_exchange(w.client.netns(), published(5304), TIMEOUT).unwrap();
        assert_eq!(got, format!("u4 from {HOST_V4}"));
        before.bindings(OWNER)
    };
    assert_eq!(bindings.len(), 2, "{bindings:?}");
    assert!(
        tcp_fetch(
            w.client.netns(),
            published(8104),
            Duration::from_millis(500)
        )
        .is_err(),
        "nothing serves the port while berth is down"
    );

    let after = w.mapper(ProxyLimits::default());
    after
        .restore(OWNER, &bindings, Some(CONTAINER_V4), None, "none")
        .expect("restoring the proxied bindings");
    let got = tcp_fetch(w.client.netns(), published(8104), TIMEOUT)
        .expect("the restored TCP port is relayed again");
    assert_eq!(got, format!("v4 from {HOST_V4}"));
    let got = udp_exchange(w.client.netns(), published(5304), TIMEOUT)
        .expect("the restored UDP port is relayed again");
    assert_eq!(got, format!("u4 from {HOST_V4}"));
    assert_eq!(after.bindings(OWNER), bindings);

    after.unmap(OWNER).unwrap();
    assert!(
        tcp_fetch(
            w.client.netns(),
            published(8104),
            Duration::from_millis(500)
        )
        .is_err()
    );
    let free = w
        .host
        .exec(|| std::net::TcpListener::bind("[::]:8104"))
        .unwrap();
    assert!(free.is_ok(), "the proxy let go of the port: {free:?}");
}

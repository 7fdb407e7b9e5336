//! Kernel tests of the test harness itself: hosts and peers are isolated, wired and cleaned up.

use std::path::Path;
use std::time::Duration;

use berth_testhost::TestHost;
use berth_testhost::traffic::{TcpBanner, UdpEcho, tcp_fetch, udp_exchange};

#[test]
fn host_is_fresh_and_deleted_on_drop() {
    let host = TestHost::new().expect("test host (run as root)");
    let path = host.path();
    assert!(path.exists());
    let links = host.ip(&["-o", "link", "show"]).unwrap();
    assert_eq!(links.lines().count(), 1, "only loopback: {links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    let own = berth_testhost::berth_netlink::Netns::current().unwrap();
    assert!(!host.netns().same_as(&own).unwrap());
    drop(host);
    assert!(!Path::new(&path).exists());
}

#[test]
fn lan_peer_carries_tcp_udp_and_icmp() {
    let host = TestHost::new().unwrap();
    let peer = host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    assert!(peer.ping("192.0.2.1"));
    assert!(host.ping("192.0.2.2"));
    assert!(
        !host.ping("192.0.2.3"),
        "nobody answers for an unused address"
    );

    let server = TcpBanner::start(host.netns(), "192.0.2.1:0".parse().unwrap(), "hello").unwrap();
    let got = tcp_fetch(peer.netns(), server.addr(), Duration::from_secs(2)).unwrap();
    assert_eq!(got, "hello from 192.0.2.2");

    let echo = UdpEcho::start(peer.netns(), "192.0.2.2:0".parse().unwrap(), "udp").unwrap();
    let got = udp_exchange(host.netns(), echo.addr(), Duration::from_secs(2)).unwrap();
    assert_eq!(got, "udp from 192.0.2.1");
}

#[test]
fn peer_is_removed_with_panicking_test() {
    let mut names = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let host = TestHost::new().unwrap();
        let peer = host
            .add_lan_peer("198.51.100.1/24", "198.51.100.2/24")
            .unwrap();
        names.push(host.path());
        names.push(peer.path());
        panic!("the test fails here");
    }));
    assert!(result.is_err());
    assert_eq!(names.len(), 2);
    for n in names {
        assert!(!n.exists(), "{} left behind", n.display());
    }
}

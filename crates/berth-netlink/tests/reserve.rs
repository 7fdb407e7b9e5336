//! Held host ports: bound inside the namespace, refused to others while held, free after drop.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener, UdpSocket};

use berth_netlink::{Error, Protocol, hold_ports};
use berth_testhost::TestHost;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn held_ports_block_others_until_dropped() {
    let host = TestHost::new().unwrap();
    let ns = host.netns();
    let held = hold_ports(
        ns,
        &[
            (Protocol::Tcp, sa("0.0.0.0:8080")),
            (Protocol::Tcp, sa("[::]:8080")),
            (Protocol::Udp, sa("0.0.0.0:5353")),
        ],
    )
    .unwrap();
    assert_eq!(held.len(), 3);
    assert!(
        host.exec(|| TcpListener::bind("0.0.0.0:8080"))
            .unwrap()
            .is_err()
    );
    assert!(
        host.exec(|| TcpListener::bind("[::]:8080"))
            .unwrap()
            .is_err()
    );
    assert!(
        host.exec(|| UdpSocket::bind("0.0.0.0:5353"))
            .unwrap()
            .is_err()
    );
    // Held in that namespace only: the same port is free in another one.
    let other = TestHost::new().unwrap();
    assert!(
        other
            .exec(|| TcpListener::bind("0.0.0.0:8080"))
            .unwrap()
            .is_ok()
    );

    // All or nothing: the second request fails on 8080 and releases 9090, which it had bound.
    let err = hold_ports(
        ns,
        &[
            (Protocol::Tcp, sa("0.0.0.0:9090")),
            (Protocol::Tcp, sa("0.0.0.0:8080")),
        ],
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Kernel { errno, object, .. } if *errno == libc::EADDRINUSE && object.contains("0.0.0.0:8080")),
        "{err}"
    );
    assert!(
        host.exec(|| TcpListener::bind("0.0.0.0:9090"))
            .unwrap()
            .is_ok()
    );

    drop(held);
    assert!(
        host.exec(|| TcpListener::bind("0.0.0.0:8080"))
            .unwrap()
            .is_ok()
    );
    assert!(
        host.exec(|| UdpSocket::bind("0.0.0.0:5353"))
            .unwrap()
            .is_ok()
    );
}

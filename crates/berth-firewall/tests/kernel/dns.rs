//! The embedded DNS server's redirect in a sandbox namespace.

use berth_firewall::Backend;

use crate::common::*;

/// The embedded DNS redirect in a sandbox namespace: UDP and TCP to 127.0.0.11:53 reach the
/// resolver's real ports; applying twice changes nothing.
fn dns_redirect(backend: Backend) {
    use berth_firewall::dns::{DnsRedirect, apply_dns_redirect};
    use std::net::UdpSocket;
    use std::time::Duration;
    let sandbox = berth_testhost::TestHost::new().expect("sandbox namespace");
    let _udp = serve_udp(sandbox.netns(), "127.0.0.11:54373", "dns-udp");
    let _tcp = serve(sandbox.netns(), "127.0.0.11:42709", "dns-tcp");
    let cfg = config(backend);
    let redirect = DnsRedirect::new(54373, 42709).expect("ports");
    apply_dns_redirect(sandbox.netns(), &cfg, &redirect).expect("dns redirect");
    let first = sandbox
        .run("iptables-save", &["-t", "nat"])
        .unwrap_or_default()
        + &sandbox.run("nft", &["list", "ruleset"]).unwrap_or_default();
    apply_dns_redirect(sandbox.netns(), &cfg, &redirect).expect("dns redirect again");
    let second = sandbox
        .run("iptables-save", &["-t", "nat"])
        .unwrap_or_default()
        + &sandbox.run("nft", &["list", "ruleset"]).unwrap_or_default();
    assert_eq!(strip(&first), strip(&second), "idempotent");

    // A connected socket only accepts the answer from 127.0.0.11:53.
    let answer = sandbox
        .exec(|| -> std::io::Result<String> {
            let s = UdpSocket::bind("127.0.0.1:0")?;
            s.connect("127.0.0.11:53")?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.send(b"query")?;
            let mut buf = [0u8; 256];
            let n = s.recv(&mut buf)?;
            Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
        })
        .expect("namespace thread")
        .expect("udp answer from 127.0.0.11:53");
    assert!(answer.starts_with("dns-udp from 127.0.0."), "{answer}");
    assert!(fetch(sandbox.netns(), "127.0.0.11:53").starts_with("dns-tcp from 127.0.0."));
}

crate::both_backends!(dns_redirect);

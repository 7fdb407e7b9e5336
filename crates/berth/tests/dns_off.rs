//! `Config::embedded_dns`: switched off (an engine with its own resolver) and configured. One
//! test in its own binary, because it counts the process's DNS threads.
#![allow(clippy::unwrap_used)]

mod common;

use berth::{NetworkCreate, ResolverConfig};
use common::Fixture;

/// The threads of this process whose name starts with `berth-dns`.
fn dns_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|name| name.starts_with("berth-dns"))
        .count()
}

#[test]
fn embedded_dns_off_and_configured() {
    // Off: no threads, no redirect, upstream servers straight in resolv.conf, no names.
    let before = dns_threads();
    let f = Fixture::with(|c| {
        c.embedded_dns = None;
        c.dns = vec!["192.0.2.53".parse().unwrap()];
    });
    assert_eq!(dns_threads(), before, "no DNS threads when switched off");
    f.ctl().create_network(NetworkCreate::new("nw")).unwrap();
    f.sandbox_on("a", "nw");
    f.sandbox_on("b", "nw");
    let insp = f.ctl().inspect_sandbox("a").unwrap();
    let resolv = std::fs::read_to_string(insp.resolv_conf_path.unwrap()).unwrap();
    assert!(!resolv.contains("127.0.0.11"), "{resolv}");
    assert!(resolv.contains("nameserver 192.0.2.53"), "{resolv}");
    let tables = f
        .sandbox_ns("a")
        .command("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    let tables = String::from_utf8_lossy(&tables.stdout).into_owned();
    assert!(!tables.contains("berth-resolver"), "no redirect: {tables}");
    let ip_b = f.ip_of("b", "nw");
    let answer = f.dig("a", "b");
    assert!(
        !answer.contains(&ip_b),
        "no names without the server: {answer}"
    );
    // Traffic is unaffected.
    assert!(f.ping("a", &ip_b), "a pings b with DNS off");
    drop(f);

    // Configured: one worker thread (plus the socket thread), and names resolve.
    let mut dns = ResolverConfig::default();
    dns.worker_threads = 1;
    let f = Fixture::with(|c| c.embedded_dns = Some(dns));
    assert_eq!(
        dns_threads(),
        before + 2,
        "one worker and the socket thread"
    );
    f.ctl().create_network(NetworkCreate::new("nw")).unwrap();
    f.sandbox_on("a", "nw");
    f.sandbox_on("b", "nw");
    assert_eq!(f.dig("a", "b"), f.ip_of("b", "nw"));
}

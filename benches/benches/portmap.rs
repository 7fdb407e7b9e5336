//! Port publishing benchmarks, as root, in a throwaway test host (both firewall backends, held
//! host sockets, one firewall transaction per change).
//!
//! - `portmap/publish_range_1000`: publish `9000-9999:9000-9999` for one container (1000 host
//!   sockets on 0.0.0.0 and 1000 on [::] held, one DNAT rule). Budget: 50 ms (Docker 20.10: 45.5 s
//!   and 2002 docker-proxy processes; netavark 2.1: 0.10 s).
//! - `portmap/unpublish_range_1000`: remove it. Budget: 50 ms (Docker: 70.9 s; netavark: 0.25 s).
//! - `portmap/one_more_after_10000`: with 10,000 single ports already published, publish one more
//!   and remove it (timed: the publish). Budget: 5 ms.
//!
//! The resident memory the process gains for one published 1000-port range is printed (budget:
//! 2 MiB).
//!
//! Run with `cargo bench -p berth-benches --bench portmap`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_firewall::{Backend, Firewall, FirewallConfig, NetworkRules};
use berth_portmap::{MapRequest, PortMapper, PortSpec};
use berth_testhost::TestHost;
use criterion::{Criterion, criterion_group, criterion_main};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn request<'a>(specs: &'a [PortSpec], ipv6: bool) -> MapRequest<'a> {
    MapRequest {
        specs,
        container_v4: Some("172.18.0.2".parse().unwrap()),
        container_v6: None,
        bridge: "br-bench",
        default_host_ip: "0.0.0.0".parse().unwrap(),
        ipv6,
    }
}

fn portmap(c: &mut Criterion) {
    // `portmap-iptables-tool`: every rule change through `iptables-restore` (no netlink
    // appends), the baseline measured in the same run.
    for (name, backend) in [
        ("portmap-iptables", Backend::Iptables),
        ("portmap-iptables-tool", Backend::Iptables),
        ("portmap-nftables", Backend::Nftables),
    ] {
        bench_backend(c, name, backend);
    }
}

fn bench_backend(c: &mut Criterion, name: &str, backend: Backend) {
    let host = TestHost::new().expect("a test host (run the benches as root)");
    let mut config = FirewallConfig::new(backend);
    config.ipv6 = true;
    config.iptables_netlink = !name.ends_with("-tool");
    let fw = Arc::new(Firewall::new(host.netns(), config).unwrap());
    fw.add_network(NetworkRules::new(
        "br-bench",
        Some("172.18.0.0/16".parse().unwrap()),
        None,
    ))
    .unwrap();
    let mapper = PortMapper::new(host.netns(), Some(fw)).unwrap();
    let range: PortSpec = "9000-9999:9000-9999".parse().unwrap();

    // Memory: one publication of the range, measured once (after a warm-up round).
    mapper.map("warm", &request(&[range], true)).unwrap();
    mapper.unmap("warm").unwrap();
    let before = rss_kib();
    mapper.map("mem", &request(&[range], true)).unwrap();
    let after = rss_kib();
    mapper.unmap("mem").unwrap();
    eprintln!(
        "{name}/publish_range_1000: resident memory +{} KiB (budget 2048 KiB)",
        after.saturating_sub(before)
    );

    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(6));
    group.bench_function("publish_range_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                mapper.map("range", &request(&[range], true)).unwrap();
                total += start.elapsed();
                mapper.unmap("range").unwrap();
            }
            total
        })
    });
    group.bench_function("unpublish_range_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                mapper.map("range", &request(&[range], true)).unwrap();
                let start = Instant::now();
                mapper.unmap("range").unwrap();
                total += start.elapsed();
            }
            total
        })
    });

    // 10,000 single ports (10,000 rules), published in batches of 1000 single-port specs.
    for batch in 0..10u16 {
        let specs: Vec<PortSpec> = (0..1000u16)
            .map(|i| {
                let p = 20000 + batch * 1000 + i;
                format!("{p}:{p}").parse().unwrap()
            })
            .collect();
        mapper
            .map(&format!("bulk{batch}"), &request(&specs, false))
            .unwrap();
    }
    let one: PortSpec = "45000:80".parse().unwrap();
    group.bench_function("one_more_after_10000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                mapper.map("one", &request(&[one], true)).unwrap();
                total += start.elapsed();
                mapper.unmap("one").unwrap();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, portmap);
criterion_main!(benches);

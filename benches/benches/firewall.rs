//! berth-firewall benchmarks.
//!
//! Kernel benches (need root; each backend in its own throwaway test namespace, loaded with 1000
//! bridge networks and 10,000 published ports through one reconcile first):
//! - `firewall/<backend>/add_network`: one more network (budget: median at most 10 ms).
//! - `firewall/<backend>/add_port`: one more published port (budget: 10 ms).
//! - `firewall/<backend>/publish_range_1000`: `-p 9000-9999:9000-9999` in one operation (50 ms).
//! - `firewall/<backend>/unpublish_range_1000`: removing it again (50 ms).
//!
//! Only the named operation is timed; the inverse that keeps the ruleset steady runs outside the
//! timed part. Pure benches (no root): planning the same operations on the loaded state, and
//! rendering the whole loaded ruleset.
//!
//! Run with `cargo bench -p berth-benches --bench firewall` (as root).

use std::hint::black_box;
use std::time::{Duration, Instant};

use berth_benches::{PORTS_PER_NETWORK, extra_port, network, port};
use berth_firewall::{
    Backend, DesiredState, Firewall, FirewallConfig, NetworkRules, Planner, PortRange, PortRule,
    Protocol,
};
use berth_testhost::TestHost;
use criterion::{Criterion, criterion_group, criterion_main};

const NETWORKS: u32 = 1000;

fn loaded_state(config: &FirewallConfig) -> DesiredState {
    DesiredState::from_parts(
        config,
        (0..NETWORKS).map(network),
        (0..NETWORKS).flat_map(|k| (0..PORTS_PER_NETWORK).map(move |i| port(k, i))),
        [],
    )
    .expect("loaded state")
}

fn extra_network() -> NetworkRules {
    NetworkRules::new(
        "br-extra",
        Some("10.250.0.0/24".parse().expect("subnet")),
        None,
    )
}

fn range_port() -> PortRule {
    PortRule {
        proto: Protocol::Tcp,
        host_ip: None,
        host_ports: PortRange::new(9000, 9999).expect("range"),
        container_ip: "10.100.1.2".parse().expect("ip"),
        container_ports: PortRange::new(9000, 9999).expect("range"),
        bridge: network(1).bridge,
    }
}

fn config(backend: Backend) -> FirewallConfig {
    FirewallConfig::new(backend)
}

/// Times `op` only; `undo` runs untimed after each iteration.
fn timed(iters: u64, mut op: impl FnMut(), mut undo: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let t = Instant::now();
        op();
        total += t.elapsed();
        undo();
    }
    total
}

fn kernel(c: &mut Criterion) {
    // `iptables-tool`: the iptables backend with every change through `iptables-restore` (no
    // netlink appends), as a baseline measured in the same run.
    for (backend, name) in [
        (Backend::Iptables, "iptables"),
        (Backend::Iptables, "iptables-tool"),
        (Backend::Nftables, "nftables"),
    ] {
        let host = TestHost::new().expect("a test namespace (run the benchmark as root)");
        let mut cfg = config(backend);
        cfg.iptables_netlink = name != "iptables-tool";
        let started = Instant::now();
        let fw =
            Firewall::with_state(host.netns(), cfg.clone(), loaded_state(&cfg)).expect("firewall");
        fw.reconcile()
            .expect("loading 1000 networks and 10,000 ports");
        eprintln!(
            "firewall/{name}: loaded {NETWORKS} networks and {} ports in one reconcile: {:?}",
            NETWORKS * PORTS_PER_NETWORK,
            started.elapsed()
        );
        if backend == Backend::Iptables {
            eprintln!(
                "firewall/{name}: rules appended over netlink: {}",
                fw.iptables_over_netlink()
            );
        }
        let mut g = c.benchmark_group(format!("firewall/{name}"));
        g.sample_size(30)
            .measurement_time(Duration::from_secs(8))
            .warm_up_time(Duration::from_secs(1));
        g.bench_function("add_network", |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || fw.add_network(extra_network()).expect("add network"),
                    || {
                        fw.remove_network("br-extra").expect("remove network");
                    },
                )
            })
        });
        g.bench_function("add_port", |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || fw.add_ports(&[extra_port()]).expect("add port"),
                    || fw.remove_ports(&[extra_port()]).expect("remove port"),
                )
            })
        });
        g.bench_function("publish_range_1000", |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || fw.add_ports(&[range_port()]).expect("publish range"),
                    || fw.remove_ports(&[range_port()]).expect("unpublish range"),
                )
            })
        });
        g.bench_function("unpublish_range_1000", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    fw.add_ports(&[range_port()]).expect("publish range");
                    let t = Instant::now();
                    fw.remove_ports(&[range_port()]).expect("unpublish range");
                    total += t.elapsed();
                }
                total
            })
        });
        g.finish();
        let drift = fw.check_drift().expect("drift");
        assert!(drift.is_clean(), "benchmarks left drift: {drift}");
    }
}

fn planning(c: &mut Criterion) {
    for backend in [Backend::Iptables, Backend::Nftables] {
        let cfg = config(backend);
        let planner = Planner::new(cfg.clone()).expect("planner");
        let state = loaded_state(&cfg);
        let name = format!("{backend:?}").to_lowercase();
        let mut g = c.benchmark_group(format!("firewall_plan/{name}"));
        g.bench_function("add_network", |b| {
            b.iter(|| black_box(planner.add_network(&state, &extra_network()).expect("plan")))
        });
        g.bench_function("add_port", |b| {
            b.iter(|| black_box(planner.add_ports(&state, &[extra_port()]).expect("plan")))
        });
        g.bench_function("publish_range_1000", |b| {
            b.iter(|| black_box(planner.add_ports(&state, &[range_port()]).expect("plan")))
        });
        g.sample_size(10);
        g.bench_function("full_ruleset", |b| {
            b.iter(|| black_box(planner.full(&state).expect("render")))
        });
        g.finish();
    }
}

criterion_group!(benches, planning, kernel);
criterion_main!(benches);

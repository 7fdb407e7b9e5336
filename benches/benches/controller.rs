//! Controller benchmarks, as root, inside a throwaway test host (iptables backend).
//!
//! - `controller/create_network`: create a bridge network (bridge, gateway, rules, state written),
//!   removed again outside the timing. Budget: median 5 ms (Docker: 67 ms here).
//! - `controller/connect/after_10` and `controller/connect/after_1000`: connect a new sandbox to a
//!   bridge network (veth, addresses, default route, state written twice) when 10, then 1000,
//!   sandboxes are already connected (spread over 4 networks: a Linux bridge takes at most 1024
//!   ports). The sandbox is created before and removed after the timed connect. Budgets: median
//!   5 ms, and `after_1000` at most 1.2 times `after_10` (Docker's `network connect`: 38 ms).
//! - `controller/restart_1000`: a new controller on the state of 1000 connected sandboxes, until
//!   it is fully reconciled (every network, endpoint, route and rule checked or restored).
//!   Budget: 1 s.
//!
//! Run with `cargo bench -p berth-benches --bench controller`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use berth::{
    Config, Controller, EndpointOptions, FirewallBackend, IpamPoolConfig, NetworkCreate,
    SandboxCreate,
};
use berth_testhost::TestHost;
use berth_testhost::berth_netlink::Netns;
use criterion::{Criterion, criterion_group, criterion_main};

struct Bed {
    ctl: Option<Controller>,
    config: Config,
    _host: TestHost,
    dir: tempfile::TempDir,
    next: usize,
}

impl Bed {
    fn new() -> Bed {
        let host = TestHost::new().expect("a test host (run the benches as root)");
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path().join("data"), dir.path().join("run"));
        config.host_netns = Some(host.path());
        config.firewall = Some(FirewallBackend::Iptables);
        let ctl = Controller::new(config.clone()).unwrap();
        for i in 0..4 {
            ctl.create_network(NetworkCreate::new(format!("n{i}")).subnet(IpamPoolConfig {
                subnet: Some(format!("10.{}.0.0/16", 100 + i).parse().unwrap()),
                ..Default::default()
            }))
            .unwrap();
        }
        Bed {
            ctl: Some(ctl),
            config,
            _host: host,
            dir,
            next: 0,
        }
    }

    fn ctl(&self) -> &Controller {
        self.ctl.as_ref().unwrap()
    }

    /// Connects sandboxes until `total` are connected, round robin over the 4 networks.
    fn fill(&mut self, total: usize) {
        while self.next < total {
            let name = format!("s{}", self.next);
            self.ctl()
                .create_sandbox(SandboxCreate::new(&name))
                .unwrap();
            self.ctl()
                .connect(
                    &name,
                    &format!("n{}", self.next % 4),
                    EndpointOptions::default(),
                )
                .unwrap();
            self.next += 1;
        }
    }

    /// Times `iters` connects of fresh sandboxes to network `n0`; setup and cleanup untimed.
    fn time_connects(&self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        for i in 0..iters {
            let name = format!("bench{i}");
            self.ctl()
                .create_sandbox(SandboxCreate::new(&name))
                .unwrap();
            let start = Instant::now();
            self.ctl()
                .connect(&name, "n0", EndpointOptions::default())
                .unwrap();
            total += start.elapsed();
            self.ctl().remove_sandbox(&name).unwrap();
        }
        total
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(ctl) = self.ctl.take() {
            for sb in ctl.sandboxes() {
                let _ = ctl.remove_sandbox(&sb.id);
            }
        }
        let dir = self.dir.path().join("run").join("netns");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let _ = Netns::delete_named_in(&dir, &e.file_name().to_string_lossy());
            }
        }
        let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn controller(c: &mut Criterion) {
    let mut group = c.benchmark_group("controller");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));

    let mut bed = Bed::new();
    group.bench_function("create_network", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let start = Instant::now();
                bed.ctl()
                    .create_network(NetworkCreate::new(format!("bench_net{i}")))
                    .unwrap();
                total += start.elapsed();
                bed.ctl().remove_network(&format!("bench_net{i}")).unwrap();
            }
            total
        })
    });

    bed.fill(10);
    group.bench_function("connect/after_10", |b| {
        b.iter_custom(|n| bed.time_connects(n))
    });
    bed.fill(1000);
    group.bench_function("connect/after_1000", |b| {
        b.iter_custom(|n| bed.time_connects(n))
    });

    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    group.bench_function("restart_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                bed.ctl = None;
                let start = Instant::now();
                bed.ctl = Some(Controller::new(bed.config.clone()).unwrap());
                total += start.elapsed();
            }
            assert_eq!(bed.ctl().sandboxes().len(), 1000);
            total
        })
    });
    group.finish();
}

criterion_group!(benches, controller);
criterion_main!(benches);

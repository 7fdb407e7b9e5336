//! Controller benchmarks, as root, inside a throwaway test host (iptables backend).
//!
//! - `controller/create_network`: create a bridge network (bridge, gateway, rules, state written),
//!   removed again outside the timing. Budget: median 5 ms (Docker: 67 ms here).
//! - `controller/connect/after_10` and `controller/connect/after_1000`: connect a new sandbox to a
//!   bridge network (veth, addresses, default route, embedded DNS server, state written twice)
//!   when 10, then 1000, sandboxes are already connected (spread over 4 networks: a Linux bridge
//!   takes at most 1024 ports). Connects go in rounds of 10 whose sandboxes are created before
//!   and removed after the round, untimed, so the count stays within 10 of the row's level; the
//!   next round starts once the kernel has finished tearing them down.
//!   Budgets: median 5 ms, and `after_1000` at most 1.2 times `after_10` (Docker's `network
//!   connect`: 38 ms).
//! - `controller/connect_churn/after_10` and `after_1000`: the same, but each sandbox is removed
//!   right after its connect, so the kernel's teardown of one (namespace cleanup, veth removal
//!   from a bridge of 250 ports) overlaps the next timed connect, as on a busy host.
//! - `controller/kernel_bridge_join/ports_3` and `ports_250`: the baseline for the ratio above,
//!   without berth: the kernel work of a join alone (a veth pair into a bridge by index with its
//!   peer created in a second namespace, the peer up, the host end up), by raw netlink, into a
//!   bridge of 3 and then of 250 ports, in rounds of 10 removed after each round. What the
//!   connect rows grow by beyond what these grow by is berth's.
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
use berth_benches::connect::{ROUND, time_connect_rounds};
use berth_testhost::TestHost;
use berth_testhost::berth_netlink::{Handle, LinkSpec, MacAddr, Netns, VethPeer};
use criterion::{Criterion, criterion_group, criterion_main};

struct Bed {
    ctl: Option<Controller>,
    config: Config,
    host: TestHost,
    /// The data root (the store); deleted on drop.
    _data: tempfile::TempDir,
    run: tempfile::TempDir,
    next: usize,
}

impl Bed {
    fn new() -> Bed {
        let host = TestHost::new().expect("a test host (run the benches as root)");
        let dir = tempfile::tempdir().unwrap();
        // The exec root (namespace mounts, hosts and resolv.conf files) on a tmpfs, as /run is
        // on a normal host (berth's default exec root is /run/berth); on this machine /run and
        // /tmp are on the disk, where each file write waits on the journal behind the store's
        // fsyncs. The store stays on the disk.
        let run = tempfile::tempdir_in("/dev/shm").unwrap();
        let mut config = Config::new(dir.path().join("data"), run.path().join("run"));
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
            host,
            _data: dir,
            run,
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

    /// Times `iters` connects of fresh sandboxes to network `n0`, in rounds (see
    /// [`berth_benches::connect`]).
    fn time_connects(&self, iters: u64) -> Duration {
        time_connect_rounds(self.ctl(), &self.host, "n0", iters)
    }

    /// Times `iters` connects of fresh sandboxes to network `n0`, each sandbox removed right
    /// after its connect (untimed), so teardown and the next connect overlap.
    fn time_connects_churn(&self, iters: u64) -> Duration {
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
        let dir = self.run.path().join("run").join("netns");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let _ = Netns::delete_named_in(&dir, &e.file_name().to_string_lossy());
            }
        }
        let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Two namespaces and a bridge in the first: raw kernel joins, for the baseline rows.
struct KernelBed {
    host_nl: Handle,
    sandbox_nl: Handle,
    sandbox: TestHost,
    _host: TestHost,
    bridge: u32,
    ports: usize,
}

impl KernelBed {
    const MAC: MacAddr = MacAddr([0x02, 0, 0, 0xbe, 0xe0, 0x01]);

    fn new() -> KernelBed {
        let host = TestHost::new().expect("a test host (run the benches as root)");
        let sandbox = TestHost::new().expect("a second test namespace");
        let host_nl = Handle::open(host.netns()).unwrap();
        let sandbox_nl = Handle::open(sandbox.netns()).unwrap();
        // As berth makes its bridges: an own MAC, which ports share, and no multicast snooping.
        host_nl
            .link_add(&LinkSpec::bridge("kbr").mac(Self::MAC).mcast_snooping(false))
            .unwrap();
        host_nl.link_set_up("kbr").unwrap();
        let bridge = host_nl.link("kbr").unwrap().index;
        KernelBed {
            host_nl,
            sandbox_nl,
            sandbox,
            _host: host,
            bridge,
            ports: 0,
        }
    }

    /// Joins port `n` (veth `kh<n>` with `ks<n>` in the sandbox namespace).
    fn join(&self, n: usize) {
        let (host_if, peer) = (format!("kh{n}"), format!("ks{n}"));
        self.host_nl
            .link_add(
                &LinkSpec::veth(
                    host_if.as_str(),
                    VethPeer::new(peer.as_str()).netns(self.sandbox.netns()),
                )
                .master(self.bridge)
                .mac(Self::MAC),
            )
            .unwrap();
        self.sandbox_nl.link_set_up(peer.as_str()).unwrap();
        self.host_nl.link_set_up(host_if.as_str()).unwrap();
    }

    fn fill(&mut self, ports: usize) {
        while self.ports < ports {
            self.join(self.ports);
            self.ports += 1;
        }
    }

    /// Times `iters` joins in rounds of [`ROUND`], each round's ports removed after it.
    fn time_joins(&self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let round = left.min(ROUND) as usize;
            left -= round as u64;
            let ids: Vec<usize> = (self.ports..self.ports + round).collect();
            for &n in &ids {
                let start = Instant::now();
                self.join(n);
                total += start.elapsed();
            }
            for &n in &ids {
                self.host_nl.link_delete(format!("kh{n}").as_str()).unwrap();
            }
        }
        total
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

    // The connect rows compare two levels whose ratio is budgeted: more samples over a longer
    // time, so that the kernel's background work at 1000 sandboxes averages out.
    group
        .sample_size(40)
        .measurement_time(Duration::from_secs(10));
    let mut kernel = KernelBed::new();
    kernel.fill(3);
    group.bench_function("kernel_bridge_join/ports_3", |b| {
        b.iter_custom(|n| kernel.time_joins(n))
    });
    kernel.fill(250);
    group.bench_function("kernel_bridge_join/ports_250", |b| {
        b.iter_custom(|n| kernel.time_joins(n))
    });
    drop(kernel);
    bed.fill(10);
    group.bench_function("connect/after_10", |b| {
        b.iter_custom(|n| bed.time_connects(n))
    });
    group.bench_function("connect_churn/after_10", |b| {
        b.iter_custom(|n| bed.time_connects_churn(n))
    });
    bed.fill(1000);
    group.bench_function("connect/after_1000", |b| {
        b.iter_custom(|n| bed.time_connects(n))
    });
    group.bench_function("connect_churn/after_1000", |b| {
        b.iter_custom(|n| bed.time_connects_churn(n))
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

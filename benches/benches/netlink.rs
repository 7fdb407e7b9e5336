//! berth-netlink benchmarks (need root: they run inside two throwaway test namespaces).
//!
//! - `netlink/veth_sandbox_setup`: what attaching a container costs at the OS layer. Create a veth
//!   pair whose peer is created directly inside a second namespace as `eth0` (one request), address
//!   the peer, bring both ends up and add a default route in the peer namespace: five requests, plus
//!   the name lookups berth does when links are given by name. Budget: median at most 1 ms.
//! - `netlink/veth_sandbox_setup_by_index`: the same with links given by index where the caller
//!   knows it, i.e. without the lookups of the host-side name.
//! - `netlink/veth_delete`: deleting the pair again (one request; the peer goes with it), timed
//!   on its own. Setup happens outside the timed part.
//!
//! Run with `cargo bench -p berth-benches --bench netlink` (as root).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use berth_netlink::{AddrSpec, Handle, LinkSpec, RouteSpec, VethPeer};
use berth_testhost::TestHost;
use criterion::{Criterion, criterion_group, criterion_main};
use ipnet::IpNet;

struct Fixture {
    host: Handle,
    sandbox: Handle,
    // Handles are declared first so they are dropped before the namespaces are deleted.
    sandbox_ns: TestHost,
    _host_ns: TestHost,
    peer_addr: AddrSpec,
    gateway: IpAddr,
}

impl Fixture {
    fn new() -> Fixture {
        let host_ns = TestHost::new().expect("a test namespace (run the benchmark as root)");
        let sandbox_ns = TestHost::new().expect("a second test namespace");
        let host =
            Handle::open(host_ns.netns()).expect("an rtnetlink socket in the host namespace");
        let sandbox = Handle::open(sandbox_ns.netns()).expect("an rtnetlink socket in the sandbox");
        let peer: IpNet = "10.77.0.2/24".parse().expect("a CIDR literal");
        Fixture {
            host,
            sandbox,
            sandbox_ns,
            _host_ns: host_ns,
            peer_addr: AddrSpec::new(peer),
            gateway: "10.77.0.1".parse().expect("an IP literal"),
        }
    }

    /// The timed work: veth pair into the sandbox, address, both ends up, default route.
    fn setup_by_name(&self) {
        self.host
            .link_add(&LinkSpec::veth(
                "vbench0",
                VethPeer::new("eth0").netns(self.sandbox_ns.netns()),
            ))
            .expect("creating the veth pair");
        self.sandbox
            .addr_add("eth0", &self.peer_addr)
            .expect("addressing the peer");
        self.host.link_set_up("vbench0").expect("host side up");
        self.sandbox.link_set_up("eth0").expect("peer up");
        self.sandbox
            .route_add(&RouteSpec::default_v4().via(self.gateway))
            .expect("default route in the sandbox");
    }

    /// The same, with the peer looked up once (its index is needed for the address anyway) and
    /// the host side brought up inside the creation request.
    fn setup_by_index(&self) {
        self.host
            .link_add(
                &LinkSpec::veth(
                    "vbench0",
                    VethPeer::new("eth0").netns(self.sandbox_ns.netns()),
                )
                .up(),
            )
            .expect("creating the veth pair");
        let peer = self.sandbox.link_index("eth0").expect("the peer's index");
        self.sandbox
            .addr_add(peer, &self.peer_addr)
            .expect("addressing the peer");
        self.sandbox.link_set_up(peer).expect("peer up");
        self.sandbox
            .route_add(&RouteSpec::default_v4().via(self.gateway))
            .expect("default route in the sandbox");
    }

    fn teardown(&self) {
        self.host
            .link_delete("vbench0")
            .expect("deleting the veth pair");
    }
}

fn bench(c: &mut Criterion) {
    let fx = Fixture::new();
    // Sanity check once, outside the measurement: the sandbox really got its default route.
    fx.setup_by_name();
    let routes = fx
        .sandbox
        .route_list(berth_netlink::IpFamily::V4, None)
        .expect("listing routes");
    assert!(
        routes
            .iter()
            .any(|r| r.is_default() && r.gateway == Some(fx.gateway))
    );
    fx.teardown();

    let mut group = c.benchmark_group("netlink");
    group
        .sample_size(100)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("veth_sandbox_setup", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                fx.setup_by_name();
                total += start.elapsed();
                fx.teardown();
            }
            total
        })
    });
    group.bench_function("veth_sandbox_setup_by_index", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                fx.setup_by_index();
                total += start.elapsed();
                fx.teardown();
            }
            total
        })
    });
    group.bench_function("veth_delete", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                fx.setup_by_index();
                let start = Instant::now();
                fx.teardown();
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

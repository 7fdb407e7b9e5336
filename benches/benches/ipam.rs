//! berth-ipam benchmarks.
//!
//! - `fill_and_drain_slash16`: allocate every address of a /16 (65,534 next requests) and release
//!   them all, in one iteration. Budget: 20 ms.
//! - `slash64_with_1m_allocations/*`: one address request and its release in an IPv6 /64 pool that
//!   already holds 1,000,000 allocations spread as 1,000,000 separate runs (every other address), the
//!   worst case for the run representation. Budget: 2 µs. Measured for a lowest-free next request, a
//!   serial next request (the cursor walks through the allocations, one gap further per
//!   iteration) and a preferred address in the
//!   middle.
//!
//! Run with `cargo bench -p berth-benches --bench ipam`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use berth_ipam::{AddressRequest, AddressSpace, AllocationMode, Ipam, PoolId, PoolRequest};
use criterion::{Criterion, criterion_group, criterion_main};
use ipnet::IpNet;

const ONE_MILLION: u128 = 1_000_000;

fn net(s: &str) -> IpNet {
    s.parse().expect("valid network literal")
}

fn fill_and_drain_slash16(c: &mut Criterion) {
    let mut group = c.benchmark_group("ipam");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("fill_and_drain_slash16", |b| {
        b.iter(|| {
            let mut ipam = Ipam::new();
            let id = ipam
                .request_pool(&PoolRequest::new(AddressSpace::Local, net("172.18.0.0/16")))
                .expect("pool");
            let mut addrs = Vec::with_capacity(65_534);
            while let Ok(a) = ipam.request_address(&id, AddressRequest::Next) {
                addrs.push(a.addr());
            }
            assert_eq!(addrs.len(), 65_534);
            for a in addrs {
                ipam.release_address(&id, a).expect("release");
            }
            black_box(ipam)
        });
    });
    group.finish();
}

/// A /64 pool with one million allocations at odd offsets 1, 3, 5, ...: one million separate runs.
fn crowded_slash64(ipam: &mut Ipam, subnet: &str, mode: AllocationMode) -> PoolId {
    let subnet = net(subnet);
    let id = ipam
        .request_pool(&PoolRequest::new(AddressSpace::Local, subnet).with_mode(mode))
        .expect("pool");
    let base = u128::from(match subnet.network() {
        IpAddr::V6(a) => a,
        IpAddr::V4(_) => unreachable!("IPv6 literal"),
    });
    for i in 0..ONE_MILLION {
        let a = IpAddr::V6(Ipv6Addr::from(base + 2 * i + 1));
        ipam.request_address(&id, AddressRequest::Preferred(a))
            .expect("free");
    }
    assert_eq!(ipam.pool(&id).expect("pool").allocated_count(), ONE_MILLION);
    assert_eq!(
        ipam.pool(&id).expect("pool").allocated_ranges().count(),
        ONE_MILLION as usize
    );
    id
}

fn slash64_with_1m_allocations(c: &mut Criterion) {
    let mut ipam = Ipam::new();
    let lowest = crowded_slash64(&mut ipam, "2001:db8:1::/64", AllocationMode::LowestFree);
    let serial = crowded_slash64(&mut ipam, "2001:db8:2::/64", AllocationMode::Serial);
    let mid: IpAddr = "2001:db8:1::f:4240".parse().expect("addr"); // offset 1,000,000: even, free

    let mut group = c.benchmark_group("ipam/slash64_with_1m_allocations");
    group.bench_function("next_lowest_free", |b| {
        b.iter(|| {
            let a = ipam
                .request_address(&lowest, AddressRequest::Next)
                .expect("free");
            ipam.release_address(&lowest, black_box(a).addr())
                .expect("release");
        });
    });
    group.bench_function("next_serial", |b| {
        b.iter(|| {
            let a = ipam
                .request_address(&serial, AddressRequest::Next)
                .expect("free");
            ipam.release_address(&serial, black_box(a).addr())
                .expect("release");
        });
    });
    group.bench_function("preferred_middle", |b| {
        b.iter(|| {
            let a = ipam
                .request_address(&lowest, AddressRequest::Preferred(black_box(mid)))
                .expect("free");
            ipam.release_address(&lowest, a.addr()).expect("release");
        });
    });
    group.finish();
}

criterion_group!(benches, fill_and_drain_slash16, slash64_with_1m_allocations);
criterion_main!(benches);

//! The embedded DNS server's `127.0.0.11:53` redirect, installed in a sandbox namespace (root:
//! throwaway test namespaces). Before berth-netlink's nftables module this cost one `nft -f`
//! spawn per sandbox, which made a controller restart with 1000 sandboxes take 28 s.
//!
//! - `dns_redirect/netlink_first`: the stateless redirect (table, base chain, four rules) into a
//!   namespace that has none yet: one netlink transaction (a sandbox's first connect).
//! - `dns_redirect/netlink_again`: the same over the table an earlier install left (a restart),
//!   in 200 such namespaces in turn (a restart touches each sandbox once).
//! - `dns_redirect/nft_spawn`: the same script through `nft -f`, the way it was done before.
//!
//! Run with `cargo bench -p berth-benches --bench dns_redirect` (as root).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use berth_dns::{Redirect, ServerPorts, install_redirect, stateless_script};
use berth_testhost::TestHost;
use criterion::{Criterion, criterion_group, criterion_main};

const PORTS: ServerPorts = ServerPorts {
    udp: 41000,
    tcp: 42000,
};

fn nft_spawn(host: &TestHost) {
    host.run_with_input("nft", &["-f", "-"], &stateless_script(PORTS))
        .expect("nft -f");
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("dns_redirect");
    g.sample_size(30);
    // A fresh namespace per iteration, made and deleted outside the timed part.
    g.bench_function("netlink_first", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let host = TestHost::new().expect("a test namespace (run as root)");
                let t = Instant::now();
                install_redirect(&Redirect::Stateless, host.netns(), "bench", PORTS).unwrap();
                total += t.elapsed();
            }
            total
        })
    });
    // Namespaces that have the table already (a restart), taken in turn: the kernel finishes
    // closing a netfilter socket some 10-20 ms after it is dropped, and a commit in the same
    // namespace meanwhile waits for that; a restart touches each sandbox once.
    let hosts: Vec<TestHost> = (0..200)
        .map(|_| {
            let h = TestHost::new().expect("a test namespace (run as root)");
            install_redirect(&Redirect::Stateless, h.netns(), "bench", PORTS).unwrap();
            h
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut next = 0;
    g.bench_function("netlink_again", |b| {
        b.iter(|| {
            next = (next + 1) % hosts.len();
            install_redirect(&Redirect::Stateless, hosts[next].netns(), "bench", PORTS).unwrap()
        })
    });
    let host = &hosts[0];
    g.bench_function("nft_spawn", |b| b.iter(|| nft_spawn(host)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

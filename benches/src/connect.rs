//! Timed connects of fresh sandboxes, in rounds, for the controller and macvlan benches: a
//! round's sandboxes are created before and removed after it, untimed, and the kernel's
//! teardown of them is waited for before the next round, so that the number of connected
//! sandboxes stays within [`ROUND`] of the row's level.

use std::time::{Duration, Instant};

use berth::{Controller, EndpointOptions, SandboxCreate};
use berth_testhost::TestHost;
use berth_testhost::berth_netlink::Handle;

/// Sandboxes connected in one round.
pub const ROUND: u64 = 10;

/// Links in the host namespace.
///
/// # Panics
/// When netlink fails (a bench has nothing better to do).
pub fn host_links(host: &TestHost) -> usize {
    Handle::open(host.netns())
        .and_then(|nl| nl.link_list())
        .map(|l| l.len())
        .expect("the host namespace's links")
}

/// Waits (at most 30 s) until the host namespace has at most `links` links again: the kernel
/// tears a removed sandbox's namespace down after `remove_sandbox` returns, its veths last.
pub fn settle(host: &TestHost, links: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while host_links(host) > links && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Times `iters` connects of fresh sandboxes (`bench0`, `bench1`, ...) to `network`, in rounds
/// of at most [`ROUND`].
///
/// # Panics
/// When a create, connect or remove fails.
pub fn time_connect_rounds(
    ctl: &Controller,
    host: &TestHost,
    network: &str,
    iters: u64,
) -> Duration {
    let links = host_links(host);
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let round = left.min(ROUND);
        left -= round;
        let names: Vec<String> = (0..round).map(|i| format!("bench{i}")).collect();
        for name in &names {
            ctl.create_sandbox(SandboxCreate::new(name))
                .expect("a bench sandbox");
        }
        for name in &names {
            let start = Instant::now();
            ctl.connect(name, network, EndpointOptions::default())
                .expect("the timed connect");
            total += start.elapsed();
        }
        for name in &names {
            ctl.remove_sandbox(name)
                .expect("the bench sandbox's removal");
        }
        settle(host, links);
    }
    total
}

//! Listings and inspect never wait behind a connect's kernel work, as root in throwaway
//! namespaces: a fail point holds a connect for 2 s after its join (with the sandbox's lock
//! held) while another thread lists and inspects. Fail points are armed once per process: this
//! file holds one test.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use berth::SandboxCreate;
use common::*;

#[test]
fn listings_and_inspect_answer_while_a_connect_is_in_flight() {
    assert!(berth::failpoint::arm("connect.joined=sleep:2000@2"));
    let f = Fixture::new();
    // The first connect passes the point unhindered; the second is held there.
    f.sandbox_on("a", "bridge");
    f.ctl().create_sandbox(SandboxCreate::new("b")).unwrap();
    std::thread::scope(|s| {
        let started = Instant::now();
        let slow = s.spawn(|| f.ctl().connect("b", "bridge", Default::default()).unwrap());
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        let sandboxes = f.ctl().sandboxes();
        let b = f.ctl().inspect_sandbox("b").unwrap();
        let nets = f.ctl().networks();
        let a_env = f.ctl().link_env("b").unwrap();
        let took = t.elapsed();
        assert!(
            took < Duration::from_millis(500),
            "listings waited {took:?} behind a connect in flight"
        );
        assert!(!slow.is_finished(), "the connect was still in flight");
        assert_eq!(sandboxes.len(), 2);
        assert!(
            b.networks.is_empty(),
            "the unfinished connect is not shown yet"
        );
        assert_eq!(
            nets.iter()
                .find(|n| n.name == "bridge")
                .unwrap()
                .containers
                .len(),
            1
        );
        assert!(a_env.is_empty());
        slow.join().unwrap();
        assert!(started.elapsed() >= Duration::from_secs(2));
    });
    assert!(
        f.ctl()
            .inspect_sandbox("b")
            .unwrap()
            .networks
            .contains_key("bridge")
    );
}

//! `berth daemon --cluster-store etcd://.. --cluster-advertise ..`, as root: a real etcd in its
//! own namespace on an underlay switch, two daemons on two hosts of the same underlay, and the
//! overlay driven from the command line: a network made on one host is listed on the other
//! with scope global, and sandboxes on the two hosts reach each other by name.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use berth_testhost::cluster::Underlay;
use berth_testhost::etcd::Etcd;
use common::*;

fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_daemons_share_an_overlay_through_etcd() {
    let underlay = Underlay::new().unwrap();
    let store_host = underlay.add_host().unwrap();
    let etcd = Etcd::start(store_host.host.name(), store_host.addr).unwrap();
    let store = format!("--cluster-store=etcd://{}:2379", store_host.addr);
    let start = || {
        let h = underlay.add_host().unwrap();
        // The interface form of --cluster-advertise, with Docker's port (which berth ignores).
        Fixture::on_host(h.host, &[&store, "--cluster-advertise=eth0:2376"])
    };
    let a = start();
    let b = start();

    let id = a.ok(&["network", "create", "-d", "overlay", "ov"]);
    assert_eq!(id.trim().len(), 64, "{id}");
    eventually("host b lists ov", || {
        b.ok(&[
            "network",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Scope}}",
        ])
        .lines()
        .any(|l| l == "ov overlay global")
    });
    let vni = b.ok(&[
        "network",
        "inspect",
        "-f",
        "{{index .Options \"com.docker.network.driver.overlay.vxlanid_list\"}}",
        "ov",
    ]);
    assert_eq!(vni.trim(), "4096");

    a.ok(&["sandbox", "create", "--name", "sa", "--network", "ov"]);
    b.ok(&["sandbox", "create", "--name", "sb", "--network", "ov"]);
    let ip_b = b.ip_of("sb", "ov");
    eventually("sa reaches sb by address", || a.ping("sa", &ip_b));
    eventually("sa reaches sb by name", || a.ping("sa", "sb"));
    assert!(b.ping("sb", "sa"), "and back by name");

    // Removal needs every host's endpoints gone.
    let refused = a.fails(&["network", "rm", "ov"], 1);
    assert!(refused.contains("active endpoints"), "{refused}");
    b.ok(&["sandbox", "rm", "sb"]);
    a.ok(&["sandbox", "rm", "sa"]);
    a.ok(&["network", "rm", "ov"]);
    eventually("host b forgets ov", || {
        !b.ok(&["network", "ls", "--format", "{{.Name}}"])
            .lines()
            .any(|l| l == "ov")
    });
    drop((a, b));
    drop(etcd);
}

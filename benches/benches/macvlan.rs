//! macvlan connect against bridge connect, as root, inside a throwaway test host whose
//! "physical" interface is a veth to a LAN peer (the macvlan parent).
//!
//! - `macvlan/connect_macvlan`: connect a new sandbox to a macvlan network (`-o parent=lanN`,
//!   bridge mode): the child link made on the parent, moved into the sandbox, addressed and
//!   routed, the embedded DNS server registered, state written twice. Budget: median 5 ms.
//! - `macvlan/connect_bridge`: the same connect to a bridge network on the same controller, in
//!   the same run: the baseline the macvlan row is compared with.
//!
//! Connects go in rounds of 10 whose sandboxes are created before and removed after the round,
//! untimed; the next round starts once the kernel has torn them down.
//!
//! Run with `cargo bench -p berth-benches --bench macvlan`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use berth::{Config, Controller, FirewallBackend, IpamPoolConfig, NetworkCreate};
use berth_benches::connect::time_connect_rounds;
use berth_testhost::{LanPeer, TestHost};
use criterion::{Criterion, criterion_group, criterion_main};

struct Bed {
    ctl: Option<Controller>,
    _lan: LanPeer,
    host: TestHost,
    _data: tempfile::TempDir,
    _run: tempfile::TempDir,
}

impl Bed {
    fn new() -> Bed {
        let host = TestHost::new().expect("a test host (run the benches as root)");
        let lan = host
            .add_lan_peer("192.168.77.1/24", "192.168.77.2/24")
            .unwrap();
        let data = tempfile::tempdir().unwrap();
        // The exec root on a tmpfs, as /run is on a normal host (see the controller bench).
        let run = tempfile::tempdir_in("/dev/shm").unwrap();
        let mut config = Config::new(data.path().join("data"), run.path().join("run"));
        config.host_netns = Some(host.path());
        config.firewall = Some(FirewallBackend::Iptables);
        let ctl = Controller::new(config).unwrap();
        ctl.create_network(
            NetworkCreate::new("mv")
                .driver("macvlan")
                .option("parent", lan.host_interface())
                .subnet(IpamPoolConfig {
                    subnet: Some("192.168.77.0/24".parse().unwrap()),
                    gateway: Some("192.168.77.2".parse().unwrap()),
                    ip_range: Some("192.168.77.128/25".parse().unwrap()),
                    ..Default::default()
                }),
        )
        .unwrap();
        ctl.create_network(NetworkCreate::new("br").subnet(IpamPoolConfig {
            subnet: Some("10.100.0.0/16".parse().unwrap()),
            ..Default::default()
        }))
        .unwrap();
        Bed {
            ctl: Some(ctl),
            _lan: lan,
            host,
            _data: data,
            _run: run,
        }
    }

    fn ctl(&self) -> &Controller {
        self.ctl.as_ref().unwrap()
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(ctl) = self.ctl.take() {
            for s in ctl.sandboxes() {
                let _ = ctl.remove_sandbox(&s.name);
            }
            for n in ["mv", "br"] {
                let _ = ctl.remove_network(n);
            }
        }
    }
}

fn macvlan(c: &mut Criterion) {
    let mut group = c.benchmark_group("macvlan");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(6));
    let bed = Bed::new();
    group.bench_function("connect_macvlan", |b| {
        b.iter_custom(|n| time_connect_rounds(bed.ctl(), &bed.host, "mv", n))
    });
    group.bench_function("connect_bridge", |b| {
        b.iter_custom(|n| time_connect_rounds(bed.ctl(), &bed.host, "br", n))
    });
    group.finish();
}

criterion_group!(benches, macvlan);
criterion_main!(benches);

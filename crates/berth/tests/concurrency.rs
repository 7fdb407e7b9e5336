//! Eight threads connecting and disconnecting at once: no duplicate address, no lost or stray
//! kernel object or rule.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use berth::{EndpointOptions, IpamPoolConfig, NetworkCreate, SandboxCreate};
use common::Fixture;

#[test]
fn eight_threads_connecting_and_disconnecting() {
    let f = Fixture::new();
    for (name, subnet) in [("n1", "10.77.0.0/24"), ("n2", "10.78.0.0/24")] {
        f.ctl()
            .create_network(NetworkCreate::new(name).subnet(IpamPoolConfig {
                subnet: Some(subnet.parse().unwrap()),
                ..Default::default()
            }))
            .unwrap();
    }
    for t in 0..8 {
        f.ctl()
            .create_sandbox(SandboxCreate::new(format!("t{t}")))
            .unwrap();
    }
    std::thread::scope(|s| {
        for t in 0..8 {
            let ctl = f.ctl().clone();
            s.spawn(move || {
                let name = format!("t{t}");
                for round in 0..6 {
                    ctl.connect(&name, "n1", EndpointOptions::default())
                        .unwrap();
                    ctl.connect(&name, "n2", EndpointOptions::default())
                        .unwrap();
                    if round % 2 == 0 {
                        ctl.disconnect(&name, "n1").unwrap();
                        ctl.disconnect(&name, "n2").unwrap();
                    } else {
                        ctl.disconnect(&name, "n2").unwrap();
                        ctl.disconnect(&name, "n1").unwrap();
                    }
                }
                // End connected to both.
                ctl.connect(&name, "n1", EndpointOptions::default())
                    .unwrap();
                ctl.connect(&name, "n2", EndpointOptions::default())
                    .unwrap();
            });
        }
    });
    for net in ["n1", "n2"] {
        let insp = f.ctl().inspect_network(net).unwrap();
        assert_eq!(insp.containers.len(), 8);
        let ips: BTreeSet<&str> = insp
            .containers
            .values()
            .map(|c| c.ipv4_address.as_str())
            .collect();
        assert_eq!(ips.len(), 8, "no duplicate address on {net}: {ips:?}");
    }
    // Exactly one veth per endpoint, and the firewall matches its desired state.
    let veths = f
        .berth_links()
        .into_iter()
        .filter(|l| l.starts_with("berth"))
        .count();
    assert_eq!(veths, 16);
    let drift = f.ctl().firewall().unwrap().check_drift().unwrap();
    assert!(drift.is_clean(), "{drift}");
    // Real traffic across every pair on n1.
    let ip0 = f.ip_of("t0", "n1");
    for t in 1..8 {
        assert!(f.ping(&format!("t{t}"), &ip0));
    }
}

//! Kernel tests of berth-firewall, as root, for both backends, inside throwaway test-host
//! namespaces. Behaviour is proved with real TCP/UDP traffic between namespaces.
//!
//! One test binary; the scenarios are grouped by subject in the modules below, which share the
//! lab fixtures of `tests/common` and the helpers here.

#[path = "../common/mod.rs"]
mod common;

mod dns;
mod networks;
mod ports;
mod reconcile;
mod refusals;

use berth_firewall::{NetworkRules, PortRange, PortRule, Protocol};

fn net(bridge: &str, subnet: &str) -> NetworkRules {
    NetworkRules::new(bridge, Some(subnet.parse().expect("subnet")), None)
}

fn port(proto: Protocol, host: (u16, u16), ip: &str, ctr: (u16, u16), bridge: &str) -> PortRule {
    PortRule {
        proto,
        host_ip: None,
        host_ports: PortRange::new(host.0, host.1).expect("host ports"),
        container_ip: ip.parse().expect("container ip"),
        container_ports: PortRange::new(ctr.0, ctr.1).expect("container ports"),
        bridge: bridge.into(),
    }
}

fn assert_no_drift(fw: &berth_firewall::Firewall) {
    let d = fw.check_drift().expect("check drift");
    assert!(d.is_clean(), "unexpected drift:\n{d}");
}

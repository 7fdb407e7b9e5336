//! Shared pieces of the benchmarks under `benches/` (the criterion benches and the measured
//! scenarios): the synthetic firewall load both firewall benches put in a namespace, and timed
//! connects in rounds ([`connect`]).

pub mod connect;

use berth_firewall::{NetworkRules, PortRange, PortRule, Protocol};

/// Published ports per synthetic network.
pub const PORTS_PER_NETWORK: u32 = 10;

/// Synthetic network `k`: bridge `br-<k in hex>`, subnet `10.(100+k/256).(k%256).0/24`.
pub fn network(k: u32) -> NetworkRules {
    let subnet = format!("10.{}.{}.0/24", 100 + k / 256, k % 256);
    NetworkRules::new(
        &format!("br-{k:012x}"),
        Some(subnet.parse().expect("subnet")),
        None,
    )
}

/// Published port `i` of network `k`: host port `20000 + k*10 + i` to `.2:(80+i)`.
pub fn port(k: u32, i: u32) -> PortRule {
    let ip = format!("10.{}.{}.2", 100 + k / 256, k % 256);
    let host = u16::try_from(20000 + k * PORTS_PER_NETWORK + i).expect("host port fits");
    let ctr = u16::try_from(80 + i).expect("port fits");
    PortRule {
        proto: Protocol::Tcp,
        host_ip: None,
        host_ports: PortRange::single(host).expect("port"),
        container_ip: ip.parse().expect("ip"),
        container_ports: PortRange::single(ctr).expect("port"),
        bridge: network(k).bridge,
    }
}

/// One more published port (UDP 5353 to network 0's first container), the unit the benches
/// add and remove.
pub fn extra_port() -> PortRule {
    PortRule {
        proto: Protocol::Udp,
        host_ip: None,
        host_ports: PortRange::single(5353).expect("port"),
        container_ip: "10.100.0.2".parse().expect("ip"),
        container_ports: PortRange::single(53).expect("port"),
        bridge: network(0).bridge,
    }
}

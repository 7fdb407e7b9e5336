//! Shared pieces of the benchmarks under `benches/` (the criterion benches and the measured
//! scenarios): the synthetic firewall load both firewall benches put in a namespace, and timed
//! connects in rounds ([`connect`]).

pub mod connect;

/// The first line of a file (`?` when it cannot be read): `/proc/loadavg`, the kernel release.
pub fn first_line(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or("?")
        .to_owned()
}

/// The report header of a measured scenario: `machine: N cores, kernel X, load at start Y`.
pub fn machine_line() -> String {
    format!(
        "machine: {} cores, kernel {}, load at start {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        first_line("/proc/sys/kernel/osrelease"),
        first_line("/proc/loadavg")
    )
}

/// The report footer of a measured scenario: `whole run N s, load at end Y`.
pub fn whole_run_line(started: std::time::Instant) -> String {
    format!(
        "whole run {:.0} s, load at end {}",
        started.elapsed().as_secs_f64(),
        first_line("/proc/loadavg")
    )
}

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

//! Feeds arbitrary text to what berth-firewall reads back from the kernel's tools, the way
//! reconcile runs it: the first byte picks the backend, the rest is `iptables-save` output
//! (parsed as one family's `Dump`) or `nft list table inet berth` output (a `Listing`, its
//! elements typed by their set's type). What parses is converged against a small desired state
//! (a network, a published port); must never panic, and a clean report means an empty
//! transaction.
#![no_main]

use std::collections::BTreeMap;

use berth_firewall::iptables::Dump;
use berth_firewall::nftables::Listing;
use berth_firewall::{
    Backend, DesiredState, Family, FirewallConfig, NetworkRules, Observed, Planner, PortRange,
    PortRule, Protocol,
};
use libfuzzer_sys::fuzz_target;

fn state(config: &FirewallConfig) -> Option<DesiredState> {
    let net = NetworkRules::new("br-0123456789ab", "172.19.0.0/16".parse().ok(), None);
    let port = PortRule {
        proto: Protocol::Tcp,
        host_ip: None,
        host_ports: PortRange::new(8080, 8080).ok()?,
        container_ip: "172.19.0.2".parse().ok()?,
        container_ports: PortRange::new(80, 80).ok()?,
        bridge: "br-0123456789ab".into(),
    };
    DesiredState::from_parts(config, [net], [port], []).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (backend, observed) = if pick % 2 == 0 {
        let Ok(dump) = Dump::parse(text) else {
            return;
        };
        let mut dumps = BTreeMap::new();
        dumps.insert(Family::V4, dump);
        (Backend::Iptables, Observed::Iptables(dumps))
    } else {
        let Ok(listing) = Listing::parse(text) else {
            return;
        };
        (Backend::Nftables, Observed::Nftables(Some(listing)))
    };
    let config = FirewallConfig::new(backend);
    let Some(state) = state(&config) else {
        return;
    };
    let Ok(planner) = Planner::new(config) else {
        return;
    };
    if let Ok((txn, report)) = planner.converge(&state, &observed) {
        if report.is_clean() {
            assert!(txn.is_empty(), "a clean report with a non-empty transaction: {report}");
        }
    }
});

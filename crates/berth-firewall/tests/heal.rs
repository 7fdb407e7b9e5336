//! The healing thread at the firewall's level, as root in a throwaway namespace: with the
//! legacy iptables binaries (x_tables sends no notifications) it compares on a timer and repairs
//! a flushed chain, checked with real traffic from a LAN peer; with the nf_tables binaries it
//! follows notifications. (The controller's tests, `crates/berth/tests/firewall_heal.rs`, cover
//! every chain and both backends with a whole controller.)

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_firewall::{
    Backend, Firewall, HealMode, HealOptions, IptablesVariant, NetworkRules, PortRange, PortRule,
    Protocol,
};
use common::*;

fn published(lab: &Lab, variant: IptablesVariant) -> Arc<Firewall> {
    let mut cfg = config(Backend::Iptables);
    cfg.iptables_variant = variant;
    let fw = Arc::new(lab.firewall(cfg));
    fw.add_network(NetworkRules::new(
        "br-h",
        Some("172.23.0.0/16".parse().expect("subnet")),
        None,
    ))
    .expect("network");
    fw.add_ports(&[PortRule {
        proto: Protocol::Tcp,
        host_ip: None,
        host_ports: PortRange::new(8080, 8080).expect("ports"),
        container_ip: "172.23.0.2".parse().expect("ip"),
        container_ports: PortRange::new(80, 80).expect("ports"),
        bridge: "br-h".into(),
    }])
    .expect("publish");
    fw
}

fn heals(variant: IptablesVariant, iptables: &str) -> HealMode {
    let lab = Lab::new();
    lab.bridge("br-h", "172.23.0.1/16", None);
    let c = lab.container("br-h", "172.23.0.2/16", "172.23.0.1");
    let _s = serve(c.netns(), "172.23.0.2:80", "c-80");
    let fw = published(&lab, variant);
    let healer = fw.start_healing(HealOptions::default()).expect("healing");
    assert_eq!(
        fetch(lab.peer.netns(), "192.0.2.1:8080"),
        "c-80 from 192.0.2.2"
    );
    lab.host
        .run(iptables, &["-t", "nat", "-F", "BERTH-DNAT"])
        .expect("flush");
    let flushed = Instant::now();
    while healer.stats().repairs == 0 {
        assert!(
            flushed.elapsed() < Duration::from_secs(3),
            "no repair: {:?}",
            healer.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "{variant:?}: repaired {:?} after the flush",
        flushed.elapsed()
    );
    assert_eq!(
        fetch(lab.peer.netns(), "192.0.2.1:8080"),
        "c-80 from 192.0.2.2"
    );
    let stats = healer.stats();
    // The repair put back what the flush took (so the flush did take it).
    let repair = stats.last_repair.clone().expect("a repair");
    assert!(
        repair
            .report
            .to_string()
            .contains("missing: IPv4 nat BERTH-DNAT"),
        "{}",
        repair.report
    );
    healer.mode()
}

#[test]
fn legacy_iptables_is_compared_on_a_timer_and_repaired() {
    let mode = heals(IptablesVariant::Legacy, "iptables-legacy");
    assert_eq!(mode, HealMode::Polling, "x_tables sends no notifications");
}

#[test]
fn nf_tables_iptables_is_followed_by_notifications_and_repaired() {
    let mode = heals(IptablesVariant::Nft, "iptables-nft");
    assert_eq!(mode, HealMode::Notifications);
}

//! What is refused and leaves the kernel unchanged: transactions the kernel refuses (also with the
//! legacy binaries), bad input, mixed iptables variants, missing tools.

use berth_firewall::{
    Backend, Error, FirewallConfig, IptablesVariant, NetworkRules, PortRange, Protocol,
};

use crate::common::*;
use crate::{assert_no_drift, net, port};

/// A transaction the kernel refuses changes nothing, with a batch that fails in its second
/// table (nat after filter) and one that fails in its second family (IPv6 after IPv4).
fn refused_transaction_changes_nothing(backend: Backend) {
    refused(backend, IptablesVariant::Auto);
}

fn refused(backend: Backend, variant: IptablesVariant) {
    let lab = Lab::new();
    lab.bridge("br-r", "172.30.0.1/16", Some("fd00:30::1/64"));
    lab.bridge("br-q", "172.31.0.1/16", Some("fd00:31::1/64"));
    let mut cfg = config(backend);
    cfg.ipv6 = true;
    cfg.iptables_variant = variant;
    let fw = lab.firewall(cfg);
    let dual = |br: &str, v4: &str, v6: &str| {
        NetworkRules::new(
            br,
            Some(v4.parse().expect("v4")),
            Some(v6.parse().expect("v6")),
        )
    };
    fw.add_network(dual("br-r", "172.30.0.0/16", "fd00:30::/64"))
        .expect("network");
    let (ipt, ip6t) = match variant {
        IptablesVariant::Legacy => ("iptables-legacy", "ip6tables-legacy"),
        _ => ("iptables", "ip6tables"),
    };
    let drop_postrouting = |tool: &str| {
        format!(
            "{tool} -t nat -D POSTROUTING -j BERTH-POSTROUTING && {tool} -t nat -F BERTH-POSTROUTING && \
             {tool} -t nat -X BERTH-POSTROUTING"
        )
    };
    let q = dual("br-q", "172.31.0.0/16", "fd00:31::/64");

    // 1. The batch fails in its second table: IPv4 filter is committed, nat is refused.
    match backend {
        Backend::Iptables => lab.sh(&drop_postrouting(ipt)),
        Backend::Nftables => {
            lab.sh("nft add element inet berth hairpin4 { 172.31.0.0/24 . \"br-q\" }")
        }
    }
    let before = lab.snapshot();
    let err = fw.add_network(q.clone()).expect_err("refused");
    assert!(matches!(err, Error::Refused { .. }), "{err}");
    assert_same(
        &before,
        &lab.snapshot(),
        "a refused add_network (second table) changed the ruleset",
    );
    assert!(fw.state().network("br-q").is_none());
    fw.reconcile().expect("reconcile repairs the sabotage");
    assert_no_drift(&fw);

    // 2. The second family fails after the first was committed.
    match backend {
        Backend::Iptables => lab.sh(&drop_postrouting(ip6t)),
        Backend::Nftables => {
            lab.sh("nft add element inet berth hairpin6 { fd00:31::/96 . \"br-q\" }")
        }
    }
    let before = lab.snapshot();
    let err = fw.add_network(q.clone()).expect_err("refused");
    assert!(matches!(err, Error::Refused { .. }), "{err}");
    assert_same(
        &before,
        &lab.snapshot(),
        "a refused add_network (second family) changed the ruleset",
    );
    fw.reconcile().expect("reconcile");
    assert_no_drift(&fw);

    // 3. Publishing fails: nothing of it stays.
    let web = port(Protocol::Tcp, (8080, 8080), "172.30.0.2", (80, 80), "br-r");
    let range = port(
        Protocol::Tcp,
        (9000, 9999),
        "172.30.0.2",
        (9000, 9999),
        "br-r",
    );
    match backend {
        Backend::Iptables => lab.sh(&format!(
            "{ipt} -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j BERTH-DNAT && \
             {ipt} -t nat -D OUTPUT -m addrtype --dst-type LOCAL -j BERTH-DNAT && {ipt} -t nat -X BERTH-DNAT"
        )),
        Backend::Nftables => lab.sh("nft add element inet berth dnat4_all { tcp . 8080 : 10.9.9.9 . 80 }"),
    }
    let before = lab.snapshot();
    let err = fw.add_ports(&[range, web]).expect_err("refused");
    assert!(matches!(err, Error::Refused { .. }), "{err}");
    assert_same(
        &before,
        &lab.snapshot(),
        "a refused add_ports changed the ruleset",
    );
    assert!(fw.state().ports().is_empty());
    fw.reconcile().expect("reconcile");
    assert_no_drift(&fw);
}

/// Bad input is refused with typed errors before anything reaches the kernel.
fn bad_input_changes_nothing(backend: Backend) {
    let lab = Lab::new();
    lab.bridge("br-x", "172.16.5.1/24", None);
    let fw = lab.firewall(config(backend));
    fw.add_network(net("br-x", "172.16.5.0/24"))
        .expect("network");
    let before = lab.snapshot();
    let errors = [
        fw.add_network(net("bad name", "10.1.0.0/16"))
            .expect_err("ifname"),
        fw.add_network(net("br-y", "172.16.5.128/25"))
            .expect_err("overlap"),
        fw.add_ports(&[port(
            Protocol::Tcp,
            (9000, 9010),
            "172.16.5.2",
            (80, 81),
            "br-x",
        )])
        .expect_err("mismatch"),
        fw.add_ports(&[port(Protocol::Tcp, (80, 80), "fd00::2", (80, 80), "br-x")])
            .expect_err("family"),
        fw.add_ports(&[port(Protocol::Tcp, (80, 80), "10.0.0.2", (80, 80), "br-x")])
            .expect_err("outside subnet"),
        fw.remove_network("br-nope").expect_err("unknown"),
    ];
    for e in &errors {
        assert!(e.is_validation(), "{e}");
    }
    assert!(PortRange::new(0, 5).is_err());
    assert!(PortRange::new(9, 5).is_err());
    assert!("gre".parse::<Protocol>().is_err());
    assert_same(&before, &lab.snapshot(), "bad input changed the ruleset");
}

/// iptables-legacy-restore commits per table: the failed batch's committed filter table must be
/// rolled back.
#[test]
fn refused_transaction_changes_nothing_legacy() {
    refused(Backend::Iptables, IptablesVariant::Legacy);
}

/// Rules in the other iptables variant's tables are a clear error naming the binaries.
#[test]
fn mixed_iptables_variants_are_refused() {
    let host = berth_testhost::TestHost::new().expect("test host");
    host.run(
        "iptables-legacy",
        &["-A", "INPUT", "-s", "10.0.0.1", "-j", "DROP"],
    )
    .expect("legacy rule");
    let err = berth_firewall::Firewall::new(host.netns(), FirewallConfig::new(Backend::Iptables))
        .expect_err("mixed");
    let msg = err.to_string();
    assert!(matches!(err, Error::MixedIptables { .. }), "{msg}");
    assert!(
        msg.contains("iptables-restore") && msg.contains("legacy"),
        "{msg}"
    );

    let host = berth_testhost::TestHost::new().expect("test host");
    host.run(
        "iptables-nft",
        &["-A", "INPUT", "-s", "10.0.0.1", "-j", "DROP"],
    )
    .expect("nft rule");
    let mut cfg = FirewallConfig::new(Backend::Iptables);
    cfg.iptables_variant = IptablesVariant::Legacy;
    let err = berth_firewall::Firewall::new(host.netns(), cfg).expect_err("mixed");
    let msg = err.to_string();
    assert!(matches!(err, Error::MixedIptables { .. }), "{msg}");
    assert!(
        msg.contains("iptables-legacy-restore") && msg.contains("nft"),
        "{msg}"
    );
}

/// A missing tool is a clear error naming it.
#[test]
fn missing_tools_are_named() {
    let host = berth_testhost::TestHost::new().expect("test host");
    let empty = std::env::temp_dir().join(format!("berth-no-tools-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("empty dir");
    for backend in [Backend::Iptables, Backend::Nftables] {
        let mut cfg = FirewallConfig::new(backend);
        cfg.tools_dir = Some(empty.clone());
        let err = berth_firewall::Firewall::new(host.netns(), cfg).expect_err("no tools");
        let msg = err.to_string();
        assert!(matches!(err, Error::ToolNotFound { .. }), "{msg}");
        let tool = if backend == Backend::Iptables {
            "iptables-restore"
        } else {
            "nft"
        };
        assert!(
            msg.contains(tool) && msg.contains("apt-get install"),
            "{msg}"
        );
    }
    let _ = std::fs::remove_dir(&empty);
}

crate::both_backends!(
    refused_transaction_changes_nothing,
    bad_input_changes_nothing,
);

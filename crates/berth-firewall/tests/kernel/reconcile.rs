//! Drift and reconcile: the user's rules survive every berth operation, an outside flush or wipe
//! is detected and repaired, and a restart converges on the state it was given (or stages it).

use berth_firewall::{Backend, DesiredState, LinkPort, LinkRule, Protocol};

use crate::common::*;
use crate::{assert_no_drift, net, port};

fn user_rule(lab: &Lab, backend: Backend) {
    match backend {
        Backend::Iptables => lab.sh("iptables -I DOCKER-USER -s 198.51.100.2 -j DROP"),
        Backend::Nftables => {
            lab.sh("nft insert rule inet berth user_forward ip saddr 198.51.100.2 drop")
        }
    }
}

fn user_rule_present(lab: &Lab, backend: Backend) -> bool {
    let text = match backend {
        Backend::Iptables => lab
            .host
            .run("iptables-save", &["-t", "filter"])
            .unwrap_or_default(),
        Backend::Nftables => lab
            .host
            .run("nft", &["list", "chain", "inet", "berth", "user_forward"])
            .unwrap_or_default(),
    };
    text.contains("198.51.100.2")
}

/// A rule in DOCKER-USER (nft: user_forward) is honoured and survives every berth operation,
/// an outside flush of berth's rules and a reconcile.
fn user_rules_survive(backend: Backend) {
    let lab = Lab::new();
    let other = lab.second_peer();
    lab.bridge("br-u", "172.24.0.1/16", None);
    lab.bridge("br-v", "172.25.0.1/16", None);
    let c = lab.container("br-u", "172.24.0.2/16", "172.24.0.1");
    let _s = serve(c.netns(), "172.24.0.2:80", "web");
    let fw = lab.firewall(config(backend));
    fw.add_network(net("br-u", "172.24.0.0/16"))
        .expect("network");
    let web = port(Protocol::Tcp, (8080, 8080), "172.24.0.2", (80, 80), "br-u");
    fw.add_ports(std::slice::from_ref(&web)).expect("publish");
    assert_eq!(
        fetch(other.netns(), "198.51.100.1:8080"),
        "web from 198.51.100.2"
    );

    user_rule(&lab, backend);
    let check = |when: &str| {
        assert!(
            user_rule_present(&lab, backend),
            "user rule gone after {when}"
        );
        assert!(
            blocked(other.netns(), "198.51.100.1:8080"),
            "user rule not honoured after {when}"
        );
        assert_eq!(
            fetch(lab.peer.netns(), "192.0.2.1:8080"),
            "web from 192.0.2.2",
            "after {when}"
        );
    };
    check("insert");
    let mut v = net("br-v", "172.25.0.0/16");
    v.icc = false;
    fw.add_network(v).expect("network v");
    let extra = port(
        Protocol::Udp,
        (9000, 9100),
        "172.24.0.2",
        (9000, 9100),
        "br-u",
    );
    fw.add_ports(std::slice::from_ref(&extra)).expect("ports");
    let link = LinkRule {
        bridge: "br-v".into(),
        parent_ip: "172.25.0.2".parse().expect("ip"),
        child_ip: "172.25.0.3".parse().expect("ip"),
        ports: vec![LinkPort {
            proto: Protocol::Tcp,
            port: 5432,
        }],
    };
    fw.add_link(link.clone()).expect("link");
    check("adds");
    fw.remove_link(&link).expect("unlink");
    fw.remove_ports(&[extra]).expect("unpublish");
    fw.remove_network("br-v").expect("remove v");
    check("removes");
    let r = fw.reconcile().expect("reconcile");
    assert!(r.is_clean(), "{r}");
    check("reconcile");
    flush_berth(&lab, backend);
    assert!(!fw.check_drift().expect("drift").is_clean());
    fw.reconcile().expect("reconcile after flush");
    check("flush and reconcile");
    assert_no_drift(&fw);
}

/// What an outside actor (a firewall reload script) does to berth's rules.
fn flush_berth(lab: &Lab, backend: Backend) {
    match backend {
        Backend::Iptables => lab.sh(
            "iptables -F BERTH-ACCEPT && iptables -F BERTH-LINKS && iptables -t nat -F BERTH-DNAT \
             && iptables -D FORWARD -j BERTH-FORWARD",
        ),
        Backend::Nftables => lab.sh(
            "nft flush chain inet berth published && nft flush map inet berth dnat4_all \
             && nft flush set inet berth bridges",
        ),
    }
}

/// An outside flush is detected and repaired; so is a wipe of the whole ruleset.
fn outside_flush_is_repaired(backend: Backend) {
    let lab = Lab::new();
    lab.bridge("br-f", "172.26.0.1/16", None);
    let c = lab.container("br-f", "172.26.0.2/16", "172.26.0.1");
    let _s = serve(c.netns(), "172.26.0.2:80", "web");
    let _p = serve(lab.peer.netns(), "192.0.2.2:80", "peer");
    let fw = lab.firewall(config(backend));
    fw.add_network(net("br-f", "172.26.0.0/16"))
        .expect("network");
    fw.add_ports(&[port(
        Protocol::Tcp,
        (8080, 8080),
        "172.26.0.2",
        (80, 80),
        "br-f",
    )])
    .expect("publish");
    assert_eq!(
        fetch(lab.peer.netns(), "192.0.2.1:8080"),
        "web from 192.0.2.2"
    );

    flush_berth(&lab, backend);
    assert!(
        blocked(lab.peer.netns(), "192.0.2.1:8080"),
        "the flush broke publishing"
    );
    let drift = fw.check_drift().expect("drift");
    assert!(
        !drift.missing.is_empty() || !drift.structure.is_empty(),
        "{drift}"
    );
    let fixed = fw.reconcile().expect("reconcile");
    assert_eq!(fixed, drift, "reconcile reports what check_drift saw");
    assert_no_drift(&fw);
    assert_eq!(
        fetch(lab.peer.netns(), "192.0.2.1:8080"),
        "web from 192.0.2.2"
    );

    // A full wipe (iptables -F/-X everywhere, or nft flush ruleset).
    match backend {
        Backend::Iptables => {
            lab.sh("iptables -F && iptables -X && iptables -t nat -F && iptables -t nat -X")
        }
        Backend::Nftables => lab.sh("nft flush ruleset"),
    }
    assert!(!fw.check_drift().expect("drift").is_clean());
    fw.reconcile().expect("reconcile after wipe");
    assert_no_drift(&fw);
    assert_eq!(
        fetch(lab.peer.netns(), "192.0.2.1:8080"),
        "web from 192.0.2.2"
    );
    assert_eq!(fetch(c.netns(), "192.0.2.2:80"), "peer from 192.0.2.1");
}

/// After a restart, with_state + reconcile keeps what is right and removes what is stale.
fn restart_reconciles(backend: Backend) {
    let lab = Lab::new();
    lab.bridge("br-z", "172.16.9.1/24", None);
    let c = lab.container("br-z", "172.16.9.2/24", "172.16.9.1");
    let _s = serve(c.netns(), "172.16.9.2:80", "web");
    let cfg = config(backend);
    let web = port(Protocol::Tcp, (8080, 8080), "172.16.9.2", (80, 80), "br-z");
    let state = {
        let fw = lab.firewall(cfg.clone());
        fw.add_network(net("br-z", "172.16.9.0/24"))
            .expect("network");
        fw.add_ports(std::slice::from_ref(&web)).expect("publish");
        fw.state()
    };
    let fw = berth_firewall::Firewall::with_state(lab.host.netns(), cfg.clone(), state.clone())
        .expect("restart");
    let r = fw.reconcile().expect("reconcile");
    assert!(r.is_clean(), "nothing to fix after a restart: {r}");
    assert_eq!(
        fetch(lab.peer.netns(), "192.0.2.1:8080"),
        "web from 192.0.2.2"
    );
    // The store forgot the port: reconcile removes its rules.
    let forgot =
        DesiredState::from_parts(&cfg, state.networks().values().cloned(), [], []).expect("state");
    let fw = berth_firewall::Firewall::with_state(lab.host.netns(), cfg.clone(), forgot)
        .expect("restart");
    let r = fw.reconcile().expect("reconcile");
    assert!(!r.unexpected.is_empty(), "stale port rules reported: {r}");
    assert_no_drift(&fw);
    assert!(blocked(lab.peer.netns(), "192.0.2.1:8080"));

    // Staged: a restart that starts empty and adds what its restores bring back changes no
    // rule until its reconcile (the kernel keeps the old ones meanwhile), then converges on
    // exactly that; from then on every change is applied at once.
    let other = port(Protocol::Tcp, (8081, 8081), "172.16.9.2", (80, 80), "br-z");
    let fw = berth_firewall::Firewall::with_state(lab.host.netns(), cfg, DesiredState::new())
        .expect("restart");
    assert!(fw.staging());
    let before = lab.snapshot();
    fw.add_network(net("br-z", "172.16.9.0/24"))
        .expect("staged network");
    fw.add_ports(std::slice::from_ref(&web))
        .expect("staged port");
    assert_same(
        &before,
        &lab.snapshot(),
        "a staged change touched the kernel",
    );
    assert!(
        blocked(lab.peer.netns(), "192.0.2.1:8080"),
        "not applied yet"
    );
    let r = fw.reconcile().expect("reconcile");
    assert!(!r.is_clean(), "the staged port is reported missing: {r}");
    assert!(!fw.staging());
    assert_no_drift(&fw);
    assert_eq!(
        fetch(lab.peer.netns(), "192.0.2.1:8080"),
        "web from 192.0.2.2"
    );
    fw.add_ports(std::slice::from_ref(&other))
        .expect("applied port");
    assert_eq!(
        fetch(lab.peer.netns(), "192.0.2.1:8081"),
        "web from 192.0.2.2"
    );
}

crate::both_backends!(
    user_rules_survive,
    outside_flush_is_repaired,
    restart_reconciles,
);

//! Kernel tests of berth-firewall, as root, for both backends, inside throwaway test-host
//! namespaces. Behaviour is proved with real TCP/UDP traffic between namespaces.

mod common;

use berth_firewall::{
    Backend, DesiredState, Error, FirewallConfig, IptablesVariant, LinkPort, LinkRule,
    NetworkRules, PortRange, PortRule, Protocol,
};
use common::*;

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

/// Isolation between networks, icc off, internal networks, masquerade, and that forwarding
/// works where allowed (also before berth has rules for the bridges).
fn networks_isolate_and_forward(backend: Backend) {
    let lab = Lab::new();
    lab.bridge("br-a", "172.18.0.1/16", None);
    lab.bridge("br-b", "172.19.0.1/16", None);
    lab.bridge("br-i", "172.20.0.1/16", None);
    let a1 = lab.container("br-a", "172.18.0.2/16", "172.18.0.1");
    let a2 = lab.container("br-a", "172.18.0.3/16", "172.18.0.1");
    let b1 = lab.container("br-b", "172.19.0.2/16", "172.19.0.1");
    let b2 = lab.container("br-b", "172.19.0.3/16", "172.19.0.1");
    let i1 = lab.container("br-i", "172.20.0.2/16", "172.20.0.1");
    let i2 = lab.container("br-i", "172.20.0.3/16", "172.20.0.1");
    let _s = [
        serve(a1.netns(), "172.18.0.2:80", "a1"),
        serve(a2.netns(), "172.18.0.3:80", "a2"),
        serve(b1.netns(), "172.19.0.2:80", "b1"),
        serve(b2.netns(), "172.19.0.3:80", "b2"),
        serve(i1.netns(), "172.20.0.2:80", "i1"),
        serve(i2.netns(), "172.20.0.3:80", "i2"),
        serve(lab.peer.netns(), "192.0.2.2:80", "peer"),
    ];
    lab.peer_routes("172.16.0.0/12");

    let fw = lab.firewall(config(backend));
    assert_no_drift(&fw);
    // Without berth's network rules the host forwards between bridges.
    assert_eq!(fetch(a1.netns(), "172.19.0.2:80"), "b1 from 172.18.0.2");

    fw.add_network(net("br-a", "172.18.0.0/16"))
        .expect("network a");
    let mut b = net("br-b", "172.19.0.0/16");
    b.icc = false;
    fw.add_network(b).expect("network b");
    let mut i = net("br-i", "172.20.0.0/16");
    i.internal = true;
    fw.add_network(i).expect("network i");
    assert_no_drift(&fw);

    assert_eq!(
        fetch(a1.netns(), "172.18.0.3:80"),
        "a2 from 172.18.0.2",
        "icc on"
    );
    assert!(blocked(a1.netns(), "172.19.0.2:80"), "isolation a -> b");
    assert!(blocked(b1.netns(), "172.18.0.2:80"), "isolation b -> a");
    assert!(blocked(b1.netns(), "172.19.0.3:80"), "icc off within b");
    assert_eq!(
        fetch(i1.netns(), "172.20.0.3:80"),
        "i2 from 172.20.0.2",
        "icc within internal"
    );
    assert!(
        blocked(i1.netns(), "192.0.2.2:80"),
        "internal cannot reach the LAN"
    );
    assert!(
        blocked(lab.peer.netns(), "172.20.0.2:80"),
        "the LAN cannot reach internal"
    );
    assert!(
        blocked(a1.netns(), "172.20.0.2:80"),
        "isolation a -> internal"
    );
    assert_eq!(
        fetch(a1.netns(), "192.0.2.2:80"),
        "peer from 192.0.2.1",
        "masquerade to the LAN"
    );
    assert_eq!(
        fetch(b1.netns(), "192.0.2.2:80"),
        "peer from 192.0.2.1",
        "icc off still goes out"
    );
    assert!(
        blocked(lab.peer.netns(), "172.18.0.2:80"),
        "direct routing to a container"
    );

    // Removing a network removes exactly its rules.
    fw.remove_network("br-b").expect("remove b");
    assert_no_drift(&fw);
    assert_eq!(
        fetch(b1.netns(), "172.19.0.3:80"),
        "b2 from 172.19.0.2",
        "no icc rule left for b"
    );
    assert!(blocked(b1.netns(), "172.18.0.2:80"), "a still protected");
    assert_eq!(fetch(a1.netns(), "172.18.0.3:80"), "a2 from 172.18.0.2");
}

/// SNAT to the network's host_ipv4 instead of masquerade.
fn snat_to_host_address(backend: Backend) {
    let lab = Lab::new();
    lab.host
        .ip(&[
            "addr",
            "add",
            "192.0.2.100/24",
            "dev",
            lab.peer.host_interface(),
        ])
        .expect("second host address");
    lab.bridge("br-s", "172.21.0.1/16", None);
    let c = lab.container("br-s", "172.21.0.2/16", "172.21.0.1");
    let _peer = serve(lab.peer.netns(), "192.0.2.2:80", "peer");
    let fw = lab.firewall(config(backend));
    let mut n = net("br-s", "172.21.0.0/16");
    n.host_ipv4 = Some("192.0.2.100".parse().expect("addr"));
    fw.add_network(n).expect("network");
    assert_no_drift(&fw);
    assert_eq!(fetch(c.netns(), "192.0.2.2:80"), "peer from 192.0.2.100");
}

/// Published ports: single, range, shifted range, UDP, host address, hairpin, localhost, and
/// direct routing to published and unpublished container ports.
fn published_ports(backend: Backend) {
    let lab = Lab::new();
    lab.bridge("br-p", "172.22.0.1/16", None);
    lab.host
        .run("sysctl", &["-qw", "net.ipv4.conf.br-p.route_localnet=1"])
        .expect("route_localnet");
    let c1 = lab.container("br-p", "172.22.0.2/16", "172.22.0.1");
    let c2 = lab.container("br-p", "172.22.0.3/16", "172.22.0.1");
    let _s = [
        serve(c1.netns(), "172.22.0.2:80", "c1-80"),
        serve(c1.netns(), "172.22.0.2:22", "c1-22"),
        serve(c1.netns(), "172.22.0.2:9005", "c1-9005"),
    ];
    let _u = serve_udp(c1.netns(), "172.22.0.2:53", "c1-dns");
    lab.peer_routes("172.22.0.0/16");
    let fw = lab.firewall(config(backend));
    fw.add_network(net("br-p", "172.22.0.0/16"))
        .expect("network");
    let mut on_addr = port(Protocol::Tcp, (6000, 6000), "172.22.0.2", (80, 80), "br-p");
    on_addr.host_ip = Some("192.0.2.1".parse().expect("addr"));
    let ports = vec![
        port(Protocol::Tcp, (8080, 8080), "172.22.0.2", (80, 80), "br-p"),
        port(
            Protocol::Tcp,
            (9000, 9010),
            "172.22.0.2",
            (9000, 9010),
            "br-p",
        ),
        port(
            Protocol::Tcp,
            (7000, 7010),
            "172.22.0.2",
            (9000, 9010),
            "br-p",
        ),
        port(Protocol::Udp, (5353, 5353), "172.22.0.2", (53, 53), "br-p"),
        on_addr,
    ];
    fw.add_ports(&ports).expect("publish");
    assert_no_drift(&fw);

    let peer = lab.peer.netns();
    assert_eq!(fetch(peer, "192.0.2.1:8080"), "c1-80 from 192.0.2.2");
    assert_eq!(
        fetch(peer, "192.0.2.1:9005"),
        "c1-9005 from 192.0.2.2",
        "range"
    );
    assert_eq!(
        fetch(peer, "192.0.2.1:7005"),
        "c1-9005 from 192.0.2.2",
        "shifted range"
    );
    assert_eq!(
        fetch_udp(peer, "192.0.2.1:5353"),
        "c1-dns from 192.0.2.2",
        "udp"
    );
    assert_eq!(
        fetch(peer, "192.0.2.1:6000"),
        "c1-80 from 192.0.2.2",
        "host address"
    );
    assert_eq!(
        fetch(c1.netns(), "192.0.2.1:8080"),
        "c1-80 from 172.22.0.1",
        "hairpin to itself"
    );
    assert_eq!(
        fetch(c2.netns(), "192.0.2.1:8080"),
        "c1-80 from 172.22.0.1",
        "hairpin from a neighbour"
    );
    assert_eq!(
        fetch(lab.host.netns(), "127.0.0.1:8080"),
        "c1-80 from 172.22.0.1",
        "localhost"
    );
    assert!(
        blocked(lab.host.netns(), "127.0.0.1:6000"),
        "published on 192.0.2.1 only"
    );
    assert!(
        blocked(peer, "172.22.0.2:22"),
        "direct routing to an unpublished port"
    );
    assert!(
        blocked(peer, "172.22.0.2:80"),
        "direct routing to a published container port"
    );

    fw.remove_ports(&ports).expect("unpublish");
    assert_no_drift(&fw);
    assert!(fw.state().ports().is_empty());
    assert!(blocked(peer, "192.0.2.1:8080"));
    assert!(blocked(peer, "192.0.2.1:9005"));
}

/// Trusted interfaces may route straight to containers; others may not.
fn trusted_interfaces(backend: Backend) {
    let lab = Lab::new();
    let other = lab.second_peer();
    other.route_via("172.23.0.0/16", "198.51.100.1").ok();
    lab.bridge("br-t", "172.23.0.1/16", None);
    let c = lab.container("br-t", "172.23.0.2/16", "172.23.0.1");
    let _s = serve(c.netns(), "172.23.0.2:22", "ssh");
    lab.peer_routes("172.23.0.0/16");
    let mut cfg = config(backend);
    cfg.trusted_interfaces = vec![lab.peer.host_interface().to_owned()];
    let fw = lab.firewall(cfg);
    fw.add_network(net("br-t", "172.23.0.0/16"))
        .expect("network");
    assert_no_drift(&fw);
    assert_eq!(
        fetch(lab.peer.netns(), "172.23.0.2:22"),
        "ssh from 192.0.2.2",
        "trusted"
    );
    assert!(blocked(other.netns(), "172.23.0.2:22"), "not trusted");
}

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

/// Links on a network with icc off open exactly the linked port, one way.
fn links_with_icc_off(backend: Backend) {
    let lab = Lab::new();
    lab.bridge("br-l", "172.27.0.1/16", None);
    let parent = lab.container("br-l", "172.27.0.2/16", "172.27.0.1");
    let child = lab.container("br-l", "172.27.0.3/16", "172.27.0.1");
    let _s = [
        serve(child.netns(), "172.27.0.3:5432", "db"),
        serve(child.netns(), "172.27.0.3:80", "web"),
        serve(parent.netns(), "172.27.0.2:5432", "parent-db"),
    ];
    let fw = lab.firewall(config(backend));
    let mut n = net("br-l", "172.27.0.0/16");
    n.icc = false;
    fw.add_network(n).expect("network");
    assert!(blocked(parent.netns(), "172.27.0.3:5432"), "icc off");
    let link = LinkRule {
        bridge: "br-l".into(),
        parent_ip: "172.27.0.2".parse().expect("ip"),
        child_ip: "172.27.0.3".parse().expect("ip"),
        ports: vec![LinkPort {
            proto: Protocol::Tcp,
            port: 5432,
        }],
    };
    fw.add_link(link.clone()).expect("link");
    assert_no_drift(&fw);
    assert_eq!(
        fetch(parent.netns(), "172.27.0.3:5432"),
        "db from 172.27.0.2"
    );
    assert!(
        blocked(parent.netns(), "172.27.0.3:80"),
        "other ports stay closed"
    );
    assert!(
        blocked(child.netns(), "172.27.0.2:5432"),
        "the child cannot open the parent"
    );
    fw.remove_link(&link).expect("unlink");
    assert_no_drift(&fw);
    assert!(blocked(parent.netns(), "172.27.0.3:5432"), "link removed");
}

/// IPv6: forwarding with masquerade, a published port, isolation.
fn ipv6(backend: Backend) {
    let lab = Lab::new();
    lab.bridge("br-6", "172.28.0.1/16", Some("fd00:6::1/64"));
    lab.bridge("br-7", "172.29.0.1/16", Some("fd00:7::1/64"));
    let c = lab.container6(
        "br-6",
        "172.28.0.2/16",
        "172.28.0.1",
        Some(("fd00:6::2/64", "fd00:6::1")),
    );
    let d = lab.container6(
        "br-7",
        "172.29.0.2/16",
        "172.29.0.1",
        Some(("fd00:7::2/64", "fd00:7::1")),
    );
    let _s = [
        serve(c.netns(), "[fd00:6::2]:80", "c6"),
        serve(d.netns(), "[fd00:7::2]:80", "d6"),
        serve(lab.peer.netns(), "[2001:db8::2]:80", "peer6"),
    ];
    let mut cfg = config(backend);
    cfg.ipv6 = true;
    let fw = lab.firewall(cfg);
    for (br, v4, v6) in [
        ("br-6", "172.28.0.0/16", "fd00:6::/64"),
        ("br-7", "172.29.0.0/16", "fd00:7::/64"),
    ] {
        fw.add_network(NetworkRules::new(
            br,
            Some(v4.parse().expect("v4")),
            Some(v6.parse().expect("v6")),
        ))
        .expect("network");
    }
    let p = port(Protocol::Tcp, (8080, 8080), "fd00:6::2", (80, 80), "br-6");
    fw.add_ports(&[p]).expect("publish v6");
    assert_no_drift(&fw);
    assert_eq!(
        fetch(c.netns(), "[2001:db8::2]:80"),
        "peer6 from 2001:db8::1",
        "v6 masquerade"
    );
    assert_eq!(
        fetch(lab.peer.netns(), "[2001:db8::1]:8080"),
        "c6 from 2001:db8::2",
        "v6 DNAT"
    );
    assert!(blocked(c.netns(), "[fd00:7::2]:80"), "v6 isolation");
    assert!(blocked(d.netns(), "[fd00:6::2]:80"), "v6 isolation back");
}

/// The embedded DNS redirect in a sandbox namespace: UDP and TCP to 127.0.0.11:53 reach the
/// resolver's real ports; applying twice changes nothing.
fn dns_redirect(backend: Backend) {
    use berth_firewall::dns::{DnsRedirect, apply_dns_redirect};
    use std::net::UdpSocket;
    use std::time::Duration;
    let sandbox = berth_testhost::TestHost::new().expect("sandbox namespace");
    let _udp = serve_udp(sandbox.netns(), "127.0.0.11:54373", "dns-udp");
    let _tcp = serve(sandbox.netns(), "127.0.0.11:42709", "dns-tcp");
    let cfg = config(backend);
    let redirect = DnsRedirect::new(54373, 42709).expect("ports");
    apply_dns_redirect(sandbox.netns(), &cfg, &redirect).expect("dns redirect");
    let first = sandbox
        .run("iptables-save", &["-t", "nat"])
        .unwrap_or_default()
        + &sandbox.run("nft", &["list", "ruleset"]).unwrap_or_default();
    apply_dns_redirect(sandbox.netns(), &cfg, &redirect).expect("dns redirect again");
    let second = sandbox
        .run("iptables-save", &["-t", "nat"])
        .unwrap_or_default()
        + &sandbox.run("nft", &["list", "ruleset"]).unwrap_or_default();
    assert_eq!(strip(&first), strip(&second), "idempotent");

    // A connected socket only accepts the answer from 127.0.0.11:53.
    let answer = sandbox
        .exec(|| -> std::io::Result<String> {
            let s = UdpSocket::bind("127.0.0.1:0")?;
            s.connect("127.0.0.11:53")?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.send(b"query")?;
            let mut buf = [0u8; 256];
            let n = s.recv(&mut buf)?;
            Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
        })
        .expect("namespace thread")
        .expect("udp answer from 127.0.0.11:53");
    assert!(answer.starts_with("dns-udp from 127.0.0."), "{answer}");
    assert!(fetch(sandbox.netns(), "127.0.0.11:53").starts_with("dns-tcp from 127.0.0."));
}

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

/// FORWARD policy DROP when configured; berth's accepts still let its traffic through.
fn forward_policy_drop(backend: Backend) {
    let lab = Lab::new();
    lab.bridge("br-d", "172.16.7.1/24", None);
    let c = lab.container("br-d", "172.16.7.2/24", "172.16.7.1");
    let _p = serve(lab.peer.netns(), "192.0.2.2:80", "peer");
    let mut cfg = config(backend);
    cfg.forward_policy_drop = true;
    let fw = lab.firewall(cfg);
    // A bridge berth does not know about is not forwarded any more.
    lab.bridge("br-other", "172.16.8.1/24", None);
    let o = lab.container("br-other", "172.16.8.2/24", "172.16.8.1");
    assert!(blocked(o.netns(), "192.0.2.2:80"), "policy drop");
    fw.add_network(net("br-d", "172.16.7.0/24"))
        .expect("network");
    assert_no_drift(&fw);
    assert_eq!(fetch(c.netns(), "192.0.2.2:80"), "peer from 192.0.2.1");
    if backend == Backend::Iptables {
        let save = lab
            .host
            .run("iptables-save", &["-t", "filter"])
            .expect("save");
        assert!(save.contains(":FORWARD DROP"), "{save}");
    }
}

both_backends!(
    networks_isolate_and_forward,
    snat_to_host_address,
    published_ports,
    trusted_interfaces,
    user_rules_survive,
    outside_flush_is_repaired,
    links_with_icc_off,
    ipv6,
    dns_redirect,
    refused_transaction_changes_nothing,
    bad_input_changes_nothing,
    restart_reconciles,
    forward_policy_drop,
);

/// iptables-legacy-restore commits per table: the failed batch's committed filter table must be
/// rolled back.
#[test]
fn refused_transaction_changes_nothing_legacy() {
    refused(Backend::Iptables, IptablesVariant::Legacy);
}

/// The published-port and network behaviour with the legacy binaries too.
#[test]
fn published_ports_legacy() {
    let lab = Lab::new();
    lab.bridge("br-p", "172.22.0.1/16", None);
    let c1 = lab.container("br-p", "172.22.0.2/16", "172.22.0.1");
    let _s = serve(c1.netns(), "172.22.0.2:80", "c1-80");
    let mut cfg = config(Backend::Iptables);
    cfg.iptables_variant = IptablesVariant::Legacy;
    let fw = lab.firewall(cfg);
    fw.add_network(net("br-p", "172.22.0.0/16"))
        .expect("network");
    fw.add_ports(&[port(
        Protocol::Tcp,
        (8080, 8080),
        "172.22.0.2",
        (80, 80),
        "br-p",
    )])
    .expect("publish");
    assert_no_drift(&fw);
    assert_eq!(
        fetch(lab.peer.netns(), "192.0.2.1:8080"),
        "c1-80 from 192.0.2.2"
    );
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

/// A network whose subnet is a single address (a /32, a /128) lists in nft as a plain address:
/// reconcile reads it back as what berth made, not as drift on every run.
#[test]
fn full_length_subnets_are_no_drift_nftables() {
    let lab = Lab::new();
    let mut cfg = config(Backend::Nftables);
    cfg.ipv6 = true;
    let fw = lab.firewall(cfg);
    fw.add_network(NetworkRules::new(
        "br-one",
        Some("10.30.0.7/32".parse().expect("v4")),
        Some("fd00:30::7/128".parse().expect("v6")),
    ))
    .expect("network");
    assert_no_drift(&fw);
}

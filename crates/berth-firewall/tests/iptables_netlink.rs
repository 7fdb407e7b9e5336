//! Kernel tests (root) of the iptables backend's netlink fast path: rules appended over
//! netlink must be the rules `iptables-restore` makes. Two test hosts run the same changes, one
//! with the fast path and one with the tool only; after every step their `iptables-save` and
//! `ip6tables-save` listings must be identical, and the tool must delete what netlink added.

use std::net::IpAddr;

use berth_firewall::model::{PortRange, Protocol};
use berth_firewall::{
    Backend, Firewall, FirewallConfig, LinkPort, LinkRule, NetworkRules, PortRule,
};
use berth_testhost::TestHost;

fn config(netlink: bool) -> FirewallConfig {
    let mut c = FirewallConfig::new(Backend::Iptables);
    c.ipv6 = true;
    c.trusted_interfaces = vec!["eth9".into()];
    c.iptables_netlink = netlink;
    c
}

/// `iptables-save` and `ip6tables-save` without comments and counters.
fn listing(host: &TestHost) -> String {
    let mut out = String::new();
    for tool in ["iptables-save", "ip6tables-save"] {
        let o = host.output(tool, &[]).expect("running iptables-save");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            if line.starts_with('#') {
                continue;
            }
            let line = match line.strip_suffix(" [0:0]") {
                Some(l) if line.starts_with(':') => l,
                _ => line,
            };
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn port(
    proto: Protocol,
    host_ip: Option<&str>,
    host: (u16, u16),
    ctr: &str,
    to: (u16, u16),
    bridge: &str,
) -> PortRule {
    PortRule {
        proto,
        host_ip: host_ip.map(|a| a.parse().expect("valid test input")),
        host_ports: PortRange::new(host.0, host.1).expect("valid test input"),
        container_ip: ctr.parse::<IpAddr>().expect("valid test input"),
        container_ports: PortRange::new(to.0, to.1).expect("valid test input"),
        bridge: bridge.into(),
    }
}

#[test]
fn netlink_appends_list_and_delete_exactly_like_the_tool() {
    let fast_host = TestHost::new().expect("a test namespace (run as root)");
    let tool_host = TestHost::new().expect("a test namespace (run as root)");
    let fast = Firewall::new(fast_host.netns(), config(true)).expect("firewall");
    let tool = Firewall::new(tool_host.netns(), config(false)).expect("firewall");
    assert!(
        fast.iptables_over_netlink(),
        "the installed iptables-nft encodes rules as berth does (the probe passed)"
    );
    assert!(!tool.iptables_over_netlink());
    assert!(
        !listing(&fast_host).contains("PROBE"),
        "the probe leaves nothing behind:\n{}",
        listing(&fast_host)
    );
    assert_eq!(listing(&fast_host), listing(&tool_host), "base layout");

    let mut nets = vec![
        NetworkRules::new(
            "br-aaaa",
            Some("172.18.0.0/16".parse().expect("valid test input")),
            Some("fd00:a::/64".parse().expect("valid test input")),
        ),
        NetworkRules::new(
            "br-bbbb",
            Some("172.19.0.0/20".parse().expect("valid test input")),
            None,
        ),
        NetworkRules::new(
            "br-cccc",
            Some("172.20.0.0/24".parse().expect("valid test input")),
            Some("fd00:c::/56".parse().expect("valid test input")),
        ),
        NetworkRules::new(
            "docker0",
            Some("172.17.0.0/16".parse().expect("valid test input")),
            None,
        ),
    ];
    nets[1].icc = false;
    nets[1].host_ipv4 = Some("192.0.2.7".parse().expect("valid test input"));
    nets[2].internal = true;
    let ports = vec![
        port(
            Protocol::Tcp,
            None,
            (8080, 8080),
            "172.18.0.2",
            (80, 80),
            "br-aaaa",
        ),
        port(
            Protocol::Udp,
            Some("192.0.2.1"),
            (53, 53),
            "172.18.0.2",
            (5353, 5353),
            "br-aaaa",
        ),
        port(
            Protocol::Tcp,
            None,
            (9000, 9999),
            "172.18.0.2",
            (9000, 9999),
            "br-aaaa",
        ),
        port(
            Protocol::Tcp,
            Some("192.0.2.1"),
            (7000, 7009),
            "172.18.0.2",
            (80, 80),
            "br-aaaa",
        ),
        port(
            Protocol::Udp,
            None,
            (8000, 8010),
            "172.19.0.2",
            (80, 90),
            "br-bbbb",
        ),
        port(
            Protocol::Sctp,
            None,
            (6000, 6003),
            "172.18.0.2",
            (7000, 7003),
            "br-aaaa",
        ),
        port(
            Protocol::Tcp,
            None,
            (8443, 8443),
            "fd00:a::2",
            (443, 443),
            "br-aaaa",
        ),
        port(
            Protocol::Udp,
            Some("fd00::1"),
            (4000, 4010),
            "fd00:a::2",
            (4000, 4010),
            "br-aaaa",
        ),
    ];
    let link = LinkRule {
        bridge: "docker0".into(),
        parent_ip: "172.17.0.2".parse().expect("valid test input"),
        child_ip: "172.17.0.3".parse().expect("valid test input"),
        ports: vec![
            LinkPort {
                proto: Protocol::Tcp,
                port: 5432,
            },
            LinkPort {
                proto: Protocol::Udp,
                port: 53,
            },
        ],
    };

    let same = |what: &str| {
        let (a, b) = (listing(&fast_host), listing(&tool_host));
        assert_eq!(
            a, b,
            "after {what}: fast path (left) and tool (right) differ"
        );
        a
    };
    for net in &nets {
        fast.add_network(net.clone()).expect("firewall change");
        tool.add_network(net.clone()).expect("firewall change");
        same(&format!("adding {}", net.bridge));
    }
    // One port at a time (block chains come into use), then several in one change.
    fast.add_ports(&ports[..1]).expect("firewall change");
    tool.add_ports(&ports[..1]).expect("firewall change");
    same("publishing one port");
    fast.add_ports(&ports[1..]).expect("firewall change");
    tool.add_ports(&ports[1..]).expect("firewall change");
    let full = same("publishing the others");
    assert!(
        full.contains("--to-destination 172.19.0.2:80-90/8000"),
        "{full}"
    );
    assert!(full.contains("-p sctp"), "{full}");
    fast.add_link(link.clone()).expect("firewall change");
    tool.add_link(link.clone()).expect("firewall change");
    same("adding a link");
    assert!(
        fast.check_drift().expect("firewall change").is_clean(),
        "no drift after netlink appends"
    );

    // `iptables -D` finds a rule netlink added (its rule comparison matches it), and netlink
    // deletes a rule the tool added (reconcile puts it back here).
    let dnat = "-p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.2:80";
    let mut args = vec!["-t", "nat", "-D", "BERTH-DNAT-TCP-31"];
    args.extend(dnat.split(' '));
    let o = fast_host.output("iptables", &args).expect("iptables");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!listing(&fast_host).contains(dnat));
    assert!(!fast.reconcile().expect("reconcile").is_clean());
    same("iptables -D of a netlink rule, then reconcile (by the tool)");
    fast.remove_link(&link).expect("firewall change");
    tool.remove_link(&link).expect("firewall change");
    same("removing the link");
    fast.remove_ports(&ports).expect("firewall change");
    tool.remove_ports(&ports).expect("firewall change");
    same("unpublishing");
    for net in &nets {
        fast.remove_network(&net.bridge).expect("firewall change");
        tool.remove_network(&net.bridge).expect("firewall change");
        same(&format!("removing {}", net.bridge));
    }
    let empty = same("removing everything");
    assert!(!empty.contains("172.18.0.0"), "{empty}");

    // A change the kernel refuses (an outside actor removed a chain it appends to) changes
    // nothing, on the netlink path and then the tool's; reconcile repairs, and the change works.
    for cmd in [
        &["-F", "BERTH-FORWARD"][..],
        &["-F", "BERTH-ACCEPT"],
        &["-X", "BERTH-ACCEPT"],
    ] {
        let o = fast_host.output("iptables", cmd).expect("iptables");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let before = listing(&fast_host);
    let e = fast
        .add_network(nets[0].clone())
        .expect_err("appending to a missing chain is refused");
    assert!(matches!(e, berth_firewall::Error::Refused { .. }), "{e:?}");
    assert_eq!(
        listing(&fast_host),
        before,
        "a refused change leaves nothing"
    );
    assert!(!fast.reconcile().expect("reconcile").is_clean());
    fast.add_network(nets[0].clone()).expect("firewall change");
    tool.add_network(nets[0].clone()).expect("firewall change");
    same("repairing and adding again");
}

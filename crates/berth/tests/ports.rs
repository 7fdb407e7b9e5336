//! Published ports with real traffic: from a LAN peer, from the host (its own address and
//! 127.0.0.1), from another sandbox (hairpin); automatic ports, conflicts, loopback-only, IPv6,
//! ranges, release on disconnect and survival across a restart.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, TcpListener};

use berth::{IpamPoolConfig, NetworkCreate, SandboxCreate};
use berth_testhost::traffic::{TcpBanner, UdpEcho, tcp_fetch, udp_exchange};
use common::{Fixture, TIMEOUT};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn dnat_rules(f: &Fixture) -> usize {
    f.iptables_save()
        .lines()
        .filter(|l| l.contains("-j DNAT "))
        .count()
}

#[test]
fn tcp_and_udp_reach_the_sandbox_from_everywhere() {
    let f = Fixture::new();
    let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    f.ctl()
        .create_network(NetworkCreate::new("web_nw"))
        .unwrap();
    let ip = f.publish("web", "web_nw", &["8080:80", "5353:53/udp"]);
    let web = f.sandbox_ns("web");
    let _tcp = TcpBanner::start(&web, sa(&format!("{ip}:80")), "web").unwrap();
    let _udp = UdpEcho::start(&web, sa(&format!("{ip}:53")), "dns").unwrap();

    // From the LAN: the client keeps its own source address (no proxy in the path).
    let got = tcp_fetch(peer.netns(), sa("192.0.2.1:8080"), TIMEOUT).unwrap();
    assert_eq!(got, "web from 192.0.2.2");
    let got = udp_exchange(peer.netns(), sa("192.0.2.1:5353"), TIMEOUT).unwrap();
    assert_eq!(got, "dns from 192.0.2.2");
    // From the host itself, on its own address and on 127.0.0.1.
    assert!(
        tcp_fetch(f.host.netns(), sa("192.0.2.1:8080"), TIMEOUT)
            .unwrap()
            .starts_with("web from")
    );
    assert!(
        tcp_fetch(f.host.netns(), sa("127.0.0.1:8080"), TIMEOUT)
            .unwrap()
            .starts_with("web from")
    );
    // From another sandbox of the network, through the host's address (hairpin), and from itself.
    // (A sandbox on another network is isolated from it, published port or not, as with Docker.)
    f.publish("client", "web_nw", &[]);
    assert!(
        tcp_fetch(&f.sandbox_ns("client"), sa("192.0.2.1:8080"), TIMEOUT)
            .unwrap()
            .starts_with("web from")
    );
    assert!(
        tcp_fetch(&web, sa("192.0.2.1:8080"), TIMEOUT)
            .unwrap()
            .starts_with("web from")
    );

    let insp = f.ctl().inspect_sandbox("web").unwrap();
    let b = &insp.ports["80/tcp"];
    assert_eq!(b[0].host_ip, "0.0.0.0");
    assert_eq!(b[0].host_port, "8080");
    assert_eq!(insp.ports["53/udp"][0].host_port, "5353");

    // The host socket is held: nobody else can bind the published port.
    let taken = f.host.exec(|| TcpListener::bind("0.0.0.0:8080")).unwrap();
    assert!(taken.is_err());
    // Disconnect releases everything.
    f.ctl().disconnect("web", "web_nw").unwrap();
    assert!(
        f.host
            .exec(|| TcpListener::bind("0.0.0.0:8080"))
            .unwrap()
            .is_ok()
    );
    assert!(tcp_fetch(peer.netns(), sa("192.0.2.1:8080"), TIMEOUT).is_err());
    assert_eq!(dnat_rules(&f), 0, "{}", f.iptables_save());
}

#[test]
fn automatic_ports_conflicts_and_loopback_only() {
    let f = Fixture::new();
    let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    f.publish("auto", "bridge", &["80"]);
    let port: u16 = f.ctl().inspect_sandbox("auto").unwrap().ports["80/tcp"][0]
        .host_port
        .parse()
        .unwrap();
    let range = f
        .host
        .run("cat", &["/proc/sys/net/ipv4/ip_local_port_range"])
        .unwrap();
    let mut it = range.split_whitespace().map(|n| n.parse::<u16>().unwrap());
    let (lo, hi) = (it.next().unwrap(), it.next().unwrap());
    assert!((lo..=hi).contains(&port), "{port} in {lo}-{hi}");

    f.publish("first", "bridge", &["8080:80"]);
    let rules = f.iptables_save();
    let mut req = SandboxCreate::new("second");
    req.network = Some("bridge".into());
    req.endpoint.ports = vec!["8080:81".parse().unwrap()];
    let err = f.ctl().create_sandbox(req).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Bind for 0.0.0.0:8080 failed: port is already allocated"
    );
    assert!(
        f.ctl().inspect_sandbox("second").is_err(),
        "the sandbox was rolled back"
    );
    assert_eq!(
        f.iptables_save()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        rules
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
    );

    // A port another process on the host holds.
    let _squatter = f
        .host
        .exec(|| TcpListener::bind("0.0.0.0:9090"))
        .unwrap()
        .unwrap();
    let mut req = SandboxCreate::new("third");
    req.network = Some("bridge".into());
    req.endpoint.ports = vec!["9090:80".parse().unwrap()];
    let err = f.ctl().create_sandbox(req).unwrap_err();
    assert!(err.to_string().contains("0.0.0.0:9090"), "{err}");

    // Published on 127.0.0.1 only: the host reaches it, the LAN does not.
    let ip = f.publish("local", "bridge", &["127.0.0.1:7070:80"]);
    let _srv = TcpBanner::start(&f.sandbox_ns("local"), sa(&format!("{ip}:80")), "local").unwrap();
    assert!(tcp_fetch(f.host.netns(), sa("127.0.0.1:7070"), TIMEOUT).is_ok());
    assert!(tcp_fetch(peer.netns(), sa("192.0.2.1:7070"), TIMEOUT).is_err());
    // Nor can the LAN peer route straight to the container's port.
    peer.route_via("172.17.0.0/16", "192.0.2.1").unwrap();
    assert!(tcp_fetch(peer.netns(), sa(&format!("{ip}:80")), TIMEOUT).is_err());
}

#[test]
fn a_range_is_one_rule_and_survives_a_restart() {
    let mut f = Fixture::new();
    let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    let before = dnat_rules(&f);
    let ip = f.publish("ranged", "bridge", &["9000-9009:9000-9009"]);
    let after = dnat_rules(&f);
    assert_eq!(
        after - before,
        1,
        "one DNAT rule for the range: {}",
        f.iptables_save()
    );
    let srv = TcpBanner::start(&f.sandbox_ns("ranged"), sa(&format!("{ip}:9005")), "r").unwrap();
    assert!(tcp_fetch(peer.netns(), sa("192.0.2.1:9005"), TIMEOUT).is_ok());
    drop(srv);

    f.restart();
    assert_eq!(dnat_rules(&f), after, "neither lost nor doubled");
    let _srv = TcpBanner::start(&f.sandbox_ns("ranged"), sa(&format!("{ip}:9007")), "r").unwrap();
    assert!(tcp_fetch(peer.netns(), sa("192.0.2.1:9007"), TIMEOUT).is_ok());
    assert!(
        f.host
            .exec(|| TcpListener::bind("0.0.0.0:9003"))
            .unwrap()
            .is_err(),
        "held again after the restart"
    );
    assert_eq!(f.ctl().inspect_sandbox("ranged").unwrap().ports.len(), 10);
}

#[test]
fn ipv6_publication() {
    let f = Fixture::with(|c| c.ipv6 = true);
    let peer = f
        .host
        .add_lan_peer("2001:db8:1::1/64", "2001:db8:1::2/64")
        .unwrap();
    let mut req = NetworkCreate::new("v6")
        .subnet(IpamPoolConfig {
            subnet: Some("10.66.0.0/24".parse().unwrap()),
            ..Default::default()
        })
        .subnet(IpamPoolConfig {
            subnet: Some("fd00:66::/64".parse().unwrap()),
            ..Default::default()
        });
    req.enable_ipv6 = true;
    f.ctl().create_network(req).unwrap();
    f.publish("six", "v6", &["8086:80"]);
    let v6 = f.ctl().inspect_sandbox("six").unwrap().networks["v6"]
        .ipv6_address
        .clone();
    let _srv = TcpBanner::start(&f.sandbox_ns("six"), sa(&format!("[{v6}]:80")), "six").unwrap();
    let got = tcp_fetch(peer.netns(), sa("[2001:db8:1::1]:8086"), TIMEOUT).unwrap();
    assert_eq!(got, "six from 2001:db8:1::2");
    let binds: Vec<String> = f.ctl().inspect_sandbox("six").unwrap().ports["80/tcp"]
        .iter()
        .map(|b| b.host_ip.clone())
        .collect();
    assert_eq!(binds, ["0.0.0.0", "::"]);
}

#[test]
fn userland_proxy_carries_ipv6_clients_to_an_ipv4_only_container() {
    let f = Fixture::with(|c| {
        c.ipv6 = true;
        c.userland_proxy = true;
    });
    let peer = f
        .host
        .add_lan_peer("2001:db8:1::1/64", "2001:db8:1::2/64")
        .unwrap();
    let ip = f.publish("v4only", "bridge", &["8088:80", "5300:53/udp"]);
    let ns = f.sandbox_ns("v4only");
    let _tcp = TcpBanner::start(&ns, sa(&format!("{ip}:80")), "v4").unwrap();
    let _udp = UdpEcho::start(&ns, sa(&format!("{ip}:53")), "u4").unwrap();
    let got = tcp_fetch(peer.netns(), sa("[2001:db8:1::1]:8088"), TIMEOUT).unwrap();
    assert_eq!(
        got, "v4 from 172.17.0.1",
        "relayed by the proxy from the host side"
    );
    let got = udp_exchange(peer.netns(), sa("[2001:db8:1::1]:5300"), TIMEOUT).unwrap();
    assert_eq!(got, "u4 from 172.17.0.1");
    f.ctl().remove_sandbox("v4only").unwrap();
    assert!(tcp_fetch(peer.netns(), sa("[2001:db8:1::1]:8088"), TIMEOUT).is_err());
    let r = f.host.exec(|| TcpListener::bind("[::]:8088")).unwrap();
    assert!(r.is_ok(), "the proxy let go of the port: {r:?}");
}

/// A sandbox reaches its own published port through the host (hairpin) also after a restart
/// that had to make its veth pair anew (here: removed from outside while berth was down).
#[test]
fn a_pair_made_anew_on_restart_keeps_hairpin() {
    let mut f = Fixture::new();
    let _peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    let ip = f.publish("selfie", "bridge", &["8181:80"]);
    let links = f.host.output("ip", &["-o", "link", "show"]).unwrap();
    let links = String::from_utf8_lossy(&links.stdout).into_owned();
    let veth: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n))
        .filter(|n| n.starts_with("berth"))
        .collect();
    assert_eq!(veth.len(), 1, "one host-side veth: {links}");
    let veth = veth[0].to_owned();
    let detail = |f: &Fixture| {
        let o = f.host.output("ip", &["-d", "link", "show", &veth]).unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(detail(&f).contains("hairpin on"), "{}", detail(&f));

    f.host.ip(&["link", "del", &veth]).unwrap();
    f.restart();
    assert!(
        detail(&f).contains("hairpin on"),
        "remade with hairpin: {}",
        detail(&f)
    );
    let ns = f.sandbox_ns("selfie");
    let _srv = TcpBanner::start(&ns, sa(&format!("{ip}:80")), "me").unwrap();
    assert!(
        tcp_fetch(&ns, sa("192.0.2.1:8181"), TIMEOUT)
            .unwrap()
            .starts_with("me from"),
        "the sandbox reaches its own published port after the restart"
    );
}

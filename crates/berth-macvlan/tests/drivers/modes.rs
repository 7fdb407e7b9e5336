//! macvlan modes: bridge (sandboxes on the LAN, both ways, IPv4 and IPv6, DNS, the parent's
//! MTU, Docker's MAC addresses, and the host's own limitation), private, VEPA with and without
//! a reflecting switch, passthru.

use std::io::ErrorKind;
use std::net::SocketAddr;

use berth_testhost::lan::Capture;
use berth_testhost::traffic::{TcpBanner, UdpEcho, tcp_fetch, udp_exchange, udp_exchange_df};

use crate::common::*;

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

#[test]
fn bridge_mode_puts_sandboxes_on_the_lan() {
    let mut f = Fixture::new();
    let lan = f.lan("10.88.0.250/24", "10.88.0.254/24");
    let peer = f.peer(&lan);
    peer.ip(&["addr", "add", "fd88::fe/64", "dev", "eth0", "nodad"])
        .unwrap();
    // Beyond the LAN: an address the sandboxes reach only through their gateway (the peer).
    peer.ip(&["addr", "add", "192.0.2.77/32", "dev", "lo"])
        .unwrap();
    // The parent's MTU is the sandboxes' MTU.
    f.host.ip(&["link", "set", &lan, "mtu", "1400"]).unwrap();
    let before = f.host_state();

    f.create(
        &Net::macvlan("lan_nw")
            .parent(&lan)
            .v4("10.88.0.0/24", Some("10.88.0.254"), Some("10.88.0.128/25"))
            .v6("fd88::/64", Some("fd88::fe")),
    )
    .unwrap();
    let a = f.sandbox_on("a", "lan_nw");
    let b = f.sandbox_on("b", "lan_nw");
    let (a6, b6) = (f.ip6_of("a", "lan_nw"), f.ip6_of("b", "lan_nw"));
    let range: ipnet::Ipv4Net = "10.88.0.128/25".parse().unwrap();
    assert!(
        range.contains(&a.parse::<std::net::Ipv4Addr>().unwrap()),
        "{a}"
    );
    assert!(!a6.is_empty() && !b6.is_empty());
    let peer = f.peer(&lan);

    // Sandbox to LAN and LAN to sandbox, both families; the gateway carries the way out.
    assert!(f.ping("a", "10.88.0.254"), "sandbox to LAN peer (IPv4)");
    assert!(f.ping("a", "fd88::fe"), "sandbox to LAN peer (IPv6)");
    assert!(peer.ping(&a), "LAN peer to sandbox (IPv4)");
    assert!(peer.ping(&b6), "LAN peer to sandbox (IPv6)");
    assert!(
        f.ping("b", "192.0.2.77"),
        "beyond the LAN through the gateway"
    );
    // Bridge mode: the sandboxes reach each other inside the host.
    assert!(f.ping("a", &b) && f.ping("b", &a6), "sandbox to sandbox");

    // TCP and UDP both ways; the LAN sees the sandbox's own address (no NAT).
    let lan_tcp = TcpBanner::start(peer.netns(), addr("0.0.0.0", 0), "lan").unwrap();
    let got = tcp_fetch(
        &f.ns("a"),
        addr("10.88.0.254", lan_tcp.addr().port()),
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(got, format!("lan from {a}"));
    let sb_tcp = TcpBanner::start(&f.ns("b"), addr("::", 0), "b").unwrap();
    let got = tcp_fetch(peer.netns(), addr(&b6, sb_tcp.addr().port()), TIMEOUT).unwrap();
    assert_eq!(got, "b from fd88::fe");
    let lan_udp = UdpEcho::start(peer.netns(), addr("::", 0), "echo").unwrap();
    let to6 = addr("fd88::fe", lan_udp.addr().port());
    let got = udp_exchange(&f.ns("a"), to6, TIMEOUT).unwrap();
    assert_eq!(got, format!("echo from {a6}"));
    let lan_udp4 = UdpEcho::start(peer.netns(), addr("0.0.0.0", 0), "echo4").unwrap();
    let to = addr("10.88.0.254", lan_udp4.addr().port());
    // The parent's MTU: 1400 bytes go, one more is refused by the sandbox's own stack.
    let ok = udp_exchange_df(&f.ns("a"), to, 1400 - 28, TIMEOUT).unwrap();
    assert_eq!(ok, format!("echo4 from {a}"));
    let too_big = udp_exchange_df(&f.ns("a"), to, 1400 - 27, TIMEOUT).unwrap_err();
    assert_eq!(too_big.raw_os_error(), Some(libc::EMSGSIZE), "{too_big}");

    // Docker's MAC address (02:42 + the IPv4 address), as the LAN learned it.
    let octets: Vec<String> = a
        .split('.')
        .map(|o| format!("{:02x}", o.parse::<u8>().unwrap()))
        .collect();
    let mac = format!("02:42:{}", octets.join(":"));
    let neigh = peer.ip(&["neigh", "show", &a]).unwrap();
    assert!(
        neigh.contains(&mac),
        "the LAN learned {mac} for {a}: {neigh}"
    );

    // The embedded DNS server on a user-defined macvlan network.
    assert_eq!(f.dig("a", "b"), b);
    assert_eq!(f.dig("b", "a.lan_nw"), a);

    // The host cannot reach its own macvlan sandboxes over the parent (nor they the host's
    // address there), while the LAN can: the kernel's macvlan, documented in the crate.
    assert!(!f.host.ping(&a), "the host reached its own macvlan sandbox");
    assert!(
        !f.ping("a", "10.88.0.250"),
        "a sandbox reached the host's parent address"
    );
    assert!(peer.ping(&a), "the LAN still reaches it");

    drop((lan_tcp, sb_tcp, lan_udp, lan_udp4));
    for sb in ["a", "b"] {
        f.ctl().remove_sandbox(sb).unwrap();
    }
    f.ctl().remove_network("lan_nw").unwrap();
    assert_eq!(f.host_state(), before, "nothing left in the host");
}

#[test]
fn private_mode_isolates_sandboxes_that_still_reach_the_lan() {
    let mut f = Fixture::new();
    let lan = f.lan("10.87.0.250/24", "10.87.0.254/24");
    f.create(
        &Net::macvlan("private_nw")
            .parent(&lan)
            .opt("macvlan_mode", "private")
            .v4("10.87.0.0/24", Some("10.87.0.254"), None),
    )
    .unwrap();
    let a = f.sandbox_on("a", "private_nw");
    let b = f.sandbox_on("b", "private_nw");
    assert!(f.ping("a", "10.87.0.254") && f.ping("b", "10.87.0.254"));
    assert!(f.peer(&lan).ping(&a) && f.peer(&lan).ping(&b));
    assert!(
        !f.ping("a", &b),
        "private mode: sandbox to sandbox is blocked"
    );
    let echo = UdpEcho::start(&f.ns("b"), addr("0.0.0.0", 0), "b").unwrap();
    let to = addr(&b, echo.addr().port());
    let e = udp_exchange(&f.ns("a"), to, TIMEOUT).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "no answer, and no refusal either (which would mean it arrived): {e}"
    );
    // The echo server does answer where it can be reached: from the LAN.
    let got = udp_exchange(f.peer(&lan).netns(), to, TIMEOUT).unwrap();
    assert_eq!(got, "b from 10.87.0.254");
}

#[test]
fn vepa_needs_a_switch_that_reflects() {
    let mut f = Fixture::new();
    // A LAN peer that is a plain host, and one behind a switch that sends frames back out of
    // the port they came in on.
    let plain = f.lan("10.86.0.250/24", "10.86.0.254/24");
    let switched = f.switched_lan("10.85.0.250/24", "10.85.0.254/24", true);
    for (name, parent, subnet, gw) in [
        ("vepa_plain", &plain, "10.86.0.0/24", "10.86.0.254"),
        ("vepa_switched", &switched, "10.85.0.0/24", "10.85.0.254"),
    ] {
        f.create(
            &Net::macvlan(name)
                .parent(parent)
                .opt("macvlan_mode", "vepa")
                .v4(subnet, Some(gw), None),
        )
        .unwrap();
    }
    f.sandbox_on("a", "vepa_plain");
    let b = f.sandbox_on("b", "vepa_plain");
    assert!(f.ping("a", "10.86.0.254") && f.ping("b", "10.86.0.254"));
    assert!(
        !f.ping("a", &b),
        "VEPA without a reflecting switch: sandbox to sandbox is blocked"
    );

    f.sandbox_on("c", "vepa_switched");
    let d = f.sandbox_on("d", "vepa_switched");
    assert!(f.ping("c", "10.85.0.254"), "the switch's host answers");
    let port = f.peer(&switched);
    let capture = Capture::start(port, "eth0", &["icmp"]).unwrap();
    assert!(f.ping("c", &d), "VEPA with hairpin on: sandbox to sandbox");
    let seen = capture.finish().unwrap();
    let reflected = seen
        .lines()
        .filter(|l| l.contains(&format!("> {d}: ICMP echo request")))
        .count();
    assert!(
        reflected >= 1,
        "the echo request passed the switch's port:\n{seen}"
    );
    // The reflection is what carries it: with hairpin off, the same two are cut off.
    port.ip(&[
        "link",
        "set",
        "dev",
        "eth0",
        "type",
        "bridge_slave",
        "hairpin",
        "off",
    ])
    .unwrap();
    assert!(!f.ping("c", &d), "without the reflection, VEPA blocks");
}

#[test]
fn passthru_gives_the_parent_to_one_endpoint() {
    let mut f = Fixture::new();
    let lan = f.lan("10.84.0.250/24", "10.84.0.254/24");
    f.create(
        &Net::macvlan("pt_nw")
            .parent(&lan)
            .opt("macvlan_mode", "passthru")
            .v4("10.84.0.0/24", Some("10.84.0.254"), None),
    )
    .unwrap();
    let parent_mac = f
        .host
        .ip(&["-o", "link", "show", &lan])
        .unwrap()
        .split("link/ether ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_owned();
    let a = f.sandbox_on("a", "pt_nw");
    assert!(
        f.ping("a", "10.84.0.254"),
        "the one endpoint reaches the LAN"
    );
    assert!(f.peer(&lan).ping(&a));
    // It answers with the parent's own MAC address (which berth leaves as it is).
    let neigh = f.peer(&lan).ip(&["neigh", "show", &a]).unwrap();
    assert!(neigh.contains(&parent_mac), "{parent_mac}: {neigh}");

    let before = f.host_state();
    f.ctl()
        .create_sandbox(berth::SandboxCreate::new("b"))
        .unwrap();
    let e = f
        .ctl()
        .connect("b", "pt_nw", berth::EndpointOptions::default())
        .unwrap_err();
    let text = chain(&e);
    assert!(
        text.contains("passthru") && text.contains(&lan) && text.contains("one endpoint only"),
        "{text}"
    );
    assert_eq!(
        f.links_in("b").lines().count(),
        1,
        "b has only its loopback"
    );
    assert_eq!(f.host_state(), before, "nothing left in the host");
    assert!(
        f.ping("a", "10.84.0.254"),
        "the first endpoint is untouched"
    );
}

#[test]
fn published_ports_are_accepted_and_have_no_effect() {
    let mut f = Fixture::new();
    let lan = f.lan("10.83.0.250/24", "10.83.0.254/24");
    f.create(
        &Net::macvlan("pub_nw")
            .parent(&lan)
            .v4("10.83.0.0/24", Some("10.83.0.254"), None),
    )
    .unwrap();
    // As Docker: `-p 8080:80` on a macvlan network is accepted (with a warning) and publishes
    // nothing; the sandbox's port is reachable on its own address.
    let mut req = berth::SandboxCreate::new("web");
    req.network = Some("pub_nw".into());
    req.endpoint = berth::EndpointOptions {
        ports: vec!["8080:80".parse().unwrap()],
        ..Default::default()
    };
    f.ctl().create_sandbox(req).unwrap();
    let web = f.ip_of("web", "pub_nw");
    let server = TcpBanner::start(&f.ns("web"), addr("0.0.0.0", 80), "web").unwrap();
    let peer = f.peer(&lan);
    let got = tcp_fetch(peer.netns(), addr(&web, 80), TIMEOUT).unwrap();
    assert_eq!(got, "web from 10.83.0.254");
    let e = tcp_fetch(peer.netns(), addr("10.83.0.250", 8080), TIMEOUT).unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::ConnectionRefused,
        "nothing published on the host: {e}"
    );
    drop(server);
}

//! The overlay driver across hosts, as root: an underlay switch, berth hosts on it (each with
//! its controller and overlay driver) sharing one cluster store, and real traffic between
//! sandboxes on different hosts.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_store::{KvStore, MemoryStore};
use berth_testhost::cluster::Underlay;
use berth_testhost::traffic::{TcpBanner, UdpEcho, tcp_fetch, udp_exchange, udp_exchange_df};
use common::*;

#[test]
fn sandboxes_on_two_hosts_talk_over_the_overlay() {
    let underlay = Underlay::new().unwrap();
    let cluster: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let a = Node::new(&underlay, &cluster);
    let b = Node::new(&underlay, &cluster);

    a.ctl().create_network(overlay("ov1")).unwrap();
    let net = a.ctl().inspect_network("ov1").unwrap();
    assert_eq!(net.scope, "global");
    assert_eq!(net.driver, "overlay");
    assert_eq!(
        net.options
            .get("com.docker.network.driver.overlay.vxlanid_list")
            .map(String::as_str),
        Some("4096"),
        "the VXLAN id is shown in inspect: {:?}",
        net.options
    );
    eventually("host b learns of ov1", 5, || {
        b.ctl().inspect_network("ov1").is_ok()
    });

    let ip_a = a.sandbox_on("sa", "ov1");
    let ip_b = b.sandbox_on("sb", "ov1");
    assert_ne!(ip_a, ip_b);
    // MTU: the underlay's 1500 minus VXLAN's 50.
    let link = a
        .sandbox_ns("sa")
        .command("ip")
        .args(["-o", "link", "show", "eth0"])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout).into_owned();
    assert!(link.contains(" mtu 1450 "), "{link}");

    eventually("a reaches b across the overlay", 5, || a.ping("sa", &ip_b));
    assert!(b.ping("sb", &ip_a), "b reaches a");

    // TCP and UDP, both ways.
    let tcp = TcpBanner::start(
        &b.sandbox_ns("sb"),
        SocketAddr::new(ip_b.parse().unwrap(), 8080),
        "hello from b",
    )
    .unwrap();
    assert_eq!(
        tcp_fetch(&a.sandbox_ns("sa"), tcp.addr(), Duration::from_secs(3)).unwrap(),
        format!("hello from b from {ip_a}"),
        "TCP from a reaches b with a's own address (no NAT on the overlay)"
    );
    let udp = UdpEcho::start(
        &a.sandbox_ns("sa"),
        SocketAddr::new(ip_a.parse().unwrap(), 5353),
        "udp from a",
    )
    .unwrap();
    assert_eq!(
        udp_exchange(&b.sandbox_ns("sb"), udp.addr(), Duration::from_secs(3)).unwrap(),
        format!("udp from a from {ip_b}"),
        "UDP from b reaches a with b's own address"
    );
    // MTU: a datagram filling the overlay MTU (1450 = 1422 bytes of UDP payload + 28 of
    // headers) with don't-fragment set crosses hosts (1500 bytes on the underlay with VXLAN's
    // 50); one byte more is refused at the sender, not fragmented or silently dropped.
    assert_eq!(
        udp_exchange_df(
            &b.sandbox_ns("sb"),
            udp.addr(),
            1422,
            Duration::from_secs(3)
        )
        .unwrap(),
        format!("udp from a from {ip_b}"),
        "a full-size packet with DF set crosses the underlay"
    );
    let over = udp_exchange_df(
        &b.sandbox_ns("sb"),
        udp.addr(),
        1423,
        Duration::from_secs(3),
    )
    .expect_err("one byte over the MTU with DF set");
    assert!(
        over.to_string().contains("Message too long"),
        "refused with EMSGSIZE: {over}"
    );
    drop((tcp, udp));

    // No flooding: b's address is answered on a's host from a static neighbour entry.
    let ov_ns =
        berth_testhost::berth_netlink::Netns::open(a.overlay.netns_path(&net.id.parse().unwrap()))
            .unwrap();
    let neigh = ov_ns
        .command("ip")
        .args(["neigh", "show", "dev", "vxlan0"])
        .output()
        .unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout).into_owned();
    assert!(
        neigh.contains(&ip_b) && neigh.contains("PERMANENT"),
        "{neigh}"
    );
    assert_eq!(a.overlay.programmed_peers(&net.id.parse().unwrap()), 1);

    // Disconnect on b: a forgets it.
    b.ctl().disconnect("sb", "ov1").unwrap();
    eventually("a forgets b's endpoint", 5, || {
        a.overlay.programmed_peers(&net.id.parse().unwrap()) == 0
    });
    assert!(!a.ping("sa", &ip_b));
}

#[test]
fn names_resolve_across_hosts_and_networks_stay_apart() {
    let underlay = Underlay::new().unwrap();
    let cluster: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let a = Node::new(&underlay, &cluster);
    let b = Node::new(&underlay, &cluster);
    a.ctl().create_network(overlay("front")).unwrap();
    b.ctl().create_network(overlay("back")).unwrap();
    assert_ne!(
        a.ctl().inspect_network("front").unwrap().options,
        b.ctl().inspect_network("back").unwrap().options,
        "two networks, two VXLAN ids"
    );
    eventually("both hosts know both networks", 5, || {
        a.ctl().inspect_network("back").is_ok() && b.ctl().inspect_network("front").is_ok()
    });

    // web on a (front), api on b (front and back), db on a (back).
    let web = a.sandbox_on("web", "front");
    a.ctl()
        .create_sandbox(berth::SandboxCreate::new("db"))
        .unwrap();
    let opts = berth::EndpointOptions {
        aliases: vec!["database".into()],
        ..Default::default()
    };
    a.ctl().connect("db", "back", opts).unwrap();
    let db = a.ip_of("db", "back");
    let api_front = b.sandbox_on("api", "front");
    b.ctl()
        .connect("api", "back", berth::EndpointOptions::default())
        .unwrap();

    // Names and aliases across hosts, on the networks the asker is on.
    eventually("web resolves api across hosts", 5, || {
        a.dig("web", "api") == api_front
    });
    eventually("api resolves db's alias across hosts", 5, || {
        b.dig("api", "database") == db
    });
    assert_eq!(b.dig("api", "web"), web);
    // No name from a network the sandbox is not on.
    assert_eq!(a.dig("web", "db"), "", "db is not on front");
    assert_eq!(a.dig("web", "database"), "");
    // And no traffic: front and back are separate VXLAN segments.
    eventually("web reaches api on front", 5, || a.ping("web", &api_front));
    assert!(!a.ping("web", &db), "front reaches back");

    // A rename reaches the other hosts.
    b.ctl().rename_sandbox("api", "api2").unwrap();
    eventually("web resolves api's new name", 5, || {
        a.dig("web", "api2") == api_front
    });
    assert_eq!(a.dig("web", "api"), "", "the old name is gone");

    // The remote name goes with the remote endpoint.
    b.ctl().disconnect("api2", "front").unwrap();
    eventually("web forgets api2", 5, || a.dig("web", "api2").is_empty());
}

/// The cluster store's peer entries published from `vtep`.
fn peers_of(cluster: &Arc<dyn KvStore>, vtep: std::net::IpAddr) -> usize {
    cluster
        .list(berth_overlay::PEER_PREFIX)
        .unwrap()
        .entries
        .iter()
        .filter(|e| String::from_utf8_lossy(&e.value).contains(&format!("\"{vtep}\"")))
        .count()
}

#[test]
fn a_dead_host_goes_when_its_lease_expires_and_a_restarted_one_stays() {
    let underlay = Underlay::new().unwrap();
    let cluster: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let a = Node::new(&underlay, &cluster);
    let mut b = Node::new(&underlay, &cluster);
    let c = Node::new(&underlay, &cluster);
    a.ctl().create_network(overlay("ov")).unwrap();
    let id = a.ctl().inspect_network("ov").unwrap().id.parse().unwrap();
    eventually("b and c learn of ov", 5, || {
        b.ctl().inspect_network("ov").is_ok() && c.ctl().inspect_network("ov").is_ok()
    });
    a.sandbox_on("sa", "ov");
    let ip_b = b.sandbox_on("sb", "ov");
    let ip_c = c.sandbox_on("sc", "ov");
    eventually("a programs b and c", 5, || {
        a.overlay.programmed_peers(&id) == 2
    });
    assert!(a.ping("sa", &ip_b) && a.ping("sa", &ip_c));
    eventually("a resolves sb and sc", 5, || {
        a.dig("sa", "sb") == ip_b && a.dig("sa", "sc") == ip_c
    });
    let b_instance = b.ctl().instance_id().to_owned();
    let c_instance = c.ctl().instance_id().to_owned();

    // b restarts: its sandbox keeps working, its entry is put again under its new lease, and
    // the old lease's expiry takes nothing away.
    b.restart();
    assert!(
        a.ping("sa", &ip_b),
        "b's sandbox works across its daemon's restart"
    );
    std::thread::sleep(LEASE_TTL + Duration::from_secs(2));
    assert_eq!(peers_of(&cluster, b.ul.addr), 1, "b's entry, once");
    assert_eq!(
        marks_of(&cluster, &b_instance),
        1,
        "b's endpoint mark, once"
    );
    assert_eq!(a.dig("sa", "sb"), ip_b, "b's names outlive its old lease");
    assert_eq!(a.overlay.programmed_peers(&id), 2);
    assert!(
        a.ping("sa", &ip_b),
        "still reachable after the old lease expired"
    );

    // c dies (its controller and driver gone without a word, its namespaces deleted): its
    // entry goes when its lease expires, and a forgets it.
    let c_addr = c.ul.addr;
    let died = std::time::Instant::now();
    drop(c);
    eventually("a forgets the dead host's endpoint", 10, || {
        a.overlay.programmed_peers(&id) == 1
    });
    let gone_after = died.elapsed();
    // The lease was renewed at most a third of its time to live before the death.
    assert!(
        gone_after >= LEASE_TTL * 2 / 3 - Duration::from_millis(100),
        "removed before the lease could expire ({gone_after:?})"
    );
    assert_eq!(peers_of(&cluster, c_addr), 0, "no stale entry in the store");
    // Its names and endpoint marks went with its lease too: a no longer resolves sc, and the
    // network can be removed once the living hosts leave it.
    eventually("a forgets the dead host's names", 5, || {
        a.dig("sa", "sc").is_empty()
    });
    assert_eq!(marks_of(&cluster, &c_instance), 0, "no stale endpoint mark");
    let ov_ns = berth_testhost::berth_netlink::Netns::open(a.overlay.netns_path(&id)).unwrap();
    let neigh = ov_ns
        .command("ip")
        .args(["neigh", "show", "dev", "vxlan0"])
        .output()
        .unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout).into_owned();
    assert!(!neigh.contains(&ip_c), "stale neighbour entry: {neigh}");
    assert!(neigh.contains(&ip_b), "{neigh}");
    a.ctl().disconnect("sa", "ov").unwrap();
    b.ctl().disconnect("sb", "ov").unwrap();
    a.ctl().remove_network("ov").unwrap();
}

/// The endpoint marks (which host has endpoints on which global network) of an instance.
fn marks_of(cluster: &Arc<dyn KvStore>, instance: &str) -> usize {
    cluster
        .list("network-endpoint/")
        .unwrap()
        .entries
        .iter()
        .filter(|e| e.value == instance.as_bytes())
        .count()
}

#[test]
fn an_overlay_only_sandbox_goes_out_and_publishes_through_docker_gwbridge() {
    let underlay = Underlay::new().unwrap();
    let cluster: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let a = Node::new(&underlay, &cluster);
    // A LAN peer: another machine on the underlay, not a berth host.
    let lan = underlay.add_host().unwrap();

    a.ctl().create_network(overlay("ov")).unwrap();
    a.ctl()
        .create_sandbox(berth::SandboxCreate::new("web"))
        .unwrap();
    let opts = berth::EndpointOptions {
        ports: vec!["8080:80".parse().unwrap()],
        ..Default::default()
    };
    a.ctl().connect("web", "ov", opts).unwrap();
    let web = a.ctl().inspect_sandbox("web").unwrap();
    let mut nets: Vec<&String> = web.networks.keys().collect();
    nets.sort();
    assert_eq!(
        nets,
        ["docker_gwbridge", "ov"],
        "a second interface for egress"
    );
    assert_eq!(
        web.ports.get("80/tcp").map(|b| b[0].host_port.as_str()),
        Some("8080"),
        "{:?}",
        web.ports
    );

    // The published port, from the LAN peer to the host's underlay address.
    let banner = TcpBanner::start(
        &a.sandbox_ns("web"),
        "0.0.0.0:80".parse().unwrap(),
        "hello from web",
    )
    .unwrap();
    let got = tcp_fetch(
        lan.host.netns(),
        SocketAddr::new(a.ul.addr, 8080),
        Duration::from_secs(3),
    )
    .unwrap();
    assert!(got.starts_with("hello from web from "), "{got}");
    drop(banner);
    // And out: the sandbox reaches the LAN peer (masqueraded as the host).
    assert!(
        a.ping("web", &lan.addr.to_string()),
        "egress through docker_gwbridge"
    );

    // Leaving the overlay takes the gateway bridge endpoint and its port with it.
    a.ctl().disconnect("web", "ov").unwrap();
    assert!(
        a.ctl().inspect_sandbox("web").unwrap().networks.is_empty(),
        "no gateway bridge without an overlay"
    );
    assert!(
        tcp_fetch(
            lan.host.netns(),
            SocketAddr::new(a.ul.addr, 8080),
            Duration::from_secs(1)
        )
        .is_err(),
        "the port went with it"
    );

    // An internal overlay: no gateway bridge, no way out, and no ports to publish.
    let mut internal = overlay("inner");
    internal.internal = true;
    a.ctl().create_network(internal).unwrap();
    let iso = a.sandbox_on("iso", "inner");
    assert!(!iso.is_empty());
    let nets: Vec<String> = a
        .ctl()
        .inspect_sandbox("iso")
        .unwrap()
        .networks
        .into_keys()
        .collect();
    assert_eq!(
        nets,
        ["inner"],
        "no docker_gwbridge for an internal overlay"
    );
    assert!(!a.ping("iso", &lan.addr.to_string()), "no way out");
    a.ctl()
        .create_sandbox(berth::SandboxCreate::new("iso2"))
        .unwrap();
    let refused = a
        .ctl()
        .connect(
            "iso2",
            "inner",
            berth::EndpointOptions {
                ports: vec!["8081:80".parse().unwrap()],
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
    assert!(refused.contains("internal"), "{refused}");
}

#[test]
fn an_overlay_takes_its_subnet_and_mtu_from_the_user() {
    let underlay = Underlay::new().unwrap();
    let cluster: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let a = Node::new(&underlay, &cluster);
    let b = Node::new(&underlay, &cluster);
    let req = overlay("small")
        .option("com.docker.network.driver.mtu", "1400")
        .subnet(berth::IpamPoolConfig {
            subnet: Some("10.99.0.0/24".parse().unwrap()),
            ..Default::default()
        });
    a.ctl().create_network(req).unwrap();
    let net = a.ctl().inspect_network("small").unwrap();
    assert_eq!(net.ipam.config[0].subnet, "10.99.0.0/24");
    eventually("b knows small", 5, || {
        b.ctl().inspect_network("small").is_ok()
    });
    let ip_a = a.sandbox_on("sa", "small");
    assert!(ip_a.starts_with("10.99.0."), "{ip_a}");
    let ip_b = b.sandbox_on("sb", "small");
    let link = a
        .sandbox_ns("sa")
        .command("ip")
        .args(["-o", "link", "show", "eth0"])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout).into_owned();
    assert!(link.contains(" mtu 1400 "), "{link}");
    let udp = UdpEcho::start(
        &b.sandbox_ns("sb"),
        SocketAddr::new(ip_b.parse().unwrap(), 5353),
        "b",
    )
    .unwrap();
    eventually("a reaches b", 5, || a.ping("sa", &ip_b));
    let ns = a.sandbox_ns("sa");
    assert!(udp_exchange_df(&ns, udp.addr(), 1372, Duration::from_secs(3)).is_ok());
    let over = udp_exchange_df(&ns, udp.addr(), 1373, Duration::from_secs(3)).unwrap_err();
    assert!(over.to_string().contains("Message too long"), "{over}");
    // A bad MTU is refused, naming the option, and nothing is made.
    let err = a
        .ctl()
        .create_network(overlay("bad").option("com.docker.network.driver.mtu", "huge"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("com.docker.network.driver.mtu"), "{err}");
    assert!(a.ctl().inspect_network("bad").is_err());
}

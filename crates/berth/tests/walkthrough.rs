//! The guide's walkthrough, in test hosts, proved with real traffic.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use berth::{EndpointOptions, IpamPoolConfig, NetworkCreate, SandboxCreate, SandboxNetns};
use berth_testhost::traffic::{TcpBanner, tcp_fetch};
use common::{Fixture, TIMEOUT};

#[test]
fn default_networks_exist_and_cannot_be_removed() {
    let f = Fixture::new();
    let nets = f.ctl().networks();
    let names: Vec<(&str, &str)> = nets
        .iter()
        .map(|n| (n.name.as_str(), n.driver.as_str()))
        .collect();
    assert_eq!(
        names,
        [("bridge", "bridge"), ("host", "host"), ("none", "null")]
    );
    let bridge = f.ctl().inspect_network("bridge").unwrap();
    assert_eq!(bridge.ipam.config[0].subnet, "172.17.0.0/16");
    // As Docker shows the default bridge: the subnet only, no gateway, `null` IPAM options.
    assert_eq!(bridge.ipam.config[0].gateway, None);
    assert_eq!(bridge.ipam.options, None);
    assert_eq!(
        bridge.options["com.docker.network.bridge.name"], "docker0",
        "{:?}",
        bridge.options
    );
    assert_eq!(bridge.id.len(), 64);
    // The kernel has docker0 with the gateway address.
    let addr = f.host.ip(&["-o", "addr", "show", "docker0"]).unwrap();
    assert!(addr.contains("172.17.0.1/16"), "{addr}");
    for name in ["bridge", "host", "none"] {
        let err = f.ctl().remove_network(name).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{name} is a pre-defined network and cannot be removed")
        );
    }
}

#[test]
fn default_bridge_sandboxes_ping_by_ip_and_isolated_nw_is_isolated() {
    let f = Fixture::new();
    let ip1 = f.sandbox_on("container1", "bridge");
    let ip2 = f.sandbox_on("container2", "bridge");
    assert_eq!((ip1.as_str(), ip2.as_str()), ("172.17.0.2", "172.17.0.3"));
    assert!(f.ping("container1", &ip2));
    assert!(f.ping("container2", &ip1));
    let insp = f.ctl().inspect_sandbox("container1").unwrap();
    assert_eq!(insp.networks["bridge"].mac_address, "02:42:ac:11:00:02");
    assert_eq!(insp.networks["bridge"].gateway, "172.17.0.1");

    // isolated_nw gets the next free default pool.
    f.ctl()
        .create_network(NetworkCreate::new("isolated_nw"))
        .unwrap();
    let nw = f.ctl().inspect_network("isolated_nw").unwrap();
    assert_eq!(nw.ipam.config[0].subnet, "172.18.0.0/16");
    let ip3 = f.sandbox_on("container3", "isolated_nw");
    assert_eq!(ip3, "172.18.0.2");
    let nw = f.ctl().inspect_network("isolated_nw").unwrap();
    assert_eq!(nw.containers.len(), 1);
    assert_eq!(
        nw.containers.values().next().unwrap().ipv4_address,
        "172.18.0.2/16"
    );

    // Isolation: no way across, in either direction; the gateway of its own network answers.
    assert!(!f.ping("container3", &ip1));
    assert!(!f.ping("container1", &ip3));
    assert!(f.ping("container3", "172.18.0.1"));

    // Connect container2 to isolated_nw live: it reaches container3, and keeps container1.
    f.ctl()
        .connect("container2", "isolated_nw", EndpointOptions::default())
        .unwrap();
    let links = f.links_in("container2");
    assert!(links.contains("eth0") && links.contains("eth1"), "{links}");
    assert!(f.ping("container2", &ip3));
    assert!(f.ping("container2", &ip1));
    // ...and disconnect it again without recreating it.
    f.ctl().disconnect("container2", "isolated_nw").unwrap();
    assert!(!f.links_in("container2").contains("eth1"));
    assert!(!f.ping("container2", &ip3));
    assert!(f.ping("container2", &ip1));
}

#[test]
fn icc_disabled_blocks_traffic_within_the_network() {
    let f = Fixture::new();
    f.ctl()
        .create_network(
            NetworkCreate::new("no_icc").option("com.docker.network.bridge.enable_icc", "false"),
        )
        .unwrap();
    let a = f.sandbox_on("a", "no_icc");
    let b = f.sandbox_on("b", "no_icc");
    assert!(!f.ping("a", &b));
    assert!(!f.ping("b", &a));
    // The gateway (the host) still answers.
    let gw = f.ctl().inspect_sandbox("a").unwrap().networks["no_icc"]
        .gateway
        .clone();
    assert!(f.ping("a", &gw));
}

#[test]
fn internal_network_cannot_reach_the_lan_while_a_normal_one_is_masqueraded() {
    let f = Fixture::new();
    let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    let server = TcpBanner::start(peer.netns(), "192.0.2.2:8080".parse().unwrap(), "lan").unwrap();
    f.ctl()
        .create_network(NetworkCreate::new("internal_nw").internal())
        .unwrap();
    f.sandbox_on("inside", "internal_nw");
    f.sandbox_on("outside", "bridge");

    let got = tcp_fetch(&f.sandbox_ns("outside"), server.addr(), TIMEOUT).unwrap();
    assert_eq!(
        got, "lan from 192.0.2.1",
        "the LAN peer sees the host's address"
    );
    assert!(f.ping("outside", "192.0.2.2"));

    assert!(tcp_fetch(&f.sandbox_ns("inside"), server.addr(), TIMEOUT).is_err());
    assert!(!f.ping("inside", "192.0.2.2"));
    // An internal network gives no default route.
    let routes = f
        .sandbox_ns("inside")
        .command("ip")
        .args(["route"])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(!routes.contains("default"), "{routes}");
}

#[test]
fn none_has_only_loopback_and_host_sees_the_hosts_interfaces() {
    let f = Fixture::new();
    f.sandbox_on("alone", "none");
    let links = f.links_in("alone");
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:"));
    let err = f
        .ctl()
        .connect("alone", "bridge", EndpointOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("private (none) mode"), "{err}");

    let mut host_mode = SandboxCreate::new("hosted");
    host_mode.netns = SandboxNetns::Host;
    f.ctl().create_sandbox(host_mode).unwrap();
    f.ctl()
        .connect("hosted", "host", EndpointOptions::default())
        .unwrap();
    let links = f.links_in("hosted");
    assert!(links.contains("docker0"), "{links}");
    assert!(
        f.ctl()
            .connect("hosted", "bridge", EndpointOptions::default())
            .is_err()
    );
    // Removing a host-mode sandbox leaves the host namespace alone.
    f.ctl().remove_sandbox("hosted").unwrap();
    assert!(f.host.ip(&["link", "show", "docker0"]).is_ok());
}

#[test]
fn default_route_follows_the_first_non_internal_network_in_name_order() {
    let f = Fixture::new();
    let sub = |s: &str| IpamPoolConfig {
        subnet: Some(s.parse().unwrap()),
        ..Default::default()
    };
    f.ctl()
        .create_network(NetworkCreate::new("zeta").subnet(sub("10.20.0.0/24")))
        .unwrap();
    f.ctl()
        .create_network(NetworkCreate::new("alpha").subnet(sub("10.10.0.0/24")))
        .unwrap();
    f.ctl()
        .create_network(
            NetworkCreate::new("aaa_internal")
                .subnet(sub("10.30.0.0/24"))
                .internal(),
        )
        .unwrap();
    f.ctl().create_sandbox(SandboxCreate::new("multi")).unwrap();
    let route = || {
        let out = f
            .sandbox_ns("multi")
            .command("ip")
            .args(["-4", "route", "show", "default"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let connect = |n: &str| {
        f.ctl()
            .connect("multi", n, EndpointOptions::default())
            .unwrap()
    };
    connect("aaa_internal");
    assert_eq!(route(), "", "only internal networks: no default route");
    connect("zeta");
    assert!(route().starts_with("default via 10.20.0.1"), "{}", route());
    connect("alpha");
    assert!(route().starts_with("default via 10.10.0.1"), "{}", route());
    f.ctl().disconnect("multi", "alpha").unwrap();
    assert!(route().starts_with("default via 10.20.0.1"), "{}", route());
    f.ctl().disconnect("multi", "zeta").unwrap();
    assert_eq!(route(), "");
}

#[test]
fn static_addresses_and_removal_of_networks_in_use() {
    let f = Fixture::new();
    f.ctl()
        .create_network(NetworkCreate::new("static_nw").subnet(IpamPoolConfig {
            subnet: Some("172.28.0.0/16".parse().unwrap()),
            ip_range: Some("172.28.5.0/24".parse().unwrap()),
            gateway: Some("172.28.5.254".parse().unwrap()),
            ..Default::default()
        }))
        .unwrap();
    f.ctl().create_sandbox(SandboxCreate::new("s1")).unwrap();
    f.ctl()
        .connect(
            "s1",
            "static_nw",
            EndpointOptions {
                ipv4: Some("172.28.9.9".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(f.ip_of("s1", "static_nw"), "172.28.9.9");
    let ip2 = f.sandbox_on("s2", "static_nw");
    assert_eq!(ip2, "172.28.5.0", "from the ip-range");
    assert!(f.ping("s2", "172.28.9.9"));
    assert!(f.ping("s2", "172.28.5.254"));

    let err = f.ctl().remove_network("static_nw").unwrap_err();
    assert!(err.to_string().contains("has active endpoints"), "{err}");
    f.ctl().remove_sandbox("s1").unwrap();
    f.ctl().remove_sandbox("s2").unwrap();
    f.ctl().remove_network("static_nw").unwrap();
    assert!(f.berth_links().iter().all(|l| !l.starts_with("br-")));
    assert!(
        !f.iptables_save().contains("172.28.0.0/16"),
        "rules of the removed network are gone"
    );
    assert_eq!(f.ctl().prune_networks().unwrap(), Vec::<String>::new());
}

#[test]
fn published_tcp_service_on_a_sandbox_is_reachable_from_its_network_peers() {
    let f = Fixture::new();
    f.ctl()
        .create_network(NetworkCreate::new("web_nw"))
        .unwrap();
    let web = f.sandbox_on("web", "web_nw");
    f.sandbox_on("client", "web_nw");
    let addr: SocketAddr = format!("{web}:80").parse().unwrap();
    let _server = TcpBanner::start(&f.sandbox_ns("web"), addr, "web").unwrap();
    let got = tcp_fetch(&f.sandbox_ns("client"), addr, TIMEOUT).unwrap();
    assert_eq!(got, format!("web from {}", f.ip_of("client", "web_nw")));
}

/// Inspect shows what Docker 20.10 shows (checked against the reference engine): the subnet as
/// the user wrote it, a gateway only where IPAM chose the subnet or the user gave one, `null`
/// IPAM options for the predefined networks, and `Created` as Go prints it.
#[test]
fn inspect_shows_what_docker_shows() {
    let f = Fixture::new();
    let create = |name: &str, subnet: Option<&str>, gateway: Option<&str>| {
        let mut req = NetworkCreate::new(name);
        if subnet.is_some() || gateway.is_some() {
            req.ipam.push(berth::IpamPoolConfig {
                subnet: subnet.map(|s| berth_ipam::parse_subnet(s).unwrap()),
                gateway: gateway.map(|g| g.parse().unwrap()),
                ..Default::default()
            });
        }
        f.ctl().create_network(req).unwrap();
        let n = f.ctl().inspect_network(name).unwrap();
        let c = &n.ipam.config[0];
        (
            c.subnet.clone(),
            c.gateway.clone(),
            n.ipam.options,
            n.created,
        )
    };
    let (subnet, gw, opts, created) = create("auto", None, None);
    assert!(subnet.ends_with(".0/16"), "{subnet}");
    assert!(gw.is_some_and(|g| g.ends_with(".0.1")));
    assert_eq!(opts, Some(Default::default()));
    assert!(
        created.ends_with('Z') && !created.contains("0Z"),
        "Go drops the fraction's trailing zeros: {created}"
    );
    let (subnet, gw, _, _) = create("given", Some("10.60.0.5/24"), None);
    assert_eq!((subnet.as_str(), gw), ("10.60.0.5/24", None));
    let (subnet, gw, _, _) = create("both", Some("10.61.0.0/24"), Some("10.61.0.9"));
    assert_eq!(
        (subnet.as_str(), gw.as_deref()),
        ("10.61.0.0/24", Some("10.61.0.9"))
    );
    // The pool is the subnet's network all the same: the gateway IPAM chose is its first host.
    let addr = f.sandbox_on("s", "given");
    assert_eq!(addr, "10.60.0.2");
    assert!(f.ping("s", "10.60.0.1"));
    f.ctl().remove_sandbox("s").unwrap();
    assert_eq!(f.ctl().inspect_network("host").unwrap().ipam.options, None);
}

//! Kernel tests of addresses and routes, as root, inside throwaway namespaces, checked with
//! iproute2's JSON output and with real traffic.

mod common;

use std::net::IpAddr;

use berth_netlink::{
    AddrSpec, Error, IpFamily, LinkSpec, RouteSpec, Scope, VethPeer, cidr, sysctl_set,
};
use common::*;
use ipnet::IpNet;

fn net(s: &str) -> IpNet {
    s.parse().expect("a CIDR literal")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an IP literal")
}

fn find<'a>(addrs: &'a [serde_json::Value], local: &str) -> Option<&'a serde_json::Value> {
    addrs.iter().find(|a| a["local"] == local)
}

#[test]
fn ipv4_addresses_get_a_broadcast_like_brd_plus_and_can_be_deleted() {
    let h = host();
    let nl = handle(&h);
    nl.link_add(&LinkSpec::bridge("br-addr")).unwrap();
    nl.addr_add("br-addr", &AddrSpec::new(net("10.9.0.5/24")))
        .unwrap();
    nl.addr_add("br-addr", &AddrSpec::new(net("10.9.1.0/31")))
        .unwrap();
    nl.addr_add("br-addr", &AddrSpec::new(net("10.9.2.7/32")))
        .unwrap();

    let index = nl.link_index("br-addr").unwrap();
    let mine = nl.addr_list("br-addr").unwrap();
    let a = mine
        .iter()
        .find(|a| a.net == net("10.9.0.5/24"))
        .expect("listed by berth");
    assert_eq!(a.index, index);
    assert_eq!(a.broadcast, Some("10.9.0.255".parse().unwrap()));
    assert_eq!(a.scope, Scope::Universe);
    let slash31 = mine.iter().find(|a| a.net == net("10.9.1.0/31")).unwrap();
    assert_eq!(slash31.broadcast, None);
    assert!(mine.iter().any(|a| a.net == net("10.9.2.7/32")));

    let seen = ip_addrs(&h, "br-addr");
    let j = find(&seen, "10.9.0.5").expect("iproute2 sees the address");
    assert_eq!(j["prefixlen"], 24);
    assert_eq!(j["broadcast"], "10.9.0.255");
    assert!(find(&seen, "10.9.1.0").unwrap().get("broadcast").is_none());

    let all = nl.addr_list_all().unwrap();
    assert!(
        all.iter().any(|a| a.net == net("127.0.0.1/8")),
        "lo's address is listed"
    );
    assert!(all.iter().any(|a| a.net == net("10.9.0.5/24")));

    let e = nl
        .addr_add("br-addr", &AddrSpec::new(net("10.9.0.5/24")))
        .unwrap_err();
    assert!(e.is_exists(), "{e:?}");
    assert!(
        e.to_string().contains("10.9.0.5/24") && e.to_string().contains("br-addr"),
        "{e}"
    );

    nl.addr_delete("br-addr", net("10.9.0.5/24")).unwrap();
    assert!(find(&ip_addrs(&h, "br-addr"), "10.9.0.5").is_none());
    assert!(
        !nl.addr_list(index)
            .unwrap()
            .iter()
            .any(|a| a.net == net("10.9.0.5/24"))
    );
    let e = nl.addr_delete("br-addr", net("10.9.0.5/24")).unwrap_err();
    assert!(e.is_not_found(), "{e:?}");

    let e = nl
        .addr_add("no-such-link", &AddrSpec::new(net("10.9.3.1/24")))
        .unwrap_err();
    assert!(
        e.is_not_found() && e.to_string().contains("no-such-link"),
        "{e}"
    );
    let e = cidr(ip("10.9.0.1"), 33).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
    let e = cidr(ip("fd00::1"), 129).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
}

#[test]
fn ipv6_nodad_addresses_are_usable_at_once_and_others_wait_for_dad() {
    let a = host();
    let b = host();
    let nla = handle(&a);
    let nlb = handle(&b);
    nla.link_add(&LinkSpec::veth("veth6", VethPeer::new("eth0").netns(b.netns())).up())
        .unwrap();
    nlb.link_set_up("eth0").unwrap();
    nla.addr_add("veth6", &AddrSpec::new(net("fd00:6::1/64")).nodad())
        .unwrap();
    nlb.addr_add("eth0", &AddrSpec::new(net("fd00:6::2/64")).nodad())
        .unwrap();
    nla.addr_add("veth6", &AddrSpec::new(net("fd00:7::1/64")))
        .unwrap();

    let mine = nla.addr_list("veth6").unwrap();
    let nodad = mine.iter().find(|x| x.net == net("fd00:6::1/64")).unwrap();
    assert!(nodad.nodad && !nodad.tentative, "{nodad:?}");
    let dad = mine.iter().find(|x| x.net == net("fd00:7::1/64")).unwrap();
    assert!(
        !dad.nodad && dad.tentative,
        "DAD is running on the other: {dad:?}"
    );
    let seen = ip_addrs(&a, "veth6");
    assert_eq!(find(&seen, "fd00:6::1").unwrap()["nodad"], true);
    assert_eq!(find(&seen, "fd00:7::1").unwrap()["tentative"], true);

    assert!(
        ping_eventually(&a, "fd00:6::2", 5),
        "ping6 over nodad addresses"
    );

    nla.addr_delete("veth6", net("fd00:6::1/64")).unwrap();
    assert!(find(&ip_addrs(&a, "veth6"), "fd00:6::1").is_none());
    assert!(!a.ping("fd00:6::2"), "no address in that subnet any more");
}

/// C -- R -- S: the default route berth adds in C makes S's subnet reachable through R.
#[test]
fn a_default_route_via_a_gateway_makes_a_third_subnet_reachable() {
    let r = host();
    let c = r.add_lan_peer("10.1.0.1/24", "10.1.0.2/24").unwrap();
    let s = r.add_lan_peer("10.2.0.1/24", "10.2.0.2/24").unwrap();
    s.route_via("default", "10.2.0.1").unwrap();
    // IPv6 too, on the same wires (fixtures by iproute2).
    r.ip(&[
        "addr",
        "add",
        "fd01::1/64",
        "dev",
        c.host_interface(),
        "nodad",
    ])
    .unwrap();
    c.ip(&["addr", "add", "fd01::2/64", "dev", "eth0", "nodad"])
        .unwrap();
    r.ip(&[
        "addr",
        "add",
        "fd02::1/64",
        "dev",
        s.host_interface(),
        "nodad",
    ])
    .unwrap();
    s.ip(&["addr", "add", "fd02::2/64", "dev", "eth0", "nodad"])
        .unwrap();
    s.route_via("::/0", "fd02::1").unwrap();
    sysctl_set(r.netns(), "net.ipv4.ip_forward", "1").unwrap();
    sysctl_set(r.netns(), "net.ipv6.conf.all.forwarding", "1").unwrap();

    let nl = handle(&c);
    assert!(!c.ping("10.2.0.2"), "no route yet");
    assert!(!c.ping("fd02::2"), "no route yet");

    let v4 = RouteSpec::default_v4().via(ip("10.1.0.1"));
    nl.route_add(&v4).unwrap();
    let v6 = RouteSpec::default_v6().via(ip("fd01::1"));
    nl.route_add(&v6).unwrap();
    assert!(
        ping_eventually(&c, "10.2.0.2", 5),
        "S reachable through the default route"
    );
    assert!(
        ping_eventually(&c, "fd02::2", 5),
        "S reachable through the IPv6 default route"
    );

    let routes = nl.route_list(IpFamily::V4, None).unwrap();
    let d = routes
        .iter()
        .find(|r| r.is_default())
        .expect("berth lists the default route");
    assert_eq!(d.gateway, Some(ip("10.1.0.1")));
    assert_eq!(d.table, berth_netlink::MAIN_TABLE);
    assert_eq!(d.oif, Some(nl.link_index("eth0").unwrap()));
    let routes6 = nl.route_list(IpFamily::V6, None).unwrap();
    assert!(
        routes6
            .iter()
            .any(|r| r.is_default() && r.gateway == Some(ip("fd01::1")))
    );
    let j = ip_json(&c, &["route", "show", "default"]);
    assert_eq!(j[0]["gateway"], "10.1.0.1");
    let j = ip_json(&c, &["-6", "route", "show", "default"]);
    assert_eq!(j[0]["gateway"], "fd01::1");

    let e = nl.route_add(&v4).unwrap_err();
    assert!(e.is_exists(), "{e:?}");
    assert!(
        e.to_string().contains("route 0.0.0.0/0 via 10.1.0.1"),
        "{e}"
    );

    nl.route_delete(&v4).unwrap();
    nl.route_delete(&v6).unwrap();
    assert!(!c.ping("10.2.0.2"), "unreachable again");
    assert!(
        !nl.route_list(IpFamily::V4, None)
            .unwrap()
            .iter()
            .any(|r| r.is_default())
    );
    assert_eq!(
        ip_json(&c, &["route", "show", "default"]),
        serde_json::json!([])
    );
    let e = nl.route_delete(&v4).unwrap_err();
    assert!(e.is_not_found(), "{e:?}");

    // A gateway that is not on any connected subnet: the kernel's reason comes through.
    let e = nl
        .route_add(&RouteSpec::default_v4().via(ip("10.99.0.1")))
        .unwrap_err();
    assert!(e.to_string().contains("Nexthop has invalid gateway"), "{e}");
}

#[test]
fn a_route_through_a_device_has_scope_link_and_carries_traffic() {
    let a = host();
    let b = host();
    let nla = handle(&a);
    let nlb = handle(&b);
    nla.link_add(&LinkSpec::veth("vroute", VethPeer::new("eth0").netns(b.netns())).up())
        .unwrap();
    nlb.link_set_up("eth0").unwrap();
    // Addresses without their subnet route: nothing is reachable until berth adds routes.
    nla.addr_add(
        "vroute",
        &AddrSpec::new(net("10.30.0.1/24")).no_prefix_route(),
    )
    .unwrap();
    nlb.addr_add(
        "eth0",
        &AddrSpec::new(net("10.30.0.2/24")).no_prefix_route(),
    )
    .unwrap();
    assert!(!a.ping("10.30.0.2"));

    let there = RouteSpec::new(net("10.30.0.2/32")).dev("vroute");
    let back = RouteSpec::new(net("10.30.0.1/32")).dev("eth0");
    nla.route_add(&there).unwrap();
    nlb.route_add(&back).unwrap();
    assert!(ping_eventually(&a, "10.30.0.2", 5));

    let r = nla
        .route_list(IpFamily::V4, None)
        .unwrap()
        .into_iter()
        .find(|r| r.dst == net("10.30.0.2/32"))
        .expect("listed");
    assert_eq!(r.scope, Scope::Link);
    assert_eq!(r.gateway, None);
    let j = ip_json(&a, &["route", "show", "10.30.0.2/32"]);
    assert_eq!(j[0]["scope"], "link");
    assert_eq!(j[0]["dev"], "vroute");

    // Metric and source address, then a separate table.
    let with_metric = RouteSpec::new(net("198.51.100.0/24"))
        .dev("vroute")
        .metric(50)
        .src(ip("10.30.0.1"));
    nla.route_add(&with_metric).unwrap();
    let r = nla
        .route_list(IpFamily::V4, None)
        .unwrap()
        .into_iter()
        .find(|r| r.dst == net("198.51.100.0/24"))
        .unwrap();
    assert_eq!((r.metric, r.src), (Some(50), Some(ip("10.30.0.1"))));
    let j = ip_json(&a, &["route", "show", "198.51.100.0/24"]);
    assert_eq!(j[0]["metric"], 50);
    assert_eq!(j[0]["prefsrc"], "10.30.0.1");

    let in_table = RouteSpec::new(net("203.0.113.0/24"))
        .dev("vroute")
        .table(100);
    nla.route_add(&in_table).unwrap();
    let t100 = nla.route_list(IpFamily::V4, Some(100)).unwrap();
    assert_eq!(t100.len(), 1, "{t100:?}");
    assert_eq!((t100[0].dst, t100[0].table), (net("203.0.113.0/24"), 100));
    assert!(
        !nla.route_list(IpFamily::V4, None)
            .unwrap()
            .iter()
            .any(|r| r.table == 100)
    );
    let j = ip_json(&a, &["route", "show", "table", "100"]);
    assert_eq!(j[0]["dst"], "203.0.113.0/24");
    assert!(
        nla.route_list(IpFamily::V4, Some(4242)).unwrap().is_empty(),
        "unknown table"
    );

    for spec in [&there, &with_metric, &in_table] {
        nla.route_delete(spec).unwrap();
    }
    assert!(!a.ping("10.30.0.2"));
    assert!(
        ip_json(&a, &["route", "show", "table", "100"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        ip_json(&a, &["route", "show", "198.51.100.0/24"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    let e = nla
        .route_add(&RouteSpec::new(net("10.30.0.0/16")).via(ip("fd00::1")))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
    let e = nla
        .route_add(&RouteSpec::new(net("10.30.1.1/16")).dev("vroute"))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
}

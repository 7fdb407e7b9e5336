//! Kernel tests of neighbour and bridge FDB entries, as root, inside throwaway namespaces, checked
//! with iproute2/bridge JSON output and with real traffic (VXLAN between two namespaces).

mod common;

use std::net::IpAddr;

use berth_netlink::{AddrSpec, FdbSpec, LinkSpec, MacAddr, NeighSpec, NeighState, VethPeer, Vxlan};
use common::*;
use ipnet::IpNet;

fn net(s: &str) -> IpNet {
    s.parse().expect("a CIDR literal")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an IP literal")
}

fn mac(s: &str) -> MacAddr {
    s.parse().expect("a MAC literal")
}

#[test]
fn permanent_neighbours_add_replace_delete_and_steer_traffic() {
    let a = host();
    let b = host();
    let nla = handle(&a);
    let nlb = handle(&b);
    let b_mac = mac("02:00:00:00:0b:02");
    nla.link_add(&LinkSpec::veth("vn0", VethPeer::new("eth0").netns(b.netns()).mac(b_mac)).up())
        .unwrap();
    nlb.link_set_up("eth0").unwrap();
    nla.addr_add("vn0", &AddrSpec::new(net("10.40.0.1/24")))
        .unwrap();
    nlb.addr_add("eth0", &AddrSpec::new(net("10.40.0.2/24")))
        .unwrap();

    // A wrong permanent entry blackholes the peer: ARP is never asked.
    let wrong = NeighSpec::new("vn0", ip("10.40.0.2"), mac("02:00:00:00:de:ad"));
    nla.neigh_add(&wrong).unwrap();
    let listed = nla.neigh_list("vn0").unwrap();
    let n = listed
        .iter()
        .find(|n| n.ip == ip("10.40.0.2"))
        .expect("listed by berth");
    assert_eq!(
        (n.mac, n.state),
        (Some(mac("02:00:00:00:de:ad")), NeighState::Permanent)
    );
    let j = ip_json(&a, &["neigh", "show", "dev", "vn0"]);
    let e = j
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["dst"] == "10.40.0.2")
        .unwrap();
    assert_eq!(e["lladdr"], "02:00:00:00:de:ad");
    assert!(
        e["state"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "PERMANENT"),
        "{e}"
    );
    assert!(!a.ping("10.40.0.2"), "frames go to a MAC nobody has");

    let e = nla.neigh_add(&wrong).unwrap_err();
    assert!(e.is_exists(), "{e:?}");
    assert!(e.to_string().contains("neighbour 10.40.0.2"), "{e}");

    // Replacing it with the right MAC makes the peer reachable.
    nla.neigh_replace(&NeighSpec::new("vn0", ip("10.40.0.2"), b_mac))
        .unwrap();
    assert!(ping_eventually(&a, "10.40.0.2", 5));
    let j = ip_json(&a, &["neigh", "show", "dev", "vn0", "to", "10.40.0.2"]);
    assert_eq!(j[0]["lladdr"], "02:00:00:00:0b:02");

    // IPv6 neighbour entries too.
    nla.neigh_add(&NeighSpec::new("vn0", ip("fd00:40::2"), b_mac))
        .unwrap();
    assert!(
        nla.neigh_list_all()
            .unwrap()
            .iter()
            .any(|n| n.ip == ip("fd00:40::2") && n.state == NeighState::Permanent)
    );
    let j = ip_json(&a, &["-6", "neigh", "show", "dev", "vn0"]);
    assert!(
        j.as_array()
            .unwrap()
            .iter()
            .any(|e| e["dst"] == "fd00:40::2"),
        "{j}"
    );

    for addr in ["10.40.0.2", "fd00:40::2"] {
        nla.neigh_delete("vn0", ip(addr)).unwrap();
        assert!(
            !nla.neigh_list("vn0")
                .unwrap()
                .iter()
                .any(|n| n.ip == ip(addr) && n.state == NeighState::Permanent)
        );
        let e = nla.neigh_delete("vn0", ip(addr)).unwrap_err();
        assert!(e.is_not_found(), "{addr}: {e:?}");
    }
    let j = ip_json(&a, &["neigh", "show", "dev", "vn0", "nud", "permanent"]);
    assert!(j.as_array().unwrap().is_empty(), "{j}");
}

#[test]
fn vxlan_flood_entries_are_appended_per_remote_and_deleted_one_by_one() {
    let h = host();
    let nl = handle(&h);
    nl.link_add(&LinkSpec::vxlan("vx0", Vxlan::new(7).port(4789)))
        .unwrap();
    let remotes = ["192.0.2.10", "192.0.2.11", "192.0.2.12"];
    for r in remotes {
        nl.fdb_append(&FdbSpec::new("vx0", MacAddr::ZERO).dst(ip(r)))
            .unwrap();
    }
    let mine: Vec<_> = nl
        .fdb_list("vx0")
        .unwrap()
        .into_iter()
        .filter(|e| e.mac.is_zero())
        .collect();
    assert_eq!(mine.len(), 3, "{mine:?}");
    for r in remotes {
        let e = mine
            .iter()
            .find(|e| e.dst == Some(ip(r)))
            .expect("one entry per remote");
        assert!(e.on_self && e.state == NeighState::Permanent, "{e:?}");
    }
    let seen = bridge_fdb(&h, "vx0");
    for r in remotes {
        assert!(
            seen.iter()
                .any(|e| e["mac"] == "00:00:00:00:00:00" && e["dst"] == r),
            "bridge fdb shows {r}: {seen:?}"
        );
    }

    // add (exclusive) of an existing MAC is refused; append of an existing remote too.
    let e = nl
        .fdb_add(&FdbSpec::new("vx0", MacAddr::ZERO).dst(ip("192.0.2.99")))
        .unwrap_err();
    assert!(e.is_exists(), "{e:?}");
    assert!(e.to_string().contains("fdb entry 00:00:00:00:00:00"), "{e}");

    nl.fdb_delete(&FdbSpec::new("vx0", MacAddr::ZERO).dst(ip("192.0.2.11")))
        .unwrap();
    let seen = bridge_fdb(&h, "vx0");
    assert!(!seen.iter().any(|e| e["dst"] == "192.0.2.11"), "{seen:?}");
    assert!(seen.iter().any(|e| e["dst"] == "192.0.2.10"), "{seen:?}");
    assert_eq!(
        nl.fdb_list("vx0")
            .unwrap()
            .iter()
            .filter(|e| e.mac.is_zero())
            .count(),
        2
    );
    // The kernel treats deleting an absent remote of a known MAC as done; an unknown MAC is
    // NotFound.
    nl.fdb_delete(&FdbSpec::new("vx0", MacAddr::ZERO).dst(ip("192.0.2.11")))
        .unwrap();
    assert_eq!(
        nl.fdb_list("vx0")
            .unwrap()
            .iter()
            .filter(|e| e.mac.is_zero())
            .count(),
        2
    );
    let e = nl
        .fdb_delete(&FdbSpec::new("vx0", mac("02:00:00:00:07:ff")))
        .unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert!(e.to_string().contains("02:00:00:00:07:ff"), "{e}");

    // A unicast entry with VNI, then the remaining ones.
    let m = mac("02:00:00:00:07:01");
    nl.fdb_add(&FdbSpec::new("vx0", m).dst(ip("192.0.2.20")).vni(70))
        .unwrap();
    let e = nl
        .fdb_list("vx0")
        .unwrap()
        .into_iter()
        .find(|e| e.mac == m)
        .unwrap();
    assert_eq!((e.dst, e.vni), (Some(ip("192.0.2.20")), Some(70)));
    let seen = bridge_fdb(&h, "vx0");
    let j = seen
        .iter()
        .find(|e| e["mac"] == "02:00:00:00:07:01")
        .expect("bridge sees it");
    assert_eq!(j["vni"], 70);
    nl.fdb_delete(&FdbSpec::new("vx0", m)).unwrap();
    for r in ["192.0.2.10", "192.0.2.12"] {
        nl.fdb_delete(&FdbSpec::new("vx0", MacAddr::ZERO).dst(ip(r)))
            .unwrap();
    }
    assert!(
        bridge_fdb(&h, "vx0").is_empty(),
        "{:?}",
        bridge_fdb(&h, "vx0")
    );
    assert!(nl.fdb_list("vx0").unwrap().is_empty());
}

#[test]
fn bridge_port_entries_go_to_the_master_table() {
    let h = host();
    let c = host();
    let nl = handle(&h);
    nl.link_add(&LinkSpec::bridge("br-fdb").up()).unwrap();
    nl.link_add(
        &LinkSpec::veth("vport0", VethPeer::new("eth0").netns(c.netns()))
            .master("br-fdb")
            .up(),
    )
    .unwrap();
    let m = mac("02:00:00:00:aa:01");
    nl.fdb_add(&FdbSpec::new("vport0", m).on_master()).unwrap();
    let br = nl.link_index("br-fdb").unwrap();
    let e = nl
        .fdb_list("vport0")
        .unwrap()
        .into_iter()
        .find(|e| e.mac == m)
        .expect("listed");
    assert!(e.on_master && !e.on_self, "{e:?}");
    assert_eq!(e.master, Some(br));
    assert_eq!(e.state, NeighState::Permanent);
    let seen = bridge_fdb(&h, "vport0");
    let j = seen
        .iter()
        .find(|e| e["mac"] == "02:00:00:00:aa:01")
        .expect("bridge sees it");
    assert_eq!(j["master"], "br-fdb");
    assert_eq!(j["state"], "permanent");

    let e = nl
        .fdb_add(&FdbSpec::new("vport0", m).on_master())
        .unwrap_err();
    assert!(e.is_exists(), "{e:?}");
    nl.fdb_delete(&FdbSpec::new("vport0", m).on_master())
        .unwrap();
    assert!(
        !bridge_fdb(&h, "vport0")
            .iter()
            .any(|e| e["mac"] == "02:00:00:00:aa:01")
    );
    let e = nl
        .fdb_delete(&FdbSpec::new("vport0", m).on_master())
        .unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
}

/// Two hosts joined by an underlay; a VXLAN overlay between them works first with flood entries
/// (ARP is flooded to the remote VTEP), then, with flooding removed, only with the static
/// neighbour + FDB entries Docker's overlay driver programs.
#[test]
fn vxlan_overlay_carries_ping_with_flood_entries_then_with_static_entries() {
    let a = host();
    let b = a.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    let nla = handle(&a);
    let nlb = handle(&b);
    let mac_a = mac("02:42:0a:2a:00:01");
    let mac_b = mac("02:42:0a:2a:00:02");
    for (nl, under, local, m, addr) in [
        (&nla, b.host_interface(), "192.0.2.1", mac_a, "10.42.0.1/24"),
        (&nlb, "eth0", "192.0.2.2", mac_b, "10.42.0.2/24"),
    ] {
        nl.link_add(
            &LinkSpec::vxlan(
                "vx42",
                Vxlan::new(42).port(4789).local(ip(local)).underlay(under),
            )
            .mtu(1450)
            .mac(m)
            .up(),
        )
        .unwrap();
        nl.addr_add("vx42", &AddrSpec::new(net(addr))).unwrap();
    }
    assert!(
        !a.ping("10.42.0.2"),
        "no remote known yet: nothing leaves the VTEP"
    );

    nla.fdb_append(&FdbSpec::new("vx42", MacAddr::ZERO).dst(ip("192.0.2.2")))
        .unwrap();
    nlb.fdb_append(&FdbSpec::new("vx42", MacAddr::ZERO).dst(ip("192.0.2.1")))
        .unwrap();
    assert!(
        ping_eventually(&a, "10.42.0.2", 5),
        "overlay ping with flood entries"
    );

    // Without flooding, only static entries can carry the traffic.
    nla.fdb_delete(&FdbSpec::new("vx42", MacAddr::ZERO).dst(ip("192.0.2.2")))
        .unwrap();
    nlb.fdb_delete(&FdbSpec::new("vx42", MacAddr::ZERO).dst(ip("192.0.2.1")))
        .unwrap();
    assert!(
        !a.ping("10.42.0.2"),
        "no forwarding entry for the remote MAC"
    );
    nla.fdb_add(&FdbSpec::new("vx42", mac_b).dst(ip("192.0.2.2")))
        .unwrap();
    nlb.fdb_add(&FdbSpec::new("vx42", mac_a).dst(ip("192.0.2.1")))
        .unwrap();
    nla.neigh_replace(&NeighSpec::new("vx42", ip("10.42.0.2"), mac_b))
        .unwrap();
    nlb.neigh_replace(&NeighSpec::new("vx42", ip("10.42.0.1"), mac_a))
        .unwrap();
    assert!(
        ping_eventually(&a, "10.42.0.2", 5),
        "overlay ping with static entries"
    );
    assert!(ping_eventually(&b, "10.42.0.1", 5));
    let seen = bridge_fdb(&a, "vx42");
    assert!(
        seen.iter()
            .any(|e| e["mac"] == "02:42:0a:2a:00:02" && e["dst"] == "192.0.2.2"),
        "{seen:?}"
    );

    nla.link_delete("vx42").unwrap();
    assert!(!a.ping("10.42.0.2"));
    assert!(link_json(&a, "vx42").is_none());
}

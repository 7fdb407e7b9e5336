//! 802.1q VLAN links and ipvlan flags, as root in throwaway namespaces, checked through
//! iproute2's view and real traffic. This machine's kernel may lack `8021q` or `ipvlan`: then
//! berth must report the kernel's refusal as an error for which `is_unknown_link_kind` holds and
//! leave nothing behind. Each test prints which of its two paths ran (visible with
//! `--nocapture`).

#![allow(clippy::unwrap_used)]

mod common;

use berth_netlink::{AddrSpec, IpvlanMode, LinkKind, LinkSpec, MacvlanMode};
use common::*;

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

#[test]
fn vlan_links_tag_their_traffic_or_a_kernel_without_8021q_is_told() {
    let h = host();
    let other = host();
    let nl = handle(&h);
    // A wire between the two hosts: p0 here, q0 there.
    h.ip(&[
        "link",
        "add",
        "p0",
        "type",
        "veth",
        "peer",
        "name",
        "q0",
        "netns",
        other.name(),
    ])
    .unwrap();
    h.ip(&["link", "set", "p0", "up"]).unwrap();
    other.ip(&["link", "set", "q0", "up"]).unwrap();
    let before = ip_link_names(&h);

    if h.kernel_supports("vlan").unwrap() {
        println!("PATH: the kernel has 802.1q VLANs: checking VLAN links with traffic");
        nl.link_add(&LinkSpec::vlan("p0.10", "p0", 10).alias("mark").up())
            .unwrap();
        let j = link_json(&h, "p0.10").unwrap();
        assert_eq!(j["linkinfo"]["info_kind"], "vlan");
        assert_eq!(j["linkinfo"]["info_data"]["id"], 10);
        assert_eq!(j["ifalias"], "mark");
        let l = nl.link("p0.10").unwrap();
        assert_eq!(l.kind, Some(LinkKind::Other("vlan".into())));
        assert_eq!(l.parent, Some(nl.link("p0").unwrap().index));
        nl.addr_add("p0.10", &AddrSpec::new(net("10.210.0.1/24")))
            .unwrap();
        // The other end: VLAN 10 answers; once the address is on the untagged interface
        // there (and VLAN 10 gone), nothing does: the frames carry the tag.
        other
            .ip(&[
                "link", "add", "link", "q0", "name", "q0.10", "type", "vlan", "id", "10",
            ])
            .unwrap();
        other
            .ip(&["addr", "add", "10.210.0.2/24", "dev", "q0.10"])
            .unwrap();
        other.ip(&["link", "set", "q0.10", "up"]).unwrap();
        assert!(h.ping("10.210.0.2"), "VLAN 10 carries traffic");
        other.ip(&["link", "del", "q0.10"]).unwrap();
        other
            .ip(&["addr", "add", "10.210.0.2/24", "dev", "q0"])
            .unwrap();
        assert!(
            !h.ping("10.210.0.2"),
            "tagged frames do not reach an untagged interface"
        );
        nl.link_delete("p0.10").unwrap();
    } else {
        println!("PATH: the kernel has no 802.1q VLANs: checking berth's refusal instead");
        let e = nl
            .link_add(&LinkSpec::vlan("p0.10", "p0", 10).alias("mark").up())
            .unwrap_err();
        assert!(e.is_unknown_link_kind(), "{e:?}");
        assert!(e.to_string().contains("link \"p0.10\""), "{e}");
    }
    assert_eq!(ip_link_names(&h), before, "nothing left behind");
    // Checked before anything is sent, on every kernel.
    let e = nl
        .link_add(&LinkSpec::vlan("p0.4095", "p0", 4095))
        .unwrap_err();
    assert!(e.to_string().contains("VLAN id 4095"), "{e}");
    assert!(!e.is_unknown_link_kind());
}

#[test]
fn ipvlan_flags_are_set_or_a_kernel_without_ipvlan_is_told() {
    let h = host();
    let nl = handle(&h);
    h.ip(&["link", "add", "p1", "type", "veth", "peer", "name", "q1"])
        .unwrap();
    let before = ip_link_names(&h);
    let flagged = |name: &str, flag: &str| {
        let spec = LinkSpec::ipvlan(name, "p1", IpvlanMode::L2);
        match flag {
            "private" => spec.ipvlan_private(),
            "vepa" => spec.ipvlan_vepa(),
            _ => spec,
        }
    };
    if h.kernel_supports("ipvlan").unwrap() {
        println!("PATH: the kernel has ipvlan: checking the flags it reports");
        for (i, flag) in ["bridge", "private", "vepa"].into_iter().enumerate() {
            let name = format!("ivf{i}");
            nl.link_add(&flagged(&name, flag)).unwrap();
            let j = link_json(&h, &name).unwrap();
            assert_eq!(j["linkinfo"]["info_kind"], "ipvlan");
            let reported = j["linkinfo"]["info_data"]["flags"]
                .as_str()
                .unwrap_or("bridge");
            assert_eq!(reported, flag, "{j}");
            nl.link_delete(name.as_str()).unwrap();
        }
    } else {
        println!("PATH: the kernel has no ipvlan: checking berth's refusal instead");
        for flag in ["bridge", "private", "vepa"] {
            let e = nl.link_add(&flagged("ivf0", flag)).unwrap_err();
            assert!(e.is_unknown_link_kind(), "{flag}: {e:?}");
        }
    }
    assert_eq!(ip_link_names(&h), before, "nothing left behind");
    // A flag on another kind, or both flags, never reach the kernel.
    let e = nl
        .link_add(&LinkSpec::macvlan("mv0", "p1", MacvlanMode::Bridge).ipvlan_vepa())
        .unwrap_err();
    assert!(
        !e.is_unknown_link_kind() && e.to_string().contains("ipvlan"),
        "{e}"
    );
    assert!(
        nl.link_add(&flagged("ivf9", "private").ipvlan_vepa())
            .is_err()
    );
    assert_eq!(ip_link_names(&h), before);
}

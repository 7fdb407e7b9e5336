//! Parents: the internal network's own parent, 802.1q sub-interfaces berth makes (and a
//! user's it leaves), and the refusals (Docker's texts) that leave nothing behind.

use std::net::SocketAddr;

use berth_macvlan::{MacvlanDriver, MacvlanError};
use berth_testhost::lan::Capture;
use berth_testhost::traffic::{TcpBanner, tcp_fetch};

use crate::common::*;

#[test]
fn a_network_without_parent_is_internal_on_a_parent_of_its_own() {
    let mut f = Fixture::new();
    let lan = f.lan("10.77.9.250/24", "10.77.9.254/24");
    let before = f.host_state();
    let id = f
        .create(&Net::macvlan("inside").v4("10.77.0.0/24", None, None))
        .unwrap();
    let parent = MacvlanDriver::internal_parent_name(&id);
    assert_eq!(parent, format!("dm-{}", id.short()));
    let links = f.host_links();
    assert!(
        links.contains(&parent) && links.contains(&format!("pm-{}", id.short())),
        "{links:?}"
    );
    let a = f.sandbox_on("a", "inside");
    let b = f.sandbox_on("b", "inside");
    assert!(f.ping("a", &b) && f.ping("b", &a), "the sandboxes talk");
    let banner = TcpBanner::start(&f.ns("b"), SocketAddr::new(b.parse().unwrap(), 0), "b").unwrap();
    let got = tcp_fetch(&f.ns("a"), banner.addr(), TIMEOUT).unwrap();
    assert_eq!(got, format!("b from {a}"));
    // No way out: no default route, and the LAN the host is on is out of reach.
    let routes = f
        .ns("a")
        .command("ip")
        .args(["route", "show", "default"])
        .output()
        .unwrap();
    assert!(routes.stdout.is_empty(), "{routes:?}");
    assert!(!f.ping("a", "10.77.9.254"));
    assert!(!f.peer(&lan).ping(&a));
    assert_eq!(f.dig("a", "b"), b, "the embedded DNS server answers");

    drop(banner);
    for sb in ["a", "b"] {
        f.ctl().remove_sandbox(sb).unwrap();
    }
    f.ctl().remove_network("inside").unwrap();
    assert_eq!(f.host_state(), before, "the parent went with the network");
}

#[test]
fn vlan_parents_are_made_for_their_network_and_a_users_is_left() {
    let mut f = Fixture::new();
    let lan = f.lan("10.60.0.250/24", "10.60.0.254/24");
    let supported = f.host.kernel_supports("vlan").unwrap();
    assert_eq!(
        berth_macvlan::vlan_supported(f.host.netns()),
        supported,
        "the driver's probe agrees with iproute2"
    );
    let before = f.host_state();
    let vlan = |id: u16| format!("{lan}.{id}");
    if supported {
        println!("PATH: the kernel has 802.1q VLANs: two VLANs on one parent, with traffic");
        let peer = f.peer(&lan);
        peer.add_vlan(10, "10.10.0.254/24").unwrap();
        peer.add_vlan(20, "10.20.0.254/24").unwrap();
        for (name, id, subnet, gw) in [
            ("v10", 10, "10.10.0.0/24", "10.10.0.254"),
            ("v20", 20, "10.20.0.0/24", "10.20.0.254"),
        ] {
            f.create(
                &Net::macvlan(name)
                    .parent(vlan(id))
                    .v4(subnet, Some(gw), None),
            )
            .unwrap();
        }
        let links = f.host_links();
        assert!(links.contains(&vlan(10)) && links.contains(&vlan(20)));
        let a = f.sandbox_on("a", "v10");
        let b = f.sandbox_on("b", "v20");
        // Each reaches the peer on its VLAN; the peer has those addresses on its VLAN
        // sub-interfaces only, and its untagged eth0 sees the tags.
        let capture = Capture::start(f.peer(&lan), "eth0", &[]).unwrap();
        assert!(f.ping("a", "10.10.0.254"));
        assert!(f.ping("b", "10.20.0.254"));
        let seen = capture.finish().unwrap();
        let tagged = |vid: &str, from: &str, to: &str| {
            seen.lines().any(|l| {
                l.contains(&format!("vlan {vid},")) && l.contains(&format!("{from} > {to}:"))
            })
        };
        assert!(tagged("10", &a, "10.10.0.254"), "{seen}");
        assert!(tagged("20", &b, "10.20.0.254"), "{seen}");
        assert!(
            !seen
                .lines()
                .any(|l| l.contains("vlan 20,") && l.contains(&format!("{a} >"))),
            "{seen}"
        );
        assert!(!f.ping("a", &b), "the VLANs are apart");
        for sb in ["a", "b"] {
            f.ctl().remove_sandbox(sb).unwrap();
        }
        f.ctl().remove_network("v10").unwrap();
        let links = f.host_links();
        assert!(!links.contains(&vlan(10)) && links.contains(&vlan(20)));
        f.ctl().remove_network("v20").unwrap();
        assert_eq!(f.host_state(), before, "berth's sub-interfaces went");

        // A sub-interface the user made is used and left.
        f.host
            .ip(&[
                "link",
                "add",
                "link",
                &lan,
                "name",
                &vlan(30),
                "type",
                "vlan",
                "id",
                "30",
            ])
            .unwrap();
        let mine = f.host_state();
        f.create(
            &Net::macvlan("v30")
                .parent(vlan(30))
                .v4("10.30.0.0/24", None, None),
        )
        .unwrap();
        f.ctl().remove_network("v30").unwrap();
        assert_eq!(f.host_state(), mine, "the user's sub-interface stays");
    } else {
        println!("PATH: the kernel has no 802.1q VLANs: checking the typed refusal instead");
        let e = f
            .create(&Net::macvlan("v10").parent(vlan(10)).v4(
                "10.10.0.0/24",
                Some("10.10.0.254"),
                None,
            ))
            .unwrap_err();
        assert!(
            matches!(
                macvlan_error(&e),
                Some(MacvlanError::VlanUnsupported { link }) if *link == vlan(10)
            ),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains(&format!("failed to create {} vlan link", vlan(10))),
            "{e}"
        );
        assert!(f.ctl().inspect_network("v10").is_err());
        assert_eq!(f.host_state(), before, "nothing left behind");
    }

    // On every kernel: an existing interface named NAME.VLAN_ID (here a veth the user named
    // so) is the user's: used as it is, carrying traffic, and left with its address.
    let other = f.lan("10.61.0.250/24", "10.61.0.254/24");
    let users = "up0.30";
    for args in [
        vec!["link", "set", &other, "down"],
        vec!["link", "set", &other, "name", users],
        vec!["link", "set", users, "up"],
    ] {
        f.host.ip(&args).unwrap();
    }
    let mine = f.host_state();
    f.create(&Net::macvlan("users").parent(users).v4(
        "10.61.0.0/24",
        Some("10.61.0.254"),
        Some("10.61.0.128/25"),
    ))
    .unwrap();
    f.sandbox_on("c", "users");
    assert!(
        f.ping("c", "10.61.0.254"),
        "traffic over the user's interface"
    );
    f.ctl().remove_sandbox("c").unwrap();
    f.ctl().remove_network("users").unwrap();
    assert_eq!(f.host_state(), mine, "the user's interface stays as it was");
}

#[test]
fn refusals_name_the_cause_and_leave_nothing() {
    let mut f = Fixture::new();
    let lan = f.lan("10.55.0.250/24", "10.55.0.254/24");
    let first = f
        .create(
            &Net::macvlan("first")
                .parent(&lan)
                .v4("10.55.0.0/24", Some("10.55.0.254"), None),
        )
        .unwrap();
    let inner = f
        .create(&Net::macvlan("inner").v4("10.58.0.0/24", None, None))
        .unwrap();
    let before = f.host_state();
    let networks = || {
        let mut n: Vec<String> = f.ctl().networks().into_iter().map(|n| n.name).collect();
        n.sort();
        n
    };
    let known = networks();
    let refused = |net: Net<'_>, expect: &str| {
        let e = f.create(&net.v4("10.56.0.0/24", None, None)).unwrap_err();
        assert!(
            e.to_string().contains(expect),
            "expected {expect:?} in: {e}"
        );
        assert_eq!(f.host_state(), before, "nothing left after: {e}");
        assert_eq!(networks(), known, "no network after: {e}");
        e
    };

    // A second network on the same parent: Docker 20.10's text exactly.
    let e = refused(Net::macvlan("second").parent(&lan), "already using");
    assert_eq!(
        e.to_string(),
        format!(
            "network dm-{} is already using parent interface {lan}",
            first.short()
        )
    );
    // The other end of an internal network's pair is that network's too.
    let inner_peer = format!("pm-{}", inner.short());
    refused(
        Net::macvlan("second").parent(&inner_peer),
        &format!(
            "network dm-{} is already using parent interface {inner_peer}",
            inner.short()
        ),
    );
    // A parent that does not exist, plainly or as NAME.VLAN_ID.
    refused(
        Net::macvlan("second").parent("nosuch0"),
        "parent interface nosuch0 was not found in the host namespace",
    );
    refused(
        Net::macvlan("second").parent("nosuch0.10"),
        "parent interface nosuch0 of the 802.1q sub-interface nosuch0.10 was not found",
    );
    // Docker's VLAN and loopback texts.
    refused(
        Net::macvlan("second").parent(format!("{lan}.5000")),
        "vlan id must be between 1-4094, received: 5000",
    );
    refused(
        Net::macvlan("second").parent(format!("{lan}.x")),
        "unable to parse a valid vlan id from: x (ex. eth0.10 for vlan 10)",
    );
    refused(
        Net::macvlan("second").parent("lo"),
        "loopback interface is not a valid macvlan parent link",
    );
    // Bad option values, named.
    refused(
        Net::macvlan("second")
            .parent(&lan)
            .opt("macvlan_mode", "foo"),
        "requested macvlan mode 'foo' is not valid, 'bridge' mode is the macvlan driver default",
    );
    refused(
        Net::ipvlan("second").parent(&lan).opt("ipvlan_mode", "l4"),
        "requested ipvlan mode 'l4' is not valid, 'l2' mode is the ipvlan driver default",
    );
    refused(
        Net::ipvlan("second").parent(&lan).opt("ipvlan_flag", "foo"),
        "requested ipvlan flag 'foo' is not valid, 'bridge' is the ipvlan driver default",
    );

    // A join that fails leaves nothing in the host or the sandbox: the parent of a network
    // gone (the user deleted the interface).
    let gone = f.lan("10.57.0.250/24", "10.57.0.254/24");
    f.create(
        &Net::macvlan("orphaned")
            .parent(&gone)
            .v4("10.57.0.0/24", None, None),
    )
    .unwrap();
    f.host.ip(&["link", "del", &gone]).unwrap();
    let before = f.host_state();
    let e = f.try_sandbox_on("s", "orphaned").unwrap_err();
    assert!(
        e.to_string().contains(&format!(
            "the parent interface {gone} of network orphaned is gone"
        )),
        "{e}"
    );
    assert_eq!(f.links_in("s").lines().count(), 1, "only the loopback");
    assert_eq!(f.host_state(), before);
}

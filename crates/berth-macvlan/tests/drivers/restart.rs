//! A restart: the controller dropped and built again on the same state. Traffic goes on, the
//! parents berth made are still berth's (a network's removal deletes them), and marked links
//! of this instance that no record names are removed, nobody else's.

use berth_macvlan::MacvlanDriver;

use crate::common::*;

#[test]
fn a_restart_keeps_traffic_and_what_berth_made_goes_with_its_network() {
    let mut f = Fixture::new();
    let lan = f.lan("10.44.0.250/24", "10.44.0.254/24");
    let vlans = f.host.kernel_supports("vlan").unwrap();
    let before = f.host_state();
    f.create(&Net::macvlan("outside").parent(&lan).v4(
        "10.44.0.0/24",
        Some("10.44.0.254"),
        Some("10.44.0.128/25"),
    ))
    .unwrap();
    let inside = f
        .create(&Net::macvlan("inside").v4("10.45.0.0/24", None, None))
        .unwrap();
    let internal_parent = MacvlanDriver::internal_parent_name(&inside);
    let a = f.sandbox_on("a", "outside");
    let b = f.sandbox_on("b", "inside");
    let c = f.sandbox_on("c", "inside");
    let vlan = format!("{lan}.40");
    if vlans {
        println!("PATH: the kernel has 802.1q VLANs: a sub-interface berth made survives too");
        f.peer(&lan).add_vlan(40, "10.40.0.254/24").unwrap();
        f.create(&Net::macvlan("tagged").parent(&vlan).v4(
            "10.40.0.0/24",
            Some("10.40.0.254"),
            None,
        ))
        .unwrap();
        f.sandbox_on("d", "tagged");
    } else {
        println!("PATH: the kernel has no 802.1q VLANs: the internal parent stands for it");
    }

    f.restart();
    assert!(f.ping("a", "10.44.0.254") && f.peer(&lan).ping(&a));
    assert!(f.ping("b", &c) && f.ping("c", &b));
    if vlans {
        assert!(f.ping("d", "10.40.0.254"));
    }
    // The join converged on the interface there: one, not a second.
    let eth = f.links_in("a");
    assert_eq!(eth.lines().count(), 2, "lo and eth0:\n{eth}");
    // What the drivers learned again works: a disconnect takes the interface out.
    f.ctl().disconnect("a", "outside").unwrap();
    assert_eq!(f.links_in("a").lines().count(), 1);
    assert!(!f.peer(&lan).ping(&a));

    // Links planted while berth is down: one with this instance's mark and no record (an
    // orphan: removed), one of another instance and one unmarked (both left alone).
    let mark = |inst: &str| format!("berth:{inst}:macvlan:{}", "0f".repeat(32));
    let mine = mark(&instance(f.ctl()));
    f.ctl = None;
    for (a_end, b_end, alias) in [
        ("dm-0f0f0f0f0f0f", "pm-0f0f0f0f0f0f", Some(mine.as_str())),
        (
            "dm-0e0e0e0e0e0e",
            "pm-0e0e0e0e0e0e",
            Some("berth:other:macvlan:0e"),
        ),
        ("dm-0d0d0d0d0d0d", "pm-0d0d0d0d0d0d", None),
    ] {
        f.host
            .ip(&["link", "add", a_end, "type", "veth", "peer", "name", b_end])
            .unwrap();
        if let Some(alias) = alias {
            f.host.ip(&["link", "set", a_end, "alias", alias]).unwrap();
        }
    }
    // A link-kind probe's pair left by a process that is gone (removed), and one of a process
    // that lives (left: it is probing now).
    assert!(!std::path::Path::new("/proc/4194303").exists());
    for (a_end, b_end) in [("bpv3fffffx1", "bpw3fffffx1"), ("bpv1x1", "bpw1x1")] {
        f.host
            .ip(&["link", "add", a_end, "type", "veth", "peer", "name", b_end])
            .unwrap();
        f.host
            .ip(&["link", "set", a_end, "alias", "berth:probe:link-kind"])
            .unwrap();
    }
    let other_mark = format!("berth:other:macvlan:{}", "0e".repeat(32));
    f.host
        .ip(&["link", "set", "dm-0e0e0e0e0e0e", "alias", &other_mark])
        .unwrap();
    f.restart();
    let links = f.host_links();
    assert!(
        !links.contains(&"dm-0f0f0f0f0f0f".to_owned())
            && !links.contains(&"pm-0f0f0f0f0f0f".to_owned()),
        "the orphan of this instance went: {links:?}"
    );
    assert!(
        !links.contains(&"bpv3fffffx1".to_owned()) && !links.contains(&"bpw3fffffx1".to_owned()),
        "the dead process's probe went: {links:?}"
    );
    for kept in ["dm-0e0e0e0e0e0e", "dm-0d0d0d0d0d0d", "bpv1x1"] {
        assert!(links.contains(&kept.to_owned()), "{kept} kept: {links:?}");
        f.host.ip(&["link", "del", kept]).unwrap();
    }
    assert!(links.contains(&internal_parent), "{links:?}");
    assert!(f.ping("b", &c), "the internal network still works");

    // Removing the networks deletes what berth made for them, after the restarts.
    for sb in ["a", "b", "c", "d"] {
        let _ = f.ctl().remove_sandbox(sb);
    }
    f.ctl().remove_network("inside").unwrap();
    assert!(!f.host_links().contains(&internal_parent));
    if vlans {
        f.ctl().remove_network("tagged").unwrap();
        assert!(!f.host_links().contains(&vlan));
    }
    f.ctl().remove_network("outside").unwrap();
    assert_eq!(f.host_state(), before, "only the user's parent is left");
}

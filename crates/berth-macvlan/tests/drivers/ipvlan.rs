//! ipvlan: where the kernel has it, l2 and l3 traffic; where it has not (this project's test
//! machine), the typed refusal, before anything is made. The driver's probe runs once and must
//! agree with iproute2; which path ran is printed.

use berth_macvlan::MacvlanError;

use crate::common::*;

#[test]
fn ipvlan_carries_traffic_or_is_refused_by_type_leaving_nothing() {
    let mut f = Fixture::new();
    let lan = f.lan("10.33.0.250/24", "10.33.0.254/24");
    // The independent check finds what this kernel has (the macvlan tests need macvlan).
    assert!(f.host.kernel_supports("macvlan").unwrap());
    let supported = berth_macvlan::ipvlan_supported(f.host.netns());
    assert_eq!(
        supported,
        f.host.kernel_supports("ipvlan").unwrap(),
        "the driver's probe agrees with iproute2"
    );
    let before = f.host_state();
    if supported {
        println!("PATH: the kernel has ipvlan: l2 and l3 traffic");
        // l2: the sandboxes are on the LAN, with the parent's MAC address.
        f.create(&Net::ipvlan("l2_nw").parent(&lan).v4(
            "10.33.0.0/24",
            Some("10.33.0.254"),
            Some("10.33.0.128/25"),
        ))
        .unwrap();
        let a = f.sandbox_on("a", "l2_nw");
        let b = f.sandbox_on("b", "l2_nw");
        assert!(f.ping("a", "10.33.0.254") && f.peer(&lan).ping(&a));
        assert!(f.ping("a", &b), "l2 bridge flag: sandbox to sandbox");
        assert_eq!(f.dig("a", "b"), b);
        for sb in ["a", "b"] {
            f.ctl().remove_sandbox(sb).unwrap();
        }
        f.ctl().remove_network("l2_nw").unwrap();

        // l3: the host routes; the sandbox sends everything out of its device, and the LAN
        // reaches the subnet through the host.
        f.create(
            &Net::ipvlan("l3_nw")
                .parent(&lan)
                .opt("ipvlan_mode", "l3")
                .v4("10.34.0.0/24", None, None),
        )
        .unwrap();
        let c = f.sandbox_on("c", "l3_nw");
        let routes = f
            .ns("c")
            .command("ip")
            .args(["route", "show", "default"])
            .output()
            .unwrap();
        let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
        assert!(
            routes.contains("default dev eth0") && !routes.contains("via"),
            "{routes}"
        );
        f.peer(&lan)
            .route_via("10.34.0.0/24", "10.33.0.250")
            .unwrap();
        assert!(f.ping("c", "10.33.0.254"), "l3: sandbox to LAN peer");
        assert!(
            f.peer(&lan).ping(&c),
            "l3: LAN peer to sandbox, routed by the host"
        );
        f.ctl().remove_sandbox("c").unwrap();
        f.ctl().remove_network("l3_nw").unwrap();
        f.peer(&lan).ip(&["route", "del", "10.34.0.0/24"]).unwrap();
        assert_eq!(f.host_state(), before);
    } else {
        println!("PATH: the kernel has no ipvlan: the typed refusal, and nothing left");
        for net in [
            Net::ipvlan("iv_parent").parent(&lan),
            // Refused before its internal parent or its sub-interface is made.
            Net::ipvlan("iv_internal"),
            Net::ipvlan("iv_vlan").parent(format!("{lan}.10")),
        ] {
            let e = f.create(&net.v4("10.35.0.0/24", None, None)).unwrap_err();
            assert!(
                matches!(macvlan_error(&e), Some(MacvlanError::IpvlanUnsupported)),
                "{e:?}"
            );
            assert!(
                e.to_string()
                    .contains("the kernel has no ipvlan support (modprobe ipvlan"),
                "{e}"
            );
            assert_eq!(f.host_state(), before, "nothing left after: {e}");
        }
        assert!(
            f.ctl().networks().iter().all(|n| n.driver != "ipvlan"),
            "no ipvlan network recorded"
        );
        // The macvlan driver on the same parent is unaffected.
        f.create(&Net::macvlan("mv_nw").parent(&lan).v4(
            "10.33.0.0/24",
            Some("10.33.0.254"),
            Some("10.33.0.128/25"),
        ))
        .unwrap();
        f.sandbox_on("a", "mv_nw");
        assert!(f.ping("a", "10.33.0.254"));
    }
}

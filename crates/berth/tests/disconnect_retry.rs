//! A disconnect that fails half-way is finished by asking again, as root in throwaway
//! namespaces: the first disconnect fails right after the published ports are revoked (a fail
//! point armed once per process: this file holds one test); the intent stays recorded, the
//! sandbox keeps reporting the endpoint, and a second disconnect removes the veth, the address
//! and the rules, after which the network can be removed.

#![allow(clippy::unwrap_used)]

mod common;

use berth::{Error, IpamPoolConfig, NetworkCreate};
use common::*;

#[test]
fn a_disconnect_that_failed_half_way_is_finished_by_asking_again() {
    assert!(berth::failpoint::arm("disconnect.ports=error@1"));
    let f = Fixture::new();
    let mut req = NetworkCreate::new("app_nw");
    req.ipam.push(IpamPoolConfig {
        subnet: Some("10.95.0.0/24".parse().unwrap()),
        ..Default::default()
    });
    f.ctl().create_network(req).unwrap();
    let ip = f.publish("web", "app_nw", &["18090:80"]);
    let veths = |f: &Fixture| {
        f.berth_links()
            .into_iter()
            .filter(|l| l.starts_with("berth"))
            .count()
    };
    assert_eq!(veths(&f), 1);

    let err = f.ctl().disconnect("web", "app_nw").unwrap_err();
    assert!(matches!(err, Error::Injected("disconnect.ports")), "{err}");
    assert!(
        f.ctl()
            .inspect_sandbox("web")
            .unwrap()
            .networks
            .contains_key("app_nw"),
        "a half-done disconnect still shows the endpoint"
    );
    assert!(matches!(
        f.ctl().remove_network("app_nw"),
        Err(Error::ActiveEndpoints { .. })
    ));

    f.ctl().disconnect("web", "app_nw").unwrap();
    assert!(f.ctl().inspect_sandbox("web").unwrap().networks.is_empty());
    assert_eq!(veths(&f), 0, "the veth is gone: {:?}", f.berth_links());
    assert!(
        !f.iptables_save().contains("18090"),
        "the port's rules are gone"
    );
    // The address is free again, and the network can go.
    f.ctl()
        .connect(
            "web",
            "app_nw",
            berth::EndpointOptions {
                ipv4: Some(ip.parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
    f.ctl().disconnect("web", "app_nw").unwrap();
    f.ctl().remove_network("app_nw").unwrap();
}

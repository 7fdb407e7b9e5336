//! Start-up cleanup removes only this instance's leftovers, as root in throwaway namespaces:
//! Docker-style `br-<12 hex>` bridges and `berth<10 hex>` veths made by someone else, and the
//! marked links of another berth instance sharing the host namespace, survive
//! `remove_orphans` (and keep carrying traffic); this instance's unrecorded marked links are
//! removed, its recorded ones stay; a bridge of an earlier berth (unmarked) that a record names
//! is adopted and marked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use berth_bridge::{
    BRIDGE_NAME, BridgeDefaults, BridgeDriver, default_bridge_name, host_veth_name,
};
use berth_driver::{DriverError, NetworkDriver};
use common::{host as host_ns, *};

fn driver(host: &berth_testhost::TestHost, instance: &str) -> BridgeDriver {
    BridgeDriver::new(host.netns(), None, BridgeDefaults::default())
        .unwrap()
        .with_instance(instance)
}

#[test]
fn remove_orphans_deletes_only_this_instances_unrecorded_marked_links() {
    let host = host_ns();

    // Someone else's links under berth's (and Docker's) naming, made with iproute2.
    let foreign_bridge = "br-0123456789ab";
    let foreign_veth = "berth0123456789";
    host.ip(&["link", "add", foreign_bridge, "type", "bridge"])
        .unwrap();
    host.ip(&[
        "link",
        "add",
        foreign_veth,
        "type",
        "veth",
        "peer",
        "name",
        "fpeer0",
    ])
    .unwrap();

    // Another berth instance in the same host namespace, with a network and a joined sandbox.
    let other = driver(&host, "instance-b");
    let other_net = network(0x41, 41);
    create(&other, &other_net, &[]);
    let (other_sb, other_ep) = join(&other, &other_net, 1);
    let other_bridge = default_bridge_name(&other_net.id);
    let other_veth = host_veth_name(&other_ep);
    assert_eq!(
        alias_of(&host, &other_bridge),
        Some(format!("berth:instance-b:{}", other_net.id.as_str()))
    );
    assert_eq!(
        alias_of(&host, &other_veth),
        Some(format!("berth:instance-b:{}", other_ep.as_str()))
    );

    // This instance before a crash: one network it will find in its records, one it will not.
    let before = driver(&host, "instance-a");
    let kept = network(0x42, 42);
    let lost = network(0x43, 43);
    create(&before, &kept, &[]);
    create(&before, &lost, &[]);
    let (kept_sb, kept_ep) = join(&before, &kept, 2);
    let (lost_sb, lost_ep) = join(&before, &lost, 3);
    assert!(berth_testhost::ping_in(lost_sb.netns(), &gateway_of(&lost)));
    drop(before);

    // A bridge of berth before links were marked, named by a record of this instance.
    let old = network(0x44, 44);
    let old_bridge = default_bridge_name(&old.id);
    host.ip(&["link", "add", &old_bridge, "type", "bridge"])
        .unwrap();
    assert_eq!(alias_of(&host, &old_bridge), None);

    // The restart: the records of `kept` and `old` are handed to the driver again.
    let after = driver(&host, "instance-a");
    create(&after, &kept, &[]);
    assert_eq!(join_in(&after, &kept, 2, &kept_sb), kept_ep);
    create(&after, &old, &[]);
    assert_eq!(
        alias_of(&host, &old_bridge),
        Some(format!("berth:instance-a:{}", old.id.as_str())),
        "adopted through its record, and marked"
    );

    // A veth of berth before links were marked, for an endpoint the records name: its join
    // after the restart finds the pair and marks it.
    let old_sb = host_ns();
    let old_veth = host_veth_name(&berth_driver::EndpointId::from_bytes([0xa5; 32]));
    host.ip(&[
        "link",
        "add",
        &old_veth,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        old_sb.name(),
    ])
    .unwrap();
    host.ip(&["link", "set", &old_veth, "master", &old_bridge])
        .unwrap();
    let old_ep = join_in(&after, &old, 5, &old_sb);
    assert_eq!(
        alias_of(&host, &old_veth),
        Some(format!("berth:instance-a:{}", old_ep.as_str()))
    );
    assert!(berth_testhost::ping_in(old_sb.netns(), &gateway_of(&old)));

    let mut removed = after.remove_orphans().unwrap();
    removed.sort();
    let mut expected = vec![default_bridge_name(&lost.id), host_veth_name(&lost_ep)];
    expected.sort();
    assert_eq!(removed, expected);

    for gone in &expected {
        assert!(!link_exists(&host, gone), "{gone} removed");
    }
    for kept_link in [
        foreign_bridge,
        foreign_veth,
        "fpeer0",
        &other_bridge,
        &other_veth,
        &default_bridge_name(&kept.id),
        &host_veth_name(&kept_ep),
        &old_bridge,
        &old_veth,
    ] {
        assert!(link_exists(&host, kept_link), "{kept_link} left alone");
    }
    // Traffic: the other instance's and the recorded sandbox still reach their gateways; the
    // orphan's sandbox lost its interface with the pair.
    assert!(berth_testhost::ping_in(
        other_sb.netns(),
        &gateway_of(&other_net)
    ));
    assert!(berth_testhost::ping_in(kept_sb.netns(), &gateway_of(&kept)));
    assert!(lost_sb.ip(&["link", "show", "dev", "eth0"]).is_err());

    // A second pass finds nothing more.
    assert!(after.remove_orphans().unwrap().is_empty());

    // The other instance's bridge is not shared with this instance.
    let squatter = network(0x45, 45);
    let e = try_create(&after, &squatter, &[(BRIDGE_NAME, &other_bridge)]).unwrap_err();
    assert!(matches!(e, DriverError::Exists(_)), "{e:?}");
    assert!(e.to_string().contains("instance-b"), "{e}");
    assert_eq!(ipv4_addrs(&host, &other_bridge), vec!["10.41.0.1/24"]);

    tear_down(&after, &kept, &[&kept_ep]);
    tear_down(&after, &old, &[&old_ep]);
    tear_down(&other, &other_net, &[&other_ep]);
    assert!(!link_exists(&host, &old_bridge));
}

#[test]
fn a_refused_instance_id_is_reported_by_the_first_operation() {
    let host = host_ns();
    let bad = driver(&host, "no:colons");
    let e = try_create(&bad, &network(0x46, 46), &[]).unwrap_err();
    assert!(matches!(e, DriverError::InvalidConfig(_)), "{e:?}");
    assert!(e.to_string().contains("no:colons"), "{e}");
    let e = bad.remove_orphans().unwrap_err();
    assert!(e.to_string().contains("instance id"), "{e}");
    assert_eq!(link_names(&host), vec!["lo"], "nothing made");
}

//! Kernel tests of namespace ids: set, read and listed by berth, checked with `ip netns list-id`.

mod common;

use berth_netlink::{Error, LinkSpec, VethPeer};
use common::*;

/// The ids `ip netns list-id` shows inside `host`.
fn listed_ids(host: &berth_testhost::TestHost) -> Vec<i64> {
    ip_json(host, &["netns", "list-id"])
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["nsid"].as_i64()).collect())
        .unwrap_or_default()
}

#[test]
fn ids_are_set_read_and_refused_when_taken() {
    let (h, p1, p2) = (host(), host(), host());
    let nl = handle(&h);
    assert_eq!(nl.nsid_get(p1.netns()).unwrap(), None);
    nl.nsid_set(p1.netns(), 1_000_000).unwrap();
    assert_eq!(nl.nsid_get(p1.netns()).unwrap(), Some(1_000_000));
    assert!(listed_ids(&h).contains(&1_000_000), "{:?}", listed_ids(&h));
    assert_eq!(nl.nsid_list().unwrap(), vec![1_000_000]);
    // The namespace has an id already.
    let e = nl.nsid_set(p1.netns(), 7).unwrap_err();
    assert!(e.is_exists(), "{e:?}");
    // Another namespace has that id.
    let e = nl.nsid_set(p2.netns(), 1_000_000).unwrap_err();
    assert!(e.is_exists(), "{e:?}");
    let e = nl.nsid_set(p2.netns(), -1).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
    assert_eq!(nl.nsid_get(p2.netns()).unwrap(), None, "nothing was set");
    // A veth into p2 makes the kernel number p2 itself, below the id given to p1.
    nl.link_add(&LinkSpec::veth(
        "veth-n0",
        VethPeer::new("eth0").netns(p2.netns()),
    ))
    .unwrap();
    let auto = nl
        .nsid_get(p2.netns())
        .unwrap()
        .expect("an id for the veth's peer");
    assert!(auto < 1_000_000, "{auto}");
    let mut ids = nl.nsid_list().unwrap();
    ids.sort_unstable();
    assert_eq!(ids, vec![auto, 1_000_000]);
    let mut listed = listed_ids(&h);
    listed.sort_unstable();
    assert_eq!(listed, vec![i64::from(auto), 1_000_000]);
}

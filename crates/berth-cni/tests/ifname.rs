//! Any `CNI_IFNAME`: the interface in the container is named as the runtime asks, so one
//! container is on two networks at once (eth0 from one configuration, net1 from another), each
//! proven with traffic; DEL of either leaves the other working, with the container's way out
//! (its default route) kept; GC of one network keeps the other's attachment; a name the
//! container already has is refused and leaves nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Cni, Container, ip_of};
use serde_json::json;

/// The LAN peer's address: reached from a container only through its default route (the
/// gateway, then the test host's masquerade).
const PEER: &str = "192.0.2.2";

#[test]
fn one_container_on_two_networks_by_interface_name() {
    let cni = Cni::new();
    let _peer = cni
        .host
        .add_lan_peer("192.0.2.1/24", "192.0.2.2/24")
        .unwrap();
    let before = cni.snapshot();
    let a = cni.conf("neta", json!({}));
    let b = cni.conf("netb", json!({"network": {"subnet": "10.124.0.0/24"}}));
    let c1 = Container::new("c1");
    let c2 = Container::new("c2");
    let c3 = Container::new("c3");

    let on_a = cni.add_if(&c1, "eth0", &a);
    let on_b = cni.add_if(&c1, "net1", &b);
    assert_eq!(on_a["interfaces"][0]["name"], "eth0");
    assert_eq!(on_b["interfaces"][0]["name"], "net1");
    assert_eq!(on_b["interfaces"][0]["sandbox"], c1.netns());
    assert_eq!(on_b["ips"][0]["interface"], 0);
    // The container's default route stays on neta (the first network by name, as in Docker):
    // only eth0's result lists it.
    assert_eq!(on_a["routes"][0]["dst"], "0.0.0.0/0");
    assert!(on_b.get("routes").is_none(), "{on_b}");
    let route = c1.ns.ip(&["-o", "route", "show", "default"]).unwrap();
    assert!(route.contains("dev eth0"), "{route}");
    let (ip_a, ip_b) = (ip_of(&on_a), ip_of(&on_b));
    assert!(ip_a.starts_with("10.123.0.") && ip_b.starts_with("10.124.0."));
    let addrs = c1.addrs();
    assert!(
        addrs.contains(&format!("eth0    inet {ip_a}/24")),
        "{addrs}"
    );
    assert!(
        addrs.contains(&format!("net1    inet {ip_b}/24")),
        "{addrs}"
    );
    let ip2 = ip_of(&cni.add(&c2, &a));
    let ip3 = ip_of(&cni.add(&c3, &b));
    assert!(c1.ping(&ip2) && c2.ping(&ip_a), "c1 and c2 on neta");
    assert!(c1.ping(&ip3) && c3.ping(&ip_b), "c1 and c3 on netb");
    assert!(c1.ping(PEER), "c1 has a way out");

    // CHECK of each attachment against its own result.
    for (ifname, conf, result) in [("eth0", &a, &on_a), ("net1", &b, &on_b)] {
        let mut check = conf.clone();
        check["prevResult"] = result.clone();
        cni.call("CHECK", &c1, ifname, &check).assert_ok();
    }

    // A second interface of c1 on a network it is on, or a name c1 already has: refused
    // (code 102), nothing made, the rest untouched.
    let links = c1.ns.ip(&["-o", "link"]).unwrap().lines().count();
    let a2 = cni.call("ADD", &c1, "net2", &a);
    assert_eq!(a2.code(), 102, "{a2:?}");
    let taken = cni.call(
        "ADD",
        &c1,
        "net1",
        &cni.conf("netc", json!({"network": {"subnet": "10.125.0.0/24"}})),
    );
    assert_eq!(taken.code(), 102, "{taken:?}");
    assert!(
        taken.json()["msg"].as_str().unwrap().contains("net1"),
        "{taken:?}"
    );
    assert_eq!(c1.ns.ip(&["-o", "link"]).unwrap().lines().count(), links);
    assert!(c1.ping(&ip2) && c1.ping(&ip3) && c1.ping(PEER));

    // DEL of net1: eth0 stays, and so does the way out.
    cni.del_if(&c1, "net1", &b);
    assert!(!c1.addrs().contains("net1"), "{}", c1.addrs());
    assert!(!c3.ping(&ip_b), "net1 is gone");
    assert!(c1.ping(&ip2) && c2.ping(&ip_a), "eth0 stays");
    assert!(c1.ping(PEER), "c1 keeps its way out after DEL of net1");
    cni.del_if(&c1, "net1", &b);

    // net1 again, then DEL of eth0: net1 stays, with the way out.
    let on_b = cni.add_if(&c1, "net1", &b);
    let ip_b = ip_of(&on_b);
    cni.del_if(&c1, "eth0", &a);
    assert!(!c1.addrs().contains("eth0"), "{}", c1.addrs());
    assert!(!c2.ping(&ip_a), "eth0 is gone");
    assert!(c1.ping(&ip3) && c3.ping(&ip_b), "net1 stays");
    assert!(c1.ping(PEER), "c1 keeps its way out after DEL of eth0");
    cni.del_if(&c1, "eth0", &a);

    // eth0 again; GC of neta without c1 removes c1's eth0 and keeps its net1 (and c2).
    let ip_a = ip_of(&cni.add_if(&c1, "eth0", &a));
    let mut gc = a.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c2", "ifname": "eth0"}]);
    cni.plain("GC", &gc).assert_ok();
    assert!(!c2.ping(&ip_a), "c1's eth0 was collected");
    assert!(!c1.addrs().contains("eth0"), "{}", c1.addrs());
    assert!(c1.ping(&ip3) && c3.ping(&ip_b), "c1's net1 is kept");
    assert!(c1.ping(PEER), "and its way out");
    // GC of netb listing both of its attachments removes nothing.
    let mut gc = b.clone();
    gc["cni.dev/valid-attachments"] = json!([
        {"containerID": "c1", "ifname": "net1"},
        {"containerID": "c3", "ifname": "eth0"},
    ]);
    cni.plain("GC", &gc).assert_ok();
    assert!(c1.ping(&ip3) && c3.ping(&ip_b), "netb's attachments stay");

    cni.del_if(&c1, "net1", &b);
    cni.del(&c2, &a);
    cni.del(&c3, &b);
    cni.del_if(&c1, "eth0", &a);
    assert_eq!(
        c1.ns.ip(&["-o", "link"]).unwrap().lines().count(),
        1,
        "only lo is left in c1"
    );
    assert_eq!(cni.snapshot(), before, "the host is as it was");
}

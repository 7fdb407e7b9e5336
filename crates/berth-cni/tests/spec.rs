//! The CNI commands end to end: the built binary run inside a test host as a runtime runs it,
//! containers as namespaces of their own, proven with real traffic (ping between containers, a
//! published port reached with TCP from a LAN peer) and the kernel's own listings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use berth_testhost::traffic::{TcpBanner, tcp_fetch};
use common::{Cni, Container, GATEWAY, TIMEOUT, ip_of, sa};
use serde_json::{Value, json};

#[test]
fn add_connects_publishes_checks_and_del_leaves_nothing() {
    let cni = Cni::new();
    let peer = cni
        .host
        .add_lan_peer("192.0.2.1/24", "192.0.2.2/24")
        .unwrap();
    let before = cni.snapshot();
    let c1 = Container::new("c1");
    let c2 = Container::new("c2");
    let web = cni.conf(
        "testnet",
        json!({"runtimeConfig": {"portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}
        ]}}),
    );
    let plain = cni.conf("testnet", json!({}));

    let r1 = cni.add(&c1, &web);
    assert_eq!(r1["cniVersion"], "1.1.0");
    assert_eq!(r1["interfaces"][0]["name"], "eth0");
    assert_eq!(r1["interfaces"][0]["sandbox"], c1.netns());
    assert!(
        r1["interfaces"][0]["mac"]
            .as_str()
            .is_some_and(|m| m.len() == 17)
    );
    assert_eq!(r1["ips"][0]["interface"], 0);
    assert_eq!(r1["ips"][0]["gateway"], GATEWAY);
    assert!(r1["ips"][0]["address"].as_str().unwrap().ends_with("/24"));
    assert!(
        r1["ips"][0].get("version").is_none(),
        "no version field in 1.1.0"
    );
    assert_eq!(r1["routes"][0]["dst"], "0.0.0.0/0");
    assert_eq!(r1["routes"][0]["gw"], GATEWAY);
    let r2 = cni.add(&c2, &plain);
    let (ip1, ip2) = (ip_of(&r1), ip_of(&r2));
    assert_ne!(ip1, ip2);
    // The kernel agrees with the result: the address is on eth0 in the container.
    assert!(
        c1.addrs().contains(&format!("eth0    inet {ip1}/24")),
        "{}",
        c1.addrs()
    );

    assert!(c1.ping(&ip2), "c1 reaches c2");
    assert!(c2.ping(&ip1), "c2 reaches c1");

    // The published port, from the LAN, keeping the client's address.
    let _server = TcpBanner::start(c1.ns.netns(), sa(&format!("{ip1}:80")), "web").unwrap();
    let got = tcp_fetch(peer.netns(), sa("192.0.2.1:8080"), TIMEOUT).unwrap();
    assert_eq!(got, "web from 192.0.2.2");

    // CHECK against the ADD's result passes, and fails once the interface is gone.
    let mut check = web.clone();
    check["prevResult"] = r1.clone();
    let a = cni.call("CHECK", &c1, "eth0", &check);
    a.assert_ok();
    assert_eq!(a.stdout, "", "CHECK answers nothing");
    c1.ns.ip(&["link", "del", "eth0"]).unwrap();
    let a = cni.call("CHECK", &c1, "eth0", &check);
    assert_eq!(a.code(), 103, "{a:?}");
    assert!(a.json()["msg"].as_str().unwrap().contains("eth0"), "{a:?}");

    // DEL twice, for both, with and without prevResult.
    cni.del(&c1, &check);
    cni.del(&c1, &web);
    assert!(!c2.ping(&ip1));
    cni.del(&c2, &plain);
    cni.del(&c2, &plain);
    assert!(
        tcp_fetch(peer.netns(), sa("192.0.2.1:8080"), TIMEOUT).is_err(),
        "the port is closed"
    );
    assert!(!c2.addrs().contains("eth0"), "{}", c2.addrs());
    assert_eq!(cni.snapshot(), before, "the host is as it was");
    // CHECK of what is gone: the container is unknown.
    let mut check2 = plain.clone();
    check2["prevResult"] = r2.clone();
    let a = cni.call("CHECK", &c2, "eth0", &check2);
    assert!(!a.ok, "{a:?}");
}

#[test]
fn del_without_namespace_or_state_succeeds() {
    let cni = Cni::new();
    let before = cni.snapshot();
    let conf = cni.conf("testnet", json!({}));
    let c1 = Container::new("c1");
    // Nothing was ever added: DEL makes no state and changes nothing.
    cni.del(&c1, &conf);
    assert!(!cni.store_path().exists(), "no state was made");
    // An attachment whose namespace is gone before DEL (the runtime removed it first).
    let c2 = Container::new("c2");
    let r = cni.add(&c2, &conf);
    let ip = ip_of(&r);
    let c3 = Container::new("c3");
    cni.add(&c3, &conf);
    drop(c2);
    let gone = Container::new("c2");
    let a = cni.raw(
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c2"),
            ("CNI_IFNAME", "eth0"),
        ],
        &conf.to_string(),
    );
    a.assert_ok();
    assert!(!c3.ping(&ip));
    cni.del(&gone, &conf);
    cni.del(&c3, &conf);
    assert_eq!(cni.snapshot(), before);
}

#[test]
fn gc_removes_what_is_not_listed_and_keeps_the_rest() {
    let cni = Cni::new();
    let before = cni.snapshot();
    let conf = cni.conf("testnet", json!({}));
    let (c1, c2, c3) = (
        Container::new("c1"),
        Container::new("c2"),
        Container::new("c3"),
    );
    let ip1 = ip_of(&cni.add(&c1, &conf));
    let ip2 = ip_of(&cni.add(&c2, &conf));
    let ip3 = ip_of(&cni.add(&c3, &conf));
    // Another CNI network in the same state: GC of testnet leaves it alone.
    let other_conf = cni.conf("othernet", json!({"network": {"subnet": "10.124.0.0/24"}}));
    let c4 = Container::new("c4");
    let ip4 = ip_of(&cni.add(&c4, &other_conf));
    assert!(c1.ping(&ip3));

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([
        {"containerID": "c1", "ifname": "eth0"},
        {"containerID": "c2", "ifname": "eth0"},
        {"containerID": "c9", "ifname": "eth0"},
    ]);
    let a = cni.plain("GC", &gc);
    a.assert_ok();
    assert_eq!(a.stdout, "");
    assert!(!c1.ping(&ip3), "c3 is gone");
    assert!(!c3.addrs().contains("eth0"), "{}", c3.addrs());
    assert!(c1.ping(&ip2) && c2.ping(&ip1), "c1 and c2 stay");
    assert!(cni.host.ping(&ip4), "the other network stays");
    // DEL of what GC removed is still a success.
    cni.del(&c3, &conf);

    // Nothing valid: every attachment of testnet goes, and its network with it.
    gc["cni.dev/valid-attachments"] = json!([]);
    cni.plain("GC", &gc).assert_ok();
    assert!(!c1.addrs().contains("eth0") && !c2.addrs().contains("eth0"));
    assert!(cni.host.ping(&ip4), "the other network stays");
    cni.del(&c4, &other_conf);
    assert_eq!(cni.snapshot(), before);
}

#[test]
fn status_and_version() {
    let cni = Cni::new();
    let conf = cni.conf("testnet", json!({}));
    let a = cni.plain("STATUS", &conf);
    a.assert_ok();
    assert_eq!(a.stdout, "");

    // A state that cannot be read: not available (50).
    std::fs::write(cni.store_path(), "not a redb file\n").unwrap();
    let a = cni.plain("STATUS", &conf);
    assert_eq!(a.code(), 50, "{a:?}");
    // A data root that is a file.
    let file = cni.dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let mut bad = conf.clone();
    bad["dataRoot"] = json!(file);
    assert_eq!(cni.plain("STATUS", &bad).code(), 50);
    // STATUS is 1.1.0's.
    let mut old = conf.clone();
    old["cniVersion"] = json!("1.0.0");
    assert_eq!(cni.plain("STATUS", &old).code(), 1);

    let a = cni.plain("VERSION", &json!({"cniVersion": "1.0.0"}));
    a.assert_ok();
    let v = a.json();
    assert_eq!(v["cniVersion"], "1.0.0");
    let versions: Vec<&str> = v["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in ["0.4.0", "1.0.0", "1.1.0"] {
        assert!(versions.contains(&want), "{versions:?}");
    }
}

#[test]
fn errors_carry_the_spec_codes_and_leave_nothing() {
    let cni = Cni::new();
    let before = cni.snapshot();
    let c1 = Container::new("c1");
    let conf = cni.conf("testnet", json!({}));
    let netns = c1.netns();
    let add = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", "eth0"),
    ];
    let a = cni.raw(&add, "{not json");
    assert_eq!(a.code(), 6);
    assert_eq!(a.json()["cniVersion"], "1.1.0");
    assert!(!a.stderr.is_empty(), "the error in words on stderr");
    assert_eq!(cni.raw(&add[..2], &conf.to_string()).code(), 4);
    let a = cni.raw(&add[1..], &conf.to_string());
    assert!(a.json()["msg"].as_str().unwrap().contains("CNI_COMMAND"));
    let mut wrong = conf.clone();
    wrong["cniVersion"] = json!("9.9.9");
    assert_eq!(cni.call("ADD", &c1, "eth0", &wrong).code(), 1);
    let mut ipam = conf.clone();
    ipam["ipam"] = json!({"type": "host-local"});
    assert_eq!(cni.call("ADD", &c1, "eth0", &ipam).code(), 2);
    let mut bad = conf.clone();
    bad["network"]["subnet"] = json!("300.0.0.0/8");
    let a = cni.call("ADD", &c1, "eth0", &bad);
    assert_eq!(a.code(), 7);
    assert!(a.json()["msg"].as_str().unwrap().contains("network.subnet"));
    // Interface names that cannot be: the container's loopback, and one the spec forbids.
    let a = cni.call("ADD", &c1, "lo", &conf);
    assert_eq!(a.code(), 4, "{a:?}");
    assert!(a.json()["msg"].as_str().unwrap().contains("CNI_IFNAME"));
    assert_eq!(cni.call("ADD", &c1, "a/b", &conf).code(), 4);
    assert_eq!(cni.snapshot(), before, "refused before anything was made");

    // A namespace path that is no namespace: code 4, nothing made.
    let file = cni.dir.path().join("not-a-netns");
    std::fs::write(&file, "").unwrap();
    let a = cni.raw(
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", file.to_str().unwrap()),
            ("CNI_IFNAME", "eth0"),
        ],
        &conf.to_string(),
    );
    assert_eq!(a.code(), 4, "{a:?}");
    assert!(
        a.json()["msg"].as_str().unwrap().contains("CNI_NETNS"),
        "{a:?}"
    );
    assert_eq!(cni.snapshot(), before, "nothing made: {a:?}");
    // A failure after the network was made (a static address outside its subnet): everything
    // made for it is removed again.
    let outside = cni.conf("testnet", json!({"runtimeConfig": {"ips": ["10.99.0.5"]}}));
    let a = cni.call("ADD", &c1, "eth0", &outside);
    assert!(!a.ok, "{a:?}");
    assert!(a.stdout.contains("10.99.0.5"), "{a:?}");
    assert!(!c1.addrs().contains("eth0"), "{}", c1.addrs());
    assert_eq!(cni.snapshot(), before, "nothing half-made: {a:?}");

    // ADD twice without DEL: refused, the first one intact.
    let r = cni.add(&c1, &conf);
    let a = cni.call("ADD", &c1, "eth0", &conf);
    assert_eq!(a.code(), 102, "{a:?}");
    assert!(cni.host.ping(&ip_of(&r)));
    // Another CNI network naming testnet (berth's network of this one): refused, so that GC of
    // one never takes the other's attachments.
    let c4 = Container::new("c4");
    let squatter = cni.conf(
        "squatter",
        json!({"network": {"name": "testnet", "subnet": common::SUBNET}}),
    );
    let a = cni.call("ADD", &c4, "eth0", &squatter);
    assert_eq!(a.code(), 7, "{a:?}");
    assert!(
        a.json()["details"]
            .as_str()
            .unwrap()
            .contains("belongs to CNI network \"testnet\""),
        "{a:?}"
    );
    assert!(!c4.addrs().contains("eth0"));
    // A port another attachment holds.
    let c2 = Container::new("c2");
    let c3 = Container::new("c3");
    let ports = cni.conf(
        "testnet",
        json!({"runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80}]}}),
    );
    cni.add(&c2, &ports);
    let a = cni.call("ADD", &c3, "eth0", &ports);
    assert_eq!(a.code(), 102, "{a:?}");
    assert!(!c3.addrs().contains("eth0"), "nothing half-made in c3");
    cni.del(&c3, &ports);
    cni.del(&c2, &ports);
    cni.del(&c1, &conf);
    assert_eq!(cni.snapshot(), before);
}

#[test]
fn older_versions_static_addresses_macs_and_ranges() {
    let cni = Cni::new();
    let before = cni.snapshot();
    let (c1, c2, c3) = (
        Container::new("c1"),
        Container::new("c2"),
        Container::new("c3"),
    );
    let mut conf = cni.conf(
        "testnet",
        json!({"runtimeConfig": {"ips": ["10.123.0.50/24"], "mac": "02:00:00:aa:bb:cc"}}),
    );
    conf["cniVersion"] = json!("0.4.0");
    let r1 = cni.add(&c1, &conf);
    assert_eq!(r1["cniVersion"], "0.4.0");
    assert_eq!(
        r1["ips"][0]["version"], "4",
        "0.4.0 results carry the version"
    );
    assert_eq!(r1["ips"][0]["address"], "10.123.0.50/24");
    assert_eq!(r1["interfaces"][0]["mac"], "02:00:00:aa:bb:cc");
    let link = c1.ns.ip(&["-o", "link", "show", "eth0"]).unwrap();
    assert!(link.contains("02:00:00:aa:bb:cc"), "{link}");

    let ranges = cni.conf(
        "testnet",
        json!({"runtimeConfig": {"ipRanges": [[
            {"subnet": "10.123.0.0/24", "rangeStart": "10.123.0.100", "rangeEnd": "10.123.0.110"}
        ]]}}),
    );
    let r2 = cni.add(&c2, &ranges);
    assert_eq!(ip_of(&r2), "10.123.0.100");

    // CNI_ARGS IP= (the conventions), with other keys ignored.
    let netns = c3.netns();
    let a = cni.raw(
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c3"),
            ("CNI_NETNS", &netns),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.123.0.60"),
        ],
        &cni.conf("testnet", json!({})).to_string(),
    );
    a.assert_ok();
    assert_eq!(ip_of(&a.json()), "10.123.0.60");
    assert!(c3.addrs().contains("10.123.0.60/24"));
    assert!(c1.ping("10.123.0.100") && c2.ping("10.123.0.60") && c3.ping("10.123.0.50"));

    cni.del(&c1, &conf);
    cni.del(&c2, &ranges);
    cni.del(&c3, &ranges);
    assert_eq!(cni.snapshot(), before);
}

#[test]
fn a_chained_add_keeps_the_previous_result() {
    let cni = Cni::new();
    let c1 = Container::new("c1");
    let mut conf = cni.conf("testnet", json!({"dns": {"nameservers": ["10.123.0.1"]}}));
    conf["prevResult"] = json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "dummy0"}],
        "ips": [{"address": "192.0.2.10/24", "interface": 0}],
        "dns": {"nameservers": ["192.0.2.53"]}
    });
    let r = cni.add(&c1, &conf);
    assert_eq!(r["interfaces"][0]["name"], "dummy0");
    assert_eq!(r["interfaces"][1]["name"], "eth0");
    assert_eq!(r["ips"][0]["address"], "192.0.2.10/24");
    assert_eq!(r["ips"][1]["interface"], 1);
    assert_eq!(
        r["dns"]["nameservers"][0], "10.123.0.1",
        "the configuration's dns"
    );
    cni.del(&c1, &conf);
}

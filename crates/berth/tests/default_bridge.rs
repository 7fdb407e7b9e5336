//! The default bridge can be configured away (`Config::default_bridge`, dockerd's `--bridge`),
//! as root in throwaway namespaces: a foreign `docker0` is refused and left exactly as it was;
//! an existing bridge is used on purpose (its address, real traffic between sandboxes and to a
//! LAN peer) and left at the network's removal; `None` makes no `bridge` network and no
//! `docker0`; `Create` names berth's own bridge; every choice survives a restart, and a changed
//! choice replaces the network once no sandbox is on it.
#![allow(clippy::unwrap_used)]

mod common;

use berth::berth_driver::DriverError;
use berth::{Config, Controller, DefaultBridge, NetworkCreate, SandboxCreate};
use berth_bridge::BridgeError;
use berth_testhost::TestHost;
use common::*;

/// `ip -o link show NAME` (None: no such link). No details: they hold running timers.
fn link_line(host: &TestHost, name: &str) -> Option<String> {
    host.ip(&["-o", "link", "show", "dev", name]).ok()
}

/// The addresses of a link, as `inet 10.0.0.1/24`.
fn addrs(host: &TestHost, name: &str) -> Vec<String> {
    let out = host.ip(&["-o", "addr", "show", "dev", name]).unwrap();
    out.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Some(format!("{} {}", w.get(2)?, w.get(3)?))
        })
        .filter(|a| a.starts_with("inet "))
        .collect()
}

/// The link's alias (berth's mark on what it made), if any.
fn alias_of(host: &TestHost, name: &str) -> Option<String> {
    let out = host.ip(&["-j", "link", "show", "dev", name]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["ifalias"].as_str().map(str::to_owned)
}

/// The bridges of the test host.
fn bridges(host: &TestHost) -> Vec<String> {
    host.ip(&["-o", "link", "show", "type", "bridge"])
        .unwrap()
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(str::to_owned)
        .collect()
}

/// A bridge made as Docker or a user makes one: unmarked, with an address, up.
fn foreign_bridge(host: &TestHost, name: &str, addr: &str) {
    host.ip(&["link", "add", name, "type", "bridge"]).unwrap();
    host.ip(&["addr", "add", addr, "dev", name]).unwrap();
    host.ip(&["link", "set", name, "up"]).unwrap();
}

fn config(host: &TestHost, dir: &StateDir, choice: DefaultBridge) -> Config {
    let mut c = Fixture::config_for(host, dir);
    c.default_bridge = choice;
    c
}

fn existing(name: &str) -> DefaultBridge {
    DefaultBridge::Existing(name.into())
}

fn create(name: &str) -> DefaultBridge {
    DefaultBridge::Create(name.into())
}

fn network_names(ctl: &Controller) -> Vec<String> {
    ctl.networks().into_iter().map(|n| n.name).collect()
}

#[test]
fn a_foreign_docker0_is_refused_with_a_clear_error_and_left_exactly_as_it_was() {
    let host = TestHost::new().expect("a test host (run as root)");
    let dir = StateDir::new().unwrap();
    foreign_bridge(&host, "docker0", "172.17.0.1/16");
    let before = (link_line(&host, "docker0"), addrs(&host, "docker0"));
    assert_eq!(before.1, ["inet 172.17.0.1/16"]);

    // Berth's default (make docker0) meets Docker's docker0.
    let err = match Controller::new(Fixture::config_for(&host, &dir)) {
        Ok(_) => panic!("a foreign docker0 was taken over"),
        Err(e) => e,
    };
    let berth::Error::Driver(DriverError::Kernel { source, .. }) = &err else {
        panic!("not the bridge driver's refusal: {err:?}");
    };
    match source.downcast_ref::<BridgeError>() {
        Some(BridgeError::ForeignBridge { bridge, network }) => {
            assert_eq!((bridge.as_str(), network.as_str()), ("docker0", "bridge"));
        }
        other => panic!("not ForeignBridge: {other:?} ({err})"),
    }
    let text = err.to_string();
    for needle in [
        "bridge docker0 exists and was not made by berth",
        "--bridge docker0",
        "DefaultBridge::Existing",
        "DefaultBridge::Create",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
    // Nothing changed on it: no berth address beside Docker's, no mark, no rules for it.
    assert_eq!(
        (link_line(&host, "docker0"), addrs(&host, "docker0")),
        before
    );
    assert_eq!(alias_of(&host, "docker0"), None);
    let rules = host.run("iptables-save", &[]).unwrap();
    assert!(!rules.contains("docker0"), "{rules}");

    // Used on purpose, it serves as the default bridge with Docker's address, still unmarked.
    let ctl = Controller::new(config(&host, &dir, existing("docker0"))).unwrap();
    let bridge = ctl.inspect_network("bridge").unwrap();
    assert_eq!(bridge.ipam.config[0].subnet, "172.17.0.0/16");
    assert_eq!(addrs(&host, "docker0"), ["inet 172.17.0.1/16"]);
    assert_eq!(alias_of(&host, "docker0"), None);
    drop(ctl);

    // Or berth makes a bridge of another name: docker0 is left to Docker.
    let ctl = Controller::new(config(&host, &dir, create("br-other"))).unwrap();
    let bridge = ctl.inspect_network("bridge").unwrap();
    assert_eq!(bridge.options["com.docker.network.bridge.name"], "br-other");
    assert_ne!(
        bridge.ipam.config[0].subnet, "172.17.0.0/16",
        "Docker's is taken"
    );
    assert_eq!(
        (link_line(&host, "docker0"), addrs(&host, "docker0")),
        before
    );
    assert_eq!(alias_of(&host, "docker0"), None);
    drop(ctl);
}

#[test]
fn an_existing_bridge_carries_the_default_network_and_is_left_at_its_removal() {
    let host = TestHost::new().expect("a test host (run as root)");
    foreign_bridge(&host, "br-user", "10.77.0.1/24");
    let before = addrs(&host, "br-user");
    let mut f = Fixture::from_parts(host, StateDir::new().unwrap(), |c| {
        c.default_bridge = existing("br-user");
    });
    let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();

    // The network is on br-user, with its address as gateway and subnet (no bip given).
    let bridge = f.ctl().inspect_network("bridge").unwrap();
    assert_eq!(bridge.options["com.docker.network.bridge.name"], "br-user");
    assert_eq!(bridge.ipam.config[0].subnet, "10.77.0.0/24");
    assert_eq!(bridge.ipam.config[0].gateway.as_deref(), Some("10.77.0.1"));
    assert!(!bridges(&f.host).contains(&"docker0".to_owned()));
    let a = f.sandbox_on("a", "bridge");
    let b = f.sandbox_on("b", "bridge");
    assert!(
        a.starts_with("10.77.0.") && b.starts_with("10.77.0."),
        "{a} {b}"
    );
    let ports = f
        .host
        .ip(&["-o", "link", "show", "master", "br-user"])
        .unwrap();
    assert_eq!(ports.lines().count(), 2, "{ports}");
    assert!(f.ping("a", &b), "a reaches b over br-user");
    assert!(f.ping("b", "192.0.2.2"), "b reaches the LAN peer");
    assert_eq!(addrs(&f.host, "br-user"), before, "no berth address added");
    assert_eq!(alias_of(&f.host, "br-user"), None, "not marked as berth's");

    // A restart keeps the choice: the same network, still on br-user, traffic flows.
    let id = bridge.id;
    f.restart_with(|c| c.default_bridge = existing("br-user"));
    assert_eq!(f.ctl().inspect_network("bridge").unwrap().id, id);
    assert!(f.ping("a", &b));
    assert!(f.ping("a", "192.0.2.2"));
    assert_eq!(alias_of(&f.host, "br-user"), None);

    // The default bridge configured away while sandboxes are on it: kept for them.
    f.restart_with(|c| c.default_bridge = DefaultBridge::None);
    assert_eq!(f.ctl().inspect_network("bridge").unwrap().id, id);
    assert!(f.ping("a", &b), "kept while sandboxes are on it");

    // Without them, the next start removes the network: br-user stays as the user made it.
    f.ctl().remove_sandbox("a").unwrap();
    f.ctl().remove_sandbox("b").unwrap();
    f.restart_with(|c| c.default_bridge = DefaultBridge::None);
    assert_eq!(network_names(f.ctl()), ["host", "none"]);
    assert!(
        link_line(&f.host, "br-user").is_some(),
        "the user's bridge stays"
    );
    assert_eq!(addrs(&f.host, "br-user"), before);
    assert_eq!(alias_of(&f.host, "br-user"), None);
    let rules = f.host.run("iptables-save", &[]).unwrap();
    assert!(
        !rules.contains("br-user"),
        "its rules went with it:\n{rules}"
    );
    assert!(peer.ping("192.0.2.1"), "the LAN is untouched");
}

#[test]
fn an_existing_bridge_that_is_missing_is_refused_by_name() {
    let host = TestHost::new().expect("a test host (run as root)");
    let dir = StateDir::new().unwrap();
    let err = match Controller::new(config(&host, &dir, existing("br-gone"))) {
        Ok(_) => panic!("started without its bridge"),
        Err(e) => e,
    };
    let berth::Error::Driver(DriverError::Kernel { source, .. }) = &err else {
        panic!("not the bridge driver's refusal: {err:?}");
    };
    assert!(
        matches!(
            source.downcast_ref::<BridgeError>(),
            Some(BridgeError::ExistingBridgeMissing { bridge, .. }) if bridge == "br-gone"
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("ip link add br-gone type bridge"),
        "{err}"
    );
    assert_eq!(link_line(&host, "br-gone"), None, "not made by berth");
    assert!(bridges(&host).is_empty(), "{:?}", bridges(&host));
}

#[test]
fn no_default_bridge_means_no_bridge_network_and_no_docker0() {
    let mut f = Fixture::with(|c| c.default_bridge = DefaultBridge::None);
    assert_eq!(network_names(f.ctl()), ["host", "none"]);
    assert!(bridges(&f.host).is_empty(), "{:?}", bridges(&f.host));
    assert_eq!(link_line(&f.host, "docker0"), None);

    // A sandbox made without a network has none (loopback only).
    f.ctl()
        .create_sandbox(SandboxCreate::new("lonely"))
        .unwrap();
    assert!(
        f.ctl()
            .inspect_sandbox("lonely")
            .unwrap()
            .networks
            .is_empty()
    );
    let links = f.links_in("lonely");
    assert_eq!(links.lines().count(), 1, "{links}");
    // Docker's default network mode (`docker run` without --network) is `none` here.
    let mut req = SandboxCreate::new("defaulted");
    req.network = Some("default".into());
    f.ctl().create_sandbox(req).unwrap();
    let nets: Vec<String> = f
        .ctl()
        .inspect_sandbox("defaulted")
        .unwrap()
        .networks
        .into_keys()
        .collect();
    assert_eq!(nets, ["none"]);
    // The name stays reserved, as in Docker.
    let e = f
        .ctl()
        .create_network(NetworkCreate::new("bridge"))
        .unwrap_err();
    assert!(e.to_string().contains("pre-defined network"), "{e}");
    // User-defined networks work as ever.
    f.ctl().create_network(NetworkCreate::new("mine")).unwrap();
    let x = f.sandbox_on("x", "mine");
    f.sandbox_on("y", "mine");
    assert!(f.ping("y", &x));

    f.restart_with(|c| c.default_bridge = DefaultBridge::None);
    assert_eq!(network_names(f.ctl()), ["host", "mine", "none"]);
    assert_eq!(link_line(&f.host, "docker0"), None);
    assert!(f.ping("y", &x));
}

#[test]
fn create_names_berths_bridge_and_a_restart_keeps_or_replaces_it() {
    let mut f = Fixture::with(|c| c.default_bridge = create("br-other"));
    let bridge = f.ctl().inspect_network("bridge").unwrap();
    assert_eq!(bridge.options["com.docker.network.bridge.name"], "br-other");
    assert_eq!(bridges(&f.host), ["br-other"]);
    let mark = format!("berth:{}:{}", f.ctl().instance_id(), bridge.id);
    assert_eq!(
        alias_of(&f.host, "br-other").as_deref(),
        Some(mark.as_str())
    );
    let a = f.sandbox_on("a", "bridge");
    f.sandbox_on("b", "bridge");
    assert!(f.ping("b", &a));

    // The same choice after a restart: the same network and bridge.
    f.restart_with(|c| c.default_bridge = create("br-other"));
    assert_eq!(f.ctl().inspect_network("bridge").unwrap().id, bridge.id);
    assert_eq!(bridges(&f.host), ["br-other"]);
    assert!(f.ping("b", &a));

    // Back to the default without sandboxes on it: berth's br-other goes, docker0 comes.
    f.ctl().remove_sandbox("a").unwrap();
    f.ctl().remove_sandbox("b").unwrap();
    f.restart_with(|c| c.default_bridge = DefaultBridge::default());
    let now = f.ctl().inspect_network("bridge").unwrap();
    assert_ne!(now.id, bridge.id, "made anew");
    assert_eq!(now.options["com.docker.network.bridge.name"], "docker0");
    assert_eq!(bridges(&f.host), ["docker0"]);
    let a = f.sandbox_on("a", "bridge");
    f.sandbox_on("b", "bridge");
    assert!(f.ping("b", &a));

    // And to none: berth's docker0 goes too.
    f.ctl().remove_sandbox("a").unwrap();
    f.ctl().remove_sandbox("b").unwrap();
    f.restart_with(|c| c.default_bridge = DefaultBridge::None);
    assert_eq!(network_names(f.ctl()), ["host", "none"]);
    assert!(bridges(&f.host).is_empty(), "{:?}", bridges(&f.host));
}

/// The MAC of a link.
fn mac_of(host: &TestHost, name: &str) -> String {
    let out = host.ip(&["-j", "link", "show", "dev", name]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["address"].as_str().unwrap().to_owned()
}

#[test]
fn a_docker0_made_but_not_marked_before_a_crash_is_taken_back_by_its_mac() {
    let mut f = Fixture::new();
    let a = f.sandbox_on("a", "bridge");
    f.sandbox_on("b", "bridge");
    let mark = alias_of(&f.host, "docker0").expect("berth marks docker0");
    let mac = mac_of(&f.host, "docker0");
    f.stop();

    // What a crash between the bridge's creation and its marking leaves (the kernel takes no
    // alias in the creating request): berth's bridge, with the MAC berth gave it, unmarked.
    f.host
        .ip(&["link", "set", "dev", "docker0", "alias", ""])
        .unwrap();
    assert_eq!(alias_of(&f.host, "docker0"), None);
    f.start();
    assert_eq!(alias_of(&f.host, "docker0"), Some(mark), "marked again");
    assert_eq!(mac_of(&f.host, "docker0"), mac);
    assert!(f.ping("b", &a), "the sandboxes still reach each other");

    // An unmarked docker0 with another MAC is not berth's: refused, as before.
    f.stop();
    f.host
        .ip(&["link", "set", "dev", "docker0", "alias", ""])
        .unwrap();
    f.host
        .ip(&[
            "link",
            "set",
            "dev",
            "docker0",
            "address",
            "02:42:ac:11:00:01",
        ])
        .unwrap();
    let err = match Controller::new(f.config()) {
        Ok(_) => panic!("an unmarked docker0 with Docker's kind of MAC was taken over"),
        Err(e) => e,
    };
    assert!(
        err.to_string()
            .contains("bridge docker0 exists and was not made by berth"),
        "{err}"
    );
    assert_eq!(alias_of(&f.host, "docker0"), None, "left unmarked");
}

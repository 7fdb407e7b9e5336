//! Hardening (issue #14), as root in throwaway namespaces: the host-mode sandbox key, refusing the
//! host's namespace, `--ip` without a user subnet, published ports after a reboot, quarantined
//! records and the forward drop policy across restarts. Each test failed before its fix.

#![allow(clippy::unwrap_used)]

mod common;

use berth::{
    Controller, EndpointOptions, Error, FirewallBackend, IpamPoolConfig, NetworkCreate,
    SandboxCreate, SandboxNetns,
};
use berth_store::KvStore;
use common::*;

fn network_with_subnet(f: &Fixture, name: &str, subnet: &str) {
    let mut req = NetworkCreate::new(name);
    req.ipam.push(IpamPoolConfig {
        subnet: Some(subnet.parse().unwrap()),
        ..Default::default()
    });
    f.ctl().create_network(req).unwrap();
}

#[test]
fn a_host_mode_sandbox_key_names_the_daemons_host_namespace_to_every_process() {
    let f = Fixture::new();
    let mut req = SandboxCreate::new("hostnet");
    req.netns = SandboxNetns::Host;
    req.network = Some("host".into());
    f.ctl().create_sandbox(req).unwrap();
    let key = f.ctl().inspect_sandbox("hostnet").unwrap().sandbox_key;
    assert_eq!(key, f.netns_dir().join("default").display().to_string());
    // Another process entering the key lands in the test host, not in its own namespace.
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={key}"))
        .args(["readlink", "/proc/self/ns/net"])
        .output()
        .unwrap();
    let want = format!("net:[{}]", f.host.netns().id().unwrap());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want);
}

#[test]
fn the_hosts_namespace_is_never_adopted() {
    let f = Fixture::new();
    let host_path = f.host.path();
    for path in [
        host_path.clone(),
        "/proc/self/ns/net".into(),
        "/proc/1/ns/net".into(),
    ] {
        let mut req = SandboxCreate::new("intruder");
        req.netns = SandboxNetns::Adopt(path.clone());
        let err = f.ctl().create_sandbox(req).unwrap_err();
        // init's namespace may not even be openable here (a sandboxed machine): refused either way.
        let unopenable = path.starts_with("/proc/1/") && matches!(&err, Error::Kernel { .. });
        assert!(
            unopenable
                || matches!(&err, Error::InvalidRequest(m) if m.contains("host's network namespace")),
            "{}: {err}",
            path.display()
        );
        assert!(f.ctl().sandboxes().is_empty(), "nothing half-made");
    }
    // The name was given back, and a real sandbox namespace can still be adopted.
    let other = berth_testhost::TestHost::new().unwrap();
    let mut req = SandboxCreate::new("intruder");
    req.netns = SandboxNetns::Adopt(other.path());
    f.ctl().create_sandbox(req).unwrap();
    // The host's default route is untouched by anything above.
    assert!(f.host.run("ip", &["route"]).is_ok());
}

#[test]
fn a_user_address_needs_a_user_configured_subnet() {
    let f = Fixture::new();
    f.ctl()
        .create_network(NetworkCreate::new("auto_nw"))
        .unwrap();
    f.ctl().create_sandbox(SandboxCreate::new("a")).unwrap();
    let err = f
        .ctl()
        .connect(
            "a",
            "auto_nw",
            EndpointOptions {
                ipv4: Some("172.18.0.50".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("supported only when connecting to networks with user configured subnets"),
        "{err}"
    );
    assert!(f.berth_links().iter().all(|l| !l.starts_with("berth")));
    network_with_subnet(&f, "fixed_nw", "10.97.0.0/24");
    f.ctl()
        .connect(
            "a",
            "fixed_nw",
            EndpointOptions {
                ipv4: Some("10.97.0.50".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(f.ip_of("a", "fixed_nw"), "10.97.0.50");
}

#[test]
fn after_a_reboot_old_published_ports_do_not_come_back() {
    let mut f = Fixture::new();
    network_with_subnet(&f, "web_nw", "10.98.0.0/24");
    let mut req = SandboxCreate::new("web");
    req.network = Some("web_nw".into());
    req.endpoint.ports = vec!["18080:80/tcp".parse().unwrap()];
    f.ctl().create_sandbox(req).unwrap();
    f.sandbox_on("keep", "web_nw");
    assert!(f.iptables_save().contains("18080"));
    // berth stops; the machine reboots (/run is a tmpfs: the sandbox's namespace is gone).
    let web_id = f.ctl().inspect_sandbox("web").unwrap().id;
    f.ctl = None;
    assert!(berth_netlink::Netns::delete_named_in(&f.netns_dir(), &web_id).unwrap());
    f.restart();
    let rules = f.iptables_save();
    assert!(
        !rules.contains("18080"),
        "the port of a sandbox that is gone must not be forwarded:\n{rules}"
    );
    assert!(f.ctl().inspect_sandbox("web").is_err());
    assert!(f.ping("keep", "10.98.0.1"), "the other sandbox works");
}

#[test]
fn an_unreadable_record_is_quarantined_and_the_rest_starts() {
    let mut f = Fixture::new();
    f.sandbox_on("good", "bridge");
    f.ctl = None;
    let path = f.dir.path().join("data/berth.redb");
    {
        let store = berth_store::RedbStore::open(&path).unwrap();
        store.put("sandbox/ffff", b"{not json").unwrap();
    }
    f.restart();
    assert!(f.ping("good", "172.17.0.1"), "the rest came back");
    f.ctl = None;
    let store = berth_store::RedbStore::open(&path).unwrap();
    assert!(store.get("sandbox/ffff").unwrap().is_none());
    let q = store.get("quarantine/sandbox/ffff").unwrap().expect("kept");
    assert_eq!(q.value, b"{not json");
}

#[test]
fn the_forward_drop_policy_survives_a_restart_on_both_families() {
    let mut f = Fixture::with(|c| {
        c.firewall = Some(FirewallBackend::Nftables);
        c.ipv6 = true;
    });
    let policy = |f: &Fixture| f.host.run("nft", &["list", "ruleset"]).unwrap();
    for rules in [policy(&f), {
        f.restart_with(|c| {
            c.firewall = Some(FirewallBackend::Nftables);
            c.ipv6 = true;
        });
        policy(&f)
    }] {
        assert!(rules.contains("meta nfproto ipv4 drop"), "{rules}");
        assert!(rules.contains("meta nfproto ipv6 drop"), "{rules}");
    }
}

#[test]
fn a_second_berth_firewall_in_one_namespace_is_refused_before_it_writes_anything() {
    // A controller with a firewall on its data root, traffic through it.
    let f = Fixture::new();
    f.ctl().create_network(NetworkCreate::new("n")).unwrap();
    let a = f.sandbox_on("a", "n");
    f.sandbox_on("b", "n");
    assert!(f.ping("b", &a));
    // The rules, without iptables-save's comment lines (they carry the time).
    let rules_now = |f: &Fixture| -> Vec<String> {
        f.iptables_save()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    let rules = rules_now(&f);

    // A second data root, same host namespace: before, its start reconcile removed the first
    // one's rules (the same chain names). Now refused, naming the holder (this process).
    let other = common::StateDir::new().unwrap();
    let err = match Controller::new(Fixture::config_for(&f.host, &other)) {
        Ok(_) => panic!("a second berth firewall in the namespace was started"),
        Err(e) => e,
    };
    match &err {
        Error::Firewall(berth_firewall::Error::NamespaceClaimed { holder, .. }) => {
            let holder = holder.as_ref().expect("the holder is named");
            assert_eq!(holder.pid as u32, std::process::id());
        }
        other => panic!("not NamespaceClaimed: {other:?}"),
    }
    let text = err.to_string();
    for needle in [
        "another berth firewall (pid",
        "manages network namespace",
        &format!("pid {}", std::process::id()),
        "Config::firewall = None",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
    // Nothing written: no state, no rule changed, traffic as before.
    assert!(!other.path().join("data").exists(), "no data root made");
    assert_eq!(rules_now(&f), rules);
    assert!(f.ping("b", &a));

    // Without a firewall, a second berth may share the namespace.
    let mut config = Fixture::config_for(&f.host, &other);
    config.firewall = None;
    config.default_bridge = berth::DefaultBridge::None;
    let second = Controller::new(config).unwrap();
    second.teardown().unwrap();

    // The claim goes with its holder (docker0 stays the first instance's: none for this one).
    let mut f = f;
    f.stop();
    let mut config = Fixture::config_for(&f.host, &other);
    config.default_bridge = berth::DefaultBridge::None;
    let third = Controller::new(config);
    assert!(third.is_ok(), "{:?}", third.err());
    third.unwrap().teardown().unwrap();
}

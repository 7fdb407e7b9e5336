//! Bad input: typed errors with Docker-like messages, and nothing half-made in the kernel or the
//! store after any of them.
#![allow(clippy::unwrap_used)]

mod common;

use berth::{EndpointOptions, Error, IpamPoolConfig, NetworkCreate, SandboxCreate};
use common::Fixture;

fn subnet(s: &str) -> IpamPoolConfig {
    IpamPoolConfig {
        subnet: Some(s.parse().unwrap()),
        ..Default::default()
    }
}

/// What must not change when a request fails: berth's links, rules, networks and sandboxes.
fn snapshot(f: &Fixture) -> (Vec<String>, String, Vec<String>, Vec<String>) {
    let rules = f
        .iptables_save()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with(':'))
        .collect::<Vec<_>>()
        .join("\n");
    (
        f.berth_links(),
        rules,
        f.ctl().networks().into_iter().map(|n| n.name).collect(),
        f.ctl().sandboxes().into_iter().map(|s| s.name).collect(),
    )
}

#[test]
fn network_creation_errors_leave_nothing_behind() {
    let f = Fixture::new();
    f.ctl()
        .create_network(NetworkCreate::new("taken").subnet(subnet("10.1.0.0/16")))
        .unwrap();
    let before = snapshot(&f);
    let cases: Vec<(NetworkCreate, &str)> = vec![
        (
            NetworkCreate::new("taken"),
            "network with name taken already exists",
        ),
        (
            NetworkCreate::new("overlap").subnet(subnet("10.1.128.0/17")),
            "Pool overlaps with other one on this address space",
        ),
        (
            NetworkCreate::new("p2p31").subnet(subnet("10.94.0.0/31")),
            "failed to allocate gateway (): No available addresses on this pool",
        ),
        (
            NetworkCreate::new("host32").subnet(IpamPoolConfig {
                gateway: Some("10.94.0.1".parse().unwrap()),
                ..subnet("10.94.0.1/32")
            }),
            "failed to allocate gateway (10.94.0.1): No available addresses on this pool",
        ),
        (
            NetworkCreate::new("gw_out").subnet(IpamPoolConfig {
                gateway: Some("10.9.0.1".parse().unwrap()),
                ..subnet("10.2.0.0/16")
            }),
            "10.9.0.1",
        ),
        (
            NetworkCreate::new("range_out").subnet(IpamPoolConfig {
                ip_range: Some("10.9.0.0/24".parse().unwrap()),
                ..subnet("10.3.0.0/16")
            }),
            "10.9.0.0/24",
        ),
        (
            {
                let mut r = NetworkCreate::new("weird");
                r.driver = "weird".into();
                r
            },
            "no driver named \"weird\" is registered",
        ),
        (
            NetworkCreate::new("bad_prefix")
                .option(berth::IFACE_PREFIX_OPTION, "much-too-long-prefix"),
            "invalid com.docker.network.container_iface_prefix",
        ),
        (
            NetworkCreate::new("bad_value")
                .option("com.docker.network.bridge.enable_icc", "perhaps"),
            "\"perhaps\"",
        ),
        (
            NetworkCreate::new("bad_mtu").option("com.docker.network.driver.mtu", "10"),
            "between 68 and 65535",
        ),
        (NetworkCreate::new("bad name"), "invalid network name"),
        (
            {
                let mut r = NetworkCreate::new("host2");
                r.driver = "host".into();
                r
            },
            "only one instance of \"host\" network is allowed",
        ),
    ];
    for (req, needle) in cases {
        let name = req.name.clone();
        let err = f.ctl().create_network(req).unwrap_err();
        assert!(err.to_string().contains(needle), "{name}: {err}");
        assert_eq!(snapshot(&f), before, "{name} left something behind");
    }
    // Invalid CIDRs are refused where strings come in, before a request exists.
    let err = berth_ipam::parse_subnet("10.0.0.0/33").unwrap_err();
    assert!(err.to_string().contains("10.0.0.0/33"), "{err}");

    // A bridge name already used by another network.
    let err = f
        .ctl()
        .create_network(
            NetworkCreate::new("dup_bridge").option("com.docker.network.bridge.name", "docker0"),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Driver(_)), "{err}");
    assert_eq!(snapshot(&f), before);
}

#[test]
fn sandbox_and_connect_errors_leave_nothing_behind() {
    let f = Fixture::new();
    f.ctl()
        .create_network(NetworkCreate::new("nw").subnet(subnet("10.5.0.0/24")))
        .unwrap();
    f.ctl().create_sandbox(SandboxCreate::new("one")).unwrap();
    f.ctl()
        .connect(
            "one",
            "nw",
            EndpointOptions {
                ipv4: Some("10.5.0.10".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
    let before = snapshot(&f);
    let ns_count = || std::fs::read_dir(f.netns_dir()).unwrap().count();
    let namespaces = ns_count();

    let err = f
        .ctl()
        .create_sandbox(SandboxCreate::new("one"))
        .unwrap_err();
    assert!(matches!(err, Error::SandboxExists { .. }), "{err}");
    assert!(
        err.to_string().contains("\"one\" is already in use"),
        "{err}"
    );
    let err = f
        .ctl()
        .create_sandbox(SandboxCreate::new("/bad"))
        .unwrap_err();
    assert!(err.to_string().contains("invalid sandbox name"), "{err}");
    for bad in ["NOVALUE", "=x", "A=b\0c"] {
        let mut req = SandboxCreate::new("envy");
        req.env = vec!["OK=1".into(), bad.into()];
        let err = f.ctl().create_sandbox(req).unwrap_err();
        assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
        assert!(
            err.to_string().contains("invalid environment variable"),
            "{err}"
        );
    }
    // A path that is no namespace is the caller's mistake (a 400 over the API), named as such;
    // the name is free again afterwards.
    let plain = f.dir.path().join("plain-file");
    std::fs::write(&plain, b"").unwrap();
    for path in [std::path::PathBuf::from("/proc/999999999/ns/net"), plain] {
        let mut adopt = SandboxCreate::new("ghost");
        adopt.netns = berth::SandboxNetns::Adopt(path.clone());
        let err = f.ctl().create_sandbox(adopt).unwrap_err();
        assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
    assert!(f.ctl().inspect_sandbox("ghost").unwrap_err().is_not_found());
    // A create whose network does not exist: its namespace, files and name are given back.
    let mut lost = SandboxCreate::new("lost");
    lost.network = Some("no_such_nw".into());
    let err = f.ctl().create_sandbox(lost).unwrap_err();
    assert!(matches!(err, Error::NetworkNotFound(_)), "{err:?}");
    assert!(f.ctl().inspect_sandbox("lost").unwrap_err().is_not_found());
    assert_eq!(
        ns_count(),
        namespaces,
        "no namespace left by the failed create"
    );
    f.ctl().create_sandbox(SandboxCreate::new("lost")).unwrap();
    f.ctl().remove_sandbox("lost").unwrap();
    assert_eq!(ns_count(), namespaces);
    assert_eq!(snapshot(&f), before);

    let err = f
        .ctl()
        .connect("one", "nw", EndpointOptions::default())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "endpoint with name one already exists in network nw"
    );

    f.ctl().create_sandbox(SandboxCreate::new("two")).unwrap();
    let before = snapshot(&f);
    let cases = [
        (Some("10.5.0.10"), "nw", "in use"),
        (Some("10.6.0.10"), "nw", "10.6.0.10"),
        (
            Some("172.17.0.50"),
            "bridge",
            "user specified IP address is supported on user defined networks only",
        ),
        (None, "missing", "network missing not found"),
    ];
    for (ip, net, needle) in cases {
        let err = f
            .ctl()
            .connect(
                "two",
                net,
                EndpointOptions {
                    ipv4: ip.map(|i| i.parse().unwrap()),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .to_lowercase()
                .contains(&needle.to_lowercase()),
            "{ip:?} {net}: {err}"
        );
        assert_eq!(snapshot(&f), before);
        assert_eq!(
            f.links_in("two").lines().count(),
            1,
            "only lo in the sandbox"
        );
    }
    let err = f
        .ctl()
        .connect("nobody", "nw", EndpointOptions::default())
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let err = f.ctl().disconnect("two", "nw").unwrap_err();
    assert_eq!(
        err.to_string(),
        "sandbox two is not connected to network nw"
    );

    // The address that failed to be taken twice is still handed out exactly once.
    f.ctl()
        .connect("two", "nw", EndpointOptions::default())
        .unwrap();
    assert_ne!(f.ip_of("two", "nw"), "10.5.0.10");
}

#[test]
fn a_new_name_may_be_a_prefix_of_an_existing_id() {
    let f = Fixture::new();
    let id = f.ctl().inspect_network("none").unwrap().id;
    let name = &id[..2];
    f.ctl()
        .create_network(NetworkCreate::new(name).subnet(subnet("10.9.9.0/24")))
        .unwrap();
    // By that string, the exact name now wins over the id prefix.
    assert_eq!(f.ctl().inspect_network(name).unwrap().name, name);
    assert_eq!(f.ctl().inspect_network(&id).unwrap().name, "none");
}

/// The library never resolves an id prefix unless asked (`Config::id_prefixes`, which the
/// daemon sets for the docker CLI's users): `remove_sandbox("621")` with no sandbox named 621
/// does not remove the sandbox whose id starts with 621.
#[test]
fn ids_are_exact_unless_prefixes_are_asked_for() {
    let mut f = Fixture::new();
    f.ctl().create_network(NetworkCreate::new("net")).unwrap();
    let net_id = f.ctl().inspect_network("net").unwrap().id;
    f.sandbox_on("web", "net");
    let id = f.ctl().inspect_sandbox("web").unwrap().id;
    let prefix = &id[..3];
    let e = f.ctl().remove_sandbox(prefix).unwrap_err();
    assert!(matches!(e, berth::Error::SandboxNotFound(_)), "{e:?}");
    assert!(
        f.ctl().inspect_network(&net_id[..6]).is_err(),
        "no network by prefix"
    );
    assert!(f.ctl().inspect_sandbox("web").is_ok(), "web is still there");
    assert!(f.ctl().inspect_sandbox(&id).is_ok(), "by its whole id");

    f.restart_with(|c| c.id_prefixes = true);
    assert_eq!(f.ctl().inspect_network(&net_id[..6]).unwrap().name, "net");
    f.ctl().remove_sandbox(prefix).unwrap();
    assert!(
        f.ctl().inspect_sandbox("web").is_err(),
        "asked for: removed by prefix"
    );
}

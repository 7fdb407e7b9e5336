//! A remote network driver and IPAM plugin (the fake `fakenet`, which does a real plugin's
//! kernel work in the test host: a bridge per network, a veth pair per join) behind berth's
//! controller, as root in throwaway namespaces: two sandboxes on its network ping each other
//! and the gateway over the plugin's bridge, with the addresses the plugin's IPAM handed out
//! and the plugin's static routes; published ports reach the plugin in dockerd's option
//! shapes; removing everything leaves no link, address or plugin state behind. A restart of
//! the controller takes the plugin's endpoints back without asking the plugin to make them
//! again.

#![allow(clippy::unwrap_used)]

mod common;

use berth::{EndpointOptions, SandboxCreate};
use common::*;
use serde_json::json;

#[test]
fn sandboxes_on_a_plugin_network_talk_over_the_plugins_data_path() {
    let rig = Rig::new();
    assert_eq!(rig.plugin.implements(), ["NetworkDriver", "IpamDriver"]);
    let host_before = rig.host_links();

    let net_id = rig.plugin_network("plugnet").unwrap();
    let insp = rig.ctl().inspect_network("plugnet").unwrap();
    assert_eq!(
        (insp.driver.as_str(), insp.scope.as_str()),
        ("fakenet", "local")
    );

    // The plugin's IPAM was asked in its own address space; its pool and gateway reached the
    // driver's CreateNetwork in libnetwork's IPAMData shape.
    let pool_req = &rig.server.requests_to("/IpamDriver.RequestPool")[0];
    assert_eq!(
        pool_req.json(),
        json!({"AddressSpace": "fakelocal", "Pool": "", "SubPool": "", "Options": null, "V6": false})
    );
    let create = rig.server.requests_to("/NetworkDriver.CreateNetwork")[0].json();
    assert_eq!(create["NetworkID"], net_id.to_string());
    assert_eq!(
        create["IPv4Data"],
        json!([{"AddressSpace": "LocalDefault", "Pool": "10.77.0.0/24", "Gateway": "10.77.0.1/24"}])
    );
    assert_eq!(create["IPv6Data"], json!(null));
    assert_eq!(
        create["Options"]["com.docker.network.enable_ipv6"],
        json!(false)
    );
    let bridge = format!("fkbr{}", &net_id.as_str()[..8]);
    let bridge_addr = rig
        .host
        .ip(&["-o", "addr", "show", "dev", &bridge])
        .unwrap();
    assert!(bridge_addr.contains("10.77.0.1/24"), "{bridge_addr}");

    for name in ["one", "two"] {
        let mut req = SandboxCreate::new(name);
        req.network = Some("plugnet".into());
        rig.ctl().create_sandbox(req).unwrap();
    }
    // The addresses the plugin's IPAM gave, seen in the sandboxes by iproute2.
    assert_eq!(rig.ip_of("one", "plugnet"), "10.77.0.2");
    assert_eq!(rig.ip_of("two", "plugnet"), "10.77.0.3");
    let one_addr = rig.in_sandbox("one", &["-o", "-4", "addr", "show", "dev", "eth0"]);
    assert!(one_addr.contains("inet 10.77.0.2/24"), "{one_addr}");
    let two_addr = rig.in_sandbox("two", &["-o", "-4", "addr", "show", "dev", "eth0"]);
    assert!(two_addr.contains("inet 10.77.0.3/24"), "{two_addr}");
    // The plugin's interface was moved in under berth's name; its veth's host end is on the
    // plugin's bridge.
    assert_eq!(rig.sandbox_links("one"), ["eth0", "lo"]);
    let on_bridge = rig
        .host
        .ip(&["-o", "link", "show", "master", &bridge])
        .unwrap();
    assert_eq!(link_names(&on_bridge).len(), 2, "{on_bridge}");
    // The join's gateway became the default route, and its static routes are there.
    let routes = rig.in_sandbox("one", &["-4", "route"]);
    assert!(
        routes.contains("default via 10.77.0.1 dev eth0"),
        "{routes}"
    );
    assert!(
        routes.contains("192.0.2.0/24 via 10.77.0.1 dev eth0"),
        "{routes}"
    );
    assert!(
        routes.contains("198.51.100.0/24 dev eth0 scope link"),
        "{routes}"
    );

    // Real traffic over the plugin's bridge.
    // (berth's FORWARD policy is DROP and bridged traffic passes it: the plugin opened its
    // bridge, as real plugins do.)
    assert!(rig.ping("one", "10.77.0.3"), "one -> two");
    assert!(rig.ping("two", "10.77.0.2"), "two -> one");
    assert!(rig.ping("one", "10.77.0.1"), "one -> the plugin's gateway");

    // Joins carried the sandbox key; the endpoint's interface facts were berth's.
    let join = rig.server.requests_to("/NetworkDriver.Join")[0].json();
    assert!(
        join["SandboxKey"].as_str().unwrap().contains("/netns/"),
        "{join}"
    );
    let ce = rig.server.requests_to("/NetworkDriver.CreateEndpoint")[0].json();
    assert_eq!(
        ce["Interface"],
        json!({"Address": "10.77.0.2/24", "AddressIPv6": "", "MacAddress": ""})
    );

    // A third sandbox publishes ports: the plugin gets them in dockerd's shapes.
    let mut req = SandboxCreate::new("web");
    req.network = Some("plugnet".into());
    req.endpoint = EndpointOptions {
        ports: vec!["8080:80".parse().unwrap(), "53/udp".parse().unwrap()],
        ..Default::default()
    };
    rig.ctl().create_sandbox(req).unwrap();
    let web_ep = rig.ctl().inspect_sandbox("web").unwrap().networks["plugnet"]
        .endpoint_id
        .clone();
    let published = rig.fake.state().published[&web_ep].clone();
    assert_eq!(
        published["com.docker.network.portmap"],
        json!([
            {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080},
            {"Proto": 17, "IP": "", "Port": 53, "HostIP": "", "HostPort": 0, "HostPortEnd": 0}
        ])
    );
    assert_eq!(
        published["com.docker.network.exposedports"],
        json!([{"Proto": 6, "Port": 80}, {"Proto": 17, "Port": 53}])
    );
    assert!(rig.ping("web", "10.77.0.2"));

    // Disconnecting gives the interface back (Leave before DeleteEndpoint), revokes the ports.
    rig.ctl().disconnect("web", "plugnet").unwrap();
    assert_eq!(rig.sandbox_links("web"), ["lo"]);
    assert_eq!(
        rig.fake.state().back_at_leave,
        [true],
        "the interface was back in the host at Leave"
    );
    assert!(rig.fake.state().published.is_empty());
    let calls = rig.server.paths();
    let last: Vec<&str> = calls
        .iter()
        .rev()
        .take(4)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        last,
        [
            "/NetworkDriver.RevokeExternalConnectivity",
            "/NetworkDriver.Leave",
            "/NetworkDriver.DeleteEndpoint",
            "/IpamDriver.ReleaseAddress"
        ]
    );

    // Removing everything leaves nothing: no link in the host but what was there, no state in
    // the plugin (networks, endpoints, pools, addresses).
    for name in ["one", "two", "web"] {
        rig.ctl().remove_sandbox(name).unwrap();
    }
    rig.ctl().remove_network("plugnet").unwrap();
    let state = rig.fake.state();
    assert!(state.networks.is_empty(), "{state:?}");
    assert!(state.endpoints.is_empty(), "{state:?}");
    assert!(state.pools.is_empty(), "{state:?}");
    assert_eq!(rig.host_links(), host_before);
    let addrs = rig.host.ip(&["-o", "addr"]).unwrap();
    assert!(!addrs.contains("10.77."), "{addrs}");
    let rules = rig.host.run("iptables-save", &[]).unwrap();
    assert!(!rules.contains("fkbr"), "{rules}");
}

#[test]
fn a_restart_takes_plugin_endpoints_back_without_asking_the_plugin_again() {
    let mut rig = Rig::new();
    rig.plugin_network("plugnet").unwrap();
    for name in ["one", "two"] {
        let mut req = SandboxCreate::new(name);
        req.network = Some("plugnet".into());
        rig.ctl().create_sandbox(req).unwrap();
    }
    assert!(rig.ping("one", "10.77.0.3"));
    let host_links = rig.host_links();
    let before = rig.server.requests().len();

    rig.restart();
    // Only the handshake-time questions: no second CreateNetwork, CreateEndpoint or Join
    // (which would make a second interface), no address asked again.
    let calls = rig.server.paths()[before..].to_vec();
    assert_eq!(
        calls,
        [
            "/NetworkDriver.GetCapabilities",
            "/IpamDriver.GetCapabilities",
            "/IpamDriver.GetDefaultAddressSpaces"
        ]
    );
    assert_eq!(rig.host_links(), host_links);
    assert_eq!(rig.sandbox_links("one"), ["eth0", "lo"]);
    assert_eq!(rig.ip_of("one", "plugnet"), "10.77.0.2");
    assert!(rig.ping("one", "10.77.0.3"), "one -> two after the restart");
    let routes = rig.in_sandbox("two", &["-4", "route"]);
    assert!(
        routes.contains("default via 10.77.0.1 dev eth0"),
        "{routes}"
    );

    // What was taken back is given back as usual.
    rig.ctl().disconnect("one", "plugnet").unwrap();
    assert_eq!(rig.sandbox_links("one"), ["lo"]);
    assert_eq!(
        rig.fake.state().back_at_leave,
        [true],
        "the interface was back in the host at Leave"
    );
    rig.ctl().remove_sandbox("two").unwrap();
    rig.ctl().remove_sandbox("one").unwrap();
    rig.ctl().remove_network("plugnet").unwrap();
    let state = rig.fake.state();
    assert!(
        state.networks.is_empty() && state.endpoints.is_empty() && state.pools.is_empty(),
        "{state:?}"
    );
    let saved = rig.dir.path().join("data/plugins").join(PLUGIN);
    assert_eq!(
        std::fs::read_dir(&saved).unwrap().count(),
        0,
        "no saved endpoint is left"
    );
}

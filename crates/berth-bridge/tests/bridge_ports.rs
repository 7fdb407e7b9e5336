//! The bridge ports the driver makes, as root in throwaway namespaces: the host end of every
//! veth has IPv6 off, only an endpoint that publishes ports gets hairpin mode, and the bridge
//! keeps its own MAC address as ports join. (That a
//! sandbox reaches its own published port through the host, which needs hairpin mode with
//! br_netfilter, is proved with traffic in `crates/berth/tests/ports.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use berth_bridge::{BridgeDefaults, BridgeDriver, default_bridge_name, host_veth_name};
use berth_driver::{
    EndpointId, EndpointSpec, IpamInfo, JoinRequest, NetworkDriver, NetworkId, NetworkSpec,
    SandboxId, SandboxRef,
};
use berth_netlink::Handle;
use berth_portmap::PortSpec;
use berth_testhost::TestHost;

/// `ip -d link show NAME` in the host namespace.
fn details(host: &TestHost, name: &str) -> String {
    host.ip(&["-d", "link", "show", name])
        .expect("ip -d link show")
}

/// The MAC address of a link in the host namespace.
fn mac_of(host: &TestHost, name: &str) -> String {
    let shown = host
        .ip(&["-o", "link", "show", name])
        .expect("ip link show");
    let mut words = shown.split_whitespace();
    words
        .find(|w| *w == "link/ether")
        .expect("an Ethernet link");
    words.next().expect("a MAC address").to_owned()
}

fn host_ipv6_disabled(host: &TestHost, name: &str) -> String {
    host.run(
        "cat",
        &[&format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6")],
    )
    .expect("reading disable_ipv6")
    .trim()
    .to_owned()
}

#[test]
fn host_ends_have_ipv6_off_and_hairpin_only_with_published_ports() {
    let host = TestHost::new().expect("a test host namespace (run the tests as root)");
    let driver = BridgeDriver::new(host.netns(), None, BridgeDefaults::default()).unwrap();
    let net = NetworkSpec {
        id: NetworkId::from_bytes([0x5c; 32]),
        name: "ports_nw".into(),
        ipv4: vec![IpamInfo {
            pool: "10.77.0.0/24".parse().unwrap(),
            gateway: Some("10.77.0.1/24".parse().unwrap()),
            aux_addresses: BTreeMap::new(),
        }],
        ipv6: Vec::new(),
        internal: false,
        enable_ipv6: false,
    };
    let options = driver.parse_options(&Default::default()).unwrap();
    driver.create_network(&net, &options).unwrap();
    let bridge = default_bridge_name(&net.id);
    let bridge_mac = mac_of(&host, &bridge);
    // Locally administered (second bit of the first byte), not taken from a port.
    let first = u8::from_str_radix(&bridge_mac[..2], 16).unwrap();
    assert_eq!(first & 0x03, 0x02, "{bridge_mac}");

    let mut sandboxes = Vec::new();
    let mut endpoints = Vec::new();
    for i in 0..2u8 {
        let sandbox = TestHost::new().expect("a sandbox namespace");
        let netlink = Handle::open(sandbox.netns()).unwrap();
        let endpoint = EndpointId::from_bytes([0xa0 + i; 32]);
        driver
            .create_endpoint(&EndpointSpec {
                network: net.id.clone(),
                endpoint: endpoint.clone(),
                ipv4: Some(format!("10.77.0.{}/24", 10 + i).parse().unwrap()),
                ipv6: None,
                mac: None,
            })
            .unwrap();
        let sandbox_id = SandboxId::from_bytes([0xb0 + i; 32]);
        driver
            .join(&JoinRequest {
                network: &net.id,
                endpoint: &endpoint,
                sandbox: SandboxRef {
                    id: &sandbox_id,
                    netns: sandbox.netns(),
                    netlink: &netlink,
                },
                ifname: "eth0",
            })
            .unwrap();
        sandboxes.push(sandbox);
        endpoints.push(endpoint);
    }
    assert_eq!(mac_of(&host, &bridge), bridge_mac);
    // The pair works: the two sandboxes reach each other over the bridge.
    assert!(berth_testhost::ping_in(sandboxes[0].netns(), "10.77.0.11"));

    let quiet = host_veth_name(&endpoints[0]);
    let publisher = host_veth_name(&endpoints[1]);
    for name in [&quiet, &publisher] {
        assert_eq!(host_ipv6_disabled(&host, name), "1", "{name}");
        let d = details(&host, name);
        assert!(d.contains("hairpin off"), "{d}");
    }
    let specs: Vec<PortSpec> = vec!["18080:80".parse().unwrap()];
    let bindings = driver
        .program_external_connectivity(&net.id, &endpoints[1], &specs)
        .unwrap();
    assert_eq!(bindings.len(), 1);
    let d = details(&host, &publisher);
    assert!(d.contains("hairpin on"), "{d}");
    let d = details(&host, &quiet);
    assert!(d.contains("hairpin off"), "{d}");

    driver
        .revoke_external_connectivity(&net.id, &endpoints[1])
        .unwrap();
    for endpoint in &endpoints {
        driver.leave(&net.id, endpoint).unwrap();
        driver.delete_endpoint(&net.id, endpoint).unwrap();
    }
    driver.delete_network(&net.id).unwrap();
    assert!(host.ip(&["link", "show", &publisher]).is_err());
}

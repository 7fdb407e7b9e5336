//! Helpers shared by the bridge driver's kernel tests: networks, sandboxes joined to them, and
//! independent views of kernel state through iproute2 (never through berth-netlink).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::fd::AsFd;

use berth_bridge::BridgeDriver;
use berth_driver::{
    EndpointId, EndpointSpec, IpamInfo, JoinRequest, NetnsRef, NetworkDriver, NetworkId,
    NetworkSpec, RawOptions, SandboxId, SandboxRef,
};
use berth_testhost::TestHost;

/// A fresh test host; fails loudly (never skips) when namespaces cannot be made.
pub fn host() -> TestHost {
    TestHost::new().expect("a test host namespace (run the kernel tests as root)")
}

/// A network `10.<subnet>.0.0/24` (gateway `.1`) with id bytes `id`.
pub fn network(id: u8, subnet: u8) -> NetworkSpec {
    NetworkSpec {
        id: NetworkId::from_bytes([id; 32]),
        name: format!("nw{id}"),
        ipv4: vec![IpamInfo {
            pool: format!("10.{subnet}.0.0/24").parse().unwrap(),
            gateway: Some(format!("10.{subnet}.0.1/24").parse().unwrap()),
            aux_addresses: BTreeMap::new(),
        }],
        ipv6: Vec::new(),
        internal: false,
        enable_ipv6: false,
    }
}

/// Creates `net` with the given driver options.
pub fn create(driver: &BridgeDriver, net: &NetworkSpec, options: &[(&str, &str)]) {
    try_create(driver, net, options).unwrap();
}

/// Creates `net` with the given driver options; the result is returned.
pub fn try_create(
    driver: &BridgeDriver,
    net: &NetworkSpec,
    options: &[(&str, &str)],
) -> berth_driver::Result<()> {
    let raw: RawOptions = options
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let parsed = driver.parse_options(&raw)?;
    driver.create_network(net, &parsed)
}

/// The address of endpoint `i` on `net`: `10.<subnet>.0.<10 + i>`.
pub fn addr_of(net: &NetworkSpec, i: u8) -> String {
    let subnet = match net.ipv4[0].pool {
        ipnet::IpNet::V4(n) => n.addr().octets()[1],
        ipnet::IpNet::V6(_) => unreachable!("IPv4 test networks"),
    };
    format!("10.{subnet}.0.{}", 10 + i)
}

/// The gateway address of `net`.
pub fn gateway_of(net: &NetworkSpec) -> String {
    net.ipv4[0].gateway.unwrap().addr().to_string()
}

/// Creates endpoint `i` (id bytes `0xa0 + i`, address [`addr_of`]) on `net`, not joined.
pub fn create_endpoint(driver: &BridgeDriver, net: &NetworkSpec, i: u8) -> EndpointId {
    let endpoint = EndpointId::from_bytes([0xa0 + i; 32]);
    driver
        .create_endpoint(&EndpointSpec {
            network: net.id.clone(),
            endpoint: endpoint.clone(),
            ipv4: Some(format!("{}/24", addr_of(net, i)).parse().unwrap()),
            ipv6: None,
            mac: None,
            options: Default::default(),
        })
        .unwrap();
    endpoint
}

/// Creates endpoint `i` (id bytes `0xa0 + i`, address [`addr_of`]) on `net` and joins a fresh
/// sandbox to it as `eth0`.
pub fn join(driver: &BridgeDriver, net: &NetworkSpec, i: u8) -> (TestHost, EndpointId) {
    let sandbox = host();
    let endpoint = join_in(driver, net, i, &sandbox);
    (sandbox, endpoint)
}

/// Creates endpoint `i` (id bytes `0xa0 + i`, address [`addr_of`]) on `net` and joins
/// `sandbox` to it as `eth0` (again, after a restart, when the pair exists already).
pub fn join_in(driver: &BridgeDriver, net: &NetworkSpec, i: u8, sandbox: &TestHost) -> EndpointId {
    let path = sandbox.path();
    let endpoint = create_endpoint(driver, net, i);
    let sandbox_id = SandboxId::from_bytes([0xb0 + i; 32]);
    driver
        .join(&JoinRequest {
            network: &net.id,
            endpoint: &endpoint,
            sandbox: SandboxRef {
                id: &sandbox_id,
                netns: NetnsRef {
                    path: &path,
                    fd: Some(sandbox.netns().as_fd()),
                },
            },
            ifname: "eth0",
        })
        .unwrap();
    endpoint
}

/// Leaves and deletes every endpoint, then deletes the network.
pub fn tear_down(driver: &BridgeDriver, net: &NetworkSpec, endpoints: &[&EndpointId]) {
    for ep in endpoints {
        driver.leave(&net.id, ep).unwrap();
        driver.delete_endpoint(&net.id, ep).unwrap();
    }
    driver.delete_network(&net.id).unwrap();
}

/// Whether a link exists in the test host, as iproute2 sees it.
pub fn link_exists(host: &TestHost, name: &str) -> bool {
    host.ip(&["link", "show", "dev", name]).is_ok()
}

/// The alias of a link in the test host, as iproute2 sees it (`None`: none, or no such link).
pub fn alias_of(host: &TestHost, name: &str) -> Option<String> {
    let out = host.ip(&["-j", "link", "show", "dev", name]).ok()?;
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j printed JSON");
    v[0]["ifalias"].as_str().map(str::to_owned)
}

/// Names of every link in the test host, as iproute2 sees them.
pub fn link_names(host: &TestHost) -> Vec<String> {
    let out = host.ip(&["-j", "link", "show"]).expect("ip -j link show");
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j printed JSON");
    v.as_array()
        .expect("an array of links")
        .iter()
        .map(|l| l["ifname"].as_str().expect("ifname").to_owned())
        .collect()
}

/// The IPv4 addresses (`a.b.c.d/len`) on a link, as iproute2 sees them.
pub fn ipv4_addrs(host: &TestHost, name: &str) -> Vec<String> {
    let out = host
        .ip(&["-j", "-4", "addr", "show", "dev", name])
        .expect("ip -j addr show");
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j printed JSON");
    v[0]["addr_info"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| format!("{}/{}", i["local"].as_str().unwrap(), i["prefixlen"]))
                .collect()
        })
        .unwrap_or_default()
}

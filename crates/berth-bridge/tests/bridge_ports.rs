//! The bridge ports the driver makes, as root in throwaway namespaces: the host end of every
//! veth has IPv6 off and the bridge's MAC address, only an endpoint that publishes ports gets
//! hairpin mode, the bridge keeps its own MAC address as ports join, and multicast snooping is
//! off unless asked for while multicast reaches every sandbox. (That a
//! sandbox reaches its own published port through the host, which needs hairpin mode with
//! br_netfilter, is proved with traffic in `crates/berth/tests/ports.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

use berth_bridge::{
    BridgeDefaults, BridgeDriver, MCAST_SNOOPING, default_bridge_name, host_veth_name,
};
use berth_driver::{
    EndpointId, EndpointSpec, IpamInfo, JoinInfo, JoinRequest, NetnsRef, NetworkDriver, NetworkId,
    NetworkSpec, SandboxId, SandboxRef,
};
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

/// Multicast snooping of a bridge, as `ip -d -j link show` reports it (0 or 1).
fn snooping(host: &TestHost, bridge: &str) -> u64 {
    let out = host
        .ip(&["-d", "-j", "link", "show", bridge])
        .expect("ip -d -j link show");
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j printed JSON");
    v[0]["linkinfo"]["info_data"]["mcast_snooping"]
        .as_u64()
        .unwrap_or_else(|| panic!("no mcast_snooping in {out}"))
}

/// A network `10.<subnet>.0.0/24` with id bytes `id`.
fn network(id: u8, subnet: u8) -> NetworkSpec {
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

/// Creates endpoint `i` on `net` (`10.<subnet>.0.<10 + i>`) and joins a fresh sandbox to it as
/// `eth0`; the join's result is returned, not unwrapped.
fn try_join(
    driver: &BridgeDriver,
    net: &NetworkSpec,
    i: u8,
) -> (TestHost, EndpointId, berth_driver::Result<JoinInfo>) {
    let sandbox = TestHost::new().expect("a sandbox namespace");
    let path = sandbox.path();
    let endpoint = EndpointId::from_bytes([0xa0 + i; 32]);
    let subnet = match net.ipv4[0].pool {
        ipnet::IpNet::V4(n) => n.addr().octets()[1],
        ipnet::IpNet::V6(_) => unreachable!("IPv4 test networks"),
    };
    driver
        .create_endpoint(&EndpointSpec {
            network: net.id.clone(),
            endpoint: endpoint.clone(),
            ipv4: Some(format!("10.{subnet}.0.{}/24", 10 + i).parse().unwrap()),
            ipv6: None,
            mac: None,
            options: Default::default(),
        })
        .unwrap();
    let sandbox_id = SandboxId::from_bytes([0xb0 + i; 32]);
    let joined = driver.join(&JoinRequest {
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
    });
    (sandbox, endpoint, joined)
}

/// [`try_join`], which must succeed.
fn join(driver: &BridgeDriver, net: &NetworkSpec, i: u8) -> (TestHost, EndpointId) {
    let (sandbox, endpoint, joined) = try_join(driver, net, i);
    joined.unwrap();
    (sandbox, endpoint)
}

/// A test host, a driver in it, and network `10.<subnet>.0.0/24` created with default options.
fn network_in_host(id: u8, subnet: u8) -> (TestHost, BridgeDriver, NetworkSpec) {
    let host = TestHost::new().expect("a test host namespace (run the tests as root)");
    let driver = BridgeDriver::new(host.netns(), None, BridgeDefaults::default()).unwrap();
    let net = network(id, subnet);
    let options = driver.parse_options(&Default::default()).unwrap();
    driver.create_network(&net, &options).unwrap();
    (host, driver, net)
}

#[test]
fn host_ends_have_ipv6_off_and_hairpin_only_with_published_ports() {
    let (host, driver, net) = network_in_host(0x5c, 77);
    let bridge = default_bridge_name(&net.id);
    let bridge_mac = mac_of(&host, &bridge);
    // Locally administered (second bit of the first byte), not taken from a port.
    let first = u8::from_str_radix(&bridge_mac[..2], 16).unwrap();
    assert_eq!(first & 0x03, 0x02, "{bridge_mac}");

    let (sandboxes, endpoints): (Vec<_>, Vec<_>) = (0..2).map(|i| join(&driver, &net, i)).unzip();
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

/// A socket inside `sandbox` on `port`, joined to `group` on `iface` (the sandbox's address),
/// that gives up reading after 2 s.
fn multicast_listener(
    sandbox: &TestHost,
    group: Ipv4Addr,
    iface: Ipv4Addr,
    port: u16,
) -> UdpSocket {
    sandbox
        .exec(move || {
            let s = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))).unwrap();
            s.join_multicast_v4(&group, &iface).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s
        })
        .unwrap()
}

fn received(s: &UdpSocket) -> Option<String> {
    let mut buf = [0u8; 64];
    s.recv_from(&mut buf)
        .ok()
        .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn ports_share_the_bridge_mac_and_multicast_reaches_every_sandbox_without_snooping() {
    let (host, driver, net) = network_in_host(0x5d, 78);
    let bridge = default_bridge_name(&net.id);
    assert_eq!(snooping(&host, &bridge), 0, "snooping off by default");

    let joined: Vec<_> = (0..3).map(|i| join(&driver, &net, i)).collect();
    let bridge_mac = mac_of(&host, &bridge);
    for (_, endpoint) in &joined {
        assert_eq!(mac_of(&host, &host_veth_name(endpoint)), bridge_mac);
    }
    // One local (permanent) forwarding entry for the bridge and all its ports.
    let fdb = host.run("bridge", &["fdb", "show", "br", &bridge]).unwrap();
    let local: Vec<&str> = fdb
        .lines()
        .filter(|l| l.contains("permanent") && !l.starts_with("33:33") && !l.starts_with("01:00"))
        .collect();
    assert_eq!(local.len(), 1, "{fdb}");
    assert!(local[0].starts_with(&bridge_mac), "{fdb}");

    // Unicast still flows; multicast from sandbox 0 reaches both listeners.
    assert!(berth_testhost::ping_in(joined[0].0.netns(), "10.78.0.12"));
    let group = Ipv4Addr::new(239, 7, 7, 7);
    let listeners: Vec<UdpSocket> = joined[1..]
        .iter()
        .enumerate()
        .map(|(i, (sb, _))| {
            multicast_listener(sb, group, Ipv4Addr::new(10, 78, 0, 11 + i as u8), 5999)
        })
        .collect();
    let sender = &joined[0].0;
    sender
        .ip(&["route", "add", "224.0.0.0/4", "dev", "eth0"])
        .unwrap();
    sender
        .exec(move || {
            let s = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).unwrap();
            s.send_to(b"hello group", SocketAddr::from((group, 5999)))
                .unwrap();
        })
        .unwrap();
    for l in &listeners {
        assert_eq!(received(l).as_deref(), Some("hello group"));
    }

    for (_, endpoint) in &joined {
        driver.leave(&net.id, endpoint).unwrap();
        driver.delete_endpoint(&net.id, endpoint).unwrap();
    }
    driver.delete_network(&net.id).unwrap();
}

#[test]
fn snooping_on_when_asked_and_owned_bridges_converge_to_the_option() {
    let host = TestHost::new().expect("a test host namespace (run the tests as root)");
    let driver = BridgeDriver::new(host.netns(), None, BridgeDefaults::default()).unwrap();
    let asked = network(0x5e, 79);
    let on: berth_driver::RawOptions = [(MCAST_SNOOPING.to_owned(), "true".to_owned())].into();
    driver
        .create_network(&asked, &driver.parse_options(&on).unwrap())
        .unwrap();
    assert_eq!(snooping(&host, &default_bridge_name(&asked.id)), 1);

    // A bridge under berth's naming left by an earlier run, with the kernel's default (on), is
    // adopted and switched to the option's value.
    let left = network(0x5f, 80);
    let bridge = default_bridge_name(&left.id);
    host.ip(&["link", "add", &bridge, "type", "bridge"])
        .unwrap();
    assert_eq!(snooping(&host, &bridge), 1);
    driver
        .create_network(&left, &driver.parse_options(&Default::default()).unwrap())
        .unwrap();
    assert_eq!(snooping(&host, &bridge), 0);
    let (sb, ep) = join(&driver, &left, 0);
    assert!(berth_testhost::ping_in(sb.netns(), "10.80.0.1"));
    driver.leave(&left.id, &ep).unwrap();
    driver.delete_endpoint(&left.id, &ep).unwrap();

    // The bridge made anew under its name (a new interface index): a join still finds it.
    host.ip(&["link", "del", &bridge]).unwrap();
    host.ip(&["link", "add", &bridge, "type", "bridge"])
        .unwrap();
    let (_sb, ep) = join(&driver, &left, 1);
    let port = host
        .ip(&["-o", "link", "show", &host_veth_name(&ep)])
        .unwrap();
    assert!(port.contains(&format!("master {bridge}")), "{port}");
    driver.leave(&left.id, &ep).unwrap();
    driver.delete_endpoint(&left.id, &ep).unwrap();

    // The bridge gone: the join fails naming it, and leaves no veth in either namespace.
    host.ip(&["link", "del", &bridge]).unwrap();
    let (sb, ep, joined) = try_join(&driver, &left, 2);
    let e = joined.unwrap_err().to_string();
    assert!(e.contains(&bridge), "{e}");
    assert!(host.ip(&["link", "show", &host_veth_name(&ep)]).is_err());
    let links = sb.ip(&["-o", "link", "show"]).unwrap();
    assert_eq!(links.lines().count(), 1, "only lo in the sandbox: {links}");
    driver.delete_endpoint(&left.id, &ep).unwrap();
    for n in [&asked, &left] {
        driver.delete_network(&n.id).unwrap();
    }
    assert!(host.ip(&["link", "show", &bridge]).is_err());
}

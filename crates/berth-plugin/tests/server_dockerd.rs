//! A stock dockerd 20.10 uses berth for its data path: `docker network create -d NAME
//! --ipam-driver NAME` makes a berth bridge network with the subnet and addresses berth's IPAM
//! hands out; containers on it ping each other by address and by name (Docker's own DNS); a
//! `-p` port is reached from a LAN peer of dockerd's namespace; an `--internal` network gives
//! no default route and no gateway network; a dual-stack network gets its IPv6 pool and
//! addresses from berth's IPAM and carries IPv6 traffic; the plugin server restarts
//! under running containers without them noticing; dockerd restarts (stopping its containers)
//! and finds the network as it was, and the containers started again work; removing the
//! containers and the network leaves no link, rule or server state. One dockerd for the whole
//! binary (it takes seconds to start), so the test runs its phases in order.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::engine::{Engine, IMAGE, PAGE};
use serde_json::Value;

/// `GET /` from the LAN peer to `addr` (an HTTP/1.0 exchange on a socket made in the peer's
/// namespace): the body, or None when nothing answers.
fn lan_fetch(peer: &berth_testhost::LanPeer, addr: &str) -> Option<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    let timeout = Duration::from_secs(3);
    let mut s = peer
        .netns()
        .run(|| TcpStream::connect_timeout(&addr, timeout))
        .ok()?
        .ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

fn run(e: &Engine, name: &str, network: &str, extra: &[&str], cmd: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--init", "--name", name, "--network", network];
    args.extend_from_slice(extra);
    args.push(IMAGE);
    args.extend_from_slice(cmd);
    e.ok(&args)
}

fn address_of(e: &Engine, container: &str) -> (String, String) {
    let out = e.ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.MacAddress}}{{end}}",
        container,
    ]);
    let (ip, mac) = out.split_once(' ').unwrap();
    (ip.to_owned(), mac.to_owned())
}

#[test]
fn dockerd_runs_containers_on_berth() {
    let mut e = Engine::start();
    let name = e.name.clone();
    let links_before = e.links();

    // A bad value of a bridge option is refused, naming itself; nothing is made.
    let err = e.fails(&[
        "network",
        "create",
        "-d",
        &name,
        "-o",
        "com.docker.network.bridge.enable_icc=maybe",
        "bad",
    ]);
    assert!(err.contains("enable_icc") && err.contains("maybe"), "{err}");
    assert_eq!(e.links(), links_before);
    // An option the bridge driver does not know is ignored, as dockerd's own bridge does.
    e.ok(&[
        "network",
        "create",
        "-d",
        &name,
        "-o",
        "com.example.vendor=1",
        "vendor",
    ]);
    e.ok(&["network", "rm", "vendor"]);
    assert_eq!(e.links(), links_before);

    // The network: berth's bridge, berth's IPAM.
    let net_id = e.ok(&[
        "network",
        "create",
        "-d",
        &name,
        "--ipam-driver",
        &name,
        "--subnet",
        "10.87.0.0/24",
        "bnet",
    ]);
    let bridge = format!("br-{}", &net_id[..12]);
    let ipam: Value =
        serde_json::from_str(&e.ok(&["network", "inspect", "-f", "{{json .IPAM}}", "bnet"]))
            .unwrap();
    assert_eq!(ipam["Driver"], name.as_str());
    assert_eq!(ipam["Config"][0]["Subnet"], "10.87.0.0/24");
    let bridge_addr = e
        .docker
        .host()
        .ip(&["-o", "addr", "show", "dev", &bridge])
        .unwrap();
    assert!(bridge_addr.contains("10.87.0.1/24"), "{bridge_addr}");

    run(&e, "c1", "bnet", &[], &["sleep", "100000"]);
    run(&e, "c2", "bnet", &[], &["sleep", "100000"]);
    run(
        &e,
        "web",
        "bnet",
        &["-p", "8080:80"],
        &["httpd", "-f", "-p", "80", "-h", "/www"],
    );
    // Addresses from berth's IPAM, MACs from berth's bridge driver (via CreateEndpoint).
    assert_eq!(
        address_of(&e, "c1"),
        ("10.87.0.2".to_owned(), "02:42:0a:57:00:02".to_owned())
    );
    assert_eq!(address_of(&e, "c2").0, "10.87.0.3");
    let eth0 = e.ok(&["exec", "c1", "ip", "-o", "addr", "show", "eth0"]);
    assert!(eth0.contains("inet 10.87.0.2/24"), "{eth0}");
    // The gateway berth's IPAM gave, on berth's bridge and as the join's gateway.
    let routes = e.ok(&["exec", "c1", "ip", "route"]);
    assert!(
        routes.contains("default via 10.87.0.1 dev eth0"),
        "{routes}"
    );
    // The containers' host ends are ports of berth's bridge; no handed-over end is left over.
    let ports = e
        .docker
        .host()
        .ip(&["-o", "link", "show", "master", &bridge])
        .unwrap();
    assert_eq!(common::link_names(&ports).len(), 3, "{ports}");
    assert!(!e.links().iter().any(|l| l.starts_with("bpeer")));

    let traffic = |e: &Engine, peer: &berth_testhost::LanPeer, when: &str| {
        assert!(e.pings("c1", "10.87.0.3"), "c1 -> c2 by address ({when})");
        assert!(e.pings("c2", "c1"), "c2 -> c1 by name ({when})");
        assert!(e.pings("c1", "c2"), "c1 -> c2 by name ({when})");
        assert!(e.pings("web", "10.87.0.1"), "web -> the gateway ({when})");
        assert_eq!(
            lan_fetch(peer, "192.0.2.1:8080").as_deref(),
            Some(PAGE),
            "the published port from the LAN ({when})"
        );
    };
    let peer = e
        .docker
        .host()
        .add_lan_peer("192.0.2.1/24", "192.0.2.2/24")
        .unwrap();
    traffic(&e, &peer, "first start");

    // A second network on dockerd's own IPAM: berth's data path with dockerd's addresses.
    e.ok(&[
        "network",
        "create",
        "-d",
        &name,
        "--subnet",
        "10.91.0.0/24",
        "dnet",
    ]);
    run(&e, "d1", "dnet", &[], &["sleep", "100000"]);
    assert_eq!(address_of(&e, "d1").0, "10.91.0.2");
    assert!(e.pings("d1", "10.91.0.1"), "d1 -> its gateway");
    assert!(
        !e.pings("d1", "10.87.0.2"),
        "networks are isolated from each other"
    );

    // The plugin server restarts under running containers: nothing changes for them.
    e.stop_server();
    assert!(e.pings("c1", "c2"), "traffic while the server is down");
    e.start_server();
    traffic(&e, &peer, "after a restart of the plugin server");
    assert!(!e.links().iter().any(|l| l.starts_with("bpeer")));

    // dockerd restarts: it stops its containers (through the plugin), keeps the network and
    // does not create it again; started again, the containers work.
    e.docker.restart().unwrap();
    let ipam: Value =
        serde_json::from_str(&e.ok(&["network", "inspect", "-f", "{{json .IPAM}}", "bnet"]))
            .unwrap();
    assert_eq!(ipam["Config"][0]["Subnet"], "10.87.0.0/24");
    assert_eq!(
        e.ok(&["inspect", "-f", "{{.State.Running}}", "c1"]),
        "false",
        "dockerd stopped its containers"
    );
    let ports = e
        .docker
        .host()
        .ip(&["-o", "link", "show", "master", &bridge])
        .unwrap();
    assert!(
        common::link_names(&ports).is_empty(),
        "their veths are gone: {ports}"
    );
    e.ok(&["start", "c1", "c2", "web", "d1"]);
    traffic(&e, &peer, "after a restart of dockerd");
    assert!(e.pings("d1", "10.91.0.1"));

    // An internal network: no gateway in the join, so no default route, and dockerd adds no
    // gateway network (DisableGatewayService); its containers still reach each other.
    e.ok(&[
        "network",
        "create",
        "-d",
        &name,
        "--ipam-driver",
        &name,
        "--internal",
        "--subnet",
        "10.92.0.0/24",
        "inet",
    ]);
    run(&e, "i1", "inet", &[], &["sleep", "100000"]);
    run(&e, "i2", "inet", &[], &["sleep", "100000"]);
    let routes = e.ok(&["exec", "i1", "ip", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    let i1_links = common::link_names(&e.ok(&["exec", "i1", "ip", "-o", "link"]));
    assert_eq!(i1_links, ["eth0", "lo"], "no gateway network was added");
    assert!(
        e.pings("i1", "i2"),
        "i1 -> i2 by name on the internal network"
    );

    // Dual stack: berth's IPAM gives the IPv6 pool and addresses too.
    e.ok(&[
        "network",
        "create",
        "-d",
        &name,
        "--ipam-driver",
        &name,
        "--ipv6",
        "--subnet",
        "10.93.0.0/24",
        "--subnet",
        "fd00:93::/64",
        "v6net",
    ]);
    run(&e, "s1", "v6net", &[], &["sleep", "100000"]);
    run(&e, "s2", "v6net", &[], &["sleep", "100000"]);
    let v6 = e.ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}",
        "s1",
    ]);
    assert_eq!(v6, "fd00:93::2");
    let addrs = e.ok(&["exec", "s2", "ip", "-o", "-6", "addr", "show", "eth0"]);
    assert!(addrs.contains("fd00:93::3/64"), "{addrs}");
    assert!(
        e.docker(&["exec", "s1", "ping6", "-c", "1", "-W", "2", "fd00:93::3"])
            .status
            .success(),
        "s1 -> s2 over IPv6"
    );
    assert!(
        e.docker(&["exec", "s1", "ping6", "-c", "1", "-W", "2", "fd00:93::1"])
            .status
            .success(),
        "s1 -> its IPv6 gateway"
    );

    // Removing everything leaves nothing: links, rules, the server's state.
    e.ok(&["rm", "-f", "c1", "c2", "web", "d1", "i1", "i2", "s1", "s2"]);
    e.ok(&["network", "rm", "bnet", "dnet", "inet", "v6net"]);
    drop(peer);
    let links = e.links();
    assert!(
        !links
            .iter()
            .any(|l| l.starts_with("br-") || l.starts_with("berth") || l.starts_with("bpeer")),
        "{links:?}"
    );
    let rules = e.rules();
    assert!(
        !rules.contains(&bridge)
            && ["10.87.0.", "10.91.0.", "10.92.0.", "10.93.0.", "fd00:93:"]
                .iter()
                .all(|s| !rules.contains(s)),
        "{rules}"
    );
    // A restart of the server brings nothing back, and berth's pool is free again.
    e.stop_server();
    e.start_server();
    assert!(!e.links().iter().any(|l| l.starts_with("br-")));
    e.ok(&[
        "network",
        "create",
        "-d",
        &name,
        "--ipam-driver",
        &name,
        "--subnet",
        "10.87.0.0/24",
        "again",
    ]);
    e.ok(&["network", "rm", "again"]);
    assert!(!e.links().iter().any(|l| l.starts_with("br-")));
}

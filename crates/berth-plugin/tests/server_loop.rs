//! berth's client against berth's server closes the loop: a berth controller with the plugin's
//! network and IPAM drivers registered (`discover` + `RemoteNetworkDriver`/`RemoteIpamDriver`)
//! runs sandboxes on berth's plugin server, whose data path is berth's bridge driver in the
//! same test host. Proved with traffic: two sandboxes ping each other over the server's bridge
//! with the addresses the server's IPAM handed out; a published port is reached from a LAN peer
//! through the server's NAT; the server restarts (and is even down for a while) without
//! traffic noticing; removing everything leaves no link, rule or state behind. Refusals name
//! what is wrong and leave nothing; the protocol's shapes (media type, error bodies, 404,
//! persistent connections) are checked on the wire.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use berth::{EndpointOptions, SandboxCreate};
use berth_plugin::{PluginServer, ServerConfig};
use berth_testhost::traffic::{TcpBanner, tcp_fetch};
use common::served::{Served, raw_call, split_response};
use serde_json::{Value, json};

fn sandbox(s: &Served, name: &str, network: &str, ports: &[&str]) {
    let mut req = SandboxCreate::new(name);
    req.network = Some(network.into());
    req.endpoint = EndpointOptions {
        ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
        ..Default::default()
    };
    s.ctl().create_sandbox(req).unwrap();
}

#[test]
fn berths_client_runs_sandboxes_on_berths_server() {
    let mut s = Served::new();
    let links_before = s.host_links();
    let lan = s.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    let links_with_lan = s.host_links();

    let net_id = s.network("loop", "10.86.0.0/24").unwrap();
    let bridge = format!("br-{}", net_id.short());
    // The server's IPAM gave the subnet and the gateway: the bridge carries it.
    let bridge_addr = s.host.ip(&["-o", "addr", "show", "dev", &bridge]).unwrap();
    assert!(bridge_addr.contains("10.86.0.1/24"), "{bridge_addr}");
    let insp = s.ctl().inspect_network("loop").unwrap();
    assert_eq!(insp.driver, s.name);

    sandbox(&s, "one", "loop", &[]);
    sandbox(&s, "two", "loop", &[]);
    assert_eq!(s.ip_of("one", "loop"), "10.86.0.2");
    assert_eq!(s.ip_of("two", "loop"), "10.86.0.3");
    // The interface the server handed over, in the sandbox under berth's name, with the MAC
    // the server's bridge driver chose (Docker's 02:42 + IPv4) and the join's default route.
    let link = s.in_sandbox("one", &["-o", "link", "show", "eth0"]);
    assert!(link.contains("link/ether 02:42:0a:56:00:02"), "{link}");
    let routes = s.in_sandbox("one", &["-4", "route"]);
    assert!(
        routes.contains("default via 10.86.0.1 dev eth0"),
        "{routes}"
    );
    // Its host end is a port of the server's bridge; no sandbox end is left in the host.
    let ports_of_bridge = s
        .host
        .ip(&["-o", "link", "show", "master", &bridge])
        .unwrap();
    assert_eq!(
        common::link_names(&ports_of_bridge).len(),
        2,
        "{ports_of_bridge}"
    );
    assert!(!s.host_links().iter().any(|l| l.starts_with("bpeer")));

    assert!(
        s.ping("one", "10.86.0.3"),
        "one -> two over the server's bridge"
    );
    assert!(s.ping("two", "10.86.0.2"), "two -> one");
    assert!(s.ping("one", "10.86.0.1"), "one -> the gateway");

    // A published port, reached from the LAN through the server's NAT.
    sandbox(&s, "web", "loop", &["8080:80"]);
    let web_ns = s.ctl().sandbox_netns("web").unwrap();
    let _banner = TcpBanner::start(&web_ns, "0.0.0.0:80".parse().unwrap(), "web").unwrap();
    let published: SocketAddr = "192.0.2.1:8080".parse().unwrap();
    let fetch = || tcp_fetch(lan.netns(), published, Duration::from_secs(3));
    assert_eq!(fetch().unwrap(), "web from 192.0.2.2");
    // The server reports the bindings in dockerd's shape (IPv4 and, as berth publishes on
    // both families, IPv6).
    let web_ep = s.ctl().inspect_sandbox("web").unwrap().networks["loop"]
        .endpoint_id
        .clone();
    let (_, _, info) = raw_call(
        &s.socket(),
        "/NetworkDriver.EndpointOperInfo",
        &json!({"NetworkID": net_id.to_string(), "EndpointID": web_ep}).to_string(),
    );
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(
        info["Value"]["com.docker.network.portmap"],
        json!([
            {"Proto": 6, "IP": "", "Port": 80, "HostIP": "0.0.0.0", "HostPort": 8080, "HostPortEnd": 8080},
            {"Proto": 6, "IP": "", "Port": 80, "HostIP": "::", "HostPort": 8080, "HostPortEnd": 8080}
        ])
    );

    // The server stops: the kernel keeps forwarding while it is down.
    s.stop_server();
    assert!(!s.socket().exists(), "the socket goes with the server");
    assert!(
        s.ping("one", "10.86.0.3"),
        "traffic while the server is down"
    );
    assert_eq!(fetch().unwrap(), "web from 192.0.2.2");
    // Started again on its state: nothing is made twice, everything still works, and the
    // server knows its endpoints (a second sandbox's join works, the published port is held).
    s.start_server();
    assert!(!s.host_links().iter().any(|l| l.starts_with("bpeer")));
    assert!(s.ping("one", "10.86.0.3"), "one -> two after the restart");
    assert_eq!(fetch().unwrap(), "web from 192.0.2.2");
    sandbox(&s, "three", "loop", &[]);
    assert_eq!(
        s.ip_of("three", "loop"),
        "10.86.0.5",
        "no address handed out twice"
    );
    assert!(s.ping("three", "10.86.0.2"));
    let held = s
        .host
        .exec(|| std::net::TcpListener::bind("0.0.0.0:8080").is_err())
        .unwrap();
    assert!(
        held,
        "the published host port is held again after the restart"
    );

    // Disconnecting revokes the port and deletes the veth.
    s.ctl().disconnect("web", "loop").unwrap();
    assert!(fetch().is_err(), "the port is no longer published");

    // Removing everything leaves nothing: links, addresses, rules, state.
    for name in ["one", "two", "three", "web"] {
        s.ctl().remove_sandbox(name).unwrap();
    }
    s.ctl().remove_network("loop").unwrap();
    assert_eq!(s.host_links(), links_with_lan);
    let rules = s.rules();
    assert!(
        !rules.contains(&bridge) && !rules.contains("10.86.0."),
        "{rules}"
    );
    // A restart brings nothing back, and the pool is free again.
    s.restart_server();
    assert_eq!(s.host_links(), links_with_lan);
    s.network("again", "10.86.0.0/24").unwrap();
    s.ctl().remove_network("again").unwrap();
    assert_eq!(s.host_links(), links_with_lan);
    assert!(links_with_lan.len() == links_before.len() + 1);
}

#[test]
fn refusals_name_what_is_wrong_and_leave_nothing() {
    let mut s = Served::new();
    let links = s.host_links();
    // An option the bridge driver does not know is ignored, as dockerd's bridge ignores it...
    let mut req = berth::NetworkCreate::new("vendor")
        .driver(&s.name)
        .option("com.example.vendor", "1");
    req.ipam_driver = s.name.clone();
    s.ctl().create_network(req).unwrap();
    s.ctl().remove_network("vendor").unwrap();
    assert_eq!(s.host_links(), links);
    // ...unless the server is strict (`berth plugin serve --strict-options`).
    s.stop_server();
    s.server = Some(PluginServer::start(s.config().with_strict_options(true)).unwrap());
    // A bridge option with a bad value, an option the bridge driver does not know.
    let mut req = berth::NetworkCreate::new("bad")
        .driver(&s.name)
        .option("com.docker.network.bridge.enable_icc", "maybe");
    req.ipam_driver = s.name.clone();
    let e = s.ctl().create_network(req).unwrap_err().to_string();
    assert!(
        e.contains("com.docker.network.bridge.enable_icc") && e.contains("maybe"),
        "{e}"
    );
    let mut req = berth::NetworkCreate::new("bad")
        .driver(&s.name)
        .option("bogus", "1");
    req.ipam_driver = s.name.clone();
    let e = s.ctl().create_network(req).unwrap_err().to_string();
    assert!(e.contains("unknown option \"bogus\""), "{e}");
    assert_eq!(s.host_links(), links, "nothing made");
    // An overlapping subnet is refused by the server's IPAM, with the subnet named.
    s.network("first", "10.87.0.0/24").unwrap();
    let e = s.network("second", "10.87.0.0/25").unwrap_err().to_string();
    assert!(e.contains("10.87.0.0/24"), "{e}");
    s.ctl().remove_network("first").unwrap();
    assert_eq!(s.host_links(), links);
    // The pools the refused creates asked for were given back: all of 10.87/24 is free.
    s.network("third", "10.87.0.0/24").unwrap();
    s.ctl().remove_network("third").unwrap();

    // Servers that cannot start say why, and leave the running one alone (its network's rules
    // included): a bad name, a socket another server answers on, a state directory another
    // server holds.
    let guarded = s.network("guarded", "10.87.1.0/24").unwrap();
    let guarded_bridge = format!("br-{}", guarded.short());
    assert!(s.rules().contains(&guarded_bridge));
    let e = PluginServer::start(ServerConfig::new("a/b"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("a/b"), "{e}");
    let e = PluginServer::start(s.config().with_state_dir(s.state.path().join("other")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("answers there already"), "{e}");
    let other_socket = s.dirs.sockets.join("other.sock");
    let e = PluginServer::start(s.config().with_socket(&other_socket))
        .unwrap_err()
        .to_string();
    assert!(e.contains("state store"), "{e}");
    assert!(!other_socket.exists());
    let (status, _, _) = raw_call(&s.socket(), "/Plugin.Activate", "");
    assert_eq!(status, "HTTP/1.1 200 OK", "the running server still serves");
    let rules = s.rules();
    assert!(rules.contains(&guarded_bridge), "{rules}");
    s.ctl().remove_network("guarded").unwrap();
    // A stale socket (its server gone without removing it) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&other_socket).unwrap());
    assert!(other_socket.exists());
    let second = PluginServer::start(
        ServerConfig::new("other")
            .with_socket(&other_socket)
            .with_state_dir(s.state.path().join("other"))
            .with_host_netns(s.host.path())
            .with_firewall(None),
    )
    .unwrap();
    let (status, _, _) = raw_call(&other_socket, "/Plugin.Activate", "");
    assert_eq!(status, "HTTP/1.1 200 OK");
    second.shutdown();
    assert!(!other_socket.exists());
}

#[test]
fn the_wire_is_dockerds() {
    let s = Served::new();
    let sock = s.socket();
    let (status, headers, body) = raw_call(&sock, "/Plugin.Activate", "");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("Content-Type: application/vnd.docker.plugins.v1+json"),
        "{headers}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"Implements": ["NetworkDriver", "IpamDriver"]})
    );
    let (_, _, caps) = raw_call(&sock, "/NetworkDriver.GetCapabilities", "");
    let caps: Value = serde_json::from_str(&caps).unwrap();
    assert_eq!(
        (caps["Scope"].as_str(), caps["ConnectivityScope"].as_str()),
        (Some("local"), Some("local"))
    );
    let (_, _, spaces) = raw_call(&sock, "/IpamDriver.GetDefaultAddressSpaces", "");
    assert_eq!(
        serde_json::from_str::<Value>(&spaces).unwrap()["LocalDefaultAddressSpace"],
        "LocalDefault"
    );
    // A network driver error: 500 with Err. An IPAM error: 200 with Error.
    let (status, _, body) = raw_call(
        &sock,
        "/NetworkDriver.CreateNetwork",
        r#"{"NetworkID": "not-an-id"}"#,
    );
    assert_eq!(status, "HTTP/1.1 500 Internal Server Error");
    let err = serde_json::from_str::<Value>(&body).unwrap()["Err"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        err.contains("NetworkID") && err.contains("not-an-id"),
        "{err}"
    );
    let (status, _, body) = raw_call(
        &sock,
        "/IpamDriver.RequestPool",
        r#"{"AddressSpace": "Elsewhere", "Pool": "10.1.0.0/24"}"#,
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    let err = serde_json::from_str::<Value>(&body).unwrap()["Error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        err.contains("AddressSpace") && err.contains("Elsewhere"),
        "{err}"
    );
    // An unknown call: 404, as dockerd expects of a call a plugin does not implement.
    let (status, _, _) = raw_call(&sock, "/NetworkDriver.Bogus", "{}");
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    // Persistent connections, as Go's client keeps them: two calls on one connection, the
    // pool of the first released by the second.
    let mut conn = UnixStream::connect(&sock).unwrap();
    let body = r#"{"AddressSpace":"LocalDefault","Pool":"10.88.0.0/24","SubPool":"10.88.0.128/25","Options":null,"V6":false}"#;
    write!(
        conn,
        "POST /IpamDriver.RequestPool HTTP/1.1\r\nHost: plugin\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let first = read_one_response(&mut conn);
    let pool: Value = serde_json::from_str(&split_response(&first).2).unwrap();
    assert_eq!(pool["PoolID"], "LocalDefault/10.88.0.0/24/10.88.0.128/25");
    assert_eq!(pool["Pool"], "10.88.0.0/24");
    // Addresses come from the range; the gateway from the whole subnet.
    let ask = |conn: &mut UnixStream, body: String| {
        write!(
            conn,
            "POST /IpamDriver.RequestAddress HTTP/1.1\r\nHost: plugin\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let r = read_one_response(conn);
        serde_json::from_str::<Value>(&split_response(&r).2).unwrap()["Address"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let gw = ask(
        &mut conn,
        json!({"PoolID": pool["PoolID"], "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}).to_string(),
    );
    assert_eq!(gw, "10.88.0.1/24");
    let first_addr = ask(
        &mut conn,
        json!({"PoolID": pool["PoolID"], "Address": ""}).to_string(),
    );
    assert_eq!(first_addr, "10.88.0.128/24");
    let release = json!({"PoolID": pool["PoolID"]}).to_string();
    write!(
        conn,
        "POST /IpamDriver.ReleasePool HTTP/1.1\r\nHost: plugin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{release}",
        release.len()
    )
    .unwrap();
    let mut rest = String::new();
    conn.read_to_string(&mut rest).unwrap();
    let (status, headers, body) = split_response(&rest);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(headers.contains("Connection: close"), "{headers}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["Error"], "");
}

/// Reads exactly one response (headers and a Content-Length body) from a kept connection.
fn read_one_response(conn: &mut UnixStream) -> String {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).unwrap();
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw.clone()).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).unwrap();
    raw.extend(body);
    String::from_utf8(raw).unwrap()
}

/// One IPAM call; its answer.
fn ipam(s: &Served, call: &str, body: Value) -> Value {
    let (status, _, answer) = raw_call(
        &s.socket(),
        &format!("/IpamDriver.{call}"),
        &body.to_string(),
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    serde_json::from_str(&answer).unwrap()
}

#[test]
fn default_pools_skip_the_hosts_routes_and_v6_pools_are_given() {
    let s = Served::new();
    let next = json!({"AddressSpace": "LocalDefault", "Pool": "", "SubPool": "", "V6": false});
    let first = ipam(&s, "RequestPool", next.clone());
    assert_eq!(first["Pool"], "172.17.0.0/16", "{first}");
    ipam(&s, "ReleasePool", json!({"PoolID": first["PoolID"]}));
    // A route of the host namespace's own (a LAN on 172.17.0.0/16) is skipped, as berth does.
    let _lan = s
        .host
        .add_lan_peer("172.17.0.1/16", "172.17.0.2/16")
        .unwrap();
    let second = ipam(&s, "RequestPool", next.clone());
    assert_eq!(second["Pool"], "172.18.0.0/16", "{second}");
    ipam(&s, "ReleasePool", json!({"PoolID": second["PoolID"]}));
    // IPv6: a given subnet; none from the defaults (Docker's have no IPv6 pool); a family
    // mismatch is refused with the field named.
    let v6 = ipam(
        &s,
        "RequestPool",
        json!({"AddressSpace": "LocalDefault", "Pool": "fd00:77::/64", "V6": true}),
    );
    assert_eq!(v6["PoolID"], "LocalDefault/fd00:77::/64");
    let gw = ipam(
        &s,
        "RequestAddress",
        json!({"PoolID": v6["PoolID"], "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
    );
    assert_eq!(gw["Address"], "fd00:77::1/64");
    let addr = ipam(
        &s,
        "RequestAddress",
        json!({"PoolID": v6["PoolID"], "Address": "fd00:77::99"}),
    );
    assert_eq!(addr["Address"], "fd00:77::99/64");
    let taken = ipam(
        &s,
        "RequestAddress",
        json!({"PoolID": v6["PoolID"], "Address": "fd00:77::99"}),
    );
    assert!(
        taken["Error"].as_str().unwrap().contains("fd00:77::99"),
        "{taken}"
    );
    let none = ipam(
        &s,
        "RequestPool",
        json!({"AddressSpace": "LocalDefault", "Pool": "", "V6": true}),
    );
    assert!(!none["Error"].as_str().unwrap().is_empty(), "{none}");
    let mixed = ipam(
        &s,
        "RequestPool",
        json!({"AddressSpace": "LocalDefault", "Pool": "10.1.0.0/24", "V6": true}),
    );
    assert!(mixed["Error"].as_str().unwrap().contains("Pool"), "{mixed}");
    // Addresses and pools survive a restart: the address is still taken, the pool still there.
    let mut s = s;
    s.restart_server();
    let taken = ipam(
        &s,
        "RequestAddress",
        json!({"PoolID": v6["PoolID"], "Address": "fd00:77::99"}),
    );
    assert!(!taken["Error"].as_str().unwrap().is_empty(), "{taken}");
    let again = ipam(
        &s,
        "RequestPool",
        json!({"AddressSpace": "LocalDefault", "Pool": "fd00:77::/64", "V6": true}),
    );
    assert!(
        again["Error"].as_str().unwrap().contains("fd00:77::/64"),
        "{again}"
    );
    ipam(
        &s,
        "ReleaseAddress",
        json!({"PoolID": v6["PoolID"], "Address": "fd00:77::99"}),
    );
    ipam(&s, "ReleasePool", json!({"PoolID": v6["PoolID"]}));
    s.restart_server();
    let free = ipam(
        &s,
        "RequestPool",
        json!({"AddressSpace": "LocalDefault", "Pool": "fd00:77::/64", "V6": true}),
    );
    assert_eq!(
        free["Error"], "",
        "released before the restart: free after it"
    );
}

#[test]
fn work_a_crash_cut_short_is_finished_on_start() {
    use berth_store::{KvStore, RedbStore};

    let mut s = Served::new();
    let kept = s.network("kept", "10.84.0.0/24").unwrap();
    let half_made = s.network("halfmade", "10.85.0.0/24").unwrap();
    sandbox(&s, "one", "kept", &[]);
    sandbox(&s, "two", "kept", &[]);
    assert!(s.ping("one", "10.84.0.3"));
    let one_ep = s.ctl().inspect_sandbox("one").unwrap().networks["kept"]
        .endpoint_id
        .clone();
    // What a crash leaves: a creation never confirmed, a join never confirmed.
    s.stop_server();
    {
        let store = RedbStore::open(s.state.path().join("plugin.db")).unwrap();
        let set_phase = |key: String, path: &[&str]| {
            let mut v: Value =
                serde_json::from_slice(&store.get(&key).unwrap().unwrap().value).unwrap();
            let mut at = &mut v;
            for p in path {
                at = &mut at[*p];
            }
            assert_eq!(*at, "ready", "{key}");
            *at = json!("creating");
            store.put(&key, &serde_json::to_vec(&v).unwrap()).unwrap();
        };
        set_phase(format!("network/{half_made}"), &["phase"]);
        set_phase(format!("endpoint/{one_ep}"), &["join", "phase"]);
    }
    s.start_server();
    // The network that was never confirmed is gone; the other stays and carries traffic.
    let links = s.host_links();
    assert!(
        !links.contains(&format!("br-{}", half_made.short())),
        "{links:?}"
    );
    assert!(links.contains(&format!("br-{}", kept.short())), "{links:?}");
    // The join that was never confirmed: its veth is deleted (the sandbox lost its interface),
    // the confirmed one still works.
    let one_links = common::link_names(&s.in_sandbox("one", &["-o", "link"]));
    assert_eq!(one_links, ["lo"]);
    assert!(!s.ping("one", "10.84.0.3"));
    assert!(s.ping("two", "10.84.0.1"));
    let rules = s.rules();
    assert!(
        !rules.contains(&format!("br-{}", half_made.short())),
        "{rules}"
    );
}

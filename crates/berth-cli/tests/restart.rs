//! Stopping the daemon (SIGTERM, `kill -9`) between and during operations, then starting a new one
//! on the same state: real traffic proves nothing was lost, and a second daemon on the same state
//! is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_testhost::ping_in;
use berth_testhost::traffic::{TcpBanner, tcp_fetch};
use common::{BERTH, Fixture};
use serde_json::Value;

#[test]
fn sigterm_and_kill9_between_operations_lose_nothing() {
    let mut f = Fixture::new();
    let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    f.ok(&[
        "network",
        "create",
        "--subnet",
        "10.90.0.0/24",
        "isolated_nw",
    ]);
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "a",
        "--network",
        "isolated_nw",
        "--ip",
        "10.90.0.10",
    ]);
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "b",
        "--network",
        "isolated_nw",
        "--ip",
        "10.90.0.20",
    ]);
    f.ok(&["sandbox", "create", "--name", "web", "-p", "8080:80"]);
    let (ns_a, ns_web) = (f.sandbox_ns("a"), f.sandbox_ns("web"));
    let _server = TcpBanner::start(&ns_web, "0.0.0.0:80".parse().unwrap(), "web").unwrap();
    let fetch = || {
        tcp_fetch(
            peer.netns(),
            "192.0.2.1:8080".parse().unwrap(),
            Duration::from_secs(2),
        )
    };
    assert!(ping_in(&ns_a, "10.90.0.20"));
    assert!(fetch().unwrap().starts_with("web from 192.0.2.2"));
    let nets_before = f.ok(&["network", "ls", "--no-trunc"]);
    let sbs_before = f.ok(&["sandbox", "inspect", "a", "b", "web"]);

    // SIGTERM: the daemon stops serving; the data path stays.
    f.sigterm();
    assert!(
        !f.socket().exists(),
        "the socket is removed on a clean stop"
    );
    let e = f.fails(&["network", "ls"], 1);
    assert!(e.contains("Cannot connect to the berth daemon"), "{e}");
    assert!(
        ping_in(&ns_a, "10.90.0.20"),
        "traffic flows while the daemon is down"
    );
    assert!(
        fetch().is_ok(),
        "published ports work while the daemon is down"
    );

    f.start();
    assert_eq!(f.ok(&["network", "ls", "--no-trunc"]), nets_before);
    assert_eq!(f.ok(&["sandbox", "inspect", "a", "b", "web"]), sbs_before);
    assert!(f.ping("a", "10.90.0.20"));
    assert!(fetch().unwrap().starts_with("web from 192.0.2.2"));

    // An operation, then kill -9 right after it.
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "c",
        "--network",
        "isolated_nw",
    ]);
    let ip_c = f.ip_of("c", "isolated_nw");
    f.kill9();
    assert!(
        f.socket().exists(),
        "kill -9 leaves a stale socket file behind"
    );
    f.start();
    assert!(f.ping("c", "10.90.0.10"), "c survived kill -9");
    assert!(f.ping("a", &ip_c));
    assert!(fetch().unwrap().starts_with("web from 192.0.2.2"));
    assert_eq!(f.ip_of("c", "isolated_nw"), ip_c);
    // The addresses in use stay taken.
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "d",
        "--network",
        "isolated_nw",
    ]);
    let ip_d = f.ip_of("d", "isolated_nw");
    assert!(
        !["10.90.0.10", "10.90.0.20", ip_c.as_str()].contains(&ip_d.as_str()),
        "{ip_d}"
    );
    assert!(f.ping("d", &ip_c));

    // A second daemon on the same state is refused with a clear message, whatever its socket.
    let mut other = f.daemon_command();
    let other_sock = format!("unix://{}", f.dir.path().join("other.sock").display());
    let out = Command::new(BERTH)
        .args(["daemon", "--host", &other_sock, "--netns"])
        .arg(f.host.path())
        .arg("--data-root")
        .arg(f.dir.path().join("data"))
        .arg("--exec-root")
        .arg(f.dir.path().join("run"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = common::stderr(&out);
    assert!(
        e.contains("in use by another process") && e.contains("another berth daemon"),
        "{e}"
    );
    let out = other.stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = common::stderr(&out);
    assert!(e.contains("already serving"), "{e}");
    assert!(f.alive());
}

#[test]
fn kill9_during_a_burst_of_creates_converges() {
    let mut f = Fixture::new();
    f.ok(&["network", "create", "--subnet", "10.91.0.0/24", "burst_nw"]);
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "anchor",
        "--network",
        "burst_nw",
        "--ip",
        "10.91.0.2",
    ]);
    let host_arg = f.host_arg();
    let mut children = Vec::new();
    for i in 0..12 {
        children.push(
            Command::new(BERTH)
                .args([
                    "sandbox",
                    "create",
                    "--name",
                    &format!("s{i}"),
                    "--network",
                    "burst_nw",
                ])
                .env("BERTH_HOST", &host_arg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    std::thread::sleep(Duration::from_millis(40));
    f.kill9();
    for mut c in children {
        let _ = c.wait();
    }
    f.start();

    // Every sandbox that exists works and has a unique address; nothing else is left behind.
    let list: Vec<Value> = f
        .http("GET", "/sandboxes", None)
        .json()
        .as_array()
        .unwrap()
        .clone();
    let mut ips = BTreeSet::new();
    for sb in &list {
        let name = sb["Name"].as_str().unwrap();
        if let Some(n) = sb["Networks"]["burst_nw"].as_object() {
            let ip = n["IPAddress"].as_str().unwrap().to_owned();
            assert!(ips.insert(ip.clone()), "duplicate address {ip}");
            if name != "anchor" {
                assert!(
                    f.ping(name, "10.91.0.2"),
                    "{name} ({ip}) reaches anchor after the restart"
                );
            }
        }
    }
    eprintln!(
        "after kill -9: {} sandboxes, {} endpoints on burst_nw",
        list.len(),
        ips.len()
    );
    let net: Value = f.http("GET", "/networks/burst_nw", None).json();
    let endpoints = net["Containers"].as_object().unwrap().len();
    assert_eq!(endpoints, ips.len());
    let bridge = format!("br-{}", &net["Id"].as_str().unwrap()[..12]);
    let veths = f
        .host
        .ip(&["-o", "link", "show", "master", &bridge])
        .unwrap()
        .lines()
        .count();
    assert_eq!(veths, endpoints, "one veth per endpoint, no leftovers");
    // `default` is the host namespace's key.
    let namespaces = std::fs::read_dir(f.dir.path().join("run/netns"))
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name() != "default"))
        .count();
    assert_eq!(
        namespaces,
        list.len(),
        "one namespace per sandbox, no leftovers"
    );
    // New work still succeeds, with fresh addresses.
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "after",
        "--network",
        "burst_nw",
    ]);
    let ip = f.ip_of("after", "burst_nw");
    assert!(!ips.contains(&ip));
    assert!(f.ping("after", "10.91.0.2"));
}

#[test]
fn the_daemon_retries_a_degraded_sandbox_in_the_background() {
    let mut f = Fixture::new();
    f.ok(&["network", "create", "--subnet", "10.92.0.0/24", "retry_nw"]);
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "kept",
        "--network",
        "retry_nw",
        "--ip",
        "10.92.0.5",
    ]);
    f.sigterm();
    // Its namespace cannot be opened at this start (an injected transient error): the daemon
    // answers all the same, shows it degraded, and refuses to connect it, with the reason.
    f.try_start_with_env(&[
        ("BERTH_FAILPOINTS", "restore.netns_open=error@1"),
        ("BERTH_TEST_RETRY_MS", "1500"),
    ])
    .unwrap();
    let reply = f.http("GET", "/sandboxes/kept", None);
    assert_eq!(reply.status, 200);
    let degraded = reply.json()["Degraded"].to_string();
    assert!(degraded.contains("injected"), "{degraded}");
    let ls = f.ok(&["sandbox", "ls", "--format", "{{.Name}} {{.Status}}"]);
    assert_eq!(ls, "kept degraded\n");
    let refused = f.http(
        "POST",
        "/networks/bridge/connect",
        Some(r#"{"Container":"kept"}"#),
    );
    assert_eq!(refused.status, 409, "{}", refused.message());
    assert!(
        refused.message().contains("degraded"),
        "{}",
        refused.message()
    );
    assert!(f.ping("kept", "10.92.0.1"), "its traffic never stopped");
    // The daemon's own retry brings it back, without anyone asking.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let insp = f.http("GET", "/sandboxes/kept", None).json();
        if insp.get("Degraded").is_none() {
            assert_eq!(insp["Networks"]["retry_nw"]["Gateway"], "10.92.0.1");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still degraded after 10 s:\n{}",
            f.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(f.log().contains("degraded sandbox restored"), "{}", f.log());
    let ls = f.ok(&["sandbox", "ls", "--format", "{{.Name}} {{.Status}}"]);
    assert_eq!(ls, "kept up\n");
    f.ok(&["network", "connect", "bridge", "kept"]);
    f.ok(&["sandbox", "rm", "kept"]);
    f.ok(&["network", "rm", "retry_nw"]);
}

//! Finding and activating plugins against fake plugin servers: discovery of `NAME.sock`,
//! `NAME/NAME.sock`, `NAME.spec` (unix and tcp) and `NAME.json` in temporary plugin
//! directories; the handshake's `Implements`; the headers of every request (`POST`, Docker's
//! plugin media types); activation retried while a plugin is not up yet, and bounded when it
//! never comes; a hung, garbled or failing handshake; what the handshake lists deciding which
//! drivers a plugin can be; capabilities read from `GetCapabilities`. The TCP plugin listens
//! on 127.0.0.1 inside a throwaway test host (as root), never in the machine's namespace.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_driver::{EndpointId, IpamDriver, NetworkDriver, NetworkId, Scope};
use berth_plugin::{
    Address, CallFailure, ClientConfig, Error, PluginDirs, RetryPolicy, discover_with, locate,
};
use berth_testhost::TestHost;
use common::quick_config;
use common::server::{Handler, Reply, Request, Server};
use serde_json::{Value, json};

/// A plugin answering `answers` by path (404 otherwise).
fn scripted(answers: Vec<(&'static str, Reply)>) -> Handler {
    Arc::new(move |req: &Request| {
        answers
            .iter()
            .find(|(p, _)| *p == req.path)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| {
                Reply::Raw(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 19\r\n\r\n404 page not found\n"
                        .to_vec(),
                )
            })
    })
}

fn activate_ok(implements: Value) -> (&'static str, Reply) {
    (
        "/Plugin.Activate",
        Reply::Json(200, json!({ "Implements": implements })),
    )
}

fn network_plugin() -> Handler {
    scripted(vec![
        activate_ok(json!(["NetworkDriver"])),
        (
            "/NetworkDriver.GetCapabilities",
            Reply::Json(200, json!({"Scope": "local"})),
        ),
    ])
}

fn dirs(root: &Path) -> PluginDirs {
    PluginDirs::under(root)
}

/// Every request went as dockerd sends it: POST, Docker's plugin media types, a length.
fn assert_docker_headers(server: &Server) {
    let requests = server.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.method, "POST", "{}", r.path);
        assert_eq!(
            r.header("Content-Type"),
            Some("application/vnd.docker.plugins.v1+json"),
            "{}",
            r.path
        );
        assert_eq!(
            r.header("Accept"),
            Some("application/vnd.docker.plugins.v1.2+json"),
            "{}",
            r.path
        );
        assert_eq!(
            r.header("Content-Length"),
            Some(r.body.len().to_string().as_str())
        );
    }
}

#[test]
fn plugins_are_found_as_dockerd_finds_them() {
    let root = tempfile::tempdir().unwrap();
    let dirs = dirs(root.path());
    // NAME.sock
    let a = Server::unix(&dirs.sockets.join("a.sock"), network_plugin());
    let plugin = discover_with("a", &dirs, quick_config()).unwrap();
    assert_eq!(plugin.implements(), ["NetworkDriver"]);
    assert_eq!(
        plugin.address(),
        &Address::Unix(dirs.sockets.join("a.sock"))
    );
    // The handshake: an empty POST with Docker's media types.
    let activate = &a.requests_to("/Plugin.Activate")[0];
    assert!(activate.body.is_empty());
    assert_docker_headers(&a);
    // NAME/NAME.sock
    let _b = Server::unix(&dirs.sockets.join("b/b.sock"), network_plugin());
    assert_eq!(
        locate("b", &dirs).unwrap().source,
        dirs.sockets.join("b/b.sock")
    );
    discover_with("b", &dirs, quick_config()).unwrap();
    // NAME.spec with a socket elsewhere, in the second spec directory.
    let elsewhere = root.path().join("elsewhere/c.sock");
    let _c = Server::unix(&elsewhere, network_plugin());
    std::fs::create_dir_all(&dirs.specs[1]).unwrap();
    std::fs::write(
        dirs.specs[1].join("c.spec"),
        format!("unix://{}\n", elsewhere.display()),
    )
    .unwrap();
    let c = discover_with("c", &dirs, quick_config()).unwrap();
    assert_eq!(c.spec().source, dirs.specs[1].join("c.spec"));
    // NAME.json (Go's decoder: keys in any case).
    let d_sock = root.path().join("elsewhere/d.sock");
    let _d = Server::unix(&d_sock, network_plugin());
    std::fs::create_dir_all(dirs.specs[0].join("d")).unwrap();
    std::fs::write(
        dirs.specs[0].join("d/d.json"),
        json!({"name": "d", "addr": format!("unix://{}", d_sock.display())}).to_string(),
    )
    .unwrap();
    assert_eq!(
        discover_with("d", &dirs, quick_config())
            .unwrap()
            .implements(),
        ["NetworkDriver"]
    );
    // A socket comes before a spec of the same name.
    std::fs::write(dirs.specs[0].join("a.spec"), "unix:///nowhere.sock").unwrap();
    assert_eq!(
        locate("a", &dirs).unwrap().source,
        dirs.sockets.join("a.sock")
    );
    // Not found: the error names the plugin and every path looked at.
    let e = discover_with("ghost", &dirs, quick_config())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(r#"plugin "ghost" not found (looked for "#),
        "{e}"
    );
    assert!(
        e.contains("ghost.sock") && e.contains("ghost/ghost.json"),
        "{e}"
    );
}

#[test]
fn a_tcp_spec_is_reached_over_tcp() {
    let host = TestHost::new().expect("a test host (run as root)");
    let root = tempfile::tempdir().unwrap();
    let dirs = dirs(root.path());
    // Everything inside the test host's namespace: the plugin listens on its loopback.
    let (server, plugin, driver) = host
        .netns()
        .run(|| {
            let server = Server::tcp(network_plugin());
            std::fs::create_dir_all(&dirs.specs[0]).unwrap();
            std::fs::write(
                dirs.specs[0].join("t.spec"),
                format!("tcp://{}", server.tcp_addr()),
            )
            .unwrap();
            let plugin = discover_with("t", &dirs, quick_config()).unwrap();
            let driver = plugin.network_driver(host.netns()).unwrap();
            (server, plugin, driver)
        })
        .unwrap();
    assert!(
        matches!(plugin.address(), Address::Tcp { port, .. } if *port == server.tcp_addr().port())
    );
    assert_eq!(NetworkDriver::name(&driver), "t");
    assert_eq!(
        server.paths(),
        ["/Plugin.Activate", "/NetworkDriver.GetCapabilities"]
    );
    assert_docker_headers(&server);
    let host_header = server.requests()[0].header("Host").unwrap().to_owned();
    assert_eq!(host_header, server.tcp_addr().to_string());
}

#[test]
fn activation_is_retried_until_the_plugin_is_up_and_no_longer() {
    let root = tempfile::tempdir().unwrap();
    let dirs = dirs(root.path());
    std::fs::create_dir_all(&dirs.specs[0]).unwrap();
    let late = root.path().join("late/late.sock");
    std::fs::write(
        dirs.specs[0].join("late.spec"),
        format!("unix://{}", late.display()),
    )
    .unwrap();
    // The plugin comes up 400 ms after the engine asks for it: the handshake is retried.
    let start = Instant::now();
    let starter = {
        let late = late.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            Server::unix(&late, network_plugin())
        })
    };
    let plugin = discover_with("late", &dirs, quick_config()).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(400));
    assert_eq!(plugin.implements(), ["NetworkDriver"]);
    drop(starter.join().unwrap());

    // A plugin that never comes: the retries end within their budget, and the error says so.
    let config = ClientConfig {
        activation_retry: RetryPolicy {
            budget: Duration::from_millis(600),
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(200),
        },
        ..quick_config()
    };
    let start = Instant::now();
    let e = discover_with("late", &dirs, config).unwrap_err();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(900),
        "{took:?}"
    );
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            r#"plugin "late" Plugin.Activate: cannot connect to unix://{} ("#,
            late.display()
        )),
        "{text}"
    );
    match e.call_failure() {
        Some(CallFailure::Connect { attempts, .. }) => assert!(*attempts >= 3, "{attempts}"),
        other => panic!("{other:?}"),
    }
    // No retries at all: one attempt.
    let config = ClientConfig {
        activation_retry: RetryPolicy::NONE,
        ..quick_config()
    };
    let e = discover_with("late", &dirs, config).unwrap_err();
    assert!(e.to_string().contains("(1 attempts over"), "{e}");
}

#[test]
fn broken_handshakes_name_the_plugin_and_the_call() {
    let root = tempfile::tempdir().unwrap();
    let dirs = dirs(root.path());
    let cases: Vec<(&str, Reply, &str)> = vec![
        (
            "garbled",
            Reply::Raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec()),
            r#"plugin "garbled" Plugin.Activate: the answer is not a valid HTTP answer"#,
        ),
        (
            "nojson",
            Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec()),
            r#"plugin "nojson" Plugin.Activate: the answer is not the JSON expected"#,
        ),
        (
            "failing",
            Reply::Json(500, json!({"Err": "not ready"})),
            r#"plugin "failing" Plugin.Activate: HTTP status 500: not ready"#,
        ),
        (
            "closing",
            Reply::Close,
            r#"plugin "closing" Plugin.Activate: the plugin closed the connection after 0 bytes"#,
        ),
        (
            "hung",
            Reply::Hang(Duration::from_secs(5), Box::new(Reply::Close)),
            r#"plugin "hung" Plugin.Activate: no answer within 300.0ms (the plugin hangs or is too slow)"#,
        ),
    ];
    let config = ClientConfig {
        call_timeout: Duration::from_millis(300),
        ..quick_config()
    };
    let mut servers = Vec::new();
    for (name, reply, wanted) in cases {
        servers.push(Server::unix(
            &dirs.sockets.join(format!("{name}.sock")),
            scripted(vec![("/Plugin.Activate", reply)]),
        ));
        let start = Instant::now();
        let e = discover_with(name, &dirs, config).unwrap_err().to_string();
        assert!(e.starts_with(wanted), "{e}\n(wanted {wanted})");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{name}: {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn the_handshake_and_capabilities_decide_what_a_plugin_can_be() {
    let host = TestHost::new().expect("a test host (run as root)");
    let root = tempfile::tempdir().unwrap();
    let dirs = dirs(root.path());
    let _ipam = Server::unix(
        &dirs.sockets.join("ipamonly.sock"),
        scripted(vec![
            activate_ok(json!(["IpamDriver"])),
            (
                "/IpamDriver.GetDefaultAddressSpaces",
                Reply::Json(
                    200,
                    json!({"LocalDefaultAddressSpace": "l", "GlobalDefaultAddressSpace": "g"}),
                ),
            ),
        ]),
    );
    let plugin = discover_with("ipamonly", &dirs, quick_config()).unwrap();
    let e = plugin.network_driver(host.netns()).unwrap_err();
    assert!(matches!(e, Error::NotImplemented { .. }));
    assert_eq!(
        e.to_string(),
        r#"plugin "ipamonly" does not implement NetworkDriver (its handshake lists: IpamDriver)"#
    );
    // Its IPAM side works; GetCapabilities answered 404 (an older plugin): the defaults.
    let ipam = plugin.ipam_driver().unwrap();
    assert_eq!(IpamDriver::name(&ipam), "ipamonly");
    assert_eq!(ipam.address_spaces(), ("l", "g"));
    assert!(!ipam.plugin_capabilities().requires_mac_address);
    assert!(ipam.keeps_state());

    // A global-scope network driver, whose networks reach across hosts.
    let _global = Server::unix(
        &dirs.sockets.join("global.sock"),
        scripted(vec![
            activate_ok(json!(["NetworkDriver"])),
            (
                "/NetworkDriver.GetCapabilities",
                Reply::Json(
                    200,
                    json!({"Scope": "global", "ConnectivityScope": "global"}),
                ),
            ),
        ]),
    );
    let driver = discover_with("global", &dirs, quick_config())
        .unwrap()
        .network_driver(host.netns())
        .unwrap();
    let caps = NetworkDriver::capabilities(&driver);
    assert_eq!(caps.scope, Scope::Global);
    assert!(caps.creates_interfaces() && caps.publishes_ports);
    assert_eq!(
        driver.plugin_capabilities().connectivity_scope,
        Scope::Global
    );
    assert_eq!(NetworkDriver::name(&driver), "global");

    // A scope dockerd refuses, refused with its field named.
    let _bad = Server::unix(
        &dirs.sockets.join("badscope.sock"),
        scripted(vec![
            activate_ok(json!(["NetworkDriver"])),
            (
                "/NetworkDriver.GetCapabilities",
                Reply::Json(200, json!({"Scope": "cluster"})),
            ),
        ]),
    );
    let e = discover_with("badscope", &dirs, quick_config())
        .unwrap()
        .network_driver(host.netns())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        r#"plugin "badscope" NetworkDriver.GetCapabilities: unusable answer: Scope "cluster": expecting 'local' or 'global'"#
    );
}

#[test]
fn optional_calls_a_plugin_does_not_implement_are_skipped_as_dockerd_skips_them() {
    let host = TestHost::new().expect("a test host (run as root)");
    let root = tempfile::tempdir().unwrap();
    let dirs = dirs(root.path());
    let server = Server::unix(&dirs.sockets.join("minimal.sock"), network_plugin());
    let driver = discover_with("minimal", &dirs, quick_config())
        .unwrap()
        .network_driver(host.netns())
        .unwrap();
    let net = NetworkId::from_bytes([7; 32]);
    let ep = EndpointId::from_bytes([8; 32]);
    // ProgramExternalConnectivity and RevokeExternalConnectivity answered 404: not mandatory,
    // nothing published.
    let bindings = driver
        .program_external_connectivity(&net, &ep, &["8080:80".parse().unwrap()])
        .unwrap();
    assert!(bindings.is_empty());
    driver.revoke_external_connectivity(&net, &ep).unwrap();
    // Any other call answered 404 is an error naming it.
    let e = driver.delete_network(&net).unwrap_err().to_string();
    assert_eq!(
        e,
        r#"plugin "minimal" NetworkDriver.DeleteNetwork: HTTP status 404: 404 page not found"#
    );
    assert!(
        server
            .paths()
            .contains(&"/NetworkDriver.ProgramExternalConnectivity".to_owned())
    );
}

//! `berth daemon --network-plugin NAME`: a Docker network and IPAM plugin, found and activated
//! as dockerd does, used by `network create -d NAME --ipam-driver NAME`. The plugin here is
//! berth's own plugin server (`berth_plugin::PluginServer`) on `/run/docker/plugins/NAME.sock`
//! in the daemon's test host; the daemon runs without a firewall of its own (one berth firewall
//! per namespace: the server's). Real traffic between sandboxes on the plugin's network, across
//! a daemon restart; a missing plugin stops the start with a message naming it, and a daemon with a
//! firewall of its own beside the server's is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use berth_plugin::{PluginServer, ServerConfig};
use berth_testhost::TestHost;
use common::Fixture;

#[test]
fn a_docker_plugin_serves_networks_of_the_daemon() {
    let host = TestHost::new().unwrap();
    let name = format!("berthcli{}", std::process::id());
    let state = tempfile::tempdir().unwrap();
    let server = PluginServer::start(
        ServerConfig::new(&name)
            .with_state_dir(state.path())
            .with_host_netns(host.path()),
    )
    .unwrap();
    let mut f = Fixture::on_host(
        host,
        &[
            "--iptables=false",
            "--bridge",
            "none",
            "--network-plugin",
            &name,
        ],
    );
    f.ok(&[
        "network",
        "create",
        "-d",
        &name,
        "--ipam-driver",
        &name,
        "--subnet",
        "10.93.0.0/24",
        "pnet",
    ]);
    let driver = f.ok(&["network", "inspect", "-f", "{{.Driver}}", "pnet"]);
    assert_eq!(driver.trim(), name);
    for sb in ["a", "b"] {
        f.ok(&["sandbox", "create", "--name", sb, "--network", "pnet"]);
    }
    let ip_b = f.ip_of("b", "pnet");
    assert!(ip_b.starts_with("10.93.0."), "the plugin's IPAM: {ip_b}");
    assert!(f.ping("a", &ip_b), "traffic on the plugin's network");

    // A restart takes the endpoints back (kept under the data root) and traffic goes on.
    f.sigterm();
    f.start();
    assert!(f.ping("a", &ip_b), "after the daemon's restart");
    f.ok(&["sandbox", "create", "--name", "c", "--network", "pnet"]);
    assert!(f.ping("c", &ip_b));
    for sb in ["a", "b", "c"] {
        f.ok(&["sandbox", "rm", sb]);
    }
    f.ok(&["network", "rm", "pnet"]);
    let links = f.host.ip(&["-br", "link"]).unwrap();
    assert!(
        !links
            .lines()
            .any(|l| l.starts_with("br-") || l.starts_with("veth")),
        "the plugin's bridge and veths are gone: {links}"
    );

    // A daemon with a firewall of its own beside the server's would remove the server's rules
    // (the same chain names): refused before it writes anything, naming the server's process.
    f.sigterm();
    let second = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BERTH)
        .arg("daemon")
        .arg("--host")
        .arg(format!("unix://{}", second.path().join("b.sock").display()))
        .arg("--netns")
        .arg(f.host.path())
        .arg("--data-root")
        .arg(second.path().join("data"))
        .arg("--exec-root")
        .arg(second.path().join("run"))
        .args(["--bridge", "none"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("another berth firewall (pid"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "the server's process is named: {err}"
    );
    assert!(!second.path().join("data").exists(), "nothing written");

    // A plugin that is not there stops the start, named.
    let missing = format!("{name}missing");
    let out = f
        .daemon_command()
        .args(["--network-plugin", &missing])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&missing), "{err}");
    drop(f);
    drop(server);
}

/// Removes a file when dropped.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A plugin that activates as a volume plugin only: one HTTP answer per connection.
fn volume_plugin(socket: &std::path::Path) -> std::thread::JoinHandle<()> {
    use std::io::{Read, Write};
    let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let body = r#"{"Implements":["VolumeDriver"]}"#;
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.plugins.v1+json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })
}

#[test]
fn a_plugin_that_is_neither_a_network_nor_an_ipam_driver_stops_the_start_named() {
    let name = format!("berthvol{}", std::process::id());
    let dir = std::path::Path::new(berth_plugin::server::DEFAULT_SOCKET_DIR);
    std::fs::create_dir_all(dir).unwrap();
    let socket = dir.join(format!("{name}.sock"));
    let _ = std::fs::remove_file(&socket);
    let _server = volume_plugin(&socket);
    // The socket is in the machine's plugin directory: removed also when the test fails.
    let _socket = RemoveOnDrop(socket.clone());
    let host = TestHost::new().unwrap();
    let state = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BERTH)
        .arg("daemon")
        .arg("--host")
        .arg(format!("unix://{}", state.path().join("b.sock").display()))
        .arg("--netns")
        .arg(host.path())
        .arg("--data-root")
        .arg(state.path().join("data"))
        .arg("--exec-root")
        .arg(state.path().join("run"))
        .args([
            "--iptables=false",
            "--bridge",
            "none",
            "--network-plugin",
            &name,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    for needle in [
        format!("--network-plugin {name}"),
        "implements neither NetworkDriver nor IpamDriver".to_owned(),
        "VolumeDriver".to_owned(),
    ] {
        assert!(err.contains(&needle), "{needle:?} missing from: {err}");
    }
}

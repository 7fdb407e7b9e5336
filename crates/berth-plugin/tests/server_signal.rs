//! `berth plugin serve` (berth-cli's `plugin.rs`, compiled in here from its source file): its
//! flags and defaults, and its daemon-like foreground loop (block SIGTERM and SIGINT, start the
//! server, wait for one, shut down), run in a child process from a command line: the child
//! serves a test host's namespace until the parent sends SIGTERM; it then exits 0 with its
//! socket removed, and the network it made stays in the kernel for the next start, which takes
//! it back (and removes it on request). Without a libtest harness (see Cargo.toml): the child is
//! this same binary, started again with its command line in its environment.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_plugin::server::Backend;
use berth_plugin::{PluginServer, ServerConfig};
use berth_testhost::TestHost;
use clap::Parser;
use common::served::{raw_call, unique_name};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

#[allow(dead_code)]
#[path = "../../berth-cli/src/plugin.rs"]
mod plugin;

/// `berth` with only the `plugin` verb.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: plugin::PluginCmd,
}

/// The environment variable that makes this binary the child: the server's settings as JSON.
const CHILD_ENV: &str = "BERTH_PLUGIN_SIGNAL_TEST_CHILD";

const NETWORK_ID: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

fn config_of(v: &Value) -> ServerConfig {
    ServerConfig::new(v["name"].as_str().unwrap())
        .with_socket(v["socket"].as_str().unwrap())
        .with_state_dir(v["state"].as_str().unwrap())
        .with_host_netns(v["netns"].as_str().unwrap())
}

/// The child: `berth plugin serve --name .. --socket .. --state .. --netns ..`.
fn child(settings: &str) -> u8 {
    let v: Value = serde_json::from_str(settings).unwrap();
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    let cli = Cli::try_parse_from([
        "berth".to_owned(),
        "serve".to_owned(),
        "--name".to_owned(),
        s("name"),
        "--socket".to_owned(),
        s("socket"),
        "--state".to_owned(),
        s("state"),
        "--netns".to_owned(),
        s("netns"),
        "--log-level".to_owned(),
        "warn".to_owned(),
    ])
    .unwrap();
    plugin::plugin(cli.cmd)
}

/// The flags' defaults are dockerd's places, and bad values are refused.
fn flags() {
    let cli = Cli::try_parse_from(["berth", "serve", "--name", "berth"]).unwrap();
    let plugin::PluginCmd::Serve(args) = cli.cmd;
    let c = args.config();
    assert_eq!(c.socket, PathBuf::from("/run/docker/plugins/berth.sock"));
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/berth/plugins/berth"));
    assert_eq!(
        (c.host_netns, c.firewall, c.ip_forward),
        (None, Some(Backend::Iptables), true)
    );
    let cli = Cli::try_parse_from([
        "berth",
        "serve",
        "--name",
        "b",
        "--firewall",
        "none",
        "--no-ip-forward",
    ])
    .unwrap();
    let plugin::PluginCmd::Serve(args) = cli.cmd;
    assert_eq!(
        (args.config().firewall, args.config().ip_forward),
        (None, false)
    );
    assert!(Cli::try_parse_from(["berth", "serve", "--name", "b", "--firewall", "ipfw"]).is_err());
    assert!(
        Cli::try_parse_from(["berth", "serve"]).is_err(),
        "--name is required"
    );
}

/// Kills the child if the parent fails before it stopped.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn parent() {
    let host = TestHost::new().expect("a test host (run as root)");
    let dir = tempfile::tempdir().unwrap();
    let name = unique_name("berthsig");
    let socket: PathBuf = dir.path().join("plugins").join(format!("{name}.sock"));
    let settings = json!({
        "name": name,
        "socket": socket,
        "state": dir.path().join("state"),
        "netns": host.path(),
    });
    let child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, settings.to_string())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    let mut guard = Guard(Some(child));
    wait_for(
        "the child serves its socket",
        Duration::from_secs(20),
        || std::os::unix::net::UnixStream::connect(&socket).is_ok(),
    );

    // It serves: a network made through it is in the test host.
    let create = json!({
        "NetworkID": NETWORK_ID,
        "Options": {"com.docker.network.generic": {}, "com.docker.network.enable_ipv6": false},
        "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "10.89.0.0/24", "Gateway": "10.89.0.1/24"}],
        "IPv6Data": null,
    });
    let (status, _, body) = raw_call(&socket, "/NetworkDriver.CreateNetwork", &create.to_string());
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let bridge = format!("br-{}", &NETWORK_ID[..12]);
    let addr = host.ip(&["-o", "addr", "show", "dev", &bridge]).unwrap();
    assert!(addr.contains("10.89.0.1/24"), "{addr}");

    // SIGTERM: a clean exit, the socket removed, the network left for the next start.
    kill(pid, Signal::SIGTERM).unwrap();
    let mut child = guard.0.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "the child exits 0 on SIGTERM: {status}");
    assert!(!socket.exists(), "the socket is removed");
    assert!(
        host.ip(&["-o", "link", "show", &bridge]).is_ok(),
        "the network stays"
    );

    // The next start takes it back: removing it through the server removes the bridge.
    let server = PluginServer::start(config_of(&settings)).unwrap();
    let (status, _, body) = raw_call(
        &socket,
        "/NetworkDriver.DeleteNetwork",
        &json!({"NetworkID": NETWORK_ID}).to_string(),
    );
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(
        host.ip(&["-o", "link", "show", &bridge]).is_err(),
        "removed"
    );
    server.shutdown();
    assert!(!socket.exists());
}

fn main() {
    if let Ok(settings) = std::env::var(CHILD_ENV) {
        std::process::exit(i32::from(child(&settings)));
    }
    // `cargo test -- --list` and the like: this binary has one test.
    if std::env::args().any(|a| a == "--list") {
        println!("sigterm_stops_the_server_cleanly: test");
        return;
    }
    flags();
    parent();
    println!("test sigterm_stops_the_server_cleanly ... ok");
}

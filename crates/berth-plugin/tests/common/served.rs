//! berth's plugin server in a test host, and berth's own client of it: the server serves a
//! unique plugin name on a socket under temporary plugin directories, keeping its state in a
//! temporary directory, with the test host as its host namespace; a berth controller in the same
//! host has the plugin's network and IPAM drivers registered (and no firewall or default bridge
//! of its own: the server's firewall owns berth's chains in the namespace). Dropping it removes
//! every sandbox and network the test made, stops the server, then removes the directories and
//! the namespace.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use berth::{Config, Controller, IpamPoolConfig, NetworkCreate};
use berth_plugin::{Plugin, PluginDirs, PluginServer, ServerConfig, discover_with};
use berth_testhost::{StateDir, TestHost};

use super::{link_names, quick_config};

static SERIAL: AtomicU32 = AtomicU32::new(0);

/// A plugin name no other test (nor another run) uses.
pub(crate) fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) struct Served {
    pub(crate) ctl: Option<Controller>,
    pub(crate) server: Option<PluginServer>,
    pub(crate) name: String,
    pub(crate) dirs: PluginDirs,
    pub(crate) plugin_root: tempfile::TempDir,
    pub(crate) state: tempfile::TempDir,
    pub(crate) ctl_dir: StateDir,
    pub(crate) host: TestHost,
}

impl Served {
    /// The server started, the controller built on it.
    pub(crate) fn new() -> Served {
        let host = TestHost::new().expect("a test host (run as root)");
        let plugin_root = tempfile::tempdir().unwrap();
        let dirs = PluginDirs::under(plugin_root.path());
        let name = unique_name("berthsrv");
        let mut s = Served {
            ctl: None,
            server: None,
            name,
            dirs,
            plugin_root,
            state: tempfile::tempdir().unwrap(),
            ctl_dir: StateDir::new().unwrap(),
            host,
        };
        s.start_server();
        s.ctl = Some(s.controller());
        s
    }

    pub(crate) fn config(&self) -> ServerConfig {
        ServerConfig::new(&self.name)
            .with_socket(self.socket())
            .with_state_dir(self.state.path())
            .with_host_netns(self.host.path())
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dirs.sockets.join(format!("{}.sock", self.name))
    }

    pub(crate) fn start_server(&mut self) {
        assert!(self.server.is_none());
        self.server = Some(PluginServer::start(self.config()).unwrap());
    }

    pub(crate) fn stop_server(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }

    /// The server stopped and started again on its state (the controller and the kernel keep
    /// what they have).
    pub(crate) fn restart_server(&mut self) {
        self.stop_server();
        self.start_server();
    }

    pub(crate) fn plugin(&self) -> Plugin {
        discover_with(&self.name, &self.dirs, quick_config()).unwrap()
    }

    fn controller(&self) -> Controller {
        let plugin = self.plugin();
        let network = plugin.network_driver(self.host.netns()).unwrap();
        let ipam = plugin.ipam_driver().unwrap();
        let mut config = Config::new(
            self.ctl_dir.path().join("data"),
            self.ctl_dir.path().join("run"),
        );
        config.host_netns = Some(self.host.path());
        config.firewall = None;
        config.default_bridge = berth::DefaultBridge::None;
        Controller::builder(config)
            .driver_arc(Arc::new(network))
            .ipam(Arc::new(ipam))
            .build()
            .unwrap()
    }

    pub(crate) fn ctl(&self) -> &Controller {
        self.ctl.as_ref().unwrap()
    }

    /// Network `name` of the plugin's driver and IPAM, on `subnet`.
    pub(crate) fn network(&self, name: &str, subnet: &str) -> berth::Result<berth::NetworkId> {
        let mut req = NetworkCreate::new(name)
            .driver(&self.name)
            .subnet(IpamPoolConfig {
                subnet: Some(subnet.parse().unwrap()),
                ..Default::default()
            });
        req.ipam_driver = self.name.clone();
        self.ctl().create_network(req)
    }

    /// The names of the links in the host namespace.
    pub(crate) fn host_links(&self) -> Vec<String> {
        link_names(&self.host.ip(&["-o", "link"]).unwrap())
    }

    /// The host namespace's iptables rules (both families).
    pub(crate) fn rules(&self) -> String {
        let v4 = self.host.run("iptables-save", &[]).unwrap();
        let v6 = self.host.run("ip6tables-save", &[]).unwrap();
        format!("{v4}{v6}")
    }

    pub(crate) fn ping(&self, from: &str, to: &str) -> bool {
        berth_testhost::ping_in(&self.ctl().sandbox_netns(from).unwrap(), to)
    }

    pub(crate) fn ip_of(&self, sandbox: &str, network: &str) -> String {
        self.ctl().inspect_sandbox(sandbox).unwrap().networks[network]
            .ip_address
            .clone()
    }

    /// `ip ARGS` inside a sandbox.
    pub(crate) fn in_sandbox(&self, sandbox: &str, args: &[&str]) -> String {
        let ns = self.ctl().sandbox_netns(sandbox).unwrap();
        let out = ns.command("ip").args(args).output().unwrap();
        assert!(out.status.success(), "ip {args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// One raw exchange with a plugin socket on a connection of its own (`Connection: close`):
/// the status line, the headers and the body.
pub(crate) fn raw_call(
    socket: &std::path::Path,
    path: &str,
    body: &str,
) -> (String, String, String) {
    let mut s = UnixStream::connect(socket).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: plugin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    split_response(&out)
}

/// A response's status line, headers and body.
pub(crate) fn split_response(raw: &str) -> (String, String, String) {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_owned(), body.to_owned())
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(ctl) = self.ctl.take() {
            for sb in ctl.sandboxes() {
                let _ = ctl.remove_sandbox(&sb.id);
            }
            for net in ctl.networks() {
                let _ = ctl.remove_network(&net.id);
            }
        }
        self.stop_server();
    }
}

//! Shared fixture of berth-plugin's tests: a test host, the fake `fakenet` plugin serving on a
//! socket under temporary plugin directories, and a berth controller with the plugin's network
//! and IPAM drivers registered. Dropping it removes every sandbox and network the test made,
//! then the plugin, the namespaces and the directories.
#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod engine;
pub(crate) mod fake;
pub(crate) mod served;
pub(crate) mod server;

use std::sync::Arc;
use std::time::Duration;

use berth::{Config, Controller, FirewallBackend, NetworkCreate};
use berth_plugin::{ClientConfig, Plugin, PluginDirs, RetryPolicy, discover_with};
use berth_testhost::{StateDir, TestHost};

use fake::FakeNet;
use server::Server;

/// The plugin's name.
pub(crate) const PLUGIN: &str = "fakenet";

/// Retries and timeouts short enough for tests (dockerd's are 30 s).
pub(crate) fn quick_config() -> ClientConfig {
    ClientConfig {
        activation_retry: RetryPolicy {
            budget: Duration::from_secs(3),
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
        },
        call_retry: RetryPolicy {
            budget: Duration::from_millis(300),
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(100),
        },
        call_timeout: Duration::from_millis(1500),
        connect_timeout: Duration::from_secs(1),
    }
}

pub(crate) struct Rig {
    pub(crate) ctl: Option<Controller>,
    pub(crate) plugin: Plugin,
    pub(crate) fake: Arc<FakeNet>,
    pub(crate) server: Server,
    pub(crate) dirs: PluginDirs,
    pub(crate) plugin_root: tempfile::TempDir,
    pub(crate) dir: StateDir,
    pub(crate) host: TestHost,
}

impl Rig {
    /// The whole rig with [`quick_config`].
    pub(crate) fn new() -> Rig {
        let host = TestHost::new().expect("a test host (run as root)");
        let dir = StateDir::new().unwrap();
        let plugin_root = tempfile::tempdir().unwrap();
        let dirs = PluginDirs::under(plugin_root.path());
        let fake = FakeNet::new(host.name());
        let server = Server::unix(&dirs.sockets.join(format!("{PLUGIN}.sock")), fake.handler());
        let plugin = discover_with(PLUGIN, &dirs, quick_config()).unwrap();
        let ctl = Self::controller(&plugin, &host, &dir);
        Rig {
            ctl: Some(ctl),
            plugin,
            fake,
            server,
            dirs,
            plugin_root,
            dir,
            host,
        }
    }

    /// A controller with the plugin's drivers registered (the network driver keeping its
    /// state under the data root).
    fn controller(plugin: &Plugin, host: &TestHost, dir: &StateDir) -> Controller {
        let network = plugin
            .network_driver(host.netns())
            .unwrap()
            .keep_state_in(&dir.path().join("data/plugins").join(PLUGIN))
            .unwrap();
        let ipam = plugin.ipam_driver().unwrap();
        let mut config = Config::new(dir.path().join("data"), dir.path().join("run"));
        config.host_netns = Some(host.path());
        config.firewall = Some(FirewallBackend::Iptables);
        Controller::builder(config)
            .driver_arc(Arc::new(network))
            .ipam(Arc::new(ipam))
            .build()
            .unwrap()
    }

    /// A restart: the controller and the plugin's drivers are made again (the plugin, and the
    /// kernel, keep what they have).
    pub(crate) fn restart(&mut self) {
        self.ctl = None;
        self.ctl = Some(Self::controller(&self.plugin, &self.host, &self.dir));
    }

    pub(crate) fn ctl(&self) -> &Controller {
        self.ctl.as_ref().unwrap()
    }

    /// Creates network `name` of the plugin's driver with the plugin's IPAM.
    pub(crate) fn plugin_network(&self, name: &str) -> berth::Result<berth::NetworkId> {
        let mut req = NetworkCreate::new(name).driver(PLUGIN);
        req.ipam_driver = PLUGIN.into();
        self.ctl().create_network(req)
    }

    /// The names of the links in the host namespace (iproute2's view).
    pub(crate) fn host_links(&self) -> Vec<String> {
        link_names(&self.host.ip(&["-o", "link"]).unwrap())
    }

    /// The names of the links in a sandbox (iproute2's view).
    pub(crate) fn sandbox_links(&self, sandbox: &str) -> Vec<String> {
        let ns = self.ctl().sandbox_netns(sandbox).unwrap();
        let out = ns.command("ip").args(["-o", "link"]).output().unwrap();
        link_names(&String::from_utf8_lossy(&out.stdout))
    }

    /// `ip ARGS` inside a sandbox.
    pub(crate) fn in_sandbox(&self, sandbox: &str, args: &[&str]) -> String {
        let ns = self.ctl().sandbox_netns(sandbox).unwrap();
        let out = ns.command("ip").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn ping(&self, from: &str, to: &str) -> bool {
        berth_testhost::ping_in(&self.ctl().sandbox_netns(from).unwrap(), to)
    }

    pub(crate) fn ip_of(&self, sandbox: &str, network: &str) -> String {
        self.ctl().inspect_sandbox(sandbox).unwrap().networks[network]
            .ip_address
            .clone()
    }
}

/// Link names from `ip -o link` output (without `@peer`).
pub(crate) fn link_names(out: &str) -> Vec<String> {
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect();
    names.sort();
    names
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(ctl) = self.ctl.take() {
            for sb in ctl.sandboxes() {
                let _ = ctl.remove_sandbox(&sb.id);
            }
            for net in ctl.networks() {
                let _ = ctl.remove_network(&net.id);
            }
        }
    }
}

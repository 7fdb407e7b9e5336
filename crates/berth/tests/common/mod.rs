//! Shared fixture of the controller's kernel tests: a controller whose "host" is a throwaway
//! test host, with its state and sandbox namespaces in a temporary directory. Dropping the fixture
//! removes every sandbox and network the test made, then the namespaces and the directory.
#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod bridge_like;

use std::path::PathBuf;
use std::time::Duration;

use berth::{Config, Controller, FirewallBackend};
pub(crate) use berth_testhost::StateDir;
use berth_testhost::TestHost;
use berth_testhost::berth_netlink::Netns;

pub(crate) struct Fixture {
    pub(crate) ctl: Option<Controller>,
    pub(crate) host: TestHost,
    pub(crate) dir: StateDir,
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        Self::with(|_| {})
    }

    pub(crate) fn with(adjust: impl FnOnce(&mut Config)) -> Fixture {
        let host = TestHost::new().expect("a test host (run as root)");
        Self::from_parts(host, StateDir::new().unwrap(), adjust)
    }

    /// A controller on an existing test host and state directory.
    pub(crate) fn from_parts(
        host: TestHost,
        dir: StateDir,
        adjust: impl FnOnce(&mut Config),
    ) -> Fixture {
        let mut config = Self::config_for(&host, &dir);
        adjust(&mut config);
        let ctl = Controller::new(config).expect("controller");
        Fixture {
            ctl: Some(ctl),
            host,
            dir,
        }
    }

    pub(crate) fn config_for(host: &TestHost, dir: &StateDir) -> Config {
        let mut config = Config::new(dir.path().join("data"), dir.path().join("run"));
        config.host_netns = Some(host.path());
        config.firewall = Some(FirewallBackend::Iptables);
        config
    }

    pub(crate) fn config(&self) -> Config {
        Self::config_for(&self.host, &self.dir)
    }

    pub(crate) fn ctl(&self) -> &Controller {
        self.ctl.as_ref().expect("controller present")
    }

    /// Replaces the controller by a new one on the same state (a restart).
    pub(crate) fn restart(&mut self) {
        self.restart_with(|_| {});
    }

    /// Stops the controller (the kernel keeps what it made), for a test to act while it is down.
    pub(crate) fn stop(&mut self) {
        self.ctl = None;
    }

    /// Starts a controller on the state again after [`Fixture::stop`].
    pub(crate) fn start(&mut self) {
        self.ctl = Some(Controller::new(self.config()).expect("restarted controller"));
    }

    /// Starts a controller on the state again after [`Fixture::stop`], made by `start`.
    pub(crate) fn start_with(&mut self, start: impl FnOnce(&TestHost, &StateDir) -> Controller) {
        self.ctl = Some(start(&self.host, &self.dir));
    }

    /// A restart whose configuration is adjusted as the fixture's first one was.
    pub(crate) fn restart_with(&mut self, adjust: impl FnOnce(&mut Config)) {
        self.ctl = None;
        let mut config = self.config();
        adjust(&mut config);
        self.ctl = Some(Controller::new(config).expect("restarted controller"));
    }

    pub(crate) fn sandbox_ns(&self, name: &str) -> Netns {
        self.ctl().sandbox_netns(name).unwrap()
    }

    /// `dig +short` of `name` at the sandbox's embedded server (127.0.0.11): the answer lines.
    pub(crate) fn dig(&self, from: &str, name: &str) -> String {
        let out = self
            .sandbox_ns(from)
            .command("dig")
            .args(["+short", "+time=1", "+tries=2", "@127.0.0.11", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// One ICMP echo from inside a sandbox.
    pub(crate) fn ping(&self, from: &str, to: &str) -> bool {
        berth_testhost::ping_in(&self.sandbox_ns(from), to)
    }

    /// Creates sandbox `name` and connects it to `network` with default options; its address.
    pub(crate) fn sandbox_on(&self, name: &str, network: &str) -> String {
        self.ctl()
            .create_sandbox(berth::SandboxCreate::new(name))
            .unwrap();
        self.ctl()
            .connect(name, network, berth::EndpointOptions::default())
            .unwrap();
        self.ip_of(name, network)
    }

    /// Creates sandbox `name` on `network` with the `-p` specs published; returns its address.
    pub(crate) fn publish(&self, name: &str, network: &str, specs: &[&str]) -> String {
        let mut req = berth::SandboxCreate::new(name);
        req.network = Some(network.into());
        req.endpoint = berth::EndpointOptions {
            ports: specs
                .iter()
                .map(|s| s.parse::<berth::PortSpec>().unwrap())
                .collect(),
            ..Default::default()
        };
        self.ctl().create_sandbox(req).unwrap();
        self.ip_of(name, network)
    }

    pub(crate) fn ip_of(&self, sandbox: &str, network: &str) -> String {
        self.ctl().inspect_sandbox(sandbox).unwrap().networks[network]
            .ip_address
            .clone()
    }

    /// `ip -o link` inside a sandbox.
    pub(crate) fn links_in(&self, sandbox: &str) -> String {
        let ns = self.sandbox_ns(sandbox);
        let out = ns.command("ip").args(["-o", "link"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Host links whose names look like berth's (bridges and veths).
    pub(crate) fn berth_links(&self) -> Vec<String> {
        self.host
            .ip(&["-o", "link"])
            .unwrap()
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_owned())
            .filter(|n| n.starts_with("br-") || n.starts_with("berth") || n == "docker0")
            .collect()
    }

    pub(crate) fn iptables_save(&self) -> String {
        self.host.run("iptables-save", &[]).unwrap()
    }

    pub(crate) fn netns_dir(&self) -> PathBuf {
        self.dir.netns_dir()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(ctl) = self.ctl.take() {
            for sb in ctl.sandboxes() {
                let _ = ctl.remove_sandbox(&sb.id);
            }
            for net in ctl.networks() {
                let _ = ctl.remove_network(&net.id);
            }
        }
        // The StateDir's drop removes whatever a failed test left mounted.
    }
}

pub(crate) const TIMEOUT: Duration = Duration::from_secs(2);
pub(crate) mod consistency;
pub(crate) mod soak_model;

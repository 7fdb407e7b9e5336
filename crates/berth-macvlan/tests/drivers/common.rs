//! Shared fixture of the macvlan and ipvlan kernel tests: a controller whose "host" is a
//! throwaway test host with the drivers registered ([`build`], the one place that does it), the
//! host's "physical" interfaces being veth pairs to LAN peers. Dropping the fixture removes every
//! sandbox and network the test made, then the namespaces and the state directory (also when
//! the test panics).
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::collections::BTreeSet;
use std::time::Duration;

use berth::{
    Config, Controller, EndpointOptions, FirewallBackend, IpamPoolConfig, NetworkCreate,
    SandboxCreate,
};
use berth_testhost::berth_netlink::Netns;
use berth_testhost::{LanPeer, StateDir, TestHost};

pub const TIMEOUT: Duration = Duration::from_secs(2);

/// The controller (macvlan and ipvlan are built in), on `host` with its state in `dir`.
pub fn build(host: &TestHost, dir: &StateDir) -> Controller {
    Controller::new(config_for(host, dir)).unwrap()
}

/// The instance id in the marks of the controller's drivers.
pub fn instance(ctl: &Controller) -> String {
    ctl.instance_id().to_owned()
}

pub fn config_for(host: &TestHost, dir: &StateDir) -> Config {
    let mut config = Config::new(dir.path().join("data"), dir.path().join("run"));
    config.host_netns = Some(host.path());
    config.firewall = Some(FirewallBackend::Iptables);
    config
}

/// A network to create: driver, options, and pools (subnet, gateway, range).
pub struct Net<'a> {
    pub name: &'a str,
    pub driver: &'a str,
    pub options: Vec<(&'a str, String)>,
    pub v4: Option<(&'a str, Option<&'a str>, Option<&'a str>)>,
    pub v6: Option<(&'a str, Option<&'a str>)>,
    pub internal: bool,
}

impl<'a> Net<'a> {
    pub fn macvlan(name: &'a str) -> Net<'a> {
        Net {
            name,
            driver: "macvlan",
            options: Vec::new(),
            v4: None,
            v6: None,
            internal: false,
        }
    }

    pub fn ipvlan(name: &'a str) -> Net<'a> {
        Net {
            driver: "ipvlan",
            ..Net::macvlan(name)
        }
    }

    pub fn opt(mut self, key: &'a str, value: impl Into<String>) -> Net<'a> {
        self.options.push((key, value.into()));
        self
    }

    pub fn parent(self, parent: impl Into<String>) -> Net<'a> {
        self.opt("parent", parent)
    }

    /// IPv4: subnet, gateway, ip-range.
    pub fn v4(mut self, subnet: &'a str, gw: Option<&'a str>, range: Option<&'a str>) -> Net<'a> {
        self.v4 = Some((subnet, gw, range));
        self
    }

    pub fn v6(mut self, subnet: &'a str, gw: Option<&'a str>) -> Net<'a> {
        self.v6 = Some((subnet, gw));
        self
    }

    pub fn request(&self) -> NetworkCreate {
        let mut req = NetworkCreate::new(self.name);
        req.driver = self.driver.into();
        req.internal = self.internal;
        for (k, v) in &self.options {
            req.options.insert((*k).to_owned(), v.clone());
        }
        if let Some((subnet, gw, range)) = self.v4 {
            req.ipam.push(IpamPoolConfig {
                subnet: Some(subnet.parse().unwrap()),
                gateway: gw.map(|g| g.parse().unwrap()),
                ip_range: range.map(|r| r.parse().unwrap()),
                ..Default::default()
            });
        }
        if let Some((subnet, gw)) = self.v6 {
            req.enable_ipv6 = true;
            req.ipam.push(IpamPoolConfig {
                subnet: Some(subnet.parse().unwrap()),
                gateway: gw.map(|g| g.parse().unwrap()),
                ..Default::default()
            });
        }
        req
    }
}

pub struct Fixture {
    pub ctl: Option<Controller>,
    pub lans: Vec<LanPeer>,
    pub host: TestHost,
    pub dir: StateDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let host = TestHost::new().expect("a test host (run as root)");
        let dir = StateDir::new().unwrap();
        let ctl = build(&host, &dir);
        Fixture {
            ctl: Some(ctl),
            lans: Vec::new(),
            host,
            dir,
        }
    }

    pub fn ctl(&self) -> &Controller {
        self.ctl.as_ref().expect("controller present")
    }

    /// A LAN peer on a new "physical" interface of the host (its name is returned): the host's
    /// side gets `host_addr`, the peer's `eth0` gets `peer_addr`. Both must stay out of the
    /// addresses IPAM gives the sandboxes (it counts up from `.1`: the tests use `.250` and
    /// `.254`, the peer's being the network's gateway), else a sandbox and the host share one.
    pub fn lan(&mut self, host_addr: &str, peer_addr: &str) -> String {
        let peer = self.host.add_lan_peer(host_addr, peer_addr).unwrap();
        self.push_lan(peer)
    }

    /// Like [`Fixture::lan`], the peer's side a switch (reflecting frames with `hairpin`).
    pub fn switched_lan(&mut self, host_addr: &str, peer_addr: &str, hairpin: bool) -> String {
        let peer = self
            .host
            .add_switched_lan_peer(host_addr, peer_addr, hairpin)
            .unwrap();
        self.push_lan(peer)
    }

    fn push_lan(&mut self, peer: LanPeer) -> String {
        let parent = peer.host_interface().to_owned();
        self.lans.push(peer);
        parent
    }

    /// The LAN peer behind the host's interface `parent`.
    pub fn peer(&self, parent: &str) -> &LanPeer {
        self.lans
            .iter()
            .find(|p| p.host_interface() == parent)
            .expect("a LAN peer on that interface")
    }

    pub fn create(&self, net: &Net<'_>) -> berth::Result<berth::NetworkId> {
        self.ctl().create_network(net.request())
    }

    /// Creates sandbox `name` connected to `network`; returns its IPv4 address.
    pub fn sandbox_on(&self, name: &str, network: &str) -> String {
        self.try_sandbox_on(name, network).unwrap();
        self.ip_of(name, network)
    }

    pub fn try_sandbox_on(&self, name: &str, network: &str) -> berth::Result<()> {
        self.ctl().create_sandbox(SandboxCreate::new(name))?;
        self.ctl()
            .connect(name, network, EndpointOptions::default())
            .map(|_| ())
    }

    pub fn ip_of(&self, sandbox: &str, network: &str) -> String {
        self.ctl().inspect_sandbox(sandbox).unwrap().networks[network]
            .ip_address
            .clone()
    }

    pub fn ip6_of(&self, sandbox: &str, network: &str) -> String {
        self.ctl().inspect_sandbox(sandbox).unwrap().networks[network]
            .ipv6_address
            .clone()
    }

    pub fn ns(&self, sandbox: &str) -> Netns {
        self.ctl().sandbox_netns(sandbox).unwrap()
    }

    /// One ICMP echo from inside a sandbox.
    pub fn ping(&self, from: &str, to: &str) -> bool {
        berth_testhost::ping_in(&self.ns(from), to)
    }

    /// Replaces the controller by a new one on the same state (a restart).
    pub fn restart(&mut self) {
        self.ctl = None;
        self.ctl = Some(build(&self.host, &self.dir));
    }

    /// The host's links and addresses as iproute2 shows them (names, kinds, addresses), for
    /// comparing before and after.
    pub fn host_state(&self) -> BTreeSet<String> {
        let mut s = BTreeSet::new();
        for l in self.host.ip(&["-o", "link"]).unwrap().lines() {
            s.insert(format!(
                "link {}",
                l.split_whitespace().nth(1).unwrap_or("")
            ));
        }
        for l in self.host.ip(&["-o", "addr"]).unwrap().lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            s.insert(format!(
                "addr {} {}",
                w.get(1).unwrap_or(&""),
                w.get(3).unwrap_or(&"")
            ));
        }
        s
    }

    /// The names of the host's links.
    pub fn host_links(&self) -> Vec<String> {
        link_names(&self.host)
    }

    /// `ip -o link` inside a sandbox.
    pub fn links_in(&self, sandbox: &str) -> String {
        let out = self
            .ns(sandbox)
            .command("ip")
            .args(["-o", "link"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `dig +short @127.0.0.11 NAME` from a sandbox.
    pub fn dig(&self, from: &str, name: &str) -> String {
        let out = self
            .ns(from)
            .command("dig")
            .args(["+short", "+time=1", "+tries=2", "@127.0.0.11", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
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
    }
}

/// The names of the links of a namespace (without the `@peer` part).
pub fn link_names(host: &TestHost) -> Vec<String> {
    host.ip(&["-o", "link"])
        .unwrap()
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect()
}

/// The error's whole chain of messages, for matching.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(" <- ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The macvlan driver's own error in an error's chain, if it is there.
pub fn macvlan_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a berth_macvlan::MacvlanError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(found) = err.downcast_ref::<berth_macvlan::MacvlanError>() {
            return Some(found);
        }
        cur = err.source();
    }
    None
}

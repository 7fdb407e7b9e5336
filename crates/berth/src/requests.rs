//! What callers ask the controller for.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use berth_dns::{DnsSettings, HostEntry};
use berth_driver::{MacAddr, RawOptions};
use berth_portmap::{ExposedPort, PortSpec};
use ipnet::IpNet;

/// One `--subnet` with its `--ip-range`, `--gateway` and `--aux-address`es.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpamPoolConfig {
    /// The subnet (None: the next free default pool).
    pub subnet: Option<IpNet>,
    /// The sub-range endpoints get addresses from.
    pub ip_range: Option<IpNet>,
    /// The gateway address.
    pub gateway: Option<IpAddr>,
    /// Reserved addresses by name.
    pub aux_addresses: BTreeMap<String, IpAddr>,
}

/// `docker network create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkCreate {
    /// The network's name.
    pub name: String,
    /// The driver (`bridge` by default).
    pub driver: String,
    /// Driver options (`-o key=value`).
    pub options: RawOptions,
    /// IPv4 and IPv6 pools (empty: one default IPv4 pool).
    pub ipam: Vec<IpamPoolConfig>,
    /// The IPAM driver (`--ipam-driver`; `default` is the built-in allocator).
    pub ipam_driver: String,
    /// The IPAM driver's options (`--ipam-opt`).
    pub ipam_options: RawOptions,
    /// `--ipv6`.
    pub enable_ipv6: bool,
    /// `--internal`.
    pub internal: bool,
    /// `--attachable` (recorded).
    pub attachable: bool,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
}

impl NetworkCreate {
    /// A bridge network named `name` with defaults.
    pub fn new(name: impl Into<String>) -> Self {
        NetworkCreate {
            name: name.into(),
            driver: "bridge".into(),
            options: RawOptions::new(),
            ipam: Vec::new(),
            ipam_driver: "default".into(),
            ipam_options: RawOptions::new(),
            enable_ipv6: false,
            internal: false,
            attachable: false,
            labels: BTreeMap::new(),
        }
    }

    /// Sets the driver (`-d`: `bridge` by default, `macvlan`, `ipvlan`, `overlay`, or a
    /// registered one).
    pub fn driver(mut self, driver: impl Into<String>) -> Self {
        self.driver = driver.into();
        self
    }

    /// Adds a pool.
    pub fn subnet(mut self, pool: IpamPoolConfig) -> Self {
        self.ipam.push(pool);
        self
    }

    /// Sets a driver option.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.insert(key.into(), value.into());
        self
    }

    /// Marks the network internal.
    pub fn internal(mut self) -> Self {
        self.internal = true;
        self
    }
}

/// How a sandbox gets its network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SandboxNetns {
    /// berth creates a namespace and bind-mounts it under its exec root.
    #[default]
    Create,
    /// Use an existing namespace by path (`/proc/PID/ns/net`, a bind mount); berth never deletes it.
    Adopt(PathBuf),
    /// The host's own namespace (`--network host`).
    Host,
}

/// `berth sandbox create` (the network part of `docker create`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SandboxCreate {
    /// The sandbox's name (unique).
    pub name: String,
    /// Where its namespace comes from.
    pub netns: SandboxNetns,
    /// Its hostname (default: the first 12 hex digits of its id).
    pub hostname: Option<String>,
    /// Its domain name (`--domainname`): with it, `/etc/hosts` names the sandbox
    /// `hostname.domainname hostname`.
    pub domainname: Option<String>,
    /// `--dns`, `--dns-search` and `--dns-option`. Servers given here are where the embedded DNS
    /// server forwards (on user-defined networks) or what `/etc/resolv.conf` lists (on the default
    /// bridge); without servers, [`crate::Config::dns`] applies, then the host's resolv.conf.
    pub dns: DnsSettings,
    /// `--add-host NAMES:ADDR` entries for `/etc/hosts`, in order.
    pub extra_hosts: Vec<HostEntry>,
    /// A network to connect it to right away (`docker run --network`); the sandbox is removed
    /// again if that connect fails. `default` is Docker's default network mode: the predefined
    /// `bridge` network, or `none` when there is none (`Config::default_bridge` is `None`).
    pub network: Option<String>,
    /// The options of that first connect (`--ip`, `--alias`, `-p`, ...).
    pub endpoint: EndpointOptions,
    /// The environment of the sandbox's processes, `KEY=VALUE` each (`docker run --env`, and
    /// the proxy variables a client adds from its configuration: see
    /// [`crate::proxy`]). berth keeps it with the sandbox, shows it in inspect (`Env`) and gives
    /// it to `berth sandbox exec`; an engine gives it to the processes it starts.
    pub env: Vec<String>,
}

impl SandboxCreate {
    /// A sandbox named `name` in a namespace of its own.
    pub fn new(name: impl Into<String>) -> Self {
        SandboxCreate {
            name: name.into(),
            ..Default::default()
        }
    }
}

/// Options of one connect (`docker network connect`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointOptions {
    /// `--ip`.
    pub ipv4: Option<Ipv4Addr>,
    /// `--ip6`.
    pub ipv6: Option<Ipv6Addr>,
    /// `--alias` (network-scoped).
    pub aliases: Vec<String>,
    /// `--link name:alias` (the alias defaults to the name). On the default bridge these are
    /// Docker's legacy links: the named sandbox must be on the default bridge too; the linking
    /// sandbox gets `/etc/hosts` lines for it, [`crate::Controller::link_env`] gives the
    /// environment variables, and with icc disabled the firewall opens the linked sandbox's
    /// exposed ports to it. On user-defined networks the alias is a name only the linking
    /// sandbox resolves.
    pub links: Vec<(String, String)>,
    /// `--mac-address`.
    pub mac: Option<MacAddr>,
    /// `-p`: ports to publish through this endpoint.
    pub ports: Vec<PortSpec>,
    /// `--expose`: ports recorded as exposed (nothing is opened unless `publish_all`).
    pub exposed: Vec<ExposedPort>,
    /// `-P`: publish every exposed port on an automatic host port.
    pub publish_all: bool,
    /// `--driver-opt`: the endpoint's driver options, handed to the network's driver as given
    /// (it refuses what it does not know; the bridge driver knows none).
    pub driver_opts: RawOptions,
    /// The interface's name in the sandbox (a CNI runtime's `CNI_IFNAME`). By default the
    /// network's prefix (`eth`, or `com.docker.network.container_iface_prefix`) and the lowest
    /// free number. A valid interface name, not `lo`, and not the name of another of the
    /// sandbox's endpoints.
    pub ifname: Option<String>,
}

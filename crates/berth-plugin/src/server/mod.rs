//! Docker's remote plugin protocol, server side: berth's bridge driver and IPAM served to a
//! stock dockerd, as a legacy plugin on a unix socket ([`PluginServer`]).
//!
//! ```text
//! berth plugin serve --name berth          # /run/docker/plugins/berth.sock
//! docker network create -d berth --ipam-driver berth --subnet 10.90.0.0/24 net1
//! docker run -d --network net1 -p 8080:80 ...
//! ```
//!
//! # What is served
//!
//! One plugin name implements `NetworkDriver` and `IpamDriver` (`Plugin.Activate` answers
//! `{"Implements": ["NetworkDriver", "IpamDriver"]}`); every answer is
//! `application/vnd.docker.plugins.v1+json`. A network driver call that fails answers HTTP 500
//! with `{"Err": "..."}` (dockerd shows `NetworkDriver.CreateNetwork: ...`); an IPAM call that
//! fails answers 200 with `{"Error": "..."}` (libnetwork's remote IPAM reads its error there
//! and shows the message as it is). A path that is no call answers 404.
//!
//! - **Networks** are berth's [`berth_bridge::BridgeDriver`] networks (`br-<id>` bridges,
//!   berth's firewall, the same driver the controller uses), created with dockerd's network id,
//!   pools (dockerd's own IPAM's, or this plugin's with `--ipam-driver`), `--internal`, `--ipv6`
//!   and the user's `-o` options, which the bridge driver parses: an option it does not know is
//!   refused with its name (dockerd's own `com.docker.network.container_iface_prefix` is left to
//!   dockerd). The driver's scope is `local`.
//! - **Endpoints**: `CreateEndpoint` answers the MAC the bridge driver chose (Docker's
//!   `02:42` + IPv4 derivation) when dockerd gave none, and nothing else: the addresses are
//!   dockerd's. `--driver-opt` options go to the bridge driver, which takes none.
//! - **Join** answers an interface in the host namespace (`SrcName`; `DstPrefix` `eth`, or the
//!   network's `com.docker.network.container_iface_prefix`) that
//!   dockerd moves into the container, the network's gateways, and no static routes; a network
//!   without an IPv4 gateway (internal) disables dockerd's gateway service for the endpoint.
//!   The bridge driver's join makes the veth pair with its sandbox end inside a namespace; the
//!   server gives it its own staging namespace (anonymous, held by a descriptor, gone with the
//!   process) and then moves that end to the host namespace under `SrcName`
//!   (`bpeer` + 10 hex digits of the endpoint id). The host end (`berth` + 10 hex digits) is a
//!   port of the bridge, marked as this instance's; the sandbox end needs no mark of its own,
//!   as it lives and dies with its marked peer. Why not dockerd's sandbox (`SandboxKey`) as the
//!   namespace to join into: dockerd wants the interface in the host namespace all the same, so
//!   it would cost the same move, and the server would change a namespace of dockerd's that
//!   dockerd is about to configure. The cost is the kernel's namespace move (one per join, on
//!   top of the one dockerd makes into the container): about 15 ms against about 1 ms for the
//!   bridge driver's whole join on the test machine (`tests/server_measure.rs`); a container
//!   start through dockerd stays within 1.2x of dockerd's own bridge driver (1.03x to 1.13x
//!   measured), and its removal is faster (0.7x). A bridge join
//!   that leaves the sandbox end in the host namespace, unconfigured, would save it.
//! - **Published ports**: `ProgramExternalConnectivity`'s `com.docker.network.portmap` becomes
//!   berth's port specs, published by the bridge driver (DNAT, host ports held, as the
//!   controller does); `RevokeExternalConnectivity`, `Leave` and `DeleteEndpoint` take them
//!   back. `EndpointOperInfo` reports the bindings in dockerd's `PortBinding` shape.
//! - **Leave** deletes the veth pair (wherever dockerd left the sandbox end).
//! - **IPAM**: berth-ipam's allocator with Docker's default pools (or dockerd's
//!   `default-address-pools`, [`ServerConfig::default_pools`]), address spaces `LocalDefault`
//!   and `GlobalDefault`. `RequestPool` takes `--subnet` (host bits cleared, as dockerd does),
//!   `--ip-range` (`SubPool`) and `V6`; without a subnet it gives the first default pool that
//!   overlaps none of the host namespace's routes and nameservers. The gateway is asked for
//!   with `RequestAddressType: com.docker.network.gateway` (the given one, or the subnet's
//!   lowest free address); pool ids are berth-ipam's (`LocalDefault/10.1.0.0/24`), stable
//!   across restarts. `RequiresRequestReplay` is false: the server keeps its allocations.
//!
//! # State and restarts
//!
//! Networks, endpoints, pools and addresses are kept in a redb store under the state directory,
//! one record per object, each written before the kernel is changed and confirmed after. On
//! start the server replays the allocations into the allocator, finishes or undoes a network
//! creation or removal a crash cut short, takes its networks back into the bridge driver
//! (`restore_network`: an existing bridge is adopted), its endpoints and their published ports
//! (the same host ports again), deletes the veth of a join a crash cut short, removes links of
//! this instance no record names (`remove_orphans`), and reconciles the firewall once. A
//! restart of the server therefore leaves running containers as they are; a restart of dockerd
//! (which stops its containers, keeps its networks and does not create them again) finds the
//! networks as they were. Stopping the server ([`PluginServer::shutdown`], SIGTERM for
//! `berth plugin serve`) stops serving and removes the socket; the kernel state stays.
//!
//! # Transport
//!
//! A small blocking HTTP/1.1 server on std's `UnixListener` with `httparse`, a thread per
//! connection, persistent connections (dockerd's Go client keeps them): berth's library is
//! blocking (netlink, the firewall), so an async runtime would only move every call to a
//! blocking pool, and dockerd makes a handful of calls at a time.
//!
//! # The host namespace
//!
//! Everything happens in the namespace the server is given ([`ServerConfig::host_netns`], by
//! default the caller's): dockerd's. The server's firewall owns berth's chains there (next to
//! dockerd's own, which it never touches): a second plugin server, or a `berth daemon` with a
//! firewall of its own, must not share that namespace.

mod endpoint;
mod error;
mod http;
mod ipam;
mod network;
mod ports;
mod records;
mod restore;
mod service;
mod signals;
mod staging;

use std::path::{Path, PathBuf};

pub use berth_firewall::Backend;
pub use berth_ipam::DefaultPool;
pub use endpoint::peer_name;
pub use error::{ServerError, ServerResult};
pub use signals::TerminationSignals;

use crate::discovery::validate_name;

/// The prefix of an endpoint's sandbox end in the host namespace (`SrcName`): `bpeer` and the
/// first 10 hex digits of the endpoint id.
pub const PEER_PREFIX: &str = "bpeer";

/// Where `berth plugin serve` keeps a plugin's state by default: `/var/lib/berth/plugins/NAME`.
pub const DEFAULT_STATE_ROOT: &str = "/var/lib/berth/plugins";

/// Where dockerd looks for plugin sockets: `/run/docker/plugins/NAME.sock`.
pub const DEFAULT_SOCKET_DIR: &str = "/run/docker/plugins";

/// How a [`PluginServer`] is set up. Built with [`ServerConfig::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The plugin's name: dockerd's `-d NAME` and `--ipam-driver NAME`.
    pub name: String,
    /// The socket served (default `/run/docker/plugins/NAME.sock`, where dockerd finds it).
    pub socket: PathBuf,
    /// The state directory (default `/var/lib/berth/plugins/NAME`): the store `plugin.db`.
    pub state_dir: PathBuf,
    /// The namespace the data path lives in (dockerd's); None: the caller's.
    pub host_netns: Option<PathBuf>,
    /// The packet filter backend (default iptables, as dockerd 20.10); None leaves the packet
    /// filter alone (no NAT for published ports, no isolation).
    pub firewall: Option<Backend>,
    /// Switch IPv4 forwarding on in the host namespace when it is off (then the FORWARD policy
    /// becomes DROP, as dockerd does); dockerd has done it already in its own namespace.
    /// Default: true.
    pub ip_forward: bool,
    /// Relay published ports NAT cannot carry through an in-process proxy (the bridge driver's
    /// `userland_proxy`). Default: false.
    pub userland_proxy: bool,
    /// The local address space's default pools (dockerd's `default-address-pools`); None:
    /// Docker's.
    pub default_pools: Option<Vec<DefaultPool>>,
    /// Refuse a network option (`docker network create -o`) the bridge driver does not know.
    /// Default: false: as with dockerd's own bridge driver, such an option (a vendor key, an
    /// option of a later Docker) is ignored, with a warning in the server's log.
    pub strict_options: bool,
}

impl ServerConfig {
    /// The defaults for plugin `name` (see the fields).
    pub fn new(name: impl Into<String>) -> ServerConfig {
        let name = name.into();
        ServerConfig {
            socket: Path::new(DEFAULT_SOCKET_DIR).join(format!("{name}.sock")),
            state_dir: Path::new(DEFAULT_STATE_ROOT).join(&name),
            name,
            host_netns: None,
            firewall: Some(Backend::Iptables),
            ip_forward: true,
            userland_proxy: false,
            default_pools: None,
            strict_options: false,
        }
    }

    /// With this socket.
    pub fn with_socket(mut self, socket: impl Into<PathBuf>) -> ServerConfig {
        self.socket = socket.into();
        self
    }

    /// With this state directory.
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> ServerConfig {
        self.state_dir = dir.into();
        self
    }

    /// With this host namespace (a path: `/run/netns/NAME`, `/proc/PID/ns/net`).
    pub fn with_host_netns(mut self, path: impl Into<PathBuf>) -> ServerConfig {
        self.host_netns = Some(path.into());
        self
    }

    /// With this firewall backend (None: no firewall).
    pub fn with_firewall(mut self, backend: Option<Backend>) -> ServerConfig {
        self.firewall = backend;
        self
    }

    /// Whether to switch IP forwarding on.
    pub fn with_ip_forward(mut self, yes: bool) -> ServerConfig {
        self.ip_forward = yes;
        self
    }

    /// Whether to relay with the userland proxy.
    pub fn with_userland_proxy(mut self, yes: bool) -> ServerConfig {
        self.userland_proxy = yes;
        self
    }

    /// Whether to refuse network options the bridge driver does not know.
    pub fn with_strict_options(mut self, yes: bool) -> ServerConfig {
        self.strict_options = yes;
        self
    }

    /// With these default pools for the local address space.
    pub fn with_default_pools(mut self, pools: Vec<DefaultPool>) -> ServerConfig {
        self.default_pools = Some(pools);
        self
    }

    fn check(&self) -> ServerResult<()> {
        validate_name(&self.name).map_err(|e| ServerError::Config(e.to_string()))
    }
}

/// For a fuzz target: reads a request from `raw` as the server does: `Ok(None)` while more
/// bytes are needed, the method, path and body when complete, the status answered for a bad
/// one. Never panics.
#[doc(hidden)]
pub fn fuzz_request(raw: &[u8]) -> Result<Option<(String, String, Vec<u8>)>, u16> {
    match http::parse_request(raw) {
        Ok(http::Parsed::Complete(r, _)) => Ok(Some((r.method, r.path, r.body))),
        Ok(http::Parsed::Partial(_)) => Ok(None),
        Err(e) => Err(e.status),
    }
}

/// For a fuzz target: reads `ProgramExternalConnectivity`'s options (JSON) into port specs as
/// the server does; the number of specs, or the field refused. Never panics.
#[doc(hidden)]
pub fn fuzz_port_options(json: &[u8]) -> Result<usize, String> {
    let options: std::collections::BTreeMap<String, serde_json::Value> =
        crate::wire::decode(json).map_err(|e| e.to_string())?;
    ports::port_specs(&options)
        .map(|s| s.len())
        .map_err(|(field, _, _)| field)
}

/// berth's bridge driver and IPAM served to dockerd on a unix socket (see the module). Serving
/// runs on threads of its own from [`PluginServer::start`] until [`PluginServer::shutdown`] (or
/// the drop).
#[derive(Debug)]
pub struct PluginServer {
    name: String,
    transport: Option<http::Transport>,
}

impl PluginServer {
    /// Opens the state, restores what it holds (networks, endpoints, published ports, IPAM
    /// allocations; see the module), then serves `config.socket`. A socket path where a server
    /// answers is refused ([`ServerError::Socket`]); a stale one is replaced.
    pub fn start(config: ServerConfig) -> ServerResult<PluginServer> {
        config.check()?;
        let span = tracing::info_span!("plugin_server_start", plugin = %config.name);
        let _enter = span.enter();
        // The socket first: a server already answering there is refused before anything of
        // this one's touches the namespace (its firewall's reconcile would take the other's
        // rules). dockerd's calls wait in the backlog until the state is restored.
        let bound = http::Bound::new(&config.socket)?;
        let service = service::Service::start(&config)?;
        let transport = http::Transport::serve(bound, service)?;
        tracing::info!(plugin = %config.name, socket = %config.socket.display(), "serving");
        Ok(PluginServer {
            name: config.name,
            transport: Some(transport),
        })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The socket served.
    pub fn socket(&self) -> &Path {
        self.transport
            .as_ref()
            .map_or(Path::new(""), http::Transport::path)
    }

    /// Stops serving: no new connection is taken, calls in progress finish, idle connections
    /// are closed, the socket is removed. The kernel state (networks, endpoints, published
    /// ports) and the stored state stay for the next start.
    pub fn shutdown(mut self) {
        if let Some(t) = self.transport.take() {
            t.stop();
        }
    }
}

impl Drop for PluginServer {
    fn drop(&mut self) {
        if let Some(t) = self.transport.take() {
            t.stop();
        }
    }
}

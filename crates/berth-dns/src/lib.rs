//! berth's embedded DNS: the resolver every sandbox on a user-defined network reaches at
//! `127.0.0.11`, the network-scoped name tables behind it, and the sandbox's `/etc/hosts` and
//! `/etc/resolv.conf` — in Docker 20.10's behaviour and file formats.
//!
//! - [`Resolver`] runs one tokio runtime for every sandbox. When a sandbox first joins a
//!   user-defined network it binds UDP and TCP sockets on `127.0.0.11` (random ports) inside the
//!   sandbox's namespace and DNATs `127.0.0.11:53` to them (berth-firewall's `dns` module), as
//!   Docker does: a service in the sandbox can still run its own DNS server on port 53 of any
//!   address, even the wildcard, because nothing of berth's holds port 53.
//! - Answers ([`Names`], pure and lock-free on the query path): sandbox names and network-scoped
//!   aliases, also as `name.network`; several endpoints behind one name give all their addresses,
//!   shuffled; AAAA; PTR (`name.network.`); case-insensitive; a sandbox only sees the networks it
//!   is attached to. Other names go to the upstream servers from inside the sandbox's namespace
//!   (at most three, timeouts, TCP retry on truncation, SERVFAIL when all fail); sandboxes only on
//!   internal networks get NXDOMAIN instead.
//! - Forwarding loops: 127.0.0.11 is never an upstream (dropped with a warning, as in Docker);
//!   a forward that comes back to a sandbox it has been through (a DNAT back to this or another
//!   sandbox's resolver) is recognised by its source port, id and question and answered SERVFAIL
//!   at once, logged at most once per 10 s per sandbox. Each sandbox's forwarding is bounded (its
//!   in-flight forwards and so its sockets, [`ResolverConfig::max_forwards_per_sandbox`]), its
//!   forwards run in one task of its own (so the runtime's scheduler is fair between sandboxes,
//!   not between queries), and the namespace socket thread serves sandboxes in turns: one
//!   sandbox's storm does not hold up another's lookups.
//! - Files ([`HostsFile`], [`plan_resolv_conf`], [`SandboxFiles`]): pure renderers and an atomic
//!   writer. Legacy links: [`link_env`].
//!
//! # Example
//!
//! ```no_run
//! use berth_dns::{
//!     DnsSettings, EndpointDns, HostsFile, NetworkDns, ResolvMode, Resolver, ResolverConfig,
//!     SandboxFiles, plan_resolv_conf,
//! };
//! use berth_netlink::Netns;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let resolver = Resolver::new(ResolverConfig::default())?;
//! resolver.add_network(&NetworkDns {
//!     id: "n1".into(),
//!     name: "isolated_nw".into(),
//!     internal: false,
//!     embedded_dns: true,
//! })?;
//!
//! let host_resolv = std::fs::read_to_string("/etc/resolv.conf")?;
//! let plan = plan_resolv_conf(&host_resolv, &DnsSettings::default(), ResolvMode::Embedded)?;
//! let netns = Netns::open("/run/netns/web")?;
//! resolver.add_sandbox("sb1", "web", &netns, &plan.upstreams)?;
//! resolver.connect(
//!     "sb1",
//!     "n1",
//!     &EndpointDns {
//!         endpoint_id: "ep1".into(),
//!         aliases: vec!["frontend".into()],
//!         ipv4: Some("172.18.0.2".parse()?),
//!         ..EndpointDns::default()
//!     },
//! )?;
//!
//! let files = SandboxFiles::create("/run/berth/sandboxes/sb1")?;
//! let mut hosts = HostsFile::new("c0f0934714d6");
//! hosts.addresses.push("172.18.0.2".parse()?);
//! files.write_hosts(&hosts)?;
//! files.write_resolv_conf(&plan.content)?;
//! # Ok(()) }
//! ```

mod error;
mod files;
mod forward;
mod lane;
mod links;
mod loops;
mod names;
mod redirect;
mod server;
mod table;
mod udp_batch;
mod wire;

pub use error::{Error, Result};
pub use files::{
    DnsSettings, EMBEDDED_DNS_ADDRESS, FALLBACK_NAMESERVERS_V4, FALLBACK_NAMESERVERS_V6,
    HOSTS_HEADER, HostEntry, HostsFile, LinkHost, MAX_UPSTREAMS, ResolvMode, ResolvPlan,
    SandboxFiles, build_resolv_conf, filter_host_resolv_conf, plan_resolv_conf, write_atomic,
};
pub use links::{ExposedPort, Link, Protocol, link_env};
pub use names::{EndpointDns, Names, NetworkDns, RemoteEndpointDns, SandboxHandle};
pub use redirect::{Redirect, STATELESS_TABLE, install as install_redirect, stateless_script};
pub use server::{Resolver, ResolverConfig, ServerPorts};
pub use wire::{
    Action, ForwardInfo, LOCAL_TTL, MAX_QUERY_LEN, MAX_TCP_MESSAGE, MAX_UDP_PAYLOAD,
    MAX_UDP_QUERY_LEN, MIN_UDP_PAYLOAD, Transport, Upstream, check_upstream, relay,
};

/// Compile-time proof that the resolver can be shared between threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Resolver>();
    assert_send_sync::<Names>();
};

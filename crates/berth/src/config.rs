//! The controller's configuration (the networking part of dockerd's flags and daemon.json).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use berth_dns::ResolverConfig;
use berth_firewall::Backend;
use berth_ipam::DefaultPool;
use ipnet::{Ipv4Net, Ipv6Net};

/// How a [`crate::Controller`] is set up. [`Config::new`] gives Docker's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Where the state store lives (`<data_root>/berth.redb`).
    pub data_root: PathBuf,
    /// Where berth bind-mounts the namespaces of the sandboxes it creates (`<exec_root>/netns/`).
    pub exec_root: PathBuf,
    /// The namespace berth treats as the host (None: the caller's own).
    pub host_netns: Option<PathBuf>,
    /// The packet filter backend; None leaves the packet filter alone (dockerd's
    /// `--iptables=false`).
    pub firewall: Option<Backend>,
    /// IPv6 for the default bridge and IPv6 forwarding from the start (dockerd's `--ipv6`). A
    /// user-defined network asks for IPv6 on its own (`network create --ipv6`), as in Docker,
    /// whatever this says; berth's firewall programs IPv6 rules for every network that has it,
    /// and IPv6 forwarding is switched on (with `ip_forward`) when the first one is created.
    pub ipv6: bool,
    /// Replaces Docker's default local address pools (`default-address-pools`).
    pub default_address_pools: Option<Vec<DefaultPool>>,
    /// Which bridge the predefined `bridge` network uses, if any (dockerd's `--bridge`/`-b`):
    /// by default berth makes and owns `docker0`.
    pub default_bridge: DefaultBridge,
    /// The default bridge's gateway address and subnet (`--bip 172.17.0.1/16`). Without it, a
    /// [`DefaultBridge::Existing`] bridge's own first IPv4 address gives them (as with dockerd's
    /// `-b`), and a bridge berth makes gets the next free default pool.
    pub bip: Option<Ipv4Net>,
    /// The default bridge's IPv6 subnet (`--fixed-cidr-v6`), with `ipv6`.
    pub fixed_cidr_v6: Option<Ipv6Net>,
    /// `enable_icc` of the default bridge (`--icc`); user-defined networks default to on.
    pub icc: bool,
    /// `enable_ip_masquerade` of the default bridge (`--ip-masq`); user-defined networks default
    /// to on.
    pub ip_masq: bool,
    /// MTU of the default bridge (`--mtu`); user-defined networks set theirs with
    /// `com.docker.network.driver.mtu`.
    pub mtu: Option<u32>,
    /// Turn on IP forwarding in the host namespace (`--ip-forward`); when berth switches it on, it
    /// also sets the FORWARD policy to DROP, as Docker does.
    pub ip_forward: bool,
    /// Default host address for published ports (`--ip`).
    pub default_bind_ip: IpAddr,
    /// Interfaces from which packets may be routed straight to container addresses.
    pub trusted_interfaces: Vec<String>,
    /// Relay published ports NAT cannot carry (an IPv6 host address for an IPv4-only container)
    /// through an in-process proxy (`--userland-proxy`). Off by default: berth publishes with NAT
    /// only, like dockerd's `--userland-proxy=false`, and keeps clients' source addresses.
    pub userland_proxy: bool,
    /// Limits of the userland proxy (connections and UDP flows per port, idle timeouts, accept
    /// back-off); Docker-like defaults.
    pub userland_proxy_limits: berth_portmap::ProxyLimits,
    /// Default `--dns` servers (dockerd's `--dns`) of sandboxes that give none.
    pub dns: Vec<IpAddr>,
    /// The embedded DNS server at 127.0.0.11 of sandboxes on user-defined networks, and its
    /// settings (worker threads, upstream timeouts, per-sandbox limits, how 127.0.0.11:53 is
    /// redirected). None switches it off, for an engine with a resolver of its own: no server
    /// threads, no redirect in any sandbox, and every sandbox's `resolv.conf` lists its upstream
    /// servers directly (its `--dns` servers, or the host's), as on the default bridge; sandboxes
    /// then do not find each other by name unless the engine's resolver does it.
    pub embedded_dns: Option<ResolverConfig>,
    /// Refuse a network option its driver does not know. Off by default: as Docker, an unknown
    /// option (a vendor key, an option of a later Docker) is kept, stored and shown in inspect,
    /// with no effect, and the create answers a warning naming it.
    pub strict_options: bool,
    /// Repair berth's firewall rules while running when something outside berth changes them
    /// (a flushed chain, a deleted jump, `nft flush ruleset`): see
    /// [`berth_firewall::Firewall::start_healing`]. Off by default for embedders (the daemon
    /// turns it on); [`crate::Controller::reconcile_firewall`] repairs on demand either way.
    pub heal_firewall: bool,
    /// Let a unique id prefix name a network or sandbox (Docker's lookup rules: exact id, exact
    /// name, then a unique id prefix). Off by default: an engine's `remove_sandbox("621")` then
    /// never removes a sandbox whose id merely starts with 621; the daemon turns it on for the
    /// docker CLI's users.
    pub id_prefixes: bool,
    /// Trust the kernel at start when the previous controller on this state went away cleanly
    /// on this boot and in this host namespace: the firewall's tool probes are not run again
    /// (their verdicts are kept in `<exec_root>/firewall-trust.json`), the start does not
    /// reconcile the firewall, and the drivers take their endpoints' joins back from memory
    /// ([`berth_driver::NetworkDriver::restore_join`]) with the sandboxes' default routes as they
    /// were left. For short-lived openers, such as a CNI plugin's calls, where those are most
    /// of the time a call takes (and grow with the sandboxes on the host). Any other start (the
    /// first, after a crash, a reboot or a teardown) probes, joins and reconciles as usual;
    /// drift made by others in between stays until [`crate::Controller::reconcile_firewall`]
    /// (rules) or the next untrusted start (interfaces, routes). Off by default.
    pub trust_kernel: bool,
}

impl Config {
    /// Docker's defaults, with state under `data_root` and namespaces under `exec_root`.
    pub fn new(data_root: impl Into<PathBuf>, exec_root: impl Into<PathBuf>) -> Config {
        Config {
            data_root: data_root.into(),
            exec_root: exec_root.into(),
            host_netns: None,
            firewall: Some(Backend::Iptables),
            ipv6: false,
            default_address_pools: None,
            default_bridge: DefaultBridge::default(),
            bip: None,
            fixed_cidr_v6: None,
            icc: true,
            ip_masq: true,
            mtu: None,
            ip_forward: true,
            default_bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            trusted_interfaces: Vec::new(),
            userland_proxy: false,
            userland_proxy_limits: berth_portmap::ProxyLimits::default(),
            dns: Vec::new(),
            embedded_dns: Some(ResolverConfig::default()),
            strict_options: false,
            heal_firewall: false,
            id_prefixes: false,
            trust_kernel: false,
        }
    }

    /// The directory of the sandbox namespaces berth creates.
    pub fn netns_dir(&self) -> PathBuf {
        self.exec_root.join("netns")
    }

    /// The store file.
    pub fn store_path(&self) -> PathBuf {
        self.data_root.join("berth.redb")
    }
}

// Setters for a `Config` built in one expression (each sets the field of the same name).
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $field:ident: $ty:ty;)*) => {
        impl Config {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name(mut self, value: $ty) -> Config {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}

setters! {
    /// Sets [`Config::host_netns`]. Every field has such a setter, for a config built in one
    /// expression:
    ///
    /// ```
    /// use berth::{Config, DefaultBridge, FirewallBackend};
    ///
    /// let config = Config::new("/var/lib/my-engine/net", "/run/my-engine/net")
    ///     .with_host_netns(Some("/run/netns/engine-host".into()))
    ///     .with_firewall(Some(FirewallBackend::Nftables))
    ///     .with_default_bridge(DefaultBridge::None)
    ///     .with_heal_firewall(true);
    /// assert_eq!(config.firewall, Some(FirewallBackend::Nftables));
    /// assert!(!config.id_prefixes, "exact lookups unless asked for");
    /// ```
    with_host_netns: host_netns: Option<PathBuf>;
    /// Sets [`Config::firewall`].
    with_firewall: firewall: Option<Backend>;
    /// Sets [`Config::ipv6`].
    with_ipv6: ipv6: bool;
    /// Sets [`Config::default_address_pools`].
    with_default_address_pools: default_address_pools: Option<Vec<DefaultPool>>;
    /// Sets [`Config::default_bridge`].
    with_default_bridge: default_bridge: DefaultBridge;
    /// Sets [`Config::bip`].
    with_bip: bip: Option<Ipv4Net>;
    /// Sets [`Config::fixed_cidr_v6`].
    with_fixed_cidr_v6: fixed_cidr_v6: Option<Ipv6Net>;
    /// Sets [`Config::icc`].
    with_icc: icc: bool;
    /// Sets [`Config::ip_masq`].
    with_ip_masq: ip_masq: bool;
    /// Sets [`Config::mtu`].
    with_mtu: mtu: Option<u32>;
    /// Sets [`Config::ip_forward`].
    with_ip_forward: ip_forward: bool;
    /// Sets [`Config::default_bind_ip`].
    with_default_bind_ip: default_bind_ip: IpAddr;
    /// Sets [`Config::trusted_interfaces`].
    with_trusted_interfaces: trusted_interfaces: Vec<String>;
    /// Sets [`Config::userland_proxy`].
    with_userland_proxy: userland_proxy: bool;
    /// Sets [`Config::userland_proxy_limits`].
    with_userland_proxy_limits: userland_proxy_limits: berth_portmap::ProxyLimits;
    /// Sets [`Config::dns`].
    with_dns: dns: Vec<IpAddr>;
    /// Sets [`Config::embedded_dns`].
    with_embedded_dns: embedded_dns: Option<ResolverConfig>;
    /// Sets [`Config::strict_options`].
    with_strict_options: strict_options: bool;
    /// Sets [`Config::heal_firewall`].
    with_heal_firewall: heal_firewall: bool;
    /// Sets [`Config::id_prefixes`].
    with_id_prefixes: id_prefixes: bool;
    /// Sets [`Config::trust_kernel`].
    with_trust_kernel: trust_kernel: bool;
}

/// The bridge of the predefined `bridge` network (dockerd's `--bridge`/`-b` and daemon.json's
/// `bridge`). The choice is stored with the network: a start with another choice replaces the
/// network when no sandbox is connected to it, and keeps it (with a warning) while one is, as
/// dockerd keeps its networks for running containers under live-restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultBridge {
    /// berth makes a bridge of this name and owns it: it is marked as berth's and deleted with
    /// the network. A bridge of that name that berth did not make (Docker's `docker0`, say) is
    /// never taken over: the start fails with
    /// [`berth_bridge::BridgeError::ForeignBridge`] before anything is changed on it. The
    /// default is `Create("docker0")`.
    Create(String),
    /// Use a bridge the user made, on purpose (dockerd's `-b NAME`): berth attaches the network
    /// to it, takes its first IPv4 address as gateway and subnet when [`Config::bip`] is not
    /// given, and never marks, reconfigures or deletes it (only an address berth added is taken
    /// off again). The start fails with [`berth_bridge::BridgeError::ExistingBridgeMissing`]
    /// when it does not exist.
    Existing(String),
    /// No predefined `bridge` network at all (`dockerd -b none`); sandboxes created without a
    /// network have none.
    None,
}

impl DefaultBridge {
    /// The bridge's name (None for [`DefaultBridge::None`]).
    pub fn name(&self) -> Option<&str> {
        match self {
            DefaultBridge::Create(name) | DefaultBridge::Existing(name) => Some(name),
            DefaultBridge::None => None,
        }
    }
}

impl Default for DefaultBridge {
    /// `Create("docker0")`, as dockerd.
    fn default() -> Self {
        DefaultBridge::Create("docker0".into())
    }
}

//! The data drivers receive and report.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::BorrowedFd;
use std::path::Path;

use berth_types::{MacAddr, Protocol, mac_serde};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::ids::{EndpointId, NetworkId, SandboxId};
use crate::options::RawOptions;

/// Where a driver's networks exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// On this host only (bridge, macvlan, null, host).
    Local,
    /// Across the hosts sharing a cluster store (overlay).
    Global,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Local => "local",
            Scope::Global => "global",
        })
    }
}

/// What a network's endpoints give a sandbox: the controller's decisions follow it (addresses,
/// routes, which sandboxes may join, what they may join besides), never the driver's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPath {
    /// The driver puts an interface into the sandbox (bridge, macvlan, overlay, ...): the
    /// controller allocates its addresses from the network's pools and points the sandbox's
    /// default route at its gateway.
    Interfaces,
    /// No interface at all (`none`): the sandbox keeps only its loopback, and joins no other
    /// network.
    Isolated,
    /// The sandbox is the host's own namespace (`host`): only sandboxes made in the host's
    /// namespace join, and they join nothing else.
    HostNamespace,
}

/// How a sandbox on a driver's networks reaches beyond them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Egress {
    /// Through the gateway its join reports (bridge): the sandbox's default route may point at
    /// it.
    Gateway,
    /// Its networks give no way out of their own (Docker's overlay): while a sandbox is on one
    /// of them (not `--internal`) and on no network that gives it a gateway, the controller also
    /// connects it to the local `docker_gwbridge` network, made on demand, for its default route.
    GatewayBridge,
    /// None: its endpoints never carry a sandbox's default route.
    Isolated,
}

/// What a driver can do. Built with [`Capabilities::new`] and the setters (the struct grows
/// as the controller learns to ask more, so it cannot be written as a literal outside this
/// crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Where the driver's network definitions live.
    pub scope: Scope,
    /// What its endpoints give a sandbox.
    pub data_path: DataPath,
    /// Whether users may create networks of it (false for the built-in `host` and `none`,
    /// which exist once, made by the controller).
    pub user_creatable: bool,
    /// Whether ports can be published on its endpoints (see
    /// [`crate::NetworkDriver::program_external_connectivity`]); a `-p` on a network whose
    /// driver cannot is refused before anything is made.
    pub publishes_ports: bool,
    /// Whether ports published on its endpoints are accepted and have no effect, as Docker's
    /// macvlan and ipvlan drivers do (their sandboxes have addresses of their own on the LAN,
    /// where their ports are reachable as they are): the controller logs Docker's warning
    /// "DRIVER driver does not support port mappings" and publishes nothing. Without it, a `-p`
    /// on a driver that does not publish ports is refused.
    pub ignores_ports: bool,
    /// Whether sandboxes on its user-defined networks get the embedded DNS server (names of the
    /// other sandboxes on the network, aliases, 127.0.0.11 in resolv.conf).
    pub embedded_dns: bool,
    /// How its sandboxes reach beyond its networks.
    pub egress: Egress,
}

impl Capabilities {
    /// A local-scope driver with this data path, creatable by users, that publishes no ports
    /// and whose user-defined networks get the embedded DNS server when they have interfaces.
    pub fn new(data_path: DataPath) -> Capabilities {
        Capabilities {
            scope: Scope::Local,
            data_path,
            user_creatable: true,
            publishes_ports: false,
            ignores_ports: false,
            embedded_dns: data_path == DataPath::Interfaces,
            egress: match data_path {
                DataPath::Interfaces => Egress::Gateway,
                DataPath::Isolated | DataPath::HostNamespace => Egress::Isolated,
            },
        }
    }

    /// With this way out (see [`Egress`]).
    pub fn egress(mut self, egress: Egress) -> Capabilities {
        self.egress = egress;
        self
    }

    /// With this scope.
    pub fn scope(mut self, scope: Scope) -> Capabilities {
        self.scope = scope;
        self
    }

    /// Whether users may create networks of the driver.
    pub fn user_creatable(mut self, yes: bool) -> Capabilities {
        self.user_creatable = yes;
        self
    }

    /// Whether ports can be published on its endpoints.
    pub fn publishes_ports(mut self, yes: bool) -> Capabilities {
        self.publishes_ports = yes;
        self
    }

    /// Whether ports published on its endpoints are accepted and ignored (see the field).
    pub fn ignores_ports(mut self, yes: bool) -> Capabilities {
        self.ignores_ports = yes;
        self
    }

    /// Whether its user-defined networks get the embedded DNS server.
    pub fn embedded_dns(mut self, yes: bool) -> Capabilities {
        self.embedded_dns = yes;
        self
    }

    /// Whether endpoints get interfaces in the sandbox ([`DataPath::Interfaces`]).
    pub fn creates_interfaces(&self) -> bool {
        self.data_path == DataPath::Interfaces
    }
}

/// What the host's packet filter must let through for a network whose traffic passes through
/// the host's namespace (see [`crate::NetworkDriver::host_policy`]): the same policy berth gives
/// its bridge networks, on the driver's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostPolicy {
    /// The host interface the network's traffic enters and leaves the host by (a bridge).
    pub interface: String,
    /// The network's IPv4 subnet.
    pub subnet_v4: Option<Ipv4Net>,
    /// The network's IPv6 subnet.
    pub subnet_v6: Option<Ipv6Net>,
    /// Traffic between the network's endpoints through the interface is allowed.
    pub icc: bool,
    /// No traffic leaves or enters the network (`--internal`).
    pub internal: bool,
    /// Outbound traffic is masqueraded.
    pub masquerade: bool,
}

impl HostPolicy {
    /// Forwarding in and out of `interface` for the network's subnets, inter-endpoint traffic
    /// allowed, masqueraded outbound, not internal.
    pub fn new(
        interface: impl Into<String>,
        subnet_v4: Option<Ipv4Net>,
        subnet_v6: Option<Ipv6Net>,
    ) -> HostPolicy {
        HostPolicy {
            interface: interface.into(),
            subnet_v4,
            subnet_v6,
            icc: true,
            internal: false,
            masquerade: true,
        }
    }

    /// With inter-endpoint traffic allowed or not.
    pub fn icc(mut self, yes: bool) -> HostPolicy {
        self.icc = yes;
        self
    }

    /// Internal or not.
    pub fn internal(mut self, yes: bool) -> HostPolicy {
        self.internal = yes;
        self
    }

    /// Masqueraded or not.
    pub fn masquerade(mut self, yes: bool) -> HostPolicy {
        self.masquerade = yes;
        self
    }
}

/// One address pool IPAM gave a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamInfo {
    /// The subnet.
    pub pool: IpNet,
    /// The gateway address with the pool's prefix length (None with `inhibit_ipv4`-like setups).
    pub gateway: Option<IpNet>,
    /// Auxiliary addresses reserved in the pool, by name.
    pub aux_addresses: BTreeMap<String, IpAddr>,
}

/// What the controller asks a driver to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// The network's id.
    pub id: NetworkId,
    /// The network's name (for messages).
    pub name: String,
    /// IPv4 pools.
    pub ipv4: Vec<IpamInfo>,
    /// IPv6 pools (empty unless IPv6 is enabled).
    pub ipv6: Vec<IpamInfo>,
    /// `--internal`: no traffic leaves or enters the network's subnets.
    pub internal: bool,
    /// `--ipv6`.
    pub enable_ipv6: bool,
}

/// Docker's MAC derivation for bridge endpoints: `02:42` followed by the four bytes of the IPv4
/// address (172.17.0.2 gives 02:42:ac:11:00:02). Deterministic, so when an address is reused by
/// another endpoint the neighbours' ARP caches stay right without a gratuitous ARP.
pub fn mac_from_ipv4(ip: Ipv4Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr([0x02, 0x42, o[0], o[1], o[2], o[3]])
}

/// A locally administered unicast MAC address from 6 random bytes (the caller supplies them).
pub fn local_mac_from_bytes(mut bytes: [u8; 6]) -> MacAddr {
    bytes[0] = (bytes[0] & 0xfe) | 0x02;
    MacAddr(bytes)
}

/// What the controller asks a driver to create for an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    /// The network the endpoint is on.
    pub network: NetworkId,
    /// The endpoint's id.
    pub endpoint: EndpointId,
    /// The IPv4 address IPAM gave it, with the subnet's prefix length.
    pub ipv4: Option<Ipv4Net>,
    /// The IPv6 address IPAM gave it, with the subnet's prefix length.
    pub ipv6: Option<Ipv6Net>,
    /// A MAC address the user asked for.
    pub mac: Option<MacAddr>,
    /// The endpoint's driver options (`docker network connect --driver-opt`, the API's
    /// `EndpointSettings.DriverOpts`), as given: the driver reads what it knows (an
    /// [`crate::OptionReader`]) and refuses the rest. Handed again after a restart.
    pub options: RawOptions,
}

/// A hole a legacy link (`--link`) opens where a network isolates its endpoints from each other
/// (Docker's `enable_icc=false`): the parent (the endpoint that links) may open connections to
/// these ports of the child (the linked endpoint), and the child answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkHole {
    /// The linking endpoint's address.
    pub parent: IpAddr,
    /// The linked endpoint's address (same family).
    pub child: IpAddr,
    /// The child's exposed ports.
    pub ports: Vec<(Protocol, u16)>,
}

/// The interface facts a driver reports for an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceInfo {
    /// The MAC address the sandbox interface gets.
    #[serde(with = "mac_serde")]
    pub mac: Option<MacAddr>,
    /// IPv4 address with prefix.
    pub ipv4: Option<Ipv4Net>,
    /// IPv6 address with prefix.
    pub ipv6: Option<Ipv6Net>,
}

/// Operational facts about an endpoint, for inspect output.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EndpointOperInfo {
    /// The host-side interface name, if any (the bridge's veth end).
    pub host_interface: Option<String>,
    /// Driver-specific facts as key/value strings, for display only.
    pub extra: BTreeMap<String, String>,
}

/// A sandbox's network namespace as a driver is given it: its path and, usually, a descriptor
/// the caller holds open on it for the duration of the call. A driver that does kernel work in
/// the sandbox opens its own handle from these (berth-netlink: `Netns::from_fd_or_path`); a
/// driver that keeps it beyond the call duplicates the descriptor, never keeps the borrow.
#[derive(Debug, Clone, Copy)]
pub struct NetnsRef<'a> {
    /// The namespace's path: a bind mount (`/run/netns/NAME`, berth's exec root) or
    /// `/proc/PID/ns/net`.
    pub path: &'a Path,
    /// An open descriptor on the namespace. Prefer it to the path: no lookup, and it stays
    /// right even if something else is mounted on the path since.
    pub fd: Option<BorrowedFd<'a>>,
}

/// The sandbox an endpoint joins.
#[derive(Debug, Clone, Copy)]
pub struct SandboxRef<'a> {
    /// The sandbox's id.
    pub id: &'a SandboxId,
    /// Its network namespace.
    pub netns: NetnsRef<'a>,
}

impl std::fmt::Display for SandboxRef<'_> {
    /// `the network namespace of sandbox <short id> (<path>)`, for a driver's errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the network namespace of sandbox {} ({})",
            self.id.short(),
            self.netns.path.display()
        )
    }
}

/// A join request: put the endpoint's interface into the sandbox.
#[derive(Debug, Clone, Copy)]
pub struct JoinRequest<'a> {
    /// The network.
    pub network: &'a NetworkId,
    /// The endpoint.
    pub endpoint: &'a EndpointId,
    /// The sandbox.
    pub sandbox: SandboxRef<'a>,
    /// The interface name the endpoint gets inside the sandbox (`eth0`, `eth1`, ...).
    pub ifname: &'a str,
}

/// A route the driver wants in the sandbox besides the default route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticRoute {
    /// Destination.
    pub destination: IpNet,
    /// Next hop (None: on-link through the endpoint's interface).
    pub next_hop: Option<IpAddr>,
}

/// What a driver reports after a join.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JoinInfo {
    /// The interface name in the sandbox.
    pub ifname: String,
    /// The IPv4 gateway this endpoint offers for the sandbox's default route.
    pub gateway_v4: Option<Ipv4Addr>,
    /// The IPv6 gateway this endpoint offers.
    pub gateway_v6: Option<Ipv6Addr>,
    /// Extra routes (added by the driver already).
    pub static_routes: Vec<StaticRoute>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_derivation() {
        let mac = mac_from_ipv4(Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(mac.to_string(), "02:42:ac:11:00:02");
        let local = local_mac_from_bytes([0xff; 6]);
        assert_eq!(local.0[0] & 0x03, 0x02, "locally administered unicast");
        let info = InterfaceInfo {
            mac: Some(mac),
            ipv4: None,
            ipv6: None,
        };
        let json = serde_json::to_string(&info).unwrap();
        assert!(json.contains("\"02:42:ac:11:00:02\""), "{json}");
        assert_eq!(serde_json::from_str::<InterfaceInfo>(&json).unwrap(), info);
    }
}

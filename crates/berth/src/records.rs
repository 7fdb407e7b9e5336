//! What the controller persists, one store key per object: `network/<id>`, `endpoint/<id>`,
//! `sandbox/<id>`, plus name claims `network-name/<name>` and `sandbox-name/<name>` that make names
//! unique under concurrency (a compare-and-swap on the claim).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use berth_driver::{EndpointId, MacAddr, NetworkId, RawOptions, SandboxId, Scope, mac_serde};
use berth_firewall::LinkPort;
use berth_portmap::{ExposedPort, PortBinding, PortSpec};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

pub(crate) fn network_key(id: &NetworkId) -> String {
    format!("network/{id}")
}
pub(crate) fn network_name_key(name: &str) -> String {
    format!("network-name/{name}")
}
pub(crate) fn endpoint_key(id: &EndpointId) -> String {
    format!("endpoint/{id}")
}
pub(crate) fn sandbox_key(id: &SandboxId) -> String {
    format!("sandbox/{id}")
}
pub(crate) fn sandbox_name_key(name: &str) -> String {
    format!("sandbox-name/{name}")
}
/// In the cluster store: endpoint `endpoint` of this instance is on global network `network`
/// (the value is the instance id). A global network with any is not removed, from any host.
pub(crate) fn network_endpoint_key(network: &NetworkId, endpoint: &EndpointId) -> String {
    format!("network-endpoint/{network}/{endpoint}")
}
/// The prefix of the names of global networks' endpoints ([`network_dns_key`]).
pub(crate) const NETWORK_DNS_PREFIX: &str = "network-dns/";

/// Where a global network's endpoint's names are kept for the other hosts' embedded DNS.
pub(crate) fn network_dns_key(network: &NetworkId, endpoint: &EndpointId) -> String {
    format!("{NETWORK_DNS_PREFIX}{network}/{endpoint}")
}

/// The names a sandbox answers to on a global network, for the other hosts (the value of a
/// [`network_dns_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EndpointNames {
    /// The instance (host) the endpoint is on.
    pub(crate) instance: String,
    /// The sandbox's name.
    pub(crate) name: String,
    /// Its aliases on the network (the user's, the short sandbox id, the hostname).
    pub(crate) aliases: Vec<String>,
    /// Its addresses.
    pub(crate) ipv4: Option<std::net::Ipv4Addr>,
    pub(crate) ipv6: Option<std::net::Ipv6Addr>,
}

/// The prefix of [`network_endpoint_key`]s of one network.
pub(crate) fn network_endpoints_prefix(network: &NetworkId) -> String {
    format!("network-endpoint/{network}/")
}
/// In the cluster store: a removal of the global network holds it; a connect on any host checks
/// it is absent (so a connect and a removal on two hosts never both succeed).
pub(crate) fn network_removal_key(network: &NetworkId) -> String {
    format!("network-removal/{network}")
}
/// Where an unreadable record is moved on start, so that it stops blocking start-up and stays
/// for an operator to inspect.
pub(crate) fn quarantine_key(key: &str) -> String {
    format!("quarantine/{key}")
}
/// Which kinds of forwarding berth switched on in the host namespace (so the forward drop
/// policy that goes with it survives restarts).
pub(crate) const FORWARDING_KEY: &str = "meta/forwarding";
/// This state's instance id: the mark on every kernel object berth makes from it.
pub(crate) const INSTANCE_KEY: &str = "meta/instance";

/// What berth switched on in the host namespace, kept under [`FORWARDING_KEY`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ForwardingRecord {
    /// berth set `net.ipv4.ip_forward` to 1 (it was 0).
    pub ipv4: bool,
    /// berth set `net.ipv6.conf.all.forwarding` to 1 (it was 0).
    pub ipv6: bool,
}

/// One IPAM configuration entry of a network, as requested and as allocated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PoolRecord {
    /// The allocated subnet.
    pub subnet: IpNet,
    /// `--ip-range`.
    pub ip_range: Option<IpNet>,
    /// The gateway address with the subnet's prefix.
    pub gateway: Option<IpNet>,
    /// `--aux-address`.
    pub aux_addresses: BTreeMap<String, IpAddr>,
    /// Whether the user gave the subnet (inspect shows the config as given).
    pub user_subnet: bool,
    /// Whether the user gave the gateway.
    pub user_gateway: bool,
    /// The subnet as the user wrote it, when it had host bits (`10.60.0.5/24`): inspect shows
    /// it so, as Docker does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given: Option<IpNet>,
    /// The IPAM driver's id of the pool (given back as it is by a restart when the driver keeps
    /// its own state; absent in records written before IPAM drivers were per network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_id: Option<String>,
}

/// A network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NetworkRecord {
    pub id: NetworkId,
    pub name: String,
    pub driver: String,
    pub created: String,
    pub internal: bool,
    pub attachable: bool,
    pub enable_ipv6: bool,
    pub options: RawOptions,
    pub labels: BTreeMap<String, String>,
    pub pools_v4: Vec<PoolRecord>,
    pub pools_v6: Vec<PoolRecord>,
    /// A removal was asked for and may not have finished: a restart finishes it.
    #[serde(default)]
    pub removing: bool,
    /// Global networks live in the cluster store and exist on every host sharing it.
    #[serde(default = "local_scope")]
    pub scope: Scope,
    /// The IPAM driver (`--ipam-driver`).
    #[serde(default = "default_ipam", skip_serializing_if = "is_default_ipam")]
    pub ipam_driver: String,
    /// The IPAM driver's options (`--ipam-opt`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ipam_options: RawOptions,
}

fn local_scope() -> Scope {
    Scope::Local
}

fn default_ipam() -> String {
    "default".to_owned()
}

fn is_default_ipam(name: &str) -> bool {
    name == "default"
}

/// Where a connect stands: written as `Pending` before the kernel is touched, `Active` after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum EndpointState {
    Pending,
    Active,
    /// A disconnect was asked for and may not have finished: it is finished, never restored.
    Removing,
}

/// An endpoint: one sandbox on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EndpointRecord {
    pub id: EndpointId,
    pub network: NetworkId,
    pub sandbox: SandboxId,
    pub ifname: Option<String>,
    pub ipv4: Option<Ipv4Net>,
    pub ipv6: Option<Ipv6Net>,
    #[serde(with = "mac_serde")]
    pub mac: Option<MacAddr>,
    pub aliases: Vec<String>,
    pub links: Vec<(String, String)>,
    pub user_ipv4: bool,
    pub user_ipv6: bool,
    /// Published ports, with the host ports chosen.
    #[serde(default)]
    pub ports: Vec<PortBinding>,
    /// Exposed ports (metadata).
    #[serde(default)]
    pub exposed: Vec<ExposedPort>,
    /// Legacy links of this endpoint (default bridge only), resolved at connect.
    #[serde(default)]
    pub legacy_links: Vec<LegacyLink>,
    /// The endpoint's driver options (`--driver-opt`), handed to the driver again on restore.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: RawOptions,
    pub state: EndpointState,
    /// The controller made it: the sandbox's way out on the gateway bridge (it goes when the
    /// sandbox no longer needs it; one the user connected stays).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub for_egress: bool,
    /// The ports asked for at connect (`-p`, and `-P`'s exposed ports), as written. On a
    /// network whose driver publishes none and leaves the way out to the gateway bridge (the
    /// overlay), the sandbox's gateway bridge endpoint publishes them, as in Docker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requested_ports: Vec<PortSpec>,
}

impl EndpointRecord {
    /// What its driver is told of it (at connect, and again on every restore).
    pub(crate) fn spec(&self) -> berth_driver::EndpointSpec {
        berth_driver::EndpointSpec {
            network: self.network.clone(),
            endpoint: self.id.clone(),
            ipv4: self.ipv4,
            ipv6: self.ipv6,
            mac: self.mac,
            options: self.driver_opts.clone(),
        }
    }

    /// Its addresses (IPv4 first).
    pub(crate) fn addresses(&self) -> Vec<IpAddr> {
        self.ipv4
            .map(|a| IpAddr::V4(a.addr()))
            .into_iter()
            .chain(self.ipv6.map(|a| IpAddr::V6(a.addr())))
            .collect()
    }
}

/// A sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SandboxRecord {
    pub id: SandboxId,
    pub name: String,
    pub created: String,
    /// The namespace's path.
    pub netns: PathBuf,
    /// berth created the namespace (and deletes it with the sandbox).
    pub owned: bool,
    /// The sandbox lives in the host namespace (`--network host`).
    pub host_mode: bool,
    pub hostname: Option<String>,
    /// `--domainname`.
    #[serde(default)]
    pub domainname: Option<String>,
    /// `--dns`.
    #[serde(default)]
    pub dns_servers: Vec<IpAddr>,
    /// `--dns-search`.
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// `--add-host` entries as (names, address).
    #[serde(default)]
    pub extra_hosts: Vec<(String, IpAddr)>,
    /// A removal was asked for and may not have finished: a restart finishes it.
    #[serde(default)]
    pub removing: bool,
    /// The environment of its processes (`KEY=VALUE`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
}

/// A legacy link (`--link name:alias` on the default bridge), resolved when the linking sandbox
/// connected: what its `/etc/hosts`, its link environment and the icc-off firewall rules need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LegacyLink {
    /// The linked sandbox's name when the link was made.
    pub name: String,
    /// The alias.
    pub alias: String,
    /// The linked sandbox.
    pub child: SandboxId,
    /// Its hostname.
    pub hostname: String,
    /// Its address on the network.
    pub addr: IpAddr,
    /// Its exposed ports (exposed and published container ports), one per port.
    pub ports: Vec<LinkPort>,
}

/// Decodes a stored value the way start-up does for its key's prefix (`network/`, `sandbox/`,
/// `endpoint/`, `meta/`; and, from the cluster store, the names of a global network's endpoint
/// under `network-dns/`, as the names watch reads them) and, when it decodes, checks that it
/// encodes back to a value that decodes to the same record. Returns whether it decoded; any
/// other key decodes nothing. For the `stored_records` and `cluster_names` fuzz targets; not
/// part of berth's API.
#[doc(hidden)]
pub fn check_stored_record(key: &str, bytes: &[u8]) -> bool {
    fn round_trip<T>(bytes: &[u8]) -> bool
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let Ok(first) = serde_json::from_slice::<T>(bytes) else {
            return false;
        };
        let again: T = serde_json::to_vec(&first)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| panic!("a decoded record does not encode back: {first:?}"));
        assert_eq!(first, again, "a record changes in a round trip");
        true
    }
    match key.split('/').next().unwrap_or_default() {
        "network" => round_trip::<NetworkRecord>(bytes),
        "sandbox" => round_trip::<SandboxRecord>(bytes),
        "endpoint" => round_trip::<EndpointRecord>(bytes),
        "meta" => round_trip::<ForwardingRecord>(bytes),
        "network-dns" => round_trip::<EndpointNames>(bytes),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn endpoint_names_are_checked_under_network_dns() {
        let names = EndpointNames {
            instance: "0123456789abcdef".into(),
            name: "web".into(),
            aliases: vec!["web".into(), "3f2a1b4c5d6e".into()],
            ipv4: Some("10.0.1.2".parse().unwrap()),
            ipv6: None,
        };
        let bytes = serde_json::to_vec(&names).unwrap();
        let net = NetworkId::from_bytes([1; 32]);
        let ep = EndpointId::from_bytes([2; 32]);
        assert!(check_stored_record(&network_dns_key(&net, &ep), &bytes));
        assert!(!check_stored_record(
            &network_dns_key(&net, &ep),
            b"{\"name\":1}"
        ));
        // Other prefixes keep their own records: names are not a network, and a key of no
        // known prefix decodes nothing.
        assert!(!check_stored_record(&network_key(&net), &bytes));
        assert!(!check_stored_record("network-endpoint/x/y", &bytes));
        let fwd = serde_json::to_vec(&ForwardingRecord::default()).unwrap();
        assert!(check_stored_record(FORWARDING_KEY, &fwd));
    }
}

//! Inspect values that serialise to the shapes of `docker network inspect` and of the network part
//! of `docker inspect`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One network, as `docker network inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInspect {
    /// Name.
    pub name: String,
    /// 64-hex id.
    pub id: String,
    /// Creation time, RFC 3339 with nanoseconds.
    pub created: String,
    /// `local` or `global`.
    pub scope: String,
    /// Driver name.
    pub driver: String,
    /// IPv6 enabled.
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// Address management.
    #[serde(rename = "IPAM")]
    pub ipam: IpamInspect,
    /// `--internal`.
    pub internal: bool,
    /// `--attachable`.
    pub attachable: bool,
    /// Always false (no swarm ingress).
    pub ingress: bool,
    /// Always empty (no config-from networks).
    pub config_from: ConfigFrom,
    /// Always false.
    pub config_only: bool,
    /// Connected sandboxes by sandbox id.
    pub containers: BTreeMap<String, ContainerInspect>,
    /// Driver options as given.
    pub options: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// `IPAM` of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamInspect {
    /// Always `default`.
    pub driver: String,
    /// IPAM options (`--ipam-opt`); `None` (JSON `null`) for the predefined networks, as in
    /// Docker.
    pub options: Option<BTreeMap<String, String>>,
    /// One entry per subnet.
    pub config: Vec<IpamConfigInspect>,
}

/// One subnet of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfigInspect {
    /// The subnet.
    pub subnet: String,
    /// `--ip-range`.
    #[serde(rename = "IPRange", skip_serializing_if = "Option::is_none", default)]
    pub ip_range: Option<String>,
    /// The gateway address (no prefix).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gateway: Option<String>,
    /// `--aux-address`.
    #[serde(
        rename = "AuxiliaryAddresses",
        skip_serializing_if = "BTreeMap::is_empty",
        default
    )]
    pub aux_addresses: BTreeMap<String, String>,
}

/// `ConfigFrom` (always empty).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigFrom {
    /// Empty.
    pub network: String,
}

/// One connected sandbox in a network's inspect output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    /// The sandbox's name.
    pub name: String,
    /// The endpoint id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The interface's MAC address (empty if none).
    pub mac_address: String,
    /// `a.b.c.d/len` or empty.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// `addr/len` or empty.
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// A sandbox, shaped like the network part of `docker inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SandboxInspect {
    /// Name.
    pub name: String,
    /// 64-hex id.
    pub id: String,
    /// Creation time.
    pub created: String,
    /// The namespace path.
    pub sandbox_key: String,
    /// The sandbox's `/etc/hosts` (absent in host mode).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hosts_path: Option<String>,
    /// The sandbox's `/etc/resolv.conf` (absent in host mode).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resolv_conf_path: Option<String>,
    /// Networks by network name.
    pub networks: BTreeMap<String, SandboxNetworkInspect>,
    /// Published ports: "80/tcp" to bindings.
    pub ports: BTreeMap<String, Vec<PortBindingInspect>>,
    /// The environment of its processes given at create (`KEY=VALUE`: `--env` and the client's
    /// proxy settings); `[]` when it has none.
    #[serde(default)]
    pub env: Vec<String>,
    /// The environment of its legacy links (berth's addition: what an engine puts into the
    /// sandbox's processes, see [`crate::Controller::link_env`]); absent when it has none.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub link_env: Vec<String>,
    /// Why the sandbox is degraded (berth's addition): what a start could not restore of it
    /// (its namespace, an endpoint's join, an endpoint's published ports), kept and retried by
    /// [`crate::Controller::retry_degraded`]. Absent when it is whole.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub degraded: Vec<String>,
}

/// One network of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SandboxNetworkInspect {
    /// The network id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// IPv4 address (no prefix) or empty.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// IPv4 prefix length (0 if none).
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    /// The IPv4 gateway or empty.
    pub gateway: String,
    /// IPv6 address (no prefix) or empty.
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
    /// IPv6 prefix length (0 if none).
    #[serde(rename = "IPv6PrefixLen")]
    pub ipv6_prefix_len: u8,
    /// The IPv6 gateway or empty.
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    /// MAC address or empty.
    pub mac_address: String,
    /// Network-scoped aliases.
    pub aliases: Vec<String>,
    /// `--link`s made on this network, as `name:alias`.
    #[serde(default)]
    pub links: Vec<String>,
    /// The interface name inside the sandbox.
    pub interface: String,
}

/// One host binding of a published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBindingInspect {
    /// Host address.
    pub host_ip: String,
    /// Host port.
    pub host_port: String,
}

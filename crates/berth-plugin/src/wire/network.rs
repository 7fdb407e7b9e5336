//! The remote network driver API (`/NetworkDriver.*`, libnetwork's `drivers/remote/api`): the
//! request and answer bodies, and the typed readers of the answers.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use berth_driver::{IpamInfo, MacAddr, Scope};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Answer, AnswerError, nil_if_empty};

/// The key of the user's network options (`-o k=v`, as strings) in `CreateNetwork`'s options.
pub const GENERIC_OPTION: &str = "com.docker.network.generic";
/// The key of the network's `--ipv6` (a boolean) in `CreateNetwork`'s options.
pub const ENABLE_IPV6_OPTION: &str = "com.docker.network.enable_ipv6";
/// The key of `--internal` (`true`, present only for internal networks) in `CreateNetwork`'s
/// options.
pub const INTERNAL_OPTION: &str = "com.docker.network.internal";
/// The `RouteType` of a static route through a next hop (libnetwork's `NEXTHOP`).
pub const ROUTE_NEXT_HOP: i64 = 0;
/// The `RouteType` of a static route on the interface's link (libnetwork's `CONNECTED`).
pub const ROUTE_CONNECTED: i64 = 1;
/// The `DiscoveryType` of node discovery (the only kind dockerd sends to plugins).
pub const NODE_DISCOVERY: i64 = 1;

/// The answer of `/NetworkDriver.GetCapabilities`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct GetCapabilitiesResponse {
    /// The plugin's error, if any.
    pub err: String,
    /// Where its networks' definitions live: `local` or `global`.
    pub scope: String,
    /// Where its networks reach: `local` or `global`; empty means as `Scope`.
    pub connectivity_scope: String,
    /// Whether it answers `GwAllocCheck` (newer dockerd; berth does not call it).
    pub gw_alloc_checker: bool,
}

impl Answer for GetCapabilitiesResponse {
    fn error_message(&self) -> &str {
        &self.err
    }
}

/// A network driver plugin's capabilities, read from its [`GetCapabilitiesResponse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverCapabilities {
    /// Where its networks' definitions live.
    pub scope: Scope,
    /// Where its networks reach.
    pub connectivity_scope: Scope,
    /// Whether it answers `GwAllocCheck`.
    pub gw_alloc_checker: bool,
}

fn scope(field: &str, value: &str) -> Result<Scope, AnswerError> {
    match value {
        "local" => Ok(Scope::Local),
        "global" => Ok(Scope::Global),
        _ => Err(AnswerError::new(
            field,
            value,
            "expecting 'local' or 'global'",
        )),
    }
}

impl GetCapabilitiesResponse {
    /// The capabilities, as dockerd reads them: `Scope` must be `local` or `global`;
    /// `ConnectivityScope` too, or empty for the same as `Scope`.
    pub fn parse(&self) -> Result<DriverCapabilities, AnswerError> {
        let data = scope("Scope", &self.scope)?;
        let connectivity = if self.connectivity_scope.is_empty() {
            data
        } else {
            scope("ConnectivityScope", &self.connectivity_scope)?
        };
        Ok(DriverCapabilities {
            scope: data,
            connectivity_scope: connectivity,
            gw_alloc_checker: self.gw_alloc_checker,
        })
    }
}

/// One pool of a network, as `CreateNetwork` and `AllocateNetwork` carry it (libnetwork's
/// `IPAMData` in its JSON form: CIDR strings, the gateway and auxiliary addresses with the
/// pool's prefix length; absent fields omitted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct IpamData {
    /// The address space the pool came from (`LocalDefault`, or the IPAM plugin's).
    pub address_space: String,
    /// The subnet (`10.0.0.0/24`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pool: String,
    /// The gateway with the pool's prefix length (`10.0.0.1/24`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// Reserved addresses by name, with the pool's prefix length.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, String>,
}

impl IpamData {
    /// The wire form of one of berth's pools, in `address_space`.
    pub fn from_info(address_space: &str, info: &IpamInfo) -> IpamData {
        let prefix = info.pool.prefix_len();
        IpamData {
            address_space: address_space.to_owned(),
            pool: info.pool.to_string(),
            gateway: info.gateway.map(|g| g.to_string()).unwrap_or_default(),
            aux_addresses: info
                .aux_addresses
                .iter()
                .map(|(name, addr)| (name.clone(), format!("{addr}/{prefix}")))
                .collect(),
        }
    }
}

/// The body of `/NetworkDriver.CreateNetwork`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct CreateNetworkRequest {
    /// The network's id (64 hex digits), for the plugin to keep.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Free-form options: see [`network_options`].
    pub options: BTreeMap<String, Value>,
    /// The IPv4 pools.
    #[serde(rename = "IPv4Data", serialize_with = "nil_if_empty")]
    pub ipv4_data: Vec<IpamData>,
    /// The IPv6 pools (`null` when there are none, as dockerd sends it).
    #[serde(rename = "IPv6Data", serialize_with = "nil_if_empty")]
    pub ipv6_data: Vec<IpamData>,
}

/// `CreateNetwork`'s options as dockerd fills them: the user's options (`-o`) under
/// [`GENERIC_OPTION`], `--ipv6` under [`ENABLE_IPV6_OPTION`], and [`INTERNAL_OPTION`] for an
/// internal network.
pub fn network_options(
    generic: &BTreeMap<String, String>,
    enable_ipv6: bool,
    internal: bool,
) -> BTreeMap<String, Value> {
    let mut options = BTreeMap::new();
    let generic: serde_json::Map<String, Value> = generic
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    options.insert(GENERIC_OPTION.to_owned(), Value::Object(generic));
    options.insert(ENABLE_IPV6_OPTION.to_owned(), Value::Bool(enable_ipv6));
    if internal {
        options.insert(INTERNAL_OPTION.to_owned(), Value::Bool(true));
    }
    options
}

/// The answer of `/NetworkDriver.CreateNetwork`.
pub type CreateNetworkResponse = super::Ack;

/// The body of `/NetworkDriver.DeleteNetwork`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeleteNetworkRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// The answer of `/NetworkDriver.DeleteNetwork`.
pub type DeleteNetworkResponse = super::Ack;

/// The body of `/NetworkDriver.AllocateNetwork`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocateNetworkRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The network's options, as strings.
    pub options: BTreeMap<String, String>,
    /// The IPv4 pools.
    #[serde(rename = "IPv4Data", serialize_with = "nil_if_empty")]
    pub ipv4_data: Vec<IpamData>,
    /// The IPv6 pools.
    #[serde(rename = "IPv6Data", serialize_with = "nil_if_empty")]
    pub ipv6_data: Vec<IpamData>,
}

/// The answer of `/NetworkDriver.AllocateNetwork`: options to store with the network, handed
/// to every host's `CreateNetwork`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocateNetworkResponse {
    /// The plugin's error, if any.
    pub err: String,
    /// The options it allocated.
    pub options: BTreeMap<String, String>,
}

impl Answer for AllocateNetworkResponse {
    fn error_message(&self) -> &str {
        &self.err
    }
}

/// The body of `/NetworkDriver.FreeNetwork`.
pub type FreeNetworkRequest = DeleteNetworkRequest;

/// The answer of `/NetworkDriver.FreeNetwork`.
pub type FreeNetworkResponse = super::Ack;

/// An endpoint's interface facts, as strings: asked for in `CreateEndpoint` (what IPAM gave),
/// and answered by a plugin that fills in what was not given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct EndpointInterface {
    /// The IPv4 address with its prefix length (`10.0.0.2/24`), or empty.
    pub address: String,
    /// The IPv6 address with its prefix length, or empty.
    #[serde(rename = "AddressIPv6")]
    pub address_ipv6: String,
    /// The MAC address (`02:42:0a:00:00:02`), or empty.
    pub mac_address: String,
}

/// Interface facts read from an [`EndpointInterface`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InterfaceFacts {
    /// The IPv4 address with its prefix length.
    pub ipv4: Option<Ipv4Net>,
    /// The IPv6 address with its prefix length.
    pub ipv6: Option<Ipv6Net>,
    /// The MAC address.
    pub mac: Option<MacAddr>,
}

impl EndpointInterface {
    /// The wire form of berth's facts (empty strings for what is not known, as dockerd sends).
    pub fn from_facts(facts: &InterfaceFacts) -> EndpointInterface {
        EndpointInterface {
            address: facts.ipv4.map(|a| a.to_string()).unwrap_or_default(),
            address_ipv6: facts.ipv6.map(|a| a.to_string()).unwrap_or_default(),
            mac_address: facts.mac.map(|m| m.to_string()).unwrap_or_default(),
        }
    }

    /// The facts: each field empty, or an address with its prefix length of its family, or
    /// a MAC address.
    pub fn parse(&self, prefix: &str) -> Result<InterfaceFacts, AnswerError> {
        let field = |name: &str| format!("{prefix}{name}");
        let ipv4 = match self.address.as_str() {
            "" => None,
            a => Some(a.parse::<Ipv4Net>().map_err(|_| {
                AnswerError::new(
                    field("Address"),
                    a,
                    "not an IPv4 address with a prefix length",
                )
            })?),
        };
        let ipv6 = match self.address_ipv6.as_str() {
            "" => None,
            a => Some(a.parse::<Ipv6Net>().map_err(|_| {
                AnswerError::new(
                    field("AddressIPv6"),
                    a,
                    "not an IPv6 address with a prefix length",
                )
            })?),
        };
        let mac = match self.mac_address.as_str() {
            "" => None,
            m => {
                let mac = m
                    .parse::<MacAddr>()
                    .map_err(|_| AnswerError::new(field("MacAddress"), m, "not a MAC address"))?;
                if !mac.is_valid_unicast() {
                    return Err(AnswerError::new(
                        field("MacAddress"),
                        m,
                        "not a unicast address an interface can have",
                    ));
                }
                Some(mac)
            }
        };
        Ok(InterfaceFacts { ipv4, ipv6, mac })
    }
}

/// The body of `/NetworkDriver.CreateEndpoint`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct CreateEndpointRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// What IPAM gave (always present, empty strings for what is not known).
    pub interface: Option<EndpointInterface>,
    /// The endpoint's options (the driver options of `docker network connect --driver-opt`).
    pub options: BTreeMap<String, Value>,
}

/// The answer of `/NetworkDriver.CreateEndpoint`: an interface only with what the request left
/// empty (a plugin must not change what was given).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct CreateEndpointResponse {
    /// The plugin's error, if any.
    pub err: String,
    /// What the plugin filled in.
    pub interface: Option<EndpointInterface>,
}

impl Answer for CreateEndpointResponse {
    fn error_message(&self) -> &str {
        &self.err
    }
}

impl CreateEndpointResponse {
    /// The facts the plugin filled in (all `None` when it answered no interface).
    pub fn parse(&self) -> Result<InterfaceFacts, AnswerError> {
        match &self.interface {
            Some(i) => i.parse("Interface."),
            None => Ok(InterfaceFacts::default()),
        }
    }
}

/// The body of `/NetworkDriver.DeleteEndpoint`, `/NetworkDriver.EndpointOperInfo`,
/// `/NetworkDriver.Leave` and `/NetworkDriver.RevokeExternalConnectivity`: an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

/// The body of `/NetworkDriver.DeleteEndpoint`.
pub type DeleteEndpointRequest = EndpointRequest;
/// The answer of `/NetworkDriver.DeleteEndpoint`.
pub type DeleteEndpointResponse = super::Ack;
/// The body of `/NetworkDriver.EndpointOperInfo`.
pub type EndpointInfoRequest = EndpointRequest;
/// The body of `/NetworkDriver.Leave`.
pub type LeaveRequest = EndpointRequest;
/// The answer of `/NetworkDriver.Leave`.
pub type LeaveResponse = super::Ack;
/// The body of `/NetworkDriver.RevokeExternalConnectivity`.
pub type RevokeExternalConnectivityRequest = EndpointRequest;
/// The answer of `/NetworkDriver.RevokeExternalConnectivity`.
pub type RevokeExternalConnectivityResponse = super::Ack;

/// The answer of `/NetworkDriver.EndpointOperInfo`: free-form facts for inspect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct EndpointInfoResponse {
    /// The plugin's error, if any.
    pub err: String,
    /// The facts.
    pub value: BTreeMap<String, Value>,
}

impl Answer for EndpointInfoResponse {
    fn error_message(&self) -> &str {
        &self.err
    }
}

impl EndpointInfoResponse {
    /// The facts as strings: a string as it is, anything else as its JSON text.
    pub fn strings(&self) -> BTreeMap<String, String> {
        self.value
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect()
    }
}

/// The body of `/NetworkDriver.Join`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JoinRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The sandbox's network namespace path.
    pub sandbox_key: String,
    /// The sandbox's options.
    pub options: BTreeMap<String, Value>,
}

/// The interface a plugin made for a join: `SrcName` is its name in the host namespace, which
/// the engine moves into the sandbox; `DstPrefix` is the name prefix it asks for there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct InterfaceName {
    /// The interface's name in the host namespace.
    pub src_name: String,
    /// A full name in the sandbox (unused by dockerd).
    pub dst_name: String,
    /// The name prefix in the sandbox (`eth`).
    pub dst_prefix: String,
}

/// A route the plugin asks for in the sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct StaticRoute {
    /// The destination (`192.0.2.0/24`).
    pub destination: String,
    /// [`ROUTE_NEXT_HOP`] or [`ROUTE_CONNECTED`].
    pub route_type: i64,
    /// The next hop, for [`ROUTE_NEXT_HOP`].
    pub next_hop: String,
}

/// The answer of `/NetworkDriver.Join`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JoinResponse {
    /// The plugin's error, if any.
    pub err: String,
    /// The interface it made.
    pub interface_name: Option<InterfaceName>,
    /// The IPv4 gateway for the sandbox, or empty.
    pub gateway: String,
    /// The IPv6 gateway, or empty.
    #[serde(rename = "GatewayIPv6")]
    pub gateway_ipv6: String,
    /// Extra routes.
    pub static_routes: Vec<StaticRoute>,
    /// The sandbox needs no gateway service (no gateway bridge) for this endpoint.
    pub disable_gateway_service: bool,
}

impl Answer for JoinResponse {
    fn error_message(&self) -> &str {
        &self.err
    }
}

/// A route read from a [`StaticRoute`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteFacts {
    /// The destination (host bits zero).
    pub destination: IpNet,
    /// The next hop (same family), or `None` for a route on the interface's link.
    pub next_hop: Option<IpAddr>,
}

/// A join's answer read from a [`JoinResponse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinFacts {
    /// The interface the plugin made, in the host namespace.
    pub src_name: String,
    /// The name prefix it asks for in the sandbox.
    pub dst_prefix: String,
    /// The IPv4 gateway.
    pub gateway_v4: Option<Ipv4Addr>,
    /// The IPv6 gateway.
    pub gateway_v6: Option<Ipv6Addr>,
    /// The extra routes.
    pub routes: Vec<RouteFacts>,
    /// The sandbox needs no gateway service for this endpoint.
    pub disable_gateway_service: bool,
}

impl JoinResponse {
    /// The join's facts: an interface name that can be an interface's, gateways of their
    /// family, routes whose destination has no host bits and whose next hop (for
    /// [`ROUTE_NEXT_HOP`], when given) is of the destination's family.
    pub fn parse(&self) -> Result<JoinFacts, AnswerError> {
        let name = self.interface_name.clone().unwrap_or_default();
        if name.src_name.is_empty() {
            return Err(AnswerError::new(
                "InterfaceName.SrcName",
                "",
                "the plugin named no interface to move into the sandbox",
            ));
        }
        if berth_netlink::validate_ifname(&name.src_name).is_err() {
            return Err(AnswerError::new(
                "InterfaceName.SrcName",
                &name.src_name,
                "not an interface name (1 to 15 characters, no '/', ':' or white space)",
            ));
        }
        let gateway_v4 = match self.gateway.as_str() {
            "" => None,
            g => Some(
                g.parse::<Ipv4Addr>()
                    .map_err(|_| AnswerError::new("Gateway", g, "not an IPv4 address"))?,
            ),
        };
        let gateway_v6 = match self.gateway_ipv6.as_str() {
            "" => None,
            g => Some(
                g.parse::<Ipv6Addr>()
                    .map_err(|_| AnswerError::new("GatewayIPv6", g, "not an IPv6 address"))?,
            ),
        };
        let routes = self
            .static_routes
            .iter()
            .enumerate()
            .map(|(i, r)| r.parse(i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(JoinFacts {
            src_name: name.src_name,
            dst_prefix: name.dst_prefix,
            gateway_v4,
            gateway_v6,
            routes,
            disable_gateway_service: self.disable_gateway_service,
        })
    }
}

impl StaticRoute {
    /// The route's facts (`index` names it in errors).
    pub fn parse(&self, index: usize) -> Result<RouteFacts, AnswerError> {
        let field = |name: &str| format!("StaticRoutes[{index}].{name}");
        let destination = self.destination.parse::<IpNet>().map_err(|_| {
            AnswerError::new(field("Destination"), &self.destination, "not a subnet")
        })?;
        if destination != destination.trunc() {
            return Err(AnswerError::new(
                field("Destination"),
                &self.destination,
                format!("host bits are set (the subnet is {})", destination.trunc()),
            ));
        }
        let next_hop = match self.route_type {
            ROUTE_CONNECTED => None,
            ROUTE_NEXT_HOP if self.next_hop.is_empty() => None,
            ROUTE_NEXT_HOP => {
                let hop = self.next_hop.parse::<IpAddr>().map_err(|_| {
                    AnswerError::new(field("NextHop"), &self.next_hop, "not an IP address")
                })?;
                if hop.is_ipv4() != destination.addr().is_ipv4() {
                    return Err(AnswerError::new(
                        field("NextHop"),
                        &self.next_hop,
                        "not of the destination's family",
                    ));
                }
                Some(hop)
            }
            other => {
                return Err(AnswerError::new(
                    field("RouteType"),
                    &other.to_string(),
                    "expecting 0 (next hop) or 1 (connected)",
                ));
            }
        };
        Ok(RouteFacts {
            destination,
            next_hop,
        })
    }
}

/// The body of `/NetworkDriver.ProgramExternalConnectivity`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ProgramExternalConnectivityRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The sandbox's options: its port mappings and exposed ports (see
    /// [`super::port_options`]).
    pub options: BTreeMap<String, Value>,
}

/// The answer of `/NetworkDriver.ProgramExternalConnectivity`.
pub type ProgramExternalConnectivityResponse = super::Ack;

/// The body of `/NetworkDriver.DiscoverNew` and `/NetworkDriver.DiscoverDelete`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DiscoveryNotification {
    /// The kind of discovery ([`NODE_DISCOVERY`]).
    pub discovery_type: i64,
    /// Its data ([`NodeDiscoveryData`] for node discovery).
    pub discovery_data: Value,
}

/// The answer of `/NetworkDriver.DiscoverNew` and `/NetworkDriver.DiscoverDelete`.
pub type DiscoveryResponse = super::Ack;

/// A node that joined or left the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeDiscoveryData {
    /// The node's advertised address.
    pub address: String,
    /// The address it binds.
    pub bind_address: String,
    /// Whether the node is this host.
    #[serde(rename = "Self")]
    pub is_self: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::wire::decode;

    #[test]
    fn requests_are_written_as_dockerd_writes_them() {
        let info = IpamInfo {
            pool: "10.0.0.0/24".parse().unwrap(),
            gateway: Some("10.0.0.1/24".parse().unwrap()),
            aux_addresses: [("router".to_owned(), "10.0.0.5".parse().unwrap())].into(),
        };
        let req = CreateNetworkRequest {
            network_id: "n1".into(),
            options: network_options(&[("mtu".into(), "1400".into())].into(), false, true),
            ipv4_data: vec![IpamData::from_info("LocalDefault", &info)],
            ipv6_data: vec![],
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            concat!(
                r#"{"NetworkID":"n1","Options":{"com.docker.network.enable_ipv6":false,"#,
                r#""com.docker.network.generic":{"mtu":"1400"},"com.docker.network.internal":true},"#,
                r#""IPv4Data":[{"AddressSpace":"LocalDefault","Pool":"10.0.0.0/24","#,
                r#""Gateway":"10.0.0.1/24","AuxAddresses":{"router":"10.0.0.5/24"}}],"IPv6Data":null}"#
            )
        );
        let ep = CreateEndpointRequest {
            network_id: "n1".into(),
            endpoint_id: "e1".into(),
            interface: Some(EndpointInterface::from_facts(&InterfaceFacts {
                ipv4: Some("10.0.0.2/24".parse().unwrap()),
                ..Default::default()
            })),
            options: BTreeMap::new(),
        };
        assert_eq!(
            serde_json::to_string(&ep).unwrap(),
            concat!(
                r#"{"NetworkID":"n1","EndpointID":"e1","Interface":{"Address":"10.0.0.2/24","#,
                r#""AddressIPv6":"","MacAddress":""},"Options":{}}"#
            )
        );
    }

    #[test]
    fn capabilities() {
        let c: GetCapabilitiesResponse = decode(br#"{"Scope":"global"}"#).unwrap();
        let c = c.parse().unwrap();
        assert_eq!(
            (c.scope, c.connectivity_scope),
            (Scope::Global, Scope::Global)
        );
        let c: GetCapabilitiesResponse =
            decode(br#"{"Scope":"local","ConnectivityScope":"global"}"#).unwrap();
        assert_eq!(c.parse().unwrap().connectivity_scope, Scope::Global);
        let c: GetCapabilitiesResponse = decode(br#"{"Scope":"cluster"}"#).unwrap();
        let e = c.parse().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"Scope "cluster": expecting 'local' or 'global'"#
        );
    }

    #[test]
    fn join_answers() {
        let j: JoinResponse = decode(
            br#"{"InterfaceName":{"SrcName":"veth1","DstPrefix":"eth"},"Gateway":"10.0.0.1",
                "StaticRoutes":[{"Destination":"192.0.2.0/24","RouteType":0,"NextHop":"10.0.0.9"},
                                {"Destination":"198.51.100.0/24","RouteType":1}]}"#,
        )
        .unwrap();
        let f = j.parse().unwrap();
        assert_eq!(f.src_name, "veth1");
        assert_eq!(f.gateway_v4, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(f.routes[0].next_hop, Some("10.0.0.9".parse().unwrap()));
        assert_eq!(f.routes[1].next_hop, None);
        let refused = |body: &[u8]| decode::<JoinResponse>(body).unwrap().parse().unwrap_err();
        assert_eq!(refused(b"{}").field, "InterfaceName.SrcName");
        assert_eq!(
            refused(br#"{"InterfaceName":{"SrcName":"a/b"}}"#).field,
            "InterfaceName.SrcName"
        );
        let ok = r#"{"InterfaceName":{"SrcName":"v"},"#;
        for (rest, field) in [
            (r#""Gateway":"fe80::1"}"#, "Gateway"),
            (r#""GatewayIPv6":"10.0.0.1"}"#, "GatewayIPv6"),
            (
                r#""StaticRoutes":[{"Destination":"10.1.2.3/16"}]}"#,
                "StaticRoutes[0].Destination",
            ),
            (
                r#""StaticRoutes":[{"Destination":"x"}]}"#,
                "StaticRoutes[0].Destination",
            ),
            (
                r#""StaticRoutes":[{"Destination":"10.1.0.0/16","NextHop":"fe80::1"}]}"#,
                "StaticRoutes[0].NextHop",
            ),
            (
                r#""StaticRoutes":[{"Destination":"10.1.0.0/16","RouteType":7}]}"#,
                "StaticRoutes[0].RouteType",
            ),
        ] {
            assert_eq!(
                refused(format!("{ok}{rest}").as_bytes()).field,
                field,
                "{rest}"
            );
        }
    }

    #[test]
    fn endpoint_answers() {
        let r: CreateEndpointResponse =
            decode(br#"{"Interface":{"Address":"10.0.0.7/24","MacAddress":"02:42:0a:00:00:07"}}"#)
                .unwrap();
        let f = r.parse().unwrap();
        assert_eq!(f.ipv4, Some("10.0.0.7/24".parse().unwrap()));
        assert_eq!(f.mac.unwrap().to_string(), "02:42:0a:00:00:07");
        assert_eq!(f.ipv6, None);
        assert_eq!(
            decode::<CreateEndpointResponse>(b"{}")
                .unwrap()
                .parse()
                .unwrap(),
            InterfaceFacts::default()
        );
        for (body, field) in [
            (
                r#"{"Interface":{"Address":"fe80::1/64"}}"#,
                "Interface.Address",
            ),
            (
                r#"{"Interface":{"AddressIPv6":"10.0.0.1/24"}}"#,
                "Interface.AddressIPv6",
            ),
            (
                r#"{"Interface":{"MacAddress":"zz"}}"#,
                "Interface.MacAddress",
            ),
            (
                r#"{"Interface":{"MacAddress":"01:00:5e:00:00:01"}}"#,
                "Interface.MacAddress",
            ),
        ] {
            let r: CreateEndpointResponse = decode(body.as_bytes()).unwrap();
            assert_eq!(r.parse().unwrap_err().field, field, "{body}");
        }
        let info: EndpointInfoResponse = decode(br#"{"Value":{"a":"x","b":2}}"#).unwrap();
        assert_eq!(info.strings()["b"], "2");
    }
}

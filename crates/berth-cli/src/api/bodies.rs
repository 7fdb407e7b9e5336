//! The JSON shapes of request and response bodies, shared by the daemon and the client (serde
//! types of Docker's `NetworkCreateRequest`, `NetworkConnect`, ..., berth's sandbox create body and
//! the create and prune answers), and the reading of a request body into one (`Content-Type`
//! check, field-path error messages).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::error::ApiError;

fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `POST /networks/create` (Docker's `NetworkCreateRequest`). Unknown fields are ignored, as the
/// Docker engine does (newer clients send fields of later API versions).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateBody {
    /// The name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Ignored: berth always refuses duplicate names.
    #[serde(deserialize_with = "nullable")]
    pub check_duplicate: bool,
    /// The driver (`bridge` when empty).
    #[serde(deserialize_with = "nullable")]
    pub driver: String,
    /// `local` (or empty).
    #[serde(deserialize_with = "nullable")]
    pub scope: String,
    /// `--ipv6`.
    #[serde(rename = "EnableIPv6", deserialize_with = "nullable")]
    pub enable_ipv6: bool,
    /// Address management.
    #[serde(rename = "IPAM", deserialize_with = "nullable")]
    pub ipam: IpamBody,
    /// `--internal`.
    #[serde(deserialize_with = "nullable")]
    pub internal: bool,
    /// `--attachable`.
    #[serde(deserialize_with = "nullable")]
    pub attachable: bool,
    /// Swarm ingress (refused when true).
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub ingress: bool,
    /// Config-only networks (refused when true).
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub config_only: bool,
    /// Config-from networks (refused when set).
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "ConfigFromBody::is_unset"
    )]
    pub config_from: ConfigFromBody,
    /// Driver options.
    #[serde(deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
    /// Labels.
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
}

/// `IPAM` of a create request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamBody {
    /// `default` (or empty).
    #[serde(deserialize_with = "nullable")]
    pub driver: String,
    /// Pools.
    #[serde(deserialize_with = "nullable")]
    pub config: Vec<IpamConfigBody>,
    /// IPAM driver options (refused when not empty).
    #[serde(deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
}

/// One pool of a create request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfigBody {
    /// `--subnet`.
    #[serde(deserialize_with = "nullable")]
    pub subnet: String,
    /// `--ip-range`.
    #[serde(
        rename = "IPRange",
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub ip_range: String,
    /// `--gateway`.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub gateway: String,
    /// `--aux-address`.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

/// `ConfigFrom` of a create request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConfigFromBody {
    /// The config network.
    #[serde(deserialize_with = "nullable")]
    pub network: String,
}

impl ConfigFromBody {
    /// No config network named (what a request that does not use one sends: nothing).
    fn is_unset(&self) -> bool {
        self.network.is_empty()
    }
}

/// `POST /networks/{id}/connect` (Docker's `NetworkConnect`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConnectBody {
    /// Sandbox name or id.
    #[serde(deserialize_with = "nullable")]
    pub container: String,
    /// Endpoint settings.
    #[serde(deserialize_with = "nullable")]
    pub endpoint_config: EndpointSettingsBody,
}

/// Docker's `EndpointSettings`, the parts a connect request uses (the rest is ignored).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointSettingsBody {
    /// Requested addresses.
    #[serde(rename = "IPAMConfig", deserialize_with = "nullable")]
    pub ipam_config: EndpointIpamBody,
    /// `--link name:alias`.
    #[serde(deserialize_with = "nullable")]
    pub links: Vec<String>,
    /// `--alias`.
    #[serde(deserialize_with = "nullable")]
    pub aliases: Vec<String>,
    /// `--mac-address`.
    #[serde(
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub mac_address: String,
    /// `--driver-opt`: handed to the network's driver, which refuses what it does not know.
    #[serde(deserialize_with = "nullable")]
    pub driver_opts: BTreeMap<String, String>,
}

/// `IPAMConfig` of endpoint settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointIpamBody {
    /// `--ip`.
    #[serde(rename = "IPv4Address", deserialize_with = "nullable")]
    pub ipv4_address: String,
    /// `--ip6`.
    #[serde(rename = "IPv6Address", deserialize_with = "nullable")]
    pub ipv6_address: String,
    /// `--link-local-ip` (refused when not empty).
    #[serde(rename = "LinkLocalIPs", deserialize_with = "nullable")]
    pub link_local_ips: Vec<String>,
}

/// `POST /networks/{id}/disconnect`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DisconnectBody {
    /// Sandbox name or id.
    #[serde(deserialize_with = "nullable")]
    pub container: String,
    /// `--force`.
    #[serde(deserialize_with = "nullable")]
    pub force: bool,
}

/// `POST /sandboxes/create` (berth's own endpoint: unknown fields are refused).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct SandboxCreateBody {
    /// The sandbox's name.
    pub name: String,
    /// Its hostname (empty: the first 12 hex digits of its id).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// Its domain name (`--domainname`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domainname: String,
    /// An existing namespace to adopt (`/proc/PID/ns/net`); empty: berth makes one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub netns_path: String,
    /// The network to connect to: a network name or id, `bridge` (the default), `host` or `none`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub network_mode: String,
    /// Endpoint settings for that network (`--ip`, `--alias`, `--link`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_config: Option<SandboxEndpointBody>,
    /// `-p`: container port (`80/tcp`, `8000-8010/udp`) to host bindings.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub port_bindings: BTreeMap<String, Vec<PortBindingBody>>,
    /// `--expose`: container ports (`80/tcp`) recorded as exposed, as Docker's `{"80/tcp": {}}`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    /// `-P`: publish every exposed port on an automatic host port.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub publish_all_ports: bool,
    /// `--dns`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// `--dns-search`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_options: Vec<String>,
    /// `--add-host HOST:IP`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// The environment of its processes (`KEY=VALUE`): `--env` and the proxy variables of the
    /// client's configuration.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
}

/// Endpoint settings of a sandbox create request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct SandboxEndpointBody {
    /// `--ip`.
    #[serde(rename = "IPv4Address", skip_serializing_if = "String::is_empty")]
    pub ipv4_address: String,
    /// `--ip6`.
    #[serde(rename = "IPv6Address", skip_serializing_if = "String::is_empty")]
    pub ipv6_address: String,
    /// `--alias`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// `--link name:alias`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// `--mac-address`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
}

/// One host binding of a published port (Docker's `PortBinding`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct PortBindingBody {
    /// Host address (empty: the daemon's default, `--ip`).
    pub host_ip: String,
    /// Host port or range (empty: an ephemeral port).
    pub host_port: String,
}

/// The answer to `POST /networks/create` (Docker's `NetworkCreateResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateResponse {
    /// The new network's id.
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    /// A warning for the user (empty: none).
    #[serde(deserialize_with = "nullable")]
    pub warning: String,
}

/// The answer to `POST /sandboxes/create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SandboxCreateResponse {
    /// The new sandbox's id.
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    /// Warnings for the user (berth has none: always `[]`).
    #[serde(deserialize_with = "nullable")]
    pub warnings: Vec<String>,
}

/// The answer to `POST /networks/prune` (Docker's `NetworksPruneReport`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkPruneResponse {
    /// The names of the removed networks, sorted; `null` when none was removed.
    pub networks_deleted: Option<Vec<String>>,
}

/// Docker's `CheckForJSON`: a body must come as `application/json` (no header is fine for an empty
/// body).
fn check_json(content_type: Option<&str>, body: &[u8]) -> Result<(), ApiError> {
    let ct = content_type.unwrap_or("").trim();
    if ct.is_empty() && body.is_empty() {
        return Ok(());
    }
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Content-Type specified ({ct}) must be 'application/json'"
        )))
    }
}

pub(super) fn json_body<T: DeserializeOwned>(
    content_type: Option<&str>,
    body: &[u8],
    what: &str,
) -> Result<T, ApiError> {
    check_json(content_type, body)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(format!(
            "got EOF while reading request body: {what} needs a JSON object"
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            ApiError::bad_request(format!("invalid {what} body: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid {what} body: field {path}: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("invalid {what} body: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon's answers keep their bytes; the client reads `null` or missing fields as empty.
    #[test]
    fn answers_on_the_wire() {
        let created = NetworkCreateResponse {
            id: "abc".into(),
            warning: String::new(),
        };
        assert_eq!(
            serde_json::to_string(&created).unwrap(),
            r#"{"Id":"abc","Warning":""}"#
        );
        let sandbox = SandboxCreateResponse {
            id: "abc".into(),
            warnings: Vec::new(),
        };
        assert_eq!(
            serde_json::to_string(&sandbox).unwrap(),
            r#"{"Id":"abc","Warnings":[]}"#
        );
        let none = NetworkPruneResponse::default();
        assert_eq!(
            serde_json::to_string(&none).unwrap(),
            r#"{"NetworksDeleted":null}"#
        );
        let some = NetworkPruneResponse {
            networks_deleted: Some(vec!["a".into(), "b".into()]),
        };
        assert_eq!(
            serde_json::to_string(&some).unwrap(),
            r#"{"NetworksDeleted":["a","b"]}"#
        );
        let read: NetworkCreateResponse = serde_json::from_str(r#"{"Id":null,"Other":1}"#).unwrap();
        assert_eq!(read, NetworkCreateResponse::default());
        let read: SandboxCreateResponse = serde_json::from_str(r#"{"Warnings":null}"#).unwrap();
        assert_eq!(read, SandboxCreateResponse::default());
    }
}

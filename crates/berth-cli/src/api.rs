//! The daemon's HTTP API as data: routing and decoding of requests into typed controller requests,
//! the Docker Engine API JSON shapes, filters, and the error body. Pure functions: no I/O, no
//! panics on any input (fuzzed by `fuzz/fuzz_targets/api_request.rs`).
//!
//! Network endpoints follow the Docker Engine API (paths with or without a `/v1.xx` prefix, JSON
//! shapes, status codes, `{"message": ...}` error bodies). berth's own sandbox endpoints live
//! under `/sandboxes`.
//!
//! ```
//! use berth_cli::api::{Request, decode};
//!
//! let req = decode("POST", "/v1.41/networks/create", Some("application/json"),
//!     br#"{"Name":"isolated_nw","Driver":"bridge"}"#).unwrap();
//! assert!(matches!(req, Request::CreateNetwork(ref c) if c.name == "isolated_nw"));
//! let err = decode("GET", "/v1.41/nothing", None, b"").unwrap_err();
//! assert_eq!(err.status, 404);
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use berth::{
    DnsSettings, EndpointOptions, ExposedPort, HostEntry, IpamPoolConfig, MacAddr, NetworkCreate,
    NetworkInspect, PortSpec, SandboxCreate, SandboxNetns,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// The API version berth advertises (`Api-Version` header, `/version`): clients that negotiate
/// (the docker CLI does) speak this version.
pub const API_VERSION: &str = "1.41";
/// The oldest API version accepted in a `/v1.xx` prefix.
pub const MIN_API_VERSION: &str = "1.12";
/// The newest API version accepted in a `/v1.xx` prefix (later versions' `/networks` shapes are
/// compatible with what berth serves).
pub const MAX_API_VERSION: &str = "1.51";
/// The largest request body the daemon reads; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

const MIN_VERSION: (u32, u32) = (1, 12);
const MAX_VERSION: (u32, u32) = (1, 51);

/// An API error: an HTTP status and the message of Docker's `{"message": "..."}` body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status code.
    pub status: u16,
    /// The message.
    pub message: String,
    /// For 405: the methods the path accepts.
    pub allow: Vec<&'static str>,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            allow: Vec::new(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, message)
    }

    /// The JSON body, `{"message":"..."}`.
    pub fn body(&self) -> Vec<u8> {
        error_body(&self.message)
    }
}

/// Docker's error body for `message`.
pub fn error_body(message: &str) -> Vec<u8> {
    let mut v = serde_json::to_vec(&serde_json::json!({ "message": message })).unwrap_or_default();
    v.push(b'\n');
    v
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Request {
    /// `GET|HEAD /_ping`.
    Ping {
        /// A HEAD request (no body in the answer).
        head: bool,
    },
    /// `GET /version`.
    Version,
    /// `GET /networks?filters=...`.
    ListNetworks(NetworkFilters),
    /// `GET /networks/{id}`.
    InspectNetwork {
        /// Name, id or id prefix.
        id: String,
        /// `scope=`: only a network of this scope is found.
        scope: Option<String>,
    },
    /// `POST /networks/create`.
    CreateNetwork(NetworkCreate),
    /// `POST /networks/{id}/connect`.
    Connect {
        /// The network.
        network: String,
        /// The sandbox ("container") name or id.
        container: String,
        /// Endpoint options.
        options: EndpointOptions,
    },
    /// `POST /networks/{id}/disconnect`.
    Disconnect {
        /// The network.
        network: String,
        /// The sandbox ("container") name or id.
        container: String,
        /// `Force` (accepted; a disconnect of a live sandbox is always complete).
        force: bool,
    },
    /// `DELETE /networks/{id}`.
    RemoveNetwork {
        /// Name, id or id prefix.
        id: String,
    },
    /// `POST /networks/prune?filters=...`.
    PruneNetworks(PruneFilters),
    /// `POST /sandboxes/create` (berth).
    CreateSandbox(Box<SandboxSpec>),
    /// `GET /sandboxes` (berth).
    ListSandboxes,
    /// `GET /sandboxes/{id}` (berth).
    InspectSandbox {
        /// Name, id or id prefix.
        id: String,
    },
    /// `DELETE /sandboxes/{id}` (berth).
    RemoveSandbox {
        /// Name, id or id prefix.
        id: String,
    },
    /// `POST /sandboxes/{id}/rename?name=NEW` (berth; Docker's `/containers/{id}/rename`).
    RenameSandbox {
        /// Name, id or id prefix.
        id: String,
        /// The new name.
        name: String,
    },
}

// ----- JSON shapes of request bodies -----

fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `POST /networks/create` (Docker's `NetworkCreateRequest`). Unknown fields are ignored, as the
/// Docker engine does (newer clients send fields of later API versions).
#[derive(Debug, Clone, Default, Deserialize)]
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
    #[serde(deserialize_with = "nullable")]
    pub ingress: bool,
    /// Config-only networks (refused when true).
    #[serde(deserialize_with = "nullable")]
    pub config_only: bool,
    /// Config-from networks (refused when set).
    #[serde(deserialize_with = "nullable")]
    pub config_from: ConfigFromBody,
    /// Driver options.
    #[serde(deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
    /// Labels.
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
}

/// `IPAM` of a create request.
#[derive(Debug, Clone, Default, Deserialize)]
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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfigBody {
    /// `--subnet`.
    #[serde(deserialize_with = "nullable")]
    pub subnet: String,
    /// `--ip-range`.
    #[serde(rename = "IPRange", deserialize_with = "nullable")]
    pub ip_range: String,
    /// `--gateway`.
    #[serde(deserialize_with = "nullable")]
    pub gateway: String,
    /// `--aux-address`.
    #[serde(deserialize_with = "nullable")]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

/// `ConfigFrom` of a create request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConfigFromBody {
    /// The config network.
    #[serde(deserialize_with = "nullable")]
    pub network: String,
}

/// `POST /networks/{id}/connect` (Docker's `NetworkConnect`).
#[derive(Debug, Clone, Default, Deserialize)]
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
#[derive(Debug, Clone, Default, Deserialize)]
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
    #[serde(deserialize_with = "nullable")]
    pub mac_address: String,
    /// `--driver-opt` (refused when not empty).
    #[serde(deserialize_with = "nullable")]
    pub driver_opts: BTreeMap<String, String>,
}

/// `IPAMConfig` of endpoint settings.
#[derive(Debug, Clone, Default, Deserialize)]
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
#[derive(Debug, Clone, Default, Deserialize)]
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

/// A decoded `POST /sandboxes/create`.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxSpec {
    /// The controller's create request (with its network and that endpoint's options, ports
    /// included).
    pub create: SandboxCreate,
}

// ----- filters -----

/// Docker's `filters` query parameter: key to the set of values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<String, BTreeSet<String>>);

impl Filters {
    /// Parses the JSON of a `filters` parameter: `{"key":{"value":true}}` or the older
    /// `{"key":["value"]}`. An empty string is no filter.
    ///
    /// # Errors
    /// 400 when the text is not one of these shapes.
    pub fn parse(text: &str) -> Result<Filters, ApiError> {
        if text.trim().is_empty() {
            return Ok(Filters::default());
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Values {
            Map(BTreeMap<String, bool>),
            List(Vec<String>),
        }
        let raw: BTreeMap<String, Values> = serde_json::from_str(text).map_err(|e| {
            ApiError::bad_request(format!(
                "invalid filters parameter {text:?}: {e}; expected JSON such as {{\"name\":{{\"my_net\":true}}}}"
            ))
        })?;
        let mut out = BTreeMap::new();
        for (k, v) in raw {
            let set: BTreeSet<String> = match v {
                Values::Map(m) => m
                    .into_iter()
                    .filter(|(_, on)| *on)
                    .map(|(k, _)| k)
                    .collect(),
                Values::List(l) => l.into_iter().collect(),
            };
            out.insert(k, set);
        }
        Ok(Filters(out))
    }

    /// Refuses keys outside `accepted` with Docker's message.
    fn validate(&self, accepted: &[&str]) -> Result<(), ApiError> {
        for k in self.0.keys() {
            if !accepted.contains(&k.as_str()) {
                return Err(ApiError::bad_request(format!("Invalid filter '{k}'")));
            }
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&BTreeSet<String>> {
        self.0.get(key).filter(|s| !s.is_empty())
    }

    /// The JSON text of these filters (`{"key":{"value":true}}`), as clients send it.
    pub fn to_json(&self) -> String {
        let m: BTreeMap<&String, BTreeMap<&String, bool>> = self
            .0
            .iter()
            .map(|(k, vs)| (k, vs.iter().map(|v| (v, true)).collect()))
            .collect();
        serde_json::to_string(&m).unwrap_or_default()
    }
}

/// Validated filters of `GET /networks`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkFilters(Filters);

const NETWORK_FILTERS: &[&str] = &["dangling", "driver", "id", "label", "name", "scope", "type"];

impl NetworkFilters {
    /// Validates parsed filters (keys, `type` and `dangling` values).
    ///
    /// # Errors
    /// 400 with Docker's messages (`Invalid filter 'x'`, `invalid filter: 'type'='x'`).
    pub fn new(f: Filters) -> Result<NetworkFilters, ApiError> {
        f.validate(NETWORK_FILTERS)?;
        if let Some(types) = f.get("type") {
            for t in types {
                if t != "custom" && t != "builtin" {
                    return Err(ApiError::bad_request(format!(
                        "invalid filter: 'type'='{t}' (use custom or builtin)"
                    )));
                }
            }
        }
        if let Some(d) = f.get("dangling") {
            for v in d {
                parse_bool_filter("dangling", v)?;
            }
            if d.len() > 1 {
                return Err(ApiError::bad_request(
                    "filter 'dangling' takes one value, true or false",
                ));
            }
        }
        Ok(NetworkFilters(f))
    }

    /// The networks these filters keep, in the given order.
    pub fn apply(&self, nets: Vec<NetworkInspect>) -> Vec<NetworkInspect> {
        let f = &self.0;
        nets.into_iter()
            .filter(|n| {
                f.get("driver").is_none_or(|s| s.contains(&n.driver))
                    && f.get("name").is_none_or(|s| any_match(s, &n.name))
                    && f.get("id").is_none_or(|s| any_match(s, &n.id))
                    && f.get("label").is_none_or(|s| labels_match(s, &n.labels))
                    && f.get("scope").is_none_or(|s| s.contains(&n.scope))
                    && f.get("type").is_none_or(|s| {
                        let builtin = berth::PREDEFINED_NETWORKS.contains(&n.name.as_str());
                        (builtin && s.contains("builtin")) || (!builtin && s.contains("custom"))
                    })
                    && f.get("dangling").is_none_or(|s| {
                        let want = s
                            .iter()
                            .next()
                            .and_then(|v| parse_bool_filter("dangling", v).ok())
                            .unwrap_or(true);
                        let predefined = berth::PREDEFINED_NETWORKS.contains(&n.name.as_str());
                        let dangling = !predefined && n.containers.is_empty();
                        dangling == want
                    })
            })
            .collect()
    }
}

fn parse_bool_filter(key: &str, v: &str) -> Result<bool, ApiError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "Invalid filter '{key}={v}': use true or false"
        ))),
    }
}

/// Docker's `Match`: an exact match, or an (unanchored) regular expression match. A value that is
/// not a valid expression only matches exactly.
fn any_match(values: &BTreeSet<String>, source: &str) -> bool {
    values.iter().any(|v| {
        v == source
            || regex::RegexBuilder::new(v)
                .size_limit(1 << 20)
                .dfa_size_limit(1 << 20)
                .build()
                .is_ok_and(|re| re.is_match(source))
    })
}

/// Docker's `MatchKVList`: every `key` or `key=value` must be present.
fn labels_match(values: &BTreeSet<String>, labels: &BTreeMap<String, String>) -> bool {
    values.iter().all(|v| match v.split_once('=') {
        Some((k, want)) => labels.get(k).is_some_and(|have| have == want),
        None => labels.contains_key(v.as_str()),
    })
}

/// Validated filters of `POST /networks/prune`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneFilters {
    /// `until`: prune only networks created before this time (Unix nanoseconds).
    pub until_nanos: Option<i128>,
    /// `label`: `key` or `key=value` that must match.
    pub labels: BTreeSet<String>,
    /// `label!`: `key` or `key=value` that must not match.
    pub not_labels: BTreeSet<String>,
}

impl PruneFilters {
    /// Validates parsed filters.
    ///
    /// # Errors
    /// 400 for unknown keys and unreadable `until` values.
    pub fn new(f: Filters, now_nanos: i128) -> Result<PruneFilters, ApiError> {
        f.validate(&["until", "label", "label!"])?;
        let until_nanos = match f.get("until") {
            None => None,
            Some(values) => {
                if values.len() > 1 {
                    return Err(ApiError::bad_request(
                        "filter 'until' takes one value (a timestamp or a duration such as 24h)",
                    ));
                }
                let v = values.iter().next().map(String::as_str).unwrap_or("");
                Some(parse_until(v, now_nanos).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "invalid filter 'until={v}': expected a Unix timestamp, an RFC 3339 date or time, or a duration such as 24h or 90m"
                    ))
                })?)
            }
        };
        Ok(PruneFilters {
            until_nanos,
            labels: f.get("label").cloned().unwrap_or_default(),
            not_labels: f.get("label!").cloned().unwrap_or_default(),
        })
    }

    /// True when no filter is set.
    pub fn is_empty(&self) -> bool {
        self.until_nanos.is_none() && self.labels.is_empty() && self.not_labels.is_empty()
    }

    /// Whether a network may be pruned under these filters.
    pub fn keeps(&self, net: &NetworkInspect) -> bool {
        let created_ok = self.until_nanos.is_none_or(|until| {
            parse_rfc3339_nanos(&net.created).is_some_and(|created| created < until)
        });
        let labels_ok = self.labels.is_empty() || labels_match(&self.labels, &net.labels);
        let not_ok = self.not_labels.is_empty()
            || !self.not_labels.iter().any(|l| {
                let one: BTreeSet<String> = [l.clone()].into_iter().collect();
                labels_match(&one, &net.labels)
            });
        created_ok && labels_ok && not_ok
    }
}

/// A Go duration (`24h`, `1h30m`, `90s`, `500ms`) in nanoseconds.
fn parse_duration_nanos(s: &str) -> Option<i128> {
    if s.is_empty() {
        return None;
    }
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    let mut any = false;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * scale;
        any = true;
    }
    if !any || !total.is_finite() || total > 1e30 {
        return None;
    }
    let t = total as i128;
    Some(if neg { -t } else { t })
}

/// Docker's `until`: a duration before now, a Unix timestamp (`1700000000.5`), or an RFC 3339
/// date or time.
fn parse_until(v: &str, now_nanos: i128) -> Option<i128> {
    if let Some(d) = parse_duration_nanos(v) {
        return Some(now_nanos - d);
    }
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
        if secs.is_empty() || secs.len() > 12 || frac.len() > 9 {
            return None;
        }
        let s: i128 = secs.parse().ok()?;
        let f: i128 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().ok()?
        };
        return Some(s * 1_000_000_000 + f);
    }
    parse_rfc3339_nanos(v)
}

/// Days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2006-01-02`, `2006-01-02T15:04:05`, with optional fraction and `Z` or `±hh:mm`, to Unix
/// nanoseconds.
pub fn parse_rfc3339_nanos(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 10 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, mo as u32, d as u32) as i128;
    let mut secs: i128 = days * 86_400;
    let mut nanos: i128 = 0;
    let mut i;
    if b.len() > 10 {
        if b[10] != b'T' && b[10] != b't' && b[10] != b' ' {
            return None;
        }
        if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
            return None;
        }
        let (h, mi, se) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
        if h > 23 || mi > 59 || se > 60 {
            return None;
        }
        secs += (h * 3600 + mi * 60 + se) as i128;
        i = 19;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let frac = s.get(start..j)?;
            if frac.is_empty() || frac.len() > 9 {
                return None;
            }
            nanos = format!("{frac:0<9}").parse().ok()?;
            i = j;
        }
        match b.get(i) {
            None => {}
            Some(b'Z') | Some(b'z') if i + 1 == b.len() => {}
            Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
                let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
                let off = (oh * 3600 + om * 60) as i128;
                if *sign == b'+' {
                    secs -= off;
                } else {
                    secs += off;
                }
            }
            _ => return None,
        }
    }
    Some(secs * 1_000_000_000 + nanos)
}

// ----- decoding -----

fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The query parameters of a request target (first occurrence of each key wins).
pub fn parse_query(query: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let bad = || ApiError::bad_request(format!("malformed query parameter {pair:?}"));
        let k = percent_decode(k, true).ok_or_else(bad)?;
        let v = percent_decode(v, true).ok_or_else(bad)?;
        out.entry(k).or_insert(v);
    }
    Ok(out)
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (maj, min) = v.split_once('.')?;
    if maj.is_empty() || min.is_empty() || maj.len() > 4 || min.len() > 4 {
        return None;
    }
    Some((maj.parse().ok()?, min.parse().ok()?))
}

/// Splits `/v1.41/networks` into the version and `/networks`, checking the version.
fn strip_version(path: &str) -> Result<&str, ApiError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok(path);
    };
    let (ver, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let Some(v) = parse_version(ver) else {
        return Ok(path);
    };
    if v > MAX_VERSION {
        return Err(ApiError::bad_request(format!(
            "client version {ver} is too new. Maximum supported API version is {MAX_API_VERSION}"
        )));
    }
    if v < MIN_VERSION {
        return Err(ApiError::bad_request(format!(
            "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    Ok(tail)
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

fn json_body<T: DeserializeOwned>(
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

fn query_bool(q: &BTreeMap<String, String>, key: &str) -> Result<bool, ApiError> {
    match q.get(key).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v.is_empty() || v == "0" || v == "false" || v == "no" => Ok(false),
        Some(v) if v == "1" || v == "true" || v == "yes" => Ok(true),
        Some(v) => Err(ApiError::bad_request(format!(
            "invalid value {v:?} for query parameter {key}: use true or false"
        ))),
    }
}

fn id_segment(seg: &str) -> Result<String, ApiError> {
    if seg.is_empty() {
        return Err(ApiError::not_found("page not found"));
    }
    Ok(seg.to_owned())
}

/// Decodes one request: method, request target (path and query), `Content-Type`, body.
///
/// # Errors
/// An [`ApiError`] with Docker's status and message: 404 for unknown paths, 405 for a known path
/// with another method, 400 for malformed or invalid input.
pub fn decode(
    method: &str,
    target: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Request, ApiError> {
    let (raw_path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let path = percent_decode(raw_path, false)
        .ok_or_else(|| ApiError::bad_request(format!("malformed request path {raw_path:?}")))?;
    let path = strip_version(&path)?;
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let q = parse_query(query)?;

    let allowed: &[&'static str] = match segs.as_slice() {
        ["_ping"] => &["GET", "HEAD"],
        ["version"] | ["networks"] | ["sandboxes"] => &["GET"],
        ["networks", "create"] => &["POST", "GET", "DELETE"],
        ["networks", "prune"] => &["POST", "GET", "DELETE"],
        ["networks", _] => &["GET", "DELETE"],
        ["networks", _, "connect" | "disconnect"] => &["POST"],
        ["sandboxes", "create"] => &["POST", "GET", "DELETE"],
        ["sandboxes", _] => &["GET", "DELETE"],
        ["sandboxes", _, "rename"] => &["POST"],
        _ => return Err(ApiError::not_found("page not found")),
    };
    if !allowed.contains(&method) {
        let mut e = ApiError::new(
            405,
            format!(
                "method {method} is not allowed on {path}: use {}",
                allowed.join(" or ")
            ),
        );
        e.allow = allowed.to_vec();
        return Err(e);
    }

    match (method, segs.as_slice()) {
        (_, ["_ping"]) => Ok(Request::Ping {
            head: method == "HEAD",
        }),
        (_, ["version"]) => Ok(Request::Version),
        (_, ["networks"]) => {
            let f = Filters::parse(q.get("filters").map(String::as_str).unwrap_or(""))?;
            Ok(Request::ListNetworks(NetworkFilters::new(f)?))
        }
        ("POST", ["networks", "create"]) => {
            let b: NetworkCreateBody = json_body(content_type, body, "network create")?;
            Ok(Request::CreateNetwork(network_create(b)?))
        }
        ("POST", ["networks", "prune"]) => {
            let f = Filters::parse(q.get("filters").map(String::as_str).unwrap_or(""))?;
            Ok(Request::PruneNetworks(PruneFilters::new(f, now_nanos())?))
        }
        ("GET", ["networks", id]) => {
            query_bool(&q, "verbose")?;
            let scope = q.get("scope").filter(|s| !s.is_empty()).cloned();
            Ok(Request::InspectNetwork {
                id: id_segment(id)?,
                scope,
            })
        }
        ("DELETE", ["networks", id]) => Ok(Request::RemoveNetwork {
            id: id_segment(id)?,
        }),
        (_, ["networks", id, "connect"]) => {
            let b: ConnectBody = json_body(content_type, body, "network connect")?;
            let container = container_name(&b.container)?;
            let options = endpoint_options(&b.endpoint_config)?;
            Ok(Request::Connect {
                network: id_segment(id)?,
                container,
                options,
            })
        }
        (_, ["networks", id, "disconnect"]) => {
            let b: DisconnectBody = json_body(content_type, body, "network disconnect")?;
            Ok(Request::Disconnect {
                network: id_segment(id)?,
                container: container_name(&b.container)?,
                force: b.force,
            })
        }
        (_, ["sandboxes"]) => Ok(Request::ListSandboxes),
        ("POST", ["sandboxes", "create"]) => {
            let b: SandboxCreateBody = json_body(content_type, body, "sandbox create")?;
            Ok(Request::CreateSandbox(Box::new(sandbox_spec(b)?)))
        }
        ("GET", ["sandboxes", id]) => Ok(Request::InspectSandbox {
            id: id_segment(id)?,
        }),
        ("DELETE", ["sandboxes", id]) => Ok(Request::RemoveSandbox {
            id: id_segment(id)?,
        }),
        ("POST", ["sandboxes", id, "rename"]) => {
            let name = q.get("name").cloned().unwrap_or_default();
            if name.is_empty() {
                return Err(ApiError::bad_request(
                    "rename needs the new name: POST /sandboxes/{id}/rename?name=NEW",
                ));
            }
            Ok(Request::RenameSandbox {
                id: id_segment(id)?,
                name,
            })
        }
        _ => Err(ApiError::not_found("page not found")),
    }
}

fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

fn container_name(s: &str) -> Result<String, ApiError> {
    if s.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid name or ID supplied: \"\": the request needs \"Container\", a sandbox name or id",
        ));
    }
    Ok(s.to_owned())
}

fn parse_net(field: &str, s: &str) -> Result<ipnet::IpNet, ApiError> {
    let r = match field {
        "Subnet" => berth_ipam::parse_subnet(s),
        _ => berth_ipam::parse_ip_range(s),
    };
    r.map_err(|e| ApiError::bad_request(e.to_string()))
}

fn network_create(b: NetworkCreateBody) -> Result<NetworkCreate, ApiError> {
    if b.name.is_empty() {
        return Err(ApiError::bad_request(
            "invalid network name \"\": a network needs a name",
        ));
    }
    if berth::PREDEFINED_NETWORKS.contains(&b.name.as_str()) {
        return Err(ApiError::new(
            403,
            format!(
                "operation is not permitted on predefined {} network ",
                b.name
            ),
        ));
    }
    if !matches!(b.scope.as_str(), "" | "local") {
        return Err(ApiError::bad_request(format!(
            "network scope {:?} is not supported: berth's networks are local (use scope \"local\" or leave it empty)",
            b.scope
        )));
    }
    if b.ingress {
        return Err(ApiError::bad_request(
            "ingress networks (swarm mode) are not supported by berth",
        ));
    }
    if b.config_only || !b.config_from.network.is_empty() {
        return Err(ApiError::bad_request(
            "config-only and config-from networks (swarm mode) are not supported by berth",
        ));
    }
    if !matches!(b.ipam.driver.as_str(), "" | "default") {
        return Err(ApiError::bad_request(format!(
            "IPAM driver {:?} is not supported: berth has only the \"default\" IPAM driver",
            b.ipam.driver
        )));
    }
    if !b.ipam.options.is_empty() {
        return Err(ApiError::bad_request(format!(
            "IPAM options are not supported by berth's default IPAM driver (got {})",
            b.ipam
                .options
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut req = NetworkCreate::new(b.name);
    if !b.driver.is_empty() {
        req.driver = b.driver;
    }
    req.options = b.options;
    req.labels = b.labels;
    req.enable_ipv6 = b.enable_ipv6;
    req.internal = b.internal;
    req.attachable = b.attachable;
    for c in b.ipam.config {
        let subnet = if c.subnet.is_empty() {
            None
        } else {
            Some(parse_net("Subnet", &c.subnet)?)
        };
        let ip_range = if c.ip_range.is_empty() {
            None
        } else {
            Some(parse_net("IPRange", &c.ip_range)?)
        };
        let gateway = if c.gateway.is_empty() {
            None
        } else {
            Some(
                berth_ipam::parse_gateway(&c.gateway)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?,
            )
        };
        let mut aux = BTreeMap::new();
        for (name, addr) in c.auxiliary_addresses {
            let (name, addr) = berth_ipam::parse_aux_address(&format!("{name}={addr}"))
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            aux.insert(name, addr);
        }
        req.ipam.push(IpamPoolConfig {
            subnet,
            ip_range,
            gateway,
            aux_addresses: aux,
        });
    }
    Ok(req)
}

fn parse_v4(s: &str) -> Result<Option<Ipv4Addr>, ApiError> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| {
        ApiError::bad_request(format!(
            "invalid IPv4 address {s:?}: expected an address such as 172.18.0.5"
        ))
    })
}

fn parse_v6(s: &str) -> Result<Option<Ipv6Addr>, ApiError> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| {
        ApiError::bad_request(format!(
            "invalid IPv6 address {s:?}: expected an address such as 2001:db8::5"
        ))
    })
}

fn parse_links(links: &[String]) -> Result<Vec<(String, String)>, ApiError> {
    links
        .iter()
        .map(|l| {
            let (name, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
            let name = name.trim_start_matches('/');
            let alias = alias.trim_start_matches('/');
            if name.is_empty() || alias.is_empty() || alias.contains(':') {
                Err(ApiError::bad_request(format!(
                    "invalid link {l:?}: expected NAME or NAME:ALIAS"
                )))
            } else {
                Ok((name.to_owned(), alias.to_owned()))
            }
        })
        .collect()
}

fn check_aliases(aliases: &[String]) -> Result<(), ApiError> {
    for a in aliases {
        if a.is_empty() || a.len() > 255 || a.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ApiError::bad_request(format!(
                "invalid alias {a:?}: an alias is a non-empty name without spaces"
            )));
        }
    }
    Ok(())
}

fn parse_mac(s: &str) -> Result<Option<MacAddr>, ApiError> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<MacAddr>().map(Some).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid MAC address {s:?}: {e}; expected six hex octets such as 02:42:ac:11:00:02"
        ))
    })
}

fn endpoint_options(e: &EndpointSettingsBody) -> Result<EndpointOptions, ApiError> {
    if !e.ipam_config.link_local_ips.is_empty() {
        return Err(ApiError::bad_request(
            "link-local addresses (--link-local-ip) are not supported by berth",
        ));
    }
    if !e.driver_opts.is_empty() {
        return Err(ApiError::bad_request(format!(
            "endpoint driver options (--driver-opt) are not supported by berth's drivers (got {})",
            e.driver_opts.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    check_aliases(&e.aliases)?;
    Ok(EndpointOptions {
        ipv4: parse_v4(&e.ipam_config.ipv4_address)?,
        ipv6: parse_v6(&e.ipam_config.ipv6_address)?,
        aliases: e.aliases.clone(),
        links: parse_links(&e.links)?,
        mac: parse_mac(&e.mac_address)?,
        ..Default::default()
    })
}

/// One `-p` binding as a port spec: `[IP:][HOST_PORT:]CONTAINER_PORT/PROTO`.
fn port_spec(key: &str, binding: &PortBindingBody) -> Result<PortSpec, ApiError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let mut text = String::new();
    if !binding.host_ip.is_empty() {
        let ip = binding
            .host_ip
            .trim_start_matches('[')
            .trim_end_matches(']');
        if ip.contains(':') {
            text.push_str(&format!("[{ip}]:"));
        } else {
            text.push_str(&format!("{ip}:"));
        }
        text.push_str(&binding.host_port);
        text.push(':');
    } else if !binding.host_port.is_empty() {
        text.push_str(&binding.host_port);
        text.push(':');
    }
    text.push_str(port);
    text.push('/');
    text.push_str(proto);
    text.parse::<PortSpec>()
        .map_err(|e| ApiError::bad_request(format!("port binding {key:?}: {e}")))
}

fn sandbox_spec(b: SandboxCreateBody) -> Result<SandboxSpec, ApiError> {
    if b.name.is_empty() {
        return Err(ApiError::bad_request(
            "invalid sandbox name \"\": a sandbox needs a name",
        ));
    }
    let mode = if b.network_mode.is_empty() || b.network_mode == "default" {
        "bridge".to_owned()
    } else {
        b.network_mode.clone()
    };
    let netns = match (mode.as_str(), b.netns_path.is_empty()) {
        ("host", true) => SandboxNetns::Host,
        ("host", false) => {
            return Err(ApiError::bad_request(
                "a sandbox on the host network lives in the host's namespace: drop NetnsPath (--netns) or choose another network",
            ));
        }
        (_, true) => SandboxNetns::Create,
        (_, false) => {
            if !b.netns_path.starts_with('/') {
                return Err(ApiError::bad_request(format!(
                    "NetnsPath {:?} must be an absolute path, such as /proc/1234/ns/net",
                    b.netns_path
                )));
            }
            SandboxNetns::Adopt(PathBuf::from(&b.netns_path))
        }
    };
    let mut create = SandboxCreate::new(b.name);
    create.netns = netns;
    if !b.hostname.is_empty() {
        create.hostname = Some(b.hostname);
    }
    if !b.domainname.is_empty() {
        create.domainname = Some(b.domainname);
    }
    let ep = b.endpoint_config.unwrap_or_default();
    check_aliases(&ep.aliases)?;
    let mut ports = Vec::new();
    for (key, bindings) in &b.port_bindings {
        if bindings.is_empty() {
            ports.push(port_spec(key, &PortBindingBody::default())?);
        }
        for binding in bindings {
            ports.push(port_spec(key, binding)?);
        }
    }
    let exposed = b
        .exposed_ports
        .keys()
        .map(|k| {
            k.parse::<ExposedPort>()
                .map_err(|e| ApiError::bad_request(format!("exposed port {k:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let endpoint = EndpointOptions {
        ipv4: parse_v4(&ep.ipv4_address)?,
        ipv6: parse_v6(&ep.ipv6_address)?,
        aliases: ep.aliases,
        links: parse_links(&ep.links)?,
        mac: parse_mac(&ep.mac_address)?,
        ports,
        exposed,
        publish_all: b.publish_all_ports,
    };
    create.network = Some(mode);
    create.endpoint = endpoint;
    let servers = b
        .dns
        .iter()
        .map(|d| {
            d.parse::<IpAddr>().map_err(|_| {
                ApiError::bad_request(format!("invalid --dns {d:?}: expected an IP address"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    create.dns = DnsSettings {
        servers,
        search: b.dns_search,
        options: b.dns_options,
    };
    create.extra_hosts = b
        .extra_hosts
        .iter()
        .map(|h| {
            HostEntry::parse(h)
                .map_err(|e| ApiError::bad_request(format!("invalid --add-host {h:?}: {e}")))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(SandboxSpec { create })
}

#[cfg(test)]
mod tests {
    use super::*;

    const J: Option<&str> = Some("application/json");

    #[test]
    fn routes_with_and_without_version() {
        assert_eq!(
            decode("GET", "/_ping", None, b"").unwrap(),
            Request::Ping { head: false }
        );
        assert_eq!(
            decode("HEAD", "/v1.41/_ping", None, b"").unwrap(),
            Request::Ping { head: true }
        );
        assert!(matches!(
            decode("GET", "/v1.41/networks/abc?verbose=false", None, b"").unwrap(),
            Request::InspectNetwork { ref id, .. } if id == "abc"
        ));
        assert!(matches!(
            decode("DELETE", "/networks/create", None, b"").unwrap(),
            Request::RemoveNetwork { ref id } if id == "create"
        ));
        assert_eq!(decode("GET", "/nope", None, b"").unwrap_err().status, 404);
        let e = decode("PUT", "/networks", None, b"").unwrap_err();
        assert_eq!((e.status, e.allow.clone()), (405, vec!["GET"]));
        assert_eq!(
            decode("GET", "/v1.99/networks", None, b"")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            decode("GET", "/v1.11/networks", None, b"")
                .unwrap_err()
                .status,
            400
        );
        assert!(decode("GET", "/v1.51/networks", None, b"").is_ok());
    }

    #[test]
    fn create_bodies() {
        let body = br#"{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.99.0.0/24","IPRange":"10.99.0.128/25","Gateway":"10.99.0.1","AuxiliaryAddresses":{"r":"10.99.0.2"}}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{"com.docker.network.bridge.enable_icc":"false"},"Labels":{"a":"b"},"Name":"probe_nw","CheckDuplicate":true,"EnableIPv4":true}"#;
        let Request::CreateNetwork(c) = decode("POST", "/v1.41/networks/create", J, body).unwrap()
        else {
            panic!("not a create")
        };
        assert_eq!(c.name, "probe_nw");
        assert_eq!(c.ipam.len(), 1);
        assert_eq!(c.ipam[0].gateway, Some("10.99.0.1".parse().unwrap()));
        assert_eq!(c.labels["a"], "b");
        let err = |b: &[u8], ct| decode("POST", "/networks/create", ct, b).unwrap_err();
        assert_eq!(err(b"", J).status, 400);
        assert_eq!(err(b"{", J).status, 400);
        let e = err(br#"{"Name":5}"#, J);
        assert!(e.message.contains("Name"), "{}", e.message);
        assert_eq!(err(br#"{"Name":"x"}"#, Some("text/plain")).status, 400);
        assert_eq!(err(br#"{"Name":"bridge"}"#, J).status, 403);
        assert_eq!(
            err(
                br#"{"Name":"x","IPAM":{"Config":[{"Subnet":"10.0.0.0/33"}]}}"#,
                J
            )
            .status,
            400
        );
        assert_eq!(err(br#"{"Name":"x"} {"#, J).status, 400);
        assert_eq!(err(br#"[]"#, J).status, 400);
    }

    #[test]
    fn connect_bodies() {
        let body = br#"{"Container":"web","EndpointConfig":{"IPAMConfig":{"IPv4Address":"10.99.0.9"},"Links":["db:data"],"Aliases":["al1"],"MacAddress":"","DriverOpts":{},"GwPriority":0,"NetworkID":"","DNSNames":null}}"#;
        let Request::Connect {
            network,
            container,
            options,
        } = decode("POST", "/v1.41/networks/nw/connect", J, body).unwrap()
        else {
            panic!("not a connect")
        };
        assert_eq!((network.as_str(), container.as_str()), ("nw", "web"));
        assert_eq!(options.ipv4, Some("10.99.0.9".parse().unwrap()));
        assert_eq!(options.links, vec![("db".to_owned(), "data".to_owned())]);
        assert_eq!(
            decode("POST", "/networks/nw/connect", J, b"{}")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            decode(
                "POST",
                "/networks/nw/connect",
                J,
                br#"{"Container":"a","EndpointConfig":{"IPAMConfig":{"IPv4Address":"1.2.3"}}}"#
            )
            .unwrap_err()
            .status,
            400
        );
    }

    #[test]
    fn filters() {
        let f = Filters::parse(r#"{"name":{"probe":true}}"#).unwrap();
        assert!(f.0["name"].contains("probe"));
        let f = Filters::parse(r#"{"name":["a","b"]}"#).unwrap();
        assert_eq!(f.0["name"].len(), 2);
        assert!(Filters::parse("notjson").is_err());
        let e = decode(
            "GET",
            "/networks?filters=%7B%22foo%22%3A%5B%22x%22%5D%7D",
            None,
            b"",
        )
        .unwrap_err();
        assert_eq!(e.message, "Invalid filter 'foo'");
        assert!(
            decode(
                "GET",
                "/networks?filters=%7B%22type%22%3A%5B%22bogus%22%5D%7D",
                None,
                b""
            )
            .is_err()
        );
        assert!(any_match(&["^pro".to_owned()].into(), "probe"));
        assert!(!any_match(&["(".to_owned()].into(), "probe"));
        assert!(labels_match(
            &["a=b".to_owned(), "c".to_owned()].into(),
            &[
                ("a".to_owned(), "b".to_owned()),
                ("c".to_owned(), String::new())
            ]
            .into()
        ));
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_rfc3339_nanos("1970-01-01T00:00:01.5Z"),
            Some(1_500_000_000)
        );
        assert_eq!(parse_rfc3339_nanos("1970-01-02"), Some(86_400_000_000_000));
        assert_eq!(parse_rfc3339_nanos("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            parse_rfc3339_nanos("2026-11-27T20:30:05.148841347Z"),
            Some(1_795_811_405_148_841_347)
        );
        assert_eq!(parse_duration_nanos("1h30m"), Some(5400 * 1_000_000_000));
        assert_eq!(parse_until("10", 0), Some(10_000_000_000));
        assert_eq!(parse_until("24h", 86_400_000_000_000), Some(0));
        assert!(parse_until("soon", 0).is_none());
    }

    #[test]
    fn sandbox_bodies() {
        let body = br#"{"Name":"web","NetworkMode":"isolated_nw","EndpointConfig":{"IPv4Address":"172.18.0.9","Aliases":["w"]},"PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}]},"Dns":["1.1.1.1"],"ExtraHosts":["db:10.0.0.5"]}"#;
        let Request::CreateSandbox(s) = decode("POST", "/sandboxes/create", J, body).unwrap()
        else {
            panic!("not a sandbox create")
        };
        assert_eq!(s.create.network.as_deref(), Some("isolated_nw"));
        assert_eq!(s.create.endpoint.ports[0].to_string(), "8080:80/tcp");
        assert_eq!(s.create.extra_hosts[0].names, "db");
        assert_eq!(
            s.create.dns.servers,
            vec!["1.1.1.1".parse::<IpAddr>().unwrap()]
        );
        let e = decode(
            "POST",
            "/sandboxes/create",
            J,
            br#"{"Name":"a","ExtraHosts":["nocolon"]}"#,
        )
        .unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("nocolon"), "{}", e.message);
        let Request::RenameSandbox { id, name } =
            decode("POST", "/sandboxes/web/rename?name=web2", J, b"").unwrap()
        else {
            panic!("not a rename")
        };
        assert_eq!((id.as_str(), name.as_str()), ("web", "web2"));
        assert_eq!(
            decode("POST", "/sandboxes/web/rename", J, b"")
                .unwrap_err()
                .status,
            400
        );
        let e = decode("POST", "/sandboxes/create", J, br#"{"Name":"a","Bogus":1}"#).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("Bogus"), "{}", e.message);
    }
}

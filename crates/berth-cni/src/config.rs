//! The network configuration on stdin, read once into typed values: the spec's keys
//! (`cniVersion`, `name`, `type`, `dns`, `prevResult`, `runtimeConfig`,
//! `cni.dev/valid-attachments`) and berth-cni's own (see the crate documentation for the list).
//! Keys of other plugins and runtimes at the top level are ignored; an unknown key inside
//! berth-cni's `network` object is refused (code 2), and a bad value names its key (code 7).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use berth::{DefaultPool, FirewallBackend};
use ipnet::{IpNet, Ipv4Net};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::env::clip;
use crate::error::{CniError, ErrorCode};
use crate::result::{CniResult, Dns};
use crate::version::{CniVersion, negotiate};

/// Where berth's state lives unless `dataRoot` says otherwise.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/berth-cni";
/// Where berth keeps namespaces and sandbox files unless `execRoot` says otherwise.
pub const DEFAULT_EXEC_ROOT: &str = "/run/berth-cni";
/// How long an invocation waits for the state's lock unless `lockTimeout` says otherwise.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// Docker's option of the bridge network that switches masquerading on or off (`ipMasq`).
pub const IP_MASQUERADE_OPTION: &str = "com.docker.network.bridge.enable_ip_masquerade";
/// Docker's option of the bridge network that sets the MTU (`mtu`).
pub const MTU_OPTION: &str = "com.docker.network.driver.mtu";

/// The whole configuration of one invocation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NetConf {
    /// `cniVersion`, negotiated (one berth-cni speaks).
    pub cni_version: CniVersion,
    /// `name`: the CNI network's name (also the berth network's, unless `network.name`).
    pub name: String,
    /// `type` (the binary's name, `berth-cni`).
    pub plugin_type: String,
    /// `dataRoot`: berth's state directory (its redb store, `berth.redb`, and the state's
    /// lock).
    pub data_root: PathBuf,
    /// `execRoot`: berth's namespace and sandbox-file directory.
    pub exec_root: PathBuf,
    /// `network`: the berth bridge network the attachments join.
    pub network: BridgeNetwork,
    /// `firewallBackend`: `iptables` (default), `nftables`, or `none` (berth leaves the packet
    /// filter alone).
    pub firewall: Option<FirewallBackend>,
    /// `ipForward` (default true): berth switches IPv4 forwarding on in the host namespace (and,
    /// as Docker, the FORWARD policy to DROP when it did).
    pub ip_forward: bool,
    /// `publishPorts` (default true): berth publishes `runtimeConfig.portMappings` itself; false
    /// when the reference `portmap` plugin is chained after berth-cni.
    pub publish_ports: bool,
    /// `defaultAddressPools`: the pools a network without `subnet` takes its subnet from
    /// (Docker's `default-address-pools`: `[{"base": "10.10.0.0/16", "size": 24}]`).
    pub default_address_pools: Option<Vec<DefaultPool>>,
    /// `lockTimeout` (seconds, default 60): how long an invocation waits for another one to
    /// release the state before it answers code 11 (try again later).
    pub lock_timeout: Duration,
    /// `dns`: the spec's well-known DNS settings, returned in the result (the runtime writes
    /// them); `runtimeConfig.dns` takes precedence.
    pub dns: Option<Dns>,
    /// `runtimeConfig`: what the runtime passes for the capabilities berth-cni declares.
    pub runtime: RuntimeConfig,
    /// `prevResult`: the previous plugin's result (ADD in a chain), or the final ADD result
    /// (CHECK, DEL).
    pub prev_result: Option<CniResult>,
    /// `cni.dev/valid-attachments` (GC; also read under the older `cni.dev/attachments`).
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// The berth bridge network the attachments join (the `network` key), created on first use as
/// `docker network create` would with these settings, and removed when its last attachment goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeNetwork {
    /// `network.name` (default: the CNI network's `name`).
    pub name: String,
    /// `network.subnet` (`--subnet`; default: the next free default pool).
    pub subnet: Option<Ipv4Net>,
    /// `network.gateway` (`--gateway`).
    pub gateway: Option<Ipv4Addr>,
    /// `network.ipRange` (`--ip-range`).
    pub ip_range: Option<Ipv4Net>,
    /// `network.internal` (`--internal`): no way out, no published ports.
    pub internal: bool,
    /// `network.options` (`-o KEY=VALUE`: `com.docker.network.bridge.name`, `...enable_icc`,
    /// ...), with `ipMasq` and `mtu` folded in.
    pub options: BTreeMap<String, String>,
}

/// What the runtime passes in `runtimeConfig` (capabilities `portMappings`, `ips`, `mac`,
/// `ipRanges`, `dns`); other capabilities are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// `portMappings`: ports to publish (when `publishPorts`).
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    /// `ips`: static addresses (`10.88.0.5/16` or `10.88.0.5`).
    #[serde(default)]
    pub ips: Vec<String>,
    /// `mac`: the interface's MAC address.
    #[serde(default)]
    pub mac: Option<String>,
    /// `ipRanges`: one range set per address family; the first range of a set that lies in
    /// the network is where the address comes from.
    #[serde(default)]
    pub ip_ranges: Vec<Vec<IpRange>>,
    /// `dns`: the runtime's DNS settings, returned in the result.
    #[serde(default)]
    pub dns: Option<RuntimeDns>,
}

/// One entry of `runtimeConfig.portMappings`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PortMapping {
    /// The host port (0: berth chooses one).
    #[serde(default)]
    pub host_port: u16,
    /// The container port.
    pub container_port: u16,
    /// `tcp` (default), `udp` or `sctp`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// The host address (empty: every address).
    #[serde(default, rename = "hostIP")]
    pub host_ip: Option<String>,
}

/// One range of `runtimeConfig.ipRanges` (host-local's range syntax).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct IpRange {
    /// The subnet.
    pub subnet: IpNet,
    /// The first address to hand out.
    #[serde(default)]
    pub range_start: Option<IpAddr>,
    /// The last address to hand out.
    #[serde(default)]
    pub range_end: Option<IpAddr>,
    /// The gateway.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

/// `runtimeConfig.dns` (the conventions' shape).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct RuntimeDns {
    /// Name servers.
    #[serde(default)]
    pub servers: Vec<String>,
    /// Search domains.
    #[serde(default)]
    pub searches: Vec<String>,
    /// Resolver options.
    #[serde(default)]
    pub options: Vec<String>,
}

/// One entry of `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
pub struct Attachment {
    /// The container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface name.
    pub ifname: String,
}

/// The keys of the `network` object.
const NETWORK_KEYS: [&str; 6] = [
    "name", "subnet", "gateway", "ipRange", "internal", "options",
];

/// The cniVersion of a configuration, if it has one berth-cni speaks (for an error's JSON
/// before the whole configuration could be read).
pub fn peek_version(stdin: &[u8]) -> Option<CniVersion> {
    let v: Value = serde_json::from_slice(stdin).ok()?;
    negotiate(v.get("cniVersion")?.as_str()?).ok()
}

impl NetConf {
    /// Reads a configuration: not JSON is code 6, a missing or unspoken `cniVersion` code 1, a
    /// bad or missing value code 7, an unsupported key code 2.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let value: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                ErrorCode::Decode,
                "the network configuration on stdin is not JSON",
                e.to_string(),
            )
        })?;
        let Value::Object(obj) = value else {
            return Err(CniError::new(
                ErrorCode::Decode,
                "the network configuration on stdin is not a JSON object",
                "",
            ));
        };
        NetConf::from_object(&obj)
    }

    fn from_object(obj: &Map<String, Value>) -> Result<NetConf, CniError> {
        let version: String = required(obj, "cniVersion").map_err(|e| {
            if obj.contains_key("cniVersion") {
                e
            } else {
                e.with_code(ErrorCode::IncompatibleVersion)
            }
        })?;
        let cni_version = negotiate(&version)?;
        let name: String = required(obj, "name")?;
        validate_name("name", &name)?;
        let plugin_type: String = required(obj, "type")?;
        if obj.contains_key("ipam") {
            return Err(CniError::unsupported(format!(
                "ipam: {}: berth-cni allocates addresses itself (berth's IPAM); set network.subnet, network.ipRange and network.gateway instead",
                clip(&obj["ipam"].to_string())
            )));
        }
        let network = bridge_network(obj, &name)?;
        let firewall = match optional::<String>(obj, "firewallBackend")?.as_deref() {
            None | Some("iptables") => Some(FirewallBackend::Iptables),
            Some("nftables") => Some(FirewallBackend::Nftables),
            Some("none") => None,
            Some(other) => {
                return Err(CniError::config(format!(
                    "firewallBackend: {:?} is not iptables, nftables or none",
                    clip(other)
                )));
            }
        };
        let lock_timeout = match optional::<f64>(obj, "lockTimeout")? {
            None => DEFAULT_LOCK_TIMEOUT,
            Some(s) if s > 0.0 && s <= 3600.0 => Duration::from_secs_f64(s),
            Some(s) => {
                return Err(CniError::config(format!(
                    "lockTimeout: {s} is not a number of seconds from above 0 to 3600"
                )));
            }
        };
        let mut attachments: Option<Vec<Attachment>> = optional(obj, "cni.dev/valid-attachments")?;
        if attachments.is_none() {
            attachments = optional(obj, "cni.dev/attachments")?;
        }
        let prev_result = match obj.get("prevResult") {
            None | Some(Value::Null) => None,
            Some(v) => Some(CniResult::from_value(v).map_err(|e| {
                CniError::config(format!("prevResult: {e} (the runtime's cached result)"))
            })?),
        };
        Ok(NetConf {
            cni_version,
            name,
            plugin_type,
            data_root: optional(obj, "dataRoot")?.unwrap_or_else(|| DEFAULT_DATA_ROOT.into()),
            exec_root: optional(obj, "execRoot")?.unwrap_or_else(|| DEFAULT_EXEC_ROOT.into()),
            network,
            firewall,
            ip_forward: optional(obj, "ipForward")?.unwrap_or(true),
            publish_ports: optional(obj, "publishPorts")?.unwrap_or(true),
            default_address_pools: optional(obj, "defaultAddressPools")?,
            lock_timeout,
            dns: optional(obj, "dns")?,
            runtime: optional(obj, "runtimeConfig")?.unwrap_or_default(),
            prev_result,
            valid_attachments: attachments,
        })
    }
}

/// The `network` object, with `ipMasq` and `mtu` folded into its options.
fn bridge_network(obj: &Map<String, Value>, cni_name: &str) -> Result<BridgeNetwork, CniError> {
    let empty = Map::new();
    let net = match obj.get("network") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(CniError::config(format!(
                "network: {} is not an object",
                clip(&other.to_string())
            )));
        }
    };
    if let Some((k, v)) = net
        .iter()
        .find(|(k, _)| !NETWORK_KEYS.contains(&k.as_str()))
    {
        return Err(CniError::unsupported(format!(
            "network.{}: {} is not a key berth-cni knows (it knows {})",
            clip(k),
            clip(&v.to_string()),
            NETWORK_KEYS.join(", ")
        )));
    }
    let at = |k: &str| format!("network.{k}");
    let name = match typed_at::<String>(net, "name", &at("name"))? {
        Some(n) => n,
        None => cni_name.to_owned(),
    };
    validate_name("network.name", &name)?;
    let subnet: Option<Ipv4Net> = typed_at(net, "subnet", &at("subnet"))?;
    let gateway: Option<Ipv4Addr> = typed_at(net, "gateway", &at("gateway"))?;
    let ip_range: Option<Ipv4Net> = typed_at(net, "ipRange", &at("ipRange"))?;
    if subnet.is_none() && (gateway.is_some() || ip_range.is_some()) {
        return Err(CniError::config(
            "network.gateway and network.ipRange need network.subnet (as --gateway and --ip-range need --subnet)",
        ));
    }
    if let (Some(s), Some(g)) = (subnet, gateway) {
        if !s.contains(&g) {
            return Err(CniError::config(format!(
                "network.gateway {g} is not in network.subnet {s}"
            )));
        }
    }
    if let (Some(s), Some(r)) = (subnet, ip_range) {
        if !s.contains(&r) {
            return Err(CniError::config(format!(
                "network.ipRange {r} is not in network.subnet {s}"
            )));
        }
    }
    let internal = typed_at::<bool>(net, "internal", &at("internal"))?.unwrap_or(false);
    let mut options: BTreeMap<String, String> =
        typed_at(net, "options", &at("options"))?.unwrap_or_default();
    let mut fold = |key: &str, option: &str, value: Option<String>| -> Result<(), CniError> {
        let Some(value) = value else {
            return Ok(());
        };
        match options.get(option) {
            Some(given) if *given != value => Err(CniError::config(format!(
                "{key} ({value}) and network.options.{option} ({given}) disagree: give one of them"
            ))),
            _ => {
                options.insert(option.to_owned(), value);
                Ok(())
            }
        }
    };
    fold(
        "ipMasq",
        IP_MASQUERADE_OPTION,
        optional::<bool>(obj, "ipMasq")?.map(|b| b.to_string()),
    )?;
    fold(
        "mtu",
        MTU_OPTION,
        optional::<u32>(obj, "mtu")?.map(|m| m.to_string()),
    )?;
    Ok(BridgeNetwork {
        name,
        subnet,
        gateway,
        ip_range,
        internal,
        options,
    })
}

/// Docker's (and the CNI spec's) rule for network names: a letter or digit, then letters,
/// digits, `_`, `.` and `-`.
fn validate_name(key: &str, name: &str) -> Result<(), CniError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= 128;
    if ok {
        Ok(())
    } else {
        Err(CniError::config(format!(
            "{key}: {:?} is not a network name (a letter or digit, then letters, digits, '_', '.' or '-'; at most 128)",
            clip(name)
        )))
    }
}

fn required<T: DeserializeOwned>(obj: &Map<String, Value>, key: &str) -> Result<T, CniError> {
    optional(obj, key)?.ok_or_else(|| CniError::config(format!("{key} is missing")))
}

fn optional<T: DeserializeOwned>(
    obj: &Map<String, Value>,
    key: &str,
) -> Result<Option<T>, CniError> {
    typed_at(obj, key, key)
}

/// `obj[key]` as a `T` (absent or null: `None`); an error names `shown` and the path inside.
fn typed_at<T: DeserializeOwned>(
    obj: &Map<String, Value>,
    key: &str,
    shown: &str,
) -> Result<Option<T>, CniError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_path_to_error::deserialize(v).map(Some).map_err(|e| {
            let path = e.path().to_string();
            let at = match path.as_str() {
                "." => shown.to_owned(),
                p if p.starts_with('[') => format!("{shown}{p}"),
                p => format!("{shown}.{p}"),
            };
            CniError::config(format!("{at}: {}", e.inner()))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<NetConf, CniError> {
        NetConf::parse(json.as_bytes())
    }

    fn code(json: &str) -> Option<ErrorCode> {
        parse(json).err().map(|e| e.code)
    }

    #[test]
    fn minimal_configuration_takes_the_defaults() {
        let c = parse(r#"{"cniVersion":"1.1.0","name":"mynet","type":"berth-cni"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.network.name, "mynet");
        assert_eq!(c.data_root, PathBuf::from(DEFAULT_DATA_ROOT));
        assert_eq!(c.firewall, Some(FirewallBackend::Iptables));
        assert!(c.publish_ports && c.ip_forward);
        assert_eq!(c.lock_timeout, DEFAULT_LOCK_TIMEOUT);
    }

    #[test]
    fn full_configuration() {
        let c = parse(
            r#"{"cniVersion":"0.4.0","name":"n","type":"berth-cni","dataRoot":"/d","execRoot":"/e",
                "network":{"name":"web","subnet":"10.1.0.0/24","gateway":"10.1.0.1","ipRange":"10.1.0.128/25",
                           "internal":false,"options":{"com.docker.network.bridge.name":"br-web"}},
                "firewallBackend":"nftables","ipMasq":false,"mtu":1400,"publishPorts":false,
                "defaultAddressPools":[{"base":"10.200.0.0/16","size":24}],"lockTimeout":2.5,
                "dns":{"nameservers":["10.1.0.1"]},
                "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":""}],
                                 "ips":["10.1.0.200/24"],"mac":"02:00:00:00:00:01","bandwidth":{"x":1}},
                "cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],
                "somethingElse":{"ignored":true}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.cni_version, CniVersion::V0_4_0);
        assert_eq!(c.network.name, "web");
        assert_eq!(c.network.options[IP_MASQUERADE_OPTION], "false");
        assert_eq!(c.network.options[MTU_OPTION], "1400");
        assert_eq!(c.firewall, Some(FirewallBackend::Nftables));
        assert!(!c.publish_ports);
        assert_eq!(c.runtime.port_mappings[0].container_port, 80);
        assert_eq!(c.valid_attachments.map(|v| v.len()), Some(1));
        assert_eq!(c.lock_timeout, Duration::from_millis(2500));
    }

    #[test]
    fn gc_takes_the_older_attachments_key_and_prefers_the_newer() {
        let c = parse(
            r#"{"cniVersion":"1.1.0","name":"n","type":"t",
                "cni.dev/attachments":[{"containerID":"old","ifname":"eth0"},{"containerID":"b","ifname":"eth1"}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<String> = c
            .valid_attachments
            .unwrap_or_default()
            .into_iter()
            .map(|a| format!("{}/{}", a.container_id, a.ifname))
            .collect();
        assert_eq!(ids, ["old/eth0", "b/eth1"]);
        let c = parse(
            r#"{"cniVersion":"1.1.0","name":"n","type":"t",
                "cni.dev/attachments":[{"containerID":"old","ifname":"eth0"}],
                "cni.dev/valid-attachments":[{"containerID":"new","ifname":"eth0"}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<String> = c
            .valid_attachments
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.container_id)
            .collect();
        assert_eq!(ids, ["new"]);
        // A bad entry under the older key is named as such.
        let e = parse(
            r#"{"cniVersion":"1.1.0","name":"n","type":"t","cni.dev/attachments":[{"ifname":"eth0"}]}"#,
        )
        .err()
        .unwrap_or_else(|| panic!("accepted"));
        assert!(e.msg.contains("cni.dev/attachments"), "{e}");
    }

    #[test]
    fn errors_have_the_spec_codes_and_name_the_key() {
        assert_eq!(code("{"), Some(ErrorCode::Decode));
        assert_eq!(code("[]"), Some(ErrorCode::Decode));
        assert_eq!(
            code(r#"{"name":"n","type":"t"}"#),
            Some(ErrorCode::IncompatibleVersion)
        );
        assert_eq!(
            code(r#"{"cniVersion":"0.2.0","name":"n","type":"t"}"#),
            Some(ErrorCode::IncompatibleVersion)
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","type":"t"}"#),
            Some(ErrorCode::InvalidConfig)
        );
        let e =
            parse(r#"{"cniVersion":"1.0.0","name":"n","type":"t","network":{"subnet":"nope"}}"#)
                .err()
                .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(e.code, ErrorCode::InvalidConfig);
        assert!(e.msg.contains("network.subnet"), "{e}");
        let e = parse(r#"{"cniVersion":"1.0.0","name":"n","type":"t","network":{"bogus":1}}"#)
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(e.code, ErrorCode::UnsupportedField);
        assert!(e.msg.contains("network.bogus"), "{e}");
        let e = parse(
            r#"{"cniVersion":"1.0.0","name":"n","type":"t","runtimeConfig":{"portMappings":[{"hostPort":"x","containerPort":80}]}}"#,
        )
        .err()
        .unwrap_or_else(|| panic!("accepted"));
        assert!(
            e.msg.contains("runtimeConfig.portMappings[0].hostPort"),
            "{e}"
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n","type":"t","ipam":{"type":"host-local"}}"#),
            Some(ErrorCode::UnsupportedField)
        );
        assert_eq!(
            code(
                r#"{"cniVersion":"1.0.0","name":"n","type":"t","ipMasq":true,"network":{"options":{"com.docker.network.bridge.enable_ip_masquerade":"false"}}}"#
            ),
            Some(ErrorCode::InvalidConfig)
        );
        assert_eq!(
            code(
                r#"{"cniVersion":"1.0.0","name":"n","type":"t","network":{"subnet":"10.0.0.0/24","gateway":"10.1.0.1"}}"#
            ),
            Some(ErrorCode::InvalidConfig)
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"bad name","type":"t"}"#),
            Some(ErrorCode::InvalidConfig)
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n","type":"t","firewallBackend":"pf"}"#),
            Some(ErrorCode::InvalidConfig)
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n","type":"t","lockTimeout":0}"#),
            Some(ErrorCode::InvalidConfig)
        );
    }

    #[test]
    fn older_attachment_key_is_read() {
        let c = parse(
            r#"{"cniVersion":"1.1.0","name":"n","type":"t","cni.dev/attachments":[{"containerID":"a","ifname":"eth0"}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.valid_attachments.map(|v| v.len()), Some(1));
    }

    #[test]
    fn peek_version_reads_only_spoken_versions() {
        assert_eq!(
            peek_version(br#"{"cniVersion":"0.4.0"}"#),
            Some(CniVersion::V0_4_0)
        );
        assert_eq!(peek_version(br#"{"cniVersion":"9.9.9"}"#), None);
        assert_eq!(peek_version(b"nope"), None);
    }
}

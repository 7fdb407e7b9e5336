//! Published ports in the shape dockerd hands them to a network driver plugin: the sandbox
//! options `com.docker.network.portmap` (libnetwork's `PortBinding` list: one entry per
//! container port, protocols by number) and `com.docker.network.exposedports` (its
//! `TransportPort` list).

use std::collections::BTreeMap;
use std::net::IpAddr;

use berth_driver::{PortSpec, Protocol};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The option key of the port mappings.
pub const PORTMAP_OPTION: &str = "com.docker.network.portmap";
/// The option key of the exposed ports.
pub const EXPOSED_PORTS_OPTION: &str = "com.docker.network.exposedports";

/// One mapping of a container port (libnetwork's `PortBinding` in JSON): an empty address
/// means none was given (all addresses); host ports 0 mean the plugin's choice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortMapping {
    /// The protocol number (6 tcp, 17 udp, 132 sctp).
    #[serde(rename = "Proto")]
    pub proto: u8,
    /// The container address (dockerd leaves it empty).
    #[serde(rename = "IP")]
    pub ip: String,
    /// The container port.
    #[serde(rename = "Port")]
    pub port: u16,
    /// The host address, or empty for all.
    #[serde(rename = "HostIP")]
    pub host_ip: String,
    /// The first host port (0: any).
    #[serde(rename = "HostPort")]
    pub host_port: u16,
    /// The last host port of the range the plugin may choose from (equal to `HostPort` for
    /// one port).
    #[serde(rename = "HostPortEnd")]
    pub host_port_end: u16,
}

/// An exposed container port (libnetwork's `TransportPort` in JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default)]
pub struct ExposedPort {
    /// The protocol number.
    #[serde(rename = "Proto")]
    pub proto: u8,
    /// The port.
    #[serde(rename = "Port")]
    pub port: u16,
}

/// The IP protocol number dockerd writes for a protocol.
pub fn protocol_number(proto: Protocol) -> u8 {
    match proto {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

/// The mappings of one `-p` spec, as dockerd expands it: a range of container ports maps port
/// by port (to the host range's port at the same offset, or to any host port); one container
/// port maps to the whole host range.
pub fn mappings(spec: &PortSpec) -> Vec<PortMapping> {
    let proto = protocol_number(spec.proto);
    let host_ip = spec
        .host_ip
        .map(|ip: IpAddr| ip.to_string())
        .unwrap_or_default();
    let container = spec.container_ports;
    let count = u32::from(container.end() - container.start()) + 1;
    (0..count)
        .filter_map(|i| {
            let port = u16::try_from(u32::from(container.start()) + i).ok()?;
            let (host_port, host_port_end) = match spec.host_ports {
                None => (0, 0),
                Some(h) if count == 1 => (h.start(), h.end()),
                Some(h) => {
                    let p = u16::try_from(u32::from(h.start()) + i).ok()?;
                    (p, p)
                }
            };
            Some(PortMapping {
                proto,
                ip: String::new(),
                port,
                host_ip: host_ip.clone(),
                host_port,
                host_port_end,
            })
        })
        .collect()
}

/// The options `ProgramExternalConnectivity` carries for `specs`: [`PORTMAP_OPTION`] with
/// every mapping and [`EXPOSED_PORTS_OPTION`] with every container port (sorted, once each).
pub fn port_options(specs: &[PortSpec]) -> BTreeMap<String, Value> {
    let maps: Vec<PortMapping> = specs.iter().flat_map(mappings).collect();
    let mut exposed: Vec<ExposedPort> = maps
        .iter()
        .map(|m| ExposedPort {
            proto: m.proto,
            port: m.port,
        })
        .collect();
    exposed.sort();
    exposed.dedup();
    let mut options = BTreeMap::new();
    options.insert(
        PORTMAP_OPTION.to_owned(),
        serde_json::to_value(maps).unwrap_or(Value::Null),
    );
    options.insert(
        EXPOSED_PORTS_OPTION.to_owned(),
        serde_json::to_value(exposed).unwrap_or(Value::Null),
    );
    options
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn specs_expand_as_dockerd_expands_them() {
        let spec = |s: &str| s.parse::<PortSpec>().unwrap();
        let m = mappings(&spec("8080:80"));
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}]"#
        );
        let m = mappings(&spec("127.0.0.1:8000-8001:80-81/udp"));
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[1].port, m[1].host_port, m[1].host_port_end),
            (81, 8001, 8001)
        );
        assert_eq!((m[1].proto, m[1].host_ip.as_str()), (17, "127.0.0.1"));
        let m = mappings(&spec("9000-9010:53"));
        assert_eq!(
            (m.len(), m[0].host_port, m[0].host_port_end),
            (1, 9000, 9010)
        );
        let m = mappings(&spec("443"));
        assert_eq!((m[0].host_port, m[0].host_port_end), (0, 0));
        let o = port_options(&[spec("8080:80"), spec("80/udp"), spec("8081:80")]);
        assert_eq!(
            o[EXPOSED_PORTS_OPTION],
            serde_json::json!([{"Proto": 6, "Port": 80}, {"Proto": 17, "Port": 80}])
        );
        assert_eq!(o[PORTMAP_OPTION].as_array().unwrap().len(), 3);
    }
}

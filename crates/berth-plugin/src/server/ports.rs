//! Published ports as dockerd hands them to a plugin (`com.docker.network.portmap`, libnetwork's
//! `PortBinding` list), read into berth's [`PortSpec`]s; and berth's bindings written back in
//! that shape for `EndpointOperInfo`. Pure.

use std::collections::BTreeMap;
use std::net::IpAddr;

use berth_driver::{PortBinding, PortRange, PortSpec, Protocol};
use serde_json::Value;

use crate::wire::PortMapping;
use crate::wire::ports::{PORTMAP_OPTION, protocol_number};

/// Why a port mapping is refused: the field (`com.docker.network.portmap[1].HostIP`), the
/// value, the reason.
pub(crate) type PortError = (String, String, String);

fn protocol(number: u8) -> Option<Protocol> {
    match number {
        6 => Some(Protocol::Tcp),
        17 => Some(Protocol::Udp),
        132 => Some(Protocol::Sctp),
        _ => None,
    }
}

/// The port specs of a sandbox's options (none when it has no `com.docker.network.portmap`,
/// or `null`). Each mapping is one container port; its host ports are `HostPort` to
/// `HostPortEnd` (one port when the end is 0), or berth's choice for `HostPort` 0; an
/// empty `HostIP` means the network's default host address.
pub(crate) fn port_specs(options: &BTreeMap<String, Value>) -> Result<Vec<PortSpec>, PortError> {
    let Some(value) = options.get(PORTMAP_OPTION).filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let maps: Vec<PortMapping> =
        crate::wire::decode(value.to_string().as_bytes()).map_err(|e| {
            (
                PORTMAP_OPTION.to_owned(),
                value.to_string(),
                format!("not a list of port bindings: {e}"),
            )
        })?;
    maps.iter()
        .enumerate()
        .map(|(i, m)| {
            let field = |name: &str| format!("{PORTMAP_OPTION}[{i}].{name}");
            let proto = protocol(m.proto).ok_or_else(|| {
                (
                    field("Proto"),
                    m.proto.to_string(),
                    "expecting 6 (tcp), 17 (udp) or 132 (sctp)".to_owned(),
                )
            })?;
            let container_ports = PortRange::single(m.port)
                .map_err(|e| (field("Port"), m.port.to_string(), e.to_string()))?;
            let host_ip = match m.host_ip.as_str() {
                "" => None,
                ip => Some(ip.parse::<IpAddr>().map_err(|_| {
                    (
                        field("HostIP"),
                        ip.to_owned(),
                        "not an IP address".to_owned(),
                    )
                })?),
            };
            let host_ports = match (m.host_port, m.host_port_end) {
                (0, 0) => None,
                (0, end) => {
                    return Err((
                        field("HostPort"),
                        "0".to_owned(),
                        format!("a host port range must start with a port (it ends at {end})"),
                    ));
                }
                (start, 0) => Some(
                    PortRange::single(start)
                        .map_err(|e| (field("HostPort"), start.to_string(), e.to_string()))?,
                ),
                (start, end) => Some(
                    PortRange::new(start, end)
                        .map_err(|e| (field("HostPortEnd"), end.to_string(), e.to_string()))?,
                ),
            };
            Ok(PortSpec {
                host_ip,
                host_ports,
                container_ports,
                proto,
            })
        })
        .collect()
}

/// Bindings in dockerd's `PortBinding` shape, one per container port (a range of equal
/// lengths expands port by port).
pub(crate) fn portmap_value(bindings: &[PortBinding]) -> Value {
    let maps: Vec<PortMapping> = bindings
        .iter()
        .flat_map(|b| {
            (0..b.container_ports.len()).filter_map(move |i| {
                let offset = u16::try_from(i).ok()?;
                let host = b.host_ports.start().checked_add(offset)?;
                Some(PortMapping {
                    proto: protocol_number(b.proto),
                    ip: String::new(),
                    port: b.container_ports.start().checked_add(offset)?,
                    host_ip: b.host_ip.to_string(),
                    host_port: host,
                    host_port_end: host,
                })
            })
        })
        .collect();
    serde_json::to_value(maps).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::wire::port_options;

    fn options(portmap: Value) -> BTreeMap<String, Value> {
        [(PORTMAP_OPTION.to_owned(), portmap)].into()
    }

    #[test]
    fn dockerds_mappings_become_port_specs() {
        let specs = port_specs(&options(json!([
            {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080},
            {"Proto": 17, "IP": "", "Port": 53, "HostIP": "127.0.0.1", "HostPort": 0, "HostPortEnd": 0},
            {"Proto": 6, "IP": "", "Port": 443, "HostIP": "::", "HostPort": 9000, "HostPortEnd": 9010},
            {"Proto": 132, "Port": 7, "HostPort": 7}
        ])))
        .unwrap();
        let shown: Vec<String> = specs
            .iter()
            .map(|s| {
                format!(
                    "{:?} {:?} {:?} {}",
                    s.proto,
                    s.host_ip,
                    s.host_ports.map(|r| r.to_string()),
                    s.container_ports
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                "Tcp None Some(\"8080\") 80",
                "Udp Some(127.0.0.1) None 53",
                "Tcp Some(::) Some(\"9000-9010\") 443",
                "Sctp None Some(\"7\") 7",
            ]
        );
        // What berth's own client sends reads back as the same specs.
        let given: Vec<PortSpec> = ["8080:80", "127.0.0.1::53/udp"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(port_specs(&port_options(&given)).unwrap(), given);
        // No ports.
        assert!(port_specs(&BTreeMap::new()).unwrap().is_empty());
        assert!(port_specs(&options(Value::Null)).unwrap().is_empty());
    }

    #[test]
    fn bad_mappings_name_the_field() {
        for (bad, field) in [
            (json!([{"Proto": 1, "Port": 80}]), "[0].Proto"),
            (json!([{"Proto": 6, "Port": 0}]), "[0].Port"),
            (
                json!([{"Proto": 6, "Port": 80, "HostIP": "x"}]),
                "[0].HostIP",
            ),
            (
                json!([{"Proto": 6, "Port": 80, "HostPortEnd": 9}]),
                "[0].HostPort",
            ),
            (
                json!([{"Proto": 6, "Port": 80, "HostPort": 9, "HostPortEnd": 0}, {"Proto": 6, "Port": 81, "HostPort": 9, "HostPortEnd": 5}]),
                "[1].HostPortEnd",
            ),
            (json!({"Proto": 6}), ""),
        ] {
            let (f, _, reason) = port_specs(&options(bad.clone())).unwrap_err();
            assert!(f.ends_with(field), "{bad}: {f} {reason}");
        }
    }

    #[test]
    fn bindings_in_dockerds_shape() {
        let b = PortBinding {
            proto: Protocol::Udp,
            host_ip: "0.0.0.0".parse().unwrap(),
            host_ports: PortRange::new(9000, 9001).unwrap(),
            container_ports: PortRange::new(53, 54).unwrap(),
        };
        assert_eq!(
            portmap_value(&[b]),
            json!([
                {"Proto": 17, "IP": "", "Port": 53, "HostIP": "0.0.0.0", "HostPort": 9000, "HostPortEnd": 9000},
                {"Proto": 17, "IP": "", "Port": 54, "HostIP": "0.0.0.0", "HostPort": 9001, "HostPortEnd": 9001}
            ])
        );
    }
}

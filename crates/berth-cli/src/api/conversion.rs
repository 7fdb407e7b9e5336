//! Conversion of decoded bodies into the controller's requests ([`berth::NetworkCreate`],
//! [`berth::EndpointOptions`], [`berth::SandboxCreate`]), with the validation and Docker's
//! messages for what berth refuses.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use berth::{
    DnsSettings, EndpointOptions, ExposedPort, HostEntry, IpamPoolConfig, MacAddr, NetworkCreate,
    PortSpec, SandboxCreate, SandboxNetns,
};

use super::bodies::{EndpointSettingsBody, NetworkCreateBody, PortBindingBody, SandboxCreateBody};
use super::error::ApiError;

/// A decoded `POST /sandboxes/create`.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxSpec {
    /// The controller's create request (with its network and that endpoint's options, ports
    /// included).
    pub create: SandboxCreate,
}
pub(super) fn container_name(s: &str) -> Result<String, ApiError> {
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

pub(super) fn network_create(b: NetworkCreateBody) -> Result<NetworkCreate, ApiError> {
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
    let ipam_driver = if b.ipam.driver.is_empty() {
        "default".to_owned()
    } else {
        b.ipam.driver
    };
    let mut req = NetworkCreate::new(b.name);
    if !b.driver.is_empty() {
        req.driver = b.driver;
    }
    req.ipam_driver = ipam_driver;
    req.ipam_options = b.ipam.options;
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

pub(super) fn endpoint_options(e: &EndpointSettingsBody) -> Result<EndpointOptions, ApiError> {
    if !e.ipam_config.link_local_ips.is_empty() {
        return Err(ApiError::bad_request(
            "link-local addresses (--link-local-ip) are not supported by berth",
        ));
    }
    check_aliases(&e.aliases)?;
    Ok(EndpointOptions {
        ipv4: parse_v4(&e.ipam_config.ipv4_address)?,
        ipv6: parse_v6(&e.ipam_config.ipv6_address)?,
        aliases: e.aliases.clone(),
        links: parse_links(&e.links)?,
        mac: parse_mac(&e.mac_address)?,
        driver_opts: e.driver_opts.clone(),
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

pub(super) fn sandbox_spec(b: SandboxCreateBody) -> Result<SandboxSpec, ApiError> {
    if b.name.is_empty() {
        return Err(ApiError::bad_request(
            "invalid sandbox name \"\": a sandbox needs a name",
        ));
    }
    // Docker's default mode: the controller picks `bridge`, or `none` without a default bridge.
    let mode = if b.network_mode.is_empty() {
        "default".to_owned()
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
        ..Default::default()
    };
    create.network = Some(mode);
    create.endpoint = endpoint;
    create.env = b.env;
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
    use crate::api::{Request, decode};

    const J: Option<&str> = Some("application/json");
    #[test]
    fn create_bodies() {
        let body = br#"{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.99.0.0/24","IPRange":"10.99.0.128/25","Gateway":"10.99.0.1","AuxiliaryAddresses":{"r":"10.99.0.2"}}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{"com.docker.network.bridge.enable_icc":"false"},"Labels":{"a":"b"},"Name":"probe_nw","CheckDuplicate":true,"EnableIPv4":true}"#;
        let Request::CreateNetwork(c, _) =
            decode("POST", "/v1.41/networks/create", J, body).unwrap()
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

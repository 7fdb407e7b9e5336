//! Docker's `-p` syntax: `[IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO]`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use berth_firewall::{PortRange, Protocol};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One `-p` publication, as the user wrote it (host ports may be left to berth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortSpec {
    /// The host address (None: the network's default binding address, usually all addresses).
    pub host_ip: Option<IpAddr>,
    /// The host ports (None: chosen by berth from the ephemeral range).
    pub host_ports: Option<PortRange>,
    /// The container ports.
    pub container_ports: PortRange,
    /// The protocol (tcp by default).
    pub proto: Protocol,
}

/// An exposed port (`--expose 80/tcp`): metadata only, nothing is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExposedPort {
    /// The container ports.
    pub ports: PortRange,
    /// The protocol.
    pub proto: Protocol,
}

fn bad(spec: &str, part: &str, reason: impl Into<String>) -> Error {
    Error::InvalidSpec {
        spec: spec.chars().take(200).collect(),
        part: part.chars().take(200).collect(),
        reason: reason.into(),
    }
}

fn parse_proto(spec: &str, p: &str) -> Result<Protocol> {
    match p.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "sctp" => Ok(Protocol::Sctp),
        _ => Err(bad(spec, p, "unknown protocol: use tcp, udp or sctp")),
    }
}

fn parse_port(spec: &str, p: &str) -> Result<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(spec, p, "a port is a number from 1 to 65535"));
    }
    match p.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(bad(spec, p, "a port is a number from 1 to 65535")),
    }
}

/// Parses `80` or `8000-8010`.
pub(crate) fn parse_range(spec: &str, p: &str) -> Result<PortRange> {
    let (a, b) = match p.split_once('-') {
        Some((a, b)) => (parse_port(spec, a)?, parse_port(spec, b)?),
        None => {
            let n = parse_port(spec, p)?;
            (n, n)
        }
    };
    PortRange::new(a, b)
        .map_err(|_| bad(spec, p, "the range is reversed: write the lower port first"))
}

/// Splits off the `/proto` suffix.
fn split_proto<'a>(spec: &str, s: &'a str) -> Result<(&'a str, Protocol)> {
    match s.rsplit_once('/') {
        Some((rest, proto)) => Ok((rest, parse_proto(spec, proto)?)),
        None => Ok((s, Protocol::Tcp)),
    }
}

impl FromStr for PortSpec {
    type Err = Error;

    fn from_str(spec: &str) -> Result<PortSpec> {
        let (rest, proto) = split_proto(spec, spec.trim())?;
        // An IPv6 host address is bracketed: [::1]:8080:80.
        let (host_ip, rest) = if let Some(after) = rest.strip_prefix('[') {
            let (ip, tail) = after
                .split_once(']')
                .ok_or_else(|| bad(spec, rest, "an IPv6 address needs a closing ']'"))?;
            let ip: IpAddr = ip.parse().map_err(|_| bad(spec, ip, "not an IP address"))?;
            if ip.is_ipv4() {
                return Err(bad(
                    spec,
                    ip.to_string().as_str(),
                    "brackets are for IPv6 addresses",
                ));
            }
            let tail = tail
                .strip_prefix(':')
                .ok_or_else(|| bad(spec, tail, "expected ':' after the IPv6 address"))?;
            (Some(ip), tail)
        } else {
            (None, rest)
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (ip_part, host_part, container_part) = match (host_ip, parts.as_slice()) {
            (Some(_), [h, c]) => (None, Some(*h), *c),
            (None, [c]) => (None, None, *c),
            (None, [h, c]) => (None, Some(*h), *c),
            (None, [ip, h, c]) => (Some(*ip), Some(*h), *c),
            _ => {
                return Err(bad(
                    spec,
                    rest,
                    "expected [IP:][HOST_PORT:]CONTAINER_PORT (IPv6 addresses in brackets)",
                ));
            }
        };
        let host_ip = match ip_part {
            Some(ip) => Some(
                ip.parse::<IpAddr>()
                    .map_err(|_| bad(spec, ip, "not an IP address"))?,
            ),
            None => host_ip,
        };
        let host_ports = match host_part {
            None | Some("") => None,
            Some(h) => Some(parse_range(spec, h)?),
        };
        let container_ports = parse_range(spec, container_part)?;
        if let Some(h) = host_ports {
            if h.len() != container_ports.len() && container_ports.len() != 1 {
                return Err(bad(
                    spec,
                    rest,
                    "the host and container ranges must be as long as each other (or the container side one port)",
                ));
            }
        }
        Ok(PortSpec {
            host_ip,
            host_ports,
            container_ports,
            proto,
        })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        match self.host_ports {
            Some(h) => write!(f, "{h}:")?,
            None if self.host_ip.is_some() => write!(f, ":")?,
            None => {}
        }
        write!(f, "{}/{}", self.container_ports, self.proto)
    }
}

impl FromStr for ExposedPort {
    type Err = Error;

    fn from_str(spec: &str) -> Result<ExposedPort> {
        let (rest, proto) = split_proto(spec, spec.trim())?;
        Ok(ExposedPort {
            ports: parse_range(spec, rest)?,
            proto,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PortSpec {
        s.parse().unwrap()
    }

    #[test]
    fn docker_forms() {
        let r = |a, b| PortRange::new(a, b).unwrap();
        assert_eq!(
            p("80"),
            PortSpec {
                host_ip: None,
                host_ports: None,
                container_ports: r(80, 80),
                proto: Protocol::Tcp
            }
        );
        assert_eq!(p("8080:80").host_ports, Some(r(8080, 8080)));
        let s = p("127.0.0.1:8080:80");
        assert_eq!(s.host_ip, Some("127.0.0.1".parse().unwrap()));
        let s = p("127.0.0.1::80");
        assert_eq!((s.host_ports, s.container_ports), (None, r(80, 80)));
        let s = p("[::1]:8080:80");
        assert_eq!(s.host_ip, Some("::1".parse().unwrap()));
        let s = p("8000-8010:80-90");
        assert_eq!(
            (s.host_ports, s.container_ports),
            (Some(r(8000, 8010)), r(80, 90))
        );
        assert_eq!(p("9000-9999:9000-9999").host_ports.unwrap().len(), 1000);
        assert_eq!(p("53:53/udp").proto, Protocol::Udp);
        assert_eq!(p("5000/SCTP").proto, Protocol::Sctp);
        assert_eq!(
            p("8000-8010:80").host_ports,
            Some(r(8000, 8010)),
            "pick one of a range"
        );
        assert_eq!(p("[::]::80/udp").host_ip, Some("::".parse().unwrap()));
        for s in [
            "80",
            "8080:80",
            "127.0.0.1:8080:80/udp",
            "[::1]:8080:80/tcp",
            "8000-8010:80-90/sctp",
            "10.0.0.1::80/tcp",
        ] {
            assert_eq!(p(&p(s).to_string()), p(s), "{s}");
        }
        let e: ExposedPort = "8000-8010/udp".parse().unwrap();
        assert_eq!((e.ports, e.proto), (r(8000, 8010), Protocol::Udp));
    }

    #[test]
    fn errors_name_the_bad_part() {
        for (spec, part) in [
            ("0", "0"),
            ("65536", "65536"),
            ("80/icmp", "icmp"),
            ("90-80", "90-80"),
            ("8000-8010:80-85", "8000-8010:80-85"),
            ("1.2.3:80:80", "1.2.3"),
            ("::1:80:80", "::1:80:80"),
            ("[::1:8080:80", "[::1:8080:80"),
            ("[1.2.3.4]:80:80", "1.2.3.4"),
            ("a:b:c:d", "a:b:c:d"),
            ("", ""),
            ("80:", ""),
            ("+80", "+80"),
        ] {
            let err = spec.parse::<PortSpec>().unwrap_err();
            match &err {
                Error::InvalidSpec { part: got, .. } => assert_eq!(got, part, "{spec}: {err}"),
                other => panic!("{spec}: {other}"),
            }
        }
    }
}

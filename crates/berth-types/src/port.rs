//! Transport protocols, port ranges, and the ports a driver publishes: `-p` specs and the
//! bindings made of them.
//!
//! [`PortSpec`] parses Docker's syntax `[IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO]`;
//! a [`PortBinding`] is one publication after host ports were chosen.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A transport protocol berth can match and publish. Serialised as `"Tcp"`, `"Udp"`, `"Sctp"`
/// (the form stored port bindings have); shown and parsed as `tcp`, `udp`, `sctp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// TCP (sorts first among equal port numbers, as in Docker).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP (host sockets need the kernel's sctp module).
    Sctp,
}

impl Protocol {
    /// The lower-case name (`tcp`, `udp`, `sctp`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = Error;

    /// Parses `tcp`, `udp` or `sctp`, in any case.
    fn from_str(s: &str) -> Result<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err(Error::UnknownProtocol {
                given: s.chars().take(200).collect(),
            }),
        }
    }
}

/// An inclusive range of ports, `start..=end`, never containing port 0. Serialised as the pair
/// `[start, end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "(u16, u16)", into = "(u16, u16)")]
pub struct PortRange {
    start: u16,
    end: u16,
}

impl PortRange {
    /// A range `start..=end`. Refuses port 0 and `start > end`.
    pub fn new(start: u16, end: u16) -> Result<PortRange> {
        let given = || format!("{start}-{end}");
        if start == 0 || end == 0 {
            return Err(Error::InvalidPortRange {
                given: given(),
                reason: "port 0 cannot be matched or published; use ports 1 to 65535",
            });
        }
        if start > end {
            return Err(Error::InvalidPortRange {
                given: given(),
                reason: "the range is reversed; write the lower port first",
            });
        }
        Ok(PortRange { start, end })
    }

    /// Port 53 (DNS).
    pub const DNS: PortRange = PortRange { start: 53, end: 53 };

    /// A single port. Refuses port 0.
    pub fn single(port: u16) -> Result<PortRange> {
        PortRange::new(port, port)
    }

    /// First port.
    pub fn start(self) -> u16 {
        self.start
    }

    /// Last port.
    pub fn end(self) -> u16 {
        self.end
    }

    /// Number of ports (at least 1).
    pub fn len(self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1
    }

    /// Always false: a range holds at least one port. Present for API symmetry with `len`.
    pub fn is_empty(self) -> bool {
        false
    }

    /// True for a range of one port.
    pub fn is_single(self) -> bool {
        self.start == self.end
    }

    /// True if the two ranges share a port.
    pub fn overlaps(self, other: PortRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

impl fmt::Display for PortRange {
    /// `80` or `9000-9999` (also the nftables syntax).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl FromStr for PortRange {
    type Err = Error;

    /// Parses `80`, `9000-9999` or `9000:9999`.
    fn from_str(s: &str) -> Result<PortRange> {
        let bad = || Error::InvalidPortRange {
            given: s.chars().take(200).collect(),
            reason: "expected a port (1-65535) or a range like 9000-9999",
        };
        let parse = |p: &str| p.trim().parse::<u16>().map_err(|_| bad());
        match s.split_once(['-', ':']) {
            Some((a, b)) => PortRange::new(parse(a)?, parse(b)?),
            None => PortRange::single(parse(s)?),
        }
    }
}

impl TryFrom<(u16, u16)> for PortRange {
    type Error = Error;
    fn try_from((a, b): (u16, u16)) -> Result<PortRange> {
        PortRange::new(a, b)
    }
}

impl From<PortRange> for (u16, u16) {
    fn from(r: PortRange) -> (u16, u16) {
        (r.start, r.end)
    }
}

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

/// One published mapping after host ports were chosen: `host_ip:host_ports -> container_ports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortBinding {
    /// The protocol.
    pub proto: Protocol,
    /// The host address (`0.0.0.0` or `::` for all addresses of the family).
    pub host_ip: IpAddr,
    /// The host ports.
    pub host_ports: PortRange,
    /// The container ports (as long as `host_ports`).
    pub container_ports: PortRange,
}

fn bad(spec: &str, part: &str, reason: impl Into<String>) -> Error {
    Error::InvalidPortSpec {
        spec: spec.chars().take(200).collect(),
        part: part.chars().take(200).collect(),
        reason: reason.into(),
    }
}

fn parse_proto(spec: &str, p: &str) -> Result<Protocol> {
    p.parse()
        .map_err(|_| bad(spec, p, "unknown protocol: use tcp, udp or sctp"))
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
fn parse_range(spec: &str, p: &str) -> Result<PortRange> {
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

/// Parses Docker's `--expose` syntax, `PORT[-END][/PROTO]` (tcp when no protocol is given),
/// with the errors of [`PortSpec`]'s parser.
pub fn parse_exposed_port(spec: &str) -> Result<(PortRange, Protocol)> {
    let (rest, proto) = split_proto(spec, spec.trim())?;
    Ok((parse_range(spec, rest)?, proto))
}

impl FromStr for PortSpec {
    type Err = Error;

    /// Parses Docker's `-p` syntax, `[IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO]`
    /// (IPv6 host addresses in brackets); [`Error::InvalidPortSpec`] names the bad part.
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pr(a: u16, b: u16) -> PortRange {
        PortRange::new(a, b).unwrap()
    }

    fn p(s: &str) -> PortSpec {
        s.parse().unwrap()
    }

    #[test]
    fn ranges() {
        assert!(PortRange::single(0).is_err());
        assert!(PortRange::new(10, 9).is_err());
        assert_eq!(pr(9000, 9999).len(), 1000);
        assert_eq!("9000-9999".parse::<PortRange>().unwrap(), pr(9000, 9999));
        assert_eq!("9000:9999".parse::<PortRange>().unwrap(), pr(9000, 9999));
        assert_eq!("80".parse::<PortRange>().unwrap(), pr(80, 80));
        for bad in ["0", "x", "70000", "9-8"] {
            assert!(
                matches!(
                    bad.parse::<PortRange>(),
                    Err(Error::InvalidPortRange { .. })
                ),
                "{bad}"
            );
        }
        assert!(pr(1, 5).overlaps(pr(5, 9)) && !pr(1, 4).overlaps(pr(5, 9)));
        assert_eq!(pr(9000, 9999).to_string(), "9000-9999");
        assert_eq!(serde_json::to_string(&pr(80, 90)).unwrap(), "[80,90]");
        assert_eq!(
            serde_json::from_str::<PortRange>("[80,90]").unwrap(),
            pr(80, 90)
        );
        assert!(serde_json::from_str::<PortRange>("[90,80]").is_err());
        assert!(serde_json::from_str::<PortRange>("[0,0]").is_err());
    }

    #[test]
    fn protocols() {
        assert_eq!("TCP".parse::<Protocol>().unwrap(), Protocol::Tcp);
        assert_eq!("sctp".parse::<Protocol>().unwrap(), Protocol::Sctp);
        assert_eq!(
            "icmp".parse::<Protocol>(),
            Err(Error::UnknownProtocol {
                given: "icmp".into()
            })
        );
        assert_eq!(Protocol::Udp.to_string(), "udp");
        assert!(Protocol::Tcp < Protocol::Udp && Protocol::Udp < Protocol::Sctp);
    }

    /// Port bindings and exposed ports are stored in endpoint records: their serialised form
    /// must not change.
    #[test]
    fn stored_forms_stay() {
        for (proto, text) in [
            (Protocol::Tcp, r#""Tcp""#),
            (Protocol::Udp, r#""Udp""#),
            (Protocol::Sctp, r#""Sctp""#),
        ] {
            assert_eq!(serde_json::to_string(&proto).unwrap(), text);
            assert_eq!(serde_json::from_str::<Protocol>(text).unwrap(), proto);
        }
        let stored = r#"{"proto":"Udp","host_ip":"0.0.0.0","host_ports":[8000,8010],"container_ports":[80,90]}"#;
        let b: PortBinding = serde_json::from_str(stored).unwrap();
        assert_eq!(
            b,
            PortBinding {
                proto: Protocol::Udp,
                host_ip: "0.0.0.0".parse().unwrap(),
                host_ports: pr(8000, 8010),
                container_ports: pr(80, 90),
            }
        );
        assert_eq!(serde_json::to_string(&b).unwrap(), stored);
        let spec = r#"{"host_ip":null,"host_ports":null,"container_ports":[80,80],"proto":"Tcp"}"#;
        assert_eq!(serde_json::from_str::<PortSpec>(spec).unwrap(), p("80"));
        assert_eq!(serde_json::to_string(&p("80")).unwrap(), spec);
    }

    #[test]
    fn docker_forms() {
        let r = pr;
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
        assert_eq!(
            parse_exposed_port("8000-8010/udp").unwrap(),
            (r(8000, 8010), Protocol::Udp)
        );
        assert_eq!(
            parse_exposed_port(" 80 ").unwrap(),
            (r(80, 80), Protocol::Tcp)
        );
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
                Error::InvalidPortSpec { part: got, .. } => assert_eq!(got, part, "{spec}: {err}"),
                other => panic!("{spec}: {other}"),
            }
        }
        for (spec, part) in [
            ("80/icmp", "icmp"),
            ("0", "0"),
            ("1.2.3.4:80", "1.2.3.4:80"),
        ] {
            match parse_exposed_port(spec) {
                Err(Error::InvalidPortSpec { part: got, .. }) => assert_eq!(got, part, "{spec}"),
                other => panic!("{spec}: {other:?}"),
            }
        }
    }
}

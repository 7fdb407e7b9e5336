//! Legacy links (`--link name:alias` on the default bridge): the environment variables Docker
//! gives the linking container about the linked one.

use std::net::IpAddr;

use crate::error::{Error, Result};

pub use berth_types::Protocol;

/// The protocol as Docker spells it in link variable names (`TCP`, `UDP`, `SCTP`).
fn upper(proto: Protocol) -> &'static str {
    match proto {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

/// A port the linked container exposes (`EXPOSE 80`, `--expose 53/udp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExposedPort {
    /// The port number.
    pub port: u16,
    /// The protocol.
    pub proto: Protocol,
}

impl ExposedPort {
    /// Parses Docker's `PORT[/PROTO]` (`80`, `53/udp`, `9000/sctp`).
    pub fn parse(s: &str) -> Result<ExposedPort> {
        let invalid = |reason: &str| Error::Invalid {
            what: "exposed port",
            value: s.to_owned(),
            reason: reason.to_owned(),
        };
        let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
        let port: u16 = port
            .parse()
            .map_err(|_| invalid("the port must be a number from 1 to 65535"))?;
        if port == 0 {
            return Err(invalid("the port must be a number from 1 to 65535"));
        }
        let proto = match proto.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            _ => return Err(invalid("the protocol must be tcp, udp or sctp")),
        };
        Ok(ExposedPort { port, proto })
    }
}

/// One legacy link, seen from the linking container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link<'a> {
    /// The linking container's name (without the leading `/`).
    pub parent: &'a str,
    /// The alias (`--link name:alias`; the name when no alias is given).
    pub alias: &'a str,
    /// The linked container's address.
    pub child_addr: IpAddr,
    /// The ports the linked container exposes.
    pub ports: &'a [ExposedPort],
    /// The linked container's environment (`KEY=VALUE`; `HOME` and `PATH` are skipped).
    pub child_env: &'a [String],
}

/// The environment variables of one legacy link, in Docker's order:
///
/// - `ALIAS_PORT=proto://addr:port` of the lowest exposed port (TCP first on a tie);
/// - for each run of three or more consecutive port numbers: `ALIAS_PORT_<p>_<PROTO>_START`,
///   `_ADDR`, `_PROTO`, `_PORT_START`, `_END`, `_PORT_END`;
/// - for each port: `ALIAS_PORT_<p>_<PROTO>=proto://addr:p`, `_ADDR`, `_PORT`, `_PROTO`;
/// - `ALIAS_NAME=/parent/alias`;
/// - `ALIAS_ENV_<KEY>=<VALUE>` for the linked container's environment.
///
/// `ALIAS` is the alias upper-cased with `-` turned into `_`. IPv6 addresses are bracketed in the
/// URL forms.
pub fn link_env(link: &Link<'_>) -> Vec<String> {
    let prefix: String = link
        .alias
        .rsplit('/')
        .next()
        .unwrap_or(link.alias)
        .to_uppercase()
        .replace('-', "_");
    let addr = link.child_addr;
    let url_host = match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let url = |p: &ExposedPort| format!("{}://{url_host}:{}", p.proto.name(), p.port);
    let mut ports = link.ports.to_vec();
    ports.sort();
    ports.dedup();
    let mut env = Vec::new();
    if let Some(first) = ports.first() {
        env.push(format!("{prefix}_PORT={}", url(first)));
    }
    let mut i = 0;
    while i < ports.len() {
        let j = next_contiguous(&ports, i);
        if j > i + 1 {
            let p = ports[i];
            let q = ports[j];
            let key = format!("{prefix}_PORT_{}_{}", p.port, upper(p.proto));
            let end_key = format!("{prefix}_PORT_{}_{}", p.port, upper(q.proto));
            env.push(format!("{key}_START={}", url(&p)));
            env.push(format!("{key}_ADDR={addr}"));
            env.push(format!("{key}_PROTO={}", p.proto.name()));
            env.push(format!("{key}_PORT_START={}", p.port));
            env.push(format!("{end_key}_END={}", url(&q)));
            env.push(format!("{end_key}_PORT_END={}", q.port));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    for p in &ports {
        let key = format!("{prefix}_PORT_{}_{}", p.port, upper(p.proto));
        env.push(format!("{key}={}", url(p)));
        env.push(format!("{key}_ADDR={addr}"));
        env.push(format!("{key}_PORT={}", p.port));
        env.push(format!("{key}_PROTO={}", p.proto.name()));
    }
    env.push(format!("{prefix}_NAME=/{}/{}", link.parent, link.alias));
    for kv in link.child_env {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        if k == "HOME" || k == "PATH" {
            continue;
        }
        env.push(format!("{prefix}_ENV_{k}={v}"));
    }
    env
}

/// The index of the last port of the run of consecutive port numbers starting at `start`
/// (protocols are not compared, as in Docker).
fn next_contiguous(ports: &[ExposedPort], start: usize) -> usize {
    let base = u32::from(ports[start].port);
    for (k, p) in ports.iter().enumerate().skip(start + 1) {
        // the run goes on while each port is at most one above the run's length so far
        if u32::from(p.port) > base + (k - start) as u32 {
            return k - 1;
        }
    }
    ports.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_docker_20_10() {
        // docker run --name dnsh-plain --expose 80 --expose 53/udp --expose 8000-8002/tcp
        //   -e FOO=bar -e "SP=a b" ...; docker run --name dnsh-l --link dnsh-plain:pl ...
        let ports: Vec<ExposedPort> = ["80", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp"]
            .iter()
            .map(|p| ExposedPort::parse(p).unwrap())
            .collect();
        let env = vec![
            "PATH=/usr/bin".to_string(),
            "FOO=bar".into(),
            "SP=a b".into(),
        ];
        let got = link_env(&Link {
            parent: "dnsh-l",
            alias: "pl",
            child_addr: "172.17.0.2".parse().unwrap(),
            ports: &ports,
            child_env: &env,
        });
        let want = [
            "PL_PORT=udp://172.17.0.2:53",
            "PL_PORT_8000_TCP_START=tcp://172.17.0.2:8000",
            "PL_PORT_8000_TCP_ADDR=172.17.0.2",
            "PL_PORT_8000_TCP_PROTO=tcp",
            "PL_PORT_8000_TCP_PORT_START=8000",
            "PL_PORT_8000_TCP_END=tcp://172.17.0.2:8002",
            "PL_PORT_8000_TCP_PORT_END=8002",
            "PL_PORT_53_UDP=udp://172.17.0.2:53",
            "PL_PORT_53_UDP_ADDR=172.17.0.2",
            "PL_PORT_53_UDP_PORT=53",
            "PL_PORT_53_UDP_PROTO=udp",
            "PL_PORT_80_TCP=tcp://172.17.0.2:80",
            "PL_PORT_80_TCP_ADDR=172.17.0.2",
            "PL_PORT_80_TCP_PORT=80",
            "PL_PORT_80_TCP_PROTO=tcp",
            "PL_PORT_8000_TCP=tcp://172.17.0.2:8000",
            "PL_PORT_8000_TCP_ADDR=172.17.0.2",
            "PL_PORT_8000_TCP_PORT=8000",
            "PL_PORT_8000_TCP_PROTO=tcp",
            "PL_PORT_8001_TCP=tcp://172.17.0.2:8001",
            "PL_PORT_8001_TCP_ADDR=172.17.0.2",
            "PL_PORT_8001_TCP_PORT=8001",
            "PL_PORT_8001_TCP_PROTO=tcp",
            "PL_PORT_8002_TCP=tcp://172.17.0.2:8002",
            "PL_PORT_8002_TCP_ADDR=172.17.0.2",
            "PL_PORT_8002_TCP_PORT=8002",
            "PL_PORT_8002_TCP_PROTO=tcp",
            "PL_NAME=/dnsh-l/pl",
            "PL_ENV_FOO=bar",
            "PL_ENV_SP=a b",
        ];
        assert_eq!(got, want);
        // the same set as Docker printed (it sorts nothing; `env | sort` was compared)
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted.len(), 30);
    }

    #[test]
    fn dashes_and_no_ports() {
        let got = link_env(&Link {
            parent: "web",
            alias: "my-db",
            child_addr: "172.17.0.5".parse().unwrap(),
            ports: &[],
            child_env: &["NOEQUALS".to_string(), "HOME=/root".to_string()],
        });
        assert_eq!(got, vec!["MY_DB_NAME=/web/my-db".to_string()]);
        assert!(ExposedPort::parse("0").is_err());
        assert!(ExposedPort::parse("80/icmp").is_err());
        assert!(ExposedPort::parse("x").is_err());
    }
}

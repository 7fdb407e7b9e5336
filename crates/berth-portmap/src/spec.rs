//! Docker's `-p` and `--expose` specs: [`PortSpec`] (berth-types', re-exported) and
//! [`ExposedPort`].
//!
//! The `-p` syntax is `[IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO]`; `--expose` is
//! `PORT[-END][/PROTO]`.

use std::str::FromStr;

use berth_types::{PortRange, Protocol, parse_exposed_port};
use serde::{Deserialize, Serialize};

pub use berth_types::PortSpec;

use crate::error::{Error, Result};

/// An exposed port (`--expose 80/tcp`): metadata only, nothing is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExposedPort {
    /// The container ports.
    pub ports: PortRange,
    /// The protocol.
    pub proto: Protocol,
}

impl FromStr for ExposedPort {
    type Err = Error;

    /// Parses Docker's `--expose` syntax, `PORT[-END][/PROTO]` (tcp by default).
    fn from_str(spec: &str) -> Result<ExposedPort> {
        let (ports, proto) = parse_exposed_port(spec)?;
        Ok(ExposedPort { ports, proto })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_ports() {
        let r = |a, b| PortRange::new(a, b).unwrap();
        let e: ExposedPort = "8000-8010/udp".parse().unwrap();
        assert_eq!((e.ports, e.proto), (r(8000, 8010), Protocol::Udp));
        let e: ExposedPort = "80".parse().unwrap();
        assert_eq!((e.ports, e.proto), (r(80, 80), Protocol::Tcp));
        // Stored in endpoint records: the form must not change.
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"ports":[80,80],"proto":"Tcp"}"#
        );
    }

    /// Parse errors of `-p` and `--expose` are this crate's `InvalidSpec`, naming the bad part.
    #[test]
    fn errors_name_the_bad_part() {
        for (spec, part) in [("80/icmp", "icmp"), ("0", "0"), ("90-80", "90-80")] {
            match spec.parse::<ExposedPort>() {
                Err(Error::InvalidSpec { part: got, .. }) => assert_eq!(got, part, "{spec}"),
                other => panic!("{spec}: {other:?}"),
            }
            let err = Error::from(spec.parse::<PortSpec>().unwrap_err());
            match &err {
                Error::InvalidSpec { part: got, .. } => assert_eq!(got, part, "{spec}: {err}"),
                other => panic!("{spec}: {other}"),
            }
        }
    }
}

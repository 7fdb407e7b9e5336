//! The data drivers receive and report.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use berth_netlink::Netns;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::ids::{EndpointId, NetworkId, SandboxId};

/// Where a driver's networks exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// On this host only (bridge, macvlan, null, host).
    Local,
    /// Across the hosts sharing a cluster store (overlay).
    Global,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Local => "local",
            Scope::Global => "global",
        })
    }
}

/// What a driver can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Where the driver's network definitions live.
    pub scope: Scope,
    /// Whether endpoints get interfaces in the sandbox (false for `host`).
    pub creates_interfaces: bool,
    /// Whether the network may be removed by users (false for the built-in `host` and `none`).
    pub user_creatable: bool,
}

/// One address pool IPAM gave a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamInfo {
    /// The subnet.
    pub pool: IpNet,
    /// The gateway address with the pool's prefix length (None with `inhibit_ipv4`-like setups).
    pub gateway: Option<IpNet>,
    /// Auxiliary addresses reserved in the pool, by name.
    pub aux_addresses: BTreeMap<String, IpAddr>,
}

/// What the controller asks a driver to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// The network's id.
    pub id: NetworkId,
    /// The network's name (for messages).
    pub name: String,
    /// IPv4 pools.
    pub ipv4: Vec<IpamInfo>,
    /// IPv6 pools (empty unless IPv6 is enabled).
    pub ipv6: Vec<IpamInfo>,
    /// `--internal`: no traffic leaves or enters the network's subnets.
    pub internal: bool,
    /// `--ipv6`.
    pub enable_ipv6: bool,
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    /// Docker's derivation for bridge endpoints: `02:42` followed by the four bytes of the IPv4
    /// address (172.17.0.2 gives 02:42:ac:11:00:02). Deterministic, so when an address is reused by
    /// another endpoint the neighbours' ARP caches stay right.
    pub fn from_ipv4(ip: Ipv4Addr) -> Self {
        let o = ip.octets();
        MacAddress([0x02, 0x42, o[0], o[1], o[2], o[3]])
    }

    /// A locally administered unicast address from 6 random bytes (the caller supplies them).
    pub fn local_from_bytes(mut bytes: [u8; 6]) -> Self {
        bytes[0] = (bytes[0] & 0xfe) | 0x02;
        MacAddress(bytes)
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// A string that is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex bytes like 02:42:ac:11:00:02")]
pub struct InvalidMac(pub String);

impl FromStr for MacAddress {
    type Err = InvalidMac;
    fn from_str(s: &str) -> Result<Self, InvalidMac> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let p = parts.next().ok_or_else(|| InvalidMac(s.to_owned()))?;
            if p.len() != 2 {
                return Err(InvalidMac(s.to_owned()));
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| InvalidMac(s.to_owned()))?;
        }
        if parts.next().is_some() {
            return Err(InvalidMac(s.to_owned()));
        }
        Ok(MacAddress(out))
    }
}

impl Serialize for MacAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What the controller asks a driver to create for an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    /// The network the endpoint is on.
    pub network: NetworkId,
    /// The endpoint's id.
    pub endpoint: EndpointId,
    /// The IPv4 address IPAM gave it, with the subnet's prefix length.
    pub ipv4: Option<Ipv4Net>,
    /// The IPv6 address IPAM gave it, with the subnet's prefix length.
    pub ipv6: Option<Ipv6Net>,
    /// A MAC address the user asked for.
    pub mac: Option<MacAddress>,
}

/// The interface facts a driver reports for an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceInfo {
    /// The MAC address the sandbox interface gets.
    pub mac: Option<MacAddress>,
    /// IPv4 address with prefix.
    pub ipv4: Option<Ipv4Net>,
    /// IPv6 address with prefix.
    pub ipv6: Option<Ipv6Net>,
}

/// Operational facts about an endpoint, for inspect output.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EndpointOperInfo {
    /// The host-side interface name, if any (the bridge's veth end).
    pub host_interface: Option<String>,
    /// Driver-specific facts as key/value strings, for display only.
    pub extra: BTreeMap<String, String>,
}

/// The sandbox an endpoint joins.
#[derive(Debug, Clone, Copy)]
pub struct SandboxRef<'a> {
    /// The sandbox's id.
    pub id: &'a SandboxId,
    /// Its network namespace.
    pub netns: &'a Netns,
}

/// A join request: put the endpoint's interface into the sandbox.
#[derive(Debug, Clone, Copy)]
pub struct JoinRequest<'a> {
    /// The network.
    pub network: &'a NetworkId,
    /// The endpoint.
    pub endpoint: &'a EndpointId,
    /// The sandbox.
    pub sandbox: SandboxRef<'a>,
    /// The interface name the endpoint gets inside the sandbox (`eth0`, `eth1`, ...).
    pub ifname: &'a str,
}

/// A route the driver wants in the sandbox besides the default route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticRoute {
    /// Destination.
    pub destination: IpNet,
    /// Next hop (None: on-link through the endpoint's interface).
    pub next_hop: Option<IpAddr>,
}

/// What a driver reports after a join.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JoinInfo {
    /// The interface name in the sandbox.
    pub ifname: String,
    /// The IPv4 gateway this endpoint offers for the sandbox's default route.
    pub gateway_v4: Option<Ipv4Addr>,
    /// The IPv6 gateway this endpoint offers.
    pub gateway_v6: Option<Ipv6Addr>,
    /// Extra routes (added by the driver already).
    pub static_routes: Vec<StaticRoute>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_derivation_and_text() {
        let mac = MacAddress::from_ipv4(Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(mac.to_string(), "02:42:ac:11:00:02");
        assert_eq!("02:42:AC:11:00:02".parse::<MacAddress>().unwrap(), mac);
        assert_eq!("02-42-ac-11-00-02".parse::<MacAddress>().unwrap(), mac);
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "2:42:ac:11:00:02",
            "zz:42:ac:11:00:02",
        ] {
            assert!(bad.parse::<MacAddress>().is_err(), "{bad}");
        }
        let local = MacAddress::local_from_bytes([0xff; 6]);
        assert_eq!(local.0[0] & 0x03, 0x02, "locally administered unicast");
        let json = serde_json::to_string(&mac).unwrap();
        assert_eq!(json, "\"02:42:ac:11:00:02\"");
    }
}

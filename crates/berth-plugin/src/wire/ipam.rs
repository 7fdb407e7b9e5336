//! The remote IPAM API (`/IpamDriver.*`, libnetwork's `ipams/remote/api`): the request and
//! answer bodies, and the typed readers of the answers. Its answers name their error `Error`
//! (the network driver API's name it `Err`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{Answer, AnswerError, nil_if_empty_map};

/// The `RequestAddress` option that asks for a network's gateway, and its value
/// (`{"RequestAddressType": "com.docker.network.gateway"}`).
pub const REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";
/// The value of [`REQUEST_ADDRESS_TYPE`] for a gateway; also the key of a pool's `Data` under
/// which an IPAM plugin may give the gateway itself (then dockerd asks for none).
pub const GATEWAY_ADDRESS_TYPE: &str = "com.docker.network.gateway";
/// The `RequestAddress` option with the endpoint's MAC address, for plugins that require it.
pub const MAC_ADDRESS_OPTION: &str = "com.docker.network.endpoint.macaddress";

/// The answer of `/IpamDriver.GetCapabilities`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct IpamCapabilitiesResponse {
    /// The plugin's error, if any.
    pub error: String,
    /// Address requests must carry the endpoint's MAC address.
    #[serde(rename = "RequiresMACAddress")]
    pub requires_mac_address: bool,
    /// Pools and addresses must be requested again when the engine starts.
    pub requires_request_replay: bool,
}

impl Answer for IpamCapabilitiesResponse {
    fn error_message(&self) -> &str {
        &self.error
    }
}

/// The answer of `/IpamDriver.GetDefaultAddressSpaces`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AddressSpacesResponse {
    /// The plugin's error, if any.
    pub error: String,
    /// The address space of local-scope networks.
    pub local_default_address_space: String,
    /// The address space of global-scope networks.
    pub global_default_address_space: String,
}

impl Answer for AddressSpacesResponse {
    fn error_message(&self) -> &str {
        &self.error
    }
}

/// The body of `/IpamDriver.RequestPool`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RequestPoolRequest {
    /// The address space.
    pub address_space: String,
    /// The subnet asked for, or empty for the plugin's choice.
    pub pool: String,
    /// The part of the subnet addresses come from (`--ip-range`), or empty.
    pub sub_pool: String,
    /// The network's IPAM options (`--ipam-opt`).
    #[serde(serialize_with = "nil_if_empty_map")]
    pub options: BTreeMap<String, String>,
    /// An IPv6 pool is asked for.
    #[serde(rename = "V6")]
    pub v6: bool,
}

/// The answer of `/IpamDriver.RequestPool`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RequestPoolResponse {
    /// The plugin's error, if any.
    pub error: String,
    /// The plugin's id of the pool.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The subnet (`10.0.0.0/24`).
    pub pool: String,
    /// Facts about the pool; [`GATEWAY_ADDRESS_TYPE`] gives its gateway.
    pub data: BTreeMap<String, String>,
}

impl Answer for RequestPoolResponse {
    fn error_message(&self) -> &str {
        &self.error
    }
}

/// A pool read from a [`RequestPoolResponse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolFacts {
    /// The plugin's id of the pool.
    pub id: String,
    /// The subnet (host bits zero).
    pub subnet: IpNet,
    /// The gateway the plugin gave in the pool's data, if any (inside the subnet).
    pub gateway: Option<IpNet>,
}

impl RequestPoolResponse {
    /// The pool: an id, a subnet of the family asked for (`v6`), and the gateway of its data
    /// when the plugin gave one.
    pub fn parse(&self, v6: bool) -> Result<PoolFacts, AnswerError> {
        if self.pool_id.is_empty() {
            return Err(AnswerError::new("PoolID", "", "the plugin gave no pool id"));
        }
        let subnet = self
            .pool
            .parse::<IpNet>()
            .map_err(|_| AnswerError::new("Pool", &self.pool, "not a subnet"))?;
        if subnet.addr().is_ipv6() != v6 {
            let want = if v6 { "an IPv6" } else { "an IPv4" };
            return Err(AnswerError::new(
                "Pool",
                &self.pool,
                format!("{want} pool was asked for"),
            ));
        }
        let subnet = subnet.trunc();
        let gateway = match self.data.get(GATEWAY_ADDRESS_TYPE) {
            None => None,
            Some(g) => {
                let field = format!("Data[{GATEWAY_ADDRESS_TYPE}]");
                let gw = g.parse::<IpNet>().map_err(|_| {
                    AnswerError::new(&field, g, "not an address with a prefix length")
                })?;
                if !subnet.contains(&gw.addr()) {
                    return Err(AnswerError::new(
                        &field,
                        g,
                        format!("not in the pool {subnet}"),
                    ));
                }
                Some(gw)
            }
        };
        Ok(PoolFacts {
            id: self.pool_id.clone(),
            subnet,
            gateway,
        })
    }
}

/// The body of `/IpamDriver.ReleasePool`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReleasePoolRequest {
    /// The plugin's id of the pool.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

/// The answer of the IPAM calls that return nothing but a possible error (`Error`):
/// `ReleasePool` and `ReleaseAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct IpamAck {
    /// The plugin's error, if any.
    pub error: String,
}

impl Answer for IpamAck {
    fn error_message(&self) -> &str {
        &self.error
    }
}

/// The answer of `/IpamDriver.ReleasePool`.
pub type ReleasePoolResponse = IpamAck;

/// The body of `/IpamDriver.RequestAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RequestAddressRequest {
    /// The plugin's id of the pool.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The address asked for, or empty for the plugin's choice.
    pub address: String,
    /// [`REQUEST_ADDRESS_TYPE`] for a gateway, [`MAC_ADDRESS_OPTION`] when required.
    #[serde(serialize_with = "nil_if_empty_map")]
    pub options: BTreeMap<String, String>,
}

/// The answer of `/IpamDriver.RequestAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RequestAddressResponse {
    /// The plugin's error, if any.
    pub error: String,
    /// The address with the pool's prefix length (`10.0.0.2/24`).
    pub address: String,
    /// Facts about the address.
    pub data: BTreeMap<String, String>,
}

impl Answer for RequestAddressResponse {
    fn error_message(&self) -> &str {
        &self.error
    }
}

impl RequestAddressResponse {
    /// The address: one with a prefix length, inside `pool` (an address outside its pool
    /// could never be given back by the pool it was asked of).
    pub fn parse(&self, pool: IpNet) -> Result<IpNet, AnswerError> {
        if self.address.is_empty() {
            return Err(AnswerError::new("Address", "", "no address returned"));
        }
        let addr = self.address.parse::<IpNet>().map_err(|_| {
            AnswerError::new(
                "Address",
                &self.address,
                "not an address with a prefix length",
            )
        })?;
        if !pool.contains(&addr.addr()) {
            return Err(AnswerError::new(
                "Address",
                &self.address,
                format!("not in the pool {pool}"),
            ));
        }
        Ok(addr)
    }
}

/// The body of `/IpamDriver.ReleaseAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ReleaseAddressRequest {
    /// The plugin's id of the pool.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The address (without prefix length).
    pub address: String,
}

impl ReleaseAddressRequest {
    /// The request for `addr` of `pool`.
    pub fn new(pool: &str, addr: IpAddr) -> ReleaseAddressRequest {
        ReleaseAddressRequest {
            pool_id: pool.to_owned(),
            address: addr.to_string(),
        }
    }
}

/// The answer of `/IpamDriver.ReleaseAddress`.
pub type ReleaseAddressResponse = IpamAck;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::wire::decode;

    #[test]
    fn pools_and_addresses() {
        let req = RequestPoolRequest {
            address_space: "LocalDefault".into(),
            pool: "10.1.0.0/16".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"AddressSpace":"LocalDefault","Pool":"10.1.0.0/16","SubPool":"","Options":null,"V6":false}"#
        );
        let r: RequestPoolResponse = decode(
            br#"{"PoolID":"p1","Pool":"10.1.0.0/16","Data":{"com.docker.network.gateway":"10.1.0.254/16"}}"#,
        )
        .unwrap();
        let p = r.parse(false).unwrap();
        assert_eq!(p.gateway, Some("10.1.0.254/16".parse().unwrap()));
        assert_eq!(r.parse(true).unwrap_err().field, "Pool");
        for body in [
            &br#"{"Pool":"10.1.0.0/16"}"#[..],
            br#"{"PoolID":"p","Pool":"10.1.0.0"}"#,
            br#"{"PoolID":"p","Pool":"10.1.0.0/16","Data":{"com.docker.network.gateway":"10.2.0.1/16"}}"#,
        ] {
            assert!(decode::<RequestPoolResponse>(body).unwrap().parse(false).is_err());
        }
        let pool: IpNet = "10.1.0.0/16".parse().unwrap();
        let a: RequestAddressResponse = decode(br#"{"Address":"10.1.0.2/16"}"#).unwrap();
        assert_eq!(a.parse(pool).unwrap().to_string(), "10.1.0.2/16");
        for body in [
            &b"{}"[..],
            br#"{"Address":"10.9.0.2/16"}"#,
            br#"{"Address":"10.1.0.2"}"#,
        ] {
            assert!(
                decode::<RequestAddressResponse>(body)
                    .unwrap()
                    .parse(pool)
                    .is_err()
            );
        }
        let e: IpamAck = decode(br#"{"Error":"no more addresses"}"#).unwrap();
        assert_eq!(e.error_message(), "no more addresses");
    }
}

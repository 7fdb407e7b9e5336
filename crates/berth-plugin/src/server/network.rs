//! The `NetworkDriver` calls of networks: dockerd's networks on berth's bridge driver, and what
//! the endpoint calls share (ids, options, answers).

use std::collections::BTreeMap;
use std::net::IpAddr;

use berth_bridge::BridgeOptions;
use berth_driver::{
    DriverError, EndpointId, IpamInfo, NetworkDriver, NetworkId, NetworkSpec, RawOptions,
    parse_bool,
};
use berth_netlink::{sysctl_get, sysctl_set};
use ipnet::IpNet;
use serde_json::Value;

use super::error::{ServerError, ServerResult};
use super::records::{FORWARDING_KEY, ForwardingRecord, NetworkRecord, Phase, network_key};
use super::service::{Service, decode, encode};
use crate::wire::{
    Ack, Call, CreateNetworkRequest, DeleteNetworkRequest, ENABLE_IPV6_OPTION, GENERIC_OPTION,
    INTERNAL_OPTION, IpamData,
};

/// The network option naming the interface prefix in containers: dockerd's, not the bridge
/// driver's (kept with the network, answered as `DstPrefix`).
pub(crate) const IFACE_PREFIX_OPTION: &str = "com.docker.network.container_iface_prefix";

pub(super) fn network_id(call: Call, value: &str) -> ServerResult<NetworkId> {
    value.parse().map_err(|_| {
        ServerError::request(call, "NetworkID", value, "not a network id (64 hex digits)")
    })
}

pub(super) fn endpoint_id(call: Call, value: &str) -> ServerResult<EndpointId> {
    value.parse().map_err(|_| {
        ServerError::request(
            call,
            "EndpointID",
            value,
            "not an endpoint id (64 hex digits)",
        )
    })
}

/// One pool of `CreateNetwork` (libnetwork's `IPAMData`).
fn pool_info(call: Call, field: &str, data: &IpamData) -> ServerResult<IpamInfo> {
    let pool = data.pool.parse::<IpNet>().map_err(|_| {
        ServerError::request(call, format!("{field}.Pool"), &data.pool, "not a subnet")
    })?;
    let gateway = match data.gateway.as_str() {
        "" => None,
        g => {
            let gw = g.parse::<IpNet>().map_err(|_| {
                ServerError::request(
                    call,
                    format!("{field}.Gateway"),
                    g,
                    "not an address with a prefix length",
                )
            })?;
            if !pool.contains(&gw.addr()) {
                return Err(ServerError::request(
                    call,
                    format!("{field}.Gateway"),
                    g,
                    format!("not in the pool {pool}"),
                ));
            }
            Some(gw)
        }
    };
    let mut aux_addresses = BTreeMap::new();
    for (name, a) in &data.aux_addresses {
        let addr = a
            .parse::<IpNet>()
            .map(|n| n.addr())
            .or_else(|_| a.parse::<IpAddr>())
            .map_err(|_| {
                ServerError::request(
                    call,
                    format!("{field}.AuxAddresses[{name}]"),
                    a,
                    "not an address",
                )
            })?;
        aux_addresses.insert(name.clone(), addr);
    }
    Ok(IpamInfo {
        pool: pool.trunc(),
        gateway,
        aux_addresses,
    })
}

fn pools(call: Call, field: &str, data: &[IpamData]) -> ServerResult<Vec<IpamInfo>> {
    data.iter()
        .enumerate()
        .map(|(i, d)| pool_info(call, &format!("{field}[{i}]"), d))
        .collect()
}

/// A boolean of `CreateNetwork`'s options (dockerd sends JSON booleans; strings in Go's
/// spellings are read too).
fn option_flag(options: &BTreeMap<String, Value>, key: &str) -> ServerResult<bool> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if parse_bool(s).is_some() => Ok(parse_bool(s).unwrap_or(false)),
        Some(other) => Err(ServerError::request(
            Call::CreateNetwork,
            format!("Options[{key}]"),
            &other.to_string(),
            "not a boolean",
        )),
    }
}

/// A JSON value as an option string (a string as it is, anything else as its JSON text).
pub(super) fn option_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The user's network options (`-o`), under `com.docker.network.generic`.
fn generic_options(options: &BTreeMap<String, Value>) -> ServerResult<RawOptions> {
    match options.get(GENERIC_OPTION) {
        None | Some(Value::Null) => Ok(RawOptions::new()),
        Some(Value::Object(map)) => Ok(map
            .iter()
            .map(|(k, v)| (k.clone(), option_text(v)))
            .collect()),
        Some(other) => Err(ServerError::request(
            Call::CreateNetwork,
            format!("Options[{GENERIC_OPTION}]"),
            &other.to_string(),
            "not an object of options",
        )),
    }
}

pub(crate) fn spec_of(rec: &NetworkRecord) -> NetworkSpec {
    NetworkSpec {
        id: rec.id.clone(),
        name: rec.id.short().to_owned(),
        ipv4: rec.ipv4.clone(),
        ipv6: rec.ipv6.clone(),
        internal: rec.internal,
        enable_ipv6: rec.enable_ipv6,
    }
}

pub(super) fn ack() -> ServerResult<Vec<u8>> {
    encode(&Ack::default())
}

impl Service {
    /// The bridge driver's options of a network (dockerd's own keys left out), and the keys
    /// the driver does not know, which are left out too unless
    /// [`super::ServerConfig::strict_options`] refuses them.
    pub(crate) fn bridge_options(
        &self,
        rec: &NetworkRecord,
    ) -> ServerResult<(BridgeOptions, Vec<String>)> {
        let mut raw = rec.options.clone();
        raw.remove(IFACE_PREFIX_OPTION);
        Ok(berth_driver::parse_known(
            &raw,
            self.strict_options,
            |raw| NetworkDriver::parse_options(&self.bridge, raw),
        )?)
    }

    pub(crate) fn create_network(&self, body: &[u8]) -> ServerResult<Vec<u8>> {
        const CALL: Call = Call::CreateNetwork;
        let req: CreateNetworkRequest = decode(CALL, body)?;
        let mut rec = NetworkRecord {
            id: network_id(CALL, &req.network_id)?,
            options: generic_options(&req.options)?,
            ipv4: pools(CALL, "IPv4Data", &req.ipv4_data)?,
            ipv6: pools(CALL, "IPv6Data", &req.ipv6_data)?,
            internal: option_flag(&req.options, INTERNAL_OPTION)?,
            enable_ipv6: option_flag(&req.options, ENABLE_IPV6_OPTION)?,
            phase: Phase::Creating,
        };
        let (parsed, unknown) = self.bridge_options(&rec)?;
        if !unknown.is_empty() {
            tracing::warn!(plugin = %self.name, network = %rec.id.short(), ?unknown, "network options the bridge driver does not know are ignored, as dockerd's bridge driver ignores them");
        }
        let spec = spec_of(&rec);
        {
            let mut st = self.state();
            if let Some(existing) = st.networks.get(&rec.id) {
                let same = NetworkRecord {
                    phase: existing.phase,
                    ..rec.clone()
                };
                // dockerd asking again for what exists (a retry) is answered as done.
                if existing.phase == Phase::Ready && *existing == same {
                    return ack();
                }
                return Err(ServerError::Exists(format!("network {}", rec.id.short())));
            }
            st.networks.insert(rec.id.clone(), rec.clone());
        }
        let undo_claim = |e: ServerError| {
            self.state().networks.remove(&rec.id);
            e
        };
        self.records
            .put(&network_key(&rec.id), &rec)
            .map_err(undo_claim)?;
        let made = (|| {
            if rec.enable_ipv6 {
                self.ensure_ipv6_forwarding()?;
            }
            NetworkDriver::create_network(&self.bridge, &spec, &parsed).map_err(ServerError::from)
        })();
        if let Err(e) = made {
            if let Err(d) = self.records.delete(&network_key(&rec.id)) {
                tracing::warn!(error = %d, "forgetting a network whose creation failed");
            }
            return Err(undo_claim(e));
        }
        rec.phase = Phase::Ready;
        if let Err(e) = self.records.put(&network_key(&rec.id), &rec) {
            let _ = NetworkDriver::delete_network(&self.bridge, &rec.id);
            let _ = self.records.delete(&network_key(&rec.id));
            return Err(undo_claim(e));
        }
        tracing::info!(plugin = %self.name, network = %rec.id.short(), "network created");
        self.state().networks.insert(rec.id.clone(), rec);
        ack()
    }

    pub(crate) fn delete_network(&self, body: &[u8]) -> ServerResult<Vec<u8>> {
        const CALL: Call = Call::DeleteNetwork;
        let req: DeleteNetworkRequest = decode(CALL, body)?;
        let id = network_id(CALL, &req.network_id)?;
        let mut rec = {
            let mut st = self.state();
            if let Some(ep) = st.endpoints.values().find(|e| e.network == id) {
                return Err(ServerError::Driver(DriverError::InvalidConfig(format!(
                    "network {} has active endpoints (endpoint {})",
                    id.short(),
                    ep.id.short()
                ))));
            }
            match st.networks.get_mut(&id) {
                // Gone already (removed before a failure dockerd did not see): nothing to do.
                None => {
                    tracing::warn!(plugin = %self.name, network = %id.short(), "DeleteNetwork of a network this plugin does not have");
                    return ack();
                }
                Some(r) if r.phase != Phase::Ready => {
                    return Err(ServerError::Exists(format!(
                        "network {} is being created or removed",
                        id.short()
                    )));
                }
                Some(r) => {
                    r.phase = Phase::Removing;
                    r.clone()
                }
            }
        };
        let restore_phase = |e: ServerError| {
            if let Some(r) = self.state().networks.get_mut(&id) {
                r.phase = Phase::Ready;
            }
            e
        };
        self.records
            .put(&network_key(&id), &rec)
            .map_err(restore_phase)?;
        match NetworkDriver::delete_network(&self.bridge, &id) {
            Ok(()) | Err(DriverError::NetworkNotFound(_)) => {}
            Err(e) => {
                rec.phase = Phase::Ready;
                let _ = self.records.put(&network_key(&id), &rec);
                return Err(restore_phase(e.into()));
            }
        }
        self.records.delete(&network_key(&id))?;
        self.state().networks.remove(&id);
        tracing::info!(plugin = %self.name, network = %id.short(), "network removed");
        ack()
    }

    /// Switches IPv6 forwarding on for an IPv6 network, when the server switches forwarding on
    /// at all and it is off (recorded, as IPv4's).
    fn ensure_ipv6_forwarding(&self) -> ServerResult<()> {
        const KEY: &str = "net.ipv6.conf.all.forwarding";
        if !self.ip_forward {
            return Ok(());
        }
        let cur = sysctl_get(&self.host, KEY)
            .map_err(|e| ServerError::kernel("reading IPv6 forwarding", e))?;
        if cur.trim() == "1" {
            return Ok(());
        }
        let mut rec: ForwardingRecord = self.records.get(FORWARDING_KEY)?.unwrap_or_default();
        rec.ipv6 = true;
        self.records.put(FORWARDING_KEY, &rec)?;
        sysctl_set(&self.host, KEY, "1")
            .map_err(|e| ServerError::kernel("switching IPv6 forwarding on", e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn dockerds_network_options_are_read() {
        let o: BTreeMap<String, Value> = serde_json::from_value(json!({
            GENERIC_OPTION: {"com.docker.network.bridge.enable_icc": "false", "n": 3},
            ENABLE_IPV6_OPTION: true,
            INTERNAL_OPTION: "true",
        }))
        .unwrap();
        let g = generic_options(&o).unwrap();
        assert_eq!(g["com.docker.network.bridge.enable_icc"], "false");
        assert_eq!(g["n"], "3");
        assert!(option_flag(&o, ENABLE_IPV6_OPTION).unwrap());
        assert!(option_flag(&o, INTERNAL_OPTION).unwrap());
        assert!(!option_flag(&o, "absent").unwrap());
        let bad: BTreeMap<String, Value> =
            serde_json::from_value(json!({INTERNAL_OPTION: 3, GENERIC_OPTION: [1]})).unwrap();
        assert!(option_flag(&bad, INTERNAL_OPTION).is_err());
        let e = generic_options(&bad).unwrap_err().to_string();
        assert!(e.contains(GENERIC_OPTION), "{e}");
    }

    #[test]
    fn pools_are_read_with_their_field_names() {
        let data = IpamData {
            address_space: "LocalDefault".into(),
            pool: "10.9.0.0/24".into(),
            gateway: "10.9.0.1/24".into(),
            aux_addresses: [("r".to_owned(), "10.9.0.5/24".to_owned())].into(),
        };
        let info = pool_info(Call::CreateNetwork, "IPv4Data[0]", &data).unwrap();
        assert_eq!(info.gateway.unwrap().to_string(), "10.9.0.1/24");
        assert_eq!(info.aux_addresses["r"].to_string(), "10.9.0.5");
        for (bad, field) in [
            (
                IpamData {
                    pool: "x".into(),
                    ..data.clone()
                },
                "IPv4Data[0].Pool",
            ),
            (
                IpamData {
                    gateway: "10.8.0.1/24".into(),
                    ..data.clone()
                },
                "IPv4Data[0].Gateway",
            ),
            (
                IpamData {
                    aux_addresses: [("r".to_owned(), "y".to_owned())].into(),
                    ..data.clone()
                },
                "IPv4Data[0].AuxAddresses[r]",
            ),
        ] {
            let e = pool_info(Call::CreateNetwork, "IPv4Data[0]", &bad).unwrap_err();
            assert!(
                matches!(&e, ServerError::Request { field: f, .. } if f == field),
                "{e}"
            );
        }
    }
}

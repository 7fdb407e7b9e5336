//! The `NetworkDriver` calls of endpoints: creation, joins (the bridge driver's join into the
//! staging namespace, the sandbox end handed to the host namespace), published ports, leaves.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::Path;

use berth_driver::{
    DriverError, EndpointId, EndpointSpec, InterfaceInfo, JoinRequest, NetnsRef, NetworkDriver,
    NetworkId, RawOptions, SandboxId, SandboxRef,
};
use serde_json::Value;

use super::PEER_PREFIX;
use super::error::{ServerError, ServerResult};
use super::network::{IFACE_PREFIX_OPTION, ack, endpoint_id, network_id, option_text};
use super::ports::{port_specs, portmap_value};
use super::records::{EndpointRecord, JoinRecord, Phase, endpoint_key};
use super::service::{Service, decode, encode};
use super::staging::STAGING_LABEL;
use crate::wire::ports::{EXPOSED_PORTS_OPTION, PORTMAP_OPTION};
use crate::wire::{
    Call, CreateEndpointRequest, CreateEndpointResponse, EndpointInfoResponse, EndpointInterface,
    EndpointRequest, InterfaceName, JoinResponse, ProgramExternalConnectivityRequest, StaticRoute,
};

/// Keys dockerd itself puts among an endpoint's options (besides the user's `--driver-opt`).
const DOCKERD_ENDPOINT_KEYS: [&str; 3] = [
    PORTMAP_OPTION,
    EXPOSED_PORTS_OPTION,
    "com.docker.network.endpoint.macaddress",
];

/// The sandbox end of an endpoint's veth in the host namespace (`SrcName`).
pub fn peer_name(endpoint: &EndpointId) -> String {
    format!("{PEER_PREFIX}{}", &endpoint.as_str()[..10])
}

/// The user's endpoint options (`--driver-opt`): every option but dockerd's own and its
/// structured values.
fn endpoint_options(options: &BTreeMap<String, Value>) -> RawOptions {
    options
        .iter()
        .filter(|(k, v)| !DOCKERD_ENDPOINT_KEYS.contains(&k.as_str()) && v.is_string())
        .map(|(k, v)| (k.clone(), option_text(v)))
        .collect()
}

impl Service {
    pub(crate) fn create_endpoint(&self, body: &[u8]) -> ServerResult<Vec<u8>> {
        const CALL: Call = Call::CreateEndpoint;
        let req: CreateEndpointRequest = decode(CALL, body)?;
        let network = network_id(CALL, &req.network_id)?;
        let endpoint = endpoint_id(CALL, &req.endpoint_id)?;
        let given = req
            .interface
            .unwrap_or_default()
            .parse("Interface.")
            .map_err(|e| ServerError::request(CALL, e.field, &e.value, e.reason))?;
        let options = endpoint_options(&req.options);
        let mut rec = EndpointRecord {
            id: endpoint.clone(),
            network: network.clone(),
            interface: InterfaceInfo {
                mac: given.mac,
                ipv4: given.ipv4,
                ipv6: given.ipv6,
            },
            options: options.clone(),
            join: None,
            bindings: Vec::new(),
        };
        {
            let mut st = self.state();
            if !st
                .networks
                .get(&network)
                .is_some_and(|n| n.phase == Phase::Ready)
            {
                return Err(ServerError::UnknownNetwork(network.to_string()));
            }
            if st.endpoints.contains_key(&endpoint) {
                return Err(ServerError::Exists(format!(
                    "endpoint {}",
                    endpoint.short()
                )));
            }
            st.endpoints.insert(endpoint.clone(), rec.clone());
        }
        let undo_claim = |e: ServerError| {
            self.state().endpoints.remove(&endpoint);
            e
        };
        let spec = EndpointSpec {
            network: network.clone(),
            endpoint: endpoint.clone(),
            ipv4: given.ipv4,
            ipv6: given.ipv6,
            mac: given.mac,
            options,
        };
        // Nothing of the kernel's yet: the bridge driver only notes the endpoint (and chooses
        // its MAC); the record follows.
        let info = NetworkDriver::create_endpoint(&self.bridge, &spec)
            .map_err(|e| undo_claim(e.into()))?;
        rec.interface = info.clone();
        if let Err(e) = self.records.put(&endpoint_key(&endpoint), &rec) {
            let _ = NetworkDriver::delete_endpoint(&self.bridge, &network, &endpoint);
            return Err(undo_claim(e));
        }
        self.state().endpoints.insert(endpoint.clone(), rec);
        // Only what dockerd did not give: a plugin may not change a given field.
        let mac = info.mac.filter(|_| given.mac.is_none());
        encode(&CreateEndpointResponse {
            err: String::new(),
            interface: mac.map(|m| EndpointInterface {
                mac_address: m.to_string(),
                ..Default::default()
            }),
        })
    }

    pub(crate) fn endpoint_info(&self, body: &[u8]) -> ServerResult<Vec<u8>> {
        const CALL: Call = Call::EndpointOperInfo;
        let req: EndpointRequest = decode(CALL, body)?;
        let network = network_id(CALL, &req.network_id)?;
        let endpoint = endpoint_id(CALL, &req.endpoint_id)?;
        let rec = self
            .state()
            .endpoints
            .get(&endpoint)
            .cloned()
            .ok_or_else(|| ServerError::UnknownEndpoint(endpoint.to_string()))?;
        let info = NetworkDriver::endpoint_info(&self.bridge, &network, &endpoint)?;
        let mut value: BTreeMap<String, Value> = info
            .extra
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        if let Some(host_if) = info.host_interface {
            value.insert("host_interface".into(), Value::String(host_if));
        }
        if let Some(join) = &rec.join {
            value.insert("sandbox_end".into(), Value::String(join.src_name.clone()));
        }
        if let Some(mac) = rec.interface.mac {
            value.insert(
                "com.docker.network.endpoint.macaddress".into(),
                Value::String(mac.to_string()),
            );
        }
        value.insert(PORTMAP_OPTION.into(), portmap_value(&rec.bindings));
        encode(&EndpointInfoResponse {
            err: String::new(),
            value,
        })
    }

    pub(crate) fn delete_endpoint(&self, body: &[u8]) -> ServerResult<Vec<u8>> {
        const CALL: Call = Call::DeleteEndpoint;
        let req: EndpointRequest = decode(CALL, body)?;
        let network = network_id(CALL, &req.network_id)?;
        let endpoint = endpoint_id(CALL, &req.endpoint_id)?;
        let Some(rec) = self.state().endpoints.get(&endpoint).cloned() else {
            tracing::warn!(plugin = %self.name, endpoint = %endpoint.short(), "DeleteEndpoint of an endpoint this plugin does not have");
            return ack();
        };
        // dockerd leaves before it deletes; after a failure it may not have.
        if rec.join.is_some() || !rec.bindings.is_empty() {
            self.unjoin(&network, &endpoint)?;
        }
        match NetworkDriver::delete_endpoint(&self.bridge, &network, &endpoint) {
            Ok(()) | Err(DriverError::EndpointNotFound(_) | DriverError::NetworkNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.records.delete(&endpoint_key(&endpoint))?;
        self.state().endpoints.remove(&endpoint);
        ack()
    }

    pub(crate) fn join(&self, body: &[u8]) -> ServerResult<Vec<u8>> {
        const CALL: Call = Call::Join;
        let req: crate::wire::JoinRequest = decode(CALL, body)?;
        let network = network_id(CALL, &req.network_id)?;
        let endpoint = endpoint_id(CALL, &req.endpoint_id)?;
        let src_name = peer_name(&endpoint);
        let (mut rec, prefix) = {
            let mut st = self.state();
            let prefix = st
                .networks
                .get(&network)
                .and_then(|n| n.options.get(IFACE_PREFIX_OPTION).cloned())
                .unwrap_or_else(|| "eth".to_owned());
            let rec = st
                .endpoints
                .get_mut(&endpoint)
                .filter(|r| r.network == network)
                .ok_or_else(|| ServerError::UnknownEndpoint(endpoint.to_string()))?;
            if rec.join.is_some() {
                return Err(ServerError::Exists(format!(
                    "a join of endpoint {}",
                    endpoint.short()
                )));
            }
            rec.join = Some(JoinRecord {
                src_name: src_name.clone(),
                phase: Phase::Creating,
            });
            (rec.clone(), prefix)
        };
        let undo_claim = |e: ServerError| {
            if let Some(r) = self.state().endpoints.get_mut(&endpoint) {
                r.join = None;
            }
            e
        };
        self.records
            .put(&endpoint_key(&endpoint), &rec)
            .map_err(undo_claim)?;
        let made = self.join_kernel(&network, &endpoint, &src_name);
        let confirmed = made.and_then(|info| {
            rec.join = Some(JoinRecord {
                src_name: src_name.clone(),
                phase: Phase::Ready,
            });
            match self.records.put(&endpoint_key(&endpoint), &rec) {
                Ok(()) => Ok(info),
                Err(e) => {
                    let _ = NetworkDriver::leave(&self.bridge, &network, &endpoint);
                    Err(e)
                }
            }
        });
        let info = match confirmed {
            Ok(info) => info,
            Err(e) => {
                rec.join = None;
                if let Err(w) = self.records.put(&endpoint_key(&endpoint), &rec) {
                    tracing::warn!(error = %w, "recording a failed join (the next start removes what is left)");
                }
                return Err(undo_claim(e));
            }
        };
        self.state().endpoints.insert(endpoint.clone(), rec);
        encode(&JoinResponse {
            err: String::new(),
            interface_name: Some(InterfaceName {
                src_name,
                dst_name: String::new(),
                dst_prefix: prefix,
            }),
            gateway: info.gateway_v4.map(|g| g.to_string()).unwrap_or_default(),
            gateway_ipv6: info.gateway_v6.map(|g| g.to_string()).unwrap_or_default(),
            static_routes: info
                .static_routes
                .iter()
                .map(|r| StaticRoute {
                    destination: r.destination.to_string(),
                    route_type: if r.next_hop.is_some() {
                        crate::wire::ROUTE_NEXT_HOP
                    } else {
                        crate::wire::ROUTE_CONNECTED
                    },
                    next_hop: r.next_hop.map(|h| h.to_string()).unwrap_or_default(),
                })
                .collect(),
            // No IPv4 gateway (an internal network): dockerd must not add a gateway network
            // for this endpoint's sake.
            disable_gateway_service: info.gateway_v4.is_none(),
        })
    }

    /// The bridge driver's join into the staging namespace, then the sandbox end handed to the
    /// host namespace; all or nothing.
    fn join_kernel(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
        src_name: &str,
    ) -> ServerResult<berth_driver::JoinInfo> {
        // The bridge driver names a sandbox in its messages; the staging namespace is no
        // sandbox of dockerd's, so the endpoint's id stands for it.
        let sandbox_id: SandboxId = endpoint
            .as_str()
            .parse()
            .map_err(|_| ServerError::UnknownEndpoint(endpoint.to_string()))?;
        let staging = self.staging.netns();
        let req = JoinRequest {
            network,
            endpoint,
            sandbox: SandboxRef {
                id: &sandbox_id,
                netns: NetnsRef {
                    path: Path::new(STAGING_LABEL),
                    fd: Some(staging.as_fd()),
                },
            },
            ifname: src_name,
        };
        let info = NetworkDriver::join(&self.bridge, &req)?;
        if let Err(e) = self.staging.hand_over(src_name, &self.host) {
            // Deleting the host end takes the pair, wherever its other end is.
            let _ = NetworkDriver::leave(&self.bridge, network, endpoint);
            return Err(ServerError::kernel(
                format!("handing {src_name} to the host namespace"),
                e,
            ));
        }
        Ok(info)
    }

    /// Takes an endpoint's ports back and deletes its veth; forgets both in its record.
    fn unjoin(&self, network: &NetworkId, endpoint: &EndpointId) -> ServerResult<()> {
        let Some(mut rec) = self.state().endpoints.get(endpoint).cloned() else {
            return Ok(());
        };
        if !rec.bindings.is_empty() {
            NetworkDriver::revoke_external_connectivity(&self.bridge, network, endpoint)?;
        }
        match NetworkDriver::leave(&self.bridge, network, endpoint) {
            Ok(()) | Err(DriverError::EndpointNotFound(_) | DriverError::NetworkNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        rec.join = None;
        rec.bindings.clear();
        self.records.put(&endpoint_key(endpoint), &rec)?;
        self.state().endpoints.insert(endpoint.clone(), rec);
        Ok(())
    }

    pub(crate) fn leave(&self, body: &[u8]) -> ServerResult<Vec<u8>> {
        const CALL: Call = Call::Leave;
        let req: EndpointRequest = decode(CALL, body)?;
        let network = network_id(CALL, &req.network_id)?;
        let endpoint = endpoint_id(CALL, &req.endpoint_id)?;
        if !self.state().endpoints.contains_key(&endpoint) {
            tracing::warn!(plugin = %self.name, endpoint = %endpoint.short(), "Leave of an endpoint this plugin does not have");
            return ack();
        }
        self.unjoin(&network, &endpoint)?;
        ack()
    }

    pub(crate) fn program_external(&self, body: &[u8]) -> ServerResult<Vec<u8>> {
        const CALL: Call = Call::ProgramExternalConnectivity;
        let req: ProgramExternalConnectivityRequest = decode(CALL, body)?;
        let network = network_id(CALL, &req.network_id)?;
        let endpoint = endpoint_id(CALL, &req.endpoint_id)?;
        let specs = port_specs(&req.options)
            .map_err(|(field, value, reason)| ServerError::request(CALL, field, &value, reason))?;
        let mut rec = self
            .state()
            .endpoints
            .get(&endpoint)
            .cloned()
            .ok_or_else(|| ServerError::UnknownEndpoint(endpoint.to_string()))?;
        if !rec.bindings.is_empty() {
            NetworkDriver::revoke_external_connectivity(&self.bridge, &network, &endpoint)?;
            rec.bindings.clear();
        }
        if !specs.is_empty() {
            rec.bindings = NetworkDriver::program_external_connectivity(
                &self.bridge,
                &network,
                &endpoint,
                &specs,
            )?;
        }
        if let Err(e) = self.records.put(&endpoint_key(&endpoint), &rec) {
            let _ = NetworkDriver::revoke_external_connectivity(&self.bridge, &network, &endpoint);
            return Err(e);
        }
        if !rec.bindings.is_empty() {
            tracing::info!(plugin = %self.name, endpoint = %endpoint.short(), bindings = ?rec.bindings, "ports published");
        }
        self.state().endpoints.insert(endpoint, rec);
        ack()
    }

    pub(crate) fn revoke_external(&self, body: &[u8]) -> ServerResult<Vec<u8>> {
        const CALL: Call = Call::RevokeExternalConnectivity;
        let req: EndpointRequest = decode(CALL, body)?;
        let network = network_id(CALL, &req.network_id)?;
        let endpoint = endpoint_id(CALL, &req.endpoint_id)?;
        let Some(mut rec) = self.state().endpoints.get(&endpoint).cloned() else {
            return ack();
        };
        if rec.bindings.is_empty() {
            return ack();
        }
        NetworkDriver::revoke_external_connectivity(&self.bridge, &network, &endpoint)?;
        rec.bindings.clear();
        self.records.put(&endpoint_key(&endpoint), &rec)?;
        self.state().endpoints.insert(endpoint, rec);
        ack()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn endpoint_options_are_the_users_only() {
        let o: BTreeMap<String, Value> = serde_json::from_value(json!({
            PORTMAP_OPTION: [{"Proto": 6, "Port": 80}],
            EXPOSED_PORTS_OPTION: [],
            "com.docker.network.endpoint.macaddress": "02:42:00:00:00:01",
            "user.opt": "x",
        }))
        .unwrap();
        assert_eq!(
            endpoint_options(&o),
            [("user.opt".to_owned(), "x".to_owned())].into()
        );
        let ep = EndpointId::from_bytes([0xab; 32]);
        assert_eq!(peer_name(&ep), "bpeerababababab");
        assert!(peer_name(&ep).len() <= 15);
    }
}

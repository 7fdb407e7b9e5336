//! The protocol's logic, apart from the transport: a call and its body in, a status and a body
//! out. The calls themselves are in `network` and `ipam`; starting (and restoring) in
//! `restore`.
//!
//! Locks: `state` and `ipam` are independent and never held together; neither is held over
//! kernel work or a store write. A network's or an endpoint's record is claimed under `state`
//! before its kernel work starts, so two calls for one object never run its kernel work twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use berth_bridge::BridgeDriver;
use berth_driver::{EndpointId, NetworkId};
use berth_firewall::{Firewall, NamespaceClaim};
use berth_ipam::Ipam;
use berth_netlink::{Handle, Netns};
use serde::Serialize;

use super::error::ServerError;
use super::records::{EndpointRecord, NetworkRecord, Records};
use super::staging::Staging;
use crate::wire::{
    ActivateResponse, Call, ErrorReply, GetCapabilitiesResponse, IPAM_DRIVER, IpamAck,
    IpamCapabilitiesResponse, NETWORK_DRIVER,
};

/// An answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json<T: Serialize>(status: u16, value: &T) -> Reply {
        Reply {
            status,
            body: serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec()),
        }
    }

    /// 404 for a path that names no call.
    pub(crate) fn not_found(path: &str) -> Reply {
        Reply::json(
            404,
            &ErrorReply {
                err: format!(
                    "{path}: no such call (this plugin implements NetworkDriver and IpamDriver)"
                ),
            },
        )
    }
}

/// Networks and endpoints as the server knows them (records as stored).
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) networks: HashMap<NetworkId, NetworkRecord>,
    pub(crate) endpoints: HashMap<EndpointId, EndpointRecord>,
}

/// Everything a call needs.
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) host: Netns,
    pub(crate) host_netlink: Handle,
    pub(crate) bridge: BridgeDriver,
    pub(crate) firewall: Option<Arc<Firewall>>,
    pub(crate) staging: Staging,
    pub(crate) records: Records,
    pub(crate) state: Mutex<State>,
    pub(crate) ipam: Mutex<Ipam>,
    /// The server switches forwarding on where it is off ([`super::ServerConfig::ip_forward`]).
    pub(crate) ip_forward: bool,
    /// Unknown network options are refused ([`super::ServerConfig::strict_options`]).
    pub(crate) strict_options: bool,
    /// The host namespace's berth firewall is this server's (with a firewall); the last field,
    /// so released after everything else has gone.
    pub(crate) _claim: Option<NamespaceClaim>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Service {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn ipam(&self) -> MutexGuard<'_, Ipam> {
        self.ipam.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers `call` with `body` (the request's JSON).
    pub(crate) fn handle(&self, call: Call, body: &[u8]) -> Reply {
        let start = std::time::Instant::now();
        let reply = self.dispatch(call, body);
        tracing::debug!(plugin = %self.name, %call, status = reply.status, elapsed = ?start.elapsed(), "plugin call served");
        reply
    }

    fn dispatch(&self, call: Call, body: &[u8]) -> Reply {
        let network = |r: Result<Vec<u8>, ServerError>| match r {
            Ok(body) => Reply { status: 200, body },
            Err(e) => {
                tracing::warn!(plugin = %self.name, %call, error = %e, "call refused");
                Reply::json(500, &ErrorReply { err: e.to_string() })
            }
        };
        let ipam = |r: Result<Vec<u8>, ServerError>| match r {
            Ok(body) => Reply { status: 200, body },
            Err(e) => {
                tracing::warn!(plugin = %self.name, %call, error = %e, "call refused");
                Reply::json(
                    200,
                    &IpamAck {
                        error: e.to_string(),
                    },
                )
            }
        };
        match call {
            Call::Activate => Reply::json(
                200,
                &ActivateResponse {
                    implements: vec![NETWORK_DRIVER.to_owned(), IPAM_DRIVER.to_owned()],
                },
            ),
            Call::GetCapabilities => Reply::json(
                200,
                &GetCapabilitiesResponse {
                    scope: "local".into(),
                    connectivity_scope: "local".into(),
                    ..Default::default()
                },
            ),
            Call::CreateNetwork => network(self.create_network(body)),
            Call::DeleteNetwork => network(self.delete_network(body)),
            Call::AllocateNetwork | Call::FreeNetwork => network(Err(ServerError::Config(
                format!("{call}: this plugin serves local-scope networks only (no swarm)"),
            ))),
            Call::CreateEndpoint => network(self.create_endpoint(body)),
            Call::EndpointOperInfo => network(self.endpoint_info(body)),
            Call::DeleteEndpoint => network(self.delete_endpoint(body)),
            Call::Join => network(self.join(body)),
            Call::Leave => network(self.leave(body)),
            // Node discovery concerns global-scope drivers: nothing to do.
            Call::DiscoverNew | Call::DiscoverDelete => network(Ok(b"{}".to_vec())),
            Call::ProgramExternalConnectivity => network(self.program_external(body)),
            Call::RevokeExternalConnectivity => network(self.revoke_external(body)),
            Call::IpamGetCapabilities => Reply::json(200, &IpamCapabilitiesResponse::default()),
            Call::GetDefaultAddressSpaces => ipam(self.address_spaces()),
            Call::RequestPool => ipam(self.request_pool(body)),
            Call::ReleasePool => ipam(self.release_pool(body)),
            Call::RequestAddress => ipam(self.request_address(body)),
            Call::ReleaseAddress => ipam(self.release_address(body)),
        }
    }
}

/// Decodes a request body as dockerd's Go encoder wrote it (keys in any case, `null` as zero).
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    call: Call,
    body: &[u8],
) -> Result<T, ServerError> {
    crate::wire::decode(body).map_err(|e| {
        ServerError::request(
            call,
            "body",
            &String::from_utf8_lossy(body),
            format!("not the JSON this call takes: {e}"),
        )
    })
}

/// The JSON of an answer.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ServerError> {
    serde_json::to_vec(value).map_err(|e| ServerError::Config(format!("encoding an answer: {e}")))
}

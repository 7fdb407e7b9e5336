//! The wire format of Docker's plugin protocol, as libnetwork's remote driver and remote IPAM
//! speak it: the JSON bodies of every call (field names exactly as dockerd writes and reads
//! them), the calls themselves ([`Call`]), the handshake ([`ActivateResponse`]) and the error
//! reply ([`ErrorReply`]). Pure: no I/O.
//!
//! Requests serialize as dockerd's Go encoder writes them (an empty list of a Go slice as
//! `null`, an empty option map of a Go map as `null` where dockerd sends one so). Answers decode
//! as dockerd's Go decoder reads them ([`decode`]): keys in any case, `null` for a zero value,
//! unknown keys ignored, the first JSON value of the body. What an answer means, beyond its
//! JSON, is checked by the typed readers ([`JoinResponse::parse`], ...), which never panic on
//! any input and name what they refuse ([`AnswerError`]).

mod gojson;
pub mod ipam;
pub mod network;
pub mod ports;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use ipam::*;
pub use network::*;
pub use ports::{ExposedPort, PortMapping, port_options};

/// The `Accept` header dockerd sends with every call (`VersionMimetype` of its plugin
/// transport).
pub const ACCEPT: &str = "application/vnd.docker.plugins.v1.2+json";

/// The media type of the bodies: berth sends it as the request's `Content-Type`, and plugins
/// answer with it (Docker's plugin API documentation).
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1+json";

/// What a plugin implements, as its handshake lists it: a network driver.
pub const NETWORK_DRIVER: &str = "NetworkDriver";

/// What a plugin implements, as its handshake lists it: an IPAM driver.
pub const IPAM_DRIVER: &str = "IpamDriver";

/// One call of the protocol: its path is `/` followed by [`Call::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Call {
    /// `/Plugin.Activate`: the handshake, answered by [`ActivateResponse`].
    Activate,
    /// `/NetworkDriver.GetCapabilities`.
    GetCapabilities,
    /// `/NetworkDriver.CreateNetwork`.
    CreateNetwork,
    /// `/NetworkDriver.DeleteNetwork`.
    DeleteNetwork,
    /// `/NetworkDriver.AllocateNetwork` (the swarm manager's, for global-scope drivers).
    AllocateNetwork,
    /// `/NetworkDriver.FreeNetwork`.
    FreeNetwork,
    /// `/NetworkDriver.CreateEndpoint`.
    CreateEndpoint,
    /// `/NetworkDriver.EndpointOperInfo`.
    EndpointOperInfo,
    /// `/NetworkDriver.DeleteEndpoint`.
    DeleteEndpoint,
    /// `/NetworkDriver.Join`.
    Join,
    /// `/NetworkDriver.Leave`.
    Leave,
    /// `/NetworkDriver.DiscoverNew`.
    DiscoverNew,
    /// `/NetworkDriver.DiscoverDelete`.
    DiscoverDelete,
    /// `/NetworkDriver.ProgramExternalConnectivity`.
    ProgramExternalConnectivity,
    /// `/NetworkDriver.RevokeExternalConnectivity`.
    RevokeExternalConnectivity,
    /// `/IpamDriver.GetCapabilities`.
    IpamGetCapabilities,
    /// `/IpamDriver.GetDefaultAddressSpaces`.
    GetDefaultAddressSpaces,
    /// `/IpamDriver.RequestPool`.
    RequestPool,
    /// `/IpamDriver.ReleasePool`.
    ReleasePool,
    /// `/IpamDriver.RequestAddress`.
    RequestAddress,
    /// `/IpamDriver.ReleaseAddress`.
    ReleaseAddress,
}

impl Call {
    /// Every call, in the order above.
    pub const ALL: [Call; 21] = [
        Call::Activate,
        Call::GetCapabilities,
        Call::CreateNetwork,
        Call::DeleteNetwork,
        Call::AllocateNetwork,
        Call::FreeNetwork,
        Call::CreateEndpoint,
        Call::EndpointOperInfo,
        Call::DeleteEndpoint,
        Call::Join,
        Call::Leave,
        Call::DiscoverNew,
        Call::DiscoverDelete,
        Call::ProgramExternalConnectivity,
        Call::RevokeExternalConnectivity,
        Call::IpamGetCapabilities,
        Call::GetDefaultAddressSpaces,
        Call::RequestPool,
        Call::ReleasePool,
        Call::RequestAddress,
        Call::ReleaseAddress,
    ];

    /// The call's name (`NetworkDriver.Join`), as dockerd's messages name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Call::Activate => "Plugin.Activate",
            Call::GetCapabilities => "NetworkDriver.GetCapabilities",
            Call::CreateNetwork => "NetworkDriver.CreateNetwork",
            Call::DeleteNetwork => "NetworkDriver.DeleteNetwork",
            Call::AllocateNetwork => "NetworkDriver.AllocateNetwork",
            Call::FreeNetwork => "NetworkDriver.FreeNetwork",
            Call::CreateEndpoint => "NetworkDriver.CreateEndpoint",
            Call::EndpointOperInfo => "NetworkDriver.EndpointOperInfo",
            Call::DeleteEndpoint => "NetworkDriver.DeleteEndpoint",
            Call::Join => "NetworkDriver.Join",
            Call::Leave => "NetworkDriver.Leave",
            Call::DiscoverNew => "NetworkDriver.DiscoverNew",
            Call::DiscoverDelete => "NetworkDriver.DiscoverDelete",
            Call::ProgramExternalConnectivity => "NetworkDriver.ProgramExternalConnectivity",
            Call::RevokeExternalConnectivity => "NetworkDriver.RevokeExternalConnectivity",
            Call::IpamGetCapabilities => "IpamDriver.GetCapabilities",
            Call::GetDefaultAddressSpaces => "IpamDriver.GetDefaultAddressSpaces",
            Call::RequestPool => "IpamDriver.RequestPool",
            Call::ReleasePool => "IpamDriver.ReleasePool",
            Call::RequestAddress => "IpamDriver.RequestAddress",
            Call::ReleaseAddress => "IpamDriver.ReleaseAddress",
        }
    }

    /// The request path (`/NetworkDriver.Join`).
    pub fn path(self) -> String {
        format!("/{}", self.as_str())
    }

    /// The call a path names (`/NetworkDriver.Join`, with or without the slash).
    pub fn from_path(path: &str) -> Option<Call> {
        let name = path.strip_prefix('/').unwrap_or(path);
        Call::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An answer that can carry the plugin's own error message (`Err` in the network driver API,
/// `Error` in the IPAM API): a non-empty one fails the call.
pub trait Answer: DeserializeOwned {
    /// The plugin's error message, empty on success.
    fn error_message(&self) -> &str;
}

/// The handshake's answer: what the plugin implements (`NetworkDriver`, `IpamDriver`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ActivateResponse {
    /// The subsystems the plugin implements.
    pub implements: Vec<String>,
}

impl Answer for ActivateResponse {
    fn error_message(&self) -> &str {
        ""
    }
}

/// The body of a plugin's error reply (any status but 200): `{"Err": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ErrorReply {
    /// The message.
    pub err: String,
}

impl Answer for ErrorReply {
    fn error_message(&self) -> &str {
        &self.err
    }
}

/// The answer of the network driver calls that return nothing but a possible error (`Err`):
/// `CreateNetwork`, `DeleteNetwork`, `FreeNetwork`, `DeleteEndpoint`, `Leave`, `DiscoverNew`,
/// `DiscoverDelete`, `ProgramExternalConnectivity`, `RevokeExternalConnectivity`.
pub type Ack = ErrorReply;

/// Decodes an answer body as dockerd does (see the module): the first JSON value, keys in any
/// case, `null` as the zero value.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    gojson::from_slice(body)
}

/// A message from an error reply body (any status but 200), as dockerd reads one: the `Err` of
/// a JSON object when it has one, else the body as text (trimmed, at most 512 characters).
pub fn error_reply_message(body: &[u8]) -> String {
    if let Ok(reply) = decode::<ErrorReply>(body)
        && !reply.err.is_empty()
    {
        return reply.err;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.chars().count() > 512 {
        format!("{}...", text.chars().take(512).collect::<String>())
    } else {
        text.to_owned()
    }
}

/// An answer whose JSON decoded but whose content cannot be used (an address that does not
/// parse, a scope that is neither `local` nor `global`, ...): names the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {value:?}: {reason}")]
pub struct AnswerError {
    /// The field, as the wire names it (`Interface.Address`, `StaticRoutes[1].NextHop`).
    pub field: String,
    /// The value as given (at most 200 characters).
    pub value: String,
    /// Why it is refused.
    pub reason: String,
}

impl AnswerError {
    pub(crate) fn new(
        field: impl Into<String>,
        value: &str,
        reason: impl Into<String>,
    ) -> AnswerError {
        AnswerError {
            field: field.into(),
            value: value.chars().take(200).collect(),
            reason: reason.into(),
        }
    }
}

/// Serializes an empty sequence as `null` (a nil Go slice), as dockerd sends it.
pub(crate) fn nil_if_empty<S, T>(items: &[T], s: S) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
    T: Serialize,
{
    if items.is_empty() {
        s.serialize_none()
    } else {
        s.collect_seq(items)
    }
}

/// Serializes an empty map as `null` (a nil Go map), as dockerd sends it.
pub(crate) fn nil_if_empty_map<S, K, V>(
    map: &std::collections::BTreeMap<K, V>,
    s: S,
) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
    K: Serialize,
    V: Serialize,
{
    if map.is_empty() {
        s.serialize_none()
    } else {
        s.collect_map(map)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn calls_and_paths() {
        for call in Call::ALL {
            assert_eq!(Call::from_path(&call.path()), Some(call));
            assert_eq!(call.to_string(), call.as_str());
        }
        assert_eq!(Call::Join.path(), "/NetworkDriver.Join");
        assert_eq!(Call::from_path("/NetworkDriver.Bogus"), None);
    }

    #[test]
    fn handshake_and_errors() {
        let a: ActivateResponse =
            decode(br#"{"Implements": ["NetworkDriver", "IpamDriver"]}"#).unwrap();
        assert_eq!(a.implements, [NETWORK_DRIVER, IPAM_DRIVER]);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"Implements":["NetworkDriver","IpamDriver"]}"#
        );
        assert_eq!(error_reply_message(br#"{"Err":"boom"}"#), "boom");
        assert_eq!(
            error_reply_message(b"  404 page not found\n"),
            "404 page not found"
        );
        assert_eq!(error_reply_message(br#"{"Err":""}"#), r#"{"Err":""}"#);
        assert_eq!(error_reply_message(&[b'x'; 600]).len(), 515);
    }
}

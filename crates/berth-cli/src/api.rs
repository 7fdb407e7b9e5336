//! The daemon's HTTP API as data: routing and decoding of requests into typed controller requests,
//! the Docker Engine API JSON shapes, filters, and the error body. Pure functions: no I/O, no
//! panics on any input (fuzzed by `fuzz/fuzz_targets/api_request.rs`).
//!
//! Network endpoints follow the Docker Engine API (paths with or without a `/v1.xx` prefix, JSON
//! shapes, status codes, `{"message": ...}` error bodies). berth's own sandbox endpoints live
//! under `/sandboxes`.
//!
//! ```
//! use berth_cli::api::{Request, decode};
//!
//! let req = decode("POST", "/v1.41/networks/create", Some("application/json"),
//!     br#"{"Name":"isolated_nw","Driver":"bridge"}"#).unwrap();
//! assert!(matches!(req, Request::CreateNetwork(ref c, _) if c.name == "isolated_nw"));
//! let err = decode("GET", "/v1.41/nothing", None, b"").unwrap_err();
//! assert_eq!(err.status, 404);
//! ```

mod bodies;
mod conversion;
mod error;
mod filters;
mod routes;

pub use bodies::{
    ConfigFromBody, ConnectBody, DisconnectBody, EndpointIpamBody, EndpointSettingsBody, IpamBody,
    IpamConfigBody, NetworkCreateBody, NetworkCreateResponse, NetworkPruneResponse,
    PortBindingBody, SandboxCreateBody, SandboxCreateResponse, SandboxEndpointBody,
};
pub use conversion::SandboxSpec;
pub use error::{ApiError, error_body};
pub use filters::{Filters, NetworkFilters, PruneFilters, parse_rfc3339_nanos};
pub use routes::{CheckDuplicate, Request, decode, parse_query};

/// The API version berth speaks, Docker 20.10's: advertised (`Api-Version` header, `/version`)
/// and the newest accepted in a `/v1.xx` prefix, as Docker refuses a version above its own
/// (clients that negotiate, as the docker CLI does, speak it).
pub const API_VERSION: &str = "1.41";
/// The oldest API version accepted in a `/v1.xx` prefix.
pub const MIN_API_VERSION: &str = "1.12";
/// The largest request body the daemon reads; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

const MIN_VERSION: (u32, u32) = (1, 12);
const MAX_VERSION: (u32, u32) = (1, 41);

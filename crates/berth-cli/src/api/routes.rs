//! Request routing: the request target (path, `/v1.xx` prefix, query) and method decoded into a
//! [`Request`], with the methods each path allows (404 and 405 answers otherwise).

use std::borrow::Cow;
use std::collections::BTreeMap;

use berth::{EndpointOptions, NetworkCreate};

use super::bodies::{ConnectBody, DisconnectBody, NetworkCreateBody, SandboxCreateBody, json_body};
use super::conversion::{
    SandboxSpec, container_name, endpoint_options, network_create, sandbox_spec,
};
use super::error::ApiError;
use super::filters::{Filters, NetworkFilters, PruneFilters};
use super::{API_VERSION, MAX_VERSION, MIN_API_VERSION, MIN_VERSION};

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Request {
    /// `GET|HEAD /_ping`.
    Ping {
        /// A HEAD request (no body in the answer).
        head: bool,
    },
    /// `GET /version`.
    Version,
    /// `GET /info`.
    Info,
    /// `GET /networks?filters=...`.
    ListNetworks(NetworkFilters),
    /// `GET /networks/{id}`.
    InspectNetwork {
        /// Name, id or id prefix.
        id: String,
        /// `scope=`: only a network of this scope is found.
        scope: Option<String>,
    },
    /// `POST /networks/create`.
    CreateNetwork(NetworkCreate, CheckDuplicate),
    /// `POST /networks/{id}/connect`.
    Connect {
        /// The network.
        network: String,
        /// The sandbox ("container") name or id.
        container: String,
        /// Endpoint options.
        options: EndpointOptions,
    },
    /// `POST /networks/{id}/disconnect`.
    Disconnect {
        /// The network.
        network: String,
        /// The sandbox ("container") name or id.
        container: String,
        /// `Force` (accepted; a disconnect of a live sandbox is always complete).
        force: bool,
    },
    /// `DELETE /networks/{id}`.
    RemoveNetwork {
        /// Name, id or id prefix.
        id: String,
    },
    /// `POST /networks/prune?filters=...`.
    PruneNetworks(PruneFilters),
    /// `POST /firewall/reconcile` (berth): compare berth's rules with what they must be, fix
    /// what differs, answer what was found.
    ReconcileFirewall,
    /// `POST /sandboxes/create` (berth).
    CreateSandbox(Box<SandboxSpec>),
    /// `GET /sandboxes` (berth).
    ListSandboxes,
    /// `GET /sandboxes/{id}` (berth).
    InspectSandbox {
        /// Name, id or id prefix.
        id: String,
    },
    /// `DELETE /sandboxes/{id}` (berth).
    RemoveSandbox {
        /// Name, id or id prefix.
        id: String,
    },
    /// `POST /sandboxes/{id}/rename?name=NEW` (berth; Docker's `/containers/{id}/rename`).
    RenameSandbox {
        /// Name, id or id prefix.
        id: String,
        /// The new name.
        name: String,
    },
}
/// Percent-decodes a path (`plus_is_space` false) or a query key or value (`+` is a space), as
/// UTF-8; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    // percent-encoding passes a malformed escape through as it is; the API refuses it. Every `%`
    // starts an escape (hex digits are never `%`), so each must be followed by two hex digits.
    let b = s.as_bytes();
    let well_formed = b
        .iter()
        .enumerate()
        .filter(|&(_, &c)| c == b'%')
        .all(|(i, _)| {
            b.get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        });
    if !well_formed {
        return None;
    }
    // Replacing `+` before decoding leaves an escaped `%2B` a plus.
    let s: Cow<'_, str> = if plus_is_space && s.contains('+') {
        Cow::Owned(s.replace('+', " "))
    } else {
        Cow::Borrowed(s)
    };
    percent_encoding::percent_decode_str(&s)
        .decode_utf8()
        .ok()
        .map(Cow::into_owned)
}

/// The query parameters of a request target (first occurrence of each key wins).
pub fn parse_query(query: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let bad = || ApiError::bad_request(format!("malformed query parameter {pair:?}"));
        let k = percent_decode(k, true).ok_or_else(bad)?;
        let v = percent_decode(v, true).ok_or_else(bad)?;
        out.entry(k).or_insert(v);
    }
    Ok(out)
}

/// The create's `CheckDuplicate`: Docker makes a second network of one name without it; berth
/// keeps names unique either way, and its refusal says so when the client did not ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckDuplicate(pub bool);

/// The first path segments of the Docker Engine API that berth does not serve (the engine's:
/// containers, images, volumes, swarm, ...): answered with what berth serves instead of "page
/// not found".
const DOCKER_ONLY: [&str; 19] = [
    "containers",
    "images",
    "volumes",
    "exec",
    "build",
    "commit",
    "auth",
    "events",
    "system",
    "swarm",
    "nodes",
    "services",
    "tasks",
    "secrets",
    "configs",
    "plugins",
    "distribution",
    "session",
    "grpc",
];

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (maj, min) = v.split_once('.')?;
    if maj.is_empty() || min.is_empty() || maj.len() > 4 || min.len() > 4 {
        return None;
    }
    Some((maj.parse().ok()?, min.parse().ok()?))
}

/// Splits `/v1.41/networks` into the version and `/networks`, checking the version.
fn strip_version(path: &str) -> Result<&str, ApiError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok(path);
    };
    let (ver, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let Some(v) = parse_version(ver) else {
        return Ok(path);
    };
    if v > MAX_VERSION {
        return Err(ApiError::bad_request(format!(
            "client version {ver} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if v < MIN_VERSION {
        return Err(ApiError::bad_request(format!(
            "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    Ok(tail)
}

fn query_bool(q: &BTreeMap<String, String>, key: &str) -> Result<bool, ApiError> {
    match q.get(key).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v.is_empty() || v == "0" || v == "false" || v == "no" => Ok(false),
        Some(v) if v == "1" || v == "true" || v == "yes" => Ok(true),
        Some(v) => Err(ApiError::bad_request(format!(
            "invalid value {v:?} for query parameter {key}: use true or false"
        ))),
    }
}

fn id_segment(seg: &str) -> Result<String, ApiError> {
    if seg.is_empty() {
        return Err(ApiError::not_found("page not found"));
    }
    Ok(seg.to_owned())
}

/// Decodes one request: method, request target (path and query), `Content-Type`, body.
///
/// # Errors
/// An [`ApiError`] with Docker's status and message: 404 for unknown paths, 405 for a known path
/// with another method, 400 for malformed or invalid input.
pub fn decode(
    method: &str,
    target: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Request, ApiError> {
    let (raw_path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let path = percent_decode(raw_path, false)
        .ok_or_else(|| ApiError::bad_request(format!("malformed request path {raw_path:?}")))?;
    let path = strip_version(&path)?;
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let q = parse_query(query)?;

    let allowed: &[&'static str] = match segs.as_slice() {
        ["_ping"] => &["GET", "HEAD"],
        ["version"] | ["info"] | ["networks"] | ["sandboxes"] => &["GET"],
        ["networks", "create"] => &["POST", "GET", "DELETE"],
        ["networks", "prune"] => &["POST", "GET", "DELETE"],
        ["networks", _] => &["GET", "DELETE"],
        ["networks", _, "connect" | "disconnect"] => &["POST"],
        ["sandboxes", "create"] => &["POST", "GET", "DELETE"],
        ["sandboxes", _] => &["GET", "DELETE"],
        ["sandboxes", _, "rename"] => &["POST"],
        ["firewall", "reconcile"] => &["POST"],
        [root, ..] if DOCKER_ONLY.contains(root) => {
            return Err(ApiError::not_found(format!(
                "berth serves networks and sandboxes only: {path} is not part of its API (containers, images and the rest are the engine's)"
            )));
        }
        _ => return Err(ApiError::not_found("page not found")),
    };
    if !allowed.contains(&method) {
        let mut e = ApiError::new(
            405,
            format!(
                "method {method} is not allowed on {path}: use {}",
                allowed.join(" or ")
            ),
        );
        e.allow = allowed.to_vec();
        return Err(e);
    }

    match (method, segs.as_slice()) {
        (_, ["_ping"]) => Ok(Request::Ping {
            head: method == "HEAD",
        }),
        (_, ["version"]) => Ok(Request::Version),
        (_, ["info"]) => Ok(Request::Info),
        (_, ["networks"]) => {
            let f = Filters::parse(q.get("filters").map(String::as_str).unwrap_or(""))?;
            Ok(Request::ListNetworks(NetworkFilters::new(f)?))
        }
        ("POST", ["networks", "create"]) => {
            let b: NetworkCreateBody = json_body(content_type, body, "network create")?;
            let check = CheckDuplicate(b.check_duplicate);
            Ok(Request::CreateNetwork(network_create(b)?, check))
        }
        ("POST", ["networks", "prune"]) => {
            let f = Filters::parse(q.get("filters").map(String::as_str).unwrap_or(""))?;
            Ok(Request::PruneNetworks(PruneFilters::new(f, now_nanos())?))
        }
        ("GET", ["networks", id]) => {
            query_bool(&q, "verbose")?;
            let scope = q.get("scope").filter(|s| !s.is_empty()).cloned();
            Ok(Request::InspectNetwork {
                id: id_segment(id)?,
                scope,
            })
        }
        ("DELETE", ["networks", id]) => Ok(Request::RemoveNetwork {
            id: id_segment(id)?,
        }),
        (_, ["networks", id, "connect"]) => {
            let b: ConnectBody = json_body(content_type, body, "network connect")?;
            let container = container_name(&b.container)?;
            let options = endpoint_options(&b.endpoint_config)?;
            Ok(Request::Connect {
                network: id_segment(id)?,
                container,
                options,
            })
        }
        (_, ["networks", id, "disconnect"]) => {
            let b: DisconnectBody = json_body(content_type, body, "network disconnect")?;
            Ok(Request::Disconnect {
                network: id_segment(id)?,
                container: container_name(&b.container)?,
                force: b.force,
            })
        }
        (_, ["firewall", "reconcile"]) => Ok(Request::ReconcileFirewall),
        (_, ["sandboxes"]) => Ok(Request::ListSandboxes),
        ("POST", ["sandboxes", "create"]) => {
            let b: SandboxCreateBody = json_body(content_type, body, "sandbox create")?;
            Ok(Request::CreateSandbox(Box::new(sandbox_spec(b)?)))
        }
        ("GET", ["sandboxes", id]) => Ok(Request::InspectSandbox {
            id: id_segment(id)?,
        }),
        ("DELETE", ["sandboxes", id]) => Ok(Request::RemoveSandbox {
            id: id_segment(id)?,
        }),
        ("POST", ["sandboxes", id, "rename"]) => {
            let name = q.get("name").cloned().unwrap_or_default();
            if name.is_empty() {
                return Err(ApiError::bad_request(
                    "rename needs the new name: POST /sandboxes/{id}/rename?name=NEW",
                ));
            }
            Ok(Request::RenameSandbox {
                id: id_segment(id)?,
                name,
            })
        }
        _ => Err(ApiError::not_found("page not found")),
    }
}

fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_with_and_without_version() {
        assert_eq!(
            decode("GET", "/_ping", None, b"").unwrap(),
            Request::Ping { head: false }
        );
        assert_eq!(
            decode("HEAD", "/v1.41/_ping", None, b"").unwrap(),
            Request::Ping { head: true }
        );
        assert!(matches!(
            decode("GET", "/v1.41/networks/abc?verbose=false", None, b"").unwrap(),
            Request::InspectNetwork { ref id, .. } if id == "abc"
        ));
        assert!(matches!(
            decode("DELETE", "/networks/create", None, b"").unwrap(),
            Request::RemoveNetwork { ref id } if id == "create"
        ));
        assert_eq!(decode("GET", "/nope", None, b"").unwrap_err().status, 404);
        let e = decode("PUT", "/networks", None, b"").unwrap_err();
        assert_eq!((e.status, e.allow.clone()), (405, vec!["GET"]));
        assert_eq!(
            decode("GET", "/v1.99/networks", None, b"")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            decode("GET", "/v1.11/networks", None, b"")
                .unwrap_err()
                .status,
            400
        );
        assert!(decode("GET", "/v1.41/networks", None, b"").is_ok());
        let e = decode("GET", "/v1.47/networks", None, b"").unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(
            e.message,
            "client version 1.47 is too new. Maximum supported API version is 1.41"
        );
        let e = decode("GET", "/v1.41/containers/json", None, b"").unwrap_err();
        assert_eq!(e.status, 404);
        assert!(
            e.message
                .contains("berth serves networks and sandboxes only"),
            "{}",
            e.message
        );
        assert_eq!(
            decode("GET", "/nothing", None, b"").unwrap_err().message,
            "page not found"
        );
        assert!(matches!(
            decode("GET", "/v1.41/info", None, b"").unwrap(),
            Request::Info
        ));
    }

    #[test]
    fn percent_decoding_edges() {
        assert_eq!(percent_decode("a%20b", false).as_deref(), Some("a b"));
        assert_eq!(percent_decode("a%2fb%2F", false).as_deref(), Some("a/b/"));
        // `+` is a space in a query only; `%2B` is always a plus.
        assert_eq!(percent_decode("a+b%2B", true).as_deref(), Some("a b+"));
        assert_eq!(percent_decode("a+b%2B", false).as_deref(), Some("a+b+"));
        // Multibyte UTF-8, escaped or not.
        assert_eq!(
            percent_decode("r%C3%A9seau", false).as_deref(),
            Some("réseau")
        );
        assert_eq!(percent_decode("réseau", true).as_deref(), Some("réseau"));
        assert_eq!(percent_decode("", true).as_deref(), Some(""));
        // Malformed escapes and bytes that are not UTF-8.
        for bad in [
            "%", "a%", "a%2", "%zz", "%%41", "%+1", "%-1", "%é1", "%C3", "%FF",
        ] {
            assert_eq!(percent_decode(bad, true), None, "{bad:?}");
            assert_eq!(percent_decode(bad, false), None, "{bad:?}");
        }
    }

    #[test]
    fn decodes_escaped_targets() {
        // The path is decoded before it is split, so an escaped `/` separates segments.
        assert!(matches!(
            decode("GET", "/networks/r%C3%A9seau", None, b"").unwrap(),
            Request::InspectNetwork { ref id, .. } if id == "réseau"
        ));
        assert_eq!(
            decode("GET", "/networks/a%2Fb", None, b"")
                .unwrap_err()
                .status,
            404
        );
        assert_eq!(
            decode("GET", "/networks/a%", None, b"").unwrap_err().status,
            400
        );
        assert_eq!(
            decode("GET", "/networks/a%FF", None, b"")
                .unwrap_err()
                .status,
            400
        );
        assert!(matches!(
            decode("POST", "/sandboxes/s1/rename?name=a+b%2Bc", None, b"").unwrap(),
            Request::RenameSandbox { ref name, .. } if name == "a b+c"
        ));
        assert_eq!(
            decode("POST", "/sandboxes/s1/rename?name=a%2", None, b"")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse_query("a=1&a=2&b&=c&&d=%7E").unwrap(),
            BTreeMap::from([
                (String::new(), "c".to_owned()),
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), String::new()),
                ("d".to_owned(), "~".to_owned()),
            ])
        );
    }
}

//! Bad input never kills the daemon: malformed and mistyped JSON, unknown fields and filters,
//! huge bodies, unknown paths and methods, broken HTTP, slow clients, many concurrent clients.
//! Every answer is checked for Docker's status and `{"message": ...}` body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{Fixture, raw_http};
use serde_json::Value;

const JSON: Option<&str> = Some("application/json");

#[test]
fn malformed_requests_get_docker_errors() {
    let mut f = Fixture::new();
    let post = |path: &str, ct: Option<&str>, body: &[u8]| {
        f.try_http("POST", path, ct, Some(body)).unwrap()
    };

    // Ping, version, prefixes.
    let r = f.http("GET", "/_ping", None);
    assert_eq!((r.status, r.body.as_slice()), (200, b"OK".as_slice()));
    assert_eq!(r.header("Api-Version").as_deref(), Some("1.41"));
    let r = f.http("HEAD", "/_ping", None);
    assert_eq!(r.status, 200);
    let r = f.http("GET", "/v1.41/version", None);
    assert_eq!(r.json()["ApiVersion"], "1.41");
    assert_eq!(f.http("GET", "/v1.41/networks", None).status, 200);
    // One truth: the version berth advertises is the newest it accepts, as in Docker.
    for v in ["1.42", "1.44", "1.99"] {
        let r = f.http("GET", &format!("/v{v}/networks"), None);
        assert_eq!(r.status, 400, "{v}");
        assert_eq!(
            r.message(),
            format!("client version {v} is too new. Maximum supported API version is 1.41")
        );
    }

    // Unknown paths: 404 with Docker's body; known paths with another method: 405 and Allow.
    for path in ["/nope", "/networks/x/y/z", "/"] {
        let r = f.http("GET", path, None);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.message(), "page not found", "{path}");
    }
    // The engine's paths: 404, saying what berth serves.
    for path in ["/v1.41/containers/json", "/images/json", "/volumes"] {
        let r = f.http("GET", path, None);
        assert_eq!(r.status, 404, "{path}");
        assert!(
            r.message()
                .starts_with("berth serves networks and sandboxes only"),
            "{path}: {}",
            r.message()
        );
    }
    // A duplicate name without CheckDuplicate: refused (Docker would make a second network),
    // saying why; forced disconnects answer as Docker's do.
    let body = r#"{"Name":"dup_nw","CheckDuplicate":false}"#;
    assert_eq!(f.http("POST", "/networks/create", Some(body)).status, 201);
    let r = f.http("POST", "/networks/create", Some(body));
    assert_eq!(r.status, 409);
    assert!(
        r.message()
            .contains("also for a create without CheckDuplicate"),
        "{}",
        r.message()
    );
    let r = f.http(
        "POST",
        "/networks/dup_nw/disconnect",
        Some(r#"{"Container":"ghost","Force":true}"#),
    );
    assert_eq!(
        (r.status, r.message()),
        (404, "endpoint ghost not found".to_owned())
    );
    let r = f.http(
        "POST",
        "/networks/nosuchnet/disconnect",
        Some(r#"{"Container":"ghost","Force":true}"#),
    );
    assert_eq!(
        (r.status, r.message()),
        (404, "network nosuchnet not found".to_owned())
    );
    let r = f.http(
        "POST",
        "/networks/nosuchnet/disconnect",
        Some(r#"{"Container":"ghost"}"#),
    );
    assert_eq!(
        (r.status, r.message()),
        (404, "No such container: ghost".to_owned())
    );
    assert_eq!(f.http("DELETE", "/networks/dup_nw", None).status, 204);
    let info = f.http("GET", "/v1.41/info", None);
    assert_eq!(info.status, 200);
    assert_eq!(info.json()["Plugins"]["Network"][0], "bridge");
    let r = f.http("PUT", "/networks", None);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow").as_deref(), Some("GET"));
    assert!(r.message().contains("PUT"), "{}", r.message());
    assert_eq!(f.http("POST", "/_ping", None).status, 405);
    assert_eq!(f.http("GET", "/networks/bridge/connect", None).status, 405);
    let r = f.http("DELETE", "/networks/create", None);
    assert_eq!(
        (r.status, r.message().as_str()),
        (404, "network create not found")
    );

    // Bodies: empty, malformed, mistyped, not JSON, trailing garbage, arrays.
    let r = post("/networks/create", JSON, b"");
    assert_eq!(r.status, 400);
    assert!(r.message().contains("EOF"), "{}", r.message());
    let r = post("/networks/create", JSON, b"{\"Name\":");
    assert_eq!(r.status, 400);
    let r = post("/networks/create", JSON, br#"{"Name":5}"#);
    assert_eq!(r.status, 400);
    assert!(
        r.message().contains("Name") && r.message().contains("invalid type"),
        "{}",
        r.message()
    );
    let r = post(
        "/networks/create",
        JSON,
        br#"{"Name":"x","IPAM":{"Config":"no"}}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.message().contains("IPAM.Config"), "{}", r.message());
    let r = post("/networks/create", Some("text/plain"), br#"{"Name":"x"}"#);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.message(),
        "Content-Type specified (text/plain) must be 'application/json'"
    );
    assert_eq!(
        post("/networks/create", JSON, br#"{"Name":"x"}garbage"#).status,
        400
    );
    assert_eq!(post("/networks/create", JSON, b"[]").status, 400);
    assert_eq!(post("/networks/create", JSON, b"\xff\xfe").status, 400);
    assert_eq!(
        post("/networks/create", JSON, br#"{"Name":""}"#).status,
        400
    );
    let r = post("/networks/create", JSON, br#"{"Name":"none"}"#);
    assert_eq!(r.status, 403);
    let r = post("/networks/create", JSON, br#"{"Name":"x","Ingress":true}"#);
    assert_eq!(r.status, 400);
    // Unknown fields: ignored on Docker's endpoints (as dockerd does; newer clients send them),
    // refused on berth's own.
    let r = post(
        "/networks/create",
        JSON,
        br#"{"Name":"extra","EnableIPv4":true,"Bogus":[1]}"#,
    );
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["Warning"], "");
    let r = post(
        "/networks/create",
        JSON,
        br#"{"Name":"extra","CheckDuplicate":true}"#,
    );
    assert_eq!(
        (r.status, r.message().as_str()),
        (409, "network with name extra already exists")
    );
    let r = post("/sandboxes/create", JSON, br#"{"Name":"s","Bogus":1}"#);
    assert_eq!(r.status, 400);
    assert!(r.message().contains("Bogus"), "{}", r.message());
    let r = post("/networks/bridge/connect", JSON, br#"{}"#);
    assert_eq!(r.status, 400);
    let r = post(
        "/networks/bridge/connect",
        JSON,
        br#"{"Container":"nosuch"}"#,
    );
    assert_eq!(
        (r.status, r.message().as_str()),
        (404, "No such container: nosuch")
    );
    let r = post("/networks/nonet/disconnect", JSON, br#"{"Container":"x"}"#);
    assert_eq!(r.status, 404);

    // Filters: unknown keys and values as Docker refuses them.
    let r = f.http(
        "GET",
        "/networks?filters=%7B%22foo%22%3A%5B%22x%22%5D%7D",
        None,
    );
    assert_eq!(
        (r.status, r.message().as_str()),
        (400, "Invalid filter 'foo'")
    );
    let r = f.http("GET", "/networks?filters=notjson", None);
    assert_eq!(r.status, 400);
    let r = f.http(
        "GET",
        "/networks?filters=%7B%22type%22%3A%5B%22bogus%22%5D%7D",
        None,
    );
    assert_eq!(r.status, 400);
    let r = f.http(
        "POST",
        "/networks/prune?filters=%7B%22name%22%3A%5B%22x%22%5D%7D",
        None,
    );
    assert_eq!(
        (r.status, r.message().as_str()),
        (400, "Invalid filter 'name'")
    );
    let r = f.http(
        "GET",
        "/networks?filters=%7B%22name%22%3A%7B%22(%22%3Atrue%7D%7D",
        None,
    );
    assert_eq!(
        r.status, 200,
        "an invalid regular expression matches nothing"
    );
    assert_eq!(r.json(), Value::Array(vec![]));
    let r = f.http("GET", "/networks?filters=%zz", None);
    assert_eq!(r.status, 400);

    // Huge bodies: refused with 413 before or while reading, whatever the framing.
    let big = vec![b' '; 2 << 20];
    let r = post("/networks/create", JSON, &big);
    assert_eq!(r.status, 413);
    assert!(r.message().contains("larger than"), "{}", r.message());
    let mut chunked = b"POST /networks/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..40 {
        chunked.extend_from_slice(format!("{:x}\r\n", 64 << 10).as_bytes());
        chunked.extend(std::iter::repeat_n(b' ', 64 << 10));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = raw_http(&f.socket(), &chunked);
    if let Ok(r) = r {
        assert_eq!(r.status, 413);
    }

    // Broken HTTP: garbage, a missing request line, huge headers. The daemon answers or closes.
    for raw in [
        b"garbage\r\n\r\n".to_vec(),
        b"\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        [
            b"GET /_ping HTTP/1.1\r\nX: ".as_slice(),
            &vec![b'a'; 200_000],
            b"\r\n\r\n",
        ]
        .concat(),
        b"POST /networks/create HTTP/1.1\r\nContent-Length: 5\r\n\r\n{".to_vec(),
    ] {
        if let Ok(r) = raw_http_short(&f.socket(), &raw) {
            assert!(
                r.is_empty() || r.starts_with(b"HTTP/1.1 4"),
                "{:?}",
                String::from_utf8_lossy(&r)
            );
        }
    }

    // A client that sends half a header and goes quiet is dropped after the header timeout;
    // meanwhile everyone else is served.
    let mut slow = UnixStream::connect(f.socket()).unwrap();
    slow.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let t = Instant::now();
    assert_eq!(f.http("GET", "/_ping", None).status, 200);
    assert!(t.elapsed() < Duration::from_secs(2));
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    assert!(
        t.elapsed() < Duration::from_secs(25),
        "slow client held for {:?}",
        t.elapsed()
    );

    assert!(f.alive(), "the daemon survived:\n{}", f.log());
    assert_eq!(f.http("GET", "/_ping", None).status, 200);
}

/// Writes raw bytes, reads what comes back within 15 s (errors if the daemon reset the stream).
fn raw_http_short(socket: &std::path::Path, raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    let _ = s.write_all(raw);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn concurrent_clients_are_all_served_consistently() {
    let mut f = Fixture::new();
    for i in 0..4 {
        f.ok(&[
            "network",
            "create",
            "--subnet",
            &format!("10.{}.0.0/24", 100 + i),
            &format!("c{i}"),
        ]);
    }
    let socket = f.socket();
    let threads: Vec<_> = (0..32)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || -> Vec<u16> {
                let mut statuses = Vec::new();
                let req = |method: &str, path: &str, body: Option<String>| -> u16 {
                    let mut raw =
                        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
                    match &body {
                        Some(b) => raw.push_str(&format!(
                            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                            b.len()
                        )),
                        None => raw.push_str("Content-Length: 0\r\n\r\n"),
                    }
                    raw_http(&socket, raw.as_bytes())
                        .map(|r| r.status)
                        .unwrap_or(0)
                };
                let net = format!("c{}", i % 4);
                statuses.push(req(
                    "POST",
                    "/sandboxes/create",
                    Some(format!(r#"{{"Name":"t{i}","NetworkMode":"{net}"}}"#)),
                ));
                statuses.push(req("GET", "/networks", None));
                statuses.push(req(
                    "POST",
                    "/networks/bridge/connect",
                    Some(format!(r#"{{"Container":"t{i}"}}"#)),
                ));
                statuses.push(req("GET", &format!("/sandboxes/t{i}"), None));
                // Junk interleaved with real work.
                statuses.push(req("POST", "/networks/create", Some("{".into())));
                statuses
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let s = t.join().unwrap();
        assert_eq!(s, vec![201, 200, 200, 200, 400], "client {i}");
    }
    assert!(f.alive());
    // No duplicate address on any network, and every sandbox reaches its neighbours.
    let list: Vec<Value> = f
        .http("GET", "/sandboxes", None)
        .json()
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(list.len(), 32);
    let mut seen = BTreeSet::new();
    for sb in &list {
        for (net, ep) in sb["Networks"].as_object().unwrap() {
            let ip = ep["IPAddress"].as_str().unwrap();
            assert!(
                seen.insert((net.clone(), ip.to_owned())),
                "{ip} twice on {net}"
            );
        }
    }
    assert_eq!(seen.len(), 64);
    let target = f.ip_of("t1", "bridge");
    assert!(f.ping("t0", &target));
    let target = f.ip_of("t4", "c0");
    assert!(f.ping("t0", &target));
    f.kill9();
}

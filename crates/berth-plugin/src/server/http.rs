//! The transport: HTTP/1.1 on a unix socket, blocking, a thread per connection. Connections are
//! persistent (dockerd's Go client keeps them open between calls); a connection waits for its
//! next request without a timeout, and a request that has begun must arrive whole within
//! [`REQUEST_TIMEOUT`]. Stopping closes the listener, lets calls in progress finish and answer,
//! closes idle connections and removes the socket.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::error::{ServerError, ServerResult};
use super::service::{Reply, Service};
use crate::wire::{CONTENT_TYPE, Call, ErrorReply};

/// How long a request that has begun may take to arrive whole.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most connections served at once (dockerd keeps a couple).
pub(crate) const MAX_CONNECTIONS: usize = 128;
/// The largest request header.
const MAX_HEADER_BYTES: usize = 64 << 10;
/// The largest request body (dockerd's are a few hundred bytes).
const MAX_BODY_BYTES: usize = 4 << 20;
/// The most headers a request may have.
const MAX_HEADERS: usize = 64;

/// A request as read from the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) body: Vec<u8>,
    /// The client asked for the connection to end after this answer.
    pub(crate) close: bool,
    /// The client waits for `100 Continue` before it sends the body.
    pub(crate) expect_continue: bool,
}

/// What cannot be read as a request: the status to answer, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRequest {
    pub(crate) status: u16,
    pub(crate) reason: String,
}

fn bad(status: u16, reason: impl Into<String>) -> BadRequest {
    BadRequest {
        status,
        reason: reason.into(),
    }
}

/// What `buf` holds: a whole request and the bytes it took, `Ok(None)` while more is needed
/// (`headers_only`: the header is complete and the client waits for `100 Continue`), or a
/// request that cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// A whole request, and how many bytes of the buffer it took.
    Complete(Request, usize),
    /// More bytes are needed; true when the header is complete and asks for `100 Continue`.
    Partial(bool),
}

/// Reads a request from the start of `buf` (pure).
pub(crate) fn parse_request(buf: &[u8]) -> Result<Parsed, BadRequest> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let end = match req.parse(buf) {
        Ok(httparse::Status::Complete(end)) => end,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEADER_BYTES => {
            return Err(bad(431, "the request header is too large"));
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial(false)),
        Err(e) => return Err(bad(400, format!("not an HTTP request: {e}"))),
    };
    let version = req.version.unwrap_or(1);
    let mut length = None;
    let mut chunked = false;
    let mut close = version == 0;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or_default().trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<usize>()
                .map_err(|_| bad(400, format!("bad Content-Length {value:?}")))?;
            if length.is_some_and(|l| l != n) {
                return Err(bad(400, "two different Content-Length headers"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
            if !chunked {
                return Err(bad(
                    501,
                    format!("transfer encoding {value:?} is not supported"),
                ));
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = value.eq_ignore_ascii_case("100-continue");
        }
    }
    let method = req.method.unwrap_or_default().to_owned();
    let path = req.path.unwrap_or_default().to_owned();
    let rest = &buf[end..];
    let (body, used) = if chunked {
        match dechunk(rest)? {
            Some((body, used)) => (body, used),
            None => return Ok(Parsed::Partial(expect_continue && rest.is_empty())),
        }
    } else {
        let n = length.unwrap_or(0);
        if n > MAX_BODY_BYTES {
            return Err(bad(
                413,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            ));
        }
        match rest.get(..n) {
            Some(b) => (b.to_vec(), n),
            None => return Ok(Parsed::Partial(expect_continue && rest.is_empty())),
        }
    };
    Ok(Parsed::Complete(
        Request {
            method,
            path,
            body,
            close,
            expect_continue,
        },
        end + used,
    ))
}

/// A chunked body: the body and the bytes it took, or `None` while incomplete (trailers are
/// skipped up to the empty line).
fn dechunk(mut rest: &[u8]) -> Result<Option<(Vec<u8>, usize)>, BadRequest> {
    let total = rest.len();
    let mut out = Vec::new();
    loop {
        if rest.is_empty() {
            return Ok(None);
        }
        if !rest[0].is_ascii_hexdigit() {
            return Err(bad(400, "bad chunk size line"));
        }
        let (line_end, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(c)) => c,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(bad(400, "bad chunk size line")),
        };
        let size = usize::try_from(size).map_err(|_| bad(413, "chunk too large"))?;
        rest = &rest[line_end..];
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                    return Ok(None);
                };
                let line = &rest[..nl];
                rest = &rest[nl + 1..];
                if line.is_empty() || line == b"\r" {
                    return Ok(Some((out, total - rest.len())));
                }
            }
        }
        if out.len() + size > MAX_BODY_BYTES {
            return Err(bad(
                413,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            ));
        }
        let Some(chunk) = rest.get(..size) else {
            return Ok(None);
        };
        out.extend_from_slice(chunk);
        match rest.get(size..size + 2) {
            Some(b"\r\n") => rest = &rest[size + 2..],
            Some(_) => return Err(bad(400, "a chunk is longer than its size")),
            None => return Ok(None),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The bytes of an answer.
pub(crate) fn response(reply: &Reply, close: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n{}\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len(),
        if close { "Connection: close\r\n" } else { "" },
    )
    .into_bytes();
    out.extend_from_slice(&reply.body);
    out
}

/// The answer to a request.
fn answer(service: &Service, req: &Request) -> Reply {
    if req.method != "POST" {
        return Reply::json(
            405,
            &ErrorReply {
                err: format!("{} {}: plugin calls are POSTs", req.method, req.path),
            },
        );
    }
    match Call::from_path(&req.path) {
        Some(call) => service.handle(call, &req.body),
        None => Reply::not_found(&req.path),
    }
}

/// Serves one connection until the client closes it, asks to, or the server stops.
fn serve_connection(mut stream: UnixStream, service: &Service) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let mut continued = false;
    loop {
        match parse_request(&buf) {
            Ok(Parsed::Complete(req, used)) => {
                buf.drain(..used);
                continued = false;
                let reply = answer(service, &req);
                stream.write_all(&response(&reply, req.close))?;
                stream.flush()?;
                if req.close {
                    return Ok(());
                }
                continue;
            }
            Ok(Parsed::Partial(wants_continue)) => {
                if wants_continue && !continued {
                    stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                    continued = true;
                }
            }
            Err(e) => {
                let reply = Reply::json(e.status, &ErrorReply { err: e.reason });
                let _ = stream.write_all(&response(&reply, true));
                return Ok(());
            }
        }
        // Waiting for a new request: no limit; inside one: REQUEST_TIMEOUT.
        stream.set_read_timeout(if buf.is_empty() {
            None
        } else {
            Some(REQUEST_TIMEOUT)
        })?;
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let reply = Reply::json(
                    408,
                    &ErrorReply {
                        err: format!("the request did not arrive whole within {REQUEST_TIMEOUT:?}"),
                    },
                );
                let _ = stream.write_all(&response(&reply, true));
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
}

/// The connections being served: a handle on each stream (to close it when stopping) and its
/// thread.
#[derive(Default)]
struct Connections {
    open: Mutex<HashMap<u64, (UnixStream, JoinHandle<()>)>>,
    next: AtomicU64,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, (UnixStream, JoinHandle<()>)>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The listener and its connections.
pub(crate) struct Transport {
    path: PathBuf,
    inode: u64,
    stopping: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    connections: Arc<Connections>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A socket bound, not served yet: connections wait in its backlog. Dropped unserved, it
/// removes its path.
pub(crate) struct Bound {
    listener: Option<UnixListener>,
    path: PathBuf,
    inode: u64,
}

impl Bound {
    /// Binds `path` (see [`bind`]).
    pub(crate) fn new(path: &Path) -> ServerResult<Bound> {
        let (listener, inode) = bind(path)?;
        Ok(Bound {
            listener: Some(listener),
            path: path.to_owned(),
            inode,
        })
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        if self.listener.is_some() {
            remove_if_ours(&self.path, self.inode);
        }
    }
}

/// Removes the socket at `path` if it is still the one this server made (another may have
/// replaced it since).
fn remove_if_ours(path: &Path, inode: u64) {
    if std::fs::metadata(path).is_ok_and(|m| m.ino() == inode) {
        let _ = std::fs::remove_file(path);
    }
}

/// Binds `path`: its directory made if missing; a stale socket (no server answers) replaced;
/// anything else there refused.
fn bind(path: &Path) -> ServerResult<(UnixListener, u64)> {
    let fail = |reason: String| ServerError::Socket {
        path: path.to_owned(),
        reason,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| fail(format!("cannot make its directory: {e}")))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(fail(
                    "a server answers there already (another `berth plugin serve` of this name?); stop it first".into(),
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| fail(format!("cannot remove the stale socket: {e}")))?;
        }
        Ok(_) => {
            return Err(fail(
                "the path exists and is not a socket; remove it".into(),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    let listener = UnixListener::bind(path).map_err(|e| fail(format!("cannot listen: {e}")))?;
    let inode = std::fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|e| fail(e.to_string()))?;
    Ok((listener, inode))
}

impl Transport {
    /// Serves the bound socket with `service` on threads of its own.
    pub(crate) fn serve(mut bound: Bound, service: Service) -> ServerResult<Transport> {
        let Some(listener) = bound.listener.take() else {
            return Err(ServerError::Socket {
                path: bound.path.clone(),
                reason: "served twice".into(),
            });
        };
        let (path, inode) = (bound.path.clone(), bound.inode);
        let service = Arc::new(service);
        let stopping = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Connections::default());
        let accept = {
            let stopping = stopping.clone();
            let connections = connections.clone();
            std::thread::Builder::new()
                .name("plugin-accept".into())
                .spawn(move || accept_loop(&listener, &service, &stopping, &connections))
                .map_err(|e| {
                    remove_if_ours(&path, inode);
                    ServerError::Socket {
                        path: path.clone(),
                        reason: format!("cannot start serving: {e}"),
                    }
                })?
        };
        Ok(Transport {
            path,
            inode,
            stopping,
            accept: Some(accept),
            connections,
        })
    }

    /// The socket served.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Stops serving (see the module).
    pub(crate) fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which sees `stopping`.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        remove_if_ours(&self.path, self.inode);
        let open: Vec<(UnixStream, JoinHandle<()>)> =
            self.connections.lock().drain().map(|(_, c)| c).collect();
        for (stream, _) in &open {
            // A call in progress still answers; the next read ends the connection.
            let _ = stream.shutdown(Shutdown::Read);
        }
        for (_, thread) in open {
            let _ = thread.join();
        }
        tracing::info!(socket = %self.path.display(), "stopped serving");
    }
}

fn accept_loop(
    listener: &UnixListener,
    service: &Arc<Service>,
    stopping: &AtomicBool,
    connections: &Arc<Connections>,
) {
    loop {
        let accepted = listener.accept();
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a plugin connection");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if connections.lock().len() >= MAX_CONNECTIONS {
            tracing::warn!("{MAX_CONNECTIONS} plugin connections open: refusing another");
            continue;
        }
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let id = connections.next.fetch_add(1, Ordering::Relaxed);
        let (svc, conns) = (service.clone(), connections.clone());
        // Registered before it runs, so that it can remove itself when done.
        let mut open = connections.lock();
        let spawned = std::thread::Builder::new()
            .name("plugin-conn".into())
            .spawn(move || {
                if let Err(e) = serve_connection(stream, &svc) {
                    tracing::debug!(error = %e, "plugin connection ended");
                }
                // The service goes before the connection leaves the registry: once `stop` has
                // joined what it found there, nothing holds the service (and its store) open.
                drop(svc);
                conns.lock().remove(&id);
            });
        match spawned {
            Ok(thread) => {
                open.insert(id, (handle, thread));
            }
            Err(e) => tracing::warn!(error = %e, "starting a plugin connection's thread"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn complete(raw: &[u8]) -> (Request, usize) {
        match parse_request(raw).unwrap() {
            Parsed::Complete(r, n) => (r, n),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn requests_as_dockerd_sends_them() {
        let raw = b"POST /NetworkDriver.Join HTTP/1.1\r\nHost: plugin\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 2\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\nAccept-Encoding: gzip\r\n\r\n{}POST /next";
        let (r, used) = complete(raw);
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/NetworkDriver.Join")
        );
        assert_eq!(r.body, b"{}");
        assert!(!r.close && !r.expect_continue);
        assert_eq!(&raw[used..], b"POST /next");
        // Incomplete until the body is whole.
        assert_eq!(
            parse_request(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n{}").unwrap(),
            Parsed::Partial(false)
        );
        assert_eq!(
            parse_request(b"POST / HTT").unwrap(),
            Parsed::Partial(false)
        );
        // Expect: 100-continue asks before the body.
        assert_eq!(
            parse_request(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
                .unwrap(),
            Parsed::Partial(true)
        );
        // Chunked, with a trailer; Connection: close; HTTP/1.0 closes.
        let raw = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\nX: y\r\n\r\nrest";
        let (r, used) = complete(raw);
        assert_eq!((r.body.as_slice(), r.close), (&b"{}"[..], true));
        assert_eq!(&raw[used..], b"rest");
        let (r, _) = complete(b"POST /a HTTP/1.0\r\n\r\n");
        assert!(r.close && r.body.is_empty());
    }

    #[test]
    fn bad_requests_are_refused_with_a_status() {
        for (raw, status) in [
            (&b"garbage\r\n\r\n"[..], 400),
            (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n", 413),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                400,
            ),
        ] {
            assert_eq!(parse_request(raw).unwrap_err().status, status, "{raw:?}");
        }
        let huge = vec![b'a'; MAX_HEADER_BYTES + 1];
        assert_eq!(parse_request(&huge).unwrap_err().status, 431);
        let mut long_header = b"POST / HTTP/1.1\r\nX: ".to_vec();
        long_header.extend(vec![b'a'; MAX_HEADER_BYTES]);
        assert_eq!(parse_request(&long_header).unwrap_err().status, 431);
    }

    #[test]
    fn every_prefix_is_partial_and_noise_never_panics() {
        let raw = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n3\r\nabc\r\n0\r\n\r\n";
        for n in 0..raw.len() {
            assert!(
                matches!(parse_request(&raw[..n]), Ok(Parsed::Partial(_))),
                "prefix of {n} bytes"
            );
        }
        let (r, used) = complete(raw);
        assert_eq!((r.body.as_slice(), used), (&b"{}abc"[..], raw.len()));
        for _ in 0..2000 {
            let len = rand::random::<u8>() as usize;
            let mut noise: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
            if rand::random::<bool>() {
                let mut head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                head.append(&mut noise);
                noise = head;
            }
            let _ = parse_request(&noise);
        }
    }

    #[test]
    fn answers_carry_the_plugin_media_type() {
        let r = Reply {
            status: 500,
            body: br#"{"Err":"x"}"#.to_vec(),
        };
        let text = String::from_utf8(response(&r, true)).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/vnd.docker.plugins.v1+json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"Err\":\"x\"}"
        );
    }
}

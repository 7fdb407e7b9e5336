//! A small blocking HTTP/1.1 client over a unix socket: one request per connection, which is all
//! the CLI needs, and keeps `berth` start-to-exit fast (no runtime, no thread).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{DEFAULT_SOCKET, parse_host};
use crate::error::{Error, Result};

/// The largest answer the client reads.
const MAX_RESPONSE_BYTES: usize = 256 << 20;
/// The most headers an answer may have.
const MAX_HEADERS: usize = 64;
/// How long the client waits for an answer.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// A connection target: the daemon's socket.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    socket: PathBuf,
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// Status code.
    pub(crate) status: u16,
    /// Body.
    pub(crate) body: Vec<u8>,
}

impl Client {
    /// The client for `--host` (or `BERTH_HOST`, or the default socket).
    ///
    /// # Errors
    /// [`Error::Usage`] for a host that is not a unix socket.
    pub(crate) fn new(host: Option<&str>) -> Result<Client> {
        let socket = match host {
            Some(h) if !h.is_empty() => parse_host(h)?,
            _ => PathBuf::from(DEFAULT_SOCKET),
        };
        Ok(Client { socket })
    }

    /// The daemon's address as the docker CLI names it (`unix:///run/berth/berth.sock`): the
    /// key of its entry in the client configuration's `proxies`.
    pub(crate) fn host_url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn protocol(&self, message: impl Into<String>) -> Error {
        Error::Protocol {
            socket: format!("unix://{}", self.socket.display()),
            message: message.into(),
        }
    }

    /// Sends one request and reads the whole answer.
    ///
    /// # Errors
    /// [`Error::DaemonUnreachable`] when nothing listens; [`Error::Protocol`] for a broken answer.
    pub(crate) fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Reply> {
        let mut stream =
            UnixStream::connect(&self.socket).map_err(|source| Error::DaemonUnreachable {
                socket: self.socket.clone(),
                source,
            })?;
        let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: berth\r\nUser-Agent: berth-cli/{}\r\nConnection: close\r\n",
            env!("CARGO_PKG_VERSION")
        );
        match body {
            Some(b) => head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                b.len()
            )),
            None => head.push_str("Content-Length: 0\r\n\r\n"),
        }
        let mut out = head.into_bytes();
        if let Some(b) = body {
            out.extend_from_slice(b);
        }
        stream
            .write_all(&out)
            .map_err(|e| self.protocol(format!("sending the request: {e}")))?;
        let mut raw = Vec::new();
        stream
            .take(MAX_RESPONSE_BYTES as u64 + 1)
            .read_to_end(&mut raw)
            .map_err(|e| self.protocol(format!("reading the answer: {e}")))?;
        if raw.len() > MAX_RESPONSE_BYTES {
            return Err(self.protocol("the answer is too large"));
        }
        self.parse(&raw)
    }

    fn parse(&self, raw: &[u8]) -> Result<Reply> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        // A malformed header line is skipped, not an error: only two headers matter here.
        let parsed = httparse::ParserConfig::default()
            .ignore_invalid_headers_in_responses(true)
            .parse_response(&mut response, raw);
        let end = match parsed {
            Ok(httparse::Status::Complete(end)) => end,
            Ok(httparse::Status::Partial) => {
                return Err(self.protocol("the answer has no complete HTTP header"));
            }
            Err(httparse::Error::Version | httparse::Error::Status) => {
                let line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
                let line = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line));
                return Err(self.protocol(format!("bad status line {line:?}")));
            }
            Err(e) => return Err(self.protocol(format!("bad HTTP header: {e}"))),
        };
        if std::str::from_utf8(&raw[..end]).is_err() {
            return Err(self.protocol("the HTTP header is not text"));
        }
        let status = response.code.unwrap_or_default();
        let mut length = None;
        let mut chunked = false;
        for h in response.headers.iter() {
            // The whole head is UTF-8 (checked above).
            let v = std::str::from_utf8(h.value).unwrap_or_default().trim();
            if h.name.eq_ignore_ascii_case("content-length") {
                length = v.parse::<usize>().ok();
            } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                && v.eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
        let rest = &raw[end..];
        let body = if chunked {
            dechunk(rest).ok_or_else(|| self.protocol("bad chunked body"))?
        } else if let Some(n) = length {
            rest.get(..n)
                .ok_or_else(|| self.protocol("the answer is shorter than its Content-Length"))?
                .to_vec()
        } else {
            rest.to_vec()
        };
        Ok(Reply { status, body })
    }

    /// Sends a request and turns an error status into [`Error::Daemon`] with the daemon's message.
    ///
    /// # Errors
    /// As [`Client::request`], and [`Error::Daemon`] for a non-2xx answer.
    pub(crate) fn call(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Vec<u8>> {
        let reply = self.request(method, path, body)?;
        if (200..300).contains(&reply.status) {
            return Ok(reply.body);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).trim().to_owned());
        Err(Error::Daemon {
            status: reply.status,
            message,
        })
    }

    /// GET and decode JSON.
    ///
    /// # Errors
    /// As [`Client::call`], and [`Error::Protocol`] when the JSON does not decode.
    pub(crate) fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let body = self.call("GET", path, None)?;
        serde_json::from_slice(&body).map_err(|e| self.protocol(format!("decoding {path}: {e}")))
    }

    /// POST a JSON body and decode the JSON answer (an empty answer decodes as `null`).
    ///
    /// # Errors
    /// As [`Client::get`].
    pub(crate) fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| self.protocol(format!("encoding the request: {e}")))?;
        let answer = self.call("POST", path, Some(&bytes))?;
        let answer: &[u8] = if answer.iter().all(u8::is_ascii_whitespace) {
            b"null"
        } else {
            &answer
        };
        serde_json::from_slice(answer).map_err(|e| self.protocol(format!("decoding {path}: {e}")))
    }
}

/// The body of a chunked answer (trailers ignored). Chunk-size lines are httparse's; the loop
/// over chunks stays here, as the only crates in the lock that de-chunk (hyper, h2) do it inside
/// their async connection types, not on a buffer.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        // httparse reads a line with no digit (`\r\n`, `;ext\r\n`) as size 0: refuse it.
        if !rest.first().is_some_and(u8::is_ascii_hexdigit) {
            return None;
        }
        let (line_end, size) = match httparse::parse_chunk_size(rest).ok()? {
            httparse::Status::Complete(c) => c,
            httparse::Status::Partial => return None,
        };
        let size = usize::try_from(size).ok()?;
        rest = &rest[line_end..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// What [`encode_component`] escapes: all but RFC 3986's unreserved characters (`A-Z a-z 0-9 - _
/// . ~`), so a name is one path segment or query value for berth's daemon and Docker's alike.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a path segment or query value.
pub(crate) fn encode_component(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers() {
        let c = Client::new(Some("unix:///tmp/x.sock")).unwrap();
        let r = c
            .parse(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}junk")
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, b"{}".as_slice()));
        let r = c
            .parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!(r.body, b"abc");
        assert!(c.parse(b"garbage").is_err());
        assert_eq!(encode_component("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn parse_edges() {
        let c = Client::new(Some("unix:///tmp/x.sock")).unwrap();
        let message = |raw: &[u8]| match c.parse(raw) {
            Err(Error::Protocol { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        // No body length: everything after the head; a bad Content-Length is ignored.
        let r = c
            .parse(b"HTTP/1.1 404 Not Found\r\n\r\n{\"message\":\"x\"}")
            .unwrap();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (404, b"{\"message\":\"x\"}".as_slice())
        );
        let r = c
            .parse(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nab")
            .unwrap();
        assert_eq!(r.body, b"ab");
        // Header names and `chunked` in any case; a malformed header line is skipped.
        let r = c
            .parse(b"HTTP/1.0 204 \r\ncontent-LENGTH:  1 \r\nnot a header\r\n\r\nxy")
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (204, b"x".as_slice()));
        let r = c
            .parse(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\ntransfer-encoding: CHUNKED\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n")
            .unwrap();
        assert_eq!(r.body, b"abc");
        // The errors users see.
        for partial in [&b""[..], b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"] {
            assert_eq!(message(partial), "the answer has no complete HTTP header");
        }
        assert_eq!(
            message(b"HTTP/1.1 2x0 OK\r\n\r\n"),
            "bad status line \"HTTP/1.1 2x0 OK\""
        );
        assert_eq!(
            message(b"SSH-2.0-x\r\n\r\n"),
            "bad status line \"SSH-2.0-x\""
        );
        assert_eq!(
            message(b"HTTP/1.1 200 OK\r\nX: \xff\r\n\r\n"),
            "the HTTP header is not text"
        );
        assert_eq!(
            message(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"),
            "the answer is shorter than its Content-Length"
        );
        for bad in [
            &b"2\r\nab\r\n"[..],
            b"2\r\na",
            b"zz\r\nab\r\n0\r\n\r\n",
            b"\r\n",
            b";x\r\n",
            b"2",
            b"10000000000000000\r\n",
        ] {
            let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            raw.extend_from_slice(bad);
            assert_eq!(message(&raw), "bad chunked body", "{bad:?}");
        }
    }

    #[test]
    fn encodes_components() {
        assert_eq!(encode_component("net-1_a.b~c"), "net-1_a.b~c");
        assert_eq!(
            encode_component("a+b%2F/?#&= "),
            "a%2Bb%252F%2F%3F%23%26%3D%20"
        );
        assert_eq!(encode_component("réseau"), "r%C3%A9seau");
        assert_eq!(encode_component(""), "");
    }
}

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
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| self.protocol("the answer has no complete HTTP header"))?;
        let head = std::str::from_utf8(&raw[..end])
            .map_err(|_| self.protocol("the HTTP header is not text"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.protocol(format!("bad status line {status_line:?}")))?;
        let mut length = None;
        let mut chunked = false;
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim(), v.trim());
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.parse::<usize>().ok();
                } else if k.eq_ignore_ascii_case("transfer-encoding")
                    && v.eq_ignore_ascii_case("chunked")
                {
                    chunked = true;
                }
            }
        }
        let rest = &raw[end + 4..];
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

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// Percent-encodes a path segment or query value.
pub(crate) fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
}

//! The HTTP/1.1 of a plugin call, pure: the bytes of a request, and an answer read from the
//! bytes received so far (complete, not yet complete, or broken). One request per connection
//! (`Connection: close`), as dockerd's plugin client does in effect.

use crate::wire::{ACCEPT, CONTENT_TYPE};

/// The most headers an answer may have.
const MAX_HEADERS: usize = 64;

/// An answer: its status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The status code.
    pub(crate) status: u16,
    /// The body (de-chunked).
    pub(crate) body: Vec<u8>,
}

/// The bytes of `POST path` with `body` to `host` (the `Host` header).
pub(crate) fn request(path: &str, host: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: berth-plugin/{}\r\n\
         Accept: {ACCEPT}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The answer in `raw`: `Ok(None)` while more bytes are needed (`eof`: no more will come, so
/// an answer without a length ends here), `Err` with what is wrong for bytes that are no HTTP
/// answer. Informational answers (`100 Continue`) before the real one are skipped.
pub(crate) fn parse_reply(raw: &[u8], eof: bool) -> Result<Option<Reply>, String> {
    let mut rest = raw;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let parsed = httparse::ParserConfig::default()
            .ignore_invalid_headers_in_responses(true)
            .parse_response(&mut response, rest);
        let end = match parsed {
            Ok(httparse::Status::Complete(end)) => end,
            Ok(httparse::Status::Partial) if eof => {
                return Err(if rest.is_empty() {
                    "empty answer".to_owned()
                } else {
                    "the answer ends inside its header".to_owned()
                });
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => {
                let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
                let line: String = String::from_utf8_lossy(line).chars().take(80).collect();
                return Err(format!("{e} (first line {:?})", line.trim_end()));
            }
        };
        let status = response.code.unwrap_or_default();
        let mut length = None;
        let mut chunked = false;
        for h in response.headers.iter() {
            let value = std::str::from_utf8(h.value).unwrap_or_default().trim();
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?;
                if length.is_some_and(|l| l != n) {
                    return Err("two different Content-Length headers".to_owned());
                }
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value
                    .rsplit(',')
                    .next()
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
            }
        }
        let body = &rest[end..];
        if (100..200).contains(&status) && status != 101 {
            rest = body;
            continue;
        }
        if status == 204 || status == 304 {
            return Ok(Some(Reply {
                status,
                body: Vec::new(),
            }));
        }
        let body = if chunked {
            match dechunk(body)? {
                Some(b) => b,
                None if eof => return Err("the chunked body ends early".to_owned()),
                None => return Ok(None),
            }
        } else if let Some(n) = length {
            match body.get(..n) {
                Some(b) => b.to_vec(),
                None if eof => {
                    return Err(format!(
                        "the body ends after {} of its {n} bytes",
                        body.len()
                    ));
                }
                None => return Ok(None),
            }
        } else if eof {
            body.to_vec()
        } else {
            return Ok(None);
        };
        return Ok(Some(Reply { status, body }));
    }
}

/// A chunked body: `Ok(None)` while incomplete; trailers are not read.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        if rest.is_empty() {
            return Ok(None);
        }
        // httparse reads a line with no digit as size 0: refuse it.
        if !rest[0].is_ascii_hexdigit() {
            return Err("bad chunk size line".to_owned());
        }
        let (line_end, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(c)) => c,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err("bad chunk size line".to_owned()),
        };
        let size = usize::try_from(size).map_err(|_| "chunk too large".to_owned())?;
        rest = &rest[line_end..];
        if size == 0 {
            return Ok(Some(out));
        }
        let Some(chunk) = rest.get(..size) else {
            return Ok(None);
        };
        out.extend_from_slice(chunk);
        match rest.get(size..size + 2) {
            Some(b"\r\n") => rest = &rest[size + 2..],
            Some(_) => return Err("a chunk is longer than its size".to_owned()),
            None => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn request_bytes() {
        let r = String::from_utf8(request("/Plugin.Activate", "plugin", b"")).unwrap();
        assert!(
            r.starts_with("POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\n"),
            "{r}"
        );
        assert!(r.contains("\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\n"));
        assert!(r.contains("\r\nContent-Type: application/vnd.docker.plugins.v1+json\r\n"));
        assert!(r.ends_with("Content-Length: 0\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn answers() {
        let done = |raw: &[u8], eof| parse_reply(raw, eof).unwrap().unwrap();
        let r = done(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", false);
        assert_eq!((r.status, r.body.as_slice()), (200, b"{}".as_slice()));
        // Incomplete until the length (or the end of the stream) is reached.
        assert_eq!(
            parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{", false),
            Ok(None)
        );
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{", true).is_err());
        assert_eq!(parse_reply(b"HTTP/1.1 200 OK\r\n\r\n{}", false), Ok(None));
        assert_eq!(done(b"HTTP/1.1 200 OK\r\n\r\n{}", true).body, b"{}");
        assert_eq!(parse_reply(b"HTTP/1.1 200", false), Ok(None));
        // Chunked, informational answers skipped, no body for 204.
        let r = done(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Internal\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"Er\r\na\r\nr\":\"boom\"}\r\n0\r\n\r\n",
            false,
        );
        assert_eq!(
            (r.status, r.body.as_slice()),
            (500, br#"{"Err":"boom"}"#.as_slice())
        );
        assert_eq!(
            parse_reply(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab",
                false
            ),
            Ok(None)
        );
        assert_eq!(done(b"HTTP/1.1 204 No Content\r\n\r\n", false).body, b"");
        // Garbage.
        for bad in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc",
        ] {
            assert!(parse_reply(bad, false).is_err(), "{bad:?}");
        }
        assert!(parse_reply(b"", true).is_err());
    }
}

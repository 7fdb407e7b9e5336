//! A small blocking client of one plugin: each call is one HTTP/1.1 POST on a connection of its
//! own (unix socket or TCP), bounded by a call timeout, with dockerd's retries when the plugin
//! cannot be reached (see [`RetryPolicy`]). No runtime and no thread: the controller's calls
//! are blocking already.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::discovery::Address;
use crate::error::{CallFailure, Error, Result};
use crate::http::{self, Reply};
use crate::wire::{self, Answer, Call};

/// The largest answer read (a plugin's answers are a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// How long and how often a plugin that cannot be reached is tried again, as dockerd does
/// (its `pkg/plugins` client): waits of `first_backoff` doubling up to `max_backoff`, and no
/// further attempt once the time spent plus the next wait reaches `budget`. dockerd's numbers
/// ([`RetryPolicy::DOCKER`]: 1 s doubling, capped at 30 s, within 30 s) try at 0, 1, 3, 7 and
/// 15 s. Only connecting is retried: once a request may have reached the plugin it is never
/// sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The time after which no attempt starts.
    pub budget: Duration,
    /// The first wait.
    pub first_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// dockerd's: 1 s doubling, capped at 30 s, within 30 s.
    pub const DOCKER: RetryPolicy = RetryPolicy {
        budget: Duration::from_secs(30),
        first_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(30),
    };

    /// One attempt, no retry.
    pub const NONE: RetryPolicy = RetryPolicy {
        budget: Duration::ZERO,
        first_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
    };

    /// The wait after `retries` failed retries (the first wait for 0).
    pub fn backoff(&self, retries: u32) -> Duration {
        let mut wait = self.first_backoff;
        for _ in 0..retries {
            if wait >= self.max_backoff {
                break;
            }
            wait = wait.saturating_mul(2);
        }
        wait.min(self.max_backoff)
    }
}

/// The client's settings: retries and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Retries of the handshake (`Plugin.Activate`): a plugin started with the engine may not
    /// listen yet. Default: [`RetryPolicy::DOCKER`].
    pub activation_retry: RetryPolicy,
    /// Retries of every other call when the plugin cannot be reached (dockerd retries every
    /// call so). Default: [`RetryPolicy::DOCKER`].
    pub call_retry: RetryPolicy,
    /// How long one call may take once connected (sending the request and reading the whole
    /// answer). dockerd's legacy plugins have none (a hung plugin hangs dockerd); berth uses
    /// the 30 s that `docker plugin enable --timeout` defaults to. Default: 30 s.
    pub call_timeout: Duration,
    /// How long connecting to a TCP address may take (go-connections' dial timeout).
    /// Default: 10 s.
    pub connect_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            activation_retry: RetryPolicy::DOCKER,
            call_retry: RetryPolicy::DOCKER,
            call_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A connection to a plugin.
enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
        // A zero duration means "no timeout" to the OS calls: never pass one.
        let t = Some(timeout.max(Duration::from_millis(1)));
        match self {
            Conn::Unix(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
            Conn::Tcp(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The client of one plugin. Cheap to share (`Send + Sync`, no state but its settings).
#[derive(Debug, Clone)]
pub struct Client {
    plugin: String,
    address: Address,
    config: ClientConfig,
}

impl Client {
    /// A client of plugin `plugin` at `address`.
    pub fn new(plugin: impl Into<String>, address: Address, config: ClientConfig) -> Client {
        Client {
            plugin: plugin.into(),
            address,
            config,
        }
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// The plugin's address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The client's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn fail(&self, call: Call, failure: CallFailure) -> Error {
        Error::Call {
            plugin: self.plugin.clone(),
            call,
            failure,
        }
    }

    /// Calls `call` with `request` as its JSON body and decodes the answer as `A`; a status
    /// other than 200 and an answer with the plugin's own error fail the call.
    pub fn call<R: Serialize, A: Answer>(&self, call: Call, request: &R) -> Result<A> {
        let body = serde_json::to_vec(request)
            .map_err(|e| self.fail(call, CallFailure::Encode(e.to_string())))?;
        self.call_body(call, &body)
    }

    /// Calls `call` with an empty body (as dockerd calls `Plugin.Activate` and the
    /// `GetCapabilities` calls).
    pub fn call_empty<A: Answer>(&self, call: Call) -> Result<A> {
        self.call_body(call, b"")
    }

    fn call_body<A: Answer>(&self, call: Call, body: &[u8]) -> Result<A> {
        let retry = if call == Call::Activate {
            self.config.activation_retry
        } else {
            self.config.call_retry
        };
        let start = Instant::now();
        let reply = self.exchange(call, body, &retry);
        tracing::debug!(
            plugin = %self.plugin,
            %call,
            status = reply.as_ref().map(|r| r.status).unwrap_or_default(),
            elapsed = ?start.elapsed(),
            "plugin call"
        );
        let reply = reply.map_err(|f| self.fail(call, f))?;
        if reply.status != 200 {
            return Err(self.fail(
                call,
                CallFailure::Status {
                    status: reply.status,
                    message: wire::error_reply_message(&reply.body),
                },
            ));
        }
        let answer: A = wire::decode(&reply.body)
            .map_err(|e| self.fail(call, CallFailure::Decode(e.to_string())))?;
        match answer.error_message() {
            "" => Ok(answer),
            message => Err(self.fail(call, CallFailure::Remote(message.to_owned()))),
        }
    }

    /// Connects (with retries), sends and reads the answer.
    fn exchange(
        &self,
        call: Call,
        body: &[u8],
        retry: &RetryPolicy,
    ) -> std::result::Result<Reply, CallFailure> {
        let mut conn = self.connect(call, retry)?;
        let timeout = self.config.call_timeout;
        let deadline = Instant::now() + timeout;
        let remaining = || deadline.saturating_duration_since(Instant::now());
        let host = match &self.address {
            Address::Unix(_) => "plugin".to_owned(),
            Address::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Address::Tcp { host, port } => format!("{host}:{port}"),
        };
        let request = http::request(&call.path(), &host, body);
        conn.set_timeouts(remaining()).map_err(CallFailure::Io)?;
        if let Err(e) = conn.write_all(&request).and_then(|()| conn.flush()) {
            return Err(if is_timeout(&e) {
                CallFailure::Timeout(timeout)
            } else {
                CallFailure::Io(e)
            });
        }
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let left = remaining();
            if left.is_zero() {
                return Err(CallFailure::Timeout(timeout));
            }
            conn.set_timeouts(left).map_err(CallFailure::Io)?;
            let eof = match conn.read(&mut buf) {
                Ok(0) => true,
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    false
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => return Err(CallFailure::Timeout(timeout)),
                // A reset after a complete answer is still an answer.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return match http::parse_reply(&raw, true) {
                        Ok(Some(reply)) => Ok(reply),
                        _ if raw.is_empty() => Err(CallFailure::Io(e)),
                        _ => Err(CallFailure::Closed {
                            received: raw.len(),
                        }),
                    };
                }
                Err(e) => return Err(CallFailure::Io(e)),
            };
            if raw.len() > MAX_ANSWER_BYTES {
                return Err(CallFailure::Http(format!(
                    "the answer is larger than {MAX_ANSWER_BYTES} bytes"
                )));
            }
            match http::parse_reply(&raw, eof) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) if eof => {
                    return Err(CallFailure::Closed {
                        received: raw.len(),
                    });
                }
                Ok(None) => {}
                Err(_) if eof && raw.is_empty() => {
                    return Err(CallFailure::Closed { received: 0 });
                }
                Err(message) => return Err(CallFailure::Http(message)),
            }
        }
    }

    /// Connects, trying again as `retry` says while the plugin cannot be reached.
    fn connect(&self, call: Call, retry: &RetryPolicy) -> std::result::Result<Conn, CallFailure> {
        let start = Instant::now();
        let mut retries = 0u32;
        loop {
            match self.connect_once() {
                Ok(conn) => return Ok(conn),
                Err(e) => {
                    let wait = retry.backoff(retries);
                    if start.elapsed() + wait >= retry.budget {
                        return Err(CallFailure::Connect {
                            address: self.address.to_string(),
                            attempts: retries + 1,
                            elapsed: start.elapsed(),
                            source: e,
                        });
                    }
                    retries += 1;
                    tracing::warn!(
                        plugin = %self.plugin,
                        %call,
                        address = %self.address,
                        error = %e,
                        "unable to connect to the plugin, retrying in {wait:?}"
                    );
                    std::thread::sleep(wait);
                }
            }
        }
    }

    fn connect_once(&self) -> io::Result<Conn> {
        match &self.address {
            Address::Unix(path) => UnixStream::connect(path).map(Conn::Unix),
            Address::Tcp { host, port } => {
                let mut last = None;
                for addr in (host.as_str(), *port).to_socket_addrs()? {
                    match TcpStream::connect_timeout(&addr, self.config.connect_timeout) {
                        Ok(s) => return Ok(Conn::Tcp(s)),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"))
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_backoff() {
        let d = RetryPolicy::DOCKER;
        let waits: Vec<u64> = (0..7).map(|r| d.backoff(r).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        // Attempts at 0, 1, 3, 7, 15 s: the next wait (16 s) would end past 30 s.
        let mut at = Duration::ZERO;
        let mut attempts = vec![0];
        for r in 0.. {
            let wait = d.backoff(r);
            if at + wait >= d.budget {
                break;
            }
            at += wait;
            attempts.push(at.as_secs());
        }
        assert_eq!(attempts, [0, 1, 3, 7, 15]);
        assert_eq!(RetryPolicy::NONE.backoff(3), Duration::ZERO);
    }
}

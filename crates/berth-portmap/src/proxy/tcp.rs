//! The TCP relay of one published port: accepts, caps the number of relayed connections, backs
//! off when accepting keeps failing, and optionally closes connections that stay idle.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{FailureEpisode, LogThrottle, ProxyLimits, local_text};

/// Errors of accept(2) that concern one pending connection only (it is gone from the queue, so
/// trying again at once cannot spin): the connection was aborted, or a pending network error.
fn concerns_one_connection(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
                | libc::EINTR
        )
    )
}

pub(super) async fn serve(
    listener: std::net::TcpListener,
    target: SocketAddr,
    limits: ProxyLimits,
) {
    let port = format!("tcp {}", local_text(listener.local_addr()));
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(error) => {
            tracing::error!(%port, %error, "userland proxy cannot serve the port");
            return;
        }
    };
    let mut conns = JoinSet::new();
    let mut accepting = FailureEpisode::new("accepting connections", port.clone(), &limits);
    let mut refused = LogThrottle::new(limits.log_interval);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    accepting.succeeded();
                    while conns.try_join_next().is_some() {}
                    if conns.len() >= limits.max_tcp_connections {
                        // Refused at once (a reset, not a hang); the relayed ones go on.
                        let _ = client.set_zero_linger();
                        drop(client);
                        if let Some(held_back) = refused.hit(Instant::now()) {
                            tracing::warn!(
                                %port,
                                %peer,
                                max = limits.max_tcp_connections,
                                refused_since_last_warning = held_back,
                                "userland proxy: connection limit reached; refusing new connections",
                            );
                        }
                        continue;
                    }
                    conns.spawn(relay(client, target, limits.tcp_idle_timeout));
                }
                Err(e) if concerns_one_connection(&e) => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM (or a broken listener): the connection
                    // stays queued and the listener stays readable, so retrying at once would
                    // spin. Pause, longer each time; relayed connections go on meanwhile.
                    let pause = accepting.failed(&e);
                    tokio::time::sleep(pause).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn relay(mut client: TcpStream, target: SocketAddr, idle: Option<Duration>) {
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        return;
    };
    match idle {
        None => {
            let _ = copy_bidirectional(&mut client, &mut upstream).await;
        }
        Some(idle) => {
            let clock = Clock::new();
            let mut client = Watched::new(client, clock.clone());
            let mut upstream = Watched::new(upstream, clock.clone());
            tokio::select! {
                _ = copy_bidirectional(&mut client, &mut upstream) => {}
                _ = clock.idle_for(idle) => {}
            }
        }
    }
}

/// The time of the last data seen on a connection, in milliseconds since the clock started.
#[derive(Clone)]
struct Clock {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Clock {
    fn new() -> Self {
        Clock {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once no data was seen for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A stream that stamps its clock whenever data is read from it.
struct Watched<T> {
    inner: T,
    clock: Clock,
}

impl<T> Watched<T> {
    fn new(inner: T, clock: Clock) -> Self {
        Watched { inner, clock }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_errors_back_off_and_connection_errors_do_not() {
        for errno in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EBADF,
        ] {
            assert!(!concerns_one_connection(&io::Error::from_raw_os_error(
                errno
            )));
        }
        for errno in [libc::ECONNABORTED, libc::EPROTO, libc::ENETUNREACH] {
            assert!(concerns_one_connection(&io::Error::from_raw_os_error(
                errno
            )));
        }
    }
}

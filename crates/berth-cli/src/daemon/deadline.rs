//! A connection whose client does not take its response in time is closed.
//!
//! hyper bounds how long a client may take to send its request headers, but not how long it may
//! take to read the answer: a client that sends a request and never reads (or reads a trickle)
//! would hold its connection, its task and its slot among the daemon's connections for ever.
//! [`WriteDeadline`] wraps the stream: from the first write after everything was flushed, all
//! output must be taken by the client within the limit; once the limit has passed, the next write
//! that has to wait fails with [`std::io::ErrorKind::TimedOut`] and hyper closes the connection.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A stream whose output must be taken by its reader within a time limit.
pub(crate) struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Set by the first write after the last complete flush: when all output must be out.
    deadline: Option<Instant>,
    /// Wakes the connection at the deadline while a write waits.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    /// Wraps `inner`; each response (all output until it is flushed) must be taken within `limit`.
    pub(crate) fn new(inner: S, limit: Duration) -> Self {
        WriteDeadline {
            inner,
            limit,
            deadline: None,
            timer: None,
        }
    }

    /// Starts the clock on the first write and tells whether the time is up (registering a
    /// wake-up at the deadline otherwise).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let limit = self.limit;
        let deadline = *self.deadline.get_or_insert_with(|| Instant::now() + limit);
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        timer.as_mut().poll(cx).is_ready()
    }

    fn timed_out(&self) -> io::Error {
        tracing::warn!(
            "closing a connection whose client did not read its response within {:?}",
            self.limit
        );
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client did not read the response within {:?}",
                self.limit
            ),
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.expired(cx) {
            return Poll::Ready(Err(this.timed_out()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.expired(cx) {
            return Poll::Ready(Err(this.timed_out()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                // hyper flushes the stream once all it had to write was written: the response
                // is out, and the clock stops until the next one.
                this.deadline = None;
                this.timer = None;
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.deadline.is_some() && this.expired(cx) => {
                Poll::Ready(Err(this.timed_out()))
            }
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

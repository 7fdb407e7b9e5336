//! The optional userland proxy: for publications NAT cannot carry (a host address of a family the
//! container has no address of, e.g. `[::]:8080` to an IPv4-only container). One tokio runtime with
//! one worker thread serves every proxied port of the mapper as tasks: never a process per port.
//! The worker thread lives in the host namespace, so the upstream sockets it opens do too.
//!
//! Every published port stays within its [`ProxyLimits`]: a cap on TCP connections and UDP flows,
//! an idle timeout for UDP flows (and optionally TCP connections), and a back-off when accepting
//! fails for a reason that persists, so a full descriptor table never makes the loop spin.

mod limits;
mod tcp;
mod udp;

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use berth_netlink::Netns;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::error::{Error, Result};

pub use limits::ProxyLimits;
pub(crate) use limits::{Backoff, LogThrottle};

/// A running proxy task; stopping it closes its listening socket and its connections.
pub(crate) struct ProxyTask {
    abort: AbortHandle,
    done: Receiver<()>,
}

impl Drop for ProxyTask {
    /// Stops the task and waits (briefly) until its sockets are closed, so the port is free when
    /// the mapping is gone.
    fn drop(&mut self) {
        self.abort.abort();
        let _ = self.done.recv_timeout(Duration::from_secs(2));
    }
}

pub(crate) struct Proxy {
    rt: tokio::runtime::Runtime,
    limits: ProxyLimits,
}

impl Proxy {
    pub(crate) fn new(host: &Netns, limits: ProxyLimits) -> Result<Proxy> {
        limits.validate()?;
        let ns = Arc::new(host.try_clone().map_err(|source| Error::Kernel {
            context: "duplicating the host namespace for the userland proxy".into(),
            source,
        })?);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .thread_name("berth-proxy")
            .enable_io()
            .enable_time()
            .on_thread_start(move || {
                if let Err(e) = nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET) {
                    tracing::error!(error = %e, "userland proxy thread cannot enter the host namespace");
                }
            })
            .build()
            .map_err(|e| Error::Kernel {
                context: "starting the userland proxy".into(),
                source: berth_netlink::Error::io("tokio runtime", e),
            })?;
        Ok(Proxy { rt, limits })
    }

    fn spawn<F>(&self, run: impl FnOnce(Sender<()>) -> F) -> ProxyTask
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (tx, done) = channel();
        let handle = self.rt.spawn(run(tx));
        ProxyTask {
            abort: handle.abort_handle(),
            done,
        }
    }

    /// Accepts on `listener` and relays every connection to `target`.
    pub(crate) fn tcp(
        &self,
        listener: std::net::TcpListener,
        target: SocketAddr,
    ) -> Result<ProxyTask> {
        listener.set_nonblocking(true).map_err(|e| Error::Kernel {
            context: "userland proxy listener".into(),
            source: berth_netlink::Error::io("set_nonblocking", e),
        })?;
        let limits = self.limits;
        Ok(self.spawn(move |alive: Sender<()>| async move {
            let _alive = alive;
            tcp::serve(listener, target, limits).await;
        }))
    }

    /// Relays datagrams arriving on `socket` to `target`, one upstream socket per client.
    pub(crate) fn udp(&self, socket: std::net::UdpSocket, target: SocketAddr) -> Result<ProxyTask> {
        socket.set_nonblocking(true).map_err(|e| Error::Kernel {
            context: "userland proxy socket".into(),
            source: berth_netlink::Error::io("set_nonblocking", e),
        })?;
        let limits = self.limits;
        Ok(self.spawn(move |alive: Sender<()>| async move {
            let _alive = alive;
            udp::serve(socket, target, limits).await;
        }))
    }
}

/// A run of failures of the same operation (accepting, receiving) on one published port: logged
/// once when it starts and once when it ends, with a growing pause in between attempts.
pub(crate) struct FailureEpisode {
    what: &'static str,
    port: String,
    backoff: Backoff,
    started: Option<(Instant, u64)>,
}

impl FailureEpisode {
    pub(crate) fn new(what: &'static str, port: String, limits: &ProxyLimits) -> Self {
        FailureEpisode {
            what,
            port,
            backoff: Backoff::new(limits.accept_backoff_min, limits.accept_backoff_max),
            started: None,
        }
    }

    /// Records a failure and returns how long to pause before the next attempt.
    pub(crate) fn failed(&mut self, error: &io::Error) -> Duration {
        match &mut self.started {
            Some((_, count)) => *count += 1,
            None => {
                tracing::warn!(
                    port = %self.port,
                    %error,
                    "userland proxy: {} failing; backing off until it works again",
                    self.what,
                );
                self.started = Some((Instant::now(), 1));
            }
        }
        self.backoff.next_delay()
    }

    /// Records a success; ends the episode (if any) with one line.
    pub(crate) fn succeeded(&mut self) {
        if let Some((since, failures)) = self.started.take() {
            tracing::info!(
                port = %self.port,
                failures,
                after = ?since.elapsed(),
                "userland proxy: {} works again",
                self.what,
            );
            self.backoff.reset();
        }
    }
}

/// `1.2.3.4:80` or `[::1]:80` of a socket, for logs.
pub(crate) fn local_text(addr: io::Result<SocketAddr>) -> String {
    addr.map_or_else(|_| "?".to_owned(), |a| a.to_string())
}

//! The optional userland proxy: for publications NAT cannot carry (a host address of a family the
//! container has no address of, e.g. `[::]:8080` to an IPv4-only container). One tokio runtime with
//! one worker thread serves every proxied port of the mapper as tasks: never a process per port.
//! The worker thread lives in the host namespace, so the upstream sockets it opens do too.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use berth_netlink::Netns;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{AbortHandle, JoinSet};

use crate::error::{Error, Result};

/// How long a UDP flow without traffic keeps its upstream socket.
const UDP_IDLE: Duration = Duration::from_secs(60);

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
}

impl Proxy {
    pub(crate) fn new(host: &Netns) -> Result<Proxy> {
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
        Ok(Proxy { rt })
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
        Ok(self.spawn(move |_alive: Sender<()>| async move {
            let _alive = _alive;
            let Ok(listener) = TcpListener::from_std(listener) else {
                return;
            };
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut client, _)) = accepted else { continue };
                        conns.spawn(async move {
                            if let Ok(mut upstream) = TcpStream::connect(target).await {
                                let _ = copy_bidirectional(&mut client, &mut upstream).await;
                            }
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        }))
    }

    /// Relays datagrams arriving on `socket` to `target`, one upstream socket per client.
    pub(crate) fn udp(&self, socket: std::net::UdpSocket, target: SocketAddr) -> Result<ProxyTask> {
        socket.set_nonblocking(true).map_err(|e| Error::Kernel {
            context: "userland proxy socket".into(),
            source: berth_netlink::Error::io("set_nonblocking", e),
        })?;
        Ok(self.spawn(move |_alive: Sender<()>| async move {
            let _alive = _alive;
            let Ok(socket) = UdpSocket::from_std(socket) else {
                return;
            };
            let socket = Arc::new(socket);
            let mut flows: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut pumps = JoinSet::new();
            let mut buf = vec![0u8; 65536];
            loop {
                tokio::select! {
                    got = socket.recv_from(&mut buf) => {
                        let Ok((n, client)) = got else { continue };
                        let upstream = match flows.get(&client) {
                            Some(u) => u.clone(),
                            None => {
                                let bind: SocketAddr = if target.is_ipv4() {
                                    SocketAddr::from(([0, 0, 0, 0], 0))
                                } else {
                                    SocketAddr::from(([0u16; 8], 0))
                                };
                                let Ok(u) = UdpSocket::bind(bind).await else { continue };
                                if u.connect(target).await.is_err() { continue; }
                                let u = Arc::new(u);
                                flows.insert(client, u.clone());
                                let (back, up) = (socket.clone(), u.clone());
                                pumps.spawn(async move {
                                    let mut buf = vec![0u8; 65536];
                                    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, up.recv(&mut buf)).await {
                                        let _ = back.send_to(&buf[..n], client).await;
                                    }
                                    client
                                });
                                u
                            }
                        };
                        let _ = upstream.send(&buf[..n]).await;
                    }
                    Some(Ok(idle)) = pumps.join_next(), if !pumps.is_empty() => {
                        flows.remove(&idle);
                    }
                }
            }
        }))
    }
}

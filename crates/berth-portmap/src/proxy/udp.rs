//! The UDP relay of one published port: a small connection-tracking table (one upstream socket
//! per client address), capped in size, whose flows are forgotten after a time without datagrams
//! in either direction.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::UdpSocket;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};

use super::{FailureEpisode, LogThrottle, ProxyLimits, local_text};

/// The largest UDP payload.
const BUF: usize = 65535;

/// One tracked client: its upstream socket (connected to the container) and the last time a
/// datagram went either way.
struct Flow {
    id: u64,
    upstream: Arc<UdpSocket>,
    last_ms: Arc<AtomicU64>,
    pump: AbortHandle,
}

fn millis_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

pub(super) async fn serve(socket: std::net::UdpSocket, target: SocketAddr, limits: ProxyLimits) {
    let port = format!("udp {}", local_text(socket.local_addr()));
    let socket = match UdpSocket::from_std(socket) {
        Ok(s) => Arc::new(s),
        Err(error) => {
            tracing::error!(%port, %error, "userland proxy cannot serve the port");
            return;
        }
    };
    let start = Instant::now();
    let idle_ms = u64::try_from(limits.udp_idle_timeout.as_millis()).unwrap_or(u64::MAX);
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut pumps: JoinSet<(SocketAddr, u64)> = JoinSet::new();
    let mut next_id = 0u64;
    let mut sweep = tokio::time::interval(limits.udp_sweep_period());
    sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut receiving = FailureEpisode::new("receiving datagrams", port.clone(), &limits);
    let mut dropped = LogThrottle::new(limits.log_interval);
    let mut unopened = LogThrottle::new(limits.log_interval);
    let mut buf = vec![0u8; BUF];
    loop {
        tokio::select! {
            got = socket.recv_from(&mut buf) => {
                let (n, client) = match got {
                    Ok(got) => {
                        receiving.succeeded();
                        got
                    }
                    Err(e) => {
                        let pause = receiving.failed(&e);
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                };
                if let Some(flow) = flows.get(&client) {
                    flow.last_ms.store(millis_since(start), Ordering::Relaxed);
                    let _ = flow.upstream.send(&buf[..n]).await;
                    continue;
                }
                if flows.len() >= limits.max_udp_flows {
                    if let Some(held_back) = dropped.hit(Instant::now()) {
                        tracing::warn!(
                            %port,
                            %client,
                            max = limits.max_udp_flows,
                            dropped_since_last_warning = held_back,
                            "userland proxy: UDP flow limit reached; dropping datagrams of new flows",
                        );
                    }
                    continue;
                }
                let upstream = match open_upstream(target).await {
                    Ok(u) => Arc::new(u),
                    Err(error) => {
                        if let Some(held_back) = unopened.hit(Instant::now()) {
                            tracing::warn!(
                                %port,
                                %error,
                                dropped_since_last_warning = held_back,
                                "userland proxy: cannot open an upstream socket; dropping datagrams of new flows",
                            );
                        }
                        continue;
                    }
                };
                next_id += 1;
                let last_ms = Arc::new(AtomicU64::new(millis_since(start)));
                let pump = pumps.spawn(pump(
                    upstream.clone(),
                    socket.clone(),
                    client,
                    next_id,
                    last_ms.clone(),
                    start,
                ));
                let _ = upstream.send(&buf[..n]).await;
                flows.insert(client, Flow { id: next_id, upstream, last_ms, pump });
            }
            _ = sweep.tick(), if !flows.is_empty() => {
                let now = millis_since(start);
                flows.retain(|_, flow| {
                    let quiet = now.saturating_sub(flow.last_ms.load(Ordering::Relaxed));
                    let keep = quiet < idle_ms;
                    if !keep {
                        flow.pump.abort();
                    }
                    keep
                });
            }
            Some(ended) = pumps.join_next(), if !pumps.is_empty() => {
                // A pump that stopped by itself (its upstream socket failed): forget its flow,
                // unless the client has a newer one already.
                if let Ok((client, id)) = ended {
                    if flows.get(&client).is_some_and(|f| f.id == id) {
                        flows.remove(&client);
                    }
                }
            }
        }
    }
}

async fn open_upstream(target: SocketAddr) -> io::Result<UdpSocket> {
    let bind: SocketAddr = if target.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let upstream = UdpSocket::bind(bind).await?;
    upstream.connect(target).await?;
    Ok(upstream)
}

thread_local! {
    /// The receive buffer the pumps of a worker thread share: a pump holds no 64 KiB buffer of
    /// its own, so a full flow table costs sockets, not memory.
    static PUMP_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; BUF]);
}

/// Carries the container's answers of one flow back to its client.
async fn pump(
    upstream: Arc<UdpSocket>,
    back: Arc<UdpSocket>,
    client: SocketAddr,
    id: u64,
    last_ms: Arc<AtomicU64>,
    start: Instant,
) -> (SocketAddr, u64) {
    loop {
        if upstream.readable().await.is_err() {
            return (client, id);
        }
        let got = PUMP_BUF.with_borrow_mut(|buf| {
            upstream
                .try_recv(buf)
                .map(|n| buf.get(..n).unwrap_or_default().to_vec())
        });
        match got {
            Ok(datagram) => {
                last_ms.store(millis_since(start), Ordering::Relaxed);
                let _ = back.send_to(&datagram, client).await;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // An ICMP port unreachable for an earlier datagram (nothing listens in the
            // container yet): the flow stays until it idles out, as with Docker.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(_) => return (client, id),
        }
    }
}

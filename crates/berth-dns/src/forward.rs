//! Forwarding of names the sandbox does not know to its upstream servers, from inside the
//! sandbox's namespace (so the query takes the sandbox's own route out, as in Docker).
//!
//! Each query uses a fresh socket (a random source port) and a fresh random message id; an
//! answer is only taken if it comes from the server asked, carries that id and repeats the
//! question. Servers are tried in order, each for at most the attempt timeout, all within the
//! overall deadline; a truncated UDP answer is asked again over TCP; SERVFAIL and REFUSED move on
//! to the next server; when all fail the requester gets SERVFAIL.
//!
//! Every attempt is registered with the resolver's in-flight forwards (source port, id, question,
//! the sandboxes the query came through) while it runs, so that a server that receives it back
//! knows it for a loop (see `loops`). Sockets come from one thread that enters the sandboxes'
//! namespaces, fair between sandboxes.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use berth_netlink::Netns;
use nix::sched::{CloneFlags, setns};
use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout, timeout_at};

use crate::loops::{ForwardPath, InFlight, Registration};
use crate::wire::{self, ForwardInfo, MAX_TCP_MESSAGE, Transport, Upstream};

struct SocketRequest {
    domain: Domain,
    ty: Type,
    reply: oneshot::Sender<io::Result<Socket>>,
}

/// Sockets a sandbox's forwards are waiting for.
struct Pending {
    netns: Arc<Netns>,
    requests: VecDeque<SocketRequest>,
}

/// What the socket thread serves: the waiting requests of each sandbox, and the sandboxes with
/// requests in the order they take turns.
#[derive(Default)]
struct Queues {
    by_sandbox: HashMap<u32, Pending>,
    turns: VecDeque<u32>,
    stopped: bool,
}

struct FactoryShared {
    queues: Mutex<Queues>,
    wake: Condvar,
}

impl FactoryShared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Sockets opened for one sandbox per turn of the socket thread, before the next sandbox with
/// waiting requests gets its turn.
pub(crate) const SOCKETS_PER_TURN: usize = 16;

/// A thread that opens sockets inside sandbox namespaces (a socket belongs to the namespace of
/// the thread that creates it). It is shared by every sandbox, and fair between them: sandboxes
/// with waiting requests take turns, [`SOCKETS_PER_TURN`] sockets at most each, so a sandbox
/// whose forwards storm (a loop, a flood) makes another sandbox's forward wait for at most one
/// turn of each busy sandbox, not for the whole storm. It returns to its own namespace whenever
/// it runs out of work, so it never keeps a removed sandbox's namespace alive.
pub(crate) struct SocketFactory {
    shared: Arc<FactoryShared>,
}

impl SocketFactory {
    pub(crate) fn spawn() -> io::Result<SocketFactory> {
        let home = Netns::current().map_err(io::Error::other)?;
        let shared = Arc::new(FactoryShared {
            queues: Mutex::new(Queues::default()),
            wake: Condvar::new(),
        });
        let theirs = shared.clone();
        std::thread::Builder::new()
            .name("berth-dns-sockets".into())
            .spawn(move || serve_sockets(&theirs, &home))?;
        Ok(SocketFactory { shared })
    }

    /// A new socket inside `netns`, the namespace of sandbox `serial`.
    pub(crate) async fn socket(
        &self,
        serial: u32,
        netns: &Arc<Netns>,
        domain: Domain,
        ty: Type,
    ) -> io::Result<Socket> {
        let (reply, rx) = oneshot::channel();
        {
            let mut q = self.shared.lock();
            if q.stopped {
                return Err(io::Error::other("the namespace socket thread has stopped"));
            }
            let pending = q.by_sandbox.entry(serial).or_insert_with(|| Pending {
                netns: netns.clone(),
                requests: VecDeque::new(),
            });
            let first = pending.requests.is_empty();
            pending
                .requests
                .push_back(SocketRequest { domain, ty, reply });
            if first {
                q.turns.push_back(serial);
            }
        }
        self.shared.wake.notify_one();
        rx.await
            .map_err(|_| io::Error::other("the namespace socket thread has stopped"))?
    }
}

impl Drop for SocketFactory {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.wake.notify_one();
    }
}

/// The socket thread: one turn at a time, home when idle.
fn serve_sockets(shared: &FactoryShared, home: &Netns) {
    // The sandbox namespace the thread is in, if known; `away` while it is not at home.
    let mut current: Option<Arc<Netns>> = None;
    let mut away = false;
    let mut batch: Vec<SocketRequest> = Vec::with_capacity(SOCKETS_PER_TURN);
    loop {
        let netns = {
            let mut q = shared.lock();
            loop {
                if q.stopped {
                    return;
                }
                if let Some(serial) = q.turns.pop_front() {
                    let Some(pending) = q.by_sandbox.get_mut(&serial) else {
                        continue;
                    };
                    let n = pending.requests.len().min(SOCKETS_PER_TURN);
                    batch.extend(pending.requests.drain(..n));
                    let netns = pending.netns.clone();
                    if pending.requests.is_empty() {
                        q.by_sandbox.remove(&serial);
                    } else {
                        q.turns.push_back(serial);
                    }
                    break netns;
                }
                if away {
                    // Out of work: go home first (without holding the lock).
                    drop(q);
                    current = None;
                    away = false;
                    if setns(home, CloneFlags::CLONE_NEWNET).is_err() {
                        // Cannot go home: stop serving rather than open sockets in a wrong place.
                        tracing::error!(
                            "berth-dns: the socket thread cannot return to its namespace; forwarding stops"
                        );
                        let mut q = shared.lock();
                        q.stopped = true;
                        // Their forwards get an error now rather than wait for their timeout.
                        q.by_sandbox.clear();
                        q.turns.clear();
                        return;
                    }
                    q = shared.lock();
                    continue;
                }
                q = shared.wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let entered = match &current {
            Some(c) if Arc::ptr_eq(c, &netns) => Ok(()),
            _ => {
                away = true;
                setns(&*netns, CloneFlags::CLONE_NEWNET)
                    .map(|()| current = Some(netns.clone()))
                    .map_err(io::Error::from)
            }
        };
        for req in batch.drain(..) {
            let result = match &entered {
                Ok(()) => Socket::new(req.domain, req.ty, Some(protocol_of(req.ty))),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            let _ = req.reply.send(result);
        }
        if entered.is_err() {
            current = None;
        }
    }
}

fn protocol_of(ty: Type) -> Protocol {
    if ty == Type::STREAM {
        Protocol::TCP
    } else {
        Protocol::UDP
    }
}

/// Timeouts of forwarding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForwardTimeouts {
    pub(crate) attempt: Duration,
    pub(crate) total: Duration,
}

/// A sandbox's forwarder.
pub(crate) struct Forwarder {
    pub(crate) factory: Arc<SocketFactory>,
    pub(crate) netns: Arc<Netns>,
    /// The sandbox's server serial number (its turn at the socket thread, its place on a
    /// [`ForwardPath`]).
    pub(crate) serial: u32,
    /// The resolver's forwards in flight (shared by every sandbox).
    pub(crate) inflight: Arc<InFlight>,
    pub(crate) timeouts: ForwardTimeouts,
    /// Upstreams the sandbox has no route to (an ICMP "network/host unreachable" came back), and
    /// until when they are skipped. The host sends such ICMP errors at most once a second per
    /// destination (`icmp_ratelimit`), so without this memory every query after the first in a
    /// second would wait for the attempt timeout instead of failing at once.
    pub(crate) unreachable: Mutex<HashMap<SocketAddr, Instant>>,
}

/// How long an upstream that was unreachable from a sandbox is skipped (the kernel's default
/// `icmp_ratelimit`: the next query after it gets a fresh ICMP error or an answer).
const UNREACHABLE_HOLD: Duration = Duration::from_secs(1);

/// Whether `e` says that no route leads to the server.
fn is_unreachable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::ENETUNREACH | nix::libc::EHOSTUNREACH)
    )
}

impl Forwarder {
    /// Forwards `query` (the requester's bytes), which has come along `path` (this sandbox
    /// last), and returns the message for the requester.
    pub(crate) async fn forward(
        &self,
        upstreams: &[SocketAddr],
        query: &[u8],
        info: &ForwardInfo,
        transport: Transport,
        path: ForwardPath,
    ) -> Vec<u8> {
        let deadline = Instant::now() + self.timeouts.total;
        let mut out = Vec::new();
        for &server in upstreams.iter().take(crate::MAX_UPSTREAMS) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if self.skipped(server, now) {
                continue;
            }
            let attempt = (now + self.timeouts.attempt).min(deadline);
            let got = match transport {
                Transport::Tcp => {
                    match timeout_at(attempt, self.tcp(server, query, info, path)).await {
                        Ok(Ok(got)) => Some(got),
                        Ok(Err(e)) => {
                            tracing::debug!(%server, error = %e, "upstream over TCP failed");
                            self.note_failure(server, &e);
                            None
                        }
                        Err(_) => None,
                    }
                }
                Transport::Udp => {
                    match timeout_at(attempt, self.udp(server, query, info, path)).await {
                        Ok(Ok((msg, Upstream::Truncated))) => {
                            let retry = (Instant::now() + self.timeouts.attempt).min(deadline);
                            match timeout_at(retry, self.tcp(server, query, info, path)).await {
                                Ok(Ok(full)) => Some(full),
                                _ => Some((msg, Upstream::Truncated)),
                            }
                        }
                        Ok(Ok(got)) => Some(got),
                        Ok(Err(e)) => {
                            tracing::debug!(%server, error = %e, "upstream over UDP failed");
                            self.note_failure(server, &e);
                            None
                        }
                        Err(_) => {
                            tracing::debug!(%server, "upstream over UDP timed out");
                            None
                        }
                    }
                }
            };
            match got {
                Some((msg, Upstream::Answer | Upstream::Truncated)) => {
                    wire::relay(&msg, info, &mut out);
                    return out;
                }
                Some((_, verdict)) => {
                    tracing::debug!(%server, ?verdict, qtype = %wire::type_name(info.qtype), "upstream refused or failed; trying the next");
                }
                None => {}
            }
        }
        wire::servfail(info, &mut out);
        out
    }

    fn lock_unreachable(&self) -> MutexGuard<'_, HashMap<SocketAddr, Instant>> {
        self.unreachable.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds `server` down for [`UNREACHABLE_HOLD`] when `e` says there is no route to it.
    fn note_failure(&self, server: SocketAddr, e: &io::Error) {
        if is_unreachable(e) {
            self.lock_unreachable()
                .insert(server, Instant::now() + UNREACHABLE_HOLD);
        }
    }

    /// Whether `server` is still held down as unreachable (forgotten once its time is up).
    fn skipped(&self, server: SocketAddr, now: Instant) -> bool {
        let mut held = self.lock_unreachable();
        match held.get(&server) {
            Some(until) if now < *until => true,
            Some(_) => {
                held.remove(&server);
                false
            }
            None => false,
        }
    }

    /// The query to send from local `port`, under a fresh random id registered as in flight
    /// (until the returned guard drops), so that the resolver knows it if it comes back.
    fn registered(
        &self,
        port: u16,
        query: &[u8],
        info: &ForwardInfo,
        path: ForwardPath,
    ) -> (Vec<u8>, u16, Registration) {
        let (id, reg) = self.inflight.register(port, info, path);
        let mut q = query.to_vec();
        q[0..2].copy_from_slice(&id.to_be_bytes());
        (q, id, reg)
    }

    /// A socket in the sandbox's namespace, bound to a random port of the wildcard address of
    /// `server`'s family; and that port.
    async fn bound_socket(&self, server: SocketAddr, ty: Type) -> io::Result<(Socket, u16)> {
        let domain = Domain::for_address(server);
        let sock = self
            .factory
            .socket(self.serial, &self.netns, domain, ty)
            .await?;
        sock.set_nonblocking(true)?;
        let any: SocketAddr = if server.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        sock.bind(&any.into())?;
        let port = sock
            .local_addr()?
            .as_socket()
            .map_or(0, |a: SocketAddr| a.port());
        Ok((sock, port))
    }

    async fn udp(
        &self,
        server: SocketAddr,
        query: &[u8],
        info: &ForwardInfo,
        path: ForwardPath,
    ) -> io::Result<(Vec<u8>, Upstream)> {
        let (sock, port) = self.bound_socket(server, Type::DGRAM).await?;
        // A connected UDP socket only reports "port unreachable" by itself; with RECVERR it also
        // reports "network/host unreachable", so a server with no route to it fails at once
        // rather than after the attempt timeout (an isolated host has no route out).
        let recv_err = if server.is_ipv4() {
            setsockopt(&sock, sockopt::Ipv4RecvErr, &true)
        } else {
            setsockopt(&sock, sockopt::Ipv6RecvErr, &true)
        };
        recv_err.map_err(io::Error::from)?;
        let sock = UdpSocket::from_std(std::net::UdpSocket::from(sock))?;
        sock.connect(server).await?;
        let (q, id, _in_flight) = self.registered(port, query, info, path);
        sock.send(&q).await?;
        let mut buf = vec![0u8; wire::MAX_UDP_PAYLOAD + 1];
        loop {
            let n = sock.recv(&mut buf).await?;
            match wire::check_upstream(&buf[..n], id, info) {
                Upstream::Foreign => continue,
                verdict => {
                    buf.truncate(n);
                    return Ok((buf, verdict));
                }
            }
        }
    }

    async fn tcp(
        &self,
        server: SocketAddr,
        query: &[u8],
        info: &ForwardInfo,
        path: ForwardPath,
    ) -> io::Result<(Vec<u8>, Upstream)> {
        let (sock, port) = self.bound_socket(server, Type::STREAM).await?;
        let sock = TcpSocket::from_std_stream(std::net::TcpStream::from(sock));
        let (q, id, _in_flight) = self.registered(port, query, info, path);
        let mut stream = sock.connect(server).await?;
        let mut framed = Vec::with_capacity(q.len() + 2);
        framed.extend_from_slice(&(q.len() as u16).to_be_bytes());
        framed.extend_from_slice(&q);
        stream.write_all(&framed).await?;
        loop {
            let len = stream.read_u16().await? as usize;
            let mut buf = vec![0u8; len.min(MAX_TCP_MESSAGE)];
            stream.read_exact(&mut buf).await?;
            match wire::check_upstream(&buf, id, info) {
                Upstream::Foreign => continue,
                verdict => return Ok((buf, verdict)),
            }
        }
    }
}

/// Reads one length-prefixed DNS message from a TCP stream into `buf`; false at a clean end of
/// stream; an error for a message longer than `max`.
pub(crate) async fn read_tcp_message<R: AsyncReadExt + Unpin>(
    stream: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<bool> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = u16::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a {len}-byte query is longer than the {max} bytes accepted"),
        ));
    }
    buf.resize(len, 0);
    stream.read_exact(buf).await?;
    Ok(true)
}

/// Writes one length-prefixed DNS message, within `limit`.
pub(crate) async fn write_tcp_message<W: AsyncWriteExt + Unpin>(
    stream: &mut W,
    msg: &[u8],
    limit: Duration,
) -> io::Result<()> {
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    framed.extend_from_slice(msg);
    timeout(limit, stream.write_all(&framed))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the client does not read"))?
}

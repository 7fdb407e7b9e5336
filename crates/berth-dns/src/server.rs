//! The embedded DNS server: one tokio runtime serving every sandbox on 127.0.0.11.

use std::collections::HashMap;
use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use berth_netlink::Netns;
use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrIn, recvmmsg, sendmmsg};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, watch};
use tokio::time::timeout;

use crate::error::{Error, Result};
use crate::files::EMBEDDED_DNS_ADDRESS;
use crate::forward::{
    ForwardTimeouts, Forwarder, SocketFactory, read_tcp_message, write_tcp_message,
};
use crate::names::{EndpointDns, Names, NetworkDns, SandboxHandle};
use crate::redirect::{self, Redirect};
use crate::table::View;
use crate::wire::{self, Action, MAX_QUERY_LEN, MAX_UDP_QUERY_LEN, Transport};

/// How the embedded server runs. [`ResolverConfig::default`] gives berth's defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ResolverConfig {
    /// Worker threads of the one runtime that serves every sandbox.
    pub worker_threads: usize,
    /// How queries to 127.0.0.11:53 reach the server's ports in each sandbox.
    pub redirect: Redirect,
    /// How long one upstream server is waited for.
    pub upstream_timeout: Duration,
    /// How long a forwarded query may take in all (then SERVFAIL). Keep it below the clients'
    /// own timeout (5 s for glibc, musl and dig), so they see the SERVFAIL.
    pub forward_timeout: Duration,
    /// Forwarded queries in flight per sandbox; more get SERVFAIL at once.
    pub max_forwards_per_sandbox: usize,
    /// Open TCP connections per sandbox; more are closed at once.
    pub max_tcp_connections_per_sandbox: usize,
    /// A TCP client must send its next complete query within this time, or is disconnected.
    pub tcp_idle_timeout: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            worker_threads: 2,
            redirect: Redirect::Stateless,
            upstream_timeout: Duration::from_secs(2),
            forward_timeout: Duration::from_millis(4500),
            max_forwards_per_sandbox: 2048,
            max_tcp_connections_per_sandbox: 64,
            tcp_idle_timeout: Duration::from_secs(10),
        }
    }
}

/// Where a sandbox's server really listens on 127.0.0.11 (queries to port 53 are DNATed there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerPorts {
    /// The UDP port.
    pub udp: u16,
    /// The TCP port.
    pub tcp: u16,
}

struct Server {
    ports: ServerPorts,
    shutdown: watch::Sender<bool>,
    /// Every task of the server holds a clone; the server is gone when only this one is left.
    alive: Arc<()>,
}

struct SandboxRuntime {
    netns: Arc<Netns>,
    handle: SandboxHandle,
    server: Option<Server>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The embedded DNS server of every sandbox, and the name service behind it.
///
/// Blocking, thread-safe API; one tokio runtime inside. Dropping it stops every server.
pub struct Resolver {
    config: ResolverConfig,
    names: Names,
    runtime: Option<tokio::runtime::Runtime>,
    factory: Arc<SocketFactory>,
    sandboxes: RwLock<HashMap<String, Arc<Mutex<SandboxRuntime>>>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// Starts the runtime and the namespace socket thread. No socket is opened until a sandbox
    /// joins a user-defined network.
    pub fn new(config: ResolverConfig) -> Result<Resolver> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("berth-dns")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|source| Error::Runtime {
                what: "tokio runtime",
                source,
            })?;
        let factory = SocketFactory::spawn().map_err(|source| Error::Runtime {
            what: "namespace socket thread",
            source,
        })?;
        Ok(Resolver {
            config,
            names: Names::new(),
            runtime: Some(runtime),
            factory: Arc::new(factory),
            sandboxes: RwLock::new(HashMap::new()),
        })
    }

    /// The name service (lookups, answering handles).
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The configuration.
    pub fn config(&self) -> &ResolverConfig {
        &self.config
    }

    fn sandbox(&self, id: &str) -> Result<Arc<Mutex<SandboxRuntime>>> {
        self.sandboxes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| Error::UnknownSandbox(id.to_owned()))
    }

    /// Adds a network (see [`Names::add_network`]).
    pub fn add_network(&self, net: &NetworkDns) -> Result<()> {
        self.names.add_network(net)
    }

    /// Removes a network (see [`Names::remove_network`]).
    pub fn remove_network(&self, id: &str) -> Result<()> {
        self.names.remove_network(id)
    }

    /// Adds a sandbox: `name` is its DNS name, `netns` its namespace (the server's sockets and
    /// forwarded queries live there), `upstreams` where unknown names go (from
    /// [`crate::plan_resolv_conf`]). No socket is opened yet.
    pub fn add_sandbox(
        &self,
        id: &str,
        name: &str,
        netns: &Netns,
        upstreams: &[SocketAddr],
    ) -> Result<()> {
        let netns = Arc::new(netns.try_clone().map_err(|source| Error::Netns {
            sandbox: id.to_owned(),
            source,
        })?);
        let mut sbs = self.sandboxes.write().unwrap_or_else(|p| p.into_inner());
        if sbs.contains_key(id) {
            return Err(Error::AlreadyRegistered {
                object: format!("sandbox {id:?}"),
            });
        }
        let handle = self.names.add_sandbox(id, name, upstreams)?;
        sbs.insert(
            id.to_owned(),
            Arc::new(Mutex::new(SandboxRuntime {
                netns,
                handle,
                server: None,
            })),
        );
        Ok(())
    }

    /// Replaces a sandbox's upstream servers (e.g. after the host's resolv.conf changed).
    pub fn set_upstreams(&self, sandbox: &str, upstreams: &[SocketAddr]) -> Result<()> {
        self.names.set_upstreams(sandbox, upstreams)
    }

    /// Connects a sandbox to a network. On a user-defined network its names resolve at once for
    /// every sandbox there, and its own embedded server is started if it has none yet (sockets on
    /// 127.0.0.11 in its namespace, plus the DNAT of port 53 to them). Returns the server's
    /// ports when it runs. On failure nothing is left changed.
    pub fn connect(
        &self,
        sandbox: &str,
        network: &str,
        endpoint: &EndpointDns,
    ) -> Result<Option<ServerPorts>> {
        let rt = self.sandbox(sandbox)?;
        let mut rt = lock(&rt);
        let embedded = self.names.connect(sandbox, network, endpoint)?;
        if embedded && rt.server.is_none() {
            match self.start_server(sandbox, &rt) {
                Ok(server) => rt.server = Some(server),
                Err(e) => {
                    let _ = self.names.disconnect(sandbox, network);
                    return Err(e);
                }
            }
        }
        Ok(rt.server.as_ref().map(|s| s.ports))
    }

    /// Disconnects a sandbox from a network: its names there stop resolving at once. The
    /// sandbox's server keeps running until the sandbox is removed.
    pub fn disconnect(&self, sandbox: &str, network: &str) -> Result<()> {
        self.names.disconnect(sandbox, network)
    }

    /// Renames a sandbox (see [`Names::rename_sandbox`]).
    pub fn rename_sandbox(&self, sandbox: &str, new_name: &str) -> Result<()> {
        self.names.rename_sandbox(sandbox, new_name)
    }

    /// The ports of a sandbox's server, if it runs.
    pub fn server_ports(&self, sandbox: &str) -> Result<Option<ServerPorts>> {
        let rt = self.sandbox(sandbox)?;
        let rt = lock(&rt);
        Ok(rt.server.as_ref().map(|s| s.ports))
    }

    /// Removes a sandbox: its names stop resolving, its server stops, and every socket it had in
    /// the sandbox's namespace is closed before this returns (call it before deleting the
    /// namespace, or the namespace lives on until the sockets close).
    pub fn remove_sandbox(&self, sandbox: &str) -> Result<()> {
        let rt = self
            .sandboxes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sandbox)
            .ok_or_else(|| Error::UnknownSandbox(sandbox.to_owned()))?;
        let server = lock(&rt).server.take();
        let result = self.names.remove_sandbox(sandbox);
        if let Some(server) = server {
            stop_server(server);
        }
        result
    }

    fn start_server(&self, sandbox: &str, rt: &SandboxRuntime) -> Result<Server> {
        let socket_err = |what: &'static str| {
            move |source: io::Error| Error::Socket {
                sandbox: sandbox.to_owned(),
                what,
                source,
            }
        };
        let bind = SocketAddr::new(IpAddr::V4(EMBEDDED_DNS_ADDRESS), 0);
        let (udp, tcp) = rt
            .netns
            .run(|| {
                (
                    std::net::UdpSocket::bind(bind),
                    std::net::TcpListener::bind(bind),
                )
            })
            .map_err(|source| Error::Netns {
                sandbox: sandbox.to_owned(),
                source,
            })?;
        let udp = udp.map_err(socket_err("UDP"))?;
        let tcp = tcp.map_err(socket_err("TCP"))?;
        udp.set_nonblocking(true).map_err(socket_err("UDP"))?;
        tcp.set_nonblocking(true).map_err(socket_err("TCP"))?;
        // Room for bursts (best effort: capped by net.core.rmem_max).
        let _ = socket2::SockRef::from(&udp).set_recv_buffer_size(4 << 20);
        let ports = ServerPorts {
            udp: udp.local_addr().map_err(socket_err("UDP"))?.port(),
            tcp: tcp.local_addr().map_err(socket_err("TCP"))?.port(),
        };
        redirect::install(&self.config.redirect, &rt.netns, sandbox, ports)?;
        let Some(runtime) = &self.runtime else {
            return Err(Error::Runtime {
                what: "tokio runtime",
                source: io::Error::other("the runtime is shutting down"),
            });
        };
        let _enter = runtime.enter();
        let udp = Arc::new(UdpSocket::from_std(udp).map_err(socket_err("UDP"))?);
        let tcp = TcpListener::from_std(tcp).map_err(socket_err("TCP"))?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let alive = Arc::new(());
        let ctx = Arc::new(ServeCtx {
            view: rt.handle.view().clone(),
            forwarder: Forwarder {
                factory: self.factory.clone(),
                netns: rt.netns.clone(),
                timeouts: ForwardTimeouts {
                    attempt: self.config.upstream_timeout,
                    total: self.config.forward_timeout,
                },
            },
            forwards: Arc::new(Semaphore::new(self.config.max_forwards_per_sandbox)),
            connections: Arc::new(Semaphore::new(self.config.max_tcp_connections_per_sandbox)),
            tcp_idle: self.config.tcp_idle_timeout,
            shutdown: shutdown_rx,
            alive: alive.clone(),
        });
        runtime.spawn(serve_udp(ctx.clone(), udp));
        runtime.spawn(serve_tcp(ctx, tcp));
        tracing::debug!(
            sandbox,
            udp = ports.udp,
            tcp = ports.tcp,
            "embedded DNS server started"
        );
        Ok(Server {
            ports,
            shutdown,
            alive,
        })
    }
}

/// Signals a server's tasks to stop and waits (up to 5 s) until they have all ended and closed
/// their sockets.
fn stop_server(server: Server) {
    stop_servers(vec![server]);
}

/// Stops servers: every one is told first, then all are waited for together (a resolver with
/// 1000 sandboxes stops in one wait, not 1000).
fn stop_servers(servers: Vec<Server>) {
    for s in &servers {
        let _ = s.shutdown.send(true);
    }
    let running = |s: &Server| Arc::strong_count(&s.alive) > 1;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while servers.iter().any(running) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let stuck = servers.iter().filter(|s| running(s)).count();
    if stuck > 0 {
        tracing::warn!(
            stuck,
            "berth-dns: some server tasks did not stop within 5 s"
        );
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let servers: Vec<Server> = self
            .sandboxes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .filter_map(|(_, rt)| lock(&rt).server.take())
            .collect();
        stop_servers(servers);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// What a sandbox's server tasks share.
struct ServeCtx {
    view: Arc<ArcSwap<View>>,
    forwarder: Forwarder,
    forwards: Arc<Semaphore>,
    connections: Arc<Semaphore>,
    tcp_idle: Duration,
    shutdown: watch::Receiver<bool>,
    alive: Arc<()>,
}

/// Datagrams received (and answers sent) per system call.
const UDP_BATCH: usize = 32;
/// A sandbox's UDP buffers are released after this long without a query.
const UDP_IDLE_RELEASE: Duration = Duration::from_secs(30);
/// Answers sent per system call (at most).
const UDP_SEND_BATCH: usize = 128;
/// Batches received per wake-up before other tasks get a turn.
const UDP_ROUNDS: usize = 8;

/// Receives up to `bufs.len()` datagrams in one `recvmmsg`; `got` gets (length, sender) of each,
/// with length `usize::MAX` for a datagram that did not fit its buffer.
fn recv_batch(
    fd: RawFd,
    bufs: &mut [Vec<u8>],
    got: &mut Vec<(usize, SocketAddrV4)>,
) -> io::Result<()> {
    got.clear();
    let mut headers = MultiHeaders::<SockaddrIn>::preallocate(bufs.len(), None);
    let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
        .iter_mut()
        .map(|b| [IoSliceMut::new(&mut b[..])])
        .collect();
    let results = recvmmsg(
        fd,
        &mut headers,
        iovs.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map_err(io::Error::from)?;
    for r in results {
        let Some(from) = r.address else { continue };
        let len = if r.flags.contains(MsgFlags::MSG_TRUNC) {
            usize::MAX
        } else {
            r.bytes
        };
        got.push((len, SocketAddrV4::from(from)));
    }
    Ok(())
}

/// Answers coalesced into one segmented (UDP GSO) datagram at most; older kernels take 64.
const GSO_MAX_SEGMENTS: usize = 64;
/// Bytes of answers in one segmented datagram at most (an IPv4 packet holds 65507).
const GSO_MAX_BYTES: usize = 60_000;

/// One message of a flush: `count` answers `order[first..first + count]` for `to`, each `len`
/// bytes long but the last (which may be shorter). With `count > 1` it goes out as one
/// segmented (UDP GSO) datagram, which the kernel carries through routing, the redirect's
/// nftables chain and the loopback device once, and cuts into `count` datagrams only when it
/// queues them on the client's socket (so each answer still arrives as its own datagram).
#[derive(Debug, Clone, Copy)]
struct UdpMessage {
    first: usize,
    count: usize,
    len: usize,
    to: SocketAddrV4,
}

/// Groups the answers `outs[..targets.len()]` into messages: a client's answers of one length,
/// plus one shorter answer at the end, become one segmented message (when `gso`); the rest go
/// as single ones. Segmented messages come first, ordered by segment length (each length is one
/// `sendmmsg`), then the single ones (one `sendmmsg` for all). `order` gets the answers' indices
/// in message order.
fn plan_flush(
    outs: &[Vec<u8>],
    targets: &[SocketAddrV4],
    gso: bool,
    order: &mut Vec<usize>,
    msgs: &mut Vec<UdpMessage>,
) {
    order.clear();
    msgs.clear();
    order.extend(0..targets.len());
    if !gso {
        msgs.extend(order.iter().map(|&i| UdpMessage {
            first: i,
            count: 1,
            len: outs[i].len(),
            to: targets[i],
        }));
        return;
    }
    // By client, longest answers first; stable, so a client's answers of one length keep
    // their order.
    order.sort_by_key(|&i| {
        (
            u32::from(*targets[i].ip()),
            targets[i].port(),
            std::cmp::Reverse(outs[i].len()),
        )
    });
    let mut k = 0;
    while k < order.len() {
        let (len, to) = (outs[order[k]].len(), targets[order[k]]);
        let limit = if len == 0 || len > usize::from(u16::MAX) {
            1
        } else {
            GSO_MAX_SEGMENTS.min((GSO_MAX_BYTES / len).max(1))
        };
        let mut count = 1;
        while k + count < order.len() && count < limit && targets[order[k + count]] == to {
            let next = outs[order[k + count]].len();
            if next == 0 {
                break;
            }
            count += 1;
            if next < len {
                // only the last segment may be shorter
                break;
            }
        }
        msgs.push(UdpMessage {
            first: k,
            count,
            len,
            to,
        });
        k += count;
    }
    // segmented messages by segment length, single answers last
    msgs.sort_by_key(|m| (m.count == 1, m.len));
}

/// Sends `msgs` in one `sendmmsg`, each as one datagram of its answers, cut by the kernel into
/// datagrams of `segment` bytes when given (UDP GSO); returns how many messages went out.
fn send_batch(
    fd: RawFd,
    outs: &[Vec<u8>],
    order: &[usize],
    msgs: &[UdpMessage],
    segment: Option<u16>,
) -> io::Result<usize> {
    if msgs.is_empty() {
        return Ok(0);
    }
    let iovs: Vec<IoSlice<'_>> = msgs
        .iter()
        .flat_map(|m| order[m.first..m.first + m.count].iter())
        .map(|&i| IoSlice::new(&outs[i]))
        .collect();
    let mut slices: Vec<&[IoSlice<'_>]> = Vec::with_capacity(msgs.len());
    let mut at = 0;
    for m in msgs {
        slices.push(&iovs[at..at + m.count]);
        at += m.count;
    }
    let addrs: Vec<Option<SockaddrIn>> =
        msgs.iter().map(|m| Some(SockaddrIn::from(m.to))).collect();
    let segment_size = segment.unwrap_or(0);
    let gso = [ControlMessage::UdpGsoSegments(&segment_size)];
    let cmsgs: &[ControlMessage<'_>] = if segment.is_some() { &gso } else { &[] };
    let mut headers =
        MultiHeaders::<SockaddrIn>::preallocate(msgs.len(), segment.map(|_| nix::cmsg_space!(u16)));
    let sent = sendmmsg(
        fd,
        &mut headers,
        slices.iter(),
        &addrs,
        cmsgs,
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    Ok(sent.count())
}

/// Whether the kernel segments UDP datagrams (Linux 4.18 and later know `UDP_SEGMENT`; older
/// ones would ignore the control message and send the answers glued into one datagram).
fn gso_supported(sock: &UdpSocket) -> bool {
    nix::sys::socket::getsockopt(sock, nix::sys::socket::sockopt::UdpGsoSegment).is_ok()
}

/// Whether a send error says the kernel cannot segment UDP datagrams (then answers go out one
/// by one).
fn gso_refused(e: &io::Error) -> bool {
    use nix::errno::Errno;
    let Some(code) = e.raw_os_error() else {
        return false;
    };
    [
        Errno::EIO,
        Errno::EINVAL,
        Errno::ENOPROTOOPT,
        Errno::EOPNOTSUPP,
        Errno::EMSGSIZE,
    ]
    .iter()
    .any(|&x| x as i32 == code)
}

async fn serve_udp(ctx: Arc<ServeCtx>, sock: Arc<UdpSocket>) {
    let _alive = ctx.alive.clone();
    let mut shutdown = ctx.shutdown.clone();
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    let fd = sock.as_raw_fd();
    // Allocated on the first query, so idle sandboxes cost no buffers.
    let mut bufs: Vec<Vec<u8>> = Vec::new();
    let mut outs: Vec<Vec<u8>> = Vec::new();
    let mut got: Vec<(usize, SocketAddrV4)> = Vec::with_capacity(UDP_BATCH);
    let mut targets: Vec<SocketAddrV4> = Vec::with_capacity(UDP_SEND_BATCH);
    let mut flush_state = FlushState {
        gso: gso_supported(&sock),
        ..FlushState::default()
    };
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            r = timeout(UDP_IDLE_RELEASE, sock.readable()) => match r {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    bufs = Vec::new();
                    outs = Vec::new();
                    continue;
                }
            },
        }
        if bufs.is_empty() {
            bufs = vec![vec![0u8; MAX_UDP_QUERY_LEN + 1]; UDP_BATCH];
            outs = vec![Vec::new(); UDP_SEND_BATCH];
        }
        targets.clear();
        for round in 0..UDP_ROUNDS {
            let drained =
                match sock.try_io(Interest::READABLE, || recv_batch(fd, &mut bufs, &mut got)) {
                    Ok(()) => got.len() < UDP_BATCH,
                    Err(_) => {
                        got.clear();
                        true
                    }
                };
            let view = ctx.view.load();
            for (k, &(n, from)) in got.iter().enumerate() {
                if n > MAX_UDP_QUERY_LEN {
                    continue;
                }
                let out = &mut outs[targets.len()];
                match wire::respond(&bufs[k][..n], Transport::Udp, &view, &mut rng, out) {
                    Action::Reply => targets.push(from),
                    Action::Drop => {}
                    Action::Forward(info) => {
                        spawn_forward(&ctx, &view, &sock, bufs[k][..n].to_vec(), info, from.into());
                    }
                }
            }
            // Answers go out in large bursts: fewer system calls, fewer wake-ups of the
            // clients, whose sockets get many answers at once, and a client's answers coalesce
            // into segmented datagrams (see plan_flush).
            let full = targets.len() + UDP_BATCH > UDP_SEND_BATCH;
            if drained || full || round + 1 == UDP_ROUNDS {
                if !flush(&sock, fd, &outs, &targets, &mut flush_state).await {
                    return;
                }
                targets.clear();
            }
            if drained {
                break;
            }
        }
    }
}

/// What [`flush`] reuses from one call to the next.
#[derive(Default)]
struct FlushState {
    /// Whether answers to one client may be coalesced (UDP GSO); off after the kernel refused.
    gso: bool,
    order: Vec<usize>,
    msgs: Vec<UdpMessage>,
}

/// Replaces message `k` of a flush by single answers, appended at the end (sent last).
fn split_message(outs: &[Vec<u8>], order: &[usize], msgs: &mut Vec<UdpMessage>, k: usize) {
    let m = msgs[k];
    msgs[k].count = 0;
    msgs.extend((m.first..m.first + m.count).map(|first| UdpMessage {
        first,
        count: 1,
        len: outs[order[first]].len(),
        to: m.to,
    }));
}

/// Sends the answers `outs[..targets.len()]` to `targets`; false if the socket is gone.
async fn flush(
    sock: &UdpSocket,
    fd: RawFd,
    outs: &[Vec<u8>],
    targets: &[SocketAddrV4],
    st: &mut FlushState,
) -> bool {
    let FlushState { gso, order, msgs } = st;
    plan_flush(outs, targets, *gso, order, msgs);
    let mut done = 0;
    while done < msgs.len() {
        let m = msgs[done];
        let segment = match (m.count > 1, u16::try_from(m.len)) {
            (false, _) => None,
            (true, Ok(size)) => Some(size),
            // (plan_flush coalesces only answers whose length fits a segment size)
            (true, Err(_)) => {
                split_message(outs, order, msgs, done);
                done += 1;
                continue;
            }
        };
        // the run of messages that share this segment length (or are all single answers)
        let run = msgs[done..]
            .iter()
            .take_while(|n| (n.count > 1) == (m.count > 1) && (m.count == 1 || n.len == m.len))
            .count();
        let batch = &msgs[done..done + run.min(UDP_SEND_BATCH)];
        match sock.try_io(Interest::WRITABLE, || {
            send_batch(fd, outs, order, batch, segment)
        }) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if sock.writable().await.is_err() {
                    return false;
                }
            }
            Err(e) if segment.is_some() && gso_refused(&e) => {
                // This kernel (or route) cannot segment: from now on, answers go out one by one.
                tracing::debug!(
                    error = %e,
                    "berth-dns: UDP GSO refused, sending answers one by one"
                );
                *gso = false;
                split_message(outs, order, msgs, done);
                done += 1;
            }
            // One unreachable sender must not cost the others their answers.
            Err(_) => done += 1,
        }
    }
    true
}

fn spawn_forward(
    ctx: &Arc<ServeCtx>,
    view: &View,
    sock: &Arc<UdpSocket>,
    query: Vec<u8>,
    info: wire::ForwardInfo,
    from: SocketAddr,
) {
    let Ok(permit) = ctx.forwards.clone().try_acquire_owned() else {
        let mut out = Vec::new();
        wire::servfail(&info, &mut out);
        let _ = sock.try_send_to(&out, from);
        return;
    };
    let upstreams = view.upstreams.clone();
    let ctx = ctx.clone();
    let sock = sock.clone();
    tokio::spawn(async move {
        let _alive = ctx.alive.clone();
        let _permit = permit;
        let mut shutdown = ctx.shutdown.clone();
        let answer = tokio::select! {
            _ = shutdown.changed() => return,
            a = ctx.forwarder.forward(&upstreams, &query, &info, Transport::Udp) => a,
        };
        let _ = sock.send_to(&answer, from).await;
    });
}

async fn serve_tcp(ctx: Arc<ServeCtx>, listener: TcpListener) {
    let _alive = ctx.alive.clone();
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => match ctx.connections.clone().try_acquire_owned() {
                Ok(permit) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        serve_tcp_connection(ctx, stream).await;
                    });
                }
                Err(_) => drop(stream),
            },
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn serve_tcp_connection(ctx: Arc<ServeCtx>, mut stream: TcpStream) {
    let _alive = ctx.alive.clone();
    let mut shutdown = ctx.shutdown.clone();
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    let mut buf = Vec::new();
    let mut out = Vec::new();
    loop {
        let read = tokio::select! {
            _ = shutdown.changed() => return,
            r = timeout(ctx.tcp_idle, read_tcp_message(&mut stream, &mut buf, MAX_QUERY_LEN)) => r,
        };
        match read {
            Ok(Ok(true)) => {}
            _ => return,
        }
        let view = ctx.view.load_full();
        let answer = match wire::respond(&buf, Transport::Tcp, &view, &mut rng, &mut out) {
            Action::Reply => std::mem::take(&mut out),
            Action::Drop => return,
            Action::Forward(info) => {
                let Ok(_permit) = ctx.forwards.clone().try_acquire_owned() else {
                    wire::servfail(&info, &mut out);
                    if write_tcp_message(&mut stream, &out, ctx.tcp_idle)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    continue;
                };
                tokio::select! {
                    _ = shutdown.changed() => return,
                    a = ctx.forwarder.forward(&view.upstreams, &buf, &info, Transport::Tcp) => a,
                }
            }
        };
        if write_tcp_message(&mut stream, &answer, ctx.tcp_idle)
            .await
            .is_err()
        {
            return;
        }
        out = answer;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port)
    }

    /// The answers of each message, as (segment length, client, lengths in send order).
    fn plan(
        lens: &[usize],
        ports: &[u16],
        gso: bool,
    ) -> (Vec<UdpMessage>, Vec<usize>, Vec<Vec<u8>>) {
        let outs: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| vec![u8::try_from(i).unwrap(); n])
            .collect();
        let targets: Vec<SocketAddrV4> = ports.iter().map(|&p| to(p)).collect();
        let (mut order, mut msgs) = (Vec::new(), Vec::new());
        plan_flush(&outs, &targets, gso, &mut order, &mut msgs);
        (msgs, order, outs)
    }

    /// Every answer is in exactly one message, for its own client; in a segmented message all
    /// answers but the last are exactly the segment length, the last at most that.
    fn check(lens: &[usize], ports: &[u16], msgs: &[UdpMessage], order: &[usize]) {
        let mut seen = vec![0; lens.len()];
        for m in msgs {
            let members = &order[m.first..m.first + m.count];
            for (j, &i) in members.iter().enumerate() {
                seen[i] += 1;
                assert_eq!(to(ports[i]), m.to);
                if j + 1 < members.len() {
                    assert_eq!(lens[i], m.len);
                } else {
                    assert!(lens[i] <= m.len);
                }
            }
            assert!(m.count <= GSO_MAX_SEGMENTS);
            assert!(m.count == 1 || m.count * m.len <= GSO_MAX_BYTES);
        }
        assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
    }

    #[test]
    fn answers_to_one_client_are_coalesced_by_length_with_one_shorter_last() {
        // client 1: 40, 41, 41, 40, 41; client 2: 41, 41; client 3: 30
        let lens = [40, 41, 41, 40, 41, 41, 41, 30];
        let ports = [1, 1, 1, 1, 1, 2, 2, 3];
        let (msgs, order, _) = plan(&lens, &ports, true);
        check(&lens, &ports, &msgs, &order);
        let shape: Vec<(usize, u16, usize)> =
            msgs.iter().map(|m| (m.count, m.to.port(), m.len)).collect();
        // client 1: three 41s and one 40 in one message, the other 40 alone; client 2: two
        // 41s; segmented messages first (by segment length), single answers last
        assert_eq!(shape, vec![(4, 1, 41), (2, 2, 41), (1, 3, 30), (1, 1, 40)]);
        // a client's answers of one length keep their order
        assert_eq!(&order[msgs[0].first..msgs[0].first + 4], &[1, 2, 4, 0]);
    }

    #[test]
    fn without_gso_every_answer_is_its_own_message_in_order() {
        let lens = [40, 41, 41, 40];
        let ports = [1, 1, 2, 1];
        let (msgs, order, _) = plan(&lens, &ports, false);
        check(&lens, &ports, &msgs, &order);
        assert_eq!(msgs.len(), 4);
        assert!(msgs.iter().all(|m| m.count == 1));
        let firsts: Vec<usize> = msgs.iter().map(|m| order[m.first]).collect();
        assert_eq!(firsts, vec![0, 1, 2, 3]);
    }

    #[test]
    fn segmented_messages_respect_the_kernels_limits() {
        // 200 small answers to one client: at most 64 segments per message
        let lens = vec![50; 200];
        let ports = vec![7; 200];
        let (msgs, order, _) = plan(&lens, &ports, true);
        check(&lens, &ports, &msgs, &order);
        assert_eq!(
            msgs.iter().map(|m| m.count).collect::<Vec<_>>(),
            vec![64, 64, 64, 8]
        );
        // 40 answers of 4096 bytes: at most 60000 bytes per message
        let lens = vec![4096; 40];
        let ports = vec![7; 40];
        let (msgs, order, _) = plan(&lens, &ports, true);
        check(&lens, &ports, &msgs, &order);
        assert!(msgs.iter().all(|m| m.count <= 14));
        assert_eq!(msgs.iter().map(|m| m.count).sum::<usize>(), 40);
    }

    #[test]
    fn a_refused_segmented_message_becomes_single_answers_sent_last() {
        let lens = [41, 41, 40, 30];
        let ports = [1, 1, 1, 2];
        let (mut msgs, order, outs) = plan(&lens, &ports, true);
        assert_eq!(msgs[0].count, 3);
        split_message(&outs, &order, &mut msgs, 0);
        assert_eq!(msgs[0].count, 0);
        let tail: Vec<(usize, u16, usize)> = msgs[2..]
            .iter()
            .map(|m| (order[m.first], m.to.port(), m.len))
            .collect();
        assert_eq!(tail, vec![(0, 1, 41), (1, 1, 41), (2, 1, 40)]);
        // every answer is still sent exactly once
        let live: Vec<UdpMessage> = msgs.iter().copied().filter(|m| m.count > 0).collect();
        check(&lens, &ports, &live, &order);
    }

    #[test]
    fn send_errors_that_mean_no_gso_are_recognised() {
        assert!(gso_refused(&io::Error::from_raw_os_error(nix::libc::EIO)));
        assert!(gso_refused(&io::Error::from_raw_os_error(
            nix::libc::EINVAL
        )));
        assert!(!gso_refused(&io::Error::from_raw_os_error(
            nix::libc::ECONNREFUSED
        )));
        assert!(!gso_refused(&io::Error::other("x")));
    }
}

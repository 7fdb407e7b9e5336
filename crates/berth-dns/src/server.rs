//! The embedded DNS server: one tokio runtime serving every sandbox on 127.0.0.11.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use berth_netlink::Netns;
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
use crate::lane::{Lane, LaneDriver};
use crate::loops::{ForwardPath, Hop, InFlight, LoopLog};
use crate::names::{EndpointDns, Names, NetworkDns, SandboxHandle};
use crate::redirect::{self, Redirect};
use crate::table::View;
use crate::udp_batch::{FlushState, UDP_SEND_BATCH, flush, recv_batch};
use crate::wire::{self, Action, ForwardInfo, MAX_QUERY_LEN, MAX_UDP_QUERY_LEN, Transport};

/// How the embedded server runs. [`ResolverConfig::default`] gives berth's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Forwarded queries in flight per sandbox; more get SERVFAIL at once. This also bounds the
    /// sockets a sandbox's forwarding holds (one per forwarded query at a time), whatever its
    /// clients or a forwarding loop do.
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
    /// The nf_tables socket that installed the sandbox's redirect, kept open while the server
    /// runs (see `redirect::install_held`).
    redirect_socket: Option<berth_netlink::nftables::NftHandle>,
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
    /// Every sandbox's forwards in flight, to recognise one that comes back (a loop).
    inflight: Arc<InFlight>,
    /// The serial number of the next server started.
    next_serial: AtomicU32,
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
            // Polls are long (a batch of datagrams, a lane's turn of forwards): look for I/O
            // events every few polls, so a quiet sandbox's query is seen while busy ones work.
            .event_interval(EVENT_INTERVAL)
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
            inflight: Arc::new(InFlight::default()),
            next_serial: AtomicU32::new(1),
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
    ///
    /// An upstream on the embedded resolver's own address (127.0.0.11, any port: the sandbox's
    /// own server) is dropped with a warning rather than refused, as Docker does, so that a
    /// sandbox created with `--dns 127.0.0.11` still starts; without other upstreams, names the
    /// sandbox does not know get SERVFAIL at once. Loops no address shows (a DNAT back to this
    /// or another sandbox's resolver) are cut when they close: see the crate documentation.
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

    /// Replaces a sandbox's upstream servers (e.g. after the host's resolv.conf changed). The
    /// embedded resolver's own address is dropped with a warning, as in [`Self::add_sandbox`].
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

    /// Adds an endpoint of another host (see [`Names::add_remote`]).
    pub fn add_remote(&self, network: &str, endpoint: &crate::RemoteEndpointDns) -> Result<()> {
        self.names.add_remote(network, endpoint)
    }

    /// Removes an endpoint of another host (see [`Names::remove_remote`]).
    pub fn remove_remote(&self, network: &str, endpoint_id: &str) -> Result<()> {
        self.names.remove_remote(network, endpoint_id)
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
            // The sandbox goes: its namespace (one the engine made and berth adopted) keeps no
            // redirect to a server that is no more.
            if let Some(nft) = &server.redirect_socket
                && let Err(e) = redirect::uninstall_stateless(nft)
            {
                tracing::warn!(sandbox, error = %e, "the embedded DNS redirect stays in the namespace");
            }
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
        let redirect_socket =
            redirect::install_held(&self.config.redirect, &rt.netns, sandbox, ports)?;
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
        let (lane, lane_driver) = Lane::new();
        let ctx = Arc::new(ServeCtx {
            lane,
            view: rt.handle.view().clone(),
            sandbox: sandbox.to_owned(),
            loop_log: LoopLog::default(),
            forwarder: Forwarder {
                factory: self.factory.clone(),
                netns: rt.netns.clone(),
                serial: self.next_serial.fetch_add(1, Ordering::Relaxed),
                inflight: self.inflight.clone(),
                timeouts: ForwardTimeouts {
                    attempt: self.config.upstream_timeout,
                    total: self.config.forward_timeout,
                },
                unreachable: Mutex::default(),
            },
            forwards: Arc::new(Semaphore::new(self.config.max_forwards_per_sandbox)),
            connections: Arc::new(Semaphore::new(self.config.max_tcp_connections_per_sandbox)),
            tcp_idle: self.config.tcp_idle_timeout,
            shutdown: shutdown_rx,
            alive: alive.clone(),
        });
        runtime.spawn(run_lane(
            lane_driver,
            ctx.shutdown.clone(),
            ctx.alive.clone(),
        ));
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
            redirect_socket,
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
    /// The sandbox's id (for logs).
    sandbox: String,
    /// Its loop warnings.
    loop_log: LoopLog,
    /// Where its UDP forwards run (one task for all of them).
    lane: Lane,
    view: Arc<ArcSwap<View>>,
    forwarder: Forwarder,
    forwards: Arc<Semaphore>,
    connections: Arc<Semaphore>,
    tcp_idle: Duration,
    shutdown: watch::Receiver<bool>,
    alive: Arc<()>,
}

impl ServeCtx {
    /// What to do with a query to forward that came from `from`: forward it (with its path), or
    /// answer SERVFAIL at once because it is this resolver's own forward come back to a sandbox
    /// it has been through (a loop), or has been through too many.
    fn hop(&self, from: SocketAddr, info: &ForwardInfo) -> Hop {
        let came = self.forwarder.inflight.path_of(from.port(), info);
        let hop = ForwardPath::next(came, self.forwarder.serial);
        if !matches!(hop, Hop::Forward(_)) {
            self.loop_log.cut(&self.sandbox, hop, info, from);
        }
        hop
    }
}

/// Task polls between two looks for I/O events by a busy worker (tokio's default is 61).
const EVENT_INTERVAL: u32 = 8;

/// Datagrams received (and answers sent) per system call.
const UDP_BATCH: usize = 32;
/// A sandbox's UDP buffers are released after this long without a query.
const UDP_IDLE_RELEASE: Duration = Duration::from_secs(30);
/// Batches received per wake-up before other tasks get a turn.
const UDP_ROUNDS: usize = 8;

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
    let mut flush_state = FlushState::new(&sock);
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
                    Action::Forward(info) => match ctx.hop(from.into(), &info) {
                        Hop::Forward(path) => spawn_forward(
                            &ctx,
                            &view,
                            &sock,
                            bufs[k][..n].to_vec(),
                            (info, path),
                            from.into(),
                        ),
                        Hop::Loop(_) | Hop::TooLong(_) => {
                            wire::servfail(&info, out);
                            targets.push(from);
                        }
                    },
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

/// Runs a sandbox's forwarding lane until its server stops (then every forward left is
/// cancelled).
async fn run_lane(driver: LaneDriver, mut shutdown: watch::Receiver<bool>, _alive: Arc<()>) {
    tokio::select! {
        _ = shutdown.changed() => {}
        () = driver => {}
    }
}

fn spawn_forward(
    ctx: &Arc<ServeCtx>,
    view: &View,
    sock: &Arc<UdpSocket>,
    query: Vec<u8>,
    (info, path): (ForwardInfo, ForwardPath),
    from: SocketAddr,
) {
    let Ok(permit) = ctx.forwards.clone().try_acquire_owned() else {
        let mut out = Vec::new();
        wire::servfail(&info, &mut out);
        let _ = sock.try_send_to(&out, from);
        return;
    };
    let upstreams = view.upstreams.clone();
    let sock = sock.clone();
    let job_ctx = ctx.clone();
    let job = async move {
        let ctx = job_ctx;
        let _alive = ctx.alive.clone();
        let _permit = permit;
        let mut shutdown = ctx.shutdown.clone();
        let answer = tokio::select! {
            _ = shutdown.changed() => return,
            a = ctx.forwarder.forward(&upstreams, &query, &info, Transport::Udp, path) => a,
        };
        let _ = sock.send_to(&answer, from).await;
    };
    ctx.lane.push(job);
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
                let Ok(peer) = stream.peer_addr() else {
                    return;
                };
                let admitted = match ctx.hop(peer, &info) {
                    Hop::Forward(path) => ctx
                        .forwards
                        .clone()
                        .try_acquire_owned()
                        .ok()
                        .map(|permit| (permit, path)),
                    Hop::Loop(_) | Hop::TooLong(_) => None,
                };
                let Some((permit, path)) = admitted else {
                    wire::servfail(&info, &mut out);
                    let answer = std::mem::take(&mut out);
                    if write_tcp_message(&mut stream, &answer, ctx.tcp_idle)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    out = answer;
                    continue;
                };
                let _permit = permit;
                tokio::select! {
                    _ = shutdown.changed() => return,
                    a = ctx.forwarder.forward(&view.upstreams, &buf, &info, Transport::Tcp, path) => a,
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

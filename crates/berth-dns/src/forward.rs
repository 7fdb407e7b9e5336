//! Forwarding of names the sandbox does not know to its upstream servers, from inside the
//! sandbox's namespace (so the query takes the sandbox's own route out, as in Docker).
//!
//! Each query uses a fresh socket (a random source port) and a fresh random message id; an
//! answer is only taken if it comes from the server asked, carries that id and repeats the
//! question. Servers are tried in order, each for at most the attempt timeout, all within the
//! overall deadline; a truncated UDP answer is asked again over TCP; SERVFAIL and REFUSED move on
//! to the next server; when all fail the requester gets SERVFAIL.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use berth_netlink::Netns;
use nix::sched::{CloneFlags, setns};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout, timeout_at};

use crate::wire::{self, ForwardInfo, MAX_TCP_MESSAGE, Transport, Upstream};

struct SocketRequest {
    netns: Arc<Netns>,
    domain: Domain,
    ty: Type,
    reply: oneshot::Sender<io::Result<Socket>>,
}

/// A thread that opens sockets inside sandbox namespaces (a socket belongs to the namespace of
/// the thread that creates it). It serves requests in bursts and returns to its own namespace
/// after each burst, so it never keeps a removed sandbox's namespace alive.
pub(crate) struct SocketFactory {
    tx: mpsc::Sender<SocketRequest>,
}

impl SocketFactory {
    pub(crate) fn spawn() -> io::Result<SocketFactory> {
        let home = Netns::current().map_err(io::Error::other)?;
        let (tx, rx) = mpsc::channel::<SocketRequest>();
        std::thread::Builder::new()
            .name("berth-dns-sockets".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut current: Option<Arc<Netns>> = None;
                    let mut next = Some(first);
                    while let Some(req) = next.take() {
                        let entered = match &current {
                            Some(c) if Arc::ptr_eq(c, &req.netns) => Ok(()),
                            _ => setns(&*req.netns, CloneFlags::CLONE_NEWNET)
                                .map(|()| current = Some(req.netns.clone()))
                                .map_err(io::Error::from),
                        };
                        let result = entered.and_then(|()| {
                            Socket::new(req.domain, req.ty, Some(protocol_of(req.ty)))
                        });
                        if result.is_err() {
                            current = None;
                        }
                        let _ = req.reply.send(result);
                        next = rx.try_recv().ok();
                    }
                    if current.is_some() && setns(&home, CloneFlags::CLONE_NEWNET).is_err() {
                        // Cannot go home: stop serving rather than open sockets in a wrong place.
                        tracing::error!("berth-dns: the socket thread cannot return to its namespace; forwarding stops");
                        return;
                    }
                }
            })?;
        Ok(SocketFactory { tx })
    }

    /// A new socket inside `netns`.
    pub(crate) async fn socket(
        &self,
        netns: &Arc<Netns>,
        domain: Domain,
        ty: Type,
    ) -> io::Result<Socket> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(SocketRequest {
                netns: netns.clone(),
                domain,
                ty,
                reply,
            })
            .map_err(|_| io::Error::other("the namespace socket thread has stopped"))?;
        rx.await
            .map_err(|_| io::Error::other("the namespace socket thread has stopped"))?
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
    pub(crate) timeouts: ForwardTimeouts,
}

impl Forwarder {
    /// Forwards `query` (the requester's bytes) and returns the message for the requester.
    pub(crate) async fn forward(
        &self,
        upstreams: &[SocketAddr],
        query: &[u8],
        info: &ForwardInfo,
        transport: Transport,
    ) -> Vec<u8> {
        let deadline = Instant::now() + self.timeouts.total;
        let mut out = Vec::new();
        for &server in upstreams.iter().take(crate::MAX_UPSTREAMS) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let attempt = (now + self.timeouts.attempt).min(deadline);
            let got = match transport {
                Transport::Tcp => timeout_at(attempt, self.tcp(server, query, info))
                    .await
                    .ok()
                    .and_then(Result::ok),
                Transport::Udp => match timeout_at(attempt, self.udp(server, query, info)).await {
                    Ok(Ok((msg, Upstream::Truncated))) => {
                        let retry = (Instant::now() + self.timeouts.attempt).min(deadline);
                        match timeout_at(retry, self.tcp(server, query, info)).await {
                            Ok(Ok(full)) => Some(full),
                            _ => Some((msg, Upstream::Truncated)),
                        }
                    }
                    Ok(Ok(got)) => Some(got),
                    Ok(Err(e)) => {
                        tracing::debug!(%server, error = %e, "upstream over UDP failed");
                        None
                    }
                    Err(_) => {
                        tracing::debug!(%server, "upstream over UDP timed out");
                        None
                    }
                },
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

    fn with_new_id(query: &[u8]) -> (Vec<u8>, u16) {
        let id: u16 = rand::random();
        let mut q = query.to_vec();
        q[0..2].copy_from_slice(&id.to_be_bytes());
        (q, id)
    }

    async fn udp(
        &self,
        server: SocketAddr,
        query: &[u8],
        info: &ForwardInfo,
    ) -> io::Result<(Vec<u8>, Upstream)> {
        let domain = Domain::for_address(server);
        let sock = self
            .factory
            .socket(&self.netns, domain, Type::DGRAM)
            .await?;
        sock.set_nonblocking(true)?;
        let any: SocketAddr = if server.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        sock.bind(&any.into())?;
        let sock = UdpSocket::from_std(std::net::UdpSocket::from(sock))?;
        sock.connect(server).await?;
        let (q, id) = Self::with_new_id(query);
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
    ) -> io::Result<(Vec<u8>, Upstream)> {
        let domain = Domain::for_address(server);
        let sock = self
            .factory
            .socket(&self.netns, domain, Type::STREAM)
            .await?;
        sock.set_nonblocking(true)?;
        let sock = TcpSocket::from_std_stream(std::net::TcpStream::from(sock));
        let mut stream = sock.connect(server).await?;
        let (q, id) = Self::with_new_id(query);
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

//! Fixtures for the userland proxy's kernel tests: a test host (the mapper's host namespace), a
//! "container" LAN peer with only an IPv4 address, and a "client" LAN peer on IPv6, so that a
//! publication on `[::]` can only be carried by the userland proxy. Servers that keep their
//! connections open and say who they see, and a capture of the proxy's warnings.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use berth_portmap::{MapRequest, PortBinding, PortMapper, ProxyLimits};
use berth_testhost::{LanPeer, TestHost};

/// The container's (only) address.
pub const CONTAINER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The host's address on the container's link (the proxy's upstream source).
pub const HOST_V4: &str = "192.0.2.1";
/// The host's IPv6 address the client reaches.
pub const HOST_V6: &str = "2001:db8:1::1";
/// The owner (endpoint id) every test publishes for.
pub const OWNER: &str = "endpoint-1";

pub const TIMEOUT: Duration = Duration::from_secs(3);

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// `[2001:db8:1::1]:PORT`, the published port as the client reaches it.
pub fn published(port: u16) -> SocketAddr {
    sa(&format!("[{HOST_V6}]:{port}"))
}

/// The host, the IPv4-only container and the IPv6 client; all deleted on drop.
pub struct World {
    pub client: LanPeer,
    pub container: LanPeer,
    pub host: TestHost,
}

impl World {
    pub fn new() -> World {
        let host = TestHost::new().expect("a test host (run the kernel tests as root)");
        let container = host
            .add_lan_peer(&format!("{HOST_V4}/24"), &format!("{CONTAINER_V4}/24"))
            .expect("the container peer");
        let client = host
            .add_lan_peer(&format!("{HOST_V6}/64"), "2001:db8:1::2/64")
            .expect("the client peer");
        World {
            client,
            container,
            host,
        }
    }

    /// A mapper of the host with the userland proxy on, keeping to `limits`; no firewall, so
    /// every byte that reaches the container went through the proxy.
    pub fn mapper(&self, limits: ProxyLimits) -> PortMapper {
        PortMapper::with_proxy_limits(self.host.netns(), None, true, limits)
            .expect("a mapper with the userland proxy")
    }

    /// Publishes `specs` (e.g. `[::]:8080:80`) for [`OWNER`] to the IPv4-only container.
    pub fn publish(&self, mapper: &PortMapper, specs: &[&str]) -> Vec<PortBinding> {
        let specs: Vec<_> = specs.iter().map(|s| s.parse().unwrap()).collect();
        mapper
            .map(
                OWNER,
                &MapRequest {
                    specs: &specs,
                    container_v4: Some(CONTAINER_V4),
                    container_v6: None,
                    bridge: "none",
                    default_host_ip: "0.0.0.0".parse().unwrap(),
                    ipv6: false,
                },
            )
            .expect("publishing through the userland proxy")
    }

    /// A TCP connection from the client to the published `port`.
    pub fn connect(&self, port: u16) -> TcpStream {
        self.try_connect(port)
            .expect("connecting to the published port")
    }

    /// [`World::connect`], returning the error (a reset that came before connect returned).
    pub fn try_connect(&self, port: u16) -> io::Result<TcpStream> {
        let s = self
            .client
            .exec(|| TcpStream::connect_timeout(&published(port), TIMEOUT))
            .unwrap()?;
        s.set_read_timeout(Some(TIMEOUT))?;
        Ok(s)
    }

    /// A UDP socket of the client (its own source port: one flow at the proxy).
    pub fn udp_client(&self) -> UdpSocket {
        let s = self
            .client
            .exec(|| UdpSocket::bind("[::]:0"))
            .unwrap()
            .unwrap();
        s.set_read_timeout(Some(Duration::from_millis(400)))
            .unwrap();
        s
    }
}

/// Sends `msg` and returns the echo, or the error (a timeout when the connection hangs).
pub fn echo(s: &mut TcpStream, msg: &str) -> io::Result<String> {
    s.write_all(msg.as_bytes())?;
    let mut buf = vec![0u8; msg.len()];
    s.read_exact(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// True if the peer closed `s` (end of stream or a reset) within `TIMEOUT`; false if it is
/// still open (data or a read timeout).
pub fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
        ),
    }
}

/// True if a connection to the published `port` is closed by the peer at once: reset before
/// connect returned, or closed (end of stream or reset) before any data.
pub fn refused(w: &World, port: u16) -> bool {
    match w.try_connect(port) {
        Ok(mut s) => closed_by_peer(&mut s),
        Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
    }
}

/// Sends `msg` from `s` to the published UDP `port`; the answer, if one came.
pub fn udp_ask(s: &UdpSocket, port: u16, msg: &str) -> Option<String> {
    s.send_to(msg.as_bytes(), published(port)).ok()?;
    let mut buf = [0u8; 512];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A TCP echo server in the container that keeps every connection open until the client
/// closes it, and counts the connections it accepted. Stops on drop.
pub struct TcpEcho {
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpEcho {
    pub fn start(peer: &LanPeer, port: u16) -> TcpEcho {
        let addr = SocketAddr::new(CONTAINER_V4.into(), port);
        let listener = peer.exec(|| TcpListener::bind(addr)).unwrap().unwrap();
        listener.set_nonblocking(true).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, flag) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        let flag = flag.clone();
                        conns.push(std::thread::spawn(move || echo_until_closed(s, &flag)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        TcpEcho {
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn echo_until_closed(mut s: TcpStream, stop: &AtomicBool) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A UDP server in the container answering `"<msg> from <source ip:port>"`, so the client sees
/// which upstream socket of the proxy carried its datagram. Stops on drop.
pub struct UdpWho {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpWho {
    pub fn start(peer: &LanPeer, port: u16) -> UdpWho {
        let addr = SocketAddr::new(CONTAINER_V4.into(), port);
        let socket = peer.exec(|| UdpSocket::bind(addr)).unwrap().unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let _ = socket.send_to(format!("{msg} from {from}").as_bytes(), from);
                }
            }
        });
        UdpWho {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for UdpWho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Retries `f` every 50 ms until it is true or `within` passed.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Installs the log capture (once per test binary).
pub fn capture_logs() {
    berth_testhost::logs::capture();
}

/// Captured lines containing every one of `parts`.
pub fn logs_with(parts: &[&str]) -> Vec<String> {
    berth_testhost::logs::matching(parts)
}

//! Real traffic between namespaces: small TCP and UDP servers and clients whose sockets are opened
//! inside a given namespace (a socket stays in the namespace it was created in, so only the socket
//! creation needs a namespace thread).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use berth_netlink::Netns;

fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    ns.run(f).map_err(io::Error::other)?
}

/// A TCP server in a namespace that answers every connection with its banner and closes it.
/// Stops on drop.
#[derive(Debug)]
pub struct TcpBanner {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpBanner {
    /// Listens on `addr` (port 0 picks one) inside `ns` and answers with `banner`.
    pub fn start(ns: &Netns, addr: SocketAddr, banner: &str) -> io::Result<TcpBanner> {
        let listener = in_ns(ns, || TcpListener::bind(addr))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let banner = banner.as_bytes().to_vec();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, peer)) => {
                        let _ = s.set_nonblocking(false);
                        let mut msg = banner.clone();
                        msg.extend_from_slice(format!(" from {}", peer.ip()).as_bytes());
                        let _ = s.write_all(&msg);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(TcpBanner {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TcpBanner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects from inside `ns` to `addr` and returns what the server sent before closing.
/// The answer of a [`TcpBanner`] is `"<banner> from <client ip>"`.
pub fn tcp_fetch(ns: &Netns, addr: SocketAddr, timeout: Duration) -> io::Result<String> {
    let mut stream = in_ns(ns, || TcpStream::connect_timeout(&addr, timeout))?;
    stream.set_read_timeout(Some(timeout))?;
    let mut out = String::new();
    stream.read_to_string(&mut out)?;
    Ok(out)
}

/// A UDP echo server in a namespace: answers each datagram with `"<banner> from <client ip>"`.
/// Stops on drop.
#[derive(Debug)]
pub struct UdpEcho {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpEcho {
    /// Binds `addr` (port 0 picks one) inside `ns`.
    pub fn start(ns: &Netns, addr: SocketAddr, banner: &str) -> io::Result<UdpEcho> {
        let socket = in_ns(ns, || UdpSocket::bind(addr))?;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let addr = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let banner = banner.to_owned();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((_, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(format!("{banner} from {}", from.ip()).as_bytes(), from);
                }
            }
        });
        Ok(UdpEcho {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends one IPv4 UDP datagram of `payload` bytes from inside `ns` to `addr` with the
/// don't-fragment bit set (path MTU discovery on: `IP_PMTUDISC_DO`) and returns the answer. A
/// datagram that does not fit the route's MTU is refused by the sender's own stack with
/// `EMSGSIZE` ("message too long"), which is returned as the error: the way to check that a
/// packet one byte over an MTU is refused rather than fragmented or silently dropped.
pub fn udp_exchange_df(
    ns: &Netns,
    addr: SocketAddr,
    payload: usize,
    timeout: Duration,
) -> io::Result<String> {
    let socket = in_ns(ns, || UdpSocket::bind("0.0.0.0:0"))?;
    let on: libc::c_int = libc::IP_PMTUDISC_DO;
    // SAFETY: the descriptor is the live socket's; the option value is a c_int of the size
    // passed, as IP_MTU_DISCOVER takes.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            std::ptr::from_ref(&on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    socket.send_to(&vec![b'x'; payload], addr)?;
    answer(&socket, timeout)
}

/// Sends one datagram from inside `ns` to `addr` and returns the answer.
pub fn udp_exchange(ns: &Netns, addr: SocketAddr, timeout: Duration) -> io::Result<String> {
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().map_err(io::Error::other)?
    } else {
        "[::]:0".parse().map_err(io::Error::other)?
    };
    let socket = in_ns(ns, || UdpSocket::bind(bind))?;
    socket.send_to(b"ping", addr)?;
    answer(&socket, timeout)
}

/// The first datagram `socket` receives within `timeout`, as text. A receive with a timeout is
/// never restarted after a signal handler ran (signal(7)), whatever `SA_RESTART` says: a child
/// of the test process exiting (SIGCHLD, with the handler tokio installs) would fail it with
/// EINTR, so it is asked again for the time left.
fn answer(socket: &UdpSocket, timeout: Duration) -> io::Result<String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            // What the receive itself says when its timeout runs out (EAGAIN).
            return Err(io::Error::from_raw_os_error(libc::EAGAIN));
        }
        socket.set_read_timeout(Some(left))?;
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => return Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

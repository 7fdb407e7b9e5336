//! Host ports held open: a socket bound inside a namespace, so that no other process can take the
//! port while berth publishes it, and no check-then-use race exists. TCP sockets also listen (as
//! Docker 28 does): a socket that only binds can be shared by any other process that sets
//! `SO_REUSEADDR`, a listening one cannot. Published traffic is DNATed before it could reach the
//! listener, so nothing is ever accepted there. `SO_REUSEADDR` on berth's side lets a port be
//! published again while connections of an earlier publication sit in TIME_WAIT.

use std::io;
use std::mem::size_of;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};
use crate::netns::Netns;

/// The transport protocol of a held port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortProtocol {
    /// TCP (bound and listening, never accepting).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP (needs the kernel's sctp module).
    Sctp,
}

/// A bound socket holding a host port; the port is free again when this is dropped.
#[derive(Debug)]
pub struct HeldPort {
    fd: OwnedFd,
    proto: PortProtocol,
    addr: SocketAddr,
}

impl HeldPort {
    /// The protocol.
    pub fn protocol(&self) -> PortProtocol {
        self.proto
    }

    /// The address and port held.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Turns a held TCP port into a listening socket (for a userland proxy).
    pub fn into_tcp_listener(self) -> Result<std::net::TcpListener> {
        if self.proto != PortProtocol::Tcp {
            return Err(Error::InvalidArgument {
                object: describe(self.proto, self.addr),
                message: "only a TCP port can listen".into(),
            });
        }
        // SAFETY: listen(2) on a valid, bound socket descriptor this value owns (raises the
        // backlog of the already listening socket).
        let rc = unsafe { libc::listen(self.fd.as_raw_fd(), 1024) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(Error::from_errno(
                e.raw_os_error().unwrap_or(0),
                describe(self.proto, self.addr),
            ));
        }
        Ok(std::net::TcpListener::from(self.fd))
    }

    /// Turns a held UDP port into a socket (for a userland proxy).
    pub fn into_udp_socket(self) -> Result<std::net::UdpSocket> {
        if self.proto != PortProtocol::Udp {
            return Err(Error::InvalidArgument {
                object: describe(self.proto, self.addr),
                message: "not a UDP port".into(),
            });
        }
        Ok(std::net::UdpSocket::from(self.fd))
    }
}

impl AsRawFd for HeldPort {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

fn describe(proto: PortProtocol, addr: SocketAddr) -> String {
    let p = match proto {
        PortProtocol::Tcp => "tcp",
        PortProtocol::Udp => "udp",
        PortProtocol::Sctp => "sctp",
    };
    format!("host port {p} {addr}")
}

fn hold_one(proto: PortProtocol, addr: SocketAddr) -> Result<HeldPort> {
    let object = || describe(proto, addr);
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let (ty, protocol) = match proto {
        PortProtocol::Tcp => (libc::SOCK_STREAM, 0),
        PortProtocol::Udp => (libc::SOCK_DGRAM, 0),
        PortProtocol::Sctp => (libc::SOCK_STREAM, libc::IPPROTO_SCTP),
    };
    // SAFETY: socket(2) takes plain integers; the returned descriptor is owned below.
    let raw = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    if raw < 0 {
        let e = io::Error::last_os_error();
        return Err(Error::from_errno(e.raw_os_error().unwrap_or(0), object()));
    }
    // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if proto == PortProtocol::Tcp {
        set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
    }
    let rc = match addr {
        SocketAddr::V4(a) => {
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `sa` is a valid sockaddr_in that lives across the call; the length matches.
            unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        SocketAddr::V6(a) => {
            set_int_opt(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1);
            let sa = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: `sa` is a valid sockaddr_in6 that lives across the call; the length matches.
            unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in6).cast(),
                    size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(Error::from_errno(e.raw_os_error().unwrap_or(0), object()));
    }
    if proto == PortProtocol::Tcp {
        // SAFETY: listen(2) on the valid, bound socket owned above.
        if unsafe { libc::listen(fd.as_raw_fd(), 1) } != 0 {
            let e = io::Error::last_os_error();
            return Err(Error::from_errno(e.raw_os_error().unwrap_or(0), object()));
        }
    }
    Ok(HeldPort { fd, proto, addr })
}

fn set_int_opt(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
    // SAFETY: the option takes an int; the pointer and length describe `value`, which lives
    // across the call, and `fd` is a valid socket.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Binds every `(protocol, address)` inside `ns`, all or nothing: on the first failure the ports
/// already bound are released and the error names the one that failed (EADDRINUSE comes back as
/// [`Error::Kernel`] with errno 98).
pub fn hold_ports(ns: &Netns, ports: &[(PortProtocol, SocketAddr)]) -> Result<Vec<HeldPort>> {
    ns.run(|| {
        ports
            .iter()
            .map(|(proto, addr)| hold_one(*proto, *addr))
            .collect::<Result<Vec<_>>>()
    })?
}

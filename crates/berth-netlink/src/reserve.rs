//! Host ports held open: a socket bound (never listening) inside a namespace, so that no other
//! process can take the port while berth publishes it, and no check-then-use race exists.

use std::io;
use std::mem::size_of;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};
use crate::netns::Netns;

/// The transport protocol of a held port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortProtocol {
    /// TCP (bound, not listening: connection attempts that reach it are refused).
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
            let on: libc::c_int = 1;
            // SAFETY: IPV6_V6ONLY takes an int; the pointer and length describe `on`.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::IPPROTO_IPV6,
                    libc::IPV6_V6ONLY,
                    (&on as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
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
    Ok(HeldPort { fd, proto, addr })
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

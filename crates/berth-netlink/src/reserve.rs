//! Host ports held open: a socket bound inside a namespace, so that no other process can take the
//! port while berth publishes it, and no check-then-use race exists. TCP sockets also listen (as
//! Docker 28 does): a socket that only binds can be shared by any other process that sets
//! `SO_REUSEADDR`, a listening one cannot. Published traffic is DNATed before it could reach the
//! listener, so nothing is ever accepted there. `SO_REUSEADDR` on berth's side lets a port be
//! published again while connections of an earlier publication sit in TIME_WAIT.

use std::io;
use std::net::{SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};

use berth_types::Protocol;
use socket2::{Domain, SockAddr, Socket, Type};

use crate::error::{Error, Result};
use crate::netns::Netns;

/// A bound socket holding a host port; the port is free again when this is dropped.
#[derive(Debug)]
pub struct HeldPort {
    fd: OwnedFd,
    proto: Protocol,
    addr: SocketAddr,
}

impl HeldPort {
    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        self.proto
    }

    /// The address and port held.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Turns a held TCP port into a listening socket (for a userland proxy).
    pub fn into_tcp_listener(self) -> Result<std::net::TcpListener> {
        if self.proto != Protocol::Tcp {
            return Err(Error::InvalidArgument {
                object: describe(self.proto, self.addr),
                message: "only a TCP port can listen".into(),
            });
        }
        // listen(2) again on the already listening socket raises its backlog.
        let object = describe(self.proto, self.addr);
        let socket = Socket::from(self.fd);
        socket.listen(1024).map_err(|e| os_error(&e, object))?;
        Ok(std::net::TcpListener::from(socket))
    }

    /// Turns a held UDP port into a socket (for a userland proxy).
    pub fn into_udp_socket(self) -> Result<std::net::UdpSocket> {
        if self.proto != Protocol::Udp {
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

fn describe(proto: Protocol, addr: SocketAddr) -> String {
    format!("host port {proto} {addr}")
}

/// The kernel error of a failed socket call, as [`Error::from_errno`] names it.
fn os_error(e: &io::Error, object: String) -> Error {
    Error::from_errno(e.raw_os_error().unwrap_or(0), object)
}

fn hold_one(proto: Protocol, addr: SocketAddr) -> Result<HeldPort> {
    let object = || describe(proto, addr);
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let (ty, protocol) = match proto {
        Protocol::Tcp => (Type::STREAM, None),
        Protocol::Udp => (Type::DGRAM, None),
        // `Protocol::SCTP` needs socket2's "all" feature; the number is the same.
        Protocol::Sctp => (
            Type::STREAM,
            Some(socket2::Protocol::from(libc::IPPROTO_SCTP)),
        ),
    };
    // Socket::new opens the socket with SOCK_CLOEXEC on Linux.
    let socket = Socket::new(domain, ty, protocol).map_err(|e| os_error(&e, object()))?;
    // A failure to set either option is ignored: bind reports whatever then goes wrong.
    if proto == Protocol::Tcp {
        let _ = socket.set_reuse_address(true);
    }
    let sa = match addr {
        SocketAddr::V4(a) => SockAddr::from(a),
        SocketAddr::V6(a) => {
            let _ = socket.set_only_v6(true);
            // Bound with a zero flow label, whatever `addr` carries.
            SockAddr::from(SocketAddrV6::new(*a.ip(), a.port(), 0, a.scope_id()))
        }
    };
    socket.bind(&sa).map_err(|e| os_error(&e, object()))?;
    if proto == Protocol::Tcp {
        socket.listen(1).map_err(|e| os_error(&e, object()))?;
    }
    Ok(HeldPort {
        fd: OwnedFd::from(socket),
        proto,
        addr,
    })
}

/// Binds every `(protocol, address)` inside `ns`, all or nothing: on the first failure the ports
/// already bound are released and the error names the one that failed (EADDRINUSE comes back as
/// [`Error::Kernel`] with errno 98).
pub fn hold_ports(ns: &Netns, ports: &[(Protocol, SocketAddr)]) -> Result<Vec<HeldPort>> {
    ns.run(|| {
        ports
            .iter()
            .map(|(proto, addr)| hold_one(*proto, *addr))
            .collect::<Result<Vec<_>>>()
    })?
}

//! The error type of berth-portmap.

/// What can go wrong while publishing ports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `-p` spec that does not parse; names the bad part.
    #[error("invalid port specification {spec:?}: {part:?}: {reason}")]
    InvalidSpec {
        /// The whole spec.
        spec: String,
        /// The part that is wrong.
        part: String,
        /// Why.
        reason: String,
    },
    /// Another mapping holds the port (Docker's message).
    #[error("Bind for {addr} failed: port is already allocated")]
    PortAllocated {
        /// `IP:PORT` (IPv6 in brackets).
        addr: String,
    },
    /// Another process on the host holds the port.
    #[error("Bind for {addr} failed: {reason} (another process on the host uses it)")]
    AddressInUse {
        /// `IP:PORT`.
        addr: String,
        /// The kernel's reason.
        reason: String,
    },
    /// No free port left in the ephemeral range (or the given host range).
    #[error("no free host port for {what} in {range}")]
    NoFreePort {
        /// What was being published.
        what: String,
        /// The range searched.
        range: String,
    },
    /// The publication cannot be done without a userland proxy (e.g. an IPv6 host address to an
    /// IPv4-only container).
    #[error("cannot publish {spec}: {reason}")]
    Unsupported {
        /// The spec.
        spec: String,
        /// Why.
        reason: String,
    },
    /// A limit of the userland proxy that makes no sense (see `ProxyLimits::validate`).
    #[error("invalid userland proxy limit {limit}: {reason}")]
    InvalidProxyLimits {
        /// The field of `ProxyLimits`.
        limit: String,
        /// Why it is refused.
        reason: String,
    },
    /// Programming the NAT rules failed; nothing was published.
    #[error("programming the rules for published ports: {0}")]
    Firewall(#[from] berth_firewall::Error),
    /// A kernel operation (holding host sockets, reading sysctls) failed.
    #[error("{context}: {source}")]
    Kernel {
        /// What berth was doing.
        context: String,
        /// The cause.
        #[source]
        source: berth_netlink::Error,
    },
}

impl From<berth_types::Error> for Error {
    /// A spec that does not parse is [`Error::InvalidSpec`]; a bad port range or protocol made
    /// while publishing is the firewall's error, as it always was.
    fn from(e: berth_types::Error) -> Self {
        match e {
            berth_types::Error::InvalidPortSpec { spec, part, reason } => {
                Error::InvalidSpec { spec, part, reason }
            }
            other => Error::Firewall(other.into()),
        }
    }
}

/// Result alias of berth-portmap.
pub type Result<T, E = Error> = std::result::Result<T, E>;

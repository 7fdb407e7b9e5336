//! The server's error type: what went wrong serving a call or starting, naming the object and
//! the cause. A call's error is what dockerd shows its user (`docker network create` prints
//! it after dockerd's own prefix), so each message says what was refused and why.

use std::path::PathBuf;

use crate::wire::Call;

/// What the plugin server reports when it cannot start, or cannot carry out a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A request body that is not what the call takes (bad JSON, a field that does not parse):
    /// names the field and the value.
    #[error("{call}: {field} {value:?}: {reason}")]
    Request {
        /// The call.
        call: Call,
        /// The field, as the wire names it (`NetworkID`, `IPv4Data[0].Gateway`).
        field: String,
        /// The value as given (at most 200 characters).
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// The network is not one this plugin serves (never created here, or removed).
    #[error("network {0} is not a network of this plugin")]
    UnknownNetwork(String),
    /// The endpoint is not one this plugin serves.
    #[error("endpoint {0} is not an endpoint of this plugin")]
    UnknownEndpoint(String),
    /// The object exists already (a network or endpoint id given twice).
    #[error("{0} already exists")]
    Exists(String),
    /// berth's bridge driver refused or failed (its message names the object and the cause).
    #[error("{0}")]
    Driver(#[from] berth_driver::DriverError),
    /// berth's address allocator refused (its message names the pool or address).
    #[error("{0}")]
    Ipam(#[from] berth_ipam::Error),
    /// The state store failed.
    #[error("the plugin's state store ({operation}): {source}")]
    Store {
        /// What the server was doing.
        operation: String,
        /// The store's error.
        #[source]
        source: berth_store::Error,
    },
    /// A record in the state store cannot be read (written by another version, or damaged).
    #[error("the plugin's state store: record {key:?} cannot be read: {reason}")]
    Record {
        /// The record's key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A kernel operation (namespaces, links, sysctls) failed.
    #[error("{operation}: {source}")]
    Kernel {
        /// What the server was doing.
        operation: String,
        /// The kernel layer's error.
        #[source]
        source: berth_netlink::Error,
    },
    /// Setting up berth's packet filter failed.
    #[error("setting up berth's firewall: {0}")]
    Firewall(#[from] berth_firewall::Error),
    /// The socket cannot be served (its directory cannot be made, the path is taken, ...).
    #[error("plugin socket {path}: {reason}")]
    Socket {
        /// The socket's path.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// The state directory cannot be used.
    #[error("plugin state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The server's configuration is not usable (a bad plugin name, ...).
    #[error("{0}")]
    Config(String),
    /// Waiting for or blocking the termination signals failed.
    #[error("termination signals ({operation}): {source}")]
    Signals {
        /// What was being done.
        operation: &'static str,
        /// The system's error.
        #[source]
        source: nix::Error,
    },
}

impl ServerError {
    pub(crate) fn request(
        call: Call,
        field: impl Into<String>,
        value: &str,
        reason: impl Into<String>,
    ) -> ServerError {
        ServerError::Request {
            call,
            field: field.into(),
            value: value.chars().take(200).collect(),
            reason: reason.into(),
        }
    }

    pub(crate) fn store(operation: impl Into<String>, source: berth_store::Error) -> ServerError {
        ServerError::Store {
            operation: operation.into(),
            source,
        }
    }

    pub(crate) fn kernel(
        operation: impl Into<String>,
        source: berth_netlink::Error,
    ) -> ServerError {
        ServerError::Kernel {
            operation: operation.into(),
            source,
        }
    }
}

/// Result alias of the server.
pub type ServerResult<T> = std::result::Result<T, ServerError>;

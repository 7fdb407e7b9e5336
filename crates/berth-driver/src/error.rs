//! The error type drivers return.

/// A boxed error from a lower layer (netlink, firewall, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a driver reports when an operation fails. Every variant names the object and the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// A driver option key the driver does not know.
    #[error("unknown option {key:?} for the {driver} driver (known options: {known})")]
    UnknownOption {
        /// The key as given.
        key: String,
        /// The driver's name.
        driver: &'static str,
        /// The keys the driver accepts, comma separated.
        known: String,
    },
    /// A driver option with a value the driver cannot use.
    #[error("invalid value {value:?} for option {key:?}: {reason}")]
    InvalidOption {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A network, endpoint or option combination the driver cannot set up.
    #[error("{0}")]
    InvalidConfig(String),
    /// The driver has no network with this id.
    #[error("network {0} not found in the driver")]
    NetworkNotFound(String),
    /// The driver has no endpoint with this id.
    #[error("endpoint {0} not found in the driver")]
    EndpointNotFound(String),
    /// The object exists already (a bridge name, an endpoint id, ...).
    #[error("{0} already exists")]
    Exists(String),
    /// The driver does not support the operation.
    #[error("the {driver} driver does not support {operation}")]
    Unsupported {
        /// The driver's name.
        driver: &'static str,
        /// The operation.
        operation: &'static str,
    },
    /// A kernel operation (netlink, sysctl, namespace) failed.
    #[error("{operation}: {source}")]
    Kernel {
        /// What the driver was doing.
        operation: String,
        /// The lower layer's error.
        #[source]
        source: BoxError,
    },
    /// Programming the packet filter failed.
    #[error("{operation}: {source}")]
    Firewall {
        /// What the driver was doing.
        operation: String,
        /// The firewall's error.
        #[source]
        source: BoxError,
    },
    /// The cluster store a global-scope driver keeps its shared state in failed or could not be
    /// reached (the message names the store).
    #[error("{operation}: {source}")]
    Store {
        /// What the driver was doing.
        operation: String,
        /// The store's error.
        #[source]
        source: BoxError,
    },
    /// Publishing ports failed (the message is the port mapper's, e.g. Docker's
    /// "Bind for 0.0.0.0:8080 failed: port is already allocated").
    #[error(transparent)]
    PortMapping(BoxError),
    /// A broken internal expectation (a bug): please report it.
    #[error("internal error in the {driver} driver: {message}")]
    Internal {
        /// The driver's name.
        driver: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl DriverError {
    /// Wraps a kernel-level error with what the driver was doing.
    pub fn kernel(operation: impl Into<String>, source: impl Into<BoxError>) -> Self {
        DriverError::Kernel {
            operation: operation.into(),
            source: source.into(),
        }
    }

    /// Wraps a cluster store error with what the driver was doing.
    pub fn store(operation: impl Into<String>, source: impl Into<BoxError>) -> Self {
        DriverError::Store {
            operation: operation.into(),
            source: source.into(),
        }
    }

    /// Wraps a firewall error with what the driver was doing.
    pub fn firewall(operation: impl Into<String>, source: impl Into<BoxError>) -> Self {
        DriverError::Firewall {
            operation: operation.into(),
            source: source.into(),
        }
    }
}

/// Result alias of berth-driver.
pub type Result<T, E = DriverError> = std::result::Result<T, E>;

//! The controller's error type: Docker-like messages, typed causes.

use berth_driver::DriverError;

/// Everything a controller operation can fail with. Messages follow Docker's where Docker has one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A network with this name exists.
    #[error("network with name {0} already exists")]
    NetworkExists(String),
    /// No network has this name, id or id prefix.
    #[error("network {0} not found")]
    NetworkNotFound(String),
    /// An id prefix matches several networks.
    #[error("network {0} is ambiguous: it matches several network ids")]
    NetworkAmbiguous(String),
    /// No network or IPAM driver of this name is registered. (The daemon answers Docker's
    /// `plugin "NAME" not found` for it.)
    #[error(
        "no driver named \"{0}\" is registered (bridge, null and host are built in; register others with ControllerBuilder::driver or ::ipam)"
    )]
    DriverNotFound(String),
    /// A global-scope network was asked for, and the controller has no cluster store.
    #[error(
        "global-scope networks need a cluster store shared by the hosts (the daemon's --cluster-store; ControllerBuilder::cluster_store)"
    )]
    NoClusterStore,
    /// `bridge`, `host` and `none` cannot be removed.
    #[error("{0} is a pre-defined network and cannot be removed")]
    PredefinedNetwork(String),
    /// The network still has endpoints.
    #[error("error while removing network: network {name} id {id} has active endpoints")]
    ActiveEndpoints {
        /// The network's name.
        name: String,
        /// The network's short id.
        id: String,
    },
    /// A sandbox with this name exists.
    #[error("the sandbox name \"{name}\" is already in use by sandbox {id}")]
    SandboxExists {
        /// The name.
        name: String,
        /// The holder's id.
        id: String,
    },
    /// No sandbox has this name, id or id prefix.
    #[error("no such sandbox: {0}")]
    SandboxNotFound(String),
    /// The sandbox is connected to the network already.
    #[error("endpoint with name {sandbox} already exists in network {network}")]
    AlreadyConnected {
        /// The sandbox's name.
        sandbox: String,
        /// The network's name.
        network: String,
    },
    /// The sandbox is not connected to the network.
    #[error("sandbox {sandbox} is not connected to network {network}")]
    NotConnected {
        /// The sandbox's name.
        sandbox: String,
        /// The network's name.
        network: String,
    },
    /// The process lacks capabilities berth needs (found before anything is written).
    #[error(
        "berth needs root to manage networks: this process lacks {missing} (run it as root, or grant them); nothing was written"
    )]
    MissingPrivileges {
        /// The capabilities missing (`CAP_NET_ADMIN, CAP_SYS_ADMIN`).
        missing: String,
    },
    /// The request is invalid as a whole (names, combinations, modes).
    #[error("{0}")]
    InvalidRequest(String),
    /// Address management refused the request (overlapping pool, address in use, ...): the
    /// built-in IPAM driver's error.
    #[error(transparent)]
    Ipam(#[from] berth_ipam::Error),
    /// A registered IPAM driver refused or failed.
    #[error("IPAM driver {driver}: {source}")]
    IpamDriver {
        /// The driver's name.
        driver: String,
        /// Its error.
        source: berth_driver::BoxError,
    },
    /// A driver failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The persistent store failed (or is held by another daemon).
    #[error(transparent)]
    Store(#[from] berth_store::Error),
    /// A kernel operation of the controller's own (namespaces, routes) failed.
    #[error("{context}: {source}")]
    Kernel {
        /// What the controller was doing.
        context: String,
        /// The cause.
        #[source]
        source: berth_netlink::Error,
    },
    /// Setting up the firewall failed.
    #[error("firewall: {0}")]
    Firewall(#[from] berth_firewall::Error),
    /// A fail point armed by a test made this step fail (see `BERTH_FAILPOINTS`).
    #[error("injected failure at {0}")]
    Injected(&'static str),
    /// The sandbox could not be restored on start and waits for a retry; the reason says why.
    #[error("sandbox {name} is degraded: {reason}")]
    Degraded {
        /// The sandbox's name.
        name: String,
        /// Why it could not be restored.
        reason: String,
    },
    /// A stored record could not be read back (corrupt or from an incompatible version).
    #[error("stored record {key} is unreadable: {message}")]
    CorruptRecord {
        /// The store key.
        key: String,
        /// The decoder's message.
        message: String,
    },
}

impl Error {
    pub(crate) fn kernel(context: impl Into<String>, source: berth_netlink::Error) -> Self {
        Error::Kernel {
            context: context.into(),
            source,
        }
    }

    /// True for the "not found" kinds (network, sandbox), which the daemon maps to HTTP 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NetworkNotFound(_) | Error::SandboxNotFound(_))
    }

    /// True for conflicts with existing state, which the daemon maps to HTTP 409.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Error::NetworkExists(_) | Error::SandboxExists { .. } | Error::AlreadyConnected { .. }
        )
    }
}

/// Result alias of the controller.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The one error type of berth-dns.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in berth-dns. Every variant names the object it concerns, the cause,
/// and (in its message) what the caller can do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The resolver's tokio runtime or its namespace socket thread could not be started.
    #[error(
        "cannot start the DNS resolver's {what}: {source} (check the process's thread and file limits)"
    )]
    Runtime {
        /// What could not be started.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A network the call names was never added with [`crate::Resolver::add_network`].
    #[error(
        "DNS: network {0:?} is not known to the resolver; add it with Resolver::add_network first"
    )]
    UnknownNetwork(String),
    /// A sandbox the call names was never added with [`crate::Resolver::add_sandbox`].
    #[error(
        "DNS: sandbox {0:?} is not known to the resolver; add it with Resolver::add_sandbox first"
    )]
    UnknownSandbox(String),
    /// A sandbox or network id was added twice with different settings.
    #[error("DNS: {object} is already registered; remove it first to change it")]
    AlreadyRegistered {
        /// The object, e.g. `sandbox "web"`.
        object: String,
    },
    /// The sandbox is already attached to the network.
    #[error(
        "DNS: sandbox {sandbox:?} is already attached to network {network:?}; disconnect it first"
    )]
    AlreadyAttached {
        /// The sandbox id.
        sandbox: String,
        /// The network id.
        network: String,
    },
    /// A name, alias, option or address was refused before anything changed.
    #[error("DNS: invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What kind of value (e.g. `ndots option`, `alias`).
        what: &'static str,
        /// The value as given.
        value: String,
        /// Why it was refused and what is accepted.
        reason: String,
    },
    /// Opening the embedded server's sockets inside the sandbox's namespace failed.
    #[error(
        "DNS: cannot open the embedded server's {what} socket in sandbox {sandbox:?}: {source} (is loopback up in its namespace?)"
    )]
    Socket {
        /// The sandbox id.
        sandbox: String,
        /// `UDP` or `TCP`.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Entering the sandbox's namespace failed.
    #[error("DNS: cannot enter the namespace of sandbox {sandbox:?}: {source}")]
    Netns {
        /// The sandbox id.
        sandbox: String,
        /// The underlying error.
        #[source]
        source: berth_netlink::Error,
    },
    /// Installing the DNAT of 127.0.0.11:53 to the server's ports in the sandbox failed.
    #[error(
        "DNS: cannot redirect 127.0.0.11:53 in sandbox {sandbox:?}: {source} (is iptables or nft installed for the conntrack redirect?)"
    )]
    Redirect {
        /// The sandbox id.
        sandbox: String,
        /// The firewall's error.
        #[source]
        source: Box<berth_firewall::Error>,
    },
    /// The stateless redirect of 127.0.0.11:53 (an nf_tables netlink transaction) could not be
    /// installed.
    #[error("DNS: cannot redirect 127.0.0.11:53 in sandbox {sandbox:?}: {message}")]
    RedirectTool {
        /// The sandbox id.
        sandbox: String,
        /// What went wrong: the kernel's refusal of the nf_tables transaction.
        message: String,
    },
    /// Reading or writing a sandbox file (`hosts`, `resolv.conf`) failed.
    #[error("DNS: cannot {action} {}: {source}", path.display())]
    File {
        /// `write`, `rename`, `read`, ...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Result alias of berth-dns.
pub type Result<T, E = Error> = std::result::Result<T, E>;

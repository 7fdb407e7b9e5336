//! The one error type of berth-plugin: every variant names the plugin, and a failed call names
//! the call (`plugin "weave" NetworkDriver.CreateEndpoint: ...`).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use berth_driver::DriverError;

use crate::wire::{AnswerError, Call};

/// What can go wrong finding, activating or calling a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name cannot be a plugin's (it would name a path outside the plugin directories).
    #[error("invalid plugin name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// No socket or spec file of the plugin is in the plugin directories.
    #[error("plugin {name:?} not found (looked for {searched})")]
    NotFound {
        /// The plugin's name.
        name: String,
        /// The paths looked at, comma separated.
        searched: String,
    },
    /// A spec file (`NAME.spec`, `NAME.json`) that cannot be read or used.
    #[error("plugin {name:?}: {}: {reason}", path.display())]
    Spec {
        /// The plugin's name.
        name: String,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The plugin's address is of a kind berth does not speak.
    #[error("plugin {name:?}: address {address:?} is not supported: {reason}")]
    UnsupportedAddress {
        /// The plugin's name.
        name: String,
        /// The address as given.
        address: String,
        /// Why, and what to use instead.
        reason: &'static str,
    },
    /// A call to the plugin failed.
    #[error("plugin {plugin:?} {call}: {failure}")]
    Call {
        /// The plugin's name.
        plugin: String,
        /// The call.
        call: Call,
        /// What went wrong.
        #[source]
        failure: CallFailure,
    },
    /// The plugin does not implement what it is asked to be.
    #[error("plugin {plugin:?} does not implement {wanted} (its handshake lists: {implements})")]
    NotImplemented {
        /// The plugin's name.
        plugin: String,
        /// What was wanted (`NetworkDriver`, `IpamDriver`).
        wanted: &'static str,
        /// What it implements, comma separated.
        implements: String,
    },
    /// The kernel work a call needs of berth (moving the plugin's interface into the sandbox,
    /// addressing it) failed; what berth did is undone.
    #[error("plugin {plugin:?} {call}: {operation}: {source}")]
    Kernel {
        /// The plugin's name.
        plugin: String,
        /// The call whose answer berth was carrying out.
        call: Call,
        /// What berth was doing.
        operation: String,
        /// The kernel's refusal.
        #[source]
        source: berth_netlink::Error,
    },
    /// An endpoint or pool berth does not know of (never created through this adapter, or
    /// forgotten in a restart).
    #[error("plugin {plugin:?} {call}: {what} is not known to berth's adapter")]
    Unknown {
        /// The plugin's name.
        plugin: String,
        /// The call.
        call: Call,
        /// What is unknown (`endpoint 0123...`).
        what: String,
    },
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallFailure {
    /// The plugin could not be reached, also after the retries.
    #[error("cannot connect to {address} ({attempts} attempts over {elapsed:.1?}): {source}")]
    Connect {
        /// The plugin's address.
        address: String,
        /// How many connections were tried.
        attempts: u32,
        /// How long they took.
        elapsed: Duration,
        /// The last attempt's error.
        #[source]
        source: io::Error,
    },
    /// No complete answer came within the call timeout.
    #[error("no answer within {0:.1?} (the plugin hangs or is too slow)")]
    Timeout(Duration),
    /// The connection failed while the request was sent or the answer read.
    #[error("the connection failed: {0}")]
    Io(#[source] io::Error),
    /// The plugin closed the connection before its answer was complete.
    #[error("the plugin closed the connection after {received} bytes, before a complete answer")]
    Closed {
        /// How many bytes of an answer had come.
        received: usize,
    },
    /// The answer is not HTTP (or too large).
    #[error("the answer is not a valid HTTP answer: {0}")]
    Http(String),
    /// The plugin answered a status other than 200, with this message (its `Err`, or the body).
    #[error("HTTP status {status}: {message}")]
    Status {
        /// The status code.
        status: u16,
        /// The plugin's message.
        message: String,
    },
    /// The body is not the JSON the call answers with.
    #[error("the answer is not the JSON expected: {0}")]
    Decode(String),
    /// The plugin answered its own error (`Err` / `Error`).
    #[error("{0}")]
    Remote(String),
    /// The answer decoded but says something unusable.
    #[error("unusable answer: {0}")]
    Answer(#[from] AnswerError),
    /// The request could not be encoded (a bug).
    #[error("the request cannot be encoded: {0}")]
    Encode(String),
}

impl Error {
    /// The failure of a call, if this is one.
    pub fn call_failure(&self) -> Option<&CallFailure> {
        match self {
            Error::Call { failure, .. } => Some(failure),
            _ => None,
        }
    }

    /// Whether the plugin answered 404 (it does not implement the call).
    pub fn is_not_implemented_call(&self) -> bool {
        matches!(
            self.call_failure(),
            Some(CallFailure::Status { status: 404, .. })
        )
    }
}

/// A plugin's error as a driver's: a failed call is [`DriverError::Kernel`] whose operation
/// names the plugin and the call and whose source is the [`CallFailure`] (so the message reads
/// `plugin "weave" NetworkDriver.Join: ...`, and callers can downcast the source); berth's own
/// kernel work is [`DriverError::Kernel`] as well; an unknown endpoint is
/// [`DriverError::EndpointNotFound`]; the rest is [`DriverError::InvalidConfig`] with the
/// message. (berth-driver has no variant for a remote driver's failure yet.)
impl From<Error> for DriverError {
    fn from(e: Error) -> DriverError {
        match e {
            Error::Call {
                plugin,
                call,
                failure,
            } => DriverError::Kernel {
                operation: format!("plugin {plugin:?} {call}"),
                source: Box::new(failure),
            },
            Error::Kernel {
                plugin,
                call,
                operation,
                source,
            } => DriverError::Kernel {
                operation: format!("plugin {plugin:?} {call}: {operation}"),
                source: Box::new(source),
            },
            Error::Unknown { what, .. } => DriverError::EndpointNotFound(what),
            other => DriverError::InvalidConfig(other.to_string()),
        }
    }
}

/// Result alias of berth-plugin.
pub type Result<T, E = Error> = std::result::Result<T, E>;

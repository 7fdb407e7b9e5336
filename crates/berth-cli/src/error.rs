//! berth-cli's error type.

use std::path::PathBuf;

/// Everything the `berth` binary can fail with. Messages name the object, the cause and what the
/// user can do; daemon errors read like the docker CLI's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No daemon answers on the socket.
    #[error(
        "Cannot connect to the berth daemon at unix://{}. Is the berth daemon running? ({source}); start one with `berth daemon`, or point --host / BERTH_HOST at its socket",
        socket.display()
    )]
    DaemonUnreachable {
        /// The socket tried.
        socket: PathBuf,
        /// The connect error.
        #[source]
        source: std::io::Error,
    },
    /// The daemon answered with an error.
    #[error("Error response from daemon: {message}")]
    Daemon {
        /// The HTTP status.
        status: u16,
        /// The daemon's message.
        message: String,
    },
    /// The daemon's answer could not be understood.
    #[error(
        "unexpected answer from the berth daemon at {socket}: {message}; is it a berth daemon of the same version?"
    )]
    Protocol {
        /// The socket.
        socket: String,
        /// What was wrong.
        message: String,
    },
    /// A command-line value is invalid.
    #[error("{0}")]
    Usage(String),
    /// The daemon's configuration (its file, or a flag checked with it) is unusable.
    #[error(transparent)]
    DaemonJson(#[from] berth::DaemonJsonError),
    /// Another daemon serves the socket already.
    #[error(
        "another berth daemon is already serving unix://{}: stop it first, or give this one another --host and --data-root",
        socket.display()
    )]
    AlreadyServing {
        /// The socket.
        socket: PathBuf,
    },
    /// The controller failed to start (or a daemon-side operation failed).
    #[error("{0}")]
    Controller(#[from] berth::Error),
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A `--format` template failed.
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    /// `berth sandbox exec` could not set up or start the command.
    #[error("sandbox exec: {0}")]
    Exec(String),
}

impl Error {
    pub(crate) fn usage(m: impl Into<String>) -> Error {
        Error::Usage(m.into())
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias of berth-cli.
pub type Result<T, E = Error> = std::result::Result<T, E>;

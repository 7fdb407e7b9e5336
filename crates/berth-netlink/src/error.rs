//! The one error type of berth-netlink.

use std::io;

/// Everything that can go wrong in the OS layer. Every variant names the object it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name (interface or namespace) was refused before any request reached the kernel.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The kernel reports that the object already exists (EEXIST).
    #[error("{object} already exists")]
    Exists {
        /// The object, e.g. `link "br-0123"`.
        object: String,
    },
    /// The kernel reports that the object, or something it refers to, does not exist.
    #[error("{object} not found")]
    NotFound {
        /// The object, e.g. `link "eth7"`.
        object: String,
    },
    /// The caller lacks the privilege (EPERM/EACCES): berth needs CAP_NET_ADMIN and CAP_SYS_ADMIN.
    #[error("permission denied for {object}: run as root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")]
    PermissionDenied {
        /// The object the request was about.
        object: String,
    },
    /// The kernel refused the request as invalid (EINVAL, ERANGE, EOPNOTSUPP, ...).
    #[error("the kernel refused {object}: {message}")]
    Invalid {
        /// The object the request was about.
        object: String,
        /// The kernel's description of the errno (and its extended ack, when it sent one).
        message: String,
    },
    /// Any other errno the kernel returned for a request.
    #[error("{object}: kernel error {errno} ({message})")]
    Kernel {
        /// The object the request was about.
        object: String,
        /// The positive errno value.
        errno: i32,
        /// The kernel's description of the errno.
        message: String,
    },
    /// A system call or file operation outside netlink failed.
    #[error("{context}: {source}")]
    Io {
        /// What berth was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A netlink exchange broke the protocol (unexpected message, sequence mismatch, undecodable reply).
    #[error("netlink protocol error while {context}: {message}")]
    Protocol {
        /// What berth was doing.
        context: String,
        /// What was wrong.
        message: String,
    },
    /// A path that should name a network namespace names something else: a regular file (such as
    /// a mount point whose bind mount a crash cut short, or one unmounted since), a FIFO, a
    /// device, a directory or another type of namespace. Nothing was opened for real.
    #[error("{object}: {message}")]
    NotANamespace {
        /// The path, as "network namespace PATH".
        object: String,
        /// What the file is instead.
        message: String,
    },
    /// A value given by the caller is out of range or inconsistent (checked before any request).
    #[error("invalid argument for {object}: {message}")]
    InvalidArgument {
        /// The object the request was about.
        object: String,
        /// What was wrong with the value.
        message: String,
    },
}

/// Result alias of berth-netlink.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Maps a positive errno returned for a request about `object` to a typed error.
    pub fn from_errno(errno: i32, object: impl Into<String>) -> Self {
        Self::from_errno_with(errno, object, None)
    }

    /// Like [`Error::from_errno`], with the kernel's extended-ack text when there is one.
    pub fn from_errno_with(errno: i32, object: impl Into<String>, ext_ack: Option<&str>) -> Self {
        let object = object.into();
        let mut message = io::Error::from_raw_os_error(errno).to_string();
        if let Some(ack) = ext_ack.filter(|a| !a.is_empty()) {
            message = format!("{message}; kernel says: {ack}");
        }
        match errno {
            libc::EEXIST => Error::Exists { object },
            libc::ENOENT | libc::ENODEV | libc::ESRCH | libc::EADDRNOTAVAIL | libc::ENXIO => {
                Error::NotFound { object }
            }
            libc::EPERM | libc::EACCES => Error::PermissionDenied { object },
            libc::EINVAL | libc::ERANGE | libc::EOPNOTSUPP | libc::EAFNOSUPPORT | libc::E2BIG => {
                Error::Invalid { object, message }
            }
            _ => Error::Kernel {
                object,
                errno,
                message,
            },
        }
    }

    /// Wraps an I/O error with what berth was doing.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// True for [`Error::Exists`].
    pub fn is_exists(&self) -> bool {
        matches!(self, Error::Exists { .. })
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True when a namespace path is gone for good: it does not exist ([`Error::NotFound`]) or
    /// it is no namespace ([`Error::NotANamespace`], e.g. the empty mount point a crash during
    /// [`crate::Netns::create_in`] leaves). Any other failure to open may be transient.
    pub fn is_gone(&self) -> bool {
        matches!(self, Error::NotFound { .. } | Error::NotANamespace { .. })
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::io("system call", io::Error::from(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping_names_the_object() {
        let e = Error::from_errno(libc::EEXIST, "link \"br0\"");
        assert!(e.is_exists());
        assert_eq!(e.to_string(), "link \"br0\" already exists");
        assert!(Error::from_errno(libc::ENODEV, "link \"x\"").is_not_found());
        assert!(matches!(
            Error::from_errno(libc::EPERM, "x"),
            Error::PermissionDenied { .. }
        ));
        let e = Error::from_errno_with(libc::EINVAL, "route", Some("Nexthop has invalid gateway"));
        assert!(matches!(e, Error::Invalid { .. }));
        assert!(e.to_string().contains("Nexthop has invalid gateway"));
        assert!(matches!(
            Error::from_errno(libc::EBUSY, "x"),
            Error::Kernel { errno, .. } if errno == libc::EBUSY
        ));
    }
}

//! The error type of berth-types: input that does not parse as one of its types.

/// A value that is not a valid MAC address, port range, protocol or port spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not six hexadecimal octets.
    #[error(
        "invalid argument for MAC address {given:?}: expected six hexadecimal octets separated by ':', e.g. 02:42:ac:11:00:02"
    )]
    InvalidMac {
        /// The text as given.
        given: String,
    },
    /// A port or port range is invalid (port 0, or start after end).
    #[error("invalid port range {given:?}: {reason}")]
    InvalidPortRange {
        /// The range as given.
        given: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A protocol name is not one berth can publish or match.
    #[error("unknown protocol {given:?}: use tcp, udp or sctp")]
    UnknownProtocol {
        /// The protocol as given.
        given: String,
    },
    /// A `-p` (or `--expose`) spec that does not parse; names the bad part.
    #[error("invalid port specification {spec:?}: {part:?}: {reason}")]
    InvalidPortSpec {
        /// The whole spec (at most 200 characters of it).
        spec: String,
        /// The part that is wrong (at most 200 characters of it).
        part: String,
        /// Why.
        reason: String,
    },
}

/// Result alias of berth-types.
pub type Result<T, E = Error> = std::result::Result<T, E>;

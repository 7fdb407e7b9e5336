//! The one error type of berth-firewall.

use std::io;

/// Everything that can go wrong while validating, planning or applying firewall rules.
///
/// Validation errors (the first group) are returned before anything reaches the kernel. Every
/// message names the object, the cause and what the caller can do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An interface name (bridge or trusted interface) is not a valid Linux interface name.
    #[error(
        "invalid interface name {name:?} for {object}: {reason}; use 1 to 15 bytes without '/', ':', whitespace or NUL"
    )]
    InvalidInterface {
        /// The name as given.
        name: String,
        /// What the name was meant for, e.g. `network bridge`.
        object: String,
        /// Why it was refused.
        reason: String,
    },
    /// A port or port range is invalid (port 0, or start after end).
    #[error("invalid port range {given:?}: {reason}")]
    InvalidPortRange {
        /// The range as given.
        given: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A published port maps a host range onto a container range of another length.
    #[error(
        "published port {host}->{container}: the host range has {host_len} ports and the container range {container_len}; give ranges of equal length, or a single container port"
    )]
    PortRangeMismatch {
        /// The host side.
        host: String,
        /// The container side.
        container: String,
        /// Number of host ports.
        host_len: u32,
        /// Number of container ports.
        container_len: u32,
    },
    /// A protocol name is not one berth can publish or match.
    #[error("unknown protocol {given:?}: use tcp, udp or sctp")]
    UnknownProtocol {
        /// The protocol as given.
        given: String,
    },
    /// Addresses or prefixes of different families were mixed, or an address lies outside the
    /// network it is said to belong to.
    #[error("{object}: {reason}")]
    AddressMismatch {
        /// The rule or network concerned.
        object: String,
        /// What does not fit, and what would.
        reason: String,
    },
    /// An IPv6 rule was asked for while the firewall was configured without IPv6 (or IPv4 without IPv4).
    #[error(
        "{object} needs {family} rules, but the firewall was configured without {family}; enable it in FirewallConfig"
    )]
    FamilyDisabled {
        /// The rule or network concerned.
        object: String,
        /// `IPv4` or `IPv6`.
        family: &'static str,
    },
    /// A value is out of range or inconsistent (a mark outside its mask, an empty link, ...).
    #[error("invalid {object}: {reason}")]
    InvalidRule {
        /// The object concerned.
        object: String,
        /// Why it was refused.
        reason: String,
    },
    /// A network with this bridge is already present.
    #[error(
        "network on bridge {bridge:?} already has firewall rules; remove it first or use another bridge"
    )]
    NetworkExists {
        /// The bridge name.
        bridge: String,
    },
    /// No network with this bridge is present.
    #[error("no network on bridge {bridge:?} is known to the firewall; add the network first")]
    UnknownNetwork {
        /// The bridge name.
        bridge: String,
    },
    /// A network still has published ports or links.
    #[error(
        "network on bridge {bridge:?} still has {ports} published port rule(s) and {links} link(s); remove them first"
    )]
    NetworkInUse {
        /// The bridge name.
        bridge: String,
        /// Published port rules that refer to it.
        ports: usize,
        /// Links that refer to it.
        links: usize,
    },
    /// A network's subnet overlaps the subnet of another network.
    #[error(
        "subnet {subnet} of network {bridge:?} overlaps subnet {other_subnet} of network {other:?}; choose disjoint subnets"
    )]
    SubnetOverlap {
        /// The new network's bridge.
        bridge: String,
        /// The new network's subnet.
        subnet: String,
        /// The bridge of the network it overlaps.
        other: String,
        /// The overlapped subnet.
        other_subnet: String,
    },
    /// The host side of a published port overlaps a port that is already published.
    #[error(
        "cannot publish {port}: host ports overlap the published {existing}; pick other host ports or remove the existing mapping"
    )]
    PortConflict {
        /// The new mapping.
        port: String,
        /// The mapping it collides with.
        existing: String,
    },
    /// A published port to remove is not present.
    #[error("published port {port} is not present")]
    PortNotFound {
        /// The mapping.
        port: String,
    },
    /// A link between the same two containers is already present.
    #[error("link {link} is already present; remove it before adding it again")]
    LinkExists {
        /// The link.
        link: String,
    },
    /// A link to remove is not present.
    #[error("link {link} is not present")]
    LinkNotFound {
        /// The link.
        link: String,
    },
    /// A firewall tool is not installed (or not executable).
    #[error(
        "{tool} was not found ({detail}); install it (Debian: apt-get install {package}) or choose the other backend"
    )]
    ToolNotFound {
        /// The program berth looked for.
        tool: String,
        /// What happened when berth tried to run it.
        detail: String,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// Rules exist in the other iptables variant's tables (legacy vs nf_tables), so rules berth
    /// adds through one variant would be bypassed or shadowed by the other.
    #[error(
        "iptables variants are mixed in {netns}: berth found {found} but the {other} tables hold rules ({detail}); remove those rules, or set FirewallConfig::iptables_variant to {other}"
    )]
    MixedIptables {
        /// The namespace checked.
        netns: String,
        /// The binary berth would use, with its version line.
        found: String,
        /// The other variant (`legacy` or `nft`).
        other: &'static str,
        /// What was found there.
        detail: String,
    },
    /// The kernel or the tool refused a transaction. Nothing was changed: any part that had
    /// already been committed was rolled back.
    #[error("{tool} refused the transaction in {netns}: {message}; nothing was changed")]
    Refused {
        /// The program that refused.
        tool: String,
        /// The namespace.
        netns: String,
        /// The tool's error output.
        message: String,
    },
    /// A transaction failed part-way and undoing the committed part failed as well.
    #[error(
        "{tool} refused a transaction in {netns} ({message}) and rolling back its committed part failed too ({rollback}); call Firewall::reconcile to restore berth's rules"
    )]
    RollbackFailed {
        /// The program that refused.
        tool: String,
        /// The namespace.
        netns: String,
        /// Why the transaction failed.
        message: String,
        /// Why the rollback failed.
        rollback: String,
    },
    /// The output of `iptables-save` or `nft list` could not be understood.
    #[error("cannot parse the output of {tool}: {detail}")]
    Unparsable {
        /// The program.
        tool: String,
        /// What was wrong.
        detail: String,
    },
    /// Spawning or talking to a tool failed.
    #[error("{context}: {source}")]
    Io {
        /// What berth was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another berth firewall manages this network namespace already (see
    /// [`crate::NamespaceClaim`]): two would remove each other's rules, so the second is
    /// refused before it changes anything.
    #[error(
        "another berth firewall ({}) manages {netns} already: two would remove each other's \
         rules. Stop it first, run this one without a firewall (the daemon's --iptables=false, \
         Config::firewall = None), or in another network namespace",
        match holder { Some(h) => h.to_string(), None => "a process not visible from here".into() }
    )]
    NamespaceClaimed {
        /// The namespace.
        netns: String,
        /// The process holding it, when the kernel names it.
        holder: Option<crate::ClaimHolder>,
    },
    /// A namespace operation failed.
    #[error("network namespace: {0}")]
    Netns(#[from] berth_netlink::Error),
}

impl From<berth_types::Error> for Error {
    /// A port range or protocol that does not parse keeps the variant it always had here.
    fn from(e: berth_types::Error) -> Self {
        match e {
            berth_types::Error::InvalidPortRange { given, reason } => {
                Error::InvalidPortRange { given, reason }
            }
            berth_types::Error::UnknownProtocol { given } => Error::UnknownProtocol { given },
            other => Error::InvalidRule {
                object: "value".into(),
                reason: other.to_string(),
            },
        }
    }
}

/// Result alias of berth-firewall.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// True if the error was found before anything was sent to the kernel (bad input or a
    /// conflict with the current state).
    pub fn is_validation(&self) -> bool {
        matches!(
            self,
            Error::InvalidInterface { .. }
                | Error::InvalidPortRange { .. }
                | Error::PortRangeMismatch { .. }
                | Error::UnknownProtocol { .. }
                | Error::AddressMismatch { .. }
                | Error::FamilyDisabled { .. }
                | Error::InvalidRule { .. }
                | Error::NetworkExists { .. }
                | Error::UnknownNetwork { .. }
                | Error::NetworkInUse { .. }
                | Error::SubnetOverlap { .. }
                | Error::PortConflict { .. }
                | Error::PortNotFound { .. }
                | Error::LinkExists { .. }
                | Error::LinkNotFound { .. }
        )
    }
}

//! The drivers' own error type. It reaches the controller inside a [`DriverError`]: what the
//! kernel cannot do as the source of a [`DriverError::Kernel`] (so a caller can tell it by type,
//! e.g. [`MacvlanError::IpvlanUnsupported`]), what the user asked wrongly as a
//! [`DriverError::InvalidConfig`] with the same text.

use berth_driver::DriverError;

/// What the macvlan and ipvlan drivers refuse, or find the kernel cannot do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MacvlanError {
    /// The kernel has no ipvlan driver (not built, not loadable): no ipvlan network can work.
    #[error("the kernel has no ipvlan support (modprobe ipvlan; CONFIG_IPVLAN)")]
    IpvlanUnsupported,
    /// The kernel has no macvlan driver.
    #[error("the kernel has no macvlan support (modprobe macvlan; CONFIG_MACVLAN)")]
    MacvlanUnsupported,
    /// The kernel has no 802.1q VLAN driver, so the sub-interface cannot be made (Docker:
    /// "failed to create eth0.10 vlan link: operation not supported").
    #[error(
        "failed to create {link} vlan link: the kernel has no 802.1q VLAN support (modprobe \
         8021q; CONFIG_VLAN_8021Q)"
    )]
    VlanUnsupported {
        /// The sub-interface (`eth0.10`).
        link: String,
    },
    /// Another network of the driver uses the parent (Docker's message, which names the other
    /// network by its internal link name, `dm-` or `di-` and its short id).
    #[error("network {other} is already using parent interface {parent}")]
    ParentInUse {
        /// The other network, as Docker names it (`dm-0123456789ab`).
        other: String,
        /// The parent interface.
        parent: String,
    },
    /// The parent does not exist and is no `NAME.VLAN_ID` of an existing interface.
    #[error(
        "parent interface {parent} was not found in the host namespace (give an existing \
         interface, or NAME.VLAN_ID such as eth0.10 for an 802.1q sub-interface of one)"
    )]
    ParentNotFound {
        /// The parent as given.
        parent: String,
    },
    /// The base interface of a `NAME.VLAN_ID` parent does not exist (Docker: "-o parent
    /// interface does was not found on the host: NAME").
    #[error(
        "parent interface {base} of the 802.1q sub-interface {parent} was not found in the host \
         namespace"
    )]
    VlanBaseNotFound {
        /// The parent as given (`eth9.10`).
        parent: String,
        /// Its base interface (`eth9`).
        base: String,
    },
    /// A missing parent whose name is no valid `NAME.VLAN_ID` (the reason is Docker's text).
    #[error("parent interface {parent} was not found in the host namespace, and {reason}")]
    BadVlanParent {
        /// The parent as given.
        parent: String,
        /// Why it is no `NAME.VLAN_ID`.
        reason: String,
    },
    /// A link under the name of the network's internal parent exists and is not the network's.
    #[error(
        "link {link} exists in the host namespace and is not network {network}'s (made by \
         someone else); delete it or use another network"
    )]
    ForeignLink {
        /// The link.
        link: String,
        /// The network's name.
        network: String,
    },
    /// A passthru network has its one endpoint already.
    #[error(
        "network {network} is in macvlan passthru mode, which gives its parent interface \
         {parent} to one endpoint only, and has one; disconnect it first, or use another mode"
    )]
    PassthruInUse {
        /// The network's name.
        network: String,
        /// Its parent.
        parent: String,
    },
    /// A MAC address was asked for an ipvlan endpoint (Docker's message: ipvlan interfaces
    /// share their parent's address).
    #[error("ipvlan interfaces do not support custom mac address assignment")]
    IpvlanMac,
    /// The interface name asked for in the sandbox is taken by another interface.
    #[error("interface {ifname} exists in the sandbox and is not this endpoint's")]
    SandboxNameTaken {
        /// The name.
        ifname: String,
    },
    /// The instance id given to the driver cannot be put in a link's mark.
    #[error(
        "invalid berth instance id {0:?} for the macvlan and ipvlan drivers: use 1 to 64 ASCII \
         letters, digits, '.', '_' or '-'"
    )]
    InvalidInstance(String),
}

impl MacvlanError {
    /// True for the variants that say what the kernel lacks.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            MacvlanError::IpvlanUnsupported
                | MacvlanError::MacvlanUnsupported
                | MacvlanError::VlanUnsupported { .. }
        )
    }

    /// The driver error carrying this one: a kernel error (with this as its source) for what
    /// the kernel lacks, an invalid configuration for the rest.
    pub(crate) fn into_driver(self, operation: impl Into<String>) -> DriverError {
        if self.is_unsupported() {
            DriverError::kernel(operation, self)
        } else {
            DriverError::InvalidConfig(self.to_string())
        }
    }
}

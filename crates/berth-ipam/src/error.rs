//! The one error type of berth-ipam.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::addr::IpFamily;
use crate::pool::PoolId;
use crate::space::AddressSpace;

/// Result type of berth-ipam.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The user-facing option a parse error is about, as named on `docker network create` and in
/// dockerd's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// `--subnet`.
    Subnet,
    /// `--ip-range`.
    IpRange,
    /// `--gateway`.
    Gateway,
    /// `--aux-address name=ip`.
    AuxAddress,
    /// `base=` of a `default-address-pools` entry.
    Base,
    /// `size=` of a `default-address-pools` entry.
    Size,
    /// A pool id such as `LocalDefault/172.18.0.0/16`.
    PoolId,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Subnet => "subnet",
            Self::IpRange => "ip-range",
            Self::Gateway => "gateway",
            Self::AuxAddress => "aux-address",
            Self::Base => "default address pool base",
            Self::Size => "default address pool size",
            Self::PoolId => "pool id",
        })
    }
}

/// Why an address is reserved in a pool and can never be handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reserved {
    /// The IPv4 network address (all host bits zero) of a subnet shorter than /31.
    Network,
    /// The IPv4 broadcast address (all host bits one) of a subnet shorter than /31.
    Broadcast,
    /// The IPv6 subnet-router anycast address (all host bits zero) of a subnet shorter than /127.
    SubnetRouterAnycast,
}

impl fmt::Display for Reserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Network => "the network address",
            Self::Broadcast => "the broadcast address",
            Self::SubnetRouterAnycast => "the subnet-router anycast address",
        })
    }
}

/// Everything that can go wrong in berth-ipam. Every message names the object, the cause and what
/// the user can do; where Docker has a well-known message it is included verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A requested subnet overlaps a pool already allocated in the same address space.
    #[error(
        "cannot allocate subnet {subnet} in address space {space}: Pool overlaps with other one on \
         this address space (it overlaps {existing}); choose a subnet that does not overlap {existing} \
         or remove the network that uses it"
    )]
    PoolOverlap {
        /// The address space of the request.
        space: AddressSpace,
        /// The requested subnet (normalised to its network address).
        subnet: IpNet,
        /// The allocated pool it overlaps.
        existing: IpNet,
    },
    /// Every default pool of the family overlaps an allocated pool or an excluded network.
    #[error(
        "address space {space}: could not find an available, non-overlapping {family} address pool \
         among the defaults to assign to the network; give an explicit subnet, remove unused networks, \
         or add bases to default-address-pools"
    )]
    NoAvailablePool {
        /// The address space of the request.
        space: AddressSpace,
        /// The family that was asked for.
        family: IpFamily,
    },
    /// A pool without a subnet was asked for in a family that has no default pools configured.
    #[error(
        "address space {space} has no {family} default address pools, so a {family} network needs an \
         explicit subnet: give one (for example --subnet {example}) or add a {family} base to \
         default-address-pools"
    )]
    NoDefaultPools {
        /// The address space of the request.
        space: AddressSpace,
        /// The family that was asked for.
        family: IpFamily,
        /// An example subnet of that family for the message.
        example: &'static str,
    },
    /// An option that only makes sense with an explicit subnet was given without one.
    #[error("{field} {value} needs an explicit subnet: give --subnet as well, or drop {field}")]
    NeedsSubnet {
        /// The option (ip-range or aux-address).
        field: Field,
        /// Its value as given.
        value: String,
    },
    /// The sub-range (`--ip-range`) does not lie inside the subnet.
    #[error(
        "ip-range {range} is not inside subnet {subnet}: choose an ip-range that is a part of the subnet"
    )]
    RangeOutsideSubnet {
        /// The requested range.
        range: IpNet,
        /// The subnet of the pool.
        subnet: IpNet,
    },
    /// An auxiliary address (`--aux-address`) does not lie inside the subnet.
    #[error(
        "aux-address {name}={address} is not inside subnet {subnet}: choose an address in the subnet"
    )]
    AuxAddressOutsideSubnet {
        /// The name given to the auxiliary address.
        name: String,
        /// The address.
        address: IpAddr,
        /// The subnet of the pool.
        subnet: IpNet,
    },
    /// The pool id does not name an allocated pool.
    #[error("pool {id} is not allocated: it was never requested or has been released")]
    UnknownPool {
        /// The pool id as given.
        id: PoolId,
    },
    /// A requested (preferred or gateway) address, or an address to release, is not in the pool's
    /// subnet.
    #[error("address {address} is out of range for pool {pool}: choose an address inside {subnet}")]
    AddressOutOfRange {
        /// The address.
        address: IpAddr,
        /// The pool.
        pool: PoolId,
        /// The pool's subnet.
        subnet: IpNet,
    },
    /// A requested address is reserved in its subnet and can never be handed out.
    #[error(
        "address {address} is {kind} of pool {pool} and cannot be assigned: choose another address"
    )]
    ReservedAddress {
        /// The address.
        address: IpAddr,
        /// The pool.
        pool: PoolId,
        /// Why it is reserved.
        kind: Reserved,
    },
    /// A requested address is already allocated.
    #[error(
        "cannot assign {address} in pool {pool}: Address already in use; choose another address or \
         omit it to get the next free one"
    )]
    AddressInUse {
        /// The address.
        address: IpAddr,
        /// The pool.
        pool: PoolId,
    },
    /// Every assignable address of the pool (or of its ip-range) is allocated.
    #[error(
        "pool {pool}: no available addresses on this pool; release addresses, or use a larger subnet \
         or ip-range"
    )]
    NoAvailableAddresses {
        /// The pool.
        pool: PoolId,
    },
    /// The address to release is not allocated in the pool.
    #[error("cannot release {address} from pool {pool}: it is not allocated there")]
    AddressNotAllocated {
        /// The address.
        address: IpAddr,
        /// The pool.
        pool: PoolId,
    },
    /// The address to release is an auxiliary address; those live as long as the pool.
    #[error(
        "cannot release {address} from pool {pool}: it is the auxiliary address {name:?}, which is \
         reserved until the pool is released"
    )]
    AuxAddressRelease {
        /// The address.
        address: IpAddr,
        /// The auxiliary address's name.
        name: String,
        /// The pool.
        pool: PoolId,
    },
    /// A default-pool size is shorter than the base's prefix.
    #[error(
        "default address pool base {base} with size {size}: size must be at least the base's prefix \
         length {}; use size >= {}", base.prefix_len(), base.prefix_len()
    )]
    DefaultPoolSizeTooSmall {
        /// The base network.
        base: IpNet,
        /// The size (prefix length of the pools cut from the base).
        size: u8,
    },
    /// A default-pool size is longer than an address.
    #[error(
        "default address pool base {base} with size {size}: size must be at most {}; use a smaller size",
        base.max_prefix_len()
    )]
    DefaultPoolSizeTooLarge {
        /// The base network.
        base: IpNet,
        /// The size as given.
        size: u8,
    },
    /// A default-pool base has host bits set.
    #[error(
        "default address pool base {base} is not a network address: use {}", base.trunc()
    )]
    DefaultPoolBaseNotNetwork {
        /// The base as given.
        base: IpNet,
    },
    /// A string is not a network in CIDR notation.
    #[error("invalid {field} {input:?}: {reason}")]
    InvalidCidr {
        /// The option it was given for.
        field: Field,
        /// The input.
        input: String,
        /// What is wrong and what is expected.
        reason: &'static str,
    },
    /// A string is not an IP address.
    #[error("invalid {field} {input:?}: {reason}")]
    InvalidAddress {
        /// The option it was given for.
        field: Field,
        /// The input.
        input: String,
        /// What is wrong and what is expected.
        reason: &'static str,
    },
    /// A `default-address-pools` entry (`base=...,size=...`) is malformed.
    #[error("invalid default address pool {input:?}: {reason}")]
    InvalidDefaultPoolSpec {
        /// The entry as given.
        input: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A pool id string is malformed.
    #[error(
        "invalid pool id {input:?}: {reason}; expected SPACE/SUBNET or SPACE/SUBNET/RANGE, e.g. \
         LocalDefault/172.18.0.0/16"
    )]
    InvalidPoolId {
        /// The input.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// Restored (deserialised) state breaks an invariant of the allocator.
    #[error(
        "restored IPAM state is inconsistent: {reason}; the stored state is corrupt or was written by \
         an incompatible version"
    )]
    InvalidState {
        /// Which invariant is broken, naming the pool or address.
        reason: String,
    },
}

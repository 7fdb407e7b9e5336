//! berth's IP address management: address spaces, default pools, subnet and address allocation for
//! IPv4 and IPv6. Pure data structures and functions; no I/O.
//!
//! The model is libnetwork's default IPAM driver:
//!
//! - Two [`AddressSpace`]s, `LocalDefault` and `GlobalDefault`. Pools never overlap inside a space.
//! - [`DefaultPool`]s per space (Docker's by default, replaceable like dockerd's
//!   `default-address-pools`) from which a network created without a subnet gets the first subnet
//!   that overlaps neither an allocated pool nor a caller-given list of host routes and nameservers.
//! - A pool has a subnet, an optional sub-range (`--ip-range`) that next-address requests draw from,
//!   auxiliary addresses (`--aux-address`) reserved at creation, and an [`AllocationMode`]: lowest
//!   free (Docker's default) or serial (round robin).
//! - IPv4 network and broadcast addresses (except in /31 and /32) and the IPv6 subnet-router anycast
//!   address (except in /127 and /128) are never handed out.
//!
//! Allocated addresses are kept as merged runs in a B-tree, so memory follows what is allocated, not
//! the size of the subnet (a 10.0.0.0/8 or an IPv6 /64 pool is cheap), and finding the lowest free or
//! the next serial address takes O(log n) even with a million allocations.
//!
//! Differences from Docker 20.10, on purpose:
//! - A subnet or ip-range with host bits set (`172.29.0.1/16`) is accepted, as Docker does, and
//!   normalised to its network (`172.29.0.0/16`); the [`PoolId`] and [`Pool::subnet`] show the
//!   normalised network.
//! - Without an explicit gateway, the gateway is the lowest free address of the whole subnet
//!   (`172.28.0.1`), even when the pool has an ip-range; Docker 20.10 hands out the ip-range's first
//!   address (`172.28.5.0` for `--ip-range 172.28.5.0/24`) instead. Only the subnet's own network and
//!   broadcast addresses are reserved, so with berth that first range address (`172.28.5.0`, a
//!   valid host address of the /16) goes to the first endpoint.
//! - Two pools with the same subnet and different ip-ranges are refused as overlapping.
//! - An auxiliary address cannot be released on its own; it goes with its pool.
//! - Asking for a reserved address (network, broadcast, subnet-router anycast) is a distinct
//!   [`Error::ReservedAddress`]; Docker answers "Address already in use".
//! - The exclude list of host routes and nameservers applies in both address spaces when the caller
//!   gives one; Docker checks it in the local space only.
//!
//! ```
//! use berth_ipam::{AddressRequest, AddressSpace, IpFamily, Ipam, PoolRequest, parse_subnet};
//!
//! # fn main() -> Result<(), berth_ipam::Error> {
//! let mut ipam = Ipam::new();
//!
//! // `docker network create` without --subnet: the first free default pool.
//! let auto = ipam.request_pool(&PoolRequest::from_defaults(AddressSpace::Local, IpFamily::V4))?;
//! assert_eq!(auto.to_string(), "LocalDefault/172.17.0.0/16");
//!
//! // --subnet 172.28.0.0/16 --ip-range 172.28.5.0/24
//! let req = PoolRequest::new(AddressSpace::Local, parse_subnet("172.28.0.0/16")?)
//!     .with_ip_range("172.28.5.0/24".parse().expect("valid"));
//! let id = ipam.request_pool(&req)?;
//! let gw = ipam.request_address(&id, AddressRequest::Gateway(None))?;
//! assert_eq!(gw.to_string(), "172.28.0.1/16");
//! let first = ipam.request_address(&id, AddressRequest::Next)?;
//! assert_eq!(first.to_string(), "172.28.5.0/16"); // a host address of the /16
//! let second = ipam.request_address(&id, AddressRequest::Next)?;
//! assert_eq!(second.to_string(), "172.28.5.1/16");
//!
//! // The whole state round-trips through serde.
//! let json = serde_json::to_string(&ipam).expect("serialisable");
//! let back: Ipam = serde_json::from_str(&json).expect("restorable");
//! assert_eq!(back, ipam);
//!
//! ipam.release_address(&id, first.addr())?;
//! ipam.release_pool(&id)?;
//! # Ok(()) }
//! ```

mod addr;
mod error;
mod interval;
mod ipam;
mod parse;
mod pool;
mod space;
#[cfg(test)]
mod tests;

/// The `ipnet` crate, whose `IpNet` is used throughout the API.
pub use ipnet;

pub use addr::IpFamily;
pub use error::{Error, Field, Reserved, Result};
pub use ipam::{AddressRequest, Ipam, PoolRequest, PoolSubnet, host_exclusions};
pub use parse::{
    parse_address, parse_aux_address, parse_cidr, parse_default_pool, parse_gateway,
    parse_ip_range, parse_subnet,
};
pub use pool::{AllocationMode, Pool, PoolId};
pub use space::{AddressSpace, DefaultPool};

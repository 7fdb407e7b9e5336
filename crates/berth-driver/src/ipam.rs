//! The IPAM contract: how the controller asks for a network's pools and its endpoints'
//! addresses ([`IpamDriver`], after Docker's IPAM driver API: request and release a pool,
//! request and release an address). berth's built-in allocator is one implementation; an engine
//! registers another with the controller's builder (a remote IPAM plugin, a cluster-wide one).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::BoxError;
use crate::options::RawOptions;

/// Where a pool lives: this host only, or every host sharing the cluster store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressSpace {
    /// This host's networks (Docker's `LocalDefault`).
    Local,
    /// Global-scope networks (Docker's `GlobalDefault`).
    Global,
}

pub use berth_types::IpFamily;

/// A request for one pool of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRequest {
    /// Where the pool lives.
    pub space: AddressSpace,
    /// The subnet the user gave, or none for the next free one of the driver's defaults.
    pub subnet: Option<IpNet>,
    /// The family of the pool (of `subnet`, when given).
    pub family: IpFamily,
    /// Addresses for endpoints come from this part of the subnet only (`--ip-range`).
    pub ip_range: Option<IpNet>,
    /// Addresses reserved by name (`--aux-address`), never handed out.
    pub aux_addresses: BTreeMap<String, IpAddr>,
    /// Subnets a pool from the defaults must not overlap (the host's own routes).
    pub exclude: Vec<IpNet>,
    /// The network's IPAM options (`--ipam-opt`), as given.
    pub options: RawOptions,
}

impl PoolRequest {
    /// A request for `subnet` in `space` (its family taken from it).
    pub fn subnet(space: AddressSpace, subnet: IpNet) -> PoolRequest {
        PoolRequest {
            space,
            subnet: Some(subnet),
            family: IpFamily::of_net(subnet),
            ip_range: None,
            aux_addresses: BTreeMap::new(),
            exclude: Vec::new(),
            options: RawOptions::new(),
        }
    }

    /// A request for the next free pool of `family` from the driver's defaults.
    pub fn next(space: AddressSpace, family: IpFamily) -> PoolRequest {
        PoolRequest {
            space,
            subnet: None,
            family,
            ip_range: None,
            aux_addresses: BTreeMap::new(),
            exclude: Vec::new(),
            options: RawOptions::new(),
        }
    }
}

/// A pool the driver gave.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pool {
    /// The driver's id of the pool (opaque to the controller; stable across restarts when the
    /// same request is made again).
    pub id: String,
    /// Its subnet.
    pub subnet: IpNet,
    /// The part addresses come from, when restricted.
    pub ip_range: Option<IpNet>,
}

/// A request for one address of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRequest {
    /// The next free address.
    Next,
    /// This address (`--ip`), or an error if it is taken or outside the pool.
    Preferred(IpAddr),
    /// The network's gateway: this one (`--gateway`) or the driver's choice (Docker: the first
    /// address of the subnet).
    Gateway(Option<IpAddr>),
}

/// berth's IPAM contract (object-safe; `Send + Sync`). Errors are boxed: the controller shows
/// them as they are (and the built-in allocator's typed errors keep their type).
pub trait IpamDriver: Send + Sync {
    /// The driver's name (`docker network create --ipam-driver NAME`).
    fn name(&self) -> &'static str;

    /// Whether the driver keeps its allocations across a restart of the controller (in a store
    /// of its own, or a remote plugin's process). When it does, a restart takes the pools and
    /// addresses from the controller's records as they are (the pool ids recorded at creation)
    /// and asks nothing again; when it does not (the built-in allocator, in memory), the restart
    /// requests every recorded pool and address again.
    fn keeps_state(&self) -> bool {
        false
    }

    /// Gives a pool: the subnet asked for, or the next free one of the defaults. A pool that
    /// overlaps another of the same space is refused.
    fn request_pool(&self, req: &PoolRequest) -> Result<Pool, BoxError>;

    /// Takes a pool back (its addresses with it).
    fn release_pool(&self, pool: &str) -> Result<(), BoxError>;

    /// Gives an address of a pool, with the pool's prefix length.
    fn request_address(&self, pool: &str, req: AddressRequest) -> Result<IpNet, BoxError>;

    /// Takes an address back.
    fn release_address(&self, pool: &str, addr: IpAddr) -> Result<(), BoxError>;
}

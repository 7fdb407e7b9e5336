//! The allocator: address spaces, pool requests and address requests.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize, Serializer};

use crate::addr::{IpFamily, from_u128, host_mask, net_bounds, net_within};
use crate::error::{Error, Field, Result};
use crate::interval::IntervalSet;
use crate::pool::{AllocationMode, Pool, PoolId, PoolIn};
use crate::space::{AddressSpace, DefaultPool};

/// Where a pool's subnet comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolSubnet {
    /// This subnet (`--subnet`). Host bits are cleared: `172.29.0.1/16` asks for `172.29.0.0/16`,
    /// which Docker 20.10 accepts the same way.
    Given(IpNet),
    /// The first default pool of this family that overlaps neither an allocated pool of the address
    /// space nor a network of [`PoolRequest::exclude`].
    FromDefaults(IpFamily),
}

/// A request for a pool. Build one with [`PoolRequest::new`] or [`PoolRequest::from_defaults`] and
/// the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolRequest {
    /// The address space to allocate in.
    pub space: AddressSpace,
    /// The subnet, or the family to pick a default pool from.
    pub subnet: PoolSubnet,
    /// The sub-range next-address requests draw from (`--ip-range`); must lie inside the subnet.
    /// Host bits are cleared. Needs [`PoolSubnet::Given`].
    pub ip_range: Option<IpNet>,
    /// Auxiliary addresses reserved with the pool (`--aux-address name=ip`); each must lie inside the
    /// subnet (not necessarily the range). Needs [`PoolSubnet::Given`].
    pub aux_addresses: BTreeMap<String, IpAddr>,
    /// How next-address requests choose.
    pub mode: AllocationMode,
    /// Networks a default pool must not overlap: the host's routes and nameservers, found by the
    /// caller (berth-ipam does no I/O). Only used with [`PoolSubnet::FromDefaults`]; do not include
    /// the default route, or nothing will be free.
    pub exclude: Vec<IpNet>,
}

impl PoolRequest {
    /// A request for exactly `subnet` in `space`.
    #[must_use]
    pub fn new(space: AddressSpace, subnet: IpNet) -> Self {
        Self::with_subnet_choice(space, PoolSubnet::Given(subnet))
    }

    /// A request for the first free default pool of `family` in `space`.
    #[must_use]
    pub fn from_defaults(space: AddressSpace, family: IpFamily) -> Self {
        Self::with_subnet_choice(space, PoolSubnet::FromDefaults(family))
    }

    fn with_subnet_choice(space: AddressSpace, subnet: PoolSubnet) -> Self {
        Self {
            space,
            subnet,
            ip_range: None,
            aux_addresses: BTreeMap::new(),
            mode: AllocationMode::LowestFree,
            exclude: Vec::new(),
        }
    }

    /// Sets the sub-range (`--ip-range`).
    #[must_use]
    pub fn with_ip_range(mut self, range: IpNet) -> Self {
        self.ip_range = Some(range);
        self
    }

    /// Adds an auxiliary address (`--aux-address name=ip`); a repeated name replaces the address.
    #[must_use]
    pub fn with_aux_address(mut self, name: impl Into<String>, addr: IpAddr) -> Self {
        self.aux_addresses.insert(name.into(), addr);
        self
    }

    /// Sets the allocation mode.
    #[must_use]
    pub fn with_mode(mut self, mode: AllocationMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the networks a default pool must not overlap.
    #[must_use]
    pub fn with_exclude(mut self, exclude: Vec<IpNet>) -> Self {
        self.exclude = exclude;
        self
    }
}

/// What a pool taken from the defaults must not overlap on a host (for
/// [`PoolRequest::with_exclude`]), as Docker has it: the destinations of the host's `routes` but
/// default routes, and the `nameserver` addresses of its `resolv_conf` text.
pub fn host_exclusions(routes: impl IntoIterator<Item = IpNet>, resolv_conf: &str) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = routes.into_iter().filter(|d| d.prefix_len() > 0).collect();
    for line in resolv_conf.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver")
            && let Some(Ok(ip)) = words.next().map(str::parse::<std::net::IpAddr>)
        {
            out.push(IpNet::from(ip));
        }
    }
    out
}

/// A request for an address in a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressRequest {
    /// The next address of the pool's range (or subnet) in the pool's [`AllocationMode`].
    Next,
    /// Exactly this address; it only has to be inside the subnet (it may lie outside the ip-range).
    Preferred(IpAddr),
    /// The gateway: the given address (as [`AddressRequest::Preferred`]), or else the lowest free
    /// address of the whole subnet, whatever the ip-range and the mode. (Docker 20.10 hands out the
    /// ip-range's first address, even its network address, as the gateway of a pool with an
    /// ip-range; berth does not copy that quirk.) Never moves the serial cursor.
    Gateway(Option<IpAddr>),
}

/// One address space: its default pools and its allocated pools, keyed by family and first address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Space {
    default_pools: Vec<DefaultPool>,
    pools: BTreeMap<(IpFamily, u128), Pool>,
}

impl Space {
    fn new(default_pools: Vec<DefaultPool>) -> Self {
        Self {
            default_pools,
            pools: BTreeMap::new(),
        }
    }

    /// Some allocated pool of `family` that intersects `[lo, hi]`.
    fn overlapping(&self, family: IpFamily, lo: u128, hi: u128) -> Option<&Pool> {
        if let Some((&(f, _), p)) = self.pools.range(..=(family, lo)).next_back() {
            if f == family && p.span().1 >= lo {
                return Some(p);
            }
        }
        match self.pools.range((family, lo)..).next() {
            Some((&(f, start), p)) if f == family && start <= hi => Some(p),
            _ => None,
        }
    }

    fn insert(&mut self, pool: Pool) {
        self.pools.insert((pool.family(), pool.span().0), pool);
    }

    fn key(id: &PoolId) -> (IpFamily, u128) {
        (IpFamily::of_net(id.subnet()), net_bounds(id.subnet()).0)
    }

    fn get(&self, id: &PoolId) -> Option<&Pool> {
        self.pools.get(&Self::key(id)).filter(|p| p.id() == *id)
    }

    fn get_mut(&mut self, id: &PoolId) -> Option<&mut Pool> {
        self.pools.get_mut(&Self::key(id)).filter(|p| p.id() == *id)
    }

    /// The first default subnet of `family` free of allocated pools and `exclude`.
    fn pick_default(
        &self,
        space: AddressSpace,
        family: IpFamily,
        exclude: &[IpNet],
    ) -> Result<IpNet> {
        let mut excluded = IntervalSet::new();
        for net in exclude.iter().filter(|n| IpFamily::of_net(**n) == family) {
            let (s, e) = net_bounds(*net);
            excluded.insert_range(s, e);
        }
        let mut any = false;
        for dp in self.default_pools.iter().filter(|d| d.family() == family) {
            any = true;
            let (base_start, base_end) = net_bounds(dp.base());
            let block = host_mask(family.bits() - dp.size());
            let mut start = base_start;
            loop {
                let end = start + block;
                let conflict = self
                    .overlapping(family, start, end)
                    .map(|p| p.span().1)
                    .or_else(|| excluded.overlapping(start, end).map(|(_, e)| e));
                let Some(conflict_end) = conflict else {
                    let addr = from_u128(family, start);
                    return IpNet::new(addr, dp.size()).map_err(|_| Error::InvalidState {
                        reason: format!("default pool {dp} has an impossible size"),
                    });
                };
                // Skip to the first block after the conflict (blocks are aligned to their size,
                // because the base is a network address and size >= its prefix length).
                let next = conflict_end
                    .checked_add(1)
                    .and_then(|n| n.checked_add(block))
                    .map(|n| n & !block);
                match next {
                    Some(n) if n <= base_end && n > start => start = n,
                    _ => break,
                }
            }
        }
        if any {
            Err(Error::NoAvailablePool { space, family })
        } else {
            Err(Error::NoDefaultPools {
                space,
                family,
                example: match family {
                    IpFamily::V4 => "172.30.0.0/16",
                    IpFamily::V6 => "2001:db8:1::/64",
                },
            })
        }
    }
}

/// berth's IP address manager: the local and global address spaces with their default pools, the
/// allocated pools and the addresses allocated in them.
///
/// Pure data: no I/O, no locking (wrap it in a `Mutex` to share it). The whole state serialises with
/// serde and restores exactly; restoring checks every invariant and fails with
/// [`Error::InvalidState`] instead of accepting inconsistent state.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "IpamIn")]
pub struct Ipam {
    local: Space,
    global: Space,
}

impl Default for Ipam {
    fn default() -> Self {
        Self::new()
    }
}

impl Ipam {
    /// An allocator with Docker's default pools: local 172.17.0.0/16 .. 172.31.0.0/16 as /16s then
    /// 192.168.0.0/16 as /20s; global 10.0.0.0/8 as /24s; no IPv6 defaults.
    #[must_use]
    pub fn new() -> Self {
        Self::with_default_pools(
            DefaultPool::docker_local_defaults(),
            DefaultPool::docker_global_defaults(),
        )
    }

    /// An allocator whose default pools are replaced (dockerd's `default-address-pools` for the local
    /// space, the swarm's default address pools for the global one). Entries of both families may be
    /// mixed; they are used in the given order.
    #[must_use]
    pub fn with_default_pools(local: Vec<DefaultPool>, global: Vec<DefaultPool>) -> Self {
        Self {
            local: Space::new(local),
            global: Space::new(global),
        }
    }

    /// The default pools of an address space.
    #[must_use]
    pub fn default_pools(&self, space: AddressSpace) -> &[DefaultPool] {
        &self.space(space).default_pools
    }

    /// Replaces the default pools of an address space (for example when the daemon restarts with a
    /// new `default-address-pools` setting and restores its state). Allocated pools are kept, even if
    /// they no longer come from a default pool.
    pub fn set_default_pools(&mut self, space: AddressSpace, pools: Vec<DefaultPool>) {
        self.space_mut(space).default_pools = pools;
    }

    fn space(&self, space: AddressSpace) -> &Space {
        match space {
            AddressSpace::Local => &self.local,
            AddressSpace::Global => &self.global,
        }
    }

    fn space_mut(&mut self, space: AddressSpace) -> &mut Space {
        match space {
            AddressSpace::Local => &mut self.local,
            AddressSpace::Global => &mut self.global,
        }
    }

    /// Allocates a pool.
    ///
    /// # Errors
    /// [`Error::PoolOverlap`] if a given subnet overlaps an allocated pool of the space;
    /// [`Error::RangeOutsideSubnet`]; [`Error::NeedsSubnet`] for an ip-range or aux address without a
    /// subnet; [`Error::NoAvailablePool`] when every default pool is taken or excluded;
    /// [`Error::NoDefaultPools`] when the family has none; for aux addresses
    /// [`Error::AuxAddressOutsideSubnet`], [`Error::ReservedAddress`] and [`Error::AddressInUse`] (two
    /// names, one address). Nothing is allocated when an error is returned.
    pub fn request_pool(&mut self, req: &PoolRequest) -> Result<PoolId> {
        let space = self.space(req.space);
        let subnet = match req.subnet {
            PoolSubnet::Given(net) => {
                let subnet = net.trunc();
                let (s, e) = net_bounds(subnet);
                if let Some(p) = space.overlapping(IpFamily::of_net(subnet), s, e) {
                    return Err(Error::PoolOverlap {
                        space: req.space,
                        subnet,
                        existing: p.subnet(),
                    });
                }
                subnet
            }
            PoolSubnet::FromDefaults(family) => {
                if let Some(r) = req.ip_range {
                    return Err(Error::NeedsSubnet {
                        field: Field::IpRange,
                        value: r.to_string(),
                    });
                }
                if let Some((name, addr)) = req.aux_addresses.iter().next() {
                    return Err(Error::NeedsSubnet {
                        field: Field::AuxAddress,
                        value: format!("{name}={addr}"),
                    });
                }
                space.pick_default(req.space, family, &req.exclude)?
            }
        };
        let range = req.ip_range.map(|r| r.trunc());
        if let Some(r) = range {
            if !net_within(r, subnet) {
                return Err(Error::RangeOutsideSubnet { range: r, subnet });
            }
        }
        let mut pool = Pool::new(PoolId::new(req.space, subnet, range), req.mode);
        for (name, addr) in &req.aux_addresses {
            pool.reserve_aux(name, *addr)?;
        }
        let id = pool.id();
        self.space_mut(req.space).insert(pool);
        Ok(id)
    }

    /// Releases a pool and every address in it.
    ///
    /// # Errors
    /// [`Error::UnknownPool`] if no such pool is allocated.
    pub fn release_pool(&mut self, id: &PoolId) -> Result<()> {
        let space = self.space_mut(id.space());
        if space.get(id).is_none() {
            return Err(Error::UnknownPool { id: *id });
        }
        space.pools.remove(&Space::key(id));
        Ok(())
    }

    /// An allocated pool.
    ///
    /// # Errors
    /// [`Error::UnknownPool`] if no such pool is allocated.
    pub fn pool(&self, id: &PoolId) -> Result<&Pool> {
        self.space(id.space())
            .get(id)
            .ok_or(Error::UnknownPool { id: *id })
    }

    /// The allocated pools of an address space, IPv4 first, in address order.
    pub fn pools(&self, space: AddressSpace) -> impl Iterator<Item = &Pool> + '_ {
        self.space(space).pools.values()
    }

    /// Allocates an address in a pool; returns it with the subnet's prefix length (`172.18.0.2/16`).
    ///
    /// # Errors
    /// [`Error::UnknownPool`]; for a preferred or given gateway address [`Error::AddressOutOfRange`]
    /// (not in the subnet), [`Error::ReservedAddress`] (network, broadcast or subnet-router anycast)
    /// and [`Error::AddressInUse`]; [`Error::NoAvailableAddresses`] when the range (or, for a gateway,
    /// the subnet) is full.
    pub fn request_address(&mut self, id: &PoolId, req: AddressRequest) -> Result<IpNet> {
        let pool = self
            .space_mut(id.space())
            .get_mut(id)
            .ok_or(Error::UnknownPool { id: *id })?;
        match req {
            AddressRequest::Next => pool.allocate_next(),
            AddressRequest::Preferred(a) | AddressRequest::Gateway(Some(a)) => {
                pool.allocate_specific(a)
            }
            AddressRequest::Gateway(None) => pool.allocate_lowest_in_subnet(),
        }
    }

    /// Releases an address of a pool.
    ///
    /// # Errors
    /// [`Error::UnknownPool`]; [`Error::AddressOutOfRange`] if it is not in the subnet;
    /// [`Error::AuxAddressRelease`] for an auxiliary address; [`Error::AddressNotAllocated`].
    pub fn release_address(&mut self, id: &PoolId, address: IpAddr) -> Result<()> {
        let pool = self
            .space_mut(id.space())
            .get_mut(id)
            .ok_or(Error::UnknownPool { id: *id })?;
        pool.release(address)
    }
}

// ---- serde ----

#[derive(Serialize)]
struct SpaceOut<'a> {
    default_pools: &'a [DefaultPool],
    pools: PoolsOut<'a>,
}

struct PoolsOut<'a>(&'a Space);

impl Serialize for PoolsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.0.pools.values().map(Pool::to_repr))
    }
}

impl<'a> SpaceOut<'a> {
    fn of(space: &'a Space) -> Self {
        Self {
            default_pools: &space.default_pools,
            pools: PoolsOut(space),
        }
    }
}

#[derive(Serialize)]
struct IpamOut<'a> {
    local: SpaceOut<'a>,
    global: SpaceOut<'a>,
}

impl Serialize for Ipam {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        IpamOut {
            local: SpaceOut::of(&self.local),
            global: SpaceOut::of(&self.global),
        }
        .serialize(s)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpaceIn {
    default_pools: Vec<DefaultPool>,
    pools: Vec<PoolIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IpamIn {
    local: SpaceIn,
    global: SpaceIn,
}

impl SpaceIn {
    fn into_space(self, space: AddressSpace) -> Result<Space> {
        let mut out = Space::new(self.default_pools);
        for p in self.pools {
            let pool = Pool::from_repr(space, p)?;
            let (s, e) = pool.span();
            if let Some(other) = out.overlapping(pool.family(), s, e) {
                return Err(Error::InvalidState {
                    reason: format!(
                        "pools {} and {} overlap in {space}",
                        pool.subnet(),
                        other.subnet()
                    ),
                });
            }
            out.insert(pool);
        }
        Ok(out)
    }
}

impl TryFrom<IpamIn> for Ipam {
    type Error = Error;

    fn try_from(r: IpamIn) -> Result<Self> {
        Ok(Self {
            local: r.local.into_space(AddressSpace::Local)?,
            global: r.global.into_space(AddressSpace::Global)?,
        })
    }
}

#[cfg(test)]
mod host_exclusion_tests {
    use super::*;

    #[test]
    fn routes_but_default_ones_and_nameservers() {
        let routes = ["0.0.0.0/0", "10.0.2.0/24", "::/0", "fd00::/64"]
            .map(|r| r.parse::<IpNet>().unwrap_or_else(|e| panic!("{r}: {e}")));
        let resolv =
            "# comment\nnameserver 10.255.255.53\nnameserver fe80::1\nsearch x\nnameserver bogus\n";
        let got: Vec<String> = host_exclusions(routes, resolv)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "10.0.2.0/24",
                "fd00::/64",
                "10.255.255.53/32",
                "fe80::1/128"
            ]
        );
    }
}

//! One allocated pool: its id, its subnet and optional sub-range, and the addresses handed out.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::addr::{IpFamily, from_u128, net_bounds, net_within, to_u128};
use crate::error::{Error, Field, Reserved, Result};
use crate::interval::IntervalSet;
use crate::parse::parse_cidr;
use crate::space::AddressSpace;

/// The id of an allocated pool, libnetwork style: `SPACE/SUBNET` or `SPACE/SUBNET/RANGE`, for
/// example `LocalDefault/172.18.0.0/16` or `LocalDefault/172.28.0.0/16/172.28.5.0/24`.
///
/// Pools never overlap inside an address space, so the space and the subnet identify a pool; the
/// range is part of the id so that an id always describes its pool completely. Subnet and range are
/// kept normalised (host bits cleared). The id serialises as that string and parses back with
/// [`FromStr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolId {
    space: AddressSpace,
    subnet: IpNet,
    range: Option<IpNet>,
}

impl PoolId {
    /// The id of the pool with this subnet (and range) in `space`. Host bits of `subnet` and `range`
    /// are cleared.
    #[must_use]
    pub fn new(space: AddressSpace, subnet: IpNet, range: Option<IpNet>) -> Self {
        Self {
            space,
            subnet: subnet.trunc(),
            range: range.map(|r| r.trunc()),
        }
    }

    /// The address space of the pool.
    #[must_use]
    pub fn space(&self) -> AddressSpace {
        self.space
    }

    /// The pool's subnet.
    #[must_use]
    pub fn subnet(&self) -> IpNet {
        self.subnet
    }

    /// The pool's sub-range (`--ip-range`), if it has one.
    #[must_use]
    pub fn range(&self) -> Option<IpNet> {
        self.range
    }
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.space, self.subnet)?;
        if let Some(r) = self.range {
            write!(f, "/{r}")?;
        }
        Ok(())
    }
}

impl FromStr for PoolId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidPoolId {
            input: s.to_owned(),
            reason,
        };
        let parts: Vec<&str> = s.split('/').collect();
        let (space, subnet, range) = match parts.as_slice() {
            [space, a, p] => (space, format!("{a}/{p}"), None),
            [space, a, p, ra, rp] => (space, format!("{a}/{p}"), Some(format!("{ra}/{rp}"))),
            _ => return Err(bad(format!("it has {} '/'-separated parts", parts.len()))),
        };
        let space: AddressSpace = space.parse().map_err(|_| {
            bad(format!(
                "unknown address space {space:?} (expected LocalDefault or GlobalDefault)"
            ))
        })?;
        let subnet = parse_cidr(Field::PoolId, &subnet).map_err(|e| bad(e.to_string()))?;
        let range = match range {
            Some(r) => Some(parse_cidr(Field::PoolId, &r).map_err(|e| bad(e.to_string()))?),
            None => None,
        };
        if let Some(r) = range {
            if !net_within(r, subnet) {
                return Err(bad(format!("range {r} is not inside subnet {subnet}")));
            }
        }
        Ok(Self::new(space, subnet, range))
    }
}

impl Serialize for PoolId {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PoolId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How a pool picks the next address when none is asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllocationMode {
    /// The lowest free address, Docker's default: a released address is reused first.
    #[default]
    LowestFree,
    /// Round robin (libnetwork's serial allocation): the first free address after the one handed out
    /// last, wrapping to the start of the range; a released address is reused as late as possible.
    Serial,
}

/// An allocated pool.
///
/// Memory is proportional to the number of runs of consecutive allocated addresses, not to the size
/// of the subnet: a 10.0.0.0/8 or an IPv6 /64 pool costs nothing until addresses are allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    id: PoolId,
    family: IpFamily,
    /// The subnet's network address as a number.
    base: u128,
    /// The subnet's last offset (size - 1).
    last: u128,
    mode: AllocationMode,
    aux: BTreeMap<String, IpAddr>,
    /// Allocated offsets from `base` (aux addresses included).
    allocated: IntervalSet,
    /// Offset handed out last by a serial-mode next request.
    last_serial: Option<u128>,
}

impl Pool {
    /// An empty pool (no addresses allocated, no aux addresses yet).
    pub(crate) fn new(id: PoolId, mode: AllocationMode) -> Self {
        let family = IpFamily::of_net(id.subnet);
        let (base, end) = net_bounds(id.subnet);
        Self {
            id,
            family,
            base,
            last: end - base,
            mode,
            aux: BTreeMap::new(),
            allocated: IntervalSet::new(),
            last_serial: None,
        }
    }

    /// The pool's id.
    #[must_use]
    pub fn id(&self) -> PoolId {
        self.id
    }

    /// The pool's subnet.
    #[must_use]
    pub fn subnet(&self) -> IpNet {
        self.id.subnet
    }

    /// The pool's sub-range (`--ip-range`), if any.
    #[must_use]
    pub fn ip_range(&self) -> Option<IpNet> {
        self.id.range
    }

    /// The pool's address family.
    #[must_use]
    pub fn family(&self) -> IpFamily {
        self.family
    }

    /// The pool's allocation mode.
    #[must_use]
    pub fn mode(&self) -> AllocationMode {
        self.mode
    }

    /// The auxiliary addresses reserved at creation, by name.
    #[must_use]
    pub fn aux_addresses(&self) -> &BTreeMap<String, IpAddr> {
        &self.aux
    }

    /// How many addresses are allocated (gateway and aux addresses included).
    #[must_use]
    pub fn allocated_count(&self) -> u128 {
        self.allocated.count()
    }

    /// Whether `addr` is allocated in this pool.
    #[must_use]
    pub fn is_allocated(&self, addr: IpAddr) -> bool {
        self.offset_of(addr)
            .is_some_and(|o| self.allocated.contains(o))
    }

    /// The allocated addresses as inclusive runs `(first, last)`, ascending.
    pub fn allocated_ranges(&self) -> impl Iterator<Item = (IpAddr, IpAddr)> + '_ {
        self.allocated
            .runs()
            .map(|(s, e)| (self.addr(s), self.addr(e)))
    }

    /// The address handed out last by a serial-mode request, if any.
    #[must_use]
    pub fn last_serial(&self) -> Option<IpAddr> {
        self.last_serial.map(|o| self.addr(o))
    }

    /// Whether the address at this offset is reserved in the subnet, and why.
    pub(crate) fn reserved(&self, off: u128) -> Option<Reserved> {
        let prefix = self.id.subnet.prefix_len();
        match self.family {
            IpFamily::V4 if prefix <= 30 => {
                if off == 0 {
                    Some(Reserved::Network)
                } else if off == self.last {
                    Some(Reserved::Broadcast)
                } else {
                    None
                }
            }
            IpFamily::V6 if prefix <= 126 && off == 0 => Some(Reserved::SubnetRouterAnycast),
            _ => None,
        }
    }

    /// First and last assignable offsets of the whole subnet (may be empty: `lo > hi`).
    fn usable(&self) -> (u128, u128) {
        let lo = u128::from(self.reserved(0).is_some());
        let hi = if self.reserved(self.last).is_some() {
            self.last - 1
        } else {
            self.last
        };
        (lo, hi)
    }

    /// First and last offsets that next requests choose from: the ip-range, or the subnet, without
    /// the reserved addresses.
    fn next_bounds(&self) -> (u128, u128) {
        let (lo, hi) = self.usable();
        match self.id.range {
            Some(r) => {
                let (s, e) = net_bounds(r);
                (lo.max(s - self.base), hi.min(e - self.base))
            }
            None => (lo, hi),
        }
    }

    /// The offset of `addr` in the subnet, if it is inside.
    fn offset_of(&self, addr: IpAddr) -> Option<u128> {
        if IpFamily::of(addr) != self.family {
            return None;
        }
        let n = to_u128(addr);
        (n >= self.base && n - self.base <= self.last).then(|| n - self.base)
    }

    fn addr(&self, off: u128) -> IpAddr {
        from_u128(self.family, self.base + off)
    }

    /// The address at `off` with the subnet's prefix length.
    fn with_prefix(&self, off: u128) -> IpNet {
        let a = self.addr(off);
        // The prefix comes from a valid network of the same family, so this cannot fail.
        IpNet::new(a, self.id.subnet.prefix_len()).unwrap_or_else(|_| IpNet::from(a))
    }

    /// Offset of `addr` if it is inside the subnet and assignable.
    fn check_assignable(&self, addr: IpAddr) -> Result<u128> {
        let off = self.offset_of(addr).ok_or(Error::AddressOutOfRange {
            address: addr,
            pool: self.id,
            subnet: self.id.subnet,
        })?;
        if let Some(kind) = self.reserved(off) {
            return Err(Error::ReservedAddress {
                address: addr,
                pool: self.id,
                kind,
            });
        }
        Ok(off)
    }

    /// Reserves an auxiliary address (at pool creation).
    pub(crate) fn reserve_aux(&mut self, name: &str, addr: IpAddr) -> Result<()> {
        if self.offset_of(addr).is_none() {
            return Err(Error::AuxAddressOutsideSubnet {
                name: name.to_owned(),
                address: addr,
                subnet: self.id.subnet,
            });
        }
        self.allocate_specific(addr)?;
        self.aux.insert(name.to_owned(), addr);
        Ok(())
    }

    /// Allocates exactly `addr` (preferred address or given gateway): it only has to be in the subnet.
    pub(crate) fn allocate_specific(&mut self, addr: IpAddr) -> Result<IpNet> {
        let off = self.check_assignable(addr)?;
        if !self.allocated.insert(off) {
            return Err(Error::AddressInUse {
                address: addr,
                pool: self.id,
            });
        }
        Ok(self.with_prefix(off))
    }

    /// Allocates the lowest free assignable address of the whole subnet (the gateway default).
    pub(crate) fn allocate_lowest_in_subnet(&mut self) -> Result<IpNet> {
        let (lo, hi) = self.usable();
        let off = self
            .allocated
            .first_free(lo, hi)
            .ok_or(Error::NoAvailableAddresses { pool: self.id })?;
        self.allocated.insert(off);
        Ok(self.with_prefix(off))
    }

    /// Allocates the next address of the range according to the pool's mode.
    pub(crate) fn allocate_next(&mut self) -> Result<IpNet> {
        let (lo, hi) = self.next_bounds();
        let off = match self.mode {
            AllocationMode::LowestFree => self.allocated.first_free(lo, hi),
            AllocationMode::Serial => {
                let start = match self.last_serial {
                    Some(l) if l >= lo && l < hi => l + 1,
                    _ => lo,
                };
                self.allocated
                    .first_free(start, hi)
                    .or_else(|| self.allocated.first_free(lo, hi))
            }
        }
        .ok_or(Error::NoAvailableAddresses { pool: self.id })?;
        self.allocated.insert(off);
        if self.mode == AllocationMode::Serial {
            self.last_serial = Some(off);
        }
        Ok(self.with_prefix(off))
    }

    /// Releases an allocated address (not an auxiliary one).
    pub(crate) fn release(&mut self, addr: IpAddr) -> Result<()> {
        let off = self.offset_of(addr).ok_or(Error::AddressOutOfRange {
            address: addr,
            pool: self.id,
            subnet: self.id.subnet,
        })?;
        if let Some((name, _)) = self.aux.iter().find(|&(_, &a)| a == addr) {
            return Err(Error::AuxAddressRelease {
                address: addr,
                name: name.clone(),
                pool: self.id,
            });
        }
        if !self.allocated.remove(off) {
            return Err(Error::AddressNotAllocated {
                address: addr,
                pool: self.id,
            });
        }
        Ok(())
    }

    /// First and last address of the subnet as numbers.
    pub(crate) fn span(&self) -> (u128, u128) {
        (self.base, self.base + self.last)
    }

    /// The serialised form.
    pub(crate) fn to_repr(&self) -> PoolOut<'_> {
        PoolOut {
            subnet: self.id.subnet,
            ip_range: self.id.range,
            mode: self.mode,
            aux_addresses: &self.aux,
            allocated: Runs(self),
            last_serial: self.last_serial(),
        }
    }

    /// Rebuilds a pool from its serialised form, checking every invariant.
    pub(crate) fn from_repr(space: AddressSpace, r: PoolIn) -> Result<Self> {
        let bad = |reason: String| Error::InvalidState { reason };
        if r.subnet.trunc() != r.subnet {
            return Err(bad(format!("pool subnet {} has host bits set", r.subnet)));
        }
        if let Some(range) = r.ip_range {
            if range.trunc() != range || !net_within(range, r.subnet) {
                return Err(bad(format!(
                    "pool {}: ip-range {range} is not a network inside the subnet",
                    r.subnet
                )));
            }
        }
        let mut pool = Self::new(PoolId::new(space, r.subnet, r.ip_range), r.mode);
        let id = pool.id;
        let (lo, hi) = pool.usable();
        for (a, b) in r.allocated {
            let (Some(s), Some(e)) = (pool.offset_of(a), pool.offset_of(b)) else {
                return Err(bad(format!(
                    "pool {id}: allocated run {a}-{b} is outside the subnet"
                )));
            };
            if s > e || s < lo || e > hi {
                return Err(bad(format!(
                    "pool {id}: allocated run {a}-{b} is reversed or covers a reserved address"
                )));
            }
            pool.allocated.insert_range(s, e);
        }
        let mut aux_seen = std::collections::BTreeSet::new();
        for (name, addr) in r.aux_addresses {
            if !pool.is_allocated(addr) || !aux_seen.insert(addr) {
                return Err(bad(format!(
                    "pool {id}: aux-address {name}={addr} is not allocated or is used twice"
                )));
            }
            pool.aux.insert(name, addr);
        }
        if let Some(l) = r.last_serial {
            let off = pool.offset_of(l).ok_or_else(|| {
                bad(format!(
                    "pool {id}: last serial address {l} is outside the subnet"
                ))
            })?;
            pool.last_serial = Some(off);
        }
        Ok(pool)
    }
}

/// Serialised form of a pool (borrowing).
#[derive(Serialize)]
pub(crate) struct PoolOut<'a> {
    subnet: IpNet,
    ip_range: Option<IpNet>,
    mode: AllocationMode,
    aux_addresses: &'a BTreeMap<String, IpAddr>,
    allocated: Runs<'a>,
    last_serial: Option<IpAddr>,
}

/// The allocated runs as `[first, last]` address pairs.
pub(crate) struct Runs<'a>(&'a Pool);

impl Serialize for Runs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.0.allocated_ranges())
    }
}

/// Serialised form of a pool (owned, before validation).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolIn {
    subnet: IpNet,
    ip_range: Option<IpNet>,
    mode: AllocationMode,
    aux_addresses: BTreeMap<String, IpAddr>,
    allocated: Vec<(IpAddr, IpAddr)>,
    last_serial: Option<IpAddr>,
}

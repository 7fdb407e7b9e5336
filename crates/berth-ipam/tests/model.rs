//! Model-based tests: random sequences of pool and address operations (IPv4 and IPv6, both modes,
//! with and without ip-ranges and aux addresses, default pools with exclusions) are run against the
//! allocator and against a deliberately naive reference model (a set of allocated offsets scanned
//! linearly). Every result must match exactly, and invariants are checked after every step. The state
//! is round-tripped through serde_json at random points and the run continues on the restored copy.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use berth_ipam::{
    AddressRequest, AddressSpace, AllocationMode, DefaultPool, Error, IpFamily, Ipam, PoolId,
    PoolRequest,
};
use ipnet::IpNet;
use proptest::prelude::*;

const SPACE: AddressSpace = AddressSpace::Local;

/// Fixed pools: subnet, ip-range, aux offsets. Index 6 and 7 overlap default candidates.
const FIXED: [(&str, &str, &[u128]); 8] = [
    ("172.20.0.0/26", "172.20.0.16/28", &[3, 40]),
    ("172.21.0.0/30", "172.21.0.0/31", &[2]),
    ("172.22.0.0/31", "172.22.0.1/32", &[]),
    ("2001:db8::/120", "2001:db8::80/121", &[0x81]),
    ("2001:db8:1::/126", "2001:db8:1::/127", &[3]),
    ("2001:db8:2::/127", "2001:db8:2::1/128", &[]),
    ("10.0.0.64/27", "10.0.0.80/28", &[1]),
    ("fd00::100/121", "fd00::140/122", &[0x41]),
];

/// Default pools: 10.0.0.0/24 cut into four /26s, fd00::/119 into four /121s.
fn defaults() -> Vec<DefaultPool> {
    vec![
        DefaultPool::new(net("10.0.0.0/24"), 26).expect("valid"),
        DefaultPool::new(net("fd00::/119"), 121).expect("valid"),
    ]
}

fn default_candidates(family: IpFamily) -> Vec<IpNet> {
    match family {
        IpFamily::V4 => [
            "10.0.0.0/26",
            "10.0.0.64/26",
            "10.0.0.128/26",
            "10.0.0.192/26",
        ]
        .map(net)
        .to_vec(),
        _ => [
            "fd00::/121",
            "fd00::80/121",
            "fd00::100/121",
            "fd00::180/121",
        ]
        .map(net)
        .to_vec(),
    }
}

fn net(s: &str) -> IpNet {
    s.parse().expect("valid network literal")
}

fn num(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn addr(family: IpFamily, n: u128) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::from(n as u32)),
        _ => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

fn family(n: IpNet) -> IpFamily {
    match n {
        IpNet::V4(_) => IpFamily::V4,
        IpNet::V6(_) => IpFamily::V6,
    }
}

fn bounds(n: IpNet) -> (u128, u128) {
    (num(n.network()), num(n.broadcast()))
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    family(a) == family(b) && {
        let (a0, a1) = bounds(a);
        let (b0, b1) = bounds(b);
        a0 <= b1 && b0 <= a1
    }
}

/// The reference model of one pool: offsets from the network address, scanned linearly.
#[derive(Debug, Clone)]
struct ModelPool {
    id: PoolId,
    family: IpFamily,
    base: u128,
    size: u128,
    range: (u128, u128),
    serial: bool,
    allocated: BTreeSet<u128>,
    aux: BTreeSet<u128>,
    last_serial: Option<u128>,
}

impl ModelPool {
    fn new(id: PoolId, serial: bool) -> Self {
        let subnet = id.subnet();
        let (b, e) = bounds(subnet);
        let range = id.range().map_or((0, e - b), |r| {
            let (rb, re) = bounds(r);
            (rb - b, re - b)
        });
        Self {
            id,
            family: family(subnet),
            base: b,
            size: e - b + 1,
            range,
            serial,
            allocated: BTreeSet::new(),
            aux: BTreeSet::new(),
            last_serial: None,
        }
    }

    fn reserved(&self, off: u128) -> bool {
        let prefix = self.id.subnet().prefix_len();
        match self.family {
            IpFamily::V4 => prefix <= 30 && (off == 0 || off == self.size - 1),
            _ => prefix <= 126 && off == 0,
        }
    }

    fn offset(&self, a: IpAddr) -> Option<u128> {
        let n = num(a);
        (IpFamily::of(a) == self.family && n >= self.base && n - self.base < self.size)
            .then(|| n - self.base)
    }

    fn addr(&self, off: u128) -> IpAddr {
        addr(self.family, self.base + off)
    }

    fn free(&self, off: u128) -> bool {
        !self.reserved(off) && !self.allocated.contains(&off)
    }

    fn next(&mut self) -> Option<IpAddr> {
        let (lo, hi) = self.range;
        let order: Vec<u128> = match (self.serial, self.last_serial) {
            (true, Some(l)) if l >= lo && l <= hi => (l + 1..=hi).chain(lo..=l).collect(),
            _ => (lo..=hi).collect(),
        };
        let off = order.into_iter().find(|&o| self.free(o))?;
        self.allocated.insert(off);
        if self.serial {
            self.last_serial = Some(off);
        }
        Some(self.addr(off))
    }

    fn gateway(&mut self) -> Option<IpAddr> {
        let off = (0..self.size).find(|&o| self.free(o))?;
        self.allocated.insert(off);
        Some(self.addr(off))
    }

    /// Outcome of a specific request: Ok(addr) or the expected error's name.
    fn specific(&mut self, a: IpAddr) -> Result<IpAddr, &'static str> {
        let off = self.offset(a).ok_or("AddressOutOfRange")?;
        if self.reserved(off) {
            return Err("ReservedAddress");
        }
        if !self.allocated.insert(off) {
            return Err("AddressInUse");
        }
        Ok(a)
    }

    fn release(&mut self, a: IpAddr) -> Result<(), &'static str> {
        let off = self.offset(a).ok_or("AddressOutOfRange")?;
        if self.aux.contains(&off) {
            return Err("AuxAddressRelease");
        }
        if !self.allocated.remove(&off) {
            return Err("AddressNotAllocated");
        }
        Ok(())
    }
}

fn error_name(e: &Error) -> &'static str {
    match e {
        Error::AddressOutOfRange { .. } => "AddressOutOfRange",
        Error::ReservedAddress { .. } => "ReservedAddress",
        Error::AddressInUse { .. } => "AddressInUse",
        Error::AuxAddressRelease { .. } => "AuxAddressRelease",
        Error::AddressNotAllocated { .. } => "AddressNotAllocated",
        Error::NoAvailableAddresses { .. } => "NoAvailableAddresses",
        Error::PoolOverlap { .. } => "PoolOverlap",
        Error::NoAvailablePool { .. } => "NoAvailablePool",
        Error::UnknownPool { .. } => "UnknownPool",
        other => panic!("unexpected error {other}"),
    }
}

#[derive(Debug, Clone)]
enum Op {
    CreateFixed {
        idx: usize,
        serial: bool,
        range: bool,
        aux: bool,
    },
    CreateDefault {
        v6: bool,
        serial: bool,
        exclude: u8,
    },
    ReleasePool {
        target: usize,
    },
    ReleaseUnknown {
        idx: usize,
    },
    Next {
        target: usize,
    },
    Gateway {
        target: usize,
    },
    Preferred {
        target: usize,
        off: u16,
    },
    GivenGateway {
        target: usize,
        off: u16,
    },
    Release {
        target: usize,
        off: u16,
    },
    RoundTrip,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..FIXED.len(), any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(idx, serial, range, aux)| Op::CreateFixed { idx, serial, range, aux }),
        1 => (any::<bool>(), any::<bool>(), any::<u8>())
            .prop_map(|(v6, serial, exclude)| Op::CreateDefault { v6, serial, exclude }),
        1 => any::<usize>().prop_map(|target| Op::ReleasePool { target }),
        1 => (0..FIXED.len()).prop_map(|idx| Op::ReleaseUnknown { idx }),
        8 => any::<usize>().prop_map(|target| Op::Next { target }),
        1 => any::<usize>().prop_map(|target| Op::Gateway { target }),
        3 => (any::<usize>(), any::<u16>()).prop_map(|(target, off)| Op::Preferred { target, off }),
        1 => (any::<usize>(), any::<u16>()).prop_map(|(target, off)| Op::GivenGateway { target, off }),
        5 => (any::<usize>(), any::<u16>()).prop_map(|(target, off)| Op::Release { target, off }),
        1 => Just(Op::RoundTrip),
    ]
}

/// An address for an offset op: mostly inside the pool, sometimes just outside it, sometimes in the
/// other family.
fn pick_addr(m: &ModelPool, off: u16) -> IpAddr {
    let off = u128::from(off);
    match off % 16 {
        0 => addr(
            if m.family == IpFamily::V4 {
                IpFamily::V6
            } else {
                IpFamily::V4
            },
            m.base + off % m.size,
        ),
        1 => addr(m.family, m.base + m.size + off % 4),
        _ => m.addr(off % m.size),
    }
}

fn check_invariants(ipam: &Ipam, live: &[ModelPool]) -> Result<(), TestCaseError> {
    prop_assert_eq!(ipam.pools(SPACE).count(), live.len());
    for m in live {
        let pool = ipam
            .pool(&m.id)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut seen = BTreeSet::new();
        for (a, b) in pool.allocated_ranges() {
            for n in num(a)..=num(b) {
                let off = m
                    .offset(addr(m.family, n))
                    .ok_or_else(|| TestCaseError::fail("outside"))?;
                prop_assert!(
                    !m.reserved(off),
                    "reserved offset {} allocated in {}",
                    off,
                    m.id
                );
                prop_assert!(seen.insert(off), "duplicate offset {} in {}", off, m.id);
            }
        }
        prop_assert_eq!(&seen, &m.allocated, "allocated set differs in {}", m.id);
        prop_assert_eq!(pool.allocated_count(), m.allocated.len() as u128);
        prop_assert_eq!(pool.last_serial(), m.last_serial.map(|o| m.addr(o)));
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut ipam = Ipam::with_default_pools(defaults(), vec![]);
    let mut live: Vec<ModelPool> = Vec::new();
    for op in ops {
        match op {
            Op::CreateFixed {
                idx,
                serial,
                range,
                aux,
            } => {
                let (subnet, r, aux_offs) = FIXED[idx];
                let subnet = net(subnet);
                let mode = if serial {
                    AllocationMode::Serial
                } else {
                    AllocationMode::LowestFree
                };
                let mut req = PoolRequest::new(SPACE, subnet).with_mode(mode);
                if range {
                    req = req.with_ip_range(net(r));
                }
                let mut m =
                    ModelPool::new(PoolId::new(SPACE, subnet, range.then(|| net(r))), serial);
                if aux {
                    for (i, &o) in aux_offs.iter().enumerate() {
                        req = req.with_aux_address(format!("aux{i}"), m.addr(o));
                        m.allocated.insert(o);
                        m.aux.insert(o);
                    }
                }
                let got = ipam.request_pool(&req);
                if live.iter().any(|p| overlaps(p.id.subnet(), subnet)) {
                    prop_assert_eq!(got.map_err(|e| error_name(&e)), Err("PoolOverlap"));
                } else {
                    prop_assert_eq!(got, Ok(m.id));
                    live.push(m);
                }
            }
            Op::CreateDefault {
                v6,
                serial,
                exclude,
            } => {
                let fam = if v6 { IpFamily::V6 } else { IpFamily::V4 };
                let cands = default_candidates(fam);
                // Bit i excludes a /28-sized piece in the middle of candidate i.
                let excl: Vec<IpNet> = (0..4)
                    .filter(|i| exclude & (1 << i) != 0)
                    .map(|i| {
                        let c = cands[i];
                        let (b, _) = bounds(c);
                        IpNet::new(addr(fam, b + 16), c.max_prefix_len() - 4)
                            .expect("valid prefix")
                            .trunc()
                    })
                    .collect();
                let want = cands
                    .iter()
                    .enumerate()
                    .find(|&(i, c)| {
                        exclude & (1 << i) == 0 && !live.iter().any(|p| overlaps(p.id.subnet(), *c))
                    })
                    .map(|(_, c)| *c);
                let mode = if serial {
                    AllocationMode::Serial
                } else {
                    AllocationMode::LowestFree
                };
                let req = PoolRequest::from_defaults(SPACE, fam)
                    .with_mode(mode)
                    .with_exclude(excl);
                let got = ipam.request_pool(&req);
                match want {
                    Some(c) => {
                        let id = PoolId::new(SPACE, c, None);
                        prop_assert_eq!(got, Ok(id));
                        live.push(ModelPool::new(id, serial));
                    }
                    None => {
                        prop_assert_eq!(got.map_err(|e| error_name(&e)), Err("NoAvailablePool"))
                    }
                }
            }
            Op::ReleasePool { target } => {
                if live.is_empty() {
                    continue;
                }
                let m = live.remove(target % live.len());
                prop_assert_eq!(ipam.release_pool(&m.id), Ok(()));
                prop_assert_eq!(
                    ipam.release_pool(&m.id).map_err(|e| error_name(&e)),
                    Err("UnknownPool")
                );
            }
            Op::ReleaseUnknown { idx } => {
                let (subnet, r, _) = FIXED[idx];
                // The id of a fixed pool with the range flipped relative to any live one.
                let with = PoolId::new(SPACE, net(subnet), Some(net(r)));
                let without = PoolId::new(SPACE, net(subnet), None);
                for id in [with, without] {
                    if !live.iter().any(|p| p.id == id) {
                        prop_assert_eq!(
                            ipam.release_pool(&id).map_err(|e| error_name(&e)),
                            Err("UnknownPool")
                        );
                        let req = ipam.request_address(&id, AddressRequest::Next);
                        prop_assert_eq!(req.map_err(|e| error_name(&e)), Err("UnknownPool"));
                    }
                }
            }
            Op::Next { target } | Op::Gateway { target } if !live.is_empty() => {
                let i = target % live.len();
                let m = &mut live[i];
                let (want, req) = match op {
                    Op::Next { .. } => (m.next(), AddressRequest::Next),
                    _ => (m.gateway(), AddressRequest::Gateway(None)),
                };
                let got = ipam.request_address(&m.id, req);
                match want {
                    Some(a) => {
                        let got = got.map_err(|e| TestCaseError::fail(e.to_string()))?;
                        prop_assert_eq!(got.addr(), a);
                        prop_assert_eq!(got.prefix_len(), m.id.subnet().prefix_len());
                        if matches!(op, Op::Next { .. }) {
                            let off = m.offset(a).unwrap_or(u128::MAX);
                            prop_assert!(
                                off >= m.range.0 && off <= m.range.1,
                                "next outside range"
                            );
                        }
                    }
                    None => prop_assert_eq!(
                        got.map_err(|e| error_name(&e)),
                        Err("NoAvailableAddresses")
                    ),
                }
            }
            Op::Preferred { target, off } | Op::GivenGateway { target, off }
                if !live.is_empty() =>
            {
                let i = target % live.len();
                let m = &mut live[i];
                let a = pick_addr(m, off);
                let req = match op {
                    Op::Preferred { .. } => AddressRequest::Preferred(a),
                    _ => AddressRequest::Gateway(Some(a)),
                };
                let want = m.specific(a);
                let got = ipam
                    .request_address(&m.id, req)
                    .map(|n| n.addr())
                    .map_err(|e| error_name(&e));
                prop_assert_eq!(got, want);
            }
            Op::Release { target, off } if !live.is_empty() => {
                let i = target % live.len();
                let m = &mut live[i];
                // Half of the releases target an allocated address, so pools drain as well as fill.
                let a = match m
                    .allocated
                    .iter()
                    .nth(usize::from(off) % (m.allocated.len() * 2 + 1))
                {
                    Some(&o) => m.addr(o),
                    None => pick_addr(m, off),
                };
                let want = m.release(a);
                prop_assert_eq!(
                    ipam.release_address(&m.id, a).map_err(|e| error_name(&e)),
                    want
                );
            }
            Op::RoundTrip => {
                let json =
                    serde_json::to_string(&ipam).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let back: Ipam =
                    serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&back, &ipam);
                ipam = back;
            }
            _ => {}
        }
        check_invariants(&ipam, &live)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn allocator_matches_reference_model(ops in proptest::collection::vec(op(), 1..300)) {
        run(ops)?;
    }
}

/// A long deterministic run that fills and drains every fixed pool in both modes.
#[test]
fn fill_and_drain_every_fixed_pool() {
    for serial in [false, true] {
        for range in [false, true] {
            let mut ops = Vec::new();
            for idx in 0..FIXED.len() {
                ops.push(Op::CreateFixed {
                    idx,
                    serial,
                    range,
                    aux: true,
                });
            }
            for t in 0..3000 {
                ops.push(Op::Next { target: t });
                if t % 3 == 0 {
                    ops.push(Op::Release {
                        target: t / 3,
                        off: (t as u16).wrapping_mul(7),
                    });
                }
                if t % 500 == 0 {
                    ops.push(Op::RoundTrip);
                }
            }
            run(ops).unwrap();
        }
    }
}

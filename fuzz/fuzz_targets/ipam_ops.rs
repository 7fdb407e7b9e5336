//! Arbitrary sequences of pool and address operations on berth-ipam. Asserted after every step: no
//! panic, no address handed out twice, every address inside its subnet (and ip-range for next
//! requests) and never a reserved one, allocated counts match a shadow copy, and the whole state
//! round-trips through serde_json to an equal allocator.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use berth_ipam::ipnet::IpNet;
use berth_ipam::{
    AddressRequest, AddressSpace, AllocationMode, DefaultPool, IpFamily, Ipam, PoolId, PoolRequest,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Net {
    v6: bool,
    /// Use the whole address and prefix range instead of a small crowded region.
    wild: bool,
    bits: u128,
    prefix: u8,
}

impl Net {
    fn get(&self) -> IpNet {
        let (raw, prefix) = match (self.v6, self.wild) {
            (false, false) => (0x0a00_0000 | (self.bits & 0xffff), 16 + self.prefix % 17),
            (false, true) => (self.bits & 0xffff_ffff, self.prefix % 33),
            (true, false) => (
                0xfd00_u128 << 112 | (self.bits & 0xffff),
                112 + self.prefix % 17,
            ),
            (true, true) => (self.bits, self.prefix % 129),
        };
        let addr = to_addr(self.v6, raw);
        IpNet::new(addr, prefix).expect("prefix is in range")
    }
}

fn to_addr(v6: bool, n: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    }
}

fn num(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn bounds(n: IpNet) -> (u128, u128) {
    (num(n.network()), num(n.broadcast()))
}

#[derive(Arbitrary, Debug)]
enum Op {
    CreatePool {
        global: bool,
        subnet: Net,
        range: Option<(u8, u128)>,
        serial: bool,
        aux: Vec<(u8, u128)>,
    },
    CreateDefault {
        global: bool,
        v6: bool,
        serial: bool,
        exclude: Vec<Net>,
    },
    ReleasePool {
        target: u8,
    },
    Next {
        target: u8,
    },
    Gateway {
        target: u8,
        given: Option<u128>,
    },
    Preferred {
        target: u8,
        off: u128,
    },
    Release {
        target: u8,
        off: u128,
        from_shadow: bool,
    },
    RoundTrip,
}

struct Shadow {
    id: PoolId,
    allocated: BTreeSet<u128>,
}

fn space(global: bool) -> AddressSpace {
    if global {
        AddressSpace::Global
    } else {
        AddressSpace::Local
    }
}

fn reserved(subnet: IpNet, n: u128) -> bool {
    let (b, e) = bounds(subnet);
    match subnet {
        IpNet::V4(_) => subnet.prefix_len() <= 30 && (n == b || n == e),
        IpNet::V6(_) => subnet.prefix_len() <= 126 && n == b,
    }
}

/// An address in (or around) the subnet of a pool.
fn addr_in(subnet: IpNet, off: u128) -> IpAddr {
    let (b, e) = bounds(subnet);
    let span = e - b;
    let n = if off & 0xff == 0xff {
        off
    } else {
        b + if span == u128::MAX {
            off
        } else {
            off % (span + 1)
        }
    };
    to_addr(matches!(subnet, IpNet::V6(_)), n)
}

fn check(ipam: &Ipam, shadows: &[Shadow]) {
    for s in shadows {
        let pool = ipam.pool(&s.id).expect("live pool is known");
        assert_eq!(
            pool.allocated_count(),
            s.allocated.len() as u128,
            "count of {}",
            s.id
        );
    }
    let n = ipam.pools(AddressSpace::Local).count() + ipam.pools(AddressSpace::Global).count();
    assert_eq!(n, shadows.len());
}

fn record(shadow: &mut Shadow, got: IpNet, next: bool) {
    let subnet = shadow.id.subnet();
    let a = got.addr();
    assert!(subnet.contains(&a), "{a} outside {subnet}");
    assert_eq!(got.prefix_len(), subnet.prefix_len());
    if let (true, Some(r)) = (next, shadow.id.range()) {
        assert!(r.contains(&a), "next {a} outside range {r}");
    }
    assert!(
        !reserved(subnet, num(a)),
        "reserved {a} handed out in {subnet}"
    );
    assert!(
        shadow.allocated.insert(num(a)),
        "{a} handed out twice in {}",
        shadow.id
    );
}

fuzz_target!(|ops: Vec<Op>| {
    let mut local = DefaultPool::docker_local_defaults();
    local.push(DefaultPool::new("fd00::/104".parse().expect("net"), 112).expect("valid"));
    let mut ipam = Ipam::with_default_pools(local, DefaultPool::docker_global_defaults());
    let mut shadows: Vec<Shadow> = Vec::new();
    for op in ops.into_iter().take(256) {
        match op {
            Op::CreatePool {
                global,
                subnet,
                range,
                serial,
                aux,
            } => {
                let subnet = subnet.get();
                let mut req = PoolRequest::new(space(global), subnet).with_mode(if serial {
                    AllocationMode::Serial
                } else {
                    AllocationMode::LowestFree
                });
                if let Some((extra, off)) = range {
                    let p = subnet
                        .prefix_len()
                        .saturating_add(extra % 8)
                        .min(subnet.max_prefix_len());
                    let r = IpNet::new(addr_in(subnet, off), p).expect("prefix in range");
                    req = req.with_ip_range(r);
                }
                let mut aux_map = BTreeMap::new();
                for (name, off) in aux.into_iter().take(4) {
                    let a = addr_in(subnet, off);
                    req = req.with_aux_address(format!("a{name}"), a);
                    aux_map.insert(format!("a{name}"), a);
                }
                let before = ipam.clone();
                match ipam.request_pool(&req) {
                    Ok(id) => {
                        assert_eq!(id.subnet(), subnet.trunc());
                        let (s, e) = bounds(id.subnet());
                        for other in &shadows {
                            let (os, oe) = bounds(other.id.subnet());
                            let same_family = matches!(
                                (other.id.subnet(), id.subnet()),
                                (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
                            );
                            assert!(
                                other.id.space() != id.space() || !same_family || oe < s || e < os,
                                "overlap"
                            );
                        }
                        let pool = ipam.pool(&id).expect("new pool");
                        assert_eq!(pool.aux_addresses(), &aux_map);
                        let allocated: BTreeSet<u128> = aux_map.values().map(|a| num(*a)).collect();
                        for a in aux_map.values() {
                            assert!(!reserved(id.subnet(), num(*a)));
                        }
                        shadows.push(Shadow { id, allocated });
                    }
                    Err(e) => {
                        let _ = e.to_string();
                        assert_eq!(ipam, before, "a failed pool request changed the state");
                    }
                }
            }
            Op::CreateDefault {
                global,
                v6,
                serial,
                exclude,
            } => {
                let family = if v6 { IpFamily::V6 } else { IpFamily::V4 };
                let exclude: Vec<IpNet> = exclude.iter().take(8).map(Net::get).collect();
                let req = PoolRequest::from_defaults(space(global), family)
                    .with_mode(if serial {
                        AllocationMode::Serial
                    } else {
                        AllocationMode::LowestFree
                    })
                    .with_exclude(exclude.clone());
                match ipam.request_pool(&req) {
                    Ok(id) => {
                        let (s, e) = bounds(id.subnet());
                        for x in &exclude {
                            let (xs, xe) = bounds(*x);
                            let same = matches!(
                                (x, id.subnet()),
                                (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
                            );
                            assert!(
                                !same || xe < s || e < xs,
                                "default pool {} overlaps excluded {x}",
                                id.subnet()
                            );
                        }
                        shadows.push(Shadow {
                            id,
                            allocated: BTreeSet::new(),
                        });
                    }
                    Err(e) => {
                        let _ = e.to_string();
                    }
                }
            }
            Op::ReleasePool { target } => {
                if shadows.is_empty() {
                    continue;
                }
                let s = shadows.remove(usize::from(target) % shadows.len());
                ipam.release_pool(&s.id).expect("live pool releases");
                assert!(ipam.release_pool(&s.id).is_err());
            }
            Op::Next { target } | Op::Gateway { target, .. } | Op::Preferred { target, .. }
                if !shadows.is_empty() =>
            {
                let i = usize::from(target) % shadows.len();
                let s = &mut shadows[i];
                let (req, next) = match op {
                    Op::Next { .. } => (AddressRequest::Next, true),
                    Op::Gateway { given, .. } => (
                        AddressRequest::Gateway(given.map(|o| addr_in(s.id.subnet(), o))),
                        false,
                    ),
                    Op::Preferred { off, .. } => (
                        AddressRequest::Preferred(addr_in(s.id.subnet(), off)),
                        false,
                    ),
                    _ => unreachable!(),
                };
                match ipam.request_address(&s.id, req) {
                    Ok(got) => {
                        if let AddressRequest::Preferred(a) | AddressRequest::Gateway(Some(a)) = req
                        {
                            assert_eq!(got.addr(), a);
                        }
                        record(s, got, next);
                    }
                    Err(e) => {
                        let _ = e.to_string();
                        if let AddressRequest::Preferred(a) = req {
                            let inside = s.id.subnet().contains(&a);
                            let free = inside
                                && !reserved(s.id.subnet(), num(a))
                                && !s.allocated.contains(&num(a));
                            assert!(!free, "free address {a} refused: {e}");
                        }
                    }
                }
            }
            Op::Release {
                target,
                off,
                from_shadow,
            } if !shadows.is_empty() => {
                let i = usize::from(target) % shadows.len();
                let s = &mut shadows[i];
                let a = match (from_shadow, s.allocated.iter().nth((off % 64) as usize)) {
                    (true, Some(&n)) => to_addr(matches!(s.id.subnet(), IpNet::V6(_)), n),
                    _ => addr_in(s.id.subnet(), off),
                };
                let is_aux = ipam
                    .pool(&s.id)
                    .expect("live")
                    .aux_addresses()
                    .values()
                    .any(|x| *x == a);
                match ipam.release_address(&s.id, a) {
                    Ok(()) => {
                        assert!(!is_aux);
                        assert!(
                            s.allocated.remove(&num(a)),
                            "released {a} that was not handed out"
                        );
                    }
                    Err(e) => {
                        let _ = e.to_string();
                        assert!(
                            is_aux || !s.allocated.contains(&num(a)),
                            "could not release {a}: {e}"
                        );
                    }
                }
            }
            Op::RoundTrip => {
                let json = serde_json::to_string(&ipam).expect("serialises");
                let back: Ipam = serde_json::from_str(&json).expect("restores");
                assert_eq!(back, ipam);
                ipam = back;
            }
            _ => {}
        }
        check(&ipam, &shadows);
    }
    let json = serde_json::to_string(&ipam).expect("serialises");
    let back: Ipam = serde_json::from_str(&json).expect("restores");
    assert_eq!(back, ipam);
});

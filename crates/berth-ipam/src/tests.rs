//! Unit tests of every rule of the allocator and of the parsers.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const L: AddressSpace = AddressSpace::Local;
const G: AddressSpace = AddressSpace::Global;

fn pool(ipam: &mut Ipam, subnet: &str) -> PoolId {
    ipam.request_pool(&PoolRequest::new(L, net(subnet)))
        .unwrap()
}

fn next(ipam: &mut Ipam, id: &PoolId) -> IpAddr {
    ipam.request_address(id, AddressRequest::Next)
        .unwrap()
        .addr()
}

fn auto(ipam: &mut Ipam, space: AddressSpace, family: IpFamily) -> Result<PoolId> {
    ipam.request_pool(&PoolRequest::from_defaults(space, family))
}

// ---- pools ----

#[test]
fn local_defaults_in_docker_order_then_exhausted() {
    let mut ipam = Ipam::new();
    let mut got = Vec::new();
    while let Ok(id) = auto(&mut ipam, L, IpFamily::V4) {
        got.push(id.subnet().to_string());
    }
    let mut want: Vec<String> = (17..=31).map(|i| format!("172.{i}.0.0/16")).collect();
    want.extend((0..16).map(|i| format!("192.168.{}.0/20", i * 16)));
    assert_eq!(got, want);
    let err = auto(&mut ipam, L, IpFamily::V4).unwrap_err();
    assert_eq!(
        err,
        Error::NoAvailablePool {
            space: L,
            family: IpFamily::V4
        }
    );
    assert!(
        err.to_string().contains(
            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
        ),
        "{err}"
    );
    // Releasing one makes exactly that one available again.
    let id = PoolId::new(L, net("172.20.0.0/16"), None);
    ipam.release_pool(&id).unwrap();
    assert_eq!(auto(&mut ipam, L, IpFamily::V4).unwrap(), id);
}

#[test]
fn global_defaults_and_spaces_are_independent() {
    let mut ipam = Ipam::new();
    assert_eq!(
        auto(&mut ipam, G, IpFamily::V4).unwrap().to_string(),
        "GlobalDefault/10.0.0.0/24"
    );
    assert_eq!(
        auto(&mut ipam, G, IpFamily::V4).unwrap().subnet(),
        net("10.0.1.0/24")
    );
    // The same subnet in the other space does not overlap.
    let local = ipam
        .request_pool(&PoolRequest::new(L, net("10.0.0.0/24")))
        .unwrap();
    assert_eq!(local.space(), L);
    assert_eq!(
        auto(&mut ipam, L, IpFamily::V4).unwrap().subnet(),
        net("172.17.0.0/16")
    );
    // A given global subnet in the middle of the defaults is skipped by the next default request.
    ipam.request_pool(&PoolRequest::new(G, net("10.0.2.0/23")))
        .unwrap();
    assert_eq!(
        auto(&mut ipam, G, IpFamily::V4).unwrap().subnet(),
        net("10.0.4.0/24")
    );
    assert_eq!(ipam.pools(G).count(), 4);
    assert_eq!(ipam.pools(L).count(), 2);
}

#[test]
fn defaults_skip_allocated_and_excluded_networks() {
    let mut ipam = Ipam::new();
    // A small given subnet inside 172.17.0.0/16 blocks that whole default.
    pool(&mut ipam, "172.17.3.0/24");
    let req = PoolRequest::from_defaults(L, IpFamily::V4).with_exclude(vec![
        net("172.18.5.0/24"),  // a host route
        net("172.19.0.53/32"), // a nameserver
        net("2001:db8::/32"),  // other family: ignored
    ]);
    assert_eq!(
        ipam.request_pool(&req).unwrap().subnet(),
        net("172.20.0.0/16")
    );
    // Excluding all of 172.16.0.0/12 moves to 192.168.0.0/20; a supernet exclusion skips many.
    let req = PoolRequest::from_defaults(L, IpFamily::V4)
        .with_exclude(vec![net("172.16.0.0/12"), net("192.168.0.0/18")]);
    assert_eq!(
        ipam.request_pool(&req).unwrap().subnet(),
        net("192.168.64.0/20")
    );
    let req = PoolRequest::from_defaults(L, IpFamily::V4).with_exclude(vec![net("0.0.0.0/0")]);
    assert!(matches!(
        ipam.request_pool(&req),
        Err(Error::NoAvailablePool { .. })
    ));
}

#[test]
fn global_default_skips_large_blocks_quickly() {
    // 10.0.0.0/8 into /24s: 65,536 candidates. Allocated /16s are jumped over, not scanned.
    let mut ipam = Ipam::new();
    for i in 0..255 {
        ipam.request_pool(&PoolRequest::new(G, net(&format!("10.{i}.0.0/16"))))
            .unwrap();
    }
    assert_eq!(
        auto(&mut ipam, G, IpFamily::V4).unwrap().subnet(),
        net("10.255.0.0/24")
    );
    let req = PoolRequest::from_defaults(G, IpFamily::V4).with_exclude(vec![net("10.255.0.0/17")]);
    assert_eq!(
        ipam.request_pool(&req).unwrap().subnet(),
        net("10.255.128.0/24")
    );
}

#[test]
fn configured_default_pools_replace_dockers() {
    let local = vec![
        parse_default_pool("base=10.10.0.0/16,size=24").unwrap(),
        parse_default_pool("base=fd00:1::/48,size=64").unwrap(),
    ];
    let mut ipam = Ipam::with_default_pools(local.clone(), vec![]);
    assert_eq!(ipam.default_pools(L), local.as_slice());
    assert_eq!(
        auto(&mut ipam, L, IpFamily::V4).unwrap().subnet(),
        net("10.10.0.0/24")
    );
    assert_eq!(
        auto(&mut ipam, L, IpFamily::V4).unwrap().subnet(),
        net("10.10.1.0/24")
    );
    assert_eq!(
        auto(&mut ipam, L, IpFamily::V6).unwrap().subnet(),
        net("fd00:1::/64")
    );
    assert_eq!(
        auto(&mut ipam, L, IpFamily::V6).unwrap().subnet(),
        net("fd00:1:0:1::/64")
    );
    // Replacing the defaults later keeps allocated pools.
    ipam.set_default_pools(
        L,
        vec![parse_default_pool("base=10.10.0.0/23,size=24").unwrap()],
    );
    assert_eq!(
        auto(&mut ipam, L, IpFamily::V4).unwrap_err(),
        Error::NoAvailablePool {
            space: L,
            family: IpFamily::V4
        }
    );
    assert_eq!(ipam.pools(L).count(), 4);
    // No global defaults at all.
    let err = auto(&mut ipam, G, IpFamily::V4).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NoDefaultPools {
                space: G,
                family: IpFamily::V4,
                ..
            }
        ),
        "{err}"
    );
    // A whole-space default pool (size 0) works without overflow.
    let mut ipam = Ipam::with_default_pools(
        vec![
            DefaultPool::new(net("::/0"), 0).unwrap(),
            DefaultPool::new(net("0.0.0.0/0"), 0).unwrap(),
        ],
        vec![],
    );
    assert_eq!(
        auto(&mut ipam, L, IpFamily::V6).unwrap().subnet(),
        net("::/0")
    );
    assert!(matches!(
        auto(&mut ipam, L, IpFamily::V6),
        Err(Error::NoAvailablePool { .. })
    ));
    assert_eq!(
        auto(&mut ipam, L, IpFamily::V4).unwrap().subnet(),
        net("0.0.0.0/0")
    );
}

#[test]
fn ipv6_without_subnet_needs_configured_defaults() {
    let mut ipam = Ipam::new();
    let err = auto(&mut ipam, L, IpFamily::V6).unwrap_err();
    assert!(matches!(
        err,
        Error::NoDefaultPools {
            space: L,
            family: IpFamily::V6,
            ..
        }
    ));
    let msg = err.to_string();
    assert!(
        msg.contains("IPv6") && msg.contains("--subnet") && msg.contains("default-address-pools"),
        "{msg}"
    );
    // With a subnet it works.
    let id = ipam
        .request_pool(&PoolRequest::new(L, net("2001:db8:1::/64")))
        .unwrap();
    assert_eq!(id.to_string(), "LocalDefault/2001:db8:1::/64");
}

#[test]
fn given_subnet_overlap_is_refused_with_dockers_message() {
    let mut ipam = Ipam::new();
    let id = pool(&mut ipam, "172.18.0.0/16");
    for other in [
        "172.18.0.0/16",
        "172.18.4.0/24",
        "172.16.0.0/12",
        "0.0.0.0/0",
        "172.18.255.255/32",
    ] {
        let err = ipam
            .request_pool(&PoolRequest::new(L, net(other)))
            .unwrap_err();
        assert_eq!(
            err,
            Error::PoolOverlap {
                space: L,
                subnet: net(other).trunc(),
                existing: net("172.18.0.0/16")
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("Pool overlaps with other one on this address space"),
            "{msg}"
        );
        assert!(msg.contains("172.18.0.0/16"), "{msg}");
    }
    // Neighbours, other families and the other space are fine.
    pool(&mut ipam, "172.19.0.0/16");
    pool(&mut ipam, "172.17.255.0/24");
    pool(&mut ipam, "::/0");
    ipam.request_pool(&PoolRequest::new(G, net("172.18.0.0/16")))
        .unwrap();
    // After release the subnet is free again.
    ipam.release_pool(&id).unwrap();
    pool(&mut ipam, "172.18.0.0/17");
}

#[test]
fn subnet_with_host_bits_is_normalised() {
    let mut ipam = Ipam::new();
    let id = pool(&mut ipam, "172.29.0.1/16");
    assert_eq!(id.subnet(), net("172.29.0.0/16"));
    assert_eq!(id.to_string(), "LocalDefault/172.29.0.0/16");
    assert_eq!(ipam.pool(&id).unwrap().subnet(), net("172.29.0.0/16"));
    let gw = ipam
        .request_address(&id, AddressRequest::Gateway(None))
        .unwrap();
    assert_eq!(gw, net("172.29.0.1/16"));
    let req = PoolRequest::new(L, net("172.30.0.0/16")).with_ip_range(net("172.30.5.7/24"));
    let id = ipam.request_pool(&req).unwrap();
    assert_eq!(id.range(), Some(net("172.30.5.0/24")));
    assert_eq!(id.to_string(), "LocalDefault/172.30.0.0/16/172.30.5.0/24");
}

#[test]
fn ip_range_must_be_inside_the_subnet() {
    let mut ipam = Ipam::new();
    for range in [
        "172.29.0.0/15",
        "172.30.0.0/24",
        "2001:db8::/64",
        "0.0.0.0/0",
    ] {
        let req = PoolRequest::new(L, net("172.29.0.0/16")).with_ip_range(net(range));
        let err = ipam.request_pool(&req).unwrap_err();
        assert_eq!(
            err,
            Error::RangeOutsideSubnet {
                range: net(range).trunc(),
                subnet: net("172.29.0.0/16")
            }
        );
        assert!(
            err.to_string().contains("not inside subnet 172.29.0.0/16"),
            "{err}"
        );
    }
    assert_eq!(
        ipam.pools(L).count(),
        0,
        "a failed request allocates nothing"
    );
    let req = PoolRequest::new(L, net("172.29.0.0/16")).with_ip_range(net("172.29.0.0/16"));
    ipam.request_pool(&req).unwrap();
}

#[test]
fn range_and_aux_need_a_subnet() {
    let mut ipam = Ipam::new();
    let req = PoolRequest::from_defaults(L, IpFamily::V4).with_ip_range(net("172.17.1.0/24"));
    assert!(matches!(
        ipam.request_pool(&req),
        Err(Error::NeedsSubnet {
            field: Field::IpRange,
            ..
        })
    ));
    let req = PoolRequest::from_defaults(L, IpFamily::V4).with_aux_address("r", ip("172.17.0.9"));
    let err = ipam.request_pool(&req).unwrap_err();
    assert!(matches!(
        err,
        Error::NeedsSubnet {
            field: Field::AuxAddress,
            ..
        }
    ));
    assert!(
        err.to_string().contains("aux-address r=172.17.0.9"),
        "{err}"
    );
    assert_eq!(ipam.pools(L).count(), 0);
}

#[test]
fn release_pool_errors_and_ids() {
    let mut ipam = Ipam::new();
    let id = pool(&mut ipam, "172.18.0.0/16");
    // Same subnet with a range that the pool does not have: unknown.
    let wrong = PoolId::new(L, net("172.18.0.0/16"), Some(net("172.18.1.0/24")));
    assert_eq!(
        ipam.release_pool(&wrong),
        Err(Error::UnknownPool { id: wrong })
    );
    assert!(ipam.pool(&wrong).is_err());
    assert!(matches!(
        ipam.request_address(&wrong, AddressRequest::Next),
        Err(Error::UnknownPool { .. })
    ));
    assert!(matches!(
        ipam.release_address(&wrong, ip("172.18.0.2")),
        Err(Error::UnknownPool { .. })
    ));
    let other_space = PoolId::new(G, net("172.18.0.0/16"), None);
    assert!(ipam.release_pool(&other_space).is_err());
    ipam.release_pool(&id).unwrap();
    let err = ipam.release_pool(&id).unwrap_err();
    assert_eq!(err, Error::UnknownPool { id });
    assert!(
        err.to_string().contains("LocalDefault/172.18.0.0/16"),
        "{err}"
    );
}

#[test]
fn pool_id_strings() {
    let id: PoolId = "LocalDefault/172.18.0.0/16".parse().unwrap();
    assert_eq!(id, PoolId::new(L, net("172.18.0.0/16"), None));
    let id: PoolId = "GlobalDefault/2001:db8::/64/2001:db8::/80".parse().unwrap();
    assert_eq!(id.range(), Some(net("2001:db8::/80")));
    assert_eq!(id.to_string(), "GlobalDefault/2001:db8::/64/2001:db8::/80");
    assert_eq!(
        serde_json::to_string(&id).unwrap(),
        "\"GlobalDefault/2001:db8::/64/2001:db8::/80\""
    );
    assert_eq!(
        serde_json::from_str::<PoolId>("\"GlobalDefault/2001:db8::/64/2001:db8::/80\"").unwrap(),
        id
    );
    for bad in [
        "",
        "LocalDefault",
        "LocalDefault/172.18.0.0",
        "Local/172.18.0.0/16",
        "LocalDefault/172.18.0.0/33",
        "LocalDefault/172.18.0.0/16/172.19.0.0/24",
        "LocalDefault/172.18.0.0/16/x/24",
        "LocalDefault/172.18.0.0/16/1/2/3",
    ] {
        let err = bad.parse::<PoolId>().unwrap_err();
        assert!(matches!(err, Error::InvalidPoolId { .. }), "{bad}: {err}");
        assert!(
            err.to_string().contains("LocalDefault/172.18.0.0/16"),
            "{err}"
        );
    }
    assert!(serde_json::from_str::<PoolId>("\"nope\"").is_err());
}

// ---- addresses ----

#[test]
fn gateway_next_preferred_lowest_free() {
    let mut ipam = Ipam::new();
    let id = pool(&mut ipam, "172.18.0.0/16");
    assert_eq!(
        ipam.request_address(&id, AddressRequest::Gateway(None))
            .unwrap(),
        net("172.18.0.1/16")
    );
    assert_eq!(next(&mut ipam, &id), ip("172.18.0.2"));
    let p = ipam
        .request_address(&id, AddressRequest::Preferred(ip("172.18.0.4")))
        .unwrap();
    assert_eq!(p, net("172.18.0.4/16"));
    assert_eq!(next(&mut ipam, &id), ip("172.18.0.3"));
    assert_eq!(next(&mut ipam, &id), ip("172.18.0.5"));
    // Releasing makes the lowest address available again first.
    ipam.release_address(&id, ip("172.18.0.2")).unwrap();
    assert_eq!(next(&mut ipam, &id), ip("172.18.0.2"));
    assert_eq!(ipam.pool(&id).unwrap().allocated_count(), 5);
    let in_use = ipam
        .request_address(&id, AddressRequest::Preferred(ip("172.18.0.4")))
        .unwrap_err();
    assert_eq!(
        in_use,
        Error::AddressInUse {
            address: ip("172.18.0.4"),
            pool: id
        }
    );
    assert!(
        in_use.to_string().contains("Address already in use"),
        "{in_use}"
    );
    let gw_in_use = ipam.request_address(&id, AddressRequest::Gateway(Some(ip("172.18.0.1"))));
    assert!(matches!(gw_in_use, Err(Error::AddressInUse { .. })));
    // A given gateway anywhere in the subnet.
    let gw = ipam
        .request_address(&id, AddressRequest::Gateway(Some(ip("172.18.255.254"))))
        .unwrap();
    assert_eq!(gw, net("172.18.255.254/16"));
}

#[test]
fn out_of_range_and_reserved_addresses() {
    let mut ipam = Ipam::new();
    let id = pool(&mut ipam, "172.18.0.0/24");
    for a in ["172.18.1.1", "10.0.0.1", "2001:db8::1"] {
        let err = ipam
            .request_address(&id, AddressRequest::Preferred(ip(a)))
            .unwrap_err();
        assert_eq!(
            err,
            Error::AddressOutOfRange {
                address: ip(a),
                pool: id,
                subnet: net("172.18.0.0/24")
            }
        );
        assert!(err.to_string().contains("out of range"), "{err}");
        assert!(matches!(
            ipam.request_address(&id, AddressRequest::Gateway(Some(ip(a)))),
            Err(Error::AddressOutOfRange { .. })
        ));
    }
    let err = ipam
        .request_address(&id, AddressRequest::Preferred(ip("172.18.0.0")))
        .unwrap_err();
    assert_eq!(
        err,
        Error::ReservedAddress {
            address: ip("172.18.0.0"),
            pool: id,
            kind: Reserved::Network
        }
    );
    assert!(err.to_string().contains("network address"), "{err}");
    let err = ipam
        .request_address(&id, AddressRequest::Gateway(Some(ip("172.18.0.255"))))
        .unwrap_err();
    assert_eq!(
        err,
        Error::ReservedAddress {
            address: ip("172.18.0.255"),
            pool: id,
            kind: Reserved::Broadcast
        }
    );
    assert_eq!(ipam.pool(&id).unwrap().allocated_count(), 0);
}

#[test]
fn full_pool_and_tiny_subnets() {
    let mut ipam = Ipam::new();
    let id = pool(&mut ipam, "192.0.2.0/30");
    assert_eq!(next(&mut ipam, &id), ip("192.0.2.1"));
    assert_eq!(next(&mut ipam, &id), ip("192.0.2.2"));
    let err = ipam.request_address(&id, AddressRequest::Next).unwrap_err();
    assert_eq!(err, Error::NoAvailableAddresses { pool: id });
    assert!(
        err.to_string()
            .contains("no available addresses on this pool"),
        "{err}"
    );
    assert!(matches!(
        ipam.request_address(&id, AddressRequest::Gateway(None)),
        Err(Error::NoAvailableAddresses { .. })
    ));
    // /31: both addresses usable (RFC 3021); /32: its only address.
    let id = pool(&mut ipam, "192.0.2.4/31");
    assert_eq!(next(&mut ipam, &id), ip("192.0.2.4"));
    assert_eq!(next(&mut ipam, &id), ip("192.0.2.5"));
    assert!(ipam.request_address(&id, AddressRequest::Next).is_err());
    let id = pool(&mut ipam, "192.0.2.9/32");
    assert_eq!(
        ipam.request_address(&id, AddressRequest::Gateway(None))
            .unwrap(),
        net("192.0.2.9/32")
    );
    assert!(ipam.request_address(&id, AddressRequest::Next).is_err());
    // IPv6 /127 and /128: every address usable; /126: the anycast address is reserved.
    let id = pool(&mut ipam, "2001:db8::/127");
    assert_eq!(next(&mut ipam, &id), ip("2001:db8::"));
    assert_eq!(next(&mut ipam, &id), ip("2001:db8::1"));
    let id = pool(&mut ipam, "2001:db8::2/128");
    assert_eq!(next(&mut ipam, &id), ip("2001:db8::2"));
    let id = pool(&mut ipam, "2001:db8::4/126");
    let err = ipam
        .request_address(&id, AddressRequest::Preferred(ip("2001:db8::4")))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ReservedAddress {
                kind: Reserved::SubnetRouterAnycast,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("subnet-router anycast"), "{err}");
    for want in ["2001:db8::5", "2001:db8::6", "2001:db8::7"] {
        assert_eq!(next(&mut ipam, &id), ip(want));
    }
    assert!(ipam.request_address(&id, AddressRequest::Next).is_err());
}

#[test]
fn ip_range_feeds_next_but_not_gateway_or_preferred() {
    let mut ipam = Ipam::new();
    let req = PoolRequest::new(L, net("172.28.0.0/16")).with_ip_range(net("172.28.5.0/30"));
    let id = ipam.request_pool(&req).unwrap();
    // Gateway: lowest free of the whole subnet (Docker 20.10 would give 172.28.5.0).
    assert_eq!(
        ipam.request_address(&id, AddressRequest::Gateway(None))
            .unwrap(),
        net("172.28.0.1/16")
    );
    let got: Vec<_> = (0..4).map(|_| next(&mut ipam, &id)).collect();
    assert_eq!(
        got,
        ["172.28.5.0", "172.28.5.1", "172.28.5.2", "172.28.5.3"].map(ip)
    );
    // The range is full, the subnet is not.
    assert!(matches!(
        ipam.request_address(&id, AddressRequest::Next),
        Err(Error::NoAvailableAddresses { .. })
    ));
    ipam.request_address(&id, AddressRequest::Preferred(ip("172.28.200.3")))
        .unwrap();
    assert_eq!(
        ipam.request_address(&id, AddressRequest::Gateway(None))
            .unwrap(),
        net("172.28.0.2/16")
    );
    // A range at the end of the subnet does not hand out the broadcast address.
    let req = PoolRequest::new(L, net("172.29.0.0/24")).with_ip_range(net("172.29.0.252/30"));
    let id = ipam.request_pool(&req).unwrap();
    assert_eq!(next(&mut ipam, &id), ip("172.29.0.252"));
    assert_eq!(next(&mut ipam, &id), ip("172.29.0.253"));
    assert_eq!(next(&mut ipam, &id), ip("172.29.0.254"));
    assert!(ipam.request_address(&id, AddressRequest::Next).is_err());
}

#[test]
fn serial_mode_round_robins_and_wraps() {
    let mut ipam = Ipam::new();
    let req = PoolRequest::new(L, net("10.1.0.0/29")).with_mode(AllocationMode::Serial);
    let id = ipam.request_pool(&req).unwrap();
    assert_eq!(ipam.pool(&id).unwrap().mode(), AllocationMode::Serial);
    assert_eq!(next(&mut ipam, &id), ip("10.1.0.1"));
    assert_eq!(next(&mut ipam, &id), ip("10.1.0.2"));
    assert_eq!(next(&mut ipam, &id), ip("10.1.0.3"));
    ipam.release_address(&id, ip("10.1.0.2")).unwrap();
    // Serial continues after the last one handed out instead of reusing .2.
    assert_eq!(next(&mut ipam, &id), ip("10.1.0.4"));
    // A gateway and a preferred address do not move the cursor.
    assert_eq!(
        ipam.request_address(&id, AddressRequest::Gateway(None))
            .unwrap(),
        net("10.1.0.2/29")
    );
    ipam.request_address(&id, AddressRequest::Preferred(ip("10.1.0.6")))
        .unwrap();
    assert_eq!(ipam.pool(&id).unwrap().last_serial(), Some(ip("10.1.0.4")));
    assert_eq!(next(&mut ipam, &id), ip("10.1.0.5"));
    ipam.release_address(&id, ip("10.1.0.1")).unwrap();
    ipam.release_address(&id, ip("10.1.0.3")).unwrap();
    // .6 is taken, .7 is the broadcast: wrap around to the start.
    assert_eq!(next(&mut ipam, &id), ip("10.1.0.1"));
    assert_eq!(next(&mut ipam, &id), ip("10.1.0.3"));
    assert!(ipam.request_address(&id, AddressRequest::Next).is_err());
    // Lowest-free mode reuses .2 immediately, for comparison.
    let id = pool(&mut ipam, "10.2.0.0/29");
    for _ in 0..3 {
        next(&mut ipam, &id);
    }
    ipam.release_address(&id, ip("10.2.0.2")).unwrap();
    assert_eq!(next(&mut ipam, &id), ip("10.2.0.2"));
}

#[test]
fn aux_addresses_are_reserved_with_the_pool() {
    let mut ipam = Ipam::new();
    let req = PoolRequest::new(L, net("172.28.0.0/16"))
        .with_ip_range(net("172.28.5.0/24"))
        .with_aux_address("my-router", ip("172.28.5.0"))
        .with_aux_address("outside-range", ip("172.28.1.5"));
    let id = ipam.request_pool(&req).unwrap();
    let p = ipam.pool(&id).unwrap();
    assert_eq!(p.aux_addresses().get("my-router"), Some(&ip("172.28.5.0")));
    assert!(p.is_allocated(ip("172.28.1.5")));
    assert_eq!(p.allocated_count(), 2);
    assert_eq!(next(&mut ipam, &id), ip("172.28.5.1"));
    let err = ipam
        .request_address(&id, AddressRequest::Preferred(ip("172.28.1.5")))
        .unwrap_err();
    assert!(matches!(err, Error::AddressInUse { .. }));
    let err = ipam.release_address(&id, ip("172.28.5.0")).unwrap_err();
    assert_eq!(
        err,
        Error::AuxAddressRelease {
            address: ip("172.28.5.0"),
            name: "my-router".into(),
            pool: id
        }
    );
    assert!(err.to_string().contains("my-router"), "{err}");

    // Errors, each leaving nothing allocated.
    let before = ipam.clone();
    let outside = PoolRequest::new(L, net("172.29.0.0/16")).with_aux_address("r", ip("172.30.0.1"));
    let err = ipam.request_pool(&outside).unwrap_err();
    assert_eq!(
        err,
        Error::AuxAddressOutsideSubnet {
            name: "r".into(),
            address: ip("172.30.0.1"),
            subnet: net("172.29.0.0/16")
        }
    );
    let v6 = PoolRequest::new(L, net("172.29.0.0/16")).with_aux_address("r", ip("::1"));
    assert!(matches!(
        ipam.request_pool(&v6),
        Err(Error::AuxAddressOutsideSubnet { .. })
    ));
    let reserved =
        PoolRequest::new(L, net("172.29.0.0/16")).with_aux_address("r", ip("172.29.255.255"));
    assert!(matches!(
        ipam.request_pool(&reserved),
        Err(Error::ReservedAddress {
            kind: Reserved::Broadcast,
            ..
        })
    ));
    let twice = PoolRequest::new(L, net("172.29.0.0/16"))
        .with_aux_address("a", ip("172.29.0.7"))
        .with_aux_address("b", ip("172.29.0.7"));
    assert!(matches!(
        ipam.request_pool(&twice),
        Err(Error::AddressInUse { .. })
    ));
    assert_eq!(ipam, before);
}

#[test]
fn release_address_errors() {
    let mut ipam = Ipam::new();
    let id = pool(&mut ipam, "172.18.0.0/16");
    let a = next(&mut ipam, &id);
    let err = ipam.release_address(&id, ip("172.18.0.9")).unwrap_err();
    assert_eq!(
        err,
        Error::AddressNotAllocated {
            address: ip("172.18.0.9"),
            pool: id
        }
    );
    assert!(err.to_string().contains("not allocated"), "{err}");
    assert!(matches!(
        ipam.release_address(&id, ip("172.18.0.0")),
        Err(Error::AddressNotAllocated { .. })
    ));
    assert!(matches!(
        ipam.release_address(&id, ip("172.19.0.1")),
        Err(Error::AddressOutOfRange { .. })
    ));
    assert!(matches!(
        ipam.release_address(&id, ip("::1")),
        Err(Error::AddressOutOfRange { .. })
    ));
    ipam.release_address(&id, a).unwrap();
    assert!(matches!(
        ipam.release_address(&id, a),
        Err(Error::AddressNotAllocated { .. })
    ));
    assert!(!ipam.pool(&id).unwrap().is_allocated(a));
}

#[test]
fn huge_pools_cost_nothing_up_front() {
    let mut ipam = Ipam::new();
    let id = ipam
        .request_pool(&PoolRequest::new(G, net("10.0.0.0/8")))
        .unwrap();
    assert_eq!(
        ipam.request_address(&id, AddressRequest::Gateway(None))
            .unwrap(),
        net("10.0.0.1/8")
    );
    assert_eq!(next(&mut ipam, &id), ip("10.0.0.2"));
    ipam.request_address(&id, AddressRequest::Preferred(ip("10.255.255.254")))
        .unwrap();
    assert!(
        ipam.request_address(&id, AddressRequest::Preferred(ip("10.255.255.255")))
            .is_err()
    );
    assert_eq!(ipam.pool(&id).unwrap().allocated_count(), 3);

    let id = pool(&mut ipam, "2001:db8:1::/64");
    assert_eq!(
        ipam.request_address(&id, AddressRequest::Gateway(None))
            .unwrap(),
        net("2001:db8:1::1/64")
    );
    assert_eq!(next(&mut ipam, &id), ip("2001:db8:1::2"));
    let last = ip("2001:db8:1:0:ffff:ffff:ffff:ffff");
    assert_eq!(
        ipam.request_address(&id, AddressRequest::Preferred(last))
            .unwrap()
            .addr(),
        last
    );
    for _ in 0..10_000 {
        next(&mut ipam, &id);
    }
    let p = ipam.pool(&id).unwrap();
    assert_eq!(p.allocated_count(), 10_003);
    assert_eq!(
        p.allocated_ranges().count(),
        2,
        "consecutive addresses are one run"
    );

    // The whole IPv6 space and the whole IPv4 space as pools: no overflow anywhere.
    let id = ipam
        .request_pool(&PoolRequest::new(G, net("::/0")).with_mode(AllocationMode::Serial))
        .unwrap();
    assert_eq!(next(&mut ipam, &id), ip("::1"));
    let max = ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    ipam.request_address(&id, AddressRequest::Preferred(max))
        .unwrap();
    ipam.release_address(&id, max).unwrap();
    let id = ipam
        .request_pool(&PoolRequest::new(G, net("0.0.0.0/0")))
        .unwrap_err();
    assert!(matches!(id, Error::PoolOverlap { .. }));
    let id = pool(&mut ipam, "0.0.0.0/0").to_string();
    assert!(id.starts_with("LocalDefault/"));
}

// ---- serde ----

fn busy_ipam() -> Ipam {
    let mut ipam = Ipam::with_default_pools(
        DefaultPool::docker_local_defaults(),
        vec![
            DefaultPool::new(net("10.0.0.0/8"), 24).unwrap(),
            DefaultPool::new(net("fd00::/8"), 64).unwrap(),
        ],
    );
    let a = auto(&mut ipam, L, IpFamily::V4).unwrap();
    ipam.request_address(&a, AddressRequest::Gateway(None))
        .unwrap();
    for _ in 0..5 {
        next(&mut ipam, &a);
    }
    ipam.release_address(&a, ip("172.17.0.3")).unwrap();
    let req = PoolRequest::new(L, net("172.28.0.0/16"))
        .with_ip_range(net("172.28.5.0/24"))
        .with_aux_address("router", ip("172.28.1.1"))
        .with_mode(AllocationMode::Serial);
    let b = ipam.request_pool(&req).unwrap();
    next(&mut ipam, &b);
    next(&mut ipam, &b);
    let c = auto(&mut ipam, G, IpFamily::V6).unwrap();
    next(&mut ipam, &c);
    ipam
}

#[test]
fn state_round_trips_exactly() {
    let ipam = busy_ipam();
    let json = serde_json::to_string_pretty(&ipam).unwrap();
    let back: Ipam = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ipam);
    assert_eq!(serde_json::to_string_pretty(&back).unwrap(), json);
    // The stored form is readable: addresses, not offsets.
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let p = &v["local"]["pools"][0];
    assert_eq!(p["subnet"], "172.17.0.0/16");
    assert_eq!(
        p["allocated"],
        serde_json::json!([["172.17.0.1", "172.17.0.2"], ["172.17.0.4", "172.17.0.6"]])
    );
    let p = &v["local"]["pools"][1];
    assert_eq!(p["mode"], "serial");
    assert_eq!(p["last_serial"], "172.28.5.1");
    assert_eq!(p["aux_addresses"]["router"], "172.28.1.1");
    assert_eq!(v["global"]["default_pools"][1]["base"], "fd00::/8");
    // Restored state keeps working the same way.
    let mut a = ipam.clone();
    let mut b = back;
    let id = PoolId::new(L, net("172.28.0.0/16"), Some(net("172.28.5.0/24")));
    assert_eq!(
        a.request_address(&id, AddressRequest::Next),
        b.request_address(&id, AddressRequest::Next)
    );
    assert_eq!(auto(&mut a, L, IpFamily::V4), auto(&mut b, L, IpFamily::V4));
}

#[test]
fn inconsistent_state_is_refused() {
    let good = serde_json::to_value(busy_ipam()).unwrap();
    type Breaker = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Breaker)> = vec![
        (
            "host bits",
            Box::new(|v| v["local"]["pools"][0]["subnet"] = "172.17.0.1/16".into()),
        ),
        (
            "overlap",
            Box::new(|v| v["local"]["pools"][1]["subnet"] = "172.17.0.0/12".into()),
        ),
        (
            "reserved run",
            Box::new(|v| v["local"]["pools"][0]["allocated"][0][0] = "172.17.0.0".into()),
        ),
        (
            "broadcast run",
            Box::new(|v| v["local"]["pools"][0]["allocated"][1][1] = "172.17.255.255".into()),
        ),
        (
            "reversed run",
            Box::new(|v| v["local"]["pools"][0]["allocated"][1][0] = "172.17.0.9".into()),
        ),
        (
            "outside run",
            Box::new(|v| v["local"]["pools"][0]["allocated"][1][1] = "172.18.0.9".into()),
        ),
        (
            "family run",
            Box::new(|v| v["local"]["pools"][0]["allocated"][1][1] = "::9".into()),
        ),
        (
            "aux not allocated",
            Box::new(|v| v["local"]["pools"][1]["aux_addresses"]["x"] = "172.28.9.9".into()),
        ),
        (
            "aux twice",
            Box::new(|v| v["local"]["pools"][1]["aux_addresses"]["x"] = "172.28.1.1".into()),
        ),
        (
            "range",
            Box::new(|v| v["local"]["pools"][1]["ip_range"] = "172.29.0.0/24".into()),
        ),
        (
            "serial",
            Box::new(|v| v["local"]["pools"][1]["last_serial"] = "10.0.0.1".into()),
        ),
        (
            "default pool",
            Box::new(|v| v["local"]["default_pools"][0]["size"] = 8.into()),
        ),
        (
            "unknown field",
            Box::new(|v| v["local"]["pools"][0]["extra"] = 1.into()),
        ),
        (
            "missing field",
            Box::new(|v| v["global"] = serde_json::json!({"pools": []})),
        ),
        (
            "mode",
            Box::new(|v| v["local"]["pools"][0]["mode"] = "random".into()),
        ),
    ];
    for (what, break_it) in cases {
        let mut v = good.clone();
        break_it(&mut v);
        let res = serde_json::from_value::<Ipam>(v);
        assert!(res.is_err(), "{what} was accepted");
    }
    let err = serde_json::from_value::<Ipam>({
        let mut v = good.clone();
        v["local"]["pools"][1]["subnet"] = "172.17.0.0/12".into();
        v
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("restored IPAM state is inconsistent"),
        "{err}"
    );
    // Adjacent or unordered runs are merged on restore (still the same set of addresses).
    let mut v = good;
    v["local"]["pools"][0]["allocated"] =
        serde_json::json!([["172.17.0.4", "172.17.0.6"], ["172.17.0.1", "172.17.0.3"]]);
    let ipam: Ipam = serde_json::from_value(v).unwrap();
    let id = PoolId::new(L, net("172.17.0.0/16"), None);
    let runs: Vec<_> = ipam.pool(&id).unwrap().allocated_ranges().collect();
    assert_eq!(runs, vec![(ip("172.17.0.1"), ip("172.17.0.6"))]);
    assert_eq!(ipam.pool(&id).unwrap().allocated_count(), 6);
}

// ---- parsing ----

#[test]
fn parse_cidrs() {
    assert_eq!(parse_subnet("172.18.0.0/16").unwrap(), net("172.18.0.0/16"));
    assert_eq!(parse_subnet("172.29.0.1/16").unwrap(), net("172.29.0.1/16"));
    assert_eq!(
        parse_subnet("172.29.0.1/16").unwrap().trunc(),
        net("172.29.0.0/16")
    );
    assert_eq!(
        parse_subnet("2001:db8::1/64").unwrap().trunc(),
        net("2001:db8::/64")
    );
    assert_eq!(
        parse_ip_range("172.28.5.0/24").unwrap(),
        net("172.28.5.0/24")
    );
    let cases = [
        ("172.18.0.0", "prefix length is missing"),
        ("172.18.0/16", "not an IPv4 or IPv6 address"),
        ("/16", "not an IPv4 or IPv6 address"),
        ("172.18.0.0/", "not a number"),
        ("172.18.0.0/+1", "not a number"),
        ("172.18.0.0/ 16", "not a number"),
        ("172.18.0.0/1000", "not a number"),
        ("172.18.0.0/33", "larger than 32"),
        ("2001:db8::/129", "larger than 128"),
        ("2001:db8::/255", "larger than 128"),
        ("2001:db8::/256", "not a number"),
        (" 172.18.0.0/16", "not an IPv4 or IPv6 address"),
        ("172.18.0.0/16/8", "not a number"),
    ];
    for (input, reason) in cases {
        let err = parse_subnet(input).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidCidr { field: Field::Subnet, input: i, .. } if i == input),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(reason) && msg.contains("invalid subnet"),
            "{input}: {msg}"
        );
    }
    let err = parse_ip_range("x").unwrap_err();
    assert!(
        err.to_string().starts_with("invalid ip-range \"x\""),
        "{err}"
    );
}

#[test]
fn parse_addresses() {
    assert_eq!(parse_gateway("172.18.0.1").unwrap(), ip("172.18.0.1"));
    assert_eq!(parse_gateway("2001:db8::1").unwrap(), ip("2001:db8::1"));
    let err = parse_gateway("172.18.0.1/16").unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidAddress {
            field: Field::Gateway,
            ..
        }
    ));
    assert!(err.to_string().contains("without a prefix length"), "{err}");
    assert!(
        parse_gateway("172.18.0.256")
            .unwrap_err()
            .to_string()
            .contains("invalid gateway")
    );
    assert!(parse_address(Field::AuxAddress, "").is_err());

    assert_eq!(
        parse_aux_address("my-router=172.28.1.5").unwrap(),
        ("my-router".into(), ip("172.28.1.5"))
    );
    assert!(
        parse_aux_address("a=b=::1")
            .unwrap_err()
            .to_string()
            .contains("after '='")
    );
    assert!(
        parse_aux_address("x==::1")
            .unwrap_err()
            .to_string()
            .contains("after '='")
    );
    for (input, reason) in [
        ("172.28.1.5", "expected NAME=IP"),
        ("=172.28.1.5", "name before '=' is empty"),
        ("r=", "after '='"),
        ("r=172.28.1.5/24", "after '='"),
    ] {
        let err = parse_aux_address(input).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidAddress {
                field: Field::AuxAddress,
                ..
            }
        ));
        let msg = err.to_string();
        assert!(
            msg.contains(reason) && msg.contains("invalid aux-address"),
            "{input}: {msg}"
        );
    }
}

#[test]
fn parse_default_pools() {
    let p = parse_default_pool("base=172.30.0.0/16,size=24").unwrap();
    assert_eq!((p.base(), p.size()), (net("172.30.0.0/16"), 24));
    assert_eq!(p.to_string(), "base=172.30.0.0/16,size=24");
    assert_eq!(
        parse_default_pool("SIZE=64,Base=fd00::/48").unwrap().size(),
        64
    );
    let spec = [
        ("", "not KEY=VALUE"),
        ("base=172.30.0.0/16", "\"size\" is missing"),
        ("size=24", "\"base\" is missing"),
        ("base=172.30.0.0/16,size=24,", "not KEY=VALUE"),
        (
            "base=172.30.0.0/16,size=24,base=10.0.0.0/8",
            "\"base\" is given twice",
        ),
        (
            "base=172.30.0.0/16,size=24,size=24",
            "\"size\" is given twice",
        ),
        ("base=172.30.0.0/16,mask=24", "unknown key \"mask\""),
        ("base=172.30.0.0/16,size=x", "size \"x\""),
        ("base=172.30.0.0/16,size=-1", "size \"-1\""),
        ("base=172.30.0.0/16,size=300", "size \"300\""),
        ("base=172.30.0.0/16,size=", "size \"\""),
    ];
    for (input, reason) in spec {
        let err = parse_default_pool(input).unwrap_err();
        assert!(
            matches!(err, Error::InvalidDefaultPoolSpec { .. }),
            "{input}: {err}"
        );
        assert!(err.to_string().contains(reason), "{input}: {err}");
    }
    let err = parse_default_pool("base=172.30.0/16,size=24").unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidCidr {
                field: Field::Base,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("default address pool base"),
        "{err}"
    );
    let err = parse_default_pool("base=172.30.0.0/16,size=8").unwrap_err();
    assert_eq!(
        err,
        Error::DefaultPoolSizeTooSmall {
            base: net("172.30.0.0/16"),
            size: 8
        }
    );
    assert!(
        err.to_string()
            .contains("at least the base's prefix length 16"),
        "{err}"
    );
    let err = parse_default_pool("base=172.30.0.0/16,size=33").unwrap_err();
    assert_eq!(
        err,
        Error::DefaultPoolSizeTooLarge {
            base: net("172.30.0.0/16"),
            size: 33
        }
    );
    let err = parse_default_pool("base=172.30.1.0/16,size=24").unwrap_err();
    assert_eq!(
        err,
        Error::DefaultPoolBaseNotNetwork {
            base: net("172.30.1.0/16")
        }
    );
    assert!(err.to_string().contains("use 172.30.0.0/16"), "{err}");
}

#[test]
fn errors_are_send_sync_and_ipam_is_too() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Error>();
    check::<Ipam>();
}

#[test]
fn stored_state_format_is_stable() {
    // The stored shape must keep restoring (the same text is fuzz/corpus/ipam_parse/seed-21).
    let json = r#"{"local":{"default_pools":[{"base":"172.17.0.0/16","size":16},{"base":"fd00::/104","size":112}],"pools":[{"subnet":"172.17.0.0/16","ip_range":null,"mode":"lowest_free","aux_addresses":{},"allocated":[["172.17.0.1","172.17.0.2"],["172.17.0.4","172.17.0.6"]],"last_serial":null},{"subnet":"172.28.0.0/16","ip_range":"172.28.5.0/24","mode":"serial","aux_addresses":{"router":"172.28.1.1"},"allocated":[["172.28.1.1","172.28.1.1"],["172.28.5.0","172.28.5.1"]],"last_serial":"172.28.5.1"}]},"global":{"default_pools":[{"base":"10.0.0.0/8","size":24}],"pools":[{"subnet":"2001:db8::/64","ip_range":null,"mode":"lowest_free","aux_addresses":{},"allocated":[["2001:db8::1","2001:db8::1"]],"last_serial":null}]}}"#;
    let ipam: Ipam = serde_json::from_str(json).unwrap();
    assert_eq!(serde_json::to_string(&ipam).unwrap(), json);
    let id: PoolId = "LocalDefault/172.28.0.0/16/172.28.5.0/24".parse().unwrap();
    let pool = ipam.pool(&id).unwrap();
    assert_eq!(pool.mode(), AllocationMode::Serial);
    assert_eq!(pool.last_serial(), Some(ip("172.28.5.1")));
    assert_eq!(pool.allocated_count(), 3);
    assert_eq!(
        ipam.default_pools(G),
        DefaultPool::docker_global_defaults().as_slice()
    );
}

//! Pools: Docker's default pools in order, given subnets, overlaps, ip-ranges, releases and pool ids.

use super::*;

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

//! Addresses: gateway, next and preferred, reserved and out-of-range ones, full pools, serial mode, aux addresses, releases.

use super::*;

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

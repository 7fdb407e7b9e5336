//! The serialised state: exact round trips, refusal of inconsistent state, the stored format.

use super::*;

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

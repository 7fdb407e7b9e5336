//! Arbitrary strings into every parsing entry point of berth-ipam (and arbitrary JSON into state
//! restore): never a panic; what parses is normalised and prints back to something that parses to
//! the same value.

#![no_main]

use berth_ipam::{
    Field, Ipam, PoolId, parse_address, parse_aux_address, parse_default_pool, parse_gateway,
    parse_ip_range, parse_subnet,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s = s.as_ref();

    for r in [parse_subnet(s), parse_ip_range(s)] {
        match r {
            Ok(n) => {
                assert_eq!(n, n.trunc(), "not normalised");
                assert_eq!(parse_subnet(&n.to_string()), Ok(n));
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    match parse_gateway(s) {
        Ok(a) => assert_eq!(parse_address(Field::Gateway, &a.to_string()), Ok(a)),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    match parse_aux_address(s) {
        Ok((name, a)) => {
            assert!(!name.is_empty());
            assert_eq!(parse_aux_address(&format!("{name}={a}")), Ok((name, a)));
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    match parse_default_pool(s) {
        Ok(p) => {
            assert!(p.size() >= p.base().prefix_len() && p.size() <= p.base().max_prefix_len());
            assert_eq!(parse_default_pool(&p.to_string()), Ok(p));
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    match s.parse::<PoolId>() {
        Ok(id) => assert_eq!(id.to_string().parse::<PoolId>(), Ok(id)),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    // Restoring state from untrusted bytes: an error or a valid allocator that round-trips.
    if let Ok(ipam) = serde_json::from_slice::<Ipam>(data) {
        let json = serde_json::to_string(&ipam).expect("serialises");
        let back: Ipam = serde_json::from_str(&json).expect("restores");
        assert_eq!(back, ipam);
    }
});

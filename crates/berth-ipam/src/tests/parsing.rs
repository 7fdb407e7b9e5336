//! The parsers of user input: subnets and ranges, addresses, default address pools.

use super::*;

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

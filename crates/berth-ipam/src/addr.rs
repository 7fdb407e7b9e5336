//! Address arithmetic: addresses and networks as `u128` numbers, per family.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

pub use berth_types::IpFamily;

/// An address as a number (IPv4 addresses fit in the low 32 bits).
pub(crate) fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of a number in a family. For IPv4 only the low 32 bits are used; callers only pass
/// numbers that came from an IPv4 network.
pub(crate) fn from_u128(family: IpFamily, value: u128) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// `2^host_bits - 1`: the largest offset inside a block with that many host bits.
pub(crate) fn host_mask(host_bits: u8) -> u128 {
    if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

/// First and last address of a network, as numbers (host bits of `net.addr()` are ignored).
pub(crate) fn net_bounds(net: IpNet) -> (u128, u128) {
    let bits = IpFamily::of_net(net).bits();
    let mask = host_mask(bits - net.prefix_len());
    let first = to_u128(net.addr()) & !mask;
    (first, first | mask)
}

/// Whether `inner` lies completely inside `outer` (same family).
pub(crate) fn net_within(inner: IpNet, outer: IpNet) -> bool {
    IpFamily::of_net(inner) == IpFamily::of_net(outer)
        && inner.prefix_len() >= outer.prefix_len()
        && outer.contains(&inner.addr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_of_networks() {
        let n: IpNet = "172.18.0.1/16".parse().unwrap();
        let (a, b) = net_bounds(n);
        assert_eq!(
            from_u128(IpFamily::V4, a),
            "172.18.0.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            from_u128(IpFamily::V4, b),
            "172.18.255.255".parse::<IpAddr>().unwrap()
        );
        let all: IpNet = "::/0".parse().unwrap();
        assert_eq!(net_bounds(all), (0, u128::MAX));
        let v4all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert_eq!(net_bounds(v4all), (0, u128::from(u32::MAX)));
    }

    #[test]
    fn within() {
        let s: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net_within("10.1.0.0/16".parse().unwrap(), s));
        assert!(net_within(s, s));
        assert!(!net_within("11.0.0.0/16".parse().unwrap(), s));
        assert!(!net_within("0.0.0.0/0".parse().unwrap(), s));
        assert!(!net_within("::/0".parse().unwrap(), s));
    }
}

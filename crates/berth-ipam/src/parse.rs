//! Parsing of pool and address requests as users write them (`docker network create` flags and
//! dockerd's `default-address-pools`). Pure functions; every error names the option and the bad part.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Field, Result};
use crate::space::DefaultPool;

/// Parses `ADDRESS/PREFIX` (IPv4 or IPv6) for `field`, clearing host bits: `172.29.0.1/16` becomes
/// `172.29.0.0/16`, as Docker accepts it.
///
/// # Errors
/// [`Error::InvalidCidr`] naming `field` and what is wrong (no prefix, bad address part, bad or too
/// long prefix length).
pub fn parse_cidr(field: Field, input: &str) -> Result<IpNet> {
    parse_net_as_given(field, input).map(|n| n.trunc())
}

/// Parses `ADDRESS/PREFIX` keeping the host bits (see [`parse_cidr`] for the errors).
fn parse_net_as_given(field: Field, input: &str) -> Result<IpNet> {
    let bad = |reason: &'static str| Error::InvalidCidr {
        field,
        input: input.to_owned(),
        reason,
    };
    let Some((addr, prefix)) = input.split_once('/') else {
        return Err(bad(
            "the prefix length is missing; write an address and a prefix length, e.g. 172.18.0.0/16 or 2001:db8::/64",
        ));
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| bad("the part before '/' is not an IPv4 or IPv6 address"))?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            "the prefix length after '/' is not a number from 0 to 32 (IPv4) or 128 (IPv6)",
        ));
    }
    let prefix: u8 = prefix.parse().map_err(|_| {
        bad("the prefix length after '/' is not a number from 0 to 32 (IPv4) or 128 (IPv6)")
    })?;
    let net = IpNet::new(addr, prefix).map_err(|_| match addr {
        IpAddr::V4(_) => bad("the prefix length is larger than 32, the maximum for IPv4"),
        IpAddr::V6(_) => bad("the prefix length is larger than 128, the maximum for IPv6"),
    })?;
    Ok(net)
}

/// Parses `--subnet` as given: host bits are kept (`10.60.0.5/24`), as Docker keeps and shows
/// them; a pool request clears them (the pool is `10.60.0.0/24`).
///
/// # Errors
/// [`Error::InvalidCidr`] with [`Field::Subnet`].
pub fn parse_subnet(input: &str) -> Result<IpNet> {
    parse_net_as_given(Field::Subnet, input)
}

/// Parses `--ip-range` (see [`parse_cidr`]; host bits are cleared).
///
/// # Errors
/// [`Error::InvalidCidr`] with [`Field::IpRange`].
pub fn parse_ip_range(input: &str) -> Result<IpNet> {
    parse_cidr(Field::IpRange, input)
}

/// Parses a plain IPv4 or IPv6 address given for `field`.
///
/// # Errors
/// [`Error::InvalidAddress`] naming `field`.
pub fn parse_address(field: Field, input: &str) -> Result<IpAddr> {
    input.parse().map_err(|_| Error::InvalidAddress {
        field,
        input: input.to_owned(),
        reason: if input.contains('/') {
            "expected a plain address without a prefix length, e.g. 172.18.0.1"
        } else {
            "not an IPv4 or IPv6 address, e.g. 172.18.0.1 or 2001:db8::1"
        },
    })
}

/// Parses `--gateway` (a plain address).
///
/// # Errors
/// [`Error::InvalidAddress`] with [`Field::Gateway`].
pub fn parse_gateway(input: &str) -> Result<IpAddr> {
    parse_address(Field::Gateway, input)
}

/// Parses `--aux-address NAME=IP` into the name and the address (split at the first `=`).
///
/// # Errors
/// [`Error::InvalidAddress`] with [`Field::AuxAddress`] when there is no `=`, the name is empty, or
/// the part after `=` is not an address.
pub fn parse_aux_address(input: &str) -> Result<(String, IpAddr)> {
    let bad = |reason: &'static str| Error::InvalidAddress {
        field: Field::AuxAddress,
        input: input.to_owned(),
        reason,
    };
    let Some((name, addr)) = input.split_once('=') else {
        return Err(bad("expected NAME=IP, e.g. my-router=172.28.1.5"));
    };
    if name.is_empty() {
        return Err(bad(
            "the name before '=' is empty; expected NAME=IP, e.g. my-router=172.28.1.5",
        ));
    }
    let addr = addr
        .parse()
        .map_err(|_| bad("the part after '=' is not an IPv4 or IPv6 address; expected NAME=IP"))?;
    Ok((name.to_owned(), addr))
}

/// Parses one dockerd `--default-address-pool` value, `base=CIDR,size=N` (keys in any order and
/// case, each exactly once), into a validated [`DefaultPool`]. CSV quoting is not supported.
///
/// # Errors
/// [`Error::InvalidDefaultPoolSpec`] for a field without `=`, an unknown, repeated or missing key or a
/// bad size; [`Error::InvalidCidr`] with [`Field::Base`] for a bad base; and the errors of
/// [`DefaultPool::new`] when base and size do not fit together.
pub fn parse_default_pool(input: &str) -> Result<DefaultPool> {
    let bad = |reason: String| Error::InvalidDefaultPoolSpec {
        input: input.to_owned(),
        reason,
    };
    let mut base = None;
    let mut size = None;
    for field in input.split(',') {
        let Some((key, value)) = field.split_once('=') else {
            return Err(bad(format!(
                "field {field:?} is not KEY=VALUE; expected base=CIDR,size=N"
            )));
        };
        match key.to_ascii_lowercase().as_str() {
            "base" if base.is_some() => return Err(bad("key \"base\" is given twice".to_owned())),
            "size" if size.is_some() => return Err(bad("key \"size\" is given twice".to_owned())),
            "base" => {
                let net = parse_cidr(Field::Base, value)?;
                // parse_cidr normalises; the base must already be a network address.
                let given = value
                    .split_once('/')
                    .and_then(|(a, _)| a.parse::<IpAddr>().ok());
                if given.is_some_and(|a| a != net.addr()) {
                    let raw = given
                        .and_then(|a| IpNet::new(a, net.prefix_len()).ok())
                        .unwrap_or(net);
                    return Err(Error::DefaultPoolBaseNotNetwork { base: raw });
                }
                base = Some(net);
            }
            "size" => {
                let ok = !value.is_empty()
                    && value.len() <= 3
                    && value.bytes().all(|b| b.is_ascii_digit());
                let n = ok.then(|| value.parse::<u8>().ok()).flatten().ok_or_else(|| {
                    bad(format!("size {value:?} is not a prefix length from 0 to 32 (IPv4) or 128 (IPv6)"))
                })?;
                size = Some(n);
            }
            _ => {
                return Err(bad(format!(
                    "unknown key {key:?}; the keys are base and size"
                )));
            }
        }
    }
    let base =
        base.ok_or_else(|| bad("key \"base\" is missing; expected base=CIDR,size=N".to_owned()))?;
    let size =
        size.ok_or_else(|| bad("key \"size\" is missing; expected base=CIDR,size=N".to_owned()))?;
    DefaultPool::new(base, size)
}

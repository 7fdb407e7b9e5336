//! IP addresses on links: add, delete, list.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};

use crate::error::{Error, Result};
use crate::link::LinkRef;
use crate::socket::{Handle, parse_reply};

const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;

pub(crate) use berth_types::IpFamily;

/// The rtnetlink address family of an IP family.
pub(crate) fn to_netlink(family: IpFamily) -> AddressFamily {
    match family {
        IpFamily::V4 => AddressFamily::Inet,
        IpFamily::V6 => AddressFamily::Inet6,
    }
}

/// Builds `addr/prefix_len`, refusing a prefix longer than the family allows with
/// [`Error::InvalidArgument`].
pub fn cidr(addr: IpAddr, prefix_len: u8) -> Result<IpNet> {
    let too_long = || Error::InvalidArgument {
        object: format!("address {addr}/{prefix_len}"),
        message: format!(
            "prefix length {prefix_len} is longer than an {} address ({} bits)",
            match addr {
                IpAddr::V4(_) => "IPv4",
                IpAddr::V6(_) => "IPv6",
            },
            IpFamily::of(addr).bits()
        ),
    };
    match addr {
        IpAddr::V4(a) => Ipv4Net::new(a, prefix_len)
            .map(IpNet::V4)
            .map_err(|_| too_long()),
        IpAddr::V6(a) => Ipv6Net::new(a, prefix_len)
            .map(IpNet::V6)
            .map_err(|_| too_long()),
    }
}

/// An address to put on a link: `addr/prefix`, plus options.
///
/// IPv4 addresses get the broadcast address of their subnet, as `ip addr add ... brd +` does
/// (none for /31 and /32).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrSpec {
    net: IpNet,
    nodad: bool,
    no_prefix_route: bool,
}

impl AddrSpec {
    /// The address `net.addr()` with prefix length `net.prefix_len()`.
    pub fn new(net: IpNet) -> Self {
        AddrSpec {
            net,
            nodad: false,
            no_prefix_route: false,
        }
    }

    /// IPv6: skip duplicate address detection (`IFA_F_NODAD`), so the address is usable at once.
    pub fn nodad(mut self) -> Self {
        self.nodad = true;
        self
    }

    /// Do not add the route to the subnet (`IFA_F_NOPREFIXROUTE`).
    pub fn no_prefix_route(mut self) -> Self {
        self.no_prefix_route = true;
        self
    }

    /// The address with its prefix length.
    pub fn net(&self) -> IpNet {
        self.net
    }
}

impl From<IpNet> for AddrSpec {
    fn from(net: IpNet) -> Self {
        AddrSpec::new(net)
    }
}

/// The scope of an address or route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Global.
    Universe,
    /// Site-local (IPv6, deprecated).
    Site,
    /// Valid on the link only.
    Link,
    /// Valid on this host only.
    Host,
    /// No destination.
    Nowhere,
    /// Another value.
    Other(u8),
}

impl Scope {
    pub(crate) fn from_u8(v: u8) -> Scope {
        match v {
            0 => Scope::Universe,
            200 => Scope::Site,
            253 => Scope::Link,
            254 => Scope::Host,
            255 => Scope::Nowhere,
            v => Scope::Other(v),
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Scope::Universe => 0,
            Scope::Site => 200,
            Scope::Link => 253,
            Scope::Host => 254,
            Scope::Nowhere => 255,
            Scope::Other(v) => v,
        }
    }
}

/// An address as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Address {
    /// Index of the link the address is on.
    pub index: u32,
    /// The address with its prefix length.
    pub net: IpNet,
    /// The IPv4 broadcast address, if set.
    pub broadcast: Option<Ipv4Addr>,
    /// The IPv4 label (usually the interface name).
    pub label: Option<String>,
    /// The scope.
    pub scope: Scope,
    /// Duplicate address detection was skipped (`IFA_F_NODAD`).
    pub nodad: bool,
    /// Duplicate address detection is still running (`IFA_F_TENTATIVE`): not yet usable.
    pub tentative: bool,
    /// Duplicate address detection failed (`IFA_F_DADFAILED`).
    pub dad_failed: bool,
    /// A static address (`IFA_F_PERMANENT`), as opposed to autoconfigured ones.
    pub permanent: bool,
}

impl Address {
    pub(crate) fn from_message(msg: AddressMessage) -> Option<Address> {
        let mut local = None;
        let mut address = None;
        let mut broadcast = None;
        let mut label = None;
        let mut flags = AddressFlags::from_bits_retain(u32::from(msg.header.flags.bits()));
        for attr in msg.attributes {
            match attr {
                AddressAttribute::Local(a) => local = Some(a),
                AddressAttribute::Address(a) => address = Some(a),
                AddressAttribute::Broadcast(b) => broadcast = Some(b),
                AddressAttribute::Label(l) => label = Some(l),
                AddressAttribute::Flags(f) => flags = f,
                _ => {}
            }
        }
        let addr = local.or(address)?;
        let net = cidr(addr, msg.header.prefix_len).ok()?;
        Some(Address {
            index: msg.header.index,
            net,
            broadcast,
            label,
            scope: Scope::from_u8(msg.header.scope.into()),
            nodad: flags.contains(AddressFlags::Nodad),
            tentative: flags.contains(AddressFlags::Tentative),
            dad_failed: flags.contains(AddressFlags::Dadfailed),
            permanent: flags.contains(AddressFlags::Permanent),
        })
    }
}

fn address_message(index: u32, net: &IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = to_netlink(IpFamily::of(net.addr()));
    msg.header.prefix_len = net.prefix_len();
    msg.header.index = index;
    msg.header.scope = if net.addr().is_loopback() {
        AddressScope::Host
    } else {
        AddressScope::Universe
    };
    match net {
        IpNet::V4(v4) => {
            msg.attributes
                .push(AddressAttribute::Local(v4.addr().into()));
            msg.attributes
                .push(AddressAttribute::Address(v4.addr().into()));
        }
        IpNet::V6(v6) => msg
            .attributes
            .push(AddressAttribute::Address(v6.addr().into())),
    }
    msg
}

pub(crate) fn decode_address(ty: u16, payload: &[u8]) -> Result<Option<Address>> {
    let Some(msg) = parse_reply::<AddressMessage>(ty, RTM_NEWADDR, payload, "an address message")?
    else {
        return Ok(None);
    };
    if !matches!(
        msg.header.family,
        AddressFamily::Inet | AddressFamily::Inet6
    ) {
        return Ok(None);
    }
    Ok(Address::from_message(msg))
}

impl Handle {
    /// Adds an address to a link. [`Error::Exists`] if the link already has it.
    pub fn addr_add(&self, link: impl Into<LinkRef>, spec: &AddrSpec) -> Result<()> {
        let link = link.into();
        let index = self.resolve(&link)?;
        let mut msg = address_message(index, &spec.net);
        let mut flags = AddressFlags::empty();
        if spec.nodad {
            flags |= AddressFlags::Nodad;
        }
        if spec.no_prefix_route {
            flags |= AddressFlags::Noprefixroute;
        }
        msg.header.flags = AddressHeaderFlags::from_bits_retain((flags.bits() & 0xff) as u8);
        if !flags.is_empty() {
            msg.attributes.push(AddressAttribute::Flags(flags));
        }
        if let IpNet::V4(v4) = spec.net {
            if v4.prefix_len() <= 30 {
                msg.attributes
                    .push(AddressAttribute::Broadcast(v4.broadcast()));
            }
        }
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &msg, &|| {
            format!("address {} on {link}", spec.net)
        })
    }

    /// Removes an address from a link. [`Error::NotFound`] if the link does not have it.
    pub fn addr_delete(&self, link: impl Into<LinkRef>, net: IpNet) -> Result<()> {
        let link = link.into();
        let index = self.resolve(&link)?;
        let msg = address_message(index, &net);
        self.request(RTM_DELADDR, 0, &msg, &|| format!("address {net} on {link}"))
    }

    /// The IPv4 and IPv6 addresses of one link.
    pub fn addr_list(&self, link: impl Into<LinkRef>) -> Result<Vec<Address>> {
        let link = link.into();
        let index = self.resolve(&link)?;
        let mut msg = AddressMessage::default();
        msg.header.index = index; // filtered by the kernel with strict checking, and below
        let mut all = self.dump(
            RTM_GETADDR,
            &msg,
            &|| format!("addresses of {link}"),
            &mut decode_address,
        )?;
        all.retain(|a| a.index == index);
        Ok(all)
    }

    /// Every IPv4 and IPv6 address in the namespace.
    pub fn addr_list_all(&self) -> Result<Vec<Address>> {
        let msg = AddressMessage::default();
        self.dump(
            RTM_GETADDR,
            &msg,
            &|| "addresses".into(),
            &mut decode_address,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_refuses_long_prefixes() {
        assert!(cidr("10.0.0.1".parse().unwrap(), 32).is_ok());
        let e = cidr("10.0.0.1".parse().unwrap(), 33).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }));
        assert!(e.to_string().contains("10.0.0.1/33"), "{e}");
        assert!(cidr("fd00::1".parse().unwrap(), 128).is_ok());
        assert!(cidr("fd00::1".parse().unwrap(), 129).is_err());
    }

    #[test]
    fn v4_message_carries_local_and_address() {
        let net: IpNet = "192.0.2.5/24".parse().unwrap();
        let m = address_message(3, &net);
        assert_eq!(m.header.prefix_len, 24);
        assert_eq!(m.header.index, 3);
        assert_eq!(m.attributes.len(), 2);
        let back = Address::from_message(m).unwrap();
        assert_eq!(back.net, net);
    }
}

//! Neighbour (ARP / NDP) entries: add, replace, delete, list.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};

use crate::addr::{IpFamily, to_netlink};
use crate::error::Result;
use crate::link::LinkRef;
use crate::mac::MacAddr;
use crate::socket::{Handle, parse_reply};

pub(crate) const RTM_NEWNEIGH: u16 = 28;
pub(crate) const RTM_DELNEIGH: u16 = 29;
pub(crate) const RTM_GETNEIGH: u16 = 30;

/// The state of a neighbour entry (`NUD_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NeighState {
    /// Static, never expires or gets probed (`nud permanent`).
    Permanent,
    /// Static, no resolution needed (`nud noarp`).
    Noarp,
    /// Confirmed recently.
    Reachable,
    /// Valid but not confirmed recently.
    Stale,
    /// Waiting before probing.
    Delay,
    /// Being probed.
    Probe,
    /// Resolution in progress.
    Incomplete,
    /// Resolution failed.
    Failed,
    /// No state.
    None,
    /// A combination or value this version does not name.
    Other(u16),
}

impl NeighState {
    pub(crate) fn from_netlink(s: NeighbourState) -> NeighState {
        match s {
            NeighbourState::Permanent => NeighState::Permanent,
            NeighbourState::Noarp => NeighState::Noarp,
            NeighbourState::Reachable => NeighState::Reachable,
            NeighbourState::Stale => NeighState::Stale,
            NeighbourState::Delay => NeighState::Delay,
            NeighbourState::Probe => NeighState::Probe,
            NeighbourState::Incomplete => NeighState::Incomplete,
            NeighbourState::Failed => NeighState::Failed,
            NeighbourState::None => NeighState::None,
            other => NeighState::Other(u16::from(other)),
        }
    }
}

/// A permanent neighbour entry: `ip neigh add IP lladdr MAC dev LINK nud permanent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighSpec {
    link: LinkRef,
    ip: IpAddr,
    mac: MacAddr,
}

impl NeighSpec {
    /// `ip` is at `mac` on `link`.
    pub fn new(link: impl Into<LinkRef>, ip: IpAddr, mac: MacAddr) -> Self {
        NeighSpec {
            link: link.into(),
            ip,
            mac,
        }
    }

    fn describe(&self) -> String {
        format!("neighbour {} lladdr {} on {}", self.ip, self.mac, self.link)
    }
}

/// A neighbour entry as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Neighbour {
    /// The index of the link.
    pub index: u32,
    /// The IP address.
    pub ip: IpAddr,
    /// The link-layer address, when resolved.
    pub mac: Option<MacAddr>,
    /// The state.
    pub state: NeighState,
}

fn message(index: u32, ip: IpAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = to_netlink(IpFamily::of(ip));
    msg.header.ifindex = index;
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::from(ip)));
    msg
}

pub(crate) fn decode_neighbour(ty: u16, payload: &[u8]) -> Result<Option<Neighbour>> {
    let Some(msg) =
        parse_reply::<NeighbourMessage>(ty, RTM_NEWNEIGH, payload, "a neighbour message")?
    else {
        return Ok(None);
    };
    if !matches!(
        msg.header.family,
        AddressFamily::Inet | AddressFamily::Inet6
    ) {
        return Ok(None);
    }
    let mut ip = None;
    let mut mac = None;
    for attr in msg.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(a.into()),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => ip = Some(a.into()),
            NeighbourAttribute::LinkLayerAddress(l) => mac = MacAddr::from_slice(&l),
            _ => {}
        }
    }
    Ok(ip.map(|ip| Neighbour {
        index: msg.header.ifindex,
        ip,
        mac,
        state: NeighState::from_netlink(msg.header.state),
    }))
}

impl Handle {
    fn neigh_modify(&self, spec: &NeighSpec, flags: u16) -> Result<()> {
        let index = self.resolve(&spec.link)?;
        let mut msg = message(index, spec.ip);
        msg.header.state = NeighbourState::Permanent;
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(spec.mac.0.to_vec()));
        self.request(RTM_NEWNEIGH, flags, &msg, &|| spec.describe())
    }

    /// Adds a permanent neighbour entry. [`Error::Exists`](crate::Error::Exists) if there is one for that IP on that
    /// link (whatever its state).
    pub fn neigh_add(&self, spec: &NeighSpec) -> Result<()> {
        self.neigh_modify(spec, NLM_F_CREATE | NLM_F_EXCL)
    }

    /// Adds a permanent neighbour entry, or replaces the one for that IP on that link.
    pub fn neigh_replace(&self, spec: &NeighSpec) -> Result<()> {
        self.neigh_modify(spec, NLM_F_CREATE | NLM_F_REPLACE)
    }

    /// Deletes the neighbour entry of `ip` on `link`. [`Error::NotFound`](crate::Error::NotFound) if there is none.
    pub fn neigh_delete(&self, link: impl Into<LinkRef>, ip: IpAddr) -> Result<()> {
        let link = link.into();
        let index = self.resolve(&link)?;
        let msg = message(index, ip);
        self.request(RTM_DELNEIGH, 0, &msg, &|| {
            format!("neighbour {ip} on {link}")
        })
    }

    /// The IPv4 and IPv6 neighbour entries of one link.
    pub fn neigh_list(&self, link: impl Into<LinkRef>) -> Result<Vec<Neighbour>> {
        let link = link.into();
        let index = self.resolve(&link)?;
        let mut msg = NeighbourMessage::default();
        msg.attributes.push(NeighbourAttribute::IfIndex(index));
        let mut all = self.dump(
            RTM_GETNEIGH,
            &msg,
            &|| format!("neighbours of {link}"),
            &mut decode_neighbour,
        )?;
        all.retain(|n| n.index == index);
        Ok(all)
    }

    /// Every IPv4 and IPv6 neighbour entry of the namespace.
    pub fn neigh_list_all(&self) -> Result<Vec<Neighbour>> {
        let msg = NeighbourMessage::default();
        self.dump(
            RTM_GETNEIGH,
            &msg,
            &|| "neighbours".into(),
            &mut decode_neighbour,
        )
    }
}

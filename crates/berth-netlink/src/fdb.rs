//! Bridge forwarding database (FDB) entries: on a bridge's ports (`master`) or on a device's own
//! table (`self`), e.g. the remote VTEPs of a VXLAN device.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};

use crate::error::{Error, Result};
use crate::link::{LinkRef, MAX_VNI};
use crate::mac::MacAddr;
use crate::neigh::{NeighState, RTM_DELNEIGH, RTM_GETNEIGH, RTM_NEWNEIGH};
use crate::socket::{Handle, parse_reply};

/// An FDB entry to add, append or delete: `bridge fdb add MAC dev LINK [dst IP] [vni N] self`.
///
/// Entries are permanent. By default they go to the device's own table (`self`), as `bridge fdb`
/// does when neither `self` nor `master` is given.
///
/// ```
/// use berth_netlink::{FdbSpec, MacAddr};
/// // the flood entry towards one remote VTEP: bridge fdb append 00:00:00:00:00:00 dev vx0 dst 192.0.2.2 self
/// let flood = FdbSpec::new("vx0", MacAddr::ZERO).dst("192.0.2.2".parse().unwrap());
/// # let _ = flood;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbSpec {
    link: LinkRef,
    mac: MacAddr,
    dst: Option<IpAddr>,
    vni: Option<u32>,
    port: Option<u16>,
    vlan: Option<u16>,
    on_self: bool,
    on_master: bool,
}

impl FdbSpec {
    /// An entry for `mac` on `link`.
    pub fn new(link: impl Into<LinkRef>, mac: MacAddr) -> Self {
        FdbSpec {
            link: link.into(),
            mac,
            dst: None,
            vni: None,
            port: None,
            vlan: None,
            on_self: false,
            on_master: false,
        }
    }

    /// The remote VTEP address (`NDA_DST`), for VXLAN devices.
    pub fn dst(mut self, dst: IpAddr) -> Self {
        self.dst = Some(dst);
        self
    }

    /// The remote VNI, for VXLAN devices (default: the device's).
    pub fn vni(mut self, vni: u32) -> Self {
        self.vni = Some(vni);
        self
    }

    /// The remote UDP port, for VXLAN devices (default: the device's).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The VLAN, on a VLAN-filtering bridge.
    pub fn vlan(mut self, vlan: u16) -> Self {
        self.vlan = Some(vlan);
        self
    }

    /// Program the device's own table (`self`, `NTF_SELF`).
    pub fn on_self(mut self) -> Self {
        self.on_self = true;
        self
    }

    /// Program the master bridge's table for this port (`master`, `NTF_MASTER`).
    pub fn on_master(mut self) -> Self {
        self.on_master = true;
        self
    }

    fn describe(&self) -> String {
        let mut s = format!("fdb entry {} on {}", self.mac, self.link);
        if let Some(d) = self.dst {
            s.push_str(&format!(" dst {d}"));
        }
        if let Some(v) = self.vni {
            s.push_str(&format!(" vni {v}"));
        }
        s
    }

    fn message(&self, handle: &Handle) -> Result<NeighbourMessage> {
        if let Some(v) = self.vni.filter(|v| *v > MAX_VNI) {
            return Err(Error::InvalidArgument {
                object: self.describe(),
                message: format!("VNI {v} is out of range (0 to {MAX_VNI})"),
            });
        }
        let index = handle.resolve(&self.link)?;
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = index;
        msg.header.state = NeighbourState::Permanent;
        let mut flags = NeighbourFlags::empty();
        if self.on_self || !self.on_master {
            flags |= NeighbourFlags::Own;
        }
        if self.on_master {
            flags |= NeighbourFlags::Controller;
        }
        msg.header.flags = flags;
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(self.mac.0.to_vec()));
        if let Some(dst) = self.dst {
            msg.attributes
                .push(NeighbourAttribute::Destination(NeighbourAddress::from(dst)));
        }
        if let Some(v) = self.vni {
            msg.attributes.push(NeighbourAttribute::Vni(v));
        }
        if let Some(p) = self.port {
            msg.attributes.push(NeighbourAttribute::Port(p));
        }
        if let Some(v) = self.vlan {
            msg.attributes.push(NeighbourAttribute::Vlan(v));
        }
        Ok(msg)
    }
}

/// An FDB entry as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FdbEntry {
    /// The index of the link (port or device) the entry is for.
    pub index: u32,
    /// The MAC address.
    pub mac: MacAddr,
    /// The remote VTEP, for VXLAN devices.
    pub dst: Option<IpAddr>,
    /// The remote VNI, when it differs from the device's.
    pub vni: Option<u32>,
    /// The remote UDP port, when it differs from the device's.
    pub port: Option<u16>,
    /// The VLAN.
    pub vlan: Option<u16>,
    /// The bridge the entry belongs to, for entries of a bridge port.
    pub master: Option<u32>,
    /// The entry is in the device's own table (`self`).
    pub on_self: bool,
    /// The entry is in the master bridge's table (`master`): the kernel reports the bridge
    /// (`NDA_MASTER`) or the `NTF_MASTER` flag.
    pub on_master: bool,
    /// The state (`Permanent` for static entries, `Reachable`/`Stale` for learned ones).
    pub state: NeighState,
}

pub(crate) fn decode_fdb(ty: u16, payload: &[u8]) -> Result<Option<FdbEntry>> {
    let Some(msg) = parse_reply::<NeighbourMessage>(ty, RTM_NEWNEIGH, payload, "an fdb message")?
    else {
        return Ok(None);
    };
    if msg.header.family != AddressFamily::Bridge {
        return Ok(None);
    }
    let mut mac = None;
    let mut entry = FdbEntry {
        index: msg.header.ifindex,
        mac: MacAddr::ZERO,
        dst: None,
        vni: None,
        port: None,
        vlan: None,
        master: None,
        on_self: msg.header.flags.contains(NeighbourFlags::Own),
        on_master: msg.header.flags.contains(NeighbourFlags::Controller),
        state: NeighState::from_netlink(msg.header.state),
    };
    for attr in msg.attributes {
        match attr {
            NeighbourAttribute::LinkLayerAddress(l) => mac = MacAddr::from_slice(&l),
            NeighbourAttribute::Destination(d) => entry.dst = ip_of(&d),
            NeighbourAttribute::Vni(v) => entry.vni = Some(v),
            NeighbourAttribute::Port(p) => entry.port = Some(p),
            NeighbourAttribute::Vlan(v) => entry.vlan = Some(v),
            NeighbourAttribute::Controller(m) if m != 0 => entry.master = Some(m),
            _ => {}
        }
    }
    entry.on_master |= entry.master.is_some();
    Ok(mac.map(|mac| FdbEntry { mac, ..entry }))
}

/// FDB dumps carry `NDA_DST` in a bridge-family message, so the address is decoded by length.
fn ip_of(a: &NeighbourAddress) -> Option<IpAddr> {
    match a {
        NeighbourAddress::Inet(v4) => Some((*v4).into()),
        NeighbourAddress::Inet6(v6) => Some((*v6).into()),
        NeighbourAddress::Other(raw) => {
            if let Ok(b) = <[u8; 4]>::try_from(raw.as_slice()) {
                Some(Ipv4Addr::from(b).into())
            } else if let Ok(b) = <[u8; 16]>::try_from(raw.as_slice()) {
                Some(Ipv6Addr::from(b).into())
            } else {
                None
            }
        }
        _ => None,
    }
}

impl Handle {
    /// Adds an FDB entry. [`Error::Exists`] if the MAC already has an entry on that device.
    pub fn fdb_add(&self, spec: &FdbSpec) -> Result<()> {
        let msg = spec.message(self)?;
        self.request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL, &msg, &|| {
            spec.describe()
        })
    }

    /// Appends an FDB entry (`NLM_F_APPEND`): on a VXLAN device, adds one more remote for the
    /// same MAC, e.g. one all-zeros flood entry per remote VTEP.
    pub fn fdb_append(&self, spec: &FdbSpec) -> Result<()> {
        let msg = spec.message(self)?;
        self.request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_APPEND, &msg, &|| {
            spec.describe()
        })
    }

    /// Adds an FDB entry or replaces the one for that MAC.
    pub fn fdb_replace(&self, spec: &FdbSpec) -> Result<()> {
        let msg = spec.message(self)?;
        self.request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, &msg, &|| {
            spec.describe()
        })
    }

    /// Deletes an FDB entry; on a VXLAN device, with a `dst` only that remote goes.
    /// [`Error::NotFound`] if the MAC has no entry. (The kernel reports success when a VXLAN
    /// device knows the MAC but not the given remote.)
    pub fn fdb_delete(&self, spec: &FdbSpec) -> Result<()> {
        let msg = spec.message(self)?;
        self.request(RTM_DELNEIGH, 0, &msg, &|| spec.describe())
    }

    /// The FDB entries of one device: its own table, plus its entries in its master bridge's table
    /// when it is a bridge port.
    pub fn fdb_list(&self, link: impl Into<LinkRef>) -> Result<Vec<FdbEntry>> {
        let link = link.into();
        let index = self.resolve(&link)?;
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.attributes.push(NeighbourAttribute::IfIndex(index));
        let mut all = self.dump(
            RTM_GETNEIGH,
            &msg,
            &|| format!("fdb entries of {link}"),
            &mut decode_fdb,
        )?;
        all.retain(|e| e.index == index);
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_destinations_decode_by_length() {
        assert_eq!(
            ip_of(&NeighbourAddress::Other(vec![192, 0, 2, 1])),
            Some("192.0.2.1".parse().unwrap())
        );
        let mut v6 = vec![0u8; 16];
        v6[15] = 1;
        assert_eq!(
            ip_of(&NeighbourAddress::Other(v6)),
            Some("::1".parse().unwrap())
        );
        assert_eq!(ip_of(&NeighbourAddress::Other(vec![1, 2, 3])), None);
    }
}

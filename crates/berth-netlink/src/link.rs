//! Links: look up, list, change, move, delete; the [`Link`] the kernel reports. Creation is in
//! `link_spec`.

use std::fmt;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_route::link::{
    InfoBridge, InfoBridgePort, InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoPortData,
    InfoPortKind, InfoVxlan, IpVlanMode as NlIpVlanMode, LinkAttribute, LinkExtentMask, LinkFlags,
    LinkInfo, LinkMessage, MacVlanMode as NlMacVlanMode, State,
};

use crate::Netns;
use crate::error::{Error, Result};
use crate::link_spec::check_mtu;
use crate::mac::{MacAddr, check_unicast};
use crate::name::validate_ifname;
use crate::socket::{Handle, parse_reply};

pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_SETLINK: u16 = 19;

/// Smallest MTU berth accepts: IPv4's minimum (RFC 791).
pub const MIN_MTU: u32 = 68;
/// Largest MTU berth accepts: the largest Ethernet-style MTU the kernel supports (`ETH_MAX_MTU`).
pub const MAX_MTU: u32 = 65535;
/// Largest VXLAN network identifier (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;
/// Longest link alias (`IFLA_IFALIAS`) the kernel keeps, in bytes: `IFALIASZ` (256) less the
/// terminating NUL, which the kernel counts against the limit, less one more.
pub(crate) const MAX_ALIAS_LEN: usize = 254;

/// Refuses an alias the kernel would refuse or cut: longer than [`MAX_ALIAS_LEN`] bytes, or
/// with a NUL (which would end it early).
pub(crate) fn check_alias(alias: &str, object: impl FnOnce() -> String) -> Result<()> {
    let message = if alias.len() > MAX_ALIAS_LEN {
        format!(
            "the alias is {} bytes long; the kernel keeps at most {MAX_ALIAS_LEN}",
            alias.len()
        )
    } else if alias.contains('\0') {
        "the alias contains NUL".to_owned()
    } else {
        return Ok(());
    };
    Err(Error::InvalidArgument {
        object: object(),
        message,
    })
}

/// Names an existing link, by index or by name. Built from a `u32`, a `&str`/`String` or a
/// [`Link`]. Names are validated before any request is sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LinkRef {
    /// The interface index (`ifindex`).
    Index(u32),
    /// The interface name.
    Name(String),
}

impl LinkRef {
    /// Refuses bad names (see [`validate_ifname`]) and index 0.
    pub(crate) fn validate(&self) -> Result<()> {
        match self {
            LinkRef::Name(n) => validate_ifname(n),
            LinkRef::Index(0) => Err(Error::InvalidArgument {
                object: "link index 0".into(),
                message: "interface indices start at 1".into(),
            }),
            LinkRef::Index(_) => Ok(()),
        }
    }
}

impl fmt::Display for LinkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkRef::Index(i) => write!(f, "link index {i}"),
            LinkRef::Name(n) => write!(f, "link {n:?}"),
        }
    }
}

impl From<u32> for LinkRef {
    fn from(i: u32) -> Self {
        LinkRef::Index(i)
    }
}

impl From<&str> for LinkRef {
    fn from(n: &str) -> Self {
        LinkRef::Name(n.to_owned())
    }
}

impl From<String> for LinkRef {
    fn from(n: String) -> Self {
        LinkRef::Name(n)
    }
}

impl From<&String> for LinkRef {
    fn from(n: &String) -> Self {
        LinkRef::Name(n.clone())
    }
}

impl From<&Link> for LinkRef {
    fn from(l: &Link) -> Self {
        LinkRef::Index(l.index)
    }
}

impl From<&LinkRef> for LinkRef {
    fn from(l: &LinkRef) -> Self {
        l.clone()
    }
}

/// The kind of a link (`IFLA_INFO_KIND`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkKind {
    /// A Linux bridge.
    Bridge,
    /// One end of a veth pair.
    Veth,
    /// A VXLAN tunnel endpoint.
    Vxlan,
    /// A macvlan device on a parent link.
    Macvlan,
    /// An ipvlan device on a parent link.
    Ipvlan,
    /// A dummy device.
    Dummy,
    /// Any other kind, by its kernel name.
    Other(String),
}

impl LinkKind {
    fn from_info(kind: &InfoKind) -> LinkKind {
        match kind {
            InfoKind::Bridge => LinkKind::Bridge,
            InfoKind::Veth => LinkKind::Veth,
            InfoKind::Vxlan => LinkKind::Vxlan,
            InfoKind::MacVlan => LinkKind::Macvlan,
            InfoKind::IpVlan => LinkKind::Ipvlan,
            InfoKind::Dummy => LinkKind::Dummy,
            other => LinkKind::Other(other.to_string()),
        }
    }
}

/// Macvlan modes (`ip link add ... type macvlan mode MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacvlanMode {
    /// No traffic between macvlans of the same parent.
    Private,
    /// Traffic between macvlans goes out to the adjacent switch (802.1Qbg).
    Vepa,
    /// Macvlans of the same parent reach each other directly (Docker's default).
    Bridge,
    /// One macvlan takes over the parent (it gets the parent's MAC).
    Passthru,
}

impl MacvlanMode {
    pub(crate) fn to_netlink(self) -> NlMacVlanMode {
        match self {
            MacvlanMode::Private => NlMacVlanMode::Private,
            MacvlanMode::Vepa => NlMacVlanMode::Vepa,
            MacvlanMode::Bridge => NlMacVlanMode::Bridge,
            MacvlanMode::Passthru => NlMacVlanMode::Passthrough,
        }
    }

    fn from_netlink(m: NlMacVlanMode) -> Option<MacvlanMode> {
        match m {
            NlMacVlanMode::Private => Some(MacvlanMode::Private),
            NlMacVlanMode::Vepa => Some(MacvlanMode::Vepa),
            NlMacVlanMode::Bridge => Some(MacvlanMode::Bridge),
            NlMacVlanMode::Passthrough => Some(MacvlanMode::Passthru),
            _ => None,
        }
    }
}

/// Ipvlan modes (`ip link add ... type ipvlan mode MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpvlanMode {
    /// Layer 2: slaves share the parent's MAC, ARP/ND happen on the slaves.
    L2,
    /// Layer 3: the parent routes; no broadcast or multicast.
    L3,
    /// Layer 3 with netfilter (conntrack) on the slave's traffic.
    L3s,
}

impl IpvlanMode {
    pub(crate) fn to_netlink(self) -> NlIpVlanMode {
        match self {
            IpvlanMode::L2 => NlIpVlanMode::L2,
            IpvlanMode::L3 => NlIpVlanMode::L3,
            IpvlanMode::L3s => NlIpVlanMode::L3S,
        }
    }

    fn from_netlink(m: NlIpVlanMode) -> Option<IpvlanMode> {
        match m {
            NlIpVlanMode::L2 => Some(IpvlanMode::L2),
            NlIpVlanMode::L3 => Some(IpvlanMode::L3),
            NlIpVlanMode::L3S => Some(IpvlanMode::L3s),
            _ => None,
        }
    }
}

/// RFC 2863 operational state of a link (`IFLA_OPERSTATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OperState {
    /// The driver does not report a state (dummy, loopback, bridges without ports...).
    Unknown,
    /// Some component is missing.
    NotPresent,
    /// Down.
    Down,
    /// Down because the device it depends on is down (e.g. a veth whose peer is down).
    LowerLayerDown,
    /// In test mode.
    Testing,
    /// Waiting for an external event.
    Dormant,
    /// Up and able to pass packets.
    Up,
    /// A value this version does not know.
    Other(u8),
}

impl OperState {
    fn from_netlink(s: State) -> OperState {
        match s {
            State::Unknown => OperState::Unknown,
            State::NotPresent => OperState::NotPresent,
            State::Down => OperState::Down,
            State::LowerLayerDown => OperState::LowerLayerDown,
            State::Testing => OperState::Testing,
            State::Dormant => OperState::Dormant,
            State::Up => OperState::Up,
            State::Other(v) => OperState::Other(v),
            _ => OperState::Other(u8::MAX),
        }
    }
}

/// What the kernel reports about a bridge device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeInfo {
    /// IGMP/MLD snooping (`mcast_snooping`), when the kernel reports it.
    pub mcast_snooping: Option<bool>,
}

/// What the kernel reports about a VXLAN device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VxlanInfo {
    /// The VXLAN network identifier.
    pub vni: u32,
    /// The UDP destination port.
    pub port: Option<u16>,
    /// The local (source) VTEP address.
    pub local: Option<IpAddr>,
    /// Whether the device learns remote MACs from received packets.
    pub learning: Option<bool>,
    /// Index of the underlying device, if one was given.
    pub underlay: Option<u32>,
}

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Link {
    /// The interface index.
    pub index: u32,
    /// The interface name.
    pub name: String,
    /// The kind (`None` for devices without one: loopback, physical NICs).
    pub kind: Option<LinkKind>,
    /// The MTU.
    pub mtu: u32,
    /// The hardware address, for Ethernet-like links.
    pub mac: Option<MacAddr>,
    /// Index of the master (e.g. the bridge a veth is a port of).
    pub master: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Carrier present (`IFF_LOWER_UP`).
    pub lower_up: bool,
    /// Operational state.
    pub oper_state: OperState,
    /// `IFLA_LINK`: the index of the veth peer or of the lower device (macvlan, ipvlan), which may
    /// live in another namespace (see [`Link::link_netnsid`]).
    pub parent: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the id, in this namespace, of the namespace holding the peer or lower
    /// device, when that is another namespace.
    pub link_netnsid: Option<i32>,
    /// Bridge parameters, for bridges.
    pub bridge: Option<BridgeInfo>,
    /// VXLAN parameters, for VXLAN devices.
    pub vxlan: Option<VxlanInfo>,
    /// Mode of a macvlan device.
    pub macvlan_mode: Option<MacvlanMode>,
    /// Mode of an ipvlan device.
    pub ipvlan_mode: Option<IpvlanMode>,
    /// The alias (`IFLA_IFALIAS`, `ip link set dev X alias TEXT`); `None` when unset or empty.
    /// A free-form label the kernel keeps and reports but never acts on: berth's drivers mark
    /// the links they make with it.
    pub alias: Option<String>,
}

impl Link {
    pub(crate) fn from_message(msg: LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            mtu: 0,
            mac: None,
            master: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            lower_up: msg.header.flags.contains(LinkFlags::LowerUp),
            oper_state: OperState::Unknown,
            parent: None,
            link_netnsid: None,
            bridge: None,
            vxlan: None,
            macvlan_mode: None,
            ipvlan_mode: None,
            alias: None,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n,
                LinkAttribute::Mtu(m) => link.mtu = m,
                LinkAttribute::Address(a) => link.mac = MacAddr::from_slice(&a),
                LinkAttribute::Controller(m) if m != 0 => link.master = Some(m),
                LinkAttribute::OperState(s) => link.oper_state = OperState::from_netlink(s),
                LinkAttribute::Link(p) if p != 0 => link.parent = Some(p),
                LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(id),
                LinkAttribute::LinkInfo(infos) => link.apply_info(infos),
                LinkAttribute::IfAlias(a) if !a.is_empty() => link.alias = Some(a),
                _ => {}
            }
        }
        link
    }

    fn apply_info(&mut self, infos: Vec<LinkInfo>) {
        for info in infos {
            match info {
                LinkInfo::Kind(k) => self.kind = Some(LinkKind::from_info(&k)),
                LinkInfo::Data(InfoData::Vxlan(attrs)) => {
                    let mut v = VxlanInfo {
                        vni: 0,
                        port: None,
                        local: None,
                        learning: None,
                        underlay: None,
                    };
                    for a in attrs {
                        match a {
                            InfoVxlan::Id(id) => v.vni = id,
                            InfoVxlan::Port(p) => v.port = Some(p),
                            InfoVxlan::Local(a) => v.local = Some(a.into()),
                            InfoVxlan::Local6(a) => v.local = Some(a.into()),
                            InfoVxlan::Learning(l) => v.learning = Some(l),
                            InfoVxlan::Link(l) if l != 0 => v.underlay = Some(l),
                            _ => {}
                        }
                    }
                    self.vxlan = Some(v);
                }
                LinkInfo::Data(InfoData::Bridge(attrs)) => {
                    let mut b = BridgeInfo {
                        mcast_snooping: None,
                    };
                    for a in attrs {
                        if let InfoBridge::MulticastSnooping(on) = a {
                            b.mcast_snooping = Some(on);
                        }
                    }
                    self.bridge = Some(b);
                }
                LinkInfo::Data(InfoData::MacVlan(attrs)) => {
                    for a in attrs {
                        if let InfoMacVlan::Mode(m) = a {
                            self.macvlan_mode = MacvlanMode::from_netlink(m);
                        }
                    }
                }
                LinkInfo::Data(InfoData::IpVlan(attrs)) => {
                    for a in attrs {
                        if let InfoIpVlan::Mode(m) = a {
                            self.ipvlan_mode = IpvlanMode::from_netlink(m);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Several changes to one link, applied in one request by [`Handle::link_update`].
#[derive(Debug, Clone, Default)]
pub struct LinkUpdate {
    up: Option<bool>,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
    master: Option<Option<LinkRef>>,
    name: Option<String>,
    alias: Option<String>,
}

impl LinkUpdate {
    /// No change yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Brings the link up.
    pub fn up(mut self) -> Self {
        self.up = Some(true);
        self
    }

    /// Takes the link down.
    pub fn down(mut self) -> Self {
        self.up = Some(false);
        self
    }

    /// Sets the MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Sets the MAC address.
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Makes the link a port of `master`.
    pub fn master(mut self, master: impl Into<LinkRef>) -> Self {
        self.master = Some(Some(master.into()));
        self
    }

    /// Detaches the link from its master.
    pub fn no_master(mut self) -> Self {
        self.master = Some(None);
        self
    }

    /// Renames the link (the kernel refuses to rename a link that is up).
    pub fn rename(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the link's alias (`IFLA_IFALIAS`, at most 254 bytes, no NUL); an empty alias
    /// removes it.
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = Some(alias.into());
        self
    }

    fn validate(&self, object: &dyn Fn() -> String) -> Result<()> {
        check_mtu(self.mtu, object)?;
        if let Some(mac) = &self.mac {
            check_unicast(mac, object)?;
        }
        if let Some(Some(m)) = &self.master {
            m.validate()?;
        }
        if let Some(n) = &self.name {
            validate_ifname(n)?;
        }
        if let Some(a) = &self.alias {
            check_alias(a, object)?;
        }
        Ok(())
    }
}

pub(crate) fn set_up_flags(msg: &mut LinkMessage, up: bool) {
    msg.header.change_mask |= LinkFlags::Up;
    if up {
        msg.header.flags |= LinkFlags::Up;
    } else {
        msg.header.flags.remove(LinkFlags::Up);
    }
}

fn skip_stats() -> LinkAttribute {
    LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])
}

/// Fills in the header index or the `IFLA_IFNAME` attribute that selects an existing link.
fn select(msg: &mut LinkMessage, link: &LinkRef) {
    match link {
        LinkRef::Index(i) => msg.header.index = *i,
        LinkRef::Name(n) => msg.attributes.push(LinkAttribute::IfName(n.clone())),
    }
}

pub(crate) fn decode_link(ty: u16, payload: &[u8]) -> Result<Option<Link>> {
    let Some(msg) = parse_reply::<LinkMessage>(ty, RTM_NEWLINK, payload, "a link message")? else {
        return Ok(None);
    };
    Ok(Some(Link::from_message(msg)))
}

impl Handle {
    /// Looks a link up by name or index; `None` if there is no such link.
    pub fn link_get(&self, link: impl Into<LinkRef>) -> Result<Option<Link>> {
        let link = link.into();
        link.validate()?;
        let mut msg = LinkMessage::default();
        select(&mut msg, &link);
        msg.attributes.push(skip_stats());
        match self.get(RTM_GETLINK, &msg, &|| link.to_string(), &mut decode_link) {
            Ok(found) => Ok(found),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Looks a link up by name or index; [`Error::NotFound`] if there is no such link.
    pub fn link(&self, link: impl Into<LinkRef>) -> Result<Link> {
        let link = link.into();
        self.link_get(&link)?.ok_or_else(|| Error::NotFound {
            object: link.to_string(),
        })
    }

    /// The index of a link ([`Error::NotFound`] if there is none). No request for an index.
    pub fn link_index(&self, link: impl Into<LinkRef>) -> Result<u32> {
        self.resolve(&link.into())
    }

    pub(crate) fn resolve(&self, link: &LinkRef) -> Result<u32> {
        link.validate()?;
        match link {
            LinkRef::Index(i) => Ok(*i),
            LinkRef::Name(_) => {
                // Only the index is needed: read it from the reply's ifinfomsg header
                // (family, pad, type, index, ...) instead of decoding every attribute.
                let mut msg = LinkMessage::default();
                select(&mut msg, link);
                msg.attributes.push(skip_stats());
                let found = self.get(RTM_GETLINK, &msg, &|| link.to_string(), &mut |ty, p| {
                    Ok((ty == RTM_NEWLINK && p.len() >= 8)
                        .then(|| u32::from_ne_bytes([p[4], p[5], p[6], p[7]])))
                })?;
                found.ok_or_else(|| Error::NotFound {
                    object: link.to_string(),
                })
            }
        }
    }

    /// Every link of the namespace (a multi-part dump).
    pub fn link_list(&self) -> Result<Vec<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(skip_stats());
        self.dump(RTM_GETLINK, &msg, &|| "links".into(), &mut decode_link)
    }

    /// Deletes a link (both ends, for a veth pair).
    pub fn link_delete(&self, link: impl Into<LinkRef>) -> Result<()> {
        let link = link.into();
        link.validate()?;
        let mut msg = LinkMessage::default();
        select(&mut msg, &link);
        self.request(RTM_DELLINK, 0, &msg, &|| link.to_string())
    }

    /// Applies several changes to one link in one request.
    pub fn link_update(&self, link: impl Into<LinkRef>, update: &LinkUpdate) -> Result<()> {
        let link = link.into();
        link.validate()?;
        update.validate(&|| link.to_string())?;
        let mut msg = LinkMessage::default();
        // A rename needs the index: IFLA_IFNAME then carries the new name.
        if update.name.is_some() {
            msg.header.index = self.resolve(&link)?;
        } else {
            select(&mut msg, &link);
        }
        if let Some(up) = update.up {
            set_up_flags(&mut msg, up);
        }
        if let Some(mtu) = update.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = update.mac {
            msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        if let Some(master) = &update.master {
            let index = match master {
                Some(m) => self.resolve(m)?,
                None => 0,
            };
            msg.attributes.push(LinkAttribute::Controller(index));
        }
        if let Some(name) = &update.name {
            msg.attributes.push(LinkAttribute::IfName(name.clone()));
        }
        if let Some(alias) = &update.alias {
            msg.attributes.push(LinkAttribute::IfAlias(alias.clone()));
        }
        let object = || match (&update.name, &update.master) {
            (Some(n), _) => format!("{link} (renaming to {n:?})"),
            (None, Some(Some(m))) => format!("{link} (master {m})"),
            _ => link.to_string(),
        };
        self.request(RTM_SETLINK, 0, &msg, &object)
    }

    /// Turns hairpin mode of a bridge port on or off (`ip link set dev X type bridge_slave
    /// hairpin on`): the bridge may then send a frame back out of the port it came in on, which a
    /// container reaching its own published port needs when bridged traffic goes through
    /// iptables (`br_netfilter`).
    pub fn link_set_hairpin(&self, link: impl Into<LinkRef>, on: bool) -> Result<()> {
        let info = vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                on,
            )])),
        ];
        self.link_set_info(link.into(), info, "hairpin mode")
    }

    /// Turns IGMP/MLD snooping of a bridge on or off (`ip link set dev X type bridge
    /// mcast_snooping 0|1`). Off, the bridge floods multicast to every port like broadcast and
    /// keeps no per-port multicast state.
    pub fn link_set_mcast_snooping(&self, link: impl Into<LinkRef>, on: bool) -> Result<()> {
        let info = vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::MulticastSnooping(on)])),
        ];
        self.link_set_info(link.into(), info, "multicast snooping")
    }

    /// Changes kind- or port-specific settings of an existing link (`IFLA_LINKINFO` in an
    /// `RTM_NEWLINK` without create flags); `what` names the setting in errors.
    fn link_set_info(&self, link: LinkRef, info: Vec<LinkInfo>, what: &str) -> Result<()> {
        link.validate()?;
        let mut msg = LinkMessage::default();
        select(&mut msg, &link);
        msg.attributes.push(LinkAttribute::LinkInfo(info));
        self.request(RTM_NEWLINK, 0, &msg, &|| format!("{link} ({what})"))
    }

    /// Brings a link up.
    pub fn link_set_up(&self, link: impl Into<LinkRef>) -> Result<()> {
        self.link_update(link, &LinkUpdate::new().up())
    }

    /// Takes a link down.
    pub fn link_set_down(&self, link: impl Into<LinkRef>) -> Result<()> {
        self.link_update(link, &LinkUpdate::new().down())
    }

    /// Sets a link's MTU ([`MIN_MTU`] to [`MAX_MTU`]; the kernel may refuse more for the device).
    pub fn link_set_mtu(&self, link: impl Into<LinkRef>, mtu: u32) -> Result<()> {
        self.link_update(link, &LinkUpdate::new().mtu(mtu))
    }

    /// Sets a link's MAC address.
    pub fn link_set_mac(&self, link: impl Into<LinkRef>, mac: MacAddr) -> Result<()> {
        self.link_update(link, &LinkUpdate::new().mac(mac))
    }

    /// Makes `link` a port of `master` (e.g. a bridge).
    pub fn link_set_master(
        &self,
        link: impl Into<LinkRef>,
        master: impl Into<LinkRef>,
    ) -> Result<()> {
        self.link_update(link, &LinkUpdate::new().master(master))
    }

    /// Detaches `link` from its master.
    pub fn link_set_nomaster(&self, link: impl Into<LinkRef>) -> Result<()> {
        self.link_update(link, &LinkUpdate::new().no_master())
    }

    /// Sets a link's alias (`ip link set dev X alias TEXT`: at most 254 bytes, no NUL); an
    /// empty alias removes it.
    pub fn link_set_alias(&self, link: impl Into<LinkRef>, alias: &str) -> Result<()> {
        self.link_update(link, &LinkUpdate::new().alias(alias))
    }

    /// Renames a link (it must be down).
    pub fn link_rename(&self, link: impl Into<LinkRef>, new_name: &str) -> Result<()> {
        self.link_update(link, &LinkUpdate::new().rename(new_name))
    }

    /// Moves a link into another namespace (it keeps its name; it arrives down).
    pub fn link_set_netns(&self, link: impl Into<LinkRef>, ns: &Netns) -> Result<()> {
        let link = link.into();
        link.validate()?;
        let mut msg = LinkMessage::default();
        select(&mut msg, &link);
        msg.attributes
            .push(LinkAttribute::NetNsFd(ns.as_fd().as_raw_fd()));
        self.request(RTM_SETLINK, 0, &msg, &|| match ns.path() {
            Some(p) => format!("{link} (moving to network namespace {})", p.display()),
            None => format!("{link} (moving to another network namespace)"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real kernel answer (captured from a test namespace into the fuzz corpus): the bridge
    /// `brz`, made with multicast snooping off.
    #[test]
    fn bridge_details_decode_from_a_kernel_reply() {
        let seed = include_bytes!("../../../fuzz/corpus/netlink_replies/seed-bridge-get-0");
        let datagram = &seed[1..];
        let ty = u16::from_ne_bytes([datagram[4], datagram[5]]);
        let link = decode_link(ty, &datagram[16..]).unwrap().unwrap();
        assert_eq!(link.name, "brz");
        assert_eq!(link.kind, Some(LinkKind::Bridge));
        let bridge = link.bridge.expect("bridge details");
        assert_eq!(bridge.mcast_snooping, Some(false));
    }

    #[test]
    fn updates_are_validated() {
        assert!(
            LinkUpdate::new()
                .rename("x\0")
                .validate(&|| "l".into())
                .is_err()
        );
        assert!(LinkUpdate::new().mtu(10).validate(&|| "l".into()).is_err());
        assert!(
            LinkUpdate::new()
                .master("a/b")
                .validate(&|| "l".into())
                .is_err()
        );
        assert!(
            LinkUpdate::new()
                .up()
                .mtu(1500)
                .validate(&|| "l".into())
                .is_ok()
        );
        let long = "a".repeat(MAX_ALIAS_LEN + 1);
        let e = LinkUpdate::new()
            .alias(long)
            .validate(&|| "l".into())
            .unwrap_err();
        assert!(e.to_string().contains("at most 254"), "{e}");
        assert!(
            LinkUpdate::new()
                .alias("a\0b")
                .validate(&|| "l".into())
                .is_err()
        );
        assert!(
            LinkUpdate::new()
                .alias("a".repeat(MAX_ALIAS_LEN))
                .validate(&|| "l".into())
                .is_ok()
        );
    }

    #[test]
    fn link_refs_describe_themselves() {
        assert_eq!(LinkRef::from("br-0123").to_string(), "link \"br-0123\"");
        assert_eq!(LinkRef::from(7).to_string(), "link index 7");
    }
}

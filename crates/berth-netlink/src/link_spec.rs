//! What [`Handle::link_add`] creates: [`LinkSpec`] (bridge, veth, vxlan, macvlan, ipvlan, 802.1q
//! VLAN, dummy) with its kind-specific parts, [`VethPeer`] and [`Vxlan`], checked before any request
//! is sent; and [`Error::is_unknown_link_kind`], which tells a kernel without the kind's driver.

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoBridge, InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoVeth, InfoVlan, InfoVxlan,
    IpVlanFlags, LinkAttribute, LinkInfo, LinkMessage,
};

use crate::Netns;
use crate::error::{Error, Result};
use crate::link::{
    IpvlanMode, LinkRef, LinkUpdate, MAX_MTU, MAX_VNI, MIN_MTU, MacvlanMode, RTM_NEWLINK,
    check_alias, set_up_flags,
};
use crate::mac::{MacAddr, check_unicast};
use crate::name::validate_ifname;
use crate::socket::Handle;

/// The peer end of a veth pair: its name, and optionally the namespace it is created in.
///
/// The peer is always created down: the kernel cannot bring it up within the creation request
/// (the pair is not linked yet at that point), so bring it up with a [`Handle`] in its namespace.
#[derive(Debug, Clone)]
pub struct VethPeer<'a> {
    name: String,
    netns: Option<&'a Netns>,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
}

impl<'a> VethPeer<'a> {
    /// The peer is called `name` (in its namespace: the default is the host side's namespace).
    pub fn new(name: impl Into<String>) -> Self {
        VethPeer {
            name: name.into(),
            netns: None,
            mtu: None,
            mac: None,
        }
    }

    /// Creates the peer directly inside `ns` (`IFLA_NET_NS_FD`), already under its final name.
    pub fn netns(mut self, ns: &'a Netns) -> Self {
        self.netns = Some(ns);
        self
    }

    /// The peer's MTU (default: the host side's MTU, when one is given).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// The peer's MAC address (default: random).
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }
}

/// VXLAN parameters for [`LinkSpec::vxlan`]. Learning is off unless turned on.
#[derive(Debug, Clone)]
pub struct Vxlan {
    vni: u32,
    port: Option<u16>,
    local: Option<IpAddr>,
    learning: bool,
    underlay: Option<LinkRef>,
    proxy: bool,
    l2miss: bool,
    l3miss: bool,
}

impl Vxlan {
    /// A VXLAN device for network identifier `vni` (at most [`MAX_VNI`]).
    pub fn new(vni: u32) -> Self {
        Vxlan {
            vni,
            port: None,
            local: None,
            learning: false,
            underlay: None,
            proxy: false,
            l2miss: false,
            l3miss: false,
        }
    }

    /// UDP destination port (the kernel's default is 8472; the IANA port, used by Docker, is 4789).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Local VTEP address (source of the encapsulated packets).
    pub fn local(mut self, addr: IpAddr) -> Self {
        self.local = Some(addr);
        self
    }

    /// Learn remote MACs from received packets (off by default: berth programs the FDB).
    pub fn learning(mut self, on: bool) -> Self {
        self.learning = on;
        self
    }

    /// The underlying device the tunnel traffic uses.
    pub fn underlay(mut self, link: impl Into<LinkRef>) -> Self {
        self.underlay = Some(link.into());
        self
    }

    /// Answer ARP/ND from the neighbour table (`proxy`).
    pub fn proxy(mut self, on: bool) -> Self {
        self.proxy = on;
        self
    }

    /// Report L2 and L3 misses to user space (`l2miss`, `l3miss`).
    pub fn misses(mut self, l2miss: bool, l3miss: bool) -> Self {
        self.l2miss = l2miss;
        self.l3miss = l3miss;
        self
    }
}

#[derive(Debug, Clone)]
enum KindSpec<'a> {
    Bridge,
    Dummy,
    Veth(VethPeer<'a>),
    Vxlan(Vxlan),
    Macvlan { parent: LinkRef, mode: MacvlanMode },
    Ipvlan { parent: LinkRef, mode: IpvlanMode },
    Vlan { parent: LinkRef, id: u16 },
}

/// Largest 802.1q VLAN id a link can carry (4095 is reserved).
const MAX_VLAN_ID: u16 = 4094;

/// How an ipvlan's children reach each other through their parent (`ip link add ... type
/// ipvlan mode M bridge|private|vepa`). The kernel's default (no flag) is `bridge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IpvlanIsolation {
    /// `private` (`IPVLAN_F_PRIVATE`): children of one parent do not reach each other.
    Private,
    /// `vepa` (`IPVLAN_F_VEPA`): traffic between children goes out to the adjacent switch.
    Vepa,
}

/// What [`Handle::link_add`] creates: a kind, a name and common settings.
///
/// ```no_run
/// # fn main() -> Result<(), berth_netlink::Error> {
/// use berth_netlink::{Handle, LinkSpec, Netns, VethPeer};
/// let host = Netns::open_named("host")?;
/// let sandbox = Netns::open_named("sandbox")?;
/// let nl = Handle::open(&host)?;
/// nl.link_add(&LinkSpec::bridge("br-0123").mtu(1500).up())?;
/// nl.link_add(
///     &LinkSpec::veth("veth0a1b2c", VethPeer::new("eth0").netns(&sandbox))
///         .master("br-0123")
///         .up(),
/// )?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LinkSpec<'a> {
    name: String,
    kind: KindSpec<'a>,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
    master: Option<LinkRef>,
    up: bool,
    mcast_snooping: Option<bool>,
    alias: Option<String>,
    netns: Option<&'a Netns>,
    /// Every ipvlan flag asked for (two are refused by the validation).
    ipvlan_flags: Vec<IpvlanIsolation>,
}

impl<'a> LinkSpec<'a> {
    fn new(name: impl Into<String>, kind: KindSpec<'a>) -> Self {
        LinkSpec {
            name: name.into(),
            kind,
            mtu: None,
            mac: None,
            master: None,
            up: false,
            mcast_snooping: None,
            alias: None,
            netns: None,
            ipvlan_flags: Vec::new(),
        }
    }

    /// A Linux bridge.
    pub fn bridge(name: impl Into<String>) -> Self {
        Self::new(name, KindSpec::Bridge)
    }

    /// A dummy device.
    pub fn dummy(name: impl Into<String>) -> Self {
        Self::new(name, KindSpec::Dummy)
    }

    /// A veth pair, created in one request; `name` is the end in the handle's namespace.
    pub fn veth(name: impl Into<String>, peer: VethPeer<'a>) -> Self {
        Self::new(name, KindSpec::Veth(peer))
    }

    /// A VXLAN device.
    pub fn vxlan(name: impl Into<String>, vxlan: Vxlan) -> Self {
        Self::new(name, KindSpec::Vxlan(vxlan))
    }

    /// A macvlan device on `parent`.
    pub fn macvlan(name: impl Into<String>, parent: impl Into<LinkRef>, mode: MacvlanMode) -> Self {
        Self::new(
            name,
            KindSpec::Macvlan {
                parent: parent.into(),
                mode,
            },
        )
    }

    /// An ipvlan device on `parent`.
    pub fn ipvlan(name: impl Into<String>, parent: impl Into<LinkRef>, mode: IpvlanMode) -> Self {
        Self::new(
            name,
            KindSpec::Ipvlan {
                parent: parent.into(),
                mode,
            },
        )
    }

    /// An 802.1q VLAN sub-interface of `parent` (`ip link add link PARENT name NAME type vlan id
    /// ID`) tagging its frames with `vlan_id` (0 to 4094; 0 is priority tagging only). Needs the
    /// kernel's `8021q` driver: where it is missing, the creation fails with an error for which
    /// [`Error::is_unknown_link_kind`] is true.
    pub fn vlan(name: impl Into<String>, parent: impl Into<LinkRef>, vlan_id: u16) -> Self {
        Self::new(
            name,
            KindSpec::Vlan {
                parent: parent.into(),
                id: vlan_id,
            },
        )
    }

    /// For an ipvlan: its children do not reach each other through the parent (`private`,
    /// `IPVLAN_F_PRIVATE`). Without this or [`LinkSpec::ipvlan_vepa`] the ipvlan is in the
    /// kernel's default `bridge` flag mode. Refused for other kinds, and together with `vepa`.
    pub fn ipvlan_private(mut self) -> Self {
        self.ipvlan_flags.push(IpvlanIsolation::Private);
        self
    }

    /// For an ipvlan: traffic between its children goes out of the parent to the adjacent
    /// switch, which may reflect it (`vepa`, `IPVLAN_F_VEPA`). Refused for other kinds, and
    /// together with `private`.
    pub fn ipvlan_vepa(mut self) -> Self {
        self.ipvlan_flags.push(IpvlanIsolation::Vepa);
        self
    }

    /// The MTU ([`MIN_MTU`] to [`MAX_MTU`]).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// The MAC address (a unicast address; default: random).
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Makes the new link a port of `master` (e.g. a bridge).
    pub fn master(mut self, master: impl Into<LinkRef>) -> Self {
        self.master = Some(master.into());
        self
    }

    /// For a bridge: IGMP/MLD snooping on or off (`mcast_snooping`; the kernel's default is on).
    /// Refused for other kinds.
    pub fn mcast_snooping(mut self, on: bool) -> Self {
        self.mcast_snooping = Some(on);
        self
    }

    /// The link's alias (`IFLA_IFALIAS`: at most 254 bytes, no NUL), e.g. a mark saying who
    /// made it. For a veth pair, the end in the handle's namespace gets it.
    ///
    /// The kernel ignores an alias in the request that creates a link (its creation path never
    /// reads `IFLA_IFALIAS`; checked on Linux 6.18), so [`Handle::link_add`] sets it with one
    /// more request right after; if that fails, the new link is deleted again.
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = Some(alias.into());
        self
    }

    /// Brings the link up as part of the creation.
    pub fn up(mut self) -> Self {
        self.up = true;
        self
    }

    /// Creates the link directly inside `ns` (`IFLA_NET_NS_FD`) instead of the namespace of the
    /// [`Handle`] that sends the request. The link's own network stays the sender's: a VXLAN
    /// device made so sends and receives its encapsulated packets in the sender's namespace
    /// (the underlay) while its frames live in `ns`. A master or an alias cannot be given
    /// with it (both would be looked up in the wrong namespace): set them with a handle in
    /// `ns`.
    pub fn netns(mut self, ns: &'a Netns) -> Self {
        self.netns = Some(ns);
        self
    }

    /// The name of the link to be created.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        match &self.kind {
            KindSpec::Veth(peer) => match peer.netns.and_then(Netns::path) {
                Some(p) => format!(
                    "veth pair {:?} (peer {:?} in network namespace {})",
                    self.name,
                    peer.name,
                    p.display()
                ),
                None => format!("veth pair {:?} (peer {:?})", self.name, peer.name),
            },
            _ => format!("link {:?}", self.name),
        }
    }

    /// Everything that can be checked without the kernel.
    fn validate(&self) -> Result<()> {
        validate_ifname(&self.name)?;
        check_mtu(self.mtu, || self.describe())?;
        if let Some(mac) = &self.mac {
            check_unicast(mac, || self.describe())?;
        }
        if let Some(m) = &self.master {
            m.validate()?;
        }
        if let Some(a) = &self.alias {
            check_alias(a, || self.describe())?;
        }
        if self.netns.is_some() && (self.master.is_some() || self.alias.is_some()) {
            return Err(Error::InvalidArgument {
                object: self.describe(),
                message: "a link created in another namespace takes its master and alias from a \
                          handle in that namespace"
                    .into(),
            });
        }
        if self.mcast_snooping.is_some() && !matches!(self.kind, KindSpec::Bridge) {
            return Err(Error::InvalidArgument {
                object: self.describe(),
                message: "multicast snooping is a setting of bridges only".into(),
            });
        }
        if !self.ipvlan_flags.is_empty() && !matches!(self.kind, KindSpec::Ipvlan { .. }) {
            return Err(Error::InvalidArgument {
                object: self.describe(),
                message: "the private and vepa flags are settings of ipvlan links only".into(),
            });
        }
        if self.ipvlan_flags.contains(&IpvlanIsolation::Private)
            && self.ipvlan_flags.contains(&IpvlanIsolation::Vepa)
        {
            return Err(Error::InvalidArgument {
                object: self.describe(),
                message: "an ipvlan is private or vepa, not both (neither: bridge)".into(),
            });
        }
        match &self.kind {
            KindSpec::Veth(peer) => {
                validate_ifname(&peer.name)?;
                check_mtu(peer.mtu, || self.describe())?;
                if let Some(mac) = &peer.mac {
                    check_unicast(mac, || self.describe())?;
                }
                if peer.netns.is_none() && peer.name == self.name {
                    return Err(Error::InvalidArgument {
                        object: self.describe(),
                        message: "both ends of a veth pair in one namespace need different names"
                            .into(),
                    });
                }
            }
            KindSpec::Vxlan(v) => {
                if v.vni > MAX_VNI {
                    return Err(Error::InvalidArgument {
                        object: self.describe(),
                        message: format!("VNI {} is out of range (0 to {MAX_VNI})", v.vni),
                    });
                }
                if let Some(u) = &v.underlay {
                    u.validate()?;
                }
            }
            KindSpec::Macvlan { parent, .. } | KindSpec::Ipvlan { parent, .. } => {
                parent.validate()?;
            }
            KindSpec::Vlan { parent, id } => {
                parent.validate()?;
                if *id > MAX_VLAN_ID {
                    return Err(Error::InvalidArgument {
                        object: self.describe(),
                        message: format!("VLAN id {id} is out of range (0 to {MAX_VLAN_ID})"),
                    });
                }
            }
            KindSpec::Bridge | KindSpec::Dummy => {}
        }
        Ok(())
    }
}

pub(crate) fn check_mtu(mtu: Option<u32>, object: impl FnOnce() -> String) -> Result<()> {
    match mtu {
        Some(m) if !(MIN_MTU..=MAX_MTU).contains(&m) => Err(Error::InvalidArgument {
            object: object(),
            message: format!("MTU {m} is out of range ({MIN_MTU} to {MAX_MTU})"),
        }),
        _ => Ok(()),
    }
}

impl Handle {
    /// Creates a link. Fails with [`Error::Exists`] if the name is taken (in either namespace for
    /// a veth pair), and with [`Error::InvalidName`] / [`Error::InvalidArgument`] before sending
    /// anything when a name, MTU, MAC, VNI or alias is bad. With an alias, the link is created
    /// and then given its alias (see [`LinkSpec::alias`]); a link whose alias cannot be set is
    /// deleted again, so a link made by this call always carries its alias.
    pub fn link_add(&self, spec: &LinkSpec<'_>) -> Result<()> {
        spec.validate()?;
        self.link_create(spec)?;
        let Some(alias) = &spec.alias else {
            return Ok(());
        };
        let marked = self.link_update(spec.name.as_str(), &LinkUpdate::new().alias(alias.as_str()));
        if let Err(e) = marked {
            // Deleting one end of a veth pair deletes both.
            if let Err(undo) = self.link_delete(spec.name.as_str()) {
                tracing::warn!(link = %spec.name, error = %undo, "deleting a link whose alias could not be set");
            }
            return Err(e);
        }
        Ok(())
    }

    /// The `RTM_NEWLINK` request that creates the link of a checked `spec`.
    fn link_create(&self, spec: &LinkSpec<'_>) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::IfName(spec.name.clone()));
        if let Some(mtu) = spec.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = spec.mac {
            msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        if let Some(master) = &spec.master {
            let index = self.resolve(master)?;
            msg.attributes.push(LinkAttribute::Controller(index));
        }
        if spec.up {
            set_up_flags(&mut msg, true);
        }
        if let Some(ns) = spec.netns {
            msg.attributes
                .push(LinkAttribute::NetNsFd(ns.as_fd().as_raw_fd()));
        }
        let (kind, data) = match &spec.kind {
            KindSpec::Bridge => (
                InfoKind::Bridge,
                spec.mcast_snooping
                    .map(|on| InfoData::Bridge(vec![InfoBridge::MulticastSnooping(on)])),
            ),
            KindSpec::Dummy => (InfoKind::Dummy, None),
            KindSpec::Veth(peer) => {
                // One queue each, asked for up front: by default the kernel gives a veth one
                // queue per possible CPU and then cuts it to one, and the cut waits for an
                // (expedited) RCU grace period; asking for one skips it (~0.15 ms per pair).
                msg.attributes.push(LinkAttribute::NumTxQueues(1));
                msg.attributes.push(LinkAttribute::NumRxQueues(1));
                let mut p = LinkMessage::default();
                p.attributes.push(LinkAttribute::IfName(peer.name.clone()));
                p.attributes.push(LinkAttribute::NumTxQueues(1));
                p.attributes.push(LinkAttribute::NumRxQueues(1));
                if let Some(mtu) = peer.mtu.or(spec.mtu) {
                    p.attributes.push(LinkAttribute::Mtu(mtu));
                }
                if let Some(mac) = peer.mac {
                    p.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
                }
                if let Some(ns) = peer.netns {
                    p.attributes
                        .push(LinkAttribute::NetNsFd(ns.as_fd().as_raw_fd()));
                }
                (InfoKind::Veth, Some(InfoData::Veth(InfoVeth::Peer(p))))
            }
            KindSpec::Vxlan(v) => {
                let mut attrs = vec![InfoVxlan::Id(v.vni), InfoVxlan::Learning(v.learning)];
                if let Some(port) = v.port {
                    attrs.push(InfoVxlan::Port(port));
                }
                match v.local {
                    Some(IpAddr::V4(a)) => attrs.push(InfoVxlan::Local(a)),
                    Some(IpAddr::V6(a)) => attrs.push(InfoVxlan::Local6(a)),
                    None => {}
                }
                if let Some(u) = &v.underlay {
                    attrs.push(InfoVxlan::Link(self.resolve(u)?));
                }
                if v.proxy {
                    attrs.push(InfoVxlan::Proxy(true));
                }
                if v.l2miss {
                    attrs.push(InfoVxlan::L2Miss(true));
                }
                if v.l3miss {
                    attrs.push(InfoVxlan::L3Miss(true));
                }
                (InfoKind::Vxlan, Some(InfoData::Vxlan(attrs)))
            }
            KindSpec::Macvlan { parent, mode } => {
                msg.attributes
                    .push(LinkAttribute::Link(self.resolve(parent)?));
                (
                    InfoKind::MacVlan,
                    Some(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                        mode.to_netlink(),
                    )])),
                )
            }
            KindSpec::Ipvlan { parent, mode } => {
                msg.attributes
                    .push(LinkAttribute::Link(self.resolve(parent)?));
                let mut attrs = vec![InfoIpVlan::Mode(mode.to_netlink())];
                if let Some(flag) = spec.ipvlan_flags.first() {
                    attrs.push(InfoIpVlan::Flags(match flag {
                        IpvlanIsolation::Private => IpVlanFlags::Private,
                        IpvlanIsolation::Vepa => IpVlanFlags::Vepa,
                    }));
                }
                (InfoKind::IpVlan, Some(InfoData::IpVlan(attrs)))
            }
            KindSpec::Vlan { parent, id } => {
                msg.attributes
                    .push(LinkAttribute::Link(self.resolve(parent)?));
                (
                    InfoKind::Vlan,
                    Some(InfoData::Vlan(vec![InfoVlan::Id(*id)])),
                )
            }
        };
        let mut info = vec![LinkInfo::Kind(kind)];
        info.extend(data.map(LinkInfo::Data));
        msg.attributes.push(LinkAttribute::LinkInfo(info));
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &msg, &|| {
            spec.describe()
        })
    }
}

impl Error {
    /// True when the kernel refused to create a link because it has no driver for the link's
    /// kind (`EOPNOTSUPP`, "Unknown device type": the module, e.g. `8021q` or `ipvlan`, is
    /// neither built in nor loadable here). Only meaningful for an error of
    /// [`Handle::link_add`]; the kernel answers so also for a setting a kind's driver refuses
    /// as unsupported.
    pub fn is_unknown_link_kind(&self) -> bool {
        let eopnotsupp = std::io::Error::from_raw_os_error(libc::EOPNOTSUPP).to_string();
        matches!(self, Error::Invalid { message, .. }
            if message.starts_with(&eopnotsupp) || message.contains("Unknown device type"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_validated_before_sending() {
        let long = LinkSpec::bridge("0123456789abcdef");
        assert!(matches!(long.validate(), Err(Error::InvalidName { .. })));
        let peer = LinkSpec::veth("ok0", VethPeer::new("bad/name"));
        assert!(matches!(peer.validate(), Err(Error::InvalidName { .. })));
        let vni = LinkSpec::vxlan("vx0", Vxlan::new(MAX_VNI + 1));
        let e = vni.validate().unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }));
        assert!(e.to_string().contains("VNI 16777216"), "{e}");
        assert!(
            LinkSpec::vxlan("vx0", Vxlan::new(MAX_VNI))
                .validate()
                .is_ok()
        );
        let mtu = LinkSpec::dummy("d0").mtu(67);
        assert!(mtu.validate().unwrap_err().to_string().contains("MTU 67"));
        assert!(LinkSpec::dummy("d0").mtu(65536).validate().is_err());
        assert!(LinkSpec::dummy("d0").mtu(68).validate().is_ok());
        let mac = LinkSpec::bridge("b0").mac(MacAddr([1, 0, 0, 0, 0, 1]));
        assert!(matches!(mac.validate(), Err(Error::InvalidArgument { .. })));
        let same = LinkSpec::veth("v0", VethPeer::new("v0"));
        assert!(matches!(
            same.validate(),
            Err(Error::InvalidArgument { .. })
        ));
        let parent = LinkSpec::macvlan("mv0", "has space", MacvlanMode::Bridge);
        assert!(matches!(parent.validate(), Err(Error::InvalidName { .. })));
        assert!(LinkRef::Index(0).validate().is_err());
        let alias = LinkSpec::bridge("b0").alias("x".repeat(255));
        let e = alias.validate().unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
        assert!(e.to_string().contains("255 bytes"), "{e}");
        assert!(LinkSpec::bridge("b0").alias("a\0b").validate().is_err());
        assert!(
            LinkSpec::bridge("b0")
                .alias("x".repeat(254))
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn vlan_ids_and_ipvlan_flags_are_validated_before_sending() {
        assert!(LinkSpec::vlan("eth0.10", "eth0", 10).validate().is_ok());
        assert!(LinkSpec::vlan("eth0.0", "eth0", 0).validate().is_ok());
        assert!(LinkSpec::vlan("eth0.4094", "eth0", 4094).validate().is_ok());
        let e = LinkSpec::vlan("eth0.4095", "eth0", 4095)
            .validate()
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
        assert!(e.to_string().contains("VLAN id 4095"), "{e}");
        assert!(matches!(
            LinkSpec::vlan("v", "bad parent", 1).validate(),
            Err(Error::InvalidName { .. })
        ));

        let iv = || LinkSpec::ipvlan("iv0", "eth0", IpvlanMode::L2);
        assert!(iv().ipvlan_private().validate().is_ok());
        assert!(iv().ipvlan_vepa().validate().is_ok());
        let both = iv().ipvlan_private().ipvlan_vepa().validate().unwrap_err();
        assert!(both.to_string().contains("not both"), "{both}");
        let other = LinkSpec::macvlan("mv0", "eth0", MacvlanMode::Vepa)
            .ipvlan_private()
            .validate()
            .unwrap_err();
        assert!(other.to_string().contains("ipvlan links only"), "{other}");
    }

    #[test]
    fn unknown_link_kinds_are_told_from_other_refusals() {
        let unknown = Error::from_errno_with(
            libc::EOPNOTSUPP,
            "link \"v0.10\"",
            Some("Unknown device type"),
        );
        assert!(unknown.is_unknown_link_kind());
        assert!(Error::from_errno(libc::EOPNOTSUPP, "link \"v0.10\"").is_unknown_link_kind());
        assert!(!Error::from_errno(libc::EINVAL, "link \"v0.10\"").is_unknown_link_kind());
        assert!(!Error::from_errno(libc::EEXIST, "link \"v0.10\"").is_unknown_link_kind());
    }
}

//! The typed rule model: matches and targets, rendered to `iptables-restore` lines or nftables
//! rule statements. Rendering is pure.
//!
//! The iptables rendering is the canonical form `iptables-save` prints (`-s`, `-d`, `-i`, `-o`,
//! `-p`, then match modules in a fixed order, then `-j`), so a rule berth renders compares equal,
//! as text, with the rule the kernel reports back. That is what makes drift detection a plain
//! comparison.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod render;

/// The IP family of a rule (berth-types' one IP family, under the name this crate has always
/// used).
pub use berth_types::IpFamily as Family;

/// Firewall spellings of an IP family.
pub trait FamilyExt {
    /// The nftables keyword for header matches of this family (`ip` or `ip6`).
    fn nft(self) -> &'static str;
}

impl FamilyExt for Family {
    fn nft(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
}

/// An iptables table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Table {
    /// `filter`.
    Filter,
    /// `nat`.
    Nat,
    /// `raw`.
    Raw,
    /// `mangle`.
    Mangle,
}

impl Table {
    /// The table's name as iptables spells it.
    pub fn name(self) -> &'static str {
        match self {
            Table::Filter => "filter",
            Table::Nat => "nat",
            Table::Raw => "raw",
            Table::Mangle => "mangle",
        }
    }

    /// Parses a table name.
    pub fn from_name(name: &str) -> Option<Table> {
        Some(match name {
            "filter" => Table::Filter,
            "nat" => Table::Nat,
            "raw" => Table::Raw,
            "mangle" => Table::Mangle,
            _ => return None,
        })
    }
}

pub use berth_types::{PortRange, Protocol};

/// Firewall spellings of a port range.
pub trait PortRangeExt {
    /// iptables syntax: `80` or `9000:9999`.
    fn iptables(self) -> String;
}

impl PortRangeExt for PortRange {
    fn iptables(self) -> String {
        if self.is_single() {
            self.start().to_string()
        } else {
            format!("{}:{}", self.start(), self.end())
        }
    }
}

/// Checks an interface name like the kernel does; `object` says what it is for in the error.
pub fn validate_interface(name: &str, object: &str) -> Result<()> {
    berth_netlink::validate_ifname(name).map_err(|e| {
        let reason = match e {
            berth_netlink::Error::InvalidName { reason, .. } => reason.to_owned(),
            other => other.to_string(),
        };
        Error::InvalidInterface {
            name: name.to_owned(),
            object: object.to_owned(),
            reason,
        }
    })?;
    if name.contains('"') {
        return Err(Error::InvalidInterface {
            name: name.to_owned(),
            object: object.to_owned(),
            reason:
                "berth refuses '\"' in interface names (it cannot be quoted for iptables or nft)"
                    .into(),
        });
    }
    Ok(())
}

/// A match that may be negated (`! -i br0`, `iifname != "br0"`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cond<T> {
    /// The value to compare with.
    pub value: T,
    /// True for "not equal".
    pub negated: bool,
}

impl<T> Cond<T> {
    /// Matches `value`.
    pub fn is(value: T) -> Cond<T> {
        Cond {
            value,
            negated: false,
        }
    }

    /// Matches anything but `value`.
    pub fn not(value: T) -> Cond<T> {
        Cond {
            value,
            negated: true,
        }
    }

    fn bang(&self) -> &'static str {
        if self.negated { "! " } else { "" }
    }

    fn ne(&self) -> &'static str {
        if self.negated { "!= " } else { "" }
    }
}

/// A protocol match with optional source and destination ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolMatch {
    /// The protocol.
    pub proto: Protocol,
    /// Source ports.
    pub sport: Option<PortRange>,
    /// Destination ports.
    pub dport: Option<PortRange>,
}

/// A conntrack state (`-m conntrack --ctstate`, nft `ct state` / `ct status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CtState {
    /// A packet conntrack could not classify.
    Invalid,
    /// The first packet of a connection.
    New,
    /// A packet related to a known connection (ICMP errors, FTP data).
    Related,
    /// A packet of a known connection.
    Established,
    /// A packet exempted from tracking.
    Untracked,
    /// The connection's source was rewritten (SNAT/masquerade); nft `ct status snat`.
    Snat,
    /// The connection's destination was rewritten (DNAT); nft `ct status dnat`.
    Dnat,
}

impl CtState {
    fn iptables(self) -> &'static str {
        match self {
            CtState::Invalid => "INVALID",
            CtState::New => "NEW",
            CtState::Related => "RELATED",
            CtState::Established => "ESTABLISHED",
            CtState::Untracked => "UNTRACKED",
            CtState::Snat => "SNAT",
            CtState::Dnat => "DNAT",
        }
    }

    /// Order nft prints `ct state` flags in (by bit value).
    fn nft_order(self) -> u8 {
        match self {
            CtState::Invalid => 0,
            CtState::Established => 1,
            CtState::Related => 2,
            CtState::New => 3,
            CtState::Untracked => 4,
            CtState::Snat => 5,
            CtState::Dnat => 6,
        }
    }

    fn nft(self) -> &'static str {
        match self {
            CtState::Invalid => "invalid",
            CtState::New => "new",
            CtState::Related => "related",
            CtState::Established => "established",
            CtState::Untracked => "untracked",
            CtState::Snat => "snat",
            CtState::Dnat => "dnat",
        }
    }
}

/// An address type (`-m addrtype`, nft `fib ... type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddrType {
    /// An address of this host.
    Local,
    /// A unicast address.
    Unicast,
    /// A broadcast address.
    Broadcast,
    /// A multicast address.
    Multicast,
}

impl AddrType {
    fn iptables(self) -> &'static str {
        match self {
            AddrType::Local => "LOCAL",
            AddrType::Unicast => "UNICAST",
            AddrType::Broadcast => "BROADCAST",
            AddrType::Multicast => "MULTICAST",
        }
    }

    fn nft(self) -> &'static str {
        match self {
            AddrType::Local => "local",
            AddrType::Unicast => "unicast",
            AddrType::Broadcast => "broadcast",
            AddrType::Multicast => "multicast",
        }
    }
}

/// A packet-mark match: `mark & mask == value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MarkMatch {
    /// The value after masking.
    pub value: u32,
    /// The bits compared.
    pub mask: u32,
}

/// What happens to a packet that matches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// Accept.
    Accept,
    /// Drop.
    Drop,
    /// Return to the calling chain.
    Return,
    /// Jump to a chain.
    Jump(String),
    /// Rewrite the destination. `ports` keeps the destination port when `None`; `base` is the
    /// first original port of a shifted range (iptables `--to-destination IP:A-B/BASE`).
    Dnat {
        /// New destination address.
        to: IpAddr,
        /// New destination ports.
        ports: Option<PortRange>,
        /// Start of the original range, for shifted ranges (iptables only).
        base: Option<u16>,
    },
    /// Rewrite the source; with `to: None` only the port changes.
    Snat {
        /// New source address.
        to: Option<IpAddr>,
        /// New source ports.
        ports: Option<PortRange>,
    },
    /// Rewrite the source to the address of the outgoing interface.
    Masquerade,
    /// Set the bits `mask` of the packet mark to `value` (`value` must lie within `mask`).
    SetMark {
        /// The new bits.
        value: u32,
        /// Which bits change.
        mask: u32,
    },
}

/// One rule: where it lives, what it matches, what it does.
///
/// ```
/// use berth_firewall::model::{Rule, Table, Target, Protocol, PortRange};
/// let r = Rule::new(Table::Filter, "BERTH-LINKS", Target::Accept)
///     .out_if("br-0123")
///     .proto_dport(Protocol::Tcp, PortRange::single(80).unwrap());
/// assert_eq!(r.iptables(), "-A BERTH-LINKS -o br-0123 -p tcp -m tcp --dport 80 -j ACCEPT");
/// assert_eq!(r.nft(), "oifname \"br-0123\" tcp dport 80 accept");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    /// The table.
    pub table: Table,
    /// The chain.
    pub chain: String,
    /// Source prefix.
    pub source: Option<Cond<IpNet>>,
    /// Destination prefix.
    pub destination: Option<Cond<IpNet>>,
    /// Input interface.
    pub in_interface: Option<Cond<String>>,
    /// Output interface.
    pub out_interface: Option<Cond<String>>,
    /// Protocol and ports.
    pub protocol: Option<ProtocolMatch>,
    /// Source address type.
    pub src_type: Option<Cond<AddrType>>,
    /// Destination address type.
    pub dst_type: Option<Cond<AddrType>>,
    /// Conntrack states (any of them).
    pub ct_state: Vec<CtState>,
    /// Packet mark.
    pub mark: Option<MarkMatch>,
    /// The verdict or rewrite.
    pub target: Target,
}

/// `127.0.0.0/8`, the IPv4 loopback network.
pub fn ipv4_loopback() -> IpNet {
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8))
}

/// The drop of every packet addressed to the IPv4 loopback network that did not come in on
/// `lo`: `-d 127.0.0.0/8 ! -i lo -j DROP`, nft `iifname != "lo" ip daddr 127.0.0.0/8 drop`.
///
/// Meant for a chain at prerouting's raw priority, which sees a packet before conntrack and NAT:
/// a packet from a bridge (`route_localnet=1` lets the kernel deliver it to the host's
/// `127.0.0.1` services) or from the LAN (berth's DNAT of a port published on `127.0.0.1`
/// would rewrite it before the kernel's martian check) is dropped there, whatever the host's
/// `route_localnet` settings. Legitimate loopback traffic never matches: packets the host sends
/// to itself come in on `lo`, and the answers to `127.0.0.1:PORT` connections berth sent into a
/// bridge come back addressed to the bridge's gateway (masqueraded) and only get their loopback
/// address back after this priority. IPv6 needs no such rule: the kernel drops `::1` arriving on
/// any other interface before netfilter sees it.
pub fn loopback_from_outside_drop(table: Table, chain: &str) -> Rule {
    Rule::new(table, chain, Target::Drop)
        .dst(ipv4_loopback())
        .not_in_if("lo")
}

fn into_trunc(net: impl Into<IpNet>) -> IpNet {
    net.into().trunc()
}

/// `172.18.0.3:80`, `[fd00::3]:80`, `172.18.0.3:9000-9999`, or the bare address without ports.
fn host_port(addr: IpAddr, ports: Option<PortRange>) -> String {
    match (addr, ports) {
        (a, None) => a.to_string(),
        (IpAddr::V4(a), Some(p)) => format!("{a}:{p}"),
        (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
    }
}

fn nft_host_port(addr: IpAddr, ports: Option<PortRange>) -> String {
    host_port(addr, ports)
}

/// nft prints host prefixes without their length.
fn nft_net(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn pr(a: u16, b: u16) -> PortRange {
        PortRange::new(a, b).unwrap()
    }

    /// The range itself is berth-types' (tested there); its iptables form is the firewall's.
    #[test]
    fn port_ranges_in_iptables_form() {
        assert_eq!(pr(1, 2).iptables(), "1:2");
        assert_eq!(pr(80, 80).iptables(), "80");
    }

    #[test]
    fn protocols() {
        assert_eq!("TCP".parse::<Protocol>().unwrap(), Protocol::Tcp);
        assert_eq!("sctp".parse::<Protocol>().unwrap(), Protocol::Sctp);
        let e = Error::from("icmp".parse::<Protocol>().unwrap_err());
        assert!(matches!(e, Error::UnknownProtocol { .. }));
        assert!(e.to_string().contains("tcp, udp or sctp"));
    }

    #[test]
    fn renders_every_match_and_target_in_canonical_order() {
        let r = Rule::new(Table::Filter, "FORWARD", Target::Accept)
            .in_if("a")
            .out_if("b")
            .not_src("1.2.3.0/24".parse::<IpNet>().unwrap())
            .dst(IpNet::from(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4))))
            .proto_dport(Protocol::Udp, pr(7, 7));
        assert_eq!(
            r.iptables(),
            "-A FORWARD ! -s 1.2.3.0/24 -d 1.2.3.4/32 -i a -o b -p udp -m udp --dport 7 -j ACCEPT"
        );
        assert_eq!(
            r.nft(),
            "iifname \"a\" oifname \"b\" ip saddr != 1.2.3.0/24 ip daddr 1.2.3.4 udp dport 7 accept"
        );
        let r = Rule::new(
            Table::Filter,
            "X",
            Target::SetMark {
                value: 4,
                mask: 0xff,
            },
        )
        .ct(&[
            CtState::Dnat,
            CtState::Established,
            CtState::New,
            CtState::Related,
        ])
        .dst_type(AddrType::Local)
        .mark(1, 0xff);
        assert_eq!(
            r.iptables(),
            "-A X -m addrtype --dst-type LOCAL -m conntrack --ctstate NEW,RELATED,ESTABLISHED,DNAT -m mark --mark 0x1/0xff -j MARK --set-xmark 0x4/0xff"
        );
        assert_eq!(
            r.nft(),
            "meta mark & 0x000000ff == 0x00000001 ct state established,related,new ct status dnat fib daddr type local meta mark set meta mark & 0xffffff00 | 0x00000004"
        );
        let dnat = Rule::new(
            Table::Nat,
            "BERTH-DNAT",
            Target::Dnat {
                to: "fd00::3".parse().unwrap(),
                ports: Some(pr(9000, 9999)),
                base: Some(8000),
            },
        )
        .proto_dport(Protocol::Sctp, pr(8000, 8999));
        assert_eq!(
            dnat.iptables(),
            "-A BERTH-DNAT -p sctp -m sctp --dport 8000:8999 -j DNAT --to-destination [fd00::3]:9000-9999/8000"
        );
        let snat = Rule::new(
            Table::Nat,
            "P",
            Target::Snat {
                to: None,
                ports: Some(pr(53, 53)),
            },
        )
        .src(IpNet::from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11))))
        .proto_sport(Protocol::Udp, pr(5353, 5353));
        assert_eq!(
            snat.iptables(),
            "-A P -s 127.0.0.11/32 -p udp -m udp --sport 5353 -j SNAT --to-source :53"
        );
        assert_eq!(snat.nft(), "ip saddr 127.0.0.11 udp sport 5353 snat to :53");
        let m = Rule::new(Table::Nat, "P", Target::Masquerade)
            .src_type(AddrType::Local)
            .mark(7, u32::MAX);
        assert_eq!(
            m.iptables(),
            "-A P -m addrtype --src-type LOCAL -m mark --mark 0x7 -j MASQUERADE"
        );
        assert_eq!(
            m.nft(),
            "meta mark 0x00000007 fib saddr type local masquerade"
        );
    }

    #[test]
    fn loopback_drop_renders_as_the_tools_list_it() {
        let r = loopback_from_outside_drop(Table::Raw, "BERTH-RAW");
        assert_eq!(r.iptables(), "-A BERTH-RAW -d 127.0.0.0/8 ! -i lo -j DROP");
        assert_eq!(r.nft(), "iifname != \"lo\" ip daddr 127.0.0.0/8 drop");
        assert_eq!(r.validate().unwrap(), Some(Family::V4));
    }

    #[test]
    fn validation_catches_mixed_families_and_bad_marks() {
        let r = Rule::new(
            Table::Nat,
            "X",
            Target::Dnat {
                to: "fd00::1".parse().unwrap(),
                ports: None,
                base: None,
            },
        )
        .dst("10.0.0.0/8".parse::<IpNet>().unwrap());
        assert!(matches!(r.validate(), Err(Error::AddressMismatch { .. })));
        let r = Rule::new(
            Table::Filter,
            "X",
            Target::SetMark {
                value: 0x100,
                mask: 0xff,
            },
        );
        assert!(matches!(r.validate(), Err(Error::InvalidRule { .. })));
        let r = Rule::new(Table::Filter, "X", Target::Drop).in_if("bad name");
        assert!(matches!(r.validate(), Err(Error::InvalidInterface { .. })));
        let r = Rule::new(Table::Filter, "X", Target::Drop)
            .in_if("eth0")
            .src("10.0.0.0/8".parse::<IpNet>().unwrap());
        assert_eq!(r.validate().unwrap(), Some(Family::V4));
    }
}

//! The typed form of set and map elements: the fields a set's type is made of ([`Field`],
//! [`SetType`]), the values an element holds ([`Part`]), and elements ([`Element`]).
//!
//! Objects (networks, published ports, links) produce typed elements. The `nft` text of an
//! element, for `nft -f` scripts and for comparing with `nft list`, is rendered from this form
//! by its `Display` impl, in nft's own syntax; the netlink encoding reads the typed form directly
//! (see `encode.rs`). Reading `nft list` output back goes the other way: [`Element::parse`]
//! types an element by the type its set is listed with.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{Family, PortRange, Protocol};

/// One field of a set's key or value type, as `nft` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `ifname`: an interface name (16 bytes, NUL-padded).
    Ifname,
    /// `ipv4_addr`: an IPv4 address (an interval: a prefix).
    Ipv4Addr,
    /// `ipv6_addr`: an IPv6 address (an interval: a prefix).
    Ipv6Addr,
    /// `inet_proto`: a layer 4 protocol number.
    InetProto,
    /// `inet_service`: a port (an interval: a port range).
    InetService,
    /// `verdict`: the value of a verdict map.
    Verdict,
}

impl Field {
    /// The address field of a family.
    pub fn addr(family: Family) -> Field {
        match family {
            Family::V4 => Field::Ipv4Addr,
            Family::V6 => Field::Ipv6Addr,
        }
    }

    /// The name `nft` gives the field (`ifname`, `ipv4_addr`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Field::Ifname => "ifname",
            Field::Ipv4Addr => "ipv4_addr",
            Field::Ipv6Addr => "ipv6_addr",
            Field::InetProto => "inet_proto",
            Field::InetService => "inet_service",
            Field::Verdict => "verdict",
        }
    }

    /// The field `nft` names `name`; `None` for a field berth's layout does not use.
    pub fn parse(name: &str) -> Option<Field> {
        [
            Field::Ifname,
            Field::Ipv4Addr,
            Field::Ipv6Addr,
            Field::InetProto,
            Field::InetService,
            Field::Verdict,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set's type: the fields of its key (more than one: a concatenation) and, for a map, the
/// fields of its value. Shown as `nft` writes it: `ipv4_addr . inet_service : verdict`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SetType {
    /// The key's fields.
    pub key: Vec<Field>,
    /// The value's fields, for a map.
    pub value: Option<Vec<Field>>,
}

impl SetType {
    /// The type of a set (no values).
    pub fn set(key: &[Field]) -> SetType {
        SetType {
            key: key.to_vec(),
            value: None,
        }
    }

    /// The type of a map.
    pub fn map(key: &[Field], value: &[Field]) -> SetType {
        SetType {
            key: key.to_vec(),
            value: Some(value.to_vec()),
        }
    }

    /// True for a map.
    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }

    /// Parses the `type` line of `nft list` (`ifname . ifname : verdict`); `None` if it names a
    /// field berth's layout does not use.
    pub fn parse(text: &str) -> Option<SetType> {
        let fields = |s: &str| -> Option<Vec<Field>> {
            s.split(" . ").map(|f| Field::parse(f.trim())).collect()
        };
        match text.split_once(" : ") {
            Some((k, v)) => Some(SetType {
                key: fields(k)?,
                value: Some(fields(v)?),
            }),
            None => Some(SetType {
                key: fields(text)?,
                value: None,
            }),
        }
    }
}

/// Writes fields or parts joined by ` . ` (nft's concatenation).
fn concat<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(" . ")?;
        }
        item.fmt(f)?;
    }
    Ok(())
}

impl fmt::Display for SetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        concat(f, &self.key)?;
        if let Some(v) = &self.value {
            f.write_str(" : ")?;
            concat(f, v)?;
        }
        Ok(())
    }
}

/// The verdict of a verdict map element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
        })
    }
}

/// One part of an element's key or value: the value of one [`Field`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// An interface name, for an `ifname` field; shown quoted (`"br-0"`). Its length is
    /// checked when it is encoded (1 to 15 bytes).
    Ifname(String),
    /// One address, for an `ipv4_addr` or `ipv6_addr` field of its family.
    Addr(IpAddr),
    /// A prefix (`172.18.0.0/16`), for an address field of an interval set: every address in it.
    Prefix(IpNet),
    /// A protocol, for an `inet_proto` field.
    Proto(Protocol),
    /// One port, for an `inet_service` field.
    Service(u16),
    /// A port range (`8000-8010`), for an `inet_service` field of an interval set.
    ServiceRange(PortRange),
    /// A verdict, for the `verdict` value of a verdict map.
    Verdict(Verdict),
}

impl Part {
    /// An interface name part.
    pub fn ifname(name: &str) -> Part {
        Part::Ifname(name.to_owned())
    }

    /// A prefix part for an interval set: [`Part::Prefix`], or [`Part::Addr`] for a prefix of
    /// the address's full length (a /32, a /128), as `nft list` shows such an element, so that
    /// it never reads back as drift.
    pub fn prefix(net: IpNet) -> Part {
        if net.prefix_len() == net.max_prefix_len() {
            Part::Addr(net.addr())
        } else {
            Part::Prefix(net.trunc())
        }
    }

    /// A port range part: [`Part::Service`] for a single port, else [`Part::ServiceRange`].
    pub fn ports(range: PortRange) -> Part {
        if range.is_single() {
            Part::Service(range.start())
        } else {
            Part::ServiceRange(range)
        }
    }

    /// Parses one part of `nft list` output as `field`; `None` if it is not a value berth makes
    /// (an address range, a protocol other than tcp, udp and sctp, a verdict other than accept
    /// and drop, ...).
    pub fn parse(field: Field, text: &str) -> Option<Part> {
        let text = text.trim();
        match field {
            Field::Ifname => {
                let name = text.strip_prefix('"')?.strip_suffix('"')?;
                Some(Part::ifname(name))
            }
            Field::Ipv4Addr | Field::Ipv6Addr => {
                let part = match text.parse::<IpAddr>() {
                    Ok(a) => Part::Addr(a),
                    Err(_) => Part::Prefix(text.parse().ok()?),
                };
                let family = match &part {
                    Part::Addr(a) => Family::of(*a),
                    Part::Prefix(n) => Family::of_net(*n),
                    _ => return None,
                };
                (Field::addr(family) == field).then_some(part)
            }
            Field::InetProto => Some(Part::Proto(match text {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                "sctp" => Protocol::Sctp,
                _ => return None,
            })),
            Field::InetService => match text.split_once('-') {
                Some((a, b)) => {
                    let range = PortRange::new(a.parse().ok()?, b.parse().ok()?).ok()?;
                    Some(Part::ports(range))
                }
                None => Some(Part::Service(text.parse().ok()?)),
            },
            Field::Verdict => Some(Part::Verdict(match text {
                "accept" => Verdict::Accept,
                "drop" => Verdict::Drop,
                _ => return None,
            })),
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Ifname(name) => write!(f, "\"{name}\""),
            Part::Addr(a) => a.fmt(f),
            Part::Prefix(n) => n.fmt(f),
            Part::Proto(p) => f.write_str(p.name()),
            Part::Service(p) => p.fmt(f),
            Part::ServiceRange(r) => r.fmt(f),
            Part::Verdict(v) => v.fmt(f),
        }
    }
}

/// One set or map element, typed: its key and, in a map, its value (each one [`Part`] per
/// field of the set's type). Shown as `nft` writes it: `key` or `key : value`, parts joined by
/// ` . ` (`192.0.2.1 . tcp . 8080 : 172.18.0.2 . 80`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Element {
    /// The key's parts.
    pub key: Vec<Part>,
    /// The value's parts, in a map.
    pub value: Option<Vec<Part>>,
}

impl Element {
    /// An element of a set.
    pub fn set(key: Vec<Part>) -> Element {
        Element { key, value: None }
    }

    /// An element of a map.
    pub fn map(key: Vec<Part>, value: Vec<Part>) -> Element {
        Element {
            key,
            value: Some(value),
        }
    }

    /// The key alone, as `nft` writes it (what `delete element` names).
    pub fn key_text(&self) -> String {
        Parts(&self.key).to_string()
    }

    /// Parses one element of `nft list` output (`key` or `key : value`) as an element of a set
    /// of type `ty`; `None` if it is not of that type or holds a value berth does not make
    /// (see [`Part::parse`]).
    pub fn parse(ty: &SetType, text: &str) -> Option<Element> {
        let parts = |fields: &[Field], text: &str| -> Option<Vec<Part>> {
            let texts: Vec<&str> = text.split(" . ").collect();
            if texts.len() != fields.len() {
                return None;
            }
            fields
                .iter()
                .zip(texts)
                .map(|(f, t)| Part::parse(*f, t))
                .collect()
        };
        match &ty.value {
            Some(value) => {
                let (k, v) = text.split_once(" : ")?;
                Some(Element::map(parts(&ty.key, k)?, parts(value, v)?))
            }
            None => Some(Element::set(parts(&ty.key, text)?)),
        }
    }
}

/// Parts joined by ` . `.
pub(crate) struct Parts<'a>(pub(crate) &'a [Part]);

impl fmt::Display for Parts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        concat(f, self.0)
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        concat(f, &self.key)?;
        if let Some(v) = &self.value {
            f.write_str(" : ")?;
            concat(f, v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nftables::Set;

    #[test]
    fn set_types_read_back_from_their_text() {
        for set in Set::ALL {
            let ty = set.ty();
            assert_eq!(SetType::parse(&ty.to_string()), Some(ty), "{}", set.name());
        }
        assert_eq!(SetType::parse("ether_addr"), None);
        assert_eq!(SetType::parse("ifname : mark"), None);
    }

    #[test]
    fn parts_parse_what_berth_renders_and_nothing_else() {
        let round = |field: Field, text: &str| {
            let part = Part::parse(field, text).unwrap();
            assert_eq!(part.to_string(), text);
            part
        };
        assert_eq!(round(Field::Ifname, "\"br,x\""), Part::ifname("br,x"));
        assert!(matches!(round(Field::Ipv4Addr, "10.0.0.1"), Part::Addr(_)));
        // A full-length prefix is made as nft lists it: a plain address.
        for (net, listed) in [("10.30.0.7/32", "10.30.0.7"), ("fd00::7/128", "fd00::7")] {
            let made = Part::prefix(net.parse().unwrap());
            assert_eq!(made.to_string(), listed);
            let field = if listed.contains(':') {
                Field::Ipv6Addr
            } else {
                Field::Ipv4Addr
            };
            assert_eq!(Some(made), Part::parse(field, listed));
        }
        assert_eq!(
            Part::prefix("172.19.0.0/16".parse().unwrap()).to_string(),
            "172.19.0.0/16"
        );
        assert!(matches!(
            round(Field::Ipv6Addr, "fd00:1::/64"),
            Part::Prefix(_)
        ));
        assert_eq!(round(Field::InetProto, "sctp"), Part::Proto(Protocol::Sctp));
        assert_eq!(round(Field::InetService, "65535"), Part::Service(65535));
        assert!(matches!(
            round(Field::InetService, "8000-8010"),
            Part::ServiceRange(_)
        ));
        assert_eq!(round(Field::Verdict, "drop"), Part::Verdict(Verdict::Drop));
        for (field, text) in [
            (Field::Ifname, "br-a"),
            (Field::Ipv4Addr, "fd00::1"),
            (Field::Ipv6Addr, "10.0.0.0/8"),
            (Field::Ipv4Addr, "10.0.0.1-10.0.0.5"),
            (Field::InetProto, "gre"),
            (Field::InetProto, "6"),
            (Field::InetService, "http"),
            (Field::InetService, "30-20"),
            (Field::InetService, "70000"),
            (Field::Verdict, "jump user_forward"),
        ] {
            assert_eq!(Part::parse(field, text), None, "{text}");
        }
        // An element needs exactly its type's parts, and a value in a map.
        let ty = Set::DnatAll(Family::V4).ty();
        let e = Element::parse(&ty, "tcp . 80 : 10.0.0.2 . 8080").unwrap();
        assert_eq!(e.to_string(), "tcp . 80 : 10.0.0.2 . 8080");
        assert_eq!(e.key_text(), "tcp . 80");
        assert_eq!(Element::parse(&ty, "tcp . 80"), None);
        assert_eq!(Element::parse(&ty, "tcp : 10.0.0.2 . 8080"), None);
        assert_eq!(
            Element::parse(&Set::Masq(Family::V4).ty(), "10.0.0.0/8 : 1.2.3.4"),
            None
        );
    }
}

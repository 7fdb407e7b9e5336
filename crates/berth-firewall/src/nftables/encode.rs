//! The netlink form of nftables element changes: typed elements encoded as the kernel's set
//! element attributes, by the fields of their set's type, batched into messages.

use std::net::IpAddr;

use ipnet::IpNet;

use super::element::Parts;
use super::*;
use crate::model::Protocol;

/// Elements per netlink message: keeps every message far below the 64 KiB attribute limit.
pub(super) const ELEMENTS_PER_MESSAGE: usize = 128;

/// The first and last value of one part of an element, as `field` of its set's type, in the
/// kernel's byte layout (network byte order; interface names NUL-padded to 16 bytes).
pub(super) fn encode_part(
    field: Field,
    part: &Part,
) -> std::result::Result<(Vec<u8>, Vec<u8>), String> {
    let text = || part.to_string();
    match field {
        Field::Ifname => {
            let Part::Ifname(name) = part else {
                return Err(format!("{:?} is not an interface name", text()));
            };
            if name.is_empty() || name.len() >= 16 {
                return Err(format!("interface name {name:?} is not 1 to 15 bytes"));
            }
            let mut v = vec![0u8; 16];
            v[..name.len()].copy_from_slice(name.as_bytes());
            Ok((v.clone(), v))
        }
        Field::Ipv4Addr | Field::Ipv6Addr => {
            let net: IpNet = match part {
                Part::Addr(a) => (*a).into(),
                Part::Prefix(n) => *n,
                _ => return Err(format!("{:?} is not an address or prefix", text())),
            };
            if Field::addr(Family::of_net(net)) != field {
                return Err(format!("{:?} is not of the set's address family", text()));
            }
            let bytes = |a: IpAddr| match a {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            Ok((bytes(net.network()), bytes(net.broadcast())))
        }
        Field::InetProto => {
            let Part::Proto(p) = part else {
                return Err(format!("unknown protocol {:?}", text()));
            };
            let p: u8 = match p {
                Protocol::Tcp => 6,
                Protocol::Udp => 17,
                Protocol::Sctp => 132,
            };
            Ok((vec![p], vec![p]))
        }
        Field::InetService => {
            let (a, b) = match part {
                Part::Service(p) => (*p, *p),
                Part::ServiceRange(r) => (r.start(), r.end()),
                _ => return Err(format!("{:?} is not a port", text())),
            };
            Ok((a.to_be_bytes().to_vec(), b.to_be_bytes().to_vec()))
        }
        Field::Verdict => Err("a verdict is not a key".into()),
    }
}

/// Encodes the parts of a key or value; a concatenation pads each part to 4-byte registers.
pub(super) fn encode_parts(
    fields: &[Field],
    parts: &[Part],
) -> std::result::Result<(Vec<u8>, Vec<u8>), String> {
    if parts.len() != fields.len() {
        return Err(format!(
            "{:?} has {} parts, the set's type {}",
            Parts(parts).to_string(),
            parts.len(),
            fields.len()
        ));
    }
    let concat = fields.len() > 1;
    let (mut start, mut end) = (Vec::new(), Vec::new());
    for (field, part) in fields.iter().zip(parts) {
        let (mut s, mut e) = encode_part(*field, part)?;
        if concat {
            while s.len() % 4 != 0 {
                s.push(0);
                e.push(0);
            }
        }
        start.extend(s);
        end.extend(e);
    }
    Ok((start, end))
}

pub(super) fn encode_value(
    fields: &[Field],
    parts: &[Part],
) -> std::result::Result<NlData, String> {
    if fields == [Field::Verdict] {
        return match parts {
            [Part::Verdict(Verdict::Accept)] => Ok(NlData::Verdict(NlVerdict::Accept)),
            [Part::Verdict(Verdict::Drop)] => Ok(NlData::Verdict(NlVerdict::Drop)),
            _ => Err(format!("unknown verdict {:?}", Parts(parts).to_string())),
        };
    }
    let (start, end) = encode_parts(fields, parts)?;
    if start != end {
        return Err(format!(
            "the value {:?} is a range",
            Parts(parts).to_string()
        ));
    }
    Ok(NlData::Value(start))
}

/// The next value after `bytes` (big-endian), or `None` past the largest.
pub(super) fn successor(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut v = bytes.to_vec();
    for b in v.iter_mut().rev() {
        if *b == u8::MAX {
            *b = 0;
        } else {
            *b += 1;
            return Some(v);
        }
    }
    None
}

/// The netlink elements of one element of a set of type `ty`, as `nft` sends them: plain keys;
/// a key and a key end for concatenated interval sets; a start and an interval-end element (the
/// first key past the interval) for plain interval sets. A deletion names keys only.
pub(super) fn netlink_elements(
    ty: &SetType,
    interval: bool,
    elem: &Element,
    delete: bool,
) -> std::result::Result<Vec<SetElement>, String> {
    let (start, end) = encode_parts(&ty.key, &elem.key)?;
    let data = match (&ty.value, &elem.value, delete) {
        (_, _, true) => None,
        (Some(fields), Some(v), false) => Some(encode_value(fields, v)?),
        (None, None, false) => None,
        _ => {
            return Err(format!(
                "element {:?} does not fit a {ty}",
                elem.to_string()
            ));
        }
    };
    let mut out = Vec::with_capacity(2);
    if interval && ty.key.len() > 1 {
        let mut e = SetElement::range(start, end);
        e.data = data;
        out.push(e);
    } else if interval {
        let next = successor(&end);
        let mut e = SetElement::key(start);
        e.data = data;
        out.push(e);
        if let Some(next) = next {
            out.push(SetElement::interval_end(next));
        }
    } else {
        if start != end {
            return Err(format!(
                "{:?} is a range in a set without intervals",
                elem.key_text()
            ));
        }
        let mut e = SetElement::key(start);
        e.data = data;
        out.push(e);
    }
    Ok(out)
}

impl NftBatch {
    /// The netlink form of an element-only transaction (one made by [`delta`]): deletions, then
    /// additions, grouped by set like the script. `None` for any other transaction, which runs
    /// as `nft -f`. An element that cannot be encoded is an error naming it.
    pub(crate) fn netlink(&self) -> Option<std::result::Result<NlBatch, String>> {
        let delta = self.element_delta.as_ref()?;
        let mut batch = NlBatch::new();
        let mut encode = |elems: &[Elem], delete: bool| -> std::result::Result<(), String> {
            // By set name, like the script; each set's type is built once.
            let mut by_set: BTreeMap<&str, (Set, SetType, Vec<SetElement>)> = BTreeMap::new();
            for e in elems {
                let (set, ty, items) = by_set
                    .entry(e.set.name())
                    .or_insert_with(|| (e.set, e.set.ty(), Vec::new()));
                let encoded = netlink_elements(ty, set.interval(), &e.element, delete)
                    .map_err(|m| format!("element {} of set {}: {m}", e.element, set.name()))?;
                items.extend(encoded);
            }
            for (name, (set, ty, mut items)) in by_set {
                // Like nft, additions to a plain interval set start with an interval end at
                // zero (the kernel keeps it once; listings do not show it).
                let plain_interval = set.interval() && ty.key.len() == 1;
                if plain_interval && !delete {
                    if let Some(first) = items.first() {
                        let zero = vec![0u8; first.key.len()];
                        if !items.iter().any(|e| e.key == zero) {
                            items.insert(0, SetElement::interval_end(zero));
                        }
                    }
                }
                for chunk in items.chunks(ELEMENTS_PER_MESSAGE) {
                    if delete {
                        batch.delete_elements(NlFamily::Inet, TABLE_NAME, name, chunk);
                    } else {
                        batch.add_elements(NlFamily::Inet, TABLE_NAME, name, chunk);
                    }
                }
            }
            Ok(())
        };
        let result = encode(&delta.dels, true).and_then(|()| encode(&delta.adds, false));
        Some(result.map(|()| batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PortRange;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn ifname(name: &str) -> Vec<u8> {
        let mut v = vec![0u8; 16];
        v[..name.len()].copy_from_slice(name.as_bytes());
        v
    }

    fn br(name: &str) -> Part {
        Part::ifname(name)
    }

    fn addr(a: &str) -> Part {
        Part::Addr(a.parse().unwrap())
    }

    fn prefix(n: &str) -> Part {
        Part::Prefix(n.parse().unwrap())
    }

    fn ports(a: u16, b: u16) -> Part {
        Part::ServiceRange(PortRange::new(a, b).unwrap())
    }

    fn encode(
        set: &str,
        key: Vec<Part>,
        value: Option<Vec<Part>>,
        delete: bool,
    ) -> std::result::Result<Vec<SetElement>, String> {
        let set = Set::named(set).unwrap();
        netlink_elements(&set.ty(), set.interval(), &Element { key, value }, delete)
    }

    /// The bytes nft 1.0.6 sends for each kind of element of berth's layout (read off
    /// `nft --debug=mnl`): concatenations padded to 4-byte registers, concatenated intervals as
    /// key and key end, plain intervals as a start and the first key past the end.
    #[test]
    fn elements_encode_like_nft() {
        let enc = |set: &str, key: Vec<Part>, value: Option<Vec<Part>>, delete: bool| {
            encode(set, key, value, delete).unwrap()
        };
        use Protocol::{Sctp, Tcp, Udp};
        let mut key = hex("ac120000");
        key.extend(ifname("br-x"));
        let mut end = hex("ac12ffff");
        end.extend(ifname("br-x"));
        assert_eq!(
            enc(
                "hairpin4",
                vec![prefix("172.18.0.0/16"), br("br-x")],
                None,
                false
            ),
            vec![SetElement::range(key, end)]
        );
        assert_eq!(
            enc(
                "dnat4_range",
                vec![addr("192.0.2.1"), Part::Proto(Tcp), ports(8000, 8010)],
                Some(vec![addr("172.18.0.2"), Part::Service(80)]),
                false
            ),
            vec![
                SetElement::range(
                    hex("c0000201 06000000 1f400000"),
                    hex("c0000201 06000000 1f4a0000")
                )
                .with_data(NlData::Value(hex("ac120002 00500000")))
            ]
        );
        assert_eq!(
            enc(
                "snat4",
                vec![prefix("172.18.0.0/16")],
                Some(vec![addr("192.0.2.1")]),
                false
            ),
            vec![
                SetElement::key(hex("ac120000")).with_data(NlData::Value(hex("c0000201"))),
                SetElement::interval_end(hex("ac130000")),
            ]
        );
        assert_eq!(
            enc("masq6", vec![prefix("fd00::/64")], None, true),
            vec![
                SetElement::key(hex("fd000000 00000000 00000000 00000000")),
                SetElement::interval_end(hex("fd000000 00000001 00000000 00000000")),
            ]
        );
        // The whole address space has no end element.
        assert_eq!(
            enc("masq4", vec![prefix("0.0.0.0/0")], None, false),
            vec![SetElement::key(hex("00000000"))]
        );
        let mut icc = ifname("br-a");
        icc.extend(ifname("br-a"));
        let pair = || vec![br("br-a"), br("br-a")];
        assert_eq!(
            enc(
                "icc",
                pair(),
                Some(vec![Part::Verdict(Verdict::Drop)]),
                false
            ),
            vec![SetElement::key(icc.clone()).with_data(NlData::Verdict(NlVerdict::Drop))]
        );
        assert_eq!(
            enc(
                "icc",
                pair(),
                Some(vec![Part::Verdict(Verdict::Accept)]),
                false
            ),
            vec![SetElement::key(icc.clone()).with_data(NlData::Verdict(NlVerdict::Accept))]
        );
        assert_eq!(
            enc(
                "icc",
                pair(),
                Some(vec![Part::Verdict(Verdict::Accept)]),
                true
            ),
            vec![SetElement::key(icc)]
        );
        assert_eq!(
            enc(
                "dnat4",
                vec![addr("192.0.2.1"), Part::Proto(Tcp), Part::Service(8080)],
                Some(vec![addr("172.17.0.2"), Part::Service(80)]),
                false
            ),
            vec![
                SetElement::key(hex("c0000201 06000000 1f900000"))
                    .with_data(NlData::Value(hex("ac110002 00500000")))
            ]
        );
        assert_eq!(
            enc(
                "dnat6_all",
                vec![Part::Proto(Udp), Part::Service(53)],
                Some(vec![addr("fd00::2"), Part::Service(5353)]),
                false
            ),
            vec![
                SetElement::key(hex("11000000 00350000")).with_data(NlData::Value(hex(
                    "fd000000 00000000 00000000 00000002 14e90000"
                )))
            ]
        );
        assert_eq!(
            enc(
                "dnat4_range_keep",
                vec![addr("192.0.2.1"), Part::Proto(Sctp), ports(10, 20)],
                Some(vec![addr("10.0.0.2")]),
                false
            ),
            vec![
                SetElement::range(
                    hex("c0000201 84000000 000a0000"),
                    hex("c0000201 84000000 00140000")
                )
                .with_data(NlData::Value(hex("0a000002")))
            ]
        );
        assert_eq!(
            enc(
                "links4",
                vec![
                    addr("10.0.0.2"),
                    addr("10.0.0.3"),
                    Part::Proto(Tcp),
                    Part::Service(5432)
                ],
                None,
                false
            ),
            vec![SetElement::key(hex("0a000002 0a000003 06000000 15380000"))]
        );
        assert_eq!(
            enc("bridges", vec![br("br-0")], None, false),
            vec![SetElement::key(ifname("br-0"))]
        );
    }

    /// What the typed form still lets through is refused with the reason, naming the part (the
    /// rest of what a text element could get wrong, an unknown protocol, verdict or set, or a
    /// prefix longer than the address, cannot be written as a typed element).
    #[test]
    fn malformed_elements_are_refused_with_the_reason() {
        let bad = |set: &str, key: Vec<Part>, value: Option<Vec<Part>>| {
            encode(set, key, value, false).unwrap_err()
        };
        let tcp = || Part::Proto(Protocol::Tcp);
        let to = || Some(vec![addr("10.0.0.2"), Part::Service(80)]);
        assert_eq!(
            bad("bridges", vec![br("much-too-long-name")], None),
            "interface name \"much-too-long-name\" is not 1 to 15 bytes"
        );
        assert!(bad("bridges", vec![br("")], None).contains("1 to 15"));
        assert_eq!(
            bad("dnat4", vec![addr("192.0.2.1"), tcp()], to()),
            "\"192.0.2.1 . tcp\" has 2 parts, the set's type 3"
        );
        assert_eq!(
            bad(
                "dnat4",
                vec![addr("fd00::1"), tcp(), Part::Service(80)],
                to()
            ),
            "\"fd00::1\" is not of the set's address family"
        );
        assert!(bad("dnat4", vec![tcp(), tcp(), Part::Service(80)], to()).contains("address"));
        assert!(
            bad(
                "dnat4",
                vec![addr("192.0.2.1"), Part::Service(6), Part::Service(80)],
                to()
            )
            .contains("protocol")
        );
        assert!(bad("dnat4", vec![addr("192.0.2.1"), tcp(), tcp()], to()).contains("not a port"));
        assert_eq!(
            bad("dnat4", vec![addr("192.0.2.1"), tcp(), ports(80, 90)], to()),
            "\"192.0.2.1 . tcp . 80-90\" is a range in a set without intervals"
        );
        assert_eq!(
            bad(
                "dnat4",
                vec![addr("192.0.2.1"), tcp(), Part::Service(80)],
                None
            ),
            "element \"192.0.2.1 . tcp . 80\" does not fit a \
             ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service"
        );
        assert!(
            bad(
                "dnat4_all",
                vec![tcp(), Part::Service(80)],
                Some(vec![prefix("10.0.0.0/24"), Part::Service(80)])
            )
            .contains("is a range")
        );
        assert!(
            bad("icc", vec![br("a"), br("b")], Some(vec![addr("10.0.0.1")])).contains("verdict")
        );
        assert!(bad("masq4", vec![Part::Verdict(Verdict::Drop)], None).contains("address"));
        assert!(bad("bridges", vec![Part::Service(1)], None).contains("interface name"));
        // The error names the element and its set, and the batch is not sent.
        let long = NetworkRules::new(
            "much-too-long-name",
            Some("10.1.0.0/16".parse().unwrap()),
            None,
        );
        assert_eq!(
            delta(&network_elems(&long), &[])
                .netlink()
                .unwrap()
                .unwrap_err(),
            "element \"much-too-long-name\" of set bridges: \
             interface name \"much-too-long-name\" is not 1 to 15 bytes"
        );
        let mixed = PortRule {
            proto: Protocol::Tcp,
            host_ip: Some("fd00::1".parse().unwrap()),
            host_ports: PortRange::single(80).unwrap(),
            container_ip: "10.0.0.2".parse().unwrap(),
            container_ports: PortRange::single(80).unwrap(),
            bridge: "br-a".into(),
        };
        assert_eq!(
            delta(&port_dnat_elems(&mixed), &[])
                .netlink()
                .unwrap()
                .unwrap_err(),
            "element fd00::1 . tcp . 80 : 10.0.0.2 . 80 of set dnat4: \
             \"fd00::1\" is not of the set's address family"
        );
    }

    #[test]
    fn successor_carries_and_ends() {
        assert_eq!(successor(&[0, 255]), Some(vec![1, 0]));
        assert_eq!(successor(&[255, 255]), None);
        assert_eq!(successor(&[10, 0, 0, 255]), Some(vec![10, 0, 1, 0]));
    }
}

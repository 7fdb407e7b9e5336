//! The netlink form of nftables element changes: set key and value types parsed from their
//! `nft` text, elements encoded as the kernel's set element attributes, batched into messages.

use super::*;

/// Elements per netlink message: keeps every message far below the 64 KiB attribute limit.
pub(super) const ELEMENTS_PER_MESSAGE: usize = 128;

/// One field of a set's key or value type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Ifname,
    Ipv4,
    Ipv6,
    Proto,
    Service,
    Verdict,
}

impl Field {
    pub(super) fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "ifname" => Field::Ifname,
            "ipv4_addr" => Field::Ipv4,
            "ipv6_addr" => Field::Ipv6,
            "inet_proto" => Field::Proto,
            "inet_service" => Field::Service,
            "verdict" => Field::Verdict,
            _ => return None,
        })
    }
}

/// A set's type: the key fields and, for a map, the value fields.
pub(super) fn parse_set_type(ty: &str) -> Option<(Vec<Field>, Option<Vec<Field>>)> {
    let fields = |s: &str| -> Option<Vec<Field>> {
        s.split(" . ").map(|f| Field::parse(f.trim())).collect()
    };
    match ty.split_once(" : ") {
        Some((k, v)) => Some((fields(k)?, Some(fields(v)?))),
        None => Some((fields(ty)?, None)),
    }
}

/// The first and last value of one part of an element's text, in the kernel's byte layout
/// (network byte order; interface names NUL-padded to 16 bytes).
pub(super) fn encode_part(
    field: Field,
    text: &str,
) -> std::result::Result<(Vec<u8>, Vec<u8>), String> {
    let text = text.trim();
    match field {
        Field::Ifname => {
            let name = text
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(text);
            if name.is_empty() || name.len() >= 16 {
                return Err(format!("interface name {name:?} is not 1 to 15 bytes"));
            }
            let mut v = vec![0u8; 16];
            v[..name.len()].copy_from_slice(name.as_bytes());
            Ok((v.clone(), v))
        }
        Field::Ipv4 | Field::Ipv6 => {
            let net: ipnet::IpNet = match text.parse::<std::net::IpAddr>() {
                Ok(a) => a.into(),
                Err(_) => text
                    .parse()
                    .map_err(|_| format!("{text:?} is not an address or prefix"))?,
            };
            let bytes = |a: std::net::IpAddr| match a {
                std::net::IpAddr::V4(a) => a.octets().to_vec(),
                std::net::IpAddr::V6(a) => a.octets().to_vec(),
            };
            let want_v4 = field == Field::Ipv4;
            if net.addr().is_ipv4() != want_v4 {
                return Err(format!("{text:?} is not of the set's address family"));
            }
            Ok((bytes(net.network()), bytes(net.broadcast())))
        }
        Field::Proto => {
            let p: u8 = match text {
                "tcp" => 6,
                "udp" => 17,
                "sctp" => 132,
                other => other
                    .parse()
                    .map_err(|_| format!("unknown protocol {other:?}"))?,
            };
            Ok((vec![p], vec![p]))
        }
        Field::Service => {
            let (a, b) = text.split_once('-').unwrap_or((text, text));
            let port = |s: &str| -> std::result::Result<Vec<u8>, String> {
                let p: u16 = s
                    .trim()
                    .parse()
                    .map_err(|_| format!("{s:?} is not a port"))?;
                Ok(p.to_be_bytes().to_vec())
            };
            Ok((port(a)?, port(b)?))
        }
        Field::Verdict => Err("a verdict is not a key".into()),
    }
}

/// Encodes the parts of a key or value; a concatenation pads each part to 4-byte registers.
pub(super) fn encode_parts(
    fields: &[Field],
    text: &str,
) -> std::result::Result<(Vec<u8>, Vec<u8>), String> {
    let parts: Vec<&str> = text.split(" . ").collect();
    if parts.len() != fields.len() {
        return Err(format!(
            "{text:?} has {} parts, the set's type {}",
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

pub(super) fn encode_value(fields: &[Field], text: &str) -> std::result::Result<NlData, String> {
    if fields == [Field::Verdict] {
        return match text.trim() {
            "accept" => Ok(NlData::Verdict(NlVerdict::Accept)),
            "drop" => Ok(NlData::Verdict(NlVerdict::Drop)),
            "return" => Ok(NlData::Verdict(NlVerdict::Return)),
            other => match other.split_once(' ') {
                Some(("jump", c)) => Ok(NlData::Verdict(NlVerdict::Jump(c.trim().to_owned()))),
                Some(("goto", c)) => Ok(NlData::Verdict(NlVerdict::Goto(c.trim().to_owned()))),
                _ => Err(format!("unknown verdict {other:?}")),
            },
        };
    }
    let (start, end) = encode_parts(fields, text)?;
    if start != end {
        return Err(format!("the value {text:?} is a range"));
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

/// The netlink elements of one element of `def`, as `nft` sends them: plain keys; a key and a
/// key end for concatenated interval sets; a start and an interval-end element (the first key
/// past the interval) for plain interval sets. A deletion names keys only.
pub(super) fn netlink_elements(
    def: &SetDef,
    elem: &Elem,
    delete: bool,
) -> std::result::Result<Vec<SetElement>, String> {
    let (key_fields, value_fields) =
        parse_set_type(&def.ty).ok_or_else(|| format!("unsupported set type {:?}", def.ty))?;
    let (start, end) = encode_parts(&key_fields, &elem.key)?;
    let data = match (&value_fields, &elem.value, delete) {
        (_, _, true) => None,
        (Some(fields), Some(v), false) => Some(encode_value(fields, v)?),
        (None, None, false) => None,
        _ => {
            return Err(format!(
                "element {:?} does not fit a {}",
                elem.text(),
                def.ty
            ));
        }
    };
    let interval = def.flags.as_deref() == Some("interval");
    let mut out = Vec::with_capacity(2);
    if interval && key_fields.len() > 1 {
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
                elem.key
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
        let defs = set_defs();
        let mut batch = NlBatch::new();
        let mut encode = |elems: &[Elem], delete: bool| -> std::result::Result<(), String> {
            let mut by_set: BTreeMap<&str, Vec<SetElement>> = BTreeMap::new();
            for e in elems {
                let def = defs
                    .iter()
                    .find(|d| d.name == e.set)
                    .ok_or_else(|| format!("set {:?} is not in berth's layout", e.set))?;
                let encoded = netlink_elements(def, e, delete)
                    .map_err(|m| format!("element {} of set {}: {m}", e.text(), e.set))?;
                by_set.entry(&e.set).or_default().extend(encoded);
            }
            for (set, mut items) in by_set {
                // Like nft, additions to a plain interval set start with an interval end at
                // zero (the kernel keeps it once; listings do not show it).
                let plain_interval = defs.iter().any(|d| {
                    d.name == set
                        && d.flags.as_deref() == Some("interval")
                        && !d.ty.split(" : ").next().unwrap_or("").contains(" . ")
                });
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
                        batch.delete_elements(NlFamily::Inet, TABLE_NAME, set, chunk);
                    } else {
                        batch.add_elements(NlFamily::Inet, TABLE_NAME, set, chunk);
                    }
                }
            }
            Ok(())
        };
        let result = encode(&delta.dels, true).and_then(|()| encode(&delta.adds, false));
        Some(result.map(|()| batch))
    }
}

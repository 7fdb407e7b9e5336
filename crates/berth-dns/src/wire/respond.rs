//! The decision about one message from a sandbox's view: a local answer (names, aliases,
//! reverse lookups), a forward to the upstream servers, NXDOMAIN on internal networks, or nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Name;
use rand::Rng;

use super::query::{Parsed, parse};
use super::writer::{Writer, push_addrs};
use super::{
    Action, CLASS_ANY, CLASS_IN, ClientEdns, ForwardInfo, MAX_TCP_MESSAGE, MAX_UDP_PAYLOAD,
    MIN_UDP_PAYLOAD, TYPE_PTR, Transport,
};
use crate::table::{NameLookup, View};

/// The answer size limit for a requester.
fn limit_for(transport: Transport, edns: Option<ClientEdns>) -> usize {
    match transport {
        Transport::Tcp => MAX_TCP_MESSAGE,
        Transport::Udp => match edns {
            Some(e) => (e.payload as usize).clamp(MIN_UDP_PAYLOAD, MAX_UDP_PAYLOAD),
            None => MIN_UDP_PAYLOAD,
        },
    }
}

/// Lower-cases the query name into `buf` as dotted text without the final dot; None if a label
/// contains a dot (such a name cannot be one of ours).
fn lower_key<'b>(name: &Name, buf: &'b mut [u8; 256]) -> Option<&'b [u8]> {
    let mut n = 0;
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            *buf.get_mut(n)? = b'.';
            n += 1;
        }
        for &b in label {
            if b == b'.' {
                return None;
            }
            *buf.get_mut(n)? = b.to_ascii_lowercase();
            n += 1;
        }
    }
    Some(&buf[..n])
}

/// The address a reverse-lookup name (`4.3.2.1.in-addr.arpa`, nibbles `.ip6.arpa`) stands for.
pub(crate) fn reverse_addr(name: &Name) -> Option<IpAddr> {
    let labels: Vec<&[u8]> = name.iter().collect();
    let is = |l: &[u8], s: &str| l.eq_ignore_ascii_case(s.as_bytes());
    match labels.as_slice() {
        [d, c, b, a, inaddr, arpa] if is(inaddr, "in-addr") && is(arpa, "arpa") => {
            let octet = |l: &[u8]| -> Option<u8> {
                if l.is_empty() || l.len() > 3 || (l.len() > 1 && l[0] == b'0') {
                    return None;
                }
                std::str::from_utf8(l).ok()?.parse().ok()
            };
            Some(IpAddr::V4(Ipv4Addr::new(
                octet(a)?,
                octet(b)?,
                octet(c)?,
                octet(d)?,
            )))
        }
        [nibbles @ .., ip6, arpa] if nibbles.len() == 32 && is(ip6, "ip6") && is(arpa, "arpa") => {
            let mut v: u128 = 0;
            for l in nibbles.iter().rev() {
                let [c] = l else { return None };
                let d = (*c as char).to_digit(16)?;
                v = (v << 4) | u128::from(d);
            }
            Some(IpAddr::V6(Ipv6Addr::from(v)))
        }
        _ => None,
    }
}

/// Answers one DNS message from a sandbox's view.
///
/// Writes the answer to send (if any) into `out`, and says whether to send it, forward the
/// query, or drop it. Never panics, whatever `packet` holds.
pub(crate) fn respond<R: Rng>(
    packet: &[u8],
    transport: Transport,
    view: &View,
    rng: &mut R,
    out: &mut Vec<u8>,
) -> Action {
    let q = match parse(packet, out) {
        Parsed::Query(q) => q,
        Parsed::Replied => return Action::Reply,
        Parsed::Drop => return Action::Drop,
    };
    let limit = limit_for(transport, q.edns);
    let local_class = q.qclass == CLASS_IN || q.qclass == CLASS_ANY;
    if local_class {
        let mut buf = [0u8; 256];
        if q.qtype == TYPE_PTR {
            if let Some(target) = reverse_addr(&q.name).and_then(|a| view.ptr(&a)) {
                let mut w = Writer::begin_with_limit(&q, out, limit);
                w.answer(TYPE_PTR, &target);
                w.finish(0, false, MAX_UDP_PAYLOAD);
                return Action::Reply;
            }
        } else if let Some(key) = lower_key(&q.name, &mut buf) {
            if let NameLookup::Found(addrs) = view.resolve(key) {
                // A known name: its addresses for A/AAAA/ANY; "no data" for any other type (and
                // for AAAA of a name without IPv6), never a forward.
                let mut w = Writer::begin_with_limit(&q, out, limit);
                push_addrs(&mut w, rng, &addrs, q.qtype);
                w.finish(0, false, MAX_UDP_PAYLOAD);
                return Action::Reply;
            }
        }
    }
    if view.forward {
        if view.upstreams.is_empty() {
            let w = Writer::begin_with_limit(&q, out, limit);
            w.finish(u16::from(ResponseCode::ServFail), false, MAX_UDP_PAYLOAD);
            return Action::Reply;
        }
        return Action::Forward(ForwardInfo {
            id: q.header.id(),
            limit,
            name: q.name,
            qtype: q.qtype,
            qclass: q.qclass,
            edns: q.edns.is_some(),
            rd: q.header.recursion_desired(),
            cd: q.header.checking_disabled(),
        });
    }
    // No way out (internal networks only): the name does not exist in this sandbox's world.
    let w = Writer::begin_with_limit(&q, out, limit);
    w.finish(u16::from(ResponseCode::NXDomain), false, MAX_UDP_PAYLOAD);
    Action::Reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{EndpointEntry, NetTable, ViewNet};
    use crate::wire::{LOCAL_TTL, MAX_QUERY_LEN, RCODE_BADVERS};
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::rdata::opt::OPT;
    use hickory_proto::rr::{RData, RecordType};
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::collections::HashMap;
    use std::sync::Arc;

    fn table() -> Arc<NetTable> {
        let t = Arc::new(NetTable::new("n1", "net1", false, true));
        t.upsert(
            "e1",
            EndpointEntry {
                sandbox: "s1".into(),
                name: "web".into(),
                aliases: vec!["svc".into()],
                ipv4: Some("10.0.0.2".parse().unwrap()),
                ipv6: Some("fd00::2".parse().unwrap()),
            },
        );
        t.upsert(
            "e2",
            EndpointEntry {
                sandbox: "s2".into(),
                name: "db".into(),
                aliases: vec!["svc".into()],
                ipv4: Some("10.0.0.3".parse().unwrap()),
                ipv6: None,
            },
        );
        t
    }

    fn view(forward: bool, upstreams: &[&str]) -> View {
        View {
            nets: vec![ViewNet {
                table: table(),
                links: HashMap::new(),
            }],
            forward,
            upstreams: upstreams.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    fn query(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(0x1234).set_recursion_desired(true);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    fn run(v: &View, packet: &[u8], transport: Transport) -> (Action, Vec<u8>) {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut out = Vec::new();
        let a = respond(packet, transport, v, &mut rng, &mut out);
        (a, out)
    }

    fn answer(v: &View, name: &str, t: RecordType) -> Message {
        let (a, out) = run(v, &query(name, t), Transport::Udp);
        assert!(matches!(a, Action::Reply), "{a:?}");
        Message::from_vec(&out).unwrap()
    }

    #[test]
    fn a_aaaa_any_and_case() {
        let v = view(true, &["192.0.2.53:53"]);
        let m = answer(&v, "WeB.", RecordType::A);
        assert_eq!(m.id(), 0x1234);
        assert!(m.recursion_available() && m.recursion_desired());
        assert_eq!(m.answers().len(), 1);
        assert_eq!(m.answers()[0].name().to_ascii(), "WeB.");
        assert_eq!(m.answers()[0].ttl(), LOCAL_TTL);
        assert_eq!(m.queries()[0].name().to_ascii(), "WeB.");
        let m = answer(&v, "web.net1.", RecordType::AAAA);
        assert_eq!(
            m.answers()[0].data(),
            &RData::AAAA("fd00::2".parse::<Ipv6Addr>().unwrap().into())
        );
        let m = answer(&v, "db", RecordType::AAAA);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.answers().is_empty());
        let m = answer(&v, "web", RecordType::ANY);
        assert_eq!(m.answers().len(), 2);
        let m = answer(&v, "web", RecordType::MX);
        assert!(m.answers().is_empty() && m.response_code() == ResponseCode::NoError);
    }

    #[test]
    fn round_robin_returns_all_shuffled() {
        let v = view(true, &[]);
        let mut firsts = std::collections::BTreeSet::new();
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..50 {
            let mut out = Vec::new();
            respond(
                &query("svc", RecordType::A),
                Transport::Udp,
                &v,
                &mut rng,
                &mut out,
            );
            let m = Message::from_vec(&out).unwrap();
            assert_eq!(m.answers().len(), 2);
            firsts.insert(m.answers()[0].data().clone().into_a().unwrap().0);
        }
        assert_eq!(firsts.len(), 2, "both addresses come first sometimes");
    }

    #[test]
    fn ptr_v4_and_v6() {
        let v = view(true, &[]);
        let m = answer(&v, "2.0.0.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(m.answers()[0].data().to_string(), "web.net1.");
        let v6: Ipv6Addr = "fd00::2".parse().unwrap();
        let rev = Name::from(IpAddr::V6(v6));
        let m = answer(&v, &rev.to_ascii(), RecordType::PTR);
        assert_eq!(m.answers()[0].data().to_string(), "web.net1.");
        assert_eq!(
            reverse_addr(&Name::from_ascii("01.0.0.10.in-addr.arpa").unwrap()),
            None
        );
    }

    #[test]
    fn unknown_names_forward_or_nxdomain() {
        let v = view(true, &["192.0.2.53:53"]);
        let (a, _) = run(&v, &query("example.com", RecordType::A), Transport::Udp);
        match a {
            Action::Forward(f) => {
                assert_eq!(f.id(), 0x1234);
                assert_eq!(f.limit(), 512);
            }
            other => panic!("{other:?}"),
        }
        let internal = view(false, &[]);
        let m = answer(&internal, "example.com", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        let none = view(true, &[]);
        let m = answer(&none, "example.com", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::ServFail);
    }

    #[test]
    fn bad_input() {
        let v = view(true, &["192.0.2.53:53"]);
        // too short, and responses: nothing
        assert!(matches!(run(&v, &[0; 11], Transport::Udp).0, Action::Drop));
        let mut resp = query("web", RecordType::A);
        resp[2] |= 0x80;
        assert!(matches!(run(&v, &resp, Transport::Udp).0, Action::Drop));
        // truncated question: FORMERR, header only
        let q = query("web", RecordType::A);
        for cut in 12..q.len() {
            let (a, out) = run(&v, &q[..cut], Transport::Udp);
            assert!(matches!(a, Action::Reply), "cut at {cut}");
            let m = Message::from_vec(&out).unwrap();
            assert_eq!(m.response_code(), ResponseCode::FormErr, "cut at {cut}");
            assert_eq!(out.len(), 12);
        }
        // oversized: dropped
        let mut big = q.clone();
        big.resize(MAX_QUERY_LEN + 1, 0);
        assert!(matches!(run(&v, &big, Transport::Udp).0, Action::Drop));
        // trailing garbage: FORMERR
        let mut trailing = q.clone();
        trailing.push(0);
        let (_, out) = run(&v, &trailing, Transport::Udp);
        assert_eq!(
            Message::from_vec(&out).unwrap().response_code(),
            ResponseCode::FormErr
        );
        // two questions: FORMERR
        let mut m = Message::new();
        m.add_query(Query::query(Name::from_ascii("a").unwrap(), RecordType::A));
        m.add_query(Query::query(Name::from_ascii("b").unwrap(), RecordType::A));
        let (_, out) = run(&v, &m.to_vec().unwrap(), Transport::Udp);
        assert_eq!(
            Message::from_vec(&out).unwrap().response_code(),
            ResponseCode::FormErr
        );
        // other opcodes: NOTIMP
        let mut notify = q.clone();
        notify[2] |= 4 << 3;
        let (_, out) = run(&v, &notify, Transport::Udp);
        assert_eq!(
            Message::from_vec(&out).unwrap().response_code(),
            ResponseCode::NotImp
        );
    }

    #[test]
    fn edns_is_echoed_and_badvers() {
        let v = view(true, &[]);
        let mut m = Message::new();
        m.set_id(9);
        m.add_query(Query::query(
            Name::from_ascii("web").unwrap(),
            RecordType::A,
        ));
        let mut edns = hickory_proto::op::Edns::new();
        edns.set_max_payload(1232);
        m.set_edns(edns.clone());
        let (_, out) = run(&v, &m.to_vec().unwrap(), Transport::Udp);
        let r = Message::from_vec(&out).unwrap();
        assert_eq!(r.answers().len(), 1);
        assert!(r.extensions().is_some());
        edns.set_version(1);
        m.set_edns(edns);
        let (_, out) = run(&v, &m.to_vec().unwrap(), Transport::Udp);
        let r = Message::from_vec(&out).unwrap();
        // BADVERS and BADSIG share the value 16
        assert_eq!(u16::from(r.response_code()), RCODE_BADVERS);
        let _ = OPT::default();
    }

    #[test]
    fn large_answers_are_cut_with_tc() {
        let t = Arc::new(NetTable::new("n1", "net1", false, true));
        for i in 0..100u8 {
            t.upsert(
                &format!("e{i}"),
                EndpointEntry {
                    sandbox: format!("s{i}"),
                    name: format!("c{i}"),
                    aliases: vec!["many".into()],
                    ipv4: Some(Ipv4Addr::new(10, 0, 1, i)),
                    ipv6: None,
                },
            );
        }
        let v = View {
            nets: vec![ViewNet {
                table: t,
                links: HashMap::new(),
            }],
            forward: false,
            upstreams: Arc::from(Vec::new()),
        };
        let (_, out) = run(&v, &query("many", RecordType::A), Transport::Udp);
        assert!(out.len() <= MIN_UDP_PAYLOAD);
        let m = Message::from_vec(&out).unwrap();
        assert!(m.truncated());
        assert!(m.answers().len() > 20 && m.answers().len() < 100);
        let (_, out) = run(&v, &query("many", RecordType::A), Transport::Tcp);
        let m = Message::from_vec(&out).unwrap();
        assert!(!m.truncated());
        assert_eq!(m.answers().len(), 100);
    }
}

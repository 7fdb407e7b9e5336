//! The responder: one DNS message in, one decision out (answer, forward, or drop). Pure: no I/O,
//! so it is unit-tested, fuzzed and benchmarked on its own.
//!
//! Messages are decoded with hickory-proto's decoder (header, names, records), which validates
//! label lengths, compression pointers (strictly backwards) and name length. Local answers are
//! written straight into a reused buffer: the header through hickory-proto's encoder, the
//! question uncompressed at offset 12, and every answer's owner as a pointer to it.
//!
//! Size rules: a UDP answer never exceeds 512 bytes, or the requester's EDNS payload size
//! (clamped to 512..=4096); a TCP answer never exceeds 65535 bytes. Answers that do not fit are
//! cut at a record boundary and flagged TC. Queries longer than [`MAX_QUERY_LEN`] (UDP datagrams:
//! [`MAX_UDP_QUERY_LEN`]) are dropped;
//! queries that are truncated, malformed or carry more than one question get FORMERR (with no
//! question section); opcodes other than QUERY get NOTIMP; messages shorter than a header, and
//! responses, are dropped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use rand::Rng;

use crate::table::{Addrs, NameLookup, View};

/// The largest query accepted over TCP (and by [`crate::SandboxHandle::respond`]). Longer ones
/// are dropped unanswered.
pub const MAX_QUERY_LEN: usize = 4096;
/// The largest UDP datagram accepted as a query (an Ethernet MTU: a larger query would have been
/// fragmented on any real network). Longer ones are dropped unanswered.
pub const MAX_UDP_QUERY_LEN: usize = 1500;
/// The UDP payload size without EDNS (RFC 1035).
pub const MIN_UDP_PAYLOAD: usize = 512;
/// The largest UDP payload berth sends or advertises, whatever a requester's EDNS asks for.
pub const MAX_UDP_PAYLOAD: usize = 4096;
/// The largest message over TCP (two-byte length prefix).
pub const MAX_TCP_MESSAGE: usize = 65535;
/// The TTL of local answers (Docker's value).
pub const LOCAL_TTL: u32 = 600;

const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;
const OPT_RR_LEN: usize = 11;
const RCODE_BADVERS: u16 = 16;

/// How a query arrived (and so how large its answer may be).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A UDP datagram.
    Udp,
    /// A TCP stream (length-prefixed messages).
    Tcp,
}

/// The requester's EDNS(0) record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientEdns {
    payload: u16,
    dnssec_ok: bool,
}

/// A query that passed validation.
#[derive(Debug, Clone)]
pub(crate) struct ParsedQuery {
    header: Header,
    name: Name,
    qtype: u16,
    qclass: u16,
    edns: Option<ClientEdns>,
}

/// What to do with a forwarded query's answer.
#[derive(Debug, Clone)]
pub struct ForwardInfo {
    /// The requester's message id (the upstream sees a fresh random one).
    pub(crate) id: u16,
    /// The largest answer the requester accepts.
    pub(crate) limit: usize,
    /// The question, to check the upstream's answer against.
    pub(crate) name: Name,
    pub(crate) qtype: u16,
    pub(crate) qclass: u16,
    /// The requester sent EDNS (an OPT record is appended to answers cut to size).
    pub(crate) edns: bool,
    /// The requester's RD and CD flags, for locally made failures.
    pub(crate) rd: bool,
    pub(crate) cd: bool,
}

impl ForwardInfo {
    /// The requester's message id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The largest answer the requester accepts, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// The responder's decision about one message.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send the answer written into the output buffer.
    Reply,
    /// Not a local name: forward the query to the upstream servers.
    Forward(ForwardInfo),
    /// Send nothing.
    Drop,
}

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

enum Parsed {
    Query(ParsedQuery),
    /// An error answer was written.
    Replied,
    Drop,
}

/// Writes a header-only answer (no question) with `rcode`, mirroring the request's id, opcode
/// and RD bit.
fn header_only(request: &Header, rcode: ResponseCode, out: &mut Vec<u8>) {
    let mut h = Header::response_from_request(request);
    h.set_recursion_available(true)
        .set_checking_disabled(false)
        .set_response_code(rcode);
    out.clear();
    let mut enc = BinEncoder::new(out);
    // A 12-byte header into a Vec cannot fail.
    let _ = h.emit(&mut enc);
}

/// Skips one resource record; returns (type, class, ttl) of it.
fn skip_record(dec: &mut BinDecoder<'_>) -> Option<(Name, u16, u16, u32)> {
    let owner = Name::read(dec).ok()?;
    let rtype = dec.read_u16().ok()?.unverified();
    let class = dec.read_u16().ok()?.unverified();
    let ttl = dec.read_u32().ok()?.unverified();
    let rdlen = dec.read_u16().ok()?.unverified();
    dec.read_slice(rdlen as usize).ok()?;
    Some((owner, rtype, class, ttl))
}

fn parse(packet: &[u8], out: &mut Vec<u8>) -> Parsed {
    if packet.len() < Header::len() || packet.len() > MAX_QUERY_LEN {
        return Parsed::Drop;
    }
    let mut dec = BinDecoder::new(packet);
    let Ok(header) = Header::read(&mut dec) else {
        return Parsed::Drop;
    };
    if header.message_type() == MessageType::Response {
        return Parsed::Drop;
    }
    if header.op_code() != OpCode::Query {
        header_only(&header, ResponseCode::NotImp, out);
        return Parsed::Replied;
    }
    if header.query_count() != 1 {
        header_only(&header, ResponseCode::FormErr, out);
        return Parsed::Replied;
    }
    let formerr = |out: &mut Vec<u8>| {
        header_only(&header, ResponseCode::FormErr, out);
        Parsed::Replied
    };
    let Ok(name) = Name::read(&mut dec) else {
        return formerr(out);
    };
    let (Ok(qtype), Ok(qclass)) = (dec.read_u16(), dec.read_u16()) else {
        return formerr(out);
    };
    let (qtype, qclass) = (qtype.unverified(), qclass.unverified());
    for _ in 0..(u32::from(header.answer_count()) + u32::from(header.name_server_count())) {
        if skip_record(&mut dec).is_none() {
            return formerr(out);
        }
    }
    let mut edns = None;
    let mut bad_version = false;
    for _ in 0..header.additional_count() {
        match skip_record(&mut dec) {
            None => return formerr(out),
            Some((owner, TYPE_OPT, class, ttl)) => {
                if edns.is_some() || !owner.is_root() {
                    return formerr(out);
                }
                bad_version |= (ttl >> 16) & 0xff != 0;
                edns = Some(ClientEdns {
                    payload: class,
                    dnssec_ok: ttl & 0x8000 != 0,
                });
            }
            Some(_) => {}
        }
    }
    if !dec.is_empty() {
        return formerr(out);
    }
    let q = ParsedQuery {
        header,
        name,
        qtype,
        qclass,
        edns,
    };
    if bad_version {
        // RFC 6891 6.1.3: BADVERS, with our own OPT record saying version 0.
        let w = Writer::begin(&q, out);
        w.finish(RCODE_BADVERS, false, MAX_UDP_PAYLOAD);
        return Parsed::Replied;
    }
    Parsed::Query(q)
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

/// Builds an answer in the output buffer: header, question, answers within the size limit.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    limit: usize,
    reserve: usize,
    answers: u16,
    truncated: bool,
    edns: Option<ClientEdns>,
}

impl<'a> Writer<'a> {
    fn begin(q: &ParsedQuery, out: &'a mut Vec<u8>) -> Writer<'a> {
        Self::begin_with_limit(q, out, MAX_TCP_MESSAGE)
    }

    fn begin_with_limit(q: &ParsedQuery, out: &'a mut Vec<u8>, limit: usize) -> Writer<'a> {
        let mut h = Header::response_from_request(&q.header);
        h.set_recursion_available(true).set_query_count(1);
        out.clear();
        {
            let mut enc = BinEncoder::new(out);
            let _ = h.emit(&mut enc);
        }
        for label in q.name.iter() {
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
        out.push(0);
        out.extend_from_slice(&q.qtype.to_be_bytes());
        out.extend_from_slice(&q.qclass.to_be_bytes());
        Writer {
            out,
            limit,
            reserve: if q.edns.is_some() { OPT_RR_LEN } else { 0 },
            answers: 0,
            truncated: false,
            edns: q.edns,
        }
    }

    /// Appends one answer owned by the question name; false (and TC) if it does not fit.
    fn answer(&mut self, rtype: u16, rdata: &[u8]) -> bool {
        if self.truncated {
            return false;
        }
        let len = 12 + rdata.len();
        if self.out.len() + len + self.reserve > self.limit {
            self.truncated = true;
            return false;
        }
        self.out.extend_from_slice(&[0xc0, 0x0c]);
        self.out.extend_from_slice(&rtype.to_be_bytes());
        self.out.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.out.extend_from_slice(&LOCAL_TTL.to_be_bytes());
        self.out
            .extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        self.out.extend_from_slice(rdata);
        self.answers += 1;
        true
    }

    /// Sets the counts, flags and response code, and appends our OPT record if the requester
    /// sent one.
    fn finish(self, rcode: u16, authoritative: bool, advertised: usize) {
        let out = self.out;
        if self.truncated {
            out[2] |= 0x02;
        }
        if authoritative {
            out[2] |= 0x04;
        }
        out[3] = (out[3] & 0xf0) | (rcode & 0x0f) as u8;
        out[6..8].copy_from_slice(&self.answers.to_be_bytes());
        if let Some(e) = self.edns {
            let ttl: u32 =
                (u32::from((rcode >> 4) as u8) << 24) | if e.dnssec_ok { 0x8000 } else { 0 };
            out.push(0);
            out.extend_from_slice(&TYPE_OPT.to_be_bytes());
            out.extend_from_slice(&(advertised as u16).to_be_bytes());
            out.extend_from_slice(&ttl.to_be_bytes());
            out.extend_from_slice(&0u16.to_be_bytes());
            out[10..12].copy_from_slice(&1u16.to_be_bytes());
        }
    }
}

/// Appends the addresses in random order (DNS round robin); returns false once one did not fit.
fn push_shuffled<R: Rng, const N: usize, T: Copy>(
    w: &mut Writer<'_>,
    rng: &mut R,
    addrs: &[T],
    rtype: u16,
    bytes: impl Fn(T) -> [u8; N],
) -> bool {
    match addrs {
        [] => true,
        [one] => w.answer(rtype, &bytes(*one)),
        many => {
            let mut order: Vec<usize> = (0..many.len()).collect();
            for i in (1..order.len()).rev() {
                let j = rng.random_range(0..=i);
                order.swap(i, j);
            }
            order.into_iter().all(|i| w.answer(rtype, &bytes(many[i])))
        }
    }
}

fn push_addrs<R: Rng>(w: &mut Writer<'_>, rng: &mut R, addrs: &Addrs, qtype: u16) {
    let want_v4 = qtype == TYPE_A || qtype == TYPE_ANY;
    let want_v6 = qtype == TYPE_AAAA || qtype == TYPE_ANY;
    if want_v4 && !push_shuffled(w, rng, &addrs.v4, TYPE_A, |a| a.octets()) {
        return;
    }
    if want_v6 {
        push_shuffled(w, rng, &addrs.v6, TYPE_AAAA, |a| a.octets());
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

/// Writes the answer to a forwarded query that failed everywhere: SERVFAIL with the question.
pub(crate) fn servfail(info: &ForwardInfo, out: &mut Vec<u8>) {
    write_failure(info, ResponseCode::ServFail, out)
}

fn write_failure(info: &ForwardInfo, rcode: ResponseCode, out: &mut Vec<u8>) {
    let mut h = Header::new();
    h.set_id(info.id)
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(info.rd)
        .set_checking_disabled(info.cd);
    let q = ParsedQuery {
        header: h,
        name: info.name.clone(),
        qtype: info.qtype,
        qclass: info.qclass,
        edns: info.edns.then_some(ClientEdns {
            payload: MAX_UDP_PAYLOAD as u16,
            dnssec_ok: false,
        }),
    };
    let w = Writer::begin_with_limit(&q, out, info.limit);
    w.finish(u16::from(rcode), false, MAX_UDP_PAYLOAD);
}

/// What an upstream's message means for a forwarded query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// Not the answer to our question (wrong id, not a response, other question): ignore it.
    Foreign,
    /// An answer with the TC flag.
    Truncated,
    /// SERVFAIL or REFUSED: try the next server.
    Failed,
    /// A usable answer.
    Answer,
}

/// Classifies an upstream's message against the id berth sent and the requester's question.
pub fn check_upstream(msg: &[u8], sent_id: u16, info: &ForwardInfo) -> Upstream {
    let mut dec = BinDecoder::new(msg);
    let Ok(h) = Header::read(&mut dec) else {
        return Upstream::Foreign;
    };
    if h.id() != sent_id || h.message_type() != MessageType::Response || h.query_count() != 1 {
        return Upstream::Foreign;
    }
    let Ok(name) = Name::read(&mut dec) else {
        return Upstream::Foreign;
    };
    let (Ok(t), Ok(c)) = (dec.read_u16(), dec.read_u16()) else {
        return Upstream::Foreign;
    };
    if name != info.name || t.unverified() != info.qtype || c.unverified() != info.qclass {
        return Upstream::Foreign;
    }
    match h.response_code() {
        ResponseCode::ServFail | ResponseCode::Refused => Upstream::Failed,
        _ if h.truncated() => Upstream::Truncated,
        _ => Upstream::Answer,
    }
}

/// Writes an upstream's answer for the requester: its id restored, and cut at a record boundary
/// (with TC) if it is larger than the requester accepts. Compression pointers only point
/// backwards, so a prefix of the message stays valid. Never larger than [`ForwardInfo::limit`].
pub fn relay(msg: &[u8], info: &ForwardInfo, out: &mut Vec<u8>) {
    out.clear();
    if msg.len() < Header::len() {
        servfail(info, out);
        return;
    }
    if msg.len() <= info.limit {
        out.extend_from_slice(msg);
        out[0..2].copy_from_slice(&info.id.to_be_bytes());
        return;
    }
    let reserve = if info.edns { OPT_RR_LEN } else { 0 };
    let budget = info.limit - reserve;
    let mut dec = BinDecoder::new(msg);
    let mut keep = 0;
    let mut answers: u16 = 0;
    if let Ok(h) = Header::read(&mut dec) {
        let question_ok = h.query_count() == 1
            && Name::read(&mut dec).is_ok()
            && dec.read_u16().is_ok()
            && dec.read_u16().is_ok();
        if question_ok && dec.index() <= budget {
            keep = dec.index();
            for _ in 0..h.answer_count() {
                if skip_record(&mut dec).is_none() || dec.index() > budget {
                    break;
                }
                keep = dec.index();
                answers += 1;
            }
        }
    }
    if keep == 0 {
        servfail(info, out);
        return;
    }
    out.extend_from_slice(&msg[..keep]);
    out[0..2].copy_from_slice(&info.id.to_be_bytes());
    out[2] |= 0x02;
    out[6..8].copy_from_slice(&answers.to_be_bytes());
    out[8..12].fill(0);
    if info.edns {
        out.push(0);
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        out.extend_from_slice(&(MAX_UDP_PAYLOAD as u16).to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out[10..12].copy_from_slice(&1u16.to_be_bytes());
    }
}

/// The record type name of a query type, for logs.
pub(crate) fn type_name(qtype: u16) -> String {
    RecordType::from(qtype).to_string()
}

/// The class of a query, for logs.
#[allow(dead_code)]
pub(crate) fn class_name(qclass: u16) -> String {
    DNSClass::from(qclass).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{EndpointEntry, NetTable, ViewNet};
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::rdata::opt::OPT;
    use hickory_proto::rr::{RData, Record};
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

    #[test]
    fn relay_restores_id_and_cuts() {
        let info = ForwardInfo {
            id: 77,
            limit: 512,
            name: Name::from_ascii("big.example.").unwrap(),
            qtype: TYPE_A,
            qclass: CLASS_IN,
            edns: false,
            rd: true,
            cd: false,
        };
        let mut m = Message::new();
        m.set_id(5000)
            .set_message_type(MessageType::Response)
            .add_query(Query::query(info.name.clone(), RecordType::A));
        for i in 0..60u8 {
            m.add_answer(Record::from_rdata(
                info.name.clone(),
                60,
                RData::A(Ipv4Addr::new(192, 0, 2, i).into()),
            ));
        }
        let bytes = m.to_vec().unwrap();
        assert_eq!(check_upstream(&bytes, 5000, &info), Upstream::Answer);
        assert_eq!(check_upstream(&bytes, 5001, &info), Upstream::Foreign);
        let mut out = Vec::new();
        relay(&bytes, &info, &mut out);
        assert!(out.len() <= 512);
        let r = Message::from_vec(&out).unwrap();
        assert_eq!(r.id(), 77);
        assert!(r.truncated());
        assert!(!r.answers().is_empty());
        let mut small = info.clone();
        small.limit = MAX_TCP_MESSAGE;
        relay(&bytes, &small, &mut out);
        let r = Message::from_vec(&out).unwrap();
        assert_eq!(r.answers().len(), 60);
        servfail(&info, &mut out);
        let r = Message::from_vec(&out).unwrap();
        assert_eq!(r.response_code(), ResponseCode::ServFail);
        assert_eq!(r.id(), 77);
    }
}

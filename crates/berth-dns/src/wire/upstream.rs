//! A forwarded query's way back: classifying an upstream's message against the question, relaying
//! an answer with the requester's id and within its size limit, and the SERVFAIL written when
//! every upstream failed.

use hickory_proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::query::skip_record;
use super::writer::Writer;
use super::{ClientEdns, ForwardInfo, MAX_UDP_PAYLOAD, OPT_RR_LEN, ParsedQuery, TYPE_OPT};

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

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{RData, Record, RecordType};
    use std::net::Ipv4Addr;

    use crate::wire::{CLASS_IN, MAX_TCP_MESSAGE, TYPE_A};

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

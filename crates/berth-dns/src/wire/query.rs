//! Reading a query: the header, exactly one question, the other sections skipped over, and the
//! requester's EDNS(0) record; malformed queries answered FORMERR, other opcodes NOTIMP, EDNS
//! versions other than 0 BADVERS.

use hickory_proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

use super::writer::Writer;
use super::{ClientEdns, MAX_QUERY_LEN, MAX_UDP_PAYLOAD, ParsedQuery, RCODE_BADVERS, TYPE_OPT};

pub(super) enum Parsed {
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
pub(super) fn skip_record(dec: &mut BinDecoder<'_>) -> Option<(Name, u16, u16, u32)> {
    let owner = Name::read(dec).ok()?;
    let rtype = dec.read_u16().ok()?.unverified();
    let class = dec.read_u16().ok()?.unverified();
    let ttl = dec.read_u32().ok()?.unverified();
    let rdlen = dec.read_u16().ok()?.unverified();
    dec.read_slice(rdlen as usize).ok()?;
    Some((owner, rtype, class, ttl))
}

pub(super) fn parse(packet: &[u8], out: &mut Vec<u8>) -> Parsed {
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

//! Writing a local answer into the reused output buffer: the header, the question uncompressed
//! at offset 12, answers owned by a pointer to it, cut at a record boundary (with TC) when the
//! size limit is reached, and our OPT record when the requester sent one.

use hickory_proto::op::Header;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use rand::Rng;

use super::{
    CLASS_IN, ClientEdns, LOCAL_TTL, MAX_TCP_MESSAGE, OPT_RR_LEN, ParsedQuery, TYPE_A, TYPE_AAAA,
    TYPE_ANY, TYPE_OPT,
};
use crate::table::Addrs;

/// Builds an answer in the output buffer: header, question, answers within the size limit.
pub(super) struct Writer<'a> {
    out: &'a mut Vec<u8>,
    limit: usize,
    reserve: usize,
    answers: u16,
    truncated: bool,
    edns: Option<ClientEdns>,
}

impl<'a> Writer<'a> {
    pub(super) fn begin(q: &ParsedQuery, out: &'a mut Vec<u8>) -> Writer<'a> {
        Self::begin_with_limit(q, out, MAX_TCP_MESSAGE)
    }

    pub(super) fn begin_with_limit(
        q: &ParsedQuery,
        out: &'a mut Vec<u8>,
        limit: usize,
    ) -> Writer<'a> {
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
    pub(super) fn answer(&mut self, rtype: u16, rdata: &[u8]) -> bool {
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
    pub(super) fn finish(self, rcode: u16, authoritative: bool, advertised: usize) {
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

pub(super) fn push_addrs<R: Rng>(w: &mut Writer<'_>, rng: &mut R, addrs: &Addrs, qtype: u16) {
    let want_v4 = qtype == TYPE_A || qtype == TYPE_ANY;
    let want_v6 = qtype == TYPE_AAAA || qtype == TYPE_ANY;
    if want_v4 && !push_shuffled(w, rng, &addrs.v4, TYPE_A, |a| a.octets()) {
        return;
    }
    if want_v6 {
        push_shuffled(w, rng, &addrs.v6, TYPE_AAAA, |a| a.octets());
    }
}

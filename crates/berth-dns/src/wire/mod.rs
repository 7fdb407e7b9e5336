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
//!
//! The parts: `query` validates a query and reads its EDNS record, `writer` builds a local answer
//! within the size limit, `respond` makes the decision from a sandbox's view, and `upstream`
//! checks an upstream's answer to a forwarded query and relays it (or a SERVFAIL) to the
//! requester.

use hickory_proto::op::Header;
use hickory_proto::rr::{DNSClass, Name, RecordType};

mod query;
mod respond;
mod upstream;
mod writer;

pub(crate) use respond::respond;
pub(crate) use upstream::servfail;
pub use upstream::{Upstream, check_upstream, relay};

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

/// The record type name of a query type, for logs.
pub(crate) fn type_name(qtype: u16) -> String {
    RecordType::from(qtype).to_string()
}

/// The class of a query, for logs.
#[allow(dead_code)]
pub(crate) fn class_name(qclass: u16) -> String {
    DNSClass::from(qclass).to_string()
}

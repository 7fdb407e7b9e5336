//! The synchronous rtnetlink socket: framing, sequence numbers, acks, multi-part dumps and the
//! mapping of kernel errors (with their extended ack text) to [`Error`].
//!
//! One [`Handle`] owns one `NETLINK_ROUTE` socket opened inside a namespace. The socket, its
//! sequence counter and its two reusable buffers sit behind one mutex, so a handle is `Send + Sync`
//! and requests from several threads are serialised on it (one request/reply exchange at a time).

use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};

use netlink_packet_core::{
    Emitable, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
    NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN,
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::Netns;
use crate::error::{Error, Result};

/// Length of `struct nlmsghdr`.
const HEADER_LEN: usize = 16;
/// Initial size of the receive buffer; above the kernel's 32 KiB cap on dump datagrams, and grown
/// on demand when a larger datagram is waiting.
const RX_INITIAL: usize = 64 * 1024;
/// How many times a dump interrupted by concurrent changes (NLM_F_DUMP_INTR) is restarted.
const DUMP_RETRIES: usize = 10;
/// `NLMSGERR_ATTR_MSG`: the extended ack's human-readable message.
pub(crate) const NLMSGERR_ATTR_MSG: u16 = 1;

/// A synchronous rtnetlink connection bound to one network namespace.
///
/// Open it with [`Handle::open`] (inside a given [`Netns`]) or [`Handle::current`]; then call the
/// `link_*`, `addr_*`, `route_*`, `neigh_*` and `fdb_*` methods from any thread. The socket stays in
/// the namespace it was opened in, whichever thread uses it. Requests are serialised on an internal
/// mutex; open several handles for parallelism.
#[derive(Debug)]
pub struct Handle {
    conn: Mutex<Conn>,
}

struct Conn {
    socket: Socket,
    seq: u32,
    tx: Vec<u8>,
    rx: Vec<u8>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::os::fd::AsRawFd;
        f.debug_struct("Conn")
            .field("fd", &self.socket.as_raw_fd())
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// Turns one reply message (its rtnetlink type and payload) into an item, or skips it with `None`.
pub(crate) type Decoder<'a, T> = dyn FnMut(u16, &[u8]) -> Result<Option<T>> + 'a;

/// Whether a dump completed or was interrupted by concurrent changes and must be restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Complete,
    Interrupted,
}

impl Handle {
    /// Opens an rtnetlink socket inside `ns` (created with the calling thread inside `ns` for the
    /// moment, see [`Netns::run`]).
    pub fn open(ns: &Netns) -> Result<Handle> {
        let conn = ns.run(Conn::open)??;
        Ok(Handle {
            conn: Mutex::new(conn),
        })
    }

    /// The namespace a driver is given for a sandbox (an open descriptor on it, else its path:
    /// [`Netns::from_fd_or_path`]) and an rtnetlink socket inside it.
    pub fn open_namespace(
        fd: Option<std::os::fd::BorrowedFd<'_>>,
        path: &std::path::Path,
    ) -> Result<(Netns, Handle)> {
        let ns = Netns::from_fd_or_path(fd, path)?;
        let handle = Handle::open(&ns)?;
        Ok((ns, handle))
    }

    /// Opens an rtnetlink socket in the calling thread's current namespace.
    pub fn current() -> Result<Handle> {
        Ok(Handle {
            conn: Mutex::new(Conn::open()?),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Conn> {
        // A panic while the lock was held can at worst leave replies of an abandoned request in the
        // socket; they carry an old sequence number and are skipped by the next exchange.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends a request that changes something and waits for the kernel's ack.
    pub(crate) fn request<M: Emitable>(
        &self,
        message_type: u16,
        flags: u16,
        body: &M,
        object: &dyn Fn() -> String,
    ) -> Result<()> {
        self.lock()
            .exchange(
                message_type,
                flags | NLM_F_ACK,
                body,
                object,
                &mut |_, _| Ok(()),
            )
            .map(|_| ())
    }

    /// Sends a `GET` request for one object and returns what `decode` made of the replies.
    pub(crate) fn get<M: Emitable, T>(
        &self,
        message_type: u16,
        body: &M,
        object: &dyn Fn() -> String,
        decode: &mut Decoder<'_, T>,
    ) -> Result<Option<T>> {
        let mut found = None;
        self.lock()
            .exchange(message_type, NLM_F_ACK, body, object, &mut |ty, payload| {
                if found.is_none() {
                    found = decode(ty, payload)?;
                }
                Ok(())
            })?;
        Ok(found)
    }

    /// Runs a dump and collects what `decode` keeps of each message. A dump the kernel marks as
    /// interrupted by concurrent changes is restarted, so the result is a consistent snapshot.
    pub(crate) fn dump<M: Emitable, T>(
        &self,
        message_type: u16,
        body: &M,
        object: &dyn Fn() -> String,
        decode: &mut Decoder<'_, T>,
    ) -> Result<Vec<T>> {
        let mut conn = self.lock();
        for _ in 0..DUMP_RETRIES {
            let mut out = Vec::new();
            let outcome = conn.exchange(message_type, NLM_F_DUMP, body, object, &mut |ty, p| {
                if let Some(item) = decode(ty, p)? {
                    out.push(item);
                }
                Ok(())
            })?;
            if outcome == Outcome::Complete {
                return Ok(out);
            }
            tracing::debug!(object = %object(), "netlink dump interrupted by a concurrent change; restarting");
        }
        Err(Error::Protocol {
            context: format!("listing {}", object()),
            message: format!(
                "the dump was interrupted by concurrent changes {DUMP_RETRIES} times in a row; retry \
                 when the namespace is quieter"
            ),
        })
    }
}

impl Conn {
    fn open() -> Result<Conn> {
        let socket = open_socket(NETLINK_ROUTE, "rtnetlink")?;
        // Strict checking lets the kernel filter dumps (by interface, table, ...); berth also
        // filters on its side, so older kernels without it still give correct answers.
        if let Err(e) = socket.set_netlink_get_strict_chk(true) {
            tracing::debug!(error = %e, "rtnetlink socket option NETLINK_GET_STRICT_CHK not supported");
        }
        Ok(Conn {
            socket,
            seq: 0,
            tx: Vec::with_capacity(1024),
            rx: vec![0; RX_INITIAL],
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            self.seq = 1;
        }
        self.seq
    }

    fn send<M: Emitable>(&mut self, message_type: u16, flags: u16, body: &M) -> Result<u32> {
        let seq = self.next_seq();
        let len = HEADER_LEN + body.buffer_len();
        let len32 = u32::try_from(len).map_err(|_| Error::Protocol {
            context: "building a netlink request".into(),
            message: format!("the request is too large ({len} bytes)"),
        })?;
        self.tx.clear();
        self.tx.resize(len, 0);
        self.tx[0..4].copy_from_slice(&len32.to_ne_bytes());
        self.tx[4..6].copy_from_slice(&message_type.to_ne_bytes());
        self.tx[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        self.tx[8..12].copy_from_slice(&seq.to_ne_bytes());
        // Port id 0: the kernel fills in the socket's own.
        body.emit(&mut self.tx[HEADER_LEN..]);
        loop {
            match self.socket.send(&self.tx, 0) {
                Ok(n) if n == len => return Ok(seq),
                Ok(n) => {
                    return Err(Error::Protocol {
                        context: "sending a netlink request".into(),
                        message: format!("only {n} of {len} bytes were sent"),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("sending a netlink request", e)),
            }
        }
    }

    /// Receives one datagram into `rx`, growing it first if the waiting datagram is larger.
    fn recv(&mut self) -> Result<usize> {
        recv_datagram(&self.socket, &mut self.rx)
            .map_err(|e| Error::io("receiving a netlink reply", e))
    }

    /// Sends one request and reads replies until its terminator: the ack (or error) of a request,
    /// or `NLMSG_DONE` of a dump. Every reply message carrying the request's sequence number and an
    /// rtnetlink type is passed to `on_message`; the first error it returns is reported after the
    /// exchange has been read to its end, so the socket stays in step.
    fn exchange<M: Emitable>(
        &mut self,
        message_type: u16,
        flags: u16,
        body: &M,
        object: &dyn Fn() -> String,
        on_message: &mut dyn FnMut(u16, &[u8]) -> Result<()>,
    ) -> Result<Outcome> {
        let seq = self.send(message_type, flags, body)?;
        let is_dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut state = Exchange::new(seq, is_dump);
        loop {
            let n = self.recv()?;
            if let Some(end) = state.scan(&self.rx[..n], object, on_message) {
                return end;
            }
        }
    }
}

/// The state of one request/reply exchange while its datagrams are scanned (rtnetlink requests
/// and dumps, nf_tables dumps).
pub(crate) struct Exchange {
    seq: u32,
    is_dump: bool,
    interrupted: bool,
    callback_error: Option<Error>,
}

impl Exchange {
    /// The exchange of the request sent with sequence number `seq`.
    pub(crate) fn new(seq: u32, is_dump: bool) -> Exchange {
        Exchange {
            seq,
            is_dump,
            interrupted: false,
            callback_error: None,
        }
    }

    /// Scans one datagram. Returns `Some` when the exchange is over.
    pub(crate) fn scan(
        &mut self,
        datagram: &[u8],
        object: &dyn Fn() -> String,
        on_message: &mut dyn FnMut(u16, &[u8]) -> Result<()>,
    ) -> Option<Result<Outcome>> {
        let mut offset = 0;
        while datagram.len().saturating_sub(offset) >= HEADER_LEN {
            let rest = &datagram[offset..];
            let len = read_u32(rest, 0) as usize;
            let message_type = read_u16(rest, 4);
            let flags = read_u16(rest, 6);
            let seq = read_u32(rest, 8);
            if len < HEADER_LEN || len > rest.len() {
                return Some(Err(Error::Protocol {
                    context: format!("reading the reply about {}", object()),
                    message: format!(
                        "a message claims {len} bytes but {} are left in the datagram",
                        rest.len()
                    ),
                }));
            }
            let payload = &rest[HEADER_LEN..len];
            offset += align4(len);
            if seq != self.seq {
                tracing::trace!(seq, expected = self.seq, "skipping a stale netlink reply");
                continue;
            }
            if flags & NLM_F_DUMP_INTR != 0 {
                self.interrupted = true;
            }
            match message_type {
                NLMSG_NOOP => {}
                NLMSG_ERROR => return Some(self.finish_error(payload, flags, object)),
                NLMSG_DONE if self.is_dump => {
                    return Some(self.finish_done(payload, flags, object));
                }
                NLMSG_DONE => {}
                NLMSG_OVERRUN => {
                    return Some(Err(Error::Protocol {
                        context: format!("reading the reply about {}", object()),
                        message: "the kernel reported a data overrun".into(),
                    }));
                }
                _ => {
                    if self.callback_error.is_none() {
                        if let Err(e) = on_message(message_type, payload) {
                            self.callback_error = Some(e);
                        }
                    }
                }
            }
        }
        None
    }

    fn outcome(&mut self) -> Result<Outcome> {
        match self.callback_error.take() {
            Some(e) => Err(e),
            None if self.interrupted => Ok(Outcome::Interrupted),
            None => Ok(Outcome::Complete),
        }
    }

    fn finish_error(
        &mut self,
        payload: &[u8],
        flags: u16,
        object: &dyn Fn() -> String,
    ) -> Result<Outcome> {
        if payload.len() < 4 {
            return Err(Error::Protocol {
                context: format!("reading the reply about {}", object()),
                message: "truncated NLMSG_ERROR".into(),
            });
        }
        let code = read_i32(payload, 0);
        if code == 0 {
            return self.outcome();
        }
        let ext = if flags & NLM_F_ACK_TLVS != 0 {
            // The TLVs follow the echoed request: its header only when capped, all of it otherwise.
            let echoed = if flags & NLM_F_CAPPED != 0 {
                HEADER_LEN
            } else if payload.len() >= 4 + HEADER_LEN {
                align4(read_u32(payload, 4) as usize)
            } else {
                payload.len()
            };
            extended_ack_message(payload.get(4 + echoed..).unwrap_or(&[]))
        } else {
            None
        };
        Err(Error::from_errno_with(
            code.checked_neg().unwrap_or(i32::MAX),
            object(),
            ext.as_deref(),
        ))
    }

    fn finish_done(
        &mut self,
        payload: &[u8],
        flags: u16,
        object: &dyn Fn() -> String,
    ) -> Result<Outcome> {
        let code = if payload.len() >= 4 {
            read_i32(payload, 0)
        } else {
            0
        };
        if code < 0 {
            let ext = if flags & NLM_F_ACK_TLVS != 0 {
                extended_ack_message(&payload[4..])
            } else {
                None
            };
            return Err(Error::from_errno_with(
                code.checked_neg().unwrap_or(i32::MAX),
                object(),
                ext.as_deref(),
            ));
        }
        self.outcome()
    }
}

/// A netlink socket of `protocol` (`kind` names it in errors), bound and connected to the kernel,
/// with extended acks (the kernel's explanation of a refusal) and capped acks (small error
/// replies) where the kernel has them. Shared by the rtnetlink and nf_tables handles.
pub(crate) fn open_socket(protocol: isize, kind: &str) -> Result<Socket> {
    let context = |what: &str| format!("opening an {kind} socket: {what}");
    let mut socket = Socket::new(protocol).map_err(|e| Error::io(context("socket"), e))?;
    socket
        .bind_auto()
        .map_err(|e| Error::io(context("bind"), e))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| Error::io(context("connect"), e))?;
    for (name, result) in [
        ("NETLINK_EXT_ACK", socket.set_ext_ack(true)),
        ("NETLINK_CAP_ACK", socket.set_cap_ack(true)),
    ] {
        if let Err(e) = result {
            tracing::debug!(option = name, error = %e, "{kind} socket option not supported");
        }
    }
    Ok(socket)
}

/// Receives one datagram into `rx`, growing it first if the waiting datagram is larger; retries
/// on EINTR.
pub(crate) fn recv_datagram(socket: &Socket, rx: &mut Vec<u8>) -> io::Result<usize> {
    loop {
        match socket.recv(&mut &mut rx[..], libc::MSG_PEEK | libc::MSG_TRUNC) {
            Ok(n) if n > rx.len() => rx.resize(n, 0),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        match socket.recv(&mut &mut rx[..], 0) {
            Ok(n) => return Ok(n.min(rx.len())),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Finds the `NLMSGERR_ATTR_MSG` string in the TLVs of an extended ack.
pub(crate) fn extended_ack_message(mut tlvs: &[u8]) -> Option<String> {
    while tlvs.len() >= 4 {
        let len = usize::from(read_u16(tlvs, 0));
        let kind = read_u16(tlvs, 2) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let value = &tlvs[4..len];
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            let text = String::from_utf8_lossy(&value[..end]).trim().to_owned();
            return (!text.is_empty()).then_some(text);
        }
        tlvs = tlvs.get(align4(len)..).unwrap_or(&[]);
    }
    None
}

pub(crate) fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

// The readers are only called on ranges whose length the caller checked.
pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    let mut raw = [0u8; 2];
    raw.copy_from_slice(&b[at..at + 2]);
    u16::from_ne_bytes(raw)
}

pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&b[at..at + 4]);
    u32::from_ne_bytes(raw)
}

/// Parses one reply message as `M` if it has type `want`; `None` for other types (a dump's other
/// messages). A message that does not parse is [`Error::Protocol`] naming `what`.
pub(crate) fn parse_reply<M: netlink_packet_core::Parseable<[u8]>>(
    ty: u16,
    want: u16,
    payload: &[u8],
    what: &str,
) -> Result<Option<M>> {
    if ty != want {
        return Ok(None);
    }
    M::parse(payload).map(Some).map_err(|e| Error::Protocol {
        context: format!("decoding {what}"),
        message: e.to_string(),
    })
}

pub(crate) fn read_i32(b: &[u8], at: usize) -> i32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&b[at..at + 4]);
    i32::from_ne_bytes(raw)
}

/// Scans `data` as one reply datagram to a request with sequence number 1, exactly as a
/// [`Handle`] does, and decodes every rtnetlink message in it with berth's decoders. The first
/// byte selects a dump (odd) or a request (even). Only for fuzzing: it must never panic.
#[doc(hidden)]
pub fn fuzz_scan_replies(data: &[u8]) {
    let mut state = Exchange::new(1, data.first().is_some_and(|b| b & 1 == 1));
    let object = || String::from("fuzzed reply");
    let _ = state.scan(data.get(1..).unwrap_or(&[]), &object, &mut |ty, payload| {
        let _ = crate::link::decode_link(ty, payload);
        let _ = crate::addr::decode_address(ty, payload);
        let _ = crate::route::decode_route(ty, payload);
        let _ = crate::neigh::decode_neighbour(ty, payload);
        let _ = crate::fdb::decode_fdb(ty, payload);
        let _ = crate::nsid::decode_nsid(ty, payload);
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = HEADER_LEN + payload.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn error_payload(errno: i32, msg: Option<&str>) -> Vec<u8> {
        let mut p = (-errno).to_ne_bytes().to_vec();
        p.extend_from_slice(&[0u8; HEADER_LEN]); // the capped echoed header
        if let Some(text) = msg {
            let mut v = text.as_bytes().to_vec();
            v.push(0);
            p.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
            p.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
            p.extend_from_slice(&v);
        }
        p
    }

    fn scan(ex: &mut Exchange, d: &[u8]) -> (Option<Result<Outcome>>, Vec<u16>) {
        let mut seen = Vec::new();
        let obj = || "link \"x\"".to_string();
        let r = ex.scan(d, &obj, &mut |ty, _| {
            seen.push(ty);
            Ok(())
        });
        (r, seen)
    }

    fn exchange(seq: u32, is_dump: bool) -> Exchange {
        Exchange {
            seq,
            is_dump,
            interrupted: false,
            callback_error: None,
        }
    }

    #[test]
    fn error_with_extended_ack_names_object_and_cause() {
        let d = message(
            NLMSG_ERROR,
            NLM_F_CAPPED | NLM_F_ACK_TLVS,
            7,
            &error_payload(libc::EINVAL, Some("bad thing")),
        );
        let (r, _) = scan(&mut exchange(7, false), &d);
        let e = r.unwrap().unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }));
        let text = e.to_string();
        assert!(
            text.contains("link \"x\"") && text.contains("bad thing"),
            "{text}"
        );
    }

    #[test]
    fn stale_sequence_numbers_are_skipped_and_multipart_collected() {
        let mut d = message(NLMSG_ERROR, 0, 6, &error_payload(libc::EEXIST, None));
        d.extend(message(16, 2, 7, &[0; 16]));
        d.extend(message(16, 2, 7, &[0; 16]));
        let mut ex = exchange(7, true);
        let (r, seen) = scan(&mut ex, &d);
        assert!(r.is_none(), "not finished before NLMSG_DONE");
        assert_eq!(seen, vec![16, 16]);
        let (r, _) = scan(&mut ex, &message(NLMSG_DONE, 2, 7, &0i32.to_ne_bytes()));
        assert_eq!(r.unwrap().unwrap(), Outcome::Complete);
    }

    #[test]
    fn interrupted_dump_and_done_with_error() {
        let mut ex = exchange(3, true);
        let mut d = message(16, 2 | NLM_F_DUMP_INTR, 3, &[0; 16]);
        d.extend(message(NLMSG_DONE, 2, 3, &0i32.to_ne_bytes()));
        assert_eq!(scan(&mut ex, &d).0.unwrap().unwrap(), Outcome::Interrupted);
        let d = message(NLMSG_DONE, 2, 3, &(-libc::ENOENT).to_ne_bytes());
        assert!(
            scan(&mut exchange(3, true), &d)
                .0
                .unwrap()
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn malformed_length_is_a_protocol_error() {
        let mut d = message(NLMSG_ERROR, 0, 1, &0i32.to_ne_bytes());
        d[0..4].copy_from_slice(&9999u32.to_ne_bytes());
        let r = scan(&mut exchange(1, false), &d).0.unwrap();
        assert!(matches!(r, Err(Error::Protocol { .. })));
        let mut d = message(NLMSG_ERROR, 0, 1, &0i32.to_ne_bytes());
        d[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(matches!(
            scan(&mut exchange(1, false), &d).0.unwrap(),
            Err(Error::Protocol { .. })
        ));
    }

    /// Real kernel replies (captured from a test namespace into the fuzz corpus) decode to what
    /// was set up there: br0, veth v0 (peer eth0 elsewhere), vx0 (VNI 42), mv0, and an FDB flood
    /// entry towards 192.0.2.2; the error reply carries the kernel's extended ack.
    #[test]
    fn captured_kernel_replies_decode() {
        const CORPUS: &[(&str, &[u8])] = &[
            (
                "link0",
                include_bytes!("../../../fuzz/corpus/netlink_replies/seed-link-dump-0"),
            ),
            (
                "link1",
                include_bytes!("../../../fuzz/corpus/netlink_replies/seed-link-dump-1"),
            ),
            (
                "fdb",
                include_bytes!("../../../fuzz/corpus/netlink_replies/seed-fdb-dump-0"),
            ),
            (
                "err",
                include_bytes!("../../../fuzz/corpus/netlink_replies/seed-error-extack-0"),
            ),
        ];
        let obj = || "link \"x\"".to_string();
        let mut links = Vec::new();
        let mut fdb = Vec::new();
        for (name, seed) in CORPUS {
            let mut ex = exchange(1, seed[0] & 1 == 1);
            let end = ex.scan(&seed[1..], &obj, &mut |ty, p| {
                links.extend(crate::link::decode_link(ty, p)?);
                if ty == crate::neigh::RTM_NEWNEIGH {
                    fdb.extend(crate::fdb::decode_fdb(ty, p)?);
                }
                Ok(())
            });
            if *name == "err" {
                let e = end.unwrap().unwrap_err();
                assert!(e.to_string().contains("Unknown device type"), "{e}");
            }
        }
        let vx = links.iter().find(|l| l.name == "vx0").unwrap();
        assert_eq!(
            vx.vxlan.as_ref().map(|v| (v.vni, v.port)),
            Some((42, Some(4789)))
        );
        let v0 = links.iter().find(|l| l.name == "v0").unwrap();
        assert!(v0.link_netnsid.is_some() && v0.master.is_some());
        assert!(
            links
                .iter()
                .any(|l| l.name == "mv0" && l.macvlan_mode.is_some())
        );
        assert!(links.iter().any(|l| l.name == "br0" && l.up));
        assert!(
            fdb.iter()
                .any(|e| e.mac.is_zero() && e.dst == Some("192.0.2.2".parse().unwrap()))
        );
    }

    #[test]
    fn extended_ack_parser_tolerates_garbage() {
        assert_eq!(extended_ack_message(&[]), None);
        assert_eq!(extended_ack_message(&[1, 0, 1, 0]), None);
        assert_eq!(extended_ack_message(&[200, 0, 1, 0, b'x']), None);
        let mut hi = 8u16.to_ne_bytes().to_vec();
        hi.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        hi.extend_from_slice(b"hi\0\0");
        assert_eq!(extended_ack_message(&hi), Some("hi".into()));
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            let _ = extended_ack_message(&junk);
            fuzz_scan_replies(&junk);
        }
    }
}

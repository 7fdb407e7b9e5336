//! Reply decoding: the kernel's acks and errors to one committed batch, matched to its messages
//! by sequence number and turned into the first refusal, naming its object.

use netlink_packet_core::{NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSG_ERROR};

use super::batch::Batch;
use super::consts::HEADER_LEN;
use super::types::Family;
use crate::error::{Error, Result};
use crate::socket::{align4, extended_ack_message, read_i32, read_u16, read_u32};

/// The kernel's answer to one message: 0 for success, or a negative errno and its extended ack.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    code: i32,
    ext_ack: Option<String>,
}

/// The replies to one committed batch while they arrive.
#[derive(Debug)]
pub(super) struct Replies {
    /// Sequence number of BATCH_BEGIN; the kernel reports batch-wide failures against it.
    begin_seq: u32,
    /// One slot per message of the batch (sequence numbers `begin_seq + 1 ..`).
    answers: Vec<Option<Answer>>,
    pending: usize,
    /// A failure of the whole batch (reported against BATCH_BEGIN).
    batch: Option<Answer>,
}

impl Replies {
    pub(super) fn new(begin_seq: u32, messages: usize) -> Self {
        Replies {
            begin_seq,
            answers: vec![None; messages],
            pending: messages,
            batch: None,
        }
    }

    pub(super) fn done(&self) -> bool {
        self.pending == 0 || self.batch.is_some()
    }

    /// Scans one datagram of replies. Messages of other exchanges are skipped.
    pub(super) fn scan(&mut self, datagram: &[u8]) -> Result<()> {
        let mut offset = 0;
        while datagram.len().saturating_sub(offset) >= HEADER_LEN {
            let rest = &datagram[offset..];
            let len = read_u32(rest, 0) as usize;
            let message_type = read_u16(rest, 4);
            let flags = read_u16(rest, 6);
            let seq = read_u32(rest, 8);
            if len < HEADER_LEN || len > rest.len() {
                return Err(Error::Protocol {
                    context: "reading the replies to an nftables transaction".into(),
                    message: format!(
                        "a message claims {len} bytes but {} are left in the datagram",
                        rest.len()
                    ),
                });
            }
            offset += align4(len);
            if message_type != NLMSG_ERROR {
                continue;
            }
            let payload = &rest[HEADER_LEN..len];
            if payload.len() < 4 {
                return Err(Error::Protocol {
                    context: "reading the replies to an nftables transaction".into(),
                    message: format!("an ack of {} bytes has no error code", payload.len()),
                });
            }
            let answer = Answer {
                code: read_i32(payload, 0),
                ext_ack: ack_text(&payload[4..], flags),
            };
            if seq == self.begin_seq {
                if answer.code != 0 && self.batch.is_none() {
                    self.batch = Some(answer);
                }
                continue;
            }
            let index = seq.wrapping_sub(self.begin_seq).wrapping_sub(1) as usize;
            if let Some(slot) = self.answers.get_mut(index) {
                if slot.is_none() {
                    *slot = Some(answer);
                    self.pending -= 1;
                }
            } else {
                tracing::trace!(seq, "skipping a stale nfnetlink reply");
            }
        }
        Ok(())
    }

    /// The outcome of the batch: the batch-wide failure, else the first message's refusal.
    pub(super) fn outcome(&self, batch: &Batch) -> Result<()> {
        if let Some(a) = &self.batch {
            return Err(answer_error(
                a,
                &format!("nftables transaction of {} messages", self.answers.len()),
            ));
        }
        for (i, slot) in self.answers.iter().enumerate() {
            match slot {
                Some(a) if a.code != 0 => {
                    let object = batch
                        .messages
                        .get(i)
                        .map_or("nftables transaction", |m| m.object.as_str());
                    return Err(answer_error(a, object));
                }
                Some(_) => {}
                None => {
                    return Err(Error::Protocol {
                        context: "reading the replies to an nftables transaction".into(),
                        message: format!(
                            "the kernel did not answer message {} of {}; list the ruleset to see \
                             whether the transaction was applied",
                            i + 1,
                            self.answers.len()
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

fn answer_error(a: &Answer, object: &str) -> Error {
    if a.code > 0 {
        return Error::Protocol {
            context: format!("reading the kernel's answer about {object}"),
            message: format!("the ack carries a positive error code {}", a.code),
        };
    }
    Error::from_errno_with(
        a.code.checked_neg().unwrap_or(i32::MAX),
        object,
        a.ext_ack.as_deref(),
    )
}

/// The extended-ack message of an error reply (`rest` is what follows the error code).
fn ack_text(rest: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // The echoed request: its header only when capped, else the whole request.
    let echoed = if flags & NLM_F_CAPPED != 0 {
        HEADER_LEN
    } else if rest.len() >= 4 {
        align4(read_u32(rest, 0) as usize)
    } else {
        return None;
    };
    extended_ack_message(rest.get(echoed..)?)
}

/// Scans `data` as the replies to a batch of `data[0]` messages whose BATCH_BEGIN had sequence
/// number 1, exactly as an [`NftHandle`] does, and computes the outcome. Only for fuzzing: it
/// must never panic.
///
/// [`NftHandle`]: super::NftHandle
#[doc(hidden)]
pub fn fuzz_scan_nftables_replies(data: &[u8]) {
    let count = usize::from(data.first().copied().unwrap_or(0));
    let mut batch = Batch::new();
    for _ in 0..count {
        batch.add_table(Family::Inet, "fuzz");
    }
    let mut replies = Replies::new(1, count);
    let mut rest = data.get(1..).unwrap_or(&[]);
    // The rest is split into datagrams at every 0xff 0xff 0xff 0xff marker.
    while !rest.is_empty() && !replies.done() {
        let cut = rest
            .windows(4)
            .position(|w| w == [0xff; 4])
            .unwrap_or(rest.len());
        if replies.scan(&rest[..cut]).is_err() {
            return;
        }
        rest = rest.get(cut + 4..).unwrap_or(&[]);
    }
    let _ = replies.outcome(&batch);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nftables::types::SetElement;
    use crate::socket::NLMSGERR_ATTR_MSG;

    fn ack(seq: u32, code: i32, text: Option<&str>) -> Vec<u8> {
        let mut payload = code.to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0u8; HEADER_LEN]);
        let mut flags = NLM_F_CAPPED;
        if let Some(t) = text {
            flags |= NLM_F_ACK_TLVS;
            let mut v = t.as_bytes().to_vec();
            v.push(0);
            payload.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
            payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
            payload.extend_from_slice(&v);
            while payload.len() % 4 != 0 {
                payload.push(0);
            }
        }
        let mut m = ((HEADER_LEN + payload.len()) as u32).to_ne_bytes().to_vec();
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend(payload);
        m
    }

    fn two_messages() -> Batch {
        let mut b = Batch::new();
        b.add_table(Family::Inet, "berth").add_elements(
            Family::Inet,
            "berth",
            "dnat4",
            &[SetElement::key(vec![1, 2, 3, 4])],
        );
        b
    }

    #[test]
    fn one_ack_per_message_completes_the_batch() {
        let b = two_messages();
        let mut r = Replies::new(10, 2);
        let mut d = ack(9, -libc::EEXIST, None); // stale
        d.extend(ack(11, 0, None));
        r.scan(&d).unwrap();
        assert!(!r.done());
        r.scan(&ack(12, 0, None)).unwrap();
        assert!(r.done());
        r.outcome(&b).unwrap();
    }

    #[test]
    fn first_refusal_names_its_object_with_the_kernel_text() {
        let b = two_messages();
        let mut r = Replies::new(10, 2);
        let mut d = ack(11, 0, None);
        d.extend(ack(12, -libc::EEXIST, Some("element exists")));
        r.scan(&d).unwrap();
        let e = r.outcome(&b).unwrap_err();
        assert!(e.is_exists(), "{e:?}");
        assert_eq!(
            e.to_string(),
            "nftables element of set \"dnat4\" in table inet berth already exists"
        );
        let mut r = Replies::new(10, 2);
        let mut d = ack(11, -libc::EINVAL, Some("bad key"));
        d.extend(ack(12, -libc::ENOENT, None));
        r.scan(&d).unwrap();
        let e = r.outcome(&b).unwrap_err();
        assert!(e.to_string().contains("table inet berth"), "{e}");
        assert!(e.to_string().contains("bad key"), "{e}");
    }

    #[test]
    fn batch_wide_failure_is_reported_against_begin() {
        let b = two_messages();
        let mut r = Replies::new(10, 2);
        r.scan(&ack(10, -libc::EPERM, None)).unwrap();
        assert!(r.done());
        let e = r.outcome(&b).unwrap_err();
        assert!(matches!(e, Error::PermissionDenied { .. }), "{e:?}");
        assert!(e.to_string().contains("transaction of 2 messages"), "{e}");
    }

    #[test]
    fn malformed_replies_are_protocol_errors() {
        let mut r = Replies::new(1, 1);
        let mut d = ack(2, 0, None);
        d[0..4].copy_from_slice(&999u32.to_ne_bytes());
        assert!(matches!(r.scan(&d), Err(Error::Protocol { .. })));
        let mut d = ack(2, 0, None);
        d[0..4].copy_from_slice(&18u32.to_ne_bytes());
        assert!(matches!(r.scan(&d), Err(Error::Protocol { .. })));
        let mut r = Replies::new(1, 1);
        r.scan(&ack(2, 5, None)).unwrap();
        assert!(matches!(
            r.outcome(&two_messages()),
            Err(Error::Protocol { .. })
        ));
    }

    /// Scans a fuzz seed (count byte, then datagrams split at `ff ff ff ff`) like the fuzz entry.
    fn scan_seed(seed: &[u8]) -> Result<()> {
        let count = usize::from(seed[0]);
        let mut batch = Batch::new();
        for i in 0..count {
            batch.add_elements(
                Family::Inet,
                "berth",
                &format!("set{i}"),
                &[SetElement::key(vec![0; 4])],
            );
        }
        let mut replies = Replies::new(1, count);
        let mut rest = &seed[1..];
        while !rest.is_empty() {
            let cut = rest
                .windows(4)
                .position(|w| w == [0xff; 4])
                .unwrap_or(rest.len());
            replies.scan(&rest[..cut])?;
            rest = rest.get(cut + 4..).unwrap_or(&[]);
        }
        assert!(replies.done(), "every message was answered");
        replies.outcome(&batch)
    }

    /// Real kernel answers (captured from test namespaces into the fuzz corpus): acks, and the
    /// first refusal mapped to a typed error naming the refused message's object.
    #[test]
    fn captured_kernel_answers_decode() {
        let corpus = |name: &str| -> &'static [u8] {
            match name {
                "ack-1" => include_bytes!("../../../../fuzz/corpus/nftables_replies/seed-ack-1"),
                "acks-10" => {
                    include_bytes!("../../../../fuzz/corpus/nftables_replies/seed-acks-10")
                }
                "eexist-4" => {
                    include_bytes!("../../../../fuzz/corpus/nftables_replies/seed-eexist-4")
                }
                "enoent-2" => {
                    include_bytes!("../../../../fuzz/corpus/nftables_replies/seed-enoent-2")
                }
                "erange-3" => {
                    include_bytes!("../../../../fuzz/corpus/nftables_replies/seed-erange-3")
                }
                "batch-eacces-2" => {
                    include_bytes!("../../../../fuzz/corpus/nftables_replies/seed-batch-eacces-2")
                }
                _ => unreachable!(),
            }
        };
        scan_seed(corpus("ack-1")).unwrap();
        scan_seed(corpus("acks-10")).unwrap();
        let e = scan_seed(corpus("eexist-4")).unwrap_err();
        assert!(e.is_exists(), "{e:?}");
        assert!(e.to_string().contains("set \"set3\""), "{e}");
        let e = scan_seed(corpus("enoent-2")).unwrap_err();
        assert!(
            e.is_not_found() && e.to_string().contains("set \"set1\""),
            "{e}"
        );
        let e = scan_seed(corpus("erange-3")).unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
        assert!(e.to_string().contains("set \"set2\""), "{e}");
        let e = scan_seed(corpus("batch-eacces-2")).unwrap_err();
        assert!(matches!(e, Error::PermissionDenied { .. }), "{e:?}");
        assert!(e.to_string().contains("transaction of 2 messages"), "{e}");
        let Error::PermissionDenied { object } = e else {
            unreachable!()
        };
        assert!(object.contains("nftables"), "{object}");
    }

    #[test]
    fn fuzz_entry_tolerates_garbage() {
        for n in 0..200u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(91) ^ n).collect();
            fuzz_scan_nftables_replies(&junk);
        }
        let mut d = vec![3u8];
        d.extend(ack(2, 0, None));
        d.extend([0xff; 4]);
        d.extend(ack(4, -libc::ENOENT, Some("x")));
        fuzz_scan_nftables_replies(&d);
    }
}

//! What goes over the wire to etcd and back: keys under the root, revisions and lease ids as
//! etcd's integers, etcd's errors as berth-store's, and watch responses as [`Event`]s.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use etcd_client::{EventType, KeyValue, WatchResponse};
use tonic::Code;

use super::EtcdTls;
use super::runtime::Failure;
use super::tls::explain;
use crate::{Entry, Error, Event, LeaseId, Op, Result};

/// The state of one watch's forwarding task.
pub(super) struct Forward {
    pub(super) root: String,
    pub(super) describe: String,
    pub(super) events: mpsc::Sender<Event>,
}

impl Forward {
    /// Sends the events of one response; false once the watch ended (compacted, canceled, or the
    /// caller dropped it).
    pub(super) fn deliver(&self, resp: WatchResponse) -> bool {
        if resp.compact_revision() != 0 {
            let compact_revision = to_u64(resp.compact_revision()).saturating_sub(1);
            let _ = self.events.send(Event::Compacted { compact_revision });
            return false;
        }
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let key = match strip_root(&self.root, kv.key(), &self.describe) {
                Ok(key) => key,
                Err(e) => {
                    self.fail(e.to_string());
                    return false;
                }
            };
            let event = match event.event_type() {
                EventType::Put => Event::Put(Entry {
                    key,
                    value: kv.value().to_vec(),
                    create_revision: to_u64(kv.create_revision()),
                    mod_revision: to_u64(kv.mod_revision()),
                    lease: lease_of(kv),
                }),
                EventType::Delete => Event::Delete {
                    key,
                    revision: to_u64(kv.mod_revision()),
                },
            };
            if self.events.send(event).is_err() {
                return false;
            }
        }
        if resp.canceled() {
            let reason = resp.cancel_reason();
            self.fail(if reason.is_empty() {
                "etcd canceled the watch".to_owned()
            } else {
                format!("etcd canceled the watch: {reason}")
            });
            return false;
        }
        true
    }

    pub(super) fn fail(&self, message: String) {
        let _ = self.events.send(Event::Error {
            message: format!("{}: {message}", self.describe),
        });
    }
}

/// The error of a failed request to the store `describe` (using `tls`, when given).
pub(super) fn failure(
    describe: &str,
    tls: Option<&EtcdTls>,
    timeout: Duration,
    f: Failure,
) -> Error {
    let unavailable = |message: String| Error::Unavailable {
        store: describe.to_owned(),
        message,
    };
    let backend = |message: String| Error::Backend {
        store: describe.to_owned(),
        message,
    };
    match f {
        Failure::Timeout => unavailable(format!("no answer within {timeout:?}")),
        Failure::Stopped => backend("the store's client thread stopped".to_owned()),
        Failure::Etcd(e) => match &e {
            etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
                unavailable(explain(tls, &detail(&e)))
            }
            etcd_client::Error::GRpcStatus(s) => {
                // A status with a source was made by the client from a failed connection (etcd's
                // own statuses have none).
                let local = std::error::Error::source(s).is_some();
                match s.code() {
                    Code::Unavailable | Code::DeadlineExceeded => {
                        unavailable(explain(tls, &detail(&e)))
                    }
                    // A connection lost, or closed by etcd, mid-request.
                    Code::Unknown | Code::Cancelled
                        if local || s.message().contains("transport") =>
                    {
                        unavailable(explain(tls, &detail(&e)))
                    }
                    _ => backend(detail(&e)),
                }
            }
            _ => backend(e.to_string()),
        },
    }
}

/// What went wrong, with the causes the client keeps under its errors ("transport error:
/// connection error: stream closed because of a broken pipe"), each said once.
pub(super) fn detail(e: &etcd_client::Error) -> String {
    let (mut text, mut cause): (String, Option<&(dyn std::error::Error + 'static)>) = match e {
        etcd_client::Error::GRpcStatus(s) => {
            let message = if s.message().is_empty() {
                format!("{:?}", s.code())
            } else {
                s.message().to_owned()
            };
            (message, std::error::Error::source(s))
        }
        etcd_client::Error::TransportError(t) => (t.to_string(), std::error::Error::source(t)),
        etcd_client::Error::IoError(io) => (io.to_string(), std::error::Error::source(io)),
        other => (other.to_string(), None),
    };
    // Bounded: a cyclic chain would be a bug elsewhere, not a reason to hang.
    for _ in 0..16 {
        let Some(c) = cause else { break };
        let said = c.to_string();
        // tonic's "transport error" only says which layer failed; its causes say what failed.
        if !said.is_empty() && said != "transport error" && !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        cause = c.source();
    }
    text
}

/// Whether etcd refused a read because the revision was compacted.
pub(super) fn is_compacted(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s)
        if s.code() == Code::OutOfRange && s.message().contains("compacted"))
}

/// Whether etcd said it does not know a lease.
pub(super) fn is_lease_not_found(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            s.code() == Code::NotFound && s.message().contains("lease not found")
        }
        // What the client says when a keep-alive is answered with ttl 0.
        etcd_client::Error::LeaseKeepAliveError(m) => m.contains("not found"),
        _ => false,
    }
}

/// The ops of a transaction, keeping only the last op on each key (in their order): etcd
/// refuses two writes to one key in a transaction, and the last one decides the final state.
pub(super) fn last_op_per_key(ops: Vec<Op>) -> Vec<Op> {
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        last.insert(op.key(), i);
    }
    let keep: Vec<bool> = (0..ops.len())
        .map(|i| last.get(ops[i].key()) == Some(&i))
        .collect();
    ops.into_iter()
        .zip(keep)
        .filter_map(|(op, keep)| keep.then_some(op))
        .collect()
}

/// The end of the etcd key range of every key starting with `prefix` (not empty).
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte is 0xff: every key from the prefix on.
    vec![0]
}

/// A key read from etcd, without the root.
pub(super) fn strip_root(root: &str, key: &[u8], describe: &str) -> Result<String> {
    let Some(rest) = key.strip_prefix(root.as_bytes()) else {
        return Err(Error::Backend {
            store: describe.to_owned(),
            message: format!(
                "etcd answered with key {:?}, outside the root {root:?}",
                String::from_utf8_lossy(key)
            ),
        });
    };
    String::from_utf8(rest.to_vec()).map_err(|_| Error::Backend {
        store: describe.to_owned(),
        message: format!(
            "key {:?} under the root is not UTF-8 (not written by berth)",
            String::from_utf8_lossy(key)
        ),
    })
}

pub(super) fn lease_of(kv: &KeyValue) -> Option<LeaseId> {
    u64::try_from(kv.lease())
        .ok()
        .filter(|&l| l != 0)
        .map(LeaseId)
}

/// etcd's lease ids are positive `i64`s; any other [`LeaseId`] maps to a negative id etcd does
/// not know.
pub(super) fn lease_i64(lease: LeaseId) -> i64 {
    lease.0 as i64
}

pub(super) fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> u64 {
    header.map_or(0, |h| to_u64(h.revision()))
}

/// A revision or count from etcd (never negative).
pub(super) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A revision or count for etcd (clamped to its range).
pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"berth/a/"), b"berth/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }

    #[test]
    fn only_the_last_op_per_key_is_kept_in_order() {
        let ops = vec![
            Op::Put("a".into(), b"1".to_vec()),
            Op::Put("b".into(), b"1".to_vec()),
            Op::Delete("a".into()),
            Op::PutWithLease("c".into(), b"1".to_vec(), LeaseId(7)),
            Op::Put("b".into(), b"2".to_vec()),
        ];
        assert_eq!(
            last_op_per_key(ops),
            vec![
                Op::Delete("a".into()),
                Op::PutWithLease("c".into(), b"1".to_vec(), LeaseId(7)),
                Op::Put("b".into(), b"2".to_vec()),
            ]
        );
    }

    #[test]
    fn keys_outside_the_root_or_not_utf8_are_refused() {
        assert_eq!(strip_root("r/", b"r/a/b", "etcd x").unwrap(), "a/b");
        assert!(strip_root("r/", b"s/a", "etcd x").is_err());
        assert!(strip_root("r/", b"r/\xff", "etcd x").is_err());
        assert_eq!(strip_root("", b"a", "etcd x").unwrap(), "a");
    }

    #[test]
    fn lease_ids_map_both_ways() {
        assert_eq!(
            lease_i64(LeaseId(0x694d_8a1b_2c3d_4e5f)),
            0x694d_8a1b_2c3d_4e5f
        );
        assert_eq!(lease_i64(LeaseId(u64::MAX)), -1);
        assert_eq!((to_u64(-5), to_i64(u64::MAX)), (0, i64::MAX));
    }
}

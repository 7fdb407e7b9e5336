//! Watches: the stream a caller reads ([`Watch`]) and the bounded history with subscribers that a
//! local backend feeds after each commit ([`WatchHub`]).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use crate::Event;

/// A stream of changes under one prefix, in commit order (see [`crate::KvStore::watch`]).
/// Dropping it ends the watch.
pub struct Watch {
    rx: Receiver<Event>,
    /// Dropped with the watch: tells the backend the caller is gone.
    _guard: Option<Box<dyn Send>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("rx", &self.rx)
            .field("guarded", &self._guard.is_some())
            .finish()
    }
}

impl Watch {
    /// A watch that delivers what is sent on the other end of `rx`, for a backend that feeds its
    /// watches itself. The watch ends (`recv` returns `None`) when every sender is dropped.
    pub fn new(rx: Receiver<Event>) -> Watch {
        Watch { rx, _guard: None }
    }

    /// [`Watch::new`], with a `guard` dropped when the watch is: how a backend whose watches
    /// hold resources elsewhere (a server-side watch, a task feeding `rx`) learns that the caller
    /// dropped its watch. For example the sender of a channel whose receiver the feeding task
    /// selects on, ending the task when it closes.
    pub fn with_guard(rx: Receiver<Event>, guard: Box<dyn Send>) -> Watch {
        Watch {
            rx,
            _guard: Some(guard),
        }
    }

    /// The next event if one is ready.
    pub fn try_recv(&self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// Waits up to `timeout` for the next event; `None` on timeout or once the watch ended.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Waits for the next event; `None` once the watch ended (the store is gone, or after
    /// [`Event::Compacted`] or [`Event::Error`]).
    pub fn recv(&self) -> Option<Event> {
        self.rx.recv().ok()
    }

    /// Waits up to `timeout` for the next event, telling a quiet watch from one that ended.
    pub fn poll(&self, timeout: Duration) -> Poll {
        match self.rx.recv_timeout(timeout) {
            Ok(e) => Poll::Event(e),
            Err(RecvTimeoutError::Timeout) => Poll::Idle,
            Err(RecvTimeoutError::Disconnected) => Poll::Ended,
        }
    }
}

/// What [`Watch::poll`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// The next event.
    Event(Event),
    /// Nothing within the timeout; the watch goes on.
    Idle,
    /// The watch ended: no event will come (watch again to go on).
    Ended,
}

/// The watch side of a local backend: a bounded history of the last changes, for watches that
/// start in the past, and the live watches, fed with the changes of each commit.
///
/// The backend calls [`WatchHub::publish`] after each commit, in commit order (under its writer
/// lock), and [`WatchHub::subscribe`] for [`crate::KvStore::watch`]; the two are atomic with
/// respect to each other, so a watch gets every change after its `after_revision` once, whether
/// the commit landed before or after it subscribed.
#[derive(Debug)]
pub struct WatchHub {
    inner: Mutex<Hub>,
}

#[derive(Debug)]
struct Hub {
    /// The most events kept in `history`.
    capacity: usize,
    /// Every change with a revision above `compact_revision`, in commit order.
    history: VecDeque<Event>,
    /// The oldest revision a watch can start after.
    compact_revision: u64,
    subscribers: Vec<Subscriber>,
}

#[derive(Debug)]
struct Subscriber {
    prefix: String,
    /// Changes at or below this revision were replayed or are not wanted.
    after: u64,
    tx: Sender<Event>,
}

impl WatchHub {
    /// A hub keeping at most `capacity` events, whose history starts after `revision` (the
    /// store's revision now: a watch from an older revision gets [`Event::Compacted`]).
    pub fn new(capacity: usize, revision: u64) -> WatchHub {
        WatchHub {
            inner: Mutex::new(Hub {
                capacity,
                history: VecDeque::new(),
                compact_revision: revision,
                subscribers: Vec::new(),
            }),
        }
    }

    /// The oldest revision a watch can start after (every change after it is in the history).
    pub fn compact_revision(&self) -> u64 {
        self.lock().compact_revision
    }

    /// A watch of the changes under `prefix` after `after_revision`: those in the history now,
    /// then those published later. If the history no longer reaches back to
    /// `after_revision + 1`, the watch holds one [`Event::Compacted`] and ends.
    pub fn subscribe(&self, prefix: &str, after_revision: u64) -> Watch {
        let (tx, rx) = channel();
        let mut hub = self.lock();
        if after_revision < hub.compact_revision {
            // The receiver is alive (it is returned below), so the send cannot fail.
            let _ = tx.send(Event::Compacted {
                compact_revision: hub.compact_revision,
            });
            return Watch::new(rx);
        }
        let start = hub
            .history
            .partition_point(|e| e.revision().is_some_and(|r| r <= after_revision));
        for event in hub.history.range(start..) {
            if event.key().is_some_and(|k| k.starts_with(prefix)) {
                let _ = tx.send(event.clone());
            }
        }
        hub.subscribers.push(Subscriber {
            prefix: prefix.to_owned(),
            after: after_revision,
            tx,
        });
        Watch::new(rx)
    }

    /// Records the changes of one commit (`Put` and `Delete` events, in order, all at the
    /// commit's revision, later than every revision published before) and sends them to the
    /// watches whose prefix they fall under. Forgets watches that were dropped. Keeps the history
    /// within its capacity by dropping the oldest revisions whole.
    pub fn publish(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut hub = self.lock();
        let hub = &mut *hub;
        hub.subscribers.retain(|s| {
            events
                .iter()
                .filter(|e| {
                    e.revision().is_some_and(|r| r > s.after)
                        && e.key().is_some_and(|k| k.starts_with(s.prefix.as_str()))
                })
                .all(|e| s.tx.send(e.clone()).is_ok())
        });
        for event in events {
            debug_assert!(
                event.revision().is_some(),
                "WatchHub::publish takes the Put and Delete events of a commit, not {event:?}"
            );
            if event.revision().is_some() {
                hub.history.push_back(event.clone());
            }
        }
        while hub.history.len() > hub.capacity {
            let Some(oldest) = hub.history.pop_front().and_then(|e| e.revision()) else {
                break;
            };
            // A revision is in the history whole or not at all.
            while hub
                .history
                .front()
                .is_some_and(|e| e.revision() == Some(oldest))
            {
                hub.history.pop_front();
            }
            hub.compact_revision = oldest;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hub> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::Entry;

    fn put(key: &str, revision: u64) -> Event {
        Event::Put(Entry {
            key: key.to_owned(),
            value: Vec::new(),
            create_revision: revision,
            mod_revision: revision,
            lease: None,
        })
    }

    fn drain(w: &Watch) -> Vec<(String, u64)> {
        std::iter::from_fn(|| w.try_recv())
            .map(|e| match e {
                Event::Compacted { compact_revision } => ("compacted".into(), compact_revision),
                e => (e.key().unwrap().to_owned(), e.revision().unwrap()),
            })
            .collect()
    }

    #[test]
    fn history_is_trimmed_by_whole_revisions() {
        let hub = WatchHub::new(3, 0);
        hub.publish(&[put("a", 1)]);
        hub.publish(&[put("a", 2), put("b", 2)]);
        assert_eq!(hub.compact_revision(), 0);
        hub.publish(&[put("c", 3)]);
        // 4 events > 3: revision 1 goes.
        assert_eq!(hub.compact_revision(), 1);
        hub.publish(&[put("d", 4)]);
        // 4 events again: revision 2 goes whole (both its events).
        assert_eq!(hub.compact_revision(), 2);
        assert_eq!(
            drain(&hub.subscribe("", 2)),
            [("c".to_owned(), 3), ("d".to_owned(), 4)]
        );
        let old = hub.subscribe("", 1);
        assert_eq!(drain(&old), [("compacted".to_owned(), 2)]);
        assert!(old.recv().is_none(), "a compacted watch ends");
        assert_eq!(old.poll(Duration::from_millis(1)), Poll::Ended);
        let live = hub.subscribe("", 4);
        assert_eq!(live.poll(Duration::from_millis(1)), Poll::Idle);
    }

    #[test]
    fn live_events_after_the_start_only_and_under_the_prefix() {
        let hub = WatchHub::new(10, 5);
        // A watcher that listed at 7 before the hub saw 6 and 7 gets neither twice.
        let w = hub.subscribe("n/", 7);
        hub.publish(&[put("n/a", 6)]);
        hub.publish(&[put("n/b", 7), put("x/b", 7)]);
        hub.publish(&[put("n/c", 8), put("x/c", 8)]);
        assert_eq!(drain(&w), [("n/c".to_owned(), 8)]);
        let from_start = hub.subscribe("n/", 5);
        assert_eq!(
            drain(&from_start),
            [
                ("n/a".to_owned(), 6),
                ("n/b".to_owned(), 7),
                ("n/c".to_owned(), 8)
            ]
        );
        drop(w);
        hub.publish(&[put("n/d", 9)]);
        assert_eq!(
            hub.lock().subscribers.len(),
            1,
            "a dropped watch is forgotten"
        );
    }

    #[test]
    fn zero_capacity_keeps_no_history_but_live_watches_work() {
        let hub = WatchHub::new(0, 0);
        let w = hub.subscribe("", 0);
        hub.publish(&[put("a", 1)]);
        assert_eq!(hub.compact_revision(), 1);
        assert_eq!(drain(&w), [("a".to_owned(), 1)]);
        assert_eq!(drain(&hub.subscribe("", 0)), [("compacted".to_owned(), 1)]);
    }
}

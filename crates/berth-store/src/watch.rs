//! Watches by prefix, fed by the backends after each commit, in commit order.

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use crate::Event;

/// A stream of changes under one prefix, in commit order. Dropping it ends the watch.
#[derive(Debug)]
pub struct Watch {
    rx: Receiver<Event>,
}

impl Watch {
    /// The next event if one is ready.
    pub fn try_recv(&self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// Waits up to `timeout` for the next event.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Waits for the next event; `None` once the store is gone.
    pub fn recv(&self) -> Option<Event> {
        self.rx.recv().ok()
    }
}

/// The registered watchers of one store.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    subs: Mutex<Vec<(String, Sender<Event>)>>,
}

impl Watchers {
    pub(crate) fn subscribe(&self, prefix: &str) -> Watch {
        let (tx, rx) = channel();
        self.lock().push((prefix.to_owned(), tx));
        Watch { rx }
    }

    /// Sends the events of one commit; forgets watchers whose receiver was dropped.
    pub(crate) fn publish(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut subs = self.lock();
        if subs.is_empty() {
            return;
        }
        subs.retain(|(prefix, tx)| {
            events
                .iter()
                .filter(|e| e.key().starts_with(prefix.as_str()))
                .all(|e| tx.send(e.clone()).is_ok())
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Sender<Event>)>> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

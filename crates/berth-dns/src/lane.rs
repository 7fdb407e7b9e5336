//! A sandbox's forwarding lane: one task on the resolver's runtime that runs all of the
//! sandbox's forwarded queries, instead of one task per query.
//!
//! The runtime's scheduler is fair between tasks, not between sandboxes: with a task per
//! forwarded query, a sandbox with 2000 forwards in flight (a storm, a loop no address shows) has
//! 2000 tasks in the run queues, and every other sandbox's server waits behind them. With a lane,
//! it has one task, which polls at most [`POLLS_PER_TURN`] of its queries before it goes to the
//! back of the queue: another sandbox's server or lane waits for at most one turn of each busy
//! lane, however much that sandbox forwards. A sandbox's forwarding thus gets at most one worker
//! thread at a time, and the same share as any other busy sandbox.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

/// Queries a lane polls in one turn before it yields to the runtime's other tasks.
pub(crate) const POLLS_PER_TURN: usize = 32;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

#[derive(Default)]
struct State {
    /// Jobs pushed since the driver last looked.
    incoming: Vec<Job>,
    /// Slots whose job was woken, in wake order, each at most once (see `queued`).
    ready: VecDeque<usize>,
    queued: Vec<bool>,
    /// The driver task's waker.
    driver: Option<Waker>,
    /// The driver is gone: jobs pushed now are dropped at once.
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake_driver(mut st: MutexGuard<'_, State>) {
        let driver = st.driver.take();
        drop(st);
        if let Some(w) = driver {
            w.wake();
        }
    }
}

/// The waker of one job: queues its slot and wakes the driver.
struct SlotWaker {
    shared: Arc<Shared>,
    slot: usize,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut st = self.shared.lock();
        if st.queued.get(self.slot).copied().unwrap_or(true) {
            return;
        }
        st.queued[self.slot] = true;
        st.ready.push_back(self.slot);
        Shared::wake_driver(st);
    }
}

/// The handle a server pushes its forwards into.
pub(crate) struct Lane {
    shared: Arc<Shared>,
}

impl Lane {
    /// A lane, and the future that runs its jobs (spawn it once; it runs until dropped).
    pub(crate) fn new() -> (Lane, LaneDriver) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
        });
        (
            Lane {
                shared: shared.clone(),
            },
            LaneDriver {
                shared,
                slots: Vec::new(),
                free: Vec::new(),
                turn: VecDeque::new(),
            },
        )
    }

    /// Runs `job` in the lane (or drops it, if the lane's driver is gone).
    pub(crate) fn push(&self, job: impl Future<Output = ()> + Send + 'static) {
        let mut st = self.shared.lock();
        if st.closed {
            drop(st);
            drop(job);
            return;
        }
        st.incoming.push(Box::pin(job));
        Shared::wake_driver(st);
    }
}

/// Runs a lane's jobs; never completes (drop it to cancel every job left).
pub(crate) struct LaneDriver {
    shared: Arc<Shared>,
    slots: Vec<Option<(Job, Waker)>>,
    free: Vec<usize>,
    /// Slots to poll in this turn.
    turn: VecDeque<usize>,
}

impl LaneDriver {
    /// Takes the new jobs (each gets a slot, queued to be polled) and the woken slots.
    fn collect(&mut self, cx: &Context<'_>) {
        let mut st = self.shared.lock();
        if !st.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.driver = Some(cx.waker().clone());
        }
        for job in std::mem::take(&mut st.incoming) {
            let slot = self.free.pop().unwrap_or_else(|| {
                self.slots.push(None);
                self.slots.len() - 1
            });
            if st.queued.len() < self.slots.len() {
                st.queued.resize(self.slots.len(), false);
            }
            let waker = Waker::from(Arc::new(SlotWaker {
                shared: self.shared.clone(),
                slot,
            }));
            self.slots[slot] = Some((job, waker));
            st.queued[slot] = true;
            st.ready.push_back(slot);
        }
        self.turn.extend(st.ready.drain(..));
    }

    /// The number of jobs running.
    #[cfg(test)]
    fn running(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}

impl Drop for LaneDriver {
    fn drop(&mut self) {
        // Jobs hold what their server holds (the lane included): drop the ones not yet taken,
        // and refuse new ones, so that nothing keeps the server alive.
        let incoming = {
            let mut st = self.shared.lock();
            st.closed = true;
            st.driver = None;
            std::mem::take(&mut st.incoming)
        };
        drop(incoming);
    }
}

impl Future for LaneDriver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.collect(cx);
        let mut polled = 0;
        while let Some(slot) = this.turn.pop_front() {
            if polled == POLLS_PER_TURN {
                // The rest waits for the next turn: to the back of the runtime's queue.
                this.turn.push_front(slot);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if let Some(q) = this.shared.lock().queued.get_mut(slot) {
                *q = false;
            }
            let Some((job, waker)) = this.slots[slot].as_mut() else {
                continue;
            };
            polled += 1;
            if job
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_ready()
            {
                this.slots[slot] = None;
                this.free.push(slot);
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn jobs_run_to_completion_and_free_their_slots() {
        runtime().block_on(async {
            let (lane, mut driver) = Lane::new();
            let done = Arc::new(AtomicUsize::new(0));
            for i in 0..500u64 {
                let done = done.clone();
                lane.push(async move {
                    tokio::time::sleep(Duration::from_millis(i % 7)).await;
                    tokio::task::yield_now().await;
                    done.fetch_add(1, Ordering::Relaxed);
                });
            }
            let _ = tokio::time::timeout(Duration::from_millis(300), &mut driver).await;
            assert_eq!(done.load(Ordering::Relaxed), 500);
            assert_eq!(driver.running(), 0);
            // slots are reused
            lane.push(async {});
            let _ = tokio::time::timeout(Duration::from_millis(20), &mut driver).await;
            assert!(driver.slots.len() <= 500);
        });
    }

    #[test]
    fn a_busy_lane_lets_other_tasks_run_between_turns() {
        runtime().block_on(async {
            let (lane, driver) = Lane::new();
            // 1000 jobs that never stop being ready
            for _ in 0..1000 {
                lane.push(async {
                    loop {
                        tokio::task::yield_now().await;
                    }
                });
            }
            let lane_task = tokio::spawn(driver);
            // another task on the same (one-thread) runtime still gets its turns
            let started = tokio::time::Instant::now();
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
            assert!(started.elapsed() < Duration::from_secs(1));
            lane_task.abort();
            drop(lane);
        });
    }

    #[test]
    fn dropping_the_driver_cancels_its_jobs() {
        runtime().block_on(async {
            let (lane, mut driver) = Lane::new();
            let alive = Arc::new(());
            let held = alive.clone();
            lane.push(async move {
                let _held = held;
                std::future::pending::<()>().await;
            });
            let _ = tokio::time::timeout(Duration::from_millis(10), &mut driver).await;
            assert_eq!(Arc::strong_count(&alive), 2);
            drop(driver);
            assert_eq!(Arc::strong_count(&alive), 1);
            // and later jobs are dropped at once
            let held = alive.clone();
            lane.push(async move {
                let _held = held;
            });
            assert_eq!(Arc::strong_count(&alive), 1);
        });
    }
}

//! What the two concurrency soaks (`soak.rs` on the controller, `berth-cli`'s `soak_api.rs` over
//! the daemon's API) share: limits, settings from the environment, the seeded random source and
//! the names and kinds of the networks and sandboxes they make.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// No call (or request) may take longer.
pub(crate) const CALL_LIMIT: Duration = Duration::from_secs(5);
/// User-defined networks `soak-n0..`; index `NETWORKS` stands for the default `bridge`.
pub(crate) const NETWORKS: usize = 6;
/// Sandbox names `soak-s0..` (renames move sandboxes between these names).
pub(crate) const SANDBOXES: u64 = 12;
/// Published host ports come from `PORT_BASE..PORT_BASE + PORTS` (collisions are wanted).
pub(crate) const PORT_BASE: u16 = 20000;
pub(crate) const PORTS: u64 = 24;
pub(crate) const ICC: &str = "com.docker.network.bridge.enable_icc";

// ----- settings and randomness -----

pub(crate) struct Settings {
    pub(crate) seed: u64,
    pub(crate) threads: usize,
    pub(crate) ops: usize,
}

pub(crate) fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a whole number")),
        Err(_) => default,
    }
}

impl Settings {
    pub(crate) fn from_env() -> Settings {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let fresh = (now.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32);
        Settings {
            seed: env_number("BERTH_SOAK_SEED", fresh),
            threads: env_number("BERTH_SOAK_THREADS", 8) as usize,
            ops: env_number("BERTH_SOAK_OPS", 500) as usize,
        }
    }
}

/// splitmix64: small, seedable, good enough to pick operations.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64, stream: u64) -> Rng {
        Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// ----- names and kinds of the objects the soaks make -----

pub(crate) fn net_name(i: usize) -> String {
    if i == NETWORKS {
        "bridge".into()
    } else {
        format!("soak-n{i}")
    }
}

pub(crate) fn sb_name(i: u64) -> String {
    format!("soak-s{i}")
}

/// Networks 0, 3 and 5 have a fixed subnet (10.210.i.0/24 in the controller soak, 10.211.i.0/24 over the API) and take `--ip`.
pub(crate) fn fixed_subnet(i: usize) -> bool {
    matches!(i, 0 | 3 | 5)
}

pub(crate) fn icc_off(i: usize) -> bool {
    matches!(i, 1 | 3)
}

pub(crate) fn internal(i: usize) -> bool {
    matches!(i, 2 | 5)
}

// ----- the watchdog -----

#[derive(Default)]
pub(crate) struct Slot {
    current: Option<(String, Instant)>,
    recent: VecDeque<String>,
}

/// Times every call (an API request is a call too); one that runs past [`CALL_LIMIT`] aborts the process (a deadlocked thread
/// cannot be joined) after printing every thread's call in flight and its last calls, the seed,
/// and cleaning up the namespaces and mounts the test made.
pub(crate) struct Watchdog {
    seed: u64,
    slots: Vec<Mutex<Slot>>,
    stop: AtomicBool,
    /// Set when the watchdog aborts: calls that return meanwhile (failing, as it cleans up) wait
    /// for the end instead of reporting their failure.
    fired: AtomicBool,
    cleanup: Box<dyn Fn() -> String + Send + Sync>,
    /// `soak` or `soak_api`, in the messages.
    label: &'static str,
}

impl Watchdog {
    /// Starts watching `threads` threads; `cleanup` runs before the abort and returns what to
    /// print of it.
    pub(crate) fn start(
        label: &'static str,
        seed: u64,
        threads: usize,
        cleanup: Box<dyn Fn() -> String + Send + Sync>,
    ) -> Arc<Watchdog> {
        let wd = Arc::new(Watchdog {
            seed,
            slots: (0..threads).map(|_| Mutex::default()).collect(),
            stop: AtomicBool::new(false),
            fired: AtomicBool::new(false),
            cleanup,
            label,
        });
        let w = wd.clone();
        std::thread::spawn(move || {
            while !w.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                w.inspect();
            }
        });
        wd
    }

    /// Runs `f` as call `what` of thread `thread`.
    pub(crate) fn call<T>(&self, thread: usize, what: &str, f: impl FnOnce() -> T) -> T {
        {
            let mut slot = self.slots[thread].lock().unwrap_or_else(|p| p.into_inner());
            slot.current = Some((what.to_owned(), Instant::now()));
        }
        let out = f();
        while self.fired.load(Ordering::SeqCst) {
            std::thread::park();
        }
        let mut slot = self.slots[thread].lock().unwrap_or_else(|p| p.into_inner());
        slot.current = None;
        if slot.recent.len() == 5 {
            slot.recent.pop_front();
        }
        slot.recent.push_back(what.to_owned());
        out
    }

    pub(crate) fn inspect(&self) {
        let late = self.slots.iter().enumerate().find_map(|(t, s)| {
            let s = s.lock().unwrap_or_else(|p| p.into_inner());
            s.current
                .as_ref()
                .filter(|(_, since)| since.elapsed() > CALL_LIMIT)
                .map(|(what, since)| (t, what.clone(), since.elapsed()))
        });
        let Some((thread, what, took)) = late else {
            return;
        };
        self.fired.store(true, Ordering::SeqCst);
        // Straight to stderr: the test harness's captured output dies with the process.
        let mut msg = format!(
            "\n{label}: DEADLOCK OR STALL: thread {thread}'s call {what} has not answered for {:.1} s \
             (limit {} s). Seed {seed}: replay with BERTH_SOAK_SEED={seed}.\nEvery thread:\n",
            took.as_secs_f64(),
            CALL_LIMIT.as_secs(),
            seed = self.seed,
            label = self.label,
        );
        for (t, s) in self.slots.iter().enumerate() {
            // A thread may hold its slot only for an instant: never wait for it here.
            let Ok(s) = s.try_lock() else { continue };
            let current = s.current.as_ref().map_or("idle".to_owned(), |(w, since)| {
                format!("IN {w} for {:.1} s", since.elapsed().as_secs_f64())
            });
            msg.push_str(&format!(
                "  thread {t}: {current}; before: {:?}\n",
                s.recent
            ));
        }
        let _ = std::io::stderr().write_all(msg.as_bytes());
        let _ = std::io::stderr().write_all((self.cleanup)().as_bytes());
        let _ = std::io::stderr()
            .write_all(format!("{}: aborting the test process\n", self.label).as_bytes());
        std::process::exit(1);
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop();
    }
}

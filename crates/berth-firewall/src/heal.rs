//! A firewall that heals itself while running: a thread follows the namespace's nf_tables
//! changes (netlink notifications, in-process) and reconciles when something outside berth
//! touched what berth owns — its nftables table, its iptables chains, the built-in chains that
//! jump into them. With the legacy iptables binaries (x_tables: the kernel sends no
//! notifications) it compares the rules with berth's state on a timer instead.
//!
//! The kernel names the process behind every nf_tables commit (its pid and name, in the
//! generation message that ends the transaction). Commits of this process (the netlink paths)
//! and of the tools the firewall ran itself are berth's own and are skipped, so berth's changes
//! never cost a reconcile; the others are named in the repair's log, so an operator can find
//! the tool that fought berth. A burst of outside changes costs one reconcile (they are gathered
//! until the rules are quiet for [`HealOptions::debounce`]), and a tool that keeps changing the
//! rules cannot make berth spin: repairs are at least [`HealOptions::min_interval`] apart, and
//! [`HealOptions::storm_interval`] apart while more than [`HealOptions::storm_repairs`] were
//! needed within [`HealOptions::storm_window`].
//!
//! The user's rules are never touched: a repair is [`Firewall::reconcile`], which rewrites only
//! berth's chains, sets and jumps and never flushes the user's chain (`DOCKER-USER`).

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use berth_netlink::nftables::{Change, ChangeKind, Commit, NftMonitor, Notice};

use crate::error::{Error, Result};
use crate::exec;
use crate::firewall::Firewall;
use crate::report::DriftReport;
use crate::spec::Backend;

/// How the healing thread paces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealOptions {
    /// Outside changes are gathered until none came for this long (a tool's reload is many
    /// commits), then checked once.
    pub debounce: Duration,
    /// The longest a change waits for the rules to be quiet before it is checked anyway.
    pub max_delay: Duration,
    /// Repairs are at least this far apart.
    pub min_interval: Duration,
    /// More than `storm_repairs` repairs within `storm_window`: something keeps fighting berth;
    /// repairs are then `storm_interval` apart (and the tool is named in a warning).
    pub storm_repairs: usize,
    /// See `storm_repairs`.
    pub storm_window: Duration,
    /// See `storm_repairs`.
    pub storm_interval: Duration,
    /// How often the rules are compared with berth's state where the kernel sends no
    /// notifications (the legacy iptables binaries).
    pub poll_interval: Duration,
}

impl Default for HealOptions {
    fn default() -> HealOptions {
        HealOptions {
            debounce: Duration::from_millis(50),
            max_delay: Duration::from_millis(300),
            min_interval: Duration::from_millis(100),
            storm_repairs: 10,
            storm_window: Duration::from_secs(10),
            // Still within the second a repair is promised in.
            storm_interval: Duration::from_millis(500),
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// How the healing thread learns of changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealMode {
    /// nf_tables notifications (the nftables backend, and iptables with the nf_tables binaries).
    Notifications,
    /// A comparison on a timer (iptables with the legacy binaries: x_tables sends none).
    Polling,
}

/// A repair: what was found and fixed, and who had changed the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// When it was made.
    pub at: SystemTime,
    /// What differed (now fixed).
    pub report: DriftReport,
    /// The processes whose commits led to it (`iptables-nft (pid 4242)`), as the kernel named
    /// them; empty when polling found it.
    pub culprits: Vec<String>,
}

/// The healing thread's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealStats {
    /// Commits that were berth's own (skipped).
    pub own_commits: u64,
    /// Commits of other processes that touched what berth owns.
    pub outside_commits: u64,
    /// Commits of other processes elsewhere (other tables, the user's chains).
    pub unrelated_commits: u64,
    /// Times the notifications overflowed (everything is then checked).
    pub overruns: u64,
    /// Checks made (each one a reconcile that found nothing, or a repair).
    pub checks: u64,
    /// Checks that found drift and fixed it.
    pub repairs: u64,
    /// Checks that failed (the rules could not be read or written).
    pub failures: u64,
    /// The last repair.
    pub last_repair: Option<Repair>,
}

#[derive(Default)]
struct Shared {
    own: AtomicU64,
    outside: AtomicU64,
    unrelated: AtomicU64,
    overruns: AtomicU64,
    checks: AtomicU64,
    repairs: AtomicU64,
    failures: AtomicU64,
    last: Mutex<Option<Repair>>,
}

/// The running healing thread of a [`Firewall`] (see [`Firewall::start_healing`]); stopped
/// (and joined) on drop.
pub struct Healer {
    mode: HealMode,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Healer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Healer")
            .field("mode", &self.mode)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Healer {
    /// How it learns of changes.
    pub fn mode(&self) -> HealMode {
        self.mode
    }

    /// Its counters so far.
    pub fn stats(&self) -> HealStats {
        let s = &self.shared;
        HealStats {
            own_commits: s.own.load(Ordering::Relaxed),
            outside_commits: s.outside.load(Ordering::Relaxed),
            unrelated_commits: s.unrelated.load(Ordering::Relaxed),
            overruns: s.overruns.load(Ordering::Relaxed),
            checks: s.checks.load(Ordering::Relaxed),
            repairs: s.repairs.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            last_repair: s.last.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

impl Drop for Healer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Firewall {
    /// Starts the thread that repairs berth's rules when something outside berth changes them
    /// (see the module's documentation), for as long as the returned [`Healer`] lives. Call it
    /// after the first [`Firewall::reconcile`]. Fails when the namespace's nf_tables
    /// notifications cannot be subscribed to.
    pub fn start_healing(self: &Arc<Self>, opts: HealOptions) -> Result<Healer> {
        let mode = if self.tools().backend == Backend::Iptables && self.tools().legacy {
            HealMode::Polling
        } else {
            HealMode::Notifications
        };
        let monitor = match mode {
            HealMode::Notifications => Some(NftMonitor::open(self.netns())?),
            HealMode::Polling => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let worker = Worker {
            fw: self.clone(),
            opts,
            stop: stop.clone(),
            shared: shared.clone(),
            repairs: VecDeque::new(),
            last_repair: None,
            storming: false,
        };
        let thread = std::thread::Builder::new()
            .name("berth-firewall-heal".into())
            .spawn(move || match monitor {
                Some(m) => worker.follow(m),
                None => worker.poll(),
            })
            .map_err(|e| Error::io("starting the firewall's healing thread", e))?;
        tracing::info!(
            ?mode,
            "the firewall repairs outside changes to berth's rules"
        );
        Ok(Healer {
            mode,
            stop,
            shared,
            thread: Some(thread),
        })
    }
}

struct Worker {
    fw: Arc<Firewall>,
    opts: HealOptions,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    /// When the recent repairs were made (within the storm window).
    repairs: VecDeque<Instant>,
    last_repair: Option<Instant>,
    storming: bool,
}

impl Worker {
    /// Notification mode: gathers outside commits, then checks once the rules are quiet.
    fn follow(mut self, mut monitor: NftMonitor) {
        // (first outside change, last outside change) of the pending check.
        let mut pending: Option<(Instant, Instant)> = None;
        let mut culprits: BTreeSet<String> = BTreeSet::new();
        let mut drained = false;
        while !self.stop.load(Ordering::Relaxed) {
            // Read on a timer, never blocked on the socket: a thread waiting there is woken
            // inside every commit, berth's own included (about 10 µs each, measured), while
            // queued notifications cost the committer only the kernel's 1-3 µs.
            if drained {
                std::thread::sleep(if pending.is_some() {
                    Duration::from_millis(10)
                } else {
                    READ_EVERY
                });
            }
            let got = monitor.next(Duration::ZERO);
            drained = !matches!(got, Ok(Some(_)));
            match got {
                Ok(Some(Notice::Commit(c))) => {
                    if is_own(&c) {
                        self.shared.own.fetch_add(1, Ordering::Relaxed);
                    } else if self.touches_berth(&c) {
                        self.shared.outside.fetch_add(1, Ordering::Relaxed);
                        culprits.insert(describe(&c));
                        let now = Instant::now();
                        pending = Some((pending.map_or(now, |(first, _)| first), now));
                    } else {
                        self.shared.unrelated.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Some(Notice::Overrun)) => {
                    self.shared.overruns.fetch_add(1, Ordering::Relaxed);
                    culprits.insert("(notifications overflowed: unknown)".into());
                    let now = Instant::now();
                    pending = Some((pending.map_or(now, |(first, _)| first), now));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading nf_tables notifications failed; checking the rules");
                    let now = Instant::now();
                    pending = Some((pending.map_or(now, |(first, _)| first), now));
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            let Some((first, last)) = pending else {
                continue;
            };
            let now = Instant::now();
            let settled = now.duration_since(last) >= self.opts.debounce
                || now.duration_since(first) >= self.opts.max_delay;
            if settled && self.may_repair(now) {
                self.check(culprits.iter().cloned().collect());
                culprits.clear();
                pending = None;
            }
        }
    }

    /// Polling mode: compares the rules with berth's state on a timer.
    fn poll(mut self) {
        let mut next = Instant::now() + self.opts.poll_interval;
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            let now = Instant::now();
            if now < next || !self.may_repair(now) {
                continue;
            }
            next = now + self.opts.poll_interval;
            self.check(Vec::new());
        }
    }

    /// Whether a repair may be made at `now` (the pace after the last one).
    fn may_repair(&self, now: Instant) -> bool {
        let gap = if self.storming {
            self.opts.storm_interval
        } else {
            self.opts.min_interval
        };
        self.last_repair.is_none_or(|t| now >= t + gap)
    }

    /// One reconcile; a repair is logged with what it fixed and who had changed the rules.
    fn check(&mut self, culprits: Vec<String>) {
        self.shared.checks.fetch_add(1, Ordering::Relaxed);
        let report = match self.fw.reconcile() {
            Ok(r) => r,
            Err(e) => {
                self.shared.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "repairing berth's firewall rules failed");
                return;
            }
        };
        if report.is_clean() {
            return;
        }
        let now = Instant::now();
        self.shared.repairs.fetch_add(1, Ordering::Relaxed);
        self.last_repair = Some(now);
        self.repairs.push_back(now);
        while self
            .repairs
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.opts.storm_window)
        {
            self.repairs.pop_front();
        }
        let by = if culprits.is_empty() {
            "found by comparing (no notifications from the legacy iptables binaries)".to_owned()
        } else {
            culprits.join(", ")
        };
        tracing::warn!(changed_by = %by, found = %report, "repaired berth's firewall rules after an outside change");
        let storming = self.repairs.len() > self.opts.storm_repairs;
        if storming && !self.storming {
            tracing::warn!(
                changed_by = %by,
                repairs = self.repairs.len(),
                window = ?self.opts.storm_window,
                "something keeps changing berth's firewall rules; repairs slowed to one per {:?}",
                self.opts.storm_interval
            );
        }
        self.storming = storming;
        *self.shared.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Repair {
            at: SystemTime::now(),
            report,
            culprits,
        });
    }

    /// Whether a commit touched what berth owns.
    fn touches_berth(&self, c: &Commit) -> bool {
        c.changes.iter().any(|ch| match self.fw.config().backend {
            Backend::Nftables => {
                ch.table == crate::nftables::TABLE_NAME && ch.family == NFPROTO_INET
            }
            Backend::Iptables => iptables_relevant(ch),
        })
    }
}

/// How often the queued notifications are read while nothing is pending (the socket holds
/// them meanwhile; an overflow is reported and answered with a full check).
const READ_EVERY: Duration = Duration::from_millis(25);

/// nf_tables' family numbers (`NFPROTO_*`).
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

/// An iptables-nft change berth cares about: in the tables it uses (filter, nat, raw), a
/// table-wide change, or one in its chains, the user's chain or the built-in chains that jump
/// into them.
fn iptables_relevant(ch: &Change) -> bool {
    if !matches!(ch.family, NFPROTO_IPV4 | NFPROTO_IPV6)
        || !matches!(ch.table.as_str(), "filter" | "nat" | "raw")
    {
        return false;
    }
    match (&ch.kind, &ch.chain) {
        (ChangeKind::NewTable | ChangeKind::DelTable, _) => true,
        (_, Some(chain)) => {
            chain.starts_with("BERTH")
                || chain == crate::iptables::USER_CHAIN
                || matches!(
                    chain.as_str(),
                    "FORWARD" | "PREROUTING" | "OUTPUT" | "POSTROUTING"
                )
        }
        (_, None) => true,
    }
}

/// Whether the kernel says this process, or a tool the firewall ran, made the commit.
fn is_own(c: &Commit) -> bool {
    c.pid.is_some_and(exec::is_own_process)
}

fn describe(c: &Commit) -> String {
    match (&c.process, c.pid) {
        (Some(name), Some(pid)) => format!("{name} (pid {pid})"),
        (None, Some(pid)) => format!("pid {pid}"),
        (Some(name), None) => name.clone(),
        (None, None) => "an unnamed process".into(),
    }
}

//! The self-healing firewall (berth issue 19, "Performance"), as root, each case in a throwaway
//! test namespace loaded with bridge networks and published ports through one reconcile (as
//! `--bench firewall` loads them). A measured scenario, not criterion: each part prints a table.
//!
//! 1. **Repair time**: something outside berth flushes the chain that holds the published ports'
//!    rules; the time until the healing thread's repair is done ([`Healer::stats`]' `repairs`
//!    incremented, polled every 1 ms), median and max. Target: median at most 1 s. Cases:
//!    (a) nftables, 1000 networks and 10,000 ports, `nft flush chain inet berth published` (the
//!    chain whose DNAT statements look the ports up in the maps); (b) iptables with the
//!    nf_tables binaries, 100 networks and 1000 ports, `iptables-nft -t nat -F BERTH-DNAT` (the
//!    one DNAT rule per port); (c) the same at 1000 networks and 10,000 ports, for context;
//!    (d) the legacy binaries (the healer polls every 500 ms), 100 networks and 1000 ports,
//!    `iptables-legacy -w -t nat -F BERTH-DNAT`. Each trial starts a fresh healer with the
//!    default [`HealOptions`] (so its storm limit, more than 10 repairs in 10 s, never applies:
//!    each healer makes one repair),
//!    drops it, then measures the baseline in the same namespace with no healer: the outside
//!    flush command alone, the one [`Firewall::reconcile`] that repairs it (the repair work
//!    itself), a reconcile that finds nothing (what each legacy poll costs), and the listing tool
//!    that reconcile runs to read the rules (`nft list table inet berth`, `iptables-nft-save`,
//!    `iptables-legacy-save`) alone, with its CPU time in user space and in the kernel. With the
//!    legacy binaries the flush comes a random 0-500 ms after the healer started, so the poll's
//!    phase is uniform as on a running host.
//! 2. **No cost when nothing outside changes the rules**: at the scale of 1a and 1b, one port
//!    published ([`Firewall::add_ports`], timed) and removed (untimed), in blocks of 20 in four
//!    modes, interleaved with the order rotating: nothing listening; a bare listener (an
//!    [`NftMonitor`] subscribed and never read: the kernel's own cost of building and queueing
//!    the notifications of each commit); a bare reader (the same, read by a thread blocked on it
//!    that does nothing else: the cost of waking a thread per commit); the healer running.
//!    Medians, ratios, the
//!    healer's stats (its own commits counted, no check, no repair) and the healing thread's CPU
//!    time (`/proc/self/task/<tid>/schedstat` of the thread `berth-firewall-heal`).
//!
//! Run with `cargo bench -p berth-benches --bench firewall_heal` or `cargo xtask bench
//! firewall_heal` (as root; about two minutes). `HEAL_BENCH=1a,2` runs some parts only
//! (`1a`, `1b`, `1c`, `1d`, `2`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use berth_benches::{PORTS_PER_NETWORK, extra_port, network, port};
use berth_firewall::{
    Backend, DesiredState, Firewall, FirewallConfig, HealMode, HealOptions, HealStats, Healer,
    IptablesVariant,
};
use berth_netlink::nftables::{NftMonitor, Notice};
use berth_testhost::TestHost;
use nix::sys::resource::{UsageWho, getrusage};

/// Trials of each case of part 1 (15 at 10,000 iptables rules, where a reconcile is slow).
const TRIALS: usize = 20;
const TRIALS_LARGE_IPTABLES: usize = 15;
/// Part 2: blocks of `BLOCK` timed publishes, `BLOCKS` with the healer and as many without.
const BLOCK: usize = 20;
const BLOCKS: usize = 12;
/// Longest wait for a repair before the bench fails.
const REPAIR_TIMEOUT: Duration = Duration::from_secs(10);
/// The healing thread's name as the kernel keeps it (`comm`: 15 characters).
const HEAL_THREAD_COMM: &str = "berth-firewall-";

/// One case: a backend at a scale, and the outside command that flushes berth's port rules.
#[derive(Clone, Copy)]
struct Case {
    id: &'static str,
    name: &'static str,
    backend: Backend,
    variant: IptablesVariant,
    networks: u32,
    flush: &'static [&'static str],
    /// The tool that lists what a reconcile reads (its first half).
    list: &'static [&'static str],
    trials: usize,
}

impl Case {
    fn ports(&self) -> u32 {
        self.networks * PORTS_PER_NETWORK
    }

    fn scale(&self) -> String {
        format!("{} networks, {} ports", self.networks, self.ports())
    }

    fn polling(&self) -> bool {
        self.variant == IptablesVariant::Legacy
    }
}

const NFT_FLUSH: &[&str] = &["nft", "flush", "chain", "inet", "berth", "published"];
const IPT_NFT_FLUSH: &[&str] = &["iptables-nft", "-t", "nat", "-F", "BERTH-DNAT"];
const IPT_LEGACY_FLUSH: &[&str] = &["iptables-legacy", "-w", "-t", "nat", "-F", "BERTH-DNAT"];
const NFT_LIST: &[&str] = &["nft", "list", "table", "inet", "berth"];
const IPT_NFT_LIST: &[&str] = &["iptables-nft-save"];
const IPT_LEGACY_LIST: &[&str] = &["iptables-legacy-save"];

fn cases() -> [Case; 4] {
    [
        Case {
            id: "1a",
            name: "nftables",
            backend: Backend::Nftables,
            variant: IptablesVariant::Auto,
            networks: 1000,
            flush: NFT_FLUSH,
            list: NFT_LIST,
            trials: TRIALS,
        },
        Case {
            id: "1b",
            name: "iptables (nf_tables)",
            backend: Backend::Iptables,
            variant: IptablesVariant::Nft,
            networks: 100,
            flush: IPT_NFT_FLUSH,
            list: IPT_NFT_LIST,
            trials: TRIALS,
        },
        Case {
            id: "1c",
            name: "iptables (nf_tables), context",
            backend: Backend::Iptables,
            variant: IptablesVariant::Nft,
            networks: 1000,
            flush: IPT_NFT_FLUSH,
            list: IPT_NFT_LIST,
            trials: TRIALS_LARGE_IPTABLES,
        },
        Case {
            id: "1d",
            name: "iptables (legacy, polling)",
            backend: Backend::Iptables,
            variant: IptablesVariant::Legacy,
            networks: 100,
            flush: IPT_LEGACY_FLUSH,
            list: IPT_LEGACY_LIST,
            trials: TRIALS,
        },
    ]
}

/// A test namespace holding a loaded firewall (one reconcile), and how long loading took.
fn loaded(case: &Case) -> (TestHost, Arc<Firewall>, Duration) {
    let host = TestHost::new().expect("a test namespace (run the benchmark as root)");
    let mut cfg = FirewallConfig::new(case.backend);
    cfg.iptables_variant = case.variant;
    let state = DesiredState::from_parts(
        &cfg,
        (0..case.networks).map(network),
        (0..case.networks).flat_map(|k| (0..PORTS_PER_NETWORK).map(move |i| port(k, i))),
        [],
    )
    .expect("loaded state");
    let started = Instant::now();
    let fw = Firewall::with_state(host.netns(), cfg, state).expect("firewall");
    fw.reconcile().expect("loading the networks and ports");
    (host, Arc::new(fw), started.elapsed())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let started = Instant::now();
    println!("# berth self-healing firewall bench (issue 19)");
    println!("{}", berth_benches::machine_line());
    let only = std::env::var("HEAL_BENCH").ok();
    let run = |n: &str| {
        only.as_ref().is_none_or(|o| {
            o.split(',')
                .any(|x| x.trim() == n || n.starts_with(x.trim()))
        })
    };
    let mut rows = Vec::new();
    for case in cases() {
        if run(case.id) {
            rows.push(repair_case(&case));
        }
    }
    if !rows.is_empty() {
        print_repairs(&rows);
    }
    if run("2") {
        let mut quiet = Vec::new();
        for case in cases().into_iter().filter(|c| c.id == "1a" || c.id == "1b") {
            quiet.push(no_cost(&case));
        }
        print_no_cost(&quiet);
    }
    println!("\n{}", berth_benches::whole_run_line(started));
}

/// Part 1's measurements of one case.
struct RepairRow {
    case: Case,
    load: Duration,
    /// From the flush command's start to the repair done.
    repair: Vec<Duration>,
    /// From the flush command's exit to the repair done.
    after_exit: Vec<Duration>,
    /// The flush command alone (both halves of every trial).
    flush: Vec<Duration>,
    /// The reconcile that repairs the flush, no healer.
    reconcile: Vec<Duration>,
    /// A reconcile that finds nothing.
    clean: Vec<Duration>,
    /// The listing tool alone (what a reconcile reads).
    list: Vec<Duration>,
    /// Its CPU time in user space and in the kernel.
    list_user: Vec<Duration>,
    list_sys: Vec<Duration>,
    culprits: Vec<String>,
    found: usize,
    checks: u64,
}

fn run_tool(host: &TestHost, cmd: &[&str]) -> Duration {
    let t = Instant::now();
    host.run(cmd[0], &cmd[1..])
        .unwrap_or_else(|e| panic!("{}: {e}", cmd.join(" ")));
    t.elapsed()
}

/// The CPU time of this process's waited-for children so far: (user, system).
fn children_cpu() -> (Duration, Duration) {
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let d = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    (d(u.user_time()), d(u.system_time()))
}

fn repair_case(case: &Case) -> RepairRow {
    let (host, fw, load) = loaded(case);
    eprintln!(
        "{} {}: loaded {} in one reconcile: {load:?}{}",
        case.id,
        case.name,
        case.scale(),
        if case.backend == Backend::Iptables {
            format!(
                " (rules changed over netlink: {})",
                fw.iptables_over_netlink()
            )
        } else {
            String::new()
        }
    );
    let mut row = RepairRow {
        case: *case,
        load,
        repair: Vec::new(),
        after_exit: Vec::new(),
        flush: Vec::new(),
        reconcile: Vec::new(),
        clean: Vec::new(),
        list: Vec::new(),
        list_user: Vec::new(),
        list_sys: Vec::new(),
        culprits: Vec::new(),
        found: 0,
        checks: 0,
    };
    let mut rng = Rng::new();
    for trial in 0..case.trials {
        // With the healer (default options), a fresh one per trial.
        let healer = fw.start_healing(HealOptions::default()).expect("healing");
        let want = if case.polling() {
            HealMode::Polling
        } else {
            HealMode::Notifications
        };
        assert_eq!(healer.mode(), want, "{}", case.name);
        if case.polling() {
            std::thread::sleep(Duration::from_millis(rng.below(500)));
        }
        let t0 = Instant::now();
        host.run(case.flush[0], &case.flush[1..])
            .unwrap_or_else(|e| panic!("{}: {e}", case.flush.join(" ")));
        let t1 = Instant::now();
        let stats = wait_repair(&healer, t0);
        let done = Instant::now();
        row.repair.push(done - t0);
        row.after_exit.push(done - t1);
        row.flush.push(t1 - t0);
        row.checks += stats.checks;
        let repair = stats.last_repair.expect("a repair");
        assert!(!repair.report.is_clean(), "the repair found nothing");
        row.found = repair.report.missing.len() + repair.report.structure.len();
        if trial == 0 {
            row.culprits = repair.culprits.clone();
        }
        drop(healer);
        // The baseline, no healer: the same flush, and the reconcile that repairs it.
        row.flush.push(run_tool(&host, case.flush));
        let t = Instant::now();
        let report = fw.reconcile().expect("reconcile");
        row.reconcile.push(t.elapsed());
        assert!(!report.is_clean(), "the flush took nothing: {}", case.name);
        let t = Instant::now();
        let report = fw.reconcile().expect("reconcile");
        row.clean.push(t.elapsed());
        assert!(report.is_clean(), "drift after a reconcile: {report}");
        let (u0, s0) = children_cpu();
        row.list.push(run_tool(&host, case.list));
        let (u1, s1) = children_cpu();
        row.list_user.push(u1 - u0);
        row.list_sys.push(s1 - s0);
        std::thread::sleep(Duration::from_millis(100 + rng.below(100)));
    }
    let drift = fw.check_drift().expect("drift");
    assert!(drift.is_clean(), "{}: drift left: {drift}", case.name);
    eprintln!(
        "{} {}: median repair {}, median bare reconcile {}",
        case.id,
        case.name,
        ms(median(&row.repair)),
        ms(median(&row.reconcile))
    );
    row
}

/// Polls the healer every 1 ms until it made its repair.
fn wait_repair(healer: &Healer, since: Instant) -> HealStats {
    loop {
        let stats = healer.stats();
        if stats.repairs > 0 {
            assert_eq!(stats.repairs, 1, "one flush, one repair: {stats:?}");
            assert_eq!(stats.failures, 0, "{stats:?}");
            return stats;
        }
        assert!(
            since.elapsed() < REPAIR_TIMEOUT,
            "no repair within {REPAIR_TIMEOUT:?}: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn print_repairs(rows: &[RepairRow]) {
    println!("\n## 1. outside flush until repaired (each trial a fresh healer, default options)\n");
    println!(
        "| case | scale (loaded by one reconcile in) | outside command | trials | flush to repaired: \
         median / max | from the command's exit: median | target (median 1 s) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        let rep = median(&r.repair);
        println!(
            "| {} {} | {} ({}) | `{}` | {} | {} / {} | {} | {} |",
            r.case.id,
            r.case.name,
            r.case.scale(),
            ms(r.load),
            r.case.flush.join(" "),
            r.repair.len(),
            ms(rep),
            ms(max(&r.repair)),
            ms(median(&r.after_exit)),
            verdict(rep <= Duration::from_secs(1)),
        );
    }
    println!(
        "\nBaseline, same run, same namespaces, no healer (medians): the flush command alone, the \
         reconcile that repairs it, and its parts.\n"
    );
    println!(
        "| case | flush command | repairing reconcile | expected repair (debounce 50 ms + \
         reconcile) | repair (from exit) / reconcile | reconcile finding nothing | listing tool alone \
         (CPU: user / kernel) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        let rec = median(&r.reconcile);
        let expected = if r.case.polling() {
            format!("poll wait (0-500 ms, mean 250) + {}", ms(rec))
        } else {
            ms(Duration::from_millis(50) + rec)
        };
        println!(
            "| {} | {} | {} | {} | {:.2}x | {} | {} `{}` ({} / {}) |",
            r.case.id,
            ms(median(&r.flush)),
            ms(rec),
            expected,
            median(&r.after_exit).as_secs_f64() / rec.as_secs_f64(),
            ms(median(&r.clean)),
            ms(median(&r.list)),
            r.case.list.join(" "),
            ms(median(&r.list_user)),
            ms(median(&r.list_sys)),
        );
    }
    println!();
    for r in rows {
        println!(
            "{}: {} entries found missing or wrong per repair, {} checks over {} trials, \
             named culprit {:?}",
            r.case.id,
            r.found,
            r.checks,
            r.repair.len(),
            r.culprits
        );
    }
}

/// Part 2's modes: nothing listening, a bare listener, a bare reader, the healer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    Listener,
    Reader,
    Healer,
}

/// Part 2's measurements at one scale; samples and block medians by [`Mode`].
struct QuietRow {
    name: &'static str,
    scale: String,
    samples: [Vec<Duration>; 4],
    blocks: [Vec<Duration>; 4],
    /// Commits the bare reader read.
    read: u64,
    /// The bare reader's CPU time.
    read_cpu: Duration,
    stats: HealStats,
    cpu: Duration,
    cpu_ticks: u64,
    healer_wall: Duration,
}

fn no_cost(case: &Case) -> QuietRow {
    let (host, fw, _) = loaded(case);
    let publish = |out: &mut Vec<Duration>| {
        for _ in 0..BLOCK {
            let t = Instant::now();
            fw.add_ports(&[extra_port()]).expect("add port");
            out.push(t.elapsed());
            fw.remove_ports(&[extra_port()]).expect("remove port");
        }
    };
    // Warm-up (caches, the netlink path's one-time probe).
    publish(&mut Vec::new());
    let mut row = QuietRow {
        name: case.name,
        scale: case.scale(),
        samples: Default::default(),
        blocks: Default::default(),
        read: 0,
        read_cpu: Duration::ZERO,
        stats: HealStats::default(),
        cpu: Duration::ZERO,
        cpu_ticks: 0,
        healer_wall: Duration::ZERO,
    };
    let modes = [Mode::Off, Mode::Listener, Mode::Reader, Mode::Healer];
    for block in 0..BLOCKS {
        // The order rotates, so that each mode comes first, second and last as often.
        for k in 0..modes.len() {
            let mode = modes[(block + k) % modes.len()];
            let mut times = Vec::new();
            match mode {
                Mode::Off => publish(&mut times),
                Mode::Listener => {
                    // Subscribed to the namespace's nf_tables notifications and never read: the
                    // kernel's cost of building and queueing them, without a thread reading.
                    let listener = NftMonitor::open(host.netns()).expect("listener");
                    publish(&mut times);
                    drop(listener);
                }
                Mode::Reader => {
                    // The same, read by a thread blocked on it as the healer's is (and nothing
                    // else done with what it reads): the cost of being woken per commit.
                    let monitor = NftMonitor::open(host.netns()).expect("reader");
                    let stop = Arc::new(AtomicBool::new(false));
                    let reader = {
                        let stop = stop.clone();
                        std::thread::spawn(move || read_all(monitor, &stop))
                    };
                    publish(&mut times);
                    std::thread::sleep(Duration::from_millis(300));
                    stop.store(true, Ordering::Relaxed);
                    let (read, cpu) = reader.join().expect("reader thread");
                    row.read += read;
                    row.read_cpu += cpu;
                }
                Mode::Healer => {
                    let started = Instant::now();
                    let healer = fw.start_healing(HealOptions::default()).expect("healing");
                    publish(&mut times);
                    // Let the thread read the last notifications before its counters are taken.
                    std::thread::sleep(Duration::from_millis(300));
                    let s = healer.stats();
                    let (cpu, ticks) = heal_thread_cpu();
                    row.cpu += cpu;
                    row.cpu_ticks += ticks;
                    drop(healer);
                    row.healer_wall += started.elapsed();
                    add_stats(&mut row.stats, &s);
                }
            }
            row.blocks[mode as usize].push(median(&times));
            row.samples[mode as usize].extend(times);
        }
    }
    let drift = fw.check_drift().expect("drift");
    assert!(drift.is_clean(), "{}: drift left: {drift}", case.name);
    row
}

/// Reads commits until `stop`: how many, and the thread's CPU time.
fn read_all(mut monitor: NftMonitor, stop: &AtomicBool) -> (u64, Duration) {
    let mut commits = 0;
    while !stop.load(Ordering::Relaxed) {
        if let Some(Notice::Commit(_)) = monitor.next(Duration::from_millis(200)).expect("read") {
            commits += 1;
        }
    }
    (commits, schedstat_runtime("/proc/thread-self/schedstat"))
}

/// The run time (first field, nanoseconds) of a `schedstat` file.
fn schedstat_runtime(path: &str) -> Duration {
    let text = std::fs::read_to_string(path).expect("schedstat");
    let ns: u64 = text
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .expect("schedstat's run time");
    Duration::from_nanos(ns)
}

fn add_stats(total: &mut HealStats, s: &HealStats) {
    total.own_commits += s.own_commits;
    total.outside_commits += s.outside_commits;
    total.unrelated_commits += s.unrelated_commits;
    total.overruns += s.overruns;
    total.checks += s.checks;
    total.repairs += s.repairs;
    total.failures += s.failures;
}

/// The CPU time of the (one live) healing thread: `schedstat`'s run time, and `stat`'s utime +
/// stime in clock ticks.
fn heal_thread_cpu() -> (Duration, u64) {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let dir = task.expect("task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() == HEAL_THREAD_COMM {
            found.push(dir);
        }
    }
    assert_eq!(found.len(), 1, "one healing thread alive: {found:?}");
    let dir = &found[0];
    let cpu = schedstat_runtime(&dir.join("schedstat").to_string_lossy());
    let stat = std::fs::read_to_string(dir.join("stat")).expect("stat");
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("stat's comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    (cpu, ticks)
}

fn print_no_cost(rows: &[QuietRow]) {
    println!(
        "\n## 2. publish one port with nothing outside changing the rules ({BLOCKS} blocks of \
         {BLOCK} publishes in each mode, interleaved, order rotating)\n"
    );
    println!(
        "| backend, scale | mode | median | mean | p90 | block medians, min-max | this / nothing \
         listening: ratio of medians | the same, median of the {BLOCKS} rounds' block ratios |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let names = [
        "nothing listening",
        "bare listener (subscribed, never read)",
        "bare reader (a thread blocked reading it)",
        "healer running",
    ];
    for r in rows {
        let base = median(&r.samples[0]);
        for (m, name) in names.iter().enumerate() {
            let med = median(&r.samples[m]);
            let rounds: Vec<f64> = r.blocks[m]
                .iter()
                .zip(&r.blocks[0])
                .map(|(x, o)| x.as_secs_f64() / o.as_secs_f64())
                .collect();
            println!(
                "| {}, {} ({} publishes) | {name} | {} | {} | {} | {}-{} | {:.2}x | {:.2}x |",
                r.name,
                r.scale,
                r.samples[m].len(),
                us(med),
                us(mean(&r.samples[m])),
                us(pct(&r.samples[m], 90.0)),
                us(min(&r.blocks[m])),
                us(max(&r.blocks[m])),
                med.as_secs_f64() / base.as_secs_f64(),
                median_f(&rounds),
            );
        }
    }
    println!(
        "\n| backend | healer's own commits (expected: one per publish and unpublish) | outside | \
         unrelated | checks | repairs | healing thread CPU (schedstat; utime+stime) | per own commit | over its wall time | \
         commits the bare reader read (its CPU per commit) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let s = &r.stats;
        println!(
            "| {} | {} ({}) | {} | {} | {} | {} | {} ({} ticks of 10 ms) | {} | {:.3}% of {:.1} s | {} ({}) |",
            r.name,
            s.own_commits,
            2 * r.samples[3].len(),
            s.outside_commits,
            s.unrelated_commits,
            s.checks,
            s.repairs,
            ms(r.cpu),
            r.cpu_ticks,
            us(r.cpu / u32::try_from(s.own_commits.max(1)).unwrap_or(u32::MAX)),
            100.0 * r.cpu.as_secs_f64() / r.healer_wall.as_secs_f64(),
            r.healer_wall.as_secs_f64(),
            r.read,
            us(r.read_cpu / u32::try_from(r.read.max(1)).unwrap_or(u32::MAX)),
        );
    }
    for r in rows {
        assert_eq!(
            r.stats.repairs, 0,
            "{}: repairs with nothing outside",
            r.name
        );
        assert_eq!(r.stats.checks, 0, "{}: checks with nothing outside", r.name);
        assert_eq!(r.stats.outside_commits, 0, "{}: {:?}", r.name, r.stats);
        assert!(r.stats.own_commits > 0, "{}: no own commit seen", r.name);
        assert!(r.read > 0, "{}: the bare reader read nothing", r.name);
    }
}

/// A small xorshift generator (the trials' spacing and the legacy poll's phase).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64);
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    if d >= Duration::from_millis(1) {
        ms(d)
    } else {
        format!("{:.1} us", d.as_secs_f64() * 1e6)
    }
}

/// The `p`th percentile (nearest rank) of `samples`.
fn pct(samples: &[Duration], p: f64) -> Duration {
    let mut s = samples.to_vec();
    s.sort_unstable();
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

fn median(samples: &[Duration]) -> Duration {
    pct(samples, 50.0)
}

fn mean(samples: &[Duration]) -> Duration {
    samples.iter().sum::<Duration>() / u32::try_from(samples.len().max(1)).unwrap_or(u32::MAX)
}

fn median_f(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    v.get(v.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(f64::NAN)
}

fn max(samples: &[Duration]) -> Duration {
    samples.iter().copied().max().unwrap_or_default()
}

fn min(samples: &[Duration]) -> Duration {
    samples.iter().copied().min().unwrap_or_default()
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**NOT MET**" }
}

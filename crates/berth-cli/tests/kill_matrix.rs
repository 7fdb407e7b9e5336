//! The kill matrix (crash safety): a seeded random workload of mixed operations against a daemon
//! armed to SIGKILL itself at one (fail point, pass) pair after another, 100 distinct pairs over
//! every crash point of the controller. After each kill the daemon restarts on the same state and
//! the kernel is checked against the API with independent tools and real traffic: no leaked link,
//! address, namespace, firewall rule or held port; each sandbox's namespace holds what inspect
//! says; survivors keep their traffic and published ports; a removal the daemon had decided is
//! finished. Every failing kill is reported with its point, pass, operation and seed.
//!
//! Knobs (environment): `KILL_MATRIX_SEED` (replay a run), `KILL_MATRIX_KILLS` (default 100),
//! `KILL_MATRIX_OPS` (at least this many operations, default 1000), `KILL_MATRIX_MAX_N` (highest
//! pass to kill at, default 8).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod kill;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::time::Instant;

use berth_testhost::berth_netlink::Netns;
use berth_testhost::traffic::TcpBanner;
use kill::model::{Op, Snapshot};
use kill::workload::{Ended, Harness, libc_sigkill, log_tail};
use kill::{Rng, Schedule, Target, check, crash_points};

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    match std::env::var(key) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{key}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

/// One kill that happened.
#[derive(Debug)]
struct Kill {
    target: Target,
    /// The operation in flight, or the restart that was restoring.
    during: String,
    /// What the checks after the following restart found (new mismatches only).
    mismatches: Vec<String>,
}

/// A kill whose recovery is yet to be checked against the state before it.
struct Pending {
    before: Snapshot,
    op: Op,
    point: &'static str,
}

#[test]
fn kill_matrix() {
    let seed: u64 = env_or(
        "KILL_MATRIX_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    );
    let kills_wanted: usize = env_or("KILL_MATRIX_KILLS", 100);
    let min_ops: usize = env_or("KILL_MATRIX_OPS", 1000);
    let max_n: u32 = env_or("KILL_MATRIX_MAX_N", 8);
    eprintln!("kill matrix: seed {seed} (replay with KILL_MATRIX_SEED={seed})");
    let started = Instant::now();

    let mut h = Harness::new(seed);
    let mut sched_rng = Rng::new(seed ^ 0x6b69_6c6c);
    let mut sched = Schedule::new(&mut sched_rng, kills_wanted, max_n);

    // Before any kill the checks pass: otherwise they, not the daemon, are wrong.
    h.start(None).expect("the daemon starts");
    let mut failures = Vec::new();
    let ended = h.segment(None, 10, &mut failures);
    assert!(matches!(ended, Ended::NotReached), "{ended:?}");
    let snap = h.snapshot().unwrap();
    h.sync_banners(&snap);
    let base = check::all(&h.f, &snap, &h.peer, h.daemon_pid());
    assert!(
        base.is_empty() && failures.is_empty(),
        "the checks fail before any kill (seed {seed}):\n{}\n{}",
        base.join("\n"),
        failures.join("\n")
    );
    h.f.kill9();

    let mut kills: Vec<Kill> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut broken: Vec<String> = Vec::new();
    let mut pending: Option<Pending> = None;
    let mut known: BTreeSet<String> = BTreeSet::new();
    let mut seen_refusals: BTreeSet<String> = BTreeSet::new();
    // Kills since the last check (their recovery is what the next check sees).
    let mut unchecked_from = 0;
    loop {
        let target = if kills.len() < kills_wanted {
            sched.next()
        } else {
            None
        };
        if let Err(status) = h.start(target) {
            let Some(t) = target else {
                panic!(
                    "the unarmed daemon died while starting ({status}), seed {seed}:\n{}",
                    log_tail(&h.f.log(), 40)
                );
            };
            if status.signal() != Some(libc_sigkill()) {
                broken.push(format!(
                    "{}@{}: the daemon exited with {status} while restoring, not by the armed SIGKILL:\n{}",
                    t.0,
                    t.1,
                    log_tail(&h.f.log(), 20)
                ));
            }
            kills.push(Kill {
                target: t,
                during: "restart (restoring)".into(),
                mismatches: Vec::new(),
            });
            continue;
        }

        // The recovery of every kill since the last check.
        let snap = match h.snapshot() {
            Ok(s) => s,
            Err(e) => panic!("listing after a restart failed: {e} (seed {seed})"),
        };
        h.sync_banners(&snap);
        let found = check::all(&h.f, &snap, &h.peer, h.daemon_pid());
        let mut new: Vec<String> = found
            .iter()
            .filter(|m| !known.contains(&by_id(m, &snap)))
            .cloned()
            .collect();
        known = found.iter().map(|m| by_id(m, &snap)).collect();
        if let Some(p) = pending.take() {
            new.extend(kill::model::after_kill(&p.before, &p.op, p.point, &snap));
        }
        attribute(&mut kills[unchecked_from..], &new, &mut broken);
        unchecked_from = kills.len();

        let Some(t) = target else { break };
        let mut refused = Vec::new();
        let ended = h.segment(Some(t.0), 10 * t.1 as usize + 30, &mut refused);
        // Refusals happen on the state the previous kills left (each kind reported once).
        let last = kills.len().saturating_sub(1);
        for r in refused
            .into_iter()
            .filter(|r| seen_refusals.insert(generic(r)))
        {
            match kills.get_mut(last) {
                Some(k) => k.mismatches.push(format!("afterwards: {r}")),
                None => broken.push(format!("before any kill: {r}")),
            }
        }
        match ended {
            Ended::Killed { op, before } => {
                kills.push(Kill {
                    target: t,
                    during: op.to_string(),
                    mismatches: Vec::new(),
                });
                pending = Some(Pending {
                    before,
                    op,
                    point: t.0,
                });
            }
            Ended::NotReached => {
                h.f.kill9();
                let r = sched.missed(&mut sched_rng, t);
                notes.push(format!(
                    "{}@{} not reached; trying {}@{} instead",
                    t.0, t.1, r.0, r.1
                ));
            }
            Ended::Broken(msg) => {
                h.f.kill9();
                broken.push(format!("{}@{}: {msg}", t.0, t.1));
            }
        }
    }

    let ops_while_armed = h.ops;
    // Top up to the wanted number of operations (unarmed), then a last check.
    if h.ops < min_ops {
        let mut refused = Vec::new();
        let ended = h.segment(None, min_ops - h.ops, &mut refused);
        if !matches!(ended, Ended::NotReached) {
            broken.push(format!("the unarmed top-up ended with {ended:?}"));
        }
        broken.extend(
            refused
                .into_iter()
                .filter(|r| seen_refusals.insert(generic(r)))
                .map(|r| format!("after the last kill: {r}")),
        );
        if let Ok(snap) = h.snapshot() {
            h.sync_banners(&snap);
            let found = check::all(&h.f, &snap, &h.peer, h.daemon_pid());
            broken.extend(
                found
                    .into_iter()
                    .filter(|m| !known.contains(&by_id(m, &snap)))
                    .map(|m| format!("after the top-up: {m}")),
            );
        }
    }

    // The report.
    let recovered = kills.iter().filter(|k| k.mismatches.is_empty()).count();
    let mut hit: BTreeMap<&str, usize> = BTreeMap::new();
    for k in &kills {
        *hit.entry(k.target.0).or_default() += 1;
    }
    let uncovered: Vec<&str> = crash_points()
        .into_iter()
        .filter(|p| !hit.contains_key(p))
        .collect();
    eprintln!(
        "kill matrix: {} operations ({ops_while_armed} with the daemon armed), {} kills at {} points in {:.0?}",
        h.ops,
        kills.len(),
        hit.len(),
        started.elapsed()
    );
    for n in &notes {
        eprintln!("  note: {n}");
    }
    let mut report = Vec::new();
    for k in kills.iter().filter(|k| !k.mismatches.is_empty()) {
        report.push(format!(
            "FAILED {}@{} (seed {seed}) during {}:\n    {}",
            k.target.0,
            k.target.1,
            k.during,
            k.mismatches.join("\n    ")
        ));
    }
    report.extend(broken);
    if kills.len() < kills_wanted {
        report.push(format!(
            "only {} of {kills_wanted} kills happened",
            kills.len()
        ));
    }
    if kills_wanted >= crash_points().len() && !uncovered.is_empty() {
        report.push(format!("crash points never killed at: {uncovered:?}"));
    }
    for p in sched.unreachable() {
        report.push(format!("{p}: not reached in {} tries", kill::MAX_MISSES));
    }
    if h.ops < min_ops {
        report.push(format!("only {} of {min_ops} operations ran", h.ops));
    }
    let summary = format!(
        "kill matrix: {recovered}/{} kills recovered (seed {seed})",
        kills.len()
    );
    eprintln!("{summary}");
    assert!(report.is_empty(), "{summary}\n{}", report.join("\n"));
}

/// A mismatch with every sandbox name replaced by its id, so that a problem seen before and
/// after a rename counts once.
fn by_id(mismatch: &str, snap: &Snapshot) -> String {
    let ids: BTreeMap<&str, &str> = snap
        .sbs
        .iter()
        .map(|s| (s.name.as_str(), s.id.as_str()))
        .collect();
    let mut out = String::new();
    let mut word = String::new();
    for c in mismatch.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() {
            word.push(c);
            continue;
        }
        out.push_str(ids.get(word.as_str()).copied().unwrap_or(&word));
        word.clear();
        out.push(c);
    }
    out
}

/// A refusal with the workload's names (`n12`, `s3`, `r40`) and 64-hex ids blotted out, so that
/// one fault refusing many operations is reported once.
fn generic(refusal: &str) -> String {
    let body = refusal.split_once(": refused").map_or(refusal, |(_, b)| b);
    let mut out = String::new();
    let mut word = String::new();
    for c in body.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() {
            word.push(c);
            continue;
        }
        let workload_name = word.len() > 1
            && word.starts_with(['n', 's', 'r'])
            && word[1..].bytes().all(|b| b.is_ascii_digit());
        let id = word.len() == 64 && word.bytes().all(|b| b.is_ascii_hexdigit());
        out.push_str(if workload_name || id { "*" } else { &word });
        word.clear();
        out.push(c);
    }
    out
}

/// Gives the mismatches of a check to the kills whose recovery it checked: the first of them
/// (the operation's kill; any later ones were kills of the restarts after it).
fn attribute(kills: &mut [Kill], new: &[String], broken: &mut Vec<String>) {
    if new.is_empty() {
        return;
    }
    let Some((first, later)) = kills.split_first_mut() else {
        broken.extend(new.iter().map(|m| format!("without a kill: {m}")));
        return;
    };
    let later: Vec<String> = later
        .iter()
        .map(|k| format!("{}@{}", k.target.0, k.target.1))
        .collect();
    for m in new {
        if later.is_empty() {
            first.mismatches.push(m.clone());
        } else {
            first.mismatches.push(format!(
                "{m} (the restarts after it were killed too: {later:?})"
            ));
        }
    }
}

/// Each check of the matrix catches the fault it is for: injected by hand into a healthy daemon's
/// host, one at a time, each must be reported, and the check is clean again once it is undone.
#[test]
fn kill_matrix_checks_catch_injected_faults() {
    let mut h = Harness::new(7);
    h.start(None).expect("the daemon starts");
    for op in [
        Op::CreateNet {
            name: "n1".into(),
            subnet: "10.77.1.0/24".into(),
        },
        Op::CreateSb {
            name: "a".into(),
            net: "n1".into(),
            port: Some(20001),
        },
        Op::CreateSb {
            name: "b".into(),
            net: "n1".into(),
            port: None,
        },
        Op::CreateSb {
            name: "c".into(),
            net: "bridge".into(),
            port: None,
        },
    ] {
        let (status, body) = h.exec(&op).unwrap();
        assert!((200..300).contains(&status), "{op}: {status} {body}");
    }
    let snap = h.snapshot().unwrap();
    h.sync_banners(&snap);
    let run = |h: &Harness| check::all(&h.f, &snap, &h.peer, h.daemon_pid());
    let clean = run(&h);
    assert!(
        clean.is_empty(),
        "a healthy daemon fails the checks:\n{}",
        clean.join("\n")
    );
    let caught = |h: &Harness, what: &str, needle: &str| {
        let found = run(h);
        assert!(
            found.iter().any(|m| m.contains(needle)),
            "{what}: not caught (no mismatch contains {needle:?}):\n{}",
            found.join("\n")
        );
        eprintln!("caught {what}: {}", found.join(" | "));
    };
    let n1 = snap.net("n1").unwrap();
    let bridge = n1.bridge.clone().unwrap();
    let (a, b, c) = (
        snap.sb("a").unwrap(),
        snap.sb("b").unwrap(),
        snap.sb("c").unwrap(),
    );

    host(
        &h,
        &[
            "ip",
            "link",
            "add",
            "berth0123456789",
            "type",
            "veth",
            "peer",
            "name",
            "berth9876543210",
        ],
    );
    caught(&h, "a leaked veth", "leaked link berth0123456789");
    host(&h, &["ip", "link", "del", "berth0123456789"]);

    host(
        &h,
        &["ip", "link", "add", "br-0123456789ab", "type", "bridge"],
    );
    host(
        &h,
        &[
            "ip",
            "addr",
            "add",
            "10.250.0.1/24",
            "dev",
            "br-0123456789ab",
        ],
    );
    caught(&h, "a leaked bridge", "leaked link br-0123456789ab");
    host(&h, &["ip", "link", "del", "br-0123456789ab"]);

    host(&h, &["ip", "addr", "add", "10.77.1.200/24", "dev", &bridge]);
    caught(
        &h,
        "a leaked address on a bridge",
        &format!("bridge {bridge} has addresses"),
    );
    host(&h, &["ip", "addr", "del", "10.77.1.200/24", "dev", &bridge]);

    let netns_dir = h.f.dir.path().join("run").join("netns");
    drop(Netns::create_in(&netns_dir, "0badc0de").unwrap());
    caught(&h, "a leaked namespace", "leaked namespace");
    Netns::delete_named_in(&netns_dir, "0badc0de").unwrap();

    let dnat = [
        "-t",
        "nat",
        "BERTH-DNAT",
        "-p",
        "tcp",
        "--dport",
        "29999",
        "-j",
        "DNAT",
        "--to-destination",
        "10.77.1.9:80",
    ];
    let with = |verb: &'static str| -> Vec<&'static str> {
        let mut v = vec!["iptables", dnat[0], dnat[1], verb];
        v.extend_from_slice(&dnat[2..]);
        v
    };
    host(&h, &with("-A"));
    caught(&h, "a leaked DNAT rule", "leaked DNAT rule: 29999");
    host(&h, &with("-D"));

    host(
        &h,
        &[
            "iptables",
            "-A",
            "FORWARD",
            "-o",
            "br-0000000000aa",
            "-j",
            "ACCEPT",
        ],
    );
    caught(&h, "a leaked rule of a gone bridge", "br-0000000000aa");
    host(
        &h,
        &[
            "iptables",
            "-D",
            "FORWARD",
            "-o",
            "br-0000000000aa",
            "-j",
            "ACCEPT",
        ],
    );

    let save = h.f.host.run("iptables-save", &["-t", "nat"]).unwrap();
    let rule = save
        .lines()
        .find(|l| l.contains("--dport 20001") && l.contains("-j DNAT"))
        .expect("the DNAT rule of port 20001")
        .trim_start_matches("-A ")
        .to_owned();
    let words: Vec<&str> = rule.split_whitespace().collect();
    let mut del = vec!["iptables", "-t", "nat", "-D"];
    del.extend(&words);
    host(&h, &del);
    caught(&h, "a lost DNAT rule", "no DNAT rule for port 20001");
    let mut add = vec!["iptables", "-t", "nat", "-A"];
    add.extend(&words);
    host(&h, &add);

    let stray = TcpBanner::start(h.f.host.netns(), "0.0.0.0:29998".parse().unwrap(), "x").unwrap();
    caught(&h, "a port held without a publication", ":29998");
    drop(stray);

    let ns_b = Netns::open(&b.key).unwrap();
    let in_b = |args: &[&str]| {
        let st = ns_b.command(args[0]).args(&args[1..]).status().unwrap();
        assert!(st.success(), "{args:?}");
    };
    in_b(&["ip", "addr", "add", "10.77.1.222/24", "dev", "eth0"]);
    caught(
        &h,
        "an address inspect does not list",
        "sandbox b: eth0 has addresses",
    );
    in_b(&["ip", "addr", "del", "10.77.1.222/24", "dev", "eth0"]);

    in_b(&["iptables", "-A", "INPUT", "-p", "icmp", "-j", "DROP"]);
    caught(&h, "lost traffic between peers", "cannot ping sandbox b");
    in_b(&["iptables", "-D", "INPUT", "-p", "icmp", "-j", "DROP"]);

    let ns_a = Netns::open(&a.key).unwrap();
    let in_a = |args: &[&str]| {
        let st = ns_a.command(args[0]).args(&args[1..]).status().unwrap();
        assert!(st.success(), "{args:?}");
    };
    in_a(&["iptables", "-I", "OUTPUT", "-d", "127.0.0.11", "-j", "DROP"]);
    caught(
        &h,
        "a silent embedded DNS",
        "sandbox a: the embedded DNS does not resolve b",
    );
    in_a(&["iptables", "-D", "OUTPUT", "-d", "127.0.0.11", "-j", "DROP"]);

    assert!(h.drop_banner(&a.id));
    caught(
        &h,
        "a published port that does not answer",
        "published port 20001 of sandbox a",
    );
    h.sync_banners(&snap);

    let clean = run(&h);
    assert!(
        clean.is_empty(),
        "not clean after undoing the faults:\n{}",
        clean.join("\n")
    );

    let veth_c = c.eps["bridge"].host_veth();
    host(&h, &["ip", "link", "del", &veth_c]);
    caught(
        &h,
        "a lost veth of an endpoint",
        &format!("veth {veth_c} of endpoint c on bridge is missing"),
    );
    let ns_c = Netns::open(&c.key).unwrap();
    let st = ns_c
        .command("ip")
        .args(["link", "set", "lo", "down"])
        .status()
        .unwrap();
    assert!(st.success());
    caught(
        &h,
        "a sandbox with loopback down",
        "sandbox c: loopback is down",
    );
}

/// Runs a program with arguments in the test host's namespace; it must succeed.
fn host(h: &Harness, args: &[&str]) {
    h.f.host.run(args[0], &args[1..]).unwrap();
}

/// The comparison of the state before and after a killed operation flags what changed.
#[test]
fn after_kill_flags_changes_and_unfinished_removals() {
    use kill::model::{Ep, Sb};
    let ep = |net: &str, ip: &str| Ep {
        network: net.into(),
        network_id: format!("{net}-id"),
        endpoint_id: format!("{ip}-ep"),
        ip: ip.into(),
        prefix: 24,
        gateway: "10.0.0.1".into(),
        mac: String::new(),
        ifname: "eth0".into(),
    };
    let sb = |name: &str, ip: &str| Sb {
        id: format!("{name}-id"),
        name: name.into(),
        key: format!("/run/{name}"),
        eps: [("n1".to_owned(), ep("n1", ip))].into(),
        ports: Vec::new(),
    };
    let before = Snapshot {
        nets: Vec::new(),
        sbs: vec![sb("a", "10.0.0.2"), sb("b", "10.0.0.3")],
    };
    let rm_a = Op::RemoveSb { name: "a".into() };
    // a's removal finished, b untouched: nothing to say.
    let after = Snapshot {
        nets: Vec::new(),
        sbs: vec![sb("b", "10.0.0.3")],
    };
    assert!(kill::model::after_kill(&before, &rm_a, "sandbox.remove.netns", &after).is_empty());
    // a still there after a kill past its intent: unfinished.
    let m = kill::model::after_kill(&before, &rm_a, "disconnect.leave", &before);
    assert!(m.iter().any(|m| m.contains("did not finish")), "{m:?}");
    // ... but at the intent point itself both outcomes are allowed.
    assert!(kill::model::after_kill(&before, &rm_a, "sandbox.remove.intent", &before).is_empty());
    // b changed (its address) although the operation was on a.
    let changed = Snapshot {
        nets: Vec::new(),
        sbs: vec![sb("b", "10.0.0.9")],
    };
    let m = kill::model::after_kill(&before, &rm_a, "sandbox.remove.netns", &changed);
    assert!(m.iter().any(|m| m.contains("sandbox b changed")), "{m:?}");
    // b vanished.
    let m = kill::model::after_kill(&before, &rm_a, "sandbox.remove.netns", &Snapshot::default());
    assert!(m.iter().any(|m| m.contains("sandbox b vanished")), "{m:?}");
}

//! Kernel tests of the nf_tables change monitor, as root, inside throwaway namespaces: commits made
//! through berth, by `nft`, by `iptables-nft`, a flush of the whole ruleset, bursts that may
//! overflow the socket, and the isolation between namespaces.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use berth_netlink::nftables::{
    Batch, Change, ChangeKind, Commit, Family, MAX_CHANGES_PER_COMMIT, NftHandle, NftMonitor,
    Notice, SetElement,
};
use berth_testhost::TestHost;
use common::host;

const WAIT: Duration = Duration::from_secs(5);

fn monitor(h: &TestHost) -> NftMonitor {
    NftMonitor::open(h.netns()).expect("subscribing to nf_tables notifications in the test host")
}

fn nft_handle(h: &TestHost) -> NftHandle {
    NftHandle::open(h.netns()).expect("opening an nfnetlink socket in the test namespace")
}

/// The next notice, which must be a commit.
fn next_commit(m: &mut NftMonitor) -> Commit {
    match m.next(WAIT).expect("reading notifications") {
        Some(Notice::Commit(c)) => c,
        other => panic!("expected a commit within {WAIT:?}, got {other:?}"),
    }
}

/// Asserts that nothing more arrives within `wait`.
fn assert_quiet(m: &mut NftMonitor, wait: Duration) {
    if let Some(n) = m.next(wait).expect("reading notifications") {
        panic!("expected no notification, got {n:?}");
    }
}

/// Runs `program args...` inside the host's namespace and returns its pid; panics if it fails.
fn run_with_pid(h: &TestHost, program: &str, args: &[&str]) -> u32 {
    let mut child = h
        .command(program)
        .args(args)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    let pid = child.id();
    let status = child.wait().unwrap();
    assert!(status.success(), "{program} {args:?}: {status}");
    pid
}

fn kinds(c: &Commit) -> Vec<ChangeKind> {
    c.changes.iter().map(|x| x.kind).collect()
}

fn change(kind: ChangeKind, family: Family, table: &str, chain: Option<&str>) -> Change {
    Change {
        kind,
        family: family.number(),
        table: table.into(),
        chain: chain.map(Into::into),
        set: None,
    }
}

fn gettid() -> u32 {
    nix::unistd::gettid().as_raw() as u32
}

/// (1) A commit made through berth from this process: its table, chain and rule, and the
/// committing thread's id and name (the kernel reports the thread, not the process).
#[test]
fn own_commit_names_its_objects_and_the_committing_thread() {
    let h = host();
    let mut m = monitor(&h);
    let nft = nft_handle(&h);
    let mut batch = Batch::new();
    batch
        .add_table(Family::Inet, "berth")
        .add_chain(Family::Inet, "berth", "fwd")
        .add_rule(Family::Inet, "berth", "fwd", &[]);
    nft.commit(&batch).unwrap();
    let c = next_commit(&mut m);
    assert_eq!(
        c.changes,
        [
            change(ChangeKind::NewTable, Family::Inet, "berth", None),
            change(ChangeKind::NewChain, Family::Inet, "berth", Some("fwd")),
            change(ChangeKind::NewRule, Family::Inet, "berth", Some("fwd")),
        ]
    );
    assert_eq!(c.pid, Some(gettid()), "the committing thread's id");
    assert!(c.is_from_this_process());
    assert!(!c.truncated);
    let own_name: String = std::thread::current()
        .name()
        .unwrap()
        .chars()
        .take(15)
        .collect();
    assert_eq!(c.process.as_deref(), Some(own_name.as_str()));

    // From another (named) thread: its id and name, recognised as this process's while the
    // thread lives. From the main thread the id would be the process id.
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let d = std::thread::scope(|s| {
        let nft = &nft;
        std::thread::Builder::new()
            .name("berth-fw-commit".into())
            .spawn_scoped(s, move || {
                let mut b = Batch::new();
                b.delete_table(Family::Inet, "berth");
                nft.commit(&b).unwrap();
                tid_tx.send(gettid()).unwrap();
                let _ = done_rx.recv();
            })
            .unwrap();
        let tid = tid_rx.recv().unwrap();
        let d = next_commit(&mut m);
        assert_eq!((d.pid, d.generation), (Some(tid), c.generation + 1));
        assert_ne!(d.pid, Some(std::process::id()));
        assert!(d.is_from_this_process(), "the committing thread is alive");
        done_tx.send(()).unwrap();
        d
    });
    assert_eq!(d.process.as_deref(), Some("berth-fw-commit"));
    assert!(
        !d.is_from_this_process(),
        "the committing thread has exited"
    );
    assert_eq!(
        kinds(&d),
        [
            ChangeKind::DelRule,
            ChangeKind::DelChain,
            ChangeKind::DelTable
        ]
    );
    assert_quiet(&mut m, Duration::from_millis(100));
}

/// (2) `nft` run inside the namespace: one commit per command, named "nft" with nft's pid.
#[test]
fn nft_commands_are_reported_with_their_pid_and_name() {
    let h = host();
    let mut m = monitor(&h);
    let steps: [(&[&str], Change); 3] = [
        (
            &["add", "table", "inet", "t"],
            change(ChangeKind::NewTable, Family::Inet, "t", None),
        ),
        (
            &[
                "add",
                "chain",
                "inet",
                "t",
                "c",
                "{ type filter hook forward priority 0; }",
            ],
            change(ChangeKind::NewChain, Family::Inet, "t", Some("c")),
        ),
        (
            &["add", "rule", "inet", "t", "c", "counter", "accept"],
            change(ChangeKind::NewRule, Family::Inet, "t", Some("c")),
        ),
    ];
    let mut last_generation = None;
    for (args, expected) in steps {
        let pid = run_with_pid(&h, "nft", args);
        let c = next_commit(&mut m);
        assert_eq!(c.changes, [expected], "nft {args:?}");
        assert_eq!(c.pid, Some(pid));
        assert_eq!(c.process.as_deref(), Some("nft"));
        assert!(!c.is_from_this_process());
        if let Some(g) = last_generation {
            assert_eq!(c.generation, g + 1, "consecutive generations");
        }
        last_generation = Some(c.generation);
    }
    assert_quiet(&mut m, Duration::from_millis(100));
}

/// The `iptables` on PATH when it is the nf_tables variant, else `iptables-nft`.
fn iptables_nft_program() -> &'static str {
    let version = Command::new("iptables").arg("--version").output();
    match version {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains("nf_tables") => "iptables",
        _ => "iptables-nft",
    }
}

/// (3) `iptables-nft` commits: table `filter`/`nat` of family ip, chain names, process name.
#[test]
fn iptables_nft_commands_name_tables_chains_and_tool() {
    let h = host();
    let mut m = monitor(&h);
    let pid = run_with_pid(
        &h,
        "iptables-nft",
        &["-A", "FORWARD", "-s", "10.0.0.0/8", "-j", "ACCEPT"],
    );
    let c = next_commit(&mut m);
    assert_eq!(
        (c.pid, c.process.as_deref()),
        (Some(pid), Some("iptables-nft"))
    );
    assert_eq!(
        c.changes,
        [
            change(ChangeKind::NewTable, Family::Ip, "filter", None),
            change(ChangeKind::NewChain, Family::Ip, "filter", Some("FORWARD")),
            change(ChangeKind::NewRule, Family::Ip, "filter", Some("FORWARD")),
        ]
    );
    run_with_pid(&h, "iptables-nft", &["-t", "nat", "-N", "BERTH-DNAT"]);
    let c = next_commit(&mut m);
    assert!(c.changes.contains(&change(
        ChangeKind::NewChain,
        Family::Ip,
        "nat",
        Some("BERTH-DNAT")
    )));
    let dnat = [
        "-t",
        "nat",
        "-A",
        "BERTH-DNAT",
        "-p",
        "tcp",
        "--dport",
        "8080",
        "-j",
        "DNAT",
    ];
    run_with_pid(
        &h,
        "iptables-nft",
        &[&dnat[..], &["--to-destination", "172.17.0.2:80"]].concat(),
    );
    let c = next_commit(&mut m);
    assert_eq!(
        c.changes,
        [change(
            ChangeKind::NewRule,
            Family::Ip,
            "nat",
            Some("BERTH-DNAT")
        )]
    );

    let program = iptables_nft_program();
    let pid = run_with_pid(&h, program, &["-t", "nat", "-F"]);
    let c = next_commit(&mut m);
    assert_eq!((c.pid, c.process.as_deref()), (Some(pid), Some(program)));
    assert_eq!(
        c.changes,
        [change(
            ChangeKind::DelRule,
            Family::Ip,
            "nat",
            Some("BERTH-DNAT")
        )]
    );
    assert_quiet(&mut m, Duration::from_millis(100));
}

/// (4) `nft flush ruleset`: one commit deleting every rule, set, chain and table.
#[test]
fn flush_ruleset_reports_every_deletion() {
    let h = host();
    h.run_with_input(
        "nft",
        &["-f", "-"],
        "add table inet berth
add chain inet berth forward { type filter hook forward priority 0; }
add chain inet berth isolate
add rule inet berth forward jump isolate
add set inet berth ports { type inet_service; }
add element inet berth ports { 80, 443 }
",
    )
    .unwrap();
    h.run(
        "iptables-nft",
        &["-t", "nat", "-A", "POSTROUTING", "-j", "MASQUERADE"],
    )
    .unwrap();
    let mut m = monitor(&h);
    let pid = run_with_pid(&h, "nft", &["flush", "ruleset"]);
    let c = next_commit(&mut m);
    assert_eq!((c.pid, c.process.as_deref()), (Some(pid), Some("nft")));
    assert!(
        c.changes.iter().all(|x| x.kind.is_deletion()),
        "{:?}",
        c.changes
    );
    for expected in [
        change(ChangeKind::DelRule, Family::Inet, "berth", Some("forward")),
        change(ChangeKind::DelChain, Family::Inet, "berth", Some("forward")),
        change(ChangeKind::DelChain, Family::Inet, "berth", Some("isolate")),
        change(ChangeKind::DelTable, Family::Inet, "berth", None),
        change(ChangeKind::DelRule, Family::Ip, "nat", Some("POSTROUTING")),
        change(ChangeKind::DelChain, Family::Ip, "nat", Some("POSTROUTING")),
        change(ChangeKind::DelTable, Family::Ip, "nat", None),
        Change {
            set: Some("ports".into()),
            ..change(ChangeKind::DelSet, Family::Inet, "berth", None)
        },
    ] {
        assert!(
            c.changes.contains(&expected),
            "{expected:?} missing from {:?}",
            c.changes
        );
    }
    assert_quiet(&mut m, Duration::from_millis(100));
}

fn port_elements(range: std::ops::Range<u16>) -> Vec<SetElement> {
    range
        .map(|p| SetElement::key(p.to_be_bytes().to_vec()))
        .collect()
}

fn add_port_set(h: &TestHost) {
    h.run_with_input(
        "nft",
        &["-f", "-"],
        "add table inet burst\nadd set inet burst ports { type inet_service; }\n",
    )
    .unwrap();
}

/// A commit that creates table `name`, and the check that the monitor reports exactly it.
fn marker(nft: &NftHandle, m: &mut NftMonitor, name: &str) {
    let mut b = Batch::new();
    b.add_table(Family::Inet, name);
    nft.commit(&b).unwrap();
    loop {
        match m.next(WAIT).unwrap() {
            Some(Notice::Commit(c)) if c.changes.iter().any(|x| x.table == name) => {
                assert_eq!(
                    c.changes,
                    [change(ChangeKind::NewTable, Family::Inet, name, None)]
                );
                return;
            }
            Some(_) => {}
            None => panic!("the marker commit {name} was not reported"),
        }
    }
}

/// (5) Bursts: 2,000 elements in one batch; 1,000 small commits made while nobody reads; and a
/// buffer too small for a burst, which must report an overrun and then resume cleanly.
#[test]
fn bursts_are_delivered_whole_or_reported_as_overruns() {
    let h = host();
    add_port_set(&h);
    let nft = nft_handle(&h);
    let mut m = monitor(&h);
    eprintln!(
        "receive buffer granted: {} bytes",
        m.receive_buffer().unwrap()
    );

    let mut b = Batch::new();
    b.add_elements(Family::Inet, "burst", "ports", &port_elements(1..2001));
    nft.commit(&b).unwrap();
    match m.next(WAIT).unwrap() {
        Some(Notice::Commit(c)) => {
            assert_eq!(c.changes.len(), 2000);
            assert!(c.changes.iter().all(|x| x.kind == ChangeKind::NewElem
                && x.table == "burst"
                && x.set.as_deref() == Some("ports")));
        }
        Some(Notice::Overrun) => eprintln!("2,000 elements in one commit overran the buffer"),
        None => panic!("the 2,000-element commit was not reported"),
    }

    // 12,000 elements in one transaction: the commit lists 10,000 and says it is truncated.
    let mut b = Batch::new();
    for first in (10_001..22_001u16).step_by(2000) {
        b.add_elements(
            Family::Inet,
            "burst",
            "ports",
            &port_elements(first..first + 2000),
        );
    }
    nft.commit(&b).unwrap();
    match m.next(WAIT).unwrap() {
        Some(Notice::Commit(c)) => {
            assert_eq!(c.changes.len(), MAX_CHANGES_PER_COMMIT);
            assert!(c.truncated);
        }
        Some(Notice::Overrun) => eprintln!("12,000 elements in one commit overran the buffer"),
        None => panic!("the 12,000-element commit was not reported"),
    }

    let started = Instant::now();
    for port in 2001..3001u16 {
        let mut b = Batch::new();
        b.add_elements(
            Family::Inet,
            "burst",
            "ports",
            &port_elements(port..port + 1),
        );
        nft.commit(&b).unwrap();
    }
    let commit_time = started.elapsed();
    let (mut commits, mut overruns, mut last_gen) = (0, 0, None::<u32>);
    while let Some(n) = m.next(Duration::from_millis(300)).unwrap() {
        match n {
            Notice::Commit(c) => {
                assert!(c.changes.len() <= 1, "{c:?}");
                if overruns == 0 {
                    assert_eq!(c.changes.len(), 1);
                    if let Some(g) = last_gen {
                        assert_eq!(c.generation, g + 1, "a commit went missing without overrun");
                    }
                }
                last_gen = Some(c.generation);
                commits += 1;
            }
            Notice::Overrun => overruns += 1,
        }
    }
    eprintln!(
        "1,000 commits in {commit_time:?}: {commits} delivered, {overruns} overrun notice(s)"
    );
    assert!(
        overruns > 0 || commits == 1000,
        "{commits} commits, no overrun"
    );
    marker(&nft, &mut m, "after-burst");

    // A 16 KiB buffer cannot hold 300 commits' notifications.
    let mut small = NftMonitor::open_with_buffer(h.netns(), 16 * 1024).unwrap();
    for port in 3001..3301u16 {
        let mut b = Batch::new();
        b.delete_elements(
            Family::Inet,
            "burst",
            "ports",
            &port_elements(port - 1000..port - 999),
        );
        nft.commit(&b).unwrap();
    }
    let mut seen = Vec::new();
    while let Some(n) = small.next(Duration::from_millis(300)).unwrap() {
        seen.push(n);
    }
    assert_eq!(
        seen.first(),
        Some(&Notice::Overrun),
        "{} notices",
        seen.len()
    );
    eprintln!(
        "small buffer: {} notice(s) after the overrun",
        seen.len() - 1
    );
    marker(&nft, &mut small, "after-overrun");
}

/// (6) A monitor sees its own namespace only.
#[test]
fn changes_in_other_namespaces_are_not_seen() {
    let a = host();
    let b = host();
    let mut m = monitor(&a);
    let mut other = monitor(&b);
    let nft_b = nft_handle(&b);
    let mut batch = Batch::new();
    batch.add_table(Family::Inet, "elsewhere");
    nft_b.commit(&batch).unwrap();
    run_with_pid(&b, "nft", &["add", "table", "ip", "elsewhere2"]);
    assert_eq!(next_commit(&mut other).changes[0].table, "elsewhere");
    assert_eq!(next_commit(&mut other).changes[0].table, "elsewhere2");
    assert_quiet(&mut m, Duration::from_millis(300));
    marker(&nft_handle(&a), &mut m, "here");
    assert_quiet(&mut m, Duration::from_millis(100));
}

/// Waiting honours the timeout, a zero timeout only reads what waits, and closing is quick.
#[test]
fn timeouts_and_close_are_prompt() {
    let h = host();
    let mut m = monitor(&h);
    let started = Instant::now();
    assert_quiet(&mut m, Duration::from_millis(200));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(1),
        "{waited:?}"
    );
    assert!(m.next(Duration::ZERO).unwrap().is_none());
    run_with_pid(&h, "nft", &["add", "table", "inet", "t"]);
    let deadline = Instant::now() + WAIT;
    let c = loop {
        if let Some(Notice::Commit(c)) = m.next(Duration::ZERO).unwrap() {
            break c;
        }
        assert!(Instant::now() < deadline, "the commit never arrived");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(c.changes[0].table, "t");
    let started = Instant::now();
    drop(m);
    eprintln!("closing a monitor took {:?}", started.elapsed());
}

//! The etcd backend against a real etcd (Debian's etcd-server) running in a test namespace: the
//! conformance suite (one test per check), compaction, an etcd that dies and comes back, the
//! network namespace the connections use, and round-trip times. Run as root.
//!
//! The suite's checks share one etcd, started by the first test that needs it, in a test
//! namespace of its own: each store they make gets a fresh root, so stores do not see each
//! other's keys, but they do share etcd's revisions, so the tests that use it run one at a time
//! (the checks count revisions). A static is never dropped, so the shared etcd is stopped (and its
//! namespace and data deleted) by an `atexit` handler, which runs when the test harness exits,
//! whether tests passed or failed. The test that kills etcd has one of its own.
#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use berth_store::{
    Error, EtcdConfig, EtcdStore, Event, Expect, KvStore, Poll, Txn, Watch, conformance,
};
use berth_testhost::TestHost;
use berth_testhost::etcd::Etcd;

/// The request timeout of the stores these tests make.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How late after the request timeout a failure may come.
const SLACK: Duration = Duration::from_secs(1);

/// An etcd in a test host. Fields drop in order: etcd before its namespace.
struct Server {
    etcd: Etcd,
    host: TestHost,
}

impl Server {
    fn start() -> Server {
        let (host, etcd) = Etcd::in_new_host().unwrap();
        Server { etcd, host }
    }

    /// A store on this server, connecting from inside its namespace, under a root of its own.
    fn store(&self) -> EtcdStore {
        static ROOTS: AtomicUsize = AtomicUsize::new(0);
        let root = format!("test-{}/", ROOTS.fetch_add(1, Ordering::Relaxed));
        EtcdStore::connect(self.config().with_root(root)).unwrap()
    }

    fn config(&self) -> EtcdConfig {
        let netns = std::fs::File::open(self.host.path()).unwrap();
        EtcdConfig::new([self.etcd.client_url()])
            .with_netns(netns.into())
            .with_request_timeout(TIMEOUT)
    }
}

/// The etcd the tests share, started on first use; stopped at exit.
static SHARED: Mutex<Option<Server>> = Mutex::new(None);
/// Held by each test for its whole run: one test at a time talks to etcd.
static SERIAL: Mutex<()> = Mutex::new(());

extern "C" fn stop_shared() {
    // Never unwind out of an atexit handler.
    let _ = std::panic::catch_unwind(|| {
        let server = SHARED.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(server);
    });
}

/// Takes the test lock and gives the shared server (starting it first if need be).
fn shared() -> (MutexGuard<'static, ()>, MutexGuard<'static, Option<Server>>) {
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut server = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if server.is_none() {
        static AT_EXIT: Once = Once::new();
        AT_EXIT.call_once(|| {
            // SAFETY: registers a plain function with no arguments; it only locks a mutex and
            // drops what it holds.
            let registered = unsafe { libc::atexit(stop_shared) };
            assert_eq!(registered, 0, "atexit refused the shared etcd's cleanup");
        });
        *server = Some(Server::start());
    }
    (serial, server)
}

/// Runs one conformance check on stores of the shared etcd.
fn check(check: conformance::Check) {
    let (_serial, server) = shared();
    let server = server.as_ref().unwrap();
    check(&|| Arc::new(server.store()) as Arc<dyn KvStore>);
}

macro_rules! suite {
    ($($check:ident),* $(,)?) => {
        /// The checks this file runs, to compare with the suite's list.
        const RUN: &[&str] = &[$(stringify!($check)),*];

        mod conformance_suite {
            $(
                #[test]
                fn $check() {
                    super::check(berth_store::conformance::$check);
                }
            )*
        }
    };
}

suite!(
    get_put_delete_and_revisions,
    compare_and_swap,
    transactions_are_all_or_nothing,
    invalid_keys_are_refused,
    list_is_ordered_and_consistent,
    concurrent_cas_has_one_winner,
    watch_delivers_live_changes,
    watch_replays_from_a_revision,
    watch_has_no_gap_or_duplicate,
    lease_expiry_deletes_keys,
    revoke_deletes_the_lease_keys,
    bad_leases_are_refused,
);

#[test]
fn every_check_of_the_suite_runs_here() {
    let listed: Vec<&str> = conformance::CHECKS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        listed, RUN,
        "conformance::CHECKS and this file's list differ"
    );
}

fn next(w: &Watch) -> Event {
    w.recv_timeout(Duration::from_secs(5))
        .expect("an event within 5 s")
}

fn assert_ends(w: &Watch) {
    let t = Instant::now();
    assert_eq!(
        w.poll(Duration::from_secs(2)),
        Poll::Ended,
        "the watch ends"
    );
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "the watch ends at once"
    );
}

/// (key, revision) of a Put.
fn put_of(e: &Event) -> (String, u64) {
    match e {
        Event::Put(entry) => (entry.key.clone(), entry.mod_revision),
        other => panic!("expected a Put, got {other:?}"),
    }
}

#[test]
fn compaction_is_seen_by_compact_revision_and_watches() {
    let (_serial, server) = shared();
    let s = server.as_ref().unwrap().store();
    let revs: Vec<u64> = (0..10)
        .map(|i| s.put(&format!("h/{i}"), b"x").unwrap())
        .collect();
    let r = revs[5];
    s.compact(r).unwrap();
    assert_eq!(
        s.compact_revision().unwrap(),
        r - 1,
        "the compact revision is the oldest readable one minus one"
    );
    for too_old in [revs[0], r - 2] {
        let w = s.watch("h/", too_old).unwrap();
        assert_eq!(
            next(&w),
            Event::Compacted {
                compact_revision: r - 1
            },
            "a watch from {too_old}, before the compaction at {r}"
        );
        assert_ends(&w);
    }
    let w = s.watch("h/", r - 1).unwrap();
    for (i, rev) in revs.iter().enumerate().skip(5) {
        assert_eq!(
            put_of(&next(&w)),
            (format!("h/{i}"), *rev),
            "a watch from the compact revision replays the rest"
        );
    }
    let live = s.put("h/live", b"x").unwrap();
    assert_eq!(
        put_of(&next(&w)),
        ("h/live".to_owned(), live),
        "then goes on"
    );
    assert_eq!(w.poll(Duration::from_millis(100)), Poll::Idle);
    // Compacting again, or at a revision already compacted, is etcd's business: it refuses.
    assert!(matches!(s.compact(r - 1), Err(Error::Backend { .. })));
}

/// Fails within the request timeout (plus slack) with `Unavailable` naming the store.
fn assert_unavailable<T: std::fmt::Debug>(
    what: &str,
    url: &str,
    f: impl FnOnce() -> berth_store::Result<T>,
) {
    let t = Instant::now();
    let r = f();
    let took = t.elapsed();
    match &r {
        Err(Error::Unavailable { store, .. }) => {
            assert!(
                store.contains(url),
                "{what}: the error names the store: {store}"
            )
        }
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
    assert!(
        took <= TIMEOUT + SLACK,
        "{what}: failed after {took:?}, more than the request timeout {TIMEOUT:?} + {SLACK:?}"
    );
}

#[test]
fn a_dead_etcd_fails_requests_and_watches_and_a_restarted_one_serves_again() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let server = Server::start();
    let url = server.etcd.client_url();
    let s = server.store();
    let start = s.revision().unwrap();
    let w = s.watch("k/", start).unwrap();
    let seen = s.put("k/before", b"1").unwrap();
    assert_eq!(put_of(&next(&w)), ("k/before".to_owned(), seen));

    // A server that accepts connections but never answers: the request timeout ends the wait.
    let pid = libc::pid_t::try_from(server.etcd.pid().unwrap()).unwrap();
    // SAFETY: signals our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    assert_unavailable("get from a stopped etcd", &url, || s.get("k/before"));
    assert_unavailable("watch on a stopped etcd", &url, || s.watch("k/", seen));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    assert_eq!(s.get("k/before").unwrap().unwrap().mod_revision, seen);

    server.etcd.kill().unwrap();
    assert_unavailable("get", &url, || s.get("k/before"));
    assert_unavailable("commit", &url, || {
        s.commit(
            Txn::new()
                .when("k/before", Expect::Present)
                .put("k/x", b"x".to_vec()),
        )
    });
    assert_unavailable("list", &url, || s.list("k/"));
    assert_unavailable("watch", &url, || s.watch("k/", seen));
    assert_unavailable("grant", &url, || s.grant_lease(Duration::from_secs(5)));
    match w.recv_timeout(TIMEOUT + SLACK) {
        Some(Event::Error { message }) => {
            assert!(
                message.contains(&url),
                "the error names the store: {message}"
            )
        }
        other => panic!("an open watch is told the stream broke, got {other:?}"),
    }
    assert_ends(&w);

    server.etcd.restart().unwrap();
    // The client reconnects by itself: the first request after the restart works.
    let r1 = s.put("k/after-1", b"2").unwrap();
    let r2 = s
        .commit(
            Txn::new()
                .when("k/before", Expect::Revision(seen))
                .put("k/after-2", b"3".to_vec())
                .delete("k/before"),
        )
        .unwrap();
    assert_eq!(s.get("k/after-1").unwrap().unwrap().mod_revision, r1);
    let again = s.watch("k/", seen).unwrap();
    assert_eq!(put_of(&next(&again)), ("k/after-1".to_owned(), r1));
    assert_eq!(put_of(&next(&again)), ("k/after-2".to_owned(), r2));
    assert_eq!(
        next(&again),
        Event::Delete {
            key: "k/before".to_owned(),
            revision: r2
        }
    );
    assert_eq!(
        again.poll(Duration::from_millis(300)),
        Poll::Idle,
        "what happened meanwhile, exactly once"
    );
}

/// Whether the calling thread is in the network namespace at `path`.
fn thread_in(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::metadata(path).unwrap();
    let me = std::fs::metadata("/proc/thread-self/ns/net").unwrap();
    (ns.dev(), ns.ino()) == (me.dev(), me.ino())
}

#[test]
fn connections_live_in_the_namespace_given() {
    let (_serial, server) = shared();
    let server = server.as_ref().unwrap();
    let url = server.etcd.client_url();
    assert!(!thread_in(&server.host.path()));
    // etcd listens on 127.0.0.1:2379 inside its namespace only: from this one, nothing answers
    // there (unless something else of this machine listens on it).
    let outside = EtcdConfig::new([url.clone()]).with_request_timeout(TIMEOUT);
    assert_unavailable("connect from the test's own namespace", &url, || {
        EtcdStore::connect(outside)
    });
    let s = server.store();
    assert!(
        !thread_in(&server.host.path()),
        "the calling thread stays in its own namespace"
    );
    let rev = s.put("here", b"x").unwrap();
    assert_eq!(s.get("here").unwrap().unwrap().mod_revision, rev);
    assert!(s.describe().contains(&url), "{}", s.describe());
}

/// One sample of etcd's count of server-side watchers (a Prometheus gauge on /metrics), read
/// from inside its namespace.
fn etcd_watchers(server: &Server) -> u64 {
    use std::io::{Read, Write};
    let url = server.etcd.client_url();
    let addr = url.trim_start_matches("http://").to_owned();
    let body = server
        .host
        .exec(move || {
            let mut c = std::net::TcpStream::connect(&addr).unwrap();
            write!(
                c,
                "GET /metrics HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut body = String::new();
            c.read_to_string(&mut body).unwrap();
            body
        })
        .unwrap();
    let line = body
        .lines()
        .find(|l| l.starts_with("etcd_debugging_mvcc_watcher_total "))
        .expect("etcd reports its watchers");
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap() as u64
}

#[test]
fn dropping_a_watch_cancels_it_in_etcd() {
    let (_serial, server) = shared();
    let server = server.as_ref().unwrap();
    let s = server.store();
    let before = etcd_watchers(server);
    let rev = s.revision().unwrap();
    let watches: Vec<Watch> = (0..5).map(|_| s.watch("w/", rev).unwrap()).collect();
    assert_eq!(
        etcd_watchers(server),
        before + 5,
        "etcd holds a watcher per watch"
    );
    drop(watches);
    let t = Instant::now();
    while etcd_watchers(server) != before {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "dropped watches are canceled in etcd"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Dropping the store ends the watches it still has.
    let w = s.watch("w/", rev).unwrap();
    drop(s);
    assert_eq!(w.poll(Duration::from_secs(1)), Poll::Ended);
}

#[test]
fn leases_are_rounded_up_to_etcds_whole_seconds() {
    let (_serial, server) = shared();
    let s = server.as_ref().unwrap().store();
    let lease = s.grant_lease(Duration::from_millis(2500)).unwrap();
    assert_eq!(s.keep_alive(lease).unwrap(), Duration::from_secs(3));
    // A lease granted by another store (of the same cluster) is kept alive by this one too.
    let other = server.as_ref().unwrap().store();
    assert_eq!(other.keep_alive(lease).unwrap(), Duration::from_secs(3));
    s.revoke_lease(lease).unwrap();
    assert!(matches!(
        other.keep_alive(lease),
        Err(Error::LeaseNotFound { .. })
    ));
}

/// Rough round-trip times against the local etcd (printed; run with --nocapture to see them).
#[test]
fn round_trip_times() {
    let (_serial, server) = shared();
    let s = server.as_ref().unwrap().store();
    const N: u32 = 200;
    let time = |f: &dyn Fn(u32)| {
        let t = Instant::now();
        for i in 0..N {
            f(i);
        }
        t.elapsed() / N
    };
    let put = time(&|i| {
        s.put(&format!("rt/{i}"), b"value").unwrap();
    });
    let get = time(&|i| {
        s.get(&format!("rt/{i}")).unwrap().unwrap();
    });
    let commit = time(&|i| {
        let key = format!("rt/{i}");
        let rev = s.get(&key).unwrap().unwrap().mod_revision;
        s.commit(
            Txn::new()
                .when(key.clone(), Expect::Revision(rev))
                .put(key, b"v2".to_vec())
                .put(format!("rt-other/{i}"), b"x".to_vec()),
        )
        .unwrap();
    }) - get;
    eprintln!(
        "etcd round trips: get {get:?}, put {put:?}, commit (2 puts, 1 condition) {commit:?}"
    );
    for (what, t) in [("get", get), ("put", put), ("commit", commit)] {
        assert!(t < Duration::from_millis(100), "{what} took {t:?}");
    }
}

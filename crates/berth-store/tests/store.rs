//! Behaviour every backend must share, run against both; the redb backend checked against the
//! in-memory model with proptest; durability across reopen and `kill -9`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Command;
use std::time::Duration;

use berth_store::{Error, Event, Expect, KvStore, MemoryStore, RedbStore, Txn};
use proptest::prelude::*;

fn backends() -> Vec<(Box<dyn KvStore>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbStore::open(dir.path().join("state.redb")).unwrap();
    vec![
        (Box::new(MemoryStore::new()), None),
        (Box::new(redb), Some(dir)),
    ]
}

#[test]
fn put_get_list_delete_and_revisions() {
    for (s, _dir) in backends() {
        assert_eq!(s.revision().unwrap(), 0);
        assert_eq!(s.get("networks/a").unwrap(), None);
        let r1 = s.put("networks/a", b"1").unwrap();
        let r2 = s.put("networks/b", b"2").unwrap();
        let r3 = s.put("sandboxes/x", b"3").unwrap();
        assert_eq!((r1, r2, r3), (1, 2, 3));
        let r4 = s.put("networks/a", b"1bis").unwrap();
        let a = s.get("networks/a").unwrap().unwrap();
        assert_eq!(a.value, b"1bis");
        assert_eq!((a.create_revision, a.mod_revision), (r1, r4));
        let keys: Vec<_> = s
            .list("networks/")
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, ["networks/a", "networks/b"]);
        assert_eq!(s.list("").unwrap().len(), 3);
        assert_eq!(s.list("nothing/").unwrap(), vec![]);
        assert!(s.delete("networks/a").unwrap());
        assert!(!s.delete("networks/a").unwrap());
        assert_eq!(s.get("networks/a").unwrap(), None);
        assert_eq!(s.revision().unwrap(), 5);
    }
}

#[test]
fn compare_and_swap_and_transactions_are_all_or_nothing() {
    for (s, _dir) in backends() {
        let r = s
            .compare_and_swap("k", Expect::Absent, Some(b"v1"))
            .unwrap();
        let err = s
            .compare_and_swap("k", Expect::Absent, Some(b"v2"))
            .unwrap_err();
        assert!(
            matches!(&err, Error::Conflict { key, found, .. } if key == "k" && found == &format!("revision {r}")),
            "{err}"
        );
        let r2 = s
            .compare_and_swap("k", Expect::Revision(r), Some(b"v2"))
            .unwrap();
        assert!(s.compare_and_swap("k", Expect::Revision(r), None).is_err());
        assert_eq!(s.get("k").unwrap().unwrap().value, b"v2");

        // A failing condition anywhere applies nothing.
        let before = s.revision().unwrap();
        let txn = Txn::new()
            .when("k", Expect::Revision(r2))
            .when("other", Expect::Present)
            .put("k", b"v3".to_vec())
            .put("new", b"n".to_vec());
        assert!(matches!(s.commit(txn), Err(Error::Conflict { key, .. }) if key == "other"));
        assert_eq!(s.revision().unwrap(), before);
        assert_eq!(s.get("new").unwrap(), None);

        // A passing one applies everything at one revision.
        let txn = Txn::new()
            .when("k", Expect::Revision(r2))
            .put("a", b"1".to_vec())
            .put("b", b"2".to_vec())
            .delete("k");
        let rev = s.commit(txn).unwrap();
        assert_eq!(rev, before + 1);
        assert_eq!(s.get("a").unwrap().unwrap().mod_revision, rev);
        assert_eq!(s.get("b").unwrap().unwrap().mod_revision, rev);
        assert_eq!(s.get("k").unwrap(), None);
        // An empty transaction changes nothing.
        assert_eq!(s.commit(Txn::new()).unwrap(), rev);
    }
}

#[test]
fn bad_keys_are_refused_before_writing() {
    for (s, _dir) in backends() {
        for key in ["", "a\0b"] {
            assert!(matches!(s.put(key, b"x"), Err(Error::InvalidKey { .. })));
        }
        assert!(matches!(
            s.put(&"k".repeat(5000), b"x"),
            Err(Error::InvalidKey { .. })
        ));
        let txn = Txn::new().put("good", b"1".to_vec()).put("", b"2".to_vec());
        assert!(s.commit(txn).is_err());
        assert_eq!(s.get("good").unwrap(), None);
        assert_eq!(s.revision().unwrap(), 0);
    }
}

#[test]
fn watch_sees_changes_under_its_prefix_in_order() {
    for (s, _dir) in backends() {
        s.put("networks/old", b"before the watch").unwrap();
        let w = s.watch("networks/").unwrap();
        let other = s.watch("sandboxes/").unwrap();
        s.put("networks/a", b"1").unwrap();
        s.put("sandboxes/x", b"x").unwrap();
        s.commit(
            Txn::new()
                .put("networks/b", b"2".to_vec())
                .delete("networks/a"),
        )
        .unwrap();
        s.delete("networks/missing").unwrap();
        let got: Vec<Event> =
            std::iter::from_fn(|| w.recv_timeout(Duration::from_millis(50))).collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(matches!(&got[0], Event::Put(e) if e.key == "networks/a" && e.value == b"1"));
        assert!(matches!(&got[1], Event::Put(e) if e.key == "networks/b"));
        assert!(matches!(&got[2], Event::Delete { key, revision: 4 } if key == "networks/a"));
        assert!(matches!(other.try_recv(), Some(Event::Put(e)) if e.key == "sandboxes/x"));
        assert!(other.try_recv().is_none());
        drop(w);
        s.put("networks/c", b"after the watch was dropped").unwrap();
    }
}

#[test]
fn concurrent_cas_has_exactly_one_winner_per_round() {
    for (s, _dir) in backends() {
        let s: &dyn KvStore = s.as_ref();
        s.put("counter", b"0").unwrap();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..25 {
                        loop {
                            let e = s.get("counter").unwrap().unwrap();
                            let n: u64 = String::from_utf8(e.value).unwrap().parse().unwrap();
                            let next = (n + 1).to_string();
                            match s.compare_and_swap(
                                "counter",
                                Expect::Revision(e.mod_revision),
                                Some(next.as_bytes()),
                            ) {
                                Ok(_) => break,
                                Err(Error::Conflict { .. }) => continue,
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                });
            }
        });
        assert_eq!(s.get("counter").unwrap().unwrap().value, b"100");
    }
}

#[test]
fn redb_state_survives_reopen_and_is_locked_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    {
        let s = RedbStore::open(&path).unwrap();
        s.put("networks/a", b"1").unwrap();
        s.put("networks/b", b"2").unwrap();
        let second = RedbStore::open(&path);
        assert!(
            matches!(&second, Err(Error::Locked { path: p }) if p == &path),
            "{second:?}"
        );
        let msg = second.unwrap_err().to_string();
        assert!(msg.contains("another berth daemon"), "{msg}");
    }
    let s = RedbStore::open(&path).unwrap();
    assert_eq!(s.revision().unwrap(), 2);
    assert_eq!(s.get("networks/b").unwrap().unwrap().value, b"2");
}

/// Child mode for the kill -9 test: writes keys 0, 1, 2, ... until killed, printing each one it
/// committed.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var("BERTH_STORE_CRASH_CHILD") else {
        return;
    };
    let s = RedbStore::open(path).unwrap();
    for i in 0.. {
        s.put(&format!("k/{i:08}"), format!("value {i}").as_bytes())
            .unwrap();
        println!("committed {i}");
    }
}

#[test]
fn redb_keeps_every_commit_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("BERTH_STORE_CRASH_CHILD", &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let committed = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("committed "))
        .filter_map(|n| n.parse::<u64>().ok())
        .max()
        .expect("the child committed something before it was killed");
    let s = RedbStore::open(&path).unwrap();
    let entries = s.list("k/").unwrap();
    // Everything the child reported is there, with no gap; at most one more commit landed unreported.
    assert!(
        entries.len() as u64 > committed,
        "{} < {}",
        entries.len(),
        committed + 1
    );
    assert!(entries.len() as u64 <= committed + 2);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.key, format!("k/{i:08}"));
        assert_eq!(e.value, format!("value {i}").as_bytes());
    }
    assert_eq!(s.revision().unwrap(), entries.len() as u64);
}

#[derive(Debug, Clone)]
enum ModelOp {
    Put(u8, u8),
    Delete(u8),
    Cas(u8, Option<u64>, Option<u8>),
    Txn(Vec<(u8, bool)>, Vec<(u8, Option<u8>)>),
}

fn model_op() -> impl Strategy<Value = ModelOp> {
    prop_oneof![
        (0u8..6, any::<u8>()).prop_map(|(k, v)| ModelOp::Put(k, v)),
        (0u8..6).prop_map(ModelOp::Delete),
        (
            0u8..6,
            proptest::option::of(0u64..12),
            proptest::option::of(any::<u8>())
        )
            .prop_map(|(k, r, v)| ModelOp::Cas(k, r, v)),
        (
            proptest::collection::vec((0u8..6, any::<bool>()), 0..3),
            proptest::collection::vec((0u8..6, proptest::option::of(any::<u8>())), 0..4)
        )
            .prop_map(|(c, o)| ModelOp::Txn(c, o)),
    ]
}

fn key(k: u8) -> String {
    format!("p{}/k{k}", k % 2)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// The redb backend behaves exactly like the in-memory model, including revisions, conflicts and
    /// watch events.
    #[test]
    fn redb_matches_memory(ops in proptest::collection::vec(model_op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let redb = RedbStore::open(dir.path().join("s.redb")).unwrap();
        let mem = MemoryStore::new();
        let (wr, wm) = (redb.watch("p1/").unwrap(), mem.watch("p1/").unwrap());
        for op in ops {
            let run = |s: &dyn KvStore| -> Result<u64, String> {
                let r = match &op {
                    ModelOp::Put(k, v) => s.put(&key(*k), &[*v]),
                    ModelOp::Delete(k) => s.delete(&key(*k)).map(u64::from),
                    ModelOp::Cas(k, rev, v) => {
                        let expect = rev.map_or(Expect::Absent, Expect::Revision);
                        s.compare_and_swap(&key(*k), expect, v.as_ref().map(std::slice::from_ref))
                    }
                    ModelOp::Txn(conds, ops) => {
                        let mut t = Txn::new();
                        for (k, present) in conds {
                            t = t.when(key(*k), if *present { Expect::Present } else { Expect::Absent });
                        }
                        for (k, v) in ops {
                            t = match v { Some(v) => t.put(key(*k), vec![*v]), None => t.delete(key(*k)) };
                        }
                        s.commit(t)
                    }
                };
                r.map_err(|e| e.to_string())
            };
            prop_assert_eq!(run(&redb), run(&mem));
            prop_assert_eq!(redb.list("").unwrap(), mem.list("").unwrap());
            prop_assert_eq!(redb.revision().unwrap(), mem.revision().unwrap());
        }
        let drain = |w: &berth_store::Watch| std::iter::from_fn(|| w.try_recv()).collect::<Vec<_>>();
        prop_assert_eq!(drain(&wr), drain(&wm));
    }
}

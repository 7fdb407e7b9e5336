//! The redb backend: checked against the in-memory model with proptest; durability across reopen
//! and `kill -9`; leases ending with the process; files written before leases existed. (The
//! behaviour every backend shares is in `conformance.rs`.)
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Command;
use std::time::Duration;

use berth_store::{Error, Event, Expect, KvStore, MemoryStore, RedbStore, Txn};
use proptest::prelude::*;
use std::path::Path;

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
    let entries = s.list("k/").unwrap().entries;
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

/// tests/fixtures/v0-store.redb was written by berth-store before leases and the watch history
/// existed (tables `kv` and `meta` only), with: put network/n1, put endpoint/n1/e1, put network/n2,
/// txn { put endpoint/n1/e2, delete network/n2 }, put network/n1 (new value).
#[test]
fn a_store_file_written_before_leases_opens_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.redb");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0-store.redb");
    std::fs::copy(fixture, &path).unwrap();
    {
        let s = RedbStore::open(&path).unwrap();
        assert_eq!(s.revision().unwrap(), 5);
        assert_eq!(s.compact_revision().unwrap(), 5);
        let listing = s.list("").unwrap();
        assert_eq!(listing.revision, 5);
        let got: Vec<_> = listing
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.create_revision, e.mod_revision, e.lease))
            .collect();
        assert_eq!(
            got,
            [
                ("endpoint/n1/e1", 2, 2, None),
                ("endpoint/n1/e2", 4, 4, None),
                ("network/n1", 1, 5, None),
            ]
        );
        assert_eq!(listing.entries[2].value, br#"{"name":"isolated_nw","v":2}"#);
        assert_eq!(s.put("network/n3", b"3").unwrap(), 6);
        let lease = s.grant_lease(Duration::from_secs(60)).unwrap();
        assert_eq!(s.put_with_lease("peers/p", b"p", lease).unwrap(), 7);
    }
    let s = RedbStore::open(&path).unwrap();
    // The lease ended with the store that granted it: its key was deleted at revision 8.
    assert_eq!(s.revision().unwrap(), 8);
    assert_eq!(s.get("peers/p").unwrap(), None);
    assert_eq!(s.get("network/n3").unwrap().unwrap().mod_revision, 6);
    assert_eq!(s.list("").unwrap().entries.len(), 4);
}

#[test]
fn leased_keys_of_a_previous_open_are_deleted_when_the_store_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let before = {
        let s = RedbStore::open(&path).unwrap();
        let lease = s.grant_lease(Duration::from_secs(60)).unwrap();
        s.put("keep", b"k").unwrap();
        s.commit(
            Txn::new()
                .put_with_lease("peers/a", b"a".to_vec(), lease)
                .put_with_lease("peers/b", b"b".to_vec(), lease)
                .put_with_lease("peers/detached", b"d".to_vec(), lease),
        )
        .unwrap();
        s.put("peers/detached", b"plain").unwrap();
        assert_eq!(s.get("peers/a").unwrap().unwrap().lease, Some(lease));
        s.revision().unwrap()
        // Dropped with its lease alive, as by a process that dies: the next open cleans up.
    };
    // Opening at once works: dropping the store stopped its lease thread and closed the file.
    let s = RedbStore::open(&path).unwrap();
    assert_eq!(
        s.revision().unwrap(),
        before + 1,
        "one commit deletes them all"
    );
    let keys: Vec<_> = s
        .list("")
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, ["keep", "peers/detached"]);
    assert_eq!(s.compact_revision().unwrap(), before + 1);

    // The history starts at the open: a watch from before it is told so, and ends.
    let old = s.watch("peers/", before).unwrap();
    assert_eq!(
        old.recv_timeout(Duration::from_secs(5)),
        Some(Event::Compacted {
            compact_revision: before + 1
        })
    );
    assert_eq!(old.recv_timeout(Duration::from_secs(1)), None);
    let current = s.watch("peers/", before + 1).unwrap();
    let r = s.put("peers/c", b"c").unwrap();
    assert!(matches!(
        current.recv_timeout(Duration::from_secs(5)),
        Some(Event::Put(e)) if e.key == "peers/c" && e.mod_revision == r
    ));
    drop(s);
    // Nothing leased left: opening again writes nothing.
    let s = RedbStore::open(&path).unwrap();
    assert_eq!(s.revision().unwrap(), r);
}

#[test]
fn backend_errors_name_the_store_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir/state.redb");
    let err = RedbStore::open(&path).unwrap_err();
    let Error::Backend { store, message } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(store, &format!("redb {}", path.display()));
    assert!(!message.is_empty());
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[derive(Debug, Clone)]
enum ModelOp {
    Put(u8, u8),
    Delete(u8),
    Cas(u8, Option<u64>, Option<u8>),
    Txn(Vec<(u8, bool)>, Vec<(u8, Option<u8>)>),
    Grant,
    PutLeased(u8, u8, u8),
    Revoke(u8),
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
        Just(ModelOp::Grant),
        (0u8..6, any::<u8>(), 0u8..4).prop_map(|(k, v, l)| ModelOp::PutLeased(k, v, l)),
        (0u8..4).prop_map(ModelOp::Revoke),
    ]
}

fn key(k: u8) -> String {
    format!("p{}/k{k}", k % 2)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// The redb backend behaves exactly like the in-memory model, including revisions, conflicts,
    /// leases and watch events.
    #[test]
    fn redb_matches_memory(ops in proptest::collection::vec(model_op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let redb = RedbStore::open(dir.path().join("s.redb")).unwrap();
        let mem = MemoryStore::new();
        let (wr, wm) = (redb.watch("p1/", 0).unwrap(), mem.watch("p1/", 0).unwrap());
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
                    ModelOp::Grant => s.grant_lease(Duration::from_secs(600)).map(|l| l.0),
                    ModelOp::PutLeased(k, v, l) => {
                        s.put_with_lease(&key(*k), &[*v], berth_store::LeaseId(u64::from(*l)))
                    }
                    ModelOp::Revoke(l) => {
                        s.revoke_lease(berth_store::LeaseId(u64::from(*l))).map(|()| 0)
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

//! The key-value checks: reads, writes, revisions, compare-and-swap, transactions, keys, listings.

use std::sync::Arc;

use super::*;

/// get, put and delete; revisions count commits; create and mod revisions.
pub fn get_put_delete_and_revisions(make: MakeStore<'_>) {
    let p = "get/put/delete and revisions";
    let s = make();
    let r0 = must(s.revision(), p);
    assert_eq!(
        must(s.get("networks/a"), p),
        None,
        "{p}: a new store is empty"
    );
    let r1 = must(s.put("networks/a", b"1"), p);
    let r2 = must(s.put("networks/b", b"2"), p);
    let r3 = must(s.put("sandboxes/x", b"3"), p);
    assert_eq!(
        (r1, r2, r3),
        (r0 + 1, r0 + 2, r0 + 3),
        "{p}: each commit takes the next revision"
    );
    let r4 = must(s.put("networks/a", b"1bis"), p);
    let a = must(s.get("networks/a"), p).unwrap_or_else(|| panic!("{p}: networks/a vanished"));
    assert_eq!(a.value, b"1bis", "{p}: a put replaces the value");
    assert_eq!(
        (a.create_revision, a.mod_revision, a.lease),
        (r1, r4, None),
        "{p}: create revision stays, mod revision moves"
    );
    assert_eq!(
        must(s.revision(), p),
        r4,
        "{p}: revision() is the last commit"
    );
    assert!(
        must(s.delete("networks/a"), p),
        "{p}: delete of a present key"
    );
    assert!(
        !must(s.delete("networks/a"), p),
        "{p}: delete of an absent key says it was absent"
    );
    assert_eq!(
        must(s.get("networks/a"), p),
        None,
        "{p}: a deleted key is gone"
    );
    assert_eq!(
        must(s.revision(), p),
        r4 + 1,
        "{p}: a refused delete takes no revision"
    );
    let r6 = must(s.put("networks/a", b"again"), p);
    let a = must(s.get("networks/a"), p).unwrap_or_else(|| panic!("{p}: networks/a missing"));
    assert_eq!(
        (a.create_revision, a.mod_revision),
        (r6, r6),
        "{p}: a key created again gets a new create revision"
    );
    assert!(
        must(s.compact_revision(), p) <= r0,
        "{p}: a new store's history reaches back to its first revision"
    );
}

/// compare-and-swap on Absent, Present and Revision; a conflict writes nothing.
pub fn compare_and_swap(make: MakeStore<'_>) {
    let p = "compare-and-swap";
    let s = make();
    let r = must(s.compare_and_swap("k", Expect::Absent, Some(b"v1")), p);
    let before = must(s.revision(), p);
    let err = expect_err(
        s.compare_and_swap("k", Expect::Absent, Some(b"v2")),
        p,
        |e| matches!(e, Error::Conflict { .. }),
    );
    assert!(
        matches!(&err, Error::Conflict { key, found, expected: Expect::Absent } if key == "k" && found == &format!("revision {r}")),
        "{p}: the conflict names the key and what was found: {err}"
    );
    let r2 = must(s.compare_and_swap("k", Expect::Revision(r), Some(b"v2")), p);
    assert!(r2 > before, "{p}: a swap takes a new revision");
    expect_err(s.compare_and_swap("k", Expect::Revision(r), None), p, |e| {
        matches!(e, Error::Conflict { .. })
    });
    let r3 = must(s.compare_and_swap("k", Expect::Present, Some(b"v3")), p);
    expect_err(
        s.compare_and_swap("gone", Expect::Present, None),
        p,
        |e| matches!(e, Error::Conflict { found, .. } if found == "absent"),
    );
    assert_eq!(
        must(s.revision(), p),
        r3,
        "{p}: a failed compare-and-swap takes no revision"
    );
    let k = must(s.get("k"), p).unwrap_or_else(|| panic!("{p}: k missing"));
    assert_eq!(
        (k.value.as_slice(), k.mod_revision),
        (&b"v3"[..], r3),
        "{p}: only the winning swaps wrote"
    );
    must(s.compare_and_swap("k", Expect::Revision(r3), None), p);
    assert_eq!(must(s.get("k"), p), None, "{p}: a swap to None deletes");
}

/// A transaction applies all its ops at one revision, or nothing.
pub fn transactions_are_all_or_nothing(make: MakeStore<'_>) {
    let p = "transactions are all or nothing";
    let s = make();
    let r2 = must(s.put("k", b"v2"), p);
    let before = must(s.revision(), p);
    let txn = Txn::new()
        .when("k", Expect::Revision(r2))
        .when("other", Expect::Present)
        .put("k", b"v3".to_vec())
        .put("new", b"n".to_vec());
    expect_err(
        s.commit(txn),
        p,
        |e| matches!(e, Error::Conflict { key, .. } if key == "other"),
    );
    assert_eq!(
        must(s.revision(), p),
        before,
        "{p}: a failed condition takes no revision"
    );
    assert_eq!(
        must(s.get("new"), p),
        None,
        "{p}: a failed condition writes nothing"
    );
    assert_eq!(
        must(s.get("k"), p).map(|e| e.value),
        Some(b"v2".to_vec()),
        "{p}: a failed condition writes nothing"
    );
    let txn = Txn::new()
        .when("k", Expect::Revision(r2))
        .when("absent", Expect::Absent)
        .put("a", b"1".to_vec())
        .put("b", b"2".to_vec())
        .delete("k");
    let rev = must(s.commit(txn), p);
    assert_eq!(rev, before + 1, "{p}: a transaction takes one revision");
    for key in ["a", "b"] {
        let e = must(s.get(key), p).unwrap_or_else(|| panic!("{p}: {key} missing"));
        assert_eq!(
            e.mod_revision, rev,
            "{p}: every op is at the transaction's revision"
        );
    }
    assert_eq!(must(s.get("k"), p), None, "{p}: the delete was applied");
    assert_eq!(
        must(s.commit(Txn::new()), p),
        rev,
        "{p}: an empty transaction changes nothing"
    );
    assert_eq!(
        must(s.commit(Txn::new().when("a", Expect::Present)), p),
        rev,
        "{p}: a transaction with conditions only changes nothing"
    );
}

/// Empty, too long and NUL keys are refused with nothing written.
pub fn invalid_keys_are_refused(make: MakeStore<'_>) {
    let p = "invalid keys are refused";
    let s = make();
    let r0 = must(s.revision(), p);
    let long = "k".repeat(crate::MAX_KEY_LEN + 1);
    for key in ["", "a\0b", long.as_str()] {
        let invalid = |e: &Error| matches!(e, Error::InvalidKey { .. });
        expect_err(s.put(key, b"x"), p, invalid);
        expect_err(s.get(key), p, invalid);
        expect_err(s.commit(Txn::new().when(key, Expect::Absent)), p, invalid);
        let txn = Txn::new()
            .put("good", b"1".to_vec())
            .put(key, b"2".to_vec());
        expect_err(s.commit(txn), p, invalid);
    }
    assert_eq!(
        must(s.get("good"), p),
        None,
        "{p}: a refused transaction writes nothing"
    );
    assert_eq!(
        must(s.revision(), p),
        r0,
        "{p}: a refused key takes no revision"
    );
    assert!(
        must(s.put(&"k".repeat(crate::MAX_KEY_LEN), b"x"), p) > r0,
        "{p}: a key of the longest length is accepted"
    );
}

/// A listing is in key order, holds exactly the prefix, and is consistent with its revision,
/// also while others write.
pub fn list_is_ordered_and_consistent(make: MakeStore<'_>) {
    let p = "list is ordered and consistent";
    let s = make();
    for key in ["a/2", "a/10", "a/1", "a0", "a", "b/1", "a//x"] {
        must(s.put(key, key.as_bytes()), p);
    }
    let l = must(s.list("a/"), p);
    assert_eq!(
        keys(&l.entries),
        ["a//x", "a/1", "a/10", "a/2"],
        "{p}: the entries under the prefix, in key order"
    );
    assert_eq!(
        l.revision,
        must(s.revision(), p),
        "{p}: an idle listing is at the current revision"
    );
    assert_eq!(
        must(s.list(""), p).entries.len(),
        7,
        "{p}: \"\" lists everything"
    );
    let empty = must(s.list("nothing/"), p);
    assert!(
        empty.entries.is_empty(),
        "{p}: nothing under an unused prefix"
    );
    assert_eq!(
        empty.revision, l.revision,
        "{p}: an empty listing still has its revision"
    );

    // One writer adds one key per commit under c/; every listing must hold exactly the keys of
    // the commits up to its revision.
    let start = must(s.revision(), p);
    const WRITES: u64 = 40;
    std::thread::scope(|scope| {
        let writer = Arc::clone(&s);
        scope.spawn(move || {
            for i in 0..WRITES {
                must(writer.put(&format!("c/{i:04}"), b"x"), p);
            }
        });
        loop {
            let l = must(s.list("c/"), p);
            assert_eq!(
                l.entries.len() as u64,
                l.revision - start,
                "{p}: a listing read at revision {} under concurrent writes has {} entries",
                l.revision,
                l.entries.len()
            );
            assert!(
                l.entries.iter().all(|e| e.mod_revision <= l.revision),
                "{p}: no entry is newer than the listing's revision"
            );
            if l.revision == start + WRITES {
                break;
            }
        }
    });
}

/// Concurrent compare-and-swaps on one key: each round has exactly one winner.
pub fn concurrent_cas_has_one_winner(make: MakeStore<'_>) {
    let p = "concurrent compare-and-swap has one winner per round";
    let s = make();
    must(s.put("counter", b"0"), p);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let s = Arc::clone(&s);
            scope.spawn(move || {
                for _ in 0..25 {
                    loop {
                        let e = must(s.get("counter"), p)
                            .unwrap_or_else(|| panic!("{p}: counter missing"));
                        let n: u64 = String::from_utf8_lossy(&e.value)
                            .parse()
                            .unwrap_or_else(|_| panic!("{p}: counter is {:?}", e.value));
                        let next = (n + 1).to_string();
                        match s.compare_and_swap(
                            "counter",
                            Expect::Revision(e.mod_revision),
                            Some(next.as_bytes()),
                        ) {
                            Ok(_) => break,
                            Err(Error::Conflict { .. }) => continue,
                            Err(e) => panic!("{p}: {e}"),
                        }
                    }
                }
            });
        }
    });
    assert_eq!(
        must(s.get("counter"), p).map(|e| e.value),
        Some(b"100".to_vec()),
        "{p}: 100 increments, none lost"
    );
}

//! The watch checks: live changes, replay from a revision, no gap or duplicate, compaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

/// A watch sees the changes under its prefix after its start, in commit order.
pub fn watch_delivers_live_changes(make: MakeStore<'_>) {
    let p = "watch delivers live changes under its prefix";
    let s = make();
    must(s.put("networks/old", b"before the watch"), p);
    let now = must(s.revision(), p);
    let w = must(s.watch("networks/", now), p);
    let other = must(s.watch("sandboxes/", now), p);
    let ra = must(s.put("networks/a", b"1"), p);
    must(s.put("sandboxes/x", b"x"), p);
    must(s.put("networksX", b"not under networks/"), p);
    let rt = must(
        s.commit(
            Txn::new()
                .put("networks/b", b"2".to_vec())
                .delete("networks/a"),
        ),
        p,
    );
    must(s.delete("networks/missing"), p);
    let got: Vec<_> = (0..3).map(|_| change(&next(&w, p), p)).collect();
    assert_eq!(
        got,
        [
            ("networks/a".to_owned(), ra, true),
            ("networks/b".to_owned(), rt, true),
            ("networks/a".to_owned(), rt, false),
        ],
        "{p}: the puts and deletes under the prefix, in commit order"
    );
    assert_quiet(&w, p);
    assert_eq!(
        change(&next(&other, p), p).0,
        "sandboxes/x",
        "{p}: a second watch sees its own prefix"
    );
    assert_quiet(&other, p);
}

/// A watch from a past revision replays the changes after it, then continues live; a watch from
/// a future revision starts after it.
pub fn watch_replays_from_a_revision(make: MakeStore<'_>) {
    let p = "watch replays from a revision";
    let s = make();
    let r0 = must(s.revision(), p);
    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(must(s.put(&format!("w/{i}"), b"x"), p));
        must(s.put(&format!("x/{i}"), b"y"), p);
    }
    let w = must(s.watch("w/", revs[1]), p);
    for (i, rev) in revs.iter().enumerate().skip(2) {
        assert_eq!(
            change(&next(&w, p), p),
            (format!("w/{i}"), *rev, true),
            "{p}: replay in commit order, from the revision after the start"
        );
    }
    let whole = must(s.watch("w/", r0), p);
    for (i, rev) in revs.iter().enumerate() {
        assert_eq!(
            change(&next(&whole, p), p),
            (format!("w/{i}"), *rev, true),
            "{p}: a watch from the store's first revision replays everything"
        );
    }
    let now = must(s.revision(), p);
    let future = must(s.watch("w/", now + 1), p);
    let live = must(s.put("w/live", b"z"), p);
    assert_eq!(
        change(&next(&w, p), p),
        ("w/live".to_owned(), live, true),
        "{p}: after the replay the watch continues live"
    );
    assert_eq!(
        change(&next(&whole, p), p),
        ("w/live".to_owned(), live, true),
        "{p}: after the replay the watch continues live"
    );
    let later = must(s.put("w/later", b"z"), p);
    assert_eq!(
        change(&next(&future, p), p),
        ("w/later".to_owned(), later, true),
        "{p}: a watch from a future revision skips the changes up to it"
    );
    assert_eq!(
        change(&next(&w, p), p),
        ("w/later".to_owned(), later, true),
        "{p}: live changes follow in commit order"
    );
    assert_quiet(&w, p);
    // Dropping a watch ends it; the store carries on.
    drop(w);
    must(s.put("w/after-drop", b"z"), p);
}

/// Watches started (list, then watch from the listing's revision) while several threads write
/// get every change after their start once, in commit order.
pub fn watch_has_no_gap_or_duplicate(make: MakeStore<'_>) {
    let p = "watch has no gap and no duplicate under concurrent writers";
    let s = make();
    let r0 = must(s.revision(), p);
    let first = must(s.watch("c/", r0), p);
    let mut started = Vec::new();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let s = Arc::clone(&s);
            scope.spawn(move || {
                for i in 0..15 {
                    must(s.put(&format!("c/{t}/{i:02}"), b"x"), p);
                    if i % 5 == 0 {
                        must(s.put(&format!("other/{t}/{i:02}"), b"x"), p);
                    }
                }
            });
        }
        for _ in 0..6 {
            let l = must(s.list("c/"), p);
            let w = must(s.watch("c/", l.revision), p);
            started.push((l, w));
            std::thread::sleep(Duration::from_millis(3));
        }
    });
    let end = must(s.list("c/"), p);
    assert_eq!(end.entries.len(), 60, "{p}: every write landed");
    let mut by_revision: BTreeMap<u64, String> = BTreeMap::new();
    for e in &end.entries {
        by_revision.insert(e.mod_revision, e.key.clone());
    }
    let replay = must(s.watch("c/", r0), p);
    let r0_listing = crate::Listing {
        entries: Vec::new(),
        revision: r0,
    };
    started.push((r0_listing.clone(), first));
    started.push((r0_listing, replay));
    for (listing, w) in &started {
        let listed: Vec<_> = by_revision
            .range(..=listing.revision)
            .map(|(_, k)| k.as_str())
            .collect();
        let mut listed_sorted = listed.clone();
        listed_sorted.sort_unstable();
        assert_eq!(
            keys(&listing.entries),
            listed_sorted,
            "{p}: the listing at revision {} holds the writes up to it",
            listing.revision
        );
        for (rev, key) in by_revision.range(listing.revision + 1..) {
            assert_eq!(
                change(&next(w, p), p),
                (key.clone(), *rev, true),
                "{p}: a watch after revision {} gets the next change in order",
                listing.revision
            );
        }
        assert_quiet(w, p);
    }
}

/// A store whose watch history is bounded: a watch from before what it keeps gets
/// [`Event::Compacted`] and ends; a watch from its compact revision replays the rest.
/// `make_with_history(n)` makes a new, empty store keeping at most `n` events.
pub fn check_compaction(make_with_history: &dyn Fn(usize) -> Arc<dyn KvStore>) {
    let p = "a watch from before the history is told Compacted";
    let s = make_with_history(8);
    let r0 = must(s.revision(), p);
    for i in 0..20 {
        must(s.put(&format!("h/{i:02}"), b"x"), p);
    }
    let now = must(s.revision(), p);
    let c = must(s.compact_revision(), p);
    assert!(
        c >= r0 + 12 && c <= now,
        "{p}: with 8 events kept out of 20, the compact revision {c} is in {}..={now}",
        r0 + 12
    );
    for too_old in [r0, c - 1] {
        let w = must(s.watch("h/", too_old), p);
        assert_eq!(
            next(&w, p),
            Event::Compacted {
                compact_revision: c
            },
            "{p}: the only event of a watch from {too_old} < {c}"
        );
        let t = Instant::now();
        let after = w.recv_timeout(Duration::from_secs(2));
        assert!(
            after.is_none() && t.elapsed() < Duration::from_secs(1),
            "{p}: the watch ends after Compacted (got {after:?})"
        );
    }
    let w = must(s.watch("h/", c), p);
    for rev in c + 1..=now {
        let (_, got, _) = change(&next(&w, p), p);
        assert_eq!(
            got, rev,
            "{p}: a watch from the compact revision replays the rest"
        );
    }
    let live = must(s.put("h/live", b"x"), p);
    assert_eq!(
        change(&next(&w, p), p),
        ("h/live".to_owned(), live, true),
        "{p}: and continues live"
    );
    // One commit larger than the history cannot be replayed either.
    let mut txn = Txn::new();
    for i in 0..10 {
        txn = txn.put(format!("big/{i}"), b"x".to_vec());
    }
    let big = must(s.commit(txn), p);
    assert!(
        must(s.compact_revision(), p) >= big,
        "{p}: a commit of 10 events does not fit a history of 8"
    );
    let w = must(s.watch("big/", big - 1), p);
    assert!(
        matches!(next(&w, p), Event::Compacted { .. }),
        "{p}: a watch from before an oversized commit is told Compacted"
    );
}

//! The lease checks: expiry, revocation, refusals.

use std::time::{Duration, Instant};

use super::*;

/// Keys put with a lease live while it is kept alive, and are deleted (at one revision, with a
/// Delete event each, without other calls) once it expires.
pub fn lease_expiry_deletes_keys(make: MakeStore<'_>) {
    let p = "lease expiry deletes keys";
    // A scheduling stall longer than the lease's life ends it legitimately; try again then.
    for _ in 0..3 {
        if lease_expiry_attempt(make, p) {
            return;
        }
    }
    panic!("{p}: the test thread stalled longer than the lease ttl three times; cannot check");
}

/// One attempt of [`lease_expiry_deletes_keys`]; false if the thread stalled too long to judge.
fn lease_expiry_attempt(make: MakeStore<'_>, p: &str) -> bool {
    let s = make();
    let lease = must(s.grant_lease(LEASE_TTL), p);
    let mut last_renewal = Instant::now();
    let rev = must(
        s.commit(
            Txn::new()
                .put_with_lease("lease/a", b"a".to_vec(), lease)
                .put_with_lease("lease/b", b"b".to_vec(), lease)
                .put("lease/plain", b"p".to_vec()),
        ),
        p,
    );
    let a = must(s.get("lease/a"), p).unwrap_or_else(|| panic!("{p}: lease/a missing"));
    assert_eq!(a.lease, Some(lease), "{p}: the entry names its lease");
    let listing = must(s.list("lease/"), p);
    assert_eq!(
        listing
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.lease))
            .collect::<Vec<_>>(),
        [
            ("lease/a", Some(lease)),
            ("lease/b", Some(lease)),
            ("lease/plain", None)
        ],
        "{p}: a listing names each entry's lease"
    );
    let w = must(s.watch("lease/", rev), p);
    let before = Instant::now();
    let ttl = match s.keep_alive(lease) {
        Ok(ttl) => ttl,
        Err(Error::LeaseNotFound { .. }) if before - last_renewal >= LEASE_TTL => return false,
        Err(e) => panic!("{p}: keep_alive: {e}"),
    };
    last_renewal = before;
    assert!(
        ttl >= LEASE_TTL,
        "{p}: the granted ttl {ttl:?} is at least the one asked for"
    );
    // Keep it alive for more than two ttls.
    let until = Instant::now() + ttl * 5 / 2;
    while Instant::now() < until {
        std::thread::sleep(ttl / 5);
        let before = Instant::now();
        if before - last_renewal >= ttl {
            return false;
        }
        let renewed = s.keep_alive(lease);
        if renewed.is_err() && last_renewal.elapsed() >= ttl {
            return false;
        }
        assert!(
            renewed.is_ok(),
            "{p}: keep_alive {:?} after the last one: {renewed:?}",
            before - last_renewal
        );
        last_renewal = before;
        let present = must(s.get("lease/a"), p).is_some();
        if !present && last_renewal.elapsed() >= ttl {
            return false;
        }
        assert!(present, "{p}: a key lives while its lease is kept alive");
    }
    // Stop; wait for the deletes without calling the store.
    let mut deleted = Vec::new();
    while deleted.len() < 2 {
        let left = (last_renewal + ttl + EXPIRY_SLACK).saturating_duration_since(Instant::now());
        let Some(e) = w.recv_timeout(left) else {
            panic!(
                "{p}: the lease's keys were not deleted within ttl + {EXPIRY_SLACK:?} (got {deleted:?})"
            );
        };
        assert!(
            Instant::now() >= last_renewal + ttl,
            "{p}: a key was deleted before its lease's ttl ran out: {e:?}"
        );
        deleted.push(change(&e, p));
    }
    assert!(
        deleted[0].1 == deleted[1].1 && deleted.iter().all(|(_, _, put)| !put),
        "{p}: the lease's keys are deleted at one revision: {deleted:?}"
    );
    assert_eq!(
        (deleted[0].0.as_str(), deleted[1].0.as_str()),
        ("lease/a", "lease/b"),
        "{p}: exactly the lease's keys are deleted"
    );
    assert_quiet(&w, p);
    assert_eq!(
        must(s.get("lease/a"), p),
        None,
        "{p}: an expired lease's key is gone"
    );
    assert!(
        must(s.get("lease/plain"), p).is_some(),
        "{p}: a key without a lease stays"
    );
    expect_err(
        s.keep_alive(lease),
        p,
        |e| matches!(e, Error::LeaseNotFound { lease: l } if *l == lease),
    );
    let r = must(s.revision(), p);
    expect_err(s.put_with_lease("lease/c", b"c", lease), p, |e| {
        matches!(e, Error::LeaseNotFound { .. })
    });
    assert_eq!(
        (must(s.get("lease/c"), p), must(s.revision(), p)),
        (None, r),
        "{p}: a put with an expired lease writes nothing"
    );
    true
}

/// Revoking a lease deletes its keys at one revision, and only its keys: not those a later
/// plain put detached, nor those moved to another lease.
pub fn revoke_deletes_the_lease_keys(make: MakeStore<'_>) {
    let p = "revoke deletes the lease's keys";
    let s = make();
    let long = Duration::from_secs(60);
    let (l1, l2, l3) = (
        must(s.grant_lease(long), p),
        must(s.grant_lease(long), p),
        must(s.grant_lease(long), p),
    );
    assert!(
        l1 != l2 && l2 != l3 && l1 != l3,
        "{p}: each lease has its own id"
    );
    must(s.put_with_lease("x/a", b"a", l1), p);
    must(s.put_with_lease("x/b", b"b", l1), p);
    must(s.put_with_lease("x/detached", b"c", l1), p);
    must(s.put("x/detached", b"plain now"), p);
    must(s.put_with_lease("x/moved", b"m", l1), p);
    must(s.put_with_lease("x/moved", b"m", l2), p);
    must(s.put_with_lease("x/deleted", b"d", l1), p);
    must(s.delete("x/deleted"), p);
    must(s.put_with_lease("x/other", b"o", l3), p);
    let d = must(s.get("x/detached"), p).unwrap_or_else(|| panic!("{p}: x/detached missing"));
    assert_eq!(
        d.lease, None,
        "{p}: a plain put detaches the key from its lease"
    );
    assert_eq!(
        must(s.get("x/moved"), p).and_then(|e| e.lease),
        Some(l2),
        "{p}: a put with another lease moves the key to it"
    );
    let w = must(s.watch("x/", must(s.revision(), p)), p);
    must(s.revoke_lease(l1), p);
    let a = change(&next(&w, p), p);
    let b = change(&next(&w, p), p);
    assert_eq!(
        (a.0.as_str(), a.2, b.0.as_str(), b.2),
        ("x/a", false, "x/b", false),
        "{p}: a Delete for each key of the lease"
    );
    assert_eq!(
        a.1, b.1,
        "{p}: the lease's keys are deleted at one revision"
    );
    assert_quiet(&w, p);
    let left = must(s.list("x/"), p);
    assert_eq!(
        keys(&left.entries),
        ["x/detached", "x/moved", "x/other"],
        "{p}: only the lease's keys are deleted"
    );
    let nf = |e: &Error| matches!(e, Error::LeaseNotFound { lease } if *lease == l1);
    expect_err(s.revoke_lease(l1), p, nf);
    expect_err(s.keep_alive(l1), p, nf);
    assert_eq!(must(s.keep_alive(l2), p), long, "{p}: other leases live on");
    must(s.revoke_lease(l2), p);
    must(s.revoke_lease(l3), p);
    assert_eq!(
        keys(&must(s.list("x/"), p).entries),
        ["x/detached"],
        "{p}: revoking the other leases deletes their keys"
    );
}

/// A put with an unknown lease, and a lease with a bad ttl, are refused with nothing written.
pub fn bad_leases_are_refused(make: MakeStore<'_>) {
    let p = "bad leases are refused";
    let s = make();
    let dead = must(s.grant_lease(Duration::from_secs(60)), p);
    must(s.revoke_lease(dead), p);
    must(s.put("k", b"v"), p);
    let r = must(s.revision(), p);
    let txn = Txn::new()
        .put("good", b"1".to_vec())
        .put_with_lease("leased", b"2".to_vec(), dead);
    let err = expect_err(
        s.commit(txn),
        p,
        |e| matches!(e, Error::LeaseNotFound { lease } if *lease == dead),
    );
    assert!(
        err.to_string().contains(&dead.to_string()),
        "{p}: the error names the lease: {err}"
    );
    assert_eq!(
        (must(s.get("good"), p), must(s.revision(), p)),
        (None, r),
        "{p}: a transaction with an unknown lease writes nothing"
    );
    // Conditions are judged before leases (as etcd does: a failed condition runs no op).
    let txn = Txn::new()
        .when("k", Expect::Absent)
        .put_with_lease("leased", b"2".to_vec(), dead);
    expect_err(s.commit(txn), p, |e| matches!(e, Error::Conflict { .. }));
    for ttl in [Duration::ZERO, MAX_LEASE_TTL + Duration::from_secs(1)] {
        expect_err(
            s.grant_lease(ttl),
            p,
            |e| matches!(e, Error::InvalidLeaseTtl { ttl: t, .. } if *t == ttl),
        );
    }
    let never = LeaseId(u64::MAX);
    expect_err(s.keep_alive(never), p, |e| {
        matches!(e, Error::LeaseNotFound { .. })
    });
    expect_err(s.revoke_lease(never), p, |e| {
        matches!(e, Error::LeaseNotFound { .. })
    });
}

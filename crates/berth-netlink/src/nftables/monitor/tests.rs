//! Unit tests of the notification parser: hand-built messages, and real notifications captured
//! into the fuzz corpus.

use super::*;

/// One attribute: header in host order, value padded to 4 bytes.
fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut v = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
    v.extend_from_slice(&kind.to_ne_bytes());
    v.extend_from_slice(value);
    v.resize(align4(v.len()), 0);
    v
}

fn name(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// One nf_tables notification of type `msg` from port 77.
fn message(msg: u16, family: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
    let mut payload = vec![family, 0, 0, 9];
    payload.extend(attrs.concat());
    let mut m = ((HEADER_LEN + payload.len()) as u32).to_ne_bytes().to_vec();
    m.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg).to_ne_bytes());
    m.extend_from_slice(&[0, 0, 1, 0, 0, 0]);
    m.extend_from_slice(&77u32.to_ne_bytes());
    m.extend(payload);
    m
}

fn newgen(generation: u32, pid: u32, process: &str) -> Vec<u8> {
    message(
        NFT_MSG_NEWGEN,
        0,
        &[
            attr(NFTA_GEN_ID, &generation.to_be_bytes()),
            attr(NFTA_GEN_PROC_PID, &pid.to_be_bytes()),
            attr(NFTA_GEN_PROC_NAME, &name(process)),
        ],
    )
}

fn rule(msg: u16, table: &str, chain: &str) -> Vec<u8> {
    let handle = attr(NFTA_RULE_HANDLE, &7u64.to_be_bytes());
    message(
        msg,
        2,
        &[attr(1, &name(table)), attr(2, &name(chain)), handle],
    )
}

fn commits(g: &mut Grouper) -> Vec<Notice> {
    g.ready.drain(..).collect()
}

fn only_commit(g: &mut Grouper) -> Commit {
    match commits(g).as_slice() {
        [Notice::Commit(c)] => c.clone(),
        other => panic!("expected one commit, got {other:?}"),
    }
}

#[test]
fn changes_are_grouped_until_the_generation_message() {
    let mut g = Grouper::new(100);
    let mut d = message(NFT_MSG_NEWTABLE, 1, &[attr(1, &name("berth"))]);
    d.extend(message(
        NFT_MSG_NEWCHAIN,
        1,
        &[attr(1, &name("berth")), attr(3, &name("fwd"))],
    ));
    g.scan(&d);
    assert!(g.ready.is_empty(), "no commit before NEWGEN");
    let mut d = rule(NFT_MSG_DELRULE, "nat", "BERTH-DNAT");
    d.extend(message(
        NFT_MSG_NEWSET,
        1,
        &[attr(1, &name("berth")), attr(2, &name("s"))],
    ));
    d.extend(message(
        NFT_MSG_DESTROYSETELEM,
        1,
        &[attr(1, &name("t")), attr(2, &name("m"))],
    ));
    d.extend(message(
        NFT_MSG_DELOBJ,
        1,
        &[attr(1, &name("t")), attr(2, &name("ctr"))],
    ));
    d.extend(newgen(41, 1234, "nft"));
    d.extend(rule(NFT_MSG_NEWRULE, "filter", "FORWARD"));
    d.extend(newgen(42, 99, "iptables-nft"));
    g.scan(&d);
    let notices = commits(&mut g);
    let [Notice::Commit(a), Notice::Commit(b)] = notices.as_slice() else {
        panic!("{notices:?}")
    };
    assert_eq!((a.generation, a.pid, a.port_id), (41, Some(1234), 77));
    assert_eq!(a.process.as_deref(), Some("nft"));
    assert!(!a.truncated);
    let kinds: Vec<ChangeKind> = a.changes.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            ChangeKind::NewTable,
            ChangeKind::NewChain,
            ChangeKind::DelRule,
            ChangeKind::NewSet,
            ChangeKind::DelElem,
            ChangeKind::Other(NFT_MSG_DELOBJ)
        ]
    );
    assert!(kinds[4].is_deletion() && kinds[5].is_deletion() && !kinds[3].is_deletion());
    assert_eq!(a.changes[1].chain.as_deref(), Some("fwd"));
    assert_eq!(a.changes[1].known_family(), Some(Family::Inet));
    let dnat = &a.changes[2];
    assert_eq!((dnat.table.as_str(), dnat.family), ("nat", 2));
    assert_eq!(
        (dnat.chain.as_deref(), dnat.set.as_deref()),
        (Some("BERTH-DNAT"), None)
    );
    assert_eq!(a.changes[3].set.as_deref(), Some("s"));
    assert_eq!(a.changes[4].set.as_deref(), Some("m"));
    assert_eq!(
        (a.changes[5].table.as_str(), a.changes[5].set.as_deref()),
        ("t", None)
    );
    assert_eq!(b.generation, 42);
    assert_eq!(b.process.as_deref(), Some("iptables-nft"));
    assert_eq!(b.changes.len(), 1);
}

#[test]
fn a_huge_commit_is_capped_and_flagged() {
    let mut g = Grouper::new(MAX_CHANGES_PER_COMMIT);
    let element = message(
        NFT_MSG_NEWSETELEM,
        1,
        &[attr(1, &name("t")), attr(2, &name("s"))],
    );
    for _ in 0..=MAX_CHANGES_PER_COMMIT / 50 {
        g.scan(&element.repeat(50));
    }
    g.scan(&newgen(1, 1, "nft"));
    let c = only_commit(&mut g);
    assert_eq!(c.changes.len(), MAX_CHANGES_PER_COMMIT);
    assert!(c.truncated);
    g.scan(&[element, newgen(2, 1, "nft")].concat());
    let c = only_commit(&mut g);
    assert_eq!((c.changes.len(), c.truncated), (1, false));
}

#[test]
fn malformed_messages_become_one_overrun_and_the_next_commit_is_clean() {
    let mut g = Grouper::new(100);
    g.scan(&rule(NFT_MSG_NEWRULE, "filter", "INPUT"));
    let mut bad = rule(NFT_MSG_NEWRULE, "filter", "OUTPUT");
    bad[0..4].copy_from_slice(&4000u32.to_ne_bytes());
    g.scan(&bad);
    let mut bad_attr = rule(NFT_MSG_NEWRULE, "filter", "OUTPUT");
    bad_attr[HEADER_LEN + 4..HEADER_LEN + 6].copy_from_slice(&300u16.to_ne_bytes());
    g.scan(&bad_attr);
    assert_eq!(commits(&mut g), [Notice::Overrun]);
    let mut short = message(NFT_MSG_NEWGEN, 0, &[]);
    short.truncate(HEADER_LEN + 2);
    short[0..4].copy_from_slice(&((HEADER_LEN + 2) as u32).to_ne_bytes());
    g.scan(&short);
    let mut wrong_pid = newgen(5, 1, "nft");
    wrong_pid[HEADER_LEN + 12..HEADER_LEN + 14].copy_from_slice(&6u16.to_ne_bytes());
    g.scan(&wrong_pid);
    // Overruns not yet returned are coalesced.
    assert_eq!(commits(&mut g), [Notice::Overrun]);
    g.scan(
        &[
            rule(NFT_MSG_NEWRULE, "filter", "FORWARD"),
            newgen(6, 1, "nft"),
        ]
        .concat(),
    );
    let c = only_commit(&mut g);
    assert_eq!(c.changes.len(), 1, "nothing of the damaged commits leaks");
    g.scan(&[rule(NFT_MSG_NEWRULE, "filter", "X")].concat());
    g.overrun();
    g.scan(&newgen(8, 1, "nft"));
    let notices = commits(&mut g);
    assert!(matches!(&notices[..], [Notice::Overrun, Notice::Commit(c)] if c.changes.is_empty()));
}

#[test]
fn other_messages_and_odd_attributes_are_tolerated() {
    let mut g = Grouper::new(100);
    // NLMSG_NOOP and a message of another nfnetlink subsystem are skipped.
    let mut other = message(NFT_MSG_NEWTABLE, 1, &[attr(1, &name("ct"))]);
    other[4..6].copy_from_slice(&(1u16 << 8).to_ne_bytes());
    let mut noop = message(0, 0, &[]);
    noop[4..6].copy_from_slice(&1u16.to_ne_bytes());
    let long = "x".repeat(400);
    let mut d = [other, noop].concat();
    d.extend(message(
        NFT_MSG_NEWTABLE,
        99,
        &[attr(1, b"a\xffb\0junk"), attr(1, b"second")],
    ));
    d.extend(message(
        NFT_MSG_NEWTABLE,
        1,
        &[attr(1, long.as_bytes()), attr(0x8000 | 3, b"")],
    ));
    d.extend(message(NFT_MSG_NEWGEN, 0, &[]));
    g.scan(&d);
    let c = only_commit(&mut g);
    assert_eq!(
        c.generation, 9,
        "from nfgenmsg's res_id when NFTA_GEN_ID is missing"
    );
    assert_eq!((c.pid, c.process.as_deref()), (None, None));
    assert_eq!(c.changes.len(), 2);
    assert_eq!(c.changes[0].table, "a\u{fffd}b");
    assert_eq!(c.changes[0].known_family(), None);
    assert_eq!(c.changes[1].table.len(), MAX_NAME_LEN);
    assert!(!c.is_from_this_process());
}

#[test]
fn own_threads_are_recognised() {
    let commit = |pid| Commit {
        generation: 1,
        pid,
        process: None,
        port_id: 0,
        changes: Vec::new(),
        truncated: false,
    };
    assert!(commit(Some(std::process::id())).is_from_this_process());
    let tid = nix::unistd::gettid().as_raw() as u32;
    assert!(commit(Some(tid)).is_from_this_process());
    assert!(!commit(Some(0)).is_from_this_process());
    assert!(!commit(Some(u32::MAX)).is_from_this_process());
}

/// Real notifications (captured from a fresh namespace into the fuzz corpus): `nft`,
/// `iptables-nft`, `iptables` and `xtables-nft-multi` commits, and `nft flush ruleset`.
#[test]
fn captured_kernel_notifications_decode() {
    let decode = |seed: &[u8]| -> Vec<Commit> {
        let mut g = Grouper::new(MAX_CHANGES_PER_COMMIT);
        for datagram in split_marker(seed) {
            g.scan(datagram);
        }
        commits(&mut g)
            .into_iter()
            .map(|n| match n {
                Notice::Commit(c) => c,
                Notice::Overrun => panic!("a captured seed reads as an overrun"),
            })
            .collect()
    };
    let summary = |c: &Commit| -> Vec<String> {
        c.changes
            .iter()
            .map(|x| {
                format!(
                    "{:?} {} {} {:?} {:?}",
                    x.kind, x.family, x.table, x.chain, x.set
                )
            })
            .collect()
    };
    let add = decode(include_bytes!(
        "../../../../../fuzz/corpus/nftables_notices/seed-nft-add"
    ));
    assert_eq!(add.len(), 3);
    assert!(add.iter().all(|c| c.process.as_deref() == Some("nft")));
    assert!(
        add.windows(2)
            .all(|w| w[1].generation == w[0].generation + 1)
    );
    assert_eq!(summary(&add[2]), ["NewRule 1 t Some(\"c\") None"]);
    assert_eq!(
        add[0].pid,
        Some(add[0].port_id),
        "nft binds its socket to its pid"
    );
    let nat = decode(include_bytes!(
        "../../../../../fuzz/corpus/nftables_notices/seed-iptables-nat"
    ));
    let names: Vec<_> = nat
        .iter()
        .map(|c| c.process.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["iptables-nft", "iptables-nft", "iptables"]);
    assert_eq!(
        summary(&nat[2]),
        ["DelRule 2 nat Some(\"BERTH-DNAT\") None"]
    );
    let fwd = decode(include_bytes!(
        "../../../../../fuzz/corpus/nftables_notices/seed-iptables-nft-forward"
    ));
    assert_eq!(
        summary(&fwd[0]),
        [
            "NewTable 2 filter None None",
            "NewChain 2 filter Some(\"FORWARD\") None",
            "NewRule 2 filter Some(\"FORWARD\") None"
        ]
    );
    let multi = decode(include_bytes!(
        "../../../../../fuzz/corpus/nftables_notices/seed-xtables-multi"
    ));
    assert_eq!(multi[0].process.as_deref(), Some("xtables-nft-mul"));
    let flush = decode(include_bytes!(
        "../../../../../fuzz/corpus/nftables_notices/seed-flush-ruleset"
    ));
    assert_eq!(flush.len(), 1);
    assert!(flush[0].changes.iter().all(|c| c.kind.is_deletion()));
    assert_eq!(flush[0].changes.len(), 14);
    let set = decode(include_bytes!(
        "../../../../../fuzz/corpus/nftables_notices/seed-nft-set"
    ));
    let kinds: Vec<_> = set
        .iter()
        .flat_map(|c| c.changes.iter().map(|x| x.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ChangeKind::NewSet,
            ChangeKind::NewElem,
            ChangeKind::NewElem,
            ChangeKind::DelElem
        ]
    );
}

fn split_marker(mut rest: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        let cut = rest
            .windows(4)
            .position(|w| w == [0xff; 4])
            .unwrap_or(rest.len());
        out.push(&rest[..cut]);
        rest = rest.get(cut + 4..).unwrap_or(&[]);
    }
    out
}

#[test]
fn fuzz_entry_tolerates_garbage() {
    for n in 0..200u8 {
        let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(53) ^ n).collect();
        fuzz_scan_nftables_notices(&junk);
    }
    let element = message(
        NFT_MSG_NEWSETELEM,
        1,
        &[attr(1, &name("t")), attr(2, &name("s"))],
    );
    let mut d = element.repeat(20);
    d.extend([0xff; 4]);
    d.extend(newgen(3, 1, "nft"));
    fuzz_scan_nftables_notices(&d);
}

//! Kernel tests of nf_tables over netlink, as root, inside throwaway namespaces. What berth builds
//! is checked with `nft list` (run in the namespace, independent of berth) against what the
//! equivalent `nft` script builds, and with real traffic; failing batches must leave nothing.

mod common;

use std::thread;

use berth_netlink::Error;
use berth_netlink::nftables::{
    BaseChain, Batch, ChainType, Checksum, CmpOp, Data, Expr, Family, Hook, ListedExpr, MetaKey,
    NftHandle, PayloadBase, Policy, Register, RuleCompat, SetElement, Verdict, priority,
};
use berth_testhost::TestHost;
use common::host;

fn nft_handle(h: &TestHost) -> NftHandle {
    NftHandle::open(h.netns()).expect("opening an nfnetlink socket in the test namespace")
}

/// Runs an nft script inside the namespace; panics with nft's message if it fails.
fn nft_script(h: &TestHost, script: &str) {
    if let Err(e) = h.run_with_input("nft", &["-f", "-"], script) {
        panic!("nft -f failed: {e}\n{script}");
    }
}

/// `nft ARGS...` inside the namespace; stdout, or `None` when nft fails.
fn nft(h: &TestHost, args: &[&str]) -> Option<String> {
    let out = h.output("nft", args).expect("running nft");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn list_table(h: &TestHost, family: &str, table: &str) -> String {
    nft(h, &["list", "table", family, table])
        .unwrap_or_else(|| panic!("nft list table {family} {table} failed"))
}

fn ifname(name: &str) -> Vec<u8> {
    let mut v = vec![0u8; 16];
    v[..name.len()].copy_from_slice(name.as_bytes());
    v
}

fn be16(port: u16) -> Vec<u8> {
    port.to_be_bytes().to_vec()
}

/// A concatenation part of 2 bytes (a port), padded to a 4-byte register.
fn port_reg(port: u16) -> Vec<u8> {
    let mut v = be16(port);
    v.extend([0, 0]);
    v
}

fn ipv4(s: &str) -> Vec<u8> {
    s.parse::<std::net::Ipv4Addr>()
        .expect("an IPv4 literal")
        .octets()
        .to_vec()
}

/// `ip daddr 127.0.0.11 udp dport 53 notrack udp dport set 41000`, written as expressions.
fn redirect_rule(l4proto: u8, csum_offset: u32) -> Vec<Expr> {
    vec![
        Expr::PayloadLoad {
            base: PayloadBase::Network,
            offset: 16,
            len: 4,
            dreg: Register::R1,
        },
        Expr::Cmp {
            op: CmpOp::Eq,
            sreg: Register::R1,
            data: ipv4("127.0.0.11"),
        },
        Expr::Meta {
            key: MetaKey::L4Proto,
            dreg: Register::R1,
        },
        Expr::Cmp {
            op: CmpOp::Eq,
            sreg: Register::R1,
            data: vec![l4proto],
        },
        Expr::PayloadLoad {
            base: PayloadBase::Transport,
            offset: 2,
            len: 2,
            dreg: Register::R1,
        },
        Expr::Cmp {
            op: CmpOp::Eq,
            sreg: Register::R1,
            data: be16(53),
        },
        Expr::Notrack,
        Expr::Immediate {
            dreg: Register::R1,
            data: Data::Value(be16(41000)),
        },
        Expr::PayloadWrite {
            sreg: Register::R1,
            base: PayloadBase::Transport,
            offset: 2,
            len: 2,
            checksum: Some(Checksum::inet(csum_offset)),
        },
    ]
}

const SETS: &str = "\
add set inet t s4 { type ipv4_addr; flags interval; }
add map inet t icc { type ifname . ifname : verdict; }
add set inet t cc { type ipv4_addr . inet_service; flags interval; }
add map inet t dn { type inet_proto . inet_service : ipv4_addr . inet_service; }
";

/// Tables, base and regular chains, rules of every expression kind, and elements of plain,
/// interval, concatenated-interval and verdict/value maps, built through berth, list exactly like
/// the same objects built by an nft script.
#[test]
fn what_berth_builds_lists_exactly_like_the_nft_script() {
    let reference = host();
    nft_script(
        &reference,
        &format!(
            "add table inet t
add chain inet t pre {{ type nat hook prerouting priority dstnat; policy accept; }}
add chain inet t out {{ type filter hook output priority raw; policy accept; }}
add chain inet t f
add rule inet t f counter accept
add rule inet t pre meta nfproto ipv4 iifname \"eth0\" oifname \"br-x\" jump f
add rule inet t out ip daddr 127.0.0.11 udp dport 53 notrack udp dport set 41000
add rule inet t out ip daddr 127.0.0.11 tcp dport 53 notrack tcp dport set 41000
add rule inet t f meta l4proto tcp drop
add rule inet t f return
{SETS}
add element inet t s4 {{ 10.0.0.0/24, 10.1.2.3 }}
add element inet t icc {{ \"br-a\" . \"br-a\" : accept, \"br-b\" . \"br-c\" : jump f }}
add element inet t cc {{ 10.0.0.1 . 80-90 }}
add element inet t dn {{ tcp . 8080 : 172.17.0.2 . 80 }}
"
        ),
    );

    let h = host();
    let nft_nl = nft_handle(&h);
    let mut b = Batch::new();
    let t = "t";
    b.add_table(Family::Inet, t)
        .add_base_chain(
            Family::Inet,
            t,
            "pre",
            &BaseChain::new(
                ChainType::Nat,
                Hook::Prerouting,
                priority::DSTNAT,
                Policy::Accept,
            ),
        )
        .add_base_chain(
            Family::Inet,
            t,
            "out",
            &BaseChain::new(
                ChainType::Filter,
                Hook::Output,
                priority::RAW,
                Policy::Accept,
            ),
        )
        .add_chain(Family::Inet, t, "f")
        .add_rule(
            Family::Inet,
            t,
            "f",
            &[Expr::Counter, Expr::verdict(Verdict::Accept)],
        )
        .add_rule(
            Family::Inet,
            t,
            "pre",
            &[
                Expr::Meta {
                    key: MetaKey::NfProto,
                    dreg: Register::R1,
                },
                Expr::Cmp {
                    op: CmpOp::Eq,
                    sreg: Register::R1,
                    data: vec![2],
                },
                Expr::Meta {
                    key: MetaKey::IifName,
                    dreg: Register::R1,
                },
                Expr::Cmp {
                    op: CmpOp::Eq,
                    sreg: Register::R1,
                    data: ifname("eth0"),
                },
                Expr::Meta {
                    key: MetaKey::OifName,
                    dreg: Register::R1,
                },
                Expr::Cmp {
                    op: CmpOp::Eq,
                    sreg: Register::R1,
                    data: ifname("br-x"),
                },
                Expr::verdict(Verdict::Jump("f".into())),
            ],
        );
    // In an inet table, `ip daddr` first checks that the packet is IPv4.
    for (proto, csum) in [(17u8, 6u32), (6, 16)] {
        let mut rule = vec![
            Expr::Meta {
                key: MetaKey::NfProto,
                dreg: Register::R1,
            },
            Expr::Cmp {
                op: CmpOp::Eq,
                sreg: Register::R1,
                data: vec![2],
            },
        ];
        rule.extend(redirect_rule(proto, csum));
        b.add_rule(Family::Inet, t, "out", &rule);
    }
    b.add_rule(
        Family::Inet,
        t,
        "f",
        &[
            Expr::Meta {
                key: MetaKey::L4Proto,
                dreg: Register::R1,
            },
            Expr::Cmp {
                op: CmpOp::Eq,
                sreg: Register::R1,
                data: vec![6],
            },
            Expr::verdict(Verdict::Drop),
        ],
    )
    .add_rule(Family::Inet, t, "f", &[Expr::verdict(Verdict::Return)]);
    nft_nl.commit(&b).expect("the rules batch");

    // berth-netlink does not create sets (nft does, in berth's base layout): the same script.
    nft_script(&h, SETS);

    let mut icc_key = ifname("br-b");
    icc_key.extend(ifname("br-c"));
    let mut icc_self = ifname("br-a");
    icc_self.extend(ifname("br-a"));
    let mut cc_start = ipv4("10.0.0.1");
    cc_start.extend(port_reg(80));
    let mut cc_end = ipv4("10.0.0.1");
    cc_end.extend(port_reg(90));
    let mut dn_key = vec![6, 0, 0, 0];
    dn_key.extend(port_reg(8080));
    let mut dn_val = ipv4("172.17.0.2");
    dn_val.extend(port_reg(80));
    let mut b = Batch::new();
    b.add_elements(
        Family::Inet,
        t,
        "s4",
        &[
            SetElement::interval_end(ipv4("0.0.0.0")),
            SetElement::key(ipv4("10.0.0.0")),
            SetElement::interval_end(ipv4("10.0.1.0")),
            SetElement::key(ipv4("10.1.2.3")),
            SetElement::interval_end(ipv4("10.1.2.4")),
        ],
    )
    .add_elements(
        Family::Inet,
        t,
        "icc",
        &[
            SetElement::key(icc_self).with_data(Data::Verdict(Verdict::Accept)),
            SetElement::key(icc_key).with_data(Data::Verdict(Verdict::Jump("f".into()))),
        ],
    )
    .add_elements(
        Family::Inet,
        t,
        "cc",
        &[SetElement::range(cc_start, cc_end)],
    )
    .add_elements(
        Family::Inet,
        t,
        "dn",
        &[SetElement::key(dn_key).with_data(Data::Value(dn_val))],
    );
    nft_nl.commit(&b).expect("the elements batch");

    let want = list_table(&reference, "inet", "t");
    let got = list_table(&h, "inet", "t");
    assert_eq!(got, want, "berth's table differs from nft's");
    assert!(
        got.contains("elements = { 10.0.0.0/24, 10.1.2.3 }"),
        "{got}"
    );
    assert!(got.contains("udp dport set 41000"), "{got}");
}

/// The plain interval set without nft's leading `0.0.0.0` interval end lists the same.
#[test]
fn interval_elements_without_a_leading_end_list_the_same() {
    let h = host();
    nft_script(
        &h,
        "add table inet t\nadd set inet t s4 { type ipv4_addr; flags interval; }\n",
    );
    let nl = nft_handle(&h);
    let mut b = Batch::new();
    b.add_elements(
        Family::Inet,
        "t",
        "s4",
        &[
            SetElement::key(ipv4("192.168.4.0")),
            SetElement::interval_end(ipv4("192.168.6.0")),
        ],
    );
    nl.commit(&b).unwrap();
    assert!(
        list_table(&h, "inet", "t").contains("elements = { 192.168.4.0/23 }"),
        "{}",
        list_table(&h, "inet", "t")
    );
    // Deleting the interval (start and end, as nft sends it) empties the set.
    let mut b = Batch::new();
    b.delete_elements(
        Family::Inet,
        "t",
        "s4",
        &[
            SetElement::key(ipv4("192.168.4.0")),
            SetElement::interval_end(ipv4("192.168.6.0")),
        ],
    );
    nl.commit(&b).unwrap();
    assert!(
        !list_table(&h, "inet", "t").contains("elements"),
        "{}",
        list_table(&h, "inet", "t")
    );
}

/// A batch with a duplicate element (create = NLM_F_EXCL) is refused as a whole: the table and
/// chain added before it in the same batch do not exist afterwards, the error is typed and names
/// the set.
#[test]
fn a_duplicate_element_refuses_the_whole_batch() {
    let h = host();
    nft_script(
        &h,
        "add table inet berth\nadd map inet berth dnat4 { type inet_service : ipv4_addr; }\n",
    );
    let nl = nft_handle(&h);
    let element = || [SetElement::key(be16(8080)).with_data(Data::Value(ipv4("172.17.0.2")))];
    let mut b = Batch::new();
    b.create_elements(Family::Inet, "berth", "dnat4", &element());
    nl.commit(&b).expect("the first create");
    let before = list_table(&h, "inet", "berth");
    assert!(before.contains("8080 : 172.17.0.2"), "{before}");

    // `add` of an existing element is accepted (as with nft add element) ...
    let mut b = Batch::new();
    b.add_elements(Family::Inet, "berth", "dnat4", &element());
    nl.commit(&b).expect("add of an existing element");

    // ... `create` is refused, and takes the rest of its batch with it.
    let mut b = Batch::new();
    b.add_table(Family::Inet, "other")
        .add_chain(Family::Inet, "other", "c")
        .add_elements(
            Family::Inet,
            "berth",
            "dnat4",
            &[SetElement::key(be16(9090)).with_data(Data::Value(ipv4("172.17.0.3")))],
        )
        .create_elements(Family::Inet, "berth", "dnat4", &element());
    let e = nl.commit(&b).unwrap_err();
    assert!(e.is_exists(), "{e:?}");
    assert_eq!(
        e.to_string(),
        "nftables element of set \"dnat4\" in table inet berth already exists"
    );
    assert_eq!(list_table(&h, "inet", "berth"), before, "nothing changed");
    assert!(nft(&h, &["list", "table", "inet", "other"]).is_none());
    assert!(!nft(&h, &["list", "tables"]).unwrap().contains("other"));

    // Deleting a missing element is NotFound and names the set.
    let mut b = Batch::new();
    b.delete_elements(Family::Inet, "berth", "dnat4", &[SetElement::key(be16(1))]);
    let e = nl.commit(&b).unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert!(e.to_string().contains("set \"dnat4\""), "{e}");

    // Deleting the element works and the handle keeps working after errors.
    let mut b = Batch::new();
    b.delete_elements(
        Family::Inet,
        "berth",
        "dnat4",
        &[SetElement::key(be16(8080))],
    );
    nl.commit(&b).unwrap();
    assert!(!list_table(&h, "inet", "berth").contains("8080"));
}

/// A rule in a chain that does not exist is refused with a typed error naming the chain, and
/// the table created earlier in the batch is not left behind.
#[test]
fn a_rule_in_a_missing_chain_refuses_the_whole_batch() {
    let h = host();
    let nl = nft_handle(&h);
    let mut b = Batch::new();
    b.add_table(Family::Ip, "t1")
        .add_chain(Family::Ip, "t1", "exists")
        .add_rule(Family::Ip, "t1", "missing", &[Expr::Counter]);
    let e = nl.commit(&b).unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("rule in chain \"missing\" of table ip t1"),
        "{text}"
    );
    assert_eq!(nft(&h, &["list", "tables"]).unwrap().trim(), "");

    // A kernel refusal of an expression carries the kernel's explanation.
    let mut b = Batch::new();
    b.add_table(Family::Ip, "t1")
        .add_chain(Family::Ip, "t1", "c")
        .add_rule(
            Family::Ip,
            "t1",
            "c",
            // A 16-byte interface name does not fit the last 4-byte register.
            &[Expr::Meta {
                key: MetaKey::IifName,
                dreg: Register::reg32(15).expect("a 4-byte register"),
            }],
        );
    let e = nl.commit(&b).unwrap_err();
    assert!(
        matches!(e, Error::Invalid { .. } | Error::Kernel { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("chain \"c\" of table ip t1"), "{e}");
    assert_eq!(nft(&h, &["list", "tables"]).unwrap().trim(), "");
}

/// "add, delete, add" replaces a table atomically, whether it existed or not.
#[test]
fn replace_table_swaps_the_contents() {
    let h = host();
    let nl = nft_handle(&h);
    let build = |chain: &str| {
        let mut b = Batch::new();
        b.replace_table(Family::Ip, "r")
            .add_chain(Family::Ip, "r", chain)
            .add_rule(Family::Ip, "r", chain, &[Expr::Counter]);
        b
    };
    nl.commit(&build("first"))
        .expect("replacing a missing table");
    let listed = list_table(&h, "ip", "r");
    assert!(listed.contains("chain first"), "{listed}");
    nl.commit(&build("second")).expect("replacing the table");
    let listed = list_table(&h, "ip", "r");
    assert!(
        listed.contains("chain second") && !listed.contains("chain first"),
        "{listed}"
    );
    // Deleting a missing table fails the batch.
    let mut b = Batch::new();
    b.delete_table(Family::Ip, "r")
        .delete_table(Family::Ip, "r");
    let e = nl.commit(&b).unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert!(e.to_string().contains("table ip r"), "{e}");
    assert!(list_table(&h, "ip", "r").contains("chain second"));
    // An empty batch is a no-op.
    nl.commit(&Batch::new()).unwrap();
}

/// A rule built through berth really drops traffic: `ip daddr 127.0.0.2 counter drop` in an
/// input base chain stops pings to 127.0.0.2 but not to 127.0.0.1, and its counter counts them.
#[test]
fn a_drop_rule_drops_real_traffic() {
    let h = host();
    let nl = nft_handle(&h);
    assert!(h.ping("127.0.0.2"), "loopback answers before the rule");
    let mut b = Batch::new();
    b.add_table(Family::Ip, "fw")
        .add_base_chain(
            Family::Ip,
            "fw",
            "input",
            &BaseChain::new(
                ChainType::Filter,
                Hook::Input,
                priority::FILTER,
                Policy::Accept,
            ),
        )
        .add_rule(
            Family::Ip,
            "fw",
            "input",
            &[
                Expr::PayloadLoad {
                    base: PayloadBase::Network,
                    offset: 16,
                    len: 4,
                    dreg: Register::R1,
                },
                Expr::Cmp {
                    op: CmpOp::Eq,
                    sreg: Register::R1,
                    data: ipv4("127.0.0.2"),
                },
                Expr::Counter,
                Expr::verdict(Verdict::Drop),
            ],
        );
    nl.commit(&b).unwrap();
    assert!(!h.ping("127.0.0.2"), "the rule drops pings to 127.0.0.2");
    assert!(h.ping("127.0.0.1"), "other traffic passes");
    let listed = list_table(&h, "ip", "fw");
    assert!(
        listed.contains("ip daddr 127.0.0.2 counter packets 1 "),
        "{listed}"
    );
    let mut b = Batch::new();
    b.delete_table(Family::Ip, "fw");
    nl.commit(&b).unwrap();
    assert!(
        h.ping("127.0.0.2"),
        "loopback answers after the table is gone"
    );
}

/// Thousands of messages in one batch (every one acked) and concurrent commits from several
/// threads on one handle.
#[test]
fn large_batches_and_concurrent_commits() {
    let h = host();
    nft_script(
        &h,
        "add table inet t\nadd set inet t ports { type inet_service; }\n",
    );
    let nl = nft_handle(&h);
    let mut b = Batch::new();
    for port in 1..=5000u16 {
        b.add_elements(Family::Inet, "t", "ports", &[SetElement::key(be16(port))]);
    }
    assert_eq!(b.len(), 5000);
    nl.commit(&b).expect("a batch of 5000 messages");
    thread::scope(|s| {
        for worker in 0..4u16 {
            let nl = &nl;
            s.spawn(move || {
                for i in 0..50u16 {
                    let port = 10_000 + worker * 100 + i;
                    let mut b = Batch::new();
                    b.create_elements(Family::Inet, "t", "ports", &[SetElement::key(be16(port))]);
                    nl.commit(&b).expect("a concurrent commit");
                }
            });
        }
    });
    let json = nft(&h, &["-j", "list", "set", "inet", "t", "ports"]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let count = v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|o| o["set"]["elem"].as_array().map(Vec::len))
        .unwrap();
    assert_eq!(count, 5200);
}

/// Kernel test (root): rules listed back with their handles and expressions; a range, a
/// bitwise mask and an x_tables target list as `nft` shows them; a rule deleted by handle, a
/// chain flushed and deleted; a missing chain lists nothing.
#[test]
fn rules_list_back_and_go_by_handle_flush_and_chain_delete() {
    let h = TestHost::new().expect("a test namespace (run as root)");
    let nft_h = nft_handle(&h);
    let r1 = Register::R1;
    let masq = Expr::Target {
        name: "MASQUERADE".into(),
        rev: 0,
        // struct nf_nat_ipv4_multi_range_compat: one empty range.
        info: {
            let mut v = 1u32.to_ne_bytes().to_vec();
            v.resize(24, 0);
            v
        },
    };
    let ranged = vec![
        Expr::PayloadLoad {
            base: PayloadBase::Transport,
            offset: 2,
            len: 2,
            dreg: r1,
        },
        Expr::Range {
            op: CmpOp::Eq,
            sreg: r1,
            from: be16(8000),
            to: be16(8010),
        },
        Expr::Counter,
        Expr::verdict(Verdict::Accept),
    ];
    let masked = vec![
        Expr::PayloadLoad {
            base: PayloadBase::Network,
            offset: 12,
            len: 4,
            dreg: r1,
        },
        Expr::Bitwise {
            sreg: r1,
            dreg: r1,
            mask: vec![255, 255, 240, 0],
            xor: vec![0; 4],
        },
        Expr::Cmp {
            op: CmpOp::Eq,
            sreg: r1,
            data: ipv4("172.31.16.0"),
        },
        Expr::Counter,
        masq,
    ];
    let mut b = Batch::new();
    b.add_table(Family::Ip, "nat")
        .add_base_chain(
            Family::Ip,
            "nat",
            "POSTROUTING",
            &BaseChain::new(
                ChainType::Nat,
                Hook::Postrouting,
                priority::SRCNAT,
                Policy::Accept,
            ),
        )
        .add_chain(Family::Ip, "nat", "X")
        .add_rule(Family::Ip, "nat", "X", &ranged)
        .add_rule_compat(
            Family::Ip,
            "nat",
            "X",
            &masked,
            Some(RuleCompat {
                proto: 6,
                inverted: false,
            }),
        );
    nft_h
        .commit(&b)
        .expect("rules with range, bitwise and an x_tables target");
    let listed = list_table(&h, "ip", "nat");
    assert!(
        listed.contains("th dport 8000-8010 counter packets 0 bytes 0 accept"),
        "{listed}"
    );
    assert!(
        listed.contains("ip saddr 172.31.16.0/20 counter packets 0 bytes 0 masquerade"),
        "{listed}"
    );

    let rules = nft_h.list_rules(Family::Ip, "nat", "X").expect("listing");
    assert_eq!(rules.len(), 2);
    let names: Vec<&str> = rules[1].exprs.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["payload", "bitwise", "cmp", "counter", "target"]);
    // Read back into the expressions that were sent.
    for (listed, sent) in rules.iter().zip([&ranged, &masked]) {
        let decoded: Option<Vec<Expr>> = listed.exprs.iter().map(ListedExpr::decode).collect();
        assert_eq!(decoded.as_ref(), Some(sent));
    }
    assert!(rules[0].handle != rules[1].handle);
    assert!(
        nft_h
            .list_rules(Family::Ip, "nat", "missing")
            .expect("listing")
            .is_empty()
    );
    assert!(
        nft_h
            .list_rules(Family::Ip6, "nothere", "X")
            .expect("listing")
            .is_empty()
    );

    let mut del = Batch::new();
    del.delete_rule(Family::Ip, "nat", "X", rules[0].handle);
    nft_h.commit(&del).expect("delete by handle");
    let left = nft_h.list_rules(Family::Ip, "nat", "X").expect("listing");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0], rules[1]);

    // Flushed and deleted in one transaction; a second chain goes with its rules.
    let mut gone = Batch::new();
    gone.flush_chain(Family::Ip, "nat", "X")
        .delete_chain(Family::Ip, "nat", "X")
        .add_chain(Family::Ip, "nat", "Y")
        .add_rule(Family::Ip, "nat", "Y", &[Expr::verdict(Verdict::Accept)]);
    nft_h.commit(&gone).expect("flush and delete");
    assert_eq!(
        nft_h
            .list_rules(Family::Ip, "nat", "Y")
            .expect("listing")
            .len(),
        1
    );
    let mut y = Batch::new();
    y.delete_chain(Family::Ip, "nat", "Y");
    nft_h.commit(&y).expect("a chain is deleted with its rules");
    let listed = list_table(&h, "ip", "nat");
    assert!(
        !listed.contains("chain X") && !listed.contains("chain Y"),
        "{listed}"
    );
}

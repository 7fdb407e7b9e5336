//! Fixtures shared by the iptables backend's unit tests (a configuration and a desired state),
//! a model of `iptables-restore --noflush`, and the tests of reconcile (`converge`, in `dump`).

use super::*;
use crate::model::Protocol;
use crate::spec::{Backend, LinkPort};

pub(super) fn cfg() -> FirewallConfig {
    let mut c = FirewallConfig::new(Backend::Iptables);
    c.ipv6 = true;
    c.trusted_interfaces = vec!["eth9".into()];
    c
}

pub(super) fn state() -> DesiredState {
    let c = cfg();
    let mut s = DesiredState::new();
    let mut n = NetworkRules::new(
        "br-a",
        Some("172.18.0.0/16".parse().unwrap()),
        Some("fd00:a::/64".parse().unwrap()),
    );
    n.host_ipv4 = Some("192.0.2.1".parse().unwrap());
    s.insert_network(&c, n).unwrap();
    s.insert_port(
        &c,
        PortRule {
            proto: Protocol::Tcp,
            host_ip: None,
            host_ports: PortRange::single(8080).unwrap(),
            container_ip: "172.18.0.3".parse().unwrap(),
            container_ports: PortRange::single(80).unwrap(),
            bridge: "br-a".into(),
        },
    )
    .unwrap();
    s.insert_link(
        &c,
        LinkRule {
            bridge: "br-a".into(),
            parent_ip: "172.18.0.2".parse().unwrap(),
            child_ip: "172.18.0.3".parse().unwrap(),
            ports: vec![LinkPort {
                proto: Protocol::Tcp,
                port: 5432,
            }],
        },
    )
    .unwrap();
    s
}

#[test]
fn converge_on_empty_then_on_itself() {
    let c = cfg();
    let s = state();
    let layout = host_layout(&c, &s, Family::V4);
    let empty = Dump::parse(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
    )
    .unwrap();
    let (sections, report) = converge(&layout, Family::V4, &empty);
    assert!(!report.is_clean());
    // Simulate: the sections applied give a dump equal to the layout.
    let mut after = empty.clone();
    for s in &sections {
        simulate(&mut after, s.table, &s.ops);
    }
    let (again, report) = converge(&layout, Family::V4, &after);
    assert!(again.is_empty(), "{again:?}");
    assert!(report.is_clean(), "{report}");
    // And the undo gives back the empty ruleset.
    let mut undone = after.clone();
    for s in sections.iter().rev() {
        simulate(&mut undone, s.table, &s.undo);
    }
    assert_eq!(normalised(&undone), normalised(&empty));
}

#[test]
fn raw_chain_is_ipv4_only_and_jumped_to_first() {
    let c = cfg();
    let s = state();
    let v4 = host_layout(&c, &s, Family::V4);
    assert_eq!(
        v4.chains[&(Table::Raw, RAW.to_owned())],
        vec!["-d 127.0.0.0/8 ! -i lo -j DROP"]
    );
    let v6 = host_layout(&c, &s, Family::V6);
    assert!(!v6.chains.keys().any(|(t, _)| *t == Table::Raw));
    // A user's raw rule stays; berth's jump goes (back) in front of it.
    let dump = Dump::parse(
        "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -s 10.0.0.1/32 -j ACCEPT\nCOMMIT\n",
    )
    .unwrap();
    let (sections, report) = converge(&v4, Family::V4, &dump);
    assert!(
        report.structure.iter().any(|s| s.contains("BERTH-RAW")),
        "{report}"
    );
    let mut after = dump.clone();
    for s in &sections {
        simulate(&mut after, s.table, &s.ops);
    }
    assert_eq!(
        after.chain(Table::Raw, "PREROUTING").unwrap().rules,
        vec!["-j BERTH-RAW", "-s 10.0.0.1/32 -j ACCEPT"]
    );
    let (again, report) = converge(&v4, Family::V4, &after);
    assert!(again.is_empty() && report.is_clean(), "{report}");
}

#[test]
fn converge_keeps_user_rules_and_fixes_jump_order() {
    let c = cfg();
    let s = DesiredState::new();
    let layout = host_layout(&c, &s, Family::V4);
    let dump = Dump::parse(
        "*filter\n:FORWARD ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n:BERTH-OLD - [0:0]\n-A FORWARD -i eth0 -j ACCEPT\n-A FORWARD -j DOCKER-USER\n-A DOCKER-USER -s 10.0.0.1/32 -j DROP\n-A BERTH-OLD -j DROP\nCOMMIT\n",
    )
    .unwrap();
    let (sections, _) = converge(&layout, Family::V4, &dump);
    let mut after = dump.clone();
    for s in &sections {
        simulate(&mut after, s.table, &s.ops);
    }
    let fwd = after.chain(Table::Filter, "FORWARD").unwrap();
    assert_eq!(
        fwd.rules,
        vec!["-j DOCKER-USER", "-j BERTH-FORWARD", "-i eth0 -j ACCEPT"]
    );
    assert_eq!(
        after.chain(Table::Filter, USER_CHAIN).unwrap().rules,
        vec!["-s 10.0.0.1/32 -j DROP"]
    );
    assert!(after.chain(Table::Filter, "BERTH-OLD").is_none());
    let mut undone = after.clone();
    for s in sections.iter().rev() {
        simulate(&mut undone, s.table, &s.undo);
    }
    assert_eq!(normalised(&undone), normalised(&dump));
}

/// Drops empty built-in chains with the default policy, and empty tables.
fn normalised(d: &Dump) -> Dump {
    let mut d = d.clone();
    for chains in d.tables.values_mut() {
        chains.retain(|name, c| {
            let builtin = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]
                .contains(&name.as_str());
            !(builtin && c.rules.is_empty() && (c.policy.is_empty() || c.policy == "ACCEPT"))
        });
    }
    d.tables.retain(|_, c| !c.is_empty());
    d
}

/// A tiny model of iptables-restore --noflush, for tests.
pub(crate) fn simulate(dump: &mut Dump, table: Table, ops: &[IptOp]) {
    let chains = dump.tables.entry(table).or_default();
    for op in ops {
        match &*op.text() {
            IptOp::Declare(c) => {
                let e = chains.entry(c.clone()).or_insert_with(|| ChainDump {
                    policy: "-".into(),
                    rules: vec![],
                });
                e.rules.clear();
            }
            IptOp::Policy(c, p) => chains.entry(c.clone()).or_default().policy = p.clone(),
            IptOp::Append(c, s) => chains
                .get_mut(c)
                .expect("chain exists")
                .rules
                .push(s.clone()),

            IptOp::Insert(c, n, s) => chains
                .entry(c.clone())
                .or_default()
                .rules
                .insert(n - 1, s.clone()),
            IptOp::Delete(c, s) => {
                let r = &mut chains.get_mut(c).expect("chain exists").rules;
                let i = r.iter().position(|x| x == s).expect("rule exists");
                r.remove(i);
            }
            IptOp::AppendRule(_) | IptOp::DeleteRule(_) => {
                unreachable!("written out as text above")
            }
            IptOp::DeleteChain(c) => {
                assert!(
                    chains.get(c).expect("chain exists").rules.is_empty(),
                    "{c} not empty"
                );
                chains.remove(c);
            }
        }
    }
}

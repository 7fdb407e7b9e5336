//! Model-based property tests (no root): random sequences of operations, planned for both
//! backends. After every accepted step, the change's transaction applied to the model of the
//! previous full ruleset equals the model of the new full ruleset; refused steps are refused by
//! both backends; removing everything restores the initial model.

use berth_firewall::sim::RuleModel;
use berth_firewall::{
    Backend, DesiredState, FirewallConfig, LinkPort, LinkRule, NetworkRules, Planner, PortRange,
    PortRule, Protocol, Transaction,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    AddNetwork(u8, bool, bool, bool, bool, bool),
    RemoveNetwork(u8),
    AddPort(u8, u8, u8, bool, u8, u16, u8, u16, u8),
    RemovePort(usize),
    AddLink(u8, u8, u8, Vec<(bool, u16)>),
    RemoveLink(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let network = (
        any::<u8>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(n, a, b, c, d, e)| Op::AddNetwork(n, a, b, c, d, e));
    let port = (
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        prop::bool::weighted(0.25),
        any::<u8>(),
        any::<u16>(),
        any::<u8>(),
        any::<u16>(),
        any::<u8>(),
    )
        .prop_map(|(a, b, c, d, e, f, g, h, i)| Op::AddPort(a, b, c, d, e, f, g, h, i));
    let link = (
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        proptest::collection::vec((any::<bool>(), any::<u16>()), 0..4),
    )
        .prop_map(|(n, a, b, p)| Op::AddLink(n, a, b, p));
    prop_oneof![
        3 => network,
        1 => any::<u8>().prop_map(Op::RemoveNetwork),
        8 => port,
        2 => any::<usize>().prop_map(Op::RemovePort),
        1 => link,
        1 => any::<usize>().prop_map(Op::RemoveLink),
    ]
}

fn bridge(n: u8) -> String {
    format!("br-{}", n % 5)
}

fn container(n: u8, h: u8, v6: bool) -> std::net::IpAddr {
    let (k, h) = (n % 5, h % 4 + 2);
    let s = if v6 {
        format!("fd00:{k}::{h}")
    } else {
        format!("10.{k}.0.{h}")
    };
    s.parse().expect("ip")
}

fn port(op: &Op) -> Option<PortRule> {
    let Op::AddPort(n, h, proto, v6, host_ip, start, len, ctr, mode) = *op else {
        return None;
    };
    let proto = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp][usize::from(proto % 3)];
    // Mostly single ports over a wide space; sometimes ranges, some across 256-port blocks.
    let start = start % 30000 + 1;
    let len = if len % 4 == 0 { u16::from(len) * 3 } else { 0 };
    let host_ports = PortRange::new(start, start + len).ok()?;
    let ctr = ctr % 30000 + 1;
    let container_ports = match mode % 8 {
        0..=2 => host_ports,
        3..=4 => PortRange::single(ctr).ok()?,
        5..=6 => PortRange::new(ctr, ctr + len).ok()?,
        // Lengths that differ: refused unless they happen to match.
        _ => PortRange::new(ctr, ctr + u16::from(mode % 5)).ok()?,
    };
    let host_ip = match (host_ip % 3, v6) {
        (0, _) => None,
        (1, false) => Some("192.0.2.1".parse().ok()?),
        (1, true) => Some("2001:db8::1".parse().ok()?),
        (_, false) => Some("127.0.0.1".parse().ok()?),
        (_, true) => None,
    };
    Some(PortRule {
        proto,
        host_ip,
        host_ports,
        container_ip: container(n, h, v6),
        container_ports,
        bridge: bridge(n),
    })
}

fn planners() -> Vec<Planner> {
    [Backend::Iptables, Backend::Nftables]
        .into_iter()
        .map(|b| {
            let mut c = FirewallConfig::new(b);
            c.ipv6 = true;
            c.trusted_interfaces = vec!["eth9".into()];
            Planner::new(c).expect("planner")
        })
        .collect()
}

/// Plans `op` with one planner and returns the transaction and the state after it.
fn plan(p: &Planner, state: &DesiredState, op: &Op) -> Option<(Transaction, DesiredState)> {
    let cfg = p.config();
    let mut next = state.clone();
    let tx = match op {
        Op::AddNetwork(n, icc, internal, masq, snat, v6) => {
            let k = n % 5;
            let mut net = NetworkRules::new(
                &bridge(*n),
                Some(format!("10.{k}.0.0/16").parse().ok()?),
                v6.then(|| format!("fd00:{k}::/64").parse().ok()).flatten(),
            );
            net.icc = *icc;
            net.internal = *internal;
            net.masquerade = *masq;
            if *snat {
                net.host_ipv4 = Some(format!("192.0.2.{k}").parse().ok()?);
            }
            let tx = p.add_network(state, &net).ok()?;
            next.insert_network(cfg, net).expect("accepted");
            tx
        }
        Op::RemoveNetwork(n) => {
            let tx = p.remove_network(state, &bridge(*n)).ok()?;
            next.remove_network(&bridge(*n)).expect("accepted");
            tx
        }
        Op::AddPort(..) => {
            let pr = port(op)?;
            let tx = p.add_ports(state, std::slice::from_ref(&pr)).ok()?;
            next.insert_port(cfg, pr).expect("accepted");
            tx
        }
        Op::RemovePort(i) => {
            let pr = state.ports().get(i % state.ports().len().max(1))?.clone();
            let tx = p.remove_ports(state, std::slice::from_ref(&pr)).ok()?;
            next.remove_port(&pr).expect("accepted");
            tx
        }
        Op::AddLink(n, a, b, ports) => {
            let link = LinkRule {
                bridge: bridge(*n),
                parent_ip: container(*n, *a, false),
                child_ip: container(*n, *b, false),
                ports: ports
                    .iter()
                    .map(|(t, p)| LinkPort {
                        proto: if *t { Protocol::Tcp } else { Protocol::Udp },
                        port: p % 100,
                    })
                    .collect(),
            };
            let tx = p.add_link(state, &link).ok()?;
            next.insert_link(cfg, link).expect("accepted");
            tx
        }
        Op::RemoveLink(i) => {
            let l = state.links().get(i % state.links().len().max(1))?.clone();
            let tx = p.remove_link(state, &l).ok()?;
            next.remove_link(&l).expect("accepted");
            tx
        }
    };
    Some((tx, next))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn deltas_match_full_renders(ops in proptest::collection::vec(op(), 1..60)) {
        let planners = planners();
        let mut states = vec![DesiredState::new(); planners.len()];
        let initial: Vec<RuleModel> = planners.iter().map(|p| RuleModel::full(p, &DesiredState::new()).expect("full")).collect();
        let mut models = initial.clone();
        let run = |ops: &[Op], states: &mut Vec<DesiredState>, models: &mut Vec<RuleModel>| {
            for op in ops {
                let planned: Vec<_> = planners.iter().zip(states.iter()).map(|(p, s)| plan(p, s, op)).collect();
                prop_assert_eq!(planned[0].is_some(), planned[1].is_some(), "backends disagree on {:?}", op);
                for (i, pl) in planned.into_iter().enumerate() {
                    let Some((tx, next)) = pl else { continue };
                    prop_assert!(tx.processes() <= 2);
                    models[i].apply(&tx).map_err(|e| TestCaseError::fail(format!("{op:?}: {e}")))?;
                    let want = RuleModel::full(&planners[i], &next).expect("full");
                    prop_assert_eq!(&models[i], &want, "delta and full render disagree after {:?}", op);
                    states[i] = next;
                }
            }
            Ok(())
        };
        run(&ops, &mut states, &mut models)?;
        // Remove everything: links, ports, then networks.
        let mut teardown = Vec::new();
        for _ in states[0].links() { teardown.push(Op::RemoveLink(0)); }
        for _ in states[0].ports() { teardown.push(Op::RemovePort(0)); }
        for b in states[0].networks().keys() {
            let n: u8 = b.trim_start_matches("br-").parse().expect("bridge number");
            teardown.push(Op::RemoveNetwork(n));
        }
        run(&teardown, &mut states, &mut models)?;
        prop_assert_eq!(models, initial);
    }
}

//! Arbitrary sequences of berth-firewall model operations (networks, published ports, links),
//! planned for both backends. Asserted after every accepted step: the change's transaction,
//! applied to a model of the previous full ruleset, gives exactly the full ruleset of the new
//! state (an O(change) delta never drifts from a rewrite). A refused step changes nothing. At the
//! end, removing everything that was added restores the initial rendered state exactly.

#![no_main]

use std::net::IpAddr;

use arbitrary::Arbitrary;
use berth_firewall::sim::RuleModel;
use berth_firewall::{
    Backend, DesiredState, FirewallConfig, LinkPort, LinkRule, NetworkRules, Planner, PortRange,
    PortRule, Protocol, Transaction,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    AddNetwork {
        n: u8,
        icc: bool,
        internal: bool,
        masquerade: bool,
        snat: bool,
        v6: bool,
        odd_name: Option<String>,
    },
    RemoveNetwork {
        n: u8,
    },
    AddPort {
        n: u8,
        host: u8,
        proto: u8,
        v6: bool,
        host_ip: u8,
        start: u16,
        len: u8,
        ctr: u16,
        mode: u8,
    },
    RemovePort {
        i: u8,
    },
    AddLink {
        n: u8,
        a: u8,
        b: u8,
        ports: Vec<(bool, u16)>,
    },
    RemoveLink {
        i: u8,
    },
}

fn bridge(n: u8) -> String {
    format!("br-{}", n % 6)
}

fn network(
    n: u8,
    icc: bool,
    internal: bool,
    masquerade: bool,
    snat: bool,
    v6: bool,
) -> NetworkRules {
    let k = n % 6;
    let mut net = NetworkRules::new(
        &bridge(n),
        Some(format!("10.{k}.0.0/16").parse().expect("v4")),
        v6.then(|| format!("fd00:{k}::/64").parse().expect("v6")),
    );
    net.icc = icc;
    net.internal = internal;
    net.masquerade = masquerade;
    if snat {
        net.host_ipv4 = Some(format!("192.0.2.{k}").parse().expect("ip"));
    }
    net
}

fn container(n: u8, host: u8, v6: bool) -> IpAddr {
    let k = n % 6;
    let h = host % 5 + 2;
    if v6 {
        format!("fd00:{k}::{h}").parse().expect("v6")
    } else {
        format!("10.{k}.0.{h}").parse().expect("v4")
    }
}

fn port(
    n: u8,
    host: u8,
    proto: u8,
    v6: bool,
    host_ip: u8,
    start: u16,
    len: u8,
    ctr: u16,
    mode: u8,
) -> Option<PortRule> {
    let proto = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp][usize::from(proto % 3)];
    let start = start % 2000 + 1;
    let len = u16::from(len % 12);
    let host_ports = PortRange::new(start, start.checked_add(len)?).ok()?;
    let ctr = ctr % 2000 + 1;
    let container_ports = match mode % 4 {
        0 => host_ports,
        1 => PortRange::single(ctr).ok()?,
        2 => PortRange::new(ctr, ctr.checked_add(len)?).ok()?,
        // Often invalid: lengths differ.
        _ => PortRange::new(ctr, ctr.checked_add(u16::from(mode % 7))?).ok()?,
    };
    let host_ip = match (host_ip % 4, v6) {
        (0, _) => None,
        (1, false) => Some("192.0.2.1".parse().ok()?),
        (2, false) => Some("127.0.0.1".parse().ok()?),
        (1 | 2, true) => Some("2001:db8::1".parse().ok()?),
        // Wrong family, or unspecified.
        (_, false) => Some("::".parse().ok()?),
        (_, true) => Some("0.0.0.0".parse().ok()?),
    };
    Some(PortRule {
        proto,
        host_ip,
        host_ports,
        container_ip: container(n, host, v6),
        container_ports,
        bridge: bridge(n),
    })
}

fn full(planner: &Planner, state: &DesiredState) -> RuleModel {
    RuleModel::full(planner, state).expect("full render")
}

fn planners() -> Vec<Planner> {
    [Backend::Iptables, Backend::Nftables]
        .into_iter()
        .map(|b| {
            let mut c = FirewallConfig::new(b);
            c.ipv6 = true;
            c.trusted_interfaces = vec!["eth9".into()];
            c.forward_policy_drop = true;
            Planner::new(c).expect("planner")
        })
        .collect()
}

fn step(planners: &[Planner], models: &mut [RuleModel], state: &mut DesiredState, op: &Op) {
    let cfg = planners[0].config().clone();
    let mut next = state.clone();
    let plan = |p: &Planner| -> Result<Transaction, berth_firewall::Error> {
        match op {
            Op::AddNetwork {
                n,
                icc,
                internal,
                masquerade,
                snat,
                v6,
                odd_name,
            } => {
                let mut net = network(*n, *icc, *internal, *masquerade, *snat, *v6);
                if let Some(name) = odd_name {
                    net.bridge = name.chars().take(20).collect();
                }
                p.add_network(state, &net)
            }
            Op::RemoveNetwork { n } => p.remove_network(state, &bridge(*n)),
            Op::AddPort {
                n,
                host,
                proto,
                v6,
                host_ip,
                start,
                len,
                ctr,
                mode,
            } => match port(*n, *host, *proto, *v6, *host_ip, *start, *len, *ctr, *mode) {
                Some(pr) => p.add_ports(state, &[pr]),
                None => Err(berth_firewall::Error::PortNotFound {
                    port: "none".into(),
                }),
            },
            Op::RemovePort { i } => match state
                .ports()
                .get(usize::from(*i) % state.ports().len().max(1))
            {
                Some(pr) => p.remove_ports(state, std::slice::from_ref(pr)),
                None => Err(berth_firewall::Error::PortNotFound {
                    port: "none".into(),
                }),
            },
            Op::AddLink { n, a, b, ports } => {
                let link = LinkRule {
                    bridge: bridge(*n),
                    parent_ip: container(*n, *a, false),
                    child_ip: container(*n, *b, false),
                    ports: ports
                        .iter()
                        .take(4)
                        .map(|(tcp, p)| LinkPort {
                            proto: if *tcp { Protocol::Tcp } else { Protocol::Udp },
                            port: p % 3000,
                        })
                        .collect(),
                };
                p.add_link(state, &link)
            }
            Op::RemoveLink { i } => match state
                .links()
                .get(usize::from(*i) % state.links().len().max(1))
            {
                Some(l) => p.remove_link(state, l),
                None => Err(berth_firewall::Error::LinkNotFound {
                    link: "none".into(),
                }),
            },
        }
    };
    let results: Vec<_> = planners.iter().map(plan).collect();
    // Both backends accept or refuse the same operations.
    assert_eq!(results[0].is_ok(), results[1].is_ok(), "{results:?}");
    if results[0].is_err() {
        return;
    }
    let applied = match op {
        Op::AddNetwork {
            n,
            icc,
            internal,
            masquerade,
            snat,
            v6,
            odd_name,
        } => {
            let mut net = network(*n, *icc, *internal, *masquerade, *snat, *v6);
            if let Some(name) = odd_name {
                net.bridge = name.chars().take(20).collect();
            }
            next.insert_network(&cfg, net).map(|_| ())
        }
        Op::RemoveNetwork { n } => next.remove_network(&bridge(*n)).map(|_| ()),
        Op::AddPort {
            n,
            host,
            proto,
            v6,
            host_ip,
            start,
            len,
            ctr,
            mode,
        } => {
            let pr =
                port(*n, *host, *proto, *v6, *host_ip, *start, *len, *ctr, *mode).expect("planned");
            next.insert_port(&cfg, pr)
        }
        Op::RemovePort { i } => {
            let pr = state.ports()[usize::from(*i) % state.ports().len()].clone();
            next.remove_port(&pr).map(|_| ())
        }
        Op::AddLink { .. } | Op::RemoveLink { .. } => match op {
            Op::AddLink { n, a, b, ports } => next.insert_link(
                &cfg,
                LinkRule {
                    bridge: bridge(*n),
                    parent_ip: container(*n, *a, false),
                    child_ip: container(*n, *b, false),
                    ports: ports
                        .iter()
                        .take(4)
                        .map(|(tcp, p)| LinkPort {
                            proto: if *tcp { Protocol::Tcp } else { Protocol::Udp },
                            port: p % 3000,
                        })
                        .collect(),
                },
            ),
            Op::RemoveLink { i } => {
                let l = state.links()[usize::from(*i) % state.links().len()].clone();
                next.remove_link(&l).map(|_| ())
            }
            _ => unreachable!(),
        },
    };
    applied.expect("a planned operation is accepted by the state");
    for ((p, model), tx) in planners.iter().zip(models.iter_mut()).zip(results) {
        let tx = tx.expect("checked");
        assert!(tx.processes() <= 2, "one process per family at most");
        model.apply(&tx).unwrap_or_else(|e| panic!("{op:?}: {e}"));
        assert_eq!(
            *model,
            full(p, &next),
            "delta and full render disagree after {op:?}"
        );
    }
    *state = next;
}

fuzz_target!(|ops: Vec<Op>| {
    let planners = planners();
    let mut state = DesiredState::new();
    let initial: Vec<RuleModel> = planners.iter().map(|p| full(p, &state)).collect();
    let mut models = initial.clone();
    for op in ops.iter().take(64) {
        step(&planners, &mut models, &mut state, op);
    }
    // Remove everything, newest first.
    while let Some(l) = state.links().last().cloned() {
        let before = state.links().len();
        let i = u8::try_from(before - 1).unwrap_or(0);
        step(&planners, &mut models, &mut state, &Op::RemoveLink { i });
        assert!(state.links().len() < before || !state.links().contains(&l));
    }
    while !state.ports().is_empty() {
        let i = u8::try_from(state.ports().len() - 1).unwrap_or(0);
        let before = state.ports().len();
        step(&planners, &mut models, &mut state, &Op::RemovePort { i });
        assert!(state.ports().len() < before, "port removal refused");
    }
    let bridges: Vec<String> = state.networks().keys().cloned().collect();
    for b in bridges {
        let mut next = state.clone();
        for (p, model) in planners.iter().zip(models.iter_mut()) {
            let tx = p.remove_network(&state, &b).expect("remove network");
            model.apply(&tx).expect("remove network applies");
        }
        next.remove_network(&b).expect("remove");
        state = next;
    }
    assert_eq!(
        models, initial,
        "removing everything did not restore the initial state"
    );
});

//! The rules of each object berth owns in the iptables backend: the fixed base (BERTH-FORWARD,
//! BERTH-RAW), a network, a legacy link, and all of them for a desired state.

use super::*;

/// A single address as a network (`/32`, `/128`).
pub(super) fn host(addr: IpAddr) -> IpNet {
    IpNet::from(addr)
}

/// The rules of BERTH-FORWARD (fixed, in this order).
pub fn base_rules() -> Vec<Rule> {
    [ISOLATION, LINKS, ACCEPT, DROP]
        .into_iter()
        .map(|c| Rule::new(Table::Filter, FORWARD, Target::Jump(c.into())))
        .collect()
}

/// The rules of BERTH-RAW in `family` (fixed): the drop of loopback destinations from outside,
/// for IPv4; none for IPv6, whose loopback address the kernel never accepts from outside.
pub fn raw_rules(family: Family) -> Vec<Rule> {
    match family {
        Family::V4 => vec![loopback_from_outside_drop(Table::Raw, RAW)],
        Family::V6 => Vec::new(),
    }
}

/// The rules a network owns in `family` (none if it has no subnet of that family).
pub fn network_rules(config: &FirewallConfig, net: &NetworkRules, family: Family) -> Vec<Rule> {
    let Some(subnet) = net.subnet(family) else {
        return Vec::new();
    };
    let br = net.bridge.as_str();
    let f = Table::Filter;
    let mut r = Vec::new();
    if net.internal {
        r.push(
            Rule::new(f, ISOLATION, Target::Drop)
                .in_if(br)
                .not_out_if(br),
        );
        r.push(
            Rule::new(f, ISOLATION, Target::Drop)
                .not_in_if(br)
                .out_if(br),
        );
        if net.icc {
            r.push(Rule::new(f, ACCEPT, Target::Accept).in_if(br).out_if(br));
        } else {
            r.push(Rule::new(f, DROP, Target::Drop).in_if(br).out_if(br));
        }
        return r;
    }
    r.push(
        Rule::new(f, ISOLATION, Target::Jump(ISOLATION_2.into()))
            .in_if(br)
            .not_out_if(br),
    );
    r.push(Rule::new(f, ISOLATION_2, Target::Drop).out_if(br));
    // Replies, and flows a published port (or any DNAT the admin wrote) sent into the bridge.
    r.push(Rule::new(f, ACCEPT, Target::Accept).out_if(br).ct(&[
        CtState::Related,
        CtState::Established,
        CtState::Dnat,
    ]));
    if net.icc {
        r.push(Rule::new(f, ACCEPT, Target::Accept).in_if(br).out_if(br));
    } else {
        r.push(Rule::new(f, DROP, Target::Drop).in_if(br).out_if(br));
    }
    for t in &config.trusted_interfaces {
        r.push(Rule::new(f, ACCEPT, Target::Accept).in_if(t).out_if(br));
    }
    r.push(Rule::new(f, DROP, Target::Drop).out_if(br));
    r.push(
        Rule::new(f, ACCEPT, Target::Accept)
            .in_if(br)
            .not_out_if(br),
    );

    let n = Table::Nat;
    r.push(
        Rule::new(n, POSTROUTING, Target::Masquerade)
            .src(subnet)
            .out_if(br)
            .ct(&[CtState::Dnat]),
    );
    if family == Family::V4 {
        r.push(
            Rule::new(n, POSTROUTING, Target::Masquerade)
                .src(ipv4_loopback())
                .out_if(br),
        );
    }
    if net.nat_outbound(family) {
        let target = match net.snat(family) {
            Some(a) => Target::Snat {
                to: Some(a),
                ports: None,
            },
            None => Target::Masquerade,
        };
        r.push(Rule::new(n, POSTROUTING, target).src(subnet).not_out_if(br));
    }
    r
}

/// The rules of a legacy link: parent to child's port, and the child's answers.
pub fn link_rules(link: &LinkRule) -> Vec<Rule> {
    let mut r = Vec::new();
    for p in &link.ports {
        let Ok(port) = PortRange::single(p.port) else {
            continue;
        };
        r.push(
            Rule::new(Table::Filter, LINKS, Target::Accept)
                .src(host(link.parent_ip))
                .dst(host(link.child_ip))
                .in_if(&link.bridge)
                .out_if(&link.bridge)
                .proto_dport(p.proto, port),
        );
        r.push(
            Rule::new(Table::Filter, LINKS, Target::Accept)
                .src(host(link.child_ip))
                .dst(host(link.parent_ip))
                .in_if(&link.bridge)
                .out_if(&link.bridge)
                .proto_sport(p.proto, port),
        );
    }
    r
}

/// Every rule of the desired state in `family`, grouped by object, base first.
pub fn all_rules(config: &FirewallConfig, state: &DesiredState, family: Family) -> Vec<Rule> {
    let mut r = base_rules();
    r.extend(raw_rules(family));
    for net in state.networks().values() {
        r.extend(network_rules(config, net, family));
    }
    for p in state.ports().iter().filter(|p| p.family() == family) {
        r.extend(port_rules(p));
    }
    r.extend(dnat_blocks(state.ports().iter(), family).into_values());
    for l in state.links().iter().filter(|l| l.family() == family) {
        r.extend(link_rules(l));
    }
    r
}

//! Published ports in the iptables backend: the DNAT rule of a port, the 256-port block chains
//! those rules are spread over (and the jumps into them), and the batches that publish and
//! unpublish ports, creating and deleting block chains as they come into use or fall empty.

use super::*;

/// The DNAT block chain of a host port range, if the range lies within one block.
pub fn dnat_chain(proto: crate::model::Protocol, host_ports: PortRange) -> Option<String> {
    let block = host_ports.start() / DNAT_BLOCK;
    (host_ports.end() / DNAT_BLOCK == block)
        .then(|| format!("{DNAT}-{}-{block}", proto.name().to_uppercase()))
}

/// The block of a port whose host ports lie within one block: (family, protocol, block).
type BlockKey = (Family, crate::model::Protocol, u16);

fn block_key(port: &PortRule) -> Option<BlockKey> {
    let block = port.host_ports.start() / DNAT_BLOCK;
    (port.host_ports.end() / DNAT_BLOCK == block).then_some((port.family(), port.proto, block))
}

/// The jump from BERTH-DNAT into the block chain holding `port`'s rule.
fn dnat_jump(port: &PortRule) -> Option<(String, Rule)> {
    let chain = dnat_chain(port.proto, port.host_ports)?;
    let block = port.host_ports.start() / DNAT_BLOCK;
    let first = (block * DNAT_BLOCK).max(1);
    let last = block
        .saturating_mul(DNAT_BLOCK)
        .saturating_add(DNAT_BLOCK - 1);
    let range = PortRange::new(first, last).ok()?;
    let jump =
        Rule::new(Table::Nat, DNAT, Target::Jump(chain.clone())).proto_dport(port.proto, range);
    Some((chain, jump))
}

/// The DNAT rule of a published port (in its block chain, or in BERTH-DNAT for a range that
/// spans blocks). The accept of the DNATed flow is the network's.
pub fn port_rules(port: &PortRule) -> Vec<Rule> {
    let base = match port.mapping() {
        PortMapping::Shifted => Some(port.host_ports.start()),
        _ => None,
    };
    let chain = dnat_chain(port.proto, port.host_ports).unwrap_or_else(|| DNAT.to_owned());
    let mut dnat = Rule::new(
        Table::Nat,
        &chain,
        Target::Dnat {
            to: port.container_ip,
            ports: Some(port.container_ports),
            base,
        },
    )
    .proto_dport(port.proto, port.host_ports);
    if let Some(h) = port.host_addr() {
        dnat = dnat.dst(host(h));
    }
    vec![dnat]
}

/// Block chains in use (with their jumps) by the ports of `family`.
pub(super) fn dnat_blocks<'a>(
    ports: impl Iterator<Item = &'a PortRule>,
    family: Family,
) -> BTreeMap<String, Rule> {
    ports
        .filter(|p| p.family() == family)
        .filter_map(dnat_jump)
        .collect()
}

/// The batches that publish `adds` and unpublish `removes` given the ports published `before`:
/// DNAT rules, plus the block chains (and their jumps) that come into use or fall empty.
pub fn ports_delta(
    config: &FirewallConfig,
    before: &[PortRule],
    adds: &[PortRule],
    removes: &[PortRule],
) -> Vec<IptBatch> {
    let mut after: Vec<&PortRule> = before.iter().collect();
    for r in removes {
        if let Some(i) = after.iter().position(|p| *p == r) {
            after.remove(i);
        }
    }
    after.extend(adds);
    // Only the blocks this change touches can come into use or fall empty; a scan without
    // allocation tells whether other ports still use them.
    let touched: BTreeMap<BlockKey, &PortRule> = adds
        .iter()
        .chain(removes)
        .filter_map(|p| Some((block_key(p)?, p)))
        .collect();
    let mut out = Vec::new();
    for family in config.families() {
        let mut created: Vec<(String, Rule)> = Vec::new();
        let mut emptied: Vec<(String, Rule)> = Vec::new();
        for (key, port) in touched.iter().filter(|(k, _)| k.0 == family) {
            let used_before = before.iter().any(|p| block_key(p) == Some(*key));
            let used_after = after.iter().any(|p| block_key(p) == Some(*key));
            match (used_before, used_after, dnat_jump(port)) {
                (false, true, Some(j)) => created.push(j),
                (true, false, Some(j)) => emptied.push(j),
                _ => {}
            }
        }
        let rules = |ports: &[PortRule]| -> Vec<Rule> {
            ports
                .iter()
                .filter(|p| p.family() == family)
                .flat_map(port_rules)
                .collect()
        };
        let (added, removed) = (rules(adds), rules(removes));
        let mut ops = Vec::new();
        ops.extend(removed.iter().rev().cloned().map(IptOp::DeleteRule));
        ops.extend(emptied.iter().map(|(_, j)| IptOp::DeleteRule(j.clone())));
        ops.extend(
            emptied
                .iter()
                .map(|(c, _)| IptOp::DeleteChain((*c).clone())),
        );
        ops.extend(created.iter().map(|(c, _)| IptOp::Declare((*c).clone())));
        ops.extend(added.iter().cloned().map(IptOp::AppendRule));
        ops.extend(created.iter().map(|(_, j)| IptOp::AppendRule(j.clone())));
        let mut undo = Vec::new();
        undo.extend(
            added
                .iter()
                .rev()
                .map(|r| IptOp::Delete(r.chain.clone(), r.iptables_spec())),
        );
        undo.extend(
            created
                .iter()
                .map(|(_, j)| IptOp::Delete(DNAT.into(), j.iptables_spec())),
        );
        undo.extend(
            created
                .iter()
                .map(|(c, _)| IptOp::DeleteChain((*c).clone())),
        );
        undo.extend(emptied.iter().map(|(c, _)| IptOp::Declare((*c).clone())));
        undo.extend(
            emptied
                .iter()
                .map(|(_, j)| IptOp::Append(DNAT.into(), j.iptables_spec())),
        );
        undo.extend(
            removed
                .iter()
                .map(|r| IptOp::Append(r.chain.clone(), r.iptables_spec())),
        );
        if !ops.is_empty() {
            out.push(IptBatch {
                family,
                sections: vec![IptSection {
                    table: Table::Nat,
                    ops,
                    undo,
                }],
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iptables::tests::{cfg, state};
    use crate::model::Protocol;

    #[test]
    fn ports_share_block_chains_that_come_and_go() {
        let c = cfg();
        let s = state();
        let p = |host: u16| PortRule {
            proto: Protocol::Tcp,
            host_ip: None,
            host_ports: PortRange::single(host).unwrap(),
            container_ip: "172.18.0.3".parse().unwrap(),
            container_ports: PortRange::single(80).unwrap(),
            bridge: "br-a".into(),
        };
        // 8081 shares 8080's block (31): no new chain.
        let b = ports_delta(&c, s.ports(), &[p(8081)], &[]);
        assert_eq!(
            b[0].script(),
            "*nat\n-A BERTH-DNAT-TCP-31 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 172.18.0.3:80\nCOMMIT\n"
        );
        // 9000 opens block 35.
        let b = ports_delta(&c, s.ports(), &[p(9000)], &[]);
        assert_eq!(
            b[0].script(),
            "*nat\n:BERTH-DNAT-TCP-35 - [0:0]\n-A BERTH-DNAT-TCP-35 -p tcp -m tcp --dport 9000 -j DNAT --to-destination 172.18.0.3:80\n\
             -A BERTH-DNAT -p tcp -m tcp --dport 8960:9215 -j BERTH-DNAT-TCP-35\nCOMMIT\n"
        );
        // Removing the last port of block 31 removes the chain and its jump; undo restores both.
        let b = ports_delta(&c, s.ports(), &[], &[s.ports()[0].clone()]);
        assert_eq!(
            b[0].script(),
            "*nat\n-D BERTH-DNAT-TCP-31 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.3:80\n\
             -D BERTH-DNAT -p tcp -m tcp --dport 7936:8191 -j BERTH-DNAT-TCP-31\n-X BERTH-DNAT-TCP-31\nCOMMIT\n"
        );
        assert_eq!(
            b[0].undo_script(1),
            "*nat\n:BERTH-DNAT-TCP-31 - [0:0]\n-A BERTH-DNAT -p tcp -m tcp --dport 7936:8191 -j BERTH-DNAT-TCP-31\n\
             -A BERTH-DNAT-TCP-31 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.3:80\nCOMMIT\n"
        );
        // A range across blocks stays in BERTH-DNAT, as one rule.
        let range = PortRule {
            host_ports: PortRange::new(9000, 9999).unwrap(),
            container_ports: PortRange::new(9000, 9999).unwrap(),
            ..p(1)
        };
        let b = ports_delta(&c, s.ports(), &[range], &[]);
        assert_eq!(
            b[0].script(),
            "*nat\n-A BERTH-DNAT -p tcp -m tcp --dport 9000:9999 -j DNAT --to-destination 172.18.0.3:9000-9999\nCOMMIT\n"
        );
        // Block 0 starts at port 1.
        assert_eq!(
            dnat_chain(Protocol::Udp, PortRange::single(53).unwrap()).unwrap(),
            "BERTH-DNAT-UDP-0"
        );
        assert_eq!(
            dnat_jump(&p(53)).unwrap().1.iptables_spec(),
            "-p tcp -m tcp --dport 1:255 -j BERTH-DNAT-TCP-0"
        );
        assert_eq!(
            dnat_jump(&p(65535)).unwrap().1.iptables_spec(),
            "-p tcp -m tcp --dport 65280:65535 -j BERTH-DNAT-TCP-255"
        );
    }
}

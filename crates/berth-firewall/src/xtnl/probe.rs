//! The fast path's probe: the rules of every encoding [`super::encode`] produces, appended by
//! the iptables tool ([`probe_script`]) and over netlink, and the kernel's listings of both
//! compared ([`probe_compare`]); the fast path is used in a namespace only when they agree.

use super::*;

/// Chains of the probe (created and removed by it), in both `filter` and `nat`.
const PROBE_TOOL: &str = "BERTH-PROBE-TOOL";
const PROBE_NETLINK: &str = "BERTH-PROBE-NL";
/// The chain the probe's jumps go to.
const PROBE_TARGET: &str = "BERTH-PROBE-TARGET";

/// The probe's rules: every encoding [`encode`] produces, in `table` and `family`.
fn probe_rules(family: Family, table: Table, chain: &str) -> Option<Vec<Rule>> {
    let (net, narrow, host, other): (IpNet, IpNet, IpAddr, IpAddr) = match family {
        Family::V4 => (
            "172.31.0.0/16".parse().ok()?,
            "172.31.16.0/20".parse().ok()?,
            "172.31.0.2".parse().ok()?,
            "192.0.2.9".parse().ok()?,
        ),
        Family::V6 => (
            "fd00:b0:1::/64".parse().ok()?,
            "fd00:b0::/60".parse().ok()?,
            "fd00:b0:1::2".parse().ok()?,
            "2001:db8::9".parse().ok()?,
        ),
    };
    let port = |a, b| PortRange::new(a, b).ok();
    let host_net = IpNet::from(host);
    let mut r = Vec::new();
    match table {
        Table::Filter => {
            r.push(
                Rule::new(table, chain, Target::Jump(PROBE_TARGET.into()))
                    .in_if("br-probe0")
                    .not_out_if("br-probe0"),
            );
            r.push(
                Rule::new(table, chain, Target::Accept)
                    .out_if("br-probe0")
                    .ct(&[CtState::Related, CtState::Established, CtState::Dnat]),
            );
            r.push(
                Rule::new(table, chain, Target::Drop)
                    .in_if("br+")
                    .out_if("br-probe0"),
            );
            r.push(
                Rule::new(table, chain, Target::Accept)
                    .src(host_net)
                    .dst(IpNet::from(other))
                    .in_if("br-probe0")
                    .out_if("br-probe0")
                    .proto_dport(Protocol::Tcp, port(5432, 5432)?),
            );
            r.push(
                Rule::new(table, chain, Target::Accept)
                    .src(IpNet::from(other))
                    .in_if("br-probe0")
                    .proto_sport(Protocol::Udp, port(53, 53)?),
            );
            r.push(Rule::new(table, chain, Target::Return).out_if("br-probe0"));
        }
        _ => {
            r.push(
                Rule::new(
                    table,
                    chain,
                    Target::Dnat {
                        to: host,
                        ports: Some(port(80, 80)?),
                        base: None,
                    },
                )
                .proto_dport(Protocol::Tcp, port(8200, 8200)?),
            );
            r.push(
                Rule::new(
                    table,
                    chain,
                    Target::Dnat {
                        to: host,
                        ports: Some(port(90, 94)?),
                        base: Some(8201),
                    },
                )
                .dst(IpNet::from(other))
                .proto_dport(Protocol::Udp, port(8201, 8205)?),
            );
            r.push(
                Rule::new(
                    table,
                    chain,
                    Target::Dnat {
                        to: host,
                        ports: None,
                        base: None,
                    },
                )
                .proto_dport(Protocol::Tcp, port(8300, 8399)?),
            );
            r.push(
                Rule::new(table, chain, Target::Jump(PROBE_TARGET.into()))
                    .proto_dport(Protocol::Udp, port(8192, 8447)?),
            );
            r.push(
                Rule::new(table, chain, Target::Masquerade)
                    .src(net)
                    .out_if("br-probe0")
                    .ct(&[CtState::Dnat]),
            );
            r.push(
                Rule::new(
                    table,
                    chain,
                    Target::Snat {
                        to: Some(other),
                        ports: None,
                    },
                )
                .src(narrow)
                .not_out_if("br-probe0"),
            );
            r.push(
                Rule::new(table, chain, Target::Masquerade)
                    .src(narrow)
                    .not_out_if("br-probe0"),
            );
        }
    }
    Some(r)
}

/// The probe's tool input for `family`: both probe chains declared, the rules in the tool's
/// chain.
pub(crate) fn probe_script(family: Family) -> String {
    let mut s = String::new();
    for table in [Table::Filter, Table::Nat] {
        s.push_str(&format!(
            "*{}\n:{PROBE_TOOL} - [0:0]\n:{PROBE_NETLINK} - [0:0]\n:{PROBE_TARGET} - [0:0]\n",
            table.name()
        ));
        for r in probe_rules(family, table, PROBE_TOOL).unwrap_or_default() {
            s.push_str(&r.iptables());
            s.push('\n');
        }
        s.push_str("COMMIT\n");
    }
    s
}

/// After [`probe_script`] ran: appends the same rules over netlink, lists both chains and
/// removes the probe chains (also when the comparison fails). `Ok(None)` when the listings match;
/// `Ok(Some(why))` when they differ.
pub(crate) fn probe_compare(
    nft: &NftHandle,
    families: &[Family],
) -> berth_netlink::Result<Option<String>> {
    let verdict = probe_append_and_compare(nft, families);
    probe_cleanup(nft, families)?;
    verdict
}

/// Deletes the probe chains (with their rules) of `families`, which [`probe_script`] made.
pub(crate) fn probe_cleanup(nft: &NftHandle, families: &[Family]) -> berth_netlink::Result<()> {
    let mut clean = NlBatch::new();
    for &family in families {
        let f = nl_family(family);
        for table in [Table::Filter, Table::Nat] {
            for chain in [PROBE_TOOL, PROBE_NETLINK, PROBE_TARGET] {
                clean.delete_chain(f, table.name(), chain);
            }
        }
    }
    crate::exec::note_own_commit();
    nft.commit(&clean)
}

fn probe_append_and_compare(
    nft: &NftHandle,
    families: &[Family],
) -> berth_netlink::Result<Option<String>> {
    let mut add = NlBatch::new();
    for &family in families {
        let f = nl_family(family);
        for table in [Table::Filter, Table::Nat] {
            let Some(rules) = probe_rules(family, table, PROBE_NETLINK) else {
                return Ok(Some("the probe's rules could not be built".into()));
            };
            for r in rules {
                let Some(e) = encode(&r, family) else {
                    return Ok(Some(format!(
                        "probe rule {} is not encodable",
                        r.iptables()
                    )));
                };
                add.add_rule_compat(f, table.name(), PROBE_NETLINK, &e.exprs, e.compat);
            }
        }
    }
    crate::exec::note_own_commit();
    if let Err(e) = nft.commit(&add) {
        return Ok(Some(format!("the kernel refused the netlink rules: {e}")));
    }
    for &family in families {
        let f = nl_family(family);
        for table in [Table::Filter, Table::Nat] {
            let tool = nft.list_rules(f, table.name(), PROBE_TOOL)?;
            let ours = nft.list_rules(f, table.name(), PROBE_NETLINK)?;
            let rules = probe_rules(family, table, PROBE_TOOL).unwrap_or_default();
            if tool.len() != rules.len() || ours.len() != rules.len() {
                return Ok(Some(format!(
                    "{f} {}: the tool's chain lists {} rules and netlink's {}, of {}",
                    table.name(),
                    tool.len(),
                    ours.len(),
                    rules.len()
                )));
            }
            for ((t, o), r) in tool.iter().zip(&ours).zip(&rules) {
                if !same_rule(t, o) {
                    return Ok(Some(format!(
                        "{f} {}: the tool encodes `{}` differently",
                        table.name(),
                        r.iptables()
                    )));
                }
                // Deletes find a rule by reading the kernel's listing back.
                let mut r = r.clone();
                r.chain = PROBE_NETLINK.into();
                if decode_rule(t) != encode(&r, family).map(|e| e.exprs) {
                    return Ok(Some(format!(
                        "{f} {}: `{}` does not read back as berth encodes it",
                        table.name(),
                        r.iptables()
                    )));
                }
            }
        }
    }
    Ok(None)
}

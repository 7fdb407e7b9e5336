//! The iptables backend's fast path: rules appended and deleted over nf_tables netlink, encoded
//! exactly as `iptables-nft` (1.8.9) encodes them, so that `iptables-save` lists them,
//! `iptables -D` deletes them and reconcile compares them like any rule the tool made.
//!
//! `iptables-nft-restore` costs 3 to 6 ms per run (a process, a fetch of the table, the rules of
//! every chain it touches), and a dual-family change is two runs that cannot overlap (both
//! commit against the namespace's nf_tables generation, so one would make the other retry).
//! The same change as one netlink transaction for both families costs the kernel's commit only.
//! A delete finds its rule by listing the chain and reading the rules back into expressions
//! ([`decode_rule`]), then removes it by handle.
//!
//! The encoding is checked, not assumed: [`probe_compare`] (after the tool ran
//! [`probe_script`]) appends over netlink the rules the tool appended, covering every encoding
//! below, and compares the kernel's listings of both, expression by expression, and the read-back
//! of the tool's rules with berth's encoding. Only when they agree does the backend use this path
//! in that namespace (any other iptables version, or the legacy variant, keeps the tool).
//! Reconcile, text-only operations (jump order, policies) and rules it does not encode (sctp
//! ports, marks, address types) stay with the tool.
//!
//! The layout of one rule, in iptables-nft's order: input then output interface
//! (`meta iifname`/`oifname`, compared with the name and its NUL, or with the prefix before a
//! trailing `+`), the layer 4 protocol (`meta l4proto`), source then destination address
//! (`payload`, shortened to the prefix's whole bytes, or masked with `bitwise` when the prefix
//! ends inside a byte), ports (`payload` at the transport header, `cmp` or `range`), the
//! conntrack match (x_tables `conntrack` revision 3), a counter, then the verdict (`immediate`)
//! or the x_tables target (`DNAT` revision 2, `SNAT` revision 0 for IPv4 and 1 for IPv6,
//! `MASQUERADE` revision 0).

use std::collections::HashMap;
use std::net::IpAddr;

use berth_netlink::nftables::{
    Batch as NlBatch, CmpOp, Expr, Family as NlFamily, ListedExpr, ListedRule, MetaKey, NftHandle,
    PayloadBase, Register, RuleCompat, Verdict,
};
use ipnet::IpNet;

use crate::iptables::{IptBatch, IptOp};
use crate::model::{CtState, Family, PortRange, Protocol, Rule, Table, Target};

mod probe;
pub(crate) use probe::{probe_cleanup, probe_compare, probe_script};

/// `NFT_REG_1`: the 16-byte register iptables-nft loads everything into.
fn reg1() -> Register {
    Register::R1
}

/// The nf_tables family of an iptables family.
pub(crate) fn nl_family(family: Family) -> NlFamily {
    match family {
        Family::V4 => NlFamily::Ip,
        Family::V6 => NlFamily::Ip6,
    }
}

/// One rule encoded for netlink: its expressions and the compatibility information iptables-nft
/// sends with a `-p` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Encoded {
    pub exprs: Vec<Expr>,
    pub compat: Option<RuleCompat>,
}

fn cmp(negated: bool, data: Vec<u8>) -> Expr {
    Expr::Cmp {
        op: if negated { CmpOp::Neq } else { CmpOp::Eq },
        sreg: reg1(),
        data,
    }
}

fn meta(key: MetaKey) -> Expr {
    Expr::Meta { key, dreg: reg1() }
}

fn payload(base: PayloadBase, offset: u32, len: u32) -> Expr {
    Expr::PayloadLoad {
        base,
        offset,
        len,
        dreg: reg1(),
    }
}

/// `-i NAME` / `-o NAME`: the name with its NUL, or the prefix before a trailing `+`.
fn interface(out: &mut Vec<Expr>, key: MetaKey, name: &str, negated: bool) -> Option<()> {
    let data = match name.strip_suffix('+') {
        // A lone `+` matches every interface; iptables encodes that specially. Not needed.
        Some("") => return None,
        Some(prefix) => prefix.as_bytes().to_vec(),
        None => {
            let mut v = name.as_bytes().to_vec();
            v.push(0);
            v
        }
    };
    out.push(meta(key));
    out.push(cmp(negated, data));
    Some(())
}

/// `-s`/`-d PREFIX`: the address bytes the prefix covers, masked when it ends inside a byte.
fn address(out: &mut Vec<Expr>, net: &IpNet, offset: u32, negated: bool) -> Option<()> {
    let (addr, len): (Vec<u8>, usize) = match net.network() {
        IpAddr::V4(a) => (a.octets().to_vec(), 4),
        IpAddr::V6(a) => (a.octets().to_vec(), 16),
    };
    let prefix = usize::from(net.prefix_len());
    if prefix == 0 {
        // iptables drops a match on /0 (unless negated); not needed.
        return None;
    }
    if prefix % 8 == 0 {
        let bytes = prefix / 8;
        out.push(payload(PayloadBase::Network, offset, bytes as u32));
        out.push(cmp(negated, addr[..bytes].to_vec()));
    } else {
        let mask: Vec<u8> = match net.netmask() {
            IpAddr::V4(m) => m.octets().to_vec(),
            IpAddr::V6(m) => m.octets().to_vec(),
        };
        out.push(payload(PayloadBase::Network, offset, len as u32));
        out.push(Expr::Bitwise {
            sreg: reg1(),
            dreg: reg1(),
            xor: vec![0; mask.len()],
            mask,
        });
        out.push(cmp(negated, addr));
    }
    Some(())
}

/// `--sport`/`--dport`: a port is a `cmp`, a range a `range`.
fn ports(out: &mut Vec<Expr>, range: PortRange, offset: u32) -> Option<()> {
    if range.start() == 0 && range.end() == u16::MAX {
        // iptables leaves out a match on every port; not needed.
        return None;
    }
    out.push(payload(PayloadBase::Transport, offset, 2));
    if range.is_single() {
        out.push(cmp(false, range.start().to_be_bytes().to_vec()));
    } else {
        out.push(Expr::Range {
            op: CmpOp::Eq,
            sreg: reg1(),
            from: range.start().to_be_bytes().to_vec(),
            to: range.end().to_be_bytes().to_vec(),
        });
    }
    Some(())
}

/// `union nf_inet_addr` of an address: 16 bytes, an IPv4 address in the first 4.
fn inet_addr(a: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match a {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out = v6.octets(),
    }
    out
}

const NF_NAT_RANGE_MAP_IPS: u32 = 1 << 0;
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 1 << 1;
const NF_NAT_RANGE_PROTO_OFFSET: u32 = 1 << 5;

/// Pads an x_tables structure to `XT_ALIGN` (8 bytes).
fn xt_align(mut v: Vec<u8>) -> Vec<u8> {
    while v.len() % 8 != 0 {
        v.push(0);
    }
    v
}

/// `struct xt_conntrack_mtinfo3` with only `--ctstate`.
fn conntrack(states: &[CtState]) -> Expr {
    // XT_CONNTRACK_STATE_BIT(ctinfo) = 1 << (ctinfo + 1) for ESTABLISHED 0, RELATED 1, NEW 2;
    // INVALID 1 << 0; SNAT, DNAT, UNTRACKED 1 << (IP_CT_NUMBER (5) + 1, 2, 3).
    let mask = states.iter().fold(0u16, |m, s| {
        m | match s {
            CtState::Invalid => 1 << 0,
            CtState::Established => 1 << 1,
            CtState::Related => 1 << 2,
            CtState::New => 1 << 3,
            CtState::Snat => 1 << 6,
            CtState::Dnat => 1 << 7,
            CtState::Untracked => 1 << 8,
        }
    });
    let mut info = vec![0u8; 8 * 16 + 8]; // the eight addresses and masks, expires min and max
    info.extend_from_slice(&0u16.to_ne_bytes()); // l4proto
    info.extend_from_slice(&[0u8; 8]); // four ports
    info.extend_from_slice(&1u16.to_ne_bytes()); // match_flags: XT_CONNTRACK_STATE
    info.extend_from_slice(&0u16.to_ne_bytes()); // invert_flags
    info.extend_from_slice(&mask.to_ne_bytes()); // state_mask
    info.extend_from_slice(&0u16.to_ne_bytes()); // status_mask
    info.extend_from_slice(&[0u8; 8]); // four port ends
    Expr::Match {
        name: "conntrack".into(),
        rev: 3,
        info: xt_align(info),
    }
}

/// `struct nf_nat_range2` (DNAT revision 2), or `struct nf_nat_range` (its first 40 bytes).
fn nat_range(flags: u32, addr: Option<IpAddr>, ports: Option<PortRange>, base: u16) -> Vec<u8> {
    let a = addr.map(inet_addr).unwrap_or([0; 16]);
    let mut info = flags.to_ne_bytes().to_vec();
    info.extend_from_slice(&a);
    info.extend_from_slice(&a);
    let (lo, hi) = ports.map_or((0, 0), |p| (p.start(), p.end()));
    info.extend_from_slice(&lo.to_be_bytes());
    info.extend_from_slice(&hi.to_be_bytes());
    info.extend_from_slice(&base.to_be_bytes());
    info
}

/// `struct nf_nat_ipv4_multi_range_compat` with one range (IPv4 SNAT and MASQUERADE rev 0).
fn nat_ipv4_compat(flags: u32, addr: Option<IpAddr>) -> Vec<u8> {
    let a = match addr {
        Some(IpAddr::V4(v4)) => v4.octets(),
        _ => [0; 4],
    };
    let mut info = 1u32.to_ne_bytes().to_vec(); // rangesize
    info.extend_from_slice(&flags.to_ne_bytes());
    info.extend_from_slice(&a);
    info.extend_from_slice(&a);
    info.extend_from_slice(&[0u8; 4]); // min and max proto
    info
}

fn target(name: &str, rev: u32, info: Vec<u8>) -> Expr {
    Expr::Target {
        name: name.into(),
        rev,
        info: xt_align(info),
    }
}

/// The expressions of `rule` in `family` as iptables-nft 1.8.9 builds them, or `None` for a
/// rule this path does not encode (those go through the tool).
pub(crate) fn encode(rule: &Rule, family: Family) -> Option<Encoded> {
    let mut out = Vec::new();
    if let Some(c) = &rule.in_interface {
        interface(&mut out, MetaKey::IifName, &c.value, c.negated)?;
    }
    if let Some(c) = &rule.out_interface {
        interface(&mut out, MetaKey::OifName, &c.value, c.negated)?;
    }
    let mut compat = None;
    if let Some(p) = &rule.protocol {
        let number = match p.proto {
            Protocol::Tcp => 6u8,
            Protocol::Udp => 17,
            // `-m sctp` is an x_tables match iptables-nft keeps; not encoded here.
            Protocol::Sctp => return None,
        };
        out.push(meta(MetaKey::L4Proto));
        out.push(cmp(false, vec![number]));
        compat = Some(RuleCompat {
            proto: number,
            inverted: false,
        });
    }
    let (src_offset, dst_offset) = match family {
        Family::V4 => (12, 16),
        Family::V6 => (8, 24),
    };
    for (cond, offset) in [(&rule.source, src_offset), (&rule.destination, dst_offset)] {
        if let Some(c) = cond {
            if Family::of(c.value.addr()) != family {
                return None;
            }
            address(&mut out, &c.value, offset, c.negated)?;
        }
    }
    if let Some(p) = &rule.protocol {
        match (p.sport, p.dport) {
            (Some(_), Some(_)) => return None,
            (Some(s), None) => ports(&mut out, s, 0)?,
            (None, Some(d)) => ports(&mut out, d, 2)?,
            (None, None) => {}
        }
    }
    if rule.src_type.is_some() || rule.dst_type.is_some() || rule.mark.is_some() {
        return None;
    }
    if !rule.ct_state.is_empty() {
        out.push(conntrack(&rule.ct_state));
    }
    out.push(Expr::Counter);
    out.push(match &rule.target {
        Target::Accept => Expr::verdict(Verdict::Accept),
        Target::Drop => Expr::verdict(Verdict::Drop),
        Target::Return => Expr::verdict(Verdict::Return),
        Target::Jump(c) => Expr::verdict(Verdict::Jump(c.clone())),
        Target::Dnat { to, ports, base } => {
            if Family::of(*to) != family {
                return None;
            }
            let mut flags = NF_NAT_RANGE_MAP_IPS;
            if ports.is_some() {
                flags |= NF_NAT_RANGE_PROTO_SPECIFIED;
            }
            if base.is_some() {
                flags |= NF_NAT_RANGE_PROTO_OFFSET;
            }
            target(
                "DNAT",
                2,
                nat_range(flags, Some(*to), *ports, base.unwrap_or(0)),
            )
        }
        Target::Snat {
            to: Some(to),
            ports: None,
        } => {
            if Family::of(*to) != family {
                return None;
            }
            match family {
                Family::V4 => target("SNAT", 0, nat_ipv4_compat(NF_NAT_RANGE_MAP_IPS, Some(*to))),
                Family::V6 => {
                    let mut info = nat_range(NF_NAT_RANGE_MAP_IPS, Some(*to), None, 0);
                    info.truncate(40);
                    target("SNAT", 1, info)
                }
            }
        }
        Target::Masquerade => match family {
            Family::V4 => target("MASQUERADE", 0, nat_ipv4_compat(0, None)),
            Family::V6 => {
                let mut info = nat_range(0, None, None, 0);
                info.truncate(40);
                target("MASQUERADE", 0, info)
            }
        },
        Target::Snat { .. } | Target::SetMark { .. } => return None,
    });
    Some(Encoded { exprs: out, compat })
}

/// A rule of a listed chain: its handle and its expressions read back (`None`: not berth's kind).
type ListedHandle = (u64, Option<Vec<Expr>>);

/// The netlink transaction of `batches` (one per family), when every operation is an append
/// of an encodable rule, the deletion of one (found by listing its chain through `nft`), the
/// declaration of a chain or the deletion of one; `None` sends them to the tool.
pub(crate) fn transaction(batches: &[IptBatch], nft: &NftHandle) -> Option<NlBatch> {
    let mut nl = NlBatch::new();
    // Each chain a delete touches is listed once; handles already taken are not taken twice.
    let mut listed: HashMap<(Family, Table, String), Vec<ListedHandle>> = HashMap::new();
    for b in batches {
        let family = nl_family(b.family);
        for section in &b.sections {
            let table = section.table.name();
            for op in &section.ops {
                match op {
                    IptOp::AppendRule(rule) => {
                        if rule.table != section.table {
                            return None;
                        }
                        let e = encode(rule, b.family)?;
                        nl.add_rule_compat(family, table, &rule.chain, &e.exprs, e.compat);
                    }
                    IptOp::DeleteRule(rule) => {
                        if rule.table != section.table {
                            return None;
                        }
                        let want = encode(rule, b.family)?.exprs;
                        let key = (b.family, section.table, rule.chain.clone());
                        if !listed.contains_key(&key) {
                            let rules = nft.list_rules(family, table, &rule.chain).ok()?;
                            let decoded =
                                rules.iter().map(|r| (r.handle, decode_rule(r))).collect();
                            listed.insert(key.clone(), decoded);
                        }
                        let candidates = listed.get_mut(&key)?;
                        let i = candidates
                            .iter()
                            .position(|(_, exprs)| exprs.as_ref() == Some(&want))?;
                        let (handle, _) = candidates.remove(i);
                        nl.delete_rule(family, table, &rule.chain, handle);
                    }
                    // `:CHAIN - [0:0]` creates the chain or empties the one there.
                    IptOp::Declare(chain) => {
                        nl.add_chain(family, table, chain)
                            .flush_chain(family, table, chain);
                    }
                    IptOp::DeleteChain(chain) => {
                        nl.delete_chain(family, table, chain);
                    }
                    _ => return None,
                }
            }
        }
    }
    Some(nl)
}

/// A listed rule as [`encode`]'s expressions, or `None` if any expression is of another kind.
pub(crate) fn decode_rule(rule: &ListedRule) -> Option<Vec<Expr>> {
    rule.exprs.iter().map(ListedExpr::decode).collect()
}

/// Whether two listed rules are the same rule: the same expressions with the same data, a
/// counter's values aside.
pub(crate) fn same_rule(a: &ListedRule, b: &ListedRule) -> bool {
    a.exprs.len() == b.exprs.len() && a.exprs.iter().zip(&b.exprs).all(|(x, y)| same_expr(x, y))
}

fn same_expr(a: &ListedExpr, b: &ListedExpr) -> bool {
    a.name == b.name && (a.name == "counter" || a.data == b.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(a: u16, b: u16) -> PortRange {
        PortRange::new(a, b).unwrap()
    }

    /// The bytes iptables-nft 1.8.9 sent for
    /// `-A X -d 10.0.0.1/32 -p udp -m udp --dport 8201:8205 -j DNAT --to-destination
    /// 172.18.0.2:90-94/8201` (read back from the kernel with `nft --debug=netlink` and a dump).
    #[test]
    fn shifted_dnat_is_encoded_as_iptables_nft_does() {
        let rule = Rule::new(
            Table::Nat,
            "X",
            Target::Dnat {
                to: "172.18.0.2".parse().unwrap(),
                ports: Some(range(90, 94)),
                base: Some(8201),
            },
        )
        .dst("10.0.0.1/32".parse::<IpNet>().unwrap())
        .proto_dport(Protocol::Udp, range(8201, 8205));
        let e = encode(&rule, Family::V4).unwrap();
        assert_eq!(
            e.compat,
            Some(RuleCompat {
                proto: 17,
                inverted: false
            })
        );
        let names: Vec<&str> = e.exprs.iter().map(Expr::name).collect();
        assert_eq!(
            names,
            [
                "meta", "cmp", "payload", "cmp", "payload", "range", "counter", "target"
            ]
        );
        let Expr::Target { name, rev, info } = &e.exprs[7] else {
            panic!("a target")
        };
        assert_eq!((name.as_str(), *rev, info.len()), ("DNAT", 2, 48));
        let mut want = 0x23u32.to_ne_bytes().to_vec();
        for _ in 0..2 {
            want.extend([172, 18, 0, 2]);
            want.extend([0; 12]);
        }
        want.extend([0, 90, 0, 94, 0x20, 0x09, 0, 0, 0, 0, 0, 0]);
        assert_eq!(info, &want);
        assert_eq!(
            e.exprs[5],
            Expr::Range {
                op: CmpOp::Eq,
                sreg: Register::R1,
                from: vec![0x20, 0x09],
                to: vec![0x20, 0x0d]
            }
        );
    }

    /// Prefixes that end inside a byte are masked; whole bytes are compared directly.
    #[test]
    fn prefixes_and_interfaces() {
        let rule = Rule::new(Table::Nat, "X", Target::Masquerade)
            .src("172.31.16.0/20".parse::<IpNet>().unwrap())
            .not_out_if("br-x")
            .in_if("br+");
        let e = encode(&rule, Family::V4).unwrap();
        assert_eq!(e.compat, None);
        assert_eq!(
            e.exprs[..4],
            [
                meta(MetaKey::IifName),
                cmp(false, b"br".to_vec()),
                meta(MetaKey::OifName),
                cmp(true, b"br-x\0".to_vec()),
            ]
        );
        assert_eq!(
            e.exprs[5],
            Expr::Bitwise {
                sreg: Register::R1,
                dreg: Register::R1,
                mask: vec![255, 255, 240, 0],
                xor: vec![0; 4]
            }
        );
        let v6 = Rule::new(Table::Nat, "X", Target::Masquerade)
            .src("fd00:a::/64".parse::<IpNet>().unwrap());
        let e = encode(&v6, Family::V6).unwrap();
        assert_eq!(e.exprs[0], payload(PayloadBase::Network, 8, 8));
        assert!(
            encode(&v6, Family::V4).is_none(),
            "a prefix of the other family"
        );
    }

    /// What the fast path leaves to the tool.
    #[test]
    fn rules_it_does_not_encode() {
        let sctp = Rule::new(Table::Filter, "X", Target::Accept)
            .proto_dport(Protocol::Sctp, range(80, 80));
        assert!(encode(&sctp, Family::V4).is_none());
        let mark = Rule::new(Table::Filter, "X", Target::Accept).mark(1, 1);
        assert!(encode(&mark, Family::V4).is_none());
        let all = Rule::new(Table::Filter, "X", Target::Accept).in_if("+");
        assert!(encode(&all, Family::V4).is_none());
        let mut both = Rule::new(Table::Filter, "X", Target::Accept);
        both.protocol = Some(crate::model::ProtocolMatch {
            proto: Protocol::Tcp,
            sport: Some(range(1, 1)),
            dport: Some(range(2, 2)),
        });
        assert!(encode(&both, Family::V4).is_none());
    }

    /// A delete given as text goes to the tool; appends and new chains go to netlink (kernel
    /// test only for the socket: nothing is listed or sent).
    #[test]
    fn only_rules_berth_built_take_the_fast_path() {
        let host = berth_testhost::TestHost::new().expect("a test namespace (run as root)");
        let nft = NftHandle::open(host.netns()).expect("nf_tables socket");
        use crate::iptables::IptSection;
        let rule = Rule::new(Table::Filter, "X", Target::Drop).out_if("br-x");
        let batch = |ops: Vec<IptOp>| {
            vec![IptBatch {
                family: Family::V4,
                sections: vec![IptSection {
                    table: Table::Filter,
                    ops,
                    undo: vec![],
                }],
            }]
        };
        let nl = transaction(
            &batch(vec![
                IptOp::Declare("X".into()),
                IptOp::AppendRule(rule.clone()),
            ]),
            &nft,
        )
        .unwrap();
        assert_eq!(nl.len(), 3, "add chain, flush chain, add rule");
        let text_delete = IptOp::Delete("X".into(), rule.iptables_spec());
        assert!(transaction(&batch(vec![text_delete]), &nft).is_none());
        let text_append = IptOp::Append("X".into(), "-j DROP".into());
        assert!(transaction(&batch(vec![text_append]), &nft).is_none());
        // A rule that is not there is not found: the tool runs (and says so).
        assert!(transaction(&batch(vec![IptOp::DeleteRule(rule)]), &nft).is_none());
    }
}

//! Listing: reading the rules of a chain back from the kernel (an `NFT_MSG_GETRULE` dump), as
//! [`ListedRule`]s of raw [`ListedExpr`]s that decode to the [`Expr`]s that built them.

use netlink_packet_core::NLM_F_REQUEST;

use super::batch::chain_object;
use super::consts::*;
use super::encode::{Attrs, put_message};
use super::handle::{Conn, NftHandle};
use super::types::{CmpOp, Expr, Family, MetaKey, PayloadBase, Register, Verdict};
use crate::error::{Error, Result};
use crate::socket::{Exchange, Outcome, align4, read_u16};

/// One rule of a chain as the kernel lists it ([`NftHandle::list_rules`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRule {
    /// The rule's handle (what [`Batch::delete_rule`] takes).
    ///
    /// [`Batch::delete_rule`]: super::Batch::delete_rule
    pub handle: u64,
    /// Its expressions, in order.
    pub exprs: Vec<ListedExpr>,
}

/// One expression of a [`ListedRule`]: its name and its raw `NFTA_EXPR_DATA` attributes as the
/// kernel dumps them (host byte order headers). Two rules built the same way list the same
/// bytes, except a counter's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedExpr {
    /// The expression's name (`payload`, `cmp`, `match`, ...).
    pub name: String,
    /// The attributes inside `NFTA_EXPR_DATA`.
    pub data: Vec<u8>,
}

impl ListedExpr {
    /// This expression as the [`Expr`] that builds it, for the kinds [`Expr`] has and the
    /// registers berth uses (the verdict register and [`Register::R1`]); `None` for anything
    /// else (another kind, another register, a payload write, a non-mask bitwise operation).
    /// A counter decodes to [`Expr::Counter`] whatever its values.
    pub fn decode(&self) -> Option<Expr> {
        let a = attributes(&self.data).ok()?;
        let find = |kind: u16| a.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v);
        let be32 = |v: &[u8]| Some(u32::from_be_bytes(v.try_into().ok()?));
        let register = |v: &[u8]| match be32(v)? {
            0 => Some(Register::VERDICT),
            1 => Some(Register::R1),
            _ => None,
        };
        let op = |v: &[u8]| match be32(v)? {
            0 => Some(CmpOp::Eq),
            1 => Some(CmpOp::Neq),
            _ => None,
        };
        let value = |nest: &[u8]| {
            let inner = attributes(nest).ok()?;
            let (_, v) = inner.iter().find(|(k, _)| *k == NFTA_DATA_VALUE)?;
            Some(v.to_vec())
        };
        let text = |v: &[u8]| {
            let bytes = v.split(|b| *b == 0).next()?;
            Some(std::str::from_utf8(bytes).ok()?.to_owned())
        };
        Some(match self.name.as_str() {
            "counter" => Expr::Counter,
            "payload" if find(NFTA_PAYLOAD_SREG).is_none() => Expr::PayloadLoad {
                dreg: register(find(NFTA_PAYLOAD_DREG)?)?,
                base: [
                    PayloadBase::LinkLayer,
                    PayloadBase::Network,
                    PayloadBase::Transport,
                ]
                .into_iter()
                .find(|b| Some(b.number()) == find(NFTA_PAYLOAD_BASE).and_then(be32))?,
                offset: be32(find(NFTA_PAYLOAD_OFFSET)?)?,
                len: be32(find(NFTA_PAYLOAD_LEN)?)?,
            },
            "cmp" => Expr::Cmp {
                sreg: register(find(NFTA_CMP_SREG)?)?,
                op: op(find(NFTA_CMP_OP)?)?,
                data: value(find(NFTA_CMP_DATA)?)?,
            },
            "meta" => Expr::Meta {
                dreg: register(find(NFTA_META_DREG)?)?,
                key: MetaKey::ALL
                    .into_iter()
                    .find(|k| Some(k.number()) == find(NFTA_META_KEY).and_then(be32))?,
            },
            "range" => Expr::Range {
                sreg: register(find(NFTA_RANGE_SREG)?)?,
                op: op(find(NFTA_RANGE_OP)?)?,
                from: value(find(NFTA_RANGE_FROM_DATA)?)?,
                to: value(find(NFTA_RANGE_TO_DATA)?)?,
            },
            // NFTA_BITWISE_OP: only the mask-and-xor operation (0), which is what is sent.
            "bitwise" if find(NFTA_BITWISE_OP).is_none_or(|v| be32(v) == Some(0)) => {
                Expr::Bitwise {
                    sreg: register(find(NFTA_BITWISE_SREG)?)?,
                    dreg: register(find(NFTA_BITWISE_DREG)?)?,
                    mask: value(find(NFTA_BITWISE_MASK)?)?,
                    xor: value(find(NFTA_BITWISE_XOR)?)?,
                }
            }
            "immediate" if register(find(NFTA_IMMEDIATE_DREG)?)? == Register::VERDICT => {
                let data = attributes(find(NFTA_IMMEDIATE_DATA)?).ok()?;
                let (_, nest) = data.iter().find(|(k, _)| *k == NFTA_DATA_VERDICT)?;
                let verdict = attributes(nest).ok()?;
                let get = |kind: u16| verdict.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v);
                let chain = || text(get(NFTA_VERDICT_CHAIN)?);
                Expr::verdict(match be32(get(NFTA_VERDICT_CODE)?)? as i32 {
                    1 => Verdict::Accept,
                    0 => Verdict::Drop,
                    -1 => Verdict::Continue,
                    -3 => Verdict::Jump(chain()?),
                    -4 => Verdict::Goto(chain()?),
                    -5 => Verdict::Return,
                    _ => return None,
                })
            }
            "match" | "target" => {
                let name = text(find(NFTA_XT_NAME)?)?;
                let rev = be32(find(NFTA_XT_REV)?)?;
                let info = find(NFTA_XT_INFO)?.to_vec();
                if self.name == "match" {
                    Expr::Match { name, rev, info }
                } else {
                    Expr::Target { name, rev, info }
                }
            }
            _ => return None,
        })
    }
}

/// Decodes `data` as the raw attributes of one listed expression whose kind is chosen by the
/// first byte. Only for fuzzing: it must never panic.
#[doc(hidden)]
pub fn fuzz_decode_listed_expr(data: &[u8]) {
    const NAMES: [&str; 9] = [
        "counter",
        "payload",
        "cmp",
        "meta",
        "range",
        "bitwise",
        "immediate",
        "match",
        "target",
    ];
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let listed = ListedExpr {
        name: NAMES[usize::from(*first) % NAMES.len()].into(),
        data: rest.to_vec(),
    };
    let _ = listed.decode();
}

/// The type bits of an attribute's type (without `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER`).
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Scans one datagram of a rule dump with the shared exchange reader, collecting the rules.
/// Returns `Some` when the dump is over.
fn scan_rule_dump(
    exchange: &mut Exchange,
    datagram: &[u8],
    object: &str,
    rules: &mut Vec<ListedRule>,
) -> Option<Result<Outcome>> {
    let describe = || object.to_owned();
    exchange.scan(datagram, &describe, &mut |message_type, payload| {
        if message_type != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE {
            return Ok(());
        }
        let attrs = payload.get(NFGENMSG_LEN..).unwrap_or(&[]);
        let rule = parse_rule(attrs).map_err(|message| Error::Protocol {
            context: format!("listing the rules of {object}"),
            message,
        })?;
        rules.push(rule);
        Ok(())
    })
}

/// Splits an attribute stream into (type without flags, value) pairs.
fn attributes(mut buf: &[u8]) -> std::result::Result<Vec<(u16, &[u8])>, String> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = usize::from(read_u16(buf, 0));
        let kind = read_u16(buf, 2) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            return Err(format!(
                "an attribute claims {len} bytes but {} are left",
                buf.len()
            ));
        }
        out.push((kind, &buf[4..len]));
        buf = buf.get(align4(len)..).unwrap_or(&[]);
    }
    Ok(out)
}

/// Parses the attributes of one `NFT_MSG_NEWRULE` message of a dump.
fn parse_rule(attrs: &[u8]) -> std::result::Result<ListedRule, String> {
    let mut handle = None;
    let mut exprs = Vec::new();
    for (kind, value) in attributes(attrs)? {
        match kind {
            NFTA_RULE_HANDLE => {
                let bytes: [u8; 8] = value
                    .try_into()
                    .map_err(|_| format!("a rule handle of {} bytes", value.len()))?;
                handle = Some(u64::from_be_bytes(bytes));
            }
            NFTA_RULE_EXPRESSIONS => {
                for (elem_kind, elem) in attributes(value)? {
                    if elem_kind != NFTA_LIST_ELEM {
                        continue;
                    }
                    let mut name = None;
                    let mut data = Vec::new();
                    for (k, v) in attributes(elem)? {
                        match k {
                            NFTA_EXPR_NAME => {
                                let text = v.split(|b| *b == 0).next().unwrap_or_default();
                                name = Some(
                                    std::str::from_utf8(text)
                                        .map_err(|_| "an expression name is not UTF-8".to_owned())?
                                        .to_owned(),
                                );
                            }
                            NFTA_EXPR_DATA => data = v.to_vec(),
                            _ => {}
                        }
                    }
                    let name = name.ok_or("an expression without a name")?;
                    exprs.push(ListedExpr { name, data });
                }
            }
            _ => {}
        }
    }
    Ok(ListedRule {
        handle: handle.ok_or("a rule without a handle")?,
        exprs,
    })
}

/// Scans `data` as the datagrams of a rule dump, exactly as [`NftHandle::list_rules`] does.
/// Only for fuzzing: it must never panic.
#[doc(hidden)]
pub fn fuzz_scan_rule_dump(data: &[u8]) {
    let mut exchange = Exchange::new(1, true);
    let mut rules = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let cut = rest
            .windows(4)
            .position(|w| w == [0xff; 4])
            .unwrap_or(rest.len());
        if scan_rule_dump(&mut exchange, &rest[..cut], "fuzz", &mut rules).is_some() {
            return;
        }
        rest = rest.get(cut + 4..).unwrap_or(&[]);
    }
}

impl NftHandle {
    /// Lists the rules of chain `chain` of table `family table`, in order, with their handles
    /// and raw expressions. A chain (or table) that does not exist lists no rules.
    pub fn list_rules(&self, family: Family, table: &str, chain: &str) -> Result<Vec<ListedRule>> {
        let object = chain_object(family, table, chain);
        for (what, name) in [("table", table), ("chain", chain)] {
            if name.is_empty() || name.len() > MAX_NAME_LEN || name.contains('\0') {
                return Err(Error::InvalidArgument {
                    object,
                    message: format!("the {what} name {name:?} is not a valid nftables name"),
                });
            }
        }
        match self.lock().as_mut() {
            Some(conn) => conn.list_rules(family, table, chain, &object),
            None => Err(Error::Protocol {
                context: format!("listing the rules of {object}"),
                message: "the handle is being closed".into(),
            }),
        }
    }
}

impl Conn {
    fn list_rules(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
        object: &str,
    ) -> Result<Vec<ListedRule>> {
        let mut attrs = Attrs::default();
        attrs.put_str(NFTA_RULE_TABLE, table);
        attrs.put_str(NFTA_RULE_CHAIN, chain);
        // A dump that the ruleset changed under is marked interrupted; it is asked again.
        for _ in 0..8 {
            let seq = self.reserve_seqs(1);
            let mut tx = std::mem::take(&mut self.tx);
            tx.clear();
            let put = put_message(
                &mut tx,
                (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE,
                NLM_F_REQUEST | NLM_F_DUMP,
                seq,
                family.number(),
                0,
                &attrs.buf,
            );
            self.tx = tx;
            put?;
            self.send()?;
            let mut exchange = Exchange::new(seq, true);
            let mut rules = Vec::new();
            let end = loop {
                let n = self.recv()?;
                if let Some(end) = scan_rule_dump(&mut exchange, &self.rx[..n], object, &mut rules)
                {
                    break end;
                }
            };
            match end {
                Ok(Outcome::Complete) => return Ok(rules),
                Ok(Outcome::Interrupted) => {}
                // No such table or chain: nothing to list.
                Err(e) if e.is_not_found() => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        Err(Error::Protocol {
            context: format!("listing the rules of {object}"),
            message: "the ruleset kept changing during the listing (8 attempts)".into(),
        })
    }
}

//! The batch builder: one nf_tables transaction of table, chain, rule and set element operations,
//! checked as it is built and encoded between `NFNL_MSG_BATCH_BEGIN` and `NFNL_MSG_BATCH_END`.

use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};

use super::consts::*;
use super::encode::{Attrs, put_message};
use super::types::{BaseChain, CmpOp, Data, Expr, Family, Policy, RuleCompat, SetElement, Verdict};
use crate::error::{Error, Result};

/// One message of a batch: its nf_tables type, flags, family, attributes and the object it is
/// about (for error messages).
#[derive(Debug, Clone)]
pub(super) struct Message {
    msg_type: u16,
    flags: u16,
    family: Family,
    attrs: Vec<u8>,
    pub(super) object: String,
}

/// One nf_tables transaction, built with typed operations and applied atomically by
/// [`NftHandle::commit`]: either every message takes effect or none does.
///
/// The builder methods check names and value sizes; the first problem is kept and returned by
/// `commit` (as [`Error::InvalidArgument`]) before anything is sent.
///
/// [`NftHandle::commit`]: super::NftHandle::commit
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub(super) messages: Vec<Message>,
    invalid: Option<(String, String)>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// The number of messages (operations) in the batch.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    fn refuse(&mut self, object: &str, message: String) {
        if self.invalid.is_none() {
            self.invalid = Some((object.to_owned(), message));
        }
    }

    fn check_name(&mut self, object: &str, what: &str, name: &str) {
        if name.is_empty() {
            self.refuse(object, format!("the {what} name is empty"));
        } else if name.len() > MAX_NAME_LEN {
            self.refuse(
                object,
                format!(
                    "the {what} name is {} bytes long; nftables allows at most {MAX_NAME_LEN}",
                    name.len()
                ),
            );
        } else if name.contains('\0') {
            self.refuse(object, format!("the {what} name contains a NUL byte"));
        }
    }

    fn check_data(&mut self, object: &str, what: &str, data: &[u8]) {
        if data.is_empty() || data.len() > MAX_DATA_LEN {
            self.refuse(
                object,
                format!(
                    "the {what} is {} bytes long; nftables takes 1 to {MAX_DATA_LEN}",
                    data.len()
                ),
            );
        }
    }

    fn check_verdict(&mut self, object: &str, verdict: &Verdict) {
        if let Some(chain) = verdict.chain() {
            self.check_name(object, "verdict's chain", chain);
        }
    }

    fn push(&mut self, msg_type: u16, flags: u16, family: Family, attrs: Attrs, object: String) {
        self.messages.push(Message {
            msg_type,
            flags,
            family,
            attrs: attrs.buf,
            object,
        });
    }

    fn push_nested(
        &mut self,
        msg_type: u16,
        flags: u16,
        family: Family,
        attrs: std::result::Result<Attrs, usize>,
        object: String,
    ) {
        match attrs {
            Ok(a) => self.push(msg_type, flags, family, a, object),
            Err(len) => self.refuse(
                &object,
                format!(
                    "the message needs a {len}-byte attribute; netlink attributes hold at most \
                     65535 bytes (split it into several operations)"
                ),
            ),
        }
    }

    /// `add table FAMILY NAME`: creates the table unless it exists.
    pub fn add_table(&mut self, family: Family, name: &str) -> &mut Self {
        let object = table_object(family, name);
        self.check_name(&object, "table", name);
        let mut a = Attrs::default();
        a.put_str(NFTA_TABLE_NAME, name);
        a.put_be32(NFTA_TABLE_FLAGS, 0);
        self.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, family, a, object);
        self
    }

    /// `delete table FAMILY NAME` with everything in it. Fails (and with it the batch) when the
    /// table does not exist; see [`Batch::replace_table`].
    pub fn delete_table(&mut self, family: Family, name: &str) -> &mut Self {
        let object = table_object(family, name);
        self.check_name(&object, "table", name);
        let mut a = Attrs::default();
        a.put_str(NFTA_TABLE_NAME, name);
        self.push(NFT_MSG_DELTABLE, 0, family, a, object);
        self
    }

    /// `add table`, `delete table`, `add table`: an empty table `NAME` whatever was there before.
    /// Within one batch, the old table's contents disappear and the new ones appear atomically.
    pub fn replace_table(&mut self, family: Family, name: &str) -> &mut Self {
        self.add_table(family, name)
            .delete_table(family, name)
            .add_table(family, name)
    }

    /// The checked table and chain names of a chain or rule message, as its first attributes
    /// (`NFTA_CHAIN_TABLE`/`NFTA_RULE_TABLE` is 1 in both; the chain's is `name_attr`).
    fn chain_attrs(&mut self, object: &str, table: &str, chain: &str, name_attr: u16) -> Attrs {
        self.check_name(object, "table", table);
        self.check_name(object, "chain", chain);
        let mut a = Attrs::default();
        a.put_str(NFTA_CHAIN_TABLE, table);
        a.put_str(name_attr, chain);
        a
    }

    /// `add chain FAMILY TABLE NAME`: a regular chain (a jump or goto target).
    pub fn add_chain(&mut self, family: Family, table: &str, name: &str) -> &mut Self {
        let object = chain_object(family, table, name);
        let a = self.chain_attrs(&object, table, name, NFTA_CHAIN_NAME);
        self.push(NFT_MSG_NEWCHAIN, NLM_F_CREATE, family, a, object);
        self
    }

    /// `add chain FAMILY TABLE NAME { type T hook H priority P; policy X; }`: a base chain.
    pub fn add_base_chain(
        &mut self,
        family: Family,
        table: &str,
        name: &str,
        base: &BaseChain,
    ) -> &mut Self {
        let object = chain_object(family, table, name);
        self.check_name(&object, "table", table);
        self.check_name(&object, "chain", name);
        let build = || -> std::result::Result<Attrs, usize> {
            let mut a = Attrs::default();
            a.put_str(NFTA_CHAIN_TABLE, table);
            a.put_str(NFTA_CHAIN_NAME, name);
            a.put_str(NFTA_CHAIN_TYPE, base.chain_type.name());
            a.put_be32(
                NFTA_CHAIN_POLICY,
                match base.policy {
                    Policy::Accept => 1,
                    Policy::Drop => 0,
                },
            );
            let hook = a.begin(NFTA_CHAIN_HOOK);
            a.put_be32(NFTA_HOOK_HOOKNUM, base.hook.number());
            a.put_be32(NFTA_HOOK_PRIORITY, base.priority as u32);
            a.end(hook)?;
            Ok(a)
        };
        self.push_nested(NFT_MSG_NEWCHAIN, NLM_F_CREATE, family, build(), object);
        self
    }

    /// `add rule FAMILY TABLE CHAIN EXPRS...`: appends a rule at the end of the chain.
    pub fn add_rule(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
        exprs: &[Expr],
    ) -> &mut Self {
        self.add_rule_compat(family, table, chain, exprs, None)
    }

    /// Like [`Batch::add_rule`], with the rule's x_tables compatibility information
    /// (`NFTA_RULE_COMPAT`: the rule's layer 4 protocol match, which x_tables matches and targets
    /// in [`Expr::Match`] and [`Expr::Target`] may check), as `iptables-nft` sends it for a rule
    /// with `-p`.
    pub fn add_rule_compat(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
        exprs: &[Expr],
        compat: Option<RuleCompat>,
    ) -> &mut Self {
        let object = format!("nftables rule in chain {chain:?} of table {family} {table}",);
        self.check_name(&object, "table", table);
        self.check_name(&object, "chain", chain);
        for e in exprs {
            match e {
                Expr::Cmp { data, .. } => self.check_data(&object, "cmp value", data),
                Expr::Immediate {
                    data: Data::Value(v),
                    ..
                } => self.check_data(&object, "immediate value", v),
                Expr::Immediate {
                    data: Data::Verdict(v),
                    ..
                } => self.check_verdict(&object, v),
                Expr::Range { op, from, to, .. } => {
                    self.check_data(&object, "range start", from);
                    self.check_data(&object, "range end", to);
                    if from.len() != to.len() {
                        self.refuse(
                            &object,
                            format!(
                                "the range's ends differ in length ({} and {} bytes)",
                                from.len(),
                                to.len()
                            ),
                        );
                    }
                    if !matches!(op, CmpOp::Eq | CmpOp::Neq) {
                        self.refuse(
                            &object,
                            format!("a range compares with == or !=, not {op:?}"),
                        );
                    }
                }
                Expr::Bitwise { mask, xor, .. } => {
                    self.check_data(&object, "bitwise mask", mask);
                    if mask.len() != xor.len() {
                        self.refuse(
                            &object,
                            format!(
                                "the bitwise mask and xor differ in length ({} and {} bytes)",
                                mask.len(),
                                xor.len()
                            ),
                        );
                    }
                }
                Expr::Match { name, info, .. } | Expr::Target { name, info, .. } => {
                    let what = e.name();
                    if name.is_empty() || name.len() > MAX_XT_NAME_LEN || name.contains('\0') {
                        self.refuse(
                            &object,
                            format!(
                                "the x_tables {what} name {name:?} must be 1 to \
                                 {MAX_XT_NAME_LEN} bytes without NUL"
                            ),
                        );
                    }
                    if info.len() > MAX_XT_INFO_LEN || info.len() % 8 != 0 {
                        self.refuse(
                            &object,
                            format!(
                                "the x_tables {what} {name:?} has {} bytes of data; it must be a \
                                 multiple of 8 up to {MAX_XT_INFO_LEN}",
                                info.len()
                            ),
                        );
                    }
                }
                _ => {}
            }
        }
        let build = || -> std::result::Result<Attrs, usize> {
            let mut a = Attrs::default();
            a.put_str(NFTA_RULE_TABLE, table);
            a.put_str(NFTA_RULE_CHAIN, chain);
            let list = a.begin(NFTA_RULE_EXPRESSIONS);
            for e in exprs {
                a.put_expr(e)?;
            }
            a.end(list)?;
            if let Some(c) = compat {
                let nest = a.begin(NFTA_RULE_COMPAT);
                a.put_be32(NFTA_RULE_COMPAT_PROTO, u32::from(c.proto));
                a.put_be32(
                    NFTA_RULE_COMPAT_FLAGS,
                    if c.inverted { NFT_RULE_COMPAT_F_INV } else { 0 },
                );
                a.end(nest)?;
            }
            Ok(a)
        };
        self.push_nested(
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            family,
            build(),
            object,
        );
        self
    }

    /// `flush chain FAMILY TABLE NAME`: deletes every rule of the chain (which must exist).
    pub fn flush_chain(&mut self, family: Family, table: &str, name: &str) -> &mut Self {
        let object = chain_object(family, table, name);
        let a = self.chain_attrs(&object, table, name, NFTA_RULE_CHAIN);
        self.push(NFT_MSG_DELRULE, 0, family, a, object);
        self
    }

    /// `delete rule FAMILY TABLE CHAIN handle H`.
    pub fn delete_rule(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
        handle: u64,
    ) -> &mut Self {
        let object = format!("nftables rule {handle} in chain {chain:?} of table {family} {table}");
        let mut a = self.chain_attrs(&object, table, chain, NFTA_RULE_CHAIN);
        a.put(NFTA_RULE_HANDLE, &handle.to_be_bytes());
        self.push(NFT_MSG_DELRULE, 0, family, a, object);
        self
    }

    /// `delete chain FAMILY TABLE NAME` with its rules: the chain must exist and no rule may
    /// jump to it.
    pub fn delete_chain(&mut self, family: Family, table: &str, name: &str) -> &mut Self {
        let object = chain_object(family, table, name);
        let a = self.chain_attrs(&object, table, name, NFTA_CHAIN_NAME);
        self.push(NFT_MSG_DELCHAIN, 0, family, a, object);
        self
    }

    fn elements(
        &mut self,
        msg_type: u16,
        flags: u16,
        family: Family,
        table: &str,
        set: &str,
        elements: &[SetElement],
    ) {
        let what = if elements.len() == 1 {
            "element".to_owned()
        } else {
            format!("elements ({})", elements.len())
        };
        let object = format!("nftables {what} of set {set:?} in table {family} {table}");
        self.check_name(&object, "table", table);
        self.check_name(&object, "set", set);
        if elements.is_empty() {
            self.refuse(&object, "no elements were given".into());
        }
        for e in elements {
            self.check_data(&object, "element key", &e.key);
            if let Some(end) = &e.key_end {
                self.check_data(&object, "element key end", end);
            }
            match &e.data {
                Some(Data::Value(v)) => self.check_data(&object, "element value", v),
                Some(Data::Verdict(v)) => self.check_verdict(&object, v),
                None => {}
            }
        }
        let build = || -> std::result::Result<Attrs, usize> {
            let mut a = Attrs::default();
            a.put_str(NFTA_SET_ELEM_LIST_TABLE, table);
            a.put_str(NFTA_SET_ELEM_LIST_SET, set);
            let list = a.begin(NFTA_SET_ELEM_LIST_ELEMENTS);
            for e in elements {
                a.put_element(e)?;
            }
            a.end(list)?;
            Ok(a)
        };
        self.push_nested(msg_type, flags, family, build(), object);
    }

    /// `add element FAMILY TABLE SET { ... }`: adds the elements; one that exists already is
    /// left as it is (like `nft add element`).
    pub fn add_elements(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
        elements: &[SetElement],
    ) -> &mut Self {
        self.elements(
            NFT_MSG_NEWSETELEM,
            NLM_F_CREATE,
            family,
            table,
            set,
            elements,
        );
        self
    }

    /// `create element FAMILY TABLE SET { ... }`: like [`Batch::add_elements`], but an element
    /// that exists already fails the batch ([`Error::Exists`]).
    pub fn create_elements(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
        elements: &[SetElement],
    ) -> &mut Self {
        self.elements(
            NFT_MSG_NEWSETELEM,
            NLM_F_CREATE | NLM_F_EXCL,
            family,
            table,
            set,
            elements,
        );
        self
    }

    /// `delete element FAMILY TABLE SET { ... }`: removes the elements; a missing one fails the
    /// batch ([`Error::NotFound`]). Map elements are named by their key alone.
    pub fn delete_elements(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
        elements: &[SetElement],
    ) -> &mut Self {
        self.elements(NFT_MSG_DELSETELEM, 0, family, table, set, elements);
        self
    }

    /// Encodes the transaction with sequence numbers `first_seq` (BATCH_BEGIN) to
    /// `first_seq + len + 1` (BATCH_END). Every message asks for an ack.
    pub(super) fn encode(&self, first_seq: u32, out: &mut Vec<u8>) -> Result<()> {
        if let Some((object, message)) = &self.invalid {
            return Err(Error::InvalidArgument {
                object: object.clone(),
                message: message.clone(),
            });
        }
        out.clear();
        let mut seq = first_seq;
        put_message(
            out,
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            seq,
            0,
            NFNL_SUBSYS_NFTABLES,
            &[],
        )?;
        for m in &self.messages {
            seq = seq.wrapping_add(1);
            put_message(
                out,
                (NFNL_SUBSYS_NFTABLES << 8) | m.msg_type,
                NLM_F_REQUEST | NLM_F_ACK | m.flags,
                seq,
                m.family.number(),
                0,
                &m.attrs,
            )?;
        }
        put_message(
            out,
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            seq.wrapping_add(1),
            0,
            NFNL_SUBSYS_NFTABLES,
            &[],
        )
    }
}

fn table_object(family: Family, name: &str) -> String {
    format!("nftables table {family} {name}")
}

pub(super) fn chain_object(family: Family, table: &str, name: &str) -> String {
    format!("nftables chain {name:?} in table {family} {table}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nftables::test_util::{hex, nla};
    use crate::nftables::types::{ChainType, Hook, priority};
    use crate::socket::{align4, read_u16, read_u32};

    /// One encoded message: type, flags, seq, nfgenmsg, attributes.
    type Decoded = (u16, u16, u32, [u8; 4], Vec<u8>);

    /// Splits an encoded stream into its messages.
    fn messages(buf: &[u8]) -> Vec<Decoded> {
        let mut out = Vec::new();
        let mut off = 0;
        while off < buf.len() {
            let len = read_u32(buf, off) as usize;
            let m = &buf[off..off + len];
            out.push((
                read_u16(m, 4),
                read_u16(m, 6),
                read_u32(m, 8),
                [m[16], m[17], m[18], m[19]],
                m[20..].to_vec(),
            ));
            off += align4(len);
        }
        out
    }

    #[test]
    fn batch_is_framed_with_begin_and_end_and_asks_for_acks() {
        let mut b = Batch::new();
        b.replace_table(Family::Ip, "berth-resolver");
        let mut buf = Vec::new();
        b.encode(7, &mut buf).unwrap();
        let m = messages(&buf);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].0, NFNL_MSG_BATCH_BEGIN);
        assert_eq!(
            m[0].3,
            [0, 0, 0, 10],
            "res_id NFNL_SUBSYS_NFTABLES, big-endian"
        );
        assert_eq!(m[4].0, NFNL_MSG_BATCH_END);
        assert_eq!(
            m.iter().map(|x| x.2).collect::<Vec<_>>(),
            vec![7, 8, 9, 10, 11]
        );
        assert_eq!(m[1].0, 0x0a00);
        assert_eq!(m[2].0, 0x0a02);
        assert_eq!(m[1].1, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE);
        assert_eq!(m[2].1, NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(m[1].3, [2, 0, 0, 0]);
        // The bytes nft 1.0.6 sends for `add table ip berth-resolver`.
        let mut want = nla(19, 1, false);
        want.extend(b"berth-resolver\0\0");
        want.extend(nla(8, 2, false));
        want.extend([0, 0, 0, 0]);
        assert_eq!(m[1].4, want);
    }

    /// `add chain ip berth-resolver output { type filter hook output priority raw; policy
    /// accept; }`, byte for byte as nft sends it.
    #[test]
    fn base_chain_matches_nft() {
        let mut b = Batch::new();
        b.add_base_chain(
            Family::Ip,
            "berth-resolver",
            "output",
            &BaseChain::new(
                ChainType::Filter,
                Hook::Output,
                priority::RAW,
                Policy::Accept,
            ),
        );
        let mut buf = Vec::new();
        b.encode(1, &mut buf).unwrap();
        let m = messages(&buf);
        let mut want = nla(19, 1, false);
        want.extend(b"berth-resolver\0\0");
        want.extend(nla(11, 3, false));
        want.extend(b"output\0\0");
        want.extend(nla(11, 7, false));
        want.extend(b"filter\0\0");
        want.extend(nla(8, 5, false));
        want.extend(hex("00000001"));
        want.extend(nla(20, 4, true));
        want.extend(nla(8, 1, false));
        want.extend(hex("00000003"));
        want.extend(nla(8, 2, false));
        want.extend(hex("fffffed4"));
        assert_eq!(m[1].4, want);
    }

    #[test]
    fn bad_names_and_values_are_refused_before_sending() {
        let mut b = Batch::new();
        b.add_table(Family::Inet, "");
        let e = b.encode(1, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
        assert!(e.to_string().contains("table inet"), "{e}");

        let mut b = Batch::new();
        b.add_elements(
            Family::Inet,
            "berth",
            "dnat4",
            &[SetElement::key(vec![0; 65])],
        );
        let e = b.encode(1, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("set \"dnat4\""), "{e}");
        assert!(e.to_string().contains("65 bytes"), "{e}");

        let mut b = Batch::new();
        b.add_rule(
            Family::Ip,
            "t",
            "c",
            &[Expr::verdict(Verdict::Jump("x\0y".into()))],
        );
        assert!(b.encode(1, &mut Vec::new()).is_err());

        let mut b = Batch::new();
        b.delete_elements(Family::Inet, "t", "s", &[]);
        assert!(b.encode(1, &mut Vec::new()).is_err());

        let long = "x".repeat(256);
        let mut b = Batch::new();
        b.add_chain(Family::Inet, "t", &long);
        assert!(b.encode(1, &mut Vec::new()).is_err());
    }

    #[test]
    fn oversized_nest_is_refused() {
        let elements: Vec<SetElement> = (0..5000u32)
            .map(|i| SetElement::key(i.to_be_bytes().to_vec()))
            .collect();
        let mut b = Batch::new();
        b.add_elements(Family::Inet, "t", "s", &elements);
        let e = b.encode(1, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("65535"), "{e}");
    }
}

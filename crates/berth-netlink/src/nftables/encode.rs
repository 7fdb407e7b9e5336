//! The wire encoder: a growing netlink attribute stream ([`Attrs`]) that writes expressions and
//! set elements the way `nft` 1.0 does, and the framing of one nfnetlink message.

use super::consts::*;
use super::types::{Data, Expr, SetElement};
use crate::error::{Error, Result};

/// A growing netlink attribute stream.
#[derive(Debug, Default, Clone)]
pub(super) struct Attrs {
    pub(super) buf: Vec<u8>,
}

impl Attrs {
    pub(super) fn put(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        // Values are bounded by the checks in Batch (names <= 255, data <= 64 bytes); nests are
        // bounded by the u16 check in `end`.
        let len16 = u16::try_from(len).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len16.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    pub(super) fn put_str(&mut self, kind: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.put(kind, &v);
    }

    pub(super) fn put_be32(&mut self, kind: u16, value: u32) {
        self.put(kind, &value.to_be_bytes());
    }

    /// Opens a nested attribute; close it with [`Attrs::end`].
    pub(super) fn begin(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    /// Closes the nest opened at `at`. Fails when the nest outgrew a netlink attribute.
    pub(super) fn end(&mut self, at: usize) -> std::result::Result<(), usize> {
        let len = self.buf.len() - at;
        let len16 = u16::try_from(len).map_err(|_| len)?;
        self.buf[at..at + 2].copy_from_slice(&len16.to_ne_bytes());
        Ok(())
    }

    fn put_data(&mut self, kind: u16, data: &Data) -> std::result::Result<(), usize> {
        let outer = self.begin(kind);
        match data {
            Data::Value(v) => self.put(NFTA_DATA_VALUE, v),
            Data::Verdict(verdict) => {
                let inner = self.begin(NFTA_DATA_VERDICT);
                self.put_be32(NFTA_VERDICT_CODE, verdict.code() as u32);
                if let Some(chain) = verdict.chain() {
                    self.put_str(NFTA_VERDICT_CHAIN, chain);
                }
                self.end(inner)?;
            }
        }
        self.end(outer)
    }

    pub(super) fn put_expr(&mut self, expr: &Expr) -> std::result::Result<(), usize> {
        let elem = self.begin(NFTA_LIST_ELEM);
        self.put_str(NFTA_EXPR_NAME, expr.name());
        match expr {
            Expr::PayloadLoad {
                base,
                offset,
                len,
                dreg,
            } => {
                let d = self.begin(NFTA_EXPR_DATA);
                self.put_be32(NFTA_PAYLOAD_DREG, dreg.0);
                self.put_be32(NFTA_PAYLOAD_BASE, base.number());
                self.put_be32(NFTA_PAYLOAD_OFFSET, *offset);
                self.put_be32(NFTA_PAYLOAD_LEN, *len);
                self.end(d)?;
            }
            Expr::PayloadWrite {
                sreg,
                base,
                offset,
                len,
                checksum,
            } => {
                let d = self.begin(NFTA_EXPR_DATA);
                self.put_be32(NFTA_PAYLOAD_SREG, sreg.0);
                self.put_be32(NFTA_PAYLOAD_BASE, base.number());
                self.put_be32(NFTA_PAYLOAD_OFFSET, *offset);
                self.put_be32(NFTA_PAYLOAD_LEN, *len);
                if let Some(c) = checksum {
                    self.put_be32(NFTA_PAYLOAD_CSUM_TYPE, c.kind.number());
                    self.put_be32(NFTA_PAYLOAD_CSUM_OFFSET, c.offset);
                    if c.flags != 0 {
                        self.put_be32(NFTA_PAYLOAD_CSUM_FLAGS, c.flags);
                    }
                }
                self.end(d)?;
            }
            Expr::Cmp { op, sreg, data } => {
                let d = self.begin(NFTA_EXPR_DATA);
                self.put_be32(NFTA_CMP_SREG, sreg.0);
                self.put_be32(NFTA_CMP_OP, op.number());
                self.put_data(NFTA_CMP_DATA, &Data::Value(data.clone()))?;
                self.end(d)?;
            }
            Expr::Meta { key, dreg } => {
                let d = self.begin(NFTA_EXPR_DATA);
                self.put_be32(NFTA_META_KEY, key.number());
                self.put_be32(NFTA_META_DREG, dreg.0);
                self.end(d)?;
            }
            Expr::Immediate { dreg, data } => {
                let d = self.begin(NFTA_EXPR_DATA);
                self.put_be32(NFTA_IMMEDIATE_DREG, dreg.0);
                self.put_data(NFTA_IMMEDIATE_DATA, data)?;
                self.end(d)?;
            }
            // `nft` sends an empty data nest for a counter (zeroed counters) and none for notrack.
            Expr::Counter => {
                let d = self.begin(NFTA_EXPR_DATA);
                self.end(d)?;
            }
            Expr::Notrack => {}
            Expr::Range { op, sreg, from, to } => {
                let d = self.begin(NFTA_EXPR_DATA);
                self.put_be32(NFTA_RANGE_SREG, sreg.0);
                self.put_be32(NFTA_RANGE_OP, op.number());
                self.put_data(NFTA_RANGE_FROM_DATA, &Data::Value(from.clone()))?;
                self.put_data(NFTA_RANGE_TO_DATA, &Data::Value(to.clone()))?;
                self.end(d)?;
            }
            Expr::Bitwise {
                sreg,
                dreg,
                mask,
                xor,
            } => {
                let d = self.begin(NFTA_EXPR_DATA);
                self.put_be32(NFTA_BITWISE_SREG, sreg.0);
                self.put_be32(NFTA_BITWISE_DREG, dreg.0);
                self.put_be32(NFTA_BITWISE_LEN, mask.len() as u32);
                self.put_data(NFTA_BITWISE_MASK, &Data::Value(mask.clone()))?;
                self.put_data(NFTA_BITWISE_XOR, &Data::Value(xor.clone()))?;
                self.end(d)?;
            }
            Expr::Match { name, rev, info } | Expr::Target { name, rev, info } => {
                let d = self.begin(NFTA_EXPR_DATA);
                self.put_str(NFTA_XT_NAME, name);
                self.put_be32(NFTA_XT_REV, *rev);
                self.put(NFTA_XT_INFO, info);
                self.end(d)?;
            }
        }
        self.end(elem)
    }

    pub(super) fn put_element(&mut self, e: &SetElement) -> std::result::Result<(), usize> {
        let elem = self.begin(NFTA_LIST_ELEM);
        if e.interval_end {
            self.put_be32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
        }
        self.put_data(NFTA_SET_ELEM_KEY, &Data::Value(e.key.clone()))?;
        if let Some(end) = &e.key_end {
            self.put_data(NFTA_SET_ELEM_KEY_END, &Data::Value(end.clone()))?;
        }
        if let Some(data) = &e.data {
            self.put_data(NFTA_SET_ELEM_DATA, data)?;
        }
        self.end(elem)
    }
}

/// Appends one netlink message with an `nfgenmsg` header.
pub(super) fn put_message(
    out: &mut Vec<u8>,
    message_type: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &[u8],
) -> Result<()> {
    let len = HEADER_LEN + NFGENMSG_LEN + attrs.len();
    let len32 = u32::try_from(len).map_err(|_| Error::InvalidArgument {
        object: "nftables transaction".into(),
        message: format!("a message of {len} bytes is too large for netlink"),
    })?;
    out.extend_from_slice(&len32.to_ne_bytes());
    out.extend_from_slice(&message_type.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    // Port id 0: the kernel fills in the socket's own.
    out.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: family, version NFNETLINK_V0, resource id in network byte order.
    out.push(family);
    out.push(0);
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(attrs);
    // Attributes are 4-aligned already; keep the stream aligned regardless.
    while out.len() % 4 != 0 {
        out.push(0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nftables::test_util::{hex, nla};
    use crate::nftables::types::{Checksum, PayloadBase, Register, Verdict};

    /// The expressions of `udp dport set 41000` with its checksum fix-up, as nft sends them.
    #[test]
    fn payload_write_and_immediate_match_nft() {
        let mut a = Attrs::default();
        a.put_expr(&Expr::Immediate {
            dreg: Register::R1,
            data: Data::Value(41000u16.to_be_bytes().to_vec()),
        })
        .unwrap();
        a.put_expr(&Expr::PayloadWrite {
            sreg: Register::R1,
            base: PayloadBase::Transport,
            offset: 2,
            len: 2,
            checksum: Some(Checksum::inet(6)),
        })
        .unwrap();
        let mut want = nla(44, 1, true);
        want.extend(nla(14, 1, false));
        want.extend(b"immediate\0\0\0");
        want.extend(nla(24, 2, true));
        want.extend(nla(8, 1, false));
        want.extend(hex("00000001"));
        want.extend(nla(12, 2, true));
        want.extend(nla(6, 1, false));
        want.extend(hex("a0280000"));
        want.extend(nla(68, 1, true));
        want.extend(nla(12, 1, false));
        want.extend(b"payload\0");
        want.extend(nla(52, 2, true));
        for (k, v) in [(5, 1), (2, 2), (3, 2), (4, 2), (6, 1), (7, 6)] {
            want.extend(nla(8, k, false));
            want.extend((v as u32).to_be_bytes());
        }
        assert_eq!(a.buf, want);
    }

    /// `counter accept` and a notrack, as nft sends them.
    #[test]
    fn counter_verdict_and_notrack_match_nft() {
        let mut a = Attrs::default();
        a.put_expr(&Expr::Counter).unwrap();
        a.put_expr(&Expr::verdict(Verdict::Accept)).unwrap();
        a.put_expr(&Expr::Notrack).unwrap();
        let mut want = nla(20, 1, true);
        want.extend(nla(12, 1, false));
        want.extend(b"counter\0");
        want.extend(nla(4, 2, true));
        want.extend(nla(48, 1, true));
        want.extend(nla(14, 1, false));
        want.extend(b"immediate\0\0\0");
        want.extend(nla(28, 2, true));
        want.extend(nla(8, 1, false));
        want.extend(hex("00000000"));
        want.extend(nla(16, 2, true));
        want.extend(nla(12, 2, true));
        want.extend(nla(8, 1, false));
        want.extend(hex("00000001"));
        want.extend(nla(16, 1, true));
        want.extend(nla(12, 1, false));
        want.extend(b"notrack\0");
        assert_eq!(a.buf, want);
    }

    /// `"br-b" . "br-c" : jump f` in an ifname . ifname verdict map, as nft sends it.
    #[test]
    fn verdict_map_element_matches_nft() {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"br-b");
        key[16..20].copy_from_slice(b"br-c");
        let mut a = Attrs::default();
        a.put_element(
            &SetElement::key(key.to_vec()).with_data(Data::Verdict(Verdict::Jump("f".into()))),
        )
        .unwrap();
        let mut want = nla(68, 1, true);
        want.extend(nla(40, 1, true));
        want.extend(nla(36, 1, false));
        want.extend(key);
        want.extend(nla(24, 2, true));
        want.extend(nla(20, 2, true));
        want.extend(nla(8, 1, false));
        want.extend(hex("fffffffd"));
        want.extend(nla(6, 2, false));
        want.extend(b"f\0\0\0");
        assert_eq!(a.buf, want);
    }

    /// `10.0.0.1 . 80-90` in a concatenated interval set, and an interval end.
    #[test]
    fn interval_elements_match_nft() {
        let mut a = Attrs::default();
        a.put_element(&SetElement::range(
            hex("0a000001 00500000"),
            hex("0a000001 005a0000"),
        ))
        .unwrap();
        a.put_element(&SetElement::interval_end(hex("0a000100")))
            .unwrap();
        let mut want = nla(36, 1, true);
        want.extend(nla(16, 1, true));
        want.extend(nla(12, 1, false));
        want.extend(hex("0a000001 00500000"));
        want.extend(nla(16, 10, true));
        want.extend(nla(12, 1, false));
        want.extend(hex("0a000001 005a0000"));
        want.extend(nla(24, 1, true));
        want.extend(nla(8, 3, false));
        want.extend(hex("00000001"));
        want.extend(nla(12, 1, true));
        want.extend(nla(8, 1, false));
        want.extend(hex("0a000100"));
        assert_eq!(a.buf, want);
    }
}

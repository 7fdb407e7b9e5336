//! The typed vocabulary of nf_tables: families, chain types, hooks, registers, verdicts, the
//! [`Expr`]essions of a rule and the elements of a set, as callers build them.

use std::fmt;

/// An nftables address family (`NFPROTO_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Family {
    /// `inet`: IPv4 and IPv6.
    Inet,
    /// `ip`: IPv4.
    Ip,
    /// `ip6`: IPv6.
    Ip6,
    /// `arp`.
    Arp,
    /// `bridge`.
    Bridge,
    /// `netdev`.
    Netdev,
}

impl Family {
    /// The `NFPROTO_*` number.
    pub fn number(self) -> u8 {
        match self {
            Family::Inet => 1,
            Family::Ip => 2,
            Family::Arp => 3,
            Family::Netdev => 5,
            Family::Bridge => 7,
            Family::Ip6 => 10,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Arp => "arp",
            Family::Bridge => "bridge",
            Family::Netdev => "netdev",
        })
    }
}

/// The type of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChainType {
    /// `filter`.
    Filter,
    /// `nat`.
    Nat,
    /// `route`.
    Route,
}

impl ChainType {
    pub(super) fn name(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
            ChainType::Route => "route",
        }
    }
}

/// The netfilter hook a base chain is attached to (`NF_INET_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Hook {
    /// `prerouting`.
    Prerouting,
    /// `input`.
    Input,
    /// `forward`.
    Forward,
    /// `output`.
    Output,
    /// `postrouting`.
    Postrouting,
}

impl Hook {
    pub(super) fn number(self) -> u32 {
        match self {
            Hook::Prerouting => 0,
            Hook::Input => 1,
            Hook::Forward => 2,
            Hook::Output => 3,
            Hook::Postrouting => 4,
        }
    }
}

/// The policy of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// `policy accept`.
    Accept,
    /// `policy drop`.
    Drop,
}

/// Well-known base chain priorities, as `nft` names them.
pub mod priority {
    /// `raw` (-300).
    pub const RAW: i32 = -300;
    /// `mangle` (-150).
    pub const MANGLE: i32 = -150;
    /// `dstnat` (-100).
    pub const DSTNAT: i32 = -100;
    /// `filter` (0).
    pub const FILTER: i32 = 0;
    /// `security` (50).
    pub const SECURITY: i32 = 50;
    /// `srcnat` (100).
    pub const SRCNAT: i32 = 100;
}

/// What makes a chain a base chain: its type, hook, priority and policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BaseChain {
    /// `type filter|nat|route`.
    pub chain_type: ChainType,
    /// `hook ...`.
    pub hook: Hook,
    /// `priority N` (see [`priority`] for the named ones).
    pub priority: i32,
    /// `policy accept|drop`.
    pub policy: Policy,
}

impl BaseChain {
    /// A base chain description.
    pub fn new(chain_type: ChainType, hook: Hook, priority: i32, policy: Policy) -> Self {
        BaseChain {
            chain_type,
            hook,
            priority,
            policy,
        }
    }
}

/// An nf_tables register. [`Register::VERDICT`] holds the verdict; [`Register::R1`] to
/// [`Register::R4`] are the 16-byte data registers `nft` uses for single values; the 4-byte
/// registers of concatenations are [`Register::reg32`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Register(pub(super) u32);

impl Register {
    /// `NFT_REG_VERDICT`.
    pub const VERDICT: Register = Register(0);
    /// `NFT_REG_1`.
    pub const R1: Register = Register(1);
    /// `NFT_REG_2`.
    pub const R2: Register = Register(2);
    /// `NFT_REG_3`.
    pub const R3: Register = Register(3);
    /// `NFT_REG_4`.
    pub const R4: Register = Register(4);

    /// `NFT_REG32_00 + index`: the 4-byte registers (16 of them, index 0 to 15). `None` beyond.
    pub fn reg32(index: u8) -> Option<Register> {
        (index < 16).then(|| Register(8 + u32::from(index)))
    }

    /// The register number as the kernel sees it.
    pub fn number(self) -> u32 {
        self.0
    }
}

/// Where a payload offset counts from (`NFT_PAYLOAD_*_HEADER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PayloadBase {
    /// The link layer header.
    LinkLayer,
    /// The network header (IPv4/IPv6).
    Network,
    /// The transport header (TCP/UDP/...).
    Transport,
}

impl PayloadBase {
    pub(super) fn number(self) -> u32 {
        match self {
            PayloadBase::LinkLayer => 0,
            PayloadBase::Network => 1,
            PayloadBase::Transport => 2,
        }
    }
}

/// How a payload write fixes up a checksum (`NFT_PAYLOAD_CSUM_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChecksumType {
    /// The internet checksum (IPv4 header, TCP, UDP).
    Inet,
    /// The SCTP CRC32c.
    Sctp,
}

impl ChecksumType {
    pub(super) fn number(self) -> u32 {
        match self {
            ChecksumType::Inet => 1,
            ChecksumType::Sctp => 2,
        }
    }
}

/// The checksum a payload write updates: its type, where it sits (from the same base as the
/// write), and `NFT_PAYLOAD_L4CSUM_PSEUDOHDR`-style flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checksum {
    /// The checksum algorithm.
    pub kind: ChecksumType,
    /// Offset of the checksum field.
    pub offset: u32,
    /// `NFTA_PAYLOAD_CSUM_FLAGS` (0: none; `nft` sends 0 for port rewrites).
    pub flags: u32,
}

impl Checksum {
    /// The internet checksum at `offset`, no flags: what `nft` uses for `udp dport set` (offset 6)
    /// and `tcp dport set` (offset 16).
    pub fn inet(offset: u32) -> Self {
        Checksum {
            kind: ChecksumType::Inet,
            offset,
            flags: 0,
        }
    }
}

/// A comparison operator (`NFT_CMP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `==`.
    Eq,
    /// `!=`.
    Neq,
    /// `<`.
    Lt,
    /// `<=`.
    Lte,
    /// `>`.
    Gt,
    /// `>=`.
    Gte,
}

impl CmpOp {
    pub(super) fn number(self) -> u32 {
        match self {
            CmpOp::Eq => 0,
            CmpOp::Neq => 1,
            CmpOp::Lt => 2,
            CmpOp::Lte => 3,
            CmpOp::Gt => 4,
            CmpOp::Gte => 5,
        }
    }
}

/// A packet or route property the `meta` expression loads (`NFT_META_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetaKey {
    /// Packet length.
    Len,
    /// The ethertype (`meta protocol`).
    Protocol,
    /// Packet mark.
    Mark,
    /// Input interface index.
    Iif,
    /// Output interface index.
    Oif,
    /// Input interface name (16 bytes, NUL-padded).
    IifName,
    /// Output interface name (16 bytes, NUL-padded).
    OifName,
    /// The netfilter family of the packet (`meta nfproto`, 1 byte).
    NfProto,
    /// The layer 4 protocol (`meta l4proto`, 1 byte).
    L4Proto,
}

impl MetaKey {
    /// Every key berth knows.
    pub(super) const ALL: [MetaKey; 9] = [
        MetaKey::Len,
        MetaKey::Protocol,
        MetaKey::Mark,
        MetaKey::Iif,
        MetaKey::Oif,
        MetaKey::IifName,
        MetaKey::OifName,
        MetaKey::NfProto,
        MetaKey::L4Proto,
    ];

    pub(super) fn number(self) -> u32 {
        match self {
            MetaKey::Len => 0,
            MetaKey::Protocol => 1,
            MetaKey::Mark => 3,
            MetaKey::Iif => 4,
            MetaKey::Oif => 5,
            MetaKey::IifName => 6,
            MetaKey::OifName => 7,
            MetaKey::NfProto => 15,
            MetaKey::L4Proto => 16,
        }
    }
}

/// A verdict: in a rule (through [`Expr::Immediate`]) or as the value of a verdict map element.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `continue`.
    Continue,
    /// `return`.
    Return,
    /// `jump CHAIN`.
    Jump(String),
    /// `goto CHAIN`.
    Goto(String),
}

impl Verdict {
    pub(super) fn code(&self) -> i32 {
        match self {
            Verdict::Drop => 0,
            Verdict::Accept => 1,
            Verdict::Continue => -1,
            Verdict::Jump(_) => -3,
            Verdict::Goto(_) => -4,
            Verdict::Return => -5,
        }
    }

    pub(super) fn chain(&self) -> Option<&str> {
        match self {
            Verdict::Jump(c) | Verdict::Goto(c) => Some(c),
            _ => None,
        }
    }
}

/// Data loaded by [`Expr::Immediate`] or stored as a map element's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Data {
    /// Raw bytes (at most 64), in the byte order the packet or key has (network order for
    /// addresses and ports).
    Value(Vec<u8>),
    /// A verdict.
    Verdict(Verdict),
}

/// One expression of a rule. Only what berth needs; more can be added without breaking callers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Expr {
    /// `payload load LEN @ BASE + OFFSET => DREG`.
    PayloadLoad {
        /// Where the offset counts from.
        base: PayloadBase,
        /// Offset in bytes.
        offset: u32,
        /// Length in bytes.
        len: u32,
        /// Destination register.
        dreg: Register,
    },
    /// `payload write SREG => LEN @ BASE + OFFSET`, with an optional checksum fix-up.
    PayloadWrite {
        /// Source register.
        sreg: Register,
        /// Where the offset counts from.
        base: PayloadBase,
        /// Offset in bytes.
        offset: u32,
        /// Length in bytes.
        len: u32,
        /// The checksum to update, if any.
        checksum: Option<Checksum>,
    },
    /// `cmp OP SREG DATA`: the rule stops unless the comparison holds.
    Cmp {
        /// The operator.
        op: CmpOp,
        /// The register compared.
        sreg: Register,
        /// The value compared with (at most 64 bytes).
        data: Vec<u8>,
    },
    /// `meta load KEY => DREG`.
    Meta {
        /// What to load.
        key: MetaKey,
        /// Destination register.
        dreg: Register,
    },
    /// `immediate DREG DATA`: loads a value, or sets the verdict when `dreg` is
    /// [`Register::VERDICT`].
    Immediate {
        /// Destination register.
        dreg: Register,
        /// The value or verdict.
        data: Data,
    },
    /// `notrack`: no conntrack entry for this packet.
    Notrack,
    /// `counter`: packets and bytes.
    Counter,
    /// `range OP SREG FROM TO`: the rule stops unless the register lies within (`Eq`) or
    /// outside (`Neq`) `from..=to`, compared as big-endian bytes. Only `Eq` and `Neq` exist.
    Range {
        /// [`CmpOp::Eq`] or [`CmpOp::Neq`].
        op: CmpOp,
        /// The register compared.
        sreg: Register,
        /// The first value of the range.
        from: Vec<u8>,
        /// The last value of the range (as long as `from`).
        to: Vec<u8>,
    },
    /// `bitwise DREG = (SREG & MASK) ^ XOR` over `mask.len()` bytes.
    Bitwise {
        /// Source register.
        sreg: Register,
        /// Destination register.
        dreg: Register,
        /// The mask.
        mask: Vec<u8>,
        /// What is xored after masking (as long as `mask`).
        xor: Vec<u8>,
    },
    /// `match NAME rev REV`: an x_tables match run by nf_tables' compatibility layer, as
    /// `iptables-nft` adds for the matches it has no native translation of. `info` is the
    /// match's own structure, padded to 8 bytes (`XT_ALIGN`).
    Match {
        /// The x_tables match name (`conntrack`).
        name: String,
        /// Its revision.
        rev: u32,
        /// Its structure.
        info: Vec<u8>,
    },
    /// `target NAME rev REV`: an x_tables target (`DNAT`, `MASQUERADE`), as [`Expr::Match`].
    Target {
        /// The x_tables target name.
        name: String,
        /// Its revision.
        rev: u32,
        /// Its structure, padded to 8 bytes.
        info: Vec<u8>,
    },
}

impl Expr {
    /// `immediate reg 0 VERDICT`: the verdict statement at the end of a rule.
    pub fn verdict(verdict: Verdict) -> Expr {
        Expr::Immediate {
            dreg: Register::VERDICT,
            data: Data::Verdict(verdict),
        }
    }

    /// The kernel's name of the expression.
    pub fn name(&self) -> &'static str {
        match self {
            Expr::PayloadLoad { .. } | Expr::PayloadWrite { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Meta { .. } => "meta",
            Expr::Immediate { .. } => "immediate",
            Expr::Notrack => "notrack",
            Expr::Counter => "counter",
            Expr::Range { .. } => "range",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Match { .. } => "match",
            Expr::Target { .. } => "target",
        }
    }
}

/// One element of a set or map, for [`Batch::add_elements`] and [`Batch::delete_elements`].
///
/// Keys and values are the bytes `nft` sends: addresses and ports in network byte order,
/// interface names 16 bytes NUL-padded, each part of a concatenation padded to a multiple of
/// 4 bytes.
///
/// [`Batch::add_elements`]: super::Batch::add_elements
/// [`Batch::delete_elements`]: super::Batch::delete_elements
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SetElement {
    /// The key (or the start of an interval).
    pub key: Vec<u8>,
    /// The end of the interval, for concatenated interval sets (`NFTA_SET_ELEM_KEY_END`).
    pub key_end: Option<Vec<u8>>,
    /// The value of a map element.
    pub data: Option<Data>,
    /// `NFT_SET_ELEM_INTERVAL_END`: this key closes an interval of a plain interval set.
    pub interval_end: bool,
}

impl SetElement {
    /// An element of a set: just a key.
    pub fn key(key: impl Into<Vec<u8>>) -> Self {
        SetElement {
            key: key.into(),
            key_end: None,
            data: None,
            interval_end: false,
        }
    }

    /// A range `key - key_end` of a concatenated interval set.
    pub fn range(key: impl Into<Vec<u8>>, key_end: impl Into<Vec<u8>>) -> Self {
        SetElement {
            key_end: Some(key_end.into()),
            ..SetElement::key(key)
        }
    }

    /// The closing key of an interval of a plain interval set (the first key past the interval).
    pub fn interval_end(key: impl Into<Vec<u8>>) -> Self {
        SetElement {
            interval_end: true,
            ..SetElement::key(key)
        }
    }

    /// This element with a map value.
    pub fn with_data(mut self, data: Data) -> Self {
        self.data = Some(data);
        self
    }
}

/// The x_tables compatibility information of a rule (`NFTA_RULE_COMPAT`), for
/// [`Batch::add_rule_compat`].
///
/// [`Batch::add_rule_compat`]: super::Batch::add_rule_compat
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleCompat {
    /// The layer 4 protocol number the rule matches (`-p`).
    pub proto: u8,
    /// True for `! -p`.
    pub inverted: bool,
}

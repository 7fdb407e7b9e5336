//! The numbers of `linux/netfilter/nfnetlink.h` and `linux/netfilter/nf_tables.h` that berth
//! sends and reads, the kernel's limits on names, values and x_tables payloads, and the lengths of
//! the netlink and nfnetlink headers.

pub(super) const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub(super) const NFNL_MSG_BATCH_BEGIN: u16 = 16;
pub(super) const NFNL_MSG_BATCH_END: u16 = 17;
/// `NFNLGRP_NFTABLES`: the multicast group of nf_tables change notifications.
pub(super) const NFNLGRP_NFTABLES: u32 = 7;

pub(super) const NFT_MSG_NEWTABLE: u16 = 0;
pub(super) const NFT_MSG_DELTABLE: u16 = 2;
pub(super) const NFT_MSG_NEWCHAIN: u16 = 3;
pub(super) const NFT_MSG_DELCHAIN: u16 = 5;
pub(super) const NFT_MSG_NEWRULE: u16 = 6;
pub(super) const NFT_MSG_GETRULE: u16 = 7;
pub(super) const NFT_MSG_DELRULE: u16 = 8;
pub(super) const NFT_MSG_NEWSET: u16 = 9;
pub(super) const NFT_MSG_DELSET: u16 = 11;
pub(super) const NFT_MSG_NEWSETELEM: u16 = 12;
pub(super) const NFT_MSG_DELSETELEM: u16 = 14;
pub(super) const NFT_MSG_NEWGEN: u16 = 15;
pub(super) const NFT_MSG_DELOBJ: u16 = 20;
pub(super) const NFT_MSG_DELFLOWTABLE: u16 = 24;
/// `NFT_MSG_DESTROY*` (kernel 6.3+): deletions that succeed when the object is already gone.
pub(super) const NFT_MSG_DESTROYTABLE: u16 = 26;
pub(super) const NFT_MSG_DESTROYCHAIN: u16 = 27;
pub(super) const NFT_MSG_DESTROYRULE: u16 = 28;
pub(super) const NFT_MSG_DESTROYSET: u16 = 29;
pub(super) const NFT_MSG_DESTROYSETELEM: u16 = 30;

pub(super) const NLA_F_NESTED: u16 = 0x8000;

pub(super) const NFTA_LIST_ELEM: u16 = 1;

pub(super) const NFTA_TABLE_NAME: u16 = 1;
pub(super) const NFTA_TABLE_FLAGS: u16 = 2;

pub(super) const NFTA_CHAIN_TABLE: u16 = 1;
pub(super) const NFTA_CHAIN_NAME: u16 = 3;
pub(super) const NFTA_CHAIN_HOOK: u16 = 4;
pub(super) const NFTA_CHAIN_POLICY: u16 = 5;
pub(super) const NFTA_CHAIN_TYPE: u16 = 7;
pub(super) const NFTA_HOOK_HOOKNUM: u16 = 1;
pub(super) const NFTA_HOOK_PRIORITY: u16 = 2;

pub(super) const NFTA_RULE_TABLE: u16 = 1;
pub(super) const NFTA_RULE_CHAIN: u16 = 2;
pub(super) const NFTA_RULE_HANDLE: u16 = 3;
pub(super) const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub(super) const NFTA_RULE_COMPAT: u16 = 5;
pub(super) const NFTA_RULE_COMPAT_PROTO: u16 = 1;
pub(super) const NFTA_RULE_COMPAT_FLAGS: u16 = 2;
pub(super) const NFT_RULE_COMPAT_F_INV: u32 = 1 << 1;
pub(super) const NFTA_EXPR_NAME: u16 = 1;
pub(super) const NFTA_EXPR_DATA: u16 = 2;

pub(super) const NFTA_DATA_VALUE: u16 = 1;
pub(super) const NFTA_DATA_VERDICT: u16 = 2;
pub(super) const NFTA_VERDICT_CODE: u16 = 1;
pub(super) const NFTA_VERDICT_CHAIN: u16 = 2;

pub(super) const NFTA_PAYLOAD_DREG: u16 = 1;
pub(super) const NFTA_PAYLOAD_BASE: u16 = 2;
pub(super) const NFTA_PAYLOAD_OFFSET: u16 = 3;
pub(super) const NFTA_PAYLOAD_LEN: u16 = 4;
pub(super) const NFTA_PAYLOAD_SREG: u16 = 5;
pub(super) const NFTA_PAYLOAD_CSUM_TYPE: u16 = 6;
pub(super) const NFTA_PAYLOAD_CSUM_OFFSET: u16 = 7;
pub(super) const NFTA_PAYLOAD_CSUM_FLAGS: u16 = 8;

pub(super) const NFTA_CMP_SREG: u16 = 1;
pub(super) const NFTA_CMP_OP: u16 = 2;
pub(super) const NFTA_CMP_DATA: u16 = 3;

pub(super) const NFTA_META_DREG: u16 = 1;
pub(super) const NFTA_META_KEY: u16 = 2;

pub(super) const NFTA_IMMEDIATE_DREG: u16 = 1;
pub(super) const NFTA_IMMEDIATE_DATA: u16 = 2;

pub(super) const NFTA_RANGE_SREG: u16 = 1;
pub(super) const NFTA_RANGE_OP: u16 = 2;
pub(super) const NFTA_RANGE_FROM_DATA: u16 = 3;
pub(super) const NFTA_RANGE_TO_DATA: u16 = 4;

pub(super) const NFTA_BITWISE_SREG: u16 = 1;
pub(super) const NFTA_BITWISE_DREG: u16 = 2;
pub(super) const NFTA_BITWISE_LEN: u16 = 3;
pub(super) const NFTA_BITWISE_MASK: u16 = 4;
pub(super) const NFTA_BITWISE_XOR: u16 = 5;
pub(super) const NFTA_BITWISE_OP: u16 = 6;

/// `NFTA_MATCH_*` and `NFTA_TARGET_*` (the x_tables compatibility expressions) share numbers.
pub(super) const NFTA_XT_NAME: u16 = 1;
pub(super) const NFTA_XT_REV: u16 = 2;
pub(super) const NFTA_XT_INFO: u16 = 3;
/// `NFT_COMPAT_NAME_MAX` less the terminating NUL.
pub(super) const MAX_XT_NAME_LEN: usize = 31;
/// The largest x_tables match or target payload berth sends.
pub(super) const MAX_XT_INFO_LEN: usize = 4096;

pub(super) const NFTA_SET_NAME: u16 = 2;

pub(super) const NFTA_GEN_ID: u16 = 1;
pub(super) const NFTA_GEN_PROC_PID: u16 = 2;
pub(super) const NFTA_GEN_PROC_NAME: u16 = 3;

pub(super) const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub(super) const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub(super) const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
pub(super) const NFTA_SET_ELEM_KEY: u16 = 1;
pub(super) const NFTA_SET_ELEM_DATA: u16 = 2;
pub(super) const NFTA_SET_ELEM_FLAGS: u16 = 3;
pub(super) const NFTA_SET_ELEM_KEY_END: u16 = 10;
pub(super) const NFT_SET_ELEM_INTERVAL_END: u32 = 1;

/// `NFT_NAME_MAXLEN` less the terminating NUL.
pub(super) const MAX_NAME_LEN: usize = 255;
/// `NFT_DATA_VALUE_MAXLEN`: the largest key, key end or data value.
pub(super) const MAX_DATA_LEN: usize = 64;

/// Length of `struct nlmsghdr`.
pub(super) const HEADER_LEN: usize = 16;
/// Length of `struct nfgenmsg`.
pub(super) const NFGENMSG_LEN: usize = 4;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub(super) const NLM_F_DUMP: u16 = 0x300;

//! nf_tables over netlink, in-process: a `NETLINK_NETFILTER` socket opened inside a namespace, and a
//! builder for one atomic nfnetlink transaction (tables, chains, rules, set elements).
//!
//! A [`Batch`] is built with typed operations and committed by an [`NftHandle`] with one
//! `sendmsg`: `NFNL_MSG_BATCH_BEGIN`, the messages, `NFNL_MSG_BATCH_END`. The kernel applies the
//! whole batch or nothing. Every message carries `NLM_F_ACK`, so the kernel reports one result per
//! message after the batch; the first refusal is returned as an [`Error`] naming the object of the
//! refused message (`nftables element of set "dnat4" in table inet berth already exists`), with the
//! kernel's extended-ack text when it sends one.
//!
//! The encoding is the one `nft` 1.0 sends (checked byte for byte against `nft --debug=mnl`), so a
//! rule built from [`Expr`]s lists exactly like the `nft` rule it mirrors. Attribute numbers are
//! those of `linux/netfilter/nf_tables.h` and `linux/netfilter/nfnetlink.h`.
//!
//! ```no_run
//! use berth_netlink::nftables::{
//!     BaseChain, Batch, ChainType, Expr, Family, Hook, NftHandle, Policy, Verdict,
//! };
//! use berth_netlink::Netns;
//!
//! # fn main() -> Result<(), berth_netlink::Error> {
//! let ns = Netns::create("example-nft")?;
//! let nft = NftHandle::open(&ns)?;
//! let mut batch = Batch::new();
//! batch
//!     .replace_table(Family::Inet, "example")
//!     .add_base_chain(
//!         Family::Inet,
//!         "example",
//!         "input",
//!         &BaseChain::new(ChainType::Filter, Hook::Input, 0, Policy::Accept),
//!     )
//!     .add_rule(
//!         Family::Inet,
//!         "example",
//!         "input",
//!         &[Expr::Counter, Expr::verdict(Verdict::Accept)],
//!     );
//! nft.commit(&batch)?;
//! ns.delete()?;
//! # Ok(()) }
//! ```
//!
//! An [`NftMonitor`] listens to the namespace's nf_tables change notifications instead: every
//! committed transaction, by anyone, comes back as one [`Commit`] naming what changed and the
//! process that committed it, so a firewall notices when something outside it changes the rules.
//!
//! [`Error`]: crate::Error

mod batch;
mod consts;
mod encode;
mod handle;
mod listing;
mod monitor;
mod reply;
#[cfg(test)]
mod test_util;
mod types;

pub use batch::Batch;
pub use handle::NftHandle;
pub use listing::{ListedExpr, ListedRule, fuzz_decode_listed_expr, fuzz_scan_rule_dump};
pub use monitor::{
    Change, ChangeKind, Commit, DEFAULT_RECEIVE_BUFFER, MAX_CHANGES_PER_COMMIT, NftMonitor, Notice,
    fuzz_scan_nftables_notices,
};
pub use reply::fuzz_scan_nftables_replies;
pub use types::{
    BaseChain, ChainType, Checksum, ChecksumType, CmpOp, Data, Expr, Family, Hook, MetaKey,
    PayloadBase, Policy, Register, RuleCompat, SetElement, Verdict, priority,
};

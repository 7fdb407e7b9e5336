//! berth's OS layer: network namespaces and the rtnetlink objects in them.
//!
//! Everything here is mechanism, not policy: create a namespace, open an rtnetlink socket inside it,
//! and make links, addresses, routes, neighbours, FDB entries and sysctls exactly as asked. Every
//! operation happens in a namespace the caller named; a thread that enters one for a moment
//! ([`Netns::run`]) always comes back.
//!
//! The [`nftables`] module speaks nf_tables over netlink the same way ([`NftHandle`]): one atomic
//! batch of tables, chains, rules and set elements per commit, with no `nft` process.
//!
//! A [`Handle`] is a synchronous rtnetlink socket opened inside one [`Netns`]. It is `Send + Sync`
//! and can be shared between threads (requests are serialised on it). Kernel refusals come back as
//! typed [`Error`]s that name the object (`link "br-0123" already exists`) and carry the kernel's
//! extended ack message when it sends one. Names, MTUs, VNIs, MAC addresses and prefixes are
//! checked before any request is sent.
//!
//! ```no_run
//! use berth_netlink::{AddrSpec, Handle, LinkSpec, Netns, RouteSpec, VethPeer, sysctl_set};
//!
//! # fn main() -> Result<(), berth_netlink::Error> {
//! let host = Netns::create("example-host")?;
//! let sandbox = Netns::create("example-sandbox")?;
//! let nl = Handle::open(&host)?;
//! let nl_sandbox = Handle::open(&sandbox)?;
//!
//! // A bridge, and a veth pair whose peer is created as eth0 directly inside the sandbox.
//! nl.link_add(&LinkSpec::bridge("br-example").up())?;
//! nl.addr_add("br-example", &AddrSpec::new("172.30.0.1/24".parse().unwrap()))?;
//! nl.link_add(
//!     &LinkSpec::veth("veth-example", VethPeer::new("eth0").netns(&sandbox))
//!         .master("br-example")
//!         .up(),
//! )?;
//! nl_sandbox.link_set_up("eth0")?;
//! nl_sandbox.addr_add("eth0", &AddrSpec::new("172.30.0.2/24".parse().unwrap()))?;
//! nl_sandbox.route_add(&RouteSpec::default_v4().via("172.30.0.1".parse().unwrap()))?;
//! sysctl_set(&host, "net.ipv4.ip_forward", "1")?;
//!
//! nl.link_delete("br-example")?;
//! sandbox.delete()?;
//! host.delete()?;
//! # Ok(()) }
//! ```

mod addr;
mod attach;
mod error;
mod fdb;
mod link;
mod link_spec;
mod mac;
mod name;
mod neigh;
mod netns;
pub mod nftables;
mod nsid;
mod reserve;
mod route;
mod socket;
mod sysctl;

pub use addr::{AddrSpec, Address, Scope, cidr};
pub use attach::{Attach, attach, detach};
pub use berth_types::{IpFamily, Protocol};
pub use error::{Error, Result};
pub use fdb::{FdbEntry, FdbSpec};
pub use link::{
    BridgeInfo, IpvlanMode, Link, LinkKind, LinkRef, LinkUpdate, MAX_MTU, MAX_VNI, MIN_MTU,
    MacvlanMode, OperState, VxlanInfo,
};
pub use link_spec::{LinkSpec, VethPeer, Vxlan};
pub use mac::MacAddr;
pub use name::{MAX_IFNAME_LEN, validate_ifname, validate_netns_name};
pub use neigh::{NeighSpec, NeighState, Neighbour};
pub use netns::{DEFAULT_NETNS_DIR, Netns};
pub use nftables::{
    NftHandle, fuzz_decode_listed_expr, fuzz_scan_nftables_replies, fuzz_scan_rule_dump,
};
pub use reserve::{HeldPort, hold_ports};
pub use route::{MAIN_TABLE, PROTOCOL_BOOT, PROTOCOL_STATIC, Route, RouteKind, RouteSpec};
pub use socket::{Handle, fuzz_scan_replies};
pub use sysctl::{sysctl_get, sysctl_path, sysctl_set};

/// Compile-time proof that a [`Handle`] can be shared between threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Handle>();
};

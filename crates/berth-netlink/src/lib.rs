//! berth's OS layer: network namespaces and the rtnetlink objects in them.
//!
//! Everything here is mechanism, not policy: create a namespace, open an rtnetlink socket inside it,
//! and make links, addresses, routes, neighbours, FDB entries and sysctls exactly as asked. Every
//! operation happens in a namespace the caller named; the caller's thread never changes namespace.
//!
//! ```no_run
//! use berth_netlink::Netns;
//!
//! # fn main() -> Result<(), berth_netlink::Error> {
//! let ns = Netns::create("example")?;
//! let inode = ns.run(|| std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward"))?;
//! # let _ = inode;
//! ns.delete()?;
//! # Ok(()) }
//! ```

mod error;
mod name;
mod netns;

pub use error::{Error, Result};
pub use name::{MAX_IFNAME_LEN, validate_ifname, validate_netns_name};
pub use netns::{DEFAULT_NETNS_DIR, Netns};

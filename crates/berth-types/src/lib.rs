//! The plain data types berth's crates share, one definition each.
//!
//! [`MacAddr`], [`IpFamily`], [`Protocol`], [`PortRange`], [`PortSpec`] and [`PortBinding`] are
//! what a network driver, the firewall, the port mapper and the controller all speak of; they live
//! here so that each exists once and so that `berth-driver` (the contract an out-of-tree driver
//! builds against) depends on no crate that does I/O. Parsing (Docker's `-p` syntax, MAC
//! addresses) is pure and refuses bad input with an [`Error`] that names it.
//!
//! ```
//! use berth_types::{IpFamily, MacAddr, PortSpec, Protocol};
//!
//! let spec: PortSpec = "127.0.0.1:8080:80/udp".parse()?;
//! assert_eq!(spec.proto, Protocol::Udp);
//! assert_eq!(spec.host_ports.map(|r| r.start()), Some(8080));
//! assert_eq!(IpFamily::of("::1".parse()?), IpFamily::V6);
//! let mac: MacAddr = "02:42:ac:11:00:02".parse()?;
//! assert!(mac.is_valid_unicast());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod error;
mod family;
mod mac;
mod port;

pub use error::{Error, Result};
pub use family::IpFamily;
pub use mac::{MacAddr, mac_serde};
pub use port::{PortBinding, PortRange, PortSpec, Protocol, parse_exposed_port};

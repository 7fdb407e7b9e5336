//! berth: Docker's container networking model as a library.
//!
//! The [`Controller`] owns the lifecycle of networks, sandboxes (a container's network namespace)
//! and the endpoints that connect them, the way libnetwork does: it asks IPAM for pools and
//! addresses, hands the data path to a driver (`bridge`, `null`, `host`), persists every object in
//! an embedded redb store before it touches the kernel, and on start restores what the store holds
//! and reconciles the kernel with it (leaked veths, bridges and firewall rules are removed, missing
//! ones recreated). Everything happens in the namespace the configuration names as "the host".
//!
//! ```no_run
//! use berth::{Config, Controller, EndpointOptions, NetworkCreate, SandboxCreate};
//!
//! # fn main() -> Result<(), berth::Error> {
//! let ctl = Controller::new(Config::new("/var/lib/berth", "/run/berth"))?;
//! ctl.create_network(NetworkCreate::new("isolated_nw"))?;
//! ctl.create_sandbox(SandboxCreate::new("web"))?;
//! ctl.connect("web", "isolated_nw", EndpointOptions::default())?;
//! let net = ctl.inspect_network("isolated_nw")?;
//! println!("{}", serde_json::to_string_pretty(&net).unwrap_or_default());
//! # Ok(()) }
//! ```

mod cluster_ipam;
mod config;
mod controller;
pub mod daemon_json;
mod drivers;
mod error;
pub mod failpoint;
mod inspect;
mod ipam;
pub mod proxy;
mod records;
mod registry;
mod requests;
mod time;

pub use berth_bridge::BridgeError;
pub use berth_dns::{DnsSettings, HostEntry, Redirect as DnsRedirect, ResolverConfig};
/// What an engine needs from the crates berth is made of, so that one dependency on `berth` is
/// enough: the namespace handle (`Config::host_netns`, `Controller::sandbox_netns`), the driver
/// and IPAM traits with their types (`ControllerBuilder::driver`, `::ipam`), the stores and their
/// errors (`ControllerBuilder::store`, `::cluster_store`; match [`StoreError::Locked`] when a
/// second process opens the same state), the default pools of `Config::default_address_pools`,
/// and what the firewall reports. The whole crates are re-exported too, for the rest.
pub use berth_driver::{
    Capabilities, DataPath, Driver, DriverError, Egress, IpamDriver, NetworkDriver, Scope,
};
pub use berth_driver::{EndpointId, MacAddr, NetworkId, RawOptions, SandboxId};
pub use berth_firewall::Backend as FirewallBackend;
pub use berth_firewall::{DriftReport, HealStats, Repair};
pub use berth_ipam::DefaultPool;
pub use berth_macvlan::{IpvlanDriver, MacvlanDriver, MacvlanError};
pub use berth_netlink::Netns;
pub use berth_portmap::{ExposedPort, PortBinding, PortSpec};
pub use berth_store::{Error as StoreError, KvStore, MemoryStore, RedbStore};
pub use cluster_ipam::{ClusterIpam, GLOBAL_IPAM_KEY};
pub use config::Config;
pub use config::DefaultBridge;
pub use controller::{
    Controller, ControllerBuilder, GATEWAY_BRIDGE, IFACE_PREFIX_OPTION, PREDEFINED_NETWORKS,
    TeardownReport,
};
pub use daemon_json::{DaemonJson, DaemonJsonError};
pub use drivers::{HostDriver, NullDriver};
pub use error::{Error, Result};
pub use inspect::{
    ConfigFrom, ContainerInspect, IpamConfigInspect, IpamInspect, NetworkInspect,
    PortBindingInspect, SandboxInspect, SandboxNetworkInspect,
};
pub use ipam::BuiltinIpam;
#[doc(hidden)]
pub use records::check_stored_record;
pub use requests::{EndpointOptions, IpamPoolConfig, NetworkCreate, SandboxCreate, SandboxNetns};
pub use {berth_driver, berth_firewall, berth_macvlan, berth_netlink, berth_store};

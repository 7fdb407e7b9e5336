//! berth's `macvlan` and `ipvlan` network drivers: Docker's, for sandboxes that sit directly on
//! the host's LAN, each with an address (and, for macvlan, a MAC address) of its own on a parent
//! interface of the host. No bridge, no NAT, no firewall rules: the sandbox's traffic leaves
//! through the parent as if from another machine, and the LAN's router is its gateway.
//!
//! ```no_run
//! use berth_macvlan::{IpvlanDriver, MacvlanDriver};
//! use berth_netlink::Netns;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let host = Netns::current()?;
//! // The instance id names this berth installation in the marks on its links (the
//! // controller's, `Controller::instance_id`).
//! let macvlan = MacvlanDriver::new(&host, "3f2a9c")?;
//! let ipvlan = IpvlanDriver::new(&host, "3f2a9c")?;
//! // berth::Controller::builder(config).driver(macvlan).driver(ipvlan).build()?;
//! # let _ = (macvlan, ipvlan);
//! # Ok(()) }
//! ```
//!
//! # Options
//!
//! | key | values | default |
//! |---|---|---|
//! | [`PARENT`] (`parent`) | a host interface, or `NAME.VLAN_ID` | none: an internal network |
//! | [`MACVLAN_MODE`] (`macvlan_mode`) | `bridge`, `private`, `vepa`, `passthru` | `bridge` |
//! | [`IPVLAN_MODE`] (`ipvlan_mode`) | `l2`, `l3`, `l3s` | `l2` |
//! | [`IPVLAN_FLAG`] (`ipvlan_flag`) | `bridge`, `private`, `vepa` | `bridge` |
//!
//! Unknown keys and bad values are refused, naming them (the mode errors carry Docker's text).
//! Subnets, gateways, ranges and auxiliary addresses come from IPAM, as for the bridge driver;
//! the gateway is the LAN's router, which berth never configures.
//!
//! # Parents
//!
//! - One network per parent, per driver: a second one is refused with Docker's error,
//!   `network dm-0123456789ab is already using parent interface eth0` (the other network named
//!   by its internal link name, `dm-` for macvlan, `di-` for ipvlan, and its short id).
//!   `eth0.10` and `eth0.20` are different parents.
//! - `parent=NAME.VLAN_ID` that does not exist: berth makes the 802.1q sub-interface on `NAME`
//!   (VLAN 1 to 4094), up, marked, and deletes it with the network. One that exists (made by
//!   the user) is used as it is and left when the network goes. A kernel without `8021q` is
//!   reported as [`MacvlanError::VlanUnsupported`], and nothing is made.
//! - A parent that does not exist and is no `NAME.VLAN_ID` of an existing interface is refused,
//!   naming it ([`MacvlanError::ParentNotFound`], [`MacvlanError::VlanBaseNotFound`]).
//! - No parent: an internal network (no gateway, no way out) on a parent berth makes for it.
//!   Docker makes a `dummy` link; a kernel may have no `dummy` driver (this project's test
//!   machine has none), so berth makes a **veth pair**, which every kernel with network
//!   namespaces has: `dm-<short id>` (`di-` for ipvlan), Docker's name, is the parent, and its
//!   other end `pm-<short id>` (`pi-`) stays in the host with nothing on it. Both ends are up,
//!   so the endpoints' interfaces have carrier (a bridge without ports would have none, and
//!   they would stay down); both carry the network's mark and go with the network. `--internal`
//!   with a parent keeps the parent (as Docker 20.10 does) and gives no gateway.
//!
//! Every link the drivers make carries a link alias `berth:<instance>:<driver>:<id>` (the
//! network's id on a parent, the endpoint's on its interface). After a restart,
//! [`restore_network`](berth_driver::NetworkDriver::restore_network) takes a network back
//! without making anything anew (a marked sub-interface is berth's and still goes with the
//! network; an unmarked one stays the user's), and
//! [`remove_orphans`](berth_driver::NetworkDriver::remove_orphans) deletes the marked links of
//! this instance and driver that no record names. A name alone proves nothing.
//!
//! # Endpoints
//!
//! A join makes a macvlan (ipvlan) interface on the parent in the host namespace, marked, and
//! puts it into the sandbox with berth-netlink's [`attach`](berth_netlink::attach) step:
//! renamed, its MAC address, the parent's MTU, its addresses, up. The join reports the
//! gateway of the endpoint's subnet (none on an internal network); layer-3 ipvlan (`l3`,
//! `l3s`) reports none and routes everything out of the device instead (`default dev eth0`,
//! reported as a static route). Leave deletes the interface in the sandbox.
//!
//! - macvlan MAC addresses follow Docker: the user's, else `02:42` + the IPv4 address, else
//!   random. ipvlan interfaces share the parent's address (a user's is refused, with Docker's
//!   message).
//! - `passthru` gives the whole parent to one endpoint: a second is refused
//!   ([`MacvlanError::PassthruInUse`]). Its interface keeps the parent's MAC address (setting
//!   another would change the parent's): only a MAC the user asks for is set.
//!
//! # What it cannot do
//!
//! - **The host cannot reach its own macvlan or ipvlan sandboxes over the parent** (nor they
//!   the host's addresses on it), while every other machine on the LAN can. This is how the
//!   kernel's macvlan and ipvlan work, not a rule of berth's: frames between a child interface
//!   and its parent's own stack are not switched to each other (the parent's traffic goes out
//!   to the wire, and the wire does not send it back). Docker documents the same. A host that
//!   must reach them gives itself a macvlan interface on the same parent (bridge mode) with an
//!   address of the subnet.
//! - No published ports: [`Capabilities::publishes_ports`](berth_driver::Capabilities) is off
//!   and `ignores_ports` on: as Docker, the controller accepts a `-p` on these networks with a
//!   warning and publishes nothing (the sandbox is reachable on its own address).
//! - A kernel without ipvlan: [`IpvlanDriver`] asks the kernel once (a probe, see
//!   [`ipvlan_supported`]) and refuses to create networks with
//!   [`MacvlanError::IpvlanUnsupported`] before anything is made.
//! - After a restart, an endpoint whose join is not repeated (the controller rolls back an
//!   unfinished connect) cannot be taken out of its sandbox: the driver learns where an
//!   interface is only from a join. It goes with the sandbox's namespace.

mod endpoint;
mod error;
mod marker;
mod network;
mod options;
mod orphans;
mod probe;

use berth_driver::{
    Capabilities, DataPath, EndpointId, EndpointOperInfo, EndpointSpec, InterfaceInfo, JoinInfo,
    JoinRequest, NetworkDriver, NetworkId, NetworkSpec, RawOptions, Result,
};
use berth_netlink::Netns;

use network::{ChildMode, Core, Kind};

pub use berth_netlink::{IpvlanMode, MacvlanMode};
pub use error::MacvlanError;
pub use options::{
    IPVLAN_FLAG, IPVLAN_MODE, IpvlanFlag, IpvlanOptions, MACVLAN_MODE, MacvlanOptions, PARENT,
};
pub use probe::{ipvlan_supported, vlan_supported};

/// The `macvlan` driver (see the crate's documentation). One per host namespace and berth
/// instance; `Send + Sync`.
#[derive(Debug)]
pub struct MacvlanDriver {
    core: Core,
}

/// The `ipvlan` driver (see the crate's documentation). One per host namespace and berth
/// instance; `Send + Sync`.
#[derive(Debug)]
pub struct IpvlanDriver {
    core: Core,
}

impl MacvlanDriver {
    /// A driver working in `host`, marking its links with `instance` (the controller's
    /// instance id: 1 to 64 ASCII letters, digits, `.`, `_` or `-`; refused otherwise).
    pub fn new(host: &Netns, instance: &str) -> Result<MacvlanDriver> {
        Ok(MacvlanDriver {
            core: Core::new(Kind::Macvlan, host, instance)?,
        })
    }

    /// The parent a network without one gets: `dm-` + its short id (Docker's name).
    pub fn internal_parent_name(network: &NetworkId) -> String {
        format!("{}{}", Kind::Macvlan.internal_prefix(), network.short())
    }

    /// The parent interface of a network the driver knows.
    pub fn parent_of(&self, network: &NetworkId) -> Option<String> {
        self.core.read().get(network).map(|n| n.parent.clone())
    }
}

impl IpvlanDriver {
    /// A driver working in `host`, marking its links with `instance` (as
    /// [`MacvlanDriver::new`]). The kernel is asked for ipvlan when the first network is
    /// created, not here.
    pub fn new(host: &Netns, instance: &str) -> Result<IpvlanDriver> {
        Ok(IpvlanDriver {
            core: Core::new(Kind::Ipvlan, host, instance)?,
        })
    }

    /// The parent a network without one gets: `di-` + its short id (Docker's name).
    pub fn internal_parent_name(network: &NetworkId) -> String {
        format!("{}{}", Kind::Ipvlan.internal_prefix(), network.short())
    }

    /// The parent interface of a network the driver knows.
    pub fn parent_of(&self, network: &NetworkId) -> Option<String> {
        self.core.read().get(network).map(|n| n.parent.clone())
    }
}

/// What both drivers can do: interfaces in the sandbox, local scope, the embedded DNS server on
/// user-defined networks, a gateway on the LAN for the way out, no published ports (a `-p` is
/// accepted and has no effect, as with Docker: the sandbox is on the LAN with its own address).
fn capabilities() -> Capabilities {
    Capabilities::new(DataPath::Interfaces)
        .publishes_ports(false)
        .ignores_ports(true)
}

/// The methods both drivers delegate to their core, identically.
macro_rules! delegate {
    () => {
        fn capabilities(&self) -> Capabilities {
            capabilities()
        }

        fn delete_network(&self, network: &NetworkId) -> Result<()> {
            self.core.delete_network(network)
        }

        fn create_endpoint(&self, spec: &EndpointSpec) -> Result<InterfaceInfo> {
            self.core.create_endpoint(spec)
        }

        fn delete_endpoint(&self, network: &NetworkId, endpoint: &EndpointId) -> Result<()> {
            self.core.delete_endpoint(network, endpoint)
        }

        fn endpoint_info(
            &self,
            network: &NetworkId,
            endpoint: &EndpointId,
        ) -> Result<EndpointOperInfo> {
            self.core.endpoint_info(network, endpoint)
        }

        fn join(&self, request: &JoinRequest<'_>) -> Result<JoinInfo> {
            self.core.join(request)
        }

        fn leave(&self, network: &NetworkId, endpoint: &EndpointId) -> Result<()> {
            self.core.leave(network, endpoint)
        }

        fn remove_orphans(&self) -> Result<Vec<String>> {
            self.core.remove_unrecorded_links()
        }
    };
}

impl NetworkDriver for MacvlanDriver {
    type Options = MacvlanOptions;

    fn name(&self) -> &'static str {
        Kind::Macvlan.name()
    }

    fn parse_options(&self, raw: &RawOptions) -> Result<MacvlanOptions> {
        MacvlanOptions::parse(raw)
    }

    fn create_network(&self, spec: &NetworkSpec, o: &MacvlanOptions) -> Result<()> {
        self.core
            .create_network(spec, o.parent.as_deref(), ChildMode::Macvlan(o.mode))
    }

    fn restore_network(&self, spec: &NetworkSpec, o: &MacvlanOptions) -> Result<()> {
        self.core
            .restore_network(spec, o.parent.as_deref(), ChildMode::Macvlan(o.mode))
    }

    delegate!();
}

impl NetworkDriver for IpvlanDriver {
    type Options = IpvlanOptions;

    fn name(&self) -> &'static str {
        Kind::Ipvlan.name()
    }

    fn parse_options(&self, raw: &RawOptions) -> Result<IpvlanOptions> {
        IpvlanOptions::parse(raw)
    }

    fn create_network(&self, spec: &NetworkSpec, o: &IpvlanOptions) -> Result<()> {
        self.core
            .create_network(spec, o.parent.as_deref(), ChildMode::Ipvlan(o.mode, o.flag))
    }

    fn restore_network(&self, spec: &NetworkSpec, o: &IpvlanOptions) -> Result<()> {
        self.core
            .restore_network(spec, o.parent.as_deref(), ChildMode::Ipvlan(o.mode, o.flag))
    }

    delegate!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_parents_have_dockers_names() {
        let id = NetworkId::from_bytes([0xab; 32]);
        assert_eq!(MacvlanDriver::internal_parent_name(&id), "dm-abababababab");
        assert_eq!(IpvlanDriver::internal_parent_name(&id), "di-abababababab");
        let caps = capabilities();
        assert!(caps.creates_interfaces() && caps.embedded_dns);
        assert!(!caps.publishes_ports && caps.ignores_ports);
        assert_eq!(caps.scope, berth_driver::Scope::Local);
        assert_eq!(caps.egress, berth_driver::Egress::Gateway);
    }
}

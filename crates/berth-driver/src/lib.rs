//! The contract between berth's controller and its network drivers.
//!
//! After libnetwork's driver API: the controller owns lifecycle, IPAM and state; a driver owns the
//! data path of its networks. A driver implements [`NetworkDriver`] with its own typed options;
//! the controller holds drivers as [`Driver`] trait objects (a blanket impl erases the option type),
//! parses the user's string options once through [`Driver::parse_options`] at the boundary, and hands
//! the parsed value back on every call. Nothing in this crate does I/O, and it depends on no
//! berth crate but berth-types (whose MAC, IP-family, protocol and port types it re-exports), so
//! an out-of-tree driver builds against it alone. A sandbox is named to a driver by its network
//! namespace ([`NetnsRef`]: a path and an open descriptor), never by a handle of some OS layer.
//!
//! ```
//! use berth_driver::*;
//!
//! /// A driver whose networks have nothing but a name.
//! struct Noop;
//!
//! impl NetworkDriver for Noop {
//!     type Options = ();
//!     fn name(&self) -> &'static str { "noop" }
//!     fn capabilities(&self) -> Capabilities {
//!         Capabilities::new(DataPath::Isolated)
//!     }
//!     fn parse_options(&self, raw: &RawOptions) -> Result<()> {
//!         OptionReader::new("noop", raw).finish()
//!     }
//!     fn create_network(&self, _: &NetworkSpec, _: &()) -> Result<()> { Ok(()) }
//!     fn delete_network(&self, _: &NetworkId) -> Result<()> { Ok(()) }
//!     fn create_endpoint(&self, spec: &EndpointSpec) -> Result<InterfaceInfo> {
//!         Ok(InterfaceInfo { mac: None, ipv4: spec.ipv4, ipv6: spec.ipv6 })
//!     }
//!     fn delete_endpoint(&self, _: &NetworkId, _: &EndpointId) -> Result<()> { Ok(()) }
//!     fn join(&self, req: &JoinRequest<'_>) -> Result<JoinInfo> {
//!         Ok(JoinInfo { ifname: req.ifname.to_owned(), ..Default::default() })
//!     }
//!     fn leave(&self, _: &NetworkId, _: &EndpointId) -> Result<()> { Ok(()) }
//! }
//!
//! let driver: Box<dyn Driver> = Box::new(Noop);
//! let mut raw = RawOptions::new();
//! raw.insert("color".into(), "blue".into());
//! assert!(driver.parse_options(&raw).is_err()); // unknown keys are refused, by name
//! ```

mod error;
mod ids;
pub mod ipam;
mod options;
mod types;

pub use berth_types::{IpFamily, MacAddr, PortBinding, PortRange, PortSpec, Protocol, mac_serde};

use std::any::Any;
use std::fmt::Debug;
use std::net::IpAddr;

pub use error::{BoxError, DriverError, Result};
pub use ids::{EndpointId, InvalidId, NetworkId, SandboxId};
pub use ipam::{AddressRequest, AddressSpace, IpamDriver, Pool, PoolRequest};
pub use options::{OptionReader, RawOptions, parse_bool, parse_known};
pub use types::{
    Capabilities, DataPath, Egress, EndpointOperInfo, EndpointSpec, HostPolicy, InterfaceInfo,
    IpamInfo, JoinInfo, JoinRequest, LinkHole, NetnsRef, NetworkSpec, SandboxRef, Scope,
    StaticRoute, local_mac_from_bytes, mac_from_ipv4,
};

/// A network driver, with its own typed network options.
///
/// Calls for one network are serialised by the controller; calls for different networks may come
/// concurrently, so implementations are `Send + Sync` and lock per network.
pub trait NetworkDriver: Send + Sync + 'static {
    /// The driver's typed network options, parsed from Docker's keys.
    type Options: Debug + Send + Sync + 'static;

    /// The driver's name (`bridge`, `null`, `host`, ...), as `docker network ls` shows it.
    fn name(&self) -> &'static str;

    /// What the driver can do.
    fn capabilities(&self) -> Capabilities;

    /// Parses the user's options; unknown keys and bad values are errors that name the key.
    fn parse_options(&self, raw: &RawOptions) -> Result<Self::Options>;

    /// Creates the network's data path (bridge device, rules, ...). On error, nothing is left.
    fn create_network(&self, spec: &NetworkSpec, options: &Self::Options) -> Result<()>;

    /// After a restart: takes back a stored network whose data path may exist already (or be
    /// half gone, after a crash), converging on it instead of failing. A driver that must tell
    /// the two apart (a remote plugin refuses a second `CreateNetwork` of one id) implements
    /// it; the default calls [`NetworkDriver::create_network`], which must then converge.
    fn restore_network(&self, spec: &NetworkSpec, options: &Self::Options) -> Result<()> {
        self.create_network(spec, options)
    }

    /// Removes the network's data path.
    fn delete_network(&self, network: &NetworkId) -> Result<()>;

    /// Reserves what a new network needs across every host (the overlay's VXLAN id), once, on
    /// the host that creates it, before its record is stored: the options returned are stored
    /// with the network's own (they replace a key given by the user), handed to every host's
    /// [`NetworkDriver::parse_options`] and shown in inspect. Called for every new network;
    /// the default reserves nothing. On error the network is not created.
    fn allocate_network(&self, spec: &NetworkSpec, options: &RawOptions) -> Result<RawOptions> {
        let _ = (spec, options);
        Ok(RawOptions::new())
    }

    /// Releases what [`NetworkDriver::allocate_network`] reserved, once, on the host that
    /// removes the network (after [`NetworkDriver::delete_network`] there and once no host
    /// has an endpoint on it), or when the creation fails. `options` are the network's stored
    /// options, the allocated ones included. Releasing what is not reserved is no error.
    fn free_network(&self, network: &NetworkId, options: &RawOptions) -> Result<()> {
        let _ = (network, options);
        Ok(())
    }

    /// Prepares an endpoint and reports its interface facts.
    fn create_endpoint(&self, spec: &EndpointSpec) -> Result<InterfaceInfo>;

    /// Forgets an endpoint (after [`NetworkDriver::leave`]).
    fn delete_endpoint(&self, network: &NetworkId, endpoint: &EndpointId) -> Result<()>;

    /// Operational facts about an endpoint.
    fn endpoint_info(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
    ) -> Result<EndpointOperInfo> {
        let _ = (network, endpoint);
        Ok(EndpointOperInfo::default())
    }

    /// Puts the endpoint's interface into the sandbox, named as asked, addressed and up.
    fn join(&self, request: &JoinRequest<'_>) -> Result<JoinInfo>;

    /// After a restart: takes back a stored endpoint's join (its endpoint was given again with
    /// [`NetworkDriver::create_endpoint`]). With `trusted`, the previous opener of the state
    /// stopped cleanly on this boot and in this host namespace, and the kernel is taken to be as
    /// it left it (berth's `Config::trust_kernel`): a driver may then answer from what it knows,
    /// without asking the kernel. The default calls [`NetworkDriver::join`], which must then
    /// converge on an interface that exists already.
    fn restore_join(&self, request: &JoinRequest<'_>, trusted: bool) -> Result<JoinInfo> {
        let _ = trusted;
        self.join(request)
    }

    /// Takes the endpoint's interface out of the sandbox and removes it.
    fn leave(&self, network: &NetworkId, endpoint: &EndpointId) -> Result<()>;

    /// Opens legacy-link holes on a network that isolates its endpoints from each other. A
    /// driver without such isolation has nothing to open (the default). A hole already open is
    /// left as it is.
    fn open_link_holes(&self, network: &NetworkId, holes: &[LinkHole]) -> Result<()> {
        let _ = (network, holes);
        Ok(())
    }

    /// Closes every legacy-link hole on the network in which one of `addrs` takes part, as
    /// parent or child: an endpoint that leaves must not leave a hole for the next endpoint
    /// that gets its address. Closing what is not open is no error.
    fn close_link_holes(&self, network: &NetworkId, addrs: &[IpAddr]) -> Result<()> {
        let _ = (network, addrs);
        Ok(())
    }

    /// Publishes ports for a joined endpoint (`-p`); returns the bindings with the host ports
    /// chosen. All or nothing.
    fn program_external_connectivity(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
        ports: &[PortSpec],
    ) -> Result<Vec<PortBinding>> {
        let _ = (network, endpoint);
        if ports.is_empty() {
            Ok(Vec::new())
        } else {
            Err(DriverError::Unsupported {
                driver: self.name(),
                operation: "publishing ports",
            })
        }
    }

    /// After a restart: publishes exactly these bindings again (same host ports).
    fn restore_external_connectivity(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
        bindings: &[PortBinding],
    ) -> Result<()> {
        let _ = (network, endpoint, bindings);
        Ok(())
    }

    /// Unpublishes the endpoint's ports.
    fn revoke_external_connectivity(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
    ) -> Result<()> {
        let _ = (network, endpoint);
        Ok(())
    }

    /// After a restart, once every stored network and endpoint was handed to the driver again:
    /// removes the kernel objects of this driver that belong to none of them (leaked bridges,
    /// veths). Returns what was removed, for the log.
    fn remove_orphans(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// What the host's packet filter must let through for the network, when its traffic passes
    /// through the host's namespace on an interface of the driver's (a bridge, routed veths):
    /// the controller adds these rules to berth's firewall with the network (and removes them
    /// with it), as it does for the bridge driver's own networks, so that the forward policy
    /// berth sets does not drop the driver's traffic. `None` (the default): the driver's traffic
    /// does not pass through the host, or the driver programs the firewall itself (the bridge).
    fn host_policy(&self, spec: &NetworkSpec, options: &Self::Options) -> Option<HostPolicy> {
        let _ = (spec, options);
        None
    }
}

/// The object-safe face of a [`NetworkDriver`]: options travel as the parsed value, type-erased.
pub trait Driver: Send + Sync {
    /// See [`NetworkDriver::name`].
    fn name(&self) -> &'static str;
    /// See [`NetworkDriver::capabilities`].
    fn capabilities(&self) -> Capabilities;
    /// See [`NetworkDriver::parse_options`]; the result is handed back to `create_network`.
    fn parse_options(&self, raw: &RawOptions) -> Result<ParsedOptions>;
    /// See [`NetworkDriver::create_network`].
    fn create_network(&self, spec: &NetworkSpec, options: &ParsedOptions) -> Result<()>;
    /// See [`NetworkDriver::restore_network`].
    fn restore_network(&self, spec: &NetworkSpec, options: &ParsedOptions) -> Result<()>;
    /// See [`NetworkDriver::host_policy`].
    fn host_policy(
        &self,
        spec: &NetworkSpec,
        options: &ParsedOptions,
    ) -> Result<Option<HostPolicy>>;
    /// See [`NetworkDriver::delete_network`].
    fn delete_network(&self, network: &NetworkId) -> Result<()>;
    /// See [`NetworkDriver::allocate_network`].
    fn allocate_network(&self, spec: &NetworkSpec, options: &RawOptions) -> Result<RawOptions>;
    /// See [`NetworkDriver::free_network`].
    fn free_network(&self, network: &NetworkId, options: &RawOptions) -> Result<()>;
    /// See [`NetworkDriver::create_endpoint`].
    fn create_endpoint(&self, spec: &EndpointSpec) -> Result<InterfaceInfo>;
    /// See [`NetworkDriver::delete_endpoint`].
    fn delete_endpoint(&self, network: &NetworkId, endpoint: &EndpointId) -> Result<()>;
    /// See [`NetworkDriver::endpoint_info`].
    fn endpoint_info(&self, network: &NetworkId, endpoint: &EndpointId)
    -> Result<EndpointOperInfo>;
    /// See [`NetworkDriver::join`].
    fn join(&self, request: &JoinRequest<'_>) -> Result<JoinInfo>;
    /// See [`NetworkDriver::restore_join`].
    fn restore_join(&self, request: &JoinRequest<'_>, trusted: bool) -> Result<JoinInfo>;
    /// See [`NetworkDriver::leave`].
    fn leave(&self, network: &NetworkId, endpoint: &EndpointId) -> Result<()>;
    /// See [`NetworkDriver::open_link_holes`].
    fn open_link_holes(&self, network: &NetworkId, holes: &[LinkHole]) -> Result<()>;
    /// See [`NetworkDriver::close_link_holes`].
    fn close_link_holes(&self, network: &NetworkId, addrs: &[IpAddr]) -> Result<()>;
    /// See [`NetworkDriver::remove_orphans`].
    fn remove_orphans(&self) -> Result<Vec<String>>;
    /// See [`NetworkDriver::program_external_connectivity`].
    fn program_external_connectivity(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
        ports: &[PortSpec],
    ) -> Result<Vec<PortBinding>>;
    /// See [`NetworkDriver::restore_external_connectivity`].
    fn restore_external_connectivity(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
        bindings: &[PortBinding],
    ) -> Result<()>;
    /// See [`NetworkDriver::revoke_external_connectivity`].
    fn revoke_external_connectivity(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
    ) -> Result<()>;
}

/// A driver's parsed options, type-erased; only the driver that parsed them can read them.
#[derive(Debug)]
pub struct ParsedOptions {
    driver: &'static str,
    value: Box<dyn AnyDebug>,
}

trait AnyDebug: Any + Debug + Send + Sync {
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any + Debug + Send + Sync> AnyDebug for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl ParsedOptions {
    /// The driver that parsed these options.
    pub fn driver(&self) -> &'static str {
        self.driver
    }
}

/// The driver's own typed options back from their erased form; an error if another driver
/// parsed them.
fn typed_options<'a, D: NetworkDriver>(
    driver: &D,
    options: &'a ParsedOptions,
) -> Result<&'a D::Options> {
    Some(&options.value)
        .filter(|_| options.driver == NetworkDriver::name(driver))
        .and_then(|v| (**v).as_any().downcast_ref::<D::Options>())
        .ok_or_else(|| DriverError::Internal {
            driver: NetworkDriver::name(driver),
            message: format!(
                "options parsed by the {} driver were handed to it",
                options.driver
            ),
        })
}

impl<D: NetworkDriver> Driver for D {
    fn name(&self) -> &'static str {
        NetworkDriver::name(self)
    }

    fn capabilities(&self) -> Capabilities {
        NetworkDriver::capabilities(self)
    }

    fn parse_options(&self, raw: &RawOptions) -> Result<ParsedOptions> {
        Ok(ParsedOptions {
            driver: NetworkDriver::name(self),
            value: Box::new(NetworkDriver::parse_options(self, raw)?),
        })
    }

    fn create_network(&self, spec: &NetworkSpec, options: &ParsedOptions) -> Result<()> {
        NetworkDriver::create_network(self, spec, typed_options::<D>(self, options)?)
    }

    fn restore_network(&self, spec: &NetworkSpec, options: &ParsedOptions) -> Result<()> {
        NetworkDriver::restore_network(self, spec, typed_options::<D>(self, options)?)
    }

    fn host_policy(
        &self,
        spec: &NetworkSpec,
        options: &ParsedOptions,
    ) -> Result<Option<HostPolicy>> {
        Ok(NetworkDriver::host_policy(
            self,
            spec,
            typed_options::<D>(self, options)?,
        ))
    }

    fn delete_network(&self, network: &NetworkId) -> Result<()> {
        NetworkDriver::delete_network(self, network)
    }

    fn allocate_network(&self, spec: &NetworkSpec, options: &RawOptions) -> Result<RawOptions> {
        NetworkDriver::allocate_network(self, spec, options)
    }

    fn free_network(&self, network: &NetworkId, options: &RawOptions) -> Result<()> {
        NetworkDriver::free_network(self, network, options)
    }

    fn create_endpoint(&self, spec: &EndpointSpec) -> Result<InterfaceInfo> {
        NetworkDriver::create_endpoint(self, spec)
    }

    fn delete_endpoint(&self, network: &NetworkId, endpoint: &EndpointId) -> Result<()> {
        NetworkDriver::delete_endpoint(self, network, endpoint)
    }

    fn endpoint_info(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
    ) -> Result<EndpointOperInfo> {
        NetworkDriver::endpoint_info(self, network, endpoint)
    }

    fn join(&self, request: &JoinRequest<'_>) -> Result<JoinInfo> {
        NetworkDriver::join(self, request)
    }

    fn restore_join(&self, request: &JoinRequest<'_>, trusted: bool) -> Result<JoinInfo> {
        NetworkDriver::restore_join(self, request, trusted)
    }

    fn leave(&self, network: &NetworkId, endpoint: &EndpointId) -> Result<()> {
        NetworkDriver::leave(self, network, endpoint)
    }

    fn open_link_holes(&self, network: &NetworkId, holes: &[LinkHole]) -> Result<()> {
        NetworkDriver::open_link_holes(self, network, holes)
    }

    fn close_link_holes(&self, network: &NetworkId, addrs: &[IpAddr]) -> Result<()> {
        NetworkDriver::close_link_holes(self, network, addrs)
    }

    fn remove_orphans(&self) -> Result<Vec<String>> {
        NetworkDriver::remove_orphans(self)
    }

    fn program_external_connectivity(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
        ports: &[PortSpec],
    ) -> Result<Vec<PortBinding>> {
        NetworkDriver::program_external_connectivity(self, network, endpoint, ports)
    }

    fn restore_external_connectivity(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
        bindings: &[PortBinding],
    ) -> Result<()> {
        NetworkDriver::restore_external_connectivity(self, network, endpoint, bindings)
    }

    fn revoke_external_connectivity(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
    ) -> Result<()> {
        NetworkDriver::revoke_external_connectivity(self, network, endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Opts {
        flag: bool,
    }

    struct A;
    struct B;

    macro_rules! driver {
        ($t:ty, $name:literal) => {
            impl NetworkDriver for $t {
                type Options = Opts;
                fn name(&self) -> &'static str {
                    $name
                }
                fn capabilities(&self) -> Capabilities {
                    Capabilities::new(DataPath::Interfaces)
                }
                fn parse_options(&self, raw: &RawOptions) -> Result<Opts> {
                    let mut r = OptionReader::new($name, raw);
                    let flag = r.bool("flag")?.unwrap_or(false);
                    r.finish()?;
                    Ok(Opts { flag })
                }
                fn create_network(&self, _: &NetworkSpec, o: &Opts) -> Result<()> {
                    if o.flag {
                        Ok(())
                    } else {
                        Err(DriverError::InvalidConfig("flag off".into()))
                    }
                }
                fn delete_network(&self, _: &NetworkId) -> Result<()> {
                    Ok(())
                }
                fn create_endpoint(&self, s: &EndpointSpec) -> Result<InterfaceInfo> {
                    Ok(InterfaceInfo {
                        mac: None,
                        ipv4: s.ipv4,
                        ipv6: s.ipv6,
                    })
                }
                fn delete_endpoint(&self, _: &NetworkId, _: &EndpointId) -> Result<()> {
                    Ok(())
                }
                fn join(&self, r: &JoinRequest<'_>) -> Result<JoinInfo> {
                    Ok(JoinInfo {
                        ifname: r.ifname.into(),
                        ..Default::default()
                    })
                }
                fn leave(&self, _: &NetworkId, _: &EndpointId) -> Result<()> {
                    Ok(())
                }
            }
        };
    }
    driver!(A, "a");
    driver!(B, "b");

    fn spec() -> NetworkSpec {
        NetworkSpec {
            id: NetworkId::from_bytes([1; 32]),
            name: "n".into(),
            ipv4: vec![],
            ipv6: vec![],
            internal: false,
            enable_ipv6: false,
        }
    }

    #[test]
    fn erased_options_reach_their_driver_only() {
        let a: Box<dyn Driver> = Box::new(A);
        let b: Box<dyn Driver> = Box::new(B);
        let mut raw = RawOptions::new();
        raw.insert("flag".into(), "true".into());
        let parsed = a.parse_options(&raw).unwrap();
        assert_eq!(parsed.driver(), "a");
        a.create_network(&spec(), &parsed).unwrap();
        let err = b.create_network(&spec(), &parsed).unwrap_err();
        assert!(
            matches!(err, DriverError::Internal { driver: "b", .. }),
            "{err}"
        );
        let off = a.parse_options(&RawOptions::new()).unwrap();
        assert!(matches!(
            a.create_network(&spec(), &off),
            Err(DriverError::InvalidConfig(_))
        ));
    }
}

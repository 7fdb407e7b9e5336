//! A driver made of the bridge driver with other capabilities, for tests of the controller's
//! decisions by capability (global scope, egress): each host makes its own local bridge.
#![allow(dead_code, clippy::unwrap_used)]

use berth_bridge::{BRIDGE_PREFIX, BridgeDefaults, BridgeDriver, BridgeOptions};
use berth_driver::{
    Capabilities, EndpointId, EndpointSpec, HostPolicy, InterfaceInfo, JoinInfo, JoinRequest,
    NetworkDriver, NetworkId, NetworkSpec, RawOptions, Result as DriverResult,
};
use berth_testhost::TestHost;
use ipnet::IpNet;

/// The bridge driver (without a firewall of its own) under another name and capabilities.
pub(crate) struct BridgeLike {
    inner: BridgeDriver,
    name: &'static str,
    caps: fn(Capabilities) -> Capabilities,
    /// Its joins report the bridge's gateway (false: none, as a driver without a way out).
    gateway: bool,
    /// It asks berth's firewall to let its bridge's traffic through (`host_policy`).
    host_policy: bool,
}

impl BridgeLike {
    /// On `host`, named `name`, with the bridge's capabilities changed by `caps`; joins report
    /// the gateway and the host policy is asked for, unless changed.
    pub(crate) fn new(
        host: &TestHost,
        name: &'static str,
        caps: fn(Capabilities) -> Capabilities,
    ) -> BridgeLike {
        BridgeLike {
            inner: BridgeDriver::new(host.netns(), None, BridgeDefaults::default()).unwrap(),
            name,
            caps,
            gateway: true,
            host_policy: true,
        }
    }

    /// Joins report no gateway.
    pub(crate) fn without_gateway(mut self) -> BridgeLike {
        self.gateway = false;
        self
    }

    /// No host policy is asked for.
    pub(crate) fn without_host_policy(mut self) -> BridgeLike {
        self.host_policy = false;
        self
    }
}

impl NetworkDriver for BridgeLike {
    type Options = BridgeOptions;

    fn name(&self) -> &'static str {
        self.name
    }

    fn capabilities(&self) -> Capabilities {
        (self.caps)(self.inner.capabilities())
    }

    fn parse_options(&self, raw: &RawOptions) -> DriverResult<BridgeOptions> {
        self.inner.parse_options(raw)
    }

    fn create_network(&self, spec: &NetworkSpec, o: &BridgeOptions) -> DriverResult<()> {
        self.inner.create_network(spec, o)
    }

    fn restore_network(&self, spec: &NetworkSpec, o: &BridgeOptions) -> DriverResult<()> {
        self.inner.restore_network(spec, o)
    }

    fn delete_network(&self, network: &NetworkId) -> DriverResult<()> {
        self.inner.delete_network(network)
    }

    fn create_endpoint(&self, spec: &EndpointSpec) -> DriverResult<InterfaceInfo> {
        self.inner.create_endpoint(spec)
    }

    fn delete_endpoint(&self, network: &NetworkId, endpoint: &EndpointId) -> DriverResult<()> {
        self.inner.delete_endpoint(network, endpoint)
    }

    fn join(&self, request: &JoinRequest<'_>) -> DriverResult<JoinInfo> {
        let mut info = self.inner.join(request)?;
        if !self.gateway {
            info.gateway_v4 = None;
            info.gateway_v6 = None;
        }
        Ok(info)
    }

    fn leave(&self, network: &NetworkId, endpoint: &EndpointId) -> DriverResult<()> {
        self.inner.leave(network, endpoint)
    }

    fn remove_orphans(&self) -> DriverResult<Vec<String>> {
        self.inner.remove_orphans()
    }

    /// The wrapped bridge has no firewall of its own: berth's firewall lets its traffic through
    /// (the forward policy berth sets would drop it otherwise).
    fn host_policy(&self, spec: &NetworkSpec, _: &BridgeOptions) -> Option<HostPolicy> {
        if !self.host_policy {
            return None;
        }
        let v4 = spec.ipv4.first().and_then(|p| match p.pool {
            IpNet::V4(n) => Some(n),
            IpNet::V6(_) => None,
        });
        let bridge = format!("{BRIDGE_PREFIX}{}", &spec.id.as_str()[..12]);
        Some(HostPolicy::new(bridge, v4, None).internal(spec.internal))
    }
}

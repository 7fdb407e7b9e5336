//! [`RemoteNetworkDriver`]: a remote network driver plugin as a berth network driver.
//!
//! Each driver call is the plugin call of the same name. The kernel work dockerd does for a
//! remote driver is berth's here: the plugin's `Join` names an interface it made in the host
//! namespace (`SrcName`), and the adapter moves it into the sandbox under the name berth chose,
//! with the endpoint's addresses, MAC and the plugin's static routes
//! (`berth_netlink::attach`, all or nothing); `Leave` gives it back to the host namespace
//! under its `SrcName` before the plugin is told. A failure after the plugin's part is done is
//! undone on both sides: the moved interface is deleted and the plugin is told to `Leave` (a
//! failed `CreateEndpoint` answer is followed by `DeleteEndpoint`), as dockerd rolls back.
//!
//! A plugin is not asked twice for one endpoint: given a directory
//! ([`RemoteNetworkDriver::keep_state_in`]), the adapter keeps its endpoints and joins there,
//! and after a restart of the controller answers its repeated `create_endpoint` (with
//! [`berth_driver::DriverError::Exists`]) and `join` (with the saved answer, while the
//! interface is still in the sandbox) without calling the plugin.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use berth_driver::{
    Capabilities, DataPath, DriverError, EndpointId, EndpointOperInfo, EndpointSpec, InterfaceInfo,
    JoinInfo, JoinRequest, NetworkDriver, NetworkId, NetworkSpec, PortBinding, PortSpec,
    RawOptions, Scope, StaticRoute,
};
use berth_netlink::{AddrSpec, Attach, Handle, Netns, RouteSpec, attach, detach};
use ipnet::IpNet;
use serde_json::Value;

use crate::client::Client;
use crate::error::{CallFailure, Error, Result};
use crate::saved::{SavedDir, SavedEndpoint, SavedJoin};
use crate::wire::{
    Ack, AllocateNetworkRequest, AllocateNetworkResponse, Call, CreateEndpointRequest,
    CreateEndpointResponse, CreateNetworkRequest, DeleteNetworkRequest, DiscoveryNotification,
    DriverCapabilities, EndpointInfoResponse, EndpointInterface, EndpointRequest,
    GetCapabilitiesResponse, InterfaceFacts, IpamData, JoinFacts, JoinResponse,
    ProgramExternalConnectivityRequest, network_options, port_options,
};

/// A remote network driver plugin as a berth driver (see the module). Its name is the
/// plugin's; its scope the plugin's `GetCapabilities` answer. It publishes ports by handing
/// them to the plugin (`ProgramExternalConnectivity`, in dockerd's option shapes).
pub struct RemoteNetworkDriver {
    name: &'static str,
    client: Client,
    capabilities: DriverCapabilities,
    host: Netns,
    nl: Handle,
    endpoints: Mutex<HashMap<EndpointId, Endpoint>>,
    saved: Option<SavedDir>,
}

impl std::fmt::Debug for RemoteNetworkDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteNetworkDriver")
            .field("name", &self.name)
            .field("address", self.client.address())
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

/// What the adapter keeps of an endpoint: its facts (given by berth or filled in by the
/// plugin) and, while joined, where its interface is.
struct Endpoint {
    facts: InterfaceFacts,
    joined: Option<Joined>,
    /// Read from the saved state (made before a restart), not created by this adapter yet.
    from_disk: bool,
    /// The saved join, until the endpoint is joined again.
    saved_join: Option<SavedJoin>,
}

/// A joined endpoint's interface: in `sandbox` as `ifname`, `src_name` in the host.
struct Joined {
    sandbox: Netns,
    ifname: String,
    src_name: String,
}

/// A remote driver's network options: every key, as given, for the plugin (it alone knows
/// which it takes; dockerd hands them all over).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginOptions(pub RawOptions);

/// The name a driver reports: kept for the life of the process (the driver traits name
/// drivers by `&'static str`; one string per adapter made).
pub(crate) fn static_name(name: &str) -> &'static str {
    Box::leak(name.to_owned().into_boxed_str())
}

impl RemoteNetworkDriver {
    /// The driver for the plugin `client` calls, whose interfaces are made in `host`: asks
    /// the plugin's capabilities (`GetCapabilities`).
    pub fn new(client: Client, host: &Netns) -> Result<RemoteNetworkDriver> {
        let answer: GetCapabilitiesResponse = client.call_empty(Call::GetCapabilities)?;
        let capabilities = answer.parse().map_err(|e| Error::Call {
            plugin: client.plugin().to_owned(),
            call: Call::GetCapabilities,
            failure: CallFailure::Answer(e),
        })?;
        let kernel = |operation: &str, source| Error::Kernel {
            plugin: client.plugin().to_owned(),
            call: Call::GetCapabilities,
            operation: operation.to_owned(),
            source,
        };
        let host = host
            .try_clone()
            .map_err(|e| kernel("holding the host namespace", e))?;
        let nl = Handle::open(&host).map_err(|e| kernel("netlink in the host namespace", e))?;
        Ok(RemoteNetworkDriver {
            name: static_name(client.plugin()),
            client,
            capabilities,
            host,
            nl,
            endpoints: Mutex::default(),
            saved: None,
        })
    }

    /// Keeps the adapter's endpoints in `dir` (one directory per plugin; berth's data root is
    /// a good place), and takes back those saved there by an adapter before a restart.
    pub fn keep_state_in(mut self, dir: &Path) -> Result<RemoteNetworkDriver> {
        let (saved, found) = SavedDir::open(dir).map_err(|e| Error::Spec {
            name: self.name.to_owned(),
            path: dir.to_owned(),
            reason: format!("cannot keep the driver's state there: {e}"),
        })?;
        let mut endpoints = self.endpoints();
        for (id, ep) in found {
            endpoints.insert(
                id,
                Endpoint {
                    facts: InterfaceFacts {
                        ipv4: ep.interface.ipv4,
                        ipv6: ep.interface.ipv6,
                        mac: ep.interface.mac,
                    },
                    joined: None,
                    from_disk: true,
                    saved_join: ep.join,
                },
            );
        }
        drop(endpoints);
        self.saved = Some(saved);
        Ok(self)
    }

    /// Saves an endpoint's state (when keeping state); a failure is logged: the plugin did its
    /// part, and only a restart would miss what was not saved.
    fn save(&self, id: &EndpointId, facts: &InterfaceFacts, join: Option<SavedJoin>) {
        let Some(saved) = &self.saved else {
            return;
        };
        let ep = SavedEndpoint {
            interface: InterfaceInfo {
                mac: facts.mac,
                ipv4: facts.ipv4,
                ipv6: facts.ipv6,
            },
            join,
        };
        if let Err(e) = saved.save(id, &ep) {
            tracing::warn!(plugin = self.name, endpoint = %id, error = %e, "saving the endpoint's state");
        }
    }

    /// A join saved before a restart, taken back if its interface is still in the sandbox.
    fn rejoin_saved(&self, req: &JoinRequest<'_>, saved: &SavedJoin) -> Option<(Netns, JoinInfo)> {
        if saved.ifname != req.ifname {
            return None;
        }
        let sandbox = Netns::from_fd_or_path(req.sandbox.netns.fd, req.sandbox.netns.path).ok()?;
        let present = Handle::open(&sandbox)
            .and_then(|sb| sb.link_get(req.ifname))
            .ok()
            .flatten()
            .is_some();
        present.then(|| (sandbox, saved.info.clone()))
    }

    /// The plugin's capabilities as it answered them (`ConnectivityScope` included, which
    /// berth's [`Capabilities`] has no place for).
    pub fn plugin_capabilities(&self) -> DriverCapabilities {
        self.capabilities
    }

    /// The plugin's client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Tells the plugin of a node that joined the cluster (`DiscoverNew`); berth's controller
    /// has no discovery events, so an engine calls it.
    pub fn discover_new(&self, notification: &DiscoveryNotification) -> Result<()> {
        self.client
            .call::<_, Ack>(Call::DiscoverNew, notification)
            .map(drop)
    }

    /// Tells the plugin of a node that left the cluster (`DiscoverDelete`).
    pub fn discover_delete(&self, notification: &DiscoveryNotification) -> Result<()> {
        self.client
            .call::<_, Ack>(Call::DiscoverDelete, notification)
            .map(drop)
    }

    fn endpoints(&self) -> MutexGuard<'_, HashMap<EndpointId, Endpoint>> {
        self.endpoints.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fail(&self, call: Call, failure: impl Into<CallFailure>) -> Error {
        Error::Call {
            plugin: self.name.to_owned(),
            call,
            failure: failure.into(),
        }
    }

    fn kernel(&self, call: Call, operation: String, source: berth_netlink::Error) -> Error {
        Error::Kernel {
            plugin: self.name.to_owned(),
            call,
            operation,
            source,
        }
    }

    /// The address space named in the pools handed to the plugin (berth's networks do not
    /// record their IPAM driver's: dockerd's default names).
    fn address_space(&self) -> &'static str {
        match self.capabilities.scope {
            Scope::Local => "LocalDefault",
            Scope::Global => "GlobalDefault",
        }
    }

    fn pools(&self, spec: &NetworkSpec) -> (Vec<IpamData>, Vec<IpamData>) {
        let space = self.address_space();
        let data = |pools: &[berth_driver::IpamInfo]| {
            pools
                .iter()
                .map(|p| IpamData::from_info(space, p))
                .collect::<Vec<_>>()
        };
        (data(&spec.ipv4), data(&spec.ipv6))
    }

    fn endpoint_request(network: &NetworkId, endpoint: &EndpointId) -> EndpointRequest {
        EndpointRequest {
            network_id: network.to_string(),
            endpoint_id: endpoint.to_string(),
        }
    }

    /// Tells the plugin to forget an endpoint whose creation berth could not use; a failure
    /// of that is logged (the call's own error is what the caller sees).
    fn undo_create(&self, network: &NetworkId, endpoint: &EndpointId) {
        let req = Self::endpoint_request(network, endpoint);
        if let Err(e) = self.client.call::<_, Ack>(Call::DeleteEndpoint, &req) {
            tracing::warn!(plugin = self.name, error = %e, "rolling back a failed CreateEndpoint");
        }
    }

    /// Tells the plugin to undo a join berth could not carry out.
    fn undo_join(&self, network: &NetworkId, endpoint: &EndpointId) {
        let req = Self::endpoint_request(network, endpoint);
        if let Err(e) = self.client.call::<_, Ack>(Call::Leave, &req) {
            tracing::warn!(plugin = self.name, error = %e, "rolling back a failed Join");
        }
    }

    /// The plugin's join carried out: its interface moved into the sandbox and configured.
    fn attach_join(
        &self,
        req: &JoinRequest<'_>,
        facts: &InterfaceFacts,
        join: &JoinFacts,
    ) -> Result<Netns> {
        let sandbox = Netns::from_fd_or_path(req.sandbox.netns.fd, req.sandbox.netns.path)
            .map_err(|e| self.kernel(Call::Join, "opening the sandbox's namespace".into(), e))?;
        let sb = Handle::open(&sandbox)
            .map_err(|e| self.kernel(Call::Join, "netlink in the sandbox".into(), e))?;
        let mut spec = Attach::new(&join.src_name, req.ifname);
        if let Some(a) = facts.ipv4 {
            spec = spec.addr(AddrSpec::new(IpNet::V4(a)));
        }
        if let Some(a) = facts.ipv6 {
            spec = spec.addr(AddrSpec::new(IpNet::V6(a)).nodad());
        }
        if let Some(mac) = facts.mac {
            spec = spec.mac(mac);
        }
        for r in &join.routes {
            let mut route = RouteSpec::new(r.destination);
            if let Some(hop) = r.next_hop {
                route = route.via(hop);
            }
            spec = spec.route(route);
        }
        // All or nothing: on failure the interface is deleted wherever it is.
        attach(&self.nl, &sandbox, &sb, &spec).map_err(|e| {
            self.kernel(
                Call::Join,
                format!(
                    "putting its interface {} into the sandbox as {}",
                    join.src_name, req.ifname
                ),
                e,
            )
        })?;
        Ok(sandbox)
    }

    /// Gives a joined interface back to the host namespace under its `SrcName` (dockerd's
    /// step before `Leave`); if that fails, the interface is deleted in the sandbox so that the
    /// sandbox's name is free again.
    fn give_back(&self, joined: &Joined) {
        let gave_back = Handle::open(&joined.sandbox).and_then(|sb| {
            detach(&sb, &joined.ifname, &self.host, &joined.src_name).or_else(|e| {
                tracing::warn!(plugin = self.name, error = %e, ifname = %joined.ifname,
                    "cannot give the interface back to the host namespace; deleting it");
                match sb.link_delete(joined.ifname.as_str()) {
                    Err(d) if !d.is_not_found() => Err(d),
                    _ => Ok(()),
                }
            })
        });
        if let Err(e) = gave_back {
            tracing::warn!(plugin = self.name, error = %e, ifname = %joined.ifname,
                "the sandbox's interface of a leaving endpoint");
        }
    }
}

/// The bindings berth can report for `specs` published by a plugin: those whose host ports
/// were given port for port (a plugin's answer does not say which host ports it chose).
fn reported_bindings(specs: &[PortSpec]) -> Vec<PortBinding> {
    specs
        .iter()
        .filter_map(|s| {
            let host_ports = s.host_ports?;
            let same_length = host_ports.end() - host_ports.start()
                == s.container_ports.end() - s.container_ports.start();
            same_length.then(|| PortBinding {
                proto: s.proto,
                host_ip: s
                    .host_ip
                    .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
                host_ports,
                container_ports: s.container_ports,
            })
        })
        .collect()
}

/// `given` unless the plugin answered a different value for it.
fn merge<T: PartialEq + Copy + std::fmt::Display>(
    field: &str,
    given: Option<T>,
    answered: Option<T>,
) -> std::result::Result<Option<T>, String> {
    match (given, answered) {
        (Some(g), Some(a)) if g != a => Err(format!(
            "the plugin changed the endpoint's {field} ({g} given, {a} answered); a plugin may only fill in what is not given"
        )),
        (g, a) => Ok(g.or(a)),
    }
}

impl NetworkDriver for RemoteNetworkDriver {
    type Options = PluginOptions;

    fn name(&self) -> &'static str {
        self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(DataPath::Interfaces)
            .scope(self.capabilities.scope)
            .publishes_ports(true)
    }

    fn parse_options(&self, raw: &RawOptions) -> berth_driver::Result<PluginOptions> {
        Ok(PluginOptions(raw.clone()))
    }

    fn create_network(
        &self,
        spec: &NetworkSpec,
        options: &PluginOptions,
    ) -> berth_driver::Result<()> {
        let (ipv4_data, ipv6_data) = self.pools(spec);
        let req = CreateNetworkRequest {
            network_id: spec.id.to_string(),
            options: network_options(&options.0, spec.enable_ipv6, spec.internal),
            ipv4_data,
            ipv6_data,
        };
        self.client.call::<_, Ack>(Call::CreateNetwork, &req)?;
        Ok(())
    }

    /// The plugin keeps its networks across a restart of berth (dockerd does not create a
    /// remote driver's networks again either): nothing is asked.
    fn restore_network(
        &self,
        _spec: &NetworkSpec,
        _options: &PluginOptions,
    ) -> berth_driver::Result<()> {
        Ok(())
    }

    fn delete_network(&self, network: &NetworkId) -> berth_driver::Result<()> {
        let req = DeleteNetworkRequest {
            network_id: network.to_string(),
        };
        self.client.call::<_, Ack>(Call::DeleteNetwork, &req)?;
        Ok(())
    }

    /// `AllocateNetwork` for a global-scope plugin (dockerd's swarm manager asks it so); a
    /// local-scope plugin is not asked.
    fn allocate_network(
        &self,
        spec: &NetworkSpec,
        options: &RawOptions,
    ) -> berth_driver::Result<RawOptions> {
        if self.capabilities.scope != Scope::Global {
            return Ok(RawOptions::new());
        }
        let (ipv4_data, ipv6_data) = self.pools(spec);
        let req = AllocateNetworkRequest {
            network_id: spec.id.to_string(),
            options: options.clone(),
            ipv4_data,
            ipv6_data,
        };
        let answer: AllocateNetworkResponse = self.client.call(Call::AllocateNetwork, &req)?;
        Ok(answer.options)
    }

    fn free_network(&self, network: &NetworkId, _options: &RawOptions) -> berth_driver::Result<()> {
        if self.capabilities.scope != Scope::Global {
            return Ok(());
        }
        let req = DeleteNetworkRequest {
            network_id: network.to_string(),
        };
        self.client.call::<_, Ack>(Call::FreeNetwork, &req)?;
        Ok(())
    }

    /// Fails with [`DriverError::Exists`] for an endpoint saved before a restart (see
    /// [`RemoteNetworkDriver::keep_state_in`]): the plugin has it.
    fn create_endpoint(&self, spec: &EndpointSpec) -> berth_driver::Result<InterfaceInfo> {
        if self
            .endpoints()
            .get(&spec.endpoint)
            .is_some_and(|e| e.from_disk)
        {
            return Err(DriverError::Exists(format!(
                "endpoint {} in plugin {:?} (made before a restart)",
                spec.endpoint, self.name
            )));
        }
        let given = InterfaceFacts {
            ipv4: spec.ipv4,
            ipv6: spec.ipv6,
            mac: spec.mac,
        };
        let req = CreateEndpointRequest {
            network_id: spec.network.to_string(),
            endpoint_id: spec.endpoint.to_string(),
            interface: Some(EndpointInterface::from_facts(&given)),
            options: spec
                .options
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        };
        let answer: CreateEndpointResponse = self.client.call(Call::CreateEndpoint, &req)?;
        let merged = answer
            .parse()
            .map_err(|e| self.fail(Call::CreateEndpoint, e))
            .and_then(|answered| {
                let bad = |m: String| self.fail(Call::CreateEndpoint, CallFailure::Remote(m));
                Ok(InterfaceFacts {
                    ipv4: merge("Address", given.ipv4, answered.ipv4).map_err(bad)?,
                    ipv6: merge("AddressIPv6", given.ipv6, answered.ipv6).map_err(bad)?,
                    mac: merge("MacAddress", given.mac, answered.mac).map_err(bad)?,
                })
            });
        let facts = match merged {
            Ok(f) => f,
            Err(e) => {
                self.undo_create(&spec.network, &spec.endpoint);
                return Err(e.into());
            }
        };
        self.endpoints().insert(
            spec.endpoint.clone(),
            Endpoint {
                facts,
                joined: None,
                from_disk: false,
                saved_join: None,
            },
        );
        self.save(&spec.endpoint, &facts, None);
        Ok(InterfaceInfo {
            mac: facts.mac,
            ipv4: facts.ipv4,
            ipv6: facts.ipv6,
        })
    }

    fn delete_endpoint(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
    ) -> berth_driver::Result<()> {
        let req = Self::endpoint_request(network, endpoint);
        self.client.call::<_, Ack>(Call::DeleteEndpoint, &req)?;
        self.endpoints().remove(endpoint);
        if let Some(saved) = &self.saved
            && let Err(e) = saved.forget(endpoint)
        {
            tracing::warn!(plugin = self.name, %endpoint, error = %e, "forgetting the endpoint's saved state");
        }
        Ok(())
    }

    fn endpoint_info(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
    ) -> berth_driver::Result<EndpointOperInfo> {
        let req = Self::endpoint_request(network, endpoint);
        let answer: EndpointInfoResponse = self.client.call(Call::EndpointOperInfo, &req)?;
        Ok(EndpointOperInfo {
            host_interface: None,
            extra: answer.strings(),
        })
    }

    /// After a restart, an endpoint whose saved join's interface is still in the sandbox is
    /// taken back as it is, without asking the plugin.
    fn join(&self, req: &JoinRequest<'_>) -> berth_driver::Result<JoinInfo> {
        let (facts, saved_join) = self
            .endpoints()
            .get(req.endpoint)
            .map(|e| (e.facts, e.saved_join.clone()))
            .ok_or_else(|| Error::Unknown {
                plugin: self.name.to_owned(),
                call: Call::Join,
                what: req.endpoint.to_string(),
            })?;
        if let Some(saved) = saved_join
            && let Some((sandbox, info)) = self.rejoin_saved(req, &saved)
        {
            if let Some(ep) = self.endpoints().get_mut(req.endpoint) {
                ep.joined = Some(Joined {
                    sandbox,
                    ifname: saved.ifname.clone(),
                    src_name: saved.src_name.clone(),
                });
                ep.from_disk = false;
                ep.saved_join = None;
            }
            return Ok(info);
        }
        let body = crate::wire::JoinRequest {
            network_id: req.network.to_string(),
            endpoint_id: req.endpoint.to_string(),
            sandbox_key: req.sandbox.netns.path.display().to_string(),
            options: BTreeMap::new(),
        };
        let answer: JoinResponse = self.client.call(Call::Join, &body)?;
        let join = match answer.parse() {
            Ok(j) => j,
            Err(e) => {
                self.undo_join(req.network, req.endpoint);
                return Err(self.fail(Call::Join, e).into());
            }
        };
        let sandbox = match self.attach_join(req, &facts, &join) {
            Ok(s) => s,
            Err(e) => {
                self.undo_join(req.network, req.endpoint);
                return Err(e.into());
            }
        };
        if let Some(ep) = self.endpoints().get_mut(req.endpoint) {
            ep.joined = Some(Joined {
                sandbox,
                ifname: req.ifname.to_owned(),
                src_name: join.src_name.clone(),
            });
            ep.from_disk = false;
            ep.saved_join = None;
        }
        let info = JoinInfo {
            ifname: req.ifname.to_owned(),
            gateway_v4: join.gateway_v4,
            gateway_v6: join.gateway_v6,
            static_routes: join
                .routes
                .iter()
                .map(|r| StaticRoute {
                    destination: r.destination,
                    next_hop: r.next_hop,
                })
                .collect(),
        };
        let saved = SavedJoin {
            ifname: req.ifname.to_owned(),
            src_name: join.src_name,
            info: info.clone(),
        };
        self.save(req.endpoint, &facts, Some(saved));
        Ok(info)
    }

    /// Gives the interface back to the host namespace under its `SrcName` (if this adapter
    /// joined it: after a restart the plugin's `DeleteEndpoint` removes it), then `Leave`.
    fn leave(&self, network: &NetworkId, endpoint: &EndpointId) -> berth_driver::Result<()> {
        let (joined, facts) = match self.endpoints().get_mut(endpoint) {
            Some(e) => {
                e.saved_join = None;
                (e.joined.take(), Some(e.facts))
            }
            None => (None, None),
        };
        if let Some(joined) = &joined {
            self.give_back(joined);
        }
        if let Some(facts) = facts {
            self.save(endpoint, &facts, None);
        }
        let req = Self::endpoint_request(network, endpoint);
        self.client.call::<_, Ack>(Call::Leave, &req)?;
        Ok(())
    }

    fn program_external_connectivity(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
        ports: &[PortSpec],
    ) -> berth_driver::Result<Vec<PortBinding>> {
        if ports.is_empty() {
            return Ok(Vec::new());
        }
        let req = ProgramExternalConnectivityRequest {
            network_id: network.to_string(),
            endpoint_id: endpoint.to_string(),
            options: port_options(ports),
        };
        match self
            .client
            .call::<_, Ack>(Call::ProgramExternalConnectivity, &req)
        {
            Ok(_) => Ok(reported_bindings(ports)),
            // Not mandatory for a plugin (dockerd ignores a 404 too): nothing is published.
            Err(e) if e.is_not_implemented_call() => {
                tracing::warn!(
                    plugin = self.name,
                    "the plugin does not publish ports (ProgramExternalConnectivity: 404)"
                );
                Ok(Vec::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn revoke_external_connectivity(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
    ) -> berth_driver::Result<()> {
        let req = Self::endpoint_request(network, endpoint);
        match self
            .client
            .call::<_, Ack>(Call::RevokeExternalConnectivity, &req)
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_implemented_call() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn bindings_reported_for_fixed_ports_only() {
        let specs: Vec<PortSpec> = [
            "8080:80",
            "127.0.0.1:8000-8001:80-81/udp",
            "443",
            "9000-9010:53",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let b = reported_bindings(&specs);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].host_ip.to_string(), "0.0.0.0");
        assert_eq!(
            (b[1].host_ports.start(), b[1].container_ports.end()),
            (8000, 81)
        );
    }

    #[test]
    fn plugins_fill_in_only_what_is_missing() {
        assert_eq!(merge("Address", Some(1), None), Ok(Some(1)));
        assert_eq!(merge("Address", None, Some(2)), Ok(Some(2)));
        assert_eq!(merge("Address", Some(2), Some(2)), Ok(Some(2)));
        assert!(
            merge("Address", Some(1), Some(2))
                .unwrap_err()
                .contains("1 given, 2 answered")
        );
    }
}

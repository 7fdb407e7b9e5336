//! [`RemoteIpamDriver`]: a remote IPAM plugin as a berth IPAM driver.
//!
//! Pools and addresses are the plugin's (`RequestPool`, `RequestAddress`, ...), in the address
//! spaces its `GetDefaultAddressSpaces` names. As dockerd does: a network's auxiliary
//! addresses are requested from the plugin when its pool is; a gateway the plugin gives in the
//! pool's data (`com.docker.network.gateway`) is taken without asking for one; a gateway is
//! asked for with `RequestAddressType: com.docker.network.gateway`; releasing a pool releases
//! its auxiliary addresses and gateway first. Answers are checked beyond dockerd: an address
//! outside its pool, or another address than an auxiliary one asked for, is given back and
//! refused.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use berth_driver::{
    AddressRequest, AddressSpace, BoxError, IpFamily, IpamDriver, Pool, PoolRequest,
};
use ipnet::IpNet;

use crate::client::Client;
use crate::error::{CallFailure, Error, Result};
use crate::network::static_name;
use crate::wire::{
    AddressSpacesResponse, Call, GATEWAY_ADDRESS_TYPE, IpamAck, IpamCapabilitiesResponse,
    REQUEST_ADDRESS_TYPE, ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest,
    RequestAddressResponse, RequestPoolRequest, RequestPoolResponse,
};

/// What an IPAM plugin asks of the engine ([`IpamCapabilitiesResponse`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpamCapabilities {
    /// Address requests must carry the endpoint's MAC address (berth's IPAM contract has no
    /// MAC to give: such a plugin gets none).
    pub requires_mac_address: bool,
    /// Pools and addresses must be requested again when the engine starts.
    pub requires_request_replay: bool,
}

/// A remote IPAM plugin as a berth IPAM driver (see the module). Its name is the plugin's.
pub struct RemoteIpamDriver {
    name: &'static str,
    client: Client,
    capabilities: IpamCapabilities,
    local_space: String,
    global_space: String,
    pools: Mutex<HashMap<String, PoolState>>,
}

impl std::fmt::Debug for RemoteIpamDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteIpamDriver")
            .field("name", &self.name)
            .field("address", self.client.address())
            .field("capabilities", &self.capabilities)
            .field("local_space", &self.local_space)
            .field("global_space", &self.global_space)
            .finish_non_exhaustive()
    }
}

/// What the adapter keeps of a pool it requested.
#[derive(Debug, Clone)]
struct PoolState {
    subnet: IpNet,
    /// The gateway the plugin gave in the pool's data.
    data_gateway: Option<IpNet>,
    /// The gateway requested from the plugin.
    gateway: Option<IpAddr>,
    /// The auxiliary addresses requested from the plugin.
    aux: Vec<IpAddr>,
}

impl RemoteIpamDriver {
    /// The driver for the plugin `client` calls: asks its capabilities (a plugin that does not
    /// implement `GetCapabilities`, 404, has the defaults, as dockerd has it) and its default
    /// address spaces.
    pub fn new(client: Client) -> Result<RemoteIpamDriver> {
        let capabilities =
            match client.call_empty::<IpamCapabilitiesResponse>(Call::IpamGetCapabilities) {
                Ok(c) => IpamCapabilities {
                    requires_mac_address: c.requires_mac_address,
                    requires_request_replay: c.requires_request_replay,
                },
                Err(e) if e.is_not_implemented_call() => IpamCapabilities::default(),
                Err(e) => return Err(e),
            };
        if capabilities.requires_mac_address {
            tracing::warn!(
                plugin = client.plugin(),
                "the IPAM plugin requires MAC addresses, which berth's IPAM contract does not carry"
            );
        }
        let spaces: AddressSpacesResponse = client.call_empty(Call::GetDefaultAddressSpaces)?;
        Ok(RemoteIpamDriver {
            name: static_name(client.plugin()),
            local_space: spaces.local_default_address_space,
            global_space: spaces.global_default_address_space,
            client,
            capabilities,
            pools: Mutex::default(),
        })
    }

    /// The plugin's capabilities.
    pub fn plugin_capabilities(&self) -> IpamCapabilities {
        self.capabilities
    }

    /// The plugin's default address spaces (local, global).
    pub fn address_spaces(&self) -> (&str, &str) {
        (&self.local_space, &self.global_space)
    }

    /// The plugin's client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn pools(&self) -> MutexGuard<'_, HashMap<String, PoolState>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fail(&self, call: Call, failure: impl Into<CallFailure>) -> Error {
        Error::Call {
            plugin: self.name.to_owned(),
            call,
            failure: failure.into(),
        }
    }

    /// Best-effort release of what berth will not use; failures are logged.
    fn release_quietly(&self, call: Call, result: Result<IpamAck>) {
        if let Err(e) = result {
            tracing::warn!(plugin = self.name, %call, error = %e, "giving back to the IPAM plugin");
        }
    }

    fn release_address_call(&self, pool: &str, addr: IpAddr) -> Result<IpamAck> {
        self.client.call(
            Call::ReleaseAddress,
            &ReleaseAddressRequest::new(pool, addr),
        )
    }

    fn release_pool_call(&self, pool: &str) -> Result<IpamAck> {
        let req = ReleasePoolRequest {
            pool_id: pool.to_owned(),
        };
        self.client.call(Call::ReleasePool, &req)
    }

    /// Requests one address of `pool` (inside `subnet`, when known).
    fn request_address_call(
        &self,
        pool: &str,
        subnet: Option<IpNet>,
        address: Option<IpAddr>,
        options: BTreeMap<String, String>,
    ) -> Result<IpNet> {
        let req = RequestAddressRequest {
            pool_id: pool.to_owned(),
            address: address.map(|a| a.to_string()).unwrap_or_default(),
            options,
        };
        let answer: RequestAddressResponse = self.client.call(Call::RequestAddress, &req)?;
        let parsed = match subnet {
            Some(s) => answer.parse(s),
            // A pool this adapter did not request (before a restart): any address is inside
            // the whole address space of its family.
            None => answer
                .parse(IpNet::V4(ipnet::Ipv4Net::default()))
                .or_else(|_| answer.parse(IpNet::V6(ipnet::Ipv6Net::default()))),
        };
        parsed.map_err(|e| {
            // Give back what the plugin handed out but berth cannot use.
            if let Ok(given) = answer.address.parse::<IpNet>() {
                self.release_quietly(
                    Call::ReleaseAddress,
                    self.release_address_call(pool, given.addr()),
                );
            }
            self.fail(Call::RequestAddress, e)
        })
    }

    fn request_pool_inner(&self, req: &PoolRequest) -> Result<Pool> {
        let v6 = req.family == IpFamily::V6;
        let space = match req.space {
            AddressSpace::Local => &self.local_space,
            AddressSpace::Global => &self.global_space,
        };
        let body = RequestPoolRequest {
            address_space: space.clone(),
            pool: req.subnet.map(|s| s.to_string()).unwrap_or_default(),
            sub_pool: req.ip_range.map(|r| r.to_string()).unwrap_or_default(),
            options: req.options.clone(),
            v6,
        };
        let answer: RequestPoolResponse = self.client.call(Call::RequestPool, &body)?;
        let facts = match answer.parse(v6) {
            Ok(f) => f,
            Err(e) => {
                if !answer.pool_id.is_empty() {
                    self.release_quietly(
                        Call::ReleasePool,
                        self.release_pool_call(&answer.pool_id),
                    );
                }
                return Err(self.fail(Call::RequestPool, e));
            }
        };
        let mut aux = Vec::new();
        for (name, addr) in &req.aux_addresses {
            let got = self
                .request_address_call(&facts.id, Some(facts.subnet), Some(*addr), BTreeMap::new())
                .and_then(|got| {
                    if got.addr() == *addr {
                        Ok(got)
                    } else {
                        self.release_quietly(
                            Call::ReleaseAddress,
                            self.release_address_call(&facts.id, got.addr()),
                        );
                        Err(self.fail(
                            Call::RequestAddress,
                            CallFailure::Remote(format!(
                                "auxiliary address {name}={addr} was asked for, {} was given",
                                got.addr()
                            )),
                        ))
                    }
                });
            match got {
                Ok(_) => aux.push(*addr),
                Err(e) => {
                    for a in &aux {
                        self.release_quietly(
                            Call::ReleaseAddress,
                            self.release_address_call(&facts.id, *a),
                        );
                    }
                    self.release_quietly(Call::ReleasePool, self.release_pool_call(&facts.id));
                    return Err(e);
                }
            }
        }
        self.pools().insert(
            facts.id.clone(),
            PoolState {
                subnet: facts.subnet,
                data_gateway: facts.gateway,
                gateway: None,
                aux,
            },
        );
        Ok(Pool {
            id: facts.id,
            subnet: facts.subnet,
            ip_range: req.ip_range,
        })
    }
}

impl IpamDriver for RemoteIpamDriver {
    fn name(&self) -> &'static str {
        self.name
    }

    /// The plugin keeps its allocations (it is its own process): a restart of berth asks
    /// nothing again.
    fn keeps_state(&self) -> bool {
        true
    }

    fn request_pool(&self, req: &PoolRequest) -> std::result::Result<Pool, BoxError> {
        Ok(self.request_pool_inner(req)?)
    }

    fn release_pool(&self, pool: &str) -> std::result::Result<(), BoxError> {
        let state = self.pools().remove(pool);
        if let Some(state) = state {
            for addr in state.aux.iter().chain(state.gateway.iter()) {
                self.release_quietly(Call::ReleaseAddress, self.release_address_call(pool, *addr));
            }
        }
        self.release_pool_call(pool)?;
        Ok(())
    }

    fn request_address(
        &self,
        pool: &str,
        req: AddressRequest,
    ) -> std::result::Result<IpNet, BoxError> {
        let state = self.pools().get(pool).cloned();
        let subnet = state.as_ref().map(|s| s.subnet);
        let got = match req {
            AddressRequest::Next => {
                self.request_address_call(pool, subnet, None, BTreeMap::new())?
            }
            AddressRequest::Preferred(a) => {
                self.request_address_call(pool, subnet, Some(a), BTreeMap::new())?
            }
            AddressRequest::Gateway(None)
                if state.as_ref().is_some_and(|s| s.data_gateway.is_some()) =>
            {
                // The plugin gave the gateway with the pool: dockerd asks for none.
                return Ok(state.and_then(|s| s.data_gateway).ok_or("no gateway")?);
            }
            AddressRequest::Gateway(preferred) => {
                let options = [(
                    REQUEST_ADDRESS_TYPE.to_owned(),
                    GATEWAY_ADDRESS_TYPE.to_owned(),
                )]
                .into();
                let got = self.request_address_call(pool, subnet, preferred, options)?;
                if let Some(s) = self.pools().get_mut(pool) {
                    s.gateway = Some(got.addr());
                }
                got
            }
        };
        Ok(got)
    }

    fn release_address(&self, pool: &str, addr: IpAddr) -> std::result::Result<(), BoxError> {
        self.release_address_call(pool, addr)?;
        if let Some(s) = self.pools().get_mut(pool)
            && s.gateway == Some(addr)
        {
            s.gateway = None;
        }
        Ok(())
    }
}

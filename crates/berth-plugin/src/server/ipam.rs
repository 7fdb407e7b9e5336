//! The `IpamDriver` calls: berth-ipam's allocator behind dockerd's remote IPAM API. Every pool
//! and address handed out is recorded (one record each) before it is answered, and replayed
//! into the allocator on start.

use std::net::IpAddr;

use berth_ipam::{AddressRequest, AddressSpace, IpFamily, PoolId, PoolRequest};
use ipnet::IpNet;

use super::error::{ServerError, ServerResult};
use super::records::{AddressRecord, address_key, address_prefix, pool_key};
use super::service::{Service, decode, encode};
use crate::wire::{
    AddressSpacesResponse, Call, GATEWAY_ADDRESS_TYPE, IpamAck, REQUEST_ADDRESS_TYPE,
    ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest, RequestAddressResponse,
    RequestPoolRequest, RequestPoolResponse,
};

fn space(call: Call, name: &str) -> ServerResult<AddressSpace> {
    name.parse().map_err(|_| {
        ServerError::request(
            call,
            "AddressSpace",
            name,
            "unknown address space (this plugin's are LocalDefault and GlobalDefault)",
        )
    })
}

fn pool_id(call: Call, value: &str) -> ServerResult<PoolId> {
    value
        .parse()
        .map_err(|e: berth_ipam::Error| ServerError::request(call, "PoolID", value, e.to_string()))
}

fn subnet(call: Call, field: &str, value: &str) -> ServerResult<IpNet> {
    value
        .parse::<IpNet>()
        .map_err(|_| ServerError::request(call, field, value, "not a subnet in CIDR notation"))
}

impl Service {
    pub(crate) fn address_spaces(&self) -> ServerResult<Vec<u8>> {
        encode(&AddressSpacesResponse {
            error: String::new(),
            local_default_address_space: AddressSpace::Local.name().to_owned(),
            global_default_address_space: AddressSpace::Global.name().to_owned(),
        })
    }

    /// The host namespace's routes (but default routes) and the nameservers of
    /// `/etc/resolv.conf`, which a pool from the defaults must not overlap (as the
    /// controller has it).
    fn host_exclusions(&self) -> Vec<IpNet> {
        // A namespace whose routes cannot be read excludes nothing but its nameservers.
        let routes = self.host_netlink.route_destinations().unwrap_or_default();
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        berth_ipam::host_exclusions(routes, &resolv)
    }

    pub(crate) fn request_pool(&self, body: &[u8]) -> ServerResult<Vec<u8>> {
        const CALL: Call = Call::RequestPool;
        let req: RequestPoolRequest = decode(CALL, body)?;
        let space = space(CALL, &req.address_space)?;
        let mut pr = match req.pool.as_str() {
            "" => {
                if !req.sub_pool.is_empty() {
                    return Err(ServerError::request(
                        CALL,
                        "SubPool",
                        &req.sub_pool,
                        "an ip-range needs a subnet (--subnet)",
                    ));
                }
                let family = if req.v6 { IpFamily::V6 } else { IpFamily::V4 };
                PoolRequest::from_defaults(space, family).with_exclude(self.host_exclusions())
            }
            p => {
                let net = subnet(CALL, "Pool", p)?;
                if net.addr().is_ipv6() != req.v6 {
                    return Err(ServerError::request(
                        CALL,
                        "Pool",
                        p,
                        if req.v6 {
                            "an IPv6 pool was asked for (V6)"
                        } else {
                            "an IPv4 pool was asked for"
                        },
                    ));
                }
                PoolRequest::new(space, net)
            }
        };
        if !req.sub_pool.is_empty() {
            pr = pr.with_ip_range(subnet(CALL, "SubPool", &req.sub_pool)?);
        }
        // Options (--ipam-opt) have no meaning to berth's allocator: kept by dockerd, unused,
        // as Docker's default IPAM driver has them.
        let id = self.ipam().request_pool(&pr)?;
        let key = id.to_string();
        if let Err(e) = self.records.put(&pool_key(&key), &key) {
            let _ = self.ipam().release_pool(&id);
            return Err(e);
        }
        tracing::info!(plugin = %self.name, pool = %key, "pool given");
        encode(&RequestPoolResponse {
            error: String::new(),
            pool_id: key,
            pool: id.subnet().to_string(),
            data: Default::default(),
        })
    }

    pub(crate) fn release_pool(&self, body: &[u8]) -> ServerResult<Vec<u8>> {
        const CALL: Call = Call::ReleasePool;
        let req: ReleasePoolRequest = decode(CALL, body)?;
        let id = pool_id(CALL, &req.pool_id)?;
        self.ipam().release_pool(&id)?;
        let key = id.to_string();
        self.records
            .delete_with_prefix(&pool_key(&key), &address_prefix(&key))?;
        tracing::info!(plugin = %self.name, pool = %req.pool_id, "pool released");
        encode(&IpamAck::default())
    }

    pub(crate) fn request_address(&self, body: &[u8]) -> ServerResult<Vec<u8>> {
        const CALL: Call = Call::RequestAddress;
        let req: RequestAddressRequest = decode(CALL, body)?;
        let id = pool_id(CALL, &req.pool_id)?;
        let given = match req.address.as_str() {
            "" => None,
            a => Some(
                a.parse::<IpAddr>()
                    .map_err(|_| ServerError::request(CALL, "Address", a, "not an IP address"))?,
            ),
        };
        let gateway = req
            .options
            .get(REQUEST_ADDRESS_TYPE)
            .is_some_and(|t| t == GATEWAY_ADDRESS_TYPE);
        let ask = match (gateway, given) {
            (true, g) => AddressRequest::Gateway(g),
            (false, Some(a)) => AddressRequest::Preferred(a),
            (false, None) => AddressRequest::Next,
        };
        let addr = self.ipam().request_address(&id, ask)?;
        let record = AddressRecord {
            address: addr.addr(),
        };
        if let Err(e) = self
            .records
            .put(&address_key(&id.to_string(), addr.addr()), &record)
        {
            let _ = self.ipam().release_address(&id, addr.addr());
            return Err(e);
        }
        encode(&RequestAddressResponse {
            error: String::new(),
            address: addr.to_string(),
            data: Default::default(),
        })
    }

    pub(crate) fn release_address(&self, body: &[u8]) -> ServerResult<Vec<u8>> {
        const CALL: Call = Call::ReleaseAddress;
        let req: ReleaseAddressRequest = decode(CALL, body)?;
        let id = pool_id(CALL, &req.pool_id)?;
        let addr = req
            .address
            .parse::<IpAddr>()
            .or_else(|_| req.address.parse::<IpNet>().map(|n| n.addr()))
            .map_err(|_| {
                ServerError::request(CALL, "Address", &req.address, "not an IP address")
            })?;
        self.ipam().release_address(&id, addr)?;
        self.records.delete(&address_key(&id.to_string(), addr))?;
        encode(&IpamAck::default())
    }
}

//! The built-in IPAM driver (`default`): berth-ipam's allocator behind
//! [`berth_driver::IpamDriver`], with Docker's default pools or dockerd's
//! `default-address-pools`.

use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use berth_driver::{AddressRequest, AddressSpace, BoxError, IpamDriver, Pool, PoolRequest};
use berth_ipam::{DefaultPool, Ipam, PoolId};
use ipnet::IpNet;

/// The built-in IPAM driver. Its errors are [`berth_ipam::Error`]s (boxed by the contract; the
/// controller unboxes them into [`crate::Error::Ipam`]).
#[derive(Debug, Default)]
pub struct BuiltinIpam {
    ipam: Mutex<Ipam>,
}

impl BuiltinIpam {
    /// With Docker's default pools.
    pub fn new() -> BuiltinIpam {
        BuiltinIpam::default()
    }

    /// With `local` as the local space's default pools (dockerd's `default-address-pools`) and
    /// Docker's global ones.
    pub fn with_default_pools(local: Vec<DefaultPool>) -> BuiltinIpam {
        BuiltinIpam {
            ipam: Mutex::new(Ipam::with_default_pools(
                local,
                DefaultPool::docker_global_defaults(),
            )),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ipam> {
        self.ipam.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn space(s: AddressSpace) -> berth_ipam::AddressSpace {
    match s {
        AddressSpace::Local => berth_ipam::AddressSpace::Local,
        AddressSpace::Global => berth_ipam::AddressSpace::Global,
    }
}

/// The contract's pool request as berth-ipam's allocator takes it, in `space`.
pub(crate) fn allocator_request(
    space: berth_ipam::AddressSpace,
    req: &PoolRequest,
) -> berth_ipam::PoolRequest {
    let mut pr = match req.subnet {
        Some(s) => berth_ipam::PoolRequest::new(space, s),
        None => berth_ipam::PoolRequest::from_defaults(space, req.family)
            .with_exclude(req.exclude.clone()),
    };
    if let Some(r) = req.ip_range {
        pr = pr.with_ip_range(r);
    }
    for (name, addr) in &req.aux_addresses {
        pr = pr.with_aux_address(name.clone(), *addr);
    }
    pr
}

fn pool_of(id: PoolId) -> Pool {
    Pool {
        id: id.to_string(),
        subnet: id.subnet(),
        ip_range: id.range(),
    }
}

impl IpamDriver for BuiltinIpam {
    fn name(&self) -> &'static str {
        "default"
    }

    fn request_pool(&self, req: &PoolRequest) -> Result<Pool, BoxError> {
        // Options it does not know are kept with the network and shown in inspect, with no
        // effect, as Docker's default IPAM driver does (`--ipam-opt`).
        let pr = allocator_request(space(req.space), req);
        Ok(pool_of(self.lock().request_pool(&pr)?))
    }

    fn release_pool(&self, pool: &str) -> Result<(), BoxError> {
        let id: PoolId = pool.parse()?;
        Ok(self.lock().release_pool(&id)?)
    }

    fn request_address(&self, pool: &str, req: AddressRequest) -> Result<IpNet, BoxError> {
        let id: PoolId = pool.parse()?;
        let req = match req {
            AddressRequest::Next => berth_ipam::AddressRequest::Next,
            AddressRequest::Preferred(a) => berth_ipam::AddressRequest::Preferred(a),
            AddressRequest::Gateway(g) => berth_ipam::AddressRequest::Gateway(g),
        };
        Ok(self.lock().request_address(&id, req)?)
    }

    fn release_address(&self, pool: &str, addr: IpAddr) -> Result<(), BoxError> {
        let id: PoolId = pool.parse()?;
        Ok(self.lock().release_address(&id, addr)?)
    }
}

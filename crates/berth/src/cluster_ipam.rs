//! The global address space in the cluster store: the built-in allocator's state for
//! global-scope networks kept under one store key and changed only by compare-and-swap, so that
//! every host sharing the store hands out each subnet and address once.
//!
//! Each request reads the state, applies the change with berth-ipam's allocator (the same rules
//! as the local space: Docker's global default pools, 10.0.0.0/8 split in /24s, reserved and
//! auxiliary addresses, serial allocation), and writes it back on the condition that nobody wrote
//! it in between; a writer that loses the race reads again and retries. One key serialises every
//! global allocation of the cluster: correct and simple, and enough while global networks are
//! created and joined at human rates; a store key per pool would take the contention off
//! address requests on different networks.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_driver::{AddressRequest, AddressSpace, BoxError, IpamDriver, Pool, PoolRequest};
use berth_ipam::{Ipam, PoolId};
use berth_store::{Expect, KvStore};
use ipnet::IpNet;

/// The store key of the global space's allocation state.
pub const GLOBAL_IPAM_KEY: &str = "ipam/global";

/// How many times a request reads and tries again after losing a compare-and-swap.
const MAX_ATTEMPTS: u32 = 200;

/// The `default` IPAM driver of global-scope networks: the global address space kept in a
/// store shared by every host (see the module documentation). Its errors are
/// [`berth_ipam::Error`]s for what the allocator refuses and [`berth_store::Error`]s for what
/// the store does (both boxed by the contract).
pub struct ClusterIpam {
    store: Arc<dyn KvStore>,
}

impl std::fmt::Debug for ClusterIpam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterIpam").finish_non_exhaustive()
    }
}

impl ClusterIpam {
    /// The global space kept in `store` (under [`GLOBAL_IPAM_KEY`]).
    pub fn new(store: Arc<dyn KvStore>) -> ClusterIpam {
        ClusterIpam { store }
    }

    /// Reads the state, applies `change`, and writes the result if nobody wrote in between;
    /// reads again and retries when somebody did. A change the allocator refuses writes nothing.
    fn update<T>(
        &self,
        change: impl Fn(&mut Ipam) -> Result<T, berth_ipam::Error>,
    ) -> Result<T, BoxError> {
        for attempt in 0..MAX_ATTEMPTS {
            let (mut ipam, expect) = match self.store.get(GLOBAL_IPAM_KEY)? {
                Some(e) => {
                    let ipam: Ipam = serde_json::from_slice(&e.value).map_err(|err| {
                        format!("the global address space in the store ({GLOBAL_IPAM_KEY}) is unreadable: {err}")
                    })?;
                    (ipam, Expect::Revision(e.mod_revision))
                }
                None => (Ipam::new(), Expect::Absent),
            };
            let out = change(&mut ipam)?;
            let bytes = serde_json::to_vec(&ipam)?;
            match self
                .store
                .compare_and_swap(GLOBAL_IPAM_KEY, expect, Some(&bytes))
            {
                Ok(_) => return Ok(out),
                Err(berth_store::Error::Conflict { .. }) => {
                    // Another host (or thread) changed the space: back off a little, with jitter,
                    // so that a crowd of writers spreads out.
                    let spread = rand::random::<u64>() % (1 + u64::from(attempt.min(20)) * 200);
                    std::thread::sleep(Duration::from_micros(spread));
                }
                Err(e) => return Err(Box::new(e)),
            }
        }
        Err(format!(
            "the global address space ({GLOBAL_IPAM_KEY}) changed under {MAX_ATTEMPTS} attempts in a row; try again"
        )
        .into())
    }
}

fn pool_of(id: &PoolId) -> Pool {
    Pool {
        id: id.to_string(),
        subnet: id.subnet(),
        ip_range: id.range(),
    }
}

impl IpamDriver for ClusterIpam {
    fn name(&self) -> &'static str {
        "default"
    }

    fn keeps_state(&self) -> bool {
        true
    }

    fn request_pool(&self, req: &PoolRequest) -> Result<Pool, BoxError> {
        if req.space != AddressSpace::Global {
            return Err("the cluster's address space serves global-scope networks only".into());
        }
        // Unknown options are kept with the network, with no effect (as the local one).
        let pr = crate::ipam::allocator_request(berth_ipam::AddressSpace::Global, req);
        let id = self.update(|ipam| ipam.request_pool(&pr))?;
        Ok(pool_of(&id))
    }

    fn release_pool(&self, pool: &str) -> Result<(), BoxError> {
        let id: PoolId = pool.parse()?;
        self.update(|ipam| ipam.release_pool(&id))
    }

    fn request_address(&self, pool: &str, req: AddressRequest) -> Result<IpNet, BoxError> {
        let id: PoolId = pool.parse()?;
        let req = match req {
            AddressRequest::Next => berth_ipam::AddressRequest::Next,
            AddressRequest::Preferred(a) => berth_ipam::AddressRequest::Preferred(a),
            AddressRequest::Gateway(g) => berth_ipam::AddressRequest::Gateway(g),
        };
        self.update(|ipam| ipam.request_address(&id, req))
    }

    fn release_address(&self, pool: &str, addr: IpAddr) -> Result<(), BoxError> {
        let id: PoolId = pool.parse()?;
        self.update(|ipam| ipam.release_address(&id, addr))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use berth_driver::IpFamily;
    use berth_store::MemoryStore;
    use std::collections::BTreeSet;

    #[test]
    fn two_allocators_on_one_store_never_hand_out_a_subnet_or_address_twice() {
        let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let a = ClusterIpam::new(store.clone());
        let b = ClusterIpam::new(store.clone());
        let next = PoolRequest::next(AddressSpace::Global, IpFamily::V4);
        let pa = a.request_pool(&next).unwrap();
        let pb = b.request_pool(&next).unwrap();
        assert_eq!(pa.subnet.to_string(), "10.0.0.0/24");
        assert_eq!(pb.subnet.to_string(), "10.0.1.0/24");
        // A subnet given on one host overlaps what the other took.
        let given = PoolRequest::subnet(AddressSpace::Global, "10.0.0.128/25".parse().unwrap());
        let err = b.request_pool(&given).unwrap_err();
        assert!(
            matches!(
                err.downcast_ref::<berth_ipam::Error>(),
                Some(berth_ipam::Error::PoolOverlap { .. })
            ),
            "{err}"
        );
        // Many threads on both allocators, one pool: every address once.
        let taken: Vec<IpNet> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let ipam = if i % 2 == 0 { &a } else { &b };
                    let pool = pa.id.clone();
                    s.spawn(move || {
                        (0..25)
                            .map(|_| ipam.request_address(&pool, AddressRequest::Next).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let distinct: BTreeSet<IpNet> = taken.iter().copied().collect();
        assert_eq!(distinct.len(), 200, "an address was handed out twice");
        // Released on one host, the address is free on the other.
        let one = taken[0].addr();
        a.release_address(&pa.id, one).unwrap();
        assert_eq!(
            b.request_address(&pa.id, AddressRequest::Preferred(one))
                .unwrap()
                .addr(),
            one
        );
        // A refused request writes nothing.
        let before = store.get(GLOBAL_IPAM_KEY).unwrap().unwrap().mod_revision;
        assert!(
            a.request_address(&pa.id, AddressRequest::Preferred(one))
                .is_err()
        );
        assert_eq!(
            store.get(GLOBAL_IPAM_KEY).unwrap().unwrap().mod_revision,
            before
        );
        b.release_pool(&pa.id).unwrap();
        assert_eq!(
            a.request_pool(&next).unwrap().subnet.to_string(),
            "10.0.0.0/24"
        );
    }

    #[test]
    fn the_local_space_is_refused() {
        let ipam = ClusterIpam::new(Arc::new(MemoryStore::new()));
        let err = ipam
            .request_pool(&PoolRequest::next(AddressSpace::Local, IpFamily::V4))
            .unwrap_err();
        assert!(err.to_string().contains("global-scope"), "{err}");
    }
}

//! Unit tests of every rule of the allocator and of the parsers, by responsibility: `pools`,
//! `addresses`, `state` (serialisation) and `parsing`; the shared helpers are here.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::*;

mod addresses;
mod parsing;
mod pools;
mod state;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const L: AddressSpace = AddressSpace::Local;
const G: AddressSpace = AddressSpace::Global;

fn pool(ipam: &mut Ipam, subnet: &str) -> PoolId {
    ipam.request_pool(&PoolRequest::new(L, net(subnet)))
        .unwrap()
}

fn next(ipam: &mut Ipam, id: &PoolId) -> IpAddr {
    ipam.request_address(id, AddressRequest::Next)
        .unwrap()
        .addr()
}

fn auto(ipam: &mut Ipam, space: AddressSpace, family: IpFamily) -> Result<PoolId> {
    ipam.request_pool(&PoolRequest::from_defaults(space, family))
}

#[test]
fn errors_are_send_sync_and_ipam_is_too() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Error>();
    check::<Ipam>();
}

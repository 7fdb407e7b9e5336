//! The remote IPAM adapter against the fake plugin's IPAM (no kernel work): pools asked for in
//! the plugin's address spaces with dockerd's fields; auxiliary addresses reserved with the
//! pool and given back with it; the gateway asked for with dockerd's option, or taken from the
//! pool's data without asking; every release reaching the plugin; failures naming the plugin
//! and the call and leaving nothing allocated in the plugin.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use berth_driver::{AddressRequest, AddressSpace, IpFamily, IpamDriver, PoolRequest};
use berth_plugin::{PluginDirs, RemoteIpamDriver, discover_with};
use common::fake::{FakeNet, Fault};
use common::server::{Reply, Server};
use common::{PLUGIN, quick_config};
use serde_json::json;

fn setup() -> (tempfile::TempDir, Arc<FakeNet>, Server, RemoteIpamDriver) {
    let root = tempfile::tempdir().unwrap();
    let dirs = PluginDirs::under(root.path());
    // An IPAM-only plugin: its network side (and so its kernel work) is never used.
    let fake = FakeNet::implementing("unused", vec!["IpamDriver"]);
    let server = Server::unix(&dirs.sockets.join(format!("{PLUGIN}.sock")), fake.handler());
    let ipam = discover_with(PLUGIN, &dirs, quick_config())
        .unwrap()
        .ipam_driver()
        .unwrap();
    (root, fake, server, ipam)
}

fn taken(fake: &FakeNet) -> Vec<BTreeSet<u32>> {
    fake.state()
        .pools
        .values()
        .map(|p| p.taken.clone())
        .collect()
}

#[test]
fn pools_and_addresses_as_dockerd_asks_for_them() {
    let (_root, fake, server, ipam) = setup();
    assert_eq!(ipam.name(), PLUGIN);
    assert_eq!(ipam.address_spaces(), ("fakelocal", "fakeglobal"));

    let mut req = PoolRequest::subnet(AddressSpace::Local, "10.88.0.0/24".parse().unwrap());
    req.ip_range = Some("10.88.0.128/25".parse().unwrap());
    req.aux_addresses = [("router".to_owned(), "10.88.0.5".parse().unwrap())].into();
    req.options = [("color".to_owned(), "blue".to_owned())].into();
    let pool = ipam.request_pool(&req).unwrap();
    assert_eq!(pool.subnet.to_string(), "10.88.0.0/24");
    assert_eq!(
        server.requests_to("/IpamDriver.RequestPool")[0].json(),
        json!({"AddressSpace": "fakelocal", "Pool": "10.88.0.0/24", "SubPool": "10.88.0.128/25",
               "Options": {"color": "blue"}, "V6": false})
    );
    // The auxiliary address is reserved in the plugin with the pool.
    assert_eq!(
        server.requests_to("/IpamDriver.RequestAddress")[0].json(),
        json!({"PoolID": pool.id, "Address": "10.88.0.5", "Options": null})
    );
    assert_eq!(taken(&fake), [BTreeSet::from([5])]);

    let gw = ipam
        .request_address(&pool.id, AddressRequest::Gateway(None))
        .unwrap();
    assert_eq!(gw.to_string(), "10.88.0.1/24");
    assert_eq!(
        server.requests_to("/IpamDriver.RequestAddress")[1].json(),
        json!({"PoolID": pool.id, "Address": "",
               "Options": {"RequestAddressType": "com.docker.network.gateway"}})
    );
    let next = ipam
        .request_address(&pool.id, AddressRequest::Next)
        .unwrap();
    assert_eq!(next.to_string(), "10.88.0.2/24");
    let nine: std::net::IpAddr = "10.88.0.9".parse().unwrap();
    let preferred = ipam
        .request_address(&pool.id, AddressRequest::Preferred(nine))
        .unwrap();
    assert_eq!(preferred.addr(), nine);
    assert_eq!(taken(&fake), [BTreeSet::from([1, 2, 5, 9])]);
    ipam.release_address(&pool.id, nine).unwrap();
    ipam.release_address(&pool.id, next.addr()).unwrap();
    assert_eq!(
        server.requests_to("/IpamDriver.ReleaseAddress")[0].json(),
        json!({"PoolID": pool.id, "Address": "10.88.0.9"})
    );
    // Releasing the pool gives back its auxiliary address and gateway first.
    let before = server.requests().len();
    ipam.release_pool(&pool.id).unwrap();
    assert_eq!(
        server.paths()[before..],
        [
            "/IpamDriver.ReleaseAddress",
            "/IpamDriver.ReleaseAddress",
            "/IpamDriver.ReleasePool"
        ]
    );
    assert!(fake.state().pools.is_empty());

    // A global network's pool comes from the plugin's global space; a gateway the plugin gives
    // in the pool's data is taken without asking for one.
    fake.fail_next(
        "/IpamDriver.RequestPool",
        Fault::Rewrite(Arc::new(|mut v| {
            v["Data"] = json!({"com.docker.network.gateway": "10.77.0.254/24"});
            Reply::Json(200, v)
        })),
    );
    let pool = ipam
        .request_pool(&PoolRequest::next(AddressSpace::Global, IpFamily::V4))
        .unwrap();
    assert_eq!(
        server.requests_to("/IpamDriver.RequestPool")[1].json()["AddressSpace"],
        "fakeglobal"
    );
    let before = server.requests().len();
    let gw = ipam
        .request_address(&pool.id, AddressRequest::Gateway(None))
        .unwrap();
    assert_eq!(gw.to_string(), "10.77.0.254/24");
    assert_eq!(server.requests().len(), before, "no call for that gateway");
    ipam.release_pool(&pool.id).unwrap();
    assert!(fake.state().pools.is_empty());
}

#[test]
fn failures_name_the_call_and_leave_nothing_allocated() {
    let (_root, fake, _server, ipam) = setup();
    // The plugin refuses an IPv6 pool.
    let e = ipam
        .request_pool(&PoolRequest::next(AddressSpace::Local, IpFamily::V6))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        r#"plugin "fakenet" IpamDriver.RequestPool: HTTP status 500: fakenet has no IPv6 pools"#
    );
    // An auxiliary address the plugin cannot give: the pool is given back.
    fake.fail_next(
        "/IpamDriver.RequestAddress",
        Fault::Err(500, "address in use".into()),
    );
    let mut req = PoolRequest::subnet(AddressSpace::Local, "10.88.0.0/24".parse().unwrap());
    req.aux_addresses = [("a".to_owned(), "10.88.0.5".parse().unwrap())].into();
    let e = ipam.request_pool(&req).unwrap_err().to_string();
    assert_eq!(
        e,
        r#"plugin "fakenet" IpamDriver.RequestAddress: HTTP status 500: address in use"#
    );
    assert!(fake.state().pools.is_empty(), "{:?}", fake.state());
    // Another address than the auxiliary one asked for: given back, refused, pool released.
    fake.fail_next(
        "/IpamDriver.RequestAddress",
        Fault::Rewrite(Arc::new(|_| {
            Reply::Json(200, json!({"Address": "10.88.0.6/24"}))
        })),
    );
    let e = ipam.request_pool(&req).unwrap_err().to_string();
    assert!(
        e.contains("auxiliary address a=10.88.0.5 was asked for, 10.88.0.6 was given"),
        "{e}"
    );
    assert!(fake.state().pools.is_empty(), "{:?}", fake.state());
    // An answer outside the pool is given back and refused.
    let pool = ipam
        .request_pool(&PoolRequest::next(AddressSpace::Local, IpFamily::V4))
        .unwrap();
    fake.fail_next(
        "/IpamDriver.RequestAddress",
        Fault::Rewrite(Arc::new(|_| {
            Reply::Json(200, json!({"Address": "10.77.1.2/16"}))
        })),
    );
    let e = ipam
        .request_address(&pool.id, AddressRequest::Next)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        r#"plugin "fakenet" IpamDriver.RequestAddress: unusable answer: Address "10.77.1.2/16": not in the pool 10.77.0.0/24"#
    );
    ipam.release_pool(&pool.id).unwrap();
    assert!(fake.state().pools.is_empty());
}

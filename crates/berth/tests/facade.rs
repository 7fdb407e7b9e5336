//! One dependency is enough: what an engine needs is reachable through `berth` alone (no root
//! needed here; the kernel tests use the same names).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

/// An engine's own driver and store, named through the facade only.
#[allow(dead_code)]
fn engine_parts(
    config: berth::Config,
    driver: Arc<dyn berth::Driver>,
    ipam: Arc<dyn berth::IpamDriver>,
    store: Arc<dyn berth::KvStore>,
) -> berth::ControllerBuilder {
    let _: Option<berth::Netns> = None;
    let _: fn(&dyn berth::Driver) -> berth::Capabilities = |d| d.capabilities();
    let _: Vec<berth::DefaultPool> = config.default_address_pools.clone().unwrap_or_default();
    let _: Option<berth::DriftReport> = None;
    berth::Controller::builder(config)
        .driver_arc(driver)
        .ipam(ipam)
        .store(store.clone())
        .cluster_store(Arc::new(berth::MemoryStore::new()))
}

#[test]
fn the_store_locked_error_is_matched_through_the_facade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.redb");
    let _first = berth::RedbStore::open(&path).unwrap();
    match berth::RedbStore::open(&path) {
        Err(berth::StoreError::Locked { path: p }) => assert_eq!(p, path),
        other => panic!("expected Locked, got {other:?}"),
    }
}

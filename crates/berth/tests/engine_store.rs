//! A controller whose state lives in a store the engine gives (`ControllerBuilder::store`), as
//! root in throwaway namespaces: nothing is written under the data root's redb file, sandboxes
//! talk, and a new controller on the same store takes everything back after a restart.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use berth::{Controller, NetworkCreate};
use berth_store::{KvStore, MemoryStore};
use berth_testhost::TestHost;
use common::*;

#[test]
fn a_controller_on_the_engines_store_keeps_its_state_there() {
    let host = TestHost::new().unwrap();
    let dir = StateDir::new().unwrap();
    let store = Arc::new(MemoryStore::new());
    let start = || {
        Controller::builder(Fixture::config_for(&host, &dir))
            .store(store.clone())
            .build()
            .unwrap()
    };
    let ctl = start();
    ctl.create_network(NetworkCreate::new("mem_nw")).unwrap();
    let mut ips = Vec::new();
    for name in ["a", "b"] {
        let mut req = berth::SandboxCreate::new(name);
        req.network = Some("mem_nw".into());
        ctl.create_sandbox(req).unwrap();
        ips.push(
            ctl.inspect_sandbox(name).unwrap().networks["mem_nw"]
                .ip_address
                .clone(),
        );
    }
    let ping = |ctl: &Controller, from: &str, to: &str| {
        berth_testhost::ping_in(&ctl.sandbox_netns(from).unwrap(), to)
    };
    assert!(ping(&ctl, "a", &ips[1]));
    assert!(
        !Fixture::config_for(&host, &dir).store_path().exists(),
        "no redb file"
    );
    assert!(!store.list("network/").unwrap().entries.is_empty());
    assert!(!store.list("sandbox/").unwrap().entries.is_empty());

    // A restart on the same store takes everything back.
    drop(ctl);
    let ctl = start();
    assert_eq!(
        ctl.inspect_sandbox("b").unwrap().networks["mem_nw"].ip_address,
        ips[1]
    );
    assert!(ping(&ctl, "b", &ips[0]));
    for n in ["a", "b"] {
        ctl.remove_sandbox(n).unwrap();
    }
    ctl.remove_network("mem_nw").unwrap();
    assert!(store.list("sandbox/").unwrap().entries.is_empty());
    assert!(store.list("endpoint/").unwrap().entries.is_empty());
}

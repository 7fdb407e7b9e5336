//! Concurrent creates of networks that name the same bridge, as root in throwaway namespaces:
//! exactly one gets the bridge, the others fail with `DriverError::Exists`, nothing is left
//! half-made, and a claim is given back when its network is deleted or its creation fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Barrier;

use berth_bridge::{BRIDGE_NAME, BridgeDefaults, BridgeDriver};
use berth_driver::{DriverError, NetworkDriver};
use common::*;

const THREADS: u8 = 8;

#[test]
fn concurrent_creates_on_one_bridge_name_give_it_to_exactly_one() {
    let host = host();
    let driver = BridgeDriver::new(host.netns(), None, BridgeDefaults::default()).unwrap();
    let nets: Vec<_> = (0..THREADS).map(|i| network(0x60 + i, 60 + i)).collect();
    let start = Barrier::new(usize::from(THREADS));
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = nets
            .iter()
            .map(|net| {
                let (driver, start) = (&driver, &start);
                s.spawn(move || {
                    start.wait();
                    try_create(driver, net, &[(BRIDGE_NAME, "br-shared")])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let winners: Vec<usize> = (0..results.len()).filter(|i| results[*i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one create succeeds: {results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, DriverError::Exists(_)), "{e:?}");
            assert!(e.to_string().contains("br-shared"), "{e}");
        }
    }
    let winner = &nets[winners[0]];
    // Only the winner's gateway is on the bridge; the losers added nothing anywhere.
    assert_eq!(
        ipv4_addrs(&host, "br-shared"),
        vec![format!("{}/24", gateway_of(winner))]
    );
    assert_eq!(link_names(&host), vec!["lo", "br-shared"]);
    for (i, net) in nets.iter().enumerate() {
        assert_eq!(
            driver.bridge_of(&net.id).is_some(),
            i == winners[0],
            "network {i} known to the driver"
        );
    }
    let (sb, ep) = join(&driver, winner, 1);
    assert!(berth_testhost::ping_in(sb.netns(), &gateway_of(winner)));
    tear_down(&driver, winner, &[&ep]);
    assert_eq!(
        link_names(&host),
        vec!["lo"],
        "the bridge went with its network"
    );

    // The name is free again once its network is gone.
    let loser = &nets[(winners[0] + 1) % nets.len()];
    create(&driver, loser, &[(BRIDGE_NAME, "br-shared")]);
    driver.delete_network(&loser.id).unwrap();
}

#[test]
fn a_failed_create_gives_its_bridge_name_back() {
    let host = host();
    let driver = BridgeDriver::new(host.netns(), None, BridgeDefaults::default()).unwrap();
    // The name is taken by a link that is not a bridge: the create fails after its claim.
    host.ip(&[
        "link",
        "add",
        "br-taken",
        "type",
        "veth",
        "peer",
        "name",
        "taken-peer",
    ])
    .unwrap();
    let first = network(0x70, 70);
    let e = try_create(&driver, &first, &[(BRIDGE_NAME, "br-taken")]).unwrap_err();
    assert!(matches!(e, DriverError::InvalidConfig(_)), "{e:?}");
    host.ip(&["link", "del", "br-taken"]).unwrap();
    // Another network may now have it.
    let second = network(0x71, 71);
    create(&driver, &second, &[(BRIDGE_NAME, "br-taken")]);
    assert_eq!(ipv4_addrs(&host, "br-taken"), vec!["10.71.0.1/24"]);
    driver.delete_network(&second.id).unwrap();
    assert_eq!(link_names(&host), vec!["lo"]);
}

//! A sandbox is named to the bridge driver by its network namespace (a path and, usually, a
//! descriptor), as root in throwaway namespaces: a join by the path alone works, the descriptor
//! wins over a path that names something else, and a sandbox whose namespace cannot be opened
//! is refused with an error naming it, before anything is made.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::fd::AsFd;
use std::path::Path;

use berth_bridge::{BridgeDefaults, BridgeDriver, host_veth_name};
use berth_driver::{
    DriverError, EndpointId, JoinRequest, NetnsRef, NetworkDriver, SandboxId, SandboxRef,
};
use common::{host as host_ns, *};

fn join(
    driver: &BridgeDriver,
    net: &berth_driver::NetworkSpec,
    endpoint: &EndpointId,
    netns: NetnsRef<'_>,
) -> berth_driver::Result<berth_driver::JoinInfo> {
    driver.join(&JoinRequest {
        network: &net.id,
        endpoint,
        sandbox: SandboxRef {
            id: &SandboxId::from_bytes([0x5b; 32]),
            netns,
        },
        ifname: "eth0",
    })
}

#[test]
fn a_sandbox_is_joined_by_its_namespace_path_or_descriptor() {
    let host = host_ns();
    let driver = BridgeDriver::new(host.netns(), None, BridgeDefaults::default()).unwrap();
    let net = network(0x51, 91);
    create(&driver, &net, &[]);

    // By the path alone.
    let a = host_ns();
    let ep_a = create_endpoint(&driver, &net, 1);
    let path_a = a.path();
    join(
        &driver,
        &net,
        &ep_a,
        NetnsRef {
            path: &path_a,
            fd: None,
        },
    )
    .unwrap();
    assert!(link_exists(&a, "eth0"), "eth0 in the sandbox named by path");

    // By descriptor: the path (here another sandbox's) only names it in messages.
    let b = host_ns();
    let ep_b = create_endpoint(&driver, &net, 2);
    join(
        &driver,
        &net,
        &ep_b,
        NetnsRef {
            path: &path_a,
            fd: Some(b.netns().as_fd()),
        },
    )
    .unwrap();
    assert!(
        link_exists(&b, "eth0"),
        "eth0 in the sandbox of the descriptor"
    );
    assert!(
        berth_testhost::ping_in(b.netns(), &addr_of(&net, 1)),
        "the two sandboxes reach each other over the bridge"
    );

    // A namespace that cannot be opened: refused, naming the sandbox, and nothing is made.
    let ep_c = create_endpoint(&driver, &net, 3);
    let gone = Path::new("/run/netns/berth-no-such-sandbox");
    let err = join(
        &driver,
        &net,
        &ep_c,
        NetnsRef {
            path: gone,
            fd: None,
        },
    )
    .unwrap_err();
    match &err {
        DriverError::Kernel { .. } => {
            let text = err.to_string();
            assert!(
                text.contains("berth-no-such-sandbox") && text.contains("sandbox 5b5b5b"),
                "{text}"
            );
        }
        other => panic!("a missing namespace must be a kernel error naming it: {other:?}"),
    }
    assert!(
        !link_exists(&host, &host_veth_name(&ep_c)),
        "no veth is left behind for the refused join"
    );

    tear_down(&driver, &net, &[&ep_a, &ep_b, &ep_c]);
}

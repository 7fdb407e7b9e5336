//! `EndpointOptions::ifname`: the caller names the sandbox's interface (a CNI runtime's
//! `CNI_IFNAME`); bad or taken names are refused before anything is made.
#![allow(clippy::unwrap_used)]

mod common;

use berth::{EndpointOptions, Error, NetworkCreate, SandboxCreate};
use common::Fixture;

fn named(ifname: &str) -> EndpointOptions {
    EndpointOptions {
        ifname: Some(ifname.into()),
        ..Default::default()
    }
}

#[test]
fn the_caller_names_the_interface() {
    let f = Fixture::new();
    for n in ["a_nw", "b_nw"] {
        f.ctl().create_network(NetworkCreate::new(n)).unwrap();
    }
    f.ctl().create_sandbox(SandboxCreate::new("one")).unwrap();
    f.ctl().connect("one", "a_nw", named("net1")).unwrap();
    f.sandbox_on("two", "a_nw");

    let links = f
        .sandbox_ns("one")
        .command("ip")
        .args(["-br", "addr", "show", "net1"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout).into_owned();
    let ip = f.ip_of("one", "a_nw");
    assert!(links.contains(&ip), "net1 carries the address: {links}");
    assert!(f.ping("two", &ip), "traffic reaches it");

    let before = f.ctl().inspect_sandbox("one").unwrap().networks.len();
    for (bad, why) in [
        ("net1", "already used"),
        ("lo", "already used"),
        ("bad/name", "interface name"),
        ("a-name-longer-than-fifteen", "interface name"),
    ] {
        let err = f.ctl().connect("one", "b_nw", named(bad)).unwrap_err();
        assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
        assert!(err.to_string().contains(why), "{bad}: {err}");
    }
    assert_eq!(
        f.ctl().inspect_sandbox("one").unwrap().networks.len(),
        before
    );
    // The default name skips the one taken.
    f.ctl()
        .connect("one", "b_nw", EndpointOptions::default())
        .unwrap();
    let all = f
        .sandbox_ns("one")
        .command("ip")
        .args(["-br", "link"])
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&all.stdout).into_owned();
    assert!(all.contains("net1") && all.contains("eth0"), "{all}");
}

//! The embedded DNS server wired into the controller: names and aliases on user-defined networks,
//! none on the default bridge, and the sandbox's hosts/resolv.conf files.
#![allow(clippy::unwrap_used)]

mod common;

use berth::{EndpointOptions, NetworkCreate, SandboxCreate};
use common::Fixture;

#[test]
fn names_resolve_on_user_networks_only() {
    let f = Fixture::new();
    f.ctl()
        .create_network(NetworkCreate::new("isolated_nw"))
        .unwrap();
    for name in ["container3", "container4"] {
        let mut req = SandboxCreate::new(name);
        req.network = Some("isolated_nw".into());
        req.endpoint = EndpointOptions {
            aliases: vec![format!("{name}-alias")],
            ..Default::default()
        };
        f.ctl().create_sandbox(req).unwrap();
    }
    let ip4 = f.ip_of("container4", "isolated_nw");
    assert_eq!(f.dig("container3", "container4"), ip4);
    assert_eq!(f.dig("container3", "CONTAINER4.isolated_nw"), ip4);
    assert_eq!(f.dig("container3", "container4-alias"), ip4);

    // The files: embedded server on user networks, the sandbox's own line in hosts.
    let insp = f.ctl().inspect_sandbox("container3").unwrap();
    let resolv = std::fs::read_to_string(insp.resolv_conf_path.unwrap()).unwrap();
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");
    assert!(resolv.contains("options ndots:0"), "{resolv}");
    let hosts = std::fs::read_to_string(insp.hosts_path.unwrap()).unwrap();
    let own = f.ip_of("container3", "isolated_nw");
    assert!(
        hosts.contains(&format!("{own}\t{}", &insp.id[..12])),
        "{hosts}"
    );

    // Disconnect: the name is gone at once.
    f.ctl().disconnect("container4", "isolated_nw").unwrap();
    // (An unknown name is forwarded upstream, which nothing answers in a test host.)
    let answer = f.dig("container3", "container4");
    assert!(!answer.contains(&ip4), "{answer}");
    assert_eq!(f.dig("container3", "container3-alias"), own);

    // The default bridge has no embedded DNS: no names there, resolv.conf is the host's.
    f.sandbox_on("b1", "bridge");
    let insp = f.ctl().inspect_sandbox("b1").unwrap();
    let resolv = std::fs::read_to_string(insp.resolv_conf_path.unwrap()).unwrap();
    assert!(!resolv.contains("127.0.0.11"), "{resolv}");
    let answer = f.dig("b1", "container3");
    assert!(
        !answer.contains(&own),
        "no name service on the default bridge: {answer}"
    );

    // Removing a sandbox removes its files.
    let dir = std::path::PathBuf::from(insp.sandbox_key.clone());
    let hosts = f.ctl().inspect_sandbox("b1").unwrap().hosts_path.unwrap();
    f.ctl().remove_sandbox("b1").unwrap();
    assert!(!std::path::Path::new(&hosts).exists());
    assert!(!dir.exists());
}

/// A test host has no route out, so the upstream taken from the machine's resolv.conf is
/// unreachable: the host answers the forward with an ICMP "network unreachable" (at most about
/// once a second per sandbox, the kernel's rate limit). Every query for an unknown name must get
/// its SERVFAIL at once, not after the 2 s upstream timeout.
#[test]
fn unknown_names_fail_fast_without_a_route_out() {
    let f = Fixture::new();
    f.ctl().create_network(NetworkCreate::new("nw")).unwrap();
    f.sandbox_on("c1", "nw");
    let route = f
        .host
        .command("ip")
        .args(["route", "get", "192.0.2.1"])
        .output()
        .unwrap();
    assert!(
        !route.status.success(),
        "the test host must have no route out"
    );
    let mut slowest = std::time::Duration::ZERO;
    for i in 0..12 {
        let t = std::time::Instant::now();
        let out = f
            .sandbox_ns("c1")
            .command("dig")
            .args(["+time=4", "+tries=1", "@127.0.0.11"])
            .arg(format!("unknown-{i}.example"))
            .output()
            .unwrap();
        let took = t.elapsed();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("status: SERVFAIL"), "query {i}: {text}");
        slowest = slowest.max(took);
    }
    println!("slowest of 12 unknown names: {slowest:?}");
    assert!(
        slowest < std::time::Duration::from_millis(1000),
        "an unknown name waited {slowest:?} for an unreachable upstream"
    );
}

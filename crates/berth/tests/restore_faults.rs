//! A restart that meets a transient error opening a sandbox's namespace, and one that cannot
//! restore an endpoint, as root in throwaway namespaces: start-up goes on, the sandbox hit by
//! the transient error is kept (records and namespace) and comes back at the next start, the
//! endpoint that failed is rolled back with its published port. Fail points make the errors
//! (armed once per process: this file holds one test).

#![allow(clippy::unwrap_used)]

mod common;

use berth::{IpamPoolConfig, NetworkCreate, SandboxCreate};
use common::*;

#[test]
fn transient_errors_on_restart_keep_sandboxes_and_do_not_stop_the_start() {
    // Armed before any controller exists in this process (the only test here): the first pass
    // of each point fails, one sandbox's namespace open and one endpoint's restore.
    assert!(berth::failpoint::arm(
        "restore.netns_open=error@1,restore.endpoint=error@1"
    ));
    let mut f = Fixture::new();
    let mut req = NetworkCreate::new("app_nw");
    req.ipam.push(IpamPoolConfig {
        subnet: Some("10.96.0.0/24".parse().unwrap()),
        ..Default::default()
    });
    f.ctl().create_network(req).unwrap();
    for (name, port) in [("a", "18081:80/tcp"), ("b", "18082:80/tcp")] {
        let mut req = SandboxCreate::new(name);
        req.network = Some("app_nw".into());
        req.endpoint.ports = vec![port.parse().unwrap()];
        f.ctl().create_sandbox(req).unwrap();
    }
    let ids: Vec<(String, String)> = ["a", "b"]
        .iter()
        .map(|n| (n.to_string(), f.ctl().inspect_sandbox(n).unwrap().id))
        .collect();

    // Restart 1: both errors fire; the controller starts all the same.
    f.restart();
    let listed: Vec<String> = f.ctl().sandboxes().into_iter().map(|s| s.name).collect();
    assert_eq!(listed.len(), 1, "one sandbox kept aside: {listed:?}");
    let (kept_name, kept_id) = ids.iter().find(|(n, _)| !listed.contains(n)).unwrap();
    let (other, _) = ids.iter().find(|(n, _)| listed.contains(n)).unwrap();
    assert!(
        f.netns_dir().join(kept_id).exists(),
        "the kept sandbox's namespace is not deleted"
    );
    let other_insp = f.ctl().inspect_sandbox(other).unwrap();
    assert!(
        other_insp.networks.is_empty(),
        "its endpoint could not be restored and was rolled back"
    );
    let other_port = if other == "a" { "18081" } else { "18082" };
    let kept_port = if other == "a" { "18082" } else { "18081" };
    let rules = f.iptables_save();
    assert!(
        !rules.contains(other_port),
        "no rule for a rolled-back endpoint:\n{rules}"
    );

    // Restart 2: nothing fails; the kept sandbox is back with its endpoint, port and traffic.
    f.restart();
    let back = f.ctl().inspect_sandbox(kept_name).unwrap();
    assert!(back.networks.contains_key("app_nw"), "{back:?}");
    assert!(f.iptables_save().contains(kept_port));
    assert!(f.ping(kept_name, "10.96.0.1"));
}

//! `Controller::teardown`, as root in throwaway namespaces: after a controller made networks,
//! sandboxes (one in a namespace it adopted), published ports, an IPv6 network and the default
//! bridge, its teardown leaves the host namespace as it was before the controller started:
//! links, addresses, firewall rules and chains, the FORWARD policy, the forwarding sysctls and
//! the mounts under the exec root. For both firewall backends. A rule the user put in
//! DOCKER-USER stays, with its jump.

#![allow(clippy::unwrap_used)]

mod common;

use berth::{
    Controller, EndpointOptions, FirewallBackend, IpamPoolConfig, NetworkCreate, SandboxCreate,
    SandboxNetns,
};
use berth_testhost::{StateDir, TestHost};

fn snapshot(host: &TestHost, exec_root: &std::path::Path) -> Vec<String> {
    host.state_snapshot(exec_root).unwrap()
}

fn busy_controller(
    host: &TestHost,
    dir: &StateDir,
    backend: FirewallBackend,
    outside: &TestHost,
) -> Controller {
    let mut config = common::Fixture::config_for(host, dir);
    config.firewall = Some(backend);
    let ctl = Controller::new(config).unwrap();
    ctl.create_network(NetworkCreate::new("front")).unwrap();
    let mut v6 = NetworkCreate::new("six").subnet(IpamPoolConfig {
        subnet: Some("fd00:77::/64".parse().unwrap()),
        ..Default::default()
    });
    v6.enable_ipv6 = true;
    ctl.create_network(v6).unwrap();
    let mut web = SandboxCreate::new("web");
    web.network = Some("front".into());
    web.endpoint.ports = vec!["8080:80".parse().unwrap()];
    ctl.create_sandbox(web).unwrap();
    ctl.connect("web", "six", EndpointOptions::default())
        .unwrap();
    let mut def = SandboxCreate::new("old");
    def.network = Some("bridge".into());
    ctl.create_sandbox(def).unwrap();
    let mut adopted = SandboxCreate::new("adopted");
    adopted.netns = SandboxNetns::Adopt(outside.path());
    ctl.create_sandbox(adopted).unwrap();
    ctl.connect("adopted", "front", EndpointOptions::default())
        .unwrap();
    assert!(host.ip(&["link", "show", "docker0"]).is_ok());
    ctl
}

fn leaves_the_host_as_it_was(backend: FirewallBackend) {
    let host = TestHost::new().unwrap();
    let outside = TestHost::new().unwrap();
    let dir = StateDir::new().unwrap();
    let exec_root = dir.path().join("run");
    let before = snapshot(&host, &exec_root);
    let ctl = busy_controller(&host, &dir, backend, &outside);
    let during = snapshot(&host, &exec_root);
    assert_ne!(before, during, "the controller changed the host");
    let report = ctl.teardown().unwrap();
    eprintln!("{report:#?}");
    assert_eq!(report.sandboxes.len(), 3, "{report:?}");
    assert!(report.networks.iter().any(|n| n == "bridge"), "{report:?}");
    assert!(
        report.restored.iter().any(|r| r == "net.ipv4.ip_forward=0"),
        "{report:?}"
    );
    let after = snapshot(&host, &exec_root);
    assert_eq!(after, before, "the host as it was ({backend:?})");
    assert!(outside.path().exists(), "the adopted namespace stays");
    assert!(
        outside.ip(&["link", "show", "eth0"]).is_err(),
        "without berth's interface"
    );
    // A later start begins afresh.
    let mut config = common::Fixture::config_for(&host, &dir);
    config.firewall = Some(backend);
    let ctl = Controller::new(config).unwrap();
    assert!(ctl.inspect_sandbox("web").is_err());
    assert!(ctl.inspect_network("front").is_err());
    ctl.teardown().unwrap();
    assert_eq!(snapshot(&host, &exec_root), before, "again");
}

#[test]
fn teardown_leaves_the_host_as_it_was_iptables() {
    leaves_the_host_as_it_was(FirewallBackend::Iptables);
}

#[test]
fn teardown_leaves_the_host_as_it_was_nftables() {
    leaves_the_host_as_it_was(FirewallBackend::Nftables);
}

#[test]
fn the_users_docker_user_rule_stays_with_its_jump() {
    let host = TestHost::new().unwrap();
    let dir = StateDir::new().unwrap();
    let ctl = Controller::new(common::Fixture::config_for(&host, &dir)).unwrap();
    host.run(
        "iptables",
        &["-I", "DOCKER-USER", "-s", "198.51.100.7", "-j", "DROP"],
    )
    .unwrap();
    let report = ctl.teardown().unwrap();
    assert!(
        report
            .firewall
            .iter()
            .any(|l| l.contains("DOCKER-USER kept")),
        "{report:?}"
    );
    let rules = host.run("iptables", &["-S"]).unwrap();
    assert!(
        rules.contains("-A DOCKER-USER -s 198.51.100.7/32 -j DROP"),
        "{rules}"
    );
    assert!(rules.contains("-A FORWARD -j DOCKER-USER"), "{rules}");
    assert!(!rules.contains("BERTH"), "{rules}");
}

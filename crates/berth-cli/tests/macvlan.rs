//! `berth network create -d macvlan` through the daemon: the built-in driver found by its name, a
//! sandbox with its own address on the LAN reached from a LAN peer, `-p` accepted and ignored
//! with Docker's warning, Docker's refusal of a second network on the same parent, and nothing
//! left after the removal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Fixture;

#[test]
fn macvlan_through_the_daemon() {
    let f = Fixture::new();
    let lan = f
        .host
        .add_lan_peer("192.168.61.254/24", "192.168.61.1/24")
        .unwrap();
    let parent = lan.host_interface().to_owned();
    let links_before = f.host.ip(&["-br", "link"]).unwrap();

    f.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "192.168.61.0/24",
        "--gateway",
        "192.168.61.1",
        "--ip-range",
        "192.168.61.64/26",
        "-o",
        &format!("parent={parent}"),
        "mv",
    ]);
    let driver = f.ok(&["network", "inspect", "-f", "{{.Driver}}", "mv"]);
    assert_eq!(driver.trim(), "macvlan");
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "onlan",
        "--network",
        "mv",
        "-p",
        "8080:80",
    ]);
    let ip = f.ip_of("onlan", "mv");
    assert!(ip.starts_with("192.168.61."), "{ip}");
    let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
    assert!((64..128).contains(&last), "from the ip-range: {ip}");
    assert!(
        lan.ping(&ip),
        "the LAN peer reaches the sandbox on its own address"
    );
    assert!(
        f.ping("onlan", "192.168.61.1"),
        "and the sandbox its gateway"
    );
    // -p is ignored, as Docker does: nothing published, Docker's warning in the log.
    let ports = f.ok(&["sandbox", "inspect", "-f", "{{json .Ports}}", "onlan"]);
    assert_eq!(ports.trim(), "{}", "nothing published");
    assert!(
        f.log()
            .contains("macvlan driver does not support port mappings"),
        "{}",
        f.log()
    );

    // One network per parent, with Docker's message; nothing made by the refusal.
    let err = f.fails(
        &[
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            "192.168.62.0/24",
            "-o",
            &format!("parent={parent}"),
            "mv2",
        ],
        1,
    );
    assert!(
        err.contains(&format!("is already using parent interface {parent}")),
        "{err}"
    );

    f.ok(&["sandbox", "rm", "onlan"]);
    f.ok(&["network", "rm", "mv"]);
    // The parent stays (it is the user's); nothing of berth's is left on it.
    let links_after = f.host.ip(&["-br", "link"]).unwrap();
    let names = |s: &str| {
        let mut v: Vec<String> = s
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&links_after), names(&links_before));
}

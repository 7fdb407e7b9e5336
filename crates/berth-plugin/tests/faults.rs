//! A plugin that fails, as root in throwaway namespaces: one that answers its own error,
//! garbage, an unusable answer, or fails after its kernel work; one that hangs; one that dies
//! in the middle of a connect. Every error names the plugin and the call; afterwards neither
//! the host namespace nor the sandbox has a link that was not there before (iproute2's view),
//! the plugin holds no endpoint and its IPAM no address but the gateway; and the controller
//! keeps serving a bridge network meanwhile.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth::{EndpointOptions, NetworkCreate, SandboxCreate};
use common::fake::Fault;
use common::server::Reply;
use common::*;
use serde_json::{Value, json};

/// A rig with the plugin network `plugnet`, a bridge network `br`, and a sandbox `victim` on
/// neither; returns the host's links then.
fn setup() -> (Rig, Vec<String>) {
    let rig = Rig::new();
    rig.plugin_network("plugnet").unwrap();
    rig.ctl().create_network(NetworkCreate::new("br")).unwrap();
    rig.ctl()
        .create_sandbox(SandboxCreate::new("victim"))
        .unwrap();
    let links = rig.host_links();
    (rig, links)
}

fn connect_error(rig: &Rig, sandbox: &str) -> String {
    rig.ctl()
        .connect(sandbox, "plugnet", EndpointOptions::default())
        .unwrap_err()
        .to_string()
}

/// Nothing of a failed connect of `sandbox` is left: no link in the host or the sandbox, no
/// endpoint in the plugin, no address in its IPAM but the network's gateway.
fn assert_nothing_left(rig: &Rig, host_links: &[String], sandbox: &str) {
    assert_eq!(rig.host_links(), host_links, "the host's links");
    assert_eq!(rig.sandbox_links(sandbox), ["lo"], "the sandbox's links");
    assert!(
        rig.ctl()
            .inspect_sandbox(sandbox)
            .unwrap()
            .networks
            .is_empty()
    );
    let state = rig.fake.state();
    assert!(
        state.endpoints.is_empty(),
        "the plugin's endpoints: {state:?}"
    );
    let taken: Vec<BTreeSet<u32>> = state.pools.values().map(|p| p.taken.clone()).collect();
    assert_eq!(
        taken,
        [BTreeSet::from([1])],
        "only the gateway stays allocated"
    );
}

fn rewrite(f: impl Fn(Value) -> Reply + Send + Sync + 'static) -> Fault {
    Fault::Rewrite(Arc::new(f))
}

#[test]
fn plugin_errors_name_the_plugin_and_the_call_and_leave_nothing() {
    let (rig, links) = setup();
    let cases: Vec<(&str, Fault, Vec<&str>)> = vec![
        (
            "/NetworkDriver.Join",
            Fault::Err(500, "boom".into()),
            vec![r#"plugin "fakenet" NetworkDriver.Join: HTTP status 500: boom"#],
        ),
        (
            "/NetworkDriver.CreateEndpoint",
            Fault::Err(200, "boom".into()),
            vec![r#"plugin "fakenet" NetworkDriver.CreateEndpoint: boom"#],
        ),
        (
            "/NetworkDriver.Join",
            Fault::Garbage,
            vec![r#"plugin "fakenet" NetworkDriver.Join: the answer is not a valid HTTP answer"#],
        ),
        (
            "/NetworkDriver.Join",
            Fault::Answer(Reply::Json(200, json!(["not", "an", "object"]))),
            vec![r#"plugin "fakenet" NetworkDriver.Join: the answer is not the JSON expected"#],
        ),
        (
            "/IpamDriver.RequestAddress",
            Fault::Err(500, "pool exhausted".into()),
            vec![
                r#"IPAM driver fakenet: plugin "fakenet" IpamDriver.RequestAddress: HTTP status 500: pool exhausted"#,
            ],
        ),
        (
            "/IpamDriver.RequestAddress",
            Fault::Answer(Reply::Json(200, json!({"Address": "10.99.0.2/24"}))),
            vec![
                r#"plugin "fakenet" IpamDriver.RequestAddress: unusable answer: Address "10.99.0.2/24": not in the pool 10.77.0.0/24"#,
            ],
        ),
        (
            // The plugin may fill in what berth did not give, never change what it gave: the
            // endpoint is deleted again in the plugin.
            "/NetworkDriver.CreateEndpoint",
            rewrite(|_| Reply::Json(200, json!({"Interface": {"Address": "10.77.0.99/24"}}))),
            vec![
                r#"plugin "fakenet" NetworkDriver.CreateEndpoint: the plugin changed the endpoint's Address (10.77.0.2/24 given, 10.77.0.99/24 answered)"#,
            ],
        ),
    ];
    for (path, fault, wanted) in cases {
        rig.fake.fail_next(path, fault);
        let e = connect_error(&rig, "victim");
        for w in wanted {
            assert!(e.contains(w), "{path}: {e}\n(wanted {w})");
        }
        assert_nothing_left(&rig, &links, "victim");
    }
    // The plugin and the controller are still fine.
    rig.ctl()
        .connect("victim", "plugnet", EndpointOptions::default())
        .unwrap();
    assert!(rig.ping("victim", "10.77.0.1"));
}

#[test]
fn a_plugin_that_fails_after_its_kernel_work_is_rolled_back() {
    let (rig, links) = setup();
    // Garbage after the plugin made its veth pair: the controller's rollback deletes the
    // endpoint, and with it the plugin's pair.
    rig.fake.fail_next(
        "/NetworkDriver.Join",
        rewrite(|_| Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{\"Interf".to_vec())),
    );
    let e = connect_error(&rig, "victim");
    assert!(
        e.contains(r#"plugin "fakenet" NetworkDriver.Join: the answer is not the JSON expected"#),
        "{e}"
    );
    assert_nothing_left(&rig, &links, "victim");

    // An answer berth cannot use (a gateway that is no address): the plugin is told to Leave.
    rig.fake.fail_next(
        "/NetworkDriver.Join",
        rewrite(|mut v| {
            v["Gateway"] = json!("not-an-ip");
            Reply::Json(200, v)
        }),
    );
    let before = rig.server.requests().len();
    let e = connect_error(&rig, "victim");
    assert!(
        e.contains(r#"plugin "fakenet" NetworkDriver.Join: unusable answer: Gateway "not-an-ip": not an IPv4 address"#),
        "{e}"
    );
    let calls: Vec<String> = rig.server.paths()[before..].to_vec();
    assert_eq!(
        calls,
        [
            "/IpamDriver.RequestAddress",
            "/NetworkDriver.CreateEndpoint",
            "/NetworkDriver.Join",
            "/NetworkDriver.Leave",
            "/NetworkDriver.DeleteEndpoint",
            "/IpamDriver.ReleaseAddress"
        ]
    );
    assert_nothing_left(&rig, &links, "victim");

    // The interface was moved into the sandbox, then a route the plugin asked for could not be
    // added (its next hop is not on the link): berth deletes the moved interface (the pair goes
    // with it) and tells the plugin to Leave.
    rig.fake.fail_next(
        "/NetworkDriver.Join",
        rewrite(|mut v| {
            v["StaticRoutes"].as_array_mut().unwrap().push(
                json!({"Destination": "203.0.113.0/24", "RouteType": 0, "NextHop": "203.0.113.1"}),
            );
            Reply::Json(200, v)
        }),
    );
    let e = connect_error(&rig, "victim");
    assert!(
        e.contains(r#"plugin "fakenet" NetworkDriver.Join: putting its interface fks"#),
        "{e}"
    );
    assert!(e.contains("into the sandbox as eth0"), "{e}");
    assert!(rig.server.paths().ends_with(&[
        "/NetworkDriver.Leave".to_owned(),
        "/NetworkDriver.DeleteEndpoint".to_owned(),
        "/IpamDriver.ReleaseAddress".to_owned()
    ]));
    assert_nothing_left(&rig, &links, "victim");
}

#[test]
fn a_hung_plugin_times_out_while_the_controller_serves_a_bridge_network() {
    let (rig, links) = setup();
    rig.fake
        .fail_next("/NetworkDriver.Join", Fault::Hang(Duration::from_secs(4)));
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let hung = s.spawn(|| {
            let start = Instant::now();
            let e = connect_error(&rig, "victim");
            done.store(true, Ordering::SeqCst);
            (e, start.elapsed())
        });
        // Meanwhile, the controller serves the bridge network: two sandboxes on it talk.
        std::thread::sleep(Duration::from_millis(200));
        for name in ["b1", "b2"] {
            let mut req = SandboxCreate::new(name);
            req.network = Some("br".into());
            rig.ctl().create_sandbox(req).unwrap();
        }
        let b2 = rig.ip_of("b2", "br");
        assert!(rig.ping("b1", &b2), "b1 -> b2 on the bridge network");
        assert!(
            !done.load(Ordering::SeqCst),
            "the bridge network's work finished while the plugin's connect was still waiting"
        );
        let (e, took) = hung.join().unwrap();
        assert!(
            e.contains(r#"plugin "fakenet" NetworkDriver.Join: no answer within 1.5s (the plugin hangs or is too slow)"#),
            "{e}"
        );
        assert!(
            took < Duration::from_secs(4),
            "the call timeout bounds the wait: {took:?}"
        );
    });
    for name in ["b1", "b2"] {
        rig.ctl().remove_sandbox(name).unwrap();
    }
    assert_nothing_left(&rig, &links, "victim");
}

#[test]
fn a_plugin_that_dies_mid_connect() {
    let (rig, links) = setup();
    rig.fake.fail_next("/NetworkDriver.Join", Fault::Die);
    let e = connect_error(&rig, "victim");
    assert!(
        e.contains(
            r#"plugin "fakenet" NetworkDriver.Join: the plugin closed the connection after 0 bytes"#
        ),
        "{e}"
    );
    assert!(rig.server.is_dead());
    // Nothing in the kernel (the plugin died before its work; berth moved nothing).
    assert_eq!(rig.host_links(), links);
    assert_eq!(rig.sandbox_links("victim"), ["lo"]);
    assert!(
        rig.ctl()
            .inspect_sandbox("victim")
            .unwrap()
            .networks
            .is_empty()
    );
    // The next connect fails at once (after the short retries), naming the plugin and the call.
    let start = Instant::now();
    let e = connect_error(&rig, "victim");
    assert!(
        e.contains(r#"plugin "fakenet" IpamDriver.RequestAddress: cannot connect to unix://"#),
        "{e}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // The controller keeps serving the bridge network.
    for name in ["b1", "b2"] {
        let mut req = SandboxCreate::new(name);
        req.network = Some("br".into());
        rig.ctl().create_sandbox(req).unwrap();
    }
    let b1 = rig.ip_of("b1", "br");
    assert!(rig.ping("b2", &b1), "b2 -> b1 on the bridge network");
}

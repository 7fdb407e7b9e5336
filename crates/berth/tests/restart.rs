//! Restarts: a clean stop, an outside actor breaking things while berth is down, and `kill -9`
//! in the middle of connects. Proved with traffic, addresses and the kernel's own listings.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth::{Config, Controller, EndpointOptions, NetworkCreate, SandboxCreate};
use berth_store::KvStore;
use berth_testhost::TestHost;
use common::{Fixture, StateDir};

#[test]
fn restart_restores_state_and_removes_what_leaked() {
    let mut f = Fixture::new();
    // A subnet of its own: the test takes an address with --ip below.
    let mut req = NetworkCreate::new("isolated_nw");
    req.ipam.push(berth::IpamPoolConfig {
        subnet: Some("172.18.0.0/16".parse().unwrap()),
        ..Default::default()
    });
    f.ctl().create_network(req).unwrap();
    for (sb, net) in [("a", "isolated_nw"), ("b", "isolated_nw"), ("c", "bridge")] {
        f.sandbox_on(sb, net);
    }
    let before: Vec<_> = f.ctl().sandboxes();
    let nets_before: Vec<_> = f.ctl().networks();
    let rules_before = f.iptables_save();

    let nw_id = f.ctl().inspect_network("isolated_nw").unwrap().id;
    // berth stops (its state and the kernel objects stay); meanwhile things go wrong.
    f.ctl = None;
    f.host
        .ip(&["link", "add", "br-0123456789ab", "type", "bridge"])
        .unwrap();
    f.host
        .ip(&[
            "link",
            "add",
            "berth0123456789",
            "type",
            "veth",
            "peer",
            "name",
            "tmp-peer",
        ])
        .unwrap();
    f.host.run("iptables", &["-F", "BERTH-FORWARD"]).ok();
    f.host
        .run("iptables", &["-t", "nat", "-F", "POSTROUTING"])
        .unwrap();
    // A connect that was cut short: its record says Pending, its veth exists, its address is
    // taken in the store. A restart must undo all three.
    let pending_ip = "172.18.0.99";
    let pending_veth = "berth0fedcba987";
    // Leaked links that carry this state's mark (berth made them, no record names them) go;
    // Docker's or another berth's links under the same naming stay.
    let instance = {
        let store = berth_store::RedbStore::open(f.dir.path().join("data/berth.redb")).unwrap();
        let e = store.get("meta/instance").unwrap().expect("an instance id");
        String::from_utf8(e.value).unwrap()
    };
    let mark = format!("berth:{instance}:{}", "ab".repeat(32));
    f.host
        .ip(&["link", "add", "br-0aaaaaaaaaaa", "type", "bridge"])
        .unwrap();
    f.host
        .ip(&["link", "set", "dev", "br-0aaaaaaaaaaa", "alias", &mark])
        .unwrap();
    f.host
        .ip(&[
            "link",
            "add",
            "berth0aaaaaaaaa",
            "type",
            "veth",
            "peer",
            "name",
            "tmp-peer3",
        ])
        .unwrap();
    f.host
        .ip(&["link", "set", "dev", "berth0aaaaaaaaa", "alias", &mark])
        .unwrap();
    {
        let store = berth_store::RedbStore::open(f.dir.path().join("data/berth.redb")).unwrap();
        let any = store.list("endpoint/").unwrap().entries.remove(0);
        let mut rec: serde_json::Value = serde_json::from_slice(&any.value).unwrap();
        let id = format!("0fedcba987{}", "0".repeat(54));
        rec["id"] = id.clone().into();
        rec["ipv4"] = format!("{pending_ip}/16").into();
        rec["state"] = "Pending".into();
        rec["network"] = nw_id.clone().into();
        store
            .put(
                &format!("endpoint/{id}"),
                &serde_json::to_vec(&rec).unwrap(),
            )
            .unwrap();
    }
    f.host
        .ip(&[
            "link",
            "add",
            pending_veth,
            "type",
            "veth",
            "peer",
            "name",
            "tmp-peer2",
        ])
        .unwrap();

    f.restart();
    assert_eq!(f.ctl().sandboxes(), before);
    assert_eq!(f.ctl().networks(), nets_before);
    let links = f.berth_links();
    assert!(
        links.contains(&"br-0123456789ab".to_owned()),
        "not berth's: {links:?}"
    );
    assert!(
        links.contains(&"berth0123456789".to_owned()),
        "not berth's: {links:?}"
    );
    assert!(!links.contains(&"br-0aaaaaaaaaaa".to_owned()), "{links:?}");
    assert!(!links.contains(&"berth0aaaaaaaaa".to_owned()), "{links:?}");
    assert!(!links.contains(&pending_veth.to_owned()), "{links:?}");
    assert_eq!(
        f.iptables_save()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .count(),
        rules_before.lines().filter(|l| !l.starts_with('#')).count(),
        "the firewall is back to what it was:\n{}",
        f.iptables_save()
    );
    let ip_b = f.ip_of("b", "isolated_nw");
    assert!(f.ping("a", &ip_b));
    assert!(!f.ping("c", &ip_b));
    // New work after the restart gets fresh addresses.
    f.sandbox_on("d", "isolated_nw");
    let ips: BTreeSet<String> = ["a", "b", "d"]
        .iter()
        .map(|s| f.ip_of(s, "isolated_nw"))
        .collect();
    assert_eq!(ips.len(), 3);
    assert!(f.ping("d", &ip_b));
    // The address of the rolled-back connect is free again.
    f.ctl().create_sandbox(SandboxCreate::new("e")).unwrap();
    f.ctl()
        .connect(
            "e",
            "isolated_nw",
            EndpointOptions {
                ipv4: Some(pending_ip.parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(f.ping("e", &ip_b));
}

const CHILD_ENV: &str = "BERTH_RESTART_CHILD";

/// Child mode of the kill -9 test: connect sandboxes one after another until killed.
#[test]
fn connect_forever_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (host, data) = spec.split_once('|').unwrap();
    let mut config = Config::new(format!("{data}/data"), format!("{data}/run"));
    config.host_netns = Some(host.into());
    config.firewall = Some(berth::FirewallBackend::Iptables);
    let ctl = Controller::new(config).unwrap();
    ctl.create_network(NetworkCreate::new("busy")).unwrap();
    println!("ready");
    // Bounded: if the parent never kills us, stop on our own.
    for i in 0..100 {
        let name = format!("s{i}");
        ctl.create_sandbox(SandboxCreate::new(&name)).unwrap();
        println!("connecting {name}");
        ctl.connect(&name, "busy", EndpointOptions::default())
            .unwrap();
        println!("connected {name}");
    }
}

#[test]
fn kill_9_in_the_middle_of_connects_then_restart() {
    let host = TestHost::new().unwrap();
    let dir = StateDir::new().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "connect_forever_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            CHILD_ENV,
            format!("{}|{}", host.path().display(), dir.path().display()),
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut child = KillOnDrop(child);
    let start = Instant::now();
    while let Some(Ok(line)) = lines.next() {
        // The seventh connect has just started: kill the child without warning, mid-connect.
        if line == "connecting s6" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "child too slow");
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();

    let f = Fixture::from_parts(host, dir, |_| {});
    let sandboxes = f.ctl().sandboxes();
    assert!(sandboxes.len() >= 6, "{}", sandboxes.len());
    let connected: Vec<_> = sandboxes
        .iter()
        .filter(|s| s.networks.contains_key("busy"))
        .collect();
    assert!(connected.len() >= 6);
    let ips: BTreeSet<&str> = connected
        .iter()
        .map(|s| s.networks["busy"].ip_address.as_str())
        .collect();
    assert_eq!(ips.len(), connected.len(), "no duplicate address");
    // Every connected sandbox really works: it reaches its gateway and the first sandbox.
    let first = &connected[0].networks["busy"].ip_address;
    for s in &connected {
        assert!(f.ping(&s.name, &s.networks["busy"].gateway), "{}", s.name);
        assert!(f.ping(&s.name, first), "{} to {first}", s.name);
    }
    // No leftovers: one veth per endpoint on a bridge network, one namespace per sandbox.
    let veths = f
        .berth_links()
        .into_iter()
        .filter(|l| l.starts_with("berth"))
        .count();
    assert_eq!(veths, connected.len());
    // `default` is the host namespace's key.
    let namespaces = std::fs::read_dir(f.netns_dir())
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name() != "default"))
        .count();
    assert_eq!(namespaces, sandboxes.len());
    // And the next connect gets an address nobody has.
    f.sandbox_on("after", "busy");
    assert!(!ips.contains(f.ip_of("after", "busy").as_str()));
}

/// Kills and reaps the child if the test fails before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Each sandbox's namespace gets an id in the host namespace below every earlier sandbox's,
/// also after a restart, so that the kernel's ascending search of namespace ids (each time it
/// describes a host veth) meets the newest sandbox first. Traffic still flows between them.
#[test]
fn newer_sandboxes_get_lower_namespace_ids_across_restarts() {
    use berth_testhost::berth_netlink::Handle;
    let mut f = Fixture::new();
    f.ctl().create_network(NetworkCreate::new("ids")).unwrap();
    let nsid = |f: &Fixture, sb: &str| -> i32 {
        Handle::open(f.host.netns())
            .unwrap()
            .nsid_get(&f.sandbox_ns(sb))
            .unwrap()
            .unwrap_or_else(|| panic!("{sb} has no namespace id in the host"))
    };
    for sb in ["older", "newer"] {
        f.sandbox_on(sb, "ids");
    }
    let (older, newer) = (nsid(&f, "older"), nsid(&f, "newer"));
    assert!(newer < older, "newer {newer}, older {older}");
    assert!(newer >= 1 << 30, "{newer}");
    // As iproute2 sees them.
    let listed = f.host.ip(&["netns", "list-id"]).unwrap();
    for id in [older, newer] {
        assert!(listed.contains(&format!("nsid {id} ")), "{id} in {listed}");
    }
    // More sandboxes than a creation tries ids: after the restart, berth must start below
    // them rather than find its way down by trial.
    for i in 0..10 {
        f.ctl()
            .create_sandbox(SandboxCreate::new(format!("idle{i}")))
            .unwrap();
    }
    let lowest_idle = (0..10)
        .map(|i| nsid(&f, &format!("idle{i}")))
        .min()
        .unwrap();
    f.restart();
    f.sandbox_on("newest", "ids");
    let newest = nsid(&f, "newest");
    assert!(
        (1 << 30..lowest_idle).contains(&newest),
        "newest {newest}, lowest before the restart {lowest_idle}"
    );
    assert_eq!(nsid(&f, "older"), older, "a restart keeps the ids given");
    let to = f.ip_of("older", "ids");
    assert!(f.ping("newest", &to), "newest reaches older at {to}");
}

//! Global-scope networks across two hosts sharing one cluster store, as root: two test hosts
//! (throwaway namespaces), each with its own controller and local state, one in-process store
//! shared as the cluster store, and a driver of global scope (the bridge behind a wrapper that
//! says so). Subnets and addresses never clash between the hosts, a host learns of networks
//! created and removed on the other without a restart, a removal waits for every host's
//! endpoints, and a restart keeps what the cluster store holds. Traffic is real (ping between
//! sandboxes of one host, through berth's firewall, which lets the wrapper's bridge through by
//! its host policy; across hosts is the overlay's job).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth::{Controller, EndpointOptions, Error, IpamPoolConfig, NetworkCreate, SandboxCreate};
use berth_driver::{Capabilities, Scope};
use berth_store::{
    Event, KvStore, LeaseId, Listing, MemoryStore, Poll, Result as StoreResult, Txn, Watch,
};
use berth_testhost::TestHost;
use berth_testhost::berth_netlink::Handle;
use common::bridge_like::BridgeLike;
use common::*;

/// The bridge driver with global scope: each host makes its own local bridge for the network,
/// and berth's firewall lets it through by its host policy.
fn global_bridge(host: &TestHost) -> BridgeLike {
    BridgeLike::new(host, "gbridge", |c: Capabilities| c.scope(Scope::Global))
}

/// One host of the cluster: a test host, its state directory and its controller.
fn host(cluster: &Arc<dyn KvStore>) -> Fixture {
    let host = TestHost::new().expect("a test host (run as root)");
    let dir = StateDir::new().unwrap();
    let ctl = start(&host, &dir, cluster);
    Fixture {
        ctl: Some(ctl),
        host,
        dir,
    }
}

fn start(host: &TestHost, dir: &StateDir, cluster: &Arc<dyn KvStore>) -> Controller {
    Controller::builder(Fixture::config_for(host, dir))
        .driver(global_bridge(host))
        .cluster_store(cluster.clone())
        .build()
        .unwrap()
}

fn global(name: &str) -> NetworkCreate {
    let mut req = NetworkCreate::new(name);
    req.driver = "gbridge".into();
    req
}

fn subnet_of(ctl: &Controller, network: &str) -> String {
    ctl.inspect_network(network).unwrap().ipam.config[0]
        .subnet
        .clone()
}

/// Waits up to 5 s for `cond`.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn bridge_exists(f: &Fixture, network: &str) -> bool {
    let id = f.ctl().inspect_network(network).map(|n| n.id);
    let Ok(id) = id else { return false };
    let nl = Handle::open(f.host.netns()).unwrap();
    nl.link_index(format!("br-{}", &id[..12]).as_str()).is_ok()
}

#[test]
fn two_hosts_share_global_networks_without_any_clash() {
    let cluster: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let a = host(&cluster);
    let b = host(&cluster);

    // A network created on one host exists on the other without a restart, with its scope,
    // its subnet from the global space (10.0.0.0/8 in /24s) and a bridge of its own there.
    a.ctl().create_network(global("g1")).unwrap();
    let g1 = a.ctl().inspect_network("g1").unwrap();
    assert_eq!(g1.scope, "global");
    assert_eq!(subnet_of(a.ctl(), "g1"), "10.0.0.0/24");
    eventually("host b learns of g1", || {
        b.ctl().inspect_network("g1").is_ok()
    });
    assert_eq!(b.ctl().inspect_network("g1").unwrap().id, g1.id);
    assert!(bridge_exists(&b, "g1"), "host b made no bridge for g1");
    // The other host's next network takes the next subnet, and the first host learns of it.
    b.ctl().create_network(global("g2")).unwrap();
    assert_eq!(subnet_of(b.ctl(), "g2"), "10.0.1.0/24");
    eventually("host a learns of g2", || {
        a.ctl().inspect_network("g2").is_ok()
    });
    // A local network stays local.
    a.ctl()
        .create_network(NetworkCreate::new("local_a"))
        .unwrap();
    assert_eq!(a.ctl().inspect_network("local_a").unwrap().scope, "local");
    std::thread::sleep(Duration::from_millis(200));
    assert!(b.ctl().inspect_network("local_a").is_err());
    // A name or a subnet taken on one host is taken on the other.
    assert!(matches!(
        b.ctl().create_network(global("g1")),
        Err(Error::NetworkExists(_))
    ));
    let fixed = |name: &str| {
        let mut req = global(name);
        req.ipam.push(IpamPoolConfig {
            subnet: Some("10.9.0.0/24".parse().unwrap()),
            ..Default::default()
        });
        req
    };
    a.ctl().create_network(fixed("g3")).unwrap();
    let err = b.ctl().create_network(fixed("g4")).unwrap_err();
    assert!(
        matches!(err, Error::Ipam(berth_ipam::Error::PoolOverlap { .. })),
        "{err}"
    );
    assert!(b.ctl().inspect_network("g4").is_err());

    // Sandboxes connect on both hosts at once: every address once.
    let per_host = 8;
    std::thread::scope(|s| {
        for (f, tag) in [(&a, "a"), (&b, "b")] {
            for i in 0..per_host {
                s.spawn(move || {
                    let name = format!("{tag}{i}");
                    f.ctl().create_sandbox(SandboxCreate::new(&name)).unwrap();
                    f.ctl()
                        .connect(&name, "g1", EndpointOptions::default())
                        .unwrap();
                });
            }
        }
    });
    let mut addrs = BTreeSet::new();
    for (f, tag) in [(&a, "a"), (&b, "b")] {
        for i in 0..per_host {
            let ip: IpAddr = f.ip_of(&format!("{tag}{i}"), "g1").parse().unwrap();
            assert!(addrs.insert(ip), "{ip} was handed out twice");
            assert_ne!(ip.to_string(), "10.0.0.1", "the gateway was handed out");
        }
    }
    assert_eq!(addrs.len(), 2 * per_host);
    // Real traffic between sandboxes of one host.
    let to = a.ip_of("a1", "g1");
    assert!(a.ping("a0", &to), "a0 cannot reach a1 ({to}) on g1");
    let to = b.ip_of("b1", "g1");
    assert!(b.ping("b0", &to), "b0 cannot reach b1 ({to}) on g1");

    // A removal waits for every host's endpoints.
    for i in 0..per_host {
        b.ctl().remove_sandbox(&format!("b{i}")).unwrap();
    }
    assert!(matches!(
        b.ctl().remove_network("g1"),
        Err(Error::ActiveEndpoints { .. })
    ));
    assert!(
        b.ctl().inspect_network("g1").is_ok(),
        "a refused removal removed it"
    );
    for i in 0..per_host {
        a.ctl().remove_sandbox(&format!("a{i}")).unwrap();
    }
    b.ctl().remove_network("g1").unwrap();
    eventually("host a forgets g1", || {
        a.ctl().inspect_network("g1").is_err()
    });
    let nl = Handle::open(a.host.netns()).unwrap();
    let g1_bridge = format!("br-{}", &g1.id[..12]);
    assert!(
        nl.link_index(g1_bridge.as_str()).is_err(),
        "host a kept g1's bridge"
    );
    for f in [&a, &b] {
        let state = f.ctl().firewall().unwrap().state();
        assert!(
            !state.networks().contains_key(&g1_bridge),
            "g1's host policy stayed in a firewall"
        );
        assert!(
            state.networks().keys().any(|k| k.starts_with("br-")),
            "the other global networks' host policies are there"
        );
    }
    // Its subnet is free again, for either host.
    a.ctl().create_network(global("g5")).unwrap();
    assert_eq!(subnet_of(a.ctl(), "g5"), "10.0.0.0/24");
}

#[test]
fn a_restart_keeps_global_networks_and_their_addresses() {
    let cluster: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let mut a = host(&cluster);
    let b = host(&cluster);
    a.ctl().create_network(global("g")).unwrap();
    let kept = a.sandbox_on("kept", "g");
    let peer = a.sandbox_on("peer", "g");
    b.ctl().create_network(global("gone")).unwrap();
    eventually("host b learns of g", || {
        b.ctl().inspect_network("g").is_ok()
    });
    eventually("host a learns of gone", || {
        a.ctl().inspect_network("gone").is_ok()
    });
    let gone = a.ctl().inspect_network("gone").unwrap().id;
    assert!(bridge_exists(&a, "gone"));

    // While host a is down, host b goes on allocating: never host a's addresses.
    a.stop();
    let mut b_addrs = BTreeSet::new();
    for i in 0..4 {
        b_addrs.insert(b.sandbox_on(&format!("b{i}"), "g"));
    }
    assert!(!b_addrs.contains(&kept) && !b_addrs.contains(&peer));
    // Networks created and removed on b while a was down are as b left them after a's
    // restart, and a's data path of the removed one is gone.
    b.ctl().create_network(global("late")).unwrap();
    b.ctl().remove_network("gone").unwrap();
    a.start_with(|host, dir| start(host, dir, &cluster));
    assert_eq!(a.ip_of("kept", "g"), kept);
    assert!(a.ping("peer", &kept), "traffic on g after the restart");
    assert!(a.ctl().inspect_network("late").is_ok());
    assert!(a.ctl().inspect_network("gone").is_err());
    let nl = Handle::open(a.host.netns()).unwrap();
    assert!(
        nl.link_index(format!("br-{}", &gone[..12]).as_str())
            .is_err(),
        "host a kept the bridge of a network removed while it was down"
    );
    let next = a.sandbox_on("next", "g");
    assert!(!b_addrs.contains(&next) && next != kept && next != peer);
}

#[test]
fn a_global_network_needs_a_cluster_store_and_leaves_nothing_without_one() {
    let host = TestHost::new().unwrap();
    let dir = StateDir::new().unwrap();
    let ctl = Controller::builder(Fixture::config_for(&host, &dir))
        .driver(global_bridge(&host))
        .build()
        .unwrap();
    let links_before = host.ip(&["-o", "link", "show"]).unwrap();
    let err = ctl.create_network(global("g")).unwrap_err();
    assert!(matches!(err, Error::NoClusterStore), "{err}");
    assert!(err.to_string().contains("cluster store"), "{err}");
    assert!(ctl.inspect_network("g").is_err());
    assert_eq!(host.ip(&["-o", "link", "show"]).unwrap(), links_before);
    // The name is free for a local network.
    ctl.create_network(NetworkCreate::new("g")).unwrap();
    ctl.remove_network("g").unwrap();
    let fixture = Fixture {
        ctl: Some(ctl),
        host,
        dir,
    };
    drop(fixture);
}

#[test]
fn an_unknown_ipam_driver_is_refused_by_name() {
    let f = Fixture::new();
    let mut req = NetworkCreate::new("n");
    req.ipam_driver = "nosuch".into();
    let err = f.ctl().create_network(req).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no driver named \"nosuch\" is registered"),
        "{err}"
    );
    assert!(f.ctl().inspect_network("n").is_err());
}

/// A cluster store whose watches the test can cut (as a store connection breaks): a cut watch
/// ends, and the controller must watch again from the last revision it saw.
struct CuttableStore {
    inner: Arc<MemoryStore>,
    /// Watches made before the last cut end.
    generation: Arc<AtomicU64>,
}

impl CuttableStore {
    fn cut(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

impl KvStore for CuttableStore {
    fn get(&self, key: &str) -> StoreResult<Option<berth_store::Entry>> {
        self.inner.get(key)
    }

    fn list(&self, prefix: &str) -> StoreResult<Listing> {
        self.inner.list(prefix)
    }

    fn commit(&self, txn: Txn) -> StoreResult<u64> {
        self.inner.commit(txn)
    }

    fn watch(&self, prefix: &str, after_revision: u64) -> StoreResult<Watch> {
        let inner = self.inner.watch(prefix, after_revision)?;
        let generation = self.generation.clone();
        let born = generation.load(Ordering::SeqCst);
        let (tx, rx) = std::sync::mpsc::channel::<Event>();
        std::thread::spawn(move || {
            while generation.load(Ordering::SeqCst) == born {
                match inner.poll(Duration::from_millis(20)) {
                    Poll::Event(e) => {
                        if generation.load(Ordering::SeqCst) != born || tx.send(e).is_err() {
                            return;
                        }
                    }
                    Poll::Idle => {}
                    Poll::Ended => return,
                }
            }
        });
        Ok(Watch::new(rx))
    }

    fn revision(&self) -> StoreResult<u64> {
        self.inner.revision()
    }

    fn compact_revision(&self) -> StoreResult<u64> {
        self.inner.compact_revision()
    }

    fn grant_lease(&self, ttl: Duration) -> StoreResult<LeaseId> {
        self.inner.grant_lease(ttl)
    }

    fn keep_alive(&self, lease: LeaseId) -> StoreResult<Duration> {
        self.inner.keep_alive(lease)
    }

    fn revoke_lease(&self, lease: LeaseId) -> StoreResult<()> {
        self.inner.revoke_lease(lease)
    }
}

/// A host whose watch of the cluster store breaks while the other host creates and removes
/// networks, and whose store's history no longer reaches back when it watches again (a
/// compaction): it lists again and ends up with exactly the cluster's networks, data path
/// included.
#[test]
fn a_broken_watch_and_a_compaction_are_caught_up_by_listing_again() {
    let store = Arc::new(CuttableStore {
        inner: Arc::new(MemoryStore::with_history(16)),
        generation: Arc::new(AtomicU64::new(0)),
    });
    let cluster: Arc<dyn KvStore> = store.clone();
    let a = host(&cluster);
    let b = host(&cluster);
    a.ctl().create_network(global("old")).unwrap();
    eventually("host b learns of old", || {
        b.ctl().inspect_network("old").is_ok()
    });
    let old = b.ctl().inspect_network("old").unwrap().id;
    assert!(bridge_exists(&b, "old"));

    // The watches break; meanwhile a network comes, one goes, and the history moves on.
    store.cut();
    a.ctl().create_network(global("during")).unwrap();
    a.ctl().remove_network("old").unwrap();
    for i in 0..40 {
        cluster.put(&format!("test/filler/{i}"), b"x").unwrap();
    }
    assert!(
        cluster.compact_revision().unwrap() > 0,
        "the history should have moved past the cut"
    );
    eventually("host b catches up: during is there", || {
        b.ctl().inspect_network("during").is_ok()
    });
    eventually("host b catches up: old is gone", || {
        b.ctl().inspect_network("old").is_err()
    });
    let nl = Handle::open(b.host.netns()).unwrap();
    assert!(
        nl.link_index(format!("br-{}", &old[..12]).as_str())
            .is_err(),
        "host b kept the bridge of a network removed while its watch was broken"
    );
    // And it follows live changes again.
    a.ctl().create_network(global("after")).unwrap();
    eventually("host b follows again", || {
        b.ctl().inspect_network("after").is_ok()
    });
}

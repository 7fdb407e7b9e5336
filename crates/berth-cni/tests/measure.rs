//! The cost of one ADD, measured (not a pass/fail test: run it on purpose, in a release build):
//!
//! ```text
//! cargo test --release -p berth-cni --test measure -- --ignored --nocapture
//! ```
//!
//! ADD of a container with one published port, as a runtime runs it (a process per plugin,
//! the configuration on stdin), timed from spawn to exit: berth-cni with the iptables backend,
//! berth-cni with the nftables backend, and the reference chain `bridge` (with `host-local`)
//! then `portmap`, 50 times each, interleaved (each round in another order), each in a test host
//! of its own that keeps one resident container attached (so every measured ADD joins an
//! existing network, as on a busy host). Every ADD is followed by its DEL (timed too). The
//! first round proves each published port with a TCP connection from a LAN peer. It prints the
//! median, the 10th and 90th percentiles, and for berth-cni the median of each step it reports
//! with `BERTH_CNI_TIMINGS` (lock, ifname, controller, network, attach, result, close).
//!
//! With `BERTH_CNI_MEASURE_PRELOAD` set to a shared object to preload into berth-cni (such as
//! one whose `fsync` and `fdatasync` return at once), a third berth-cni variant (iptables) runs
//! with it, which shows how much of an ADD is the store's syncs to the disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testhost::traffic::{TcpBanner, tcp_fetch};
use common::{Answer, Cni, Container, TIMEOUT, ip_of, run, sa};
use serde_json::{Value, json};

const ROUNDS: usize = 50;
const REF_DIR: &str = "/usr/lib/cni";

/// One way of adding a container.
struct Variant {
    label: String,
    cni: Cni,
    kind: Kind,
    /// The host port its ADD publishes.
    port: u16,
    add: Vec<f64>,
    del: Vec<f64>,
    steps: BTreeMap<String, Vec<f64>>,
    peer: berth_testhost::LanPeer,
    /// Keeps the network in use between the measured ADDs.
    _resident: Container,
}

enum Kind {
    Berth {
        conf: Value,
        preload: Option<String>,
    },
    Reference {
        bridge: Value,
        portmap: Value,
    },
}

fn vars<'a>(command: &'a str, c: &'a Container, netns: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", c.id.as_str()),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", REF_DIR),
    ]
}

impl Variant {
    fn berth(label: &str, backend: &str, preload: Option<String>) -> Variant {
        let cni = Cni::new();
        let peer = cni
            .host
            .add_lan_peer("192.0.2.1/24", "192.0.2.2/24")
            .unwrap();
        let conf = cni.conf("measured", json!({"firewallBackend": backend}));
        let resident = Container::new("resident");
        cni.add(&resident, &conf);
        let mut conf = conf;
        conf["runtimeConfig"] =
            json!({"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]});
        Variant {
            label: label.to_owned(),
            cni,
            kind: Kind::Berth { conf, preload },
            port: 18080,
            add: Vec::new(),
            del: Vec::new(),
            steps: BTreeMap::new(),
            peer,
            _resident: resident,
        }
    }

    fn reference() -> Variant {
        let cni = Cni::new();
        let peer = cni
            .host
            .add_lan_peer("192.0.2.1/24", "192.0.2.2/24")
            .unwrap();
        let bridge = json!({
            "cniVersion": "1.0.0", "name": "refnet", "type": "bridge", "bridge": "cniref0",
            "isGateway": true, "ipMasq": true,
            "ipam": {
                "type": "host-local", "ranges": [[{"subnet": "10.130.0.0/24"}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": cni.dir.path().join("host-local"),
            },
        });
        let portmap = json!({
            "cniVersion": "1.0.0", "name": "refnet", "type": "portmap", "snat": true,
            "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": [
                {"hostPort": 28080, "containerPort": 80, "protocol": "tcp"}
            ]},
        });
        // The resident container on the bridge alone (its port would shadow the measured one's:
        // portmap does not refuse a host port taken).
        let resident = Container::new("resident");
        let netns = resident.netns();
        let mut cmd = cni.host.command(format!("{REF_DIR}/bridge"));
        run(
            &mut cmd,
            &vars("ADD", &resident, &netns),
            &bridge.to_string(),
        )
        .assert_ok();
        Variant {
            label: "reference bridge+portmap (iptables)".to_owned(),
            cni,
            kind: Kind::Reference { bridge, portmap },
            port: 28080,
            add: Vec::new(),
            del: Vec::new(),
            steps: BTreeMap::new(),
            peer,
            _resident: resident,
        }
    }

    fn plugin(&self, name: &str) -> Command {
        self.cni.host.command(format!("{REF_DIR}/{name}"))
    }

    /// ADD of `c` (timed); its result.
    fn add(&mut self, c: &Container) -> Value {
        let netns = c.netns();
        let v = vars("ADD", c, &netns);
        match &self.kind {
            Kind::Berth { conf, preload } => {
                let mut v = v;
                v.push(("BERTH_CNI_TIMINGS", "1"));
                if let Some(p) = preload {
                    v.push(("LD_PRELOAD", p.as_str()));
                }
                let started = Instant::now();
                let a = self.cni.raw(&v, &conf.to_string());
                self.add.push(ms(started.elapsed()));
                a.assert_ok();
                self.record_steps(&a);
                a.json()
            }
            Kind::Reference { bridge, portmap } => {
                let started = Instant::now();
                let b = run(&mut self.plugin("bridge"), &v, &bridge.to_string());
                b.assert_ok();
                let mut pm = portmap.clone();
                pm["prevResult"] = b.json();
                let p = run(&mut self.plugin("portmap"), &v, &pm.to_string());
                self.add.push(ms(started.elapsed()));
                p.assert_ok();
                p.json()
            }
        }
    }

    /// DEL of `c` (timed), with the ADD's result as prevResult.
    fn del(&mut self, c: &Container, result: &Value) {
        let netns = c.netns();
        let v = vars("DEL", c, &netns);
        let started = Instant::now();
        match &self.kind {
            Kind::Berth { conf, preload } => {
                let mut v = v;
                if let Some(p) = preload {
                    v.push(("LD_PRELOAD", p.as_str()));
                }
                let mut conf = conf.clone();
                conf["prevResult"] = result.clone();
                self.cni.raw(&v, &conf.to_string()).assert_ok();
            }
            Kind::Reference { bridge, portmap } => {
                let mut pm = portmap.clone();
                pm["prevResult"] = result.clone();
                run(&mut self.plugin("portmap"), &v, &pm.to_string()).assert_ok();
                let mut b = bridge.clone();
                b["prevResult"] = result.clone();
                run(&mut self.plugin("bridge"), &v, &b.to_string()).assert_ok();
            }
        }
        self.del.push(ms(started.elapsed()));
    }

    /// Reads "berth-cni timings ADD: total T ms: lock 0.01, controller 1.23, ...".
    fn record_steps(&mut self, a: &Answer) {
        let line = a
            .stderr
            .lines()
            .find(|l| l.starts_with("berth-cni timings"))
            .unwrap_or_else(|| panic!("no timings: {a:?}"));
        let (_, laps) = line.split_once("ms: ").unwrap();
        for lap in laps.split(", ") {
            let (step, value) = lap.rsplit_once(' ').unwrap();
            self.steps
                .entry(step.to_owned())
                .or_default()
                .push(value.parse().unwrap());
        }
    }

    /// One round: ADD of a new container, the published port proven on the first round, DEL.
    fn round(&mut self, i: usize) {
        let c = Container::new(&format!("m{i}"));
        let result = self.add(&c);
        if i == 0 {
            let ip = ip_of(&result);
            let _server =
                TcpBanner::start(c.ns.netns(), sa(&format!("{ip}:80")), "measured").unwrap();
            let got = tcp_fetch(
                self.peer.netns(),
                sa(&format!("192.0.2.1:{}", self.port)),
                TIMEOUT,
            )
            .unwrap_or_else(|e| panic!("{}: the published port: {e}", self.label));
            assert!(got.starts_with("measured"), "{}: {got}", self.label);
        }
        self.del(&c, &result);
    }

    fn report(&self) {
        println!(
            "{:<44} ADD median {:>6.2} ms (p10 {:>6.2}, p90 {:>6.2})   DEL median {:>6.2} ms",
            self.label,
            percentile(&self.add, 50),
            percentile(&self.add, 10),
            percentile(&self.add, 90),
            percentile(&self.del, 50),
        );
        if !self.steps.is_empty() {
            let steps: Vec<String> = self
                .steps
                .iter()
                .map(|(s, v)| format!("{s} {:.2}", percentile(v, 50)))
                .collect();
            println!("{:<44}   steps (medians, ms): {}", "", steps.join(", "));
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(values: &[f64], p: usize) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) * p / 100]
}

#[test]
#[ignore = "a measurement, not a check: run with --ignored --nocapture in a release build"]
fn add_cost_against_the_reference_chain() {
    let mut variants = vec![
        Variant::berth("berth-cni (iptables)", "iptables", None),
        Variant::berth("berth-cni (nftables)", "nftables", None),
        Variant::reference(),
    ];
    if let Ok(p) = std::env::var("BERTH_CNI_MEASURE_PRELOAD") {
        variants.push(Variant::berth(
            "berth-cni (iptables, preloaded)",
            "iptables",
            Some(p),
        ));
    }
    let n = variants.len();
    for i in 0..ROUNDS {
        for k in 0..n {
            variants[(i + k) % n].round(i);
        }
    }
    println!("{ROUNDS} rounds, interleaved, each ADD with one published port:");
    for v in &variants {
        assert_eq!(v.add.len(), ROUNDS);
        v.report();
    }
}

//! The cost of one ADD, measured (not a pass/fail test: run it on purpose, in a release build):
//!
//! ```text
//! cargo test --release -p berth-cni --test measure -- --ignored --nocapture
//! ```
//!
//! ADD of a container with one published port, as a runtime runs it (a process per plugin,
//! the configuration on stdin), timed from spawn to exit: berth-cni with the iptables backend,
//! berth-cni with the nftables backend, the reference chain `bridge` (with `host-local`) then
//! `portmap`, and netavark's `setup` (Debian's netavark 1.4, podman 4.3's default backend, with
//! its iptables driver), 50 times each, interleaved (each round in another order), each in a
//! test host of its own that keeps resident containers attached (so every measured ADD joins
//! an existing network, as on a busy host): one, or `BERTH_CNI_MEASURE_RESIDENTS` (at most
//! [`MAX_RESIDENTS`]), to see how an ADD's cost grows with the containers on the host. Every ADD is followed by its DEL (timed too;
//! netavark's `teardown` is not timed). The first round proves each published port with a TCP
//! connection from a LAN peer. It prints the median, the 10th and 90th percentiles, and for
//! berth-cni the median of each step it reports with `BERTH_CNI_TIMINGS` (lock, ifname,
//! controller, network, attach, result, close).
//!
//! netavark is given what podman 4.3 sends it (seen through a wrapper in podman's helper
//! binaries directory): the options JSON on stdin with the container's id and name, its
//! `port_mappings`, and one bridge network with a subnet and gateway, DNS disabled, and the
//! container's address chosen already (podman's IPAM runs in podman, before `setup`, so its cost
//! is not in netavark's time). `NETAVARK_FW=iptables` names the firewall driver (podman sets
//! nothing and netavark would first look for firewalld on the system bus), `--config` is a
//! temporary directory.
//!
//! With `BERTH_CNI_MEASURE_PRELOAD` set to a shared object to preload into berth-cni (such as
//! one whose `fsync` and `fdatasync` return at once), a third berth-cni variant (iptables) runs
//! with it, which shows how much of an ADD is the store's syncs to the disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testhost::TestHost;
use berth_testhost::traffic::{TcpBanner, tcp_fetch};
use common::{Answer, Cni, Container, TIMEOUT, ip_of, run, sa};
use serde_json::{Value, json};

const ROUNDS: usize = 50;
const REF_DIR: &str = "/usr/lib/cni";
/// Debian's netavark (package `netavark`), where podman looks for it.
const NETAVARK: &str = "/usr/lib/podman/netavark";
/// netavark's network: its name, bridge, subnet and gateway.
const NV_NETWORK: &str = "nvnet";
const NV_BRIDGE: &str = "nvbr0";
const NV_SUBNET: &str = "10.140.0.0/16";
const NV_GATEWAY: &str = "10.140.0.1";

/// Most resident containers (`BERTH_CNI_MEASURE_RESIDENTS`): the reference chain's subnet is a
/// /24, shared with the measured containers.
const MAX_RESIDENTS: usize = 200;

/// The resident containers of each variant: `BERTH_CNI_MEASURE_RESIDENTS`, or 1.
fn residents() -> usize {
    match std::env::var("BERTH_CNI_MEASURE_RESIDENTS") {
        Ok(v) => {
            let n: usize = v
                .parse()
                .unwrap_or_else(|_| panic!("BERTH_CNI_MEASURE_RESIDENTS={v:?}: not a number"));
            assert!(
                (1..=MAX_RESIDENTS).contains(&n),
                "BERTH_CNI_MEASURE_RESIDENTS: 1 to {MAX_RESIDENTS}"
            );
            n
        }
        Err(_) => 1,
    }
}

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
    /// Keep the network in use between the measured ADDs.
    _residents: Vec<Container>,
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
    Netavark {
        /// `--config`: netavark's directory (aardvark-dns's, unused with DNS disabled).
        config: PathBuf,
    },
}

/// netavark's options for container `c` at `address` on [`NV_NETWORK`], as podman 4.3 writes
/// them, publishing `port` (host) to 80 (container) over TCP when given.
fn netavark_options(c: &Container, address: &str, port: Option<u16>) -> Value {
    // podman's container ids are 64 hex digits; this one is the test's id in hex, padded.
    let hex: String = c.id.bytes().map(|b| format!("{b:02x}")).collect();
    let id = format!("{hex:0>64}");
    let port_mappings: Vec<Value> = port
        .into_iter()
        .map(|p| {
            json!({"host_ip": "", "container_port": 80, "host_port": p, "range": 1,
                   "protocol": "tcp"})
        })
        .collect();
    json!({
        "container_id": id,
        "container_name": c.id,
        "port_mappings": port_mappings,
        "networks": {
            NV_NETWORK: {
                "static_ips": [address],
                "aliases": [&id[..12]],
                "interface_name": "eth0",
            },
        },
        "network_info": {
            NV_NETWORK: {
                "name": NV_NETWORK,
                "id": "6e7661726b6e6574776f726b6f66626572746863696d6561737572656d656e74",
                "driver": "bridge",
                "network_interface": NV_BRIDGE,
                "subnets": [{"subnet": NV_SUBNET, "gateway": NV_GATEWAY}],
                "ipv6_enabled": false,
                "internal": false,
                "dns_enabled": false,
                "ipam_options": {"driver": "host-local"},
            },
        },
    })
}

/// Runs `netavark setup|teardown NETNS` for `c` with `options` on stdin, inside `host`, as
/// podman runs it (but with the firewall driver named).
fn netavark(
    host: &TestHost,
    config: &Path,
    command: &str,
    c: &Container,
    options: &Value,
) -> Answer {
    let mut cmd = host.command(NETAVARK);
    cmd.arg("--config")
        .arg(config)
        .arg("--rootless=false")
        .arg(command)
        .arg(c.netns());
    run(
        &mut cmd,
        &[("NETAVARK_FW", "iptables"), ("RUST_LOG", "netavark=warn")],
        &options.to_string(),
    )
}

/// The address netavark gives the container of round `i` (residents are in 10.140.1.0/24).
fn netavark_address(i: usize) -> String {
    format!("10.140.0.{}", 10 + i)
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
        let residents: Vec<Container> = (0..residents())
            .map(|i| {
                let c = Container::new(&format!("resident{i}"));
                cni.add(&c, &conf);
                c
            })
            .collect();
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
            _residents: residents,
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
        // The resident containers on the bridge alone (their port would shadow the measured
        // one's: portmap does not refuse a host port taken).
        let residents: Vec<Container> = (0..residents())
            .map(|i| {
                let c = Container::new(&format!("resident{i}"));
                let netns = c.netns();
                let mut cmd = cni.host.command(format!("{REF_DIR}/bridge"));
                run(&mut cmd, &vars("ADD", &c, &netns), &bridge.to_string()).assert_ok();
                c
            })
            .collect();
        Variant {
            label: "reference bridge+portmap (iptables)".to_owned(),
            cni,
            kind: Kind::Reference { bridge, portmap },
            port: 28080,
            add: Vec::new(),
            del: Vec::new(),
            steps: BTreeMap::new(),
            peer,
            _residents: residents,
        }
    }

    fn netavark() -> Variant {
        let version = Command::new(NETAVARK)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| {
                panic!("{NETAVARK}: {e} (install Debian's netavark: apt-get install netavark)")
            });
        assert!(
            version.status.success(),
            "{NETAVARK} --version: {version:?}"
        );
        let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
        let cni = Cni::new();
        let peer = cni
            .host
            .add_lan_peer("192.0.2.1/24", "192.0.2.2/24")
            .unwrap();
        let config = cni.dir.path().join("netavark");
        std::fs::create_dir(&config).unwrap();
        // The resident containers on the network alone, as the other variants'.
        let residents: Vec<Container> = (0..residents())
            .map(|i| {
                let c = Container::new(&format!("resident{i}"));
                let address = format!("10.140.{}.{}", 1 + i / 200, 2 + i % 200);
                let options = netavark_options(&c, &address, None);
                netavark(&cni.host, &config, "setup", &c, &options).assert_ok();
                c
            })
            .collect();
        Variant {
            label: format!("{version} setup (iptables)"),
            cni,
            kind: Kind::Netavark { config },
            port: 38080,
            add: Vec::new(),
            del: Vec::new(),
            steps: BTreeMap::new(),
            peer,
            _residents: residents,
        }
    }

    /// netavark's `command` for `c` in this variant's test host.
    fn netavark_call(&self, command: &str, c: &Container, options: &Value) -> Answer {
        let Kind::Netavark { config } = &self.kind else {
            unreachable!("netavark_call on {}", self.label)
        };
        netavark(&self.cni.host, config, command, c, options)
    }

    /// The container's address in an ADD's result (netavark's status block, or a CNI result).
    fn address(&self, result: &Value) -> String {
        match &self.kind {
            Kind::Netavark { .. } => {
                result[NV_NETWORK]["interfaces"]["eth0"]["subnets"][0]["ipnet"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{}: no address in {result}", self.label))
                    .split('/')
                    .next()
                    .unwrap()
                    .to_owned()
            }
            _ => ip_of(result),
        }
    }

    fn plugin(&self, name: &str) -> Command {
        self.cni.host.command(format!("{REF_DIR}/{name}"))
    }

    /// ADD of `c`, the container of round `i` (timed); its result.
    fn add(&mut self, c: &Container, i: usize) -> Value {
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
            Kind::Netavark { .. } => {
                let options = netavark_options(c, &netavark_address(i), Some(self.port));
                let started = Instant::now();
                let a = self.netavark_call("setup", c, &options);
                self.add.push(ms(started.elapsed()));
                a.assert_ok();
                let result = a.json();
                assert_eq!(
                    self.address(&result),
                    netavark_address(i),
                    "{}: {result}",
                    self.label
                );
                result
            }
        }
    }

    /// DEL of `c`, the container of round `i` (timed), with the ADD's result as prevResult;
    /// netavark's `teardown` (not timed) with the options of its `setup`.
    fn del(&mut self, c: &Container, i: usize, result: &Value) {
        if let Kind::Netavark { .. } = self.kind {
            let options = netavark_options(c, &netavark_address(i), Some(self.port));
            self.netavark_call("teardown", c, &options).assert_ok();
            return;
        }
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
            Kind::Netavark { .. } => unreachable!("netavark's teardown returned above"),
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
        let result = self.add(&c, i);
        if i == 0 {
            let ip = self.address(&result);
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
        self.del(&c, i, &result);
    }

    fn report(&self) {
        let del = if self.del.is_empty() {
            "DEL not timed".to_owned()
        } else {
            format!("DEL median {:>6.2} ms", percentile(&self.del, 50))
        };
        println!(
            "{:<44} ADD median {:>6.2} ms (p10 {:>6.2}, p90 {:>6.2})   {del}",
            self.label,
            percentile(&self.add, 50),
            percentile(&self.add, 10),
            percentile(&self.add, 90),
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
        Variant::netavark(),
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
    println!(
        "{ROUNDS} rounds, interleaved, each ADD with one published port, {} resident container(s):",
        residents()
    );
    for v in &variants {
        assert_eq!(v.add.len(), ROUNDS);
        v.report();
    }
}

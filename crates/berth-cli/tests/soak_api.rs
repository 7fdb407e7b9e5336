//! The concurrency soak over the daemon's API (issue #14): eight client threads send 500 random
//! requests each to one `berth daemon` (networks, sandboxes with published ports, aliases and fixed
//! addresses, connects, disconnects, renames, listings and inspects, interleaved). Every request
//! must be answered within 5 s (a watchdog kills the daemon and aborts the test, naming the
//! request, otherwise); only legitimate refusals (404, and the 403/409/400 of a name, address or
//! port taken, active endpoints, ...) are accepted; afterwards the state the API reports must equal
//! the kernel (berth's `tests/common/consistency.rs`, here fed the API's JSON), a sample must carry
//! real traffic, and removing everything must leave the host as it was. The daemon runs the
//! nftables backend (the controller's soak covers iptables).
//!
//! `BERTH_SOAK_SEED` replays a seed (each thread's requests, not their interleaving);
//! `BERTH_SOAK_THREADS` and `BERTH_SOAK_OPS` (per thread) change the size.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../berth/tests/common/consistency.rs"]
mod consistency;
#[path = "../../berth/tests/common/soak_model.rs"]
mod soak_model;

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth::FirewallBackend;
use berth_testhost::LanPeer;
use berth_testhost::berth_netlink::{DEFAULT_NETNS_DIR, Netns};
use berth_testhost::traffic::{TcpBanner, tcp_fetch};
use common::{Fixture, HttpReply};
use consistency::{HostBaseline, Reported};
use serde_json::{Value, json};
use soak_model::*;

fn network_body(i: usize) -> Value {
    let mut body = json!({"Name": net_name(i), "Internal": internal(i)});
    if fixed_subnet(i) {
        body["IPAM"] = json!({"Config": [{"Subnet": format!("10.211.{i}.0/24")}]});
    }
    if icc_off(i) {
        body["Options"] = json!({ ICC: "false" });
    }
    body
}

/// What one connect (or a sandbox's first network) asks for.
#[derive(Debug, Clone)]
struct Attach {
    network: usize,
    ip: Option<Ipv4Addr>,
    aliases: Vec<String>,
    /// Host ports, published to container ports 80, 81, ... (sandbox create only: Docker's
    /// connect request has no ports).
    ports: Vec<u16>,
}

impl Attach {
    fn random(rng: &mut Rng, with_ports: bool) -> Attach {
        let network = rng.below(NETWORKS as u64 + 1) as usize;
        let user = network < NETWORKS;
        let ip = (user && fixed_subnet(network) && rng.chance(40))
            .then(|| Ipv4Addr::new(10, 211, network as u8, 2 + rng.below(12) as u8));
        let aliases = if user && rng.chance(30) {
            vec![format!("alias{}", rng.below(4))]
        } else {
            Vec::new()
        };
        let ports = if with_ports && rng.chance(60) {
            (0..1 + rng.below(2))
                .map(|_| PORT_BASE + rng.below(PORTS) as u16)
                .collect()
        } else {
            Vec::new()
        };
        Attach {
            network,
            ip,
            aliases,
            ports,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    CreateNetwork(usize),
    RemoveNetwork(usize),
    /// With no network given, the sandbox joins the default bridge (the API's default).
    CreateSandbox(String, Option<Attach>),
    RemoveSandbox(String),
    Connect(String, Attach),
    Disconnect(String, usize),
    Rename(String, String),
    ListNetworks,
    ListSandboxes,
    InspectNetwork(usize),
    InspectSandbox(String),
}

impl Op {
    fn random(rng: &mut Rng) -> Op {
        let sandbox = |rng: &mut Rng| sb_name(rng.below(SANDBOXES));
        let user_net = |rng: &mut Rng| rng.below(NETWORKS as u64) as usize;
        match rng.below(100) {
            0..4 => Op::CreateNetwork(user_net(rng)),
            4..9 => Op::RemoveNetwork(user_net(rng)),
            9..21 => {
                let name = sandbox(rng);
                let attach = rng.chance(70).then(|| Attach::random(rng, true));
                Op::CreateSandbox(name, attach)
            }
            21..26 => Op::RemoveSandbox(sandbox(rng)),
            26..50 => Op::Connect(sandbox(rng), Attach::random(rng, false)),
            50..62 => Op::Disconnect(sandbox(rng), rng.below(NETWORKS as u64 + 1) as usize),
            62..72 => {
                let from = rng.below(SANDBOXES);
                let to = (from + 1 + rng.below(SANDBOXES - 1)) % SANDBOXES;
                Op::Rename(sb_name(from), sb_name(to))
            }
            72..80 => Op::ListNetworks,
            80..88 => Op::ListSandboxes,
            88..93 => Op::InspectNetwork(rng.below(NETWORKS as u64 + 1) as usize),
            _ => Op::InspectSandbox(sandbox(rng)),
        }
    }

    /// The request: method, path, JSON body; and the status of success.
    fn request(&self) -> (&'static str, String, Option<Value>, u16) {
        match self {
            Op::CreateNetwork(i) => (
                "POST",
                "/networks/create".into(),
                Some(network_body(*i)),
                201,
            ),
            Op::RemoveNetwork(i) => ("DELETE", format!("/networks/{}", net_name(*i)), None, 204),
            Op::CreateSandbox(name, attach) => {
                let mut body = json!({ "Name": name });
                if let Some(a) = attach {
                    body["NetworkMode"] = json!(net_name(a.network));
                    let mut ep = json!({});
                    if let Some(ip) = a.ip {
                        ep["IPv4Address"] = json!(ip.to_string());
                    }
                    if !a.aliases.is_empty() {
                        ep["Aliases"] = json!(a.aliases);
                    }
                    body["EndpointConfig"] = ep;
                    let bindings: BTreeMap<String, Value> = a
                        .ports
                        .iter()
                        .enumerate()
                        .map(|(k, p)| {
                            (
                                format!("{}/tcp", 80 + k),
                                json!([{"HostIp": "", "HostPort": p.to_string()}]),
                            )
                        })
                        .collect();
                    if !bindings.is_empty() {
                        body["PortBindings"] = json!(bindings);
                    }
                }
                ("POST", "/sandboxes/create".into(), Some(body), 201)
            }
            Op::RemoveSandbox(name) => ("DELETE", format!("/sandboxes/{name}"), None, 204),
            Op::Connect(name, a) => {
                let mut ep = json!({});
                if let Some(ip) = a.ip {
                    ep["IPAMConfig"] = json!({"IPv4Address": ip.to_string()});
                }
                if !a.aliases.is_empty() {
                    ep["Aliases"] = json!(a.aliases);
                }
                let body = json!({"Container": name, "EndpointConfig": ep});
                let path = format!("/networks/{}/connect", net_name(a.network));
                ("POST", path, Some(body), 200)
            }
            Op::Disconnect(name, net) => {
                let path = format!("/networks/{}/disconnect", net_name(*net));
                ("POST", path, Some(json!({ "Container": name })), 200)
            }
            Op::Rename(from, to) => (
                "POST",
                format!("/sandboxes/{from}/rename?name={to}"),
                None,
                204,
            ),
            Op::ListNetworks => ("GET", "/networks".into(), None, 200),
            Op::ListSandboxes => ("GET", "/sandboxes".into(), None, 200),
            Op::InspectNetwork(i) => ("GET", format!("/networks/{}", net_name(*i)), None, 200),
            Op::InspectSandbox(name) => ("GET", format!("/sandboxes/{name}"), None, 200),
        }
    }

    fn attach(&self) -> Option<&Attach> {
        match self {
            Op::CreateSandbox(_, a) => a.as_ref(),
            Op::Connect(_, a) => Some(a),
            _ => None,
        }
    }

    /// Whether an answer other than success is a refusal this request may meet when others race
    /// it: not found (404); a name, address or host port taken (409); active endpoints, already
    /// connected, not connected, or a fixed subnet held by a same-named network created at the
    /// same moment (403); ports on an internal network (400).
    fn may_fail_with(&self, status: u16, message: &str) -> bool {
        let lists = matches!(self, Op::ListNetworks | Op::ListSandboxes);
        match status {
            404 => !lists,
            409 => {
                matches!(
                    self,
                    Op::CreateNetwork(_) | Op::CreateSandbox(..) | Op::Rename(..)
                ) || self.attach().is_some_and(|a| a.ip.is_some())
            }
            403 => match self {
                Op::RemoveNetwork(_) => message.contains("has active endpoints"),
                Op::Connect(..) => message.contains("already exists in network"),
                Op::Disconnect(..) => message.contains("is not connected to network"),
                Op::CreateNetwork(i) => fixed_subnet(*i) && message.contains("Pool overlaps"),
                _ => false,
            },
            400 => {
                message.contains("internal network")
                    && self.attach().is_some_and(|a| {
                        !a.ports.is_empty() && a.network < NETWORKS && internal(a.network)
                    })
            }
            _ => false,
        }
    }
}

fn send(f: &Fixture, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<HttpReply> {
    let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
    f.try_http(
        method,
        path,
        bytes.as_ref().map(|_| "application/json"),
        bytes.as_deref(),
    )
}

fn message(r: &HttpReply) -> String {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&r.body).into_owned())
}

/// What the watchdog does before it aborts: describes the daemon's threads (what each waits in)
/// and the end of its log, kills it, and removes the sandbox namespaces' mounts, the test host's
/// and LAN peer's namespaces and the state directory. Returns the description.
fn cleanup_of(f: &Fixture, peer: &LanPeer) -> Box<dyn Fn() -> String + Send + Sync> {
    let pid = f.daemon.as_ref().map(std::process::Child::id);
    let dir = f.dir.path().to_path_buf();
    let netns_dir = dir.join("run").join("netns");
    let log = f.log_path();
    let namespaces = [f.host.name().to_owned(), peer.host().name().to_owned()];
    Box::new(move || {
        let mut out = String::new();
        if let Some(pid) = pid {
            let mut waits: BTreeMap<String, usize> = BTreeMap::new();
            if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
                for t in tasks.flatten() {
                    let wchan = std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default();
                    *waits.entry(wchan).or_default() += 1;
                }
            }
            out.push_str(&format!(
                "daemon {pid}: threads by wait channel: {waits:?}\n"
            ));
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        out.push_str("daemon log (last lines):\n");
        for l in tail.into_iter().rev() {
            out.push_str(&format!("  {l}\n"));
        }
        cleanup_paths(&netns_dir, &dir, &namespaces);
        out
    })
}

fn cleanup_paths(netns_dir: &Path, state_dir: &Path, namespaces: &[String]) {
    if let Ok(entries) = std::fs::read_dir(netns_dir) {
        for e in entries.flatten() {
            let _ = Netns::delete_named_in(netns_dir, &e.file_name().to_string_lossy());
        }
    }
    let _ = nix::mount::umount2(netns_dir, nix::mount::MntFlags::MNT_DETACH);
    for name in namespaces {
        let _ = Netns::delete_named_in(Path::new(DEFAULT_NETNS_DIR), name);
    }
    let _ = std::fs::remove_dir_all(state_dir);
}

// ----- the soak -----

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    refused: AtomicU64,
}

/// A request that must succeed (setup, checks, cleanup), under the watchdog.
fn must(f: &Fixture, wd: &Watchdog, main: usize, seed: u64, method: &str, path: &str) -> Value {
    let what = format!("{method} {path}");
    let r = wd
        .call(main, &what, || send(f, method, path, None))
        .unwrap_or_else(|e| panic!("seed {seed}: {what}: {e}"));
    assert!(
        (200..300).contains(&r.status),
        "seed {seed}: {what}: {} {}",
        r.status,
        message(&r)
    );
    if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    }
}

#[test]
fn eight_threads_of_random_requests_to_one_daemon() {
    let s = Settings::from_env();
    let seed = s.seed;
    eprintln!(
        "soak_api: seed {seed} ({} threads x {} requests); replay with BERTH_SOAK_SEED={seed}",
        s.threads, s.ops
    );
    let f = Fixture::with_args(&["--firewall-backend", "nftables"]);
    let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    let baseline = HostBaseline::take(f.host.netns()).unwrap();
    let main = s.threads;
    let wd = Watchdog::start("soak_api", seed, s.threads + 1, cleanup_of(&f, &peer));
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let counts = Counts::default();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..s.threads {
            let (f, wd, failures, stop, counts) = (&f, &wd, &failures, &stop, &counts);
            scope.spawn(move || {
                let mut rng = Rng::new(seed, t as u64 + 1);
                for i in 0..s.ops {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let op = Op::random(&mut rng);
                    let what = format!("#{i} {op:?}");
                    let (method, path, body, want) = op.request();
                    let reply = wd.call(t, &what, || send(f, method, &path, body.as_ref()));
                    let fail = match reply {
                        Err(e) => Some(format!("no answer: {e}")),
                        Ok(r) if r.status == want => {
                            counts.ok.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                        Ok(r) if op.may_fail_with(r.status, &message(&r)) => {
                            counts.refused.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                        Ok(r) => Some(format!("unexpected answer {} {}", r.status, message(&r))),
                    };
                    if let Some(why) = fail {
                        failures.lock().unwrap().push(format!(
                            "thread {t}, request {what} ({method} {path}): {why}; seed {seed}"
                        ));
                        stop.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "soak_api (seed {seed}; replay with BERTH_SOAK_SEED={seed}):\n{}\ndaemon log:\n{}",
        failures.join("\n"),
        f.log()
    );
    eprintln!(
        "soak_api: {} requests in {:.1} s: {} done, {} refused",
        s.threads * s.ops,
        started.elapsed().as_secs_f64(),
        counts.ok.load(Ordering::Relaxed),
        counts.refused.load(Ordering::Relaxed)
    );

    let netns_dir = f.dir.path().join("run").join("netns");
    let check = |what: &str| -> Vec<String> {
        let nets = wd.call(main, "GET /networks", || send(&f, "GET", "/networks", None));
        let sbs = wd.call(main, "GET /sandboxes", || {
            send(&f, "GET", "/sandboxes", None)
        });
        let (nets, sbs) = (nets.unwrap(), sbs.unwrap());
        let reported = Reported::from_json(&nets.body, &sbs.body)
            .unwrap_or_else(|e| panic!("seed {seed}: {what}: {e}"));
        consistency::check(
            &reported,
            f.host.netns(),
            &netns_dir,
            Some(FirewallBackend::Nftables),
        )
    };
    let mismatches = check("after the soak");
    assert!(
        mismatches.is_empty(),
        "seed {seed}: the API's report and the kernel differ after the soak:\n{}",
        mismatches.join("\n")
    );

    traffic_on_a_sample(&f, &peer, &wd, main, seed);

    // Remove everything: the host is back to what it was before the soak.
    let sbs = must(&f, &wd, main, seed, "GET", "/sandboxes");
    for sb in sbs.as_array().unwrap() {
        must(
            &f,
            &wd,
            main,
            seed,
            "DELETE",
            &format!("/sandboxes/{}", sb["Id"].as_str().unwrap()),
        );
    }
    let nets = must(&f, &wd, main, seed, "GET", "/networks");
    for net in nets.as_array().unwrap() {
        let name = net["Name"].as_str().unwrap();
        if !berth::PREDEFINED_NETWORKS.contains(&name) {
            must(
                &f,
                &wd,
                main,
                seed,
                "DELETE",
                &format!("/networks/{}", net["Id"].as_str().unwrap()),
            );
        }
    }
    let mut left = check("after removing everything");
    left.extend(baseline.diff(&HostBaseline::take(f.host.netns()).unwrap()));
    assert!(
        left.is_empty(),
        "seed {seed}: after removing everything, the host is not as it was:\n{}",
        left.join("\n")
    );
    wd.stop();
}

/// A sandbox's namespace, by the path the API reports.
fn sandbox_ns(sb: &Value) -> Netns {
    Netns::open(PathBuf::from(sb["SandboxKey"].as_str().unwrap())).unwrap()
}

/// Real traffic through what the soak left: two sandboxes of a network with icc on ping each
/// other (two of one with icc off do not), and published ports answer a LAN peer. Where the soak
/// left no such pair or port, one is made.
fn traffic_on_a_sample(f: &Fixture, peer: &LanPeer, wd: &Watchdog, main: usize, seed: u64) {
    let nets = must(f, wd, main, seed, "GET", "/networks");
    let sbs = must(f, wd, main, seed, "GET", "/sandboxes");
    let by_id: BTreeMap<&str, &Value> = sbs
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["Id"].as_str().unwrap(), s))
        .collect();
    let icc_on = |n: &Value| n["Options"][ICC].as_str() != Some("false");
    let pair_on = |pred: &dyn Fn(&Value) -> bool| -> Option<(String, Vec<Value>)> {
        // The soak's own networks first, the default bridge last.
        let named = |n: &&Value, p: &dyn Fn(&str) -> bool| p(n["Name"].as_str().unwrap_or(""));
        let all = nets.as_array().unwrap();
        let soak = all
            .iter()
            .filter(|n| named(n, &|s| s.starts_with("soak-n")));
        soak.chain(all.iter().filter(|n| named(n, &|s| s == "bridge")))
            .filter(|n| pred(n))
            .find(|n| n["Containers"].as_object().is_some_and(|c| c.len() >= 2))
            .map(|n| {
                let ids = n["Containers"].as_object().unwrap().keys().take(2);
                (
                    n["Name"].as_str().unwrap().to_owned(),
                    ids.map(|id| by_id[id.as_str()].clone()).collect(),
                )
            })
    };
    let ip_on = |sb: &Value, net: &str| {
        sb["Networks"][net]["IPAddress"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (net, pair) = pair_on(&icc_on).unwrap_or_else(|| {
        // Nothing to sample: a pair on the default bridge.
        let made = ["soak-probe-a", "soak-probe-b"].map(|name| {
            let body = json!({ "Name": name });
            let r = wd.call(main, "create probe", || {
                send(f, "POST", "/sandboxes/create", Some(&body))
            });
            assert_eq!(r.unwrap().status, 201);
            must(f, wd, main, seed, "GET", &format!("/sandboxes/{name}"))
        });
        ("bridge".into(), made.to_vec())
    });
    let (a, b) = (&pair[0], &pair[1]);
    let (ip_a, ip_b) = (ip_on(a, &net), ip_on(b, &net));
    assert!(
        berth_testhost::ping_in(&sandbox_ns(a), &ip_b)
            && berth_testhost::ping_in(&sandbox_ns(b), &ip_a),
        "seed {seed}: {} ({ip_a}) and {} ({ip_b}) on {net} do not reach each other",
        a["Name"],
        b["Name"]
    );
    if let Some((net, pair)) = pair_on(&|n| !icc_on(n)) {
        let ip = ip_on(&pair[1], &net);
        assert!(
            !berth_testhost::ping_in(&sandbox_ns(&pair[0]), &ip),
            "seed {seed}: {} reaches {} ({ip}) on {net}, whose icc is off",
            pair[0]["Name"],
            pair[1]["Name"]
        );
        eprintln!(
            "soak_api: traffic: {} and {} on {net} (icc off) do not",
            pair[0]["Name"], pair[1]["Name"]
        );
    }

    // Published ports: (sandbox, container port, host port), up to three.
    let mut published: Vec<(Value, u16, u16)> = Vec::new();
    for sb in sbs.as_array().unwrap() {
        for (key, binds) in sb["Ports"].as_object().into_iter().flatten() {
            let Some(cport) = key.strip_suffix("/tcp").and_then(|p| p.parse().ok()) else {
                continue;
            };
            for b in binds.as_array().into_iter().flatten() {
                let hport = b["HostPort"].as_str().unwrap().parse().unwrap();
                published.push((sb.clone(), cport, hport));
            }
        }
    }
    published.truncate(3);
    if published.is_empty() {
        let body =
            json!({"Name": "soak-probe-p", "PortBindings": {"80/tcp": [{"HostPort": "20999"}]}});
        let r = wd.call(main, "create probe-p", || {
            send(f, "POST", "/sandboxes/create", Some(&body))
        });
        assert_eq!(r.unwrap().status, 201);
        let sb = must(f, wd, main, seed, "GET", "/sandboxes/soak-probe-p");
        published.push((sb, 80, 20999));
    }
    let mut servers = BTreeMap::new();
    for (sb, cport, _) in &published {
        let name = sb["Name"].as_str().unwrap().to_owned();
        if let Entry::Vacant(slot) = servers.entry((name.clone(), *cport)) {
            let any: SocketAddr = format!("0.0.0.0:{cport}").parse().unwrap();
            slot.insert(TcpBanner::start(&sandbox_ns(sb), any, &name).unwrap());
        }
    }
    for (sb, cport, hport) in &published {
        let name = sb["Name"].as_str().unwrap();
        let to: SocketAddr = format!("192.0.2.1:{hport}").parse().unwrap();
        let got = tcp_fetch(peer.netns(), to, Duration::from_secs(2));
        assert_eq!(
            got.as_ref().ok().map(String::as_str),
            Some(format!("{name} from 192.0.2.2").as_str()),
            "seed {seed}: host port {hport} of {name} (container port {cport}) from the LAN: {got:?}"
        );
    }
    eprintln!(
        "soak_api: traffic: {} and {} on {net} reach each other; {} published ports answer the LAN",
        a["Name"],
        b["Name"],
        published.len()
    );
}

//! The concurrency soak (issue #14): eight threads run 500 random operations each on one
//! controller (networks, sandboxes, connects with ports, aliases and fixed addresses, renames,
//! listings and inspects, all interleaved). Every call must answer within 5 s (a watchdog aborts
//! the test, naming the call, otherwise); only legitimate refusals are accepted; afterwards the
//! reported state must equal the kernel (see `common::consistency`), a sample of it must carry
//! real traffic, and removing everything must leave the host as it was.
//!
//! `BERTH_SOAK_SEED` replays a seed (each thread's sequence of operations, not the interleaving);
//! `BERTH_SOAK_THREADS` and `BERTH_SOAK_OPS` (per thread) change the size.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use berth::{Controller, EndpointOptions, Error, IpamPoolConfig, NetworkCreate, SandboxCreate};
use berth_testhost::LanPeer;
use berth_testhost::berth_netlink::{DEFAULT_NETNS_DIR, Netns};
use berth_testhost::traffic::{TcpBanner, tcp_fetch};
use common::consistency::{self, HostBaseline};
use common::soak_model::*;
use common::{Fixture, TIMEOUT};

fn network_request(i: usize) -> NetworkCreate {
    let mut req = NetworkCreate::new(net_name(i));
    if fixed_subnet(i) {
        req = req.subnet(IpamPoolConfig {
            subnet: Some(format!("10.210.{i}.0/24").parse().unwrap()),
            ..Default::default()
        });
    }
    if icc_off(i) {
        req = req.option(ICC, "false");
    }
    if internal(i) {
        req = req.internal();
    }
    req
}

/// What one connect asks for.
#[derive(Debug, Clone)]
struct Attach {
    network: usize,
    ip: Option<Ipv4Addr>,
    aliases: Vec<String>,
    /// Host ports, published to container ports 80, 81, ...
    ports: Vec<u16>,
}

impl Attach {
    fn random(rng: &mut Rng) -> Attach {
        let network = rng.below(NETWORKS as u64 + 1) as usize;
        let user = network < NETWORKS;
        let ip = (user && fixed_subnet(network) && rng.chance(40))
            .then(|| Ipv4Addr::new(10, 210, network as u8, 2 + rng.below(12) as u8));
        let aliases = if user && rng.chance(30) {
            vec![format!("alias{}", rng.below(4))]
        } else {
            Vec::new()
        };
        let ports = if rng.chance(30) {
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

    fn options(&self) -> EndpointOptions {
        EndpointOptions {
            ipv4: self.ip,
            aliases: self.aliases.clone(),
            ports: self
                .ports
                .iter()
                .enumerate()
                .map(|(k, p)| format!("{p}:{}", 80 + k).parse().unwrap())
                .collect(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    CreateNetwork(usize),
    RemoveNetwork(usize),
    /// `docker run`-like when it names a network: created and connected in one call.
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
                let attach = rng.chance(50).then(|| Attach::random(rng));
                Op::CreateSandbox(name, attach)
            }
            21..26 => Op::RemoveSandbox(sandbox(rng)),
            26..50 => Op::Connect(sandbox(rng), Attach::random(rng)),
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

    fn run(&self, ctl: &Controller) -> Result<(), Error> {
        match self {
            Op::CreateNetwork(i) => ctl.create_network(network_request(*i)).map(drop),
            Op::RemoveNetwork(i) => ctl.remove_network(&net_name(*i)),
            Op::CreateSandbox(name, attach) => {
                let mut req = SandboxCreate::new(name);
                if let Some(a) = attach {
                    req.network = Some(net_name(a.network));
                    req.endpoint = a.options();
                }
                ctl.create_sandbox(req).map(drop)
            }
            Op::RemoveSandbox(name) => ctl.remove_sandbox(name),
            Op::Connect(name, a) => ctl
                .connect(name, &net_name(a.network), a.options())
                .map(drop),
            Op::Disconnect(name, net) => ctl.disconnect(name, &net_name(*net)),
            Op::Rename(from, to) => ctl.rename_sandbox(from, to),
            Op::ListNetworks => {
                ctl.networks();
                Ok(())
            }
            Op::ListSandboxes => {
                ctl.sandboxes();
                Ok(())
            }
            Op::InspectNetwork(i) => ctl.inspect_network(&net_name(*i)).map(drop),
            Op::InspectSandbox(name) => ctl.inspect_sandbox(name).map(drop),
        }
    }

    fn attach(&self) -> Option<&Attach> {
        match self {
            Op::CreateSandbox(_, a) => a.as_ref(),
            Op::Connect(_, a) => Some(a),
            _ => None,
        }
    }

    /// Whether `e` is a refusal this operation may meet when others race it: a name taken, an
    /// object not found (or gone meanwhile), active endpoints, an address or host port taken, a
    /// fixed subnet held by a same-named network created at the same moment, ports on an
    /// internal network.
    fn may_fail_with(&self, e: &Error) -> bool {
        use berth_driver::DriverError as D;
        match e {
            Error::NetworkExists(_)
            | Error::NetworkNotFound(_)
            | Error::SandboxExists { .. }
            | Error::SandboxNotFound(_)
            | Error::ActiveEndpoints { .. }
            | Error::AlreadyConnected { .. }
            | Error::NotConnected { .. } => true,
            Error::Ipam(berth_ipam::Error::AddressInUse { .. }) => {
                self.attach().is_some_and(|a| a.ip.is_some())
            }
            Error::Ipam(berth_ipam::Error::PoolOverlap { .. }) => {
                matches!(self, Op::CreateNetwork(i) if fixed_subnet(*i))
            }
            Error::Driver(D::PortMapping(inner)) => {
                matches!(
                    inner.downcast_ref::<berth_portmap::Error>(),
                    Some(berth_portmap::Error::PortAllocated { .. })
                ) && self.attach().is_some_and(|a| !a.ports.is_empty())
            }
            Error::Driver(D::InvalidConfig(m)) => {
                m.contains("internal network")
                    && self.attach().is_some_and(|a| {
                        !a.ports.is_empty() && a.network < NETWORKS && internal(a.network)
                    })
            }
            _ => false,
        }
    }
}

/// What the watchdog removes before it aborts the process: the sandbox namespaces' mounts under
/// the exec root, the test host's and LAN peer's namespaces, and the state directory. (The kernel
/// objects inside the namespaces go with them once the process exits.)
fn cleanup_of(f: &Fixture, peer: &LanPeer) -> Box<dyn Fn() -> String + Send + Sync> {
    let netns_dir = f.netns_dir();
    let state_dir = f.dir.path().to_path_buf();
    let namespaces = [f.host.name().to_owned(), peer.host().name().to_owned()];
    Box::new(move || {
        cleanup_paths(&netns_dir, &state_dir, &namespaces);
        String::new()
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

#[test]
fn eight_threads_of_random_operations_on_one_controller() {
    let s = Settings::from_env();
    let seed = s.seed;
    eprintln!(
        "soak: seed {seed} ({} threads x {} operations); replay with BERTH_SOAK_SEED={seed}",
        s.threads, s.ops
    );
    let f = Fixture::new();
    let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    let baseline = HostBaseline::take(f.host.netns()).unwrap();
    let main = s.threads;
    let wd = Watchdog::start("soak", seed, s.threads + 1, cleanup_of(&f, &peer));
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let counts = Counts::default();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..s.threads {
            let (ctl, wd, failures, stop, counts) = (f.ctl(), &wd, &failures, &stop, &counts);
            scope.spawn(move || {
                let mut rng = Rng::new(seed, t as u64 + 1);
                for i in 0..s.ops {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let op = Op::random(&mut rng);
                    let what = format!("#{i} {op:?}");
                    match wd.call(t, &what, || op.run(ctl)) {
                        Ok(()) => counts.ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) if op.may_fail_with(&e) => {
                            counts.refused.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => {
                            failures.lock().unwrap().push(format!(
                                "thread {t}, operation {what}: unexpected error: {e} ({e:?}); seed {seed}"
                            ));
                            stop.store(true, Ordering::Relaxed);
                            return;
                        }
                    };
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "soak (seed {seed}; replay with BERTH_SOAK_SEED={seed}):\n{}",
        failures.join("\n")
    );
    eprintln!(
        "soak: {} operations in {:.1} s: {} done, {} refused",
        s.threads * s.ops,
        started.elapsed().as_secs_f64(),
        counts.ok.load(Ordering::Relaxed),
        counts.refused.load(Ordering::Relaxed)
    );

    let ctl = f.ctl();
    let mismatches = wd.call(main, "consistency check", || {
        consistency::check_controller(ctl)
    });
    assert!(
        mismatches.is_empty(),
        "seed {seed}: berth's report and the kernel differ after the soak:\n{}",
        mismatches.join("\n")
    );
    eprintln!(
        "soak: consistent: {} networks, {} sandboxes",
        ctl.networks().len(),
        ctl.sandboxes().len()
    );

    traffic_on_a_sample(&f, &peer, &wd, main, seed);

    // Remove everything: the host is back to what it was before the soak.
    for sb in wd.call(main, "sandboxes()", || ctl.sandboxes()) {
        wd.call(main, &format!("remove_sandbox({})", sb.name), || {
            ctl.remove_sandbox(&sb.id)
        })
        .unwrap_or_else(|e| panic!("seed {seed}: removing sandbox {}: {e}", sb.name));
    }
    for net in wd.call(main, "networks()", || ctl.networks()) {
        if berth::PREDEFINED_NETWORKS.contains(&net.name.as_str()) {
            continue;
        }
        wd.call(main, &format!("remove_network({})", net.name), || {
            ctl.remove_network(&net.id)
        })
        .unwrap_or_else(|e| panic!("seed {seed}: removing network {}: {e}", net.name));
    }
    let mut left = wd.call(main, "consistency check", || {
        consistency::check_controller(ctl)
    });
    left.extend(baseline.diff(&HostBaseline::take(f.host.netns()).unwrap()));
    assert!(
        left.is_empty(),
        "seed {seed}: after removing everything, the host is not as it was:\n{}",
        left.join("\n")
    );
    wd.stop();
}

/// Real traffic through what the soak left: two sandboxes of a network with icc on ping each
/// other (two of one with icc off do not), and published ports answer a LAN peer. Where the soak
/// left no such pair or port, one is made.
fn traffic_on_a_sample(f: &Fixture, peer: &LanPeer, wd: &Watchdog, main: usize, seed: u64) {
    let ctl = f.ctl();
    let nets = wd.call(main, "networks()", || ctl.networks());
    let members = |pred: &dyn Fn(&berth::NetworkInspect) -> bool| -> Option<(String, Vec<String>)> {
        // The soak's own networks first, the default bridge last.
        let soak = nets.iter().filter(|n| n.name.starts_with("soak-n"));
        soak.chain(nets.iter().filter(|n| n.name == "bridge"))
            .filter(|n| pred(n))
            .find(|n| n.containers.len() >= 2)
            .map(|n| {
                (
                    n.name.clone(),
                    n.containers
                        .values()
                        .take(2)
                        .map(|c| c.name.clone())
                        .collect(),
                )
            })
    };
    let icc_on = |n: &berth::NetworkInspect| n.options.get(ICC).is_none_or(|v| v != "false");
    let (net, pair) = members(&icc_on).unwrap_or_else(|| {
        // Nothing to sample: a pair on the default bridge.
        for name in ["soak-probe-a", "soak-probe-b"] {
            let mut req = SandboxCreate::new(name);
            req.network = Some("bridge".into());
            wd.call(main, "create_sandbox(probe)", || ctl.create_sandbox(req))
                .unwrap();
        }
        (
            "bridge".into(),
            vec!["soak-probe-a".into(), "soak-probe-b".into()],
        )
    });
    let (a, b) = (&pair[0], &pair[1]);
    let (ip_a, ip_b) = (f.ip_of(a, &net), f.ip_of(b, &net));
    assert!(
        f.ping(a, &ip_b) && f.ping(b, &ip_a),
        "seed {seed}: {a} ({ip_a}) and {b} ({ip_b}) on {net} do not reach each other"
    );
    if let Some((net, pair)) = members(&|n| !icc_on(n)) {
        let ip = f.ip_of(&pair[1], &net);
        assert!(
            !f.ping(&pair[0], &ip),
            "seed {seed}: {} reaches {} ({ip}) on {net}, whose icc is off",
            pair[0],
            pair[1]
        );
        eprintln!(
            "soak: traffic: {} and {} on {net} (icc off) do not",
            pair[0], pair[1]
        );
    }

    // Published ports: (sandbox, container port, host port), up to three.
    let sandboxes = wd.call(main, "sandboxes()", || ctl.sandboxes());
    let mut published: Vec<(String, u16, u16)> = sandboxes
        .iter()
        .flat_map(|sb| {
            sb.ports.iter().flat_map(move |(key, binds)| {
                let cport: u16 = key.split('/').next().unwrap_or("").parse().unwrap_or(0);
                binds
                    .iter()
                    .filter(move |_| key.ends_with("/tcp"))
                    .map(move |b| (sb.name.clone(), cport, b.host_port.parse().unwrap_or(0)))
            })
        })
        .take(3)
        .collect();
    if published.is_empty() {
        let mut req = SandboxCreate::new("soak-probe-p");
        req.network = Some("bridge".into());
        req.endpoint.ports = vec!["20999:80".parse().unwrap()];
        wd.call(main, "create_sandbox(probe-p)", || ctl.create_sandbox(req))
            .unwrap();
        published.push(("soak-probe-p".into(), 80, 20999));
    }
    // One server per sandbox and container port, on every address of the sandbox.
    let mut servers = BTreeMap::new();
    for (sb, cport, _) in &published {
        if let Entry::Vacant(slot) = servers.entry((sb.clone(), *cport)) {
            let any: SocketAddr = format!("0.0.0.0:{cport}").parse().unwrap();
            slot.insert(TcpBanner::start(&f.sandbox_ns(sb), any, sb).unwrap());
        }
    }
    for (sb, cport, hport) in &published {
        let to: SocketAddr = format!("192.0.2.1:{hport}").parse().unwrap();
        let got = tcp_fetch(peer.netns(), to, TIMEOUT);
        assert_eq!(
            got.as_ref().ok().map(String::as_str),
            Some(format!("{sb} from 192.0.2.2").as_str()),
            "seed {seed}: host port {hport} of {sb} (container port {cport}) from the LAN: {got:?}"
        );
    }
    eprintln!(
        "soak: traffic: {a} and {b} on {net} reach each other; {} published ports answer the LAN",
        published.len()
    );
}

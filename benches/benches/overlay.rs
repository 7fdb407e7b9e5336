//! Overlay benchmarks (berth issue 16, "Performance"), as root, inside throwaway namespaces: an
//! underlay switch, etcd on a host of its own on it, and berth hosts (a controller and the
//! overlay driver each, with the host's own etcd client connected from its namespace over the
//! underlay). A measured scenario, not criterion: each part prints a table.
//!
//! 1. **Connect** on one host: a fresh sandbox to an overlay network (which also joins it to
//!    `docker_gwbridge`, as Docker does), median of 60; target 10 ms. Baseline in the same run,
//!    interleaved: a fresh sandbox to a bridge network. Also the overlay connect of a sandbox
//!    already on a bridge network (no gateway bridge), and the first join of a network on a host
//!    (which makes its namespace, bridge and VXLAN device).
//! 2. **Convergence**: from `connect` returning on host A to the first ICMP echo answered from a
//!    sandbox on host B to the new sandbox (probes every 2 ms); 100 trials, a fresh sandbox each,
//!    removed between; p50/p99/max, target p99 200 ms.
//! 3. **Throughput**: iperf3 TCP between sandboxes on two hosts over the overlay, against VXLANs
//!    made by hand with iproute2 between two more hosts on the same underlay (bare: the address on
//!    the VXLAN device; bridged: berth's topology, sandbox, veth, bridge, VXLAN; and bridged with
//!    connection tracking on in its hosts, as a berth host's NAT table turns it on) in the same
//!    run, alternating; target 0.95x the bare one. The underlay's own veth rate for context.
//! 4. **Scale**: a network with 1000 remote endpoints (synthetic peer records under a real lease,
//!    remote VTEP 192.168.200.250) and one local sandbox: (a) the kernel time of one more remote
//!    endpoint ([`berth_overlay::OverlayDriver::peer_stats`]), at 0 and at 1000, target 1 ms;
//!    (b) a host's first join of that network until all of them are programmed, target 1 s.
//! 5. **Store requests** per operation, counted by a [`berth_store::KvStore`] wrapper around each
//!    host's etcd client: network create, connect, disconnect, network rm, and 10 idle seconds
//!    (only lease keep-alives: the peers are followed by a watch).
//!
//! Run with `cargo bench -p berth-benches --bench overlay` or `cargo xtask bench overlay`
//! (needs etcd-server, iperf3, iproute2, iptables and busybox; about three minutes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "overlay/fixture.rs"]
mod fixture;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use berth::GATEWAY_BRIDGE;
use berth_driver::{EndpointId, NetworkId, mac_from_ipv4};
use berth_overlay::PEER_PREFIX;
use berth_overlay::cluster::PeerRecord;
use berth_store::{EtcdStore, KvStore, LeaseId, Txn};
use fixture::{
    BARE, BRIDGED, Cluster, Counts, HandVxlan, Node, Pinger, bridge, iperf_server, iperf_tcp,
    overlay,
};

/// Rounds of scenario 1, and connects of each kind per round.
const ROUNDS: usize = 6;
const PER_ROUND: usize = 10;
/// Trials of scenario 2.
const TRIALS: usize = 100;
/// How often the convergence probe sends an echo request (and how long it waits for each).
const PROBE_EVERY: Duration = Duration::from_millis(2);
/// Seconds of each iperf3 run over the overlay and the bare hand-made tunnel, and of the runs
/// over the bridged hand-made tunnel and the underlay; `IPERF_ROUNDS` rounds of every path but
/// the underlay (one run), alternating.
const IPERF_SECS: u32 = 10;
const IPERF_ROUNDS: usize = 3;
const IPERF_CONTEXT_SECS: u32 = 5;
/// Remote endpoints of scenario 4, and single adds timed at each level.
const REMOTE: usize = 1000;
const ONE_MORE: usize = 50;
/// The VXLAN tunnel end of the synthetic endpoints (no host has it).
const SYNTHETIC_VTEP: Ipv4Addr = Ipv4Addr::new(192, 168, 200, 250);

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let started = Instant::now();
    println!("# berth overlay bench");
    println!("{}", berth_benches::machine_line());
    // `OVERLAY_BENCH=1,4` runs scenarios 1 and 4 only (3 needs 2's hosts: it runs 2 too).
    let only = std::env::var("OVERLAY_BENCH").ok();
    let run = |n: &str| {
        only.as_ref()
            .is_none_or(|o| o.split(',').any(|x| x.trim() == n))
    };
    let cluster = Cluster::new();
    if run("1") {
        connect_latency(&cluster);
    }
    if run("2") || run("3") {
        let (a, b) = convergence(&cluster);
        if run("3") {
            throughput(&cluster, &a, &b);
        }
    }
    if run("4") {
        scale(&cluster);
    }
    if run("5") {
        requests(&cluster);
    }
    println!("\n{}", berth_benches::whole_run_line(started));
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// The `p`th percentile (nearest rank) of `samples`.
fn pct(samples: &[Duration], p: f64) -> Duration {
    let mut s = samples.to_vec();
    s.sort_unstable();
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

fn median(samples: &[Duration]) -> Duration {
    pct(samples, 50.0)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**NOT MET**" }
}

fn timed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

/// Scenario 1: connect latency on one host, overlay against bridge.
fn connect_latency(cluster: &Cluster) {
    let a = Node::new(cluster, "s1/", false);
    a.ctl()
        .create_network(overlay("ov1", "10.201.0.0/16"))
        .unwrap();
    a.ctl()
        .create_network(bridge("br1", "10.202.0.0/16"))
        .unwrap();
    // The network's data path and docker_gwbridge exist from here on.
    a.sandbox_on("anchor", "ov1");
    let ov = a.network_id("ov1");

    // First joins: each makes a network's namespace, bridge and VXLAN device on the host.
    let mut first = Vec::new();
    for i in 0..5 {
        let net = format!("ovfirst{i}");
        a.ctl()
            .create_network(overlay(&net, &format!("10.210.{i}.0/24")))
            .unwrap();
        a.sandbox("first");
        first.push(timed(|| a.connect("first", &net)));
        a.ctl().remove_sandbox("first").unwrap();
        a.ctl().remove_network(&net).unwrap();
    }

    let nets = [ov];
    let level = a.links(&nets);
    let (mut ovs, mut brs, mut ov_gw, mut gws) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        let names: Vec<[String; 3]> = (0..PER_ROUND)
            .map(|i| {
                [
                    format!("o{r}-{i}"),
                    format!("b{r}-{i}"),
                    format!("g{r}-{i}"),
                ]
            })
            .collect();
        for n in names.iter().flatten() {
            a.sandbox(n);
        }
        for [o, b, g] in &names {
            ovs.push(timed(|| a.connect(o, "ov1")));
            brs.push(timed(|| a.connect(b, "br1")));
            gws.push(timed(|| a.connect(g, GATEWAY_BRIDGE)));
        }
        for [_, b, _] in &names {
            ov_gw.push(timed(|| a.connect(b, "ov1")));
        }
        for n in names.iter().flatten() {
            a.ctl().remove_sandbox(n).unwrap();
        }
        a.settle(&nets, level);
    }
    let (m_ov, m_br) = (median(&ovs), median(&brs));
    println!(
        "\n## 1. connect on one host ({} connects of each kind)\n",
        ovs.len()
    );
    println!("| connect | median | p90 | target |");
    println!("|---|---|---|---|");
    println!(
        "| fresh sandbox to the overlay network (joins docker_gwbridge too) | {} | {} | 10 ms: {} |",
        ms(m_ov),
        ms(pct(&ovs, 90.0)),
        verdict(m_ov <= Duration::from_millis(10))
    );
    println!(
        "| fresh sandbox to a bridge network (baseline, same run, interleaved) | {} | {} | - |",
        ms(m_br),
        ms(pct(&brs, 90.0))
    );
    println!(
        "| ratio overlay / bridge | {:.2}x | | - |",
        m_ov.as_secs_f64() / m_br.as_secs_f64()
    );
    println!(
        "| sandbox already on a bridge network to the overlay (no gateway bridge) | {} | {} | - |",
        ms(median(&ov_gw)),
        ms(pct(&ov_gw, 90.0))
    );
    println!(
        "| fresh sandbox to docker_gwbridge itself (a bridge network, icc off, masquerade) | {} | {} | - |",
        ms(median(&gws)),
        ms(pct(&gws, 90.0))
    );
    println!(
        "| first join of a network on the host (makes its namespace, bridge, VXLAN), {} networks | {} | max {} | - |",
        first.len(),
        ms(median(&first)),
        ms(pct(&first, 100.0))
    );
}

/// Scenario 2: from connect on A to the first answered probe from B. Returns the two hosts
/// (with A's `anchor` and B's `probe` on `ov2`) for the throughput scenario.
fn convergence(cluster: &Cluster) -> (Node, Node) {
    let a = Node::new(cluster, "s2/", false);
    let b = Node::new(cluster, "s2/", false);
    a.ctl()
        .create_network(overlay("ov2", "10.203.0.0/16"))
        .unwrap();
    Node::wait("b learns of ov2", 10, || {
        b.ctl().inspect_network("ov2").is_ok()
    });
    let id = a.network_id("ov2");
    let anchor = a.sandbox_on("anchor", "ov2");
    b.sandbox_on("probe", "ov2");
    Node::wait("b programs a's anchor", 10, || {
        b.overlay.programmed_peers(&id) == 1
    });
    let mut pinger = Pinger::new(&b.sandbox_ns("probe"));
    let warm = pinger.first_answer(anchor, PROBE_EVERY, Instant::now() + Duration::from_secs(5));
    assert!(
        warm.is_some(),
        "b's probe reaches a's anchor over the overlay"
    );

    let mut conv = Vec::with_capacity(TRIALS);
    let mut programmed_before_return = 0;
    let mut slow = Vec::new();
    for t in 0..TRIALS {
        let name = format!("t{t}");
        a.sandbox(&name);
        let before = b.overlay.peer_stats().programmed;
        a.connect(&name, "ov2");
        let returned = Instant::now();
        if b.overlay.peer_stats().programmed > before {
            programmed_before_return += 1;
        }
        let ip = a.ip_of(&name, "ov2");
        let answered = pinger
            .first_answer(ip, PROBE_EVERY, returned + Duration::from_secs(5))
            .unwrap_or_else(|| panic!("trial {t}: {ip} never answered from host b"));
        let took = answered - returned;
        if took > Duration::from_millis(200) {
            slow.push((t, took));
        }
        conv.push(took);
        a.ctl().remove_sandbox(&name).unwrap();
        Node::wait("b forgets the trial's endpoint", 10, || {
            b.overlay.programmed_peers(&id) == 1
        });
    }
    let p99 = pct(&conv, 99.0);
    println!(
        "\n## 2. convergence, connect on host A to first answer from host B ({TRIALS} trials)\n"
    );
    println!("| p50 | p90 | p99 | max | target (p99) |");
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | 200 ms: {} |",
        ms(median(&conv)),
        ms(pct(&conv, 90.0)),
        ms(p99),
        ms(pct(&conv, 100.0)),
        verdict(p99 <= Duration::from_millis(200))
    );
    println!(
        "\nB had programmed the new endpoint before `connect` returned on A in {programmed_before_return} of {TRIALS} trials; trials over 200 ms: {slow:?}"
    );
    (a, b)
}

/// Scenario 3: iperf3 over the overlay against hand-made VXLANs and the underlay.
fn throughput(cluster: &Cluster, a: &Node, b: &Node) {
    let id = a.network_id("ov2");
    let mtu = a.overlay.mtu_of(&id).unwrap();
    let to = IpAddr::V4(b.ip_of("probe", "ov2"));
    let (client_ns, server_ns) = (a.sandbox_ns("anchor"), b.sandbox_ns("probe"));
    let _berth = iperf_server(&server_ns, to);
    let hand = HandVxlan::new(cluster, mtu);
    let (c, d) = (&hand.hosts[0].host, &hand.hosts[1].host);
    let _bare = iperf_server(d.netns(), IpAddr::V4(BARE[1]));
    let _bridged = iperf_server(hand.sandboxes[1].netns(), IpAddr::V4(BRIDGED[1]));
    let _underlay = iperf_server(b.ul.host.netns(), b.ul.addr);
    for (ns, ip) in [
        (c.netns(), BARE[1]),
        (hand.sandboxes[0].netns(), BRIDGED[1]),
    ] {
        let answered =
            Pinger::new(ns).first_answer(ip, PROBE_EVERY, Instant::now() + Duration::from_secs(5));
        assert!(answered.is_some(), "the hand-made tunnel reaches {ip}");
    }

    let bridged_ns = hand.sandboxes[0].netns();
    let (mut berth, mut bare, mut bridged, mut tracked) = (vec![], vec![], vec![], vec![]);
    for _ in 0..IPERF_ROUNDS {
        berth.push(iperf_tcp(&client_ns, to, IPERF_SECS));
        bare.push(iperf_tcp(c.netns(), IpAddr::V4(BARE[1]), IPERF_SECS));
        bridged.push(iperf_tcp(
            bridged_ns,
            IpAddr::V4(BRIDGED[1]),
            IPERF_CONTEXT_SECS,
        ));
        hand.conntrack(true);
        tracked.push(iperf_tcp(
            bridged_ns,
            IpAddr::V4(BRIDGED[1]),
            IPERF_CONTEXT_SECS,
        ));
        hand.conntrack(false);
    }
    let underlay = iperf_tcp(a.ul.host.netns(), b.ul.addr, IPERF_CONTEXT_SECS);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (m_berth, m_bare) = (mean(&berth), mean(&bare));
    let ratio = m_berth / m_bare;
    println!("\n## 3. throughput, iperf3 TCP between two hosts (MTU {mtu} inside the tunnels)\n");
    println!("| path | Gbit/s (runs) | mean | ratio to the bare hand-made VXLAN | target |");
    println!("|---|---|---|---|---|");
    let runs = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "| berth overlay, sandbox to sandbox ({IPERF_SECS} s each) | {} | {m_berth:.2} | {ratio:.2}x | 0.95x: {} |",
        runs(&berth),
        verdict(ratio >= 0.95)
    );
    println!(
        "| hand-made VXLAN, bare (address on the VXLAN device; {IPERF_SECS} s each) | {} | {m_bare:.2} | 1.00x | - |",
        runs(&bare)
    );
    println!(
        "| hand-made VXLAN, bridged (sandbox, veth, bridge, VXLAN, as berth; {IPERF_CONTEXT_SECS} s each) | {} | {:.2} | {:.2}x | - |",
        runs(&bridged),
        mean(&bridged),
        mean(&bridged) / m_bare
    );
    println!(
        "| the same with connection tracking on in its two hosts (as a berth host's NAT table turns it on; {IPERF_CONTEXT_SECS} s each) | {} | {:.2} | {:.2}x | - |",
        runs(&tracked),
        mean(&tracked),
        mean(&tracked) / m_bare
    );
    println!(
        "| underlay veth, host to host (MTU 1500, no tunnel; {IPERF_CONTEXT_SECS} s) | {underlay:.2} | {underlay:.2} | {:.2}x | - |",
        underlay / m_bare
    );
}

/// A synthetic remote endpoint `i` of `network`: its key and stored record.
fn synthetic(network: &NetworkId, i: usize) -> (String, Vec<u8>) {
    let mut bytes = [0xee; 32];
    bytes[..8].copy_from_slice(&(i as u64).to_be_bytes());
    let ep = EndpointId::from_bytes(bytes);
    let ip = Ipv4Addr::new(10, 204, 100 + (i / 250) as u8, 1 + (i % 250) as u8);
    let rec = PeerRecord {
        ipv4: Some(ip),
        ipv6: None,
        mac: mac_from_ipv4(ip),
        vtep: IpAddr::V4(SYNTHETIC_VTEP),
    };
    (
        format!("{PEER_PREFIX}{network}/{ep}"),
        serde_json::to_vec(&rec).unwrap(),
    )
}

/// Kernel time of adding and of removing one remote endpoint, and from the store write to it
/// being programmed, for synthetic endpoints `range` (each added, then removed).
struct OneMore {
    program: Vec<Duration>,
    unprogram: Vec<Duration>,
    write_to_programmed: Vec<Duration>,
}

fn one_more(
    node: &Node,
    publisher: &EtcdStore,
    lease: LeaseId,
    network: &NetworkId,
    range: std::ops::Range<usize>,
) -> OneMore {
    let stats = || node.overlay.peer_stats();
    let mut out = OneMore {
        program: Vec::new(),
        unprogram: Vec::new(),
        write_to_programmed: Vec::new(),
    };
    for i in range {
        let (key, value) = synthetic(network, i);
        let s0 = stats();
        let t = Instant::now();
        publisher.put_with_lease(&key, &value, lease).unwrap();
        Node::wait("one more endpoint programmed", 10, || {
            stats().programmed > s0.programmed
        });
        out.write_to_programmed.push(t.elapsed());
        let s1 = stats();
        assert_eq!(s1.programmed, s0.programmed + 1);
        out.program.push(s1.program_time - s0.program_time);
        publisher.delete(&key).unwrap();
        Node::wait("one endpoint removed", 10, || {
            stats().unprogrammed > s1.unprogrammed
        });
        out.unprogram
            .push(stats().unprogram_time - s1.unprogram_time);
    }
    out
}

/// Scenario 4: 1000 remote endpoints.
fn scale(cluster: &Cluster) {
    let root = "s4/";
    let a = Node::new(cluster, root, false);
    let b = Node::new(cluster, root, false);
    a.ctl()
        .create_network(overlay("ov4", "10.204.0.0/16"))
        .unwrap();
    let id = a.network_id("ov4");
    Node::wait("b learns of ov4", 10, || {
        b.ctl().inspect_network("ov4").is_ok()
    });
    let local = a.sandbox_on("local", "ov4");
    let publisher = cluster.publisher(root);
    let lease = publisher.grant_lease(Duration::from_secs(60)).unwrap();

    let at0 = one_more(&a, &publisher, lease, &id, REMOTE..REMOTE + ONE_MORE);
    assert_eq!(a.overlay.programmed_peers(&id), 0);

    let fill = Instant::now();
    for chunk in (0..REMOTE).collect::<Vec<_>>().chunks(100) {
        let mut txn = Txn::new();
        for &i in chunk {
            let (key, value) = synthetic(&id, i);
            txn = txn.put_with_lease(key, value, lease);
        }
        publisher.commit(txn).unwrap();
    }
    Node::wait("a programs 1000 remote endpoints", 30, || {
        a.overlay.programmed_peers(&id) == REMOTE
    });
    let filled = fill.elapsed();
    publisher.keep_alive(lease).unwrap();
    let at1000 = one_more(&a, &publisher, lease, &id, REMOTE..REMOTE + ONE_MORE);
    publisher.keep_alive(lease).unwrap();

    // (b) B's first join of the network.
    b.sandbox("joiner");
    let s0 = b.overlay.peer_stats();
    let t = Instant::now();
    b.connect("joiner", "ov4");
    let connect_took = t.elapsed();
    let at_return = b.overlay.programmed_peers(&id);
    Node::wait("b programs every remote endpoint", 10, || {
        b.overlay.programmed_peers(&id) == REMOTE + 1
    });
    let converged = t.elapsed();
    let sb = b.overlay.peer_stats();
    let reached = Pinger::new(&b.sandbox_ns("joiner")).first_answer(
        local,
        PROBE_EVERY,
        Instant::now() + Duration::from_secs(5),
    );
    assert!(
        reached.is_some(),
        "b's joiner reaches a's sandbox among 1000 others"
    );

    // The lease ends: every synthetic endpoint goes from both hosts.
    let t = Instant::now();
    publisher.revoke_lease(lease).unwrap();
    Node::wait("a and b forget the 1000", 30, || {
        a.overlay.programmed_peers(&id) == 1 && b.overlay.programmed_peers(&id) == 1
    });
    let revoked = t.elapsed();

    let per = |d: Duration, n: u64| ms(d / u32::try_from(n.max(1)).unwrap_or(u32::MAX));
    let (p0, p1000) = (median(&at0.program), median(&at1000.program));
    println!("\n## 4. scale: one local sandbox, {REMOTE} remote endpoints\n");
    println!("| measurement | at 0 remote | at {REMOTE} remote | target |");
    println!("|---|---|---|---|");
    println!(
        "| kernel time to program one more remote endpoint (median of {ONE_MORE}; p90) | {} ({}) | {} ({}) | 1 ms: {} |",
        ms(p0),
        ms(pct(&at0.program, 90.0)),
        ms(p1000),
        ms(pct(&at1000.program, 90.0)),
        verdict(p1000 <= Duration::from_millis(1) && p0 <= Duration::from_millis(1))
    );
    println!(
        "| kernel time to remove one (median; p90) | {} ({}) | {} ({}) | - |",
        ms(median(&at0.unprogram)),
        ms(pct(&at0.unprogram, 90.0)),
        ms(median(&at1000.unprogram)),
        ms(pct(&at1000.unprogram, 90.0))
    );
    println!(
        "| etcd write to programmed on the host (median; p90) | {} ({}) | {} ({}) | - |",
        ms(median(&at0.write_to_programmed)),
        ms(pct(&at0.write_to_programmed, 90.0)),
        ms(median(&at1000.write_to_programmed)),
        ms(pct(&at1000.write_to_programmed, 90.0))
    );
    println!("\n| host B's first join of the network | measured | target |\n|---|---|---|");
    println!(
        "| connect returned (data path made, {} of {} remote endpoints programmed by then) | {} | - |",
        at_return,
        REMOTE + 1,
        ms(connect_took)
    );
    println!(
        "| from the connect's start until all {} are programmed | {} | 1 s: {} |",
        REMOTE + 1,
        ms(converged),
        verdict(converged <= Duration::from_secs(1))
    );
    println!(
        "| of which kernel programming ({} endpoints, {} each) | {} | - |",
        sb.programmed - s0.programmed,
        per(
            sb.program_time - s0.program_time,
            sb.programmed - s0.programmed
        ),
        ms(sb.program_time - s0.program_time)
    );
    println!(
        "\nContext: publishing {REMOTE} endpoints in 10 transactions until host A programmed them all: {}; revoking their lease until both hosts removed them all: {}.",
        ms(filled),
        ms(revoked)
    );
}

/// Scenario 5: store requests per operation on each host.
fn requests(cluster: &Cluster) {
    let a = Node::new(cluster, "s5/", true);
    let b = Node::new(cluster, "s5/", true);
    let (ca, cb) = (a.counts.clone().unwrap(), b.counts.clone().unwrap());
    let settle = || std::thread::sleep(Duration::from_millis(500));
    settle();
    let mut rows: Vec<(&str, Counts, Counts)> = Vec::new();
    let mut measure = |what: &'static str, f: &dyn Fn()| {
        let (a0, b0) = (ca.snapshot(), cb.snapshot());
        f();
        settle();
        rows.push((what, ca.snapshot().since(a0), cb.snapshot().since(b0)));
    };
    measure("network create (overlay) on A", &|| {
        a.ctl()
            .create_network(overlay("ov5", "10.205.0.0/16"))
            .unwrap();
    });
    assert!(b.ctl().inspect_network("ov5").is_ok(), "b learned of ov5");
    a.sandbox("s1");
    a.sandbox("s2");
    b.sandbox("r1");
    measure(
        "connect on A, its first sandbox on the network (data path, lease granted)",
        &|| a.connect("s1", "ov5"),
    );
    measure("connect on A, a second sandbox", &|| a.connect("s2", "ov5"));
    measure("connect on B, its first sandbox on the network", &|| {
        b.connect("r1", "ov5")
    });
    let (a0, b0) = (ca.snapshot(), cb.snapshot());
    std::thread::sleep(Duration::from_secs(10));
    let idle = (ca.snapshot().since(a0), cb.snapshot().since(b0));
    measure("disconnect on A, the second sandbox", &|| {
        a.ctl().disconnect("s2", "ov5").unwrap();
    });
    measure(
        "disconnect on A, its last sandbox (data path removed)",
        &|| {
            a.ctl().disconnect("s1", "ov5").unwrap();
        },
    );
    b.ctl().disconnect("r1", "ov5").unwrap();
    settle();
    measure("network rm on A", &|| {
        a.ctl().remove_network("ov5").unwrap();
    });
    println!(
        "\n## 5. etcd requests per operation (counted on each host's store; 0.5 s after each operation included)\n"
    );
    println!("| operation | host A (acting) | host B (the other) |");
    println!("|---|---|---|");
    for (what, ra, rb) in &rows {
        println!("| {what} | {} ({ra}) | {} ({rb}) |", ra.total(), rb.total());
    }
    let only_keep_alive = idle.0.besides_keep_alive() == 0 && idle.1.besides_keep_alive() == 0;
    println!(
        "| 10 idle seconds, both hosts with a sandbox on the network | {} ({}) | {} ({}) |",
        idle.0.total(),
        idle.0,
        idle.1.total(),
        idle.1
    );
    println!(
        "\nIdle: only lease keep-alives, no polling: {}",
        verdict(only_keep_alive)
    );
}

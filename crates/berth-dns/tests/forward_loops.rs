//! Kernel tests of forwarding loops (hardening issue #14): an upstream that leads back to the
//! embedded resolver itself, directly (`--dns 127.0.0.11`) or through another sandbox whose
//! resolver is reachable by DNAT, must end in a fast SERVFAIL and a log line, never in a storm of
//! forwarded queries; and one sandbox hammering such a name must not slow another sandbox's
//! lookups. Real namespaces, real DNS packets (counted by nftables in the sandboxes), a fake
//! upstream in a LAN peer. Run as root; every namespace is a throwaway one, deleted also on panic.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth_dns::{DnsSettings, ResolvMode, plan_resolv_conf};
use berth_testhost::{TestHost, logs};
use common::{Mode, UPSTREAM, World};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

/// The captured warnings that contain every one of `words`.
fn warnings_with(words: &[&str]) -> Vec<String> {
    logs::matching(words)
        .into_iter()
        .filter(|l| l.starts_with("WARN"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// DNS over raw sockets.

fn query(name: &str, id: u16) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id).set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

fn resolver_addr() -> SocketAddr {
    "127.0.0.11:53".parse().unwrap()
}

/// A client socket inside a sandbox, connected to 127.0.0.11:53.
fn client(sb: &TestHost, timeout: Duration) -> UdpSocket {
    let s = sb
        .netns()
        .run(|| UdpSocket::bind("127.0.0.1:0").unwrap())
        .unwrap();
    s.connect(resolver_addr()).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s
}

/// Asks `name` once; the answer and how long it took (None: no answer within the timeout).
fn ask(sock: &UdpSocket, name: &str, id: u16) -> (Option<Message>, Duration) {
    let started = Instant::now();
    sock.send(&query(name, id)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(n) = sock.recv(&mut buf) else {
            return (None, started.elapsed());
        };
        let Ok(m) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if m.id() == id {
            return (Some(m), started.elapsed());
        }
    }
}

fn first_a(m: &Message) -> Option<Ipv4Addr> {
    m.answers().iter().find_map(|r| match r.data() {
        RData::A(a) => Some(a.0),
        _ => None,
    })
}

// ---------------------------------------------------------------------------------------------
// Packet counters and the DNAT that makes a sandbox's resolver reachable from outside.

/// Counts, in `sb`, DNS queries sent to 127.0.0.11:53 (clients and any forward to itself), and
/// DNS queries arriving on eth0 for port 53 (forwards of other sandboxes).
fn install_counters(sb: &TestHost) {
    sb.run_with_input(
        "nft",
        &["-f", "-"],
        "table ip loop-count {\n\
           counter to_self { }\n\
           counter from_outside { }\n\
           chain out {\n\
             type filter hook output priority raw - 10; policy accept;\n\
             ip daddr 127.0.0.11 udp dport 53 counter name \"to_self\"\n\
           }\n\
           chain pre {\n\
             type filter hook prerouting priority raw - 10; policy accept;\n\
             iifname \"eth0\" udp dport 53 counter name \"from_outside\"\n\
           }\n\
         }\n",
    )
    .unwrap();
}

fn counted(sb: &TestHost, counter: &str) -> u64 {
    let out = sb
        .run("nft", &["list", "counter", "ip", "loop-count", counter])
        .unwrap();
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .unwrap_or_else(|| panic!("no packet count in {out}"))
        .parse()
        .unwrap()
}

/// Makes the resolver of sandbox `id` answer on `addr:53` (eth0) too, as an engine's or a user's
/// DNAT would: queries arriving on eth0 are DNATed to the server's port on 127.0.0.11, and its
/// answers leave with `addr` as their source.
fn expose_resolver(w: &World, i: usize, addr: Ipv4Addr) {
    let sb = &w.sb(i).ns;
    let ports = w.resolver.server_ports(&w.sb(i).id).unwrap().unwrap();
    sb.run(
        "sh",
        &["-c", "echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet"],
    )
    .unwrap();
    sb.run_with_input(
        "nft",
        &["-f", "-"],
        &format!(
            "table ip expose-dns {{\n\
               chain pre {{\n\
                 type nat hook prerouting priority dstnat; policy accept;\n\
                 iifname \"eth0\" udp dport 53 dnat to 127.0.0.11:{udp}\n\
                 iifname \"eth0\" tcp dport 53 dnat to 127.0.0.11:{tcp}\n\
               }}\n\
               chain post {{\n\
                 type filter hook postrouting priority srcnat + 10; policy accept;\n\
                 oifname \"eth0\" ip saddr 127.0.0.11 ip saddr set {addr}\n\
               }}\n\
             }}\n",
            udp = ports.udp,
            tcp = ports.tcp,
        ),
    )
    .unwrap();
}

fn on_port_53(a: Ipv4Addr) -> SocketAddr {
    SocketAddr::new(a.into(), 53)
}

fn upstream() -> SocketAddr {
    format!("{UPSTREAM}:53").parse().unwrap()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn dns_127_0_0_11_is_never_an_upstream_and_answers_servfail_at_once() {
    logs::capture();
    // The planner drops it from `--dns` (the file still names only 127.0.0.11).
    let plan = plan_resolv_conf(
        "nameserver 10.0.0.1\n",
        &DnsSettings {
            servers: vec!["127.0.0.11".parse().unwrap()],
            ..DnsSettings::default()
        },
        ResolvMode::Embedded,
    )
    .unwrap();
    assert!(plan.upstreams.is_empty(), "{:?}", plan.upstreams);
    assert!(plan.content.starts_with("nameserver 127.0.0.11\n"));

    // The resolver drops it when it is given anyway, with a warning that names the sandbox.
    let mut w = World::new(Mode::Answer);
    w.network("loopnet1", 11, false, true);
    let a = w.sandbox("selfie", &[resolver_addr()]);
    w.connect(a, "loopnet1", 2, &[]);
    let sa = &w.sb(a).ns;
    install_counters(sa);
    assert!(
        !warnings_with(&["sb-selfie", "127.0.0.11"]).is_empty(),
        "the dropped upstream is logged: {:?}",
        logs::lines()
    );

    let sock = client(sa, Duration::from_secs(6));
    let (answer, took) = ask(&sock, "loop.example", 1);
    let answer = answer.expect("an answer");
    assert_eq!(answer.response_code(), ResponseCode::ServFail);
    assert!(took < Duration::from_millis(300), "{took:?}");
    // Only the client's own query went to 127.0.0.11:53: nothing was forwarded to it.
    assert_eq!(counted(sa, "to_self"), 1);

    // Among other upstreams it is dropped and the others are used; the server's own port on
    // 127.0.0.11 is refused just the same.
    let ports = w.resolver.server_ports("sb-selfie").unwrap().unwrap();
    let own = SocketAddr::new(Ipv4Addr::new(127, 0, 0, 11).into(), ports.udp);
    w.resolver
        .set_upstreams("sb-selfie", &[resolver_addr(), own, upstream()])
        .unwrap();
    let (answer, _) = ask(&sock, "ext.example", 2);
    assert_eq!(
        answer.as_ref().and_then(first_a),
        Some(Ipv4Addr::new(198, 51, 100, 7)),
        "{answer:?}"
    );
    assert_eq!(counted(sa, "to_self"), 2);
    assert_eq!(w.upstream.saw("ext.example"), vec!["udp"]);
}

#[test]
fn a_loop_through_another_sandbox_is_cut_at_the_first_return_and_logged() {
    logs::capture();
    let mut w = World::new(Mode::Answer);
    w.network("loopnet2", 12, false, true);
    let a = w.sandbox("ringa", &[]);
    let c = w.sandbox("ringc", &[]);
    let ip_a = w.connect(a, "loopnet2", 2, &[]);
    let ip_c = w.connect(c, "loopnet2", 3, &[]);
    expose_resolver(&w, a, ip_a);
    expose_resolver(&w, c, ip_c);
    install_counters(&w.sb(a).ns);
    install_counters(&w.sb(c).ns);

    // A chain is fine: ringa forwards to ringc's resolver, which forwards to the real upstream.
    w.resolver
        .set_upstreams("sb-ringa", &[on_port_53(ip_c)])
        .unwrap();
    let sock = client(&w.sb(a).ns, Duration::from_secs(6));
    let (answer, _) = ask(&sock, "ext.example", 1);
    assert_eq!(
        answer.as_ref().and_then(first_a),
        Some(Ipv4Addr::new(198, 51, 100, 7)),
        "through ringc: {answer:?}"
    );
    assert_eq!(counted(&w.sb(c).ns, "from_outside"), 1);

    // A loop is not: ringc now forwards back to ringa.
    w.resolver
        .set_upstreams("sb-ringc", &[on_port_53(ip_a)])
        .unwrap();
    let started = Instant::now();
    let (answer, took) = ask(&sock, "loop.example", 2);
    let answer = answer.expect("an answer");
    assert_eq!(answer.response_code(), ResponseCode::ServFail);
    assert!(took < Duration::from_millis(500), "{took:?}");
    // One forward each way, then the loop was seen where it closed.
    assert_eq!(counted(&w.sb(c).ns, "from_outside"), 2, "ringa -> ringc");
    assert_eq!(counted(&w.sb(a).ns, "from_outside"), 1, "ringc -> ringa");
    let logged = warnings_with(&["sb-ringa", "loop"]);
    assert!(
        !logged.is_empty(),
        "the loop is logged: {:?}",
        logs::lines()
    );
    assert!(
        logged.iter().any(|l| l.contains("loop.example")),
        "{logged:?}"
    );
    // Nothing keeps going round after the answer.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counted(&w.sb(a).ns, "from_outside"), 1);
    assert_eq!(counted(&w.sb(c).ns, "from_outside"), 2);
    // A burst of the looping name is logged once, not once per query.
    let before = warnings_with(&["sb-ringa", "loop"]).len();
    for id in 3..53 {
        let (answer, _) = ask(&sock, "loop.example", id);
        assert_eq!(answer.unwrap().response_code(), ResponseCode::ServFail);
    }
    assert!(warnings_with(&["sb-ringa", "loop"]).len() <= before + 1);
    eprintln!("loop cut after {:?}", started.elapsed());
}

/// What one storm did.
#[derive(Debug, Default)]
struct StormStats {
    sent: AtomicU64,
    answered: AtomicU64,
}

/// Every tick, each storm thread sends a burst of queries at once and then reads answers
/// until the next tick: a fixed offered load, whatever the resolver does with it.
const STORM_TICK: Duration = Duration::from_millis(20);

/// Hammers `name` at 127.0.0.11 from `threads` sockets in `sb`, each sending `burst` queries at
/// once every [`STORM_TICK`], until `stop` is set.
fn storm(
    sb: &TestHost,
    name: &'static str,
    threads: usize,
    burst: u16,
    stop: &Arc<AtomicBool>,
    stats: &Arc<StormStats>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..threads)
        .map(|_| {
            let sock = client(sb, STORM_TICK);
            common::big_receive_buffer(&sock);
            let (stop, stats) = (stop.clone(), stats.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let mut id: u16 = 0;
                let mut tick = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..burst {
                        id = id.wrapping_add(1);
                        if sock.send(&query(name, id)).is_ok() {
                            stats.sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    tick += STORM_TICK;
                    loop {
                        let left = tick.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        sock.set_read_timeout(Some(left)).unwrap();
                        if sock.recv(&mut buf).is_ok() {
                            stats.answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect()
}

/// Sequential lookups from `sb`, alternating a local name and a forwarded one; each one's
/// latency (a lost or wrong answer counts as the whole timeout).
fn probe(sb: &TestHost, local: (&str, Ipv4Addr), rounds: usize) -> (Vec<Duration>, Vec<Duration>) {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let sock = client(sb, TIMEOUT);
    let (mut locals, mut forwarded) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let id = u16::try_from(i * 2).unwrap();
        let (m, t) = ask(&sock, local.0, id);
        locals.push(if m.as_ref().and_then(first_a) == Some(local.1) {
            t
        } else {
            TIMEOUT
        });
        let (m, t) = ask(&sock, "ext.example", id + 1);
        forwarded.push(
            if m.as_ref().and_then(first_a) == Some(Ipv4Addr::new(198, 51, 100, 7)) {
                t
            } else {
                TIMEOUT
            },
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    (locals, forwarded)
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    let k = (v.len() * 99).div_ceil(100).max(1) - 1;
    v[k]
}

#[test]
fn one_sandboxs_looping_storm_does_not_slow_another_sandboxs_lookups() {
    logs::capture();
    let mut w = World::new(Mode::Answer);
    w.network("loopnet3", 13, false, true);
    let b = w.sandbox("victim", &[]);
    let d = w.sandbox("neighbour", &[]);
    let a = w.sandbox("stormer", &[resolver_addr()]);
    let c = w.sandbox("stormring", &[]);
    let e = w.sandbox("stormpeer", &[]);
    w.connect(b, "loopnet3", 2, &[]);
    let ip_d = w.connect(d, "loopnet3", 3, &[]);
    w.connect(a, "loopnet3", 4, &[]);
    let ip_c = w.connect(c, "loopnet3", 5, &[]);
    let ip_e = w.connect(e, "loopnet3", 6, &[]);
    // stormring and stormpeer forward to each other's resolver: a loop through two sandboxes.
    expose_resolver(&w, c, ip_c);
    expose_resolver(&w, e, ip_e);
    w.resolver
        .set_upstreams("sb-stormring", &[on_port_53(ip_e)])
        .unwrap();
    w.resolver
        .set_upstreams("sb-stormpeer", &[on_port_53(ip_c)])
        .unwrap();

    const ROUNDS: usize = 150;
    let sb = &w.sb(b).ns;
    // warm up (first forward opens the socket thread's way into the namespace), then measure
    let _ = probe(sb, ("neighbour", ip_d), 5);
    let (local_base, fwd_base) = probe(sb, ("neighbour", ip_d), ROUNDS);
    let (local_base, fwd_base) = (p99(local_base), p99(fwd_base));

    // stormer asks for a name that would go to itself, stormring for one that goes round the
    // ring, a few hundred queries in flight in all
    let stop = Arc::new(AtomicBool::new(false));
    let self_stats = Arc::new(StormStats::default());
    let ring_stats = Arc::new(StormStats::default());
    let mut storms = storm(&w.sb(a).ns, "self.loop.example", 2, 100, &stop, &self_stats);
    storms.extend(storm(
        &w.sb(c).ns,
        "ring.loop.example",
        2,
        20,
        &stop,
        &ring_stats,
    ));
    std::thread::sleep(Duration::from_millis(300));
    let (local_storm, fwd_storm) = probe(sb, ("neighbour", ip_d), ROUNDS);
    stop.store(true, Ordering::Relaxed);
    for t in storms {
        t.join().unwrap();
    }
    let (local_storm, fwd_storm) = (p99(local_storm), p99(fwd_storm));
    eprintln!(
        "victim p99 local {local_base:?} -> {local_storm:?}, forwarded {fwd_base:?} -> {fwd_storm:?}; \
         self storm {self_stats:?}, ring storm {ring_stats:?}"
    );
    // the storms were real: thousands of queries, answered (SERVFAIL) rather than dropped
    for s in [&self_stats, &ring_stats] {
        let (sent, answered) = (
            s.sent.load(Ordering::Relaxed),
            s.answered.load(Ordering::Relaxed),
        );
        assert!(sent > 2000, "{s:?}");
        assert!(
            answered * 10 >= sent * 9,
            "most storm queries answered: {s:?}"
        );
    }
    // the victim's lookups stay fast: under 100 ms at p99, or within 3x of the quiet p99 when
    // the machine itself is that slow
    let bound = |base: Duration| Duration::from_millis(100).max(base * 3);
    assert!(
        local_storm <= bound(local_base),
        "local lookups p99 {local_base:?} -> {local_storm:?}"
    );
    assert!(
        fwd_storm <= bound(fwd_base),
        "forwarded lookups p99 {fwd_base:?} -> {fwd_storm:?}"
    );
}

//! The firewall heals itself while running (`Config::heal_firewall`), as root in throwaway
//! namespaces, for each backend: something outside berth flushes each of berth's chains, deletes
//! the jumps into them or berth's whole table, and within a second the published port (from a
//! LAN peer), masquerade, isolation between networks and icc=false are back, checked with real
//! traffic. A user's rule in the user chain survives every repair in its place; a tool that
//! keeps flushing cannot make berth spin; and `Controller::reconcile_firewall` repairs on demand
//! with a report of what it found.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use berth::{FirewallBackend, NetworkCreate};
use berth_testhost::LanPeer;
use berth_testhost::traffic::{TcpBanner, UdpEcho, tcp_fetch, udp_exchange};
use common::Fixture;

const SHORT: Duration = Duration::from_millis(300);

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A host with: `web` on `front` publishing 8080:80 (a banner on it), `other` on `back`, `q1`
/// and `q2` on `quiet` (icc=false), and a LAN peer at 192.0.2.2 with a banner on port 9000.
struct World {
    f: Fixture,
    peer: LanPeer,
    other_ip: String,
    q2_ip: String,
    _banners: Vec<TcpBanner>,
    _echoes: Vec<UdpEcho>,
}

impl World {
    fn new(backend: FirewallBackend) -> World {
        let f = Fixture::with(|c| {
            c.firewall = Some(backend);
            c.heal_firewall = true;
        });
        let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
        for n in ["front", "back"] {
            f.ctl().create_network(NetworkCreate::new(n)).unwrap();
        }
        f.ctl()
            .create_network(
                NetworkCreate::new("quiet").option("com.docker.network.bridge.enable_icc", "false"),
            )
            .unwrap();
        let web_ip = f.publish("web", "front", &["8080:80"]);
        let other_ip = f.sandbox_on("other", "back");
        f.sandbox_on("q1", "quiet");
        let q2_ip = f.sandbox_on("q2", "quiet");
        let banners = vec![
            TcpBanner::start(&f.sandbox_ns("web"), sa(&format!("{web_ip}:80")), "web").unwrap(),
            TcpBanner::start(peer.netns(), sa("192.0.2.2:9000"), "lan").unwrap(),
        ];
        // Echo servers that isolation must keep out of reach.
        let echoes = vec![
            UdpEcho::start(
                &f.sandbox_ns("other"),
                sa(&format!("{other_ip}:7")),
                "other",
            )
            .unwrap(),
            UdpEcho::start(&f.sandbox_ns("q2"), sa(&format!("{q2_ip}:7")), "q2").unwrap(),
        ];
        // They answer where nothing filters: their own sandboxes.
        assert!(udp_exchange(&f.sandbox_ns("other"), sa(&format!("{other_ip}:7")), SHORT).is_ok());
        World {
            f,
            peer,
            other_ip,
            q2_ip,
            _banners: banners,
            _echoes: echoes,
        }
    }

    /// What berth's rules do, with real traffic; the first thing that does not hold.
    fn broken(&self) -> Option<&'static str> {
        let lan = tcp_fetch(self.peer.netns(), sa("192.0.2.1:8080"), SHORT);
        if !lan.is_ok_and(|s| s == "web from 192.0.2.2") {
            return Some("the published port from the LAN");
        }
        let out = tcp_fetch(&self.f.sandbox_ns("web"), sa("192.0.2.2:9000"), SHORT);
        if !out.is_ok_and(|s| s == "lan from 192.0.2.1") {
            return Some("masquerade to the LAN");
        }
        let isolated = |from: &str, to: &str| {
            udp_exchange(&self.f.sandbox_ns(from), sa(&format!("{to}:7")), SHORT).is_err()
        };
        if !isolated("web", &self.other_ip) {
            return Some("isolation between networks");
        }
        if !isolated("q1", &self.q2_ip) {
            return Some("icc=false");
        }
        None
    }

    /// Runs an outside command in the host namespace and waits for berth's repair; how long
    /// that took. Then everything must work, checked with real traffic.
    fn sabotage(&self, cmd: &[&str]) -> Duration {
        let repairs = || self.f.ctl().firewall_healing().unwrap().repairs;
        let before = repairs();
        let started = Instant::now();
        let out = self.f.host.run(cmd[0], &cmd[1..]);
        assert!(out.is_ok(), "{cmd:?}: {out:?}");
        while repairs() == before {
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "no repair after `{}` (heal stats: {:?})",
                cmd.join(" "),
                self.f.ctl().firewall_healing()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let took = started.elapsed();
        assert_eq!(
            self.broken(),
            None,
            "after `{}` and its repair",
            cmd.join(" ")
        );
        took
    }
}

fn check_all(w: &World, sabotages: &[Vec<&str>]) -> Vec<Duration> {
    assert_eq!(w.broken(), None, "everything works before any sabotage");
    let mut times = Vec::new();
    for cmd in sabotages {
        let t = w.sabotage(cmd);
        eprintln!("{:>8.1?}  {}", t, cmd.join(" "));
        times.push(t);
    }
    times.sort();
    let median = times[times.len() / 2];
    eprintln!("median {median:?}, worst {:?}", times[times.len() - 1]);
    assert!(
        median <= Duration::from_secs(1),
        "traffic restored within 1 s (median {median:?})"
    );
    times
}

#[test]
fn iptables_rules_heal_after_outside_flushes() {
    let w = World::new(FirewallBackend::Iptables);
    // A user's rules in DOCKER-USER, which no repair may touch.
    w.f.host
        .run(
            "iptables",
            &["-I", "DOCKER-USER", "-s", "198.51.100.7", "-j", "DROP"],
        )
        .unwrap();
    w.f.host
        .run(
            "iptables",
            &[
                "-I",
                "DOCKER-USER",
                "2",
                "-p",
                "udp",
                "--dport",
                "9999",
                "-j",
                "RETURN",
            ],
        )
        .unwrap();
    let user_before = w.f.host.run("iptables", &["-S", "DOCKER-USER"]).unwrap();
    let mut sabotages: Vec<Vec<&str>> = Vec::new();
    for chain in [
        "BERTH-FORWARD",
        "BERTH-ISOLATION",
        "BERTH-ISOLATION-2",
        "BERTH-ACCEPT",
        "BERTH-DROP",
    ] {
        sabotages.push(vec!["iptables", "-F", chain]);
    }
    for chain in ["BERTH-DNAT", "BERTH-POSTROUTING"] {
        sabotages.push(vec!["iptables", "-t", "nat", "-F", chain]);
    }
    sabotages.push(vec!["iptables", "-D", "FORWARD", "-j", "BERTH-FORWARD"]);
    for chain in ["PREROUTING", "OUTPUT", "POSTROUTING"] {
        sabotages.push(vec!["iptables", "-t", "nat", "-F", chain]);
    }
    sabotages.push(vec!["iptables", "-F", "FORWARD"]);
    check_all(&w, &sabotages);
    let user_after = w.f.host.run("iptables", &["-S", "DOCKER-USER"]).unwrap();
    assert_eq!(user_after, user_before, "the user's rules, in their places");
    let stats = w.f.ctl().firewall_healing().unwrap();
    assert!(stats.repairs >= sabotages.len() as u64, "{stats:?}");
    let last = stats.last_repair.clone().unwrap();
    assert!(
        last.culprits.iter().any(|c| c.contains("iptables")),
        "the tool is named: {last:?}"
    );
    assert!(
        stats.own_commits > 0,
        "berth's own repairs were seen and skipped: {stats:?}"
    );
}

#[test]
fn nftables_rules_heal_after_outside_flushes() {
    let w = World::new(FirewallBackend::Nftables);
    let listing =
        w.f.host
            .run("nft", &["list", "table", "inet", "berth"])
            .unwrap();
    let chains: Vec<String> = listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("chain "))
        .map(|l| l.trim_end_matches(" {").to_owned())
        .filter(|c| c != berth_firewall::nftables::USER_CHAIN)
        .collect();
    assert!(chains.len() >= 4, "{listing}");
    w.f.host
        .run(
            "nft",
            &[
                "add",
                "rule",
                "inet",
                "berth",
                berth_firewall::nftables::USER_CHAIN,
                "ip",
                "saddr",
                "198.51.100.7",
                "drop",
            ],
        )
        .unwrap();
    let user = |w: &World| {
        w.f.host
            .run(
                "nft",
                &[
                    "list",
                    "chain",
                    "inet",
                    "berth",
                    berth_firewall::nftables::USER_CHAIN,
                ],
            )
            .unwrap()
    };
    let user_before = user(&w);
    let mut sabotages: Vec<Vec<&str>> = chains
        .iter()
        .map(|c| vec!["nft", "flush", "chain", "inet", "berth", c.as_str()])
        .collect();
    check_all(&w, &sabotages);
    assert_eq!(user(&w), user_before, "the user's rule, in its place");
    // The whole table, and the whole ruleset (the user's chain goes with them: it lived in
    // berth's table).
    sabotages = vec![
        vec!["nft", "delete", "table", "inet", "berth"],
        vec!["nft", "flush", "ruleset"],
    ];
    check_all(&w, &sabotages);
}

#[test]
fn a_tool_that_keeps_flushing_does_not_make_berth_spin() {
    let w = World::new(FirewallBackend::Iptables);
    let cpu = || {
        let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
        let t = |tv: nix::sys::time::TimeVal| {
            Duration::from_secs(tv.tv_sec() as u64) + Duration::from_micros(tv.tv_usec() as u64)
        };
        t(u.user_time()) + t(u.system_time())
    };
    let before = w.f.ctl().firewall_healing().unwrap();
    let (cpu0, started) = (cpu(), Instant::now());
    // Five seconds of flushing BERTH-DNAT every 20 ms.
    let mut flushes = 0;
    while started.elapsed() < Duration::from_secs(5) {
        w.f.host
            .run("iptables", &["-t", "nat", "-F", "BERTH-DNAT"])
            .unwrap();
        flushes += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let (spent, wall) = (cpu() - cpu0, started.elapsed());
    let after = w.f.ctl().firewall_healing().unwrap();
    let repairs = after.repairs - before.repairs;
    eprintln!(
        "{flushes} flushes in {wall:?}: {repairs} repairs, {:?} of this process's CPU ({:.0}%)",
        spent,
        100.0 * spent.as_secs_f64() / wall.as_secs_f64()
    );
    // At most 11 quick repairs (100 ms apart), then one per 500 ms.
    assert!(
        repairs <= 11 + 10 + 1,
        "repairs are rate-limited: {repairs}"
    );
    assert!(repairs >= 2, "it keeps repairing: {repairs}");
    // The flushing loop's own `iptables` runs are children, not counted; berth's repairs
    // (iptables-restore runs are children too) stay a small fraction of a core.
    assert!(
        spent < wall / 2,
        "berth's CPU while fought: {spent:?} over {wall:?}"
    );
    // Once the tool stops, the port comes back within the slowed-down interval.
    let t = Instant::now();
    while w.broken().is_some() {
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", w.broken());
    }
}

#[test]
fn reconcile_on_demand_reports_and_repairs() {
    let f = Fixture::new();
    let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    f.ctl().create_network(NetworkCreate::new("n")).unwrap();
    let ip = f.publish("web", "n", &["8080:80"]);
    let _b = TcpBanner::start(&f.sandbox_ns("web"), sa(&format!("{ip}:80")), "web").unwrap();
    assert!(f.ctl().firewall_healing().is_none(), "off unless asked for");
    assert!(f.ctl().reconcile_firewall().unwrap().is_clean());
    f.host
        .run("iptables", &["-t", "nat", "-F", "BERTH-DNAT"])
        .unwrap();
    assert!(
        tcp_fetch(peer.netns(), sa("192.0.2.1:8080"), SHORT).is_err(),
        "broken"
    );
    let report = f.ctl().reconcile_firewall().unwrap();
    assert!(!report.is_clean());
    assert!(
        report.to_string().contains("missing: IPv4 nat BERTH-DNAT"),
        "{report}"
    );
    assert_eq!(
        tcp_fetch(peer.netns(), sa("192.0.2.1:8080"), SHORT).unwrap(),
        "web from 192.0.2.2"
    );
    assert!(f.ctl().reconcile_firewall().unwrap().is_clean());
}

//! Loopback stays local, through the controller, for both firewall backends, with real TCP and
//! UDP (hardening issue #14). The bridge driver sets `route_localnet=1` on its bridges so that
//! `127.0.0.1:PORT` on the host reaches published ports; that must not let
//!
//! (a) a sandbox reach the host's 127.0.0.1 (its loopback-only services, or a port published on
//!     127.0.0.1) by sending to 127.0.0.1 through its gateway, nor
//! (b) a LAN peer that routes 127.0.0.1 to the host reach a port published on 127.0.0.1,
//!
//! also when the host has `route_localnet=1` on every interface, and after an outside actor
//! removed berth's rule while berth was down (the restart's reconcile puts it back). The
//! legitimate paths keep working: `127.0.0.1:PORT` from the host, the sandbox's way to the LAN,
//! a port published on every address.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use berth::{FirewallBackend, NetworkCreate};
use berth_testhost::berth_netlink::Netns;
use berth_testhost::traffic::{TcpBanner, UdpEcho, tcp_fetch, udp_exchange};
use common::{Fixture, TIMEOUT};

/// How long an attempt that must fail is given.
const SHORT: Duration = Duration::from_millis(700);

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn tcp_reaches(ns: &Netns, to: &str) -> bool {
    tcp_fetch(ns, sa(to), SHORT).is_ok()
}

fn udp_reaches(ns: &Netns, to: &str) -> bool {
    udp_exchange(ns, sa(to), SHORT).is_ok()
}

/// A TCP listener and a UDP socket that count what reaches them and answer
/// `"<banner> from <client>"`: "the listener gets nothing" is a count that does not move.
struct Catch {
    tcp: Arc<AtomicUsize>,
    udp: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Catch {
    fn start(ns: &Netns, tcp_at: &str, udp_at: &str, banner: &str) -> Catch {
        let (tcp_at, udp_at) = (sa(tcp_at), sa(udp_at));
        let (listener, socket) = ns
            .run(|| (TcpListener::bind(tcp_at), UdpSocket::bind(udp_at)))
            .unwrap();
        let (listener, socket) = (listener.unwrap(), socket.unwrap());
        listener.set_nonblocking(true).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let (tcp, udp) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let (hits, flag, text) = (tcp.clone(), stop.clone(), banner.to_owned());
        threads.push(std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, peer)) => {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let _ = s.set_nonblocking(false);
                        let _ = s.write_all(format!("{text} from {}", peer.ip()).as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
        let (hits, flag, text) = (udp.clone(), stop.clone(), banner.to_owned());
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((_, from)) = socket.recv_from(&mut buf) {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let _ = socket.send_to(format!("{text} from {}", from.ip()).as_bytes(), from);
                }
            }
        }));
        Catch {
            tcp,
            udp,
            stop,
            threads,
        }
    }

    fn hits(&self) -> (usize, usize) {
        (
            self.tcp.load(Ordering::SeqCst),
            self.udp.load(Ordering::SeqCst),
        )
    }
}

impl Drop for Catch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The scene: sandbox `web` publishes 127.0.0.1:8080->80/tcp, 127.0.0.1:5353->53/udp and
/// 8081->80/tcp; sandbox `client` on the same network and the LAN peer route 127.0.0.1 to their
/// gateway; the host has loopback-only services on 127.0.0.1:2222/tcp and :2223/udp.
struct Scene {
    f: Fixture,
    peer: berth_testhost::LanPeer,
    secret: Catch,
    _servers: (TcpBanner, UdpEcho, TcpBanner),
}

impl Scene {
    fn new(backend: FirewallBackend) -> Scene {
        let f = Fixture::with(|c| c.firewall = Some(backend));
        let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
        f.ctl().create_network(NetworkCreate::new("lo_nw")).unwrap();
        let ip = f.publish(
            "web",
            "lo_nw",
            &["127.0.0.1:8080:80", "127.0.0.1:5353:53/udp", "8081:80"],
        );
        let web = f.sandbox_ns("web");
        let servers = (
            TcpBanner::start(&web, sa(&format!("{ip}:80")), "web").unwrap(),
            UdpEcho::start(&web, sa(&format!("{ip}:53")), "dns").unwrap(),
            TcpBanner::start(peer.netns(), sa("192.0.2.2:80"), "peer").unwrap(),
        );
        f.publish("client", "lo_nw", &[]);
        let secret = Catch::start(f.host.netns(), "127.0.0.1:2222", "127.0.0.1:2223", "secret");
        let scene = Scene {
            f,
            peer,
            secret,
            _servers: servers,
        };
        scene.route_attackers();
        scene
    }

    /// (Again, after a restart that made the client's namespace anew or not.)
    fn route_attackers(&self) {
        let insp = self.f.ctl().inspect_sandbox("client").unwrap();
        let ep = &insp.networks["lo_nw"];
        let client = self.f.sandbox_ns("client");
        let routed = client
            .command("ip")
            .args(["rule", "show", "pref", "10"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&routed.stdout).trim().is_empty() {
            berth_testhost::route_loopback_via(&client, &ep.interface, &ep.gateway)
                .expect("routing 127.0.0.1 to the gateway");
        }
        let routed = self
            .peer
            .run("ip", &["rule", "show", "pref", "10"])
            .unwrap();
        if routed.trim().is_empty() {
            berth_testhost::route_loopback_via(self.peer.netns(), "eth0", "192.0.2.1")
                .expect("routing 127.0.0.1 to the gateway");
        }
    }

    /// Every attack is tried; the failure lists all that got through.
    fn assert_closed(&self, when: &str) {
        let before = self.secret.hits();
        let client = self.f.sandbox_ns("client");
        let peer = self.peer.netns();
        let attempts = [
            (
                tcp_reaches(&client, "127.0.0.1:2222"),
                "(a) tcp to the host's 127.0.0.1 from a sandbox",
            ),
            (
                udp_reaches(&client, "127.0.0.1:2223"),
                "(a) udp to the host's 127.0.0.1 from a sandbox",
            ),
            (
                tcp_reaches(&client, "127.0.0.1:8080"),
                "(a) a port published on 127.0.0.1, from a sandbox through 127.0.0.1",
            ),
            (
                tcp_reaches(peer, "127.0.0.1:8080"),
                "(b) tcp port published on 127.0.0.1, from the LAN",
            ),
            (
                udp_reaches(peer, "127.0.0.1:5353"),
                "(b) udp port published on 127.0.0.1, from the LAN",
            ),
        ];
        let leaks: Vec<&str> = attempts
            .iter()
            .filter(|(reached, _)| *reached)
            .map(|(_, what)| *what)
            .collect();
        assert!(leaks.is_empty(), "reached {when}: {leaks:#?}");
        assert_eq!(
            self.secret.hits(),
            before,
            "the host's 127.0.0.1 listener got something {when}"
        );
    }

    fn assert_legitimate(&self, when: &str) {
        let host = self.f.host.netns();
        let got = tcp_fetch(host, sa("127.0.0.1:8080"), TIMEOUT).unwrap_or_else(|e| e.to_string());
        assert!(
            got.starts_with("web from"),
            "127.0.0.1:PORT from the host {when}: {got}"
        );
        let got =
            udp_exchange(host, sa("127.0.0.1:5353"), TIMEOUT).unwrap_or_else(|e| e.to_string());
        assert!(
            got.starts_with("dns from"),
            "127.0.0.1:PORT/udp from the host {when}: {got}"
        );
        let got = tcp_fetch(self.peer.netns(), sa("192.0.2.1:8081"), TIMEOUT)
            .unwrap_or_else(|e| e.to_string());
        assert_eq!(
            got, "web from 192.0.2.2",
            "a port published on every address, from the LAN {when}"
        );
        let got = tcp_fetch(&self.f.sandbox_ns("client"), sa("192.0.2.2:80"), TIMEOUT)
            .unwrap_or_else(|e| e.to_string());
        assert_eq!(
            got, "peer from 192.0.2.1",
            "the sandbox reaches the LAN {when}"
        );
        let (tcp, _) = self.secret.hits();
        let got = tcp_fetch(host, sa("127.0.0.1:2222"), TIMEOUT).unwrap_or_else(|e| e.to_string());
        assert_eq!(
            got, "secret from 127.0.0.1",
            "the host's own loopback service {when}"
        );
        assert_eq!(self.secret.hits().0, tcp + 1);
    }
}

fn loopback_stays_local(backend: FirewallBackend) {
    let mut s = Scene::new(backend);
    s.assert_legitimate("");
    s.assert_closed("");

    // Any host configuration: route_localnet on every interface of the host.
    for key in [
        "net.ipv4.conf.all.route_localnet=1",
        "net.ipv4.conf.default.route_localnet=1",
        &format!("net.ipv4.conf.{}.route_localnet=1", s.peer.host_interface()),
    ] {
        s.f.host.run("sysctl", &["-qw", key]).unwrap();
    }
    s.assert_closed("with route_localnet=1 everywhere");
    s.assert_legitimate("with route_localnet=1 everywhere");

    // An outside actor removes the rule while berth is down; the restart puts it back.
    s.f.ctl = None;
    match backend {
        FirewallBackend::Iptables => {
            s.f.host
                .run(
                    "iptables",
                    &["-t", "raw", "-D", "PREROUTING", "-j", "BERTH-RAW"],
                )
                .unwrap();
            s.f.host
                .run("iptables", &["-t", "raw", "-F", "BERTH-RAW"])
                .unwrap();
        }
        _ => {
            s.f.host
                .run(
                    "nft",
                    &["flush", "chain", "inet", "berth", "prerouting_raw"],
                )
                .unwrap();
        }
    }
    s.f.restart_with(|c| c.firewall = Some(backend));
    s.route_attackers();
    s.assert_closed("after a restart repaired the rules");
    s.assert_legitimate("after a restart repaired the rules");
}

#[test]
fn loopback_stays_local_iptables() {
    loopback_stays_local(FirewallBackend::Iptables);
}

#[test]
fn loopback_stays_local_nftables() {
    loopback_stays_local(FirewallBackend::Nftables);
}

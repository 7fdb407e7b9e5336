//! Fixtures for berth-firewall's kernel tests: a test host with bridges built by `ip`, "container"
//! namespaces on veth pairs, LAN peers, and traffic helpers. Everything is deleted on drop.

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use berth_firewall::{Backend, Firewall, FirewallConfig};
use berth_testhost::berth_netlink::Netns;
use berth_testhost::traffic::{TcpBanner, UdpEcho, tcp_fetch, udp_exchange};
use berth_testhost::{LanPeer, TestHost};

static VETH: AtomicU32 = AtomicU32::new(0);

/// A host namespace with IPv4 (and IPv6) forwarding on and one LAN peer
/// (host 192.0.2.1/24, 2001:db8::1/64; peer 192.0.2.2/24, 2001:db8::2/64).
pub struct Lab {
    pub peer: LanPeer,
    pub host: TestHost,
}

/// A "container": its own namespace, `eth0` on a bridge of the lab host.
pub struct Container {
    pub ns: TestHost,
    pub ip: String,
    pub ip6: Option<String>,
}

impl Container {
    pub fn netns(&self) -> &Netns {
        self.ns.netns()
    }
}

pub fn config(backend: Backend) -> FirewallConfig {
    FirewallConfig::new(backend)
}

impl Lab {
    pub fn new() -> Lab {
        let host = TestHost::new().expect("test host (run the kernel tests as root)");
        host.run("sysctl", &["-qw", "net.ipv4.ip_forward=1"])
            .expect("ip_forward in the test host");
        host.run("sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"])
            .expect("IPv6 forwarding in the test host");
        let peer = host
            .add_lan_peer("192.0.2.1/24", "192.0.2.2/24")
            .expect("LAN peer");
        host.ip(&[
            "addr",
            "add",
            "2001:db8::1/64",
            "dev",
            peer.host_interface(),
            "nodad",
        ])
        .expect("v6 on lan");
        peer.ip(&["addr", "add", "2001:db8::2/64", "dev", "eth0", "nodad"])
            .expect("v6 on peer");
        Lab { peer, host }
    }

    /// A second LAN peer on 198.51.100.0/24 (host .1, peer .2).
    pub fn second_peer(&self) -> LanPeer {
        let p = self
            .host
            .add_lan_peer("198.51.100.1/24", "198.51.100.2/24")
            .expect("second LAN peer");
        p.route_via("default", "198.51.100.1").expect("route");
        p
    }

    pub fn firewall(&self, config: FirewallConfig) -> Firewall {
        Firewall::new(self.host.netns(), config).expect("firewall base setup")
    }

    /// A bridge with gateway addresses (CIDR), up.
    pub fn bridge(&self, name: &str, gw4: &str, gw6: Option<&str>) {
        self.host
            .ip(&["link", "add", name, "type", "bridge"])
            .expect("bridge");
        self.host
            .ip(&["addr", "add", gw4, "dev", name])
            .expect("bridge v4");
        if let Some(g) = gw6 {
            self.host
                .ip(&["addr", "add", g, "dev", name, "nodad"])
                .expect("bridge v6");
        }
        self.host
            .ip(&["link", "set", name, "up"])
            .expect("bridge up");
    }

    /// A container on `bridge` with address `cidr` and default route via `gw`.
    pub fn container(&self, bridge: &str, cidr: &str, gw: &str) -> Container {
        self.container6(bridge, cidr, gw, None)
    }

    pub fn container6(
        &self,
        bridge: &str,
        cidr: &str,
        gw: &str,
        v6: Option<(&str, &str)>,
    ) -> Container {
        let ns = TestHost::new().expect("container namespace");
        let veth = format!("vc{}", VETH.fetch_add(1, Ordering::Relaxed));
        self.host
            .ip(&[
                "link",
                "add",
                &veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns.name(),
            ])
            .expect("veth");
        self.host
            .ip(&["link", "set", &veth, "master", bridge, "up"])
            .expect("veth on bridge");
        // As Docker's bridge driver does for hairpin NAT: with br_netfilter, a container reaching
        // its own published port is DNATed at the bridge and sent back out its own port.
        self.host
            .ip(&[
                "link",
                "set",
                "dev",
                &veth,
                "type",
                "bridge_slave",
                "hairpin",
                "on",
            ])
            .expect("hairpin mode");
        ns.ip(&["addr", "add", cidr, "dev", "eth0"])
            .expect("container address");
        ns.ip(&["link", "set", "eth0", "up"]).expect("eth0 up");
        ns.ip(&["route", "add", "default", "via", gw])
            .expect("default route");
        let mut ip6 = None;
        if let Some((c6, g6)) = v6 {
            ns.ip(&["addr", "add", c6, "dev", "eth0", "nodad"])
                .expect("container v6");
            ns.ip(&["-6", "route", "add", "default", "via", g6])
                .expect("v6 default route");
            ip6 = Some(c6.split('/').next().unwrap_or(c6).to_owned());
        }
        Container {
            ip: cidr.split('/').next().unwrap_or(cidr).to_owned(),
            ip6,
            ns,
        }
    }

    /// Makes the LAN peer route `dest` through the host (for direct-routing tests).
    pub fn peer_routes(&self, dest: &str) {
        self.peer.route_via(dest, "192.0.2.1").expect("peer route");
    }

    /// The host's iptables/ip6tables/nft state as text, without counters and comments.
    pub fn snapshot(&self) -> String {
        let mut out = String::new();
        for prog in ["iptables-save", "ip6tables-save"] {
            let text = self.host.run(prog, &[]).unwrap_or_default();
            out.push_str(&strip(&text));
        }
        let nft = self
            .host
            .run("nft", &["list", "ruleset"])
            .unwrap_or_default();
        // iptables-nft rules show their counters in nft's listing; traffic changes them.
        for line in nft.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let mut kept = Vec::new();
            let mut i = 0;
            while i < words.len() {
                if words[i] == "counter" && words.get(i + 1) == Some(&"packets") {
                    kept.push("counter");
                    i += 5;
                } else {
                    kept.push(words[i]);
                    i += 1;
                }
            }
            out.push_str(&kept.join(" "));
            out.push('\n');
        }
        out
    }

    pub fn sh(&self, cmd: &str) {
        let out = self.host.output("sh", &["-c", cmd]).expect("sh");
        assert!(
            out.status.success(),
            "`{cmd}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

pub fn strip(save: &str) -> String {
    save.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            if l.starts_with(':') {
                // ":CHAIN POLICY [packets:bytes]" -> drop the counters
                l.rsplit_once(' ').map(|(a, _)| a).unwrap_or(l).to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// A TCP server answering "<banner> from <client>".
pub fn serve(ns: &Netns, at: &str, banner: &str) -> TcpBanner {
    TcpBanner::start(ns, addr(at), banner).expect("tcp banner")
}

pub fn serve_udp(ns: &Netns, at: &str, banner: &str) -> UdpEcho {
    UdpEcho::start(ns, addr(at), banner).expect("udp echo")
}

/// What a TCP connection from `ns` to `to` receives, or the error as text.
pub fn fetch(ns: &Netns, to: &str) -> String {
    match tcp_fetch(ns, addr(to), Duration::from_secs(3)) {
        Ok(s) => s,
        Err(e) => format!("error: {e}"),
    }
}

/// True if a TCP connection from `ns` to `to` gets no banner within 700 ms.
pub fn blocked(ns: &Netns, to: &str) -> bool {
    tcp_fetch(ns, addr(to), Duration::from_millis(700)).is_err()
}

pub fn fetch_udp(ns: &Netns, to: &str) -> String {
    match udp_exchange(ns, addr(to), Duration::from_secs(2)) {
        Ok(s) => s,
        Err(e) => format!("error: {e}"),
    }
}

/// Generates `iptables` and `nftables` tests from a scenario `fn(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn iptables() {
                    super::$name(berth_firewall::Backend::Iptables)
                }
                #[test]
                fn nftables() {
                    super::$name(berth_firewall::Backend::Nftables)
                }
            }
        )*
    };
}

/// Asserts two rulesets are equal, showing the lines that differ.
pub fn assert_same(before: &str, after: &str, what: &str) {
    if before == after {
        return;
    }
    let b: Vec<&str> = before.lines().collect();
    let a: Vec<&str> = after.lines().collect();
    let gone: Vec<&&str> = b.iter().filter(|l| !a.contains(l)).collect();
    let new: Vec<&&str> = a.iter().filter(|l| !b.contains(l)).collect();
    panic!(
        "{what}:\n  lines gone: {gone:#?}\n  lines added: {new:#?}\n(or the same lines in another order)"
    );
}

/// True if a UDP datagram from `ns` to `to` gets no answer within 700 ms.
pub fn udp_blocked(ns: &Netns, to: &str) -> bool {
    udp_exchange(ns, addr(to), Duration::from_millis(700)).is_err()
}

/// A TCP listener and a UDP socket that count what reaches them (and answer like [`serve`] and
/// [`serve_udp`]): "the listener gets nothing" is a count that does not move. Stops on drop.
pub struct Catch {
    tcp: Arc<AtomicUsize>,
    udp: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Catch {
    pub fn start(ns: &Netns, tcp_at: &str, udp_at: &str, banner: &str) -> Catch {
        let (tcp_at, udp_at) = (addr(tcp_at), addr(udp_at));
        let (listener, socket) = ns
            .run(|| (TcpListener::bind(tcp_at), UdpSocket::bind(udp_at)))
            .expect("namespace thread");
        let listener = listener.expect("tcp listener");
        let socket = socket.expect("udp socket");
        listener.set_nonblocking(true).expect("nonblocking");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let (tcp, udp) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let (hits, stop, banner) = (tcp.clone(), stop.clone(), banner.to_owned());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut s, peer)) => {
                            hits.fetch_add(1, Ordering::SeqCst);
                            let _ = s.set_nonblocking(false);
                            let _ = s.write_all(format!("{banner} from {}", peer.ip()).as_bytes());
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            }));
        }
        {
            let (hits, stop, banner) = (udp.clone(), stop.clone(), banner.to_owned());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((_, from)) = socket.recv_from(&mut buf) {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let _ =
                            socket.send_to(format!("{banner} from {}", from.ip()).as_bytes(), from);
                    }
                }
            }));
        }
        Catch {
            tcp,
            udp,
            stop,
            threads,
        }
    }

    /// Connections accepted and datagrams received so far.
    pub fn hits(&self) -> (usize, usize) {
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

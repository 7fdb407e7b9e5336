//! Fixtures for the kernel tests: a test host with bridges (built with `ip`), sandboxes as
//! namespaces wired to them with veth pairs, a LAN peer running a fake upstream DNS server, and
//! the resolver driven through its API exactly as the controller drives it.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use berth_dns::{EndpointDns, NetworkDns, Resolver, ResolverConfig};
use berth_testhost::{LanPeer, TestHost};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record};

pub const UPSTREAM: &str = "192.0.2.53";

/// What the fake upstream does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers `ext.example` and `big.example`; NXDOMAIN for the rest.
    Answer,
    /// Never answers.
    Silent,
    /// Holds every answer until `n` queries have arrived, then answers them all.
    Gather(usize),
}

/// A DNS server in a LAN peer's namespace (UDP and TCP on 192.0.2.53:53).
pub struct FakeUpstream {
    pub mode: Arc<Mutex<Mode>>,
    pub seen: Arc<Mutex<Vec<(String, &'static str)>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

fn answer_for(query: &Message, over_udp: bool) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true);
    m.add_queries(query.queries().to_vec());
    let q = &query.queries()[0];
    let name = q.name().to_ascii().to_ascii_lowercase();
    match name.as_str() {
        "ext.example." => {
            m.add_answer(Record::from_rdata(
                q.name().clone(),
                30,
                RData::A(Ipv4Addr::new(198, 51, 100, 7).into()),
            ));
        }
        "big.example." => {
            let all: Vec<Record> = (0..60u8)
                .map(|i| {
                    Record::from_rdata(
                        q.name().clone(),
                        30,
                        RData::A(Ipv4Addr::new(198, 51, 100, i).into()),
                    )
                })
                .collect();
            if over_udp {
                m.set_truncated(true);
                m.add_answers(all.into_iter().take(20));
            } else {
                m.add_answers(all);
            }
        }
        _ => {
            m.set_response_code(ResponseCode::NXDomain);
        }
    }
    m.to_vec().unwrap()
}

impl FakeUpstream {
    pub fn start(peer: &LanPeer, mode: Mode) -> FakeUpstream {
        let addr: SocketAddr = format!("{UPSTREAM}:53").parse().unwrap();
        let (udp, tcp) = peer
            .netns()
            .run(|| {
                (
                    UdpSocket::bind(addr).unwrap(),
                    TcpListener::bind(addr).unwrap(),
                )
            })
            .unwrap();
        // Room for a whole burst of forwarded queries (the gathering tests send over a thousand
        // at once; the default buffer drops some, and then nothing is ever answered).
        big_receive_buffer(&udp);
        udp.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        tcp.set_nonblocking(true).unwrap();
        let mode = Arc::new(Mutex::new(mode));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let (mode, seen, stop) = (mode.clone(), seen.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut held: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    let Ok(q) = Message::from_vec(&buf[..n]) else {
                        continue;
                    };
                    if q.queries().is_empty() {
                        continue;
                    }
                    seen.lock()
                        .unwrap()
                        .push((q.queries()[0].name().to_ascii(), "udp"));
                    let current = *mode.lock().unwrap();
                    match current {
                        Mode::Silent => {}
                        Mode::Answer => {
                            let _ = udp.send_to(&answer_for(&q, true), from);
                        }
                        Mode::Gather(want) => {
                            held.push((answer_for(&q, true), from));
                            if held.len() >= want {
                                for (a, to) in held.drain(..) {
                                    let _ = udp.send_to(&a, to);
                                }
                            }
                        }
                    }
                }
            }));
        }
        {
            let (mode, seen, stop) = (mode.clone(), seen.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((mut s, _)) = tcp.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut len = [0u8; 2];
                    if s.read_exact(&mut len).is_err() {
                        continue;
                    }
                    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
                    if s.read_exact(&mut body).is_err() {
                        continue;
                    }
                    let Ok(q) = Message::from_vec(&body) else {
                        continue;
                    };
                    seen.lock()
                        .unwrap()
                        .push((q.queries()[0].name().to_ascii(), "tcp"));
                    if *mode.lock().unwrap() == Mode::Silent {
                        continue;
                    }
                    let a = answer_for(&q, false);
                    let mut framed = (a.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&a);
                    let _ = s.write_all(&framed);
                }
            }));
        }
        FakeUpstream {
            mode,
            seen,
            stop,
            threads,
        }
    }

    pub fn saw(&self, name: &str) -> Vec<&'static str> {
        let want = name.to_ascii_lowercase();
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| n.trim_end_matches('.').to_ascii_lowercase() == want)
            .map(|(_, t)| *t)
            .collect()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// 8 MiB of receive buffer (SO_RCVBUFFORCE, as root), so bursts of a thousand datagrams are not
/// dropped by the test's own sockets.
pub fn big_receive_buffer(sock: &UdpSocket) {
    nix::sys::socket::setsockopt(sock, nix::sys::socket::sockopt::RcvBufForce, &(8 << 20))
        .expect("SO_RCVBUFFORCE (run as root)");
}

static VETH: AtomicU32 = AtomicU32::new(0);

/// A sandbox: a namespace with `eth0` on a bridge of the test host, registered with the resolver.
pub struct Sandbox {
    pub ns: TestHost,
    pub id: String,
    pub name: String,
    pub ifaces: u32,
}

pub struct Net {
    pub id: String,
    pub name: String,
    pub bridge: String,
    pub prefix: String,
    pub internal: bool,
}

/// Host, LAN peer with the fake upstream, bridges, resolver.
pub struct World {
    pub resolver: Resolver,
    pub sandboxes: Vec<Sandbox>,
    pub nets: HashMap<String, Net>,
    pub upstream: FakeUpstream,
    pub peer: LanPeer,
    pub host: TestHost,
}

impl World {
    pub fn new(mode: Mode) -> World {
        Self::with_config(mode, ResolverConfig::default())
    }

    pub fn with_config(mode: Mode, config: ResolverConfig) -> World {
        let host = TestHost::new().expect("a test host (run the kernel tests as root)");
        host.run("sh", &["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])
            .unwrap();
        let peer = host.add_lan_peer("192.0.2.1/24", "192.0.2.53/24").unwrap();
        peer.route_via("172.30.0.0/16", "192.0.2.1").unwrap();
        let upstream = FakeUpstream::start(&peer, mode);
        World {
            resolver: Resolver::new(config).unwrap(),
            sandboxes: Vec::new(),
            nets: HashMap::new(),
            upstream,
            peer,
            host,
        }
    }

    /// A bridge network `name` with subnet 172.30.<n>.0/24.
    pub fn network(&mut self, name: &str, n: u8, internal: bool, embedded: bool) {
        let bridge = format!("bdns{n}");
        let prefix = format!("172.30.{n}");
        self.host
            .ip(&["link", "add", &bridge, "type", "bridge"])
            .unwrap();
        self.host
            .ip(&["addr", "add", &format!("{prefix}.1/24"), "dev", &bridge])
            .unwrap();
        self.host.ip(&["link", "set", &bridge, "up"]).unwrap();
        let id = format!("net-{name}");
        self.resolver
            .add_network(&NetworkDns {
                id: id.clone(),
                name: name.into(),
                internal,
                embedded_dns: embedded,
            })
            .unwrap();
        self.nets.insert(
            name.to_owned(),
            Net {
                id,
                name: name.into(),
                bridge,
                prefix,
                internal,
            },
        );
    }

    /// A sandbox named `name`, forwarding to the fake upstream (or `upstreams`).
    pub fn sandbox(&mut self, name: &str, upstreams: &[SocketAddr]) -> usize {
        let ns = TestHost::new().unwrap();
        let id = format!("sb-{name}");
        let default = [format!("{UPSTREAM}:53").parse().unwrap()];
        let ups = if upstreams.is_empty() {
            &default[..]
        } else {
            upstreams
        };
        self.resolver
            .add_sandbox(&id, name, ns.netns(), ups)
            .unwrap();
        self.sandboxes.push(Sandbox {
            ns,
            id,
            name: name.into(),
            ifaces: 0,
        });
        self.sandboxes.len() - 1
    }

    /// Wires sandbox `i` to network `net` with address `.host` and registers the endpoint.
    pub fn connect(&mut self, i: usize, net: &str, host: u8, aliases: &[&str]) -> Ipv4Addr {
        self.connect_with(i, net, host, aliases, &[], None)
    }

    pub fn connect_with(
        &mut self,
        i: usize,
        net: &str,
        host: u8,
        aliases: &[&str],
        links: &[(&str, &str)],
        ipv6: Option<&str>,
    ) -> Ipv4Addr {
        let n = &self.nets[net];
        let sb = &mut self.sandboxes[i];
        let ifname = format!("eth{}", sb.ifaces);
        sb.ifaces += 1;
        let veth = format!(
            "vd{}x{}",
            std::process::id() % 10000,
            VETH.fetch_add(1, Ordering::Relaxed)
        );
        self.host
            .ip(&[
                "link",
                "add",
                &veth,
                "type",
                "veth",
                "peer",
                "name",
                &ifname,
                "netns",
                sb.ns.name(),
            ])
            .unwrap();
        self.host
            .ip(&["link", "set", &veth, "master", &n.bridge, "up"])
            .unwrap();
        let addr: Ipv4Addr = format!("{}.{host}", n.prefix).parse().unwrap();
        sb.ns
            .ip(&["addr", "add", &format!("{addr}/24"), "dev", &ifname])
            .unwrap();
        sb.ns.ip(&["link", "set", &ifname, "up"]).unwrap();
        if !n.internal && sb.ns.ip(&["route", "show", "default"]).unwrap().is_empty() {
            sb.ns
                .ip(&["route", "add", "default", "via", &format!("{}.1", n.prefix)])
                .unwrap();
        }
        self.resolver
            .connect(
                &sb.id,
                &n.id,
                &EndpointDns {
                    endpoint_id: format!("ep-{}-{}", sb.name, n.name),
                    aliases: aliases.iter().map(|s| s.to_string()).collect(),
                    ipv4: Some(addr),
                    ipv6: ipv6.map(|s| s.parse().unwrap()),
                    links: links
                        .iter()
                        .map(|(t, a)| (t.to_string(), a.to_string()))
                        .collect(),
                },
            )
            .unwrap();
        addr
    }

    pub fn sb(&self, i: usize) -> &Sandbox {
        &self.sandboxes[i]
    }
}

/// The parts of a dig answer the tests look at.
#[derive(Debug, Clone, Default)]
pub struct Dig {
    pub status: String,
    pub flags: String,
    pub answers: Vec<(String, String, String)>,
    pub raw: String,
}

impl Dig {
    pub fn values(&self) -> Vec<String> {
        self.answers.iter().map(|(_, _, v)| v.clone()).collect()
    }
}

/// Runs dig inside the sandbox against 127.0.0.11 (one try).
pub fn dig(sb: &TestHost, args: &[&str]) -> Dig {
    let mut all = vec![
        "@127.0.0.11",
        "+tries=1",
        "+time=6",
        "+noall",
        "+comments",
        "+answer",
    ];
    all.extend_from_slice(args);
    let out: Output = sb.output("dig", &all).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut d = Dig {
        raw: text.clone(),
        ..Dig::default()
    };
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            d.status = rest.split(',').next().unwrap_or("").to_owned();
        } else if let Some(rest) = line.strip_prefix(";; flags: ") {
            d.flags = rest.split(';').next().unwrap_or("").to_owned();
        } else if !line.starts_with(';') && !line.trim().is_empty() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 5 {
                d.answers
                    .push((f[0].to_owned(), f[3].to_owned(), f[4..].join(" ")));
            }
        }
    }
    d
}

/// `nslookup NAME 127.0.0.11` inside the sandbox.
pub fn nslookup(sb: &TestHost, name: &str) -> String {
    let out = sb
        .output("nslookup", &["-timeout=6", "-retry=0", name, "127.0.0.11"])
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

//! Kernel tests of the embedded DNS server: sandboxes (namespaces wired to bridges of a test
//! host with `ip`) query 127.0.0.11 with dig and nslookup; a fake upstream DNS server runs in a
//! LAN peer. Run as root; every namespace is a throwaway one, deleted also on panic.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use berth_dns::ResolverConfig;
use common::{Mode, World, dig, nslookup};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

fn world_two_networks() -> World {
    let mut w = World::new(Mode::Answer);
    w.network("net1", 1, false, true);
    w.network("net2", 2, false, true);
    w
}

#[test]
fn names_aliases_round_robin_ptr_aaaa_and_scoping() {
    let mut w = world_two_networks();
    let a = w.sandbox("alpha", &[]);
    let b = w.sandbox("bravo", &[]);
    let c = w.sandbox("charlie", &[]);
    let ip_a = w.connect(a, "net1", 2, &["web"]);
    let ip_b = w.connect_with(b, "net1", 3, &["web", "Db"], &[], Some("fd00:30::3"));
    let ip_c = w.connect(c, "net2", 2, &[]);
    let sa = &w.sb(a).ns;

    // names, aliases, name.network, any case
    assert_eq!(dig(sa, &["bravo"]).values(), vec![ip_b.to_string()]);
    assert_eq!(dig(sa, &["BRAVO.Net1"]).values(), vec![ip_b.to_string()]);
    assert_eq!(dig(sa, &["db"]).values(), vec![ip_b.to_string()]);
    assert_eq!(dig(sa, &["alpha"]).values(), vec![ip_a.to_string()]);
    let d = dig(sa, &["bravo"]);
    assert_eq!(d.status, "NOERROR");
    assert!(d.flags.contains("qr") && d.flags.contains("ra"), "{d:?}");
    assert_eq!(d.answers[0].0, "bravo.");
    assert_eq!(d.answers[0].1, "A");

    // round robin: both addresses, both orders over repeated queries
    let mut firsts = BTreeSet::new();
    for _ in 0..20 {
        let d = dig(sa, &["web"]);
        let mut got = d.values();
        firsts.insert(got[0].clone());
        got.sort();
        let mut want = vec![ip_a.to_string(), ip_b.to_string()];
        want.sort();
        assert_eq!(got, want);
    }
    assert_eq!(
        firsts.len(),
        2,
        "shuffled: each address comes first sometimes"
    );

    // AAAA, and AAAA of a name without IPv6 is an empty NOERROR
    assert_eq!(dig(sa, &["bravo", "AAAA"]).values(), vec!["fd00:30::3"]);
    let d = dig(sa, &["alpha", "AAAA"]);
    assert_eq!((d.status.as_str(), d.answers.len()), ("NOERROR", 0));

    // PTR, IPv4 and IPv6
    assert_eq!(
        dig(sa, &["-x", &ip_b.to_string()]).values(),
        vec!["bravo.net1."]
    );
    assert_eq!(dig(sa, &["-x", "fd00:30::3"]).values(), vec!["bravo.net1."]);

    // a name on a network alpha is not on: not answered locally; forwarded, NXDOMAIN upstream
    let d = dig(sa, &["charlie"]);
    assert_eq!(d.status, "NXDOMAIN", "{d:?}");
    assert_eq!(w.upstream.saw("charlie"), vec!["udp"]);
    let d = dig(sa, &["charlie.net2"]);
    assert_eq!(d.status, "NXDOMAIN");
    // ... and its PTR is not answered either
    let d = dig(sa, &["-x", &ip_c.to_string()]);
    assert_ne!(d.values(), vec!["charlie.net2."]);
    // while charlie resolves itself, and not alpha
    let sc = &w.sb(c).ns;
    assert_eq!(dig(sc, &["charlie"]).values(), vec![ip_c.to_string()]);
    assert_eq!(dig(sc, &["alpha"]).status, "NXDOMAIN");

    // nslookup (busybox's resolver path) sees the same
    let out = nslookup(sa, "bravo");
    assert!(out.contains(&ip_b.to_string()), "{out}");
    let out = nslookup(sa, &ip_b.to_string());
    assert!(out.contains("bravo.net1"), "{out}");

    // a forwarded name
    assert_eq!(dig(sa, &["ext.example"]).values(), vec!["198.51.100.7"]);
    // over TCP too
    assert_eq!(dig(sa, &["+tcp", "bravo"]).values(), vec![ip_b.to_string()]);
    assert_eq!(
        dig(sa, &["+tcp", "ext.example"]).values(),
        vec!["198.51.100.7"]
    );
    assert_eq!(w.upstream.saw("ext.example"), vec!["udp", "tcp"]);
}

#[test]
fn connect_disconnect_rename_and_links_show_at_once() {
    let mut w = world_two_networks();
    let a = w.sandbox("alpha", &[]);
    let b = w.sandbox("bravo", &[]);
    w.connect(a, "net1", 2, &[]);
    let ip_b2 = w.connect(b, "net2", 3, &[]);
    let sa = w.sb(a).ns.name().to_owned();
    let q = |w: &World, name: &str| dig(&w.sb(a).ns, &[name]);
    assert_eq!(q(&w, "bravo").status, "NXDOMAIN");
    let ip_b1 = w.connect(b, "net1", 3, &["cache"]);
    assert_eq!(q(&w, "bravo").values(), vec![ip_b1.to_string()]);
    assert_eq!(q(&w, "cache").values(), vec![ip_b1.to_string()]);
    // bravo on net2 is not alpha's business
    assert_ne!(q(&w, "bravo.net2").values(), vec![ip_b2.to_string()]);

    w.resolver.rename_sandbox("sb-bravo", "brandnew").unwrap();
    assert_eq!(q(&w, "brandnew").values(), vec![ip_b1.to_string()]);
    assert_eq!(q(&w, "bravo").status, "NXDOMAIN");
    assert_eq!(
        dig(&w.sb(a).ns, &["-x", &ip_b1.to_string()]).values(),
        vec!["brandnew.net1."]
    );

    w.resolver.disconnect("sb-bravo", "net-net1").unwrap();
    assert_eq!(q(&w, "brandnew").status, "NXDOMAIN");
    assert_eq!(q(&w, "cache").status, "NXDOMAIN");

    // a link on a user-defined network: a name only the linking sandbox resolves
    let c = w.sandbox("charlie", &[]);
    w.connect_with(c, "net2", 4, &[], &[("brandnew", "store")], None);
    assert_eq!(
        dig(&w.sb(c).ns, &["store"]).values(),
        vec![ip_b2.to_string()]
    );
    let d = dig(&w.sb(b).ns, &["store"]);
    assert_eq!(d.status, "NXDOMAIN", "the link alias is charlie's only");
    assert!(!sa.is_empty());
}

#[test]
fn silent_upstream_times_out_into_servfail_and_next_server_is_tried() {
    let mut config = ResolverConfig::default();
    config.upstream_timeout = Duration::from_millis(1500);
    config.forward_timeout = Duration::from_millis(4000);
    let mut w = World::with_config(Mode::Silent, config);
    w.network("net1", 1, false, true);
    let a = w.sandbox("alpha", &[]);
    w.connect(a, "net1", 2, &[]);
    let started = Instant::now();
    let d = dig(&w.sb(a).ns, &["ext.example"]);
    let took = started.elapsed();
    assert_eq!(d.status, "SERVFAIL", "{d:?}");
    assert!(took >= Duration::from_millis(1400), "{took:?}");
    assert!(took < Duration::from_millis(4500), "{took:?}");
    assert_eq!(w.upstream.saw("ext.example"), vec!["udp"]);

    // two upstreams: a silent one first (an unused LAN address), then the fake upstream
    *w.upstream.mode.lock().unwrap() = Mode::Answer;
    let dead: SocketAddr = "192.0.2.99:53".parse().unwrap();
    let live: SocketAddr = format!("{}:53", common::UPSTREAM).parse().unwrap();
    w.resolver.set_upstreams("sb-alpha", &[dead, live]).unwrap();
    let started = Instant::now();
    let d = dig(&w.sb(a).ns, &["ext.example"]);
    assert_eq!(d.values(), vec!["198.51.100.7"], "{d:?}");
    assert!(started.elapsed() >= Duration::from_millis(1400));
}

#[test]
fn truncated_upstream_answers_are_retried_over_tcp() {
    let mut w = World::new(Mode::Answer);
    w.network("net1", 1, false, true);
    let a = w.sandbox("alpha", &[]);
    w.connect(a, "net1", 2, &[]);
    let sa = &w.sb(a).ns;
    // UDP client, no retry of its own: gets as much as fits in 512 bytes, flagged TC
    let d = dig(sa, &["+ignore", "+bufsize=0", "+noedns", "big.example"]);
    assert!(d.flags.contains("tc"), "{d:?}");
    assert!(
        d.answers.len() > 20,
        "more than the upstream's UDP answer: {d:?}"
    );
    assert_eq!(w.upstream.saw("big.example"), vec!["udp", "tcp"]);
    // a client with a large EDNS buffer gets all 60 over UDP
    let d = dig(sa, &["+bufsize=4096", "big.example"]);
    assert_eq!(d.answers.len(), 60, "{d:?}");
    assert!(!d.flags.contains("tc"));
    // and over TCP, all of them
    let d = dig(sa, &["+tcp", "big.example"]);
    assert_eq!(d.answers.len(), 60);
}

#[test]
fn internal_networks_do_not_forward() {
    let mut w = World::new(Mode::Answer);
    w.network("inside", 3, true, true);
    let a = w.sandbox("alpha", &[]);
    let b = w.sandbox("bravo", &[]);
    w.connect(a, "inside", 2, &[]);
    let ip_b = w.connect(b, "inside", 3, &[]);
    let sa = &w.sb(a).ns;
    assert_eq!(dig(sa, &["bravo"]).values(), vec![ip_b.to_string()]);
    let d = dig(sa, &["ext.example"]);
    assert_eq!(d.status, "NXDOMAIN", "{d:?}");
    assert_eq!(w.upstream.count(), 0, "nothing left the internal network");
}

#[test]
fn sandbox_keeps_port_53_for_its_own_server() {
    let mut w = World::new(Mode::Answer);
    w.network("net1", 1, false, true);
    let a = w.sandbox("alpha", &[]);
    let b = w.sandbox("bravo", &[]);
    let ip_a = w.connect(a, "net1", 2, &[]);
    w.connect(b, "net1", 3, &[]);
    // a service in alpha binds the wildcard address on port 53, UDP and TCP
    let sa = &w.sb(a).ns;
    let echo = berth_testhost::traffic::UdpEcho::start(
        sa.netns(),
        "0.0.0.0:53".parse().unwrap(),
        "own-dns",
    )
    .expect("port 53 is free for the sandbox's own server");
    let tcp = berth_testhost::traffic::TcpBanner::start(
        sa.netns(),
        "0.0.0.0:53".parse().unwrap(),
        "own-dns-tcp",
    )
    .unwrap();
    assert_eq!(echo.addr().port(), 53);
    // it is reachable on alpha's address from bravo
    let got = berth_testhost::traffic::udp_exchange(
        w.sb(b).ns.netns(),
        SocketAddr::new(ip_a.into(), 53),
        Duration::from_secs(2),
    )
    .unwrap();
    assert!(got.starts_with("own-dns from"), "{got}");
    let got = berth_testhost::traffic::tcp_fetch(
        w.sb(b).ns.netns(),
        SocketAddr::new(ip_a.into(), 53),
        Duration::from_secs(2),
    )
    .unwrap();
    assert!(got.starts_with("own-dns-tcp"), "{got}");
    // while 127.0.0.11:53 is still berth's, over UDP and TCP
    assert_eq!(dig(sa, &["bravo"]).status, "NOERROR");
    assert_eq!(dig(sa, &["+tcp", "bravo"]).status, "NOERROR");
    drop(tcp);
}

fn query(name: &str, id: u16) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id).set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

#[test]
fn a_thousand_and_more_forwarded_queries_in_flight() {
    const N: usize = 1100;
    let mut w = World::new(Mode::Gather(N));
    w.network("net1", 1, false, true);
    let a = w.sandbox("alpha", &[]);
    w.connect(a, "net1", 2, &[]);
    // one client socket in alpha sends N queries for distinct names without waiting
    let sock = w
        .sb(a)
        .ns
        .netns()
        .run(|| UdpSocket::bind("0.0.0.0:0").unwrap())
        .unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    common::big_receive_buffer(&sock);
    let target: SocketAddr = "127.0.0.11:53".parse().unwrap();
    for i in 0..N {
        sock.send_to(&query(&format!("n{i}.example"), i as u16), target)
            .unwrap();
        if i % 64 == 63 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // the upstream holds every answer until it has all N: they were all in flight at once
    let mut ids = BTreeSet::new();
    let mut buf = [0u8; 1024];
    while ids.len() < N {
        let Ok(n) = sock.recv(&mut buf) else { break };
        let m = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        ids.insert(m.id());
    }
    assert_eq!(ids.len(), N, "answered: {}", ids.len());
    assert_eq!(w.upstream.count(), N);
}

#[test]
fn bad_input_end_to_end() {
    let mut config = ResolverConfig::default();
    config.tcp_idle_timeout = Duration::from_millis(800);
    config.max_tcp_connections_per_sandbox = 8;
    let mut w = World::with_config(Mode::Answer, config);
    w.network("net1", 1, false, true);
    let a = w.sandbox("alpha", &[]);
    w.connect(a, "net1", 2, &[]);
    let ns = w.sb(a).ns.netns();
    let sock = ns.run(|| UdpSocket::bind("0.0.0.0:0").unwrap()).unwrap();
    let target: SocketAddr = "127.0.0.11:53".parse().unwrap();
    let mut buf = [0u8; 8192];
    // Silence is awaited 700 ms; an answer up to 5 s (a loaded machine runs the whole suite).
    let mut ask = |packet: &[u8], wait: u64| -> Option<Vec<u8>> {
        sock.set_read_timeout(Some(Duration::from_millis(wait)))
            .unwrap();
        sock.send_to(packet, target).unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => Some(buf[..n].to_vec()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            Err(e) => panic!("no answer but an error (is the server there?): {e}"),
        }
    };
    let (silent, answered) = (700, 5000);
    // shorter than a header: nothing
    assert_eq!(ask(&[1, 2, 3], silent), None);
    // a truncated query: FORMERR, header only
    let q = query("alpha", 7);
    let r = ask(&q[..q.len() - 3], answered).expect("FORMERR");
    assert_eq!(r.len(), 12);
    assert_eq!(r[3] & 0x0f, 1, "FORMERR");
    assert_eq!(&r[..2], &[0, 7]);
    // oversized: nothing
    let mut big = q.clone();
    big.resize(5000, 0);
    assert_eq!(ask(&big, silent), None);
    // a response sent to the server: nothing (no loops)
    let mut resp = q.clone();
    resp[2] |= 0x80;
    assert_eq!(ask(&resp, silent), None);
    // still serving
    let r = Message::from_vec(&ask(&q, answered).unwrap()).unwrap();
    assert_eq!(r.answers().len(), 1);

    // TCP: a silent connection is closed after the idle timeout
    let mut s = ns
        .run(|| TcpStream::connect("127.0.0.11:53").unwrap())
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let t = Instant::now();
    let mut one = [0u8; 1];
    assert_eq!(s.read(&mut one).unwrap_or(0), 0, "closed by the server");
    assert!(t.elapsed() >= Duration::from_millis(700) && t.elapsed() < Duration::from_secs(3));
    // a slow client trickling its query is closed too
    let mut s = ns
        .run(|| TcpStream::connect("127.0.0.11:53").unwrap())
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let t = Instant::now();
    let framed = [&(q.len() as u16).to_be_bytes()[..], &q].concat();
    for b in framed.iter().take(6) {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(s.read(&mut one).unwrap_or(0), 0);
    assert!(t.elapsed() < Duration::from_secs(3));
    // a length prefix beyond the limit: closed without an answer
    let mut s = ns
        .run(|| TcpStream::connect("127.0.0.11:53").unwrap())
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(&[0xff, 0xff]).unwrap();
    assert_eq!(s.read(&mut one).unwrap_or(0), 0);
    // at most 8 connections: the 9th is closed at once while 8 are held open
    let held: Vec<TcpStream> = (0..8)
        .map(|_| {
            ns.run(|| TcpStream::connect("127.0.0.11:53").unwrap())
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut extra = ns
        .run(|| TcpStream::connect("127.0.0.11:53").unwrap())
        .unwrap();
    extra
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let t = Instant::now();
    let _ = extra.write_all(&framed);
    assert_eq!(extra.read(&mut one).unwrap_or(0), 0);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "closed at once, not after idling"
    );
    drop(held);
    // a well-formed TCP query is answered
    std::thread::sleep(Duration::from_millis(100));
    let mut s = ns
        .run(|| TcpStream::connect("127.0.0.11:53").unwrap())
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    assert_eq!(Message::from_vec(&body).unwrap().answers().len(), 1);
}

#[test]
fn removing_a_sandbox_closes_its_sockets_so_its_namespace_goes_away() {
    let mut w = World::new(Mode::Answer);
    w.network("net1", 1, false, true);
    let a = w.sandbox("alpha", &[]);
    w.connect(a, "net1", 2, &[]);
    let sa = &w.sb(a).ns;
    // a forwarded query makes the socket thread enter the namespace too
    assert_eq!(dig(sa, &["ext.example"]).values(), vec!["198.51.100.7"]);
    let ports = w.resolver.server_ports("sb-alpha").unwrap().unwrap();
    assert_ne!(ports.udp, 53);
    w.resolver.remove_sandbox("sb-alpha").unwrap();
    let sb = w.sandboxes.remove(a);
    drop(sb);
    // the host end of alpha's veth disappears once nothing holds alpha's namespace
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let links = w.host.ip(&["-o", "link", "show", "type", "veth"]).unwrap();
        let left: Vec<&str> = links
            .lines()
            .filter(|l| l.contains("master bdns1"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alpha's namespace is still alive: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dockers_conntrack_dnat_mode_works_too() {
    let mut config = ResolverConfig::default();
    config.redirect = berth_dns::Redirect::Conntrack(berth_firewall::FirewallConfig::new(
        berth_firewall::Backend::Iptables,
    ));
    let mut w = World::with_config(Mode::Answer, config);
    w.network("net1", 1, false, true);
    let a = w.sandbox("alpha", &[]);
    let b = w.sandbox("bravo", &[]);
    w.connect(a, "net1", 2, &[]);
    let ip_b = w.connect(b, "net1", 3, &[]);
    let sa = &w.sb(a).ns;
    assert_eq!(dig(sa, &["bravo"]).values(), vec![ip_b.to_string()]);
    assert_eq!(dig(sa, &["+tcp", "bravo"]).values(), vec![ip_b.to_string()]);
    assert_eq!(dig(sa, &["ext.example"]).values(), vec!["198.51.100.7"]);
    let nat = sa.run("iptables-save", &["-t", "nat"]).unwrap();
    assert!(nat.contains("--dport 53"), "{nat}");
    // the default (stateless) mode leaves no NAT rule and no conntrack entry behind queries
    let mut w2 = World::new(Mode::Answer);
    w2.network("net1", 1, false, true);
    let c = w2.sandbox("charlie", &[]);
    w2.connect(c, "net1", 2, &[]);
    let sc = &w2.sb(c).ns;
    assert_eq!(dig(sc, &["charlie"]).status, "NOERROR");
    let rules = sc.run("nft", &["list", "ruleset"]).unwrap();
    assert!(
        rules.contains("notrack") && !rules.contains("dnat"),
        "{rules}"
    );
}

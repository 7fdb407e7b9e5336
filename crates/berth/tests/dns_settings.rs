//! Per-sandbox name settings (`--dns`, `--dns-search`, `--dns-option`, `--add-host`,
//! `--hostname`, `--domainname`, the daemon's default `--dns`), legacy links on the default
//! bridge (hosts lines, environment, icc-off firewall holes) and renames, proved with real
//! queries and connections between namespaces.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use berth::{DnsSettings, EndpointOptions, Error, HostEntry, NetworkCreate, SandboxCreate};
use berth_testhost::LanPeer;
use berth_testhost::traffic::{TcpBanner, tcp_fetch};
use common::Fixture;

/// A DNS server in a LAN peer that answers every A query with 198.51.100.7 (UDP only).
struct FakeUpstream {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const FAKE_ANSWER: &str = "198.51.100.7";

impl FakeUpstream {
    fn start(peer: &LanPeer, addr: &str) -> FakeUpstream {
        let addr: SocketAddr = format!("{addr}:53").parse().unwrap();
        let sock = peer.netns().run(|| UdpSocket::bind(addr).unwrap()).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if n < 12 {
                    continue;
                }
                // The query, turned into a response with one answer: a pointer to the question's
                // name (offset 12), type A, class IN, TTL 30, 4 bytes of address.
                let mut a = buf[..n].to_vec();
                a[2] |= 0x80; // QR
                a[3] = 0x80; // RA, NOERROR
                a[6..8].copy_from_slice(&1u16.to_be_bytes());
                a[8..12].fill(0); // no authority or additional records (drops any OPT)
                let qend = question_end(&a).unwrap_or(n);
                a.truncate(qend);
                a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 198, 51, 100, 7]);
                let _ = sock.send_to(&a, from);
            }
        });
        FakeUpstream {
            stop,
            thread: Some(thread),
        }
    }
}

/// The offset just past the first question (name, type, class).
fn question_end(m: &[u8]) -> Option<usize> {
    let mut i = 12;
    loop {
        let len = *m.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        i += len;
    }
    Some(i + 4).filter(|&e| e <= m.len())
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn files(f: &Fixture, sandbox: &str) -> (String, String) {
    let insp = f.ctl().inspect_sandbox(sandbox).unwrap();
    (
        std::fs::read_to_string(insp.hosts_path.unwrap()).unwrap(),
        std::fs::read_to_string(insp.resolv_conf_path.unwrap()).unwrap(),
    )
}

fn on(network: &str, name: &str) -> SandboxCreate {
    let mut req = SandboxCreate::new(name);
    req.network = Some(network.into());
    req
}

fn namespaces_left(f: &Fixture) -> usize {
    std::fs::read_dir(f.dir.netns_dir())
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn sandbox_dns_settings_forwarding_and_files() {
    // The daemon-wide default (dockerd's --dns) points at the fake upstream.
    let default_dns = |c: &mut berth::Config| c.dns = vec!["192.0.2.53".parse().unwrap()];
    let mut f = Fixture::with(default_dns);
    let peer = f
        .host
        .add_lan_peer("192.0.2.1/24", "192.0.2.53/24")
        .unwrap();
    let _upstream = FakeUpstream::start(&peer, "192.0.2.53");
    f.ctl().create_network(NetworkCreate::new("n1")).unwrap();

    // No --dns of its own: the default applies, and the embedded server forwards there.
    f.ctl().create_sandbox(on("n1", "plain")).unwrap();
    assert_eq!(f.dig("plain", "ext.example"), FAKE_ANSWER);

    // Its own --dns (a silent address) replaces the default: the same name is not answered.
    let mut req = on("n1", "own");
    req.hostname = Some("web".into());
    req.domainname = Some("example.org".into());
    req.dns = DnsSettings {
        servers: vec!["192.0.2.54".parse().unwrap()],
        search: vec!["corp.example".into()],
        options: vec!["ndots:2".into(), "timeout:1".into()],
    };
    req.extra_hosts = vec![
        HostEntry::parse("db:10.9.8.7").unwrap(),
        HostEntry::parse("v6host:fd00::5").unwrap(),
    ];
    f.ctl().create_sandbox(req).unwrap();
    assert_ne!(f.dig("own", "ext.example"), FAKE_ANSWER);
    // Names of the network still answer locally.
    assert_eq!(f.dig("own", "plain"), f.ip_of("plain", "n1"));

    let (hosts, resolv) = files(&f, "own");
    assert!(hosts.contains("10.9.8.7\tdb\n"), "{hosts}");
    assert!(hosts.contains("fd00::5\tv6host\n"), "{hosts}");
    let own_ip = f.ip_of("own", "n1");
    assert!(
        hosts.contains(&format!("{own_ip}\tweb.example.org web\n")),
        "{hosts}"
    );
    assert!(resolv.contains("nameserver 127.0.0.11\n"), "{resolv}");
    assert!(resolv.contains("search corp.example\n"), "{resolv}");
    assert!(resolv.contains("options ndots:2 timeout:1\n"), "{resolv}");
    assert!(!resolv.contains("ndots:0"), "{resolv}");

    // On the default bridge the servers go into resolv.conf itself.
    let mut req = on("bridge", "direct");
    req.dns.servers = vec!["192.0.2.53".parse().unwrap()];
    f.ctl().create_sandbox(req).unwrap();
    let (_, resolv) = files(&f, "direct");
    assert!(resolv.contains("nameserver 192.0.2.53\n"), "{resolv}");
    assert!(!resolv.contains("127.0.0.11"), "{resolv}");
    // ... and that server really answers the sandbox.
    let out = f
        .sandbox_ns("direct")
        .command("dig")
        .args(["+short", "+time=1", "+tries=2", "@192.0.2.53", "x.example"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), FAKE_ANSWER);

    // The settings survive a restart.
    f.restart_with(default_dns);
    let (hosts, resolv) = files(&f, "own");
    assert!(hosts.contains("10.9.8.7\tdb\n"), "{hosts}");
    assert!(resolv.contains("search corp.example\n"), "{resolv}");
    assert_eq!(f.dig("plain", "ext.example"), FAKE_ANSWER);
}

#[test]
fn bad_sandbox_dns_settings_leave_nothing() {
    let f = Fixture::new();
    f.ctl().create_network(NetworkCreate::new("n1")).unwrap();
    let before = namespaces_left(&f);
    type Adjust = Box<dyn Fn(&mut SandboxCreate)>;
    let cases: Vec<(&str, Adjust)> = vec![
        (
            "hostname",
            Box::new(|r| r.hostname = Some("bad name".into())),
        ),
        (
            "domainname",
            Box::new(|r| r.domainname = Some("-lead.example".into())),
        ),
        (
            "--dns-search",
            Box::new(|r| r.dns.search = vec!["no spaces.example".into()]),
        ),
        (
            "ndots",
            Box::new(|r| r.dns.options = vec!["ndots:many".into()]),
        ),
        (
            "--dns-option",
            Box::new(|r| r.dns.options = vec!["two words".into()]),
        ),
        (
            "--add-host",
            Box::new(|r| {
                r.extra_hosts = vec![HostEntry {
                    names: "a\nb".into(),
                    addr: "10.0.0.1".parse().unwrap(),
                }]
            }),
        ),
    ];
    for (what, adjust) in cases {
        let mut req = on("n1", "bad");
        adjust(&mut req);
        let err = f.ctl().create_sandbox(req).unwrap_err();
        assert!(
            matches!(err, Error::InvalidRequest(_)) && err.to_string().contains(what),
            "{what}: {err}"
        );
        assert!(f.ctl().inspect_sandbox("bad").is_err(), "{what}");
        assert_eq!(namespaces_left(&f), before, "{what}: a namespace was left");
    }
    assert!(f.ctl().sandboxes().is_empty());
}

#[test]
fn legacy_links_on_the_default_bridge_with_icc_off() {
    let icc_off = |c: &mut berth::Config| c.icc = false;
    let mut f = Fixture::with(icc_off);
    let mut db = on("bridge", "db");
    db.hostname = Some("dbhost".into());
    db.endpoint.exposed = vec!["5432/tcp".parse().unwrap()];
    f.ctl().create_sandbox(db).unwrap();
    let db_ip = f.ip_of("db", "bridge");
    let db_ns = f.sandbox_ns("db");
    let _exposed = TcpBanner::start(&db_ns, "0.0.0.0:5432".parse().unwrap(), "pg").unwrap();
    let _private = TcpBanner::start(&db_ns, "0.0.0.0:6000".parse().unwrap(), "no").unwrap();

    let mut web = on("bridge", "web");
    web.endpoint = EndpointOptions {
        links: vec![("db".into(), "dbalias".into())],
        ..Default::default()
    };
    f.ctl().create_sandbox(web).unwrap();
    f.ctl().create_sandbox(on("bridge", "other")).unwrap();

    let fetch = |f: &Fixture, from: &str, port: u16| {
        tcp_fetch(
            &f.sandbox_ns(from),
            format!("{db_ip}:{port}").parse().unwrap(),
            Duration::from_millis(500),
        )
    };
    // icc is off: only the linking sandbox reaches the exposed port, nothing else gets through.
    assert!(fetch(&f, "web", 5432).unwrap().starts_with("pg"));
    assert!(fetch(&f, "web", 6000).is_err());
    assert!(fetch(&f, "other", 5432).is_err());

    let (hosts, _) = files(&f, "web");
    assert!(
        hosts.contains(&format!("{db_ip}\tdbalias dbhost db\n")),
        "{hosts}"
    );
    let env = f.ctl().link_env("web").unwrap();
    for want in [
        format!("DBALIAS_PORT=tcp://{db_ip}:5432"),
        format!("DBALIAS_PORT_5432_TCP=tcp://{db_ip}:5432"),
        format!("DBALIAS_PORT_5432_TCP_ADDR={db_ip}"),
        "DBALIAS_PORT_5432_TCP_PORT=5432".to_owned(),
        "DBALIAS_NAME=/web/dbalias".to_owned(),
    ] {
        assert!(env.contains(&want), "{want} missing from {env:?}");
    }
    assert_eq!(f.ctl().inspect_sandbox("web").unwrap().link_env, env);
    assert!(f.ctl().link_env("other").unwrap().is_empty());

    // One sandbox linked under two aliases: both names, one hole.
    let mut twice = on("bridge", "twice");
    twice.endpoint.links = vec![("db".into(), "one".into()), ("db".into(), "two".into())];
    f.ctl().create_sandbox(twice).unwrap();
    let (hosts, _) = files(&f, "twice");
    assert!(
        hosts.contains("\tone dbhost db\n") && hosts.contains("\ttwo dbhost db\n"),
        "{hosts}"
    );
    assert!(fetch(&f, "twice", 5432).unwrap().starts_with("pg"));
    f.ctl().remove_sandbox("twice").unwrap();
    assert!(
        fetch(&f, "web", 5432).unwrap().starts_with("pg"),
        "web's own hole stays"
    );

    // A restart keeps the hole (reconcile rebuilds it from the records).
    f.restart_with(icc_off);
    assert!(fetch(&f, "web", 5432).unwrap().starts_with("pg"));
    assert!(fetch(&f, "other", 5432).is_err());

    // Bad links: unknown sandbox, a sandbox on another network, itself. Nothing is left.
    f.ctl().create_network(NetworkCreate::new("n1")).unwrap();
    f.ctl().create_sandbox(on("n1", "elsewhere")).unwrap();
    let namespaces = namespaces_left(&f);
    let veths = f.berth_links().len();
    for (target, msg) in [
        ("nope", "could not get sandbox for nope"),
        ("elsewhere", "does not belong to the default network"),
        ("self", "cannot be linked to itself"),
    ] {
        let mut req = on("bridge", "self");
        req.endpoint.links = vec![(target.into(), "x".into())];
        let err = f.ctl().create_sandbox(req).unwrap_err();
        assert!(err.to_string().contains(msg), "{target}: {err}");
        assert!(f.ctl().inspect_sandbox("self").is_err());
        assert_eq!(
            namespaces_left(&f),
            namespaces,
            "{target}: a namespace was left"
        );
        assert_eq!(f.berth_links().len(), veths, "{target}: a veth was left");
    }

    // The linked sandbox leaves: its address is no longer open to anyone.
    f.ctl().disconnect("db", "bridge").unwrap();
    let rules = f.host.run("iptables-save", &[]).unwrap();
    assert!(
        !rules.contains(&format!("{db_ip}/32")),
        "a link rule for the departed address stayed:\n{rules}"
    );
}

#[test]
fn rename_changes_the_dns_name_at_once_and_persists() {
    // Names that are no hex prefix of an id (a lookup falls back to id prefixes).
    let mut f = Fixture::new();
    f.ctl().create_network(NetworkCreate::new("n1")).unwrap();
    for name in ["sa", "sb"] {
        f.ctl().create_sandbox(on("n1", name)).unwrap();
    }
    let b_ip = f.ip_of("sb", "n1");
    assert_eq!(f.dig("sa", "sb"), b_ip);

    f.ctl().rename_sandbox("sb", "sc").unwrap();
    assert_eq!(f.dig("sa", "sc"), b_ip);
    assert_eq!(f.dig("sa", "sc.n1"), b_ip);
    assert_ne!(f.dig("sa", "sb"), b_ip);
    assert!(f.ctl().inspect_sandbox("sb").is_err());
    assert_eq!(f.ctl().inspect_sandbox("sc").unwrap().name, "sc");
    let net = f.ctl().inspect_network("n1").unwrap();
    assert!(net.containers.values().any(|c| c.name == "sc"));

    // Taken names are refused; the old name is free again.
    let err = f.ctl().rename_sandbox("sc", "sa").unwrap_err();
    assert!(matches!(err, Error::SandboxExists { .. }), "{err}");
    let err = f.ctl().rename_sandbox("sc", "bad name").unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err}");
    f.ctl().create_sandbox(on("n1", "sb")).unwrap();
    assert_ne!(f.dig("sa", "sb"), b_ip);

    f.restart();
    assert_eq!(
        f.ctl().inspect_sandbox("sc").unwrap().networks["n1"].ip_address,
        b_ip
    );
    assert_eq!(f.dig("sa", "sc"), b_ip);
    f.ctl().remove_sandbox("sc").unwrap();
    assert!(f.ctl().inspect_sandbox("sc").is_err());
}

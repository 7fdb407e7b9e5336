//! Arbitrary host resolv.conf contents and sandbox DNS settings into the resolv.conf planner, and
//! arbitrary strings into the hosts-file and link parsers: never a panic; an embedded-DNS plan
//! always names 127.0.0.11 first, sets ndots (or keeps the user's), and has at most three
//! upstreams, all on port 53 and none on the host's loopback unless the user asked for one.

#![no_main]

use berth_dns::{
    DnsSettings, ExposedPort, HostEntry, HostsFile, Link, ResolvMode, link_env, plan_resolv_conf,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (host, rest) = text.split_once('\u{1}').unwrap_or((&text, ""));
    let words: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
    let settings = DnsSettings {
        servers: words.iter().filter_map(|w| w.parse().ok()).collect(),
        search: words.iter().filter(|w| w.contains('.')).cloned().collect(),
        options: words.iter().filter(|w| w.contains(':')).cloned().collect(),
    };
    for s in [DnsSettings::default(), settings.clone()] {
        for mode in [ResolvMode::Embedded, ResolvMode::Direct { ipv6: false }, ResolvMode::Direct { ipv6: true }, ResolvMode::Host] {
            match plan_resolv_conf(host, &s, mode) {
                Ok(plan) => {
                    assert!(plan.upstreams.len() <= 3);
                    assert!(plan.upstreams.iter().all(|u| u.port() == 53));
                    assert!(plan.upstreams.iter().all(|u| u.ip() != std::net::IpAddr::V4(berth_dns::EMBEDDED_DNS_ADDRESS)));
                    if mode == ResolvMode::Embedded {
                        let first_ns = plan.content.lines().find(|l| l.starts_with("nameserver"));
                        assert_eq!(first_ns, Some("nameserver 127.0.0.11"), "{}", plan.content);
                        assert!(plan.content.contains("ndots"), "{}", plan.content);
                        if s.servers.is_empty() {
                            assert!(plan.upstreams.iter().all(|u| !u.ip().is_loopback()));
                        }
                    } else {
                        assert!(plan.upstreams.is_empty());
                    }
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
    let mut hosts = HostsFile::new(rest.lines().next().unwrap_or("h"));
    for line in host.lines().take(16) {
        if let Ok(e) = HostEntry::parse(line) {
            assert!(!e.names.contains('\n'));
            hosts.extra_hosts.push(e);
        }
        if let Ok(p) = ExposedPort::parse(line) {
            assert!(p.port > 0);
        }
    }
    let rendered = hosts.render();
    assert!(rendered.starts_with("127.0.0.1\tlocalhost\n"));
    let ports: Vec<ExposedPort> = words.iter().filter_map(|w| ExposedPort::parse(w).ok()).collect();
    let env = link_env(&Link {
        parent: "parent",
        alias: words.first().map_or("alias", String::as_str),
        child_addr: "172.17.0.2".parse().unwrap(),
        ports: &ports,
        child_env: &words,
    });
    assert!(env.iter().any(|e| e.contains("_NAME=/parent/")));
});

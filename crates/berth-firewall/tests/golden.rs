//! Golden tests (no root): berth's rendering of Docker's reference scenario
//! (`shared/reference/docker-20.10-host-iptables.txt`: the default bridge, user networks, one
//! internal, one with icc off, port 8080 published to 172.18.0.3:80) and of the embedded DNS
//! rules (`docker-20.10-container-dns-iptables.txt`), for both backends.
//!
//! Run with `BERTH_BLESS=1` to rewrite the files after an intended change, then review the diff.

use std::path::PathBuf;

use berth_firewall::dns::DnsRedirect;
use berth_firewall::iptables::Dump;
use berth_firewall::{
    Backend, DesiredState, FirewallConfig, LinkPort, LinkRule, NetworkRules, Planner, PortRange,
    PortRule, Protocol,
};

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("BERTH_BLESS").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with BERTH_BLESS=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "{} differs (BERTH_BLESS=1 rewrites it)",
        path.display()
    );
}

fn config(backend: Backend) -> FirewallConfig {
    let mut c = FirewallConfig::new(backend);
    // Docker switched ip_forward on itself in the reference, hence FORWARD DROP.
    c.forward_policy_drop = true;
    c
}

fn network(bridge: &str, subnet: &str) -> NetworkRules {
    NetworkRules::new(bridge, Some(subnet.parse().expect("subnet")), None)
}

fn web_port() -> PortRule {
    PortRule {
        proto: Protocol::Tcp,
        host_ip: None,
        host_ports: PortRange::single(8080).expect("port"),
        container_ip: "172.18.0.3".parse().expect("ip"),
        container_ports: PortRange::single(80).expect("port"),
        bridge: "br-cdb8ad34337f".into(),
    }
}

/// The networks and the published port of the reference capture.
fn reference_state(config: &FirewallConfig) -> DesiredState {
    let mut internal = network("br-a27a23c6933f", "192.168.80.0/20");
    internal.internal = true;
    let mut no_icc = network("br-3ac651934783", "192.168.96.0/20");
    no_icc.icc = false;
    DesiredState::from_parts(
        config,
        [
            network("docker0", "172.17.0.0/16"),
            network("br-cdb8ad34337f", "172.18.0.0/16"),
            network("br-a04509d26c99", "192.168.64.0/20"),
            internal,
            no_icc,
        ],
        [web_port()],
        [],
    )
    .expect("reference state")
}

#[test]
fn reference_scenario_full_ruleset() {
    for (backend, file) in [
        (Backend::Iptables, "reference-iptables.txt"),
        (Backend::Nftables, "reference-nftables.txt"),
    ] {
        let cfg = config(backend);
        let planner = Planner::new(cfg.clone()).expect("planner");
        let tx = planner.full(&reference_state(&cfg)).expect("full ruleset");
        assert_eq!(tx.processes(), 1, "one transaction for the whole setup");
        golden(file, &tx.render());
    }
}

/// The changes of single operations on top of the reference state: each is a handful of lines.
#[test]
fn reference_scenario_operations() {
    for (backend, file) in [
        (Backend::Iptables, "operations-iptables.txt"),
        (Backend::Nftables, "operations-nftables.txt"),
    ] {
        let cfg = config(backend);
        let planner = Planner::new(cfg.clone()).expect("planner");
        let state = reference_state(&cfg);
        let mut out = String::new();
        let mut record = |title: &str, text: String| {
            out.push_str(&format!("## {title}\n{text}\n"));
        };
        let net = network("br-0123456789ab", "10.10.0.0/24");
        record(
            "add_network br-0123456789ab 10.10.0.0/24",
            planner.add_network(&state, &net).expect("add").render(),
        );
        let mut snat = network("br-5na7", "10.11.0.0/24");
        snat.host_ipv4 = Some("192.0.2.10".parse().expect("ip"));
        record(
            "add_network with host_ipv4 192.0.2.10",
            planner.add_network(&state, &snat).expect("add").render(),
        );
        record(
            "remove_network br-a04509d26c99",
            planner
                .remove_network(&state, "br-a04509d26c99")
                .expect("remove")
                .render(),
        );
        let range = PortRule {
            proto: Protocol::Tcp,
            host_ip: None,
            host_ports: PortRange::new(9000, 9999).expect("range"),
            container_ip: "172.18.0.2".parse().expect("ip"),
            container_ports: PortRange::new(9000, 9999).expect("range"),
            bridge: "br-cdb8ad34337f".into(),
        };
        let range_tx = planner
            .add_ports(&state, std::slice::from_ref(&range))
            .expect("range");
        assert_eq!(range_tx.processes(), 1);
        record("add_ports -p 9000-9999:9000-9999", range_tx.render());
        let on_addr = PortRule {
            proto: Protocol::Udp,
            host_ip: Some("127.0.0.1".parse().expect("ip")),
            host_ports: PortRange::new(5000, 5002).expect("range"),
            container_ip: "172.18.0.2".parse().expect("ip"),
            container_ports: PortRange::new(6000, 6002).expect("range"),
            bridge: "br-cdb8ad34337f".into(),
        };
        record(
            "add_ports -p 127.0.0.1:5000-5002:6000-6002/udp (shifted range)",
            planner
                .add_ports(&state, &[on_addr])
                .expect("shifted")
                .render(),
        );
        let sctp = PortRule {
            proto: Protocol::Sctp,
            host_ip: None,
            host_ports: PortRange::new(7000, 7010).expect("range"),
            container_ip: "172.18.0.2".parse().expect("ip"),
            container_ports: PortRange::single(7000).expect("port"),
            bridge: "br-cdb8ad34337f".into(),
        };
        record(
            "add_ports -p 7000-7010:7000/sctp (range to one port)",
            planner.add_ports(&state, &[sctp]).expect("sctp").render(),
        );
        record(
            "remove_ports 8080->172.18.0.3:80",
            planner
                .remove_ports(&state, &[web_port()])
                .expect("unpublish")
                .render(),
        );
        let link = LinkRule {
            bridge: "br-3ac651934783".into(),
            parent_ip: "192.168.96.2".parse().expect("ip"),
            child_ip: "192.168.96.3".parse().expect("ip"),
            ports: vec![LinkPort {
                proto: Protocol::Tcp,
                port: 5432,
            }],
        };
        record(
            "add_link 192.168.96.2 -> 192.168.96.3 5432/tcp",
            planner.add_link(&state, &link).expect("link").render(),
        );
        golden(file, &out);
    }
}

#[test]
fn embedded_dns_rules() {
    // The ports of the reference capture.
    let redirect = DnsRedirect::new(54373, 42709).expect("ports");
    let empty = Dump::parse("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n")
        .expect("dump");
    let batch = redirect.iptables_batch(&empty);
    golden("dns-iptables.txt", &batch.script());
    golden("dns-nftables.txt", &redirect.nft_script());
    // Applying to a sandbox that already has the rules changes nothing.
    let mut after = String::from(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n",
    );
    for line in batch
        .script()
        .lines()
        .filter(|l| l.starts_with(":BERTH") || l.starts_with("-A "))
    {
        after.push_str(line);
        after.push('\n');
    }
    for line in batch.script().lines().filter(|l| l.starts_with("-I ")) {
        // "-I CHAIN 1 SPEC" -> "-A CHAIN SPEC"
        let mut parts = line.splitn(4, ' ');
        let (_, chain, _, spec) = (parts.next(), parts.next(), parts.next(), parts.next());
        after.push_str(&format!(
            "-A {} {}\n",
            chain.unwrap_or_default(),
            spec.unwrap_or_default()
        ));
    }
    after.push_str("COMMIT\n");
    let again = redirect.iptables_batch(&Dump::parse(&after).expect("dump"));
    assert!(again.is_empty(), "{}", again.script());
}

/// Every behaviour of the reference capture has its counterpart in berth's rules.
#[test]
fn reference_behaviours_are_all_present() {
    let cfg = config(Backend::Iptables);
    let text = Planner::new(cfg.clone())
        .expect("planner")
        .full(&reference_state(&cfg))
        .expect("full")
        .render();
    for needle in [
        ":FORWARD DROP",
        "-I FORWARD 1 -j DOCKER-USER",
        "-A DOCKER-USER -j RETURN",
        // default bridge and user networks: replies, outbound, icc, isolation, masquerade
        "-A BERTH-ACCEPT -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT",
        "-A BERTH-ACCEPT -i docker0 ! -o docker0 -j ACCEPT",
        "-A BERTH-ACCEPT -i docker0 -o docker0 -j ACCEPT",
        "-A BERTH-ISOLATION -i docker0 ! -o docker0 -j BERTH-ISOLATION-2",
        "-A BERTH-ISOLATION-2 -o docker0 -j DROP",
        "-A BERTH-POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
        // icc disabled
        "-A BERTH-DROP -i br-3ac651934783 -o br-3ac651934783 -j DROP",
        // internal
        "-A BERTH-ISOLATION -i br-a27a23c6933f ! -o br-a27a23c6933f -j DROP",
        "-A BERTH-ISOLATION ! -i br-a27a23c6933f -o br-a27a23c6933f -j DROP",
        // published port, its accept and hairpin
        "-A BERTH-DNAT-TCP-31 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.3:80",
        "-A BERTH-DNAT -p tcp -m tcp --dport 7936:8191 -j BERTH-DNAT-TCP-31",
        "-A BERTH-ACCEPT -o br-cdb8ad34337f -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT",
        "-A BERTH-POSTROUTING -s 172.18.0.0/16 -o br-cdb8ad34337f -m conntrack --ctstate DNAT -j MASQUERADE",
        "-I PREROUTING 1 -m addrtype --dst-type LOCAL -j BERTH-DNAT",
        "-I OUTPUT 1 -m addrtype --dst-type LOCAL -j BERTH-DNAT",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(
        !text.contains("MASQUERADE") || !text.contains("-s 192.168.80.0/20 ! -o"),
        "internal networks are not masqueraded"
    );
}

/// The drop of loopback destinations from outside is one static rule of the base ruleset (in
/// place of Docker 28's raw drop per loopback-published port): the full ruleset has it once,
/// and no network or port operation touches it, so connecting and publishing cost the same as
/// without it.
#[test]
fn loopback_drop_is_static() {
    for (backend, rule, jump) in [
        (
            Backend::Iptables,
            "-A BERTH-RAW -d 127.0.0.0/8 ! -i lo -j DROP",
            "-I PREROUTING 1 -j BERTH-RAW",
        ),
        (
            Backend::Nftables,
            "add rule inet berth prerouting_raw iifname != \"lo\" ip daddr 127.0.0.0/8 drop",
            "add chain inet berth prerouting_raw { type filter hook prerouting priority raw; policy accept; }",
        ),
    ] {
        let cfg = config(backend);
        let planner = Planner::new(cfg.clone()).expect("planner");
        let state = reference_state(&cfg);
        let full = planner.full(&state).expect("full").render();
        for needle in [rule, jump] {
            assert_eq!(full.matches(needle).count(), 1, "{needle:?} in\n{full}");
        }
        let empty = planner.full(&DesiredState::new()).expect("empty").render();
        assert!(empty.contains(rule), "a base rule, there without networks");
        let on_loopback = PortRule {
            host_ip: Some("127.0.0.1".parse().expect("ip")),
            host_ports: PortRange::single(7070).expect("port"),
            ..web_port()
        };
        let ops = [
            planner
                .add_network(&state, &network("br-0123456789ab", "10.10.0.0/24"))
                .expect("add"),
            planner
                .remove_network(&state, "br-a04509d26c99")
                .expect("remove"),
            planner.add_ports(&state, &[on_loopback]).expect("publish"),
            planner
                .remove_ports(&state, &[web_port()])
                .expect("unpublish"),
        ];
        for tx in ops {
            let text = tx.render();
            assert!(
                ![
                    "-d 127.0.0.0/8",
                    "daddr 127.0.0.0/8",
                    "BERTH-RAW",
                    "prerouting_raw"
                ]
                .iter()
                .any(|n| text.contains(n)),
                "{backend:?}: an operation touches the loopback drop:\n{text}"
            );
        }
    }
}

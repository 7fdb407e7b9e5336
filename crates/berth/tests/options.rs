//! Bridge options, IPv6 dual stack and adopted namespaces, proved in the kernel and with traffic.
#![allow(clippy::unwrap_used)]

mod common;

use berth::{EndpointOptions, IpamPoolConfig, NetworkCreate, SandboxCreate, SandboxNetns};
use berth_testhost::TestHost;
use berth_testhost::traffic::{TcpBanner, tcp_fetch};
use common::{Fixture, TIMEOUT};

#[test]
fn mtu_bridge_name_and_snat_source_options() {
    let f = Fixture::new();
    let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    // A second host address to SNAT to.
    f.host
        .ip(&["addr", "add", "192.0.2.50/24", "dev", peer.host_interface()])
        .unwrap();
    f.ctl()
        .create_network(
            NetworkCreate::new("tuned")
                .option("com.docker.network.driver.mtu", "1400")
                .option("com.docker.network.bridge.name", "br-tuned")
                .option("com.docker.network.host_ipv4", "192.0.2.50"),
        )
        .unwrap();
    f.sandbox_on("t", "tuned");
    let bridge = f.host.ip(&["-o", "link", "show", "br-tuned"]).unwrap();
    assert!(bridge.contains("mtu 1400"), "{bridge}");
    let eth0 = f.links_in("t");
    assert!(eth0.contains("eth0") && eth0.contains("mtu 1400"), "{eth0}");
    let server = TcpBanner::start(peer.netns(), "192.0.2.2:9000".parse().unwrap(), "x").unwrap();
    let got = tcp_fetch(&f.sandbox_ns("t"), server.addr(), TIMEOUT).unwrap();
    assert_eq!(
        got, "x from 192.0.2.50",
        "outbound traffic is SNATed to host_ipv4"
    );
    f.ctl().remove_sandbox("t").unwrap();
    f.ctl().remove_network("tuned").unwrap();
    assert!(
        f.host.ip(&["link", "show", "br-tuned"]).is_err(),
        "bridge removed"
    );
}

#[test]
fn ipv6_dual_stack_network() {
    let f = Fixture::with(|c| c.ipv6 = true);
    let mut req = NetworkCreate::new("dual")
        .subnet(IpamPoolConfig {
            subnet: Some("10.60.0.0/24".parse().unwrap()),
            ..Default::default()
        })
        .subnet(IpamPoolConfig {
            subnet: Some("fd00:60::/64".parse().unwrap()),
            ..Default::default()
        });
    req.enable_ipv6 = true;
    f.ctl().create_network(req).unwrap();
    for s in ["six1", "six2"] {
        f.ctl().create_sandbox(SandboxCreate::new(s)).unwrap();
    }
    f.ctl()
        .connect("six1", "dual", EndpointOptions::default())
        .unwrap();
    f.ctl()
        .connect(
            "six2",
            "dual",
            EndpointOptions {
                ipv6: Some("fd00:60::77".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
    let one = f.ctl().inspect_sandbox("six1").unwrap().networks["dual"].clone();
    assert_eq!(one.ipv6_address, "fd00:60::2");
    assert_eq!(one.ipv6_gateway, "fd00:60::1");
    assert_eq!(one.ip_address, "10.60.0.2");
    assert!(f.ping("six2", "fd00:60::2"));
    assert!(f.ping("six1", "fd00:60::77"));
    assert!(f.ping("six1", "fd00:60::1"));
    assert!(f.ping("six2", "10.60.0.2"));
    let rules = f.host.run("ip6tables-save", &[]).unwrap();
    assert!(rules.contains("fd00:60::/64"), "{rules}");
    let net = f.ctl().inspect_network("dual").unwrap();
    assert!(net.enable_ipv6);
    assert_eq!(net.ipam.config.len(), 2);
}

/// Docker 20.10 makes an IPv6 network without the daemon's --ipv6; so does berth, with the IPv6
/// firewall programmed for it (isolation between networks holds over IPv6) and IPv6 forwarding
/// switched on for it.
#[test]
fn ipv6_network_without_the_daemon_setting() {
    let f = Fixture::new();
    assert!(!f.ctl().config().ipv6);
    let v6 = |name: &str, subnet: &str| {
        let mut req = NetworkCreate::new(name).subnet(IpamPoolConfig {
            subnet: Some(subnet.parse().unwrap()),
            ..Default::default()
        });
        req.enable_ipv6 = true;
        req
    };
    f.ctl().create_network(v6("six", "fd00:61::/64")).unwrap();
    f.ctl().create_network(v6("other", "fd00:62::/64")).unwrap();
    let net = f.ctl().inspect_network("six").unwrap();
    assert!(net.enable_ipv6);
    assert_eq!(net.ipam.config.len(), 2, "an IPv4 subnet too, as Docker");
    f.sandbox_on("a", "six");
    f.sandbox_on("b", "six");
    f.sandbox_on("c", "other");
    let b = f.ctl().inspect_sandbox("b").unwrap().networks["six"]
        .ipv6_address
        .clone();
    let c = f.ctl().inspect_sandbox("c").unwrap().networks["other"]
        .ipv6_address
        .clone();
    assert!(b.starts_with("fd00:61::"), "{b}");
    assert!(f.ping("a", &b), "IPv6 on one network");
    assert!(
        !f.ping("a", &c),
        "IPv6 between networks is dropped by berth's IPv6 rules"
    );
    let rules = f.host.run("ip6tables-save", &[]).unwrap();
    assert!(rules.contains("fd00:61::/64"), "{rules}");
    let fwd = f
        .host
        .run("cat", &["/proc/sys/net/ipv6/conf/all/forwarding"])
        .unwrap();
    assert_eq!(fwd.trim(), "1", "IPv6 forwarding on for the IPv6 network");
}

/// Docker switches IPv6 off on an interface that has no IPv6 address. Without that, each new
/// sandbox sends router solicitations and MLD reports that the bridge floods to every other
/// sandbox on the network: a cost of every connect that grows with the network.
#[test]
fn ipv4_only_interfaces_have_ipv6_off_and_stay_quiet() {
    let f = Fixture::new();
    f.ctl().create_network(NetworkCreate::new("quiet")).unwrap();
    f.sandbox_on("newcomer", "quiet");
    let ns = f.sandbox_ns("newcomer");
    let out = |args: &[&str]| {
        let o = ns.command(args[0]).args(&args[1..]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    assert_eq!(
        out(&["cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"]),
        "1"
    );
    assert_eq!(out(&["ip", "-6", "addr", "show", "dev", "eth0"]), "");
    // Solicitations go out within a second of link-up (MLD reports at once): none may leave.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let stats = out(&["ip", "-s", "-o", "link", "show", "dev", "eth0"]);
    // `ip -s -o link`: "... TX:  bytes packets ... \\    <bytes> <packets> ..."
    let tx_packets: u64 = stats
        .split("TX:")
        .nth(1)
        .and_then(|t| t.split('\\').nth(1))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap();
    assert_eq!(
        tx_packets, 0,
        "a sandbox that never talked sent packets:\n{stats}"
    );
}

#[test]
fn adopted_namespace_is_used_and_left_alone() {
    let f = Fixture::new();
    let outside = TestHost::new().unwrap();
    // An id the engine (or `ip netns set`) gave the namespace in the host stays as it is.
    let host_nl = berth_testhost::berth_netlink::Handle::open(f.host.netns()).unwrap();
    host_nl.nsid_set(outside.netns(), 77).unwrap();
    // Its loopback down, as `ip netns add` leaves it: adoption brings it up.
    outside.ip(&["link", "set", "lo", "down"]).unwrap();
    let tables_before = outside.run("nft", &["list", "tables"]).unwrap();
    let mut req = SandboxCreate::new("adopted");
    req.netns = SandboxNetns::Adopt(outside.path());
    f.ctl().create_sandbox(req).unwrap();
    assert_eq!(host_nl.nsid_get(outside.netns()).unwrap(), Some(77));
    let lo = outside.ip(&["-o", "link", "show", "lo"]).unwrap();
    assert!(lo.contains("UP"), "{lo}");
    f.ctl()
        .connect("adopted", "bridge", EndpointOptions::default())
        .unwrap();
    // A user-defined network: the embedded DNS server and its redirect in the namespace.
    f.ctl().create_network(NetworkCreate::new("named")).unwrap();
    f.ctl()
        .connect("adopted", "named", EndpointOptions::default())
        .unwrap();
    let tables = outside.run("nft", &["list", "tables"]).unwrap();
    assert!(tables.contains("berth-resolver"), "{tables}");
    let links = outside.ip(&["-o", "addr", "show", "eth0"]).unwrap();
    assert!(links.contains("172.17.0.2/16"), "{links}");
    assert!(outside.ping("172.17.0.1"));
    f.ctl().remove_sandbox("adopted").unwrap();
    assert!(
        outside.path().exists(),
        "berth never deletes a namespace it adopted"
    );
    assert!(
        outside.ip(&["link", "show", "eth0"]).is_err(),
        "its interface is gone"
    );
    assert_eq!(
        outside.run("nft", &["list", "tables"]).unwrap(),
        tables_before,
        "no DNS redirect is left behind"
    );
}

#[test]
fn inhibit_ipv4_keeps_the_gateway_off_the_bridge() {
    let f = Fixture::new();
    f.ctl()
        .create_network(
            NetworkCreate::new("inhibited")
                .subnet(IpamPoolConfig {
                    subnet: Some("10.61.0.0/24".parse().unwrap()),
                    ..Default::default()
                })
                .option("com.docker.network.bridge.inhibit_ipv4", "true")
                .option("com.docker.network.bridge.name", "br-inhibit"),
        )
        .unwrap();
    let addrs = f
        .host
        .ip(&["-o", "-4", "addr", "show", "br-inhibit"])
        .unwrap();
    assert_eq!(addrs.trim(), "", "{addrs}");
    f.sandbox_on("i", "inhibited");
    assert!(!f.ping("i", "10.61.0.1"));
}

/// Options Docker accepts: an option the driver does not know is kept (stored, shown in
/// inspect, named in the create's warnings) and has no effect, unless the configuration asks for
/// strict options; `container_iface_prefix` names the sandbox's interfaces on the network.
#[test]
fn unknown_options_are_kept_with_a_warning_and_the_interface_prefix_applies() {
    let f = Fixture::new();
    let (_, warnings) = f
        .ctl()
        .create_network_with_warnings(
            NetworkCreate::new("vendor")
                .option("com.example.vendor", "x")
                .option(berth::IFACE_PREFIX_OPTION, "ext")
                .option("com.docker.network.bridge.enable_icc", "false"),
        )
        .unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("com.example.vendor"), "{warnings:?}");
    let n = f.ctl().inspect_network("vendor").unwrap();
    assert_eq!(n.options["com.example.vendor"], "x");
    assert_eq!(n.options[berth::IFACE_PREFIX_OPTION], "ext");
    // The known option still applies next to the unknown one: icc is off.
    let a = f.sandbox_on("a", "vendor");
    let b = f.sandbox_on("b", "vendor");
    assert!(!f.ping("a", &b), "icc=false ignored");
    // The interface is named with the prefix, and carries the address.
    let links = berth_testhost::berth_netlink::Handle::open(&f.sandbox_ns("a"))
        .unwrap()
        .link_index("ext0");
    assert!(links.is_ok(), "no ext0 in the sandbox");
    assert_eq!(
        f.ctl().inspect_sandbox("a").unwrap().networks["vendor"].ip_address,
        a
    );
    // A restart takes the network back with its unknown option.
    let mut f = f;
    f.restart();
    assert_eq!(
        f.ctl().inspect_network("vendor").unwrap().options["com.example.vendor"],
        "x"
    );
    assert!(f.ping("a", &f.ip_of("a", "vendor")));
    for s in ["a", "b"] {
        f.ctl().remove_sandbox(s).unwrap();
    }
}

#[test]
fn strict_options_refuse_what_the_driver_does_not_know() {
    let f = Fixture::with(|c| c.strict_options = true);
    let err = f
        .ctl()
        .create_network(NetworkCreate::new("vendor").option("com.example.vendor", "x"))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown option \"com.example.vendor\""),
        "{err}"
    );
    assert!(f.ctl().inspect_network("vendor").is_err());
    // The controller's own option is no driver's: known in strict mode too.
    f.ctl()
        .create_network(NetworkCreate::new("pfx").option(berth::IFACE_PREFIX_OPTION, "p"))
        .unwrap();
}

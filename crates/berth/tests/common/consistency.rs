//! Does berth's report equal the kernel? A check that reads the kernel on its own (netlink in each
//! namespace, `iptables-save` / `nft list` in the host namespace, the exec root's directory) and
//! compares it with what inspect says, for tests that end in some state nobody wrote down in
//! advance: the concurrency soak, crash and restart tests.
//!
//! Self-contained (no dependency on the fixtures of `common`), so that berth-cli's tests include
//! it by path (`#[path = "../../berth/tests/common/consistency.rs"]`) and feed it the daemon's
//! inspect JSON.
//!
//! - [`check_controller`] / [`check`]: every mismatch between the reported state and the kernel,
//!   as one line of text each (empty: consistent).
//! - [`HostBaseline`]: the host namespace's links and firewall rules at one moment, to prove that
//!   removing everything leaves the host as it was.
//!
//! Reading the firewall's DNATs is in `consistency/firewall.rs`, the baseline in
//! `consistency/baseline.rs`.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use berth::{Controller, FirewallBackend, NetworkInspect, SandboxInspect};
use berth_testhost::berth_netlink::{Handle, IpFamily, LinkKind, Netns, Scope};

// Relative to this file's directory, whether this file is `common`'s child (berth's tests) or
// included by path from another crate's tests.
#[path = "consistency/baseline.rs"]
mod baseline;
#[path = "consistency/firewall.rs"]
mod firewall;

#[allow(unused_imports)] // Not every test binary that includes `common` uses it.
pub(crate) use baseline::HostBaseline;

/// The bridge-name option of Docker's bridge driver.
const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";
/// Prefix of the host end of every bridge endpoint's veth (`berth` + 10 hex digits).
const VETH_PREFIX: &str = "berth";

/// What berth reports: every network and every sandbox, as inspect shows them.
#[derive(Debug, Clone)]
pub(crate) struct Reported {
    pub(crate) networks: Vec<NetworkInspect>,
    pub(crate) sandboxes: Vec<SandboxInspect>,
}

impl Reported {
    /// The controller's listings.
    pub(crate) fn of(ctl: &Controller) -> Reported {
        Reported {
            networks: ctl.networks(),
            sandboxes: ctl.sandboxes(),
        }
    }

    /// The daemon's `GET /networks` and `GET /sandboxes` bodies.
    pub(crate) fn from_json(networks: &[u8], sandboxes: &[u8]) -> Result<Reported, String> {
        Ok(Reported {
            networks: serde_json::from_slice(networks)
                .map_err(|e| format!("GET /networks is not a list of networks: {e}"))?,
            sandboxes: serde_json::from_slice(sandboxes)
                .map_err(|e| format!("GET /sandboxes is not a list of sandboxes: {e}"))?,
        })
    }
}

/// Every mismatch between a controller's report and the kernel (see [`check`]).
pub(crate) fn check_controller(ctl: &Controller) -> Vec<String> {
    let config = ctl.config();
    check(
        &Reported::of(ctl),
        ctl.host_netns(),
        &config.netns_dir(),
        config.firewall,
    )
}

/// Every mismatch between `reported` and the kernel, one line each:
///
/// - no two endpoints share an address on a network, and the network's and the sandboxes' views
///   of each endpoint agree;
/// - no two published ports share a host address, port and protocol (a binding on 0.0.0.0 takes
///   the port on every address);
/// - each sandbox's namespace holds exactly its endpoints' interfaces (name, MAC, addresses) and
///   the default route inspect implies, besides `lo`;
/// - the host namespace holds exactly one bridge per bridge network (with its gateway addresses)
///   and one `berth…` veth per bridge endpoint, attached to its network's bridge;
/// - the firewall (`firewall`: iptables or nftables, read with its own tools) DNATs exactly the
///   published ports, each to the address of its sandbox;
/// - `netns_dir` (the exec root's namespace directory) holds a file for each sandbox berth made a
///   namespace for, and nothing else.
pub(crate) fn check(
    reported: &Reported,
    host: &Netns,
    netns_dir: &Path,
    firewall: Option<FirewallBackend>,
) -> Vec<String> {
    let mut out = Vec::new();
    check_addresses(reported, &mut out);
    let ports = check_ports(reported, &mut out);
    for sb in &reported.sandboxes {
        check_sandbox_namespace(sb, host, &mut out);
    }
    check_host_links(reported, host, &mut out);
    if let Some(backend) = firewall {
        check_dnat(&ports, host, backend, &mut out);
    }
    check_netns_dir(reported, netns_dir, &mut out);
    out
}

// ----- addresses -----

fn check_addresses(reported: &Reported, out: &mut Vec<String>) {
    let sandboxes: BTreeMap<&str, &SandboxInspect> = reported
        .sandboxes
        .iter()
        .map(|s| (s.id.as_str(), s))
        .collect();
    for net in &reported.networks {
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        let gateways: BTreeSet<String> = net
            .ipam
            .config
            .iter()
            .filter_map(|c| c.gateway.clone())
            .collect();
        for (sb_id, c) in &net.containers {
            for addr in [&c.ipv4_address, &c.ipv6_address] {
                if addr.is_empty() {
                    continue;
                }
                let ip = addr.split('/').next().unwrap_or(addr).to_owned();
                if let Some(other) = seen.insert(ip.clone(), &c.name) {
                    out.push(format!(
                        "network {}: {} and {} share the address {ip}",
                        net.name, other, c.name
                    ));
                }
                if gateways.contains(&ip) {
                    out.push(format!(
                        "network {}: {} has the gateway's address {ip}",
                        net.name, c.name
                    ));
                }
            }
            // The sandbox's own view of the same endpoint.
            let Some(sb) = sandboxes.get(sb_id.as_str()) else {
                out.push(format!(
                    "network {} lists sandbox {} ({sb_id}), which the sandbox listing lacks",
                    net.name, c.name
                ));
                continue;
            };
            match sb.networks.get(&net.name) {
                None => out.push(format!(
                    "network {} lists sandbox {}, whose inspect does not name the network",
                    net.name, sb.name
                )),
                Some(sn) => {
                    let v4 = if sn.ip_address.is_empty() {
                        String::new()
                    } else {
                        format!("{}/{}", sn.ip_address, sn.ip_prefix_len)
                    };
                    if sn.endpoint_id != c.endpoint_id || v4 != c.ipv4_address {
                        out.push(format!(
                            "network {} and sandbox {} disagree about the endpoint: {} {} against {} {}",
                            net.name, sb.name, c.endpoint_id, c.ipv4_address, sn.endpoint_id, v4
                        ));
                    }
                }
            }
        }
    }
    let by_name: BTreeMap<&str, &NetworkInspect> = reported
        .networks
        .iter()
        .map(|n| (n.name.as_str(), n))
        .collect();
    for sb in &reported.sandboxes {
        for (net_name, sn) in &sb.networks {
            match by_name.get(net_name.as_str()) {
                None => out.push(format!(
                    "sandbox {} is on network {net_name}, which the network listing lacks",
                    sb.name
                )),
                Some(net) if !net.containers.contains_key(&sb.id) => out.push(format!(
                    "sandbox {} is on network {net_name}, whose inspect does not list it",
                    sb.name
                )),
                Some(net) if net.id != sn.network_id => out.push(format!(
                    "sandbox {}: network {net_name} has id {}, inspect of the sandbox says {}",
                    sb.name, net.id, sn.network_id
                )),
                Some(_) => {}
            }
        }
    }
}

// ----- published ports -----

/// One published host port, expanded from inspect: where it is bound and where it must lead.
#[derive(Debug, Clone)]
struct Published {
    sandbox: String,
    proto: String,
    host_ip: IpAddr,
    host_port: u16,
    container_port: u16,
    /// The sandbox's addresses of the host address's family: the DNAT must lead to one of them.
    targets: BTreeSet<IpAddr>,
}

fn check_ports(reported: &Reported, out: &mut Vec<String>) -> Vec<Published> {
    let mut ports = Vec::new();
    for sb in &reported.sandboxes {
        let addrs: BTreeSet<IpAddr> = sb
            .networks
            .values()
            .flat_map(|n| [&n.ip_address, &n.ipv6_address])
            .filter_map(|a| a.parse().ok())
            .collect();
        for (key, bindings) in &sb.ports {
            let Some((cport, proto)) = key.split_once('/') else {
                out.push(format!(
                    "sandbox {}: port key {key:?} is not PORT/PROTO",
                    sb.name
                ));
                continue;
            };
            for b in bindings {
                let parsed = (
                    cport.parse::<u16>(),
                    b.host_ip.parse::<IpAddr>(),
                    b.host_port.parse::<u16>(),
                );
                let (Ok(container_port), Ok(host_ip), Ok(host_port)) = parsed else {
                    out.push(format!(
                        "sandbox {}: binding {}:{} of {key} does not parse",
                        sb.name, b.host_ip, b.host_port
                    ));
                    continue;
                };
                ports.push(Published {
                    sandbox: sb.name.clone(),
                    proto: proto.to_owned(),
                    host_ip,
                    host_port,
                    container_port,
                    targets: addrs
                        .iter()
                        .filter(|a| a.is_ipv4() == host_ip.is_ipv4())
                        .copied()
                        .collect(),
                });
            }
        }
    }
    for (i, a) in ports.iter().enumerate() {
        for b in &ports[i + 1..] {
            let same_family = a.host_ip.is_ipv4() == b.host_ip.is_ipv4();
            let overlap =
                a.host_ip == b.host_ip || a.host_ip.is_unspecified() || b.host_ip.is_unspecified();
            if same_family && overlap && a.proto == b.proto && a.host_port == b.host_port {
                out.push(format!(
                    "host port {}/{} is published twice: {}:{} by {} and {}:{} by {}",
                    a.host_port,
                    a.proto,
                    a.host_ip,
                    a.host_port,
                    a.sandbox,
                    b.host_ip,
                    b.host_port,
                    b.sandbox
                ));
            }
        }
    }
    ports
}

/// The kernel's DNATs against the published ports: each port has one, leading to its sandbox's
/// address and container port, and there is no other.
fn check_dnat(ports: &[Published], host: &Netns, backend: FirewallBackend, out: &mut Vec<String>) {
    let rules = match firewall::dnat_entries(host, backend) {
        Ok(r) => r,
        Err(e) => {
            out.push(format!("reading the firewall: {e}"));
            return;
        }
    };
    let mut actual: BTreeMap<firewall::DnatKey, Vec<(IpAddr, u16)>> = BTreeMap::new();
    for (key, to) in rules {
        actual.entry(key).or_default().push(to);
    }
    for p in ports {
        if p.targets.is_empty() {
            // An IPv6 binding of an IPv4-only sandbox goes through the userland proxy: no DNAT.
            continue;
        }
        let host_ip = (!p.host_ip.is_unspecified()).then_some(p.host_ip);
        let key = (p.proto.clone(), host_ip, p.host_port);
        match actual.get_mut(&key).and_then(|v| v.pop()) {
            None => out.push(format!(
                "no DNAT for {}:{}/{} of sandbox {}",
                p.host_ip, p.host_port, p.proto, p.sandbox
            )),
            Some((ip, port)) => {
                if !p.targets.contains(&ip) || port != p.container_port {
                    out.push(format!(
                        "DNAT of {}:{}/{} leads to {ip}:{port}, not to sandbox {} ({:?}) port {}",
                        p.host_ip, p.host_port, p.proto, p.sandbox, p.targets, p.container_port
                    ));
                }
            }
        }
    }
    for ((proto, ip, port), rest) in actual {
        for (to_ip, to_port) in rest {
            let ip = ip.map_or("*".to_owned(), |i| i.to_string());
            out.push(format!(
                "stray DNAT {ip}:{port}/{proto} to {to_ip}:{to_port}: no sandbox publishes it"
            ));
        }
    }
}

// ----- sandbox namespaces -----

fn check_sandbox_namespace(sb: &SandboxInspect, host: &Netns, out: &mut Vec<String>) {
    let ns = match Netns::open(&sb.sandbox_key) {
        Ok(ns) => ns,
        Err(e) => {
            out.push(format!(
                "sandbox {}: namespace {} cannot be opened: {e}",
                sb.name, sb.sandbox_key
            ));
            return;
        }
    };
    if ns.same_as(host).unwrap_or(false) {
        return; // A host-mode sandbox: its interfaces are the host's.
    }
    let nl = match Handle::open(&ns) {
        Ok(h) => h,
        Err(e) => {
            out.push(format!(
                "sandbox {}: netlink in its namespace: {e}",
                sb.name
            ));
            return;
        }
    };
    let (links, addrs) = match (nl.link_list(), nl.addr_list_all()) {
        (Ok(l), Ok(a)) => (l, a),
        (Err(e), _) | (_, Err(e)) => {
            out.push(format!("sandbox {}: listing its interfaces: {e}", sb.name));
            return;
        }
    };
    let expected: BTreeMap<&str, (&str, &berth::SandboxNetworkInspect)> = sb
        .networks
        .iter()
        .filter(|(_, n)| !n.interface.is_empty())
        .map(|(net, n)| (n.interface.as_str(), (net.as_str(), n)))
        .collect();
    for link in &links {
        if link.name == "lo" {
            continue;
        }
        let Some((net, want)) = expected.get(link.name.as_str()) else {
            out.push(format!(
                "sandbox {}: interface {} is in its namespace but not in inspect",
                sb.name, link.name
            ));
            continue;
        };
        let mac = link.mac.map(|m| m.to_string()).unwrap_or_default();
        if !want.mac_address.is_empty() && !mac.eq_ignore_ascii_case(&want.mac_address) {
            out.push(format!(
                "sandbox {}: {} (network {net}) has MAC {mac}, inspect says {}",
                sb.name, link.name, want.mac_address
            ));
        }
        if !link.up {
            out.push(format!("sandbox {}: {} is down", sb.name, link.name));
        }
        let have: BTreeSet<String> = addrs
            .iter()
            .filter(|a| a.index == link.index && a.scope != Scope::Link)
            .map(|a| a.net.to_string())
            .collect();
        let mut wanted = BTreeSet::new();
        if !want.ip_address.is_empty() {
            wanted.insert(format!("{}/{}", want.ip_address, want.ip_prefix_len));
        }
        if !want.ipv6_address.is_empty() {
            wanted.insert(format!("{}/{}", want.ipv6_address, want.ipv6_prefix_len));
        }
        if have != wanted {
            out.push(format!(
                "sandbox {}: {} (network {net}) has addresses {have:?}, inspect says {wanted:?}",
                sb.name, link.name
            ));
        }
    }
    let present: BTreeSet<&str> = links.iter().map(|l| l.name.as_str()).collect();
    for (ifname, (net, _)) in &expected {
        if !present.contains(ifname) {
            out.push(format!(
                "sandbox {}: inspect has {ifname} on network {net}, its namespace has no such interface",
                sb.name
            ));
        }
    }
    // The default route goes through the gateway of the first network, by name, that has one.
    let want_gw = sb
        .networks
        .values()
        .find(|n| !n.gateway.is_empty())
        .map(|n| n.gateway.clone());
    match nl.route_list(IpFamily::V4, None) {
        Ok(routes) => {
            let defaults: Vec<String> = routes
                .iter()
                .filter(|r| r.dst.prefix_len() == 0)
                .map(|r| r.gateway.map(|g| g.to_string()).unwrap_or_default())
                .collect();
            let want: Vec<String> = want_gw.into_iter().collect();
            if defaults != want {
                out.push(format!(
                    "sandbox {}: default routes via {defaults:?}, inspect implies {want:?}",
                    sb.name
                ));
            }
        }
        Err(e) => out.push(format!("sandbox {}: listing its routes: {e}", sb.name)),
    }
}

// ----- the host's links -----

/// The bridge device of a bridge network.
fn bridge_of(net: &NetworkInspect) -> String {
    if let Some(name) = net.options.get(BRIDGE_NAME_OPTION) {
        return name.clone();
    }
    if net.name == "bridge" {
        return "docker0".into();
    }
    format!("br-{}", &net.id[..12.min(net.id.len())])
}

fn is_berth_veth(name: &str) -> bool {
    name.strip_prefix(VETH_PREFIX).is_some_and(|rest| {
        rest.len() == 10
            && rest
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

fn check_host_links(reported: &Reported, host: &Netns, out: &mut Vec<String>) {
    let nl = match Handle::open(host) {
        Ok(h) => h,
        Err(e) => {
            out.push(format!("netlink in the host namespace: {e}"));
            return;
        }
    };
    let (links, addrs) = match (nl.link_list(), nl.addr_list_all()) {
        (Ok(l), Ok(a)) => (l, a),
        (Err(e), _) | (_, Err(e)) => {
            out.push(format!("listing the host's links: {e}"));
            return;
        }
    };
    let by_name: BTreeMap<&str, &berth_testhost::berth_netlink::Link> =
        links.iter().map(|l| (l.name.as_str(), l)).collect();
    let bridge_nets: Vec<&NetworkInspect> = reported
        .networks
        .iter()
        .filter(|n| n.driver == "bridge")
        .collect();
    // Bridge → the network it serves; veth → the bridge it must be a port of.
    let mut want_bridges: BTreeMap<String, &NetworkInspect> = BTreeMap::new();
    let mut want_veths: BTreeMap<String, (String, String)> = BTreeMap::new();
    for net in &bridge_nets {
        let bridge = bridge_of(net);
        for c in net.containers.values() {
            let veth = format!(
                "{VETH_PREFIX}{}",
                &c.endpoint_id[..10.min(c.endpoint_id.len())]
            );
            want_veths.insert(
                veth,
                (bridge.clone(), format!("{} on {}", c.name, net.name)),
            );
        }
        if let Some(other) = want_bridges.insert(bridge.clone(), net) {
            out.push(format!(
                "networks {} and {} report the same bridge {bridge}",
                other.name, net.name
            ));
        }
    }
    for link in &links {
        if link.kind == Some(LinkKind::Bridge) && !want_bridges.contains_key(&link.name) {
            out.push(format!("host bridge {} belongs to no network", link.name));
        }
        if is_berth_veth(&link.name) && !want_veths.contains_key(&link.name) {
            out.push(format!("host veth {} belongs to no endpoint", link.name));
        }
    }
    for (bridge, net) in &want_bridges {
        let Some(link) = by_name.get(bridge.as_str()) else {
            out.push(format!(
                "network {}: its bridge {bridge} is missing",
                net.name
            ));
            continue;
        };
        if link.kind != Some(LinkKind::Bridge) {
            out.push(format!("network {}: {bridge} is not a bridge", net.name));
        }
        let have: BTreeSet<String> = addrs
            .iter()
            .filter(|a| a.index == link.index && a.scope != Scope::Link)
            .map(|a| a.net.addr().to_string())
            .collect();
        for c in &net.ipam.config {
            if let Some(gw) = &c.gateway {
                if !have.contains(gw) {
                    out.push(format!(
                        "network {}: bridge {bridge} lacks the gateway address {gw} (has {have:?})",
                        net.name
                    ));
                }
            }
        }
    }
    for (veth, (bridge, what)) in &want_veths {
        let Some(link) = by_name.get(veth.as_str()) else {
            out.push(format!("endpoint of {what}: host veth {veth} is missing"));
            continue;
        };
        let master = link
            .master
            .and_then(|m| links.iter().find(|l| l.index == m))
            .map(|l| l.name.clone());
        if master.as_deref() != Some(bridge.as_str()) {
            out.push(format!(
                "endpoint of {what}: host veth {veth} is a port of {master:?}, not of {bridge}"
            ));
        }
    }
}

// ----- the exec root -----

fn check_netns_dir(reported: &Reported, netns_dir: &Path, out: &mut Vec<String>) {
    let keys: BTreeSet<PathBuf> = reported
        .sandboxes
        .iter()
        .map(|s| PathBuf::from(&s.sandbox_key))
        .collect();
    let entries = match std::fs::read_dir(netns_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            out.push(format!("reading {}: {e}", netns_dir.display()));
            return;
        }
    };
    for e in entries.flatten() {
        // `default` is the host namespace's key (host-mode sandboxes report it).
        if !keys.contains(&e.path()) && e.file_name() != "default" {
            out.push(format!(
                "namespace file {} belongs to no sandbox",
                e.path().display()
            ));
        }
    }
    for sb in &reported.sandboxes {
        let key = Path::new(&sb.sandbox_key);
        if key.parent() == Some(netns_dir) && !key.exists() {
            out.push(format!(
                "sandbox {}: its namespace file {} is missing",
                sb.name, sb.sandbox_key
            ));
        }
    }
}

//! The kill matrix's checks of a restarted daemon against the kernel, with iproute2, iptables-save,
//! ss and real traffic (never with berth's own code): no leaked link, address, namespace, rule or
//! held port; each sandbox's namespace holds exactly what its inspect says; every sandbox reaches
//! its peers and every published port answers from the LAN.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use berth_testhost::berth_netlink::Netns;
use berth_testhost::traffic::tcp_fetch;
use berth_testhost::{LanPeer, ping_in};
use ipnet::Ipv4Net;
use serde_json::Value;

use super::model::{Ep, PREDEFINED, Sb, Snapshot};
use crate::common::Fixture;

/// The LAN address of the test host, where published ports are fetched.
pub(crate) const HOST_LAN: &str = "192.0.2.1";
/// The LAN peer's address.
pub(crate) const PEER_LAN: &str = "192.0.2.2";
/// The banner every published server answers with: the sandbox id (stable across renames).
pub(crate) fn banner_of(sb: &Sb) -> String {
    format!("kill-matrix {}", sb.id)
}

/// Runs every check; returns one line per mismatch (empty: the kernel and the API agree).
pub(crate) fn all(f: &Fixture, snap: &Snapshot, peer: &LanPeer, daemon_pid: u32) -> Vec<String> {
    let mut out = Vec::new();
    host_links(f, snap, &mut out);
    namespaces(f, snap, &mut out);
    firewall(f, snap, &mut out);
    held_ports(f, snap, daemon_pid, &mut out);
    for sb in &snap.sbs {
        sandbox_kernel(snap, sb, &mut out);
    }
    traffic(snap, peer, &mut out);
    out
}

fn json_of(what: &str, out: std::io::Result<std::process::Output>) -> Result<Value, String> {
    let out = out.map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{what}: {e}"))
}

fn strs(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str)
}

/// `(address/prefix)` of every global IPv4 and IPv6 address of one `ip -j addr` entry.
fn addresses(link: &Value) -> BTreeSet<String> {
    link["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["scope"] == "global" || a["family"] == "inet")
        .map(|a| {
            format!(
                "{}/{}",
                a["local"].as_str().unwrap_or("?"),
                a["prefixlen"].as_u64().unwrap_or(0)
            )
        })
        .collect()
}

/// Links and addresses of the host namespace: every bridge and `berth…` veth belongs to a listed
/// network or endpoint (and each of those exists), bridges carry exactly their gateways.
fn host_links(f: &Fixture, snap: &Snapshot, out: &mut Vec<String>) {
    let links = match json_of(
        "ip -j -d addr (host)",
        f.host.command("ip").args(["-j", "-d", "addr"]).output(),
    ) {
        Ok(v) => v,
        Err(e) => return out.push(e),
    };
    let mut bridges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for n in &snap.nets {
        if let Some(b) = &n.bridge {
            let gws =
                n.v4.iter()
                    .filter_map(|(s, g)| g.map(|g| format!("{g}/{}", s.prefix_len())))
                    .collect();
            bridges.insert(b.clone(), gws);
        }
    }
    let mut veths: BTreeMap<String, (String, String)> = BTreeMap::new();
    for sb in &snap.sbs {
        for ep in sb.eps.values() {
            let Some(bridge) = snap.net(&ep.network).and_then(|n| n.bridge.clone()) else {
                continue;
            };
            veths.insert(
                ep.host_veth(),
                (bridge, format!("{} on {}", sb.name, ep.network)),
            );
        }
    }
    let mut seen = BTreeSet::new();
    for link in links.as_array().into_iter().flatten() {
        let name = link["ifname"].as_str().unwrap_or("?");
        let kind = link["linkinfo"]["info_kind"].as_str().unwrap_or("");
        let alias = link["ifalias"].as_str().unwrap_or("");
        let master = link["master"].as_str().unwrap_or("");
        let addrs = addresses(link);
        seen.insert(name.to_owned());
        if name == "lo" {
            continue;
        }
        if kind == "veth" && name.starts_with("lan") && !alias.starts_with("berth") {
            // The LAN peer's veth (the test's own).
            continue;
        }
        if let Some(gws) = bridges.get(name) {
            if kind != "bridge" {
                out.push(format!("link {name} should be a bridge, is {kind:?}"));
            }
            if &addrs != gws {
                out.push(format!(
                    "bridge {name} has addresses {addrs:?}, its network says {gws:?}"
                ));
            }
            continue;
        }
        if let Some((bridge, whose)) = veths.get(name) {
            if kind != "veth" || master != bridge {
                out.push(format!(
                    "veth {name} ({whose}) is a {kind:?} on {master:?}, should be a veth on {bridge}"
                ));
            }
            if !addrs.is_empty() {
                out.push(format!("veth {name} ({whose}) has addresses {addrs:?}"));
            }
            continue;
        }
        out.push(format!(
            "leaked link {name} (kind {kind:?}, master {master:?}, alias {alias:?}, addresses {addrs:?}): no listed network or endpoint has it"
        ));
    }
    for b in bridges.keys() {
        if !seen.contains(b) {
            out.push(format!("bridge {b} of a listed network is missing"));
        }
    }
    for (v, (_, whose)) in &veths {
        if !seen.contains(v) {
            out.push(format!("veth {v} of endpoint {whose} is missing"));
        }
    }
}

/// Namespace files under the exec root are exactly the listed sandboxes'.
fn namespaces(f: &Fixture, snap: &Snapshot, out: &mut Vec<String>) {
    let dir = f.dir.path().join("run").join("netns");
    let mut files = BTreeSet::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name != "default" {
                    files.insert(name);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => out.push(format!("reading {}: {e}", dir.display())),
    }
    let mut known = BTreeSet::new();
    for sb in &snap.sbs {
        let key = std::path::Path::new(&sb.key);
        if key.parent() == Some(dir.as_path()) {
            known.insert(sb.id.clone());
        }
        if !key.exists() {
            out.push(format!(
                "sandbox {}: its namespace {} is missing",
                sb.name, sb.key
            ));
        }
    }
    for leaked in files.difference(&known) {
        out.push(format!(
            "leaked namespace {}/{leaked}: no listed sandbox has it",
            dir.display()
        ));
    }
}

/// One DNAT rule of `iptables-save`.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Dnat {
    proto: String,
    host_ports: String,
    to: String,
}

fn arg_after<'a>(words: &[&'a str], flag: &str) -> Option<&'a str> {
    words
        .iter()
        .position(|w| *w == flag)
        .and_then(|i| words.get(i + 1).copied())
}

/// The firewall: one DNAT rule per published port (to that sandbox), no other DNAT, and no rule
/// naming a bridge or a subnet no listed network has.
fn firewall(f: &Fixture, snap: &Snapshot, out: &mut Vec<String>) {
    let save = match f.host.run("iptables-save", &[]) {
        Ok(s) => s,
        Err(e) => return out.push(format!("iptables-save: {e}")),
    };
    let bridges: BTreeSet<&str> = snap
        .nets
        .iter()
        .filter_map(|n| n.bridge.as_deref())
        .collect();
    let subnets: Vec<Ipv4Net> = snap
        .nets
        .iter()
        .flat_map(|n| n.v4.iter().map(|(s, _)| *s))
        .collect();
    let mut dnats = Vec::new();
    let mut lines_seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut table = "";
    for line in save.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = if t == "nat" { "nat" } else { "other" };
            continue;
        }
        if !line.starts_with("-A ") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if line.contains("-j DNAT") {
            dnats.push(Dnat {
                proto: arg_after(&words, "-p").unwrap_or("?").to_owned(),
                host_ports: arg_after(&words, "--dport").unwrap_or("?").to_owned(),
                to: arg_after(&words, "--to-destination")
                    .unwrap_or("?")
                    .to_owned(),
            });
        }
        for flag in ["-i", "-o"] {
            if let Some(dev) = arg_after(&words, flag) {
                let berth_dev = dev.starts_with("br-") || dev.starts_with("berth");
                if berth_dev && !bridges.contains(dev) {
                    out.push(format!(
                        "leaked rule ({table}) for interface {dev} that no listed network has: {line}"
                    ));
                }
            }
        }
        for w in &words {
            let addr = w.split(['/', ':']).next().unwrap_or("");
            let Ok(ip) = addr.parse::<Ipv4Addr>() else {
                continue;
            };
            let private = ip.octets()[0] == 10
                || (ip.octets()[0] == 172 && (16..32).contains(&ip.octets()[1]))
                || (ip.octets()[0] == 192 && ip.octets()[1] == 168);
            if private && !subnets.iter().any(|s| s.contains(&ip)) {
                out.push(format!(
                    "leaked rule ({table}) naming {w}, in no listed network: {line}"
                ));
            }
        }
        if line.contains("br-") || line.contains("-j DNAT") {
            *lines_seen.entry(format!("{table} {line}")).or_default() += 1;
        }
    }
    for (line, n) in lines_seen {
        if n > 1 {
            out.push(format!("rule present {n} times: {line}"));
        }
    }
    let mut want: BTreeMap<(String, String), (&Sb, u16)> = BTreeMap::new();
    for sb in &snap.sbs {
        for p in &sb.ports {
            want.insert(
                (p.proto.clone(), p.host_port.to_string()),
                (sb, p.container_port),
            );
        }
    }
    let mut have = BTreeSet::new();
    for d in &dnats {
        let key = (d.proto.clone(), d.host_ports.clone());
        match want.get(&key) {
            None => out.push(format!(
                "leaked DNAT rule: {}/{} -> {} (no listed sandbox publishes that port)",
                d.host_ports, d.proto, d.to
            )),
            Some((sb, cport)) => {
                let to_ok = sb.eps.values().any(|e| d.to == format!("{}:{cport}", e.ip));
                if !to_ok {
                    out.push(format!(
                        "DNAT rule {}/{} -> {} does not lead to sandbox {} (port {cport})",
                        d.host_ports, d.proto, d.to, sb.name
                    ));
                }
            }
        }
        have.insert(key);
    }
    for ((proto, port), (sb, _)) in &want {
        if !have.contains(&(proto.clone(), port.clone())) {
            out.push(format!(
                "no DNAT rule for port {port}/{proto} that sandbox {} publishes",
                sb.name
            ));
        }
    }
}

/// Listening sockets in the host namespace: each one is a published port held by the daemon, and
/// each published port is held.
fn held_ports(f: &Fixture, snap: &Snapshot, daemon_pid: u32, out: &mut Vec<String>) {
    let ss = match f.host.run("ss", &["-Hltnup"]) {
        Ok(s) => s,
        Err(e) => return out.push(format!("ss: {e}")),
    };
    let published: BTreeMap<(String, u16), &str> = snap
        .sbs
        .iter()
        .flat_map(|s| {
            s.ports
                .iter()
                .map(move |p| ((p.proto.clone(), p.host_port), s.name.as_str()))
        })
        .collect();
    let pid_mark = format!("pid={daemon_pid},");
    let mut held = BTreeSet::new();
    for line in ss.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (Some(proto), Some(local)) = (words.first(), words.get(4)) else {
            continue;
        };
        let port: u16 = local
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let by_daemon = line.contains(&pid_mark);
        if published.contains_key(&(proto.to_string(), port)) && by_daemon {
            held.insert((proto.to_string(), port));
        } else {
            out.push(format!(
                "socket held in the host namespace without a publication (or not by the daemon, pid {daemon_pid}): {line}"
            ));
        }
    }
    for ((proto, port), sb) in &published {
        if !held.contains(&(proto.clone(), *port)) {
            out.push(format!(
                "port {port}/{proto} published by sandbox {sb} is not held by the daemon"
            ));
        }
    }
}

/// Inside a sandbox's namespace: exactly its endpoints' interfaces with their addresses and MACs,
/// and the default route through the gateway of its first non-internal network.
fn sandbox_kernel(snap: &Snapshot, sb: &Sb, out: &mut Vec<String>) {
    let ns = match Netns::open(&sb.key) {
        Ok(ns) => ns,
        Err(e) => return out.push(format!("sandbox {}: namespace {}: {e}", sb.name, sb.key)),
    };
    let links = match json_of(
        &format!("ip -j addr in sandbox {}", sb.name),
        ns.command("ip").args(["-j", "addr"]).output(),
    ) {
        Ok(v) => v,
        Err(e) => return out.push(e),
    };
    let by_if: BTreeMap<&str, &Ep> = sb.eps.values().map(|e| (e.ifname.as_str(), e)).collect();
    let mut seen = BTreeSet::new();
    for link in links.as_array().into_iter().flatten() {
        let name = link["ifname"].as_str().unwrap_or("?");
        if name == "lo" {
            if !strs(&link["flags"]).any(|f| f == "UP") {
                out.push(format!("sandbox {}: loopback is down", sb.name));
            }
            continue;
        }
        seen.insert(name.to_owned());
        let addrs = addresses(link);
        let Some(ep) = by_if.get(name) else {
            out.push(format!(
                "sandbox {}: interface {name} ({addrs:?}) that no endpoint of its inspect has",
                sb.name
            ));
            continue;
        };
        let want: BTreeSet<String> = [format!("{}/{}", ep.ip, ep.prefix)].into();
        if addrs != want {
            out.push(format!(
                "sandbox {}: {name} has addresses {addrs:?}, inspect says {want:?} (network {})",
                sb.name, ep.network
            ));
        }
        let mac = link["address"].as_str().unwrap_or("");
        if !ep.mac.is_empty() && mac != ep.mac {
            out.push(format!(
                "sandbox {}: {name} has MAC {mac}, inspect says {}",
                sb.name, ep.mac
            ));
        }
        if !strs(&link["flags"]).any(|f| f == "UP") {
            out.push(format!("sandbox {}: {name} is down", sb.name));
        }
    }
    for ep in sb.eps.values() {
        if !seen.contains(&ep.ifname) {
            out.push(format!(
                "sandbox {}: interface {:?} of network {} is missing",
                sb.name, ep.ifname, ep.network
            ));
        }
    }
    // The default route: via the gateway of the first non-internal network (by name) with one.
    let want = sb
        .eps
        .values()
        .filter(|e| !e.gateway.is_empty())
        .filter(|e| snap.net(&e.network).is_some_and(|n| !n.internal))
        .map(|e| (e.gateway.clone(), e.ifname.clone()))
        .next();
    let routes = match json_of(
        &format!("ip -j route in sandbox {}", sb.name),
        ns.command("ip").args(["-j", "-4", "route"]).output(),
    ) {
        Ok(v) => v,
        Err(e) => return out.push(e),
    };
    let have: Vec<(String, String)> = routes
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["dst"] == "default")
        .map(|r| {
            (
                r["gateway"].as_str().unwrap_or("").to_owned(),
                r["dev"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = want.into_iter().collect();
    if have != want {
        out.push(format!(
            "sandbox {}: default routes {have:?}, expected {want:?}",
            sb.name
        ));
    }
}

/// Real traffic: every sandbox pings a peer on each of its networks (the gateway when it is
/// alone there), and every published port answers a LAN peer with its sandbox's banner.
fn traffic(snap: &Snapshot, peer: &LanPeer, out: &mut Vec<String>) {
    for net in &snap.nets {
        let members = snap.members(&net.name);
        for (i, sb) in members.iter().enumerate() {
            let Ok(ns) = Netns::open(&sb.key) else {
                continue; // reported by sandbox_kernel
            };
            let (target, what) = if members.len() > 1 {
                let other = members[(i + 1) % members.len()];
                let ip = other.eps.get(&net.name).map(|e| e.ip.clone());
                let ip = ip.unwrap_or_default();
                if !PREDEFINED.contains(&net.name.as_str()) {
                    resolves(&ns, sb, other, &net.name, out);
                }
                (ip, format!("sandbox {}", other.name))
            } else {
                let gw = sb.eps.get(&net.name).map(|e| e.gateway.clone());
                (gw.unwrap_or_default(), "its gateway".to_owned())
            };
            if target.is_empty() {
                continue;
            }
            if !ping_in(&ns, &target) {
                out.push(format!(
                    "sandbox {} cannot ping {what} ({target}) on network {}",
                    sb.name, net.name
                ));
            }
        }
    }
    for sb in &snap.sbs {
        for p in &sb.ports {
            if p.proto != "tcp" {
                continue;
            }
            let addr = SocketAddr::new(HOST_LAN.parse().expect("a literal"), p.host_port);
            let got = tcp_fetch(peer.netns(), addr, Duration::from_secs(2));
            match got {
                Ok(s) if s.starts_with(&banner_of(sb)) => {}
                other => out.push(format!(
                    "published port {} of sandbox {} does not answer from the LAN: {other:?}",
                    p.host_port, sb.name
                )),
            }
        }
    }
}

/// The embedded DNS server of `sb` answers `other`'s name (as listed now) with its address on a
/// network they share (which one, when they share several, is the resolver's choice).
fn resolves(ns: &Netns, sb: &Sb, other: &Sb, net: &str, out: &mut Vec<String>) {
    let shared: Vec<&str> = other
        .eps
        .values()
        .filter(|e| sb.eps.contains_key(&e.network))
        .map(|e| e.ip.as_str())
        .collect();
    let got = ns
        .command("timeout")
        .args(["3", "busybox", "nslookup", &other.name, "127.0.0.11"])
        .output();
    let text = got
        .as_ref()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let answered = text
        .lines()
        .skip_while(|l| !l.contains(&other.name))
        .any(|l| l.split_whitespace().any(|w| shared.contains(&w)));
    if !answered {
        out.push(format!(
            "sandbox {}: the embedded DNS does not resolve {} (on network {net}) to one of {shared:?}: {:?}",
            sb.name,
            other.name,
            text.trim()
        ));
    }
}

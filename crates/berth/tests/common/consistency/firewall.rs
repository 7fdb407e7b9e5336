//! The firewall's DNATs of published ports as the kernel holds them, read with the firewall's own
//! tools in the host namespace: `iptables-save` / `ip6tables-save` for the iptables backend, the
//! elements of berth's DNAT maps (`nft list map inet berth dnat4...`) for the nftables one. Ranges
//! are expanded to one entry per host port.

use std::net::IpAddr;

use berth::FirewallBackend;
use berth_testhost::berth_netlink::Netns;

/// One DNAT the kernel does, per host port: (proto, host address or None for all, host port) to
/// (address, port).
pub(super) type DnatKey = (String, Option<IpAddr>, u16);
/// One DNAT: its key and where it leads (address, port).
pub(super) type Dnat = (DnatKey, (IpAddr, u16));

pub(super) fn run_in(host: &Netns, program: &str, args: &[&str]) -> Result<String, String> {
    let o = host
        .command(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{program} {}: {}: {}",
            args.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Expands a DNAT of a host port range to one entry per host port.
fn expand(
    proto: &str,
    host_ip: Option<IpAddr>,
    host: (u16, u16),
    to_ip: IpAddr,
    to: (u16, u16),
    base: Option<u16>,
) -> Result<Vec<Dnat>, String> {
    let mut v = Vec::new();
    for h in host.0..=host.1 {
        let c = if let Some(b) = base {
            to.0 + (h - b)
        } else if to.0 == to.1 {
            to.0
        } else if to == host {
            h
        } else {
            return Err(format!(
                "DNAT {}-{} to ports {}-{} has no fixed mapping",
                host.0, host.1, to.0, to.1
            ));
        };
        v.push(((proto.to_owned(), host_ip, h), (to_ip, c)));
    }
    Ok(v)
}

fn port_range(s: &str, sep: char) -> Option<(u16, u16)> {
    match s.split_once(sep) {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => {
            let p = s.parse().ok()?;
            Some((p, p))
        }
    }
}

/// The DNAT rules of `iptables-save -t nat` and `ip6tables-save -t nat`.
fn iptables_dnat(host: &Netns) -> Result<Vec<Dnat>, String> {
    let mut out = Vec::new();
    for tool in ["iptables-save", "ip6tables-save"] {
        let save = run_in(host, tool, &["-t", "nat"])?;
        for line in save.lines().filter(|l| l.contains(" -j DNAT ")) {
            out.extend(parse_iptables_dnat(line)?);
        }
    }
    Ok(out)
}

/// `-A BERTH-DNAT-TCP-31 -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination
/// 172.18.0.2:80` (IPv6: `[fd00::2]:80`; ranges `9000:9009` to `ip:9000-9009`, shifted ranges
/// with `/BASE`).
fn parse_iptables_dnat(line: &str) -> Result<Vec<Dnat>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |flag: &str| {
        words
            .iter()
            .position(|w| *w == flag)
            .and_then(|i| words.get(i + 1))
            .copied()
    };
    let bad = || format!("unexpected DNAT rule: {line}");
    let proto = after("-p").ok_or_else(bad)?;
    let host_ip = match after("-d") {
        Some(d) => Some(
            d.split('/')
                .next()
                .and_then(|a| a.parse::<IpAddr>().ok())
                .ok_or_else(bad)?,
        ),
        None => None,
    };
    let host = port_range(after("--dport").ok_or_else(bad)?, ':').ok_or_else(bad)?;
    let to = after("--to-destination").ok_or_else(bad)?;
    let (to, base) = match to.split_once('/') {
        Some((t, b)) => (t, Some(b.parse::<u16>().map_err(|_| bad())?)),
        None => (to, None),
    };
    let (addr, ports) = match to.strip_prefix('[') {
        Some(rest) => {
            let (a, p) = rest.split_once("]:").ok_or_else(bad)?;
            (a, p)
        }
        None => to.rsplit_once(':').ok_or_else(bad)?,
    };
    let to_ip: IpAddr = addr.parse().map_err(|_| bad())?;
    let to_ports = port_range(ports, '-').ok_or_else(bad)?;
    expand(proto, host_ip, host, to_ip, to_ports, base)
}

/// The elements of berth's DNAT maps in `inet berth` (`dnat4`, `dnat4_all`, their range forms,
/// and the IPv6 ones).
fn nft_dnat(host: &Netns) -> Result<Vec<Dnat>, String> {
    let mut out = Vec::new();
    for fam in ["4", "6"] {
        for suffix in [
            "",
            "_all",
            "_range",
            "_range_keep",
            "_all_range",
            "_all_range_keep",
        ] {
            let map = format!("dnat{fam}{suffix}");
            let text = run_in(host, "nft", &["list", "map", "inet", "berth", &map])?;
            for elem in nft_elements(&text) {
                out.extend(parse_nft_elem(&map, &elem)?);
            }
        }
    }
    Ok(out)
}

/// The elements of one `nft list map` output (`elements = { a : b, c : d }`, over lines).
fn nft_elements(text: &str) -> Vec<String> {
    let Some(start) = text.find("elements = {") else {
        return Vec::new();
    };
    let rest = &text[start + "elements = {".len()..];
    let body = rest.split('}').next().unwrap_or("");
    body.split(',')
        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|e| !e.is_empty())
        .collect()
}

/// `192.0.2.1 . tcp . 8080 : 172.18.0.2 . 80` (dnat4), `tcp . 8080 : 172.18.0.2 . 80`
/// (dnat4_all), `tcp . 9000-9009 : 172.18.0.2 . 80` (`_range`), `tcp . 9000-9009 : 172.18.0.2`
/// (`_range_keep`).
fn parse_nft_elem(map: &str, elem: &str) -> Result<Vec<Dnat>, String> {
    let bad = || format!("unexpected element of map {map}: {elem}");
    let (key, value) = elem.split_once(" : ").ok_or_else(bad)?;
    let key: Vec<&str> = key.split(" . ").collect();
    let value: Vec<&str> = value.split(" . ").collect();
    let all = map.contains("_all");
    let (host_ip, proto, ports) = match (all, key.as_slice()) {
        (true, [proto, ports]) => (None, *proto, *ports),
        (false, [ip, proto, ports]) => (
            Some(ip.parse::<IpAddr>().map_err(|_| bad())?),
            *proto,
            *ports,
        ),
        _ => return Err(bad()),
    };
    let host = port_range(ports, '-').ok_or_else(bad)?;
    let to_ip: IpAddr = value.first().and_then(|a| a.parse().ok()).ok_or_else(bad)?;
    let to = match value.get(1) {
        Some(p) => port_range(p, '-').ok_or_else(bad)?,
        None => host,
    };
    expand(proto, host_ip, host, to_ip, to, None)
}

/// Every DNAT of a published port in the host namespace, for `backend`.
pub(super) fn dnat_entries(host: &Netns, backend: FirewallBackend) -> Result<Vec<Dnat>, String> {
    match backend {
        FirewallBackend::Iptables => iptables_dnat(host),
        FirewallBackend::Nftables => nft_dnat(host),
    }
}

//! Pure planning: what to ask berth's controller for (the network to create, the options of the
//! attachment's connect) and the result to answer, from the configuration, the invocation and
//! what the controller reports. No I/O.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use berth::berth_driver::{PortRange, Protocol};
use berth::{
    EndpointOptions, IpamPoolConfig, MacAddr, NetworkCreate, NetworkInspect, PortSpec,
    SandboxNetworkInspect,
};
use ipnet::{IpNet, Ipv4Net};

use crate::config::{IpRange, NetConf, PortMapping};
use crate::env::{CniArgs, clip};
use crate::error::{CniError, ErrorCode};
use crate::result::{CniResult, Dns, Interface, IpConfig, Route};

/// The name of the attachment's interface in the container: `CNI_IFNAME` as given (any name
/// the spec allows, checked when the invocation was read), except `lo`, which every namespace
/// has (code 4). Whether another interface of the container already has the name is the
/// kernel's to say, when the interface is put there.
pub fn container_ifname(ifname: &str) -> Result<String, CniError> {
    if ifname == "lo" {
        return Err(CniError::new(
            ErrorCode::InvalidEnvironment,
            "CNI_IFNAME \"lo\" is the container's loopback interface",
            "name another interface (eth0, net1, ...)",
        ));
    }
    Ok(ifname.to_owned())
}

/// The label of the berth networks berth-cni creates: the name of the CNI network that
/// created it, the only one whose attachments join it (so that GC of one CNI network never takes
/// another's attachments).
pub const CNI_NETWORK_LABEL: &str = "berth-cni.network";

/// The network to create on first use (`docker network create` with the configuration's
/// settings). Without `network.subnet`, the first IPv4 range of `runtimeConfig.ipRanges` gives
/// the subnet and gateway; without either, berth's default pools do.
pub fn network_create(conf: &NetConf) -> NetworkCreate {
    let net = &conf.network;
    let mut req = NetworkCreate::new(net.name.clone());
    req.labels
        .insert(CNI_NETWORK_LABEL.to_owned(), conf.name.clone());
    for (k, v) in &net.options {
        req = req.option(k.clone(), v.clone());
    }
    if net.internal {
        req = req.internal();
    }
    let from_ranges = || {
        conf.runtime
            .ip_ranges
            .iter()
            .flatten()
            .find_map(|r| match (r.subnet, r.gateway) {
                (IpNet::V4(s), Some(IpAddr::V4(g))) => Some((s, Some(g))),
                (IpNet::V4(s), _) => Some((s, None)),
                _ => None,
            })
    };
    let pool = match net.subnet {
        Some(s) => Some((s, net.gateway)),
        None => from_ranges(),
    };
    if let Some((subnet, gateway)) = pool {
        req = req.subnet(IpamPoolConfig {
            subnet: Some(IpNet::V4(subnet)),
            ip_range: net.ip_range.map(IpNet::V4),
            gateway: gateway.map(IpAddr::V4),
            ..IpamPoolConfig::default()
        });
    }
    req
}

/// How an existing network differs from the configuration (empty: it fits).
pub fn network_mismatch(conf: &NetConf, found: &NetworkInspect) -> Vec<String> {
    let net = &conf.network;
    let mut diffs = Vec::new();
    match found.labels.get(CNI_NETWORK_LABEL) {
        Some(owner) if *owner == conf.name => {}
        Some(owner) => diffs.push(format!(
            "it belongs to CNI network {owner:?}, not {:?}",
            conf.name
        )),
        None => diffs.push("berth-cni did not create it".to_owned()),
    }
    if found.driver != "bridge" {
        diffs.push(format!("its driver is {}, not bridge", found.driver));
    }
    if found.internal != net.internal {
        diffs.push(format!(
            "internal is {}, the configuration says {}",
            found.internal, net.internal
        ));
    }
    if let Some(want) = net.subnet {
        let subnets: Vec<&str> = found
            .ipam
            .config
            .iter()
            .map(|c| c.subnet.as_str())
            .collect();
        if !subnets.contains(&want.to_string().as_str()) {
            diffs.push(format!(
                "its subnets are {subnets:?}, the configuration says {want}"
            ));
        }
    }
    for (k, v) in &net.options {
        match found.options.get(k) {
            Some(have) if have == v => {}
            have => diffs.push(format!(
                "option {k} is {}, the configuration says {v}",
                have.map_or("unset".into(), |h| format!("{h:?}"))
            )),
        }
    }
    diffs
}

/// What the planner needs to know of the network the attachment joins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkFacts {
    /// Its IPv4 subnet.
    pub subnet: Option<Ipv4Net>,
    /// The addresses taken (endpoints and the gateway).
    pub used: BTreeSet<Ipv4Addr>,
}

impl NetworkFacts {
    /// The facts of an inspected network.
    pub fn of(net: &NetworkInspect) -> NetworkFacts {
        let mut facts = NetworkFacts::default();
        for c in &net.ipam.config {
            if let Ok(s) = c.subnet.parse::<Ipv4Net>() {
                facts.subnet.get_or_insert(s);
                // The gateway berth's IPAM takes when none was given: the first address.
                if let Some(first) = s.hosts().next() {
                    facts.used.insert(first);
                }
            }
            if let Some(Ok(g)) = c.gateway.as_deref().map(str::parse::<Ipv4Addr>) {
                facts.used.insert(g);
            }
        }
        for c in net.containers.values() {
            let addr = c.ipv4_address.split('/').next().unwrap_or_default();
            if let Ok(a) = addr.parse() {
                facts.used.insert(a);
            }
        }
        facts
    }
}

/// The options of the attachment's connect: the interface's name in the container
/// (`CNI_IFNAME`, see [`container_ifname`]), published ports (when `publishPorts`), the static
/// address (`runtimeConfig.ips`, `CNI_ARGS` `IP=`, or the first free one of the matching
/// `runtimeConfig.ipRanges` range) and the MAC address (`runtimeConfig.mac`, `CNI_ARGS`
/// `MAC=`).
pub fn endpoint_options(
    conf: &NetConf,
    ifname: &str,
    args: &CniArgs,
    facts: &NetworkFacts,
) -> Result<EndpointOptions, CniError> {
    let mut opts = EndpointOptions {
        ifname: Some(container_ifname(ifname)?),
        ..EndpointOptions::default()
    };
    if conf.publish_ports {
        opts.ports = conf
            .runtime
            .port_mappings
            .iter()
            .enumerate()
            .map(|(i, m)| port_spec(i, m))
            .collect::<Result<_, _>>()?;
    }
    opts.mac = match (&conf.runtime.mac, args.mac) {
        (Some(m), _) => Some(m.parse::<MacAddr>().map_err(|_| {
            CniError::config(format!(
                "runtimeConfig.mac: {:?} is not a MAC address",
                clip(m)
            ))
        })?),
        (None, m) => m,
    };
    let mut statics: Vec<IpAddr> = Vec::new();
    for (i, s) in conf.runtime.ips.iter().enumerate() {
        let addr = s.split_once('/').map_or(s.as_str(), |(a, _)| a);
        statics.push(addr.parse().map_err(|_| {
            CniError::config(format!(
                "runtimeConfig.ips[{i}]: {:?} is not an IP address",
                clip(s)
            ))
        })?);
    }
    statics.extend(args.ips.iter().copied());
    for addr in statics {
        match addr {
            IpAddr::V4(a) => {
                if opts.ipv4.is_some_and(|have| have != a) {
                    return Err(CniError::config(format!(
                        "two IPv4 addresses asked for ({} and {a}): an attachment has one",
                        opts.ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED)
                    )));
                }
                opts.ipv4 = Some(a);
            }
            IpAddr::V6(a) => {
                return Err(CniError::config(format!(
                    "the IPv6 address {a} was asked for: berth-cni's networks are IPv4 only"
                )));
            }
        }
    }
    if let Some(range) = matching_range(conf, facts)? {
        match opts.ipv4 {
            Some(a) if !in_range(&range, a) => {
                return Err(CniError::config(format!(
                    "the static address {a} is outside runtimeConfig.ipRanges' range {}",
                    describe(&range)
                )));
            }
            Some(_) => {}
            None if range.range_start.is_some() || range.range_end.is_some() => {
                opts.ipv4 = Some(first_free(&range, facts).ok_or_else(|| {
                    CniError::new(
                        ErrorCode::Addressing,
                        format!("no free address in the range {}", describe(&range)),
                        "every address of runtimeConfig.ipRanges' range is taken",
                    )
                })?);
            }
            None => {}
        }
    }
    Ok(opts)
}

fn port_spec(i: usize, m: &PortMapping) -> Result<PortSpec, CniError> {
    let at = |what: &str| format!("runtimeConfig.portMappings[{i}].{what}");
    let container_ports = PortRange::single(m.container_port)
        .map_err(|e| CniError::config(format!("{}: {e}", at("containerPort"))))?;
    let host_ports = match m.host_port {
        0 => None,
        p => Some(
            PortRange::single(p)
                .map_err(|e| CniError::config(format!("{}: {e}", at("hostPort"))))?,
        ),
    };
    let proto = match m.protocol.as_deref() {
        None | Some("") => Protocol::Tcp,
        Some(p) => p
            .parse()
            .map_err(|e| CniError::config(format!("{}: {e}", at("protocol"))))?,
    };
    let host_ip = match m.host_ip.as_deref() {
        None | Some("") => None,
        Some(a) => Some(a.parse::<IpAddr>().map_err(|_| {
            CniError::config(format!(
                "{}: {:?} is not an IP address",
                at("hostIP"),
                clip(a)
            ))
        })?),
    };
    Ok(PortSpec {
        host_ip,
        host_ports,
        container_ports,
        proto,
    })
}

/// The range of `runtimeConfig.ipRanges` that lies in the network's subnet (the first range of
/// the first set that has an IPv4 range); None without IPv4 ranges.
fn matching_range(conf: &NetConf, facts: &NetworkFacts) -> Result<Option<IpRange>, CniError> {
    let v4_sets: Vec<&Vec<IpRange>> = conf
        .runtime
        .ip_ranges
        .iter()
        .filter(|set| set.iter().any(|r| r.subnet.addr().is_ipv4()))
        .collect();
    let Some(set) = v4_sets.first() else {
        return Ok(None);
    };
    let Some(subnet) = facts.subnet else {
        return Err(CniError::config(
            "runtimeConfig.ipRanges: the network has no IPv4 subnet to take a range of",
        ));
    };
    let found = set.iter().find(|r| r.subnet == IpNet::V4(subnet)).cloned();
    match found {
        Some(r) => Ok(Some(r)),
        None => Err(CniError::config(format!(
            "runtimeConfig.ipRanges: no range is in the network's subnet {subnet} (ranges: {})",
            set.iter().map(describe).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn bounds(r: &IpRange) -> (u32, u32) {
    let IpNet::V4(s) = r.subnet else {
        return (1, 0);
    };
    let v4 = |a: Option<IpAddr>| match a {
        Some(IpAddr::V4(a)) => Some(u32::from(a)),
        _ => None,
    };
    let net = u32::from(s.network());
    let last = u32::from(s.broadcast());
    // The network and broadcast addresses of a subnet with room for hosts are never handed out.
    let (lo, hi) = if s.prefix_len() < 31 {
        (net.saturating_add(1), last.saturating_sub(1))
    } else {
        (net, last)
    };
    (
        v4(r.range_start).map_or(lo, |a| a.max(lo)),
        v4(r.range_end).map_or(hi, |a| a.min(hi)),
    )
}

fn in_range(r: &IpRange, a: Ipv4Addr) -> bool {
    let (lo, hi) = bounds(r);
    (lo..=hi).contains(&u32::from(a))
}

fn first_free(r: &IpRange, facts: &NetworkFacts) -> Option<Ipv4Addr> {
    let (lo, hi) = bounds(r);
    (lo..=hi)
        .map(Ipv4Addr::from)
        .find(|a| !facts.used.contains(a) && r.gateway != Some(IpAddr::V4(*a)))
}

fn describe(r: &IpRange) -> String {
    let mut s = r.subnet.to_string();
    if let Some(a) = r.range_start {
        s.push_str(&format!(" from {a}"));
    }
    if let Some(a) = r.range_end {
        s.push_str(&format!(" to {a}"));
    }
    s
}

/// The DNS settings the result carries: `runtimeConfig.dns`, else the configuration's `dns`.
pub fn dns_of(conf: &NetConf) -> Option<Dns> {
    let dns = match &conf.runtime.dns {
        Some(rt) => Dns {
            nameservers: rt.servers.clone(),
            domain: None,
            search: rt.searches.clone(),
            options: rt.options.clone(),
        },
        None => conf.dns.clone()?,
    };
    (!dns.is_empty()).then_some(dns)
}

/// The result of an ADD: the container's interface, its address with the gateway, the default
/// route when `default_route` (berth points the container's default route through this
/// interface: none on an internal network, nor when another of the container's networks comes
/// first) and the DNS settings; after `prevResult` in a chain.
pub fn add_result(
    conf: &NetConf,
    netns: &str,
    ep: &SandboxNetworkInspect,
    default_route: bool,
) -> Result<CniResult, CniError> {
    let mac = (!ep.mac_address.is_empty()).then(|| ep.mac_address.clone());
    let mut result = CniResult {
        interfaces: vec![Interface::container(&ep.interface, mac, netns)],
        dns: dns_of(conf),
        ..CniResult::default()
    };
    let gateway = ep.gateway.parse::<Ipv4Addr>().ok();
    if !ep.ip_address.is_empty() {
        let addr: Ipv4Addr = ep.ip_address.parse().map_err(|_| {
            CniError::new(
                ErrorCode::Library,
                "berth reported an address that is not one",
                format!("{:?}", clip(&ep.ip_address)),
            )
        })?;
        let net = Ipv4Net::new(addr, ep.ip_prefix_len).map_err(|e| {
            CniError::new(
                ErrorCode::Library,
                "berth reported a bad prefix length",
                e.to_string(),
            )
        })?;
        result
            .ips
            .push(IpConfig::new(IpNet::V4(net), gateway.map(IpAddr::V4), 0));
        if let (Some(gw), true) = (gateway, default_route) {
            result
                .routes
                .push(Route::via(IpNet::V4(Ipv4Net::default()), IpAddr::V4(gw)));
        }
    }
    Ok(match &conf.prev_result {
        Some(prev) => result.after(prev),
        None => result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(extra: &str) -> NetConf {
        let json = format!(r#"{{"cniVersion":"1.1.0","name":"n","type":"berth-cni"{extra}}}"#);
        NetConf::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn facts(subnet: &str, used: &[&str]) -> NetworkFacts {
        NetworkFacts {
            subnet: subnet.parse().ok(),
            used: used.iter().filter_map(|a| a.parse().ok()).collect(),
        }
    }

    #[test]
    fn the_interface_is_named_as_the_runtime_asks() {
        for name in ["eth0", "net1", "eth7", "cni-x_y.z"] {
            assert_eq!(container_ifname(name).ok().as_deref(), Some(name));
        }
        let e = container_ifname("lo").err().map(|e| e.code);
        assert_eq!(e, Some(ErrorCode::InvalidEnvironment));
    }

    #[test]
    fn ports_mac_and_static_address() {
        let c = conf(
            r#","runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"udp","hostIP":"127.0.0.1"},{"hostPort":0,"containerPort":22}],
                "ips":["10.1.0.7/24"],"mac":"02:00:00:00:00:07"}"#,
        );
        let o = endpoint_options(&c, "eth0", &CniArgs::default(), &facts("10.1.0.0/24", &[]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.ports.len(), 2);
        assert_eq!(o.ports[0].proto, Protocol::Udp);
        assert_eq!(o.ports[0].host_ports.map(|r| r.start()), Some(8080));
        assert_eq!(o.ports[1].host_ports, None);
        assert_eq!(o.ipv4, "10.1.0.7".parse().ok());
        assert!(o.mac.is_some());
        assert_eq!(o.ifname.as_deref(), Some("eth0"));
        let c = conf(
            r#","publishPorts":false,"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]}"#,
        );
        let o = endpoint_options(&c, "eth0", &CniArgs::default(), &NetworkFacts::default())
            .unwrap_or_default();
        assert!(o.ports.is_empty());
    }

    #[test]
    fn bad_runtime_values_name_their_key() {
        let c = conf(r#","runtimeConfig":{"portMappings":[{"hostPort":1,"containerPort":0}]}"#);
        let e = endpoint_options(&c, "eth0", &CniArgs::default(), &NetworkFacts::default())
            .err()
            .map(|e| e.msg)
            .unwrap_or_default();
        assert!(e.contains("portMappings[0].containerPort"), "{e}");
        let c = conf(r#","runtimeConfig":{"ips":["10.0.0.1","10.0.0.2"]}"#);
        assert!(
            endpoint_options(&c, "eth0", &CniArgs::default(), &NetworkFacts::default()).is_err()
        );
        let c = conf(r#","runtimeConfig":{"ips":["fd00::1"]}"#);
        assert!(
            endpoint_options(&c, "eth0", &CniArgs::default(), &NetworkFacts::default()).is_err()
        );
    }

    #[test]
    fn ip_ranges_choose_the_first_free_address_of_the_matching_range() {
        let c = conf(
            r#","runtimeConfig":{"ipRanges":[[{"subnet":"192.168.9.0/24"},{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.10","rangeEnd":"10.1.0.12"}]]}"#,
        );
        let f = facts("10.1.0.0/24", &["10.1.0.1", "10.1.0.10"]);
        let o =
            endpoint_options(&c, "eth0", &CniArgs::default(), &f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.ipv4, "10.1.0.11".parse().ok());
        let full = facts("10.1.0.0/24", &["10.1.0.10", "10.1.0.11", "10.1.0.12"]);
        let e = endpoint_options(&c, "eth0", &CniArgs::default(), &full)
            .err()
            .map(|e| e.code);
        assert_eq!(e, Some(ErrorCode::Addressing));
        let other = facts("10.2.0.0/24", &[]);
        let e = endpoint_options(&c, "eth0", &CniArgs::default(), &other)
            .err()
            .map(|e| e.code);
        assert_eq!(e, Some(ErrorCode::InvalidConfig));
        let c = conf(
            r#","runtimeConfig":{"ips":["10.1.0.50"],"ipRanges":[[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.10","rangeEnd":"10.1.0.12"}]]}"#,
        );
        assert!(endpoint_options(&c, "eth0", &CniArgs::default(), &f).is_err());
    }

    #[test]
    fn the_network_comes_from_the_configuration_or_the_ranges() {
        let c = conf(
            r#","network":{"subnet":"10.5.0.0/16","gateway":"10.5.0.254","options":{"com.docker.network.bridge.name":"cni0"}}"#,
        );
        let req = network_create(&c);
        assert_eq!(req.name, "n");
        assert_eq!(req.ipam[0].subnet, "10.5.0.0/16".parse().ok());
        assert_eq!(req.ipam[0].gateway, "10.5.0.254".parse().ok());
        assert_eq!(req.options["com.docker.network.bridge.name"], "cni0");
        assert_eq!(req.labels[CNI_NETWORK_LABEL], "n");
        let c = conf(
            r#","runtimeConfig":{"ipRanges":[[{"subnet":"10.6.0.0/24","gateway":"10.6.0.1"}]]}"#,
        );
        assert_eq!(
            network_create(&c).ipam[0].subnet,
            "10.6.0.0/24".parse().ok()
        );
        assert!(network_create(&conf("")).ipam.is_empty());
    }

    #[test]
    fn a_network_fits_only_its_own_cni_network() {
        let inspect = |labels: serde_json::Value| -> NetworkInspect {
            serde_json::from_value(serde_json::json!({
                "Name": "n", "Id": "0", "Created": "", "Scope": "local", "Driver": "bridge",
                "EnableIPv6": false, "Internal": false, "Attachable": false, "Ingress": false,
                "ConfigFrom": {"Network": ""}, "ConfigOnly": false, "Containers": {},
                "Labels": labels, "Options": {},
                "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": "10.1.0.0/24"}]}
            }))
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let c = conf(r#","network":{"subnet":"10.1.0.0/24"}"#);
        assert!(
            network_mismatch(&c, &inspect(serde_json::json!({CNI_NETWORK_LABEL: "n"}))).is_empty()
        );
        let d = network_mismatch(
            &c,
            &inspect(serde_json::json!({CNI_NETWORK_LABEL: "other"})),
        );
        assert!(d.len() == 1 && d[0].contains("\"other\""), "{d:?}");
        let d = network_mismatch(&c, &inspect(serde_json::json!({})));
        assert!(d.len() == 1 && d[0].contains("did not create"), "{d:?}");
        let c = conf(r#","network":{"subnet":"10.2.0.0/24"}"#);
        let d = network_mismatch(&c, &inspect(serde_json::json!({CNI_NETWORK_LABEL: "n"})));
        assert!(d.len() == 1 && d[0].contains("10.2.0.0/24"), "{d:?}");
    }

    #[test]
    fn the_result_lists_the_default_route_only_through_this_interface() {
        let ep: SandboxNetworkInspect = serde_json::from_value(serde_json::json!({
            "NetworkID": "n", "EndpointID": "e", "IPAddress": "10.1.0.2", "IPPrefixLen": 24,
            "Gateway": "10.1.0.1", "IPv6Address": "", "IPv6PrefixLen": 0, "IPv6Gateway": "",
            "MacAddress": "02:42:0a:01:00:02", "Aliases": [], "Interface": "net1"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let c = conf("");
        let r = add_result(&c, "/run/netns/c", &ep, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.interfaces[0].name, "net1");
        assert_eq!(r.ips[0].gateway, "10.1.0.1".parse().ok());
        assert_eq!(r.routes.len(), 1);
        assert_eq!(r.routes[0].dst, IpNet::V4(Ipv4Net::default()));
        let r = add_result(&c, "/run/netns/c", &ep, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.ips[0].gateway, "10.1.0.1".parse().ok());
        assert!(r.routes.is_empty());
    }

    #[test]
    fn dns_prefers_the_runtimes() {
        let c = conf(
            r#","dns":{"nameservers":["1.1.1.1"]},"runtimeConfig":{"dns":{"servers":["9.9.9.9"],"searches":["example.org"]}}"#,
        );
        let d = dns_of(&c).unwrap_or_default();
        assert_eq!(d.nameservers, vec!["9.9.9.9".to_owned()]);
        assert_eq!(d.search, vec!["example.org".to_owned()]);
        let d = dns_of(&conf(r#","dns":{"nameservers":["1.1.1.1"]}"#)).unwrap_or_default();
        assert_eq!(d.nameservers, vec!["1.1.1.1".to_owned()]);
        assert_eq!(dns_of(&conf("")), None);
    }
}

//! berth's port publishing (`-p`): Docker's port-spec syntax, host port allocation, host sockets
//! held for every published port, and the NAT rules (through berth-firewall) that carry traffic.
//!
//! No process per port: a mapping is a few bound sockets (so no other program can take the ports
//! while they are published) plus one firewall transaction; a range with equal host and container
//! lengths is one rule. External clients keep their source address (no proxy in the path), the host
//! reaches published ports on its own addresses and on 127.0.0.1 (OUTPUT DNAT; the bridge driver
//! sets `route_localnet` on its bridges), and a container reaches its own published port through
//! the host (hairpin).
//!
//! Publications NAT cannot carry (a host address of a family the container has no address of)
//! can be relayed by an optional in-process userland proxy ([`PortMapper::with_proxy_limits`]),
//! which keeps to [`ProxyLimits`]: caps on TCP connections and UDP flows per published port,
//! idle timeouts, and a back-off when accepting fails for lack of descriptors. A restored
//! mapping ([`PortMapper::restore`]) starts the proxy again for the ports it served.
//!
//! ```no_run
//! use std::sync::Arc;
//! use berth_portmap::{MapRequest, PortMapper, PortSpec};
//! use berth_netlink::Netns;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let host = Netns::current()?;
//! let mapper = PortMapper::new(&host, None)?;
//! let spec: PortSpec = "8080:80/tcp".parse()?;
//! let bindings = mapper.map("endpoint-1", &MapRequest {
//!     specs: &[spec],
//!     container_v4: Some("172.17.0.2".parse()?),
//!     container_v6: None,
//!     bridge: "docker0",
//!     default_host_ip: "0.0.0.0".parse()?,
//!     ipv6: true,
//! })?;
//! assert_eq!(bindings[0].host_ports.start(), 8080);
//! mapper.unmap("endpoint-1")?;
//! # Ok(()) }
//! ```

mod alloc;
mod error;
mod proxy;
mod spec;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use berth_firewall::{Firewall, PortRule};
use berth_netlink::{HeldPort, Netns, hold_ports, sysctl_get};
use proxy::{Proxy, ProxyTask};

pub use proxy::ProxyLimits;

pub use alloc::HostPortAllocator;
pub use berth_firewall::{PortRange, Protocol};
pub use berth_types::PortBinding;
pub use error::{Error, Result};
pub use spec::{ExposedPort, PortSpec};

/// What to publish for one endpoint.
#[derive(Debug, Clone, Copy)]
pub struct MapRequest<'a> {
    /// The `-p` specs.
    pub specs: &'a [PortSpec],
    /// The container's IPv4 address, if it has one.
    pub container_v4: Option<Ipv4Addr>,
    /// The container's IPv6 address, if it has one.
    pub container_v6: Option<Ipv6Addr>,
    /// The bridge the container is attached to.
    pub bridge: &'a str,
    /// The host address used when a spec names none (the network's `host_binding_ipv4`).
    pub default_host_ip: IpAddr,
    /// With no host address: publish on `::` too (with the same port), as Docker does.
    pub ipv6: bool,
}

struct Owned {
    bindings: Vec<PortBinding>,
    rules: Vec<PortRule>,
    _held: Vec<HeldPort>,
    _proxied: Vec<ProxyTask>,
}

/// What became of one held host socket: held only (NAT carries its traffic, or nothing can), or
/// served by the userland proxy.
enum Served {
    Held(HeldPort),
    Proxied(ProxyTask),
}

struct State {
    alloc: HostPortAllocator,
    owners: HashMap<String, Owned>,
}

/// Publishes ports in one host namespace. `Send + Sync`.
pub struct PortMapper {
    netns: Netns,
    firewall: Option<Arc<Firewall>>,
    proxy: Option<Proxy>,
    state: Mutex<State>,
}

impl std::fmt::Debug for PortMapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortMapper").finish_non_exhaustive()
    }
}

/// The addresses one binding holds: `0.0.0.0` alone, `0.0.0.0` and `::`, or one address.
fn binding_ips(spec_ip: Option<IpAddr>, default_ip: IpAddr, ipv6: bool) -> Vec<IpAddr> {
    match spec_ip {
        Some(ip) => vec![ip],
        None if default_ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED) && ipv6 => {
            vec![default_ip, IpAddr::V6(Ipv6Addr::UNSPECIFIED)]
        }
        None => vec![default_ip],
    }
}

fn parse_range_sysctl(text: &str) -> Option<PortRange> {
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    match (it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b))) => PortRange::new(a, b).ok(),
        _ => None,
    }
}

fn parse_reserved(text: &str) -> Vec<PortRange> {
    text.trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let (a, b) = s.split_once('-').unwrap_or((s, s));
            PortRange::new(a.trim().parse().ok()?, b.trim().parse().ok()?).ok()
        })
        .collect()
}

impl PortMapper {
    /// A mapper for `netns`; automatic ports come from its `ip_local_port_range`, skipping its
    /// `ip_local_reserved_ports`. Without a firewall only the host sockets are held (dockerd's
    /// `--iptables=false`).
    pub fn new(netns: &Netns, firewall: Option<Arc<Firewall>>) -> Result<PortMapper> {
        Self::with_proxy(netns, firewall, false)
    }

    /// Like [`PortMapper::new`]; with `userland_proxy`, publications NAT cannot carry (a host
    /// address of a family the container has no address of, such as `[::]:8080` for an IPv4-only
    /// container) are relayed by an in-process proxy (one runtime, one task per published port,
    /// never a process per port) instead of being refused or only reserved. The proxy keeps to
    /// [`ProxyLimits::default`].
    pub fn with_proxy(
        netns: &Netns,
        firewall: Option<Arc<Firewall>>,
        userland_proxy: bool,
    ) -> Result<PortMapper> {
        Self::with_proxy_limits(netns, firewall, userland_proxy, ProxyLimits::default())
    }

    /// Like [`PortMapper::with_proxy`], with the userland proxy keeping to `limits` (caps on TCP
    /// connections and UDP flows per published port, idle timeouts, accept back-off). `limits`
    /// are checked ([`ProxyLimits::validate`]) even when `userland_proxy` is off.
    pub fn with_proxy_limits(
        netns: &Netns,
        firewall: Option<Arc<Firewall>>,
        userland_proxy: bool,
        limits: ProxyLimits,
    ) -> Result<PortMapper> {
        limits.validate()?;
        let kernel = |context: &str| {
            let context = context.to_owned();
            move |source| Error::Kernel { context, source }
        };
        let range = sysctl_get(netns, "net.ipv4.ip_local_port_range")
            .map_err(kernel("reading ip_local_port_range"))?;
        let ephemeral = parse_range_sysctl(&range).ok_or_else(|| Error::Kernel {
            context: "reading ip_local_port_range".into(),
            source: berth_netlink::Error::InvalidArgument {
                object: "net.ipv4.ip_local_port_range".into(),
                message: format!("unexpected value {range:?}"),
            },
        })?;
        let reserved = sysctl_get(netns, "net.ipv4.ip_local_reserved_ports")
            .map(|t| parse_reserved(&t))
            .unwrap_or_default();
        raise_fd_limit();
        let proxy = if userland_proxy {
            Some(Proxy::new(netns, limits)?)
        } else {
            None
        };
        Ok(PortMapper {
            netns: netns
                .try_clone()
                .map_err(kernel("duplicating the host namespace"))?,
            firewall,
            proxy,
            state: Mutex::new(State {
                alloc: HostPortAllocator::new(ephemeral, reserved),
                owners: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The firewall rules that carry `bindings` to a container (pure; used to rebuild the
    /// firewall's desired state after a restart).
    pub fn rules_for(
        bindings: &[PortBinding],
        container_v4: Option<Ipv4Addr>,
        container_v6: Option<Ipv6Addr>,
        bridge: &str,
    ) -> Vec<PortRule> {
        let mut rules = Vec::new();
        for b in bindings {
            let target = match b.host_ip {
                IpAddr::V4(_) => container_v4.map(IpAddr::V4),
                IpAddr::V6(_) => container_v6.map(IpAddr::V6),
            };
            if let Some(container_ip) = target {
                rules.push(PortRule {
                    proto: b.proto,
                    host_ip: (!b.host_ip.is_unspecified()).then_some(b.host_ip),
                    host_ports: b.host_ports,
                    container_ip,
                    container_ports: b.container_ports,
                    bridge: bridge.to_owned(),
                });
            }
        }
        rules
    }

    /// Publishes `req.specs` for `owner` (an endpoint id): chooses host ports, holds the host
    /// sockets and programs the rules, all in one firewall transaction. All or nothing.
    pub fn map(&self, owner: &str, req: &MapRequest<'_>) -> Result<Vec<PortBinding>> {
        let mut state = self.lock();
        if state.owners.contains_key(owner) {
            self.unmap_locked(&mut state, owner)?;
        }
        let mut taken: Vec<(Protocol, Vec<IpAddr>, PortRange)> = Vec::new();
        let result = self.map_locked(&mut state, owner, req, &mut taken);
        if result.is_err() {
            for (proto, ips, range) in taken {
                state.alloc.release(proto, &ips, range);
            }
        }
        result
    }

    fn map_locked(
        &self,
        state: &mut State,
        owner: &str,
        req: &MapRequest<'_>,
        taken: &mut Vec<(Protocol, Vec<IpAddr>, PortRange)>,
    ) -> Result<Vec<PortBinding>> {
        let mut bindings = Vec::new();
        let mut held = Vec::new();
        let mut proxied = Vec::new();
        let any_target = req
            .container_v4
            .map(IpAddr::V4)
            .or(req.container_v6.map(IpAddr::V6));
        for spec in req.specs {
            let ips = binding_ips(spec.host_ip, req.default_host_ip, req.ipv6);
            let has_target = ips.iter().any(|ip| match ip {
                IpAddr::V4(_) => req.container_v4.is_some(),
                IpAddr::V6(_) => req.container_v6.is_some(),
            }) || (self.proxy.is_some() && any_target.is_some());
            if !has_target {
                return Err(Error::Unsupported {
                    spec: spec.to_string(),
                    reason: "the container has no address of the host address's family (that needs a userland proxy)".into(),
                });
            }
            // (host range, container range) pieces to publish.
            let pieces: Vec<(Option<PortRange>, PortRange)> = match spec.host_ports {
                Some(h) if h.len() == spec.container_ports.len() => {
                    vec![(Some(h), spec.container_ports)]
                }
                Some(h) => vec![(Some(h), spec.container_ports)],
                None => (spec.container_ports.start()..=spec.container_ports.end())
                    .filter_map(|p| PortRange::single(p).ok())
                    .map(|c| (None, c))
                    .collect(),
            };
            for (host, container) in pieces {
                let mut busy: BTreeSet<u16> = BTreeSet::new();
                loop {
                    let range = match host {
                        Some(h) if h.len() == container.len() => h,
                        Some(h) => {
                            let p = (h.start()..=h.end())
                                .find(|p| {
                                    !busy.contains(p) && state.alloc.is_free(spec.proto, &ips, *p)
                                })
                                .ok_or_else(|| Error::NoFreePort {
                                    what: spec.to_string(),
                                    range: h.to_string(),
                                })?;
                            PortRange::single(p)?
                        }
                        None => {
                            let p = state
                                .alloc
                                .next_free(spec.proto, &ips, &|p| busy.contains(&p))?;
                            PortRange::single(p)?
                        }
                    };
                    state.alloc.take(spec.proto, &ips, range)?;
                    taken.push((spec.proto, ips.clone(), range));
                    let sockets: Vec<(Protocol, SocketAddr)> = (range.start()..=range.end())
                        .flat_map(|port| {
                            ips.iter()
                                .map(move |ip| (spec.proto, SocketAddr::new(*ip, port)))
                        })
                        .collect();
                    match hold_ports(&self.netns, &sockets) {
                        Ok(h) => {
                            for port in h {
                                match self.serve(
                                    port,
                                    range,
                                    container,
                                    req.container_v4,
                                    req.container_v6,
                                )? {
                                    Served::Held(port) => held.push(port),
                                    Served::Proxied(task) => proxied.push(task),
                                }
                            }
                            if host.is_none() {
                                state.alloc.advance(spec.proto, range.start());
                            }
                            for ip in &ips {
                                bindings.push(PortBinding {
                                    proto: spec.proto,
                                    host_ip: *ip,
                                    host_ports: range,
                                    container_ports: container,
                                });
                            }
                            break;
                        }
                        Err(e) => {
                            // Release what this attempt took in the book-keeping.
                            if let Some((p, i, r)) = taken.pop() {
                                state.alloc.release(p, &i, r);
                            }
                            let in_use = matches!(&e, berth_netlink::Error::Kernel { errno, .. } if *errno == libc::EADDRINUSE);
                            let explicit = host.is_some_and(|h| h.len() == container.len());
                            if in_use && !explicit {
                                // Someone outside berth holds that port: try the next one.
                                busy.insert(range.start());
                                continue;
                            }
                            if in_use {
                                return Err(Error::AddressInUse {
                                    addr: alloc::addr_text(ips[0], range.start()),
                                    reason: "address already in use".into(),
                                });
                            }
                            return Err(Error::Kernel {
                                context: format!("holding host ports for {spec}"),
                                source: e,
                            });
                        }
                    }
                }
            }
        }
        let rules = Self::rules_for(&bindings, req.container_v4, req.container_v6, req.bridge);
        if let Some(fw) = &self.firewall {
            if !rules.is_empty() {
                fw.add_ports(&rules)?;
            }
        }
        state.owners.insert(
            owner.to_owned(),
            Owned {
                bindings: bindings.clone(),
                rules,
                _held: held,
                _proxied: proxied,
            },
        );
        Ok(bindings)
    }

    /// After a restart: takes the same host ports again, holds their sockets, starts the userland
    /// proxy again for the ports it served (a host address of a family the container has no
    /// address of, when this mapper has the proxy), and adds the rules the firewall does not
    /// already have. All or nothing.
    pub fn restore(
        &self,
        owner: &str,
        bindings: &[PortBinding],
        container_v4: Option<Ipv4Addr>,
        container_v6: Option<Ipv6Addr>,
        bridge: &str,
    ) -> Result<()> {
        let mut state = self.lock();
        let mut sockets = Vec::new();
        for b in bindings {
            state.alloc.take(b.proto, &[b.host_ip], b.host_ports)?;
            for port in b.host_ports.start()..=b.host_ports.end() {
                sockets.push((b.proto, SocketAddr::new(b.host_ip, port)));
            }
        }
        let release = |state: &mut State| {
            for b in bindings {
                state.alloc.release(b.proto, &[b.host_ip], b.host_ports);
            }
        };
        let ports = match hold_ports(&self.netns, &sockets) {
            Ok(h) => h,
            Err(source) => {
                release(&mut state);
                return Err(Error::Kernel {
                    context: format!("holding the published ports of {owner} again"),
                    source,
                });
            }
        };
        let mut held = Vec::new();
        let mut proxied = Vec::new();
        for port in ports {
            let addr = port.addr();
            let proto = port.protocol();
            let binding = bindings.iter().find(|b| {
                b.proto == proto
                    && b.host_ip == addr.ip()
                    && (b.host_ports.start()..=b.host_ports.end()).contains(&addr.port())
            });
            let served = match binding {
                Some(b) => self.serve(
                    port,
                    b.host_ports,
                    b.container_ports,
                    container_v4,
                    container_v6,
                ),
                None => Ok(Served::Held(port)),
            };
            match served {
                Ok(Served::Held(port)) => held.push(port),
                Ok(Served::Proxied(task)) => proxied.push(task),
                Err(e) => {
                    // Stop what was started before giving the ports back.
                    drop(proxied);
                    drop(held);
                    release(&mut state);
                    return Err(e);
                }
            }
        }
        let rules = Self::rules_for(bindings, container_v4, container_v6, bridge);
        if let Some(fw) = &self.firewall {
            let have = fw.state();
            let missing: Vec<PortRule> = rules
                .iter()
                .filter(|r| !have.has_port(r))
                .cloned()
                .collect();
            if !missing.is_empty() {
                if let Err(e) = fw.add_ports(&missing) {
                    drop(proxied);
                    drop(held);
                    release(&mut state);
                    return Err(e.into());
                }
            }
        }
        state.owners.insert(
            owner.to_owned(),
            Owned {
                bindings: bindings.to_vec(),
                rules,
                _held: held,
                _proxied: proxied,
            },
        );
        Ok(())
    }

    /// Decides what serves one held host socket of a binding `host -> container`: NAT when the
    /// container has an address of the socket's family; else the userland proxy (to the
    /// container's other address) if this mapper has one; else the socket is only held.
    fn serve(
        &self,
        port: HeldPort,
        host: PortRange,
        container: PortRange,
        container_v4: Option<Ipv4Addr>,
        container_v6: Option<Ipv6Addr>,
    ) -> Result<Served> {
        let nat = match port.addr().ip() {
            IpAddr::V4(_) => container_v4.is_some(),
            IpAddr::V6(_) => container_v6.is_some(),
        };
        let any_target = container_v4
            .map(IpAddr::V4)
            .or(container_v6.map(IpAddr::V6));
        match (&self.proxy, any_target) {
            (Some(proxy), Some(target)) if !nat => {
                let cport = container_port(host, container, port.addr().port());
                let task = self.start_proxy(proxy, port, SocketAddr::new(target, cport))?;
                Ok(Served::Proxied(task))
            }
            _ => Ok(Served::Held(port)),
        }
    }

    fn start_proxy(&self, proxy: &Proxy, port: HeldPort, target: SocketAddr) -> Result<ProxyTask> {
        let kernel = |source| Error::Kernel {
            context: format!("userland proxy for {}", port_addr(&port)),
            source,
        };
        match port.protocol() {
            Protocol::Tcp => {
                let what = port_addr(&port);
                let listener = port.into_tcp_listener().map_err(|source| Error::Kernel {
                    context: format!("userland proxy for {what}"),
                    source,
                })?;
                proxy.tcp(listener, target)
            }
            Protocol::Udp => {
                let what = port_addr(&port);
                let socket = port.into_udp_socket().map_err(|source| Error::Kernel {
                    context: format!("userland proxy for {what}"),
                    source,
                })?;
                proxy.udp(socket, target)
            }
            Protocol::Sctp => Err(kernel(berth_netlink::Error::InvalidArgument {
                object: port_addr(&port),
                message: "the userland proxy relays TCP and UDP only".into(),
            })),
        }
    }

    /// Unpublishes everything of `owner` (rules first, then the sockets and the book-keeping).
    pub fn unmap(&self, owner: &str) -> Result<()> {
        let mut state = self.lock();
        self.unmap_locked(&mut state, owner)
    }

    fn unmap_locked(&self, state: &mut State, owner: &str) -> Result<()> {
        let Some(owned) = state.owners.get(owner) else {
            return Ok(());
        };
        if let Some(fw) = &self.firewall {
            if !owned.rules.is_empty() {
                fw.remove_ports(&owned.rules)?;
            }
        }
        if let Some(owned) = state.owners.remove(owner) {
            for b in &owned.bindings {
                state.alloc.release(b.proto, &[b.host_ip], b.host_ports);
            }
        }
        Ok(())
    }

    /// The bindings published for `owner`.
    pub fn bindings(&self, owner: &str) -> Vec<PortBinding> {
        self.lock()
            .owners
            .get(owner)
            .map(|o| o.bindings.clone())
            .unwrap_or_default()
    }
}

/// The container port `host_port` of a binding `host -> container` goes to: the same offset in
/// equally long ranges, else the first container port (Docker's `8000-8010:80`).
fn container_port(host: PortRange, container: PortRange, host_port: u16) -> u16 {
    if container.len() == host.len() {
        container.start() + host_port.saturating_sub(host.start())
    } else {
        container.start()
    }
}

fn port_addr(port: &HeldPort) -> String {
    alloc::addr_text(port.addr().ip(), port.addr().port())
}

/// Publishing a 1000-port range holds 2000 sockets: lift the soft descriptor limit to the hard one.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_formats() {
        assert_eq!(
            parse_range_sysctl("32768\t60999\n"),
            PortRange::new(32768, 60999).ok()
        );
        assert_eq!(parse_range_sysctl("x"), None);
        assert_eq!(parse_reserved("\n"), vec![]);
        assert_eq!(
            parse_reserved("8080,9000-9002\n"),
            vec![
                PortRange::single(8080).unwrap(),
                PortRange::new(9000, 9002).unwrap()
            ]
        );
    }

    #[test]
    fn container_ports_follow_the_host_port() {
        let r = |a, b| PortRange::new(a, b).unwrap();
        assert_eq!(container_port(r(8000, 8002), r(80, 82), 8001), 81);
        assert_eq!(container_port(r(8000, 8002), r(80, 80), 8002), 80);
        assert_eq!(container_port(r(8080, 8080), r(80, 80), 8080), 80);
    }

    #[test]
    fn binding_addresses() {
        let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            binding_ips(None, any4, true),
            vec![any4, "::".parse().unwrap()]
        );
        assert_eq!(binding_ips(None, any4, false), vec![any4]);
        assert_eq!(binding_ips(None, lo, true), vec![lo]);
        assert_eq!(binding_ips(Some(any4), lo, true), vec![any4]);
    }

    #[test]
    fn rules_follow_the_families() {
        let b = |ip: &str| PortBinding {
            proto: Protocol::Tcp,
            host_ip: ip.parse().unwrap(),
            host_ports: PortRange::single(8080).unwrap(),
            container_ports: PortRange::single(80).unwrap(),
        };
        let rules = PortMapper::rules_for(
            &[b("0.0.0.0"), b("::"), b("127.0.0.1")],
            Some("172.17.0.2".parse().unwrap()),
            None,
            "docker0",
        );
        assert_eq!(rules.len(), 2, "no IPv6 rule for an IPv4-only container");
        assert_eq!(rules[0].host_ip, None);
        assert_eq!(rules[1].host_ip, Some("127.0.0.1".parse().unwrap()));
    }
}

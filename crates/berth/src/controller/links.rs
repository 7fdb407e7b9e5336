//! Legacy links (`--link` on the default bridge): resolving them, their icc-off firewall holes and
//! their environment variables.

use super::degraded::addresses_of;
use super::*;

impl Controller {
    /// Resolves `--link name:alias` on the default bridge into what the linking sandbox needs.
    /// On user-defined networks links are DNS aliases only (nothing to resolve).
    pub(super) fn resolve_legacy_links(
        &self,
        sb: &Sandbox,
        net: &Network,
        opts: &EndpointOptions,
    ) -> Result<Vec<LegacyLink>> {
        if opts.links.is_empty() || !PREDEFINED_NETWORKS.contains(&net.record.name.as_str()) {
            return Ok(Vec::new());
        }
        if net.record.driver != "bridge" {
            return Err(Error::InvalidRequest(format!(
                "conflicting options: links cannot be used with the {} network",
                net.record.name
            )));
        }
        let mut out: Vec<LegacyLink> = Vec::new();
        for (name, alias) in &opts.links {
            let child = self
                .lookup_sandbox(name)
                .map_err(|_| Error::InvalidRequest(format!("could not get sandbox for {name}")))?;
            if child.record.id == sb.record.id {
                return Err(Error::InvalidRequest(format!(
                    "sandbox {name} cannot be linked to itself"
                )));
            }
            if out.iter().any(|l| &l.alias == alias) {
                return Err(Error::InvalidRequest(format!(
                    "conflicting link alias {alias}: given twice"
                )));
            }
            let st = child.view();
            let Some(att) = st.endpoints.get(&net.record.id) else {
                return Err(Error::InvalidRequest(format!(
                    "cannot link to /{name}, as it does not belong to the default network"
                )));
            };
            let Some(addr) = att
                .record
                .ipv4
                .map(|a| IpAddr::V4(a.addr()))
                .or(att.record.ipv6.map(|a| IpAddr::V6(a.addr())))
            else {
                return Err(Error::InvalidRequest(format!(
                    "cannot link to /{name}: it has no address on the default network"
                )));
            };
            out.push(LegacyLink {
                name: child.name(),
                alias: alias.clone(),
                child: child.record.id.clone(),
                hostname: child
                    .record
                    .hostname
                    .clone()
                    .unwrap_or_else(|| child.record.id.short().to_owned()),
                addr,
                ports: exposed_link_ports(&att.record),
            });
        }
        Ok(out)
    }

    /// After a restart: adds the icc-off holes of the restored endpoints' legacy links (to the
    /// staged firewall), for links whose linked address is still an endpoint of the network.
    pub(super) fn restore_links(&self) -> Result<()> {
        let Some(fw) = &self.inner.firewall else {
            return Ok(());
        };
        let endpoints: Vec<EndpointRecord> = load(&*self.inner.store, "endpoint/")?
            .into_iter()
            .filter(|e: &EndpointRecord| e.state == EndpointState::Active)
            .collect();
        if endpoints.iter().all(|e| e.legacy_links.is_empty()) {
            return Ok(());
        }
        let nets: Vec<Arc<Network>> = self.read_networks().values().cloned().collect();
        for net in nets {
            let Some(bridge) = self.icc_off_bridge(&net.record)? else {
                continue;
            };
            let on_net: Vec<&EndpointRecord> = endpoints
                .iter()
                .filter(|e| e.network == net.record.id)
                .collect();
            let addrs: BTreeSet<IpAddr> = on_net.iter().flat_map(|e| addresses_of(e)).collect();
            for ep in &on_net {
                for rule in link_rules(&bridge, ep) {
                    if addrs.contains(&rule.child_ip) && !fw.links().contains(&rule) {
                        fw.add_link(rule)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The bridge of a bridge network whose icc is off (where links need firewall rules).
    pub(super) fn icc_off_bridge(&self, rec: &NetworkRecord) -> Result<Option<String>> {
        Ok(self
            .bridge_of(rec)?
            .filter(|(opts, _)| !opts.enable_icc)
            .map(|(_, bridge)| bridge))
    }

    /// The options and bridge device of a bridge network (`None` for other drivers).
    pub(super) fn bridge_of(&self, rec: &NetworkRecord) -> Result<Option<(BridgeOptions, String)>> {
        if rec.driver != "bridge" {
            return Ok(None);
        }
        let opts = BridgeOptions::parse(&rec.options, &self.inner.bridge_defaults)
            .map_err(Error::Driver)?;
        let bridge = BridgeDriver::network_rules(&spec_of(rec), &opts).bridge;
        Ok(Some((opts, bridge)))
    }

    /// Removes the link rules on `net`'s bridge in which any of `addrs` takes part (as the linking
    /// or the linked sandbox): an address that leaves must not keep a hole in the firewall for
    /// the next sandbox that gets it.
    pub(super) fn remove_link_rules(&self, net: &NetworkRecord, addrs: &[IpAddr]) -> Result<()> {
        let Some(fw) = &self.inner.firewall else {
            return Ok(());
        };
        let touching: Vec<LinkRule> = fw
            .links()
            .into_iter()
            .filter(|l| addrs.contains(&l.parent_ip) || addrs.contains(&l.child_ip))
            .collect();
        // Most disconnects involve no link: the network's options are read only when one does.
        if touching.is_empty() {
            return Ok(());
        }
        let Some(bridge) = self.icc_off_bridge(net)? else {
            return Ok(());
        };
        let stale: Vec<&LinkRule> = touching.iter().filter(|l| l.bridge == bridge).collect();
        for rule in &stale {
            fw.remove_link(rule)?;
        }
        Ok(())
    }

    /// The environment variables of a sandbox's legacy links, in Docker's format
    /// (`DB_PORT_5432_TCP=tcp://172.17.0.2:5432`, `DB_NAME=/web/db`, ...), for the engine to put
    /// into the processes it starts in the sandbox. Empty when it has no links on the default
    /// bridge.
    pub fn link_env(&self, sandbox: &str) -> Result<Vec<String>> {
        let sb = self.lookup_sandbox(sandbox)?;
        let name = sb.name();
        Ok(link_env_of(&name, &sb.view()))
    }
}

/// The environment of a sandbox's legacy links (see [`Controller::link_env`]).
pub(super) fn link_env_of(name: &str, st: &SandboxView) -> Vec<String> {
    let mut attached: Vec<&EndpointView> = st.endpoints.values().collect();
    attached.sort_by(|a, b| a.record.ifname.cmp(&b.record.ifname));
    let mut env = Vec::new();

    for a in attached {
        for l in &a.record.legacy_links {
            let ports: Vec<DnsExposedPort> = l
                .ports
                .iter()
                .map(|p| DnsExposedPort {
                    port: p.port,
                    proto: match p.proto {
                        Protocol::Tcp => PortProto::Tcp,
                        Protocol::Udp => PortProto::Udp,
                        Protocol::Sctp => PortProto::Sctp,
                    },
                })
                .collect();
            env.extend(berth_dns::link_env(&Link {
                parent: name,
                alias: &l.alias,
                child_addr: l.addr,
                ports: &ports,
                child_env: &[],
            }));
        }
    }
    env
}

/// The ports a linked sandbox exposes on an endpoint: `--expose`d ports and the container side
/// of published ones, one entry per port, sorted.
pub(super) fn exposed_link_ports(rec: &EndpointRecord) -> Vec<LinkPort> {
    let mut ports = BTreeSet::new();
    for e in &rec.exposed {
        for p in e.ports.start()..=e.ports.end() {
            ports.insert((e.proto, p));
        }
    }
    for b in &rec.ports {
        for p in b.container_ports.start()..=b.container_ports.end() {
            ports.insert((b.proto, p));
        }
    }
    ports
        .into_iter()
        .map(|(proto, port)| LinkPort { proto, port })
        .collect()
}

/// The icc-off firewall rules of an endpoint's legacy links (links to sandboxes without exposed
/// ports open nothing, as in Docker).
pub(super) fn link_rules(bridge: &str, rec: &EndpointRecord) -> Vec<LinkRule> {
    let parent = rec
        .ipv4
        .map(|a| IpAddr::V4(a.addr()))
        .or(rec.ipv6.map(|a| IpAddr::V6(a.addr())));
    let Some(parent_ip) = parent else {
        return Vec::new();
    };
    // Two aliases for one linked sandbox open its ports once.
    let mut seen = BTreeSet::new();
    rec.legacy_links
        .iter()
        .filter(|l| !l.ports.is_empty() && l.addr.is_ipv4() == parent_ip.is_ipv4())
        .filter(|l| seen.insert(l.addr))
        .map(|l| LinkRule {
            bridge: bridge.to_owned(),
            parent_ip,
            child_ip: l.addr,
            ports: l.ports.clone(),
        })
        .collect()
}

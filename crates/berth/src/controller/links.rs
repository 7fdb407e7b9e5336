//! Legacy links (`--link` on the default bridge): resolving them, their icc-off firewall holes and
//! their environment variables.

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
        if !net.driver.capabilities().creates_interfaces() {
            return Err(Error::InvalidRequest(format!(
                "conflicting options: links cannot be used with the {} network",
                net.record.name
            )));
        }
        let mut out: Vec<LegacyLink> = Vec::new();
        for (name, alias) in &opts.links {
            // (By name too: a sandbox being created is not in the registry yet.)
            if *name == sb.name() || name == sb.record.id.as_str() {
                return Err(Error::InvalidRequest(format!(
                    "sandbox {name} cannot be linked to itself"
                )));
            }
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
        let endpoints: Vec<EndpointRecord> = load(&*self.inner.store, "endpoint/")?
            .into_iter()
            .filter(|e: &EndpointRecord| e.state == EndpointState::Active)
            .collect();
        if endpoints.iter().all(|e| e.legacy_links.is_empty()) {
            return Ok(());
        }
        let nets: Vec<Arc<Network>> = self.read_networks().values().cloned().collect();
        for net in nets {
            let on_net: Vec<&EndpointRecord> = endpoints
                .iter()
                .filter(|e| e.network == net.record.id)
                .collect();
            let addrs: BTreeSet<IpAddr> = on_net.iter().flat_map(|e| e.addresses()).collect();
            let holes: Vec<LinkHole> = on_net
                .iter()
                .flat_map(|ep| holes_of(ep))
                .filter(|h| addrs.contains(&h.child))
                .collect();
            if !holes.is_empty() {
                net.driver.open_link_holes(&net.record.id, &holes)?;
            }
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
                    proto: p.proto,
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

/// The holes an endpoint's legacy links open where its network isolates endpoints (links to
/// sandboxes without exposed ports open nothing, as in Docker).
pub(super) fn holes_of(rec: &EndpointRecord) -> Vec<LinkHole> {
    let parent = rec
        .ipv4
        .map(|a| IpAddr::V4(a.addr()))
        .or(rec.ipv6.map(|a| IpAddr::V6(a.addr())));
    let Some(parent) = parent else {
        return Vec::new();
    };
    // Two aliases for one linked sandbox open its ports once.
    let mut seen = BTreeSet::new();
    rec.legacy_links
        .iter()
        .filter(|l| !l.ports.is_empty() && l.addr.is_ipv4() == parent.is_ipv4())
        .filter(|l| seen.insert(l.addr))
        .map(|l| LinkHole {
            parent,
            child: l.addr,
            ports: l.ports.iter().map(|p| (p.proto, p.port)).collect(),
        })
        .collect()
}

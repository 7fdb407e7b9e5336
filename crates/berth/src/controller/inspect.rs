//! What listings and inspect show: networks and sandboxes in Docker's inspect shapes, built
//! from each sandbox's published view (never from its locked state).

use super::*;

impl Controller {
    /// Every network, in name order.
    pub fn networks(&self) -> Vec<NetworkInspect> {
        let nets: Vec<Arc<Network>> = self.read_networks().values().cloned().collect();
        let mut out: Vec<NetworkInspect> = nets.iter().map(|n| self.inspect(n)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One network, by name, id or unique id prefix.
    pub fn inspect_network(&self, name_or_id: &str) -> Result<NetworkInspect> {
        let net = self.lookup_network(name_or_id)?;
        Ok(self.inspect(&net))
    }

    pub(super) fn inspect(&self, net: &Network) -> NetworkInspect {
        let r = &net.record;
        let predefined = PREDEFINED_NETWORKS.contains(&r.name.as_str());
        let config = r
            .pools_v4
            .iter()
            .chain(r.pools_v6.iter())
            .map(|p| IpamConfigInspect {
                subnet: p.given.unwrap_or(p.subnet).to_string(),
                ip_range: p.ip_range.map(|x| x.to_string()),
                // As Docker: the gateway IPAM chose for a subnet it chose too, or the one the
                // user gave; none when the user gave only the subnet, nor for the default
                // bridge (whose gateway is the bridge's address, not an IPAM choice).
                gateway: p
                    .gateway
                    .filter(|_| p.user_gateway || (!p.user_subnet && !predefined))
                    .map(|g| g.addr().to_string()),
                aux_addresses: p
                    .aux_addresses
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect(),
            })
            .collect();
        let members: Vec<(EndpointId, SandboxId)> = lock(&net.members)
            .endpoints
            .iter()
            .map(|(e, s)| (e.clone(), s.clone()))
            .collect();
        // The registry's lock is let go before any sandbox's view is read.
        let sandboxes: Vec<(EndpointId, Arc<Sandbox>)> = {
            let reg = self.read_sandboxes();
            members
                .into_iter()
                .filter_map(|(e, s)| reg.get(s.as_str()).map(|sb| (e, sb.clone())))
                .collect()
        };
        let mut containers = BTreeMap::new();
        // Degraded sandboxes' endpoints on this network (they keep their addresses).
        for d in self.inspect_degraded(None) {
            if let Some(n) = d.networks.values().find(|n| n.network_id == r.id.as_str()) {
                containers.insert(
                    d.id.clone(),
                    ContainerInspect {
                        name: d.name.clone(),
                        endpoint_id: n.endpoint_id.clone(),
                        mac_address: n.mac_address.clone(),
                        ipv4_address: cidr(&n.ip_address, n.ip_prefix_len),
                        ipv6_address: cidr(&n.ipv6_address, n.ipv6_prefix_len),
                    },
                );
            }
        }
        for (endpoint, sb) in sandboxes {
            let st = sb.view();
            let Some(att) = st.endpoints.get(&r.id) else {
                continue;
            };
            if att.record.id != endpoint {
                continue;
            }
            containers.insert(
                sb.record.id.to_string(),
                ContainerInspect {
                    name: sb.name(),
                    endpoint_id: att.record.id.to_string(),
                    mac_address: att.record.mac.map(|m| m.to_string()).unwrap_or_default(),
                    ipv4_address: att.record.ipv4.map(|a| a.to_string()).unwrap_or_default(),
                    ipv6_address: att.record.ipv6.map(|a| a.to_string()).unwrap_or_default(),
                },
            );
        }
        NetworkInspect {
            name: r.name.clone(),
            id: r.id.to_string(),
            created: crate::time::go_rfc3339(&r.created),
            scope: r.scope.to_string(),
            driver: r.driver.clone(),
            enable_ipv6: r.enable_ipv6,
            ipam: IpamInspect {
                driver: r.ipam_driver.clone(),
                // Docker: `null` for the predefined networks, `{}` (or the options) for others.
                options: (!predefined).then(|| r.ipam_options.clone()),
                config,
            },
            internal: r.internal,
            attachable: r.attachable,
            ingress: false,
            config_from: ConfigFrom::default(),
            config_only: false,
            containers,
            options: r.options.clone(),
            labels: r.labels.clone(),
        }
    }

    /// Every sandbox, in name order; degraded ones (see [`Controller::retry_degraded`]) too,
    /// with their reasons in `degraded`.
    pub fn sandboxes(&self) -> Vec<SandboxInspect> {
        let sbs: Vec<Arc<Sandbox>> = self.read_sandboxes().values().cloned().collect();
        let mut out: Vec<SandboxInspect> = sbs.iter().map(|s| self.inspect_sb(s)).collect();
        out.extend(self.inspect_degraded(None));
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One sandbox, by name, id or unique id prefix; a degraded one too (see
    /// [`Controller::retry_degraded`]), with its reasons in `degraded`.
    pub fn inspect_sandbox(&self, name_or_id: &str) -> Result<SandboxInspect> {
        match self.lookup_sandbox(name_or_id) {
            Ok(sb) => Ok(self.inspect_sb(&sb)),
            Err(Error::Degraded { name, .. }) => self
                .inspect_degraded(Some(&name))
                .pop()
                .ok_or(Error::SandboxNotFound(name)),
            Err(e) => Err(e),
        }
    }

    pub(super) fn inspect_sb(&self, sb: &Sandbox) -> SandboxInspect {
        let st = sb.view();
        let path = |p: std::path::PathBuf| p.display().to_string();
        SandboxInspect {
            hosts_path: sb.files.as_ref().map(|f| path(f.hosts_path())),
            resolv_conf_path: sb.files.as_ref().map(|f| path(f.resolv_conf_path())),
            name: sb.name(),
            id: sb.record.id.to_string(),
            created: crate::time::go_rfc3339(&sb.record.created),
            sandbox_key: if sb.record.host_mode {
                self.inner.host_key.display().to_string()
            } else {
                sb.record.netns.display().to_string()
            },
            networks: networks_of(&st),
            ports: ports_of(&st),
            env: sb.record.env.clone(),
            link_env: link_env_of(&sb.name(), &st),
            degraded: st.troubles.clone(),
        }
    }

    /// Publishes the sandbox's endpoints for listings (called with its state lock held, after
    /// every change and on every way out of one).
    pub(super) fn publish(&self, sb: &Sandbox, st: &SandboxState) {
        let view = SandboxView {
            endpoints: st
                .endpoints
                .iter()
                .map(|(id, a)| {
                    let v = EndpointView {
                        record: a.record.clone(),
                        join: a.join.clone(),
                        network_name: a.network.record.name.clone(),
                    };
                    (id.clone(), v)
                })
                .collect(),
            troubles: st.troubles.values().map(|t| t.reason.clone()).collect(),
        };
        *lock(&sb.view) = Arc::new(view);
    }
}

/// A sandbox's published ports in Docker's inspect shape ("80/tcp" to bindings).
pub(super) fn ports_of(st: &SandboxView) -> BTreeMap<String, Vec<PortBindingInspect>> {
    let mut ports: BTreeMap<String, Vec<PortBindingInspect>> = BTreeMap::new();
    for a in st.endpoints.values() {
        for e in &a.record.exposed {
            for p in e.ports.start()..=e.ports.end() {
                ports.entry(format!("{p}/{}", e.proto)).or_default();
            }
        }
        for b in &a.record.ports {
            for (i, p) in (b.container_ports.start()..=b.container_ports.end()).enumerate() {
                let host = if b.host_ports.len() == b.container_ports.len() {
                    b.host_ports.start() + i as u16
                } else {
                    b.host_ports.start()
                };
                ports
                    .entry(format!("{p}/{}", b.proto))
                    .or_default()
                    .push(PortBindingInspect {
                        host_ip: b.host_ip.to_string(),
                        host_port: host.to_string(),
                    });
            }
        }
    }
    ports
}

/// A sandbox's networks in Docker's inspect shape, by network name.
pub(super) fn networks_of(st: &SandboxView) -> BTreeMap<String, SandboxNetworkInspect> {
    st.endpoints
        .values()
        .map(|a| {
            let r = &a.record;
            (
                a.network_name.clone(),
                SandboxNetworkInspect {
                    network_id: r.network.to_string(),
                    endpoint_id: r.id.to_string(),
                    ip_address: r.ipv4.map(|n| n.addr().to_string()).unwrap_or_default(),
                    ip_prefix_len: r.ipv4.map_or(0, |n| n.prefix_len()),
                    gateway: a.join.gateway_v4.map(|g| g.to_string()).unwrap_or_default(),
                    ipv6_address: r.ipv6.map(|n| n.addr().to_string()).unwrap_or_default(),
                    ipv6_prefix_len: r.ipv6.map_or(0, |n| n.prefix_len()),
                    ipv6_gateway: a.join.gateway_v6.map(|g| g.to_string()).unwrap_or_default(),
                    mac_address: r.mac.map(|m| m.to_string()).unwrap_or_default(),
                    aliases: r.aliases.clone(),
                    links: r.links.iter().map(|(n, a)| format!("{n}:{a}")).collect(),
                    interface: r.ifname.clone().unwrap_or_default(),
                },
            )
        })
        .collect()
}

/// `addr/len`, or empty for no address (the shape of network inspect's addresses).
fn cidr(addr: &str, len: u8) -> String {
    if addr.is_empty() {
        String::new()
    } else {
        format!("{addr}/{len}")
    }
}

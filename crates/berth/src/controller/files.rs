//! The sandbox's files and DNS wiring: registration with the embedded resolver, `/etc/hosts`
//! and `/etc/resolv.conf`, namespace ids, and the names an endpoint answers to.

use super::*;

impl Controller {
    /// Registers a sandbox with the embedded DNS server and creates its hosts/resolv.conf
    /// directory (`<exec_root>/sandboxes/<id>`). Host-mode sandboxes use the host's files.
    pub(super) fn register_sandbox_dns(
        &self,
        rec: &SandboxRecord,
        netns: &Netns,
    ) -> Result<Option<SandboxFiles>> {
        if rec.host_mode {
            return Ok(None);
        }
        let dns_err = |e: berth_dns::Error| {
            Error::InvalidRequest(format!("embedded DNS for sandbox {}: {e}", rec.name))
        };
        let id = rec.id.as_str();
        if let Some(dns) = self.dns() {
            // A restart registers again; a leftover registration is replaced.
            let _ = dns.remove_sandbox(id);
            dns.add_sandbox(id, &rec.name, netns, &[])
                .map_err(dns_err)?;
        }
        let dir = self.inner.config.exec_root.join("sandboxes").join(id);
        match SandboxFiles::create(dir) {
            Ok(files) => Ok(Some(files)),
            Err(e) => {
                if let Some(dns) = self.dns() {
                    let _ = dns.remove_sandbox(id);
                }
                Err(dns_err(e))
            }
        }
    }

    /// Rewrites the sandbox's `/etc/hosts` and `/etc/resolv.conf` from its current endpoints and
    /// points its embedded server at the right upstreams. Failures are logged: name files are not
    /// worth failing a connect for, and the next change rewrites them.
    pub(super) fn write_sandbox_files(&self, sb: &Sandbox, st: &SandboxState) {
        let Some(files) = &sb.files else {
            return;
        };
        let hostname = sb
            .record
            .hostname
            .clone()
            .unwrap_or_else(|| sb.record.id.short().to_owned());
        let rec = &sb.record;
        let mut hosts = HostsFile::new(hostname);
        hosts.domainname = rec.domainname.clone();
        hosts.extra_hosts = rec
            .extra_hosts
            .iter()
            .map(|(names, addr)| HostEntry {
                names: names.clone(),
                addr: *addr,
            })
            .collect();
        let mut attached: Vec<&Attachment> = st.endpoints.values().collect();
        attached.sort_by(|a, b| a.record.ifname.cmp(&b.record.ifname));
        for a in &attached {
            let addr = a
                .record
                .ipv4
                .map(|n| IpAddr::V4(n.addr()))
                .or(a.record.ipv6.map(|n| IpAddr::V6(n.addr())));
            hosts.addresses.extend(addr);
            hosts
                .links
                .extend(a.record.legacy_links.iter().map(|l| LinkHost {
                    addr: l.addr,
                    alias: l.alias.clone(),
                    hostname: l.hostname.clone(),
                    name: l.name.clone(),
                }));
        }
        // Without the embedded server, every sandbox gets the upstream servers directly, as on
        // the default bridge.
        let embedded = self.dns().is_some()
            && attached
                .iter()
                .any(|a| !PREDEFINED_NETWORKS.contains(&a.network.record.name.as_str()));
        let mode = if embedded {
            ResolvMode::Embedded
        } else {
            ResolvMode::Direct {
                ipv6: attached.iter().any(|a| a.record.ipv6.is_some()),
            }
        };
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let result = files.write_hosts(&hosts).and_then(|()| {
            let settings = DnsSettings {
                servers: if rec.dns_servers.is_empty() {
                    self.inner.config.dns.clone()
                } else {
                    rec.dns_servers.clone()
                },
                search: rec.dns_search.clone(),
                options: rec.dns_options.clone(),
            };
            let plan = plan_resolv_conf(&host_resolv, &settings, mode)?;
            if let Some(dns) = self.dns() {
                dns.set_upstreams(sb.record.id.as_str(), &plan.upstreams)?;
            }
            files.write_resolv_conf(&plan.content)
        });
        if let Err(e) = result {
            tracing::warn!(sandbox = %sb.name(), error = %e, "writing hosts/resolv.conf");
        }
    }

    /// Gives a sandbox's namespace the next id of berth's range in the host namespace (see
    /// [`NSID_TOP`]). Best effort: a namespace that has an id already (an adopted one) keeps it,
    /// and on any failure the kernel numbers it itself as before.
    pub(super) fn give_nsid(&self, netns: &Netns) {
        let nl = &self.inner.host_netlink;
        for _ in 0..8 {
            let id = self.inner.next_nsid.fetch_sub(1, Ordering::Relaxed);
            if id < NSID_FLOOR {
                self.inner.next_nsid.store(NSID_TOP, Ordering::Relaxed);
                continue;
            }
            match nl.nsid_set(netns, id) {
                Ok(()) => return,
                // Taken by another namespace (try the next id), or this one has an id already.
                Err(e) if e.is_exists() => {
                    if !matches!(nl.nsid_get(netns), Ok(None)) {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "namespace id not given; the kernel numbers the sandbox");
                    return;
                }
            }
        }
    }

    pub(super) fn dns_connect(
        &self,
        sb: &Sandbox,
        net: &Network,
        record: &EndpointRecord,
    ) -> Result<()> {
        // The endpoint the controller adds for a sandbox's way out (docker_gwbridge) is not
        // in service discovery, as in Docker (libnetwork disables resolution on it): its
        // sandboxes do not find each other by name there.
        let Some(dns) = self.dns() else {
            return Ok(());
        };
        if sb.files.is_none() || record.for_egress {
            return Ok(());
        }
        let aliases = super::cluster_names::published_aliases(sb, record);
        let user_defined = !PREDEFINED_NETWORKS.contains(&net.record.name.as_str());
        self.publish_names(sb, net, record)?;
        dns.connect(
            sb.record.id.as_str(),
            net.record.id.as_str(),
            &EndpointDns {
                endpoint_id: record.id.to_string(),
                aliases,
                ipv4: record.ipv4.map(|n| n.addr()),
                ipv6: record.ipv6.map(|n| n.addr()),
                links: if user_defined {
                    record.links.clone()
                } else {
                    Vec::new()
                },
            },
        )
        .map(|_| ())
        .map_err(|e| Error::InvalidRequest(format!("embedded DNS for sandbox {}: {e}", sb.name())))
    }

    pub(super) fn dns_network(&self, rec: &NetworkRecord) -> Result<()> {
        let Some(dns) = self.dns() else {
            return Ok(());
        };
        dns.add_network(&NetworkDns {
            id: rec.id.to_string(),
            name: rec.name.clone(),
            internal: rec.internal,
            embedded_dns: !PREDEFINED_NETWORKS.contains(&rec.name.as_str())
                && self
                    .driver(&rec.driver)
                    .is_ok_and(|d| d.capabilities().embedded_dns),
        })
        .map_err(|e| Error::InvalidRequest(format!("embedded DNS for network {}: {e}", rec.name)))
    }
}

//! Names across hosts: a sandbox's name and aliases on a global network are published in the
//! cluster store (`network-dns/<network>/<endpoint>`) when it connects, and every other host's
//! embedded DNS answers them for its own sandboxes on that network — the same network-scoping
//! rules as on one host (a name resolves only for sandboxes on its network).

use berth_dns::RemoteEndpointDns;
use berth_driver::Scope;
use berth_store::{Entry, Event};

use super::*;

impl Controller {
    /// Publishes the names of a sandbox's endpoint on a global network for the other hosts,
    /// under this host's lease.
    pub(super) fn publish_names(
        &self,
        sb: &Sandbox,
        net: &Network,
        record: &EndpointRecord,
    ) -> Result<()> {
        if net.record.scope != Scope::Global {
            return Ok(());
        }
        let Some(names) = self.endpoint_names(sb, record) else {
            return Ok(());
        };
        let key = network_dns_key(&net.record.id, &record.id);
        let value = encode(&names);
        self.commit_leased(|lease| Txn::new().put_with_lease(key.clone(), value.clone(), lease))
    }

    /// What the other hosts learn of an endpoint's names: none for a sandbox without service
    /// discovery (host mode) or for its way out on the gateway bridge.
    pub(super) fn endpoint_names(
        &self,
        sb: &Sandbox,
        record: &EndpointRecord,
    ) -> Option<EndpointNames> {
        if sb.files.is_none() || record.for_egress {
            return None;
        }
        Some(EndpointNames {
            instance: self.inner.instance.clone(),
            name: sb.name().to_owned(),
            aliases: published_aliases(sb, record),
            ipv4: record.ipv4.map(|n| n.addr()),
            ipv6: record.ipv6.map(|n| n.addr()),
        })
    }

    /// A change of the names published under [`NETWORK_DNS_PREFIX`].
    pub(super) fn names_apply(&self, event: &Event) {
        match event {
            Event::Put(e) => self.remote_names_put(e),
            Event::Delete { key, .. } => {
                if let Some((net, ep)) = parse_names_key(key) {
                    self.remote_names_forget(&net, &ep);
                }
            }
            _ => {}
        }
    }

    /// Every published name again (at start, and after a compaction): names no longer listed
    /// are forgotten.
    pub(super) fn names_resync(&self, entries: &[Entry]) {
        let listed: BTreeSet<(NetworkId, EndpointId)> = entries
            .iter()
            .filter_map(|e| parse_names_key(&e.key))
            .collect();
        let stale: Vec<_> = match &self.inner.cluster {
            Some(c) => lock(&c.remote_names)
                .iter()
                .filter(|k| !listed.contains(k))
                .cloned()
                .collect(),
            None => return,
        };
        for (net, ep) in stale {
            self.remote_names_forget(&net, &ep);
        }
        for e in entries {
            self.remote_names_put(e);
        }
    }

    /// Loads the names other hosts published on a global network that just arrived here.
    pub(super) fn load_remote_names(&self, network: &NetworkId) {
        let Some(cluster) = &self.inner.cluster else {
            return;
        };
        match cluster
            .store
            .list(&format!("{NETWORK_DNS_PREFIX}{network}/"))
        {
            Ok(listing) => {
                for e in &listing.entries {
                    self.remote_names_put(e);
                }
            }
            Err(e) => {
                tracing::warn!(network = %network.short(), error = %e, "listing the names of a global network's endpoints")
            }
        }
    }

    fn remote_names_put(&self, entry: &Entry) {
        let Some((net, ep)) = parse_names_key(&entry.key) else {
            return;
        };
        let Ok(names) = serde_json::from_slice::<EndpointNames>(&entry.value) else {
            tracing::warn!(key = %entry.key, "ignoring unreadable endpoint names in the cluster store");
            return;
        };
        if names.instance == self.inner.instance {
            return;
        }
        let Some(cluster) = &self.inner.cluster else {
            return;
        };
        let remote = RemoteEndpointDns {
            endpoint_id: ep.to_string(),
            name: names.name,
            aliases: names.aliases,
            ipv4: names.ipv4,
            ipv6: names.ipv6,
        };
        // A network not known here yet loads its names when it arrives.
        if let Some(dns) = self.dns()
            && dns.add_remote(net.as_str(), &remote).is_ok()
        {
            lock(&cluster.remote_names).insert((net, ep));
        }
    }

    fn remote_names_forget(&self, net: &NetworkId, ep: &EndpointId) {
        if let Some(cluster) = &self.inner.cluster {
            lock(&cluster.remote_names).remove(&(net.clone(), ep.clone()));
        }
        if let Some(dns) = self.dns() {
            let _ = dns.remove_remote(net.as_str(), ep.as_str());
        }
    }
}

fn parse_names_key(key: &str) -> Option<(NetworkId, EndpointId)> {
    let (net, ep) = key.strip_prefix(NETWORK_DNS_PREFIX)?.split_once('/')?;
    Some((net.parse().ok()?, ep.parse().ok()?))
}

/// The names an endpoint answers to besides its sandbox's: its network-scoped aliases, the
/// sandbox's short id and its hostname (as Docker's service discovery has them).
pub(super) fn published_aliases(sb: &Sandbox, record: &EndpointRecord) -> Vec<String> {
    let mut aliases = record.aliases.clone();
    aliases.push(sb.record.id.short().to_owned());
    if let Some(h) = &sb.record.hostname {
        aliases.push(h.clone());
    }
    aliases
}

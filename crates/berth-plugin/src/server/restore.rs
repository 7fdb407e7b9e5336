//! Starting: the store opened, the host namespace, forwarding, the firewall (staged), the
//! bridge driver and the staging namespace set up, then everything the store holds taken back
//! (see the module docs of `server`).

use std::sync::{Arc, Mutex};

use berth_bridge::{BridgeDefaults, BridgeDriver};
use berth_driver::{DriverError, EndpointSpec, NetworkDriver};
use berth_firewall::{DesiredState, Firewall, FirewallConfig, NamespaceClaim};
use berth_ipam::{AddressRequest, DefaultPool, Ipam, PoolId, PoolRequest};
use berth_netlink::{Handle, Netns, sysctl_get, sysctl_set};
use berth_store::{Expect, RedbStore, Txn};

use super::ServerConfig;
use super::error::{ServerError, ServerResult};
use super::network::spec_of;
use super::records::{
    AddressRecord, EndpointRecord, FORWARDING_KEY, ForwardingRecord, INSTANCE_KEY, NetworkRecord,
    Phase, Records, endpoint_key, network_key,
};
use super::service::{Service, State};
use super::staging::Staging;

/// The store's file under the state directory.
pub(crate) const STORE_FILE: &str = "plugin.db";

/// This state's instance id (made on the first start, kept): the mark on the links the
/// bridge driver makes, so that only the server's own are ever removed.
fn instance_id(store: &RedbStore) -> ServerResult<String> {
    use berth_store::KvStore;
    if let Some(e) = store
        .get(INSTANCE_KEY)
        .map_err(|e| ServerError::store("reading the instance id", e))?
        && let Ok(id) = String::from_utf8(e.value)
    {
        return Ok(id);
    }
    let bytes: [u8; 8] = rand::random();
    let id: String = std::iter::once("plugin-".to_owned())
        .chain(bytes.iter().map(|b| format!("{b:02x}")))
        .collect();
    store
        .commit(
            Txn::new()
                .when(INSTANCE_KEY, Expect::Absent)
                .put(INSTANCE_KEY, id.as_bytes().to_vec()),
        )
        .map_err(|e| ServerError::store("writing the instance id", e))?;
    Ok(id)
}

impl Service {
    /// Sets everything up and restores the stored state.
    pub(crate) fn start(config: &ServerConfig) -> ServerResult<Service> {
        let host = match &config.host_netns {
            Some(p) => Netns::open(p),
            None => Netns::current(),
        }
        .map_err(|e| ServerError::kernel("opening the host namespace", e))?;
        // Before anything is written: a second berth firewall in the namespace is refused.
        let claim = match config.firewall {
            Some(_) => match NamespaceClaim::take(&host) {
                Ok(claim) => Some(claim),
                Err(e) => {
                    // The same state directory in use says more than the namespace's claim; an
                    // existing store is opened only to find that out.
                    let path = config.state_dir.join(STORE_FILE);
                    if path.exists() {
                        RedbStore::open(path).map_err(|e| ServerError::store("opening", e))?;
                    }
                    return Err(e.into());
                }
            },
            None => None,
        };
        std::fs::create_dir_all(&config.state_dir).map_err(|source| ServerError::StateDir {
            path: config.state_dir.clone(),
            source,
        })?;
        let store = RedbStore::open(config.state_dir.join(STORE_FILE))
            .map_err(|e| ServerError::store("opening", e))?;
        let instance = instance_id(&store)?;
        let records = Records::new(Box::new(store));
        let host_netlink = Handle::open(&host)
            .map_err(|e| ServerError::kernel("netlink in the host namespace", e))?;

        // dockerd sets the FORWARD policy to DROP when it switches forwarding on; so does the
        // server, and it remembers that it did, so a restart keeps the policy.
        let mut forwarding: ForwardingRecord = records.get(FORWARDING_KEY)?.unwrap_or_default();
        if config.ip_forward {
            let cur = sysctl_get(&host, "net.ipv4.ip_forward")
                .map_err(|e| ServerError::kernel("reading ip_forward", e))?;
            if cur.trim() != "1" {
                forwarding.ipv4 = true;
                records.put(FORWARDING_KEY, &forwarding)?;
                sysctl_set(&host, "net.ipv4.ip_forward", "1")
                    .map_err(|e| ServerError::kernel("switching ip_forward on", e))?;
            }
        }
        // Staged: the restores below add what they bring back, one reconcile at the end makes
        // the kernel say exactly that.
        let firewall = match config.firewall {
            None => None,
            Some(backend) => {
                let mut fw = FirewallConfig::new(backend);
                fw.ipv6 = true;
                fw.forward_policy_drop = forwarding.ipv4;
                fw.forward_policy_drop_v6 = forwarding.ipv6;
                Some(Arc::new(Firewall::with_state(
                    &host,
                    fw,
                    DesiredState::new(),
                )?))
            }
        };
        let bridge = BridgeDriver::with_userland_proxy(
            &host,
            firewall.clone(),
            BridgeDefaults::default(),
            config.userland_proxy,
        )?
        .with_instance(instance);
        let ipam = match &config.default_pools {
            Some(pools) => {
                Ipam::with_default_pools(pools.clone(), DefaultPool::docker_global_defaults())
            }
            None => Ipam::new(),
        };
        let service = Service {
            name: config.name.clone(),
            host,
            host_netlink,
            bridge,
            firewall,
            staging: Staging::new()?,
            records,
            state: Mutex::new(State::default()),
            ipam: Mutex::new(ipam),
            ip_forward: config.ip_forward,
            strict_options: config.strict_options,
            _claim: claim,
        };
        service.restore()?;
        Ok(service)
    }

    fn restore(&self) -> ServerResult<()> {
        self.restore_ipam()?;
        for (_, rec) in self.records.list::<NetworkRecord>("network/")? {
            self.restore_network(rec)?;
        }
        for (_, rec) in self.records.list::<EndpointRecord>("endpoint/")? {
            self.restore_endpoint(rec)?;
        }
        let removed = NetworkDriver::remove_orphans(&self.bridge)?;
        if !removed.is_empty() {
            tracing::info!(plugin = %self.name, ?removed, "removed links no record names");
        }
        if let Some(fw) = &self.firewall {
            let report = fw.reconcile()?;
            tracing::info!(plugin = %self.name, %report, "firewall reconciled on start");
        }
        let st = self.state();
        tracing::info!(
            plugin = %self.name,
            networks = st.networks.len(),
            endpoints = st.endpoints.len(),
            "state restored"
        );
        Ok(())
    }

    /// The pools and addresses handed out before, taken again (the same pool ids).
    fn restore_ipam(&self) -> ServerResult<()> {
        let mut ipam = self.ipam();
        for (key, id) in self.records.list::<String>("pool/")? {
            let parsed: PoolId =
                id.parse()
                    .map_err(|e: berth_ipam::Error| ServerError::Record {
                        key: key.clone(),
                        reason: e.to_string(),
                    })?;
            let mut req = PoolRequest::new(parsed.space(), parsed.subnet());
            if let Some(r) = parsed.range() {
                req = req.with_ip_range(r);
            }
            let got = ipam.request_pool(&req)?;
            if got != parsed {
                return Err(ServerError::Record {
                    key,
                    reason: format!("the pool came back as {got}"),
                });
            }
        }
        for (key, rec) in self.records.list::<AddressRecord>("address/")? {
            let pool = key
                .strip_prefix("address/")
                .and_then(|k| k.rsplit_once('#'))
                .and_then(|(p, _)| p.parse::<PoolId>().ok())
                .ok_or_else(|| ServerError::Record {
                    key: key.clone(),
                    reason: "the key names no pool".into(),
                })?;
            if let Err(e) = ipam.request_address(&pool, AddressRequest::Preferred(rec.address)) {
                tracing::warn!(plugin = %self.name, %key, error = %e, "a recorded address cannot be taken again");
            }
        }
        Ok(())
    }

    /// A network taken back into the bridge driver; one whose creation or removal a crash cut
    /// short is removed and forgotten.
    fn restore_network(&self, rec: NetworkRecord) -> ServerResult<()> {
        let (options, _) = self.bridge_options(&rec)?;
        let spec = spec_of(&rec);
        if rec.phase != Phase::Ready {
            tracing::info!(plugin = %self.name, network = %rec.id.short(), phase = ?rec.phase, "finishing an interrupted network creation or removal");
            if NetworkDriver::restore_network(&self.bridge, &spec, &options).is_ok() {
                NetworkDriver::delete_network(&self.bridge, &rec.id)?;
            }
            return self.records.delete(&network_key(&rec.id));
        }
        NetworkDriver::restore_network(&self.bridge, &spec, &options).map_err(|e| {
            ServerError::Driver(DriverError::InvalidConfig(format!(
                "restoring network {}: {e}",
                rec.id.short()
            )))
        })?;
        self.state().networks.insert(rec.id.clone(), rec);
        Ok(())
    }

    /// An endpoint taken back into the bridge driver with its published ports; the veth of a
    /// join a crash cut short is deleted.
    fn restore_endpoint(&self, mut rec: EndpointRecord) -> ServerResult<()> {
        if !self.state().networks.contains_key(&rec.network) {
            tracing::warn!(plugin = %self.name, endpoint = %rec.id.short(), "forgetting an endpoint whose network is gone");
            return self.records.delete(&endpoint_key(&rec.id));
        }
        let spec = EndpointSpec {
            network: rec.network.clone(),
            endpoint: rec.id.clone(),
            ipv4: rec.interface.ipv4,
            ipv6: rec.interface.ipv6,
            mac: rec.interface.mac,
            options: rec.options.clone(),
        };
        NetworkDriver::create_endpoint(&self.bridge, &spec)?;
        let mut changed = false;
        if rec.join.as_ref().is_some_and(|j| j.phase != Phase::Ready) {
            tracing::info!(plugin = %self.name, endpoint = %rec.id.short(), "removing the veth of an interrupted join");
            match NetworkDriver::leave(&self.bridge, &rec.network, &rec.id) {
                Ok(()) | Err(DriverError::EndpointNotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
            rec.join = None;
            changed = true;
        }
        if !rec.bindings.is_empty() {
            let restored = NetworkDriver::restore_external_connectivity(
                &self.bridge,
                &rec.network,
                &rec.id,
                &rec.bindings,
            );
            if let Err(e) = restored {
                tracing::warn!(plugin = %self.name, endpoint = %rec.id.short(), error = %e, "published ports cannot be restored; they are forgotten");
                rec.bindings.clear();
                changed = true;
            }
        }
        if changed {
            self.records.put(&endpoint_key(&rec.id), &rec)?;
        }
        self.state().endpoints.insert(rec.id.clone(), rec);
        Ok(())
    }
}

//! [`ControllerBuilder`]: a controller with network drivers an engine registers from outside.

use super::*;

/// Builds a [`Controller`] with network drivers registered from outside (see
/// [`Controller::builder`]). `bridge`, `null` and `host` are always there; a registered driver
/// is found by its [`Driver::name`] (`docker network create -d NAME`), and the controller's
/// decisions about its networks follow its [`berth_driver::Capabilities`], never its name.
pub struct ControllerBuilder {
    config: Config,
    drivers: Vec<Arc<dyn Driver>>,
    store: Option<Arc<dyn KvStore>>,
    ipams: Vec<Arc<dyn IpamDriver>>,
    cluster_store: Option<Arc<dyn KvStore>>,
    cluster_lease_ttl: std::time::Duration,
    cluster_lease: Option<Arc<berth_store::HostLease>>,
}

impl std::fmt::Debug for ControllerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.drivers.iter().map(|d| d.name()).collect();
        f.debug_struct("ControllerBuilder")
            .field("data_root", &self.config.data_root)
            .field("drivers", &names)
            .finish()
    }
}

impl ControllerBuilder {
    pub(super) fn new(config: Config) -> ControllerBuilder {
        ControllerBuilder {
            config,
            drivers: Vec::new(),
            store: None,
            ipams: Vec::new(),
            cluster_store: None,
            cluster_lease_ttl: berth_store::DEFAULT_HOST_LEASE_TTL,
            cluster_lease: None,
        }
    }

    /// Registers a network driver.
    pub fn driver(self, driver: impl berth_driver::NetworkDriver) -> ControllerBuilder {
        self.driver_arc(Arc::new(driver))
    }

    /// Registers a network driver the engine shares (the same driver may serve other parts of
    /// it).
    pub fn driver_arc(mut self, driver: Arc<dyn Driver>) -> ControllerBuilder {
        self.drivers.push(driver);
        self
    }

    /// Keeps the controller's state in `store` instead of the redb file under the data root
    /// (`Config::store_path`): any [`KvStore`], such as an engine's own or
    /// [`berth_store::MemoryStore`] for state that must not outlive the process. The store must
    /// not be shared with another controller (local state is not scoped per host).
    pub fn store(mut self, store: Arc<dyn KvStore>) -> ControllerBuilder {
        self.store = Some(store);
        self
    }

    /// Registers an IPAM driver: networks created with `--ipam-driver NAME` (its
    /// [`IpamDriver::name`]) take their pools and addresses from it. One named `default` takes
    /// the place of the built-in allocator ([`crate::BuiltinIpam`], which follows
    /// `Config::default_address_pools`) for every network that names no other.
    pub fn ipam(mut self, ipam: Arc<dyn IpamDriver>) -> ControllerBuilder {
        self.ipams.push(ipam);
        self
    }

    /// Shares `store` with the other hosts of a cluster: global-scope networks (those of a
    /// driver whose [`berth_driver::Capabilities::scope`] is global) keep their records, their
    /// pools and addresses (the global address space, [`crate::ClusterIpam`]) and which hosts
    /// have endpoints on them there. The controller learns of global networks created or removed
    /// elsewhere by watching it. Local state stays in the local store.
    pub fn cluster_store(mut self, store: Arc<dyn KvStore>) -> ControllerBuilder {
        self.cluster_store = Some(store);
        self
    }

    /// How long what this host published in the cluster store (which of its endpoints are on
    /// global networks, and their names) outlives its last word to the store: the keys live
    /// under one lease, renewed every third of `ttl`, so a host that dies disappears from the
    /// others within `ttl`, and a host cut off for longer puts them again when it is back.
    /// [`berth_store::DEFAULT_HOST_LEASE_TTL`] unless set.
    pub fn cluster_lease_ttl(mut self, ttl: std::time::Duration) -> ControllerBuilder {
        self.cluster_lease_ttl = ttl;
        self
    }

    /// Puts this host's keys in the cluster store under `lease`, shared with another publisher
    /// of the host (the overlay driver: `OverlayDriver::host_lease`), instead of a lease of its
    /// own: one lease, kept alive about once per renewal period, where two cost twice that (see
    /// [`berth_store::HostLease`]). Its time to live replaces
    /// [`ControllerBuilder::cluster_lease_ttl`]. It must be a lease in the same store as
    /// [`ControllerBuilder::cluster_store`].
    pub fn cluster_lease(mut self, lease: Arc<berth_store::HostLease>) -> ControllerBuilder {
        self.cluster_lease = Some(lease);
        self
    }

    /// Opens the state and starts the controller (see [`Controller::new`]). Fails with
    /// [`Error::InvalidRequest`] when two drivers have one name (the built-in ones included) or
    /// a name is not a plain word, and with [`Error::DriverNotFound`] when a stored network's
    /// driver is not registered (its records are left alone).
    pub fn build(self) -> Result<Controller> {
        for (i, d) in self.drivers.iter().enumerate() {
            let name = d.name();
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':'));
            if !plain {
                return Err(Error::InvalidRequest(format!(
                    "invalid driver name {name:?}: letters, digits and . _ - / : only"
                )));
            }
            let twice = BUILT_IN_DRIVERS.contains(&name)
                || self.drivers[..i].iter().any(|o| o.name() == name);
            if twice {
                return Err(Error::InvalidRequest(format!(
                    "driver {name} is registered twice (bridge, macvlan, ipvlan, null and host are built in)"
                )));
            }
        }
        for (i, d) in self.ipams.iter().enumerate() {
            if self.ipams[..i].iter().any(|o| o.name() == d.name()) {
                return Err(Error::InvalidRequest(format!(
                    "IPAM driver {} is registered twice",
                    d.name()
                )));
            }
        }
        Controller::start(
            self.config,
            self.drivers,
            self.store,
            self.ipams,
            self.cluster_store.map(|s| {
                let lease = self.cluster_lease.unwrap_or_else(|| {
                    Arc::new(berth_store::HostLease::new(
                        s.clone(),
                        self.cluster_lease_ttl,
                    ))
                });
                (s, lease)
            }),
        )
    }
}

/// The drivers every controller has.
pub(super) const BUILT_IN_DRIVERS: [&str; 5] = ["bridge", "macvlan", "ipvlan", "null", "host"];

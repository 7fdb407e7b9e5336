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
    ipam: Option<Arc<dyn IpamDriver>>,
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
            ipam: None,
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

    /// Uses `ipam` for every network's pools and addresses instead of the built-in allocator
    /// ([`crate::BuiltinIpam`], which follows `Config::default_address_pools`).
    pub fn ipam(mut self, ipam: Arc<dyn IpamDriver>) -> ControllerBuilder {
        self.ipam = Some(ipam);
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
                    "driver {name} is registered twice (bridge, null and host are built in)"
                )));
            }
        }
        Controller::start(self.config, self.drivers, self.store, self.ipam)
    }
}

/// The drivers every controller has.
pub(super) const BUILT_IN_DRIVERS: [&str; 3] = ["bridge", "null", "host"];

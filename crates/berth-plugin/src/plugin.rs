//! An activated plugin: found ([`crate::locate`]), handshaken (`/Plugin.Activate`, with
//! dockerd's retries), and turned into the drivers its handshake lists.

use berth_netlink::Netns;

use crate::client::{Client, ClientConfig};
use crate::discovery::{Address, PluginDirs, PluginSpec, locate};
use crate::error::{Error, Result};
use crate::ipam::RemoteIpamDriver;
use crate::network::RemoteNetworkDriver;
use crate::wire::{ActivateResponse, Call, IPAM_DRIVER, NETWORK_DRIVER};

/// A plugin that answered the handshake.
#[derive(Debug, Clone)]
pub struct Plugin {
    spec: PluginSpec,
    client: Client,
    implements: Vec<String>,
}

/// Finds plugin `name` in `dirs` and activates it with dockerd's retries and timeouts
/// ([`ClientConfig::default`]).
pub fn discover(name: &str, dirs: &PluginDirs) -> Result<Plugin> {
    discover_with(name, dirs, ClientConfig::default())
}

/// Finds plugin `name` in `dirs` and activates it with `config`.
pub fn discover_with(name: &str, dirs: &PluginDirs, config: ClientConfig) -> Result<Plugin> {
    Plugin::activate(locate(name, dirs)?, config)
}

impl Plugin {
    /// Activates the plugin `spec` names: `POST /Plugin.Activate`, retried while it cannot be
    /// reached as `config.activation_retry` says; its answer lists what it implements.
    pub fn activate(spec: PluginSpec, config: ClientConfig) -> Result<Plugin> {
        let client = Client::new(spec.name.clone(), spec.address.clone(), config);
        let answer: ActivateResponse = client.call_empty(Call::Activate)?;
        tracing::debug!(plugin = %spec.name, implements = ?answer.implements, "plugin activated");
        Ok(Plugin {
            spec,
            client,
            implements: answer.implements,
        })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// How it is reached.
    pub fn address(&self) -> &Address {
        &self.spec.address
    }

    /// Where it was found.
    pub fn spec(&self) -> &PluginSpec {
        &self.spec
    }

    /// What its handshake lists (`NetworkDriver`, `IpamDriver`, ...).
    pub fn implements(&self) -> &[String] {
        &self.implements
    }

    /// Whether its handshake lists `what`.
    pub fn implements_kind(&self, what: &str) -> bool {
        self.implements.iter().any(|i| i == what)
    }

    /// Its client, for calls of one's own.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn require(&self, wanted: &'static str) -> Result<()> {
        if self.implements_kind(wanted) {
            Ok(())
        } else {
            Err(Error::NotImplemented {
                plugin: self.name().to_owned(),
                wanted,
                implements: self.implements.join(", "),
            })
        }
    }

    /// The plugin as a network driver named as the plugin, whose interfaces are made in
    /// `host` (the controller's host namespace: the plugin's own): asks its capabilities.
    /// Fails with [`Error::NotImplemented`] unless its handshake lists `NetworkDriver`.
    pub fn network_driver(&self, host: &Netns) -> Result<RemoteNetworkDriver> {
        self.require(NETWORK_DRIVER)?;
        RemoteNetworkDriver::new(self.client.clone(), host)
    }

    /// The plugin as an IPAM driver named as the plugin: asks its capabilities and default
    /// address spaces. Fails with [`Error::NotImplemented`] unless its handshake lists
    /// `IpamDriver`.
    pub fn ipam_driver(&self) -> Result<RemoteIpamDriver> {
        self.require(IPAM_DRIVER)?;
        RemoteIpamDriver::new(self.client.clone())
    }
}

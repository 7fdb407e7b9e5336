//! `--network-plugin NAME`: a Docker plugin found and activated at start (dockerd's discovery
//! and retries), registered with the controller as the drivers its handshake lists.

use crate::error::{Error, Result};

/// Finds and activates the Docker plugin `name` (dockerd's discovery and retries) and registers
/// what its handshake lists: a network driver (its endpoints' joins kept under
/// `<data_root>/plugins/NAME`, so that a restart takes them back without asking the plugin
/// again) and an IPAM driver.
pub(super) fn network_plugin(
    mut builder: berth::ControllerBuilder,
    name: &str,
    host: &berth_netlink::Netns,
    config: &berth::Config,
) -> Result<berth::ControllerBuilder> {
    let unusable = |e: berth_plugin::Error| Error::usage(format!("--network-plugin {name}: {e}"));
    let plugin =
        berth_plugin::discover(name, &berth_plugin::PluginDirs::default()).map_err(unusable)?;
    let mut registered = Vec::new();
    if plugin.implements_kind("NetworkDriver") {
        let dir = config.data_root.join("plugins").join(name);
        let driver = plugin
            .network_driver(host)
            .and_then(|d| d.keep_state_in(&dir))
            .map_err(unusable)?;
        builder = builder.driver_arc(std::sync::Arc::new(driver));
        registered.push("network driver");
    }
    if plugin.implements_kind("IpamDriver") {
        let ipam = plugin.ipam_driver().map_err(unusable)?;
        builder = builder.ipam(std::sync::Arc::new(ipam));
        registered.push("IPAM driver");
    }
    if registered.is_empty() {
        return Err(Error::usage(format!(
            "--network-plugin {name}: the plugin implements neither NetworkDriver nor IpamDriver (it lists {:?})",
            plugin.implements()
        )));
    }
    tracing::info!(plugin = %name, ?registered, "plugin activated");
    Ok(builder)
}

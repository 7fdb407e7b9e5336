//! Docker's remote plugin protocol, both ways. Client side: the network and IPAM plugins
//! written for dockerd (Weave, Calico, Kuryr, ...) as berth drivers. Server side
//! ([`PluginServer`], `berth plugin serve`): berth's bridge driver and IPAM served to a stock
//! dockerd on a plugin socket (`docker network create -d berth --ipam-driver berth`).
//!
//! A plugin is found by name the way dockerd finds legacy plugins ([`locate`], in
//! [`PluginDirs`]: a unix socket under `/run/docker/plugins`, else a `.spec` or `.json` file
//! under `/etc/docker/plugins` or `/usr/lib/docker/plugins`), activated with dockerd's
//! handshake and retries ([`discover`], [`Plugin::activate`]), and turned into the drivers its
//! handshake lists: [`RemoteNetworkDriver`] (a [`berth_driver::NetworkDriver`]) and
//! [`RemoteIpamDriver`] (a [`berth_driver::IpamDriver`]), both named as the plugin. The caller
//! registers them with the controller.
//!
//! Every call is an HTTP/1.1 POST of JSON ([`wire`] has every body, as libnetwork's remote API
//! names its fields) on a connection of its own, bounded by a timeout ([`ClientConfig`]).
//! Failures are typed and name the plugin and the call: `plugin "weave"
//! NetworkDriver.CreateEndpoint: no answer within 30.0s (the plugin hangs or is too slow)`.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use berth_netlink::Netns;
//! use berth_plugin::{PluginDirs, discover};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let plugin = discover("weave", &PluginDirs::default())?;
//! let host = Netns::current()?;
//! let network = Arc::new(plugin.network_driver(&host)?);
//! let ipam = Arc::new(plugin.ipam_driver()?);
//! # let (_, _) = (network, ipam);
//! // berth::Controller::builder(config).driver_arc(network).ipam(ipam).build()?;
//! // docker network create -d weave --ipam-driver weave ...
//! # Ok(()) }
//! ```

mod client;
mod discovery;
mod error;
mod http;
mod ipam;
mod network;
mod plugin;
mod saved;
pub mod server;
pub mod wire;

pub use client::{Client, ClientConfig, RetryPolicy};
pub use discovery::{Address, PluginDirs, PluginSpec, TlsConfig, locate, validate_name};
pub use error::{CallFailure, Error, Result};
pub use ipam::{IpamCapabilities, RemoteIpamDriver};
pub use network::{PluginOptions, RemoteNetworkDriver};
pub use plugin::{Plugin, discover, discover_with};
pub use server::{PluginServer, ServerConfig, ServerError, TerminationSignals};

/// For the fuzz target: reads an HTTP answer from `raw` as the client does (`eof`: the
/// connection closed), returning its status and body when complete. Never panics.
#[doc(hidden)]
pub fn fuzz_http_reply(
    raw: &[u8],
    eof: bool,
) -> std::result::Result<Option<(u16, Vec<u8>)>, String> {
    http::parse_reply(raw, eof).map(|r| r.map(|r| (r.status, r.body)))
}

/// Compile-time proof that the drivers can be shared between threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RemoteNetworkDriver>();
    assert_send_sync::<RemoteIpamDriver>();
    assert_send_sync::<Client>();
    assert_send_sync::<PluginServer>();
};

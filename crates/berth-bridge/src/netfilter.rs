//! Bridged traffic through the packet filter (`br_netfilter`).
//!
//! Frames between two ports of one bridge are switched, not routed: they reach iptables'
//! FORWARD chain (and so icc=false, the legacy-link holes, and the un-NAT of a container's
//! reply to a neighbour that reached it through a published port) only when
//! `net.bridge.bridge-nf-call-iptables` (IPv6: `bridge-nf-call-ip6tables`) is 1 in the host
//! namespace. The sysctl belongs to each network namespace; br_netfilter makes it 1 in a new one,
//! but a host may have it at 0.
//!
//! Like Docker (28: `setupIPv4BridgeNetFiltering` / `setupIPv6BridgeNetFiltering`), a driver
//! with a firewall sets it to 1 when it creates a network (the IPv6 key for networks with IPv6
//! when the firewall programs IPv6). Docker does so for icc=false networks, and for every
//! network when it publishes ports without its userland proxy, which is how berth always
//! publishes. Unlike Docker, berth sets it also while `ip_forward` is 0: isolation must not
//! depend on forwarding being on (the frames are switched, not forwarded).
//!
//! When the key does not exist (the kernel has no br_netfilter), Docker refuses the network.
//! berth refuses an icc=false network with [`BridgeError::BridgeNetfilterMissing`]: its
//! isolation could not be enforced. Other networks are created with a warning: all they lose is
//! a container reaching a published port of a neighbour on the same network through a host
//! address (the reply bypasses the un-NAT), which Docker's default (with the userland proxy)
//! does not offer through NAT either.

use berth_driver::{DriverError, Result};
use berth_netlink::{Netns, sysctl_get, sysctl_set};

/// The key that sends bridged IPv4 through iptables.
pub const BRIDGE_NF_CALL_IPTABLES: &str = "net.bridge.bridge-nf-call-iptables";
/// The key that sends bridged IPv6 through ip6tables.
pub const BRIDGE_NF_CALL_IP6TABLES: &str = "net.bridge.bridge-nf-call-ip6tables";

/// The bridge driver's own errors, carried as the source of a [`DriverError::Kernel`] (downcast
/// it: `source.downcast_ref::<BridgeError>()`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The host namespace has no `net.bridge.bridge-nf-call-ip(6)tables`: the kernel lacks
    /// br_netfilter, and the network's isolation cannot be enforced without it.
    #[error(
        "network {network} has inter-container communication off (enable_icc=false), which \
         needs bridged traffic to pass the firewall, but {key} does not exist in the host \
         namespace (the kernel has no br_netfilter): load it (`modprobe br_netfilter`) and \
         try again, or create the network with icc on"
    )]
    BridgeNetfilterMissing {
        /// The network's name.
        network: String,
        /// The missing sysctl.
        key: &'static str,
    },
    /// A bridge of the name berth is to make exists already and was not made by berth (it
    /// carries no berth mark: Docker's `docker0`, or one a user or another program made).
    /// berth never takes over such a bridge unless told to use it (see
    /// [`crate::EXISTING_BRIDGE`]); nothing was changed on it.
    #[error(
        "bridge {bridge} exists and was not made by berth (Docker's, or another program's): \
         berth does not take over a bridge it did not make, so network {network} was not \
         created and {bridge} was left as it is. To use {bridge} on purpose, name it as an \
         existing bridge (daemon: --bridge {bridge}, or \"bridge\": \"{bridge}\" in \
         daemon.json; library: Config::default_bridge = DefaultBridge::Existing); or let \
         berth make a bridge of another name (DefaultBridge::Create); or delete {bridge} if \
         nothing uses it"
    )]
    ForeignBridge {
        /// The bridge's name.
        bridge: String,
        /// The network that was to be made on it.
        network: String,
    },
    /// The existing bridge a network is to use (see [`crate::EXISTING_BRIDGE`]) does not exist.
    #[error(
        "network {network} is to use the existing bridge {bridge}, which does not exist: \
         create it (ip link add {bridge} type bridge) and give it an address, or let berth \
         make a bridge of its own (daemon: leave --bridge out; library: \
         DefaultBridge::Create)"
    )]
    ExistingBridgeMissing {
        /// The bridge's name.
        bridge: String,
        /// The network that was to use it.
        network: String,
    },
}

/// What to do about one key, given its current value (`None`: the key does not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Nothing,
    Set,
    Refuse,
    Warn,
}

fn plan(current: Option<&str>, required: bool) -> Step {
    match current {
        Some(v) if v.trim() == "1" => Step::Nothing,
        Some(_) => Step::Set,
        None if required => Step::Refuse,
        None => Step::Warn,
    }
}

/// Makes every key of `keys` 1 in `host` for network `network`; `required` (icc off): a missing
/// key is an error rather than a warning.
pub(crate) fn ensure(
    host: &Netns,
    network: &str,
    keys: &[&'static str],
    required: bool,
) -> Result<()> {
    for &key in keys {
        let current = match sysctl_get(host, key) {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                return Err(DriverError::kernel(
                    format!("reading {key} in the host namespace"),
                    e,
                ));
            }
        };
        match plan(current.as_deref(), required) {
            Step::Nothing => {}
            Step::Set => {
                sysctl_set(host, key, "1").map_err(|e| {
                    DriverError::kernel(format!("setting {key} to 1 in the host namespace"), e)
                })?;
                tracing::info!(key, network, "bridged traffic now passes the firewall");
            }
            Step::Refuse => {
                return Err(DriverError::kernel(
                    format!("creating network {network}"),
                    BridgeError::BridgeNetfilterMissing {
                        network: network.to_owned(),
                        key,
                    },
                ));
            }
            Step::Warn => tracing::warn!(
                key,
                network,
                "no br_netfilter in the kernel (the key does not exist in the host namespace): \
                 bridged traffic bypasses the firewall, so a container cannot reach a published \
                 port of a neighbour on the same network through a host address; load \
                 br_netfilter to fix it"
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_set_present_is_kept_missing_refuses_only_when_required() {
        assert_eq!(plan(Some("1"), true), Step::Nothing);
        assert_eq!(plan(Some("1\n"), false), Step::Nothing);
        assert_eq!(plan(Some("0"), true), Step::Set);
        assert_eq!(plan(Some("0"), false), Step::Set);
        assert_eq!(plan(None, true), Step::Refuse);
        assert_eq!(plan(None, false), Step::Warn);
    }

    #[test]
    fn the_refusal_names_the_network_the_key_and_the_fix() {
        let e = BridgeError::BridgeNetfilterMissing {
            network: "isolated".into(),
            key: BRIDGE_NF_CALL_IPTABLES,
        }
        .to_string();
        for needle in [
            "isolated",
            BRIDGE_NF_CALL_IPTABLES,
            "modprobe br_netfilter",
            "enable_icc",
        ] {
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }
}

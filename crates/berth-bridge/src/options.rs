//! The bridge driver's typed options, parsed from Docker's keys.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use berth_driver::{DriverError, OptionReader, RawOptions, Result};
use berth_netlink::validate_ifname;

/// `com.docker.network.bridge.name`: the bridge device's name.
pub const BRIDGE_NAME: &str = "com.docker.network.bridge.name";
/// `com.docker.network.bridge.default_bridge`: this is the default `bridge` network.
pub const DEFAULT_BRIDGE: &str = "com.docker.network.bridge.default_bridge";
/// `com.docker.network.bridge.enable_icc`: inter-container communication.
pub const ENABLE_ICC: &str = "com.docker.network.bridge.enable_icc";
/// `com.docker.network.bridge.enable_ip_masquerade`: masquerade outbound traffic.
pub const ENABLE_IP_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
/// `com.docker.network.bridge.host_binding_ipv4`: default host address of published ports.
pub const HOST_BINDING_IPV4: &str = "com.docker.network.bridge.host_binding_ipv4";
/// `com.docker.network.bridge.inhibit_ipv4`: do not put the IPv4 gateway address on the bridge.
pub const INHIBIT_IPV4: &str = "com.docker.network.bridge.inhibit_ipv4";
/// `com.docker.network.driver.mtu`: MTU of the bridge and its veths.
pub const MTU: &str = "com.docker.network.driver.mtu";
/// `com.docker.network.host_ipv4`: SNAT outbound IPv4 traffic to this host address.
pub const HOST_IPV4: &str = "com.docker.network.host_ipv4";
/// `com.docker.network.host_ipv6`: SNAT outbound IPv6 traffic to this host address.
pub const HOST_IPV6: &str = "com.docker.network.host_ipv6";

/// `berth.bridge.mcast_snooping`: IGMP/MLD snooping on the bridge (berth's own key; default
/// false). Docker leaves the kernel's default (on); berth turns it off, see [`BridgeOptions`].
pub const MCAST_SNOOPING: &str = "berth.bridge.mcast_snooping";

/// `berth.bridge.existing`: the bridge [`BRIDGE_NAME`] names is one the user made and keeps
/// (berth's own key; default false; needs [`BRIDGE_NAME`]). berth uses it as it is: it never
/// creates, marks, reconfigures or deletes it, and removes from it only the addresses it added
/// itself. A network with this option fails when the bridge does not exist. The default
/// `bridge` network on a bridge given with dockerd's `--bridge`/`-b` carries it.
pub const EXISTING_BRIDGE: &str = "berth.bridge.existing";

/// Daemon-wide defaults the options fall back to (dockerd's `--icc`, `--ip-masq`, `--mtu`, `--ip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeDefaults {
    /// Default for `enable_icc`.
    pub icc: bool,
    /// Default for `enable_ip_masquerade`.
    pub ip_masquerade: bool,
    /// Default MTU (None: the kernel's, 1500).
    pub mtu: Option<u32>,
    /// Default host address for published ports.
    pub host_binding_ipv4: IpAddr,
}

impl Default for BridgeDefaults {
    fn default() -> Self {
        BridgeDefaults {
            icc: true,
            ip_masquerade: true,
            mtu: None,
            host_binding_ipv4: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }
}

/// A bridge network's options, after parsing and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeOptions {
    /// The bridge device's name (None: `br-` and the first 12 hex digits of the network id).
    pub bridge_name: Option<String>,
    /// This is the default `bridge` network.
    pub default_bridge: bool,
    /// The bridge is the user's, to be used as it is (see [`EXISTING_BRIDGE`]).
    pub existing_bridge: bool,
    /// Inter-container communication.
    pub enable_icc: bool,
    /// Masquerade outbound traffic.
    pub enable_ip_masquerade: bool,
    /// Default host address of published ports.
    pub host_binding_ipv4: IpAddr,
    /// Keep the IPv4 gateway address off the bridge (an outside router is the gateway).
    pub inhibit_ipv4: bool,
    /// MTU of the bridge and its veths.
    pub mtu: Option<u32>,
    /// SNAT source for outbound IPv4.
    pub host_ipv4: Option<Ipv4Addr>,
    /// SNAT source for outbound IPv6.
    pub host_ipv6: Option<Ipv6Addr>,
    /// IGMP/MLD snooping on a bridge berth makes. Off by default: a container network has no
    /// multicast querier, and without one the kernel floods multicast to every port anyway, so
    /// snooping only adds cost (each port that comes up resets two multicast timers of every
    /// other port of the bridge, a pass that grows with the network) and the NDP/MLD failures
    /// snooping is known for on bridges without a querier. Off, multicast and IPv6 neighbour
    /// discovery reach every port, as broadcast does.
    pub mcast_snooping: bool,
}

impl BridgeOptions {
    /// Parses Docker's keys; unknown keys and bad values are errors that name the key.
    pub fn parse(raw: &RawOptions, defaults: &BridgeDefaults) -> Result<BridgeOptions> {
        let mut r = OptionReader::new("bridge", raw);
        let bridge_name = r.string(BRIDGE_NAME).map(str::to_owned);
        if let Some(name) = &bridge_name {
            validate_ifname(name).map_err(|e| DriverError::InvalidOption {
                key: BRIDGE_NAME.into(),
                value: name.clone(),
                reason: e.to_string(),
            })?;
        }
        let default_bridge = r.bool(DEFAULT_BRIDGE)?.unwrap_or(false);
        let existing_bridge = r.bool(EXISTING_BRIDGE)?.unwrap_or(false);
        if existing_bridge && bridge_name.is_none() {
            return Err(DriverError::InvalidOption {
                key: EXISTING_BRIDGE.into(),
                value: "true".into(),
                reason: format!("an existing bridge is named with {BRIDGE_NAME}"),
            });
        }
        let enable_icc = r.bool(ENABLE_ICC)?.unwrap_or(defaults.icc);
        let enable_ip_masquerade = r
            .bool(ENABLE_IP_MASQUERADE)?
            .unwrap_or(defaults.ip_masquerade);
        let host_binding_ipv4 = r
            .parse::<IpAddr>(HOST_BINDING_IPV4, "an IP address")?
            .unwrap_or(defaults.host_binding_ipv4);
        let inhibit_ipv4 = r.bool(INHIBIT_IPV4)?.unwrap_or(false);
        let mtu = match r.parse::<u32>(MTU, "an MTU (a whole number, 68 to 65535)")? {
            Some(m) if !(68..=65535).contains(&m) => {
                return Err(DriverError::InvalidOption {
                    key: MTU.into(),
                    value: m.to_string(),
                    reason: "the MTU must be between 68 and 65535".into(),
                });
            }
            Some(m) => Some(m),
            None => defaults.mtu,
        };
        let host_ipv4 = r.parse::<Ipv4Addr>(HOST_IPV4, "an IPv4 address")?;
        let host_ipv6 = r.parse::<Ipv6Addr>(HOST_IPV6, "an IPv6 address")?;
        let mcast_snooping = r.bool(MCAST_SNOOPING)?.unwrap_or(false);
        r.finish()?;
        Ok(BridgeOptions {
            bridge_name,
            default_bridge,
            existing_bridge,
            enable_icc,
            enable_ip_masquerade,
            host_binding_ipv4,
            inhibit_ipv4,
            mtu,
            host_ipv4,
            host_ipv6,
            mcast_snooping,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawOptions {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_apply_and_options_override() {
        let d = BridgeDefaults {
            icc: false,
            mtu: Some(1400),
            ..Default::default()
        };
        let o = BridgeOptions::parse(&RawOptions::new(), &d).unwrap();
        assert!(!o.enable_icc && o.enable_ip_masquerade && o.mtu == Some(1400));
        assert!(!o.mcast_snooping, "snooping is off unless asked for");
        assert!(!o.existing_bridge, "berth's own bridge unless asked for");
        let o = BridgeOptions::parse(
            &raw(&[
                (ENABLE_ICC, "true"),
                (MTU, "9001"),
                (BRIDGE_NAME, "docker0"),
                (DEFAULT_BRIDGE, "true"),
                (HOST_IPV4, "192.0.2.10"),
                (HOST_BINDING_IPV4, "127.0.0.1"),
                (INHIBIT_IPV4, "false"),
                (ENABLE_IP_MASQUERADE, "false"),
                (MCAST_SNOOPING, "true"),
                (EXISTING_BRIDGE, "true"),
            ]),
            &d,
        )
        .unwrap();
        assert!(o.enable_icc && !o.enable_ip_masquerade && o.default_bridge);
        assert!(o.mcast_snooping && o.existing_bridge);
        assert_eq!(o.mtu, Some(9001));
        assert_eq!(o.bridge_name.as_deref(), Some("docker0"));
        assert_eq!(o.host_ipv4, Some(Ipv4Addr::new(192, 0, 2, 10)));
        assert_eq!(o.host_binding_ipv4, IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn bad_options_name_the_key() {
        let d = BridgeDefaults::default();
        for (k, v, needle) in [
            (ENABLE_ICC, "maybe", ENABLE_ICC),
            (MTU, "12", "between 68 and 65535"),
            (MTU, "big", MTU),
            (MCAST_SNOOPING, "sometimes", MCAST_SNOOPING),
            (
                EXISTING_BRIDGE,
                "true",
                "named with com.docker.network.bridge.name",
            ),
            (EXISTING_BRIDGE, "yes", EXISTING_BRIDGE),
            (HOST_IPV4, "::1", HOST_IPV4),
            (BRIDGE_NAME, "a-name-that-is-too-long", "at most 15 bytes"),
            (BRIDGE_NAME, "bad/name", "'/'"),
            (
                "com.docker.network.bridge.enable_icx",
                "true",
                "unknown option",
            ),
        ] {
            let e = BridgeOptions::parse(&raw(&[(k, v)]), &d)
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{k}={v}: {e}");
        }
    }
}

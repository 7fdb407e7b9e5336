//! The ADD result: interfaces, addresses (with their interface's index), routes and DNS, read
//! from any version a runtime caches (`prevResult`) and written in the configuration's version
//! (0.3.x and 0.4.0 carry `ips[].version`; 1.1.0's interface and route attributes are left out
//! of older versions).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::version::CniVersion;

/// A plugin result (the 1.1.0 model; older versions are a subset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CniResult {
    /// Interfaces made or changed, host and container side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses, each naming its interface by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings for the runtime to write into the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
}

/// One interface of a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Its MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The namespace path for a container interface; absent for a host interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// A vhost-user socket path (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
    /// A PCI id (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "pciID")]
    pub pci_id: Option<String>,
}

impl Interface {
    /// A container interface `name` with `mac` in the namespace at `sandbox`.
    pub fn container(name: &str, mac: Option<String>, sandbox: &str) -> Interface {
        Interface {
            name: name.to_owned(),
            mac,
            sandbox: Some(sandbox.to_owned()),
            ..Interface::default()
        }
    }
}

/// One address of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IpConfig {
    /// The address with its prefix length.
    pub address: IpNet,
    /// The gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The index of its interface in `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

impl IpConfig {
    /// An address on the interface at `interface`, with its gateway.
    pub fn new(address: IpNet, gateway: Option<IpAddr>, interface: usize) -> IpConfig {
        IpConfig {
            address,
            gateway,
            interface: Some(interface),
        }
    }
}

/// One route of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Route {
    /// The destination.
    pub dst: IpNet,
    /// The next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// The route's MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The advertised MSS (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    /// The priority (metric) (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// The routing table (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// The scope (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    /// A route to `dst` via `gw`.
    pub fn via(dst: IpNet, gw: IpAddr) -> Route {
        Route {
            dst,
            gw: Some(gw),
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// DNS settings (the spec's well-known `dns` shape).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether it says nothing.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

impl CniResult {
    /// Reads a result of any version berth-cni speaks (the `version` field of older addresses
    /// and unknown keys are ignored); the error says what is wrong.
    pub fn from_value(v: &Value) -> Result<CniResult, String> {
        let r: CniResult = serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            format!("{path}: {}", e.inner())
        })?;
        for (i, ip) in r.ips.iter().enumerate() {
            if ip.interface.is_some_and(|n| n >= r.interfaces.len()) {
                return Err(format!(
                    "ips[{i}].interface {} names no interface (there are {})",
                    ip.interface.unwrap_or_default(),
                    r.interfaces.len()
                ));
            }
        }
        Ok(r)
    }

    /// This result after `prev` (a chain): `prev`'s interfaces, addresses and routes first, this
    /// result's after them (its interface indexes moved along); DNS is this result's when it
    /// has one, else `prev`'s.
    #[must_use]
    pub fn after(self, prev: &CniResult) -> CniResult {
        let shift = prev.interfaces.len();
        let mut out = prev.clone();
        out.interfaces.extend(self.interfaces);
        out.ips.extend(self.ips.into_iter().map(|mut ip| {
            ip.interface = ip.interface.map(|i| i + shift);
            ip
        }));
        out.routes.extend(self.routes);
        if self.dns.is_some() {
            out.dns = self.dns;
        }
        out
    }

    /// The addresses on the interface called `name` in the namespace at `sandbox`, with that
    /// interface (None when the result has no such interface).
    pub fn container_interface(
        &self,
        name: &str,
        sandbox: &str,
    ) -> Option<(&Interface, Vec<&IpConfig>)> {
        let (index, iface) =
            self.interfaces.iter().enumerate().find(|(_, i)| {
                i.name == name && i.sandbox.as_deref().is_some_and(|s| s == sandbox)
            })?;
        let ips = self
            .ips
            .iter()
            .filter(|ip| ip.interface == Some(index))
            .collect();
        Some((iface, ips))
    }

    /// The JSON the runtime reads, in `version`'s format.
    pub fn to_json(&self, version: CniVersion) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("cniVersion".into(), Value::String(version.to_string()));
            // Every version has these two lists, empty or not.
            obj.entry("interfaces")
                .or_insert_with(|| Value::Array(Vec::new()));
            obj.entry("ips").or_insert_with(|| Value::Array(Vec::new()));
            if !version.has_1_1_fields() {
                strip(obj.get_mut("interfaces"), &["mtu", "socketPath", "pciID"]);
                strip(
                    obj.get_mut("routes"),
                    &["mtu", "advmss", "priority", "table", "scope"],
                );
            }
            if version.has_ip_version_field() {
                if let Some(Value::Array(ips)) = obj.get_mut("ips") {
                    for ip in ips.iter_mut().filter_map(Value::as_object_mut) {
                        let six = ip
                            .get("address")
                            .and_then(Value::as_str)
                            .is_some_and(|a| a.contains(':'));
                        ip.insert("version".into(), (if six { "6" } else { "4" }).into());
                    }
                }
            }
        }
        v
    }
}

/// Removes `keys` from every object of the list at `list`.
fn strip(list: Option<&mut Value>, keys: &[&str]) {
    if let Some(Value::Array(items)) = list {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            for k in keys {
                item.remove(*k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![Interface {
                mtu: Some(1500),
                ..Interface::container("eth0", Some("02:00:00:00:00:01".into()), "/run/netns/c")
            }],
            ips: vec![IpConfig::new(
                "10.0.0.2/24".parse().unwrap_or_else(|_| IpNet::default()),
                "10.0.0.1".parse().ok(),
                0,
            )],
            routes: vec![Route {
                priority: Some(5),
                ..Route::via(IpNet::default(), IpAddr::from([10, 0, 0, 1]))
            }],
            dns: Some(Dns {
                nameservers: vec!["10.0.0.1".into()],
                ..Dns::default()
            }),
        }
    }

    #[test]
    fn versions_shape_the_json() {
        let r = sample();
        let v = r.to_json(CniVersion::V1_1_0);
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["interfaces"][0]["mtu"], 1500);
        assert_eq!(v["ips"][0]["interface"], 0);
        assert!(v["ips"][0].get("version").is_none());
        assert_eq!(v["routes"][0]["priority"], 5);
        let v = r.to_json(CniVersion::V1_0_0);
        assert!(v["interfaces"][0].get("mtu").is_none());
        assert!(v["routes"][0].get("priority").is_none());
        let v = r.to_json(CniVersion::V0_4_0);
        assert_eq!(v["ips"][0]["version"], "4");
        assert_eq!(v["cniVersion"], "0.4.0");
    }

    #[test]
    fn round_trips_through_every_version() {
        let r = sample();
        for ver in crate::version::SUPPORTED {
            let back = CniResult::from_value(&r.to_json(ver)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back.ips, r.ips, "{ver}");
            assert_eq!(back.interfaces[0].name, "eth0");
        }
    }

    #[test]
    fn chained_results_keep_indexes_right() {
        let prev = sample();
        let mut mine = sample();
        mine.interfaces[0].name = "net0".into();
        mine.dns = None;
        let all = mine.after(&prev);
        assert_eq!(all.interfaces.len(), 2);
        assert_eq!(all.ips[1].interface, Some(1));
        assert_eq!(all.dns, prev.dns);
        let (iface, ips) = all
            .container_interface("net0", "/run/netns/c")
            .unwrap_or_else(|| panic!("net0"));
        assert_eq!(iface.name, "net0");
        assert_eq!(ips.len(), 1);
        assert!(all.container_interface("net0", "/other").is_none());
    }

    #[test]
    fn bad_results_are_refused() {
        let v = serde_json::json!({"interfaces": [], "ips": [{"address": "10.0.0.2/24", "interface": 3}]});
        assert!(CniResult::from_value(&v).is_err());
        let v = serde_json::json!({"ips": [{"address": "nope"}]});
        let e = CniResult::from_value(&v).err().unwrap_or_default();
        assert!(e.contains("ips[0].address"), "{e}");
    }
}

//! daemon.json: reading it, refusing keys berth does not know (naming the file and the key),
//! and its typed values.

use std::path::{Path, PathBuf};

use berth_ipam::DefaultPool;
use serde_json::Value;

use crate::error::{Error, Result};

/// The daemon.json keys berth knows.
const KNOWN_KEYS: &[&str] = &[
    "hosts",
    "bridge",
    "bip",
    "default-address-pools",
    "iptables",
    "ip6tables",
    "ipv6",
    "fixed-cidr-v6",
    "firewall-backend",
    "mtu",
    "dns",
    "icc",
    "ip-masq",
    "ip-forward",
    "ip",
    "userland-proxy",
    "firewall-heal",
    "data-root",
    "exec-root",
    "netns",
    "log-level",
    "group",
    "cluster-store",
    "cluster-advertise",
    "cluster-store-opts",
];

pub(super) struct FileConfig {
    path: PathBuf,
    map: serde_json::Map<String, Value>,
}

impl FileConfig {
    pub(super) fn read(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: format!("cannot read it: {e}"),
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: format!("not valid JSON: {e}"),
        })?;
        let Value::Object(map) = value else {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: "expected a JSON object such as {\"bip\": \"172.17.0.1/16\"}".into(),
            });
        };
        let unknown: Vec<&String> = map
            .keys()
            .filter(|k| !KNOWN_KEYS.contains(&k.as_str()))
            .collect();
        if !unknown.is_empty() {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: format!(
                    "the following directives don't match any configuration option: {} (known: {})",
                    unknown
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    KNOWN_KEYS.join(", ")
                ),
            });
        }
        Ok(FileConfig {
            path: path.to_path_buf(),
            map,
        })
    }

    pub(super) fn bad(&self, key: &str, want: &str) -> Error {
        Error::Config {
            path: self.path.clone(),
            message: format!(
                "\"{key}\" must be {want} (got {})",
                self.map.get(key).map(Value::to_string).unwrap_or_default()
            ),
        }
    }

    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.bad(key, "true or false")),
        }
    }

    pub(super) fn string(&self, key: &str) -> Result<Option<String>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.bad(key, "a string")),
        }
    }

    /// An object of string values, as `KEY=VALUE` strings (`cluster-store-opts`).
    pub(super) fn string_map(&self, key: &str) -> Result<Vec<String>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(o)) => o
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok(format!("{k}={s}")),
                    _ => Err(self.bad(key, "an object of strings")),
                })
                .collect(),
            Some(_) => Err(self.bad(key, "an object of strings")),
        }
    }

    pub(super) fn strings(&self, key: &str) -> Result<Vec<String>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(self.bad(key, "a list of strings")),
                })
                .collect(),
            Some(_) => Err(self.bad(key, "a list of strings")),
        }
    }

    pub(super) fn u32(&self, key: &str) -> Result<Option<u32>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .map(Some)
                .ok_or_else(|| self.bad(key, "a whole number")),
            Some(_) => Err(self.bad(key, "a whole number")),
        }
    }

    pub(super) fn pools(&self) -> Result<Option<Vec<DefaultPool>>> {
        match self.map.get("default-address-pools") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value::<Vec<DefaultPool>>(v.clone())
                .map(Some)
                .map_err(|e| Error::Config {
                    path: self.path.clone(),
                    message: format!(
                        "\"default-address-pools\" must be a list such as [{{\"base\": \"10.10.0.0/16\", \"size\": 24}}]: {e}"
                    ),
                }),
        }
    }
}

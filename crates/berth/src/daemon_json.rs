//! dockerd's `daemon.json`, shared by berth's daemon and by engines that embed berth: the
//! networking keys, read with their JSON types checked (errors name the file and the key), and
//! applied to a [`Config`] with dockerd's rules (`bip` and `bridge` exclusive, `fixed-cidr-v6`
//! only with `ipv6`, an MTU from 68 to 65535, ...).
//!
//! ```no_run
//! use berth::Config;
//!
//! // An engine's own daemon.json: keys other than the networking ones are its own business.
//! let config = Config::new("/var/lib/my-engine/net", "/run/my-engine/net")
//!     .load_daemon_json("/etc/my-engine/daemon.json")?;
//! # Ok::<(), berth::DaemonJsonError>(())
//! ```
//!
//! berth's daemon merges its flags with the file the way dockerd does: [`DaemonJson::set`] puts
//! each flag under its daemon.json key, [`DaemonJson::merge`] refuses a setting given both ways,
//! and [`DaemonJson::apply`] checks and applies the result.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use berth_firewall::Backend;
use berth_ipam::DefaultPool;
use ipnet::{Ipv4Net, Ipv6Net};
use serde_json::{Map, Value};

use crate::config::{Config, DefaultBridge};

/// The daemon.json keys [`DaemonJson::apply`] reads (dockerd's spelling, plus berth's
/// `firewall-backend`, `firewall-heal` and `netns`).
pub const NETWORK_KEYS: &[&str] = &[
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
];

/// What is wrong with a daemon.json (or with a flag merged into one).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonJsonError {
    /// The file cannot be read, is not JSON, or is not a JSON object.
    #[error("configuration file {}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A key's value has the wrong JSON type.
    #[error("configuration file {}: \"{key}\" must be {want} (got {got})", path.display())]
    Mistyped {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What it must be.
        want: String,
        /// What it is.
        got: String,
    },
    /// Keys the reader does not know (dockerd refuses them too).
    #[error(
        "configuration file {}: the following directives don't match any configuration option: {} (known: {})",
        path.display(),
        keys.join(", "),
        known.join(", ")
    )]
    UnknownKeys {
        /// The file.
        path: PathBuf,
        /// The unknown keys.
        keys: Vec<String>,
        /// The keys the reader knows.
        known: Vec<String>,
    },
    /// A value of the right type that is not valid.
    #[error(
        "invalid {key} {value:?}{}: {why}",
        path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default()
    )]
    Invalid {
        /// The file the value came from (None for a flag).
        path: Option<PathBuf>,
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// Why it is refused, and what would do.
        why: String,
    },
    /// Settings given both as a flag and in the file.
    #[error(
        "the following directives are specified both as a flag and in the configuration file{}: {}",
        path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default(),
        conflicts.join(", ")
    )]
    Conflicts {
        /// The file.
        path: Option<PathBuf>,
        /// `KEY: (from flag: A, from file: B)` for each.
        conflicts: Vec<String>,
    },
}

/// A daemon.json object (or flags in its shape), with where each value came from.
#[derive(Debug, Clone, Default)]
pub struct DaemonJson {
    map: Map<String, Value>,
    /// The file the values came from (None: flags only).
    path: Option<PathBuf>,
    /// Keys that came from flags rather than the file (after [`DaemonJson::merge`]).
    flag_keys: BTreeSet<String>,
}

type Result<T, E = DaemonJsonError> = std::result::Result<T, E>;

impl DaemonJson {
    /// An empty object, to [`DaemonJson::set`] flags into.
    pub fn new() -> DaemonJson {
        DaemonJson::default()
    }

    /// Reads and parses `path`.
    ///
    /// # Errors
    /// [`DaemonJsonError::File`] naming the file when it cannot be read or is not a JSON object.
    pub fn read(path: impl AsRef<Path>) -> Result<DaemonJson> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| DaemonJsonError::File {
            path: path.to_path_buf(),
            message: format!("cannot read it: {e}"),
        })?;
        DaemonJson::parse(&text, path)
    }

    /// Parses `text`, the contents of `path`.
    ///
    /// # Errors
    /// [`DaemonJsonError::File`] when it is not a JSON object.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<DaemonJson> {
        let path = path.as_ref();
        let value: Value = serde_json::from_str(text).map_err(|e| DaemonJsonError::File {
            path: path.to_path_buf(),
            message: format!("not valid JSON: {e}"),
        })?;
        let Value::Object(map) = value else {
            return Err(DaemonJsonError::File {
                path: path.to_path_buf(),
                message: "expected a JSON object such as {\"bip\": \"172.17.0.1/16\"}".into(),
            });
        };
        Ok(DaemonJson {
            map,
            path: Some(path.to_path_buf()),
            flag_keys: BTreeSet::new(),
        })
    }

    /// Sets `key` (a flag, under its daemon.json name).
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.map.insert(key.to_owned(), value.into());
    }

    /// The file the values came from.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Refuses keys outside `known` (dockerd refuses an unknown key in its file).
    ///
    /// # Errors
    /// [`DaemonJsonError::UnknownKeys`] naming them and the known ones.
    pub fn deny_unknown(&self, known: &[&str]) -> Result<()> {
        let keys: Vec<String> = self
            .map
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .cloned()
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        Err(DaemonJsonError::UnknownKeys {
            path: self.path.clone().unwrap_or_default(),
            keys,
            known: known.iter().map(|k| (*k).to_owned()).collect(),
        })
    }

    /// Flags over a file, as dockerd merges them: a setting given both ways is an error (an
    /// empty list counts as not given).
    ///
    /// # Errors
    /// [`DaemonJsonError::Conflicts`] naming every such setting.
    pub fn merge(flags: DaemonJson, file: Option<DaemonJson>) -> Result<DaemonJson> {
        let Some(mut merged) = file else {
            let flag_keys = flags.map.keys().cloned().collect();
            return Ok(DaemonJson { flag_keys, ..flags });
        };
        let given = |v: &Value| !matches!(v, Value::Null) && v != &Value::Array(Vec::new());
        let mut conflicts = Vec::new();
        for (key, flag) in flags.map {
            if !given(&flag) {
                continue;
            }
            if let Some(file) = merged.map.get(&key).filter(|v| given(v)) {
                conflicts.push(format!("{key}: (from flag: {flag}, from file: {file})"));
            }
            merged.flag_keys.insert(key.clone());
            merged.map.insert(key, flag);
        }
        if !conflicts.is_empty() {
            return Err(DaemonJsonError::Conflicts {
                path: merged.path,
                conflicts,
            });
        }
        Ok(merged)
    }

    fn mistyped(&self, key: &str, want: &str) -> DaemonJsonError {
        DaemonJsonError::Mistyped {
            path: self.path.clone().unwrap_or_default(),
            key: key.to_owned(),
            want: want.to_owned(),
            got: self.map.get(key).map(Value::to_string).unwrap_or_default(),
        }
    }

    /// A refused value of `key`, naming the file when it came from one.
    pub fn invalid(&self, key: &str, value: &str, why: impl std::fmt::Display) -> DaemonJsonError {
        DaemonJsonError::Invalid {
            path: self.path.clone().filter(|_| !self.flag_keys.contains(key)),
            key: key.to_owned(),
            value: value.to_owned(),
            why: why.to_string(),
        }
    }

    /// A boolean (`true`/`false`).
    ///
    /// # Errors
    /// [`DaemonJsonError::Mistyped`].
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.mistyped(key, "true or false")),
        }
    }

    /// A string.
    ///
    /// # Errors
    /// [`DaemonJsonError::Mistyped`].
    pub fn string(&self, key: &str) -> Result<Option<String>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.mistyped(key, "a string")),
        }
    }

    /// A list of strings (empty when not given).
    ///
    /// # Errors
    /// [`DaemonJsonError::Mistyped`].
    pub fn strings(&self, key: &str) -> Result<Vec<String>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(self.mistyped(key, "a list of strings")),
                })
                .collect(),
            Some(_) => Err(self.mistyped(key, "a list of strings")),
        }
    }

    /// An object of string values, as `KEY=VALUE` strings (`cluster-store-opts`); a list of
    /// such strings (how flags give it) is taken as is.
    ///
    /// # Errors
    /// [`DaemonJsonError::Mistyped`].
    pub fn string_map(&self, key: &str) -> Result<Vec<String>> {
        match self.map.get(key) {
            Some(Value::Object(o)) => o
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok(format!("{k}={s}")),
                    _ => Err(self.mistyped(key, "an object of strings")),
                })
                .collect(),
            Some(Value::Array(_)) => self.strings(key),
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(_) => Err(self.mistyped(key, "an object of strings")),
        }
    }

    /// A whole number that fits in 32 bits.
    ///
    /// # Errors
    /// [`DaemonJsonError::Mistyped`].
    pub fn u32(&self, key: &str) -> Result<Option<u32>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .map(Some)
                .ok_or_else(|| self.mistyped(key, "a whole number")),
            Some(_) => Err(self.mistyped(key, "a whole number")),
        }
    }

    /// `default-address-pools`.
    ///
    /// # Errors
    /// [`DaemonJsonError::Mistyped`] with an example of the expected shape.
    pub fn pools(&self) -> Result<Option<Vec<DefaultPool>>> {
        let key = "default-address-pools";
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value::<Vec<DefaultPool>>(v.clone())
                .map(Some)
                .map_err(|e| {
                    self.mistyped(
                        key,
                        &format!(
                            "a list such as [{{\"base\": \"10.10.0.0/16\", \"size\": 24}}] ({e})"
                        ),
                    )
                }),
        }
    }

    /// Applies the [`NETWORK_KEYS`] that are set to `config` (the others are left as they
    /// are), and returns notes on settings that were accepted but have no effect.
    ///
    /// # Errors
    /// [`DaemonJsonError::Mistyped`] or [`DaemonJsonError::Invalid`] naming the key.
    pub fn apply(&self, config: &mut Config) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        if let Some(dir) = self.string("data-root")? {
            config.data_root = self.absolute("data-root", &dir)?;
        }
        if let Some(dir) = self.string("exec-root")? {
            config.exec_root = self.absolute("exec-root", &dir)?;
        }
        if let Some(ns) = self.string("netns")? {
            config.host_netns = Some(PathBuf::from(ns));
        }
        let backend = match self.string("firewall-backend")?.as_deref() {
            None => None,
            Some("iptables") => Some(Backend::Iptables),
            Some("nftables") => Some(Backend::Nftables),
            Some(other) => {
                return Err(self.invalid("firewall-backend", other, "use iptables or nftables"));
            }
        };
        match (self.bool("iptables")?, backend) {
            (Some(false), _) => config.firewall = None,
            (_, Some(b)) => config.firewall = Some(b),
            (Some(true), None) if config.firewall.is_none() => {
                config.firewall = Some(Backend::Iptables);
            }
            _ => {}
        }
        let ipv6 = self.bool("ipv6")?;
        let ip6tables = self.bool("ip6tables")?;
        // dockerd's --ipv6 (what fixed-cidr-v6 needs); ip6tables=true also gives IPv6 rules.
        let ipv6_on = ipv6.unwrap_or(config.ipv6);
        if ipv6.is_some() || ip6tables.is_some() {
            config.ipv6 = ipv6_on || ip6tables.unwrap_or(false);
        }
        if ipv6 == Some(true) && ip6tables == Some(false) && config.firewall.is_some() {
            notes.push(
                "ip6tables=false is not supported: with ipv6 on, berth programs IPv6 rules as well"
                    .into(),
            );
        }
        if let Some(pools) = self.pools()? {
            config.default_address_pools = Some(pools);
        }
        let bip = self.string("bip")?;
        if let Some(name) = self.string("bridge")? {
            config.default_bridge = self.default_bridge(name, bip.is_some())?;
        }
        if let Some(b) = bip {
            config.bip = Some(self.bip(&b)?);
        }
        if let Some(v6) = self.string("fixed-cidr-v6")? {
            let net: Ipv6Net = v6.parse().map_err(|e| {
                self.invalid(
                    "fixed-cidr-v6",
                    &v6,
                    format!("{e}; expected e.g. 2001:db8:1::/64"),
                )
            })?;
            if !ipv6_on {
                return Err(self.invalid("fixed-cidr-v6", &v6, "it needs ipv6 to be true as well"));
            }
            config.fixed_cidr_v6 = Some(net.trunc());
        }
        if let Some(m) = self.u32("mtu")? {
            if !(68..=65_535).contains(&m) {
                return Err(self.invalid("mtu", &m.to_string(), "use a value from 68 to 65535"));
            }
            config.mtu = Some(m);
        }
        for (key, field) in [
            ("icc", &mut config.icc),
            ("ip-masq", &mut config.ip_masq),
            ("ip-forward", &mut config.ip_forward),
            ("userland-proxy", &mut config.userland_proxy),
            ("firewall-heal", &mut config.heal_firewall),
        ] {
            if let Some(v) = self.bool(key)? {
                *field = v;
            }
        }
        if let Some(addr) = self.string("ip")? {
            config.default_bind_ip = addr
                .parse()
                .map_err(|_| self.invalid("ip", &addr, "expected an IP address such as 0.0.0.0"))?;
        }
        let dns = self.strings("dns")?;
        if !dns.is_empty() {
            config.dns = dns
                .iter()
                .map(|d| {
                    d.parse::<IpAddr>()
                        .map_err(|_| self.invalid("dns", d, "expected an IP address"))
                })
                .collect::<Result<Vec<_>>>()?;
        }
        Ok(notes)
    }

    fn absolute(&self, key: &str, dir: &str) -> Result<PathBuf> {
        let path = PathBuf::from(dir);
        if !path.is_absolute() {
            return Err(self.invalid(key, dir, "it must be an absolute path"));
        }
        Ok(path)
    }

    /// dockerd's `bridge`: an existing bridge, or `none`; as dockerd, not together with `bip`.
    fn default_bridge(&self, name: String, bip: bool) -> Result<DefaultBridge> {
        if bip {
            return Err(self.invalid(
                "bridge",
                &name,
                "bridge and bip are mutually exclusive: the existing bridge's own address is used",
            ));
        }
        if name == "none" {
            return Ok(DefaultBridge::None);
        }
        berth_netlink::validate_ifname(&name).map_err(|e| self.invalid("bridge", &name, e))?;
        Ok(DefaultBridge::Existing(name))
    }

    fn bip(&self, b: &str) -> Result<Ipv4Net> {
        let net: Ipv4Net = b.parse().map_err(|e| {
            self.invalid(
                "bip",
                b,
                format!("{e}; expected ADDRESS/PREFIX such as 172.17.0.1/16"),
            )
        })?;
        if net.addr() == net.network() {
            return Err(self.invalid(
                "bip",
                b,
                "bip is the bridge's own address (the gateway), not the network address: use e.g. 172.17.0.1/16",
            ));
        }
        Ok(net)
    }
}

impl Config {
    /// Applies the networking keys of a dockerd-style `daemon.json` ([`NETWORK_KEYS`]) over this
    /// configuration. Other keys (an engine's own: `log-driver`, `storage-driver`, ...) are
    /// ignored, so an engine can point berth at the file it already has.
    ///
    /// # Errors
    /// A [`DaemonJsonError`] naming the file, and the key when one is at fault.
    pub fn load_daemon_json(mut self, path: impl AsRef<Path>) -> Result<Config> {
        DaemonJson::read(path)?.apply(&mut self)?;
        Ok(self)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(json: &str) -> DaemonJson {
        DaemonJson::parse(json, "/etc/test/daemon.json").unwrap()
    }

    fn config() -> Config {
        Config::new("/var/lib/t", "/run/t")
    }

    #[test]
    fn applies_dockerd_keys_and_ignores_an_engines_own() {
        let mut c = config();
        let notes = parse(
            r#"{"bip":"10.200.0.1/24","mtu":1400,"icc":false,"firewall-backend":"nftables",
                "default-address-pools":[{"base":"10.210.0.0/16","size":24}],
                "dns":["1.1.1.1"],"log-driver":"journald","ipv6":true,"fixed-cidr-v6":"2001:db8:1::1/64"}"#,
        )
        .apply(&mut c)
        .unwrap();
        assert!(notes.is_empty());
        assert_eq!(c.bip, Some("10.200.0.1/24".parse().unwrap()));
        assert_eq!(c.mtu, Some(1400));
        assert!(!c.icc && c.ip_masq && c.ipv6);
        assert_eq!(c.firewall, Some(Backend::Nftables));
        assert_eq!(c.default_address_pools.as_ref().map(Vec::len), Some(1));
        assert_eq!(c.dns, vec!["1.1.1.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.fixed_cidr_v6, Some("2001:db8:1::/64".parse().unwrap()));
        assert_eq!(c.data_root, PathBuf::from("/var/lib/t"), "untouched");
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let e = DaemonJson::parse("{", "/etc/x.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/etc/x.json") && e.contains("not valid JSON"),
            "{e}"
        );
        let e = DaemonJson::parse("[]", "/etc/x.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected a JSON object"), "{e}");
        let e = parse(r#"{"mtu":"big"}"#).apply(&mut config()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "configuration file /etc/test/daemon.json: \"mtu\" must be a whole number (got \"big\")"
        );
        let e = parse(r#"{"bip":"10.0.0.0/24"}"#)
            .apply(&mut config())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid bip \"10.0.0.0/24\" in /etc/test/daemon.json: bip is the bridge's own address"), "{e}");
        for bad in [
            r#"{"bridge":"br0","bip":"10.0.0.1/24"}"#,
            r#"{"fixed-cidr-v6":"2001:db8::/64"}"#,
            r#"{"mtu":10}"#,
            r#"{"firewall-backend":"pf"}"#,
            r#"{"ip":"nope"}"#,
            r#"{"dns":["8.8.8.8","x"]}"#,
            r#"{"data-root":"relative"}"#,
            r#"{"default-address-pools":[{"base":"10.0.0.0/8"}]}"#,
        ] {
            let e = parse(bad).apply(&mut config());
            assert!(e.is_err(), "{bad} must be refused");
        }
        let e = parse(r#"{"bogus":1,"bip":"10.0.0.1/24"}"#)
            .deny_unknown(NETWORK_KEYS)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bogus") && e.contains("/etc/test/daemon.json"),
            "{e}"
        );
    }

    #[test]
    fn flags_and_file_merge_like_dockerd() {
        let mut flags = DaemonJson::new();
        flags.set("ip-masq", false);
        flags.set("dns", Value::Array(Vec::new()));
        let merged = DaemonJson::merge(flags, Some(parse(r#"{"dns":["1.1.1.1"]}"#))).unwrap();
        let mut c = config();
        merged.apply(&mut c).unwrap();
        assert!(!c.ip_masq);
        assert_eq!(c.dns.len(), 1, "an empty flag list is not given");

        let mut flags = DaemonJson::new();
        flags.set("bip", "10.201.0.1/24");
        let e = DaemonJson::merge(flags, Some(parse(r#"{"bip":"10.200.0.1/24"}"#)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "specified both as a flag and in the configuration file /etc/test/daemon.json: bip"
            ),
            "{e}"
        );

        // A bad flag value is not blamed on the file.
        let mut flags = DaemonJson::new();
        flags.set("mtu", 10);
        let merged = DaemonJson::merge(flags, Some(parse("{}"))).unwrap();
        let e = merged.apply(&mut config()).unwrap_err().to_string();
        assert!(e.starts_with("invalid mtu \"10\": "), "{e}");
    }

    #[test]
    fn load_daemon_json_reads_a_file() {
        let dir = std::env::temp_dir().join(format!("berth-daemon-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("daemon.json");
        std::fs::write(&path, r#"{"bridge":"none","iptables":false}"#).unwrap();
        let c = config().load_daemon_json(&path);
        let _ = std::fs::remove_dir_all(&dir);
        let c = c.unwrap();
        assert_eq!(c.default_bridge, DefaultBridge::None);
        assert_eq!(c.firewall, None);
        let e = config()
            .load_daemon_json("/nonexistent/daemon.json")
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/daemon.json"), "{e}");
    }
}

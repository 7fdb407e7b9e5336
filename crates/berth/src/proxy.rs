//! Docker's client proxy configuration: the `proxies` of the Docker CLI's `config.json`, turned
//! into the proxy variables a container's environment gets (`HTTP_PROXY`/`http_proxy`,
//! `HTTPS_PROXY`/`https_proxy`, `FTP_PROXY`/`ftp_proxy`, `NO_PROXY`/`no_proxy`,
//! `ALL_PROXY`/`all_proxy`), the way `docker run` and `docker create` do it.
//!
//! ```
//! use std::path::Path;
//! use berth::proxy::ClientProxies;
//!
//! let json = r#"{
//!     "auths": {},
//!     "proxies": {
//!         "default": {"httpProxy": "http://proxy.example.com:3128", "noProxy": "*.test.example.com"},
//!         "tcp://docker-daemon1.example.com": {"httpsProxy": "http://other.example.com:3129"}
//!     }
//! }"#;
//! let proxies = ClientProxies::parse(json, Path::new("/home/me/.docker/config.json"))?;
//!
//! // The user's own `--env HTTP_PROXY=...` wins over the configuration; `http_proxy` is still added.
//! let added = proxies.env_for("unix:///run/berth/berth.sock", &["HTTP_PROXY=http://mine:8080"]);
//! assert_eq!(
//!     added,
//!     [
//!         "http_proxy=http://proxy.example.com:3128",
//!         "NO_PROXY=*.test.example.com",
//!         "no_proxy=*.test.example.com",
//!     ]
//! );
//!
//! // A daemon host with an entry of its own gets that entry only: nothing of "default".
//! let added = proxies.env_for("tcp://docker-daemon1.example.com", &[] as &[&str]);
//! assert_eq!(
//!     added,
//!     ["HTTPS_PROXY=http://other.example.com:3129", "https_proxy=http://other.example.com:3129"]
//! );
//! # Ok::<(), berth::proxy::ProxyConfigError>(())
//! ```
//!
//! An engine that wants the whole environment in one call uses [`container_env`]: it finds the
//! directory the way the Docker CLI does ([`client_config_dir`]: `--config DIR`, else
//! `$DOCKER_CONFIG`, else `~/.docker`), reads `config.json` (a missing file means no proxies),
//! and returns the explicit environment followed by the added variables.
//!
//! Docker's rules, kept here:
//! - The entry whose key is exactly the daemon host (`unix:///var/run/docker.sock`,
//!   `tcp://host:2376`, ...) is used *instead of* `"default"`, never merged with it; without one,
//!   `"default"`; without that, nothing.
//! - Each non-empty setting gives both the upper- and the lower-case variable. A variable the
//!   user set explicitly (`KEY=VALUE`, or a bare `KEY`) under that exact name is not added; the
//!   other case of the same variable still is. (Docker counts `--env` only, not `--env-file`; an
//!   engine that wants its env file to win passes those entries in `explicit` too.)
//! - The file is read the way Go's `encoding/json` reads it into the CLI's structures: key names
//!   inside `proxies` entries (and `proxies` itself) match case-insensitively (`HTTPProxy` is
//!   `httpProxy`), the last of several matching keys wins, `null` leaves a setting unset (and
//!   a `null` entry is an empty entry that still hides `"default"`), keys the CLI does not know
//!   inside an entry are ignored (they are listed by [`ClientProxies::ignored_keys`]), other
//!   top-level keys (`auths`, `credsStore`, ...) are not looked at, and an empty file is an empty
//!   configuration.
//!
//! Where berth differs: a file that is not JSON, or a `proxies` part of the wrong JSON type, is a
//! [`ProxyConfigError`] naming the file and the key (the Docker CLI prints a warning and carries
//! on with whatever it decoded), and content after the JSON document is refused (Go's decoder
//! stops reading after the first value).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The name of the client configuration file inside its directory.
pub const CONFIG_FILE_NAME: &str = "config.json";

/// The `proxies` key whose entry applies to every daemon host without an entry of its own.
pub const DEFAULT_ENTRY: &str = "default";

/// The ten variables the configuration can add, in the order [`ClientProxies::env_for`] adds
/// them: each upper-case name followed by its lower-case twin.
pub const PROXY_ENV_NAMES: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// One entry of `proxies`: the five settings, `None` when absent, `null` or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// `httpProxy`: `HTTP_PROXY` and `http_proxy`.
    pub http_proxy: Option<String>,
    /// `httpsProxy`: `HTTPS_PROXY` and `https_proxy`.
    pub https_proxy: Option<String>,
    /// `ftpProxy`: `FTP_PROXY` and `ftp_proxy`.
    pub ftp_proxy: Option<String>,
    /// `noProxy`: `NO_PROXY` and `no_proxy` (comma-separated hosts, domains and ranges).
    pub no_proxy: Option<String>,
    /// `allProxy`: `ALL_PROXY` and `all_proxy`.
    pub all_proxy: Option<String>,
}

impl ProxyConfig {
    /// The settings with their variable names, in [`PROXY_ENV_NAMES`] order.
    fn settings(&self) -> [(&'static str, &'static str, Option<&str>); 5] {
        [
            ("HTTP_PROXY", "http_proxy", self.http_proxy.as_deref()),
            ("HTTPS_PROXY", "https_proxy", self.https_proxy.as_deref()),
            ("FTP_PROXY", "ftp_proxy", self.ftp_proxy.as_deref()),
            ("NO_PROXY", "no_proxy", self.no_proxy.as_deref()),
            ("ALL_PROXY", "all_proxy", self.all_proxy.as_deref()),
        ]
    }

    /// The setting a key of an entry names (matched like Go's `encoding/json`), if any.
    fn slot(&mut self, key: &str) -> Option<&mut Option<String>> {
        [
            ("httpproxy", &mut self.http_proxy),
            ("httpsproxy", &mut self.https_proxy),
            ("ftpproxy", &mut self.ftp_proxy),
            ("noproxy", &mut self.no_proxy),
            ("allproxy", &mut self.all_proxy),
        ]
        .into_iter()
        .find_map(|(name, slot)| folds_to(key, name).then_some(slot))
    }
}

/// The `proxies` of a Docker client configuration: an entry per daemon host, and
/// [`DEFAULT_ENTRY`] for the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientProxies {
    entries: BTreeMap<String, ProxyConfig>,
    ignored_keys: Vec<String>,
}

impl ClientProxies {
    /// Parses the text of a `config.json`; `path` is only used to name the file in errors.
    /// Keys other than `proxies` are not looked at; an empty (or all-whitespace) file is an
    /// empty configuration.
    pub fn parse(json: impl AsRef<[u8]>, path: &Path) -> Result<Self, ProxyConfigError> {
        let json = json.as_ref();
        if json
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            return Ok(Self::default());
        }
        let document: Json =
            serde_json::from_slice(json).map_err(|source| ProxyConfigError::Syntax {
                path: path.to_path_buf(),
                source,
            })?;
        Self::from_document(document, path)
    }

    /// Reads `DIR/config.json` (see [`client_config_dir`] for the directory Docker uses). A
    /// missing file is an empty configuration, like the Docker CLI's. Keys it ignores are logged
    /// as warnings.
    pub fn load(dir: &Path) -> Result<Self, ProxyConfigError> {
        let path = dir.join(CONFIG_FILE_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(ProxyConfigError::Read { path, source }),
        };
        let proxies = Self::parse(bytes, &path)?;
        for key in &proxies.ignored_keys {
            tracing::warn!(file = %path.display(), key = %key, "ignored unknown proxy setting");
        }
        Ok(proxies)
    }

    /// Sets the entry for `host` (a daemon host, or [`DEFAULT_ENTRY`]), returning the one it
    /// replaces.
    pub fn insert(&mut self, host: impl Into<String>, config: ProxyConfig) -> Option<ProxyConfig> {
        self.entries.insert(host.into(), config)
    }

    /// The entry whose key is exactly `host`, if there is one.
    pub fn get(&self, host: &str) -> Option<&ProxyConfig> {
        self.entries.get(host)
    }

    /// The entry that applies to a daemon at `daemon_host`: its own, else [`DEFAULT_ENTRY`].
    pub fn for_host(&self, daemon_host: &str) -> Option<&ProxyConfig> {
        self.entries
            .get(daemon_host)
            .or_else(|| self.entries.get(DEFAULT_ENTRY))
    }

    /// The entries by key, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ProxyConfig)> {
        self.entries
            .iter()
            .map(|(host, config)| (host.as_str(), config))
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys inside entries that are none of the five settings, as key paths
    /// (`proxies.default.https_proxy`), in file order. Docker ignores them, and so does
    /// berth; an engine may warn about them (a misspelt key silently sets nothing).
    pub fn ignored_keys(&self) -> &[String] {
        &self.ignored_keys
    }

    /// The `KEY=VALUE` strings to add to a container's environment for a daemon at
    /// `daemon_host`, given the environment the user set explicitly (`KEY=VALUE` or a bare
    /// `KEY`): every non-empty setting of [`Self::for_host`] under both its names, minus the
    /// names `explicit` sets. In [`PROXY_ENV_NAMES`] order; no name twice.
    pub fn env_for<S: AsRef<str>>(&self, daemon_host: &str, explicit: &[S]) -> Vec<String> {
        let Some(config) = self.for_host(daemon_host) else {
            return Vec::new();
        };
        let set: HashSet<&str> = explicit.iter().map(|e| env_name(e.as_ref())).collect();
        let mut added = Vec::new();
        for (upper, lower, value) in config.settings() {
            let Some(value) = value.filter(|v| !v.is_empty()) else {
                continue;
            };
            for name in [upper, lower] {
                if !set.contains(name) {
                    added.push(format!("{name}={value}"));
                }
            }
        }
        added
    }

    /// The configuration in a parsed document, following Go's `encoding/json` into the CLI's
    /// `ConfigFile`: later keys overwrite earlier ones, a second `proxies` object adds to the
    /// first, `proxies: null` empties it.
    fn from_document(document: Json, path: &Path) -> Result<Self, ProxyConfigError> {
        let wrong =
            |key: String, expected: &'static str, found: &Json| ProxyConfigError::WrongType {
                path: path.to_path_buf(),
                key,
                expected,
                found: found.kind(),
            };
        let top = match document {
            Json::Null => return Ok(Self::default()),
            Json::Object(members) => members,
            other => return Err(wrong(String::new(), "a JSON object", &other)),
        };
        let mut proxies = Self::default();
        for (name, value) in top {
            if !folds_to(&name, "proxies") {
                continue;
            }
            let hosts = match value {
                Json::Null => {
                    proxies.entries.clear();
                    continue;
                }
                Json::Object(hosts) => hosts,
                other => {
                    let expected = "an object of entries (\"default\" or a daemon host)";
                    return Err(wrong(key_segment(&name), expected, &other));
                }
            };
            for (host, entry) in hosts {
                let key = format!("{}.{}", key_segment(&name), key_segment(&host));
                let config = match entry {
                    Json::Null => ProxyConfig::default(),
                    Json::Object(settings) => {
                        parse_entry(settings, &key, path, &mut proxies.ignored_keys)?
                    }
                    other => {
                        let expected = "an object of proxy settings (httpProxy, httpsProxy, \
                                        ftpProxy, noProxy, allProxy)";
                        return Err(wrong(key, expected, &other));
                    }
                };
                proxies.entries.insert(host, config);
            }
        }
        Ok(proxies)
    }
}

impl FromIterator<(String, ProxyConfig)> for ClientProxies {
    fn from_iter<I: IntoIterator<Item = (String, ProxyConfig)>>(entries: I) -> Self {
        Self {
            entries: entries.into_iter().collect(),
            ignored_keys: Vec::new(),
        }
    }
}

/// The settings of one entry (`entry_key` is its key path, for errors and ignored keys).
fn parse_entry(
    settings: Vec<(String, Json)>,
    entry_key: &str,
    path: &Path,
    ignored: &mut Vec<String>,
) -> Result<ProxyConfig, ProxyConfigError> {
    let mut config = ProxyConfig::default();
    for (name, value) in settings {
        let key = format!("{entry_key}.{}", key_segment(&name));
        let Some(slot) = config.slot(&name) else {
            ignored.push(key);
            continue;
        };
        match value {
            Json::Null => {}
            Json::String(s) => *slot = (!s.is_empty()).then_some(s),
            other => {
                return Err(ProxyConfigError::WrongType {
                    path: path.to_path_buf(),
                    key,
                    expected: "a string",
                    found: other.kind(),
                });
            }
        }
    }
    Ok(config)
}

/// The directory the Docker CLI reads its configuration from: `flag` (its `--config`), else
/// `$DOCKER_CONFIG` if set and not empty, else `.docker` in the home directory (`$HOME`, else
/// the user database's entry for the current user). `None` when there is no home directory.
pub fn client_config_dir(flag: Option<&Path>) -> Option<PathBuf> {
    config_dir_from(flag, std::env::var_os("DOCKER_CONFIG"), home_dir)
}

/// [`client_config_dir`] with its inputs given.
fn config_dir_from(
    flag: Option<&Path>,
    docker_config: Option<std::ffi::OsString>,
    home: impl FnOnce() -> Option<PathBuf>,
) -> Option<PathBuf> {
    if let Some(dir) = flag {
        return Some(dir.to_path_buf());
    }
    if let Some(dir) = docker_config.filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    home().map(|home| home.join(".docker"))
}

/// The current user's home directory, the way Docker finds it.
fn home_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(home));
    }
    let user = nix::unistd::User::from_uid(nix::unistd::getuid()).ok()??;
    Some(user.dir).filter(|d| !d.as_os_str().is_empty())
}

/// The environment of a new container: `explicit` (unchanged, first), then what the proxy
/// configuration adds for a daemon at `daemon_host` ([`ClientProxies::env_for`]). The
/// configuration is `config.json` in `config_dir`, or in [`client_config_dir`]`(None)` when
/// `config_dir` is `None` (no home directory either: no proxies).
pub fn container_env<S: AsRef<str>>(
    config_dir: Option<&Path>,
    daemon_host: &str,
    explicit: &[S],
) -> Result<Vec<String>, ProxyConfigError> {
    let dir = config_dir
        .map(Path::to_path_buf)
        .or_else(|| client_config_dir(None));
    let proxies = match dir {
        Some(dir) => ClientProxies::load(&dir)?,
        None => ClientProxies::default(),
    };
    let mut env: Vec<String> = explicit.iter().map(|e| e.as_ref().to_owned()).collect();
    env.extend(proxies.env_for(daemon_host, explicit));
    Ok(env)
}

/// What is wrong with a Docker client configuration file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyConfigError {
    /// The file exists but cannot be read.
    #[error("Docker client configuration {}: cannot read it: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not JSON (the message has the line and column).
    #[error(
        "Docker client configuration {}: not valid JSON: {source} (fix it, or point --config or DOCKER_CONFIG elsewhere)",
        path.display()
    )]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the JSON parser found.
        source: serde_json::Error,
    },
    /// A value of the wrong JSON type on the way to the proxy settings.
    #[error(
        "Docker client configuration {}: {} must be {expected} (got {found})",
        path.display(),
        if key.is_empty() { "the document" } else { key }
    )]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The key path (`proxies."tcp://h".httpProxy`, keys as written in the file); empty for
        /// the document itself.
        key: String,
        /// What the value must be.
        expected: &'static str,
        /// What it is (`a number`, `an array`, ...).
        found: &'static str,
    },
}

impl ProxyConfigError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. } | Self::Syntax { path, .. } | Self::WrongType { path, .. } => {
                path
            }
        }
    }
}

/// The name an environment entry sets: what comes before the first `=`, or all of a bare name.
fn env_name(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(name, _)| name)
}

/// Whether `key` equals `name` (lower-case ASCII) under Go's `encoding/json` key matching, which
/// is Unicode case folding: ASCII case, and `ſ` (U+017F) and `K` (U+212A), which fold to `s` and `k`.
fn folds_to(key: &str, name: &str) -> bool {
    let folded = key.chars().map(|c| match c {
        '\u{017F}' => 's',
        '\u{212A}' => 'k',
        c => c.to_ascii_lowercase(),
    });
    folded.eq(name.chars())
}

/// A key as one segment of a key path: as written when it is a plain word, quoted otherwise.
fn key_segment(key: &str) -> String {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// A JSON value as far as the proxy settings need it: objects keep their keys in file order
/// (duplicates too), strings their text, other values only their kind.
enum Json {
    Null,
    String(String),
    Object(Vec<(String, Json)>),
    Other(&'static str),
}

impl Json {
    /// The value's kind, for errors.
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::String(_) => "a string",
            Json::Object(_) => "an object",
            Json::Other(kind) => kind,
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

/// Builds a [`Json`] from any JSON value.
struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Json, E> {
        Ok(Json::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Json, E> {
        Ok(Json::Other("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Json, E> {
        Ok(Json::Other("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Json, E> {
        Ok(Json::Other("a number"))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Json, E> {
        Ok(Json::String(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Json::Other("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, Json>()? {
            members.push(member);
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests;

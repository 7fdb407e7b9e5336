//! Finding a plugin by name the way dockerd finds legacy plugins: a unix socket
//! `NAME.sock` (or `NAME/NAME.sock`) under the sockets directory, else the first of
//! `NAME.spec`, `NAME/NAME.spec`, `NAME.json`, `NAME/NAME.json` under each spec directory in
//! turn. A `.spec` file holds the plugin's URL (`unix:///path`, `tcp://host:port`); a `.json`
//! file `{"Name", "Addr", "TLSConfig"}`. The directories are [`PluginDirs`], Docker's by default.

use std::fmt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::wire;

/// Where plugins are looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginDirs {
    /// Where plugins put their unix sockets (Docker: `/run/docker/plugins`).
    pub sockets: PathBuf,
    /// Where spec files are looked for, in order (Docker: `/etc/docker/plugins`, then
    /// `/usr/lib/docker/plugins`).
    pub specs: Vec<PathBuf>,
}

impl Default for PluginDirs {
    /// Docker's directories.
    fn default() -> PluginDirs {
        PluginDirs::under(Path::new("/"))
    }
}

impl PluginDirs {
    /// Docker's directories under `root` instead of `/` (`root/run/docker/plugins`,
    /// `root/etc/docker/plugins`, `root/usr/lib/docker/plugins`): for tests and chroots.
    pub fn under(root: &Path) -> PluginDirs {
        PluginDirs {
            sockets: root.join("run/docker/plugins"),
            specs: vec![
                root.join("etc/docker/plugins"),
                root.join("usr/lib/docker/plugins"),
            ],
        }
    }
}

/// How a plugin is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A unix socket (`unix:///run/docker/plugins/NAME.sock`).
    Unix(PathBuf),
    /// A TCP address, plain HTTP (`tcp://host:port` or `http://host:port`).
    Tcp {
        /// The host name or address.
        host: String,
        /// The port.
        port: u16,
    },
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "unix://{}", path.display()),
            Address::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

/// Why an address is refused: `Err((true, ..))` for a kind berth does not speak.
type AddressError = (bool, &'static str);

impl Address {
    /// Reads a plugin URL as a spec file or `Addr` gives it: `unix:///absolute/path`,
    /// `tcp://host:port` or `http://host:port` (a path after the port is ignored, as dockerd
    /// ignores it). `https://` (TLS) is refused as unsupported.
    pub fn parse(url: &str) -> std::result::Result<Address, &'static str> {
        Self::parse_inner(url).map_err(|(_, reason)| reason)
    }

    fn parse_inner(url: &str) -> std::result::Result<Address, AddressError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err((false, "no protocol (write unix:///path or tcp://host:port)"));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "unix" => {
                if !rest.starts_with('/') {
                    return Err((false, "a unix socket path must be absolute (unix:///path)"));
                }
                if rest.len() > 107 {
                    return Err((false, "the socket path is longer than a unix socket allows"));
                }
                Ok(Address::Unix(PathBuf::from(rest)))
            }
            "tcp" | "http" => {
                let authority = rest.split('/').next().unwrap_or_default();
                let (host, port) = match authority.strip_prefix('[') {
                    Some(v6) => {
                        let (host, port) = v6.split_once("]:").ok_or((false, "no port"))?;
                        if host.parse::<std::net::Ipv6Addr>().is_err() {
                            return Err((false, "not an IPv6 address between [ and ]"));
                        }
                        (host, port)
                    }
                    None => {
                        let (host, port) = authority.rsplit_once(':').ok_or((false, "no port"))?;
                        let name_chars = host
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
                        if host.is_empty() {
                            return Err((false, "no host"));
                        }
                        if !name_chars {
                            return Err((
                                false,
                                "not a host name or address (an IPv6 address goes between [ and ])",
                            ));
                        }
                        (host, port)
                    }
                };
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or((false, "the port is not a number from 1 to 65535"))?;
                Ok(Address::Tcp {
                    host: host.to_owned(),
                    port,
                })
            }
            "https" => Err((
                true,
                "TLS plugin addresses are not supported by berth; serve the plugin on a unix socket or plain tcp://",
            )),
            _ => Err((
                true,
                "unknown protocol (berth speaks unix://, tcp:// and http://)",
            )),
        }
    }
}

/// The TLS settings of a `.json` spec (dockerd uses them only for `https://` addresses, which
/// berth refuses; they are kept for callers to see).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// The CA certificate file.
    #[serde(rename = "CAFile")]
    pub ca_file: String,
    /// The client certificate file.
    #[serde(rename = "CertFile")]
    pub cert_file: String,
    /// The client key file.
    #[serde(rename = "KeyFile")]
    pub key_file: String,
    /// Whether the server's certificate is not checked (dockerd sets it when no CA is given).
    #[serde(rename = "InsecureSkipVerify")]
    pub insecure_skip_verify: bool,
}

/// A `.json` spec file's content.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct JsonSpec {
    #[allow(dead_code)]
    name: String,
    addr: String,
    #[serde(rename = "TLSConfig")]
    tls_config: Option<TlsConfig>,
}

/// A plugin found in the plugin directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    /// The plugin's name.
    pub name: String,
    /// How it is reached.
    pub address: Address,
    /// The TLS settings of its `.json` spec, if any.
    pub tls: Option<TlsConfig>,
    /// The socket or spec file it was found by.
    pub source: PathBuf,
}

/// Checks that `name` can be a plugin's name: not empty, no `/`, no NUL, not `.` or `..`.
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.contains('/') || name.contains('\0') {
        Some("it contains '/' or NUL")
    } else if name == "." || name == ".." {
        Some("it names a directory")
    } else if name.len() > 255 {
        Some("it is longer than 255 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            name: name.chars().take(300).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

/// `base/name.ext` and `base/name/name.ext`, as dockerd looks for them.
fn candidates(base: &Path, name: &str, ext: &str) -> [PathBuf; 2] {
    let file = format!("{name}.{ext}");
    [base.join(&file), base.join(name).join(&file)]
}

/// Finds plugin `name` in `dirs` (see the module for the order). Reads the spec file it
/// finds; does not connect.
pub fn locate(name: &str, dirs: &PluginDirs) -> Result<PluginSpec> {
    validate_name(name)?;
    let mut searched = Vec::new();
    for path in candidates(&dirs.sockets, name, "sock") {
        let is_socket = std::fs::metadata(&path).is_ok_and(|m| m.file_type().is_socket());
        if is_socket {
            return Ok(PluginSpec {
                name: name.to_owned(),
                address: Address::Unix(path.clone()),
                tls: None,
                source: path,
            });
        }
        searched.push(path);
    }
    for dir in &dirs.specs {
        let [spec, spec_sub] = candidates(dir, name, "spec");
        let [json, json_sub] = candidates(dir, name, "json");
        for path in [spec, spec_sub, json, json_sub] {
            if std::fs::metadata(&path).is_ok() {
                return read_spec(name, path);
            }
            searched.push(path);
        }
    }
    Err(Error::NotFound {
        name: name.to_owned(),
        searched: searched
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Reads a `.spec` or `.json` file of plugin `name`.
fn read_spec(name: &str, path: PathBuf) -> Result<PluginSpec> {
    let spec_err = |reason: String| Error::Spec {
        name: name.to_owned(),
        path: path.clone(),
        reason,
    };
    let content = std::fs::read(&path).map_err(|e| spec_err(format!("cannot read it: {e}")))?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    let (url, tls) = if is_json {
        let spec: JsonSpec = wire::decode(&content)
            .map_err(|e| spec_err(format!("not a plugin's JSON spec: {e}")))?;
        let tls = spec.tls_config.map(|mut t| {
            if t.ca_file.is_empty() {
                t.insecure_skip_verify = true;
            }
            t
        });
        (spec.addr, tls)
    } else {
        let text = String::from_utf8(content)
            .map_err(|_| spec_err("not text (a plugin URL is expected)".into()))?;
        (text.trim().to_owned(), None)
    };
    let address = Address::parse_inner(&url).map_err(|(unsupported, reason)| {
        if unsupported {
            Error::UnsupportedAddress {
                name: name.to_owned(),
                address: url.chars().take(200).collect(),
                reason,
            }
        } else {
            spec_err(format!(
                "bad plugin address {:?}: {reason}",
                url.chars().take(200).collect::<String>()
            ))
        }
    })?;
    Ok(PluginSpec {
        name: name.to_owned(),
        address,
        tls,
        source: path,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn addresses() {
        let ok = |s: &str| Address::parse(s).unwrap();
        assert_eq!(
            ok("unix:///run/x.sock"),
            Address::Unix("/run/x.sock".into())
        );
        assert_eq!(
            ok("tcp://127.0.0.1:8080/ignored"),
            Address::Tcp {
                host: "127.0.0.1".into(),
                port: 8080
            }
        );
        assert_eq!(ok("http://[::1]:80").to_string(), "tcp://[::1]:80");
        assert_eq!(
            ok("tcp://plugin.local:9").to_string(),
            "tcp://plugin.local:9"
        );
        for bad in [
            "",
            "/run/x.sock",
            "unix://relative.sock",
            "tcp://host",
            "tcp://:80",
            "tcp://h:0",
            "tcp://h:99999",
            "tcp://\u{ae}:81]::80/",
            "tcp://a:b:80",
            "tcp://[zz]:80",
            "tcp://ho st:80",
            "https://h:443",
            "npipe:////./pipe/x",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        validate_name("weave").unwrap();
        validate_name("my-plugin_1.0").unwrap();
        for bad in ["", "a/b", "..", ".", "a\0b"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lookup_order_and_errors() {
        let root = tempfile::tempdir().unwrap();
        let dirs = PluginDirs::under(root.path());
        assert_eq!(
            dirs,
            PluginDirs {
                sockets: root.path().join("run/docker/plugins"),
                specs: vec![
                    root.path().join("etc/docker/plugins"),
                    root.path().join("usr/lib/docker/plugins")
                ],
            }
        );
        assert_eq!(
            PluginDirs::default().sockets,
            Path::new("/run/docker/plugins")
        );
        match locate("ghost", &dirs).unwrap_err() {
            Error::NotFound { name, searched } => {
                assert_eq!(name, "ghost");
                assert_eq!(searched.matches(", ").count(), 9, "{searched}");
                assert!(
                    searched.contains("usr/lib/docker/plugins/ghost/ghost.json"),
                    "{searched}"
                );
            }
            other => panic!("{other:?}"),
        }
        let lib = &dirs.specs[1];
        std::fs::create_dir_all(lib.join("p")).unwrap();
        std::fs::write(
            lib.join("p/p.json"),
            r#"{"name":"p","addr":"tcp://10.0.0.1:7","TLSConfig":{}}"#,
        )
        .unwrap();
        let spec = locate("p", &dirs).unwrap();
        assert_eq!(spec.address.to_string(), "tcp://10.0.0.1:7");
        assert!(spec.tls.unwrap().insecure_skip_verify);
        // /etc comes before /usr/lib, .spec before .json.
        let etc = &dirs.specs[0];
        std::fs::create_dir_all(etc).unwrap();
        std::fs::write(etc.join("p.json"), r#"{"Addr":"unix:///b.sock"}"#).unwrap();
        assert_eq!(
            locate("p", &dirs).unwrap().address.to_string(),
            "unix:///b.sock"
        );
        std::fs::write(etc.join("p.spec"), " unix:///a.sock\n").unwrap();
        assert_eq!(locate("p", &dirs).unwrap().source, etc.join("p.spec"));
        // Bad specs name the file and the reason.
        std::fs::write(etc.join("bad.spec"), "no-scheme").unwrap();
        let e = locate("bad", &dirs).unwrap_err().to_string();
        assert!(e.contains("bad.spec") && e.contains("no protocol"), "{e}");
        std::fs::write(etc.join("tls.spec"), "https://h:443").unwrap();
        assert!(matches!(
            locate("tls", &dirs),
            Err(Error::UnsupportedAddress { .. })
        ));
        std::fs::write(etc.join("j.json"), "{").unwrap();
        let e = locate("j", &dirs).unwrap_err().to_string();
        assert!(e.contains("not a plugin's JSON spec"), "{e}");
        // A regular file named .sock is no socket.
        std::fs::create_dir_all(&dirs.sockets).unwrap();
        std::fs::write(dirs.sockets.join("f.sock"), "").unwrap();
        assert!(matches!(locate("f", &dirs), Err(Error::NotFound { .. })));
    }
}

//! The invocation's parameters from the `CNI_*` environment variables, checked once: the
//! command, the container id, the namespace path, the interface name and `CNI_ARGS`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use berth::MacAddr;

use crate::error::CniError;

/// The command the runtime asks for (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Attach the container to the network.
    Add,
    /// Detach it (idempotent).
    Del,
    /// Verify the attachment against `prevResult`.
    Check,
    /// Remove every attachment of the network not in `cni.dev/valid-attachments` (1.1.0).
    Gc,
    /// Report whether the plugin can serve ADD (1.1.0).
    Status,
    /// Report the versions berth-cni speaks.
    Version,
}

impl Command {
    /// Parses `CNI_COMMAND`'s value.
    pub fn parse(s: &str) -> Result<Command, CniError> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            other => {
                return Err(CniError::env(format!(
                    "CNI_COMMAND {:?} is not one of ADD, DEL, CHECK, GC, STATUS, VERSION",
                    clip(other)
                )));
            }
        })
    }

    /// The name as the runtime writes it.
    pub fn name(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
        }
    }

    /// Whether the command acts on one attachment (and needs `CNI_CONTAINERID` and
    /// `CNI_IFNAME`).
    pub fn is_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

/// What `CNI_ARGS` may carry for berth-cni (the conventions' `IP` and `MAC`); the keys runtimes
/// add for other plugins (`K8S_POD_*`) are accepted and ignored, any other key is refused
/// unless `IgnoreUnknown` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// `IP=`: static addresses (comma-separated), as the `ips` capability.
    pub ips: Vec<IpAddr>,
    /// `MAC=`: the interface's MAC address, as the `mac` capability.
    pub mac: Option<MacAddr>,
}

/// Keys of `CNI_ARGS` that runtimes set for other plugins and berth-cni ignores.
const IGNORED_ARGS: [&str; 5] = [
    "IgnoreUnknown",
    "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

impl CniArgs {
    /// Parses `KEY=VALUE;KEY=VALUE`.
    pub fn parse(s: &str) -> Result<CniArgs, CniError> {
        let mut pairs = BTreeMap::new();
        for part in s.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                CniError::env(format!(
                    "CNI_ARGS: {:?} is not KEY=VALUE (pairs are separated by ';')",
                    clip(part)
                ))
            })?;
            pairs.insert(k, v);
        }
        let ignore_unknown = pairs
            .get("IgnoreUnknown")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"));
        let mut out = CniArgs::default();
        for (k, v) in pairs {
            match k {
                "IP" => {
                    for a in v.split(',').filter(|a| !a.is_empty()) {
                        // An address with a prefix is accepted too (the prefix is the network's).
                        let addr = a.split_once('/').map_or(a, |(a, _)| a);
                        out.ips.push(addr.parse().map_err(|_| {
                            CniError::env(format!("CNI_ARGS: IP={} is not an IP address", clip(a)))
                        })?);
                    }
                }
                "MAC" => {
                    out.mac = Some(v.parse().map_err(|_| {
                        CniError::env(format!("CNI_ARGS: MAC={} is not a MAC address", clip(v)))
                    })?);
                }
                k if IGNORED_ARGS.contains(&k) || ignore_unknown => {}
                k => {
                    return Err(CniError::unsupported(format!(
                        "CNI_ARGS: unknown key {:?} (value {:?}); berth-cni knows IP and MAC (set IgnoreUnknown=1 to ignore others)",
                        clip(k),
                        clip(v)
                    )));
                }
            }
        }
        Ok(out)
    }
}

/// The parameters of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (present for ADD, DEL and CHECK).
    pub container_id: Option<String>,
    /// `CNI_NETNS` (present for ADD and CHECK; DEL may come without it).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME` (present for ADD, DEL and CHECK).
    pub ifname: Option<String>,
    /// `CNI_ARGS`.
    pub args: CniArgs,
    /// `CNI_PATH`, split on `:` (berth-cni delegates to no plugin; kept for completeness).
    pub path: Vec<PathBuf>,
}

impl Invocation {
    /// Reads the `CNI_*` variables from `vars` (the process environment, as UTF-8 pairs; a
    /// variable that is not UTF-8 is reported as invalid by the caller). Errors have code 4 and
    /// name the variable.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Invocation, CniError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in vars {
            if k.as_ref().starts_with("CNI_") {
                env.insert(k.as_ref().to_owned(), v.as_ref().to_owned());
            }
        }
        let get = |k: &str| env.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let command = Command::parse(
            get("CNI_COMMAND").ok_or_else(|| CniError::env("CNI_COMMAND is not set"))?,
        )?;
        let need = |k: &str| {
            get(k).ok_or_else(|| {
                CniError::env(format!("{k} is not set (CNI_COMMAND {})", command.name()))
            })
        };
        let (mut container_id, mut ifname, mut netns) = (None, None, None);
        if command.is_attachment() {
            let id = need("CNI_CONTAINERID")?;
            validate_container_id(id)?;
            container_id = Some(id.to_owned());
            let name = need("CNI_IFNAME")?;
            validate_ifname(name)?;
            ifname = Some(name.to_owned());
            netns = match command {
                Command::Del => get("CNI_NETNS").map(PathBuf::from),
                _ => Some(PathBuf::from(need("CNI_NETNS")?)),
            };
        }
        let args = match get("CNI_ARGS") {
            Some(a) if command.is_attachment() => CniArgs::parse(a)?,
            _ => CniArgs::default(),
        };
        let path = get("CNI_PATH")
            .map(|p| {
                p.split(':')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Invocation {
            command,
            container_id,
            netns,
            ifname,
            args,
            path,
        })
    }

    /// The container id (ADD, DEL and CHECK always have one).
    pub fn container_id(&self) -> &str {
        self.container_id.as_deref().unwrap_or_default()
    }

    /// The interface name (ADD, DEL and CHECK always have one).
    pub fn ifname(&self) -> &str {
        self.ifname.as_deref().unwrap_or_default()
    }
}

/// The spec's rule: not empty, starts with a letter or digit, then letters, digits, `_`, `.`
/// and `-`.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    let mut chars = id.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && id.len() <= 1024;
    if ok {
        Ok(())
    } else {
        Err(CniError::env(format!(
            "CNI_CONTAINERID {:?} is invalid: a letter or digit, then letters, digits, '_', '.' or '-'",
            clip(id)
        )))
    }
}

/// The spec's rule for interface names: not empty, not `.` or `..`, shorter than 16 bytes, no
/// `/`, `:` or whitespace.
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() < 16
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(CniError::env(format!(
            "CNI_IFNAME {:?} is invalid: 1 to 15 bytes, not '.' or '..', without '/', ':' or whitespace",
            clip(name)
        )))
    }
}

/// At most 128 characters of something the caller gave, for a message.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(128).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn inv(vars: &[(&str, &str)]) -> Result<Invocation, CniError> {
        Invocation::from_vars(vars.iter().copied())
    }

    #[test]
    fn add_needs_id_netns_and_ifname() {
        let full = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc123"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
            ("PATH", "/bin"),
        ];
        let i = inv(&full).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(i.command, Command::Add);
        assert_eq!(i.container_id(), "abc123");
        assert_eq!(i.path.len(), 2);
        for missing in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
            let vars: Vec<_> = full
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let e = inv(&vars)
                .err()
                .unwrap_or_else(|| panic!("{missing} missing"));
            assert_eq!(e.code, ErrorCode::InvalidEnvironment);
            assert!(e.msg.contains(missing), "{e}");
        }
    }

    #[test]
    fn del_takes_no_netns() {
        let i = inv(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", ""),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(i.netns, None);
    }

    #[test]
    fn gc_status_and_version_need_nothing_else() {
        for c in ["GC", "STATUS", "VERSION"] {
            assert!(inv(&[("CNI_COMMAND", c)]).is_ok(), "{c}");
        }
        let e = inv(&[("CNI_COMMAND", "FOO")]).err().map(|e| e.code);
        assert_eq!(e, Some(ErrorCode::InvalidEnvironment));
        let e = inv(&[]).err().map(|e| e.msg).unwrap_or_default();
        assert!(e.contains("CNI_COMMAND"), "{e}");
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_container_id("a-b_c.d").is_ok());
        for bad in ["", "-a", "a b", "a/b"] {
            assert!(validate_container_id(bad).is_err(), "{bad:?}");
        }
        assert!(validate_ifname("net1").is_ok());
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "sixteen_chars_xx"] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cni_args() {
        let a = CniArgs::parse("IgnoreUnknown=1;IP=10.0.0.5;MAC=02:00:00:00:00:01;FOO=bar")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            a.ips,
            vec!["10.0.0.5".parse::<IpAddr>().unwrap_or(IpAddr::from([0; 4]))]
        );
        assert!(a.mac.is_some());
        let a = CniArgs::parse("K8S_POD_NAME=x;K8S_POD_NAMESPACE=y").unwrap_or_default();
        assert!(a.ips.is_empty());
        let e = CniArgs::parse("FOO=bar").err().map(|e| e.code);
        assert_eq!(e, Some(ErrorCode::UnsupportedField));
        assert!(CniArgs::parse("IP=nope").is_err());
        assert!(CniArgs::parse("novalue").is_err());
    }
}

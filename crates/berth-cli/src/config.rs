//! `berth daemon`'s settings: flags and a JSON configuration file that reads like dockerd's
//! `daemon.json`, merged the way dockerd merges them (a setting given both ways is an error).

use std::path::PathBuf;

use berth::daemon_json::NETWORK_KEYS;
use berth::{Config, DaemonJson};

use crate::error::{Error, Result};

/// Where the daemon listens when neither `--host` nor `hosts` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/berth/berth.sock";
/// The default `data-root`.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/berth";
/// The default `exec-root`.
pub const DEFAULT_EXEC_ROOT: &str = "/run/berth";
/// The socket's group when neither `--group` nor `group` says otherwise (dockerd's default). When
/// no such group exists, the socket belongs to the daemon's own group and a warning says so.
pub const DEFAULT_SOCKET_GROUP: &str = "docker";
/// The configuration file read when `--config-file` is not given (only if it exists).
pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/daemon.json";

/// The daemon's flags (each `None` when not given on the command line).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DaemonFlags {
    /// The JSON configuration file (keys as in dockerd's daemon.json)
    #[arg(long, value_name = "PATH")]
    pub config_file: Option<PathBuf>,
    /// Where state is kept
    #[arg(long, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// Where sandbox namespaces are mounted
    #[arg(long, value_name = "DIR")]
    pub exec_root: Option<PathBuf>,
    /// Treat this network namespace as the host (e.g. /run/netns/test-host)
    #[arg(long, value_name = "PATH")]
    pub netns: Option<PathBuf>,
    /// An existing bridge for the default network (berth makes docker0 without it), or none
    #[arg(short = 'b', long, value_name = "NAME|none")]
    pub bridge: Option<String>,
    /// The default bridge's gateway address and subnet (e.g. 172.17.0.1/16)
    #[arg(long, value_name = "CIDR")]
    pub bip: Option<String>,
    /// A default address pool, base=CIDR,size=N (repeatable)
    #[arg(long = "default-address-pool", value_name = "base=CIDR,size=N")]
    pub default_address_pools: Vec<String>,
    /// Manage the packet filter (--iptables=false leaves it alone)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub iptables: Option<bool>,
    /// Program IPv6 packet filter rules
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub ip6tables: Option<bool>,
    /// Enable IPv6 networking
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub ipv6: Option<bool>,
    /// The default bridge's IPv6 subnet
    #[arg(long, value_name = "CIDR")]
    pub fixed_cidr_v6: Option<String>,
    /// iptables or nftables
    #[arg(long, value_name = "BACKEND")]
    pub firewall_backend: Option<String>,
    /// Default MTU of bridge networks
    #[arg(long, value_name = "BYTES")]
    pub mtu: Option<u32>,
    /// Default DNS server of sandboxes (repeatable)
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,
    /// Allow traffic between sandboxes on the default bridge
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub icc: Option<bool>,
    /// Masquerade traffic leaving bridge networks
    #[arg(long = "ip-masq", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub ip_masq: Option<bool>,
    /// Turn on IP forwarding in the host namespace
    #[arg(long = "ip-forward", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub ip_forward: Option<bool>,
    /// Default host address of published ports
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// Use a userland proxy for published ports
    #[arg(long = "userland-proxy", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub userland_proxy: Option<bool>,
    /// Repair berth's firewall rules when something outside berth changes them (default true)
    #[arg(long = "firewall-heal", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub firewall_heal: Option<bool>,
    /// Start on the state, remove everything berth made and restore what it changed in the host
    /// namespace (ip_forward, the FORWARD policy, its rules, bridges and mounts), then exit
    #[arg(long)]
    pub teardown: bool,
    /// Log level: error, warn, info, debug or trace
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Group for the unix socket, a name or a numeric gid (default: docker, if that group exists)
    #[arg(short = 'G', long, value_name = "GROUP")]
    pub group: Option<String>,
    /// The cluster store of global-scope (overlay) networks: etcd://HOST:2379[,HOST:2379..][/ROOT]
    #[arg(long, value_name = "URL")]
    pub cluster_store: Option<String>,
    /// This host's underlay address or interface, for the other hosts (IP_OR_IFACE[:PORT])
    #[arg(long, value_name = "ADDR")]
    pub cluster_advertise: Option<String>,
    /// A cluster store option: kv.cacertfile, kv.certfile, kv.keyfile (repeatable)
    #[arg(long = "cluster-store-opt", value_name = "KEY=VALUE")]
    pub cluster_store_opts: Vec<String>,
    /// A Docker network or IPAM plugin to use, found as dockerd finds it
    /// (/run/docker/plugins/NAME.sock, /etc/docker/plugins/NAME.spec|json, ...) and activated
    /// at start; `network create -d NAME` and `--ipam-driver NAME` then use it (repeatable)
    #[arg(long = "network-plugin", value_name = "NAME")]
    pub network_plugins: Vec<String>,
}

/// Everything the daemon needs to start.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// The controller's configuration.
    pub config: Config,
    /// The unix socket path.
    pub socket: PathBuf,
    /// The group that owns the socket, as given (a name, a numeric gid, or empty for the daemon's
    /// own group); [`DEFAULT_SOCKET_GROUP`] when not given.
    pub socket_group: String,
    /// `userland-proxy` as given.
    pub userland_proxy: Option<bool>,
    /// The log level.
    pub log_level: tracing::Level,
    /// Settings that were accepted but cannot take effect: printed as warnings at start.
    pub notes: Vec<String>,
    /// The cluster store and this host's advertise address, when global-scope networks are on.
    pub cluster: Option<crate::cluster::ClusterSettings>,
    /// `--teardown`: remove everything and exit instead of serving.
    pub teardown: bool,
    /// Docker plugins to activate at start and register as network and IPAM drivers.
    pub network_plugins: Vec<String>,
}

/// Parses the host option: `unix:///path` or a plain absolute path.
pub fn parse_host(host: &str) -> Result<PathBuf> {
    let path = host.strip_prefix("unix://").unwrap_or(host);
    if host.contains("://") && !host.starts_with("unix://") {
        return Err(Error::usage(format!(
            "invalid host {host:?}: berth serves and connects only over unix sockets (unix:///path/to/berth.sock)"
        )));
    }
    if path.is_empty() || !path.starts_with('/') {
        return Err(Error::usage(format!(
            "invalid host {host:?}: expected unix:///absolute/path/to/berth.sock"
        )));
    }
    Ok(PathBuf::from(path))
}

/// The daemon.json keys the daemon knows: the controller's ([`berth::daemon_json::NETWORK_KEYS`])
/// and the daemon's own.
const DAEMON_KEYS: &[&str] = &[
    "hosts",
    "log-level",
    "group",
    "cluster-store",
    "cluster-advertise",
    "cluster-store-opts",
    "network-plugins",
];

fn setting_err(key: &str, value: &str, why: impl std::fmt::Display) -> Error {
    Error::usage(format!("invalid {key} {value:?}: {why}"))
}

/// The flags in daemon.json's shape, each under its key (only the ones given).
fn flags_json(host: Option<&str>, flags: &DaemonFlags) -> Result<DaemonJson> {
    let mut j = DaemonJson::new();
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let values: [(&str, Option<serde_json::Value>); 25] = [
        ("hosts", host.map(|h| vec![h.to_owned()]).map(Into::into)),
        ("data-root", path(&flags.data_root).map(Into::into)),
        ("exec-root", path(&flags.exec_root).map(Into::into)),
        ("netns", path(&flags.netns).map(Into::into)),
        ("bridge", flags.bridge.clone().map(Into::into)),
        ("bip", flags.bip.clone().map(Into::into)),
        ("iptables", flags.iptables.map(Into::into)),
        ("ip6tables", flags.ip6tables.map(Into::into)),
        ("ipv6", flags.ipv6.map(Into::into)),
        ("fixed-cidr-v6", flags.fixed_cidr_v6.clone().map(Into::into)),
        (
            "firewall-backend",
            flags.firewall_backend.clone().map(Into::into),
        ),
        ("mtu", flags.mtu.map(Into::into)),
        ("dns", Some(flags.dns.clone().into())),
        ("icc", flags.icc.map(Into::into)),
        ("ip-masq", flags.ip_masq.map(Into::into)),
        ("ip-forward", flags.ip_forward.map(Into::into)),
        ("ip", flags.ip.clone().map(Into::into)),
        ("userland-proxy", flags.userland_proxy.map(Into::into)),
        ("firewall-heal", flags.firewall_heal.map(Into::into)),
        ("log-level", flags.log_level.clone().map(Into::into)),
        ("group", flags.group.clone().map(Into::into)),
        ("cluster-store", flags.cluster_store.clone().map(Into::into)),
        (
            "cluster-advertise",
            flags.cluster_advertise.clone().map(Into::into),
        ),
        (
            "cluster-store-opts",
            Some(flags.cluster_store_opts.clone().into()),
        ),
        (
            "network-plugins",
            Some(flags.network_plugins.clone().into()),
        ),
    ];
    for (key, value) in values {
        if let Some(v) = value {
            j.set(key, v);
        }
    }
    if !flags.default_address_pools.is_empty() {
        let pools = flags
            .default_address_pools
            .iter()
            .map(|p| {
                berth_ipam::parse_default_pool(p)
                    .map_err(|e| setting_err("--default-address-pool", p, e))
            })
            .collect::<Result<Vec<_>>>()?;
        let pools = serde_json::to_value(pools)
            .map_err(|e| Error::usage(format!("--default-address-pool: {e}")))?;
        j.set("default-address-pools", pools);
    }
    Ok(j)
}

/// Resolves flags, the configuration file and defaults into the daemon's settings: the file is
/// read and applied with the library's daemon.json reader ([`berth::DaemonJson`]), after the
/// flags are merged into it the way dockerd merges them.
///
/// # Errors
/// [`Error::DaemonJson`] for an unreadable file, an unknown key, a mistyped or bad value, or a
/// setting given both as a flag and in the file; [`Error::Usage`] for a bad flag of the
/// daemon's own.
pub fn resolve(host: Option<&str>, flags: DaemonFlags) -> Result<DaemonSettings> {
    let file_path = match &flags.config_file {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.exists()),
    };
    let file = match &file_path {
        Some(p) => {
            let file = DaemonJson::read(p)?;
            let known: Vec<&str> = NETWORK_KEYS.iter().chain(DAEMON_KEYS).copied().collect();
            file.deny_unknown(&known)?;
            Some(file)
        }
        None => None,
    };
    let merged = DaemonJson::merge(flags_json(host, &flags)?, file)?;

    let hosts = merged.strings("hosts")?;
    if hosts.len() > 1 {
        return Err(Error::usage(
            "\"hosts\" lists several sockets: berth serves exactly one unix socket",
        ));
    }
    let socket = match hosts.first() {
        Some(h) => parse_host(h)?,
        None => PathBuf::from(DEFAULT_SOCKET),
    };

    let mut config = Config::new(DEFAULT_DATA_ROOT, DEFAULT_EXEC_ROOT);
    // The daemon repairs its rules when something outside berth changes them, unless told not
    // to; and the docker CLI's users name networks and sandboxes by id prefixes.
    config.heal_firewall = true;
    config.id_prefixes = true;
    // berth's default is NAT only (dockerd's userland-proxy=false): clients keep their source
    // address and no process or task runs per port. With the proxy on, only publications NAT
    // cannot carry (an IPv6 host address for an IPv4-only container) are relayed, in-process.
    let notes = merged.apply(&mut config)?;
    let userland_proxy = merged.bool("userland-proxy")?;

    let log_level = match merged
        .string("log-level")?
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("info") => tracing::Level::INFO,
        Some("error") | Some("fatal") => tracing::Level::ERROR,
        Some("warn") | Some("warning") => tracing::Level::WARN,
        Some("debug") => tracing::Level::DEBUG,
        Some("trace") => tracing::Level::TRACE,
        Some(other) => {
            return Err(setting_err(
                "log-level",
                other,
                "use error, warn, info, debug or trace",
            ));
        }
    };
    let socket_group = merged
        .string("group")?
        .unwrap_or_else(|| DEFAULT_SOCKET_GROUP.into());
    let cluster = crate::cluster::parse(
        merged.string("cluster-store")?.as_deref(),
        merged.string("cluster-advertise")?.as_deref(),
        &merged.string_map("cluster-store-opts")?,
    )?;
    Ok(DaemonSettings {
        config,
        socket,
        socket_group,
        userland_proxy,
        log_level,
        notes,
        cluster,
        teardown: flags.teardown,
        network_plugins: merged.strings("network-plugins")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth::FirewallBackend;
    use std::io::Write;
    use std::net::IpAddr;

    fn file(json: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(json.as_bytes()).unwrap();
        f
    }

    #[test]
    fn file_and_flags_merge() {
        let f = file(
            r#"{"bip":"10.200.0.1/24","mtu":1400,"icc":false,"default-address-pools":[{"base":"10.210.0.0/16","size":24}],"firewall-backend":"nftables","data-root":"/tmp/x","dns":["1.1.1.1"]}"#,
        );
        let flags = DaemonFlags {
            config_file: Some(f.path().to_path_buf()),
            ip_masq: Some(false),
            ..Default::default()
        };
        let s = resolve(Some("unix:///tmp/b.sock"), flags).unwrap();
        assert_eq!(s.socket, PathBuf::from("/tmp/b.sock"));
        assert_eq!(s.config.bip, Some("10.200.0.1/24".parse().unwrap()));
        assert_eq!(s.config.mtu, Some(1400));
        assert!(!s.config.icc && !s.config.ip_masq);
        assert_eq!(s.config.firewall, Some(FirewallBackend::Nftables));
        assert_eq!(s.config.data_root, PathBuf::from("/tmp/x"));
        assert_eq!(
            s.config.default_address_pools.as_ref().map(Vec::len),
            Some(1)
        );
        assert_eq!(s.config.dns, vec!["1.1.1.1".parse::<IpAddr>().unwrap()]);
        assert!(s.notes.is_empty(), "{:?}", s.notes);
    }

    #[test]
    fn conflicts_and_bad_values_are_refused() {
        let f = file(r#"{"bip":"10.200.0.1/24"}"#);
        let flags = DaemonFlags {
            config_file: Some(f.path().to_path_buf()),
            bip: Some("10.201.0.1/24".into()),
            ..Default::default()
        };
        let e = resolve(None, flags).unwrap_err().to_string();
        assert!(
            e.contains("specified both as a flag and in the configuration file"),
            "{e}"
        );
        let f = file(r#"{"bogus":1}"#);
        let flags = DaemonFlags {
            config_file: Some(f.path().to_path_buf()),
            ..Default::default()
        };
        let e = resolve(None, flags).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let f = file(r#"{"mtu":"big"}"#);
        let flags = DaemonFlags {
            config_file: Some(f.path().to_path_buf()),
            ..Default::default()
        };
        assert!(resolve(None, flags).is_err());
        for flags in [
            DaemonFlags {
                bip: Some("10.0.0.0/24".into()),
                ..Default::default()
            },
            DaemonFlags {
                firewall_backend: Some("pf".into()),
                ..Default::default()
            },
            DaemonFlags {
                mtu: Some(10),
                ..Default::default()
            },
            DaemonFlags {
                fixed_cidr_v6: Some("2001:db8::/64".into()),
                ..Default::default()
            },
        ] {
            assert!(resolve(Some("/tmp/x.sock"), flags).is_err());
        }
        assert!(resolve(Some("tcp://0.0.0.0:2375"), DaemonFlags::default()).is_err());
        let s = resolve(
            Some("/tmp/x.sock"),
            DaemonFlags {
                iptables: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.config.firewall, None);
    }

    #[test]
    fn socket_group_from_flag_or_file_defaults_to_docker() {
        let s = resolve(Some("/tmp/x.sock"), DaemonFlags::default()).unwrap();
        assert_eq!(s.socket_group, "docker");
        let f = file(r#"{"group":"adm"}"#);
        let flags = DaemonFlags {
            config_file: Some(f.path().to_path_buf()),
            ..Default::default()
        };
        assert_eq!(resolve(None, flags).unwrap().socket_group, "adm");
        let flags = DaemonFlags {
            group: Some("".into()),
            ..Default::default()
        };
        assert_eq!(resolve(None, flags).unwrap().socket_group, "");
        let flags = DaemonFlags {
            config_file: Some(f.path().to_path_buf()),
            group: Some("daemon".into()),
            ..Default::default()
        };
        let e = resolve(None, flags).unwrap_err().to_string();
        assert!(e.contains("group: (from flag"), "{e}");
        let f = file(r#"{"group":4}"#);
        let flags = DaemonFlags {
            config_file: Some(f.path().to_path_buf()),
            ..Default::default()
        };
        let e = resolve(None, flags).unwrap_err().to_string();
        assert!(e.contains("\"group\" must be a string"), "{e}");
    }
}

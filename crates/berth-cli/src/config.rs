//! `berth daemon`'s settings: flags and a JSON configuration file that reads like dockerd's
//! `daemon.json`, merged the way dockerd merges them (a setting given both ways is an error).

use std::net::IpAddr;
use std::path::PathBuf;

use berth::{Config, DefaultBridge, FirewallBackend};
use ipnet::{Ipv4Net, Ipv6Net};

use crate::error::{Error, Result};

mod file;
use file::FileConfig;

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

/// Merges one setting: an error if both the flag and the file give it.
fn pick<T: std::fmt::Debug>(
    key: &str,
    flag: Option<T>,
    file: Option<T>,
    conflicts: &mut Vec<String>,
) -> Option<T> {
    match (flag, file) {
        (Some(a), Some(b)) => {
            conflicts.push(format!("{key}: (from flag: {a:?}, from file: {b:?})"));
            Some(a)
        }
        (a, b) => a.or(b),
    }
}

fn pick_list<T: std::fmt::Debug>(
    key: &str,
    flag: Vec<T>,
    file: Vec<T>,
    conflicts: &mut Vec<String>,
) -> Vec<T> {
    pick(
        key,
        (!flag.is_empty()).then_some(flag),
        (!file.is_empty()).then_some(file),
        conflicts,
    )
    .unwrap_or_default()
}

fn setting_err(key: &str, value: &str, why: impl std::fmt::Display) -> Error {
    Error::usage(format!("invalid {key} {value:?}: {why}"))
}

/// dockerd's `--bridge`/`-b`: an existing bridge (`Existing`), `none`, or berth's own `docker0`
/// when not given; as dockerd, not together with `bip`.
fn default_bridge(bridge: Option<String>, bip: bool) -> Result<DefaultBridge> {
    let Some(name) = bridge else {
        return Ok(DefaultBridge::default());
    };
    if bip {
        return Err(setting_err(
            "bridge",
            &name,
            "bridge and bip are mutually exclusive: the existing bridge's own address is used",
        ));
    }
    if name == "none" {
        return Ok(DefaultBridge::None);
    }
    berth::berth_netlink::validate_ifname(&name).map_err(|e| setting_err("bridge", &name, e))?;
    Ok(DefaultBridge::Existing(name))
}

/// Resolves flags, the configuration file and defaults into the daemon's settings.
///
/// # Errors
/// [`Error::Config`] for an unreadable file, an unknown key or a mistyped value;
/// [`Error::Usage`] for a bad value or a setting given both as a flag and in the file.
pub fn resolve(host: Option<&str>, flags: DaemonFlags) -> Result<DaemonSettings> {
    let file_path = match &flags.config_file {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.exists()),
    };
    let file = match &file_path {
        Some(p) => Some(FileConfig::read(p)?),
        None => None,
    };
    let f = |get: &dyn Fn(&FileConfig) -> Result<Option<String>>| -> Result<Option<String>> {
        match &file {
            Some(fc) => get(fc),
            None => Ok(None),
        }
    };
    let fb = |key: &str| -> Result<Option<bool>> {
        match &file {
            Some(fc) => fc.bool(key),
            None => Ok(None),
        }
    };
    let mut conflicts = Vec::new();

    let hosts_file = match &file {
        Some(fc) => fc.strings("hosts")?,
        None => Vec::new(),
    };
    if hosts_file.len() > 1 {
        return Err(Error::usage(
            "\"hosts\" lists several sockets: berth serves exactly one unix socket",
        ));
    }
    let host = pick(
        "hosts",
        host.map(str::to_owned),
        hosts_file.into_iter().next(),
        &mut conflicts,
    );
    let socket = match host {
        Some(h) => parse_host(&h)?,
        None => PathBuf::from(DEFAULT_SOCKET),
    };

    let data_root = pick(
        "data-root",
        flags.data_root.map(|p| p.display().to_string()),
        f(&|fc| fc.string("data-root"))?,
        &mut conflicts,
    )
    .unwrap_or_else(|| DEFAULT_DATA_ROOT.into());
    let exec_root = pick(
        "exec-root",
        flags.exec_root.map(|p| p.display().to_string()),
        f(&|fc| fc.string("exec-root"))?,
        &mut conflicts,
    )
    .unwrap_or_else(|| DEFAULT_EXEC_ROOT.into());
    let netns = pick(
        "netns",
        flags.netns.map(|p| p.display().to_string()),
        f(&|fc| fc.string("netns"))?,
        &mut conflicts,
    );
    let bridge = pick(
        "bridge",
        flags.bridge,
        f(&|fc| fc.string("bridge"))?,
        &mut conflicts,
    );
    let bip = pick("bip", flags.bip, f(&|fc| fc.string("bip"))?, &mut conflicts);
    let file_pools = match &file {
        Some(fc) => fc.pools()?,
        None => None,
    };
    let flag_pools = if flags.default_address_pools.is_empty() {
        None
    } else {
        Some(
            flags
                .default_address_pools
                .iter()
                .map(|p| {
                    berth_ipam::parse_default_pool(p)
                        .map_err(|e| setting_err("--default-address-pool", p, e))
                })
                .collect::<Result<Vec<_>>>()?,
        )
    };
    let pools = pick(
        "default-address-pools",
        flag_pools,
        file_pools,
        &mut conflicts,
    );
    let iptables = pick("iptables", flags.iptables, fb("iptables")?, &mut conflicts);
    let ip6tables = pick(
        "ip6tables",
        flags.ip6tables,
        fb("ip6tables")?,
        &mut conflicts,
    );
    let ipv6 = pick("ipv6", flags.ipv6, fb("ipv6")?, &mut conflicts);
    let fixed_cidr_v6 = pick(
        "fixed-cidr-v6",
        flags.fixed_cidr_v6,
        f(&|fc| fc.string("fixed-cidr-v6"))?,
        &mut conflicts,
    );
    let backend = pick(
        "firewall-backend",
        flags.firewall_backend,
        f(&|fc| fc.string("firewall-backend"))?,
        &mut conflicts,
    );
    let file_mtu = match &file {
        Some(fc) => fc.u32("mtu")?,
        None => None,
    };
    let mtu = pick("mtu", flags.mtu, file_mtu, &mut conflicts);
    let file_dns = match &file {
        Some(fc) => fc.strings("dns")?,
        None => Vec::new(),
    };
    let dns = pick_list("dns", flags.dns, file_dns, &mut conflicts);
    let icc = pick("icc", flags.icc, fb("icc")?, &mut conflicts);
    let ip_masq = pick("ip-masq", flags.ip_masq, fb("ip-masq")?, &mut conflicts);
    let ip_forward = pick(
        "ip-forward",
        flags.ip_forward,
        fb("ip-forward")?,
        &mut conflicts,
    );
    let ip = pick("ip", flags.ip, f(&|fc| fc.string("ip"))?, &mut conflicts);
    let userland_proxy = pick(
        "userland-proxy",
        flags.userland_proxy,
        fb("userland-proxy")?,
        &mut conflicts,
    );
    let firewall_heal = pick(
        "firewall-heal",
        flags.firewall_heal,
        fb("firewall-heal")?,
        &mut conflicts,
    );
    let cluster_store = pick(
        "cluster-store",
        flags.cluster_store,
        f(&|fc| fc.string("cluster-store"))?,
        &mut conflicts,
    );
    let cluster_advertise = pick(
        "cluster-advertise",
        flags.cluster_advertise,
        f(&|fc| fc.string("cluster-advertise"))?,
        &mut conflicts,
    );
    let file_store_opts = match &file {
        Some(fc) => fc.string_map("cluster-store-opts")?,
        None => Vec::new(),
    };
    let cluster_store_opts = pick_list(
        "cluster-store-opts",
        flags.cluster_store_opts,
        file_store_opts,
        &mut conflicts,
    );
    let log_level = pick(
        "log-level",
        flags.log_level,
        f(&|fc| fc.string("log-level"))?,
        &mut conflicts,
    );
    let socket_group = pick(
        "group",
        flags.group,
        f(&|fc| fc.string("group"))?,
        &mut conflicts,
    )
    .unwrap_or_else(|| DEFAULT_SOCKET_GROUP.into());
    if !conflicts.is_empty() {
        return Err(Error::usage(format!(
            "the following directives are specified both as a flag and in the configuration file{}: {}",
            file_path
                .as_ref()
                .map(|p| format!(" {}", p.display()))
                .unwrap_or_default(),
            conflicts.join(", ")
        )));
    }

    let mut config = Config::new(&data_root, &exec_root);
    if !config.data_root.is_absolute() || !config.exec_root.is_absolute() {
        return Err(Error::usage(format!(
            "data-root {data_root:?} and exec-root {exec_root:?} must be absolute paths"
        )));
    }
    config.host_netns = netns.map(PathBuf::from);
    let mut notes = Vec::new();
    let backend = match backend.as_deref() {
        None | Some("iptables") => FirewallBackend::Iptables,
        Some("nftables") => FirewallBackend::Nftables,
        Some(other) => {
            return Err(setting_err(
                "firewall-backend",
                other,
                "use iptables or nftables",
            ));
        }
    };
    config.firewall = match iptables {
        Some(false) => None,
        _ => Some(backend),
    };
    let ipv6_on = ipv6.unwrap_or(false);
    config.ipv6 = ipv6_on || ip6tables.unwrap_or(false);
    if ipv6_on && ip6tables == Some(false) && config.firewall.is_some() {
        notes.push(
            "ip6tables=false is not supported: with ipv6 on, berth programs IPv6 rules as well"
                .into(),
        );
    }
    config.default_address_pools = pools;
    config.default_bridge = default_bridge(bridge, bip.is_some())?;
    if let Some(b) = bip {
        let net: Ipv4Net = b.parse().map_err(|e| {
            setting_err(
                "bip",
                &b,
                format!("{e}; expected ADDRESS/PREFIX such as 172.17.0.1/16"),
            )
        })?;
        if net.addr() == net.network() {
            return Err(setting_err(
                "bip",
                &b,
                "bip is the bridge's own address (the gateway), not the network address: use e.g. 172.17.0.1/16",
            ));
        }
        config.bip = Some(net);
    }
    if let Some(v6) = fixed_cidr_v6 {
        let net: Ipv6Net = v6.parse().map_err(|e| {
            setting_err(
                "fixed-cidr-v6",
                &v6,
                format!("{e}; expected e.g. 2001:db8:1::/64"),
            )
        })?;
        if !ipv6_on {
            return Err(setting_err(
                "fixed-cidr-v6",
                &v6,
                "it needs ipv6 to be true as well",
            ));
        }
        config.fixed_cidr_v6 = Some(net.trunc());
    }
    if let Some(m) = mtu {
        if !(68..=65_535).contains(&m) {
            return Err(setting_err(
                "mtu",
                &m.to_string(),
                "use a value from 68 to 65535",
            ));
        }
        config.mtu = Some(m);
    }
    if let Some(v) = icc {
        config.icc = v;
    }
    if let Some(v) = ip_masq {
        config.ip_masq = v;
    }
    if let Some(v) = ip_forward {
        config.ip_forward = v;
    }
    if let Some(addr) = ip {
        config.default_bind_ip = addr
            .parse()
            .map_err(|_| setting_err("ip", &addr, "expected an IP address such as 0.0.0.0"))?;
    }
    let dns = dns
        .iter()
        .map(|d| {
            d.parse::<IpAddr>()
                .map_err(|_| setting_err("dns", d, "expected an IP address"))
        })
        .collect::<Result<Vec<_>>>()?;
    config.dns = dns;
    // berth's default is NAT only (dockerd's userland-proxy=false): clients keep their source
    // address and no process or task runs per port. With the proxy on, only publications NAT
    // cannot carry (an IPv6 host address for an IPv4-only container) are relayed, in-process.
    config.userland_proxy = userland_proxy.unwrap_or(false);
    // The daemon repairs its rules when something outside berth changes them, unless told not
    // to.
    config.heal_firewall = firewall_heal.unwrap_or(true);
    // The docker CLI's users name networks and sandboxes by id prefixes.
    config.id_prefixes = true;
    let log_level = match log_level.as_deref().map(str::to_ascii_lowercase).as_deref() {
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
    let teardown = flags.teardown;
    let cluster = crate::cluster::parse(
        cluster_store.as_deref(),
        cluster_advertise.as_deref(),
        &cluster_store_opts,
    )?;
    Ok(DaemonSettings {
        config,
        socket,
        socket_group,
        userland_proxy,
        log_level,
        notes,
        cluster,
        teardown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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

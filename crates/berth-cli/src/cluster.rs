//! The daemon's cluster settings, as Docker 20.10 spells them: `--cluster-store etcd://HOST:PORT[,HOST:PORT..][/ROOT]`,
//! `--cluster-advertise IP_OR_IFACE[:PORT]` and `--cluster-store-opt kv.cacertfile=..` (also the
//! daemon.json keys `cluster-store`, `cluster-advertise`, `cluster-store-opts`); and the start of
//! what they ask for: the etcd store shared by the hosts and the overlay driver.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_netlink::{Handle, Netns};
use berth_overlay::{OverlayConfig, OverlayDriver};
use berth_store::{EtcdConfig, EtcdStore, EtcdTls, KvStore};

use crate::error::{Error, Result};

/// Where global-scope state lives under the etcd key space when the URL names no path.
pub const DEFAULT_CLUSTER_ROOT: &str = "berth/";

/// The cluster settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// The etcd endpoints (`http://HOST:PORT`, or `https://` with TLS files).
    pub endpoints: Vec<String>,
    /// The key root (the URL's path, or [`DEFAULT_CLUSTER_ROOT`]).
    pub root: String,
    /// This host's underlay address, or the interface that holds it.
    pub advertise: Advertise,
    /// TLS files (`kv.cacertfile`, `kv.certfile`, `kv.keyfile`), all three or none.
    pub tls: Option<(PathBuf, PathBuf, PathBuf)>,
    /// `discovery.ttl` (whole seconds, Docker's spelling): how long this host's entries outlive
    /// its last word to the store ([`berth_overlay::DEFAULT_LEASE_TTL`] when not given).
    pub lease_ttl: Option<Duration>,
}

/// `--cluster-advertise`: an address, or an interface whose first address is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advertise {
    /// An address.
    Addr(IpAddr),
    /// An interface of the host namespace.
    Interface(String),
}

/// Checks the three settings together: a store needs an advertise address and the other way
/// round; options need a store. `--cluster-advertise`'s port (Docker's engine API port) has no
/// use in berth and is dropped.
pub fn parse(
    store: Option<&str>,
    advertise: Option<&str>,
    opts: &[String],
) -> Result<Option<ClusterSettings>> {
    let bad =
        |key: &str, value: &str, why: &str| Error::usage(format!("invalid {key} {value:?}: {why}"));
    let (store, advertise) = match (store, advertise) {
        (None, None) if opts.is_empty() => return Ok(None),
        (None, _) => {
            return Err(Error::usage(
                "cluster-advertise and cluster-store-opt need cluster-store (etcd://HOST:2379)",
            ));
        }
        (Some(_), None) => {
            return Err(Error::usage(
                "cluster-store needs cluster-advertise (this host's underlay address or interface)",
            ));
        }
        (Some(s), Some(a)) => (s, a),
    };
    let Some(rest) = store.strip_prefix("etcd://") else {
        return Err(bad(
            "cluster-store",
            store,
            "berth keeps global state in etcd: use etcd://HOST:2379[,HOST:2379...]",
        ));
    };
    let (hosts, root) = match rest.split_once('/') {
        Some((h, p)) if !p.trim_matches('/').is_empty() => (h, format!("{}/", p.trim_matches('/'))),
        Some((h, _)) => (h, DEFAULT_CLUSTER_ROOT.to_owned()),
        None => (rest, DEFAULT_CLUSTER_ROOT.to_owned()),
    };
    let mut tls_files: BTreeMap<&str, PathBuf> = BTreeMap::new();
    let mut lease_ttl = None;
    for o in opts {
        let Some((k, v)) = o.split_once('=') else {
            return Err(bad("cluster-store-opt", o, "expected KEY=VALUE"));
        };
        match k {
            "kv.cacertfile" | "kv.certfile" | "kv.keyfile" if !v.is_empty() => {
                tls_files.insert(k, PathBuf::from(v));
            }
            "kv.cacertfile" | "kv.certfile" | "kv.keyfile" => {
                return Err(bad("cluster-store-opt", o, "the file path is empty"));
            }
            "discovery.ttl" => match v.parse::<u64>() {
                Ok(secs @ 1..=3600) => lease_ttl = Some(Duration::from_secs(secs)),
                _ => {
                    return Err(bad(
                        "cluster-store-opt",
                        o,
                        "discovery.ttl is whole seconds, from 1 to 3600",
                    ));
                }
            },
            _ => {
                return Err(bad(
                    "cluster-store-opt",
                    o,
                    "berth knows kv.cacertfile, kv.certfile, kv.keyfile and discovery.ttl",
                ));
            }
        }
    }
    let tls = match (
        tls_files.remove("kv.cacertfile"),
        tls_files.remove("kv.certfile"),
        tls_files.remove("kv.keyfile"),
    ) {
        (Some(ca), Some(cert), Some(key)) => Some((ca, cert, key)),
        (None, None, None) => None,
        _ => {
            return Err(Error::usage(
                "cluster-store-opt: TLS needs all of kv.cacertfile, kv.certfile and kv.keyfile",
            ));
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoints = Vec::new();
    for h in hosts.split(',') {
        let h = h.trim();
        let ok = h.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !ok {
            return Err(bad("cluster-store", store, "each endpoint is HOST:PORT"));
        }
        endpoints.push(format!("{scheme}://{h}"));
    }
    let advertise = parse_advertise(advertise).ok_or_else(|| {
        bad(
            "cluster-advertise",
            advertise,
            "expected IP or INTERFACE, with an optional :PORT",
        )
    })?;
    Ok(Some(ClusterSettings {
        endpoints,
        root,
        advertise,
        tls,
        lease_ttl,
    }))
}

fn parse_advertise(s: &str) -> Option<Advertise> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(Advertise::Addr(ip));
    }
    // [v6]:port or v4:port or iface:port
    let host = match s.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.0,
        None => match s.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => h,
            _ => s,
        },
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(Advertise::Addr(ip));
    }
    let valid = !host.is_empty()
        && host.len() <= 15
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    valid.then(|| Advertise::Interface(host.to_owned()))
}

/// The etcd store and the overlay driver of a daemon whose host namespace is `host`.
pub(crate) fn start(
    settings: &ClusterSettings,
    host: &Netns,
    netns_dir: PathBuf,
) -> Result<(Arc<dyn KvStore>, Arc<OverlayDriver>)> {
    let fd = host
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::io("duplicating the host namespace's descriptor", e))?;
    let mut config = EtcdConfig::new(settings.endpoints.clone())
        .with_root(settings.root.clone())
        .with_netns(fd);
    if let Some((ca, cert, key)) = &settings.tls {
        config = config.with_tls(EtcdTls::new(ca.clone(), cert.clone(), key.clone()));
    }
    let store: Arc<dyn KvStore> = Arc::new(
        EtcdStore::connect(config).map_err(|e| Error::usage(format!("cluster-store: {e}")))?,
    );
    let advertise = match &settings.advertise {
        Advertise::Addr(a) => *a,
        Advertise::Interface(name) => interface_addr(host, name)?,
    };
    let mut config = OverlayConfig::new(advertise, netns_dir);
    if let Some(ttl) = settings.lease_ttl {
        config = config.lease_ttl(ttl);
    }
    let overlay = OverlayDriver::new(host, store.clone(), config)
        .map_err(|e| Error::usage(format!("cluster-advertise: {e}")))?;
    Ok((store, Arc::new(overlay)))
}

/// The first IPv4 address (else IPv6, not link-local) of an interface of the host.
fn interface_addr(host: &Netns, name: &str) -> Result<IpAddr> {
    let nl = Handle::open(host).map_err(|e| Error::usage(format!("cluster-advertise: {e}")))?;
    let addrs = nl
        .addr_list(name)
        .map_err(|e| Error::usage(format!("cluster-advertise: interface {name}: {e}")))?;
    let pick = addrs
        .iter()
        .map(|a| a.net.addr())
        .find(IpAddr::is_ipv4)
        .or_else(|| {
            addrs.iter().map(|a| a.net.addr()).find(|a| match a {
                IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
                IpAddr::V4(_) => false,
            })
        });
    pick.ok_or_else(|| {
        Error::usage(format!(
            "cluster-advertise: interface {name} has no address to advertise"
        ))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn docker_spellings_parse() {
        let s = parse(
            Some("etcd://10.0.0.1:2379,10.0.0.2:2379"),
            Some("eth0:2376"),
            &[],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            s.endpoints,
            ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(s.root, "berth/");
        assert_eq!(s.advertise, Advertise::Interface("eth0".into()));
        assert_eq!(s.tls, None);
        assert_eq!(s.lease_ttl, None);
        let opts = [
            "discovery.ttl=3".to_owned(),
            "kv.cacertfile=/c/ca.pem".to_owned(),
            "kv.certfile=/c/cert.pem".to_owned(),
            "kv.keyfile=/c/key.pem".to_owned(),
        ];
        let s = parse(
            Some("etcd://h:2379/docker/net"),
            Some("192.0.2.1:2376"),
            &opts,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.endpoints, ["https://h:2379"]);
        assert_eq!(s.root, "docker/net/");
        assert_eq!(s.advertise, Advertise::Addr("192.0.2.1".parse().unwrap()));
        assert!(s.tls.is_some());
        assert_eq!(s.lease_ttl, Some(Duration::from_secs(3)));
        assert_eq!(
            parse_advertise("[2001:db8::1]:2376"),
            Some(Advertise::Addr("2001:db8::1".parse().unwrap()))
        );
        assert_eq!(parse(None, None, &[]).unwrap(), None);
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        for (store, adv, opts, want) in [
            (Some("consul://h:8500"), Some("eth0"), vec![], "etcd"),
            (Some("etcd://h"), Some("eth0"), vec![], "HOST:PORT"),
            (
                Some("etcd://h:2379"),
                None,
                vec![],
                "needs cluster-advertise",
            ),
            (None, Some("eth0"), vec![], "need cluster-store"),
            (
                Some("etcd://h:2379"),
                Some("bad/name"),
                vec![],
                "cluster-advertise",
            ),
            (
                Some("etcd://h:2379"),
                Some("eth0"),
                vec!["kv.path=x"],
                "kv.cacertfile",
            ),
            (
                Some("etcd://h:2379"),
                Some("eth0"),
                vec!["kv.certfile=/x"],
                "all of",
            ),
            (
                Some("etcd://h:2379"),
                Some("eth0"),
                vec!["discovery.ttl=0"],
                "1 to 3600",
            ),
            (
                Some("etcd://h:2379"),
                Some("eth0"),
                vec!["discovery.ttl=10s"],
                "whole seconds",
            ),
        ] {
            let opts: Vec<String> = opts.into_iter().map(String::from).collect();
            let e = parse(store, adv, &opts).unwrap_err().to_string();
            assert!(e.contains(want), "{store:?} {adv:?} {opts:?}: {e}");
        }
    }
}

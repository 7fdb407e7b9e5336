//! The `berth network` verbs (create, ls, inspect, rm, connect, disconnect, prune), and the
//! building of their request bodies from the flags (`--subnet`/`--gateway`/... consolidation,
//! `KEY=VALUE` options, `--filter`).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Value, json};

use super::args::{NetCreate, NetworkCmd};
use super::rows::{network_row, render_with_labels, str_of};
use super::{inspect_many, print, remove_many};
use crate::api::{
    ConfigFromBody, ConnectBody, DisconnectBody, EndpointIpamBody, EndpointSettingsBody, Filters,
    IpamBody, IpamConfigBody, NetworkCreateBody, NetworkCreateResponse, NetworkPruneResponse,
};
use crate::client::{Client, encode_component};
use crate::error::{Error, Result};
use crate::format::natural_cmp;

pub(super) fn network(c: &Client, cmd: NetworkCmd) -> Result<u8> {
    match cmd {
        NetworkCmd::Create(a) => {
            let body = network_create_body(&a)?;
            // An empty answer decodes as `null`: no warning, an empty id.
            let answer: Option<NetworkCreateResponse> = c.post("/networks/create", &body)?;
            let answer = answer.unwrap_or_default();
            if !answer.warning.is_empty() {
                eprintln!("WARNING: {}", answer.warning);
            }
            print(&format!("{}\n", answer.id));
            Ok(0)
        }
        NetworkCmd::Ls(a) => {
            let filters = parse_filter_flags(&a.filter)?;
            let path = if filters.0.is_empty() {
                "/networks".to_owned()
            } else {
                format!("/networks?filters={}", encode_component(&filters.to_json()))
            };
            let mut nets: Vec<Value> = c.get(&path)?;
            nets.sort_by(|x, y| natural_cmp(str_of(x, "Name"), str_of(y, "Name")));
            let format = if a.quiet {
                "{{.ID}}".to_owned()
            } else {
                a.format
                    .filter(|f| !f.is_empty())
                    .unwrap_or_else(|| "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}".into())
            };
            let format = if format == "table" {
                "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}".to_owned()
            } else {
                format
            };
            let rows: Vec<(Value, Value)> = nets
                .iter()
                .map(|n| {
                    (
                        network_row(n, a.no_trunc),
                        n.get("Labels").cloned().unwrap_or(Value::Null),
                    )
                })
                .collect();
            let headers = json!({"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                "IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"});
            print(&render_with_labels(&format, &headers, &rows)?);
            Ok(0)
        }
        NetworkCmd::Inspect(a) => {
            let _ = a.verbose;
            inspect_many(c, "/networks", &a.networks, a.format.as_deref(), |n| {
                format!("network {n} not found")
            })
        }
        NetworkCmd::Rm(a) => Ok(remove_many(c, "/networks", &a.networks, a.force)),
        NetworkCmd::Connect(a) => {
            let body = ConnectBody {
                container: a.container,
                endpoint_config: EndpointSettingsBody {
                    ipam_config: EndpointIpamBody {
                        ipv4_address: a.ip.unwrap_or_default(),
                        ipv6_address: a.ip6.unwrap_or_default(),
                        link_local_ips: a.link_local_ip,
                    },
                    links: a.link,
                    aliases: a.alias,
                    mac_address: String::new(),
                    driver_opts: parse_kv(&a.driver_opt, "--driver-opt")?,
                },
            };
            let _: Value = c.post(
                &format!("/networks/{}/connect", encode_component(&a.network)),
                &body,
            )?;
            Ok(0)
        }
        NetworkCmd::Disconnect(a) => {
            let body = DisconnectBody {
                container: a.container,
                force: a.force,
            };
            let _: Value = c.post(
                &format!("/networks/{}/disconnect", encode_component(&a.network)),
                &body,
            )?;
            Ok(0)
        }
        NetworkCmd::Prune(a) => {
            let filters = parse_filter_flags(&a.filter)?;
            if !a.force {
                print(
                    "WARNING! This will remove all custom networks not used by at least one sandbox.\nAre you sure you want to continue? [y/N] ",
                );
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
                if !matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                    return Ok(0);
                }
            }
            let path = if filters.0.is_empty() {
                "/networks/prune".to_owned()
            } else {
                format!(
                    "/networks/prune?filters={}",
                    encode_component(&filters.to_json())
                )
            };
            let answer = c.call("POST", &path, None)?;
            // An answer that does not decode reports nothing deleted.
            let report: NetworkPruneResponse = serde_json::from_slice(&answer).unwrap_or_default();
            let deleted = report.networks_deleted.unwrap_or_default();
            if !deleted.is_empty() {
                let mut out = String::from("Deleted Networks:\n");
                for d in &deleted {
                    out.push_str(d);
                    out.push('\n');
                }
                out.push('\n');
                print(&out);
            }
            Ok(0)
        }
    }
}

fn parse_kv(items: &[String], flag: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for i in items {
        let (k, v) = i.split_once('=').unwrap_or((i.as_str(), ""));
        if k.is_empty() {
            return Err(Error::usage(format!(
                "invalid argument {i:?} for \"{flag}\" flag: expected KEY=VALUE"
            )));
        }
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

fn parse_filter_flags(items: &[String]) -> Result<Filters> {
    let mut f = Filters::default();
    for i in items {
        let Some((k, v)) = i.split_once('=') else {
            return Err(Error::usage(format!(
                "invalid argument {i:?} for \"-f, --filter\" flag: bad format of filter (expected name=value)"
            )));
        };
        f.0.entry(k.trim().to_ascii_lowercase())
            .or_default()
            .insert(v.trim().to_owned());
    }
    Ok(f)
}

/// The docker CLI's `consolidateIpam`: each `--ip-range`, `--gateway` and `--aux-address` goes to
/// the `--subnet` that contains it.
fn network_create_body(a: &NetCreate) -> Result<NetworkCreateBody> {
    let usage = |m: String| Error::usage(m);
    if a.subnet.is_empty()
        && (!a.ip_range.is_empty() || !a.gateway.is_empty() || !a.aux_address.is_empty())
    {
        return Err(usage(
            "every ip-range or gateway must have a corresponding subnet".into(),
        ));
    }
    let mut pools: Vec<(IpNet, IpamConfigBody)> = Vec::new();
    for s in &a.subnet {
        let net: IpNet = berth_ipam::parse_subnet(s).map_err(|e| usage(e.to_string()))?;
        if pools
            .iter()
            .any(|(p, _)| p.contains(&net.network()) || net.contains(&p.network()))
        {
            return Err(usage(format!(
                "multiple overlapping subnet configuration is not supported ({s})"
            )));
        }
        let pool = IpamConfigBody {
            subnet: s.clone(),
            ..IpamConfigBody::default()
        };
        pools.push((net, pool));
    }
    // A parsed range or gateway is never empty, so an empty field means "not set yet".
    for r in &a.ip_range {
        let range: IpNet = berth_ipam::parse_ip_range(r).map_err(|e| usage(e.to_string()))?;
        let pool = pools
            .iter_mut()
            .find(|(p, _)| p.contains(&range.network()))
            .ok_or_else(|| usage(format!("no matching subnet for range {r}")))?;
        if !pool.1.ip_range.is_empty() {
            return Err(usage(format!(
                "cannot configure multiple ranges ({r}, {}) on the same subnet ({})",
                pool.1.ip_range, pool.0
            )));
        }
        pool.1.ip_range.clone_from(r);
    }
    for g in &a.gateway {
        let gw: IpAddr = berth_ipam::parse_gateway(g).map_err(|e| usage(e.to_string()))?;
        let pool = pools
            .iter_mut()
            .find(|(p, _)| p.contains(&gw))
            .ok_or_else(|| usage(format!("no matching subnet for gateway {g}")))?;
        if !pool.1.gateway.is_empty() {
            return Err(usage(format!(
                "cannot configure multiple gateways ({g}, {}) for the same subnet ({})",
                pool.1.gateway, pool.0
            )));
        }
        pool.1.gateway.clone_from(g);
    }
    for x in &a.aux_address {
        let (name, addr) = berth_ipam::parse_aux_address(x).map_err(|e| usage(e.to_string()))?;
        let pool = pools
            .iter_mut()
            .find(|(p, _)| p.contains(&addr))
            .ok_or_else(|| usage(format!("no matching subnet for aux-address {addr}")))?;
        pool.1.auxiliary_addresses.insert(name, addr.to_string());
    }
    Ok(NetworkCreateBody {
        name: a.name.clone(),
        check_duplicate: true,
        driver: a.driver.clone(),
        scope: a.scope.clone().unwrap_or_default(),
        enable_ipv6: a.ipv6,
        ipam: IpamBody {
            driver: a.ipam_driver.clone(),
            config: pools.into_iter().map(|(_, pool)| pool).collect(),
            options: parse_kv(&a.ipam_opt, "--ipam-opt")?,
        },
        internal: a.internal,
        attachable: a.attachable,
        ingress: false,
        config_only: false,
        config_from: ConfigFromBody::default(),
        options: parse_kv(&a.opt, "--opt")?,
        labels: parse_kv(&a.label, "--label")?,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn ipam_consolidation() {
        let a = NetCreate::try_parse_from([
            "create",
            "--subnet",
            "10.5.0.0/16",
            "--subnet",
            "10.6.0.0/16",
            "--gateway",
            "10.6.0.1",
            "--ip-range",
            "10.5.1.0/24",
            "--aux-address",
            "r=10.5.0.2",
            "n",
        ]);
        let a = match a {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        let b = network_create_body(&a).unwrap();
        assert_eq!(b.ipam.config[0].ip_range, "10.5.1.0/24");
        assert_eq!(b.ipam.config[1].gateway, "10.6.0.1");
        assert_eq!(b.ipam.config[0].auxiliary_addresses["r"], "10.5.0.2");
        let a = NetCreate::try_parse_from(["create", "--gateway", "10.6.0.1", "n"]).unwrap();
        assert!(network_create_body(&a).is_err());
    }

    /// What the client sends: the JSON shapes the daemon reads (fields the client does not set,
    /// such as `Ingress` or `MacAddress`, are left out; optional pool fields only when given).
    #[test]
    fn request_bodies_on_the_wire() {
        let a = NetCreate::try_parse_from([
            "create",
            "--subnet",
            "10.5.0.0/16",
            "--subnet",
            "10.6.0.0/16",
            "--gateway",
            "10.6.0.1",
            "--ip-range",
            "10.5.1.0/24",
            "--aux-address",
            "r=10.5.0.2",
            "-o",
            "k=v",
            "n",
        ])
        .unwrap();
        let body = serde_json::to_value(network_create_body(&a).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "Name": "n", "CheckDuplicate": true, "Driver": "bridge", "Scope": "",
                "EnableIPv6": false, "Internal": false, "Attachable": false,
                "IPAM": {"Driver": "default", "Options": {}, "Config": [
                    {"Subnet": "10.5.0.0/16", "IPRange": "10.5.1.0/24",
                        "AuxiliaryAddresses": {"r": "10.5.0.2"}},
                    {"Subnet": "10.6.0.0/16", "Gateway": "10.6.0.1"},
                ]},
                "Options": {"k": "v"}, "Labels": {},
            })
        );
        let connect = ConnectBody {
            container: "web".into(),
            ..ConnectBody::default()
        };
        assert_eq!(
            serde_json::to_value(connect).unwrap(),
            json!({"Container": "web", "EndpointConfig": {
                "IPAMConfig": {"IPv4Address": "", "IPv6Address": "", "LinkLocalIPs": []},
                "Links": [], "Aliases": [], "DriverOpts": {},
            }})
        );
        let disconnect = DisconnectBody {
            container: "web".into(),
            force: true,
        };
        assert_eq!(
            serde_json::to_value(disconnect).unwrap(),
            json!({"Container": "web", "Force": true})
        );
    }

    #[derive(Debug, Parser)]
    struct Wrap {
        #[command(flatten)]
        a: NetCreate,
    }

    impl NetCreate {
        fn try_parse_from<const N: usize>(
            args: [&str; N],
        ) -> std::result::Result<NetCreate, clap::Error> {
            Wrap::try_parse_from(args).map(|w| w.a)
        }
    }
}

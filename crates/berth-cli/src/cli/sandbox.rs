//! The `berth sandbox` verbs (create, ls, inspect, rm, exec, rename), and the parsing of
//! docker's `-p`/`--expose` port syntax into the create request.

use std::collections::BTreeMap;
use std::ffi::OsString;

use serde_json::{Value, json};

use super::args::SandboxCmd;
use super::rows::{render_with_labels, sandbox_row, str_of};
use super::{inspect_many, print, remove_many};
use crate::api::{PortBindingBody, SandboxCreateBody, SandboxCreateResponse, SandboxEndpointBody};
use crate::client::{Client, encode_component};
use crate::error::{Error, Result};
use crate::format::natural_cmp;

/// Docker's `-p` syntax (`[IP:][HOST_PORT:]PORT[/PROTO]`, IPv6 addresses in brackets) into the
/// API's port bindings (`"80/tcp": [{"HostIp": "...", "HostPort": "..."}]`).
pub(crate) fn parse_publish(spec: &str) -> Result<(String, PortBindingBody)> {
    let p = spec.parse::<berth::PortSpec>().map_err(|e| {
        Error::usage(format!(
            "invalid argument {spec:?} for \"-p, --publish\" flag: {e}"
        ))
    })?;
    Ok((
        format!("{}/{}", p.container_ports, p.proto),
        PortBindingBody {
            host_ip: p.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            host_port: p.host_ports.map(|h| h.to_string()).unwrap_or_default(),
        },
    ))
}

/// The environment of a new sandbox: `--env` (a bare `KEY` takes this process's value, and is
/// left out when unset), then the proxy variables of the client configuration in `config_dir`
/// (docker's `--config`; default `$DOCKER_CONFIG` or `~/.docker`) for this daemon, as the
/// docker CLI gives containers: a name given with `--env` (bare or not) is not added.
fn sandbox_env(
    c: &Client,
    config_dir: Option<&std::path::Path>,
    flags: &[String],
) -> Result<Vec<String>> {
    use berth::proxy::{ClientProxies, client_config_dir};
    let proxies = match config_dir
        .map(std::path::Path::to_path_buf)
        .or_else(|| client_config_dir(None))
    {
        Some(dir) => ClientProxies::load(&dir).map_err(|e| Error::usage(e.to_string()))?,
        None => ClientProxies::default(),
    };
    for key in proxies.ignored_keys() {
        eprintln!("WARNING: ignoring unknown key {key} of the client configuration's proxies");
    }
    let mut env: Vec<String> = flags
        .iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e.clone())
            } else {
                std::env::var(e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect();
    env.extend(proxies.env_for(&c.host_url(), flags));
    Ok(env)
}

pub(super) fn sandbox(
    c: &Client,
    cmd: SandboxCmd,
    config_dir: Option<&std::path::Path>,
) -> Result<u8> {
    match cmd {
        SandboxCmd::Create(a) => {
            let mut port_bindings: BTreeMap<String, Vec<PortBindingBody>> = BTreeMap::new();
            for p in &a.publish {
                let (key, b) = parse_publish(p)?;
                port_bindings.entry(key).or_default().push(b);
            }
            let mut exposed_ports = BTreeMap::new();
            for e in &a.expose {
                let port: berth::ExposedPort = e.parse().map_err(|err: berth_portmap::Error| {
                    Error::usage(format!(
                        "invalid argument {e:?} for \"--expose\" flag: {err}"
                    ))
                })?;
                exposed_ports.insert(
                    format!("{}/{}", port.ports, port.proto),
                    serde_json::Map::new(),
                );
            }
            let endpoint = SandboxEndpointBody {
                ipv4_address: a.ip.unwrap_or_default(),
                ipv6_address: a.ip6.unwrap_or_default(),
                aliases: a.alias,
                links: a.link,
                mac_address: a.mac_address.unwrap_or_default(),
            };
            let env = sandbox_env(c, config_dir, &a.env)?;
            let body = SandboxCreateBody {
                env,
                name: a.name,
                hostname: a.hostname.unwrap_or_default(),
                domainname: a.domainname.unwrap_or_default(),
                netns_path: a.netns.unwrap_or_default(),
                network_mode: a.network.unwrap_or_default(),
                endpoint_config: Some(endpoint),
                port_bindings,
                exposed_ports,
                publish_all_ports: a.publish_all,
                dns: a.dns,
                dns_search: a.dns_search,
                dns_options: a.dns_option,
                extra_hosts: a.add_host,
            };
            // An empty answer decodes as `null`: an empty id.
            let answer: Option<SandboxCreateResponse> = c.post("/sandboxes/create", &body)?;
            print(&format!("{}\n", answer.unwrap_or_default().id));
            Ok(0)
        }
        SandboxCmd::Ls(a) => {
            let mut list: Vec<Value> = c.get("/sandboxes")?;
            list.sort_by(|x, y| natural_cmp(str_of(x, "Name"), str_of(y, "Name")));
            let default = "table {{.ID}}\t{{.Name}}\t{{.Networks}}\t{{.Ports}}\t{{.Status}}";
            let format = if a.quiet {
                "{{.ID}}".to_owned()
            } else {
                match a.format.filter(|f| !f.is_empty()) {
                    None => default.to_owned(),
                    Some(f) if f == "table" => default.to_owned(),
                    Some(f) => f,
                }
            };
            let rows: Vec<(Value, Value)> = list
                .iter()
                .map(|s| (sandbox_row(s, a.no_trunc), Value::Null))
                .collect();
            let headers = json!({"ID": "SANDBOX ID", "Name": "NAME", "Networks": "NETWORKS",
                "Ports": "PORTS", "CreatedAt": "CREATED AT", "Namespace": "NAMESPACE",
                "IPAddresses": "IP ADDRESSES", "Status": "STATUS"});
            print(&render_with_labels(&format, &headers, &rows)?);
            Ok(0)
        }
        SandboxCmd::Inspect(a) => {
            inspect_many(c, "/sandboxes", &a.sandboxes, a.format.as_deref(), |n| {
                format!("no such sandbox: {n}")
            })
        }
        SandboxCmd::Rm(a) => Ok(remove_many(c, "/sandboxes", &a.sandboxes, a.force)),
        SandboxCmd::Exec(a) => sandbox_exec(c, &a.sandbox, &a.command),
        SandboxCmd::Rename(a) => {
            c.call(
                "POST",
                &format!(
                    "/sandboxes/{}/rename?name={}",
                    encode_component(&a.sandbox),
                    encode_component(&a.new_name)
                ),
                None,
            )?;
            Ok(0)
        }
    }
}

pub(super) fn sandbox_exec(c: &Client, name: &str, command: &[OsString]) -> Result<u8> {
    let info: Value = c.get(&format!("/sandboxes/{}", encode_component(name)))?;
    let target = crate::exec::ExecTarget::from_inspect(&info)?;
    let (code, err) = crate::exec::exec(&target, command);
    eprintln!("berth: {err}");
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs() {
        let p = |s: &str| parse_publish(s).unwrap();
        assert_eq!(p("80").0, "80/tcp");
        assert_eq!(p("80").1, PortBindingBody::default());
        let (k, b) = p("8080:80/udp");
        assert_eq!((k.as_str(), b.host_port.as_str()), ("80/udp", "8080"));
        let (_, b) = p("127.0.0.1:8080:80");
        assert_eq!(b.host_ip, "127.0.0.1");
        let (_, b) = p("127.0.0.1::80");
        assert_eq!(
            (b.host_ip.as_str(), b.host_port.as_str()),
            ("127.0.0.1", "")
        );
        let (_, b) = p("[::1]:8080:80");
        assert_eq!(b.host_ip, "::1");
        let (k, b) = p("8000-8010:9000-9010/tcp");
        assert_eq!(
            (k.as_str(), b.host_port.as_str()),
            ("9000-9010/tcp", "8000-8010")
        );
        assert!(parse_publish("80/icmp").is_err());
        assert!(parse_publish("host:8080:80").is_err());
    }
}

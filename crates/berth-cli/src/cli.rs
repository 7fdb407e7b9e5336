//! The command line: `berth daemon`, `berth network ...` and `berth sandbox ...`, with the docker
//! CLI's flags, output and exit codes.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;
use serde_json::{Value, json};

use crate::api::{
    ConfigFromBody, ConnectBody, DisconnectBody, EndpointIpamBody, EndpointSettingsBody, Filters,
    IpamBody, IpamConfigBody, NetworkCreateBody, NetworkCreateResponse, NetworkPruneResponse,
    PortBindingBody, SandboxCreateBody, SandboxCreateResponse, SandboxEndpointBody,
};
use crate::client::{Client, encode_component};
use crate::config::DaemonFlags;
use crate::error::{Error, Result};
use crate::format::{go_time, natural_cmp, reindent, render_rows};
use crate::template::{Methods, Template};

/// `berth`: Docker's container networking as a daemon and its client.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "berth: Docker's container networking (networks, sandboxes, endpoints) as a daemon and its client",
    disable_help_subcommand = true
)]
pub(crate) struct Cli {
    /// Daemon socket to connect to (for `berth daemon`: to serve)
    #[arg(
        short = 'H',
        long,
        env = "BERTH_HOST",
        global = true,
        value_name = "unix:///PATH"
    )]
    host: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the daemon (an HTTP API shaped like the Docker Engine API's /networks on a unix socket)
    Daemon(DaemonFlags),
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage sandboxes (a container's network namespace)
    #[command(subcommand)]
    Sandbox(SandboxCmd),
}

#[derive(Debug, Subcommand)]
enum NetworkCmd {
    /// Create a network
    Create(NetCreate),
    /// List networks
    #[command(alias = "list")]
    Ls(NetLs),
    /// Display detailed information on one or more networks
    Inspect(NetInspect),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(NetRm),
    /// Connect a sandbox to a network
    Connect(NetConnect),
    /// Disconnect a sandbox from a network
    Disconnect(NetDisconnect),
    /// Remove all unused networks
    Prune(NetPrune),
}

#[derive(Debug, Args)]
struct NetCreate {
    /// Driver to manage the network
    #[arg(short = 'd', long, default_value = "bridge")]
    driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    subnet: Vec<String>,
    /// Allocate container addresses from a sub-range
    #[arg(long = "ip-range")]
    ip_range: Vec<String>,
    /// IPv4 or IPv6 gateway for the master subnet
    #[arg(long)]
    gateway: Vec<String>,
    /// Auxiliary IPv4 or IPv6 addresses used by the network driver (NAME=IP)
    #[arg(long = "aux-address")]
    aux_address: Vec<String>,
    /// Enable IPv6 networking
    #[arg(long)]
    ipv6: bool,
    /// Restrict external access to the network
    #[arg(long)]
    internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    attachable: bool,
    /// Set driver specific options (KEY=VALUE)
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    /// Set metadata on a network (KEY=VALUE)
    #[arg(long)]
    label: Vec<String>,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", default_value = "default")]
    ipam_driver: String,
    /// Set IPAM driver specific options (KEY=VALUE)
    #[arg(long = "ipam-opt")]
    ipam_opt: Vec<String>,
    /// Control the network's scope
    #[arg(long)]
    scope: Option<String>,
    /// The network's name
    name: String,
}

#[derive(Debug, Args)]
struct NetLs {
    /// Only display network IDs
    #[arg(short, long)]
    quiet: bool,
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short, long)]
    filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template
    #[arg(long)]
    format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
}

#[derive(Debug, Args)]
struct NetInspect {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long)]
    format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short, long)]
    verbose: bool,
    /// Networks
    #[arg(required = true)]
    networks: Vec<String>,
}

#[derive(Debug, Args)]
struct NetRm {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    force: bool,
    /// Networks
    #[arg(required = true)]
    networks: Vec<String>,
}

#[derive(Debug, Args)]
struct NetConnect {
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    ip: Option<String>,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long)]
    ip6: Option<String>,
    /// Add network-scoped alias for the sandbox
    #[arg(long)]
    alias: Vec<String>,
    /// Add link to another sandbox (NAME:ALIAS)
    #[arg(long)]
    link: Vec<String>,
    /// Add a link-local address for the sandbox
    #[arg(long = "link-local-ip")]
    link_local_ip: Vec<String>,
    /// Driver options for the network (KEY=VALUE)
    #[arg(long = "driver-opt")]
    driver_opt: Vec<String>,
    /// The network
    network: String,
    /// The sandbox
    container: String,
}

#[derive(Debug, Args)]
struct NetDisconnect {
    /// Force the sandbox to disconnect from a network
    #[arg(short, long)]
    force: bool,
    /// The network
    network: String,
    /// The sandbox
    container: String,
}

#[derive(Debug, Args)]
struct NetPrune {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    filter: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum SandboxCmd {
    /// Create a sandbox (a network namespace) and connect it to a network; prints its id
    Create(Box<SbCreate>),
    /// List sandboxes
    #[command(alias = "list")]
    Ls(SbLs),
    /// Display detailed information on one or more sandboxes
    Inspect(SbInspect),
    /// Remove one or more sandboxes
    #[command(alias = "remove")]
    Rm(SbRm),
    /// Run a command inside a sandbox's namespace
    Exec(SbExec),
    /// Rename a sandbox
    Rename(SbRename),
}

#[derive(Debug, Args)]
struct SbRename {
    /// The sandbox
    sandbox: String,
    /// Its new name
    new_name: String,
}

#[derive(Debug, Args)]
struct SbCreate {
    /// The sandbox's name
    #[arg(long)]
    name: String,
    /// Connect to a network (default "bridge"; "host" and "none" as in docker)
    #[arg(long = "network", alias = "net")]
    network: Option<String>,
    /// IPv4 address on that network
    #[arg(long)]
    ip: Option<String>,
    /// IPv6 address on that network
    #[arg(long)]
    ip6: Option<String>,
    /// Network-scoped alias
    #[arg(long)]
    alias: Vec<String>,
    /// MAC address of the interface
    #[arg(long = "mac-address")]
    mac_address: Option<String>,
    /// Publish a port ([HOST_IP:][HOST_PORT:]PORT[/PROTO])
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    /// Expose a port or a range of ports (PORT[/PROTO])
    #[arg(long)]
    expose: Vec<String>,
    /// Publish all exposed ports to random host ports
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Add link to another sandbox (NAME:ALIAS)
    #[arg(long)]
    link: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option")]
    dns_option: Vec<String>,
    /// The sandbox's hostname
    #[arg(long)]
    hostname: Option<String>,
    /// The sandbox's domain name
    #[arg(long)]
    domainname: Option<String>,
    /// Add a custom host-to-IP mapping (HOST:IP)
    #[arg(long = "add-host")]
    add_host: Vec<String>,
    /// Adopt an existing network namespace (e.g. /proc/PID/ns/net) instead of making one
    #[arg(long)]
    netns: Option<String>,
}

#[derive(Debug, Args)]
struct SbLs {
    /// Only display sandbox IDs
    #[arg(short, long)]
    quiet: bool,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template
    #[arg(long)]
    format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
}

#[derive(Debug, Args)]
struct SbInspect {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long)]
    format: Option<String>,
    /// Sandboxes
    #[arg(required = true)]
    sandboxes: Vec<String>,
}

#[derive(Debug, Args)]
struct SbRm {
    /// Do not error if the sandbox does not exist
    #[arg(short, long)]
    force: bool,
    /// Sandboxes
    #[arg(required = true)]
    sandboxes: Vec<String>,
}

#[derive(Debug, Args)]
struct SbExec {
    /// The sandbox
    sandbox: String,
    /// The command and its arguments (after --)
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<OsString>,
}

/// Runs the binary: parses the command line and dispatches. Exit codes follow the docker CLI:
/// 0 success, 1 an error (daemon or usage), 125 an unknown flag or bad flag value; for
/// `sandbox exec`, the command's own code (125/126/127 when it could not run).
pub fn main_entry() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind as K;
            let code = match e.kind() {
                K::DisplayHelp
                | K::DisplayVersion
                | K::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                K::MissingRequiredArgument | K::MissingSubcommand | K::InvalidSubcommand => 1,
                _ => 125,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let host = cli.host.clone();
    let code = match cli.cmd {
        Cmd::Daemon(flags) => {
            match crate::config::resolve(host.as_deref(), flags).and_then(crate::daemon::run) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("berth daemon: {e}");
                    1
                }
            }
        }
        Cmd::Network(cmd) => with_client(host.as_deref(), |c| network(c, cmd)),
        Cmd::Sandbox(SandboxCmd::Exec(args)) => with_client(host.as_deref(), |c| {
            sandbox_exec(c, &args.sandbox, &args.command)
        }),
        Cmd::Sandbox(cmd) => with_client(host.as_deref(), |c| sandbox(c, cmd)),
    };
    ExitCode::from(code)
}

fn with_client(host: Option<&str>, f: impl FnOnce(&Client) -> Result<u8>) -> u8 {
    let result = Client::new(host).and_then(|c| f(&c));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn print(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

fn network(c: &Client, cmd: NetworkCmd) -> Result<u8> {
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
        NetworkCmd::Rm(a) => {
            let mut failed = false;
            for n in &a.networks {
                match c.call(
                    "DELETE",
                    &format!("/networks/{}", encode_component(n)),
                    None,
                ) {
                    Ok(_) => print(&format!("{n}\n")),
                    Err(Error::Daemon { status: 404, .. }) if a.force => {}
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
            Ok(u8::from(failed))
        }
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

fn str_of<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn short_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_owned()
    } else {
        id.chars().take(12).collect()
    }
}

fn labels_text(labels: Option<&Value>) -> String {
    labels
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn network_row(n: &Value, no_trunc: bool) -> Value {
    let has_v4 = n
        .pointer("/IPAM/Config")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter().any(|p| {
                str_of(p, "Subnet")
                    .parse::<IpNet>()
                    .is_ok_and(|s| matches!(s, IpNet::V4(_)))
            })
        });
    json!({
        "CreatedAt": go_time(str_of(n, "Created")),
        "Driver": str_of(n, "Driver"),
        "ID": short_id(str_of(n, "Id"), no_trunc),
        "IPv4": has_v4.to_string(),
        "IPv6": n.get("EnableIPv6").and_then(Value::as_bool).unwrap_or(false).to_string(),
        "Internal": n.get("Internal").and_then(Value::as_bool).unwrap_or(false).to_string(),
        "Labels": labels_text(n.get("Labels")),
        "Name": str_of(n, "Name"),
        "Scope": str_of(n, "Scope"),
    })
}

type MethodFn = dyn Fn(&[Value]) -> std::result::Result<Value, String>;

/// Renders rows whose template may call `.Label "key"` on the row's labels.
fn render_with_labels(format: &str, headers: &Value, rows: &[(Value, Value)]) -> Result<String> {
    let label_fns: Vec<Box<MethodFn>> = rows
        .iter()
        .map(|(_, labels)| {
            let labels = labels.clone();
            Box::new(
                move |args: &[Value]| -> std::result::Result<Value, String> {
                    let key = args
                        .first()
                        .and_then(Value::as_str)
                        .ok_or("Label wants one string argument, the label's key")?;
                    Ok(labels
                        .get(key)
                        .cloned()
                        .unwrap_or(Value::String(String::new())))
                },
            ) as Box<dyn Fn(&[Value]) -> std::result::Result<Value, String>>
        })
        .collect();
    let header_label = |_: &[Value]| -> std::result::Result<Value, String> { Ok(json!("LABEL")) };
    let mut header_methods = Methods::new();
    header_methods.insert("Label", &header_label);
    let with_methods: Vec<(Value, Methods<'_>)> = rows
        .iter()
        .zip(label_fns.iter())
        .map(|((row, _), f)| {
            let mut m = Methods::new();
            m.insert("Label", f.as_ref());
            (row.clone(), m)
        })
        .collect();
    render_rows(format, headers, &with_methods, &header_methods)
}

/// `inspect` for networks and sandboxes: a JSON array (in the daemon's key order), `-f json`, or
/// a template per element.
fn inspect_many(
    c: &Client,
    base: &str,
    names: &[String],
    format: Option<&str>,
    not_found: impl Fn(&str) -> String,
) -> Result<u8> {
    let mut found: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    for n in names {
        match c.call("GET", &format!("{base}/{}", encode_component(n)), None) {
            Ok(body) => {
                let text = String::from_utf8_lossy(&body).trim().to_owned();
                if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_err() {
                    return Err(Error::Protocol {
                        socket: String::new(),
                        message: format!("the answer for {n} is not JSON"),
                    });
                }
                found.push(text);
            }
            Err(Error::Daemon {
                status: 404,
                message,
            }) => errors.push(if message.is_empty() {
                not_found(n)
            } else {
                message
            }),
            Err(e) => return Err(e),
        }
    }
    let array = format!("[{}]", found.join(","));
    match format {
        None | Some("") => print(&format!("{}\n", reindent(&array))),
        Some("json") => print(&format!("{array}\n")),
        Some(f) => {
            let t = Template::parse(f)?;
            let mut out = String::new();
            for raw in &found {
                let v: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
                out.push_str(&t.render(&v)?);
                out.push('\n');
            }
            print(&out);
        }
    }
    for e in &errors {
        eprintln!("Error response from daemon: {e}");
    }
    Ok(u8::from(!errors.is_empty()))
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

/// Docker's `-p` syntax (`[IP:][HOST_PORT:]PORT[/PROTO]`, IPv6 addresses in brackets) into the
/// API's port bindings (`"80/tcp": [{"HostIp": "...", "HostPort": "..."}]`).
pub(crate) fn parse_publish(spec: &str) -> Result<(String, PortBindingBody)> {
    let p: berth::PortSpec = spec.parse().map_err(|e: berth_portmap::Error| {
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

fn sandbox(c: &Client, cmd: SandboxCmd) -> Result<u8> {
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
            let body = SandboxCreateBody {
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
        SandboxCmd::Rm(a) => {
            let mut failed = false;
            for n in &a.sandboxes {
                match c.call(
                    "DELETE",
                    &format!("/sandboxes/{}", encode_component(n)),
                    None,
                ) {
                    Ok(_) => print(&format!("{n}\n")),
                    Err(Error::Daemon { status: 404, .. }) if a.force => {}
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
            Ok(u8::from(failed))
        }
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

fn ports_text(ports: Option<&Value>) -> String {
    let Some(m) = ports.and_then(Value::as_object) else {
        return String::new();
    };
    let mut out = Vec::new();
    for (port, bindings) in m {
        match bindings.as_array() {
            Some(list) if !list.is_empty() => {
                for b in list {
                    let ip = str_of(b, "HostIp");
                    let ip = if ip.contains(':') {
                        format!("[{ip}]")
                    } else {
                        ip.to_owned()
                    };
                    out.push(format!("{ip}:{}->{port}", str_of(b, "HostPort")));
                }
            }
            _ => out.push(port.clone()),
        }
    }
    out.join(", ")
}

fn sandbox_row(s: &Value, no_trunc: bool) -> Value {
    let networks = s.get("Networks").and_then(Value::as_object);
    let names: Vec<&str> = networks
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let addrs: Vec<String> = networks
        .map(|m| {
            m.values()
                .flat_map(|n| [str_of(n, "IPAddress"), str_of(n, "IPv6Address")])
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    json!({
        "ID": short_id(str_of(s, "Id"), no_trunc),
        "Name": str_of(s, "Name"),
        "Networks": names.join(","),
        "Ports": ports_text(s.get("Ports")),
        "CreatedAt": go_time(str_of(s, "Created")),
        "Namespace": str_of(s, "SandboxKey"),
        "IPAddresses": addrs.join(","),
        // "degraded" when a start could not restore all of it (the reasons are in inspect).
        "Status": if s.get("Degraded").is_some() { "degraded" } else { "up" },
    })
}

fn sandbox_exec(c: &Client, name: &str, command: &[OsString]) -> Result<u8> {
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

//! The rows of `network ls` and `sandbox ls`: each listed object as a row of template fields,
//! and the rendering of those rows (with `.Label "key"`) through a `--format` template.

use ipnet::IpNet;
use serde_json::{Value, json};

use crate::error::Result;
use crate::format::{go_time, render_rows};
use crate::template::Methods;

pub(super) fn str_of<'v>(v: &'v Value, key: &str) -> &'v str {
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

pub(super) fn network_row(n: &Value, no_trunc: bool) -> Value {
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
pub(super) fn render_with_labels(
    format: &str,
    headers: &Value,
    rows: &[(Value, Value)],
) -> Result<String> {
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

pub(super) fn sandbox_row(s: &Value, no_trunc: bool) -> Value {
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

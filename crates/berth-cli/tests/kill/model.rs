//! What the daemon's API says exists (networks, sandboxes, endpoints, published ports), read into
//! plain structs, and the comparisons the kill matrix makes between two such snapshots: survivors
//! of a killed operation are unchanged, and a removal the daemon had recorded is finished.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::Value;

use crate::common::Fixture;

/// The bridge name option of the bridge driver (`docker0` for the default network).
const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";
/// Networks berth makes itself; never created or removed by the workload.
pub(crate) const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

/// One network as `GET /networks` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Net {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) driver: String,
    pub(crate) internal: bool,
    /// The Linux bridge of a bridge-driver network.
    pub(crate) bridge: Option<String>,
    /// IPv4 subnets with their gateway.
    pub(crate) v4: Vec<(Ipv4Net, Option<Ipv4Addr>)>,
}

/// One endpoint as a sandbox's inspect shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ep {
    pub(crate) network: String,
    pub(crate) network_id: String,
    pub(crate) endpoint_id: String,
    pub(crate) ip: String,
    pub(crate) prefix: u8,
    pub(crate) gateway: String,
    pub(crate) mac: String,
    pub(crate) ifname: String,
}

impl Ep {
    /// The host end of the endpoint's veth (`berth` + 10 hex digits of the endpoint id).
    pub(crate) fn host_veth(&self) -> String {
        format!("berth{}", self.endpoint_id.get(..10).unwrap_or(""))
    }
}

/// One published host port of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Published {
    pub(crate) proto: String,
    pub(crate) container_port: u16,
    pub(crate) host_ip: String,
    pub(crate) host_port: u16,
}

/// One sandbox as `GET /sandboxes` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sb {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) key: String,
    /// By network name.
    pub(crate) eps: BTreeMap<String, Ep>,
    pub(crate) ports: Vec<Published>,
}

/// Everything the API lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) nets: Vec<Net>,
    pub(crate) sbs: Vec<Sb>,
}

impl Snapshot {
    /// Reads both listings; an error names what could not be read.
    pub(crate) fn read(f: &Fixture) -> Result<Snapshot, String> {
        let get = |path: &str| -> Result<Value, String> {
            let r = f
                .try_http("GET", path, None, None)
                .map_err(|e| format!("GET {path}: {e}"))?;
            if r.status != 200 {
                return Err(format!(
                    "GET {path}: status {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
            }
            serde_json::from_slice(&r.body).map_err(|e| format!("GET {path}: {e}"))
        };
        let nets = get("/networks")?
            .as_array()
            .ok_or("GET /networks: not an array")?
            .iter()
            .map(parse_net)
            .collect::<Result<Vec<_>, _>>()?;
        let sbs = get("/sandboxes")?
            .as_array()
            .ok_or("GET /sandboxes: not an array")?
            .iter()
            .map(parse_sb)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Snapshot { nets, sbs })
    }

    pub(crate) fn net(&self, name: &str) -> Option<&Net> {
        self.nets.iter().find(|n| n.name == name)
    }

    pub(crate) fn sb(&self, name: &str) -> Option<&Sb> {
        self.sbs.iter().find(|s| s.name == name)
    }

    /// User-defined networks (the workload's).
    pub(crate) fn user_nets(&self) -> impl Iterator<Item = &Net> {
        self.nets
            .iter()
            .filter(|n| !PREDEFINED.contains(&n.name.as_str()))
    }

    /// Names of the sandboxes on network `name`.
    pub(crate) fn members(&self, name: &str) -> Vec<&Sb> {
        self.sbs
            .iter()
            .filter(|s| s.eps.contains_key(name))
            .collect()
    }
}

fn parse_net(v: &Value) -> Result<Net, String> {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
    let (id, name, driver) = (s("Id"), s("Name"), s("Driver"));
    if id.len() < 12 || name.is_empty() {
        return Err(format!("network without id or name: {v}"));
    }
    let bridge = (driver == "bridge").then(|| {
        v["Options"][BRIDGE_NAME_OPTION]
            .as_str()
            .map_or_else(|| format!("br-{}", &id[..12]), str::to_owned)
    });
    let mut v4 = Vec::new();
    for c in v["IPAM"]["Config"].as_array().into_iter().flatten() {
        let Some(Ok(subnet)) = c["Subnet"].as_str().map(str::parse::<Ipv4Net>) else {
            continue;
        };
        // Inspect shows the gateway only where Docker does (not for a subnet given without
        // one, nor for the default bridge): then it is IPAM's choice, the subnet's first host.
        let gw = c["Gateway"]
            .as_str()
            .and_then(|g| g.parse().ok())
            .or_else(|| subnet.hosts().next());
        v4.push((subnet, gw));
    }
    Ok(Net {
        internal: v["Internal"].as_bool().unwrap_or(false),
        id,
        name,
        driver,
        bridge,
        v4,
    })
}

fn parse_sb(v: &Value) -> Result<Sb, String> {
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_owned();
    let mut eps = BTreeMap::new();
    for (net, e) in v["Networks"].as_object().into_iter().flatten() {
        eps.insert(
            net.clone(),
            Ep {
                network: net.clone(),
                network_id: s(e, "NetworkID"),
                endpoint_id: s(e, "EndpointID"),
                ip: s(e, "IPAddress"),
                prefix: e["IPPrefixLen"].as_u64().unwrap_or(0) as u8,
                gateway: s(e, "Gateway"),
                mac: s(e, "MacAddress").to_ascii_lowercase(),
                ifname: s(e, "Interface"),
            },
        );
    }
    let mut ports = Vec::new();
    for (key, bindings) in v["Ports"].as_object().into_iter().flatten() {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let container_port = port
            .parse()
            .map_err(|_| format!("bad port key {key:?} in {v}"))?;
        for b in bindings.as_array().into_iter().flatten() {
            ports.push(Published {
                proto: proto.to_owned(),
                container_port,
                host_ip: s(b, "HostIp"),
                host_port: s(b, "HostPort")
                    .parse()
                    .map_err(|_| format!("bad host port in {v}"))?,
            });
        }
    }
    ports.sort();
    let sb = Sb {
        id: s(v, "Id"),
        name: s(v, "Name"),
        key: s(v, "SandboxKey"),
        eps,
        ports,
    };
    if sb.id.is_empty() || sb.name.is_empty() {
        return Err(format!("sandbox without id or name: {v}"));
    }
    Ok(sb)
}

/// One operation of the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    CreateNet {
        name: String,
        subnet: String,
    },
    RemoveNet {
        name: String,
    },
    CreateSb {
        name: String,
        net: String,
        port: Option<u16>,
    },
    RemoveSb {
        name: String,
    },
    Connect {
        sb: String,
        net: String,
    },
    Disconnect {
        sb: String,
        net: String,
    },
    Rename {
        from: String,
        to: String,
    },
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::CreateNet { name, subnet } => write!(f, "network create {name} ({subnet})"),
            Op::RemoveNet { name } => write!(f, "network rm {name}"),
            Op::CreateSb { name, net, port } => match port {
                Some(p) => write!(f, "sandbox create {name} on {net} -p {p}:80"),
                None => write!(f, "sandbox create {name} on {net}"),
            },
            Op::RemoveSb { name } => write!(f, "sandbox rm {name}"),
            Op::Connect { sb, net } => write!(f, "network connect {net} {sb}"),
            Op::Disconnect { sb, net } => write!(f, "network disconnect {net} {sb}"),
            Op::Rename { from, to } => write!(f, "sandbox rename {from} {to}"),
        }
    }
}

impl Op {
    /// The sandbox the operation changes, by its name before the operation.
    fn sandbox(&self) -> Option<&str> {
        match self {
            Op::CreateSb { name, .. } | Op::RemoveSb { name } => Some(name),
            Op::Connect { sb, .. } | Op::Disconnect { sb, .. } => Some(sb),
            Op::Rename { from, .. } => Some(from),
            Op::CreateNet { .. } | Op::RemoveNet { .. } => None,
        }
    }

    /// The network the operation changes.
    fn network(&self) -> Option<&str> {
        match self {
            Op::CreateNet { name, .. } | Op::RemoveNet { name } => Some(name),
            _ => None,
        }
    }
}

/// What a restart must have made of the state `before` an operation killed at `point`:
/// everything the operation does not touch is unchanged, and what it had recorded as decided
/// (a removal past its intent, a committed rename) is finished. Returns the differences.
pub(crate) fn after_kill(before: &Snapshot, op: &Op, point: &str, after: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    let touched_sb = op.sandbox();
    let touched_net = op.network();
    for b in &before.sbs {
        if Some(b.name.as_str()) == touched_sb {
            continue;
        }
        match after.sbs.iter().find(|a| a.id == b.id) {
            None => out.push(format!(
                "sandbox {} vanished although the killed operation did not touch it",
                b.name
            )),
            Some(a) if a != b => out.push(format!(
                "sandbox {} changed although the killed operation did not touch it: {b:?} -> {a:?}",
                b.name
            )),
            Some(_) => {}
        }
    }
    for b in &before.nets {
        if Some(b.name.as_str()) == touched_net {
            continue;
        }
        match after.nets.iter().find(|a| a.id == b.id) {
            None => out.push(format!(
                "network {} vanished although the killed operation did not touch it",
                b.name
            )),
            Some(a) if a != b => out.push(format!(
                "network {} changed although the killed operation did not touch it: {b:?} -> {a:?}",
                b.name
            )),
            Some(_) => {}
        }
    }
    for a in &after.sbs {
        let known = before.sbs.iter().any(|b| b.id == a.id);
        let created = matches!(op, Op::CreateSb { name, .. } if *name == a.name);
        if !known && !created {
            out.push(format!("sandbox {} appeared from nowhere", a.name));
        }
    }
    for a in &after.nets {
        let known = before.nets.iter().any(|b| b.id == a.id);
        let created = matches!(op, Op::CreateNet { name, .. } if *name == a.name);
        if !known && !created {
            out.push(format!("network {} appeared from nowhere", a.name));
        }
    }
    // Decided before the kill: the restart finishes it. (A kill at an `.intent` point may come
    // before the intent was written, so both outcomes are allowed there; a sandbox's removal is
    // decided once `sandbox.remove.intent` is passed, its endpoints' disconnects come after.)
    let decided = !point.ends_with(".intent");
    let unfinished = |what: String| {
        format!(
            "{what} was killed at {point}, after its intent was recorded, and the restart did not finish it"
        )
    };
    let problem = match op {
        Op::RemoveSb { name } => {
            let past_intent = (point.starts_with("sandbox.remove.")
                || point.starts_with("disconnect."))
                && point != "sandbox.remove.intent";
            let id = before.sb(name).map(|s| s.id.clone());
            let still = after.sbs.iter().any(|s| Some(&s.id) == id.as_ref());
            (past_intent && still).then(|| unfinished(format!("sandbox {name}: its removal")))
        }
        Op::RemoveNet { name } => {
            (decided && point.starts_with("network.remove.") && after.net(name).is_some())
                .then(|| unfinished(format!("network {name}: its removal")))
        }
        Op::Disconnect { sb, net } => (decided
            && point.starts_with("disconnect.")
            && after.sb(sb).is_some_and(|s| s.eps.contains_key(net)))
        .then(|| unfinished(format!("sandbox {sb}: its disconnect from {net}"))),
        Op::Rename { from, to } => {
            let id = before.sb(from).map(|s| s.id.clone());
            let now = after.sbs.iter().find(|s| Some(&s.id) == id.as_ref());
            (point == "sandbox.rename.recorded" && now.is_some_and(|s| s.name != *to)).then(|| {
                format!(
                    "sandbox {from}: its rename to {to} was committed before the kill at {point}, but after the restart it is called {}",
                    now.map_or("", |s| s.name.as_str())
                )
            })
        }
        _ => None,
    };
    out.extend(problem);
    out
}

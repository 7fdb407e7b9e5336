//! A fake remote network driver and IPAM plugin, `fakenet`, speaking Docker's protocol over
//! the [`Server`], and doing in a test host's namespace the kernel work a real plugin does:
//! `CreateNetwork` makes a bridge (`fkbr` + 8 hex digits of the network id) with the gateway
//! address; `Join` makes a veth pair whose host end (`fkh...`) goes on the bridge and whose
//! other end (`fks...`) it names as `SrcName` for the engine to move into the sandbox;
//! `DeleteEndpoint` deletes the pair's host end, `DeleteNetwork` the bridge. Its IPAM hands out
//! `10.77.0.0/24` (or the subnet asked for), the gateway `.1`, then `.2`, `.3`, ...
//!
//! The kernel work uses iproute2 (`ip -n HOST`), not berth-netlink, so the tests do not trust
//! the code under test to build their fixtures. Faults are scripted per call
//! ([`FakeNet::fail_next`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::server::{Handler, Reply, Request};

/// A scripted failure of one call (used once).
#[derive(Clone)]
pub(crate) enum Fault {
    /// The plugin process dies on receiving the call (before any work).
    Die,
    /// The plugin hangs (no work), then closes the connection.
    Hang(Duration),
    /// The plugin answers bytes that are no HTTP (no work).
    Garbage,
    /// The plugin answers this status with `{"Err": message}` (no work).
    Err(u16, String),
    /// The plugin answers this (no work).
    Answer(Reply),
    /// The plugin does its work, then answers what this makes of its normal answer.
    Rewrite(Arc<dyn Fn(Value) -> Reply + Send + Sync>),
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Net {
    pub(crate) bridge: String,
    pub(crate) gateway: String,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Ep {
    pub(crate) network: String,
    pub(crate) host_if: String,
    pub(crate) sandbox_if: String,
    pub(crate) joined: bool,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Pool {
    pub(crate) subnet: ipnet::Ipv4Net,
    pub(crate) taken: BTreeSet<u32>,
}

/// What the plugin holds.
#[derive(Debug, Default, Clone)]
pub(crate) struct State {
    pub(crate) networks: BTreeMap<String, Net>,
    pub(crate) endpoints: BTreeMap<String, Ep>,
    pub(crate) pools: BTreeMap<String, Pool>,
    pub(crate) next_pool: u32,
    /// The options of each ProgramExternalConnectivity, by endpoint.
    pub(crate) published: BTreeMap<String, Value>,
    /// For each Leave of a joined endpoint: whether its interface (`SrcName`) was back in the
    /// host namespace by then, as dockerd gives it back before Leave.
    pub(crate) back_at_leave: Vec<bool>,
}

pub(crate) struct FakeNet {
    /// The test host namespace's name (`ip -n NAME`).
    host: String,
    implements: Vec<&'static str>,
    scope: Mutex<&'static str>,
    state: Mutex<State>,
    faults: Mutex<HashMap<String, Fault>>,
}

/// `ip -n ns ARGS`; the error is stderr.
pub(crate) fn ip(ns: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip -n {ns} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ok() -> Reply {
    Reply::Json(200, json!({}))
}

fn err(message: String) -> Reply {
    Reply::Json(500, json!({ "Err": message }))
}

impl FakeNet {
    /// A plugin implementing both drivers, doing its kernel work in namespace `host`.
    pub(crate) fn new(host: &str) -> Arc<FakeNet> {
        Self::implementing(host, vec!["NetworkDriver", "IpamDriver"])
    }

    pub(crate) fn implementing(host: &str, implements: Vec<&'static str>) -> Arc<FakeNet> {
        Arc::new(FakeNet {
            host: host.to_owned(),
            implements,
            scope: Mutex::new("local"),
            state: Mutex::default(),
            faults: Mutex::default(),
        })
    }

    /// The scope `GetCapabilities` answers.
    pub(crate) fn set_scope(&self, scope: &'static str) {
        *self.scope.lock().unwrap() = scope;
    }

    /// The handler for a [`super::server::Server`].
    pub(crate) fn handler(self: &Arc<Self>) -> Handler {
        let me = self.clone();
        Arc::new(move |req: &Request| me.handle(req))
    }

    /// Makes the next call to `path` (`/NetworkDriver.Join`) fail as `fault` says.
    pub(crate) fn fail_next(&self, path: &str, fault: Fault) {
        self.faults.lock().unwrap().insert(path.to_owned(), fault);
    }

    /// What the plugin holds now.
    pub(crate) fn state(&self) -> State {
        self.state.lock().unwrap().clone()
    }

    /// Adds (`-A`) or deletes (`-D`) the rule that lets traffic between the bridge's ports be
    /// forwarded: with `br_netfilter`, bridged traffic passes the host's FORWARD chain, whose
    /// policy berth (as dockerd) sets to DROP; real plugins (Weave, ...) add such rules.
    fn forward_rule(&self, op: &str, bridge: &str) -> Result<String, String> {
        let args = [
            "netns", "exec", &self.host, "iptables", op, "FORWARD", "-i", bridge, "-o", bridge,
            "-j", "ACCEPT",
        ];
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::new())
        } else {
            Err(format!(
                "iptables {op}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn handle(&self, req: &Request) -> Reply {
        let fault = self.faults.lock().unwrap().remove(&req.path);
        match fault {
            None => self.serve(req),
            Some(Fault::Die) => Reply::Die,
            Some(Fault::Hang(d)) => Reply::Hang(d, Box::new(Reply::Close)),
            Some(Fault::Garbage) => Reply::Raw(b"\x00\x01 this is no HTTP \xff\r\n\r\n".to_vec()),
            Some(Fault::Answer(reply)) => reply,
            Some(Fault::Err(status, message)) => Reply::Json(status, json!({ "Err": message })),
            Some(Fault::Rewrite(f)) => match self.serve(req) {
                Reply::Json(200, body) => f(body),
                other => other,
            },
        }
    }

    fn serve(&self, req: &Request) -> Reply {
        let body = req.json();
        let s = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
        let mut st = self.state.lock().unwrap();
        match req.path.as_str() {
            "/Plugin.Activate" => Reply::Json(200, json!({ "Implements": self.implements })),
            "/NetworkDriver.GetCapabilities" => {
                Reply::Json(200, json!({ "Scope": *self.scope.lock().unwrap() }))
            }
            "/NetworkDriver.CreateNetwork" => {
                let id = s("NetworkID");
                if st.networks.contains_key(&id) {
                    return err(format!("network {id} exists"));
                }
                let bridge = format!("fkbr{}", &id[..8]);
                let gateway = body["IPv4Data"][0]["Gateway"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let work = ip(&self.host, &["link", "add", &bridge, "type", "bridge"])
                    .and_then(|_| ip(&self.host, &["addr", "add", &gateway, "dev", &bridge]))
                    .and_then(|_| ip(&self.host, &["link", "set", &bridge, "up"]))
                    .and_then(|_| self.forward_rule("-A", &bridge));
                if let Err(e) = work {
                    let _ = ip(&self.host, &["link", "del", &bridge]);
                    let _ = self.forward_rule("-D", &bridge);
                    return err(e);
                }
                st.networks.insert(id, Net { bridge, gateway });
                ok()
            }
            "/NetworkDriver.DeleteNetwork" => match st.networks.remove(&s("NetworkID")) {
                Some(net) => {
                    let _ = ip(&self.host, &["link", "del", &net.bridge]);
                    let _ = self.forward_rule("-D", &net.bridge);
                    ok()
                }
                None => err("no such network".into()),
            },
            "/NetworkDriver.CreateEndpoint" => {
                let (net, ep) = (s("NetworkID"), s("EndpointID"));
                if !st.networks.contains_key(&net) {
                    return err(format!("no network {net}"));
                }
                let short = &ep[..8];
                st.endpoints.insert(
                    ep.clone(),
                    Ep {
                        network: net,
                        host_if: format!("fkh{short}"),
                        sandbox_if: format!("fks{short}"),
                        joined: false,
                    },
                );
                ok()
            }
            "/NetworkDriver.Join" => {
                let Some(ep) = st.endpoints.get(&s("EndpointID")).cloned() else {
                    return err("no such endpoint".into());
                };
                let net = st.networks[&ep.network].clone();
                let work = ip(
                    &self.host,
                    &["link", "add", &ep.host_if, "type", "veth", "peer", "name", &ep.sandbox_if],
                )
                .and_then(|_| ip(&self.host, &["link", "set", &ep.host_if, "master", &net.bridge]))
                .and_then(|_| ip(&self.host, &["link", "set", &ep.host_if, "up"]));
                if let Err(e) = work {
                    let _ = ip(&self.host, &["link", "del", &ep.host_if]);
                    return err(e);
                }
                if let Some(e) = st.endpoints.get_mut(&s("EndpointID")) {
                    e.joined = true;
                }
                let gw = net.gateway.split('/').next().unwrap_or_default().to_owned();
                Reply::Json(
                    200,
                    json!({
                        "InterfaceName": { "SrcName": ep.sandbox_if, "DstPrefix": "eth" },
                        "Gateway": gw,
                        "StaticRoutes": [
                            { "Destination": "192.0.2.0/24", "RouteType": 0, "NextHop": gw },
                            { "Destination": "198.51.100.0/24", "RouteType": 1 }
                        ]
                    }),
                )
            }
            "/NetworkDriver.Leave" => match st.endpoints.get_mut(&s("EndpointID")) {
                Some(e) => {
                    let back = e.joined && ip(&self.host, &["link", "show", &e.sandbox_if]).is_ok();
                    let was_joined = e.joined;
                    e.joined = false;
                    if was_joined {
                        st.back_at_leave.push(back);
                    }
                    ok()
                }
                None => err("no such endpoint".into()),
            },
            "/NetworkDriver.DeleteEndpoint" => match st.endpoints.remove(&s("EndpointID")) {
                Some(e) => {
                    let exists = ip(&self.host, &["link", "show", &e.host_if]).is_ok();
                    if exists {
                        let _ = ip(&self.host, &["link", "del", &e.host_if]);
                    }
                    ok()
                }
                None => err("no such endpoint".into()),
            },
            "/NetworkDriver.EndpointOperInfo" => {
                Reply::Json(200, json!({ "Value": { "fake": "yes", "n": 1 } }))
            }
            "/NetworkDriver.ProgramExternalConnectivity" => {
                st.published.insert(s("EndpointID"), body["Options"].clone());
                ok()
            }
            "/NetworkDriver.RevokeExternalConnectivity" => {
                st.published.remove(&s("EndpointID"));
                ok()
            }
            "/IpamDriver.GetCapabilities" => {
                Reply::Json(200, json!({ "RequiresMACAddress": false }))
            }
            "/IpamDriver.GetDefaultAddressSpaces" => Reply::Json(
                200,
                json!({
                    "LocalDefaultAddressSpace": "fakelocal",
                    "GlobalDefaultAddressSpace": "fakeglobal"
                }),
            ),
            "/IpamDriver.RequestPool" => {
                if body["V6"].as_bool() == Some(true) {
                    return err("fakenet has no IPv6 pools".into());
                }
                let subnet: ipnet::Ipv4Net = match body["Pool"].as_str() {
                    Some("") | None => "10.77.0.0/24".parse().unwrap(),
                    Some(p) => match p.parse() {
                        Ok(n) => n,
                        Err(_) => return err(format!("bad pool {p}")),
                    },
                };
                if st.pools.values().any(|p| p.subnet == subnet) {
                    return err(format!("pool {subnet} is taken"));
                }
                st.next_pool += 1;
                let id = format!("fakepool-{}", st.next_pool);
                st.pools.insert(
                    id.clone(),
                    Pool {
                        subnet,
                        taken: BTreeSet::new(),
                    },
                );
                Reply::Json(200, json!({ "PoolID": id, "Pool": subnet.to_string(), "Data": {} }))
            }
            "/IpamDriver.ReleasePool" => match st.pools.remove(&s("PoolID")) {
                Some(_) => ok(),
                None => err("no such pool".into()),
            },
            "/IpamDriver.RequestAddress" => {
                let Some(pool) = st.pools.get_mut(&s("PoolID")) else {
                    return err("no such pool".into());
                };
                let base = u32::from(pool.subnet.network());
                let gateway = body["Options"]["RequestAddressType"] == "com.docker.network.gateway";
                let offset = match body["Address"].as_str() {
                    Some(a) if !a.is_empty() => {
                        let a: std::net::Ipv4Addr = a.parse().unwrap();
                        u32::from(a) - base
                    }
                    _ if gateway => 1,
                    _ => match (2..254).find(|o| !pool.taken.contains(o)) {
                        Some(o) => o,
                        None => return err("pool exhausted".into()),
                    },
                };
                if !pool.taken.insert(offset) {
                    return err(format!("address {offset} of the pool is taken"));
                }
                let addr = std::net::Ipv4Addr::from(base + offset);
                Reply::Json(
                    200,
                    json!({ "Address": format!("{addr}/{}", pool.subnet.prefix_len()) }),
                )
            }
            "/IpamDriver.ReleaseAddress" => {
                let Some(pool) = st.pools.get_mut(&s("PoolID")) else {
                    return err("no such pool".into());
                };
                let a: std::net::Ipv4Addr = s("Address").parse().unwrap();
                let offset = u32::from(a) - u32::from(pool.subnet.network());
                if pool.taken.remove(&offset) {
                    ok()
                } else {
                    err(format!("{a} is not allocated"))
                }
            }
            // What Go's HTTP mux answers for a path it does not serve.
            _ => Reply::Raw(
                b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\n404 page not found\n"
                    .to_vec(),
            ),
        }
    }
}

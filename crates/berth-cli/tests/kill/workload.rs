//! The kill matrix's workload: a daemon on a test host (with a LAN peer), driven over its HTTP API
//! by seeded random operations (create and remove networks and sandboxes, connect, disconnect,
//! publish, rename), biased towards the operation that passes the armed fail point, until the
//! daemon dies.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use berth_testhost::LanPeer;
use berth_testhost::berth_netlink::Netns;
use berth_testhost::traffic::TcpBanner;
use serde_json::json;

use super::check::{HOST_LAN, PEER_LAN, banner_of};
use super::model::{Op, Snapshot};
use super::{Rng, Target};
use crate::common::Fixture;

/// At most this many user networks and sandboxes at once (keeps checks and pings cheap).
const MAX_NETS: usize = 4;
const MAX_SANDBOXES: usize = 8;
/// First host port the workload publishes (each publication takes a new one).
const FIRST_HOST_PORT: u16 = 20000;
/// The environment variable that arms fail points (`berth::failpoint::FAILPOINTS_ENV`).
const FAILPOINTS_ENV: &str = berth::failpoint::FAILPOINTS_ENV;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    CreateNet,
    RemoveNet,
    CreateSb,
    Publish,
    RemoveSb,
    Connect,
    Disconnect,
    Rename,
}

/// Weights of the unbiased mix.
const MIX: [(Kind, u32); 8] = [
    (Kind::CreateNet, 8),
    (Kind::RemoveNet, 8),
    (Kind::CreateSb, 12),
    (Kind::Publish, 10),
    (Kind::RemoveSb, 14),
    (Kind::Connect, 20),
    (Kind::Disconnect, 16),
    (Kind::Rename, 10),
];

/// The operations that pass `point`, in order of preference, then helpers that make them
/// possible (a network to remove must exist, and so on).
fn favoured(point: &str) -> &'static [Kind] {
    use Kind::*;
    match point {
        p if p.starts_with("network.create.") => &[CreateNet, RemoveNet, Disconnect],
        p if p.starts_with("network.remove.") => &[RemoveNet, CreateNet, Disconnect],
        p if p.starts_with("sandbox.create.") => &[CreateSb, Publish, RemoveSb],
        p if p.starts_with("sandbox.remove.") => &[RemoveSb, CreateSb],
        p if p.starts_with("sandbox.rename.") => &[Rename, CreateSb],
        "connect.ports" => &[Publish, RemoveSb],
        p if p.starts_with("connect.") => &[Connect, CreateSb, Publish, Disconnect, CreateNet],
        p if p.starts_with("disconnect.") => &[Disconnect, RemoveSb, Connect, CreateSb],
        _ => &[],
    }
}

/// How a segment of the workload ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The daemon died of SIGKILL during `op`, issued on state `before`.
    Killed { op: Op, before: Snapshot },
    /// The cap of operations was reached with the daemon alive.
    NotReached,
    /// Something else went wrong (the daemon died otherwise, or did not die when it should).
    Broken(String),
}

/// The daemon, its LAN peer and the servers behind published ports.
pub(crate) struct Harness {
    /// Published servers by sandbox id (dropped first: they hold sandbox namespaces).
    banners: BTreeMap<String, TcpBanner>,
    pub(crate) peer: LanPeer,
    pub(crate) f: Fixture,
    pub(crate) rng: Rng,
    counter: u32,
    next_port: u16,
    /// Operations issued so far.
    pub(crate) ops: usize,
}

impl Harness {
    pub(crate) fn new(seed: u64) -> Harness {
        let f = Fixture::unstarted(&[]);
        let peer = f
            .host
            .add_lan_peer(&format!("{HOST_LAN}/24"), &format!("{PEER_LAN}/24"))
            .expect("a LAN peer");
        Harness {
            banners: BTreeMap::new(),
            peer,
            f,
            rng: Rng::new(seed),
            counter: 0,
            next_port: FIRST_HOST_PORT,
            ops: 0,
        }
    }

    /// Starts the daemon, armed for `target` if given; `Err` with its status if it died first.
    pub(crate) fn start(&mut self, target: Option<Target>) -> Result<(), std::process::ExitStatus> {
        let spec = target.map_or(String::new(), |(p, n)| format!("{p}=kill@{n}"));
        self.f.try_start_with_env(&[(FAILPOINTS_ENV, &spec)])
    }

    pub(crate) fn daemon_pid(&self) -> u32 {
        self.f.daemon_pid().unwrap_or(0)
    }

    pub(crate) fn snapshot(&self) -> Result<Snapshot, String> {
        Snapshot::read(&self.f)
    }

    /// A server behind every published port of a listed sandbox; none for sandboxes gone.
    pub(crate) fn sync_banners(&mut self, snap: &Snapshot) {
        self.banners
            .retain(|id, _| snap.sbs.iter().any(|s| &s.id == id && !s.ports.is_empty()));
        for sb in &snap.sbs {
            if sb.ports.is_empty() || self.banners.contains_key(&sb.id) {
                continue;
            }
            let Ok(ns) = Netns::open(&sb.key) else {
                continue; // reported by the checks
            };
            let addr = "0.0.0.0:80".parse().expect("a literal");
            if let Ok(b) = TcpBanner::start(&ns, addr, &banner_of(sb)) {
                self.banners.insert(sb.id.clone(), b);
            }
        }
    }

    /// Drops the server of sandbox `id` (the self-test's "lost published server").
    pub(crate) fn drop_banner(&mut self, id: &str) -> bool {
        self.banners.remove(id).is_some()
    }

    fn name(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    /// An operation of `kind` possible on `snap`, if there is one.
    fn build(&mut self, kind: Kind, snap: &Snapshot) -> Option<Op> {
        let user: Vec<String> = snap.user_nets().map(|n| n.name.clone()).collect();
        let attachable: Vec<String> = user
            .iter()
            .cloned()
            .chain(std::iter::once("bridge".to_owned()))
            .collect();
        let sbs: Vec<String> = snap.sbs.iter().map(|s| s.name.clone()).collect();
        match kind {
            Kind::CreateNet => (user.len() < MAX_NETS).then(|| {
                let name = self.name("n");
                let subnet = format!("10.77.{}.0/24", self.counter % 250);
                Op::CreateNet { name, subnet }
            }),
            Kind::RemoveNet => {
                let empty: Vec<String> = user
                    .iter()
                    .filter(|n| snap.members(n).is_empty())
                    .cloned()
                    .collect();
                let name = self.rng.pick(&empty)?.clone();
                Some(Op::RemoveNet { name })
            }
            Kind::CreateSb | Kind::Publish => {
                if sbs.len() >= MAX_SANDBOXES {
                    return None;
                }
                let net = self.rng.pick(&attachable)?.clone();
                let port = (kind == Kind::Publish).then(|| {
                    self.next_port += 1;
                    self.next_port
                });
                Some(Op::CreateSb {
                    name: self.name("s"),
                    net,
                    port,
                })
            }
            Kind::RemoveSb => {
                let name = self.rng.pick(&sbs)?.clone();
                Some(Op::RemoveSb { name })
            }
            Kind::Connect | Kind::Disconnect => {
                let want = kind == Kind::Connect;
                let pairs: Vec<(String, String)> = snap
                    .sbs
                    .iter()
                    .flat_map(|s| attachable.iter().map(move |n| (s, n)))
                    .filter(|(s, n)| s.eps.contains_key(*n) != want)
                    .map(|(s, n)| (s.name.clone(), n.clone()))
                    .collect();
                let (sb, net) = self.rng.pick(&pairs)?.clone();
                Some(if want {
                    Op::Connect { sb, net }
                } else {
                    Op::Disconnect { sb, net }
                })
            }
            Kind::Rename => {
                let from = self.rng.pick(&sbs)?.clone();
                Some(Op::Rename {
                    from,
                    to: self.name("r"),
                })
            }
        }
    }

    /// The next operation: most of the time one that passes `point` (or makes it possible),
    /// otherwise one drawn from the whole mix.
    fn pick(&mut self, snap: &Snapshot, point: Option<&str>) -> Op {
        if let Some(p) = point {
            if self.rng.chance(0.45) {
                for kind in favoured(p) {
                    if let Some(op) = self.build(*kind, snap) {
                        return op;
                    }
                }
            }
        }
        let total: u32 = MIX.iter().map(|(_, w)| w).sum();
        loop {
            let mut roll = self.rng.below(total as usize) as u32;
            let kind = MIX
                .iter()
                .find(|(_, w)| {
                    let hit = roll < *w;
                    roll = roll.saturating_sub(*w);
                    hit
                })
                .map_or(Kind::CreateSb, |(k, _)| *k);
            if let Some(op) = self.build(kind, snap) {
                return op;
            }
        }
    }

    /// Sends `op`; the HTTP status and body, or the transport error (the daemon died).
    pub(crate) fn exec(&self, op: &Op) -> std::io::Result<(u16, String)> {
        let (method, path, body) = match op {
            Op::CreateNet { name, subnet } => (
                "POST",
                "/networks/create".to_owned(),
                Some(json!({"Name": name, "IPAM": {"Config": [{"Subnet": subnet}]}})),
            ),
            Op::RemoveNet { name } => ("DELETE", format!("/networks/{name}"), None),
            Op::CreateSb { name, net, port } => {
                let mut b = json!({"Name": name, "NetworkMode": net});
                if let Some(p) = port {
                    b["PortBindings"] = json!({"80/tcp": [{"HostPort": p.to_string()}]});
                }
                ("POST", "/sandboxes/create".to_owned(), Some(b))
            }
            Op::RemoveSb { name } => ("DELETE", format!("/sandboxes/{name}"), None),
            Op::Connect { sb, net } => (
                "POST",
                format!("/networks/{net}/connect"),
                Some(json!({ "Container": sb })),
            ),
            Op::Disconnect { sb, net } => (
                "POST",
                format!("/networks/{net}/disconnect"),
                Some(json!({ "Container": sb })),
            ),
            Op::Rename { from, to } => {
                ("POST", format!("/sandboxes/{from}/rename?name={to}"), None)
            }
        };
        let body = body.map(|b| b.to_string());
        let r = self.f.try_http(
            method,
            &path,
            body.as_ref().map(|_| "application/json"),
            body.as_ref().map(String::as_bytes),
        )?;
        Ok((r.status, String::from_utf8_lossy(&r.body).trim().to_owned()))
    }

    /// Runs operations biased towards `point` until the daemon dies or `cap` operations are
    /// done. Operations the daemon refused (it never should: each is valid on the state it was
    /// drawn from) are pushed to `failures`.
    pub(crate) fn segment(
        &mut self,
        point: Option<&str>,
        cap: usize,
        failures: &mut Vec<String>,
    ) -> Ended {
        for _ in 0..cap {
            let snap = match self.snapshot() {
                Ok(s) => s,
                Err(e) => return Ended::Broken(format!("listing failed with the daemon up: {e}")),
            };
            self.sync_banners(&snap);
            let op = self.pick(&snap, point);
            self.ops += 1;
            let sent = self.exec(&op);
            if let Ok((status, body)) = &sent {
                if !(200..300).contains(status) {
                    failures.push(format!("{op}: refused with {status} {body}"));
                }
            }
            let status = match &sent {
                Ok(_) => self.f.wait_exit(Duration::ZERO),
                Err(_) => self.f.wait_exit(Duration::from_secs(10)),
            };
            match (status, sent) {
                (None, Ok(_)) => continue,
                (None, Err(e)) => {
                    self.f.kill9();
                    return Ended::Broken(format!(
                        "{op}: the request failed ({e}) but the daemon did not die"
                    ));
                }
                (Some(s), _) if s.signal() == Some(libc_sigkill()) => {
                    return Ended::Killed { op, before: snap };
                }
                (Some(s), _) => {
                    return Ended::Broken(format!(
                        "{op}: the daemon exited with {s}, not by the armed SIGKILL; log tail:\n{}",
                        log_tail(&self.f.log(), 20)
                    ));
                }
            }
        }
        Ended::NotReached
    }
}

/// SIGKILL's number.
pub(crate) fn libc_sigkill() -> i32 {
    nix::sys::signal::Signal::SIGKILL as i32
}

/// The last `n` lines of a log.
pub(crate) fn log_tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

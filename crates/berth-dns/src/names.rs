//! The name service without sockets: networks, sandboxes, their attachments, and the answers a
//! sandbox gets. [`crate::Resolver`] serves it on 127.0.0.11; benchmarks and fuzz targets call it
//! directly.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use arc_swap::ArcSwap;
use rand::Rng;

use crate::error::{Error, Result};
use crate::files::MAX_UPSTREAMS;
use crate::table::{EndpointEntry, MAX_NAME_LEN, NameLookup, NetTable, View, ViewNet, key_of};
use crate::wire::{self, Action, Transport};

/// A network as the name service sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkDns {
    /// The network's id.
    pub id: String,
    /// Its name (queries may use `name.network`).
    pub name: String,
    /// `--internal`: sandboxes only on internal networks get no forwarding.
    pub internal: bool,
    /// User-defined network: its endpoints' names are served and its sandboxes use the embedded
    /// server. False for the default `bridge`, `host` and `none` networks, as in Docker.
    pub embedded_dns: bool,
}

/// One sandbox's endpoint on a network, as the name service sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointDns {
    /// The endpoint's id.
    pub endpoint_id: String,
    /// Network-scoped aliases (`--alias`; Docker's engine also adds the short container id and a
    /// user-given hostname here on user-defined networks).
    pub aliases: Vec<String>,
    /// The endpoint's IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// The endpoint's IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// `--link target:alias` on a user-defined network: `alias` resolves to `target`'s
    /// addresses, for this sandbox only. Pairs are `(target, alias)`.
    pub links: Vec<(String, String)>,
}

/// An endpoint of another host, for [`Names::add_remote`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEndpointDns {
    /// The endpoint's id.
    pub endpoint_id: String,
    /// Its sandbox's name.
    pub name: String,
    /// Its network-scoped aliases.
    pub aliases: Vec<String>,
    /// Its IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// Its IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
}

/// What the table names as the sandbox of a remote endpoint (no local sandbox has a name
/// with a colon).
const REMOTE_SANDBOX: &str = "remote:";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The upstreams a sandbox forwards to: `upstreams` without the embedded resolver's own
/// address (a forward to it is a forward to itself: dropped, with a warning), at most
/// [`MAX_UPSTREAMS`].
fn usable_upstreams(sandbox: &str, upstreams: &[SocketAddr]) -> Arc<[SocketAddr]> {
    upstreams
        .iter()
        .filter(|u| {
            let own = crate::loops::is_embedded_resolver(u);
            if own {
                tracing::warn!(
                    sandbox,
                    upstream = %u,
                    "berth-dns: upstream DNS server {u} is the embedded resolver itself; dropped (forwarding to it would loop)"
                );
            }
            !own
        })
        .take(MAX_UPSTREAMS)
        .copied()
        .collect()
}

fn check_name(what: &'static str, name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::Invalid {
            what,
            value: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return bad("a DNS name must have 1 to 253 characters");
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return bad("a DNS name cannot start or end with a dot or have two dots in a row");
    }
    if name.split('.').any(|l| l.len() > 63) {
        return bad("each dot-separated part of a DNS name has at most 63 characters");
    }
    if name
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return bad("a DNS name cannot contain spaces or control characters");
    }
    Ok(())
}

struct Attachment {
    table: Arc<NetTable>,
    endpoint_id: String,
    links: HashMap<Box<[u8]>, Box<[u8]>>,
}

struct SandboxState {
    name: String,
    attachments: Vec<Attachment>,
    upstreams: Arc<[SocketAddr]>,
}

pub(crate) struct SandboxNames {
    view: Arc<ArcSwap<View>>,
    state: Mutex<SandboxState>,
}

impl SandboxNames {
    fn rebuild(&self, st: &SandboxState) {
        let nets = st
            .attachments
            .iter()
            .filter(|a| a.table.embedded)
            .map(|a| ViewNet {
                table: a.table.clone(),
                links: a.links.clone(),
            })
            .collect();
        let forward = st.attachments.iter().any(|a| !a.table.internal);
        self.view.store(Arc::new(View {
            nets,
            forward,
            upstreams: st.upstreams.clone(),
        }));
    }
}

/// A sandbox's answering handle: lock-free, always the sandbox's current view.
#[derive(Clone)]
pub struct SandboxHandle {
    view: Arc<ArcSwap<View>>,
}

impl std::fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxHandle").finish_non_exhaustive()
    }
}

impl SandboxHandle {
    /// Answers one DNS message as the embedded server would for this sandbox: writes the answer
    /// into `out` ([`Action::Reply`]), or says to forward or drop it. Never panics on any input.
    pub fn respond(&self, packet: &[u8], transport: Transport, out: &mut Vec<u8>) -> Action {
        self.respond_with(packet, transport, &mut rand::rng(), out)
    }

    /// [`Self::respond`] with a caller-provided random source (for shuffling round-robin answers).
    pub fn respond_with<R: Rng>(
        &self,
        packet: &[u8],
        transport: Transport,
        rng: &mut R,
        out: &mut Vec<u8>,
    ) -> Action {
        wire::respond(packet, transport, &self.view.load(), rng, out)
    }

    /// The addresses `name` resolves to for this sandbox (empty if unknown).
    pub fn lookup(&self, name: &str) -> Vec<IpAddr> {
        match self.view.load().resolve(&key_of(name)) {
            NameLookup::Found(a) => {
                a.v4.iter()
                    .map(|&x| IpAddr::V4(x))
                    .chain(a.v6.iter().map(|&x| IpAddr::V6(x)))
                    .collect()
            }
            NameLookup::Unknown => Vec::new(),
        }
    }

    /// Whether unknown names are forwarded upstream (some attached network is not internal).
    pub fn forwards(&self) -> bool {
        self.view.load().forward
    }

    pub(crate) fn view(&self) -> &Arc<ArcSwap<View>> {
        &self.view
    }
}

/// The name service: networks with their name tables, sandboxes with their views.
///
/// Every change (connect, disconnect, rename) costs in proportion to the names it touches and is
/// visible to the next query; queries never take a lock.
#[derive(Default)]
pub struct Names {
    networks: RwLock<HashMap<String, Arc<NetTable>>>,
    sandboxes: RwLock<HashMap<String, Arc<SandboxNames>>>,
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Names").finish_non_exhaustive()
    }
}

impl Names {
    /// An empty name service.
    pub fn new() -> Names {
        Names::default()
    }

    fn network(&self, id: &str) -> Result<Arc<NetTable>> {
        self.networks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| Error::UnknownNetwork(id.to_owned()))
    }

    fn sandbox(&self, id: &str) -> Result<Arc<SandboxNames>> {
        self.sandboxes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| Error::UnknownSandbox(id.to_owned()))
    }

    /// Adds a network. Adding the same network again is a no-op; the same id with other settings
    /// is refused.
    pub fn add_network(&self, net: &NetworkDns) -> Result<()> {
        if net.embedded_dns {
            check_name("network name", &net.name)?;
        }
        let mut nets = self.networks.write().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = nets.get(&net.id) {
            if t.name == net.name && t.internal == net.internal && t.embedded == net.embedded_dns {
                return Ok(());
            }
            return Err(Error::AlreadyRegistered {
                object: format!("network {:?}", net.id),
            });
        }
        nets.insert(
            net.id.clone(),
            Arc::new(NetTable::new(
                &net.id,
                &net.name,
                net.internal,
                net.embedded_dns,
            )),
        );
        Ok(())
    }

    /// Removes a network (sandboxes still attached keep answering from it until they disconnect).
    pub fn remove_network(&self, id: &str) -> Result<()> {
        self.networks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| Error::UnknownNetwork(id.to_owned()))
    }

    /// Adds a sandbox named `name` (its DNS name on every user-defined network it joins), whose
    /// embedded server forwards to `upstreams` (at most [`MAX_UPSTREAMS`] are used). An upstream
    /// on the embedded resolver's own address (127.0.0.11, any port) is dropped with a warning,
    /// as Docker does: forwarding to it would loop.
    pub fn add_sandbox(
        &self,
        id: &str,
        name: &str,
        upstreams: &[SocketAddr],
    ) -> Result<SandboxHandle> {
        check_name("sandbox name", name)?;
        let mut sbs = self.sandboxes.write().unwrap_or_else(|p| p.into_inner());
        if sbs.contains_key(id) {
            return Err(Error::AlreadyRegistered {
                object: format!("sandbox {id:?}"),
            });
        }
        let upstreams = usable_upstreams(id, upstreams);
        let sb = Arc::new(SandboxNames {
            view: Arc::new(ArcSwap::from_pointee(View {
                nets: Vec::new(),
                forward: false,
                upstreams: upstreams.clone(),
            })),
            state: Mutex::new(SandboxState {
                name: name.to_owned(),
                attachments: Vec::new(),
                upstreams,
            }),
        });
        let handle = SandboxHandle {
            view: sb.view.clone(),
        };
        sbs.insert(id.to_owned(), sb);
        Ok(handle)
    }

    /// The answering handle of a sandbox.
    pub fn handle(&self, sandbox: &str) -> Result<SandboxHandle> {
        Ok(SandboxHandle {
            view: self.sandbox(sandbox)?.view.clone(),
        })
    }

    /// Replaces a sandbox's upstream servers (the embedded resolver's own address is dropped,
    /// as in [`Self::add_sandbox`]).
    pub fn set_upstreams(&self, sandbox: &str, upstreams: &[SocketAddr]) -> Result<()> {
        let sb = self.sandbox(sandbox)?;
        let mut st = lock(&sb.state);
        st.upstreams = usable_upstreams(sandbox, upstreams);
        sb.rebuild(&st);
        Ok(())
    }

    /// Attaches a sandbox to a network: on a user-defined network its name and aliases resolve
    /// to the endpoint's addresses from then on, for every sandbox on that network. Returns
    /// whether the network is user-defined (the sandbox then needs its embedded server).
    pub fn connect(&self, sandbox: &str, network: &str, ep: &EndpointDns) -> Result<bool> {
        let sb = self.sandbox(sandbox)?;
        let table = self.network(network)?;
        for a in &ep.aliases {
            check_name("alias", a)?;
        }
        let mut links = HashMap::new();
        for (target, alias) in &ep.links {
            check_name("link target", target)?;
            check_name("link alias", alias)?;
            links.insert(key_of(alias), key_of(target));
        }
        let mut st = lock(&sb.state);
        if st.attachments.iter().any(|a| a.table.id == table.id) {
            return Err(Error::AlreadyAttached {
                sandbox: sandbox.to_owned(),
                network: network.to_owned(),
            });
        }
        if table.embedded {
            table.upsert(
                &ep.endpoint_id,
                EndpointEntry {
                    sandbox: sandbox.to_owned(),
                    name: st.name.clone(),
                    aliases: ep.aliases.clone(),
                    ipv4: ep.ipv4,
                    ipv6: ep.ipv6,
                },
            );
        }
        st.attachments.push(Attachment {
            table: table.clone(),
            endpoint_id: ep.endpoint_id.clone(),
            links,
        });
        sb.rebuild(&st);
        Ok(table.embedded)
    }

    /// Adds (or replaces) an endpoint of another host on a network shared by hosts (an
    /// overlay): its name and aliases resolve to its addresses for every sandbox of this host
    /// on the network, as a local endpoint's do. Its checks are the local ones.
    pub fn add_remote(&self, network: &str, ep: &RemoteEndpointDns) -> Result<()> {
        let table = self.network(network)?;
        check_name("sandbox name", &ep.name)?;
        for a in &ep.aliases {
            check_name("alias", a)?;
        }
        if table.embedded {
            table.upsert(
                &ep.endpoint_id,
                EndpointEntry {
                    sandbox: format!("{REMOTE_SANDBOX}{}", ep.endpoint_id),
                    name: ep.name.clone(),
                    aliases: ep.aliases.clone(),
                    ipv4: ep.ipv4,
                    ipv6: ep.ipv6,
                },
            );
        }
        Ok(())
    }

    /// Removes an endpoint [`Names::add_remote`] added; its names stop resolving at once. One
    /// that is not there is no error.
    pub fn remove_remote(&self, network: &str, endpoint_id: &str) -> Result<()> {
        let table = self.network(network)?;
        if table
            .entry(endpoint_id)
            .is_some_and(|e| e.sandbox.starts_with(REMOTE_SANDBOX))
        {
            table.remove(endpoint_id);
        }
        Ok(())
    }

    /// Detaches a sandbox from a network; its names on that network stop resolving at once.
    pub fn disconnect(&self, sandbox: &str, network: &str) -> Result<()> {
        let sb = self.sandbox(sandbox)?;
        let mut st = lock(&sb.state);
        let Some(pos) = st.attachments.iter().position(|a| a.table.id == network) else {
            return Err(Error::Invalid {
                what: "disconnect",
                value: format!("{sandbox} from {network}"),
                reason: "the sandbox is not attached to that network".into(),
            });
        };
        let att = st.attachments.remove(pos);
        att.table.remove(&att.endpoint_id);
        sb.rebuild(&st);
        Ok(())
    }

    /// Renames a sandbox: its new name resolves (and its addresses' PTR records point to it) on
    /// every network at once, and the old name stops resolving.
    pub fn rename_sandbox(&self, sandbox: &str, new_name: &str) -> Result<()> {
        check_name("sandbox name", new_name)?;
        let sb = self.sandbox(sandbox)?;
        let mut st = lock(&sb.state);
        st.name = new_name.to_owned();
        for a in st.attachments.iter().filter(|a| a.table.embedded) {
            if let Some(mut e) = a.table.entry(&a.endpoint_id) {
                e.name = new_name.to_owned();
                a.table.upsert(&a.endpoint_id, e);
            }
        }
        Ok(())
    }

    /// Removes a sandbox, detaching it from every network.
    pub fn remove_sandbox(&self, sandbox: &str) -> Result<()> {
        let sb = self
            .sandboxes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sandbox)
            .ok_or_else(|| Error::UnknownSandbox(sandbox.to_owned()))?;
        let mut st = lock(&sb.state);
        for a in st.attachments.drain(..) {
            a.table.remove(&a.endpoint_id);
        }
        sb.rebuild(&st);
        Ok(())
    }

    /// Whether the sandbox is attached to a user-defined network (and so uses the embedded
    /// server; its resolv.conf is [`crate::ResolvMode::Embedded`]).
    pub fn uses_embedded_dns(&self, sandbox: &str) -> Result<bool> {
        let sb = self.sandbox(sandbox)?;
        let st = lock(&sb.state);
        Ok(st.attachments.iter().any(|a| a.table.embedded))
    }

    /// How many endpoints a network's table holds.
    pub fn endpoint_count(&self, network: &str) -> Result<usize> {
        Ok(self.network(network)?.endpoint_count())
    }

    /// The ids of the endpoints a sandbox has on a network's table.
    pub fn endpoints_of(&self, network: &str, sandbox: &str) -> Result<Vec<String>> {
        Ok(self.network(network)?.endpoints_of(sandbox))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn remote_endpoints_resolve_on_their_network_only() {
        let names = Names::new();
        for (id, name) in [("n1", "ov1"), ("n2", "ov2")] {
            names
                .add_network(&NetworkDns {
                    id: id.into(),
                    name: name.into(),
                    internal: false,
                    embedded_dns: true,
                })
                .unwrap();
        }
        let on_n1 = names.add_sandbox("s1", "local1", &[]).unwrap();
        names
            .connect(
                "s1",
                "n1",
                &EndpointDns {
                    endpoint_id: "e1".into(),
                    ipv4: Some(Ipv4Addr::new(10, 0, 0, 2)),
                    ..Default::default()
                },
            )
            .unwrap();
        let on_n2 = names.add_sandbox("s2", "local2", &[]).unwrap();
        names
            .connect(
                "s2",
                "n2",
                &EndpointDns {
                    endpoint_id: "e2".into(),
                    ipv4: Some(Ipv4Addr::new(10, 0, 1, 2)),
                    ..Default::default()
                },
            )
            .unwrap();
        let remote = RemoteEndpointDns {
            endpoint_id: "r1".into(),
            name: "far".into(),
            aliases: vec!["db".into()],
            ipv4: Some(Ipv4Addr::new(10, 0, 0, 3)),
            ipv6: None,
        };
        names.add_remote("n1", &remote).unwrap();
        let far: Vec<IpAddr> = vec![Ipv4Addr::new(10, 0, 0, 3).into()];
        assert_eq!(on_n1.lookup("far"), far);
        assert_eq!(on_n1.lookup("db"), far);
        assert!(
            on_n2.lookup("far").is_empty(),
            "not on the sandbox's network"
        );
        // A local endpoint's id is never taken for a remote one.
        names.remove_remote("n1", "e1").unwrap();
        assert_eq!(on_n1.lookup("local1").len(), 1);
        names.remove_remote("n1", "r1").unwrap();
        assert!(on_n1.lookup("far").is_empty());
        names.remove_remote("n1", "r1").unwrap();
        let bad = RemoteEndpointDns {
            name: "bad name".into(),
            ..remote
        };
        assert!(names.add_remote("n1", &bad).is_err());
        assert!(names.add_remote("nope", &bad).is_err());
    }
}

//! The drivers' shared core and a network's kernel side: the claim on a parent interface (one
//! network per parent), the parent itself when berth makes it (an 802.1q sub-interface, or the
//! veth pair of an internal network), marked, and its removal with the network.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use berth_driver::{DriverError, EndpointId, NetworkId, NetworkSpec, Result};
use berth_netlink::{
    Handle, IpvlanMode, LinkSpec, LinkUpdate, MacvlanMode, Netns, VethPeer, sysctl_set,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::IpvlanFlag;
use crate::endpoint::Endpoint;
use crate::error::MacvlanError;
use crate::marker::Marker;
use crate::options::parse_vlan_parent;
use crate::probe;

/// Which of the two drivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Macvlan,
    Ipvlan,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Macvlan => "macvlan",
            Kind::Ipvlan => "ipvlan",
        }
    }

    /// Docker's prefix of a network's internal parent (its dummy link there): `dm-`, `di-`.
    pub(crate) fn internal_prefix(self) -> &'static str {
        match self {
            Kind::Macvlan => "dm-",
            Kind::Ipvlan => "di-",
        }
    }

    /// The prefix of the other end of the internal parent's veth pair.
    fn peer_prefix(self) -> &'static str {
        match self {
            Kind::Macvlan => "pm-",
            Kind::Ipvlan => "pi-",
        }
    }
}

/// The kind of interface a network's endpoints get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildMode {
    Macvlan(MacvlanMode),
    Ipvlan(IpvlanMode, IpvlanFlag),
}

impl ChildMode {
    /// Layer-3 ipvlan: no gateway, a default route through the device instead.
    pub(crate) fn routed(self) -> bool {
        matches!(self, ChildMode::Ipvlan(IpvlanMode::L3 | IpvlanMode::L3s, _))
    }

    pub(crate) fn passthru(self) -> bool {
        self == ChildMode::Macvlan(MacvlanMode::Passthru)
    }

    pub(crate) fn describe(self) -> String {
        match self {
            ChildMode::Macvlan(m) => format!("{m:?}").to_lowercase(),
            ChildMode::Ipvlan(m, f) => format!("{m:?} {f:?}").to_lowercase(),
        }
    }
}

/// A parent berth made for a network (and deletes with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Made {
    /// The link the parent option names: an 802.1q sub-interface berth made (now or in an
    /// earlier run, as its mark proves).
    Named,
    /// The internal network's veth pair; this is the other end's name.
    Internal { peer: String },
}

#[derive(Debug)]
pub(crate) struct Network {
    pub(crate) name: String,
    /// The host interface the endpoints hang off.
    pub(crate) parent: String,
    /// Whether berth made the parent (then it goes with the network).
    pub(crate) made: Option<Made>,
    pub(crate) mode: ChildMode,
    /// No gateway: `--internal`, or no parent given.
    pub(crate) internal: bool,
    pub(crate) v4: Vec<(Ipv4Net, Option<Ipv4Addr>)>,
    pub(crate) v6: Vec<(Ipv6Net, Option<Ipv6Addr>)>,
    pub(crate) endpoints: Mutex<HashMap<EndpointId, Endpoint>>,
}

impl Network {
    pub(crate) fn endpoints(&self) -> MutexGuard<'_, HashMap<EndpointId, Endpoint>> {
        self.endpoints.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What both drivers share: their state and the kernel work. `Send + Sync`.
///
/// Locks: `parents` may be held while `networks` is taken, never the other way round; a
/// network's `endpoints` is taken last. None is held over kernel work but the claim check.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) kind: Kind,
    pub(crate) host: Netns,
    pub(crate) nl: Handle,
    pub(crate) marker: Marker,
    /// Whether the kernel has the driver's link kind (ipvlan only), once asked.
    support: OnceLock<bool>,
    networks: RwLock<HashMap<NetworkId, Arc<Network>>>,
    /// Parent interfaces claimed by a network, from before the kernel work of its creation
    /// until it is deleted (or its creation failed).
    parents: Mutex<HashMap<String, NetworkId>>,
}

impl Core {
    pub(crate) fn new(kind: Kind, host: &Netns, instance: &str) -> Result<Core> {
        let marker = Marker::new(instance, kind.name())
            .map_err(|e| e.into_driver(format!("setting up the {} driver", kind.name())))?;
        let nl = Handle::open(host)
            .map_err(|e| DriverError::kernel("opening netlink in the host namespace", e))?;
        let host = host
            .try_clone()
            .map_err(|e| DriverError::kernel("duplicating the host namespace handle", e))?;
        Ok(Core {
            kind,
            host,
            nl,
            marker,
            support: OnceLock::new(),
            networks: RwLock::new(HashMap::new()),
            parents: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, HashMap<NetworkId, Arc<Network>>> {
        self.networks.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<NetworkId, Arc<Network>>> {
        self.networks.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn parents(&self) -> MutexGuard<'_, HashMap<String, NetworkId>> {
        self.parents.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn network(&self, id: &NetworkId) -> Result<Arc<Network>> {
        self.read()
            .get(id)
            .cloned()
            .ok_or_else(|| DriverError::NetworkNotFound(id.to_string()))
    }

    /// The internal parent of a network: Docker's dummy name (`dm-`/`di-` + short id).
    pub(crate) fn internal_name(&self, id: &NetworkId) -> String {
        format!("{}{}", self.kind.internal_prefix(), id.short())
    }

    fn internal_peer_name(&self, id: &NetworkId) -> String {
        format!("{}{}", self.kind.peer_prefix(), id.short())
    }

    /// Fails with the typed error when the kernel lacks the driver's link kind (asked once,
    /// for ipvlan; macvlan is not asked ahead: a kernel without it fails the first join).
    pub(crate) fn check_supported(&self, operation: impl Fn() -> String) -> Result<()> {
        if self.kind != Kind::Ipvlan {
            return Ok(());
        }
        let supported = match self.support.get() {
            Some(s) => *s,
            None => {
                let s = probe::ipvlan(&self.nl).map_err(|e| {
                    DriverError::kernel(
                        format!("{}: probing the kernel for ipvlan", operation()),
                        e,
                    )
                })?;
                *self.support.get_or_init(|| s)
            }
        };
        if supported {
            Ok(())
        } else {
            Err(MacvlanError::IpvlanUnsupported.into_driver(operation()))
        }
    }

    /// Creates a network (or converges on it, when it exists: a restore).
    pub(crate) fn create_network(
        &self,
        spec: &NetworkSpec,
        parent: Option<&str>,
        mode: ChildMode,
    ) -> Result<()> {
        let creating = || format!("creating {} network {}", self.kind.name(), spec.name);
        self.check_supported(creating)?;
        self.claim_and_set_up(spec, parent, mode, false)
    }

    /// After a restart: takes a stored network back, converging on what exists. A parent that
    /// cannot be set up (gone, or a kernel that lost a driver) does not fail the restore: the
    /// network comes back, and its joins report what is missing.
    pub(crate) fn restore_network(
        &self,
        spec: &NetworkSpec,
        parent: Option<&str>,
        mode: ChildMode,
    ) -> Result<()> {
        self.claim_and_set_up(spec, parent, mode, true)
    }

    fn claim_and_set_up(
        &self,
        spec: &NetworkSpec,
        parent: Option<&str>,
        mode: ChildMode,
        restoring: bool,
    ) -> Result<()> {
        let creating = || format!("creating {} network {}", self.kind.name(), spec.name);
        let internal_parent = parent.is_none();
        let parent = parent.map_or_else(|| self.internal_name(&spec.id), str::to_owned);
        {
            // The check and the claim are one step; the kernel work runs after, without it.
            let mut claims = self.parents();
            if self
                .read()
                .get(&spec.id)
                .is_some_and(|n| n.parent == parent)
            {
                return Ok(());
            }
            match claims.get(&parent) {
                Some(other) if *other != spec.id => {
                    let other = format!("{}{}", self.kind.internal_prefix(), other.short());
                    return Err(MacvlanError::ParentInUse { other, parent }.into_driver(creating()));
                }
                Some(_) => {
                    return Err(DriverError::Exists(format!(
                        "network {} (being created on {parent})",
                        spec.id.short()
                    )));
                }
                None => {
                    claims.insert(parent.clone(), spec.id.clone());
                }
            }
        }
        let made = match self.set_up_parent(spec, &parent, internal_parent) {
            Ok(made) => made,
            Err(e) if restoring => {
                tracing::warn!(network = %spec.name, %parent, error = %e, "restoring a network whose parent cannot be set up: its joins will fail until it exists");
                None
            }
            Err(e) => {
                self.release(&parent, &spec.id);
                return Err(e);
            }
        };
        let v4 = spec
            .ipv4
            .iter()
            .filter_map(|p| match (p.pool, p.gateway.map(|g| g.addr())) {
                (IpNet::V4(pool), Some(IpAddr::V4(gw))) => Some((pool, Some(gw))),
                (IpNet::V4(pool), _) => Some((pool, None)),
                _ => None,
            })
            .collect();
        let v6 = spec
            .ipv6
            .iter()
            .filter_map(|p| match (p.pool, p.gateway.map(|g| g.addr())) {
                (IpNet::V6(pool), Some(IpAddr::V6(gw))) => Some((pool, Some(gw))),
                (IpNet::V6(pool), _) => Some((pool, None)),
                _ => None,
            })
            .collect();
        let net = Network {
            name: spec.name.clone(),
            parent: parent.clone(),
            made,
            mode,
            internal: spec.internal || internal_parent,
            v4,
            v6,
            endpoints: Mutex::new(HashMap::new()),
        };
        let replaced = self.write().insert(spec.id.clone(), Arc::new(net));
        if let Some(old) = replaced.filter(|old| old.parent != parent) {
            self.release(&old.parent, &spec.id);
        }
        Ok(())
    }

    /// Gives up `network`'s claim on `parent` (if it still holds it).
    fn release(&self, parent: &str, network: &NetworkId) {
        let mut claims = self.parents();
        if claims.get(parent) == Some(network) {
            claims.remove(parent);
        }
    }

    /// Finds, adopts or makes the network's parent. Returns what berth made (and owns).
    fn set_up_parent(
        &self,
        spec: &NetworkSpec,
        parent: &str,
        internal: bool,
    ) -> Result<Option<Made>> {
        let nl = &self.nl;
        let creating = || format!("creating {} network {}", self.kind.name(), spec.name);
        let mark = self.marker.mark(spec.id.as_str());
        let existing = nl
            .link_get(parent)
            .map_err(|e| DriverError::kernel(format!("looking up parent {parent}"), e))?;
        if internal {
            let peer = self.internal_peer_name(&spec.id);
            return match existing {
                Some(link)
                    if self.marker.marked_id(link.alias.as_deref()) == Some(spec.id.as_str()) =>
                {
                    // Made by an earlier run: both ends up again.
                    for end in [parent, peer.as_str()] {
                        nl.link_set_up(end)
                            .map_err(|e| DriverError::kernel(format!("bringing {end} up"), e))?;
                    }
                    Ok(Some(Made::Internal { peer }))
                }
                Some(_) => Err(MacvlanError::ForeignLink {
                    link: parent.to_owned(),
                    network: spec.name.clone(),
                }
                .into_driver(creating())),
                None => self.make_internal(spec, parent, &peer, &mark).map(Some),
            };
        }
        if let Some(link) = existing {
            return match self.marker.marked_id(link.alias.as_deref()) {
                // Made for this network in an earlier run.
                Some(id) if id == spec.id.as_str() => Ok(Some(Made::Named)),
                // Made for another network of this driver that is still here (the other end
                // of an internal network's pair): not to be taken, nor deleted with this one.
                Some(id) if self.read().keys().any(|n| n.as_str() == id) => {
                    let other = format!("{}{}", self.kind.internal_prefix(), &id[..12]);
                    Err(MacvlanError::ParentInUse {
                        other,
                        parent: parent.to_owned(),
                    }
                    .into_driver(creating()))
                }
                // Left by a network of this instance that is gone: berth's, marked as this
                // network's from now on.
                Some(_) => {
                    nl.link_set_alias(link.index, &mark)
                        .map_err(|e| DriverError::kernel(format!("marking {parent}"), e))?;
                    Ok(Some(Made::Named))
                }
                // The user's (or Docker's, or another berth's): used as it is, never deleted.
                None => Ok(None),
            };
        }
        let (base, vid) = parse_vlan_parent(parent).map_err(|e| e.into_driver(creating()))?;
        let base_exists = nl
            .link_get(base.as_str())
            .map_err(|e| DriverError::kernel(format!("looking up {base}"), e))?
            .is_some();
        if !base_exists {
            return Err(MacvlanError::VlanBaseNotFound {
                parent: parent.to_owned(),
                base,
            }
            .into_driver(creating()));
        }
        let vlan = LinkSpec::vlan(parent, base.as_str(), vid)
            .alias(mark.as_str())
            .up();
        match nl.link_add(&vlan) {
            Ok(()) => Ok(Some(Made::Named)),
            Err(e) if e.is_unknown_link_kind() => Err(MacvlanError::VlanUnsupported {
                link: parent.to_owned(),
            }
            .into_driver(creating())),
            Err(e) => Err(DriverError::kernel(
                format!("creating 802.1q sub-interface {parent} (VLAN {vid}) on {base}"),
                e,
            )),
        }
    }

    /// The internal network's parent: a veth pair, both ends up (so the endpoints have
    /// carrier), both marked, without IPv6 of their own. Nothing is left when it fails.
    fn make_internal(
        &self,
        spec: &NetworkSpec,
        parent: &str,
        peer: &str,
        mark: &str,
    ) -> Result<Made> {
        let nl = &self.nl;
        nl.link_add(&LinkSpec::veth(parent, VethPeer::new(peer)).alias(mark).up())
            .map_err(|e| {
                DriverError::kernel(
                    format!(
                        "creating the internal parent {parent} of network {}",
                        spec.name
                    ),
                    e,
                )
            })?;
        if let Err(e) = nl.link_update(peer, &LinkUpdate::new().up().alias(mark)) {
            let _ = nl.link_delete(parent);
            return Err(DriverError::kernel(
                format!("bringing {peer} up and marking it"),
                e,
            ));
        }
        for end in [parent, peer] {
            // The ends carry no address; without IPv6 they send nothing of their own.
            let key = format!("net.ipv6.conf.{end}.disable_ipv6");
            if let Err(e) = sysctl_set(&self.host, &key, "1") {
                tracing::debug!(link = %end, error = %e, "IPv6 left on an internal parent");
            }
        }
        Ok(Made::Internal {
            peer: peer.to_owned(),
        })
    }

    /// Deletes the network: the parent when berth made it (which takes every endpoint
    /// interface on it along), and the claim.
    pub(crate) fn delete_network(&self, id: &NetworkId) -> Result<()> {
        let net = self.network(id)?;
        let result = match &net.made {
            None => Ok(()),
            Some(_) => self.delete_marked(&net.parent, id.as_str()),
        };
        self.write().remove(id);
        self.release(&net.parent, id);
        result
    }

    /// Deletes link `name` if it carries the mark of `id` (a link of that name made by someone
    /// else since is left alone); a missing link is no error.
    pub(crate) fn delete_marked(&self, name: &str, id: &str) -> Result<()> {
        let link = match self.nl.link_get(name) {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(()),
            Err(e) => return Err(DriverError::kernel(format!("looking up {name}"), e)),
        };
        if self.marker.marked_id(link.alias.as_deref()) != Some(id) {
            tracing::info!(link = %name, "not deleted: it no longer carries berth's mark");
            return Ok(());
        }
        match self.nl.link_delete(link.index) {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(DriverError::kernel(format!("deleting {name}"), e)),
        }
    }
}

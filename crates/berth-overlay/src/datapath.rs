//! One network's data path on one host, as Docker's overlay builds it: a network namespace of
//! its own (`ov-<first 12 hex digits of the network id>` in the driver's namespace directory)
//! holding a bridge (`br0`, with the subnets' gateway addresses) and the network's VXLAN
//! device (`vxlan0`: learning off, ARP and neighbour discovery answered locally from its
//! neighbour table, UDP 4789). The VXLAN device is created from the host namespace straight
//! into the network's, so its encapsulated packets use the host's underlay. Each sandbox
//! joins with a veth pair whose other end is a port of `br0`.
//!
//! Remote endpoints are static entries on `vxlan0`: a neighbour entry (address to MAC, so a
//! sandbox's ARP request is answered without leaving the host) and a forwarding entry (MAC to
//! the remote host's underlay address). One endpoint is one entry of each, whatever the size
//! of the network.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use berth_driver::{DriverError, EndpointId, Result};
use berth_netlink::{AddrSpec, FdbSpec, Handle, LinkKind, LinkSpec, NeighSpec, Netns, Vxlan};
use ipnet::IpNet;

use crate::cluster::PeerRecord;

/// The bridge inside a network's namespace.
pub const BRIDGE: &str = "br0";
/// The VXLAN device inside a network's namespace.
pub const VXLAN: &str = "vxlan0";
/// The UDP port of the VXLAN devices (IANA's, as Docker).
pub const VXLAN_PORT: u16 = 4789;
/// Prefix of the network namespaces the driver makes.
pub const NETNS_PREFIX: &str = "ov-";

/// The name of a network's namespace.
pub fn netns_name(network: &berth_driver::NetworkId) -> String {
    format!("{NETNS_PREFIX}{}", network.short())
}

/// The host end of an endpoint's veth, a port of `br0` in the network's namespace.
pub(crate) fn port_name(endpoint: &EndpointId) -> String {
    format!("veth{}", &endpoint.as_str()[..10])
}

/// What a network's data path is built from.
pub(crate) struct Layout<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) name: String,
    pub(crate) vni: u32,
    pub(crate) mtu: u32,
    pub(crate) local: IpAddr,
    pub(crate) gateways: &'a [IpNet],
}

/// A network's namespace on this host, and the remote endpoints programmed in it.
#[derive(Debug)]
pub(crate) struct DataPath {
    pub(crate) ns: Netns,
    pub(crate) nl: Handle,
    /// Remote endpoints whose entries are on `vxlan0`.
    pub(crate) programmed: HashMap<EndpointId, PeerRecord>,
}

impl DataPath {
    /// Makes the network's namespace, bridge and VXLAN device, or takes back the ones a
    /// previous run of berth made (converging on what is missing). On error, what this call
    /// made is removed.
    pub(crate) fn build(host: &Handle, layout: &Layout<'_>) -> Result<DataPath> {
        let path = layout.dir.join(&layout.name);
        let what = || format!("the overlay namespace {}", path.display());
        let (ns, made) = match Netns::create_in(layout.dir, &layout.name) {
            Ok(ns) => (ns, true),
            Err(e) if e.is_exists() => (
                Netns::open(&path)
                    .map_err(|e| DriverError::kernel(format!("opening {}", what()), e))?,
                false,
            ),
            Err(e) => return Err(DriverError::kernel(format!("creating {}", what()), e)),
        };
        let nl = match Handle::open(&ns) {
            Ok(nl) => nl,
            Err(e) => {
                if made {
                    let _ = ns.delete();
                }
                return Err(DriverError::kernel(
                    format!("opening netlink in {}", what()),
                    e,
                ));
            }
        };
        let dp = DataPath {
            ns,
            nl,
            programmed: HashMap::new(),
        };
        match dp.converge(host, layout) {
            Ok(()) => Ok(dp),
            Err(e) => {
                if made {
                    dp.destroy();
                }
                Err(e)
            }
        }
    }

    fn converge(&self, host: &Handle, l: &Layout<'_>) -> Result<()> {
        let nl = &self.nl;
        let k = |what: &str| format!("{what} in overlay namespace {}", l.name);
        nl.link_set_up("lo")
            .map_err(|e| DriverError::kernel(k("bringing lo up"), e))?;
        match nl.link_add(&LinkSpec::bridge(BRIDGE).mtu(l.mtu).mcast_snooping(false)) {
            Ok(()) => {}
            Err(e) if e.is_exists() => {}
            Err(e) => return Err(DriverError::kernel(k("creating bridge br0"), e)),
        }
        for gw in l.gateways {
            let spec = AddrSpec::new(*gw);
            let spec = if gw.addr().is_ipv6() {
                spec.nodad()
            } else {
                spec
            };
            match nl.addr_add(BRIDGE, &spec) {
                Ok(()) => {}
                Err(e) if e.is_exists() => {}
                Err(e) => return Err(DriverError::kernel(k(&format!("adding {gw} to br0")), e)),
            }
        }
        let vxlan = Vxlan::new(l.vni)
            .port(VXLAN_PORT)
            .local(l.local)
            .learning(false)
            .proxy(true);
        let have = nl
            .link_get(VXLAN)
            .map_err(|e| DriverError::kernel(k("looking up vxlan0"), e))?;
        match have {
            Some(link) if link.kind == Some(LinkKind::Vxlan) => {}
            Some(_) => {
                return Err(DriverError::InvalidConfig(format!(
                    "{} holds a link named vxlan0 that is not a VXLAN device",
                    l.name
                )));
            }
            None => {
                let spec = LinkSpec::vxlan(VXLAN, vxlan).mtu(l.mtu).netns(&self.ns);
                host.link_add(&spec).map_err(|e| {
                    if e.is_exists() {
                        DriverError::InvalidConfig(format!(
                            "VXLAN id {} is in use on this host by a device berth did not make \
                             for this network (`ip -d link show type vxlan` shows it)",
                            l.vni
                        ))
                    } else {
                        DriverError::kernel(k(&format!("creating vxlan0 (VXLAN id {})", l.vni)), e)
                    }
                })?;
            }
        }
        nl.link_set_master(VXLAN, BRIDGE)
            .map_err(|e| DriverError::kernel(k("attaching vxlan0 to br0"), e))?;
        nl.link_set_up(VXLAN)
            .map_err(|e| DriverError::kernel(k("bringing vxlan0 up"), e))?;
        nl.link_set_up(BRIDGE)
            .map_err(|e| DriverError::kernel(k("bringing br0 up"), e))
    }

    /// Programs a remote endpoint: its address answered from `vxlan0`'s neighbour table, its
    /// MAC sent to its host's underlay address. Replaces what an earlier record of the same
    /// endpoint programmed.
    pub(crate) fn program(&mut self, ep: &EndpointId, peer: &PeerRecord) -> Result<()> {
        if let Some(old) = self.programmed.get(ep) {
            if old == peer {
                return Ok(());
            }
            let old = old.clone();
            self.unprogram(ep, &old);
        }
        let fdb = FdbSpec::new(VXLAN, peer.mac).dst(peer.vtep).on_self();
        self.nl.fdb_replace(&fdb).map_err(|e| {
            DriverError::kernel(format!("adding {} -> {} on vxlan0", peer.mac, peer.vtep), e)
        })?;
        for ip in peer_ips(peer) {
            if let Err(e) = self.nl.neigh_replace(&NeighSpec::new(VXLAN, ip, peer.mac)) {
                let _ = self.nl.fdb_delete(&fdb);
                return Err(DriverError::kernel(
                    format!("adding neighbour {ip} at {} on vxlan0", peer.mac),
                    e,
                ));
            }
        }
        self.programmed.insert(ep.clone(), peer.clone());
        Ok(())
    }

    /// Removes a remote endpoint's entries (those already gone are no error).
    pub(crate) fn forget(&mut self, ep: &EndpointId) {
        if let Some(old) = self.programmed.remove(ep) {
            self.unprogram(ep, &old);
        }
    }

    fn unprogram(&mut self, ep: &EndpointId, old: &PeerRecord) {
        for ip in peer_ips(old) {
            if let Err(e) = self.nl.neigh_delete(VXLAN, ip) {
                if !e.is_not_found() {
                    tracing::warn!(endpoint = %ep.short(), %ip, error = %e, "removing a peer's neighbour entry");
                }
            }
        }
        let fdb = FdbSpec::new(VXLAN, old.mac).dst(old.vtep).on_self();
        if let Err(e) = self.nl.fdb_delete(&fdb) {
            if !e.is_not_found() {
                tracing::warn!(endpoint = %ep.short(), mac = %old.mac, error = %e, "removing a peer's forwarding entry");
            }
        }
        self.programmed.remove(ep);
    }

    /// Removes the namespace, with its VXLAN device first (so that the VXLAN id is free on this
    /// host when this returns, not once the kernel gets round to the namespace).
    pub(crate) fn destroy(self) {
        if let Err(e) = self.nl.link_delete(VXLAN) {
            if !e.is_not_found() {
                tracing::warn!(error = %e, "deleting vxlan0 of an overlay namespace");
            }
        }
        drop(self.nl);
        if let Err(e) = self.ns.delete() {
            tracing::warn!(error = %e, "deleting an overlay namespace");
        }
    }
}

fn peer_ips(p: &PeerRecord) -> impl Iterator<Item = IpAddr> {
    p.ipv4
        .map(IpAddr::V4)
        .into_iter()
        .chain(p.ipv6.map(IpAddr::V6))
}

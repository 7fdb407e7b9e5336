//! Endpoints: the macvlan or ipvlan interface of an endpoint, made on the network's parent
//! straight into the sandbox under its final name (marked, with its MAC and the parent's MTU),
//! then addressed, brought up and routed there; deleted from the sandbox on leave.

use berth_driver::{
    DriverError, EndpointId, EndpointOperInfo, EndpointSpec, InterfaceInfo, JoinInfo, JoinRequest,
    MacAddr, NetworkId, OptionReader, Result, StaticRoute, local_mac_from_bytes, mac_from_ipv4,
};
use berth_netlink::{AddrSpec, Handle, LinkSpec, LinkUpdate, Netns, RouteSpec, sysctl_set};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::IpvlanFlag;
use crate::error::MacvlanError;
use crate::network::{ChildMode, Core, Kind, Network};

/// An endpoint the driver knows.
#[derive(Debug)]
pub(crate) struct Endpoint {
    ipv4: Option<Ipv4Net>,
    ipv6: Option<Ipv6Net>,
    /// The interface's MAC address: set on a macvlan interface when it is made; on a passthru
    /// one only when the user asked (it becomes the parent's too); none on ipvlan (the
    /// parent's).
    mac: Option<MacAddr>,
    /// Given by the user.
    user_mac: bool,
    /// Where the interface is, once joined (the sandbox's namespace, held until leave).
    joined: Option<Joined>,
}

#[derive(Debug)]
struct Joined {
    sandbox: Netns,
    ifname: String,
}

/// What a join needs of an endpoint (a copy, taken under the lock).
struct Want {
    ipv4: Option<Ipv4Net>,
    ipv6: Option<Ipv6Net>,
    mac: Option<MacAddr>,
    user_mac: bool,
}

impl Core {
    pub(crate) fn create_endpoint(&self, spec: &EndpointSpec) -> Result<InterfaceInfo> {
        // No endpoint options, as Docker's drivers: any is refused, named.
        OptionReader::new(self.kind.name(), &spec.options).finish()?;
        let net = self.network(&spec.network)?;
        let creating = || format!("creating an endpoint on network {}", net.name);
        let (mac, user_mac) = match net.mode {
            ChildMode::Ipvlan(..) => {
                if spec.mac.is_some() {
                    return Err(MacvlanError::IpvlanMac.into_driver(creating()));
                }
                (None, false)
            }
            // The interface takes the parent's address (the kernel gives it); a user's
            // address would become the parent's too.
            ChildMode::Macvlan(_) if net.mode.passthru() => match spec.mac {
                Some(m) => (Some(m), true),
                None => {
                    let parent = self.nl.link_get(net.parent.as_str()).map_err(|e| {
                        DriverError::kernel(format!("looking up parent {}", net.parent), e)
                    })?;
                    (parent.and_then(|l| l.mac), false)
                }
            },
            // Docker's derivation from the IPv4 address, as the bridge driver's.
            ChildMode::Macvlan(_) => match (spec.mac, spec.ipv4) {
                (Some(m), _) => (Some(m), true),
                (None, Some(v4)) => (Some(mac_from_ipv4(v4.addr())), false),
                (None, None) => (Some(local_mac_from_bytes(rand::random())), false),
            },
        };
        let mut eps = net.endpoints();
        if eps.contains_key(&spec.endpoint) {
            return Err(DriverError::Exists(format!(
                "endpoint {}",
                spec.endpoint.short()
            )));
        }
        if net.mode.passthru() && !eps.is_empty() {
            return Err(MacvlanError::PassthruInUse {
                network: net.name.clone(),
                parent: net.parent.clone(),
            }
            .into_driver(creating()));
        }
        eps.insert(
            spec.endpoint.clone(),
            Endpoint {
                ipv4: spec.ipv4,
                ipv6: spec.ipv6,
                mac,
                user_mac,
                joined: None,
            },
        );
        Ok(InterfaceInfo {
            mac,
            ipv4: spec.ipv4,
            ipv6: spec.ipv6,
        })
    }

    pub(crate) fn delete_endpoint(&self, network: &NetworkId, endpoint: &EndpointId) -> Result<()> {
        let net = self.network(network)?;
        net.endpoints()
            .remove(endpoint)
            .map(|_| ())
            .ok_or_else(|| DriverError::EndpointNotFound(endpoint.to_string()))
    }

    pub(crate) fn endpoint_info(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
    ) -> Result<EndpointOperInfo> {
        let net = self.network(network)?;
        let eps = net.endpoints();
        let ep = eps
            .get(endpoint)
            .ok_or_else(|| DriverError::EndpointNotFound(endpoint.to_string()))?;
        let mut info = EndpointOperInfo::default();
        info.extra.insert("parent".into(), net.parent.clone());
        info.extra
            .insert(format!("{}_mode", self.kind.name()), net.mode.describe());
        if let Some(mac) = ep.mac {
            info.extra.insert("mac".into(), mac.to_string());
        }
        Ok(info)
    }

    pub(crate) fn join(&self, req: &JoinRequest<'_>) -> Result<JoinInfo> {
        let net = self.network(req.network)?;
        let want = {
            let eps = net.endpoints();
            let ep = eps
                .get(req.endpoint)
                .ok_or_else(|| DriverError::EndpointNotFound(req.endpoint.to_string()))?;
            Want {
                ipv4: ep.ipv4,
                ipv6: ep.ipv6,
                mac: ep.mac,
                user_mac: ep.user_mac,
            }
        };
        let joining = || format!("joining network {} in the sandbox", net.name);
        self.check_supported(joining)?;
        let (sb_ns, sb) = Handle::open_namespace(req.sandbox.netns.fd, req.sandbox.netns.path)
            .map_err(|e| DriverError::kernel(format!("opening {}", req.sandbox), e))?;
        let mark = self.marker.mark(req.endpoint.as_str());
        let addrs: Vec<AddrSpec> = want
            .ipv4
            .map(|a| AddrSpec::new(IpNet::V4(a)))
            .into_iter()
            .chain(want.ipv6.map(|a| AddrSpec::new(IpNet::V6(a)).nodad()))
            .collect();
        // Layer-3 ipvlan: the parent routes; the sandbox sends everything out of the device.
        let routed = net.mode.routed() && !net.internal;
        let mut routes = Vec::new();
        if routed && want.ipv4.is_some() {
            routes.push(RouteSpec::default_v4());
        }
        if routed && want.ipv6.is_some() {
            routes.push(RouteSpec::default_v6());
        }
        let ifname = req.ifname;
        let existing = sb
            .link_get(ifname)
            .map_err(|e| DriverError::kernel(format!("looking up {ifname} in the sandbox"), e))?;
        match existing {
            // After a restart: the interface is there already; converge on it.
            Some(link) if link.alias.as_deref() == Some(mark.as_str()) => {
                converge(&sb, ifname, &addrs, &routes)
                    .map_err(|e| DriverError::kernel(format!("configuring {ifname} again"), e))?;
            }
            Some(_) => {
                return Err(MacvlanError::SandboxNameTaken {
                    ifname: ifname.to_owned(),
                }
                .into_driver(joining()));
            }
            None => self.attach_child(&net, req, &want, &sb_ns, &sb, &mark, addrs, &routes)?,
        }
        if let Some(ep) = net.endpoints().get_mut(req.endpoint) {
            ep.joined = Some(Joined {
                sandbox: sb_ns,
                ifname: ifname.to_owned(),
            });
        }
        // The gateway of the endpoint's subnet, for the sandbox's default route: none on an
        // internal network, nor on a routed (layer-3 ipvlan) one.
        let gateways = !(net.internal || net.mode.routed());
        let gateway_v4 = want.ipv4.filter(|_| gateways).and_then(|a| {
            net.v4
                .iter()
                .find(|(pool, _)| pool.contains(&a.addr()))
                .and_then(|(_, gw)| *gw)
        });
        let gateway_v6 = want.ipv6.filter(|_| gateways).and_then(|a| {
            net.v6
                .iter()
                .find(|(pool, _)| pool.contains(&a.addr()))
                .and_then(|(_, gw)| *gw)
        });
        Ok(JoinInfo {
            ifname: ifname.to_owned(),
            gateway_v4,
            gateway_v6,
            static_routes: routes
                .iter()
                .map(|r| StaticRoute {
                    destination: r.dst(),
                    next_hop: None,
                })
                .collect(),
        })
    }

    /// Makes the endpoint's interface on the parent and puts it into the sandbox. All or
    /// nothing: on failure it is deleted wherever it is.
    #[allow(clippy::too_many_arguments)]
    fn attach_child(
        &self,
        net: &Network,
        req: &JoinRequest<'_>,
        want: &Want,
        sb_ns: &Netns,
        sb: &Handle,
        mark: &str,
        addrs: Vec<AddrSpec>,
        routes: &[RouteSpec],
    ) -> Result<()> {
        let nl = &self.nl;
        let ifname = req.ifname;
        let parent = nl
            .link_get(net.parent.as_str())
            .map_err(|e| DriverError::kernel(format!("looking up parent {}", net.parent), e))?
            .ok_or_else(|| {
                DriverError::InvalidConfig(format!(
                    "the parent interface {} of network {} is gone from the host namespace",
                    net.parent, net.name
                ))
            })?;
        // Made straight in the sandbox under its final name (the parent is the host's): a move
        // between namespaces would cost an RCU grace period per join, and a crash can leave
        // nothing in the host.
        let mut child = match net.mode {
            ChildMode::Macvlan(mode) => {
                let spec = LinkSpec::macvlan(ifname, parent.index, mode);
                match want.mac.filter(|_| !net.mode.passthru()) {
                    Some(mac) => spec.mac(mac),
                    None => spec,
                }
            }
            ChildMode::Ipvlan(mode, flag) => {
                let spec = LinkSpec::ipvlan(ifname, parent.index, mode);
                match flag {
                    IpvlanFlag::Bridge => spec,
                    IpvlanFlag::Private => spec.ipvlan_private(),
                    IpvlanFlag::Vepa => spec.ipvlan_vepa(),
                }
            }
        };
        child = child.mtu(parent.mtu).netns(sb_ns);
        if let Err(e) = nl.link_add(&child) {
            let operation = format!(
                "creating the {} interface of network {} on {} in the sandbox as {ifname}",
                self.kind.name(),
                net.name,
                net.parent
            );
            return Err(if e.is_unknown_link_kind() {
                match self.kind {
                    Kind::Macvlan => MacvlanError::MacvlanUnsupported,
                    Kind::Ipvlan => MacvlanError::IpvlanUnsupported,
                }
                .into_driver(operation)
            } else {
                DriverError::kernel(operation, e)
            });
        }
        // A passthru interface takes the parent's MAC; the user's, when asked for, is set
        // afterwards (and becomes the parent's too, as in Docker).
        // The mark is set from inside the sandbox (a link made in another namespace cannot
        // carry it).
        let mut update = LinkUpdate::new().alias(mark);
        if let Some(mac) = want.mac.filter(|_| net.mode.passthru() && want.user_mac) {
            update = update.mac(mac);
        }
        let configured = sb.link_update(ifname, &update);
        if let Err(e) = configured.and_then(|()| converge(sb, ifname, &addrs, routes)) {
            let _ = sb.link_delete(ifname);
            return Err(DriverError::kernel(
                format!("configuring {ifname} in the sandbox"),
                e,
            ));
        }
        if want.ipv6.is_none() {
            // As Docker does: without an IPv6 address the interface has IPv6 off, and sends
            // no router solicitations or MLD reports to the LAN.
            let key = format!("net.ipv6.conf.{ifname}.disable_ipv6");
            match sysctl_set(sb_ns, &key, "1") {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    let _ = sb.link_delete(ifname);
                    return Err(DriverError::kernel(
                        format!("switching IPv6 off on {ifname} in the sandbox"),
                        e,
                    ));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn leave(&self, network: &NetworkId, endpoint: &EndpointId) -> Result<()> {
        let net = self.network(network)?;
        let joined = net
            .endpoints()
            .get_mut(endpoint)
            .ok_or_else(|| DriverError::EndpointNotFound(endpoint.to_string()))?
            .joined
            .take();
        if let Some(j) = joined {
            if let Err(e) = self.remove_from_sandbox(&j, endpoint) {
                // Kept, so that the leave can be asked again.
                if let Some(ep) = net.endpoints().get_mut(endpoint) {
                    ep.joined = Some(j);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Deletes the endpoint's interface in its sandbox (only if it carries the endpoint's
    /// mark: the name may have been given to another since).
    fn remove_from_sandbox(&self, j: &Joined, endpoint: &EndpointId) -> Result<()> {
        let removing = || format!("removing {} from the sandbox", j.ifname);
        let sb = Handle::open(&j.sandbox).map_err(|e| DriverError::kernel(removing(), e))?;
        let link = match sb.link_get(j.ifname.as_str()) {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(()),
            Err(e) => return Err(DriverError::kernel(removing(), e)),
        };
        if self.marker.marked_id(link.alias.as_deref()) != Some(endpoint.as_str()) {
            return Ok(());
        }
        match sb.link_delete(link.index) {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(DriverError::kernel(removing(), e)),
        }
    }
}

/// An interface found in the sandbox after a restart: its addresses and routes again, up.
fn converge(
    sb: &Handle,
    ifname: &str,
    addrs: &[AddrSpec],
    routes: &[RouteSpec],
) -> berth_netlink::Result<()> {
    for addr in addrs {
        match sb.addr_add(ifname, addr) {
            Ok(()) => {}
            Err(e) if e.is_exists() => {}
            Err(e) => return Err(e),
        }
    }
    sb.link_set_up(ifname)?;
    for route in routes {
        sb.route_replace(&route.clone().dev(ifname))?;
    }
    Ok(())
}

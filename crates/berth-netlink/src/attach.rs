//! The one step that puts an interface into a sandbox: moved out of the host namespace, renamed,
//! given its MAC and MTU, addressed, brought up and given its routes; and the step that gives it
//! back. For every driver that makes an interface in the host namespace, and for plugin adapters
//! (a remote driver names the interface it made, `SrcName`, and the name it should get).

use crate::addr::AddrSpec;
use crate::error::{Error, Result};
use crate::link::LinkUpdate;
use crate::mac::MacAddr;
use crate::netns::Netns;
use crate::route::RouteSpec;
use crate::socket::Handle;

/// What [`attach`] does to an interface: its name in the sandbox, and optionally its MAC, MTU,
/// addresses and routes (a route's gateway must be reachable through the addresses given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attach {
    from: String,
    ifname: String,
    mac: Option<MacAddr>,
    mtu: Option<u32>,
    addrs: Vec<AddrSpec>,
    routes: Vec<RouteSpec>,
}

impl Attach {
    /// Moves `from` (a link in the host namespace) into the sandbox as `ifname`.
    pub fn new(from: impl Into<String>, ifname: impl Into<String>) -> Attach {
        Attach {
            from: from.into(),
            ifname: ifname.into(),
            mac: None,
            mtu: None,
            addrs: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// With this MAC address.
    pub fn mac(mut self, mac: MacAddr) -> Attach {
        self.mac = Some(mac);
        self
    }

    /// With this MTU.
    pub fn mtu(mut self, mtu: u32) -> Attach {
        self.mtu = Some(mtu);
        self
    }

    /// With this address (one per family and more are fine).
    pub fn addr(mut self, addr: AddrSpec) -> Attach {
        self.addrs.push(addr);
        self
    }

    /// With this route through the interface (its device is set to the interface).
    pub fn route(mut self, route: RouteSpec) -> Attach {
        self.routes.push(route);
        self
    }
}

/// Puts the host's interface `spec.from` into the sandbox (`sandbox_ns`, reached by
/// `sandbox`): moves it, renames it, sets its MAC and MTU, adds its addresses, brings it up and
/// adds its routes. All or nothing: on any failure after the move the interface is deleted
/// (with a veth, its peer goes too), so nothing is left half-made in either namespace; a
/// failure before the move (the interface does not exist, the name is invalid) changes nothing.
pub fn attach(host: &Handle, sandbox_ns: &Netns, sandbox: &Handle, spec: &Attach) -> Result<()> {
    crate::validate_ifname(&spec.ifname)?;
    let index = host.link_index(spec.from.as_str())?;
    host.link_set_netns(index, sandbox_ns)?;
    // The index usually stays the same across the move, but another interface may hold it in
    // the sandbox; the name it arrived with is certain.
    let arrived = spec.from.as_str();
    let configure = || -> Result<()> {
        let mut update = LinkUpdate::new().rename(spec.ifname.as_str());
        if let Some(mac) = spec.mac {
            update = update.mac(mac);
        }
        if let Some(mtu) = spec.mtu {
            update = update.mtu(mtu);
        }
        sandbox.link_update(arrived, &update)?;
        for addr in &spec.addrs {
            match sandbox.addr_add(spec.ifname.as_str(), addr) {
                Ok(()) => {}
                Err(e) if e.is_exists() => {}
                Err(e) => return Err(e),
            }
        }
        sandbox.link_set_up(spec.ifname.as_str())?;
        for route in &spec.routes {
            sandbox.route_replace(&route.clone().dev(spec.ifname.as_str()))?;
        }
        Ok(())
    };
    if let Err(e) = configure() {
        // Whichever name it has now.
        let _ = sandbox
            .link_delete(spec.ifname.as_str())
            .or_else(|_| sandbox.link_delete(arrived));
        return Err(e);
    }
    Ok(())
}

/// Gives an interface back: takes `ifname` down in the sandbox, renames it `host_name` there
/// and moves it to the host namespace (`host_ns`), where a plugin then deletes it, as Docker's
/// remote driver protocol has it. Renamed first, so a sandbox name such as `eth0` never meets
/// the host's own; if the move fails, the interface gets its name back. An interface that is
/// not in the sandbox any more is no error.
pub fn detach(sandbox: &Handle, ifname: &str, host_ns: &Netns, host_name: &str) -> Result<()> {
    crate::validate_ifname(host_name)?;
    let index = match sandbox.link_index(ifname) {
        Ok(i) => i,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    sandbox.link_update(index, &LinkUpdate::new().down().rename(host_name))?;
    if let Err(e) = sandbox.link_set_netns(index, host_ns) {
        let _ = sandbox.link_rename(index, ifname);
        return Err(match e {
            Error::Exists { .. } => Error::Exists {
                object: format!("{host_name} in the host namespace (giving {ifname} back)"),
            },
            other => other,
        });
    }
    Ok(())
}

//! CHECK: the attachment `prevResult` describes is in the kernel (the interface in the
//! container's namespace, with its MAC address and addresses) and in berth's state (the same
//! address and MAC address). The kernel is looked at first, before the controller is opened:
//! an open that does not trust the kernel (the first after a crash or a reboot) joins every
//! stored endpoint again, which would put a deleted interface back and hide what went wrong.

use std::net::IpAddr;

use berth::Netns;
use berth::berth_netlink::Handle;

use super::{Plugin, path_text};
use crate::error::{CniError, ErrorCode};
use crate::naming;
use crate::result::{Interface, IpConfig};

fn failed(msg: impl Into<String>, details: impl Into<String>) -> CniError {
    CniError::new(ErrorCode::CheckFailed, msg, details)
}

impl Plugin {
    pub(super) fn check(&mut self) -> Result<(), CniError> {
        let (cid, ifname) = (
            self.inv.container_id().to_owned(),
            self.inv.ifname().to_owned(),
        );
        let name = naming::sandbox_name(&cid)?;
        let netns = path_text(&self.inv.netns.clone().unwrap_or_default());
        let prev = self.conf.prev_result.clone().ok_or_else(|| {
            CniError::config("CHECK needs prevResult (the result of the ADD to check)")
        })?;
        let (iface, ips) = prev.container_interface(&ifname, &netns).ok_or_else(|| {
            failed(
                format!("prevResult lists no interface {ifname} in {netns}"),
                "the runtime's cached result is not the one berth-cni answered",
            )
        })?;
        let (iface, ips): (Interface, Vec<IpConfig>) =
            (iface.clone(), ips.into_iter().cloned().collect());
        check_kernel(&netns, &ifname, &iface, &ips)?;
        self.timer.lap("kernel");

        let _held = self.lock()?;
        let ctl = self.open()?;
        let sb = ctl.inspect_sandbox(&name).map_err(|e| match e {
            berth::Error::SandboxNotFound(_) => CniError::new(
                ErrorCode::UnknownContainer,
                format!(
                    "container {cid} has no {ifname} on network {}",
                    self.conf.name
                ),
                "berth-cni has no such attachment (it was deleted, or never added)",
            ),
            e => CniError::library(format!("inspecting sandbox {name}"), &e),
        })?;
        let net = &self.conf.network.name;
        let ep = sb
            .networks
            .get(net)
            .filter(|ep| ep.interface == ifname)
            .ok_or_else(|| {
                CniError::new(
                    ErrorCode::UnknownContainer,
                    format!(
                        "container {cid} has no {ifname} on network {}",
                        self.conf.name
                    ),
                    "berth-cni has no such attachment (it was deleted, or never added)",
                )
            })?;
        if let Some(mac) = &iface.mac {
            if !ep.mac_address.eq_ignore_ascii_case(mac) {
                return Err(failed(
                    format!(
                        "{ifname}'s MAC address is {} in berth's state, prevResult says {mac}",
                        ep.mac_address
                    ),
                    "",
                ));
            }
        }
        for ip in &ips {
            if ip.address.addr().is_ipv4() && ip.address.addr().to_string() != ep.ip_address {
                return Err(failed(
                    format!(
                        "{ifname}'s address is {:?} in berth's state, prevResult says {}",
                        ep.ip_address, ip.address
                    ),
                    "",
                ));
            }
        }
        self.timer.lap("state");
        Ok(())
    }
}

/// The interface is in the namespace, up, with prevResult's MAC address and addresses.
fn check_kernel(
    netns: &str,
    ifname: &str,
    iface: &Interface,
    ips: &[IpConfig],
) -> Result<(), CniError> {
    let ns = Netns::open(netns).map_err(|e| {
        failed(
            format!("the container's namespace {netns} cannot be opened"),
            e.to_string(),
        )
    })?;
    let nl = Handle::open(&ns).map_err(|e| {
        failed(
            format!("netlink in the container's namespace {netns}"),
            e.to_string(),
        )
    })?;
    let link = nl
        .link_get(ifname)
        .map_err(|e| failed(format!("looking up {ifname} in {netns}"), e.to_string()))?
        .ok_or_else(|| {
            failed(
                format!("interface {ifname} is missing in {netns}"),
                "it was deleted since ADD; DEL and ADD the container again",
            )
        })?;
    if !link.up {
        return Err(failed(format!("interface {ifname} in {netns} is down"), ""));
    }
    if let (Some(want), Some(have)) = (&iface.mac, link.mac) {
        if !have.to_string().eq_ignore_ascii_case(want) {
            return Err(failed(
                format!("interface {ifname} has MAC address {have}, prevResult says {want}"),
                "",
            ));
        }
    }
    let addrs = nl
        .addr_list(ifname)
        .map_err(|e| failed(format!("listing addresses of {ifname}"), e.to_string()))?;
    for ip in ips {
        let want: (IpAddr, u8) = (ip.address.addr(), ip.address.prefix_len());
        if !addrs
            .iter()
            .any(|a| (a.net.addr(), a.net.prefix_len()) == want)
        {
            return Err(failed(
                format!("interface {ifname} lacks its address {}", ip.address),
                "",
            ));
        }
    }
    Ok(())
}

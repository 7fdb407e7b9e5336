//! What ADD asks the kernel besides berth: whether the container already has an interface of
//! the asked name (before berth's state is opened), whether two namespace paths are one
//! namespace, and which interface the container's default route goes through (for the result).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use berth::Netns;
use berth::berth_netlink::{Handle, IpFamily};

use crate::error::{CniError, ErrorCode};

/// Whether the namespace at `netns` has an interface named `ifname`. A path that is no
/// namespace is code 4 (`CNI_NETNS` is wrong).
pub(super) fn has_link(netns: &Path, ifname: &str) -> Result<bool, CniError> {
    let unusable = |e: &dyn std::fmt::Display| {
        CniError::new(
            ErrorCode::InvalidEnvironment,
            format!(
                "CNI_NETNS {} is not a usable network namespace",
                netns.display()
            ),
            e.to_string(),
        )
    };
    let ns = Netns::open(netns).map_err(|e| unusable(&e))?;
    let nl = Handle::open(&ns).map_err(|e| unusable(&e))?;
    let link = nl.link_get(ifname).map_err(|e| {
        CniError::new(
            ErrorCode::Library,
            format!("looking up {ifname} in {}", netns.display()),
            e.to_string(),
        )
    })?;
    Ok(link.is_some())
}

/// Whether the paths `a` and `b` name one namespace (one path, or the same nsfs inode: a
/// runtime may name a namespace by its bind mount or by `/proc/PID/ns/net`).
pub(super) fn same_namespace(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => false,
    }
}

/// Whether the IPv4 default route of the namespace at `netns` (main table) goes out through
/// `ifname`.
pub(super) fn default_route_via(netns: &Path, ifname: &str) -> Result<bool, String> {
    let ns = Netns::open(netns).map_err(|e| e.to_string())?;
    let nl = Handle::open(&ns).map_err(|e| e.to_string())?;
    let index = nl.link_index(ifname).map_err(|e| e.to_string())?;
    let routes = nl
        .route_list(IpFamily::V4, None)
        .map_err(|e| e.to_string())?;
    Ok(routes
        .iter()
        .any(|r| r.dst.prefix_len() == 0 && r.oif == Some(index)))
}

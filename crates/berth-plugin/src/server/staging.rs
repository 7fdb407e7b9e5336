//! The staging namespace: where berth's bridge driver makes an endpoint's sandbox end before the
//! server hands it to the host namespace for dockerd to take.
//!
//! The bridge driver's join makes the veth pair in one request with the sandbox end directly
//! inside a sandbox namespace; dockerd's protocol wants that end in the host namespace, where
//! dockerd finds it by name (`SrcName`) and moves it into the container itself. The server
//! therefore joins every endpoint into this namespace of its own, then moves the end to the
//! host namespace ([`berth_netlink::detach`]). The namespace has no name and no mount: a
//! descriptor the server holds keeps it, so it goes with the process, and whatever a crash
//! left in it (a half-made pair) goes with it.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use berth_netlink::{Handle, Netns};
use nix::sched::{CloneFlags, unshare};

use super::error::{ServerError, ServerResult};

/// The name the staging namespace has in messages (it has no path).
pub(crate) const STAGING_LABEL: &str = "(the plugin's staging namespace)";

/// The staging namespace and a netlink handle inside it.
#[derive(Debug)]
pub(crate) struct Staging {
    ns: Netns,
    netlink: Handle,
}

impl Staging {
    /// Makes a new, empty namespace (on a thread of its own, which ends right after) and opens
    /// netlink inside it.
    pub(crate) fn new() -> ServerResult<Staging> {
        let made = std::thread::spawn(|| -> std::io::Result<File> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            File::open("/proc/thread-self/ns/net")
        })
        .join()
        .map_err(|_| {
            ServerError::Config("making the staging namespace: the thread panicked".into())
        })?
        .map_err(|e| {
            ServerError::kernel(
                "making the staging namespace",
                berth_netlink::Error::io("unshare(CLONE_NEWNET)", e),
            )
        })?;
        let ns = Netns::from_borrowed_fd(made.as_fd(), Some(Path::new(STAGING_LABEL)))
            .map_err(|e| ServerError::kernel("holding the staging namespace", e))?;
        let netlink = Handle::open(&ns)
            .map_err(|e| ServerError::kernel("netlink in the staging namespace", e))?;
        netlink
            .link_set_up("lo")
            .map_err(|e| ServerError::kernel("loopback up in the staging namespace", e))?;
        Ok(Staging { ns, netlink })
    }

    /// The namespace.
    pub(crate) fn netns(&self) -> &Netns {
        &self.ns
    }

    /// Moves `name` from the staging namespace to `host` under the same name (down, as dockerd
    /// expects an interface it is given).
    pub(crate) fn hand_over(&self, name: &str, host: &Netns) -> berth_netlink::Result<()> {
        berth_netlink::detach(&self.netlink, name, host, name)
    }
}

//! Multi-host test clusters: an underlay (a namespace holding one bridge, the "switch") and
//! hosts on it, each a [`TestHost`] whose `eth0` is a veth to the switch with an address of the
//! underlay's subnet. Links can be cut and restored to test partitions. Everything is deleted
//! on drop, also on panic.
//!
//! ```no_run
//! use berth_testhost::cluster::Underlay;
//!
//! let underlay = Underlay::new().expect("an underlay (run as root)");
//! let a = underlay.add_host().expect("host a");
//! let b = underlay.add_host().expect("host b");
//! assert!(a.host.ping(&b.addr.to_string()));
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

use crate::{Result, TestHost};

/// The underlay's subnet: 192.168.200.0/24, hosts from .1 up.
pub const UNDERLAY_PREFIX: [u8; 3] = [192, 168, 200];
/// The underlay bridge inside the switch namespace.
pub const SWITCH_BRIDGE: &str = "ul0";

/// A switch namespace with one bridge; hosts join it with [`Underlay::add_host`].
#[derive(Debug)]
pub struct Underlay {
    switch: TestHost,
    next: Mutex<u8>,
}

/// A host on the underlay.
#[derive(Debug)]
pub struct UnderlayHost {
    /// The host's namespace (its `eth0` is on the underlay).
    pub host: TestHost,
    /// Its underlay address.
    pub addr: IpAddr,
    /// The switch-side end of its link (`ulN`), for [`Underlay::cut`] and [`Underlay::restore`].
    pub port: String,
}

impl Underlay {
    /// An underlay switch with no host yet.
    pub fn new() -> Result<Underlay> {
        let switch = TestHost::new()?;
        switch.ip(&["link", "add", SWITCH_BRIDGE, "type", "bridge"])?;
        switch.ip(&["link", "set", SWITCH_BRIDGE, "up"])?;
        Ok(Underlay {
            switch,
            next: Mutex::new(1),
        })
    }

    /// Adds a host with the next address of the underlay (`192.168.200.N/24` on its `eth0`).
    pub fn add_host(&self) -> Result<UnderlayHost> {
        let n = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let n = *next;
            *next = next.wrapping_add(1);
            n
        };
        let host = TestHost::new()?;
        let port = format!("ul{n}");
        let [a, b, c] = UNDERLAY_PREFIX;
        let addr = Ipv4Addr::new(a, b, c, n);
        self.switch.ip(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            host.name(),
        ])?;
        self.switch
            .ip(&["link", "set", &port, "master", SWITCH_BRIDGE, "up"])?;
        host.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0", "nodad"])?;
        host.ip(&["link", "set", "eth0", "up"])?;
        Ok(UnderlayHost {
            host,
            addr: IpAddr::V4(addr),
            port,
        })
    }

    /// Cuts a host's link (its switch port goes down): nothing crosses until [`Underlay::restore`].
    pub fn cut(&self, host: &UnderlayHost) -> Result<()> {
        self.switch
            .ip(&["link", "set", &host.port, "down"])
            .map(|_| ())
    }

    /// Restores a link [`Underlay::cut`] cut.
    pub fn restore(&self, host: &UnderlayHost) -> Result<()> {
        self.switch
            .ip(&["link", "set", &host.port, "up"])
            .map(|_| ())
    }

    /// The switch namespace.
    pub fn switch(&self) -> &TestHost {
        &self.switch
    }
}

//! Asking the kernel whether it can make a kind of link: by making one on a throwaway parent.
//!
//! The parent is a veth pair (the kernel may have no `dummy` driver) named `bpv<pid>x<n>` /
//! `bpw<pid>x<n>` (hexadecimal; the child is `bpc<pid>x<n>`) and marked [`PROBE_MARK`];
//! deleting it deletes the probe's child with it. A crash in the few milliseconds a probe lasts
//! would leave the pair; the next start of a driver in that namespace removes pairs so marked
//! whose process is gone ([`remove_stale_probes`]).

use std::sync::atomic::{AtomicU32, Ordering};

use berth_netlink::{Handle, IpvlanMode, LinkKind, LinkSpec, Netns, VethPeer};

/// The alias of a probe's veth pair.
pub(crate) const PROBE_MARK: &str = "berth:probe:link-kind";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Whether the kernel can make the child `make` describes (given its parent, a veth end, and
/// its own name): `Ok(false)` when it has no driver for the kind.
pub(crate) fn probe(
    nl: &Handle,
    make: impl Fn(String, String) -> LinkSpec<'static>,
) -> berth_netlink::Result<bool> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 0x1000;
    let pid = std::process::id();
    let name = |prefix: &str| format!("{prefix}{pid:x}x{n:x}");
    let (a, b) = (name("bpv"), name("bpw"));
    nl.link_add(&LinkSpec::veth(a.as_str(), VethPeer::new(b.as_str())).alias(PROBE_MARK))?;
    let made = nl.link_add(&make(a.clone(), name("bpc")));
    if let Err(e) = nl.link_delete(a.as_str()) {
        tracing::warn!(link = %a, error = %e, "deleting the link-kind probe's veth pair");
    }
    match made {
        Ok(()) => Ok(true),
        Err(e) if e.is_unknown_link_kind() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether the kernel in `host` can make ipvlan links.
pub(crate) fn ipvlan(nl: &Handle) -> berth_netlink::Result<bool> {
    probe(nl, |parent, child| {
        LinkSpec::ipvlan(child, parent, IpvlanMode::L2)
    })
}

/// Whether the kernel in `host` can make 802.1q VLAN links.
pub(crate) fn vlan(nl: &Handle) -> berth_netlink::Result<bool> {
    probe(nl, |parent, child| LinkSpec::vlan(child, parent, 1))
}

/// Whether the kernel of the namespace `host` has ipvlan: makes an ipvlan link on a throwaway
/// veth pair there and deletes both (see the module's documentation). False also when the
/// probe itself cannot run (no privilege); an ipvlan network's creation then reports why.
pub fn ipvlan_supported(host: &Netns) -> bool {
    Handle::open(host)
        .and_then(|nl| ipvlan(&nl))
        .unwrap_or(false)
}

/// Whether the kernel of the namespace `host` has 802.1q VLANs (the `8021q` driver), which a
/// `parent=NAME.VLAN_ID` network needs when the sub-interface does not exist yet: probed like
/// [`ipvlan_supported`].
pub fn vlan_supported(host: &Netns) -> bool {
    Handle::open(host).and_then(|nl| vlan(&nl)).unwrap_or(false)
}

/// Deletes probe pairs left by a crashed process (marked [`PROBE_MARK`], named after a process
/// id that is gone); returns their names.
pub(crate) fn remove_stale_probes(nl: &Handle, links: &[berth_netlink::Link]) -> Vec<String> {
    let own = std::process::id();
    let mut removed = Vec::new();
    for link in links {
        if link.kind != Some(LinkKind::Veth) || link.alias.as_deref() != Some(PROBE_MARK) {
            continue;
        }
        let pid = link
            .name
            .strip_prefix("bpv")
            .or_else(|| link.name.strip_prefix("bpw"))
            .and_then(|rest| rest.split_once('x'))
            .and_then(|(pid, _)| u32::from_str_radix(pid, 16).ok());
        let Some(pid) = pid else { continue };
        if pid == own || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        match nl.link_delete(link.index) {
            Ok(()) => removed.push(link.name.clone()),
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::warn!(link = %link.name, error = %e, "deleting a stale probe"),
        }
    }
    removed
}

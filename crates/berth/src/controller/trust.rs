//! A start that trusts the kernel ([`crate::Config::trust_kernel`]), for short-lived openers
//! such as a CNI plugin's call: the firewall's tool probes and its start reconcile are what
//! such a call would spend most of its time on, and they can be skipped when the previous
//! opener left the kernel as its state says.
//!
//! A controller with `trust_kernel` writes `<exec_root>/firewall-trust.json` when it goes away
//! cleanly (not torn down, not during a panic, after a complete start): the boot id, the host
//! namespace's inode, and the tool probes' verdicts. The next start takes the file away before
//! it changes anything, and trusts it only on the same boot and the same host namespace: a
//! crash, a reboot (the exec root is on `/run`, gone with it anyway) or another namespace makes
//! the start probe and reconcile as usual.

use std::path::{Path, PathBuf};

use berth_firewall::ToolsVerdict;
use berth_netlink::Netns;
use serde::{Deserialize, Serialize};

/// The file, in the exec root.
pub(super) const TRUST_FILE: &str = "firewall-trust.json";

#[derive(Debug, Serialize, Deserialize)]
struct TrustMarker {
    boot_id: String,
    host_netns: u64,
    tools: ToolsVerdict,
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn path(exec_root: &Path) -> PathBuf {
    exec_root.join(TRUST_FILE)
}

/// Takes the marker away and returns its tool verdicts when it was left on this boot for
/// `host`; None otherwise (no marker, another boot or namespace, unreadable).
pub(super) fn take(exec_root: &Path, host: &Netns) -> Option<ToolsVerdict> {
    let file = path(exec_root);
    let text = std::fs::read_to_string(&file).ok()?;
    // Gone before anything changes: if this start does not end cleanly, the next reconciles.
    if let Err(e) = std::fs::remove_file(&file) {
        tracing::warn!(file = %file.display(), error = %e, "cannot remove the trust marker; not trusting it");
        return None;
    }
    let marker: TrustMarker = serde_json::from_str(&text).ok()?;
    let same_boot = boot_id().is_some_and(|b| b == marker.boot_id);
    let same_host = host.id().is_ok_and(|id| id == marker.host_netns);
    if !(same_boot && same_host) {
        tracing::info!("the trust marker is from another boot or namespace: reconciling");
        return None;
    }
    Some(marker.tools)
}

/// Leaves the marker for the next start (best effort: without it, the next start reconciles).
pub(super) fn leave(exec_root: &Path, host: &Netns, tools: ToolsVerdict) {
    let (Some(boot_id), Ok(host_netns)) = (boot_id(), host.id()) else {
        return;
    };
    let marker = TrustMarker {
        boot_id,
        host_netns,
        tools,
    };
    let Ok(text) = serde_json::to_string(&marker) else {
        return;
    };
    let file = path(exec_root);
    let tmp = exec_root.join(format!(".{TRUST_FILE}.{}", std::process::id()));
    let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &file));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(file = %file.display(), error = %e, "cannot leave the trust marker; the next start reconciles");
    }
}

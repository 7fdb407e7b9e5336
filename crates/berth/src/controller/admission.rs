//! What a start checks and takes before it writes anything: the capabilities berth needs, and
//! the host namespace's firewall claim (one berth firewall per namespace, see
//! [`berth_firewall::NamespaceClaim`]).

use super::*;

/// The capabilities berth needs, checked before anything is written: CAP_NET_ADMIN (links,
/// addresses, routes, rules, sysctls) and CAP_SYS_ADMIN (namespaces and their bind mounts).
const NEEDED_CAPABILITIES: [(u32, &str); 2] = [(12, "CAP_NET_ADMIN"), (21, "CAP_SYS_ADMIN")];

/// Fails with [`Error::MissingPrivileges`] when the process's effective capabilities
/// (`/proc/self/status`, `CapEff`) lack one berth needs. An unreadable status is no refusal: the
/// kernel says so at the first operation instead.
pub(super) fn check_privileges() -> Result<()> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Ok(());
    };
    let Some(eff) = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    else {
        return Ok(());
    };
    let missing: Vec<&str> = NEEDED_CAPABILITIES
        .iter()
        .filter(|(bit, _)| eff & (1 << bit) == 0)
        .map(|(_, name)| *name)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::MissingPrivileges {
            missing: missing.join(", "),
        })
    }
}

/// Claims the host namespace's berth firewall when the controller has one (before anything is
/// written: a second berth firewall in the namespace is refused). When the claim is refused and
/// the data root's store exists (and was not given by the engine), the store is opened to tell
/// a data root in use ([`berth_store::Error::Locked`]), which says more, from another berth.
pub(super) fn claim_host(
    config: &Config,
    host: &Netns,
    store_given: bool,
) -> Result<Option<NamespaceClaim>> {
    if config.firewall.is_none() {
        return Ok(None);
    }
    match NamespaceClaim::take(host) {
        Ok(claim) => Ok(Some(claim)),
        Err(e) => {
            if !store_given && config.store_path().exists() {
                RedbStore::open(config.store_path())?;
            }
            Err(e.into())
        }
    }
}

//! The teardown: everything berth made on this host removed, and what it changed in the host
//! namespace restored — for an engine that is done with berth, and for test suites.

use berth_driver::Scope;

use super::restore::HOST_KEY;
use super::*;

/// What [`Controller::teardown`] removed and restored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TeardownReport {
    /// The sandboxes removed (their names; a namespace berth adopted is left, without berth's
    /// interfaces).
    pub sandboxes: Vec<String>,
    /// The networks removed (their names; the predefined ones too). A global network's record
    /// stays in the cluster store for the other hosts; this host's part of it is removed.
    pub networks: Vec<String>,
    /// berth's firewall rules, chains, jumps and tables removed (one line each).
    pub firewall: Vec<String>,
    /// What was set back in the host namespace (`net.ipv4.ip_forward=0`, ...).
    pub restored: Vec<String>,
}

impl Controller {
    /// Removes everything berth made on this host and restores what it changed, then ends the
    /// controller: every sandbox (a namespace it adopted is left, without berth's interfaces and
    /// DNS redirect), every network (`docker0` and the other predefined ones too), berth's firewall
    /// rules, chains and tables (the user's `DOCKER-USER` stays if it holds rules of the user's),
    /// `ip_forward` (and IPv6 forwarding) and the FORWARD policy where berth changed them, and the
    /// bind mounts of the namespace directory. The state store keeps no network or sandbox; a
    /// later start begins afresh. A failure stops the teardown where it happened (asking again
    /// on a new controller continues it).
    pub fn teardown(self) -> Result<TeardownReport> {
        let span = tracing::info_span!("teardown");
        let _enter = span.enter();
        // Nothing repairs the rules being removed, and the next start must not trust the
        // kernel to hold them.
        lock(&self.inner.healer).take();
        self.inner.trust_ready.store(false, Ordering::Relaxed);
        let mut report = TeardownReport::default();
        let sandboxes: Vec<String> = self.read_sandboxes().values().map(|s| s.name()).collect();
        for name in sandboxes {
            self.remove_sandbox(&name)?;
            report.sandboxes.push(name);
        }
        // User-defined networks first (the gateway bridge among them), the predefined ones last.
        let mut networks: Vec<Arc<Network>> = self.read_networks().values().cloned().collect();
        networks.sort_by_key(|n| PREDEFINED_NETWORKS.contains(&n.record.name.as_str()));
        for net in networks {
            let name = net.record.name.clone();
            if net.record.scope == Scope::Global {
                // The other hosts keep it: only this host's data path goes.
                match net.driver.delete_network(&net.record.id) {
                    Ok(()) | Err(berth_driver::DriverError::NetworkNotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                self.write_networks().remove(net.record.id.as_str(), &name);
                if let Some(dns) = self.dns() {
                    let _ = dns.remove_network(net.record.id.as_str());
                }
            } else {
                self.remove_network_found(&net, &name)?;
            }
            report.networks.push(name);
        }
        if let Some(fw) = &self.inner.firewall {
            report.firewall = fw.remove_all()?;
        }
        let forwarding = forwarding_record(&*self.inner.store)?;
        for (changed, key) in [
            (forwarding.ipv4, "net.ipv4.ip_forward"),
            (forwarding.ipv6, "net.ipv6.conf.all.forwarding"),
        ] {
            if changed {
                sysctl_set(&self.inner.host, key, "0")
                    .map_err(|e| Error::kernel(format!("setting {key} back to 0"), e))?;
                report.restored.push(format!("{key}=0"));
            }
        }
        self.inner.store.delete(FORWARDING_KEY)?;
        let dir = self.inner.config.netns_dir();
        Netns::delete_named_in(&dir, HOST_KEY)
            .map_err(|e| Error::kernel("removing the host namespace's name", e))?;
        Netns::release_dir(&dir)
            .map_err(|e| Error::kernel("releasing the namespace directory", e))?;
        tracing::info!(
            sandboxes = report.sandboxes.len(),
            networks = report.networks.len(),
            firewall = report.firewall.len(),
            restored = ?report.restored,
            "berth torn down"
        );
        Ok(report)
    }
}

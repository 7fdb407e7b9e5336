//! The applying layer: one invocation takes the state's lock, opens berth's controller on the
//! state (berth's redb store in the data root, as `Controller::new` opens it; opening restores
//! and reconciles what the state holds), does its command, and ends.
//!
//! The controller is configured for a CNI plugin: the host is the runtime's namespace (the one
//! the plugin runs in), no predefined `bridge` network (no `docker0`), no embedded DNS server
//! (the runtime writes the container's resolv.conf from the result), no firewall healing thread.
//! The berth network is created by the first ADD that needs it, and removed with its last
//! attachment; when no network of berth-cni's is left, everything berth made in the host
//! namespace is torn down (its chains, the forwarding it switched on), so that a host whose
//! containers are all gone is as it was.

mod add;
mod check;
mod del;
mod kernel;
mod lock;

use std::path::{Path, PathBuf};
use std::time::Instant;

use berth::{
    Config, Controller, DefaultBridge, KvStore, NetworkInspect, PREDEFINED_NETWORKS, RedbStore,
};

pub use lock::LOCK_FILE;
use lock::StateLock;

use crate::config::NetConf;
use crate::env::{Command, Invocation};
use crate::error::{CniError, ErrorCode};
use crate::plan;
use crate::version::CniVersion;

/// Set (to anything) in the environment, berth-cni writes how long each step took to stderr.
pub const TIMINGS_ENV: &str = "BERTH_CNI_TIMINGS";

/// One invocation's configuration, parameters and step timer.
pub(crate) struct Plugin {
    conf: NetConf,
    inv: Invocation,
    timer: Timer,
}

impl Plugin {
    /// An invocation of `inv.command` with `conf`.
    pub(crate) fn new(conf: NetConf, inv: Invocation, timings: bool) -> Plugin {
        Plugin {
            conf,
            inv,
            timer: Timer::new(timings),
        }
    }

    /// Runs the command; the JSON to print on success (ADD's result; nothing for the others).
    pub(crate) fn run(mut self) -> Result<Option<serde_json::Value>, CniError> {
        let needs = |v: CniVersion, what: &str| {
            if self.conf.cni_version < v {
                Err(CniError::new(
                    ErrorCode::IncompatibleVersion,
                    format!(
                        "config version {} does not allow {what}",
                        self.conf.cni_version
                    ),
                    format!("{what} needs cniVersion {v} or later"),
                ))
            } else {
                Ok(())
            }
        };
        let out = match self.inv.command {
            Command::Add => Some(self.add()?),
            Command::Del => {
                self.del()?;
                None
            }
            Command::Check => {
                needs(CniVersion::V0_4_0, "CHECK")?;
                self.check()?;
                None
            }
            Command::Gc => {
                needs(CniVersion::V1_1_0, "GC")?;
                self.gc()?;
                None
            }
            Command::Status => {
                needs(CniVersion::V1_1_0, "STATUS")?;
                self.status()
                    .map_err(|e| e.with_code(ErrorCode::NotAvailable))?;
                None
            }
            // Answered before a configuration is read (see `crate::run`).
            Command::Version => None,
        };
        self.timer.report(self.inv.command);
        Ok(out)
    }

    /// Takes the state's lock.
    fn lock(&mut self) -> Result<StateLock, CniError> {
        let held = StateLock::acquire(&self.conf.data_root, self.conf.lock_timeout)?;
        self.timer.lap("lock");
        Ok(held)
    }

    /// The controller's configuration for a CNI plugin (see the module documentation).
    fn config(&self) -> Config {
        let conf = &self.conf;
        Config::new(&conf.data_root, &conf.exec_root)
            .with_firewall(conf.firewall)
            .with_default_bridge(DefaultBridge::None)
            .with_embedded_dns(None)
            .with_heal_firewall(false)
            // Each call opens the controller: after a clean call, the next skips the firewall's
            // probes and start reconcile (see `berth::Config::trust_kernel`).
            .with_trust_kernel(true)
            .with_ip_forward(conf.ip_forward)
            .with_default_address_pools(conf.default_address_pools.clone())
    }

    /// Where berth's store is (its redb file in the data root).
    fn store_path(&self) -> PathBuf {
        self.config().store_path()
    }

    /// Whether berth's store exists (DEL and GC with no state have nothing to remove, and
    /// make none).
    fn has_state(&self) -> bool {
        self.store_path().exists()
    }

    /// Opens berth's controller on the state (restoring what it holds).
    fn open(&mut self) -> Result<Controller, CniError> {
        let ctl = Controller::new(self.config()).map_err(|e| {
            CniError::library(
                format!("opening berth's state in {}", self.conf.data_root.display()),
                &e,
            )
        })?;
        self.timer.lap("controller");
        Ok(ctl)
    }

    /// The configured network, created if it does not exist; refused (code 7) when a network of
    /// that name exists with other settings. The flag says whether this call created it.
    fn ensure_network(&mut self, ctl: &Controller) -> Result<(NetworkInspect, bool), CniError> {
        let name = self.conf.network.name.clone();
        let (net, created) = match ctl.inspect_network(&name) {
            Ok(net) => (net, false),
            Err(berth::Error::NetworkNotFound(_)) => {
                ctl.create_network(plan::network_create(&self.conf))
                    .map_err(|e| CniError::library(format!("creating network {name}"), &e))?;
                let net = ctl
                    .inspect_network(&name)
                    .map_err(|e| CniError::library(format!("inspecting network {name}"), &e))?;
                (net, true)
            }
            Err(e) => return Err(CniError::library(format!("inspecting network {name}"), &e)),
        };
        let diffs = plan::network_mismatch(&self.conf, &net);
        if !diffs.is_empty() {
            return Err(CniError::new(
                ErrorCode::InvalidConfig,
                format!("network {name} exists with other settings"),
                format!(
                    "{}; remove its attachments first (it goes with the last) or name another network.name",
                    diffs.join("; ")
                ),
            ));
        }
        self.timer.lap("network");
        Ok((net, created))
    }

    /// Removes the configured network when nothing is attached to it, and tears berth down in
    /// the host namespace when no network but the predefined ones is left.
    fn release_unused(&mut self, ctl: Controller) -> Result<(), CniError> {
        let name = &self.conf.network.name;
        match ctl.inspect_network(name) {
            Ok(net) if net.containers.is_empty() => {
                ctl.remove_network(name)
                    .map_err(|e| CniError::library(format!("removing network {name}"), &e))?;
            }
            _ => {}
        }
        let in_use = ctl
            .networks()
            .iter()
            .any(|n| !PREDEFINED_NETWORKS.contains(&n.name.as_str()));
        if !in_use {
            ctl.teardown().map_err(|e| {
                CniError::library("removing berth's rules from the host namespace", &e)
            })?;
        }
        self.timer.lap("release");
        Ok(())
    }

    /// STATUS: the state can be locked, and berth's store in it opened and read (without
    /// touching the kernel: a runtime asks often).
    fn status(&mut self) -> Result<(), CniError> {
        let _held = self.lock()?;
        for dir in [&self.conf.data_root, &self.conf.exec_root] {
            std::fs::create_dir_all(dir).map_err(|e| {
                CniError::new(
                    ErrorCode::Io,
                    format!("berth-cni cannot use {}", dir.display()),
                    e.to_string(),
                )
            })?;
        }
        let path = self.store_path();
        let unreadable = |e: berth::StoreError| {
            CniError::new(
                ErrorCode::Io,
                format!("berth's store {} is unreadable", path.display()),
                crate::error::chain(&e),
            )
        };
        let store = RedbStore::open(&path).map_err(unreadable)?;
        store.list("network/").map_err(unreadable)?;
        self.timer.lap("store");
        Ok(())
    }
}

/// Step timings, written to stderr when [`TIMINGS_ENV`] is set.
struct Timer {
    on: bool,
    start: Instant,
    last: Instant,
    laps: Vec<(&'static str, f64)>,
}

impl Timer {
    fn new(on: bool) -> Timer {
        let now = Instant::now();
        Timer {
            on,
            start: now,
            last: now,
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, what: &'static str) {
        if self.on {
            let now = Instant::now();
            self.laps
                .push((what, (now - self.last).as_secs_f64() * 1000.0));
            self.last = now;
        }
    }

    fn report(&self, command: Command) {
        if self.on {
            let laps: Vec<String> = self
                .laps
                .iter()
                .map(|(w, ms)| format!("{w} {ms:.2}"))
                .collect();
            eprintln!(
                "berth-cni timings {}: total {:.2} ms: {}",
                command.name(),
                self.start.elapsed().as_secs_f64() * 1000.0,
                laps.join(", ")
            );
        }
    }
}

/// The namespace path as text (for results and messages).
fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

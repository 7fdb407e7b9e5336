//! [`Firewall`]: the desired state behind a lock, each change planned and applied as one
//! transaction inside the firewall's namespace.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use berth_netlink::Netns;

use crate::error::Result;
use crate::exec::{self, Tools, ToolsVerdict};
use crate::plan::{Planner, Transaction};
use crate::report::DriftReport;
use crate::spec::{DesiredState, FirewallConfig, LinkRule, NetworkRules, PortRule};

/// berth's firewall in one namespace ("the host" of the caller).
///
/// Every change validates its input, plans one transaction (one `iptables-restore` per address
/// family, or one nftables transaction), applies it inside the namespace and only then records the change.
/// A refused transaction changes nothing. `Firewall` is `Send + Sync`; changes are serialised
/// by an internal lock, so no rule is ever added twice.
#[derive(Debug)]
pub struct Firewall {
    netns: Netns,
    planner: Planner,
    tools: Tools,
    state: Mutex<DesiredState>,
    /// Set from [`Firewall::with_state`] until the first [`Firewall::reconcile`]: changes are
    /// recorded (validated and planned) but not applied, so a restart can gather the whole
    /// state from its restores and converge the kernel once.
    staging: AtomicBool,
}

impl Firewall {
    /// Finds the tools, then sets up berth's base rules in `netns` (its chains or table, the
    /// user's chain, the jumps, the FORWARD policy if configured) with no networks yet. Any
    /// berth-owned rule already present that the empty state does not want is removed; the
    /// user's chain is kept as it is.
    pub fn new(netns: &Netns, config: FirewallConfig) -> Result<Firewall> {
        let fw = Firewall::with_state(netns, config, DesiredState::new())?;
        fw.reconcile()?;
        Ok(fw)
    }

    /// A firewall that takes over `state` (after a restart) without touching the kernel yet.
    /// Until the first [`Firewall::reconcile`], changes (`add_*`, `remove_*`) are validated and
    /// recorded but not applied: a restart adds what its restores find, then one reconcile
    /// restores what is missing and removes what is stale (the rules in the kernel stay as they
    /// were meanwhile, so traffic does not blink). The state is validated against `config`
    /// piece by piece.
    pub fn with_state(
        netns: &Netns,
        config: FirewallConfig,
        state: DesiredState,
    ) -> Result<Firewall> {
        let planner = Planner::new(config)?;
        let tools = exec::detect(netns, planner.config())?;
        Firewall::staged(netns, planner, state, tools)
    }

    /// [`Firewall::with_state`] without the tool probes (no `--version` runs, and no probe of
    /// the netlink fast path when the verdict has one): `verdict` is what an earlier
    /// [`Firewall::tools_verdict`] found in this namespace. `None` when the verdict was found
    /// for another configuration (backend, iptables variant, tools directory); probe then.
    pub fn with_known_tools(
        netns: &Netns,
        config: FirewallConfig,
        state: DesiredState,
        verdict: &ToolsVerdict,
    ) -> Result<Option<Firewall>> {
        match Tools::from_verdict(verdict, &config) {
            Some(tools) => Firewall::staged(netns, Planner::new(config)?, state, tools).map(Some),
            None => Ok(None),
        }
    }

    /// A staged firewall with these tools, over `state` validated against the planner's
    /// configuration piece by piece.
    fn staged(
        netns: &Netns,
        planner: Planner,
        state: DesiredState,
        tools: Tools,
    ) -> Result<Firewall> {
        let checked = DesiredState::from_parts(
            planner.config(),
            state.networks().values().cloned(),
            state.ports().iter().cloned(),
            state.links().iter().cloned(),
        )?;
        Ok(Firewall {
            netns: netns.try_clone()?,
            planner,
            tools,
            state: Mutex::new(checked),
            staging: AtomicBool::new(true),
        })
    }

    /// What the tool probes found (for [`Firewall::with_known_tools`] in a later process).
    pub fn tools_verdict(&self) -> ToolsVerdict {
        self.tools.verdict()
    }

    /// Ends the staging of [`Firewall::with_state`] without a reconcile: the caller knows that
    /// the kernel holds exactly what the state says (an earlier process left it so, on this
    /// boot and in this namespace, and ended cleanly). Changes apply from now on; drift made
    /// meanwhile by others stays until a [`Firewall::reconcile`].
    pub fn trust_kernel(&self) {
        self.staging.store(false, Ordering::Relaxed);
    }

    /// The configuration.
    pub fn config(&self) -> &FirewallConfig {
        self.planner.config()
    }

    /// Whether this firewall appends iptables rules over netlink (the iptables backend with the
    /// nf_tables binaries, [`FirewallConfig::iptables_netlink`] on, and the installed tool
    /// encoding rules as berth does; checked once, on first use). False for the nftables
    /// backend, which always talks netlink for its element changes.
    pub fn iptables_over_netlink(&self) -> bool {
        exec::fast_path_usable(&self.netns, &self.tools)
    }

    /// The pure planner this firewall uses.
    pub fn planner(&self) -> &Planner {
        &self.planner
    }

    /// A copy of the desired state (what berth's rules express right now).
    pub fn state(&self) -> DesiredState {
        self.lock().clone()
    }

    /// The legacy links present (a copy of those only, not of the whole state).
    pub fn links(&self) -> Vec<LinkRule> {
        self.lock().links().to_vec()
    }

    pub(crate) fn tools(&self) -> &Tools {
        &self.tools
    }

    pub(crate) fn netns(&self) -> &Netns {
        &self.netns
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, DesiredState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a change's transaction (recorded only while staging: see
    /// [`Firewall::with_state`]).
    fn apply(&self, op: &str, tx: &Transaction) -> Result<()> {
        if self.staging.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.apply_now(op, tx)
    }

    /// Whether changes are only recorded until the first [`Firewall::reconcile`].
    pub fn staging(&self) -> bool {
        self.staging.load(Ordering::Relaxed)
    }

    fn apply_now(&self, op: &str, tx: &Transaction) -> Result<()> {
        let span = tracing::debug_span!("firewall", op, processes = tx.processes());
        let _enter = span.enter();
        exec::apply(&self.netns, &self.tools, tx)
    }

    /// Adds a bridge network's rules.
    pub fn add_network(&self, net: NetworkRules) -> Result<()> {
        let mut state = self.lock();
        let tx = self.planner.add_network(&state, &net)?;
        self.apply("add_network", &tx)?;
        state.insert_network(self.config(), net)
    }

    /// Removes a bridge network's rules (its ports and links must be removed first).
    pub fn remove_network(&self, bridge: &str) -> Result<NetworkRules> {
        let mut state = self.lock();
        let tx = self.planner.remove_network(&state, bridge)?;
        self.apply("remove_network", &tx)?;
        state.remove_network(bridge)
    }

    /// Publishes ports, all in one transaction.
    pub fn add_ports(&self, ports: &[PortRule]) -> Result<()> {
        let mut state = self.lock();
        let tx = self.planner.add_ports(&state, ports)?;
        self.apply("add_ports", &tx)?;
        for p in ports {
            state.insert_port(self.config(), p.clone())?;
        }
        Ok(())
    }

    /// Unpublishes ports, all in one transaction.
    pub fn remove_ports(&self, ports: &[PortRule]) -> Result<()> {
        let mut state = self.lock();
        let tx = self.planner.remove_ports(&state, ports)?;
        self.apply("remove_ports", &tx)?;
        for p in ports {
            state.remove_port(p)?;
        }
        Ok(())
    }

    /// Adds a legacy link.
    pub fn add_link(&self, link: LinkRule) -> Result<()> {
        let mut state = self.lock();
        let tx = self.planner.add_link(&state, &link)?;
        self.apply("add_link", &tx)?;
        state.insert_link(self.config(), link)
    }

    /// Removes a legacy link.
    pub fn remove_link(&self, link: &LinkRule) -> Result<()> {
        let mut state = self.lock();
        let tx = self.planner.remove_link(&state, link)?;
        self.apply("remove_link", &tx)?;
        state.remove_link(link).map(|_| ())
    }

    /// Compares the kernel's rules with the desired state without changing anything (while
    /// staging, what the next reconcile would do).
    pub fn check_drift(&self) -> Result<DriftReport> {
        let state = self.lock();
        let observed = exec::observe(&self.netns, &self.tools, self.config())?;
        Ok(self.planner.converge(&state, &observed)?.1)
    }

    /// Finds drift and fixes it in one transaction (per family for iptables): restores missing
    /// rules, chains, jumps and elements, removes berth-owned ones the state does not want, and
    /// rewrites only the berth chains that differ. The user's chain is never flushed. Returns
    /// what was found (empty when nothing had to change).
    pub fn reconcile(&self) -> Result<DriftReport> {
        let state = self.lock();
        let observed = exec::observe(&self.netns, &self.tools, self.config())?;
        let (tx, report) = self.planner.converge(&state, &observed)?;
        if !tx.is_empty() {
            tracing::info!(%report, "reconciling firewall drift");
            self.apply_now("reconcile", &tx)?;
        }
        // From now on every change is applied as it is made (held under the state's lock, so
        // no change slips between this reconcile and the switch).
        self.staging.store(false, Ordering::Relaxed);
        // Probe the iptables netlink path now (once), not in the first change a caller times.
        exec::fast_path_usable(&self.netns, &self.tools);
        Ok(report)
    }
}

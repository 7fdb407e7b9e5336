//! Removing all of berth's rules from the firewall's namespace: a teardown for engines and test
//! suites that are done with berth (`berth::Controller::teardown`).

use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::exec;
use crate::firewall::Firewall;
use crate::iptables::{self, Dump};
use crate::model::Family;
use crate::spec::{Backend, DesiredState};

/// The built-in chains berth's jumps live in.
const BUILTIN: [&str; 5] = ["INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"];

impl Firewall {
    /// Removes every rule, chain, jump and table berth made in the namespace, sets the FORWARD
    /// policy back to ACCEPT where berth set it to DROP ([`crate::FirewallConfig::drops_forward`]),
    /// and forgets the desired state. The user's chain stays, with its jump, when it holds rules
    /// of the user's (`DOCKER-USER` beyond berth's `RETURN`); with the nftables backend it lives
    /// in berth's table and goes with it (its rules are named in the answer). Returns what was
    /// removed, one line each.
    pub fn remove_all(&self) -> Result<Vec<String>> {
        let mut state = self.lock();
        let done = match self.config().backend {
            Backend::Iptables => self.remove_iptables()?,
            Backend::Nftables => self.remove_nftables()?,
        };
        *state = DesiredState::new();
        Ok(done)
    }

    fn remove_iptables(&self) -> Result<Vec<String>> {
        let mut done = Vec::new();
        for family in self.config().families() {
            let tools = self.tools();
            let dump: Dump = exec::save(
                self.netns(),
                tools.dir.as_deref(),
                tools.variant,
                family,
                None,
            )?;
            let mut script = String::new();
            for (table, chains) in &dump.tables {
                let ours = |c: &str| c.starts_with("BERTH-");
                let user = chains.get(iptables::USER_CHAIN);
                let user_has_rules = user.is_some_and(|c| c.rules.iter().any(|r| r != "-j RETURN"));
                let removable = |c: &str| ours(c) || (c == iptables::USER_CHAIN && !user_has_rules);
                let mut lines = String::new();
                for b in BUILTIN {
                    let Some(chain) = chains.get(b) else { continue };
                    for rule in &chain.rules {
                        let target = rule.split_whitespace().skip_while(|w| *w != "-j").nth(1);
                        if target.is_some_and(removable) {
                            let _ = writeln!(lines, "-D {b} {rule}");
                            done.push(format!("{} {} {b}: {rule}", name(family), table.name()));
                        }
                    }
                    if b == "FORWARD"
                        && self.config().drops_forward(family)
                        && chain.policy == "DROP"
                    {
                        let _ = writeln!(lines, "-P FORWARD ACCEPT");
                        done.push(format!("{} FORWARD policy back to ACCEPT", name(family)));
                    }
                }
                let mine: Vec<&String> = chains.keys().filter(|c| removable(c)).collect();
                for c in &mine {
                    let _ = writeln!(lines, "-F {c}");
                }
                for c in &mine {
                    let _ = writeln!(lines, "-X {c}");
                    done.push(format!("{} {} chain {c}", name(family), table.name()));
                }
                if user_has_rules {
                    done.push(format!(
                        "{} {} chain {} kept: it holds the user's rules",
                        name(family),
                        table.name(),
                        iptables::USER_CHAIN
                    ));
                }
                if !lines.is_empty() {
                    let _ = write!(script, "*{}\n{lines}COMMIT\n", table.name());
                }
            }
            if !script.is_empty() {
                let out = exec::restore(self.netns(), tools, family, &script)?;
                if !out.status.success() {
                    return Err(Error::io(
                        format!("removing berth's {} rules", name(family)),
                        std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
                    ));
                }
            }
        }
        Ok(done)
    }

    fn remove_nftables(&self) -> Result<Vec<String>> {
        let dir = self.tools().dir.clone();
        let out = exec::run(
            self.netns(),
            dir.as_deref(),
            "nft",
            &[
                "list",
                "chain",
                "inet",
                crate::nftables::TABLE_NAME,
                crate::nftables::USER_CHAIN,
            ],
            None,
            "nftables",
        )?;
        if !out.status.success() {
            // No table: nothing of berth's is there.
            return Ok(Vec::new());
        }
        let mut done = Vec::new();
        let listing = String::from_utf8_lossy(&out.stdout);
        let user_rules: Vec<&str> = listing
            .lines()
            .map(str::trim)
            .filter(|l| {
                !l.is_empty() && !l.starts_with("table") && !l.starts_with("chain") && *l != "}"
            })
            .filter(|l| !l.starts_with("type ") && !l.starts_with("policy"))
            .collect();
        for r in &user_rules {
            done.push(format!(
                "the user's rule in {}: {r}",
                crate::nftables::USER_CHAIN
            ));
        }
        exec::apply_nft(
            self.netns(),
            dir.as_deref(),
            &format!("delete table {}\n", crate::nftables::TABLE),
        )?;
        done.push(format!("table {}", crate::nftables::TABLE));
        Ok(done)
    }
}

fn name(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

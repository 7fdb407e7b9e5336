//! The tools a firewall runs: which binaries (`nft`, or the iptables variant and whether its
//! binaries are the legacy x_tables ones), found once per firewall by their `--version`, and
//! whether the iptables netlink fast path works with them (probed on first use). Both verdicts
//! can be kept by a short-lived process for the next one ([`ToolsVerdict`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use berth_netlink::Netns;

use super::{describe, nft_socket, restore, run, stderr_of};
use crate::error::{Error, Result};
use crate::model::Family;
use crate::spec::{Backend, FirewallConfig, IptablesVariant};
use crate::xtnl;

/// The tools berth found for a configuration.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    pub backend: Backend,
    pub variant: IptablesVariant,
    /// Where the tools are (`None`: `PATH`).
    pub dir: Option<PathBuf>,
    /// Whether the iptables binaries are the nf_tables ones, whose rules the netlink fast path
    /// ([`crate::xtnl`]) can append; probed on first use.
    pub fast: Arc<FastPath>,
    /// The iptables binaries are the legacy (x_tables) ones: the kernel sends no notifications
    /// of their changes.
    pub legacy: bool,
}

/// The state of the iptables netlink fast path in the namespace the [`Tools`] were found for.
#[derive(Debug)]
pub(crate) struct FastPath {
    /// `None`: not probed yet; `Some(false)`: the legacy variant, or a probe that failed.
    usable: Mutex<Option<bool>>,
    /// The families the probe checks.
    families: Vec<Family>,
}

/// What the tool probes found for a configuration: which iptables binaries are installed and
/// whether the netlink fast path works with them. A short-lived process (a CNI plugin's call)
/// keeps it for the next one, which then runs no probe: see [`crate::Firewall::tools_verdict`]
/// and [`crate::Firewall::with_known_tools`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ToolsVerdict {
    backend: Backend,
    variant: IptablesVariant,
    dir: Option<PathBuf>,
    legacy: bool,
    /// `None`: not probed yet.
    fast_path: Option<bool>,
}

impl Tools {
    /// What the probes found so far.
    pub(crate) fn verdict(&self) -> ToolsVerdict {
        ToolsVerdict {
            backend: self.backend,
            variant: self.variant,
            dir: self.dir.clone(),
            legacy: self.legacy,
            fast_path: *self
                .fast
                .usable
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// The tools a verdict describes, if it was found for this configuration (backend,
    /// iptables variant and tools directory).
    pub(crate) fn from_verdict(v: &ToolsVerdict, config: &FirewallConfig) -> Option<Tools> {
        if v.backend != config.backend
            || v.variant != config.iptables_variant
            || v.dir != config.tools_dir
        {
            return None;
        }
        let fast = match v.backend {
            Backend::Nftables => FastPath::off(),
            Backend::Iptables => {
                let candidate = !v.legacy && config.iptables_netlink;
                let fast = FastPath::new(candidate, config.families());
                if candidate {
                    *fast.usable.lock().unwrap_or_else(PoisonError::into_inner) = v.fast_path;
                }
                fast
            }
        };
        Some(Tools {
            backend: v.backend,
            variant: v.variant,
            dir: v.dir.clone(),
            fast,
            legacy: v.legacy,
        })
    }
}

impl FastPath {
    fn new(candidate: bool, families: Vec<Family>) -> Arc<FastPath> {
        Arc::new(FastPath {
            usable: Mutex::new(if candidate { None } else { Some(false) }),
            families,
        })
    }

    /// A fast path that is never used.
    pub(crate) fn off() -> Arc<FastPath> {
        FastPath::new(false, Vec::new())
    }
}

/// Finds the tools and checks that iptables variants are not mixed.
pub(crate) fn detect(netns: &Netns, config: &FirewallConfig) -> Result<Tools> {
    match config.backend {
        Backend::Nftables => {
            let dir = config.tools_dir.as_deref();
            let out = run(netns, dir, "nft", &["--version"], None, "nftables")?;
            if !out.status.success() {
                return Err(Error::ToolNotFound {
                    tool: "nft".into(),
                    detail: stderr_of(&out),
                    package: "nftables",
                });
            }
            Ok(Tools {
                backend: Backend::Nftables,
                variant: config.iptables_variant,
                dir: config.tools_dir.clone(),
                fast: FastPath::off(),
                legacy: false,
            })
        }
        Backend::Iptables => {
            let dir = config.tools_dir.as_deref();
            let (legacy, _) =
                iptables_version(netns, dir, config.iptables_variant, &config.families())?;
            Ok(Tools {
                backend: Backend::Iptables,
                variant: config.iptables_variant,
                dir: config.tools_dir.clone(),
                fast: FastPath::new(!legacy && config.iptables_netlink, config.families()),
                legacy,
            })
        }
    }
}

/// Checks the restore and save binaries of `families` and the other variant's tables. Returns
/// whether the binaries are the legacy ones, and their version line.
pub(crate) fn iptables_version(
    netns: &Netns,
    dir: Option<&Path>,
    variant: IptablesVariant,
    families: &[Family],
) -> Result<(bool, String)> {
    let mut legacy = None;
    let mut version = String::new();
    for &f in families {
        for prog in [variant.restore(f), variant.save(f)] {
            let out = run(netns, dir, prog, &["--version"], None, "iptables")?;
            let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !out.status.success() || text.is_empty() {
                return Err(Error::ToolNotFound {
                    tool: prog.into(),
                    detail: format!("`{prog} --version` failed: {}", stderr_of(&out)),
                    package: "iptables",
                });
            }
            let is_legacy = text.contains("legacy");
            if legacy.is_some_and(|l| l != is_legacy) {
                return Err(Error::MixedIptables {
                    netns: describe(netns),
                    found: text,
                    other: if is_legacy { "nft" } else { "legacy" },
                    detail: format!("the other binaries report {version:?}"),
                });
            }
            legacy = Some(is_legacy);
            version = text;
        }
    }
    let legacy = legacy.unwrap_or(false);
    // Rules in the other variant's tables would shadow or bypass berth's.
    for &f in families {
        let other_save = if legacy {
            IptablesVariant::Nft.save(f)
        } else {
            IptablesVariant::Legacy.save(f)
        };
        if !legacy {
            // Only look when the kernel has legacy tables loaded in this namespace at all.
            let names = match f {
                Family::V4 => "/proc/thread-self/net/ip_tables_names",
                Family::V6 => "/proc/thread-self/net/ip6_tables_names",
            };
            let loaded = netns.run(|| std::fs::read_to_string(names).unwrap_or_default())?;
            if loaded.trim().is_empty() {
                continue;
            }
        }
        let out = match run(netns, dir, other_save, &[], None, "iptables") {
            Ok(o) => o,
            Err(Error::ToolNotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let rules: Vec<&str> = text.lines().filter(|l| l.starts_with("-A ")).collect();
        if !rules.is_empty() {
            return Err(Error::MixedIptables {
                netns: describe(netns),
                found: format!("{} ({version})", variant.restore(f)),
                other: if legacy { "nft" } else { "legacy" },
                detail: format!(
                    "`{other_save}` lists {} rule(s), e.g. {:?}",
                    rules.len(),
                    rules.first().copied().unwrap_or_default()
                ),
            });
        }
    }
    Ok((legacy, version))
}

/// Whether the netlink fast path may be used in `netns`: probes it on first use.
pub(crate) fn fast_path_usable(netns: &Netns, tools: &Tools) -> bool {
    let fast = &tools.fast;
    let mut usable = fast.usable.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(u) = *usable {
        return u;
    }
    let verdict = probe(netns, tools, &fast.families);
    match &verdict {
        Ok(()) => tracing::debug!("iptables rules are appended over netlink"),
        Err(why) => tracing::info!(
            %why,
            "the iptables netlink fast path is off here; every change runs iptables-restore"
        ),
    }
    *usable = Some(verdict.is_ok());
    verdict.is_ok()
}

/// Has the tool append the probe rules, appends them over netlink too, compares the kernel's
/// listings of both and removes the probe chains (also when a step fails).
fn probe(netns: &Netns, tools: &Tools, families: &[Family]) -> std::result::Result<(), String> {
    let socket = nft_socket(netns).map_err(|e| e.to_string())?;
    let mut ran = Vec::new();
    for &f in families {
        let refused = match restore(netns, tools, f, &xtnl::probe_script(f)) {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(format!(
                "{} refused the probe rules: {}",
                tools.variant.restore(f),
                stderr_of(&out)
            )),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = refused {
            if !ran.is_empty() {
                if let Err(e) = xtnl::probe_cleanup(&socket, &ran) {
                    tracing::warn!(error = %e, "removing the probe chains; reconcile will");
                }
            }
            return Err(why);
        }
        ran.push(f);
    }
    match xtnl::probe_compare(&socket, families) {
        Ok(None) => Ok(()),
        Ok(Some(why)) => Err(why),
        Err(e) => Err(e.to_string()),
    }
}

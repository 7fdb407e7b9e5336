//! The thin applying layer: runs `iptables-restore`, `iptables-save` and `nft` inside a
//! namespace, with the batch on stdin, and rolls back what a failed transaction committed.
//! nftables changes that only add and delete set elements skip `nft`: they go to the kernel as
//! one nf_tables netlink batch, on a socket kept open per namespace.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use berth_netlink::Netns;
use berth_netlink::nftables::{Batch as NlBatch, NftHandle};

use crate::error::{Error, Result};
use crate::iptables::{Dump, IptBatch};
use crate::model::Family;
use crate::nftables::{self, Listing};
use crate::plan::{Observed, Transaction};
use crate::spec::{Backend, FirewallConfig, IptablesVariant};
use crate::xtnl;

mod tools;
pub use tools::ToolsVerdict;
pub(crate) use tools::{FastPath, Tools, detect, fast_path_usable, iptables_version};

pub(crate) fn describe(netns: &Netns) -> String {
    match netns.path() {
        Some(p) => format!("network namespace {}", p.display()),
        None => "the given network namespace".into(),
    }
}

/// The process ids of the tools the firewall ran lately, and the thread ids of its netlink
/// commits (most recent last): the kernel names them as the authors of berth's own nf_tables
/// commits, which the healing thread skips.
static OWN_CHILDREN: Mutex<VecDeque<u32>> = Mutex::new(VecDeque::new());
/// How many tool pids are remembered (a pid is reused only after the kernel's whole pid space
/// went round, so a few hundred are plenty for commits notified a moment later).
const OWN_CHILDREN_KEPT: usize = 512;

/// Remembers `pid` (a tool the firewall started, or a thread of this process about to commit
/// over netlink) as the author of berth's own commits.
fn note_own(pid: u32) {
    let mut own = OWN_CHILDREN.lock().unwrap_or_else(|p| p.into_inner());
    if own.back() == Some(&pid) {
        return;
    }
    if own.len() >= OWN_CHILDREN_KEPT {
        own.pop_front();
    }
    own.push_back(pid);
}

/// Remembers the calling thread as the author of the nf_tables commit it is about to make (the
/// kernel names the committing thread, not the process).
pub(crate) fn note_own_commit() {
    note_own(nix::unistd::gettid().as_raw().unsigned_abs());
}

/// Whether `pid` is this process or one of the tools or threads that made berth's commits
/// lately.
pub(crate) fn is_own_process(pid: u32) -> bool {
    pid == std::process::id()
        || OWN_CHILDREN
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&pid)
}

/// Runs `program args` inside `netns`, feeding `stdin`.
pub(crate) fn run(
    netns: &Netns,
    dir: Option<&Path>,
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
    package: &'static str,
) -> Result<Output> {
    let path: PathBuf = match dir {
        Some(d) => d.join(program),
        None => PathBuf::from(program),
    };
    // The child is spawned from a thread that has entered the namespace, so it starts there
    // without a pre-exec hook; that lets the standard library use posix_spawn (vfork) instead of
    // fork, which costs in proportion to the caller's memory (16 ms vs 1.2 ms for a process
    // with 200 MiB resident, measured).
    let spawned = netns.run(|| {
        Command::new(&path)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    })?;
    let mut child = spawned.map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::PermissionDenied {
            Error::ToolNotFound {
                tool: path.display().to_string(),
                detail: e.to_string(),
                package,
            }
        } else {
            Error::io(format!("starting {program} in {}", describe(netns)), e)
        }
    })?;
    note_own(child.id());
    let writer = match (stdin, child.stdin.take()) {
        (Some(text), Some(mut pipe)) => {
            let text = text.to_owned();
            Some(std::thread::spawn(move || pipe.write_all(text.as_bytes())))
        }
        _ => None,
    };
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io(format!("waiting for {program} in {}", describe(netns)), e))?;
    if let Some(w) = writer {
        // A tool that exits early closes its stdin; its exit status tells why.
        let _ = w.join();
    }
    Ok(out)
}

fn stderr_of(out: &Output) -> String {
    let e = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = e
        .lines()
        .filter(|l| !l.starts_with("# Warning: iptables-legacy tables present"))
        .collect();
    let s = lines.join("; ");
    if s.is_empty() {
        format!("exit status {}", out.status)
    } else {
        s
    }
}

/// Reads what reconcile compares.
pub(crate) fn observe(netns: &Netns, tools: &Tools, config: &FirewallConfig) -> Result<Observed> {
    match tools.backend {
        Backend::Iptables => {
            let mut dumps = BTreeMap::new();
            for f in config.families() {
                dumps.insert(
                    f,
                    save(netns, tools.dir.as_deref(), tools.variant, f, None)?,
                );
            }
            Ok(Observed::Iptables(dumps))
        }
        Backend::Nftables => {
            let args = ["list", "table", "inet", "berth"];
            let out = run(netns, tools.dir.as_deref(), "nft", &args, None, "nftables")?;
            if out.status.success() {
                Ok(Observed::Nftables(Some(Listing::parse(
                    &String::from_utf8_lossy(&out.stdout),
                )?)))
            } else {
                let err = stderr_of(&out);
                if err.contains("No such file or directory") {
                    Ok(Observed::Nftables(None))
                } else {
                    Err(Error::Refused {
                        tool: format!("nft list table {}", nftables::TABLE),
                        netns: describe(netns),
                        message: err,
                    })
                }
            }
        }
    }
}

/// `iptables-save [-t table]` of one family, parsed.
pub(crate) fn save(
    netns: &Netns,
    dir: Option<&Path>,
    variant: IptablesVariant,
    family: Family,
    table: Option<&str>,
) -> Result<Dump> {
    let prog = variant.save(family);
    let args: Vec<&str> = match table {
        Some(t) => vec!["-t", t],
        None => vec![],
    };
    let out = run(netns, dir, prog, &args, None, "iptables")?;
    if !out.status.success() {
        return Err(Error::Refused {
            tool: prog.into(),
            netns: describe(netns),
            message: stderr_of(&out),
        });
    }
    Dump::parse(&String::from_utf8_lossy(&out.stdout))
}

/// The line number in a restore error (`... line 5 failed`).
fn failed_line(message: &str) -> Option<usize> {
    message.match_indices("line").find_map(|(i, _)| {
        let rest = message[i + 4..].trim_start_matches([':', ' ']);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// Applies a transaction; on failure nothing stays changed (or [`Error::RollbackFailed`]).
pub(crate) fn apply(netns: &Netns, tools: &Tools, tx: &Transaction) -> Result<()> {
    match tx {
        Transaction::Nftables(b) => {
            if b.is_empty() {
                return Ok(());
            }
            match b.netlink() {
                Some(Ok(batch)) => apply_netlink(netns, &batch),
                Some(Err(why)) => {
                    // Not expected: every element berth makes is encodable. nft still can.
                    tracing::warn!(%why, "element change not encodable for netlink; running nft -f");
                    apply_nft(netns, tools.dir.as_deref(), &b.script())
                }
                None => apply_nft(netns, tools.dir.as_deref(), &b.script()),
            }
        }
        Transaction::Iptables(batches) => apply_iptables(netns, tools, batches),
    }
}

/// Applies one nftables script in one `nft -f` transaction inside `netns`.
pub(crate) fn apply_nft(netns: &Netns, dir: Option<&std::path::Path>, script: &str) -> Result<()> {
    let out = run(netns, dir, "nft", &["-f", "-"], Some(script), "nftables")?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Refused {
            tool: "nft -f".into(),
            netns: describe(netns),
            message: stderr_of(&out),
        })
    }
}

/// The nf_tables sockets of the namespaces berth changes set elements in, kept open between
/// changes: closing such a socket makes the kernel wait for the release of recent transactions
/// while it holds the namespace's nf_tables lock (10-20 ms), which the next change would pay.
/// A socket holds its namespace alive, so the cache is small and forgets idle namespaces.
static NFT_SOCKETS: Mutex<Vec<CachedSocket>> = Mutex::new(Vec::new());
/// At most this many namespaces keep a socket.
const NFT_SOCKETS_MAX: usize = 8;
/// A namespace with no element change for this long loses its socket (at the next change
/// anywhere).
const NFT_SOCKET_IDLE: Duration = Duration::from_secs(30);

struct CachedSocket {
    /// The namespace's inode number ([`Netns::id`]); it cannot be reused while the socket
    /// holds the namespace.
    netns: u64,
    handle: Arc<NftHandle>,
    used: Instant,
}

/// The cached nf_tables socket of `netns`, opened on first use.
fn nft_socket(netns: &Netns) -> Result<Arc<NftHandle>> {
    let id = netns.id()?;
    let now = Instant::now();
    let mut cache = NFT_SOCKETS.lock().unwrap_or_else(PoisonError::into_inner);
    cache.retain(|c| c.netns == id || now.duration_since(c.used) < NFT_SOCKET_IDLE);
    if let Some(c) = cache.iter_mut().find(|c| c.netns == id) {
        c.used = now;
        return Ok(Arc::clone(&c.handle));
    }
    let handle = Arc::new(NftHandle::open(netns)?);
    if cache.len() >= NFT_SOCKETS_MAX {
        if let Some(oldest) = (0..cache.len()).min_by_key(|&i| cache[i].used) {
            cache.swap_remove(oldest);
        }
    }
    cache.push(CachedSocket {
        netns: id,
        handle: Arc::clone(&handle),
        used: now,
    });
    Ok(handle)
}

/// Forgets the cached socket of namespace `id` (after an error on it).
fn forget_nft_socket(id: u64) {
    let mut cache = NFT_SOCKETS.lock().unwrap_or_else(PoisonError::into_inner);
    cache.retain(|c| c.netns != id);
}

/// Applies an element-only transaction as one nf_tables netlink batch inside `netns`: all of it
/// or, if the kernel refuses any element, nothing.
pub(crate) fn apply_netlink(netns: &Netns, batch: &NlBatch) -> Result<()> {
    let socket = nft_socket(netns)?;
    note_own_commit();
    socket.commit(batch).map_err(|e| {
        if let Ok(id) = netns.id() {
            forget_nft_socket(id);
        }
        match e {
            // The socket itself failed (or the answers were lost): the outcome is unknown, and
            // the next change opens a new socket; reconcile tells what the kernel has.
            berth_netlink::Error::Io { .. } | berth_netlink::Error::Protocol { .. } => Error::io(
                format!(
                    "sending an nf_tables transaction in {} (run reconcile to check the rules)",
                    describe(netns)
                ),
                io::Error::other(e.to_string()),
            ),
            refused => Error::Refused {
                tool: "the nf_tables netlink transaction".into(),
                netns: describe(netns),
                message: refused.to_string(),
            },
        }
    })
}

pub(crate) fn restore(
    netns: &Netns,
    tools: &Tools,
    family: Family,
    script: &str,
) -> Result<Output> {
    run(
        netns,
        tools.dir.as_deref(),
        tools.variant.restore(family),
        &["--noflush", "--wait"],
        Some(script),
        "iptables",
    )
}

fn apply_iptables(netns: &Netns, tools: &Tools, batches: &[IptBatch]) -> Result<()> {
    if fast_path_usable(netns, tools) {
        let planned = nft_socket(netns)
            .ok()
            .and_then(|socket| xtnl::transaction(batches, &socket));
        if let Some(nl) = planned {
            match apply_netlink(netns, &nl) {
                Ok(()) => return Ok(()),
                // Refused as a whole, so nothing changed: the tool says why (or succeeds).
                Err(Error::Refused { message, .. }) => {
                    tracing::debug!(%message, "netlink change refused; running iptables-restore");
                }
                Err(e) => return Err(e),
            }
        }
    }
    let mut done: Vec<&IptBatch> = Vec::new();
    for b in batches.iter().filter(|b| !b.is_empty()) {
        let prog = tools.variant.restore(b.family);
        let out = restore(netns, tools, b.family, &b.script())?;
        if out.status.success() {
            done.push(b);
            continue;
        }
        let message = stderr_of(&out);
        tracing::warn!(tool = prog, %message, "firewall transaction refused; rolling back");
        // How much of this batch did the tool commit? Both iptables-legacy-restore and
        // iptables-nft-restore (1.8.9, measured) commit each table at its COMMIT line, so the
        // tables whose COMMIT precedes the failing line are in and must be undone.
        let committed = match failed_line(&message) {
            Some(line) => b.commit_lines().iter().filter(|c| **c < line).count(),
            None if b.sections.iter().filter(|s| !s.ops.is_empty()).count() <= 1 => 0,
            None => {
                return Err(Error::RollbackFailed {
                    tool: prog.into(),
                    netns: describe(netns),
                    message,
                    rollback:
                        "cannot tell which tables were committed (no line number in the error)"
                            .into(),
                });
            }
        };
        let mut undo: Vec<(Family, String)> = Vec::new();
        if committed > 0 {
            undo.push((b.family, b.undo_script(committed)));
        }
        for d in done.iter().rev() {
            undo.push((d.family, d.undo_script(usize::MAX)));
        }
        for (family, script) in undo {
            let o = restore(netns, tools, family, &script)?;
            if !o.status.success() {
                return Err(Error::RollbackFailed {
                    tool: prog.into(),
                    netns: describe(netns),
                    message,
                    rollback: stderr_of(&o),
                });
            }
        }
        return Err(Error::Refused {
            tool: prog.into(),
            netns: describe(netns),
            message,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_failed_line() {
        assert_eq!(failed_line("iptables-restore: line 5 failed"), Some(5));
        assert_eq!(
            failed_line(
                "iptables-restore v1.8.9 (legacy): Couldn't load target `X' ... Error occurred at line: 12"
            ),
            Some(12)
        );
        assert_eq!(failed_line("nothing"), None);
    }

    use std::net::IpAddr;

    use berth_testhost::TestHost;

    use crate::model::{PortRange, Protocol};
    use crate::plan::Planner;
    use crate::spec::{DesiredState, LinkPort, LinkRule, NetworkRules, PortRule};

    fn listing(host: &TestHost) -> String {
        let out = host
            .output("nft", &["list", "table", "inet", "berth"])
            .expect("running nft");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn port(
        proto: Protocol,
        host_ip: Option<&str>,
        host: (u16, u16),
        ctr: IpAddr,
        to: (u16, u16),
        bridge: &str,
    ) -> PortRule {
        PortRule {
            proto,
            host_ip: host_ip.map(|a| a.parse().unwrap()),
            host_ports: PortRange::new(host.0, host.1).unwrap(),
            container_ip: ctr,
            container_ports: PortRange::new(to.0, to.1).unwrap(),
            bridge: bridge.into(),
        }
    }

    /// Kernel test (root): every kind of element change (networks with masquerade, SNAT,
    /// internal and icc off, IPv4 and IPv6; single ports, ports on all addresses, ranges kept,
    /// to one port and shifted; links), applied over netlink in one namespace and with `nft -f`
    /// of the same transaction in another, leaves exactly the same `nft list table inet berth`
    /// after every step, adding and then removing everything. A refused netlink batch changes
    /// nothing and says what was refused.
    #[test]
    fn netlink_element_changes_list_exactly_like_nft() {
        let mut config = FirewallConfig::new(Backend::Nftables);
        config.ipv6 = true;
        config.trusted_interfaces = vec!["eth9".into()];
        let planner = Planner::new(config.clone()).unwrap();
        let by_netlink = TestHost::new().expect("a test namespace (run as root)");
        let by_nft = TestHost::new().expect("a test namespace (run as root)");
        let tools = detect(by_netlink.netns(), &config).unwrap();
        let base = planner.full(&DesiredState::new()).unwrap();
        let Transaction::Nftables(base) = &base else {
            panic!("an nftables transaction")
        };
        assert!(base.netlink().is_none(), "the base layout runs as nft -f");
        for h in [&by_netlink, &by_nft] {
            apply_nft(h.netns(), None, &base.script()).unwrap();
        }

        let mut nets = vec![
            NetworkRules::new(
                "br-a",
                Some("172.18.0.0/16".parse().unwrap()),
                Some("fd00:a::/64".parse().unwrap()),
            ),
            NetworkRules::new("br-b", Some("172.19.0.0/24".parse().unwrap()), None),
            NetworkRules::new("br-c", Some("172.20.0.0/24".parse().unwrap()), None),
        ];
        nets[1].icc = false;
        nets[1].host_ipv4 = Some("192.0.2.7".parse().unwrap());
        nets[2].internal = true;
        let a4: IpAddr = "172.18.0.2".parse().unwrap();
        let a6: IpAddr = "fd00:a::2".parse().unwrap();
        let ports = vec![
            port(Protocol::Tcp, None, (8080, 8080), a4, (80, 80), "br-a"),
            port(
                Protocol::Udp,
                Some("192.0.2.1"),
                (53, 53),
                a4,
                (5353, 5353),
                "br-a",
            ),
            port(Protocol::Tcp, None, (9000, 9099), a4, (9000, 9099), "br-a"),
            port(
                Protocol::Tcp,
                Some("192.0.2.1"),
                (7000, 7009),
                a4,
                (80, 80),
                "br-a",
            ),
            port(Protocol::Sctp, None, (6000, 6003), a4, (7000, 7003), "br-a"),
            port(Protocol::Tcp, None, (8443, 8443), a6, (443, 443), "br-a"),
            port(
                Protocol::Udp,
                Some("fd00::1"),
                (4000, 4010),
                a6,
                (4000, 4010),
                "br-a",
            ),
        ];
        let link = LinkRule {
            bridge: "br-b".into(),
            parent_ip: "172.19.0.2".parse().unwrap(),
            child_ip: "172.19.0.3".parse().unwrap(),
            ports: vec![
                LinkPort {
                    proto: Protocol::Tcp,
                    port: 5432,
                },
                LinkPort {
                    proto: Protocol::Udp,
                    port: 53,
                },
            ],
        };

        let mut state = DesiredState::new();
        let step = |tx: Transaction, what: &str| {
            let Transaction::Nftables(b) = &tx else {
                panic!("an nftables transaction")
            };
            assert!(
                matches!(b.netlink(), Some(Ok(_))),
                "{what}: an element change goes over netlink"
            );
            apply(by_netlink.netns(), &tools, &tx).unwrap_or_else(|e| panic!("{what}: {e}"));
            apply_nft(by_nft.netns(), None, &b.script()).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(listing(&by_netlink), listing(&by_nft), "after {what}");
        };
        for net in &nets {
            step(
                planner.add_network(&state, net).unwrap(),
                &format!("adding {}", net.bridge),
            );
            state.insert_network(&config, net.clone()).unwrap();
        }
        step(
            planner.add_ports(&state, &ports).unwrap(),
            "publishing ports",
        );
        for p in &ports {
            state.insert_port(&config, p.clone()).unwrap();
        }
        step(planner.add_link(&state, &link).unwrap(), "adding a link");
        state.insert_link(&config, link.clone()).unwrap();
        let full = listing(&by_netlink);
        assert!(full.contains("172.19.0.0/24 : 192.0.2.7"), "{full}");
        assert!(full.contains("9000-9099"), "{full}");

        // A refused batch (adding a port whose element exists with another value) changes
        // nothing, and the error names the refusal.
        let mut clash = ports[0].clone();
        clash.container_ip = "172.18.0.9".parse().unwrap();
        let clash_tx = Transaction::Nftables(crate::nftables::delta(
            &[
                crate::nftables::port_dnat_elems(&port(
                    Protocol::Tcp,
                    None,
                    (12345, 12345),
                    a4,
                    (80, 80),
                    "br-a",
                ))[0]
                    .clone(),
                crate::nftables::port_dnat_elems(&clash)[0].clone(),
            ],
            &[],
        ));
        let e = apply(by_netlink.netns(), &tools, &clash_tx).unwrap_err();
        assert!(matches!(e, Error::Refused { .. }), "{e:?}");
        assert!(e.to_string().contains("set \"dnat4_all\""), "{e}");
        assert_eq!(
            listing(&by_netlink),
            full,
            "a refused batch changes nothing"
        );

        step(
            planner.remove_link(&state, &link).unwrap(),
            "removing the link",
        );
        state.remove_link(&link).unwrap();
        step(
            planner.remove_ports(&state, &ports).unwrap(),
            "unpublishing ports",
        );
        for p in &ports {
            state.remove_port(p).unwrap();
        }
        for net in &nets {
            step(
                planner.remove_network(&state, &net.bridge).unwrap(),
                &format!("removing {}", net.bridge),
            );
            state.remove_network(&net.bridge).unwrap();
        }
        assert!(!listing(&by_netlink).contains("172.18.0.0/16"));
    }
}

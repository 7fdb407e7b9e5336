//! How queries to `127.0.0.11:53` reach the server's real ports inside a sandbox.
//!
//! Like Docker, berth's server listens on random ports of 127.0.0.11, so port 53 stays free for a
//! DNS server of the sandbox's own (on any address, the wildcard included). Docker then DNATs port
//! 53 with conntrack; berth by default rewrites the ports statelessly instead: an nftables chain at
//! the `raw` priority of the output hook changes the destination port of queries and the source
//! port of answers, and marks both `notrack`. No conntrack entry is made per query, so a busy
//! resolver cannot fill the conntrack table and parallel A/AAAA queries from one socket cannot
//! race on conntrack insertion (the cause of the well-known 5-second DNS delays with DNAT), and
//! each packet costs less. [`Redirect::Conntrack`] keeps Docker's DNAT (berth-firewall's `dns`
//! module, iptables or nftables) for hosts without `nft`.

use std::io::Write;
use std::process::Stdio;

use berth_firewall::FirewallConfig;
use berth_firewall::dns::{DnsRedirect, apply_dns_redirect};
use berth_netlink::Netns;

use crate::error::{Error, Result};
use crate::files::EMBEDDED_DNS_ADDRESS;
use crate::server::ServerPorts;

/// The nftables table of the stateless redirect, inside each sandbox's namespace.
pub const STATELESS_TABLE: &str = "ip berth-resolver";

/// How `127.0.0.11:53` is redirected to the server's ports in each sandbox.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Redirect {
    /// Stateless port rewriting with nftables, no conntrack (the default; needs `nft`).
    Stateless,
    /// Docker's conntrack DNAT/SNAT through berth-firewall, with its backend.
    Conntrack(FirewallConfig),
    /// Nothing: the caller redirects (see [`ServerPorts`]).
    None,
}

/// The `nft -f` script of the stateless redirect: replaces table `ip berth-resolver` at once.
pub fn stateless_script(ports: ServerPorts) -> String {
    let (t, a, u, p) = (STATELESS_TABLE, EMBEDDED_DNS_ADDRESS, ports.udp, ports.tcp);
    format!(
        "add table {t}\n\
         delete table {t}\n\
         add table {t}\n\
         add chain {t} output {{ type filter hook output priority raw; policy accept; }}\n\
         add rule {t} output ip daddr {a} udp dport 53 notrack udp dport set {u}\n\
         add rule {t} output ip daddr {a} tcp dport 53 notrack tcp dport set {p}\n\
         add rule {t} output ip saddr {a} udp sport {u} notrack udp sport set 53\n\
         add rule {t} output ip saddr {a} tcp sport {p} notrack tcp sport set 53\n"
    )
}

fn run_nft(netns: &Netns, sandbox: &str, script: &str) -> Result<()> {
    let fail = |message: String| Error::RedirectTool {
        sandbox: sandbox.to_owned(),
        message,
    };
    let mut child = netns
        .command("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "cannot run nft: {e} (install nftables, or use Redirect::Conntrack)"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| fail(format!("writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("waiting for nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(format!(
            "nft refused the rules ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Installs the redirect of `127.0.0.11:53` to `ports` in a sandbox's namespace.
pub(crate) fn install(
    mode: &Redirect,
    netns: &Netns,
    sandbox: &str,
    ports: ServerPorts,
) -> Result<()> {
    match mode {
        Redirect::None => Ok(()),
        Redirect::Stateless => run_nft(netns, sandbox, &stateless_script(ports)),
        Redirect::Conntrack(fw) => {
            let redirect =
                DnsRedirect::new(ports.udp, ports.tcp).map_err(|source| Error::Redirect {
                    sandbox: sandbox.to_owned(),
                    source: Box::new(source),
                })?;
            apply_dns_redirect(netns, fw, &redirect).map_err(|source| Error::Redirect {
                sandbox: sandbox.to_owned(),
                source: Box::new(source),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_rewrites_both_directions_without_conntrack() {
        let s = stateless_script(ServerPorts {
            udp: 41000,
            tcp: 42000,
        });
        assert!(s.starts_with("add table ip berth-resolver\ndelete table ip berth-resolver\n"));
        assert!(s.contains("priority raw"));
        assert!(s.contains("ip daddr 127.0.0.11 udp dport 53 notrack udp dport set 41000\n"));
        assert!(s.contains("ip daddr 127.0.0.11 tcp dport 53 notrack tcp dport set 42000\n"));
        assert!(s.contains("ip saddr 127.0.0.11 udp sport 41000 notrack udp sport set 53\n"));
        assert!(s.contains("ip saddr 127.0.0.11 tcp sport 42000 notrack tcp sport set 53\n"));
        assert_eq!(s.lines().filter(|l| l.contains("notrack")).count(), 4);
    }
}

//! How queries to `127.0.0.11:53` reach the server's real ports inside a sandbox.
//!
//! Like Docker, berth's server listens on random ports of 127.0.0.11, so port 53 stays free for a
//! DNS server of the sandbox's own (on any address, the wildcard included). Docker then DNATs port
//! 53 with conntrack; berth by default rewrites the ports statelessly instead: an nftables chain at
//! the `raw` priority of the output hook changes the destination port of queries and the source
//! port of answers, and marks both `notrack`. No conntrack entry is made per query, so a busy
//! resolver cannot fill the conntrack table and parallel A/AAAA queries from one socket cannot
//! race on conntrack insertion (the cause of the well-known 5-second DNS delays with DNAT), and
//! each packet costs less. The table is installed in-process, as one nf_tables netlink
//! transaction (no `nft` process; [`stateless_script`] is its textual equivalent).
//! [`Redirect::Conntrack`] keeps Docker's DNAT (berth-firewall's `dns` module, iptables or
//! nftables).

use berth_firewall::FirewallConfig;
use berth_firewall::dns::{DnsRedirect, apply_dns_redirect};
use berth_netlink::Netns;
use berth_netlink::nftables::{
    BaseChain, Batch, ChainType, Checksum, CmpOp, Data, Expr, Family, Hook, MetaKey, NftHandle,
    PayloadBase, Policy, Register, priority,
};

use crate::error::{Error, Result};
use crate::files::EMBEDDED_DNS_ADDRESS;
use crate::server::ServerPorts;

/// The nftables table of the stateless redirect, inside each sandbox's namespace.
pub const STATELESS_TABLE: &str = "ip berth-resolver";
/// The family and name of [`STATELESS_TABLE`].
const TABLE_FAMILY: Family = Family::Ip;
const TABLE_NAME: &str = "berth-resolver";
const CHAIN: &str = "output";
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// Offsets of the checksum in the UDP and TCP headers (what `nft` fixes up after `dport set`).
const UDP_CSUM_OFFSET: u32 = 6;
const TCP_CSUM_OFFSET: u32 = 16;
/// Offsets of the source and destination addresses in the IPv4 header, and of the source and
/// destination ports in the UDP/TCP header.
const IPV4_SADDR: u32 = 12;
const IPV4_DADDR: u32 = 16;
const L4_SPORT: u32 = 0;
const L4_DPORT: u32 = 2;

/// How `127.0.0.11:53` is redirected to the server's ports in each sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Redirect {
    /// Stateless port rewriting with nftables, no conntrack (the default; needs nf_tables in the
    /// kernel, not the `nft` tool).
    Stateless,
    /// Docker's conntrack DNAT/SNAT through berth-firewall, with its backend.
    Conntrack(FirewallConfig),
    /// Nothing: the caller redirects (see [`ServerPorts`]).
    None,
}

/// The `nft -f` script equivalent to the stateless redirect that berth installs over netlink
/// ([`Redirect::Stateless`]): it replaces table `ip berth-resolver` at once. berth itself does not
/// run it; it documents the rules (and `nft list table ip berth-resolver` shows exactly these).
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

/// One rule: `ip ADDR_FIELD 127.0.0.11 L4 PORT_FIELD MATCH notrack L4 PORT_FIELD set TO`, as
/// the expressions `nft` compiles it to (same registers and checksum fix-up).
fn port_rewrite_rule(
    addr_offset: u32,
    l4proto: u8,
    port_offset: u32,
    from: u16,
    to: u16,
) -> Vec<Expr> {
    let csum = if l4proto == IPPROTO_TCP {
        TCP_CSUM_OFFSET
    } else {
        UDP_CSUM_OFFSET
    };
    vec![
        Expr::PayloadLoad {
            base: PayloadBase::Network,
            offset: addr_offset,
            len: 4,
            dreg: Register::R1,
        },
        Expr::Cmp {
            op: CmpOp::Eq,
            sreg: Register::R1,
            data: EMBEDDED_DNS_ADDRESS.octets().to_vec(),
        },
        Expr::Meta {
            key: MetaKey::L4Proto,
            dreg: Register::R1,
        },
        Expr::Cmp {
            op: CmpOp::Eq,
            sreg: Register::R1,
            data: vec![l4proto],
        },
        Expr::PayloadLoad {
            base: PayloadBase::Transport,
            offset: port_offset,
            len: 2,
            dreg: Register::R1,
        },
        Expr::Cmp {
            op: CmpOp::Eq,
            sreg: Register::R1,
            data: from.to_be_bytes().to_vec(),
        },
        Expr::Notrack,
        Expr::Immediate {
            dreg: Register::R1,
            data: Data::Value(to.to_be_bytes().to_vec()),
        },
        Expr::PayloadWrite {
            sreg: Register::R1,
            base: PayloadBase::Transport,
            offset: port_offset,
            len: 2,
            checksum: Some(Checksum::inet(csum)),
        },
    ]
}

/// The nf_tables transaction of the stateless redirect: exactly [`stateless_script`].
fn stateless_batch(ports: ServerPorts) -> Batch {
    let mut b = Batch::new();
    b.replace_table(TABLE_FAMILY, TABLE_NAME).add_base_chain(
        TABLE_FAMILY,
        TABLE_NAME,
        CHAIN,
        &BaseChain::new(
            ChainType::Filter,
            Hook::Output,
            priority::RAW,
            Policy::Accept,
        ),
    );
    let rules = [
        (IPV4_DADDR, IPPROTO_UDP, L4_DPORT, 53, ports.udp),
        (IPV4_DADDR, IPPROTO_TCP, L4_DPORT, 53, ports.tcp),
        (IPV4_SADDR, IPPROTO_UDP, L4_SPORT, ports.udp, 53),
        (IPV4_SADDR, IPPROTO_TCP, L4_SPORT, ports.tcp, 53),
    ];
    for (addr, l4, port, from, to) in rules {
        b.add_rule(
            TABLE_FAMILY,
            TABLE_NAME,
            CHAIN,
            &port_rewrite_rule(addr, l4, port, from, to),
        );
    }
    b
}

/// Installs the stateless redirect in `netns` with one netlink transaction; returns the socket
/// it used (see [`install_held`]).
fn install_stateless(netns: &Netns, sandbox: &str, ports: ServerPorts) -> Result<NftHandle> {
    let fail = |e: berth_netlink::Error| Error::RedirectTool {
        sandbox: sandbox.to_owned(),
        message: format!(
            "{e} (is nf_tables available in the kernel? Redirect::Conntrack with the iptables backend does without it)"
        ),
    };
    let nft = NftHandle::open(netns).map_err(fail)?;
    nft.commit(&stateless_batch(ports)).map_err(fail)?;
    Ok(nft)
}

/// Installs the redirect of `127.0.0.11:53` to `ports` in a sandbox's namespace (the
/// [`crate::Resolver`] does this when it starts a sandbox's server; exported as
/// `install_redirect` for engines that run their own server on [`ServerPorts`]).
pub fn install(mode: &Redirect, netns: &Netns, sandbox: &str, ports: ServerPorts) -> Result<()> {
    install_held(mode, netns, sandbox, ports).map(drop)
}

/// Removes the stateless redirect [`install_held`] installed, with its socket: a namespace the
/// sandbox adopted is left as it came (an owned one is deleted anyway). A redirect already gone
/// is no error.
pub(crate) fn uninstall_stateless(nft: &NftHandle) -> Result<()> {
    let mut b = Batch::new();
    b.delete_table(TABLE_FAMILY, TABLE_NAME);
    match nft.commit(&b) {
        Ok(()) => Ok(()),
        Err(e) if e.is_gone() => Ok(()),
        Err(e) => Err(Error::RedirectTool {
            sandbox: String::new(),
            message: format!("removing the embedded DNS redirect: {e}"),
        }),
    }
}

/// [`install`], returning the nf_tables socket of a stateless redirect for the caller to keep
/// as long as the sandbox's server runs. Closing a socket that committed makes the kernel wait
/// out an RCU grace period (about 10 ms) holding the namespace's nf_tables lock, which a veth
/// created in the namespace meanwhile waits for: the sandbox's next connect would pay it.
pub(crate) fn install_held(
    mode: &Redirect,
    netns: &Netns,
    sandbox: &str,
    ports: ServerPorts,
) -> Result<Option<NftHandle>> {
    match mode {
        Redirect::None => Ok(None),
        Redirect::Stateless => install_stateless(netns, sandbox, ports).map(Some),
        Redirect::Conntrack(fw) => {
            let redirect =
                DnsRedirect::new(ports.udp, ports.tcp).map_err(|source| Error::Redirect {
                    sandbox: sandbox.to_owned(),
                    source: Box::new(source),
                })?;
            apply_dns_redirect(netns, fw, &redirect)
                .map(|()| None)
                .map_err(|source| Error::Redirect {
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

    /// The netlink batch is the script, message for message: a replace of the table, the base
    /// chain, and the four rules.
    #[test]
    fn batch_has_the_scripts_operations() {
        let b = stateless_batch(ServerPorts {
            udp: 41000,
            tcp: 42000,
        });
        assert_eq!(b.len(), 3 + 1 + 4);
    }

    /// Runs `nft -f -` with `script` inside `host`.
    fn nft_script(host: &berth_testhost::TestHost, script: &str) {
        if let Err(e) = host.run_with_input("nft", &["-f", "-"], script) {
            panic!("nft: {e}");
        }
    }

    fn listing(ns: &Netns) -> String {
        let out = ns
            .command("nft")
            .args(["list", "table", "ip", "berth-resolver"])
            .output()
            .expect("running nft list");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn host() -> berth_testhost::TestHost {
        berth_testhost::TestHost::new().expect("a test namespace (run the kernel tests as root)")
    }

    /// Kernel test (root): after the netlink install, `nft list table ip berth-resolver` prints
    /// exactly what it prints after `nft -f` of [`stateless_script`], on a first install and on
    /// a re-install with other ports (which replaces the table).
    #[test]
    fn netlink_install_lists_exactly_like_the_script() {
        let by_netlink = host();
        let by_nft = host();
        for ports in [
            ServerPorts {
                udp: 41000,
                tcp: 42000,
            },
            ServerPorts {
                udp: 35353,
                tcp: 36363,
            },
        ] {
            install(&Redirect::Stateless, by_netlink.netns(), "sb", ports).unwrap();
            nft_script(&by_nft, &stateless_script(ports));
            let got = listing(by_netlink.netns());
            assert_eq!(got, listing(by_nft.netns()));
            assert!(
                got.contains(&format!(
                    "ip saddr 127.0.0.11 tcp sport {} notrack tcp sport set 53",
                    ports.tcp
                )),
                "{got}"
            );
            assert_eq!(got.matches("notrack").count(), 4, "{got}");
        }
    }
}

//! Container-side rules for the embedded DNS server: queries to 127.0.0.11:53 (UDP and TCP) are
//! DNATed to the ports the resolver really listens on, and its answers leave from port 53.
//! Applied inside a sandbox's namespace.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use berth_netlink::Netns;
use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::exec;
use crate::iptables::{self, IptBatch};
use crate::model::{Family, PortRange, Protocol, Rule, Table, Target};
use crate::spec::{Backend, FirewallConfig};

/// The address of the embedded DNS server inside every sandbox.
pub const DNS_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// iptables chain for the DNAT of queries (nat OUTPUT jumps to it).
pub const DNS_OUTPUT: &str = "BERTH-DNS-OUTPUT";
/// iptables chain for the SNAT of answers (nat POSTROUTING jumps to it).
pub const DNS_POSTROUTING: &str = "BERTH-DNS-POSTROUTING";
/// The nftables table of the sandbox rules.
pub const DNS_TABLE: &str = "ip berth-dns";

/// Where the embedded resolver listens inside a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsRedirect {
    /// The resolver address (127.0.0.11).
    pub address: Ipv4Addr,
    /// The UDP port the resolver really listens on.
    pub udp_port: PortRange,
    /// The TCP port the resolver really listens on.
    pub tcp_port: PortRange,
}

impl DnsRedirect {
    /// A redirect of 127.0.0.11:53 to `udp_port` and `tcp_port` (neither may be 0).
    pub fn new(udp_port: u16, tcp_port: u16) -> Result<DnsRedirect> {
        Ok(DnsRedirect {
            address: DNS_ADDRESS,
            udp_port: PortRange::single(udp_port)?,
            tcp_port: PortRange::single(tcp_port)?,
        })
    }

    fn addr(&self) -> IpNet {
        IpNet::from(IpAddr::V4(self.address))
    }

    /// The rules: DNAT of queries, SNAT of answers back to port 53, TCP first as in Docker.
    pub fn rules(&self, output_chain: &str, postrouting_chain: &str) -> Vec<Rule> {
        let p53 = PortRange::DNS;
        let mut r = Vec::new();
        for (proto, port) in [
            (Protocol::Tcp, self.tcp_port),
            (Protocol::Udp, self.udp_port),
        ] {
            r.push(
                Rule::new(
                    Table::Nat,
                    output_chain,
                    Target::Dnat {
                        to: IpAddr::V4(self.address),
                        ports: Some(port),
                        base: None,
                    },
                )
                .dst(self.addr())
                .proto_dport(proto, p53),
            );
        }
        for (proto, port) in [
            (Protocol::Tcp, self.tcp_port),
            (Protocol::Udp, self.udp_port),
        ] {
            r.push(
                Rule::new(
                    Table::Nat,
                    postrouting_chain,
                    Target::Snat {
                        to: None,
                        ports: Some(p53),
                    },
                )
                .src(self.addr())
                .proto_sport(proto, port),
            );
        }
        r
    }

    /// The nftables transaction: replaces table `ip berth-dns` atomically.
    pub fn nft_script(&self) -> String {
        let mut s =
            format!("add table {DNS_TABLE}\ndelete table {DNS_TABLE}\nadd table {DNS_TABLE}\n");
        s.push_str(&format!(
            "add chain {DNS_TABLE} output {{ type nat hook output priority -100; policy accept; }}\n"
        ));
        s.push_str(&format!(
            "add chain {DNS_TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n"
        ));
        for r in self.rules("output", "postrouting") {
            s.push_str(&format!("add rule {DNS_TABLE} {} {}\n", r.chain, r.nft()));
        }
        s
    }

    fn iptables_layout(&self) -> iptables::Layout {
        let mut chains: BTreeMap<String, Vec<String>> = BTreeMap::new();
        chains.insert(DNS_OUTPUT.into(), Vec::new());
        chains.insert(DNS_POSTROUTING.into(), Vec::new());
        for r in self.rules(DNS_OUTPUT, DNS_POSTROUTING) {
            chains
                .entry(r.chain.clone())
                .or_default()
                .push(r.iptables_spec());
        }
        let jump = |chain: &'static str, to: &str| {
            (
                chain,
                Rule::new(Table::Nat, chain, Target::Jump(to.into()))
                    .dst(self.addr())
                    .iptables_spec(),
            )
        };
        iptables::dns_layout(
            chains.into_iter().collect(),
            vec![
                jump("OUTPUT", DNS_OUTPUT),
                jump("POSTROUTING", DNS_POSTROUTING),
            ],
        )
    }

    /// The iptables batch that brings a sandbox's nat table (as `iptables-save -t nat` shows it)
    /// to these rules. Empty if they are in place.
    pub fn iptables_batch(&self, current: &iptables::Dump) -> IptBatch {
        let (sections, _) = iptables::converge(&self.iptables_layout(), Family::V4, current);
        IptBatch {
            family: Family::V4,
            sections,
        }
    }
}

/// Installs (or updates) the DNS redirect in a sandbox's namespace with `config`'s backend.
///
/// iptables: reads the sandbox's nat table once, then one `iptables-restore` that (re)writes
/// chains BERTH-DNS-OUTPUT / BERTH-DNS-POSTROUTING and adds the jumps if missing. nftables: one
/// `nft -f` that replaces table `ip berth-dns`.
pub fn apply_dns_redirect(
    netns: &Netns,
    config: &FirewallConfig,
    redirect: &DnsRedirect,
) -> Result<()> {
    if redirect.address.is_unspecified() {
        return Err(Error::AddressMismatch {
            object: "DNS redirect".into(),
            reason: "the resolver address cannot be 0.0.0.0".into(),
        });
    }
    match config.backend {
        Backend::Nftables => {
            exec::apply_nft(netns, config.tools_dir.as_deref(), &redirect.nft_script())
        }
        Backend::Iptables => {
            let dir = config.tools_dir.as_deref();
            exec::iptables_version(netns, dir, config.iptables_variant, &[Family::V4])?;
            let current = exec::save(netns, dir, config.iptables_variant, Family::V4, Some("nat"))?;
            let batch = redirect.iptables_batch(&current);
            let tools = exec::Tools {
                backend: Backend::Iptables,
                variant: config.iptables_variant,
                dir: config.tools_dir.clone(),
                fast: exec::FastPath::off(),
                legacy: false,
            };
            exec::apply(
                netns,
                &tools,
                &crate::plan::Transaction::Iptables(vec![batch]),
            )
        }
    }
}

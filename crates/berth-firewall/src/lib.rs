//! berth's firewall: the packet filtering and NAT behind bridge networks and published ports,
//! in the behaviour of Docker's libnetwork, programmed as O(change) transactions.
//!
//! - A typed rule model ([`model`]) renders to `iptables-restore` lines or nftables statements.
//! - The **iptables** backend ([`iptables`]) keeps berth's rules in `BERTH-*` chains, jumps to
//!   the user's `DOCKER-USER` chain first from FORWARD, and sends one
//!   `iptables-restore --noflush --wait` batch per address family per change.
//! - The **nftables** backend ([`nftables`]) keeps everything in table `inet berth`; networks,
//!   ports and links are set and map elements, so a change adds and deletes elements in one
//!   nf_tables netlink transaction from the process (berth-netlink's `nftables` module; no `nft`
//!   process); the layout itself and reconcile go through `nft -f`. Its `user_forward` chain is the counterpart of DOCKER-USER: jumped to
//!   first from berth's forward chain and never flushed; add rules with e.g.
//!   `nft add rule inet berth user_forward ip saddr 192.0.2.9 drop` (`accept` there ends berth's
//!   evaluation for the packet, `drop` is final, `return` goes on with berth's rules).
//! - Planning is pure ([`Planner`]): unit-tested, fuzzed and benchmarked without root. Applying
//!   ([`Firewall`]) runs the tools inside a given [`berth_netlink::Netns`].
//! - [`Firewall::reconcile`] finds drift (an outside flush, a stale rule) and fixes it in one
//!   transaction; a refused transaction changes nothing.
//! - [`dns::apply_dns_redirect`] installs the sandbox-side rules of the embedded DNS server.
//!
//! # Behaviour
//!
//! Per network: forwarding out of the bridge and replies back in; isolation from every other
//! berth bridge; icc on or off; internal networks (nothing leaves or enters the bridge);
//! masquerade or SNAT to `host_ipv4`/`host_ipv6` of outbound traffic. Per published port: DNAT
//! (host address optional, single ports and ranges of tcp/udp/sctp, a range of equal lengths is
//! one rule or one element), the accept of the DNATed flow (one rule or element per network:
//! whatever a DNAT sent into the bridge, from a published port or from the admin's own DNAT rule,
//! is let in; this keeps the filter table O(networks) instead of one accept per port, as Docker
//! has), hairpin (a container reaching a
//! published port through the host, masqueraded so answers come back the same way) and
//! `127.0.0.1:PORT` on the host (nat OUTPUT DNAT plus the masquerade of loopback sources).
//!
//! **The caller's jobs:** enable `net.ipv4.ip_forward` (and tell berth via
//! [`FirewallConfig::forward_policy_drop`] if it did, so the FORWARD policy becomes DROP as with
//! Docker); set `net.ipv4.conf.<bridge>.route_localnet=1` on each bridge for `127.0.0.1:PORT` to
//! reach containers (a loopback source may otherwise not be routed out of the bridge); turn
//! `hairpin_mode` on for the bridge port of each container that publishes ports (with
//! `br_netfilter`, a container reaching its own published port is DNATed at the bridge layer and
//! must leave through the port it came in, which a bridge only does in hairpin mode; berth's
//! bridge driver does this when it publishes an endpoint's ports). Over IPv6,
//! `[::1]:PORT` cannot be DNATed to a container (the kernel never routes `::1`); use a proxy.
//!
//! **Loopback stays local.** `route_localnet=1` on a bridge also lets a container send packets
//! to `127.0.0.1` through its gateway and reach the host's loopback-only services, and berth's
//! DNAT of a port published on `127.0.0.1` (`-p 127.0.0.1:8080:80`) would rewrite such a packet
//! from the LAN before the kernel's martian check could drop it. One static rule in the base
//! ruleset drops, before conntrack and NAT, every IPv4 packet addressed to 127.0.0.0/8 that did
//! not come in on `lo` (iptables: `raw PREROUTING -j BERTH-RAW`, first; nftables: chain
//! `prerouting_raw` at the raw priority), whatever `route_localnet` says on any interface. It
//! replaces Docker 28's per-port raw rules (`-d 127.0.0.1/32 ! -i lo -p tcp --dport 8080 -j DROP`
//! for each loopback-published port), which leave the host's own loopback services open to
//! containers; it costs nothing per port or network. `127.0.0.1:PORT` from the host itself
//! keeps working (see [`model::loopback_from_outside_drop`]).
//!
//! **Direct routing is blocked.** A packet from outside that is routed straight to a container
//! address (not to a published host port) is dropped when it enters the bridge, whatever port it
//! is for, unless it comes in through one of [`FirewallConfig::trusted_interfaces`]. berth decides
//! this in the filter table with conntrack's DNAT status instead of Docker 28's per-container raw
//! rules (which need every container address; the firewall only knows networks and ports): a
//! flow enters a bridge from outside only if a DNAT sent it there. That includes
//! *published* container ports: a direct-routed packet to the container's port 80 is dropped even
//! when host port 8080 maps to it, because a port published on one host address (say
//! `127.0.0.1:8080`) must not become reachable from the LAN through another path, and because
//! the published address is the contract the user wrote.
//!
//! # Example
//!
//! ```no_run
//! use berth_firewall::{Backend, Firewall, FirewallConfig, NetworkRules, PortRule, Protocol, PortRange};
//! use berth_netlink::Netns;
//!
//! # fn main() -> Result<(), berth_firewall::Error> {
//! let host = Netns::open_named("my-host")?;
//! let fw = Firewall::new(&host, FirewallConfig::new(Backend::Nftables))?;
//! fw.add_network(NetworkRules::new("br-0123", Some("172.18.0.0/16".parse().unwrap()), None))?;
//! fw.add_ports(&[PortRule {
//!     proto: Protocol::Tcp,
//!     host_ip: None,
//!     host_ports: PortRange::new(9000, 9999)?,
//!     container_ip: "172.18.0.3".parse().unwrap(),
//!     container_ports: PortRange::new(9000, 9999)?,
//!     bridge: "br-0123".into(),
//! }])?;
//! let drift = fw.check_drift()?;
//! assert!(drift.is_clean());
//! # Ok(()) }
//! ```

mod claim;
mod error;
mod exec;
mod firewall;
mod heal;
mod plan;
mod report;
mod spec;
mod teardown;
mod xtnl;

pub mod dns;
pub mod iptables;
pub mod model;
pub mod nftables;
pub mod sim;

pub use claim::{CLAIM_SOCKET, ClaimHolder, NamespaceClaim};
pub use error::{Error, Result};
pub use exec::ToolsVerdict;
pub use firewall::Firewall;
pub use heal::{HealMode, HealOptions, HealStats, Healer, Repair};
pub use model::{Family, FamilyExt, PortRange, PortRangeExt, Protocol};
pub use plan::{Observed, Planner, Transaction};
pub use report::DriftReport;
pub use spec::{
    Backend, DesiredState, FirewallConfig, IptablesVariant, LinkPort, LinkRule, NetworkRules,
    PortMapping, PortRule,
};

#[cfg(test)]
mod tests {
    #[test]
    fn firewall_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<crate::Firewall>();
        check::<crate::Planner>();
    }
}

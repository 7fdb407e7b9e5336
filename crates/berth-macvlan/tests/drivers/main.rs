//! The macvlan and ipvlan drivers under berth's controller, as root in throwaway namespaces,
//! proven with real traffic (ICMP, TCP, UDP, DNS) between sandboxes and LAN peers. The test
//! host's "physical" interfaces are veth pairs to LAN peers (other namespaces).
//!
//! Where this machine's kernel lacks a feature (802.1q VLANs, ipvlan), the test checks berth's
//! typed refusal and that nothing is left instead, and prints which path ran (`PATH: ...`,
//! visible with `--nocapture`).

#![allow(clippy::unwrap_used)]

mod common;
mod ipvlan;
mod modes;
mod parents;
mod restart;

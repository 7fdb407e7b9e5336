//! The sets and maps of berth's table, each declared once: its name, its typed [`SetType`] and
//! whether it holds intervals. The `add set`/`add map` commands and the comparison with a
//! listed set's declaration are derived from this.

use super::TABLE;
use super::element::{Field, SetType};
use crate::model::Family;

/// One of the sets and maps of berth's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Set {
    /// `bridges`: every berth bridge.
    Bridges,
    /// `internal`: the bridges of internal networks.
    Internal,
    /// `same`: `bridge . bridge`, traffic that stays within one network.
    Same,
    /// `icc`: `bridge . bridge : accept|drop`, inter-container communication.
    Icc,
    /// `trusted`: interfaces whose traffic may enter a bridge directly.
    Trusted,
    /// `links4`/`links6`: `parent . child . protocol . port` of legacy links.
    Links(Family),
    /// `dnat4`/`dnat6`: one host port on one host address to a container address and port.
    Dnat(Family),
    /// `dnat4_all`/`dnat6_all`: one host port on every host address.
    DnatAll(Family),
    /// `dnat4_range`/`dnat6_range`: a host port range on one host address to one container port.
    DnatRange(Family),
    /// `dnat4_range_keep`/`dnat6_range_keep`: a host port range on one host address, ports kept.
    DnatRangeKeep(Family),
    /// `dnat4_all_range`/`dnat6_all_range`: a host port range on every host address to one
    /// container port.
    DnatAllRange(Family),
    /// `dnat4_all_range_keep`/`dnat6_all_range_keep`: a host port range on every host address,
    /// ports kept.
    DnatAllRangeKeep(Family),
    /// `hairpin4`/`hairpin6`: `subnet . bridge`, masqueraded when DNATed back into the bridge.
    Hairpin(Family),
    /// `masq4`/`masq6`: subnets whose outbound traffic is masqueraded.
    Masq(Family),
    /// `snat4`/`snat6`: `subnet : host address` for outbound SNAT.
    Snat(Family),
}

impl Set {
    /// Every set and map of the layout, in the order they are declared.
    pub const ALL: [Set; 25] = {
        use Family::{V4, V6};
        [
            Set::Bridges,
            Set::Internal,
            Set::Same,
            Set::Icc,
            Set::Trusted,
            Set::Links(V4),
            Set::Dnat(V4),
            Set::DnatAll(V4),
            Set::DnatRange(V4),
            Set::DnatRangeKeep(V4),
            Set::DnatAllRange(V4),
            Set::DnatAllRangeKeep(V4),
            Set::Hairpin(V4),
            Set::Masq(V4),
            Set::Snat(V4),
            Set::Links(V6),
            Set::Dnat(V6),
            Set::DnatAll(V6),
            Set::DnatRange(V6),
            Set::DnatRangeKeep(V6),
            Set::DnatAllRange(V6),
            Set::DnatAllRangeKeep(V6),
            Set::Hairpin(V6),
            Set::Masq(V6),
            Set::Snat(V6),
        ]
    };

    /// The set's name in the table.
    pub fn name(self) -> &'static str {
        use Family::{V4, V6};
        match self {
            Set::Bridges => "bridges",
            Set::Internal => "internal",
            Set::Same => "same",
            Set::Icc => "icc",
            Set::Trusted => "trusted",
            Set::Links(V4) => "links4",
            Set::Links(V6) => "links6",
            Set::Dnat(V4) => "dnat4",
            Set::Dnat(V6) => "dnat6",
            Set::DnatAll(V4) => "dnat4_all",
            Set::DnatAll(V6) => "dnat6_all",
            Set::DnatRange(V4) => "dnat4_range",
            Set::DnatRange(V6) => "dnat6_range",
            Set::DnatRangeKeep(V4) => "dnat4_range_keep",
            Set::DnatRangeKeep(V6) => "dnat6_range_keep",
            Set::DnatAllRange(V4) => "dnat4_all_range",
            Set::DnatAllRange(V6) => "dnat6_all_range",
            Set::DnatAllRangeKeep(V4) => "dnat4_all_range_keep",
            Set::DnatAllRangeKeep(V6) => "dnat6_all_range_keep",
            Set::Hairpin(V4) => "hairpin4",
            Set::Hairpin(V6) => "hairpin6",
            Set::Masq(V4) => "masq4",
            Set::Masq(V6) => "masq6",
            Set::Snat(V4) => "snat4",
            Set::Snat(V6) => "snat6",
        }
    }

    /// The set of the layout named `name`.
    pub fn named(name: &str) -> Option<Set> {
        Set::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The set's type.
    pub fn ty(self) -> SetType {
        use Field::{Ifname, InetProto as Proto, InetService as Service, Verdict};
        match self {
            Set::Bridges | Set::Internal | Set::Trusted => SetType::set(&[Ifname]),
            Set::Same => SetType::set(&[Ifname, Ifname]),
            Set::Icc => SetType::map(&[Ifname, Ifname], &[Verdict]),
            Set::Links(f) => {
                let a = Field::addr(f);
                SetType::set(&[a, a, Proto, Service])
            }
            // Single host ports (the common case) live in hash maps; only ranges need interval
            // maps, whose updates cost in proportion to their size.
            Set::Dnat(f) | Set::DnatRange(f) => {
                let a = Field::addr(f);
                SetType::map(&[a, Proto, Service], &[a, Service])
            }
            Set::DnatAll(f) | Set::DnatAllRange(f) => {
                SetType::map(&[Proto, Service], &[Field::addr(f), Service])
            }
            Set::DnatRangeKeep(f) => {
                let a = Field::addr(f);
                SetType::map(&[a, Proto, Service], &[a])
            }
            Set::DnatAllRangeKeep(f) => SetType::map(&[Proto, Service], &[Field::addr(f)]),
            Set::Hairpin(f) => SetType::set(&[Field::addr(f), Ifname]),
            Set::Masq(f) => SetType::set(&[Field::addr(f)]),
            Set::Snat(f) => SetType::map(&[Field::addr(f)], &[Field::addr(f)]),
        }
    }

    /// True for a set with `flags interval` (prefixes and port ranges).
    pub fn interval(self) -> bool {
        matches!(
            self,
            Set::DnatRange(_)
                | Set::DnatRangeKeep(_)
                | Set::DnatAllRange(_)
                | Set::DnatAllRangeKeep(_)
                | Set::Hairpin(_)
                | Set::Masq(_)
                | Set::Snat(_)
        )
    }

    /// The `flags` of the declaration, as `nft list` prints them.
    pub fn flags(self) -> Option<&'static str> {
        self.interval().then_some("interval")
    }

    /// `set` or `map`.
    pub fn kind(self) -> &'static str {
        if self.ty().is_map() { "map" } else { "set" }
    }

    /// The command that declares the set.
    pub fn add_command(self) -> String {
        let (kind, name, ty) = (self.kind(), self.name(), self.ty());
        match self.flags() {
            Some(f) => format!("add {kind} {TABLE} {name} {{ type {ty}; flags {f}; }}"),
            None => format!("add {kind} {TABLE} {name} {{ type {ty}; }}"),
        }
    }
}

//! A [`Rule`]'s builder (matches added one by one), its validation, and its rendering to
//! `iptables-save` and `nft` rule text.

use super::*;

impl Rule {
    /// A rule that matches everything in `table`/`chain` and applies `target`.
    pub fn new(table: Table, chain: &str, target: Target) -> Rule {
        Rule {
            table,
            chain: chain.to_owned(),
            source: None,
            destination: None,
            in_interface: None,
            out_interface: None,
            protocol: None,
            src_type: None,
            dst_type: None,
            ct_state: Vec::new(),
            mark: None,
            target,
        }
    }

    /// Matches source prefix `net` (a host address is a /32 or /128).
    pub fn src(mut self, net: impl Into<IpNet>) -> Rule {
        self.source = Some(Cond::is(into_trunc(net)));
        self
    }

    /// Matches any source outside `net`.
    pub fn not_src(mut self, net: impl Into<IpNet>) -> Rule {
        self.source = Some(Cond::not(into_trunc(net)));
        self
    }

    /// Matches destination prefix `net`.
    pub fn dst(mut self, net: impl Into<IpNet>) -> Rule {
        self.destination = Some(Cond::is(into_trunc(net)));
        self
    }

    /// Matches any destination outside `net`.
    pub fn not_dst(mut self, net: impl Into<IpNet>) -> Rule {
        self.destination = Some(Cond::not(into_trunc(net)));
        self
    }

    /// Matches input interface `name`.
    pub fn in_if(mut self, name: &str) -> Rule {
        self.in_interface = Some(Cond::is(name.to_owned()));
        self
    }

    /// Matches any input interface but `name`.
    pub fn not_in_if(mut self, name: &str) -> Rule {
        self.in_interface = Some(Cond::not(name.to_owned()));
        self
    }

    /// Matches output interface `name`.
    pub fn out_if(mut self, name: &str) -> Rule {
        self.out_interface = Some(Cond::is(name.to_owned()));
        self
    }

    /// Matches any output interface but `name`.
    pub fn not_out_if(mut self, name: &str) -> Rule {
        self.out_interface = Some(Cond::not(name.to_owned()));
        self
    }

    /// Matches a protocol.
    pub fn proto(mut self, proto: Protocol) -> Rule {
        self.protocol = Some(ProtocolMatch {
            proto,
            sport: None,
            dport: None,
        });
        self
    }

    /// Matches a protocol and destination ports.
    pub fn proto_dport(mut self, proto: Protocol, dport: PortRange) -> Rule {
        self.protocol = Some(ProtocolMatch {
            proto,
            sport: None,
            dport: Some(dport),
        });
        self
    }

    /// Matches a protocol and source ports.
    pub fn proto_sport(mut self, proto: Protocol, sport: PortRange) -> Rule {
        self.protocol = Some(ProtocolMatch {
            proto,
            sport: Some(sport),
            dport: None,
        });
        self
    }

    /// Matches the destination address type.
    pub fn dst_type(mut self, t: AddrType) -> Rule {
        self.dst_type = Some(Cond::is(t));
        self
    }

    /// Matches the source address type.
    pub fn src_type(mut self, t: AddrType) -> Rule {
        self.src_type = Some(Cond::is(t));
        self
    }

    /// Matches any of the conntrack states.
    pub fn ct(mut self, states: &[CtState]) -> Rule {
        self.ct_state = states.to_vec();
        self
    }

    /// Matches `mark & mask == value`.
    pub fn mark(mut self, value: u32, mask: u32) -> Rule {
        self.mark = Some(MarkMatch { value, mask });
        self
    }

    /// Checks what the types cannot: the prefixes and NAT addresses have one family, interface
    /// names are valid, a mark value lies within its mask. Returns the rule's family, if any
    /// address fixes it.
    pub fn validate(&self) -> Result<Option<Family>> {
        let object = || format!("rule in {} {}", self.table.name(), self.chain);
        let mut family: Option<Family> = None;
        let mut see = |f: Family, what: &str| -> Result<()> {
            match family {
                Some(prev) if prev != f => Err(Error::AddressMismatch {
                    object: object(),
                    reason: format!(
                        "{what} is {} but the rule already has {} addresses; one rule holds one family",
                        f.label(),
                        prev.label()
                    ),
                }),
                _ => {
                    family = Some(f);
                    Ok(())
                }
            }
        };
        if let Some(s) = &self.source {
            see(Family::of(s.value.addr()), "the source prefix")?;
        }
        if let Some(d) = &self.destination {
            see(Family::of(d.value.addr()), "the destination prefix")?;
        }
        match &self.target {
            Target::Dnat { to, .. } => see(Family::of(*to), "the DNAT address")?,
            Target::Snat { to: Some(to), .. } => see(Family::of(*to), "the SNAT address")?,
            Target::SetMark { value, mask } if value & !mask != 0 => {
                return Err(Error::InvalidRule {
                    object: object(),
                    reason: format!("mark value {value:#x} has bits outside mask {mask:#x}"),
                });
            }
            Target::Jump(chain) if chain.is_empty() || chain.len() > 28 => {
                return Err(Error::InvalidRule {
                    object: object(),
                    reason: format!("chain name {chain:?} must be 1 to 28 characters"),
                });
            }
            _ => {}
        }
        for (c, what) in [
            (&self.in_interface, "input interface"),
            (&self.out_interface, "output interface"),
        ] {
            if let Some(c) = c {
                validate_interface(&c.value, what)?;
            }
        }
        if let Some(m) = self.mark {
            if m.value & !m.mask != 0 {
                return Err(Error::InvalidRule {
                    object: object(),
                    reason: format!(
                        "mark value {:#x} has bits outside mask {:#x}",
                        m.value, m.mask
                    ),
                });
            }
        }
        Ok(family)
    }

    /// The rule as an `iptables-restore` append line, in `iptables-save`'s canonical form.
    pub fn iptables(&self) -> String {
        format!("-A {} {}", self.chain, self.iptables_spec())
    }

    /// The rule specification without `-A CHAIN` (what follows `-D CHAIN` too).
    pub fn iptables_spec(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        if let Some(c) = &self.source {
            out.push(format!("{}-s {}", c.bang(), c.value));
        }
        if let Some(c) = &self.destination {
            out.push(format!("{}-d {}", c.bang(), c.value));
        }
        if let Some(c) = &self.in_interface {
            out.push(format!("{}-i {}", c.bang(), c.value));
        }
        if let Some(c) = &self.out_interface {
            out.push(format!("{}-o {}", c.bang(), c.value));
        }
        if let Some(p) = &self.protocol {
            out.push(format!("-p {}", p.proto));
            if p.sport.is_some() || p.dport.is_some() {
                let mut m = format!("-m {}", p.proto);
                if let Some(s) = p.sport {
                    m.push_str(&format!(" --sport {}", s.iptables()));
                }
                if let Some(d) = p.dport {
                    m.push_str(&format!(" --dport {}", d.iptables()));
                }
                out.push(m);
            }
        }
        if self.src_type.is_some() || self.dst_type.is_some() {
            let mut m = String::from("-m addrtype");
            if let Some(c) = &self.src_type {
                m.push_str(&format!(" {}--src-type {}", c.bang(), c.value.iptables()));
            }
            if let Some(c) = &self.dst_type {
                m.push_str(&format!(" {}--dst-type {}", c.bang(), c.value.iptables()));
            }
            out.push(m);
        }
        if !self.ct_state.is_empty() {
            let mut states = self.ct_state.clone();
            states.sort();
            states.dedup();
            let names: Vec<&str> = states.iter().map(|s| s.iptables()).collect();
            out.push(format!("-m conntrack --ctstate {}", names.join(",")));
        }
        if let Some(m) = self.mark {
            if m.mask == u32::MAX {
                out.push(format!("-m mark --mark {:#x}", m.value));
            } else {
                out.push(format!("-m mark --mark {:#x}/{:#x}", m.value, m.mask));
            }
        }
        out.push(match &self.target {
            Target::Accept => "-j ACCEPT".into(),
            Target::Drop => "-j DROP".into(),
            Target::Return => "-j RETURN".into(),
            Target::Jump(c) => format!("-j {c}"),
            Target::Dnat { to, ports, base } => {
                let mut s = format!("-j DNAT --to-destination {}", host_port(*to, *ports));
                if let Some(b) = base {
                    s.push_str(&format!("/{b}"));
                }
                s
            }
            Target::Snat { to, ports } => match to {
                Some(a) => format!("-j SNAT --to-source {}", host_port(*a, *ports)),
                None => format!(
                    "-j SNAT --to-source :{}",
                    ports.map(|p| p.to_string()).unwrap_or_default()
                ),
            },
            Target::Masquerade => "-j MASQUERADE".into(),
            Target::SetMark { value, mask } => format!("-j MARK --set-xmark {value:#x}/{mask:#x}"),
        });
        out.join(" ")
    }

    /// The rule as an nftables rule statement (without `add rule TABLE CHAIN`), in the form
    /// `nft list` prints for `ip`/`ip6` tables.
    pub fn nft(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        if let Some(c) = &self.in_interface {
            out.push(format!("iifname {}\"{}\"", c.ne(), c.value));
        }
        if let Some(c) = &self.out_interface {
            out.push(format!("oifname {}\"{}\"", c.ne(), c.value));
        }
        if let Some(c) = &self.source {
            out.push(format!(
                "{} saddr {}{}",
                Family::of(c.value.addr()).nft(),
                c.ne(),
                nft_net(&c.value)
            ));
        }
        if let Some(c) = &self.destination {
            out.push(format!(
                "{} daddr {}{}",
                Family::of(c.value.addr()).nft(),
                c.ne(),
                nft_net(&c.value)
            ));
        }
        if let Some(p) = &self.protocol {
            if p.sport.is_none() && p.dport.is_none() {
                out.push(format!("meta l4proto {}", p.proto));
            }
            if let Some(s) = p.sport {
                out.push(format!("{} sport {s}", p.proto));
            }
            if let Some(d) = p.dport {
                out.push(format!("{} dport {d}", p.proto));
            }
        }
        if let Some(m) = self.mark {
            if m.mask == u32::MAX {
                out.push(format!("meta mark {:#010x}", m.value));
            } else {
                out.push(format!("meta mark & {:#010x} == {:#010x}", m.mask, m.value));
            }
        }
        let mut states: Vec<CtState> = self
            .ct_state
            .iter()
            .copied()
            .filter(|s| !matches!(s, CtState::Snat | CtState::Dnat))
            .collect();
        states.sort_by_key(|s| s.nft_order());
        states.dedup();
        if !states.is_empty() {
            let names: Vec<&str> = states.iter().map(|s| s.nft()).collect();
            out.push(format!("ct state {}", names.join(",")));
        }
        let status: Vec<&str> = [CtState::Snat, CtState::Dnat]
            .into_iter()
            .filter(|s| self.ct_state.contains(s))
            .map(|s| s.nft())
            .collect();
        if !status.is_empty() {
            out.push(format!("ct status {}", status.join(",")));
        }
        if let Some(c) = &self.dst_type {
            out.push(format!("fib daddr type {}{}", c.ne(), c.value.nft()));
        }
        if let Some(c) = &self.src_type {
            out.push(format!("fib saddr type {}{}", c.ne(), c.value.nft()));
        }
        out.push(match &self.target {
            Target::Accept => "accept".into(),
            Target::Drop => "drop".into(),
            Target::Return => "return".into(),
            Target::Jump(c) => format!("jump {c}"),
            Target::Dnat { to, ports, .. } => {
                format!(
                    "dnat {} to {}",
                    Family::of(*to).nft(),
                    nft_host_port(*to, *ports)
                )
            }
            Target::Snat { to, ports } => match to {
                Some(a) => format!(
                    "snat {} to {}",
                    Family::of(*a).nft(),
                    nft_host_port(*a, *ports)
                ),
                None => format!(
                    "snat to :{}",
                    ports.map(|p| p.to_string()).unwrap_or_default()
                ),
            },
            Target::Masquerade => "masquerade".into(),
            Target::SetMark { value, mask } => {
                if *mask == u32::MAX {
                    format!("meta mark set {value:#010x}")
                } else {
                    format!("meta mark set meta mark & {:#010x} | {value:#010x}", !mask)
                }
            }
        });
        out.join(" ")
    }
}

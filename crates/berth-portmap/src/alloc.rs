//! Host port bookkeeping: which (protocol, address, port) triples mappings hold, and automatic
//! ports from the ephemeral range.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use berth_firewall::{PortRange, Protocol};

use crate::error::{Error, Result};

/// Ports held by mappings, per protocol and host address. A mapping on the unspecified address
/// (`0.0.0.0`, `::`) conflicts with every address of its family on the same port.
#[derive(Debug, Clone)]
pub struct HostPortAllocator {
    ephemeral: PortRange,
    reserved: Vec<PortRange>,
    used: BTreeMap<(Protocol, IpAddr), BTreeSet<u16>>,
    cursor: BTreeMap<Protocol, u16>,
}

fn unspecified_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// `1.2.3.4:80` or `[::1]:80`.
pub(crate) fn addr_text(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

impl HostPortAllocator {
    /// Automatic ports come from `ephemeral` (the host's `ip_local_port_range`), skipping
    /// `reserved` (`ip_local_reserved_ports`).
    pub fn new(ephemeral: PortRange, reserved: Vec<PortRange>) -> Self {
        HostPortAllocator {
            ephemeral,
            reserved,
            used: BTreeMap::new(),
            cursor: BTreeMap::new(),
        }
    }

    /// The range automatic ports come from.
    pub fn ephemeral(&self) -> PortRange {
        self.ephemeral
    }

    /// True if `port` on every address of `ips` is free for `proto`.
    pub fn is_free(&self, proto: Protocol, ips: &[IpAddr], port: u16) -> bool {
        ips.iter()
            .all(|ip| self.conflict(proto, *ip, port).is_none())
    }

    fn conflict(&self, proto: Protocol, ip: IpAddr, port: u16) -> Option<IpAddr> {
        let held = |addr: IpAddr| {
            self.used
                .get(&(proto, addr))
                .is_some_and(|s| s.contains(&port))
        };
        if ip.is_unspecified() {
            // Any address of the family holding the port conflicts.
            self.used
                .iter()
                .find(|((p, a), s)| *p == proto && a.is_ipv4() == ip.is_ipv4() && s.contains(&port))
                .map(|((_, a), _)| *a)
        } else if held(ip) {
            Some(ip)
        } else if held(unspecified_of(ip)) {
            Some(unspecified_of(ip))
        } else {
            None
        }
    }

    /// Takes `range` on every address of `ips`, all or nothing.
    pub fn take(&mut self, proto: Protocol, ips: &[IpAddr], range: PortRange) -> Result<()> {
        for port in range.start()..=range.end() {
            for ip in ips {
                if let Some(holder) = self.conflict(proto, *ip, port) {
                    return Err(Error::PortAllocated {
                        addr: addr_text(holder, port),
                    });
                }
            }
        }
        for ip in ips {
            let set = self.used.entry((proto, *ip)).or_default();
            set.extend(range.start()..=range.end());
        }
        Ok(())
    }

    /// Gives `range` on every address of `ips` back.
    pub fn release(&mut self, proto: Protocol, ips: &[IpAddr], range: PortRange) {
        for ip in ips {
            if let Some(set) = self.used.get_mut(&(proto, *ip)) {
                for port in range.start()..=range.end() {
                    set.remove(&port);
                }
                if set.is_empty() {
                    self.used.remove(&(proto, *ip));
                }
            }
        }
    }

    /// The next free port after the protocol's cursor (round robin through the ephemeral range,
    /// skipping reserved ports and `skip`), without taking it.
    pub fn next_free(
        &self,
        proto: Protocol,
        ips: &[IpAddr],
        skip: &dyn Fn(u16) -> bool,
    ) -> Result<u16> {
        let (lo, hi) = (self.ephemeral.start(), self.ephemeral.end());
        let start = self
            .cursor
            .get(&proto)
            .map_or(lo, |c| if *c >= hi { lo } else { c + 1 });
        let candidates = (start..=hi).chain(lo..start);
        for port in candidates {
            if self
                .reserved
                .iter()
                .any(|r| (r.start()..=r.end()).contains(&port))
                || skip(port)
            {
                continue;
            }
            if self.is_free(proto, ips, port) {
                return Ok(port);
            }
        }
        Err(Error::NoFreePort {
            what: format!(
                "{proto} on {}",
                ips.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            range: self.ephemeral.to_string(),
        })
    }

    /// Moves the round-robin cursor to `port`.
    pub fn advance(&mut self, proto: Protocol, port: u16) {
        self.cursor.insert(proto, port);
    }

    /// The first free port of `range` on every address of `ips`.
    pub fn first_free_in(&self, proto: Protocol, ips: &[IpAddr], range: PortRange) -> Result<u16> {
        (range.start()..=range.end())
            .find(|p| self.is_free(proto, ips, *p))
            .ok_or_else(|| Error::NoFreePort {
                what: format!("{proto}"),
                range: range.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: u16, b: u16) -> PortRange {
        PortRange::new(a, b).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn unspecified_conflicts_with_specific_and_families_are_separate() {
        let mut a = HostPortAllocator::new(r(32768, 60999), vec![]);
        a.take(Protocol::Tcp, &[ip("127.0.0.1")], r(8080, 8080))
            .unwrap();
        let err = a
            .take(Protocol::Tcp, &[ip("0.0.0.0"), ip("::")], r(8080, 8080))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Bind for 127.0.0.1:8080 failed: port is already allocated"
        );
        // Nothing was taken by the failed request.
        assert!(a.is_free(Protocol::Tcp, &[ip("::")], 8080));
        a.take(Protocol::Udp, &[ip("0.0.0.0")], r(8080, 8080))
            .unwrap();
        a.take(Protocol::Tcp, &[ip("::1")], r(8080, 8080)).unwrap();
        // Two specific addresses do not conflict; the unspecified one conflicts with both.
        a.take(Protocol::Tcp, &[ip("10.0.0.2")], r(8080, 8080))
            .unwrap();
        let err = a
            .take(Protocol::Tcp, &[ip("0.0.0.0")], r(8000, 8080))
            .unwrap_err();
        assert!(err.to_string().contains(":8080 failed"), "{err}");
        a.release(Protocol::Tcp, &[ip("10.0.0.2")], r(8080, 8080));
        a.take(Protocol::Tcp, &[ip("10.0.0.1")], r(8000, 8079))
            .unwrap();
        a.release(Protocol::Tcp, &[ip("127.0.0.1")], r(8080, 8080));
        a.take(Protocol::Tcp, &[ip("0.0.0.0")], r(8080, 8080))
            .unwrap();
        // [::1]:8080 still holds the IPv6 side.
        a.take(Protocol::Tcp, &[ip("::")], r(8080, 8080))
            .unwrap_err();
        a.release(Protocol::Tcp, &[ip("::1")], r(8080, 8080));
        a.take(Protocol::Tcp, &[ip("::")], r(8080, 8080)).unwrap();
        a.take(Protocol::Tcp, &[ip("127.0.0.2")], r(8080, 8080))
            .unwrap_err();
    }

    #[test]
    fn automatic_ports_round_robin_and_skip_reserved() {
        let mut a = HostPortAllocator::new(r(40000, 40005), vec![r(40001, 40002)]);
        let ips = [ip("0.0.0.0")];
        let mut got = vec![];
        for _ in 0..3 {
            let p = a.next_free(Protocol::Tcp, &ips, &|_| false).unwrap();
            a.take(Protocol::Tcp, &ips, r(p, p)).unwrap();
            a.advance(Protocol::Tcp, p);
            got.push(p);
        }
        assert_eq!(got, [40000, 40003, 40004]);
        a.release(Protocol::Tcp, &ips, r(40000, 40000));
        // Round robin: 40005 before coming back to 40000.
        let p = a.next_free(Protocol::Tcp, &ips, &|_| false).unwrap();
        assert_eq!(p, 40005);
        a.take(Protocol::Tcp, &ips, r(p, p)).unwrap();
        a.advance(Protocol::Tcp, p);
        assert_eq!(a.next_free(Protocol::Tcp, &ips, &|_| false).unwrap(), 40000);
        assert!(a.next_free(Protocol::Tcp, &ips, &|p| p == 40000).is_err());
        assert_eq!(
            a.first_free_in(Protocol::Tcp, &ips, r(40003, 40005))
                .unwrap_err()
                .to_string(),
            "no free host port for tcp in 40003-40005"
        );
    }
}

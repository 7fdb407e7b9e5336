//! Forwarding loops: what the embedded resolver refuses up front, and how it sees the loops it
//! cannot refuse up front.
//!
//! - **Refused up front.** An upstream on [`crate::EMBEDDED_DNS_ADDRESS`] (`127.0.0.11`, any port:
//!   port 53 is redirected to the sandbox's own server, and the server's real ports are on that
//!   address too) is the resolver itself. It is dropped with a warning, by the planner
//!   ([`crate::plan_resolv_conf`]) and again by the resolver ([`crate::Resolver::add_sandbox`],
//!   [`crate::Resolver::set_upstreams`]), as Docker 26.1 and later do. A sandbox left without
//!   upstreams answers SERVFAIL at once for names it does not know.
//! - **Seen when it closes.** An upstream can lead back to berth by a way no address shows: a DNAT
//!   to another sandbox's resolver whose upstream is this sandbox, or to this sandbox's own. Every
//!   forwarded query is registered, for the time it is in flight, under the source port and the
//!   message id it went out with, with its question and the sandboxes it has been forwarded
//!   through (its [`ForwardPath`]). A query that reaches one of the resolver's servers with the
//!   source port, id and question of a registered forward *is* that forward: if the receiving
//!   sandbox is already on its path, the query has gone round, and it is answered SERVFAIL at once
//!   (and logged, at most once per [`LOOP_LOG_INTERVAL`] per sandbox); otherwise it is a chain
//!   (sandbox A forwards to sandbox B's resolver on purpose) and is forwarded with the receiving
//!   sandbox added to its path, at most [`MAX_FORWARD_HOPS`] sandboxes deep.
//!
//! What this cannot see: a loop through a server that re-sends the query under its own id or port
//! (a dnsmasq in the sandbox whose upstream is 127.0.0.11, a NAT that rewrites source ports). Such
//! a loop is bounded by the per-sandbox limits instead (in-flight forwards per sandbox, the fair
//! share of the namespace socket thread), so it costs its own sandboxes their forwarding and
//! leaves the others alone.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;

use crate::files::EMBEDDED_DNS_ADDRESS;
use crate::wire::{self, ForwardInfo};

/// The most sandboxes one query may be forwarded through (a longer chain is answered SERVFAIL).
pub(crate) const MAX_FORWARD_HOPS: usize = 8;

/// A sandbox's loop warnings are logged at most once per this interval (the others are counted).
pub(crate) const LOOP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Whether `addr` is the embedded resolver's own address (127.0.0.11, also as an IPv4-mapped
/// IPv6 address), which is never a usable upstream.
pub(crate) fn is_embedded_resolver(addr: &SocketAddr) -> bool {
    match addr.ip().to_canonical() {
        IpAddr::V4(a) => a == EMBEDDED_DNS_ADDRESS,
        IpAddr::V6(_) => false,
    }
}

/// The sandboxes (by server serial number) a forwarded query has been forwarded through, the
/// first one being the sandbox its client asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ForwardPath {
    hops: [u32; MAX_FORWARD_HOPS],
    len: u8,
}

/// What a server does with a query that is one of the resolver's own forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// Forward it, with this path.
    Forward(ForwardPath),
    /// It has been through this sandbox already: a loop.
    Loop(ForwardPath),
    /// The chain is longer than [`MAX_FORWARD_HOPS`].
    TooLong(ForwardPath),
}

impl ForwardPath {
    /// The number of sandboxes on the path.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.len)
    }

    fn contains(&self, serial: u32) -> bool {
        self.hops[..self.len()].contains(&serial)
    }

    /// What the server of sandbox `serial` does with a query that came along `self`
    /// (`None`: a query from a client, not a forward).
    pub(crate) fn next(came: Option<ForwardPath>, serial: u32) -> Hop {
        let mut path = came.unwrap_or_default();
        if path.contains(serial) {
            return Hop::Loop(path);
        }
        if path.len() == MAX_FORWARD_HOPS {
            return Hop::TooLong(path);
        }
        path.hops[path.len()] = serial;
        path.len += 1;
        Hop::Forward(path)
    }
}

/// A hash of a question (case-insensitive name, type, class), to tell a returning forward from
/// another query that happens to come from the same port with the same id.
pub(crate) fn question_hash(name: &Name, qtype: u16, qclass: u16) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    };
    for label in name.iter() {
        eat(label.len() as u8);
        label.iter().for_each(|b| eat(b.to_ascii_lowercase()));
    }
    qtype.to_be_bytes().into_iter().for_each(&mut eat);
    qclass.to_be_bytes().into_iter().for_each(&mut eat);
    h
}

#[derive(Debug, Clone, Copy)]
struct InFlightEntry {
    question: u64,
    path: ForwardPath,
}

/// The forwarded queries in flight, of every sandbox of one resolver, by (source port, id).
#[derive(Default)]
pub(crate) struct InFlight {
    map: scc::HashMap<u32, InFlightEntry>,
}

fn key(port: u16, id: u16) -> u32 {
    (u32::from(port) << 16) | u32::from(id)
}

impl InFlight {
    /// Registers a forward that leaves from local `port`; returns the message id to send it with
    /// (random, and not used by another forward from that port number) and the guard that
    /// unregisters it.
    pub(crate) fn register(
        self: &Arc<Self>,
        port: u16,
        info: &ForwardInfo,
        path: ForwardPath,
    ) -> (u16, Registration) {
        let entry = InFlightEntry {
            question: question_hash(&info.name, info.qtype, info.qclass),
            path,
        };
        loop {
            let id: u16 = rand::random();
            if self.map.insert_sync(key(port, id), entry).is_ok() {
                return (
                    id,
                    Registration {
                        inflight: self.clone(),
                        key: key(port, id),
                    },
                );
            }
        }
    }

    /// The path of the registered forward a query from `port` with `info`'s id and question is,
    /// if it is one.
    pub(crate) fn path_of(&self, port: u16, info: &ForwardInfo) -> Option<ForwardPath> {
        let found = self.map.read_sync(&key(port, info.id), |_, e| *e)?;
        (found.question == question_hash(&info.name, info.qtype, info.qclass)).then_some(found.path)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

/// Unregisters a forward when the attempt ends (answered, failed, timed out or cancelled).
pub(crate) struct Registration {
    inflight: Arc<InFlight>,
    key: u32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.inflight.map.remove_sync(&self.key);
    }
}

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Rate-limited loop warnings of one sandbox: a looping storm logs once per interval, with the
/// number of loops cut since the last line, not once per query.
#[derive(Debug, Default)]
pub(crate) struct LoopLog {
    /// When the next line may be written (ms since [`EPOCH`], plus one so 0 means "now").
    next: AtomicU64,
    /// Loops cut since the last line.
    unlogged: AtomicU64,
}

impl LoopLog {
    /// Logs (or counts) one loop or over-long chain cut in `sandbox`.
    pub(crate) fn cut(&self, sandbox: &str, hop: Hop, info: &ForwardInfo, from: SocketAddr) {
        let unlogged = self.unlogged.fetch_add(1, Ordering::Relaxed) + 1;
        let now = now_ms() + 1;
        let next = self.next.load(Ordering::Relaxed);
        let interval = u64::try_from(LOOP_LOG_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if now < next
            || self
                .next
                .compare_exchange(next, now + interval, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.unlogged.fetch_sub(unlogged, Ordering::Relaxed);
        let name = info.name.to_string();
        let qtype = wire::type_name(info.qtype);
        match hop {
            Hop::Loop(path) => tracing::warn!(
                sandbox,
                %name,
                %qtype,
                %from,
                sandboxes_on_the_way = path.len(),
                cut_since_last_warning = unlogged,
                "berth-dns: DNS forwarding loop: a query this sandbox forwarded came back to it; \
                 answered SERVFAIL (check the upstream DNS servers of this sandbox and of the \
                 sandboxes it forwards to)"
            ),
            Hop::TooLong(path) => tracing::warn!(
                sandbox,
                %name,
                %qtype,
                %from,
                sandboxes_on_the_way = path.len(),
                cut_since_last_warning = unlogged,
                "berth-dns: DNS forwarding chain through more than {MAX_FORWARD_HOPS} sandboxes \
                 (probably a loop); answered SERVFAIL (check the sandboxes' upstream DNS servers)"
            ),
            Hop::Forward(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, id: u16) -> ForwardInfo {
        ForwardInfo {
            id,
            limit: 512,
            name: Name::from_ascii(name).unwrap(),
            qtype: 1,
            qclass: 1,
            edns: false,
            rd: true,
            cd: false,
        }
    }

    #[test]
    fn the_embedded_address_is_never_an_upstream() {
        for bad in [
            "127.0.0.11:53",
            "127.0.0.11:40000",
            "[::ffff:127.0.0.11]:53",
        ] {
            assert!(is_embedded_resolver(&bad.parse().unwrap()), "{bad}");
        }
        for good in ["127.0.0.1:53", "127.0.0.53:53", "10.0.0.11:53", "[::1]:53"] {
            assert!(!is_embedded_resolver(&good.parse().unwrap()), "{good}");
        }
    }

    #[test]
    fn the_planner_never_makes_the_embedded_address_an_upstream() {
        use crate::{DnsSettings, ResolvMode, plan_resolv_conf};
        let dns = |servers: &[&str]| DnsSettings {
            servers: servers.iter().map(|s| s.parse().unwrap()).collect(),
            ..DnsSettings::default()
        };
        let host = "nameserver 10.0.0.53\n";
        let plan = plan_resolv_conf(host, &dns(&["127.0.0.11"]), ResolvMode::Embedded).unwrap();
        assert!(plan.upstreams.is_empty());
        assert_eq!(plan.content, "nameserver 127.0.0.11\noptions ndots:0\n");
        let plan = plan_resolv_conf(
            host,
            &dns(&[
                "127.0.0.11",
                "10.0.0.1",
                "127.0.0.11",
                "10.0.0.2",
                "10.0.0.3",
            ]),
            ResolvMode::Embedded,
        )
        .unwrap();
        let want: Vec<SocketAddr> = ["10.0.0.1:53", "10.0.0.2:53", "10.0.0.3:53"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(plan.upstreams, want, "the three others are used");
        // another loopback address is the sandbox's own server, not berth's: kept
        let plan = plan_resolv_conf(host, &dns(&["127.0.0.1"]), ResolvMode::Embedded).unwrap();
        assert_eq!(plan.upstreams, vec!["127.0.0.1:53".parse().unwrap()]);
    }

    #[test]
    fn the_name_service_drops_the_embedded_address_from_upstreams() {
        let names = crate::Names::new();
        let own: SocketAddr = "127.0.0.11:53".parse().unwrap();
        let other: SocketAddr = "192.0.2.53:53".parse().unwrap();
        let h = names.add_sandbox("s", "s", &[own]).unwrap();
        assert!(h.view().load().upstreams.is_empty());
        names.set_upstreams("s", &[own, other]).unwrap();
        assert_eq!(&*h.view().load().upstreams, &[other]);
    }

    #[test]
    fn paths_see_loops_and_bound_chains() {
        let Hop::Forward(p1) = ForwardPath::next(None, 1) else {
            panic!("a client's query is forwarded");
        };
        let Hop::Forward(p2) = ForwardPath::next(Some(p1), 2) else {
            panic!("a chain is forwarded");
        };
        assert_eq!(p2.len(), 2);
        assert_eq!(ForwardPath::next(Some(p2), 1), Hop::Loop(p2));
        assert_eq!(ForwardPath::next(Some(p2), 2), Hop::Loop(p2));
        let mut p = ForwardPath::default();
        for s in 0..MAX_FORWARD_HOPS as u32 {
            let Hop::Forward(n) = ForwardPath::next(Some(p), 100 + s) else {
                panic!("hop {s}");
            };
            p = n;
        }
        assert_eq!(ForwardPath::next(Some(p), 7), Hop::TooLong(p));
    }

    #[test]
    fn registered_forwards_are_recognised_by_port_id_and_question_until_dropped() {
        let inflight = Arc::new(InFlight::default());
        let q = info("Loop.Example.", 0);
        let Hop::Forward(path) = ForwardPath::next(None, 5) else {
            panic!()
        };
        let (id, reg) = inflight.register(4000, &q, path);
        // the same question in another case is the same question
        assert_eq!(
            inflight.path_of(4000, &info("loop.EXAMPLE.", id)),
            Some(path)
        );
        // another port, id or question is not this forward
        assert_eq!(inflight.path_of(4001, &info("loop.example.", id)), None);
        assert_eq!(
            inflight.path_of(4000, &info("loop.example.", id.wrapping_add(1))),
            None
        );
        assert_eq!(inflight.path_of(4000, &info("other.example.", id)), None);
        let mut aaaa = info("loop.example.", id);
        aaaa.qtype = 28;
        assert_eq!(inflight.path_of(4000, &aaaa), None);
        // ids from one port never collide while in flight
        let regs: Vec<(u16, Registration)> = (0..2000)
            .map(|_| inflight.register(4000, &q, path))
            .collect();
        let ids: std::collections::BTreeSet<u16> =
            regs.iter().map(|(i, _)| *i).chain([id]).collect();
        assert_eq!(ids.len(), 2001);
        drop(regs);
        drop(reg);
        assert_eq!(inflight.len(), 0);
        assert_eq!(inflight.path_of(4000, &info("loop.example.", id)), None);
    }

    #[test]
    fn loop_warnings_are_rate_limited() {
        let log = LoopLog::default();
        let q = info("loop.example.", 1);
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        log.cut("sb", Hop::Loop(ForwardPath::default()), &q, from);
        assert_eq!(
            log.unlogged.load(Ordering::Relaxed),
            0,
            "the first is logged"
        );
        for _ in 0..100 {
            log.cut("sb", Hop::Loop(ForwardPath::default()), &q, from);
        }
        assert_eq!(
            log.unlogged.load(Ordering::Relaxed),
            100,
            "the rest are counted"
        );
    }
}

//! The limits of the userland proxy ([`ProxyLimits`]) and the two small pure helpers its loops
//! use to stay within them: an exponential [`Backoff`] for errors that persist (accept failing with
//! EMFILE), and a [`LogThrottle`] that keeps warnings about refused traffic at a bounded rate.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// The limits of the in-process userland proxy, per published host socket (one `IP:PORT/proto`).
///
/// The defaults follow Docker's `docker-proxy` where it has a number: a UDP flow is forgotten
/// after 90 s without a datagram in either direction, as `docker-proxy` does since moby#49649
/// (2025; before, only replies counted). `docker-proxy` caps neither TCP connections nor UDP flows;
/// berth does, so that one port cannot eat the descriptors of the whole engine: 1024 UDP flows
/// (any source address makes a flow, so this cap is the tight one) and 4096 TCP connections (each
/// needs a completed handshake, and a busy service behind the proxy should not notice the cap).
///
/// ```
/// use std::time::Duration;
/// use berth_portmap::ProxyLimits;
///
/// let mut limits = ProxyLimits::default();
/// assert_eq!(limits.udp_idle_timeout, Duration::from_secs(90));
/// limits.max_udp_flows = 256;
/// limits.validate()?;
/// # Ok::<(), berth_portmap::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyLimits {
    /// Concurrent TCP connections relayed for one published port. A connection beyond it is
    /// accepted and closed at once with a reset; the connections already relayed go on.
    pub max_tcp_connections: usize,
    /// UDP flows (client address and port) relayed for one published port. Datagrams of a new
    /// flow beyond it are dropped; the flows already tracked go on.
    pub max_udp_flows: usize,
    /// A UDP flow with no datagram in either direction for this long is forgotten and its
    /// upstream socket closed; the client's next datagram starts a new flow.
    pub udp_idle_timeout: Duration,
    /// A relayed TCP connection with no data in either direction for this long is closed.
    /// `None` (the default, as Docker): idle TCP connections stay open, because long-lived quiet
    /// connections (database pools, consoles) are legitimate and the kernel's NAT path does not
    /// cut them either.
    pub tcp_idle_timeout: Option<Duration>,
    /// The first pause after accepting failed for a reason that persists (EMFILE, ENFILE,
    /// ENOBUFS, ENOMEM), or receiving on a published UDP socket failed; it doubles with every
    /// failure in a row. Such a run of failures is logged once when it starts and once when it
    /// ends.
    pub accept_backoff_min: Duration,
    /// The longest pause between two attempts that keep failing.
    pub accept_backoff_max: Duration,
    /// At most one warning per this interval about connections refused or datagrams dropped at
    /// a cap (with the number left unlogged in between), per published port.
    pub log_interval: Duration,
}

impl Default for ProxyLimits {
    fn default() -> Self {
        ProxyLimits {
            max_tcp_connections: 4096,
            max_udp_flows: 1024,
            udp_idle_timeout: Duration::from_secs(90),
            tcp_idle_timeout: None,
            accept_backoff_min: Duration::from_millis(5),
            accept_backoff_max: Duration::from_secs(1),
            log_interval: Duration::from_secs(10),
        }
    }
}

impl ProxyLimits {
    /// Checks the limits make sense: caps of at least one, timeouts and pauses above zero, the
    /// shortest pause no longer than the longest. Names the first bad limit.
    pub fn validate(&self) -> Result<()> {
        let bad = |limit: &str, reason: &str| {
            Err(Error::InvalidProxyLimits {
                limit: limit.to_owned(),
                reason: reason.to_owned(),
            })
        };
        if self.max_tcp_connections == 0 {
            return bad(
                "max_tcp_connections",
                "must be at least 1 (turn the userland proxy off to relay nothing)",
            );
        }
        if self.max_udp_flows == 0 {
            return bad(
                "max_udp_flows",
                "must be at least 1 (turn the userland proxy off to relay nothing)",
            );
        }
        if self.udp_idle_timeout.is_zero() {
            return bad("udp_idle_timeout", "must be longer than zero");
        }
        if self.tcp_idle_timeout.is_some_and(|d| d.is_zero()) {
            return bad(
                "tcp_idle_timeout",
                "must be longer than zero (None keeps idle connections open)",
            );
        }
        if self.accept_backoff_min.is_zero() {
            return bad(
                "accept_backoff_min",
                "must be longer than zero, or a failing accept spins the CPU",
            );
        }
        if self.accept_backoff_max < self.accept_backoff_min {
            return bad(
                "accept_backoff_max",
                "must not be shorter than accept_backoff_min",
            );
        }
        if self.log_interval.is_zero() {
            return bad("log_interval", "must be longer than zero");
        }
        Ok(())
    }

    /// How often the UDP relay looks for idle flows: a quarter of the idle timeout, between
    /// 10 ms and 5 s (a flow lives at most that much past its timeout).
    pub(crate) fn udp_sweep_period(&self) -> Duration {
        (self.udp_idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(5))
    }
}

/// Exponential back-off: `min`, `2 min`, `4 min`, ... up to `max`, back to `min` after
/// [`Backoff::reset`].
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The pause to take now; the next one is twice as long (at most `max`).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let now = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        now
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Lets one event in per interval and counts the ones it held back.
#[derive(Debug, Clone)]
pub(crate) struct LogThrottle {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogThrottle {
    pub(crate) fn new(every: Duration) -> Self {
        LogThrottle {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` if the event at `now` is to be logged (`n` events were held back since the last
    /// one logged); `None` if it is held back.
    pub(crate) fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_docker_like() {
        let l = ProxyLimits::default();
        l.validate().unwrap();
        assert_eq!(l.udp_idle_timeout, Duration::from_secs(90));
        assert_eq!(l.max_udp_flows, 1024);
        assert_eq!(l.tcp_idle_timeout, None);
        assert_eq!(l.udp_sweep_period(), Duration::from_secs(5));
    }

    #[test]
    fn bad_limits_are_named() {
        let check = |f: &dyn Fn(&mut ProxyLimits), name: &str| {
            let mut l = ProxyLimits::default();
            f(&mut l);
            let e = l.validate().unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        };
        check(&|l| l.max_tcp_connections = 0, "max_tcp_connections");
        check(&|l| l.max_udp_flows = 0, "max_udp_flows");
        check(&|l| l.udp_idle_timeout = Duration::ZERO, "udp_idle_timeout");
        check(
            &|l| l.tcp_idle_timeout = Some(Duration::ZERO),
            "tcp_idle_timeout",
        );
        check(
            &|l| l.accept_backoff_min = Duration::ZERO,
            "accept_backoff_min",
        );
        check(
            &|l| l.accept_backoff_max = Duration::from_millis(1),
            "accept_backoff_max",
        );
        check(&|l| l.log_interval = Duration::ZERO, "log_interval");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(5), Duration::from_secs(1));
        let got: Vec<u128> = (0..10).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(5));
    }

    #[test]
    fn throttle_lets_one_in_per_interval_and_counts_the_rest() {
        let t0 = Instant::now();
        let mut t = LogThrottle::new(Duration::from_secs(10));
        assert_eq!(t.hit(t0), Some(0));
        assert_eq!(t.hit(t0 + Duration::from_secs(1)), None);
        assert_eq!(t.hit(t0 + Duration::from_secs(9)), None);
        assert_eq!(t.hit(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(t.hit(t0 + Duration::from_secs(11)), None);
        assert_eq!(t.hit(t0 + Duration::from_secs(30)), Some(1));
    }
}

//! A sandbox's `/etc/resolv.conf` and the embedded server's upstreams, planned from the host's
//! resolv.conf and the sandbox's `--dns*` settings as Docker 20.10 does.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::LazyLock;

use regex::Regex;

use crate::error::{Error, Result};

/// The address of the embedded DNS server inside every sandbox.
pub const EMBEDDED_DNS_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// The most upstream servers the embedded server forwards to (Docker's limit).
pub const MAX_UPSTREAMS: usize = 3;
/// Docker's fallback when the host lists no usable nameserver: Google's public resolvers.
pub const FALLBACK_NAMESERVERS_V4: [Ipv4Addr; 2] =
    [Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(8, 8, 4, 4)];
/// The IPv6 fallback, added when IPv6 is enabled.
pub const FALLBACK_NAMESERVERS_V6: [&str; 2] = ["2001:4860:4860::8888", "2001:4860:4860::8844"];

/// `--dns`, `--dns-search` and `--dns-option` of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsSettings {
    /// `--dns` servers.
    pub servers: Vec<IpAddr>,
    /// `--dns-search` domains (`.` alone means none).
    pub search: Vec<String>,
    /// `--dns-option` options (`ndots:2`, `timeout:3`, ...).
    pub options: Vec<String>,
}

impl DnsSettings {
    fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.search.is_empty() && self.options.is_empty()
    }
}

/// How a sandbox resolves names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvMode {
    /// Attached to a user-defined network: `nameserver 127.0.0.11`, the embedded server forwards.
    Embedded,
    /// Only on the default bridge (or none): the host's servers, written into the file directly.
    Direct {
        /// IPv6 is enabled on the sandbox's network (IPv6 nameservers are kept).
        ipv6: bool,
    },
    /// `--network host`: the host's file, unchanged.
    Host,
}

/// A planned `/etc/resolv.conf` and the upstream servers of the embedded server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvPlan {
    /// The file's content.
    pub content: String,
    /// Where the embedded server forwards names it does not know (port 53, at most
    /// [`MAX_UPSTREAMS`], IPv4 only as in Docker: IPv6 servers are listed in the file itself).
    /// Empty unless the mode is [`ResolvMode::Embedded`].
    pub upstreams: Vec<SocketAddr>,
}

const WS: &str = r"[\t\n\f\r ]";
const IPV4: &str = r"((25[0-5]|(2[0-4]|1?[0-9])?[0-9])\.){3}(25[0-5]|(2[0-4]|1?[0-9])?[0-9])";
const IPV6: &str = r"([0-9A-Fa-f]{0,4}:){2,7}([0-9A-Fa-f]{0,4})(%\w+)?";

struct Patterns {
    localhost_ns: Regex,
    ipv6_ns: Regex,
    ns_v4: Regex,
    ns_v6: Regex,
    search: Regex,
    options: Regex,
}

#[allow(clippy::expect_used)] // constant patterns, checked by the unit tests
static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| {
    let re = |p: &str| Regex::new(p).expect("constant pattern");
    Patterns {
        localhost_ns: re(&format!(
            r"(?m)^nameserver{WS}+((127\.([0-9]{{1,3}}\.){{2}}[0-9]{{1,3}})|(::1)$){WS}*\n*"
        )),
        ipv6_ns: re(&format!(r"(?m)^nameserver{WS}+{IPV6}{WS}*\n*")),
        ns_v4: re(&format!(r"^{WS}*nameserver{WS}*({IPV4}){WS}*$")),
        ns_v6: re(&format!(r"^{WS}*nameserver{WS}*({IPV6}){WS}*$")),
        search: re(&format!(r"^{WS}*search{WS}*(([^\t\n\f\r ]+{WS}*)*)$")),
        options: re(&format!(r"^{WS}*options{WS}*(([^\t\n\f\r ]+{WS}*)*)$")),
    }
});

/// The lines of a resolv.conf with `#` comments cut off.
fn lines(content: &str) -> impl Iterator<Item = &str> {
    content
        .split('\n')
        .map(|l| l.split_once('#').map_or(l, |(before, _)| before))
}

/// Which nameservers to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
    Any,
}

/// The nameservers of a resolv.conf, as written.
fn nameservers(content: &str, family: Family) -> Vec<String> {
    let p = &*PATTERNS;
    let mut out = Vec::new();
    for line in lines(content) {
        let v4 = p.ns_v4.captures(line).and_then(|c| c.get(1));
        let v6 = p.ns_v6.captures(line).and_then(|c| c.get(1));
        let hit = match family {
            Family::V4 => v4,
            Family::V6 => v6,
            Family::Any => v4.or(v6),
        };
        if let Some(m) = hit {
            out.push(m.as_str().to_owned());
        }
    }
    out
}

/// The words of the last line matching `re` (`search` or `options`).
fn last_words(content: &str, re: &Regex) -> Vec<String> {
    let mut words = Vec::new();
    for line in lines(content) {
        if let Some(m) = re.captures(line).and_then(|c| c.get(1)) {
            words = m.as_str().split_whitespace().map(str::to_owned).collect();
        }
    }
    words
}

/// The host's resolv.conf without loopback nameservers (and without IPv6 ones unless `ipv6`);
/// if no nameserver is left, Google's public servers are appended, as Docker 20.10 does.
pub fn filter_host_resolv_conf(content: &str, ipv6: bool) -> String {
    let p = &*PATTERNS;
    let mut cleaned = p.localhost_ns.replace_all(content, "").into_owned();
    if !ipv6 {
        cleaned = p.ipv6_ns.replace_all(&cleaned, "").into_owned();
    }
    if nameservers(&cleaned, Family::Any).is_empty() {
        let mut fallback: Vec<String> = FALLBACK_NAMESERVERS_V4
            .iter()
            .map(|a| format!("nameserver {a}"))
            .collect();
        if ipv6 {
            fallback.extend(
                FALLBACK_NAMESERVERS_V6
                    .iter()
                    .map(|a| format!("nameserver {a}")),
            );
        }
        cleaned.push('\n');
        cleaned.push_str(&fallback.join("\n"));
    }
    cleaned
}

/// Writes a resolv.conf from its parts, in Docker's order: search, nameservers, options.
pub fn build_resolv_conf(servers: &[String], search: &[String], options: &[String]) -> String {
    let mut s = String::new();
    if !search.is_empty() {
        let joined = search.join(" ");
        if joined.trim_matches(' ') != "." {
            s.push_str(&format!("search {joined}\n"));
        }
    }
    for ns in servers {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    if !options.is_empty() {
        let joined = options.join(" ");
        if !joined.trim_matches(' ').is_empty() {
            s.push_str(&format!("options {joined}\n"));
        }
    }
    s
}

/// Whether the options set `ndots` themselves; refuses a malformed `ndots` as Docker does.
fn sets_ndots(options: &[String]) -> Result<bool> {
    let Some(o) = options.iter().find(|o| o.contains("ndots")) else {
        return Ok(false);
    };
    let invalid = |reason: &str| Error::Invalid {
        what: "ndots option",
        value: o.clone(),
        reason: reason.to_owned(),
    };
    let parts: Vec<&str> = o.split(':').collect();
    let [_, n] = parts.as_slice() else {
        return Err(invalid("expected ndots:N"));
    };
    let n: i64 = n.parse().map_err(|_| invalid("N must be a whole number"))?;
    if n < 0 {
        return Err(invalid("N must not be negative"));
    }
    Ok(true)
}

/// The upstreams among `servers`: IPv4 ones, on port 53, at most [`MAX_UPSTREAMS`]. The embedded
/// resolver's own address is not one (forwarding to it would loop): it is dropped with a
/// warning, as Docker 26.1 and later do.
fn upstreams_of(servers: &[String]) -> Vec<SocketAddr> {
    servers
        .iter()
        .filter_map(|s| s.parse::<Ipv4Addr>().ok())
        .filter(|&a| {
            if a == EMBEDDED_DNS_ADDRESS {
                tracing::warn!(
                    "berth-dns: DNS server {a} is the embedded resolver itself; it is not used as an upstream (forwarding to it would loop)"
                );
            }
            a != EMBEDDED_DNS_ADDRESS
        })
        .take(MAX_UPSTREAMS)
        .map(|a| SocketAddr::new(IpAddr::V4(a), 53))
        .collect()
}

/// Plans a sandbox's `/etc/resolv.conf` (and the embedded server's upstreams) from the host's
/// resolv.conf content and the sandbox's own settings, as Docker 20.10 does:
///
/// - [`ResolvMode::Host`]: the host's file unchanged.
/// - [`ResolvMode::Direct`]: with any `--dns*` setting, a file built from them (the host's values
///   fill the parts not given); without, the host's file minus loopback nameservers (minus IPv6
///   ones without IPv6), with 8.8.8.8 and 8.8.4.4 when nothing is left.
/// - [`ResolvMode::Embedded`]: search domains and options kept, `nameserver 127.0.0.11` plus any
///   IPv6 nameservers, and `ndots:0` appended unless an `ndots` option is set. The upstreams are
///   the IPv4 servers of `--dns`, or else the host's non-loopback IPv4 nameservers (Google's when
///   there are none), at most three.
///
/// `127.0.0.11` (the embedded resolver itself) is never an upstream: given in `--dns`, it is
/// dropped with a warning, and if nothing is left the sandbox has no upstream (unknown names get
/// SERVFAIL at once), as in Docker 26.1 and later.
pub fn plan_resolv_conf(
    host: &str,
    settings: &DnsSettings,
    mode: ResolvMode,
) -> Result<ResolvPlan> {
    let p = &*PATTERNS;
    if mode == ResolvMode::Host {
        return Ok(ResolvPlan {
            content: host.to_owned(),
            upstreams: Vec::new(),
        });
    }
    let given: Vec<String> = settings.servers.iter().map(IpAddr::to_string).collect();
    let base = if settings.is_empty() {
        filter_host_resolv_conf(host, true)
    } else {
        let servers = if given.is_empty() {
            nameservers(host, Family::Any)
        } else {
            given.clone()
        };
        let search = if settings.search.is_empty() {
            last_words(host, &p.search)
        } else {
            settings.search.clone()
        };
        let options = if settings.options.is_empty() {
            last_words(host, &p.options)
        } else {
            settings.options.clone()
        };
        build_resolv_conf(&servers, &search, &options)
    };
    if let ResolvMode::Direct { ipv6 } = mode {
        let content = if settings.is_empty() {
            filter_host_resolv_conf(&base, ipv6)
        } else {
            base
        };
        return Ok(ResolvPlan {
            content,
            upstreams: Vec::new(),
        });
    }
    let upstreams = if !given.is_empty() {
        upstreams_of(&given)
    } else {
        // The host's IPv4 nameservers except loopback ones (they are the host's, not the
        // sandbox's); when the host lists no nameserver at all but loopback ones, Google's, as
        // Docker. IPv6 nameservers are written into the file instead.
        let non_loopback = |content: &str| -> Vec<String> {
            nameservers(content, Family::V4)
                .into_iter()
                .filter(|s| s.parse::<Ipv4Addr>().is_ok_and(|a| !a.is_loopback()))
                .collect()
        };
        let host_v4 = non_loopback(host);
        if host_v4.is_empty() {
            upstreams_of(&non_loopback(&filter_host_resolv_conf(host, true)))
        } else {
            upstreams_of(&host_v4)
        }
    };
    let mut servers = vec![EMBEDDED_DNS_ADDRESS.to_string()];
    servers.extend(nameservers(&base, Family::V6));
    let search = last_words(&base, &p.search);
    let mut options = last_words(&base, &p.options);
    if !sets_ndots(&options)? {
        options.push("ndots:0".into());
    }
    Ok(ResolvPlan {
        content: build_resolv_conf(&servers, &search, &options),
        upstreams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::tests::REF_USER_RESOLV;

    #[test]
    fn resolv_embedded_matches_reference() {
        let host = "nameserver 10.255.255.53\n";
        let plan = plan_resolv_conf(host, &DnsSettings::default(), ResolvMode::Embedded).unwrap();
        assert_eq!(plan.content, REF_USER_RESOLV);
        assert_eq!(plan.upstreams, vec!["10.255.255.53:53".parse().unwrap()]);
    }

    #[test]
    fn resolv_cases_checked_against_docker() {
        // --dns-search s1.example --dns-search s2.example --dns-option timeout:2 --dns-option ndots:3
        let s = DnsSettings {
            servers: vec!["192.0.2.53".parse().unwrap()],
            search: vec!["s1.example".into(), "s2.example".into()],
            options: vec!["timeout:2".into(), "ndots:3".into()],
        };
        let plan =
            plan_resolv_conf("nameserver 10.255.255.53\n", &s, ResolvMode::Embedded).unwrap();
        assert_eq!(
            plan.content,
            "search s1.example s2.example\nnameserver 127.0.0.11\noptions timeout:2 ndots:3\n"
        );
        assert_eq!(plan.upstreams, vec!["192.0.2.53:53".parse().unwrap()]);
        // --dns 192.0.2.1 --dns 2001:db8::1 --dns 127.0.0.1 --dns-option timeout:3 --dns-option ndots:0
        let s = DnsSettings {
            servers: ["192.0.2.1", "2001:db8::1", "127.0.0.1"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect(),
            search: vec![],
            options: vec!["timeout:3".into(), "ndots:0".into()],
        };
        let plan =
            plan_resolv_conf("nameserver 10.255.255.53\n", &s, ResolvMode::Embedded).unwrap();
        assert_eq!(
            plan.content,
            "nameserver 127.0.0.11\nnameserver 2001:db8::1\noptions timeout:3 ndots:0\n"
        );
        assert_eq!(
            plan.upstreams,
            vec![
                "192.0.2.1:53".parse().unwrap(),
                "127.0.0.1:53".parse().unwrap()
            ]
        );
        // default bridge with --dns (IPv6 server kept, as Docker does when --dns is given)
        let s = DnsSettings {
            servers: ["192.0.2.1", "2001:db8::1"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect(),
            search: vec![],
            options: vec!["timeout:3".into()],
        };
        let plan = plan_resolv_conf(
            "nameserver 10.255.255.53\n",
            &s,
            ResolvMode::Direct { ipv6: false },
        )
        .unwrap();
        assert_eq!(
            plan.content,
            "nameserver 192.0.2.1\nnameserver 2001:db8::1\noptions timeout:3\n"
        );
        assert!(plan.upstreams.is_empty());
        // --dns-search . writes no search line
        let s = DnsSettings {
            search: vec![".".into()],
            ..DnsSettings::default()
        };
        let plan =
            plan_resolv_conf("nameserver 10.255.255.53\n", &s, ResolvMode::Embedded).unwrap();
        assert_eq!(plan.content, "nameserver 127.0.0.11\noptions ndots:0\n");
        // default bridge without settings: the host's file as is
        let plan = plan_resolv_conf(
            "nameserver 10.255.255.53\n",
            &DnsSettings::default(),
            ResolvMode::Direct { ipv6: false },
        )
        .unwrap();
        assert_eq!(plan.content, "nameserver 10.255.255.53\n");
    }

    #[test]
    fn resolv_host_filtering() {
        let host = "# generated\nsearch corp.example\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver fd00::53\noptions edns0 trust-ad\n";
        let direct = plan_resolv_conf(
            host,
            &DnsSettings::default(),
            ResolvMode::Direct { ipv6: false },
        )
        .unwrap();
        assert_eq!(
            direct.content,
            "# generated\nsearch corp.example\nnameserver 192.0.2.1\noptions edns0 trust-ad\n"
        );
        let direct6 = plan_resolv_conf(
            host,
            &DnsSettings::default(),
            ResolvMode::Direct { ipv6: true },
        )
        .unwrap();
        assert!(direct6.content.contains("nameserver fd00::53\n"));
        let emb = plan_resolv_conf(host, &DnsSettings::default(), ResolvMode::Embedded).unwrap();
        assert_eq!(
            emb.content,
            "search corp.example\nnameserver 127.0.0.11\nnameserver fd00::53\noptions edns0 trust-ad ndots:0\n"
        );
        assert_eq!(emb.upstreams, vec!["192.0.2.1:53".parse().unwrap()]);
        // only loopback servers: Google's, the file ending without a newline as Docker's does
        let lo = "nameserver 127.0.0.53\n";
        let direct = plan_resolv_conf(
            lo,
            &DnsSettings::default(),
            ResolvMode::Direct { ipv6: false },
        )
        .unwrap();
        assert_eq!(direct.content, "\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        let emb = plan_resolv_conf(lo, &DnsSettings::default(), ResolvMode::Embedded).unwrap();
        assert_eq!(
            emb.upstreams,
            vec!["8.8.8.8:53".parse().unwrap(), "8.8.4.4:53".parse().unwrap()]
        );
        // settings without servers: the host's loopback servers are never upstreams
        let s = DnsSettings {
            search: vec!["corp.example".into()],
            ..DnsSettings::default()
        };
        let emb = plan_resolv_conf(lo, &s, ResolvMode::Embedded).unwrap();
        assert_eq!(emb.upstreams.len(), 2);
        assert!(emb.upstreams.iter().all(|u| !u.ip().is_loopback()));
        // only IPv6 servers besides loopback: listed in the file, nothing to forward to
        let v6 = "nameserver 127.0.0.53\nnameserver fd00::53\n";
        let emb = plan_resolv_conf(v6, &DnsSettings::default(), ResolvMode::Embedded).unwrap();
        assert!(emb.upstreams.is_empty());
        assert_eq!(
            emb.content,
            "nameserver 127.0.0.11\nnameserver fd00::53\noptions ndots:0\n"
        );
        // at most three upstreams
        let many = "nameserver 192.0.2.1\nnameserver 192.0.2.2\nnameserver 192.0.2.3\nnameserver 192.0.2.4\n";
        let emb = plan_resolv_conf(many, &DnsSettings::default(), ResolvMode::Embedded).unwrap();
        assert_eq!(emb.upstreams.len(), 3);
        // host mode: unchanged
        let h = plan_resolv_conf(host, &DnsSettings::default(), ResolvMode::Host).unwrap();
        assert_eq!(h.content, host);
    }

    #[test]
    fn bad_ndots_is_refused() {
        for bad in ["ndots", "ndots:x", "ndots:-1", "ndots:1:2"] {
            let s = DnsSettings {
                options: vec![bad.into()],
                ..DnsSettings::default()
            };
            let e =
                plan_resolv_conf("nameserver 192.0.2.1\n", &s, ResolvMode::Embedded).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}

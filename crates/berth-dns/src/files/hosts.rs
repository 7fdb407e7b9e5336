//! A sandbox's `/etc/hosts`: Docker's header, `--add-host` entries, legacy links, and the
//! sandbox's own address on each network it joined.

use std::net::IpAddr;

use crate::error::{Error, Result};

/// The first lines of every sandbox's `/etc/hosts`.
pub const HOSTS_HEADER: &str = "127.0.0.1\tlocalhost\n\
::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\n\
ff00::0\tip6-mcastprefix\n\
ff02::1\tip6-allnodes\n\
ff02::2\tip6-allrouters\n";

/// One `--add-host NAMES:ADDR` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// The names, space-separated as given (`"bar baz"`).
    pub names: String,
    /// The address.
    pub addr: IpAddr,
}

impl HostEntry {
    /// Parses Docker's `--add-host` syntax `NAMES:ADDR` (split at the first colon, so IPv6
    /// addresses work: `v6host:fd00::5`).
    pub fn parse(s: &str) -> Result<HostEntry> {
        let invalid = |reason: &str| Error::Invalid {
            what: "extra host",
            value: s.to_owned(),
            reason: reason.to_owned(),
        };
        let (names, addr) = s
            .split_once(':')
            .ok_or_else(|| invalid("expected NAME:ADDRESS, e.g. db:10.0.0.5"))?;
        if names.trim().is_empty() || names.contains(['\n', '\t', '#']) {
            return Err(invalid(
                "the name part must be non-empty and contain no tab, newline or '#'",
            ));
        }
        let addr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| invalid("the address part is not an IPv4 or IPv6 address"))?;
        Ok(HostEntry {
            names: names.to_owned(),
            addr,
        })
    }
}

/// A legacy link's `/etc/hosts` line: `ADDR\tALIAS HOSTNAME [NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkHost {
    /// The linked container's address on the default bridge.
    pub addr: IpAddr,
    /// The alias given with `--link name:alias` (the name itself when no alias was given).
    pub alias: String,
    /// The linked container's hostname.
    pub hostname: String,
    /// The linked container's name (written only when it differs from the alias).
    pub name: String,
}

/// Everything a sandbox's `/etc/hosts` is made of.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostsFile {
    /// The sandbox's hostname (possibly a FQDN).
    pub hostname: String,
    /// Its domain name (`--domainname`), if any.
    pub domainname: Option<String>,
    /// `--add-host` entries, in the order given.
    pub extra_hosts: Vec<HostEntry>,
    /// Legacy links, in the order given.
    pub links: Vec<LinkHost>,
    /// The sandbox's own address on each network it joined, in join order (Docker writes one line
    /// per join). An endpoint's IPv4 address, or its IPv6 address if it has no IPv4 one.
    pub addresses: Vec<IpAddr>,
}

impl HostsFile {
    /// A hosts file for `hostname` with no entries yet.
    pub fn new(hostname: impl Into<String>) -> HostsFile {
        HostsFile {
            hostname: hostname.into(),
            ..HostsFile::default()
        }
    }

    /// The names of the sandbox's own lines: `fqdn host` when the hostname (with the domain name)
    /// has a dot, else the hostname alone.
    pub fn own_names(&self) -> String {
        let fqdn = match &self.domainname {
            Some(d) if !d.is_empty() => format!("{}.{d}", self.hostname),
            _ => self.hostname.clone(),
        };
        match fqdn.split_once('.') {
            Some((host, _)) => format!("{fqdn} {host}"),
            None => fqdn,
        }
    }

    /// The file's content.
    pub fn render(&self) -> String {
        let mut s = String::from(HOSTS_HEADER);
        for e in &self.extra_hosts {
            s.push_str(&format!("{}\t{}\n", e.addr, e.names));
        }
        for l in &self.links {
            let mut names = format!("{} {}", l.alias, l.hostname);
            if l.alias != l.name {
                names.push(' ');
                names.push_str(&l.name);
            }
            s.push_str(&format!("{}\t{names}\n", l.addr));
        }
        let own = self.own_names();
        for a in &self.addresses {
            s.push_str(&format!("{a}\t{own}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::tests::{REF_LINK_HOSTS, REF_USER_HOSTS};

    #[test]
    fn hosts_match_docker_references() {
        let mut h = HostsFile::new("f8cd272ac300");
        h.addresses.push("172.18.0.2".parse().unwrap());
        assert_eq!(h.render(), REF_USER_HOSTS);

        let mut h = HostsFile::new("f31e1f8c7c51");
        h.links.push(LinkHost {
            addr: "172.17.0.3".parse().unwrap(),
            alias: "pl".into(),
            hostname: "8e0f76c53156".into(),
            name: "plain".into(),
        });
        h.addresses.push("172.17.0.4".parse().unwrap());
        assert_eq!(h.render(), REF_LINK_HOSTS);
    }

    #[test]
    fn hosts_extra_hosts_domain_and_joins() {
        // Checked against Docker 20.10: --hostname bhost --domainname example.org, --add-host ...
        let mut h = HostsFile::new("bhost");
        h.domainname = Some("example.org".into());
        for e in ["foo:10.1.2.3", "bar baz:10.1.2.4", "v6h:fd00::5"] {
            h.extra_hosts.push(HostEntry::parse(e).unwrap());
        }
        h.addresses.push("172.18.0.3".parse().unwrap());
        let want = format!(
            "{HOSTS_HEADER}10.1.2.3\tfoo\n10.1.2.4\tbar baz\nfd00::5\tv6h\n172.18.0.3\tbhost.example.org bhost\n"
        );
        assert_eq!(h.render(), want);
        // a link without alias, and a second join
        let mut h = HostsFile::new("c0f0934714d6");
        h.links.push(LinkHost {
            addr: "172.17.0.2".parse().unwrap(),
            alias: "dnsh-plain".into(),
            hostname: "a3a4339c61e1".into(),
            name: "dnsh-plain".into(),
        });
        h.addresses.push("172.18.0.2".parse().unwrap());
        h.addresses.push("172.26.0.2".parse().unwrap());
        assert!(h.render().ends_with(
            "172.17.0.2\tdnsh-plain a3a4339c61e1\n172.18.0.2\tc0f0934714d6\n172.26.0.2\tc0f0934714d6\n"
        ));
        assert!(HostEntry::parse("nocolon").is_err());
        assert!(HostEntry::parse("x:notanip").is_err());
        assert!(HostEntry::parse(":1.2.3.4").is_err());
    }
}

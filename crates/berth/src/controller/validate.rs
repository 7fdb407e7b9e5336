//! Checks of names and DNS settings before anything is made (pure).

use super::*;

/// Docker's rule for object names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub(super) fn validate_name(kind: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= 255;
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "invalid {kind} name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

/// A hostname or domain name as Docker accepts them (RFC 1123 labels separated by dots), so
/// nothing but a name can reach `/etc/hosts`.
pub(super) fn validate_host_name(what: &str, name: &str) -> Result<()> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "invalid {what} {name:?}: expected dot-separated labels of letters, digits and '-' (at most 63 characters each, 253 in all)"
        )))
    }
}

/// Checks a sandbox's hostname, domain name, `--add-host` names and DNS settings before anything
/// is made: the same rules `/etc/hosts` and `/etc/resolv.conf` planning apply later.
pub(super) fn validate_sandbox_dns(req: &SandboxCreate) -> Result<()> {
    if let Some(h) = &req.hostname {
        validate_host_name("hostname", h)?;
    }
    if let Some(d) = &req.domainname {
        validate_host_name("domainname", d)?;
    }
    for h in &req.extra_hosts {
        // Docker takes any name here (underscores included); only what would break the file's
        // line structure is refused.
        if h.names.trim().is_empty() || h.names.chars().any(|c| c.is_control() || c == '#') {
            return Err(Error::InvalidRequest(format!(
                "invalid --add-host names {:?}: expected names without control characters or '#'",
                h.names
            )));
        }
    }
    for d in &req.dns.search {
        if d != "." {
            validate_host_name("--dns-search domain", d.strip_suffix('.').unwrap_or(d))?;
        }
    }
    for o in &req.dns.options {
        if o.is_empty() || o.chars().any(|c| c.is_whitespace() || c == '#') {
            return Err(Error::InvalidRequest(format!(
                "invalid --dns-option {o:?}: expected one word such as ndots:2 or rotate"
            )));
        }
    }
    for kv in &req.env {
        let key = kv.split_once('=').map(|(k, _)| k);
        if key.is_none_or(str::is_empty) || kv.contains('\0') {
            return Err(Error::InvalidRequest(format!(
                "invalid environment variable {kv:?}: expected KEY=VALUE, with a KEY and no NUL"
            )));
        }
    }
    for mode in [ResolvMode::Embedded, ResolvMode::Direct { ipv6: true }] {
        plan_resolv_conf("", &req.dns, mode)
            .map_err(|e| Error::InvalidRequest(format!("sandbox {}: {e}", req.name)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["isolated_nw", "a", "web.1", "x-y_z", "0abc"] {
            assert!(validate_name("network", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "_a", ".a", "a b", "a/b", "a:b", "é"] {
            assert!(validate_name("network", bad).is_err(), "{bad:?}");
        }
    }
}

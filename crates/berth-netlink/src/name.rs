//! Validation of interface and namespace names, before any request is sent.

use crate::error::{Error, Result};

/// The kernel's limit on interface names, without the terminating NUL (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Checks an interface name the way the kernel's `dev_valid_name` does, so a bad name never reaches it:
/// 1 to 15 bytes, not `.` or `..`, no `/`, `:`, whitespace or NUL.
pub fn validate_ifname(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("an interface name cannot be empty");
    }
    if name.len() > MAX_IFNAME_LEN {
        return bad("an interface name is at most 15 bytes long");
    }
    if name == "." || name == ".." {
        return bad("an interface name cannot be \".\" or \"..\"");
    }
    if name.contains('/') {
        return bad("an interface name cannot contain '/'");
    }
    if name.contains(':') {
        return bad("an interface name cannot contain ':' (alias syntax)");
    }
    if name.contains('\0') {
        return bad("an interface name cannot contain NUL");
    }
    if name.chars().any(char::is_whitespace) {
        return bad("an interface name cannot contain whitespace");
    }
    Ok(())
}

/// Checks a namespace name (a file name under the run directory): 1 to 255 bytes, not `.` or `..`,
/// no `/` or NUL.
pub fn validate_netns_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("a namespace name cannot be empty");
    }
    if name.len() > 255 {
        return bad("a namespace name is at most 255 bytes long");
    }
    if name == "." || name == ".." {
        return bad("a namespace name cannot be \".\" or \"..\"");
    }
    if name.contains('/') || name.contains('\0') {
        return bad("a namespace name cannot contain '/' or NUL");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        for ok in ["eth0", "br-0123456789ab", "a", "veth1234567890a", "x_y.z-1"] {
            assert!(validate_ifname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "0123456789abcdef",
            ".",
            "..",
            "a/b",
            "a b",
            "a\tb",
            "a\0b",
            "eth0:1",
            "a\u{a0}b",
        ] {
            let err = validate_ifname(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{bad:?}");
            assert!(err.to_string().contains("invalid name"));
        }
    }

    #[test]
    fn namespace_names() {
        assert!(validate_netns_name("berth-test-1").is_ok());
        for bad in ["", ".", "..", "a/b", "a\0"] {
            assert!(validate_netns_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_netns_name(&"x".repeat(256)).is_err());
    }
}

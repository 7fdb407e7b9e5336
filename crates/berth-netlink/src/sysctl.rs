//! Network sysctls (`/proc/sys/net/...`) of a given namespace.
//!
//! `/proc/sys/net` shows the namespace of the thread that opens the file, so every read and write
//! happens on a thread inside the namespace ([`Netns::run`]). Keys are confined to
//! `/proc/sys/net`: the dotted form (`net.ipv4.ip_forward`) and the slashed form
//! (`net/ipv4/conf/eth0.100/forwarding`, for names containing dots) are accepted; absolute paths,
//! `.`/`..` and empty components are refused before anything is opened.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use crate::Netns;
use crate::error::{Error, Result};

/// Where network sysctls live.
const ROOT: &str = "/proc/sys";

/// Maps a sysctl key to its file under `/proc/sys/net`, refusing anything that could leave it.
pub fn sysctl_path(key: &str) -> Result<PathBuf> {
    let bad = |reason: &str| Error::InvalidArgument {
        object: format!("sysctl key {key:?}"),
        message: format!(
            "{reason}; give a key under net, e.g. net.ipv4.ip_forward or net/ipv6/conf/eth0/accept_dad"
        ),
    };
    if key.is_empty() {
        return Err(bad("the key is empty"));
    }
    if key.starts_with('/') {
        return Err(bad("absolute paths are not keys"));
    }
    if key.contains('\0') {
        return Err(bad("the key contains NUL"));
    }
    let parts: Vec<&str> = if key.contains('/') {
        key.split('/').collect()
    } else {
        key.split('.').collect()
    };
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad("the key has an empty component"));
    }
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(bad("the key contains '.' or '..' as a component"));
    }
    if parts.first() != Some(&"net") || parts.len() < 2 {
        return Err(bad("only keys under net are handled"));
    }
    let mut path = PathBuf::from(ROOT);
    path.extend(parts);
    Ok(path)
}

fn map_io(key: &str, what: &str, e: io::Error) -> Error {
    let object = format!("sysctl {key}");
    match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound { object },
        io::ErrorKind::PermissionDenied => Error::PermissionDenied { object },
        _ => match e.raw_os_error() {
            Some(errno @ (libc::EINVAL | libc::ERANGE)) => Error::from_errno(errno, object),
            _ => Error::io(format!("{what} sysctl {key}"), e),
        },
    }
}

/// Reads a sysctl inside `ns` and returns its value without the trailing newline.
/// [`Error::NotFound`] if the key does not exist there (e.g. `net.bridge.*` without
/// `br_netfilter`).
pub fn sysctl_get(ns: &Netns, key: &str) -> Result<String> {
    let path = sysctl_path(key)?;
    let read = ns.run(|| fs::read_to_string(&path))?;
    let value = read.map_err(|e| map_io(key, "reading", e))?;
    Ok(value.trim_end_matches('\n').to_owned())
}

/// Writes a sysctl inside `ns`. The value must not contain NUL or newlines.
pub fn sysctl_set(ns: &Netns, key: &str, value: &str) -> Result<()> {
    let path = sysctl_path(key)?;
    if value.contains(['\0', '\n']) {
        return Err(Error::InvalidArgument {
            object: format!("sysctl {key}"),
            message: format!("the value {value:?} contains NUL or a newline"),
        });
    }
    let written = ns.run(|| {
        let mut f = OpenOptions::new().write(true).open(&path)?;
        f.write_all(value.as_bytes())
    })?;
    written.map_err(|e| map_io(key, "writing", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_under_proc_sys_net() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.100/forwarding").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/forwarding")
        );
        for bad in [
            "",
            "/proc/sys/net/ipv4/ip_forward",
            "net..ipv4",
            "net/../kernel/hostname",
            "net/ipv4/../../kernel",
            "net/./ipv4",
            "kernel.hostname",
            "net",
            "net.ipv4.",
            ".net.ipv4",
            "net/ipv4//x",
            "net.ipv4\0.x",
        ] {
            let e = sysctl_path(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument { .. }), "{bad:?}");
        }
    }
}

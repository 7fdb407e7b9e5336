//! The berth sandbox of a container: one per container (its namespace), named from the
//! container id, reversibly, so that GC can tell which sandboxes are berth-cni's and whose. Each
//! attachment (the spec's key: network, container id, interface name) is one of the sandbox's
//! endpoints: the one on the CNI network's berth network, with the interface name as its
//! interface. A container on several networks is one sandbox with several endpoints, so berth
//! keeps its default route as Docker does (the first network, by name, that has a gateway) as
//! attachments come and go.
//!
//! The name is `cni_<container id>`, with every byte of the id outside `[A-Za-z0-9-]` written
//! as `.` and two lower-case hex digits, which keeps it within berth's (and Docker's) name rule
//! `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.

use std::fmt::Write as _;

use crate::env::clip;
use crate::error::CniError;

/// The longest sandbox name berth takes.
const MAX_NAME: usize = 255;
/// Every container's sandbox name starts with it.
const PREFIX: &str = "cni_";

/// The berth sandbox name of a container; an error (code 7) when it would be longer than berth
/// allows.
pub fn sandbox_name(container_id: &str) -> Result<String, CniError> {
    let mut name = String::from(PREFIX);
    escape(container_id, &mut name);
    if name.len() > MAX_NAME {
        return Err(CniError::config(format!(
            "container id {:?} names a sandbox longer than berth's {MAX_NAME} characters",
            clip(container_id)
        )));
    }
    Ok(name)
}

/// The container id a sandbox name was made from; None for any other name.
pub fn container_id(sandbox_name: &str) -> Option<String> {
    unescape(sandbox_name.strip_prefix(PREFIX)?).filter(|id| !id.is_empty())
}

fn escape(part: &str, out: &mut String) {
    for b in part.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, ".{b:02x}");
        }
    }
}

fn unescape(part: &str) -> Option<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'.' => {
                let hex = part.get(i + 1..i + 3)?;
                if !hex
                    .bytes()
                    .all(|h| h.is_ascii_digit() || (b'a'..=b'f').contains(&h))
                {
                    return None;
                }
                let b = u8::from_str_radix(hex, 16).ok()?;
                // Only what escape writes: the canonical form, one name per key.
                if b.is_ascii_alphanumeric() || b == b'-' {
                    return None;
                }
                out.push(b);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b == b'-' => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn typical_names_stay_readable() {
        let name = sandbox_name("3f6940ab5ab4").unwrap_or_default();
        assert_eq!(name, "cni_3f6940ab5ab4");
        assert_eq!(container_id(&name).as_deref(), Some("3f6940ab5ab4"));
        let name = sandbox_name("a.b_c").unwrap_or_default();
        assert_eq!(name, "cni_a.2eb.5fc");
        assert_eq!(container_id(&name).as_deref(), Some("a.b_c"));
    }

    #[test]
    fn other_names_are_not_containers() {
        for n in [
            "web", "cni_a_b", "cni_a.zz", "cni_a.2", "cni_a.41", "cni_a.2E", "cni_",
        ] {
            assert_eq!(container_id(n), None, "{n}");
        }
    }

    #[test]
    fn too_long_is_an_error() {
        assert!(sandbox_name(&"c".repeat(251)).is_ok());
        assert!(sandbox_name(&"c".repeat(252)).is_err());
    }

    proptest! {
        #[test]
        fn names_round_trip_and_follow_berths_rule(cid in "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,300}") {
            if let Ok(name) = sandbox_name(&cid) {
                prop_assert!(name.len() <= MAX_NAME);
                prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
                prop_assert_eq!(container_id(&name), Some(cid));
            }
        }
    }
}

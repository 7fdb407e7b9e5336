//! A sandbox's `/etc/hosts` and `/etc/resolv.conf`, byte for byte in Docker 20.10's format, and
//! an atomic writer for them.
//!
//! Renderers are pure functions of their inputs. [`SandboxFiles`] writes them into a directory the
//! caller chooses, each through a temporary file renamed over the old one, so a reader never sees a
//! half-written file. Note that a rename replaces the file's inode: an engine that bind-mounts the
//! *file* into a container keeps seeing the old inode, so it should mount the directory, or copy
//! the content in, or re-mount after an update.
//!
//! The parts: `hosts` renders `/etc/hosts` (with `--add-host` entries and legacy links),
//! `resolv` plans `/etc/resolv.conf` and the embedded server's upstreams from the host's file and
//! the sandbox's settings, and `sandbox` writes them atomically into the sandbox's directory.

mod hosts;
mod resolv;
mod sandbox;

pub use hosts::{HOSTS_HEADER, HostEntry, HostsFile, LinkHost};
pub use resolv::{
    DnsSettings, EMBEDDED_DNS_ADDRESS, FALLBACK_NAMESERVERS_V4, FALLBACK_NAMESERVERS_V6,
    MAX_UPSTREAMS, ResolvMode, ResolvPlan, build_resolv_conf, filter_host_resolv_conf,
    plan_resolv_conf,
};
pub use sandbox::{SandboxFiles, write_atomic};

/// Docker 20.10's files, shared by the tests of the parts.
#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    // Captured from Docker 20.10 (shared/reference/docker-20.10-*).
    pub(super) const REF_USER_HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n172.18.0.2\tf8cd272ac300\n";
    pub(super) const REF_LINK_HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n172.17.0.3\tpl 8e0f76c53156 plain\n172.17.0.4\tf31e1f8c7c51\n";
    pub(super) const REF_USER_RESOLV: &str = "nameserver 127.0.0.11\noptions ndots:0\n";

    /// The captures in shared/reference, when the checkout has them beside it.
    #[test]
    fn inline_references_equal_the_captures() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference");
        for (file, inline) in [
            ("docker-20.10-userdefined-hosts", REF_USER_HOSTS),
            ("docker-20.10-link-hosts", REF_LINK_HOSTS),
            ("docker-20.10-userdefined-resolv.conf", REF_USER_RESOLV),
        ] {
            match fs::read_to_string(dir.join(file)) {
                Ok(captured) => assert_eq!(captured, inline, "{file}"),
                Err(e) => eprintln!("note: {file} not beside the checkout ({e}); inline copy used"),
            }
        }
    }
}

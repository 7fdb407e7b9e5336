//! One berth firewall per network namespace.
//!
//! Every berth firewall uses the same chain and table names (`BERTH-*`, the nft table `berth`),
//! whatever its data root, and a firewall's start reconcile removes rules it does not know. A
//! second berth firewall in a namespace (a daemon beside `berth plugin serve`, two data roots, an
//! embedding engine beside the daemon) would therefore delete the first one's rules, silently.
//! [`NamespaceClaim`] makes that a clear error instead: it binds the abstract Unix socket
//! `@berth/firewall`, which exists once per network namespace and goes with the process that holds
//! it (also when it is killed), so a claim never outlives its holder. A second claim in the same
//! namespace fails with [`Error::NamespaceClaimed`], naming the holder's pid and command line.
//! A claim that may be going away (held by this process, or by one that is gone: a copy of the
//! socket lives on in a child forked by another thread until that child runs `exec`) is waited
//! for, up to a second, before the refusal.

use std::io;
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

use berth_netlink::Netns;

use crate::{Error, Result};

/// The abstract socket name (shown by `ss -xl` as `@berth/firewall`).
pub const CLAIM_SOCKET: &str = "berth/firewall";

/// Who holds the claim of a namespace, as far as the kernel tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimHolder {
    /// The holder's pid, in the caller's pid namespace (0 when it is in none the caller sees).
    pub pid: i32,
    /// The holder's command line (`/proc/<pid>/cmdline`, arguments joined by spaces), when
    /// readable.
    pub command: Option<String>,
}

impl std::fmt::Display for ClaimHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if let Some(c) = &self.command {
            write!(f, " ({c})")?;
        }
        Ok(())
    }
}

/// The claim of one network namespace's berth firewall, held for as long as this value lives.
/// Take it before changing anything in the namespace; drop it after the last change.
#[derive(Debug)]
pub struct NamespaceClaim {
    _socket: UnixListener,
}

impl NamespaceClaim {
    /// Claims `host`'s firewall for this process. Fails with [`Error::NamespaceClaimed`] when
    /// another berth firewall (in this process or another) holds it.
    pub fn take(host: &Netns) -> Result<NamespaceClaim> {
        let addr = SocketAddr::from_abstract_name(CLAIM_SOCKET)
            .map_err(|e| Error::io("naming the firewall's claim socket", e))?;
        let deadline = std::time::Instant::now() + RELEASE_WAIT;
        loop {
            // The socket belongs to the namespace of the thread that makes it.
            match host.run(|| UnixListener::bind_addr(&addr))? {
                Ok(socket) => return Ok(NamespaceClaim { _socket: socket }),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    let holder = host.run(|| holder(&addr)).ok().flatten();
                    if std::time::Instant::now() < deadline && holder.as_ref().is_none_or(going) {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        continue;
                    }
                    return Err(Error::NamespaceClaimed {
                        netns: crate::exec::describe(host),
                        holder,
                    });
                }
                Err(e) => {
                    return Err(Error::io(
                        format!(
                            "claiming the berth firewall of {}",
                            crate::exec::describe(host)
                        ),
                        e,
                    ));
                }
            }
        }
    }
}

/// How long a claim waits for one that may be going away (see [`going`]) before it refuses.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether a claim may be on its way out rather than held: its process is this one (a
/// controller being dropped, or a child forked by another thread that holds a copy of the
/// socket until it runs `exec`) or is gone (its forked children hold the copy likewise). A
/// claim of another live process is refused at once.
fn going(holder: &ClaimHolder) -> bool {
    u32::try_from(holder.pid).is_ok_and(|pid| pid == std::process::id())
        || !std::path::Path::new(&format!("/proc/{}", holder.pid)).exists()
}

/// The process listening on the claim socket: its credentials as the kernel recorded them at
/// `listen` (`SO_PEERCRED` of a connection to it).
fn holder(addr: &SocketAddr) -> Option<ClaimHolder> {
    let stream = UnixStream::connect_addr(addr).ok()?;
    let cred =
        nix::sys::socket::getsockopt(&stream.as_fd(), nix::sys::socket::sockopt::PeerCredentials)
            .ok()?;
    let pid = cred.pid();
    let command = std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|c| !c.is_empty());
    Some(ClaimHolder { pid, command })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_holder_reads_as_pid_and_command() {
        let h = ClaimHolder {
            pid: 42,
            command: Some("berth daemon".into()),
        };
        assert_eq!(h.to_string(), "pid 42 (berth daemon)");
        let h = ClaimHolder {
            pid: 7,
            command: None,
        };
        assert_eq!(h.to_string(), "pid 7");
    }
}

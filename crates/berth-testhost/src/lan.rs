//! LAN fixtures for drivers whose sandboxes sit on the host's LAN (macvlan, ipvlan): a LAN peer
//! whose side of the wire is a switch (a Linux bridge, optionally reflecting frames back out of
//! the port they came in on, as an 802.1Qbg VEPA switch does), 802.1q VLAN sub-interfaces on a
//! LAN peer, a check of the kernel for a link kind, and packet captures. Set up with iproute2 and
//! tcpdump, independently of berth-netlink, like the rest of this crate.
//!
//! ```no_run
//! use berth_testhost::TestHost;
//!
//! let host = TestHost::new().expect("a test host (run as root)");
//! // The peer's eth0 is a port of its bridge br0, which sends frames back out of eth0.
//! let switch = host
//!     .add_switched_lan_peer("192.0.2.1/24", "192.0.2.254/24", true)
//!     .expect("a LAN peer behind a reflecting switch");
//! assert!(switch.ping("192.0.2.1"));
//! ```

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use crate::{Error, LanPeer, Result, TestHost};

/// The bridge of a switched LAN peer (see [`TestHost::add_switched_lan_peer`]).
pub const SWITCH_BRIDGE: &str = "br0";

impl TestHost {
    /// Attaches a LAN peer like [`TestHost::add_lan_peer`], whose side of the wire is a switch:
    /// its `eth0` is a port of the bridge [`SWITCH_BRIDGE`], which holds `peer_addr`. With
    /// `hairpin`, the port sends frames back out of the port they came in on (`hairpin on`,
    /// the reflective relay of an 802.1Qbg switch), so that two macvlan interfaces in VEPA mode
    /// on the host's side reach each other through it; without, the switch never does.
    pub fn add_switched_lan_peer(
        &self,
        host_addr: &str,
        peer_addr: &str,
        hairpin: bool,
    ) -> Result<LanPeer> {
        let peer = self.add_lan_peer(host_addr, peer_addr)?;
        let h = peer.host();
        h.ip(&["addr", "flush", "dev", "eth0"])?;
        h.ip(&[
            "link",
            "add",
            SWITCH_BRIDGE,
            "type",
            "bridge",
            "stp_state",
            "0",
        ])?;
        h.ip(&["link", "set", "eth0", "master", SWITCH_BRIDGE])?;
        if hairpin {
            h.ip(&[
                "link",
                "set",
                "dev",
                "eth0",
                "type",
                "bridge_slave",
                "hairpin",
                "on",
            ])?;
        }
        h.ip(&["addr", "add", peer_addr, "dev", SWITCH_BRIDGE, "nodad"])
            .or_else(|_| h.ip(&["addr", "add", peer_addr, "dev", SWITCH_BRIDGE]))?;
        h.ip(&["link", "set", SWITCH_BRIDGE, "up"])?;
        Ok(peer)
    }

    /// Whether the kernel can make links of `kind` (`vlan`, `ipvlan`, `macvlan`, `dummy`, ...):
    /// tried with iproute2 on a throwaway veth pair in this namespace, which is deleted again.
    pub fn kernel_supports(&self, kind: &str) -> Result<bool> {
        let (parent, peer, child) = ("kprobe0", "kprobe1", "kprobe2");
        self.ip(&["link", "add", parent, "type", "veth", "peer", "name", peer])?;
        let mut args = vec!["link", "add", "link", parent, "name", child, "type", kind];
        if kind == "vlan" {
            args.extend(["id", "1"]);
        }
        let made = self.ip(&args).is_ok();
        // Deleting the pair deletes the child with it.
        self.ip(&["link", "del", parent])?;
        Ok(made)
    }
}

impl LanPeer {
    /// Adds the 802.1q sub-interface `eth0.VID` to the peer's `eth0`, with `addr` (CIDR) and
    /// up; returns its name. Fails where the kernel has no `8021q` (see
    /// [`TestHost::kernel_supports`]).
    pub fn add_vlan(&self, vid: u16, addr: &str) -> Result<String> {
        let name = format!("eth0.{vid}");
        let id = vid.to_string();
        let h = self.host();
        h.ip(&[
            "link", "add", "link", "eth0", "name", &name, "type", "vlan", "id", &id,
        ])?;
        h.ip(&["addr", "add", addr, "dev", &name, "nodad"])
            .or_else(|_| h.ip(&["addr", "add", addr, "dev", &name]))?;
        h.ip(&["link", "set", &name, "up"])?;
        Ok(name)
    }
}

/// A packet capture (`tcpdump -e -n`: link-level headers, so VLAN tags and MAC addresses show)
/// on one interface of a namespace, from [`Capture::start`] (which returns once tcpdump
/// listens) to [`Capture::finish`]. Stopped on drop.
#[derive(Debug)]
pub struct Capture {
    child: Option<Child>,
    command: String,
}

impl Capture {
    /// Starts capturing on `iface` in `host`, with a tcpdump filter (`["icmp"]`, or empty).
    pub fn start(host: &TestHost, iface: &str, filter: &[&str]) -> Result<Capture> {
        let mut cmd: Command = host.command("tcpdump");
        cmd.args(["-l", "-e", "-n", "--immediate-mode", "-i", iface])
            .args(filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let command = format!("tcpdump -e -n -i {iface} {}", filter.join(" "));
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
        let Some(stderr) = child.stderr.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Command {
                command,
                status: "started".into(),
                stderr: "no standard error to read".into(),
            });
        };
        // tcpdump says "listening on IFACE" once its socket is bound: traffic sent after that
        // is seen.
        let mut said = String::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            said.push_str(&line);
            said.push('\n');
            if line.contains("listening on") {
                return Ok(Capture {
                    child: Some(child),
                    command,
                });
            }
        }
        let status = child
            .wait()
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string());
        Err(Error::Command {
            command,
            status,
            stderr: said,
        })
    }

    /// Stops the capture and returns what it printed: one line per packet.
    pub fn finish(mut self) -> Result<String> {
        let Some(mut child) = self.child.take() else {
            return Ok(String::new());
        };
        // SIGINT: tcpdump prints what it has and exits.
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            stdout
                .read_to_string(&mut out)
                .map_err(|source| Error::Spawn {
                    command: self.command.clone(),
                    source,
                })?;
        }
        let _ = child.wait();
        Ok(out)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

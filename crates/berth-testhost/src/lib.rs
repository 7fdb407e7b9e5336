//! Throwaway test hosts for berth's kernel tests.
//!
//! A [`TestHost`] is a fresh network namespace with loopback up and a unique name, deleted on drop
//! (also when the test panics). It plays "the host" for the code under test. [`LanPeer`]s are more
//! namespaces wired to a test host with a veth pair, playing machines on the host's LAN. Everything
//! here is set up with iproute2 (`ip`), independently of berth-netlink, so that tests of berth's own
//! kernel code do not trust that code to build their fixtures. Traffic helpers ([`traffic`]) open
//! real sockets inside the namespaces.
//!
//! ```no_run
//! use berth_testhost::TestHost;
//!
//! let host = TestHost::new().expect("a test host (run as root)");
//! let peer = host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").expect("a LAN peer");
//! assert!(peer.ping("192.0.2.1"));
//! // host and peer are deleted when they go out of scope
//! ```

pub mod cluster;
pub mod driver_suite;
pub mod etcd;
pub mod lan;
pub mod logs;
pub mod refdocker;
pub mod state_dir;
pub mod traffic;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use berth_netlink::Netns;

pub use berth_netlink;
pub use state_dir::StateDir;

/// Prefix of every namespace a test host or LAN peer creates (`berth-t<pid>-<n>`).
pub const NAME_PREFIX: &str = "berth-t";

/// What can go wrong while building a test fixture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A namespace operation failed (often: not running as root).
    #[error("test host namespace: {0}")]
    Netns(#[from] berth_netlink::Error),
    /// A setup command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A setup command could not be started (is iproute2 installed?).
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias of berth-testhost.
pub type Result<T, E = Error> = std::result::Result<T, E>;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Allocates a namespace name no other test of this or any concurrent process uses.
fn unique_name() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{NAME_PREFIX}{}-{n}", std::process::id())
}

/// Creates a uniquely named namespace, skipping names left over by a crashed earlier run.
fn create_unique_netns() -> Result<(String, Netns)> {
    loop {
        let name = unique_name();
        match Netns::create(&name) {
            Ok(ns) => return Ok((name, ns)),
            Err(e) if e.is_exists() => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs a fixture command and checks it succeeded.
fn checked(cmd: Command) -> Result<Output> {
    checked_with_input(cmd, None)
}

/// [`checked`], with `input` written to the program's standard input.
fn checked_with_input(mut cmd: Command, input: Option<&str>) -> Result<Output> {
    let line = format!("{cmd:?}");
    let spawn_err = |source| Error::Spawn {
        command: line.clone(),
        source,
    };
    let out = match input {
        None => cmd.output().map_err(spawn_err)?,
        Some(text) => {
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(spawn_err)?;
            if let Some(mut stdin) = child.stdin.take() {
                std::io::Write::write_all(&mut stdin, text.as_bytes()).map_err(spawn_err)?;
            }
            child.wait_with_output().map_err(spawn_err)?
        }
    };
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::Command {
            command: line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// A throwaway network namespace playing a host. Deleted (with its LAN peers) on drop.
#[derive(Debug)]
pub struct TestHost {
    name: String,
    ns: Option<Netns>,
}

impl TestHost {
    /// Creates a test host: a fresh namespace with a unique name and loopback up.
    ///
    /// Fails loudly (never skips) when the namespace cannot be made, e.g. when not running as root.
    pub fn new() -> Result<TestHost> {
        let (name, ns) = create_unique_netns()?;
        let host = TestHost { name, ns: Some(ns) };
        host.ip(&["link", "set", "lo", "up"])?;
        Ok(host)
    }

    /// The namespace's name (under `/run/netns`, usable with `ip -n NAME` and `ip netns exec NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace handle.
    pub fn netns(&self) -> &Netns {
        self.ns
            .as_ref()
            .expect("a live test host always has its namespace")
    }

    /// The bind-mount path of the namespace.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(berth_netlink::DEFAULT_NETNS_DIR).join(&self.name)
    }

    /// A command that runs inside this host's namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        self.netns().command(program)
    }

    /// Runs `ip -n NAME ARGS...` (iproute2, in this namespace) and checks it succeeded.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("ip");
        cmd.arg("-n").arg(&self.name).args(args);
        let out = checked(cmd)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// What berth may change in this namespace, as the tools show it, sorted: links and
    /// addresses, iptables and ip6tables rules, user chains and non-ACCEPT policies (empty
    /// tables with ACCEPT built-in chains are no rule), berth's nftables tables, the forwarding
    /// sysctls, and the mounts under `root` (an exec root). Two snapshots compare equal when
    /// a controller left the namespace as it found it.
    pub fn state_snapshot(&self, root: &std::path::Path) -> Result<Vec<String>> {
        let mut s = Vec::new();
        for l in self.ip(&["-o", "link"])?.lines() {
            s.push(format!(
                "link {}",
                l.split_whitespace().nth(1).unwrap_or("")
            ));
        }
        for l in self.ip(&["-o", "addr"])?.lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            s.push(format!(
                "addr {} {}",
                w.get(1).unwrap_or(&""),
                w.get(3).unwrap_or(&"")
            ));
        }
        for save in ["iptables-save", "ip6tables-save"] {
            for l in self.run(save, &[])?.lines() {
                let chain_decl = l.starts_with(':') && !l.contains(" ACCEPT ");
                if l.starts_with("-A") || chain_decl {
                    s.push(format!("{save}: {l}"));
                }
            }
        }
        for l in self.run("nft", &["list", "tables"])?.lines() {
            if l.contains("berth") {
                s.push(format!("nft: {l}"));
            }
        }
        for key in ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"] {
            let v = self.run("cat", &[&format!("/proc/sys/{key}")])?;
            s.push(format!("{key}={}", v.trim()));
        }
        let root = root.display().to_string();
        let mounts =
            std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| Error::Spawn {
                command: "read /proc/self/mountinfo".into(),
                source,
            })?;
        for l in mounts.lines() {
            if l.contains(&root) {
                s.push(format!(
                    "mount {}",
                    l.split_whitespace().nth(4).unwrap_or("")
                ));
            }
        }
        s.sort();
        Ok(s)
    }

    /// Runs a program with arguments inside the namespace and checks it succeeded; returns stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        let mut cmd = self.command(program);
        cmd.args(args);
        let out = checked(cmd)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a program inside the namespace with `input` on its standard input (`nft -f -`,
    /// `ip -batch -`) and checks it succeeded; returns stdout.
    pub fn run_with_input(&self, program: &str, args: &[&str], input: &str) -> Result<String> {
        let mut cmd = self.command(program);
        cmd.args(args);
        let out = checked_with_input(cmd, Some(input))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a program inside the namespace and returns its output, whether it succeeded or not.
    pub fn output(&self, program: &str, args: &[&str]) -> Result<Output> {
        let mut cmd = self.command(program);
        cmd.args(args);
        cmd.output().map_err(|source| Error::Spawn {
            command: format!("{program} {}", args.join(" ")),
            source,
        })
    }

    /// Starts a program inside the namespace in the background; it is killed when the guard drops.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Result<Background> {
        let mut cmd = self.command(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            command: format!("{program} {}", args.join(" ")),
            source,
        })?;
        Ok(Background { child })
    }

    /// Runs a closure with the calling thread inside the namespace (see `Netns::run`).
    pub fn exec<F, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        Ok(self.netns().run(f)?)
    }

    /// Sends one ICMP echo (busybox ping, 1 s timeout) from inside this namespace; true if answered.
    pub fn ping(&self, addr: &str) -> bool {
        ping_in(self.netns(), addr)
    }

    /// Attaches a LAN peer: a new namespace joined to this host by a veth pair. The host side is named
    /// `lanN` and gets `host_addr`; the peer side is `eth0` in the peer and gets `peer_addr` (CIDR
    /// notation, e.g. `192.0.2.1/24`). Both ends are up. The peer has no default route unless
    /// [`LanPeer::route_via`] adds one.
    pub fn add_lan_peer(&self, host_addr: &str, peer_addr: &str) -> Result<LanPeer> {
        let (peer_name, peer_ns) = create_unique_netns()?;
        let mut peer = LanPeer {
            host: TestHost {
                name: peer_name,
                ns: Some(peer_ns),
            },
            host_if: String::new(),
        };
        let index = COUNTER.fetch_add(1, Ordering::Relaxed);
        let host_if = format!("lan{index}");
        self.ip(&[
            "link",
            "add",
            &host_if,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &peer.host.name,
        ])?;
        peer.host_if = host_if.clone();
        self.ip(&["addr", "add", host_addr, "dev", &host_if, "nodad"])
            .or_else(|_| self.ip(&["addr", "add", host_addr, "dev", &host_if]))?;
        self.ip(&["link", "set", &host_if, "up"])?;
        peer.host.ip(&["link", "set", "lo", "up"])?;
        peer.host
            .ip(&["addr", "add", peer_addr, "dev", "eth0", "nodad"])
            .or_else(|_| peer.host.ip(&["addr", "add", peer_addr, "dev", "eth0"]))?;
        peer.host.ip(&["link", "set", "eth0", "up"])?;
        Ok(peer)
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if let Some(ns) = self.ns.take() {
            if let Err(e) = ns.delete() {
                eprintln!(
                    "berth-testhost: could not delete namespace {}: {e}",
                    self.name
                );
            }
        }
    }
}

/// A namespace on the test host's LAN, joined to it by a veth pair. Deleted on drop.
#[derive(Debug)]
pub struct LanPeer {
    host: TestHost,
    host_if: String,
}

impl LanPeer {
    /// The peer as a host of its own (run commands, open sockets, ping from it).
    pub fn host(&self) -> &TestHost {
        &self.host
    }

    /// The name of the veth end on the test host's side.
    pub fn host_interface(&self) -> &str {
        &self.host_if
    }

    /// Adds a route on the peer: `dest` (CIDR or `default`) via `gateway`.
    pub fn route_via(&self, dest: &str, gateway: &str) -> Result<()> {
        self.host.ip(&["route", "add", dest, "via", gateway])?;
        Ok(())
    }

    /// Pings `addr` from the peer; true if answered.
    pub fn ping(&self, addr: &str) -> bool {
        self.host.ping(addr)
    }
}

impl std::ops::Deref for LanPeer {
    type Target = TestHost;
    fn deref(&self) -> &TestHost {
        &self.host
    }
}

/// A background process inside a namespace, killed and reaped on drop.
#[derive(Debug)]
pub struct Background {
    child: Child,
}

impl Background {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `max_bytes` of the file at `path` (a server's log), for error messages; `(no log)`
/// when it cannot be read.
pub fn file_tail(path: &std::path::Path, max_bytes: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::from("(no log)");
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Sends one ICMP echo from inside `ns` (busybox ping, 1 s timeout); true if answered.
pub fn ping_in(ns: &Netns, addr: &str) -> bool {
    let v6 = addr.contains(':');
    let mut cmd = ns.command("busybox");
    cmd.arg(if v6 { "ping6" } else { "ping" })
        .args(["-c", "1", "-W", "1", addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.status().map(|s| s.success()).unwrap_or(false)
}

/// Makes `ns` send what it addresses to 127.0.0.1 out of `dev` to the gateway `gw`, and accept
/// answers from 127.0.0.1 there: the frames an attacker writes by hand (to the gateway's MAC,
/// IP destination 127.0.0.1), made by the namespace's own stack so that real TCP and UDP sockets
/// can use them. The route to 127.0.0.1 sits in a table looked up before the local one;
/// `route_localnet` lets the answers (from 127.0.0.1) in.
pub fn route_loopback_via(ns: &Netns, dev: &str, gw: &str) -> Result<()> {
    let sysctl = format!("net.ipv4.conf.{dev}.route_localnet=1");
    let table = ["table", "100"];
    let steps: [Vec<&str>; 5] = [
        vec!["sysctl", "-qw", &sysctl],
        [
            &["ip", "route", "add", "127.0.0.1/32", "via", gw, "dev", dev][..],
            &table,
        ]
        .concat(),
        vec![
            "ip",
            "rule",
            "add",
            "to",
            "127.0.0.1/32",
            "lookup",
            "100",
            "pref",
            "10",
        ],
        vec!["ip", "rule", "add", "pref", "100", "lookup", "local"],
        vec!["ip", "rule", "del", "pref", "0"],
    ];
    for step in steps {
        let mut cmd = ns.command(step[0]);
        cmd.args(&step[1..]);
        checked(cmd)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let a = unique_name();
        let b = unique_name();
        assert_ne!(a, b);
        assert!(a.starts_with(NAME_PREFIX));
    }
}

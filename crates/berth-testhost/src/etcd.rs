//! A throwaway etcd server inside a test namespace, for the tests of berth-store's etcd backend.
//!
//! [`Etcd::start`] runs Debian's `etcd` (package etcd-server) inside a named namespace, with its
//! data and log in a fresh directory under the system's temporary directory, the client URL on
//! `http://IP:2379` and the peer URL on `127.0.0.1:2380` (both inside the namespace only: a test
//! process in another namespace reaches it only by entering this one). Its raft timings are fast
//! (10 ms heartbeat, 100 ms election timeout), so it elects itself within a fraction of a second
//! and its shortest lease time to live is one second. It is killed (SIGKILL) and its directory
//! removed on drop, also when the test panics.
//!
//! ```no_run
//! use berth_testhost::etcd::Etcd;
//!
//! let (host, etcd) = Etcd::in_new_host().expect("etcd in a test host (run as root)");
//! println!("etcd serves {} inside {}", etcd.client_url(), host.name());
//! etcd.kill().expect("killed");
//! etcd.restart().expect("serving again, same data");
//! ```

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use berth_netlink::Netns;

use crate::{Error, Result, TestHost};

/// The client port etcd listens on.
pub const CLIENT_PORT: u16 = 2379;
/// The peer port etcd listens on (on 127.0.0.1 inside the namespace).
pub const PEER_PORT: u16 = 2380;
/// How long [`Etcd::start`] and [`Etcd::restart`] wait for the server to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The `etcd` program run.
pub const ETCD: &str = "etcd";
/// The `etcdctl` program used for health checks.
pub const ETCDCTL: &str = "etcdctl";

static DIRS: AtomicU32 = AtomicU32::new(0);

/// An etcd server running inside a test namespace. Killed, and its data removed, on drop.
#[derive(Debug)]
pub struct Etcd {
    netns: Netns,
    ns_name: String,
    ip: IpAddr,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
}

impl Etcd {
    /// Starts etcd inside the namespace named `ns_name` (under `/run/netns`), serving clients on
    /// `http://listen_ip:2379`, and waits (at most [`START_TIMEOUT`]) until it answers a health
    /// check. The namespace's loopback must be up (a [`TestHost`]'s is). On failure the error
    /// holds the end of etcd's log.
    pub fn start(ns_name: &str, listen_ip: IpAddr) -> Result<Etcd> {
        let netns = Netns::open_named(ns_name)?;
        let dir = std::env::temp_dir().join(format!(
            "berth-etcd-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover of a crashed run with the same pid and counter.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Spawn {
            command: format!("mkdir {}", dir.display()),
            source,
        })?;
        let etcd = Etcd {
            netns,
            ns_name: ns_name.to_owned(),
            ip: listen_ip,
            dir,
            child: Mutex::new(None),
        };
        etcd.launch()?;
        Ok(etcd)
    }

    /// A new [`TestHost`] with etcd serving on `http://127.0.0.1:2379` inside it: the fixture of
    /// the store tests. Drop the `Etcd` before the host (declare it after, or drop explicitly);
    /// dropping the host first works too, etcd is then killed with the namespace gone.
    pub fn in_new_host() -> Result<(TestHost, Etcd)> {
        let host = TestHost::new()?;
        let etcd = Etcd::start(host.name(), IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        Ok((host, etcd))
    }

    /// The URL clients use: `http://IP:2379` (reachable from inside the namespace only).
    pub fn client_url(&self) -> String {
        format!("http://{}", SocketAddr::new(self.ip, CLIENT_PORT))
    }

    /// The namespace etcd runs in.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The name of the namespace etcd runs in.
    pub fn ns_name(&self) -> &str {
        &self.ns_name
    }

    /// The directory holding etcd's data (`data/`) and log (`etcd.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file etcd logs to (appended to across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    /// The last `max_bytes` of etcd's log, for error messages.
    pub fn log_tail(&self, max_bytes: u64) -> String {
        let Ok(mut file) = File::open(self.log_path()) else {
            return String::from("(no log)");
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The process id of the running server, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL and reaps it (no-op if it is not running). Clients see
    /// their connections reset; the data directory stays for [`Etcd::restart`].
    pub fn kill(&self) -> Result<()> {
        let child = self.lock().take();
        if let Some(mut child) = child {
            let _ = child.kill();
            child.wait().map_err(|source| Error::Spawn {
                command: format!("wait for etcd {}", child.id()),
                source,
            })?;
        }
        Ok(())
    }

    /// Kills the server if it runs, starts it again on the same data and URL, and waits until it
    /// answers (at most [`START_TIMEOUT`]).
    pub fn restart(&self) -> Result<()> {
        self.kill()?;
        self.launch()
    }

    /// Whether the server answers an `etcdctl endpoint health` inside the namespace now.
    pub fn healthy(&self) -> bool {
        let mut cmd = self.netns.command(ETCDCTL);
        cmd.env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.client_url()])
            .args(["--dial-timeout", "1s", "--command-timeout", "2s"])
            .args(["endpoint", "health"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.status().is_ok_and(|s| s.success())
    }

    fn lock(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spawns etcd (none runs) and waits until it is healthy.
    fn launch(&self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|source| Error::Spawn {
                command: format!("open {}", self.log_path().display()),
                source,
            })?;
        let log2 = log.try_clone().map_err(|source| Error::Spawn {
            command: format!("open {}", self.log_path().display()),
            source,
        })?;
        let client = self.client_url();
        let peer = format!("http://127.0.0.1:{PEER_PORT}");
        let data = self.dir.join("data");
        let mut cmd = self.netns.command(ETCD);
        cmd.args(["--name", "berth-test"])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("berth-test={peer}")])
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "10", "--election-timeout", "100"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let line = format!("{cmd:?}");
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            command: line.clone(),
            source,
        })?;
        *self.lock() = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .lock()
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let _ = self.lock().take();
                return Err(self.not_serving(&line, format!("exited: {status}")));
            }
            if self.healthy() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.kill();
                return Err(
                    self.not_serving(&line, format!("not healthy within {START_TIMEOUT:?}"))
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn not_serving(&self, command: &str, status: String) -> Error {
        Error::Command {
            command: format!("{command} (in namespace {})", self.ns_name),
            status,
            stderr: format!(
                "end of {}:\n{}",
                self.log_path().display(),
                self.log_tail(4000)
            ),
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.kill();
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!(
                "berth-testhost: could not remove etcd directory {}: {e}",
                self.dir.display()
            );
        }
    }
}

//! A reference Docker engine for comparison tests: Debian's `dockerd` (20.10, libnetwork) running
//! inside a fresh [`TestHost`] namespace, with its own temporary data root, exec root, pid file,
//! configuration file and socket, so that the docker CLI can be pointed at it and at berth in turn.
//!
//! `dockerd` enters the namespace the way `nsenter --net` does (only the network namespace
//! changes; `ip netns exec` would remount `/sys` and hide the cgroup mounts dockerd needs). It
//! starts its own containerd under its exec root. No image is loaded and no container is run:
//! the comparisons drive network commands only. Everything dockerd makes in the network (its
//! `docker0` bridge, its iptables chains) lives in the namespace and goes with it.
//!
//! On drop (also when the test panics) dockerd gets SIGTERM (SIGKILL after [`STOP_TIMEOUT`]), a
//! containerd it left behind is killed, the mounts it made under its directory (dockerd
//! bind-mounts its data root onto itself) are detached, the directory is removed, then the
//! namespace. The program must be installed (Debian's `docker.io` package; `cargo xtask
//! install-deps`); a missing one is an error, never a skip.
//!
//! ```no_run
//! use berth_testhost::refdocker::RefDocker;
//!
//! let docker = RefDocker::start().expect("dockerd in a test host (run as root)");
//! let out = std::process::Command::new("docker")
//!     .args(["-H", &docker.host_arg(), "network", "ls"])
//!     .output()
//!     .expect("the docker client");
//! assert!(out.status.success());
//! // dockerd is stopped and its namespace and directory removed when `docker` drops
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{Error, Result, TestHost};

/// The engine program run (Debian's docker.io package installs it as `/usr/sbin/dockerd`).
pub const DOCKERD: &str = "dockerd";
/// The client program [`RefDocker::start`] asks `docker version` with until the engine answers.
pub const DOCKER: &str = "docker";
/// How long [`RefDocker::start`] waits for the engine to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stop waits after SIGTERM before it sends SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A Docker engine running in a test namespace of its own. Stopped, with its directory and
/// namespace removed, on drop.
#[derive(Debug)]
pub struct RefDocker {
    child: Option<Child>,
    // Dropped after the engine is stopped (see `Drop`), before the namespace.
    dir: tempfile::TempDir,
    host: TestHost,
}

impl RefDocker {
    /// Starts `dockerd` in a new [`TestHost`] and waits (at most [`START_TIMEOUT`]) until
    /// `docker version` answers on its socket. On failure the error holds the end of its log,
    /// and whatever was started is stopped and removed again.
    pub fn start() -> Result<RefDocker> {
        let host = TestHost::new()?;
        let dir = tempfile::Builder::new()
            .prefix("berth-refdocker-")
            .tempdir()
            .map_err(|source| Error::Spawn {
                command: "mkdir a temporary directory for dockerd".into(),
                source,
            })?;
        let mut docker = RefDocker {
            child: None,
            dir,
            host,
        };
        docker.launch()?;
        Ok(docker)
    }

    /// The unix socket the engine serves its API on.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// The engine's address as the docker CLI takes it (`-H`, `DOCKER_HOST`): `unix://PATH`.
    pub fn host_arg(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The test host (namespace) the engine runs in.
    pub fn host(&self) -> &TestHost {
        &self.host
    }

    /// The directory holding the engine's data root (`data/`), exec root (`exec/`), pid file,
    /// configuration file and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file the engine (and the containerd it starts) logs to.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("dockerd.log")
    }

    /// The last `max_bytes` of the engine's log, for error messages.
    pub fn log_tail(&self, max_bytes: u64) -> String {
        crate::file_tail(&self.log_path(), max_bytes)
    }

    /// The process id of the running engine.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A command running the docker client `program` against this engine: `DOCKER_HOST` set, a
    /// client configuration directory of its own (under the engine's directory), no context.
    pub fn client(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("DOCKER_HOST", self.host_arg())
            .env("DOCKER_CONFIG", self.dir.path().join("client-config"))
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null());
        cmd
    }

    /// Restarts the engine on the same data root, exec root and namespace: SIGTERM (SIGKILL
    /// after [`STOP_TIMEOUT`]), as a service manager stops it (it stops its containers; without
    /// live-restore they stay stopped), then a start as [`RefDocker::start`]'s, waiting until
    /// it answers again.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.launch()
    }

    /// Whether `docker version` answers now (the client and the server part both).
    pub fn answers(&self) -> bool {
        self.client(DOCKER)
            .args(["version", "--format", "{{.Server.APIVersion}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Spawns dockerd (none runs) and waits until it answers.
    fn launch(&mut self) -> Result<()> {
        let dir = self.dir.path();
        let config = dir.join("daemon.json");
        std::fs::write(&config, "{}\n").map_err(|source| Error::Spawn {
            command: format!("write {}", config.display()),
            source,
        })?;
        let open_log = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .map_err(|source| Error::Spawn {
                    command: format!("open {}", self.log_path().display()),
                    source,
                })
        };
        let (log, log2) = (open_log()?, open_log()?);
        let mut cmd = self.host.command(DOCKERD);
        cmd.arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("--config-file")
            .arg(&config)
            .arg("--host")
            .arg(self.host_arg())
            .args(["--storage-driver", "vfs"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        // Its own process group: a terminal's Ctrl-C reaches the test, whose guard stops it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let line = format!("{cmd:?}");
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            command: format!(
                "{line} (dockerd comes with Debian's docker.io package: cargo xtask install-deps)"
            ),
            source,
        })?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                return Err(self.not_serving(&line, format!("exited: {status}")));
            }
            if self.answers() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(self.not_serving(&line, format!("no answer within {START_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn not_serving(&self, command: &str, status: String) -> Error {
        Error::Command {
            command: format!("{command} (in namespace {})", self.host.name()),
            status,
            stderr: format!(
                "end of {}:\n{}",
                self.log_path().display(),
                self.log_tail(4000)
            ),
        }
    }

    /// Stops dockerd (SIGTERM, SIGKILL after [`STOP_TIMEOUT`]) and reaps it, then kills a
    /// containerd of this engine that outlived it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.kill_containerd();
    }

    /// dockerd stops the containerd it started when it shuts down cleanly; after a SIGKILL it
    /// stays. Its pid file is under the exec root; the process is killed only when its command
    /// line names this engine's directory (the pid may have been reused).
    fn kill_containerd(&self) {
        let pidfile = self.dir.path().join("exec/containerd/containerd.pid");
        let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        else {
            return;
        };
        let ours = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
            String::from_utf8_lossy(&cmdline).contains(&*self.dir.path().to_string_lossy())
        });
        if ours {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    /// Detaches every mount under the engine's directory, deepest first (dockerd bind-mounts its
    /// data root onto itself and undoes it only on a clean shutdown).
    fn unmount_all(&self) {
        let root = self.dir.path();
        let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let mut points: Vec<PathBuf> = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(|p| PathBuf::from(p.replace("\\040", " ")))
            .filter(|p| p.starts_with(root))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in points {
            let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

impl Drop for RefDocker {
    fn drop(&mut self) {
        self.stop();
        self.unmount_all();
        // The directory (`TempDir`), then the namespace (`TestHost`), go next.
    }
}

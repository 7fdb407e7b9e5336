//! Shared fixture of berth-cli's end-to-end tests: a `berth daemon` process whose host is a
//! throwaway test host namespace, its state in a temporary directory, and helpers to run the
//! `berth` client, the docker CLI and raw HTTP against it. Dropping the fixture kills the daemon,
//! deletes the sandbox namespaces it left and the directory, then the test host (and with it every
//! bridge, veth and rule berth made there).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testhost::TestHost;
use berth_testhost::berth_netlink::Netns;

pub(crate) const BERTH: &str = env!("CARGO_BIN_EXE_berth");

pub(crate) struct Fixture {
    pub(crate) daemon: Option<Child>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) extra_args: Vec<String>,
    pub(crate) host: TestHost,
}

impl Fixture {
    /// A test host and a running daemon on it.
    pub(crate) fn new() -> Fixture {
        Self::with_args(&[])
    }

    /// Same, with extra daemon flags.
    pub(crate) fn with_args(args: &[&str]) -> Fixture {
        let host = TestHost::new().expect("a test host (run the tests as root)");
        Self::on_host(host, args)
    }

    /// A daemon with extra flags on a test host made by the caller (a host of a cluster).
    pub(crate) fn on_host(host: TestHost, args: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut f = Fixture {
            daemon: None,
            dir,
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            host,
        };
        f.start();
        f
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("berth.sock")
    }

    pub(crate) fn host_arg(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The daemon command line (without spawning).
    pub(crate) fn daemon_command(&self) -> Command {
        let mut cmd = Command::new(BERTH);
        cmd.arg("daemon")
            .arg("--host")
            .arg(self.host_arg())
            .arg("--netns")
            .arg(self.host.path())
            .arg("--data-root")
            .arg(self.dir.path().join("data"))
            .arg("--exec-root")
            .arg(self.dir.path().join("run"))
            .args(&self.extra_args)
            .env_remove("BERTH_HOST");
        cmd
    }

    /// Starts the daemon and waits until it answers `/_ping`.
    pub(crate) fn start(&mut self) {
        assert!(self.daemon.is_none(), "daemon already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = self
            .daemon_command()
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning berth daemon");
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.daemon.as_mut().unwrap().try_wait().unwrap() {
                panic!("berth daemon exited early ({status}):\n{}", self.log());
            }
            if let Ok(r) = self.try_http("GET", "/_ping", None, None) {
                if r.status == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "berth daemon did not answer within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub(crate) fn sigterm(&mut self) {
        let mut child = self.daemon.take().expect("a running daemon");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = wait_timeout(&mut child, Duration::from_secs(30));
        assert!(
            status.is_some_and(|s| s.success()),
            "daemon did not stop cleanly on SIGTERM ({status:?}):\n{}",
            self.log()
        );
    }

    /// `kill -9`.
    pub(crate) fn kill9(&mut self) {
        let mut child = self.daemon.take().expect("a running daemon");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Whether the daemon process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        match self.daemon.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// Runs `berth ARGS` against this daemon.
    pub(crate) fn berth(&self, args: &[&str]) -> Output {
        Command::new(BERTH)
            .args(args)
            .env("BERTH_HOST", self.host_arg())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs `berth ARGS` and asserts success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}):\nstdout: {}\nstderr: {}\ndaemon log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `berth ARGS`, asserts it fails with `code`; returns stderr.
    pub(crate) fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.berth(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "berth {args:?}: expected exit {code}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// A sandbox's namespace (opened by its path from `berth sandbox inspect`).
    pub(crate) fn sandbox_ns(&self, name: &str) -> Netns {
        let key = self.ok(&["sandbox", "inspect", "-f", "{{.SandboxKey}}", name]);
        Netns::open(key.trim()).unwrap()
    }

    /// A sandbox's IPv4 address on a network.
    pub(crate) fn ip_of(&self, sandbox: &str, network: &str) -> String {
        let t = format!("{{{{(index .Networks \"{network}\").IPAddress}}}}");
        self.ok(&["sandbox", "inspect", "-f", &t, sandbox])
            .trim()
            .to_owned()
    }

    /// One ICMP echo from inside a sandbox, through `berth sandbox exec`.
    pub(crate) fn ping(&self, from: &str, to: &str) -> bool {
        self.berth(&[
            "sandbox", "exec", from, "--", "busybox", "ping", "-c", "1", "-W", "1", to,
        ])
        .status
        .success()
    }

    /// One raw HTTP request; the body is sent as given.
    pub(crate) fn try_http(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> std::io::Result<HttpReply> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n");
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\n\r\n",
            body.map_or(0, <[u8]>::len)
        ));
        let mut raw = head.into_bytes();
        if let Some(b) = body {
            raw.extend_from_slice(b);
        }
        raw_http(&self.socket(), &raw)
    }

    /// One raw HTTP request that must get an answer.
    pub(crate) fn http(&self, method: &str, path: &str, json: Option<&str>) -> HttpReply {
        self.try_http(
            method,
            path,
            json.map(|_| "application/json"),
            json.map(str::as_bytes),
        )
        .unwrap()
    }

    /// Runs a docker CLI binary against this daemon.
    pub(crate) fn docker(&self, docker: &Path, args: &[&str]) -> Output {
        Command::new(docker)
            .args(args)
            .env("DOCKER_HOST", self.host_arg())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let netns_dir = self.dir.path().join("run").join("netns");
        if let Ok(entries) = std::fs::read_dir(&netns_dir) {
            for e in entries.flatten() {
                let _ = Netns::delete_named_in(&netns_dir, &e.file_name().to_string_lossy());
            }
        }
        let _ = nix::mount::umount2(&netns_dir, nix::mount::MntFlags::MNT_DETACH);
        // The temporary directory, then the test host (with every link and rule in it), go next.
    }
}

pub(crate) fn wait_timeout(child: &mut Child, t: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + t;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub(crate) struct HttpReply {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: Vec<u8>,
}

impl HttpReply {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {:?} (status {})",
                String::from_utf8_lossy(&self.body),
                self.status
            )
        })
    }

    pub(crate) fn message(&self) -> String {
        self.json()["message"].as_str().unwrap_or("").to_owned()
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Writes raw bytes to the socket and reads the whole answer (the server closes after it).
pub(crate) fn raw_http(socket: &Path, raw: &[u8]) -> std::io::Result<HttpReply> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    // The daemon may answer (413) and close before it has read everything: keep its answer.
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    parse_reply(&out)
}

pub(crate) fn parse_reply(out: &[u8]) -> std::io::Result<HttpReply> {
    let bad = |m: &str| std::io::Error::other(format!("{m}: {:?}", String::from_utf8_lossy(out)));
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header"))?;
    let head = String::from_utf8_lossy(&out[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let mut body = out[end + 4..].to_vec();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if chunked {
        let mut rest = &body[..];
        let mut plain = Vec::new();
        while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
            let n =
                usize::from_str_radix(std::str::from_utf8(&rest[..i]).unwrap_or("0").trim(), 16)
                    .unwrap_or(0);
            if n == 0 {
                break;
            }
            plain.extend_from_slice(&rest[i + 2..i + 2 + n]);
            rest = &rest[i + 4 + n..];
        }
        body = plain;
    }
    Ok(HttpReply { status, head, body })
}

/// The docker CLI binaries to test with: `docker` on PATH and Debian's `/usr/bin/docker` when it is
/// another binary. Installs Debian's docker.io (which provides the client) when there is none.
pub(crate) fn docker_clients() -> Vec<PathBuf> {
    let find = || -> Option<PathBuf> {
        let out = Command::new("sh")
            .args(["-c", "command -v docker"])
            .output()
            .ok()?;
        let p = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (!p.is_empty()).then(|| PathBuf::from(p))
    };
    if find().is_none() {
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        let _ = Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "docker.io",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    let first = find().expect("the docker CLI (Debian's docker.io package) could not be installed");
    let mut out = vec![first.clone()];
    let debian = PathBuf::from("/usr/bin/docker");
    if debian.exists() && std::fs::canonicalize(&debian).ok() != std::fs::canonicalize(&first).ok()
    {
        out.push(debian);
    }
    out
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

// ----- daemon start with extra environment (the kill matrix arms fail points this way) -----

impl Fixture {
    /// Starts the daemon with `env` added to its environment and waits until it answers
    /// `/_ping`. When the daemon exits before answering, returns its exit status and leaves no
    /// daemon (a fail point may kill it while it restores).
    pub(crate) fn try_start_with_env(
        &mut self,
        env: &[(&str, &str)],
    ) -> Result<(), std::process::ExitStatus> {
        assert!(self.daemon.is_none(), "daemon already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = self.daemon_command();
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning berth daemon");
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.daemon.as_mut().unwrap().try_wait().unwrap() {
                self.daemon = None;
                return Err(status);
            }
            if let Ok(r) = self.try_http("GET", "/_ping", None, None) {
                if r.status == 200 {
                    return Ok(());
                }
            }
            assert!(
                Instant::now() < deadline,
                "berth daemon did not answer within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `t` for the daemon to exit by itself (it is not killed): its exit status, or
    /// `None` if it still runs (or none was running).
    pub(crate) fn wait_exit(&mut self, t: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + t;
        loop {
            let status = self.daemon.as_mut()?.try_wait().ok().flatten();
            if let Some(s) = status {
                self.daemon = None;
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The daemon's process id, if one runs.
    pub(crate) fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
    }
}

impl Fixture {
    /// A test host and a fixture whose daemon is not started yet: call `start` or
    /// `try_start_with_env`.
    pub(crate) fn unstarted(args: &[&str]) -> Fixture {
        let host = TestHost::new().expect("a test host (run the tests as root)");
        Fixture {
            daemon: None,
            dir: tempfile::tempdir().unwrap(),
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            host,
        }
    }
}

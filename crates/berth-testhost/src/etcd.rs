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
//! [`Etcd::start_tls`] runs it with client TLS instead: certificates made at start with the
//! `openssl` command (OpenSSL 3) in its directory ([`EtcdTlsFiles`]), the client URL on
//! `https://IP:2379`, and client certificates required (`--client-cert-auth`).
//!
//! ```no_run
//! use berth_testhost::etcd::Etcd;
//!
//! let (host, etcd) = Etcd::in_new_host().expect("etcd in a test host (run as root)");
//! println!("etcd serves {} inside {}", etcd.client_url(), host.name());
//! etcd.kill().expect("killed");
//! etcd.restart().expect("serving again, same data");
//!
//! let (host, etcd) = Etcd::in_new_host_tls().expect("etcd over TLS in a test host");
//! let tls = etcd.tls().expect("started with TLS");
//! println!("{} with CA {}", etcd.client_url(), tls.ca.display());
//! ```

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
/// The `openssl` program that makes the certificates of [`Etcd::start_tls`] (OpenSSL 3: it
/// signs with `req -x509 -CA`).
pub const OPENSSL: &str = "openssl";
/// How many days the certificates of [`EtcdTlsFiles::create`] are valid.
pub const CERT_DAYS: u32 = 2;

static DIRS: AtomicU32 = AtomicU32::new(0);

/// An etcd server running inside a test namespace. Killed, and its data removed, on drop.
#[derive(Debug)]
pub struct Etcd {
    netns: Netns,
    ns_name: String,
    ip: IpAddr,
    dir: PathBuf,
    tls: Option<EtcdTlsFiles>,
    child: Mutex<Option<Child>>,
}

/// The certificates and keys (PEM; keys in PKCS#8, which both etcd and rustls read) of an etcd
/// serving client TLS, made by [`EtcdTlsFiles::create`]: a CA of their own, a server certificate
/// it signed for the listen IP, and a client certificate it signed. Two sets made apart share
/// nothing: one set's CA did not sign the other's certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTlsFiles {
    /// The CA certificate: clients trust it for the server, the server for clients.
    pub ca: PathBuf,
    /// The CA's key.
    pub ca_key: PathBuf,
    /// The server's certificate, for the listen IP (a subjectAltName IP entry), usable for server
    /// and client authentication (etcd's own gateway connects to itself with it).
    pub server_cert: PathBuf,
    /// The server certificate's key.
    pub server_key: PathBuf,
    /// A client certificate (CN `berth-test-client`), for client authentication.
    pub cert: PathBuf,
    /// The client certificate's key.
    pub key: PathBuf,
}

impl EtcdTlsFiles {
    /// Makes a new CA, a server certificate for `server_ip` and a client certificate in `dir`
    /// (created if need be; files `ca.pem`, `ca-key.pem`, `server.pem`, `server-key.pem`,
    /// `client.pem`, `client-key.pem`, replaced if present), with the `openssl` command. The keys
    /// are ECDSA P-256, the certificates valid for [`CERT_DAYS`] days.
    pub fn create(dir: &Path, server_ip: IpAddr) -> Result<EtcdTlsFiles> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Spawn {
            command: format!("mkdir {}", dir.display()),
            source,
        })?;
        let files = EtcdTlsFiles {
            ca: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server-key.pem"),
            cert: dir.join("client.pem"),
            key: dir.join("client-key.pem"),
        };
        openssl_cert(
            &files.ca,
            &files.ca_key,
            "/CN=berth-test-ca",
            None,
            &[
                "basicConstraints=critical,CA:TRUE",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        )?;
        let ca = Some((files.ca.as_path(), files.ca_key.as_path()));
        openssl_cert(
            &files.server_cert,
            &files.server_key,
            "/CN=berth-test-etcd",
            ca,
            &[
                "basicConstraints=critical,CA:FALSE",
                "keyUsage=critical,digitalSignature",
                "extendedKeyUsage=serverAuth,clientAuth",
                &format!("subjectAltName=IP:{server_ip}"),
            ],
        )?;
        openssl_cert(
            &files.cert,
            &files.key,
            "/CN=berth-test-client",
            ca,
            &[
                "basicConstraints=critical,CA:FALSE",
                "keyUsage=critical,digitalSignature",
                "extendedKeyUsage=clientAuth",
            ],
        )?;
        Ok(files)
    }
}

/// Makes a new key at `key` and a certificate for it at `cert`: self-signed, or signed by
/// `ca` (certificate, key), with the `extensions` given.
fn openssl_cert(
    cert: &Path,
    key: &Path,
    subject: &str,
    ca: Option<(&Path, &Path)>,
    extensions: &[&str],
) -> Result<()> {
    let mut cmd = std::process::Command::new(OPENSSL);
    cmd.args(["req", "-x509", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .args(["-days", &CERT_DAYS.to_string(), "-subj", subject]);
    if let Some((ca_cert, ca_key)) = ca {
        cmd.arg("-CA").arg(ca_cert).arg("-CAkey").arg(ca_key);
    }
    for ext in extensions {
        cmd.args(["-addext", ext]);
    }
    cmd.stdin(Stdio::null());
    let line = format!("{cmd:?}");
    let out = cmd.output().map_err(|source| Error::Spawn {
        command: line.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(Error::Command {
            command: line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

impl Etcd {
    /// Starts etcd inside the namespace named `ns_name` (under `/run/netns`), serving clients on
    /// `http://listen_ip:2379`, and waits (at most [`START_TIMEOUT`]) until it answers a health
    /// check. The namespace's loopback must be up (a [`TestHost`]'s is). On failure the error
    /// holds the end of etcd's log.
    pub fn start(ns_name: &str, listen_ip: IpAddr) -> Result<Etcd> {
        Etcd::create(ns_name, listen_ip, false)
    }

    /// Like [`Etcd::start`], but serving clients over TLS on `https://listen_ip:2379`, with
    /// client certificates required: first makes [`EtcdTlsFiles`] (a CA, a server certificate
    /// for `listen_ip`, a client certificate) in etcd's directory with the `openssl` command.
    /// [`Etcd::tls`] gives their paths; the health checks use them too.
    pub fn start_tls(ns_name: &str, listen_ip: IpAddr) -> Result<Etcd> {
        Etcd::create(ns_name, listen_ip, true)
    }

    fn create(ns_name: &str, listen_ip: IpAddr, tls: bool) -> Result<Etcd> {
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
        let mut etcd = Etcd {
            netns,
            ns_name: ns_name.to_owned(),
            ip: listen_ip,
            dir,
            tls: None,
            child: Mutex::new(None),
        };
        if tls {
            // On failure, dropping `etcd` removes the directory.
            etcd.tls = Some(EtcdTlsFiles::create(&etcd.dir.join("tls"), listen_ip)?);
        }
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

    /// Like [`Etcd::in_new_host`], with etcd serving TLS ([`Etcd::start_tls`]) on
    /// `https://127.0.0.1:2379`.
    pub fn in_new_host_tls() -> Result<(TestHost, Etcd)> {
        let host = TestHost::new()?;
        let etcd = Etcd::start_tls(host.name(), IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        Ok((host, etcd))
    }

    /// The URL clients use: `http://IP:2379`, or `https://IP:2379` when started with
    /// [`Etcd::start_tls`] (reachable from inside the namespace only).
    pub fn client_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", SocketAddr::new(self.ip, CLIENT_PORT))
    }

    /// The TLS files of an etcd started with [`Etcd::start_tls`] (`None` for plain HTTP).
    pub fn tls(&self) -> Option<&EtcdTlsFiles> {
        self.tls.as_ref()
    }

    /// The namespace etcd runs in.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The name of the namespace etcd runs in.
    pub fn ns_name(&self) -> &str {
        &self.ns_name
    }

    /// The directory holding etcd's data (`data/`), log (`etcd.log`) and, in TLS mode, its
    /// certificates (`tls/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file etcd logs to (appended to across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    /// The last `max_bytes` of etcd's log, for error messages.
    pub fn log_tail(&self, max_bytes: u64) -> String {
        crate::file_tail(&self.log_path(), max_bytes)
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

    /// Whether the server answers an `etcdctl endpoint health` inside the namespace now (over
    /// TLS with the client certificate, in TLS mode).
    pub fn healthy(&self) -> bool {
        let mut cmd = self.netns.command(ETCDCTL);
        cmd.env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.client_url()])
            .args(["--dial-timeout", "1s", "--command-timeout", "2s"]);
        if let Some(tls) = &self.tls {
            cmd.arg("--cacert")
                .arg(&tls.ca)
                .arg("--cert")
                .arg(&tls.cert)
                .arg("--key")
                .arg(&tls.key);
        }
        cmd.args(["endpoint", "health"])
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
            .args(["--heartbeat-interval", "10", "--election-timeout", "100"]);
        if let Some(tls) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&tls.server_cert)
                .arg("--key-file")
                .arg(&tls.server_key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        cmd.stdin(Stdio::null())
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

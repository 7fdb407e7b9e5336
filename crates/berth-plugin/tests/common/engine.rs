//! A real dockerd 20.10 (berth-testhost's `RefDocker`, in a test namespace of its own) with
//! berth's plugin server serving that namespace under a unique plugin name on
//! `/run/docker/plugins/NAME.sock` (where dockerd looks; a machine-wide directory, so the name
//! is unique per run and the socket is removed on drop), and a busybox image imported offline
//! from the machine's static busybox. Dropped in order: dockerd first (it stops its containers
//! through the plugin, still serving), then the server, then its state.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use berth_plugin::{PluginServer, ServerConfig};
use berth_testhost::refdocker::{DOCKER, RefDocker};

use super::served::unique_name;

/// The image the containers run.
pub(crate) const IMAGE: &str = "berth-busybox:local";
/// What the image's httpd serves.
pub(crate) const PAGE: &str = "hello from a container on berth";

pub(crate) struct Engine {
    pub(crate) docker: RefDocker,
    pub(crate) server: Option<PluginServer>,
    pub(crate) name: String,
    pub(crate) state: tempfile::TempDir,
}

impl Engine {
    pub(crate) fn start() -> Engine {
        let docker = RefDocker::start().expect("dockerd in a test host (run as root)");
        let mut e = Engine {
            docker,
            server: None,
            name: unique_name("berthd"),
            state: tempfile::tempdir().unwrap(),
        };
        e.start_server();
        e.import_image();
        e
    }

    pub(crate) fn socket(&self) -> PathBuf {
        Path::new(berth_plugin::server::DEFAULT_SOCKET_DIR).join(format!("{}.sock", self.name))
    }

    pub(crate) fn start_server(&mut self) {
        let config = ServerConfig::new(&self.name)
            .with_socket(self.socket())
            .with_state_dir(self.state.path())
            .with_host_netns(self.docker.host().path());
        self.server = Some(PluginServer::start(config).unwrap());
    }

    pub(crate) fn stop_server(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }

    /// A root file system of busybox and its applets, imported as [`IMAGE`].
    fn import_image(&self) {
        let root = tempfile::tempdir().unwrap();
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "www"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", root.path().join("bin/busybox"))
            .expect("a static busybox at /bin/busybox (busybox-static)");
        for applet in [
            "sh", "ping", "ping6", "sleep", "httpd", "wget", "nslookup", "ip", "cat", "echo", "nc",
        ] {
            std::os::unix::fs::symlink("busybox", root.path().join("bin").join(applet)).unwrap();
        }
        std::fs::write(root.path().join("www/index.html"), PAGE).unwrap();
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(root.path())
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = self
            .docker
            .client(DOCKER)
            .args(["import", "-", IMAGE])
            .stdin(Stdio::from(tar.stdout.take().unwrap()))
            .output()
            .unwrap();
        assert!(tar.wait().unwrap().success());
        assert!(
            out.status.success(),
            "docker import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `docker ARGS` against the engine.
    pub(crate) fn docker(&self, args: &[&str]) -> Output {
        self.docker.client(DOCKER).args(args).output().unwrap()
    }

    /// `docker ARGS`, which must succeed: its stdout, trimmed.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}\nend of dockerd's log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.docker.log_tail(3000)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `docker ARGS`, which must fail: its stderr.
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(!out.status.success(), "docker {args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Whether `docker exec CONTAINER ping -c1 -W2 TO` is answered.
    pub(crate) fn pings(&self, container: &str, to: &str) -> bool {
        self.docker(&["exec", container, "ping", "-c", "1", "-W", "2", to])
            .status
            .success()
    }

    /// The names of the links in dockerd's namespace.
    pub(crate) fn links(&self) -> Vec<String> {
        super::link_names(&self.docker.host().ip(&["-o", "link"]).unwrap())
    }

    /// dockerd's namespace's iptables rules (both families).
    pub(crate) fn rules(&self) -> String {
        let host = self.docker.host();
        format!(
            "{}{}",
            host.run("iptables-save", &[]).unwrap(),
            host.run("ip6tables-save", &[]).unwrap()
        )
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // The containers first (dockerd leaves and deletes their endpoints through the plugin),
        // then the networks, while the server still serves.
        let ids = self.docker(&["ps", "-aq"]);
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            let _ = self.docker(&args);
        }
        let _ = self.docker(&["network", "prune", "-f"]);
    }
}

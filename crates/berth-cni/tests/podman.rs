//! A real runtime: Debian's podman 4.3 with its CNI backend, run inside the test host (never the
//! machine's namespace), on networks whose conflist names berth-cni, with its own storage, run
//! directory and containers.conf, and an image imported from a busybox-static root filesystem
//! (no network access needed). Two containers ping each other, a published port is reached from
//! a LAN peer, a chain with the reference `tuning` and `portmap` plugins after berth-cni works,
//! a container on two berth-cni networks (eth0 and eth1) reaches both, and `podman rm -f`
//! leaves nothing: no links, no rules, no attachment in berth-cni's state.
//!
//! This environment's hard limits on open files and processes are below podman's defaults, so
//! the test's containers.conf sets `default_ulimits` (runc refuses to raise them otherwise), and
//! it has no systemd, so the cgroup manager is `cgroupfs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use berth::KvStore;
use berth::berth_netlink::Netns;
use berth_testhost::traffic::{TcpBanner, tcp_fetch};
use common::{BIN, Cni, TIMEOUT, sa};
use serde_json::{Value, json};

const IMAGE: &str = "localhost/berth-cni-busybox:test";

/// podman, its directories and configuration, in a temporary directory.
struct Podman<'a> {
    cni: &'a Cni,
    dir: tempfile::TempDir,
}

impl<'a> Podman<'a> {
    fn new(cni: &'a Cni) -> Podman<'a> {
        let dir = tempfile::tempdir().unwrap();
        let p = Podman { cni, dir };
        for d in ["root", "runroot", "tmp", "net", "plugins"] {
            std::fs::create_dir_all(p.path(d)).unwrap();
        }
        std::os::unix::fs::symlink(BIN, p.path("plugins/berth-cni")).unwrap();
        let conf = format!(
            r#"[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[network]
network_backend = "cni"
cni_plugin_dirs = ["{plugins}", "/usr/lib/cni"]
network_config_dir = "{net}"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "{tmp}"
"#,
            plugins = p.path("plugins").display(),
            net = p.path("net").display(),
            tmp = p.path("tmp").display(),
        );
        std::fs::write(p.path("containers.conf"), conf).unwrap();
        p.import_busybox();
        p
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs podman with `args` inside the test host; its output, whatever the status.
    fn output(&self, args: &[&str]) -> Output {
        let mut cmd = self.cni.host.command("timeout");
        cmd.env("CONTAINERS_CONF", self.path("containers.conf"))
            .args(["120", "podman", "--root"])
            .arg(self.path("root"))
            .arg("--runroot")
            .arg(self.path("runroot"))
            .arg("--tmpdir")
            .arg(self.path("tmp"))
            .args(args);
        cmd.output().unwrap()
    }

    /// Runs podman and checks it succeeded; its stdout, trimmed.
    fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// An image of busybox-static and its applet links, imported from a tarball.
    fn import_busybox(&self) {
        let rootfs = self.path("rootfs");
        let bin = rootfs.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
        let list = std::process::Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" && !applet.is_empty() {
                std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
            }
        }
        let tarball = self.path("rootfs.tar");
        let tar = std::process::Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .status()
            .unwrap();
        assert!(tar.success());
        self.run(&["import", tarball.to_str().unwrap(), IMAGE]);
    }

    /// Writes the conflist of network `name` with `plugins`.
    fn network(&self, name: &str, plugins: Value) {
        let list = json!({"cniVersion": "1.0.0", "name": name, "plugins": plugins});
        std::fs::write(
            self.path("net").join(format!("{name}.conflist")),
            list.to_string(),
        )
        .unwrap();
    }

    /// `podman run -d` of a container sleeping on `network`, with `extra` arguments.
    fn start(&self, name: &str, network: &str, extra: &[&str]) {
        let mut args = vec!["run", "-d", "--name", name, "--network", network];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "sleep", "3600"]);
        self.run(&args);
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        self.run(&["inspect", "--format", format, name])
    }

    fn ip(&self, name: &str, network: &str) -> String {
        self.inspect(
            name,
            &format!("{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}"),
        )
    }

    fn sandbox(&self, name: &str) -> PathBuf {
        PathBuf::from(self.inspect(name, "{{.NetworkSettings.SandboxKey}}"))
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        // Containers, their namespaces (podman's /run/netns/cni-*) and mounts go with podman.
        let _ = self.output(&["rm", "-f", "-a", "-t", "0"]);
    }
}

/// The attachments berth-cni's state (berth's redb store) still holds.
fn attachments_in_state(store_path: &Path) -> Vec<String> {
    let store = berth::RedbStore::open(store_path).unwrap();
    let mut keys: Vec<String> = Vec::new();
    for prefix in ["sandbox/", "endpoint/"] {
        keys.extend(
            store
                .list(prefix)
                .unwrap()
                .entries
                .into_iter()
                .map(|e| e.key),
        );
    }
    keys
}

/// podman 4.3's libcni keeps its result cache in the machine's `/var/lib/cni` (it cannot be
/// configured): removed again at the end (also on panic) when the test made it.
struct CniCacheDir {
    made: bool,
}

const CNI_CACHE: &str = "/var/lib/cni";

impl CniCacheDir {
    fn watch() -> CniCacheDir {
        CniCacheDir {
            made: !Path::new(CNI_CACHE).exists(),
        }
    }
}

impl Drop for CniCacheDir {
    fn drop(&mut self) {
        if self.made {
            let _ = std::fs::remove_dir_all(CNI_CACHE);
        }
    }
}

#[test]
fn podman_runs_containers_on_berth_cni() {
    let _cache = CniCacheDir::watch();
    let cni = Cni::new();
    let podman = Podman::new(&cni);
    let peer = cni
        .host
        .add_lan_peer("192.0.2.1/24", "192.0.2.2/24")
        .unwrap();
    let before = cni.snapshot();
    let berth = |name: &str, subnet: &str, extra: Value| {
        let mut p = json!({
            "type": "berth-cni",
            "dataRoot": cni.data_root(),
            "execRoot": cni.exec_root(),
            "network": {"name": name, "subnet": subnet},
        });
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    };
    podman.network(
        "berthnet",
        json!([berth(
            "berthnet",
            "10.125.0.0/24",
            json!({"capabilities": {"portMappings": true, "ips": true, "mac": true}})
        )]),
    );

    podman.start("c1", "berthnet", &[]);
    podman.start("c2", "berthnet", &["-p", "8080:80"]);
    let (ip1, ip2) = (podman.ip("c1", "berthnet"), podman.ip("c2", "berthnet"));
    assert!(
        ip1.starts_with("10.125.0.") && ip2.starts_with("10.125.0."),
        "{ip1} {ip2}"
    );
    podman.run(&["exec", "c1", "ping", "-c", "1", "-W", "2", &ip2]);
    podman.run(&["exec", "c2", "ping", "-c", "1", "-W", "2", &ip1]);
    // The interface is the one CNI_IFNAME named.
    let link = podman.run(&["exec", "c1", "ip", "-o", "link", "show", "eth0"]);
    assert!(link.contains("eth0"), "{link}");

    // The published port, from the LAN.
    let ns2 = Netns::open(podman.sandbox("c2")).unwrap();
    let server = TcpBanner::start(&ns2, sa(&format!("{ip2}:80")), "podman-web").unwrap();
    let got = tcp_fetch(peer.netns(), sa("192.0.2.1:8080"), TIMEOUT).unwrap();
    assert_eq!(got, "podman-web from 192.0.2.2");
    drop(server);
    drop(ns2);

    // A chain: berth-cni without publishing, then tuning and portmap.
    podman.network(
        "berthchain",
        json!([
            berth("berthchain", "10.126.0.0/24", json!({"publishPorts": false})),
            {"type": "tuning", "promisc": true},
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ]),
    );
    podman.start("c3", "berthchain", &["-p", "8081:80"]);
    let ip3 = podman.ip("c3", "berthchain");
    assert!(ip3.starts_with("10.126.0."), "{ip3}");
    // iproute2 in the container's namespace (busybox's ip does not name the flag).
    let ns3 = Netns::open(podman.sandbox("c3")).unwrap();
    let link = ns3
        .command("ip")
        .args(["-o", "link", "show", "eth0"])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(
        link.contains("PROMISC"),
        "tuning ran after berth-cni: {link}"
    );
    let server = TcpBanner::start(&ns3, sa(&format!("{ip3}:80")), "chained").unwrap();
    let got = tcp_fetch(peer.netns(), sa("192.0.2.1:8081"), TIMEOUT);
    assert_eq!(
        got.as_deref().ok(),
        Some("chained from 192.0.2.2"),
        "portmap's port: {got:?}"
    );
    drop(server);
    drop(ns3);

    // One container on both networks: podman names the interfaces eth0 and eth1 (CNI_IFNAME),
    // and each network's containers reach it.
    podman.start("c4", "berthnet", &["--network", "berthchain"]);
    let (ip4a, ip4b) = (podman.ip("c4", "berthnet"), podman.ip("c4", "berthchain"));
    assert!(
        ip4a.starts_with("10.125.0.") && ip4b.starts_with("10.126.0."),
        "{ip4a} {ip4b}"
    );
    let links = podman.run(&["exec", "c4", "ip", "-o", "link"]);
    assert!(links.contains("eth0") && links.contains("eth1"), "{links}");
    podman.run(&["exec", "c4", "ping", "-c", "1", "-W", "2", &ip1]);
    podman.run(&["exec", "c4", "ping", "-c", "1", "-W", "2", &ip3]);
    podman.run(&["exec", "c1", "ping", "-c", "1", "-W", "2", &ip4a]);
    podman.run(&["exec", "c3", "ping", "-c", "1", "-W", "2", &ip4b]);

    podman.run(&["rm", "-f", "-t", "0", "c1", "c2", "c3", "c4"]);
    assert!(
        cni.host_links("berth").is_empty(),
        "{:?}",
        cni.host_links("")
    );
    assert_eq!(
        attachments_in_state(&cni.store_path()),
        Vec::<String>::new(),
        "berth-cni's state holds no attachment"
    );
    // The reference portmap plugin keeps its own top-level chains (CNI-HOSTPORT-*) after its
    // last DEL, by design; everything else is as it was.
    let after: Vec<String> = cni
        .snapshot()
        .into_iter()
        .filter(|l| !l.contains("CNI-HOSTPORT") && !l.contains("CNI portfwd"))
        .collect();
    assert_eq!(after, before, "the host is as it was");
}

//! Shared fixture of berth-cni's kernel tests: a test host (the runtime's namespace), the
//! plugin's state in a temporary directory, containers as namespaces of their own, and a way to
//! run the built `berth-cni` binary inside the test host as a runtime would (the `CNI_*`
//! variables, the configuration on stdin). Dropping it deletes the namespaces (and with the host
//! everything berth made there) and the state directory.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_testhost::{StateDir, TestHost};
use serde_json::{Value, json};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_berth-cni");
/// How long traffic helpers wait.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(3);
/// The subnet of the test network.
pub(crate) const SUBNET: &str = "10.123.0.0/24";
/// Its gateway (berth's IPAM takes the first address).
pub(crate) const GATEWAY: &str = "10.123.0.1";
/// The PATH the plugin runs with (the runtime's: where iptables lives).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One invocation's outcome.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) ok: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Answer {
    /// The JSON on stdout.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// The error code of a failed invocation.
    pub(crate) fn code(&self) -> u64 {
        assert!(!self.ok, "expected a failure: {self:?}");
        self.json()["code"]
            .as_u64()
            .unwrap_or_else(|| panic!("no code: {self:?}"))
    }

    /// Asserts success (with an empty stdout for commands that answer nothing).
    pub(crate) fn assert_ok(&self) -> &Self {
        assert!(self.ok, "failed: {self:?}");
        self
    }
}

/// A container: a namespace of its own, with loopback up.
pub(crate) struct Container {
    pub(crate) id: String,
    pub(crate) ns: TestHost,
}

impl Container {
    pub(crate) fn new(id: &str) -> Container {
        Container {
            id: id.to_owned(),
            ns: TestHost::new().expect("a container namespace (run as root)"),
        }
    }

    /// The namespace path the runtime passes as `CNI_NETNS`.
    pub(crate) fn netns(&self) -> String {
        self.ns.path().display().to_string()
    }

    /// One ping from the container.
    pub(crate) fn ping(&self, addr: &str) -> bool {
        self.ns.ping(addr)
    }

    /// `ip -o addr` in the container.
    pub(crate) fn addrs(&self) -> String {
        self.ns.ip(&["-o", "addr"]).unwrap()
    }
}

/// The runtime's side: the host namespace and the plugin's state.
pub(crate) struct Cni {
    pub(crate) host: TestHost,
    pub(crate) dir: StateDir,
}

impl Cni {
    pub(crate) fn new() -> Cni {
        Cni {
            host: TestHost::new().expect("a test host (run as root)"),
            dir: StateDir::new().unwrap(),
        }
    }

    pub(crate) fn data_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn exec_root(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// berth's store in the data root (the redb file `Controller::new` opens).
    pub(crate) fn store_path(&self) -> PathBuf {
        berth::Config::new(self.data_root(), self.exec_root()).store_path()
    }

    /// A configuration of network `name` (subnet [`SUBNET`]) with `extra` keys merged in.
    pub(crate) fn conf(&self, name: &str, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": "1.1.0",
            "name": name,
            "type": "berth-cni",
            "dataRoot": self.data_root(),
            "execRoot": self.exec_root(),
            "network": {"subnet": SUBNET},
        });
        if let (Some(obj), Value::Object(more)) = (c.as_object_mut(), extra) {
            for (k, v) in more {
                obj.insert(k, v);
            }
        }
        c
    }

    /// What berth may change in the host namespace (links, addresses, rules, forwarding,
    /// mounts under the exec root).
    pub(crate) fn snapshot(&self) -> Vec<String> {
        self.host.state_snapshot(&self.exec_root()).unwrap()
    }

    /// Runs the plugin with `vars` and `stdin`, inside the test host.
    pub(crate) fn raw(&self, vars: &[(&str, &str)], stdin: &str) -> Answer {
        let mut cmd = self.host.command(BIN);
        run(&mut cmd, vars, stdin)
    }

    /// Runs `command` for `c`'s interface `ifname` with `conf`.
    pub(crate) fn call(&self, command: &str, c: &Container, ifname: &str, conf: &Value) -> Answer {
        let netns = c.netns();
        self.raw(
            &[
                ("CNI_COMMAND", command),
                ("CNI_CONTAINERID", &c.id),
                ("CNI_NETNS", &netns),
                ("CNI_IFNAME", ifname),
                ("CNI_PATH", "/usr/lib/cni"),
            ],
            &conf.to_string(),
        )
    }

    /// ADD of `c`'s eth0; the result (asserted a success).
    pub(crate) fn add(&self, c: &Container, conf: &Value) -> Value {
        self.add_if(c, "eth0", conf)
    }

    /// ADD of `c`'s `ifname`; the result (asserted a success).
    pub(crate) fn add_if(&self, c: &Container, ifname: &str, conf: &Value) -> Value {
        let a = self.call("ADD", c, ifname, conf);
        a.assert_ok();
        a.json()
    }

    /// DEL of `c`'s eth0 (asserted a success with nothing on stdout).
    pub(crate) fn del(&self, c: &Container, conf: &Value) {
        self.del_if(c, "eth0", conf);
    }

    /// DEL of `c`'s `ifname` (asserted a success with nothing on stdout).
    pub(crate) fn del_if(&self, c: &Container, ifname: &str, conf: &Value) {
        let a = self.call("DEL", c, ifname, conf);
        a.assert_ok();
        assert_eq!(a.stdout, "", "DEL answers nothing");
    }

    /// A command without an attachment (GC, STATUS, VERSION).
    pub(crate) fn plain(&self, command: &str, conf: &Value) -> Answer {
        self.raw(
            &[("CNI_COMMAND", command), ("CNI_PATH", "/usr/lib/cni")],
            &conf.to_string(),
        )
    }

    /// The links of the host namespace whose name starts with `prefix`.
    pub(crate) fn host_links(&self, prefix: &str) -> Vec<String> {
        self.host
            .ip(&["-o", "link"])
            .unwrap()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .map(|n| {
                n.trim_end_matches(':')
                    .split('@')
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .filter(|n| n.starts_with(prefix))
            .collect()
    }
}

/// Runs `cmd` with only `vars` (and PATH) in its environment and `stdin` on its input.
pub(crate) fn run(cmd: &mut Command, vars: &[(&str, &str)], stdin: &str) -> Answer {
    cmd.env_clear()
        .env("PATH", PATH)
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the plugin starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Answer {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The address (without prefix) of a result's first address.
pub(crate) fn ip_of(result: &Value) -> String {
    result["ips"][0]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no address in {result}"))
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

pub(crate) fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

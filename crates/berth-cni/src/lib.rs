//! berth-cni: a CNI 1.1 plugin that attaches containers to a berth bridge network.
//!
//! The `berth-cni` binary is run by a container runtime (podman, containerd, CRI-O, ...) with
//! `CNI_COMMAND` and the other `CNI_*` variables in its environment and the network
//! configuration on stdin. Every invocation opens berth's library ([`berth::Controller`]) on the
//! plugin's own state, does its command and ends: ADD connects the container's berth sandbox
//! (one per container, adopting its namespace `CNI_NETNS`, made by its first ADD) to the
//! network (a veth on the network's bridge named `CNI_IFNAME` in the container, an address from
//! berth's IPAM, published ports, Docker's firewall rules); DEL removes that endpoint, and the
//! sandbox with its last (idempotent); CHECK verifies it against `prevResult`; GC removes the
//! network's attachments the runtime no longer knows (`cni.dev/valid-attachments`); STATUS
//! says whether the state is usable; VERSION lists 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0.
//! Results are written in the configuration's version, errors as the spec's JSON object with
//! its codes.
//!
//! The state is berth's own: the redb store `berth.redb` in `dataRoot` that
//! [`berth::Controller::new`] opens, every commit synced to the disk. Invocations are
//! serialised by an exclusive lock on the state directory (the store takes one process at a
//! time): a runtime's concurrent ADDs wait for each other, up to `lockTimeout`, and answer code
//! 11 (try again later) only when it runs out.
//!
//! # Configuration
//!
//! ```json
//! {
//!   "cniVersion": "1.1.0",
//!   "name": "web",
//!   "type": "berth-cni",
//!   "dataRoot": "/var/lib/berth-cni",
//!   "execRoot": "/run/berth-cni",
//!   "network": {
//!     "name": "web",
//!     "subnet": "10.89.0.0/24",
//!     "gateway": "10.89.0.1",
//!     "ipRange": "10.89.0.128/25",
//!     "internal": false,
//!     "options": { "com.docker.network.bridge.name": "berth-web" }
//!   },
//!   "firewallBackend": "iptables",
//!   "ipMasq": true,
//!   "ipForward": true,
//!   "mtu": 1500,
//!   "publishPorts": true,
//!   "defaultAddressPools": [{ "base": "10.200.0.0/16", "size": 24 }],
//!   "lockTimeout": 60,
//!   "capabilities": { "portMappings": true, "ips": true, "mac": true, "ipRanges": true, "dns": true }
//! }
//! ```
//!
//! | key | meaning (Docker's counterpart) | default |
//! |---|---|---|
//! | `dataRoot` | berth's state directory: its store `berth.redb` and the lock (`--data-root`) | `/var/lib/berth-cni` |
//! | `execRoot` | berth's namespace and sandbox-file directory (`--exec-root`) | `/run/berth-cni` |
//! | `network.name` | the berth network the attachments join (this CNI network's alone) | the CNI `name` |
//! | `network.subnet`, `.gateway`, `.ipRange` | IPv4 only (`--subnet`, `--gateway`, `--ip-range`) | the next free default pool |
//! | `network.internal` | no way out, no published ports (`--internal`) | false |
//! | `network.options` | bridge driver options (`-o`): `com.docker.network.bridge.name`, `...enable_icc`, ... | none |
//! | `firewallBackend` | `iptables`, `nftables`, or `none` (`--iptables=false`) | `iptables` |
//! | `ipMasq` | masquerade outbound traffic (`com.docker.network.bridge.enable_ip_masquerade`) | true |
//! | `mtu` | the network's MTU (`com.docker.network.driver.mtu`) | the kernel's |
//! | `ipForward` | switch IPv4 forwarding on, with Docker's FORWARD policy DROP (`--ip-forward`) | true |
//! | `publishPorts` | berth publishes `runtimeConfig.portMappings` itself; set false when the reference `portmap` plugin is chained after berth-cni | true |
//! | `defaultAddressPools` | the pools a network without `subnet` takes one from (`default-address-pools`) | Docker's |
//! | `lockTimeout` | seconds an invocation waits for the state's lock | 60 |
//! | `dns` | the spec's well-known DNS settings, returned in the result | none |
//!
//! The network is created on the first ADD as `docker network create` would create it with
//! these settings, labelled with the CNI network's name (`berth-cni.network`); a network of
//! that name that exists with other settings, or that another CNI network created, is refused
//! (code 7), so that GC of one CNI network never takes another's attachments.
//! It is removed with its last attachment, and when no network of the state is left berth
//! removes its firewall rules and sets back what it changed in the host namespace, so a host
//! whose containers are gone is as it was. Top-level keys of other plugins are ignored; an
//! unknown key in `network` is refused (code 2), as is `ipam` (berth allocates addresses).
//!
//! The runtime capabilities berth-cni reads from `runtimeConfig`: `portMappings`
//! (`hostPort`, `containerPort`, `protocol`, `hostIP`; a host port 0 is chosen by berth), `ips`
//! (a static IPv4 address; the network needs a configured subnet, as in Docker), `mac`,
//! `ipRanges` (the range in the network's subnet; with `rangeStart`/`rangeEnd` the first free
//! address in it; without `network.subnet`, the first IPv4 range gives the subnet of a network
//! the ADD creates), and `dns` (returned in the result). `CNI_ARGS` may carry `IP=` and `MAC=`
//! (the conventions); other keys are refused unless `IgnoreUnknown=1` (`K8S_POD_*` are ignored).
//!
//! # The interface name
//!
//! The interface in the container is named `CNI_IFNAME`, whatever it is (`eth0`, `net1`, ...;
//! berth's `EndpointOptions::ifname`), so a container may be on several networks, from one
//! configuration or several: each is an endpoint of the container's one berth sandbox. As in
//! Docker, a container has one endpoint per network (a second interface on a network it is on
//! is refused, code 102), and its default route is berth's choice among its endpoints (the
//! first network, by name, that is not internal), kept right as attachments come and go; an
//! ADD's result lists the default route when it goes through that ADD's interface. An
//! interface of the asked name already in the container (another attachment's, another
//! plugin's) refuses the ADD before anything is made (code 102), and `lo` is refused at once
//! (code 4).
//!
//! # Error codes
//!
//! The spec's: 1 (incompatible version), 2 (unsupported field), 3 (unknown container, CHECK),
//! 4 (invalid `CNI_*` variable), 5 (I/O), 6 (not JSON), 7 (invalid configuration), 11 (state
//! busy: try again later), 50 (STATUS: not available). berth-cni's: 100 (berth's library
//! failed: kernel, firewall, store), 101 (address management refused), 102 (the attachment
//! exists, the container is on the network already or attached in another namespace, the
//! interface name is taken in the container, or a host port is taken), 103 (CHECK found a
//! difference).
//!
//! GC refuses a configuration without `cni.dev/valid-attachments` (code 7) rather than take
//! every attachment for stale. CHECK looks at the kernel (the interface in the container, its
//! MAC address and addresses) before it opens berth's state, since opening it restores what the
//! state holds: every invocation puts back a deleted veth or firewall rule of another
//! attachment, as berth's start does.
//!
//! The plugin finds `iptables-restore` or `nft` on `PATH` (runtimes pass theirs). Set
//! `BERTH_CNI_TIMINGS=1` in the environment to have each step's duration on stderr.
//!
//! ```
//! let out = berth_cni::run_process(
//!     vec![("CNI_COMMAND".to_owned(), "VERSION".to_owned())],
//!     None,
//!     Ok(br#"{"cniVersion":"1.0.0"}"#.to_vec()),
//! );
//! assert!(out.success);
//! assert!(out.stdout.contains("\"1.1.0\""));
//! ```

pub mod config;
pub mod env;
pub mod error;
pub mod naming;
pub mod plan;
mod plugin;
pub mod result;
pub mod version;

pub use config::NetConf;
pub use env::{Command, Invocation};
pub use error::{CniError, ErrorCode};
pub use plugin::{LOCK_FILE, TIMINGS_ENV};
pub use result::CniResult;
pub use version::{CniVersion, SUPPORTED, VersionInfo};

/// The most stdin berth-cni reads (a configuration is a few kilobytes).
pub const MAX_STDIN: u64 = 16 << 20;

/// What the process prints and how it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What goes to stdout: a result, VERSION's answer, an error object, or nothing.
    pub stdout: String,
    /// What goes to stderr (the error in words, for logs).
    pub stderr: String,
    /// Exit status zero.
    pub success: bool,
}

/// The whole invocation, as the binary runs it: `vars` is the environment (its UTF-8
/// variables), `bad_var` a `CNI_*` variable that was not UTF-8, `stdin` what was read from
/// standard input.
pub fn run_process(
    vars: Vec<(String, String)>,
    bad_var: Option<String>,
    stdin: std::io::Result<Vec<u8>>,
) -> Outcome {
    let stdin = match stdin {
        Ok(b) if b.len() as u64 > MAX_STDIN => {
            return failure(
                &CniError::new(
                    ErrorCode::Io,
                    "the network configuration on stdin is too large",
                    format!("more than {MAX_STDIN} bytes"),
                ),
                CniVersion::LATEST,
            );
        }
        Ok(b) => b,
        Err(e) => {
            return failure(
                &CniError::new(ErrorCode::Io, "reading stdin", e.to_string()),
                CniVersion::LATEST,
            );
        }
    };
    let version = config::peek_version(&stdin).unwrap_or(CniVersion::LATEST);
    if let Some(k) = bad_var {
        return failure(&CniError::env(format!("{k} is not UTF-8")), version);
    }
    let timings = vars.iter().any(|(k, _)| k == TIMINGS_ENV);
    let inv = match Invocation::from_vars(vars) {
        Ok(i) => i,
        Err(e) => return failure(&e, version),
    };
    if inv.command == Command::Version {
        let answer = serde_json::to_string(&VersionInfo::new(version)).unwrap_or_default();
        return Outcome {
            stdout: answer,
            stderr: String::new(),
            success: true,
        };
    }
    let conf = match NetConf::parse(&stdin) {
        Ok(c) => c,
        Err(e) => return failure(&e, version),
    };
    let version = conf.cni_version;
    match plugin::Plugin::new(conf, inv, timings).run() {
        Ok(Some(json)) => Outcome {
            stdout: json.to_string(),
            stderr: String::new(),
            success: true,
        },
        Ok(None) => Outcome {
            stdout: String::new(),
            stderr: String::new(),
            success: true,
        },
        Err(e) => failure(&e, version),
    }
}

fn failure(e: &CniError, version: CniVersion) -> Outcome {
    Outcome {
        stdout: e.to_json(&version.to_string()),
        stderr: format!("berth-cni: {e}"),
        success: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(vars: &[(&str, &str)], stdin: &str) -> Outcome {
        run_process(
            vars.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            None,
            Ok(stdin.as_bytes().to_vec()),
        )
    }

    fn code(o: &Outcome) -> u64 {
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap_or_default();
        v["code"].as_u64().unwrap_or(0)
    }

    #[test]
    fn version_answers_in_the_asked_version() {
        let o = run(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"0.4.0"}"#);
        assert!(o.success);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap_or_default();
        assert_eq!(v["cniVersion"], "0.4.0");
        let o = run(&[("CNI_COMMAND", "VERSION")], "");
        assert!(o.success && o.stdout.contains("\"1.1.0\""));
    }

    #[test]
    fn early_errors_have_their_codes() {
        let o = run(&[], r#"{"cniVersion":"0.4.0"}"#);
        assert!(!o.success);
        assert_eq!(code(&o), 4);
        assert!(
            o.stdout.contains("\"cniVersion\":\"0.4.0\""),
            "{}",
            o.stdout
        );
        let add = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/none"),
            ("CNI_IFNAME", "eth0"),
        ];
        assert_eq!(code(&run(&add, "{nope")), 6);
        assert_eq!(
            code(&run(
                &add,
                r#"{"cniVersion":"0.1.0","name":"n","type":"berth-cni"}"#
            )),
            1
        );
        let o = run_process(Vec::new(), Some("CNI_NETNS".into()), Ok(Vec::new()));
        assert_eq!(code(&o), 4);
        let o = run_process(Vec::new(), None, Err(std::io::Error::other("closed")));
        assert_eq!(code(&o), 5);
    }

    #[test]
    fn gc_and_status_need_1_1_0() {
        let conf =
            r#"{"cniVersion":"1.0.0","name":"n","type":"berth-cni","dataRoot":"/nonexistent/x"}"#;
        assert_eq!(code(&run(&[("CNI_COMMAND", "GC")], conf)), 1);
        assert_eq!(code(&run(&[("CNI_COMMAND", "STATUS")], conf)), 1);
        // GC without the list of valid attachments removes nothing: it is refused.
        let conf =
            r#"{"cniVersion":"1.1.0","name":"n","type":"berth-cni","dataRoot":"/nonexistent/x"}"#;
        assert_eq!(code(&run(&[("CNI_COMMAND", "GC")], conf)), 7);
        let conf = r#"{"cniVersion":"0.3.1","name":"n","type":"berth-cni"}"#;
        let check = [
            ("CNI_COMMAND", "CHECK"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/none"),
            ("CNI_IFNAME", "eth0"),
        ];
        assert_eq!(code(&run(&check, conf)), 1);
    }
}
